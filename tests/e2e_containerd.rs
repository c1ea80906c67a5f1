//! End to end with real containers (issue #3, Tests, first bullet: "at
//! least one such test starts the container through containerd and runc").
//!
//! `scripts/test-env.sh` runs a containerd of its own (CRI plugin disabled, socket under a short
//! scratch path) and builds the busybox-static test image (`scripts/mk-test-image.sh`); it
//! exports `KINSIGHT_TEST_CONTAINERD` (the socket) and `KINSIGHT_TEST_IMAGE` (the OCI tarball).
//! Each test imports the image (`ctr -n k8s.io images import`; idempotent), creates the pod
//! cgroup as kubelet does before its containers, and starts two containers with
//! `ctr run --cgroup /<kubelet-like path>` and kubelet's labels: `app` busy-loops (one core),
//! `cache` writes 32 MiB into its `/dev/shm` tmpfs, which is charged to its memory cgroup and
//! counts in the working set. runc (cgroupfs driver) puts each container in that path in every
//! v1 hierarchy. The pod list names the real containerd ids (`containerd://<id>`); then
//! `kinsight once --interval 3s --pods-file … --output stdout` runs on the real host, standard
//! and enhanced side by side, and the pod and container metrics are checked as in
//! `e2e_real_cgroups.rs` (shared checks in `tests/e2e`).
//!
//! Both kubelet layouts: cgroupfs (`/kubepods/burstable/pod<uid>/<id>`) and systemd
//! (`/kubepods.slice/…/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`, given to
//! runc's cgroupfs driver as a plain path, which it creates verbatim).
//!
//! Cleanup, also on failure: kill and delete the tasks, delete the containers with their
//! snapshots (the image stays for the next test), remove the pod cgroup in
//! every hierarchy (runc removes the container's, not the pod's).

mod e2e;
mod support;

use std::net::{Ipv4Addr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use e2e::{Cleanup, ContainerSpec, Host, MIB, PodSpec};

/// Each test busies a core on a 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const IMAGE_REF: &str = "docker.io/library/kinsight-busybox:latest";
const HELD: u64 = 32 * MIB;
/// Above the 32 MiB: two busybox shells and kernel bookkeeping.
const SLACK: u64 = 16 * MIB;
const WAIT: Duration = Duration::from_secs(20);

/// `ctr -a SOCK -n k8s.io ARGS…`: containerd's namespace for Kubernetes containers.
fn ctr(sock: &str, args: &[&str]) -> Output {
    Command::new("ctr")
        .args(["-a", sock, "-n", "k8s.io"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ctr (is containerd installed?): {e}"))
}

fn ctr_ok(sock: &str, args: &[&str]) -> String {
    let out = ctr(sock, args);
    assert!(
        out.status.success(),
        "ctr {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The host PID of `id`'s task once it is RUNNING (`ctr tasks ls`: TASK PID STATUS).
fn running_pid(sock: &str, id: &str) -> Option<u32> {
    let out = ctr(sock, &["tasks", "ls"]);
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() == 3 && f[0] == id && f[2] == "RUNNING")
            .then(|| f[1].parse().ok())
            .flatten()
    })
}

/// Stops and deletes what `ctr run` made for `id`: the task (SIGKILL, then delete once it has
/// exited), the container and its snapshot. Quiet and never panicking: it runs from `Drop`.
fn delete_container(sock: &str, id: &str) {
    let _ = ctr(sock, &["tasks", "kill", "-s", "SIGKILL", id]);
    let deleted = support::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        let out = ctr(sock, &["tasks", "delete", id]);
        out.status.success() || String::from_utf8_lossy(&out.stderr).contains("not found")
    });
    if !deleted {
        let _ = ctr(sock, &["tasks", "delete", "--force", id]);
    }
    let _ = ctr(sock, &["containers", "delete", id]);
    // `containers delete` removes the snapshot; this catches one left by a failed run.
    let _ = ctr(sock, &["snapshots", "rm", id]);
}

