//! The built binary, end to end on this machine: exit codes, `once` on the real host and on a
//! fixture tree, `run` with live reload, and the telemetry endpoint.

#![allow(
    clippy::float_cmp,
    reason = "fixture values are exact binary fractions, and the spec's oracle is exact"
)]

mod support;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;
use support::{find_metric, json_lines, kinsight, run, try_http_request, wait_until};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn config_validate_exit_codes() {
    let ok = run(kinsight()
        .args(["config", "validate"])
        .arg(repo("config/cwagentconfig-standard.json")));
    assert_eq!(ok.status.code(), Some(0), "{}", ok.stderr);

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    write(
        &bad,
        r#"{"logs":{"force_flush_interval":0,"metrics_collected":{"kubernetes":{"cluster_name":"c","metrics_colection_interval":5}}}}"#,
    );
    let r = run(kinsight().args(["config", "validate"]).arg(&bad));
    assert_eq!(r.status.code(), Some(78), "{}", r.stderr);
    assert!(r.stderr.contains("logs.force_flush_interval"), "{}", r.stderr);
    assert!(
        r.stderr.contains("metrics_collection_interval"),
        "did-you-mean missing: {}",
        r.stderr
    );

    let missing = run(kinsight()
        .args(["config", "validate"])
        .arg(dir.path().join("nope.json")));
    assert_eq!(missing.status.code(), Some(78), "{}", missing.stderr);
    assert!(missing.stderr.contains("nope.json"), "{}", missing.stderr);
}

#[test]
fn usage_errors_exit_64_and_help_exits_0() {
    let r = run(kinsight().args(["run", "--no-such-flag"]));
    assert_eq!(r.status.code(), Some(64), "{}", r.stderr);
    let r = run(kinsight().args(["once", "--output", "kafka"]));
    assert_eq!(r.status.code(), Some(64), "{}", r.stderr);
    let r = run(kinsight().args(["once", "--interval", "soon"]));
    assert_eq!(r.status.code(), Some(64), "{}", r.stderr);
    let r = run(kinsight().arg("--help"));
    assert_eq!(r.status.code(), Some(0));
    assert!(r.stdout.contains("kinsight run --output stdout"), "{}", r.stdout);
}

#[test]
fn a_bad_config_stops_run_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("c.json");
    write(&bad, "{\n  \"agent\": {\"debug\": \"yes\"}\n");
    let r = run(kinsight().args(["run", "--output", "stdout", "--config"]).arg(&bad));
    assert_eq!(r.status.code(), Some(78), "{}", r.stderr);
    assert!(r.stderr.contains("line"), "malformed JSON must say where: {}", r.stderr);
    assert!(r.stdout.is_empty());
}

/// The README's first command, as a one-shot: node CPU and memory utilisation from this
/// machine's /proc and cgroups, on the embedded default configuration.
#[test]
fn once_on_this_machine_emits_node_utilization() {
    let r = run(kinsight().args(["once", "--output", "stdout", "--interval", "1s"]));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    for name in ["node_cpu_utilization", "node_memory_utilization"] {
        let found = find_metric(&lines, name);
        assert!(!found.is_empty(), "{name} missing from:\n{}", r.stdout);
        for d in found {
            assert_eq!(d["namespace"], "ContainerInsights");
            assert_eq!(d["unit"], "Percent");
            assert_eq!(d["dimensions"]["ClusterName"], "local");
            let v = d["value"].as_f64().unwrap();
            // A fully loaded machine can read a little above 100 % CPU: the counter is read a
            // moment after the sample's timestamp, and over a 1 s window a few ms of scheduling
            // delay show. Upstream does not clamp either; 10 % of slack covers it.
            let max = if name == "node_cpu_utilization" { 110.0 } else { 100.0 };
            assert!((0.0..=max).contains(&v), "{name} = {v}");
        }
    }
    let mem = find_metric(&lines, "node_memory_utilization")[0]["value"]
        .as_f64()
        .unwrap();
    assert!(mem > 0.0, "a running machine uses some memory");
    let limit = find_metric(&lines, "node_cpu_limit")[0]["value"].as_f64().unwrap();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    assert_eq!(limit, cpus as f64 * 1000.0);
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let ts = lines[0]["timestamp"].as_i64().unwrap();
    assert!((now_ms - ts).abs() < 60_000, "timestamp {ts} is not now ({now_ms})");
}

/// A cgroup v2 node as a fixture tree: exact values, and `--host-root` really re-roots.
fn v2_fixture(root: &Path) {
    write(
        &root.join("proc/cpuinfo"),
        "processor\t: 0\n\nprocessor\t: 1\n\nprocessor\t: 2\n\nprocessor\t: 3\n",
    );
    write(
        &root.join("proc/meminfo"),
        "MemTotal:        4194304 kB\nMemFree:          100 kB\n",
    );
    write(&root.join("proc/sys/kernel/hostname"), "fixture-node\n");
    write(&root.join("sys/fs/cgroup/cgroup.controllers"), "cpu io memory pids\n");
    write(
        &root.join("sys/fs/cgroup/cpu.stat"),
        "usage_usec 1000000\nuser_usec 600000\nsystem_usec 400000\n",
    );
    // anon + file = 1 GiB + 1 GiB; inactive_file 1 GiB ⇒ working set 1 GiB of 4 GiB = 25 %.
    write(
        &root.join("sys/fs/cgroup/memory.stat"),
        "anon 1073741824\nfile 1073741824\ninactive_file 1073741824\n",
    );
}

#[test]
fn once_on_a_v2_fixture_tree_gives_exact_values() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let r = run(kinsight()
        .args(["once", "--output", "stdout", "--interval", "100ms", "--host-root"])
        .arg(dir.path()));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    let one = |name: &str| -> f64 {
        let found = find_metric(&lines, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0]["value"].as_f64().unwrap()
    };
    assert_eq!(one("node_memory_utilization"), 25.0);
    assert_eq!(one("node_memory_working_set"), 1_073_741_824.0);
    assert_eq!(one("node_memory_limit"), 4_294_967_296.0);
    assert_eq!(one("node_cpu_limit"), 4000.0);
    // The counters did not move between the two samples: a real zero rate, not an absent one.
    assert_eq!(one("node_cpu_utilization"), 0.0);
    assert_eq!(one("node_cpu_usage_total"), 0.0);
    let d = &find_metric(&lines, "node_memory_utilization")[0]["dimensions"];
    assert_eq!(
        d,
        &serde_json::json!({"ClusterName": "local"}),
        "no InstanceId ⇒ only the ClusterName set (a set is emitted only when all its dimensions are known)"
    );
}

