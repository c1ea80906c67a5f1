use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::metrics::Datum;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::write_datum;
use super::output::{BoxFuture, Sink};

/// File that metric datums are appended to inside the `dir:` output directory.
pub const METRICS_FILE: &str = "metrics.jsonl";

/// The same JSON lines as `stdout`, appended to `PATH/metrics.jsonl` (EMF events go to
/// `emf.jsonl` and log events to `logs.jsonl` once those pipelines exist).
#[derive(Debug)]
pub struct DirSink {
    metrics_path: PathBuf,
    metrics: Mutex<File>,
    telemetry: Telemetry,
}

impl DirSink {
    pub fn open(dir: &Path, telemetry: Telemetry) -> Result<Self, ShipError> {
        std::fs::create_dir_all(dir).map_err(|source| ShipError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let metrics_path = dir.join(METRICS_FILE);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&metrics_path)
            .map_err(|source| ShipError::Write {
                path: metrics_path.clone(),
                source,
            })?;
        Ok(DirSink {
            metrics_path,
            metrics: Mutex::new(file),
            telemetry,
        })
    }
}

impl Sink for DirSink {
    fn name(&self) -> &'static str {
        "dir"
    }

    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(datums.len() * 192);
            for d in datums {
                write_datum(&mut buf, d);
            }
            let mut file = self.metrics.lock().unwrap_or_else(PoisonError::into_inner);
            match file.write_all(&buf).and_then(|()| file.flush()) {
                Ok(()) => {
                    ItemsWritten {
                        output: "dir",
                        kind: "metric",
                        count: datums.len(),
                    }
                    .emit(&self.telemetry);
                    Ok(())
                }
                Err(source) => {
                    ItemsDropped {
                        output: "dir",
                        count: datums.len(),
                        target: &self.metrics_path,
                        error: &source,
                    }
                    .emit(&self.telemetry);
                    Err(ShipError::Write {
                        path: self.metrics_path.clone(),
                        source,
                    })
                }
            }
        })
    }
}
