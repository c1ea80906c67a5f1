//! [`Shipper`]: events to CloudWatch Logs with `PutLogEvents`, per log stream, with each event's
//! outcome reported to its producer. One shipper serves one lane: performance (EMF) events
//! (bounded, oldest dropped first, nobody acknowledges) or log records (bounded by bytes in
//! flight, producers wait, every outcome acknowledged so that file offsets can be committed).
//!
//! Rules it keeps (AWS CloudWatch Logs API reference, "PutLogEvents"): at most 10,000 events and
//! 1,048,576 bytes (message bytes + 26 per event) per request, events in time order, a span of at
//! most 24 hours, nothing older than 14 days or more than 2 hours ahead. Since January 2023
//! sequence tokens are ignored and the 5 requests/s per-stream quota is gone, so there is no
//! `DescribeLogStreams`; a missing stream or group is created on `ResourceNotFoundException`.
//! `rejectedLogEventsInfo` rejects single events (too new from `tooNewLogEventStartIndex`
//! inclusive, too old up to `tooOldLogEventEndIndex` exclusive, expired up to
//! `expiredLogEventEndIndex` exclusive); they are never retried.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::Client;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use bytes::BytesMut;
use futures_util::StreamExt as _;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::collect::GroupRule;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{
    AccessDenied, AwsCall, AwsCallResult, EmfEventsDropped, ItemsWritten, LogEventsSettled, ShipDropReason,
};

use super::super::payload::{Acknowledge, DropReason, Leftover, LogEvent, Outcome, Rejection};
use super::super::retry::{Backoff, ErrorClass, Failure, REQUEST_TIMEOUT, classify};
use super::batch::{self, MAX_BATCH_BYTES, MAX_EVENTS_PER_PUT, Unsendable};
use super::body;
use super::create::{self, Created};

/// The header that makes CloudWatch Logs extract metrics from EMF events (the CloudWatch agent
/// sets it in `internal/aws/cwlogs/handler/request_structuredlog_handler.go`).
pub const EMF_HEADER: (&str, &str) = ("x-amzn-logs-format", "json/emf");

/// Which events a shipper carries: it decides the buffering, who hears the outcomes, and the
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Performance (EMF) events: regenerated every interval and with no file on the node to fall
    /// back on, so a full buffer drops its oldest events (counted).
    Performance,
    /// Log records: the files on the node are the buffer, so producers wait instead.
    Logs,
}

/// How a [`Shipper`] behaves.
#[derive(Debug, Clone)]
pub struct ShipperOptions {
    pub lane: Lane,
    /// Send `x-amzn-logs-format: json/emf` (performance events of destination `emf` only).
    pub emf_header: bool,
    /// Applied to groups this shipper creates, never to existing ones.
    pub retention_days: Option<u32>,
    /// Retention and class of the `collect_list` groups this shipper creates (the first rule
    /// whose glob matches the group; its retention, if any, wins over `retention_days`).
    pub group_rules: Arc<[GroupRule]>,
    /// Create a missing log group (`kinsight.logs.create_log_groups`); otherwise wait for it.
    pub create_groups: bool,
    /// Longest time an event waits before its stream's batch is sent.
    pub flush_interval: Duration,
    /// Performance lane: events held before the oldest are dropped. Logs lane: message bytes
    /// (+26 per event) queued or in flight before producers wait.
    pub capacity: usize,
    pub backoff: Backoff,
}

/// A log stream: its group and its name.
type StreamKey = (Arc<str>, Arc<str>);

/// `PutLogEvents` requests in flight at once, over different streams (at most 16 per node keeps
/// a large fleet within the account's request quota).
pub const PUT_CONCURRENCY: usize = 8;

/// The most events the per-stream vectors kept between rounds can hold together: about a
/// megabyte of `LogEvent`s, more than a round of the default logs budget needs.
const POOLED_EVENTS: usize = 12_288;

