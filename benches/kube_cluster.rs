//! A simulated cluster for the apiserver benchmarks (`scripts/bench kube-*`): the Kubernetes API
//! test server (`tests/support/kube_api.rs`) filled with generated objects of realistic size and
//! shape, in a process of its own so that the measured agent (`kinsight run`, another process)
//! shares nothing with it.
//!
//! `kube_cluster DIR [key=value ...]`, keys and defaults:
//! - `nodes=5000`, `pods=30` (per node), `services=3000` (each with one `EndpointSlice`),
//!   `deployments=5000` (one `ReplicaSet` each, plus an old, scaled-down one), `daemonsets=100`,
//!   `statefulsets=500`;
//! - `node_pods=N`: the first node, `bench-node`, gets N pods instead of `pods`;
//! - `churn=50`: pod updates per second (a container restart: status and `resourceVersion`),
//!   starting `churn_delay=0` seconds after the cluster is ready; `churn_on=cluster` spreads them
//!   over every node, `churn_on=node` keeps them on `bench-node`;
//! - `control_plane_mb=12`: the size of the apiserver's `/metrics` answer, in MB of Prometheus
//!   text: the families the leader keeps at a large cluster's cardinality, and filler families
//!   it drops (0: an empty answer);
//! - `pods_file=PATH`: also serve the items of a pod list (`kubectl get pods -o json`, such as
//!   the synthetic node's `proc/podlist.json`), as they are: the footprint benchmark's node;
//! - `hold_lease=1`: another identity holds the `kinsight-leader` Lease and renews it every 5 s,
//!   so every agent started against this cluster stays a follower.
//!
//! Writes `DIR/kubeconfig`, then `DIR/ready` once the cluster is in the server, and every
//! second `DIR/stats`: the number of churn updates made, then one line per (verb, resource)
//! with the number of requests the agents made.
//!
//! Watch history is kept for 150 s (the apiserver's watch cache keeps a few minutes) and
//! bookmarks are sent every 60 s, so a watch that reconnects after its timeout resumes.

#![allow(clippy::disallowed_types, reason = "a benchmark server on real threads in real time")]

#[path = "../tests/support/kube_api.rs"]
#[allow(dead_code, reason = "the benchmark uses part of the test server")]
mod kube_api;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use kube_api::KubeApi;
use serde_json::{Value, json};

const NAMESPACES: usize = 40;
const BENCH_NODE: &str = "bench-node";
const HISTORY: Duration = Duration::from_secs(150);

struct Args {
    dir: PathBuf,
    n: BTreeMap<String, String>,
}

impl Args {
    fn get(&self, key: &str, default: usize) -> usize {
        self.n.get(key).map_or(default, |v| v.parse().expect("a number"))
    }
}

fn main() {
    let mut words = std::env::args().skip(1);
    let dir = PathBuf::from(words.next().expect("kube_cluster DIR [key=value ...]"));
    let n = words
        .map(|a| {
            let (k, v) = a.split_once('=').expect("key=value");
            (k.to_string(), v.to_string())
        })
        .collect();
    let args = Args { dir, n };
    let api = KubeApi::start();
    api.set_bookmark_every(Some(Duration::from_mins(1)));
    api.kubeconfig(&args.dir);
    let started = Instant::now();
    let pods = populate(&api, &args);
    if let Some(path) = args.n.get("pods_file") {
        let list: Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("read pods_file")).expect("a pod list");
        for mut item in list["items"].as_array().cloned().unwrap_or_default() {
            if item.get("kind").is_none() {
                item["kind"] = json!("Pod");
                item["apiVersion"] = json!("v1");
            }
            api.apply(item);
        }
    }
    let exposition = control_plane_exposition(args.get("control_plane_mb", 12));
    api.set_control_plane_metrics(&exposition);
    let holder = args.get("hold_lease", 0) == 1;
    if holder {
        renew_lease(&api);
    }
    api.compact_before(api.current_rv());
    eprintln!(
        "kube_cluster: {} nodes, {} pods in {:.1} s on {}",
        args.get("nodes", 5000),
        pods.len(),
        started.elapsed().as_secs_f64(),
        api.url()
    );
    std::fs::write(args.dir.join("ready"), api.url()).expect("write ready");
    serve(&api, &args, &pods, holder);
}

