//! Every declared (metric, dimension set) pair is sent, in every mode and for every destination,
//! and nothing undeclared is, on a node with every source present: cgroups and `/proc`, a cluster
//! dump (so this agent is the leader), the runtime's writable layers, the CSI node plugins and
//! the apiserver's `/metrics`. The datums of `put_metric_data`, the `CloudWatchMetrics`
//! directive of `emf`, both of `both`. A record type that only one destination builds (the
//! per-interface pod records once were built only for EMF events, so
//! `pod_interface_network_*_dropped` never reached `PutMetricData`) fails here. The last test
//! holds the same run to the CloudWatch agent's own declarations.

#[path = "support/pairs.rs"]
mod pairs;
#[path = "support/settings.rs"]
mod settings;
#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use pairs::{Pair, datum_pairs};

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use kinsight::host::accel::dcgm::Assignment;
use kinsight::host::accel::efa::{COUNTERS, EfaReading};
use kinsight::host::accel::{GpuScrape, dcgm, gpu_channel, neuron, neuron_channel};
use kinsight::host::{CgroupMode, Root, SystemClock, procfs};
use kinsight::kube::{self, PodIndex};
use kinsight::metrics::Collector;
use kinsight::metrics::collect::Cycle;
use kinsight::metrics::declare;
use kinsight::metrics::record::RecordType;
use kinsight::metrics::sample::Sampler;
use kinsight::metrics::volumes::{self, VolumeScrape};
use kinsight::runtime::{ContainerFs, ImageFs, fs_channel};
use kinsight::telemetry::Telemetry;
use serde_json::Value;

fn collector(root: &Path, enhanced: bool, accelerated: bool, destination: &str) -> (Collector, PodIndex) {
    collector_with(root, (enhanced, accelerated), destination, Telemetry::new())
}

/// `modes`: `enhanced_container_insights` and `accelerated_compute_metrics`.
fn collector_with(root: &Path, modes: (bool, bool), destination: &str, telemetry: Telemetry) -> (Collector, PodIndex) {
    let (enhanced, accelerated) = modes;
    let json = format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c","enhanced_container_insights":{enhanced},
            "accelerated_compute_metrics":{accelerated}}}}}}},
            "kinsight":{{"metrics":{{"destination":"{destination}"}}}}}}"#
    );
    let cfg = settings::load(&json);
    let root = Root::new(root);
    let mode = CgroupMode::detect(&root).unwrap();
    let capacity = procfs::read_capacity(&root).unwrap();
    let index = PodIndex::new(None);
    kube::load_file_now(&root.path("/proc/podlist.json"), None, &index).unwrap();
    // The own Node object, as the apiserver source's Node watch gives it (node_status_*).
    let cond = |kind: &str, status: kube::ConditionStatus| kube::NodeCondition {
        kind: kind.to_string(),
        status,
    };
    index.set_own_node(Some(kube::NodeState {
        name: "node".into(),
        conditions: vec![
            cond("Ready", kube::ConditionStatus::True),
            cond("MemoryPressure", kube::ConditionStatus::False),
            cond("DiskPressure", kube::ConditionStatus::False),
            cond("PIDPressure", kube::ConditionStatus::False),
            cond("NetworkUnavailable", kube::ConditionStatus::False),
        ],
        capacity_pods: Some(110),
        allocatable_pods: Some(110),
        capacity_gpus: Some(4),
        capacity_efas: Some(2),
        // AWS Neuron: an inf2.24xlarge's 12 cores on 6 devices, in an UltraServer.
        capacity_neuroncores: Some(12),
        capacity_neurondevices: Some(6),
        ultraserver: Some("us-0a1b2c".into()),
        ..kube::NodeState::default()
    }));
    let collector = Collector::new(
        Sampler::new(root, mode, telemetry),
        capacity,
        settings::settings(&cfg, "m5.large"),
        Some(index.clone()),
    );
    (collector, index)
}

