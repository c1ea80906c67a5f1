//! The credential chain end to end through `kinsight check` (issue #4): IRSA against moto, Pod
//! Identity and IMDS against the in-repo fakes, the refusal of non-workload identities, and
//! secrets hygiene (no secret key, session token or token content) on a debug log.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::imds::{IMDS_ACCESS_KEY, IMDS_REGION, IMDS_SECRET, IMDS_SESSION_TOKEN};
use support::pod_identity::{POD_ID_SECRET, POD_ID_SESSION_TOKEN};
use support::{FakeResponse, FakeServer, Imds, Moto, PodIdentity, Run, kinsight, run};
use tempfile::TempDir;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/test";
const NODE: &str = "ip-10-0-1-23.ec2.internal";
const CLUSTER: &str = "test-cluster";

/// This machine's own `/`: the host checks of `check` pass on the project's machines and CI.
fn host_root() -> PathBuf {
    PathBuf::from("/")
}

/// A cloudwatch-output config; `identity` is the `kinsight.identity` object.
fn config(dir: &Path, identity: &Value, agent_extra: &Value) -> PathBuf {
    let mut agent = serde_json::json!({ "metrics_collection_interval": 60 });
    if let (Some(a), Some(extra)) = (agent.as_object_mut(), agent_extra.as_object()) {
        a.extend(extra.clone());
    }
    let cfg = serde_json::json!({
        "agent": agent,
        "logs": { "metrics_collected": { "kubernetes": { "cluster_name": CLUSTER } } },
        "kinsight": {
            "output": "cloudwatch",
            "metrics": { "metadata_source": "none" },
            "logs": { "enabled": false },
            "telemetry": { "listen_address": null },
            "identity": identity,
        }
    });
    let path = dir.join("cwagentconfig.json");
    std::fs::write(&path, cfg.to_string()).expect("write config");
    path
}

fn b64url(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// A file that looks like a projected service-account token; nothing validates it.
fn write_token(path: &Path, marker: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let token = format!(
        "{}.{}.c2lnLXttarker{marker}",
        b64url(br#"{"alg":"RS256","kid":"test"}"#),
        b64url(
            serde_json::json!({
                "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/TEST",
                "sub": "system:serviceaccount:amazon-cloudwatch:kinsight",
                "aud": ["sts.amazonaws.com"], "iat": now, "exp": now + 86_400,
                "marker": marker,
            })
            .to_string()
            .as_bytes()
        )
    );
    std::fs::write(path, &token).expect("write token");
    token
}

/// A fake `CloudWatch` that accepts `PutMetricData` (rpc-v2-cbor: an empty CBOR map).
fn fake_cloudwatch() -> FakeServer {
    FakeServer::start(|req| {
        if req.path.ends_with("/operation/PutMetricData") {
            FakeResponse::new(200, "application/cbor", vec![0xa0]).with_header("smithy-protocol", "rpc-v2-cbor")
        } else {
            FakeResponse::text(404, "")
        }
    })
}

fn check(cfg: &Path, extra: &[&str]) -> std::process::Command {
    let mut cmd = kinsight();
    cmd.args(["check", "--config"])
        .arg(cfg)
        .arg("--host-root")
        .arg(host_root())
        .args(extra)
        .env("HOST_NAME", NODE);
    cmd
}

/// The report line for `item` (`OK    aws identity  kind irsa, …`).
fn line<'a>(out: &'a Run, item: &str) -> &'a str {
    out.stderr
        .lines()
        .find(|l| l.get(6..).is_some_and(|rest| rest.starts_with(item)))
        .unwrap_or_else(|| panic!("no `{item}` line in:\n{}", out.stderr))
}

fn assert_no_secrets(out: &Run, secrets: &[&str]) {
    for s in secrets {
        assert!(!s.is_empty());
        assert!(!out.stderr.contains(s), "secret {s:?} in stderr:\n{}", out.stderr);
        assert!(!out.stdout.contains(s), "secret {s:?} in stdout:\n{}", out.stdout);
    }
}

/// moto's recorded requests (one JSON object per line).
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

