//! The cluster view the leader's records need: Nodes and their conditions, running pods per
//! namespace cluster-wide, and ready pod endpoints per Service.
//!
//! Upstream builds this only on the elected leader, from apiserver watches
//! (`awscontainerinsightreceiver`'s `internal/k8sapiserver/k8sapiserver.go`).
//! The file source builds it when its `List` holds `Node` items — what
//! `kubectl get nodes,pods,services,endpointslices -A -o json` prints — and this agent then acts
//! as the leader for that file. A plain pod list has no Node items and gives no cluster view, so
//! no cluster records.
//!
//! The view holds counts, not objects: a few bytes per namespace and Service, and per Node its
//! name and conditions. Service counts come from `discovery.k8s.io/v1` `EndpointSlices` (upstream
//! reads `v1` Endpoints, deprecated since Kubernetes 1.33), or from `v1` Endpoints for a Service
//! that has no slice in the list.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde_json::Value;

use super::model::{ConditionStatus, PodInfo, PodPhase};
use super::podlist::Warning;

/// The node conditions that make a node "failed" for `cluster_failed_node_count` when present
/// with a status other than `False`; `Ready` is not among them
/// [amazon-contributing/opentelemetry-collector-contrib: `internal/aws/k8s/k8sclient/node.go`
/// `failedNodeConditions`].
pub const FAILED_NODE_CONDITIONS: [&str; 4] = ["MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable"];

/// The label that ties an `EndpointSlice` to its Service
/// (`k8s.io/api/discovery/v1` `LabelServiceName`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One `status.conditions[]` entry of a Node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCondition {
    /// `type`: `Ready`, `MemoryPressure`, …
    pub kind: String,
    /// `status`; a missing or unrecognised status is `Unknown` (≠ `False`, so it counts as failed
    /// for the four conditions, as upstream's `!= ConditionFalse` does).
    pub status: ConditionStatus,
}

/// What the leader needs of one Node, and an agent of its own Node (the [E] `node_status_*`
/// fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeState {
    pub name: String,
    pub conditions: Vec<NodeCondition>,
    /// `status.capacity.pods` (`node_status_capacity_pods`).
    pub capacity_pods: Option<u64>,
    /// `status.allocatable.pods` (`node_status_allocatable_pods`).
    pub allocatable_pods: Option<u64>,
    /// `status.capacity["nvidia.com/gpu"]` (`node_gpu_limit`), as upstream's pod store reads it
    /// (`getNodeStatusCapacityGPUs` in awscontainerinsightreceiver `internal/stores/nodeinfo.go`).
    pub capacity_gpus: Option<u64>,
    /// `status.capacity["vpc.amazonaws.com/efa"]` (`node_efa_limit`).
    pub capacity_efas: Option<u64>,
    // AWS Neuron.
    /// `status.capacity["aws.amazon.com/neuroncore"]` (`node_neuroncore_limit`): the cores the
    /// Neuron device plugin advertises.
    pub capacity_neuroncores: Option<u64>,
    /// `status.capacity["aws.amazon.com/neurondevice"]` (else the older
    /// `aws.amazon.com/neuron`): with the cores, how many cores a device request holds.
    pub capacity_neurondevices: Option<u64>,
    /// The `topology.k8s.aws/ultraserver-id` label (AWS's label of the instances of one
    /// UltraServer): the `UltraServer` dimension of the node Neuron metrics.
    pub ultraserver: Option<String>,
    /// A `SageMaker` `HyperPod` node's health label (the leader's `hyperpod_node_health_status_*`):
    /// set only for an instance type `ml.*` that carries a known
    /// `sagemaker.amazonaws.com/node-health-status` value.
    pub hyperpod_health: Option<HyperPodHealth>,
}

/// AWS's label naming the `UltraServer` an instance belongs to (`SageMaker` `HyperPod` and EKS
/// topology labels). Upstream declares `UltraServer` dimension sets for the node Neuron metrics
/// (`getAwsNeuronMetricDeclarations` in the CloudWatch agent's `kubernetes.go`) without a
/// component of its own that sets the attribute at the revisions kinsight follows; kinsight
/// takes it from this label.
pub const ULTRASERVER_LABEL: &str = "topology.k8s.aws/ultraserver-id";

