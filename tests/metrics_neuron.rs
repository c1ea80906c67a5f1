//! Accelerated compute, AWS Neuron: a node whose Node object advertises 12
//! `aws.amazon.com/neuroncore` on 6 devices (an inf2.24xlarge in an `UltraServer`), a pod asking
//! for cores, a node-local neuron-monitor (the fixture of `tests/support/neuron_monitor.rs`) and
//! the kubelet's pod-resources API (`tests/support/pod_resources.rs`) naming the holders, run
//! through the accelerator source and the collector. Every upstream Neuron (metric, dimension
//! set) pair is sent and nothing else, with upstream's values and units; counters are sent as
//! their increase between two scrapes; bad answers are counted by kind, said once, and send
//! nothing.

#![allow(clippy::float_cmp, reason = "fixture values are exact in f64")]

#[path = "support/accel_node.rs"]
mod accel_node;
#[path = "support/pairs.rs"]
mod pairs;
#[path = "support/settings.rs"]
mod settings;
mod support;
#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinsight::host::SystemClock;
use kinsight::host::accel::{AcceleratorSource, NeuronView, ScrapePlan, gpu_channel, neuron_channel};
use kinsight::kube::NodeState;
use kinsight::metrics::collect::{Cycle, Settings};
use kinsight::metrics::{Collector, Datum, Unit};
use kinsight::telemetry::{Name, Telemetry};
use tokio_util::sync::CancellationToken;

use accel_node::{DEVICE_POD as NEURON_POD, datum, node_with_device_pod};
use support::neuron_monitor::{NEURON_MONITOR_TEXT, neuron_monitor};
use support::pod_resources::{FakeKubelet, ListPodResourcesResponse, holding};

const OTHER_POD: &str = "web-7d4b9c8f6d-00001";

fn own_node(cores: Option<u64>) -> NodeState {
    NodeState {
        name: "node".into(),
        capacity_neuroncores: cores,
        capacity_neurondevices: cores.map(|c| c / 2),
        ultraserver: Some("us-0a1b2c".into()),
        ..NodeState::default()
    }
}

fn settings(neuron_url: Option<&str>) -> Settings {
    let url = neuron_url.map_or(String::new(), |u| format!(r#","neuron_monitor_url":"{u}""#));
    let json = format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c","enhanced_container_insights":true}}}}}},
            "kinsight":{{"metrics":{{"destination":"put_metric_data"{url}}}}}}}"#
    );
    let cfg = settings::load(&json);
    settings::settings(&cfg, "inf2.24xlarge")
}

/// A node whose first pod's container `c0` asks for 2 Neuron cores.
fn node_with_neuron_pod(dir: &Path) -> synthetic::Node {
    node_with_device_pod(dir, "aws.amazon.com/neuroncore", "2")
}

/// The kubelet: cores 0 and 1 and device 0 to the first pod's `c0` (by core and by device),
/// device 1 to the second pod's `c0` (by the older device name: its cores 2 and 3 go with it),
/// and a GPU that is none of Neuron's business.
fn kubelet(dir: &Path) -> FakeKubelet {
    FakeKubelet::start(
        dir,
        &ListPodResourcesResponse {
            pod_resources: vec![
                holding("ns0", NEURON_POD, "c0", "aws.amazon.com/neuroncore", &["0", "1"]),
                holding("ns0", NEURON_POD, "c0", "aws.amazon.com/neurondevice", &["0"]),
                holding("ns1", OTHER_POD, "c0", "aws.amazon.com/neuron", &["1"]),
                holding("ns1", "gpu-pod", "c0", "nvidia.com/gpu", &["GPU-0"]),
            ],
        },
    )
}

fn collector(root: &Path, settings: Settings, own: NodeState, telemetry: Telemetry, view: NeuronView) -> Collector {
    accel_node::collector(root, settings, own, telemetry).with_neurons(view)
}

/// The accelerator source with `plan`, running until the returned token is cancelled.
fn start_source(
    plan: ScrapePlan,
    pod_resources: Option<PathBuf>,
    telemetry: &Telemetry,
) -> (NeuronView, CancellationToken, tokio::task::JoinHandle<()>) {
    let (tx, view) = neuron_channel();
    let source = AcceleratorSource {
        plan: Arc::new(move || plan.clone()),
        gpus: gpu_channel().0,
        neurons: tx,
        pod_resources,
        host: None,
        imds: None,
        telemetry: telemetry.clone(),
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(cancel.clone()));
    (view, cancel, task)
}

async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: not within 10 s");
}