#[test]
fn once_scrapes_the_configured_dcgm_exporter_into_gpu_datums() {
    let exporter = support::dcgm::dcgm_exporter(support::dcgm::DCGM_EXPORTER_TEXT);
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let config = dir.path().join("cwagentconfig.json");
    write(
        &config,
        &format!(
            r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"enhanced_container_insights":true}}}}}},
                "kinsight":{{"metrics":{{"metadata_source":"none","dcgm_exporter_url":"{}/metrics"}}}}}}"#,
            exporter.url()
        ),
    );
    let r = run(kinsight()
        .args(["once", "--output", "stdout", "--interval", "500ms", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    // Two GPUs, each with the {ClusterName} set (no InstanceId here).
    let util: Vec<f64> = find_metric(&lines, "node_gpu_utilization")
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(util, [87.0, 0.0], "{}", r.stderr);
    // Without pod metadata the exporter's pod name stands for PodName.
    let pod = find_metric(&lines, "pod_gpu_utilization");
    assert!(
        pod.iter()
            .any(|m| m["dimensions"]["PodName"] == "web-7d4b9c8f6d-00000" && m["value"] == 87.0),
        "{pod:?}"
    );
    assert!(exporter.requests().iter().all(|q| q.path == "/metrics"));
}

/// AWS Neuron: the wiring end to end, as for the DCGM exporter.
#[test]
fn once_scrapes_the_configured_neuron_monitor_into_neuron_datums() {
    let (exporter, _answer) = support::neuron_monitor::neuron_monitor(support::neuron_monitor::NEURON_MONITOR_TEXT);
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let config = dir.path().join("cwagentconfig.json");
    write(
        &config,
        &format!(
            r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"enhanced_container_insights":true}}}}}},
                "kinsight":{{"metrics":{{"metadata_source":"none","neuron_monitor_url":"{}/metrics"}}}}}}"#,
            exporter.url()
        ),
    );
    let r = run(kinsight()
        .args(["once", "--output", "stdout", "--interval", "500ms", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&config));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    // The four cores the runtime uses, each with the {ClusterName} set (no InstanceId here).
    let util: Vec<f64> = find_metric(&lines, "node_neuroncore_utilization")
        .iter()
        .map(|m| m["value"].as_f64().unwrap())
        .collect();
    assert_eq!(
        util,
        [0.8512 * 100.0, 0.4231 * 100.0, 0.0512 * 100.0, 0.0],
        "{}",
        r.stderr
    );
    let latency = find_metric(&lines, "node_neuron_execution_latency");
    assert!(latency.iter().all(|m| m["value"] == 0.0016), "{latency:?}");
    // No kubelet here: no pod records.
    assert!(find_metric(&lines, "pod_neuroncore_utilization").is_empty());
    assert!(exporter.requests().iter().all(|q| q.path == "/metrics"));
}

#[test]
fn a_missing_host_mount_is_a_clear_runtime_error() {
    let dir = tempfile::tempdir().unwrap();
    write(&dir.path().join("proc/cpuinfo"), "processor\t: 0\n");
    write(&dir.path().join("proc/meminfo"), "MemTotal: 1024 kB\n");
    let r = run(kinsight()
        .args(["once", "--output", "stdout", "--host-root"])
        .arg(dir.path()));
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert!(r.stderr.contains("is the host /sys mounted?"), "{}", r.stderr);
}

#[test]
fn once_to_a_directory_writes_the_same_lines() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let out = dir.path().join("out");
    let r = run(kinsight()
        .args(["once", "--interval", "50ms", "--host-root"])
        .arg(dir.path())
        .arg("--output")
        .arg(format!("dir:{}", out.display())));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.stdout.is_empty(), "dir output must not print data: {}", r.stdout);
    let text = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    let lines = json_lines(&text);
    assert!(!find_metric(&lines, "node_memory_utilization").is_empty(), "{text}");
}

/// A running agent and its stdout lines, delivered through a channel as they come.
struct Agent {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Agent {
    fn start(args: &[&str], config: &Path, host_root: &Path) -> Agent {
        let mut cmd = kinsight();
        cmd.args(args)
            .arg("--config")
            .arg(config)
            .arg("--host-root")
            .arg(host_root);
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::sync_channel(10_000);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines }
    }

    fn next_metric(&self, name: &str, timeout: Duration) -> Option<Value> {
        let deadline = std::time::SystemTime::now() + timeout;
        loop {
            let left = deadline.duration_since(std::time::SystemTime::now()).ok()?;
            let v = self.lines.recv_timeout(left).ok()?;
            if v["metric_name"] == name {
                return Some(v);
            }
        }
    }

    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        let mut status = None;
        assert!(
            wait_until(Duration::from_secs(10), Duration::from_millis(20), || {
                status = self.child.try_wait().unwrap();
                status.is_some()
            }),
            "kinsight did not stop on SIGTERM"
        );
        status.unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ConfigMap mechanics: the file is a symlink through `..data`, swapped atomically by kubelet.
fn configmap_swap(dir: &Path, generation: u32, text: &str) {
    let gen_dir = dir.join(format!("..2026_11_28_00_00_0{generation}.000"));
    write(&gen_dir.join("cwagentconfig.json"), text);
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(gen_dir.file_name().unwrap(), &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    let link = dir.join("cwagentconfig.json");
    if link.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("..data/cwagentconfig.json", &link).unwrap();
    }
}

fn local_config(interval: u32, output: &str, telemetry: &str) -> String {
    format!(
        r#"{{"agent":{{"metrics_collection_interval":{interval}}},
            "kinsight":{{"output":"{output}","metrics":{{"metadata_source":"none"}},"logs":{{"enabled":false}},
                         "telemetry":{{"listen_address":{telemetry}}}}}}}"#
    )
}