fn header(entry: &Value, name: &str) -> String {
    entry["headers"]
        .as_object()
        .and_then(|h| h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_string()
}

#[test]
fn irsa_against_moto_reports_irsa_signs_with_the_issued_key_and_logs_no_secret() {
    let dir = TempDir::new().unwrap();
    let rec = dir.path().join("moto-recording.jsonl");
    let rec_s = rec.to_str().unwrap().to_string();
    let Some(moto) = Moto::start_with(&[("MOTO_ENABLE_RECORDING", "True"), ("MOTO_RECORDER_FILEPATH", &rec_s)]) else {
        return;
    };
    let cw = fake_cloudwatch();
    let token_path = dir.path().join("token");
    let token = write_token(&token_path, "one");
    let cfg = config(dir.path(), &serde_json::json!({}), &serde_json::json!({}));
    let out = run(check(&cfg, &["--send-test"])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw.url())
        .env("AWS_ROLE_ARN", ROLE_ARN)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_path)
        .env("KINSIGHT_LOG", "kinsight=debug,info"));
    out.assert_code(0);
    let id = line(&out, "aws identity");
    assert!(id.starts_with("OK"), "{id}");
    assert!(id.contains("kind irsa"), "{id}");
    // The session name is kinsight-<node name>.
    assert!(
        id.contains(&format!("arn:aws:sts::123456789012:assumed-role/test/kinsight-{NODE}")),
        "{id}"
    );
    assert!(line(&out, "aws region").contains("us-east-1 (from AWS_REGION)"));
    assert!(line(&out, "aws endpoints").contains("AWS_ENDPOINT_URL_STS"));
    assert!(line(&out, "aws creds").contains("ASIA"));
    // The startup identity line was logged too.
    assert!(
        out.stderr.contains("AWS identity") && out.stderr.contains("kind=\"irsa\"") || out.stderr.contains("kind=irsa"),
        "{}",
        out.stderr
    );
    // --send-test: one datum to the check namespace, one event to the application log group.
    assert!(
        out.stderr
            .contains("PutMetricData: 1 datum to namespace ContainerInsights/kinsight-check"),
        "{}",
        out.stderr
    );
    // Read the recording before the test's own read-back calls land in it; moto's admin API
    // (readiness probes) is not AWS.
    let entries: Vec<Value> = recording(&rec)
        .into_iter()
        .filter(|e| !e["url"].as_str().unwrap_or_default().contains("/moto-api/"))
        .collect();
    let group = format!("/aws/containerinsights/{CLUSTER}/application");
    let (status, events) = moto.logs_call(
        "GetLogEvents",
        &serde_json::json!({ "logGroupName": group, "logStreamName": format!("kinsight-check-{NODE}") }),
    );
    assert_eq!(status, 200, "{events}");
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1), "{events}");
    let cw_reqs = cw.requests();
    assert_eq!(cw_reqs.len(), 1);

    // On the wire: AssumeRoleWithWebIdentity once, unsigned, carrying the token; every later
    // call signed with the key moto issued, with its session token.
    let assume: Vec<&Value> = entries
        .iter()
        .filter(|e| body_of(e).contains("Action=AssumeRoleWithWebIdentity"))
        .collect();
    assert_eq!(assume.len(), 1, "one AssumeRoleWithWebIdentity at start");
    assert!(
        body_of(assume[0]).contains(&token[..20]),
        "the token file content is sent"
    );
    assert!(
        header(assume[0], "Authorization").is_empty(),
        "AssumeRoleWithWebIdentity is unsigned"
    );
    let data = moto.get_json("/moto-api/data.json");
    let roles = data["sts"]["AssumedRole"].as_array().cloned().unwrap_or_default();
    let issued = roles.last().expect("moto assumed a role");
    let key = issued["access_key_id"].as_str().expect("access key");
    let secret = issued["secret_access_key"].as_str().expect("secret");
    let session = issued["session_token"].as_str().expect("session token");
    let signed: Vec<&Value> = entries
        .iter()
        .filter(|e| !body_of(e).contains("AssumeRoleWithWebIdentity"))
        .collect();
    assert!(
        signed.len() >= 3,
        "GetCallerIdentity and the Logs calls: {}",
        signed.len()
    );
    for e in &signed {
        assert!(
            header(e, "Authorization").contains(&format!("Credential={key}/")),
            "{e}"
        );
        assert_eq!(header(e, "X-Amz-Security-Token"), session);
    }
    // Secrets hygiene: kinsight's debug log shows neither the secret key, the session token
    // nor the token file content.
    let token_sig = token.rsplit('.').next().unwrap().to_string();
    assert_no_secrets(&out, &[secret, session, &token, &token_sig]);
    assert!(
        out.stderr.contains("level") || out.stderr.contains("DEBUG"),
        "debug logging was on"
    );
}

