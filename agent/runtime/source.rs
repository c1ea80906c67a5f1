//! The runtime source: keeps a connection to containerd, lists the Kubernetes containers into
//! the pod index, follows the event stream (a new or exited container is relisted at once; an
//! OOM kill is counted and logged), and measures writable layers for the metrics tick.
//!
//! Nothing here is required: without the socket, or while containerd restarts, the source
//! says so once, counts it, keeps what it last knew in the index, and retries with a capped
//! backoff. The tick never waits for it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::host::Root;
use crate::kube::PodIndex;
use crate::telemetry::{Name, Telemetry};

use super::client::Client;
use super::error::RuntimeError;
use super::model::{self, RuntimeContainer};
use super::proto::containerd::types::Envelope;
use super::view::{ContainerFs, ImageFs};

/// The readiness note this source sets while containerd is unreachable (never a failed
/// condition: the agent works without the runtime).
pub const CONDITION: &str = "runtime";

/// First retry after a failure; doubled each time up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// The longest wait between two connection attempts: a containerd restart (a node upgrade)
/// is noticed within this long.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Events arriving within this window cause one relist: a pod start (sandbox create and start,
/// then each container's create and start) is one list, not six.
const RELIST_DELAY: Duration = Duration::from_millis(100);

/// At most one event-driven relist this often: a list carries every container's OCI spec
/// (kilobytes each), so a node churning pods (a burst of Jobs) must not make the agent decode
/// megabytes ten times a second. A new container is still known within about a second.
const RELIST_MIN_GAP: Duration = Duration::from_secs(1);

/// The snapshotter whose exports name the directory of writable layers when a container does
/// not say (every Kubernetes container does: `Container.snapshotter`).
const DEFAULT_SNAPSHOTTER: &str = "overlayfs";

/// The source's settings and handles.
#[derive(Debug, Clone)]
pub struct RuntimeSource {
    /// The socket, as kinsight opens it (host root applied).
    pub socket: PathBuf,
    /// The host root, to `statvfs` the snapshotter's directory through.
    pub root: Root,
    /// The index to feed; `None` runs events and usage only.
    pub index: Option<PodIndex>,
    pub fs: watch::Sender<Arc<ContainerFs>>,
    pub telemetry: Telemetry,
    /// How often writable layers are measured: the metrics interval, which a reload may change.
    pub usage_every: watch::Receiver<Duration>,
}

/// What survives a reconnect.
#[derive(Debug, Default)]
struct Held {
    ever_connected: bool,
    reported: bool,
    /// OOM kills seen per (namespace, pod, container), for the log line's running count.
    oom_kills: HashMap<(String, String, String), u64>,
}

/// One connection's view.
#[derive(Debug, Default)]
struct Session {
    containers: HashMap<String, RuntimeContainer>,
    /// The snapshotter's `root` export, per snapshotter, once asked.
    roots: HashMap<String, Option<String>>,
}

