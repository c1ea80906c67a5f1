//! The `apiserver` pod metadata source against the Kubernetes API test server
//! (`tests/support/kube_api.rs`), loaded with the oracle cluster dump
//! (`tests/fixtures/kube/cluster-oracle.json`, real `kubectl get -o json` shapes): the initial
//! sync gives the index exactly what the file source gives for the same objects; adds, changes and
//! deletes arrive; a dropped watch reconnects; a compaction (`410 Gone`) relists; an apiserver that
//! goes away leaves the cached index serving and is caught up with when it returns; `ReplicaSet`
//! owners are looked up; missing RBAC is named.
//!
//! No test sleeps for luck: each waits on a condition with a 10 s limit.

#![allow(clippy::float_cmp, reason = "gauges of 0 and 1, exact in f64")]

mod support;

use std::time::Duration;

use kinsight::kube::{
    API_CONDITION, ApiSource, ClaimPhase, ClusterWatch, Elector, HyperPodHealth, PodIndex, PodInfo, connect_apiserver,
    parse_list,
};
use kinsight::telemetry::{Name, Telemetry};
use serde_json::{Value, json};
use support::KubeApi;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";
const ORACLE: &str = "tests/fixtures/kube/cluster-oracle.json";
const LIMIT: Duration = Duration::from_secs(10);

async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "waited {LIMIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn oracle() -> Value {
    serde_json::from_str(&std::fs::read_to_string(ORACLE).unwrap()).unwrap()
}

struct Running {
    index: PodIndex,
    telemetry: Telemetry,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start(api: &KubeApi) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = api.kubeconfig(dir.path());
        let client = connect_apiserver(Some(&kubeconfig), false).await.unwrap();
        let index = PodIndex::new(Some(NODE.to_string()));
        let telemetry = Telemetry::new();
        let cancel = CancellationToken::new();
        let source = ApiSource {
            client,
            node: NODE.to_string(),
            index: index.clone(),
            telemetry: telemetry.clone(),
            tag_service: true,
        };
        let task = tokio::spawn(source.run(cancel.clone()));
        Running {
            index,
            telemetry,
            cancel,
            task,
            _dir: dir,
        }
    }

    async fn synced(api: &KubeApi) -> Running {
        let r = Running::start(api).await;
        until("the first sync", || r.index.is_synced()).await;
        r
    }

    fn pod(&self, namespace: &str, name: &str) -> Option<std::sync::Arc<PodInfo>> {
        self.index
            .pods()
            .into_iter()
            .find(|p| p.namespace == namespace && p.name == name)
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(LIMIT, self.task).await.unwrap().unwrap();
    }
}

/// A running pod on [`NODE`] with one container.
fn pod(name: &str, labels: &Value, owners: &Value) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "labels": labels,
                     "ownerReferences": owners,
                     "managedFields": [{"manager": "kubelet", "operation": "Update", "fieldsV1": {"f:status": {}}}]},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app:1"}]},
        "status": {"phase": "Running",
                   "conditions": [{"type": "Ready", "status": "True"}],
                   "containerStatuses": [{"name": "app", "containerID": format!("containerd://{name}-cid"),
                                          "image": "app:1", "imageID": "", "ready": true, "restartCount": 0,
                                          "state": {"running": {"startedAt": "2026-01-15T10:00:00Z"}}}]}
    })
}

