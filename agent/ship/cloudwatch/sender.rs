//! The background `PutMetricData` sender: takes batches from the interval queue one at a time and
//! sends each until it is accepted, refused for good, evicted or stopped; only a failed request is
//! resent, so no datum is put twice.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit, StatisticSet};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::Datum;
use crate::metrics::encode::datum::{NAMESPACE, Unit};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{AccessDenied, AwsCall, AwsCallResult, ItemsWritten, MetricsDropped, ShipDropReason};

use super::super::retry::{Backoff, ErrorClass, REQUEST_TIMEOUT, classify};
use super::queue::IntervalQueue;

/// Standard resolution: Container Insights stores one-minute datapoints.
pub const STORAGE_RESOLUTION: i32 = 60;

/// An `AccessDenied` is logged at ERROR at most once per 10 minutes; the counter counts them all.
const ACCESS_DENIED_LOG_EVERY: Duration = Duration::from_mins(10);

/// A retrying batch gets a WARN line at this attempt (and every such number of attempts after);
/// the attempts in between are DEBUG.
const WARN_EVERY_ATTEMPTS: u32 = 5;

/// What the sink and the sender task share.
#[derive(Debug)]
pub(super) struct Shared {
    pub state: Mutex<State>,
    /// A new interval was queued.
    pub wake: Notify,
    /// The sender settled a batch (flush waits on it).
    pub settled: Notify,
    /// Stops the sender at once; the in-flight batch is counted as dropped.
    pub stop: CancellationToken,
    pub telemetry: Telemetry,
}

#[derive(Debug)]
pub(super) struct State {
    pub queue: IntervalQueue,
    pub in_flight: bool,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn is_idle(&self) -> bool {
        let st = self.lock();
        st.queue.is_empty() && !st.in_flight
    }

    /// Why batch `id`, taken before, must no longer be sent, if it must not: the queue evicted
    /// its interval, or the output stopped. A stop also marks every interval evicted (see
    /// `IntervalQueue::clear`), and the backoff sleep can end in the same tick as the stop; the
    /// batch then counts as `shutdown`, as `flush` promises, not as `queue_full`.
    fn evicted(&self, id: u64) -> Option<(ShipDropReason, &'static str)> {
        let evicted = self.lock().queue.is_evicted(id);
        // `stop` cancels before it clears the queue under the lock, so an eviction seen here
        // that came from a stop always sees the cancellation too.
        if self.stop.is_cancelled() {
            Some((ShipDropReason::Shutdown, "stopped while retrying"))
        } else if evicted {
            Some((
                ShipDropReason::QueueFull,
                "the queue filled while the batch was being retried",
            ))
        } else {
            None
        }
    }

    fn dropped(&self, reason: ShipDropReason, count: usize, code: Option<&str>, detail: &str, log: bool) {
        MetricsDropped {
            reason,
            count,
            code,
            detail,
            log,
        }
        .emit(&self.telemetry);
    }
}

/// The sender task: runs until `shared.stop`.
pub(super) async fn run(shared: Arc<Shared>, client: Client, backoff: Backoff) {
    let mut sender = Sender {
        shared,
        client,
        backoff,
        denied_logged: HashMap::new(),
    };
    loop {
        let next = {
            let mut st = sender.shared.lock();
            let next = st.queue.take_next();
            st.in_flight = next.is_some();
            next
        };
        let Some((id, batch)) = next else {
            sender.shared.settled.notify_waiters();
            tokio::select! {
                () = sender.shared.wake.notified() => continue,
                () = sender.shared.stop.cancelled() => return,
            }
        };
        sender.deliver(id, &batch).await;
        {
            let mut st = sender.shared.lock();
            st.queue.settle(id);
            st.in_flight = false;
        }
        sender.shared.settled.notify_waiters();
        if sender.shared.stop.is_cancelled() {
            return;
        }
    }
}

struct Sender {
    shared: Arc<Shared>,
    client: Client,
    backoff: Backoff,
    /// When an `AccessDenied` was last logged at ERROR, by code.
    denied_logged: HashMap<String, Instant>,
}