/// The apiserver's `/metrics` at scrape `n` (1, 2, …): every family the table declares, with
/// the labels of its dimension sets and values that grow with `n` (histograms for Seconds,
/// counters for `_total`, gauges otherwise), and a `503` so that `apiserver_request_total_5xx`
/// has a value.
fn control_plane_text(n: u64) -> String {
    use std::fmt::Write as _;
    let mut out = String::from("# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds 1.7e9\n");
    for d in declare::table(true)
        .iter()
        .filter(|d| d.record == RecordType::ControlPlane)
    {
        if d.metric == "apiserver_request_total_5xx" {
            continue;
        }
        let labels: BTreeSet<&str> = d
            .sets
            .iter()
            .flat_map(|s| s.iter().copied())
            .filter(|l| *l != "ClusterName")
            .collect();
        let codes: &[&str] = if labels.contains("code") {
            &["200", "503"]
        } else {
            &[""]
        };
        let m = d.metric;
        let kind = if d.unit == kinsight::metrics::encode::datum::Unit::Seconds {
            "histogram"
        } else if m.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        let _ = writeln!(out, "# TYPE {m} {kind}");
        for code in codes {
            let l: Vec<String> = labels
                .iter()
                .map(|k| {
                    if *k == "code" {
                        format!("{k}=\"{code}\"")
                    } else {
                        format!("{k}=\"x\"")
                    }
                })
                .collect();
            let l = l.join(",");
            let v = 10 * n;
            if kind == "histogram" {
                let _ = writeln!(out, "{m}_bucket{{{l},le=\"0.1\"}} {v}");
                let _ = writeln!(out, "{m}_bucket{{{l},le=\"+Inf\"}} {v}");
                let _ = writeln!(out, "{m}_sum{{{l}}} {n}");
                let _ = writeln!(out, "{m}_count{{{l}}} {v}");
            } else {
                let _ = writeln!(out, "{m}{{{l}}} {v}");
            }
        }
    }
    out
}

/// The CSI node plugins at scrape `n`: one EBS and one instance-store volume with every field.
fn volume_scrape(n: u64) -> VolumeScrape {
    use std::fmt::Write as _;
    let mut samples = Vec::new();
    for e in &volumes::EXPORTERS {
        let mut text = String::new();
        for (f, _, counter) in e.fields {
            let kind = if *counter { "counter" } else { "gauge" };
            let _ = write!(
                text,
                "# TYPE {p}{f} {kind}\n{p}{f}{{instance_id=\"i-0123456789abcdef0\",volume_id=\"vol-{k}\"}} {v}\n",
                p = e.prefix,
                k = e.kind.as_str(),
                v = 100 * n
            );
        }
        samples.extend(volumes::parse(e, &text));
    }
    VolumeScrape { seq: n, samples }
}

/// AWS Neuron: a core in each container of the first pod too (`pod_neuroncore_*`; it is the one
/// the Service selects), which holds cores 0 and 1 and device 0 of the neuron-monitor fixture
/// ([`neuron_scrape`]). Its (namespace, pod, first container).
fn neuron_pod(list: &mut Value) -> (String, String, String) {
    let pod = &mut list["items"][0];
    for c in pod["spec"]["containers"].as_array_mut().unwrap() {
        c["resources"]["limits"]["aws.amazon.com/neuroncore"] = "1".into();
        c["resources"]["requests"]["aws.amazon.com/neuroncore"] = "1".into();
    }
    let text = |v: &Value| v.as_str().unwrap().to_string();
    (
        text(&pod["metadata"]["namespace"]),
        text(&pod["metadata"]["name"]),
        text(&pod["spec"]["containers"][0]["name"]),
    )
}

/// neuron-monitor's fixture at scrape `n` (its counters grown by `n`), cores 0 and 1 and device 0
/// held by container `holder` (namespace, pod, container), as the kubelet would say.
fn neuron_scrape(n: u64, holder: &(String, String, String)) -> neuron::NeuronScrape {
    let mut s = neuron::parse(include_str!("fixtures/accel/neuron-monitor.txt")).unwrap();
    s.seq = n;
    let a = dcgm::Assignment {
        namespace: holder.0.clone(),
        pod: holder.1.clone(),
        container: Some(holder.2.clone()),
    };
    for c in s.cores.iter_mut().filter(|c| c.core < 2) {
        c.holder = Some(a.clone());
    }
    for d in &mut s.devices {
        d.ecc_events += n as f64;
        if d.device == 0 {
            d.holder = Some(a.clone());
        }
    }
    s.node.execution_errors = s.node.execution_errors.map(|e| e + n as f64);
    s
}

