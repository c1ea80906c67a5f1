//! Typed events: each `emit` logs at the right level with structured fields and bumps its
//! counter, so a log line and a counter can never disagree.

use std::path::Path;
use std::time::Duration;

use super::{Name, Telemetry};

/// Outcome of one config reload attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReloadResult {
    Applied,
    Invalid,
    Unchanged,
    ReadFailed,
}

#[derive(Debug)]
pub struct ConfigReloaded {
    pub result: ReloadResult,
}

impl ConfigReloaded {
    pub fn emit(&self, t: &Telemetry) {
        let label = match self.result {
            ReloadResult::Applied => "applied",
            ReloadResult::Invalid => "invalid",
            ReloadResult::Unchanged => "unchanged",
            ReloadResult::ReadFailed => "read_failed",
        };
        match self.result {
            ReloadResult::Applied => tracing::info!(result = label, "configuration reloaded"),
            ReloadResult::Unchanged => tracing::debug!(result = label, "configuration unchanged"),
            // The reload module logs each error with its JSON path; this is the summary.
            ReloadResult::Invalid | ReloadResult::ReadFailed => {
                tracing::warn!(
                    result = label,
                    "configuration reload rejected; the running configuration stays"
                );
            }
        }
        t.add(Name::ConfigReloads, &[("result", label)], 1);
    }
}

/// A node file could not be read or parsed; the object is skipped and the cycle goes on.
#[derive(Debug)]
pub struct HostReadFailed<'a> {
    pub source: ReadSource,
    /// The error's kind label: `not_found`, `permission_denied`, `parse`, `io`.
    pub kind: &'static str,
    pub error: &'a (dyn std::error::Error + 'static),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadSource {
    Procfs,
    Cgroup,
}

impl HostReadFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let chain = super::chain(self.error);
        // A vanished cgroup is ordinary churn (a container stopped between listing and
        // reading); anything else means a metric is missing this interval.
        if self.kind == "not_found" {
            tracing::debug!(error = %chain, "node file vanished");
        } else {
            tracing::warn!(error = %chain, "cannot read node file; skipping it this interval");
        }
        let source = match self.source {
            ReadSource::Procfs => "procfs",
            ReadSource::Cgroup => "cgroup",
        };
        t.add(Name::HostReadErrors, &[("kind", self.kind), ("source", source)], 1);
    }
}

/// One collection cycle finished.
#[derive(Debug)]
pub struct CycleCompleted {
    pub records: usize,
    pub datums: usize,
    pub elapsed: Duration,
    /// CPU time of the collection itself (on its thread).
    pub cpu: Duration,
}

impl CycleCompleted {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(
            records = self.records,
            datums = self.datums,
            elapsed_ms = self.elapsed.as_millis(),
            cpu_us = self.cpu.as_micros(),
            "collection cycle done"
        );
        t.add(Name::MetricCycles, &[], 1);
        t.set(Name::MetricCycleSeconds, &[], self.elapsed.as_secs_f64());
        t.set(Name::MetricCycleCpuSeconds, &[], self.cpu.as_secs_f64());
    }
}

/// A tick came while the previous cycle was still running: it is skipped, not queued.
#[derive(Debug)]
pub struct CycleSkipped;

impl CycleSkipped {
    pub fn emit(&self, t: &Telemetry) {
        tracing::warn!("collection tick skipped: the previous cycle is still running");
        t.add(Name::MetricCyclesSkipped, &[], 1);
    }
}

/// Items accepted by a local output.
#[derive(Debug)]
pub struct ItemsWritten {
    pub output: &'static str,
    pub kind: &'static str,
    pub count: usize,
}

impl ItemsWritten {
    pub fn emit(&self, t: &Telemetry) {
        t.add(
            Name::ItemsWritten,
            &[("kind", self.kind), ("output", self.output)],
            self.count as u64,
        );
    }
}

