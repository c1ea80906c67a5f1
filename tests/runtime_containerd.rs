//! The container runtime as a source (issue #12), against a real containerd and runc.
//!
//! Each test runs a containerd of its own (CRI plugin disabled, as in `scripts/test-env.sh`, so
//! that stopping and restarting it disturbs no other test), imports the busybox test image
//! (`KINSIGHT_TEST_IMAGE`), and starts containers the way kubelet would: in kubelet-like cgroup
//! paths (`/kubepods/burstable/pod<uid>/<id>`) with the `io.kubernetes.*` labels. Then
//! `kinsight run` runs on the real host (`--host-root /`) with `metadata_source: runtime`, no pod
//! list file and no apiserver, its socket pointed at the test's containerd, its output on
//! stdout and its telemetry on a local port.
//!
//! - names and filesystem: pod and container names come from the runtime alone, and a
//!   container that wrote 50 MiB into its writable layer shows `container_filesystem_usage`
//!   within 10 % of that (datums and the ContainerFS performance event);
//! - OOM: a container limited to 16 MiB that allocates 64 MiB is OOM-killed; the kill is counted
//!   and logged with its pod name;
//! - degraded mode: containerd stopped (its socket removed) and started again: the agent keeps
//!   running, reports the loss, reconnects and counts the recovery.
//!
//! Cleanup, also on failure: tasks killed and deleted, containers deleted, pod cgroups
//! removed, containerd stopped by its PID.

mod e2e;
mod support;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

const IMAGE_REF: &str = "docker.io/library/kinsight-busybox:latest";
const MIB: u64 = 1 << 20;
/// What the writer container puts into its writable layer.
const WRITTEN: u64 = 50 * MIB;
/// How long a condition that containerd, runc or the agent makes true may take.
const WAIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(100);
/// The agent's node name (and the apiserver pods' `spec.nodeName`).
const NODE: &str = "node-rt";

/// A containerd of the test's own, stopped (and its containers removed) on drop.
struct Containerd {
    dir: tempfile::TempDir,
    sock: String,
    child: Option<Child>,
    containers: Vec<String>,
    pod_cgroups: Vec<String>,
}

