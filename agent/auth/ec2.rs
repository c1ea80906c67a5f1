//! The instance's EC2 tags through `ec2:DescribeTags`: the cluster name they carry, read as the
//! CloudWatch agent's `GetClusterName` reads it (`translator/translate/otel/common/common.go`),
//! and the Auto Scaling group name.
//!
//! The decision a newcomer would question: this is one hand-made awsQuery request, signed with
//! `aws-sigv4` and sent through the SDK's own HTTP client and orchestrator
//! (`aws_smithy_runtime`'s `Operation`), not an `aws-sdk-ec2` call. That crate is the largest of
//! the SDK (hundreds of operations) and would more than double the AWS build for one call whose
//! request is a form body and whose answer is a dozen lines of XML. Everything used here is
//! already compiled for the other SDK clients.
//!
//! The request is what `CloudWatchAgent`'s translator sends: filters `resource-type=instance` and
//! `resource-id=<instance id>`, paginated by `NextToken`. `DescribeTags` supports no resource-level
//! permissions, so the IAM statement is `ec2:DescribeTags` on `*` (`manifests/iam-policy.json`).
//! The endpoint is resolved as every SDK client resolves its own: an endpoint set in code, then
//! `AWS_ENDPOINT_URL_EC2` (or the profile's `services` section), then `AWS_ENDPOINT_URL`, then the
//! regional `https://ec2.<region>.amazonaws.com`.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime::client::orchestrator::operation::Operation;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::identity::Identity as SigningIdentity;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse, OrchestratorError};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::timeout::TimeoutConfig;
use aws_smithy_xml::decode::{Document, try_data};
use aws_types::SdkConfig;
use aws_types::service_config::ServiceConfigKey;

use super::AuthError;
use crate::config::Env;

/// The tag prefix of the EKS convention: `kubernetes.io/cluster/<name>` = `owned` | `shared`.
pub const CLUSTER_TAG_PREFIX: &str = "kubernetes.io/cluster/";
/// The value that makes a `kubernetes.io/cluster/<name>` tag name this node's cluster (upstream
/// `GetClusterName` accepts only this one; `shared` marks resources several clusters use).
const OWNED: &str = "owned";
/// The Auto Scaling group tag EC2 puts on its instances (absent with Karpenter).
pub const ASG_TAG: &str = "aws:autoscaling:groupName";
/// The EC2 API version of the awsQuery protocol.
const API_VERSION: &str = "2016-11-15";
/// Upstream's start-up attempts (the CloudWatch agent translator's `GetClusterName`): 6, with
/// 0.2/0.4/0.8/1.6/3.2 s between them.
const ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
/// One attempt: EC2 answers `DescribeTags` in tens of milliseconds; an unreachable endpoint (no
/// NAT, no VPC endpoint) must not hold startup for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// An instance carries at most 50 tags (EC2 limit) and a page holds up to 1,000; more pages than
/// this means a server that keeps answering a `NextToken`.
const MAX_PAGES: usize = 10;
/// EC2 error codes worth another attempt (throttling); 5xx and transport errors are retried too.
const RETRYABLE_CODES: [&str; 3] = ["RequestLimitExceeded", "Throttling", "ThrottlingException"];

/// One tag: key and value (an empty value is `""`, as EC2 sends `<value/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// What the `kubernetes.io/cluster/<name>` tags say about this node's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterTag {
    /// A tag `kubernetes.io/cluster/<name>` = `owned`: the cluster name. With several, the
    /// alphabetically first (a WARN names them all).
    Owned(String),
    /// Only tags with another value (`shared`, …): `key=value` each, for the error message.
    NotOwned(Vec<String>),
    /// No `kubernetes.io/cluster/` tag at all.
    Absent,
}

/// Where the cluster name came from (`kinsight check` reports it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterNameFrom {
    /// `logs.metrics_collected.kubernetes.cluster_name`.
    Config,
    /// `K8S_CLUSTER_NAME`.
    Env,
    /// The instance tag `kubernetes.io/cluster/<name>` = `owned`, via `ec2:DescribeTags`.
    InstanceTag,
}

impl ClusterNameFrom {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterNameFrom::Config => "logs.metrics_collected.kubernetes.cluster_name",
            ClusterNameFrom::Env => "K8S_CLUSTER_NAME",
            ClusterNameFrom::InstanceTag => "instance tag kubernetes.io/cluster/<name>=owned",
        }
    }
}

