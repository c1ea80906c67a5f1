//! The `kinsight` section: kinsight's own settings, which the `CloudWatch` agent does not have.
//! Every object here is strict (unknown keys are errors).
//!
//! As in `upstream.rs`, each key is read once and the comment above the call is its reference:
//! type, unit, default and range.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::error::ErrorKind;
use super::model::{
    ContainerFilter, HostLogSource, LogFormat, Logs, MetadataSource, MetricDrop, Metrics, MetricsDestination,
    Multiline, MultilinePreset, MultilineStart, OutputKind, OversizeEvent, Paths, Prices, RecordProfile, StreamNames,
    TelemetrySettings,
};
use super::upstream;
use super::values;
use super::walk::{Ctx, Obj, wrong_type};

/// `PutLogEvents` counts each event as its UTF-8 message bytes plus 26 bytes, and one event may
/// be at most 1,048,576 bytes counted that way, so a message is at most 1,048,550 bytes.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>
pub const MAX_EVENT_BYTES: u64 = 1_048_576 - 26;

/// The telemetry port: 9464, the default port of OpenTelemetry's Prometheus exporter.
pub const TELEMETRY_PORT: u16 = 9464;

/// Default `kinsight.telemetry.listen_address`: the pod IP when `POD_IP` is set (kubelet probes
/// the pod IP, so nothing else needs the port), else loopback; all interfaces only when the file
/// asks for them (`"0.0.0.0:9464"`), because every interface of a host-network pod is the node's.
pub fn default_listen_address(pod_ip: Option<IpAddr>) -> SocketAddr {
    SocketAddr::new(pod_ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)), TELEMETRY_PORT)
}

const DEFAULT_DATAPLANE_CONTAINER_GLOBS: [&str; 2] = ["aws-node*", "kube-proxy*"];
const DEFAULT_DATAPLANE_UNITS: [&str; 3] = ["kubelet.service", "containerd.service", "docker.service"];
const DEFAULT_HOST_FILES: [&str; 3] = ["/var/log/messages", "/var/log/secure", "/var/log/dmesg"];

const RECORD_PROFILES: [(&str, RecordProfile); 2] = [
    ("fluent-bit", RecordProfile::FluentBit),
    ("fluentd", RecordProfile::Fluentd),
];
const STREAM_NAMES: [(&str, StreamNames); 2] = [
    ("fluent-bit", StreamNames::FluentBit),
    ("fluentd", StreamNames::Fluentd),
];
const HOST_SOURCES: [(&str, HostLogSource); 2] =
    [("files", HostLogSource::Files), ("journald", HostLogSource::Journald)];
const OVERSIZE_EVENTS: [(&str, OversizeEvent); 2] =
    [("truncate", OversizeEvent::Truncate), ("split", OversizeEvent::Split)];

/// `kinsight`, as read from the file.
#[derive(Debug)]
pub(super) struct Kinsight {
    pub output: Option<OutputKind>,
    pub node_name: Option<String>,
    pub metrics: Metrics,
    pub logs: Logs,
    pub paths: Paths,
    pub require_workload_identity: bool,
    pub telemetry: TelemetrySettings,
    pub prices: Prices,
}

/// Values that the upstream sections or the environment decide, needed to fill kinsight's
/// structs.
#[derive(Debug)]
pub(super) struct Given {
    /// `apiserver` in a cluster or with a kubeconfig, else `none` (node-level records only).
    pub default_metadata_source: MetadataSource,
    /// `logs.force_flush_interval`.
    pub force_flush_interval: Duration,
    /// `logs.endpoint_override`.
    pub logs_endpoint_override: Option<String>,
    /// `POD_IP`, parsed (an invalid value is already an error).
    pub pod_ip: Option<IpAddr>,
    /// `HOST_IP` (downward API `status.hostIP`), for the default exporter URLs.
    pub host_ip: Option<String>,
}

