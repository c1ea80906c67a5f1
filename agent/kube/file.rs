//! The `file` metadata source, for local runs and tests: `--pods-file PATH` or
//! `kinsight.metrics.metadata_source: "file:PATH"`. The file holds a pod list as
//! [`parse_list`] reads it; the pods of this node, as [`NodeScope`] picks them, go into the
//! [`PodIndex`]. When the file is a cluster dump (a `List` with `Node` items), its cluster view
//! goes into the same snapshot ([`super::Snapshot::cluster`]) and this agent acts as the leader
//! for it (cluster records come only from a leader); the pods of every node count for the
//! namespace totals, while the index keeps only this node's.
//!
//! Change detection polls, every [`POLL_INTERVAL`], the file's metadata *through* the path
//! (`stat`, which follows symlinks): modification time, length, inode and device. That catches an
//! edit in place, an atomic rename over the file, and a `ConfigMap`-style `..data` symlink swap
//! alike, without the event subtleties of a watch (see `config::reload`). A changed fingerprint
//! leads to a read; bytes that hash as what the index already holds change nothing. Every
//! [`RESCAN_INTERVAL`] the file is read regardless, for an in-place rewrite of the same length
//! within the file system's timestamp granularity.
//!
//! A read that fails or a list that does not parse keeps the previous index (it is never
//! emptied by a bad write) and is counted in `kinsight_pod_index_reloads_total{result}`; a
//! half-written file is simply read again when its fingerprint moves on. Parsing runs on the
//! blocking pool, so a large list never holds up a metrics tick.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::error::PodListError;
use super::index::{PodIndex, is_bound_to};
use super::podlist::{ParsedList, parse_list};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{PodIndexReloadResult, PodIndexReloaded, PodListWarned};

/// How often the file's metadata is checked.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// How often the file is read even though its metadata did not change.
pub const RESCAN_INTERVAL: Duration = Duration::from_mins(1);

/// Which pods of the file are this node's.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum NodeScope {
    /// Every pod of the file except unscheduled Pending ones: the file *is* this node.
    #[default]
    AllPods,
    /// Only the pods whose `spec.nodeName` is this node.
    Node(String),
    /// The pods whose `spec.nodeName` is this node when the file is a cluster dump (a `List`
    /// with `Node` items, whose pods span the cluster); every pod, as [`NodeScope::AllPods`],
    /// when it is a plain pod list. What the CLI uses, with the configured node name: a plain
    /// list replays one node whatever its `nodeName`s say, a dump is cut down to this node.
    NodeOfClusterDump(String),
}

impl NodeScope {
    /// `Some(name)` → [`NodeScope::Node`], `None` → [`NodeScope::AllPods`].
    pub fn from_node_name(node_name: Option<&str>) -> NodeScope {
        node_name.map_or(NodeScope::AllPods, |n| NodeScope::Node(n.to_string()))
    }

    /// The node to keep pods of, for a file that is (`is_cluster_dump`) or is not a dump.
    fn node_for(&self, is_cluster_dump: bool) -> Option<&str> {
        match self {
            NodeScope::AllPods => None,
            NodeScope::Node(n) => Some(n),
            NodeScope::NodeOfClusterDump(n) => is_cluster_dump.then_some(n.as_str()),
        }
    }
}

/// Loads `path` into `index` now, synchronously (for `kinsight once` and startup). Returns the
/// number of pods of this node in the index. On error the index is left as it was. Warnings
/// are logged, not counted: the running source counts them when it loads the file.
/// `node_name` is [`NodeScope::from_node_name`]; [`load_file_scoped`] takes any scope.
pub fn load_file_now(path: &Path, node_name: Option<&str>, index: &PodIndex) -> Result<usize, PodListError> {
    load_file_scoped(path, &NodeScope::from_node_name(node_name), index)
}

/// [`load_file_now`] with the pods of this node picked by `scope`.
pub fn load_file_scoped(path: &Path, scope: &NodeScope, index: &PodIndex) -> Result<usize, PodListError> {
    let bytes = std::fs::read(path).map_err(|source| PodListError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let list = parse_bytes(&bytes).map_err(|e| e.with_path(path))?;
    for warning in &list.warnings {
        tracing::warn!(source = %path.display(), %warning, "pod list entry not fully usable");
    }
    Ok(install(index, list, scope, hash_of(&bytes), path))
}

/// Runs the file source until `cancel`: loads `path` at once, then re-reads it when it changes.
/// The same as `FileSource::new(..).run(cancel)`; for another [`NodeScope`], use
/// `FileSource::new(..).with_scope(scope).run(cancel)`.
pub async fn run_file_source(
    path: PathBuf,
    node_name: Option<String>,
    index: PodIndex,
    telemetry: Telemetry,
    cancel: CancellationToken,
) {
    FileSource::new(path, node_name, index, telemetry).run(cancel).await;
}

/// The file source's settings; [`FileSource::new`] gives the production intervals, tests
/// shorten them.
#[derive(Debug, Clone)]
pub struct FileSource {
    pub path: PathBuf,
    /// Which pods are this node's (the index's own node name, if any, filters too).
    pub scope: NodeScope,
    pub index: PodIndex,
    pub telemetry: Telemetry,
    pub poll_interval: Duration,
    pub rescan_interval: Duration,
}

/// What `stat` says about the file, or why it could not say.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Fingerprint {
    File {
        modified: Option<SystemTime>,
        len: u64,
        ino: u64,
        dev: u64,
    },
    Missing(std::io::ErrorKind),
}

