//! The node-scoped pod index: an immutable [`Snapshot`] behind a `tokio::sync::watch` channel.
//!
//! Readers (a metrics tick, log enrichment) take the current `Arc<Snapshot>` in a few
//! nanoseconds and never wait for I/O: sources build a whole new snapshot off to the
//! side and swap it in with one `send_replace`. A tick that needs several answers should take
//! one [`PodIndex::snapshot`] and ask it, so that all of them come from the same generation.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::time::Instant;

use super::cluster::{ClusterState, NodeState};
use super::control_plane::ControlPlaneScrape;
use super::model::{NodeTotals, PodInfo, PodPhase, PodResourceCeiling};

/// How long a pod that left the index is still known to [`Snapshot::recently_departed`]: the
/// log lines of a pod deleted before its file was opened (or read late, during an outage) keep
/// their metadata. Vector's `kubernetes_logs` keeps deleted pods for 60 s (`delay_deletion_ms`);
/// a log pipeline that pauses while CloudWatch Logs is down needs longer.
pub const DEPARTED_GRACE: std::time::Duration = std::time::Duration::from_mins(5);

/// One consistent view of the pods of this node, and of the cluster when this agent leads.
#[derive(Debug, Default)]
pub struct Snapshot {
    pods: Vec<Arc<PodInfo>>,
    /// The leader's cluster view: the apiserver leader's watches, or a cluster dump in the file
    /// source.
    cluster: Option<Arc<ClusterState>>,
    /// This node's own Node object (conditions, pod capacity), for the [E] `node_status_*`
    /// fields: the apiserver source's Node watch, or this node's Node in a cluster dump.
    own_node: Option<Arc<NodeState>>,
    /// The leader's last scrape of the apiserver's `/metrics` (enhanced observability only).
    control_plane: Option<Arc<ControlPlaneScrape>>,
    /// `metadata.uid` and, for mirror pods, the static pod's config hash → position in `pods`.
    by_uid: HashMap<String, usize>,
    /// Container id (no runtime prefix) → (position in `pods`, container index).
    by_container: HashMap<String, (usize, usize)>,
    synced: bool,
    generation: u64,
    /// Pods that left the index within [`DEPARTED_GRACE`], by `metadata.uid` (and config hash),
    /// with when they left: the log pipeline still enriches their last lines.
    departed: HashMap<String, (Arc<PodInfo>, Instant)>,
    /// Hash of the bytes the file source built this snapshot from, so that it can skip an
    /// identical re-read.
    pub(crate) content_hash: Option<u64>,
    /// The pods the container runtime last listed ([`PodIndex::set_runtime`]), kept so that a
    /// new list from the pod source merges them again.
    runtime: Arc<[Arc<PodInfo>]>,
    /// `pods[..primary_len]` came from the pod source; the rest are runtime pods it does not
    /// know.
    primary_len: usize,
}

impl Snapshot {
    fn build(
        pods: Vec<Arc<PodInfo>>,
        cluster: Option<ClusterState>,
        generation: u64,
        content_hash: Option<u64>,
    ) -> Snapshot {
        let pods_len = pods.len();
        let mut by_uid = HashMap::with_capacity(pods.len() * 2);
        let mut by_container = HashMap::with_capacity(pods.len() * 3);
        for (i, pod) in pods.iter().enumerate() {
            by_uid.entry(pod.uid.clone()).or_insert(i);
            if let Some(hash) = &pod.mirror_of {
                by_uid.entry(hash.clone()).or_insert(i);
            }
            for (c, container) in pod.containers.iter().chain(&pod.init_containers).enumerate() {
                if let Some(id) = &container.id {
                    by_container.entry(id.clone()).or_insert((i, c));
                }
            }
        }
        Snapshot {
            pods,
            cluster: cluster.map(Arc::new),
            by_uid,
            by_container,
            synced: true,
            generation,
            departed: HashMap::new(),
            content_hash,
            own_node: None,
            control_plane: None,
            runtime: Arc::new([]),
            primary_len: pods_len,
        }
    }

    /// The leader's last control-plane scrape, while this agent leads with enhanced
    /// observability on.
    pub fn control_plane(&self) -> Option<&Arc<ControlPlaneScrape>> {
        self.control_plane.as_ref()
    }