/// Performance events held between flushes: about 40 intervals of a 250-pod node in standard
/// mode.
pub const DEFAULT_PERFORMANCE_CAPACITY: usize = 50_000;

/// Log bytes held in memory and not yet settled, by default (`kinsight.logs.buffer_mib`). With
/// the Fluent Bit record shape an encoded event is about three times its log line, so 4 MiB is
/// about 1.3 MB of log input: four full requests, or 80 KiB for each of 50 busy streams. In the
/// throughput benchmark 8 MiB sent no faster than 4 and cost 13 MiB more peak RSS (against a
/// 40 MiB target).
pub const DEFAULT_LOGS_CAPACITY_BYTES: usize = 4 << 20;

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// A full request is buffered, or a flush was asked for.
    flush_now: Notify,
    /// A flush round finished, or the stopped flusher handed back what it held.
    settled: Notify,
    /// Logs lane: budget was freed.
    space: Notify,
    stop: CancellationToken,
    telemetry: Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
    lane: Lane,
    capacity: usize,
}

#[derive(Debug, Default)]
struct State {
    pending: VecDeque<LogEvent>,
    /// Logs lane: `PutLogEvents` bytes and events of `pending` per stream, to flush as soon as
    /// one stream has a full request.
    queued: HashMap<StreamKey, (usize, usize)>,
    /// `PutLogEvents` bytes of `pending` plus those being sent (logs lane budget).
    held_bytes: usize,
    in_flight: bool,
    /// The flusher stopped; events it was sending are back in `pending`.
    flusher_done: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_idle(&self) -> bool {
        let st = self.lock();
        st.pending.is_empty() && !st.in_flight
    }

    /// Reports a final outcome for `events` to the producer and the counters.
    fn settle(&self, events: &[LogEvent], outcome: Outcome, group: &str, code: Option<&str>, detail: &str) {
        if events.is_empty() {
            return;
        }
        if let Some(ack) = &self.ack {
            let tokens: Vec<u64> = events.iter().map(|e| e.token).collect();
            ack.settled(&tokens, outcome);
        }
        match (self.lane, outcome) {
            (Lane::Performance, Outcome::Accepted) => {
                ItemsWritten {
                    output: "cloudwatch",
                    kind: "emf",
                    count: events.len(),
                }
                .emit(&self.telemetry);
                let bytes: usize = events.iter().map(batch::event_bytes).sum();
                self.telemetry
                    .add(crate::telemetry::Name::BillableEmfBytes, &[], bytes as u64);
            }
            (Lane::Performance, Outcome::Rejected(r)) => EmfEventsDropped {
                reason: match r {
                    Rejection::TooNew => ShipDropReason::TooNew,
                    Rejection::TooOld | Rejection::Expired => ShipDropReason::TooOld,
                },
                count: events.len(),
                log_group: group,
                code,
                detail,
            }
            .emit(&self.telemetry),
            (Lane::Performance, Outcome::Dropped(d)) => EmfEventsDropped {
                reason: drop_reason(d),
                count: events.len(),
                log_group: group,
                code,
                detail,
            }
            .emit(&self.telemetry),
            (Lane::Logs, outcome) => LogEventsSettled {
                outcome: outcome_label(outcome),
                events: events.len(),
                bytes: events.iter().map(batch::event_bytes).sum(),
                log_group: group,
                code,
                detail,
            }
            .emit(&self.telemetry),
        }
    }

    /// Frees logs-lane budget for events that left the shipper.
    fn release(&self, bytes: usize) {
        if self.lane == Lane::Logs {
            let mut st = self.lock();
            st.held_bytes = st.held_bytes.saturating_sub(bytes);
            drop(st);
            self.space.notify_waiters();
        }
    }
}

