//! With the `cloudwatch` output and no cluster name in the config or `K8S_CLUSTER_NAME`,
//! kinsight asks the EC2 tag `kubernetes.io/cluster/<name>` = `owned` of its instance (as the
//! CloudWatch agent's `GetClusterName` does; issue #3 item 5) and uses it for every datum; without
//! such a tag it refuses to start with exit code 78 and names the three ways to set the name.
//!
//! moto holds the tag (EC2 `CreateTags` on the instance id the in-repo IMDS fake reports) and
//! answers STS; the strict CloudWatch endpoint receives the datums.

mod support;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use support::{Imds, Moto, StrictCloudwatch, http_request, kinsight, run};

const INSTANCE_ID: &str = "i-0abc123def4567890"; // what tests/support/imds.rs reports

fn moto_tag(moto: &Moto, resource: &str, key: &str, value: &str) {
    let enc = |s: &str| -> String {
        s.bytes().fold(String::new(), |mut out, b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(char::from(b));
            } else {
                let _ = write!(out, "%{b:02X}");
            }
            out
        })
    };
    let body = format!(
        "Action=CreateTags&Version=2016-11-15&ResourceId.1={resource}&Tag.1.Key={}&Tag.1.Value={}",
        enc(key),
        enc(value)
    );
    let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/ec2/aws4_request, \
                SignedHeaders=host, Signature=0";
    let (status, text) = http_request(
        "POST",
        &moto.url("/"),
        &[
            ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8"),
            ("Authorization", auth),
        ],
        body,
    );
    assert_eq!(status, 200, "CreateTags: {text}");
}

fn node(dir: &Path) {
    let w = |p: &str, t: &str| {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, t).unwrap();
    };
    w("proc/cpuinfo", "processor\t: 0\n\nprocessor\t: 1\n");
    w("proc/meminfo", "MemTotal:        4194304 kB\n");
    w("sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
    w("sys/fs/cgroup/cpu.stat", "usage_usec 1000\n");
    w("sys/fs/cgroup/memory.stat", "anon 1048576\nfile 0\ninactive_file 0\n");
    w(
        "c.json",
        r#"{"agent":{"region":"us-east-1"},"kinsight":{"node_name":"node-a","metrics":{"metadata_source":"none"},
            "logs":{"enabled":false},"telemetry":{"listen_address":null}}}"#,
    );
}

fn once(dir: &Path, moto: &Moto, imds: &Imds, cw: &StrictCloudwatch) -> Command {
    let mut cmd = kinsight();
    cmd.args(["once", "--interval", "100ms", "--output", "cloudwatch", "--host-root"])
        .arg(dir)
        .arg("--config")
        .arg(dir.join("c.json"))
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_STS", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_EC2", &moto.endpoint)
        .env("AWS_ENDPOINT_URL_CLOUDWATCH", cw.url())
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    cmd
}

#[test]
fn the_owned_instance_tag_names_the_cluster() {
    let Some(moto) = Moto::start() else { return };
    let imds = Imds::start();
    let cw = StrictCloudwatch::start();
    let dir = tempfile::tempdir().unwrap();
    node(dir.path());
    moto_tag(&moto, INSTANCE_ID, "kubernetes.io/cluster/tagged-cluster", "owned");
    let r = run(&mut once(dir.path(), &moto, &imds, &cw));
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let accepted = cw.accepted();
    assert!(!accepted.is_empty(), "no datum reached CloudWatch:\n{}", r.stderr);
    for d in &accepted {
        let cluster = d
            .dimensions
            .iter()
            .find(|(k, _)| k == "ClusterName")
            .map(|(_, v)| v.as_str());
        assert_eq!(cluster, Some("tagged-cluster"), "{d:?}");
    }
    // The instance id from IMDS makes the N dimension set possible.
    assert!(
        accepted
            .iter()
            .any(|d| d.dimensions.iter().any(|(k, v)| k == "InstanceId" && v == INSTANCE_ID)),
        "{accepted:?}"
    );
}

#[test]
fn without_a_tag_startup_refuses_and_names_the_ways() {
    let Some(moto) = Moto::start() else { return };
    let imds = Imds::start();
    let cw = StrictCloudwatch::start();
    let dir = tempfile::tempdir().unwrap();
    node(dir.path());
    moto_tag(&moto, INSTANCE_ID, "kubernetes.io/cluster/someone-else", "shared");
    let r = run(&mut once(dir.path(), &moto, &imds, &cw));
    assert_eq!(r.status.code(), Some(78), "{}", r.stderr);
    for way in ["cluster_name", "K8S_CLUSTER_NAME", "kubernetes.io/cluster/<name>"] {
        assert!(r.stderr.contains(way), "{way} missing from:\n{}", r.stderr);
    }
    assert!(cw.accepted().is_empty(), "nothing may be sent without a cluster name");
}

#[test]
fn describe_tags_never_follows_the_metrics_endpoint_override() {
    // The override (a ConfigMap key) points at a server that records what it is sent; EC2 has no
    // endpoint of its own in the environment, so DescribeTags goes to the regional endpoint (and
    // fails here, without a network): the override must not receive the signed request.
    let fake = support::FakeServer::start(|_| support::FakeResponse::text(404, ""));
    let imds = Imds::start();
    let dir = tempfile::tempdir().unwrap();
    node(dir.path());
    std::fs::write(
        dir.path().join("c.json"),
        format!(
            r#"{{"agent":{{"region":"us-east-1"}},"kinsight":{{"node_name":"node-a",
                "metrics":{{"metadata_source":"none","endpoint_override":"{}"}},
                "logs":{{"enabled":false}},"telemetry":{{"listen_address":null}}}}}}"#,
            fake.url()
        ),
    )
    .unwrap();
    let mut cmd = kinsight();
    cmd.args(["once", "--interval", "100ms", "--output", "cloudwatch", "--host-root"])
        .arg(dir.path())
        .arg("--config")
        .arg(dir.path().join("c.json"))
        .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
        .env("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_STS", fake.url())
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds.url());
    let r = run(&mut cmd);
    assert_eq!(
        r.status.code(),
        Some(78),
        "no cluster name without the tag:\n{}",
        r.stderr
    );
    let leaked: Vec<String> = fake
        .requests()
        .iter()
        .map(support::FakeRequest::body_text)
        .filter(|b| b.contains("DescribeTags"))
        .collect();
    assert!(
        leaked.is_empty(),
        "DescribeTags reached the metrics override: {leaked:?}"
    );
    assert!(
        r.stderr.contains("endpoint override in effect") && r.stderr.contains("127.0.0.1"),
        "the override is named at startup:\n{}",
        r.stderr
    );
}