/// Items an output could not write (a full disk, a closed stdout).
#[derive(Debug)]
pub struct ItemsDropped<'a> {
    pub output: &'static str,
    pub count: usize,
    pub target: &'a Path,
    pub error: &'a std::io::Error,
}

impl ItemsDropped<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::error!(output = self.output, count = self.count, target = %self.target.display(), error = %self.error, "items dropped: output write failed");
        t.add(
            Name::ItemsDropped,
            &[("output", self.output), ("reason", "write_failed")],
            self.count as u64,
        );
    }
}

/// Time left on one identity's AWS credentials; `None` (static keys)
/// sets nothing.
#[derive(Debug)]
pub struct CredentialsExpiry {
    pub role: &'static str,
    pub seconds_left: Option<f64>,
}

impl CredentialsExpiry {
    pub fn emit(&self, t: &Telemetry) {
        if let Some(s) = self.seconds_left {
            t.set(Name::AwsCredentialsExpiry, &[("role", self.role)], s);
        }
    }
}

/// A background credential refresh succeeded.
#[derive(Debug)]
pub struct CredentialsRefreshed<'a> {
    pub identity: &'a str,
    pub role: &'static str,
    /// Failed attempts before this one; > 0 means kinsight recovered.
    pub after_failures: u32,
    pub expiry: Option<std::time::SystemTime>,
}

impl CredentialsRefreshed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let expires = self
            .expiry
            .map(|e| humantime::format_rfc3339_seconds(e).to_string())
            .unwrap_or_default();
        if self.after_failures > 0 {
            tracing::info!(identity = self.identity, failures = self.after_failures, expires = %expires, "AWS credentials refreshed after failures");
        } else {
            tracing::debug!(identity = self.identity, expires = %expires, "AWS credentials refreshed");
        }
        t.add(Name::AwsCredentialsRefresh, &[("result", "ok"), ("role", self.role)], 1);
    }
}

/// A background credential refresh failed; the current credentials are kept while valid.
/// `log` is false for failures inside the one-line-a-minute window (the counter still counts).
#[derive(Debug)]
pub struct CredentialsRefreshFailed<'a> {
    pub identity: &'a str,
    pub role: &'static str,
    /// One line, free of secrets.
    pub error: &'a str,
    pub failures: u32,
    pub expiry: Option<std::time::SystemTime>,
    /// The current credentials have expired: AWS calls fail now.
    pub expired: bool,
    pub log: bool,
}

impl CredentialsRefreshFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        if self.log {
            let expires = self
                .expiry
                .map(|e| humantime::format_rfc3339_seconds(e).to_string())
                .unwrap_or_default();
            if self.expired {
                tracing::error!(identity = self.identity, failures = self.failures, expired = %expires, error = self.error, "AWS credentials refresh failed and the credentials have expired: AWS calls fail until a refresh succeeds; retrying with backoff");
            } else {
                tracing::warn!(identity = self.identity, failures = self.failures, expires = %expires, error = self.error, "AWS credentials refresh failed; the current credentials stay in use until they expire, retrying with backoff");
            }
        }
        t.add(
            Name::AwsCredentialsRefresh,
            &[("result", "error"), ("role", self.role)],
            1,
        );
    }
}

/// The kind of AWS identity in use, set once at startup.
#[derive(Debug)]
pub struct IdentityInUse {
    pub kind: &'static str,
    /// `node-role` | `metadata-proxy` for IMDS, `none` otherwise.
    pub imds_source: &'static str,
}

impl IdentityInUse {
    pub fn emit(&self, t: &Telemetry) {
        t.set(
            Name::AwsIdentityInfo,
            &[("imds_source", self.imds_source), ("kind", self.kind)],
            1.0,
        );
    }
}

/// AWS answered `AccessDenied` for an action (a missing permission, not a credentials problem).
/// The caller logs the ERROR line (once per action and resource per 10 min, with the identity ARN); this counts it.
#[derive(Debug)]
pub struct AccessDenied {
    /// The IAM action, e.g. `cloudwatch:PutMetricData`, `logs:PutLogEvents`.
    pub action: &'static str,
}

