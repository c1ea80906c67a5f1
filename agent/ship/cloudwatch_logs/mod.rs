//! The `cloudwatch` output's CloudWatch Logs side: one [`Shipper`] per lane, performance (EMF)
//! events and log records.
//!
//! Owns: `PutLogEvents` batching to the API limits (`batch`), the request body (`body`), lazy
//! group and stream creation (`create`), the per-stream sender with its outcomes (`shipper`).
//! Must not: build the events (that is `metrics::encode::emf` and `logs`).
//!
//! The decision a newcomer would question: performance events are buffered in memory, bounded,
//! and dropped oldest-first when CloudWatch Logs is unreachable for long, while log records make
//! their producers wait. Performance events have no file on the node to fall back on and are
//! regenerated every interval; log records do, so the files are their buffer.

mod batch;
mod body;
mod create;
mod shipper;

pub use batch::{EVENT_OVERHEAD_BYTES, MAX_BATCH_BYTES, MAX_EVENTS_PER_PUT, event_bytes};
pub use shipper::{
    DEFAULT_LOGS_CAPACITY_BYTES, DEFAULT_PERFORMANCE_CAPACITY, DEFAULT_PUT_CONCURRENCY, EMF_HEADER, Flusher, Lane,
    MAX_PUT_CONCURRENCY, Shipper, ShipperOptions, outcome_label,
};

use aws_sdk_cloudwatchlogs::Client;
use aws_types::SdkConfig;

/// The CloudWatch Logs client: `sdk` plus `logs.endpoint_override`, with the SDK's retries off
/// (the shipper retries; see `ship::retry`).
pub fn logs_client(sdk: &SdkConfig, endpoint_override: Option<&str>) -> Client {
    let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(sdk).retry_config(super::retry::sdk_retry_config());
    if let Some(url) = endpoint_override {
        b = b.endpoint_url(url);
    }
    Client::from_conf(b.build())
}
