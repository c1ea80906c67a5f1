//! The credential chain, walked link by link in the order of aws-config's
//! `DefaultCredentialsChain`: environment → profile → IRSA → container (Pod Identity / ECS) →
//! IMDS, from aws-config's public providers. kinsight walks it itself instead of using
//! `CredentialsProviderChain`, so it knows which link answered and can pin that link for every
//! later refresh.

use std::path::Path;

use aws_config::ecs::EcsCredentialsProvider;
use aws_config::environment::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_config::profile::ProfileFileCredentialsProvider;
use aws_config::provider_config::ProviderConfig;
use aws_config::web_identity_token::{StaticConfiguration, WebIdentityTokenCredentialsProvider};
use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};

use super::{AuthError, IdentityKind};
use crate::config::AwsEnv;

/// One link of the chain.
pub struct Link {
    pub kind: IdentityKind,
    pub provider: SharedCredentialsProvider,
}

// Hand-written: a provider may hold credentials (static keys are their own provider), and
// `Credentials`' own Debug prints the whole access key ID.
impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// The link that answered, and its first credentials.
pub struct Pinned {
    pub kind: IdentityKind,
    pub provider: SharedCredentialsProvider,
    pub first: Credentials,
}

// Hand-written, as for `Link`: the kind and the expiry, never a key.
impl std::fmt::Debug for Pinned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pinned")
            .field("kind", &self.kind)
            .field("expiry", &self.first.expiry())
            .finish_non_exhaustive()
    }
}

/// What the environment offers, for the `require_workload_identity` refusal: static keys, a
/// profile, or nothing (then the node role would have been used).
pub fn found_instead(aws: &AwsEnv) -> String {
    let mut found = Vec::new();
    if let Some(prefix) = &aws.access_key_prefix {
        found.push(format!("static keys (AWS_ACCESS_KEY_ID {prefix}…)"));
    }
    if let Some(p) = &aws.profile {
        found.push(format!("profile {p} (AWS_PROFILE)"));
    }
    if aws.container_credentials_relative_uri.is_some() {
        found.push("an ECS task role (AWS_CONTAINER_CREDENTIALS_RELATIVE_URI)".into());
    }
    if aws.role_arn.is_some() != aws.web_identity_token_file.is_some() {
        found.push("half an IRSA setup (AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE must both be set)".into());
    }
    if found.is_empty() {
        "nothing (the EC2 instance role from IMDS would have been used)".into()
    } else {
        found.join(", ")
    }
}

/// Builds the links in the SDK's order. With `workload_only`
/// (`kinsight.identity.require_workload_identity`) only IRSA and the container link are built,
/// so kinsight never contacts IMDS for credentials. `session_name` is used by IRSA only (EKS and
/// EC2 name the Pod Identity and instance-profile sessions themselves).
pub fn links(pc: &ProviderConfig, aws: &AwsEnv, session_name: Option<String>, workload_only: bool) -> Vec<Link> {
    let mut links = Vec::new();
    if !workload_only {
        links.push(Link {
            kind: IdentityKind::Environment,
            provider: SharedCredentialsProvider::new(EnvironmentVariableCredentialsProvider::new()),
        });
        links.push(Link {
            kind: IdentityKind::Profile,
            provider: SharedCredentialsProvider::new(ProfileFileCredentialsProvider::builder().configure(pc).build()),
        });
    }
    let irsa = match (&aws.role_arn, &aws.web_identity_token_file) {
        (Some(role_arn), Some(file)) => WebIdentityTokenCredentialsProvider::builder()
            .configure(pc)
            .static_configuration(StaticConfiguration {
                web_identity_token_file: file.into(),
                role_arn: role_arn.clone(),
                // The SDK's default would be `web-identity-token-<unix-millis>`: useless in CloudTrail.
                session_name: session_name.unwrap_or_else(|| "kinsight".into()),
            })
            .build(),
        // Not set up: the env-reading provider answers CredentialsNotLoaded.
        _ => WebIdentityTokenCredentialsProvider::builder().configure(pc).build(),
    };
    links.push(Link {
        kind: IdentityKind::Irsa,
        provider: SharedCredentialsProvider::new(irsa),
    });
    // The SDK checks RELATIVE_URI before FULL_URI; the kind follows the one it will use.
    let container_kind =
        if aws.container_credentials_relative_uri.is_none() && aws.container_credentials_full_uri.is_some() {
            IdentityKind::PodIdentity
        } else {
            IdentityKind::Ecs
        };
    links.push(Link {
        kind: container_kind,
        provider: SharedCredentialsProvider::new(EcsCredentialsProvider::builder().configure(pc).build()),
    });
    if !workload_only && !aws.ec2_metadata_disabled {
        links.push(Link {
            kind: IdentityKind::Imds,
            provider: SharedCredentialsProvider::new(ImdsCredentialsProvider::builder().configure(pc).build()),
        });
    }
    links
}