/// The `kinsight` section.
pub(super) fn section(mut o: Obj<'_>, cx: &mut Ctx, given: Given) -> Kinsight {
    let k = Kinsight {
        // "cloudwatch" | "stdout" | "dir:PATH", default "cloudwatch": where items go. The
        // --output flag wins over this key.
        output: o.parsed(cx, "output", values::output),
        // string, no default: the node name; wins over
        // logs.metrics_collected.kubernetes.host_name, HOST_NAME and the host name.
        node_name: o.parsed(cx, "node_name", values::node_name),
        metrics: metrics(
            o.object(cx, "metrics"),
            cx,
            given.default_metadata_source,
            given.host_ip.as_deref(),
        ),
        logs: logs(
            o.object(cx, "logs"),
            cx,
            given.force_flush_interval,
            given.logs_endpoint_override,
        ),
        paths: paths(o.object(cx, "paths"), cx),
        require_workload_identity: identity(o.object(cx, "identity"), cx),
        telemetry: telemetry(o.object(cx, "telemetry"), cx, given.pod_ip),
        prices: prices(o.object(cx, "cost"), cx),
    };
    o.finish(cx);
    k
}

/// The DCGM exporter on this node: dcgm-exporter listens on 9400 (`--address :9400`, its
/// default), reached through the node's IP since kinsight's pod is not in the host network.
fn default_dcgm_url(host_ip: Option<&str>) -> url::Url {
    node_local_url(host_ip, 9400)
}

/// AWS Neuron: neuron-monitor on this node. Its Prometheus exporter listens on 8000, the port
/// upstream scrapes (`neuron-monitor-service:8000` in the CloudWatch agent's
/// `translator/translate/otel/pipeline/opentelemetry/containerinsights/neuron.yaml`), reached
/// through the node's IP like the DCGM exporter.
fn default_neuron_monitor_url(host_ip: Option<&str>) -> url::Url {
    node_local_url(host_ip, 8000)
}

/// `http://$HOST_IP:port/metrics`, loopback without a (valid) `HOST_IP`.
fn node_local_url(host_ip: Option<&str>, port: u16) -> url::Url {
    let host = match host_ip.and_then(|ip| ip.parse::<IpAddr>().ok()) {
        Some(IpAddr::V6(ip)) => format!("[{ip}]"),
        Some(ip) => ip.to_string(),
        None => Ipv4Addr::LOCALHOST.to_string(),
    };
    url::Url::parse(&format!("http://{host}:{port}/metrics")).expect("an IP address and a port make a valid URL")
}

/// `kinsight.metrics`.
fn metrics(mut o: Obj<'_>, cx: &mut Ctx, default_source: MetadataSource, host_ip: Option<&str>) -> Metrics {
    // http URL, default "http://$HOST_IP:9400/metrics" (127.0.0.1 without HOST_IP): the node's
    // DCGM exporter (9400 is dcgm-exporter's default port).
    let dcgm = o.parsed(cx, "dcgm_exporter_url", values::exporter_url);
    // http URL, default "http://$HOST_IP:8000/metrics" (127.0.0.1 without HOST_IP): the node's
    // neuron-monitor (AWS Neuron metrics; 8000 is the port upstream scrapes).
    let neuron = o.parsed(cx, "neuron_monitor_url", values::exporter_url);
    let m = Metrics {
        // "put_metric_data" | "emf" | "both", default "put_metric_data": how metrics reach CloudWatch.
        destination: o
            .choice(
                cx,
                "destination",
                &[
                    ("put_metric_data", MetricsDestination::PutMetricData),
                    ("emf", MetricsDestination::Emf),
                    ("both", MetricsDestination::Both),
                ],
            )
            .unwrap_or(MetricsDestination::PutMetricData),
        // "apiserver" | "runtime" | "file:PATH" | "none"; default "apiserver" when KUBERNETES_SERVICE_HOST
        // is set or kube_config_path is given, else "none".
        metadata_source: o
            .parsed(cx, "metadata_source", values::metadata_source)
            .unwrap_or(default_source),
        // string, no default: CloudWatch (metrics) endpoint, http(s) URL or bare host.
        endpoint_override: upstream::endpoint(cx, &mut o, "endpoint_override"),
        // integer 1..=60, default 5: intervals held while CloudWatch is unreachable.
        queue_intervals: o
            .uint(cx, "queue_intervals", 1..=60, "intervals")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(5),
        // integer 3..=600, default 60 (client-go's and the CloudWatch agent's lease duration).
        leader_lease: o
            .uint(cx, "leader_lease_secs", 3..=600, "seconds")
            .map_or(crate::kube::DEFAULT_LEASE_DURATION, Duration::from_secs),
        // [{metric?, dimensions?}], default []: metrics or dimension sets not sent, each checked
        // against the declaration table (a typo is an error).
        drop: o
            .objects(cx, "drop")
            .into_iter()
            .filter_map(|e| metric_drop(e, cx))
            .collect(),
        dcgm_exporter_url_set: dcgm.is_some(),
        dcgm_exporter_url: dcgm.unwrap_or_else(|| default_dcgm_url(host_ip)),
        neuron_monitor_url_set: neuron.is_some(),
        neuron_monitor_url: neuron.unwrap_or_else(|| default_neuron_monitor_url(host_ip)),
    };
    o.finish(cx);
    m
}

