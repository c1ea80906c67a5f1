//! Pod and Container records and the pod-derived Node fields.

use serde_json::{Map, Value, json};

use crate::host::cgroup::{CpuStats, MemoryStats};
use crate::kube::{ContainerInfo, NodeTotals, PodInfo};
use crate::runtime::ImageFs;

use super::super::record::{Record, RecordType};
use super::cpumem::{self, Tick, Usage};
use super::scope;

/// Settings that shape pod and container records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::struct_excessive_bools,
    reason = "four independent switches, each from its own config key"
)]
pub struct PodSettings {
    pub enhanced: bool,
    pub prefer_full_pod_name: bool,
    pub tag_service: bool,
    /// Build the `kubernetes` object (only performance events carry it).
    pub kubernetes_object: bool,
}

/// What was read for one pod cgroup.
#[derive(Debug)]
pub struct PodRead<'a> {
    pub pod: &'a PodInfo,
    pub cgroup: &'a str,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
}

pub(super) fn pod_attributes(r: &mut Record, owner: &Record, pod: &PodInfo, s: PodSettings) {
    // Sized once: the node's attributes, the pod's (at most 6), and about 40 fields.
    r.attributes.reserve(owner.attributes.len() + 6);
    r.attributes.extend(owner.attributes.iter().cloned());
    r.fields.reserve(48);
    r.set_attribute("Namespace", pod.namespace.as_str());
    r.set_attribute("PodName", pod.pod_name(s.prefer_full_pod_name));
    if s.enhanced {
        // FullPodName [E] is always the real pod name.
        r.set_attribute("FullPodName", pod.name.as_str());
    }
    if s.tag_service
        && let Some(svc) = &pod.service
    {
        r.set_attribute("Service", svc.as_str());
    }
}

/// The `kubernetes` object of Pod and Container events, as upstream's `AddKubernetesInfo` builds it.
fn kubernetes_object(node_name: &str, pod: &PodInfo, s: PodSettings, container: Option<&ContainerInfo>) -> Value {
    let mut k = Map::new();
    k.insert("host".into(), json!(node_name));
    k.insert("namespace_name".into(), json!(pod.namespace));
    k.insert("pod_name".into(), json!(pod.name));
    k.insert("pod_id".into(), json!(pod.uid));
    if let Some(svc) = pod.service.as_ref().filter(|_| s.tag_service) {
        k.insert("service_name".into(), json!(svc));
    }
    if !pod.labels.is_empty() {
        k.insert("labels".into(), json!(pod.labels));
    }
    let owners: Vec<Value> = pod
        .pod_owners(s.prefer_full_pod_name)
        .iter()
        .map(|o| json!({"owner_kind": o.kind, "owner_name": o.name}))
        .collect();
    if !owners.is_empty() {
        k.insert("pod_owners".into(), Value::Array(owners));
    }
    if let Some(c) = container {
        k.insert("container_name".into(), json!(c.name));
        match (&c.runtime, &c.id) {
            (Some(rt), Some(id)) => {
                k.insert(rt.clone(), json!({ "container_id": id }));
            }
            (None, Some(id)) => {
                k.insert("container_id".into(), json!(id));
            }
            _ => {}
        }
    }
    Value::Object(k)
}

/// Requests, limits and the fields derived from them, gated on this tick's usage.
fn add_resources(r: &mut Record, pod: &PodInfo, usage: Usage, capacity: &crate::kube::PodResourceCeiling) {
    let res = pod.resources(Some(capacity));
    if let Some(cpu) = usage.cpu_millicores {
        r.set_field("pod_cpu_request", res.cpu_request_millicores);
        r.set_field("pod_cpu_limit", res.cpu_limit_millicores);
        r.set_field(
            "pod_cpu_reserved_capacity",
            res.cpu_request_millicores.map(|q| q / capacity.cpu_millicores * 100.0),
        );
        r.set_field(
            "pod_cpu_utilization_over_pod_limit",
            res.cpu_limit_millicores.map(|l| cpu / l * 100.0),
        );
    }
    if let Some(ws) = usage.working_set_bytes {
        r.set_field("pod_memory_request", res.memory_request_bytes);
        r.set_field("pod_memory_limit", res.memory_limit_bytes);
        r.set_field(
            "pod_memory_reserved_capacity",
            res.memory_request_bytes.map(|q| q / capacity.memory_bytes * 100.0),
        );
        r.set_field(
            "pod_memory_utilization_over_pod_limit",
            res.memory_limit_bytes.map(|l| ws / l * 100.0),
        );
    }
}

