//! What `e2e_real_cgroups.rs` and `e2e_containerd.rs` share: the host's
//! facts, random test identities, a cleanup guard for cgroups and processes, the pod list the
//! tests write, running `kinsight once`, and the oracle for the 25 standard metrics (as the
//! CloudWatch agent declares them in `translator/translate/otel/exporter/awsemf/kubernetes.go`)
//! written out here by hand, independently of the agent's own declaration table.
//!
//! Both files say `mod e2e;` beside `mod support;`.

#![allow(dead_code, reason = "each test file uses part of this module")]
#![allow(
    clippy::float_cmp,
    reason = "counts, capacities and limits are integers, exact in f64"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::support;
pub use crate::support::{Cleanup, is_root};

/// The cluster name the tests configure.
pub const CLUSTER: &str = "e2e";
/// `kinsight.node_name` in the config, and `spec.nodeName` of the test pod.
pub const NODE: &str = "ip-10-0-0-1.e2e.internal";
/// The namespace of the test pod, its Service and `EndpointSlice`.
pub const NAMESPACE: &str = "e2e";
/// The workload name the pod's `ReplicaSet` `burn-<hash>` gives it (the hash suffix is cut).
pub const WORKLOAD: &str = "burn";
pub const SERVICE: &str = "burn-svc";
pub const MIB: u64 = 1 << 20;

/// v1 controller hierarchies the collector reads per pod: CPU, CPU accounting, memory.
pub const CONTROLLERS: [&str; 3] = ["cpu", "cpuacct", "memory"];

// ---------------------------------------------------------------------------------------------
// The host

/// What the node denominators are made of: logical CPUs and `MemTotal`, from `/proc`.
#[derive(Debug, Clone, Copy)]
pub struct Host {
    pub cpus: u32,
    pub mem_total: u64,
}

impl Host {
    pub fn read() -> Host {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap();
        let cpus = cpuinfo
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
        let kib: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .expect("MemTotal in /proc/meminfo");
        Host {
            cpus: u32::try_from(cpus).unwrap(),
            mem_total: kib * 1024,
        }
    }

    pub fn millicores(self) -> f64 {
        f64::from(self.cpus) * 1000.0
    }

    /// One busy core as a share of the node, in percent.
    pub fn one_core_percent(self) -> f64 {
        100.0 / f64::from(self.cpus)
    }
}

/// The v1 hierarchy of `controller` as its own directory (`/sys/fs/cgroup/cpu`), when mounted.
fn v1_hierarchy(controller: &str) -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() > 3 && f[2] == "cgroup" && f[3].split(',').any(|o| o == controller)).then(|| PathBuf::from(f[1]))
    })
}

/// The v1 hierarchies of [`CONTROLLERS`] (deduplicated: `cpu,cpuacct` may be one mount), or
/// `None` after saying what is missing. Under `CI=true` a missing prerequisite is a failure:
/// CI runs as root on a machine with cgroup v1.
pub fn v1_prerequisites() -> Option<Vec<PathBuf>> {
    let missing = if is_root() {
        let found: Vec<Option<PathBuf>> = CONTROLLERS.iter().map(|c| v1_hierarchy(c)).collect();
        if found.iter().all(Option::is_some) {
            let mut h: Vec<PathBuf> = found
                .into_iter()
                .flatten()
                .map(|p| std::fs::canonicalize(&p).unwrap_or(p))
                .collect();
            h.dedup();
            return Some(h);
        }
        format!("cgroup v1 hierarchies for {CONTROLLERS:?} (found {found:?})")
    } else {
        "root (creating cgroups needs it)".to_string()
    };
    assert!(
        !support::in_ci(),
        "end-to-end cgroup tests need {missing}; under CI=true this is a failure"
    );
    support::skip(&format!("end-to-end cgroup tests need {missing}"));
    None
}

