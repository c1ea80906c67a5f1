use std::future::Future;
use std::pin::Pin;

use crate::config::Output;
use crate::metrics::Datum;
use crate::metrics::encode::emf::EmfEvent;
use crate::telemetry::Telemetry;

use super::{DirSink, ShipError, StdoutSink};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where batches go. Implementations own their batching and retries; a returned error means
/// the items were not written (and were counted as dropped).
pub trait Sink: Send + Sync + std::fmt::Debug {
    /// `stdout`, `dir` or `cloudwatch`: the `output` label of the agent's own counters.
    fn name(&self) -> &'static str;

    /// Writes one interval's metric datums.
    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>>;

    /// Writes one interval's EMF performance events (destinations `emf` and `both`).
    fn write_emf<'a>(&'a self, events: &'a [EmfEvent]) -> BoxFuture<'a, Result<(), ShipError>>;

    /// At shutdown (and at the end of `kinsight once`): sends what is still queued, waiting at
    /// most until `deadline`; what is left then is counted as dropped. Outputs that write
    /// synchronously (`stdout`, `dir`) have nothing to flush.
    fn flush(&self, _deadline: tokio::time::Instant) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Builds the sink for a configured output.
pub fn build(output: &Output, telemetry: &Telemetry) -> Result<Box<dyn Sink>, ShipError> {
    match output {
        Output::Stdout => Ok(Box::new(StdoutSink::new(telemetry.clone()))),
        Output::Dir(path) => Ok(Box::new(DirSink::open(path, telemetry.clone())?)),
        Output::Cloudwatch => Err(ShipError::CloudwatchUnavailable),
    }
}
