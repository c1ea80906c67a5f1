//! Accelerated compute (GPU): a node whose Node object advertises 4 `nvidia.com/gpu`, a pod
//! asking for one, and a node-local DCGM exporter (the fixture of `tests/support/dcgm.rs`),
//! run through the accelerator source and the collector. Every declared GPU (metric, dimension
//! set) pair is sent and nothing else, with the values upstream's conversions give; without an
//! exporter nothing is sent and the failure is said once.

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

use kinsight::host::accel::{AcceleratorSource, ScrapePlan, gpu_channel};
use kinsight::kube::NodeState;
use kinsight::metrics::collect::Settings;
use kinsight::metrics::{Cycle, Datum, Unit};
use kinsight::telemetry::{Name, Telemetry};
use tokio_util::sync::CancellationToken;

use accel_node::{DEVICE_POD as GPU_POD, collector, datum, node_with_device_pod, two_cycles};
use support::dcgm::{DCGM_EXPORTER_TEXT, dcgm_exporter};
use support::pod_resources::{FakeKubelet, ListPodResourcesResponse, holding};

const MIB: f64 = 1_048_576.0;

fn own_node(gpus: Option<u64>) -> NodeState {
    NodeState {
        name: "node".into(),
        capacity_gpus: gpus,
        ..NodeState::default()
    }
}

fn settings(dcgm_url: Option<&str>) -> Settings {
    let url = dcgm_url.map_or(String::new(), |u| format!(r#","dcgm_exporter_url":"{u}""#));
    let json = format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c","enhanced_container_insights":true}}}}}},
            "kinsight":{{"metrics":{{"destination":"put_metric_data"{url}}}}}}}"#
    );
    let cfg = settings::load(&json);
    settings::settings(&cfg, "g5.2xlarge")
}

/// Runs the accelerator source with `plan` until `done` holds (or 10 s pass), then stops it.
async fn run_source(
    plan: ScrapePlan,
    pod_resources: Option<PathBuf>,
    telemetry: &Telemetry,
    done: impl Fn(&kinsight::host::accel::GpuView, &Telemetry) -> bool,
) -> kinsight::host::accel::GpuView {
    let (tx, view) = gpu_channel();
    let source = AcceleratorSource {
        plan: Arc::new(move || plan.clone()),
        gpus: tx,
        neurons: kinsight::host::accel::neuron_channel().0,
        pod_resources,
        host: None,
        imds: None,
        telemetry: telemetry.clone(),
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(cancel.clone()));
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done(&view, telemetry) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    cancel.cancel();
    task.await.unwrap();
    assert!(waited.is_ok(), "the source did not get there in 10 s");
    view
}

fn is_gpu(metric: &str) -> bool {
    metric.contains("_gpu_")
}

fn gpu_pairs(c: &Cycle) -> BTreeSet<pairs::Pair> {
    pairs::datum_pairs(c).into_iter().filter(|(m, _)| is_gpu(m)).collect()
}

