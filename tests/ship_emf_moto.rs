//! EMF performance events through the performance lane's `Shipper` to moto's CloudWatch Logs:
//! lazy group/stream creation with retention, the exact messages in chronological order, the
//! `x-amzn-logs-format: json/emf` header in mode `emf` only, and batches split at
//! 10,000 events / 1 MiB. moto does not enforce those limits, so the test reads moto's recording
//! of the requests.

#![allow(clippy::float_cmp, reason = "the counters compared are whole numbers, exact in f64")]

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use kinsight::ship::LogEvent;
use kinsight::ship::cloudwatch::Backoff;
use kinsight::ship::cloudwatch_logs::{Lane, MAX_BATCH_BYTES, Shipper, ShipperOptions, logs_client};
use kinsight::telemetry::{Name, Telemetry};
use serde_json::{Value, json};
use support::{Moto, test_sdk_config};
use tokio::time::Instant;

const FLUSH: Duration = Duration::from_mins(1);

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// moto with request recording into a file of the test's own.
fn moto_recording() -> Option<(Moto, tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("rec.jsonl");
    let moto = Moto::start_with(&[
        ("MOTO_ENABLE_RECORDING", "True"),
        ("MOTO_RECORDER_FILEPATH", rec.to_str().unwrap()),
    ])?;
    Some((moto, dir, rec))
}

fn options(emf_header: bool) -> ShipperOptions {
    ShipperOptions {
        lane: Lane::Performance,
        emf_header,
        retention_days: Some(7),
        group_rules: std::sync::Arc::from([]),
        create_groups: true,
        flush_interval: Duration::from_millis(200),
        capacity: 100_000,
        concurrency: kinsight::ship::cloudwatch_logs::DEFAULT_PUT_CONCURRENCY,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    }
}

/// A performance-lane shipper to moto, its sender running.
fn shipper(endpoint: &str, emf_header: bool, t: &Telemetry) -> Shipper {
    let client = logs_client(&test_sdk_config(endpoint), None);
    let (shipper, sender) = Shipper::new(client, options(emf_header), t.clone(), None);
    tokio::spawn(sender);
    shipper
}

/// One recorded request: the `X-Amz-Target` action, headers (lower-case names) and JSON body.
#[derive(Debug)]
struct Recorded {
    action: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

fn recording(path: &Path) -> Vec<Recorded> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    // moto's recorder appends each entry with two writes (the JSON, then "\n") from its request
    // threads, so with requests in flight at once an entry can follow another before that one's
    // newline: read the file as a stream of JSON values, not as lines.
    serde_json::Deserializer::from_str(&text)
        .into_iter::<Value>()
        .map(|v| {
            let v = v.expect("the recording is a sequence of JSON objects");
            let headers: Vec<(String, String)> = v["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let raw = v["body"].as_str().unwrap_or_default();
            let bytes = if v["body_encoded"].as_bool() == Some(true) {
                base64_decode(raw)
            } else {
                raw.as_bytes().to_vec()
            };
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            let action = headers
                .iter()
                .find(|(k, _)| k == "x-amz-target")
                .map(|(_, v)| v.trim_start_matches("Logs_20140328.").to_string())
                .unwrap_or_default();
            Recorded { action, headers, body }
        })
        .collect()
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => u32::from(c - b'A'),
        b'a'..=b'z' => u32::from(c - b'a') + 26,
        b'0'..=b'9' => u32::from(c - b'0') + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0,
    };
    let bytes: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().take_while(|c| **c != b'=').count();
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= if i < n { val(*c) } else { 0 } << (18 - 6 * i);
        }
        let b = acc.to_be_bytes();
        out.extend(&b[1..n.max(1)]);
    }
    out
}

fn event(group: &str, stream: &str, ts: i64, message: String) -> LogEvent {
    LogEvent {
        group: group.into(),
        stream: stream.into(),
        timestamp_ms: ts,
        message: message.into(),
        token: 0,
    }
}