/// Churn, lease renewals, history trimming and the stats file, forever.
fn serve(api: &KubeApi, args: &Args, pods: &[(String, String, String)], holder: bool) {
    let churn = args.get("churn", 50);
    let on_node = args.n.get("churn_on").is_some_and(|v| v == "node");
    let targets: Vec<&(String, String, String)> = pods
        .iter()
        .filter(|(_, _, node)| !on_node || node == BENCH_NODE)
        .collect();
    let churn_from = Instant::now() + Duration::from_secs(args.get("churn_delay", 0) as u64);
    let mut made: u64 = 0;
    let mut history: Vec<(Instant, u64)> = Vec::new();
    let mut last_lease = Instant::now();
    let mut last_stats = Instant::now();
    let tick = Duration::from_millis(20);
    let mut next = Instant::now();
    loop {
        next += tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        let now = Instant::now();
        if churn > 0 && now >= churn_from && !targets.is_empty() {
            // Updates due by now at `churn` per second since the churn began.
            let due = (now - churn_from).as_secs_f64() * churn as f64;
            while (made as f64) < due {
                let (ns, name, _) = targets[usize::try_from(made).unwrap_or(0) % targets.len()];
                restart_container(api, ns, name);
                made += 1;
            }
        }
        if holder && last_lease.elapsed() >= Duration::from_secs(5) {
            renew_lease(api);
            last_lease = Instant::now();
        }
        if last_stats.elapsed() >= Duration::from_secs(1) {
            last_stats = Instant::now();
            history.push((last_stats, api.current_rv()));
            let keep = history.partition_point(|(at, _)| at.elapsed() > HISTORY);
            if keep > 0 {
                api.compact_before(history[keep - 1].1);
                history.drain(..keep);
            }
            write_stats(api, &args.dir, made);
        }
    }
}

fn write_stats(api: &KubeApi, dir: &Path, made: u64) {
    let mut counts: BTreeMap<(String, String), u64> = BTreeMap::new();
    for r in api.requests() {
        *counts.entry((r.verb, r.resource)).or_default() += 1;
    }
    let mut text = format!("{made}\n");
    for ((verb, resource), n) in counts {
        let _ = writeln!(text, "{verb} {resource} {n}");
    }
    let tmp = dir.join("stats.tmp");
    std::fs::write(&tmp, text).expect("write stats");
    std::fs::rename(tmp, dir.join("stats")).expect("rename stats");
}

/// A container restart as the kubelet reports it: the restart count, the last state and the
/// start time change.
fn restart_container(api: &KubeApi, ns: &str, name: &str) {
    let Some(mut pod) = api.get("Pod", ns, name) else {
        return;
    };
    let status = &mut pod["status"]["containerStatuses"][0];
    let restarts = status["restartCount"].as_u64().unwrap_or(0) + 1;
    status["restartCount"] = json!(restarts);
    status["lastState"] = json!({"terminated": {"exitCode": 137, "reason": "OOMKilled",
        "startedAt": "2026-01-15T10:00:05Z", "finishedAt": "2026-01-15T11:00:00Z",
        "containerID": format!("containerd://{:064x}", restarts)}});
    status["state"] = json!({"running": {"startedAt": "2026-01-15T11:00:01Z"}});
    pod["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
    api.apply(pod);
}

fn renew_lease(api: &KubeApi) {
    api.apply(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "kinsight-leader", "namespace": "amazon-cloudwatch"},
        "spec": {"holderIdentity": "other-node/kinsight-other", "leaseDurationSeconds": 60,
                 "acquireTime": "2026-01-15T10:00:00.000000Z",
                 "renewTime": format!("2026-01-15T10:00:00.{:06}Z", api.current_rv() % 1_000_000),
                 "leaseTransitions": 0}
    }));
}

