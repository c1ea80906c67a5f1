//! Text → [`Config`]: parse the JSON, walk every section, then resolve what depends on several
//! sources (cluster name, node name, region, interval, output).
//!
//! Startup, `kinsight config validate` and hot reload all call [`load_str`] (through
//! [`load_file`] or directly), so they cannot disagree. Everything here is pure except
//! [`load_file`]'s one read.
//!
//! Resolution rules:
//! - cluster name: `logs.metrics_collected.kubernetes.cluster_name` → `K8S_CLUSTER_NAME` →
//!   `local` when the output is `stdout` or `dir:` → error;
//! - node name: `kinsight.node_name` → `logs.metrics_collected.kubernetes.host_name` →
//!   `HOST_NAME` → the host name `main` read;
//! - region: `agent.region` → `AWS_REGION` → none (the identity chain asks further);
//! - interval, as the `CloudWatch` agent's translator has it:
//!   `logs.metrics_collected.kubernetes.metrics_collection_interval` →
//!   `agent.metrics_collection_interval` → 60 s;
//! - output: `--output` → `kinsight.output` → `cloudwatch`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use super::env::Env;
use super::error::{ConfigError, ConfigErrors, ErrorKind};
use super::kinsight::{self, Given, Kinsight};
use super::model::{
    ClusterNameSource, Config, IdentitySettings, Kubernetes, MetadataSource, MetricsDestination, OutputKind,
};
use super::upstream::{self, Agent, Logs};
use super::values;
use super::walk::{Ctx, Obj};

/// The configuration used when no `--config` is given and
/// `/etc/cwagentconfig/cwagentconfig.json` does not exist: a local run that prints node
/// metrics to stdout every 10 s, with logs off and no telemetry port.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/default.json");

/// The interval when neither config key sets one (the `CloudWatch` agent's default).
const DEFAULT_INTERVAL_SECS: u64 = 60;

/// The largest configuration file kinsight reads: a `ConfigMap` holds at most 1 MiB
/// (<https://kubernetes.io/docs/concepts/configuration/configmap/>), so a larger file did not
/// come from one, and the cap bounds the memory a load can take.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// The cluster name of a local run without one configured.
pub const LOCAL_CLUSTER_NAME: &str = "local";

const CLUSTER_NAME_PATH: &str = "logs.metrics_collected.kubernetes.cluster_name";

/// Everything besides the file that validation needs, captured once by `main`.
#[derive(Debug, Clone, Default)]
pub struct Inputs {
    pub env: Env,
    /// `--output`; wins over `kinsight.output`.
    pub output_override: Option<OutputKind>,
    /// The host's own name (`/proc/sys/kernel/hostname` under the host root): the node name
    /// when nothing else sets one.
    pub host_name_fallback: String,
    /// The cluster name startup read from the EC2 instance tag, the last source before "not
    /// set": reloads validate with it.
    pub tagged_cluster_name: Option<String>,
    /// With the `cloudwatch` output and no cluster name anywhere, return the config with
    /// [`ClusterNameSource::Pending`] instead of an error: startup then asks the EC2 instance
    /// tag. `config validate` leaves it off and reports the missing name.
    pub defer_missing_cluster_name: bool,
}

impl Inputs {
    /// A local run's inputs for tests: `--output stdout`, host name `n`, an empty environment.
    #[cfg(test)]
    pub(crate) fn local_test() -> Inputs {
        Inputs {
            output_override: Some(OutputKind::Stdout),
            host_name_fallback: "n".into(),
            ..Inputs::default()
        }
    }
}

/// Parses and validates `text`. Pure: no IO. Returns every error found, sorted by path.
pub fn load_str(text: &str, inputs: &Inputs) -> Result<Config, ConfigErrors> {
    if text.len() > MAX_FILE_BYTES {
        return Err(ConfigErrors(vec![ConfigError {
            path: String::new(),
            kind: too_large(text.len() as u64),
        }]));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigErrors(vec![malformed(&e)]))?;
    validate(&value, inputs)
}

/// Reads `path` and calls [`load_str`]. A read error is one error with an empty path; malformed
/// JSON is reported with the file name as its path.
pub fn load_file(path: &Path, inputs: &Inputs) -> Result<Config, ConfigErrors> {
    let text = read_file(path)?;
    load_str(&text, inputs).map_err(|errors| errors.in_file(path))
}

/// Reads a configuration file of at most [`MAX_FILE_BYTES`] as UTF-8; anything larger is
/// refused after reading one byte past the cap, whatever its size.
pub fn read_file(path: &Path) -> Result<String, ConfigErrors> {
    use std::io::Read as _;
    let io_error = |e: &dyn std::fmt::Display| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            kind: ErrorKind::Io {
                file: path.to_path_buf(),
                message: e.to_string(),
            },
        }])
    };
    let file = std::fs::File::open(path).map_err(|e| io_error(&e))?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| io_error(&e))?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(ConfigErrors(vec![ConfigError {
            path: path.display().to_string(),
            kind: too_large(bytes.len() as u64),
        }]));
    }
    String::from_utf8(bytes).map_err(|e| io_error(&e))
}

