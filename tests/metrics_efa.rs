//! Elastic Fabric Adapter: a node whose Node object advertises 2 `vpc.amazonaws.com/efa`, a pod
//! asking for one, two EFA devices in sysfs (the fixture of `tests/support/efa.rs`), the
//! kubelet's pod-resources API giving one device to the pod, and IMDS naming its network
//! interface — run through the accelerator source and the collector. Every declared EFA
//! (metric, dimension set) pair is sent and nothing else; odd counter files are counted and the
//! rest still sent; a node without EFA sends nothing and says nothing.

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
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kinsight::config::AwsEnv;
use kinsight::host::Root;
use kinsight::host::accel::{AcceleratorSource, GpuView, ScrapePlan, gpu_channel};
use kinsight::kube::NodeState;
use kinsight::metrics::collect::Settings;
use kinsight::metrics::{Cycle, Datum, Unit};
use kinsight::telemetry::{Name, Telemetry};
use tokio_util::sync::CancellationToken;

use accel_node::{DEVICE_POD as EFA_POD, collector, datum, datums, node_with_device_pod, two_cycles};
use support::Imds;
use support::efa::EfaDevice;
use support::imds::IMDS_ENI;
use support::pod_resources::{FakeKubelet, ListPodResourcesResponse, holding};

/// The device the kubelet gives the pod, with the GID IMDS knows.
const HELD: &str = "rdmap16s27";
/// A device nobody holds, without a GID.
const IDLE: &str = "rdmap32s27";

fn own_node(efas: Option<u64>) -> NodeState {
    NodeState {
        name: "node".into(),
        capacity_efas: efas,
        ..NodeState::default()
    }
}

fn settings(accelerated: bool) -> Settings {
    let json = format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c","enhanced_container_insights":true,
            "accelerated_compute_metrics":{accelerated}}}}}}},
            "kinsight":{{"metrics":{{"destination":"put_metric_data"}}}}}}"#
    );
    let cfg = settings::load(&json);
    settings::settings(&cfg, "p5.48xlarge")
}

struct SourceRun<'a> {
    plan: ScrapePlan,
    host: &'a Path,
    pod_resources: Option<PathBuf>,
    imds: Option<AwsEnv>,
}

/// Runs the accelerator source until `done` holds (or 10 s pass) and `between` has run once
/// `ready` held, then stops it.
async fn run_source(
    run: SourceRun<'_>,
    telemetry: &Telemetry,
    ready: impl Fn(&GpuView, &Telemetry) -> bool,
    between: impl FnOnce(),
    done: impl Fn(&GpuView, &Telemetry) -> bool,
) -> GpuView {
    let (tx, view) = gpu_channel();
    let plan = run.plan;
    let source = AcceleratorSource {
        plan: Arc::new(move || plan.clone()),
        gpus: tx,
        neurons: kinsight::host::accel::neuron_channel().0,
        pod_resources: run.pod_resources,
        host: Some(Root::new(run.host)),
        imds: run.imds,
        telemetry: telemetry.clone(),
    };
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(cancel.clone()));
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !ready(&view, telemetry) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        between();
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

fn efa_reads(t: &Telemetry, result: &'static str) -> f64 {
    t.get(Name::AcceleratorScrapes, &[("exporter", "efa"), ("result", result)])
}

fn is_efa(metric: &str) -> bool {
    metric.contains("_efa_")
}

fn efa_pairs(c: &Cycle) -> BTreeSet<pairs::Pair> {
    pairs::datum_pairs(c).into_iter().filter(|(m, _)| is_efa(m)).collect()
}

