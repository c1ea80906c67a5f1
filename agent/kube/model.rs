//! The plain values the pod index holds: what the metrics and log code need of a pod, nothing
//! more.

use std::collections::BTreeMap;

use super::workload::Owner;

/// `status.phase`. A missing or unrecognised phase is [`PodPhase::Unknown`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

impl PodPhase {
    pub fn parse(s: Option<&str>) -> PodPhase {
        match s {
            Some("Pending") => PodPhase::Pending,
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            _ => PodPhase::Unknown,
        }
    }

    /// The `pod_status` attribute value: the phase as Kubernetes spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            PodPhase::Pending => "Pending",
            PodPhase::Running => "Running",
            PodPhase::Succeeded => "Succeeded",
            PodPhase::Failed => "Failed",
            PodPhase::Unknown => "Unknown",
        }
    }

    /// Succeeded and Failed pods hold no resources: node request sums leave them out.
    pub fn is_terminal(self) -> bool {
        matches!(self, PodPhase::Succeeded | PodPhase::Failed)
    }
}

/// The status of a pod condition (`Ready`, `PodScheduled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn parse(s: Option<&str>) -> ConditionStatus {
        match s {
            Some("True") => ConditionStatus::True,
            Some("False") => ConditionStatus::False,
            _ => ConditionStatus::Unknown,
        }
    }
}

/// `status.containerStatuses[].state`, reduced to what the `container_status*` attributes report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ContainerState {
    /// No status published yet, or a state with none of the three keys.
    #[default]
    Unknown,
    Running,
    Waiting {
        reason: Option<String>,
    },
    Terminated {
        reason: Option<String>,
        exit_code: Option<i32>,
    },
}

impl ContainerState {
    /// The `container_status` attribute: `Running` / `Waiting` / `Terminated`; `None` when
    /// the status is not known (the attribute is then omitted, never invented).
    pub fn as_status(&self) -> Option<&'static str> {
        match self {
            ContainerState::Unknown => None,
            ContainerState::Running => Some("Running"),
            ContainerState::Waiting { .. } => Some("Waiting"),
            ContainerState::Terminated { .. } => Some("Terminated"),
        }
    }

    /// The `container_status_reason` attribute: the waiting or terminated reason, when
    /// non-empty.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ContainerState::Waiting { reason } | ContainerState::Terminated { reason, .. } => reason.as_deref(),
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        matches!(self, ContainerState::Running)
    }
}

/// One container of a pod: its spec resources (read for `spec.containers` only) joined by
/// name with its status.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContainerInfo {
    pub name: String,
    /// The container id without its `runtime://` prefix (64 hex digits on real nodes; it is
    /// what cgroup scope names carry). `None` until the runtime created the container.
    pub id: Option<String>,
    /// The prefix of `containerID`: `containerd`, `docker`, `cri-o`. `None` when the id had no
    /// `runtime://` prefix (the `kubernetes` object then gets a plain `container_id` key).
    pub runtime: Option<String>,
    /// Whether `status.{init,}containerStatuses` has an entry for this container (the container
    /// counts are of status entries, not of spec containers).
    pub has_status: bool,
    pub restart_count: u64,
    /// `status.containerStatuses[].image`: the log records' `kubernetes.container_image`.
    pub image: Option<String>,
    /// `status.containerStatuses[].imageID` (`docker-pullable://…` or `sha256:…`): the log
    /// records' `kubernetes.container_hash`, with any `scheme://` prefix stripped.
    pub image_id: Option<String>,
    pub state: ContainerState,
    /// `lastState.terminated.reason` (the `container_last_termination_reason` attribute).
    pub last_termination_reason: Option<String>,
    /// True for `spec.initContainers` (including restartable sidecars). Their resources are
    /// never read: requests and limits count `spec.containers` only.
    pub is_init: bool,
    /// Whether the container is in the spec (`spec.containers` / `spec.initContainers`); false
    /// for a status entry whose container the spec does not name.
    pub in_spec: bool,
    pub cpu_request_millicores: Option<f64>,
    pub cpu_limit_millicores: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
    /// Accelerator device counts the spec asks for; `None` for the usual container that asks
    /// for none (one pointer, so pods without accelerators pay 8 bytes per container).
    pub accelerators: Option<Box<Accelerators>>,
}