/// The error for a file over [`MAX_FILE_BYTES`]; `seen` is how much was read.
pub fn too_large(seen: u64) -> ErrorKind {
    ErrorKind::invalid(format!(
        "the file is larger than {MAX_FILE_BYTES} bytes (1 MiB, the most a ConfigMap holds); read {seen} \
         bytes before stopping"
    ))
}

fn malformed(e: &serde_json::Error) -> ConfigError {
    // serde_json's message ends with " at line L column C"; the position is kept in fields.
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let msg = text.strip_suffix(&suffix).unwrap_or(&text).to_owned();
    ConfigError {
        path: String::new(),
        kind: ErrorKind::Malformed {
            line: e.line(),
            column: e.column(),
            msg,
        },
    }
}

/// The walk over a parsed document.
fn validate(root: &Value, inputs: &Inputs) -> Result<Config, ConfigErrors> {
    let mut cx = Ctx {
        allow_plain_http: inputs.env.allow_plain_http_endpoints,
        ..Ctx::default()
    };
    let mut top = Obj::root(&mut cx, root);
    let agent = upstream::agent(top.object(&mut cx, "agent"), &mut cx);
    let logs = upstream::logs(top.object(&mut cx, "logs"), &mut cx);
    let in_cluster = inputs.env.kubernetes_service_host.is_some() || logs.kubernetes.kube_config_path.is_some();
    let given = Given {
        default_metadata_source: if in_cluster {
            MetadataSource::Apiserver
        } else {
            MetadataSource::None
        },
        force_flush_interval: logs.force_flush_interval,
        logs_endpoint_override: logs.endpoint_override.clone(),
        pod_ip: inputs.env.pod_ip.as_deref().and_then(|ip| {
            ip.parse()
                .map_err(|_| {
                    cx.error(
                        "env POD_IP",
                        ErrorKind::invalid(format!("{ip:?} is not an IP address (downward API status.podIP)")),
                    );
                })
                .ok()
        }),
        host_ip: inputs.env.host_ip.clone(),
    };
    let kinsight = kinsight::section(top.object(&mut cx, "kinsight"), &mut cx, given);
    // The CloudWatch agent's other top-level sections: a pasted file loads, with a warning.
    for section in ["metrics", "traces", "csm"] {
        let message = format!("section {section:?} is not implemented by kinsight and is ignored");
        top.not_implemented(&mut cx, section, &message);
    }
    top.finish(&mut cx);

    env_endpoints(&mut cx, &inputs.env);
    let config = assemble(&mut cx, agent, logs, kinsight, inputs);
    if cx.errors.is_empty() {
        Ok(Config {
            warnings: cx.warnings,
            ..config
        })
    } else {
        cx.errors.sort_by(|a, b| a.path.cmp(&b.path));
        Err(ConfigErrors(cx.errors))
    }
}

