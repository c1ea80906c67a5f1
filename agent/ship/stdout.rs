use std::io::Write as _;
use std::path::Path;

use crate::metrics::Datum;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::write_datum;
use super::output::{BoxFuture, Sink};

/// JSON lines on standard output; diagnostics never go there (they go to stderr).
#[derive(Debug)]
pub struct StdoutSink {
    telemetry: Telemetry,
}

impl StdoutSink {
    pub fn new(telemetry: Telemetry) -> Self {
        StdoutSink { telemetry }
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(async move {
            let mut buf = Vec::with_capacity(datums.len() * 192);
            for d in datums {
                write_datum(&mut buf, d);
            }
            // One write of the whole interval: lines of concurrent writers never interleave.
            let mut out = std::io::stdout().lock();
            match out.write_all(&buf).and_then(|()| out.flush()) {
                Ok(()) => {
                    ItemsWritten {
                        output: "stdout",
                        kind: "metric",
                        count: datums.len(),
                    }
                    .emit(&self.telemetry);
                    Ok(())
                }
                Err(source) => {
                    let path = Path::new("<stdout>");
                    ItemsDropped {
                        output: "stdout",
                        count: datums.len(),
                        target: path,
                        error: &source,
                    }
                    .emit(&self.telemetry);
                    Err(ShipError::Write {
                        path: path.to_path_buf(),
                        source,
                    })
                }
            }
        })
    }
}