#[test]
fn run_serves_telemetry_and_applies_a_new_output_without_restart() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    let cm = root.path().join("configmap");
    let port = free_port();
    configmap_swap(&cm, 1, &local_config(1, "stdout", &format!("\"127.0.0.1:{port}\"")));
    let agent = Agent::start(&["run"], &cm.join("cwagentconfig.json"), root.path());

    let first = agent.next_metric("node_memory_utilization", Duration::from_secs(15));
    assert_eq!(first.expect("no datum within 15 s")["value"], 25.0);
    let base = format!("http://127.0.0.1:{port}");
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            matches!(
                try_http_request("GET", &format!("{base}/readyz"), &[], ""),
                Ok((200, _))
            )
        }),
        "/readyz never became ready"
    );
    let (status, body) = try_http_request("GET", &format!("{base}/healthz"), &[], "").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let (_, metrics) = try_http_request("GET", &format!("{base}/metrics"), &[], "").unwrap();
    assert!(
        metrics.contains("# TYPE kinsight_metrics_cycles_total counter"),
        "{metrics}"
    );

    // Switch the output to a directory through the ConfigMap: lines must appear there while
    // the process keeps running (same PID, no restart).
    let out = root.path().join("out");
    configmap_swap(
        &cm,
        2,
        &local_config(1, &format!("dir:{}", out.display()), &format!("\"127.0.0.1:{port}\"")),
    );
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|t| t.contains("node_memory_utilization"))
        }),
        "the new output was not applied"
    );
    let (_, metrics) = try_http_request("GET", &format!("{base}/metrics"), &[], "").unwrap();
    assert!(
        metrics.contains("kinsight_config_reloads_total{result=\"applied\"} 1"),
        "{metrics}"
    );

    // A broken edit keeps the running config and is counted.
    configmap_swap(&cm, 3, "{\"agent\": {\"metrics_collection_interval\": 0}}");
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            try_http_request("GET", &format!("{base}/metrics"), &[], "")
                .is_ok_and(|(_, m)| m.contains("kinsight_config_reloads_total{result=\"invalid\"} 1"))
        }),
        "the invalid reload was not counted"
    );
    let before = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
            std::fs::read_to_string(out.join("metrics.jsonl"))
                .unwrap()
                .lines()
                .count()
                > before
        }),
        "collection stopped after an invalid config"
    );

    let status = agent.terminate();
    assert!(status.success(), "SIGTERM must exit 0, got {status:?}");
}

fn destination_config(dir: &Path, destination: &str, extra: &str) -> PathBuf {
    let path = dir.join(format!("{destination}.json"));
    write(
        &path,
        &format!(
            r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"fixture"{extra}}}}}}},
                "kinsight":{{"output":"stdout","node_name":"node-a","metrics":{{"destination":"{destination}","metadata_source":"none"}},
                             "logs":{{"enabled":false}},"telemetry":{{"listen_address":null}}}}}}"#
        ),
    );
    path
}

