//! The `apiserver` metadata source: a watch of this node's pods and of every Service, feeding the
//! [`PodIndex`] through the same conversion as the file source ([`super::convert`]).
//!
//! - Pods: `GET /api/v1/pods?fieldSelector=spec.nodeName=<node>` then a watch from the list's
//!   `resourceVersion`, through `kube`'s watcher: the list is asked with `resourceVersion=0`, so
//!   the apiserver serves it from its watch cache instead of etcd; bookmarks are asked for, so a
//!   reconnect resumes from a recent version; `410 Gone` (a version older than the watch cache
//!   holds) makes the watcher relist; errors back off exponentially. A pod is converted on
//!   receipt, so nothing of the API object (managed fields, volumes, env) is ever kept.
//! - Services (`tag_service`): a cluster-wide watch, each Service kept as its selector only, matched
//!   against this node's pods' labels ([`super::service_for`]).
//! - Workload names: a pod owned by a `ReplicaSet` asks the apiserver (one `GET` per `ReplicaSet`
//!   UID, cached for an hour) whether a Deployment controls it; until the answer arrives, and when
//!   it cannot come, the suffix rule decides. A `403` stops the GETs (suffix rule only, logged once).
//!
//! Nothing here blocks a metrics tick or a log line: the index is swapped whole when a change is
//! complete. Until the first full list, the index stays unsynced (pod records are withheld) and
//! `/readyz` says so. When the apiserver is unreachable later, the last index stays in use, the
//! condition shows in `/metrics` (`kinsight_apiserver_up`), in `/readyz`'s text and in the log,
//! and the watcher keeps retrying.

use std::collections::HashMap;
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::runtime::{WatchStreamExt as _, watcher};
use kube::{Api, Client};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::cluster::{NodeState, node_state};
use super::convert::{self, Convert};
use super::index::PodIndex;
use super::model::PodInfo;
use super::service::{ServiceSelector, service_for};
use super::workload::OwnerRef;
use crate::telemetry::Name;
use crate::telemetry::Telemetry;

/// The readiness condition this source owns.
pub const CONDITION: &str = "pod_index";

/// How long a `ReplicaSet`'s owner is trusted before it is asked again.
pub const REPLICA_SET_CACHE: Duration = Duration::from_hours(1);

/// A `GET` that takes longer than this is abandoned (the suffix rule stands meanwhile).
pub const GET_TIMEOUT: Duration = Duration::from_secs(5);

/// After a failed `GET` (other than 403), the same `ReplicaSet` is not asked again for this long.
const GET_RETRY: Duration = Duration::from_secs(30);

/// While a watch fails for another reason than a refusal, the apiserver's `/version` is asked
/// this often: a watch that resumes with nothing to report sends no event, so reachability is
/// what says the outage is over.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Changes arriving within this window are published as one new index: a relist of 110 pods
/// builds one snapshot, not 110.
const PUBLISH_DELAY: Duration = Duration::from_millis(50);

/// Why no client could be made.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("kubeconfig {path}: {source}")]
    Kubeconfig {
        path: std::path::PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("no in-cluster configuration and no kubeconfig: {0}")]
    Infer(#[source] kube::config::InferConfigError),
    #[error(
        "the apiserver URL {0} is plain http to a host other than this one; use https (or set \
         KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true for a test apiserver)"
    )]
    PlainHttp(String),
    #[error("Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// A client from `kubeconfig` when given, else the in-cluster service account (or `KUBECONFIG`,
/// `~/.kube/config`, as `kubectl` finds them).
pub async fn connect(kubeconfig: Option<&Path>, allow_plain_http: bool) -> Result<Client, ApiError> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|source| ApiError::Kubeconfig {
                path: path.to_path_buf(),
                source,
            })?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|source| ApiError::Kubeconfig {
                    path: path.to_path_buf(),
                    source,
                })?
        }
        None => kube::Config::infer().await.map_err(ApiError::Infer)?,
    };
    // The service account token must not cross a network in clear text.
    let url = &config.cluster_url;
    let loopback = url
        .host()
        .is_some_and(|h| h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()));
    if url.scheme_str() == Some("http") && !loopback && !allow_plain_http {
        return Err(ApiError::PlainHttp(url.to_string()));
    }
    Client::try_from(config).map_err(ApiError::Client)
}

