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

use std::collections::HashMap;
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
    /// Requests in flight at once, one per stream (1..=[`MAX_PUT_CONCURRENCY`]).
    pub concurrency: usize,
    pub backoff: Backoff,
}

/// A log stream: its group and its name.
type StreamKey = (Arc<str>, Arc<str>);

/// `PutLogEvents` requests in flight at once, over different streams, by default
/// (`kinsight.logs.put_concurrency`). Measured (the logs benchmarks, 2026-12-07): against 8, 16
/// cut the p99 latency of 500 busy files at an endpoint answering in 50 ms from 5.9 s to 3.2 s,
/// for more CPU there (12 % of a core against 8.3 %: twice the requests, each half the size), and
/// cost nothing measurable elsewhere (the cold catch-up's CPU and peak RSS, 50 busy files). It
/// once cost a megabyte of peak memory a slot, when each request had a body buffer of its own;
/// bodies are now sent from the encoder's buffers.
pub const DEFAULT_PUT_CONCURRENCY: usize = 16;

/// The most `PutLogEvents` requests a node has in flight: 16 keeps a large fleet within the
/// account's request quota.
pub const MAX_PUT_CONCURRENCY: usize = 16;

/// The most events the emptied per-stream vectors kept for reuse can hold together: about a
/// megabyte of `LogEvent`s, more than the default logs budget needs at once.
const POOLED_EVENTS: usize = 12_288;

/// The largest emptied vector kept for reuse, in events (about 88 KiB of `LogEvent`s, under the
/// image's 128 KiB `MALLOC_MMAP_THRESHOLD_`). Every stream holds a vector while it has events;
/// without this bound, handing large vectors to small streams could let every stream's vector
/// grow to the largest any stream needed. A worst-case bound: it made no measurable difference
/// to the peak RSS of the cold catch-up benchmark.
const POOLED_VEC_EVENTS: usize = 1024;

/// Performance events held between flushes: about 40 intervals of a 250-pod node in standard
/// mode.
pub const DEFAULT_PERFORMANCE_CAPACITY: usize = 50_000;

/// Log bytes held in memory and not yet settled, by default (`kinsight.logs.buffer_mib`). With
/// the Fluent Bit record shape an encoded event is about three times its log line, so 3 MiB is
/// about 1 MB of log input: three full requests, or 60 KiB for each of 50 busy streams. Measured
/// (the logs benchmarks, 2026-12-07): with streams sent as slots free, 3 MiB met every live case
/// that 4 MiB sent in rounds met, with 2 MiB less peak RSS; 4 MiB with streams sent as slots
/// free went over the 40 MiB target of the cold catch-up.
pub const DEFAULT_LOGS_CAPACITY_BYTES: usize = 3 << 20;

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// A stream holds a full request, the budget is under pressure, or a flush was asked for.
    flush_now: Notify,
    /// A stream's requests ended, or the stopped flusher handed back what it held.
    settled: Notify,
    /// Logs lane: budget was freed.
    space: Notify,
    stop: CancellationToken,
    telemetry: Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
    lane: Lane,
    capacity: usize,
}

/// The events of one log stream waiting to be sent.
#[derive(Debug, Default)]
struct StreamQueue {
    events: Vec<LogEvent>,
    /// `PutLogEvents` bytes of `events`.
    bytes: usize,
    /// When `events` last went from empty to not empty: the stream is due a flush interval later.
    since: Option<Instant>,
    /// The stream's earlier events are being sent; these wait, so that a stream's requests go
    /// one after the other, oldest first.
    sending: bool,
    /// The stream held events when the budget came under pressure: it goes out next, before its
    /// interval is up, even when the pressure is over by then.
    urgent: bool,
}

impl StreamQueue {
    fn full(&self) -> bool {
        self.bytes >= MAX_BATCH_BYTES || self.events.len() >= MAX_EVENTS_PER_PUT
    }
}

