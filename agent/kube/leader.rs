//! The leader's cluster view from the apiserver: Nodes, running pods per namespace and ready pods
//! per Service, for the Cluster, `ClusterNamespace` and `ClusterService` records.
//!
//! The watches start when this agent becomes the leader and stop, their memory freed, when it
//! stops leading — as the CloudWatch agent creates its clients on winning the election and shuts
//! its watches down on losing it (`internal/k8sapiserver/leaderelection.go` in
//! amazon-contributing/opentelemetry-collector-contrib). Until all three have completed their
//! first list, no cluster view is set, so no cluster record is sent (never 0 for unknown).
//!
//! Memory is bounded by what is kept per object, not by the objects' size:
//! - pods: a watch with `fieldSelector=status.phase=Running`, so only running pods are ever sent
//!   (a pod that stops running arrives as a delete); each is kept as its UID and an `Arc` of
//!   its namespace's name, about 100 bytes — 150,000 pods hold about 15 MiB;
//! - Nodes: name and conditions;
//! - `EndpointSlices` (`discovery.k8s.io/v1`; v1 Endpoints is deprecated since Kubernetes 1.33):
//!   per slice its Service and its distinct ready pods;
//! - with enhanced observability, `PersistentVolumeClaims` (namespace, name, phase),
//!   `PersistentVolumes` and `Ingresses` (`networking.k8s.io/v1`) by key only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::{
    ClaimState, ClusterState, NodeState, ServiceKey, WorkloadState, claim_state, daemon_set_state, deployment_state,
    node_state, replica_set_state, slice_ready_pods, stateful_set_state,
};
use super::control_plane;
use super::convert::{Convert, pod_info};
use super::index::PodIndex;
use super::model::{PodInfo, PodPhase};
use crate::telemetry::{Name, Telemetry};

/// Changes within this window make one new cluster view: on a large cluster the watches deliver
/// many events a second, and the records are needed once an interval.
const PUBLISH_DELAY: Duration = Duration::from_secs(1);

/// How often a forbidden `/metrics` is asked again.
const FORBIDDEN_RETRY: Duration = Duration::from_mins(10);

/// Objects per list page. The watches list at once, and a page is held whole while it is
/// decoded: 500 (client-go's and kube's default) Nodes of 16 KB is 8 MB of JSON per page, and the
/// 5,000-node benchmark peaked 120 MiB above a follower (docs/performance.md, `scripts/bench
/// kube-leader`). More requests at a relist are the price: 1,600 instead of 320 there.
const LIST_PAGE_SIZE: u32 = 100;

/// The leader's cluster watches.
#[derive(Clone)]
pub struct ClusterWatch {
    pub client: Client,
    pub index: PodIndex,
    pub telemetry: Telemetry,
    /// Watch Deployments, `DaemonSets`, `StatefulSets` and `ReplicaSets` for the workload records:
    /// only when performance events are written or enhanced observability is on (the records
    /// are log-only in standard mode).
    pub workloads: bool,
    /// Watch unscheduled Pending pods for their enhanced Pod records.
    pub pending_pods: bool,
    /// Watch `PersistentVolumeClaims`, `PersistentVolumes` and `Ingresses` for the enhanced
    /// storage records.
    pub storage: bool,
    /// Scrape the apiserver's `/metrics` this often for the enhanced control-plane records
    /// (`None`: not at all).
    pub control_plane: Option<Duration>,
}

impl std::fmt::Debug for ClusterWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterWatch").finish_non_exhaustive()
    }
}

/// One list-then-watch's objects, with the buffer of a relist in progress.
struct Objects<K, V> {
    live: HashMap<K, V>,
    relist: Option<HashMap<K, V>>,
    synced: bool,
}

impl<K: std::hash::Hash + Eq, V> Default for Objects<K, V> {
    fn default() -> Self {
        Objects {
            live: HashMap::new(),
            relist: None,
            synced: false,
        }
    }
}

