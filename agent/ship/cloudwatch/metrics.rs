//! [`CloudwatchMetrics`]: the `PutMetricData` lane of the `cloudwatch` output. `enqueue` checks
//! and batches one interval, queues it and returns; the sender task sends.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::Client;
use aws_types::SdkConfig;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Datum;
use crate::telemetry::Telemetry;
use crate::telemetry::events::ShipDropReason;

use super::super::output::BoxFuture;
use super::super::retry::{Backoff, sdk_retry_config};
use super::batch::{self, MAX_AGE, MAX_AHEAD, datum_is_sendable};
use super::queue::IntervalQueue;
use super::sender::{self, Shared, State};

/// Sends metric datums with `PutMetricData` to namespace `ContainerInsights`.
///
/// `new` returns the sender task for the supervisor to run; it ends when the value is dropped
/// or [`CloudwatchMetrics::flush`] reaches its deadline.
#[derive(Debug)]
pub struct CloudwatchMetrics {
    shared: Arc<Shared>,
}

impl CloudwatchMetrics {
    /// A client for `sdk` (credentials, region, compression settings), with `endpoint_override`
    /// (`kinsight.metrics.endpoint_override`) applied to this client only, and a queue of
    /// `queue_intervals` whole intervals; plus the sender task.
    pub fn new(
        sdk: &SdkConfig,
        endpoint_override: Option<&str>,
        queue_intervals: usize,
        telemetry: Telemetry,
    ) -> (Self, BoxFuture<'static, ()>) {
        Self::with_backoff(sdk, endpoint_override, queue_intervals, telemetry, Backoff::default())
    }

    /// [`CloudwatchMetrics::new`] with its own retry backoff (tests use milliseconds).
    pub fn with_backoff(
        sdk: &SdkConfig,
        endpoint_override: Option<&str>,
        queue_intervals: usize,
        telemetry: Telemetry,
        backoff: Backoff,
    ) -> (Self, BoxFuture<'static, ()>) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: IntervalQueue::new(queue_intervals),
                in_flight: false,
            }),
            wake: Notify::new(),
            settled: Notify::new(),
            stop: CancellationToken::new(),
            telemetry,
        });
        let task = Box::pin(sender::run(shared.clone(), client(sdk, endpoint_override), backoff));
        (CloudwatchMetrics { shared }, task)
    }

    /// Checks, batches and queues one interval; never waits for the network. Datums CloudWatch
    /// would reject (non-finite or out-of-range values, timestamps outside the accepted window)
    /// are dropped here and counted, so that one bad datum cannot sink a whole request.
    pub fn enqueue(&self, datums: Vec<Datum>) {
        if self.shared.stop.is_cancelled() {
            self.drop_count(ShipDropReason::Shutdown, datums.len(), "the output was stopped");
            return;
        }
        let now_ms = now_ms();
        let oldest = now_ms - millis(MAX_AGE);
        let newest = now_ms + millis(MAX_AHEAD);
        let (mut bad_value, mut bad_time) = (0, 0);
        let mut ok = Vec::with_capacity(datums.len());
        for d in datums {
            if !datum_is_sendable(&d) {
                bad_value += 1;
            } else if d.timestamp_ms < oldest || d.timestamp_ms > newest {
                bad_time += 1;
            } else {
                ok.push(d);
            }
        }
        if bad_value > 0 {
            self.drop_count(ShipDropReason::InvalidValue, bad_value, "NaN, ±Inf or beyond ±2^360");
        }
        if bad_time > 0 {
            self.drop_count(
                ShipDropReason::OutOfWindow,
                bad_time,
                "timestamp older than two weeks or more than two hours ahead",
            );
        }
        let evicted = self.shared.lock().queue.push(batch::split(ok));
        if evicted.datums > 0 {
            self.drop_count(
                ShipDropReason::QueueFull,
                evicted.datums,
                "CloudWatch is not keeping up; the oldest interval was dropped",
            );
        }
        self.shared.wake.notify_one();
    }

    /// Waits until everything queued was sent or settled, or until `deadline`. Then what is left
    /// is counted as dropped (`shutdown`) and the sender stops. Returns the datums dropped here.
    pub async fn flush(&self, deadline: Instant) -> usize {
        self.shared.wake.notify_one();
        loop {
            let settled = self.shared.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.shared.is_idle() {
                return 0;
            }
            tokio::select! {
                () = settled => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.stop()
    }

    /// Stops the sender and counts what is still queued as dropped.
    fn stop(&self) -> usize {
        self.shared.stop.cancel();
        let left = self.shared.lock().queue.clear();
        if left > 0 {
            self.drop_count(ShipDropReason::Shutdown, left, "still queued when the agent stopped");
        }
        left
    }

    fn drop_count(&self, reason: ShipDropReason, count: usize, detail: &str) {
        crate::telemetry::events::MetricsDropped {
            reason,
            count,
            code: None,
            detail,
            log: true,
        }
        .emit(&self.shared.telemetry);
    }
}

impl Drop for CloudwatchMetrics {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The CloudWatch client: `sdk` plus this output's endpoint override, with the SDK's retries off
/// (the sender retries; see `ship::retry`). Request compression stays as `sdk` has it: on, from
/// 10,240 bytes (the SDK default, as the CloudWatch agent's gzip of large requests).
pub fn client(sdk: &SdkConfig, endpoint_override: Option<&str>) -> Client {
    let mut b = aws_sdk_cloudwatch::config::Builder::from(sdk).retry_config(sdk_retry_config());
    if let Some(url) = endpoint_override {
        b = b.endpoint_url(url);
    }
    Client::from_conf(b.build())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