impl AccessDenied {
    pub fn emit(&self, t: &Telemetry) {
        t.add(Name::AwsAccessDenied, &[("action", self.action)], 1);
    }
}

/// Outcome of one pod index load by a source (`kube::file`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodIndexReloadResult {
    Applied,
    Invalid,
    ReadFailed,
}

/// A pod source loaded a new list, or failed to and kept the previous index.
#[derive(Debug)]
pub struct PodIndexReloaded<'a> {
    pub source: &'a Path,
    pub result: PodIndexReloadResult,
    /// Pods of this node in the index afterwards.
    pub pods: usize,
    pub error: Option<&'a (dyn std::error::Error + 'static)>,
}

impl PodIndexReloaded<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let label = match self.result {
            PodIndexReloadResult::Applied => "applied",
            PodIndexReloadResult::Invalid => "invalid",
            PodIndexReloadResult::ReadFailed => "read_failed",
        };
        let source = self.source.display();
        match self.error {
            None => tracing::info!(%source, pods = self.pods, "pod index loaded"),
            Some(e) => tracing::warn!(
                %source,
                result = label,
                pods = self.pods,
                error = %super::chain(e),
                "pod list not loaded; the pod index keeps its previous content"
            ),
        }
        t.add(Name::PodIndexReloads, &[("result", label)], 1);
        t.set(Name::PodIndexPods, &[], self.pods as f64);
    }
}

/// Parts of one pod list skipped or treated as unset; the rest of the list loaded.
#[derive(Debug)]
pub struct PodListWarned<'a, W> {
    pub source: &'a Path,
    /// Each warning with its `kind` label.
    pub warnings: &'a [W],
    pub kind_of: fn(&W) -> &'static str,
}

impl<W: std::fmt::Display> PodListWarned<'_, W> {
    /// A list with one systematic mistake warns about every pod; the log names the first few.
    const MAX_LOGGED: usize = 10;

    pub fn emit(&self, t: &Telemetry) {
        let source = self.source.display();
        for (i, warning) in self.warnings.iter().enumerate() {
            if i < Self::MAX_LOGGED {
                tracing::warn!(%source, %warning, "pod list entry not fully usable");
            }
            t.add(Name::PodIndexWarnings, &[("kind", (self.kind_of)(warning))], 1);
        }
        if self.warnings.len() > Self::MAX_LOGGED {
            tracing::warn!(%source, more = self.warnings.len() - Self::MAX_LOGGED, "more pod list entries not fully usable");
        }
    }
}

/// Why metric datums or EMF events were not delivered (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShipDropReason {
    /// The bounded queue was full; the oldest interval (or events) made room.
    QueueFull,
    /// AWS rejected the request (`InvalidParameterValue`, `InvalidParameterException`, …).
    Rejected,
    /// The identity lacks the action (`AccessDenied`).
    AccessDenied,
    /// A metric value CloudWatch cannot store (NaN, ±Inf, beyond ±2^360).
    InvalidValue,
    /// A datum timestamp older than two weeks or more than two hours ahead.
    OutOfWindow,
    /// An event older than 14 days (checked before sending, or rejected by CloudWatch Logs).
    TooOld,
    /// An event more than 2 h ahead.
    TooNew,
    /// An event larger than one PutLogEvents request can carry.
    TooLarge,
    /// The agent stopped before the data could be sent.
    Shutdown,
    /// A local output could not write it.
    WriteFailed,
    /// A payload reached an output that has no lane for it (a bug: the output and the collector
    /// disagree about the destination).
    NoLane,
}

impl ShipDropReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ShipDropReason::QueueFull => "queue_full",
            ShipDropReason::Rejected => "rejected",
            ShipDropReason::AccessDenied => "access_denied",
            ShipDropReason::InvalidValue => "invalid_value",
            ShipDropReason::OutOfWindow => "out_of_window",
            ShipDropReason::TooOld => "too_old",
            ShipDropReason::TooNew => "too_new",
            ShipDropReason::TooLarge => "too_large",
            ShipDropReason::Shutdown => "shutdown",
            ShipDropReason::WriteFailed => "write_failed",
            ShipDropReason::NoLane => "no_lane",
        }
    }
}