fn node_name(i: usize) -> String {
    if i == 0 {
        BENCH_NODE.to_string()
    } else {
        format!(
            "ip-10-{}-{}-{}.eu-west-1.compute.internal",
            1 + i / 65536,
            (i / 256) % 256,
            i % 256
        )
    }
}

fn namespace(i: usize) -> String {
    format!("team-{:02}", i % NAMESPACES)
}

/// Fills the server; returns every pod as (namespace, name, node). The watch history is
/// trimmed as it goes: each `apply` records an event holding a copy of the object.
/// A `/metrics` answer of about `mb` MB shaped like a large cluster's apiserver: the kept
/// families per resource, verb and code (request durations with the apiserver's 37 buckets), and
/// as many filler families (watch event sizes, Go runtime, etcd bookmarks …) as make up the size.
fn control_plane_exposition(mb: usize) -> String {
    let mut out = String::with_capacity(mb << 20);
    if mb == 0 {
        return out;
    }
    let resources: Vec<String> = (0..80).map(|i| format!("resource{i:02}")).collect();
    let verbs = ["GET", "LIST", "WATCH", "CREATE", "UPDATE", "PATCH", "DELETE", "APPLY"];
    let codes = ["200", "201", "404", "409", "429", "500"];
    let buckets = [
        0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 15.0, 20.0,
        30.0, 45.0, 60.0,
    ];
    let _ = writeln!(
        out,
        "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e+09"
    );
    let _ = writeln!(
        out,
        "# HELP apiserver_request_total [STABLE] Counter of apiserver requests\n# TYPE apiserver_request_total counter"
    );
    for r in &resources {
        for v in verbs {
            for c in codes {
                let _ = writeln!(
                    out,
                    "apiserver_request_total{{code=\"{c}\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"{r}\",scope=\"namespace\",subresource=\"\",verb=\"{v}\",version=\"v1\"}} 12345"
                );
            }
        }
    }
    let _ = writeln!(out, "# TYPE apiserver_request_duration_seconds histogram");
    for r in &resources {
        for v in verbs {
            let labels = format!(
                "component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"{r}\",scope=\"namespace\",subresource=\"\",verb=\"{v}\",version=\"v1\""
            );
            for (i, le) in buckets.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "apiserver_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {}",
                    100 + i
                );
            }
            let _ = writeln!(
                out,
                "apiserver_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} 200"
            );
            let _ = writeln!(out, "apiserver_request_duration_seconds_sum{{{labels}}} 31.5");
            let _ = writeln!(out, "apiserver_request_duration_seconds_count{{{labels}}} 200");
        }
    }
    let _ = writeln!(out, "# TYPE apiserver_storage_objects gauge");
    for r in &resources {
        let _ = writeln!(out, "apiserver_storage_objects{{resource=\"{r}\"}} 5000");
    }
    // Filler: families nobody keeps, until the size is reached.
    let mut family = 0;
    while out.len() < mb << 20 {
        let _ = writeln!(
            out,
            "# HELP apiserver_watch_events_sizes_{family} filler\n# TYPE apiserver_watch_events_sizes_{family} histogram"
        );
        for r in &resources {
            for le in buckets {
                let _ = writeln!(
                    out,
                    "apiserver_watch_events_sizes_{family}_bucket{{group=\"\",kind=\"{r}\",version=\"v1\",le=\"{le}\"}} 7"
                );
            }
        }
        family += 1;
    }
    out
}

