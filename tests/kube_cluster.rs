//! The leader's cluster records from a cluster dump in the `file` source: the oracle fixture
//! (`tests/fixtures/kube/cluster-oracle.json`: this node's pods A–D, pods E, F, G of other nodes,
//! four Nodes, three Services and their `EndpointSlice`s) gives exactly the hand-worked values
//! of metrics #22–#25 and their datum counts, while the pod index keeps this node's pods A–D
//! only. A plain pod list gives no cluster view. The running source picks up
//! a changed dump, and v1 Endpoints give the same counts as `EndpointSlice`s.
//!
//! No test sleeps for a fixed time: the reload test waits on a condition, with a 10 s limit.

#![allow(clippy::float_cmp, reason = "counts are integers, exact in f64")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use kinsight::kube::{ClusterState, FileSource, NodeScope, PodIndex, load_file_scoped};
use kinsight::metrics::compute::cluster::cluster_records;
use kinsight::metrics::encode::datum;
use kinsight::metrics::encode::emf::{self, EmfOptions};
use kinsight::metrics::{Record, RecordType};
use kinsight::telemetry::{Name, Telemetry};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";
const CLUSTER_ORACLE: &str = "tests/fixtures/kube/cluster-oracle.json";
const PODLIST_ORACLE: &str = "tests/fixtures/kube/podlist-oracle.json";
/// Pods A–D, the pods of this node.
const THIS_NODE_UIDS: [&str; 4] = [
    "3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718",
    "9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e",
    "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6",
    "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9",
];
/// The oracle's second tick, t1 (ms since the epoch).
const T1_MS: i64 = 1_768_471_290_000;
const LIMIT: Duration = Duration::from_secs(10);

fn dump_scope() -> NodeScope {
    NodeScope::NodeOfClusterDump(NODE.to_string())
}

fn load(path: &Path, scope: &NodeScope) -> PodIndex {
    let index = PodIndex::new(None);
    load_file_scoped(path, scope, &index).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    index
}

/// The Node record of t1, as the collector builds it (the attributes that matter here).
fn node_record() -> Record {
    let mut n = Record::new(RecordType::Node, T1_MS);
    n.set_attribute("ClusterName", "demo");
    n.set_attribute("NodeName", NODE);
    n.set_attribute("InstanceId", "i-0abc123def4567890");
    n.set_attribute("InstanceType", "c5.xlarge");
    n
}

/// `(Type, Namespace, Service)` → the one metric of that record, over all cluster records.
fn values(cluster: &ClusterState) -> BTreeMap<(String, String, String), (String, f64)> {
    let mut out = BTreeMap::new();
    for r in cluster_records(cluster, &node_record(), false, false) {
        let key = (
            r.kind.as_str().to_string(),
            r.attribute("Namespace").unwrap_or("").to_string(),
            r.attribute("Service").unwrap_or("").to_string(),
        );
        for (field, value) in &r.fields {
            if *field != "cluster_number_of_running_pods" && *field != "cluster_failed_node_count" {
                assert!(
                    out.insert(key.clone(), ((*field).to_string(), *value)).is_none(),
                    "{key:?} twice"
                );
            }
        }
    }
    out
}

fn row(kind: &str, ns: &str, svc: &str, metric: &str, value: f64) -> ((String, String, String), (String, f64)) {
    ((kind.into(), ns.into(), svc.into()), (metric.into(), value))
}

