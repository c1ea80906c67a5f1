//! `docs/metric-reference.md` is the declaration table, rendered: every metric kinsight sends in
//! standard and in enhanced mode, with its unit, dimension sets, record `Type` and where the
//! value comes from, and the enhanced groups it does not send. This test renders it and fails
//! when the file differs; `KINSIGHT_UPDATE_GOLDEN=1 cargo test --test metric_reference` rewrites
//! it.

use std::fmt::Write as _;

use kinsight::metrics::declare::{self, Declaration, MISSING_ENHANCED};
use kinsight::metrics::record::RecordType;

/// Where a metric's value comes from. The match is exhaustive: a new record type needs its
/// source written here before the reference can be rendered.
fn source(d: &Declaration) -> &'static str {
    let m = d.metric;
    match d.record {
        RecordType::Node if m.contains("_gpu_") => {
            "accelerated: pod index (nvidia.com/gpu requests, limits) and the Node object's GPU capacity"
        }
        RecordType::Pod if m.contains("_gpu_") => {
            "accelerated: pod spec (nvidia.com/gpu) and the Node object's GPU capacity"
        }
        RecordType::ContainerGPU | RecordType::PodGPU | RecordType::NodeGPU => {
            "accelerated: the node's DCGM exporter; holders from the kubelet's pod-resources API"
        }
        RecordType::Node if m.contains("_efa_") => {
            "accelerated: the Node object's vpc.amazonaws.com/efa capacity and the pod index"
        }
        RecordType::Pod if m.contains("_efa_") => {
            "accelerated: pod spec (vpc.amazonaws.com/efa) and the Node object's EFA capacity"
        }
        RecordType::ContainerEFA | RecordType::PodEFA | RecordType::NodeEFA => {
            "accelerated: /sys/class/infiniband/*/ports/*/hw_counters, per second; holders from the kubelet's \
             pod-resources API, NetworkInterfaceId from IMDS"
        }
        // AWS Neuron.
        RecordType::Node if m.contains("_neuroncore_") => {
            "accelerated: pod index (aws.amazon.com/neuroncore, neurondevice requests, limits) and the Node object's Neuron capacity"
        }
        RecordType::Pod if m.contains("_neuroncore_") => {
            "accelerated: pod spec (aws.amazon.com/neuroncore, neurondevice) and the Node object's Neuron capacity"
        }
        RecordType::ContainerAWSNeuronCore
        | RecordType::PodAWSNeuronCore
        | RecordType::NodeAWSNeuronCore
        | RecordType::ContainerAWSNeuronDevice
        | RecordType::PodAWSNeuronDevice
        | RecordType::NodeAWSNeuronDevice
        | RecordType::NodeAWSNeuron => {
            "accelerated: the node's neuron-monitor; holders from the kubelet's pod-resources API"
        }
        RecordType::Node if m.starts_with("node_status_") => "this node's Node object (apiserver watch)",
        RecordType::Node if m.contains("reserved") => {
            "pod index (requests of this node's pods) over /proc/cpuinfo, /proc/meminfo"
        }
        RecordType::Node if m.contains("number_of") => "pod index (this node's running pods)",
        RecordType::Node if m.ends_with("_limit") => "/proc/cpuinfo, /proc/meminfo",
        RecordType::Node if m.contains("network") => "/proc/1/net/dev",
        RecordType::Node => "root cgroup, /proc/cpuinfo, /proc/meminfo",
        RecordType::NodeFS => "/proc/1/mountinfo and statvfs of each mount",
        RecordType::NodeDiskIO => "root cgroup block I/O (blkio.* or io.stat)",
        RecordType::NodeNet => "/proc/1/net/dev, per interface",
        RecordType::Pod if m.contains("network") => "/proc/<pid>/net/dev of a pod process",
        RecordType::Pod if m.contains("utilization") || m.contains("usage") || m.contains("working_set") => {
            "pod cgroup and pod spec"
        }
        RecordType::Pod => "pod index (spec and status)",
        RecordType::PodNet => "/proc/<pid>/net/dev of a pod process, per interface",
        RecordType::Container => "container cgroup and pod spec",
        RecordType::ContainerFS => "containerd snapshot usage (runtime socket)",
        RecordType::Cluster | RecordType::ClusterNamespace if m.starts_with("persistent") || m.contains("ingress") => {
            "leader: PersistentVolume / Ingress watches"
        }
        RecordType::Cluster => "leader: Node and Pod watches",
        RecordType::ClusterNamespace => "leader: Pod watch (phase Running)",
        RecordType::ClusterService => "leader: EndpointSlice watch",
        RecordType::ClusterDeployment
        | RecordType::ClusterDaemonSet
        | RecordType::ClusterStatefulSet
        | RecordType::ClusterReplicaSet => "leader: workload watches",
        RecordType::ControlPlane => "leader: the apiserver's /metrics",
        RecordType::ClusterPersistentVolumeClaim => "leader: PersistentVolumeClaim watch",
        RecordType::HyperPodNode => "leader: Node labels (SageMaker HyperPod nodes only)",
        RecordType::NodeEBS => "this node's EBS CSI node plugin (`aws_ebs_csi_*`, node metrics on)",
        RecordType::NodeInstanceStore => "this node's instance-store CSI node plugin (`aws_ec2_instance_store_csi_*`)",
    }
}

