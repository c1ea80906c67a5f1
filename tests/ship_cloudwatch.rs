//! The `PutMetricData` output against the strict local endpoint (`tests/support/cloudwatch.rs`):
//! batching to the API limits, retries on 5xx and throttling, no datum sent twice, counted drops,
//! the bounded queue, gzip bodies. The first tests pin the endpoint itself with the real SDK
//! client.

#![allow(clippy::float_cmp, reason = "the counters compared are whole numbers, exact in f64")]

mod support;

use std::collections::HashSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::operation::put_metric_data::PutMetricDataError;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use kinsight::metrics::Datum;
use kinsight::metrics::encode::datum::Unit;
use kinsight::ship::cloudwatch::{Backoff, CloudwatchMetrics, client, estimate_bytes};
use kinsight::ship::retry::ErrorClass;
use kinsight::telemetry::{Name, Telemetry};
use support::{Fault, StrictCloudwatch, test_sdk_config};
use tokio::time::Instant;

const FLUSH: Duration = Duration::from_secs(30);

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// `n` distinct datums of one interval; `tag` goes into the `ClusterName` dimension.
fn interval(tag: &str, n: usize) -> Vec<Datum> {
    let ts = now_ms() / 1000 * 1000;
    (0..n)
        .map(|i| Datum {
            metric_name: "pod_cpu_utilization",
            dimensions: vec![
                ("ClusterName", tag.into()),
                ("Namespace", "default".into()),
                ("PodName", format!("pod-{i}").into()),
            ]
            .into(),
            value: i as f64 + 0.25,
            stats: None,
            unit: Unit::Percent,
            timestamp_ms: ts,
        })
        .collect()
}

fn fast() -> Backoff {
    Backoff {
        base: Duration::from_millis(5),
        max: Duration::from_millis(40),
    }
}

fn sink(server: &StrictCloudwatch, queue: usize, t: &Telemetry) -> CloudwatchMetrics {
    let (metrics, sender) =
        CloudwatchMetrics::with_backoff(&test_sdk_config(&server.url()), None, queue, t.clone(), fast());
    tokio::spawn(sender);
    metrics
}

fn dropped(t: &Telemetry, reason: &'static str) -> f64 {
    t.get(Name::MetricsDropped, &[("reason", reason)])
}

/// Every accepted datum once, keyed by (`ClusterName`, `PodName`).
fn accepted_keys(server: &StrictCloudwatch) -> Vec<(String, String)> {
    server
        .accepted()
        .iter()
        .map(|d| (d.dimensions[0].1.clone(), d.dimensions[2].1.clone()))
        .collect()
}

fn assert_no_duplicates(server: &StrictCloudwatch) {
    let keys = accepted_keys(server);
    let unique: HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a datum was accepted twice");
}

fn sdk_datum(name: &str, value: f64) -> MetricDatum {
    MetricDatum::builder()
        .metric_name(name)
        .dimensions(Dimension::builder().name("ClusterName").value("c").build())
        .value(value)
        .unit(StandardUnit::Percent)
        .timestamp(DateTime::from_millis(now_ms()))
        .storage_resolution(60)
        .build()
}

#[tokio::test]
async fn strict_endpoint_decodes_what_the_real_sdk_sends() {
    let server = StrictCloudwatch::start();
    let cw = client(&test_sdk_config(&server.url()), None);
    let ts = now_ms();
    cw.put_metric_data()
        .namespace("ContainerInsights")
        .metric_data(
            MetricDatum::builder()
                .metric_name("node_cpu_limit")
                .dimensions(Dimension::builder().name("ClusterName").value("c1").build())
                .dimensions(Dimension::builder().name("NodeName").value("n1").build())
                .value(4000.0)
                .unit(StandardUnit::None)
                .timestamp(DateTime::from_millis(ts))
                .storage_resolution(60)
                .build(),
        )
        .send()
        .await
        .expect("PutMetricData against the strict endpoint");
    let got = server.accepted();
    assert_eq!(got.len(), 1);
    let d = &got[0];
    assert_eq!(d.namespace, "ContainerInsights");
    assert_eq!(d.metric_name, "node_cpu_limit");
    assert_eq!(
        d.dimensions,
        [("ClusterName".into(), "c1".into()), ("NodeName".into(), "n1".into())]
    );
    assert_eq!(d.value, Some(4000.0));
    assert_eq!(d.unit.as_deref(), Some("None"));
    assert_eq!(d.storage_resolution, Some(60));
    assert_eq!(d.timestamp_ms, Some(ts));
    let r = &server.requests()[0];
    assert_eq!(r.path, support::PUT_METRIC_DATA_PATH);
    assert_eq!(r.header("smithy-protocol"), Some("rpc-v2-cbor"));
    assert_eq!(r.header("content-type"), Some("application/cbor"));
    assert!(!r.gzip, "a small body is not compressed");
}

