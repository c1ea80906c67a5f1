//! The `cloudwatch` output: [`CloudwatchOutput`] joins the `PutMetricData` lane
//! ([`CloudwatchMetrics`]) with the CloudWatch Logs lanes of [`super::cloudwatch_logs`].
//!
//! Owns: batching datums to the API limits (`batch`), the bounded queue of whole intervals
//! (`queue`), and the `PutMetricData` sender (`sender`). Must not: compute or encode metrics.
//!
//! The decision a newcomer would question: `send_metrics` only queues. Sending happens in one
//! task, one batch at a time, so a slow or throttling CloudWatch never delays the collection
//! tick, and a batch is in exactly one request at a time: a batch that got a success is never
//! sent again, and a retry resends only the failed batch. When the queue is full the oldest
//! interval goes, even while it is being retried: newer datapoints matter more on a dashboard.

mod batch;
mod metrics;
mod output;
mod queue;
mod sender;

pub use super::retry::Backoff;
pub use batch::{MAX_DATUMS_PER_PUT, MAX_REQUEST_BYTES, estimate_bytes};
pub use metrics::{CloudwatchMetrics, client};
pub use output::{CloudwatchOutput, build_cloudwatch};
pub use sender::{STORAGE_RESOLUTION, to_sdk, unit};
