//! Unit tests over whole pod lists: the hand-worked oracle lists
//! (`tests/fixtures/kube/podlist-oracle*.json`, pods A–D), static pods, node
//! filtering, and the tolerance of the parser.

#![allow(
    clippy::float_cmp,
    reason = "quantities and sums of the oracle are integers, exact in f64"
)]

use std::sync::Arc;
use std::time::Duration;

use super::*;

const ORACLE_T0: &str = include_str!("../../tests/fixtures/kube/podlist-oracle.json");
const ORACLE_T1: &str = include_str!("../../tests/fixtures/kube/podlist-oracle-t1.json");
const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";

fn x64(c: char) -> String {
    c.to_string().repeat(64)
}

fn oracle_index(text: &str) -> PodIndex {
    let (pods, warnings) = parse_pod_list(text).unwrap();
    assert_eq!(warnings, vec![]);
    let index = PodIndex::new(Some(NODE.to_string()));
    index.replace(pods);
    index
}

fn pod_by_name(index: &PodIndex, name: &str) -> Arc<PodInfo> {
    index.pods().into_iter().find(|p| p.name == name).unwrap()
}

#[test]
fn oracle_node_totals() {
    let index = oracle_index(ORACLE_T0);
    assert!(index.is_synced());
    assert_eq!(index.pods().len(), 4);
    let t = index.node_totals();
    assert_eq!(t.running_pods, 2, "A, B");
    assert_eq!(t.running_containers, 3, "A app, sidecar; B shell");
    assert_eq!(
        t.cpu_request_millicores, 600.0,
        "A 300 + C 300 (Pending), D Succeeded, init ignored"
    );
    assert_eq!(t.memory_request_bytes, 671_088_640.0);
    // Each pod's sum is clamped to the node's capacity first.
    let small = PodResourceCeiling {
        cpu_millicores: 200.0,
        memory_bytes: 100_000_000.0,
    };
    let c = index.snapshot().node_totals_clamped(&small);
    assert_eq!(c.cpu_request_millicores, 400.0);
    assert_eq!(c.memory_request_bytes, 200_000_000.0);
}

#[test]
fn oracle_pod_a() {
    let index = oracle_index(ORACLE_T0);
    let a = index.by_uid("3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718").unwrap();
    assert_eq!(a.name, "web-7d4b9c8f5d-x7k2p");
    assert_eq!(
        (a.namespace.as_str(), a.phase, a.pod_status()),
        ("shop", PodPhase::Running, "Running")
    );
    assert_eq!(a.pod_name(false), "web");
    assert_eq!(a.pod_name(true), "web");
    assert_eq!(
        a.owners,
        vec![Owner {
            kind: "Deployment".into(),
            name: "web".into()
        }]
    );
    assert_eq!(a.service.as_deref(), Some("web-svc"));
    assert_eq!(a.ready, Some(ConditionStatus::True));
    assert_eq!(
        a.labels.get("pod-template-hash").map(String::as_str),
        Some("7d4b9c8f5d")
    );
    assert_eq!((a.number_of_containers(), a.number_of_running_containers()), (2, 2));
    assert_eq!(a.restart_count_sum(), 2);
    assert_eq!(
        a.resources(None),
        PodResources {
            cpu_request_millicores: Some(300.0),
            cpu_limit_millicores: Some(600.0),
            memory_request_bytes: Some(335_544_320.0),
            memory_limit_bytes: Some(671_088_640.0),
        }
    );
    let app = &a.containers[0];
    assert_eq!(app.name, "app");
    assert_eq!(app.id.as_deref(), Some(x64('a').as_str()));
    assert_eq!(app.runtime.as_deref(), Some("containerd"));
    assert_eq!((app.restart_count, app.state.as_status()), (2, Some("Running")));
    assert_eq!(
        (app.cpu_request_millicores, app.cpu_limit_millicores),
        (Some(250.0), Some(500.0))
    );
    assert_eq!(
        (app.memory_request_bytes, app.memory_limit_bytes),
        (Some(268_435_456.0), Some(536_870_912.0))
    );
    // The init container resolves by id but carries no resources (its requests never count).
    let init = &a.init_containers[0];
    assert_eq!((init.name.as_str(), init.is_init), ("init-db", true));
    assert_eq!(init.state.as_status(), Some("Terminated"));
    assert_eq!(init.state.reason(), Some("Completed"));
    assert_eq!((init.cpu_request_millicores, init.memory_request_bytes), (None, None));
}