impl FileSource {
    pub fn new(path: PathBuf, node_name: Option<String>, index: PodIndex, telemetry: Telemetry) -> FileSource {
        FileSource {
            path,
            scope: node_name.map_or(NodeScope::AllPods, NodeScope::Node),
            index,
            telemetry,
            poll_interval: POLL_INTERVAL,
            rescan_interval: RESCAN_INTERVAL,
        }
    }

    /// The same source with the pods of this node picked by `scope`.
    #[must_use]
    pub fn with_scope(mut self, scope: NodeScope) -> FileSource {
        self.scope = scope;
        self
    }

    pub async fn run(self, cancel: CancellationToken) {
        let mut ticker = tokio::time::interval(self.poll_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last: Option<Fingerprint> = None;
        let mut last_read = tokio::time::Instant::now();
        loop {
            // The first tick is immediate: the initial load.
            tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let fingerprint = fingerprint(&self.path).await;
            let is_unchanged = last.as_ref() == Some(&fingerprint);
            let is_rescan_due =
                matches!(fingerprint, Fingerprint::File { .. }) && last_read.elapsed() >= self.rescan_interval;
            if is_unchanged && !is_rescan_due {
                continue;
            }
            last = Some(fingerprint);
            last_read = tokio::time::Instant::now();
            self.look().await;
        }
    }

    /// One read of the file, applied or counted.
    async fn look(&self) {
        let bytes = match tokio::fs::read(&self.path).await {
            Ok(bytes) => bytes,
            Err(source) => {
                let error = PodListError::Read {
                    path: self.path.clone(),
                    source,
                };
                self.report(PodIndexReloadResult::ReadFailed, Some(&error));
                return;
            }
        };
        let hash = hash_of(&bytes);
        if self.index.snapshot().content_hash == Some(hash) {
            return;
        }
        let parsed = tokio::task::spawn_blocking(move || parse_bytes(&bytes)).await;
        let parsed = match parsed {
            Ok(parsed) => parsed,
            Err(join) => {
                // The parser does not panic on input; a panic here is a bug, reported as such.
                tracing::error!(source = %self.path.display(), error = %join, "pod list parser failed");
                return;
            }
        };
        match parsed {
            Ok(list) => {
                if !list.warnings.is_empty() {
                    PodListWarned {
                        source: &self.path,
                        warnings: &list.warnings,
                        kind_of: super::Warning::kind,
                    }
                    .emit(&self.telemetry);
                }
                install(&self.index, list, &self.scope, hash, &self.path);
                self.report(PodIndexReloadResult::Applied, None);
            }
            Err(e) => {
                let error = e.with_path(&self.path);
                self.report(PodIndexReloadResult::Invalid, Some(&error));
            }
        }
    }

    fn report(&self, result: PodIndexReloadResult, error: Option<&PodListError>) {
        PodIndexReloaded {
            source: &self.path,
            result,
            pods: self.index.snapshot().pods().len(),
            error: error.map(|e| e as &(dyn std::error::Error + 'static)),
        }
        .emit(&self.telemetry);
    }
}

fn parse_bytes(bytes: &[u8]) -> Result<ParsedList, PodListError> {
    let text = std::str::from_utf8(bytes).map_err(|_| PodListError::NotUtf8 { path: None })?;
    parse_list(text)
}

fn install(index: &PodIndex, list: ParsedList, scope: &NodeScope, hash: u64, path: &Path) -> usize {
    let ParsedList { mut pods, cluster, .. } = list;
    // This node's own Node in a cluster dump: the [E] node_status_* fields.
    let own_node = scope
        .node_for(true)
        .and_then(|node| cluster.as_ref()?.nodes.iter().find(|n| n.name == node).cloned());
    if let Some(node) = scope.node_for(cluster.is_some()) {
        if let Some(cluster) = cluster.as_ref().filter(|c| !c.has_node(node)) {
            // Most likely a dump replayed under another node name (`HOST_NAME`, config
            // `host_name`): the index then holds no pods, which the log should explain.
            tracing::warn!(
                source = %path.display(),
                node,
                nodes = cluster.node_count(),
                "the cluster dump has no Node of this node's name; its pods of other nodes are left out"
            );
        }
        pods.retain(|p| is_bound_to(p, Some(node)));
    }
    index.replace_with_hash(pods, cluster, Some(hash));
    index.set_own_node(own_node);
    index.snapshot().pods().len()
}

async fn fingerprint(path: &Path) -> Fingerprint {
    match tokio::fs::metadata(path).await {
        Ok(m) => Fingerprint::File {
            modified: m.modified().ok(),
            len: m.len(),
            ino: m.ino(),
            dev: m.dev(),
        },
        Err(e) => Fingerprint::Missing(e.kind()),
    }
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}