/// One cycle on a blocking thread (the collector reads files).
async fn cycle(mut c: Collector, node: synthetic::Node) -> (Collector, synthetic::Node, Cycle) {
    tokio::task::spawn_blocking(move || {
        let mut node = node;
        node.advance();
        std::thread::sleep(Duration::from_millis(20));
        let cycle = c.collect(&SystemClock);
        (c, node, cycle)
    })
    .await
    .unwrap()
}

fn is_neuron(metric: &str) -> bool {
    metric.contains("_neuron")
}

/// The fixture with every counter grown by `by`.
fn grown(by: f64) -> String {
    NEURON_MONITOR_TEXT
        .lines()
        .map(|l| {
            if (l.starts_with("execution_errors_total{") || l.starts_with("hardware_ecc_events_total{"))
                && let Some((head, v)) = l.rsplit_once(' ')
            {
                format!("{head} {}", v.parse::<f64>().unwrap() + by)
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neuron_records_reach_the_datums_with_upstreams_pairs_values_and_units() {
    let (exporter, answer) = neuron_monitor(NEURON_MONITOR_TEXT);
    let url = format!("{}/metrics", exporter.url());
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_neuron_pod(dir.path());
    let kubelet = kubelet(dir.path());
    let s = settings(Some(&url));
    let own = own_node(Some(12));
    let mut plan = s.scrape_plan(Some(&own));
    assert_eq!(plan.neuron.as_ref().map(url::Url::as_str), Some(url.as_str()));
    assert_eq!(plan.dcgm, None, "no GPUs here");
    plan.interval = Duration::from_millis(20);
    let telemetry = Telemetry::new();
    let (view, cancel, task) = start_source(plan, Some(kubelet.socket.clone()), &telemetry);
    wait_for("a scrape with holders", || {
        view.borrow().cores.iter().any(|c| c.holder.is_some())
    })
    .await;
    let ok = telemetry.get(
        Name::AcceleratorScrapes,
        &[("exporter", "neuron_monitor"), ("result", "ok")],
    );
    assert!(ok >= 1.0, "{ok}");
    assert!(
        telemetry.get(
            Name::AcceleratorScrapes,
            &[("exporter", "pod_resources"), ("result", "ok")]
        ) >= 1.0
    );
    let first_seq = view.borrow().seq;

    let c = collector(dir.path(), s, own, telemetry.clone(), view.clone());
    let (c, node, first) = cycle(c, node).await;
    assert!(
        !first.datums.iter().any(|d| d.metric_name.ends_with("_total")
            && is_neuron(d.metric_name)
            && !d.metric_name.contains("usage_total")),
        "the first scrape gives the counters no increase yet"
    );
    // The exporter's counters grow by 3 each; the next scrape carries them.
    answer.set(200, grown(3.0));
    wait_for("a later scrape", || {
        let v = view.borrow();
        v.seq > first_seq && v.node.execution_errors == Some(3.0 + 6.0 * 3.0)
    })
    .await;
    let (_c, _node, second) = cycle(c, node).await;
    cancel.cancel();
    task.await.unwrap();
    let d = &second.datums;

    // Exactly the upstream pairs of the Neuron group (147 at the fixture's revision).
    let (_, upstream) = pairs::upstream("enhanced_accelerated");
    let want: BTreeSet<pairs::Pair> = upstream.into_iter().filter(|(m, _)| is_neuron(m)).collect();
    assert_eq!(want.len(), 147);
    let sent: BTreeSet<pairs::Pair> = pairs::datum_pairs(&second)
        .into_iter()
        .filter(|(m, _)| is_neuron(m))
        .collect();
    pairs::assert_same_pairs(&want, &sent);

    monitor_values(d);
    resource_values(d);
}

/// neuron-monitor's fixture as upstream reduces it.
fn monitor_values(d: &[Datum]) {
    let core0 = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("InstanceType", "inf2.24xlarge"),
        ("NeuronCore", "core0"),
        ("NeuronDevice", "device0"),
        ("NodeName", "node"),
    ];
    let util = datum(d, "node_neuroncore_utilization", &core0);
    assert_eq!((util.value, util.unit), (0.8512 * 100.0, Unit::Percent));
    let total = datum(d, "node_neuroncore_memory_usage_total", &core0);
    assert_eq!(
        (total.value, total.unit),
        (196_608.0 + 101_376.0 + 4_194_304.0, Unit::Bytes)
    );
    let mut core3 = core0;
    core3[3].1 = "core3";
    core3[4].1 = "device1";
    assert_eq!(
        datum(d, "node_neuroncore_memory_usage_tensors", &core3).value,
        1_048_576.0
    );
    // The node's runtime figures, also per UltraServer.
    let us = [("ClusterName", "c"), ("UltraServer", "us-0a1b2c")];
    let latency = datum(d, "node_neuron_execution_latency", &us);
    assert_eq!((latency.value, latency.unit), (0.0016, Unit::Seconds));
    let mem = datum(d, "node_neurondevice_runtime_memory_used_bytes", &us);
    assert_eq!((mem.value, mem.unit), (10_944_512.0, Unit::Bytes));
    // The counters: 6 error kinds and 4 ECC kinds each grew by 3.
    let errors = datum(d, "node_neuron_execution_errors_total", &us);
    assert_eq!((errors.value, errors.unit), (18.0, Unit::Count));
    let n = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("NodeName", "node"),
    ];
    let mut dev = n.to_vec();
    dev.push(("NeuronDevice", "device0"));
    assert_eq!(datum(d, "node_neurondevice_hw_ecc_events_total", &dev).value, 12.0);

    // The holders: cores 0 and 1 by core id, device 1 by the older device resource name.
    let c0 = [
        ("ClusterName", "c"),
        ("ContainerName", "c0"),
        ("FullPodName", NEURON_POD),
        ("Namespace", "ns0"),
        ("NeuronCore", "core1"),
        ("NeuronDevice", "device0"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "container_neuroncore_utilization", &c0).value, 0.4231 * 100.0);
    let s0 = [("ClusterName", "c"), ("Namespace", "ns0"), ("Service", "web")];
    let per_core: Vec<f64> = d
        .iter()
        .filter(|x| x.metric_name == "pod_neuroncore_utilization" && x.dimensions.len() == s0.len())
        .filter(|x| x.dimensions.iter().any(|(k, v)| *k == "Service" && &**v == "web"))
        .map(|x| x.value)
        .collect();
    assert_eq!(per_core, [0.8512 * 100.0, 0.4231 * 100.0], "one value per held core");
    let other = [
        ("ClusterName", "c"),
        ("FullPodName", OTHER_POD),
        ("Namespace", "ns1"),
        ("NeuronDevice", "device1"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "pod_neurondevice_hw_ecc_events_total", &other).value, 12.0);
    // Cores 2 and 3 have no holder of their own: their device's.
    let c2 = [
        ("ClusterName", "c"),
        ("FullPodName", OTHER_POD),
        ("Namespace", "ns1"),
        ("NeuronCore", "core2"),
        ("NeuronDevice", "device1"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "pod_neuroncore_utilization", &c2).value, 0.0512 * 100.0);
}

/// Requests, limits and capacity from the pod spec and the Node object.
fn resource_values(d: &[Datum]) {
    let fp = [
        ("ClusterName", "c"),
        ("FullPodName", NEURON_POD),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    for (metric, value, unit) in [
        ("pod_neuroncore_request", 2.0, Unit::Count),
        ("pod_neuroncore_limit", 2.0, Unit::Count),
        ("pod_neuroncore_usage_total", 2.0, Unit::Count),
        ("pod_neuroncore_reserved_capacity", 2.0 / 12.0 * 100.0, Unit::Percent),
    ] {
        let x = datum(d, metric, &fp);
        assert_eq!((x.value, x.unit), (value, unit), "{metric}");
    }
    let n = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("NodeName", "node"),
    ];
    for (metric, value) in [
        ("node_neuroncore_limit", 12.0),
        ("node_neuroncore_usage_total", 2.0),
        ("node_neuroncore_reserved_capacity", 2.0 / 12.0 * 100.0),
        ("node_neuroncore_unreserved_capacity", 100.0 - 2.0 / 12.0 * 100.0),
        ("node_neuroncore_available_capacity", 10.0),
    ] {
        assert_eq!(datum(d, metric, &n).value, value, "{metric}");
    }
}

/// A writer into a shared buffer, for reading what the source logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn count(t: &Telemetry, result: &'static str) -> f64 {
    t.get(
        Name::AcceleratorScrapes,
        &[("exporter", "neuron_monitor"), ("result", result)],
    )
}

/// Bad answers, one kind after the other: each is counted by kind, said once, publishes nothing
/// (the previous answer's figures are dropped), and nothing panics.
#[tokio::test(flavor = "current_thread")]
async fn bad_answers_are_counted_by_kind_said_once_and_send_nothing() {
    let (exporter, answer) = neuron_monitor("not prometheus text {{{\n<html>");
    let url = format!("{}/metrics", exporter.url());
    let s = settings(Some(&url));
    let mut plan = s.scrape_plan(None);
    // Long enough for the oversize answer to be read (and refused) rather than timed out.
    plan.interval = Duration::from_millis(200);
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let telemetry = Telemetry::new();
    let (view, cancel, task) = start_source(plan, None, &telemetry);
    let t = telemetry.clone();

    // Malformed text: invalid, twice at least (said once).
    wait_for("invalid text", || count(&t, "invalid") >= 2.0).await;
    assert!(view.borrow().is_empty());
    // Samples without the labels that place them: read, skipped, nothing to send.
    answer.set(
        200,
        "neuron_hardware_info{neuron_device_count=\"1\"} 1\nneuroncore_utilization_ratio{runtime_tag=\"1\"} 0.5\n\
         hardware_ecc_events_total{event_type=\"mem_ecc_corrected\"} 4\n",
    );
    wait_for("an answer without labels", || count(&t, "ok") >= 1.0).await;
    assert!(view.borrow().cores.is_empty() && view.borrow().devices.is_empty());
    // An answer over the size limit: refused (invalid, or a timeout on a slow machine).
    let before = count(&t, "invalid") + count(&t, "timeout");
    answer.set(200, "#".repeat(kinsight::host::accel::MAX_BODY_BYTES + 1));
    wait_for("an oversize answer", || {
        count(&t, "invalid") + count(&t, "timeout") > before
    })
    .await;
    assert!(view.borrow().is_empty());
    // An error status.
    answer.set(503, "restarting");
    wait_for("an error status", || count(&t, "status") >= 2.0).await;
    assert!(view.borrow().is_empty());
    // The endpoint gone.
    drop(exporter);
    wait_for("a closed port", || count(&t, "unreachable") >= 2.0).await;
    cancel.cancel();
    task.await.unwrap();
    assert!(view.borrow().is_empty());

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let kinds = ["invalid", "status", "unreachable", "timeout"]
        .into_iter()
        .filter(|k| count(&telemetry, k) > 0.0)
        .count();
    assert!(kinds >= 3, "{text}");
    assert_eq!(
        text.matches("neuron-monitor not scraped").count(),
        kinds,
        "once per kind, not per scrape: {text}"
    );
}

/// Without the kubelet's socket the cores are the node's only: no pod or container records, and
/// the failure is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_kubelet_the_node_records_are_sent_alone() {
    let (exporter, _answer) = neuron_monitor(NEURON_MONITOR_TEXT);
    let dir = tempfile::tempdir().unwrap();
    let node = node_with_neuron_pod(dir.path());
    let s = settings(Some(&format!("{}/metrics", exporter.url())));
    let mut plan = s.scrape_plan(None);
    plan.interval = Duration::from_millis(20);
    let telemetry = Telemetry::new();
    let (view, cancel, task) = start_source(plan, Some(dir.path().join("no-kubelet.sock")), &telemetry);
    let t = telemetry.clone();
    wait_for("a scrape", || {
        t.get(
            Name::AcceleratorScrapes,
            &[("exporter", "pod_resources"), ("result", "unreachable")],
        ) >= 1.0
            && !view.borrow().is_empty()
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    let c = collector(dir.path(), s, own_node(Some(12)), telemetry, view);
    let (_, _, cycle) = cycle(c, node).await;
    let kinds: BTreeSet<&str> = cycle
        .records
        .iter()
        .map(|r| r.kind.as_str())
        .filter(|k| k.contains("AWSNeuron"))
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["NodeAWSNeuron", "NodeAWSNeuronCore"]),
        "no holders, no pod records; no ECC increase after one scrape"
    );
}

#[test]
fn a_node_without_neuron_cores_is_not_scraped_unless_the_config_names_neuron_monitor() {
    let default = settings(None);
    assert_eq!(default.scrape_plan(Some(&own_node(None))).neuron, None);
    assert_eq!(default.scrape_plan(Some(&own_node(Some(0)))).neuron, None);
    assert_eq!(default.scrape_plan(None).neuron, None, "Node object unknown");
    let plan = default.scrape_plan(Some(&own_node(Some(2))));
    assert_eq!(
        plan.neuron.as_ref().map(url::Url::as_str),
        Some("http://127.0.0.1:8000/metrics"),
        "no HOST_IP here: loopback"
    );
    let named = settings(Some("http://10.0.0.7:8000/metrics"));
    assert!(named.scrape_plan(None).neuron.is_some());
    let mut off = named;
    off.accel.enabled = false;
    assert_eq!(off.scrape_plan(Some(&own_node(Some(2)))).neuron, None);
}
