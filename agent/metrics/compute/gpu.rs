//! GPU records and fields [E], with `accelerated_compute_metrics`:
//!
//! - `ContainerGPU`, `PodGPU` and `NodeGPU` records from the DCGM exporter's readings, one per
//!   GPU (and per pod sharing it): the seven `*_gpu_*` metrics upstream derives from DCGM fields
//!   (the CloudWatch agent's `metricstransform` rules in
//!   `translator/tocwconfig/sampleConfig/emf_and_kubernetes_with_gpu_config.yaml`: the same
//!   DCGM series becomes a container, a pod and a node metric, `Type` `ContainerGPU` / `PodGPU` /
//!   `NodeGPU`, memory in MiB scaled by 1048576, `DCGM_FI_DEV_FB_USED_PERCENT` by 100);
//! - `pod_{gpu,efa}_*` and `node_{gpu,efa}_*` request, limit, usage and reserved-capacity fields
//!   on the Pod and Node records, from the pods' `nvidia.com/gpu` and `vpc.amazonaws.com/efa`
//!   resources and the Node's capacity (`decorateGPU` and `decorateNode` in
//!   awscontainerinsightreceiver `internal/stores/podstore.go`).

use std::sync::Arc;

use crate::host::accel::dcgm::{Assignment, GpuReading, GpuValues};
use crate::kube::{ContainerInfo, NodeState, PodInfo, PodPhase, Snapshot};
use crate::metrics::record::{Record, RecordType};

use super::pod::{PodSettings, pod_attributes};

/// DCGM reports framebuffer memory in MiB.
const MIB: f64 = 1_048_576.0;