#[test]
fn the_oracle_dump_gives_the_section_19_4_values_of_metrics_22_to_25() {
    let index = load(Path::new(CLUSTER_ORACLE), &dump_scope());
    let snapshot = index.snapshot();
    let cluster = snapshot.cluster().expect("a List with Node items is a cluster dump");

    // #24, #25: four Nodes; nodes 3 (DiskPressure True) and 4 (all Unknown) failed, node 2's
    // `Ready False` ignored.
    assert_eq!(cluster.node_count(), 4);
    assert_eq!(cluster.failed_node_count(), 2);
    let failed: Vec<&str> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_failed())
        .map(|n| n.name.as_str())
        .collect();
    assert_eq!(
        failed,
        [
            "ip-10-0-3-45.eu-west-1.compute.internal",
            "ip-10-0-4-56.eu-west-1.compute.internal"
        ]
    );

    // #22, #23, one record each; no default/kubernetes (no targetRef), no ops (D Succeeded).
    let got = values(cluster);
    let want = BTreeMap::from([
        row("Cluster", "", "", "cluster_node_count", 4.0),
        row(
            "ClusterNamespace",
            "default",
            "",
            "namespace_number_of_running_pods",
            1.0,
        ),
        row(
            "ClusterNamespace",
            "kube-system",
            "",
            "namespace_number_of_running_pods",
            2.0,
        ),
        row("ClusterNamespace", "shop", "", "namespace_number_of_running_pods", 2.0),
        row(
            "ClusterService",
            "kube-system",
            "kube-dns",
            "service_number_of_running_pods",
            1.0,
        ),
        row(
            "ClusterService",
            "shop",
            "web-svc",
            "service_number_of_running_pods",
            2.0,
        ),
    ]);
    assert_eq!(got, want);

    let records = cluster_records(cluster, &node_record(), false, false);
    let c = &records[0];
    assert_eq!(c.kind, RecordType::Cluster);
    assert_eq!(c.field("cluster_failed_node_count"), Some(2.0));
    assert_eq!(
        c.field("cluster_number_of_running_pods"),
        Some(5.0),
        "Σ namespace counts: 1 + 2 + 2"
    );
    for r in &records {
        assert_eq!(r.timestamp_ms, T1_MS, "the tick's wall-clock time");
        assert_eq!(r.attribute("ClusterName"), Some("demo"));
        assert_eq!(r.attribute("NodeName"), Some(NODE), "the leader's node");
        assert_eq!(r.attribute("InstanceId"), None, "no instance attributes on Cluster*");
    }
}

#[test]
fn the_pod_index_keeps_only_this_nodes_pods_of_a_dump() {
    let index = load(Path::new(CLUSTER_ORACLE), &dump_scope());
    let mut uids: Vec<String> = index.pods().iter().map(|p| p.uid.clone()).collect();
    uids.sort();
    let mut want = THIS_NODE_UIDS.map(String::from).to_vec();
    want.sort();
    assert_eq!(uids, want, "E, F, G run on other nodes");
    // The node's #4, #6, #7 (CPU reserved capacity, running pods, running containers) are
    // unchanged by the pods of other nodes.
    let totals = index.node_totals();
    assert_eq!((totals.running_pods, totals.running_containers), (2, 3));
    assert_eq!(totals.cpu_request_millicores, 600.0);
    assert_eq!(totals.memory_request_bytes, 671_088_640.0);
    // The Pod `Service` attribute still comes from the Services' selectors.
    let a = index.by_uid(THIS_NODE_UIDS[0]).unwrap();
    assert_eq!(a.service.as_deref(), Some("web-svc"));
    let b = index.by_uid(THIS_NODE_UIDS[1]).unwrap();
    assert_eq!(b.service, None);

    // Explicit scopes: every pod, or a node the dump does not list (no pods, still a cluster).
    let all = load(Path::new(CLUSTER_ORACLE), &NodeScope::AllPods);
    assert_eq!(all.pods().len(), 7);
    let elsewhere = load(
        Path::new(CLUSTER_ORACLE),
        &NodeScope::NodeOfClusterDump("laptop".into()),
    );
    assert_eq!(elsewhere.pods().len(), 0);
    assert_eq!(elsewhere.snapshot().cluster().map(ClusterState::node_count), Some(4));
}

#[test]
fn a_plain_pod_list_has_no_cluster_view_and_keeps_every_pod() {
    // The oracle pod list holds Pods and Services but no Node: no cluster records.
    let index = load(Path::new(PODLIST_ORACLE), &dump_scope());
    assert!(index.snapshot().cluster().is_none());
    assert_eq!(index.pods().len(), 4);
    // A plain list replays one node whatever the configured node name is.
    let other = load(
        Path::new(PODLIST_ORACLE),
        &NodeScope::NodeOfClusterDump("laptop".into()),
    );
    assert_eq!(other.pods().len(), 4);
    assert!(other.snapshot().cluster().is_none());
}