    /// Adds what the runtime knows and the pod source does not: a pod it has not listed yet
    /// (or at all, without a pod source), and the id of a container it has not published yet
    /// (a container started, or restarted, since the last watch event), resolved to the
    /// source's container of the same name.
    fn merge_runtime(&mut self, runtime: Arc<[Arc<PodInfo>]>) {
        for pod in runtime.iter() {
            match self.by_uid.get(&pod.uid).copied() {
                Some(i) => {
                    let known = &self.pods[i];
                    let position = |name: &str| {
                        known.containers.iter().position(|k| k.name == name).or_else(|| {
                            known
                                .init_containers
                                .iter()
                                .position(|k| k.name == name)
                                .map(|p| p + known.containers.len())
                        })
                    };
                    for c in pod.containers.iter().chain(&pod.init_containers) {
                        let Some(id) = &c.id else { continue };
                        if self.by_container.contains_key(id) {
                            continue;
                        }
                        if let Some(at) = position(&c.name) {
                            self.by_container.insert(id.clone(), (i, at));
                        }
                    }
                }
                None => {
                    let i = self.pods.len();
                    self.by_uid.insert(pod.uid.clone(), i);
                    for (at, c) in pod.containers.iter().chain(&pod.init_containers).enumerate() {
                        if let Some(id) = &c.id {
                            self.by_container.entry(id.clone()).or_insert((i, at));
                        }
                    }
                    self.pods.push(Arc::clone(pod));
                }
            }
        }
        self.runtime = runtime;
    }

    /// This node's Node object, when a source has it.
    pub fn own_node(&self) -> Option<&NodeState> {
        self.own_node.as_deref()
    }

    /// A pod that left the index less than [`DEPARTED_GRACE`] ago (never one still in it):
    /// for enriching the last log lines of a deleted pod, not for metrics.
    pub fn recently_departed(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.departed
            .get(uid)
            .filter(|(_, at)| at.elapsed() < DEPARTED_GRACE)
            .map(|(p, _)| Arc::clone(p))
    }

    /// The pod whose cgroup carries `uid`: its `metadata.uid`, or for a static pod the config
    /// hash in its mirror pod's `kubernetes.io/config.mirror` annotation.
    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.by_uid.get(uid).map(|&i| Arc::clone(&self.pods[i]))
    }

    /// The pod and container index ([`PodInfo::container`]) of a container id as cgroup scope
    /// names carry it (64 hex digits, no `containerd://` prefix). Init containers resolve too
    /// (through `initContainerStatuses`), at indices from `containers.len()` on.
    pub fn by_container_id(&self, id: &str) -> Option<(Arc<PodInfo>, usize)> {
        self.by_container.get(id).map(|&(p, c)| (Arc::clone(&self.pods[p]), c))
    }

    /// The pods bound to this node, in source order.
    pub fn pods(&self) -> &[Arc<PodInfo>] {
        &self.pods
    }

    /// The cluster view for the leader's records, when the source has one: the file source
    /// when its file is a cluster dump (a `List` with `Node` items). `None` means no cluster
    /// records (a plain pod list has no Nodes).
    pub fn cluster(&self) -> Option<&ClusterState> {
        self.cluster.as_deref()
    }

    /// Whether a source has delivered its first full list. Until then pod-derived fields are
    /// withheld (never reported as 0).
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Bumped by every replace; 0 before the first.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The Node record's pod-derived fields, without clamping each pod to the node capacity.
    pub fn node_totals(&self) -> NodeTotals {
        self.totals(None)
    }

    /// The Node record's pod-derived fields, each pod's request sums first clamped to
    /// `capacity`, as upstream's `podstore.go` does.
    pub fn node_totals_clamped(&self, capacity: &PodResourceCeiling) -> NodeTotals {
        self.totals(Some(capacity))
    }

    fn totals(&self, capacity: Option<&PodResourceCeiling>) -> NodeTotals {
        let mut t = NodeTotals::default();
        for pod in &self.pods {
            if pod.phase == PodPhase::Running {
                t.running_pods += 1;
            }
            t.running_containers += pod.number_of_running_containers();
            if !pod.phase.is_terminal() {
                let r = pod.resources(capacity);
                t.cpu_request_millicores += r.cpu_request_millicores.unwrap_or(0.0);
                t.memory_request_bytes += r.memory_request_bytes.unwrap_or(0.0);
            }
        }
        t
    }
}

