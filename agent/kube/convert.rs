//! The one conversion from the Kubernetes API types (`k8s-openapi`) to the index's plain values.
//! The apiserver source converts every watched object with it, and the file source parses its
//! items into the same types first, so both give a pod the same [`PodInfo`].
//!
//! Nothing of the API object survives the conversion but what [`PodInfo`] holds: managed fields,
//! the spec's volumes and env, the status' timestamps are dropped on receipt, so the memory an
//! indexed pod costs is that of its names, labels and annotations.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerState as ApiContainerState, ContainerStatus, Pod, PodSpec, PodStatus, ResourceRequirements,
    Service,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity as ApiQuantity;

use super::model::{
    Accelerators, ConditionStatus, ContainerInfo, ContainerState, EFA_RESOURCE, GPU_RESOURCE, LogExclusion, PodInfo,
    PodPhase,
};
use super::model::{NEURONCORE_RESOURCE, NEURONDEVICE_RESOURCES};
use super::podlist::{CONFIG_MIRROR_ANNOTATION, Warning};
use super::quantity::Quantity;
use super::service::ServiceSelector;
use super::workload::{OwnerRef, derive_workload};

/// `kubectl apply`'s copy of the object: never kept (see `PodInfo::annotations`).
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The namespace of an object that names none, as the apiserver defaults it.
pub(crate) const DEFAULT_NAMESPACE: &str = "default";

/// Where a conversion's warnings go, and what it knows about owners.
pub(crate) struct Convert<'a> {
    /// The position of the item in its list, for warnings (0 for a watched object).
    pub index: usize,
    pub warnings: &'a mut Vec<Warning>,
    /// The Deployment of a `ReplicaSet` of the pod's namespace, when a GET of the `ReplicaSet`
    /// said so; `|_| None` leaves the decision to the suffix rule (the file source).
    pub deployment_of: &'a dyn Fn(&str) -> Option<String>,
}

fn non_empty(s: Option<&String>) -> Option<String> {
    s.filter(|s| !s.is_empty()).cloned()
}

/// The pod as the index keeps it, or `None` (with a warning) when it has no uid or name.
pub(crate) fn pod_info(pod: &Pod, cx: &mut Convert<'_>) -> Option<PodInfo> {
    let meta = &pod.metadata;
    let (Some(uid), Some(name)) = (non_empty(meta.uid.as_ref()), non_empty(meta.name.as_ref())) else {
        cx.warnings.push(Warning::PodSkipped {
            index: cx.index,
            reason: "metadata.uid or metadata.name is missing".to_string(),
        });
        return None;
    };
    let namespace = non_empty(meta.namespace.as_ref()).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
    let pod_key = format!("{namespace}/{name}");
    let owner_refs: Vec<OwnerRef> = meta
        .owner_references
        .iter()
        .flatten()
        .map(|o| OwnerRef {
            kind: o.kind.clone(),
            name: o.name.clone(),
        })
        .collect();
    let default = derive_workload(&name, &owner_refs, false, cx.deployment_of);
    let full = derive_workload(&name, &owner_refs, true, cx.deployment_of);

    let status = pod.status.as_ref();
    let condition = |kind: &str| {
        status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .find(|c| c.type_ == kind)
            .map(|c| ConditionStatus::parse(Some(c.status.as_str())))
    };
    let spec = pod.spec.as_ref();
    let mut join = Join {
        pod: &pod_key,
        warnings: cx.warnings,
    };
    let containers = join.join(
        spec.map(|s| s.containers.as_slice()).unwrap_or_default(),
        status.and_then(|s| s.container_statuses.as_deref()),
        false,
    );
    let init_containers = join.join(
        spec.and_then(|s| s.init_containers.as_deref()).unwrap_or_default(),
        status.and_then(|s| s.init_container_statuses.as_deref()),
        true,
    );

    let mut annotations = meta.annotations.clone().unwrap_or_default();
    annotations.remove(LAST_APPLIED_ANNOTATION);
    let log_exclusions = annotations
        .iter()
        .filter_map(|(k, v)| LogExclusion::parse(k, v))
        .collect();
    let mirror_of = annotations
        .get(CONFIG_MIRROR_ANNOTATION)
        .filter(|h| !h.is_empty())
        .cloned();
    Some(PodInfo {
        mirror_of,
        log_exclusions,
        annotations,
        uid,
        name,
        namespace,
        node_name: non_empty(spec.and_then(|s| s.node_name.as_ref())),
        phase: PodPhase::parse(status.and_then(|s| s.phase.as_deref())),
        workload_name: default.pod_name,
        owners: default.owners,
        workload_name_preferring_full: full.pod_name,
        owners_preferring_full: full.owners,
        labels: meta.labels.clone().unwrap_or_default(),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        containers,
        init_containers,
        service: None,
        ready: condition("Ready"),
        scheduled: condition("PodScheduled"),
        metrics_endpoint: metrics_endpoint(meta.namespace.as_deref(), meta.labels.as_ref(), spec, status),
    })
}

