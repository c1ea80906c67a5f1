//! The tailer: every log file of the node, held open, read in bounded rounds, parsed, enriched,
//! and handed to the output as events whose outcomes move each file's committed offset.
//!
//! Files (kubelet, `pkg/kubelet/logs/container_log_manager.go`): kubelet rotates by renaming
//! `N.log` to `N.log.<timestamp>` and asking the runtime to reopen `N.log`; it gzips the previous
//! rotated file at the next rotation and removes a deleted pod's directory promptly. So:
//! - a file is opened as soon as it is found, and tracked by its descriptor and identity (device,
//!   inode, a fingerprint of its head), never re-opened by path;
//! - a renamed file is drained through its descriptor; the new `N.log` starts at 0;
//! - a deleted file (`st_nlink` 0) is drained too; no timer abandons unread data;
//! - a rotated or deleted file is closed only at its end, once every event from it is settled
//!   and it has stopped growing;
//! - `.gz` and `.tmp` files are never sources; a file smaller than the read position was
//!   truncated in place (copytruncate, never kubelet's way) and is read again from 0.
//!
//! Reading is fair: each file gets at most [`QUANTUM`] bytes per round, rotated and deleted files
//! first (they pin disk space), and one round hands at most [`ROUND_BYTES`] of events to the
//! output, which makes the round wait when it holds its capacity: the files are the buffer.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{OversizeEvent, RecordProfile, StreamNames};
use crate::host::confined::{ConfinedFile, ConfinedRoot, OpenChecks};
use crate::kube::PodIndex;
use crate::ship::{LogEvent, Message};

use super::checkpoint::{Entry, Lookup, Store};
use super::collect::CollectRule;
use super::discover::{Found, Places, What, scan};
use super::encode::{self, ContainerMeta, NodeFacts, Shape, SizeRules};
use super::identity::{self, FileKey, Fingerprint};
use super::journal::{self, JournalConfig, JournalRecordKind, JournalSource};
use super::parse::{
    CloseReason, Joiner, Limits, LineParser, Multiline, MultilineRule, Record, Stream, parse_syslog, repair,
};
use super::route::{self, ContainerFile, Group, Route};
use super::settle::Settlements;

/// Bytes read from one file per round.
pub const QUANTUM: usize = 256 * 1024;
/// Bytes of events one round hands to the output at most: a third of the log lane's default
/// capacity (`DEFAULT_LOGS_CAPACITY_BYTES`), so that the next round is read while earlier ones are sent,
/// without a second capacity's worth of events waiting in memory.
pub const ROUND_BYTES: usize = 1 << 20;
/// The most events a kept round vector holds ([`Tailer::recycle`]): about 350 KiB, a round of
/// 1 MiB of events of 256 bytes or more. A round of smaller events grows it and gives the rest
/// back afterwards.
const SPARE_EVENTS: usize = 4096;
/// A rotated file that has not grown for this long is finished once read (kubelet checks sizes
/// every 10 s, `containerLogMonitorInterval`).
pub const ROTATED_QUIET: Duration = Duration::from_secs(10);
/// A deleted file that has not grown for this long is finished once read.
pub const DELETED_QUIET: Duration = Duration::from_secs(5);

/// How the tailer reads and writes records; built from the configuration.
#[expect(clippy::struct_excessive_bools, reason = "each a switch of the configuration")]
#[derive(Debug, Clone)]
pub struct TailSettings {
    pub cluster: String,
    pub node: String,
    pub places: Places,
    pub profile: RecordProfile,
    pub stream_names: StreamNames,
    /// Pod labels and annotations in application records.
    pub labels: bool,
    pub annotations: bool,
    pub exclude_globs: Vec<String>,
    /// `kinsight.logs.filters`, compiled: a container's records are shipped only if every filter
    /// whose globs match its basename lets them through.
    pub filters: Vec<ContainerFilterRule>,
    /// `kinsight.logs.application_log_group`: the template of the application group (see
    /// `route::application_group`); `None`, the Container Insights group.
    pub application_group: Option<String>,
    pub dataplane_globs: Vec<String>,
    /// Multiline rules and the basename globs each applies to: a container takes the first
    /// rule that matches.
    pub multiline: Vec<(MultilineRule, Vec<String>)>,
    pub limits: Limits,
    pub size: SizeRules,
    /// Log files of this pod (`K8S_NAMESPACE`, `POD_NAME`) are not shipped: a failing agent must
    /// not amplify its own logs.
    pub own_pod: Option<(String, String)>,
    pub node_facts: Arc<NodeFacts>,
    pub merge_json: bool,
    /// The systemd journal, when there is something to read from it.
    pub journal: Option<JournalSettings>,
    /// Honour the pods' `fluentbit.io/exclude…` annotations.
    pub honour_exclude_annotation: bool,
    /// The disk-pressure bound: see [`Tailer::relieve_disk_pressure`] (0: never).
    pub disk_pressure_free_percent: u8,
    /// The free space of the filesystem holding a file: `fstatvfs`, replaceable in tests.
    pub disk_space: fn(&std::fs::File) -> Option<crate::host::fs::FsStats>,
}

/// One `kinsight.logs.filters` entry: `include` ships only the records `regex` matches, an
/// exclude filter only those it does not; for the containers whose `/var/log/containers`
/// basename a glob matches.
#[derive(Debug, Clone)]
pub struct ContainerFilterRule {
    pub include: bool,
    pub regex: regex::Regex,
    pub globs: Vec<String>,
}

/// [`TailSettings::disk_space`] on a real node.
pub fn disk_space(file: &std::fs::File) -> Option<crate::host::fs::FsStats> {
    crate::host::fs::fstatvfs(file).ok()
}

/// What to read from the systemd journal.
#[derive(Debug, Clone)]
pub struct JournalSettings {
    /// Journal directories on disk (the host root joined): `/var/log/journal`, `/run/log/journal`.
    pub dirs: Vec<PathBuf>,
    /// `_SYSTEMD_UNIT`s for the dataplane group.
    pub units: Vec<String>,
    /// The host streams too (`host_source: journald`).
    pub host: bool,
}

/// The journal as one source: its position is the number of entries read (all records of one
/// entry share it), committed as the cursor of the last entry before the earliest unsettled one.
struct JournalTail {
    /// Its settle-table id.
    id: u32,
    source: JournalSource,
    /// Entries handed over so far; the next entry's position.
    next_seq: u64,
    /// Positions and cursors of entries not yet committed.
    cursors: VecDeque<(u64, String)>,
    last_cursor: Option<String>,
    streams: HashMap<String, Arc<str>>,
    dataplane: Arc<str>,
    host: Arc<str>,
    /// `,"az":…,"ec2_instance_id":…`, appended to every record.
    extra: String,
    reported_gap: bool,
}

impl std::fmt::Debug for JournalTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalTail")
            .field("next_seq", &self.next_seq)
            .finish_non_exhaustive()
    }
}

/// Journal entries read per round at most.
const JOURNAL_BATCH: usize = 2000;

/// Files kubelet compressed while the agent was down are decompressed into memory up to this
/// size to be resumed; a larger remainder is cut there and the rest counted as lost (kubelet's
/// rotated files are 10 MiB by default, `containerLogMaxSize`).
pub const MAX_GZIP_RESUME: usize = 256 << 20;

/// The decompressed remainder of a gzipped file, resumed after a restart.
struct Memory {
    /// File offset of `data[0]`: the checkpointed offset.
    base: u64,
    /// Up to 32 bytes before `base`, for commit markers.
    pre: Vec<u8>,
    data: Vec<u8>,
}

/// The state of a tracked file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Live,
    /// Renamed away from its path at this time (monotonic seconds).
    Rotated,
    /// Every name removed (`st_nlink` 0).
    Deleted,
}

#[derive(Debug, Clone)]
enum Kind {
    /// A container's log, `name` its `/var/log/containers` basename; `multiline` is the index of
    /// the first `TailSettings::multiline` rule whose globs match that name.
    Container {
        name: Arc<str>,
        multiline: Option<usize>,
        /// The `TailSettings::filters` whose globs match `name` (include?, pattern); `None` when
        /// none does.
        filters: Option<Arc<[(bool, regex::Regex)]>>,
    },
    Host {
        syslog: bool,
    },
    /// A file of `collect_list` entry `entry` (`TailSettings::places.collect`).
    Collect {
        entry: usize,
    },
}