#[test]
fn datums_of_the_cluster_records_match_section_19_6() {
    let index = load(Path::new(CLUSTER_ORACLE), &dump_scope());
    let snapshot = index.snapshot();
    let records = cluster_records(snapshot.cluster().unwrap(), &node_record(), false, false);
    let mut datums = Vec::new();
    for r in &records {
        datum::encode(r, false, &mut datums);
    }
    let count = |metric: &str| datums.iter().filter(|d| d.metric_name == metric).count();
    // ClusterService 2 × 2, ClusterNamespace 3 × 2, Cluster 2: 12 of the 74 at t1.
    assert_eq!(count("service_number_of_running_pods"), 4);
    assert_eq!(count("namespace_number_of_running_pods"), 6);
    assert_eq!(count("cluster_node_count") + count("cluster_failed_node_count"), 2);
    assert_eq!(
        datums.len(),
        12,
        "cluster_number_of_running_pods is declared only in [E]"
    );
    let sets: std::collections::BTreeSet<(&str, Vec<&str>)> = datums
        .iter()
        .map(|d| (d.metric_name, d.dimensions.iter().map(|(k, _)| *k).collect()))
        .collect();
    let want: std::collections::BTreeSet<(&str, Vec<&str>)> = [
        (
            "service_number_of_running_pods",
            vec!["ClusterName", "Namespace", "Service"],
        ),
        ("service_number_of_running_pods", vec!["ClusterName"]),
        ("namespace_number_of_running_pods", vec!["ClusterName", "Namespace"]),
        ("namespace_number_of_running_pods", vec!["ClusterName"]),
        ("cluster_node_count", vec!["ClusterName"]),
        ("cluster_failed_node_count", vec!["ClusterName"]),
    ]
    .into_iter()
    .collect();
    assert_eq!(sets, want, "exactly the S, NS and C sets of metrics #22–#25");
    let web = datums
        .iter()
        .find(|d| {
            d.metric_name == "service_number_of_running_pods" && d.dimensions.iter().any(|(_, v)| &**v == "web-svc")
        })
        .unwrap();
    let web_dims: Vec<(&str, String)> = web.dimensions.iter().map(|(k, v)| (*k, v.to_string())).collect();
    assert_eq!(
        web_dims,
        vec![
            ("ClusterName", "demo".to_string()),
            ("Namespace", "shop".to_string()),
            ("Service", "web-svc".to_string())
        ]
    );
    assert_eq!((web.value, web.unit.as_str(), web.timestamp_ms), (2.0, "Count", T1_MS));
}

#[test]
fn performance_events_of_the_cluster_records() {
    let index = load(Path::new(CLUSTER_ORACLE), &dump_scope());
    let snapshot = index.snapshot();
    let records = cluster_records(snapshot.cluster().unwrap(), &node_record(), true, false);
    let mut events = Vec::new();
    let opts = EmfOptions {
        with_directive: true,
        enhanced: false,
    };
    for r in &records {
        emf::encode(r, opts, &mut events);
    }
    assert_eq!(events.len(), 6, "Cluster, three namespaces, two Services");
    for e in &events {
        assert_eq!(&*e.group, "/aws/containerinsights/demo/performance");
        assert_eq!(&*e.stream, NODE, "the leader's log stream");
    }
    let message = |i: usize| -> Value { serde_json::from_str(&events[i].message.text()).unwrap() };
    let cluster = message(0);
    assert_eq!(cluster["Type"], "Cluster");
    assert_eq!(
        (&cluster["cluster_node_count"], &cluster["cluster_failed_node_count"]),
        (&json!(4), &json!(2))
    );
    assert_eq!(cluster["cluster_number_of_running_pods"], json!(5));
    assert!(cluster.get("kubernetes").is_none(), "Cluster has no kubernetes object");
    let web = message(5);
    assert_eq!(web["Type"], "ClusterService");
    assert_eq!(
        (&web["Service"], &web["Namespace"]),
        (&json!("web-svc"), &json!("shop"))
    );
    assert_eq!(web["service_number_of_running_pods"], json!(2));
    assert_eq!(
        web["kubernetes"],
        json!({"namespace_name": "shop", "service_name": "web-svc"})
    );
    assert_eq!(
        web["CloudWatchMetrics"][0]["Dimensions"],
        json!([["ClusterName", "Namespace", "Service"], ["ClusterName"]])
    );
    let shop = message(3);
    assert_eq!(
        (&shop["Type"], &shop["Namespace"]),
        (&json!("ClusterNamespace"), &json!("shop"))
    );
    assert_eq!(shop["kubernetes"], json!({"namespace_name": "shop"}));
    assert_eq!(shop["Timestamp"], json!(T1_MS.to_string()));
}