#[tokio::test]
async fn strict_endpoint_enforces_the_limits_with_the_codes_the_sdk_reports() {
    let server = StrictCloudwatch::start();
    let cw = client(&test_sdk_config(&server.url()), None);
    let put = |data: Vec<MetricDatum>| {
        cw.put_metric_data()
            .namespace("ContainerInsights")
            .set_metric_data(Some(data))
            .send()
    };

    // 1,001 datums: modeled InvalidParameterValueException, code from x-amzn-query-error.
    let err = put((0..1001).map(|i| sdk_datum("m", f64::from(i))).collect())
        .await
        .unwrap_err();
    let se = err.as_service_error().expect("a service error");
    assert!(
        matches!(se, PutMetricDataError::InvalidParameterValueException(_)),
        "{se:?}"
    );
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(se),
        Some("InvalidParameterValue")
    );
    let last = server.requests().last().cloned().unwrap();
    assert!(last.gzip, "1,001 datums are well above 10,240 bytes");
    assert_eq!((last.datums, last.status), (1001, 400));

    // exactly 1,000 pass
    put((0..1000).map(|i| sdk_datum("m", f64::from(i))).collect())
        .await
        .expect("1,000 datums");

    // 31 dimensions
    let mut many = MetricDatum::builder().metric_name("m").value(1.0);
    for i in 0..31 {
        many = many.dimensions(Dimension::builder().name(format!("d{i}")).value("v").build());
    }
    let err = put(vec![many.build()]).await.unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("InvalidParameterValue")
    );

    // NaN, a value beyond 2^360, a timestamp three weeks old, a missing value
    for bad in [
        sdk_datum("m", f64::NAN),
        sdk_datum("m", 1e109),
        MetricDatum::builder()
            .metric_name("m")
            .value(1.0)
            .timestamp(DateTime::from_millis(now_ms() - 21 * 86_400_000))
            .build(),
    ] {
        let err = put(vec![bad]).await.unwrap_err();
        assert_eq!(
            aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
            Some("InvalidParameterValue")
        );
    }
    let err = put(vec![MetricDatum::builder().metric_name("m").build()])
        .await
        .unwrap_err();
    let se = err.as_service_error().expect("a service error");
    assert!(
        matches!(se, PutMetricDataError::MissingRequiredParameterException(_)),
        "{se:?}"
    );

    // Values and Counts of different lengths; Value together with Values
    let err = put(vec![
        MetricDatum::builder()
            .metric_name("m")
            .values(1.0)
            .values(2.0)
            .counts(1.0)
            .build(),
    ])
    .await
    .unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("InvalidParameterValue")
    );
    let err = put(vec![
        MetricDatum::builder().metric_name("m").value(1.0).values(2.0).build(),
    ])
    .await
    .unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("InvalidParameterCombination")
    );
    // A statistic set without its Maximum.
    let partial = aws_sdk_cloudwatch::types::StatisticSet::builder()
        .sample_count(2.0)
        .sum(3.0)
        .minimum(1.0)
        .build();
    let err = put(vec![
        MetricDatum::builder()
            .metric_name("m")
            .statistic_values(partial)
            .build(),
    ])
    .await
    .unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("MissingParameter")
    );
    assert_eq!(server.accepted().len(), 1000, "only the valid request was accepted");
}

