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
//! Nodes, `EndpointSlices`, Endpoints, workloads, `PersistentVolumeClaims`, `PersistentVolumes`,
//! `Ingresses` and the pods of every node make a [`ClusterState`] for the leader's records (see
//! [`super::cluster`]). Other kinds are ignored with a warning.

use std::collections::HashSet;

use k8s_openapi::api::core::v1::{Pod, Service};
use serde::Deserialize;
use serde_json::Value;

use super::cluster::{ClusterBuilder, ClusterState};
use super::convert::{Convert, pod_info, service_selector};
use super::error::PodListError;
use super::model::PodInfo;
use super::service::service_for;

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
            "Pod" => match Pod::deserialize({
                let mut item = item;
                quantities_as_text(&mut item);
                item
            }) {
                Ok(pod) => raw_pods.push((index, pod)),
                Err(e) => warnings.push(Warning::PodSkipped {
                    index,
                    reason: e.to_string(),
                }),
            },
            "Service" => {
                // A Service that does not fit selects nothing; it cannot break the pods.
                if let Ok(svc) = Service::deserialize(item) {
                    services.extend(service_selector(&svc));
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
        let mut cx = Convert {
            index,
            warnings: &mut warnings,
            // The file source has no apiserver, so Deployments come from the suffix rule.
            deployment_of: &|_| None,
        };
        let Some(mut pod) = pod_info(&raw, &mut cx) else {
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

/// Quantities are strings in API output; a hand-written file may use JSON numbers, which the API
/// types do not accept: they are turned into their decimal text first.
fn quantities_as_text(item: &mut Value) {
    let Some(spec) = item.get_mut("spec") else { return };
    for list in ["containers", "initContainers"] {
        let Some(Value::Array(containers)) = spec.get_mut(list) else {
            continue;
        };
        for c in containers {
            let Some(res) = c.get_mut("resources") else { continue };
            for part in ["requests", "limits"] {
                if let Some(Value::Object(m)) = res.get_mut(part) {
                    for v in m.values_mut() {
                        if let Value::Number(n) = v {
                            *v = Value::String(n.to_string());
                        }
                    }
                }
            }
        }
    }
}
