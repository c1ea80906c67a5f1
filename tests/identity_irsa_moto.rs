//! IRSA in-process against `moto_server` (issue #4 tests): kinsight's own
//! chain ([`auth::base_identity`]) with its STS client routed to moto, for two things a
//! `kinsight check` run cannot show:
//! - token rotation by symlink swap, as kubelet's projected volume does it: every refresh sends
//!   the token the file holds *then* (moto's recording);
//! - moto's IAM-enforcing mode: a role without kinsight's policy is refused `PutLogEvents`,
//!   `PutMetricData` and `DescribeTags`; the role with `manifests/iam-policy.json` is allowed.
//!
//! The chain's STS client ignores endpoints set in code on the `ConfigLoader`, and a test cannot
//! set the process environment, so the web-identity link gets a `ProviderConfig` whose HTTP client
//! sends every request to moto ([`ToMoto`]); it also records which host the SDK asked for.

mod support;

use std::fmt::Write as _;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::provider_config::ProviderConfig;
use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_types::region::Region;
use kinsight::auth::{self, Identity, IdentityKind};
use kinsight::config::AwsEnv;
use kinsight::host::Clock;
use kinsight::telemetry::Telemetry;
use serde_json::Value;
use support::{FAKE_SIGV4_AUTHORIZATION, Moto, http_request};
use tempfile::TempDir;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "123456789012";
const CLUSTER: &str = "test-cluster";
const SESSION: &str = "kinsight-ip-10-0-1-23.ec2.internal";
const WAIT: Duration = Duration::from_secs(20);

/// An HTTP client that sends every request to moto, keeping path and query; the host the SDK
/// meant is recorded.
#[derive(Debug, Clone)]
struct ToMoto {
    inner: SharedHttpClient,
    base: String,
    asked_for: Arc<Mutex<Vec<String>>>,
}

impl ToMoto {
    fn new(base: &str) -> ToMoto {
        ToMoto {
            inner: aws_smithy_http_client::Builder::new()
                .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                    aws_smithy_http_client::tls::rustls_provider::CryptoMode::AwsLc,
                ))
                .build_https(),
            base: base.to_string(),
            asked_for: Arc::default(),
        }
    }
}

impl HttpClient for ToMoto {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        SharedHttpConnector::new(ToMotoConnector {
            inner: self.inner.http_connector(settings, components),
            base: self.base.clone(),
            asked_for: self.asked_for.clone(),
        })
    }
}

#[derive(Debug)]
struct ToMotoConnector {
    inner: SharedHttpConnector,
    base: String,
    asked_for: Arc<Mutex<Vec<String>>>,
}

impl HttpConnector for ToMotoConnector {
    fn call(&self, mut request: HttpRequest) -> HttpConnectorFuture {
        let uri = request.uri().to_string();
        let after_scheme = uri.split_once("://").map_or(uri.as_str(), |(_, rest)| rest);
        let (host, path) = after_scheme.split_at(after_scheme.find('/').unwrap_or(after_scheme.len()));
        self.asked_for.lock().unwrap().push(host.to_string());
        let path = if path.is_empty() { "/" } else { path };
        request.set_uri(format!("{}{path}", self.base)).expect("moto URL");
        self.inner.call(request)
    }
}

/// Wall time as the system's; monotonic time that a test can move forward (the forced-refresh
/// debounce reads it).
#[derive(Debug, Default)]
struct SteppedClock {
    ahead: Mutex<Duration>,
}

impl SteppedClock {
    fn step(&self, by: Duration) {
        *self.ahead.lock().unwrap() += by;
    }
}

impl Clock for SteppedClock {
    fn wall_ms(&self) -> i64 {
        kinsight::host::SystemClock.wall_ms()
    }
    fn monotonic(&self) -> Instant {
        Instant::now() + *self.ahead.lock().unwrap()
    }
}

