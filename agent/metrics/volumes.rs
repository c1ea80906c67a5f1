//! EBS and instance-store volume I/O (enhanced observability): `node_diskio_ebs_*` and
//! `node_diskio_instance_store_*`, per volume.
//!
//! The source is the one upstream uses: the NVMe statistics the CSI node plugins export in
//! Prometheus text (the EBS CSI driver's `aws_ebs_csi_*` with `node.enableMetrics`, read through
//! the NVMe log page `0xD0` by the driver, `pkg/metrics/nvme.go` in
//! kubernetes-sigs/aws-ebs-csi-driver; the instance-store driver's `aws_ec2_instance_store_csi_*`
//! with the same names). Upstream scrapes them through a Kubernetes Service, which balances each
//! scrape to *any* node's plugin while labelling the result with its own node
//! (`internal/nvme/nvme_ebs_scraper_config.go` in `awscontainerinsightreceiver`); kinsight
//! scrapes the plugin pod of its own node, found in the pod index by its labels, at its pod IP
//! and its container port named `metrics` (default 3302, the EBS chart's). Reading the log page
//! directly would need an `ioctl` with a raw pointer (unsafe code) and write access to the NVMe
//! devices; the plugin already has both.
//!
//! Counters become the increase since the previous scrape of the same volume (a counter that went
//! down counts from zero, as upstream's EMF exporter computes deltas); the queue length is a
//! gauge. The histograms (`*_io_latency_seconds`) are dropped, as upstream drops them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_parse::{Scrape, Value};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::record::{Record, RecordType};
use crate::kube::{PodIndex, PodInfo};
use crate::telemetry::{Name, Telemetry};

/// Which plugin a volume is reported by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VolumeKind {
    Ebs,
    InstanceStore,
}

impl VolumeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeKind::Ebs => "ebs",
            VolumeKind::InstanceStore => "instance_store",
        }
    }

    fn record_type(self) -> RecordType {
        match self {
            VolumeKind::Ebs => RecordType::NodeEBS,
            VolumeKind::InstanceStore => RecordType::NodeInstanceStore,
        }
    }
}

/// A CSI node plugin kinsight scrapes: where its pods are, how they are labelled, and the prefix
/// of its metrics.
#[derive(Debug, Clone, Copy)]
pub struct Exporter {
    pub kind: VolumeKind,
    pub namespace: &'static str,
    /// A label its node pods carry: `app=ebs-csi-node` is the EBS chart's node `DaemonSet`
    /// selector; `app.kubernetes.io/name=instance-store-plugin` the label upstream selects the
    /// instance-store plugin by.
    pub label: (&'static str, &'static str),
    /// The port when the pod names none `metrics`.
    pub default_port: u16,
    pub prefix: &'static str,
    /// Source name (after the prefix) → `Container Insights` metric, and whether it is a counter.
    pub fields: &'static [(&'static str, &'static str, bool)],
}

/// The metrics path of both plugins.
const PATH: &str = "/metrics";
/// A plugin's response: one line per volume and metric, plus two histograms of 64 buckets per
/// volume; 4 MiB is far above an instance's 28+ volumes.
const BODY_LIMIT: usize = 4 << 20;

