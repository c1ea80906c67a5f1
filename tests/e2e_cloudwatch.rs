//! The whole binary against local AWS servers: what `kinsight once --output cloudwatch` sends
//! is what `--output stdout` prints for the same node (issue #3, "End to end").
//!
//! - `put_metric_data`: datums go to ministack (rpc-v2-cbor, decoded by `cbor2`), read back with
//!   `ListMetrics` and `GetMetricData`;
//! - `emf`: performance events go to moto's CloudWatch Logs, read back with `GetLogEvents`.
//!
//! The node is the hand-worked oracle fixture at t1 (static files, so both runs read the same
//! values). Credentials are static test keys; `GetCallerIdentity` goes to moto. IMDS is disabled:
//! no test may reach 169.254.169.254.

#![allow(
    clippy::float_cmp,
    reason = "values compared are read back from the same decimal text"
)]

mod support;

use std::collections::BTreeMap;
use std::process::Command;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat};
use serde_json::{Value, json};
use support::{Ministack, Moto, copy_dir, json_lines, kinsight, repo, run, test_sdk_config};

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";

struct Node {
    dir: tempfile::TempDir,
    cluster: String,
}

impl Node {
    fn new(destination: &str) -> Node {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &repo("tests/fixtures/host/cgroup-v2-systemd/t1"),
            &dir.path().join("root"),
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let cluster = format!("e2e-{destination}-{nanos}");
        let config = json!({
            "agent": {"region": "us-east-1"},
            "logs": {"metrics_collected": {"kubernetes": {"cluster_name": cluster}}},
            "kinsight": {"node_name": NODE, "metrics": {"destination": destination},
                         "logs": {"enabled": false}, "telemetry": {"listen_address": null}}
        });
        std::fs::write(dir.path().join("cwagentconfig.json"), config.to_string()).unwrap();
        Node { dir, cluster }
    }

    fn once(&self, output: &str) -> Command {
        let mut cmd = kinsight();
        cmd.args(["once", "--interval", "100ms", "--output", output])
            .arg("--config")
            .arg(self.dir.path().join("cwagentconfig.json"))
            .arg("--host-root")
            .arg(self.dir.path().join("root"))
            .arg("--pods-file")
            .arg(repo("tests/fixtures/kube/cluster-oracle.json"));
        cmd
    }
}

/// Static test credentials and endpoints; IMDS off.
fn aws_env(cmd: &mut Command, endpoints: &[(&str, &str)]) {
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in endpoints {
        cmd.env(k, v);
    }
}

type Series = (String, Vec<(String, String)>);