/// The source's settings.
#[derive(Clone)]
pub struct ApiSource {
    pub client: Client,
    /// This node's name (`HOST_NAME`, config `host_name`).
    pub node: String,
    pub index: PodIndex,
    pub telemetry: Telemetry,
    /// `tag_service`: watch Services for the `Service` dimension.
    pub tag_service: bool,
}

impl std::fmt::Debug for ApiSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiSource")
            .field("node", &self.node)
            .field("tag_service", &self.tag_service)
            .finish_non_exhaustive()
    }
}

/// One pod as the source holds it: converted, plus what a later `ReplicaSet` answer needs.
struct Held {
    /// Shared with the index; copied only when it changes.
    info: Arc<PodInfo>,
    owners: Vec<OwnerRefWithUid>,
}

#[derive(Clone)]
struct OwnerRefWithUid {
    kind: String,
    name: String,
    uid: String,
}

/// The owner GETs in flight: `ReplicaSet` UID and answer.
type Gets = FuturesUnordered<std::pin::Pin<Box<dyn std::future::Future<Output = (String, Answer)> + Send>>>;

/// What a `GET` of a `ReplicaSet` said.
enum Answer {
    /// The Deployment that controls it, or `None`.
    Owner(Option<String>),
    Forbidden,
    Failed(String),
}

#[derive(Default)]
struct Workloads {
    /// `ReplicaSet` UID → (its controlling Deployment, when asked).
    cache: HashMap<String, (Option<String>, Instant)>,
    /// UIDs asked and not yet answered, or not to be asked before the instant.
    pending: HashMap<String, Instant>,
    /// A 403 turned the GETs off.
    forbidden: bool,
}

impl Workloads {
    fn deployment_of(&self, owners: &[OwnerRefWithUid], rs_name: &str) -> Option<String> {
        let uid = &owners.iter().find(|o| o.kind == "ReplicaSet" && o.name == rs_name)?.uid;
        self.cache
            .get(uid)
            .filter(|(_, at)| at.elapsed() < REPLICA_SET_CACHE)
            .and_then(|(d, _)| d.clone())
    }
}

#[derive(Default)]
struct State {
    pods: HashMap<String, Held>,
    /// Pods of a relist in progress (between `Init` and `InitDone`).
    relist: Option<HashMap<String, Held>>,
    pods_synced: bool,
    services: HashMap<(String, String), ServiceSelector>,
    services_relist: Option<HashMap<(String, String), ServiceSelector>>,
    /// Services listed once, or given up on (a failed first list publishes pods without them).
    services_settled: bool,
    workloads: Workloads,
    dirty: bool,
    /// Failing since, per watch, and whether the failure is a refusal (403), for the log and
    /// `/readyz`.
    failing: HashMap<&'static str, (Instant, bool)>,
}

fn owners_of(pod: &Pod) -> Vec<OwnerRefWithUid> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .map(|o| OwnerRefWithUid {
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        })
        .collect()
}

impl State {
    fn convert(&self, pod: &Pod) -> Option<Held> {
        let owners = owners_of(pod);
        let mut warnings = Vec::new();
        let info = {
            let lookup = |rs: &str| self.workloads.deployment_of(&owners, rs);
            let mut cx = Convert {
                index: 0,
                warnings: &mut warnings,
                deployment_of: &lookup,
            };
            convert::pod_info(pod, &mut cx)
        };
        for w in &warnings {
            tracing::debug!(warning = %w, "pod from the apiserver not fully usable");
        }
        info.map(|info| Held {
            info: Arc::new(info),
            owners,
        })
    }

    /// Re-derives the workload names of the pods that reference `rs_uid`.
    fn rederive(&mut self, rs_uid: &str) {
        let workloads = &self.workloads;
        for held in self.pods.values_mut() {
            if !held.owners.iter().any(|o| o.uid == rs_uid) {
                continue;
            }
            let refs: Vec<OwnerRef> = held
                .owners
                .iter()
                .map(|o| OwnerRef {
                    kind: o.kind.clone(),
                    name: o.name.clone(),
                })
                .collect();
            let lookup = |rs: &str| workloads.deployment_of(&held.owners, rs);
            convert::set_workload(Arc::make_mut(&mut held.info), &refs, &lookup);
            self.dirty = true;
        }
    }

