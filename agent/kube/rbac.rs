//! The Kubernetes permissions the agent uses, in one table: `kinsight check` asks the apiserver
//! about each (`SelfSubjectAccessReview`), and a test holds `manifests/rbac.yaml` to exactly
//! these rules and to the requests the agent made against the test apiserver.
//!
//! No `nodes/proxy` (the kubelet's `/pods` route would need it, and it grants exec into every
//! pod of the node), no Secrets, no write verb except on the one leader Lease.
//! `SelfSubjectAccessReview` itself needs no rule: every authenticated user may create it
//! through the default `system:basic-user` `ClusterRole`.

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::PostParams;
use kube::{Api, Client};

/// The name of the leader election Lease.
pub const LEASE_NAME: &str = "kinsight-leader";

/// Where a permission applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Cluster-wide (a `ClusterRole` rule).
    Cluster,
    /// In the agent's own namespace (a `Role` rule), optionally for one object name.
    OwnNamespace { name: Option<&'static str> },
    /// A non-resource URL (a `ClusterRole` `nonResourceURLs` rule).
    NonResource,
}

/// One permission: what it is for, and whether the agent is of no use without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Permission {
    /// The API group (`""` for core); for a non-resource URL, empty.
    pub group: &'static str,
    /// The plural resource, or the non-resource path.
    pub resource: &'static str,
    pub verb: &'static str,
    pub scope: Scope,
    /// Without it, pod metrics and log metadata are missing altogether.
    pub essential: bool,
    pub why: &'static str,
}

const fn cluster(
    group: &'static str,
    resource: &'static str,
    verb: &'static str,
    essential: bool,
    why: &'static str,
) -> Permission {
    Permission {
        group,
        resource,
        verb,
        scope: Scope::Cluster,
        essential,
        why,
    }
}

const POD_INDEX: &str = "this node's pods (fieldSelector spec.nodeName)";
const SERVICES: &str = "the Service dimension (tag_service)";
const WORKLOADS: &str = "the Deployment name of a ReplicaSet's pods";
const NODES: &str = "the leader's cluster_node_count and cluster_failed_node_count";
const SLICES: &str = "the leader's service_number_of_running_pods";
const WORKLOAD_RECORDS: &str = "the leader's workload records (replicas_*)";
const STORAGE_RECORDS: &str =
    "the leader's storage records (persistent_volume_*, namespace_ingress_count; enhanced observability)";

/// Every permission the agent uses.
pub const PERMISSIONS: &[Permission] = &[
    cluster("", "pods", "list", true, POD_INDEX),
    cluster("", "pods", "watch", true, POD_INDEX),
    cluster("", "services", "list", false, SERVICES),
    cluster("", "services", "watch", false, SERVICES),
    cluster("apps", "replicasets", "get", false, WORKLOADS),
    cluster("", "nodes", "list", false, NODES),
    cluster("", "nodes", "watch", false, NODES),
    cluster("discovery.k8s.io", "endpointslices", "list", false, SLICES),
    cluster("discovery.k8s.io", "endpointslices", "watch", false, SLICES),
    cluster("apps", "deployments", "list", false, WORKLOAD_RECORDS),
    cluster("apps", "deployments", "watch", false, WORKLOAD_RECORDS),
    cluster("apps", "daemonsets", "list", false, WORKLOAD_RECORDS),
    cluster("apps", "daemonsets", "watch", false, WORKLOAD_RECORDS),
    cluster("apps", "statefulsets", "list", false, WORKLOAD_RECORDS),
    cluster("apps", "statefulsets", "watch", false, WORKLOAD_RECORDS),
    cluster("apps", "replicasets", "list", false, WORKLOAD_RECORDS),
    cluster("apps", "replicasets", "watch", false, WORKLOAD_RECORDS),
    cluster("", "persistentvolumeclaims", "list", false, STORAGE_RECORDS),
    cluster("", "persistentvolumeclaims", "watch", false, STORAGE_RECORDS),
    cluster("", "persistentvolumes", "list", false, STORAGE_RECORDS),
    cluster("", "persistentvolumes", "watch", false, STORAGE_RECORDS),
    cluster("networking.k8s.io", "ingresses", "list", false, STORAGE_RECORDS),
    cluster("networking.k8s.io", "ingresses", "watch", false, STORAGE_RECORDS),
    lease("create", None),
    lease("get", Some(LEASE_NAME)),
    lease("update", Some(LEASE_NAME)),
    Permission {
        group: "",
        resource: "/metrics",
        verb: "get",
        scope: Scope::NonResource,
        essential: false,
        why: "the leader's control-plane metrics (enhanced observability)",
    },
];

/// A right on the leader Lease, in the agent's namespace. `create` cannot be limited to one name
/// ("you cannot restrict create or deletecollection requests by their resource name",
/// <https://kubernetes.io/docs/reference/access-authn-authz/rbac/#referring-to-resources>).
const fn lease(verb: &'static str, name: Option<&'static str>) -> Permission {
    Permission {
        group: "coordination.k8s.io",
        resource: "leases",
        verb,
        scope: Scope::OwnNamespace { name },
        essential: false,
        why: "leader election (the cluster records come from one agent)",
    }
}

impl Permission {
    /// `verb group/resource` as a reader would write it (`list pods`, `get apps/replicasets`).
    pub fn describe(&self) -> String {
        match (self.scope, self.group) {
            (Scope::NonResource, _) | (_, "") => format!("{} {}", self.verb, self.resource),
            (_, g) => format!("{} {g}/{}", self.verb, self.resource),
        }
    }

    fn review(&self, namespace: &str) -> SelfSubjectAccessReview {
        let spec = match self.scope {
            Scope::NonResource => SelfSubjectAccessReviewSpec {
                non_resource_attributes: Some(NonResourceAttributes {
                    path: Some(self.resource.to_string()),
                    verb: Some(self.verb.to_string()),
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            Scope::Cluster | Scope::OwnNamespace { .. } => {
                let (ns, name) = match self.scope {
                    Scope::OwnNamespace { name } => (Some(namespace.to_string()), name.map(str::to_string)),
                    _ => (None, None),
                };
                SelfSubjectAccessReviewSpec {
                    resource_attributes: Some(ResourceAttributes {
                        group: Some(self.group.to_string()),
                        resource: Some(self.resource.to_string()),
                        verb: Some(self.verb.to_string()),
                        namespace: ns,
                        name,
                        ..ResourceAttributes::default()
                    }),
                    ..SelfSubjectAccessReviewSpec::default()
                }
            }
        };
        SelfSubjectAccessReview {
            spec,
            ..SelfSubjectAccessReview::default()
        }
    }
}

/// Asks the apiserver whether this identity holds `p` (in `namespace` for namespaced rules).
pub async fn allowed(client: &Client, p: &Permission, namespace: &str) -> Result<bool, kube::Error> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let answer = api.create(&PostParams::default(), &p.review(namespace)).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}