#[tokio::test]
async fn the_first_sync_gives_what_the_file_source_gives_for_the_same_objects() {
    let api = KubeApi::start();
    api.apply_list(&oracle());
    let r = Running::start(&api).await;
    assert!(!r.index.is_synced());
    until("the first sync", || r.index.is_synced()).await;
    assert!(r.telemetry.readiness().is_ok(), "{:?}", r.telemetry.readiness());

    // The file source's view of the same dump, cut to this node.
    let text = std::fs::read_to_string(ORACLE).unwrap();
    let mut want: Vec<PodInfo> = parse_list(&text)
        .unwrap()
        .pods
        .into_iter()
        .filter(|p| p.node_name.as_deref() == Some(NODE))
        .collect();
    want.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    // The test server fills in namespaces the dump leaves to the apiserver's default.
    let got: Vec<PodInfo> = r.index.pods().iter().map(|p| (**p).clone()).collect();
    assert!(!want.is_empty());
    assert_eq!(got, want);
    // Lookups by uid and container id work on the watched index.
    let first = &got[0];
    assert!(r.index.by_uid(&first.uid).is_some());
    if let Some(id) = first.containers.iter().find_map(|c| c.id.clone()) {
        assert_eq!(r.index.by_container_id(&id).unwrap().0.uid, first.uid);
    }
    // The own Node object, from its own watch: conditions and pod capacity (node_status_*).
    until("the own Node", || r.index.snapshot().own_node().is_some()).await;
    let own = r.index.snapshot().own_node().unwrap().clone();
    assert_eq!(own.name, NODE);
    assert_eq!((own.capacity_pods, own.allocatable_pods), (Some(58), Some(58)));
    assert!(own.conditions.iter().any(|c| c.kind == "MemoryPressure"));
    // The list was asked for this node only, from the watch cache (resourceVersion=0 is the
    // watcher's any-semantic list; the server records the verb).
    let reqs = api.requests();
    assert!(reqs.iter().any(|q| q.verb == "list" && q.resource == "pods"));
    assert!(reqs.iter().any(|q| q.verb == "watch" && q.resource == "pods"));
    assert!(reqs.iter().any(|q| q.verb == "watch" && q.resource == "services"));
    r.stop().await;
}

#[tokio::test]
async fn adds_changes_and_deletes_arrive_and_a_deleted_pod_stays_known_for_late_log_lines() {
    let api = KubeApi::start();
    api.apply(
        json!({"kind": "Service", "metadata": {"name": "web", "namespace": "shop"},
                     "spec": {"selector": {"app": "web"}}}),
    );
    let r = Running::synced(&api).await;
    assert!(r.index.pods().is_empty());

    api.apply(pod("web-0", &json!({"app": "web"}), &json!([])));
    until("the new pod", || r.pod("shop", "web-0").is_some()).await;
    assert_eq!(r.pod("shop", "web-0").unwrap().service.as_deref(), Some("web"));
    assert!(r.index.by_container_id("web-0-cid").is_some());

    // A label change moves it out of the Service.
    api.apply(pod("web-0", &json!({"app": "other"}), &json!([])));
    until("the label change", || {
        r.pod("shop", "web-0").is_some_and(|p| p.service.is_none())
    })
    .await;

    // A pod of another node never enters the index.
    let mut elsewhere = pod("far-0", &json!({}), &json!([]));
    elsewhere["spec"]["nodeName"] = json!("another-node");
    api.apply(elsewhere);
    api.apply(pod("web-1", &json!({}), &json!([])));
    until("web-1", || r.pod("shop", "web-1").is_some()).await;
    assert!(r.pod("shop", "far-0").is_none());

    // Deleted: gone from the index (no metrics), still known to log enrichment.
    assert!(api.delete("Pod", "shop", "web-0"));
    until("the delete", || r.pod("shop", "web-0").is_none()).await;
    assert_eq!(
        r.index.recently_departed("uid-web-0").map(|p| p.name.clone()),
        Some("web-0".to_string())
    );
    assert!(
        r.telemetry
            .get(Name::ApiserverEvents, &[("resource", "pods"), ("type", "delete")])
            >= 1.0
    );
    r.stop().await;
}

#[tokio::test]
async fn a_dropped_watch_reconnects_and_a_compaction_relists() {
    let api = KubeApi::start();
    api.apply(pod("a-0", &json!({}), &json!([])));
    let r = Running::synced(&api).await;
    assert!(r.pod("shop", "a-0").is_some());

    // Dropped connection: the watcher resumes from its last version, nothing lost.
    api.drop_watches();
    api.apply(pod("b-0", &json!({}), &json!([])));
    until("b-0 after a dropped watch", || r.pod("shop", "b-0").is_some()).await;

    // Changes while the watch is down and the history compacted: the resumed watch gets
    // 410 Gone, the watcher relists, and a pod deleted meanwhile leaves the index.
    let relists_before = r
        .telemetry
        .get(Name::ApiserverEvents, &[("resource", "pods"), ("type", "relist")]);
    api.set_down(true);
    api.delete("Pod", "shop", "a-0");
    api.apply(pod("c-0", &json!({}), &json!([])));
    api.compact();
    api.set_down(false);
    until("the relist after 410", || {
        r.pod("shop", "c-0").is_some() && r.pod("shop", "a-0").is_none()
    })
    .await;
    assert!(
        r.telemetry
            .get(Name::ApiserverEvents, &[("resource", "pods"), ("type", "relist")])
            > relists_before
    );
    r.stop().await;
}

