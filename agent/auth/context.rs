//! [`build`]: region, chain, first load, identity report, refresher, and the `SdkConfig`s every
//! AWS client is built from.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_config::BehaviorVersion;
use aws_config::identity::IdentityCache;
use aws_config::meta::region::ProvideRegion;
use aws_config::provider_config::ProviderConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::SdkConfig;
use aws_types::origin::Origin;
use aws_types::region::Region;
use tokio_util::sync::CancellationToken;

use super::AuthError;
use super::chain::{self, found_instead};
use super::identity::Identity;
use super::kind::{IdentityKind, ImdsSource, account_of, session_name};
use crate::config::{AwsEnv, Config, Env};
use crate::host::{Clock, SystemClock};
use crate::telemetry::Telemetry;
use crate::telemetry::events::IdentityInUse;

/// `sts:GetCallerIdentity` at startup: answered in milliseconds; a private subnet without an STS
/// endpoint must not hold startup for the SDK's full retry budget.
const CALLER_IDENTITY_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the region came from; reported as `region_source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionSource {
    /// Config `agent.region`.
    Config,
    /// `AWS_REGION`.
    AwsRegion,
    /// `AWS_DEFAULT_REGION`.
    AwsDefaultRegion,
    /// The selected profile's `region`.
    Profile,
    /// `IMDSv2` `placement/region`.
    Imds,
}

impl RegionSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RegionSource::Config => "agent.region",
            RegionSource::AwsRegion => "AWS_REGION",
            RegionSource::AwsDefaultRegion => "AWS_DEFAULT_REGION",
            RegionSource::Profile => "profile",
            RegionSource::Imds => "imds",
        }
    }
}

/// Which endpoint each service uses: the override in effect, or `default`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub metrics: String,
    pub logs: String,
    pub sts: String,
}

impl Endpoints {
    pub fn resolve(cfg: &Config, aws: &AwsEnv) -> Endpoints {
        let env_ok = !aws.ignore_configured_endpoint_urls;
        let pick = |config: Option<(&str, &String)>, specific: (&str, &Option<String>)| -> String {
            if let Some((key, url)) = config {
                return format!("{url} ({key})");
            }
            if env_ok {
                if let Some(url) = specific.1 {
                    return format!("{url} ({})", specific.0);
                }
                if let Some(url) = &aws.endpoint_url {
                    return format!("{url} (AWS_ENDPOINT_URL)");
                }
            }
            "default".into()
        };
        Endpoints {
            metrics: pick(
                cfg.metrics
                    .endpoint_override
                    .as_ref()
                    .map(|u| ("kinsight.metrics.endpoint_override", u)),
                ("AWS_ENDPOINT_URL_CLOUDWATCH", &aws.endpoint_url_cloudwatch),
            ),
            logs: pick(
                cfg.logs
                    .endpoint_override
                    .as_ref()
                    .map(|u| ("logs.endpoint_override", u)),
                ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &aws.endpoint_url_cloudwatch_logs),
            ),
            sts: {
                let s = pick(None, ("AWS_ENDPOINT_URL_STS", &aws.endpoint_url_sts));
                if s == "default" { "regional".into() } else { s }
            },
        }
    }
}

/// What kinsight knows about its AWS identity: logged at startup, shown by `kinsight check`.
#[derive(Debug, Clone)]
pub struct IdentityReport {
    /// The base identity: the chain link that answered.
    pub kind: IdentityKind,
    /// For `imds`: node role or metadata proxy, from the caller ARN (`None` when unknown).
    pub imds_source: Option<ImdsSource>,
    /// The caller ARN from `sts:GetCallerIdentity` (of the agent-wide identity, so the assumed
    /// role when `agent.credentials.role_arn` is set); empty when that call failed.
    pub arn: String,
    pub account: String,
    pub region: String,
    pub region_source: RegionSource,
    /// Expiry of the agent-wide credentials; `None` for static keys.
    pub expiry: Option<SystemTime>,
    /// When the refresher will next refresh them (mid-jitter estimate).
    pub refresh_at: Option<SystemTime>,
    /// `ASIA` / `AKIA`: the only part of the keys ever shown.
    pub access_key_prefix: String,
    /// IRSA: `AWS_ROLE_ARN`.
    pub role_arn: Option<String>,
    /// IRSA: the token file path (never its content).
    pub token_file: Option<String>,
    /// IRSA: the session name sent to STS.
    pub session_name: Option<String>,
    /// `agent.credentials.role_arn`, assumed on top of the base identity.
    pub agent_role_arn: Option<String>,
    /// `logs.credentials.role_arn`, assumed for CloudWatch Logs only.
    pub logs_role_arn: Option<String>,
    pub endpoints: Endpoints,
    /// Why `GetCallerIdentity` failed, when it did (startup goes on: the kind is known from the
    /// pinned link).
    pub caller_identity_error: Option<String>,
    /// Things worth a WARN besides the kind itself (both IRSA and Pod Identity set…).
    pub warnings: Vec<String>,
    /// Running in a pod (`KUBERNETES_SERVICE_HOST` set).
    pub in_pod: bool,
}

impl IdentityReport {
    /// Whether the identity deserves a WARN: IMDS always; static keys or a profile in a pod.
    pub fn is_fallback(&self) -> bool {
        match self.kind {
            IdentityKind::Imds => true,
            IdentityKind::Environment | IdentityKind::Profile => self.in_pod,
            _ => false,
        }
    }

    /// The explanation that goes with a fallback identity, or `None`.
    pub fn risk(&self) -> Option<String> {
        let fix = "Give the ServiceAccount amazon-cloudwatch/kinsight an IAM role (IRSA or EKS Pod \
                   Identity) and remove the CloudWatch permissions from the node role. Set \
                   kinsight.identity.require_workload_identity to true to refuse this fallback.";
        match self.kind {
            IdentityKind::Imds => Some(format!(
                "using the EC2 instance role from the instance metadata service (no IRSA or Pod Identity found). \
                 Every pod on this node that can reach the metadata service holds these permissions. {fix}"
            )),
            IdentityKind::Environment if self.in_pod => {
                let long_term = if self.access_key_prefix == "AKIA" {
                    " The key is a long-term IAM user key (AKIA…): it never expires and should be rotated and removed."
                } else {
                    ""
                };
                Some(format!(
                    "using static keys from AWS_ACCESS_KEY_ID in a pod: anyone who can read the pod spec holds them.{long_term} {fix}"
                ))
            }
            IdentityKind::Profile if self.in_pod => Some(format!("using an AWS profile in a pod. {fix}")),
            _ => None,
        }
    }

    /// Logs the startup identity line: INFO, or WARN with the explanation for a fallback identity.
    pub fn log(&self) {
        let expires_in = self
            .expiry
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .map_or_else(
                || "never".into(),
                |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
            );
        let refresh_in = self
            .refresh_at
            .and_then(|e| e.duration_since(SystemTime::now()).ok())
            .map_or_else(
                || "-".into(),
                |d| humantime::format_duration(Duration::from_secs(d.as_secs())).to_string(),
            );
        let imds_source = self.imds_source.map_or("-", ImdsSource::as_str);
        macro_rules! line {
            ($level:ident, $msg:expr) => {
                tracing::$level!(
                    kind = self.kind.as_str(),
                    imds_source,
                    arn = %self.arn,
                    account = %self.account,
                    role_arn = self.role_arn.as_deref().unwrap_or("-"),
                    token_file = self.token_file.as_deref().unwrap_or("-"),
                    session_name = self.session_name.as_deref().unwrap_or("-"),
                    agent_role_arn = self.agent_role_arn.as_deref().unwrap_or("-"),
                    logs_role_arn = self.logs_role_arn.as_deref().unwrap_or("-"),
                    access_key = %format!("{}…", self.access_key_prefix),
                    expires_in = %expires_in,
                    refresh_in = %refresh_in,
                    region = %self.region,
                    region_source = self.region_source.as_str(),
                    metrics_endpoint = %self.endpoints.metrics,
                    logs_endpoint = %self.endpoints.logs,
                    sts_endpoint = %self.endpoints.sts,
                    "{}", $msg
                )
            };
        }
        if let Some(risk) = self.risk() {
            line!(warn, risk);
        } else {
            line!(info, "AWS identity");
        }
        if let Some(e) = &self.caller_identity_error {
            tracing::warn!(error = %e, "sts:GetCallerIdentity failed; the identity kind is known from the credential chain, the ARN is not");
        }
        for w in &self.warnings {
            tracing::warn!("{w}");
        }
    }
}

/// Everything the AWS side of kinsight is built from.
#[derive(Debug)]
pub struct AwsContext {
    /// For `CloudWatch` `PutMetricData` (`kinsight.metrics.endpoint_override` applied).
    pub metrics: SdkConfig,
    /// For `ec2:DescribeTags`: the agent-wide identity and region with no kinsight endpoint
    /// override, so that a `ConfigMap` edit of `kinsight.metrics.endpoint_override` cannot send
    /// this signed request elsewhere (`AWS_ENDPOINT_URL_EC2` and `AWS_ENDPOINT_URL`, set in the
    /// DaemonSet, still apply).
    pub ec2: SdkConfig,
    /// For `CloudWatch Logs`: may carry `logs.credentials.role_arn`; `logs.endpoint_override`
    /// applied.
    pub logs: SdkConfig,
    pub report: IdentityReport,
    /// The agent-wide credentials (base, or `agent.credentials.role_arn` on top). `ship` calls
    /// [`Identity::refresh_now`] on `ExpiredToken`-like answers; `/readyz` asks
    /// [`Identity::is_valid`].
    pub identity: Identity,
    /// The `CloudWatch Logs` credentials (the same as `identity` unless `logs.credentials.role_arn`).
    pub logs_identity: Identity,
    /// The identities whose background refresher must run, by task name (`auth::refresh::…`).
    /// Nothing is started here: the supervisor runs [`Identity::refresher`] for each.
    pub refreshers: Vec<(&'static str, Identity)>,
    /// `sts:GetCallerIdentity` failed at startup: retried after each refresh until it succeeds
    /// once (see [`retry_caller_identity`]); for the supervisor to run.
    pub caller_identity_retry: Option<AuthTask>,
}

/// A future of `auth` for the supervisor to run.
pub struct AuthTask(pub std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>);

impl std::fmt::Debug for AuthTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthTask")
    }
}

/// Resolves the region: `agent.region` / `AWS_REGION` (already merged into `cfg.region`),
/// `AWS_DEFAULT_REGION`, the profile, then IMDS unless disabled or `workload_only` (after
/// `agent.region`, the order of aws-config's `DefaultRegionChain`).
pub async fn resolve_region(cfg: &Config, env: &Env) -> Result<(Region, RegionSource), AuthError> {
    if let Some(r) = &cfg.region {
        // The config merged agent.region over AWS_REGION; equal to the variable means it may
        // have come from either, and the variable is then the likelier source.
        let source = if env.aws_region.as_deref() == Some(r.as_str()) {
            RegionSource::AwsRegion
        } else {
            RegionSource::Config
        };
        return Ok((Region::new(r.clone()), source));
    }
    if let Some(r) = &env.aws.default_region {
        return Ok((Region::new(r.clone()), RegionSource::AwsDefaultRegion));
    }
    if let Some(r) = aws_config::profile::region::ProfileFileRegionProvider::new()
        .region()
        .await
    {
        return Ok((r, RegionSource::Profile));
    }
    if cfg.identity.require_workload_identity {
        return Err(AuthError::NoRegion {
            imds: "not asked (require_workload_identity)",
        });
    }
    if env.aws.ec2_metadata_disabled {
        return Err(AuthError::NoRegion { imds: "disabled" });
    }
    match aws_config::imds::region::ImdsRegionProvider::builder()
        .build()
        .region()
        .await
    {
        Some(r) => Ok((r, RegionSource::Imds)),
        None => Err(AuthError::NoRegion { imds: "did not answer" }),
    }
}

/// [`build_with_clock`] with the system clock.
pub async fn build(
    cfg: &Config,
    env: &Env,
    telemetry: &Telemetry,
    cancel: CancellationToken,
) -> Result<AwsContext, AuthError> {
    build_with_clock(cfg, env, telemetry, cancel, Arc::new(SystemClock)).await
}

/// Startup: region, environment inspection, links, first load, identity report, refusal,
/// refresher. The refreshers stop with `cancel`.
#[expect(
    clippy::too_many_lines,
    reason = "the startup sequence, step by step, reads best in one place"
)]
pub async fn build_with_clock(
    cfg: &Config,
    env: &Env,
    telemetry: &Telemetry,
    cancel: CancellationToken,
    clock: Arc<dyn Clock>,
) -> Result<AwsContext, AuthError> {
    let aws = &env.aws;
    let workload_only = cfg.identity.require_workload_identity;
    let irsa_set = aws.role_arn.is_some() && aws.web_identity_token_file.is_some();
    let pod_identity_set = aws.container_credentials_full_uri.is_some();
    // A configuration error: refuse before any network call (never contact IMDS).
    if workload_only && !irsa_set && !pod_identity_set {
        return Err(AuthError::Refused {
            found: found_instead(aws),
        });
    }
    let (region, region_source) = resolve_region(cfg, env).await?;
    let pc = ProviderConfig::default().with_region(Some(region.clone()));
    let session = session_name(
        aws.role_session_name.as_deref(),
        env.host_name.as_deref(),
        Some(cfg.node_name.as_str()),
    );
    let (kind, base) = base_identity(&pc, aws, session.clone(), workload_only, clock.clone(), telemetry).await?;
    let mut warnings = Vec::new();
    if irsa_set && pod_identity_set {
        warnings.push(format!(
            "both IRSA (AWS_ROLE_ARN {}) and EKS Pod Identity (AWS_CONTAINER_CREDENTIALS_FULL_URI) are set up; IRSA \
             wins. Remove the eks.amazonaws.com/role-arn annotation or the pod identity association",
            aws.role_arn.as_deref().unwrap_or_default()
        ));
    }
    if let Some(v) = &aws.sts_regional_endpoints {
        tracing::info!(value = %v, "AWS_STS_REGIONAL_ENDPOINTS is ignored: kinsight always uses the regional STS endpoint");
    }
    let mut refreshers = vec![("auth::refresh::base", base.clone())];
    let base_sdk = sdk_config(&region, &base).await;
    if !env.allow_cross_account_roles {
        check_role_accounts(cfg, kind, aws, &base_sdk).await?;
    }

    let (agent, agent_sdk) = match &cfg.identity.agent_role_arn {
        Some(arn) => {
            let id = assume(
                &base_sdk,
                arn,
                "agent.credentials.role_arn",
                "agent_role",
                session.clone(),
                &clock,
                telemetry,
            )
            .await?;
            refreshers.push(("auth::refresh::agent_role", id.clone()));
            let sdk = sdk_config(&region, &id).await;
            (id, sdk)
        }
        None => (base.clone(), base_sdk),
    };
    let (logs_identity, logs_sdk) = match &cfg.identity.logs_role_arn {
        Some(arn) => {
            let id = assume(
                &agent_sdk,
                arn,
                "logs.credentials.role_arn",
                "logs_role",
                session.clone(),
                &clock,
                telemetry,
            )
            .await?;
            refreshers.push(("auth::refresh::logs_role", id.clone()));
            let sdk = sdk_config(&region, &id).await;
            (id, sdk)
        }
        None => (agent.clone(), agent_sdk.clone()),
    };

    let (arn, caller_identity_error) = caller_identity(&agent_sdk).await;
    let caller_identity_retry = caller_identity_error.is_some().then(|| {
        let retry = retry_caller_identity(&agent, agent_sdk.clone(), kind, cancel.child_token());
        AuthTask(Box::pin(async move {
            let _ = retry.await;
        }))
    });
    let imds_source = (kind == IdentityKind::Imds && !arn.is_empty()).then(|| ImdsSource::from_arn(&arn));
    IdentityInUse {
        kind: kind.as_str(),
        imds_source: imds_source.map_or("none", ImdsSource::as_str),
    }
    .emit(telemetry);
    let report = IdentityReport {
        kind,
        imds_source,
        account: account_of(&arn).unwrap_or_default().to_string(),
        arn,
        region: region.to_string(),
        region_source,
        expiry: agent.expiry(),
        refresh_at: agent.refresh_at(),
        access_key_prefix: agent.access_key_prefix(),
        role_arn: (kind == IdentityKind::Irsa).then(|| aws.role_arn.clone()).flatten(),
        token_file: match kind {
            IdentityKind::Irsa => aws.web_identity_token_file.clone(),
            IdentityKind::PodIdentity => aws.container_authorization_token_file.clone(),
            _ => None,
        },
        session_name: (kind == IdentityKind::Irsa).then_some(session).flatten(),
        agent_role_arn: cfg.identity.agent_role_arn.clone(),
        logs_role_arn: cfg.identity.logs_role_arn.clone(),
        endpoints: Endpoints::resolve(cfg, aws),
        caller_identity_error,
        warnings,
        in_pod: env.kubernetes_service_host.is_some(),
    };
    report.log();
    let ec2 = agent_sdk.clone();
    let metrics = with_endpoint(agent_sdk, cfg.metrics.endpoint_override.as_deref());
    let logs = with_endpoint(logs_sdk, cfg.logs.endpoint_override.as_deref());
    Ok(AwsContext {
        metrics,
        ec2,
        logs,
        report,
        identity: agent,
        logs_identity,
        refreshers,
        caller_identity_retry,
    })
}

/// A role ARN in the `ConfigMap` may only name a role in the base identity's own account:
/// whoever may edit the `ConfigMap` must not be able to point the agent's credentials, and its
/// metrics and logs, at another account. The base account comes from `AWS_ROLE_ARN` for IRSA
/// (no call), else from `sts:GetCallerIdentity` with the base identity (which needs no IAM
/// permission; an STS that does not answer could not assume a role either).
async fn check_role_accounts(
    cfg: &Config,
    kind: IdentityKind,
    aws: &AwsEnv,
    base_sdk: &SdkConfig,
) -> Result<(), AuthError> {
    let roles = [
        ("agent.credentials.role_arn", cfg.identity.agent_role_arn.as_deref()),
        ("logs.credentials.role_arn", cfg.identity.logs_role_arn.as_deref()),
    ];
    let Some((first_key, _)) = roles.iter().find(|(_, arn)| arn.is_some()) else {
        return Ok(());
    };
    let irsa_account = (kind == IdentityKind::Irsa)
        .then(|| aws.role_arn.as_deref().and_then(account_of).map(str::to_owned))
        .flatten();
    let base_account = match irsa_account {
        Some(account) => account,
        None => match caller_identity(base_sdk).await {
            (arn, None) => account_of(&arn).unwrap_or_default().to_owned(),
            (_, Some(message)) => {
                return Err(AuthError::BaseAccountUnknown {
                    key: first_key,
                    message,
                });
            }
        },
    };
    same_account(&roles, &base_account)
}

/// The rule of [`check_role_accounts`], pure.
fn same_account(roles: &[(&'static str, Option<&str>)], base_account: &str) -> Result<(), AuthError> {
    for (key, arn) in roles {
        let Some(arn) = arn else { continue };
        let role_account = account_of(arn).unwrap_or_default();
        if role_account != base_account {
            return Err(AuthError::CrossAccountRole {
                key,
                role_arn: (*arn).to_owned(),
                role_account: role_account.to_owned(),
                base_account: base_account.to_owned(),
            });
        }
    }
    Ok(())
}

/// The base identity: the links of aws-config's `DefaultCredentialsChain`, built from `pc`
/// (region, HTTP client) and `aws`, walked, and the link that answered pinned in an
/// [`Identity`] with its first credentials. Its refresher is not started
/// ([`Identity::spawn_refresher`]). With `workload_only`, only IRSA and the container link are
/// built, and any other kind is refused. [`build_with_clock`] uses it; tests call it with a
/// `ProviderConfig` whose HTTP client reaches a local STS.
pub async fn base_identity(
    pc: &ProviderConfig,
    aws: &AwsEnv,
    session: Option<String>,
    workload_only: bool,
    clock: Arc<dyn Clock>,
    telemetry: &Telemetry,
) -> Result<(IdentityKind, Identity), AuthError> {
    let pinned = chain::walk(chain::links(pc, aws, session, workload_only), aws).await?;
    if workload_only && !pinned.kind.is_workload_identity() {
        return Err(AuthError::RefusedKind { kind: pinned.kind });
    }
    let identity = Identity::new(
        pinned.kind.as_str(),
        "base",
        pinned.provider,
        pinned.first,
        clock,
        telemetry.clone(),
    );
    Ok((pinned.kind, identity))
}

/// `GetCallerIdentity` failed at startup (a private subnet without an STS endpoint,
/// STS briefly down), so it is retried after each successful refresh of `identity` until it
/// succeeds once; that logs the ARN the startup line could not show. The task ends with the ARN,
/// or `None` when `cancel` fires first.
pub fn retry_caller_identity(
    identity: &Identity,
    sdk: SdkConfig,
    kind: IdentityKind,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = Option<String>> + Send + use<> {
    let mut refreshes = identity.refreshes();
    async move {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return None,
                changed = refreshes.changed() => if changed.is_err() { return None },
            }
            match caller_identity(&sdk).await {
                (arn, None) => {
                    let imds_source = (kind == IdentityKind::Imds).then(|| ImdsSource::from_arn(&arn));
                    tracing::info!(
                        kind = kind.as_str(),
                        imds_source = imds_source.map_or("-", ImdsSource::as_str),
                        arn = %arn,
                        account = account_of(&arn).unwrap_or_default(),
                        "sts:GetCallerIdentity succeeded after a credentials refresh"
                    );
                    return Some(arn);
                }
                (_, Some(e)) => {
                    tracing::debug!(error = %e, "sts:GetCallerIdentity still failing; retried after the next refresh");
                }
            }
        }
    }
}

/// One `SdkConfig` over `identity`, with the SDK-side cache off so that every request asks
/// `identity`, which answers from memory. Endpoint variables are read by the loader.
pub async fn sdk_config(region: &Region, identity: &Identity) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(region.clone())
        .credentials_provider(identity.clone())
        .identity_cache(IdentityCache::no_cache())
        .load()
        .await
}

/// A config key's endpoint wins over `AWS_ENDPOINT_URL_*`: marked as set in code,
/// which the service config builders rank above the environment.
fn with_endpoint(sdk: SdkConfig, url: Option<&str>) -> SdkConfig {
    match url {
        None => sdk,
        Some(url) => {
            let mut b = sdk.into_builder();
            b.set_endpoint_url(Some(url.to_string()));
            b.insert_origin("endpoint_url", Origin::shared_config());
            b.build()
        }
    }
}

/// `sts:AssumeRole` of `arn` on top of `base` (`agent.credentials.role_arn`,
/// `logs.credentials.role_arn`), refreshed like the base identity.
async fn assume(
    base: &SdkConfig,
    arn: &str,
    key: &'static str,
    role: &'static str,
    session: Option<String>,
    clock: &Arc<dyn Clock>,
    telemetry: &Telemetry,
) -> Result<Identity, AuthError> {
    let mut b = AssumeRoleProvider::builder(arn).configure(base);
    if let Some(s) = session {
        b = b.session_name(s);
    }
    let provider = b.build().await;
    let first = provider
        .provide_credentials()
        .await
        .map_err(|source| AuthError::AssumeRole {
            key,
            role_arn: arn.to_string(),
            source,
        })?;
    Ok(Identity::new(
        format!("{key} {arn}"),
        role,
        SharedCredentialsProvider::new(provider),
        first,
        clock.clone(),
        telemetry.clone(),
    ))
}

/// `sts:GetCallerIdentity` (needs no permission): the ARN, or why it failed.
async fn caller_identity(sdk: &SdkConfig) -> (String, Option<String>) {
    let sts = aws_sdk_sts::Client::new(sdk);
    match tokio::time::timeout(CALLER_IDENTITY_TIMEOUT, sts.get_caller_identity().send()).await {
        Ok(Ok(out)) => (out.arn().unwrap_or_default().to_string(), None),
        Ok(Err(e)) => (String::new(), Some(crate::telemetry::chain(&e))),
        Err(_) => (
            String::new(),
            Some(format!("no answer within {} s", CALLER_IDENTITY_TIMEOUT.as_secs())),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_in_another_account_is_refused() {
        let same = "arn:aws:iam::123456789012:role/agent";
        let other = "arn:aws:iam::210987654321:role/logs";
        assert!(same_account(&[("agent.credentials.role_arn", Some(same))], "123456789012").is_ok());
        assert!(same_account(&[("agent.credentials.role_arn", None)], "123456789012").is_ok());
        let e = same_account(
            &[
                ("agent.credentials.role_arn", Some(same)),
                ("logs.credentials.role_arn", Some(other)),
            ],
            "123456789012",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "logs.credentials.role_arn arn:aws:iam::210987654321:role/logs is in account 210987654321, not in the \
             base identity's account 123456789012; a role in another account needs \
             KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES=true in the DaemonSet"
        );
        assert_eq!(e.exit_code(), 78);
    }
}