/// The cluster name in upstream's order (`GetClusterName`): `from_config` (the config key), then
/// `K8S_CLUSTER_NAME`, then the instance tag, asked only when `sdk` (AWS is in use) and
/// `instance_id` (IMDS answered) are both known. Otherwise [`AuthError::NoClusterName`], which
/// names the three ways and why the tag did not give one.
pub async fn resolve_cluster_name(
    from_config: Option<&str>,
    env: &Env,
    sdk: Option<&SdkConfig>,
    instance_id: Option<&str>,
) -> Result<(String, ClusterNameFrom), AuthError> {
    if let Some(name) = from_config.filter(|n| !n.is_empty()) {
        return Ok((name.to_string(), ClusterNameFrom::Config));
    }
    if let Some(name) = env.k8s_cluster_name.as_deref() {
        return Ok((name.to_string(), ClusterNameFrom::Env));
    }
    let why = match (sdk, instance_id) {
        (None, _) => "not asked (no AWS configuration: a local output)".to_string(),
        (Some(_), None) => "not asked (IMDS gave no instance id)".to_string(),
        (Some(sdk), Some(id)) => match describe_instance_tags(sdk, id).await {
            Err(e) => e.to_string(),
            Ok(tags) => match cluster_tag(&tags) {
                ClusterTag::Owned(name) => return Ok((name, ClusterNameFrom::InstanceTag)),
                ClusterTag::NotOwned(found) => format!("{id} has {} but none with the value `owned`", found.join(", ")),
                ClusterTag::Absent => format!("{id} has no {CLUSTER_TAG_PREFIX}<name> tag"),
            },
        },
    };
    Err(AuthError::NoClusterName { tag: why })
}

/// The cluster name from the instance's `kubernetes.io/cluster/<name>` = `owned` tag: `None` when
/// there is no such tag (see [`cluster_tag`] for the details), an error when `DescribeTags` fails
/// (`AccessDenied` is `UnauthorizedOperation` in EC2's words).
pub async fn cluster_name_from_tags(sdk: &SdkConfig, instance_id: &str) -> Result<Option<String>, AuthError> {
    let tags = describe_instance_tags(sdk, instance_id).await?;
    Ok(match cluster_tag(&tags) {
        ClusterTag::Owned(name) => Some(name),
        ClusterTag::NotOwned(_) | ClusterTag::Absent => None,
    })
}

/// Reads the cluster out of `tags`: the names of the `kubernetes.io/cluster/<name>`
/// tags whose value is `owned`. Several: the alphabetically first, with a WARN naming all.
/// A name that cannot be part of a log group name is skipped with a WARN.
pub fn cluster_tag(tags: &[Tag]) -> ClusterTag {
    let mut owned = Vec::new();
    let mut other = Vec::new();
    for t in tags {
        let Some(name) = t.key.strip_prefix(CLUSTER_TAG_PREFIX) else {
            continue;
        };
        if t.value != OWNED {
            other.push(format!("{}={}", t.key, t.value));
        } else if usable_cluster_name(name) {
            owned.push(name.to_string());
        } else {
            tracing::warn!(tag = %t.key, "instance tag names a cluster that cannot be part of a log group name; ignored");
            other.push(format!("{}={} (not a usable name)", t.key, t.value));
        }
    }
    owned.sort();
    owned.dedup();
    match owned.len() {
        0 if other.is_empty() => ClusterTag::Absent,
        0 => ClusterTag::NotOwned(other),
        1 => ClusterTag::Owned(owned.swap_remove(0)),
        _ => {
            tracing::warn!(
                clusters = %owned.join(", "),
                chosen = %owned[0],
                "the instance carries several {CLUSTER_TAG_PREFIX}<name>=owned tags; using the first in \
                 alphabetical order. Set logs.metrics_collected.kubernetes.cluster_name to choose"
            );
            ClusterTag::Owned(owned.swap_remove(0))
        }
    }
}

/// Whether `name` can be the `<cluster>` of `/aws/containerinsights/<cluster>/…`: CloudWatch Logs
/// group names allow `[.\-_/#A-Za-z0-9]`, up to 512 characters with the 35 of the fixed parts.
fn usable_cluster_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 477
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'))
}

