//! The whole binary shipping logs to moto's CloudWatch Logs: record shapes, groups and streams
//! for both profiles, read back with `GetLogEvents`; then a writer at full speed through an
//! outage, throttling, a `kill -9` and rotations, with nothing lost.

#![allow(clippy::cast_possible_truncation, reason = "test line numbers are small")]

mod support;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use support::dates::Date;
use support::{Chaos, Moto, StrictCloudwatch, copy_dir, kinsight, repo, wait_until};

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";
const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const ID2: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

/// A node: the metrics fixture plus log directories, and the agent's config.
struct Node {
    dir: tempfile::TempDir,
    cluster: String,
}

impl Node {
    fn new(logs: &Value) -> Node {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(
            &repo("tests/fixtures/host/cgroup-v2-systemd/t1"),
            &dir.path().join("root"),
        );
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let cluster = format!("logs-{nanos}");
        let node = Node { dir, cluster };
        node.write_config(logs);
        node
    }

    fn write_config(&self, logs: &Value) {
        self.write_config_with(logs, &json!({}));
    }

    /// `logs` are `kinsight.logs` keys; `upstream` are more keys of the `CloudWatch` agent's
    /// own `logs` section.
    fn write_config_with(&self, logs: &Value, upstream: &Value) {
        let mut kinsight_logs = json!({"flush_interval_secs": 1});
        for (k, v) in logs.as_object().unwrap() {
            kinsight_logs[k] = v.clone();
        }
        let mut upstream_logs = json!({"metrics_collected": {"kubernetes": {"cluster_name": self.cluster}}});
        for (k, v) in upstream.as_object().unwrap() {
            upstream_logs[k] = v.clone();
        }
        let config = json!({
            "agent": {"region": "us-east-1", "metrics_collection_interval": 60},
            "logs": upstream_logs,
            "kinsight": {"node_name": NODE, "output": "cloudwatch",
                         "metrics": {"metadata_source": "none"},
                         "logs": kinsight_logs,
                         "telemetry": {"listen_address": null}}
        });
        std::fs::write(self.dir.path().join("cwagentconfig.json"), config.to_string()).unwrap();
    }

    fn root(&self, rel: &str) -> PathBuf {
        self.dir.path().join("root").join(rel)
    }

    fn container(&self, ns: &str, pod: &str, uid: &str, container: &str, id: &str) -> PathBuf {
        let dir = self.root(&format!("var/log/pods/{ns}_{pod}_{uid}/{container}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::create_dir_all(self.root("var/log/containers")).unwrap();
        let link = self.root(&format!("var/log/containers/{pod}_{ns}_{container}-{id}.log"));
        if link.symlink_metadata().is_err() {
            std::os::unix::fs::symlink(format!("/var/log/pods/{ns}_{pod}_{uid}/{container}/0.log"), link).unwrap();
        }
        dir.join("0.log")
    }

    /// `kinsight run` with logs going to `logs_url`; metrics to the strict local endpoint.
    fn start(&self, logs_url: &str, metrics: &StrictCloudwatch, moto: &Moto) -> Agent {
        let mut cmd = kinsight();
        cmd.args(["run", "--output", "cloudwatch", "--config"])
            .arg(self.dir.path().join("cwagentconfig.json"))
            .arg("--host-root")
            .arg(self.dir.path().join("root"))
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", logs_url)
            .env("AWS_ENDPOINT_URL_CLOUDWATCH", metrics.url())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("agent.log"))
                    .unwrap(),
            ));
        Agent(Some(cmd.spawn().unwrap()))
    }

    fn agent_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("agent.log")).unwrap_or_default()
    }

    /// Waits until a reload replaced the log pipeline.
    fn wait_for_rebuild(&self) {
        assert!(
            wait_until(Duration::from_secs(30), Duration::from_millis(100), || self
                .agent_log()
                .contains("log pipeline rebuilt")),
            "the pipeline was not replaced; agent log:\n{}",
            self.agent_log()
        );
    }

    fn group(&self, kind: &str) -> String {
        format!("/aws/containerinsights/{}/{kind}", self.cluster)
    }
}