/// The values of the `sagemaker.amazonaws.com/node-health-status` label `HyperPod` puts on its
/// nodes, as upstream reads them (`HyperPodConditionTypeMap` in the receiver's
/// `internal/aws/k8s/k8sutil/util.go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HyperPodHealth {
    Schedulable,
    Unschedulable,
    UnschedulablePendingReplacement,
    UnschedulablePendingReboot,
}

impl HyperPodHealth {
    pub const ALL: [HyperPodHealth; 4] = [
        HyperPodHealth::Schedulable,
        HyperPodHealth::Unschedulable,
        HyperPodHealth::UnschedulablePendingReplacement,
        HyperPodHealth::UnschedulablePendingReboot,
    ];

    /// The field of the `HyperPodNode` record that is 1 in this state (the others are 0).
    pub fn field(self) -> &'static str {
        match self {
            HyperPodHealth::Schedulable => "hyperpod_node_health_status_schedulable",
            HyperPodHealth::Unschedulable => "hyperpod_node_health_status_unschedulable",
            HyperPodHealth::UnschedulablePendingReplacement => {
                "hyperpod_node_health_status_unschedulable_pending_replacement"
            }
            HyperPodHealth::UnschedulablePendingReboot => "hyperpod_node_health_status_unschedulable_pending_reboot",
        }
    }

    fn parse(label: &str) -> Option<HyperPodHealth> {
        Some(match label {
            "Schedulable" => HyperPodHealth::Schedulable,
            "Unschedulable" => HyperPodHealth::Unschedulable,
            "UnschedulablePendingReplacement" => HyperPodHealth::UnschedulablePendingReplacement,
            "UnschedulablePendingReboot" => HyperPodHealth::UnschedulablePendingReboot,
            _ => return None,
        })
    }
}

/// The label `HyperPod` keeps a node's health in.
const HYPERPOD_HEALTH_LABEL: &str = "sagemaker.amazonaws.com/node-health-status";

/// A `HyperPod` node's health, from its labels: upstream takes nodes whose instance type starts
/// with `ml.` (`isHyperPodNode` in the receiver's `internal/k8sapiserver/utils.go`).
fn hyperpod_health(labels: Option<&BTreeMap<String, String>>) -> Option<HyperPodHealth> {
    let labels = labels?;
    let instance_type = labels
        .get("node.kubernetes.io/instance-type")
        .or_else(|| labels.get("beta.kubernetes.io/instance-type"))?;
    if !instance_type.starts_with("ml.") {
        return None;
    }
    HyperPodHealth::parse(labels.get(HYPERPOD_HEALTH_LABEL)?)
}

/// A `PersistentVolumeClaim`'s phase (`status.phase`), for `persistent_volume_claim_status_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimPhase {
    Pending,
    Bound,
    Lost,
    /// Absent or not one of the three.
    Other,
}

impl ClaimPhase {
    pub(crate) fn parse(phase: Option<&str>) -> ClaimPhase {
        match phase {
            Some("Pending") => ClaimPhase::Pending,
            Some("Bound") => ClaimPhase::Bound,
            Some("Lost") => ClaimPhase::Lost,
            _ => ClaimPhase::Other,
        }
    }
}

/// What the leader keeps of a `PersistentVolumeClaim`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimState {
    pub namespace: String,
    pub name: String,
    pub phase: ClaimPhase,
}

pub(crate) fn claim_state(c: &PersistentVolumeClaim) -> Option<ClaimState> {
    Some(ClaimState {
        namespace: c.metadata.namespace.clone()?,
        name: c.metadata.name.clone()?,
        phase: ClaimPhase::parse(c.status.as_ref().and_then(|s| s.phase.as_deref())),
    })
}

