//! Proves the shared test harness in `tests/support/`: a real `moto_server` comes up, answers
//! `CloudWatch Logs` calls over the raw HTTP client, and is gone after drop; the process and JSON
//! line helpers do what they say.

mod support;

use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use support::{
    FAKE_SIGV4_AUTHORIZATION, Moto, find_metric, http_request, json_lines, metrics, run, run_with_timeout, wait_until,
};

const GROUP: &str = "/aws/containerinsights/t/application";

fn create_log_group(moto: &Moto) -> (u16, String) {
    http_request(
        "POST",
        &moto.url("/"),
        &[
            ("X-Amz-Target", "Logs_20140328.CreateLogGroup"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Authorization", FAKE_SIGV4_AUTHORIZATION),
        ],
        format!(r#"{{"logGroupName":"{GROUP}"}}"#),
    )
}

#[test]
fn moto_serves_cloudwatch_logs_and_stops_on_drop() {
    let Some(moto) = Moto::start() else { return };

    let (status, _) = http_request("GET", &moto.url("/moto-api/"), &[], "");
    assert_eq!(status, 200, "/moto-api/");

    let (status, body) = create_log_group(&moto);
    assert_eq!(status, 200, "CreateLogGroup: {body}");

    let (status, groups) = moto.logs_call("DescribeLogGroups", &json!({}));
    assert_eq!(status, 200, "DescribeLogGroups: {groups}");
    let names: Vec<&str> = groups["logGroups"]
        .as_array()
        .unwrap_or_else(|| panic!("no logGroups in {groups}"))
        .iter()
        .filter_map(|g| g["logGroupName"].as_str())
        .collect();
    assert_eq!(names, [GROUP]);

    let (status, body) = create_log_group(&moto);
    assert_eq!(status, 400, "CreateLogGroup again: {body}");
    assert!(
        body.contains("ResourceAlreadyExistsException"),
        "CreateLogGroup again: {body}"
    );

    let state = moto.get_json("/moto-api/data.json");
    assert!(state.is_object(), "data.json: {state}");
    moto.reset();
    let (_, groups) = moto.logs_call("DescribeLogGroups", &json!({}));
    assert_eq!(groups["logGroups"], json!([]), "after reset");

    let addr = moto.addr();
    drop(moto);
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "{addr} still accepts connections after Moto was dropped"
    );
}

#[test]
fn moto_start_with_passes_environment() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let recording = scratch.path().join("rec.jsonl");
    let Some(moto) = Moto::start_with(&[
        ("MOTO_ENABLE_RECORDING", "True"),
        ("MOTO_RECORDER_FILEPATH", recording.to_str().expect("utf-8 path")),
    ]) else {
        return;
    };
    let (status, body) = create_log_group(&moto);
    assert_eq!(status, 200, "CreateLogGroup: {body}");
    assert!(
        wait_until(Duration::from_secs(5), Duration::from_millis(20), || {
            std::fs::read_to_string(&recording).is_ok_and(|r| r.contains("CreateLogGroup"))
        }),
        "no CreateLogGroup in moto's recording {}; moto log:\n{}",
        recording.display(),
        moto.log_tail(20)
    );
    let recorded = std::fs::read_to_string(&recording).expect("read the recording");
    assert!(
        recorded.contains(FAKE_SIGV4_AUTHORIZATION),
        "the Authorization header is not as sent: {recorded}"
    );
}

#[test]
fn json_lines_parses_every_non_empty_line() {
    let stdout = concat!(
        r#"{"kind":"metric","namespace":"ContainerInsights","metric_name":"node_cpu_utilization","dimensions":{"ClusterName":"c"},"value":1.5,"unit":"Percent","timestamp":1}"#,
        "\n\n",
        r#"{"kind":"log","log_group":"g","log_stream":"s","timestamp":2,"message":"hi"}"#,
        "\n",
        r#"{"kind":"metric","namespace":"ContainerInsights","metric_name":"node_memory_utilization","dimensions":{"ClusterName":"c"},"value":2,"unit":"Percent","timestamp":1}"#,
        "\n",
    );
    let lines = json_lines(stdout);
    assert_eq!(lines.len(), 3);
    assert_eq!(metrics(&lines).len(), 2);
    let cpu = find_metric(&lines, "node_cpu_utilization");
    assert_eq!(cpu.len(), 1);
    assert_eq!(cpu[0]["value"], 1.5);
    assert!(find_metric(&lines, "missing").is_empty());
    assert!(json_lines("").is_empty());
}

#[test]
#[should_panic(expected = "stdout line 2 is not JSON")]
fn json_lines_names_the_bad_line() {
    json_lines("{\"kind\":\"metric\"}\nnot json\n");
}

#[test]
fn run_captures_output_and_exit_code() {
    let out = run(Command::new("/bin/sh").args(["-c", "echo out; echo err >&2; exit 3"]));
    out.assert_code(3);
    assert_eq!(out.stdout, "out\n");
    assert_eq!(out.stderr, "err\n");
}

#[test]
#[should_panic(expected = "still ran after")]
fn run_kills_a_process_that_overruns() {
    run_with_timeout(Command::new("/bin/sleep").arg("30"), Duration::from_millis(200));
}

#[test]
fn wait_until_sees_a_condition_and_times_out() {
    let mut calls = 0;
    assert!(wait_until(Duration::from_secs(5), Duration::from_millis(1), || {
        calls += 1;
        calls == 3
    }));
    assert_eq!(calls, 3);
    assert!(!wait_until(
        Duration::from_millis(50),
        Duration::from_millis(10),
        || false
    ));
}