/// A running agent, killed if the test ends (or panics) without stopping it.
struct Agent(Option<Child>);

impl Agent {
    fn kill9(&mut self) {
        if let Some(mut c) = self.0.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Appends `text`, its fixture date 2026-12-06 moved to yesterday ([`Date::shift`]).
fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(Date::yesterday().shift(text).as_bytes()).unwrap();
}

/// Every event of a stream, through the pages of `GetLogEvents`.
fn events(moto: &Moto, group: &str, stream: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut req = json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true, "limit": 10000});
        if let Some(t) = &token {
            req["nextToken"] = json!(t);
        }
        let (status, body) = moto.logs_call("GetLogEvents", &req);
        if status != 200 {
            return out;
        }
        let page = body["events"].as_array().cloned().unwrap_or_default();
        let next = body["nextForwardToken"].as_str().map(str::to_string);
        if page.is_empty() || next == token {
            return out;
        }
        out.extend(page);
        token = next;
    }
}

fn messages(events: &[Value]) -> Vec<Value> {
    events
        .iter()
        .map(|e| serde_json::from_str(e["message"].as_str().unwrap()).unwrap())
        .collect()
}

fn stop(mut agent: Agent) -> std::process::ExitStatus {
    let mut child = agent.0.take().expect("a running agent");
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let mut status = None;
    wait_until(Duration::from_secs(40), Duration::from_millis(50), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    status.unwrap_or_else(|| {
        let _ = child.kill();
        panic!("the agent did not stop")
    })
}

fn profile_run(profile: &str) {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let node = Node::new(&profile_settings(profile));
    let web = node.container("shop", "web-1", "uid-1", "web", ID);
    let proxy = node.container("kube-system", "aws-node-abc", "uid-2", "aws-node", ID2);
    let trace = write_java_trace(&node);
    // Interleaved partial lines of stdout and stderr, and one that never parses.
    append(
        &web,
        "2026-12-06T10:00:00.000000001Z stdout P hello |\n\
         2026-12-06T10:00:00.1Z stderr F an error\n\
         2026-12-06T10:00:00.2Z stdout F world\n\
         {\"level\":\"info\"}\n",
    );
    append(&proxy, "2026-12-06T10:00:01Z stdout F ipamd started\n");
    append(
        &node.root("var/log/messages"),
        "Dec  6 10:00:02 ip-10-0-1-23 kubelet[99]: node ready\n",
    );
    let agent = node.start(&moto.endpoint, &metrics, &moto);
    // Lines after the start, then a rotation and lines in the new file.
    append(&web, "2026-12-06T10:00:03Z stdout F {\"msg\":\"json\",\"n\":1}\n");
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&web, web.with_extension("log.20261206-100004")).unwrap();
    append(&web, "2026-12-06T10:00:05Z stdout F after rotation\n");

    let basename = format!("web-1_shop_web-{ID}.log");
    let (app_stream, proxy_stream, host_stream) = if profile == "fluentd" {
        (
            format!("web-1_shop_web-{ID}"),
            format!("aws-node-abc_kube-system_aws-node-{ID2}"),
            format!("host.messages-{NODE}"),
        )
    } else {
        (
            format!("{NODE}-application.var.log.containers.{basename}"),
            format!("{NODE}-dataplane.tail.var.log.containers.aws-node-abc_kube-system_aws-node-{ID2}.log"),
            format!("{NODE}.host.messages"),
        )
    };
    let app_group = node.group("application");
    assert!(
        wait_until(Duration::from_secs(40), Duration::from_millis(200), || events(
            &moto,
            &app_group,
            &app_stream
        )
        .len()
            >= 5),
        "application events did not arrive; agent log:\n{}",
        node.agent_log()
    );
    let app = messages(&events(&moto, &app_group, &app_stream));
    let mut logs: Vec<&str> = app.iter().map(|m| m["log"].as_str().unwrap()).collect();
    logs.sort_unstable();
    assert_eq!(
        logs,
        [
            "after rotation",
            "an error",
            "hello |world",
            "{\"level\":\"info\"}",
            "{\"msg\":\"json\",\"n\":1}",
        ],
        "{app:#?}"
    );
    let by_log = |l: &str| app.iter().find(|m| m["log"] == l).unwrap().clone();
    let first = &by_log("an error");
    if profile == "fluentd" {
        assert_eq!(first["logtag"], "F");
        assert_eq!(first["docker"]["container_id"], ID);
        assert_eq!(first["kubernetes"]["pod_name"], "web-1");
        assert!(first.get("time").is_none());
    } else {
        assert_eq!(first["stream"], "stderr");
        assert_eq!(first["time"], Date::yesterday().shift("2026-12-06T10:00:00.1Z"));
        assert_eq!(first["kubernetes"]["docker_id"], ID);
        assert_eq!(first["kubernetes"]["namespace_name"], "shop");
        assert_eq!(by_log("{\"msg\":\"json\",\"n\":1}")["log_processed"]["n"], 1);
    }
    assert_one_event_per_trace(&moto, &app_group, profile, trace);
    let dp = messages(&events(&moto, &node.group("dataplane"), &proxy_stream));
    assert_eq!(dp.len(), 1, "aws-node goes to dataplane");
    assert_eq!(dp[0]["log"], "ipamd started");
    assert!(dp[0].get("kubernetes").is_none());
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(200), || !events(
            &moto,
            &node.group("host"),
            &host_stream
        )
        .is_empty()),
        "no host event"
    );
    let host = messages(&events(&moto, &node.group("host"), &host_stream));
    assert_eq!(host[0]["ident"], "kubelet");
    assert_eq!(host[0]["message"], "node ready");
    let status = stop(agent);
    assert!(status.success(), "{status:?}\n{}", node.agent_log());
}

