//! The agent's lifecycle through the binary: a reload that changes what an output is rebuilds it
//! (the `cloudwatch` output against local endpoints), `/readyz` names what is not ready,
//! `kinsight once` honours Ctrl-C, and SIGTERM drains and exits 0.

mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::json;
use support::{Moto, StrictCloudwatch, kinsight, try_http_request, wait_until};

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// A running `kinsight run`, killed on drop; its stderr is collected by a thread.
struct Agent {
    child: Child,
    stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Agent {
    fn spawn(mut cmd: std::process::Command) -> Agent {
        let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        let err = child.stderr.take().unwrap();
        let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Agent { child, stderr }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args([sig, &pid]).status();
    }

    fn wait(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        wait_until(timeout, Duration::from_millis(20), || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Static test credentials; STS (`GetCallerIdentity`) at moto; IMDS off.
fn aws_env(cmd: &mut std::process::Command, moto: &Moto) {
    cmd.env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL_STS", &moto.endpoint);
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn config(cluster: &str, destination: &str, metrics_url: &str, logs_url: &str, listen: &str) -> String {
    json!({
        "agent": {"metrics_collection_interval": 1},
        "logs": {"metrics_collected": {"kubernetes": {"cluster_name": cluster}},
                 "endpoint_override": logs_url, "force_flush_interval": 1},
        "kinsight": {"node_name": NODE, "output": "cloudwatch",
                     "metrics": {"destination": destination, "endpoint_override": metrics_url,
                                 "metadata_source": "none"},
                     "logs": {"enabled": false}, "telemetry": {"listen_address": listen}}
    })
    .to_string()
}

fn performance_events(moto: &Moto, group: &str) -> usize {
    let (status, body) = moto.logs_call(
        "GetLogEvents",
        &json!({"logGroupName": group, "logStreamName": NODE, "startFromHead": true, "limit": 10000}),
    );
    if status != 200 {
        return 0;
    }
    body["events"].as_array().map_or(0, Vec::len)
}

#[test]
fn a_destination_change_rebuilds_the_cloudwatch_output_and_events_arrive() {
    let Some(moto) = Moto::start() else { return };
    let strict = StrictCloudwatch::start();
    let dir = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let cluster = format!("reload-{nanos}");
    let path = dir.path().join("cwagentconfig.json");
    let port = support::free_port();
    let listen = format!("127.0.0.1:{port}");
    std::fs::write(
        &path,
        config(&cluster, "put_metric_data", &strict.url(), &moto.endpoint, &listen),
    )
    .unwrap();
    let mut cmd = kinsight();
    cmd.args(["run", "--host-root"])
        .arg(repo("tests/fixtures/host/cgroup-v2-systemd/t1"))
        .arg("--config")
        .arg(&path);
    aws_env(&mut cmd, &moto);
    let mut agent = Agent::spawn(cmd);

    // put_metric_data: datums reach the metrics endpoint, no performance event is written.
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(50), || !strict
            .accepted()
            .is_empty()),
        "no datum arrived; stderr:\n{}",
        agent.stderr()
    );
    let group = format!("/aws/containerinsights/{cluster}/performance");
    assert_eq!(performance_events(&moto, &group), 0);

    // The same output kind, another destination: the output is rebuilt, events arrive.
    write_atomically(&path, &config(&cluster, "emf", &strict.url(), &moto.endpoint, &listen));
    assert!(
        wait_until(
            Duration::from_secs(30),
            Duration::from_millis(100),
            || performance_events(&moto, &group) > 0
        ),
        "no performance event arrived after the reload; stderr:\n{}",
        agent.stderr()
    );
    let base = format!("http://{listen}");
    let (_, metrics) = try_http_request("GET", &format!("{base}/metrics"), &[], "").unwrap();
    assert!(
        metrics.contains("kinsight_output_rebuilds_total{result=\"rebuilt\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("reason=\"no_lane\""),
        "nothing may reach an output without a lane for it:\n{metrics}"
    );
    assert!(agent.stderr().contains("output rebuilt for the new configuration"));

    agent.signal("-TERM");
    let status = agent.wait(Duration::from_secs(30)).expect("no exit after SIGTERM");
    assert!(status.success(), "{status:?}\n{}", agent.stderr());
    assert!(agent.stderr().contains("inputs first, then the output"));
}

#[test]
fn readyz_names_the_condition_not_met_and_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cwagentconfig.json");
    let port = support::free_port();
    // A long interval: the first tick is up to a minute away, so the agent is not ready yet.
    std::fs::write(
        &path,
        json!({"agent": {"metrics_collection_interval": 3600},
               "kinsight": {"output": "stdout", "metrics": {"metadata_source": "none"},
                            "logs": {"enabled": false},
                            "telemetry": {"listen_address": format!("127.0.0.1:{port}")}}})
        .to_string(),
    )
    .unwrap();
    let mut cmd = kinsight();
    cmd.args(["run", "--host-root"])
        .arg(repo("tests/fixtures/host/cgroup-v2-systemd/t1"))
        .arg("--config")
        .arg(&path);
    let mut agent = Agent::spawn(cmd);
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = None;
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(50), || {
            ready = try_http_request("GET", &format!("{base}/readyz"), &[], "").ok();
            ready.is_some()
        }),
        "telemetry never answered; stderr:\n{}",
        agent.stderr()
    );
    let (status, body) = ready.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("cycle: no collection cycle has completed yet"), "{body}");
    let (status, body) = try_http_request("GET", &format!("{base}/healthz"), &[], "").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    agent.signal("-TERM");
    assert!(agent.wait(Duration::from_secs(20)).is_some_and(|s| s.success()));
}

#[test]
fn once_stops_at_ctrl_c_without_writing() {
    let mut cmd = kinsight();
    cmd.args(["once", "--interval", "60s", "--output", "stdout", "--host-root"])
        .arg(repo("tests/fixtures/host/cgroup-v2-systemd/t1"));
    let mut agent = Agent::spawn(cmd);
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(20), || agent
            .stderr()
            .contains("node read")),
        "{}",
        agent.stderr()
    );
    agent.signal("-INT");
    let status = agent
        .wait(Duration::from_secs(10))
        .expect("`once` must stop at SIGINT, not after its 60 s interval");
    assert!(status.success(), "{status:?}");
    assert!(agent.stderr().contains("interrupted before the second sample"));
}