/// The instance's tags (`ec2:DescribeTags`, filters `resource-type=instance` and
/// `resource-id=<instance_id>`, every page), with up to [`ATTEMPTS`] attempts on throttling,
/// 5xx and transport errors. The credentials, region and HTTP client are `sdk`'s.
pub async fn describe_instance_tags(sdk: &SdkConfig, instance_id: &str) -> Result<Vec<Tag>, AuthError> {
    let call = |message: String| AuthError::Call {
        operation: "ec2:DescribeTags",
        message,
    };
    let region = sdk.region().ok_or_else(|| call("no AWS region".into()))?.to_string();
    let provider = sdk
        .credentials_provider()
        .ok_or_else(|| call("no AWS credentials provider".into()))?;
    let creds = aws_credential_types::provider::ProvideCredentials::provide_credentials(&provider)
        .await
        .map_err(|e| call(format!("no AWS credentials: {}", crate::telemetry::chain(&e))))?;
    let endpoint = ec2_endpoint(sdk, &region);
    let operation = operation(sdk, &endpoint, SigningIdentity::from(creds), region);
    let mut tags = Vec::new();
    let mut next: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut body = format!(
            "Action=DescribeTags&Version={API_VERSION}&Filter.1.Name=resource-type&Filter.1.Value.1=instance\
             &Filter.2.Name=resource-id&Filter.2.Value.1={}",
            encode(instance_id)
        );
        if let Some(token) = &next {
            body.push_str("&NextToken=");
            body.push_str(&encode(token));
        }
        let page = page_with_retries(&operation, &body).await.map_err(call)?;
        tags.extend(page.tags);
        if page.next_token.is_none() {
            tracing::debug!(instance_id, endpoint = %endpoint, tags = tags.len(), "ec2:DescribeTags");
            return Ok(tags);
        }
        next = page.next_token;
    }
    Err(call(format!("more than {MAX_PAGES} pages of tags for one instance")))
}

/// One page of `DescribeTags`.
#[derive(Debug)]
struct Page {
    tags: Vec<Tag>,
    next_token: Option<String>,
}

/// An error answer from EC2 (`<Response><Errors><Error><Code>…`).
#[derive(Debug, thiserror::Error)]
#[error("HTTP {status}: {code}: {message}")]
struct Fault {
    status: u16,
    code: String,
    message: String,
}

type DescribeTags = Operation<String, Page, Fault>;

/// One page, retried like upstream's start-up lookup ([`ATTEMPTS`]). The error is one line.
async fn page_with_retries(operation: &DescribeTags, body: &str) -> Result<Page, String> {
    let mut delay = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let (message, retry) = match operation.invoke(body.to_string()).await {
            Ok(page) => return Ok(page),
            Err(SdkError::ServiceError(e)) => {
                let fault = e.into_err();
                let retry = fault.status >= 500 || RETRYABLE_CODES.contains(&fault.code.as_str());
                (fault.to_string(), retry)
            }
            Err(e @ (SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_))) => {
                (crate::telemetry::chain(&e), true)
            }
            Err(e) => (crate::telemetry::chain(&e), false),
        };
        if !retry || attempt >= ATTEMPTS {
            return Err(if attempt > 1 {
                format!("{message} (after {attempt} attempts)")
            } else {
                message
            });
        }
        tracing::debug!(attempt, error = %message, "ec2:DescribeTags failed; retrying");
        tokio::time::sleep(delay).await;
        delay *= 2;
        attempt += 1;
    }
}

/// The `DescribeTags` operation: a form POST to `endpoint`, signed by [`Sign`] right before it
/// is sent, parsed by [`parse_page`]. No SDK retries: [`page_with_retries`] does upstream's.
fn operation(sdk: &SdkConfig, endpoint: &str, identity: SigningIdentity, region: String) -> DescribeTags {
    let mut builder = Operation::builder()
        .service_name("ec2")
        .operation_name("DescribeTags")
        .endpoint_url(endpoint)
        .no_auth()
        .no_retry()
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        )
        .interceptor(Sign { identity, region });
    if let Some(client) = sdk.http_client() {
        builder = builder.http_client(client);
    }
    if let Some(sleep) = sdk.sleep_impl() {
        builder = builder.sleep_impl(sleep);
    }
    if let Some(time) = sdk.time_source() {
        builder = builder.time_source(time);
    }
    builder
        .serializer(|body: String| {
            let mut req = HttpRequest::new(SdkBody::from(body));
            req.set_method("POST")?;
            req.headers_mut()
                .try_insert("content-type", "application/x-www-form-urlencoded; charset=utf-8")?;
            Ok(req)
        })
        .deserializer(|resp: &HttpResponse| {
            let status = resp.status().as_u16();
            let text = String::from_utf8_lossy(resp.body().bytes().unwrap_or_default());
            if resp.status().is_success() {
                parse_page(&text).map_err(|e| {
                    OrchestratorError::operation(Fault {
                        status,
                        code: "UnparsableResponse".into(),
                        message: e,
                    })
                })
            } else {
                Err(OrchestratorError::operation(fault(status, &text)))
            }
        })
        .build()
}

