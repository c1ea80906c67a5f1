//! The validated configuration: what every other module reads.
//!
//! These types are produced only by [`super::load_str`] / [`super::load_file`] (parse →
//! validate), never built by hand outside tests. The raw JSON keys, their defaults and ranges
//! are documented where they are read (`upstream.rs` for the `CloudWatch` agent's sections,
//! `kinsight.rs` for kinsight's own) and in the README's configuration reference.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where metric and log items go. `--output` on the command line overrides
/// `kinsight.output` in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputKind {
    /// `CloudWatch` (`PutMetricData`) and `CloudWatch Logs`: the default in a cluster.
    Cloudwatch,
    /// JSON lines on standard output, one per item: exactly what would be sent.
    Stdout,
    /// The same JSON lines, appended to files in this directory.
    Dir(PathBuf),
}

impl OutputKind {
    /// `stdout` and `dir:` need no AWS account and no cluster: "local mode".
    pub fn is_local(&self) -> bool {
        !matches!(self, OutputKind::Cloudwatch)
    }

    /// Parses `cloudwatch`, `stdout` or `dir:PATH` (non-empty `PATH`): the value of the config
    /// key `kinsight.output` and of the `--output` flag. The error is one line for the user.
    pub fn parse(s: &str) -> Result<OutputKind, String> {
        super::values::output(s).map_err(|kind| kind.to_string())
    }
}

impl std::str::FromStr for OutputKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OutputKind::parse(s)
    }
}

/// How metrics reach `CloudWatch`: PutMetricData datums, EMF performance events that CloudWatch
/// extracts them from (as the `CloudWatch` agent does), or both (the events then carry no
/// extraction directive, so no datapoint is stored twice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsDestination {
    PutMetricData,
    Emf,
    Both,
}

/// Where pod metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    /// The apiserver (in-cluster); the default when running in a pod.
    Apiserver,
    /// A `PodList` JSON file, re-read when it changes.
    File(PathBuf),
    /// The container runtime (containerd): pod and container names, images and states from
    /// the containers' kubelet labels; no owners, labels, requests or limits.
    Runtime,
    /// No pod metadata: node metrics only.
    None,
}

/// Where the cluster name came from; `kinsight check` and the startup log say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterNameSource {
    /// `logs.metrics_collected.kubernetes.cluster_name`.
    Config,
    /// The `K8S_CLUSTER_NAME` environment variable.
    Env,
    /// No name anywhere, but the output is local: the name is `local`.
    LocalDefault,
    /// The EC2 instance tag `kubernetes.io/cluster/<name>` = `owned`, asked at startup when
    /// neither the config nor `K8S_CLUSTER_NAME` names the cluster.
    Ec2Tag,
    /// Not known yet: startup asks the EC2 instance tag before anything uses the name
    /// (`Inputs::defer_missing_cluster_name`).
    Pending,
}

/// Application log record shape: as the Fluent Bit or the fluentd Container Insights setup writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordProfile {
    FluentBit,
    Fluentd,
}

/// Log stream naming style of the Fluent Bit or the fluentd Container Insights setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamNames {
    FluentBit,
    Fluentd,
}

/// What happens to an event above `max_event_bytes`: cut to fit, or split into numbered parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OversizeEvent {
    Truncate,
    Split,
}

/// Source of the `host` log group: the `/var/log` files, or the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostLogSource {
    Files,
    Journald,
}

/// Format of kinsight's own diagnostic log lines (stderr): defined by `telemetry`, which owns logging.
pub use crate::telemetry::LogFormat;

/// One multiline rule for container logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Multiline {
    pub start: MultilineStart,
    /// Only containers whose `/var/log/containers` basename matches one of these globs.
    pub container_globs: Vec<String>,
}

/// How a multiline rule finds where a record starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultilineStart {
    /// `first_line_regex`: a line matching this regular expression starts a new record; other
    /// lines are appended.
    FirstLineRegex(String),
    /// `preset`: one of Fluent Bit's built-in multiline parsers.
    Preset(MultilinePreset),
}

/// Fluent Bit's built-in multiline parsers for stack traces (`multiline.parser java`, `python`,
/// `go`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MultilinePreset {
    Java,
    Python,
    Go,
}