/// Whether `pod` is one of `node`'s pods. With a node name, a pod must name that node. A pod
/// with no `spec.nodeName` is unscheduled when Pending and left out; in any other phase it can
/// only come from a hand-written file, whose every item the file source takes as a pod of this
/// node.
pub fn is_bound_to(pod: &PodInfo, node: Option<&str>) -> bool {
    match (&pod.node_name, node) {
        (Some(pod_node), Some(node)) => pod_node == node,
        (Some(_), None) => true,
        (None, _) => pod.phase != PodPhase::Pending,
    }
}

/// A cheap-to-clone handle on the current [`Snapshot`]; every clone sees every replace.
#[derive(Debug, Clone)]
pub struct PodIndex {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    node_name: Option<String>,
    tx: watch::Sender<Arc<Snapshot>>,
    /// Held by a writer from reading the previous snapshot to sending the next, so that the pod
    /// source and the leader's cluster view, writing from two tasks, never lose each other's
    /// update. Readers never take it.
    write: std::sync::Mutex<()>,
}

impl Default for PodIndex {
    fn default() -> Self {
        PodIndex::new(None)
    }
}

impl PodIndex {
    /// An empty, not yet synced index for the node `node_name` (`HOST_NAME` or the config's
    /// `host_name`); `None` keeps every scheduled pod a source delivers.
    pub fn new(node_name: Option<String>) -> PodIndex {
        let (tx, _) = watch::channel(Arc::new(Snapshot::default()));
        PodIndex {
            shared: Arc::new(Shared {
                node_name,
                tx,
                write: std::sync::Mutex::new(()),
            }),
        }
    }

    pub fn node_name(&self) -> Option<&str> {
        self.shared.node_name.as_deref()
    }

    /// Replaces the whole index with `pods` (those not bound to this node, per
    /// [`is_bound_to`], are left out) and marks it synced. Sources call it with a full list.
    pub fn replace(&self, pods: Vec<PodInfo>) {
        self.replace_with_hash(pods, None, None);
    }

    /// [`PodIndex::replace`], with the cluster view the leader's records come from.
    pub fn replace_with_cluster(&self, pods: Vec<PodInfo>, cluster: Option<ClusterState>) {
        self.replace_with_hash(pods, cluster, None);
    }

    /// [`PodIndex::replace`] that keeps the cluster view the leader last set
    /// ([`PodIndex::set_cluster`]): what the apiserver pod source uses.
    pub fn replace_keeping_cluster(&self, pods: Vec<Arc<PodInfo>>) {
        self.replace_inner(pods, None, None, true);
    }

    /// Sets (or with `None` clears) the leader's cluster view, keeping the pods as they are.
    pub fn set_cluster(&self, cluster: Option<ClusterState>) {
        self.amend(|next| next.cluster = cluster.map(Arc::new));
    }

    /// Sets (or with `None` clears) this node's own Node object, keeping the rest.
    pub fn set_own_node(&self, node: Option<NodeState>) {
        self.amend(|next| next.own_node = node.map(Arc::new));
    }

    /// Sets (or with `None` clears) the leader's last control-plane scrape, keeping the rest.
    pub fn set_control_plane(&self, scrape: Option<ControlPlaneScrape>) {
        self.amend(|next| next.control_plane = scrape.map(Arc::new));
    }

    /// The writers' lock (see `Shared::write`), held from reading the previous snapshot to
    /// sending the next.
    fn writer(&self) -> std::sync::MutexGuard<'_, ()> {
        self.shared
            .write
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new snapshot that shares the previous one's pods, changed by `change`.
    fn amend(&self, change: impl FnOnce(&mut Snapshot)) {
        let _writer = self.writer();
        let previous = self.snapshot();
        let mut next = Snapshot {
            pods: previous.pods.clone(),
            cluster: previous.cluster.clone(),
            own_node: previous.own_node.clone(),
            control_plane: previous.control_plane.clone(),
            by_uid: previous.by_uid.clone(),
            by_container: previous.by_container.clone(),
            synced: previous.synced,
            generation: previous.generation + 1,
            departed: previous.departed.clone(),
            content_hash: previous.content_hash,
            runtime: Arc::clone(&previous.runtime),
            primary_len: previous.primary_len,
        };
        change(&mut next);
        self.shared.tx.send_replace(Arc::new(next));
    }