#[tokio::test(flavor = "multi_thread")]
#[expect(
    clippy::too_many_lines,
    reason = "one scenario: print, send, list, read back, compare"
)]
async fn put_metric_data_reads_back_what_stdout_prints() {
    let (Some(moto), Some(ms)) = (Moto::start(), Ministack::start()) else {
        return;
    };
    let node = Node::new("put_metric_data");

    let printed = run(&mut node.once("stdout"));
    assert_eq!(printed.status.code(), Some(0), "{}", printed.stderr);
    // Several pods share a series (PodName is a workload name): compare per-series means.
    let mut expected: BTreeMap<Series, Vec<f64>> = BTreeMap::new();
    for d in json_lines(&printed.stdout) {
        let mut dims: Vec<(String, String)> = d["dimensions"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        dims.sort();
        expected
            .entry((d["metric_name"].as_str().unwrap().to_string(), dims))
            .or_default()
            .push(d["value"].as_f64().unwrap());
    }
    assert!(
        expected.len() > 40,
        "the oracle node gives dozens of series, got {}",
        expected.len()
    );

    let mut cmd = node.once("cloudwatch");
    aws_env(
        &mut cmd,
        &[
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &ms.endpoint),
            ("AWS_ENDPOINT_URL_STS", &moto.endpoint),
        ],
    );
    let sent = run(&mut cmd);
    assert_eq!(
        sent.status.code(),
        Some(0),
        "{}\nministack log:\n{}",
        sent.stderr,
        ms.log()
    );

    let cw = kinsight::ship::cloudwatch::client(&test_sdk_config(&ms.endpoint), None);
    let mut listed: Vec<Series> = Vec::new();
    let filter = DimensionFilter::builder()
        .name("ClusterName")
        .value(&node.cluster)
        .build();
    let mut pages = cw
        .list_metrics()
        .namespace("ContainerInsights")
        .dimensions(filter)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        for m in page.expect("ListMetrics").metrics() {
            let mut dims: Vec<(String, String)> = m
                .dimensions()
                .iter()
                .map(|d| {
                    (
                        d.name().unwrap_or_default().to_string(),
                        d.value().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            dims.sort();
            listed.push((m.metric_name().unwrap_or_default().to_string(), dims));
        }
    }
    listed.sort();
    listed.dedup();
    let want: Vec<Series> = expected.keys().cloned().collect();
    assert_eq!(
        listed, want,
        "ListMetrics must return exactly the series stdout printed"
    );

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let now = i64::try_from(now).unwrap();
    let keys: Vec<&Series> = expected.keys().collect();
    let mut checked = 0;
    for chunk in keys.chunks(100) {
        let queries = chunk.iter().enumerate().map(|(i, (name, dims))| {
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
        });
        let out = cw
            .get_metric_data()
            .set_metric_data_queries(Some(queries.collect()))
            .start_time(DateTime::from_millis(now - 600_000))
            .end_time(DateTime::from_millis(now + 600_000))
            .send()
            .await
            .expect("GetMetricData");
        for r in out.metric_data_results() {
            let i: usize = r.id().unwrap_or_default()[1..].parse().unwrap();
            let values = &expected[chunk[i]];
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            assert_eq!(r.values().len(), 1, "{:?}: {r:?}", chunk[i]);
            let got = r.values()[0];
            // statvfs is a system call, not a fixture file: the filesystem under the temporary
            // directory is the real disk, which other processes write between the two runs.
            let tolerance = if chunk[i].0.starts_with("node_filesystem_") {
                1.0
            } else {
                1e-9 * mean.abs().max(1.0)
            };
            assert!(
                (got - mean).abs() <= tolerance,
                "{:?}: read back {got}, printed {mean}",
                chunk[i]
            );
            checked += 1;
        }
    }
    assert_eq!(checked, expected.len());
}

/// The event without what legitimately differs between two runs: the timestamp, and the
/// free-space figures of the real disk under the fixture (statvfs is not a fixture file).
fn without_timestamp(message: &str) -> Value {
    let mut v: Value = serde_json::from_str(message).unwrap();
    let o = v.as_object_mut().unwrap();
    o.remove("Timestamp");
    for k in [
        "node_filesystem_available",
        "node_filesystem_usage",
        "node_filesystem_utilization",
        "node_filesystem_inodes_free",
    ] {
        if let Some(x) = o.remove(k) {
            assert!(x.is_number(), "{k} is a number");
        }
    }
    v
}

#[test]
fn emf_events_in_cloudwatch_logs_are_what_stdout_prints() {
    let Some(moto) = Moto::start() else { return };
    let node = Node::new("emf");
    let printed = run(&mut node.once("stdout"));
    assert_eq!(printed.status.code(), Some(0), "{}", printed.stderr);
    let mut expected: Vec<String> = json_lines(&printed.stdout)
        .iter()
        .map(|l| without_timestamp(l["message"].as_str().unwrap()).to_string())
        .collect();
    expected.sort();

    let mut cmd = node.once("cloudwatch");
    aws_env(&mut cmd, &[("AWS_ENDPOINT_URL", &moto.endpoint)]);
    let sent = run(&mut cmd);
    assert_eq!(sent.status.code(), Some(0), "{}", sent.stderr);

    let group = format!("/aws/containerinsights/{}/performance", node.cluster);
    let (status, body) = moto.logs_call(
        "GetLogEvents",
        &json!({"logGroupName": group, "logStreamName": NODE, "startFromHead": true, "limit": 10000}),
    );
    assert_eq!(status, 200, "{body}");
    let events = body["events"].as_array().unwrap();
    let mut got: Vec<String> = events
        .iter()
        .map(|e| without_timestamp(e["message"].as_str().unwrap()).to_string())
        .collect();
    got.sort();
    assert_eq!(got.len(), expected.len(), "one event per record");
    assert_eq!(
        got, expected,
        "events stored in CloudWatch Logs equal the printed ones (but for Timestamp)"
    );
    let node_event: Value =
        serde_json::from_str(&got.iter().find(|m| m.contains("\"Type\":\"Node\"")).unwrap().clone()).unwrap();
    assert!(
        node_event["CloudWatchMetrics"].is_array(),
        "mode emf carries the directive"
    );
}

/// One counter of `/metrics` text (`name{labels} value`, the labels as printed), 0 if absent.
fn counter(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The billable-unit counters of a running agent equal what the endpoints received: the strict
/// CloudWatch endpoint's `PutMetricData` requests, datums and distinct series, and the bytes of
/// the performance events the strict CloudWatch Logs endpoint stored (message + 26 each).
/// Compared in a quiet moment between two intervals: the endpoints' counts read before and after
/// the agent's are the same.
#[test]
fn billable_counters_equal_what_the_endpoints_received() {
    use std::collections::BTreeSet;
    use std::time::Duration;
    use support::{StrictCloudwatch, StrictLogs, free_port, try_http_request, wait_until};
    let Some(moto) = Moto::start() else { return };
    let cw = StrictCloudwatch::start();
    let logs = StrictLogs::start();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &repo("tests/fixtures/host/cgroup-v2-systemd/t1"),
        &dir.path().join("root"),
    );
    let port = free_port();
    let cfg = dir.path().join("c.json");
    std::fs::write(
        &cfg,
        json!({
            "agent": {"region": "us-east-1", "metrics_collection_interval": 2},
            "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "billed"}}},
            "kinsight": {"node_name": NODE, "metrics": {"destination": "both"},
                         "logs": {"enabled": false, "flush_interval_secs": 1},
                         "telemetry": {"listen_address": format!("127.0.0.1:{port}")}}
        })
        .to_string(),
    )
    .unwrap();
    let mut cmd = kinsight();
    cmd.args(["run", "--output", "cloudwatch", "--config"])
        .arg(&cfg)
        .arg("--host-root")
        .arg(dir.path().join("root"))
        .arg("--pods-file")
        .arg(repo("tests/fixtures/kube/cluster-oracle.json"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    aws_env(
        &mut cmd,
        &[
            ("AWS_ENDPOINT_URL_CLOUDWATCH", &cw.url()),
            ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &logs.url()),
            ("AWS_ENDPOINT_URL_STS", &moto.endpoint),
        ],
    );
    let mut child = cmd.spawn().unwrap();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let group = "/aws/containerinsights/billed/performance";
    let received = || {
        let accepted = cw.accepted();
        let series: BTreeSet<(String, Vec<(String, String)>)> = accepted
            .iter()
            .map(|d| (d.metric_name.clone(), d.dimensions.clone()))
            .collect();
        let emf: usize = logs.events(group, NODE).iter().map(|e| e.message.len() + 26).sum();
        (
            cw.request_count() as f64,
            accepted.len() as f64,
            series.len() as f64,
            emf as f64,
        )
    };
    let mut last = (String::new(), (0.0, 0.0, 0.0, 0.0));
    let agreed = wait_until(Duration::from_mins(1), Duration::from_millis(100), || {
        let before = received();
        let Ok((200, m)) = try_http_request("GET", &url, &[], "") else {
            return false;
        };
        let after = received();
        let counted = (
            counter(&m, "kinsight_aws_requests_total{api=\"PutMetricData\",result=\"ok\"}"),
            counter(
                &m,
                "kinsight_output_items_written_total{kind=\"metric\",output=\"cloudwatch\"}",
            ),
            counter(&m, "kinsight_billable_metric_series"),
            counter(&m, "kinsight_billable_emf_bytes_total"),
        );
        last = (m, after);
        // Two intervals at least, and nothing arrived while the agent's counters were read.
        before == after && after.0 >= 2.0 && after.3 > 0.0 && counted == after
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        agreed,
        "counters never matched the endpoints: received {:?}\n{}",
        last.1, last.0
    );
}