#[test]
fn oracle_pods_b_c_d() {
    let index = oracle_index(ORACLE_T0);
    let b = pod_by_name(&index, "debug");
    assert_eq!(
        (b.pod_name(false), b.owners.len(), b.service.as_deref()),
        ("debug", 0, None)
    );
    assert_eq!(
        b.resources(None),
        PodResources::default(),
        "BestEffort: nothing emitted"
    );
    let c = pod_by_name(&index, "web-7d4b9c8f5d-p5q6r");
    assert_eq!(c.phase, PodPhase::Pending);
    assert_eq!(c.service, None, "not Ready");
    assert_eq!((c.number_of_containers(), c.number_of_running_containers()), (2, 0));
    assert_eq!(c.containers[0].state.reason(), Some("PodInitializing"));
    assert_eq!(c.containers[0].id, None);
    let d = pod_by_name(&index, "report-28391040-7xkqz");
    assert_eq!((d.pod_name(false), d.pod_name(true)), ("report", "report-28391040"));
    assert_eq!(d.pod_owners(false)[0].name, "report");
    assert_eq!(d.pod_owners(true)[0].name, "report-28391040");
    assert_eq!(d.resources(None).cpu_request_millicores, Some(2000.0));
}

#[test]
fn container_ids_resolve_to_pod_and_index() {
    let index = oracle_index(ORACLE_T0);
    let (a, i) = index.by_container_id(&x64('a')).unwrap();
    assert_eq!((a.name.as_str(), i), ("web-7d4b9c8f5d-x7k2p", 0));
    let (_, i) = index.by_container_id(&x64('b')).unwrap();
    assert_eq!(i, 1);
    let (a, i) = index.by_container_id(&x64('f')).unwrap();
    assert_eq!(i, 2);
    assert_eq!(a.container(i).unwrap().name, "init-db");
    assert!(index.by_container_id(&x64('c')).is_none(), "the sandbox has no status");
    assert!(index.by_container_id(&format!("containerd://{}", x64('a'))).is_none());
    let (b, _) = index.by_container_id(&x64('d')).unwrap();
    assert_eq!(b.name, "debug");
}

#[test]
fn restarts_from_t0_to_t1() {
    let t0 = tokio::time::Instant::now();
    let t1 = t0 + Duration::from_mins(1);
    let mut tracker = RestartTracker::new();
    let (i0, i1) = (oracle_index(ORACLE_T0), oracle_index(ORACLE_T1));
    for pod in i0.pods() {
        assert_eq!(tracker.delta_at(&pod, t0), None);
    }
    assert_eq!(
        tracker.delta_at(&pod_by_name(&i1, "web-7d4b9c8f5d-x7k2p"), t1),
        Some(0.0)
    );
    assert_eq!(tracker.delta_at(&pod_by_name(&i1, "debug"), t1), Some(1.0));
    assert!(i1.by_container_id(&x64('d')).is_none());
    assert!(i1.by_container_id(&x64('e')).is_some());
}

const STATIC_POD: &str = r#"{"kind":"PodList","items":[{
  "metadata":{"name":"etcd-node-1","namespace":"kube-system","uid":"b6a8e3a4-1c5f-4d8e-9f00-000000000001",
    "annotations":{"kubernetes.io/config.hash":"6d3f0c1e2b4a59788c7d6e5f4a3b2c1d",
                   "kubernetes.io/config.mirror":"6d3f0c1e2b4a59788c7d6e5f4a3b2c1d",
                   "kubernetes.io/config.source":"file"},
    "ownerReferences":[{"apiVersion":"v1","kind":"Node","name":"node-1","uid":"n1","controller":true}]},
  "spec":{"nodeName":"node-1","hostNetwork":true,"containers":[{"name":"etcd","resources":{"requests":{"cpu":"100m","memory":"100Mi"}}}]},
  "status":{"phase":"Running","containerStatuses":[{"name":"etcd","containerID":"containerd://1111111111111111111111111111111111111111111111111111111111111111",
    "restartCount":0,"state":{"running":{}}}]}}]}"#;