/// One tracked file.
struct Source {
    id: u32,
    /// Where it was found, below the host root.
    rel: PathBuf,
    file: ConfinedFile,
    key: FileKey,
    fingerprint: Fingerprint,
    /// Next byte to read.
    offset: u64,
    /// An unfinished line: the bytes from `offset - carry.len()` to `offset`.
    carry: Vec<u8>,
    /// Skipping the rest of a line longer than the record cap, which started here.
    discard_from: Option<u64>,
    parser: LineParser,
    joiner: Joiner,
    multiline: Option<Multiline>,
    kind: Kind,
    shape: Shape,
    route: Route,
    container_id: Option<String>,
    /// For container files: what the path says, to enrich again when the index learns the pod.
    container: Option<ContainerFile>,
    enriched: bool,
    state: State,
    /// Monotonic time the file last grew.
    last_growth: Duration,
    last_size: u64,
    /// The committed offset written to the checkpoint store.
    committed: u64,
    /// The last read reached the end of the file.
    at_eof: bool,
    /// Read from a gzipped twin in memory instead of the file.
    memory: Option<Memory>,
    /// The fingerprint was taken after the checkpoint entry was written.
    fingerprint_new: bool,
    /// Streams (stdout, stderr) the pod's `fluentbit.io/exclude…` annotations exclude.
    excluded: [bool; 2],
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("id", &self.id)
            .field("rel", &self.rel)
            .field("offset", &self.offset)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// What the tailer counts; the pipeline turns it into telemetry once per round.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub lines: u64,
    pub bytes: u64,
    pub events: u64,
    pub parse_errors: u64,
    pub utf8_repaired: u64,
    pub truncated_records: u64,
    pub split_records: u64,
    pub long_lines: u64,
    pub rotations: u64,
    pub truncations: u64,
    pub opened: u64,
    pub finished: u64,
    pub open_errors: u64,
    /// Files resumed from their gzipped twin after a restart.
    pub resumed_gzip: u64,
    /// Checkpointed files gone at a restart with no twin: their unread rest is lost.
    pub lost_at_restart: u64,
    /// Deleted files given up under disk pressure: their unacknowledged rest is lost.
    pub abandoned: u64,
    /// Journal entries read (one entry may make several records).
    pub journal_entries: u64,
    /// Lines not shipped because of a `fluentbit.io/exclude…` annotation.
    pub excluded: u64,
    /// Records a filter held back: `kinsight.logs.filters` (container logs) and `collect_list`
    /// filters.
    pub filtered: u64,
    /// Container files whose `application_log_group` made no valid group name.
    pub group_fallbacks: u64,
}

/// The tailer's state. Synchronous: the pipeline runs it on a blocking thread.
#[derive(Debug)]
pub struct Tailer {
    settings: TailSettings,
    root: ConfinedRoot,
    pods: Option<PodIndex>,
    settlements: Arc<Settlements>,
    store: Option<Store>,
    sources: Vec<Source>,
    /// Identities already read to the end in an earlier run, or excluded: not opened again.
    /// Keyed by identity and checked by the head's fingerprint: a freed inode is soon reused for
    /// another file, which must not be skipped for it.
    skip: HashMap<FileKey, Fingerprint>,
    /// Paths whose open failed, reported once.
    reported: HashSet<PathBuf>,
    /// Read buffer, shared by every file.
    buf: Vec<u8>,
    /// Docker JSON decoding scratch.
    scratch: Vec<u8>,
    enc: Encoding,
    pub counts: Counts,
    /// The first scan looks for checkpointed files that kubelet compressed meanwhile.
    resumed: bool,
    journal: Option<JournalTail>,
    /// The directories the last scan looked in (for inotify).
    dirs: Vec<PathBuf>,
    /// Where the next round starts among the files of a state: a round cut at
    /// [`ROUND_BYTES`] leaves the files after the cut for the next one, which starts with them.
    round_start: usize,
    /// The container multiline rules changed (a reload): open container files switch at the start
    /// of the next round.
    rules_changed: bool,
    /// Events the last round handed over: the next round's vector starts that large instead of
    /// doubling its way up (each doubling a copy, and past 128 KiB a fresh mapping).
    last_round_events: usize,
    /// The vector the output handed back emptied ([`Tailer::recycle`]), for the next round.
    spare: Vec<LogEvent>,
}

impl Tailer {
    pub fn new(
        settings: TailSettings,
        root: ConfinedRoot,
        pods: Option<PodIndex>,
        settlements: Arc<Settlements>,
        store: Option<Store>,
    ) -> Tailer {
        let skip = store
            .iter()
            .flat_map(Store::entries)
            .filter(|e| e.finished)
            .map(|e| (e.key(), e.fingerprint))
            .collect();
        Tailer {
            settings,
            root,
            pods,
            settlements,
            store,
            sources: Vec::new(),
            skip,
            reported: HashSet::new(),
            buf: vec![0; QUANTUM],
            scratch: Vec::new(),
            enc: Encoding::default(),
            counts: Counts::default(),
            resumed: false,
            journal: None,
            dirs: Vec::new(),
            round_start: 0,
            last_round_events: 0,
            rules_changed: false,
            spare: Vec::new(),
        }
        .with_journal()
    }