// ---------------------------------------------------------------------------------------------
// Identities

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .expect("/dev/urandom");
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// A random pod UID with the test marker `7e570000-`, so that
/// `kinsight_test_env_stop` can find the leftovers of a crash.
pub fn random_pod_uid() -> String {
    let h = hex(&random_bytes::<12>());
    format!("7e570000-{}-4{}-8{}-{}", &h[0..4], &h[4..7], &h[7..10], &h[10..22])
}

/// A random 64-hex container id, as containerd's.
pub fn random_container_id() -> String {
    hex(&random_bytes::<32>())
}

/// A random pod-template hash from the alphabet of the suffix rule, so that the
/// `ReplicaSet` `burn-<hash>` gives `PodName` = `burn`.
pub fn random_template_hash() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<10>()
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The kubelet-like cgroup paths

/// A Burstable pod's cgroup, relative to a hierarchy, in either driver's layout.
pub fn pod_cgroup(uid: &str, systemd: bool) -> String {
    if systemd {
        format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        )
    } else {
        format!("kubepods/burstable/pod{uid}")
    }
}

/// A container's cgroup below its pod's: `cri-containerd-<id>.scope` (systemd) or `<id>`.
pub fn container_cgroup(pod: &str, id: &str, systemd: bool) -> String {
    if systemd {
        format!("{pod}/cri-containerd-{id}.scope")
    } else {
        format!("{pod}/{id}")
    }
}

/// `a/b/c` → `[a, a/b, a/b/c]`.
pub fn prefixes(rel: &str) -> Vec<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

// ---------------------------------------------------------------------------------------------
// Cleanup

impl Cleanup {
    /// Creates `hierarchy/rel` and each missing parent, remembering which ones it made. The
    /// leading `shared_depth` components (`kubepods`, `kubepods/burstable`) may be another
    /// test's too: they are removed only when empty at the end.
    pub fn mkdirs(&mut self, hierarchy: &Path, rel: &str, shared_depth: usize) {
        for (i, p) in prefixes(rel).iter().enumerate() {
            let dir = hierarchy.join(p);
            if i < shared_depth {
                if !self.shared.contains(&dir) {
                    self.shared.push(dir.clone());
                }
                let _ = std::fs::create_dir(&dir);
            } else if std::fs::create_dir(&dir).is_ok() {
                self.created.push(dir);
            } else {
                assert!(dir.is_dir(), "cannot create {}", dir.display());
            }
        }
    }

    /// Raises `cpu.shares` to the kernel's maximum on every prefix of `rel` in the `cpu`
    /// hierarchy, so that the test's one busy process gets a whole core even while builds keep
    /// the shared 2-core machine busy (0.6–1.0 cores were seen without it). Root
    /// tasks weigh 1024 each; 262144 wins a core against any plausible number of them.
    pub fn boost_cpu_shares(&mut self, cpu_hierarchy: &Path, rel: &str) {
        for p in prefixes(rel) {
            let file = cpu_hierarchy.join(&p).join("cpu.shares");
            let old = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                .trim()
                .to_string();
            std::fs::write(&file, "262144").unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            self.shares.push((file, old));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// utime + stime of a process in nanoseconds (USER_HZ ticks of 10 ms), from `/proc/<pid>/stat`.
pub fn process_cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may contain spaces: fields are counted after its closing parenthesis.
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()) * 10_000_000
}

/// The wall clock for measuring a process's CPU rate next to the agent's run.
#[allow(
    clippy::disallowed_types,
    reason = "measures wall time against other processes, not tokio timers"
)]
pub fn wall_now() -> std::time::Instant {
    std::time::Instant::now()
}

// ---------------------------------------------------------------------------------------------
// The pod list

/// One application container of the test pod.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    pub name: &'static str,
    pub id: String,
    pub cpu_request_m: u64,
    pub cpu_limit_m: u64,
    pub memory_request: u64,
    pub memory_limit: u64,
}

/// The test pod: a Deployment's pod (`burn-<hash>-<5>`), Burstable, on [`NODE`].
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub uid: String,
    pub name: String,
    pub containers: Vec<ContainerSpec>,
}

