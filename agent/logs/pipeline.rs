//! The log pipeline as one task: the tailer on a blocking thread, its events handed to the
//! current output, its checkpoints committed last at shutdown.
//!
//! The reads are synchronous (`pread` on held descriptors), so the loop runs on tokio's blocking
//! pool and enters the runtime only to hand a round's events to the output, which makes it wait
//! while the output holds its capacity. When a round leaves nothing waiting (every file read
//! to its end) it sleeps [`IDLE`] before the next. It scans the directories when inotify
//! reports a change in one of them, and every [`RESCAN_WATCHED`] regardless (every [`RESCAN`]
//! without inotify): a new file is found within a fraction of a second, and a line written to a
//! file being tailed reaches the output within [`IDLE`].

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Multiline, MultilinePreset, MultilineStart, RecordProfile};
use crate::host::Clock;
use crate::host::confined::ConfinedRoot;
use crate::kube::PodIndex;
use crate::ship::Output;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{LogScan, LogsRound};

use super::checkpoint::Store;
use super::collect::{CollectRule, Placeholders};
use super::discover::Places;
use super::encode::NodeFacts;
use super::parse::{Limits, MultilineRule, Preset};
use super::settle::Settlements;
use super::tail::{Counts, JournalSettings, TailSettings, Tailer, size_rules};
use super::watch::DirWatch;

/// Pause after a round that left nothing waiting. A line is then read at most this late, small
/// against the flush interval (5 s by default) that decides when it is sent; at a steady trickle
/// each round costs about the same whatever it finds, so the pause sets the CPU: measured at
/// 5 MB/s over 50 files, 6.5 % of a core with 200 ms, 5.3 % with 500 ms, 4.3 % with 1 s
/// (`scripts/bench logs-live`).
pub const IDLE: Duration = Duration::from_secs(1);
/// Time between directory scans without inotify.
pub const RESCAN: Duration = Duration::from_secs(1);
/// Time between directory scans while inotify watches the directories: a safety net for what
/// inotify cannot see (a directory created and filled between a scan and its watch).
pub const RESCAN_WATCHED: Duration = Duration::from_secs(10);
/// Time between prunes of checkpoint entries of files that are gone.
pub const PRUNE: Duration = Duration::from_mins(5);

/// The pipeline, built and not yet running.
#[derive(Debug)]
pub struct LogPipeline {
    tailer: Tailer,
    settlements: Arc<Settlements>,
    telemetry: Telemetry,
    clock: Arc<dyn Clock>,
    /// The host root, for inotify watches.
    host_root: std::path::PathBuf,
    /// New container multiline rules from a configuration reload.
    rules: Option<watch::Receiver<Arc<ContainerRules>>>,
}

/// How the app stops a running pipeline (at shutdown, or to replace it on a reload).
#[derive(Debug, Clone, Default)]
pub struct Stop {
    /// Cancelled by the app: stop reading.
    pub inputs: CancellationToken,
    /// Cancelled by the pipeline once it handed the records still being assembled to the
    /// output.
    pub handed: CancellationToken,
    /// Cancelled by the app once the output sent what it held (or gave up): the pipeline then
    /// commits its checkpoints.
    pub flushed: CancellationToken,
}

/// Why the pipeline cannot run at all (reported, and the agent goes on without logs).
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("cannot open the host root {path} for log reading")]
    Root {
        path: String,
        #[source]
        source: crate::host::confined::ConfinedError,
    },
    #[error("multiline rule kinsight.logs.multiline[{index}].first_line_regex does not compile")]
    Multiline {
        index: usize,
        #[source]
        source: regex::Error,
    },
    #[error("filter kinsight.logs.filters[{index}].expression does not compile")]
    Filter {
        index: usize,
        #[source]
        source: regex::Error,
    },
    #[error("logs.logs_collected.files.collect_list cannot be used")]
    Collect(#[source] super::collect::CollectError),
}

/// The multiline rules of a record profile, for a file that sets none. The fluentd profile joins
/// as the Container Insights fluentd set-up did (`containers.conf` of
/// `aws-samples/amazon-cloudwatch-container-insights`: a `concat` filter with
/// `multiline_start_regexp /^\S/` and `flush_interval 5` for every container, and
/// `/^\d{4}[-/]\d{1,2}[-/]\d{1,2}/` for the CloudWatch agent's own); the fluent-bit profile joins
/// nothing, as the Fluent Bit set-up only joins CRI and Docker partial lines.
fn default_multiline(profile: RecordProfile) -> Vec<Multiline> {
    let rule = |re: &str, glob: &str| Multiline {
        start: MultilineStart::FirstLineRegex(re.to_owned()),
        container_globs: vec![glob.to_owned()],
    };
    match profile {
        RecordProfile::FluentBit => Vec::new(),
        RecordProfile::Fluentd => vec![
            rule(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}", "cloudwatch-agent*"),
            rule(r"^\S", "*"),
        ],
    }
}