/// Every cgroup hierarchy (v1 controllers, `name=systemd`, the unified tree): runc creates the
/// pod's path in all of them.
fn all_hierarchies() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
        .unwrap_or_default()
}

/// Removes the container cgroups (runc should have) and the pod cgroup in every hierarchy;
/// the shared `kubepods…` parents only when empty.
fn remove_pod_cgroups(pod_rel: &str, container_rels: &[String]) {
    for h in all_hierarchies() {
        for rel in container_rels {
            let _ = std::fs::remove_dir(h.join(rel));
        }
        let dir = h.join(pod_rel);
        let gone = support::wait_until(
            Duration::from_secs(10),
            Duration::from_millis(20),
            || match std::fs::remove_dir(&dir) {
                Ok(()) => true,
                Err(e) => e.kind() == std::io::ErrorKind::NotFound,
            },
        );
        if !gone {
            eprintln!("warning: could not remove {}", dir.display());
        }
        for p in e2e::prefixes(pod_rel).iter().rev().skip(1) {
            let _ = std::fs::remove_dir(h.join(p));
        }
    }
}

fn memory_usage(memory: &Path, rel: &str) -> u64 {
    std::fs::read_to_string(memory.join(rel).join("memory.usage_in_bytes"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Runs `cmd ARGS…` to success, or panics with its stderr.
fn sh_ok(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a CNI plugin does for the pod sandbox: a veth pair whose container end is `eth0` in
/// the network namespace of `pid`, with `169.254.<subnet>.2/30` there and `.1/30` on the host
/// end `host_if` (a `veth…` name, which the node totals skip). The pair goes away with
/// the namespace when the pod's last task exits.
fn plumb_pod_network(pid: u32, host_if: &str, subnet: u8) {
    let pid = pid.to_string();
    sh_ok(
        "ip",
        &[
            "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", &pid,
        ],
    );
    sh_ok(
        "ip",
        &["addr", "add", &format!("169.254.{subnet}.1/30"), "dev", host_if],
    );
    sh_ok("ip", &["link", "set", host_if, "up"]);
    let inside = |args: &[&str]| {
        let mut a = vec!["-t", pid.as_str(), "-n", "ip"];
        a.extend_from_slice(args);
        sh_ok("nsenter", &a);
    };
    inside(&["addr", "add", &format!("169.254.{subnet}.2/30"), "dev", "eth0"]);
    inside(&["link", "set", "eth0", "up"]);
}

/// Runs a container the way kubelet would: in `cgroup`, with the `io.kubernetes.*` labels;
/// `netns` joins the pod's network namespace (the sandbox's, in Kubernetes).
fn run_container(sock: &str, pod: &PodSpec, name: &str, id: &str, cgroup: &str, netns: Option<&str>, script: &str) {
    let labels = [
        format!("io.kubernetes.pod.name={}", pod.name),
        format!("io.kubernetes.pod.namespace={}", e2e::NAMESPACE),
        format!("io.kubernetes.pod.uid={}", pod.uid),
        format!("io.kubernetes.container.name={name}"),
        "io.cri-containerd.kind=container".to_string(),
    ];
    let mut args: Vec<&str> = vec!["run", "-d", "--cgroup", cgroup];
    for l in &labels {
        args.extend(["--label", l]);
    }
    let with_ns = netns.map(|p| format!("network:{p}"));
    if let Some(ns) = &with_ns {
        args.extend(["--with-ns", ns]);
    }
    args.extend([IMAGE_REF, id, "sh", "-c", script]);
    ctr_ok(sock, &args);
}

/// Sets the flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The pod of one test: its spec, cgroup paths and network.
struct Pod {
    spec: PodSpec,
    rel: String,
    app_rel: String,
    cache_rel: String,
    /// The host end of the pod's veth pair, and the pod's /30 in 169.254.<subnet>.0.
    host_if: String,
    subnet: u8,
}

impl Pod {
    fn new(systemd: bool) -> Pod {
        let uid = e2e::random_pod_uid();
        let (app_id, cache_id) = (e2e::random_container_id(), e2e::random_container_id());
        let rel = e2e::pod_cgroup(&uid, systemd);
        let container = |name, id: &str, cpu: (u64, u64), memory: (u64, u64)| ContainerSpec {
            name,
            id: id.to_string(),
            cpu_request_m: cpu.0,
            cpu_limit_m: cpu.1,
            memory_request: memory.0,
            memory_limit: memory.1,
        };
        Pod {
            app_rel: e2e::container_cgroup(&rel, &app_id, systemd),
            cache_rel: e2e::container_cgroup(&rel, &cache_id, systemd),
            rel,
            host_if: format!("vethks{}", &app_id[..8]),
            subnet: app_id.as_bytes()[0].wrapping_add(app_id.as_bytes()[1]),
            spec: PodSpec::new(
                uid,
                vec![
                    container("app", &app_id, (250, 1200), (16 * MIB, 64 * MIB)),
                    container("cache", &cache_id, (50, 200), (48 * MIB, 96 * MIB)),
                ],
            ),
        }
    }

    fn ids(&self) -> Vec<String> {
        self.spec.containers.iter().map(|c| c.id.clone()).collect()
    }

    /// What the cleanup does first, before removing the cgroups it created itself: delete the
    /// containers (cache first: it is in app's network namespace), the veth, the pod cgroups.
    fn teardown(&self, sock: &str) -> Box<dyn FnOnce()> {
        let (sock, mut ids) = (sock.to_string(), self.ids());
        ids.reverse();
        let (rel, rels, host_if) = (
            self.rel.clone(),
            [self.app_rel.clone(), self.cache_rel.clone()],
            self.host_if.clone(),
        );
        Box::new(move || {
            for id in &ids {
                delete_container(&sock, id);
            }
            // normally gone with the namespace already
            let _ = Command::new("ip")
                .args(["link", "del", &host_if])
                .stderr(Stdio::null())
                .status();
            remove_pod_cgroups(&rel, &rels);
        })
    }

    /// Starts `app` (busy loop) with the pod's network, then `cache` (32 MiB in /dev/shm) in
    /// the same network namespace; returns `app`'s host PID once both are at work.
    fn start(&self, sock: &str, memory: &Path) -> u32 {
        let ids = self.ids();
        let cgroup = |rel: &str| format!("/{rel}");
        run_container(
            sock,
            &self.spec,
            "app",
            &ids[0],
            &cgroup(&self.app_rel),
            None,
            "while :; do :; done",
        );
        let mut pid = None;
        assert!(
            support::wait_until(WAIT, Duration::from_millis(50), || {
                pid = running_pid(sock, &ids[0]);
                pid.is_some()
            }),
            "container app not RUNNING within {WAIT:?}"
        );
        let pid = pid.unwrap();
        plumb_pod_network(pid, &self.host_if, self.subnet);
        let netns = format!("/proc/{pid}/ns/net");
        let hold = format!("head -c {HELD} /dev/zero > /dev/shm/held && exec sleep 600");
        run_container(
            sock,
            &self.spec,
            "cache",
            &ids[1],
            &cgroup(&self.cache_rel),
            Some(&netns),
            &hold,
        );
        assert!(
            support::wait_until(WAIT, Duration::from_millis(50), || {
                memory_usage(memory, &self.cache_rel) >= HELD
            }),
            "container cache did not fill /dev/shm within {WAIT:?} (usage {})",
            memory_usage(memory, &self.cache_rel)
        );
        // runc put the task where kubelet's cgroupfs driver would.
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(
            cgroups
                .lines()
                .any(|l| l.ends_with(&cgroup(&self.app_rel).replacen('/', ":/", 1))),
            "/proc/{pid}/cgroup:\n{cgroups}"
        );
        pid
    }

    /// The two agent runs, with UDP datagrams sent to a closed port of the pod's `eth0`
    /// meanwhile (about 200 kB/s), so that the pod has traffic to report. Also returns the
    /// bytes sent, as counted on the wire (Ethernet, IPv4 and UDP headers included).
    fn measure(&self, dir: &Path, burner: u32) -> (e2e::Runs, u64) {
        const PAYLOAD: usize = 1000;
        const ON_THE_WIRE: u64 = PAYLOAD as u64 + 8 + 20 + 14;
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let runs = std::thread::scope(|s| {
            s.spawn(|| {
                let socket = UdpSocket::bind((Ipv4Addr::new(169, 254, self.subnet, 1), 0)).unwrap();
                let payload = [0x6bu8; PAYLOAD];
                while !stop.load(Ordering::Relaxed) {
                    if socket
                        .send_to(&payload, (Ipv4Addr::new(169, 254, self.subnet, 2), 9))
                        .is_ok()
                    {
                        sent.fetch_add(ON_THE_WIRE, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(5)); // pacing, not waiting
                }
            });
            let _stop = StopOnDrop(&stop); // also when the run panics: the scope joins the sender
            e2e::run_both(dir, &self.spec, burner)
        });
        (runs, sent.load(Ordering::Relaxed))
    }
}

fn run_layout(systemd: bool) {
    let Some(sock) = support::require_env("KINSIGHT_TEST_CONTAINERD") else {
        return;
    };
    let Some(image) = support::require_env("KINSIGHT_TEST_IMAGE") else {
        return;
    };
    let Some(hierarchies) = e2e::v1_prerequisites() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = Host::read();
    ctr_ok(&sock, &["images", "import", &image]);

    let pod = Pod::new(systemd);
    let mut cleanup = Cleanup::default();
    cleanup.before.push(pod.teardown(&sock));
    // As kubelet: the pod cgroup first (here with the busy container's cpu.shares raised, see
    // e2e_real_cgroups.rs), then runc creates each container's below it.
    for h in &hierarchies {
        cleanup.mkdirs(h, &pod.rel, 2);
    }
    let has = |file: &str| {
        hierarchies
            .iter()
            .find(|h| h.join(&pod.rel).join(file).exists())
            .unwrap_or_else(|| panic!("no hierarchy with {file}"))
            .clone()
    };
    cleanup.boost_cpu_shares(&has("cpu.shares"), &pod.rel);
    let burner = pod.start(&sock, &has("memory.usage_in_bytes"));

    let dir = tempfile::tempdir().unwrap();
    let (runs, sent) = pod.measure(dir.path(), burner);
    // The pod's eth0 counters, not the host's nor `lo`: at least some of the traffic (the sender
    // is paced at 200 kB/s but starves on a loaded machine), at most all of it within the 3 s
    // interval, plus a little IPv6 neighbour discovery.
    let rx = e2e::value(&runs.standard, "pod_network_rx_bytes");
    let most = sent as f64 / 2.9 + 2000.0; // 3 s, and a little timer slack
    eprintln!("pod_network_rx_bytes {rx:.0} B/s; {sent} bytes sent in all");
    assert!(
        (10_000.0..=most).contains(&rx),
        "pod_network_rx_bytes {rx} B/s, want 10000..={most:.0} ({sent} bytes sent into the pod's eth0)"
    );
    e2e::check_pod_values(&runs.standard, &pod.spec, host, runs.burner_cores, HELD, SLACK);
    e2e::check_enhanced(&runs.enhanced, &pod.spec, host, "app", Some(("cache", HELD, SLACK)));
    e2e::check_standard_table(&runs.standard, &pod.spec);
    e2e::check_cluster_values(&runs.standard);

    drop(cleanup);
    for h in all_hierarchies() {
        assert!(!h.join(&pod.rel).exists(), "{} left behind", h.join(&pod.rel).display());
    }
    for id in pod.ids() {
        for what in ["tasks", "containers", "snapshots"] {
            let out = ctr_ok(&sock, &[what, "ls"]);
            let left = out.lines().any(|l| l.split_whitespace().next() == Some(id.as_str()));
            assert!(!left, "{what} {id} left behind:\n{out}");
        }
    }
}

#[test]
fn containerd_cgroupfs_layout_pod_metrics_end_to_end() {
    run_layout(false);
}

#[test]
fn containerd_systemd_layout_pod_metrics_end_to_end() {
    run_layout(true);
}
