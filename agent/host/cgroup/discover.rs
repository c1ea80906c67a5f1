//! Pod and container cgroups below `kubepods`.
//!
//! Both kubelet cgroup drivers are recognised, whatever the runtime:
//!
//! | driver | pod cgroup | container cgroup |
//! | --- | --- | --- |
//! | cgroupfs | `kubepods/pod<uid>`, `kubepods/{burstable,besteffort}/pod<uid>` | `<id>` (also `crio-<id>`) |
//! | systemd | `kubepods.slice/kubepods-pod<uid_>.slice`, `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice` | `cri-containerd-<id>.scope`, `docker-<id>.scope`, `crio-<id>.scope` |
//!
//! `<uid_>` is the UID with `-` written as `_` (systemd reserves `-` for slice nesting). A static
//! pod's UID is the kubelet's config hash, 32 hex digits without dashes (kubernetes
//! `pkg/kubelet/config/common.go`), not its mirror pod's `metadata.uid`. Every
//! container cgroup is listed, including the sandbox's: the caller matches ids against the pod
//! index and ignores the ones it does not know. Only direct children of a pod cgroup are
//! containers, so nested cgroups (Docker-in-Docker; upstream's `isContainerInContainer` drops
//! them too) never appear. CRI-O's
//! `crio-conmon-<id>.scope` holds the monitor process, not the container, and is skipped.
//!
//! Listing races with the kubelet: a pod or container cgroup that disappears while it is being
//! listed is left out without an error.

use std::path::Path;

use crate::host::{HostError, Root};

/// A pod's cgroup and its container cgroups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroup {
    /// The UID as in the path with dashes restored (`3f1c2b7a-8d9e-…`); for a static pod the
    /// config hash (`6d3f0c1e2b4a59788c7d6e5f4a3b2c1d`).
    pub uid: String,
    pub qos: Qos,
    /// Path relative to the controller root, no leading slash. On cgroup v1 the same relative
    /// path is looked up in each controller hierarchy.
    pub rel: String,
    pub containers: Vec<ContainerCgroup>,
}

/// A container cgroup (application, init or sandbox: the path does not say which).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerCgroup {
    /// The 64-hex container id.
    pub id: String,
    pub runtime: Runtime,
    pub rel: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Qos {
    Guaranteed,
    Burstable,
    BestEffort,
}

/// The runtime as far as the cgroup name tells it. The cgroupfs driver names container cgroups
/// by bare id for containerd and docker alike: [`Runtime::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Runtime {
    Containerd,
    Docker,
    Crio,
    Unknown,
}

/// Lists the pods below `kubepods` and `kubepods.slice` of the hierarchy at `dir` (a host path:
/// `/sys/fs/cgroup` on v2, the `cpuacct` mount on v1). No `kubepods` at all is an empty list: a
/// machine without a kubelet, such as a local run.
pub(super) fn list_pods(root: &Root, dir: &Path, with_containers: bool) -> Result<Vec<PodCgroup>, HostError> {
    let mut pods = Vec::new();
    // cgroupfs driver.
    for name in children(root, dir, "kubepods")? {
        match name.as_str() {
            "burstable" | "besteffort" => {
                let qos = if name == "burstable" {
                    Qos::Burstable
                } else {
                    Qos::BestEffort
                };
                let parent = format!("kubepods/{name}");
                for pod in children(root, dir, &parent)? {
                    if let Some(uid) = pod.strip_prefix("pod").and_then(uid_from_path) {
                        push_pod(
                            root,
                            dir,
                            with_containers,
                            &mut pods,
                            uid,
                            qos,
                            format!("{parent}/{pod}"),
                        )?;
                    }
                }
            }
            _ => {
                if let Some(uid) = name.strip_prefix("pod").and_then(uid_from_path) {
                    push_pod(
                        root,
                        dir,
                        with_containers,
                        &mut pods,
                        uid,
                        Qos::Guaranteed,
                        format!("kubepods/{name}"),
                    )?;
                }
            }
        }
    }
    // systemd driver.
    for name in children(root, dir, "kubepods.slice")? {
        let Some(stem) = name.strip_prefix("kubepods-").and_then(|s| s.strip_suffix(".slice")) else {
            continue;
        };
        let qos = match stem {
            "burstable" => Qos::Burstable,
            "besteffort" => Qos::BestEffort,
            _ => {
                if let Some(uid) = stem.strip_prefix("pod").and_then(uid_from_path) {
                    push_pod(
                        root,
                        dir,
                        with_containers,
                        &mut pods,
                        uid,
                        Qos::Guaranteed,
                        format!("kubepods.slice/{name}"),
                    )?;
                }
                continue;
            }
        };
        let parent = format!("kubepods.slice/{name}");
        let prefix = format!("kubepods-{stem}-pod");
        for pod in children(root, dir, &parent)? {
            let uid = pod
                .strip_prefix(prefix.as_str())
                .and_then(|s| s.strip_suffix(".slice"))
                .and_then(uid_from_path);
            if let Some(uid) = uid {
                push_pod(
                    root,
                    dir,
                    with_containers,
                    &mut pods,
                    uid,
                    qos,
                    format!("{parent}/{pod}"),
                )?;
            }
        }
    }
    Ok(pods)
}