/// Mode `emf`: performance events only, with the `CloudWatchMetrics` directive.
#[test]
fn destination_emf_writes_performance_events_with_the_directive() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let cfg = destination_config(dir.path(), "emf", "");
    let r = run(kinsight()
        .args(["once", "--interval", "50ms", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    assert!(
        lines.iter().all(|l| l["kind"] == "emf"),
        "only events in mode emf:\n{}",
        r.stdout
    );
    let node = lines
        .iter()
        .find(|l| l["message"].as_str().unwrap().contains("\"Type\":\"Node\""))
        .expect("a Node event");
    assert_eq!(node["log_group"], "/aws/containerinsights/fixture/performance");
    assert_eq!(node["log_stream"], "node-a");
    let event: Value = serde_json::from_str(node["message"].as_str().unwrap()).unwrap();
    assert_eq!(event["Version"], "0");
    assert_eq!(event["ClusterName"], "fixture");
    assert_eq!(event["node_cpu_limit"], serde_json::json!(4000));
    assert_eq!(event["node_memory_utilization"], serde_json::json!(25.0));
    assert_eq!(event["Timestamp"], node["timestamp"].as_i64().unwrap().to_string());
    assert_eq!(event["kubernetes"]["host"], "node-a");
    let cwm = event["CloudWatchMetrics"].as_array().expect("directive in mode emf");
    assert!(cwm.iter().all(|e| e["Namespace"] == "ContainerInsights"));
}

/// Mode `both`: datums, plus events without the directive, so nothing is counted twice.
#[test]
fn destination_both_sends_each_datapoint_once() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let cfg = destination_config(dir.path(), "both", "");
    let r = run(kinsight()
        .args(["once", "--interval", "50ms", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    assert!(!find_metric(&lines, "node_memory_utilization").is_empty());
    let events: Vec<Value> = lines
        .iter()
        .filter(|l| l["kind"] == "emf")
        .map(|l| serde_json::from_str(l["message"].as_str().unwrap()).unwrap())
        .collect();
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|e| e.get("CloudWatchMetrics").is_none()),
        "mode both must not extract"
    );

    // disable_metric_extraction with both: events only, still without the directive (no metrics at all).
    let cfg = destination_config(dir.path(), "both", r#","disable_metric_extraction":true"#);
    let r = run(kinsight()
        .args(["once", "--interval", "50ms", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let lines = json_lines(&r.stdout);
    assert!(lines.iter().all(|l| l["kind"] == "emf"), "{}", r.stdout);
}

/// `check` reports the apiserver when pod metadata comes from it: skipped otherwise; reachable
/// through the agent's own client (here a kubeconfig for the test apiserver), then each permission
/// by a `SelfSubjectAccessReview` — a denied essential one (pods) fails the check, another warns;
/// an apiserver that does not answer is a warning (the agent runs on without pod metadata).
#[test]
fn check_reports_apiserver_reachability_and_each_permission() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let api = support::KubeApi::start();
    let kubeconfig = api.kubeconfig(dir.path());
    let cfg = dir.path().join("c.json");
    let check = |metadata: &str| {
        write(
            &cfg,
            &format!(
                r#"{{"agent":{{"metrics_collection_interval":60}},
                "logs":{{"metrics_collected":{{"kubernetes":{{"kube_config_path":"{}"}}}}}},
                "kinsight":{{"output":"stdout","metrics":{{"metadata_source":"{metadata}"}},"logs":{{"enabled":false}},
                             "telemetry":{{"listen_address":null}}}}}}"#,
                kubeconfig.display()
            ),
        );
        let mut cmd = kinsight();
        cmd.args(["check", "--output", "stdout", "--host-root"])
            .arg(dir.path())
            .arg("--config")
            .arg(&cfg)
            .env("K8S_NAMESPACE", "amazon-cloudwatch");
        run(&mut cmd)
    };
    let off = check("none");
    assert!(off.stderr.contains("SKIP  apiserver"), "{}", off.stderr);

    let up = check("apiserver");
    assert!(
        up.stderr.contains("OK    apiserver      reachable, Kubernetes v1.33"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("OK    rbac           list pods: allowed"),
        "{}",
        up.stderr
    );
    assert!(
        up.stderr.contains("OK    rbac           get apps/replicasets: allowed"),
        "{}",
        up.stderr
    );
    assert!(up.status.success(), "{}", up.stderr);
    let reviews = api
        .requests()
        .iter()
        .filter(|q| q.resource == "selfsubjectaccessreviews")
        .count();
    assert_eq!(reviews, kinsight::kube::rbac::PERMISSIONS.len());

    api.deny("watch", "services");
    let partial = check("apiserver");
    assert!(
        partial.stderr.contains("WARN  rbac           watch services: DENIED"),
        "{}",
        partial.stderr
    );
    assert!(partial.status.success(), "{}", partial.stderr);
    api.deny("list", "pods");
    let denied = check("apiserver");
    assert!(
        denied.stderr.contains("FAIL  rbac           list pods: DENIED"),
        "{}",
        denied.stderr
    );
    assert!(!denied.status.success());

    api.set_down(true);
    let down = check("apiserver");
    assert!(
        down.stderr.contains("WARN  apiserver") && down.stderr.contains("unreachable"),
        "{}",
        down.stderr
    );
}

/// A log file that appears while the agent runs is found through inotify, long before the
/// periodic scan (10 s with inotify), and its lines are shipped.
#[test]
fn a_new_log_file_is_found_through_inotify() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    // No `/var/log` at all when the agent starts: it watches the nearest directory that exists.
    assert!(!root.path().join("var").exists());
    let port = free_port();
    let cfg = root.path().join("c.json");
    write(
        &cfg,
        &format!(
            r#"{{"agent":{{"metrics_collection_interval":60}},
                "kinsight":{{"output":"stdout","metrics":{{"metadata_source":"none"}},
                             "logs":{{"host_files":[]}},
                             "paths":{{"state_dir":"/state"}},
                             "telemetry":{{"listen_address":"127.0.0.1:{port}"}}}}}}"#
        ),
    );
    let agent = Agent::start(&["run"], &cfg, root.path());
    let base = format!("http://127.0.0.1:{port}");
    let scans = |trigger: &str| -> u64 {
        let Ok((_, m)) = try_http_request("GET", &format!("{base}/metrics"), &[], "") else {
            return 0;
        };
        m.lines()
            .find_map(|l| l.strip_prefix(&format!("kinsight_log_scans_total{{trigger=\"{trigger}\"}} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || scans("timer")
            >= 1),
        "the first scan did not happen"
    );
    let dir = root.path().join("var/log/pods/shop_web-1_uid-1/web");
    write(
        &dir.join("0.log"),
        "2026-12-06T10:00:00Z stdout F hello from a new pod\n",
    );
    let mut found = None;
    wait_until(Duration::from_secs(8), Duration::from_millis(1), || {
        if let Ok(v) = agent.lines.recv_timeout(Duration::from_millis(100))
            && v["kind"] == "log"
        {
            found = Some(v);
        }
        found.is_some()
    });
    let line = found.expect("the new pod's line was not shipped within 8 s");
    assert!(
        line["message"].as_str().unwrap().contains("hello from a new pod"),
        "{line}"
    );
    assert!(scans("inotify") >= 1, "found by the timer, not by inotify");
    assert!(agent.terminate().success());
}

/// A changed `kinsight.logs.multiline` reaches the running log pipeline: a container's stack
/// traces, shipped line by line before, arrive as one event after the ConfigMap changed.
#[test]
fn a_multiline_rule_applies_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    let cfg = root.path().join("c.json");
    let config = |multiline: &str| {
        format!(
            r#"{{"agent":{{"metrics_collection_interval":60}},
                "kinsight":{{"output":"stdout","metrics":{{"metadata_source":"none"}},
                             "logs":{{"host_files":[]{multiline}}},
                             "paths":{{"state_dir":"/state"}},
                             "telemetry":{{"listen_address":null}}}}}}"#
        )
    };
    write(&cfg, &config(""));
    let log = root.path().join("var/log/pods/shop_orders-1_uid-1/orders/0.log");
    write(&log, "");
    std::fs::create_dir_all(root.path().join("var/log/containers")).unwrap();
    std::os::unix::fs::symlink(
        "/var/log/pods/shop_orders-1_uid-1/orders/0.log",
        root.path().join(format!(
            "var/log/containers/orders-1_shop_orders-{}.log",
            "a".repeat(64)
        )),
    )
    .unwrap();
    let agent = Agent::start(&["run"], &cfg, root.path());
    // Writes a trace and a line after it (which ends the trace under the java rule); returns the
    // `log` of every record up to and including that line.
    let trace_then = |n: u32| -> Vec<String> {
        let t = support::fake_server::expiration_in(0);
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        write!(
            f,
            "{t} stdout F java.lang.IllegalStateException: try {n}\n\
             {t} stdout F \tat shop.Orders.take(Orders.java:42)\n\
             {t} stdout F done {n}\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let end = format!("done {n}");
        wait_until(Duration::from_secs(15), Duration::from_millis(1), || {
            if let Ok(v) = agent.lines.recv_timeout(Duration::from_millis(100))
                && v["kind"] == "log"
            {
                let record: Value = serde_json::from_str(v["message"].as_str().unwrap()).unwrap();
                got.push(record["log"].as_str().unwrap().to_owned());
            }
            got.last().is_some_and(|l| *l == end)
        });
        got
    };
    assert_eq!(
        trace_then(0),
        [
            "java.lang.IllegalStateException: try 0",
            "\tat shop.Orders.take(Orders.java:42)",
            "done 0"
        ],
        "no rule: one event per line"
    );
    write(
        &cfg,
        &config(r#","multiline":[{"preset":"java","container_globs":["orders-*"]}]"#),
    );
    // The reload is picked up within a moment; until then a try still arrives line by line.
    let mut joined = None;
    for n in 1..=20 {
        let got = trace_then(n);
        if got.len() == 2 {
            joined = Some((n, got));
            break;
        }
    }
    let (n, got) = joined.expect("the java rule was not applied after the reload");
    assert_eq!(
        got,
        [
            format!("java.lang.IllegalStateException: try {n}\n\tat shop.Orders.take(Orders.java:42)"),
            format!("done {n}")
        ]
    );
    assert!(agent.terminate().success());
}

/// The `log` field of every complete record in a `dir:` output's `logs.jsonl`.
///
/// The agent may be writing while this reads: a last line without its newline is still being
/// written, so it is left for the next read.
fn logged(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("logs.jsonl"))
        .unwrap_or_default()
        .split_inclusive('\n')
        .filter_map(|l| l.strip_suffix('\n'))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let record: Value = serde_json::from_str(v["message"].as_str().unwrap()).unwrap();
            record["log"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// A counter of the agent's `/metrics`, 0 while it is absent or unreachable.
fn counter(port: u16, series: &str) -> u64 {
    let Ok((_, m)) = try_http_request("GET", &format!("http://127.0.0.1:{port}/metrics"), &[], "") else {
        return 0;
    };
    m.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// An empty container log `var/log/pods/shop_<pod>-1_uid-<pod>/<pod>/0.log` below `root`, with
/// its `/var/log/containers` link.
fn pod_log(root: &Path, pod: &str) -> PathBuf {
    let log = root.join(format!("var/log/pods/shop_{pod}-1_uid-{pod}/{pod}/0.log"));
    write(&log, "");
    std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
    std::os::unix::fs::symlink(
        format!("/var/log/pods/shop_{pod}-1_uid-{pod}/{pod}/0.log"),
        root.join(format!("var/log/containers/{pod}-1_shop_{pod}-{}.log", "a".repeat(64))),
    )
    .unwrap();
    log
}

/// Appends one CRI line of `text`, stamped now.
fn append_cri(log: &Path, text: &str) {
    let t = support::fake_server::expiration_in(0);
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    writeln!(f, "{t} stdout F {text}").unwrap();
}

/// A thread appending `orders N` lines to a log, N from 0, until stopped.
struct Appender {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    written: std::sync::Arc<std::sync::atomic::AtomicU32>,
    thread: std::thread::JoinHandle<()>,
}

impl Appender {
    fn start(log: PathBuf) -> Appender {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let written = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (s, w) = (stop.clone(), written.clone());
        let thread = std::thread::spawn(move || {
            let mut n = 0;
            while !s.load(std::sync::atomic::Ordering::Relaxed) {
                append_cri(&log, &format!("orders {n}"));
                n += 1;
                w.store(n, std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        Appender { stop, written, thread }
    }

    /// Stops the thread; returns how many lines it wrote.
    fn stop(self) -> u32 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap();
        self.written.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// `kinsight.logs.filters` from the configuration reaches the running pipeline: the excluded
/// health checks of `web` are counted and never written, `web`'s other lines and every line of
/// `api` are.
#[test]
fn log_filters_drop_the_records_they_name_and_count_them() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    let cm = root.path().join("configmap");
    let out = root.path().join("out");
    let port = free_port();
    let (web, api) = (pod_log(root.path(), "web"), pod_log(root.path(), "api"));
    for log in [&web, &api] {
        append_cri(log, "GET /healthz 200");
        append_cri(log, "GET /orders 200");
    }
    configmap_swap(
        &cm,
        1,
        &format!(
            r#"{{"agent":{{"metrics_collection_interval":1}},
                "kinsight":{{"output":"dir:{}","metrics":{{"metadata_source":"none"}},
                             "logs":{{"host_files":[],
                                      "filters":[{{"type":"exclude","expression":"GET /healthz",
                                                   "container_globs":["web-*"]}}]}},
                             "paths":{{"state_dir":"/state"}},
                             "telemetry":{{"listen_address":"127.0.0.1:{port}"}}}}}}"#,
            out.display()
        ),
    );
    let agent = Agent::start(&["run"], &cm.join("cwagentconfig.json"), root.path());
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || logged(&out)
            .len()
            == 3
            && counter(port, "kinsight_log_records_total{kind=\"filtered\"}") == 1),
        "got {:?}",
        logged(&out)
    );
    let mut got = logged(&out);
    got.sort();
    assert_eq!(got, ["GET /healthz 200", "GET /orders 200", "GET /orders 200"]);
    assert!(agent.terminate().success());
}

/// Keys the tailer is built with apply without a restart: the log pipeline is replaced and
/// resumes from its checkpoints. Logs turned on, a container excluded, then let in again while a
/// writer appends to another container throughout: every one of its lines arrives exactly once,
/// the excluded container's lines only once it is let in (from its file's start, as after a
/// restart).
#[test]
fn log_settings_apply_without_a_restart_and_lose_nothing() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    let cm = root.path().join("configmap");
    let out = root.path().join("out");
    let port = free_port();
    let config = |logs: &str| {
        format!(
            r#"{{"agent":{{"metrics_collection_interval":1}},
                "kinsight":{{"output":"dir:{}","metrics":{{"metadata_source":"none"}},
                             "logs":{{"host_files":[],{logs}}},
                             "paths":{{"state_dir":"/state"}},
                             "telemetry":{{"listen_address":"127.0.0.1:{port}"}}}}}}"#,
            out.display()
        )
    };
    let (orders, noisy) = (pod_log(root.path(), "orders"), pod_log(root.path(), "noisy"));
    append_cri(&noisy, "noisy 0");
    configmap_swap(&cm, 1, &config(r#""enabled":false"#));
    let agent = Agent::start(&["run"], &cm.join("cwagentconfig.json"), root.path());
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
            counter(port, "kinsight_config_reloads_total{result=\"applied\"}") == 0
                && std::fs::read_to_string(out.join("metrics.jsonl")).is_ok_and(|t| !t.is_empty())
        }),
        "the agent did not start"
    );

    // A writer appends to `orders` until told to stop, across both rebuilds.
    let writer = Appender::start(orders);
    let written = writer.written.clone();
    let arrived = |line: &str| {
        let line = line.to_owned();
        let out = out.clone();
        move || logged(&out).contains(&line)
    };
    // Whether an `orders` line written after now arrives: by then the agent read past this point.
    let read_past_now = || {
        let after = format!("orders {}", written.load(std::sync::atomic::Ordering::Relaxed) + 5);
        wait_until(Duration::from_secs(15), Duration::from_millis(20), arrived(&after))
    };
    assert!(logged(&out).is_empty(), "logs were off");

    // Logs on, `noisy` excluded: the pipeline starts, and reads `orders` from its start.
    configmap_swap(&cm, 2, &config(r#""exclude_container_globs":["noisy-*"]"#));
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), arrived("orders 0")),
        "turning logs on did not start the pipeline"
    );
    append_cri(&noisy, "noisy 1");
    assert!(read_past_now(), "orders stopped arriving");
    assert!(
        !logged(&out).iter().any(|l| l.starts_with("noisy")),
        "an excluded container was shipped"
    );

    // Let `noisy` in again: the pipeline is replaced and ships its file from the start.
    configmap_swap(&cm, 3, &config(r#""exclude_container_globs":[]"#));
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), arrived("noisy 1")),
        "the new exclusion globs were not applied"
    );
    assert!(read_past_now(), "orders stopped arriving after the rebuild");
    let n = writer.stop();
    let last = format!("orders {}", n - 1);
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(20), arrived(&last)),
        "the last line did not arrive"
    );
    assert_eq!(
        counter(port, "kinsight_log_pipeline_rebuilds_total{result=\"rebuilt\"}"),
        2
    );
    assert!(agent.terminate().success());

    let got = logged(&out);
    let mut seen = vec![0_u32; n as usize];
    for l in &got {
        if let Some(i) = l.strip_prefix("orders ") {
            seen[i.parse::<usize>().unwrap()] += 1;
        }
    }
    let wrong: Vec<_> = seen.iter().enumerate().filter(|(_, c)| **c != 1).collect();
    assert!(
        wrong.is_empty(),
        "orders lines not exactly once (line, times): {wrong:?}"
    );
    let noisy_lines: Vec<_> = got.iter().filter(|l| l.starts_with("noisy")).collect();
    assert_eq!(noisy_lines, ["noisy 0", "noisy 1"]);
}