    /// Opens the journal, resuming after the committed cursor (or at its end without one, like
    /// Fluent Bit's `Read_From_Tail`: a journal holds weeks that CloudWatch Logs would refuse).
    fn with_journal(mut self) -> Tailer {
        let Some(j) = self.settings.journal.clone() else {
            return self;
        };
        let cursor = self.store.as_ref().and_then(Store::journal_cursor).map(str::to_string);
        let cfg = JournalConfig {
            dirs: j.dirs.clone(),
            dataplane_units: j.units.clone(),
            host: j.host,
            start_at_tail: true,
        };
        let opened = match JournalSource::open(cfg.clone(), cursor.as_deref()) {
            Err(journal::JournalError::InvalidCursor(c)) => {
                tracing::warn!(cursor = %c, "the journal cursor in the checkpoints is not one kinsight wrote; starting at the journal's end");
                JournalSource::open(cfg, None)
            }
            other => other,
        };
        match opened {
            Ok(source) => {
                tracing::info!(dirs = ?j.dirs, units = ?j.units, host = j.host, resumed = cursor.is_some(), "reading the systemd journal");
                let mut extra = String::new();
                if let Some(az) = &self.settings.node_facts.az {
                    extra.push_str(",\"az\":");
                    encode::push_json_str(&mut extra, az);
                }
                if let Some(id) = &self.settings.node_facts.instance_id {
                    extra.push_str(",\"ec2_instance_id\":");
                    encode::push_json_str(&mut extra, id);
                }
                let id = self.settlements.new_source();
                self.settlements.open(id, 0);
                self.journal = Some(JournalTail {
                    id,
                    source,
                    next_seq: 0,
                    cursors: VecDeque::new(),
                    last_cursor: None,
                    streams: HashMap::new(),
                    dataplane: Group::Dataplane.name(&self.settings.cluster).into(),
                    host: Group::Host.name(&self.settings.cluster).into(),
                    extra,
                    reported_gap: false,
                });
            }
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::chain(&e), "cannot read the systemd journal; the kubelet and containerd units are not shipped");
            }
        }
        self
    }

    /// Reads the journal's new entries into `events`; returns whether more are waiting.
    fn read_journal(&mut self, now: Duration, events: &mut Vec<LogEvent>, bytes: &mut usize) -> bool {
        let Some(j) = &mut self.journal else { return false };
        let mut records = Vec::new();
        if let Err(e) = j.source.read(JOURNAL_BATCH, &mut records) {
            tracing::debug!(error = %crate::telemetry::chain(&e), "journal read failed; retried next round");
        }
        if j.source.gap_detected() && !j.reported_gap {
            j.reported_gap = true;
            tracing::warn!(
                "the journal no longer holds the checkpointed entry (vacuumed); resuming at its oldest entry"
            );
        }
        let style = self.settings.stream_names;
        let node = self.settings.node.clone();
        for r in &records {
            if j.last_cursor.as_deref() != Some(r.cursor.as_str()) {
                j.cursors.push_back((j.next_seq, r.cursor.clone()));
                j.next_seq += 1;
                j.last_cursor = Some(r.cursor.clone());
                self.counts.journal_entries += 1;
            }
            let name = match style {
                StreamNames::FluentBit => journal::fluent_bit_stream(&r.kind, &node),
                StreamNames::Fluentd => journal::fluentd_stream(&r.kind, r.hostname.as_deref(), &node),
            };
            let stream = match j.streams.get(&name) {
                Some(s) => s.clone(),
                None => {
                    let s: Arc<str> = route::valid_stream_name(&name).0.into();
                    j.streams.insert(name, s.clone());
                    s
                }
            };
            let group = match r.kind {
                JournalRecordKind::Dataplane { .. } => j.dataplane.clone(),
                _ => j.host.clone(),
            };
            let message = Message::new(&journal::record_message(r, &j.extra));
            let token = self.settlements.hand_over(j.id, j.next_seq - 1, now.as_secs_f64());
            *bytes += message.len() + 26;
            self.counts.events += 1;
            events.push(LogEvent {
                group,
                stream,
                timestamp_ms: i64::try_from(r.realtime_us / 1000).unwrap_or(i64::MAX),
                message,
                token,
            });
        }
        self.settlements.set_watermark(j.id, j.next_seq);
        j.source.has_more()
    }

    /// Commits the journal cursor of the last entry before the earliest unsettled one.
    fn commit_journal(&mut self) {
        let Some(j) = &mut self.journal else { return };
        let Some((point, _)) = self.settlements.commit_point(j.id) else {
            return;
        };
        let mut last = None;
        while j.cursors.front().is_some_and(|(seq, _)| *seq < point) {
            last = j.cursors.pop_front().map(|(_, c)| c);
        }
        if let (Some(cursor), Some(store)) = (last, &mut self.store) {
            store.set_journal_cursor(Some(cursor));
        }
    }

    /// The pod index's generation: a change means pods were added or removed.
    pub fn pod_generation(&self) -> Option<u64> {
        self.pods.as_ref().map(|p| p.snapshot().generation())
    }

    /// The directories where new files would appear, as of the last scan (below the root).
    pub fn watch_dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// Files being read.
    pub fn files(&self) -> usize {
        self.sources.len()
    }

    /// Bytes on disk not yet committed, over every tracked file.
    pub fn bytes_behind(&self) -> u64 {
        self.sources
            .iter()
            .map(|s| {
                let size = s
                    .memory
                    .as_ref()
                    .map_or(s.file.last_stat().size, |m| m.base + m.data.len() as u64);
                size.saturating_sub(s.committed)
            })
            .sum()
    }

    /// Scans for new, rotated and deleted files (see the module doc).
    pub fn discover(&mut self, now: Duration) {
        let mut scan = scan(&self.root, &self.settings.places);
        self.dirs = std::mem::take(&mut scan.dirs);
        for e in scan.errors {
            if self.reported.insert(e.path().to_path_buf()) {
                tracing::warn!(error = %crate::telemetry::chain(&e), "cannot list a log directory");
            }
        }
        let mut at_path: HashMap<PathBuf, u64> = HashMap::new();
        let mut found_inos: HashSet<u64> = HashSet::new();
        for f in &scan.found {
            at_path.insert(f.rel.clone(), f.ino);
            found_inos.insert(f.ino);
        }
        // Renamed or deleted: a live source whose path now lists another inode, or none.
        for s in &mut self.sources {
            if s.state != State::Live {
                continue;
            }
            match at_path.get(&s.rel) {
                Some(ino) if *ino == s.key.inode => {}
                _ => {
                    s.state = if found_inos.contains(&s.key.inode) {
                        State::Rotated
                    } else {
                        State::Deleted
                    };
                    s.last_growth = now;
                    self.counts.rotations += 1;
                }
            }
        }
        let tracked: HashSet<u64> = self.sources.iter().map(|s| s.key.inode).collect();
        // One source per file: a file that two entries name (a host file also in `collect_list`)
        // is collected once, by the first (container files, host files, then `collect_list` in
        // order).
        let mut seen = HashSet::new();
        let mut new: Vec<Found> = scan
            .found
            .into_iter()
            .filter(|f| !tracked.contains(&f.ino) && seen.insert(f.ino))
            .collect();
        // Rotated files first (older data), by name: kubelet's timestamps sort by age.
        new.sort_by(|a, b| {
            let rotated = |f: &Found| matches!(f.what, What::Container { rotated: true, .. });
            rotated(b).cmp(&rotated(a)).then(a.rel.cmp(&b.rel))
        });
        // Before anything is opened: a checkpointed file that kubelet compressed while the agent
        // was down, whose inode a new file may already have taken.
        if !std::mem::replace(&mut self.resumed, true) {
            self.resume_gzipped(&scan.gzipped, &new, now);
        }
        for f in new {
            self.open(f, now);
        }
    }

    /// Whether the file found at `f` is the one `e` checkpointed (same inode and content).
    fn is_same_file(&self, f: &Found, e: &Entry) -> bool {
        let Some(store) = &self.store else { return false };
        self.root
            .open_file(&f.rel)
            .ok()
            .and_then(|file| {
                let key = FileKey {
                    dev: file.dev(),
                    inode: file.ino(),
                };
                (key == e.key())
                    .then(|| store.lookup(key, file.file()).ok())
                    .flatten()
                    .map(|l| matches!(l, Lookup::Same(_)))
            })
            .unwrap_or(false)
    }

    /// After a restart: a checkpointed file that is not finished and no longer anywhere was
    /// rotated and compressed by kubelet while the agent was down. Its `.gz` twin, recognised by
    /// the fingerprint of its head and the marker at the checkpoint, is read on from the
    /// checkpoint; Fluent Bit and Vector lose these lines.
    fn resume_gzipped(&mut self, gzipped: &[PathBuf], found: &[Found], now: Duration) {
        let Some(store) = &self.store else { return };
        let orphans: Vec<Entry> = store
            .entries()
            .filter(|e| !e.finished)
            .filter(|e| !found.iter().any(|f| f.ino == e.inode && self.is_same_file(f, e)))
            .cloned()
            .collect();
        for e in orphans {
            let dir = e.path.parent();
            let twin = gzipped
                .iter()
                .filter(|g| g.parent() == dir)
                .find_map(|g| self.twin(g, &e).map(|m| (g.clone(), m)));
            match twin {
                Some((gz, memory)) => {
                    tracing::info!(path = %e.path.display(), twin = %gz.display(), offset = e.offset, bytes = memory.data.len(), "resuming a log file kubelet compressed while kinsight was down");
                    self.counts.resumed_gzip += 1;
                    self.open_memory(&e, gz, memory, now);
                }
                None => {
                    tracing::warn!(path = %e.path.display(), stream = %e.stream, committed = e.offset, "a log file was removed while kinsight was down before it was read to its end; its unread rest is lost");
                    self.counts.lost_at_restart += 1;
                    if let Some(store) = &mut self.store {
                        store.remove(e.key());
                    }
                }
            }
        }
    }

    /// The remainder of `gz` after `e`'s checkpoint, when `gz` is `e`'s file compressed.
    fn twin(&self, gz: &std::path::Path, e: &Entry) -> Option<Memory> {
        use std::io::Read as _;
        let file = self.root.open_file(gz).ok()?;
        let mut dec = flate2::read::GzDecoder::new(file.file());
        if !identity::twin_matches(&mut dec, &e.stored()).ok()? {
            return None;
        }
        // Again from the start (the check moved the descriptor's position): skip to the
        // checkpoint, keeping the 32 bytes before it.
        let mut file = file.into_file();
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0)).ok()?;
        let mut dec = flate2::read::GzDecoder::new(file);
        let mut pre = Vec::new();
        let mut left = e.offset;
        let mut chunk = vec![0u8; 64 * 1024];
        while left > 0 {
            let want = usize::try_from(left).map_or(chunk.len(), |l| l.min(chunk.len()));
            let n = dec.read(&mut chunk[..want]).ok()?;
            if n == 0 {
                return None;
            }
            pre.extend_from_slice(&chunk[..n]);
            let keep = pre.len().saturating_sub(32);
            pre.drain(..keep);
            left -= n as u64;
        }
        let mut data = Vec::new();
        let cap = u64::try_from(MAX_GZIP_RESUME).unwrap_or(u64::MAX);
        dec.by_ref().take(cap).read_to_end(&mut data).ok()?;
        Some(Memory {
            base: e.offset,
            pre,
            data,
        })
    }

    fn open_memory(&mut self, e: &Entry, gz: PathBuf, memory: Memory, now: Duration) {
        let Ok(file) = self.root.open_file(&gz) else { return };
        let found = Found {
            rel: e.path.clone(),
            ino: e.inode,
            what: match route::ContainerFile::parse(
                e.path
                    .strip_prefix(self.settings.places.pod_logs_dir.trim_start_matches('/'))
                    .unwrap_or(&e.path)
                    .to_string_lossy()
                    .as_ref(),
            ) {
                Some((file, _)) => What::Container {
                    file,
                    rotated: true,
                    basename: None,
                },
                None => return,
            },
        };
        let Some((kind, mut route, shape, container, _, enriched)) = self.route_of(&found) else {
            return;
        };
        // The stream it had: the events go on where they were.
        route.stream = e.stream.as_str().into();
        // Checkpointed from now on under the twin's identity: the original inode is free, and a
        // new file may already have it.
        let key = FileKey {
            dev: file.dev(),
            inode: file.ino(),
        };
        if let Some(store) = &mut self.store {
            store.remove(e.key());
            store.update(Entry {
                path: gz.clone(),
                dev: key.dev,
                inode: key.inode,
                ..e.clone()
            });
        }
        let s = &self.settings;
        let id = self.settlements.new_source();
        self.settlements.open(id, e.offset);
        self.sources.push(Source {
            id,
            rel: gz,
            file,
            key,
            fingerprint: e.fingerprint,
            offset: e.offset,
            carry: Vec::new(),
            discard_from: None,
            parser: LineParser::new(),
            joiner: Joiner::new(s.limits),
            multiline: multiline_of(s, &kind),
            kind,
            shape,
            route,
            container_id: e.container_id.clone(),
            container,
            enriched,
            state: State::Rotated,
            last_growth: now,
            last_size: memory.base + memory.data.len() as u64,
            committed: e.offset,
            at_eof: false,
            memory: Some(memory),
            fingerprint_new: false,
            excluded: [false; 2],
        });
    }

    fn excluded(&self, file: &ContainerFile, basename: &str) -> bool {
        if let Some((ns, pod)) = &self.settings.own_pod
            && *ns == file.namespace
            && *pod == file.pod_name
        {
            return true;
        }
        self.settings
            .exclude_globs
            .iter()
            .any(|g| route::glob_match(g, basename))
    }

    /// The streams of `file`'s container its pod's `fluentbit.io/exclude…` annotations exclude,
    /// when they are honoured and the index knows the pod.
    fn exclusions(&self, file: Option<&ContainerFile>) -> [bool; 2] {
        let (Some(file), true) = (file, self.settings.honour_exclude_annotation) else {
            return [false; 2];
        };
        let Some(pod) = self.pod(&file.pod_uid) else {
            return [false; 2];
        };
        ["stdout", "stderr"].map(|stream| pod.log_exclusions.iter().any(|x| x.excludes(&file.container, stream)))
    }

    /// The pod of `uid` in the index, or one that left it within its grace period (a deleted
    /// pod's last lines are still enriched).
    fn pod(&self, uid: &str) -> Option<Arc<crate::kube::PodInfo>> {
        let index = self.pods.as_ref()?;
        index.by_uid(uid).or_else(|| index.recently_departed(uid))
    }

    /// The container's metadata, from the file name and, when it knows the pod, the index.
    fn container_meta(&self, file: &ContainerFile, basename_id: Option<&str>) -> (ContainerMeta, bool) {
        let mut m = ContainerMeta {
            pod_name: file.pod_name.clone(),
            namespace: file.namespace.clone(),
            pod_id: file.pod_uid.clone(),
            host: self.settings.node.clone(),
            container_name: file.container.clone(),
            container_id: basename_id.map(str::to_string),
            ..ContainerMeta::default()
        };
        let Some(pod) = self.pod(&file.pod_uid) else {
            return (m, false);
        };
        let c = pod
            .containers
            .iter()
            .chain(pod.init_containers.iter())
            .find(|c| c.name == file.container);
        if let Some(c) = c {
            if m.container_id.is_none() && u64::from(file.restart) == c.restart_count {
                m.container_id.clone_from(&c.id);
            }
            m.container_image.clone_from(&c.image);
            m.container_image_id.clone_from(&c.image_id);
            m.container_hash = c
                .image_id
                .as_deref()
                .map(|i| i.split_once("://").map_or(i, |(_, rest)| rest).to_string());
        }
        if self.settings.labels {
            m.labels = pod.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        if self.settings.annotations {
            m.annotations = pod.annotations.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        }
        (m, true)
    }

    /// The route and shape of a found file, or `None` when it is excluded.
    #[expect(clippy::type_complexity, reason = "one use: the parts of a new source")]
    fn route_of(&mut self, f: &Found) -> Option<(Kind, Route, Shape, Option<ContainerFile>, Option<String>, bool)> {
        Some(match &f.what {
            What::Container { file: cf, basename, .. } => {
                let basename_id = basename.as_deref().and_then(route::container_id_of_basename);
                let (meta, enriched) = self.container_meta(cf, basename_id);
                let name = match (basename, &meta.container_id) {
                    (Some(b), _) => b.clone(),
                    (None, Some(id)) => cf.symlink_basename(id),
                    (None, None) => cf.fallback_basename(),
                };
                if self.excluded(cf, &name) {
                    return None;
                }
                let dataplane = self
                    .settings
                    .dataplane_globs
                    .iter()
                    .any(|g| route::glob_match(g, &name));
                let (group, group_name) = if dataplane {
                    (Group::Dataplane, Group::Dataplane.name(&self.settings.cluster))
                } else {
                    (Group::Application, self.application_group(cf))
                };
                let s = &self.settings;
                // Matched against the basename, as the exclusion and dataplane globs are (not
                // against the stream name, which starts with the node's name).
                let multiline = rule_for(&s.multiline, &name);
                let filters: Vec<(bool, regex::Regex)> = s
                    .filters
                    .iter()
                    .filter(|f| f.globs.iter().any(|g| route::glob_match(g, &name)))
                    .map(|f| (f.include, f.regex.clone()))
                    .collect();
                let stream =
                    route::valid_stream_name(&route::container_stream(s.stream_names, group, &s.node, &name)).0;
                let shape = match group {
                    Group::Dataplane => Shape::Dataplane {
                        node: s.node_facts.clone(),
                    },
                    _ => Shape::Application {
                        profile: s.profile,
                        suffix: encode::kubernetes_suffix(s.profile, &meta).into(),
                        merge_json: s.merge_json,
                    },
                };
                let route = Route {
                    group_name: group_name.into(),
                    stream: stream.into(),
                };
                (
                    Kind::Container {
                        name: name.into(),
                        multiline,
                        filters: (!filters.is_empty()).then(|| filters.into()),
                    },
                    route,
                    shape,
                    Some(cf.clone()),
                    meta.container_id.clone(),
                    enriched,
                )
            }
            What::Host { name } => {
                let s = &self.settings;
                let syslog = name != "dmesg";
                let shape = if syslog {
                    Shape::HostSyslog {
                        node: s.node_facts.clone(),
                    }
                } else {
                    Shape::HostPlain {
                        node: s.node_facts.clone(),
                    }
                };
                let route = Route {
                    group_name: Group::Host.name(&s.cluster).into(),
                    stream: route::valid_stream_name(&route::host_stream(s.stream_names, &s.node, name))
                        .0
                        .into(),
                };
                (Kind::Host { syslog }, route, shape, None, None, true)
            }
            What::Collected { entry, .. } => {
                let s = &self.settings;
                let rule = s.places.collect.get(*entry)?;
                let (group, stream) = rule.route(&f.rel);
                let route = Route {
                    group_name: group.into(),
                    stream: route::valid_stream_name(&stream).0.into(),
                };
                // The message is the line itself: no record shape applies.
                let shape = Shape::HostPlain {
                    node: s.node_facts.clone(),
                };
                (Kind::Collect { entry: *entry }, route, shape, None, None, true)
            }
        })
    }

    /// The application group of a container file: `kinsight.logs.application_log_group` filled
    /// in, or the Container Insights group when there is no template or the name it makes is not
    /// a valid group name (logged and counted once per file).
    fn application_group(&mut self, cf: &ContainerFile) -> String {
        let s = &self.settings;
        let Some(template) = &s.application_group else {
            return Group::Application.name(&s.cluster);
        };
        if let Some(name) = route::application_group(template, &s.cluster, cf) {
            return name;
        }
        let fallback = Group::Application.name(&s.cluster);
        tracing::warn!(
            template = %template,
            namespace = %cf.namespace,
            pod = %cf.pod_name,
            container = %cf.container,
            group = %fallback,
            "kinsight.logs.application_log_group makes no valid log group name for this container \
             (over 512 characters, or a character CloudWatch Logs refuses); its logs go to the \
             Container Insights group"
        );
        self.counts.group_fallbacks += 1;
        fallback
    }

    fn open(&mut self, f: Found, now: Duration) {
        let checks = OpenChecks {
            device: None,
            reject_hardlinked: matches!(f.what, What::Container { .. } | What::Collected { .. }),
        };
        let file = match self.root.open_file_checked(&f.rel, checks) {
            Ok(file) => file,
            Err(e) if e.is_not_found() => return, // gone between the listing and the open
            Err(e) => {
                self.counts.open_errors += 1;
                if self.reported.insert(f.rel.clone()) {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "log file not read");
                }
                return;
            }
        };
        let key = FileKey {
            dev: file.dev(),
            inode: file.ino(),
        };
        if let Some(fp) = self.skip.get(&key) {
            let same = if fp.is_taken() {
                identity::head_matches(file.file(), fp).unwrap_or(false)
            } else {
                file.size() == 0
            };
            if same {
                return;
            }
            self.skip.remove(&key);
        }
        if matches!(f.what, What::Collected { newest: false, .. }) && !self.unfinished(key, &file) {
            return;
        }
        let Some((kind, route, shape, container, container_id, enriched)) = self.route_of(&f) else {
            let fp = identity::fingerprint(file.file(), file.size()).unwrap_or(Fingerprint::EMPTY);
            self.skip.insert(key, fp);
            return;
        };
        let s = &self.settings;
        let size = file.size();
        // Where to start: the checkpoint wins; otherwise the head (a file found later is new; at
        // startup, reading from the head loses nothing a previous run did not ship).
        let mut offset = 0;
        let mut fingerprint = Fingerprint::EMPTY;
        if let Some(store) = &self.store {
            match store.lookup(key, file.file()) {
                Ok(Lookup::Same(e)) => {
                    offset = e.offset.min(size);
                    fingerprint = e.fingerprint;
                }
                Ok(Lookup::Reused { mismatch, .. }) => {
                    tracing::info!(path = %f.rel.display(), reason = mismatch.as_str(), "a checkpointed inode now holds another file; reading it from the start");
                }
                Ok(Lookup::Absent) | Err(_) => {}
            }
        }
        // Taken now when there is content, so that a checkpoint written before the first read
        // can still recognise the file (or its gzipped twin) after a crash.
        if !fingerprint.is_taken()
            && size > 0
            && let Ok(fp) = identity::fingerprint(file.file(), size)
        {
            fingerprint = fp;
        }
        let multiline = multiline_of(s, &kind);
        let id = self.settlements.new_source();
        self.settlements.open(id, offset);
        self.counts.opened += 1;
        tracing::debug!(path = %f.rel.display(), offset, group = %route.group_name, stream = %route.stream, "tailing");
        let mut src = Source {
            id,
            rel: f.rel,
            file,
            key,
            fingerprint,
            offset,
            carry: Vec::new(),
            discard_from: None,
            parser: LineParser::new(),
            joiner: Joiner::new(s.limits),
            multiline,
            kind,
            shape,
            route,
            container_id,
            container,
            enriched,
            state: State::Live,
            last_growth: now,
            last_size: size,
            committed: offset,
            at_eof: false,
            memory: None,
            fingerprint_new: false,
            excluded: [false; 2],
        };
        src.excluded = self.exclusions(src.container.as_ref());
        if src.container.is_some() && matches!(&f.what, What::Container { rotated: true, .. }) {
            src.state = State::Rotated;
        }
        self.remember(&src);
        self.sources.push(src);
    }

    /// Whether a checkpoint says a previous run left `file` unread. A `collect_list` match that
    /// is not the newest is read only then (a file rotated while kinsight was down).
    fn unfinished(&self, key: FileKey, file: &ConfinedFile) -> bool {
        self.store.as_ref().is_some_and(
            |st| matches!(st.lookup(key, file.file()), Ok(Lookup::Same(e)) if !e.finished && e.offset < file.size()),
        )
    }

    /// Writes the source's entry to the checkpoint store.
    fn remember(&mut self, s: &Source) {
        let Some(store) = &mut self.store else { return };
        let marker = identity::marker(s.file.file(), s.committed).ok().flatten().unwrap_or(0);
        store.update(Entry {
            path: s.rel.clone(),
            dev: s.key.dev,
            inode: s.key.inode,
            fingerprint: s.fingerprint,
            offset: s.committed,
            marker,
            container_id: s.container_id.clone(),
            group: s.route.group_name.to_string(),
            stream: s.route.stream.to_string(),
            finished: false,
        });
    }

    /// Takes new container multiline rules (a configuration reload). New files take them at
    /// once; open container files at the start of the next round (see `switch_multiline`).
    /// `collect_list` files keep the rule of their entry.
    pub fn set_multiline(&mut self, rules: Vec<(MultilineRule, Vec<String>)>) {
        self.settings.multiline = rules;
        for s in &mut self.sources {
            if let Kind::Container { name, multiline, .. } = &mut s.kind {
                *multiline = rule_for(&self.settings.multiline, name);
            }
        }
        self.rules_changed = true;
    }

    /// One round: reads every file once (bounded), returns the events for the output and
    /// whether data is still waiting (a file or the journal not read to its end, or the round
    /// cut at [`ROUND_BYTES`]): the caller reads again at once rather than after a pause.
    pub fn read_round(&mut self, now: Duration, wall_ms: i64) -> (Vec<LogEvent>, bool) {
        let mut events = std::mem::take(&mut self.spare);
        events.reserve(self.last_round_events);
        let mut bytes = 0usize;
        let mut any = false;
        if std::mem::take(&mut self.rules_changed) {
            // Every container file, even one whose rule index stayed: the rule at that index may
            // be another one now.
            for s in self
                .sources
                .iter_mut()
                .filter(|s| matches!(s.kind, Kind::Container { .. }))
            {
                let ctx = Ctx {
                    settlements: &self.settlements,
                    settings: &self.settings,
                    counts: &mut self.counts,
                    enc: &mut self.enc,
                };
                switch_multiline(s, now.as_secs_f64(), ctx, &mut events, &mut bytes);
            }
        }
        // Rotated and deleted files first: they pin disk space. Within each, from where the last
        // round stopped: with many busy files a round is cut before it reaches them all, and
        // starting each round with the same files would keep the last ones waiting.
        let mut order: Vec<usize> = (0..self.sources.len()).collect();
        if !order.is_empty() {
            let start = self.round_start % order.len();
            order.rotate_left(start);
        }
        order.sort_by_key(|&i| self.sources[i].state == State::Live);
        let mut visited = 0;
        for i in order {
            if bytes >= ROUND_BYTES {
                any = true;
                break;
            }
            visited += 1;
            let n = self.read_one(i, now, wall_ms, &mut events, &mut bytes);
            // More than a quantum was waiting: read again at once. A file read to its end does
            // not count, so that a steady trickle into many files is read in rounds a pause
            // apart rather than by a loop that spins on a few lines at a time.
            any |= n > 0 && !self.sources[i].at_eof;
        }
        self.round_start = self.round_start.wrapping_add(visited);
        if bytes < ROUND_BYTES {
            any |= self.read_journal(now, &mut events, &mut bytes);
        }
        // Flush partial records whose time is up.
        for s in &mut self.sources {
            let ctx = Ctx {
                settlements: &self.settlements,
                settings: &self.settings,
                counts: &mut self.counts,
                enc: &mut self.enc,
            };
            flush_expired(s, now, now.as_secs_f64(), ctx, &mut events, &mut bytes);
            let wm = watermark(s);
            self.settlements.set_watermark(s.id, wm);
        }
        self.last_round_events = events.len();
        (events, any)
    }

    /// Keeps an emptied event vector for the next round (a fresh one of a round's size is over
    /// glibc's mmap threshold, and was mapped and faulted in on every round: about 500 page
    /// faults a second at a live 5 MB/s), at most [`SPARE_EVENTS`] of capacity.
    pub fn recycle(&mut self, mut events: Vec<LogEvent>) {
        events.clear();
        events.shrink_to(SPARE_EVENTS);
        self.spare = events;
    }

    fn read_one(
        &mut self,
        i: usize,
        now: Duration,
        wall_ms: i64,
        events: &mut Vec<LogEvent>,
        bytes: &mut usize,
    ) -> usize {
        let s = &mut self.sources[i];
        if let Some(m) = &s.memory {
            let from = usize::try_from(s.offset - m.base)
                .unwrap_or(usize::MAX)
                .min(m.data.len());
            let n = (m.data.len() - from).min(QUANTUM);
            if n == 0 {
                s.at_eof = true;
                return 0;
            }
            self.buf[..n].copy_from_slice(&m.data[from..from + n]);
            let base = s.offset;
            s.offset += n as u64;
            s.at_eof = from + n == m.data.len();
            self.counts.bytes += n as u64;
            let ctx = Ctx {
                settlements: &self.settlements,
                settings: &self.settings,
                counts: &mut self.counts,
                enc: &mut self.enc,
            };
            process(
                s,
                &self.buf[..n],
                base,
                now,
                wall_ms,
                ctx,
                &mut self.scratch,
                events,
                bytes,
            );
            return n;
        }
        let Ok(stat) = s.file.stat() else { return 0 };
        if stat.nlink == 0 && s.state != State::Deleted {
            s.state = State::Deleted;
            s.last_growth = now;
        }
        if stat.size != s.last_size {
            s.last_size = stat.size;
            s.last_growth = now;
        }
        if stat.size < s.offset {
            // Truncated in place (copytruncate): read again from the start.
            tracing::info!(path = %s.rel.display(), size = stat.size, offset = s.offset, "log file truncated in place; reading it from the start");
            self.counts.truncations += 1;
            s.offset = 0;
            s.carry.clear();
            s.discard_from = None;
            s.committed = 0;
            s.fingerprint = Fingerprint::EMPTY;
            self.settlements.close(s.id);
            self.settlements.open(s.id, 0);
        }
        if s.offset >= stat.size {
            s.at_eof = true;
            return 0;
        }
        let want = usize::try_from(stat.size - s.offset).unwrap_or(usize::MAX).min(QUANTUM);
        let n = match s.file.pread(s.offset, &mut self.buf[..want]) {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(path = %s.rel.display(), error = %e, "cannot read log file");
                return 0;
            }
        };
        if n == 0 {
            s.at_eof = true;
            return 0;
        }
        s.at_eof = s.offset + n as u64 >= stat.size;
        if !s.fingerprint.is_taken()
            && let Ok(fp) = identity::fingerprint(s.file.file(), stat.size)
        {
            s.fingerprint = fp;
            s.fingerprint_new = true;
        }
        self.counts.bytes += n as u64;
        let base = s.offset;
        s.offset += n as u64;
        let ctx = Ctx {
            settlements: &self.settlements,
            settings: &self.settings,
            counts: &mut self.counts,
            enc: &mut self.enc,
        };
        process(
            s,
            &self.buf[..n],
            base,
            now,
            wall_ms,
            ctx,
            &mut self.scratch,
            events,
            bytes,
        );
        n
    }

    /// Enriches again the files whose pod the index did not know when they were opened.
    pub fn refresh_metadata(&mut self) {
        let mut updates = Vec::new();
        for (i, s) in self.sources.iter().enumerate() {
            if s.enriched || !matches!(s.kind, Kind::Container { .. }) {
                continue;
            }
            let Some(cf) = &s.container else { continue };
            let id = route::container_id_of_basename(s.route.stream.rsplit('.').nth(1).unwrap_or(""));
            let (meta, known) = self.container_meta(cf, s.container_id.as_deref().or(id));
            if known {
                updates.push((i, meta));
            }
        }
        for (i, meta) in updates {
            let excluded = self.exclusions(self.sources[i].container.as_ref());
            let s = &mut self.sources[i];
            s.excluded = excluded;
            s.enriched = true;
            if let Shape::Application { profile, suffix, .. } = &mut s.shape {
                *suffix = encode::kubernetes_suffix(*profile, &meta).into();
            }
        }
    }

    /// Commits what may be committed, finishes files that are done, and saves the store when
    /// due (or now, with `force`).
    pub fn commit(&mut self, now: Duration, force: bool) {
        let mut done = Vec::new();
        for (i, s) in self.sources.iter_mut().enumerate() {
            let Some((point, all_settled)) = self.settlements.commit_point(s.id) else {
                continue;
            };
            if point > s.committed || s.fingerprint_new {
                s.committed = s.committed.max(point);
                s.fingerprint_new = false;
                let point = s.committed;
                if let Some(store) = &mut self.store {
                    let marker = match &s.memory {
                        Some(m) => memory_marker(m, point),
                        None => identity::marker(s.file.file(), point).ok().flatten().unwrap_or(0),
                    };
                    store.update(Entry {
                        path: s.rel.clone(),
                        dev: s.key.dev,
                        inode: s.key.inode,
                        fingerprint: s.fingerprint,
                        offset: point,
                        marker,
                        container_id: s.container_id.clone(),
                        group: s.route.group_name.to_string(),
                        stream: s.route.stream.to_string(),
                        finished: false,
                    });
                }
            }
            let quiet = match s.state {
                _ if s.memory.is_some() => Some(Duration::ZERO),
                State::Live => None,
                State::Rotated => Some(ROTATED_QUIET),
                State::Deleted => Some(DELETED_QUIET),
            };
            if let Some(q) = quiet
                && s.at_eof
                && s.carry.is_empty()
                && all_settled
                && s.joiner.is_idle()
                && s.multiline.as_ref().is_none_or(Multiline::is_idle)
                && now.saturating_sub(s.last_growth) >= q
            {
                done.push(i);
            }
        }
        for i in done.into_iter().rev() {
            let s = self.sources.swap_remove(i);
            self.settlements.close(s.id);
            self.counts.finished += 1;
            if let Some(store) = &mut self.store {
                if s.state == State::Deleted {
                    store.remove(s.key);
                } else {
                    store.mark_finished(s.key);
                    self.skip.insert(s.key, s.fingerprint);
                }
            }
            tracing::debug!(path = %s.rel.display(), "log file finished");
        }
        self.commit_journal();
        if let Some(store) = &mut self.store {
            let saved = if force {
                store.save_now()
            } else {
                store.save_if_due(now)
            };
            if let Err(e) = saved {
                tracing::warn!(error = %e, "cannot save log checkpoints; they are retried");
            }
        }
    }

    /// At the end of the run: finish what is pending in the joiners, so nothing waits for a
    /// timer that will not fire. The events go to the output like any other.
    pub fn flush_pending(&mut self) -> Vec<LogEvent> {
        let mut events = Vec::new();
        let mut bytes = 0;
        for s in &mut self.sources {
            let ctx = Ctx {
                settlements: &self.settlements,
                settings: &self.settings,
                counts: &mut self.counts,
                enc: &mut self.enc,
            };
            flush_expired(s, Duration::MAX, 0.0, ctx, &mut events, &mut bytes);
        }
        events
    }

    /// After the last commit: takes this tailer's sources out of the settle table, which outlives
    /// it when a reload rebuilds the pipeline. Returns how many of its events were still
    /// unsettled; their bytes were not committed, so the next tailer reads them again (the app
    /// withdraws them from the output first, so they are sent once).
    pub fn release(&mut self) -> usize {
        let ids: Vec<u32> = self
            .sources
            .iter()
            .map(|s| s.id)
            .chain(self.journal.as_ref().map(|j| j.id))
            .collect();
        let unsettled = self.settlements.unsettled_of(&ids);
        for id in ids {
            self.settlements.close(id);
        }
        unsettled
    }

    /// The disk-pressure bound, the only thing that gives up unread data. A deleted file that
    /// kinsight still holds open keeps its blocks allocated (the kernel frees them at the last
    /// close), so during a long CloudWatch Logs outage the held files of deleted pods and
    /// rotated-away logs could fill the node's disk. When the filesystem of the largest such
    /// file has less than `disk_pressure_free_percent` free, that file is closed: its
    /// unacknowledged rest is lost, counted (`abandoned`) and logged with its path. One file per
    /// call; the pipeline calls it once a round, so files are given up one by one until the
    /// free space is back above the bound.
    pub fn relieve_disk_pressure(&mut self) {
        let percent = u64::from(self.settings.disk_pressure_free_percent);
        if percent == 0 {
            return;
        }
        let largest = self
            .sources
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state == State::Deleted && s.memory.is_none())
            .max_by_key(|(_, s)| s.file.last_stat().size)
            .map(|(i, _)| i);
        let Some(i) = largest else { return };
        let Some(space) = (self.settings.disk_space)(self.sources[i].file.file()) else {
            return;
        };
        if space.capacity_bytes == 0
            || space.available_bytes.saturating_mul(100) >= space.capacity_bytes.saturating_mul(percent)
        {
            return;
        }
        let s = self.sources.swap_remove(i);
        self.settlements.close(s.id);
        if let Some(store) = &mut self.store {
            store.remove(s.key);
        }
        self.counts.abandoned += 1;
        let size = s.file.last_stat().size;
        tracing::warn!(
            path = %s.rel.display(),
            log_group = %s.route.group_name,
            log_stream = %s.route.stream,
            bytes_not_acknowledged = size.saturating_sub(s.committed),
            free_bytes = space.available_bytes,
            capacity_bytes = space.capacity_bytes,
            bound_percent = percent,
            "disk pressure: gave up a deleted log file kinsight held open so the kernel can free it; its unacknowledged rest is lost"
        );
    }

    /// Forgets checkpoint entries of files that no longer exist anywhere the tailer looks.
    pub fn prune_store(&mut self) {
        let tracked: HashSet<FileKey> = self.sources.iter().map(|s| s.key).collect();
        let root = &self.root;
        if let Some(store) = &mut self.store {
            store.retain(|e| {
                tracked.contains(&e.key())
                    || root
                        .open_file(&e.path)
                        .is_ok_and(|f| f.dev() == e.dev && f.ino() == e.inode)
            });
        }
    }
}

