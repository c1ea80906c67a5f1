//! The agent's top level, callable from tests: load → build → run.
//!
//! `main.rs` parses the command line and calls one of [`run`], [`once`] or [`load_config`]
//! with an [`Outside`]: everything that comes from outside the process (host root, environment,
//! config file, output override, clock), so that a test drives the same code with a fixture
//! tree and local servers.

pub mod check;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::auth::{self, AuthError, AwsContext, NodeMetadata};
use crate::config::{self, Config, ConfigErrors, Env, Inputs, MetadataSource, Output};
use crate::host::procfs::{self, NodeCapacity};
use crate::host::{CgroupMode, Clock, HostError, Root};
use crate::kube::{self, PodIndex};
use crate::metrics::collect::Settings;
use crate::metrics::compute::NodeAttributes;
use crate::metrics::sample::Sampler;
use crate::metrics::{Collector, Cycle};
use crate::ship::{self, ShipError, Sink};
use crate::telemetry::events::{ConfigReloaded, CycleCompleted, CycleSkipped, ReloadResult};
use crate::telemetry::{self, Telemetry};

/// Where the DaemonSet mounts the `cwagentconfig` ConfigMap (the CloudWatch agent's path).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cwagentconfig/cwagentconfig.json";

/// Everything from outside the process, passed down from `main`.
#[derive(Debug, Clone)]
pub struct Outside {
    /// `--host-root`: every node path resolves under it.
    pub host_root: PathBuf,
    pub env: Env,
    /// `None` runs the embedded default configuration.
    pub config_path: Option<PathBuf>,
    /// `--output`, which wins over `kinsight.output`.
    pub output_override: Option<Output>,
    /// `--pods-file`, which wins over `kinsight.metrics.metadata_source`.
    pub pods_file: Option<PathBuf>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid configuration")]
    Config(#[source] ConfigErrors),
    #[error("cannot read the node")]
    Host(#[source] HostError),
    #[error("cannot set up the output")]
    Ship(#[source] ShipError),
    #[error("cannot establish the AWS identity")]
    Auth(#[source] AuthError),
    #[error("cannot serve telemetry on {addr}")]
    Telemetry {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl AppError {
    /// `EX_CONFIG` (78) for a bad configuration, 1 for anything that fails at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 78,
            // A refused identity (require_workload_identity) or no region is a configuration
            // problem too (spec/IDENTITY.md §6).
            AppError::Auth(e) => e.exit_code(),
            _ => 1,
        }
    }
}

/// The validation inputs for this process: environment, output override and the host name.
pub fn inputs(outside: &Outside) -> Inputs {
    let root = Root::new(&outside.host_root);
    let host_name_fallback = procfs::read_hostname(&root).unwrap_or_else(|e| {
        tracing::debug!(error = %telemetry::chain(&e), "host name unreadable; using \"localhost\"");
        "localhost".to_string()
    });
    Inputs {
        env: outside.env.clone(),
        output_override: outside.output_override.clone(),
        host_name_fallback,
    }
}

/// Parse and validate: the same function for startup, `config validate` and reload.
pub fn load_config(outside: &Outside) -> Result<Config, ConfigErrors> {
    let inputs = inputs(outside);
    match &outside.config_path {
        Some(path) => config::load_file(path, &inputs),
        None => config::load_str(config::DEFAULT_CONFIG, &inputs),
    }
}

/// Whether the only thing wrong with the configuration is the missing cluster name, which
/// validation reports only for the `cloudwatch` output: startup then asks the EC2 instance tag.
pub fn only_missing_cluster_name(errors: &ConfigErrors) -> bool {
    !errors.0.is_empty()
        && errors
            .0
            .iter()
            .all(|e| matches!(e.kind, config::ErrorKind::MissingClusterName))
}

/// The configuration, with the cluster name resolved as §15.1 orders it: config key,
/// `K8S_CLUSTER_NAME`, then the instance tag `kubernetes.io/cluster/<name>` = `owned` (asked only
/// with the `cloudwatch` output, through the agent's own identity). Returns the `Outside` to
/// reload with (the tag's name stands in for `K8S_CLUSTER_NAME`) and the identity built on the
/// way, so it is not built twice.
async fn load_resolving_cluster_name(
    outside: &Outside,
    telemetry: &Telemetry,
    cancel: &CancellationToken,
) -> Result<(Outside, Config, Option<AwsContext>), AppError> {
    let errors = match load_config(outside) {
        Ok(cfg) => return Ok((outside.clone(), cfg, None)),
        Err(errors) if only_missing_cluster_name(&errors) => errors,
        Err(errors) => return Err(AppError::Config(errors)),
    };
    // A syntactically valid stand-in lets the identity be built; it names nothing and is
    // replaced below before any record is made.
    let mut probe = outside.clone();
    probe.env.k8s_cluster_name = Some("kinsight-cluster-name-pending".into());
    let probe_cfg = load_config(&probe).map_err(|_| AppError::Config(errors))?;
    let ctx = auth::build(&probe_cfg, &outside.env, telemetry, cancel.child_token())
        .await
        .map_err(AppError::Auth)?;
    let node = auth::node_metadata(&outside.env.aws).await;
    let (name, _) = auth::resolve_cluster_name(None, &outside.env, Some(&ctx.metrics), node.instance_id.as_deref())
        .await
        .map_err(AppError::Auth)?;
    tracing::info!(cluster = %name, "cluster name from the EC2 instance tag kubernetes.io/cluster/<name>=owned");
    let mut resolved = outside.clone();
    resolved.env.k8s_cluster_name = Some(name);
    let mut cfg = load_config(&resolved).map_err(AppError::Config)?;
    cfg.cluster_name_source = config::ClusterNameSource::Ec2Tag;
    Ok((resolved, cfg, Some(ctx)))
}

/// What `build` makes from a config: the collector and its output. Nothing is spawned.
#[derive(Debug)]
struct Pipeline {
    collector: Collector,
    sink: Box<dyn Sink>,
    /// The pod list file to keep re-reading (metadata source `file:`).
    pods_file: Option<(PathBuf, PodIndex)>,
    /// Instance id and type from IMDS, for the node attributes.
    node: NodeMetadata,
    /// Credentials and SDK configs, with the CloudWatch output.
    aws: Option<AwsContext>,
}

impl Pipeline {
    /// Ready while cycles complete and, with the CloudWatch output, while the credentials are
    /// valid (spec/IDENTITY.md §15).
    fn is_ready(&self) -> bool {
        self.aws.as_ref().is_none_or(|a| a.identity.is_valid())
    }
}

/// The pod index for the metadata source: `--pods-file`, else the configured source.
fn pod_index(outside: &Outside, cfg: &Config) -> Option<(PathBuf, PodIndex)> {
    let source = match &outside.pods_file {
        Some(path) => MetadataSource::File(path.clone()),
        None => cfg.metrics.metadata_source.clone(),
    };
    match source {
        MetadataSource::File(path) => {
            // KUBE-2: every item of the file is taken as a pod of this node.
            let index = PodIndex::new(None);
            // A cluster dump (a List with Node items) keeps only this node's pods in the index
            // and feeds the cluster records; a plain pod list is all this node's (KUBE-2).
            match kube::load_file_scoped(
                &path,
                &kube::NodeScope::NodeOfClusterDump(cfg.node_name.clone()),
                &index,
            ) {
                Ok(n) => tracing::info!(pods = n, file = %path.display(), "pod list loaded"),
                // The file source keeps retrying; pod records wait for a good load (KUBE-4).
                Err(e) => {
                    tracing::warn!(error = %telemetry::chain(&e), "pod list not loaded yet; node metrics only until it is");
                }
            }
            Some((path, index))
        }
        MetadataSource::Apiserver => {
            tracing::warn!(
                "metadata source apiserver: the apiserver pod watch is not part of this build; collecting node-level \
                 metrics only. Use --pods-file FILE or kinsight.metrics.metadata_source \"file:PATH\" for pod metrics"
            );
            None
        }
        MetadataSource::None => {
            tracing::info!("metadata source none: node-level metrics only (KUBE-3)");
            None
        }
    }
}

fn settings(cfg: &Config, node: &NodeMetadata) -> Settings {
    let attrs = NodeAttributes {
        cluster_name: cfg.cluster_name.clone(),
        node_name: cfg.node_name.clone(),
        instance_id: node.instance_id.clone(),
        instance_type: node.instance_type.clone(),
    };
    Settings::from_config(cfg, attrs)
}

/// Whether to ask IMDS and AWS at all: the CloudWatch output needs both; in a pod the
/// instance id is worth the lookup even with a local output (it adds the N dimension set).
fn uses_aws(outside: &Outside, cfg: &Config) -> bool {
    cfg.output == Output::Cloudwatch || outside.env.kubernetes_service_host.is_some()
}

async fn build(
    outside: &Outside,
    cfg: &Config,
    prebuilt: Option<AwsContext>,
    telemetry: &Telemetry,
    cancel: &CancellationToken,
) -> Result<Pipeline, AppError> {
    // Identity first: a refused identity must stop the agent before anything else starts.
    let aws = if prebuilt.is_some() {
        prebuilt
    } else if cfg.output == Output::Cloudwatch {
        Some(
            auth::build(cfg, &outside.env, telemetry, cancel.child_token())
                .await
                .map_err(AppError::Auth)?,
        )
    } else {
        None
    };
    let node = if uses_aws(outside, cfg) {
        auth::node_metadata(&outside.env.aws).await
    } else {
        NodeMetadata::default()
    };
    let open_files = crate::host::pids::raise_open_files_limit();
    tracing::debug!(
        open_files,
        "open files limit (soft, after raising it to the hard limit)"
    );
    let root = Root::new(&outside.host_root);
    let mode = CgroupMode::detect(&root).map_err(AppError::Host)?;
    let capacity: NodeCapacity = procfs::read_capacity(&root).map_err(AppError::Host)?;
    tracing::info!(
        cgroup = mode.name(),
        cpus = capacity.cpus,
        memory_bytes = capacity.memory_bytes,
        host_root = %outside.host_root.display(),
        "node read"
    );
    let sampler = Sampler::new(root, mode, telemetry.clone());
    let pods_file = pod_index(outside, cfg);
    let collector = Collector::new(
        sampler,
        capacity,
        settings(cfg, &node),
        pods_file.as_ref().map(|(_, i)| i.clone()),
    );
    let sink = match &aws {
        Some(ctx) => ship::build_cloudwatch(cfg, &ctx.metrics, &ctx.logs, telemetry, cancel.child_token()),
        None => ship::build(&cfg.output, telemetry).map_err(AppError::Ship)?,
    };
    Ok(Pipeline {
        collector,
        sink,
        pods_file,
        node,
        aws,
    })
}

fn log_startup(cfg: &Config, outside: &Outside) {
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    if cfg.kubernetes.enhanced_container_insights {
        // ENH-2: never ignore the flag silently; name what is not implemented.
        tracing::warn!(
            missing = ?crate::metrics::declare::MISSING_ENHANCED_GROUPS,
            "enhanced_container_insights: these enhanced metric groups are not implemented by kinsight"
        );
        // ENH-3: PutMetricData bills every series as a custom metric, unlike EMF extraction.
        if cfg.metrics.destination != crate::config::MetricsDestination::Emf {
            tracing::warn!(
                "enhanced_container_insights with destination put_metric_data or both: every FullPodName and \
                 ContainerName series is a billed custom metric; destination emf is billed per observation"
            );
        }
    }
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        cluster = %cfg.cluster_name,
        cluster_name_source = ?cfg.cluster_name_source,
        node = %cfg.node_name,
        interval_s = cfg.interval.as_secs(),
        output = ?cfg.output,
        config = %outside.config_path.as_ref().map_or("<embedded default>".to_string(), |p| p.display().to_string()),
        "kinsight starting"
    );
}

/// Hands one cycle to the output. The output counts and logs its own failures.
async fn write_cycle(sink: &dyn Sink, cycle: &Cycle) -> Result<(), ShipError> {
    if !cycle.datums.is_empty() {
        sink.write_metrics(&cycle.datums).await?;
    }
    if !cycle.events.is_empty() {
        sink.write_emf(&cycle.events).await?;
    }
    Ok(())
}

/// `kinsight once`: a priming sample, `interval` later the real one, written, done (TICK-4).
pub async fn once(outside: Outside, interval: Duration) -> Result<(), AppError> {
    let telemetry = Telemetry::new();
    let cancel = CancellationToken::new();
    // Boxed: the AWS SDK set-up makes these futures large.
    let (outside, cfg, aws) = Box::pin(load_resolving_cluster_name(&outside, &telemetry, &cancel)).await?;
    log_startup(&cfg, &outside);
    let mut p = Box::pin(build(&outside, &cfg, aws, &telemetry, &cancel)).await?;
    let _priming = p.collector.collect(outside.clock.as_ref());
    tokio::time::sleep(interval).await;
    let started = outside.clock.monotonic();
    let cpu_started = crate::host::thread_cpu_time();
    let cycle = p.collector.collect(outside.clock.as_ref());
    CycleCompleted {
        records: cycle.records.len(),
        datums: cycle.datums.len(),
        elapsed: outside.clock.monotonic() - started,
        cpu: crate::host::thread_cpu_time().saturating_sub(cpu_started),
    }
    .emit(&telemetry);
    let written = write_cycle(p.sink.as_ref(), &cycle).await.map_err(AppError::Ship);
    // The CloudWatch output sends in the background: give it the time a pod would have.
    p.sink
        .flush(tokio::time::Instant::now() + Duration::from_secs(20))
        .await;
    cancel.cancel();
    written
}

/// Delay from `now_ms` to the next tick: ticks fall on second 30 of the minute and every
/// `interval` on that phase (TICK-2), so datapoints never straddle a minute boundary.
pub fn next_tick_delay(now_ms: i64, interval: Duration) -> Duration {
    let i = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let offset = (now_ms - 30_000).rem_euclid(i);
    Duration::from_millis(u64::try_from(i - offset).unwrap_or(0))
}

/// `kinsight run`: collect every interval until `cancel`, applying config reloads live.
pub async fn run(outside: Outside, cancel: CancellationToken) -> Result<(), AppError> {
    let telemetry = Telemetry::new();
    // Boxed: the AWS SDK set-up makes these futures large. `outside` now carries a cluster name
    // from the instance tag, if one was needed, so that reloads validate with it too.
    let (outside, cfg, aws) = Box::pin(load_resolving_cluster_name(&outside, &telemetry, &cancel)).await?;
    let cfg = Arc::new(cfg);
    log_startup(&cfg, &outside);
    let mut p = Box::pin(build(&outside, &cfg, aws, &telemetry, &cancel)).await?;
    if let Some(addr) = cfg.telemetry.listen_address {
        let (bound, _thread) = telemetry::serve(addr, telemetry.clone(), cancel.child_token())
            .map_err(|source| AppError::Telemetry { addr, source })?;
        tracing::info!(address = %bound, "telemetry endpoint listening (/healthz, /readyz, /metrics)");
    }
    if let Some((path, index)) = p.pods_file.clone() {
        let scope = kube::NodeScope::NodeOfClusterDump(cfg.node_name.clone());
        let source = kube::FileSource::new(path, None, index, telemetry.clone()).with_scope(scope);
        tokio::spawn(source.run(cancel.child_token()));
    }
    let (tx, mut rx) = watch::channel(cfg.clone());
    if let Some(path) = outside.config_path.clone() {
        let t = telemetry.clone();
        tokio::spawn(config::reload::watch(
            path,
            inputs(&outside),
            cfg.clone(),
            tx,
            move |outcome: &config::reload::ReloadOutcome| {
                let result = match outcome {
                    config::reload::ReloadOutcome::Applied { .. } => ReloadResult::Applied,
                    config::reload::ReloadOutcome::Invalid(_) => ReloadResult::Invalid,
                    config::reload::ReloadOutcome::Unchanged => ReloadResult::Unchanged,
                    config::reload::ReloadOutcome::ReadFailed(_) => ReloadResult::ReadFailed,
                };
                ConfigReloaded { result }.emit(&t);
            },
            cancel.child_token(),
        ));
    }
    let mut cfg = cfg;
    loop {
        let delay = next_tick_delay(outside.clock.wall_ms(), cfg.interval);
        tokio::select! {
            () = cancel.cancelled() => break,
            changed = rx.changed() => {
                if changed.is_err() { continue; }
                let new = rx.borrow_and_update().clone();
                apply_reload(&mut p, &cfg, &new, &telemetry);
                cfg = new;
            }
            () = tokio::time::sleep(delay) => {
                let started = outside.clock.monotonic();
                let cpu_started = crate::host::thread_cpu_time();
                let cycle = p.collector.collect(outside.clock.as_ref());
                // Before the first await: the task may move to another thread after it.
                let cpu = crate::host::thread_cpu_time().saturating_sub(cpu_started);
                // A failed write was counted by the output; the loop goes on with the next interval.
                let _ = write_cycle(p.sink.as_ref(), &cycle).await;
                let elapsed = outside.clock.monotonic() - started;
                CycleCompleted { records: cycle.records.len(), datums: cycle.datums.len(), elapsed, cpu }.emit(&telemetry);
                telemetry.set_ready(p.is_ready());
                if elapsed > cfg.interval {
                    CycleSkipped.emit(&telemetry);
                }
            }
        }
    }
    // Drain under a deadline shorter than the pod's terminationGracePeriodSeconds.
    tracing::info!("kinsight stopping: flushing queued data");
    p.sink
        .flush(tokio::time::Instant::now() + cfg.logs.shutdown_grace)
        .await;
    Ok(())
}

/// Rebuilds what a new config changes: node attributes, interval, output.
fn apply_reload(p: &mut Pipeline, old: &Config, new: &Config, telemetry: &Telemetry) {
    if new.metrics.metadata_source != old.metrics.metadata_source {
        tracing::warn!(
            "kinsight.metrics.metadata_source changed: this setting needs a restart; keeping the running source"
        );
    }
    p.collector.reconfigure(settings(new, &p.node));
    if new.output != old.output && (new.output == Output::Cloudwatch || old.output == Output::Cloudwatch) {
        tracing::warn!("switching to or from the cloudwatch output needs a restart; keeping the running output");
    } else if new.output != old.output {
        match ship::build(&new.output, telemetry) {
            Ok(sink) => p.sink = sink,
            Err(e) => tracing::error!(error = %telemetry::chain(&e), "cannot switch output; keeping the previous one"),
        }
    }
    tracing::info!(interval_s = new.interval.as_secs(), output = ?new.output, "configuration applied");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_fall_on_second_30_phase() {
        // 12:00:10.000 with a 60 s interval → 12:00:30, 20 s later.
        let noon_10 = 1_764_331_210_000; // a whole minute + 10 s
        assert_eq!(noon_10 % 60_000, 10_000);
        assert_eq!(
            next_tick_delay(noon_10, Duration::from_mins(1)),
            Duration::from_secs(20)
        );
        // With 10 s: the phase is :30, :40, … → next at :20.
        assert_eq!(
            next_tick_delay(noon_10, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_tick_delay(noon_10 + 1, Duration::from_secs(10)),
            Duration::from_millis(9_999)
        );
        // Exactly on a tick: the next one, a whole interval later.
        assert_eq!(
            next_tick_delay(noon_10 + 20_000, Duration::from_mins(1)),
            Duration::from_mins(1)
        );
    }
}