/// Signs the request once it has its final URL, on every attempt (`SigV4`, service `ec2`).
struct Sign {
    identity: SigningIdentity,
    region: String,
}

impl std::fmt::Debug for Sign {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the identity: its Debug prints the whole access key ID.
        f.debug_struct("Sign")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Intercept for Sign {
    fn name(&self) -> &'static str {
        "kinsight.ec2.sigv4"
    }

    fn modify_before_transmit(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let now = runtime_components
            .time_source()
            .map_or_else(SystemTime::now, |t| t.now());
        let req = context.request_mut();
        let body = req
            .body()
            .bytes()
            .ok_or("the DescribeTags body is not in memory")?
            .to_vec();
        let headers: Vec<(String, String)> = req
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signable = SignableRequest::new(
            req.method(),
            req.uri(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(&body),
        )?;
        let params = v4::SigningParams::builder()
            .identity(&self.identity)
            .region(&self.region)
            .name("ec2")
            .time(now)
            .settings(SigningSettings::default())
            .build()?
            .into();
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let signed: Vec<(String, String)> = instructions
            .headers()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        for (name, value) in signed {
            req.headers_mut().try_insert(name, value)?;
        }
        Ok(())
    }
}

/// The EC2 endpoint, resolved like the SDK clients resolve theirs (`aws-sdk-*`'s
/// `From<&SdkConfig>`): set in code, then `AWS_ENDPOINT_URL_EC2` / the profile, then
/// `AWS_ENDPOINT_URL`, then regional.
fn ec2_endpoint(sdk: &SdkConfig, region: &str) -> String {
    if sdk.get_origin("endpoint_url").is_client_config()
        && let Some(url) = sdk.endpoint_url()
    {
        return url.to_string();
    }
    let specific = ServiceConfigKey::builder()
        .service_id("EC2")
        .env("AWS_ENDPOINT_URL")
        .profile("endpoint_url")
        .build()
        .ok()
        .and_then(|key| sdk.service_config().and_then(|c| c.load_config(key)));
    if let Some(url) = specific.or_else(|| sdk.endpoint_url().map(str::to_string)) {
        return url;
    }
    regional_endpoint(region)
}

/// `https://ec2.<region>.amazonaws.com` (`.amazonaws.com.cn` in the China regions).
pub fn regional_endpoint(region: &str) -> String {
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://ec2.{region}.{suffix}")
}

/// Percent-encoding of a form value (RFC 3986 unreserved characters kept).
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// `<DescribeTagsResponse><tagSet><item><key>…</key><value>…</value>…</item>…</tagSet>
/// <nextToken>…</nextToken></DescribeTagsResponse>`.
fn parse_page(xml: &str) -> Result<Page, String> {
    let mut doc = Document::new(xml);
    let mut root = doc.root_element().map_err(|e| e.to_string())?;
    if !root.start_el().matches("DescribeTagsResponse") {
        return Err(format!("unexpected answer <{}>", root.start_el().local()));
    }
    let mut page = Page {
        tags: Vec::new(),
        next_token: None,
    };
    while let Some(mut el) = root.next_tag() {
        if el.start_el().matches("tagSet") {
            while let Some(mut item) = el.next_tag() {
                if !item.start_el().matches("item") {
                    continue;
                }
                let (mut key, mut value) = (None, String::new());
                while let Some(mut field) = item.next_tag() {
                    if field.start_el().matches("key") {
                        key = Some(try_data(&mut field).map_err(|e| e.to_string())?.into_owned());
                    } else if field.start_el().matches("value") {
                        value = try_data(&mut field).map_err(|e| e.to_string())?.into_owned();
                    }
                }
                if let Some(key) = key {
                    page.tags.push(Tag { key, value });
                }
            }
        } else if el.start_el().matches("nextToken") {
            let token = try_data(&mut el).map_err(|e| e.to_string())?;
            if !token.trim().is_empty() {
                page.next_token = Some(token.trim().to_string());
            }
        }
    }
    Ok(page)
}

/// An EC2 error answer: `<Response><Errors><Error><Code>…</Code><Message>…</Message>`; anything
/// else keeps its status and the start of its body.
fn fault(status: u16, body: &str) -> Fault {
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let len = body[start..].find(close)?;
        Some(body[start..start + len].trim().to_string())
    };
    match between("<Code>", "</Code>") {
        Some(code) => Fault {
            status,
            code,
            message: between("<Message>", "</Message>").unwrap_or_default(),
        },
        None => Fault {
            status,
            code: "Unknown".into(),
            message: body.chars().take(200).collect(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> Tag {
        Tag {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn the_owned_cluster_tag_names_the_cluster() {
        let tags = [
            tag("Name", "node"),
            tag(ASG_TAG, "eks-ng-1"),
            tag("kubernetes.io/cluster/shared-one", "shared"),
            tag("kubernetes.io/cluster/prod", "owned"),
        ];
        assert_eq!(cluster_tag(&tags), ClusterTag::Owned("prod".into()));
        assert_eq!(cluster_tag(&tags[..2]), ClusterTag::Absent);
        assert_eq!(
            cluster_tag(&tags[..3]),
            ClusterTag::NotOwned(vec!["kubernetes.io/cluster/shared-one=shared".into()])
        );
        // Several owned: the alphabetically first, whatever the order EC2 answers in.
        let two = [
            tag("kubernetes.io/cluster/zeta", "owned"),
            tag("kubernetes.io/cluster/alpha", "owned"),
        ];
        assert_eq!(cluster_tag(&two), ClusterTag::Owned("alpha".into()));
        // A name no log group can carry is not used.
        let bad = [tag("kubernetes.io/cluster/bad name", "owned")];
        assert!(matches!(cluster_tag(&bad), ClusterTag::NotOwned(_)));
        assert_eq!(
            cluster_tag(&[tag("kubernetes.io/cluster/", "owned")]),
            ClusterTag::NotOwned(vec!["kubernetes.io/cluster/=owned (not a usable name)".into()])
        );
    }

    #[test]
    fn pages_and_errors_parse() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<DescribeTagsResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
   <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId>
   <tagSet>
      <item><resourceId>i-1</resourceId><resourceType>instance</resourceType><key>kubernetes.io/cluster/a&amp;b</key><value>owned</value></item>
      <item><resourceId>i-1</resourceId><resourceType>instance</resourceType><key>empty</key><value/></item>
   </tagSet>
   <nextToken>abc+/=</nextToken>
</DescribeTagsResponse>"#;
        let page = parse_page(xml).unwrap();
        assert_eq!(
            page.tags,
            vec![tag("kubernetes.io/cluster/a&b", "owned"), tag("empty", "")]
        );
        assert_eq!(page.next_token.as_deref(), Some("abc+/="));
        assert!(parse_page("<Other/>").is_err());
        assert!(parse_page("not xml").is_err());
        let f = fault(
            403,
            "<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not authorized to perform this operation.</Message></Error></Errors><RequestID>x</RequestID></Response>",
        );
        assert_eq!(f.code, "UnauthorizedOperation");
        assert_eq!(
            f.to_string(),
            "HTTP 403: UnauthorizedOperation: You are not authorized to perform this operation."
        );
        assert_eq!(fault(502, "bad gateway").code, "Unknown");
    }

    #[test]
    fn encoding_and_endpoints() {
        assert_eq!(encode("i-0123abc"), "i-0123abc");
        assert_eq!(encode("a+b/c=d e"), "a%2Bb%2Fc%3Dd%20e");
        assert_eq!(regional_endpoint("eu-west-1"), "https://ec2.eu-west-1.amazonaws.com");
        assert_eq!(
            regional_endpoint("cn-north-1"),
            "https://ec2.cn-north-1.amazonaws.com.cn"
        );
    }
}