/// One `kinsight.metrics.drop` entry.
fn metric_drop(mut o: Obj<'_>, cx: &mut Ctx) -> Option<MetricDrop> {
    let path = o.path_of("");
    let path = path.trim_end_matches('.').to_string();
    let metric = o.str(cx, "metric").map(str::to_string);
    let dimensions = o.str_list(cx, "dimensions", values::non_empty);
    let dims_given = o.value("dimensions").is_some();
    o.finish(cx);
    if metric.is_none() && !dims_given {
        cx.error(
            path,
            ErrorKind::invalid("names neither a metric nor dimensions: it would drop everything"),
        );
        return None;
    }
    if dims_given && dimensions.is_none() {
        return None; // the list's own error is reported
    }
    match crate::metrics::declare::check_drop(metric.as_deref(), dimensions.as_deref()) {
        Ok(dimensions) => Some(MetricDrop { metric, dimensions }),
        Err(message) => {
            cx.error(path, ErrorKind::invalid(message));
            None
        }
    }
}

/// `kinsight.logs`.
fn logs(mut o: Obj<'_>, cx: &mut Ctx, force_flush_interval: Duration, endpoint_override: Option<String>) -> Logs {
    let record_profile = o
        .choice(cx, "record_profile", &RECORD_PROFILES)
        .unwrap_or(RecordProfile::FluentBit);
    let l = Logs {
        // bool, default true: the log pipeline (application, dataplane and host groups).
        enabled: o.bool(cx, "enabled", true),
        // From `logs.logs_collected.files.collect_list` (filled in by the caller).
        collect_list: Vec::new(),
        // "fluent-bit" | "fluentd", default "fluent-bit": application record shape (read above).
        record_profile,
        // bool, default true with record_profile fluentd, else false: pod labels in
        // application records (the Container Insights Fluent Bit set-up has `Labels Off`, the
        // fluentd one kept them).
        labels: o.bool(cx, "labels", record_profile == RecordProfile::Fluentd),
        // bool, default false: pod annotations in application records (`Annotations Off` in
        // both set-ups).
        annotations: o.bool(cx, "annotations", false),
        // "fluent-bit" | "fluentd", default "fluent-bit": log stream names.
        stream_names: o
            .choice(cx, "stream_names", &STREAM_NAMES)
            .unwrap_or(StreamNames::FluentBit),
        // [glob], default []: container log files (by /var/log/containers basename) not shipped.
        exclude_container_globs: o
            .str_list(cx, "exclude_container_globs", values::glob)
            .unwrap_or_default(),
        // [{type, expression, container_globs}], default []: container log records shipped
        // only if every filter of their container lets them through (Fluent Bit's `grep`).
        filters: container_filters(&mut o, cx),
        // group template, default none (`/aws/containerinsights/<cluster>/application`): the
        // group of application container logs, e.g. one per namespace.
        application_log_group: o.parsed(cx, "application_log_group", values::application_group_template),
        // [glob], default ["aws-node*", "kube-proxy*"]: container logs routed to `dataplane`.
        dataplane_container_globs: o
            .str_list(cx, "dataplane_container_globs", values::glob)
            .unwrap_or_else(|| owned(&DEFAULT_DATAPLANE_CONTAINER_GLOBS)),
        // [string], default ["kubelet.service", "containerd.service", "docker.service"]:
        // journald units routed to `dataplane`.
        dataplane_units: o
            .str_list(cx, "dataplane_units", values::non_empty)
            .unwrap_or_else(|| owned(&DEFAULT_DATAPLANE_UNITS)),
        // "files" | "journald", default "files": source of the `host` group.
        host_source: o
            .choice(cx, "host_source", &HOST_SOURCES)
            .unwrap_or(HostLogSource::Files),
        // [absolute path], default ["/var/log/messages", "/var/log/secure", "/var/log/dmesg"]:
        // host files for host_source "files".
        host_files: o
            .str_list(cx, "host_files", values::absolute_path)
            .unwrap_or_else(|| DEFAULT_HOST_FILES.iter().map(PathBuf::from).collect()),
        // object or array of objects, default the record profile's: multiline rules; see
        // `multiline_rules`.
        multiline: multiline_rules(&mut o, cx),
        // integer milliseconds 1..=600000, default 5000: flush of pending partial (P/F) and
        // multiline records.
        partial_flush_timeout: Duration::from_millis(
            o.uint(cx, "partial_flush_timeout_ms", 1..=600_000, "milliseconds")
                .unwrap_or(5000),
        ),
        // integer bytes 1..=1048550, default 1048550: per-event message cap.
        max_event_bytes: o
            .uint(cx, "max_event_bytes", 1..=MAX_EVENT_BYTES, "bytes")
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(1_048_550),
        // "truncate" | "split", default "truncate": events above max_event_bytes.
        oversize_event: o
            .choice(cx, "oversize_event", &OVERSIZE_EVENTS)
            .unwrap_or(OversizeEvent::Truncate),
        // integer seconds 1..=60, default 5: age at which a log batch is sent.
        flush_interval: o.secs(cx, "flush_interval_secs", 1..=60, 5),
        // bool, default true: create a missing log group.
        create_log_groups: o.bool(cx, "create_log_groups", true),
        // integer MiB 1..=256, default 3: log events held in memory, read and not yet accepted
        // by CloudWatch Logs, before the readers pause (the files on the node are the buffer).
        buffer_bytes: o
            .uint(cx, "buffer_mib", 1..=256, "MiB")
            .and_then(|m| usize::try_from(m << 20).ok())
            .unwrap_or(crate::ship::cloudwatch_logs::DEFAULT_LOGS_CAPACITY_BYTES),
        // integer 1..=16, default 8: PutLogEvents requests in flight at once, each for another
        // log stream; at most 16 a node keeps a large fleet within the account's request quota.
        put_concurrency: o
            .uint(
                cx,
                "put_concurrency",
                1..=crate::ship::cloudwatch_logs::MAX_PUT_CONCURRENCY as u64,
                "requests",
            )
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(crate::ship::cloudwatch_logs::DEFAULT_PUT_CONCURRENCY),
        // integer days or null, default null (never expire): retention of groups kinsight
        // creates; one of PutRetentionPolicy's values.
        retention_days: retention_days(cx, &mut o),
        // integer seconds 1..=300, default 25: drain deadline on SIGTERM; keep it below the pod's
        // terminationGracePeriodSeconds.
        shutdown_grace: o.secs(cx, "shutdown_grace_secs", 1..=300, 25),
        // bool, default false: honour the fluentbit.io/exclude pod annotations.
        honour_exclude_annotation: o.bool(cx, "honour_exclude_annotation", false),
        // integer percent 0..=50, default 15 (0: never): the disk-pressure bound. kubelet evicts
        // pods below 10 % free (`nodefs.available<10%`, its default hard eviction threshold), so
        // held deleted files are given up before that.
        disk_pressure_free_percent: o
            .uint(cx, "disk_pressure_free_percent", 0..=50, "percent")
            .and_then(|p| u8::try_from(p).ok())
            .unwrap_or(15),
        force_flush_interval,
        endpoint_override,
    };
    o.finish(cx);
    l
}