fn b64url(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A token that looks like a projected service-account token, with `marker` in its signature
/// part (JWT characters only: it travels unescaped in the form body).
fn token(marker: &str) -> String {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    format!(
        "{}.{}.sig-{marker}",
        b64url(br#"{"alg":"RS256","kid":"test"}"#),
        b64url(
            serde_json::json!({
                "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/TEST",
                "sub": "system:serviceaccount:amazon-cloudwatch:kinsight",
                "aud": ["sts.amazonaws.com"], "iat": now, "exp": now + 86_400,
            })
            .to_string()
            .as_bytes()
        )
    )
}

/// kubelet's projected volume layout (`AtomicWriter`): `token -> ..data/token`,
/// `..data -> ..<timestamp>`; an update writes a new timestamped directory and renames a new
/// `..data` symlink over the old one, so readers see the old or the new token, never a mix.
struct ProjectedVolume {
    dir: PathBuf,
    generation: u32,
}

impl ProjectedVolume {
    fn new(dir: &Path, first: &str) -> ProjectedVolume {
        let mut v = ProjectedVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.swap(first);
        symlink("..data/token", dir.join("token")).expect("token symlink");
        v
    }

    fn swap(&mut self, token: &str) {
        self.generation += 1;
        let ts = format!("..2026_11_29_03_00_0{}.{}", self.generation, 100 + self.generation);
        std::fs::create_dir(self.dir.join(&ts)).expect("timestamped dir");
        std::fs::write(self.dir.join(&ts).join("token"), token).expect("write token");
        symlink(&ts, self.dir.join("..data_tmp")).expect("..data_tmp");
        std::fs::rename(self.dir.join("..data_tmp"), self.dir.join("..data")).expect("rename ..data");
    }

    fn path(&self) -> PathBuf {
        self.dir.join("token")
    }
}

fn recording(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("recording line is JSON"))
        .collect()
}

fn body_of(entry: &Value) -> String {
    let body = entry["body"].as_str().unwrap_or_default();
    if entry["body_encoded"] == true {
        String::from_utf8_lossy(&aws_smithy_types::base64::decode(body).unwrap_or_default()).into_owned()
    } else {
        body.to_string()
    }
}

/// The `WebIdentityToken` of every `AssumeRoleWithWebIdentity` moto has seen, in order.
fn tokens_sent(rec: &Path) -> Vec<String> {
    recording(rec)
        .iter()
        .map(body_of)
        .filter(|b| b.contains("Action=AssumeRoleWithWebIdentity"))
        .filter_map(|b| {
            b.split('&')
                .find_map(|kv| kv.strip_prefix("WebIdentityToken=").map(str::to_string))
        })
        .collect()
}

/// Polls `cond` every 20 ms until it holds or `WAIT` has passed.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cond()
}

fn irsa_env(role: &str, token_file: &Path) -> AwsEnv {
    AwsEnv {
        role_arn: Some(format!("arn:aws:iam::{ACCOUNT}:role/{role}")),
        web_identity_token_file: Some(token_file.display().to_string()),
        ..AwsEnv::default()
    }
}