#[test]
fn static_pod_matches_by_config_hash() {
    let (pods, warnings) = parse_pod_list(STATIC_POD).unwrap();
    assert!(warnings.is_empty());
    let index = PodIndex::new(Some("node-1".into()));
    index.replace(pods);
    let by_hash = index.by_uid("6d3f0c1e2b4a59788c7d6e5f4a3b2c1d").unwrap();
    let by_uid = index.by_uid("b6a8e3a4-1c5f-4d8e-9f00-000000000001").unwrap();
    assert!(Arc::ptr_eq(&by_hash, &by_uid));
    assert!(by_hash.is_static_pod() && by_hash.host_network);
    assert_eq!(by_hash.pod_name(false), "etcd-node-1");
    assert_eq!(by_hash.owners[0].kind, "Node");
}

fn pod_json(name: &str, node: Option<&str>, phase: &str) -> String {
    let node = node.map(|n| format!(r#""nodeName":"{n}","#)).unwrap_or_default();
    format!(
        r#"{{"metadata":{{"name":"{name}","uid":"uid-{name}"}},"spec":{{{node}"containers":[{{"name":"c","resources":{{"requests":{{"cpu":"1"}}}}}}]}},"status":{{"phase":"{phase}"}}}}"#
    )
}

#[test]
fn only_pods_bound_to_this_node_are_kept() {
    let text = format!(
        "[{},{},{},{}]",
        pod_json("here", Some("node-1"), "Running"),
        pod_json("there", Some("node-2"), "Running"),
        pod_json("unscheduled", None, "Pending"),
        pod_json("handwritten", None, "Running"),
    );
    let (pods, _) = parse_pod_list(&text).unwrap();
    let index = PodIndex::new(Some("node-1".into()));
    index.replace(pods.clone());
    let names: Vec<String> = index.pods().iter().map(|p| p.name.clone()).collect();
    assert_eq!(names, ["here", "handwritten"]);
    assert!(index.by_uid("uid-there").is_none());
    assert_eq!(index.node_totals().cpu_request_millicores, 2000.0);

    let any_node = PodIndex::default();
    any_node.replace(pods);
    assert_eq!(
        any_node.pods().len(),
        3,
        "without a node name only the unscheduled pod is left out"
    );
}

#[test]
fn accepted_shapes() {
    let one = pod_json("p", Some("n"), "Running");
    for text in [
        format!("[{one}]"),
        format!(r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{}},"items":[{one}]}}"#),
        format!(r#"{{"kind":"List","items":[{one}]}}"#),
        format!(r#"{{"items":[{one}]}}"#),
        one.replacen('{', r#"{"kind":"Pod","#, 1),
    ] {
        let (pods, warnings) = parse_pod_list(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!((pods.len(), warnings.len()), (1, 0), "{text}");
    }
    let (pods, _) = parse_pod_list(r#"{"kind":"PodList","items":[]}"#).unwrap();
    assert!(pods.is_empty());
}

#[test]
fn unusable_documents_are_errors() {
    let err = parse_pod_list("{\n  \"items\": [\n    {,}\n  ]\n}").unwrap_err();
    match &err {
        PodListError::Json { line, column, .. } => assert_eq!((*line, *column), (3, 6)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("line 3, column 6"), "{err}");
    let named = err.with_path(std::path::Path::new("/tmp/pods.json"));
    assert!(
        named.to_string().starts_with("pod list /tmp/pods.json: not valid JSON"),
        "{named}"
    );
    for text in [r#"{"kind":"Deployment"}"#, r#"{"items":{}}"#, "42", "null", "\"x\""] {
        let err = parse_pod_list(text).unwrap_err();
        assert!(matches!(err, PodListError::Shape { .. }), "{text}: {err:?}");
        assert!(err.to_string().contains("kubectl get pods -o json"), "{err}");
    }
    assert!(matches!(parse_pod_list(""), Err(PodListError::Json { .. })));
}

#[test]
fn broken_pods_are_skipped_with_their_index_and_the_rest_loads() {
    let text = r#"[
      {"metadata":{"name":"no-uid"}},
      {"metadata":{"uid":"u-no-name"}},
      {"metadata":{"name":"bad-labels","uid":"u2","labels":{"a":1}}},
      {"metadata":{"name":"ok","uid":"u3","somethingNew":{"x":[1,2]}},"spec":null,"status":{"phase":null,"futureField":true}},
      {"metadata":{"name":"dup","uid":"u3"}},
      {"kind":"ConfigMap","metadata":{"name":"cm"}},
      {"kind":"Pod","metadata":{"name":"q","uid":"u4"},"spec":{"nodeName":"n","containers":[
         {"name":"c1","resources":{"requests":{"cpu":"lots","memory":128},"limits":{"cpu":"-1","memory":"1KiB"}}},
         {"resources":{}}]},
       "status":{"phase":"Running","containerStatuses":[{"name":"c1","containerID":"abc","restartCount":-3,"state":{}},
         {"name":"extra","state":{"waiting":{"reason":"CrashLoopBackOff"}},"lastState":{"terminated":{"reason":"OOMKilled","exitCode":137}}}]}}
    ]"#;
    let (pods, warnings) = parse_pod_list(text).unwrap();
    let names: Vec<&str> = pods.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["ok", "q"]);
    let kinds: Vec<&str> = warnings.iter().map(Warning::kind).collect();
    assert_eq!(
        kinds,
        [
            "pod_skipped",
            "item_ignored",
            "pod_skipped",
            "pod_skipped",
            "duplicate_uid",
            "bad_quantity",
            "bad_quantity",
            "container_skipped"
        ]
    );
    let text_of = |i: usize| warnings[i].to_string();
    assert!(
        text_of(0).starts_with("item 2: pod skipped: invalid type"),
        "{}",
        text_of(0)
    );
    assert_eq!(
        text_of(2),
        "item 0: pod skipped: metadata.uid or metadata.name is missing"
    );
    assert_eq!(
        text_of(3),
        "item 1: pod skipped: metadata.uid or metadata.name is missing"
    );
    assert!(text_of(5).contains(r#"requests.cpu "lots""#), "{}", text_of(5));

    let ok = &pods[0];
    assert_eq!((ok.namespace.as_str(), ok.phase), ("default", PodPhase::Unknown));
    assert!(ok.containers.is_empty());
    let q = &pods[1];
    let c1 = &q.containers[0];
    assert_eq!(c1.cpu_request_millicores, None, "garbage is unset");
    assert_eq!(c1.memory_request_bytes, Some(128.0), "a JSON number is a quantity too");
    assert_eq!(c1.cpu_limit_millicores, None, "negative counts as unset");
    assert_eq!((c1.id.as_deref(), c1.runtime.as_deref()), (Some("abc"), None));
    assert_eq!((c1.restart_count, c1.state.as_status()), (0, None));
    let extra = &q.containers[1];
    assert!(!extra.in_spec && extra.has_status);
    assert_eq!(extra.state.reason(), Some("CrashLoopBackOff"));
    assert_eq!(extra.last_termination_reason.as_deref(), Some("OOMKilled"));
    assert_eq!(q.number_of_containers(), 2);
    // The status-only container does not stop c1's limits from being "every container's"…
    assert_eq!(
        q.resources(None).memory_limit_bytes,
        None,
        "…but c1's memory limit was garbage"
    );
}

#[test]
fn snapshots_are_consistent_and_subscribers_wake() {
    let index = oracle_index(ORACLE_T0);
    let rx = index.subscribe();
    let before = index.snapshot();
    index.replace(vec![]);
    assert!(rx.has_changed().unwrap());
    assert_eq!(before.pods().len(), 4, "an old snapshot stays whole");
    assert_eq!(index.snapshot().pods().len(), 0);
    assert_eq!(index.snapshot().generation(), before.generation() + 1);
    assert!(index.is_synced(), "an empty list is still a synced list");
    assert!(!PodIndex::default().is_synced());
}

#[tokio::test(start_paused = true)]
async fn a_departed_pod_is_known_to_log_enrichment_for_a_grace_period_only() {
    let index = oracle_index(ORACLE_T0);
    let a = pod_by_name(&index, index.pods()[0].name.as_str());
    let uid = a.uid.clone();
    assert!(index.recently_departed(&uid).is_none(), "not departed while present");
    let others: Vec<PodInfo> = index.pods().iter().skip(1).map(|p| (**p).clone()).collect();
    index.replace(others.clone());
    assert!(index.by_uid(&uid).is_none(), "gone for metrics");
    assert_eq!(
        index.recently_departed(&uid).map(|p| p.name.clone()),
        Some(a.name.clone())
    );
    // Still known after another replace within the grace period…
    tokio::time::advance(DEPARTED_GRACE / 2).await;
    index.replace(others.clone());
    assert!(index.recently_departed(&uid).is_some());
    // …and forgotten after it.
    tokio::time::advance(DEPARTED_GRACE / 2 + Duration::from_secs(1)).await;
    assert!(index.recently_departed(&uid).is_none());
    index.replace(others);
    assert!(index.recently_departed(&uid).is_none(), "dropped at the next replace");
    // A pod that comes back is not "departed".
    index.replace(vec![(*a).clone()]);
    assert!(index.by_uid(&uid).is_some() && index.recently_departed(&uid).is_none());
}

#[test]
fn the_cluster_oracle_parses_without_warnings() {
    let text = include_str!("../../tests/fixtures/kube/cluster-oracle.json");
    let list = parse_list(text).unwrap();
    assert_eq!(list.warnings, vec![]);
    assert_eq!(list.pods.len(), 7, "A–D of this node, E, F, G of others");
    let cluster = list.cluster.unwrap();
    assert_eq!(cluster.nodes[0].name, NODE);
    assert_eq!(cluster.running_pods(), 5, "A, B, E, F, G");
    // The pods of other nodes still get their Service from the selectors.
    let e = list.pods.iter().find(|p| p.name == "web-7d4b9c8f5d-m9n8b").unwrap();
    assert_eq!(e.service.as_deref(), Some("web-svc"));
    // The oracle lists are plain pod lists.
    assert_eq!(parse_list(ORACLE_T0).unwrap().cluster, None);
}

mod runtime_merge {
    use std::collections::BTreeMap;

    use super::super::{ContainerInfo, PodIndex, PodInfo, PodPhase};

    fn pod(uid: &str, containers: &[(&str, Option<&str>)]) -> PodInfo {
        let mut p = PodInfo {
            uid: uid.to_string(),
            name: format!("pod-{uid}"),
            namespace: "default".into(),
            node_name: None,
            phase: PodPhase::Running,
            workload_name: format!("pod-{uid}"),
            owners: Vec::new(),
            workload_name_preferring_full: format!("pod-{uid}"),
            owners_preferring_full: Vec::new(),
            labels: BTreeMap::new(),
            host_network: false,
            mirror_of: None,
            log_exclusions: Vec::new(),
            annotations: BTreeMap::new(),
            containers: Vec::new(),
            init_containers: Vec::new(),
            service: None,
            ready: None,
            scheduled: None,
            metrics_endpoint: None,
        };
        p.containers = containers
            .iter()
            .map(|(name, id)| ContainerInfo {
                name: (*name).to_string(),
                id: id.map(str::to_string),
                has_status: id.is_some(),
                ..ContainerInfo::default()
            })
            .collect();
        p
    }

    #[test]
    fn runtime_pods_name_what_the_pod_source_does_not_know() {
        let index = PodIndex::new(Some("node-a".into()));
        assert!(!index.is_synced());
        // Without a pod source (metadata source `runtime`): the runtime alone syncs the index.
        index.set_runtime(vec![pod("u1", &[("app", Some("c1"))])]);
        assert!(index.is_synced());
        let (p, i) = index.by_container_id("c1").unwrap();
        assert_eq!((p.uid.as_str(), p.container(i).unwrap().name.as_str()), ("u1", "app"));

        // The apiserver lists u1 (its container not yet published) and u2; the runtime's u1
        // gives way to the source's, and the runtime's container id resolves to the source's
        // container of that name.
        let mut u1 = pod("u1", &[("app", None)]);
        u1.node_name = Some("node-a".into());
        u1.workload_name = "web".into();
        let mut u2 = pod("u2", &[("db", Some("c2"))]);
        u2.node_name = Some("node-a".into());
        index.replace(vec![u1, u2]);
        let snap = index.snapshot();
        assert_eq!(snap.pods().len(), 2);
        let (p, i) = snap.by_container_id("c1").unwrap();
        assert_eq!(p.workload_name, "web", "the source's pod wins");
        assert_eq!(p.container(i).unwrap().name, "app");
        assert!(snap.by_container_id("c2").is_some());

        // A pod the runtime sees first (started since the last watch event) is added; a new
        // runtime list replaces the old one, the source's pods stay.
        index.set_runtime(vec![
            pod("u1", &[("app", Some("c1"))]),
            pod("u3", &[("job", Some("c3"))]),
        ]);
        let snap = index.snapshot();
        assert_eq!(snap.pods().len(), 3);
        assert_eq!(snap.by_uid("u3").unwrap().containers[0].name, "job");
        assert_eq!(snap.by_uid("u1").unwrap().workload_name, "web");
        index.set_runtime(Vec::new());
        let snap = index.snapshot();
        assert_eq!(snap.pods().len(), 2);
        assert!(snap.by_uid("u3").is_none());
        assert!(snap.by_container_id("c1").is_none(), "the source never published c1");
    }
}

#[test]
fn gpu_resources_are_read_per_container_and_only_when_set() {
    let text = r#"{"kind": "PodList", "items": [{
        "metadata": {"name": "trainer-0", "namespace": "ml", "uid": "u1"},
        "spec": {"nodeName": "n", "containers": [
            {"name": "main", "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "1"},
                                           "requests": {"nvidia.com/gpu": "2"}}},
            {"name": "log", "resources": {"limits": {"cpu": "100m"}}}
        ]},
        "status": {"phase": "Running"}
    }]}"#;
    let (pods, warnings) = parse_pod_list(text).unwrap();
    assert_eq!(warnings, vec![]);
    let main = &pods[0].containers[0];
    assert_eq!((main.gpu_request(), main.gpu_limit()), (Some(2.0), Some(2.0)));
    assert_eq!(
        pods[0].containers[1].accelerators, None,
        "no box for a container without accelerators"
    );
}

#[test]
fn the_own_node_gpu_capacity_is_read() {
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n"},
        "status": {"capacity": {"pods": "110", "nvidia.com/gpu": "8"}, "allocatable": {"pods": "110"}}
    }))
    .unwrap();
    let own = cluster::node_state(&node).unwrap();
    assert_eq!((own.capacity_pods, own.capacity_gpus), (Some(110), Some(8)));
}

