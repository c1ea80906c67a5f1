//! The `cloudwatch` output's metric side: `PutMetricData` to namespace `ContainerInsights`
//! (`spec/METRICS.md` §2.2, §11), and [`CloudwatchSink`], which joins it with the EMF
//! performance events of [`super::cloudwatch_logs`] for the three destinations.
//!
//! Owns: batching to the API limits (`batch`), the bounded queue of whole intervals (`queue`), the
//! background sender with its retries (`sender`), and the error classification and backoff that
//! the `CloudWatch Logs` side shares (`retry`). Must not: compute or encode metrics.
//!
//! Input: [`crate::metrics::Datum`]s from the collection tick, an `aws_types::SdkConfig` from
//! `auth`, and `kinsight.metrics.endpoint_override` / `queue_intervals` from the config.
//!
//! The decision a newcomer would question: `write_metrics` only queues. Sending happens in one
//! background task, one batch at a time, so a slow or throttling CloudWatch never delays the
//! collection tick, and a batch is in exactly one request at a time: a batch that got a success
//! is never sent again, and a retry resends only the failed batch (PMD-5, OUT-5). When the queue
//! is full the oldest interval goes, even while it is being retried.

mod batch;
mod destination;
mod metrics;
mod queue;
pub(crate) mod retry;
mod sender;

pub use batch::{MAX_DATUMS_PER_PUT, MAX_REQUEST_BYTES, estimate_bytes};
pub use destination::{CloudwatchSink, build_cloudwatch};
pub use metrics::{CloudwatchMetrics, client};
pub use retry::Backoff;
pub use sender::{STORAGE_RESOLUTION, to_sdk, unit};
