//! The CloudWatch Logs `Shipper` (both lanes) against the strict local endpoint
//! (`tests/support/cloudwatch_logs.rs`), which enforces the `PutLogEvents` rules moto does not:
//! 10,000 events and 1,048,576 bytes (+26 per event) per request, chronological order, a 24-hour
//! span, the 14-day / 2-hour window judged by the server's own clock with single events rejected
//! through `rejectedLogEventsInfo`. Also lazy group and stream creation with retention, groups
//! the shipper may not create, retries on faults, and the split of a refused request. The first
//! tests pin the endpoint itself with the real SDK client.

#![allow(clippy::float_cmp, reason = "the counters compared are whole numbers, exact in f64")]

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata as _;
use aws_sdk_cloudwatchlogs::operation::put_log_events::PutLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use bytes::BytesMut;
use kinsight::ship::cloudwatch::Backoff;
use kinsight::ship::cloudwatch_logs::{Lane, Shipper, ShipperOptions, logs_client};
use kinsight::ship::{Acknowledge, DropReason, LogEvent, Message, Outcome, Rejection};
use kinsight::telemetry::{Name, Telemetry};
use support::{
    LOGS_MAX_BATCH_BYTES, LOGS_MAX_EVENTS, LOGS_MAX_MESSAGE_BYTES, LogsFault, LogsRequest, RejectedInfo, StrictLogs,
    test_sdk_config,
};
use tokio::time::Instant;

const FLUSH: Duration = Duration::from_mins(1);
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const PUT: &str = "PutLogEvents";
const CREATE_GROUP: &str = "CreateLogGroup";
const CREATE_STREAM: &str = "CreateLogStream";
const RETENTION: &str = "PutRetentionPolicy";

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Records every outcome by token, and fails the test on a second outcome for one token.
#[derive(Debug, Default)]
struct Recorder(Mutex<BTreeMap<u64, Outcome>>);

impl Acknowledge for Recorder {
    fn settled(&self, tokens: &[u64], outcome: Outcome) {
        let mut m = self.0.lock().unwrap();
        for t in tokens {
            assert!(m.insert(*t, outcome).is_none(), "token {t} settled twice");
        }
    }
}

impl Recorder {
    fn outcomes(&self) -> BTreeMap<u64, Outcome> {
        self.0.lock().unwrap().clone()
    }
}

fn event(group: &str, stream: &str, ts: i64, token: u64, message: String) -> LogEvent {
    LogEvent {
        group: group.into(),
        stream: stream.into(),
        timestamp_ms: ts,
        message: message.into(),
        token,
    }
}

/// A message of exactly `bytes` UTF-8 bytes (at least 8) that starts with `token`. The filler is
/// 1-, 2- or 4-byte characters depending on the token, so that a size counted in characters
/// instead of bytes shows.
fn sized_message(token: u64, bytes: usize) -> String {
    let mut m = format!("{token:08}");
    let fill = ['x', 'é', '😀'][usize::try_from(token % 3).unwrap()];
    while m.len() + fill.len_utf8() <= bytes {
        m.push(fill);
    }
    while m.len() < bytes {
        m.push('.');
    }
    assert_eq!(m.len(), bytes);
    m
}

fn options(lane: Lane) -> ShipperOptions {
    ShipperOptions {
        lane,
        emf_header: lane == Lane::Performance,
        retention_days: None,
        group_rules: std::sync::Arc::from([]),
        create_groups: true,
        flush_interval: Duration::from_millis(100),
        capacity: match lane {
            Lane::Logs => 64 << 20,
            Lane::Performance => 100_000,
        },
        concurrency: kinsight::ship::cloudwatch_logs::DEFAULT_PUT_CONCURRENCY,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    }
}

/// A strict endpoint and one running shipper pointed at it.
struct Rig {
    server: StrictLogs,
    shipper: Shipper,
    /// Hears the logs lane; stays empty for the performance lane.
    ack: Arc<Recorder>,
    lane: Lane,
    t: Telemetry,
}

impl Rig {
    fn start(lane: Lane) -> Rig {
        Rig::with(options(lane))
    }

    fn with(opts: ShipperOptions) -> Rig {
        let server = StrictLogs::start();
        let t = Telemetry::new();
        let ack = Arc::new(Recorder::default());
        let client = logs_client(&test_sdk_config(&server.url()), None);
        let lane = opts.lane;
        let listener: Option<Arc<dyn Acknowledge>> = match lane {
            Lane::Logs => Some(ack.clone()),
            Lane::Performance => None,
        };
        let (shipper, sender) = Shipper::new(client, opts, t.clone(), listener);
        tokio::spawn(sender);
        Rig {
            server,
            shipper,
            ack,
            lane,
            t,
        }
    }

    /// Hands `events` over in one call (so one flush round takes them all).
    async fn ship(&self, events: Vec<LogEvent>) {
        match self.lane {
            Lane::Logs => {
                let emptied = self.shipper.enqueue_waiting(events).await.expect("the shipper runs");
                assert!(emptied.is_empty(), "the shipper hands the vector back emptied");
            }
            Lane::Performance => self.shipper.enqueue_dropping(events),
        }
    }

    /// Flushes and requires that everything settled.
    async fn settle(&self) {
        let settled = self.shipper.flush(Instant::now() + FLUSH).await;
        assert!(
            settled,
            "not settled within {FLUSH:?}; requests: {}",
            summary(&self.server.requests())
        );
    }

    fn messages(&self, group: &str, stream: &str) -> Vec<String> {
        self.server
            .events(group, stream)
            .into_iter()
            .map(|e| e.message)
            .collect()
    }

    /// The `PutLogEvents` requests of `stream` the endpoint accepted.
    fn accepted_puts(&self, stream: &str) -> Vec<LogsRequest> {
        self.server
            .requests_of(PUT)
            .into_iter()
            .filter(|r| r.status == 200 && r.stream.as_deref() == Some(stream))
            .collect()
    }

    fn counter(&self, name: Name, labels: &[(&'static str, &'static str)]) -> f64 {
        self.t.get(name, labels)
    }
}

/// One line per request, without the messages (they can be megabytes).
fn summary(requests: &[LogsRequest]) -> String {
    requests.iter().fold(String::new(), |mut out, r| {
        let _ = write!(
            out,
            "\n  {} {}/{} events={} bytes={} signature_ok={:?} -> {} {}",
            r.action,
            r.group.as_deref().unwrap_or("-"),
            r.stream.as_deref().unwrap_or("-"),
            r.events,
            r.bytes,
            r.signature_ok,
            r.status,
            r.error.as_deref().unwrap_or("")
        );
        out
    })
}

/// The messages of `stream` in the order `PutLogEvents` must carry them: by timestamp, equal
/// timestamps in the order given.
fn in_time_order(events: &[LogEvent], stream: &str) -> Vec<String> {
    let mut v: Vec<&LogEvent> = events.iter().filter(|e| &*e.stream == stream).collect();
    v.sort_by_key(|e| e.timestamp_ms);
    v.into_iter().map(|e| e.message.text()).collect()
}

/// Every `PutLogEvents` request kept the limits, and none was refused for anything but a missing
/// stream (which the shipper then creates).
fn assert_within_limits(server: &StrictLogs) {
    let puts = server.requests_of(PUT);
    for r in &puts {
        assert!(r.events <= LOGS_MAX_EVENTS, "{}", summary(std::slice::from_ref(r)));
        assert!(r.bytes <= LOGS_MAX_BATCH_BYTES, "{}", summary(std::slice::from_ref(r)));
        assert!(
            r.span_ms().is_some_and(|s| s <= DAY),
            "{}",
            summary(std::slice::from_ref(r))
        );
        assert!(
            r.status == 200 || r.error.as_deref() == Some("ResourceNotFoundException"),
            "refused: {} {:?}",
            summary(std::slice::from_ref(r)),
            r.message
        );
    }
}

