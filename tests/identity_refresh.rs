//! Background refresh against a fake STS, in-process with the real SDK clients
//! (issue #4 "Slow STS" and "STS outage"): sends never wait on STS, an STS
//! outage while the credentials are valid fails no send, after expiry sends fail with the clear
//! "expired" error, and recovery needs no outside help.
//!
//! The identity here is `sts:AssumeRole` on top of static keys (the `agent.credentials.role_arn`
//! path): its STS endpoint can be set in code, so the test needs no process environment.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::sts::AssumeRoleProvider;
use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_types::region::Region;
use kinsight::auth::{self, Identity, IdentityKind};
use kinsight::host::{Clock, SystemClock};
use kinsight::telemetry::Telemetry;
use support::{FakeResponse, FakeServer, expiration_in};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Up,
    Slow,
    Down,
}

struct Sts {
    server: FakeServer,
    mode: Arc<Mutex<Mode>>,
    issued: Arc<AtomicU32>,
    /// Whether `GetCallerIdentity` answers (otherwise `InvalidClientTokenId`, not retried).
    caller_ok: Arc<AtomicBool>,
}

/// A fake STS answering `AssumeRole` with credentials valid for `lifetime_secs`.
fn sts(lifetime_secs: Arc<AtomicU64>) -> Sts {
    let mode = Arc::new(Mutex::new(Mode::Up));
    let issued = Arc::new(AtomicU32::new(0));
    let caller_ok = Arc::new(AtomicBool::new(true));
    let (m, n, ok) = (mode.clone(), issued.clone(), caller_ok.clone());
    let server = FakeServer::start(move |req| {
        if req.body_text().contains("Action=GetCallerIdentity") {
            return if ok.load(Ordering::SeqCst) {
                FakeResponse::new(
                    200,
                    "text/xml",
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                     <Arn>arn:aws:sts::123456789012:assumed-role/kinsight/kinsight-test</Arn><UserId>AROATEST:kinsight-test</UserId>\
                     <Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>0</RequestId>\
                     </ResponseMetadata></GetCallerIdentityResponse>",
                )
            } else {
                FakeResponse::new(
                    403,
                    "text/xml",
                    "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code><Message>not yet</Message></Error></ErrorResponse>",
                )
            };
        }
        if !req.body_text().contains("Action=AssumeRole") {
            return FakeResponse::text(400, "");
        }
        let mode = *m.lock().unwrap();
        match mode {
            Mode::Down => {
                return FakeResponse::new(
                    503,
                    "text/xml",
                    "<ErrorResponse><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>down</Message></Error></ErrorResponse>",
                );
            }
            Mode::Slow => std::thread::sleep(Duration::from_secs(2)),
            Mode::Up => {}
        }
        let k = n.fetch_add(1, Ordering::SeqCst);
        FakeResponse::new(
            200,
            "text/xml",
            format!(
                "<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult><Credentials>\
             <AccessKeyId>ASIAREFRESH{k}</AccessKeyId><SecretAccessKey>refresh-secret-{k}</SecretAccessKey>\
             <SessionToken>refresh-token-{k}</SessionToken><Expiration>{}</Expiration></Credentials>\
             <AssumedRoleUser><AssumedRoleId>AROATEST:kinsight-test</AssumedRoleId>\
             <Arn>arn:aws:sts::123456789012:assumed-role/kinsight/kinsight-test</Arn></AssumedRoleUser>\
             </AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></AssumeRoleResponse>",
                expiration_in(lifetime_secs.load(Ordering::SeqCst))
            ),
        )
    });
    Sts {
        server,
        mode,
        issued,
        caller_ok,
    }
}

/// A fake CloudWatch Logs that accepts `PutLogEvents` at once.
fn logs() -> FakeServer {
    FakeServer::start(|req| {
        if req.header("x-amz-target") == Some("Logs_20140328.PutLogEvents") {
            FakeResponse::new(200, "application/x-amz-json-1.1", "{}")
        } else {
            FakeResponse::text(400, "")
        }
    })
}

struct Setup {
    sts: Sts,
    logs: FakeServer,
    identity: Identity,
    client: aws_sdk_cloudwatchlogs::Client,
    cancel: CancellationToken,
}

async fn setup(lifetime_secs: u64) -> Setup {
    setup_with_clock(lifetime_secs, Arc::new(SystemClock)).await
}