/// Container multiline rules, compiled, with the basename globs each applies to.
pub type ContainerRules = Vec<(MultilineRule, Vec<String>)>;

/// The container multiline rules: `configured` (`kinsight.logs.multiline`), or `profile`'s
/// default when the file sets none.
pub fn container_rules(
    configured: &Option<Vec<Multiline>>,
    profile: RecordProfile,
) -> Result<ContainerRules, LogsError> {
    let default;
    let rules = match configured {
        Some(rules) => rules,
        None => {
            default = default_multiline(profile);
            &default
        }
    };
    rules
        .iter()
        .enumerate()
        .map(|(index, m)| {
            let rule = match &m.start {
                MultilineStart::FirstLineRegex(re) => {
                    MultilineRule::start_pattern(re).map_err(|source| LogsError::Multiline { index, source })?
                }
                MultilineStart::Preset(p) => MultilineRule::preset(match p {
                    MultilinePreset::Java => Preset::Java,
                    MultilinePreset::Python => Preset::Python,
                    MultilinePreset::Go => Preset::Go,
                }),
            };
            Ok((rule, m.container_globs.clone()))
        })
        .collect()
}

/// The tailer's settings for `cfg`.
pub fn settings(
    cfg: &Config,
    host_root: &Path,
    own_pod: Option<(String, String)>,
    node: NodeFacts,
    placeholders: &Placeholders,
) -> Result<TailSettings, LogsError> {
    let l = &cfg.logs;
    let collect = l
        .collect_list
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            CollectRule::compile(i, entry, placeholders, &cfg.paths.state_dir)
                .map(Arc::new)
                .map_err(LogsError::Collect)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let journald_host = l.host_source == crate::config::HostLogSource::Journald;
    // The persistent journal, and the volatile one when the node keeps none on disk (both are
    // what the Container Insights Fluent Bit set-up mounts).
    let journal = (!l.dataplane_units.is_empty() || journald_host).then(|| JournalSettings {
        dirs: ["var/log/journal", "run/log/journal"]
            .iter()
            .map(|d| host_root.join(d))
            .collect(),
        units: l.dataplane_units.clone(),
        host: journald_host,
    });
    let multiline = container_rules(&l.multiline, l.record_profile)?;
    Ok(TailSettings {
        cluster: cfg.cluster_name.clone(),
        node: cfg.node_name.clone(),
        places: Places {
            pod_logs_dir: cfg.paths.pod_logs_dir.display().to_string(),
            container_logs_dir: cfg.paths.container_logs_dir.display().to_string(),
            // With the host streams from the journal, the files are not read too.
            host_files: if journald_host {
                Vec::new()
            } else {
                l.host_files.clone()
            },
            collect,
        },
        profile: l.record_profile,
        labels: l.labels,
        annotations: l.annotations,
        stream_names: l.stream_names,
        exclude_globs: l.exclude_container_globs.clone(),
        filters: l
            .filters
            .iter()
            .enumerate()
            .map(|(index, f)| {
                Ok(super::tail::ContainerFilterRule {
                    include: f.filter.include,
                    regex: regex::Regex::new(&f.filter.expression)
                        .map_err(|source| LogsError::Filter { index, source })?,
                    globs: f.container_globs.clone(),
                })
            })
            .collect::<Result<_, LogsError>>()?,
        application_group: l.application_log_group.clone(),
        dataplane_globs: l.dataplane_container_globs.clone(),
        multiline,
        limits: Limits {
            max_record_bytes: l.max_event_bytes.max(1),
            flush_timeout: l.partial_flush_timeout,
        },
        size: size_rules(l.max_event_bytes, l.oversize_event),
        own_pod,
        node_facts: Arc::new(node),
        merge_json: true,
        journal,
        honour_exclude_annotation: l.honour_exclude_annotation,
        disk_pressure_free_percent: l.disk_pressure_free_percent,
        disk_space: super::tail::disk_space,
    })
}