fn get_log_events(moto: &Moto, group: &str, stream: &str) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true, "limit": 10000});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let (status, body) = moto.logs_call("GetLogEvents", &req);
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().unwrap();
        if events.is_empty() {
            return out;
        }
        out.extend(events.iter().map(|e| {
            (
                e["timestamp"].as_i64().unwrap(),
                e["message"].as_str().unwrap().to_string(),
            )
        }));
        let next = body["nextForwardToken"].as_str().map(str::to_string);
        if next == token {
            return out;
        }
        token = next;
    }
}

#[tokio::test]
async fn emf_events_reach_lazily_created_group_and_stream_in_order_with_the_header() {
    let Some((moto, _dir, rec)) = moto_recording() else {
        return;
    };
    let t = Telemetry::new();
    let out = shipper(&moto.endpoint, true, &t);
    let group = "/aws/containerinsights/ks-emf/performance";
    let now = now_ms();
    // handed over out of order: sent sorted by timestamp
    let events: Vec<LogEvent> = [3, 1, 2]
        .iter()
        .map(|i| {
            let msg = json!({"Type": "Node", "ClusterName": "ks-emf", "NodeName": "node-1", "node_cpu_limit": 4000 + i,
                              "Version": "0", "Timestamp": (now - 3000 + i * 1000).to_string()});
            event(group, "node-1", now - 3000 + i * 1000, msg.to_string())
        })
        .collect();
    out.enqueue_dropping(events.clone());
    assert!(out.flush(Instant::now() + FLUSH).await);
    let calls: Vec<Recorded> = recording(&rec).into_iter().filter(|c| !c.action.is_empty()).collect();

    let got = get_log_events(&moto, group, "node-1");
    let mut want: Vec<(i64, String)> = events.iter().map(|e| (e.timestamp_ms, e.message.text())).collect();
    want.sort_by_key(|(ts, _)| *ts);
    assert_eq!(got, want, "the exact messages, in chronological order");

    let (_, groups) = moto.logs_call("DescribeLogGroups", &json!({"logGroupNamePrefix": group}));
    assert_eq!(groups["logGroups"][0]["retentionInDays"], 7, "{groups}");

    let actions: Vec<&str> = calls.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "PutLogEvents",
            "CreateLogStream",
            "CreateLogGroup",
            "PutRetentionPolicy",
            "CreateLogStream",
            "PutLogEvents"
        ],
        "creation happens only on ResourceNotFoundException"
    );
    for c in calls.iter().filter(|c| c.action == "PutLogEvents") {
        assert_eq!(
            c.header("x-amzn-logs-format"),
            Some("json/emf"),
            "mode emf sends the EMF header"
        );
    }
    assert_eq!(
        t.get(Name::ItemsWritten, &[("kind", "emf"), ("output", "cloudwatch")]),
        3.0
    );
    // Billed as CloudWatch Logs bills ingestion: the UTF-8 bytes of each message plus 26, summed
    // by hand from what moto stored.
    let billed: usize = got.iter().map(|(_, m)| m.len() + 26).sum();
    assert_eq!(t.get(Name::BillableEmfBytes, &[]), billed as f64);

    // the stream exists now: the next flush is one PutLogEvents, nothing created
    out.enqueue_dropping(vec![event(group, "node-1", now, "{\"Type\":\"Node\"}".into())]);
    assert!(out.flush(Instant::now() + FLUSH).await);
    let later: Vec<String> = recording(&rec).into_iter().map(|c| c.action).collect();
    assert_eq!(later.last().map(String::as_str), Some("PutLogEvents"));
    assert_eq!(later.iter().filter(|a| a.starts_with("Create")).count(), 3);
}