/// The SDK's endpoint variables (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`) obey the same
/// rules as the config's overrides: the SDK sends signed requests to them. (The credential
/// endpoints need no rule here: `AWS_CONTAINER_CREDENTIALS_FULL_URI` is checked by aws-config's
/// `ecs` provider — loopback or the EKS Pod Identity agent's link-local addresses for `http` —
/// and IMDS is link-local by design.)
fn env_endpoints(cx: &mut Ctx, env: &super::env::Env) {
    let aws = &env.aws;
    for (name, value) in [
        ("AWS_ENDPOINT_URL", &aws.endpoint_url),
        ("AWS_ENDPOINT_URL_STS", &aws.endpoint_url_sts),
        ("AWS_ENDPOINT_URL_CLOUDWATCH", &aws.endpoint_url_cloudwatch),
        ("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &aws.endpoint_url_cloudwatch_logs),
        ("AWS_ENDPOINT_URL_EC2", &aws.endpoint_url_ec2),
    ] {
        let Some(value) = value else { continue };
        let path = format!("env {name}");
        match values::endpoint(value) {
            Err(kind) => cx.error(path, kind),
            Ok(e) if e.is_plain_http && !cx.allow_plain_http => cx.error(
                path,
                ErrorKind::invalid(format!(
                    "plain http to {}, which is not loopback, would send signed requests unencrypted; use https, \
                     or set KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true",
                    e.host
                )),
            ),
            Ok(_) => {}
        }
    }
}

/// Resolves the values that depend on several sources and applies the cross-key rules.
fn assemble(cx: &mut Ctx, agent: Agent, logs: Logs, k: Kinsight, inputs: &Inputs) -> Config {
    let output = inputs
        .output_override
        .clone()
        .or(k.output)
        .unwrap_or(OutputKind::Cloudwatch);
    let kube = logs.kubernetes;
    let (cluster_name, cluster_name_source) = cluster_name(cx, kube.cluster_name, inputs, &output);
    let node_name = k
        .node_name
        .or(kube.host_name)
        .or_else(|| inputs.env.host_name.clone())
        .unwrap_or_else(|| inputs.host_name_fallback.clone());
    let region = agent.region.or_else(|| {
        let env = inputs.env.aws_region.as_deref()?;
        values::region(env)
            .map_err(|kind| cx.error("env AWS_REGION", kind))
            .ok()
    });
    let interval_secs = kube
        .metrics_collection_interval
        .or(agent.metrics_collection_interval)
        .unwrap_or(DEFAULT_INTERVAL_SECS);
    // metric_granularity > 1 is the CloudWatch agent's legacy switch for enhanced observability.
    let enhanced = kube.enhanced_container_insights || kube.metric_granularity.is_some_and(|g| g > 1.0);
    if kube.disable_metric_extraction && k.metrics.destination == MetricsDestination::PutMetricData {
        // With extraction disabled, put_metric_data would send nothing at all.
        cx.error(
            "logs.metrics_collected.kubernetes.disable_metric_extraction",
            ErrorKind::invalid(
                "true sends no metrics at all with kinsight.metrics.destination \
                 \"put_metric_data\" (the default); set the destination to \"emf\" or \"both\", \
                 or remove this key",
            ),
        );
    }
    Config {
        cluster_name,
        cluster_name_source,
        node_name,
        region,
        interval: Duration::from_secs(interval_secs),
        debug: agent.debug,
        output,
        kubernetes: Kubernetes {
            enhanced_container_insights: enhanced,
            prefer_full_pod_name: kube.prefer_full_pod_name || enhanced,
            tag_service: kube.tag_service,
            disable_metric_extraction: kube.disable_metric_extraction,
            accelerated_compute_metrics: kube.accelerated_compute_metrics,
            kube_config_path: kube.kube_config_path,
        },
        metrics: k.metrics,
        logs: super::model::Logs {
            collect_list: logs.collect_list,
            ..k.logs
        },
        paths: k.paths,
        identity: IdentitySettings {
            require_workload_identity: k.require_workload_identity,
            agent_role_arn: agent.role_arn,
            logs_role_arn: logs.role_arn,
        },
        telemetry: k.telemetry,
        prices: k.prices,
        warnings: Vec::new(),
    }
}

/// Whether `error` may be why no cluster name was read: the key itself is invalid, an object
/// on its path is of the wrong type, or a key beside that path is unknown (a misspelt `logs`,
/// `metrics_collected`, `kubernetes` or `cluster_name`). "Not set" would then be noise.
fn may_hide_the_cluster_name(error: &ConfigError) -> bool {
    const ANCESTORS: [&str; 4] = [
        "",
        "logs",
        "logs.metrics_collected",
        "logs.metrics_collected.kubernetes",
    ];
    let parent = error.path.rsplit_once('.').map_or("", |(parent, _)| parent);
    error.path == CLUSTER_NAME_PATH
        || ANCESTORS.contains(&error.path.as_str())
        || (matches!(error.kind, ErrorKind::UnknownKey { .. }) && ANCESTORS.contains(&parent))
}

/// The cluster name in the `CloudWatch` agent's order, as far as it goes without AWS calls: the
/// file, then `K8S_CLUSTER_NAME`, then `local` for a local output. An invalid name in the file is
/// already an error and does not fall through to the next source; nor does an error that may
/// hide the key.
fn cluster_name(
    cx: &mut Ctx,
    from_file: Option<String>,
    inputs: &Inputs,
    output: &OutputKind,
) -> (String, ClusterNameSource) {
    let env = &inputs.env;
    if let Some(name) = from_file {
        return (name, ClusterNameSource::Config);
    }
    if cx.errors.iter().any(may_hide_the_cluster_name) {
        return (String::new(), ClusterNameSource::Config);
    }
    if let Some(name) = env.k8s_cluster_name.as_deref() {
        return match values::cluster_name(name) {
            Ok(name) => (name, ClusterNameSource::Env),
            Err(kind) => {
                cx.error("env K8S_CLUSTER_NAME", kind);
                (String::new(), ClusterNameSource::Env)
            }
        };
    }
    if output.is_local() {
        return (LOCAL_CLUSTER_NAME.to_owned(), ClusterNameSource::LocalDefault);
    }
    if let Some(name) = &inputs.tagged_cluster_name {
        return match values::cluster_name(name) {
            Ok(name) => (name, ClusterNameSource::Ec2Tag),
            Err(kind) => {
                cx.error("EC2 tag kubernetes.io/cluster/<name>", kind);
                (String::new(), ClusterNameSource::Ec2Tag)
            }
        };
    }
    if inputs.defer_missing_cluster_name {
        return (String::new(), ClusterNameSource::Pending);
    }
    cx.error(CLUSTER_NAME_PATH, ErrorKind::MissingClusterName);
    (String::new(), ClusterNameSource::Config)
}