impl PodSpec {
    pub fn new(uid: String, containers: Vec<ContainerSpec>) -> PodSpec {
        let hash = random_template_hash();
        PodSpec {
            uid,
            name: format!("{WORKLOAD}-{hash}-{}", &random_template_hash()[..5]),
            containers,
        }
    }

    fn replica_set(&self) -> String {
        self.name.rsplit_once('-').unwrap().0.to_string()
    }

    pub fn cpu_requests_m(&self) -> u64 {
        self.containers.iter().map(|c| c.cpu_request_m).sum()
    }

    pub fn cpu_limits_m(&self) -> u64 {
        self.containers.iter().map(|c| c.cpu_limit_m).sum()
    }

    pub fn memory_requests(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_request).sum()
    }

    pub fn memory_limits(&self) -> u64 {
        self.containers.iter().map(|c| c.memory_limit).sum()
    }

    /// `kubectl get pods,services,endpointslices,nodes -o json` as the apiserver would print it
    /// for this pod: the Pod (requests and limits on every container, owner `ReplicaSet`
    /// `burn-<hash>`, Ready), a Service selecting it with an `EndpointSlice` holding its one ready
    /// endpoint, and two Nodes, one of them under memory pressure. With these every standard
    /// dimension set can appear except N, which needs an `InstanceId` (IMDS; none locally).
    pub fn list_json(&self) -> String {
        let containers: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "image": "docker.io/library/kinsight-busybox:latest",
                    "resources": {
                        "requests": {"cpu": format!("{}m", c.cpu_request_m), "memory": c.memory_request.to_string()},
                        "limits": {"cpu": format!("{}m", c.cpu_limit_m), "memory": c.memory_limit.to_string()},
                    },
                })
            })
            .collect();
        let statuses: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                serde_json::json!({
                    "name": c.name, "containerID": format!("containerd://{}", c.id),
                    "image": "docker.io/library/kinsight-busybox:latest", "imageID": "",
                    "ready": true, "restartCount": 0, "started": true,
                    "state": {"running": {"startedAt": "2026-11-22T21:00:00Z"}}, "lastState": {},
                })
            })
            .collect();
        let condition = |t: &str, s: &str| serde_json::json!({"type": t, "status": s, "lastTransitionTime": "2026-11-22T21:00:00Z"});
        let node = |name: &str, memory_pressure: &str| {
            serde_json::json!({
                "kind": "Node", "apiVersion": "v1",
                "metadata": {"name": name, "uid": random_pod_uid(), "labels": {"kubernetes.io/hostname": name}},
                "spec": {"providerID": format!("aws:///eu-west-1a/i-0{}", &hex(&random_bytes::<8>())[..16])},
                "status": {
                    "capacity": {"cpu": "2", "memory": "24Gi", "pods": "29"},
                    "allocatable": {"cpu": "1930m", "memory": "23Gi", "pods": "29"},
                    "conditions": [
                        condition("MemoryPressure", memory_pressure), condition("DiskPressure", "False"),
                        condition("PIDPressure", "False"), condition("Ready", "True"),
                    ],
                },
            })
        };
        let items = serde_json::json!([
            {
                "kind": "Pod", "apiVersion": "v1",
                "metadata": {
                    "name": self.name, "namespace": NAMESPACE, "uid": self.uid, "resourceVersion": "990",
                    "labels": {"app": WORKLOAD, "pod-template-hash": self.replica_set().rsplit_once('-').unwrap().1},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": self.replica_set(),
                                         "uid": random_pod_uid(), "controller": true, "blockOwnerDeletion": true}],
                },
                "spec": {"nodeName": NODE, "restartPolicy": "Always", "containers": containers},
                "status": {
                    "phase": "Running", "qosClass": "Burstable", "podIP": "10.0.0.12", "hostIP": "10.0.0.1",
                    "conditions": [condition("Initialized", "True"), condition("Ready", "True"),
                                   condition("ContainersReady", "True"), condition("PodScheduled", "True")],
                    "containerStatuses": statuses,
                },
            },
            {
                "kind": "Service", "apiVersion": "v1",
                "metadata": {"name": SERVICE, "namespace": NAMESPACE, "uid": random_pod_uid()},
                "spec": {"type": "ClusterIP", "clusterIP": "172.20.10.10", "selector": {"app": WORKLOAD},
                         "ports": [{"port": 80, "targetPort": 8080, "protocol": "TCP"}]},
            },
            {
                "kind": "EndpointSlice", "apiVersion": "discovery.k8s.io/v1",
                "metadata": {"name": format!("{SERVICE}-x7k2p"), "namespace": NAMESPACE,
                             "labels": {"kubernetes.io/service-name": SERVICE}},
                "addressType": "IPv4",
                "endpoints": [{"addresses": ["10.0.0.12"], "conditions": {"ready": true, "serving": true, "terminating": false},
                               "nodeName": NODE,
                               "targetRef": {"kind": "Pod", "name": self.name, "namespace": NAMESPACE, "uid": self.uid}}],
                "ports": [{"name": "", "port": 8080, "protocol": "TCP"}],
            },
            node(NODE, "False"),
            node("ip-10-0-0-2.e2e.internal", "True"),
        ]);
        serde_json::to_string_pretty(&serde_json::json!({
            "kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": ""}, "items": items,
        }))
        .unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// Running the agent