/// Adds `events` to the per-stream tally; returns whether a stream now holds a full request.
fn queue_per_stream(queued: &mut HashMap<StreamKey, (usize, usize)>, events: &[LogEvent]) -> bool {
    let mut full = false;
    let mut run = 0;
    // Runs of one stream (a round hands over each file's events together) add up at once.
    while run < events.len() {
        let first = &events[run];
        let mut bytes = 0;
        let mut n = 0;
        for e in &events[run..] {
            if !(Arc::ptr_eq(&e.group, &first.group) && Arc::ptr_eq(&e.stream, &first.stream)) {
                break;
            }
            bytes += batch::event_bytes(e);
            n += 1;
        }
        let q = queued
            .entry((first.group.clone(), first.stream.clone()))
            .or_insert((0, 0));
        q.0 += bytes;
        q.1 += n;
        full |= q.0 >= MAX_BATCH_BYTES || q.1 >= MAX_EVENTS_PER_PUT;
        run += n;
    }
    full
}

fn drop_reason(d: DropReason) -> ShipDropReason {
    match d {
        DropReason::QueueFull => ShipDropReason::QueueFull,
        DropReason::Invalid => ShipDropReason::Rejected,
        DropReason::AccessDenied => ShipDropReason::AccessDenied,
        DropReason::TooLarge => ShipDropReason::TooLarge,
        DropReason::Shutdown => ShipDropReason::Shutdown,
        DropReason::WriteFailed => ShipDropReason::WriteFailed,
    }
}

/// The `outcome` label of the log lane's counters.
pub fn outcome_label(o: Outcome) -> &'static str {
    match o {
        Outcome::Accepted => "accepted",
        Outcome::Rejected(Rejection::TooNew) => "rejected_too_new",
        Outcome::Rejected(Rejection::TooOld) => "rejected_too_old",
        Outcome::Rejected(Rejection::Expired) => "rejected_expired",
        Outcome::Dropped(DropReason::QueueFull) => "dropped_queue_full",
        Outcome::Dropped(DropReason::Invalid) => "dropped_invalid",
        Outcome::Dropped(DropReason::AccessDenied) => "dropped_access_denied",
        Outcome::Dropped(DropReason::TooLarge) => "dropped_too_large",
        Outcome::Dropped(DropReason::Shutdown) => "dropped_shutdown",
        Outcome::Dropped(DropReason::WriteFailed) => "dropped_write_failed",
    }
}

/// The producer's side of one lane. Dropping it stops the flusher.
#[derive(Debug)]
pub struct Shipper {
    shared: Arc<Shared>,
}

/// The flusher: the shipper's one task, for the supervisor to run. It ends when the shipper
/// stops.
pub type Flusher = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + 'static>>;

