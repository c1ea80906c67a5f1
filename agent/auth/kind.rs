//! The kinds of identity kinsight can meet, and the IRSA role session name.

/// Which link of the credential chain answered. The names are the
/// values of the `kind` field in the startup line, in `kinsight check` and in the `/metrics`
/// label of `kinsight_aws_identity_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityKind {
    /// `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`: static keys (local runs and tests).
    Environment,
    /// `~/.aws/config` / `credentials` (local runs).
    Profile,
    /// IAM roles for service accounts: `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE`.
    Irsa,
    /// EKS Pod Identity: `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    PodIdentity,
    /// ECS task role: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (not an EKS case; accepted).
    Ecs,
    /// The instance metadata service: the node role, or kube2iam/kiam in front of it.
    Imds,
}

impl IdentityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            IdentityKind::Environment => "environment",
            IdentityKind::Profile => "profile",
            IdentityKind::Irsa => "irsa",
            IdentityKind::PodIdentity => "pod-identity",
            IdentityKind::Ecs => "ecs",
            IdentityKind::Imds => "imds",
        }
    }

    /// IRSA and Pod Identity: the identities only kinsight's `ServiceAccount` can hold (any pod on
    /// the node that reaches IMDS can use the node role).
    pub fn is_workload_identity(self) -> bool {
        matches!(self, IdentityKind::Irsa | IdentityKind::PodIdentity)
    }
}

impl std::fmt::Display for IdentityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who serves IMDS credentials. kinsight cannot tell for certain: EC2
/// names instance-profile sessions after the instance ID, so an `i-<hex>` session name means the
/// node role; anything else is taken to be a metadata proxy (kube2iam, kiam).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImdsSource {
    NodeRole,
    MetadataProxy,
}

impl ImdsSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ImdsSource::NodeRole => "node-role",
            ImdsSource::MetadataProxy => "metadata-proxy",
        }
    }

    /// From the caller ARN `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub fn from_arn(arn: &str) -> ImdsSource {
        let session = arn.rsplit('/').next().unwrap_or_default();
        let hex = session.strip_prefix("i-").unwrap_or_default();
        if !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit()) {
            ImdsSource::NodeRole
        } else {
            ImdsSource::MetadataProxy
        }
    }
}

/// STS allows 2–64 characters of `[A-Za-z0-9+=,.@_-]` in a role session name.
const SESSION_NAME_MAX: usize = 64;

/// The IRSA session name, shown in the assumed-role ARN and CloudTrail: `AWS_ROLE_SESSION_NAME`
/// if set, else `kinsight-<node name>`, else `kinsight-<hostname>`, sanitised; `None` leaves the
/// SDK default.
pub fn session_name(explicit: Option<&str>, node_name: Option<&str>, hostname: Option<&str>) -> Option<String> {
    if let Some(s) = explicit.filter(|s| !s.is_empty()) {
        return Some(s.to_string());
    }
    let base = node_name.or(hostname).filter(|s| !s.is_empty())?;
    Some(sanitise_session_name(&format!("kinsight-{base}")))
}

/// Every character outside `[A-Za-z0-9+=,.@_-]` becomes `-`; cut to 64 characters.
pub fn sanitise_session_name(raw: &str) -> String {
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+=,.@_-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(SESSION_NAME_MAX)
        .collect()
}

/// The account from an ARN (`arn:partition:service:region:account:resource`).
pub fn account_of(arn: &str) -> Option<&str> {
    arn.split(':').nth(4).filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_name_rules() {
        assert_eq!(
            session_name(None, Some("ip-10-0-1-23.eu-west-1.compute.internal"), Some("h")).as_deref(),
            Some("kinsight-ip-10-0-1-23.eu-west-1.compute.internal")
        );
        assert_eq!(session_name(Some("mine"), Some("node"), None).as_deref(), Some("mine"));
        assert_eq!(session_name(None, None, Some("box")).as_deref(), Some("kinsight-box"));
        assert_eq!(session_name(None, None, None), None);
        assert_eq!(sanitise_session_name("kinsight-a b/c:d"), "kinsight-a-b-c-d");
        let long = sanitise_session_name(&format!("kinsight-{}", "x".repeat(100)));
        assert_eq!(long.len(), 64);
        assert_eq!(sanitise_session_name("kinsight-é"), "kinsight--");
    }

    #[test]
    fn imds_source_from_session_name() {
        assert_eq!(
            ImdsSource::from_arn("arn:aws:sts::111122223333:assumed-role/eks-nodes/i-0abc123def4567890"),
            ImdsSource::NodeRole
        );
        assert_eq!(
            ImdsSource::from_arn("arn:aws:sts::111122223333:assumed-role/app/kube2iam-session"),
            ImdsSource::MetadataProxy
        );
        assert_eq!(
            account_of("arn:aws:sts::111122223333:assumed-role/x/y"),
            Some("111122223333")
        );
    }
}