async fn setup_with_clock(lifetime_secs: u64, clock: Arc<dyn Clock>) -> Setup {
    let lifetime = Arc::new(AtomicU64::new(lifetime_secs));
    let sts = sts(lifetime);
    let logs = logs();
    let region = Region::new("us-east-1");
    let base = aws_config::defaults(BehaviorVersion::latest())
        .region(region.clone())
        .credentials_provider(Credentials::new("AKIDBASEKEY", "base-secret", None, None, "test"))
        .endpoint_url(sts.server.url())
        .load()
        .await;
    let provider = AssumeRoleProvider::builder("arn:aws:iam::123456789012:role/kinsight")
        .session_name("kinsight-test")
        .configure(&base)
        .build()
        .await;
    let first = provider.provide_credentials().await.expect("first AssumeRole");
    let identity = Identity::new(
        "agent role",
        "agent_role",
        SharedCredentialsProvider::new(provider),
        first,
        clock,
        Telemetry::new(),
    );
    let cancel = CancellationToken::new();
    tokio::spawn(identity.refresher(cancel.clone()));
    let sdk = auth::sdk_config(&region, &identity).await;
    let conf = aws_sdk_cloudwatchlogs::config::Builder::from(&sdk)
        .endpoint_url(logs.url())
        .build();
    let client = aws_sdk_cloudwatchlogs::Client::from_conf(conf);
    Setup {
        sts,
        logs,
        identity,
        client,
        cancel,
    }
}

async fn send(client: &aws_sdk_cloudwatchlogs::Client) -> Result<Duration, String> {
    let started = Instant::now();
    let event = aws_sdk_cloudwatchlogs::types::InputLogEvent::builder()
        .timestamp(1)
        .message("m")
        .build()
        .expect("event");
    client
        .put_log_events()
        .log_group_name("/aws/containerinsights/c/application")
        .log_stream_name("s")
        .log_events(event)
        .send()
        .await
        .map(|_| started.elapsed())
        .map_err(|e| kinsight::telemetry::chain(&e))
}

/// Waits (real time) for `cond`, polling every 50 ms.
async fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cond()
}