fn sets(d: &Declaration) -> String {
    d.sets
        .iter()
        .map(|s| format!("[{}]", s.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn table(out: &mut String, decls: &[Declaration]) {
    out.push_str("| metric | unit | dimension sets | `Type` | source |\n| --- | --- | --- | --- | --- |\n");
    for d in decls {
        let unit = d.unit.as_str();
        let unit = if unit.is_empty() { "None" } else { unit };
        let _ = writeln!(
            out,
            "| `{}` | {unit} | {} | {} | {} |",
            d.metric,
            sets(d),
            d.record.as_str(),
            source(d)
        );
    }
}

fn render() -> String {
    let mut out = String::from(
        "# Metric reference\n\n\
         Generated from the declaration table (`agent/metrics/declare.rs`) by\n\
         `KINSIGHT_UPDATE_GOLDEN=1 cargo test --test metric_reference`; do not edit by hand.\n\n\
         Every metric is sent in the `ContainerInsights` namespace with each of its dimension\n\
         sets (a set whose dimension has no value is skipped). The sets are those of the\n\
         CloudWatch agent's own declarations (`translator/translate/otel/exporter/awsemf/kubernetes.go`),\n\
         which `tests/metrics_upstream.rs` checks against a copy taken at one upstream commit.\n\
         \"leader\" metrics come from the one agent holding the `kinsight-leader` Lease.\n\n",
    );
    let _ = writeln!(out, "## Standard ({} metrics)\n", declare::STANDARD.len());
    table(&mut out, &declare::STANDARD);
    let _ = writeln!(
        out,
        "\n## Enhanced observability ({} metrics)\n\n\
         With `logs.metrics_collected.kubernetes.enhanced_container_insights: true`.\n",
        declare::ENHANCED.len()
    );
    table(&mut out, &declare::ENHANCED);
    out.push_str(
        "\n## Enhanced groups not sent yet\n\n\
         kinsight names these at startup and in `kinsight check` when enhanced observability is on\n\
         (accelerated-compute groups only with `accelerated_compute_metrics`, upstream's default):\n\n",
    );
    for g in MISSING_ENHANCED {
        let _ = writeln!(
            out,
            "- {}{}",
            g.name,
            if g.accelerated { " (accelerated compute)" } else { "" }
        );
    }
    if MISSING_ENHANCED.is_empty() {
        out.push_str("None: every enhanced group upstream declares is sent.\n");
    }
    out
}

#[test]
fn the_metric_reference_is_the_declaration_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/metric-reference.md");
    let want = render();
    if std::env::var_os("KINSIGHT_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(path, &want).unwrap();
    }
    let got = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        got == want,
        "docs/metric-reference.md differs from the declaration table; \
         KINSIGHT_UPDATE_GOLDEN=1 cargo test --test metric_reference rewrites it"
    );
}
