//! The cluster name from the instance tag `kubernetes.io/cluster/<name>` = `owned` through
//! `ec2:DescribeTags` (as the CloudWatch agent's `GetClusterName` reads it; issue #3 item 5):
//! against moto's EC2, and against a strict in-process fake that checks the request's `SigV4`
//! shape, its form parameters, pagination, retries and the error path.

mod support;

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::service_config::{LoadServiceConfig, ServiceConfigKey};
use kinsight::auth::{self, ClusterNameFrom, Tag};
use kinsight::config::Env;
use support::{FakeRequest, FakeResponse, FakeServer, Moto, http_request, test_sdk_config};

const INSTANCE: &str = "i-0123456789abcdef0";
const SESSION_TOKEN: &str = "session-token-for-describe-tags";

/// A fake `SigV4` header for moto's EC2 (moto, outside its auth mode, reads only the scope).
const MOTO_EC2_AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/ec2/aws4_request, \
                             SignedHeaders=host, Signature=0";

/// `application/x-www-form-urlencoded` value encoding.
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

/// `CreateTags` on `resource` in moto (which accepts tags for any resource id).
fn moto_tag(moto: &Moto, resource: &str, tags: &[(&str, &str)]) {
    let mut body = format!("Action=CreateTags&Version=2016-11-15&ResourceId.1={resource}");
    for (i, (k, v)) in tags.iter().enumerate() {
        let _ = write!(body, "&Tag.{n}.Key={}&Tag.{n}.Value={}", enc(k), enc(v), n = i + 1);
    }
    let (status, text) = http_request(
        "POST",
        &moto.url("/"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", MOTO_EC2_AUTH),
        ],
        body,
    );
    assert_eq!(status, 200, "CreateTags: {text}");
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        key: k.into(),
        value: v.into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_name_from_the_owned_instance_tag_in_moto() {
    let Some(moto) = Moto::start() else { return };
    moto_tag(
        &moto,
        INSTANCE,
        &[
            ("Name", "ip-10-0-1-23"),
            ("kubernetes.io/cluster/prod", "owned"),
            ("kubernetes.io/cluster/shared-net", "shared"),
            (auth::ASG_TAG, "eks-ng-1"),
        ],
    );
    moto_tag(
        &moto,
        "i-0bbbbbbbbbbbbbbbb",
        &[("kubernetes.io/cluster/legacy", "shared")],
    );
    moto_tag(
        &moto,
        "i-0cccccccccccccccc",
        &[("kubernetes.io/cluster/other", "owned")],
    );
    let sdk = test_sdk_config(&moto.endpoint);

    // The owned tag names the cluster; the resource-id filter keeps other instances' tags out.
    let tags = auth::describe_instance_tags(&sdk, INSTANCE)
        .await
        .expect("DescribeTags");
    assert!(tags.contains(&tag(auth::ASG_TAG, "eks-ng-1")), "{tags:?}");
    assert!(
        tags.contains(&tag("kubernetes.io/cluster/shared-net", "shared")),
        "{tags:?}"
    );
    assert!(!tags.iter().any(|t| t.key.ends_with("/other")), "{tags:?}");
    assert_eq!(
        auth::cluster_name_from_tags(&sdk, INSTANCE)
            .await
            .expect("DescribeTags"),
        Some("prod".to_string())
    );
    let (name, from) = auth::resolve_cluster_name(None, &Env::default(), Some(&sdk), Some(INSTANCE))
        .await
        .expect("resolved from the tag");
    assert_eq!((name.as_str(), from), ("prod", ClusterNameFrom::InstanceTag));

    // Only `shared`: no name, and the error says why and names the three ways.
    assert_eq!(
        auth::cluster_name_from_tags(&sdk, "i-0bbbbbbbbbbbbbbbb").await.unwrap(),
        None
    );
    let err = auth::resolve_cluster_name(None, &Env::default(), Some(&sdk), Some("i-0bbbbbbbbbbbbbbbb"))
        .await
        .expect_err("no owned tag");
    let msg = err.to_string();
    for part in [
        "logs.metrics_collected.kubernetes.cluster_name",
        "K8S_CLUSTER_NAME",
        "kubernetes.io/cluster/<name>=owned",
        "ec2:DescribeTags",
        "kubernetes.io/cluster/legacy=shared",
        "none with the value `owned`",
    ] {
        assert!(msg.contains(part), "{part:?} missing from: {msg}");
    }
    assert_eq!(err.exit_code(), 78);

    // No tags at all.
    let err = auth::resolve_cluster_name(None, &Env::default(), Some(&sdk), Some("i-0dddddddddddddddd"))
        .await
        .expect_err("no tag");
    assert!(
        err.to_string().contains("has no kubernetes.io/cluster/<name> tag"),
        "{err}"
    );
}

/// What the strict fake does with the request numbered `n` (0-based).
type Script = dyn Fn(usize, &FakeRequest) -> FakeResponse + Send + Sync;

/// A strict `DescribeTags` endpoint: every request must be a signed awsQuery POST with the
/// session token and the two filters; a request that is not gets a 400 the test reports.
fn strict_ec2(script: Arc<Script>) -> (FakeServer, Arc<Mutex<Vec<String>>>) {
    let problems = Arc::new(Mutex::new(Vec::new()));
    let (p, n) = (problems.clone(), Arc::new(AtomicUsize::new(0)));
    let server = FakeServer::start(move |req| {
        let i = n.fetch_add(1, Ordering::SeqCst);
        let mut bad = Vec::new();
        let auth = req.header("authorization").unwrap_or_default();
        // AWS4-HMAC-SHA256 Credential=ASIATEST/<yyyymmdd>/us-east-1/ec2/aws4_request,
        //   SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=<64 hex>
        let scope_ok = auth
            .strip_prefix("AWS4-HMAC-SHA256 Credential=ASIATEST/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(date, rest)| {
                date.len() == 8
                    && date.bytes().all(|b| b.is_ascii_digit())
                    && rest.starts_with("us-east-1/ec2/aws4_request,")
            });
        if !scope_ok {
            bad.push(format!("credential scope: {auth}"));
        }
        let signed = auth
            .split("SignedHeaders=")
            .nth(1)
            .and_then(|s| s.split(',').next())
            .unwrap_or_default();
        for h in ["content-type", "host", "x-amz-date", "x-amz-security-token"] {
            if !signed.split(';').any(|s| s == h) {
                bad.push(format!("{h} not signed: {signed}"));
            }
        }
        let sig = auth.split("Signature=").nth(1).unwrap_or_default();
        if sig.len() != 64 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
            bad.push(format!("signature: {sig}"));
        }
        if req.header("x-amz-security-token") != Some(SESSION_TOKEN) {
            bad.push("no session token".into());
        }
        if req.method != "POST" || req.path != "/" {
            bad.push(format!("{} {}", req.method, req.path));
        }
        if !req
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"))
        {
            bad.push(format!("content-type {:?}", req.header("content-type")));
        }
        let body = req.body_text();
        for param in [
            "Action=DescribeTags",
            "Version=2016-11-15",
            "Filter.1.Name=resource-type",
            "Filter.1.Value.1=instance",
            "Filter.2.Name=resource-id",
            &format!("Filter.2.Value.1={INSTANCE}"),
        ] {
            if !body.split('&').any(|kv| kv == param) {
                bad.push(format!("{param} missing from {body}"));
            }
        }
        if bad.is_empty() {
            script(i, req)
        } else {
            p.lock().unwrap().extend(bad);
            FakeResponse::text(400, "bad request")
        }
    });
    (server, problems)
}