/// Metric datums that will not reach CloudWatch (the metrics queue is bounded: when full, the
/// oldest intervals are dropped and counted).
/// `log` is false for repeats inside a rate-limit window (the counter still counts).
#[derive(Debug)]
pub struct MetricsDropped<'a> {
    pub reason: ShipDropReason,
    pub count: usize,
    /// The AWS error code, when AWS refused the request.
    pub code: Option<&'a str>,
    /// One line: the AWS message or error chain.
    pub detail: &'a str,
    pub log: bool,
}

impl MetricsDropped<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let reason = self.reason.as_str();
        let code = self.code.unwrap_or("");
        if self.log {
            match self.reason {
                ShipDropReason::Rejected | ShipDropReason::AccessDenied => tracing::error!(
                    reason,
                    code,
                    count = self.count,
                    detail = self.detail,
                    "PutMetricData refused; the batch is dropped"
                ),
                _ => tracing::warn!(
                    reason,
                    count = self.count,
                    detail = self.detail,
                    "metric datums dropped"
                ),
            }
        }
        t.add(Name::MetricsDropped, &[("reason", reason)], self.count as u64);
    }
}

/// EMF performance events that will not reach CloudWatch Logs.
#[derive(Debug)]
pub struct EmfEventsDropped<'a> {
    pub reason: ShipDropReason,
    pub count: usize,
    pub log_group: &'a str,
    pub code: Option<&'a str>,
    pub detail: &'a str,
}

impl EmfEventsDropped<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let reason = self.reason.as_str();
        let code = self.code.unwrap_or("");
        match self.reason {
            ShipDropReason::Rejected | ShipDropReason::AccessDenied => tracing::error!(
                reason,
                code,
                count = self.count,
                log_group = self.log_group,
                detail = self.detail,
                "PutLogEvents refused; the performance events are dropped"
            ),
            _ => tracing::warn!(
                reason,
                count = self.count,
                log_group = self.log_group,
                detail = self.detail,
                "performance events dropped"
            ),
        }
        t.add(Name::EmfEventsDropped, &[("reason", reason)], self.count as u64);
    }
}

/// Outcome of one AWS call made by an output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsCallResult {
    Ok,
    /// Failed; the same request will be sent again.
    Retry,
    /// Failed for good.
    Error,
}

/// One AWS call by an output (`PutMetricData`, `PutLogEvents`, `CreateLogGroup`, …).
#[derive(Debug)]
pub struct AwsCall<'a> {
    pub api: &'static str,
    pub result: AwsCallResult,
    pub code: Option<&'a str>,
    pub detail: &'a str,
}

impl AwsCall<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let result = match self.result {
            AwsCallResult::Ok => "ok",
            AwsCallResult::Retry => "retry",
            AwsCallResult::Error => "error",
        };
        if self.result == AwsCallResult::Retry {
            tracing::debug!(
                api = self.api,
                code = self.code.unwrap_or(""),
                detail = self.detail,
                "AWS call failed; retrying with backoff"
            );
        }
        t.add(Name::AwsRequests, &[("api", self.api), ("result", result)], 1);
    }
}

/// Pod cgroups whose pod is not (yet) in the pod index: no records this tick.
#[derive(Debug)]
pub struct PodsUnknown {
    pub count: usize,
}

impl PodsUnknown {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(count = self.count, "pod cgroups without pod metadata skipped this tick");
        t.add(Name::PodsUnknown, &[], self.count as u64);
    }
}

/// What the collector holds open across cycles (README "How the files are read").
#[derive(Debug)]
pub struct HeldObjects {
    pub cgroups: usize,
    pub processes: usize,
}