#[test]
fn pod_identity_sends_the_token_file_and_reports_pod_identity() {
    let dir = TempDir::new().unwrap();
    let token_path = dir.path().join("eks-pod-identity-token");
    std::fs::write(&token_path, "eyJhbGciOiJSUzI1NiJ9.podidentity-token-content.fake").unwrap();
    let Some(moto) = Moto::start() else { return };
    let agent = PodIdentity::start(token_path.clone(), 6 * 3600);
    let cfg = config(
        dir.path(),
        &serde_json::json!({ "require_workload_identity": true }),
        &serde_json::json!({}),
    );
    let out = run(check(&cfg, &[])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.full_uri())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &token_path)
        .env("KINSIGHT_LOG", "kinsight=debug,info"));
    out.assert_code(0);
    let id = line(&out, "aws identity");
    assert!(id.starts_with("OK") && id.contains("kind pod-identity"), "{id}");
    let reqs = agent.requests();
    assert!(!reqs.is_empty());
    assert_eq!(
        reqs[0].header("authorization"),
        Some("eyJhbGciOiJSUzI1NiJ9.podidentity-token-content.fake")
    );
    assert_no_secrets(
        &out,
        &[POD_ID_SECRET, POD_ID_SESSION_TOKEN, "podidentity-token-content"],
    );

    // The wrong token: the agent answers 403, check fails with the hint naming the association.
    std::fs::write(&token_path, "a-different-token").unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token").unwrap();
    let out = run(check(&cfg, &[])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_CONTAINER_CREDENTIALS_FULL_URI", agent.full_uri())
        .env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &wrong));
    out.assert_code(1);
    let id = line(&out, "aws identity");
    assert!(id.starts_with("FAIL"), "{id}");
    assert!(id.contains("pod identity association"), "{id}");
}

#[test]
fn instance_role_is_loud_and_require_workload_identity_refuses_it() {
    let dir = TempDir::new().unwrap();
    let imds = Imds::start();
    // GetCallerIdentity: the in-repo STS answer naming an instance-profile session.
    let sts = FakeServer::start(|req| {
        if req.body_text().contains("Action=GetCallerIdentity") {
            FakeResponse::new(
                200,
                "text/xml",
                format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                 <Arn>arn:aws:sts::123456789012:assumed-role/eks-nodes/{}</Arn><UserId>AROAEXAMPLE:x</UserId>\
                 <Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>0</RequestId>\
                 </ResponseMetadata></GetCallerIdentityResponse>",
                    support::imds::IMDS_INSTANCE_ID
                ),
            )
        } else {
            FakeResponse::text(400, "")
        }
    });
    let cfg = config(dir.path(), &serde_json::json!({}), &serde_json::json!({}));
    // No region anywhere but IMDS: it comes from there too.
    let out = run(check(&cfg, &[])
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .env("AWS_ENDPOINT_URL_STS", sts.url())
        .env("KINSIGHT_LOG", "kinsight=debug,info"));
    out.assert_code(0);
    let id = line(&out, "aws identity");
    assert!(id.starts_with("WARN"), "{id}");
    assert!(id.contains("kind imds") && id.contains("imds_source node-role"), "{id}");
    assert!(id.contains("Every pod on this node"), "{id}");
    assert!(line(&out, "aws region").contains(&format!("{IMDS_REGION} (from imds)")));
    // The startup line is a WARN explaining the risk and the fix.
    let warn = out
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains("instance metadata service"))
        .unwrap_or_else(|| panic!("no WARN line:\n{}", out.stderr));
    assert!(warn.contains("IRSA or EKS Pod Identity"), "{warn}");
    assert!(imds.credentials_requested());
    assert_no_secrets(&out, &[IMDS_SECRET, IMDS_SESSION_TOKEN, support::imds::IMDS_TOKEN]);
    assert!(
        !out.stderr.contains(IMDS_ACCESS_KEY),
        "only the 4-character key prefix is shown"
    );

    // require_workload_identity: refused with exit 78, and IMDS saw no request at all.
    let imds2 = Imds::start();
    let cfg = config(
        dir.path(),
        &serde_json::json!({ "require_workload_identity": true }),
        &serde_json::json!({"region": "eu-west-1"}),
    );
    let out = run(check(&cfg, &[]).env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds2.url()));
    out.assert_code(78);
    let id = line(&out, "aws identity");
    assert!(
        id.starts_with("FAIL") && id.contains("require_workload_identity"),
        "{id}"
    );
    assert!(id.contains("EC2 instance role"), "{id}");
    assert!(imds2.requests().is_empty(), "the IMDS fake saw {:?}", imds2.requests());
}

#[test]
fn broken_irsa_never_falls_through_to_the_node_role() {
    let dir = TempDir::new().unwrap();
    let imds = Imds::start();
    let cfg = config(
        dir.path(),
        &serde_json::json!({}),
        &serde_json::json!({"region": "us-east-1"}),
    );
    let out = run(check(&cfg, &[])
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url())
        .env("AWS_ROLE_ARN", ROLE_ARN)
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", dir.path().join("missing-token")));
    out.assert_code(1);
    let id = line(&out, "aws identity");
    assert!(id.starts_with("FAIL") && id.contains("irsa"), "{id}");
    assert!(
        !imds.credentials_requested(),
        "fell through to IMDS: {:?}",
        imds.requests()
    );
}