#[tokio::test]
async fn an_apiserver_outage_keeps_the_cached_index_and_is_caught_up_with() {
    let api = KubeApi::start();
    api.apply(pod("a-0", &json!({}), &json!([])));
    let r = Running::synced(&api).await;
    until("up", || r.telemetry.get(Name::ApiserverUp, &[]) == 1.0).await;

    api.set_down(true);
    until("the outage is seen", || {
        r.telemetry.get(Name::ApiserverWatchErrors, &[("resource", "pods")]) >= 1.0
    })
    .await;
    // Cached metadata keeps serving; ready, but /readyz's text says why it is degraded.
    assert!(r.pod("shop", "a-0").is_some());
    assert_eq!(r.telemetry.get(Name::ApiserverUp, &[]), 0.0);
    assert!(r.telemetry.readiness().is_ok());
    assert!(
        r.telemetry.notes().contains("serving cached metadata"),
        "{}",
        r.telemetry.notes()
    );

    api.apply(pod("b-0", &json!({}), &json!([])));
    api.set_down(false);
    until("caught up", || r.pod("shop", "b-0").is_some()).await;
    until("up again", || r.telemetry.get(Name::ApiserverUp, &[]) == 1.0).await;
    assert_eq!(r.telemetry.notes(), "");
    r.stop().await;
}