/// The pinned IRSA identity from kinsight's chain (workload identities only, so nothing in the
/// test process's environment can answer first), its STS calls going to moto.
async fn irsa_identity(to_moto: &ToMoto, aws: &AwsEnv, clock: Arc<dyn Clock>) -> Identity {
    let pc = ProviderConfig::default()
        .with_region(Some(Region::new(REGION)))
        .with_http_client(to_moto.clone());
    let (kind, identity) = auth::base_identity(&pc, aws, Some(SESSION.into()), true, clock, &Telemetry::new())
        .await
        .expect("IRSA against moto");
    assert_eq!(kind, IdentityKind::Irsa);
    identity
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn irsa_token_rotated_by_symlink_swap_is_sent_at_the_next_refresh() {
    let dir = TempDir::new().unwrap();
    let rec = dir.path().join("moto-recording.jsonl");
    let rec_s = rec.to_str().unwrap().to_string();
    let Some(moto) = Moto::start_with(&[("MOTO_ENABLE_RECORDING", "True"), ("MOTO_RECORDER_FILEPATH", &rec_s)]) else {
        return;
    };
    let volume_dir = dir.path().join("eks.amazonaws.com-serviceaccount");
    std::fs::create_dir(&volume_dir).unwrap();
    let (first, second, third) = (token("first"), token("second"), token("third"));
    let mut volume = ProjectedVolume::new(&volume_dir, &first);
    let to_moto = ToMoto::new(&moto.endpoint);
    let clock = Arc::new(SteppedClock::default());
    let identity = irsa_identity(&to_moto, &irsa_env("kinsight", &volume.path()), clock.clone()).await;
    let cancel = CancellationToken::new();
    tokio::spawn(identity.refresher(cancel.clone()));
    assert_eq!(
        tokens_sent(&rec),
        vec![first.clone()],
        "the first load sent the first token"
    );
    let key_1 = identity.current().expect("valid").access_key_id().to_string();
    // The STS the SDK chose is the regional one (the Rust SDK always uses it), routed here to moto.
    assert_eq!(
        to_moto.asked_for.lock().unwrap().first().map(String::as_str),
        Some("sts.us-east-1.amazonaws.com")
    );

    // kubelet rotates the token; the next refresh sends the new content.
    volume.swap(&second);
    assert!(identity.refresh_now("test: token rotated"));
    assert!(
        eventually(|| tokens_sent(&rec).len() >= 2).await,
        "no second AssumeRoleWithWebIdentity: {:?}",
        tokens_sent(&rec)
    );
    assert_eq!(tokens_sent(&rec), vec![first.clone(), second.clone()]);
    assert!(
        eventually(|| identity.current().is_ok_and(|c| c.access_key_id() != key_1)).await,
        "the refreshed credentials are served"
    );

    // Once more, past the forced-refresh debounce (moved on, not slept through).
    volume.swap(&third);
    assert!(
        !identity.refresh_now("test: within the debounce"),
        "a second forced refresh within 30 s is debounced"
    );
    clock.step(auth::FORCE_DEBOUNCE);
    assert!(identity.refresh_now("test: token rotated again"));
    assert!(eventually(|| tokens_sent(&rec).len() >= 3).await);
    assert_eq!(tokens_sent(&rec), vec![first, second, third]);
    cancel.cancel();
}

/// One IAM query call to moto inside its no-auth budget (the signature is not checked there).
fn iam_call(moto: &Moto, params: &[(&str, &str)]) {
    let mut body = String::from("Version=2010-05-08");
    for (k, v) in params {
        let _ = write!(body, "&{k}={}", enc(v));
    }
    let auth = FAKE_SIGV4_AUTHORIZATION.replace("/logs/", "/iam/");
    let (status, text) = http_request(
        "POST",
        &moto.url("/"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", &auth),
        ],
        body,
    );
    assert_eq!(status, 200, "IAM {params:?}: {text}");
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `manifests/iam-policy.json` and `iam-policy-optional.json` with the placeholders filled, adapted to what moto 5.2.5 can
/// evaluate (README "Testing the policy against moto"): `monitoring:` twins of the
/// `cloudwatch:` actions (moto checks the endpoint prefix), and `*` as every statement's resource
/// (moto authorises Logs and CloudWatch calls against `*` only, so a log-group ARN never matches
/// there). The actions are the manifest's own; its resource and condition scoping is checked by
/// `tests/identity_policy.rs` instead.
fn policy_for_moto() -> String {
    // The required policy and the optional statements (this test asks DescribeTags).
    let read = |file: &str| {
        let text = std::fs::read_to_string(format!("{}/manifests/{file}", env!("CARGO_MANIFEST_DIR")))
            .expect("read the policy")
            .replace("<region>", REGION)
            .replace("<account>", ACCOUNT)
            .replace("<cluster>", CLUSTER);
        serde_json::from_str::<Value>(&text).expect("the policy is JSON")
    };
    let mut policy = read("iam-policy.json");
    let optional = read("iam-policy-optional.json");
    let extra = optional["Statement"].as_array().expect("statements").clone();
    policy["Statement"].as_array_mut().expect("statements").extend(extra);
    for s in policy["Statement"].as_array_mut().expect("statements") {
        let actions: Vec<String> = match &s["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
            _ => Vec::new(),
        };
        let mut all = actions.clone();
        all.extend(
            actions
                .iter()
                .filter_map(|a| a.strip_prefix("cloudwatch:").map(|op| format!("monitoring:{op}"))),
        );
        s["Action"] = serde_json::json!(all);
        s["Resource"] = serde_json::json!("*");
    }
    policy.to_string()
}

/// `PutMetricData` as awsQuery (what moto routes; the current SDK speaks rpc-v2-cbor, which moto
/// has no route for), `SigV4`-signed with `creds` for service `monitoring`.
fn put_metric_data_query(moto: &Moto, creds: &Credentials) -> (u16, String) {
    let body = "Action=PutMetricData&Version=2010-08-01&Namespace=ContainerInsights\
                &MetricData.member.1.MetricName=node_cpu_utilization&MetricData.member.1.Value=1";
    let url = moto.url("/");
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("monitoring")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .expect("signing params")
        .into();
    let signable = SignableRequest::new(
        "POST",
        url.as_str(),
        [("content-type", content_type)].into_iter(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    let mut headers: Vec<(&str, &str)> = instructions.headers().collect();
    headers.push(("Content-Type", content_type));
    http_request("POST", &url, &headers, body)
}

/// The status and body of a failed SDK call's raw response (moto answers in XML, so the SDK's
/// error code is not reliable here).
fn raw<E>(
    e: &aws_smithy_runtime_api::client::result::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> (u16, String) {
    let resp = e.raw_response().expect("a response");
    (
        resp.status().as_u16(),
        String::from_utf8_lossy(resp.body().bytes().unwrap_or_default()).into_owned(),
    )
}

struct Role {
    identity: Identity,
    logs: aws_sdk_cloudwatchlogs::Client,
    sts: aws_sdk_sts::Client,
    ec2: aws_types::SdkConfig,
}

async fn role(moto: &Moto, to_moto: &ToMoto, name: &str, token_file: &Path) -> Role {
    let identity = irsa_identity(
        to_moto,
        &irsa_env(name, token_file),
        Arc::new(kinsight::host::SystemClock),
    )
    .await;
    // moto checks signatures over the decompressed body: no gzip.
    let sdk = auth::sdk_config(&Region::new(REGION), &identity)
        .await
        .into_builder()
        .disable_request_compression(true)
        .build();
    let logs = aws_sdk_cloudwatchlogs::Client::from_conf(
        aws_sdk_cloudwatchlogs::config::Builder::from(&sdk)
            .endpoint_url(&moto.endpoint)
            .build(),
    );
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&sdk)
            .endpoint_url(&moto.endpoint)
            .build(),
    );
    let mut ec2 = sdk.into_builder();
    ec2.set_endpoint_url(Some(moto.endpoint.clone()));
    Role {
        identity,
        logs,
        sts,
        ec2: ec2.build(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_iam_enforcement_denies_a_role_without_the_policy_and_allows_the_shipped_policy() {
    // Five unchecked requests: CreateRole ×2 and PutRolePolicy (the setup), then the two unsigned
    // AssumeRoleWithWebIdentity calls; everything after is signature- and policy-checked.
    let Some(moto) = Moto::start_with(&[("INITIAL_NO_AUTH_ACTION_COUNT", "5")]) else {
        return;
    };
    let dir = TempDir::new().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token("iam")).unwrap();
    let trust = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Principal": { "Federated": format!("arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/TEST") },
            "Action": "sts:AssumeRoleWithWebIdentity",
        }]
    })
    .to_string();
    for name in ["kinsight-without-policy", "kinsight"] {
        iam_call(
            &moto,
            &[
                ("Action", "CreateRole"),
                ("RoleName", name),
                ("AssumeRolePolicyDocument", &trust),
            ],
        );
    }
    iam_call(
        &moto,
        &[
            ("Action", "PutRolePolicy"),
            ("RoleName", "kinsight"),
            ("PolicyName", "kinsight"),
            ("PolicyDocument", &policy_for_moto()),
        ],
    );
    let to_moto = ToMoto::new(&moto.endpoint);
    let without = role(&moto, &to_moto, "kinsight-without-policy", &token_file).await;
    let with = role(&moto, &to_moto, "kinsight", &token_file).await;

    // The budget is spent: from here moto checks every signature and policy.
    for (r, name) in [(&without, "kinsight-without-policy"), (&with, "kinsight")] {
        let me = r
            .sts
            .get_caller_identity()
            .send()
            .await
            .expect("GetCallerIdentity needs no permission");
        assert_eq!(
            me.arn(),
            Some(format!("arn:aws:sts::{ACCOUNT}:assumed-role/{name}/{SESSION}").as_str())
        );
    }
    assert_denied_everything(&moto, &without).await;
    assert_allowed_what_kinsight_does(&moto, &with).await;
}

/// The application log group of [`CLUSTER`].
const GROUP: &str = "/aws/containerinsights/test-cluster/application";

fn event() -> aws_sdk_cloudwatchlogs::types::InputLogEvent {
    aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(kinsight::host::SystemClock.wall_ms())
        .message(r#"{"log":"hello"}"#)
        .build()
        .expect("event")
}

/// The role without kinsight's policy: `AccessDenied` for each of kinsight's writes.
async fn assert_denied_everything(moto: &Moto, without: &Role) {
    let e = without
        .logs
        .put_log_events()
        .log_group_name(GROUP)
        .log_stream_name("node-1")
        .log_events(event())
        .send()
        .await
        .expect_err("PutLogEvents without the policy");
    let (status, body) = raw(&e);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("AccessDenied") && body.contains("is not authorized to perform: logs:PutLogEvents"),
        "{body}"
    );
    let (status, body) = put_metric_data_query(moto, &without.identity.current().unwrap());
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("AccessDenied") && body.contains("is not authorized to perform: monitoring:PutMetricData"),
        "{body}"
    );
    let e = auth::describe_instance_tags(&without.ec2, "i-0123456789abcdef0")
        .await
        .expect_err("DescribeTags without the policy");
    assert!(e.to_string().contains("HTTP 403: AccessDenied"), "{e}");
}