impl Sender {
    /// Sends one batch until it is settled. Every path out of here counts the batch exactly once:
    /// written, or dropped with a reason.
    async fn deliver(&mut self, id: u64, batch: &[Datum]) {
        let n = batch.len();
        let data: Vec<MetricDatum> = batch.iter().map(to_sdk).collect();
        let mut attempt: u32 = 0;
        loop {
            let request = self
                .client
                .put_metric_data()
                .namespace(NAMESPACE)
                .set_metric_data(Some(data.clone()));
            let result = tokio::select! {
                r = tokio::time::timeout(REQUEST_TIMEOUT, request.send()) => r,
                () = self.shared.stop.cancelled() => {
                    self.shared.dropped(ShipDropReason::Shutdown, n, None, "stopped while sending", true);
                    return;
                }
            };
            let result = match result {
                Ok(r) => r.map_err(|e| classify(&e)),
                Err(_) => Err(super::super::retry::Failure {
                    class: ErrorClass::Transient,
                    code: Some("RequestTimeout".into()),
                    status: None,
                    message: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                    action: None,
                }),
            };
            let Err(f) = result else {
                AwsCall {
                    api: "PutMetricData",
                    result: AwsCallResult::Ok,
                    code: None,
                    detail: "",
                }
                .emit(&self.shared.telemetry);
                ItemsWritten {
                    output: "cloudwatch",
                    kind: "metric",
                    count: n,
                }
                .emit(&self.shared.telemetry);
                return;
            };
            let code = f.code_or_kind();
            if !f.class.is_retryable() {
                AwsCall {
                    api: "PutMetricData",
                    result: AwsCallResult::Error,
                    code: Some(&code),
                    detail: &f.message,
                }
                .emit(&self.shared.telemetry);
                let (reason, log) = if f.class == ErrorClass::AccessDenied {
                    AccessDenied {
                        action: "cloudwatch:PutMetricData",
                    }
                    .emit(&self.shared.telemetry);
                    (ShipDropReason::AccessDenied, self.should_log_denied(&code))
                } else {
                    (ShipDropReason::Rejected, true)
                };
                self.shared.dropped(reason, n, Some(&code), &f.message, log);
                return;
            }
            AwsCall {
                api: "PutMetricData",
                result: AwsCallResult::Retry,
                code: Some(&code),
                detail: &f.message,
            }
            .emit(&self.shared.telemetry);
            attempt = attempt.saturating_add(1);
            if attempt.is_multiple_of(WARN_EVERY_ATTEMPTS) {
                tracing::warn!(code = %code, attempts = attempt, datums = n, error = %f.message, "PutMetricData keeps failing; retrying with backoff");
            }
            let delay = self.backoff.delay(attempt - 1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shared.stop.cancelled() => {
                    self.shared.dropped(ShipDropReason::Shutdown, n, Some(&code), "stopped while retrying", true);
                    return;
                }
            }
            // A full queue evicted this interval while it was retrying: it is the oldest, and
            // newer intervals matter more than finishing it.
            if let Some((reason, detail)) = self.shared.evicted(id) {
                self.shared.dropped(reason, n, Some(&code), detail, true);
                return;
            }
        }
    }

    fn should_log_denied(&mut self, code: &str) -> bool {
        let now = Instant::now();
        match self.denied_logged.get(code) {
            Some(last) if now.duration_since(*last) < ACCESS_DENIED_LOG_EVERY => false,
            _ => {
                self.denied_logged.insert(code.to_string(), now);
                true
            }
        }
    }
}

/// One datum as the SDK sends it.
pub fn to_sdk(d: &Datum) -> MetricDatum {
    let dims = d
        .dimensions
        .iter()
        .map(|(name, value)| Dimension::builder().name(*name).value(&**value).build())
        .collect();
    let builder = MetricDatum::builder()
        .metric_name(d.metric_name)
        .set_dimensions(Some(dims));
    // `Value` and `StatisticValues` are mutually exclusive ("InvalidParameterCombination",
    // PutMetricData API reference).
    let builder = match &d.stats {
        Some(s) => builder.statistic_values(
            StatisticSet::builder()
                .sample_count(s.sample_count)
                .sum(s.sum)
                .minimum(s.minimum)
                .maximum(s.maximum)
                .build(),
        ),
        None => builder.value(d.value),
    };
    builder
        .unit(unit(d.unit))
        .timestamp(DateTime::from_millis(d.timestamp_ms))
        .storage_resolution(STORAGE_RESOLUTION)
        .build()
}