/// A node whose first pod's container `c0` has `vpc.amazonaws.com/efa: 1`.
fn node_with_efa_pod(dir: &Path) -> synthetic::Node {
    node_with_device_pod(dir, "vpc.amazonaws.com/efa", "1")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn efa_devices_reach_the_datums_with_upstreams_dimension_sets_and_units() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_with_efa_pod(dir.path());
    let held = EfaDevice::create(dir.path(), HELD, 1_000_000, Some(support::efa::EFA_GID));
    let _idle = EfaDevice::create(dir.path(), IDLE, 5, None);
    let kubelet = FakeKubelet::start(
        dir.path(),
        &ListPodResourcesResponse {
            pod_resources: vec![holding("ns0", EFA_POD, "c0", "vpc.amazonaws.com/efa", &[HELD])],
        },
    );
    let imds = Imds::start();
    let settings = settings(true);
    let own = own_node(Some(2));
    let mut plan = settings.scrape_plan(Some(&own));
    assert!(plan.efa && plan.dcgm.is_none(), "{plan:?}");
    plan.interval = Duration::from_millis(50);
    let telemetry = Telemetry::new();
    let view = run_source(
        SourceRun {
            plan,
            host: dir.path(),
            pod_resources: Some(kubelet.socket.clone()),
            imds: Some(AwsEnv {
                ec2_metadata_service_endpoint: Some(imds.url()),
                ..AwsEnv::default()
            }),
        },
        &telemetry,
        |_, t| efa_reads(t, "ok") >= 1.0,
        // The held device moves 4 MB between two reads.
        || held.set_all(5_000_000),
        |v, _| {
            v.borrow()
                .efa
                .iter()
                .any(|e| &*e.device == HELD && e.rates[3].is_some_and(|r| r > 0.0))
        },
    )
    .await;
    {
        let scrape = view.borrow();
        let e = scrape.efa.iter().find(|e| &*e.device == HELD).unwrap();
        assert_eq!(e.interface_id.as_deref(), Some(IMDS_ENI));
        assert_eq!(e.holders.len(), 1, "{:?}", e.holders);
        let idle = scrape.efa.iter().find(|e| &*e.device == IDLE).unwrap();
        assert_eq!((idle.interface_id.as_deref(), idle.holders.len()), (None, 0));
        assert_eq!(idle.rates[3], Some(0.0), "an idle device moves nothing");
    }
    assert!(kubelet.calls() >= 1);
    assert!(imds.requests().iter().any(|r| r.path.ends_with("/interface-id")));

    let collector = collector(dir.path(), settings, own, telemetry).with_gpus(view);
    let cycle = tokio::task::spawn_blocking(move || two_cycles(collector, &mut node))
        .await
        .unwrap();
    let d = &cycle.datums;

    // Every declared EFA pair is sent, and nothing else.
    let declared = pairs::declared_pairs(is_efa);
    assert_eq!(
        declared.len(),
        11 * 4 + 11 * 6 + 11 * 3 + 4 * 4 + 5 * 2,
        "container 4, pod 6, node 3 sets; pod and node resources"
    );
    pairs::assert_same_pairs(&declared, &efa_pairs(&cycle));

    device_values(d);
    resource_values(d);
}

/// The device's own series: per second, on its network interface.
fn device_values(d: &[Datum]) {
    let eni_node = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("InstanceType", "p5.48xlarge"),
        ("NetworkInterfaceId", IMDS_ENI),
        ("NodeName", "node"),
    ];
    let rx = datum(d, "node_efa_rx_bytes", &eni_node);
    assert_eq!(rx.unit, Unit::BytesPerSecond);
    assert!(rx.value > 0.0, "{rx:?}");
    let drops = datum(d, "node_efa_rx_dropped", &eni_node);
    assert_eq!(drops.unit, Unit::CountPerSecond);
    let c0 = [
        ("ClusterName", "c"),
        ("ContainerName", "c0"),
        ("FullPodName", EFA_POD),
        ("Namespace", "ns0"),
        ("NetworkInterfaceId", IMDS_ENI),
        ("PodName", "web"),
    ];
    assert_eq!(
        datum(d, "container_efa_tx_bytes", &c0).value,
        rx.value,
        "the same device"
    );
    // Both devices add to the node-wide series; only the held one to the pod's.
    let cluster = [("ClusterName", "c")];
    assert_eq!(datums(d, "node_efa_rx_bytes", &cluster).len(), 2);
    assert_eq!(datums(d, "pod_efa_rx_bytes", &cluster).len(), 1);
}