/// `kinsight.logs` for a profile run. The fluentd profile's default multiline rule (`^\S`:
/// an indented line continues a record) joins the Java trace of [`write_java_trace`];
/// fluent-bit joins nothing by default, so the `java` preset is set for it.
fn profile_settings(profile: &str) -> Value {
    let mut logs = json!({"record_profile": profile, "stream_names": profile, "partial_flush_timeout_ms": 1000});
    if profile != "fluentd" {
        logs["multiline"] = json!([{"preset": "java", "container_globs": ["orders-*"]}]);
    }
    logs
}

/// A Java stack trace and a line after it in `orders-1`, a container a multiline rule applies
/// to; returns the trace as one event's text.
fn write_java_trace(node: &Node) -> &'static str {
    let orders = node.container("shop", "orders-1", "uid-3", "orders", ID2);
    append(
        &orders,
        "2026-12-06T10:00:00Z stdout F java.lang.IllegalStateException: no stock\n\
         2026-12-06T10:00:00Z stdout F \tat shop.Orders.take(Orders.java:42)\n\
         2026-12-06T10:00:01Z stdout F order 2 taken\n",
    );
    "java.lang.IllegalStateException: no stock\n\tat shop.Orders.take(Orders.java:42)"
}

/// The `orders-1` container's stack trace arrived as one event, the line after it as another.
fn assert_one_event_per_trace(moto: &Moto, group: &str, profile: &str, trace: &str) {
    let stream = if profile == "fluentd" {
        format!("orders-1_shop_orders-{ID2}")
    } else {
        format!("{NODE}-application.var.log.containers.orders-1_shop_orders-{ID2}.log")
    };
    assert!(
        wait_until(Duration::from_secs(20), Duration::from_millis(200), || events(
            moto, group, &stream
        )
        .len()
            >= 2),
        "the orders events did not arrive"
    );
    let orders = messages(&events(moto, group, &stream));
    let orders: Vec<&str> = orders.iter().map(|m| m["log"].as_str().unwrap()).collect();
    assert_eq!(orders, [trace, "order 2 taken"]);
}