#[tokio::test]
async fn the_client_makes_one_attempt_and_faults_reach_the_sender_classified_by_code() {
    let server = StrictCloudwatch::start();
    let cw = client(&test_sdk_config(&server.url()), None);
    // The SDK's own retries are off (`ship::retry`): a 500 comes back after one request, and the
    // sender, not the SDK, decides to retry.
    server.push_faults([Fault::Status(500)]);
    let err = cw
        .put_metric_data()
        .namespace("ContainerInsights")
        .metric_data(sdk_datum("m", 1.0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(server.request_count(), 1, "one attempt, no SDK retry");
    assert_eq!(kinsight::ship::retry::classify(&err).class, ErrorClass::Transient);
    // Throttling: unmodeled, classified by its code.
    server.push_faults([Fault::Throttle]);
    let err = cw
        .put_metric_data()
        .namespace("ContainerInsights")
        .metric_data(sdk_datum("m", 1.0))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(&err),
        Some("Throttling")
    );
    let se = err.as_service_error().expect("a service error");
    assert!(
        !matches!(
            se,
            PutMetricDataError::InvalidParameterValueException(_)
                | PutMetricDataError::InternalServiceFault(_)
                | PutMetricDataError::MissingRequiredParameterException(_)
                | PutMetricDataError::InvalidParameterCombinationException(_)
        ),
        "Throttling is not a modeled PutMetricData error: {se:?}"
    );
    assert_eq!(kinsight::ship::retry::classify(&err).class, ErrorClass::Transient);
    assert_eq!(server.request_count(), 2);
    cw.put_metric_data()
        .namespace("ContainerInsights")
        .metric_data(sdk_datum("m", 1.0))
        .send()
        .await
        .expect("no fault left");
    assert_eq!(server.accepted().len(), 1);
}

#[tokio::test]
async fn splits_2500_datums_into_1000_1000_500_gzipped_and_sends_each_once() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    let sent = interval("c", 2500);
    out.enqueue(sent.clone());
    assert_eq!(out.flush(Instant::now() + FLUSH).await, 0);

    let reqs = server.requests();
    let sizes: Vec<usize> = reqs.iter().map(|r| r.datums).collect();
    assert_eq!(sizes, [1000, 1000, 500]);
    for r in &reqs {
        assert!(
            r.gzip,
            "bodies of 10,240 bytes or more are gzipped by the SDK (request compression left on)"
        );
        assert_eq!(r.header("content-encoding"), Some("gzip"));
        assert!(r.wire_bytes < r.body_bytes, "{} !< {}", r.wire_bytes, r.body_bytes);
    }
    // the batching estimate is an upper bound of the real encoding
    let estimate: usize = sent[..1000].iter().map(estimate_bytes).sum();
    assert!(reqs[0].body_bytes <= estimate, "{} > {estimate}", reqs[0].body_bytes);
    eprintln!(
        "1000 datums: estimate {estimate} B, body {} B, gzip {} B",
        reqs[0].body_bytes, reqs[0].wire_bytes
    );

    let got = server.accepted();
    assert_eq!(got.len(), 2500);
    assert_no_duplicates(&server);
    for (d, a) in sent.iter().zip(&got) {
        assert_eq!(a.metric_name, d.metric_name);
        assert_eq!(a.namespace, "ContainerInsights");
        let dims: Vec<(String, String)> = d
            .dimensions
            .iter()
            .map(|(k, v)| ((*k).to_string(), v.to_string()))
            .collect();
        assert_eq!(a.dimensions, dims);
        assert_eq!(a.value, Some(d.value));
        assert_eq!(a.unit.as_deref(), Some("Percent"));
        assert_eq!(a.storage_resolution, Some(60));
        assert_eq!(a.timestamp_ms, Some(d.timestamp_ms));
    }
    assert_eq!(
        t.get(Name::ItemsWritten, &[("kind", "metric"), ("output", "cloudwatch")]),
        2500.0
    );
    assert_eq!(
        t.get(Name::AwsRequests, &[("api", "PutMetricData"), ("result", "ok")]),
        3.0
    );
}

#[tokio::test]
async fn retries_5xx_and_throttling_and_never_sends_a_datum_twice() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    // Four 503s outlast the SDK's three attempts, so kinsight's own retry runs too; then
    // throttling, then a 500 on a later batch.
    server.push_faults([
        Fault::Status(503),
        Fault::Status(503),
        Fault::Status(503),
        Fault::Status(503),
        Fault::Throttle,
        Fault::Throttle,
        Fault::Throttle,
    ]);
    out.enqueue(interval("c", 2500));
    // after the first batch went through, fail the second one once
    let deadline = Instant::now() + FLUSH;
    while server.accepted().is_empty() {
        assert!(Instant::now() < deadline, "first batch never accepted");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.push_faults([Fault::Status(500)]);
    assert_eq!(out.flush(deadline).await, 0);

    assert_eq!(server.accepted().len(), 2500);
    assert_no_duplicates(&server);
    let ok: Vec<usize> = server
        .requests()
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.datums)
        .collect();
    assert_eq!(ok, [1000, 1000, 500], "each batch accepted exactly once");
    assert!(t.get(Name::AwsRequests, &[("api", "PutMetricData"), ("result", "retry")]) >= 2.0);
    for reason in ["rejected", "queue_full", "shutdown", "access_denied"] {
        assert_eq!(dropped(&t, reason), 0.0, "{reason}");
    }
}

#[tokio::test]
async fn a_non_retryable_answer_drops_only_that_batch_and_counts_it() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    server.push_faults([Fault::Error(400, "InvalidParameterValue".into(), "bad datum".into())]);
    out.enqueue(interval("c", 2500));
    assert_eq!(out.flush(Instant::now() + FLUSH).await, 0);
    assert_eq!(server.accepted().len(), 1500);
    assert_eq!(server.request_count(), 3, "a rejected batch is not resent");
    assert_eq!(dropped(&t, "rejected"), 1000.0);
    assert_eq!(
        t.get(Name::AwsRequests, &[("api", "PutMetricData"), ("result", "error")]),
        1.0
    );

    server.push_faults([Fault::Error(403, "AccessDenied".into(), "not authorized".into())]);
    out.enqueue(interval("d", 10));
    assert_eq!(out.flush(Instant::now() + FLUSH).await, 0);
    assert_eq!(dropped(&t, "access_denied"), 10.0);
    assert_eq!(
        t.get(Name::AwsAccessDenied, &[("action", "cloudwatch:PutMetricData")]),
        1.0
    );
    assert_eq!(server.request_count(), 4);
}

