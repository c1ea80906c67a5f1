//! The DaemonSet's user and capabilities, proved in a real container: runc runs busybox with the
//! process settings a container runtime derives from `manifests/daemonset.yaml`'s
//! `securityContext`, on host files owned and moded as on an EKS node, mounted where the
//! DaemonSet mounts them.
//!
//! - As the DaemonSet runs it (uid 0, every capability dropped, `no_new_privs`, read-only root
//!   filesystem): container logs (0640 `root:root`), `/var/log/secure` (0600 `root:root`) and
//!   journal files (0640 `root:systemd-journal`) are read, the read-only log mount refuses a
//!   write, the state mount takes one, and a file of another owner without other-read
//!   (`syslog:adm` 0640) is refused. No capability is needed, so none is added.
//! - The alternative, non-root with `CAP_DAC_READ_SEARCH` added, fails: containerd's CRI puts an
//!   added capability in the bounding, effective and permitted sets but not the ambient one
//!   (kubernetes/kubernetes#56374), so the kernel clears it when a non-root process executes
//!   the binary (capabilities(7), "Transformation of capabilities during `execve()`").
//! - uid 0 with `DAC_READ_SEARCH` added reads the other owner's file: the remedy docs/deploy.md
//!   gives for such nodes works.
//!
//! Needs root, runc and busybox-static (scripts/test-env.sh installs them as root); skips
//! otherwise, and fails under CI=true.

mod support;

use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Container, SecurityContext};
use serde::Deserialize as _;
use serde_json::{Value, json};
use support::repo;

const RUNC: &str = "/usr/sbin/runc";
const BUSYBOX: &str = "/bin/busybox";
/// The gid Amazon Linux gives `systemd-journal`, and Debian's `syslog` user and `adm` group
/// (any ids other than 0 show the same).
const SYSTEMD_JOURNAL_GID: u32 = 190;
const SYSLOG_UID: u32 = 104;
const ADM_GID: u32 = 4;

fn daemon_set_container() -> Container {
    let text = std::fs::read_to_string(repo("manifests/daemonset.yaml")).unwrap();
    let value = Value::deserialize(serde_norway::Deserializer::from_str(&text)).unwrap();
    let ds: DaemonSet = serde_json::from_value(value).unwrap();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    let [c] = pod.containers.try_into().expect("one container");
    c
}

/// The mount path of the volume `name` and whether it is read-only.
fn mount(c: &Container, name: &str) -> (String, bool) {
    let m = c
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no mount {name}"));
    (m.mount_path.clone(), m.read_only == Some(true))
}

/// The capability set a runtime gives the process: `drop: [ALL]` empties it, `add` fills it.
fn capabilities(sc: &SecurityContext) -> Vec<String> {
    let caps = sc.capabilities.clone().unwrap_or_default();
    assert_eq!(
        caps.drop.as_deref(),
        Some(&["ALL".to_string()][..]),
        "this test models drop: [ALL] only"
    );
    caps.add
        .unwrap_or_default()
        .iter()
        .map(|c| format!("CAP_{}", c.trim_start_matches("CAP_")))
        .collect()
}

struct Node {
    _dir: tempfile::TempDir,
    /// The host's `/var/log` and state directory.
    var_log: PathBuf,
    state: PathBuf,
    scratch: PathBuf,
}

fn write(path: &Path, text: &str, mode: u32, uid: u32, gid: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    chown(path, Some(uid), Some(gid)).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Host log files with the owners and modes of an EKS node (Amazon Linux 2).
fn node() -> Node {
    let dir = tempfile::tempdir().unwrap();
    let var_log = dir.path().join("var-log");
    write(&var_log.join("secure"), "secure\n", 0o600, 0, 0);
    write(
        &var_log.join("journal/0123/system.journal"),
        "journal\n",
        0o640,
        0,
        SYSTEMD_JOURNAL_GID,
    );
    write(&var_log.join("pods/ns_pod_uid/app/0.log"), "container\n", 0o640, 0, 0);
    write(&var_log.join("syslog"), "syslog\n", 0o640, SYSLOG_UID, ADM_GID);
    let state = dir.path().join("var-lib-kinsight");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o755)).unwrap();
    let scratch = dir.path().join("run");
    Node {
        var_log,
        state,
        scratch,
        _dir: dir,
    }
}

/// What the container prints for each access the agent makes.
const SCRIPT: &str = r"
b=/bin/busybox; log=$1; state=$2
$b cat $log/secure >/dev/null 2>&1 && echo read-secure || echo refused-secure
$b cat $log/journal/0123/system.journal >/dev/null 2>&1 && echo read-journal || echo refused-journal
$b cat $log/pods/ns_pod_uid/app/0.log >/dev/null 2>&1 && echo read-container || echo refused-container
$b cat $log/syslog >/dev/null 2>&1 && echo read-other-owner || echo refused-other-owner
$b touch $log/planted 2>/dev/null && echo wrote-log || echo refused-write-log
$b touch $state/checkpoints.json 2>/dev/null && echo wrote-state || echo refused-write-state
$b grep CapEff /proc/self/status
";