/// The kinsight unit as a `StandardUnit` (upstream's `metricToUnitMap` in
/// `internal/aws/containerinsight/const.go`); millicores have none (`None`).
pub fn unit(u: Unit) -> StandardUnit {
    match u {
        Unit::Percent => StandardUnit::Percent,
        Unit::Bytes => StandardUnit::Bytes,
        Unit::BytesPerSecond => StandardUnit::BytesSecond,
        Unit::Count => StandardUnit::Count,
        Unit::CountPerSecond => StandardUnit::CountSecond,
        Unit::Seconds => StandardUnit::Seconds,
        Unit::None => StandardUnit::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared(queue: usize) -> Shared {
        Shared {
            state: Mutex::new(State {
                queue: IntervalQueue::new(queue),
                in_flight: false,
            }),
            wake: Notify::new(),
            settled: Notify::new(),
            stop: CancellationToken::new(),
            telemetry: Telemetry::new(),
        }
    }

    fn one_batch() -> Vec<Vec<Datum>> {
        vec![vec![Datum {
            metric_name: "node_cpu_limit",
            dimensions: vec![("ClusterName", "c".into())].into(),
            value: 1.0,
            stats: None,
            unit: Unit::None,
            timestamp_ms: 1_700_000_000_000,
        }]]
    }

    /// The stop that `flush` makes at its deadline also marks the in-flight interval evicted; a
    /// retry that wakes in the same tick must count its batch as `shutdown`.
    #[test]
    fn a_batch_stopped_while_retrying_counts_as_shutdown_not_as_evicted() {
        let s = shared(1);
        s.lock().queue.push(one_batch());
        let (id, _) = s.lock().queue.take_next().unwrap();
        assert_eq!(s.evicted(id), None);
        // `CloudwatchMetrics::stop`: cancel, then clear under the lock.
        s.stop.cancel();
        s.lock().queue.clear();
        assert_eq!(s.evicted(id).map(|(r, _)| r), Some(ShipDropReason::Shutdown));
    }

    #[test]
    fn a_batch_whose_interval_was_pushed_out_counts_as_queue_full() {
        let s = shared(1);
        s.lock().queue.push(one_batch());
        let (id, _) = s.lock().queue.take_next().unwrap();
        s.lock().queue.push(one_batch());
        assert_eq!(s.evicted(id).map(|(r, _)| r), Some(ShipDropReason::QueueFull));
    }

    #[test]
    fn units_map_to_the_standard_units_of_the_same_spelling() {
        for u in [
            Unit::Percent,
            Unit::Bytes,
            Unit::BytesPerSecond,
            Unit::Count,
            Unit::CountPerSecond,
            Unit::None,
        ] {
            assert_eq!(unit(u).as_str(), u.as_str());
        }
    }

    #[test]
    fn a_datum_keeps_its_fields() {
        let d = Datum {
            metric_name: "node_cpu_limit",
            dimensions: vec![("ClusterName", "c".into()), ("NodeName", "n".into())].into(),
            value: 4000.0,
            stats: None,
            unit: Unit::None,
            timestamp_ms: 1_700_000_000_123,
        };
        let m = to_sdk(&d);
        assert_eq!(m.metric_name(), Some("node_cpu_limit"));
        assert_eq!(m.dimensions().len(), 2);
        assert_eq!(m.dimensions()[1].value(), Some("n"));
        assert_eq!(m.value(), Some(4000.0));
        assert_eq!(m.unit(), Some(&StandardUnit::None));
        assert_eq!(m.storage_resolution(), Some(60));
        assert_eq!(m.timestamp().map(|t| t.to_millis().unwrap()), Some(1_700_000_000_123));
    }
}
