//! The logs lane of the delivery layer: every event handed to an output gets exactly one
//! outcome through `Acknowledge` (what the log pipeline commits file offsets on), producers wait
//! while the output holds its capacity, and a stopped output hands unsent events back instead of
//! settling them. Against moto's CloudWatch Logs and the local outputs.

#![allow(clippy::float_cmp, reason = "the counters compared are whole numbers, exact in f64")]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kinsight::config::OutputKind;
use kinsight::ship::cloudwatch::Backoff;
use kinsight::ship::cloudwatch_logs::{Lane, Shipper, ShipperOptions, logs_client};
use kinsight::ship::{Acknowledge, LogEvent, Outcome, Rejection, build_local};
use kinsight::telemetry::{Name, Telemetry};
use serde_json::json;
use support::{Chaos, Moto, test_sdk_config};
use tokio::time::Instant;

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

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

fn event(group: &str, stream: &str, ts: i64, token: u64) -> LogEvent {
    LogEvent {
        group: group.into(),
        stream: stream.into(),
        timestamp_ms: ts,
        message: format!("{{\"log\":\"line {token}\"}}").into(),
        token,
    }
}

fn options(capacity: usize) -> ShipperOptions {
    ShipperOptions {
        lane: Lane::Logs,
        emf_header: false,
        retention_days: None,
        group_rules: std::sync::Arc::from([]),
        create_groups: true,
        flush_interval: Duration::from_millis(100),
        capacity,
        concurrency: kinsight::ship::cloudwatch_logs::DEFAULT_PUT_CONCURRENCY,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    }
}

fn logs_lane(endpoint: &str, capacity: usize, t: &Telemetry, ack: Arc<Recorder>) -> Shipper {
    let client = logs_client(&test_sdk_config(endpoint), None);
    let (shipper, sender) = Shipper::new(client, options(capacity), t.clone(), Some(ack));
    tokio::spawn(sender);
    shipper
}