/// [E] pod status fields (phase one-hot, conditions, container state counts), as upstream's
/// `podstore.go` writes them.
fn add_status_fields(r: &mut Record, pod: &PodInfo) {
    use crate::kube::{ConditionStatus, ContainerState, PodPhase};
    let phase = pod.phase;
    let one = |b: bool| Some(if b { 1.0 } else { 0.0 });
    r.set_field("pod_status_running", one(phase == PodPhase::Running));
    r.set_field("pod_status_pending", one(phase == PodPhase::Pending));
    r.set_field("pod_status_succeeded", one(phase == PodPhase::Succeeded));
    r.set_field("pod_status_failed", one(phase == PodPhase::Failed));
    let unknown = pod.ready == Some(ConditionStatus::Unknown) || pod.scheduled == Some(ConditionStatus::Unknown);
    r.set_field("pod_status_unknown", one(unknown));
    r.set_field("pod_status_ready", one(pod.ready == Some(ConditionStatus::True)));
    r.set_field(
        "pod_status_scheduled",
        one(pod.scheduled == Some(ConditionStatus::True)),
    );
    let (mut running, mut waiting, mut terminated, mut oom) = (0.0, 0.0, 0.0, 0.0);
    let mut reasons = [0.0_f64; 5];
    for c in pod.containers.iter().filter(|c| c.has_status) {
        match &c.state {
            ContainerState::Running => running += 1.0,
            ContainerState::Terminated { .. } => terminated += 1.0,
            ContainerState::Waiting { reason } => {
                waiting += 1.0;
                // Upstream's `WaitingReasonLookup` (`internal/aws/containerinsight/const.go`).
                let i = match reason.as_deref() {
                    Some("CrashLoopBackOff") => Some(0),
                    Some("ErrImagePull" | "ImagePullBackOff" | "InvalidImageName") => Some(1),
                    Some("StartError") => Some(2),
                    Some("CreateContainerError") => Some(3),
                    Some("CreateContainerConfigError") => Some(4),
                    _ => None,
                };
                if let Some(i) = i {
                    reasons[i] += 1.0;
                }
            }
            ContainerState::Unknown => {}
        }
        if c.last_termination_reason
            .as_deref()
            .is_some_and(|r| r.contains("OOMKilled"))
        {
            oom += 1.0;
        }
    }
    r.set_field("pod_container_status_running", Some(running));
    r.set_field("pod_container_status_waiting", Some(waiting));
    r.set_field("pod_container_status_terminated", Some(terminated));
    r.set_field(
        "pod_container_status_waiting_reason_crash_loop_back_off",
        Some(reasons[0]),
    );
    r.set_field("pod_container_status_waiting_reason_image_pull_error", Some(reasons[1]));
    r.set_field("pod_container_status_waiting_reason_start_error", Some(reasons[2]));
    r.set_field(
        "pod_container_status_waiting_reason_create_container_error",
        Some(reasons[3]),
    );
    r.set_field(
        "pod_container_status_waiting_reason_create_container_config_error",
        Some(reasons[4]),
    );
    r.set_field("pod_container_status_terminated_reason_oom_killed", Some(oom));
}

/// The Pod record: CPU and memory of the pod cgroup, counts, restarts, requests and limits.
/// The caller adds network fields (they need the pod's PID). Returns the usage that gated
/// the derived fields.
pub fn pod_record(
    owner: &Record,
    read: &PodRead<'_>,
    restarts_delta: Option<f64>,
    s: PodSettings,
    tick: &mut Tick<'_>,
) -> (Record, Usage) {
    let pod = read.pod;
    let mut r = Record::new(RecordType::Pod, owner.timestamp_ms);
    pod_attributes(&mut r, owner, pod, s);
    r.set_attribute("pod_status", pod.pod_status());
    let usage = cpumem::add(
        &mut r,
        &cpumem::POD,
        scope(&["pod", read.cgroup]),
        read.cpu,
        read.memory,
        tick,
    );
    r.set_field("pod_number_of_containers", Some(pod.number_of_containers() as f64));
    r.set_field(
        "pod_number_of_running_containers",
        Some(pod.number_of_running_containers() as f64),
    );
    // A per-tick delta, absent on the first observation.
    r.set_field("pod_number_of_container_restarts", restarts_delta);
    let capacity = crate::kube::PodResourceCeiling {
        cpu_millicores: f64::from(tick.capacity.cpus) * 1000.0,
        memory_bytes: tick.capacity.memory_bytes as f64,
    };
    add_resources(&mut r, pod, usage, &capacity);
    if s.enhanced {
        add_status_fields(&mut r, pod);
    }
    if s.kubernetes_object {
        let node = owner.attribute("NodeName").unwrap_or_default();
        r.json_attributes
            .push(("kubernetes", kubernetes_object(node, pod, s, None)));
    }
    (r, usage)
}