impl NodeState {
    /// Any *present* condition of type `MemoryPressure`, `DiskPressure`, `PIDPressure` or
    /// `NetworkUnavailable` whose status is not `False`. Absent conditions do not count, `Ready`
    /// is ignored.
    pub fn is_failed(&self) -> bool {
        self.conditions
            .iter()
            .any(|c| FAILED_NODE_CONDITIONS.contains(&c.kind.as_str()) && c.status != ConditionStatus::False)
    }
}

/// A Service by namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

/// The kind of a workload record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    StatefulSet,
    /// Only `ReplicaSets` without an owner (a Deployment's are counted through the Deployment).
    ReplicaSet,
}

/// One workload's replica counts, as the leader's workload records carry them (field names
/// without a type prefix, `PodName` = the workload name) [amazon-contributing/opentelemetry-collector-contrib:
/// `internal/k8sapiserver/k8sapiserver.go`, `internal/aws/k8s/k8sclient/{deployment,daemonset,statefulset,replicaset}.go`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadState {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    /// `replicas_desired`.
    pub desired: Option<u64>,
    /// `replicas_ready`.
    pub ready: Option<u64>,
    /// `status_replicas_available`.
    pub available: Option<u64>,
    /// `status_replicas_unavailable` (Deployments and `DaemonSets` only).
    pub unavailable: Option<u64>,
}

fn count(n: Option<i32>) -> Option<u64> {
    n.and_then(|n| u64::try_from(n).ok())
}

fn workload(kind: WorkloadKind, meta: &ObjectMeta) -> Option<WorkloadState> {
    Some(WorkloadState {
        kind,
        namespace: meta
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        name: meta.name.clone().filter(|n| !n.is_empty())?,
        desired: None,
        ready: None,
        available: None,
        unavailable: None,
    })
}