#[derive(Debug, Default)]
struct State {
    streams: HashMap<StreamKey, StreamQueue>,
    /// Events in `streams` (not being sent).
    queued: usize,
    /// Streams being sent.
    sending: usize,
    /// `PutLogEvents` bytes queued or being sent (logs lane budget).
    held_bytes: usize,
    /// Producers waiting for budget (logs lane).
    waiting: usize,
    /// A flush asked for everything queued to go now, until nothing is left.
    flush_all: bool,
    /// The flusher stopped; events it was sending are back in `streams`.
    flusher_done: bool,
    /// Emptied event vectors, for the next streams: a fresh vector per stream and send cost a
    /// mapping and its page faults each time under glibc's fixed `MALLOC_MMAP_THRESHOLD_` (the
    /// image sets one).
    pool: Vec<Vec<LogEvent>>,
    /// Cancelled to stop the sends in progress without stopping the shipper
    /// ([`Shipper::withdraw`]); a child of `Shared::stop`, replaced by a fresh one each time.
    /// Each stream's send takes the one current when it starts.
    halt: CancellationToken,
    /// [`Shipper::withdraw`] is waiting for the sends in progress: nothing new is sent.
    withdrawing: bool,
}

impl State {
    /// Moves `events` to their streams' queues (`events` is left empty, its capacity kept);
    /// returns whether a stream now holds a full request.
    fn queue(&mut self, events: &mut Vec<LogEvent>, now: Instant) -> bool {
        let mut full = false;
        self.queued += events.len();
        let mut events = events.drain(..).peekable();
        // Runs of one stream (a read round hands over each file's events together) are looked up
        // once.
        while let Some(first) = events.next() {
            let (group, stream) = (first.group.clone(), first.stream.clone());
            let pool = &mut self.pool;
            let q = self
                .streams
                .entry((group.clone(), stream.clone()))
                .or_insert_with(|| StreamQueue {
                    events: pool.pop().unwrap_or_default(),
                    ..StreamQueue::default()
                });
            if q.events.is_empty() {
                q.since = Some(now);
            }
            q.bytes += batch::event_bytes(&first);
            q.events.push(first);
            while let Some(e) = events.next_if(|e| Arc::ptr_eq(&e.group, &group) && Arc::ptr_eq(&e.stream, &stream)) {
                q.bytes += batch::event_bytes(&e);
                q.events.push(e);
            }
            full |= q.full();
        }
        full
    }

    /// Performance lane: drops the oldest queued events beyond `capacity` (from the stream
    /// waiting longest) and returns them.
    fn evict(&mut self, capacity: usize) -> Vec<LogEvent> {
        let mut evicted = Vec::new();
        while self.queued > capacity {
            let Some(q) = self
                .streams
                .values_mut()
                .filter(|q| !q.events.is_empty())
                .min_by_key(|q| q.since)
            else {
                break;
            };
            let n = (self.queued - capacity).min(q.events.len());
            for e in q.events.drain(..n) {
                q.bytes -= batch::event_bytes(&e);
                evicted.push(e);
            }
            if q.events.is_empty() {
                q.since = None;
            }
            self.queued -= n;
        }
        evicted
    }

    /// Keeps an emptied vector for reuse: one of at most [`POOLED_VEC_EVENTS`] events, up to
    /// [`POOLED_EVENTS`] events in all.
    fn pool(&mut self, mut buf: Vec<LogEvent>) {
        buf.clear();
        let kept: usize = self.pool.iter().map(Vec::capacity).sum();
        if (1..=POOLED_VEC_EVENTS).contains(&buf.capacity()) && kept + buf.capacity() <= POOLED_EVENTS {
            self.pool.push(buf);
        }
    }
}

/// How soon a stream is sent: lower first. A full request goes first; then the stream waiting
/// past the flush interval; then one marked urgent (it held events while the budget was under
/// pressure, or a flush was asked for). Within each, the stream waiting longest first: the
/// oldest lines are the latency that counts, and log messages are cut from shared 64 KiB chunks
/// that a straggler keeps alive.
type Priority = (u8, Option<Instant>);