impl<K: std::hash::Hash + Eq, V: PartialEq> Objects<K, V> {
    /// Applies one watcher event, given its object's key and kept value; returns whether the live
    /// set changed.
    fn apply<O>(
        &mut self,
        ev: watcher::Event<O>,
        key: impl Fn(&O) -> Option<K>,
        value: impl Fn(&O) -> Option<V>,
    ) -> bool {
        match ev {
            watcher::Event::Init => {
                self.relist = Some(HashMap::new());
                false
            }
            watcher::Event::InitApply(o) => {
                if let (Some(k), Some(v), Some(buffer)) = (key(&o), value(&o), self.relist.as_mut()) {
                    buffer.insert(k, v);
                }
                false
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = self.relist.take() {
                    self.live = buffer;
                }
                self.synced = true;
                true
            }
            watcher::Event::Apply(o) => match (key(&o), value(&o)) {
                // Most updates (a pod's status, a Node's heartbeat) change nothing kept: no new
                // cluster view for them.
                (Some(k), Some(v)) if self.live.get(&k) == Some(&v) => false,
                (Some(k), Some(v)) => {
                    self.live.insert(k, v);
                    true
                }
                (Some(k), None) => self.live.remove(&k).is_some(),
                _ => false,
            },
            watcher::Event::Delete(o) => key(&o).is_some_and(|k| self.live.remove(&k).is_some()),
        }
    }
}

/// A pod by (namespace, name).
type PodRef = (String, String);

/// What is kept of one `EndpointSlice`: its Service and the distinct ready pods it lists.
type SliceView = (ServiceKey, BTreeSet<PodRef>);

/// The three watches' state.
#[derive(Default)]
struct View {
    nodes: Objects<String, NodeState>,
    /// Running pods: UID → namespace.
    pods: Objects<String, Arc<str>>,
    /// (namespace, slice name) → its Service and ready pods.
    slices: Objects<(String, String), SliceView>,
    /// Namespace names shared by the pods of each namespace.
    namespaces: HashMap<String, Arc<str>>,
    /// Workloads by kind, (namespace, name); synced from the start when not watched.
    deployments: Objects<(String, String), WorkloadState>,
    daemon_sets: Objects<(String, String), WorkloadState>,
    stateful_sets: Objects<(String, String), WorkloadState>,
    replica_sets: Objects<(String, String), WorkloadState>,
    /// Unscheduled Pending pods by UID.
    pending: Objects<String, Arc<PodInfo>>,
    /// `PersistentVolumeClaims` by (namespace, name); `PersistentVolumes` by name; `Ingresses`
    /// by (namespace, name), keeping nothing: the key has the namespace.
    claims: Objects<(String, String), ClaimState>,
    volumes: Objects<String, ()>,
    ingresses: Objects<(String, String), ()>,
}

impl View {
    fn synced(&self) -> bool {
        self.nodes.synced
            && self.pods.synced
            && self.slices.synced
            && self.deployments.synced
            && self.daemon_sets.synced
            && self.stateful_sets.synced
            && self.replica_sets.synced
            && self.pending.synced
            && self.claims.synced
            && self.volumes.synced
            && self.ingresses.synced
    }

    fn namespace(&mut self, ns: &str) -> Arc<str> {
        if let Some(a) = self.namespaces.get(ns) {
            return Arc::clone(a);
        }
        let a: Arc<str> = Arc::from(ns);
        self.namespaces.insert(ns.to_string(), Arc::clone(&a));
        a
    }