fn signing_keys(server: &FakeServer) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .map(|a| {
            a.split("Credential=")
                .nth(1)
                .unwrap_or_default()
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_sts_never_delays_a_send() {
    let s = setup(3600).await;
    *s.sts.mode.lock().unwrap() = Mode::Slow;
    assert!(s.identity.refresh_now("test: refresh while STS takes 2 s"));
    // Sends during the refresh: none waits on STS.
    let refresh_started = Instant::now();
    let mut latencies = Vec::new();
    while s.sts.issued.load(Ordering::SeqCst) < 2 && refresh_started.elapsed() < Duration::from_secs(10) {
        latencies.push(send(&s.client).await.expect("send during the refresh"));
    }
    let refresh_took = refresh_started.elapsed();
    assert!(
        refresh_took >= Duration::from_secs(2),
        "the refresh took the STS delay ({refresh_took:?})"
    );
    let max = latencies.iter().max().copied().unwrap_or_default();
    assert!(
        latencies.len() >= 5,
        "sends ran during the refresh ({} sends)",
        latencies.len()
    );
    assert!(
        max < Duration::from_secs(1),
        "a send waited on STS: max {max:?} over {} sends",
        latencies.len()
    );
    eprintln!(
        "slow STS: {} sends during a {refresh_took:?} refresh, max send latency {max:?}",
        latencies.len()
    );
    // The new credentials are picked up by the next sends.
    assert!(
        wait_for(Duration::from_secs(5), || s
            .identity
            .current()
            .is_ok_and(|c| c.access_key_id() == "ASIAREFRESH1"))
        .await
    );
    send(&s.client).await.expect("send after the refresh");
    assert_eq!(signing_keys(&s.logs).last().map(String::as_str), Some("ASIAREFRESH1"));
    assert!(
        signing_keys(&s.logs).iter().any(|k| k == "ASIAREFRESH0"),
        "earlier sends used the old key"
    );
    s.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_outage_fails_no_send_while_valid_then_clear_errors_then_recovery() {
    // 8-second credentials: the refresh is due at 4 s (lead = lifetime / 2) and fails.
    let s = setup(8).await;
    *s.sts.mode.lock().unwrap() = Mode::Down;
    let expiry = s.identity.expiry().expect("expiry");
    let mut ok = 0;
    while std::time::SystemTime::now() + Duration::from_millis(300) < expiry {
        send(&s.client)
            .await
            .expect("no failed send while the credentials are valid");
        ok += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok >= 10, "{ok} sends while valid");
    // Past expiry, STS still down: a clear error.
    assert!(wait_for(Duration::from_secs(5), || !s.identity.is_valid()).await);
    let err = send(&s.client).await.expect_err("expired credentials fail the send");
    assert!(
        err.contains("expired at") && err.contains("could not be refreshed"),
        "{err}"
    );
    assert!(s.logs.requests().len() >= ok, "the failing send never reached the wire");
    // STS returns: the refresher recovers by itself (backoff ≤ 60 s; here a few seconds).
    *s.sts.mode.lock().unwrap() = Mode::Up;
    assert!(
        wait_for(Duration::from_secs(70), || s.identity.is_valid()).await,
        "recovered"
    );
    send(&s.client).await.expect("send after recovery");
    s.cancel.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_metadata_comes_from_imdsv2_and_never_blocks_long() {
    use support::imds::{IMDS_AZ, IMDS_INSTANCE_ID, IMDS_INSTANCE_TYPE, IMDS_REGION};
    let imds = support::Imds::start();
    let aws = kinsight::config::AwsEnv {
        ec2_metadata_service_endpoint: Some(imds.url()),
        ..Default::default()
    };
    let md = auth::node_metadata(&aws).await;
    assert_eq!(md.instance_id.as_deref(), Some(IMDS_INSTANCE_ID));
    assert_eq!(md.instance_type.as_deref(), Some(IMDS_INSTANCE_TYPE));
    assert_eq!(md.region.as_deref(), Some(IMDS_REGION));
    assert_eq!(md.availability_zone.as_deref(), Some(IMDS_AZ));
    // IMDSv2: a token PUT with the TTL header came first, and every GET carried the token.
    let reqs = imds.requests();
    assert!(
        reqs.iter()
            .any(|r| r.method == "PUT" && r.header("x-aws-ec2-metadata-token-ttl-seconds").is_some())
    );
    assert!(
        reqs.iter()
            .filter(|r| r.method == "GET")
            .all(|r| r.header("x-aws-ec2-metadata-token").is_some())
    );

    // Disabled: nothing is asked.
    let before = imds.requests().len();
    let off = kinsight::config::AwsEnv {
        ec2_metadata_disabled: true,
        ..aws.clone()
    };
    assert_eq!(auth::node_metadata(&off).await, auth::NodeMetadata::default());
    assert_eq!(imds.requests().len(), before);

    // Unreachable (a port nobody answers on): empty, within the budget.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let started = Instant::now();
    let none = auth::node_metadata(&kinsight::config::AwsEnv {
        ec2_metadata_service_endpoint: Some(url),
        ..Default::default()
    })
    .await;
    assert_eq!(none, auth::NodeMetadata::default());
    assert!(
        started.elapsed() <= auth::LOOKUP_BUDGET + Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
}

/// Wall time as the system's; monotonic time the test moves past the forced-refresh debounce.
#[derive(Debug, Default)]
struct SteppedClock {
    ahead: Mutex<Duration>,
}

impl Clock for SteppedClock {
    fn wall_ms(&self) -> i64 {
        SystemClock.wall_ms()
    }
    fn monotonic(&self) -> Instant {
        Instant::now() + *self.ahead.lock().unwrap()
    }
}

/// A `GetCallerIdentity` that failed at startup is retried after each
/// successful refresh, until it succeeds once; nothing is asked before a refresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caller_identity_failed_at_startup_is_retried_after_each_refresh_until_it_succeeds() {
    let clock = Arc::new(SteppedClock::default());
    let s = setup_with_clock(3600, clock.clone()).await;
    s.sts.caller_ok.store(false, Ordering::SeqCst);
    let callers = || {
        s.sts
            .server
            .requests()
            .iter()
            .filter(|r| r.body_text().contains("Action=GetCallerIdentity"))
            .count()
    };
    let sdk = auth::sdk_config(&Region::new("us-east-1"), &s.identity)
        .await
        .into_builder()
        .endpoint_url(s.sts.server.url())
        .build();
    let task = tokio::spawn(auth::retry_caller_identity(
        &s.identity,
        sdk,
        IdentityKind::Irsa,
        s.cancel.child_token(),
    ));
    send(&s.client).await.expect("a send");
    assert_eq!(callers(), 0, "nothing is asked before a refresh");

    // Refresh 1: GetCallerIdentity still fails; the task keeps waiting.
    assert!(s.identity.refresh_now("test: first refresh"));
    assert!(
        wait_for(Duration::from_secs(10), || callers() == 1).await,
        "asked after refresh 1"
    );
    assert!(!task.is_finished());

    // Refresh 2: it answers; the task ends with the ARN and asks no more.
    s.sts.caller_ok.store(true, Ordering::SeqCst);
    *clock.ahead.lock().unwrap() += auth::FORCE_DEBOUNCE;
    assert!(s.identity.refresh_now("test: second refresh"));
    let arn = tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the retry ends after a successful call")
        .expect("task");
    assert_eq!(
        arn.as_deref(),
        Some("arn:aws:sts::123456789012:assumed-role/kinsight/kinsight-test")
    );
    assert_eq!(callers(), 2);
    *clock.ahead.lock().unwrap() += auth::FORCE_DEBOUNCE;
    assert!(s.identity.refresh_now("test: third refresh"));
    assert!(wait_for(Duration::from_secs(10), || s.sts.issued.load(Ordering::SeqCst) >= 4).await);
    assert_eq!(callers(), 2, "no more GetCallerIdentity once it succeeded");
    s.cancel.cancel();
}