/// A cwagentconfig.json for a local run: cluster [`CLUSTER`], node [`NODE`], stdout, no logs,
/// no telemetry listener; `enhanced` sets `enhanced_container_insights`.
pub fn write_config(dir: &Path, enhanced: bool) -> PathBuf {
    let path = dir.join(if enhanced { "enhanced.json" } else { "standard.json" });
    let text = serde_json::json!({
        "logs": {"metrics_collected": {"kubernetes": {"cluster_name": CLUSTER, "enhanced_container_insights": enhanced}}},
        "kinsight": {"output": "stdout", "node_name": NODE, "logs": {"enabled": false},
                     "telemetry": {"listen_address": null}},
    });
    std::fs::write(&path, text.to_string()).unwrap();
    path
}

/// `kinsight once --interval 3s --pods-file PODS --config CONFIG --output stdout` on the real
/// host (`--host-root /`), in a clean environment; panics unless it exits 0. Returns its
/// datums.
pub fn run_once(config: &Path, pods: &Path) -> Vec<Value> {
    let r = support::run(
        support::kinsight()
            .args(["once", "--interval", "3s", "--output", "stdout", "--pods-file"])
            .arg(pods)
            .arg("--config")
            .arg(config),
    );
    r.assert_code(0);
    r.json_lines().into_iter().filter(|l| l["kind"] == "metric").collect()
}

/// The standard and the enhanced run side by side (both only read the cgroups), and the
/// burner's CPU rate measured by the kernel over the same time (`/proc/<pid>/stat`), in cores.
pub struct Runs {
    pub standard: Vec<Value>,
    pub enhanced: Vec<Value>,
    pub burner_cores: f64,
}

/// How often [`run_both`] measures when the machine keeps the busy process off its core.
const ATTEMPTS: u32 = 3;
/// The premise of the ±15 % check: the kernel accounted at least this many cores to the busy
/// process over the runs.
const PREMISE_CORES: f64 = 0.85;

/// The two runs, measured again (at most [`ATTEMPTS`] times) while their premise fails: the
/// kernel's own accounting shows the busy process got less than [`PREMISE_CORES`] of a core, so
/// the machine, not kinsight, decided the value (on the shared 2-core machine a host-level
/// squeeze did this even with the raised `cpu.shares`). No check is loosened: the caller checks
/// the last runs as they are, and the log shows every attempt.
pub fn run_both(dir: &Path, pod: &PodSpec, burner_pid: u32) -> Runs {
    let mut attempt = 1;
    loop {
        let runs = run_both_once(dir, pod, burner_pid);
        if runs.burner_cores >= PREMISE_CORES || attempt == ATTEMPTS {
            return runs;
        }
        eprintln!(
            "attempt {attempt}: the busy process got {:.3} cores by the kernel's accounting (< {PREMISE_CORES}); \
             the machine is overloaded, measuring again",
            runs.burner_cores
        );
        attempt += 1;
    }
}