/// A node whose first pod's container `c0` has `nvidia.com/gpu: 1`.
fn node_with_gpu_pod(dir: &Path) -> synthetic::Node {
    node_with_device_pod(dir, "nvidia.com/gpu", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gpu_records_reach_the_datums_with_upstreams_dimension_sets_and_units() {
    let exporter = dcgm_exporter(DCGM_EXPORTER_TEXT);
    let url = format!("{}/metrics", exporter.url());
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_with_gpu_pod(dir.path());
    let s = settings(Some(&url));
    let own = own_node(Some(4));
    let plan = s.scrape_plan(Some(&own));
    assert_eq!(plan.dcgm.as_ref().map(url::Url::as_str), Some(url.as_str()));
    let telemetry = Telemetry::new();
    let view = run_source(plan, None, &telemetry, |v, _| v.borrow().gpus.len() == 2).await;
    let ok = telemetry.get(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", "ok")]);
    assert!(ok >= 1.0, "{ok}");
    assert!(exporter.requests().iter().all(|r| r.path == "/metrics"));

    let c = collector(dir.path(), s, own, telemetry).with_gpus(view);
    let cycle = tokio::task::spawn_blocking(move || two_cycles(c, &mut node))
        .await
        .unwrap();
    let d = &cycle.datums;

    // Every declared GPU pair is sent, and nothing else.
    let declared = pairs::declared_pairs(is_gpu);
    assert_eq!(
        declared.len(),
        7 * 4 + 7 * 6 + 7 * 3 + 4 * 4 + 5 * 2,
        "container 4, pod 6, node 3 sets"
    );
    pairs::assert_same_pairs(&declared, &gpu_pairs(&cycle));

    exporter_values(d);
    resource_values(d);
}

/// The DCGM fixture's values as upstream converts them.
fn exporter_values(d: &[Datum]) {
    // Node level, per GPU: DCGM's MiB in bytes, the used fraction in percent, watts and
    // degrees without a unit.
    let n0 = [
        ("ClusterName", "c"),
        ("GpuDevice", "nvidia0"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("InstanceType", "g5.2xlarge"),
        ("NodeName", "node"),
    ];
    let used = datum(d, "node_gpu_memory_used", &n0);
    assert_eq!((used.value, used.unit), (8192.0 * MIB, Unit::Bytes));
    assert_eq!(datum(d, "node_gpu_memory_total", &n0).value, 22528.0 * MIB);
    let mem_util = datum(d, "node_gpu_memory_utilization", &n0);
    assert_eq!((mem_util.value, mem_util.unit), (37.5, Unit::Percent));
    let power = datum(d, "node_gpu_power_draw", &n0);
    assert_eq!((power.value, power.unit), (182.5, Unit::None));
    let mut n1 = n0;
    n1[1].1 = "nvidia1";
    let temp = datum(d, "node_gpu_temperature", &n1);
    assert_eq!((temp.value, temp.unit), (30.0, Unit::None));
    // Both GPUs add to the node-wide series.
    let node_util: Vec<f64> = d
        .iter()
        .filter(|x| x.metric_name == "node_gpu_utilization" && x.dimensions.len() == 1)
        .map(|x| x.value)
        .collect();
    assert_eq!(node_util, [87.0, 0.0]);

    // Pod and container of the assigned GPU: `PodName` is the workload, `FullPodName` the pod.
    let p0 = [
        ("ClusterName", "c"),
        ("FullPodName", GPU_POD),
        ("GpuDevice", "nvidia0"),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "pod_gpu_utilization", &p0).value, 87.0);
    let c0 = [
        ("ClusterName", "c"),
        ("ContainerName", "c0"),
        ("FullPodName", GPU_POD),
        ("GpuDevice", "nvidia0"),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    let tensor = datum(d, "container_gpu_tensor_core_utilization", &c0);
    assert_eq!((tensor.value, tensor.unit), (0.412, Unit::Percent));
    let s0 = [("ClusterName", "c"), ("Namespace", "ns0"), ("Service", "web")];
    assert_eq!(datum(d, "pod_gpu_memory_used", &s0).value, 8192.0 * MIB);
    // The idle GPU has no pod.
    assert!(
        !d.iter()
            .any(|x| x.metric_name.starts_with("pod_gpu_") && x.dimensions.iter().any(|(_, v)| &**v == "nvidia1"))
    );
}

/// Requests, limits and capacity from the pod spec and the Node object.
fn resource_values(d: &[Datum]) {
    let fp = [
        ("ClusterName", "c"),
        ("FullPodName", GPU_POD),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    for (metric, value, unit) in [
        ("pod_gpu_request", 1.0, Unit::Count),
        ("pod_gpu_limit", 1.0, Unit::Count),
        ("pod_gpu_usage_total", 1.0, Unit::Count),
        ("pod_gpu_reserved_capacity", 25.0, Unit::Percent),
    ] {
        let x = datum(d, metric, &fp);
        assert_eq!((x.value, x.unit), (value, unit), "{metric}");
    }
    let other_pod = [
        ("ClusterName", "c"),
        ("FullPodName", "web-7d4b9c8f6d-00001"),
        ("Namespace", "ns1"),
        ("PodName", "web"),
    ];
    assert!(
        !d.iter().any(|x| x.metric_name == "pod_gpu_limit"
            && x.dimensions.len() == other_pod.len()
            && x.dimensions.iter().any(|(_, v)| &**v == "web-7d4b9c8f6d-00001")),
        "a pod without GPUs has no pod_gpu_* fields: {other_pod:?}"
    );
    let n = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("NodeName", "node"),
    ];
    for (metric, value) in [
        ("node_gpu_limit", 4.0),
        ("node_gpu_usage_total", 1.0),
        ("node_gpu_reserved_capacity", 25.0),
        ("node_gpu_unreserved_capacity", 75.0),
        ("node_gpu_available_capacity", 3.0),
    ] {
        assert_eq!(datum(d, metric, &n).value, value, "{metric}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubelets_pod_resources_name_the_gpu_holders_over_the_exporters_labels() {
    let exporter = dcgm_exporter(DCGM_EXPORTER_TEXT);
    let url = format!("{}/metrics", exporter.url());
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_with_gpu_pod(dir.path());
    // The kubelet gives the GPU the exporter calls idle (nvidia1) to the second pod, as a
    // time-slicing replica id; it says nothing of nvidia0, which keeps the exporter's labels.
    let kubelet = FakeKubelet::start(
        dir.path(),
        &ListPodResourcesResponse {
            pod_resources: vec![
                holding(
                    "ns1",
                    "web-7d4b9c8f6d-00001",
                    "c0",
                    "nvidia.com/gpu",
                    &["GPU-0d9b6a41-8e2f-4b7c-a3d5-6c1e9f2b4a87::1"],
                ),
                holding("ns1", "other", "c0", "vpc.amazonaws.com/efa", &["efa0"]),
            ],
        },
    );
    let s = settings(Some(&url));
    let own = own_node(Some(4));
    let telemetry = Telemetry::new();
    let view = run_source(
        s.scrape_plan(Some(&own)),
        Some(kubelet.socket.clone()),
        &telemetry,
        |v, _| v.borrow().gpus.iter().filter(|g| g.assignment.is_some()).count() == 2,
    )
    .await;
    assert!(kubelet.calls() >= 1);
    let ok = telemetry.get(
        Name::AcceleratorScrapes,
        &[("exporter", "pod_resources"), ("result", "ok")],
    );
    assert!(ok >= 1.0, "{ok}");

    let c = collector(dir.path(), s, own, telemetry).with_gpus(view);
    let cycle = tokio::task::spawn_blocking(move || two_cycles(c, &mut node))
        .await
        .unwrap();
    let d = &cycle.datums;
    let holder = [
        ("ClusterName", "c"),
        ("ContainerName", "c0"),
        ("FullPodName", "web-7d4b9c8f6d-00001"),
        ("GpuDevice", "nvidia1"),
        ("Namespace", "ns1"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "container_gpu_temperature", &holder).value, 30.0);
    let exporters = [
        ("ClusterName", "c"),
        ("FullPodName", GPU_POD),
        ("GpuDevice", "nvidia0"),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    assert_eq!(datum(d, "pod_gpu_temperature", &exporters).value, 62.0);
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

#[tokio::test(flavor = "current_thread")]
async fn without_an_exporter_nothing_is_sent_and_the_failure_is_said_once() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_with_gpu_pod(dir.path());
    let s = settings(Some(&url));
    let mut plan = s.scrape_plan(Some(&own_node(Some(4))));
    plan.interval = Duration::from_millis(10);

    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let telemetry = Telemetry::new();
    let failed = |t: &Telemetry| {
        ["unreachable", "timeout", "status", "invalid"]
            .iter()
            .map(|r| t.get(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", r)]))
            .sum::<f64>()
    };
    let view = run_source(plan, None, &telemetry, |_, t| failed(t) >= 5.0).await;
    assert!(view.borrow().gpus.is_empty());
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let kinds = ["unreachable", "timeout", "status", "invalid"]
        .iter()
        .filter(|r| telemetry.get(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", r)]) > 0.0)
        .count();
    assert_eq!(
        text.matches("DCGM exporter not scraped").count(),
        kinds,
        "once per kind of failure, not per scrape: {text}"
    );

    let c = collector(dir.path(), s, own_node(Some(4)), telemetry).with_gpus(view);
    let cycle = two_cycles(c, &mut node);
    let gpu: Vec<&str> = cycle
        .datums
        .iter()
        .map(|d| d.metric_name)
        .filter(|m| m.contains("_gpu_") && !m.starts_with("pod_gpu_") && !m.starts_with("node_gpu_"))
        .collect();
    assert!(gpu.is_empty(), "{gpu:?}");
    assert!(
        !cycle.records.iter().any(|r| r.kind.as_str().ends_with("GPU")),
        "no GPU records"
    );
}

#[test]
fn a_node_without_gpus_is_not_scraped_unless_the_config_names_the_exporter() {
    let default = settings(None);
    assert_eq!(default.scrape_plan(Some(&own_node(None))).dcgm, None);
    assert_eq!(default.scrape_plan(Some(&own_node(Some(0)))).dcgm, None);
    assert_eq!(default.scrape_plan(None).dcgm, None, "Node object unknown");
    let plan = default.scrape_plan(Some(&own_node(Some(1))));
    assert_eq!(
        plan.dcgm.as_ref().map(url::Url::as_str),
        Some("http://127.0.0.1:9400/metrics"),
        "no HOST_IP here: loopback"
    );
    let named = settings(Some("http://10.0.0.7:9400/metrics"));
    assert!(named.scrape_plan(None).dcgm.is_some());
    let mut off = named;
    off.accel.enabled = false;
    assert_eq!(off.scrape_plan(Some(&own_node(Some(1)))).dcgm, None);
}

/// An exporter that answered and then fails: its last figures are dropped, not sent again.
#[tokio::test]
#[allow(clippy::float_cmp, reason = "counts, exact in f64")]
async fn figures_of_an_exporter_that_stopped_answering_are_not_sent_again() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let served = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&served);
    let exporter = support::fake_server::FakeServer::start(move |_| {
        if count.fetch_add(1, Ordering::SeqCst) == 0 {
            support::fake_server::Response::new(200, "text/plain; version=0.0.4", support::dcgm::DCGM_EXPORTER_TEXT)
        } else {
            support::fake_server::Response::text(503, "restarting")
        }
    });
    let s = settings(Some(&format!("{}/metrics", exporter.url())));
    let mut plan = s.scrape_plan(Some(&own_node(Some(4))));
    plan.interval = Duration::from_millis(10);
    let telemetry = Telemetry::new();
    let ok = |t: &Telemetry| t.get(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", "ok")]);
    let failed = |t: &Telemetry| t.get(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", "status")]);
    // Seen after the answer: the exporter's two GPUs.
    let seen = Arc::new(AtomicUsize::new(0));
    let max = Arc::clone(&seen);
    let view = run_source(plan, None, &telemetry, move |v, t| {
        max.fetch_max(v.borrow().gpus.len(), Ordering::SeqCst);
        ok(t) == 1.0 && failed(t) >= 1.0
    })
    .await;
    assert_eq!(seen.load(Ordering::SeqCst), 2, "the answer was published");
    assert!(view.borrow().gpus.is_empty(), "the first answer's GPUs are gone");
}