fn owned(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// `kinsight.logs.multiline`: one rule (an object) or several (an array, the first rule whose
/// globs match a container applies); absent means the record profile's default.
fn multiline_rules(o: &mut Obj<'_>, cx: &mut Ctx) -> Option<Vec<Multiline>> {
    match o.value("multiline") {
        None => None,
        Some(Value::Array(_)) => Some(
            o.objects(cx, "multiline")
                .into_iter()
                .filter_map(|rule| multiline(rule, cx))
                .collect(),
        ),
        Some(Value::Object(_)) => Some(multiline(o.object(cx, "multiline"), cx).into_iter().collect()),
        Some(other) => {
            cx.error(
                o.path_of("multiline"),
                wrong_type("an object or an array of objects", other),
            );
            None
        }
    }
}

const MULTILINE_PRESETS: [(&str, MultilinePreset); 3] = [
    ("java", MultilinePreset::Java),
    ("python", MultilinePreset::Python),
    ("go", MultilinePreset::Go),
];

/// One multiline rule: `first_line_regex` or `preset`, exactly one, and its containers.
fn multiline(mut o: Obj<'_>, cx: &mut Ctx) -> Option<Multiline> {
    if !o.is_present() {
        o.finish(cx);
        return None;
    }
    let given = (o.value("first_line_regex").is_some(), o.value("preset").is_some());
    // string: a line matching this regex (Rust `regex` syntax) starts a new record.
    let regex = o.parsed(cx, "first_line_regex", values::regex);
    // "java" | "python" | "go": Fluent Bit's built-in multiline parser of that name.
    let preset = o.choice(cx, "preset", &MULTILINE_PRESETS);
    // [glob], default ["*"]: the containers (by /var/log/containers basename) it applies to.
    let container_globs = o
        .str_list(cx, "container_globs", values::glob)
        .unwrap_or_else(|| vec!["*".to_owned()]);
    let path = o.path().to_owned();
    o.finish(cx);
    let start = match given {
        (true, true) => {
            cx.error(path, ErrorKind::invalid("set first_line_regex or preset, not both"));
            return None;
        }
        (false, false) => {
            cx.error(
                path,
                ErrorKind::invalid("needs first_line_regex (a pattern) or preset (java, python or go)"),
            );
            return None;
        }
        (true, false) => MultilineStart::FirstLineRegex(regex?),
        (false, true) => MultilineStart::Preset(preset?),
    };
    Some(Multiline { start, container_globs })
}

/// `kinsight.logs.filters`: `type` ("include" | "exclude") and `expression` as in a
/// `collect_list` entry's filters, and the containers each applies to.
fn container_filters(o: &mut Obj<'_>, cx: &mut Ctx) -> Vec<ContainerFilter> {
    let mut out = Vec::new();
    for mut f in o.objects(cx, "filters") {
        let filter = super::collect::filter(&mut f, cx);
        // [glob], default ["*"]: the containers (by /var/log/containers basename) it applies to.
        let container_globs = f
            .str_list(cx, "container_globs", values::glob)
            .unwrap_or_else(|| vec!["*".to_owned()]);
        f.finish(cx);
        if let Some(filter) = filter {
            out.push(ContainerFilter {
                filter,
                container_globs,
            });
        }
    }
    out
}

fn retention_days(cx: &mut Ctx, o: &mut Obj<'_>) -> Option<u32> {
    if o.value("retention_days").is_some_and(Value::is_null) {
        return None;
    }
    let days = o.uint(cx, "retention_days", 1..=u64::MAX, "days")?;
    if values::RETENTION_DAYS.contains(&days) {
        u32::try_from(days).ok()
    } else {
        let allowed: Vec<String> = values::RETENTION_DAYS.iter().map(u64::to_string).collect();
        cx.error(
            o.path_of("retention_days"),
            ErrorKind::OutOfRange {
                expected: format!("one of {} (days, as PutRetentionPolicy allows)", allowed.join(", ")),
                got: days.to_string(),
            },
        );
        None
    }
}

/// `kinsight.paths`: host paths, absolute, resolved under `--host-root`.
fn paths(mut o: Obj<'_>, cx: &mut Ctx) -> Paths {
    let mut path = |key: &'static str, default: &str| {
        o.parsed(cx, key, values::absolute_path)
            .unwrap_or_else(|| PathBuf::from(default))
    };
    let p = Paths {
        // absolute path, default "/var/lib/kinsight": checkpoints (the one writable host path).
        // Needs a restart to change.
        state_dir: path("state_dir", "/var/lib/kinsight"),
        // absolute path, default "/var/log/pods": kubelet's pod log directory.
        pod_logs_dir: path("pod_logs_dir", "/var/log/pods"),
        // absolute path, default "/var/log/containers": kubelet's container log symlinks.
        container_logs_dir: path("container_logs_dir", "/var/log/containers"),
        // absolute path, default "/run/containerd/containerd.sock": containerd's socket, for
        // container metadata, events and filesystem usage. Needs a restart to change.
        containerd_socket: path("containerd_socket", crate::runtime::DEFAULT_SOCKET),
    };
    o.finish(cx);
    p
}

