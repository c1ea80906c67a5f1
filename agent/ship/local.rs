//! The local outputs, `stdout` and `dir:PATH`: the JSON lines of `json_lines`, exactly what would
//! be sent. A log event counts as accepted once its line is written and flushed.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::{write_datum, write_event};
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

    /// Writes the lines of a batch while holding the target, so that lines of concurrent
    /// writers never interleave, in pieces of about [`CHUNK_BYTES`]: an enhanced leader's
    /// interval is 100,000 datums, 30 MB of JSON that would otherwise be built whole first.
    fn write_lines<T>(&self, items: &[T], mut line: impl FnMut(&mut Vec<u8>, &T)) -> std::io::Result<()> {
        let mut out: Box<dyn std::io::Write + '_> = match self {
            Target::Stdout => Box::new(std::io::stdout().lock()),
            Target::File { file, .. } => Box::new(FileGuard(file.lock().unwrap_or_else(PoisonError::into_inner))),
        };
        let mut buf = Vec::with_capacity(CHUNK_BYTES.min(items.len() * 256) + 1024);
        for item in items {
            line(&mut buf, item);
            if buf.len() >= CHUNK_BYTES {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)?;
        out.flush()
    }
}

/// A held file, written through its lock guard.
struct FileGuard<'a>(std::sync::MutexGuard<'a, File>);

impl std::io::Write for FileGuard<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The size of one write of a batch's lines.
const CHUNK_BYTES: usize = 1 << 20;

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

    fn write<T>(
        &self,
        target: &Target,
        kind: &'static str,
        items: &[T],
        line: impl FnMut(&mut Vec<u8>, &T),
    ) -> Result<(), ShipError> {
        let count = items.len();
        match target.write_lines(items, line) {
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
        self.write(&self.metrics, "metric", &datums, write_datum)
    }

    fn send_performance(&self, events: Vec<LogEvent>) -> Result<(), ShipError> {
        if events.is_empty() {
            return Ok(());
        }
        self.write(&self.performance, "emf", &events, |b, e| write_event(b, "emf", e))
    }

    fn send_logs(&self, mut events: Vec<LogEvent>) -> BoxFuture<'_, Result<Vec<LogEvent>, Vec<LogEvent>>> {
        let written = events.is_empty()
            || self
                .write(&self.logs, "log", &events, |b, e| write_event(b, "log", e))
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
        events.clear();
        Box::pin(std::future::ready(Ok(events)))
    }

    /// Writes are synchronous: nothing is ever queued.
    fn flush_logs(&self, _deadline: tokio::time::Instant) -> BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }

    /// Writes are synchronous: nothing is ever queued.
    fn withdraw_logs(&self) -> BoxFuture<'_, usize> {
        Box::pin(std::future::ready(0))
    }

    /// Writes are synchronous: nothing is ever queued.
    fn flush(&self, _deadline: tokio::time::Instant) -> BoxFuture<'_, Leftover> {
        Box::pin(std::future::ready(Leftover::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Unit;

    fn datums(tag: &str, n: usize) -> Vec<Datum> {
        (0..n)
            .map(|i| Datum {
                metric_name: "pod_cpu_utilization",
                dimensions: vec![("ClusterName", Arc::from(tag)), ("PodName", Arc::from(format!("p{i}")))].into(),
                value: i as f64,
                stats: None,
                unit: Unit::Percent,
                timestamp_ms: 1_700_000_000_000,
            })
            .collect()
    }

    /// Batches larger than one write arrive whole, in order, and two writers' batches never
    /// interleave.
    #[test]
    fn large_batches_are_written_in_pieces_without_interleaving() {
        let dir = tempfile::tempdir().unwrap();
        let out = Arc::new(LocalOutput::dir(dir.path(), Telemetry::new(), None).unwrap());
        // About 6 MB each: several writes of CHUNK_BYTES.
        let n = 40_000;
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|tag| {
                let out = Arc::clone(&out);
                std::thread::spawn(move || out.send_metrics(datums(tag, n)).unwrap())
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let text = std::fs::read_to_string(dir.path().join(METRICS_FILE)).unwrap();
        assert!(text.len() > 4 * CHUNK_BYTES, "{} bytes", text.len());
        let tags: Vec<(String, f64)> = text
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["dimensions"]["ClusterName"].as_str().unwrap().to_string(),
                    v["value"].as_f64().unwrap(),
                )
            })
            .collect();
        assert_eq!(tags.len(), 2 * n);
        // One batch, then the other, each in its own order.
        let first = &tags[0].0;
        for (i, (tag, value)) in tags.iter().enumerate() {
            let (want_tag, want_value) = if i < n { (first.as_str(), i) } else { ("", i - n) };
            if i < n {
                assert_eq!(tag, want_tag, "line {i}");
            } else {
                assert_ne!(tag, first, "line {i}");
            }
            #[expect(clippy::cast_precision_loss, reason = "small integers")]
            let want = want_value as f64;
            assert!((value - want).abs() < f64::EPSILON, "line {i}: {value}");
        }
    }
}
