//! Read-back through the real CloudWatch API: kinsight's `PutMetricData`
//! output sends to ministack (with `cbor2`, an rpc-v2-cbor decoder independent of this
//! repository's code), and `ListMetrics` / `GetMetricData` must return exactly what was sent.
//! This is also the test that fails loudly when ministack lacks `cbor2`.

#![allow(clippy::float_cmp, reason = "the counters compared are whole numbers, exact in f64")]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
use kinsight::metrics::Datum;
use kinsight::metrics::encode::datum::Unit;
use kinsight::ship::cloudwatch::{Backoff, CloudwatchMetrics, client};
use kinsight::telemetry::{Name, Telemetry};
use support::{Ministack, test_sdk_config};
use tokio::time::Instant;

type Series = (String, Vec<(String, String)>);

fn series(name: &str, dims: &[Dimension]) -> Series {
    let mut d: Vec<(String, String)> = dims
        .iter()
        .map(|d| {
            (
                d.name().unwrap_or_default().to_string(),
                d.value().unwrap_or_default().to_string(),
            )
        })
        .collect();
    d.sort();
    (name.to_string(), d)
}

/// 1,200 datums (two gzipped requests), three metrics with three units, one series each.
fn datums(cluster: &str, ts_ms: i64) -> Vec<Datum> {
    let metrics = [
        ("pod_cpu_utilization", Unit::Percent),
        ("pod_memory_working_set", Unit::Bytes),
        ("node_cpu_limit", Unit::None),
    ];
    (0..1200)
        .map(|i| {
            let (metric_name, unit) = metrics[i % 3];
            Datum {
                metric_name,
                dimensions: vec![
                    ("ClusterName", cluster.into()),
                    ("Namespace", "default".into()),
                    ("PodName", format!("pod-{i}").into()),
                ]
                .into(),
                value: i as f64 * 1.5 + 0.25,
                stats: None,
                unit,
                timestamp_ms: ts_ms,
            }
        })
        .collect()
}

#[tokio::test]
async fn datums_read_back_from_ministack_equal_what_was_sent() {
    let Some(ms) = Ministack::start() else { return };
    let sdk = test_sdk_config(&ms.endpoint);
    let t = Telemetry::new();
    let now_s = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let ts_ms = i64::try_from((now_s / 60 * 60 - 60) * 1000).unwrap();
    let cluster = format!("ks-{}", now_s % 100_000);
    let sent = datums(&cluster, ts_ms);
    let (out, sender) = CloudwatchMetrics::with_backoff(
        &sdk,
        None,
        4,
        t.clone(),
        Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_millis(50),
        },
    );
    tokio::spawn(sender);
    out.enqueue(sent.clone());
    assert_eq!(out.flush(Instant::now() + Duration::from_mins(1)).await, 0);
    assert_eq!(
        t.get(Name::ItemsWritten, &[("kind", "metric"), ("output", "cloudwatch")]),
        1200.0,
        "ministack log:\n{}",
        ms.log()
    );

    let cw = client(&sdk, None);
    // ListMetrics, paged (AWS pages at 500; ministack may not, so page anyway).
    let mut listed: BTreeSet<Series> = BTreeSet::new();
    let mut pages = cw.list_metrics().namespace("ContainerInsights").into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("ListMetrics: {e:?}\nministack log:\n{}", ms.log()));
        for m in page.metrics() {
            listed.insert(series(m.metric_name().unwrap_or_default(), m.dimensions()));
        }
    }
    let expected: BTreeMap<Series, (f64, Unit)> = sent
        .iter()
        .map(|d| {
            let dims: Vec<Dimension> = d
                .dimensions
                .iter()
                .map(|(k, v)| Dimension::builder().name(*k).value(&**v).build())
                .collect();
            (series(d.metric_name, &dims), (d.value, d.unit))
        })
        .collect();
    let want: BTreeSet<Series> = expected.keys().cloned().collect();
    assert_eq!(
        listed, want,
        "ListMetrics returns every series sent, with its dimensions"
    );

    // GetMetricData: the value of every series (one datapoint each, so Average = the value).
    let keys: Vec<&Series> = expected.keys().collect();
    let mut got: BTreeMap<Series, f64> = BTreeMap::new();
    for chunk in keys.chunks(500) {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, (name, dims))| {
                let metric = Metric::builder()
                    .namespace("ContainerInsights")
                    .metric_name(name)
                    .set_dimensions(Some(
                        dims.iter()
                            .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                            .collect(),
                    ))
                    .build();
                MetricDataQuery::builder()
                    .id(format!("q{i}"))
                    .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Average").build())
                    .build()
            })
            .collect();
        let mut pages = cw
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(DateTime::from_millis(ts_ms - 300_000))
            .end_time(DateTime::from_millis(ts_ms + 300_000))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.unwrap_or_else(|e| panic!("GetMetricData: {e:?}\nministack log:\n{}", ms.log()));
            for r in page.metric_data_results() {
                let i: usize = r.id().unwrap_or_default()[1..].parse().unwrap();
                assert_eq!(r.values().len(), 1, "one datapoint for {:?}: {r:?}", chunk[i]);
                assert_eq!(r.timestamps()[0].to_millis().unwrap(), ts_ms);
                got.insert(chunk[i].clone(), r.values()[0]);
            }
        }
    }
    assert_eq!(got.len(), expected.len());
    for (k, (value, _unit)) in &expected {
        let v = got[k];
        assert!((v - value).abs() < 1e-9, "{k:?}: read back {v}, sent {value}");
    }
    assert!(!ms.log().contains("CBOR decode error"), "{}", ms.log());
}
