use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::metrics::Datum;
use crate::metrics::encode::emf::EmfEvent;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::{datum_lines, emf_lines};
use super::output::{BoxFuture, Sink};

/// File that metric datums are appended to inside the `dir:` output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";
/// File that EMF performance events are appended to.
pub const EMF_FILE: &str = "emf.jsonl";

#[derive(Debug)]
struct Target {
    path: PathBuf,
    file: Mutex<File>,
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
        Ok(Target {
            path,
            file: Mutex::new(file),
        })
    }
}

/// The same JSON lines as `stdout`, appended to `PATH/metrics.jsonl` and `PATH/emf.jsonl` (log
/// events will go to `logs.jsonl`).
#[derive(Debug)]
pub struct DirSink {
    metrics: Target,
    emf: Target,
    telemetry: Telemetry,
}

impl DirSink {
    pub fn open(dir: &Path, telemetry: Telemetry) -> Result<Self, ShipError> {
        std::fs::create_dir_all(dir).map_err(|source| ShipError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(DirSink {
            metrics: Target::open(dir.join(METRICS_FILE))?,
            emf: Target::open(dir.join(EMF_FILE))?,
            telemetry,
        })
    }

    fn write(&self, target: &Target, kind: &'static str, count: usize, buf: &[u8]) -> Result<(), ShipError> {
        let mut file = target.file.lock().unwrap_or_else(PoisonError::into_inner);
        match file.write_all(buf).and_then(|()| file.flush()) {
            Ok(()) => {
                ItemsWritten {
                    output: "dir",
                    kind,
                    count,
                }
                .emit(&self.telemetry);
                Ok(())
            }
            Err(source) => {
                ItemsDropped {
                    output: "dir",
                    count,
                    target: &target.path,
                    error: &source,
                }
                .emit(&self.telemetry);
                Err(ShipError::Write {
                    path: target.path.clone(),
                    source,
                })
            }
        }
    }
}

impl Sink for DirSink {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        let buf = datum_lines(datums);
        Box::pin(std::future::ready(self.write(
            &self.metrics,
            "metric",
            datums.len(),
            &buf,
        )))
    }

    fn write_emf<'a>(&'a self, events: &'a [EmfEvent]) -> BoxFuture<'a, Result<(), ShipError>> {
        let buf = emf_lines(events);
        Box::pin(std::future::ready(self.write(&self.emf, "emf", events.len(), &buf)))
    }
}