/// Waits (blocking this worker, handed off to another) for a condition the shipper makes true.
fn wait_for(what: &str, cond: impl FnMut() -> bool) {
    let ok =
        tokio::task::block_in_place(|| support::wait_until(Duration::from_secs(30), Duration::from_millis(5), cond));
    assert!(ok, "timed out waiting for {what}");
}

// --- The endpoint itself, through the real SDK client ---------------------------------------

fn input(ts: i64, message: &str) -> InputLogEvent {
    InputLogEvent::builder().timestamp(ts).message(message).build().unwrap()
}

/// One `PutLogEvents` call; an error as its code (empty without one).
async fn put(
    client: &aws_sdk_cloudwatchlogs::Client,
    group: &str,
    stream: &str,
    events: Vec<InputLogEvent>,
) -> Result<PutLogEventsOutput, String> {
    client
        .put_log_events()
        .log_group_name(group)
        .log_stream_name(stream)
        .set_log_events(Some(events))
        .send()
        .await
        .map_err(|e| e.code().unwrap_or("").to_string())
}

#[tokio::test(flavor = "multi_thread")]
#[allow(
    clippy::too_many_lines,
    reason = "one rule after the other, as the API reference lists them"
)]
async fn the_endpoint_enforces_the_put_log_events_rules() {
    let server = StrictLogs::start();
    let client = logs_client(&test_sdk_config(&server.url()), None);
    let (g, s) = ("/aws/containerinsights/pin/application", "s");
    let now = now_ms();
    let invalid = Err("InvalidParameterException".to_string());
    let ok = |r: Result<PutLogEventsOutput, String>| r.map(|_| ());

    // Groups, streams, retention.
    let missing = Err("ResourceNotFoundException".to_string());
    assert_eq!(ok(put(&client, g, s, vec![input(now, "x")]).await), missing);
    let e = client
        .create_log_stream()
        .log_group_name(g)
        .log_stream_name(s)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    client.create_log_group().log_group_name(g).send().await.unwrap();
    let e = client.create_log_group().log_group_name(g).send().await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceAlreadyExistsException"));
    assert_eq!(ok(put(&client, g, s, vec![input(now, "x")]).await), missing);
    client
        .create_log_stream()
        .log_group_name(g)
        .log_stream_name(s)
        .send()
        .await
        .unwrap();
    let e = client
        .create_log_stream()
        .log_group_name(g)
        .log_stream_name(s)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceAlreadyExistsException"));
    let e = client
        .put_retention_policy()
        .log_group_name(g)
        .retention_in_days(10)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        Some("InvalidParameterException"),
        "10 days is not a retention value"
    );
    client
        .put_retention_policy()
        .log_group_name(g)
        .retention_in_days(30)
        .send()
        .await
        .unwrap();
    assert_eq!(server.retention(g), Some(30));

    // Sizes: 10,000 events fit and 10,001 do not; 1,048,576 bytes counting 26 per event fit and
    // one byte more does not; the largest message is 1,048,550 bytes; UTF-8 bytes are counted.
    let many = |n: i64| (0..n).map(|i| input(now - 20_000 + i, "e")).collect::<Vec<_>>();
    assert_eq!(ok(put(&client, g, s, many(10_000)).await), Ok(()));
    assert_eq!(ok(put(&client, g, s, many(10_001)).await), invalid);
    let fill = "k".repeat(1024 - 26);
    let exact: Vec<InputLogEvent> = (0..1024).map(|_| input(now, &fill)).collect();
    assert_eq!(ok(put(&client, g, s, exact).await), Ok(()));
    let mut over: Vec<InputLogEvent> = (0..1023).map(|_| input(now, &fill)).collect();
    over.push(input(now, &format!("{fill}!")));
    assert_eq!(ok(put(&client, g, s, over).await), invalid);
    let largest = "m".repeat(LOGS_MAX_MESSAGE_BYTES);
    assert_eq!(ok(put(&client, g, s, vec![input(now, &largest)]).await), Ok(()));
    let too_large = format!("{largest}m");
    assert_eq!(ok(put(&client, g, s, vec![input(now, &too_large)]).await), invalid);
    let wide = "😀".repeat(LOGS_MAX_MESSAGE_BYTES / 4 + 1);
    assert_eq!(ok(put(&client, g, s, vec![input(now, &wide)]).await), invalid);

    // No events, an empty message, time order, the 24-hour span.
    assert_eq!(ok(put(&client, g, s, Vec::new()).await), invalid);
    assert_eq!(
        ok(put(&client, g, s, vec![input(now, "a"), input(now, "")]).await),
        invalid
    );
    let backwards = vec![input(now, "a"), input(now - 1, "b")];
    assert_eq!(ok(put(&client, g, s, backwards).await), invalid);
    let day = vec![input(now - DAY + MINUTE, "a"), input(now + MINUTE, "b")];
    assert_eq!(ok(put(&client, g, s, day).await), Ok(()), "exactly 24 hours");
    let longer = vec![input(now - DAY, "a"), input(now + 1, "b")];
    assert_eq!(ok(put(&client, g, s, longer).await), invalid);

    // Out of the window: rejected one by one, not an error; the 24 hours count only the events
    // within the window.
    let before = server.stored_count();
    let out = put(
        &client,
        g,
        s,
        vec![
            input(now - 15 * DAY, "old"),
            input(now - 14 * DAY - HOUR, "old"),
            input(now - MINUTE, "ok"),
            input(now, "ok"),
            input(now + 3 * HOUR, "new"),
        ],
    )
    .await
    .unwrap();
    let info = out.rejected_log_events_info().expect("rejectedLogEventsInfo");
    assert_eq!(info.too_old_log_event_end_index(), Some(2));
    assert_eq!(info.too_new_log_event_start_index(), Some(4));
    assert_eq!(info.expired_log_event_end_index(), None);
    assert_eq!(server.stored_count(), before + 2);
    // The window follows the endpoint's clock: two hours behind, `now + 1h` is 3 hours ahead.
    server.set_clock_offset_ms(-2 * HOUR);
    let out = put(&client, g, s, vec![input(now, "ok"), input(now + HOUR, "new")])
        .await
        .unwrap();
    let info = out.rejected_log_events_info().expect("rejectedLogEventsInfo");
    assert_eq!(info.too_new_log_event_start_index(), Some(1));
    server.set_clock_offset_ms(0);
    // Retention: with 1 day, an event of 2 days is expired.
    client
        .put_retention_policy()
        .log_group_name(g)
        .retention_in_days(1)
        .send()
        .await
        .unwrap();
    let out = put(
        &client,
        g,
        s,
        vec![input(now - 2 * DAY, "expired"), input(now - HOUR, "ok")],
    )
    .await
    .unwrap();
    let info = out.rejected_log_events_info().expect("rejectedLogEventsInfo");
    assert_eq!(info.expired_log_event_end_index(), Some(1));
    assert_eq!(info.too_old_log_event_end_index(), None);
    let fine = put(&client, g, s, vec![input(now, "fine")]).await.unwrap();
    assert!(fine.rejected_log_events_info().is_none());
    let stored: Vec<String> = server.events(g, s).into_iter().map(|e| e.message).collect();
    assert_eq!(stored[stored.len() - 5..], ["ok", "ok", "ok", "ok", "fine"]);

    // Faults: the codes the shipper's classifier reads, and a dropped connection.
    server.push_faults(PUT, [LogsFault::Throttle, LogsFault::Unavailable, LogsFault::Close]);
    assert_eq!(
        ok(put(&client, g, s, vec![input(now, "x")]).await),
        Err("ThrottlingException".into())
    );
    assert_eq!(
        ok(put(&client, g, s, vec![input(now, "x")]).await),
        Err("ServiceUnavailableException".into())
    );
    assert_eq!(ok(put(&client, g, s, vec![input(now, "x")]).await), Err(String::new()));
    assert_eq!(ok(put(&client, g, s, vec![input(now, "x")]).await), Ok(()));
    let statuses: Vec<u16> = server.requests_of(PUT).iter().rev().take(4).map(|r| r.status).collect();
    assert_eq!(statuses, [200, 0, 500, 400]);
    assert!(
        server
            .requests()
            .iter()
            .all(|r| r.header("x-amz-target") == Some(&*format!("Logs_20140328.{}", r.action)))
    );
}