/// A Deployment's counts: `spec.replicas`, `status.{ready,available,unavailable}Replicas`.
pub(crate) fn deployment_state(d: &Deployment) -> Option<WorkloadState> {
    let st = d.status.as_ref();
    Some(WorkloadState {
        desired: count(d.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        unavailable: count(st.and_then(|s| s.unavailable_replicas)),
        ..workload(WorkloadKind::Deployment, &d.metadata)?
    })
}

/// A `DaemonSet`'s counts: `status.desiredNumberScheduled`, `currentNumberScheduled`,
/// `numberAvailable`, `numberUnavailable`.
pub(crate) fn daemon_set_state(d: &DaemonSet) -> Option<WorkloadState> {
    let st = d.status.as_ref();
    Some(WorkloadState {
        desired: count(st.map(|s| s.desired_number_scheduled)),
        ready: count(st.map(|s| s.current_number_scheduled)),
        available: count(st.and_then(|s| s.number_available)),
        unavailable: count(st.and_then(|s| s.number_unavailable)),
        ..workload(WorkloadKind::DaemonSet, &d.metadata)?
    })
}

/// A `StatefulSet`'s counts: `spec.replicas`, `status.readyReplicas`, `status.availableReplicas`.
pub(crate) fn stateful_set_state(s: &StatefulSet) -> Option<WorkloadState> {
    let st = s.status.as_ref();
    Some(WorkloadState {
        desired: count(s.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        ..workload(WorkloadKind::StatefulSet, &s.metadata)?
    })
}

/// A `ReplicaSet`'s counts, for one without an owner only (`None` for a Deployment's).
pub(crate) fn replica_set_state(r: &ReplicaSet) -> Option<WorkloadState> {
    if r.metadata.owner_references.as_ref().is_some_and(|o| !o.is_empty()) {
        return None;
    }
    let st = r.status.as_ref();
    Some(WorkloadState {
        desired: count(r.spec.as_ref().and_then(|s| s.replicas)),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        ..workload(WorkloadKind::ReplicaSet, &r.metadata)?
    })
}

/// The cluster as the leader sees it. Namespaces and Services with a count of 0 are not
/// in the maps: they emit nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterState {
    /// Every Node object, in list order.
    pub nodes: Vec<NodeState>,
    /// Pods in phase `Running` per namespace, cluster-wide (`namespace_number_of_running_pods`).
    pub namespace_running_pods: BTreeMap<String, u64>,
    /// Distinct ready pod endpoints per Service (`service_number_of_running_pods`).
    pub service_ready_pods: BTreeMap<ServiceKey, u64>,
    /// Deployments, `DaemonSets`, `StatefulSets` and owner-less `ReplicaSets`, by kind, namespace
    /// and name; empty when the workload watches are off.
    pub workloads: Vec<WorkloadState>,
    /// Pods not scheduled to any node yet (phase `Pending`, no `spec.nodeName`), for the
    /// enhanced Pod records the leader sends for them (log stream `pending`); empty unless
    /// enhanced observability is on.
    pub pending_pods: Vec<Arc<PodInfo>>,
    /// The storage objects, watched with enhanced observability only (else empty / 0):
    /// `PersistentVolumeClaims` by namespace and name, the number of `PersistentVolumes`, and
    /// `Ingresses` per namespace (`namespace_ingress_count`).
    pub claims: Vec<ClaimState>,
    pub persistent_volumes: u64,
    pub namespace_ingresses: BTreeMap<String, u64>,
}

impl ClusterState {
    /// `cluster_node_count`: the number of Node objects.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// `cluster_failed_node_count`: the Nodes [`NodeState::is_failed`] counts as failed.
    pub fn failed_node_count(&self) -> usize {
        self.nodes.iter().filter(|n| n.is_failed()).count()
    }

    /// `cluster_number_of_running_pods`: Σ of the namespace counts.
    pub fn running_pods(&self) -> u64 {
        self.namespace_running_pods.values().sum()
    }

    /// Whether `node` is one of the Nodes.
    pub fn has_node(&self, node: &str) -> bool {
        self.nodes.iter().any(|n| n.name == node)
    }
}

/// Collects the cluster objects of a `List` while the pod list parser walks its items.
#[derive(Debug, Default)]
pub(crate) struct ClusterBuilder {
    nodes: Vec<NodeState>,
    node_names: HashSet<String>,
    /// Service → distinct ready pods (namespace, name) from `EndpointSlices`.
    from_slices: BTreeMap<ServiceKey, BTreeSet<(String, String)>>,
    /// Service → distinct ready pods from v1 Endpoints.
    from_endpoints: BTreeMap<ServiceKey, BTreeSet<(String, String)>>,
    workloads: Vec<WorkloadState>,
    claims: Vec<ClaimState>,
    persistent_volumes: u64,
    namespace_ingresses: BTreeMap<String, u64>,
}

impl ClusterBuilder {
    /// Takes one item of kind `Node`, `EndpointSlice`, `Endpoints`, a workload kind
    /// (`Deployment`, `DaemonSet`, `StatefulSet`, `ReplicaSet`) or a storage kind
    /// (`PersistentVolumeClaim`, `PersistentVolume`, `Ingress`); returns false for any other kind. An item that does not fit is skipped with a warning.
    pub(crate) fn take(&mut self, index: usize, kind: &str, item: Value, warnings: &mut Vec<Warning>) -> bool {
        let skipped = |reason: String| Warning::ObjectSkipped {
            index,
            kind: kind.to_string(),
            reason,
        };
        match kind {
            "Node" => match Node::deserialize(item) {
                Ok(node) => match node_state(&node) {
                    Some(node) if self.node_names.insert(node.name.clone()) => self.nodes.push(node),
                    Some(node) => warnings.push(skipped(format!("Node {} repeats an earlier item", node.name))),
                    None => warnings.push(skipped("metadata.name is missing".to_string())),
                },
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            "EndpointSlice" => match EndpointSlice::deserialize(item) {
                Ok(slice) => {
                    if let Some((service, pods)) = slice_ready_pods(&slice) {
                        self.from_slices.entry(service).or_default().extend(pods);
                    }
                }
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" => {
                let state = match kind {
                    "Deployment" => Deployment::deserialize(item).map(|d| deployment_state(&d)),
                    "DaemonSet" => DaemonSet::deserialize(item).map(|d| daemon_set_state(&d)),
                    "StatefulSet" => StatefulSet::deserialize(item).map(|s| stateful_set_state(&s)),
                    _ => ReplicaSet::deserialize(item).map(|r| replica_set_state(&r)),
                };
                match state {
                    Ok(state) => self.workloads.extend(state),
                    Err(e) => warnings.push(skipped(e.to_string())),
                }
            }
            "Endpoints" => match RawEndpoints::deserialize(item) {
                Ok(raw) => raw.add_to(&mut self.from_endpoints),
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            "PersistentVolumeClaim" => match PersistentVolumeClaim::deserialize(item) {
                Ok(c) => match claim_state(&c) {
                    Some(c) => self.claims.push(c),
                    None => warnings.push(skipped("metadata.name or namespace is missing".to_string())),
                },
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            "PersistentVolume" => match PersistentVolume::deserialize(item) {
                Ok(_) => self.persistent_volumes += 1,
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            "Ingress" => match Ingress::deserialize(item) {
                Ok(i) => match i.metadata.namespace {
                    Some(ns) => *self.namespace_ingresses.entry(ns).or_insert(0) += 1,
                    None => warnings.push(skipped("metadata.namespace is missing".to_string())),
                },
                Err(e) => warnings.push(skipped(e.to_string())),
            },
            _ => return false,
        }
        true
    }

    /// The cluster view, or `None` when the list held no Node item (a plain pod list).
    /// `pods` are all pods of the list, of every node.
    pub(crate) fn build(self, pods: &[PodInfo]) -> Option<ClusterState> {
        if self.nodes.is_empty() {
            return None;
        }
        let mut namespace_running_pods = BTreeMap::new();
        for pod in pods.iter().filter(|p| p.phase == PodPhase::Running) {
            *namespace_running_pods.entry(pod.namespace.clone()).or_insert(0) += 1;
        }
        // A Service with any EndpointSlice in the list is counted from its slices only; v1
        // Endpoints serve the Services that have none (an older dump, or `kubectl get endpoints`).
        // Both mirror the same state, so adding them would count every pod twice.
        let mut services = self.from_endpoints;
        services.retain(|key, _| !self.from_slices.contains_key(key));
        services.extend(self.from_slices);
        let service_ready_pods = services
            .into_iter()
            .filter(|(_, pods)| !pods.is_empty())
            .map(|(key, pods)| (key, pods.len() as u64))
            .collect();
        let mut pending_pods: Vec<Arc<PodInfo>> = pods
            .iter()
            .filter(|p| p.phase == PodPhase::Pending && p.node_name.is_none())
            .map(|p| Arc::new(p.clone()))
            .collect();
        pending_pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        let mut workloads = self.workloads;
        workloads.sort_by(|a, b| (a.kind, &a.namespace, &a.name).cmp(&(b.kind, &b.namespace, &b.name)));
        let mut claims = self.claims;
        claims.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        claims.dedup_by(|a, b| a.namespace == b.namespace && a.name == b.name);
        Some(ClusterState {
            nodes: self.nodes,
            namespace_running_pods,
            service_ready_pods,
            workloads,
            pending_pods,
            claims,
            persistent_volumes: self.persistent_volumes,
            namespace_ingresses: self.namespace_ingresses,
        })
    }
}

// The lenient shapes, as in `podlist`: every field optional, unknown fields ignored.

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
}

/// What the leader keeps of a Node: its name and conditions. `None` without a name.
pub(crate) fn node_state(node: &Node) -> Option<NodeState> {
    let name = node.metadata.name.clone().filter(|n| !n.is_empty())?;
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| !c.type_.is_empty())
        .map(|c| NodeCondition {
            kind: c.type_.clone(),
            status: ConditionStatus::parse(Some(c.status.as_str())),
        })
        .collect();
    // The kubelet writes the pod count as a plain integer (`--max-pods`, default 110).
    // Device plugins advertise whole devices, also as plain integers.
    let count = |m: Option<&BTreeMap<String, ApiQuantity>>, key: &str| m?.get(key)?.0.trim().parse::<u64>().ok();
    let status = node.status.as_ref();
    let capacity = status.and_then(|s| s.capacity.as_ref());
    Some(NodeState {
        name,
        conditions,
        capacity_pods: count(capacity, "pods"),
        allocatable_pods: count(status.and_then(|s| s.allocatable.as_ref()), "pods"),
        capacity_gpus: count(capacity, crate::kube::GPU_RESOURCE),
        capacity_neuroncores: count(capacity, crate::kube::NEURONCORE_RESOURCE),
        capacity_neurondevices: crate::kube::NEURONDEVICE_RESOURCES
            .iter()
            .find_map(|r| count(capacity, r)),
        ultraserver: node
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(ULTRASERVER_LABEL))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_string),
        capacity_efas: count(capacity, crate::kube::EFA_RESOURCE),
        hyperpod_health: hyperpod_health(node.metadata.labels.as_ref()),
    })
}

/// The pod (namespace, name) an endpoint's `targetRef` points at; `None` for another kind or no
/// name.
fn target_pod(
    kind: Option<&str>,
    name: Option<&str>,
    namespace: Option<&str>,
    default_namespace: &str,
) -> Option<(String, String)> {
    if kind != Some("Pod") {
        return None;
    }
    let name = name.filter(|n| !n.is_empty())?;
    let namespace = namespace.filter(|n| !n.is_empty()).unwrap_or(default_namespace);
    Some((namespace.to_string(), name.to_string()))
}

/// The Service of an `EndpointSlice` (its `kubernetes.io/service-name` label) and the distinct
/// ready pods it lists: endpoints whose `conditions.ready` is `false` are skipped (unset counts as
/// ready), and so are endpoints without a Pod `targetRef`. `None` for a slice without the label,
/// which belongs to no Service.
pub(crate) fn slice_ready_pods(slice: &EndpointSlice) -> Option<(ServiceKey, BTreeSet<(String, String)>)> {
    let meta = &slice.metadata;
    let namespace = meta
        .namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let service = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(SERVICE_NAME_LABEL))
        .filter(|s| !s.is_empty())?
        .clone();
    let pods = slice
        .endpoints
        .iter()
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter_map(|e| {
            let t = e.target_ref.as_ref()?;
            target_pod(t.kind.as_deref(), t.name.as_deref(), t.namespace.as_deref(), &namespace)
        })
        .collect();
    Some((
        ServiceKey {
            namespace,
            name: service,
        },
        pods,
    ))
}

