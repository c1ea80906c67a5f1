//! Two `kinsight run` processes against one Kubernetes API test server loaded with the oracle
//! cluster (`tests/fixtures/kube/cluster-oracle.json`): exactly one of them holds the Lease and
//! sends the cluster records, with the oracle's values; when it is killed (SIGKILL, no release),
//! the other takes over within the Lease duration; the two never send them in the same interval.

#![allow(clippy::disallowed_types, reason = "wall-clock waits around child processes")]
#![allow(clippy::float_cmp, reason = "counts, exact in f64")]

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{KubeApi, kinsight};

const NODES: [&str; 2] = [
    "ip-10-0-1-23.eu-west-1.compute.internal",
    "ip-10-0-2-34.eu-west-1.compute.internal",
];
const LEASE_SECS: u64 = 3;

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

struct Agent {
    child: Child,
    lines: mpsc::Receiver<(Instant, Value)>,
}

impl Agent {
    fn start(config: &Path, node: &str, pod: &str) -> Agent {
        let mut child = kinsight()
            .args(["run", "--output", "stdout", "--host-root"])
            .arg(repo("tests/fixtures/host/cgroup-v2-systemd/t1"))
            .arg("--config")
            .arg(config)
            .env("HOST_NAME", node)
            .env("POD_NAME", pod)
            .env("K8S_NAMESPACE", "amazon-cloudwatch")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    continue;
                };
                if tx.send((Instant::now(), v)).is_err() {
                    break;
                }
            }
        });
        Agent { child, lines }
    }

    /// The `cluster_node_count` datums received so far: (when, value).
    fn cluster_counts(&self) -> Vec<(Instant, f64)> {
        self.lines
            .try_iter()
            .filter(|(_, v)| v["metric_name"] == "cluster_node_count")
            .map(|(at, v)| (at, v["value"].as_f64().unwrap()))
            .collect()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test apiserver loaded with the oracle cluster, and a config for it (metrics every
/// `interval` seconds, a 3 s Lease, no logs, no telemetry port) in a temporary directory.
fn oracle_cluster(interval: u32) -> (KubeApi, tempfile::TempDir, PathBuf) {
    let api = KubeApi::start();
    let oracle = std::fs::read_to_string(repo("tests/fixtures/kube/cluster-oracle.json")).unwrap();
    api.apply_list(&serde_json::from_str(&oracle).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let config = dir.path().join("c.json");
    std::fs::write(
        &config,
        format!(
            r#"{{"agent":{{"metrics_collection_interval":{interval}}},
            "logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"oracle","kube_config_path":"{}"}}}}}},
            "kinsight":{{"metrics":{{"metadata_source":"apiserver","leader_lease_secs":{LEASE_SECS}}},
                         "logs":{{"enabled":false}},"telemetry":{{"listen_address":null}}}}}}"#,
            kubeconfig.display()
        ),
    )
    .unwrap();
    (api, dir, config)
}

#[test]
fn one_of_two_agents_sends_the_cluster_records_and_the_other_takes_over_when_it_dies() {
    let (api, _dir, config) = oracle_cluster(1);
    let a = Agent::start(&config, NODES[0], "kinsight-a");
    let b = Agent::start(&config, NODES[1], "kinsight-b");

    // Whichever wins, only it sends the cluster records; watch both for 5 intervals after the
    // first one arrives.
    let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + Duration::from_secs(30);
    while from_a.is_empty() && from_b.is_empty() {
        assert!(Instant::now() < deadline, "no cluster record from either agent");
        from_a.extend(a.cluster_counts());
        from_b.extend(b.cluster_counts());
        std::thread::sleep(Duration::from_millis(50));
    }
    let settle = Instant::now() + Duration::from_secs(5);
    while Instant::now() < settle {
        from_a.extend(a.cluster_counts());
        from_b.extend(b.cluster_counts());
        std::thread::sleep(Duration::from_millis(50));
    }
    let (leader, follower, sent) = match (from_a.is_empty(), from_b.is_empty()) {
        (false, true) => (a, b, from_a),
        (true, false) => (b, a, from_b),
        _ => panic!("both agents sent cluster records: a {from_a:?}, b {from_b:?}"),
    };
    assert!(sent.len() >= 3, "{sent:?}");
    assert!(sent.iter().all(|(_, v)| *v == 4.0), "the oracle has 4 nodes: {sent:?}");
    let holder = api.get("Lease", "amazon-cloudwatch", "kinsight-leader").unwrap()["spec"]["holderIdentity"].clone();
    assert!(holder.as_str().unwrap().ends_with("/kinsight-a") || holder.as_str().unwrap().ends_with("/kinsight-b"));

    // SIGKILL: no release. The follower takes over once the Lease expires.
    let mut leader = leader;
    leader.child.kill().unwrap();
    leader.child.wait().unwrap();
    let killed = Instant::now();
    let _ = follower.cluster_counts();
    let deadline = killed + Duration::from_secs(LEASE_SECS + 10);
    let first = loop {
        assert!(Instant::now() < deadline, "the follower never took over");
        if let Some((at, v)) = follower.cluster_counts().into_iter().next() {
            break (at, v);
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(first.1, 4.0);
    let took = first.0.duration_since(killed);
    // Expiry (3 s), the next renew attempt (0.25 s), the cluster watches' first list and the next
    // interval (1 s).
    assert!(took <= Duration::from_secs(LEASE_SECS + 5), "took over after {took:?}");
}

/// `kinsight once` with the apiserver source: the pods of the fixture node's cgroups get their
/// names, workload and Service from the apiserver within the interval between the two samples,
/// and this lone agent, leading, adds the cluster records.
#[test]
fn once_names_the_pods_from_the_apiserver() {
    let (api, _dir, config) = oracle_cluster(60);
    let r = support::run(
        kinsight()
            .args(["once", "--interval", "2s", "--output", "stdout", "--host-root"])
            .arg(repo("tests/fixtures/host/cgroup-v2-systemd/t1"))
            .arg("--config")
            .arg(&config)
            .env("HOST_NAME", NODES[0])
            .env("POD_NAME", "kinsight-once")
            .env("K8S_NAMESPACE", "amazon-cloudwatch"),
    );
    r.assert_code(0);
    let lines = support::json_lines(&r.stdout);
    let web = lines
        .iter()
        .find(|l| l["kind"] == "metric" && l["dimensions"]["PodName"] == "web")
        .unwrap_or_else(|| panic!("no pod datum named by the apiserver:\n{}\n{}", r.stdout, r.stderr));
    assert_eq!(web["dimensions"]["Namespace"], "shop");
    assert!(
        lines
            .iter()
            .any(|l| l["kind"] == "metric" && l["dimensions"]["Service"] == "web-svc"),
        "{}",
        r.stdout
    );
    assert!(
        lines
            .iter()
            .any(|l| l["metric_name"] == "cluster_node_count" && l["value"] == 4.0),
        "{}",
        r.stdout
    );
    // The Lease was released on the way out.
    let lease = api.get("Lease", "amazon-cloudwatch", "kinsight-leader").unwrap();
    assert!(lease["spec"]["holderIdentity"].is_null(), "{lease}");
}

/// Text of a control-plane exposition with the given cumulative values.
fn control_plane_text(ok: [u64; 2], lists: [u64; 4], sum: f64) -> String {
    let [pods, nodes] = ok;
    let [b1, b2, b3, count] = lists;
    format!(
        "# TYPE apiserver_request_total counter\n\
         apiserver_request_total{{code=\"200\",resource=\"pods\",scope=\"namespace\",verb=\"GET\"}} {pods}\n\
         apiserver_request_total{{code=\"200\",resource=\"nodes\",scope=\"cluster\",verb=\"GET\"}} {nodes}\n\
         # TYPE apiserver_request_duration_seconds histogram\n\
         apiserver_request_duration_seconds_bucket{{resource=\"pods\",verb=\"LIST\",le=\"0.05\"}} {b1}\n\
         apiserver_request_duration_seconds_bucket{{resource=\"pods\",verb=\"LIST\",le=\"0.5\"}} {b2}\n\
         apiserver_request_duration_seconds_bucket{{resource=\"pods\",verb=\"LIST\",le=\"1\"}} {b3}\n\
         apiserver_request_duration_seconds_bucket{{resource=\"pods\",verb=\"LIST\",le=\"+Inf\"}} {count}\n\
         apiserver_request_duration_seconds_sum{{resource=\"pods\",verb=\"LIST\"}} {sum}\n\
         apiserver_request_duration_seconds_count{{resource=\"pods\",verb=\"LIST\"}} {count}\n\
         # TYPE apiserver_storage_objects gauge\n\
         apiserver_storage_objects{{resource=\"pods\"}} 4000\n"
    )
}

/// With enhanced observability the leader scrapes the apiserver's `/metrics` and sends the
/// interval's increase: counters rolled up to their declared labels as statistic sets, and a
/// histogram's observations as one.
#[test]
fn the_leader_sends_control_plane_increases_as_statistic_sets() {
    let (api, _dir, config) = oracle_cluster(1);
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    cfg["logs"]["metrics_collected"]["kubernetes"]["enhanced_container_insights"] = Value::Bool(true);
    std::fs::write(&config, cfg.to_string()).unwrap();
    api.set_control_plane_metrics(&control_plane_text([100, 40], [5, 9, 10, 10], 2.0));
    let agent = Agent::start(&config, NODES[0], "kinsight-a");
    let mut seen: Vec<Value> = Vec::new();
    let mut wait_for = |what: &str, pred: &dyn Fn(&Value) -> bool| -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            seen.extend(agent.lines.try_iter().map(|(_, v)| v));
            if let Some(v) = seen.iter().find(|v| pred(v)) {
                return v.clone();
            }
            assert!(Instant::now() < deadline, "no {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A gauge arrives from the first scrape on.
    let objects = wait_for("apiserver_storage_objects", &|v| {
        v["metric_name"] == "apiserver_storage_objects" && v["dimensions"]["resource"] == "pods"
    });
    assert_eq!(objects["value"], 4000.0);
    assert_eq!(objects["dimensions"]["ClusterName"], "oracle");
    // 60 + 20 more GETs, 30 more LISTs (10 in the first bucket, 15 in the second, 5 in the
    // third) taking 4.5 s together.
    api.set_control_plane_metrics(&control_plane_text([160, 60], [15, 34, 40, 40], 6.5));
    let gets = wait_for("the GET increase", &|v| {
        v["metric_name"] == "apiserver_request_total"
            && v["dimensions"]["verb"] == "GET"
            && v["statistic_values"]["Sum"] == 80.0
    });
    assert_eq!(gets["dimensions"]["code"], "200");
    assert_eq!(gets["unit"], "Count");
    assert_eq!(
        gets["statistic_values"],
        serde_json::json!({"SampleCount": 2.0, "Sum": 80.0, "Minimum": 20.0, "Maximum": 60.0})
    );
    let lists = wait_for("the LIST durations", &|v| {
        v["metric_name"] == "apiserver_request_duration_seconds" && v["dimensions"]["verb"] == "LIST"
    });
    assert_eq!(lists["unit"], "Seconds");
    assert_eq!(
        lists["statistic_values"],
        serde_json::json!({"SampleCount": 30.0, "Sum": 4.5, "Minimum": 0.0, "Maximum": 1.0})
    );
    // And the {ClusterName} roll-up of each.
    wait_for("the roll-up", &|v| {
        v["metric_name"] == "apiserver_request_total"
            && v["dimensions"].as_object().is_some_and(|d| d.len() == 1)
            && v["statistic_values"]["Sum"] == 80.0
    });
}

/// A reload that turns enhanced observability on and changes the Lease duration restarts the
/// apiserver task with them: the leader starts scraping the control plane, and the Lease it
/// takes again carries the new duration. Before, both waited for a restart.
#[test]
fn a_reload_restarts_the_apiserver_watch_with_the_new_settings() {
    let (api, _dir, config) = oracle_cluster(1);
    api.set_control_plane_metrics(&control_plane_text([100, 40], [5, 9, 10, 10], 2.0));
    let agent = Agent::start(&config, NODES[0], "kinsight-a");
    let deadline = Instant::now() + Duration::from_secs(30);
    while agent.cluster_counts().is_empty() {
        assert!(Instant::now() < deadline, "no cluster record: the agent never led");
        std::thread::sleep(Duration::from_millis(50));
    }
    let scrapes = || api.requests().iter().filter(|q| q.resource == "/metrics").count();
    assert_eq!(scrapes(), 0, "standard observability scrapes no control plane");
    let lease = |field: &str| api.get("Lease", "amazon-cloudwatch", "kinsight-leader").unwrap()["spec"][field].clone();
    assert_eq!(lease("leaseDurationSeconds"), LEASE_SECS);

    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    cfg["logs"]["metrics_collected"]["kubernetes"]["enhanced_container_insights"] = Value::Bool(true);
    cfg["kinsight"]["metrics"]["leader_lease_secs"] = serde_json::json!(LEASE_SECS + 2);
    std::fs::write(&config, cfg.to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let objects = loop {
        assert!(
            Instant::now() < deadline,
            "the control plane was not scraped after the reload"
        );
        if let Some((_, v)) = agent
            .lines
            .try_iter()
            .find(|(_, v)| v["metric_name"] == "apiserver_storage_objects")
        {
            break v;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(objects["value"], 4000.0);
    assert!(scrapes() > 0);
    assert_eq!(lease("leaseDurationSeconds"), LEASE_SECS + 2);
    assert!(
        lease("holderIdentity").as_str().unwrap().ends_with("/kinsight-a"),
        "{}",
        lease("holderIdentity")
    );
}