    fn state(&mut self) -> ClusterState {
        let mut nodes: Vec<NodeState> = self.nodes.live.values().cloned().collect();
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        let mut namespace_running_pods = BTreeMap::new();
        for ns in self.pods.live.values() {
            *namespace_running_pods.entry(ns.to_string()).or_insert(0) += 1;
        }
        let mut services: BTreeMap<ServiceKey, BTreeSet<&PodRef>> = BTreeMap::new();
        for (service, pods) in self.slices.live.values() {
            services.entry(service.clone()).or_default().extend(pods.iter());
        }
        let service_ready_pods = services
            .into_iter()
            .filter(|(_, pods)| !pods.is_empty())
            .map(|(k, pods)| (k, pods.len() as u64))
            .collect();
        // Namespaces without pods any more are forgotten.
        self.namespaces.retain(|_, a| Arc::strong_count(a) > 1);
        let mut workloads: Vec<WorkloadState> = [
            &self.deployments,
            &self.daemon_sets,
            &self.stateful_sets,
            &self.replica_sets,
        ]
        .iter()
        .flat_map(|o| o.live.values().cloned())
        .collect();
        workloads.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        let mut pending_pods: Vec<Arc<PodInfo>> = self.pending.live.values().cloned().collect();
        pending_pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut claims: Vec<ClaimState> = self.claims.live.values().cloned().collect();
        claims.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut namespace_ingresses = BTreeMap::new();
        for (ns, _) in self.ingresses.live.keys() {
            *namespace_ingresses.entry(ns.clone()).or_insert(0) += 1;
        }
        ClusterState {
            nodes,
            namespace_running_pods,
            service_ready_pods,
            workloads,
            pending_pods,
            claims,
            persistent_volumes: self.volumes.live.len() as u64,
            namespace_ingresses,
        }
    }
}

