//! Host PIDs of pods, from `<root>/proc/<pid>/cgroup`.
//!
//! A pod's network counters are read through one of its processes (`/proc/<pid>/net/dev`).
//! `cgroup.procs` lists PIDs in the *reader's* PID namespace and leaves out what it cannot see,
//! so an agent without `hostPID` finds the pod cgroups empty. The host procfs under the root
//! does show every host PID, and each one's `cgroup` file names its cgroup, relative to the
//! agent's cgroup namespace: `0::/../../kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`.
//! Leading components may be missing or `..`, so a pod is recognised by its `pod<uid>` component
//! and never by comparing whole paths.

use std::collections::{HashMap, HashSet};

use super::cgroup::{Runtime, container_from_name, uid_from_component};
use super::net::{self, InterfaceCounters};
use super::{Dir, HostError, Root};

/// Where a process sits, as far as its cgroup path tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcPod {
    pub pod_uid: String,
    /// The container cgroup right below the pod cgroup, when the process is in one.
    pub container_id: Option<String>,
    pub runtime: Option<Runtime>,
}

/// The pod of a process, or `None` for a process outside `kubepods` (or in a nested cgroup
/// whose pod component cannot be found). A vanished process is a `not_found` error; callers
/// that cache a pod's PID re-validate it with this each tick.
pub fn pod_of_pid(root: &Root, pid: u32) -> Result<Option<ProcPod>, HostError> {
    root.read_with(format!("/proc/{pid}/cgroup"), |text| Ok(pod_of_cgroup_file(text)))
}

/// Parses a `/proc/<pid>/cgroup` file (`hierarchy-id:controllers:path` per line, v1 and v2).
/// The first line naming a pod wins; all lines of one process name the same pod.
pub fn pod_of_cgroup_file(text: &str) -> Option<ProcPod> {
    text.lines().find_map(|line| {
        let path = line.splitn(3, ':').nth(2)?;
        let mut parts = path.split('/').filter(|c| !c.is_empty() && *c != "..");
        let pod_uid = parts.by_ref().find_map(uid_from_component)?;
        let container = parts.next().and_then(container_from_name);
        Some(ProcPod {
            pod_uid,
            container_id: container.map(|(id, _)| id.to_string()),
            runtime: container.map(|(_, r)| r),
        })
    })
}

/// The lowest host PID of every pod that has a process, by pod UID (as in the cgroup path:
/// dashes restored, or the static pod's config hash). Processes that exit during the scan are
/// skipped; only an unreadable `<root>/proc` is an error.
pub fn pod_pids(root: &Root) -> Result<HashMap<String, u32>, HostError> {
    let names = root.subdirectories("/proc")?.ok_or_else(|| HostError::Read {
        path: root.path("/proc"),
        source: std::io::ErrorKind::NotFound.into(),
    })?;
    let mut out: HashMap<String, u32> = HashMap::new();
    for name in names {
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        // Kernel threads and exited processes have no pod: skip read errors of single PIDs.
        let Ok(Some(p)) = pod_of_pid(root, pid) else { continue };
        out.entry(p.pod_uid).and_modify(|v| *v = (*v).min(pid)).or_insert(pid);
    }
    Ok(out)
}

/// Pod UID → a host PID of that pod, kept across ticks and re-validated each tick.
///
/// Each PID is pinned by a descriptor of its `<root>/proc/<pid>` directory, opened right after
/// its `cgroup` file named the pod. Such a descriptor stands for the process, not the number:
/// after the process exits, lookups below it fail with `ENOENT` even if the PID is reused, so
/// the read of `net/dev` through it is the re-validation, with no extra file per pod and tick
/// (and no window between checking `cgroup` and reading `net/dev`). Where the directory cannot
/// be opened (descriptor limit reached), the PID is re-validated through its `cgroup` file each
/// tick instead. The full `/proc` scan runs only when a wanted pod has no PID.
#[derive(Debug)]
pub struct PidMap {
    by_uid: HashMap<String, Held>,
    /// How many `/proc/<pid>` directories may be held open (see [`open_files_budget`]).
    max_held: usize,
    /// Pods that had no process at the last scan (completed pods keep their cgroup for a
    /// while, hostNetwork-less pods between restarts): they do not trigger a scan every tick.
    missing_at_scan: HashSet<String>,
    /// Refreshes since the last full scan.
    since_scan: u32,
}

#[derive(Debug)]
struct Held {
    pid: u32,
    /// `None`: the directory could not be opened; re-validate through `cgroup` each tick.
    dir: Option<Dir>,
}

/// A pod left without a PID triggers a new scan at most every this many refreshes (ticks),
/// unless it is a pod the last scan did not know yet. A full scan reads one small file per host
/// process: on a busy node, a few thousand reads that should not run every tick.
const RESCAN_EVERY: u32 = 10;

/// Descriptors left for everything else (files read during a tick, sockets, the config watch).
const OTHER_FILES: u64 = 256;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, as the Go runtime does at start (and so
/// the CloudWatch agent): container runtimes may start containers with a soft limit of 1024,
/// and the PID map holds one descriptor per pod (737 pods on the largest instances). Returns
/// the soft limit in force afterwards.
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let raised = rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            limit = getrlimit(Resource::Nofile);
        }
    }
    limit.current.unwrap_or(u64::MAX)
}

/// How many directories the agent may hold open across ticks (the PID map's `/proc/<pid>` and
/// the held cgroup directories share it): the soft limit minus room for the rest. Past it,
/// reads go by path (slower, same results).
pub fn open_files_budget() -> usize {
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX);
    usize::try_from(soft.saturating_sub(OTHER_FILES)).unwrap_or(usize::MAX)
}

