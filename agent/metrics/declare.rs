//! The static declaration table: metric name → unit and dimension sets. This is the *effective*
//! result of upstream's selectors (the `CloudWatch` agent's
//! `translator/translate/otel/exporter/awsemf/kubernetes.go`: Go regular expressions matched
//! unanchored, so `pod_cpu_utilization` also matches `pod_cpu_utilization_over_pod_limit`) for
//! the standard set; the enhanced [E] declarations come with the metrics issue.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::OnceLock;

use super::Unit;
use super::rate::KeyHasher;
use super::record::RecordType;

/// Dimension sets as written: names sorted alphabetically.
pub const SET_C: &[&str] = &["ClusterName"];
pub const SET_N: &[&str] = &["ClusterName", "InstanceId", "NodeName"];
pub const SET_NS: &[&str] = &["ClusterName", "Namespace"];
pub const SET_P: &[&str] = &["ClusterName", "Namespace", "PodName"];
pub const SET_S: &[&str] = &["ClusterName", "Namespace", "Service"];
/// [E] sets.
pub const SET_FP: &[&str] = &["ClusterName", "FullPodName", "Namespace", "PodName"];
pub const SET_CT: &[&str] = &["ClusterName", "ContainerName", "Namespace", "PodName"];
pub const SET_FCT: &[&str] = &["ClusterName", "ContainerName", "FullPodName", "Namespace", "PodName"];
/// [E] accelerated compute sets: a GPU's own series (`getGPUMetricDeclarations` in
/// `kubernetes.go`).
pub const SET_FCT_GPU: &[&str] = &[
    "ClusterName",
    "ContainerName",
    "FullPodName",
    "GpuDevice",
    "Namespace",
    "PodName",
];
pub const SET_FP_GPU: &[&str] = &["ClusterName", "FullPodName", "GpuDevice", "Namespace", "PodName"];
pub const SET_N_GPU: &[&str] = &["ClusterName", "GpuDevice", "InstanceId", "InstanceType", "NodeName"];
/// [E] accelerated compute sets: an EFA device's network interface (`getEFAMetricDeclarations`
/// in `kubernetes.go`).
pub const SET_FCT_ENI: &[&str] = &[
    "ClusterName",
    "ContainerName",
    "FullPodName",
    "Namespace",
    "NetworkInterfaceId",
    "PodName",
];
pub const SET_FP_ENI: &[&str] = &[
    "ClusterName",
    "FullPodName",
    "Namespace",
    "NetworkInterfaceId",
    "PodName",
];
pub const SET_N_ENI: &[&str] = &[
    "ClusterName",
    "InstanceId",
    "InstanceType",
    "NetworkInterfaceId",
    "NodeName",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    pub metric: &'static str,
    pub record: RecordType,
    pub unit: Unit,
    pub sets: &'static [&'static [&'static str]],
}

const fn d(
    metric: &'static str,
    record: RecordType,
    unit: Unit,
    sets: &'static [&'static [&'static str]],
) -> Declaration {
    Declaration {
        metric,
        record,
        unit,
        sets,
    }
}

use RecordType::{
    Cluster, ClusterDaemonSet, ClusterDeployment, ClusterNamespace, ClusterPersistentVolumeClaim, ClusterReplicaSet,
    ClusterService, ClusterStatefulSet, Container, ContainerEFA, ContainerFS, ContainerGPU, ControlPlane, HyperPodNode,
    Node, NodeDiskIO, NodeEBS, NodeEFA, NodeFS, NodeGPU, NodeInstanceStore, NodeNet, Pod, PodEFA, PodGPU, PodNet,
};
use RecordType::{
    ContainerAWSNeuronCore, ContainerAWSNeuronDevice, NodeAWSNeuron, NodeAWSNeuronCore, NodeAWSNeuronDevice,
    PodAWSNeuronCore, PodAWSNeuronDevice,
};
use Unit::{Bytes, BytesPerSecond, Count, CountPerSecond, None as NoUnit, Percent, Seconds};

/// The 25 standard metrics.
pub const STANDARD: [Declaration; 25] = [
    d("node_cpu_utilization", Node, Percent, &[SET_N, SET_C]),
    d("node_memory_utilization", Node, Percent, &[SET_N, SET_C]),
    d("node_network_total_bytes", Node, BytesPerSecond, &[SET_N, SET_C]),
    d("node_cpu_reserved_capacity", Node, Percent, &[SET_N, SET_C]),
    d("node_memory_reserved_capacity", Node, Percent, &[SET_N, SET_C]),
    d("node_number_of_running_pods", Node, Count, &[SET_N, SET_C]),
    d("node_number_of_running_containers", Node, Count, &[SET_N, SET_C]),
    // CPU millicores carry no unit: CloudWatch has no millicore unit.
    d("node_cpu_usage_total", Node, NoUnit, &[SET_C]),
    d("node_cpu_limit", Node, NoUnit, &[SET_C]),
    d("node_memory_working_set", Node, Bytes, &[SET_C]),
    d("node_memory_limit", Node, Bytes, &[SET_C]),
    d("node_filesystem_utilization", NodeFS, Percent, &[SET_N, SET_C]),
    d("pod_cpu_utilization", Pod, Percent, &[SET_P, SET_C, SET_S, SET_NS]),
    d("pod_memory_utilization", Pod, Percent, &[SET_P, SET_C, SET_S, SET_NS]),
    d(
        "pod_network_rx_bytes",
        Pod,
        BytesPerSecond,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_network_tx_bytes",
        Pod,
        BytesPerSecond,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_cpu_utilization_over_pod_limit",
        Pod,
        Percent,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_memory_utilization_over_pod_limit",
        Pod,
        Percent,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d("pod_cpu_reserved_capacity", Pod, Percent, &[SET_P, SET_C]),
    d("pod_memory_reserved_capacity", Pod, Percent, &[SET_P, SET_C]),
    d("pod_number_of_container_restarts", Pod, Count, &[SET_P]),
    d("service_number_of_running_pods", ClusterService, Count, &[SET_S, SET_C]),
    d(
        "namespace_number_of_running_pods",
        ClusterNamespace,
        Count,
        &[SET_NS, SET_C],
    ),
    d("cluster_node_count", Cluster, Count, &[SET_C]),
    d("cluster_failed_node_count", Cluster, Count, &[SET_C]),
];

const N_C: &[&[&str]] = &[SET_N, SET_C];
const P_C: &[&[&str]] = &[SET_P, SET_C];
const POD_E: &[&[&str]] = &[SET_P, SET_C, SET_S, SET_NS, SET_FP];
const POD_STATE_E: &[&[&str]] = &[SET_P, SET_C, SET_FP, SET_S];
const CONTAINER_E: &[&[&str]] = &[SET_C, SET_FCT, SET_CT];
const VOLUME: &[&[&str]] = &[SET_C, SET_N, &["ClusterName", "InstanceId", "NodeName", "VolumeId"]];
const PVC: &[&[&str]] = &[
    SET_C,
    SET_NS,
    &["ClusterName", "Namespace", "PersistentVolumeClaimName"],
];

/// Enhanced observability: the effective declarations when
/// `enhanced_container_insights` is on — the standard ones with the [E] sets added, plus the
/// [E] groups kinsight implements (container, pod extras, pod state, node status from the own
/// Node object, node net/disk/FS, the leader's workloads and control-plane scrape, the
/// runtime's container filesystems, the leader's storage and `HyperPod` records, the CSI
/// plugins' volume I/O, GPUs from the DCGM exporter and `nvidia.com/gpu` resources, EFA devices
/// from sysfs and `vpc.amazonaws.com/efa` resources, AWS Neuron from neuron-monitor and
/// `aws.amazon.com/neuroncore` resources). Groups not implemented yet would not be here;
/// [`MISSING_ENHANCED`] would name them.
pub const ENHANCED: [Declaration; 214 + NEURON_ROWS] = [
    // Node: the 11 standard node metrics, all with N and C.
    d("node_cpu_utilization", Node, Percent, N_C),
    d("node_memory_utilization", Node, Percent, N_C),
    d("node_network_total_bytes", Node, BytesPerSecond, N_C),
    d("node_cpu_reserved_capacity", Node, Percent, N_C),
    d("node_memory_reserved_capacity", Node, Percent, N_C),
    d("node_number_of_running_pods", Node, Count, N_C),
    d("node_number_of_running_containers", Node, Count, N_C),
    d("node_cpu_usage_total", Node, NoUnit, N_C),
    d("node_cpu_limit", Node, NoUnit, N_C),
    d("node_memory_working_set", Node, Bytes, N_C),
    d("node_memory_limit", Node, Bytes, N_C),
    // Node status, from this node's own Node object.
    d("node_status_condition_ready", Node, Count, N_C),
    d("node_status_condition_disk_pressure", Node, Count, N_C),
    d("node_status_condition_memory_pressure", Node, Count, N_C),
    d("node_status_condition_pid_pressure", Node, Count, N_C),
    d("node_status_condition_network_unavailable", Node, Count, N_C),
    d("node_status_condition_unknown", Node, Count, N_C),
    d("node_status_capacity_pods", Node, Count, N_C),
    d("node_status_allocatable_pods", Node, Count, N_C),
    // Node net / disk / FS.
    d("node_interface_network_rx_dropped", NodeNet, CountPerSecond, N_C),
    d("node_interface_network_tx_dropped", NodeNet, CountPerSecond, N_C),
    d("node_diskio_io_service_bytes_total", NodeDiskIO, BytesPerSecond, N_C),
    d("node_diskio_io_serviced_total", NodeDiskIO, CountPerSecond, N_C),
    d("node_filesystem_utilization", NodeFS, Percent, N_C),
    d("node_filesystem_inodes", NodeFS, Count, N_C),
    d("node_filesystem_inodes_free", NodeFS, Count, N_C),
    // Pod: the six standard utilisation/network metrics gain FP.
    d("pod_cpu_utilization", Pod, Percent, POD_E),
    d("pod_memory_utilization", Pod, Percent, POD_E),
    d("pod_network_rx_bytes", Pod, BytesPerSecond, POD_E),
    d("pod_network_tx_bytes", Pod, BytesPerSecond, POD_E),
    d("pod_cpu_utilization_over_pod_limit", Pod, Percent, POD_E),
    d("pod_memory_utilization_over_pod_limit", Pod, Percent, POD_E),
    // Pod net.
    d(
        "pod_interface_network_rx_dropped",
        PodNet,
        CountPerSecond,
        &[SET_FP, SET_P, SET_NS, SET_C],
    ),
    d(
        "pod_interface_network_tx_dropped",
        PodNet,
        CountPerSecond,
        &[SET_FP, SET_P, SET_NS, SET_C],
    ),
    // Pod state and resources.
    d("pod_cpu_reserved_capacity", Pod, Percent, POD_STATE_E),
    d("pod_memory_reserved_capacity", Pod, Percent, POD_STATE_E),
    d("pod_number_of_container_restarts", Pod, Count, POD_STATE_E),
    d("pod_number_of_containers", Pod, Count, POD_STATE_E),
    d("pod_number_of_running_containers", Pod, Count, POD_STATE_E),
    d("pod_status_ready", Pod, Count, POD_STATE_E),
    d("pod_status_scheduled", Pod, Count, POD_STATE_E),
    d("pod_status_running", Pod, Count, POD_STATE_E),
    d("pod_status_pending", Pod, Count, POD_STATE_E),
    d("pod_status_failed", Pod, Count, POD_STATE_E),
    d("pod_status_unknown", Pod, Count, POD_STATE_E),
    d("pod_status_succeeded", Pod, Count, POD_STATE_E),
    d("pod_memory_request", Pod, Bytes, POD_STATE_E),
    d("pod_memory_limit", Pod, Bytes, POD_STATE_E),
    d("pod_cpu_request", Pod, NoUnit, POD_STATE_E),
    d("pod_cpu_limit", Pod, NoUnit, POD_STATE_E),
    d("pod_cpu_usage_total", Pod, NoUnit, POD_STATE_E),
    d("pod_memory_working_set", Pod, Bytes, POD_STATE_E),
    d("pod_container_status_running", Pod, Count, POD_STATE_E),
    d("pod_container_status_terminated", Pod, Count, POD_STATE_E),
    d("pod_container_status_waiting", Pod, Count, POD_STATE_E),
    d(
        "pod_container_status_waiting_reason_crash_loop_back_off",
        Pod,
        Count,
        POD_STATE_E,
    ),
    d(
        "pod_container_status_waiting_reason_image_pull_error",
        Pod,
        Count,
        POD_STATE_E,
    ),
    d(
        "pod_container_status_waiting_reason_start_error",
        Pod,
        Count,
        POD_STATE_E,
    ),
    d(
        "pod_container_status_waiting_reason_create_container_error",
        Pod,
        Count,
        POD_STATE_E,
    ),
    d(
        "pod_container_status_waiting_reason_create_container_config_error",
        Pod,
        Count,
        POD_STATE_E,
    ),
    d(
        "pod_container_status_terminated_reason_oom_killed",
        Pod,
        Count,
        POD_STATE_E,
    ),
    // Container.
    d("container_cpu_utilization", Container, Percent, CONTAINER_E),
    d(
        "container_cpu_utilization_over_container_limit",
        Container,
        Percent,
        CONTAINER_E,
    ),
    d("container_cpu_limit", Container, NoUnit, CONTAINER_E),
    d("container_cpu_request", Container, NoUnit, CONTAINER_E),
    d("container_memory_utilization", Container, Percent, CONTAINER_E),
    d(
        "container_memory_utilization_over_container_limit",
        Container,
        Percent,
        CONTAINER_E,
    ),
    d(
        "container_memory_failures_total",
        Container,
        CountPerSecond,
        CONTAINER_E,
    ),
    d("container_memory_limit", Container, Bytes, CONTAINER_E),
    d("container_memory_request", Container, Bytes, CONTAINER_E),
    // Container filesystem, from the container runtime (absent when its socket is).
    d("container_filesystem_usage", ContainerFS, Bytes, CONTAINER_E),
    d("container_filesystem_available", ContainerFS, Bytes, CONTAINER_E),
    d("container_filesystem_utilization", ContainerFS, Percent, CONTAINER_E),
    // Namespace, service and cluster (leader).
    d("service_number_of_running_pods", ClusterService, Count, &[SET_S, SET_C]),
    d(
        "namespace_number_of_running_pods",
        ClusterNamespace,
        Count,
        &[SET_NS, SET_C],
    ),
    d("cluster_node_count", Cluster, Count, &[SET_C]),
    d("cluster_failed_node_count", Cluster, Count, &[SET_C]),
    d("cluster_number_of_running_pods", Cluster, Count, &[SET_C]),
    // EBS and instance-store volume I/O, from this node's CSI node plugins (units as upstream's
    // `internal/nvme/metric_unit.go` in `awscontainerinsightreceiver`).
    d("node_diskio_ebs_total_read_ops", NodeEBS, Count, VOLUME),
    d("node_diskio_ebs_total_write_ops", NodeEBS, Count, VOLUME),
    d("node_diskio_ebs_total_read_bytes", NodeEBS, Bytes, VOLUME),
    d("node_diskio_ebs_total_write_bytes", NodeEBS, Bytes, VOLUME),
    d("node_diskio_ebs_total_read_time", NodeEBS, Seconds, VOLUME),
    d("node_diskio_ebs_total_write_time", NodeEBS, Seconds, VOLUME),
    d(
        "node_diskio_ebs_volume_performance_exceeded_iops",
        NodeEBS,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_ebs_volume_performance_exceeded_tp",
        NodeEBS,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_ebs_ec2_instance_performance_exceeded_iops",
        NodeEBS,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_ebs_ec2_instance_performance_exceeded_tp",
        NodeEBS,
        Seconds,
        VOLUME,
    ),
    d("node_diskio_ebs_volume_queue_length", NodeEBS, Count, VOLUME),
    d(
        "node_diskio_instance_store_total_read_ops",
        NodeInstanceStore,
        Count,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_total_write_ops",
        NodeInstanceStore,
        Count,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_total_read_bytes",
        NodeInstanceStore,
        Bytes,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_total_write_bytes",
        NodeInstanceStore,
        Bytes,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_total_read_time",
        NodeInstanceStore,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_total_write_time",
        NodeInstanceStore,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_ec2_instance_performance_exceeded_iops",
        NodeInstanceStore,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_ec2_instance_performance_exceeded_tp",
        NodeInstanceStore,
        Seconds,
        VOLUME,
    ),
    d(
        "node_diskio_instance_store_volume_queue_length",
        NodeInstanceStore,
        Count,
        VOLUME,
    ),
    // Storage (leader): Ingresses per namespace, PersistentVolumes, one record per claim.
    d("namespace_ingress_count", ClusterNamespace, Count, &[SET_NS, SET_C]),
    d("persistent_volume_count", Cluster, Count, &[SET_C]),
    d(
        "persistent_volume_claim_count",
        ClusterPersistentVolumeClaim,
        Count,
        PVC,
    ),
    d(
        "persistent_volume_claim_status_bound",
        ClusterPersistentVolumeClaim,
        Count,
        PVC,
    ),
    d(
        "persistent_volume_claim_status_lost",
        ClusterPersistentVolumeClaim,
        Count,
        PVC,
    ),
    d(
        "persistent_volume_claim_status_pending",
        ClusterPersistentVolumeClaim,
        Count,
        PVC,
    ),
    // SageMaker HyperPod node health (leader), from the nodes' health label.
    d("hyperpod_node_health_status_schedulable", HyperPodNode, Count, N_C),
    d("hyperpod_node_health_status_unschedulable", HyperPodNode, Count, N_C),
    d(
        "hyperpod_node_health_status_unschedulable_pending_replacement",
        HyperPodNode,
        Count,
        N_C,
    ),
    d(
        "hyperpod_node_health_status_unschedulable_pending_reboot",
        HyperPodNode,
        Count,
        N_C,
    ),
    // Workloads (leader), `PodName` = the workload name.
    d("replicas_desired", ClusterDeployment, Count, P_C),
    d("replicas_ready", ClusterDeployment, Count, P_C),
    d("status_replicas_available", ClusterDeployment, Count, P_C),
    d("status_replicas_unavailable", ClusterDeployment, Count, P_C),
    d("replicas_desired", ClusterDaemonSet, Count, P_C),
    d("replicas_ready", ClusterDaemonSet, Count, P_C),
    d("status_replicas_available", ClusterDaemonSet, Count, P_C),
    d("status_replicas_unavailable", ClusterDaemonSet, Count, P_C),
    d("replicas_desired", ClusterStatefulSet, Count, P_C),
    d("replicas_ready", ClusterStatefulSet, Count, P_C),
    d("status_replicas_available", ClusterStatefulSet, Count, P_C),
    d("replicas_desired", ClusterReplicaSet, Count, P_C),
    d("replicas_ready", ClusterReplicaSet, Count, P_C),
    d("status_replicas_available", ClusterReplicaSet, Count, P_C),
    // Control plane (leader): the apiserver's `/metrics`, units forced as upstream's metric
    // descriptors force them (`getControlPlaneMetricDescriptors` in `kubernetes.go`).
    d("apiserver_storage_size_bytes", ControlPlane, Bytes, CP_ENDPOINT),
    d(
        "apiserver_storage_db_total_size_in_bytes",
        ControlPlane,
        Bytes,
        CP_ENDPOINT,
    ),
    d("etcd_db_total_size_in_bytes", ControlPlane, Bytes, CP_ENDPOINT),
    d("etcd_request_duration_seconds", ControlPlane, Seconds, CP_OPERATION),
    d(
        "apiserver_storage_list_duration_seconds",
        ControlPlane,
        Seconds,
        CP_RESOURCE,
    ),
    d("apiserver_longrunning_requests", ControlPlane, Count, CP_RESOURCE),
    d("apiserver_storage_objects", ControlPlane, Count, CP_RESOURCE),
    d("apiserver_request_duration_seconds", ControlPlane, Seconds, CP_VERB),
    d("rest_client_request_duration_seconds", ControlPlane, Seconds, CP_VERB),
    d("apiserver_request_total", ControlPlane, Count, CP_CODE_VERB),
    d("apiserver_request_total_5xx", ControlPlane, Count, CP_CODE_VERB),
    d(
        "apiserver_admission_controller_admission_duration_seconds",
        ControlPlane,
        Seconds,
        CP_OPERATION,
    ),
    d(
        "apiserver_admission_step_admission_duration_seconds",
        ControlPlane,
        Seconds,
        CP_OPERATION,
    ),
    d(
        "rest_client_requests_total",
        ControlPlane,
        Count,
        &[&["ClusterName", "code", "method"], SET_C],
    ),
    d(
        "apiserver_current_inflight_requests",
        ControlPlane,
        Count,
        CP_REQUEST_KIND,
    ),
    d(
        "apiserver_current_inqueue_requests",
        ControlPlane,
        Count,
        CP_REQUEST_KIND,
    ),
    d(
        "apiserver_admission_webhook_admission_duration_seconds",
        ControlPlane,
        Seconds,
        &[&["ClusterName", "name"], SET_C],
    ),
    // No descriptor upstream: sent without a unit.
    d(
        "apiserver_requested_deprecated_apis",
        ControlPlane,
        NoUnit,
        &[&["ClusterName", "group"], SET_C],
    ),
    d(
        "apiserver_flowcontrol_rejected_requests_total",
        ControlPlane,
        Count,
        &[&["ClusterName", "reason"], SET_C],
    ),
    d(
        "apiserver_flowcontrol_request_concurrency_limit",
        ControlPlane,
        Count,
        &[&["ClusterName", "priority_level"], SET_C],
    ),
    // Accelerated compute (`accelerated_compute_metrics`, default true): GPUs, from the DCGM
    // exporter (`getGPUMetricDeclarations` in `kubernetes.go`; units as upstream's GPU
    // decorator sets them: power and temperature without a unit) and from the pods'
    // `nvidia.com/gpu` resources and the Node's capacity (the accelerated additions of
    // `getPodMetricDeclarations` and `getNodeMetricDeclarations`).
    d("container_gpu_utilization", ContainerGPU, Percent, CONTAINER_GPU),
    d("container_gpu_memory_utilization", ContainerGPU, Percent, CONTAINER_GPU),
    d("container_gpu_memory_total", ContainerGPU, Bytes, CONTAINER_GPU),
    d("container_gpu_memory_used", ContainerGPU, Bytes, CONTAINER_GPU),
    d("container_gpu_power_draw", ContainerGPU, NoUnit, CONTAINER_GPU),
    d("container_gpu_temperature", ContainerGPU, NoUnit, CONTAINER_GPU),
    d(
        "container_gpu_tensor_core_utilization",
        ContainerGPU,
        Percent,
        CONTAINER_GPU,
    ),
    d("pod_gpu_utilization", PodGPU, Percent, POD_GPU),
    d("pod_gpu_memory_utilization", PodGPU, Percent, POD_GPU),
    d("pod_gpu_memory_total", PodGPU, Bytes, POD_GPU),
    d("pod_gpu_memory_used", PodGPU, Bytes, POD_GPU),
    d("pod_gpu_power_draw", PodGPU, NoUnit, POD_GPU),
    d("pod_gpu_temperature", PodGPU, NoUnit, POD_GPU),
    d("pod_gpu_tensor_core_utilization", PodGPU, Percent, POD_GPU),
    d("node_gpu_utilization", NodeGPU, Percent, NODE_GPU),
    d("node_gpu_memory_utilization", NodeGPU, Percent, NODE_GPU),
    d("node_gpu_memory_total", NodeGPU, Bytes, NODE_GPU),
    d("node_gpu_memory_used", NodeGPU, Bytes, NODE_GPU),
    d("node_gpu_power_draw", NodeGPU, NoUnit, NODE_GPU),
    d("node_gpu_temperature", NodeGPU, NoUnit, NODE_GPU),
    d("node_gpu_tensor_core_utilization", NodeGPU, Percent, NODE_GPU),
    d("pod_gpu_request", Pod, Count, POD_STATE_E),
    d("pod_gpu_limit", Pod, Count, POD_STATE_E),
    d("pod_gpu_usage_total", Pod, Count, POD_STATE_E),
    d("pod_gpu_reserved_capacity", Pod, Percent, POD_STATE_E),
    d("node_gpu_limit", Node, Count, N_C),
    d("node_gpu_usage_total", Node, Count, N_C),
    d("node_gpu_reserved_capacity", Node, Percent, N_C),
    d("node_gpu_unreserved_capacity", Node, Percent, N_C),
    d("node_gpu_available_capacity", Node, Count, N_C),
    // EFA devices, from sysfs (`getEFAMetricDeclarations` in `kubernetes.go`; units as
    // upstream's `EfaRxBytes`… in `internal/aws/containerinsight/const.go`: bytes per second,
    // packets and events per second), and the pods' `vpc.amazonaws.com/efa` resources and the
    // Node's capacity, declared with the GPU ones' sets.
    d(
        "container_efa_rdma_read_bytes",
        ContainerEFA,
        BytesPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_rdma_write_bytes",
        ContainerEFA,
        BytesPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_rdma_write_recv_bytes",
        ContainerEFA,
        BytesPerSecond,
        CONTAINER_EFA,
    ),
    d("container_efa_rx_bytes", ContainerEFA, BytesPerSecond, CONTAINER_EFA),
    d("container_efa_rx_dropped", ContainerEFA, CountPerSecond, CONTAINER_EFA),
    d("container_efa_tx_bytes", ContainerEFA, BytesPerSecond, CONTAINER_EFA),
    d(
        "container_efa_retrans_bytes",
        ContainerEFA,
        BytesPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_retrans_pkts",
        ContainerEFA,
        CountPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_retrans_timeout_events",
        ContainerEFA,
        CountPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_impaired_remote_conn_events",
        ContainerEFA,
        CountPerSecond,
        CONTAINER_EFA,
    ),
    d(
        "container_efa_unresponsive_remote_events",
        ContainerEFA,
        CountPerSecond,
        CONTAINER_EFA,
    ),
    d("pod_efa_rdma_read_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_rdma_write_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_rdma_write_recv_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_rx_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_rx_dropped", PodEFA, CountPerSecond, POD_EFA),
    d("pod_efa_tx_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_retrans_bytes", PodEFA, BytesPerSecond, POD_EFA),
    d("pod_efa_retrans_pkts", PodEFA, CountPerSecond, POD_EFA),
    d("pod_efa_retrans_timeout_events", PodEFA, CountPerSecond, POD_EFA),
    d("pod_efa_impaired_remote_conn_events", PodEFA, CountPerSecond, POD_EFA),
    d("pod_efa_unresponsive_remote_events", PodEFA, CountPerSecond, POD_EFA),
    d("node_efa_rdma_read_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_rdma_write_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_rdma_write_recv_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_rx_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_rx_dropped", NodeEFA, CountPerSecond, NODE_EFA),
    d("node_efa_tx_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_retrans_bytes", NodeEFA, BytesPerSecond, NODE_EFA),
    d("node_efa_retrans_pkts", NodeEFA, CountPerSecond, NODE_EFA),
    d("node_efa_retrans_timeout_events", NodeEFA, CountPerSecond, NODE_EFA),
    d(
        "node_efa_impaired_remote_conn_events",
        NodeEFA,
        CountPerSecond,
        NODE_EFA,
    ),
    d("node_efa_unresponsive_remote_events", NodeEFA, CountPerSecond, NODE_EFA),
    d("pod_efa_request", Pod, Count, POD_STATE_E),
    d("pod_efa_limit", Pod, Count, POD_STATE_E),
    d("pod_efa_usage_total", Pod, Count, POD_STATE_E),
    d("pod_efa_reserved_capacity", Pod, Percent, POD_STATE_E),
    d("node_efa_limit", Node, Count, N_C),
    d("node_efa_usage_total", Node, Count, N_C),
    d("node_efa_reserved_capacity", Node, Percent, N_C),
    d("node_efa_unreserved_capacity", Node, Percent, N_C),
    d("node_efa_available_capacity", Node, Count, N_C),
    // AWS Neuron (`accelerated_compute_metrics`): neuron-monitor's cores, devices and runtime
    // figures (`getAwsNeuronMetricDeclarations` in `kubernetes.go`; units as upstream's Neuron
    // metric modifier sets them) and the pods' `aws.amazon.com/neuroncore` resources against the
    // Node's capacity (the accelerated additions of the pod and node declarations).
    d(
        "container_neuroncore_utilization",
        ContainerAWSNeuronCore,
        Percent,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_total",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_constants",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_model_code",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_model_shared_scratchpad",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_runtime_memory",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neuroncore_memory_usage_tensors",
        ContainerAWSNeuronCore,
        Bytes,
        CONTAINER_NEURON_CORE,
    ),
    d(
        "container_neurondevice_hw_ecc_events_total",
        ContainerAWSNeuronDevice,
        Count,
        CONTAINER_NEURON_DEVICE,
    ),
    d("pod_neuroncore_utilization", PodAWSNeuronCore, Percent, POD_NEURON_CORE),
    d(
        "pod_neuroncore_memory_usage_total",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neuroncore_memory_usage_constants",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neuroncore_memory_usage_model_code",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neuroncore_memory_usage_model_shared_scratchpad",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neuroncore_memory_usage_runtime_memory",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neuroncore_memory_usage_tensors",
        PodAWSNeuronCore,
        Bytes,
        POD_NEURON_CORE,
    ),
    d(
        "pod_neurondevice_hw_ecc_events_total",
        PodAWSNeuronDevice,
        Count,
        POD_NEURON_DEVICE,
    ),
    d(
        "node_neuroncore_utilization",
        NodeAWSNeuronCore,
        Percent,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_total",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_constants",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_model_code",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_model_shared_scratchpad",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_runtime_memory",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d(
        "node_neuroncore_memory_usage_tensors",
        NodeAWSNeuronCore,
        Bytes,
        NODE_NEURON_CORE,
    ),
    d("node_neuron_execution_errors_total", NodeAWSNeuron, Count, NODE_NEURON),
    d(
        "node_neurondevice_runtime_memory_used_bytes",
        NodeAWSNeuron,
        Bytes,
        NODE_NEURON,
    ),
    d("node_neuron_execution_latency", NodeAWSNeuron, Seconds, NODE_NEURON),
    d(
        "node_neurondevice_hw_ecc_events_total",
        NodeAWSNeuronDevice,
        Count,
        NODE_NEURON_DEVICE,
    ),
    d("pod_neuroncore_request", Pod, Count, POD_STATE_E),
    d("pod_neuroncore_limit", Pod, Count, POD_STATE_E),
    d("pod_neuroncore_usage_total", Pod, Count, POD_STATE_E),
    d("pod_neuroncore_reserved_capacity", Pod, Percent, POD_STATE_E),
    d("node_neuroncore_limit", Node, Count, N_C),
    d("node_neuroncore_usage_total", Node, Count, N_C),
    d("node_neuroncore_reserved_capacity", Node, Percent, N_C),
    d("node_neuroncore_unreserved_capacity", Node, Percent, N_C),
    d("node_neuroncore_available_capacity", Node, Count, N_C),
];

// AWS Neuron: the rows above and their dimension sets (`getAwsNeuronMetricDeclarations` in
// `kubernetes.go`). `UltraServer` is the own Node's `topology.k8s.aws/ultraserver-id` label.
const NEURON_ROWS: usize = 36;
const SET_FCT_NEURON_CORE: &[&str] = &[
    "ClusterName",
    "ContainerName",
    "FullPodName",
    "Namespace",
    "NeuronCore",
    "NeuronDevice",
    "PodName",
];
const SET_FCT_NEURON_DEVICE: &[&str] = &[
    "ClusterName",
    "ContainerName",
    "FullPodName",
    "Namespace",
    "NeuronDevice",
    "PodName",
];
const SET_FP_NEURON_CORE: &[&str] = &[
    "ClusterName",
    "FullPodName",
    "Namespace",
    "NeuronCore",
    "NeuronDevice",
    "PodName",
];
const SET_FP_NEURON_DEVICE: &[&str] = &["ClusterName", "FullPodName", "Namespace", "NeuronDevice", "PodName"];
const SET_ULTRASERVER: &[&str] = &["ClusterName", "UltraServer"];
const SET_N_NEURON_CORE: &[&str] = &[
    "ClusterName",
    "InstanceId",
    "InstanceType",
    "NeuronCore",
    "NeuronDevice",
    "NodeName",
];
const SET_N_NEURON_DEVICE: &[&str] = &["ClusterName", "InstanceId", "NeuronDevice", "NodeName"];
const CONTAINER_NEURON_CORE: &[&[&str]] = &[SET_C, SET_CT, SET_FCT, SET_FCT_NEURON_CORE];
const CONTAINER_NEURON_DEVICE: &[&[&str]] = &[SET_C, SET_CT, SET_FCT, SET_FCT_NEURON_DEVICE];
const POD_NEURON_CORE: &[&[&str]] = &[SET_C, SET_NS, SET_S, SET_P, SET_FP, SET_FP_NEURON_CORE];
const POD_NEURON_DEVICE: &[&[&str]] = &[SET_C, SET_NS, SET_S, SET_P, SET_FP, SET_FP_NEURON_DEVICE];
const NODE_NEURON_CORE: &[&[&str]] = &[SET_C, SET_ULTRASERVER, SET_N, SET_N_NEURON_CORE];
const NODE_NEURON: &[&[&str]] = &[SET_C, SET_ULTRASERVER, SET_N];
const NODE_NEURON_DEVICE: &[&[&str]] = &[SET_C, SET_ULTRASERVER, SET_N, SET_N_NEURON_DEVICE];

const CONTAINER_GPU: &[&[&str]] = &[SET_C, SET_CT, SET_FCT, SET_FCT_GPU];
const POD_GPU: &[&[&str]] = &[SET_C, SET_NS, SET_S, SET_P, SET_FP, SET_FP_GPU];
const NODE_GPU: &[&[&str]] = &[SET_C, SET_N, SET_N_GPU];
const CONTAINER_EFA: &[&[&str]] = &[SET_C, SET_CT, SET_FCT, SET_FCT_ENI];
const POD_EFA: &[&[&str]] = &[SET_C, SET_NS, SET_S, SET_P, SET_FP, SET_FP_ENI];
const NODE_EFA: &[&[&str]] = &[SET_C, SET_N, SET_N_ENI];

/// Control-plane dimension sets: `ClusterName` and one or two Prometheus labels, as upstream
/// declares them (`getControlPlaneMetricDeclarations` in `kubernetes.go`).
const SET_CP_ENDPOINT: &[&str] = &["ClusterName", "endpoint"];
const SET_CP_OPERATION: &[&str] = &["ClusterName", "operation"];
const CP_ENDPOINT: &[&[&str]] = &[SET_CP_ENDPOINT, SET_C];
const CP_OPERATION: &[&[&str]] = &[SET_CP_OPERATION, SET_C];
const CP_RESOURCE: &[&[&str]] = &[&["ClusterName", "resource"], SET_C];
const CP_VERB: &[&[&str]] = &[&["ClusterName", "verb"], SET_C];
const CP_CODE_VERB: &[&[&str]] = &[&["ClusterName", "code", "verb"], SET_C];
const CP_REQUEST_KIND: &[&[&str]] = &[&["ClusterName", "request_kind"], SET_C];

/// An enhanced metric group upstream declares and kinsight does not send yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MissingGroup {
    /// How the startup warning and `kinsight check` name it.
    pub name: &'static str,
    /// Declared upstream only with `accelerated_compute_metrics` on.
    pub accelerated: bool,
    /// The upstream metric names of the group are those containing one of these.
    pub contains: &'static [&'static str],
}

impl MissingGroup {
    /// Whether the upstream metric `name` belongs to this group.
    pub fn covers(&self, name: &str) -> bool {
        self.contains.iter().any(|c| name.contains(c))
    }
}

/// The [E] groups kinsight does not implement yet: said once at start and by `kinsight check`,
/// never ignored silently. `tests/metrics_upstream.rs` holds this list to exactly the upstream
/// declarations the table does not cover.
pub const MISSING_ENHANCED: &[MissingGroup] = &[];

/// Whether `metric` belongs to the accelerated compute group, which upstream declares only
/// with `accelerated_compute_metrics` on (`AcceleratedComputeMetricsEnabled` in `kubernetes.go`);
/// kinsight builds those fields only then.
pub fn is_accelerated(metric: &str) -> bool {
    metric.contains("_gpu_") || metric.contains("_efa_") || metric.contains("_neuron")
}

/// The names of the missing groups that apply with `accelerated_compute_metrics` as given.
pub fn missing_enhanced(accelerated: bool) -> Vec<&'static str> {
    MISSING_ENHANCED
        .iter()
        .filter(|g| accelerated || !g.accelerated)
        .map(|g| g.name)
        .collect()
}