impl RuntimeSource {
    /// Runs until `cancel`, reconnecting with backoff.
    pub async fn run(self, cancel: CancellationToken) {
        let t = &self.telemetry;
        t.set(Name::RuntimeUp, &[], 0.0);
        let mut held = Held::default();
        let mut backoff = BACKOFF_MIN;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                () = cancel.cancelled() => return,
                r = self.session(&mut held, &cancel) => r,
            };
            let Err(e) = result else { return };
            t.set(Name::RuntimeUp, &[], 0.0);
            // No ContainerFS figures older than the outage: they would be reported as current.
            self.fs.send_replace(Arc::new(ContainerFs::default()));
            t.add(Name::RuntimeErrors, &[("kind", e.kind())], 1);
            let error = crate::telemetry::chain(&e);
            if held.reported {
                tracing::debug!(%error, "containerd still unavailable");
            } else {
                held.reported = true;
                tracing::warn!(
                    %error,
                    socket = %self.socket.display(),
                    "containerd unavailable: container metadata from the runtime, container filesystem metrics \
                     and OOM events wait for it; everything else goes on; retrying with backoff"
                );
                t.set_note(CONDITION, Some(&format!("containerd unavailable: {error}")));
            }
            // A session that ran a while was a working connection: start the backoff over.
            if started.elapsed() > BACKOFF_MAX {
                backoff = BACKOFF_MIN;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// One connection: list, then follow events and measure usage until something fails.
    async fn session(&self, held: &mut Held, cancel: &CancellationToken) -> Result<(), RuntimeError> {
        let t = &self.telemetry;
        let client = Client::connect(&self.socket).await?;
        let mut events = pin!(client.events());
        let mut st = Session::default();
        self.relist(&client, &mut st).await?;
        self.measure(&client, &mut st).await?;
        t.set(Name::RuntimeUp, &[], 1.0);
        t.set_note(CONDITION, None);
        if held.ever_connected {
            t.add(Name::RuntimeReconnects, &[], 1);
            tracing::info!(containers = st.containers.len(), "containerd reachable again");
        } else {
            let version = client.version().await.unwrap_or_default();
            tracing::info!(
                socket = %self.socket.display(),
                version,
                containers = st.containers.len(),
                "container runtime: containerd connected"
            );
        }
        held.ever_connected = true;
        held.reported = false;
        let mut every_rx = self.usage_every.clone();
        let usage_at = |every: Duration| {
            let mut usage = tokio::time::interval_at(Instant::now() + every, every);
            usage.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            usage
        };
        let mut usage = usage_at(*every_rx.borrow_and_update());
        let mut relist_at: Option<Instant> = None;
        let mut listed_at = Instant::now();
        loop {
            let relist_timer = async {
                match relist_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                ev = events.next() => match ev {
                    Some(Ok(envelope)) => {
                        if self.on_event(&client, &mut st, held, &envelope).await? && relist_at.is_none() {
                            relist_at = Some((Instant::now() + RELIST_DELAY).max(listed_at + RELIST_MIN_GAP));
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Err(RuntimeError::StreamEnded),
                },
                () = relist_timer => {
                    relist_at = None;
                    self.relist(&client, &mut st).await?;
                    listed_at = Instant::now();
                }
                // Each interval lists again before measuring, in case an event was missed (one
                // sent between the list and the subscription, or dropped by containerd's bounded
                // event queue): two calls an interval.
                _ = usage.tick() => {
                    self.relist(&client, &mut st).await?;
                    listed_at = Instant::now();
                    self.measure(&client, &mut st).await?;
                }
                // A reload changed the interval: measure at the new one from now on.
                Ok(()) = every_rx.changed() => usage = usage_at(*every_rx.borrow_and_update()),
            }
        }
    }

    /// Lists containers and tasks and hands the pods they imply to the index.
    async fn relist(&self, client: &Client, st: &mut Session) -> Result<(), RuntimeError> {
        let t = &self.telemetry;
        let containers = client.containers().await;
        t.add(Name::RuntimeCalls, &[("call", "Containers.ListStream")], 1);
        let tasks = client.tasks().await;
        t.add(Name::RuntimeCalls, &[("call", "Tasks.List")], 1);
        st.containers = model::join(&containers?, &tasks?);
        t.set(Name::RuntimeContainers, &[], st.containers.len() as f64);
        if let Some(index) = &self.index {
            index.set_runtime(model::pods(st.containers.values()));
        }
        Ok(())
    }

    /// Handles one event; true when the container list should be read again.
    async fn on_event(
        &self,
        client: &Client,
        st: &mut Session,
        held: &mut Held,
        envelope: &Envelope,
    ) -> Result<bool, RuntimeError> {
        let label = model::topic_label(&envelope.topic);
        self.telemetry.add(Name::RuntimeEvents, &[("topic", label)], 1);
        if label != "oom" {
            // Any other task or container change may change a pod's containers or phase.
            return Ok(true);
        }
        let Some(id) = model::oom_container(envelope) else {
            tracing::debug!("an OOM event without a readable payload");
            return Ok(false);
        };
        if !st.containers.contains_key(&id) {
            // A container created since the last list (an OOM right at start).
            self.relist(client, st).await?;
        }
        self.telemetry.add(Name::RuntimeOomKills, &[], 1);
        match st.containers.get(&id) {
            Some(c) => {
                let container = c.name.clone().unwrap_or_default();
                let key = (c.namespace.clone(), c.pod_name.clone(), container.clone());
                let n = held.oom_kills.entry(key).or_default();
                *n += 1;
                tracing::info!(
                    namespace = %c.namespace,
                    pod = %c.pod_name,
                    container = %container,
                    container_id = %id,
                    oom_kills = *n,
                    "container OOM-killed (memory limit reached)"
                );
            }
            None => tracing::info!(container_id = %id, "OOM kill in a container that is not a Kubernetes pod's"),
        }
        Ok(true)
    }

    /// Measures every container's writable layer and the image filesystem, and publishes them.
    async fn measure(&self, client: &Client, st: &mut Session) -> Result<(), RuntimeError> {
        let t = &self.telemetry;
        let mut out = ContainerFs::default();
        for c in st
            .containers
            .values()
            .filter(|c| !c.is_sandbox() && !c.snapshot_key.is_empty())
        {
            t.add(Name::RuntimeCalls, &[("call", "Snapshots.Usage")], 1);
            match client.usage(&c.snapshotter, &c.snapshot_key).await {
                Ok((bytes, _inodes)) => {
                    out.usage_bytes.insert(c.id.clone(), bytes);
                }
                // Removed since the list: nothing to measure.
                Err(RuntimeError::Call { source, .. }) if source.code() == tonic::Code::NotFound => {}
                Err(e @ RuntimeError::Call { .. }) => {
                    t.add(Name::RuntimeErrors, &[("kind", e.kind())], 1);
                    tracing::debug!(error = %crate::telemetry::chain(&e), id = %c.id, "writable layer not measured");
                }
                Err(e) => return Err(e),
            }
        }
        let snapshotter = st
            .containers
            .values()
            .find(|c| !c.snapshotter.is_empty())
            .map_or(DEFAULT_SNAPSHOTTER, |c| c.snapshotter.as_str())
            .to_string();
        if !st.roots.contains_key(&snapshotter) {
            t.add(Name::RuntimeCalls, &[("call", "Introspection.Plugins")], 1);
            let exports = client.snapshotter_exports().await?;
            let root = exports.get(&snapshotter).and_then(|e| e.get("root")).cloned();
            if root.is_none() {
                tracing::info!(
                    snapshotter,
                    "the snapshotter exports no root directory; container_filesystem_available and _utilization are left out"
                );
            }
            st.roots.insert(snapshotter.clone(), root);
        }
        if let Some(Some(dir)) = st.roots.get(&snapshotter) {
            match crate::host::fs::statvfs(&self.root, dir) {
                Ok(s) => {
                    out.image_fs = Some(ImageFs {
                        capacity_bytes: s.capacity_bytes,
                        available_bytes: s.available_bytes,
                    });
                }
                Err(e) => {
                    t.add(Name::RuntimeErrors, &[("kind", "statvfs")], 1);
                    tracing::debug!(error = %crate::telemetry::chain(&e), dir, "image filesystem not measured");
                }
            }
        }
        self.fs.send_replace(Arc::new(out));
        Ok(())
    }
}