#[test]
fn records_streams_and_groups_as_fluent_bit_writes_them() {
    profile_run("fluent-bit");
}

#[test]
fn records_streams_and_groups_as_fluentd_wrote_them() {
    profile_run("fluentd");
}

/// Writes `n` numbered lines to `file`, rotating like kubelet every 200 KB.
struct Writer {
    file: PathBuf,
    next: usize,
    since_rotation: usize,
    rotations: usize,
}

impl Writer {
    /// kubelet's compression: every uncompressed rotated file but the newest becomes `.gz`.
    fn gzip_older_rotated(&self) {
        let dir = self.file.parent().unwrap();
        let mut rotated: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().into_owned();
                n.starts_with("0.log.") && p.extension().is_none_or(|e| e != "gz")
            })
            .collect();
        rotated.sort();
        rotated.pop();
        for p in rotated {
            let data = std::fs::read(&p).unwrap();
            let gz = std::fs::File::create(format!("{}.gz", p.display())).unwrap();
            let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
            enc.write_all(&data).unwrap();
            enc.finish().unwrap();
            std::fs::remove_file(&p).unwrap();
        }
    }

    /// Renames the live file as kubelet's rotation does; the next write creates a new one.
    fn rotate_now(&mut self) {
        std::fs::rename(
            &self.file,
            self.file
                .with_extension(format!("log.20261206-10{:04}", self.rotations)),
        )
        .unwrap();
        self.rotations += 1;
        self.since_rotation = 0;
    }

    fn write(&mut self, n: usize) {
        let mut text = String::new();
        for _ in 0..n {
            let line = format!(
                "2026-12-06T10:00:00.{:09}Z stdout F line {:06} {}\n",
                self.next,
                self.next,
                "x".repeat(150)
            );
            self.since_rotation += line.len();
            text.push_str(&line);
            self.next += 1;
            if self.since_rotation >= 200 * 1024 {
                append(&self.file, &std::mem::take(&mut text));
                std::fs::rename(
                    &self.file,
                    self.file
                        .with_extension(format!("log.20261206-10{:04}", self.rotations)),
                )
                .unwrap();
                self.rotations += 1;
                self.since_rotation = 0;
            }
        }
        append(&self.file, &text);
    }
}

/// A [`Writer`] for the `shop/web-1` container, with its log group and stream.
fn web_writer(node: &Node) -> (Writer, String, String) {
    let w = Writer {
        file: node.container("shop", "web-1", "uid-1", "web", ID),
        next: 0,
        since_rotation: 0,
        rotations: 0,
    };
    let stream = format!("{NODE}-application.var.log.containers.web-1_shop_web-{ID}.log");
    (w, node.group("application"), stream)
}

/// How many times each of the [`Writer`]'s line numbers arrived in `group`/`stream`.
fn line_counts(moto: &Moto, group: &str, stream: &str) -> BTreeMap<usize, usize> {
    let mut seen = BTreeMap::new();
    for m in messages(&events(moto, group, stream)) {
        let n: usize = m["log"].as_str().unwrap()[5..11].parse().unwrap();
        *seen.entry(n).or_default() += 1;
    }
    seen
}

