//! The `cloudwatch` output's `CloudWatch Logs` side. For now: the EMF performance events of
//! destinations `emf` and `both` (`spec/METRICS.md` §12.1) with [`EmfLogs`]; the container-log
//! shipper of `spec/LOGS.md` joins it here.
//!
//! Owns: PutLogEvents batching to the API limits (`batch`), lazy group/stream creation
//! (`create`), retries. Must not: build the events (that is `metrics::encode::emf`).
//!
//! The decision a newcomer would question: performance events are buffered in memory, bounded,
//! and dropped oldest-first when CloudWatch Logs is unreachable for long. Unlike container logs,
//! they have no file on the node to fall back on, and they are regenerated every interval.

mod batch;
mod create;
mod emf;

pub use batch::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_EVENTS_PER_PUT};
pub use emf::{DEFAULT_MAX_BUFFERED_EVENTS, EMF_HEADER, EmfLogs, EmfLogsOptions};