/// The effective table for a mode.
pub fn table(enhanced: bool) -> &'static [Declaration] {
    if enhanced { &ENHANCED } else { &STANDARD }
}

/// The declaration of `metric` for records of type `record`, if it is a declared metric.
///
/// Runs for every field of every record at every tick (about 25 000 times a tick on a node with
/// 737 pods, most of them for fields that are not declared), hence the index instead of a scan
/// of the table.
pub fn lookup(enhanced: bool, record: RecordType, metric: &str) -> Option<&'static Declaration> {
    type Index = HashMap<(RecordType, &'static str), &'static Declaration, BuildHasherDefault<KeyHasher>>;
    static INDEX: OnceLock<[Index; 2]> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        let build = |t: &'static [Declaration]| t.iter().map(|d| ((d.record, d.metric), d)).collect();
        [build(&STANDARD), build(&ENHANCED)]
    });
    index[usize::from(enhanced)].get(&(record, metric)).copied()
}

/// Checks a `kinsight.metrics.drop` entry against the declarations (standard and enhanced):
/// the metric must be declared, and the dimensions (any order) one of its sets, or with no
/// metric a set some metric is declared with. Returns the dimensions sorted as sets are.
pub fn check_drop(metric: Option<&str>, dimensions: Option<&[String]>) -> Result<Option<Vec<String>>, String> {
    let all = || STANDARD.iter().chain(ENHANCED.iter());
    if let Some(m) = metric
        && !all().any(|d| d.metric == m)
    {
        let mut names: Vec<&str> = all().map(|d| d.metric).collect();
        names.sort_unstable();
        names.dedup();
        let near = names
            .iter()
            .min_by_key(|n| strsim::osa_distance(m, n))
            .copied()
            .unwrap_or_default();
        return Err(format!("no metric named {m:?} is sent (did you mean {near:?}?)"));
    }
    let Some(dims) = dimensions else {
        return Ok(None);
    };
    let mut sorted: Vec<String> = dims.to_vec();
    sorted.sort();
    sorted.dedup();
    let matches = |set: &[&str]| set.len() == sorted.len() && set.iter().zip(&sorted).all(|(a, b)| a == b);
    let candidates: Vec<&Declaration> = all().filter(|d| metric.is_none_or(|m| d.metric == m)).collect();
    if candidates.iter().any(|d| d.sets.iter().any(|s| matches(s))) {
        return Ok(Some(sorted));
    }
    Err(match metric {
        Some(m) => {
            let mut sets: Vec<String> = candidates
                .iter()
                .flat_map(|d| d.sets.iter().map(|s| format!("{s:?}")))
                .collect();
            sets.sort();
            sets.dedup();
            format!(
                "{m:?} is not sent with the dimensions {sorted:?}; its sets are {}",
                sets.join(", ")
            )
        }
        None => format!("no metric is sent with the dimensions {sorted:?}"),
    })
}