#[tokio::test]
async fn replica_set_owners_are_asked_once_and_a_forbidden_get_falls_back_to_the_suffix_rule() {
    let api = KubeApi::start();
    // `frontend-v2` has no hash-like suffix: only the ReplicaSet's owner can name the Deployment.
    api.apply(json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "frontend-v2", "namespace": "shop", "uid": "rs-uid-1",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "frontend",
                                          "uid": "d-uid", "controller": true}]}}));
    let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "frontend-v2", "uid": "rs-uid-1",
                        "controller": true}]);
    api.apply(pod("frontend-v2-x1", &json!({}), &owner));
    api.apply(pod("frontend-v2-x2", &json!({}), &owner));
    let r = Running::synced(&api).await;
    until("the Deployment name", || {
        r.pod("shop", "frontend-v2-x1")
            .is_some_and(|p| p.workload_name == "frontend")
            && r.pod("shop", "frontend-v2-x2")
                .is_some_and(|p| p.workload_name == "frontend")
    })
    .await;
    let gets = api
        .requests()
        .iter()
        .filter(|q| q.verb == "get" && q.resource == "replicasets")
        .count();
    assert_eq!(gets, 1, "one GET per ReplicaSet");
    r.stop().await;

    // Without `get replicasets`, the suffix rule decides (here: no Deployment, the RS name).
    let api = KubeApi::start();
    api.forbid("get", "replicasets");
    api.apply(pod(
        "web-7d4b9c8f5d-abcde",
        &json!({}), &json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f5d", "uid": "rs-2", "controller": true}])));
    let r = Running::synced(&api).await;
    assert!(
        api.wait_for_request(LIMIT, |q| q.verb == "get" && q.resource == "replicasets"),
        "the GET was tried"
    );
    assert_eq!(r.pod("shop", "web-7d4b9c8f5d-abcde").unwrap().workload_name, "web");
    until("the refused GET is counted", || {
        r.telemetry
            .get(Name::ApiserverGets, &[("resource", "replicasets"), ("result", "error")])
            >= 1.0
    })
    .await;
    r.stop().await;
}

#[tokio::test]
async fn a_forbidden_pod_watch_keeps_the_agent_unready_and_names_the_permission() {
    let api = KubeApi::start();
    api.forbid("list", "pods");
    let r = Running::start(&api).await;
    until("the refusal", || {
        r.telemetry.get(Name::ApiserverWatchErrors, &[("resource", "pods")]) >= 1.0
    })
    .await;
    let why = r.telemetry.readiness().unwrap_err();
    assert!(why.contains(API_CONDITION), "{why}");
    assert!(why.contains("list and watch of pods"), "{why}");
    assert!(!r.index.is_synced());
    r.stop().await;
}

#[tokio::test]
async fn a_forbidden_service_watch_does_not_hold_the_pods_back() {
    let api = KubeApi::start();
    api.forbid("list", "services");
    api.apply(pod("a-0", &json!({"app": "web"}), &json!([])));
    let r = Running::synced(&api).await;
    assert!(r.pod("shop", "a-0").is_some_and(|p| p.service.is_none()));
    r.stop().await;
}

/// An elector of `identity` with a 3 s Lease against `api`.
async fn elector(
    api: &KubeApi,
    dir: &std::path::Path,
    identity: &str,
) -> (Elector, watch::Receiver<bool>, watch::Sender<bool>) {
    let client = connect_apiserver(Some(&api.kubeconfig(dir)), false).await.unwrap();
    let (tx, rx) = watch::channel(false);
    let e = Elector {
        client,
        namespace: "amazon-cloudwatch".to_string(),
        identity: identity.to_string(),
        duration: LEASE,
        telemetry: Telemetry::new(),
    };
    (e, rx, tx)
}

const LEASE: Duration = Duration::from_secs(3);

fn holder(api: &KubeApi) -> Option<String> {
    api.get("Lease", "amazon-cloudwatch", "kinsight-leader")
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
}

#[tokio::test]
async fn exactly_one_elector_leads_another_takes_over_when_it_stops_renewing_and_a_release_hands_over_at_once() {
    let api = KubeApi::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, a_rx, a_tx) = elector(&api, dir.path(), "node-a/kinsight-a").await;
    let (b, b_rx, b_tx) = elector(&api, dir.path(), "node-b/kinsight-b").await;
    let (a_stop, b_stop) = (CancellationToken::new(), CancellationToken::new());
    let a_task = tokio::spawn(a.run(a_tx, a_stop.clone()));
    let b_task = tokio::spawn(b.run(b_tx, b_stop.clone()));
    until("a leader", || *a_rx.borrow() || *b_rx.borrow()).await;
    // Never two at once, over two lease durations of renewals.
    let deadline = tokio::time::Instant::now() + 2 * LEASE;
    while tokio::time::Instant::now() < deadline {
        assert!(!(*a_rx.borrow() && *b_rx.borrow()), "two leaders");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (leader_task, leader_rx, follower_rx, follower, leader_id) = if *a_rx.borrow() {
        (a_task, a_rx, b_rx, "node-b/kinsight-b", "node-a/kinsight-a")
    } else {
        (b_task, b_rx, a_rx, "node-a/kinsight-a", "node-b/kinsight-b")
    };
    assert_eq!(holder(&api).as_deref(), Some(leader_id));
    drop(leader_rx);

    // The leader dies without releasing (its task is dropped mid-flight): the follower takes
    // over once the Lease has not been renewed for its duration, and not much later.
    leader_task.abort();
    let killed = tokio::time::Instant::now();
    until("the takeover", || *follower_rx.borrow()).await;
    let took = killed.elapsed();
    assert!(
        took >= LEASE.saturating_sub(Duration::from_millis(500)),
        "took over after {took:?}, before the Lease expired"
    );
    assert!(took <= LEASE + Duration::from_secs(2), "took over after {took:?}");
    assert_eq!(holder(&api).as_deref(), Some(follower));
    let lease = api.get("Lease", "amazon-cloudwatch", "kinsight-leader").unwrap();
    assert_eq!(lease["spec"]["leaseTransitions"], 1);

    // A graceful stop releases the Lease: a new candidate leads at once, not after expiry.
    a_stop.cancel();
    b_stop.cancel();
    until("the release", || holder(&api).is_none()).await;
    let (c, c_rx, c_tx) = elector(&api, dir.path(), "node-c/kinsight-c").await;
    let c_stop = CancellationToken::new();
    let started = tokio::time::Instant::now();
    let c_task = tokio::spawn(c.run(c_tx, c_stop.clone()));
    until("the new leader", || *c_rx.borrow()).await;
    assert!(started.elapsed() < LEASE, "{:?}", started.elapsed());
    c_stop.cancel();
    c_task.await.unwrap();
}

/// Storage objects for the leader test: claims in each phase (and one with no status yet),
/// volumes, Ingresses in a namespace with pods and in one without; and the dump's first Node
/// made a `SageMaker` `HyperPod` node (replaced in `dump`, returned to apply), with its name.
fn storage_objects(dump: &mut Value) -> (Vec<Value>, Value, String) {
    let claim = |name: &str, ns: &str, phase: Option<&str>| {
        let mut c = json!({"kind": "PersistentVolumeClaim", "apiVersion": "v1",
                           "metadata": {"name": name, "namespace": ns}, "spec": {}});
        if let Some(p) = phase {
            c["status"] = json!({ "phase": p });
        }
        c
    };
    let ingress = |name: &str, ns: &str| {
        json!({"kind": "Ingress", "apiVersion": "networking.k8s.io/v1",
               "metadata": {"name": name, "namespace": ns}, "spec": {}})
    };
    let storage = [
        claim("data-db-0", "shop", Some("Bound")),
        claim("data-db-1", "shop", Some("Pending")),
        claim("old", "archive", Some("Lost")),
        claim("new", "archive", None),
        json!({"kind": "PersistentVolume", "apiVersion": "v1", "metadata": {"name": "pv-1"}, "spec": {}}),
        json!({"kind": "PersistentVolume", "apiVersion": "v1", "metadata": {"name": "pv-2"}, "spec": {}}),
        ingress("web", "shop"),
        ingress("api", "shop"),
        ingress("docs", "static-only"),
    ];
    // A SageMaker HyperPod node: an `ml.` instance type with the health label.
    let mut hyperpod = dump["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "Node")
        .cloned()
        .unwrap();
    let hyperpod_name = hyperpod["metadata"]["name"].as_str().unwrap().to_string();
    hyperpod["metadata"]["labels"] = json!({
        "node.kubernetes.io/instance-type": "ml.p5.48xlarge",
        "sagemaker.amazonaws.com/node-health-status": "UnschedulablePendingReboot"
    });
    for item in dump["items"].as_array_mut().unwrap() {
        if item["kind"] == "Node" && item["metadata"]["name"] == hyperpod_name.as_str() {
            *item = hyperpod.clone();
        }
    }
    (storage.to_vec(), hyperpod, hyperpod_name)
}

/// The storage part of the leader's view of [`storage_objects`].
fn assert_storage(got: &kinsight::kube::ClusterState, hyperpod_name: &str) {
    let claims: Vec<(&str, &str, ClaimPhase)> = got
        .claims
        .iter()
        .map(|c| (c.namespace.as_str(), c.name.as_str(), c.phase))
        .collect();
    assert_eq!(
        claims,
        [
            ("archive", "new", ClaimPhase::Other),
            ("archive", "old", ClaimPhase::Lost),
            ("shop", "data-db-0", ClaimPhase::Bound),
            ("shop", "data-db-1", ClaimPhase::Pending),
        ]
    );
    assert_eq!(got.persistent_volumes, 2);
    assert_eq!(
        got.namespace_ingresses,
        std::collections::BTreeMap::from([("shop".to_string(), 2), ("static-only".to_string(), 1)])
    );
    let health: Vec<(&str, HyperPodHealth)> = got
        .nodes
        .iter()
        .filter_map(|n| Some((n.name.as_str(), n.hyperpod_health?)))
        .collect();
    assert_eq!(health, [(hyperpod_name, HyperPodHealth::UnschedulablePendingReboot)]);
}

/// A deleted claim and volume of [`storage_objects`] leave the leader's view.
async fn storage_follows_deletes(api: &KubeApi, index: &PodIndex) {
    assert!(api.delete("PersistentVolumeClaim", "archive", "old"));
    assert!(api.delete("PersistentVolume", "", "pv-2"));
    until("the storage view to follow", || {
        index
            .snapshot()
            .cluster()
            .is_some_and(|c| c.claims.len() == 3 && c.persistent_volumes == 1)
    })
    .await;
}

#[tokio::test]
async fn the_leader_cluster_view_matches_the_file_source_and_goes_when_leadership_does() {
    let api = KubeApi::start();
    api.apply_list(&oracle());
    let dir = tempfile::tempdir().unwrap();
    let client = connect_apiserver(Some(&api.kubeconfig(dir.path())), false)
        .await
        .unwrap();
    let index = PodIndex::new(Some(NODE.to_string()));
    let (tx, rx) = watch::channel(false);
    let cancel = CancellationToken::new();
    let watch = ClusterWatch {
        client,
        index: index.clone(),
        telemetry: Telemetry::new(),
        workloads: true,
        pending_pods: true,
        storage: true,
        control_plane: None,
    };
    let task = tokio::spawn(watch.run(rx, cancel.clone()));
    // A follower watches nothing cluster-wide.
    tokio::task::yield_now().await;
    assert!(!api.requests().iter().any(|q| q.resource == "nodes"));
    // Workloads, in the file too: the same conversion reads both.
    let workloads = json!([
        {"kind": "Deployment", "apiVersion": "apps/v1", "metadata": {"name": "web", "namespace": "shop"},
         "spec": {"replicas": 3}, "status": {"readyReplicas": 2, "availableReplicas": 2, "unavailableReplicas": 1}},
        {"kind": "DaemonSet", "apiVersion": "apps/v1", "metadata": {"name": "agent", "namespace": "kube-system"},
         "status": {"desiredNumberScheduled": 4, "currentNumberScheduled": 4, "numberAvailable": 3,
                    "numberUnavailable": 1, "numberMisscheduled": 0, "numberReady": 3}},
        {"kind": "StatefulSet", "apiVersion": "apps/v1", "metadata": {"name": "db", "namespace": "shop"},
         "spec": {"replicas": 2}, "status": {"replicas": 2, "readyReplicas": 2, "availableReplicas": 1}},
        {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "bare", "namespace": "shop"},
         "spec": {"replicas": 1}, "status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}},
        {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": {"name": "web-7d4b9c8f5d", "namespace": "shop",
         "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d", "controller": true}]},
         "spec": {"replicas": 3}, "status": {"replicas": 3}}
    ]);
    let mut dump = oracle();
    // A pod no node has taken yet: the leader's pending-pod records.
    let mut unscheduled = pod("queued-0", &json!({}), &json!([]));
    unscheduled["spec"].as_object_mut().unwrap().remove("nodeName");
    unscheduled["status"] = json!({"phase": "Pending",
        "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]});
    let workloads = {
        let mut w = workloads;
        w.as_array_mut().unwrap().push(unscheduled);
        w
    };
    let (storage, hyperpod, hyperpod_name) = storage_objects(&mut dump);
    api.apply(hyperpod);
    for w in workloads.as_array().unwrap().iter().chain(&storage) {
        api.apply(w.clone());
        dump["items"].as_array_mut().unwrap().push(w.clone());
    }
    tx.send_replace(true);
    until("the cluster view", || index.snapshot().cluster().is_some()).await;

    let mut want = parse_list(&dump.to_string()).unwrap().cluster.unwrap();
    want.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    let got = index.snapshot().cluster().unwrap().clone();
    assert_eq!(got, want);
    // The oracle's values (METRICS.md's worked cluster): 4 nodes, 2 failed.
    assert_eq!((got.node_count(), got.failed_node_count()), (4, 2));
    // Four workloads: the Deployment's own ReplicaSet is not one.
    let names: Vec<(&str, Option<u64>, Option<u64>)> = got
        .workloads
        .iter()
        .map(|w| (w.name.as_str(), w.desired, w.unavailable))
        .collect();
    assert_eq!(
        names,
        [
            ("web", Some(3), Some(1)),
            ("agent", Some(4), Some(1)),
            ("db", Some(2), None),
            ("bare", Some(1), None)
        ]
    );

    // Storage, as the file source reads the same objects.
    assert_storage(&got, &hyperpod_name);
    // A deleted claim and volume leave the view.
    storage_follows_deletes(&api, &index).await;

    // A pod that stops running leaves the namespace count.
    let running_before = got.running_pods();
    let mut pod = oracle()["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["kind"] == "Pod" && i["status"]["phase"] == "Running")
        .cloned()
        .unwrap();
    pod["status"]["phase"] = json!("Succeeded");
    api.apply(pod);
    until("the count to drop", || {
        index
            .snapshot()
            .cluster()
            .is_some_and(|c| c.running_pods() == running_before - 1)
    })
    .await;

    tx.send_replace(false);
    until("the cluster view to go", || index.snapshot().cluster().is_none()).await;
    cancel.cancel();
    task.await.unwrap();
}

/// The leader scrapes `/metrics` once an interval into the index, the allowed families only; a
/// 403 (RBAC without the `nonResourceURLs` rule) clears it and is counted; losing the lead stops
/// the scrapes.
#[tokio::test]
async fn the_leader_scrapes_the_control_plane_until_forbidden_or_no_longer_leading() {
    let api = KubeApi::start();
    api.apply_list(&oracle());
    api.set_control_plane_metrics(
        "# TYPE apiserver_request_total counter\n\
         apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 10\n\
         # TYPE go_goroutines gauge\n\
         go_goroutines 12\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let client = connect_apiserver(Some(&api.kubeconfig(dir.path())), false)
        .await
        .unwrap();
    let index = PodIndex::new(Some(NODE.to_string()));
    let telemetry = Telemetry::new();
    let (tx, rx) = watch::channel(false);
    let cancel = CancellationToken::new();
    let watch = ClusterWatch {
        client,
        index: index.clone(),
        telemetry: telemetry.clone(),
        workloads: false,
        pending_pods: false,
        storage: false,
        control_plane: Some(Duration::from_millis(100)),
    };
    let task = tokio::spawn(watch.run(rx, cancel.clone()));
    tokio::task::yield_now().await;
    assert!(
        !api.requests().iter().any(|q| q.resource == "/metrics"),
        "a follower does not scrape"
    );
    tx.send_replace(true);
    until("a scrape", || index.snapshot().control_plane().is_some()).await;
    let first = index.snapshot().control_plane().unwrap().clone();
    assert_eq!(first.series.len(), 1, "{first:?}");
    assert_eq!(first.series[0].family, "apiserver_request_total");
    assert_eq!(first.series[0].value, kinsight::kube::SeriesValue::Counter(10.0));
    // The next scrape sees the new value.
    api.set_control_plane_metrics("apiserver_request_total{code=\"200\",resource=\"pods\",verb=\"GET\"} 25\n");
    until("the next scrape", || {
        index.snapshot().control_plane().is_some_and(|s| {
            s.seq > first.seq && s.series.first().map(|x| &x.value) == Some(&kinsight::kube::SeriesValue::Gauge(25.0))
        })
    })
    .await;
    assert!(telemetry.get(Name::ControlPlaneScrapes, &[("result", "ok")]) >= 2.0);

    api.forbid("get", "/metrics");
    until("the forbidden scrape", || {
        telemetry.get(Name::ControlPlaneScrapes, &[("result", "forbidden")]) >= 1.0
    })
    .await;
    assert!(index.snapshot().control_plane().is_none());

    tx.send_replace(false);
    until("the cluster view to go", || index.snapshot().cluster().is_none()).await;
    let scrapes = api.requests().iter().filter(|q| q.resource == "/metrics").count();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        api.requests().iter().filter(|q| q.resource == "/metrics").count(),
        scrapes,
        "no scrape after losing the lead"
    );
    cancel.cancel();
    task.await.unwrap();
}

/// Everything the agent asks of the apiserver — the pod source (with a `ReplicaSet` owner to look
/// up and a Service to match), the elector (create, renew, release) and the leader's cluster
/// watches — is granted by `kube::rbac::PERMISSIONS` (which `manifests/rbac.yaml` grants exactly,
/// see tests/deploy.rs), and every permission there is used.
#[tokio::test]
async fn the_rbac_table_grants_exactly_the_requests_the_agent_makes() {
    use kinsight::kube::rbac::{PERMISSIONS, Scope};
    let api = KubeApi::start();
    api.apply_list(&oracle());
    api.apply(json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "shop-v1", "namespace": "shop", "uid": "rs-shop"}}));
    api.apply(pod(
        "shop-v1-abcde",
        &json!({"app": "web"}),
        &json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "shop-v1", "uid": "rs-shop", "controller": true}]),
    ));
    let r = Running::synced(&api).await;
    let dir = tempfile::tempdir().unwrap();
    let (e, leading, tx) = elector(&api, dir.path(), "node-a/kinsight-a").await;
    let stop = CancellationToken::new();
    let elector_task = tokio::spawn(e.run(tx, stop.clone()));
    let cluster = ClusterWatch {
        client: connect_apiserver(Some(&api.kubeconfig(dir.path())), false)
            .await
            .unwrap(),
        index: r.index.clone(),
        telemetry: Telemetry::new(),
        workloads: true,
        pending_pods: true,
        storage: true,
        control_plane: Some(Duration::from_millis(200)),
    };
    let cluster_task = tokio::spawn(cluster.run(leading.clone(), stop.clone()));
    until("the cluster view", || r.index.snapshot().cluster().is_some()).await;
    assert!(api.wait_for_request(LIMIT, |q| q.resource == "replicasets"));
    assert!(api.wait_for_request(LIMIT, |q| q.resource == "/metrics"));
    // Renew once, then release.
    let renewed = |q: &support::ApiRequest| q.verb == "update" && q.resource == "leases";
    assert!(api.wait_for_request(LIMIT, renewed));
    stop.cancel();
    elector_task.await.unwrap();
    cluster_task.await.unwrap();
    r.stop().await;

    let covers = |p: &kinsight::kube::rbac::Permission, q: &support::ApiRequest| {
        p.group == q.group
            && p.resource == q.resource
            && p.verb == q.verb
            && match p.scope {
                Scope::Cluster => true,
                Scope::OwnNamespace { name } => {
                    q.namespace.as_deref() == Some("amazon-cloudwatch") && (name.is_none() || q.name.as_deref() == name)
                }
                Scope::NonResource => q.group.is_empty(),
            }
    };
    let requests = api.requests();
    for q in &requests {
        assert!(PERMISSIONS.iter().any(|p| covers(p, q)), "not granted: {q:?}");
    }
    for p in PERMISSIONS {
        assert!(
            requests.iter().any(|q| covers(p, q)),
            "granted but never used: {}",
            p.describe()
        );
    }
}