#[tokio::test]
async fn mode_both_sends_no_emf_header() {
    let Some((moto, _dir, rec)) = moto_recording() else {
        return;
    };
    let t = Telemetry::new();
    let out = shipper(&moto.endpoint, false, &t);
    let group = "/aws/containerinsights/ks-both/performance";
    out.enqueue_dropping(vec![event(group, "node-1", now_ms(), "{\"Type\":\"Pod\"}".into())]);
    assert!(out.flush(Instant::now() + FLUSH).await);
    let puts: Vec<Recorded> = recording(&rec)
        .into_iter()
        .filter(|c| c.action == "PutLogEvents")
        .collect();
    assert_eq!(puts.len(), 2, "not found, then sent");
    for p in &puts {
        assert_eq!(
            p.header("x-amzn-logs-format"),
            None,
            "mode both leaves out the EMF header"
        );
    }
    assert_eq!(get_log_events(&moto, group, "node-1").len(), 1);
}

#[tokio::test]
async fn batches_split_at_10000_events_and_1_mib_and_events_outside_the_window_are_dropped() {
    let Some((moto, _dir, rec)) = moto_recording() else {
        return;
    };
    let t = Telemetry::new();
    let out = shipper(&moto.endpoint, true, &t);
    let group = "/aws/containerinsights/ks-batch/performance";
    let now = now_ms();
    // 25,000 small events on one stream; 1,100 events of 1,000 bytes on another
    let small: Vec<LogEvent> = (0..25_000)
        .map(|i| {
            event(
                group,
                "small",
                now - 60_000 + i64::from(i) / 1000,
                format!("{{\"i\":{i}}}"),
            )
        })
        .collect();
    let big: Vec<LogEvent> = (0..1100)
        .map(|i| event(group, "big", now - 1000 + i, "x".repeat(1000)))
        .collect();
    let mut stale = vec![
        event(group, "small", now - 15 * 86_400_000, "{\"old\":1}".into()),
        event(group, "small", now + 3 * 3_600_000, "{\"new\":1}".into()),
    ];
    let mut all = small.clone();
    all.append(&mut stale);
    out.enqueue_dropping(all.clone());
    out.enqueue_dropping(big.clone());
    assert!(out.flush(Instant::now() + FLUSH).await);

    let puts: Vec<Recorded> = recording(&rec)
        .into_iter()
        .filter(|c| c.action == "PutLogEvents" && c.body["logEvents"].is_array())
        .collect();
    let mut per_stream: Vec<(String, usize, usize)> = Vec::new();
    for p in &puts {
        let evs = p.body["logEvents"].as_array().unwrap();
        let bytes: usize = evs.iter().map(|e| e["message"].as_str().unwrap().len() + 26).sum();
        assert!(bytes <= MAX_BATCH_BYTES, "{bytes}");
        assert!(evs.len() <= 10_000);
        let ts: Vec<i64> = evs.iter().map(|e| e["timestamp"].as_i64().unwrap()).collect();
        assert!(ts.windows(2).all(|w| w[0] <= w[1]), "chronological");
        per_stream.push((p.body["logStreamName"].as_str().unwrap().to_string(), evs.len(), bytes));
    }
    // The first request of each stream met ResourceNotFoundException and was sent again.
    let sizes = |s: &str| -> Vec<usize> { per_stream.iter().filter(|p| p.0 == s).map(|p| p.1).collect() };
    assert_eq!(sizes("small"), [10_000, 10_000, 10_000, 5_000]);
    assert_eq!(
        sizes("big"),
        [1022, 1022, 78],
        "1,026 bytes per event: 1,022 fit in 1,048,576"
    );
    assert_eq!(get_log_events(&moto, group, "small").len(), 25_000);
    assert_eq!(get_log_events(&moto, group, "big").len(), 1100);
    assert_eq!(t.get(Name::EmfEventsDropped, &[("reason", "too_old")]), 1.0);
    assert_eq!(t.get(Name::EmfEventsDropped, &[("reason", "too_new")]), 1.0);
    assert_eq!(
        t.get(Name::ItemsWritten, &[("kind", "emf"), ("output", "cloudwatch")]),
        26_100.0
    );
}
