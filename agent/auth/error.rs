//! Errors of the `auth` module. None carries a secret: credential
//! errors name files, URLs and STS error codes, never token or key contents.

use super::IdentityKind;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No region from the config, the environment, the profile or IMDS: a configuration error.
    #[error("no AWS region: set agent.region in the config or AWS_REGION in the DaemonSet (IMDS {imds})")]
    NoRegion {
        /// Why IMDS did not give one: `disabled`, `not asked (require_workload_identity)`, or
        /// `did not answer`.
        imds: &'static str,
    },
    /// `kinsight.identity.require_workload_identity` and no IRSA or Pod Identity.
    #[error(
        "kinsight.identity.require_workload_identity is true, but neither IRSA (AWS_ROLE_ARN + \
         AWS_WEB_IDENTITY_TOKEN_FILE) nor EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI) is set up \
         for this pod; found instead: {found}. Give the ServiceAccount an IAM role (IRSA annotation or a Pod \
         Identity association) and recreate the pod"
    )]
    Refused { found: String },
    /// A workload identity is required but another link answered (cannot happen with only links
    /// 3 and 4 built; kept so the rule holds whatever the chain does).
    #[error("kinsight.identity.require_workload_identity is true, but the identity in use is {kind}")]
    RefusedKind { kind: IdentityKind },
    /// Every link passed: no credentials anywhere.
    #[error("no AWS credentials found; {reasons}")]
    NoCredentials {
        /// Each link and why it passed, `; `-separated.
        reasons: String,
    },
    /// A link that was set up failed (the walk stops there, as in the SDK's chain: a broken IRSA
    /// setup never falls through to the node role).
    #[error("AWS credentials from {kind} failed{hint}")]
    Link {
        kind: IdentityKind,
        hint: String,
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
    /// `sts:AssumeRole` on top of the base identity (`agent.credentials.role_arn`,
    /// `logs.credentials.role_arn`) failed.
    #[error("cannot assume {role_arn} ({key})")]
    AssumeRole {
        key: &'static str,
        role_arn: String,
        #[source]
        source: aws_credential_types::provider::error::CredentialsError,
    },
    /// `agent.credentials.role_arn` or `logs.credentials.role_arn` names a role in another
    /// account than the base identity's, and `KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES` is not set.
    #[error(
        "{key} {role_arn} is in account {role_account}, not in the base identity's account {base_account}; \
         a role in another account needs KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES=true in the DaemonSet"
    )]
    CrossAccountRole {
        key: &'static str,
        role_arn: String,
        role_account: String,
        base_account: String,
    },
    /// A role ARN is configured, but the base identity's account could not be learnt
    /// (`sts:GetCallerIdentity` failed), so the same-account rule cannot be checked.
    #[error(
        "cannot check that {key} is in the base identity's account: sts:GetCallerIdentity failed ({message}); \
         set KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES=true in the DaemonSet to assume it without this check"
    )]
    BaseAccountUnknown { key: &'static str, message: String },
    /// No cluster name from the config, `K8S_CLUSTER_NAME` or the instance tag: a configuration
    /// error. `tag` says why the instance tag did not give one.
    #[error(
        "no cluster name: set logs.metrics_collected.kubernetes.cluster_name in cwagentconfig.json, or the \
         K8S_CLUSTER_NAME environment variable, or tag the instance kubernetes.io/cluster/<name>=owned and allow \
         ec2:DescribeTags; the instance tag: {tag}"
    )]
    NoClusterName { tag: String },
    /// An AWS call failed (check's test sends, `ec2:DescribeTags`).
    #[error("{operation} failed: {message}")]
    Call { operation: &'static str, message: String },
}

impl AuthError {
    /// `EX_CONFIG` (78) for what only a configuration change can fix (no region, a refused
    /// identity, no cluster name); 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        match self {
            AuthError::NoRegion { .. }
            | AuthError::Refused { .. }
            | AuthError::RefusedKind { .. }
            | AuthError::NoClusterName { .. }
            | AuthError::CrossAccountRole { .. } => 78,
            _ => 1,
        }
    }
}