/// `agent.debug` and `kinsight.telemetry.log_format` changed in the ConfigMap apply to the running
/// process: debug lines appear, as JSON.
#[test]
fn own_log_settings_apply_without_a_restart() {
    let root = tempfile::tempdir().unwrap();
    v2_fixture(root.path());
    let cm = root.path().join("configmap");
    let out = root.path().join("out");
    let config = |debug: bool, format: &str| {
        format!(
            r#"{{"agent":{{"metrics_collection_interval":1,"debug":{debug}}},
                "kinsight":{{"output":"dir:{}","metrics":{{"metadata_source":"none"}},"logs":{{"enabled":false}},
                             "telemetry":{{"listen_address":null,"log_format":"{format}"}}}}}}"#,
            out.display()
        )
    };
    configmap_swap(&cm, 1, &config(false, "text"));
    let stderr = root.path().join("stderr");
    let mut child = kinsight()
        .args(["run", "--config"])
        .arg(cm.join("cwagentconfig.json"))
        .arg("--host-root")
        .arg(root.path())
        .env_remove("KINSIGHT_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let cycles = || {
        std::fs::read_to_string(out.join("metrics.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("node_memory_utilization"))
            .count()
    };
    let logged = || std::fs::read_to_string(&stderr).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(15), Duration::from_millis(50), || cycles() >= 2),
        "no cycles: {}",
        logged()
    );
    assert!(
        !logged().contains("collection cycle done"),
        "debug was off: {}",
        logged()
    );
    configmap_swap(&cm, 2, &config(true, "json"));
    let on = wait_until(Duration::from_secs(15), Duration::from_millis(50), || {
        logged()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|v| v["message"] == "collection cycle done" && v["level"] == "DEBUG")
    });
    let _ = child.kill();
    let _ = child.wait();
    assert!(on, "no debug lines as JSON: {}", logged());
    assert!(logged().contains("agent.debug applied"), "{}", logged());
}