#[expect(clippy::struct_excessive_bools, reason = "one field per boolean key of the file")]
#[derive(Debug, Clone, PartialEq)]
pub struct Kubernetes {
    /// `enhanced_container_insights`, or `metric_granularity` > 1 (legacy switch).
    pub enhanced_container_insights: bool,
    /// `prefer_full_pod_name`, forced true by enhanced observability.
    pub prefer_full_pod_name: bool,
    pub tag_service: bool,
    pub disable_metric_extraction: bool,
    pub accelerated_compute_metrics: bool,
    /// `kube_config_path`: kubeconfig for the apiserver when not running in a pod (in a pod the
    /// in-cluster configuration is used). Given, it makes `apiserver` the default metadata source.
    pub kube_config_path: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Metrics {
    pub destination: MetricsDestination,
    pub metadata_source: MetadataSource,
    /// `CloudWatch` (metrics) endpoint override. Always a URL: a bare host in the file becomes
    /// `https://<host>`.
    pub endpoint_override: Option<String>,
    /// Intervals held while `CloudWatch` is unreachable; the oldest is dropped first.
    pub queue_intervals: usize,
    /// The leader Lease's duration (metadata source `apiserver`): a leader that stops renewing
    /// is replaced after this long; it renews every twelfth of it.
    pub leader_lease: Duration,
    /// `kinsight.metrics.drop`: metrics or dimension sets not sent (the series budget).
    pub drop: Vec<MetricDrop>,
    /// `kinsight.metrics.dcgm_exporter_url`: the node's DCGM exporter (GPU metrics), default
    /// `http://$HOST_IP:9400/metrics` (loopback without `HOST_IP`).
    pub dcgm_exporter_url: url::Url,
    /// Whether the file names the DCGM exporter: then it is scraped even when the own Node
    /// object is unknown or advertises no `nvidia.com/gpu`.
    pub dcgm_exporter_url_set: bool,
    /// `kinsight.metrics.neuron_monitor_url`: the node's neuron-monitor (AWS Neuron metrics),
    /// default `http://$HOST_IP:8000/metrics` (loopback without `HOST_IP`).
    pub neuron_monitor_url: url::Url,
    /// Whether the file names neuron-monitor: then it is scraped even when the own Node object
    /// is unknown or advertises no `aws.amazon.com/neuroncore`.
    pub neuron_monitor_url_set: bool,
}

/// One entry of `kinsight.metrics.drop`: a metric (every dimension set of it), a dimension set
/// (of every metric sent with it), or one dimension set of one metric. Checked against the
/// declaration table when the file is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDrop {
    pub metric: Option<String>,
    /// Sorted by name, as the declarations write sets.
    pub dimensions: Option<Vec<String>>,
}

impl MetricDrop {
    /// Whether this entry drops `metric` sent with the dimension `set` (sorted).
    pub fn drops(&self, metric: &str, set: &[&str]) -> bool {
        self.metric.as_deref().is_none_or(|m| m == metric)
            && self
                .dimensions
                .as_deref()
                .is_none_or(|d| d.len() == set.len() && d.iter().zip(set).all(|(a, b)| a == b))
    }
}

/// Whether any entry of `drops` drops `metric` with `set`.
pub fn is_dropped(drops: &[MetricDrop], metric: &str, set: &[&str]) -> bool {
    !drops.is_empty() && drops.iter().any(|d| d.drops(metric, set))
}

/// One entry of the `CloudWatch` agent's `logs.logs_collected.files.collect_list`: files shipped
/// as they are, one event per line or per multiline record, to the group and stream named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CollectFile {
    /// Absolute, without `.` or `..`; `*`, `?` and `**` are wildcards.
    pub file_path: String,
    /// A template (`{instance_id}`, `{hostname}`, `{local_hostname}`, `{ip_address}`); `None`:
    /// the file path without its extension, or with `publish_multi_logs` each file's own path.
    pub log_group_name: Option<String>,
    /// A template, as `log_group_name`.
    pub log_stream_name: String,
    /// A `timestamp_format` pattern (checked by `logs::parse::TimestampFormat`).
    pub timestamp_format: Option<String>,
    /// `timezone: "UTC"` (else local, which is UTC in kinsight's image).
    pub timezone_utc: bool,
    pub multi_line_start: MultiLineStart,
    /// A WHATWG encoding label other than UTF-8 (`latin1`, `gbk`, `shift_jis`, …).
    pub encoding: Option<String>,
    pub filters: Vec<LogFilter>,
    /// Applied to groups kinsight creates for this entry.
    pub retention_in_days: Option<u32>,
    /// `STANDARD` or `INFREQUENT_ACCESS`, for groups kinsight creates for this entry.
    pub log_group_class: Option<LogGroupClass>,
    /// Every matching file, each to its own stream; otherwise only the newest matching file.
    pub publish_multi_logs: bool,
    /// Files whose name matches this regex are not collected.
    pub blacklist: Option<String>,
    /// Remove the time found by `timestamp_format` from the message.
    pub trim_timestamp: bool,
}