/// A pod's IP and `metrics` container port when it is one of the exporters kinsight scrapes
/// (`crate::metrics::volumes::EXPORTERS`); `None` for any other pod, so the index holds nothing
/// more for them.
fn metrics_endpoint(
    namespace: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
    spec: Option<&PodSpec>,
    status: Option<&PodStatus>,
) -> Option<(std::net::IpAddr, Option<u16>)> {
    let labels = labels?;
    let is_exporter = crate::metrics::volumes::EXPORTERS
        .iter()
        .any(|e| Some(e.namespace) == namespace && labels.get(e.label.0).is_some_and(|v| v == e.label.1));
    if !is_exporter {
        return None;
    }
    let ip = status?.pod_ip.as_deref()?.parse().ok()?;
    let port = spec
        .into_iter()
        .flat_map(|s| &s.containers)
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some("metrics"))
        .and_then(|p| u16::try_from(p.container_port).ok());
    Some((ip, port))
}

/// Recomputes `PodName` and `pod_owners` (both `prefer_full_pod_name` settings) of a converted
/// pod, when the apiserver has said which Deployment controls one of its `ReplicaSet`s.
pub(crate) fn set_workload(
    info: &mut PodInfo,
    owner_refs: &[OwnerRef],
    deployment_of: &dyn Fn(&str) -> Option<String>,
) {
    let default = derive_workload(&info.name, owner_refs, false, deployment_of);
    let full = derive_workload(&info.name, owner_refs, true, deployment_of);
    info.workload_name = default.pod_name;
    info.owners = default.owners;
    info.workload_name_preferring_full = full.pod_name;
    info.owners_preferring_full = full.owners;
}

/// What Service membership needs of a Service; `None` for one without a name.
pub(crate) fn service_selector(svc: &Service) -> Option<ServiceSelector> {
    let meta = &svc.metadata;
    let spec = svc.spec.as_ref();
    Some(ServiceSelector {
        namespace: non_empty(meta.namespace.as_ref()).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
        name: non_empty(meta.name.as_ref())?,
        selector: spec.and_then(|s| s.selector.clone()).unwrap_or_default(),
        publish_not_ready_addresses: spec.and_then(|s| s.publish_not_ready_addresses).unwrap_or(false),
    })
}

/// Joins spec containers with their statuses, for one pod.
struct Join<'a> {
    pod: &'a str,
    warnings: &'a mut Vec<Warning>,
}