/// The node name of the records the leader sends for unscheduled Pending pods: their log stream
/// (upstream sets `k8s.node.name` to `pending` for them, `internal/k8sapiserver/k8sapiserver.go`).
pub const PENDING_NODE: &str = "pending";

/// The [E] Pod record of a pod no node has taken yet, sent by the leader: the status fields and
/// counts, no CPU or memory (there is no cgroup). `leader` is the leader's Node record of this
/// tick (its `ClusterName` and timestamp are copied); `NodeName` is `pending`.
pub fn pending_pod_record(leader: &Record, pod: &PodInfo, s: PodSettings) -> Record {
    let mut r = Record::new(RecordType::Pod, leader.timestamp_ms);
    if let Some(cluster) = leader.attribute("ClusterName") {
        r.set_attribute("ClusterName", cluster.to_string());
    }
    r.set_attribute("NodeName", PENDING_NODE);
    r.set_attribute("Namespace", pod.namespace.as_str());
    r.set_attribute("PodName", pod.pod_name(s.prefer_full_pod_name));
    r.set_attribute("FullPodName", pod.name.as_str());
    if s.tag_service
        && let Some(svc) = &pod.service
    {
        r.set_attribute("Service", svc.as_str());
    }
    r.set_attribute("pod_status", pod.pod_status());
    r.set_field("pod_number_of_containers", Some(pod.number_of_containers() as f64));
    r.set_field(
        "pod_number_of_running_containers",
        Some(pod.number_of_running_containers() as f64),
    );
    add_status_fields(&mut r, pod);
    if s.kubernetes_object {
        r.json_attributes
            .push(("kubernetes", kubernetes_object(PENDING_NODE, pod, s, None)));
    }
    r
}

/// The Container record of one application container.
/// The ContainerFS record of a container (cAdvisor's container filesystem figures, which its
/// containerd handler never reports): the writable layer's usage against the filesystem that
/// holds the writable layers, with the Container record's pod and container attributes.
pub fn container_fs_record(container: &Record, usage_bytes: u64, image_fs: Option<ImageFs>) -> Record {
    let mut r = Record::new(RecordType::ContainerFS, container.timestamp_ms);
    // The status attributes are the Container record's alone.
    r.attributes.extend(
        container
            .attributes
            .iter()
            .filter(|(k, _)| !k.starts_with("container_"))
            .cloned(),
    );
    r.json_attributes.extend(
        container
            .json_attributes
            .iter()
            .filter(|(k, _)| *k == "kubernetes")
            .cloned(),
    );
    r.set_field("container_filesystem_usage", Some(usage_bytes as f64));
    if let Some(fs) = image_fs {
        r.set_field("container_filesystem_capacity", Some(fs.capacity_bytes as f64));
        r.set_field("container_filesystem_available", Some(fs.available_bytes as f64));
        if fs.capacity_bytes > 0 {
            r.set_field(
                "container_filesystem_utilization",
                Some(usage_bytes as f64 / fs.capacity_bytes as f64 * 100.0),
            );
        }
    }
    r
}

pub fn container_record(
    owner: &Record,
    pod: &PodInfo,
    container: &ContainerInfo,
    read: (&str, Option<CpuStats>, Option<MemoryStats>),
    restarts_delta: Option<f64>,
    s: PodSettings,
    tick: &mut Tick<'_>,
) -> Record {
    let (cgroup, cpu, memory) = read;
    let mut r = Record::new(RecordType::Container, owner.timestamp_ms);
    pod_attributes(&mut r, owner, pod, s);
    if s.enhanced {
        r.set_attribute("ContainerName", container.name.as_str());
    }
    if let Some(status) = container.state.as_status() {
        r.set_attribute("container_status", status);
    }
    if let Some(reason) = container.state.reason().filter(|r| !r.is_empty()) {
        r.set_attribute("container_status_reason", reason);
    }
    if let Some(reason) = container.last_termination_reason.as_deref().filter(|r| !r.is_empty()) {
        r.set_attribute("container_last_termination_reason", reason);
    }
    let usage = cpumem::add(
        &mut r,
        &cpumem::CONTAINER,
        scope(&["container", cgroup]),
        cpu,
        memory,
        tick,
    );
    if let Some(cpu) = usage.cpu_millicores {
        r.set_field("container_cpu_limit", container.cpu_limit_millicores);
        r.set_field("container_cpu_request", container.cpu_request_millicores);
        if s.enhanced {
            let over = container
                .cpu_limit_millicores
                .filter(|l| *l > 0.0)
                .map(|l| cpu / l * 100.0);
            r.set_field("container_cpu_utilization_over_container_limit", over);
        }
    }
    if let Some(ws) = usage.working_set_bytes {
        r.set_field("container_memory_limit", container.memory_limit_bytes);
        r.set_field("container_memory_request", container.memory_request_bytes);
        if s.enhanced {
            let over = container
                .memory_limit_bytes
                .filter(|l| *l > 0.0)
                .map(|l| ws / l * 100.0);
            r.set_field("container_memory_utilization_over_container_limit", over);
        }
    }
    // The per-container twin, without prefix and without unit (an upstream quirk: its prefix
    // stripping mangles the name; kept for parity).
    r.set_field("number_of_container_restarts", restarts_delta);
    if s.kubernetes_object {
        let node = owner.attribute("NodeName").unwrap_or_default();
        r.json_attributes
            .push(("kubernetes", kubernetes_object(node, pod, s, Some(container))));
    }
    r
}