/// The seven DCGM-derived metric names of one level, in [`GpuValues`] order: utilization,
/// memory utilization, memory total, memory used, power draw, temperature, tensor cores.
struct Names([&'static str; 7]);

const CONTAINER: Names = Names([
    "container_gpu_utilization",
    "container_gpu_memory_utilization",
    "container_gpu_memory_total",
    "container_gpu_memory_used",
    "container_gpu_power_draw",
    "container_gpu_temperature",
    "container_gpu_tensor_core_utilization",
]);
const POD: Names = Names([
    "pod_gpu_utilization",
    "pod_gpu_memory_utilization",
    "pod_gpu_memory_total",
    "pod_gpu_memory_used",
    "pod_gpu_power_draw",
    "pod_gpu_temperature",
    "pod_gpu_tensor_core_utilization",
]);
const NODE: Names = Names([
    "node_gpu_utilization",
    "node_gpu_memory_utilization",
    "node_gpu_memory_total",
    "node_gpu_memory_used",
    "node_gpu_power_draw",
    "node_gpu_temperature",
    "node_gpu_tensor_core_utilization",
]);

fn set_values(r: &mut Record, names: &Names, v: &GpuValues) {
    let [util, mem_util, mem_total, mem_used, power, temp, tensor] = names.0;
    r.set_field(util, v.utilization_percent);
    r.set_field(mem_util, v.memory_used_fraction.map(|f| f * 100.0));
    r.set_field(mem_total, v.memory_total_mib.map(|m| m * MIB));
    r.set_field(mem_used, v.memory_used_mib.map(|m| m * MIB));
    r.set_field(power, v.power_watts);
    r.set_field(temp, v.temperature_celsius);
    // Sent as the exporter writes it: upstream applies no scale to this field.
    r.set_field(tensor, v.tensor_active);
}

fn with_device(mut r: Record, reading: &GpuReading) -> Record {
    if let Some(device) = &reading.device {
        r.set_attribute("GpuDevice", Arc::clone(device));
    }
    r
}

/// The records of one DCGM scrape: a `NodeGPU` record per GPU, and for a GPU the exporter
/// assigns to a pod, a `PodGPU` and (when it names the container) a `ContainerGPU` record.
/// The pod's `PodName` and `Service` come from the pod index when it knows the pod; else the
/// exporter's pod name stands for both `PodName` and `FullPodName`.
pub fn records(gpus: &[GpuReading], node: &Record, pods: Option<&Snapshot>, s: PodSettings) -> Vec<Record> {
    let mut out = Vec::with_capacity(gpus.len() * 3);
    let mut seen: Vec<(Option<&str>, Option<&str>)> = Vec::with_capacity(gpus.len());
    for g in gpus {
        // A GPU shared by several pods comes once per pod; the node sees it once.
        let id = (g.uuid.as_deref(), g.device.as_deref());
        if !seen.contains(&id) {
            seen.push(id);
            let mut r = Record::new(RecordType::NodeGPU, node.timestamp_ms);
            r.attributes.extend(node.attributes.iter().cloned());
            set_values(&mut r, &NODE, &g.values);
            out.push(with_device(r, g));
        }
        let Some(a) = &g.assignment else { continue };
        let (mut pod, container) = holder_records(a, (RecordType::PodGPU, RecordType::ContainerGPU), node, pods, s);
        let container = container.map(|mut c| {
            set_values(&mut c, &CONTAINER, &g.values);
            with_device(c, g)
        });
        set_values(&mut pod, &POD, &g.values);
        out.push(with_device(pod, g));
        out.extend(container);
    }
    out
}

/// The records of the pod (and, when named, the container) holding a device, with their
/// attributes and no fields yet: `kinds` are the pod's and the container's record types. The
/// pod's `PodName` and `Service` come from the pod index when it knows the pod; else the
/// holder's pod name stands for both `PodName` and `FullPodName`.
pub(super) fn holder_records(
    a: &Assignment,
    kinds: (RecordType, RecordType),
    node: &Record,
    pods: Option<&Snapshot>,
    s: PodSettings,
) -> (Record, Option<Record>) {
    let known = pods.and_then(|p| {
        p.pods()
            .iter()
            .find(|pod| pod.namespace == a.namespace && pod.name == a.pod)
    });
    let mut pod = Record::new(kinds.0, node.timestamp_ms);
    if let Some(info) = known {
        pod_attributes(&mut pod, node, info, s);
    } else {
        pod.attributes.extend(node.attributes.iter().cloned());
        pod.set_attribute("Namespace", a.namespace.as_str());
        pod.set_attribute("PodName", a.pod.as_str());
        pod.set_attribute("FullPodName", a.pod.as_str());
    }
    let container = a.container.as_deref().map(|name| {
        let mut c = Record::new(kinds.1, node.timestamp_ms);
        c.attributes.extend(pod.attributes.iter().cloned());
        c.set_attribute("ContainerName", name);
        c
    });
    (pod, container)
}

/// A device plugin's extended resource as the Pod and Node records report it: how a spec
/// container requests and limits it, the Node's capacity of it, and the field names. The GPU
/// fields follow upstream's pod store (`decorateGPU` in awscontainerinsightreceiver
/// `internal/stores/podstore.go`); the EFA fields, which upstream declares with the same
/// dimension sets (`pod_efa_*`, `node_efa_*` in the CloudWatch agent's `kubernetes.go`), are
/// computed the same way from `vpc.amazonaws.com/efa`.
#[derive(Debug, Clone, Copy)]
pub struct DeviceResource {
    limit: fn(&ContainerInfo) -> Option<f64>,
    request: fn(&ContainerInfo) -> Option<f64>,
    capacity: fn(&NodeState) -> Option<u64>,
    /// `request`, `limit`, `usage_total`, `reserved_capacity`.
    pod: [&'static str; 4],
    /// `request`, `limit`, `usage_total`, `reserved_capacity`, `unreserved_capacity`,
    /// `available_capacity`.
    node: [&'static str; 6],
}

/// `nvidia.com/gpu`.
pub const GPU: DeviceResource = DeviceResource {
    limit: ContainerInfo::gpu_limit,
    request: ContainerInfo::gpu_request,
    capacity: |n| n.capacity_gpus,
    pod: [
        "pod_gpu_request",
        "pod_gpu_limit",
        "pod_gpu_usage_total",
        "pod_gpu_reserved_capacity",
    ],
    node: [
        "node_gpu_request",
        "node_gpu_limit",
        "node_gpu_usage_total",
        "node_gpu_reserved_capacity",
        "node_gpu_unreserved_capacity",
        "node_gpu_available_capacity",
    ],
};

/// `vpc.amazonaws.com/efa`.
pub const EFA: DeviceResource = DeviceResource {
    limit: ContainerInfo::efa_limit,
    request: ContainerInfo::efa_request,
    capacity: |n| n.capacity_efas,
    pod: [
        "pod_efa_request",
        "pod_efa_limit",
        "pod_efa_usage_total",
        "pod_efa_reserved_capacity",
    ],
    node: [
        "node_efa_request",
        "node_efa_limit",
        "node_efa_usage_total",
        "node_efa_reserved_capacity",
        "node_efa_unreserved_capacity",
        "node_efa_available_capacity",
    ],
};

/// The device resources the Pod and Node records report.
pub const RESOURCES: [DeviceResource; 2] = [GPU, EFA];

/// The pod's limit and request sums of `res`, when **every** spec container sets a limit
/// (upstream's `getResourceSettingForPod` with `getLimitForContainer`: a pod with one
/// container lacking the limit reports nothing — **Quirk**, parity).
fn pod_devices(pod: &PodInfo, res: &DeviceResource) -> Option<(f64, f64)> {
    let mut spec = pod.containers.iter().filter(|c| c.in_spec && !c.is_init).peekable();
    spec.peek()?;
    let (mut limit, mut request) = (0.0, 0.0);
    for c in spec {
        limit += (res.limit)(c)?;
        request += (res.request)(c).unwrap_or(0.0);
    }
    Some((limit, request))
}

/// `pod_gpu_*` and `pod_efa_*` `{request,limit,usage_total,reserved_capacity}` on a Pod record:
/// for pods not yet finished whose containers all set a limit of the resource. The usage is
/// the limit while the pod runs (the devices are the pod's), else 0; the reserved capacity
/// divides the limit by the Node's capacity.
/// Nothing when not `enabled` (accelerated compute metrics off).
pub fn add_pod_fields(enabled: bool, r: &mut Record, pod: &PodInfo, own: Option<&NodeState>) {
    if !enabled || pod.phase.is_terminal() {
        return;
    }
    for res in &RESOURCES {
        let Some((limit, request)) = pod_devices(pod, res) else {
            continue;
        };
        let [request_name, limit_name, usage_name, reserved_name] = res.pod;
        r.set_field(request_name, Some(request));
        r.set_field(limit_name, Some(limit));
        let usage = if pod.phase == PodPhase::Running { limit } else { 0.0 };
        r.set_field(usage_name, Some(usage));
        let capacity = own.and_then(res.capacity).filter(|&c| c > 0);
        r.set_field(reserved_name, capacity.map(|c| limit / c as f64 * 100.0));
    }
}

/// `node_gpu_*` and `node_efa_*` on the Node record, for each resource the Node advertises:
/// the capacity (`*_limit`), the requests of unfinished pods, the limits of running
/// pods (`*_usage_total`), requests over capacity in percent (`reserved`), its
/// complement (`unreserved`) and the devices no running pod holds (`available`).
pub fn add_node_fields(r: &mut Record, pods: &[Arc<PodInfo>], own: &NodeState) {
    for res in &RESOURCES {
        let Some(capacity) = (res.capacity)(own).filter(|&c| c > 0) else {
            continue;
        };
        let capacity = capacity as f64;
        let (mut request, mut usage) = (0.0, 0.0);
        for pod in pods.iter().filter(|p| !p.phase.is_terminal()) {
            let Some((limit, req)) = pod_devices(pod, res) else {
                continue;
            };
            request += req;
            if pod.phase == PodPhase::Running {
                usage += limit;
            }
        }
        let reserved = request / capacity * 100.0;
        let [
            request_name,
            limit_name,
            usage_name,
            reserved_name,
            unreserved_name,
            available_name,
        ] = res.node;
        r.set_field(request_name, Some(request));
        r.set_field(limit_name, Some(capacity));
        r.set_field(usage_name, Some(usage));
        r.set_field(reserved_name, Some(reserved));
        r.set_field(unreserved_name, Some((100.0 - reserved).max(0.0)));
        r.set_field(available_name, Some((capacity - usage).max(0.0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::accel::dcgm::Assignment;
    use crate::kube::Accelerators;

    fn container(name: &str, gpus: Option<f64>) -> ContainerInfo {
        ContainerInfo {
            name: name.into(),
            in_spec: true,
            accelerators: gpus.map(|n| {
                Box::new(Accelerators {
                    gpu_request: Some(n),
                    gpu_limit: Some(n),
                    ..Accelerators::default()
                })
            }),
            ..ContainerInfo::default()
        }
    }

    fn pod(name: &str, phase: PodPhase, containers: Vec<ContainerInfo>) -> PodInfo {
        PodInfo::for_tests(name, "ml", phase, containers)
    }

    fn own(gpus: Option<u64>) -> NodeState {
        NodeState {
            name: "n".into(),
            capacity_gpus: gpus,
            ..NodeState::default()
        }
    }

    #[test]
    fn pod_fields_need_a_limit_on_every_container() {
        let both = pod(
            "a",
            PodPhase::Running,
            vec![container("x", Some(2.0)), container("y", Some(1.0))],
        );
        let mut r = Record::new(RecordType::Pod, 0);
        add_pod_fields(true, &mut r, &both, Some(&own(Some(4))));
        assert_eq!(r.field("pod_gpu_limit"), Some(3.0));
        assert_eq!(r.field("pod_gpu_request"), Some(3.0));
        assert_eq!(r.field("pod_gpu_usage_total"), Some(3.0));
        assert_eq!(r.field("pod_gpu_reserved_capacity"), Some(75.0));

        let sidecar = pod(
            "b",
            PodPhase::Running,
            vec![container("x", Some(1.0)), container("log", None)],
        );
        let mut r = Record::new(RecordType::Pod, 0);
        add_pod_fields(true, &mut r, &sidecar, Some(&own(Some(4))));
        assert!(r.fields.is_empty(), "{:?}", r.fields);

        let pending = pod("c", PodPhase::Pending, vec![container("x", Some(1.0))]);
        let mut r = Record::new(RecordType::Pod, 0);
        add_pod_fields(true, &mut r, &pending, None);
        assert_eq!(r.field("pod_gpu_usage_total"), Some(0.0));
        assert_eq!(r.field("pod_gpu_reserved_capacity"), None, "no Node, no capacity");
    }

    #[test]
    fn node_fields_sum_unfinished_pods_against_capacity() {
        let pods = vec![
            Arc::new(pod("a", PodPhase::Running, vec![container("x", Some(2.0))])),
            Arc::new(pod("b", PodPhase::Pending, vec![container("x", Some(1.0))])),
            Arc::new(pod("c", PodPhase::Succeeded, vec![container("x", Some(4.0))])),
            Arc::new(pod("d", PodPhase::Running, vec![container("x", None)])),
        ];
        let mut r = Record::new(RecordType::Node, 0);
        add_node_fields(&mut r, &pods, &own(Some(4)));
        assert_eq!(r.field("node_gpu_limit"), Some(4.0));
        assert_eq!(r.field("node_gpu_request"), Some(3.0));
        assert_eq!(r.field("node_gpu_usage_total"), Some(2.0));
        assert_eq!(r.field("node_gpu_reserved_capacity"), Some(75.0));
        assert_eq!(r.field("node_gpu_unreserved_capacity"), Some(25.0));
        assert_eq!(r.field("node_gpu_available_capacity"), Some(2.0));

        let mut r = Record::new(RecordType::Node, 0);
        add_node_fields(&mut r, &pods, &own(None));
        assert!(r.fields.is_empty(), "a node without GPUs has no GPU fields");
    }

    #[test]
    fn a_shared_gpu_is_one_node_record_and_one_pod_record_per_pod() {
        use RecordType::{ContainerGPU, NodeGPU, PodGPU};
        let mut node = Record::new(RecordType::Node, 7);
        node.set_attribute("ClusterName", "c");
        node.set_attribute("NodeName", "n");
        let values = GpuValues {
            utilization_percent: Some(50.0),
            memory_used_fraction: Some(0.25),
            memory_used_mib: Some(1024.0),
            ..GpuValues::default()
        };
        let reading = |pod: &str| GpuReading {
            device: Some(Arc::from("nvidia0")),
            uuid: Some(Arc::from("GPU-a")),
            assignment: Some(Assignment {
                namespace: "ml".into(),
                pod: pod.into(),
                container: Some("main".into()),
            }),
            values,
        };
        let s = PodSettings {
            enhanced: true,
            prefer_full_pod_name: false,
            tag_service: true,
            kubernetes_object: false,
        };
        let out = records(&[reading("p-1"), reading("p-2")], &node, None, s);
        let kinds: Vec<RecordType> = out.iter().map(|r| r.kind).collect();
        assert_eq!(kinds, [NodeGPU, PodGPU, ContainerGPU, PodGPU, ContainerGPU]);
        assert_eq!(out[0].field("node_gpu_memory_used"), Some(1024.0 * MIB));
        assert_eq!(out[0].field("node_gpu_memory_utilization"), Some(25.0));
        assert_eq!(out[0].attribute("GpuDevice"), Some("nvidia0"));
        assert_eq!(out[1].attribute("PodName"), Some("p-1"));
        assert_eq!(out[2].attribute("ContainerName"), Some("main"));
        assert_eq!(out[4].field("container_gpu_utilization"), Some(50.0));
        assert_eq!(out[4].timestamp_ms, 7);
    }
}