impl Containerd {
    fn start() -> Containerd {
        // Unix socket paths are limited to 108 bytes: a short directory under /tmp.
        let dir = tempfile::Builder::new().prefix("kr").tempdir_in("/tmp").unwrap();
        let d = dir.path().display().to_string();
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"{d}/debug.sock\"\n  level = \"info\"\n"
        );
        std::fs::write(dir.path().join("config.toml"), config).unwrap();
        let mut c = Containerd {
            sock: format!("{d}/c.sock"),
            dir,
            child: None,
            containers: Vec::new(),
            pod_cgroups: Vec::new(),
        };
        c.run();
        c
    }

    /// Starts the daemon and waits until it answers.
    fn run(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("containerd.log"))
            .unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start containerd (is it installed?): {e}"));
        self.child = Some(child);
        assert!(
            support::wait_until(WAIT, POLL, || self.ctr(&["version"]).status.success()),
            "containerd did not answer within {WAIT:?}; log:\n{}",
            self.log()
        );
    }

    /// Stops the daemon (SIGTERM, as a node's service manager does) and waits for it to exit.
    /// The containers' shims keep running; a new daemon reconnects to them.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let exited = support::wait_until(WAIT, POLL, || child.try_wait().ok().flatten().is_some());
            if !exited {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .args(["-a", &self.sock, "-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ctr: {e}"))
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a container as kubelet would; `extra` are more `ctr run` flags.
    fn run_container(&mut self, pod: &TestPod, name: &str, extra: &[&str], script: &str) -> String {
        let id = e2e::random_container_id();
        let cgroup = format!("/{}", e2e::container_cgroup(&pod.cgroup, &id, false));
        let labels = [
            format!("io.kubernetes.pod.name={}", pod.name),
            format!("io.kubernetes.pod.namespace={}", pod.namespace),
            format!("io.kubernetes.pod.uid={}", pod.uid),
            format!("io.kubernetes.container.name={name}"),
            "io.cri-containerd.kind=container".to_string(),
        ];
        let mut args: Vec<&str> = vec!["run", "-d", "--cgroup", &cgroup];
        for l in &labels {
            args.extend(["--label", l]);
        }
        args.extend_from_slice(extra);
        args.extend([IMAGE_REF, &id, "sh", "-c", script]);
        if !self.pod_cgroups.contains(&pod.cgroup) {
            self.pod_cgroups.push(pod.cgroup.clone());
        }
        self.containers.push(id.clone());
        self.ctr_ok(&args);
        id
    }

    /// The host PID of `id`'s task once it runs.
    fn running_pid(&self, id: &str) -> Option<u32> {
        let out = self.ctr(&["tasks", "ls"]);
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[0] == id && f[2] == "RUNNING")
                .then(|| f[1].parse().ok())
                .flatten()
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if self.child.is_none() {
            self.run_quietly();
        }
        for id in self.containers.clone() {
            let _ = self.ctr(&["tasks", "kill", "-s", "SIGKILL", &id]);
            let gone = support::wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
                let out = self.ctr(&["tasks", "delete", &id]);
                out.status.success() || String::from_utf8_lossy(&out.stderr).contains("not found")
            });
            if !gone {
                let _ = self.ctr(&["tasks", "delete", "--force", &id]);
            }
            let _ = self.ctr(&["containers", "delete", &id]);
        }
        self.stop();
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for rel in &self.pod_cgroups {
                for id in &self.containers {
                    let _ = std::fs::remove_dir(h.path().join(rel).join(id));
                }
                let _ = std::fs::remove_dir(h.path().join(rel));
                // The shared parents `kubepods/burstable` stay: removing them while another
                // test's runc creates a pod below them would fail that test's `ctr run`.
            }
        }
    }
}

impl Containerd {
    /// [`Containerd::run`] without panicking (from `Drop`).
    fn run_quietly(&mut self) {
        if let Ok(child) = Command::new("containerd")
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            self.child = Some(child);
            support::wait_until(WAIT, POLL, || self.ctr(&["version"]).status.success());
        }
    }
}

/// A pod's identity and cgroup (cgroupfs driver, Burstable).
struct TestPod {
    uid: String,
    name: String,
    namespace: String,
    cgroup: String,
}

impl TestPod {
    fn new(name: &str) -> TestPod {
        let uid = e2e::random_pod_uid();
        TestPod {
            cgroup: e2e::pod_cgroup(&uid, false),
            name: format!("{name}-{}", &uid[9..17]),
            namespace: "runtime-e2e".to_string(),
            uid,
        }
    }
}

/// What the tests need, or `None` after saying what is missing.
fn prerequisites() -> Option<String> {
    let image = support::require_env("KINSIGHT_TEST_IMAGE")?;
    // The harness's containerd proves the runtime is installed; each test runs its own.
    support::require_env("KINSIGHT_TEST_CONTAINERD")?;
    e2e::v1_prerequisites()?;
    Some(image)
}

/// A running `kinsight run`; stdout lines (JSON) and stderr are collected; killed on drop.
struct Agent {
    child: Child,
    stdout: Arc<Mutex<Vec<Value>>>,
    stderr: Arc<Mutex<String>>,
    base: String,
}

impl Agent {
    /// `metadata_source: runtime`, no pod list, no apiserver.
    fn start(dir: &Path, sock: &str) -> Agent {
        Agent::start_with(dir, sock, None)
    }

    /// With `kubeconfig`, `metadata_source: apiserver` (the runtime beside it); else `runtime`.
    fn start_with(dir: &Path, sock: &str, kubeconfig: Option<&Path>) -> Agent {
        let port = support::free_port();
        write_config(dir, sock, kubeconfig, 2, port);
        Agent::spawn(&dir.join("cwagentconfig.json"), port)
    }