impl HeldObjects {
    #[expect(clippy::cast_precision_loss, reason = "counts of open descriptors fit in f64")]
    pub fn emit(&self, t: &Telemetry) {
        t.set(Name::HostHeldObjects, &[("kind", "cgroup")], self.cgroups as f64);
        t.set(Name::HostHeldObjects, &[("kind", "process")], self.processes as f64);
    }
}

/// Log events of one request (or one check) reached a final outcome in an output.
#[derive(Debug)]
pub struct LogEventsSettled<'a> {
    /// `accepted`, `rejected_*` or `dropped_*`.
    pub outcome: &'static str,
    pub events: usize,
    /// `PutLogEvents` bytes: message bytes + 26 per event.
    pub bytes: usize,
    pub log_group: &'a str,
    pub code: Option<&'a str>,
    pub detail: &'a str,
}

impl LogEventsSettled<'_> {
    pub fn emit(&self, t: &Telemetry) {
        if self.outcome != "accepted" {
            tracing::warn!(
                outcome = self.outcome,
                events = self.events,
                log_group = self.log_group,
                code = self.code.unwrap_or(""),
                detail = self.detail,
                "log events not delivered"
            );
        }
        // The Container Insights groups end in their kind: a bounded label.
        let group = match self.log_group.rsplit('/').next() {
            Some("application") => "application",
            Some("dataplane") => "dataplane",
            Some("host") => "host",
            _ => "other",
        };
        let labels = [("group", group), ("outcome", self.outcome)];
        t.add(Name::LogEventsSettled, &labels, self.events as u64);
        t.add(Name::LogBytesSettled, &labels, self.bytes as u64);
    }
}

/// A restartable task ended or panicked and is started again after `delay`.
#[derive(Debug)]
pub struct TaskRestarted<'a> {
    pub task: &'static str,
    /// Why it ended: "returned", or the panic message.
    pub cause: &'a str,
    pub delay: Duration,
}

impl TaskRestarted<'_> {
    pub fn emit(&self, t: &Telemetry) {
        tracing::warn!(
            task = self.task,
            cause = self.cause,
            delay_ms = self.delay.as_millis(),
            "background task ended; restarting it"
        );
        t.add(Name::TaskRestarts, &[("task", self.task)], 1);
    }
}

/// A configuration reload rebuilt an output, or failed to and kept the running one.
#[derive(Debug)]
pub struct OutputRebuilt<'a> {
    /// The keys whose change caused it.
    pub changed: &'a [&'static str],
    pub error: Option<&'a str>,
}

impl OutputRebuilt<'_> {
    pub fn emit(&self, t: &Telemetry) {
        match self.error {
            None => {
                tracing::info!(changed = ?self.changed, "output rebuilt for the new configuration");
                t.add(Name::OutputRebuilds, &[("result", "rebuilt")], 1);
            }
            Some(e) => {
                tracing::error!(changed = ?self.changed, error = e, "cannot rebuild the output; the running one stays");
                t.add(Name::OutputRebuilds, &[("result", "failed")], 1);
            }
        }
    }
}

/// What became of the log pipeline a reload replaced.
#[derive(Debug, Clone, Copy)]
pub enum LogPipelineOutcome<'a> {
    /// A new pipeline runs; `unsent` events of the old one were not accepted by then: the output
    /// gave them up, and they are read again.
    Rebuilt { unsent: usize },
    /// Log collection is now off.
    Off,
    /// The new configuration cannot be used (the running pipeline stays), or the new pipeline
    /// cannot start (log collection stops until the next reload or restart).
    Failed(&'a str),
}

/// A reload replaced the log pipeline (`kinsight_log_pipeline_rebuilds_total{result}`).
#[derive(Debug)]
pub struct LogPipelineRebuilt<'a> {
    /// The keys whose change caused it.
    pub changed: &'a [&'static str],
    pub outcome: LogPipelineOutcome<'a>,
}