#[test]
fn nothing_is_lost_through_an_outage_throttling_and_kill_9() {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let chaos = Chaos::start(moto.addr());
    let node = Node::new(&json!({}));
    let (mut w, group, stream) = web_writer(&node);
    let count = |m: &Moto| events(m, &group, &stream).len();

    let mut agent = node.start(&chaos.url(), &metrics, &moto);
    w.write(2000);
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || count(&moto)
            >= 2000),
        "normal shipping; agent log:\n{}",
        node.agent_log()
    );
    // CloudWatch Logs unreachable while lines are written and files rotate.
    chaos.down();
    w.write(2000);
    std::thread::sleep(Duration::from_secs(5));
    w.write(1000);
    chaos.up();
    // Back, but throttling 30 % of the calls.
    chaos.throttle(30);
    w.write(2000);
    assert!(
        wait_until(Duration::from_mins(1), Duration::from_millis(250), || count(&moto)
            >= 7000),
        "after the outage: {} of 7000; agent log:\n{}",
        count(&moto),
        node.agent_log()
    );
    // kill -9 mid-stream, with unread lines in the live file; while the agent is down kubelet
    // rotates twice and compresses the file the agent was reading; restart. (kubelet rotates at
    // 10 MiB, checked every 10 s: two rotations while an agent restarts is already a lot.)
    w.rotate_now();
    let before_kill = w.rotations;
    w.write(10);
    std::thread::sleep(Duration::from_millis(1500));
    // 910 lines of 203 bytes stay below the writer's 200 KB rotation: the file being read at
    // the kill is the one compressed (a file rotated twice and compressed before the agent ever
    // saw it cannot be told from one already shipped; docs/logs.md says so).
    w.write(900);
    std::thread::sleep(Duration::from_millis(150));
    agent.kill9();
    w.rotate_now();
    w.write(500);
    w.rotate_now();
    w.gzip_older_rotated();
    chaos.throttle(0);
    agent = node.start(&chaos.url(), &metrics, &moto);
    w.write(500);
    let total = w.next;
    // Duplicates make the count reach `total` early at worst; the check of every number below
    // is what counts.
    wait_until(Duration::from_mins(1), Duration::from_millis(250), || {
        count(&moto) >= total
    });
    let seen = line_counts(&moto, &group, &stream);
    let missing: Vec<usize> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    assert!(
        missing.is_empty(),
        "{} lines lost, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    // At most what was in flight or acknowledged but not yet saved at the kill: the checkpoint
    // is saved at most once a second, and the flush interval is 1 s here; the 910 lines of the
    // live file bound it.
    assert!(duplicates <= 910, "{duplicates} duplicates");
    assert!(
        node.agent_log().contains("resuming a log file kubelet compressed"),
        "the gzipped file was resumed"
    );
    eprintln!(
        "{total} lines, {} rotations, {duplicates} duplicates after kill -9; proxy saw {:?} (requests, throttled)",
        w.rotations,
        chaos.counts()
    );
    assert!(chaos.counts().1 > 0, "throttling was exercised");
    assert_eq!(
        w.rotations,
        before_kill + 2,
        "exactly the two rotations of the scenario while down"
    );
    let status = stop(agent);
    assert!(status.success(), "{status:?}");
}

/// Writes `n` lines and waits until they arrived; then CloudWatch Logs throttles every call and
/// `n` more are written, and this returns once they were read and sent (and refused), so they
/// are held unsent (a refused connection would not show that they were read).
fn ship_then_hold(node: &Node, w: &mut Writer, moto: &Moto, chaos: &Chaos, group: &str, stream: &str, n: usize) {
    w.write(n);
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(200), || events(
            moto, group, stream
        )
        .len()
            >= n),
        "normal shipping; agent log:\n{}",
        node.agent_log()
    );
    chaos.throttle(100);
    w.write(n);
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(50), || chaos.counts().1
            > 0),
        "the lines written while every call is throttled were not sent"
    );
}

/// Waits (a minute at most) until the [`Writer`]'s first `total` lines arrived, asserts none is
/// missing, and returns how many times each arrived.
fn all_arrive(moto: &Moto, group: &str, stream: &str, total: usize) -> BTreeMap<usize, usize> {
    wait_until(Duration::from_mins(1), Duration::from_millis(250), || {
        events(moto, group, stream).len() >= total
    });
    let seen = line_counts(moto, group, stream);
    let missing: Vec<usize> = (0..total).filter(|n| !seen.contains_key(n)).collect();
    assert!(missing.is_empty(), "{} lines lost: {missing:?}", missing.len());
    seen
}

