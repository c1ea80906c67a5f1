//! [`EmfLogs`]: EMF performance events to `CloudWatch Logs` with `PutLogEvents`
//! (`spec/METRICS.md` §12.1). `write_emf` buffers; a background task flushes every
//! `logs.force_flush_interval`, one log stream and one request at a time.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_types::SdkConfig;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metrics::encode::emf::EmfEvent;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{AccessDenied, AwsCall, AwsCallResult, EmfEventsDropped, ItemsWritten, ShipDropReason};

use super::super::ShipError;
use super::super::cloudwatch::retry::{Backoff, ErrorClass, Failure, Jitter, classify};
use super::super::output::{BoxFuture, Sink};
use super::batch::{self, MAX_EVENTS_PER_PUT, Unsendable};
use super::create::{self, Created};

/// The header that makes CloudWatch Logs extract metrics from EMF events (OUT-2; ACC
/// `internal/aws/cwlogs/handler/request_structuredlog_handler.go`).
pub const EMF_HEADER: (&str, &str) = ("x-amzn-logs-format", "json/emf");

/// Events held between flushes: about 40 intervals of a 250-pod node in standard mode. A full
/// buffer drops its oldest events, counted (`queue_full`).
pub const DEFAULT_MAX_BUFFERED_EVENTS: usize = 50_000;

/// How [`EmfLogs`] behaves; [`EmfLogsOptions::from_config`] reads it from the config.
#[derive(Debug, Clone)]
pub struct EmfLogsOptions {
    /// `logs.endpoint_override` (`spec/IDENTITY.md` §9).
    pub endpoint_override: Option<String>,
    /// Send `x-amzn-logs-format: json/emf`: mode `emf` only (OUT-2, OUT-4).
    pub emf_header: bool,
    /// `logs.retention_days`, applied to groups this output creates.
    pub retention_days: Option<u32>,
    /// `logs.force_flush_interval`.
    pub flush_interval: Duration,
    pub max_buffered_events: usize,
    pub backoff: Backoff,
}

