//! Pods from JSON in the shape the apiserver returns them: what `kubectl get pods -o json`
//! prints (`kind: PodList`, or `kind: List` with `items`), one `Pod`, or a bare JSON array of
//! pods.
//!
//! Parsing is in two steps so that one odd pod cannot hide the others: the whole text into a
//! `serde_json::Value` (malformed JSON is an error with line and column), then each item on its
//! own into lenient structs where every field is optional and unknown fields are ignored. An
//! item that does not fit, or lacks `metadata.uid` or `metadata.name`, is skipped with a
//! [`Warning`] naming its index; a resource quantity that does not parse is treated as unset,
//! with a warning. The caller counts the warnings (`kinsight_pod_index_warnings_total{kind}`).
//!
//! A `List` may also hold `Service` objects (`kubectl get pods,services -o json`); their
//! selectors then give the pods their `Service` attribute. A `List` that holds `Node`
//! objects is a cluster dump (`kubectl get nodes,pods,services,endpointslices -A -o json`): its
//! Nodes, `EndpointSlices`, Endpoints and the pods of every node make a [`ClusterState`] for the
//! leader's records (see [`super::cluster`]). Other kinds are ignored with a warning.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::cluster::{ClusterBuilder, ClusterState};
use super::error::PodListError;
use super::model::{ConditionStatus, ContainerInfo, ContainerState, PodInfo, PodPhase};
use super::quantity::Quantity;
use super::service::{ServiceSelector, service_for};
use super::workload::{OwnerRef, derive_workload};

/// `kubectl apply`'s copy of the object: never kept (see `PodInfo::annotations`).
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// The annotation of a mirror pod that carries its static pod's config hash
/// (`kubernetes/kubernetes` `pkg/kubelet/types/pod_update.go` `ConfigMirrorAnnotationKey`).
pub const CONFIG_MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Something in a pod list that was skipped or treated as unset. The list as a whole loads.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Warning {
    #[error("item {index}: pod skipped: {reason}")]
    PodSkipped { index: usize, reason: String },
    #[error("item {index}: pod {pod}: metadata.uid {uid} repeats an earlier item; this one is skipped")]
    DuplicateUid { index: usize, pod: String, uid: String },
    #[error("item {index}: a {kind} is none of Pod, Service, Node, EndpointSlice, Endpoints; ignored")]
    ItemIgnored { index: usize, kind: String },
    #[error("item {index}: {kind} skipped: {reason}")]
    ObjectSkipped { index: usize, kind: String, reason: String },
    #[error("pod {pod}: a container entry without a name is ignored")]
    ContainerSkipped { pod: String },
    #[error(
        "pod {pod}: container {container}: {field} {value:?} is not a Kubernetes quantity ({error}); treated as unset"
    )]
    BadQuantity {
        pod: String,
        container: String,
        field: &'static str,
        value: String,
        error: String,
    },
}

impl Warning {
    /// The bounded `kind` label of `kinsight_pod_index_warnings_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Warning::PodSkipped { .. } => "pod_skipped",
            Warning::DuplicateUid { .. } => "duplicate_uid",
            Warning::ItemIgnored { .. } => "item_ignored",
            Warning::ObjectSkipped { .. } => "object_skipped",
            Warning::ContainerSkipped { .. } => "container_skipped",
            Warning::BadQuantity { .. } => "bad_quantity",
        }
    }
}

/// Parses a pod list (see the module doc). The pods come in list order; their `workload_name`
/// uses the suffix rule only for `ReplicaSet` owners, as the file source has no apiserver to ask.
/// The cluster objects of a cluster dump are read and dropped; [`parse_list`] keeps them.
pub fn parse_pod_list(text: &str) -> Result<(Vec<PodInfo>, Vec<Warning>), PodListError> {
    parse_list(text).map(|list| (list.pods, list.warnings))
}