fn push_pod(
    root: &Root,
    dir: &Path,
    with_containers: bool,
    pods: &mut Vec<PodCgroup>,
    uid: String,
    qos: Qos,
    rel: String,
) -> Result<(), HostError> {
    if !with_containers {
        // Pod-level records only: one directory read per pod fewer (a pod that went away
        // shows up as a not-found read, which is counted as ordinary churn).
        pods.push(PodCgroup {
            uid,
            qos,
            rel,
            containers: Vec::new(),
        });
        return Ok(());
    }
    let Some(entries) = children_if_present(root, dir, &rel)? else {
        return Ok(()); // the pod went away while we listed its parent
    };
    let containers = entries
        .into_iter()
        .filter_map(|name| {
            let (id, runtime) = container_from_name(&name)?;
            Some(ContainerCgroup {
                id: id.to_string(),
                runtime,
                rel: format!("{rel}/{name}"),
            })
        })
        .collect();
    pods.push(PodCgroup {
        uid,
        qos,
        rel,
        containers,
    });
    Ok(())
}

/// Subdirectories of `dir/rel`, sorted by name for a stable order; a missing directory has none.
fn children(root: &Root, dir: &Path, rel: &str) -> Result<Vec<String>, HostError> {
    Ok(children_if_present(root, dir, rel)?.unwrap_or_default())
}

/// `None` when the directory does not exist (or vanished while being read).
fn children_if_present(root: &Root, dir: &Path, rel: &str) -> Result<Option<Vec<String>>, HostError> {
    // Symlinks and files are not cgroups: only directory entries are listed.
    let Some(mut out) = root.subdirectories(dir.join(rel))? else {
        return Ok(None);
    };
    out.sort_unstable();
    Ok(Some(out))
}

/// The pod UID from the path form: `_` → `-`. Accepted: 1–64 ASCII hex digits and dashes (UUIDs
/// and 32-hex config hashes); anything else is not a kubelet pod cgroup.
fn uid_from_path(s: &str) -> Option<String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-' || b == b'_')
        && s.bytes().any(|b| b.is_ascii_hexdigit());
    ok.then(|| s.replace('_', "-"))
}

/// The pod UID from one path component in either driver's form (`pod<uid>`,
/// `kubepods-pod<uid_>.slice`, `kubepods-<qos>-pod<uid_>.slice`), for paths that are not
/// anchored at the hierarchy root (`/proc/<pid>/cgroup` under a cgroup namespace).
pub(crate) fn uid_from_component(c: &str) -> Option<String> {
    if let Some(rest) = c.strip_prefix("pod") {
        return uid_from_path(rest);
    }
    let stem = c.strip_prefix("kubepods-")?.strip_suffix(".slice")?;
    let rest = ["pod", "burstable-pod", "besteffort-pod"]
        .iter()
        .find_map(|p| stem.strip_prefix(p))?;
    uid_from_path(rest)
}

/// The container id and runtime from a container cgroup's name.
pub(crate) fn container_from_name(name: &str) -> Option<(&str, Runtime)> {
    if name.starts_with("crio-conmon-") {
        return None;
    }
    let (id, runtime) = if let Some(rest) = name.strip_suffix(".scope") {
        if let Some(id) = rest.strip_prefix("cri-containerd-") {
            (id, Runtime::Containerd)
        } else if let Some(id) = rest.strip_prefix("docker-") {
            (id, Runtime::Docker)
        } else if let Some(id) = rest.strip_prefix("crio-") {
            (id, Runtime::Crio)
        } else {
            return None;
        }
    } else if let Some(id) = name.strip_prefix("crio-") {
        (id, Runtime::Crio)
    } else {
        (name, Runtime::Unknown)
    };
    is_container_id(id).then_some((id, runtime))
}

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        let a = "a".repeat(64);
        assert_eq!(
            container_from_name(&format!("cri-containerd-{a}.scope")),
            Some((a.as_str(), Runtime::Containerd))
        );
        assert_eq!(
            container_from_name(&format!("docker-{a}.scope")),
            Some((a.as_str(), Runtime::Docker))
        );
        assert_eq!(
            container_from_name(&format!("crio-{a}.scope")),
            Some((a.as_str(), Runtime::Crio))
        );
        assert_eq!(
            container_from_name(&format!("crio-{a}")),
            Some((a.as_str(), Runtime::Crio))
        );
        assert_eq!(container_from_name(&a), Some((a.as_str(), Runtime::Unknown)));
        for odd in [
            format!("crio-conmon-{a}.scope"),
            format!("cri-containerd-{a}"),
            format!("other-{a}.scope"),
            "A".repeat(64),
            "a".repeat(63),
            "cgroup.procs".to_string(),
            String::new(),
        ] {
            assert_eq!(container_from_name(&odd), None, "{odd}");
        }
    }

    #[test]
    fn uids() {
        assert_eq!(
            uid_from_path("3f1c2b7a_8d9e_4f10_a1b2_c3d4e5f60718").as_deref(),
            Some("3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718")
        );
        assert_eq!(
            uid_from_path("6d3f0c1e2b4a59788c7d6e5f4a3b2c1d").as_deref(),
            Some("6d3f0c1e2b4a59788c7d6e5f4a3b2c1d")
        );
        for odd in ["", "---", "xyz", "3f1c/2b", &"a".repeat(65)] {
            assert_eq!(uid_from_path(odd), None, "{odd}");
        }
        let want = Some("3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718".to_string());
        for c in [
            "pod3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718",
            "kubepods-pod3f1c2b7a_8d9e_4f10_a1b2_c3d4e5f60718.slice",
            "kubepods-burstable-pod3f1c2b7a_8d9e_4f10_a1b2_c3d4e5f60718.slice",
            "kubepods-besteffort-pod3f1c2b7a_8d9e_4f10_a1b2_c3d4e5f60718.slice",
        ] {
            assert_eq!(uid_from_component(c), want, "{c}");
        }
        for odd in [
            "kubepods.slice",
            "kubepods-burstable.slice",
            "burstable",
            "podzz",
            "kubepods-other-pod1.slice",
        ] {
            assert_eq!(uid_from_component(odd), None, "{odd}");
        }
    }
}
