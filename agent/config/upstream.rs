//! The sections kinsight shares with the `CloudWatch` agent: `agent` and `logs` (with
//! `logs.metrics_collected.kubernetes`). Schema: the `CloudWatch` agent's
//! `translator/config/schema.json`.
//!
//! Each key is read once, by one getter call; the comment above the call is the key's reference
//! (type, unit, default, range). Keys the `CloudWatch` agent defines but kinsight does not use
//! are listed explicitly with `ignored` (one warning each when present), so a pasted `CloudWatch`
//! agent file loads while a typo still fails.

use std::path::PathBuf;
use std::time::Duration;

use super::error::ErrorKind;
use super::values;
use super::walk::{Ctx, Obj};

/// The `CloudWatch` agent's interval rule: integer seconds 1..=172800
/// (`translator/config/schema.json` in aws/amazon-cloudwatch-agent).
pub(super) const INTERVAL_SECS: std::ops::RangeInclusive<u64> = 1..=172_800;

/// `agent`, as read from the file (nothing resolved yet).
#[derive(Debug, Default)]
pub(super) struct Agent {
    pub region: Option<String>,
    pub metrics_collection_interval: Option<u64>,
    pub debug: bool,
    pub role_arn: Option<String>,
}

/// `logs`, as read from the file.
#[derive(Debug, Default)]
pub(super) struct Logs {
    pub force_flush_interval: Duration,
    /// `logs_collected.files.collect_list`.
    pub collect_list: Vec<super::model::CollectFile>,
    /// Already a URL (a bare host became `https://host`).
    pub endpoint_override: Option<String>,
    pub role_arn: Option<String>,
    pub kubernetes: Kubernetes,
}

/// `logs.metrics_collected.kubernetes`, as read from the file.
#[expect(clippy::struct_excessive_bools, reason = "one field per boolean key of the file")]
#[derive(Debug, Default)]
pub(super) struct Kubernetes {
    pub cluster_name: Option<String>,
    pub metrics_collection_interval: Option<u64>,
    pub enhanced_container_insights: bool,
    pub metric_granularity: Option<f64>,
    pub disable_metric_extraction: bool,
    pub prefer_full_pod_name: bool,
    pub tag_service: bool,
    pub accelerated_compute_metrics: bool,
    pub kube_config_path: Option<PathBuf>,
    pub host_name: Option<String>,
}

/// The `agent` section.
pub(super) fn agent(mut o: Obj<'_>, cx: &mut Ctx) -> Agent {
    let agent = Agent {
        // string, no default: region for every AWS call; lowercase letters, digits and '-'.
        // Falls back to AWS_REGION, then to the SDK chain and IMDS.
        region: o.parsed(cx, "region", values::region),
        // integer seconds 1..=172800, default 60: collection interval when
        // logs.metrics_collected.kubernetes.metrics_collection_interval is absent.
        metrics_collection_interval: o.uint(cx, "metrics_collection_interval", INTERVAL_SECS, "seconds"),
        // bool, default false: debug logging.
        debug: o.bool(cx, "debug", false),
        // object {role_arn}: role assumed on top of the base identity for every AWS call.
        role_arn: credentials(o.object(cx, "credentials"), cx),
    };
    // The CloudWatch agent's keys that Container Insights does not need.
    for key in [
        "logfile",
        "aws_sdk_log_level",
        "omit_hostname",
        "service.name",
        "deployment.environment",
        "run_as_user",
        "usage_data",
    ] {
        o.ignored(cx, key);
    }
    o.finish(cx);
    agent
}

/// `agent.credentials` and `logs.credentials`: `{"role_arn": "arn:aws:iam::<account>:role/<name>"}`.
fn credentials(mut o: Obj<'_>, cx: &mut Ctx) -> Option<String> {
    // string, no default: IAM role ARN to assume (sts:AssumeRole).
    let role_arn = o.parsed(cx, "role_arn", values::role_arn);
    o.finish(cx);
    role_arn
}

/// The `logs` section.
pub(super) fn logs(mut o: Obj<'_>, cx: &mut Ctx) -> Logs {
    let mut logs = Logs {
        // integer seconds 1..=172800, default 5: flush period of performance (EMF) events.
        force_flush_interval: o.secs(cx, "force_flush_interval", INTERVAL_SECS, 5),
        // string, no default: CloudWatch Logs endpoint, http(s) URL or bare host (= https://host).
        endpoint_override: endpoint(cx, &mut o, "endpoint_override"),
        // object {role_arn}: role for CloudWatch Logs calls only.
        role_arn: credentials(o.object(cx, "credentials"), cx),
        // object: only `kubernetes` is implemented.
        kubernetes: metrics_collected(o.object(cx, "metrics_collected"), cx),
        collect_list: Vec::new(),
    };
    // string, default "{instance_id}": the stream of collect_list entries that name none.
    let default_stream = o.str(cx, "log_stream_name");
    // object {files: {collect_list: [...]}}: the CloudWatch agent's own file collection.
    logs.collect_list = super::collect::logs_collected(o.object(cx, "logs_collected"), cx, default_stream);
    // integer >= 1: the CloudWatch agent's export workers; accepted and ignored.
    if o.uint(cx, "concurrency", 1..=u64::MAX, "").is_some() {
        o.ignored(cx, "concurrency");
    }
    o.finish(cx);
    logs
}