impl ClusterWatch {
    /// Runs the cluster watches whenever `leading` is true, until `cancel`.
    pub async fn run(self, mut leading: watch::Receiver<bool>, cancel: CancellationToken) {
        loop {
            while !*leading.borrow_and_update() {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = leading.changed() => if changed.is_err() { return },
                }
            }
            tracing::info!(
                workloads = self.workloads,
                "leader: starting the cluster watches (nodes, running pods, endpointslices, and workloads when on)"
            );
            let stop = CancellationToken::new();
            tokio::select! {
                ((), ()) = async { tokio::join!(self.watch(stop.clone()), self.scrape_control_plane(stop.clone())) } => {}
                () = async {
                    while leading.changed().await.is_ok() && *leading.borrow() {}
                } => {}
                () = cancel.cancelled() => {}
            }
            stop.cancel();
            self.index.set_cluster(None);
            self.index.set_control_plane(None);
            if cancel.is_cancelled() {
                return;
            }
            tracing::info!("not the leader any more: cluster watches stopped, cluster records stop");
        }
    }

    #[expect(
        clippy::too_many_lines,
        reason = "one select over the leader's eleven watches reads best in one place"
    )]
    async fn watch(&self, stop: CancellationToken) {
        // Not `resourceVersion=0` (the watch cache) as the node-scoped watches ask: an apiserver
        // may serve such a list whole, ignoring `limit` ("the watch cache does not support
        // limit", Kubernetes API concepts, "Resource versions"), and a cluster-wide list of
        // 150,000 pods is more than a gigabyte of JSON. A consistent list is paged.
        let cfg = || watcher::Config::default().page_size(LIST_PAGE_SIZE);
        let mut nodes = pin!(watcher(Api::<Node>::all(self.client.clone()), cfg()).default_backoff());
        let mut pods = pin!(
            watcher(
                Api::<Pod>::all(self.client.clone()),
                cfg().fields("status.phase=Running")
            )
            .default_backoff()
        );
        let mut slices = pin!(watcher(Api::<EndpointSlice>::all(self.client.clone()), cfg()).default_backoff());
        let w = self.workloads;
        let mut deployments = pin!(watcher(Api::<Deployment>::all(self.client.clone()), cfg()).default_backoff());
        let mut daemon_sets = pin!(watcher(Api::<DaemonSet>::all(self.client.clone()), cfg()).default_backoff());
        let mut stateful_sets = pin!(watcher(Api::<StatefulSet>::all(self.client.clone()), cfg()).default_backoff());
        let mut replica_sets = pin!(watcher(Api::<ReplicaSet>::all(self.client.clone()), cfg()).default_backoff());
        let pending_on = self.pending_pods;
        let mut pending = pin!(
            watcher(
                Api::<Pod>::all(self.client.clone()),
                cfg().fields("status.phase=Pending,spec.nodeName=")
            )
            .default_backoff()
        );
        let storage = self.storage;
        let mut claims = pin!(watcher(Api::<PersistentVolumeClaim>::all(self.client.clone()), cfg()).default_backoff());
        let mut volumes = pin!(watcher(Api::<PersistentVolume>::all(self.client.clone()), cfg()).default_backoff());
        let mut ingresses = pin!(watcher(Api::<Ingress>::all(self.client.clone()), cfg()).default_backoff());
        let mut view = View::default();
        view.pending.synced = !pending_on;
        for synced in [
            &mut view.claims.synced,
            &mut view.volumes.synced,
            &mut view.ingresses.synced,
        ] {
            *synced = !storage;
        }
        if !w {
            for o in [
                &mut view.deployments,
                &mut view.daemon_sets,
                &mut view.stateful_sets,
                &mut view.replica_sets,
            ] {
                o.synced = true;
            }
        }
        let key = |m: &kube::api::ObjectMeta| Some((m.namespace.clone()?, m.name.clone()?));
        let mut publish_at: Option<Instant> = None;
        loop {
            let publish_timer = async {
                match publish_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let changed = tokio::select! {
                () = stop.cancelled() => return,
                Some(ev) = nodes.next() => match ev {
                    Ok(ev) => view.nodes.apply(ev, |n: &Node| n.metadata.name.clone(), node_state),
                    Err(e) => self.failed("nodes", &e),
                },
                Some(ev) = pods.next() => match ev {
                    Ok(ev) => {
                        // Only the namespace is kept; a pod of another phase (should the
                        // selector be ignored) is dropped.
                        let ns = |p: &Pod| {
                            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                            running.then(|| p.metadata.namespace.clone().unwrap_or_default())
                        };
                        let mapped = map_event(ev, |p| ns(p).map(|n| view.namespace(&n)));
                        view.pods.apply(mapped, |(uid, _)| uid.clone(), |(_, ns)| ns.clone())
                    }
                    Err(e) => self.failed("pods (cluster)", &e),
                },
                Some(ev) = slices.next() => match ev {
                    Ok(ev) => view.slices.apply(
                        ev,
                        |s: &EndpointSlice| Some((s.metadata.namespace.clone()?, s.metadata.name.clone()?)),
                        slice_ready_pods,
                    ),
                    Err(e) => self.failed("endpointslices", &e),
                },
                Some(ev) = deployments.next(), if w => match ev {
                    Ok(ev) => view.deployments.apply(ev, |d: &Deployment| key(&d.metadata), deployment_state),
                    Err(e) => self.failed("deployments", &e),
                },
                Some(ev) = daemon_sets.next(), if w => match ev {
                    Ok(ev) => view.daemon_sets.apply(ev, |d: &DaemonSet| key(&d.metadata), daemon_set_state),
                    Err(e) => self.failed("daemonsets", &e),
                },
                Some(ev) = stateful_sets.next(), if w => match ev {
                    Ok(ev) => view.stateful_sets.apply(ev, |s: &StatefulSet| key(&s.metadata), stateful_set_state),
                    Err(e) => self.failed("statefulsets", &e),
                },
                Some(ev) = pending.next(), if pending_on => match ev {
                    Ok(ev) => view.pending.apply(ev, |p: &Pod| p.metadata.uid.clone(), pending_pod),
                    Err(e) => self.failed("pods (pending)", &e),
                },
                Some(ev) = replica_sets.next(), if w => match ev {
                    Ok(ev) => view.replica_sets.apply(ev, |r: &ReplicaSet| key(&r.metadata), replica_set_state),
                    Err(e) => self.failed("replicasets", &e),
                },
                Some(ev) = claims.next(), if storage => match ev {
                    Ok(ev) => view.claims.apply(ev, |c: &PersistentVolumeClaim| key(&c.metadata), claim_state),
                    Err(e) => self.failed("persistentvolumeclaims", &e),
                },
                Some(ev) = volumes.next(), if storage => match ev {
                    Ok(ev) => view.volumes.apply(ev, |v: &PersistentVolume| v.metadata.name.clone(), |_| Some(())),
                    Err(e) => self.failed("persistentvolumes", &e),
                },
                Some(ev) = ingresses.next(), if storage => match ev {
                    Ok(ev) => view.ingresses.apply(ev, |i: &Ingress| key(&i.metadata), |_| Some(())),
                    Err(e) => self.failed("ingresses", &e),
                },
                () = publish_timer => {
                    publish_at = None;
                    if view.synced() {
                        let state = view.state();
                        self.telemetry.set(Name::ClusterNodes, &[], state.node_count() as f64);
                        self.index.set_cluster(Some(state));
                    }
                    false
                }
            };
            if changed && publish_at.is_none() {
                publish_at = Some(Instant::now() + PUBLISH_DELAY);
            }
        }
    }

    /// Scrapes `/metrics` every [`ClusterWatch::control_plane`] while leading, the first at
    /// once. Each scrape may take up to the interval (upstream's scrape timeout is its
    /// interval too).
    async fn scrape_control_plane(&self, stop: CancellationToken) {
        let Some(every) = self.control_plane else { return };
        let mut seq = 0u64;
        let mut told_forbidden = false;
        let mut told_first = false;
        let mut next = Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(next) => {}
            }
            seq += 1;
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = tokio::time::timeout(every, control_plane::scrape(&self.client, seq)) => r,
            };
            next = Instant::now() + every;
            let result = result.unwrap_or_else(|_| {
                Err(control_plane::ScrapeError::Body(format!(
                    "no complete answer within {every:?}"
                )))
            });
            match result {
                Ok(scrape) => {
                    self.telemetry.add(Name::ControlPlaneScrapes, &[("result", "ok")], 1);
                    if !told_first {
                        told_first = true;
                        tracing::info!(
                            series = scrape.series.len(),
                            "leader: control-plane metrics scraped from the apiserver's /metrics"
                        );
                    }
                    told_forbidden = false;
                    self.index.set_control_plane(Some(scrape));
                }
                Err(control_plane::ScrapeError::Forbidden) => {
                    self.telemetry
                        .add(Name::ControlPlaneScrapes, &[("result", "forbidden")], 1);
                    if !told_forbidden {
                        told_forbidden = true;
                        tracing::warn!(error = %control_plane::ScrapeError::Forbidden, "leader: no control-plane metrics; retrying every 10 minutes");
                    }
                    self.index.set_control_plane(None);
                    // RBAC does not change by itself often: ask rarely.
                    next = Instant::now() + every.max(FORBIDDEN_RETRY);
                }
                Err(e) => {
                    self.telemetry.add(Name::ControlPlaneScrapes, &[("result", "error")], 1);
                    tracing::warn!(error = %crate::telemetry::chain(&e), "leader: control-plane scrape failed; the next interval tries again");
                }
            }
        }
    }

    fn failed(&self, resource: &'static str, e: &watcher::Error) -> bool {
        self.telemetry
            .add(Name::ApiserverWatchErrors, &[("resource", resource)], 1);
        tracing::warn!(resource, error = %crate::telemetry::chain(e), "leader: cluster watch failing; the last cluster view stays, retrying with backoff");
        false
    }
}

/// An unscheduled Pending pod as the index would hold it (the suffix rule names its workload).
fn pending_pod(p: &Pod) -> Option<Arc<PodInfo>> {
    let mut warnings = Vec::new();
    let mut cx = Convert {
        index: 0,
        warnings: &mut warnings,
        deployment_of: &|_| None,
    };
    let info = pod_info(p, &mut cx)?;
    (info.phase == PodPhase::Pending && info.node_name.is_none()).then(|| Arc::new(info))
}

/// A pod event reduced to (UID, namespace) before anything is kept: the full object is dropped
/// here. A pod without a UID is skipped.
fn map_event(
    ev: watcher::Event<Pod>,
    mut ns: impl FnMut(&Pod) -> Option<Arc<str>>,
) -> watcher::Event<(Option<String>, Option<Arc<str>>)> {
    let mut slim = |p: Pod| (p.metadata.uid.clone(), ns(&p));
    match ev {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(p) => watcher::Event::InitApply(slim(p)),
        watcher::Event::Apply(p) => watcher::Event::Apply(slim(p)),
        watcher::Event::Delete(p) => watcher::Event::Delete(slim(p)),
    }
}