impl Default for PidMap {
    fn default() -> Self {
        PidMap::with_budget(open_files_budget() / 4)
    }
}

impl PidMap {
    /// A map that holds at most `max_held` directories open.
    pub fn with_budget(max_held: usize) -> Self {
        PidMap {
            by_uid: HashMap::new(),
            max_held,
            missing_at_scan: HashSet::new(),
            since_scan: 0,
        }
    }

    /// `/proc/<pid>` directories held open now.
    pub fn held(&self) -> usize {
        self.by_uid.values().filter(|h| h.dir.is_some()).count()
    }

    /// Keeps the entries of `wanted` pods whose PID still belongs to them, forgets the rest,
    /// and scans `<root>/proc` once if a wanted pod is left without a PID. The error is the
    /// scan's (an unreadable `<root>/proc`): the map keeps what it re-validated.
    pub fn refresh(&mut self, root: &Root, wanted: &HashSet<&str>) -> Result<(), HostError> {
        self.by_uid.retain(|uid, held| {
            wanted.contains(uid.as_str())
                && (held.dir.is_some() || matches!(pod_of_pid(root, held.pid), Ok(Some(ref p)) if p.pod_uid == *uid))
        });
        self.since_scan = self.since_scan.saturating_add(1);
        let mut missing = wanted.iter().filter(|uid| !self.by_uid.contains_key(**uid)).peekable();
        if missing.peek().is_none() {
            return Ok(());
        }
        let new_pod_missing = missing.any(|uid| !self.missing_at_scan.contains(*uid));
        if !new_pod_missing && self.since_scan < RESCAN_EVERY {
            return Ok(());
        }
        self.since_scan = 0;
        let mut held = self.held();
        for (uid, pid) in pod_pids(root)? {
            if wanted.contains(uid.as_str()) && !self.by_uid.contains_key(&uid) {
                let entry = if held < self.max_held {
                    adopt(root, &uid, pid)
                } else {
                    Some(Held { pid, dir: None })
                };
                let Some(entry) = entry else { continue };
                held += usize::from(entry.dir.is_some());
                self.by_uid.insert(uid, entry);
            }
        }
        self.missing_at_scan = wanted
            .iter()
            .filter(|uid| !self.by_uid.contains_key(**uid))
            .map(|u| (*u).to_string())
            .collect();
        Ok(())
    }

    /// A PID whose `<root>/proc/<pid>/net/dev` shows the pod's network namespace.
    pub fn get(&self, uid: &str) -> Option<u32> {
        self.by_uid.get(uid).map(|h| h.pid)
    }

    /// The pod's network counters, read through its process (all containers of a pod share the
    /// sandbox's network namespace). `None` when the pod has
    /// no known process, or its process exited since the last tick (it is forgotten, and the
    /// next refresh looks for another one).
    pub fn read_net_dev(&mut self, root: &Root, uid: &str) -> Option<Result<Vec<InterfaceCounters>, HostError>> {
        let held = self.by_uid.get(uid)?;
        let result = match &held.dir {
            Some(dir) => net::read_net_dev_in(root, dir),
            None => net::read_net_dev(root, held.pid),
        };
        match result {
            Err(e) if e.is_not_found() => {
                self.by_uid.remove(uid);
                None
            }
            other => Some(other),
        }
    }
}

/// Pins `pid` for `uid`: opens its `/proc` directory, then checks that the process behind the
/// descriptor is still in the pod (the PID could have been reused since the scan read it).
fn adopt(root: &Root, uid: &str, pid: u32) -> Option<Held> {
    let Ok(dir) = root.open_dir(format!("/proc/{pid}")) else {
        return Some(Held { pid, dir: None });
    };
    let in_pod = root
        .read_in(&dir, "cgroup", |text| Ok(pod_of_cgroup_file(text)))
        .ok()
        .flatten()
        .is_some_and(|p| p.pod_uid == uid);
    in_pod.then_some(Held { pid, dir: Some(dir) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_and_v1_paths() {
        let c = "c".repeat(64);
        let v2 = format!(
            "0::/../../kubepods-burstable-pod3f1c2b7a_8d9e_4f10_a1b2_c3d4e5f60718.slice/cri-containerd-{c}.scope\n"
        );
        let p = pod_of_cgroup_file(&v2).unwrap();
        assert_eq!(p.pod_uid, "3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718");
        assert_eq!(p.container_id.as_deref(), Some(c.as_str()));
        assert_eq!(p.runtime, Some(Runtime::Containerd));

        let v1 = format!(
            "12:pids:/kubepods/besteffort/pod9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e/{c}\n\
             4:cpu,cpuacct:/kubepods/besteffort/pod9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e/{c}\n1:name=systemd:/x\n"
        );
        let p = pod_of_cgroup_file(&v1).unwrap();
        assert_eq!(p.pod_uid, "9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e");
        assert_eq!(p.runtime, Some(Runtime::Unknown));

        // The pod cgroup itself (no container component), and processes outside kubepods.
        let p = pod_of_cgroup_file("0::/kubepods.slice/kubepods-pod6d3f0c1e2b4a59788c7d6e5f4a3b2c1d.slice\n").unwrap();
        assert_eq!(
            (p.pod_uid.as_str(), p.container_id),
            ("6d3f0c1e2b4a59788c7d6e5f4a3b2c1d", None)
        );
        for none in [
            "0::/init.scope\n",
            "0::/system.slice/containerd.service\n",
            "",
            "garbage\n",
            "1:cpu\n",
        ] {
            assert_eq!(pod_of_cgroup_file(none), None, "{none}");
        }
    }
}