#[test]
fn no_region_and_no_credentials_fail_clearly() {
    let dir = TempDir::new().unwrap();
    let cfg = config(dir.path(), &serde_json::json!({}), &serde_json::json!({}));
    let out = run(check(&cfg, &[]).env("AWS_EC2_METADATA_DISABLED", "true"));
    out.assert_code(78);
    assert!(line(&out, "aws identity").contains("no AWS region: set agent.region"));
    let out = run(check(&cfg, &[])
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_REGION", "us-east-1"));
    out.assert_code(1);
    let id = line(&out, "aws identity");
    assert!(
        id.starts_with("FAIL") && id.contains("no AWS credentials found"),
        "{id}"
    );
}

#[test]
fn local_output_makes_no_aws_call() {
    let dir = TempDir::new().unwrap();
    let cfg = config(dir.path(), &serde_json::json!({}), &serde_json::json!({}));
    let out = run(&mut check(&cfg, &["--output", "stdout"]));
    out.assert_code(0);
    assert!(line(&out, "aws identity").starts_with("SKIP"));
}

#[test]
fn even_a_trace_log_shows_no_key_id_secret_or_signature() {
    const KEY_ID: &str = "AKIATRACEHYGIENE0001";
    const SECRET: &str = "traceHygieneSecretKey000000000000000000001";
    let dir = TempDir::new().unwrap();
    let cw = fake_cloudwatch();
    let cfg = config(dir.path(), &serde_json::json!({}), &serde_json::json!({}));
    // Every AWS endpoint on the fake: STS answers 404 (the identity line fails), PutMetricData
    // is signed and accepted.
    let out = run(check(&cfg, &["--send-test"])
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", cw.url())
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw.url())
        .env("KINSIGHT_LOG", "trace"));
    let signed = cw
        .requests()
        .into_iter()
        .find_map(|r| r.header("authorization").map(str::to_owned))
        .unwrap_or_else(|| panic!("nothing signed reached the fake:\n{}", out.stderr));
    assert!(signed.contains(&format!("Credential={KEY_ID}/")), "{signed}");
    let signature = signed.rsplit("Signature=").next().unwrap().to_owned();
    assert!(
        out.stderr.contains("DEBUG"),
        "KINSIGHT_LOG was applied:\n{}",
        out.stderr
    );
    assert_no_secrets(&out, &[KEY_ID, SECRET, &signature]);
}

#[test]
fn a_role_in_another_account_is_refused_unless_the_daemonset_allows_it() {
    let dir = TempDir::new().unwrap();
    let sts = FakeServer::start(|req| {
        if req.body_text().contains("Action=GetCallerIdentity") {
            FakeResponse::new(
                200,
                "text/xml",
                "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult>\
                 <Arn>arn:aws:iam::123456789012:user/base</Arn><UserId>AIDAEXAMPLE</UserId>\
                 <Account>123456789012</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>0</RequestId>\
                 </ResponseMetadata></GetCallerIdentityResponse>",
            )
        } else {
            FakeResponse::text(400, "")
        }
    });
    let cfg = config(
        dir.path(),
        &serde_json::json!({}),
        &serde_json::json!({ "credentials": { "role_arn": "arn:aws:iam::210987654321:role/elsewhere" } }),
    );
    let assume_calls = || {
        sts.requests()
            .iter()
            .filter(|r| r.body_text().contains("Action=AssumeRole"))
            .count()
    };
    let base = |cmd: &mut std::process::Command| {
        cmd.env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL_STS", sts.url());
    };
    let mut cmd = check(&cfg, &[]);
    base(&mut cmd);
    let out = run(&mut cmd);
    assert!(
        out.stderr.contains(
            "agent.credentials.role_arn arn:aws:iam::210987654321:role/elsewhere is in account 210987654321, \
             not in the base identity's account 123456789012"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(assume_calls(), 0, "the role must not even be asked for");

    let mut cmd = check(&cfg, &[]);
    base(&mut cmd);
    let out = run(cmd.env("KINSIGHT_ALLOW_CROSS_ACCOUNT_ROLES", "true"));
    assert!(!out.stderr.contains("is in account"), "{}", out.stderr);
    assert!(
        assume_calls() > 0,
        "with the opt-in the role is assumed:\n{}",
        out.stderr
    );
}