impl LogPipeline {
    /// Opens the host root and the checkpoint store (`state_dir` below the host root). A state
    /// directory that cannot be used is reported and the pipeline runs without checkpoints: it
    /// still ships, but a restart reads the files again from their start.
    ///
    /// `settlements` is the table the output reports outcomes to; one serves every pipeline the
    /// process builds (see [`Settlements`]).
    pub fn build(
        settings: TailSettings,
        host_root: &Path,
        state_dir: &Path,
        pods: Option<PodIndex>,
        settlements: Arc<Settlements>,
        telemetry: Telemetry,
        clock: Arc<dyn Clock>,
    ) -> Result<LogPipeline, LogsError> {
        let root = ConfinedRoot::open(host_root).map_err(|source| LogsError::Root {
            path: host_root.display().to_string(),
            source,
        })?;
        let dir = host_root.join(state_dir.strip_prefix("/").unwrap_or(state_dir));
        let store = match std::fs::create_dir_all(&dir) {
            Ok(()) => {
                let wall = u64::try_from(clock.wall_ms()).unwrap_or(0);
                let (store, warning) = Store::open(&dir, wall);
                if let Some(w) = warning {
                    tracing::warn!(warning = %w, "log checkpoints were unreadable and were set aside; files are read from their start");
                }
                tracing::info!(entries = store.len(), dir = %dir.display(), "log checkpoints loaded");
                Some(store)
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "cannot use the state directory: logs ship without checkpoints, and a restart reads every file again");
                None
            }
        };
        let tailer = Tailer::new(settings, root, pods, settlements.clone(), store);
        Ok(LogPipeline {
            tailer,
            settlements,
            telemetry,
            clock,
            host_root: host_root.to_path_buf(),
            rules: None,
        })
    }

    /// Where a configuration reload sends new container multiline rules: the running pipeline
    /// applies them before its next round (`Tailer::set_multiline`).
    pub fn multiline_updates(&mut self, current: ContainerRules) -> watch::Sender<Arc<ContainerRules>> {
        let (tx, rx) = watch::channel(Arc::new(current));
        self.rules = Some(rx);
        tx
    }

    /// Runs until `stop.inputs` is cancelled, then hands over the records still being assembled
    /// (and says so on `stop.handed`), waits for `stop.flushed` (the output sent them, or gave
    /// up) and commits the checkpoints last. Its sources then leave the settle table.
    pub async fn run(self, output: watch::Receiver<Arc<dyn Output>>, stop: Stop) {
        let handle = tokio::runtime::Handle::current();
        let task = tokio::task::spawn_blocking(move || self.run_blocking(&handle, &output, &stop));
        if let Err(e) = task.await
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }

    fn run_blocking(mut self, handle: &tokio::runtime::Handle, output: &watch::Receiver<Arc<dyn Output>>, stop: &Stop) {
        let inputs = &stop.inputs;
        let started = self.clock.monotonic();
        let mut last_scan: Option<Duration> = None;
        let mut last_prune = Duration::ZERO;
        let mut reported = Counts::default();
        let mut generation = None;
        let mut rescan = false;
        let mut watch = match DirWatch::new(&self.host_root) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "inotify is not available; new log files are found by a scan every second");
                None
            }
        };
        while !inputs.is_cancelled() {
            if let Some(rx) = &mut self.rules
                && rx.has_changed().unwrap_or(false)
            {
                let rules = rx.borrow_and_update().as_ref().clone();
                self.tailer.set_multiline(rules);
                tracing::info!("new multiline rules applied to container logs");
            }
            let now = self.clock.monotonic() - started;
            let every = match &watch {
                Some(w) if !w.degraded => RESCAN_WATCHED,
                _ => RESCAN,
            };
            let changed = watch.as_mut().is_some_and(DirWatch::changed) || std::mem::take(&mut rescan);
            if changed || last_scan.is_none_or(|t| now.saturating_sub(t) >= every) {
                LogScan { inotify: changed }.emit(&self.telemetry);
                self.tailer.discover(now);
                if let Some(w) = &mut watch {
                    // A directory watched only now may already hold what the scan missed.
                    rescan = w.set(self.tailer.watch_dirs()) > 0;
                }
                last_scan = Some(now);
                let g = self.tailer_pod_generation();
                if g != generation {
                    generation = g;
                    self.tailer.refresh_metadata();
                }
            }
            let (events, waiting) = self.tailer.read_round(now, self.clock.wall_ms());
            if events.is_empty() {
                self.tailer.recycle(events);
            } else {
                match send(handle, output, events, inputs) {
                    Some(emptied) => self.tailer.recycle(emptied),
                    None => break,
                }
            }
            self.tailer.commit(now, false);
            self.tailer.relieve_disk_pressure();
            if now.saturating_sub(last_prune) >= PRUNE {
                self.tailer.prune_store();
                last_prune = now;
            }
            self.report(&mut reported, now);
            if !waiting {
                handle.block_on(async {
                    tokio::select! {
                        () = tokio::time::sleep(IDLE) => {}
                        () = inputs.cancelled() => {}
                    }
                });
            }
        }
        // Drain: what the joiners still hold goes out now (it would otherwise wait for a timer),
        // while the output is still flushing.
        let pending = self.tailer.flush_pending();
        if !pending.is_empty() {
            let out = output.borrow().clone();
            // An output that stays full (CloudWatch Logs unreachable) would hold this forever;
            // the app gives up on it with `flushed`, and the records are read again.
            handle.block_on(async {
                tokio::select! {
                    biased;
                    _ = out.send_logs(pending) => {}
                    () = stop.flushed.cancelled() => {}
                }
            });
        }
        stop.handed.cancel();
        handle.block_on(stop.flushed.cancelled());
        let now = self.clock.monotonic() - started;
        self.tailer.commit(now, true);
        self.report(&mut reported, now);
        let unsettled = self.tailer.release();
        tracing::info!(
            unsettled,
            "log checkpoints committed; unsettled events are read again by the next start"
        );
    }

    fn tailer_pod_generation(&self) -> Option<u64> {
        self.tailer.pod_generation()
    }

    fn report(&self, last: &mut Counts, now: Duration) {
        let c = self.tailer.counts;
        let oldest = self
            .settlements
            .oldest_handed()
            .map_or(0.0, |t| (now.as_secs_f64() - t).max(0.0));
        LogsRound {
            lines: c.lines - last.lines,
            bytes: c.bytes - last.bytes,
            parse_errors: c.parse_errors - last.parse_errors,
            utf8_repaired: c.utf8_repaired - last.utf8_repaired,
            truncated: c.truncated_records - last.truncated_records,
            excluded: c.excluded - last.excluded,
            filtered: c.filtered - last.filtered,
            split: c.split_records - last.split_records,
            long_lines: c.long_lines - last.long_lines,
            opened: c.opened - last.opened,
            finished: c.finished - last.finished,
            rotated: c.rotations - last.rotations,
            truncated_files: c.truncations - last.truncations,
            open_failed: c.open_errors - last.open_errors,
            resumed_gzip: c.resumed_gzip - last.resumed_gzip,
            lost_at_restart: c.lost_at_restart - last.lost_at_restart,
            group_fallbacks: c.group_fallbacks - last.group_fallbacks,
            abandoned: c.abandoned - last.abandoned,
            files: self.tailer.files(),
            bytes_behind: self.tailer.bytes_behind(),
            oldest_unacknowledged_s: oldest,
        }
        .emit(&self.telemetry);
        *last = c;
    }
}