impl CollectFile {
    /// An entry for `file_path` with the `CloudWatch` agent's defaults.
    pub fn new(file_path: &str) -> CollectFile {
        CollectFile {
            file_path: file_path.to_string(),
            log_group_name: None,
            log_stream_name: super::collect::DEFAULT_STREAM.to_string(),
            timestamp_format: None,
            timezone_utc: false,
            multi_line_start: MultiLineStart::Pattern(super::collect::DEFAULT_MULTI_LINE_START.to_string()),
            encoding: None,
            filters: Vec::new(),
            retention_in_days: None,
            log_group_class: None,
            publish_multi_logs: false,
            blacklist: None,
            trim_timestamp: false,
        }
    }
}

/// Where a `collect_list` record starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MultiLineStart {
    /// A line matching this regex starts a record; other lines continue it. Without
    /// `multi_line_start_pattern` the `CloudWatch` agent uses `^[\S]` (its `fileconfig.go`), so a
    /// line starting with a space or tab continues the previous one.
    Pattern(String),
    /// `{timestamp_format}`: a line in which `timestamp_format` finds a time starts a record.
    Timestamp,
}

/// `log_group_class` of a `collect_list` entry (`CreateLogGroup` `logGroupClass`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogGroupClass {
    Standard,
    InfrequentAccess,
}

impl LogGroupClass {
    pub fn as_str(self) -> &'static str {
        match self {
            LogGroupClass::Standard => "STANDARD",
            LogGroupClass::InfrequentAccess => "INFREQUENT_ACCESS",
        }
    }
}

/// One `kinsight.logs.filters` entry: a filter for the container logs its globs match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFilter {
    pub filter: LogFilter,
    /// `/var/log/containers` basenames (`<pod>_<namespace>_<container>-<id>.log`).
    pub container_globs: Vec<String>,
}

/// One `filters` entry of a `collect_list` entry; every filter must let a record through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFilter {
    /// `include`: only matching records are shipped; `exclude`: matching ones are not.
    pub include: bool,
    /// Rust `regex` syntax.
    pub expression: String,
}