/// Walks `links` in order, with the SDK chain's rules: `CredentialsNotLoaded` passes to the next
/// link, any other error stops the walk and is the startup error, the first success is pinned.
pub async fn walk(links: Vec<Link>, aws: &AwsEnv) -> Result<Pinned, AuthError> {
    let mut reasons = Vec::new();
    for link in links {
        tracing::debug!(link = link.kind.as_str(), "trying credential link");
        match link.provider.provide_credentials().await {
            Ok(first) => {
                return Ok(Pinned {
                    kind: link.kind,
                    provider: link.provider,
                    first,
                });
            }
            Err(e @ CredentialsError::CredentialsNotLoaded(_)) => {
                let why = crate::telemetry::chain(&e);
                tracing::debug!(link = link.kind.as_str(), reason = %why, "credential link not set up");
                reasons.push(format!("{}: {why}", link.kind));
            }
            Err(source) => {
                let hint = hint(link.kind, &crate::telemetry::chain(&source), aws);
                return Err(AuthError::Link {
                    kind: link.kind,
                    hint,
                    source,
                });
            }
        }
    }
    Err(AuthError::NoCredentials {
        reasons: reasons.join("; "),
    })
}

/// What an admin can do about a failed link (the usual cause of that STS or endpoint error),
/// starting with `; hint: `, or empty.
pub fn hint(kind: IdentityKind, error: &str, aws: &AwsEnv) -> String {
    let h = match kind {
        IdentityKind::Irsa if error.contains("OpenIDConnect") => {
            "register the cluster's OIDC issuer in IAM: eksctl utils associate-iam-oidc-provider --cluster <cluster> --approve".to_string()
        }
        IdentityKind::Irsa if error.contains("AccessDenied") || error.contains("not authorized") => {
            let claims = aws
                .web_identity_token_file
                .as_deref()
                .and_then(|f| token_claims(Path::new(f)))
                .unwrap_or_else(|| "token claims unreadable".into());
            format!(
                "the role's trust policy does not accept this token; compare its sub/aud conditions with \
                 the token's claims ({claims}); expected sub system:serviceaccount:<namespace>:<serviceaccount>, aud sts.amazonaws.com"
            )
        }
        IdentityKind::Irsa if error.contains("ExpiredToken") => {
            "the projected service-account token has expired: check that kubelet rotates it and that the node clock is right".into()
        }
        IdentityKind::Irsa if error.contains("No such file") || error.contains("could not read") => {
            format!(
                "the web identity token file {} is missing or unreadable (is the projected volume mounted?)",
                aws.web_identity_token_file.as_deref().unwrap_or("?")
            )
        }
        IdentityKind::PodIdentity
            if error.contains("StatusCode(4") || error.contains("status code 4") || error.contains("Non-success") =>
        {
            "EKS Pod Identity refused: check that a pod identity association exists for this ServiceAccount \
             (aws eks list-pod-identity-associations) and that the node role has eks-auth:AssumeRoleForPodIdentity"
                .into()
        }
        IdentityKind::PodIdentity => {
            "cannot reach the EKS Pod Identity agent: install the eks-pod-identity-agent add-on \
             (aws eks create-addon --addon-name eks-pod-identity-agent) and check it runs on this node"
                .into()
        }
        IdentityKind::Imds => {
            "IMDS did not answer: a pod without hostNetwork needs an IMDSv2 hop limit of 2; better, set up IRSA or Pod Identity"
                .into()
        }
        _ => String::new(),
    };
    if h.is_empty() { h } else { format!("; hint: {h}") }
}

/// The `iss`, `sub`, `aud` and `exp` claims of a JWT file, decoded without verification, for the
/// trust-policy hint, so a `sub`/`aud` mismatch is visible. Never the header, the signature or
/// the raw token: those are secrets.
pub fn token_claims(path: &Path) -> Option<String> {
    let token = std::fs::read_to_string(path).ok()?;
    let payload = token.trim().split('.').nth(1)?;
    let mut b64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !b64.len().is_multiple_of(4) {
        b64.push('=');
    }
    let bytes = aws_smithy_types::base64::decode(&b64).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let field = |k: &str| match &v[k] {
        serde_json::Value::Null => "-".to_string(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    Some(format!(
        "iss={} sub={} aud={} exp={}",
        field("iss"),
        field("sub"),
        field("aud"),
        field("exp")
    ))
}