/// `check` names each `collect_list` entry's files and group, or warns that nothing matches.
#[test]
fn check_reports_collect_list_entries() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    std::fs::create_dir_all(dir.path().join("var/log/app")).unwrap();
    std::fs::write(dir.path().join("var/log/app/api.log"), "x\n").unwrap();
    let cfg = dir.path().join("c.json");
    write(
        &cfg,
        r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"c"}},
                    "logs_collected":{"files":{"collect_list":[
                        {"file_path":"/var/log/app/*.log","log_group_name":"/app/{hostname}"},
                        {"file_path":"/var/log/none/x.log"}]}}},
            "kinsight":{"node_name":"node-1","telemetry":{"listen_address":null}}}"#,
    );
    let mut cmd = kinsight();
    cmd.args(["check", "--output", "stdout", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(&cfg);
    let r = run(&mut cmd);
    assert!(
        r.stderr.contains(
            "collect_list   [0] /var/log/app/*.log: 1 file(s) collected, e.g. /var/log/app/api.log to /app/node-1 / node-1"
        ),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr
            .contains("WARN  collect_list   [1] /var/log/none/x.log: no file matches yet"),
        "{}",
        r.stderr
    );
}

/// `check` names the application group a template makes, and warns when the shipped IAM policy
/// does not cover it.
#[test]
fn check_reports_the_application_group_template() {
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let pod = dir.path().join("var/log/pods/shop_web-1_uid-1/web");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(pod.join("0.log"), "").unwrap();
    let cfg = dir.path().join("c.json");
    let check = |template: &str| {
        write(
            &cfg,
            &serde_json::json!({"logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c"}}},
                    "kinsight": {"node_name": "node-1", "telemetry": {"listen_address": null},
                                 "logs": {"application_log_group": template}}})
            .to_string(),
        );
        let mut cmd = kinsight();
        cmd.args(["check", "--output", "stdout", "--host-root"])
            .arg(dir.path())
            .arg("--config")
            .arg(&cfg);
        run(&mut cmd).stderr
    };
    let inside = check("/aws/containerinsights/{cluster_name}/application/{namespace_name}");
    assert!(
        inside.contains(
            "OK    application    logs to /aws/containerinsights/{cluster_name}/application/{namespace_name}, \
             e.g. /aws/containerinsights/c/application/shop\n"
        ),
        "{inside}"
    );
    let outside = check("/eks/{namespace_name}");
    assert!(
        outside.contains(
            "WARN  application    logs to /eks/{namespace_name}, e.g. /eks/shop: outside /aws/containerinsights/c/"
        ),
        "{outside}"
    );
}