/// Two cycles (the second has rates), the second one returned; accelerated compute metrics on.
fn cycle(enhanced: bool, destination: &str) -> Cycle {
    cycle_with(enhanced, true, destination)
}

fn cycle_with(enhanced: bool, accelerated: bool, destination: &str) -> Cycle {
    let dir = tempfile::tempdir().unwrap();
    let mut node = synthetic::Node::create(dir.path(), 3, 2);
    // A Service over the pods of `ns0`, so that the Service dimension sets have members.
    let list_path = dir.path().join("proc/podlist.json");
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(&list_path).unwrap()).unwrap();
    list["items"].as_array_mut().unwrap().push(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns0"},
        "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": true}
    }));
    // The rest of a cluster dump, so that this agent is the leader for the file and every
    // leader record type is made: Nodes (one a HyperPod node), a ready endpoint, the four
    // workload kinds, a pod no node has taken, and the storage objects.
    let first_pod = list["items"][0]["metadata"]["name"].as_str().unwrap().to_string();
    let first_ns = list["items"][0]["metadata"]["namespace"].as_str().unwrap().to_string();
    let workload = |kind: &str, name: &str| {
        serde_json::json!({"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "namespace": "ns0"},
                           "spec": {"replicas": 2},
                           "status": {"replicas": 2, "readyReplicas": 1, "availableReplicas": 1, "unavailableReplicas": 1,
                                      "desiredNumberScheduled": 2, "numberReady": 1, "numberAvailable": 1,
                                      "numberUnavailable": 1}})
    };
    list["items"].as_array_mut().unwrap().extend([
        serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "node"},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        serde_json::json!({"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": "hyperpod-i-0123456789abcdef1", "labels": {
                               "node.kubernetes.io/instance-type": "ml.p5.48xlarge",
                               "sagemaker.amazonaws.com/node-health-status": "Schedulable"}},
                           "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
        serde_json::json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                           "metadata": {"name": "web-abc", "namespace": first_ns,
                                        "labels": {"kubernetes.io/service-name": "web"}},
                           "addressType": "IPv4",
                           "endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": true},
                                          "targetRef": {"kind": "Pod", "name": first_pod, "namespace": first_ns}}]}),
        workload("Deployment", "web"),
        workload("DaemonSet", "agent"),
        workload("StatefulSet", "db"),
        workload("ReplicaSet", "bare"),
        serde_json::json!({"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": "queued", "namespace": "ns0", "uid": "5f0c8a52-0000-4000-8000-00000000beef"},
                           "spec": {"containers": [{"name": "c"}]},
                           "status": {"phase": "Pending",
                                      "conditions": [{"type": "PodScheduled", "status": "False"}]}}),
        serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                           "metadata": {"name": "data", "namespace": "ns0"}, "status": {"phase": "Bound"}}),
        serde_json::json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv-1"}}),
        serde_json::json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
                           "metadata": {"name": "web", "namespace": "ns0"}}),
    ]);
    // A GPU and an EFA device in each container of the first pod (the DCGM exporter fixture
    // assigns nvidia0 to its container c0); upstream reports pod device fields only when every
    // container has a limit.
    for c in list["items"][0]["spec"]["containers"].as_array_mut().unwrap() {
        c["resources"]["limits"]["nvidia.com/gpu"] = "1".into();
        c["resources"]["requests"]["nvidia.com/gpu"] = "1".into();
        c["resources"]["limits"]["vpc.amazonaws.com/efa"] = "1".into();
        c["resources"]["requests"]["vpc.amazonaws.com/efa"] = "1".into();
    }
    let neuron_pod = neuron_pod(&mut list);
    std::fs::write(&list_path, list.to_string()).unwrap();
    // The host's mount table: the root filesystem (the tree itself), for NodeFS.
    std::fs::create_dir_all(dir.path().join("proc/1")).unwrap();
    std::fs::write(
        dir.path().join("proc/1/mountinfo"),
        "23 1 259:1 / / rw,relatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2\n",
    )
    .unwrap();
    let (c, index) = collector(dir.path(), enhanced, accelerated, destination);
    // The background sources, as their views give them: the container runtime's writable
    // layers (ContainerFS), the CSI node plugins (NodeEBS, NodeInstanceStore) and the
    // apiserver's /metrics (ControlPlane), each scraped once per cycle.
    let (fs_tx, fs_view) = fs_channel();
    let usage = (0..3)
        .flat_map(|p| (0..2).map(move |c| (synthetic::container_id(p, c), 4096 * (p as u64 + 1))))
        .collect();
    fs_tx.send_replace(Arc::new(ContainerFs {
        usage_bytes: usage,
        image_fs: Some(ImageFs {
            capacity_bytes: 100 << 30,
            available_bytes: 60 << 30,
        }),
    }));
    let (volume_tx, volume_view) = volumes::volume_channel();
    // The node's DCGM exporter (ContainerGPU, PodGPU, NodeGPU): two GPUs, one held by the
    // first pod (tests/support/dcgm.rs).
    let (gpu_tx, gpu_view) = gpu_channel();
    let gpus = dcgm::parse(include_str!("fixtures/accel/dcgm-exporter.txt")).unwrap();
    gpu_tx.send_replace(Arc::new(GpuScrape {
        gpus,
        efa: efa_devices(),
    }));
    // The node's neuron-monitor (the *AWSNeuron* records), scraped once per cycle: its counters
    // need two scrapes.
    let (neuron_tx, neuron_view) = neuron_channel();
    let mut c = c
        .with_container_fs(fs_view)
        .with_volumes(volume_view)
        .with_gpus(gpu_view)
        .with_neurons(neuron_view);
    for n in 1..=2 {
        index.set_control_plane(Some(kube::parse_control_plane(&control_plane_text(n), n)));
        volume_tx.send_replace(Arc::new(volume_scrape(n)));
        neuron_tx.send_replace(Arc::new(neuron_scrape(n, &neuron_pod)));
        let cycle = c.collect(&SystemClock);
        if n == 2 {
            return cycle;
        }
        node.advance();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    unreachable!()
}