// --- Batching to the limits -----------------------------------------------------------------

/// 2,048 events of 998 + 26 = 1,024 bytes make two requests of exactly 1,048,576 bytes; 1,023 of
/// them and one a byte larger are one byte over, so 1,023 + 1; the largest event fills a request
/// alone, and one a byte larger is never sent.
async fn requests_fit_the_byte_limit(lane: Lane) {
    let rig = Rig::start(lane);
    let g = "/aws/containerinsights/bytes/performance";
    let base = now_ms() - 10 * MINUTE;
    let mut events = Vec::new();
    let mut token = 0;
    let mut next = || {
        token += 1;
        token
    };
    for i in 0..2048 {
        let t = next();
        events.push(event(g, "exact", base + i, t, sized_message(t, 998)));
    }
    for i in 0..1024 {
        let t = next();
        let size = if i == 1023 { 999 } else { 998 };
        events.push(event(g, "over", base + i, t, sized_message(t, size)));
    }
    let t = next();
    events.push(event(g, "max", base, t, sized_message(t, LOGS_MAX_MESSAGE_BYTES)));
    let too_large = next();
    events.push(event(
        g,
        "max",
        base + 1,
        too_large,
        sized_message(too_large, LOGS_MAX_MESSAGE_BYTES + 1),
    ));
    rig.ship(events.clone()).await;
    rig.settle().await;

    assert_within_limits(&rig.server);
    let shape = |stream: &str| -> Vec<(usize, usize)> {
        rig.accepted_puts(stream).iter().map(|r| (r.events, r.bytes)).collect()
    };
    assert_eq!(shape("exact"), [(1024, 1_048_576), (1024, 1_048_576)]);
    assert_eq!(shape("over"), [(1023, 1023 * 1024), (1, 999 + 26)]);
    assert_eq!(shape("max"), [(1, 1_048_576)]);
    let sent: Vec<LogEvent> = events.iter().filter(|e| e.token != too_large).cloned().collect();
    for stream in ["exact", "over", "max"] {
        let got = rig.messages(g, stream);
        let want = in_time_order(&sent, stream);
        assert!(
            got == want,
            "stream {stream}: {} stored, {} sent, first difference at {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
    match lane {
        Lane::Logs => {
            assert!(
                rig.server
                    .requests_of(PUT)
                    .iter()
                    .all(|r| r.header("x-amzn-logs-format").is_none()),
                "log records are not EMF"
            );
            let outcomes = rig.ack.outcomes();
            assert_eq!(outcomes.len(), events.len());
            for (token, outcome) in outcomes {
                let want = if token == too_large {
                    Outcome::Dropped(DropReason::TooLarge)
                } else {
                    Outcome::Accepted
                };
                assert_eq!(outcome, want, "token {token}");
            }
            assert_eq!(rig.shipper.held_bytes(), 0);
        }
        Lane::Performance => {
            let written = rig.counter(Name::ItemsWritten, &[("kind", "emf"), ("output", "cloudwatch")]);
            assert_eq!(written, (events.len() - 1) as f64);
            assert_eq!(rig.counter(Name::EmfEventsDropped, &[("reason", "too_large")]), 1.0);
            assert!(
                rig.server
                    .requests_of(PUT)
                    .iter()
                    .all(|r| r.header("x-amzn-logs-format") == Some("json/emf")),
                "the performance lane sends the EMF header"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_lane_requests_fit_the_byte_limit_exactly() {
    requests_fit_the_byte_limit(Lane::Logs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_requests_fit_the_byte_limit_exactly() {
    requests_fit_the_byte_limit(Lane::Performance).await;
}

async fn requests_hold_at_most_10000_events(lane: Lane) {
    let rig = Rig::start(lane);
    let g = "/aws/containerinsights/count/application";
    let base = now_ms() - HOUR;
    let events: Vec<LogEvent> = (0..25_000u64)
        .map(|i| event(g, "s", base + i64::try_from(i).unwrap() / 10, i + 1, format!("e{i}")))
        .collect();
    rig.ship(events.clone()).await;
    rig.settle().await;

    assert_within_limits(&rig.server);
    let counts: Vec<usize> = rig.accepted_puts("s").iter().map(|r| r.events).collect();
    assert_eq!(counts, [10_000, 10_000, 5_000]);
    assert!(
        rig.messages(g, "s") == in_time_order(&events, "s"),
        "every event once, in order"
    );
    if lane == Lane::Logs {
        let outcomes = rig.ack.outcomes();
        assert_eq!(outcomes.len(), 25_000);
        assert!(outcomes.values().all(|o| *o == Outcome::Accepted));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_lane_sends_25000_events_as_10000_10000_5000() {
    requests_hold_at_most_10000_events(Lane::Logs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_sends_25000_events_as_10000_10000_5000() {
    requests_hold_at_most_10000_events(Lane::Performance).await;
}

/// A stream whose request gets no answer holds one request slot, not the other streams: their
/// later events still go out at the flush interval, and the slow stream's own later events wait
/// for its answer (one request at a time per stream keeps its requests in order). Sending in
/// rounds over all streams held every stream behind the slowest answer of the round.
#[tokio::test(flavor = "multi_thread")]
async fn a_slow_answer_holds_back_only_its_own_stream() {
    let rig = Rig::start(Lane::Logs);
    let group = "/aws/containerinsights/slow/application";
    let now = now_ms();
    rig.server.hold("slow");
    rig.ship(vec![
        event(group, "slow", now, 1, "s1".into()),
        event(group, "fast", now, 2, "f1".into()),
    ])
    .await;
    wait_for("the slow stream's request to wait", || rig.server.held_requests() == 1);
    wait_for("the fast stream's first event", || {
        rig.messages(group, "fast") == ["f1"]
    });
    for i in 3..=5 {
        rig.ship(vec![
            event(group, "fast", now + i, i.unsigned_abs(), format!("f{i}")),
            event(group, "slow", now + i, 100 + i.unsigned_abs(), format!("s{i}")),
        ])
        .await;
        wait_for("the fast stream's later event while the slow answer is held", || {
            rig.messages(group, "fast").len() == usize::try_from(i - 1).unwrap()
        });
    }
    assert_eq!(
        rig.server.held_requests(),
        1,
        "the slow stream's next request waits for its answer"
    );
    assert!(rig.messages(group, "slow").is_empty());
    rig.server.release("slow");
    rig.settle().await;
    assert_eq!(rig.messages(group, "fast"), ["f1", "f3", "f4", "f5"]);
    assert_eq!(rig.messages(group, "slow"), ["s1", "s3", "s4", "s5"]);
    let outcomes = rig.ack.outcomes();
    assert_eq!(outcomes.len(), 8);
    assert!(outcomes.values().all(|o| *o == Outcome::Accepted), "{outcomes:?}");
}

/// `put_concurrency` bounds the requests in flight: with every answer held and 2 slots, of 3
/// streams due at once 2 are sent, and the third once an answer frees a slot.
#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_bounded_by_put_concurrency() {
    let rig = Rig::with(ShipperOptions {
        concurrency: 2,
        ..options(Lane::Logs)
    });
    let group = "/aws/containerinsights/slots/application";
    let now = now_ms();
    for s in ["a", "b", "c"] {
        rig.server.hold(s);
    }
    rig.ship(vec![
        event(group, "a", now, 1, "a1".into()),
        event(group, "b", now, 2, "b1".into()),
        event(group, "c", now, 3, "c1".into()),
    ])
    .await;
    wait_for("two requests waiting for their answers", || {
        rig.server.held_requests() == 2
    });
    // Whichever two went first, answering them frees the slots for the third.
    rig.server.release("a");
    rig.server.release("b");
    wait_for("the third stream's request", || {
        rig.server.held_requests() == 1 || !rig.messages(group, "c").is_empty()
    });
    rig.server.release("c");
    rig.settle().await;
    for (s, m) in [("a", "a1"), ("b", "b1"), ("c", "c1")] {
        assert_eq!(rig.messages(group, s), [m]);
    }
    assert_eq!(rig.server.most_held_requests(), 2, "never more than 2 in flight");
}

/// With a flush interval of an hour, only the budget sends early: three quarters of it held
/// sends every stream that holds events then (the small one too, though the pressure is over
/// once the large one is out), and a producer waiting for room sends what is held so that it can
/// go in. Without these a reader would wait the whole interval.
#[tokio::test(flavor = "multi_thread")]
async fn a_buffer_under_pressure_sends_before_the_interval() {
    let rig = Rig::with(ShipperOptions {
        flush_interval: Duration::from_hours(1),
        capacity: 10_000,
        ..options(Lane::Logs)
    });
    let group = "/aws/containerinsights/pressure/application";
    let now = now_ms();
    // 126 bytes held: no pressure, nothing is sent for an hour.
    rig.ship(vec![event(group, "small", now, 1, sized_message(1, 100))])
        .await;
    // 7,652 bytes: three quarters of 10,000 held.
    rig.ship(vec![event(group, "large", now, 2, sized_message(2, 7_500))])
        .await;
    wait_for("both streams sent", || {
        rig.messages(group, "large").len() == 1 && rig.messages(group, "small").len() == 1
    });

    // 5,026 bytes held, then a producer of 6,026 waits: what is held goes, and it goes in.
    rig.ship(vec![event(group, "large", now + 1, 3, sized_message(3, 5_000))])
        .await;
    let waiting = tokio::time::timeout(
        Duration::from_secs(30),
        rig.ship(vec![event(group, "small", now + 1, 4, sized_message(4, 6_000))]),
    )
    .await;
    assert!(waiting.is_ok(), "the waiting producer got in");
    assert_eq!(rig.messages(group, "large").len(), 2, "sent to make room");
    assert_eq!(
        rig.messages(group, "small").len(),
        1,
        "6,026 of 10,000 held: no pressure"
    );
    rig.settle().await;
    assert_eq!(rig.messages(group, "small").len(), 2);
    assert_eq!(rig.ack.outcomes().len(), 4);
}

/// Events every 6 minutes over 30 hours, handed over out of order: the first request spans
/// exactly 24 hours (the limit is "more than 24 hours"), the rest go in a second one.
async fn requests_span_at_most_24_hours(lane: Lane) {
    let rig = Rig::start(lane);
    let g = "/aws/containerinsights/span/application";
    let start = now_ms() - 30 * HOUR - MINUTE;
    let mut events: Vec<LogEvent> = (0..=300u64)
        .map(|i| {
            event(
                g,
                "s",
                start + i64::try_from(i).unwrap() * 6 * MINUTE,
                i + 1,
                format!("at {i}"),
            )
        })
        .collect();
    events.reverse();
    rig.ship(events.clone()).await;
    rig.settle().await;

    assert_within_limits(&rig.server);
    let puts = rig.accepted_puts("s");
    let shape: Vec<(usize, Option<i64>)> = puts.iter().map(|r| (r.events, r.span_ms())).collect();
    assert_eq!(shape, [(241, Some(DAY)), (60, Some(59 * 6 * MINUTE))]);
    assert!(rig.messages(g, "s") == in_time_order(&events, "s"));
    if lane == Lane::Logs {
        assert!(rig.ack.outcomes().values().all(|o| *o == Outcome::Accepted));
        assert_eq!(rig.ack.outcomes().len(), events.len());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_lane_requests_span_at_most_24_hours() {
    requests_span_at_most_24_hours(Lane::Logs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_requests_span_at_most_24_hours() {
    requests_span_at_most_24_hours(Lane::Performance).await;
}

// --- The time window ------------------------------------------------------------------------

/// Events 15 days old and 3 hours ahead, mixed with good ones: settled by the shipper's own check
/// and never sent.
async fn out_of_window_events_are_not_sent(lane: Lane) {
    let rig = Rig::start(lane);
    let g = "/aws/containerinsights/window/application";
    let now = now_ms();
    let mut events = Vec::new();
    let mut kinds = BTreeMap::new();
    for i in 0..30u64 {
        let (ts, kind) = match i % 3 {
            0 => (now - 15 * DAY + i64::try_from(i).unwrap(), "old"),
            1 => (now + 3 * HOUR + i64::try_from(i).unwrap(), "new"),
            _ => (now - MINUTE + i64::try_from(i).unwrap(), "good"),
        };
        kinds.insert(i + 1, kind);
        events.push(event(g, "s", ts, i + 1, format!("{kind} {i}")));
    }
    rig.ship(events.clone()).await;
    rig.settle().await;

    assert_within_limits(&rig.server);
    let sent: usize = rig
        .server
        .requests_of(PUT)
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.events)
        .sum();
    assert_eq!(sent, 10, "only the good events are sent");
    assert!(
        rig.server.requests_of(PUT).iter().all(|r| r.rejected.is_none()),
        "the endpoint had nothing to reject"
    );
    let good: Vec<LogEvent> = events
        .iter()
        .filter(|e| e.message.text().starts_with("good"))
        .cloned()
        .collect();
    assert_eq!(rig.messages(g, "s"), in_time_order(&good, "s"));
    match lane {
        Lane::Logs => {
            let outcomes = rig.ack.outcomes();
            assert_eq!(outcomes.len(), 30);
            for (token, outcome) in outcomes {
                let want = match kinds[&token] {
                    "old" => Outcome::Rejected(Rejection::TooOld),
                    "new" => Outcome::Rejected(Rejection::TooNew),
                    _ => Outcome::Accepted,
                };
                assert_eq!(outcome, want, "token {token}");
            }
        }
        Lane::Performance => {
            assert_eq!(rig.counter(Name::EmfEventsDropped, &[("reason", "too_old")]), 10.0);
            assert_eq!(rig.counter(Name::EmfEventsDropped, &[("reason", "too_new")]), 10.0);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_lane_settles_out_of_window_events_without_sending_them() {
    out_of_window_events_are_not_sent(Lane::Logs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_drops_out_of_window_events_without_sending_them() {
    out_of_window_events_are_not_sent(Lane::Performance).await;
}

/// The outcomes a request's `rejectedLogEventsInfo` implies for the tokens it carried (in the
/// request's order), as the API reference defines the indices.
fn implied(tokens: &[u64], info: Option<RejectedInfo>) -> Vec<(u64, Outcome)> {
    let info = info.unwrap_or_default();
    let n = tokens.len();
    let new_from = info.too_new_start.unwrap_or(n);
    let old_to = info.too_old_end.unwrap_or(0);
    let expired_to = info.expired_end.unwrap_or(0);
    tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let o = if i >= new_from {
                Outcome::Rejected(Rejection::TooNew)
            } else if i < old_to {
                Outcome::Rejected(Rejection::TooOld)
            } else if i < expired_to {
                Outcome::Rejected(Rejection::Expired)
            } else {
                Outcome::Accepted
            };
            (*t, o)
        })
        .collect()
}

/// Checks that the one accepted request of `stream` carried `tokens` (in time order), that the
/// endpoint answered `want`, and that the shipper settled every token as those indices say.
fn assert_settled_as_answered(rig: &Rig, stream: &str, tokens: &[u64], want: RejectedInfo) {
    let puts = rig.accepted_puts(stream);
    assert_eq!(puts.len(), 1, "{}", summary(&puts));
    assert_eq!(puts[0].events, tokens.len());
    assert_eq!(puts[0].rejected, Some(want), "the endpoint's answer for {stream}");
    let outcomes = rig.ack.outcomes();
    let got: Vec<(u64, Outcome)> = tokens.iter().map(|t| (*t, outcomes[t])).collect();
    assert_eq!(got, implied(tokens, Some(want)), "stream {stream}");
}

/// The shipper's window check uses its own clock; the service judges by its clock. With the
/// endpoint's clock an hour ahead, events the shipper finds 13 days 23.5 hours old are too old
/// for the service; an hour behind, events 1.5 hours ahead are too new. The service then rejects
/// them one by one, and the outcomes follow its indices exactly.
#[tokio::test(flavor = "multi_thread")]
async fn events_the_server_rejects_are_settled_by_its_indices() {
    let rig = Rig::start(Lane::Logs);
    let g = "/aws/containerinsights/indices/application";
    let g_ret = "/aws/containerinsights/indices/dataplane";
    rig.server.create_group(g_ret);
    rig.server.set_retention(g_ret, Some(1));
    let now = now_ms();
    let fourteen_days_ago = now - 14 * DAY;

    // Too old by the server's clock (+1 h): 3 events at 14 d − 30 min, then 2 at 14 d − 2 h.
    rig.server.set_clock_offset_ms(HOUR);
    let old = vec![
        event(g, "old", fourteen_days_ago + 30 * MINUTE, 1, "old 1".into()),
        event(g, "old", fourteen_days_ago + 30 * MINUTE + 1, 2, "old 2".into()),
        event(g, "old", fourteen_days_ago + 30 * MINUTE + 2, 3, "old 3".into()),
        event(g, "old", fourteen_days_ago + 2 * HOUR, 4, "ok 4".into()),
        event(g, "old", fourteen_days_ago + 2 * HOUR + 1, 5, "ok 5".into()),
        // In a group with 1 day of retention: too old, then expired (older than the retention but
        // within 14 days), nothing accepted.
        event(g_ret, "both", fourteen_days_ago + 30 * MINUTE, 6, "old 6".into()),
        event(g_ret, "both", fourteen_days_ago + 30 * MINUTE + 1, 7, "old 7".into()),
        event(g_ret, "both", fourteen_days_ago + 3 * HOUR, 8, "expired 8".into()),
    ];
    rig.ship(old).await;
    rig.settle().await;
    assert_settled_as_answered(
        &rig,
        "old",
        &[1, 2, 3, 4, 5],
        RejectedInfo {
            too_old_end: Some(3),
            ..RejectedInfo::default()
        },
    );
    assert_settled_as_answered(
        &rig,
        "both",
        &[6, 7, 8],
        RejectedInfo {
            too_old_end: Some(2),
            expired_end: Some(3),
            ..RejectedInfo::default()
        },
    );
    assert_eq!(rig.messages(g, "old"), ["ok 4", "ok 5"]);
    assert!(rig.messages(g_ret, "both").is_empty());

    // Too new by the server's clock (−1 h): 2 good events, then 3 at now + 1.5 h.
    rig.server.set_clock_offset_ms(-HOUR);
    let new = vec![
        event(g, "new", now + 90 * MINUTE + 2, 13, "new 13".into()),
        event(g, "new", now, 11, "ok 11".into()),
        event(g, "new", now + 90 * MINUTE, 12, "new 12".into()),
        event(g, "new", now - 1, 10, "ok 10".into()),
        event(g, "new", now + 90 * MINUTE + 1, 14, "new 14".into()),
    ];
    rig.ship(new).await;
    rig.settle().await;
    assert_settled_as_answered(
        &rig,
        "new",
        &[10, 11, 12, 13, 14],
        RejectedInfo {
            too_new_start: Some(2),
            ..RejectedInfo::default()
        },
    );
    assert_eq!(rig.messages(g, "new"), ["ok 10", "ok 11"]);

    // Expired by the group's retention (1 day), with the clocks agreeing.
    rig.server.set_clock_offset_ms(0);
    let expired = vec![
        event(g_ret, "expired", now - 30 * HOUR, 21, "expired 21".into()),
        event(g_ret, "expired", now - 29 * HOUR, 22, "expired 22".into()),
        event(g_ret, "expired", now - 10 * HOUR, 23, "ok 23".into()),
    ];
    rig.ship(expired).await;
    rig.settle().await;
    assert_settled_as_answered(
        &rig,
        "expired",
        &[21, 22, 23],
        RejectedInfo {
            expired_end: Some(2),
            ..RejectedInfo::default()
        },
    );
    assert_eq!(rig.messages(g_ret, "expired"), ["ok 23"]);
    assert_eq!(rig.ack.outcomes().len(), 16);
    assert_eq!(rig.shipper.held_bytes(), 0);
    assert_eq!(
        rig.t.get(
            Name::LogEventsSettled,
            &[("group", "application"), ("outcome", "rejected_too_old")]
        ),
        3.0
    );
}

// --- Groups and streams ---------------------------------------------------------------------

fn actions(requests: &[LogsRequest]) -> Vec<(String, u16)> {
    requests.iter().map(|r| (r.action.clone(), r.status)).collect()
}

fn calls(list: &[(&str, u16)]) -> Vec<(String, u16)> {
    list.iter().map(|(a, s)| ((*a).to_string(), *s)).collect()
}

/// A missing stream is created on `ResourceNotFoundException`; its group only when creating the
/// stream says the group is missing, and then the configured retention is set on it. A group
/// that exists keeps its retention, and a second stream in the group the shipper created gets
/// no second `CreateLogGroup`.
#[tokio::test(flavor = "multi_thread")]
async fn groups_and_streams_are_created_lazily_and_retention_only_on_created_groups() {
    let mut opts = options(Lane::Logs);
    opts.retention_days = Some(7);
    let rig = Rig::with(opts);
    let created = "/aws/containerinsights/lazy/application";
    let existing = "/aws/containerinsights/lazy/host";
    rig.server.create_group(existing);
    let now = now_ms();

    rig.ship(vec![event(created, "a", now, 1, "one".into())]).await;
    rig.settle().await;
    assert_eq!(
        actions(&rig.server.requests()),
        calls(&[
            (PUT, 400),
            (CREATE_STREAM, 400),
            (CREATE_GROUP, 200),
            (RETENTION, 200),
            (CREATE_STREAM, 200),
            (PUT, 200),
        ]),
        "{}",
        summary(&rig.server.requests())
    );
    assert_eq!(rig.server.retention(created), Some(7));
    assert_eq!(rig.server.requests_of(RETENTION)[0].retention_days, Some(7));
    let seen = rig.server.requests().len();

    rig.ship(vec![
        event(created, "b", now, 2, "two".into()),
        event(existing, "c", now, 3, "three".into()),
    ])
    .await;
    rig.settle().await;
    // The two streams go out side by side: each one's calls are in order, whatever the
    // interleaving between them.
    let of_stream = |name: &str| -> Vec<LogsRequest> {
        rig.server.requests()[seen..]
            .iter()
            .filter(|r| r.stream.as_deref() == Some(name))
            .cloned()
            .collect()
    };
    for stream in ["b", "c"] {
        assert_eq!(
            actions(&of_stream(stream)),
            calls(&[(PUT, 400), (CREATE_STREAM, 200), (PUT, 200)]),
            "stream {stream}:\n{}",
            summary(&rig.server.requests()[seen..])
        );
    }
    assert!(
        rig.server.requests()[seen..]
            .iter()
            .all(|r| r.action != CREATE_GROUP && r.action != RETENTION),
        "no group created, no retention set: {}",
        summary(&rig.server.requests()[seen..])
    );
    assert_eq!(
        rig.server.retention(existing),
        None,
        "an existing group keeps its retention"
    );
    let seen = rig.server.requests().len();

    rig.ship(vec![event(created, "a", now + 1, 4, "four".into())]).await;
    rig.settle().await;
    assert_eq!(actions(&rig.server.requests()[seen..]), calls(&[(PUT, 200)]));
    assert_eq!(rig.messages(created, "a"), ["one", "four"]);
    assert_eq!(rig.messages(created, "b"), ["two"]);
    assert_eq!(rig.messages(existing, "c"), ["three"]);
    assert!(rig.ack.outcomes().values().all(|o| *o == Outcome::Accepted));
    assert_eq!(rig.ack.outcomes().len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn collect_list_groups_get_their_own_retention_and_class() {
    use kinsight::config::LogGroupClass;
    use kinsight::config::collect::GroupRule;
    let mut opts = options(Lane::Logs);
    opts.retention_days = Some(7);
    opts.group_rules = Arc::from([GroupRule {
        glob: "/app/*/cold".into(),
        retention_days: Some(30),
        class: Some(LogGroupClass::InfrequentAccess),
    }]);
    let rig = Rig::with(opts);
    let (cold, other) = ("/app/i-0abc/cold", "/aws/containerinsights/c/application");
    let now = now_ms();
    rig.ship(vec![
        event(cold, "s", now, 1, "a".into()),
        event(other, "s", now, 2, "b".into()),
    ])
    .await;
    rig.settle().await;
    assert_eq!(rig.server.class(cold).as_deref(), Some("INFREQUENT_ACCESS"));
    assert_eq!(rig.server.retention(cold), Some(30));
    assert_eq!(rig.server.class(other).as_deref(), Some("STANDARD"));
    assert_eq!(rig.server.retention(other), Some(7), "the default retention");
    assert_eq!(rig.messages(cold, "s"), ["a"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn no_retention_is_set_unless_configured_or_when_another_creator_won_the_race() {
    let rig = Rig::start(Lane::Performance);
    let g = "/aws/containerinsights/noretention/performance";
    rig.ship(vec![event(g, "n", now_ms(), 0, "{}".into())]).await;
    rig.settle().await;
    assert!(rig.server.has_group(g));
    assert!(rig.server.requests_of(RETENTION).is_empty());

    // Another node creates the group between our CreateLogStream (group missing) and our
    // CreateLogGroup (already exists): that counts as success, and the retention is the other
    // node's business.
    let mut opts = options(Lane::Logs);
    opts.retention_days = Some(7);
    let rig = Rig::with(opts);
    let g = "/aws/containerinsights/race/application";
    rig.server.create_group(g);
    rig.server.push_faults(
        CREATE_STREAM,
        [LogsFault::Error(
            400,
            "ResourceNotFoundException".into(),
            "The specified log group does not exist.".into(),
        )],
    );
    rig.ship(vec![event(g, "r", now_ms(), 1, "raced".into())]).await;
    rig.settle().await;
    assert_eq!(
        actions(&rig.server.requests()),
        calls(&[
            (PUT, 400),
            (CREATE_STREAM, 400),
            (CREATE_GROUP, 400),
            (CREATE_STREAM, 200),
            (PUT, 200),
        ])
    );
    assert_eq!(rig.server.retention(g), None);
    assert_eq!(rig.ack.outcomes()[&1], Outcome::Accepted);
}

/// `create_groups: false`: the shipper never calls `CreateLogGroup`; the events are held (no
/// outcome, retried with backoff) until someone else creates the group, then delivered.
#[tokio::test(flavor = "multi_thread")]
async fn without_create_groups_events_wait_for_the_group() {
    let mut opts = options(Lane::Logs);
    opts.create_groups = false;
    opts.retention_days = Some(7);
    let rig = Rig::with(opts);
    let g = "/aws/containerinsights/nocreate/application";
    let now = now_ms();
    let events: Vec<LogEvent> = (1..=5)
        .map(|i| event(g, "s", now + i64::try_from(i).unwrap(), i, format!("held {i}")))
        .collect();
    rig.ship(events.clone()).await;

    // Held: the stream creation keeps finding no group, again and again.
    wait_for("three CreateLogStream attempts", || {
        rig.server
            .requests_of(CREATE_STREAM)
            .iter()
            .filter(|r| r.error.as_deref() == Some("ResourceNotFoundException"))
            .count()
            >= 3
    });
    assert!(
        !rig.shipper.flush(Instant::now() + Duration::from_millis(200)).await,
        "nothing can settle while the group is missing"
    );
    assert!(rig.ack.outcomes().is_empty(), "held events get no outcome");
    assert!(rig.server.requests_of(CREATE_GROUP).is_empty());
    assert!(rig.shipper.held_bytes() > 0);

    rig.server.create_group(g);
    rig.settle().await;
    assert_eq!(rig.messages(g, "s"), in_time_order(&events, "s"));
    assert!(rig.ack.outcomes().values().all(|o| *o == Outcome::Accepted));
    assert_eq!(rig.ack.outcomes().len(), 5);
    assert!(rig.server.requests_of(CREATE_GROUP).is_empty());
    assert!(rig.server.requests_of(RETENTION).is_empty());
    assert_eq!(rig.server.retention(g), None);
    assert_eq!(
        rig.server.requests_of(CREATE_STREAM).last().map(|r| r.status),
        Some(200),
        "the shipper created the stream once the group was there"
    );
}

// --- Faults ---------------------------------------------------------------------------------

/// Throttling, 500s and dropped connections on every call the shipper makes: retried, and every
/// event stored exactly once, in order.
async fn faults_are_retried(lane: Lane) {
    let rig = Rig::start(lane);
    let g = "/aws/containerinsights/faults/application";
    rig.server.push_faults(
        PUT,
        [
            LogsFault::Throttle,
            LogsFault::Unavailable,
            LogsFault::Close,
            LogsFault::Throttle,
        ],
    );
    rig.server
        .push_faults(CREATE_STREAM, [LogsFault::Throttle, LogsFault::Close]);
    rig.server.push_faults(CREATE_GROUP, [LogsFault::Unavailable]);
    let now = now_ms();
    let events: Vec<LogEvent> = (0..300u64)
        .map(|i| {
            let stream = ["a", "b", "c"][usize::try_from(i % 3).unwrap()];
            event(
                g,
                stream,
                now - 300 + i64::try_from(i).unwrap(),
                i + 1,
                format!("{stream} {i}"),
            )
        })
        .collect();
    rig.ship(events.clone()).await;
    rig.settle().await;

    let requests = rig.server.requests();
    for (status, code) in [
        (400, "ThrottlingException"),
        (500, "ServiceUnavailableException"),
        (0, "connection closed"),
    ] {
        assert!(
            requests
                .iter()
                .any(|r| r.status == status && r.error.as_deref() == Some(code)),
            "{code} was answered: {}",
            summary(&requests)
        );
    }
    for stream in ["a", "b", "c"] {
        assert_eq!(
            rig.messages(g, stream),
            in_time_order(&events, stream),
            "stream {stream}"
        );
    }
    assert_eq!(rig.server.stored_count(), 300, "nothing stored twice");
    assert!(
        requests.iter().all(|r| r.signature_ok == Some(true)),
        "every attempt signed over its body: {}",
        summary(&requests)
    );
    if lane == Lane::Logs {
        let outcomes = rig.ack.outcomes();
        assert_eq!(outcomes.len(), 300);
        assert!(outcomes.values().all(|o| *o == Outcome::Accepted));
    } else {
        assert_eq!(
            rig.counter(Name::ItemsWritten, &[("kind", "emf"), ("output", "cloudwatch")]),
            300.0
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_lane_retries_throttling_server_errors_and_dropped_connections() {
    faults_are_retried(Lane::Logs).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_retries_throttling_server_errors_and_dropped_connections() {
    faults_are_retried(Lane::Performance).await;
}

// --- A refused request ----------------------------------------------------------------------

/// `InvalidParameterException` on a request: split in two once and both halves sent; a half
/// refused again is dropped as invalid, and a single event is not split.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_request_is_split_once_and_a_half_refused_again_is_dropped() {
    let rig = Rig::start(Lane::Logs);
    let g = "/aws/containerinsights/split/application";
    rig.server.create_group(g);
    let now = now_ms();
    let batch = |stream: &str, first: u64, n: u64| -> Vec<LogEvent> {
        (first..first + n)
            .map(|t| event(g, stream, now + i64::try_from(t).unwrap(), t, format!("{stream} {t}")))
            .collect()
    };
    let put_shape = |stream: &str| -> Vec<(usize, u16)> {
        rig.server
            .requests_of(PUT)
            .iter()
            .filter(|r| r.stream.as_deref() == Some(stream))
            .map(|r| (r.events, r.status))
            .collect()
    };
    let refused = LogsFault::invalid("injected: the request is invalid");
    for s in ["once", "twice", "thrice", "single", "empty"] {
        rig.server.create_stream(g, s);
    }

    // Refused once: both halves go through.
    rig.server.push_faults(PUT, [refused.clone()]);
    rig.ship(batch("once", 100, 10)).await;
    rig.settle().await;
    assert_eq!(put_shape("once"), [(10, 400), (5, 200), (5, 200)]);
    assert_eq!(rig.messages(g, "once"), in_time_order(&batch("once", 100, 10), "once"));

    // Refused twice: the first half is dropped, the second goes through.
    rig.server.push_faults(PUT, [refused.clone(), refused.clone()]);
    rig.ship(batch("twice", 200, 10)).await;
    rig.settle().await;
    assert_eq!(put_shape("twice"), [(10, 400), (5, 400), (5, 200)]);
    assert_eq!(
        rig.messages(g, "twice"),
        in_time_order(&batch("twice", 205, 5), "twice")
    );

    // Refused three times: everything is dropped, after exactly three requests.
    rig.server
        .push_faults(PUT, [refused.clone(), refused.clone(), refused.clone()]);
    rig.ship(batch("thrice", 300, 10)).await;
    rig.settle().await;
    assert_eq!(put_shape("thrice"), [(10, 400), (5, 400), (5, 400)]);

    // A single event is not split.
    rig.server.push_faults(PUT, [refused.clone()]);
    rig.ship(batch("single", 400, 1)).await;
    rig.settle().await;
    assert_eq!(put_shape("single"), [(1, 400)]);

    // An empty message, which the endpoint would refuse with the whole request (no producer
    // should make one): it is dropped alone before sending, and the other nine go in one request.
    let mut real = batch("empty", 500, 10);
    real[2].message = "".into();
    rig.ship(real.clone()).await;
    rig.settle().await;
    assert_eq!(put_shape("empty"), [(9, 200)]);
    let mut kept = real;
    kept.remove(2);
    assert_eq!(rig.messages(g, "empty"), in_time_order(&kept, "empty"));

    let outcomes = rig.ack.outcomes();
    let invalid = Outcome::Dropped(DropReason::Invalid);
    for (token, outcome) in &outcomes {
        let want = match token {
            100..=109 | 205..=209 | 500 | 501 | 503..=509 => Outcome::Accepted,
            _ => invalid,
        };
        assert_eq!(*outcome, want, "token {token}");
    }
    assert_eq!(outcomes.len(), 41);
    assert_eq!(rig.shipper.held_bytes(), 0);
    assert_eq!(
        rig.t.get(
            Name::LogEventsSettled,
            &[("group", "application"), ("outcome", "dropped_invalid")]
        ),
        17.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn performance_lane_drops_an_empty_message_alone() {
    let rig = Rig::start(Lane::Performance);
    let g = "/aws/containerinsights/split/performance";
    let now = now_ms();
    let mut events: Vec<LogEvent> = (0..10u64)
        .map(|i| event(g, "n", now + i64::try_from(i).unwrap(), 0, format!("{{\"i\":{i}}}")))
        .collect();
    events[7].message = "".into();
    rig.ship(events.clone()).await;
    rig.settle().await;
    let mut good = events.clone();
    good.remove(7);
    assert_eq!(rig.messages(g, "n"), in_time_order(&good, "n"));
    assert_eq!(rig.counter(Name::EmfEventsDropped, &[("reason", "rejected")]), 1.0);
    assert_eq!(
        rig.counter(Name::ItemsWritten, &[("kind", "emf"), ("output", "cloudwatch")]),
        9.0
    );
}

// --- Retention calls that fail ------------------------------------------------------------------

/// After a throttled (or any transient) `PutRetentionPolicy`, `create::ensure` returns the error,
/// `Sender::send` backs off and calls `ensure` again; `CreateLogStream` now succeeds (the group
/// exists), so `Created { group: false, .. }` and the retention is never set: the group kinsight
/// created keeps its logs forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_throttled_retention_call_is_retried_until_the_retention_is_set() {
    let mut opts = options(Lane::Logs);
    opts.retention_days = Some(7);
    let rig = Rig::with(opts);
    let g = "/aws/containerinsights/retention/application";
    rig.server.push_faults(RETENTION, [LogsFault::Throttle]);
    rig.ship(vec![event(g, "s", now_ms(), 1, "one".into())]).await;
    rig.settle().await;
    assert_eq!(rig.ack.outcomes()[&1], Outcome::Accepted);
    assert_eq!(
        rig.server.retention(g),
        Some(7),
        "the group kinsight created has no retention: {}",
        summary(&rig.server.requests())
    );
}

/// A denied `PutRetentionPolicy` (or `CreateLogGroup`) is counted as
/// `kinsight_aws_access_denied_total{action="logs:CreateLogStream"}` (`Sender::send` names that
/// action for every `ensure` failure), so the operator is pointed at the wrong permission. (The
/// request's events are also dropped as `AccessDenied` although the group now exists, while the
/// next request is delivered into it without retention.)
#[tokio::test(flavor = "multi_thread")]
async fn a_denied_retention_call_is_counted_under_its_own_action() {
    let mut opts = options(Lane::Logs);
    opts.retention_days = Some(7);
    let rig = Rig::with(opts);
    let g = "/aws/containerinsights/denied/application";
    rig.server.push_faults(
        RETENTION,
        [LogsFault::Error(
            400,
            "AccessDeniedException".into(),
            "not authorized to perform: logs:PutRetentionPolicy".into(),
        )],
    );
    rig.ship(vec![event(g, "s", now_ms(), 1, "one".into())]).await;
    rig.settle().await;
    let denied = |action: &'static str| rig.t.get(Name::AwsAccessDenied, &[("action", action)]);
    assert_eq!(
        (denied("logs:PutRetentionPolicy"), denied("logs:CreateLogStream")),
        (1.0, 0.0),
        "{}",
        summary(&rig.server.requests())
    );
}

// --- Signatures -----------------------------------------------------------------------------

/// The endpoint's `SigV4` check itself (`support::sigv4`): AWS's published `get-vanilla` example
/// verifies, and a request signed by the SDK's signer (which hashes the body itself) verifies
/// until one byte of its body changes.
#[test]
fn the_sigv4_check_accepts_aws_examples_and_refuses_a_changed_body() {
    use aws_credential_types::Credentials;
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    use aws_smithy_runtime_api::client::identity::Identity;
    use support::sigv4::{SignedRequest, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, verify};

    // AWS Signature Version 4 test suite, `get-vanilla` (credentials AKIDEXAMPLE).
    let vanilla = [
        ("host".to_string(), "example.amazonaws.com".to_string()),
        ("x-amz-date".to_string(), "20150830T123600Z".to_string()),
        (
            "authorization".to_string(),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
                .to_string(),
        ),
    ];
    let get = SignedRequest {
        method: "GET",
        path: "/",
        query: "",
        headers: &vanilla,
        body: b"",
    };
    assert_eq!(verify(&get, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"), Ok(()));
    assert!(verify(&get, TEST_SECRET_ACCESS_KEY).is_err(), "another secret");

    let body = br#"{"logGroupName":"g","logStreamName":"s","logEvents":[{"timestamp":1,"message":"x"}]}"#;
    let mut headers = vec![
        ("host".to_string(), "logs.us-east-1.amazonaws.com".to_string()),
        ("content-type".to_string(), "application/x-amz-json-1.1".to_string()),
        ("x-amz-target".to_string(), "Logs_20140328.PutLogEvents".to_string()),
    ];
    let identity = Identity::from(Credentials::new(
        TEST_ACCESS_KEY_ID,
        TEST_SECRET_ACCESS_KEY,
        None,
        None,
        "t",
    ));
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("logs")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "https://logs.us-east-1.amazonaws.com/",
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    headers.extend(
        instructions
            .headers()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
    );
    let post = |body: &[u8]| {
        verify(
            &SignedRequest {
                method: "POST",
                path: "/",
                query: "",
                headers: &headers,
                body,
            },
            TEST_SECRET_ACCESS_KEY,
        )
    };
    assert_eq!(post(body), Ok(()));
    let mut changed = body.to_vec();
    let at = changed.len() - 4;
    changed[at] = b'y';
    assert!(post(&changed).is_err(), "one byte of the body changed");
}

/// Replaces the request body after it was signed, as a body built apart from its hash could.
#[derive(Debug)]
struct ChangeBodyAfterSigning;

impl aws_smithy_runtime_api::client::interceptors::Intercept for ChangeBodyAfterSigning {
    fn name(&self) -> &'static str {
        "ChangeBodyAfterSigning"
    }

    fn modify_before_transmit(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let req = context.request_mut();
        let body = req.body().bytes().ok_or("body not in memory")?;
        let changed = String::from_utf8_lossy(body).replace("\"x\"", "\"y\"");
        req.headers_mut().insert("content-length", changed.len().to_string());
        *req.body_mut() = aws_smithy_types::body::SdkBody::from(changed);
        Ok(())
    }
}

/// Messages framed as the log encoder writes them (`ship::Message::framed`): each after the one
/// before in one buffer per `per_buffer` events, `(timestamp, text)` each.
fn framed_events(group: &str, stream: &str, texts: &[(i64, String)], per_buffer: usize) -> Vec<LogEvent> {
    let mut out = Vec::new();
    for (n, chunk) in texts.chunks(per_buffer).enumerate() {
        let mut buf = BytesMut::new();
        let mut at = Vec::new();
        for (ts, text) in chunk {
            let a = buf.len();
            buf.extend_from_slice(format!(",{{\"timestamp\":{ts},\"message\":\"").as_bytes());
            let start = buf.len();
            let escaped = serde_json::to_string(text).unwrap();
            buf.extend_from_slice(&escaped.as_bytes()[1..escaped.len() - 1]);
            at.push((a, start, buf.len()));
            buf.extend_from_slice(b"\"}");
        }
        let buf = buf.freeze();
        let n32 = |x: usize| u32::try_from(x).unwrap();
        for (i, ((ts, text), (a, start, end))) in chunk.iter().zip(at).enumerate() {
            out.push(LogEvent {
                group: group.into(),
                stream: stream.into(),
                timestamp_ms: *ts,
                message: Message::framed(buf.clone(), n32(a), n32(start), n32(end), text.len()),
                token: (n * per_buffer + i + 1) as u64,
            });
        }
    }
    out
}

/// Runs of framed messages are sent from the encoder's buffers as they are, the body in parts,
/// with its SHA-256 computed over the parts for the signer: the endpoint verifies the signature
/// over the body it received and stores every event once, in order, also where framed runs,
/// a gap in a run and an unframed event meet in one request.
#[tokio::test(flavor = "multi_thread")]
async fn framed_messages_are_sent_in_parts_and_signed_over_the_whole_body() {
    let rig = Rig::start(Lane::Logs);
    let g = "/aws/containerinsights/framed/application";
    let now = now_ms();
    let texts: Vec<(i64, String)> = (0..300i64)
        .map(|i| (now - 1000 + i, format!("{{\"log\":\"q\\\"{i}\\n\",\"é\":\"\\u0001\"}}")))
        .collect();
    let mut events = framed_events(g, "s", &texts, 64);
    // A gap in the first run, and an unframed event among the framed ones.
    let gone = events.remove(10);
    events.insert(100, event(g, "s", now - 1000 + 99, 1000, "plain".into()));
    let mut want: Vec<(i64, String)> = texts.clone();
    want.retain(|(ts, _)| *ts != gone.timestamp_ms);
    want.push((now - 1000 + 99, "plain".into()));
    want.sort_by_key(|(ts, _)| *ts);
    rig.ship(events).await;
    rig.settle().await;
    let requests = rig.server.requests();
    assert!(
        requests.iter().any(|r| r.action == PUT) && requests.iter().all(|r| r.signature_ok == Some(true)),
        "{}",
        summary(&requests)
    );
    let stored: Vec<(i64, String)> = rig
        .server
        .events(g, "s")
        .into_iter()
        .map(|e| (e.timestamp_ms, e.message))
        .collect();
    // Equal timestamps keep their order: "plain" goes after the framed event of its time.
    assert_eq!(stored, want);
}

/// Both lanes' requests, created groups and streams included, carry signatures that verify over
/// the body as received (the shipper swaps its own body into the SDK's request, see
/// `ship::cloudwatch_logs::body`); a body changed after signing is refused as AWS refuses it.
#[tokio::test(flavor = "multi_thread")]
async fn requests_are_signed_over_the_body_sent() {
    for lane in [Lane::Logs, Lane::Performance] {
        let rig = Rig::start(lane);
        let g = "/aws/containerinsights/signed/application";
        let now = now_ms();
        // Escapes, non-ASCII text and two streams: the body is not just the messages.
        let events: Vec<LogEvent> = (0..50u64)
            .map(|i| {
                let stream = if i % 2 == 0 { "a" } else { "b" };
                let message = format!("{{\"log\":\"q\\\"{i}\\n\",\"é\":\"\\u0001\"}}");
                event(g, stream, now - 100 + i64::try_from(i).unwrap(), i + 1, message)
            })
            .collect();
        rig.ship(events).await;
        rig.settle().await;
        let requests = rig.server.requests();
        assert!(requests.iter().any(|r| r.action == PUT), "{}", summary(&requests));
        assert!(
            requests.iter().all(|r| r.signature_ok == Some(true)),
            "{lane:?}: {}",
            summary(&requests)
        );
        assert_eq!(rig.server.stored_count(), 50);
    }

    let server = StrictLogs::start();
    let client = logs_client(&test_sdk_config(&server.url()), None);
    let (g, s) = ("/aws/containerinsights/signed/application", "s");
    client.create_log_group().log_group_name(g).send().await.unwrap();
    client
        .create_log_stream()
        .log_group_name(g)
        .log_stream_name(s)
        .send()
        .await
        .unwrap();
    let e = client
        .put_log_events()
        .log_group_name(g)
        .log_stream_name(s)
        .log_events(input(now_ms(), "x"))
        .customize()
        .interceptor(ChangeBodyAfterSigning)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidSignatureException"));
    let refused = server.requests_of(PUT);
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].signature_ok, Some(false));
    assert_eq!(server.stored_count(), 0);
}