/// What a pod list file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedList {
    /// Every pod of the list, of every node, in list order.
    pub pods: Vec<PodInfo>,
    pub warnings: Vec<Warning>,
    /// The cluster view, when the list holds `Node` items; `None` for a plain pod list.
    pub cluster: Option<ClusterState>,
}

/// Parses a pod list or cluster dump (see the module doc).
pub fn parse_list(text: &str) -> Result<ParsedList, PodListError> {
    let root: Value = serde_json::from_str(text).map_err(|source| PodListError::Json {
        path: None,
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let items = match root {
        Value::Array(items) => items,
        Value::Object(mut obj) => match (obj.remove("items"), obj.get("kind").and_then(Value::as_str)) {
            (Some(Value::Array(items)), _) => items,
            (None, Some("Pod")) => vec![Value::Object(obj)],
            (Some(other), _) => {
                return Err(PodListError::Shape {
                    path: None,
                    found: format!("`items` is {}", type_name(&other)),
                });
            }
            (None, kind) => {
                return Err(PodListError::Shape {
                    path: None,
                    found: format!("an object of kind {:?} without `items`", kind.unwrap_or("")),
                });
            }
        },
        other => {
            return Err(PodListError::Shape {
                path: None,
                found: format!("the document is {}", type_name(&other)),
            });
        }
    };

    let mut warnings = Vec::new();
    let mut raw_pods = Vec::with_capacity(items.len());
    let mut services = Vec::new();
    let mut cluster = ClusterBuilder::default();
    for (index, item) in items.into_iter().enumerate() {
        let kind = item.get("kind").and_then(Value::as_str).unwrap_or("Pod").to_string();
        match kind.as_str() {
            "Pod" => match RawPod::deserialize(item) {
                Ok(pod) => raw_pods.push((index, pod)),
                Err(e) => warnings.push(Warning::PodSkipped {
                    index,
                    reason: e.to_string(),
                }),
            },
            "Service" => {
                // A Service that does not fit selects nothing; it cannot break the pods.
                if let Ok(svc) = RawService::deserialize(item) {
                    services.extend(svc.into_selector());
                }
            }
            _ => {
                if !cluster.take(index, &kind, item, &mut warnings) {
                    warnings.push(Warning::ItemIgnored { index, kind });
                }
            }
        }
    }

    let mut seen = HashSet::new();
    let mut pods = Vec::with_capacity(raw_pods.len());
    for (index, raw) in raw_pods {
        let Some(mut pod) = raw.into_pod(index, &mut warnings) else {
            continue;
        };
        if !seen.insert(pod.uid.clone()) {
            warnings.push(Warning::DuplicateUid {
                index,
                pod: format!("{}/{}", pod.namespace, pod.name),
                uid: pod.uid,
            });
            continue;
        }
        if !services.is_empty() {
            pod.service = service_for(&pod.namespace, &pod.labels, pod.ready, &services);
        }
        pods.push(pod);
    }
    let cluster = cluster.build(&pods);
    Ok(ParsedList {
        pods,
        warnings,
        cluster,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

// The lenient shapes. Every field is optional (a `null` is the same as a missing key) and
// unknown fields are ignored: kubectl output carries far more than kinsight reads.

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawPod {
    metadata: Option<RawMeta>,
    spec: Option<RawSpec>,
    status: Option<RawStatus>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<RawOwner>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawOwner {
    kind: Option<String>,
    name: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawSpec {
    node_name: Option<String>,
    host_network: Option<bool>,
    containers: Option<Vec<RawContainer>>,
    init_containers: Option<Vec<RawContainer>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawContainer {
    name: Option<String>,
    resources: Option<RawResources>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawResources {
    // Values are strings in API output; a hand-written file may use JSON numbers.
    requests: Option<BTreeMap<String, Value>>,
    limits: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawStatus {
    phase: Option<String>,
    conditions: Option<Vec<RawCondition>>,
    container_statuses: Option<Vec<RawContainerStatus>>,
    init_container_statuses: Option<Vec<RawContainerStatus>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCondition {
    #[serde(rename = "type")]
    kind: Option<String>,
    status: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawContainerStatus {
    name: Option<String>,
    #[serde(rename = "containerID")]
    container_id: Option<String>,
    restart_count: Option<i64>,
    image: Option<String>,
    #[serde(rename = "imageID")]
    image_id: Option<String>,
    state: Option<RawState>,
    last_state: Option<RawState>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawState {
    running: Option<Value>,
    waiting: Option<RawReason>,
    terminated: Option<RawReason>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawReason {
    reason: Option<String>,
    exit_code: Option<i32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawService {
    metadata: Option<RawMeta>,
    spec: Option<RawServiceSpec>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct RawServiceSpec {
    selector: Option<BTreeMap<String, String>>,
    publish_not_ready_addresses: Option<bool>,
}

impl RawService {
    fn into_selector(self) -> Option<ServiceSelector> {
        let meta = self.metadata?;
        let spec = self.spec.unwrap_or_default();
        Some(ServiceSelector {
            namespace: meta.namespace.unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            name: meta.name.filter(|n| !n.is_empty())?,
            selector: spec.selector.unwrap_or_default(),
            publish_not_ready_addresses: spec.publish_not_ready_addresses.unwrap_or(false),
        })
    }
}

/// The namespace of an object that names none, as the apiserver defaults it.
const DEFAULT_NAMESPACE: &str = "default";

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

impl RawPod {
    fn into_pod(self, index: usize, warnings: &mut Vec<Warning>) -> Option<PodInfo> {
        let meta = self.metadata.unwrap_or_default();
        let (Some(uid), Some(name)) = (non_empty(meta.uid), non_empty(meta.name)) else {
            warnings.push(Warning::PodSkipped {
                index,
                reason: "metadata.uid or metadata.name is missing".to_string(),
            });
            return None;
        };
        let namespace = non_empty(meta.namespace).unwrap_or_else(|| DEFAULT_NAMESPACE.to_string());
        let pod_key = format!("{namespace}/{name}");
        let spec = self.spec.unwrap_or_default();
        let status = self.status.unwrap_or_default();

        let owner_refs: Vec<OwnerRef> = meta
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|o| OwnerRef {
                kind: o.kind.unwrap_or_default(),
                name: o.name.unwrap_or_default(),
            })
            .collect();
        // The file source has no apiserver, so Deployments come from the suffix rule.
        let default = derive_workload(&name, &owner_refs, false, &|_| None);
        let full = derive_workload(&name, &owner_refs, true, &|_| None);

        let condition = |kind: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.kind.as_deref() == Some(kind))
                .map(|c| ConditionStatus::parse(c.status.as_deref()))
        };
        let ready = condition("Ready");
        let scheduled = condition("PodScheduled");

        let mut ctx = Join {
            pod: &pod_key,
            warnings,
        };
        let containers = ctx.join(spec.containers.unwrap_or_default(), status.container_statuses, false);
        let init_containers = ctx.join(
            spec.init_containers.unwrap_or_default(),
            status.init_container_statuses,
            true,
        );

        let mut annotations = meta.annotations.unwrap_or_default();
        let log_exclusions = annotations
            .iter()
            .filter_map(|(k, v)| super::model::LogExclusion::parse(k, v))
            .collect();
        let mirror_of = annotations
            .get(CONFIG_MIRROR_ANNOTATION)
            .filter(|h| !h.is_empty())
            .cloned();
        annotations.remove(LAST_APPLIED_ANNOTATION);
        Some(PodInfo {
            mirror_of,
            log_exclusions,
            annotations,
            uid,
            name,
            namespace,
            node_name: non_empty(spec.node_name),
            phase: PodPhase::parse(status.phase.as_deref()),
            workload_name: default.pod_name,
            owners: default.owners,
            workload_name_preferring_full: full.pod_name,
            owners_preferring_full: full.owners,
            labels: meta.labels.unwrap_or_default(),
            host_network: spec.host_network.unwrap_or(false),
            containers,
            init_containers,
            service: None,
            ready,
            scheduled,
        })
    }
}

/// Joins spec containers with their statuses, for one pod.
struct Join<'a> {
    pod: &'a str,
    warnings: &'a mut Vec<Warning>,
}

impl Join<'_> {
    fn join(
        &mut self,
        spec: Vec<RawContainer>,
        statuses: Option<Vec<RawContainerStatus>>,
        is_init: bool,
    ) -> Vec<ContainerInfo> {
        let mut out: Vec<ContainerInfo> = Vec::with_capacity(spec.len());
        for c in spec {
            let Some(name) = non_empty(c.name) else {
                self.warnings.push(Warning::ContainerSkipped {
                    pod: self.pod.to_string(),
                });
                continue;
            };
            let mut info = ContainerInfo {
                is_init,
                in_spec: true,
                ..ContainerInfo::default()
            };
            // Only `spec.containers` count; init containers' resources are not read.
            if !is_init && let Some(res) = c.resources {
                let requests = res.requests.unwrap_or_default();
                let limits = res.limits.unwrap_or_default();
                info.cpu_request_millicores =
                    self.quantity(&name, "requests.cpu", requests.get("cpu"), Quantity::milli_value);
                info.memory_request_bytes =
                    self.quantity(&name, "requests.memory", requests.get("memory"), Quantity::value);
                info.cpu_limit_millicores =
                    self.quantity(&name, "limits.cpu", limits.get("cpu"), Quantity::milli_value);
                info.memory_limit_bytes = self.quantity(&name, "limits.memory", limits.get("memory"), Quantity::value);
            }
            info.name = name;
            out.push(info);
        }
        for status in statuses.into_iter().flatten() {
            let Some(name) = non_empty(status.name.clone()) else {
                continue;
            };
            let i = if let Some(i) = out.iter().position(|c| c.name == name && !c.has_status) {
                i
            } else {
                out.push(ContainerInfo {
                    name,
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
    fn quantity(
        &mut self,
        container: &str,
        field: &'static str,
        value: Option<&Value>,
        unit: fn(&Quantity) -> f64,
    ) -> Option<f64> {
        let text = match value? {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Null => return None,
            other => other.to_string(),
        };
        match Quantity::parse(&text) {
            Ok(q) if q.is_negative() => None,
            Ok(q) => Some(unit(&q)),
            Err(e) => {
                self.warnings.push(Warning::BadQuantity {
                    pod: self.pod.to_string(),
                    container: container.to_string(),
                    field,
                    value: text,
                    error: e.to_string(),
                });
                None
            }
        }
    }
}

fn apply_status(c: &mut ContainerInfo, s: RawContainerStatus) {
    c.has_status = true;
    c.restart_count = s.restart_count.unwrap_or(0).max(0).cast_unsigned();
    c.image = non_empty(s.image);
    c.image_id = non_empty(s.image_id);
    if let Some(raw) = non_empty(s.container_id) {
        match raw.split_once("://") {
            Some((runtime, id)) if !runtime.is_empty() && !id.is_empty() => {
                c.runtime = Some(runtime.to_string());
                c.id = Some(id.to_string());
            }
            _ => c.id = Some(raw),
        }
    }
    c.state = state_of(s.state);
    c.last_termination_reason = s
        .last_state
        .and_then(|l| l.terminated)
        .and_then(|t| non_empty(t.reason));
}

fn state_of(state: Option<RawState>) -> ContainerState {
    let Some(state) = state else {
        return ContainerState::Unknown;
    };
    // The apiserver sets exactly one of the three; should a hand-written file set several,
    // running wins, then terminated.
    if state.running.is_some() {
        ContainerState::Running
    } else if let Some(t) = state.terminated {
        ContainerState::Terminated {
            reason: non_empty(t.reason),
            exit_code: t.exit_code,
        }
    } else if let Some(w) = state.waiting {
        ContainerState::Waiting {
            reason: non_empty(w.reason),
        }
    } else {
        ContainerState::Unknown
    }
}