/// Runs SCRIPT in a runc container as `uid`/`gid` with `caps` and the DaemonSet's other
/// settings; returns its standard output.
fn run_in_container(node: &Node, c: &Container, uid: i64, gid: i64, caps: &[String], run: usize) -> String {
    let sc = c.security_context.clone().unwrap();
    let (log_path, log_ro) = mount(c, "varlog");
    let (state_path, state_ro) = mount(c, "state");
    let bundle = node.scratch.join(format!("bundle-{run}"));
    let rootfs = bundle.join("rootfs");
    for d in ["bin", "proc", "dev", &log_path[1..], &state_path[1..]] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap();
    let config = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid},
            "args": ["/bin/busybox", "sh", "-c", SCRIPT, "script", log_path, state_path],
            "env": ["PATH=/bin"],
            "cwd": "/",
            // What containerd's CRI sets for the container's capabilities: bounding, effective
            // and permitted; neither inheritable nor ambient.
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps, "inheritable": []},
            "noNewPrivileges": sc.allow_privilege_escalation == Some(false),
        },
        "root": {"path": "rootfs", "readonly": sc.read_only_root_filesystem == Some(true)},
        "hostname": "kinsight",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755", "size=1m"]},
            {"destination": log_path, "type": "bind", "source": node.var_log,
             "options": ["rbind", if log_ro { "ro" } else { "rw" }]},
            {"destination": state_path, "type": "bind", "source": node.state,
             "options": ["rbind", if state_ro { "ro" } else { "rw" }]},
        ],
        "linux": {"namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "network"}]},
    });
    std::fs::write(bundle.join("config.json"), config.to_string()).unwrap();
    let id = format!("kinsight-deploy-{}-{run}", std::process::id());
    let out = Command::new(RUNC)
        .arg("--root")
        .arg(node.scratch.join("runc-state"))
        .args(["run", "--bundle"])
        .arg(&bundle)
        .arg(&id)
        .output()
        .unwrap();
    // `runc run` deletes the container when its process exits; a failure to start leaves
    // nothing running either.
    let _ = Command::new(RUNC)
        .arg("--root")
        .arg(node.scratch.join("runc-state"))
        .args(["delete", "--force", &id])
        .output();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "runc run: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn lines(out: &str) -> Vec<&str> {
    out.lines().map(str::trim).filter(|l| !l.is_empty()).collect()
}

#[test]
fn root_without_capabilities_reads_the_node_logs_and_non_root_with_dac_read_search_cannot() {
    let missing: Vec<&str> = [RUNC, BUSYBOX].into_iter().filter(|p| !Path::new(p).exists()).collect();
    if !support::is_root() || !missing.is_empty() {
        let why = format!("needs root, runc and busybox-static (missing: {missing:?})");
        assert!(
            !support::in_ci(),
            "{why} under CI=true: scripts/test-env.sh installs them as root"
        );
        support::skip(&why);
        return;
    }
    let c = daemon_set_container();
    let sc = c.security_context.clone().unwrap();
    let node = node();

    // As the DaemonSet runs it.
    let caps = capabilities(&sc);
    assert!(
        caps.is_empty(),
        "the DaemonSet adds {caps:?}; this test proves none is needed"
    );
    let out = run_in_container(&node, &c, sc.run_as_user.unwrap(), sc.run_as_group.unwrap(), &caps, 1);
    assert_eq!(
        lines(&out),
        [
            "read-secure",
            "read-journal",
            "read-container",
            "refused-other-owner",
            "refused-write-log",
            "wrote-state",
            "CapEff:\t0000000000000000",
        ],
        "{out}"
    );
    assert!(node.state.join("checkpoints.json").exists());

    // Non-root with DAC_READ_SEARCH added, as Kubernetes would run it: the capability is gone
    // by the time the binary runs, and nothing root-only can be read.
    let dac = vec!["CAP_DAC_READ_SEARCH".to_string()];
    let out = run_in_container(&node, &c, 65532, 65532, &dac, 2);
    assert_eq!(
        lines(&out),
        [
            "refused-secure",
            "refused-journal",
            "refused-container",
            "refused-other-owner",
            "refused-write-log",
            "refused-write-state",
            "CapEff:\t0000000000000000",
        ],
        "{out}"
    );

    // Root with DAC_READ_SEARCH added reads another owner's file too (docs/deploy.md).
    let out = run_in_container(&node, &c, 0, 0, &dac, 3);
    assert!(lines(&out).contains(&"read-other-owner"), "{out}");
}