fn run_both_once(dir: &Path, pod: &PodSpec, burner_pid: u32) -> Runs {
    let pods = dir.join("pods.json");
    std::fs::write(&pods, pod.list_json()).unwrap();
    let (standard_cfg, enhanced_cfg) = (write_config(dir, false), write_config(dir, true));
    let (c0, t0) = (process_cpu_ns(burner_pid), wall_now());
    let (standard, enhanced) = std::thread::scope(|s| {
        let e = s.spawn(|| run_once(&enhanced_cfg, &pods));
        let st = run_once(&standard_cfg, &pods);
        (st, e.join().unwrap())
    });
    let burner_cores = (process_cpu_ns(burner_pid) - c0) as f64 / t0.elapsed().as_nanos() as f64;
    Runs {
        standard,
        enhanced,
        burner_cores,
    }
}

// ---------------------------------------------------------------------------------------------
// The oracle: the 25 standard metrics with their units and dimension sets

pub const C: &[&str] = &["ClusterName"];
pub const N: &[&str] = &["ClusterName", "InstanceId", "NodeName"];
pub const NS: &[&str] = &["ClusterName", "Namespace"];
pub const P: &[&str] = &["ClusterName", "Namespace", "PodName"];
pub const S: &[&str] = &["ClusterName", "Namespace", "Service"];
pub const FP: &[&str] = &["ClusterName", "FullPodName", "Namespace", "PodName"];
pub const CT: &[&str] = &["ClusterName", "ContainerName", "Namespace", "PodName"];
pub const FCT: &[&str] = &["ClusterName", "ContainerName", "FullPodName", "Namespace", "PodName"];

