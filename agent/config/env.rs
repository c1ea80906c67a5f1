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
    /// `POD_IP`: the agent pod's IP (downward API `status.podIP`); the telemetry endpoint binds
    /// it by default.
    pub pod_ip: Option<String>,
    /// `K8S_NAMESPACE`: the agent's namespace (leader Lease namespace).
    pub k8s_namespace: Option<String>,
    /// `K8S_CLUSTER_NAME`: cluster-name fallback after the config key, as in the `CloudWatch` agent.
    pub k8s_cluster_name: Option<String>,
    /// `AWS_REGION`: region fallback after `agent.region`.
    pub aws_region: Option<String>,
    /// `POD_NAME`: the agent's own pod (downward API `metadata.name`).
    pub pod_name: Option<String>,
    /// `KUBERNETES_SERVICE_HOST`: set by kubelet in every pod; its presence means "in a cluster"
    /// and makes `apiserver` the default metadata source.
    pub kubernetes_service_host: Option<String>,
    /// `KUBERNETES_SERVICE_PORT`: the apiserver's port inside the cluster (kubelet sets it).
    pub kubernetes_service_port: Option<String>,
    /// The AWS SDK's variables that `auth` inspects for its report and builds links from.
    pub aws: AwsEnv,
    /// `KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true`: an endpoint override may be `http://` to a host
    /// that is not loopback. Set in the DaemonSet, not the ConfigMap, so that whoever may edit the
    /// ConfigMap cannot send signed requests in clear text.
    pub allow_plain_http_endpoints: bool,
    /// `KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES=true`: `agent.credentials.role_arn` and
    /// `logs.credentials.role_arn` may name a role in another account than the base identity's.
    pub allow_cross_account_roles: bool,
}

/// The AWS SDK's environment variables, as `auth` needs them. Secrets are not kept: of
/// `AWS_ACCESS_KEY_ID` only the 4-character prefix, of the token variables only their presence.
/// The SDK's providers read the process environment themselves; these copies decide which links
/// are built and what the startup report says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsEnv {
    pub default_region: Option<String>,
    pub role_arn: Option<String>,
    pub web_identity_token_file: Option<String>,
    pub role_session_name: Option<String>,
    pub container_credentials_full_uri: Option<String>,
    pub container_credentials_relative_uri: Option<String>,
    pub container_authorization_token_file: Option<String>,
    /// `AWS_CONTAINER_AUTHORIZATION_TOKEN` is set (its value is never kept).
    pub container_authorization_token_set: bool,
    /// The first 4 characters of `AWS_ACCESS_KEY_ID` (`ASIA`, `AKIA`), when it and
    /// `AWS_SECRET_ACCESS_KEY` are both set.
    pub access_key_prefix: Option<String>,
    pub profile: Option<String>,
    /// `AWS_EC2_METADATA_DISABLED=true`.
    pub ec2_metadata_disabled: bool,
    pub ec2_metadata_service_endpoint: Option<String>,
    pub endpoint_url: Option<String>,
    pub endpoint_url_sts: Option<String>,
    pub endpoint_url_cloudwatch: Option<String>,
    pub endpoint_url_cloudwatch_logs: Option<String>,
    pub endpoint_url_ec2: Option<String>,
    /// `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`.
    pub ignore_configured_endpoint_urls: bool,
    /// `AWS_STS_REGIONAL_ENDPOINTS`: not read by the Rust SDK (always regional); reported.
    pub sts_regional_endpoints: Option<String>,
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
            pod_ip: get("POD_IP"),
            k8s_namespace: get("K8S_NAMESPACE"),
            k8s_cluster_name: get("K8S_CLUSTER_NAME"),
            aws_region: get("AWS_REGION"),
            pod_name: get("POD_NAME"),
            kubernetes_service_host: get("KUBERNETES_SERVICE_HOST"),
            kubernetes_service_port: get("KUBERNETES_SERVICE_PORT"),
            aws: AwsEnv::from_lookup(&get),
            allow_plain_http_endpoints: get("KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
            allow_cross_account_roles: get("KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        }
    }
}

impl AwsEnv {
    /// Builds the AWS part from a variable lookup (`None` when unset or empty).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> AwsEnv {
        let is_true = |name: &str| get(name).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        AwsEnv {
            default_region: get("AWS_DEFAULT_REGION"),
            role_arn: get("AWS_ROLE_ARN"),
            web_identity_token_file: get("AWS_WEB_IDENTITY_TOKEN_FILE"),
            role_session_name: get("AWS_ROLE_SESSION_NAME"),
            container_credentials_full_uri: get("AWS_CONTAINER_CREDENTIALS_FULL_URI"),
            container_credentials_relative_uri: get("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"),
            container_authorization_token_file: get("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"),
            container_authorization_token_set: get("AWS_CONTAINER_AUTHORIZATION_TOKEN").is_some(),
            access_key_prefix: get("AWS_ACCESS_KEY_ID")
                .filter(|_| get("AWS_SECRET_ACCESS_KEY").is_some())
                .map(|k| k.chars().take(4).collect()),
            profile: get("AWS_PROFILE"),
            ec2_metadata_disabled: is_true("AWS_EC2_METADATA_DISABLED"),
            ec2_metadata_service_endpoint: get("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
            endpoint_url: get("AWS_ENDPOINT_URL"),
            endpoint_url_sts: get("AWS_ENDPOINT_URL_STS"),
            endpoint_url_cloudwatch: get("AWS_ENDPOINT_URL_CLOUDWATCH"),
            endpoint_url_cloudwatch_logs: get("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS"),
            endpoint_url_ec2: get("AWS_ENDPOINT_URL_EC2"),
            ignore_configured_endpoint_urls: is_true("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"),
            sts_regional_endpoints: get("AWS_STS_REGIONAL_ENDPOINTS"),
        }
    }
}