/// An EFA device held by the first pod's container `c0`, on a known network interface (`NodeEFA`,
/// `PodEFA`, `ContainerEFA`), its rates as the second read of sysfs gives them.
fn efa_devices() -> Vec<EfaReading> {
    vec![EfaReading {
        device: Arc::from("rdmap16s27"),
        interface_id: Some(Arc::from("eni-0efa1234567890abc")),
        rates: [Some(1.0); COUNTERS],
        holders: vec![Assignment {
            namespace: "ns0".into(),
            pod: "web-7d4b9c8f6d-00000".into(),
            container: Some("c0".into()),
        }],
    }]
}

fn directive_pairs(c: &Cycle) -> BTreeSet<Pair> {
    pairs::directive_pairs_of(c, |_| true)
}

fn declared(enhanced: bool, types: &BTreeSet<String>) -> BTreeSet<Pair> {
    declare::table(enhanced)
        .iter()
        .filter(|d| types.contains(&format!("{:?}", d.record)))
        .flat_map(|d| {
            d.sets
                .iter()
                .map(|s| (d.metric.to_string(), s.iter().map(|x| (*x).to_string()).collect()))
        })
        .collect()
}

fn types(c: &Cycle) -> BTreeSet<String> {
    c.records.iter().map(|r| format!("{:?}", r.kind)).collect()
}