/// The unit of a field by its suffix (upstream's `metricToUnitMap` in
/// `internal/aws/containerinsight/const.go`), for performance events and
/// for checking the declaration tables.
pub fn unit_of(field: &str) -> Unit {
    let f = field;
    // Units upstream sets by descriptor or by its scraper's unit table, not by suffix.
    if let Some(d) = ENHANCED.iter().find(|d| {
        matches!(
            d.record,
            ControlPlane | NodeEBS | NodeInstanceStore | ContainerEFA | PodEFA | NodeEFA
        ) && d.metric == f
    }) {
        return d.unit;
    }
    // Conditions and pod counts; `memory_pressure` and `network_unavailable` are no bytes or
    // rates (upstream's `containerinsight` unit table lists `node_status_*` as Count).
    if f.starts_with("node_status_") {
        return Count;
    }
    // AWS Neuron: the p50 execution latency is in seconds (upstream's Neuron metric modifier).
    if f == "node_neuron_execution_latency" {
        return Seconds;
    }
    if f == "number_of_container_restarts"
        || f.ends_with("_gpu_power_draw")
        || f.ends_with("_gpu_temperature")
        || f.contains("_cpu_usage_")
        || f.ends_with("_cpu_limit")
        || f.ends_with("_cpu_request")
    {
        return NoUnit;
    }
    if f.ends_with("_utilization")
        || f.ends_with("_reserved_capacity")
        || f.ends_with("_unreserved_capacity")
        || f.contains("_over_")
    {
        return Percent;
    }
    if f.contains("_network_") && (f.ends_with("_bytes")) || f.contains("_io_service_bytes_") {
        return BytesPerSecond;
    }
    if f.contains("pgfault")
        || f.contains("pgmajfault")
        || f.contains("_network_")
        || f.contains("_io_serviced_")
        || f.ends_with("_failures_total")
    {
        return CountPerSecond;
    }
    if f.contains("_memory_") || f.contains("_filesystem_") && !f.contains("inodes") {
        if f.ends_with("_failcnt") {
            return Count;
        }
        return Bytes;
    }
    Count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_sorted_and_names_unique() {
        for decl in &STANDARD {
            for set in decl.sets {
                assert!(
                    set.windows(2).all(|w| w[0] < w[1]),
                    "{} has an unsorted set",
                    decl.metric
                );
            }
        }
        let mut names: Vec<_> = STANDARD.iter().map(|d| d.metric).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 25);
    }

    #[test]
    fn units_follow_the_suffix_rules() {
        for decl in STANDARD.iter().chain(ENHANCED.iter()) {
            assert_eq!(unit_of(decl.metric), decl.unit, "{}", decl.metric);
        }
        assert_eq!(unit_of("node_memory_failcnt"), Count);
        assert_eq!(unit_of("node_memory_pgfault"), CountPerSecond);
        assert_eq!(unit_of("node_interface_network_rx_packets"), CountPerSecond);
        assert_eq!(unit_of("node_filesystem_capacity"), Bytes);
        assert_eq!(unit_of("node_filesystem_inodes_free"), Count);
        assert_eq!(unit_of("number_of_container_restarts"), NoUnit);
    }

    #[test]
    fn enhanced_is_a_superset_of_standard() {
        for s in &STANDARD {
            let e = lookup(true, s.record, s.metric).unwrap_or_else(|| panic!("{} missing in [E]", s.metric));
            for set in s.sets {
                assert!(e.sets.contains(set), "{}: [E] lost a standard set", s.metric);
            }
        }
        for decl in &ENHANCED {
            for set in decl.sets {
                assert!(
                    set.windows(2).all(|w| w[0] < w[1]),
                    "{} has an unsorted set",
                    decl.metric
                );
            }
        }
    }
}