    /// With metadata source `runtime` and an interval of `interval_s`; returns its telemetry port.
    fn start_every(dir: &Path, sock: &str, interval_s: u64) -> (Agent, u16) {
        let port = support::free_port();
        write_config(dir, sock, None, interval_s, port);
        (Agent::spawn(&dir.join("cwagentconfig.json"), port), port)
    }

    fn spawn(config: &Path, port: u16) -> Agent {
        let mut child = support::kinsight()
            .args(["run", "--host-root", "/", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .env("POD_NAME", "kinsight-rt")
            .env("K8S_NAMESPACE", "amazon-cloudwatch")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Agent {
            child,
            stdout,
            stderr,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// The value of one of kinsight's own metrics (`/metrics`, labels included in `name`).
    fn own_metric(&self, name: &str) -> Option<f64> {
        let (_, body) = support::try_http_request("GET", &format!("{}/metrics", self.base), &[], "").ok()?;
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// Waits until `/metrics` shows `name` at `want` or more.
    fn wait_metric(&self, name: &str, want: f64) {
        let mut last = None;
        assert!(
            support::wait_until(WAIT, POLL, || {
                last = self.own_metric(name);
                last.is_some_and(|v| v >= want)
            }),
            "{name} is {last:?}, want ≥ {want}; stderr:\n{}",
            self.stderr()
        );
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

/// The agent's configuration in `dir`: with `kubeconfig`, metadata source `apiserver` (the
/// runtime beside it), else `runtime`; enhanced observability, destination `both`, no logs.
fn write_config(dir: &Path, sock: &str, kubeconfig: Option<&Path>, interval_s: u64, port: u16) {
    let mut kubernetes = json!({"cluster_name": "rt", "enhanced_container_insights": true});
    let source = match kubeconfig {
        Some(k) => {
            kubernetes["kube_config_path"] = json!(k);
            "apiserver"
        }
        None => "runtime",
    };
    std::fs::write(
        dir.join("cwagentconfig.json"),
        json!({
            "agent": {"metrics_collection_interval": interval_s},
            "logs": {"metrics_collected": {"kubernetes": kubernetes}},
            "kinsight": {"output": "stdout", "node_name": NODE,
                         "metrics": {"metadata_source": source, "destination": "both"},
                         "paths": {"containerd_socket": sock},
                         "logs": {"enabled": false},
                         "telemetry": {"listen_address": format!("127.0.0.1:{port}")}}
        })
        .to_string(),
    )
    .unwrap();
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `runtime` line of `kinsight check` with the agent's configuration in `dir`.
fn check_line(dir: &Path) -> String {
    let r = support::run(
        support::kinsight()
            .args(["check", "--host-root", "/", "--config"])
            .arg(dir.join("cwagentconfig.json")),
    );
    // The report goes to stderr (stdout is the data channel).
    r.stderr
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("runtime"))
        .unwrap_or_else(|| panic!("no runtime line in kinsight check:\n{}\n{}", r.stdout, r.stderr))
        .to_string()
}

fn dim<'a>(datum: &'a Value, name: &str) -> Option<&'a str> {
    datum["dimensions"][name].as_str()
}

#[test]
fn runtime_names_pods_and_measures_the_writable_layer_without_apiserver_or_pod_list() {
    let Some(image) = prerequisites() else { return };
    let mut ctd = Containerd::start();
    ctd.ctr_ok(&["images", "import", &image]);
    let pod = TestPod::new("writer");
    let writer = ctd.run_container(
        &pod,
        "writer",
        &[],
        &format!("/bin/busybox head -c {WRITTEN} /dev/zero > /fill && exec sleep 600"),
    );
    let idle = ctd.run_container(&pod, "idle", &[], "exec sleep 600");
    // Written once the shell has exec'd sleep.
    assert!(
        support::wait_until(WAIT, POLL, || {
            ctd.running_pid(&writer).is_some_and(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
            })
        }),
        "writer did not write its 50 MiB within {WAIT:?}"
    );
    assert!(support::wait_until(WAIT, POLL, || ctd.running_pid(&idle).is_some()));

    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), &ctd.sock);
    let usage_of = |lines: &[Value]| {
        lines
            .iter()
            .filter(|l| l["kind"] == "metric" && l["metric_name"] == "container_filesystem_usage")
            .find(|l| dim(l, "ContainerName") == Some("writer"))
            .cloned()
    };
    let mut found = None;
    assert!(
        support::wait_until(WAIT, POLL, || {
            found = usage_of(&agent.stdout.lock().unwrap());
            found.is_some()
        }),
        "no container_filesystem_usage datum for writer within {WAIT:?}; stderr:\n{}",
        agent.stderr()
    );
    let usage = found.unwrap();
    assert_eq!(dim(&usage, "PodName"), Some(pod.name.as_str()), "{usage}");
    assert_eq!(dim(&usage, "Namespace"), Some("runtime-e2e"), "{usage}");
    assert_eq!(usage["unit"], "Bytes", "{usage}");
    let bytes = usage["value"].as_f64().unwrap();
    eprintln!("container_filesystem_usage of writer: {bytes} bytes (wrote {WRITTEN})");
    e2e::assert_close("container_filesystem_usage", bytes, WRITTEN as f64, 0.10);

    // The pod record, the idle container's records and the ContainerFS event: names from the
    // runtime, no pod list, no apiserver. Pod CPU needs two samples of the pod's cgroup.
    let mut lines = Vec::new();
    assert!(
        support::wait_until(WAIT, POLL, || {
            lines = agent.stdout.lock().unwrap().clone();
            lines
                .iter()
                .any(|l| l["metric_name"] == "pod_cpu_utilization" && dim(l, "PodName") == Some(pod.name.as_str()))
        }),
        "no pod_cpu_utilization for {} within {WAIT:?}; stderr:\n{}",
        pod.name,
        agent.stderr()
    );
    assert!(
        lines.iter().any(|l| l["metric_name"] == "container_memory_utilization"
            && dim(l, "ContainerName") == Some("idle")
            && dim(l, "PodName") == Some(pod.name.as_str())),
        "no container_memory_utilization for idle"
    );
    for metric in ["container_filesystem_available", "container_filesystem_utilization"] {
        let d = lines
            .iter()
            .find(|l| l["metric_name"] == metric && dim(l, "ContainerName") == Some("writer"))
            .unwrap_or_else(|| panic!("no {metric} datum for writer"));
        assert!(d["value"].as_f64().unwrap() > 0.0, "{d}");
    }
    let event = lines
        .iter()
        .filter(|l| l["kind"] == "emf")
        .filter_map(|l| serde_json::from_str::<Value>(l["message"].as_str()?).ok())
        .find(|e| e["Type"] == "ContainerFS" && e["kubernetes"]["container_name"] == "writer")
        .unwrap_or_else(|| panic!("no ContainerFS event for writer"));
    assert_eq!(event["kubernetes"]["pod_name"], pod.name.as_str(), "{event}");
    assert_eq!(event["Sources"], json!(["cadvisor", "calculated"]), "{event}");
    let usage = event["container_filesystem_usage"].as_f64().unwrap();
    e2e::assert_close("ContainerFS container_filesystem_usage", usage, WRITTEN as f64, 0.10);
    let capacity = event["container_filesystem_capacity"].as_f64().unwrap();
    assert!(capacity > usage, "{event}");
    // The calls the source made: one list of containers and tasks, one usage per container.
    let calls = agent
        .own_metric("kinsight_runtime_calls_total{call=\"Snapshots.Usage\"}")
        .unwrap_or(0.0);
    assert!(calls >= 2.0, "Snapshots.Usage calls: {calls}");
}

#[test]
fn an_oom_kill_is_counted_and_logged_with_its_pod() {
    let Some(image) = prerequisites() else { return };
    let mut ctd = Containerd::start();
    ctd.ctr_ok(&["images", "import", &image]);
    let dir = tempfile::tempdir().unwrap();
    let agent = Agent::start(dir.path(), &ctd.sock);
    // Subscribed before the container starts: the OOM event cannot come too early.
    agent.wait_metric("kinsight_runtime_up", 1.0);
    let pod = TestPod::new("hog");
    // `tail` keeps all of a newline-free input in memory: 64 MiB against a 16 MiB limit. It
    // starts when the test says so: the runc shim watches the memory cgroup for OOM only once
    // the task has started, and an allocation before that would be killed unseen.
    let limit = (16 * MIB).to_string();
    let id = ctd.run_container(
        &pod,
        "hog",
        &["--memory-limit", &limit],
        "until /bin/busybox test -e /go; do /bin/busybox sleep 0.1; done; \
         /bin/busybox head -c 64m /dev/zero | /bin/busybox tail",
    );
    let mut pid = None;
    assert!(support::wait_until(WAIT, POLL, || {
        pid = ctd.running_pid(&id);
        pid.is_some()
    }));
    std::fs::write(format!("/proc/{}/root/go", pid.unwrap()), "").unwrap();
    agent.wait_metric("kinsight_runtime_oom_kills_total", 1.0);
    assert!(
        support::wait_until(WAIT, POLL, || {
            agent
                .stderr()
                .lines()
                .any(|l| l.contains("container OOM-killed") && l.contains(&pod.name) && l.contains("hog"))
        }),
        "no OOM log line naming pod {}; stderr:\n{}",
        pod.name,
        agent.stderr()
    );
}

#[test]
fn containerd_going_away_and_coming_back_is_survived_and_counted() {
    let Some(image) = prerequisites() else { return };
    let mut ctd = Containerd::start();
    ctd.ctr_ok(&["images", "import", &image]);
    let pod = TestPod::new("steady");
    let id = ctd.run_container(&pod, "steady", &[], "exec sleep 600");
    assert!(support::wait_until(WAIT, POLL, || ctd.running_pid(&id).is_some()));
    let dir = tempfile::tempdir().unwrap();
    let mut agent = Agent::start(dir.path(), &ctd.sock);
    agent.wait_metric("kinsight_runtime_up", 1.0);
    agent.wait_metric("kinsight_runtime_containers", 1.0);
    let line = check_line(dir.path());
    assert!(
        line.starts_with("OK") && line.contains("containerd 1.") && line.contains("1 containers"),
        "{line}"
    );

    // containerd stops and its socket goes (containerd removes it; make sure).
    ctd.stop();
    let _ = std::fs::remove_file(&ctd.sock);
    assert!(
        support::wait_until(WAIT, POLL, || agent.own_metric("kinsight_runtime_up") == Some(0.0)),
        "kinsight_runtime_up stayed 1 without containerd; stderr:\n{}",
        agent.stderr()
    );
    agent.wait_metric("kinsight_runtime_errors_total{kind=\"missing\"}", 1.0);
    // `check` reports it, as a failure here: the runtime is this agent's pod metadata source.
    let line = check_line(dir.path());
    assert!(
        line.starts_with("FAIL") && line.contains("no containerd socket"),
        "{line}"
    );
    let cycles = agent.own_metric("kinsight_metrics_cycles_total").unwrap_or(0.0);
    // Metrics go on meanwhile.
    agent.wait_metric("kinsight_metrics_cycles_total", cycles + 1.0);

    ctd.run();
    agent.wait_metric("kinsight_runtime_up", 1.0);
    agent.wait_metric("kinsight_runtime_reconnects_total", 1.0);
    assert!(agent.is_running(), "the agent exited; stderr:\n{}", agent.stderr());
    let stderr = agent.stderr();
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Reported once at warn, not at every retry.
    let warned = stderr.lines().filter(|l| l.contains("containerd unavailable")).count();
    assert_eq!(warned, 1, "{stderr}");
    assert!(stderr.contains("containerd reachable again"), "{stderr}");
}

/// With the apiserver as the pod source, a container the pod's status does not list yet (the
/// watch event has not come) is named through the runtime: its Container record carries the
/// apiserver's workload name (`PodName` from the `ReplicaSet` owner's suffix rule), which the
/// runtime alone could not give.
#[test]
fn beside_the_apiserver_the_runtime_names_a_container_the_watch_has_not_published() {
    let Some(image) = prerequisites() else { return };
    let mut ctd = Containerd::start();
    ctd.ctr_ok(&["images", "import", &image]);
    let mut pod = TestPod::new("gap");
    pod.name = format!("gap-7d4b9c8f6d-{}", &pod.uid[9..14]);
    let api = support::KubeApi::start();
    // The pod as the apiserver has it right after scheduling: running, its container not yet in
    // `containerStatuses`.
    api.apply(json!({
        "kind": "Pod",
        "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid,
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "gap-7d4b9c8f6d",
                                          "uid": "rs-gap", "controller": true}]},
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": IMAGE_REF}]},
        "status": {"phase": "Running"}
    }));
    let id = ctd.run_container(&pod, "app", &[], "exec sleep 600");
    assert!(support::wait_until(WAIT, POLL, || ctd.running_pid(&id).is_some()));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let agent = Agent::start_with(dir.path(), &ctd.sock, Some(&kubeconfig));
    // The runtime may list the container before the apiserver's first list has arrived: the
    // index counts as synced then (so that the container is named at all), and that first tick
    // names it with the runtime's labels alone (`PodName` the full pod name). Once the list is
    // in, the apiserver's workload name wins; a regression that let the runtime's name stay
    // would never send `PodName` `gap`.
    let mut found = None;
    assert!(
        support::wait_until(WAIT, POLL, || {
            found = agent
                .stdout
                .lock()
                .unwrap()
                .iter()
                .find(|l| {
                    l["metric_name"] == "container_memory_utilization"
                        && dim(l, "ContainerName") == Some("app")
                        && dim(l, "PodName") == Some("gap")
                })
                .cloned();
            found.is_some()
        }),
        "no Container record for app with the apiserver's PodName within {WAIT:?}; stdout:\n{:?}\nstderr:\n{}",
        agent
            .stdout
            .lock()
            .unwrap()
            .iter()
            .filter(|l| dim(l, "ContainerName") == Some("app"))
            .take(3)
            .collect::<Vec<_>>(),
        agent.stderr()
    );
    let datum = found.unwrap();
    assert_eq!(dim(&datum, "FullPodName"), Some(pod.name.as_str()), "{datum}");
}

/// A reload that shortens the interval reaches the runtime source at once: it measures the
/// writable layers at the new interval, not first after the old one (two minutes here).
#[test]
fn a_reloaded_interval_reaches_the_writable_layer_measurements() {
    let Some(image) = prerequisites() else { return };
    let mut ctd = Containerd::start();
    ctd.ctr_ok(&["images", "import", &image]);
    let pod = TestPod::new("reload");
    let idle = ctd.run_container(&pod, "idle", &[], "exec sleep 600");
    assert!(support::wait_until(WAIT, POLL, || ctd.running_pid(&idle).is_some()));
    let dir = tempfile::tempdir().unwrap();
    let (agent, port) = Agent::start_every(dir.path(), &ctd.sock, 120);
    // Connected, listed and measured once; the next measurement is an interval away.
    let usage = "kinsight_runtime_calls_total{call=\"Snapshots.Usage\"}";
    agent.wait_metric(usage, 1.0);
    let before = agent.own_metric(usage).unwrap_or(0.0);
    write_config(dir.path(), &ctd.sock, None, 1, port);
    agent.wait_metric(usage, before + 2.0);
}