fn priority(q: &StreamQueue, now: Instant, interval: Duration) -> Option<Priority> {
    if q.sending || q.events.is_empty() {
        return None;
    }
    let class = if q.full() {
        0
    } else if q.since.is_some_and(|t| now.saturating_duration_since(t) >= interval) {
        1
    } else if q.urgent {
        2
    } else {
        return None;
    };
    Some((class, q.since))
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_idle(&self) -> bool {
        let st = self.lock();
        st.queued == 0 && st.sending == 0
    }

    /// Whether the logs budget is under pressure: a producer waits, or three quarters are held.
    /// Then streams are sent before their interval is up, the fullest first.
    fn pressure(&self, st: &State) -> bool {
        self.lane == Lane::Logs && (st.waiting > 0 || st.held_bytes >= self.capacity / 4 * 3)
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
        let stop = CancellationToken::new();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                halt: stop.child_token(),
                ..State::default()
            }),
            flush_now: Notify::new(),
            settled: Notify::new(),
            space: Notify::new(),
            stop,
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
        };
        (Shipper { shared }, Box::pin(sender.run()))
    }

    /// Performance lane: buffers `events` for the next flush and never waits; when the buffer is
    /// full the oldest events are dropped and counted.
    pub fn enqueue_dropping(&self, mut events: Vec<LogEvent>) {
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
            let full = st.queue(&mut events, Instant::now());
            (st.evict(self.shared.capacity), full)
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
    /// larger than the whole capacity goes in once nothing else is held). Returns the vector
    /// emptied (for reuse), or the events back if the shipper stopped meanwhile: they were not
    /// sent.
    pub async fn enqueue_waiting(&self, mut events: Vec<LogEvent>) -> Result<Vec<LogEvent>, Vec<LogEvent>> {
        let bytes: usize = events.iter().map(batch::event_bytes).sum();
        // Counts this producer in `State::waiting` from its first wait until it leaves, however
        // it leaves (the future can be dropped): the sender sends early while someone waits.
        let mut waiting: Option<WaitingProducer<'_>> = None;
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
                    let full = st.queue(&mut events, Instant::now());
                    // This producer leaves the waiting ones now.
                    let others_wait = st.waiting > usize::from(waiting.is_some());
                    let pressure = others_wait || st.held_bytes >= self.shared.capacity / 4 * 3;
                    drop(st);
                    drop(waiting);
                    if full || pressure {
                        // Send early instead of waiting for the timer: PutLogEvents is billed
                        // per byte, not per request, so an early request costs nothing. Only a
                        // stream's full request or a budget near its end counts, not the total
                        // over all streams: that sent many small requests, whose fixed cost
                        // (signing, the round trip) was most of the CPU at a steady rate over
                        // many files.
                        self.shared.flush_now.notify_one();
                    }
                    return Ok(events);
                }
                if waiting.is_none() {
                    st.waiting += 1;
                    waiting = Some(WaitingProducer(&self.shared));
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
        self.shared.lock().flush_all = true;
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

    /// Logs lane: gives up every event held now, queued or being sent, without settling it, and
    /// returns how many there were; the shipper keeps running. Their producer reads them again:
    /// a reload that replaces the log pipeline while CloudWatch Logs is down calls this, so that
    /// the events the old pipeline read are sent once, by the new one, rather than by both. A
    /// request whose answer was still awaited may have been accepted; only those can arrive twice.
    pub async fn withdraw(&self) -> usize {
        let halted = {
            let mut st = self.shared.lock();
            st.withdrawing = true;
            std::mem::replace(&mut st.halt, self.shared.stop.child_token())
        };
        // However this future ends (it may be dropped while it waits), the flusher sends again.
        let _resume = Withdrawing(&self.shared);
        halted.cancel();
        // The sends in progress notice at once and put their events back in the queues.
        self.sends_back().await;
        let mut st = self.shared.lock();
        let mut kept = HashMap::new();
        let mut withdrawn = Vec::new();
        for (key, q) in st.streams.drain() {
            if q.sending {
                // Still being sent after the wait (never seen): it settles as usual.
                kept.insert(key, q);
            } else {
                withdrawn.push(q);
            }
        }
        st.streams = kept;
        let (mut events, mut bytes) = (0, 0);
        for q in withdrawn {
            events += q.events.len();
            bytes += q.bytes;
            st.pool(q.events);
        }
        st.queued -= events;
        st.held_bytes = st.held_bytes.saturating_sub(bytes);
        drop(st);
        self.shared.space.notify_waiters();
        self.shared.settled.notify_waiters();
        events
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
        self.sends_back().await;
        self.stop_now()
    }

    /// Waits until no stream is being sent (the sends told to stop put their events back at
    /// once), or the flusher ended; never longer than 2 s, and never hangs on a flusher that is
    /// not running at all.
    async fn sends_back(&self) {
        let wait = async {
            loop {
                let settled = self.shared.settled.notified();
                tokio::pin!(settled);
                settled.as_mut().enable();
                {
                    let st = self.shared.lock();
                    if st.flusher_done || st.sending == 0 {
                        return;
                    }
                }
                settled.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
    }

    fn stop_now(&self) -> Leftover {
        self.shared.stop.cancel();
        let left: Vec<LogEvent> = {
            let mut st = self.shared.lock();
            st.held_bytes = 0;
            st.queued = 0;
            st.streams.drain().flat_map(|(_, q)| q.events).collect()
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

/// [`Shipper::withdraw`] in progress: the flusher sends nothing new until this is dropped.
struct Withdrawing<'a>(&'a Shared);

impl Drop for Withdrawing<'_> {
    fn drop(&mut self) {
        self.0.lock().withdrawing = false;
        self.0.flush_now.notify_one();
    }
}

/// A producer waiting for logs budget, counted in [`State::waiting`] while it lives.
struct WaitingProducer<'a>(&'a Shared);

impl Drop for WaitingProducer<'_> {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.waiting = st.waiting.saturating_sub(1);
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
    /// Scratch buffers of request bodies (heads, tails, unframed messages), reused.
    bodies: Mutex<Vec<BytesMut>>,
}

/// How one request ended.
enum Sent {
    Done,
    /// `InvalidParameterException` or another refusal of the request: the caller may split it.
    Refused(Failure),
    /// The shipper stopped, or withdrew the events; they were not sent.
    Stopped,
}

/// What a stream's send hands back: its key, its vector emptied (for reuse), and the events not
/// sent because the shipper stopped.
type StreamDone = (StreamKey, Vec<LogEvent>, Vec<LogEvent>);

impl Sender {
    /// Sends each stream when it is due, as soon as one of `concurrency` request slots is
    /// free: a slow answer holds its own slot only. (Rounds over all streams, each waiting for the
    /// last answer of the one before, held every stream behind the slowest: with 500 streams and
    /// 50 ms answers a round took 3 s, and the 99th percentile line waited 10 s.)
    async fn run(self) {
        let this = &self;
        let mut running = futures_util::stream::FuturesUnordered::new();
        let mut scratch: Vec<Priority> = Vec::new();
        let mut taken: Vec<(StreamKey, Vec<LogEvent>)> = Vec::new();
        loop {
            let slots = this.opts.concurrency.clamp(1, MAX_PUT_CONCURRENCY);
            let next = this.due(slots.saturating_sub(running.len()), &mut scratch, &mut taken);
            for (key, events) in taken.drain(..) {
                running.push(this.send_stream(key, events));
            }
            tokio::select! {
                biased;
                () = this.shared.stop.cancelled() => break,
                Some(done) = running.next(), if !running.is_empty() => this.finished(done),
                () = this.shared.flush_now.notified() => {}
                () = tokio::time::sleep_until(next) => {}
            }
        }
        // The sends in progress notice the stop at once and hand back what they held.
        while let Some(done) = running.next().await {
            this.finished(done);
        }
        self.shared.lock().flusher_done = true;
        self.shared.settled.notify_waiters();
    }

    /// Takes the due streams' events, the most urgent first, for the `free` request slots.
    /// Returns when the next stream falls due (at the latest a flush interval from now).
    fn due(&self, free: usize, scratch: &mut Vec<Priority>, taken: &mut Vec<(StreamKey, Vec<LogEvent>)>) -> Instant {
        let now = Instant::now();
        let interval = self.opts.flush_interval;
        let mut next = now + interval;
        let mut st = self.shared.lock();
        if st.queued == 0 && st.sending == 0 {
            st.flush_all = false;
        }
        if st.queued == 0 || st.withdrawing {
            return next;
        }
        if st.flush_all || self.shared.pressure(&st) {
            // Everything held when the pressure came goes out as slots free, even once the
            // pressure is over: sending only until then left the smaller streams to their
            // timer, and their lines waited the whole interval (p99 1.1 s → 1.9 s at a live
            // 5 MB/s over 50 files).
            for q in st.streams.values_mut() {
                q.urgent |= !q.events.is_empty();
            }
        }
        if free == 0 {
            return next;
        }
        scratch.clear();
        for q in st.streams.values() {
            match priority(q, now, interval) {
                Some(p) => scratch.push(p),
                None => {
                    if let (false, Some(t)) = (q.sending, q.since) {
                        next = next.min(t + interval);
                    }
                }
            }
        }
        if scratch.is_empty() {
            return next;
        }
        // The `free` most urgent: those above the cut, then those equal to it until the
        // slots are full (the map's order is the same in both passes).
        let cut = if scratch.len() > free {
            *scratch.select_nth_unstable(free - 1).1
        } else {
            (u8::MAX, None)
        };
        let mut at_cut = free - scratch.iter().filter(|p| **p < cut).count();
        let State {
            streams,
            pool,
            queued,
            sending,
            ..
        } = &mut *st;
        for (key, q) in streams.iter_mut() {
            if taken.len() == free {
                break;
            }
            let Some(p) = priority(q, now, interval) else {
                continue;
            };
            if p > cut || (p == cut && at_cut == 0) {
                continue;
            }
            if p == cut {
                at_cut -= 1;
            }
            let events = std::mem::replace(&mut q.events, pool.pop().unwrap_or_default());
            q.sending = true;
            q.urgent = false;
            q.since = None;
            q.bytes = 0;
            *queued -= events.len();
            *sending += 1;
            taken.push((key.clone(), events));
        }
        next
    }

    /// A stream's send ended: the stream may be sent again, and what was not sent (the shipper
    /// stopped) goes back to the front of its queue.
    fn finished(&self, (key, emptied, unsent): StreamDone) {
        let mut st = self.shared.lock();
        st.sending -= 1;
        st.queued += unsent.len();
        st.pool(emptied);
        // Absent only if `Shipper::stop_now` took the queues meanwhile; what was not sent still
        // goes back, to be counted as unsettled rather than vanish.
        let mut q = st.streams.remove(&key).unwrap_or_default();
        q.sending = false;
        if !unsent.is_empty() {
            q.bytes += unsent.iter().map(batch::event_bytes).sum::<usize>();
            q.since = q.since.or_else(|| Some(Instant::now()));
            let mut events = unsent;
            events.append(&mut q.events);
            let emptied = std::mem::replace(&mut q.events, events);
            st.pool(emptied);
        }
        if q.events.is_empty() {
            // Gone until its next event: a node's streams come and go with its pods.
            st.pool(q.events);
        } else {
            st.streams.insert(key, q);
        }
        drop(st);
        self.shared.settled.notify_waiters();
    }

    /// One stream's events: those that cannot be sent are settled here; the rest go in requests
    /// within the API limits, one after the other, each sent from a slice of `events`.
    async fn send_stream(&self, key: StreamKey, mut events: Vec<LogEvent>) -> StreamDone {
        let halt = self.shared.lock().halt.clone();
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let group = &*key.0;
        events.retain(|e| {
            let Err(why) = batch::check(e, now_ms) else {
                return true;
            };
            let (outcome, detail) = match why {
                Unsendable::Old => (Outcome::Rejected(Rejection::TooOld), "older than 14 days"),
                Unsendable::Ahead => (Outcome::Rejected(Rejection::TooNew), "more than 2 hours ahead"),
                Unsendable::Large => (
                    Outcome::Dropped(DropReason::TooLarge),
                    "larger than a PutLogEvents request",
                ),
                Unsendable::Empty => (Outcome::Dropped(DropReason::Invalid), "an empty message"),
            };
            self.shared
                .settle(std::slice::from_ref(e), outcome, group, None, detail);
            self.shared.release(batch::event_bytes(e));
            false
        });
        let mut unsent = Vec::new();
        for b in batch::split(&mut events) {
            let batch = &events[b];
            if halt.is_cancelled() {
                unsent.extend_from_slice(batch);
                continue;
            }
            if let Some(back) = self.send_splitting(group, &key.1, batch, &halt).await {
                unsent.extend(back);
            }
        }
        events.clear();
        (key, events, unsent)
    }

    /// Sends one request; when it is refused, splits it in half once and sends both halves,
    /// dropping a half that is refused again (Fluent Bit and Vector give up on the whole request;
    /// a split saves the good half). Returns events not sent because the shipper stopped.
    async fn send_splitting(
        &self,
        group: &str,
        stream: &str,
        events: &[LogEvent],
        halt: &CancellationToken,
    ) -> Option<Vec<LogEvent>> {
        let f = match self.send(group, stream, events, halt).await {
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
            match self.send(group, stream, half, halt).await {
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

    /// One `PutLogEvents` request, retried on transient errors until it succeeds or `halt` (the
    /// shipper stopped, or withdrew its events); the stream (and group) are created on
    /// `ResourceNotFoundException`.
    async fn send(&self, group: &str, stream: &str, events: &[LogEvent], halt: &CancellationToken) -> Sent {
        let mut attempt: u32 = 0;
        let mut created = false;
        loop {
            let result = tokio::select! {
                r = self.put(group, stream, events) => r,
                () = halt.cancelled() => return Sent::Stopped,
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
                () = halt.cancelled() => return Sent::Stopped,
            }
        }
    }

    /// One `PutLogEvents` call under [`REQUEST_TIMEOUT`], with the EMF header when asked.
    async fn put(&self, group: &str, stream: &str, events: &[LogEvent]) -> Result<PutLogEventsOutput, Failure> {
        // The request body is built here (`body::put_body`): runs of the log encoder's framed
        // messages as they are, the rest written escaped as it is. The SDK's serializer escapes
        // byte by byte and would first need a copy of every message (a quarter of the pipeline's
        // CPU in the throughput benchmark), then escape the records, which are JSON, a second
        // time. The SDK still signs the body (`body::PreparedBody` runs before signing), sends
        // it, and parses the answer; it is given one placeholder event, which the body replaces.
        let buf = self.body_buffer(body::size_hint(events));
        let (body, written) = body::put_body(buf, group, stream, events);
        let prepared = body::PreparedBody {
            sha256_hex: body.sha256_hex(),
            body,
            emf: self.opts.emf_header,
        };
        let result = self.put_body_now(group, stream, events, prepared).await;
        // The scratch buffer back for the next request, when nothing else holds it any more:
        // a fresh one costs page faults on every request. For the logs lane it holds only a
        // body's head and tail (the messages are sent from the encoder's buffers); for
        // performance events, whole bodies. The kept ones may hold the budget and two full
        // requests more. With only the budget, when log bodies were copied whole, a 1 GiB
        // catch-up (`scripts/bench logs`) took 125,000-145,000 page faults instead of
        // 29,000-37,000, and about 5 % more CPU.
        if let Ok(mut buf) = written.try_into_mut() {
            let mut pool = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
            let kept: usize = pool.iter().map(BytesMut::capacity).sum();
            if pool.len() < self.opts.concurrency && kept + buf.capacity() <= self.shared.capacity + 2 * MAX_BATCH_BYTES
            {
                buf.clear();
                pool.push(buf);
            }
        }
        result
    }

    /// A kept scratch buffer for about `size` bytes of a body: the smallest that holds it, else
    /// the largest, which `body::put_body` replaces by a larger one (kept after the request in its
    /// place). Taking any buffer let small bodies use the large buffers and large bodies grow the
    /// small ones, so that every kept buffer could end up a megabyte.
    fn body_buffer(&self, size: usize) -> BytesMut {
        let mut pool = self.bodies.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = pool
            .iter()
            .enumerate()
            .filter(|(_, b)| b.capacity() >= size)
            .min_by_key(|(_, b)| b.capacity())
            .map(|(i, _)| i);
        let largest = || {
            pool.iter()
                .enumerate()
                .max_by_key(|(_, b)| b.capacity())
                .map(|(i, _)| i)
        };
        match fits.or_else(largest) {
            Some(i) => pool.swap_remove(i),
            None => BytesMut::new(),
        }
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
        let now = Instant::now();
        let mut st = State::default();
        // 1.2 MB over two streams: no stream has a full request.
        let half = MAX_BATCH_BYTES / 2 - 1000;
        assert!(!st.queue(&mut vec![e(&a, half), e(&b, half), e(&b, 100)], now));
        assert!(!st.queue(&mut vec![e(&b, 100)], now));
        // Stream a reaches 1,048,576 bytes counting 26 per event.
        assert!(st.queue(&mut vec![e(&a, MAX_BATCH_BYTES - half - 2 * 26)], now));
        assert_eq!(st.queued, 5);
        assert_eq!(st.streams.len(), 2);
        let mut st = State::default();
        let mut many: Vec<LogEvent> = (0..MAX_EVENTS_PER_PUT).map(|_| e(&b, 1)).collect();
        assert!(st.queue(&mut many, now));
    }

    #[test]
    fn eviction_takes_the_oldest_of_the_stream_waiting_longest() {
        let (g, a, b): (Arc<str>, Arc<str>, Arc<str>) = ("g".into(), "a".into(), "b".into());
        let e = |stream: &Arc<str>, token: u64| LogEvent {
            group: g.clone(),
            stream: stream.clone(),
            timestamp_ms: 1,
            message: "m".into(),
            token,
        };
        let t0 = Instant::now();
        let mut st = State::default();
        st.queue(&mut vec![e(&b, 1), e(&b, 2)], t0 + Duration::from_secs(1));
        st.queue(&mut vec![e(&a, 3), e(&a, 4), e(&a, 5)], t0);
        let evicted: Vec<u64> = st.evict(2).iter().map(|e| e.token).collect();
        assert_eq!(evicted, [3, 4, 5], "stream a has waited since t0");
        assert_eq!(st.queued, 2);
        let evicted: Vec<u64> = st.evict(1).iter().map(|e| e.token).collect();
        assert_eq!(evicted, [1]);
        assert_eq!(st.streams[&(g.clone(), b.clone())].bytes, 27);
    }

    #[test]
    fn the_most_urgent_streams_go_first() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(5);
        let q = |bytes: usize, since: Instant, n: usize| StreamQueue {
            events: (0..n)
                .map(|_| LogEvent {
                    group: "g".into(),
                    stream: "s".into(),
                    timestamp_ms: 1,
                    message: "m".into(),
                    token: 0,
                })
                .collect(),
            bytes,
            since: Some(since),
            sending: false,
            urgent: false,
        };
        let later = t0 + Duration::from_secs(6);
        let full = q(MAX_BATCH_BYTES, later, 1);
        let overdue = q(10, t0, 1);
        let young_big = q(500_000, later, 1);
        assert!(priority(&full, later, interval) < priority(&overdue, later, interval));
        assert_eq!(priority(&young_big, later, interval), None, "not due unless urgent");
        let urgent = |mut q: StreamQueue| {
            q.urgent = true;
            q
        };
        let (older, younger) = (
            priority(&urgent(q(10, later - Duration::from_secs(1), 1)), later, interval),
            priority(&urgent(young_big), later, interval),
        );
        assert!(
            older.is_some() && older < younger,
            "under pressure the longest waiting first"
        );
        assert!(priority(&overdue, later, interval) < older);
        let mut sending = urgent(q(MAX_BATCH_BYTES, t0, 1));
        sending.sending = true;
        assert_eq!(priority(&sending, later, interval), None);
        assert_eq!(priority(&urgent(StreamQueue::default()), later, interval), None);
    }
}