#[test]
fn v1_endpoints_give_the_same_service_counts_as_endpoint_slices() {
    let text = std::fs::read_to_string(CLUSTER_ORACLE).unwrap();
    let mut dump: Value = serde_json::from_str(&text).unwrap();
    let items = dump["items"].as_array_mut().unwrap();
    items.retain(|i| i["kind"] != "EndpointSlice");
    let address =
        |ip: &str, pod: &str, ns: &str| json!({"ip": ip, "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}});
    items.push(
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web-svc", "namespace": "shop"},
        "subsets": [{"addresses": [address("10.0.1.101", "web-7d4b9c8f5d-x7k2p", "shop"),
                                   address("10.0.2.50", "web-7d4b9c8f5d-m9n8b", "shop")],
                     "ports": [{"port": 8080, "protocol": "TCP"}]}]}),
    );
    items.push(
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "subsets": [{"addresses": [address("10.0.2.60", "coredns-6b9d8c7f5d-2xkzl", "kube-system")],
                     "notReadyAddresses": [address("10.0.3.70", "coredns-6b9d8c7f5d-9vrtw", "kube-system")],
                     "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}]}),
    );
    items.push(
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes", "namespace": "default"},
        "subsets": [{"addresses": [{"ip": "10.0.0.11"}, {"ip": "10.0.0.12"}, {"ip": "10.0.0.13"}],
                     "ports": [{"name": "https", "port": 443, "protocol": "TCP"}]}]}),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dump.json");
    std::fs::write(&path, serde_json::to_vec(&dump).unwrap()).unwrap();

    let from_endpoints = load(&path, &dump_scope());
    let from_slices = load(Path::new(CLUSTER_ORACLE), &dump_scope());
    let endpoints = from_endpoints.snapshot();
    let slices = from_slices.snapshot();
    assert_eq!(endpoints.cluster(), slices.cluster());
    assert_eq!(endpoints.cluster().unwrap().service_ready_pods.len(), 2);
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after [`LIMIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "waited {LIMIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_running_source_follows_a_changed_dump_and_a_switch_to_a_plain_list() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("cluster.json");
    let original = std::fs::read(CLUSTER_ORACLE).unwrap();
    write_atomically(&path, &original);

    let index = PodIndex::new(None);
    let telemetry = Telemetry::new();
    let mut source = FileSource::new(path.clone(), None, index.clone(), telemetry.clone()).with_scope(dump_scope());
    source.poll_interval = Duration::from_millis(50);
    source.rescan_interval = Duration::from_hours(1);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(cancel.clone()));

    let failed = |index: &PodIndex| index.snapshot().cluster().map(ClusterState::failed_node_count);
    until("the first load", || failed(&index) == Some(2)).await;
    assert_eq!(index.pods().len(), 4);

    // Node 3's disk pressure clears.
    let mut dump: Value = serde_json::from_slice(&original).unwrap();
    for condition in dump["items"][2]["status"]["conditions"].as_array_mut().unwrap() {
        if condition["type"] == "DiskPressure" {
            condition["status"] = json!("False");
        }
    }
    write_atomically(&path, &serde_json::to_vec(&dump).unwrap());
    until("the changed dump", || failed(&index) == Some(1)).await;

    // A plain pod list: the cluster view goes away, every pod of the list is this node's.
    write_atomically(&path, &std::fs::read(PODLIST_ORACLE).unwrap());
    until("the plain list", || index.snapshot().cluster().is_none()).await;
    assert_eq!(index.pods().len(), 4);
    assert_eq!(telemetry.get(Name::PodIndexReloads, &[("result", "applied")]), 3.0);
    assert_eq!(
        telemetry.get(Name::PodIndexWarnings, &[("kind", "item_ignored")]),
        0.0,
        "Nodes and EndpointSlices are read, not ignored"
    );

    cancel.cancel();
    task.await.unwrap();
}