#[tokio::test]
async fn values_and_timestamps_cloudwatch_would_reject_are_dropped_locally() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    let mut data = interval("c", 5);
    data[1].value = f64::NAN;
    data[2].value = f64::INFINITY;
    data[3].timestamp_ms -= 15 * 86_400_000;
    out.enqueue(data.clone());
    assert_eq!(out.flush(Instant::now() + FLUSH).await, 0);
    assert_eq!(server.accepted().len(), 2, "the good datums still go, in one request");
    assert_eq!(server.request_count(), 1);
    assert_eq!(dropped(&t, "invalid_value"), 2.0);
    assert_eq!(dropped(&t, "out_of_window"), 1.0);
}

/// Statistic sets (the control plane's roll-ups) go as `StatisticValues`, never with a `Value`;
/// a set of no samples or with a non-finite member is dropped before sending and counted.
#[tokio::test]
async fn statistic_sets_arrive_as_statistic_values_and_invalid_ones_are_dropped_locally() {
    use kinsight::metrics::record::StatisticSet;
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    let mut data = interval("c", 4);
    let set = |sample_count: f64, minimum: f64| {
        Some(Box::new(StatisticSet {
            sample_count,
            sum: 80.0,
            minimum,
            maximum: 60.0,
        }))
    };
    data[0].stats = set(2.0, 20.0);
    data[1].stats = set(0.0, 20.0);
    data[2].stats = set(2.0, f64::NAN);
    out.enqueue(data.clone());
    assert_eq!(out.flush(Instant::now() + FLUSH).await, 0);
    let accepted = server.accepted();
    assert_eq!(accepted.len(), 2, "{accepted:?}");
    let with_set: Vec<_> = accepted.iter().filter(|a| a.statistic_values.is_some()).collect();
    assert_eq!(with_set.len(), 1);
    assert_eq!(with_set[0].statistic_values, Some([2.0, 80.0, 20.0, 60.0]));
    assert_eq!(with_set[0].value, None, "Value and StatisticValues are exclusive");
    assert_eq!(dropped(&t, "invalid_value"), 2.0);
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_interval_first_and_counts_it() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 2, &t);
    // CloudWatch is down: every request fails with 503 and interval a is retried.
    server.set_sticky(Some(Fault::Status(503)));
    out.enqueue(interval("a", 30));
    let deadline = Instant::now() + FLUSH;
    while server.request_count() < 2 {
        assert!(Instant::now() < deadline, "no retries");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // b fills the queue, c evicts a (the oldest, in flight), d evicts b (queued).
    out.enqueue(interval("b", 20));
    out.enqueue(interval("c", 10));
    out.enqueue(interval("d", 5));
    while dropped(&t, "queue_full") < 50.0 {
        assert!(Instant::now() < deadline, "dropped {}", dropped(&t, "queue_full"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.set_sticky(None);
    assert_eq!(out.flush(deadline).await, 0);

    let clusters: Vec<String> = accepted_keys(&server).into_iter().map(|(c, _)| c).collect();
    let count = |c: &str| clusters.iter().filter(|x| *x == c).count();
    assert_eq!((count("a"), count("b"), count("c"), count("d")), (0, 0, 10, 5));
    assert_eq!(dropped(&t, "queue_full"), 50.0);
    assert_no_duplicates(&server);
}

#[tokio::test]
async fn flush_gives_up_at_its_deadline_and_counts_what_is_left() {
    let server = StrictCloudwatch::start();
    let t = Telemetry::new();
    let out = sink(&server, 4, &t);
    server.set_sticky(Some(Fault::Throttle));
    out.enqueue(interval("a", 1500));
    let left = out.flush(Instant::now() + Duration::from_millis(300)).await;
    assert_eq!(left, 500, "the second batch was still queued");
    // the sender counts the batch it had in flight as it stops
    let deadline = Instant::now() + FLUSH;
    while dropped(&t, "shutdown") < 1500.0 {
        assert!(
            Instant::now() < deadline,
            "dropped {} (queue_full {})",
            dropped(&t, "shutdown"),
            dropped(&t, "queue_full")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(dropped(&t, "shutdown"), 1500.0, "queued plus in flight");
    assert_eq!(dropped(&t, "queue_full"), 0.0, "a stop is not an eviction");
    assert!(server.accepted().is_empty());
    // once stopped, new intervals are counted, not queued
    out.enqueue(interval("b", 3));
    assert_eq!(dropped(&t, "shutdown"), 1503.0);
}