impl LogPipelineRebuilt<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let result = match self.outcome {
            LogPipelineOutcome::Rebuilt { unsent: 0 } => {
                tracing::info!(changed = ?self.changed, "log pipeline rebuilt for the new configuration; it resumed from the checkpoints");
                "rebuilt"
            }
            LogPipelineOutcome::Rebuilt { unsent } => {
                tracing::warn!(
                    changed = ?self.changed,
                    unsent,
                    "log pipeline rebuilt for the new configuration; events CloudWatch Logs had not accepted yet were withdrawn from the output and are read again"
                );
                "rebuilt"
            }
            LogPipelineOutcome::Off => {
                tracing::info!(changed = ?self.changed, "log collection stopped for the new configuration; checkpoints committed");
                "off"
            }
            LogPipelineOutcome::Failed(error) => {
                tracing::error!(changed = ?self.changed, error, "cannot rebuild the log pipeline for the new configuration");
                "failed"
            }
        };
        t.add(Name::LogPipelineRebuilds, &[("result", result)], 1);
    }
}

/// A scan of the log directories, and what started it.
#[derive(Debug, Clone, Copy)]
pub struct LogScan {
    /// inotify reported a change (else the periodic timer).
    pub inotify: bool,
}

impl LogScan {
    pub fn emit(self, t: &Telemetry) {
        let trigger = if self.inotify { "inotify" } else { "timer" };
        t.add(Name::LogScans, &[("trigger", trigger)], 1);
    }
}

/// What one round of the log tailer did (deltas since the last round) and where it stands.
#[derive(Debug, Default)]
pub struct LogsRound {
    pub lines: u64,
    pub bytes: u64,
    pub parse_errors: u64,
    pub utf8_repaired: u64,
    pub truncated: u64,
    pub excluded: u64,
    /// Records a filter held back (`kinsight.logs.filters`, `collect_list` filters).
    pub filtered: u64,
    pub split: u64,
    pub long_lines: u64,
    pub opened: u64,
    pub finished: u64,
    pub rotated: u64,
    pub truncated_files: u64,
    pub open_failed: u64,
    pub resumed_gzip: u64,
    pub lost_at_restart: u64,
    /// Deleted files given up under disk pressure.
    pub abandoned: u64,
    /// Container files sent to the Container Insights application group because
    /// `kinsight.logs.application_log_group` made no valid group name for them.
    pub group_fallbacks: u64,
    pub files: usize,
    pub bytes_behind: u64,
    pub oldest_unacknowledged_s: f64,
}

impl LogsRound {
    pub fn emit(&self, t: &Telemetry) {
        if self.lines > 0 {
            t.add(Name::LogLinesRead, &[], self.lines);
            t.add(Name::LogBytesRead, &[], self.bytes);
        }
        for (kind, n) in [
            ("parse_error", self.parse_errors),
            ("utf8_repaired", self.utf8_repaired),
            ("truncated", self.truncated),
            ("excluded", self.excluded),
            ("filtered", self.filtered),
            ("split", self.split),
            ("long_line", self.long_lines),
        ] {
            if n > 0 {
                t.add(Name::LogRecordAnomalies, &[("kind", kind)], n);
            }
        }
        for (event, n) in [
            ("opened", self.opened),
            ("finished", self.finished),
            ("rotated", self.rotated),
            ("truncated", self.truncated_files),
            ("open_failed", self.open_failed),
            ("resumed_gzip", self.resumed_gzip),
            ("lost_at_restart", self.lost_at_restart),
            ("abandoned_disk_pressure", self.abandoned),
            ("application_group_fallback", self.group_fallbacks),
        ] {
            if n > 0 {
                t.add(Name::LogFileEvents, &[("event", event)], n);
            }
        }
        t.set(Name::LogFilesTailed, &[], self.files as f64);
        t.set(Name::LogBytesBehind, &[], self.bytes_behind as f64);
        t.set(Name::LogOldestUnacknowledged, &[], self.oldest_unacknowledged_s);
    }
}