pub const EXPORTERS: [Exporter; 2] = [
    Exporter {
        kind: VolumeKind::Ebs,
        namespace: "kube-system",
        label: ("app", "ebs-csi-node"),
        default_port: 3302,
        prefix: "aws_ebs_csi_",
        fields: &[
            ("read_ops_total", "node_diskio_ebs_total_read_ops", true),
            ("write_ops_total", "node_diskio_ebs_total_write_ops", true),
            ("read_bytes_total", "node_diskio_ebs_total_read_bytes", true),
            ("write_bytes_total", "node_diskio_ebs_total_write_bytes", true),
            ("read_seconds_total", "node_diskio_ebs_total_read_time", true),
            ("write_seconds_total", "node_diskio_ebs_total_write_time", true),
            (
                "exceeded_iops_seconds_total",
                "node_diskio_ebs_volume_performance_exceeded_iops",
                true,
            ),
            (
                "exceeded_tp_seconds_total",
                "node_diskio_ebs_volume_performance_exceeded_tp",
                true,
            ),
            (
                "ec2_exceeded_iops_seconds_total",
                "node_diskio_ebs_ec2_instance_performance_exceeded_iops",
                true,
            ),
            (
                "ec2_exceeded_tp_seconds_total",
                "node_diskio_ebs_ec2_instance_performance_exceeded_tp",
                true,
            ),
            ("volume_queue_length", "node_diskio_ebs_volume_queue_length", false),
        ],
    },
    Exporter {
        kind: VolumeKind::InstanceStore,
        namespace: "kube-system",
        label: ("app.kubernetes.io/name", "instance-store-plugin"),
        default_port: 3302,
        prefix: "aws_ec2_instance_store_csi_",
        fields: &[
            ("read_ops_total", "node_diskio_instance_store_total_read_ops", true),
            ("write_ops_total", "node_diskio_instance_store_total_write_ops", true),
            ("read_bytes_total", "node_diskio_instance_store_total_read_bytes", true),
            (
                "write_bytes_total",
                "node_diskio_instance_store_total_write_bytes",
                true,
            ),
            ("read_seconds_total", "node_diskio_instance_store_total_read_time", true),
            (
                "write_seconds_total",
                "node_diskio_instance_store_total_write_time",
                true,
            ),
            (
                "ec2_exceeded_iops_seconds_total",
                "node_diskio_instance_store_ec2_instance_performance_exceeded_iops",
                true,
            ),
            (
                "ec2_exceeded_tp_seconds_total",
                "node_diskio_instance_store_ec2_instance_performance_exceeded_tp",
                true,
            ),
            (
                "volume_queue_length",
                "node_diskio_instance_store_volume_queue_length",
                false,
            ),
        ],
    },
];

/// One value of one volume.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub kind: VolumeKind,
    pub volume: Arc<str>,
    /// The `Container Insights` metric name.
    pub metric: &'static str,
    pub value: f64,
    pub counter: bool,
}

/// This node's plugins at one scrape. `seq` grows with each scrape, so that a tick that sees the
/// same scrape again sends nothing twice.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VolumeScrape {
    pub seq: u64,
    pub samples: Vec<Sample>,
}

/// The last scrape, for the collector.
pub type VolumeView = watch::Receiver<Arc<VolumeScrape>>;

/// The source's sender and the collector's view.
pub fn volume_channel() -> (watch::Sender<Arc<VolumeScrape>>, VolumeView) {
    watch::channel(Arc::new(VolumeScrape::default()))
}

/// The samples of one plugin's response: the fields of [`Exporter::fields`] with a `volume_id`
/// label; other families, histograms and lines without a volume are skipped.
pub fn parse(exporter: &Exporter, text: &str) -> Vec<Sample> {
    let lines = text
        .lines()
        .filter(|l| l.starts_with('#') || l.starts_with(exporter.prefix))
        .map(|l| Ok(l.to_string()));
    let Ok(scrape) = Scrape::parse(lines) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for s in scrape.samples {
        let Some(suffix) = s.metric.strip_prefix(exporter.prefix) else {
            continue;
        };
        let Some(&(_, metric, counter)) = exporter.fields.iter().find(|(f, _, _)| *f == suffix) else {
            continue;
        };
        let (Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) = s.value else {
            continue;
        };
        let Some(volume) = s.labels.get("volume_id").filter(|v| !v.is_empty()) else {
            continue;
        };
        if value.is_finite() {
            out.push(Sample {
                kind: exporter.kind,
                volume: Arc::from(volume),
                metric,
                value,
                counter,
            });
        }
    }
    out
}

/// The exporter a pod of this node is, and where it listens.
fn target(pod: &PodInfo) -> Option<(&'static Exporter, SocketAddr)> {
    let (ip, port) = pod.metrics_endpoint?;
    let exporter = EXPORTERS
        .iter()
        .find(|e| pod.namespace == e.namespace && pod.labels.get(e.label.0).is_some_and(|v| v == e.label.1))?;
    Some((exporter, SocketAddr::new(ip, port.unwrap_or(exporter.default_port))))
}