/// The Node record's pod-derived fields, gated like the pod's on this tick's usage.
/// The [E] `node_status_*` fields from this node's own Node object: each condition present is 1
/// when `True`, else 0; `node_status_condition_unknown` is 1 when any condition is `Unknown`;
/// the pod capacity and allocatable count as the Node lists them
/// [amazon-contributing/opentelemetry-collector-contrib:
/// `receiver/awscontainerinsightreceiver/internal/stores/nodeinfo.go`].
pub fn add_node_status(node: &mut Record, own: &crate::kube::NodeState) {
    use crate::kube::ConditionStatus;
    const FIELDS: [(&str, &str); 5] = [
        ("Ready", "node_status_condition_ready"),
        ("DiskPressure", "node_status_condition_disk_pressure"),
        ("MemoryPressure", "node_status_condition_memory_pressure"),
        ("PIDPressure", "node_status_condition_pid_pressure"),
        ("NetworkUnavailable", "node_status_condition_network_unavailable"),
    ];
    for (kind, field) in FIELDS {
        if let Some(c) = own.conditions.iter().find(|c| c.kind == kind) {
            node.set_field(field, Some(if c.status == ConditionStatus::True { 1.0 } else { 0.0 }));
        }
    }
    if !own.conditions.is_empty() {
        let unknown = own.conditions.iter().any(|c| c.status == ConditionStatus::Unknown);
        node.set_field("node_status_condition_unknown", Some(if unknown { 1.0 } else { 0.0 }));
    }
    node.set_field("node_status_capacity_pods", own.capacity_pods.map(|n| n as f64));
    node.set_field("node_status_allocatable_pods", own.allocatable_pods.map(|n| n as f64));
}