/// A reload that replaces the log pipeline while CloudWatch Logs refuses every call loses nothing
/// and sends nothing twice: the old pipeline commits only what was accepted, the output gives up
/// what it still held (queued and being retried), the new pipeline reads that again, and once the
/// endpoint is back every line arrives exactly once.
#[test]
fn a_log_pipeline_replaced_during_an_outage_loses_nothing_and_sends_nothing_twice() {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let chaos = Chaos::start(moto.addr());
    let node = Node::new(&json!({}));
    let (mut w, group, stream) = web_writer(&node);
    let agent = node.start(&chaos.url(), &metrics, &moto);
    ship_then_hold(&node, &mut w, &moto, &chaos, &group, &stream, 500);
    // A tailer key changes while they are held unsent.
    node.write_config(&json!({"exclude_container_globs": ["nothing-matches-*"]}));
    node.wait_for_rebuild();
    w.write(500);
    chaos.throttle(0);
    let total = w.next;
    let seen = all_arrive(&moto, &group, &stream, total);
    let twice: Vec<(&usize, &usize)> = seen.iter().filter(|(_, c)| **c > 1).collect();
    // Every call was throttled until after the rebuild: none of the withdrawn requests can have
    // been accepted, so not one line may arrive twice.
    assert!(
        twice.is_empty(),
        "{} lines arrived more than once: {twice:?}",
        twice.len()
    );
    // The lines read during the outage were held by the output (queued or being retried).
    let log = node.agent_log();
    let withdrawn: usize = log
        .split("withdrawn=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the output gave up nothing; agent log:\n{log}"));
    assert!((1..=500).contains(&withdrawn), "{withdrawn} withdrawn");
    let status = stop(agent);
    assert!(status.success(), "{status:?}");
}

/// SIGTERM while a reload replaces the log pipeline and CloudWatch Logs refuses every call: the
/// rebuild gives way to the drain, the agent exits within its shutdown grace, and after a
/// restart every line arrives.
#[test]
fn a_shutdown_during_a_log_pipeline_rebuild_drains_and_loses_nothing() {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let chaos = Chaos::start(moto.addr());
    let node = Node::new(&json!({"shutdown_grace_secs": 2}));
    let (mut w, group, stream) = web_writer(&node);
    let agent = node.start(&chaos.url(), &metrics, &moto);
    ship_then_hold(&node, &mut w, &moto, &chaos, &group, &stream, 300);
    node.write_config(&json!({"shutdown_grace_secs": 2, "labels": true}));
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(20), || node
            .agent_log()
            .contains("replacing the log pipeline")),
        "the rebuild did not start; agent log:\n{}",
        node.agent_log()
    );
    let started = std::time::SystemTime::now();
    let status = stop(agent);
    assert!(status.success(), "{status:?}");
    // The drain's 2 s grace and the checkpoints' 5 s bound, not the rebuild's 5 s first.
    let took = started.elapsed().unwrap();
    assert!(took < Duration::from_secs(12), "took {took:?}");
    assert!(
        node.agent_log().contains("stopping during a log pipeline rebuild"),
        "{}",
        node.agent_log()
    );
    chaos.throttle(0);
    let agent = node.start(&chaos.url(), &metrics, &moto);
    let total = w.next;
    all_arrive(&moto, &group, &stream, total);
    let status = stop(agent);
    assert!(status.success(), "{status:?}");
}