/// `targetRef` of a v1 Endpoints address.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTargetRef {
    kind: Option<String>,
    name: Option<String>,
    namespace: Option<String>,
}

/// The namespace of an object that names none, as the apiserver defaults it.
const DEFAULT_NAMESPACE: &str = "default";

fn namespace_of(meta: &RawMeta) -> String {
    meta.namespace
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string())
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEndpoints {
    metadata: Option<RawMeta>,
    subsets: Option<Vec<RawSubset>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSubset {
    // Only `addresses` (ready); `notReadyAddresses` is not read.
    addresses: Option<Vec<RawAddress>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawAddress {
    target_ref: Option<RawTargetRef>,
}

impl RawEndpoints {
    /// Upstream's rule for v1 Endpoints: the ready `subsets[].addresses[]` whose `targetRef`
    /// is a Pod [amazon-contributing/opentelemetry-collector-contrib:
    /// `internal/aws/k8s/k8sclient/endpoint.go`]; counted distinct here, like
    /// the slices, so that a pod listed in two subsets (different port sets) counts once.
    fn add_to(self, services: &mut BTreeMap<ServiceKey, BTreeSet<(String, String)>>) {
        let meta = self.metadata.unwrap_or_default();
        let namespace = namespace_of(&meta);
        let Some(name) = meta.name.filter(|n| !n.is_empty()) else {
            return;
        };
        let pods = services
            .entry(ServiceKey {
                namespace: namespace.clone(),
                name,
            })
            .or_default();
        let addresses = self
            .subsets
            .into_iter()
            .flatten()
            .flat_map(|s| s.addresses.into_iter().flatten());
        for address in addresses {
            if let Some(pod) = address
                .target_ref
                .and_then(|t| target_pod(t.kind.as_deref(), t.name.as_deref(), t.namespace.as_deref(), &namespace))
            {
                pods.insert(pod);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(conditions: &[(&str, &str)]) -> NodeState {
        NodeState {
            name: "n".into(),
            conditions: conditions
                .iter()
                .map(|(k, s)| NodeCondition {
                    kind: (*k).into(),
                    status: ConditionStatus::parse(Some(s)),
                })
                .collect(),
            ..NodeState::default()
        }
    }

    #[test]
    fn failed_nodes_follow_the_four_conditions_and_ignore_ready() {
        assert!(!node(&[]).is_failed(), "absent conditions do not count");
        assert!(!node(&[("Ready", "False"), ("MemoryPressure", "False")]).is_failed());
        assert!(!node(&[("Ready", "Unknown")]).is_failed());
        assert!(node(&[("DiskPressure", "True")]).is_failed());
        assert!(node(&[("PIDPressure", "Unknown")]).is_failed());
        assert!(node(&[("NetworkUnavailable", "True")]).is_failed());
        assert!(node(&[("MemoryPressure", "")]).is_failed(), "a status other than False");
        assert!(!node(&[("NetworkUnavailable", "False"), ("KernelDeadlock", "True")]).is_failed());
    }

    fn build(items: Vec<Value>) -> (Option<ClusterState>, Vec<Warning>) {
        let mut b = ClusterBuilder::default();
        let mut warnings = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let kind = item["kind"].as_str().unwrap().to_string();
            assert!(b.take(i, &kind, item, &mut warnings));
        }
        (b.build(&[]), warnings)
    }

    fn endpoint(pod: Option<&str>, ready: Option<bool>) -> Value {
        let mut e = json!({"addresses": ["10.0.0.1"]});
        if let Some(pod) = pod {
            e["targetRef"] = json!({"kind": "Pod", "name": pod});
        }
        if let Some(ready) = ready {
            e["conditions"] = json!({ "ready": ready });
        }
        e
    }

    fn slice(ns: &str, service: Option<&str>, endpoints: &[Value]) -> Value {
        let labels = service.map_or(json!({}), |s| json!({ SERVICE_NAME_LABEL: s }));
        json!({"kind": "EndpointSlice", "metadata": {"name": "x", "namespace": ns, "labels": labels},
               "endpoints": endpoints})
    }

    #[test]
    fn slices_count_distinct_ready_pods_over_all_slices_of_a_service() {
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}});
        let (cluster, warnings) = build(vec![
            node,
            // Two slices of one Service (dual stack): p1 in both counts once.
            slice(
                "a",
                Some("s"),
                &[endpoint(Some("p1"), Some(true)), endpoint(Some("p2"), None)],
            ),
            slice(
                "a",
                Some("s"),
                &[endpoint(Some("p1"), Some(true)), endpoint(Some("p3"), Some(false))],
            ),
            // Same name in another namespace is another Service.
            slice("b", Some("s"), &[endpoint(Some("p1"), Some(true))]),
            // No targetRef, not ready, no label: nothing.
            slice(
                "c",
                Some("t"),
                &[endpoint(None, Some(true)), endpoint(Some("q"), Some(false))],
            ),
            slice("c", None, &[endpoint(Some("q"), Some(true))]),
        ]);
        assert_eq!(warnings, vec![]);
        let counts: Vec<(String, String, u64)> = cluster
            .unwrap()
            .service_ready_pods
            .into_iter()
            .map(|(k, n)| (k.namespace, k.name, n))
            .collect();
        assert_eq!(counts, [("a".into(), "s".into(), 2), ("b".into(), "s".into(), 1)]);
    }

    #[test]
    fn endpoints_count_ready_addresses_and_slices_win_for_the_same_service() {
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}});
        let endpoints = |name: &str| {
            json!({"kind": "Endpoints", "metadata": {"name": name, "namespace": "a"}, "subsets": [
                {"addresses": [{"ip": "1", "targetRef": {"kind": "Pod", "name": "p1", "namespace": "a"}},
                               {"ip": "2", "targetRef": {"kind": "Pod", "name": "p2"}},
                               {"ip": "3"}],
                 "notReadyAddresses": [{"ip": "4", "targetRef": {"kind": "Pod", "name": "p4"}}]},
                {"addresses": [{"ip": "1", "targetRef": {"kind": "Pod", "name": "p1", "namespace": "a"}}]}]})
        };
        let (cluster, _) = build(vec![
            node,
            endpoints("old"),
            endpoints("both"),
            slice("a", Some("both"), &[endpoint(Some("p9"), None)]),
        ]);
        let cluster = cluster.unwrap();
        let count = |name: &str| {
            cluster.service_ready_pods.get(&ServiceKey {
                namespace: "a".into(),
                name: name.into(),
            })
        };
        assert_eq!(
            count("old"),
            Some(&2),
            "p1 (twice) and p2; not the not-ready p4 nor no targetRef"
        );
        assert_eq!(count("both"), Some(&1), "the slice wins over the Endpoints object");
    }

    #[test]
    fn bad_and_repeated_nodes_are_skipped_with_a_warning() {
        let (cluster, warnings) = build(vec![
            json!({"kind": "Node", "metadata": {"name": "n1"}, "status": {"conditions": [
                {"type": "DiskPressure", "status": "True"}, {"status": "True"}]}}),
            json!({"kind": "Node", "metadata": {"name": "n1"}}),
            json!({"kind": "Node", "metadata": {}}),
            json!({"kind": "Node", "metadata": {"name": "n2"}, "status": {"conditions": 5}}),
            json!({"kind": "EndpointSlice", "endpoints": "x"}),
        ]);
        let cluster = cluster.unwrap();
        assert_eq!((cluster.node_count(), cluster.failed_node_count()), (1, 1));
        assert_eq!(
            cluster.nodes[0].conditions.len(),
            1,
            "a condition without a type is dropped"
        );
        let kinds: Vec<&str> = warnings.iter().map(Warning::kind).collect();
        assert_eq!(kinds, ["object_skipped"; 4]);
        assert_eq!(
            warnings[0].to_string(),
            "item 1: Node skipped: Node n1 repeats an earlier item"
        );
        assert_eq!(
            warnings[1].to_string(),
            "item 2: Node skipped: metadata.name is missing"
        );
    }

    /// Only an `ml.` instance type with a known health value is a `HyperPod` node.
    #[test]
    fn hyperpod_health_needs_an_ml_instance_type_and_a_known_value() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        let ml = ("node.kubernetes.io/instance-type", "ml.g5.8xlarge");
        let health = |v| (HYPERPOD_HEALTH_LABEL, v);
        assert_eq!(
            hyperpod_health(Some(&labels(&[ml, health("Schedulable")]))),
            Some(HyperPodHealth::Schedulable)
        );
        assert_eq!(
            hyperpod_health(Some(&labels(&[
                ("beta.kubernetes.io/instance-type", "ml.p4d.24xlarge"),
                health("UnschedulablePendingReboot")
            ]))),
            Some(HyperPodHealth::UnschedulablePendingReboot)
        );
        assert_eq!(
            hyperpod_health(Some(&labels(&[
                ("node.kubernetes.io/instance-type", "m5.large"),
                health("Schedulable")
            ]))),
            None
        );
        assert_eq!(hyperpod_health(Some(&labels(&[ml, health("Rebooting")]))), None);
        assert_eq!(hyperpod_health(Some(&labels(&[ml]))), None);
        assert_eq!(hyperpod_health(None), None);
        for h in HyperPodHealth::ALL {
            assert!(h.field().starts_with("hyperpod_node_health_status_"));
        }
    }

    #[test]
    fn no_node_items_no_cluster() {
        let (cluster, _) = build(vec![slice("a", Some("s"), &[endpoint(Some("p1"), None)])]);
        assert_eq!(cluster, None);
    }
}