/// The first of the container multiline `rules` whose globs match `name`, a `/var/log/containers`
/// basename. Matched against the basename, as the exclusion and dataplane globs are (not against
/// the stream name, which starts with the node's name).
fn rule_for(rules: &[(MultilineRule, Vec<String>)], name: &str) -> Option<usize> {
    rules
        .iter()
        .position(|(_, globs)| globs.iter().any(|g| route::glob_match(g, name)))
}

/// A container file's switch to the multiline rules of a reload: the record its old rule holds
/// open is shipped as it is (its lines were whole; an open partial line stays with the joiner),
/// and the new rule applies from the next record on.
fn switch_multiline(s: &mut Source, handed_s: f64, mut ctx: Ctx<'_>, events: &mut Vec<LogEvent>, bytes: &mut usize) {
    {
        let Source {
            multiline, shape, kind, ..
        } = &mut *s;
        if let Some(ml) = multiline {
            let settings = ctx.settings;
            let counts = &mut *ctx.counts;
            let enc = &mut *ctx.enc;
            let filters = filters_of(kind);
            ml.finish(|r| encode_record(shape, filters, &r, settings, counts, enc));
        }
    }
    s.multiline = multiline_of(ctx.settings, &s.kind);
    hand_over(s, handed_s, &mut ctx, events, bytes);
}