pub fn add_node_totals(node: &mut Record, totals: &NodeTotals, usage: Usage) {
    node.set_field("node_number_of_running_pods", Some(totals.running_pods as f64));
    node.set_field(
        "node_number_of_running_containers",
        Some(totals.running_containers as f64),
    );
    let cpu_limit = node.field("node_cpu_limit");
    let mem_limit = node.field("node_memory_limit");
    if usage.cpu_millicores.is_some() {
        node.set_field("node_cpu_request", Some(totals.cpu_request_millicores));
        node.set_field(
            "node_cpu_reserved_capacity",
            cpu_limit.map(|l| totals.cpu_request_millicores / l * 100.0),
        );
    }
    if usage.working_set_bytes.is_some() {
        node.set_field("node_memory_request", Some(totals.memory_request_bytes));
        node.set_field(
            "node_memory_reserved_capacity",
            mem_limit.map(|l| totals.memory_request_bytes / l * 100.0),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::{ConditionStatus, NodeCondition, NodeState};
    use crate::metrics::record::RecordType;

    #[test]
    fn a_container_fs_record_carries_the_container_attributes_without_its_status() {
        let mut container = Record::new(RecordType::Container, 7);
        container.set_attribute("ClusterName", "c");
        container.set_attribute("PodName", "web");
        container.set_attribute("ContainerName", "app");
        container.set_attribute("container_status", "Running");
        container
            .json_attributes
            .push(("kubernetes", serde_json::json!({"container_name": "app"})));
        container.set_field("container_cpu_utilization", Some(3.0));
        let fs = ImageFs {
            capacity_bytes: 1000 << 20,
            available_bytes: 600 << 20,
        };
        let r = container_fs_record(&container, 50 << 20, Some(fs));
        assert_eq!(r.kind, RecordType::ContainerFS);
        assert_eq!(r.timestamp_ms, 7);
        assert_eq!(r.attribute("PodName"), Some("web"));
        assert_eq!(r.attribute("ContainerName"), Some("app"));
        assert_eq!(r.attribute("container_status"), None);
        assert_eq!(r.json_attributes.len(), 1);
        assert_eq!(r.field("container_cpu_utilization"), None);
        assert_eq!(r.field("container_filesystem_usage"), Some(f64::from(50u32 << 20)));
        assert_eq!(r.field("container_filesystem_capacity"), Some(f64::from(1000u32 << 20)));
        assert_eq!(r.field("container_filesystem_available"), Some(f64::from(600u32 << 20)));
        assert_eq!(r.field("container_filesystem_utilization"), Some(5.0));
        // Without the image filesystem (a snapshotter that exports no root): usage only.
        let r = container_fs_record(&container, 1, None);
        assert_eq!(r.field("container_filesystem_usage"), Some(1.0));
        assert_eq!(r.field("container_filesystem_capacity"), None);
        assert_eq!(r.field("container_filesystem_utilization"), None);
        // A zero-sized filesystem gives no utilization, never a division by zero.
        let r = container_fs_record(&container, 1, Some(ImageFs::default()));
        assert_eq!(r.field("container_filesystem_utilization"), None);
    }

    #[test]
    fn a_pending_pod_record_lands_in_the_pending_stream_with_its_status_and_no_usage() {
        let text = r#"{"kind":"PodList","items":[{"metadata":{"name":"queued-7d4b9c8f5d-abcde","namespace":"shop","uid":"u",
            "ownerReferences":[{"kind":"ReplicaSet","name":"queued-7d4b9c8f5d","uid":"r","apiVersion":"apps/v1"}]},
            "spec":{"containers":[{"name":"app"}]},
            "status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False"}]}}]}"#;
        let (pods, _) = crate::kube::parse_pod_list(text).unwrap();
        let mut leader = Record::new(RecordType::Node, 42);
        leader.set_attribute("ClusterName", "c");
        leader.set_attribute("NodeName", "leader-node");
        leader.set_attribute("InstanceId", "i-1");
        let s = PodSettings {
            enhanced: true,
            prefer_full_pod_name: false,
            tag_service: true,
            kubernetes_object: true,
        };
        let r = pending_pod_record(&leader, &pods[0], s);
        assert_eq!(r.timestamp_ms, 42);
        assert_eq!(r.attribute("NodeName"), Some("pending"));
        assert_eq!(r.attribute("InstanceId"), None);
        assert_eq!(r.attribute("PodName"), Some("queued"));
        assert_eq!(r.attribute("FullPodName"), Some("queued-7d4b9c8f5d-abcde"));
        assert_eq!(r.field("pod_status_pending"), Some(1.0));
        assert_eq!(r.field("pod_status_scheduled"), Some(0.0));
        assert_eq!(r.field("pod_number_of_containers"), Some(0.0));
        assert_eq!(r.field("pod_cpu_utilization"), None, "no cgroup, no usage");
        let k = &r.json_attributes.iter().find(|(k, _)| *k == "kubernetes").unwrap().1;
        assert_eq!(k["host"], "pending");
    }

    #[test]
    fn node_status_sets_present_conditions_one_hot_and_flags_unknown() {
        let cond = |kind: &str, status| NodeCondition {
            kind: kind.into(),
            status,
        };
        let own = NodeState {
            name: "n".into(),
            conditions: vec![
                cond("Ready", ConditionStatus::True),
                cond("MemoryPressure", ConditionStatus::False),
                cond("DiskPressure", ConditionStatus::Unknown),
            ],
            capacity_pods: Some(110),
            allocatable_pods: None,
            ..NodeState::default()
        };
        let mut node = Record::new(RecordType::Node, 0);
        add_node_status(&mut node, &own);
        assert_eq!(node.field("node_status_condition_ready"), Some(1.0));
        assert_eq!(node.field("node_status_condition_memory_pressure"), Some(0.0));
        // Unknown is not True: 0, and it raises the unknown flag.
        assert_eq!(node.field("node_status_condition_disk_pressure"), Some(0.0));
        assert_eq!(node.field("node_status_condition_unknown"), Some(1.0));
        // Absent conditions and counts are left out, never reported as 0.
        assert_eq!(node.field("node_status_condition_pid_pressure"), None);
        assert_eq!(node.field("node_status_condition_network_unavailable"), None);
        assert_eq!(node.field("node_status_capacity_pods"), Some(110.0));
        assert_eq!(node.field("node_status_allocatable_pods"), None);
    }
}