#[test]
fn neuron_resources_are_read_per_container_and_the_node_capacity_and_ultraserver() {
    let text = r#"{"kind": "PodList", "items": [{
        "metadata": {"name": "infer-0", "namespace": "ml", "uid": "u1"},
        "spec": {"nodeName": "n", "containers": [
            {"name": "main", "resources": {"limits": {"aws.amazon.com/neuroncore": "2", "aws.amazon.com/neuron": "1"},
                                           "requests": {"aws.amazon.com/neuroncore": "2", "aws.amazon.com/neurondevice": "1",
                                                        "aws.amazon.com/neuron": "1"}}},
            {"name": "log", "resources": {"limits": {"cpu": "100m"}}}
        ]},
        "status": {"phase": "Running"}
    }]}"#;
    let (pods, warnings) = parse_pod_list(text).unwrap();
    assert_eq!(warnings, vec![]);
    let a = pods[0].containers[0].accelerators.as_deref().unwrap();
    assert_eq!((a.neuroncore_request, a.neuroncore_limit), (Some(2.0), Some(2.0)));
    assert_eq!(
        (a.neurondevice_request, a.neurondevice_limit),
        (Some(2.0), Some(1.0)),
        "both device names, summed"
    );
    assert_eq!((a.gpu_request, a.gpu_limit), (None, None));
    assert_eq!(pods[0].containers[1].accelerators, None);

    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "n", "labels": {"topology.k8s.aws/ultraserver-id": "us-0123"}},
        "status": {"capacity": {"pods": "110", "aws.amazon.com/neuroncore": "32", "aws.amazon.com/neuron": "16"}}
    }))
    .unwrap();
    let own = cluster::node_state(&node).unwrap();
    assert_eq!(
        (
            own.capacity_neuroncores,
            own.capacity_neurondevices,
            own.ultraserver.as_deref()
        ),
        (Some(32), Some(16), Some("us-0123"))
    );
}