/// The multiline stage of a new source: its `collect_list` entry's rule, or the container rule
/// chosen for it by its basename (`Tailer::route_of`).
fn multiline_of(s: &TailSettings, kind: &Kind) -> Option<Multiline> {
    match kind {
        Kind::Collect { entry } => s
            .places
            .collect
            .get(*entry)
            .map(|rule| Multiline::new(rule.multiline.clone(), s.limits)),
        Kind::Container { multiline, .. } => multiline
            .and_then(|i| s.multiline.get(i))
            .map(|(rule, _)| Multiline::new(rule.clone(), s.limits)),
        Kind::Host { .. } => None,
    }
}

/// The marker of `point` in a resumed file: a hash of the 32 bytes before it.
fn memory_marker(m: &Memory, point: u64) -> u64 {
    let upto = usize::try_from(point.saturating_sub(m.base))
        .unwrap_or(usize::MAX)
        .min(m.data.len());
    if upto >= 32 {
        identity::marker_of(&m.data[..upto])
    } else {
        let mut before = m.pre.clone();
        before.extend_from_slice(&m.data[..upto]);
        identity::marker_of(&before)
    }
}

/// The borrowed parts of the tailer `process` needs beside one source.
struct Ctx<'a> {
    settlements: &'a Settlements,
    settings: &'a TailSettings,
    counts: &'a mut Counts,
    enc: &'a mut Encoding,
}