/// `kinsight.cost`: the prices `kinsight cost` uses (US dollars, ≥ 0).
fn prices(mut o: Obj<'_>, cx: &mut Ctx) -> Prices {
    let d = Prices::default();
    let price = |o: &mut Obj<'_>, cx: &mut Ctx, key: &'static str, default: f64| {
        let path = o.path_of(key);
        match o.number(cx, key) {
            Some(v) if v.is_finite() && v >= 0.0 => v,
            Some(v) => {
                cx.error(
                    path,
                    ErrorKind::OutOfRange {
                        expected: "a price in US dollars, 0 or more".into(),
                        got: v.to_string(),
                    },
                );
                default
            }
            None => default,
        }
    };
    let mut tiers = o.object(cx, "custom_metric_month_usd");
    let [t1, t2, t3, t4] = d.custom_metric_month;
    let p = Prices {
        // {first_10000, next_240000, next_750000, over_1000000}, default 0.30, 0.10, 0.05, 0.02:
        // per custom metric and month.
        custom_metric_month: [
            price(&mut tiers, cx, "first_10000", t1),
            price(&mut tiers, cx, "next_240000", t2),
            price(&mut tiers, cx, "next_750000", t3),
            price(&mut tiers, cx, "over_1000000", t4),
        ],
        // number, default 0.01: per 1,000 PutMetricData requests.
        put_metric_data_per_1000: price(&mut o, cx, "put_metric_data_per_1000_usd", d.put_metric_data_per_1000),
        // number, default 0.50: per GB of CloudWatch Logs ingestion.
        log_ingestion_per_gb: price(&mut o, cx, "log_ingestion_per_gb_usd", d.log_ingestion_per_gb),
    };
    tiers.finish(cx);
    o.finish(cx);
    p
}