type Sets = &'static [&'static [&'static str]];

/// The standard set: metric, unit as sent, dimension sets.
pub const STANDARD_25: [(&str, &str, Sets); 25] = [
    ("node_cpu_utilization", "Percent", &[N, C]),
    ("node_memory_utilization", "Percent", &[N, C]),
    ("node_network_total_bytes", "Bytes/Second", &[N, C]),
    ("node_cpu_reserved_capacity", "Percent", &[N, C]),
    ("node_memory_reserved_capacity", "Percent", &[N, C]),
    ("node_number_of_running_pods", "Count", &[N, C]),
    ("node_number_of_running_containers", "Count", &[N, C]),
    ("node_cpu_usage_total", "None", &[C]),
    ("node_cpu_limit", "None", &[C]),
    ("node_memory_working_set", "Bytes", &[C]),
    ("node_memory_limit", "Bytes", &[C]),
    ("node_filesystem_utilization", "Percent", &[N, C]),
    ("pod_cpu_utilization", "Percent", &[P, C, S, NS]),
    ("pod_memory_utilization", "Percent", &[P, C, S, NS]),
    ("pod_network_rx_bytes", "Bytes/Second", &[P, C, S, NS]),
    ("pod_network_tx_bytes", "Bytes/Second", &[P, C, S, NS]),
    ("pod_cpu_utilization_over_pod_limit", "Percent", &[P, C, S, NS]),
    ("pod_memory_utilization_over_pod_limit", "Percent", &[P, C, S, NS]),
    ("pod_cpu_reserved_capacity", "Percent", &[P, C]),
    ("pod_memory_reserved_capacity", "Percent", &[P, C]),
    ("pod_number_of_container_restarts", "Count", &[P]),
    ("service_number_of_running_pods", "Count", &[S, C]),
    ("namespace_number_of_running_pods", "Count", &[NS, C]),
    ("cluster_node_count", "Count", &[C]),
    ("cluster_failed_node_count", "Count", &[C]),
];

/// The dimension names of a datum, sorted.
pub fn dim_names(d: &Value) -> Vec<String> {
    let mut names: Vec<String> = d["dimensions"]
        .as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

/// Which dimension sets were sent per metric name.
pub fn sets_by_metric(datums: &[Value]) -> BTreeMap<String, BTreeSet<Vec<String>>> {
    let mut by: BTreeMap<String, BTreeSet<Vec<String>>> = BTreeMap::new();
    for d in datums {
        by.entry(d["metric_name"].as_str().unwrap().to_string())
            .or_default()
            .insert(dim_names(d));
    }
    by
}

fn owned(sets: &[&[&str]]) -> BTreeSet<Vec<String>> {
    sets.iter()
        .map(|s| s.iter().map(|d| (*d).to_string()).collect())
        .collect()
}

/// Every datum's dimension values are the test's: the cluster, namespace, workload, Service,
/// pod and container names. (Only the test pod is in the pod list, so every Pod-derived datum
/// is about it.)
pub fn check_dimension_values(datums: &[Value], pod: &PodSpec) -> Vec<String> {
    let mut problems = Vec::new();
    for d in datums {
        for (k, v) in d["dimensions"].as_object().unwrap() {
            let ok = match k.as_str() {
                "ClusterName" => v == CLUSTER,
                "Namespace" => v == NAMESPACE,
                "PodName" => v == WORKLOAD,
                "Service" => v == SERVICE,
                "FullPodName" => *v == pod.name,
                "ContainerName" => pod.containers.iter().any(|c| v == c.name),
                _ => false,
            };
            if !ok {
                problems.push(format!("{}: unexpected dimension {k}={v}", d["metric_name"]));
            }
        }
    }
    problems
}

/// The standard run against [`STANDARD_25`], a set being sent only when all its attributes
/// are present: all 25 names present with their unit and exactly their sets, except N, which
/// needs `InstanceId`: a local run has no IMDS, so no `InstanceId`, so no N set — and therefore
/// no datum may carry `InstanceId` at all. No other metric name may appear in standard mode.
/// Panics listing every difference.
pub fn check_standard_table(datums: &[Value], pod: &PodSpec) {
    let by = sets_by_metric(datums);
    let mut problems = check_dimension_values(datums, pod);
    for (metric, unit, sets) in STANDARD_25 {
        let want: Vec<&[&str]> = sets.iter().copied().filter(|s| *s != N).collect();
        let want = owned(&want);
        match by.get(metric) {
            None => problems.push(format!("{metric}: missing (want sets {want:?})")),
            Some(got) if *got != want => problems.push(format!("{metric}: sets {got:?}, want {want:?}")),
            Some(_) => {}
        }
        for d in datums.iter().filter(|d| d["metric_name"] == metric) {
            if d["unit"] != unit {
                problems.push(format!("{metric}: unit {}, want {unit}", d["unit"]));
                break;
            }
        }
    }
    let known: BTreeSet<&str> = STANDARD_25.iter().map(|(m, _, _)| *m).collect();
    for name in by.keys().filter(|n| !known.contains(n.as_str())) {
        problems.push(format!("{name}: not a standard metric, sent in standard mode"));
    }
    if datums.iter().any(|d| d["dimensions"].get("InstanceId").is_some()) {
        problems.push("a datum carries InstanceId, but a local run has none (no IMDS)".to_string());
    }
    assert!(
        problems.is_empty(),
        "standard set — {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// The one value of `metric` for the record matched by `filter`, checking that every set of
/// the same record carries the same value (one record, several sets).
pub fn value_where(datums: &[Value], metric: &str, filter: impl Fn(&Value) -> bool) -> f64 {
    let values: Vec<f64> = datums
        .iter()
        .filter(|d| d["metric_name"] == metric && filter(d))
        .map(|d| d["value"].as_f64().unwrap())
        .collect();
    assert!(!values.is_empty(), "no {metric} datum matches");
    assert!(
        values
            .iter()
            .all(|v| (v - values[0]).abs() <= 1e-9 * values[0].abs().max(1.0)),
        "{metric}: one record, different values per set: {values:?}"
    );
    values[0]
}

/// The value of a metric sent once per record (every set the same).
pub fn value(datums: &[Value], metric: &str) -> f64 {
    value_where(datums, metric, |_| true)
}

/// The value of a container-level metric for container `name` (sets CT and FCT).
pub fn container_value(datums: &[Value], metric: &str, name: &str) -> f64 {
    value_where(datums, metric, |d| d["dimensions"]["ContainerName"] == name)
}

pub fn assert_close(what: &str, got: f64, want: f64, rel: f64) {
    assert!(
        (got - want).abs() <= rel * want.abs(),
        "{what}: {got}, want {want} ± {:.1} %",
        rel * 100.0
    );
}

/// `pod_cpu_utilization` and `pod_memory_utilization` for a pod with one core busy and at
/// least `held` bytes in use (at most `held + slack`), and the fields derived from them:
/// over-limit ratios from the same usage, reserved capacity from the requests, the
/// node counts and reservations from this one pod.
pub fn check_pod_values(datums: &[Value], pod: &PodSpec, host: Host, burner_cores: f64, held: u64, slack: u64) {
    let cpu = value(datums, "pod_cpu_utilization");
    let cores = cpu / 100.0 * f64::from(host.cpus);
    eprintln!(
        "pod_cpu_utilization {cpu:.3} % = {cores:.3} cores of {} (kernel: burner at {burner_cores:.3} cores)",
        host.cpus
    );
    // ±15 % of one core's share of the node (issue #3, Tests).
    assert_close("pod_cpu_utilization", cpu, host.one_core_percent(), 0.15);
    // and the kernel's own accounting of the burner, over a slightly wider window
    assert!(
        (cores - burner_cores).abs() <= 0.15,
        "agent says {cores:.3} cores, /proc/<pid>/stat says {burner_cores:.3}"
    );

    let mem = value(datums, "pod_memory_utilization");
    let mem_bytes = mem / 100.0 * host.mem_total as f64;
    eprintln!("pod_memory_utilization {mem:.4} % = {:.1} MiB", mem_bytes / MIB as f64);
    assert!(
        (held as f64..=(held + slack) as f64).contains(&mem_bytes),
        "pod working set {mem_bytes} bytes, want {held}..={}",
        held + slack
    );

    // Over-limit: the same usage over the limit sums, clamped to node capacity.
    let cpu_limit = (pod.cpu_limits_m() as f64).min(host.millicores());
    let mem_limit = (pod.memory_limits() as f64).min(host.mem_total as f64);
    assert_close(
        "pod_cpu_utilization_over_pod_limit",
        value(datums, "pod_cpu_utilization_over_pod_limit"),
        cpu * host.millicores() / cpu_limit,
        1e-9,
    );
    assert_close(
        "pod_memory_utilization_over_pod_limit",
        value(datums, "pod_memory_utilization_over_pod_limit"),
        mem * host.mem_total as f64 / mem_limit,
        1e-9,
    );
    // Reserved capacity from the requests; the node's is this one pod's.
    let cpu_reserved = (pod.cpu_requests_m() as f64).min(host.millicores()) / host.millicores() * 100.0;
    let mem_reserved = pod.memory_requests() as f64 / host.mem_total as f64 * 100.0;
    assert_close(
        "pod_cpu_reserved_capacity",
        value(datums, "pod_cpu_reserved_capacity"),
        cpu_reserved,
        1e-9,
    );
    assert_close(
        "pod_memory_reserved_capacity",
        value(datums, "pod_memory_reserved_capacity"),
        mem_reserved,
        1e-9,
    );
    assert_close(
        "node_cpu_reserved_capacity",
        value(datums, "node_cpu_reserved_capacity"),
        cpu_reserved,
        1e-9,
    );
    assert_close(
        "node_memory_reserved_capacity",
        value(datums, "node_memory_reserved_capacity"),
        mem_reserved,
        1e-9,
    );
    assert_eq!(value(datums, "node_number_of_running_pods"), 1.0);
    assert_eq!(
        value(datums, "node_number_of_running_containers"),
        pod.containers.len() as f64
    );
    assert_eq!(value(datums, "node_cpu_limit"), host.millicores());
    assert_eq!(value(datums, "node_memory_limit"), host.mem_total as f64);
    // The node's root cgroup includes the pod (a little slack: the files are read one by one).
    let node_millicores = value(datums, "node_cpu_usage_total");
    assert!(
        node_millicores >= 0.95 * cores * 1000.0,
        "node {node_millicores} millicores < pod {cores} cores"
    );
    // First observation of the pod in this process: the per-tick delta is 0 after priming.
    assert_eq!(value(datums, "pod_number_of_container_restarts"), 0.0);
}

/// Cluster records from the list's two Nodes (one under memory pressure), its one
/// running pod and its Service's one ready endpoint.
pub fn check_cluster_values(datums: &[Value]) {
    let mut problems = Vec::new();
    for (metric, want) in [
        ("cluster_node_count", 2.0),
        ("cluster_failed_node_count", 1.0),
        ("namespace_number_of_running_pods", 1.0),
        ("service_number_of_running_pods", 1.0),
    ] {
        let got: Vec<f64> = datums
            .iter()
            .filter(|d| d["metric_name"] == metric)
            .map(|d| d["value"].as_f64().unwrap())
            .collect();
        if got.is_empty() || got.iter().any(|v| *v != want) {
            problems.push(format!("{metric}: {got:?}, want {want}"));
        }
    }
    assert!(problems.is_empty(), "cluster records:\n  {}", problems.join("\n  "));
}

/// Enhanced mode: the container metrics with exactly the sets C, CT and FCT, the pod
/// metrics gaining FP, and the busy container at one core's share.
pub fn check_enhanced(datums: &[Value], pod: &PodSpec, host: Host, busy: &str, holder: Option<(&str, u64, u64)>) {
    let problems = check_dimension_values(datums, pod);
    assert!(problems.is_empty(), "{problems:?}");
    let by = sets_by_metric(datums);
    for metric in ["container_cpu_utilization", "container_memory_utilization"] {
        assert_eq!(
            by.get(metric),
            Some(&owned(&[C, CT, FCT])),
            "{metric}: the enhanced container sets"
        );
        let names: BTreeSet<&str> = datums
            .iter()
            .filter(|d| d["metric_name"] == metric)
            .filter_map(|d| d["dimensions"]["ContainerName"].as_str())
            .collect();
        let want: BTreeSet<&str> = pod.containers.iter().map(|c| c.name).collect();
        assert_eq!(names, want, "{metric}: one record per container");
    }
    let pod_sets = by
        .get("pod_cpu_utilization")
        .expect("pod_cpu_utilization in enhanced mode");
    assert!(
        pod_sets.contains(&FP.iter().map(|d| (*d).to_string()).collect::<Vec<_>>()),
        "pod_cpu_utilization without FP: {pod_sets:?}"
    );
    let busy_cpu = container_value(datums, "container_cpu_utilization", busy);
    eprintln!("container_cpu_utilization {busy} {busy_cpu:.3} %");
    assert_close(
        "container_cpu_utilization (busy container)",
        busy_cpu,
        host.one_core_percent(),
        0.15,
    );
    if let Some((name, held, slack)) = holder {
        let mem = container_value(datums, "container_memory_utilization", name) / 100.0 * host.mem_total as f64;
        assert!(
            (held as f64..=(held + slack) as f64).contains(&mem),
            "container {name} working set {mem} bytes, want {held}..={}",
            held + slack
        );
        let idle = container_value(datums, "container_cpu_utilization", name);
        assert!(idle < 5.0, "the holder is idle, but at {idle} %");
    }
}