/// The extended resource a GPU device plugin advertises (NVIDIA's `k8s-device-plugin`), and
/// the one upstream's pod store sums (`gpuKey` in awscontainerinsightreceiver
/// `internal/stores/podstore.go`).
pub const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The extended resource the EFA device plugin advertises (`aws-efa-k8s-device-plugin`), one
/// per Elastic Fabric Adapter device.
pub const EFA_RESOURCE: &str = "vpc.amazonaws.com/efa";

/// Accelerator devices one spec container requests and limits (`resources.requests` /
/// `resources.limits` of the device plugins' extended resources).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Accelerators {
    /// `requests["nvidia.com/gpu"]`.
    pub gpu_request: Option<f64>,
    /// `limits["nvidia.com/gpu"]`.
    pub gpu_limit: Option<f64>,
    /// `requests["vpc.amazonaws.com/efa"]`.
    pub efa_request: Option<f64>,
    /// `limits["vpc.amazonaws.com/efa"]`.
    pub efa_limit: Option<f64>,
    // AWS Neuron.
    /// `requests["aws.amazon.com/neuroncore"]`.
    pub neuroncore_request: Option<f64>,
    /// `limits["aws.amazon.com/neuroncore"]`.
    pub neuroncore_limit: Option<f64>,
    /// `requests` of whole Neuron devices (`aws.amazon.com/neurondevice` plus the older
    /// `aws.amazon.com/neuron`).
    pub neurondevice_request: Option<f64>,
    /// `limits` of whole Neuron devices, likewise.
    pub neurondevice_limit: Option<f64>,
}

/// AWS Neuron: the extended resources the Neuron device plugin advertises, as upstream names
/// them (`internal/neuron/pod_attribute_decorator.go` in awscontainerinsightreceiver): cores,
/// and whole devices under two names.
pub const NEURONCORE_RESOURCE: &str = "aws.amazon.com/neuroncore";
pub const NEURONDEVICE_RESOURCES: [&str; 2] = ["aws.amazon.com/neurondevice", "aws.amazon.com/neuron"];

#[cfg(test)]
impl PodInfo {
    /// A pod `name` in `namespace` with `containers` and nothing else set: its own workload, no
    /// owners, labels, annotations or Service (the unit tests' starting point).
    pub(crate) fn for_tests(name: &str, namespace: &str, phase: PodPhase, containers: Vec<ContainerInfo>) -> PodInfo {
        PodInfo {
            uid: format!("uid-{name}"),
            name: name.into(),
            namespace: namespace.into(),
            node_name: None,
            phase,
            workload_name: name.into(),
            owners: vec![],
            workload_name_preferring_full: name.into(),
            owners_preferring_full: vec![],
            labels: BTreeMap::new(),
            host_network: false,
            mirror_of: None,
            log_exclusions: Vec::new(),
            annotations: BTreeMap::new(),
            containers,
            init_containers: Vec::new(),
            service: None,
            ready: None,
            scheduled: None,
            metrics_endpoint: None,
        }
    }
}

impl ContainerInfo {
    /// The container's `nvidia.com/gpu` limit, if its spec sets one.
    pub fn gpu_limit(&self) -> Option<f64> {
        self.accelerators.as_ref()?.gpu_limit
    }

    /// The container's `nvidia.com/gpu` request, if its spec sets one.
    pub fn gpu_request(&self) -> Option<f64> {
        self.accelerators.as_ref()?.gpu_request
    }

    /// The container's `vpc.amazonaws.com/efa` limit, if its spec sets one.
    pub fn efa_limit(&self) -> Option<f64> {
        self.accelerators.as_ref()?.efa_limit
    }

    /// The container's `vpc.amazonaws.com/efa` request, if its spec sets one.
    pub fn efa_request(&self) -> Option<f64> {
        self.accelerators.as_ref()?.efa_request
    }
}

/// The node's capacity, which every pod's request and limit sums are clamped to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PodResourceCeiling {
    /// Logical CPUs × 1000.
    pub cpu_millicores: f64,
    /// `MemTotal` in bytes.
    pub memory_bytes: f64,
}

/// A pod's resource sums as the Pod record reports them. Each is `None` when
/// it must be omitted: a request sum of 0, or a limit that some container does not set.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PodResources {
    pub cpu_request_millicores: Option<f64>,
    pub cpu_limit_millicores: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
}