    fn on_answer(&mut self, uid: &str, answer: Answer) {
        match answer {
            Answer::Owner(deployment) => {
                self.workloads.pending.remove(uid);
                self.workloads
                    .cache
                    .insert(uid.to_string(), (deployment, Instant::now()));
                self.rederive(uid);
            }
            Answer::Forbidden => {
                if !self.workloads.forbidden {
                    tracing::warn!(
                        "the apiserver refused GET of replicasets (RBAC: apps replicasets get is missing); Deployment \
                         names come from the ReplicaSet name suffix rule only"
                    );
                }
                self.workloads.forbidden = true;
            }
            Answer::Failed(error) => {
                // Kept in `pending` until its retry instant: the suffix rule stands meanwhile.
                tracing::debug!(%error, "ReplicaSet owner lookup failed; the suffix rule stands");
            }
        }
        // Drop what no pod references any more, so the cache follows the node, not the cluster.
        if self.workloads.cache.len() > 4 * self.pods.len() + 64 {
            let live: std::collections::HashSet<&str> = self
                .pods
                .values()
                .flat_map(|h| h.owners.iter().map(|o| o.uid.as_str()))
                .collect();
            let w = &mut self.workloads;
            w.cache.retain(|k, _| live.contains(k.as_str()));
        }
    }

    /// The index's pods: every held pod with its `Service`. A pod whose `Service` did not change
    /// is shared with the previous index, not copied.
    fn pods_for_index(&mut self) -> Vec<Arc<PodInfo>> {
        // Only the Services of a pod's namespace can select it.
        let mut by_namespace: HashMap<&str, Vec<&ServiceSelector>> = HashMap::new();
        for s in self.services.values() {
            by_namespace.entry(s.namespace.as_str()).or_default().push(s);
        }
        let mut out: Vec<Arc<PodInfo>> = Vec::with_capacity(self.pods.len());
        for h in self.pods.values_mut() {
            let candidates = by_namespace
                .get(h.info.namespace.as_str())
                .map_or(&[][..], Vec::as_slice);
            let service = service_for(
                &h.info.namespace,
                &h.info.labels,
                h.info.ready,
                candidates.iter().copied(),
            );
            if h.info.service != service {
                Arc::make_mut(&mut h.info).service = service;
            }
            out.push(Arc::clone(&h.info));
        }
        // A stable order, as a list would give it.
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }
}