fn populate(api: &KubeApi, args: &Args) -> Vec<(String, String, String)> {
    let nodes = args.get("nodes", 5000);
    let per_node = args.get("pods", 30);
    let node_pods = args.get("node_pods", per_node);
    let services = args.get("services", 3000);
    let deployments = args.get("deployments", 5000).max(1);
    let daemonsets = args.get("daemonsets", 100);
    let statefulsets = args.get("statefulsets", 500);
    let mut applied = 0_u64;
    let mut apply = |o: Value| {
        api.apply(o);
        applied += 1;
        if applied.is_multiple_of(5000) {
            api.compact_before(api.current_rv());
        }
    };
    for i in 0..nodes {
        apply(node(&node_name(i), i));
    }
    for d in 0..deployments {
        for obj in workload("Deployment", d) {
            apply(obj);
        }
    }
    for d in 0..daemonsets {
        apply(workload("DaemonSet", d).remove(0));
    }
    for s in 0..statefulsets {
        apply(workload("StatefulSet", s).remove(0));
    }
    // Pods: on each node the first three come from DaemonSets, one in ten of the rest from a
    // StatefulSet, the others from Deployments, round robin; one in fifty has completed
    // (phase Succeeded), so the leader's `status.phase=Running` selector has work to do.
    let mut pods = Vec::new();
    let mut by_deployment: BTreeMap<usize, Vec<(String, String, String)>> = BTreeMap::new();
    let mut seq = 0_usize;
    for i in 0..nodes {
        let node = node_name(i);
        let count = if i == 0 { node_pods } else { per_node };
        for j in 0..count {
            seq += 1;
            let (kind, w) = if j < 3.min(daemonsets) {
                ("DaemonSet", j)
            } else if seq.is_multiple_of(10) && statefulsets > 0 {
                ("StatefulSet", seq / 10 % statefulsets)
            } else {
                ("Deployment", seq % deployments)
            };
            let running = !seq.is_multiple_of(50);
            let p = pod(kind, w, seq, &node, running);
            let key = (
                p["metadata"]["namespace"].as_str().unwrap_or_default().to_string(),
                p["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                node.clone(),
            );
            if kind == "Deployment" && running {
                by_deployment.entry(w).or_default().push(key.clone());
            }
            pods.push(key);
            apply(p);
        }
    }
    for s in 0..services {
        let d = s % deployments;
        let members = by_deployment.get(&d).map_or(&[][..], Vec::as_slice);
        let (svc, slice) = service(d, s, members);
        apply(svc);
        apply(slice);
    }
    pods
}

fn uid(kind: usize, i: usize) -> String {
    format!("{kind:02x}{:06x}-5c1e-4d2b-9a7f-{:012x}", i / 65536, i)
}

fn node(name: &str, i: usize) -> Value {
    let condition = |t: &str, status: &str, reason: &str, message: &str| {
        json!({"type": t, "status": status, "reason": reason, "message": message,
               "lastHeartbeatTime": "2026-01-15T10:59:30Z", "lastTransitionTime": "2026-01-10T08:00:00Z"})
    };
    // A node's image list is most of its size: kubelet reports up to 50 images.
    let images: Vec<Value> = (0..50)
        .map(|k| {
            json!({"names": [
                format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/team-{:02}/service-{k:03}@sha256:{:064x}", k % 7, k * 7919 + i),
                format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/team-{:02}/service-{k:03}:v1.{k}.{}", k % 7, i % 10)],
              "sizeBytes": 25_000_000 + k * 1_234_567})
        })
        .collect();
    let ip = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {
            "name": name, "uid": uid(1, i),
            "labels": {
                "beta.kubernetes.io/arch": "amd64", "beta.kubernetes.io/instance-type": "m5.2xlarge",
                "beta.kubernetes.io/os": "linux", "eks.amazonaws.com/capacityType": "ON_DEMAND",
                "eks.amazonaws.com/nodegroup": format!("ng-{}", i % 20),
                "eks.amazonaws.com/nodegroup-image": "ami-0a1b2c3d4e5f67890",
                "failure-domain.beta.kubernetes.io/region": "eu-west-1",
                "failure-domain.beta.kubernetes.io/zone": format!("eu-west-1{}", ["a", "b", "c"][i % 3]),
                "k8s.io/cloud-provider-aws": "0123456789abcdef0123456789abcdef",
                "kubernetes.io/arch": "amd64", "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m5.2xlarge",
                "topology.kubernetes.io/region": "eu-west-1",
                "topology.kubernetes.io/zone": format!("eu-west-1{}", ["a", "b", "c"][i % 3])
            },
            "annotations": {
                "alpha.kubernetes.io/provided-node-ip": ip,
                "csi.volume.kubernetes.io/nodeid": format!("{{\"ebs.csi.aws.com\":\"i-0{i:016x}\"}}"),
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true"
            },
            "managedFields": [
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-01-10T08:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {},
                    "f:alpha.kubernetes.io/provided-node-ip": {}, "f:volumes.kubernetes.io/controller-managed-attach-detach": {}},
                    "f:labels": {".": {}, "f:beta.kubernetes.io/arch": {}, "f:beta.kubernetes.io/os": {},
                    "f:kubernetes.io/arch": {}, "f:kubernetes.io/hostname": {}, "f:kubernetes.io/os": {}}},
                    "f:spec": {"f:providerID": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-01-15T10:59:30Z",
                 "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {
                    "f:allocatable": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}, "f:pods": {}},
                    "f:capacity": {"f:cpu": {}, "f:ephemeral-storage": {}, "f:memory": {}, "f:pods": {}},
                    "f:conditions": {"k:{\"type\":\"DiskPressure\"}": {"f:lastHeartbeatTime": {}},
                    "k:{\"type\":\"MemoryPressure\"}": {"f:lastHeartbeatTime": {}},
                    "k:{\"type\":\"PIDPressure\"}": {"f:lastHeartbeatTime": {}},
                    "k:{\"type\":\"Ready\"}": {"f:lastHeartbeatTime": {}, "f:lastTransitionTime": {}, "f:message": {}, "f:reason": {}, "f:status": {}}},
                    "f:images": {}, "f:nodeInfo": {"f:bootID": {}, "f:kernelVersion": {}}}}}
            ]
        },
        "spec": {"providerID": format!("aws:///eu-west-1a/i-0{i:016x}")},
        "status": {
            "addresses": [{"type": "InternalIP", "address": ip},
                          {"type": "InternalDNS", "address": name}, {"type": "Hostname", "address": name}],
            "allocatable": {"cpu": "7910m", "ephemeral-storage": "95491281146", "hugepages-1Gi": "0",
                            "hugepages-2Mi": "0", "memory": "31482128Ki", "pods": "58"},
            "capacity": {"cpu": "8", "ephemeral-storage": "104845292Ki", "hugepages-1Gi": "0",
                         "hugepages-2Mi": "0", "memory": "32500000Ki", "pods": "58"},
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
                condition("Ready", "True", "KubeletReady", "kubelet is posting ready status")
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "images": images,
            "nodeInfo": {"architecture": "amd64", "bootID": uid(9, i), "containerRuntimeVersion": "containerd://1.7.27",
                         "kernelVersion": "6.1.132-147.221.amzn2023.x86_64", "kubeProxyVersion": "v1.33.0-eks-4096722",
                         "kubeletVersion": "v1.33.0-eks-4096722", "machineID": format!("ec2{i:029x}"),
                         "operatingSystem": "linux", "osImage": "Amazon Linux 2023.7.20250512",
                         "systemUUID": format!("ec2{i:05x}-0000-0000-0000-000000000000")}
        }
    })
}