impl Join<'_> {
    fn join(&mut self, spec: &[Container], statuses: Option<&[ContainerStatus]>, is_init: bool) -> Vec<ContainerInfo> {
        let mut out: Vec<ContainerInfo> = Vec::with_capacity(spec.len());
        for c in spec {
            if c.name.is_empty() {
                self.warnings.push(Warning::ContainerSkipped {
                    pod: self.pod.to_string(),
                });
                continue;
            }
            let mut info = ContainerInfo {
                name: c.name.clone(),
                is_init,
                in_spec: true,
                ..ContainerInfo::default()
            };
            // Only `spec.containers` count; init containers' resources are not read.
            if !is_init && let Some(res) = &c.resources {
                info.cpu_request_millicores = self.quantity(
                    &c.name,
                    "requests.cpu",
                    resource(res.requests.as_ref(), "cpu"),
                    Quantity::milli_value,
                );
                info.memory_request_bytes = self.quantity(
                    &c.name,
                    "requests.memory",
                    resource(res.requests.as_ref(), "memory"),
                    Quantity::value,
                );
                info.cpu_limit_millicores = self.quantity(
                    &c.name,
                    "limits.cpu",
                    resource(res.limits.as_ref(), "cpu"),
                    Quantity::milli_value,
                );
                info.memory_limit_bytes = self.quantity(
                    &c.name,
                    "limits.memory",
                    resource(res.limits.as_ref(), "memory"),
                    Quantity::value,
                );
                info.accelerators = self.accelerators(&c.name, res);
            }
            out.push(info);
        }
        for status in statuses.into_iter().flatten() {
            if status.name.is_empty() {
                continue;
            }
            let i = if let Some(i) = out.iter().position(|c| c.name == status.name && !c.has_status) {
                i
            } else {
                out.push(ContainerInfo {
                    name: status.name.clone(),
                    is_init,
                    ..ContainerInfo::default()
                });
                out.len() - 1
            };
            apply_status(&mut out[i], status);
        }
        out
    }

    /// A quantity in the container's unit, or `None` when unset, negative (counts as unset) or
    /// garbage (with a warning).
    /// The container's accelerator requests and limits (GPUs, EFA devices, AWS Neuron); `None`
    /// when it asks for none.
    fn accelerators(&mut self, name: &str, res: &ResourceRequirements) -> Option<Box<Accelerators>> {
        let accelerators = Accelerators {
            gpu_request: self.quantity(
                name,
                "requests.nvidia.com/gpu",
                resource(res.requests.as_ref(), GPU_RESOURCE),
                Quantity::value,
            ),
            gpu_limit: self.quantity(
                name,
                "limits.nvidia.com/gpu",
                resource(res.limits.as_ref(), GPU_RESOURCE),
                Quantity::value,
            ),
            // AWS Neuron.
            neuroncore_request: self.quantity(
                name,
                "requests.aws.amazon.com/neuroncore",
                resource(res.requests.as_ref(), NEURONCORE_RESOURCE),
                Quantity::value,
            ),
            neuroncore_limit: self.quantity(
                name,
                "limits.aws.amazon.com/neuroncore",
                resource(res.limits.as_ref(), NEURONCORE_RESOURCE),
                Quantity::value,
            ),
            neurondevice_request: self.neuron_devices(name, res.requests.as_ref(), "requests"),
            neurondevice_limit: self.neuron_devices(name, res.limits.as_ref(), "limits"),
            efa_request: self.quantity(
                name,
                "requests.vpc.amazonaws.com/efa",
                resource(res.requests.as_ref(), EFA_RESOURCE),
                Quantity::value,
            ),
            efa_limit: self.quantity(
                name,
                "limits.vpc.amazonaws.com/efa",
                resource(res.limits.as_ref(), EFA_RESOURCE),
                Quantity::value,
            ),
        };
        (accelerators != Accelerators::default()).then(|| Box::new(accelerators))
    }

    /// AWS Neuron: whole devices under either name of the device plugin, summed.
    fn neuron_devices(
        &mut self,
        container: &str,
        map: Option<&BTreeMap<String, ApiQuantity>>,
        kind: &'static str,
    ) -> Option<f64> {
        let [new, old] = NEURONDEVICE_RESOURCES;
        let fields = if kind == "limits" {
            ["limits.aws.amazon.com/neurondevice", "limits.aws.amazon.com/neuron"]
        } else {
            ["requests.aws.amazon.com/neurondevice", "requests.aws.amazon.com/neuron"]
        };
        let a = self.quantity(container, fields[0], resource(map, new), Quantity::value);
        let b = self.quantity(container, fields[1], resource(map, old), Quantity::value);
        match (a, b) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        }
    }

    fn quantity(
        &mut self,
        container: &str,
        field: &'static str,
        text: Option<&str>,
        unit: fn(&Quantity) -> f64,
    ) -> Option<f64> {
        let text = text?;
        match Quantity::parse(text) {
            Ok(q) if q.is_negative() => None,
            Ok(q) => Some(unit(&q)),
            Err(e) => {
                self.warnings.push(Warning::BadQuantity {
                    pod: self.pod.to_string(),
                    container: container.to_string(),
                    field,
                    value: text.to_string(),
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

/// One resource of `requests` or `limits`, as text.
fn resource<'a>(map: Option<&'a BTreeMap<String, ApiQuantity>>, key: &str) -> Option<&'a str> {
    map.and_then(|m| m.get(key)).map(|q| q.0.as_str())
}

fn apply_status(c: &mut ContainerInfo, s: &ContainerStatus) {
    c.has_status = true;
    c.restart_count = u64::try_from(s.restart_count).unwrap_or(0);
    c.image = non_empty(Some(&s.image));
    c.image_id = non_empty(Some(&s.image_id));
    if let Some(raw) = non_empty(s.container_id.as_ref()) {
        match raw.split_once("://") {
            Some((runtime, id)) if !runtime.is_empty() && !id.is_empty() => {
                c.runtime = Some(runtime.to_string());
                c.id = Some(id.to_string());
            }
            _ => c.id = Some(raw),
        }
    }
    c.state = state_of(s.state.as_ref());
    c.last_termination_reason = s
        .last_state
        .as_ref()
        .and_then(|l| l.terminated.as_ref())
        .and_then(|t| non_empty(t.reason.as_ref()));
}

fn state_of(state: Option<&ApiContainerState>) -> ContainerState {
    let Some(state) = state else {
        return ContainerState::Unknown;
    };
    // The apiserver sets exactly one of the three; should a hand-written file set several,
    // running wins, then terminated.
    if state.running.is_some() {
        ContainerState::Running
    } else if let Some(t) = &state.terminated {
        ContainerState::Terminated {
            reason: non_empty(t.reason.as_ref()),
            exit_code: Some(t.exit_code),
        }
    } else if let Some(w) = &state.waiting {
        ContainerState::Waiting {
            reason: non_empty(w.reason.as_ref()),
        }
    } else {
        ContainerState::Unknown
    }
}