impl ApiSource {
    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let t = &self.telemetry;
        t.expect_condition(CONDITION, "the apiserver pod watch has not completed its first list");
        let pods_api: Api<Pod> = Api::all(self.client.clone());
        let pod_cfg = watcher::Config::default()
            .fields(&format!("spec.nodeName={}", self.node))
            .any_semantic();
        let mut pods = pin!(watcher(pods_api, pod_cfg).default_backoff());
        let svc_api: Api<Service> = Api::all(self.client.clone());
        let mut services = pin!(watcher(svc_api, watcher::Config::default().any_semantic()).default_backoff());
        // This node's own Node object: conditions and pod capacity for the [E] node_status_*.
        let node_cfg = watcher::Config::default()
            .fields(&format!("metadata.name={}", self.node))
            .any_semantic();
        let mut own_node = pin!(watcher(Api::<Node>::all(self.client.clone()), node_cfg).default_backoff());
        let mut own_node_relist: Option<Option<NodeState>> = None;
        // Owner GETs in flight, polled by this loop (at most one per ReplicaSet of this node).
        let mut gets: Gets = FuturesUnordered::new();
        let mut st = State {
            services_settled: !self.tag_service,
            ..State::default()
        };
        t.set(Name::ApiserverUp, &[], 0.0);
        let mut publish_at: Option<Instant> = None;
        let mut probe = tokio::time::interval(PROBE_EVERY);
        probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let unreachable = st.failing.values().any(|(_, refused)| !refused);
            let publish_timer = async {
                match publish_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => break,
                Some(ev) = pods.next() => self.on_pod(&mut st, ev, &mut gets),
                Some(ev) = services.next(), if self.tag_service => self.on_service(&mut st, ev),
                Some(ev) = own_node.next() => match ev {
                    Ok(ev) => {
                        self.recovered(&mut st, "nodes");
                        match ev {
                            watcher::Event::Init => own_node_relist = Some(None),
                            watcher::Event::InitApply(n) => own_node_relist = Some(node_state(&n)),
                            watcher::Event::InitDone => self.index.set_own_node(own_node_relist.take().flatten()),
                            watcher::Event::Apply(n) => self.index.set_own_node(node_state(&n)),
                            watcher::Event::Delete(_) => self.index.set_own_node(None),
                        }
                    }
                    Err(e) => self.failed(&mut st, "nodes", &e),
                },
                Some((uid, answer)) = gets.next() => st.on_answer(&uid, answer),
                () = publish_timer => {
                    publish_at = None;
                    self.publish(&mut st);
                }
                _ = probe.tick(), if unreachable => {
                    let answered = tokio::time::timeout(GET_TIMEOUT, self.client.apiserver_version()).await;
                    if matches!(answered, Ok(Ok(_))) {
                        let back: Vec<&'static str> =
                            st.failing.iter().filter(|(_, (_, refused))| !refused).map(|(r, _)| *r).collect();
                        for resource in back {
                            self.recovered(&mut st, resource);
                        }
                    }
                }
            }
            if st.dirty && publish_at.is_none() {
                publish_at = Some(Instant::now() + PUBLISH_DELAY);
            }
        }
    }

    fn on_pod(&self, st: &mut State, ev: Result<watcher::Event<Pod>, watcher::Error>, gets: &mut Gets) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => return self.failed(st, "pods", &e),
        };
        self.recovered(st, "pods");
        let count = |kind: &'static str| {
            self.telemetry
                .add(Name::ApiserverEvents, &[("resource", "pods"), ("type", kind)], 1);
        };
        match ev {
            watcher::Event::Init => {
                count("relist");
                st.relist = Some(HashMap::new());
            }
            watcher::Event::InitApply(pod) | watcher::Event::Apply(pod) => {
                self.ask_owners(st, &pod, gets);
                let Some(held) = st.convert(&pod) else { return };
                let uid = held.info.uid.clone();
                match st.relist.as_mut() {
                    Some(buffer) => {
                        buffer.insert(uid, held);
                    }
                    None => {
                        count("apply");
                        st.pods.insert(uid, held);
                        st.dirty = true;
                    }
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = st.relist.take() {
                    st.pods = buffer;
                }
                st.pods_synced = true;
                st.dirty = true;
            }
            watcher::Event::Delete(pod) => {
                count("delete");
                if let Some(uid) = pod.metadata.uid.as_deref() {
                    st.pods.remove(uid);
                    st.dirty = true;
                }
            }
        }
    }

    fn on_service(&self, st: &mut State, ev: Result<watcher::Event<Service>, watcher::Error>) {
        let ev = match ev {
            Ok(ev) => ev,
            Err(e) => {
                // Pods are not held back for a Service watch that cannot list.
                st.services_settled = true;
                st.dirty |= st.pods_synced;
                return self.failed(st, "services", &e);
            }
        };
        self.recovered(st, "services");
        let key = |s: &ServiceSelector| (s.namespace.clone(), s.name.clone());
        match ev {
            watcher::Event::Init => st.services_relist = Some(HashMap::new()),
            watcher::Event::InitApply(svc) | watcher::Event::Apply(svc) => {
                let Some(sel) = convert::service_selector(&svc) else {
                    return;
                };
                match st.services_relist.as_mut() {
                    Some(buffer) => {
                        buffer.insert(key(&sel), sel);
                    }
                    None => {
                        st.services.insert(key(&sel), sel);
                        st.dirty = true;
                    }
                }
            }
            watcher::Event::InitDone => {
                if let Some(buffer) = st.services_relist.take() {
                    st.services = buffer;
                }
                st.services_settled = true;
                st.dirty = true;
            }
            watcher::Event::Delete(svc) => {
                if let Some(sel) = convert::service_selector(&svc) {
                    st.services.remove(&key(&sel));
                    st.dirty = true;
                }
            }
        }
    }

    /// Starts a `GET` for each `ReplicaSet` owner not cached, not asked and not forbidden.
    fn ask_owners(&self, st: &mut State, pod: &Pod, gets: &mut Gets) {
        if st.workloads.forbidden {
            return;
        }
        let namespace = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| convert::DEFAULT_NAMESPACE.to_string());
        for owner in owners_of(pod) {
            if owner.kind != "ReplicaSet" || owner.uid.is_empty() {
                continue;
            }
            let w = &mut st.workloads;
            let fresh = w
                .cache
                .get(&owner.uid)
                .is_some_and(|(_, at)| at.elapsed() < REPLICA_SET_CACHE);
            let waiting = w.pending.get(&owner.uid).is_some_and(|until| Instant::now() < *until);
            if fresh || waiting {
                continue;
            }
            w.pending
                .insert(owner.uid.clone(), Instant::now() + GET_TIMEOUT + GET_RETRY);
            let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
            let t = self.telemetry.clone();
            gets.push(Box::pin(async move {
                let answer = match tokio::time::timeout(GET_TIMEOUT, api.get_opt(&owner.name)).await {
                    Ok(Ok(rs)) => Answer::Owner(rs.and_then(|rs| controlling_deployment(&rs))),
                    Ok(Err(kube::Error::Api(s))) if s.code == 403 => Answer::Forbidden,
                    Ok(Err(e)) => Answer::Failed(e.to_string()),
                    Err(_) => Answer::Failed(format!("no answer within {} s", GET_TIMEOUT.as_secs())),
                };
                let result = match answer {
                    Answer::Owner(_) => "ok",
                    _ => "error",
                };
                t.add(
                    Name::ApiserverGets,
                    &[("resource", "replicasets"), ("result", result)],
                    1,
                );
                (owner.uid, answer)
            }));
        }
    }

    fn publish(&self, st: &mut State) {
        if !st.dirty || !st.pods_synced || !st.services_settled {
            return;
        }
        st.dirty = false;
        let pods = st.pods_for_index();
        let n = pods.len();
        let first = !self.index.is_synced();
        self.index.replace_keeping_cluster(pods);
        self.telemetry.set(Name::PodIndexPods, &[], n as f64);
        if first {
            tracing::info!(pods = n, node = %self.node, "pod index synced from the apiserver");
            self.telemetry.set_condition(CONDITION, true, "");
        }
    }

    fn failed(&self, st: &mut State, resource: &'static str, e: &watcher::Error) {
        self.telemetry
            .add(Name::ApiserverWatchErrors, &[("resource", resource)], 1);
        self.telemetry.set(Name::ApiserverUp, &[], 0.0);
        let error = crate::telemetry::chain(e);
        let refused = forbidden(e);
        let hint = if refused {
            format!(" (RBAC: list and watch of {resource} are needed)")
        } else {
            String::new()
        };
        let since = st.failing.get(resource).map_or_else(Instant::now, |(at, _)| *at);
        if st.failing.insert(resource, (since, refused)).is_none() {
            tracing::warn!(
                resource,
                %error,
                "apiserver watch failing{hint}; metrics and logs go on with the metadata already known, retrying with backoff"
            );
        } else {
            tracing::debug!(resource, %error, "apiserver watch still failing");
        }
        let detail = format!("apiserver watch of {resource} failing: {error}{hint}");
        if self.index.is_synced() {
            self.telemetry
                .set_note(CONDITION, Some(&format!("{detail}; serving cached metadata")));
        } else {
            self.telemetry.set_condition(CONDITION, false, &detail);
        }
    }

    fn recovered(&self, st: &mut State, resource: &'static str) {
        if let Some((since, _)) = st.failing.remove(resource) {
            tracing::info!(
                resource,
                failed_for_secs = since.elapsed().as_secs(),
                "apiserver watch recovered"
            );
        }
        if st.failing.is_empty() {
            self.telemetry.set(Name::ApiserverUp, &[], 1.0);
            self.telemetry.set_note(CONDITION, None);
        }
    }
}

fn forbidden(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s))
        | watcher::Error::WatchError(s) => s.code == 403,
        _ => false,
    }
}

/// The Deployment that controls a `ReplicaSet` (its `controller: true` owner of kind Deployment).
fn controlling_deployment(rs: &ReplicaSet) -> Option<String> {
    rs.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.kind == "Deployment" && o.controller == Some(true))
        .map(|o| o.name.clone())
}