/// `kinsight.logs.application_log_group` with the namespace in it: each namespace's application
/// logs reach a group kinsight creates for it (with the retention), dataplane containers stay in
/// the dataplane group, and a reload back to the Container Insights group moves the next lines
/// there, none lost or sent twice.
#[test]
fn application_logs_go_to_a_group_per_namespace_and_back() {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let template = json!({
        "application_log_group": "/aws/containerinsights/{cluster_name}/application/{namespace_name}",
        "retention_days": 7
    });
    let node = Node::new(&template);
    let web = node.container("shop", "web-1", "uid-1", "web", ID);
    let billing = node.container("billing", "invoices-7", "uid-2", "invoices", ID2);
    let aws_node = node.container("kube-system", "aws-node-x", "uid-3", "aws-node", ID);
    append(&web, "2026-12-06T10:00:00Z stdout F shop 1\n");
    append(&billing, "2026-12-06T10:00:00Z stdout F billing 1\n");
    append(&aws_node, "2026-12-06T10:00:00Z stdout F ipamd 1\n");
    let agent = node.start(&moto.endpoint, &metrics, &moto);

    let web_stream = format!("{NODE}-application.var.log.containers.web-1_shop_web-{ID}.log");
    let billing_stream = format!("{NODE}-application.var.log.containers.invoices-7_billing_invoices-{ID2}.log");
    let aws_node_stream = format!("{NODE}-dataplane.tail.var.log.containers.aws-node-x_kube-system_aws-node-{ID}.log");
    let logs = |group: &str, stream: &str| -> Vec<String> {
        messages(&events(&moto, group, stream))
            .iter()
            .map(|m| m["log"].as_str().unwrap().to_owned())
            .collect()
    };
    let shop = format!("{}/shop", node.group("application"));
    let billing_group = format!("{}/billing", node.group("application"));
    assert!(
        wait_until(Duration::from_secs(40), Duration::from_millis(200), || {
            logs(&shop, &web_stream).len() == 1
                && logs(&billing_group, &billing_stream).len() == 1
                && logs(&node.group("dataplane"), &aws_node_stream).len() == 1
        }),
        "per-namespace groups not filled; agent log:\n{}",
        node.agent_log()
    );
    assert_eq!(logs(&shop, &web_stream), ["shop 1"]);
    assert_eq!(logs(&billing_group, &billing_stream), ["billing 1"]);
    let (_, groups) = moto.logs_call(
        "DescribeLogGroups",
        &json!({"logGroupNamePrefix": node.group("application")}),
    );
    let mut made: Vec<(&str, &Value)> = groups["logGroups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| (g["logGroupName"].as_str().unwrap(), &g["retentionInDays"]))
        .collect();
    made.sort_by_key(|(name, _)| *name);
    assert_eq!(
        made,
        [(billing_group.as_str(), &json!(7)), (shop.as_str(), &json!(7))],
        "only the namespaces' groups, with the retention: {groups}"
    );

    // Back to the Container Insights group: the log pipeline is replaced and resumes from its
    // checkpoints, so the next line goes to the new group and the first is not sent again.
    node.write_config(&json!({"retention_days": 7}));
    node.wait_for_rebuild();
    append(&web, "2026-12-06T10:00:01Z stdout F shop 2\n");
    assert!(
        wait_until(Duration::from_secs(40), Duration::from_millis(200), || !logs(
            &node.group("application"),
            &web_stream
        )
        .is_empty()),
        "the reload did not move the container back; agent log:\n{}",
        node.agent_log()
    );
    assert_eq!(logs(&node.group("application"), &web_stream), ["shop 2"]);
    assert_eq!(logs(&shop, &web_stream), ["shop 1"]);
    assert!(stop(agent).success());
}

/// A CloudWatch agent `collect_list` works as it did with the agent: files to the named group and
/// stream, lines joined and timestamped, filtered, decoded, the group created with its retention;
/// and every matching file to its own stream with `publish_multi_logs`.
#[test]
fn collect_list_files_reach_cloudwatch_logs_as_the_agent_sent_them() {
    let (Some(moto), metrics) = (Moto::start(), StrictCloudwatch::start()) else {
        return;
    };
    let node = Node::new(&json!({}));
    node.write_config_with(
        &json!({"partial_flush_timeout_ms": 1000}),
        &json!({"logs_collected": {"files": {"collect_list": [
            {"file_path": "/var/log/app/*.log", "log_group_name": "/e2e/app",
             "log_stream_name": "{hostname}", "timestamp_format": "%d/%b/%Y:%H:%M:%S %z",
             "encoding": "latin1", "retention_in_days": 7,
             "filters": [{"type": "exclude", "expression": "healthz"}]},
            {"file_path": "/var/log/jobs/**/*.log", "publish_multi_logs": true}
        ]}}}),
    );
    let app = node.root("var/log/app");
    let jobs = node.root("var/log/jobs/nightly");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(&jobs).unwrap();
    // Latin-1 bytes (0xe9 is é) and a Java stack trace.
    let day = Date::yesterday();
    let mut bytes = day.shift("10.0.0.1 [06/Dec/2026:10:00:00 +0000] caf").into_bytes();
    bytes.extend_from_slice(b"\xe9 ok\n");
    bytes.extend_from_slice(
        day.shift("10.0.0.1 [06/Dec/2026:10:00:01 +0000] GET /healthz\n")
            .as_bytes(),
    );
    bytes.extend_from_slice(
        day.shift("10.0.0.1 [06/Dec/2026:10:00:02 +0000] java.lang.Error: x\n\tat a.B(B.java:1)\n")
            .as_bytes(),
    );
    std::fs::write(app.join("access.log"), &bytes).unwrap();
    append(&jobs.join("a.log"), "job a\n");
    append(&jobs.join("b.log"), "job b\n");
    let agent = node.start(&moto.endpoint, &metrics, &moto);
    append(
        &app.join("access.log"),
        "10.0.0.1 [06/Dec/2026:10:00:03 +0000] after start\n",
    );

    assert!(
        wait_until(Duration::from_secs(40), Duration::from_millis(200), || events(
            &moto, "/e2e/app", NODE
        )
        .len()
            >= 3),
        "collect_list events did not arrive; agent log:\n{}",
        node.agent_log()
    );
    let got = events(&moto, "/e2e/app", NODE);
    let lines: Vec<(&str, i64)> = got
        .iter()
        .map(|e| (e["message"].as_str().unwrap(), e["timestamp"].as_i64().unwrap()))
        .collect();
    let t0 = day.midnight_ms + 10 * 3_600_000; // 10:00:00Z
    let expected: Vec<(String, i64)> = [
        ("10.0.0.1 [06/Dec/2026:10:00:00 +0000] café ok", t0),
        (
            "10.0.0.1 [06/Dec/2026:10:00:02 +0000] java.lang.Error: x\n\tat a.B(B.java:1)",
            t0 + 2000,
        ),
        ("10.0.0.1 [06/Dec/2026:10:00:03 +0000] after start", t0 + 3000),
    ]
    .into_iter()
    .map(|(m, t)| (day.shift(m), t))
    .collect();
    let lines: Vec<(String, i64)> = lines.into_iter().map(|(m, t)| (m.to_owned(), t)).collect();
    assert_eq!(lines, expected);
    let (_, groups) = moto.logs_call("DescribeLogGroups", &json!({"logGroupNamePrefix": "/e2e/app"}));
    assert_eq!(groups["logGroups"][0]["retentionInDays"], 7, "{groups}");
    for name in ["a", "b"] {
        let group = format!("/var/log/jobs/nightly/{name}.log");
        assert!(
            wait_until(Duration::from_secs(20), Duration::from_millis(200), || events(
                &moto, &group, NODE
            )
            .len()
                == 1),
            "{group}: {:?}",
            events(&moto, &group, NODE)
        );
    }
    assert!(stop(agent).success());
}