/// One `fluentbit.io/exclude…` annotation set to `"true"`: which of the pod's logs it excludes
/// (Fluent Bit, `plugins/filter_kubernetes/kube_meta.c`: `fluentbit.io/exclude`,
/// `fluentbit.io/exclude_<stream>`, `fluentbit.io/exclude-<container>`,
/// `fluentbit.io/exclude_<stream>-<container>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogExclusion {
    /// `stdout` or `stderr`; `None`: both.
    pub stream: Option<String>,
    /// `None`: every container of the pod.
    pub container: Option<String>,
}

impl LogExclusion {
    /// Reads one annotation; `None` when it is not an exclusion set to `"true"`.
    pub fn parse(key: &str, value: &str) -> Option<LogExclusion> {
        let rest = key.strip_prefix("fluentbit.io/exclude")?;
        if !value.eq_ignore_ascii_case("true") {
            return None;
        }
        let (stream_part, container) = match rest.split_once('-') {
            Some((s, c)) if !c.is_empty() => (s, Some(c.to_string())),
            Some(_) => return None,
            None => (rest, None),
        };
        let stream = match stream_part {
            "" => None,
            "_stdout" => Some("stdout".to_string()),
            "_stderr" => Some("stderr".to_string()),
            _ => return None,
        };
        Some(LogExclusion { stream, container })
    }

    /// Whether it excludes `stream` of `container`.
    pub fn excludes(&self, container: &str, stream: &str) -> bool {
        self.container.as_deref().is_none_or(|c| c == container) && self.stream.as_deref().is_none_or(|s| s == stream)
    }
}

/// What one pod of this node is, for metrics and log enrichment.
#[derive(Debug, Clone, PartialEq)]
pub struct PodInfo {
    pub uid: String,
    /// The real pod name (`kubernetes.pod_name`, the [E] `FullPodName` dimension).
    pub name: String,
    pub namespace: String,
    pub node_name: Option<String>,
    pub phase: PodPhase,
    /// The `PodName` dimension with `prefer_full_pod_name` false; see
    /// [`PodInfo::pod_name`] for the other setting.
    pub workload_name: String,
    /// `kubernetes.pod_owners` with `prefer_full_pod_name` false, after the `ReplicaSet`/Job
    /// rewriting.
    pub owners: Vec<Owner>,
    /// [`Self::workload_name`] and [`Self::owners`] as `prefer_full_pod_name: true` gives them.
    pub workload_name_preferring_full: String,
    pub owners_preferring_full: Vec<Owner>,
    pub labels: BTreeMap<String, String>,
    pub host_network: bool,
    /// The `kubernetes.io/config.mirror` annotation of a mirror pod: the kubelet's config hash,
    /// which a static pod's cgroup path carries instead of `metadata.uid`.
    pub mirror_of: Option<String>,
    /// The pod's `fluentbit.io/exclude[_stream][-container]: "true"` annotations (Fluent Bit's
    /// `K8S-Logging.Exclude`): the log pipeline honours them when
    /// `kinsight.logs.honour_exclude_annotation` is on.
    pub log_exclusions: Vec<LogExclusion>,
    /// `metadata.annotations`, for log records when `kinsight.logs.annotations` is on, without
    /// `kubectl.kubernetes.io/last-applied-configuration` (a copy of the whole object, often
    /// kilobytes, that would be repeated in every log record).
    pub annotations: BTreeMap<String, String>,
    /// `spec.containers` in spec order, each joined with its status by name; statuses without a
    /// spec container follow, with no resources.
    pub containers: Vec<ContainerInfo>,
    /// `spec.initContainers` joined with `initContainerStatuses`: their ids resolve cgroups
    /// too, but they count neither for requests nor for container counts.
    pub init_containers: Vec<ContainerInfo>,
    /// The `Service` attribute (by selector). The file source fills it only when the file is a
    /// `List` that also holds `Service` objects (`kubectl get pods,services -o json`).
    pub service: Option<String>,
    /// The `Ready` condition, `None` when absent.
    pub ready: Option<ConditionStatus>,
    /// The `PodScheduled` condition, `None` when absent.
    pub scheduled: Option<ConditionStatus>,
    /// `status.podIP` and the first container port named `metrics`, kept only for the node-local
    /// exporters kinsight scrapes (the EBS and instance-store CSI node plugins, see
    /// `metrics::volumes`); `None` for every other pod.
    pub metrics_endpoint: Option<(std::net::IpAddr, Option<u16>)>,
}

