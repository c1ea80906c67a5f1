use std::io::Write as _;
use std::path::Path;

use crate::metrics::Datum;
use crate::metrics::encode::emf::EmfEvent;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{ItemsDropped, ItemsWritten};

use super::ShipError;
use super::json_lines::{datum_lines, emf_lines};
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

    /// One write per interval, so lines of concurrent writers never interleave.
    fn write(&self, kind: &'static str, count: usize, buf: &[u8]) -> Result<(), ShipError> {
        let mut out = std::io::stdout().lock();
        match out.write_all(buf).and_then(|()| out.flush()) {
            Ok(()) => {
                ItemsWritten {
                    output: "stdout",
                    kind,
                    count,
                }
                .emit(&self.telemetry);
                Ok(())
            }
            Err(source) => {
                let path = Path::new("<stdout>");
                ItemsDropped {
                    output: "stdout",
                    count,
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
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        let buf = datum_lines(datums);
        let r = self.write("metric", datums.len(), &buf);
        Box::pin(std::future::ready(r))
    }

    fn write_emf<'a>(&'a self, events: &'a [EmfEvent]) -> BoxFuture<'a, Result<(), ShipError>> {
        let buf = emf_lines(events);
        let r = self.write("emf", events.len(), &buf);
        Box::pin(std::future::ready(r))
    }
}
