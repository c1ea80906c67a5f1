//! Typed events: each `emit` logs at the right level with structured fields and bumps its
//! counter, so a log line and a counter can never disagree (STYLE.md §8).

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
    pub source: HostSource,
    pub error: &'a crate::host::HostError,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSource {
    Procfs,
    Cgroup,
}

impl HostReadFailed<'_> {
    pub fn emit(&self, t: &Telemetry) {
        let chain = super::chain(self.error);
        // A vanished cgroup is ordinary churn (a container stopped between listing and
        // reading); anything else means a metric is missing this interval.
        if self.error.is_not_found() {
            tracing::debug!(error = %chain, "node file vanished");
        } else {
            tracing::warn!(error = %chain, "cannot read node file; skipping it this interval");
        }
        let source = match self.source {
            HostSource::Procfs => "procfs",
            HostSource::Cgroup => "cgroup",
        };
        t.add(
            Name::HostReadErrors,
            &[("kind", self.error.kind()), ("source", source)],
            1,
        );
    }
}

/// One collection cycle finished.
#[derive(Debug)]
pub struct CycleCompleted {
    pub records: usize,
    pub datums: usize,
    pub elapsed: Duration,
}

impl CycleCompleted {
    pub fn emit(&self, t: &Telemetry) {
        tracing::debug!(
            records = self.records,
            datums = self.datums,
            elapsed_ms = self.elapsed.as_millis(),
            "collection cycle done"
        );
        t.add(Name::MetricCycles, &[], 1);
        t.set(Name::MetricCycleSeconds, &[], self.elapsed.as_secs_f64());
    }
}

/// A tick came while the previous cycle was still running (TICK-6).
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