/// `PodName` (and its `prefer_full_pod_name` twin) for each owner kind, through the apiserver
/// source: Deployment (by the `ReplicaSet`'s owner), bare `ReplicaSet`, `DaemonSet`, `StatefulSet`,
/// Job (prefix), `CronJob` (10-digit suffix), static pod (mirror), kube-proxy, no owner.
#[tokio::test]
async fn workload_names_for_each_owner_kind() {
    let api = KubeApi::start();
    let owner = |kind: &str, name: &str| json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true}]);
    api.apply(json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "api-7d4b9c8f5d", "namespace": "shop", "uid": "uid-api-7d4b9c8f5d",
                     "ownerReferences": owner("Deployment", "api")}}));
    api.apply(json!({"kind": "ReplicaSet", "apiVersion": "apps/v1",
        "metadata": {"name": "solo", "namespace": "shop", "uid": "uid-solo"}}));
    let cases = [
        // (pod name, owners, PodName, PodName with prefer_full_pod_name)
        (
            "api-7d4b9c8f5d-x2x2x",
            owner("ReplicaSet", "api-7d4b9c8f5d"),
            "api",
            "api",
        ),
        ("solo-abcde", owner("ReplicaSet", "solo"), "solo", "solo"),
        ("agent-q7k2z", owner("DaemonSet", "agent"), "agent", "agent"),
        ("db-0", owner("StatefulSet", "db"), "db-0", "db-0"),
        (
            "migrate-schema-4xkq2",
            owner("Job", "migrate-schema"),
            "migrate",
            "migrate-schema",
        ),
        (
            "backup-1712345678-p9x8d",
            owner("Job", "backup-1712345678"),
            "backup",
            "backup",
        ),
        (
            "kube-proxy-8xk2l",
            owner("DaemonSet", "kube-proxy"),
            "kube-proxy",
            "kube-proxy",
        ),
        (
            "kube-proxy-ip-10-0-1-23",
            json!([]),
            "kube-proxy",
            "kube-proxy-ip-10-0-1-23",
        ),
        ("lonely", json!([]), "lonely", "lonely"),
    ];
    for (name, owners, _, _) in &cases {
        api.apply(pod(name, &json!({}), owners));
    }
    // A static pod's mirror: owned by the Node, its cgroup named by the config hash.
    let mut mirror = pod("etcd-ip-10-0-1-23", &json!({}), &owner("Node", NODE));
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "0123abcd"});
    api.apply(mirror);
    let r = Running::synced(&api).await;
    until("the Deployment's name from the ReplicaSet GET", || {
        r.pod("shop", "api-7d4b9c8f5d-x2x2x")
            .is_some_and(|p| p.workload_name == "api")
    })
    .await;
    for (name, _, want, want_full) in &cases {
        let p = r.pod("shop", name).unwrap_or_else(|| panic!("{name} not indexed"));
        assert_eq!((p.pod_name(false), p.pod_name(true)), (*want, *want_full), "{name}");
    }
    let etcd = r.pod("shop", "etcd-ip-10-0-1-23").unwrap();
    assert!(etcd.is_static_pod());
    assert_eq!(etcd.pod_name(false), "etcd-ip-10-0-1-23");
    assert_eq!(r.index.by_uid("0123abcd").unwrap().name, "etcd-ip-10-0-1-23");
    r.stop().await;
}