/// Issue #9: a fixture whose `proc/sys/kernel/hostname` is a symlink to a file outside the
/// host root made `check` print that file. Reads now resolve inside the root.
#[test]
fn check_never_prints_a_file_outside_the_host_root() {
    let outside = tempfile::tempdir().unwrap();
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "outside-the-root-7f3a\n").unwrap();
    let dir = tempfile::tempdir().unwrap();
    v2_fixture(dir.path());
    let hostname = dir.path().join("proc/sys/kernel/hostname");
    std::fs::remove_file(&hostname).unwrap();
    std::os::unix::fs::symlink(&secret, &hostname).unwrap();
    let cfg = dir.path().join("c.json");
    write(
        &cfg,
        r#"{"kinsight":{"metrics":{"metadata_source":"none"},"logs":{"enabled":false},
            "telemetry":{"listen_address":null}}}"#,
    );
    for args in [&["check"][..], &["once", "--interval", "100ms"][..]] {
        let mut cmd = kinsight();
        cmd.args(args)
            .args(["--output", "stdout", "--host-root"])
            .arg(dir.path())
            .arg("--config")
            .arg(&cfg);
        let r = run(&mut cmd);
        assert!(!r.stdout.contains("outside-the-root"), "{args:?}: {}", r.stdout);
        assert!(!r.stderr.contains("outside-the-root"), "{args:?}: {}", r.stderr);
    }
}

#[path = "../benches/support/synthetic.rs"]
mod synthetic;

/// The descriptor budget (README "How the files are read"): `check` says whether this node's
/// pods fit in it, and past it the agent reads by path with the same results. `ulimit -n 300`
/// (soft and hard) leaves room for 4 held cgroups, against 40 pods.
#[test]
fn a_low_open_files_limit_is_reported_and_changes_no_result() {
    let dir = tempfile::tempdir().unwrap();
    let node = synthetic::Node::create(&dir.path().join("node"), 40, 3);
    let cfg = dir.path().join("c.json");
    write(
        &cfg,
        r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"lim"}}},
            "kinsight":{"logs":{"enabled":false},"telemetry":{"listen_address":null}}}"#,
    );
    let limited = |args: &[&str]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .stdin(Stdio::null())
            .args(["-c", "ulimit -n 300 && exec \"$0\" \"$@\""])
            .arg(support::kinsight_bin())
            .args(args);
        cmd
    };
    let root = node.root.to_str().unwrap();
    let cfg = cfg.to_str().unwrap();
    let pods = node.pod_list_path();
    let check = ["check", "--output", "stdout", "--host-root", root, "--config", cfg];
    let ok = run(kinsight().args(check));
    assert!(
        ok.stderr.contains("OK    open files") && ok.stderr.contains("40 pods here"),
        "{}",
        ok.stderr
    );
    let low = run(&mut limited(&check));
    assert!(
        low.stderr.contains("WARN  open files") && low.stderr.contains("room to hold 4 cgroups open"),
        "{}",
        low.stderr
    );
    assert!(low.status.success(), "a warning, not a failure: {}", low.stderr);

    let once = [
        "once",
        "--output",
        "stdout",
        "--interval",
        "1s",
        "--host-root",
        root,
        "--config",
        cfg,
        "--pods-file",
        pods.to_str().unwrap(),
    ];
    let series = |r: &support::Run| -> Vec<String> {
        assert!(r.status.success(), "{}", r.stderr);
        let mut v: Vec<String> = json_lines(&r.stdout)
            .iter()
            .filter(|l| l["metric_name"].as_str().is_some_and(|m| m.starts_with("pod_")))
            .map(|l| format!("{} {}", l["metric_name"], l["dimensions"]))
            .collect();
        v.sort();
        v
    };
    let full = series(&run(kinsight().args(once)));
    let by_path = series(&run(&mut limited(&once)));
    assert!(full.len() >= 40 * 9, "{} pod datums", full.len());
    assert_eq!(full, by_path);
}