impl Shipper {
    /// A shipper over `client` and the future that sends for it (nothing is spawned here).
    /// `ack` hears every final outcome (the logs lane; `None` for performance events).
    pub fn new(
        client: Client,
        opts: ShipperOptions,
        telemetry: Telemetry,
        ack: Option<Arc<dyn Acknowledge>>,
    ) -> (Shipper, Flusher) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            flush_now: Notify::new(),
            settled: Notify::new(),
            space: Notify::new(),
            stop: CancellationToken::new(),
            telemetry,
            ack,
            lane: opts.lane,
            capacity: opts.capacity.max(1),
        });
        let sender = Sender {
            shared: shared.clone(),
            client,
            opts,
            bodies: Mutex::new(Vec::new()),
            spare: VecDeque::new(),
            streams: Vec::new(),
        };
        (Shipper { shared }, Box::pin(sender.run()))
    }

    /// Performance lane: buffers `events` for the next flush and never waits; when the buffer is
    /// full the oldest events are dropped and counted.
    pub fn enqueue_dropping(&self, events: Vec<LogEvent>) {
        if self.shared.stop.is_cancelled() {
            let group = events.first().map(|e| e.group.clone()).unwrap_or_default();
            self.shared.settle(
                &events,
                Outcome::Dropped(DropReason::Shutdown),
                &group,
                None,
                "the output was stopped",
            );
            return;
        }
        let (evicted, full) = {
            let mut st = self.shared.lock();
            st.pending.extend(events);
            let over = st.pending.len().saturating_sub(self.shared.capacity);
            let evicted: Vec<LogEvent> = st.pending.drain(..over).collect();
            (evicted, st.pending.len() >= MAX_EVENTS_PER_PUT)
        };
        if let Some(first) = evicted.first() {
            let group = first.group.clone();
            self.shared.settle(
                &evicted,
                Outcome::Dropped(DropReason::QueueFull),
                &group,
                None,
                "CloudWatch Logs is not keeping up; the oldest events were dropped",
            );
        }
        if full {
            self.shared.flush_now.notify_one();
        }
    }

    /// Logs lane: queues `events`, first waiting while the bytes held are at capacity (a batch
    /// larger than the whole capacity goes in once nothing else is held). Returns the events
    /// back if the shipper stopped meanwhile: they were not sent.
    pub async fn enqueue_waiting(&self, events: Vec<LogEvent>) -> Result<(), Vec<LogEvent>> {
        let bytes: usize = events.iter().map(batch::event_bytes).sum();
        loop {
            let space = self.shared.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            if self.shared.stop.is_cancelled() {
                return Err(events);
            }
            {
                let mut st = self.shared.lock();
                if st.held_bytes == 0 || st.held_bytes + bytes <= self.shared.capacity {
                    st.held_bytes += bytes;
                    let full = queue_per_stream(&mut st.queued, &events);
                    st.pending.extend(events);
                    let over = st.held_bytes >= self.shared.capacity;
                    drop(st);
                    if full || over {
                        // Flush early instead of waiting for the timer: PutLogEvents is billed
                        // per byte, not per request, so an early flush costs nothing. Only a
                        // stream's full request counts, not the total over all streams: that
                        // flushed many small requests, whose fixed cost (signing, the round
                        // trip) was most of the CPU at a steady rate over many files.
                        self.shared.flush_now.notify_one();
                    }
                    return Ok(());
                }
            }
            self.shared.flush_now.notify_one();
            tokio::select! {
                () = space => {}
                () = self.shared.stop.cancelled() => return Err(events),
            }
        }
    }

    /// Bytes held (logs lane): queued or being sent, not yet settled.
    pub fn held_bytes(&self) -> usize {
        self.shared.lock().held_bytes
    }

    /// Sends what is buffered now, waiting at most until `deadline`. Returns whether everything
    /// was settled by then. The shipper keeps running.
    pub async fn flush(&self, deadline: Instant) -> bool {
        self.shared.flush_now.notify_one();
        loop {
            let settled = self.shared.settled.notified();
            tokio::pin!(settled);
            settled.as_mut().enable();
            if self.shared.is_idle() {
                return true;
            }
            tokio::select! {
                () = settled => self.shared.flush_now.notify_one(),
                () = tokio::time::sleep_until(deadline) => return false,
            }
        }
    }

    /// [`Shipper::flush`], then stop: returns what was left (performance events counted as
    /// dropped, log events handed back unsent).
    pub async fn drain(&self, deadline: Instant) -> Leftover {
        self.flush(deadline).await;
        self.stop().await
    }

    /// Stops the flusher and returns what it had not settled.
    pub async fn stop(&self) -> Leftover {
        self.shared.stop.cancel();
        self.shared.space.notify_waiters();
        // The flusher puts back what it was sending; wait for that (it reacts to the cancel at
        // once), but never hang on a flusher that is not running at all.
        let wait = async {
            loop {
                let settled = self.shared.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                {
                    let st = self.shared.lock();
                    if st.flusher_done || !st.in_flight {
                        return;
                    }
                }
                settled.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        self.stop_now()
    }

    fn stop_now(&self) -> Leftover {
        self.shared.stop.cancel();
        let left: Vec<LogEvent> = {
            let mut st = self.shared.lock();
            st.held_bytes = 0;
            st.queued.clear();
            st.pending.drain(..).collect()
        };
        match self.shared.lane {
            Lane::Performance => {
                if let Some(first) = left.first() {
                    let group = first.group.clone();
                    self.shared.settle(
                        &left,
                        Outcome::Dropped(DropReason::Shutdown),
                        &group,
                        None,
                        "still buffered when the output stopped",
                    );
                }
                Leftover {
                    dropped: left.len(),
                    logs: Vec::new(),
                }
            }
            Lane::Logs => Leftover { dropped: 0, logs: left },
        }
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        if !self.shared.stop.is_cancelled() {
            let _ = self.stop_now();
        }
    }
}

/// The background half.
struct Sender {
    shared: Arc<Shared>,
    client: Client,
    opts: ShipperOptions,
    /// Request body buffers, reused.
    bodies: Mutex<Vec<BytesMut>>,
    /// The queue a round takes its events from is swapped with this one (empty, its capacity
    /// kept), and each stream's events of a round go to a vector of `streams`: a round
    /// allocates nothing for its events. A fresh vector per round cost a mapping and its page
    /// faults each time under glibc's fixed `MALLOC_MMAP_THRESHOLD_` (the image sets one).
    spare: VecDeque<LogEvent>,
    streams: Vec<Vec<LogEvent>>,
}

/// How one request ended.
enum Sent {
    Done,
    /// `InvalidParameterException` or another refusal of the request: the caller may split it.
    Refused(Failure),
    /// The shipper stopped; the events were not sent.
    Stopped,
}

impl Sender {
    async fn run(mut self) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(self.opts.flush_interval) => {}
                () = self.shared.flush_now.notified() => {}
                () = self.shared.stop.cancelled() => break,
            }
            let mut events = {
                let spare = std::mem::take(&mut self.spare);
                let mut st = self.shared.lock();
                st.in_flight = !st.pending.is_empty();
                st.queued.clear();
                std::mem::replace(&mut st.pending, spare)
            };
            if !events.is_empty() {
                let unsent = self.send_all(&mut events).await;
                let mut st = self.shared.lock();
                st.in_flight = false;
                if !unsent.is_empty() {
                    // Stopped mid-round: back to the front, in order, for `stop` to hand over.
                    for e in unsent.into_iter().rev() {
                        st.pending.push_front(e);
                    }
                }
            }
            // Emptied by the round (or empty already): the next round's spare, capacity kept.
            self.spare = events;
            self.shared.settled.notify_waiters();
        }
        self.shared.lock().flusher_done = true;
        self.shared.settled.notify_waiters();
    }

    /// One round: per log stream (in order of first appearance), check, sort, split and send.
    /// Takes every event out of `events`; returns the events not sent because the shipper
    /// stopped.
    async fn send_all(&mut self, events: &mut VecDeque<LogEvent>) -> Vec<LogEvent> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        // Per stream, in order of first appearance. Consecutive events mostly share their stream
        // (a round reads a file's lines together), so the stream of the previous event is tried
        // first by pointer before the map hashes the names.
        let mut per_stream: Vec<(StreamKey, Vec<LogEvent>)> = Vec::new();
        let mut index: HashMap<StreamKey, usize> = HashMap::new();
        let mut last: Option<usize> = None;
        for e in events.drain(..) {
            if let Err(why) = batch::check(&e, now_ms) {
                let (outcome, detail) = match why {
                    Unsendable::Old => (Outcome::Rejected(Rejection::TooOld), "older than 14 days"),
                    Unsendable::Ahead => (Outcome::Rejected(Rejection::TooNew), "more than 2 hours ahead"),
                    Unsendable::Large => (
                        Outcome::Dropped(DropReason::TooLarge),
                        "larger than a PutLogEvents request",
                    ),
                    Unsendable::Empty => (Outcome::Dropped(DropReason::Invalid), "an empty message"),
                };
                let bytes = batch::event_bytes(&e);
                let group = e.group.clone();
                self.shared
                    .settle(std::slice::from_ref(&e), outcome, &group, None, detail);
                self.shared.release(bytes);
                continue;
            }
            let i = match last {
                Some(i) if Arc::ptr_eq(&per_stream[i].0.0, &e.group) && Arc::ptr_eq(&per_stream[i].0.1, &e.stream) => i,
                _ => *index.entry((e.group.clone(), e.stream.clone())).or_insert_with(|| {
                    let buf = self.streams.pop().unwrap_or_default();
                    per_stream.push(((e.group.clone(), e.stream.clone()), buf));
                    per_stream.len() - 1
                }),
            };
            last = Some(i);
            per_stream[i].1.push(e);
        }
        // Streams go out side by side, up to PUT_CONCURRENCY requests at once (since January 2023
        // CloudWatch Logs has no per-stream ordering token and accepts parallel puts); within a
        // stream, its requests go one after the other, oldest first. One request at a time for the
        // whole node would cap it at one request per round trip: a few MB/s to a distant region.
        let this = &*self;
        let mut running = futures_util::stream::iter(
            per_stream
                .into_iter()
                .map(|(key, events)| async move { this.send_stream(&key.0, &key.1, events).await }),
        )
        .buffer_unordered(PUT_CONCURRENCY);
        let mut unsent = Vec::new();
        let mut emptied = Vec::new();
        while let Some((buf, back)) = running.next().await {
            unsent.extend(back);
            emptied.push(buf);
        }
        drop(running);
        // Kept for the next rounds, up to a bound on the events they can hold together (a round
        // over 500 busy files would otherwise keep 500 vectors).
        let mut kept: usize = self.streams.iter().map(Vec::capacity).sum();
        for buf in emptied {
            if kept + buf.capacity() <= POOLED_EVENTS {
                kept += buf.capacity();
                self.streams.push(buf);
            }
        }
        unsent
    }

    /// One stream's events, in requests within the API limits, one after the other, each sent
    /// from a slice of `events`. Returns `events` emptied (for reuse) and the events not sent
    /// because the shipper stopped.
    async fn send_stream(
        &self,
        group: &str,
        stream: &str,
        mut events: Vec<LogEvent>,
    ) -> (Vec<LogEvent>, Vec<LogEvent>) {
        let mut unsent = Vec::new();
        for b in batch::split(&mut events) {
            let batch = &events[b];
            if self.shared.stop.is_cancelled() {
                unsent.extend_from_slice(batch);
                continue;
            }
            if let Some(back) = self.send_splitting(group, stream, batch).await {
                unsent.extend(back);
            }
        }
        events.clear();
        (events, unsent)
    }

    /// Sends one request; when it is refused, splits it in half once and sends both halves,
    /// dropping a half that is refused again (Fluent Bit and Vector give up on the whole request;
    /// a split saves the good half). Returns events not sent because the shipper stopped.
    async fn send_splitting(&self, group: &str, stream: &str, events: &[LogEvent]) -> Option<Vec<LogEvent>> {
        let f = match self.send(group, stream, events).await {
            Sent::Done => return None,
            Sent::Stopped => return Some(events.to_vec()),
            Sent::Refused(f) => f,
        };
        if events.len() < 2 || f.class == ErrorClass::AccessDenied {
            self.refused(group, events, &f);
            return None;
        }
        let (first, second) = events.split_at(events.len() / 2);
        let mut unsent = Vec::new();
        for half in [first, second] {
            match self.send(group, stream, half).await {
                Sent::Done => {}
                Sent::Stopped => unsent.extend_from_slice(half),
                Sent::Refused(f) => self.refused(group, half, &f),
            }
        }
        (!unsent.is_empty()).then_some(unsent)
    }

    fn refused(&self, group: &str, events: &[LogEvent], f: &Failure) {
        let bytes = events.iter().map(batch::event_bytes).sum();
        let reason = if f.class == ErrorClass::AccessDenied {
            DropReason::AccessDenied
        } else {
            DropReason::Invalid
        };
        self.shared
            .settle(events, Outcome::Dropped(reason), group, f.code.as_deref(), &f.message);
        self.shared.release(bytes);
    }

    /// One `PutLogEvents` request, retried on transient errors until it succeeds or the shipper
    /// stops; the stream (and group) are created on `ResourceNotFoundException`.
    async fn send(&self, group: &str, stream: &str, events: &[LogEvent]) -> Sent {
        let mut attempt: u32 = 0;
        let mut created = false;
        loop {
            let result = tokio::select! {
                r = self.put(group, stream, events) => r,
                () = self.shared.stop.cancelled() => return Sent::Stopped,
            };
            let f = match result {
                Ok(out) => {
                    self.call(AwsCallResult::Ok, None);
                    self.accepted(group, events, &out);
                    return Sent::Done;
                }
                Err(f) => f,
            };
            let not_found = f.code.as_deref() == Some("ResourceNotFoundException");
            if not_found && !created {
                self.call(AwsCallResult::Retry, Some(&f));
                created = true;
                let rule = GroupRule::find(&self.opts.group_rules, group);
                let settings = create::GroupSettings {
                    retention_days: rule.and_then(|r| r.retention_days).or(self.opts.retention_days),
                    class: rule.and_then(|r| r.class),
                };
                match create::ensure(
                    &self.client,
                    group,
                    stream,
                    settings,
                    self.opts.create_groups,
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
                            "log stream ready"
                        );
                        continue;
                    }
                    Err(cf) if cf.class.is_retryable() => {}
                    Err(cf) => {
                        if cf.class == ErrorClass::AccessDenied {
                            AccessDenied {
                                action: cf.action.unwrap_or("logs:CreateLogStream"),
                            }
                            .emit(&self.shared.telemetry);
                        }
                        return Sent::Refused(cf);
                    }
                }
            } else if not_found || f.class.is_retryable() {
                // Created and still not found (eventual consistency), throttled, 5xx, timed out:
                // back off; a later not-found creates again.
                created = false;
                self.call(AwsCallResult::Retry, Some(&f));
            } else {
                self.call(AwsCallResult::Error, Some(&f));
                if f.class == ErrorClass::AccessDenied {
                    AccessDenied {
                        action: "logs:PutLogEvents",
                    }
                    .emit(&self.shared.telemetry);
                }
                return Sent::Refused(f);
            }
            attempt = attempt.saturating_add(1);
            if attempt.is_multiple_of(5) {
                tracing::warn!(code = %f.code_or_kind(), attempts = attempt, log_group = group, error = %f.message, "PutLogEvents keeps failing; retrying with backoff");
            }
            let delay = self.opts.backoff.delay(attempt - 1);
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.shared.stop.cancelled() => return Sent::Stopped,
            }
        }
    }

    /// One `PutLogEvents` call under [`REQUEST_TIMEOUT`], with the EMF header when asked.
    async fn put(&self, group: &str, stream: &str, events: &[LogEvent]) -> Result<PutLogEventsOutput, Failure> {
        // The request body is written here, each message copied as it is (events keep their
        // messages escaped): the SDK's serializer escapes byte by byte and would first need a
        // copy of every message (a quarter of the pipeline's CPU in the throughput benchmark),
        // then escape the records, which are JSON, a second time. The SDK still signs
        // the body (`body::PreparedBody` runs before signing), sends it, and parses the answer;
        // it is given one placeholder event, which the body replaces.
        let mut buf = self
            .bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_default();
        body::put_body(&mut buf, group, stream, events);
        let body = buf.freeze();
        let prepared = body::PreparedBody {
            body: body.clone(),
            emf: self.opts.emf_header,
        };
        let result = self.put_body_now(group, stream, events, prepared).await;
        // The buffer back for the next request, when nothing else holds it any more: a body is
        // about a megabyte, and a fresh one costs page faults on every request.
        if let Ok(mut buf) = body.try_into_mut() {
            let mut pool = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
            if pool.len() < PUT_CONCURRENCY {
                buf.clear();
                pool.push(buf);
            }
        }
        result
    }

    async fn put_body_now(
        &self,
        group: &str,
        stream: &str,
        events: &[LogEvent],
        prepared: body::PreparedBody,
    ) -> Result<PutLogEventsOutput, Failure> {
        let placeholder = InputLogEvent::builder()
            .timestamp(events.first().map_or(0, |e| e.timestamp_ms))
            .message("-")
            .build()
            .map_err(|e| Failure {
                class: ErrorClass::Rejected,
                code: None,
                status: None,
                message: crate::telemetry::chain(&e),
                action: None,
            })?;
        let request = self
            .client
            .put_log_events()
            .log_group_name(group)
            .log_stream_name(stream)
            .set_log_events(Some(vec![placeholder]))
            .customize()
            .interceptor(prepared);
        match tokio::time::timeout(REQUEST_TIMEOUT, request.send()).await {
            Ok(r) => r.map_err(|e| classify(&e)),
            Err(_) => Err(Failure {
                class: ErrorClass::Transient,
                code: Some("RequestTimeout".into()),
                status: None,
                message: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                action: None,
            }),
        }
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

    /// Settles an accepted request: the events `rejectedLogEventsInfo` names are rejected, the
    /// rest accepted. Indices point into the request, which is in time order.
    fn accepted(&self, group: &str, events: &[LogEvent], out: &PutLogEventsOutput) {
        let bytes = events.iter().map(batch::event_bytes).sum();
        let n = events.len();
        let (mut old_to, mut expired_to, mut new_from) = (0, 0, n);
        if let Some(info) = out.rejected_log_events_info() {
            let idx = |v: Option<i32>| v.and_then(|i| usize::try_from(i).ok());
            new_from = idx(info.too_new_log_event_start_index()).unwrap_or(n).min(n);
            old_to = idx(info.too_old_log_event_end_index()).unwrap_or(0).min(new_from);
            expired_to = idx(info.expired_log_event_end_index()).unwrap_or(0).min(new_from);
        }
        // Too old wins over expired where both name an event: both mean "before the window".
        let expired_end = expired_to.max(old_to);
        self.shared.settle(
            &events[..old_to],
            Outcome::Rejected(Rejection::TooOld),
            group,
            None,
            "rejected by CloudWatch Logs: too old",
        );
        self.shared.settle(
            &events[old_to..expired_end],
            Outcome::Rejected(Rejection::Expired),
            group,
            None,
            "rejected by CloudWatch Logs: older than the group's retention",
        );
        self.shared
            .settle(&events[expired_end..new_from], Outcome::Accepted, group, None, "");
        self.shared.settle(
            &events[new_from..],
            Outcome::Rejected(Rejection::TooNew),
            group,
            None,
            "rejected by CloudWatch Logs: too new",
        );
        self.shared.release(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_streams_full_request_flushes_early() {
        let (g, a, b): (Arc<str>, Arc<str>, Arc<str>) = ("g".into(), "a".into(), "b".into());
        let e = |stream: &Arc<str>, len: usize| LogEvent {
            group: g.clone(),
            stream: stream.clone(),
            timestamp_ms: 1,
            message: "x".repeat(len).as_str().into(),
            token: 0,
        };
        let mut queued = HashMap::new();
        // 1.2 MB over two streams: no stream has a full request.
        let half = MAX_BATCH_BYTES / 2 - 1000;
        assert!(!queue_per_stream(&mut queued, &[e(&a, half), e(&b, half), e(&b, 100)]));
        assert!(!queue_per_stream(&mut queued, &[e(&b, 100)]));
        // Stream a reaches 1,048,576 bytes counting 26 per event.
        assert!(queue_per_stream(&mut queued, &[e(&a, MAX_BATCH_BYTES - half - 2 * 26)]));
        queued.clear();
        let many: Vec<LogEvent> = (0..MAX_EVENTS_PER_PUT).map(|_| e(&b, 1)).collect();
        assert!(queue_per_stream(&mut queued, &many));
    }
}