/// An endpoint override key. Requests to it are signed with the agent's credentials and carry
/// metrics or log contents, so: plain `http` to a host that is not loopback is an error unless
/// the DaemonSet sets `KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true`, and every override in effect is
/// a warning naming its host (at startup, and at the reload that sets it).
pub(super) fn endpoint(cx: &mut Ctx, o: &mut Obj<'_>, key: &'static str) -> Option<String> {
    let e = o.parsed(cx, key, values::endpoint)?;
    let path = o.path_of(key);
    if e.is_plain_http {
        if !cx.allow_plain_http {
            cx.error(
                path,
                ErrorKind::invalid(format!(
                    "plain http to {}, which is not loopback, would send signed requests and data unencrypted; use \
                     https, or set KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true in the DaemonSet",
                    e.host
                )),
            );
            return None;
        }
        cx.warn(format!(
            "{path}: plain http to {} (allowed by KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS); data travels unencrypted",
            e.host
        ));
    }
    cx.warn(format!(
        "{path}: endpoint override in effect; requests signed with the agent's credentials go to {}",
        e.host
    ));
    Some(e.url)
}

/// `logs.metrics_collected`: `kubernetes` is read; the `CloudWatch` agent's other collectors
/// are accepted with one warning each.
fn metrics_collected(mut o: Obj<'_>, cx: &mut Ctx) -> Kubernetes {
    let kubernetes = kubernetes(o.object(cx, "kubernetes"), cx);
    for key in ["emf", "prometheus", "app_signals", "application_signals", "otlp", "ecs"] {
        let message = format!("{}: not implemented by kinsight and ignored", o.path_of(key));
        o.not_implemented(cx, key, &message);
    }
    o.finish(cx);
    kubernetes
}

/// `logs.metrics_collected.kubernetes`.
fn kubernetes(mut o: Obj<'_>, cx: &mut Ctx) -> Kubernetes {
    let k = Kubernetes {
        // string, no default: ClusterName; letters, digits and . - _ / #, at most 477 characters
        // so that /aws/containerinsights/<cluster>/performance fits in 512. Falls back to
        // K8S_CLUSTER_NAME, then to "local" for a local output.
        cluster_name: o.parsed(cx, "cluster_name", values::cluster_name),
        // integer seconds 1..=172800, default agent.metrics_collection_interval, else 60.
        metrics_collection_interval: o.uint(cx, "metrics_collection_interval", INTERVAL_SECS, "seconds"),
        // bool, default false: enhanced observability.
        enhanced_container_insights: o.bool(cx, "enhanced_container_insights", false),
        // number > 0, default 1: legacy switch; a value above 1 turns on enhanced observability.
        metric_granularity: granularity(cx, &mut o),
        // bool, default false: performance events without the CloudWatchMetrics directive, so no
        // metrics at all.
        disable_metric_extraction: o.bool(cx, "disable_metric_extraction", false),
        // bool, default false (forced true by enhanced observability): PodName keeps the full
        // pod name.
        prefer_full_pod_name: o.bool(cx, "prefer_full_pod_name", false),
        // bool, default true: the Service attribute (by selector).
        tag_service: o.bool(cx, "tag_service", true),
        // bool, default true: GPU, Neuron and EFA metrics (declared only with enhanced).
        accelerated_compute_metrics: o.bool(cx, "accelerated_compute_metrics", true),
        // string, no default: kubeconfig for the apiserver when not running in a pod; its
        // presence makes `apiserver` the default metadata source.
        kube_config_path: o.parsed(cx, "kube_config_path", |s| values::non_empty(s).map(PathBuf::from)),
        // string, no default: the node name; below kinsight.node_name, above HOST_NAME.
        host_name: o.parsed(cx, "host_name", values::node_name),
    };
    // integer seconds: high-frequency GPU collection; accepted and ignored.
    if o.uint(
        cx,
        "accelerated_compute_gpu_metrics_collection_interval",
        INTERVAL_SECS,
        "seconds",
    )
    .is_some()
    {
        o.ignored(cx, "accelerated_compute_gpu_metrics_collection_interval");
    }
    // bool: control-plane metrics of the CloudWatch agent's add-on; accepted and ignored.
    if o.opt_bool(cx, "enable_control_plane_metrics").is_some() {
        o.ignored(cx, "enable_control_plane_metrics");
    }
    // string: the kubelet address; kinsight does not call the kubelet; accepted and ignored.
    if o.str(cx, "host_ip").is_some() {
        o.ignored(cx, "host_ip");
    }
    // bool, default false: separate pipelines kinsight does not have; a warning when true.
    for key in ["kueue_container_insights", "jmx_container_insights"] {
        if o.opt_bool(cx, key) == Some(true) {
            cx.warn(format!("{}: not supported by kinsight; ignored", o.path_of(key)));
        }
    }
    o.finish(cx);
    k
}

fn granularity(cx: &mut Ctx, o: &mut Obj<'_>) -> Option<f64> {
    let value = o.number(cx, "metric_granularity")?;
    if value > 0.0 {
        Some(value)
    } else {
        cx.error(
            o.path_of("metric_granularity"),
            ErrorKind::OutOfRange {
                expected: "greater than 0".into(),
                got: value.to_string(),
            },
        );
        None
    }
}