    pub(crate) fn replace_with_hash(
        &self,
        pods: Vec<PodInfo>,
        cluster: Option<ClusterState>,
        content_hash: Option<u64>,
    ) {
        self.replace_inner(pods.into_iter().map(Arc::new).collect(), cluster, content_hash, false);
    }

    fn replace_inner(
        &self,
        mut pods: Vec<Arc<PodInfo>>,
        cluster: Option<ClusterState>,
        content_hash: Option<u64>,
        keep_cluster: bool,
    ) {
        let _writer = self.writer();
        let before = pods.len();
        pods.retain(|p| is_bound_to(p, self.node_name()));
        if pods.len() != before {
            tracing::debug!(
                left_out = before - pods.len(),
                node = self.node_name().unwrap_or(""),
                "pods not bound to this node left out of the index"
            );
        }
        let previous = self.snapshot();
        let mut next = Snapshot::build(pods, cluster, previous.generation + 1, content_hash);
        if keep_cluster {
            next.cluster.clone_from(&previous.cluster);
        }
        next.merge_runtime(Arc::clone(&previous.runtime));
        // The own Node comes from its own watch (or the file source sets it after this), the
        // control-plane scrape from the leader.
        next.own_node.clone_from(&previous.own_node);
        next.control_plane.clone_from(&previous.control_plane);
        let now = Instant::now();
        next.departed = previous
            .departed
            .iter()
            .filter(|(uid, (_, at))| now.duration_since(*at) < DEPARTED_GRACE && !next.by_uid.contains_key(*uid))
            .map(|(uid, v)| (uid.clone(), v.clone()))
            .collect();
        for (uid, &i) in &previous.by_uid {
            if !next.by_uid.contains_key(uid) {
                next.departed.insert(uid.clone(), (Arc::clone(&previous.pods[i]), now));
            }
        }
        self.shared.tx.send_replace(Arc::new(next));
    }

    /// Replaces the runtime's view (`metadata_source: runtime`, or the runtime source beside
    /// another source): its pods are merged under the pod source's (see
    /// `Snapshot::merge_runtime`) and the index counts as synced, so that pod and container
    /// records are named before (or without) the apiserver's first list. Runtime pods are this
    /// node's by definition: no node filter.
    pub fn set_runtime(&self, pods: Vec<PodInfo>) {
        let _writer = self.writer();
        let previous = self.snapshot();
        let primary = previous.pods[..previous.primary_len].to_vec();
        let mut next = Snapshot::build(primary, None, previous.generation + 1, previous.content_hash);
        next.cluster.clone_from(&previous.cluster);
        next.own_node.clone_from(&previous.own_node);
        next.departed.clone_from(&previous.departed);
        next.merge_runtime(pods.into_iter().map(Arc::new).collect());
        self.shared.tx.send_replace(Arc::new(next));
    }

    /// The current snapshot: ask it several questions to get answers of one generation.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.shared.tx.borrow())
    }

    /// A receiver that wakes on every replace.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.shared.tx.subscribe()
    }

    /// See [`Snapshot::by_uid`].
    pub fn by_uid(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.shared.tx.borrow().by_uid(uid)
    }

    /// See [`Snapshot::recently_departed`].
    pub fn recently_departed(&self, uid: &str) -> Option<Arc<PodInfo>> {
        self.shared.tx.borrow().recently_departed(uid)
    }

    /// See [`Snapshot::by_container_id`].
    pub fn by_container_id(&self, id: &str) -> Option<(Arc<PodInfo>, usize)> {
        self.shared.tx.borrow().by_container_id(id)
    }

    /// The pods bound to this node.
    pub fn pods(&self) -> Vec<Arc<PodInfo>> {
        self.shared.tx.borrow().pods.clone()
    }

    /// See [`Snapshot::node_totals`].
    pub fn node_totals(&self) -> NodeTotals {
        self.shared.tx.borrow().node_totals()
    }

    /// See [`Snapshot::is_synced`].
    pub fn is_synced(&self) -> bool {
        self.shared.tx.borrow().synced
    }
}