/// The encoder's buffers, reused from line to line so that the hot path does not allocate.
#[derive(Debug, Default)]
struct Encoding {
    /// A record's content repaired to UTF-8, when it was not.
    repair: String,
    arena: encode::Arena,
    /// The records' messages, with their timestamp and start offset, until they are handed over
    /// (at the end of each file's read, so that the arena is sealed once per read).
    records: Vec<(i64, u64, Msg)>,
    messages: Vec<encode::Pending>,
    /// The settle table's tokens of `records` as they are handed over.
    tokens: Vec<u64>,
}

/// A record's message before it is handed over.
#[derive(Debug)]
enum Msg {
    /// Written to the arena, framed: it becomes a message when the arena is sealed.
    Arena(encode::Pending),
    Ready(Message),
}

/// The commit watermark of a source after a read: the end of the last complete line, or the
/// start of a record still being assembled if earlier.
fn watermark(s: &Source) -> u64 {
    // Inside an over-long line being skipped, `discard_from` is its start: a restart reads it
    // again (a duplicate of its truncated head) rather than skip what follows it.
    let complete = s.discard_from.unwrap_or(s.offset - s.carry.len() as u64);
    [
        Some(complete),
        s.joiner.pending_start(),
        s.multiline.as_ref().and_then(Multiline::pending_start),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(complete)
}

/// Splits `data` (read at `base`) into lines, with the source's unfinished line in front, and
/// hands their records over.
#[allow(clippy::too_many_arguments)]
fn process(
    s: &mut Source,
    data: &[u8],
    base: u64,
    now: Duration,
    wall_ms: i64,
    mut ctx: Ctx<'_>,
    scratch: &mut Vec<u8>,
    events: &mut Vec<LogEvent>,
    bytes: &mut usize,
) {
    split_lines(s, data, base, now, wall_ms, &mut ctx, scratch);
    hand_over(s, now.as_secs_f64(), &mut ctx, events, bytes);
}

/// [`process`] but the hand-over: each line's records are left in `ctx.enc.records`.
fn split_lines(
    s: &mut Source,
    data: &[u8],
    base: u64,
    now: Duration,
    wall_ms: i64,
    ctx: &mut Ctx<'_>,
    scratch: &mut Vec<u8>,
) {
    // The cap of one physical line: a record's content plus room for the CRI or Docker
    // envelope and escapes.
    let cap = ctx.settings.limits.max_record_bytes.saturating_mul(2) + 64 * 1024;
    let mut rest = data;
    let mut pos = base;
    // Complete the carried line first.
    if !s.carry.is_empty() || s.discard_from.is_some() {
        match memchr::memchr(b'\n', rest) {
            Some(nl) => {
                let line_start = base - s.carry.len() as u64;
                if s.discard_from.take().is_some() {
                    s.carry.clear();
                } else {
                    s.carry.extend_from_slice(&rest[..nl]);
                    let line = std::mem::take(&mut s.carry);
                    handle_line(s, &line, line_start, base + nl as u64 + 1, now, wall_ms, ctx, scratch);
                    s.carry = line;
                    s.carry.clear();
                }
                rest = &rest[nl + 1..];
                pos = base + nl as u64 + 1;
            }
            None => {
                if s.discard_from.is_none() {
                    s.carry.extend_from_slice(rest);
                    over_long(s, cap, now, wall_ms, ctx, scratch);
                }
                return;
            }
        }
    }
    while let Some(nl) = memchr::memchr(b'\n', rest) {
        let line = &rest[..nl];
        handle_line(s, line, pos, pos + nl as u64 + 1, now, wall_ms, ctx, scratch);
        rest = &rest[nl + 1..];
        pos += nl as u64 + 1;
    }
    if !rest.is_empty() {
        s.carry.extend_from_slice(rest);
        over_long(s, cap, now, wall_ms, ctx, scratch);
    }
}

/// A physical line longer than `cap` with no end yet: what we have goes out as one line (its
/// content is then over the record cap, so the joiner marks it truncated); the rest of the line
/// is skipped up to its end and counted.
#[allow(clippy::too_many_arguments)]
fn over_long(s: &mut Source, cap: usize, now: Duration, wall_ms: i64, ctx: &mut Ctx<'_>, scratch: &mut Vec<u8>) {
    if s.carry.len() <= cap {
        return;
    }
    ctx.counts.long_lines += 1;
    let start = s.offset - s.carry.len() as u64;
    let line = std::mem::take(&mut s.carry);
    handle_line(s, &line, start, s.offset, now, wall_ms, ctx, scratch);
    s.discard_from = Some(start);
}

/// One complete line `[start, end)` of a source.
#[allow(clippy::too_many_arguments)]
fn handle_line(
    s: &mut Source,
    line: &[u8],
    start: u64,
    end: u64,
    now: Duration,
    wall_ms: i64,
    ctx: &mut Ctx<'_>,
    scratch: &mut Vec<u8>,
) {
    ctx.counts.lines += 1;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    match s.kind {
        Kind::Host { syslog } => {
            let text = repair(line, &mut ctx.enc.repair);
            if text.repaired {
                ctx.counts.utf8_repaired += 1;
            }
            let parsed = if syslog { parse_syslog(line, wall_ms) } else { None };
            let ts = parsed.as_ref().map_or(wall_ms, |p| p.timestamp_ms);
            let msg = encode::host_line(&s.shape, text.text, parsed.as_ref(), ctx.settings.size);
            ctx.enc.records.push((ts, start, Msg::Ready(Message::new(&msg))));
        }
        Kind::Collect { entry } => {
            let Some(rule) = ctx.settings.places.collect.get(entry) else {
                return;
            };
            let settings: &TailSettings = ctx.settings;
            let Encoding {
                repair: buf, records, ..
            } = &mut *ctx.enc;
            let (text, repaired) = rule.decode(line, buf);
            if repaired {
                ctx.counts.utf8_repaired += 1;
            }
            let rec = Record {
                time: "",
                timestamp_ms: wall_ms,
                stream: Stream::Stdout,
                content: text.as_bytes(),
                start,
                end,
                pieces: 1,
                truncated: false,
                closed: CloseReason::Terminated,
            };
            if let Some(ml) = &mut s.multiline {
                let counts = &mut *ctx.counts;
                ml.push(rec, now, |r| encode_collected(rule, &r, settings, counts, records));
            }
        }
        Kind::Container { .. } => match s.parser.parse(line, scratch) {
            Ok(l) if s.excluded[l.stream.index()] => ctx.counts.excluded += 1,
            Ok(l) => {
                let Source {
                    joiner,
                    multiline,
                    shape,
                    kind,
                    ..
                } = &mut *s;
                let settings = ctx.settings;
                let counts = &mut *ctx.counts;
                let enc = &mut *ctx.enc;
                let filters = filters_of(kind);
                let mut emit = |r: Record<'_>| encode_record(shape, filters, &r, settings, counts, enc);
                match multiline {
                    Some(ml) => joiner.push(l, start, end, now, |r| ml.push(r, now, &mut emit)),
                    None => joiner.push(l, start, end, now, &mut emit),
                }
            }
            Err(_) => {
                // Never dropped: the raw line goes out with the read time, counted.
                ctx.counts.parse_errors += 1;
                let Encoding { repair: buf, arena, .. } = &mut *ctx.enc;
                let text = repair(line, buf);
                let msg = encode::unparsed_line(&s.shape, text.text, wall_ms, ctx.settings.size, arena);
                ctx.enc.records.push((wall_ms, start, Msg::Arena(msg)));
            }
        },
    }
}

fn push_event(
    s: &Source,
    ts: i64,
    message: Message,
    token: u64,
    events: &mut Vec<LogEvent>,
    bytes: &mut usize,
    counts: &mut Counts,
) {
    *bytes += message.len() + 26;
    counts.events += 1;
    events.push(LogEvent {
        group: s.route.group_name.clone(),
        stream: s.route.stream.clone(),
        timestamp_ms: ts,
        message,
        token,
    });
}

/// Emits the records of a source whose flush time has come (`now = Duration::MAX`: all).
fn flush_expired(
    s: &mut Source,
    now: Duration,
    handed_s: f64,
    mut ctx: Ctx<'_>,
    events: &mut Vec<LogEvent>,
    bytes: &mut usize,
) {
    let collect = match s.kind {
        Kind::Container { .. } => None,
        Kind::Host { .. } => return,
        Kind::Collect { entry } => Some(ctx.settings.places.collect.get(entry).cloned()),
    };
    let finish = now == Duration::MAX;
    {
        let Source {
            joiner,
            multiline,
            shape,
            kind,
            ..
        } = &mut *s;
        let settings = ctx.settings;
        let counts = &mut *ctx.counts;
        let enc = &mut *ctx.enc;
        let filters = filters_of(kind);
        let mut emit = |r: Record<'_>| match &collect {
            Some(Some(rule)) => encode_collected(rule, &r, settings, counts, &mut enc.records),
            Some(None) => {}
            None => encode_record(shape, filters, &r, settings, counts, enc),
        };
        match multiline {
            Some(ml) => {
                if finish {
                    joiner.finish(|r| ml.push(r, Duration::ZERO, &mut emit));
                    ml.finish(&mut emit);
                } else {
                    joiner.flush_expired(now, |r| ml.push(r, now, &mut emit));
                    ml.flush_expired(now, &mut emit);
                }
            }
            None => {
                if finish {
                    joiner.finish(&mut emit);
                } else {
                    joiner.flush_expired(now, &mut emit);
                }
            }
        }
    }
    hand_over(s, handed_s, &mut ctx, events, bytes);
}