/// Scrapes this node's plugins once an interval into the view, while the collector's settings
/// say enhanced observability is on (a reload may turn it on or off): most EKS nodes run the EBS
/// CSI node plugin with its metrics off, which must cost nothing, not even a warning, in standard
/// mode.
#[derive(Clone)]
pub struct VolumeSource {
    pub index: PodIndex,
    pub tx: watch::Sender<Arc<VolumeScrape>>,
    pub telemetry: Telemetry,
    pub settings: watch::Receiver<super::collect::Settings>,
}

impl std::fmt::Debug for VolumeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VolumeSource").finish_non_exhaustive()
    }
}

impl VolumeSource {
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut seq = 0;
        // Each failing plugin is warned about once, until it answers again.
        let mut failing: HashMap<VolumeKind, bool> = HashMap::new();
        loop {
            let (enhanced, interval) = {
                let s = self.settings.borrow_and_update();
                (s.enhanced, s.interval)
            };
            if !enhanced {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    changed = self.settings.changed() => if changed.is_err() { return },
                }
                continue;
            }
            let snapshot = self.index.snapshot();
            let targets: Vec<(&'static Exporter, SocketAddr)> =
                snapshot.pods().iter().filter_map(|p| target(p)).collect();
            let mut samples = Vec::new();
            for (exporter, addr) in targets {
                let kind = exporter.kind.as_str();
                let timeout = interval.min(Duration::from_secs(10));
                match crate::host::exporter::get(&addr.to_string(), PATH, BODY_LIMIT, timeout).await {
                    Ok(body) => {
                        self.telemetry
                            .add(Name::VolumeScrapes, &[("exporter", kind), ("result", "ok")], 1);
                        if failing.insert(exporter.kind, false) == Some(true) {
                            tracing::info!(exporter = kind, %addr, "volume metrics: the CSI node plugin answers again");
                        }
                        samples.extend(parse(exporter, &String::from_utf8_lossy(&body)));
                    }
                    Err(e) => {
                        self.telemetry
                            .add(Name::VolumeScrapes, &[("exporter", kind), ("result", "error")], 1);
                        if failing.insert(exporter.kind, true) != Some(true) {
                            tracing::warn!(
                                exporter = kind,
                                error = %e,
                                "volume metrics: cannot scrape the CSI node plugin (is node metrics on? the EBS chart's node.enableMetrics); retried every interval"
                            );
                        }
                    }
                }
            }
            seq += 1;
            self.tx.send_replace(Arc::new(VolumeScrape { seq, samples }));
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }
}