impl PodInfo {
    /// The `PodName` dimension value.
    pub fn pod_name(&self, prefer_full_pod_name: bool) -> &str {
        if prefer_full_pod_name {
            &self.workload_name_preferring_full
        } else {
            &self.workload_name
        }
    }

    /// The [E] `FullPodName` dimension and `kubernetes.pod_name`: always the real pod name.
    pub fn full_pod_name(&self) -> &str {
        &self.name
    }

    /// The `kubernetes.pod_owners` entries.
    pub fn pod_owners(&self, prefer_full_pod_name: bool) -> &[Owner] {
        if prefer_full_pod_name {
            &self.owners_preferring_full
        } else {
            &self.owners
        }
    }

    /// The `pod_status` attribute.
    pub fn pod_status(&self) -> &'static str {
        self.phase.as_str()
    }

    /// A mirror pod of a static pod.
    pub fn is_static_pod(&self) -> bool {
        self.mirror_of.is_some()
    }

    /// A container by the index [`crate::kube::PodIndex::by_container_id`] returns: indices
    /// below `containers.len()` are application containers, the rest init containers.
    pub fn container(&self, index: usize) -> Option<&ContainerInfo> {
        match index.checked_sub(self.containers.len()) {
            None => self.containers.get(index),
            Some(i) => self.init_containers.get(i),
        }
    }

    /// `pod_number_of_containers`: entries of `status.containerStatuses`.
    pub fn number_of_containers(&self) -> usize {
        self.containers.iter().filter(|c| c.has_status).count()
    }

    /// `pod_number_of_running_containers`: those entries in state `running`.
    pub fn number_of_running_containers(&self) -> usize {
        self.containers.iter().filter(|c| c.state.is_running()).count()
    }

    /// Σ `restartCount` over `status.containerStatuses` (the restart delta's input).
    pub fn restart_count_sum(&self) -> u64 {
        self.containers.iter().map(|c| c.restart_count).sum()
    }

    /// The request and limit sums of the Pod record, clamped to `capacity` when given. Gating
    /// on this tick's CPU rate and working set is the caller's.
    pub fn resources(&self, capacity: Option<&PodResourceCeiling>) -> PodResources {
        let clamp_cpu = |v: f64| capacity.map_or(v, |c| v.min(c.cpu_millicores));
        let clamp_mem = |v: f64| capacity.map_or(v, |c| v.min(c.memory_bytes));
        let spec = || self.containers.iter().filter(|c| c.in_spec);
        let request = |f: fn(&ContainerInfo) -> Option<f64>| -> Option<f64> {
            let sum: f64 = spec().filter_map(f).sum();
            (sum != 0.0).then_some(sum)
        };
        // A limit sum exists only when every spec container sets that limit.
        let limit = |f: fn(&ContainerInfo) -> Option<f64>| -> Option<f64> {
            let mut any = false;
            let mut sum = 0.0;
            for c in spec() {
                sum += f(c)?;
                any = true;
            }
            (any && sum != 0.0).then_some(sum)
        };
        PodResources {
            cpu_request_millicores: request(|c| c.cpu_request_millicores).map(clamp_cpu),
            cpu_limit_millicores: limit(|c| c.cpu_limit_millicores).map(clamp_cpu),
            memory_request_bytes: request(|c| c.memory_request_bytes).map(clamp_mem),
            memory_limit_bytes: limit(|c| c.memory_limit_bytes).map(clamp_mem),
        }
    }
}

/// The Node record's pod-derived fields.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeTotals {
    /// `node_number_of_running_pods`: pods in phase Running.
    pub running_pods: usize,
    /// `node_number_of_running_containers`: `containerStatuses` entries in state `running`
    /// over all pods (init containers not counted).
    pub running_containers: usize,
    /// `node_cpu_request`: Σ of the pods' CPU request sums, Succeeded and Failed pods left out,
    /// Pending pods bound to the node counted.
    pub cpu_request_millicores: f64,
    /// `node_memory_request`, likewise.
    pub memory_request_bytes: f64,
}