#[expect(clippy::struct_excessive_bools, reason = "one field per boolean key of the file")]
#[derive(Debug, Clone, PartialEq)]
pub struct Logs {
    pub enabled: bool,
    /// `logs.logs_collected.files.collect_list`.
    pub collect_list: Vec<CollectFile>,
    pub record_profile: RecordProfile,
    pub stream_names: StreamNames,
    /// Pod labels in application records (default: on for the fluentd profile, off for Fluent
    /// Bit's, as each set-up had them).
    pub labels: bool,
    /// Pod annotations in application records.
    pub annotations: bool,
    /// Container log files (by `/var/log/containers` basename glob) that are not shipped.
    pub exclude_container_globs: Vec<String>,
    /// `kinsight.logs.filters`: container log records shipped only if every filter whose globs
    /// match the container lets them through.
    pub filters: Vec<ContainerFilter>,
    /// `kinsight.logs.application_log_group`: the group of application container logs, a
    /// template (`logs::route::APPLICATION_GROUP_PLACEHOLDERS`); `None`: the Container Insights
    /// group `/aws/containerinsights/<cluster>/application`.
    pub application_log_group: Option<String>,
    pub dataplane_container_globs: Vec<String>,
    pub dataplane_units: Vec<String>,
    pub host_source: HostLogSource,
    pub host_files: Vec<PathBuf>,
    /// The container multiline rules, in order: a container takes the first whose globs match
    /// its basename. `None`: the file sets none, and the record profile's default applies
    /// (`logs::pipeline`: fluentd's `^\S`, none for fluent-bit); an empty list turns them off.
    pub multiline: Option<Vec<Multiline>>,
    pub partial_flush_timeout: Duration,
    pub max_event_bytes: usize,
    pub oversize_event: OversizeEvent,
    pub flush_interval: Duration,
    pub create_log_groups: bool,
    /// `kinsight.logs.buffer_mib` in bytes: log events held in memory (read, not yet settled by
    /// CloudWatch Logs) before the readers pause.
    pub buffer_bytes: usize,
    /// `kinsight.logs.put_concurrency`: `PutLogEvents` requests in flight at once (one per log
    /// stream).
    pub put_concurrency: usize,
    /// Retention applied to log groups kinsight creates; one of `CloudWatch Logs`' allowed values.
    pub retention_days: Option<u32>,
    pub shutdown_grace: Duration,
    pub honour_exclude_annotation: bool,
    /// Below this share of free space (percent, 0 = never) on the filesystem of a deleted log
    /// file kinsight still holds open, the largest such file is given up (counted, logged).
    pub disk_pressure_free_percent: u8,
    /// `logs.force_flush_interval`: flush period for performance (EMF) events.
    pub force_flush_interval: Duration,
    /// `logs.endpoint_override`: `CloudWatch Logs` endpoint. Always a URL: a bare host in the file
    /// becomes `https://<host>`.
    pub endpoint_override: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    /// Checkpoints; the one writable host path. Relative to the host root unless absolute
    /// paths are configured: see `host::Root`.
    pub state_dir: PathBuf,
    pub pod_logs_dir: PathBuf,
    pub container_logs_dir: PathBuf,
    /// containerd's socket, under the host root.
    pub containerd_socket: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentitySettings {
    pub require_workload_identity: bool,
    /// `agent.credentials.role_arn`: assumed on top of the base identity for every call.
    pub agent_role_arn: Option<String>,
    /// `logs.credentials.role_arn`: assumed for `CloudWatch Logs` only.
    pub logs_role_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// `/healthz`, `/readyz`, `/metrics`; `None` disables the endpoint.
    pub listen_address: Option<SocketAddr>,
    pub log_format: LogFormat,
}

/// The whole validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub cluster_name: String,
    pub cluster_name_source: ClusterNameSource,
    pub node_name: String,
    /// `agent.region`, else `AWS_REGION`; `None` means "ask IMDS" (identity issue).
    pub region: Option<String>,
    /// Collection interval: `logs.metrics_collected.kubernetes.metrics_collection_interval`, else
    /// `agent.metrics_collection_interval`, else 60 s.
    pub interval: Duration,
    pub debug: bool,
    pub output: OutputKind,
    pub kubernetes: Kubernetes,
    pub metrics: Metrics,
    pub logs: Logs,
    pub paths: Paths,
    pub identity: IdentitySettings,
    pub telemetry: TelemetrySettings,
    /// List prices for `kinsight cost` (`kinsight.cost`).
    pub prices: Prices,
    /// Sections kinsight does not implement, one warning each (e.g. `metrics`, `traces`), and
    /// keys it accepts but ignores; `main` logs each once at startup.
    pub warnings: Vec<String>,
}

/// The prices `kinsight cost` multiplies by, in US dollars (`kinsight.cost`). Defaults: the
/// us-east-1 list prices of the CloudWatch pricing page (<https://aws.amazon.com/cloudwatch/pricing/>,
/// "Paid tier", as of 2026; check them for your Region and date).
#[derive(Debug, Clone, PartialEq)]
pub struct Prices {
    /// Custom metrics, per metric and month, in CloudWatch's volume tiers: the first 10,000,
    /// the next 240,000, the next 750,000, and over 1,000,000.
    pub custom_metric_month: [f64; 4],
    /// `PutMetricData`, per 1,000 requests.
    pub put_metric_data_per_1000: f64,
    /// CloudWatch Logs ingestion (standard log class), per GB (2^30 bytes, as AWS bills data).
    pub log_ingestion_per_gb: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Prices {
            custom_metric_month: [0.30, 0.10, 0.05, 0.02],
            put_metric_data_per_1000: 0.01,
            log_ingestion_per_gb: 0.50,
        }
    }
}