/// A workload object and, for a Deployment, its current and old `ReplicaSets`.
fn workload(kind: &str, i: usize) -> Vec<Value> {
    let name = format!("{}-{i}", kind.to_lowercase());
    let ns = namespace(i);
    let template = json!({
        "metadata": {"labels": {"app": name, "app.kubernetes.io/part-of": format!("product-{}", i % 50)},
                     "annotations": {"prometheus.io/scrape": "true"}},
        "spec": {"containers": [{"name": "app", "image": format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/{name}:v1"),
                                 "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}}]}
    });
    let (gv, status) = match kind {
        "DaemonSet" => (
            "apps/v1",
            json!({"currentNumberScheduled": 5000, "desiredNumberScheduled": 5000, "numberAvailable": 5000,
                   "numberMisscheduled": 0, "numberReady": 5000, "observedGeneration": 3, "updatedNumberScheduled": 5000}),
        ),
        _ => (
            "apps/v1",
            json!({"availableReplicas": 26, "readyReplicas": 26, "replicas": 26, "updatedReplicas": 26,
                   "observedGeneration": 4, "conditions": [
                       {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                        "lastUpdateTime": "2026-01-10T08:00:00Z", "lastTransitionTime": "2026-01-10T08:00:00Z",
                        "message": "Deployment has minimum availability."}]}),
        ),
    };
    let object = json!({
        "apiVersion": gv, "kind": kind,
        "metadata": {"name": name, "namespace": ns, "uid": uid(2, i), "generation": 4,
                     "labels": {"app": name},
                     "annotations": {"deployment.kubernetes.io/revision": "2",
                                     "kubectl.kubernetes.io/last-applied-configuration": last_applied(kind, &name, &ns)}},
        "spec": {"replicas": 26, "selector": {"matchLabels": {"app": name}}, "template": template},
        "status": status
    });
    let mut out = vec![object];
    if kind == "Deployment" {
        for (rev, replicas) in [(1, 0), (2, 26)] {
            out.push(json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": format!("{name}-{}", rs_hash(i, rev)), "namespace": ns,
                                 "uid": uid(3 + rev, i),
                                 "labels": {"app": name, "pod-template-hash": rs_hash(i, rev)},
                                 "annotations": {"deployment.kubernetes.io/desired-replicas": "26",
                                                 "deployment.kubernetes.io/max-replicas": "33",
                                                 "deployment.kubernetes.io/revision": rev.to_string()},
                                 "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                                      "uid": uid(2, i), "controller": true, "blockOwnerDeletion": true}]},
                    "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}, "template": template},
                    "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                               "fullyLabeledReplicas": replicas, "observedGeneration": 2}
            }));
        }
    }
    out
}

fn rs_hash(i: usize, rev: usize) -> String {
    format!("{:010x}", (i * 2_654_435_761 + rev * 97) % 0xff_ffff_ffff)
        .chars()
        .map(|c| {
            if c.is_ascii_digit() {
                c
            } else {
                (b'b' + (c as u8 - b'a')) as char
            }
        })
        .collect()
}

/// What `kubectl apply` leaves on an object: its whole manifest as one string, about 1.5 KB.
fn last_applied(kind: &str, name: &str, ns: &str) -> String {
    json!({"apiVersion": "apps/v1", "kind": kind,
           "metadata": {"annotations": {}, "labels": {"app": name, "team": ns}, "name": name, "namespace": ns},
           "spec": {"replicas": 26, "selector": {"matchLabels": {"app": name}},
                    "template": {"metadata": {"labels": {"app": name, "team": ns},
                                              "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}},
                                 "spec": {"serviceAccountName": name,
                                          "containers": [{"name": "app", "image": format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/{name}:v1"),
                                                          "ports": [{"containerPort": 8080, "name": "http"}, {"containerPort": 9090, "name": "metrics"}],
                                                          "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4317"}],
                                                          "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                                                          "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 10},
                                                          "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080}, "periodSeconds": 10}},
                                                         {"name": "envoy", "image": "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.12.1-prod",
                                                          "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}}]}}}})
    .to_string()
}

/// One pod of a workload, with two containers and the fields a real pod carries.
#[expect(clippy::too_many_lines, reason = "one pod's JSON reads best as one literal")]
fn pod(kind: &str, w: usize, seq: usize, node: &str, running: bool) -> Value {
    let owner_name = format!("{}-{w}", kind.to_lowercase());
    let ns = namespace(w);
    let (name, owner_kind, owner, owner_uid) = match kind {
        "Deployment" => {
            let rs = format!("{owner_name}-{}", rs_hash(w, 2));
            (format!("{rs}-{:05x}", seq % 0xfffff), "ReplicaSet", rs, uid(5, w))
        }
        "StatefulSet" => (
            format!("{owner_name}-{seq}"),
            "StatefulSet",
            owner_name.clone(),
            uid(2, w),
        ),
        _ => (
            format!("{owner_name}-{:05x}", seq % 0xfffff),
            "DaemonSet",
            owner_name.clone(),
            uid(2, w),
        ),
    };
    let ip = format!("10.{}.{}.{}", 100 + seq / 65536, (seq / 256) % 256, seq % 256);
    let container_status = |cname: &str, image: &str, k: usize| {
        json!({"name": cname, "image": image,
               "imageID": format!("{}@sha256:{:064x}", image.split(':').next().unwrap_or(image), seq * 31 + k),
               "containerID": format!("containerd://{:064x}", seq * 1_000_003 + k),
               "ready": running, "restartCount": 0, "started": running,
               "state": if running { json!({"running": {"startedAt": "2026-01-15T10:00:05Z"}}) }
                        else { json!({"terminated": {"exitCode": 0, "reason": "Completed",
                                 "startedAt": "2026-01-15T10:00:05Z", "finishedAt": "2026-01-15T10:05:00Z",
                                 "containerID": format!("containerd://{:064x}", seq * 1_000_003 + k)}}) },
               "lastState": {}})
    };
    let app_image = format!("602401143452.dkr.ecr.eu-west-1.amazonaws.com/{owner_name}:v1");
    let envoy_image = "public.ecr.aws/appmesh/aws-appmesh-envoy:v1.29.12.1-prod";
    let cond = |t: &str| {
        json!({"type": t, "status": if running || t == "PodScheduled" { "True" } else { "False" },
               "lastProbeTime": null, "lastTransitionTime": "2026-01-15T10:00:06Z"})
    };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "generateName": format!("{owner}-"), "namespace": ns, "uid": uid(7, seq),
            "creationTimestamp": "2026-01-15T10:00:00Z",
            "labels": {"app": owner_name, "app.kubernetes.io/name": owner_name,
                       "app.kubernetes.io/part-of": format!("product-{}", w % 50),
                       "app.kubernetes.io/version": "v1", "pod-template-hash": rs_hash(w, 2),
                       "security.istio.io/tlsMode": "istio", "team": ns},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration": last_applied(kind, &owner_name, &ns),
                "kubectl.kubernetes.io/restartedAt": "2026-01-14T09:12:44Z",
                "prometheus.io/port": "9090", "prometheus.io/scrape": "true"
            },
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner_kind, "name": owner, "uid": owner_uid,
                                 "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [
                {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                 "time": "2026-01-15T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": {
                    "f:metadata": {"f:annotations": {".": {}, "f:kubectl.kubernetes.io/restartedAt": {},
                        "f:prometheus.io/port": {}, "f:prometheus.io/scrape": {}},
                        "f:generateName": {}, "f:labels": {".": {}, "f:app": {}, "f:pod-template-hash": {}, "f:team": {}},
                        "f:ownerReferences": {".": {}, "k:{\"uid\":\"x\"}": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:env": {}, "f:image": {},
                        "f:imagePullPolicy": {}, "f:livenessProbe": {}, "f:name": {}, "f:ports": {},
                        "f:readinessProbe": {}, "f:resources": {}, "f:terminationMessagePath": {}},
                        "k:{\"name\":\"envoy\"}": {".": {}, "f:image": {}, "f:name": {}, "f:resources": {}}},
                        "f:dnsPolicy": {}, "f:enableServiceLinks": {}, "f:restartPolicy": {}, "f:schedulerName": {},
                        "f:securityContext": {}, "f:serviceAccount": {}, "f:serviceAccountName": {},
                        "f:terminationGracePeriodSeconds": {}, "f:volumes": {}}}},
                {"manager": "kubelet", "operation": "Update", "apiVersion": "v1", "time": "2026-01-15T10:00:06Z",
                 "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {
                    "f:conditions": {"k:{\"type\":\"ContainersReady\"}": {".": {}, "f:lastProbeTime": {},
                        "f:lastTransitionTime": {}, "f:status": {}, "f:type": {}},
                        "k:{\"type\":\"Initialized\"}": {".": {}, "f:status": {}},
                        "k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}}},
                    "f:containerStatuses": {}, "f:hostIP": {}, "f:hostIPs": {}, "f:phase": {}, "f:podIP": {},
                    "f:podIPs": {".": {}, "k:{\"ip\":\"x\"}": {".": {}, "f:ip": {}}}, "f:startTime": {}}}}
            ]
        },
        "spec": {
            "containers": [
                {"name": "app", "image": app_image, "imagePullPolicy": "IfNotPresent",
                 "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"},
                           {"containerPort": 9090, "name": "metrics", "protocol": "TCP"}],
                 "env": [{"name": "LOG_LEVEL", "value": "info"},
                         {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel-collector.observability:4317"},
                         {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.name"}}}],
                 "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
                 "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
                                    "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
                 "livenessProbe": {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"}, "periodSeconds": 10,
                                   "failureThreshold": 3, "successThreshold": 1, "timeoutSeconds": 1},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access", "readOnly": true}]},
                {"name": "envoy", "image": envoy_image, "imagePullPolicy": "IfNotPresent",
                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                 "volumeMounts": [{"mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "name": "kube-api-access", "readOnly": true}]}
            ],
            "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": node,
            "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
            "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccount": owner_name,
            "serviceAccountName": owner_name, "terminationGracePeriodSeconds": 30,
            "tolerations": [{"effect": "NoExecute", "key": "node.kubernetes.io/not-ready", "operator": "Exists", "tolerationSeconds": 300},
                            {"effect": "NoExecute", "key": "node.kubernetes.io/unreachable", "operator": "Exists", "tolerationSeconds": 300}],
            "volumes": [{"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"items": [{"key": "ca.crt", "path": "ca.crt"}], "name": "kube-root-ca.crt"}},
                {"downwardAPI": {"items": [{"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}, "path": "namespace"}]}}]}}]
        },
        "status": {
            "phase": if running { "Running" } else { "Succeeded" },
            "conditions": [cond("PodReadyToStartContainers"), cond("Initialized"), cond("Ready"),
                           cond("ContainersReady"), cond("PodScheduled")],
            "hostIP": "10.1.0.1", "hostIPs": [{"ip": "10.1.0.1"}], "podIP": ip, "podIPs": [{"ip": ip}],
            "qosClass": "Burstable", "startTime": "2026-01-15T10:00:00Z",
            "containerStatuses": [container_status("app", &app_image, 0), container_status("envoy", envoy_image, 1)]
        }
    })
}

/// A Service selecting a Deployment's pods and its `EndpointSlice` listing them.
fn service(d: usize, s: usize, members: &[(String, String, String)]) -> (Value, Value) {
    let app = format!("deployment-{d}");
    let name = format!("svc-{s}");
    let ns = namespace(d);
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "uid": uid(11, s), "labels": {"app": app},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": last_applied("Service", &name, &ns)}},
        "spec": {"clusterIP": format!("172.20.{}.{}", s / 256, s % 256), "clusterIPs": [format!("172.20.{}.{}", s / 256, s % 256)],
                 "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "http", "port": 80, "protocol": "TCP", "targetPort": 8080}],
                 "selector": {"app": app}, "sessionAffinity": "None", "type": "ClusterIP"},
        "status": {"loadBalancer": {}}
    });
    let endpoints: Vec<Value> = members
        .iter()
        .enumerate()
        .map(|(k, (pns, pname, node))| {
            json!({"addresses": [format!("10.{}.{}.{}", 100 + k / 65536, (k / 256) % 256, k % 256)],
                   "conditions": {"ready": true, "serving": true, "terminating": false},
                   "nodeName": node, "zone": "eu-west-1a",
                   "targetRef": {"kind": "Pod", "name": pname, "namespace": pns, "uid": uid(7, k)}})
        })
        .collect();
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-x7k2p"), "namespace": ns, "generateName": format!("{name}-"),
                     "uid": uid(12, s),
                     "labels": {"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                                "kubernetes.io/service-name": name},
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": name, "uid": uid(11, s),
                                          "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]
    });
    (svc, slice)
}
