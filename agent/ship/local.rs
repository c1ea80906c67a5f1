//! The local outputs, `stdout` and `dir:PATH`: the JSON lines of `json_lines`, exactly what would
//! be sent. A log event counts as accepted once its line is written and flushed.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::{datum_lines, event_lines};
use super::output::{BoxFuture, Output};
use super::payload::{Acknowledge, Datum, DropReason, Leftover, LogEvent, Outcome};

/// File that metric datums are appended to inside the `dir:` output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File that EMF performance events are appended to.
pub const EMF_FILE: &str = "emf.jsonl";
/// File that log events are appended to.
pub const LOGS_FILE: &str = "logs.jsonl";

/// Where one kind of line goes.
#[derive(Debug)]
enum Target {
    Stdout,
    File { path: PathBuf, file: Mutex<File> },
}

impl Target {
    fn open(path: PathBuf) -> Result<Self, ShipError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ShipError::Write {
                path: path.clone(),
                source,
            })?;
        Ok(Target::File {
            path,
            file: Mutex::new(file),
        })
    }

    fn path(&self) -> &Path {
        match self {
            Target::Stdout => Path::new("<stdout>"),
            Target::File { path, .. } => path,
        }
    }

    /// One write per batch, so lines of concurrent writers never interleave.
    fn write(&self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Target::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(buf).and_then(|()| out.flush())
            }
            Target::File { file, .. } => {
                let mut f = file.lock().unwrap_or_else(PoisonError::into_inner);
                f.write_all(buf).and_then(|()| f.flush())
            }
        }
    }
}

/// `stdout` or `dir:PATH`.
#[derive(Debug)]
pub struct LocalOutput {
    name: &'static str,
    metrics: Target,
    performance: Target,
    logs: Target,
    telemetry: Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
}

impl LocalOutput {
    /// JSON lines on standard output; diagnostics never go there (they go to stderr).
    pub fn stdout(telemetry: Telemetry, ack: Option<Arc<dyn Acknowledge>>) -> Self {
        LocalOutput {
            name: "stdout",
            metrics: Target::Stdout,
            performance: Target::Stdout,
            logs: Target::Stdout,
            telemetry,
            ack,
        }
    }

    /// JSON lines appended to `PATH/metrics.jsonl`, `PATH/emf.jsonl` and `PATH/logs.jsonl`.
    pub fn dir(dir: &Path, telemetry: Telemetry, ack: Option<Arc<dyn Acknowledge>>) -> Result<Self, ShipError> {
        std::fs::create_dir_all(dir).map_err(|source| ShipError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(LocalOutput {
            name: "dir",
            metrics: Target::open(dir.join(METRICS_FILE))?,
            performance: Target::open(dir.join(EMF_FILE))?,
            logs: Target::open(dir.join(LOGS_FILE))?,
            telemetry,
            ack,
        })
    }

    fn write(&self, target: &Target, kind: &'static str, count: usize, buf: &[u8]) -> Result<(), ShipError> {
        match target.write(buf) {
            Ok(()) => {
                ItemsWritten {
                    output: self.name,
                    kind,
                    count,
                }
                .emit(&self.telemetry);
                Ok(())
            }
            Err(source) => {
                ItemsDropped {
                    output: self.name,
                    count,
                    target: target.path(),
                    error: &source,
                }
                .emit(&self.telemetry);
                Err(ShipError::Write {
                    path: target.path().to_path_buf(),
                    source,
                })
            }
        }
    }
}

impl Output for LocalOutput {
    fn name(&self) -> &'static str {
        self.name
    }

    fn send_metrics(&self, datums: Vec<Datum>) -> Result<(), ShipError> {
        if datums.is_empty() {
            return Ok(());
        }
        self.write(&self.metrics, "metric", datums.len(), &datum_lines(&datums))
    }

    fn send_performance(&self, events: Vec<LogEvent>) -> Result<(), ShipError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(&self.performance, "emf", events.len(), &event_lines("emf", &events))
    }

    fn send_logs(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<(), Vec<LogEvent>>> {
        let written = events.is_empty()
            || self
                .write(&self.logs, "log", events.len(), &event_lines("log", &events))
                .is_ok();
        if let Some(ack) = &self.ack {
            let tokens: Vec<u64> = events.iter().map(|e| e.token).collect();
            let outcome = if written {
                Outcome::Accepted
            } else {
                Outcome::Dropped(DropReason::WriteFailed)
            };
            ack.settled(&tokens, outcome);
        }
        Box::pin(std::future::ready(Ok(())))
    }

    /// Writes are synchronous: nothing is ever queued.
    fn flush(&self, _deadline: tokio::time::Instant) -> BoxFuture<'_, Leftover> {
        Box::pin(std::future::ready(Leftover::default()))
    }
}