#[tokio::test(flavor = "multi_thread")]
async fn every_event_gets_one_outcome_and_accepted_ones_are_stored_in_order() {
    let Some(moto) = Moto::start() else { return };
    let t = Telemetry::new();
    let ack = Arc::new(Recorder::default());
    let lane = logs_lane(&moto.endpoint, 16 << 20, &t, ack.clone());
    let group = "/aws/containerinsights/acks/application";
    let now = now_ms();
    let day = 24 * 3_600_000;
    // Two streams interleaved, out of time order, plus one event too old to send.
    let events = vec![
        event(group, "a", now - 3, 1),
        event(group, "b", now - 2, 2),
        event(group, "a", now - 5, 3),
        event(group, "a", now - 15 * day, 4),
        event(group, "b", now - 1, 5),
    ];
    lane.enqueue_waiting(events).await.unwrap();
    assert!(lane.flush(Instant::now() + Duration::from_mins(1)).await);

    let outcomes = ack.outcomes();
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    for token in [1, 2, 3, 5] {
        assert_eq!(outcomes[&token], Outcome::Accepted, "token {token}");
    }
    assert_eq!(outcomes[&4], Outcome::Rejected(Rejection::TooOld));
    assert_eq!(lane.held_bytes(), 0, "settled events free the budget");
    let (status, body) = moto.logs_call(
        "GetLogEvents",
        &json!({"logGroupName": group, "logStreamName": "a", "startFromHead": true}),
    );
    assert_eq!(status, 200, "{body}");
    let got: Vec<&str> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        ["{\"log\":\"line 3\"}", "{\"log\":\"line 1\"}"],
        "stream a, in time order"
    );
    assert_eq!(
        t.get(
            Name::LogEventsSettled,
            &[("group", "application"), ("outcome", "accepted")]
        ),
        4.0
    );
    assert_eq!(
        t.get(
            Name::LogEventsSettled,
            &[("group", "application"), ("outcome", "rejected_too_old")]
        ),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_producer_waits_while_the_capacity_is_held_and_a_stop_hands_events_back() {
    // Nothing listens on this port: every request fails and is retried, so nothing settles.
    let port = support::free_port();
    let t = Telemetry::new();
    let ack = Arc::new(Recorder::default());
    let lane = Arc::new(logs_lane(&format!("http://127.0.0.1:{port}"), 200, &t, ack.clone()));
    let group = "/aws/containerinsights/bp/application";
    let now = now_ms();
    // 42 bytes each with the 26 of overhead: the first batch (210) is over the capacity (200),
    // and goes in only because nothing else is held.
    lane.enqueue_waiting((1..=5).map(|i| event(group, "s", now, i)).collect())
        .await
        .unwrap();
    let waiting = {
        let lane = lane.clone();
        tokio::spawn(async move { lane.enqueue_waiting(vec![event(group, "s", now, 6)]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !waiting.is_finished(),
        "the producer must wait while the capacity is held"
    );

    let left = lane.drain(Instant::now() + Duration::from_millis(200)).await;
    let back = waiting.await.unwrap().expect_err("the waiting batch comes back unsent");
    assert_eq!(back.len(), 1);
    let mut tokens: Vec<u64> = left.logs.iter().map(|e| e.token).collect();
    tokens.sort_unstable();
    assert_eq!(tokens, [1, 2, 3, 4, 5], "unsent events are handed back, not dropped");
    assert_eq!(left.dropped, 0);
    assert!(
        ack.outcomes().is_empty(),
        "unsent log events get no outcome: their file offsets must not move"
    );
}

#[tokio::test]
async fn local_outputs_acknowledge_log_events_once_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let t = Telemetry::new();
    let ack = Arc::new(Recorder::default());
    let out = build_local(&OutputKind::Dir(out_dir.clone()), &t, Some(ack.clone())).unwrap();
    let events = vec![
        event("/g", "s", 1_764_300_000_000, 7),
        event("/g", "s", 1_764_300_000_001, 8),
    ];
    let emptied = out.send_logs(events).await.unwrap();
    assert!(
        emptied.is_empty() && emptied.capacity() >= 2,
        "the vector comes back for reuse"
    );
    assert_eq!(
        ack.outcomes().into_iter().collect::<Vec<_>>(),
        [(7, Outcome::Accepted), (8, Outcome::Accepted)]
    );
    let text = std::fs::read_to_string(out_dir.join("logs.jsonl")).unwrap();
    assert_eq!(
        text.lines().next().unwrap(),
        r#"{"kind":"log","log_group":"/g","log_stream":"s","timestamp":1764300000000,"message":"{\"log\":\"line 7\"}"}"#
    );
}

/// What a reload that replaces the log pipeline during an outage asks of the output: every event
/// it holds, queued or being retried, is given up without an outcome (its file offset stays, so
/// the new pipeline reads it again), its budget is freed, and the lane goes on with what comes
/// after: the withdrawn events are never sent, even once CloudWatch Logs is back.
#[tokio::test(flavor = "multi_thread")]
async fn withdrawn_events_are_neither_sent_nor_settled_and_the_lane_goes_on() {
    let Some(moto) = Moto::start() else { return };
    let chaos = Chaos::start(moto.addr());
    chaos.throttle(100);
    let t = Telemetry::new();
    let ack = Arc::new(Recorder::default());
    let lane = logs_lane(&chaos.url(), 1 << 20, &t, ack.clone());
    let group = "/aws/containerinsights/withdraw/application";
    let now = now_ms();
    let held: Vec<LogEvent> = (1..=5)
        .map(|i| event(group, "a", now, i))
        .chain((6..=8).map(|i| event(group, "b", now, i)))
        .collect();
    lane.enqueue_waiting(held).await.unwrap();
    // Both streams are being retried: each has been throttled twice.
    let deadline = Instant::now() + Duration::from_secs(30);
    while chaos.counts().1 < 4 {
        assert!(Instant::now() < deadline, "no request reached the proxy");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(lane.withdraw().await, 8);
    assert_eq!(lane.held_bytes(), 0, "the withdrawn events' budget is free");
    chaos.throttle(0);
    lane.enqueue_waiting(vec![event(group, "a", now, 9)]).await.unwrap();
    assert!(lane.flush(Instant::now() + Duration::from_secs(30)).await);
    assert_eq!(
        ack.outcomes().into_iter().collect::<Vec<_>>(),
        [(9, Outcome::Accepted)],
        "withdrawn events get no outcome"
    );
    let (_, a) = moto.logs_call(
        "GetLogEvents",
        &json!({"logGroupName": group, "logStreamName": "a", "startFromHead": true}),
    );
    let got: Vec<&str> = a["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(got, ["{\"log\":\"line 9\"}"]);
    let (status, b) = moto.logs_call(
        "GetLogEvents",
        &json!({"logGroupName": group, "logStreamName": "b", "startFromHead": true}),
    );
    assert_ne!(status, 200, "stream b was never written: {b}");
}