impl EmfLogsOptions {
    pub fn from_config(cfg: &crate::config::Config, emf_header: bool) -> Self {
        EmfLogsOptions {
            endpoint_override: cfg.logs.endpoint_override.clone(),
            emf_header,
            retention_days: cfg.logs.retention_days,
            flush_interval: cfg.logs.force_flush_interval,
            max_buffered_events: DEFAULT_MAX_BUFFERED_EVENTS,
            backoff: Backoff::default(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Flush now: a full request is buffered, or `flush` was called.
    flush_now: Notify,
    /// A flush round finished (flush waits on it).
    settled: Notify,
    stop: CancellationToken,
    telemetry: Telemetry,
}

#[derive(Debug, Default)]
struct State {
    buffer: VecDeque<EmfEvent>,
    in_flight: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_idle(&self) -> bool {
        let st = self.lock();
        st.buffer.is_empty() && !st.in_flight
    }

    fn dropped(&self, reason: ShipDropReason, count: usize, log_group: &str, code: Option<&str>, detail: &str) {
        if count > 0 {
            EmfEventsDropped {
                reason,
                count,
                log_group,
                code,
                detail,
            }
            .emit(&self.telemetry);
        }
    }
}

/// Sends EMF performance events with `PutLogEvents` to each event's log group and stream,
/// creating them on first `ResourceNotFoundException`.
///
/// Needs a tokio runtime: `new` spawns the flush task, which runs until the value is dropped
/// (or [`EmfLogs::flush`] reaches its deadline).
#[derive(Debug)]
pub struct EmfLogs {
    shared: Arc<Shared>,
    max_buffered: usize,
}

impl EmfLogs {
    pub fn new(sdk: &SdkConfig, opts: EmfLogsOptions, telemetry: Telemetry) -> Self {
        let mut b = aws_sdk_cloudwatchlogs::config::Builder::from(sdk);
        if let Some(url) = &opts.endpoint_override {
            b = b.endpoint_url(url);
        }
        let client = Client::from_conf(b.build());
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            flush_now: Notify::new(),
            settled: Notify::new(),
            stop: CancellationToken::new(),
            telemetry,
        });
        let max_buffered = opts.max_buffered_events.max(1);
        let flusher = Flusher {
            shared: shared.clone(),
            client,
            opts,
            jitter: Jitter::new(),
        };
        tokio::spawn(flusher.run());
        EmfLogs { shared, max_buffered }
    }

    /// A handle that makes the flush task send what is buffered now (at shutdown).
    pub fn flush_trigger(&self) -> FlushTrigger {
        FlushTrigger(self.shared.clone())
    }

    /// Buffers events for the next flush; never waits for the network.
    pub fn enqueue(&self, events: &[EmfEvent]) {
        if self.shared.stop.is_cancelled() {
            self.shared.dropped(
                ShipDropReason::Shutdown,
                events.len(),
                "",
                None,
                "the output was stopped",
            );
            return;
        }
        let (evicted, full) = {
            let mut st = self.shared.lock();
            st.buffer.extend(events.iter().cloned());
            let over = st.buffer.len().saturating_sub(self.max_buffered);
            let evicted: Vec<EmfEvent> = st.buffer.drain(..over).collect();
            (evicted, st.buffer.len() >= MAX_EVENTS_PER_PUT)
        };
        if let Some(first) = evicted.first() {
            self.shared.dropped(
                ShipDropReason::QueueFull,
                evicted.len(),
                &first.log_group,
                None,
                "CloudWatch Logs is not keeping up; the oldest events were dropped",
            );
        }
        if full {
            self.shared.flush_now.notify_one();
        }
    }

    /// Sends what is buffered now, waiting at most until `deadline`; then what is left is counted
    /// as dropped (`shutdown`) and the flush task stops. Returns the events dropped here.
    pub async fn flush(&self, deadline: Instant) -> usize {
        self.shared.flush_now.notify_one();
        loop {
            let settled = self.shared.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.shared.is_idle() {
                return 0;
            }
            tokio::select! {
                () = settled => self.shared.flush_now.notify_one(),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        self.stop()
    }

    fn stop(&self) -> usize {
        self.shared.stop.cancel();
        let left: Vec<EmfEvent> = self.shared.lock().buffer.drain(..).collect();
        if let Some(first) = left.first() {
            self.shared.dropped(
                ShipDropReason::Shutdown,
                left.len(),
                &first.log_group,
                None,
                "still buffered when the agent stopped",
            );
        }
        left.len()
    }
}

impl Drop for EmfLogs {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Sink for EmfLogs {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    /// Datums go to `CloudwatchMetrics`; `CloudwatchSink` routes them.
    fn write_metrics<'a>(&'a self, _datums: &'a [crate::metrics::Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn write_emf<'a>(&'a self, events: &'a [EmfEvent]) -> BoxFuture<'a, Result<(), ShipError>> {
        self.enqueue(events);
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            EmfLogs::flush(self, deadline).await;
        })
    }
}

/// See [`EmfLogs::flush_trigger`].
#[derive(Debug, Clone)]
pub struct FlushTrigger(Arc<Shared>);

impl FlushTrigger {
    pub fn notify_one(&self) {
        self.0.flush_now.notify_one();
    }
}

/// The background task.
struct Flusher {
    shared: Arc<Shared>,
    client: Client,
    opts: EmfLogsOptions,
    jitter: Jitter,
}

/// How one request ended.
enum Outcome {
    Sent,
    /// `InvalidParameterException`: the caller may split the request once.
    Rejected(Failure),
    /// Dropped and counted here; nothing more to do.
    Settled,
}

impl Flusher {
    async fn run(mut self) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.opts.flush_interval) => {}
                () = self.shared.flush_now.notified() => {}
                () = self.shared.stop.cancelled() => return,
            }
            let events: Vec<EmfEvent> = {
                let mut st = self.shared.lock();
                st.in_flight = !st.buffer.is_empty();
                st.buffer.drain(..).collect()
            };
            if !events.is_empty() {
                self.send_all(events).await;
                self.shared.lock().in_flight = false;
            }
            self.shared.settled.notify_waiters();
        }
    }

    /// One flush: per log stream (in order of first appearance), check, sort, split and send.
    async fn send_all(&mut self, events: Vec<EmfEvent>) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let mut streams: Vec<((String, String), Vec<EmfEvent>)> = Vec::new();
        let mut unsendable = [
            (Unsendable::Old, 0usize),
            (Unsendable::Ahead, 0),
            (Unsendable::Large, 0),
        ];
        let mut group_of_unsendable = String::new();
        for e in events {
            if let Err(why) = batch::check(&e, now_ms) {
                if let Some(slot) = unsendable.iter_mut().find(|(u, _)| *u == why) {
                    slot.1 += 1;
                }
                group_of_unsendable.clone_from(&e.log_group);
                continue;
            }
            let key = (e.log_group.clone(), e.log_stream.clone());
            match streams.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(e),
                None => streams.push((key, vec![e])),
            }
        }
        for (why, n) in unsendable {
            let (reason, detail) = match why {
                Unsendable::Old => (ShipDropReason::TooOld, "older than 14 days"),
                Unsendable::Ahead => (ShipDropReason::TooNew, "more than 2 hours ahead"),
                Unsendable::Large => (ShipDropReason::TooLarge, "larger than a PutLogEvents request"),
            };
            self.shared.dropped(reason, n, &group_of_unsendable, None, detail);
        }
        for ((group, stream), events) in streams {
            for b in batch::split(events) {
                if self.shared.stop.is_cancelled() {
                    self.shared
                        .dropped(ShipDropReason::Shutdown, b.len(), &group, None, "stopped");
                    continue;
                }
                self.send_splitting(&group, &stream, b).await;
            }
        }
    }

    /// Sends one request; on `InvalidParameterException` splits it in half once and sends both
    /// halves, dropping a half that fails again (`spec/LOGS.md` §8.5).
    async fn send_splitting(&mut self, group: &str, stream: &str, events: Vec<EmfEvent>) {
        let Outcome::Rejected(f) = self.send(group, stream, &events).await else {
            return;
        };
        if events.len() < 2 {
            self.drop_rejected(group, events.len(), &f);
            return;
        }
        let mut first = events;
        let second = first.split_off(first.len() / 2);
        for half in [first, second] {
            if let Outcome::Rejected(f) = self.send(group, stream, &half).await {
                self.drop_rejected(group, half.len(), &f);
            }
        }
    }

    fn drop_rejected(&self, group: &str, count: usize, f: &Failure) {
        self.shared
            .dropped(ShipDropReason::Rejected, count, group, f.code.as_deref(), &f.message);
    }

    /// One PutLogEvents request, retried on transient errors until it succeeds or the output
    /// stops; the stream (and group) are created on `ResourceNotFoundException`.
    async fn send(&mut self, group: &str, stream: &str, events: &[EmfEvent]) -> Outcome {
        let n = events.len();
        let input: Vec<InputLogEvent> = events
            .iter()
            .filter_map(|e| {
                InputLogEvent::builder()
                    .timestamp(e.timestamp_ms)
                    .message(&e.message)
                    .build()
                    .ok()
            })
            .collect();
        let mut attempt: u32 = 0;
        let mut created = false;
        loop {
            let result = tokio::select! {
                r = self.put(group, stream, &input) => r,
                () = self.shared.stop.cancelled() => {
                    self.shared.dropped(ShipDropReason::Shutdown, n, group, None, "stopped while sending");
                    return Outcome::Settled;
                }
            };
            let f = match result {
                Ok(out) => {
                    self.call(AwsCallResult::Ok, None);
                    self.settle_rejected_info(group, n, &out);
                    return Outcome::Sent;
                }
                Err(f) => f,
            };
            let not_found = f.code.as_deref() == Some("ResourceNotFoundException");
            if not_found && !created {
                self.call(AwsCallResult::Retry, Some(&f));
                created = true;
                match create::ensure(
                    &self.client,
                    group,
                    stream,
                    self.opts.retention_days,
                    &self.shared.telemetry,
                )
                .await
                {
                    Ok(Created { group: g, stream: s }) => {
                        tracing::info!(
                            log_group = group,
                            log_stream = stream,
                            created_group = g,
                            created_stream = s,
                            "performance log stream ready"
                        );
                        continue;
                    }
                    Err(cf) if cf.class.is_retryable() => {}
                    Err(cf) => return self.refused(group, n, &cf),
                }
            } else if not_found || f.class.is_retryable() {
                // Created and still not found (eventual consistency), throttled, 5xx: back off;
                // a later not-found creates again.
                created = false;
                self.call(AwsCallResult::Retry, Some(&f));
            } else {
                self.call(AwsCallResult::Error, Some(&f));
                return self.refused(group, n, &f);
            }
            attempt = attempt.saturating_add(1);
            if attempt.is_multiple_of(5) {
                tracing::warn!(code = %f.code_or_kind(), attempts = attempt, log_group = group, error = %f.message, "PutLogEvents keeps failing; retrying with backoff");
            }
            let delay = self.opts.backoff.delay(attempt - 1, &mut self.jitter);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shared.stop.cancelled() => {
                    self.shared.dropped(ShipDropReason::Shutdown, n, group, f.code.as_deref(), "stopped while retrying");
                    return Outcome::Settled;
                }
            }
        }
    }

    /// One PutLogEvents call, with the EMF header in mode `emf` (OUT-2, OUT-4).
    async fn put(&self, group: &str, stream: &str, input: &[InputLogEvent]) -> Result<PutLogEventsOutput, Failure> {
        let request = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(input.to_vec()));
        let result = if self.opts.emf_header {
            request
                .customize()
                .mutate_request(|req| {
                    req.headers_mut().insert(EMF_HEADER.0, EMF_HEADER.1);
                })
                .send()
                .await
        } else {
            request.send().await
        };
        result.map_err(|e| classify(&e))
    }

    fn call(&self, result: AwsCallResult, f: Option<&Failure>) {
        let code = f.map(Failure::code_or_kind);
        AwsCall {
            api: "PutLogEvents",
            result,
            code: code.as_deref(),
            detail: f.map_or("", |f| f.message.as_str()),
        }
        .emit(&self.shared.telemetry);
    }

    /// A non-retryable failure: `AccessDenied` is dropped here; anything else goes back to the
    /// caller, which may split the request.
    fn refused(&self, group: &str, n: usize, f: &Failure) -> Outcome {
        if f.class == ErrorClass::AccessDenied {
            AccessDenied {
                action: "logs:PutLogEvents",
            }
            .emit(&self.shared.telemetry);
            self.shared
                .dropped(ShipDropReason::AccessDenied, n, group, f.code.as_deref(), &f.message);
            return Outcome::Settled;
        }
        Outcome::Rejected(f.clone())
    }

    /// Counts what CloudWatch Logs accepted and what it rejected individually (`spec/LOGS.md`
    /// §8.4: indices into the sorted request; too new, else too old, else expired).
    fn settle_rejected_info(&self, group: &str, n: usize, out: &PutLogEventsOutput) {
        let (mut too_new, mut too_old) = (0, 0);
        if let Some(info) = out.rejected_log_events_info() {
            let idx = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
            let new_from = idx(info.too_new_log_event_start_index()).unwrap_or(usize::MAX);
            let old_to = idx(info.too_old_log_event_end_index()).unwrap_or(0);
            let expired_to = idx(info.expired_log_event_end_index()).unwrap_or(0);
            for i in 0..n {
                if i >= new_from {
                    too_new += 1;
                } else if i < old_to || i < expired_to {
                    too_old += 1;
                }
            }
        }
        self.shared.dropped(
            ShipDropReason::TooNew,
            too_new,
            group,
            None,
            "rejected by CloudWatch Logs: too new",
        );
        self.shared.dropped(
            ShipDropReason::TooOld,
            too_old,
            group,
            None,
            "rejected by CloudWatch Logs: too old or expired",
        );
        ItemsWritten {
            output: "cloudwatch",
            kind: "emf",
            count: n - too_new - too_old,
        }
        .emit(&self.shared.telemetry);
    }
}