/// Hands `events` to the current output, waiting while it is full. An output replaced by a
/// reload hands back what it could not take; they go to the new one. Returns the vector emptied,
/// or `None` when the inputs stopped meanwhile (the events stay unsettled and are read again
/// after a restart).
fn send(
    handle: &tokio::runtime::Handle,
    output: &watch::Receiver<Arc<dyn Output>>,
    mut events: Vec<crate::ship::LogEvent>,
    inputs: &CancellationToken,
) -> Option<Vec<crate::ship::LogEvent>> {
    loop {
        let out = output.borrow().clone();
        // Waiting for room ends when the inputs stop: an output that stays full (CloudWatch Logs
        // unreachable) must not keep a pipeline being replaced by a reload from stopping. The
        // events dropped then were never queued (`send_logs` can be dropped while it waits).
        let sent = handle.block_on(async {
            tokio::select! {
                biased;
                sent = out.send_logs(events) => Some(sent),
                () = inputs.cancelled() => None,
            }
        });
        match sent? {
            Ok(emptied) => return Some(emptied),
            Err(back) => {
                if inputs.is_cancelled() {
                    return None;
                }
                events = back;
                handle.block_on(async {
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                        () = inputs.cancelled() => {}
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fluentd_profile_joins_as_the_fluentd_set_up_did_and_fluent_bit_does_not() {
        assert!(default_multiline(RecordProfile::FluentBit).is_empty());
        let rules = default_multiline(RecordProfile::Fluentd);
        let starts: Vec<_> = rules
            .iter()
            .map(|m| match &m.start {
                MultilineStart::FirstLineRegex(re) => (re.as_str(), m.container_globs[0].as_str()),
                MultilineStart::Preset(p) => panic!("no preset expected: {p:?}"),
            })
            .collect();
        // The agent's own rule comes first: the first matching rule wins.
        assert_eq!(
            starts,
            [(r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}", "cloudwatch-agent*"), (r"^\S", "*")]
        );
        for (re, _) in starts {
            assert!(MultilineRule::start_pattern(re).is_ok(), "{re}");
        }
    }
}