fn describe_tags_xml(items: &[(&str, &str)], next: Option<&str>) -> FakeResponse {
    let items = items.iter().fold(String::new(), |mut out, (k, v)| {
        let _ = write!(
            out,
            "<item><resourceId>{INSTANCE}</resourceId><resourceType>instance</resourceType>\
             <key>{k}</key><value>{v}</value></item>"
        );
        out
    });
    let next = next.map(|t| format!("<nextToken>{t}</nextToken>")).unwrap_or_default();
    FakeResponse::new(
        200,
        "text/xml;charset=UTF-8",
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DescribeTagsResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
             <requestId>7a62c49f-347e-4fc4-9331-6e8eEXAMPLE</requestId><tagSet>{items}</tagSet>{next}</DescribeTagsResponse>"
        ),
    )
}

/// An `SdkConfig` with temporary credentials (as IRSA gives) and `endpoint` set in code.
fn sdk(endpoint: Option<&str>) -> SdkConfig {
    let mut b = SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "ASIATEST",
            "describe-tags-secret",
            Some(SESSION_TOKEN.into()),
            None,
            "test",
        )));
    if let Some(url) = endpoint {
        b = b.endpoint_url(url);
    }
    b.build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_tags_is_signed_paginated_and_retried() {
    // 1: a 503 (retried), 2: a first page with a NextToken, 3: the last page.
    let (server, problems) = strict_ec2(Arc::new(|i, req| match i {
        0 => FakeResponse::new(
            503,
            "text/xml",
            "<Response><Errors><Error><Code>Unavailable</Code><Message>try again</Message></Error></Errors></Response>",
        ),
        1 if !req.body_text().contains("NextToken") => {
            describe_tags_xml(&[("kubernetes.io/cluster/prod", "owned"), ("Name", "")], Some("tok+/="))
        }
        2 if req.body_text().split('&').any(|kv| kv == "NextToken=tok%2B%2F%3D") => describe_tags_xml(
            &[(auth::ASG_TAG, "eks-ng-1"), ("kubernetes.io/cluster/b&amp;c", "shared")],
            None,
        ),
        _ => FakeResponse::text(400, &format!("unexpected request {i}: {}", req.body_text())),
    }));
    let tags = auth::describe_instance_tags(&sdk(Some(&server.url())), INSTANCE)
        .await
        .expect("DescribeTags");
    assert!(problems.lock().unwrap().is_empty(), "{:?}", problems.lock().unwrap());
    assert_eq!(
        tags,
        vec![
            tag("kubernetes.io/cluster/prod", "owned"),
            tag("Name", ""),
            tag(auth::ASG_TAG, "eks-ng-1"),
            tag("kubernetes.io/cluster/b&c", "shared"),
        ]
    );
    assert_eq!(server.requests().len(), 3);
    // Each attempt is signed on its own (a fresh X-Amz-Date and signature).
    assert!(server.requests().iter().all(|r| r.header("x-amz-date").is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_is_not_retried_and_explains_the_missing_tag() {
    let (server, problems) = strict_ec2(Arc::new(|_, _| {
        FakeResponse::new(
            403,
            "text/xml;charset=UTF-8",
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>UnauthorizedOperation</Code>\
             <Message>You are not authorized to perform this operation. User: arn:aws:sts::123456789012:assumed-role/kinsight/x \
             is not authorized to perform: ec2:DescribeTags</Message></Error></Errors><RequestID>r</RequestID></Response>",
        )
    }));
    let sdk = sdk(Some(&server.url()));
    let err = auth::cluster_name_from_tags(&sdk, INSTANCE).await.expect_err("denied");
    assert!(
        err.to_string()
            .contains("ec2:DescribeTags failed: HTTP 403: UnauthorizedOperation"),
        "{err}"
    );
    assert_eq!(server.requests().len(), 1, "AccessDenied is not retried");
    let err = auth::resolve_cluster_name(None, &Env::default(), Some(&sdk), Some(INSTANCE))
        .await
        .expect_err("no name");
    let msg = err.to_string();
    assert!(
        msg.contains("K8S_CLUSTER_NAME") && msg.contains("UnauthorizedOperation"),
        "{msg}"
    );
    assert!(problems.lock().unwrap().is_empty(), "{:?}", problems.lock().unwrap());
}

/// `AWS_ENDPOINT_URL_EC2` as the SDK's environment loader answers it.
#[derive(Debug)]
struct Ec2EndpointVariable(String);

impl LoadServiceConfig for Ec2EndpointVariable {
    fn load_config(&self, key: ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "EC2" && key.env() == "AWS_ENDPOINT_URL").then(|| self.0.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resolution_order_and_the_service_specific_endpoint() {
    let (server, problems) = strict_ec2(Arc::new(|_, _| {
        describe_tags_xml(&[("kubernetes.io/cluster/from-tag", "owned")], None)
    }));
    // No endpoint in code: AWS_ENDPOINT_URL_EC2 (through the SDK's service config) is used.
    let via_variable = sdk(None)
        .into_builder()
        .service_config(Ec2EndpointVariable(server.url()))
        .build();
    let env = Env {
        k8s_cluster_name: Some("from-env".into()),
        ..Env::default()
    };
    // config → K8S_CLUSTER_NAME → tag; the first two never call AWS.
    let r = auth::resolve_cluster_name(Some("from-config"), &env, Some(&via_variable), Some(INSTANCE)).await;
    assert_eq!(r.unwrap(), ("from-config".to_string(), ClusterNameFrom::Config));
    let r = auth::resolve_cluster_name(None, &env, Some(&via_variable), Some(INSTANCE)).await;
    assert_eq!(r.unwrap(), ("from-env".to_string(), ClusterNameFrom::Env));
    assert!(server.requests().is_empty());
    // Without an instance id (IMDS unreachable) the tag is not asked for.
    let err = auth::resolve_cluster_name(None, &Env::default(), Some(&via_variable), None)
        .await
        .expect_err("no instance id");
    assert!(err.to_string().contains("IMDS gave no instance id"), "{err}");
    assert!(server.requests().is_empty());
    let r = auth::resolve_cluster_name(None, &Env::default(), Some(&via_variable), Some(INSTANCE)).await;
    assert_eq!(r.unwrap(), ("from-tag".to_string(), ClusterNameFrom::InstanceTag));
    assert_eq!(server.requests().len(), 1);
    assert!(problems.lock().unwrap().is_empty(), "{:?}", problems.lock().unwrap());
}