/// The filters of a container source, if any matched it.
fn filters_of(kind: &Kind) -> Option<&[(bool, regex::Regex)]> {
    match kind {
        Kind::Container { filters, .. } => filters.as_deref(),
        _ => None,
    }
}

/// Encodes one record: its content repaired to UTF-8, then the message(s) of its shape; or
/// nothing when one of its container's `filters` holds it back (counted as `filtered`; its bytes
/// are committed with the records around it).
fn encode_record(
    shape: &Shape,
    filters: Option<&[(bool, regex::Regex)]>,
    r: &Record<'_>,
    settings: &TailSettings,
    counts: &mut Counts,
    enc: &mut Encoding,
) {
    let Encoding {
        repair: buf,
        arena,
        records,
        messages,
        ..
    } = enc;
    let text = repair(r.content, buf);
    if text.repaired {
        counts.utf8_repaired += 1;
    }
    if let Some(filters) = filters
        && !filters.iter().all(|(include, re)| re.is_match(text.text) == *include)
    {
        counts.filtered += 1;
        return;
    }
    let e = encode::container_record(shape, r, text.text, settings.size, arena, messages);
    if e.truncated {
        counts.truncated_records += 1;
    }
    if e.split {
        counts.split_records += 1;
    }
    records.extend(messages.drain(..).map(|m| (r.timestamp_ms, r.start, Msg::Arena(m))));
}

