//! The environment variables kinsight reads, captured once by `main`.
//!
//! This is the only place in the crate that reads the process environment (clippy bans
//! `std::env::var` everywhere else): the rest of the code, tests included, gets an [`Env`] value.

/// The environment variables that feed the configuration. Each is `None` when unset or empty
/// (the downward API writes an empty string for a field it cannot fill).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    /// `HOST_NAME`: the node name (downward API `spec.nodeName`); node-name fallback after the
    /// config keys.
    pub host_name: Option<String>,
    /// `HOST_IP`: the node's IP (downward API `status.hostIP`); informational, no kubelet calls.
    pub host_ip: Option<String>,
    /// `K8S_NAMESPACE`: the agent's namespace (leader Lease namespace).
    pub k8s_namespace: Option<String>,
    /// `K8S_CLUSTER_NAME`: cluster-name fallback after the config key (`spec/METRICS.md` §15.1).
    pub k8s_cluster_name: Option<String>,
    /// `AWS_REGION`: region fallback after `agent.region` (`spec/IDENTITY.md` §8).
    pub aws_region: Option<String>,
    /// `POD_NAME`: the agent's own pod (downward API `metadata.name`).
    pub pod_name: Option<String>,
    /// `KUBERNETES_SERVICE_HOST`: set by kubelet in every pod; its presence means "in a cluster"
    /// and makes `apiserver` the default metadata source.
    pub kubernetes_service_host: Option<String>,
}

impl Env {
    /// Reads the variables above from the process environment. Call once, from `main`.
    #[expect(
        clippy::disallowed_methods,
        reason = "the environment is read once, here, and passed down as a value"
    )]
    pub fn from_process() -> Env {
        // A value that is not valid Unicode cannot be a node, cluster or region name: unset.
        let get = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Env {
            host_name: get("HOST_NAME"),
            host_ip: get("HOST_IP"),
            k8s_namespace: get("K8S_NAMESPACE"),
            k8s_cluster_name: get("K8S_CLUSTER_NAME"),
            aws_region: get("AWS_REGION"),
            pod_name: get("POD_NAME"),
            kubernetes_service_host: get("KUBERNETES_SERVICE_HOST"),
        }
    }
}