/// Requests, limits and capacity from the pod spec and the Node object.
fn resource_values(d: &[Datum]) {
    let fp = [
        ("ClusterName", "c"),
        ("FullPodName", EFA_POD),
        ("Namespace", "ns0"),
        ("PodName", "web"),
    ];
    for (metric, value, unit) in [
        ("pod_efa_request", 1.0, Unit::Count),
        ("pod_efa_limit", 1.0, Unit::Count),
        ("pod_efa_usage_total", 1.0, Unit::Count),
        ("pod_efa_reserved_capacity", 50.0, Unit::Percent),
    ] {
        let x = datum(d, metric, &fp);
        assert_eq!((x.value, x.unit), (value, unit), "{metric}");
    }
    let nn = [
        ("ClusterName", "c"),
        ("InstanceId", "i-0123456789abcdef0"),
        ("NodeName", "node"),
    ];
    for (metric, value) in [
        ("node_efa_limit", 2.0),
        ("node_efa_usage_total", 1.0),
        ("node_efa_reserved_capacity", 50.0),
        ("node_efa_unreserved_capacity", 50.0),
        ("node_efa_available_capacity", 1.0),
    ] {
        assert_eq!(datum(d, metric, &nn).value, value, "{metric}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn odd_counter_files_are_counted_and_the_rest_is_still_sent() {
    let dir = tempfile::tempdir().unwrap();
    let held = EfaDevice::create(dir.path(), HELD, 100, Some("fe80::1"));
    held.set("rx_bytes", "\u{0}\u{1}garbage");
    held.set("tx_bytes", "N/A (no PMA)");
    std::fs::remove_file(
        dir.path()
            .join("sys/devices/pci0000:00/0000:00:1d.0/infiniband")
            .join(HELD)
            .join("ports/1/hw_counters/retrans_bytes"),
    )
    .unwrap();
    let s = settings(true);
    let mut plan = s.scrape_plan(None);
    plan.interval = Duration::from_millis(20);
    let telemetry = Telemetry::new();
    let view = run_source(
        SourceRun {
            plan,
            host: dir.path(),
            pod_resources: None,
            imds: None,
        },
        &telemetry,
        |_, t| efa_reads(t, "partial") >= 1.0,
        || {},
        |v, t| efa_reads(t, "partial") >= 3.0 && v.borrow().efa.iter().any(|e| e.rates[0].is_some()),
    )
    .await;
    assert_eq!(efa_reads(&telemetry, "ok"), 0.0, "every read had an odd file");
    let scrape = view.borrow();
    let e = &scrape.efa[0];
    assert_eq!(e.rates[3], None, "garbage rx_bytes");
    assert_eq!(e.rates[5], None, "N/A tx_bytes");
    assert_eq!(e.rates[6], None, "a counter this driver lacks");
    assert_eq!(e.rates[0], Some(0.0), "the rest are read");
    assert_eq!(e.interface_id, None, "a GID that is not EUI-64 names no interface");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_efa_sends_nothing_and_says_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // No device, no capacity, no pod asking for one.
    let mut node = synthetic::Node::create(dir.path(), 2, 1);
    let s = settings(true);
    let own = own_node(None);
    let mut plan = s.scrape_plan(Some(&own));
    plan.interval = Duration::from_millis(10);
    let kubelet = FakeKubelet::start(dir.path(), &ListPodResourcesResponse { pod_resources: vec![] });
    let telemetry = Telemetry::new();
    let started = tokio::time::Instant::now();
    let view = run_source(
        SourceRun {
            plan,
            host: dir.path(),
            pod_resources: Some(kubelet.socket.clone()),
            imds: None,
        },
        &telemetry,
        |_, _| true,
        || {},
        // Several intervals pass.
        move |_, _| started.elapsed() > Duration::from_millis(100),
    )
    .await;
    assert!(view.borrow().efa.is_empty());
    for result in ["ok", "partial", "io", "permission_denied", "refused"] {
        assert_eq!(efa_reads(&telemetry, result), 0.0, "{result}");
    }
    assert_eq!(kubelet.calls(), 0, "no device, no question to the kubelet");

    let c = collector(dir.path(), s, own, telemetry).with_gpus(view);
    let cycle = tokio::task::spawn_blocking(move || two_cycles(c, &mut node))
        .await
        .unwrap();
    assert!(efa_pairs(&cycle).is_empty(), "{:?}", efa_pairs(&cycle));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accelerated_metrics_off_reads_no_device() {
    let s = settings(false);
    let plan = s.scrape_plan(Some(&own_node(Some(2))));
    assert!(!plan.efa, "{plan:?}");
    let dir = tempfile::tempdir().unwrap();
    let mut node = node_with_efa_pod(dir.path());
    let c = collector(dir.path(), s, own_node(Some(2)), Telemetry::new());
    let cycle = tokio::task::spawn_blocking(move || two_cycles(c, &mut node))
        .await
        .unwrap();
    assert!(efa_pairs(&cycle).is_empty(), "no pod_efa_*/node_efa_* fields either");
}