/// `kinsight.identity`.
fn identity(mut o: Obj<'_>, cx: &mut Ctx) -> bool {
    // bool, default false: accept only IRSA or EKS Pod Identity, never the node role.
    let require = o.bool(cx, "require_workload_identity", false);
    o.finish(cx);
    require
}

/// `kinsight.telemetry`: kinsight's own endpoints and log lines.
fn telemetry(mut o: Obj<'_>, cx: &mut Ctx, pod_ip: Option<IpAddr>) -> TelemetrySettings {
    // "IP:PORT" or null, default "$POD_IP:9464" (or "127.0.0.1:9464" without POD_IP): /healthz,
    // /readyz and /metrics; "0.0.0.0:9464" listens on every interface; null disables the
    // endpoint. Needs a restart to change.
    let path = o.path_of("listen_address");
    let listen_address = match o.value("listen_address") {
        None => Some(default_listen_address(pod_ip)),
        Some(Value::Null) => None,
        Some(Value::String(s)) => values::socket_address(s).map_err(|kind| cx.error(path, kind)).ok(),
        Some(other) => {
            cx.error(path, wrong_type("a string or null", other));
            None
        }
    };
    let t = TelemetrySettings {
        listen_address,
        // "text" | "json", default "text": format of kinsight's own log lines (stderr).
        log_format: o
            .choice(
                cx,
                "log_format",
                &[("text", LogFormat::Text), ("json", LogFormat::Json)],
            )
            .unwrap_or(LogFormat::Text),
    };
    o.finish(cx);
    t
}