#[test]
fn every_declared_pair_is_sent_by_every_destination_in_every_mode() {
    for enhanced in [false, true] {
        let pmd = cycle(enhanced, "put_metric_data");
        let emf = cycle(enhanced, "emf");
        let both = cycle(enhanced, "both");
        // The record types a node with pods produces, whatever the destination.
        let all: BTreeSet<String> = [&pmd, &emf, &both].iter().flat_map(|c| types(c)).collect();
        // Every record type the table declares metrics for is made here: this is a node with
        // every source present.
        let declared_types: BTreeSet<String> = declare::table(enhanced)
            .iter()
            .map(|d| format!("{:?}", d.record))
            .collect();
        let missing_types: Vec<&String> = declared_types.difference(&all).collect();
        assert!(missing_types.is_empty(), "no records of {missing_types:?}: {all:?}");
        let want = declared(enhanced, &all);
        assert!(!want.is_empty());
        let mode = if enhanced { "enhanced" } else { "standard" };
        for (name, sent) in [
            ("put_metric_data", datum_pairs(&pmd)),
            ("emf", directive_pairs(&emf)),
            ("both", datum_pairs(&both)),
        ] {
            let missing: Vec<&Pair> = want.difference(&sent).collect();
            let extra: Vec<&Pair> = sent.difference(&want).collect();
            assert!(
                missing.is_empty() && extra.is_empty(),
                "{mode} / {name}: declared but not sent {missing:#?}; sent but not declared {extra:#?}"
            );
        }
        assert!(directive_pairs(&both).is_empty(), "both: events carry no directive");
    }
}

/// `kinsight_billable_metric_series` counts the distinct (metric, dimension values) of the datums
/// sent over the last hour: here the union of two cycles' datums, counted by hand.
#[test]
#[allow(clippy::float_cmp, reason = "a count, exact in f64")]
fn the_billable_series_gauge_counts_the_distinct_series_sent() {
    use kinsight::telemetry::Name;
    for enhanced in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut node = synthetic::Node::create(dir.path(), 3, 2);
        let t = Telemetry::new();
        let (mut c, _) = collector_with(dir.path(), (enhanced, true), "put_metric_data", t.clone());
        let first = c.collect(&SystemClock);
        node.advance();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = c.collect(&SystemClock);
        let series: BTreeSet<(String, Vec<(String, String)>)> = first
            .datums
            .iter()
            .chain(&second.datums)
            .map(|d| {
                (
                    d.metric_name.to_string(),
                    d.dimensions
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), v.to_string()))
                        .collect(),
                )
            })
            .collect();
        assert!(series.len() > 20, "{}", series.len());
        assert_eq!(
            t.get(Name::BillableMetricSeries, &[]),
            series.len() as f64,
            "enhanced {enhanced}"
        );
    }
}

/// The oracle end to end: what a run on this node with every source present sends — datums with
/// `put_metric_data`, the directive with `emf` — is exactly the CloudWatch agent's own
/// declarations (`tests/fixtures/upstream/declarations.json`, see `tests/metrics_upstream.rs`),
/// apart from the groups `declare::MISSING_ENHANCED` names and two selectors that match no metric
/// upstream either. Selectors match unanchored, as upstream's Go regular expressions.
#[test]
fn a_run_with_every_source_sends_exactly_the_upstream_declarations() {
    let dead = [
        "daemonset_status_number_available",
        "daemonset_status_number_unavailable",
    ];
    for (mode, enhanced, accelerated) in [
        ("standard", false, false),
        ("enhanced", true, false),
        ("enhanced_accelerated", true, true),
    ] {
        let (_, upstream) = pairs::upstream(mode);
        for (destination, sent) in [
            (
                "put_metric_data",
                datum_pairs(&cycle_with(enhanced, accelerated, "put_metric_data")),
            ),
            ("emf", directive_pairs(&cycle_with(enhanced, accelerated, "emf"))),
        ] {
            let unknown: Vec<&Pair> = sent
                .iter()
                .filter(|(m, d)| !upstream.iter().any(|(sel, ud)| m.contains(sel.as_str()) && ud == d))
                .collect();
            assert!(
                unknown.is_empty(),
                "{mode}/{destination}: sent, not declared upstream: {unknown:#?}"
            );
            let unsent: Vec<&Pair> = upstream
                .iter()
                .filter(|(sel, d)| !sent.iter().any(|(m, sd)| m.contains(sel.as_str()) && sd == d))
                .filter(|(sel, _)| !dead.contains(&sel.as_str()))
                .filter(|(sel, _)| {
                    !(enhanced
                        && declare::MISSING_ENHANCED
                            .iter()
                            .any(|g| (accelerated || !g.accelerated) && g.covers(sel)))
                })
                .collect();
            assert!(
                unsent.is_empty(),
                "{mode}/{destination}: declared upstream, not sent: {unsent:#?}"
            );
        }
    }
}