/// A `collect_list` record: the line(s) themselves, timestamped, filtered and sized.
fn encode_collected(
    rule: &CollectRule,
    r: &Record<'_>,
    settings: &TailSettings,
    counts: &mut Counts,
    out: &mut Vec<(i64, u64, Msg)>,
) {
    // The record's own time is when its first line was read: the clock for year-less times.
    let Some(event) = rule.event(r, r.timestamp_ms, settings.size) else {
        return;
    };
    if event.messages.is_empty() {
        counts.filtered += 1;
        return;
    }
    if event.truncated {
        match settings.size.oversize {
            OversizeEvent::Truncate => counts.truncated_records += 1,
            OversizeEvent::Split => counts.split_records += 1,
        }
    }
    out.extend(
        event
            .messages
            .iter()
            .map(|m| (event.timestamp_ms, r.start, Msg::Ready(Message::new(m)))),
    );
}

/// Registers encoded records with the settle table and queues them for the output: the arena
/// is sealed, and its messages are those of the records in `ctx.enc.records`.
fn hand_over(s: &Source, handed_s: f64, ctx: &mut Ctx<'_>, events: &mut Vec<LogEvent>, bytes: &mut usize) {
    if ctx.enc.records.is_empty() {
        return;
    }
    let Encoding {
        arena, records, tokens, ..
    } = &mut *ctx.enc;
    tokens.clear();
    ctx.settlements
        .hand_over_all(s.id, records.iter().map(|r| r.1), handed_s, tokens);
    let sealed = arena.seal();
    for ((ts, _, m), &token) in records.drain(..).zip(tokens.iter()) {
        let message = match m {
            Msg::Arena(p) => sealed.take(p),
            Msg::Ready(m) => m,
        };
        push_event(s, ts, message, token, events, bytes, ctx.counts);
    }
}

/// Settings defaults for tests and the benchmark.
pub fn size_rules(max_event_bytes: usize, oversize: OversizeEvent) -> SizeRules {
    SizeRules {
        max_event_bytes,
        oversize,
    }
}