/// `/metrics` shows what the collector holds open (one cgroup and one process per pod, README
/// "How the files are read") and the CPU time of the last cycle.
#[test]
fn metrics_show_held_objects_and_cycle_cpu_time() {
    let dir = tempfile::tempdir().unwrap();
    let node = synthetic::Node::create(&dir.path().join("node"), 40, 3);
    let port = free_port();
    let cfg = dir.path().join("c.json");
    write(
        &cfg,
        &format!(
            r#"{{"agent":{{"metrics_collection_interval":1}},
                "logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"held"}}}}}},
                "kinsight":{{"output":"stdout","logs":{{"enabled":false}},
                             "telemetry":{{"listen_address":"127.0.0.1:{port}"}}}}}}"#
        ),
    );
    let pods = node.pod_list_path();
    let _agent = Agent::start(&["run", "--pods-file", pods.to_str().unwrap()], &cfg, &node.root);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let mut last = String::new();
    let held = wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        last = try_http_request("GET", &url, &[], "")
            .map(|(_, m)| m)
            .unwrap_or_default();
        last.contains("kinsight_host_held_objects{kind=\"cgroup\"} 40")
            && last.contains("kinsight_host_held_objects{kind=\"process\"} 40")
            && last.contains("kinsight_metrics_cycle_cpu_seconds ")
    });
    assert!(held, "{last}");
    let cpu: f64 = last
        .lines()
        .find_map(|l| l.strip_prefix("kinsight_metrics_cycle_cpu_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no cycle CPU gauge in {last}"));
    assert!(cpu > 0.0 && cpu < 1.0, "cycle CPU {cpu} s for 40 pods");
}

/// `kinsight cost` measures what `once` would send for the same node (the oracle's pods on the
/// v2 fixture tree), prices it for `--nodes`, and prints one JSON object; a bad config exits 78
/// as `run` does, and without pod metadata it says what is missing.
#[test]
fn cost_measures_what_once_sends_and_prices_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    support::copy_dir(&repo("tests/fixtures/host/cgroup-v2-systemd/t1"), &root);
    let cfg = dir.path().join("c.json");
    write(
        &cfg,
        r#"{"agent":{"metrics_collection_interval":60},
            "logs":{"metrics_collected":{"kubernetes":{"cluster_name":"fixture"}}},
            "kinsight":{"node_name":"ip-10-0-1-23.eu-west-1.compute.internal","logs":{"enabled":false},
                        "telemetry":{"listen_address":null}}}"#,
    );
    let with = |cmd: &mut std::process::Command| {
        cmd.arg("--host-root")
            .arg(&root)
            .arg("--config")
            .arg(&cfg)
            .arg("--pods-file")
            .arg(repo("tests/fixtures/kube/cluster-oracle.json"));
    };
    let mut once = kinsight();
    once.args(["once", "--interval", "200ms", "--output", "stdout"]);
    with(&mut once);
    let once = run(&mut once);
    assert_eq!(once.status.code(), Some(0), "{}", once.stderr);
    let sent = json_lines(&once.stdout).len() as u64;

    let mut cost = kinsight();
    cost.args(["cost", "--interval", "200ms", "--nodes", "3", "--format", "json"]);
    with(&mut cost);
    let r = run(&mut cost);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let est: Value = serde_json::from_str(r.stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", r.stdout));
    assert_eq!(est["nodes"], 3);
    let standard = &est["inputs"]["standard"];
    assert_eq!(standard["datums"].as_u64(), Some(sent), "the datums once writes");
    assert!(est["inputs"]["enhanced"]["datums"].as_u64().unwrap() > sent);
    let lines = est["metrics"].as_array().unwrap();
    assert_eq!(lines.len(), 6, "three destinations, enhanced off and on");
    // Three nodes: the node-scoped series three times, the cluster-wide ones once.
    let pmd = &lines[0];
    assert_eq!(pmd["destination"], "put_metric_data");
    let node = standard["node_series"].as_u64().unwrap();
    let shared = standard["shared_series"].as_u64().unwrap();
    assert!(node > 0 && shared > 0, "{standard}");
    assert_eq!(pmd["series"].as_u64(), Some(shared + 3 * node));

    assert!(est["without_drop"].is_null(), "no drop configured");

    // A series budget: every ClusterName-only roll-up dropped. The saving is priced against the
    // full set, from the same samples.
    let budget = dir.path().join("budget.json");
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&cfg).unwrap()).unwrap();
    b["kinsight"]["metrics"] = serde_json::json!({"drop": [{"dimensions": ["ClusterName"]}]});
    write(&budget, &b.to_string());
    let r = run(kinsight()
        .args(["cost", "--interval", "200ms", "--format", "json", "--pods-file"])
        .arg(repo("tests/fixtures/kube/cluster-oracle.json"))
        .arg("--host-root")
        .arg(&root)
        .arg("--config")
        .arg(&budget));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let est: Value = serde_json::from_str(r.stdout.trim()).unwrap();
    let kept = est["metrics"][0]["series"].as_u64().unwrap();
    let full = est["without_drop"][0]["series"].as_u64().unwrap();
    assert!(kept < full, "{kept} of {full}");
    assert!(
        est["metrics"][0]["per_node_usd"].as_f64().unwrap() < est["without_drop"][0]["per_node_usd"].as_f64().unwrap()
    );

    // The table form names every destination.
    let mut table = kinsight();
    table.args(["cost", "--interval", "100ms"]);
    with(&mut table);
    let t = run(&mut table);
    assert_eq!(t.status.code(), Some(0), "{}", t.stderr);
    for d in ["put_metric_data", "emf", "both", "application"] {
        assert!(t.stdout.contains(d), "{d}:\n{}", t.stdout);
    }

    // A bad config: the usual 78 and the error, nothing on stdout.
    let bad = dir.path().join("bad.json");
    write(&bad, r#"{"kinsight":{"cost":{"log_ingestion_per_gb_usd":-1}}}"#);
    let r = run(kinsight().args(["cost", "--interval", "100ms", "--config"]).arg(&bad));
    assert_eq!(r.status.code(), Some(78), "{}", r.stderr);
    assert!(
        r.stderr.contains("kinsight.cost.log_ingestion_per_gb_usd"),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty());

    // No pod metadata: said on stderr; the node-level estimate still comes.
    let r = run(kinsight()
        .args(["cost", "--interval", "100ms", "--host-root"])
        .arg(&root)
        .arg("--config")
        .arg(&cfg));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert!(r.stderr.contains("no pod metadata"), "{}", r.stderr);
    assert!(r.stdout.contains("put_metric_data"));
}