/// Scrapes to records, with the counters' previous values.
#[derive(Debug, Default)]
pub struct Volumes {
    last_seq: u64,
    previous: HashMap<(VolumeKind, Arc<str>, &'static str), f64>,
}

impl Volumes {
    /// One `NodeEBS` or `NodeInstanceStore` record per volume of a scrape not seen before, with
    /// the `ClusterName`, `NodeName`, `InstanceId` and time of `node` and the `VolumeId`.
    /// Counters seen for the first time give no value (there is no increase yet).
    pub fn records(&mut self, scrape: &VolumeScrape, node: &Record) -> Vec<Record> {
        if scrape.seq == self.last_seq {
            return Vec::new();
        }
        self.last_seq = scrape.seq;
        let mut by_volume: Vec<Record> = Vec::new();
        let mut index: HashMap<(VolumeKind, &str), usize> = HashMap::new();
        let mut seen = HashMap::with_capacity(self.previous.len());
        for s in &scrape.samples {
            let value = if s.counter {
                let key = (s.kind, Arc::clone(&s.volume), s.metric);
                let before = self.previous.get(&key).copied();
                seen.insert(key, s.value);
                match before {
                    Some(b) if s.value >= b => Some(s.value - b),
                    Some(_) => Some(s.value),
                    None => None,
                }
            } else {
                Some(s.value)
            };
            let i = *index.entry((s.kind, &s.volume)).or_insert_with(|| {
                let mut r = Record::new(s.kind.record_type(), node.timestamp_ms);
                for name in ["ClusterName", "NodeName", "InstanceId"] {
                    if let Some((_, v)) = node.attributes.iter().find(|(k, _)| *k == name) {
                        r.set_attribute(name, v.clone());
                    }
                }
                r.set_attribute("VolumeId", Arc::clone(&s.volume));
                by_volume.push(r);
                by_volume.len() - 1
            });
            by_volume[i].set_field(s.metric, value);
        }
        // Volumes gone (detached) are forgotten.
        self.previous = seen;
        by_volume.retain(|r| !r.fields.is_empty());
        by_volume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the EBS CSI node plugin prints (`pkg/metrics/nvme.go`: counters and the queue gauge
    /// with `instance_id` and `volume_id`, two histograms, its own collector counters).
    const EBS: &str = "\
# HELP aws_ebs_csi_read_ops_total The total number of completed read operations.
# TYPE aws_ebs_csi_read_ops_total counter
aws_ebs_csi_read_ops_total{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 100
aws_ebs_csi_read_ops_total{instance_id=\"i-0abc\",volume_id=\"vol-02\"} 7
# HELP aws_ebs_csi_read_seconds_total The total time spent, in seconds, by all completed read operations.
# TYPE aws_ebs_csi_read_seconds_total counter
aws_ebs_csi_read_seconds_total{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 1.5
# HELP aws_ebs_csi_ec2_exceeded_iops_seconds_total The total time, in seconds, that the EBS volume exceeded the attached Amazon EC2 instance's maximum IOPS performance.
# TYPE aws_ebs_csi_ec2_exceeded_iops_seconds_total counter
aws_ebs_csi_ec2_exceeded_iops_seconds_total{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 0.25
# HELP aws_ebs_csi_exceeded_iops_seconds_total The total time, in seconds, that IOPS demand exceeded the volume's provisioned IOPS performance.
# TYPE aws_ebs_csi_exceeded_iops_seconds_total counter
aws_ebs_csi_exceeded_iops_seconds_total{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 2
# HELP aws_ebs_csi_volume_queue_length The number of read and write operations waiting to be completed.
# TYPE aws_ebs_csi_volume_queue_length gauge
aws_ebs_csi_volume_queue_length{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 3
# HELP aws_ebs_csi_read_io_latency_seconds The number of read operations completed within each latency bin, in seconds.
# TYPE aws_ebs_csi_read_io_latency_seconds histogram
aws_ebs_csi_read_io_latency_seconds_bucket{instance_id=\"i-0abc\",volume_id=\"vol-01\",le=\"0.001\"} 5
aws_ebs_csi_read_io_latency_seconds_bucket{instance_id=\"i-0abc\",volume_id=\"vol-01\",le=\"+Inf\"} 5
aws_ebs_csi_read_io_latency_seconds_sum{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 0
aws_ebs_csi_read_io_latency_seconds_count{instance_id=\"i-0abc\",volume_id=\"vol-01\"} 5
# TYPE aws_ebs_csi_nvme_collector_scrapes_total counter
aws_ebs_csi_nvme_collector_scrapes_total{instance_id=\"i-0abc\"} 12
# TYPE go_goroutines gauge
go_goroutines 20
";

    fn node() -> Record {
        let mut n = Record::new(RecordType::Node, 42);
        n.set_attribute("ClusterName", "c");
        n.set_attribute("NodeName", "n");
        n.set_attribute("InstanceId", "i-0abc");
        n.set_attribute("InstanceType", "m5.large");
        n
    }

    #[test]
    fn the_plugin_output_gives_the_declared_fields_per_volume() {
        let s = parse(&EXPORTERS[0], EBS);
        let got: Vec<(&str, &str, f64, bool)> = s.iter().map(|s| (&*s.volume, s.metric, s.value, s.counter)).collect();
        assert_eq!(
            got,
            [
                ("vol-01", "node_diskio_ebs_total_read_ops", 100.0, true),
                ("vol-02", "node_diskio_ebs_total_read_ops", 7.0, true),
                ("vol-01", "node_diskio_ebs_total_read_time", 1.5, true),
                (
                    "vol-01",
                    "node_diskio_ebs_ec2_instance_performance_exceeded_iops",
                    0.25,
                    true
                ),
                ("vol-01", "node_diskio_ebs_volume_performance_exceeded_iops", 2.0, true),
                ("vol-01", "node_diskio_ebs_volume_queue_length", 3.0, false),
            ]
        );
        // The instance-store prefix takes nothing of the EBS output.
        assert!(parse(&EXPORTERS[1], EBS).is_empty());
        assert!(parse(&EXPORTERS[0], "garbage {{{\n\u{0}").is_empty());
    }

    #[test]
    fn counters_send_increases_from_the_second_scrape_and_gauges_at_once() {
        let mut v = Volumes::default();
        let scrape = |seq, text: &str| VolumeScrape {
            seq,
            samples: parse(&EXPORTERS[0], text),
        };
        let first = v.records(&scrape(1, EBS), &node());
        // Only the gauge: no counter has an increase yet.
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].kind, RecordType::NodeEBS);
        assert_eq!(first[0].attribute("VolumeId"), Some("vol-01"));
        assert_eq!(first[0].attribute("InstanceId"), Some("i-0abc"));
        assert_eq!(first[0].attribute("InstanceType"), None);
        assert_eq!(first[0].timestamp_ms, 42);
        assert_eq!(first[0].fields, [("node_diskio_ebs_volume_queue_length", 3.0)]);
        // The same scrape again (a tick between two scrapes): nothing.
        assert!(v.records(&scrape(1, EBS), &node()).is_empty());

        let later = EBS.replace("} 100", "} 160").replace("} 7", "} 2");
        let second = v.records(&scrape(2, &later), &node());
        let vol1 = second
            .iter()
            .find(|r| r.attribute("VolumeId") == Some("vol-01"))
            .unwrap();
        assert_eq!(vol1.field("node_diskio_ebs_total_read_ops"), Some(60.0));
        assert_eq!(vol1.field("node_diskio_ebs_total_read_time"), Some(0.0));
        // A counter that went down (the plugin restarted) counts from zero.
        let vol2 = second
            .iter()
            .find(|r| r.attribute("VolumeId") == Some("vol-02"))
            .unwrap();
        assert_eq!(vol2.field("node_diskio_ebs_total_read_ops"), Some(2.0));
    }

    /// The pod as the apiserver or a pod list gives it.
    fn pod(namespace: &str, labels: &serde_json::Value, ip: Option<&str>, ports: &serde_json::Value) -> PodInfo {
        let mut p = serde_json::json!({"kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": "plugin-x", "namespace": namespace, "uid": "u-1", "labels": labels},
            "spec": {"containers": [{"name": "node", "ports": ports}]},
            "status": {"phase": "Running"}});
        if let Some(ip) = ip {
            p["status"]["podIP"] = serde_json::json!(ip);
        }
        crate::kube::parse_list(&p.to_string()).unwrap().pods.remove(0)
    }

    #[test]
    fn only_labelled_plugin_pods_with_an_address_are_targets() {
        use serde_json::json;
        let ebs = json!({"app": "ebs-csi-node"});
        assert!(
            target(&pod("kube-system", &ebs, None, &json!([]))).is_none(),
            "no IP yet"
        );
        let (e, addr) = target(&pod("kube-system", &ebs, Some("10.0.0.9"), &json!([]))).unwrap();
        assert_eq!((e.kind, addr.to_string().as_str()), (VolumeKind::Ebs, "10.0.0.9:3302"));
        let named = json!([{"name": "healthz", "containerPort": 9808}, {"name": "metrics", "containerPort": 9000}]);
        assert_eq!(
            target(&pod("kube-system", &ebs, Some("10.0.0.9"), &named))
                .unwrap()
                .1
                .port(),
            9000
        );
        let lis = json!({"app.kubernetes.io/name": "instance-store-plugin"});
        let (e, _) = target(&pod("kube-system", &lis, Some("fd00::5"), &named)).unwrap();
        assert_eq!(e.kind, VolumeKind::InstanceStore);
        assert!(
            target(&pod("default", &ebs, Some("10.0.0.9"), &json!([]))).is_none(),
            "another namespace"
        );
        // Any other pod keeps no endpoint in the index at all.
        let other = pod("kube-system", &json!({"app": "coredns"}), Some("10.0.0.7"), &named);
        assert_eq!(other.metrics_endpoint, None);
    }
}