/// The role with the shipped policy: the same calls succeed (and moto checked their signatures,
/// kinsight's hand-signed `DescribeTags` included); what the policy lacks is still refused.
async fn assert_allowed_what_kinsight_does(moto: &Moto, with: &Role) {
    with.logs
        .create_log_group()
        .log_group_name(GROUP)
        .send()
        .await
        .expect("CreateLogGroup with the policy");
    with.logs
        .create_log_stream()
        .log_group_name(GROUP)
        .log_stream_name("node-1")
        .send()
        .await
        .expect("CreateLogStream with the policy");
    with.logs
        .put_log_events()
        .log_group_name(GROUP)
        .log_stream_name("node-1")
        .log_events(event())
        .send()
        .await
        .expect("PutLogEvents with the policy");
    let (status, body) = put_metric_data_query(moto, &with.identity.current().unwrap());
    assert_eq!(status, 200, "PutMetricData with the policy: {body}");
    assert_eq!(
        auth::describe_instance_tags(&with.ec2, "i-0123456789abcdef0")
            .await
            .expect("DescribeTags with the policy"),
        Vec::new()
    );
    // A policy the role lacks is still refused: the check is real, not a blanket allow.
    let e = with
        .logs
        .describe_log_groups()
        .send()
        .await
        .expect_err("DescribeLogGroups is not in the policy");
    let (status, body) = raw(&e);
    assert_eq!(status, 403, "{body}");
    // And a bad signature with the allowed role's own key is refused.
    let creds = with.identity.current().unwrap();
    let forged = format!(
        "AWS4-HMAC-SHA256 Credential={}/20261129/{REGION}/logs/aws4_request, SignedHeaders=host;x-amz-date, Signature={}",
        creds.access_key_id(),
        "0".repeat(64)
    );
    let (status, body) = http_request(
        "POST",
        &moto.url("/"),
        &[
            ("X-Amz-Target", "Logs_20140328.DescribeLogGroups"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Date", "20261129T000000Z"),
            ("X-Amz-Security-Token", creds.session_token().unwrap_or_default()),
            ("Authorization", &forged),
        ],
        "{}",
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("SignatureDoesNotMatch"), "{body}");
}
