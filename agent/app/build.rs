//! Build: the identity, the collector and its pod index, and the output. Nothing is spawned
//! here; what must run in the background comes back as futures for the supervisor.

use std::path::PathBuf;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::auth::{self, AwsContext, NodeMetadata};
use crate::config::{Config, MetadataSource, MetricsDestination, OutputKind};
use crate::host::procfs::{self, NodeCapacity};
use crate::host::{CgroupMode, Root};
use crate::kube::{self, PodIndex};
use crate::metrics::Collector;
use crate::metrics::collect::Settings;
use crate::metrics::compute::NodeAttributes;
use crate::metrics::sample::Sampler;
use crate::runtime::RuntimeSource;
use crate::ship::{self, Acknowledge, Output, OutputTask};
use crate::telemetry::Telemetry;

use super::{AppError, Outside};

/// What `build` makes from a config.
#[derive(Debug)]
pub(super) struct Parts {
    pub collector: Collector,
    /// The runtime source's writable-layer usage, for other collectors (`kinsight cost`).
    pub fs_view: crate::runtime::FsView,
    /// Where the CSI node plugins' scrapes go (`crate::metrics::volumes::VolumeSource`).
    pub volume_tx: tokio::sync::watch::Sender<std::sync::Arc<crate::metrics::volumes::VolumeScrape>>,
    /// The pod metadata source to run, and the index it fills.
    pub metadata: Option<Metadata>,
    /// Instance id and type from IMDS, for the node attributes.
    pub node: NodeMetadata,
    /// The container runtime source (always built; it copes with a missing socket).
    pub runtime: RuntimeSource,
    /// Where a reload sends the runtime source a new interval (its writable-layer measurements).
    pub runtime_interval: tokio::sync::watch::Sender<std::time::Duration>,
    /// Where the accelerator source publishes its DCGM scrapes (the collector reads them).
    pub gpus: tokio::sync::watch::Sender<Arc<crate::host::accel::GpuScrape>>,
    /// AWS Neuron: where the accelerator source publishes its neuron-monitor scrapes.
    pub neurons: tokio::sync::watch::Sender<Arc<crate::host::accel::neuron::NeuronScrape>>,
}

/// Whether the output needs AWS credentials.
pub(super) fn needs_aws(cfg: &Config) -> bool {
    cfg.output == OutputKind::Cloudwatch
}

/// The identity, when the output needs one. Built first: a refused identity must stop the agent
/// before anything else starts. `cancel` stops its background work.
pub(super) async fn aws(
    cfg: &Config,
    outside: &Outside,
    telemetry: &Telemetry,
    cancel: &CancellationToken,
) -> Result<Option<AwsContext>, AppError> {
    if !needs_aws(cfg) {
        return Ok(None);
    }
    // Boxed: the AWS SDK set-up makes this future large.
    Box::pin(auth::build(cfg, &outside.env, telemetry, cancel.clone()))
        .await
        .map(Some)
        .map_err(AppError::Auth)
}

/// Where pod metadata comes from.
#[derive(Debug, Clone)]
pub(super) enum Metadata {
    /// The pod list file to keep re-reading (metadata source `file:`).
    File(PathBuf, PodIndex),
    /// The apiserver watch, through `kube_config_path` when set, else in-cluster/`KUBECONFIG`
    /// (`run::start_apiserver` reads it from the configuration, which a reload may change).
    Apiserver(PodIndex),
    /// The container runtime alone (the runtime source fills the index).
    Runtime(PodIndex),
}

impl Metadata {
    pub(super) fn index(&self) -> &PodIndex {
        match self {
            Metadata::File(_, i) | Metadata::Apiserver(i) | Metadata::Runtime(i) => i,
        }
    }
}

/// The pod index for the metadata source: `--pods-file`, else the configured source.
fn pod_index(outside: &Outside, cfg: &Config) -> Option<Metadata> {
    let source = match &outside.pods_file {
        Some(path) => MetadataSource::File(path.clone()),
        None => cfg.metrics.metadata_source.clone(),
    };
    match source {
        MetadataSource::File(path) => {
            // A plain pod list is all this node's pods; a cluster dump (a List with Node items)
            // keeps only this node's pods in the index and feeds the cluster records.
            let index = PodIndex::new(None);
            match kube::load_file_scoped(
                &path,
                &kube::NodeScope::NodeOfClusterDump(cfg.node_name.clone()),
                &index,
            ) {
                Ok(n) => tracing::info!(pods = n, file = %path.display(), "pod list loaded"),
                // The file source keeps retrying; pod records wait for a good load.
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "pod list not loaded yet; node metrics only until it is");
                }
            }
            Some(Metadata::File(path, index))
        }
        MetadataSource::Apiserver => {
            tracing::info!(node = %cfg.node_name, "metadata source apiserver: watching this node's pods");
            Some(Metadata::Apiserver(PodIndex::new(Some(cfg.node_name.clone()))))
        }
        MetadataSource::Runtime => {
            tracing::info!("metadata source runtime: pods and containers from containerd's labels");
            Some(Metadata::Runtime(PodIndex::new(Some(cfg.node_name.clone()))))
        }
        MetadataSource::None => {
            tracing::info!("metadata source none: node-level metrics only");
            None
        }
    }
}

/// The collector's settings for `cfg`.
pub(super) fn settings(cfg: &Config, node: &NodeMetadata) -> Settings {
    let attrs = NodeAttributes {
        cluster_name: cfg.cluster_name.clone(),
        node_name: cfg.node_name.clone(),
        instance_id: node.instance_id.clone(),
        instance_type: node.instance_type.clone(),
    };
    Settings::from_config(cfg, attrs)
}

/// The collector over the node, and the pod index it reads.
pub(super) async fn parts(outside: &Outside, cfg: &Config, telemetry: &Telemetry) -> Result<Parts, AppError> {
    // In a pod the instance id is worth the lookup even with a local output: it adds the
    // InstanceId dimension set.
    let node = if needs_aws(cfg) || outside.env.kubernetes_service_host.is_some() {
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
    let runtime_root = root.clone();
    let sampler = Sampler::new(root, mode, telemetry.clone());
    let metadata = pod_index(outside, cfg);
    let (fs_tx, fs_view) = crate::runtime::fs_channel();
    let (volume_tx, volume_view) = crate::metrics::volumes::volume_channel();
    let (gpus, gpu_view) = crate::host::accel::gpu_channel();
    let (neurons, neuron_view) = crate::host::accel::neuron_channel();
    let collector = Collector::new(
        sampler,
        capacity,
        settings(cfg, &node),
        metadata.as_ref().map(|m| m.index().clone()),
    )
    .with_container_fs(fs_view.clone())
    .with_volumes(volume_view)
    .with_gpus(gpu_view)
    .with_neurons(neuron_view);
    // The runtime names pods for `runtime` and fills the apiserver's gaps; a pod list file is
    // the whole truth by design (tests and replays), so the runtime does not add to it.
    let runtime_index = match &metadata {
        Some(Metadata::Runtime(i) | Metadata::Apiserver(i)) => Some(i.clone()),
        _ => None,
    };
    let (runtime_interval, usage_every) = tokio::sync::watch::channel(cfg.interval);
    let runtime = RuntimeSource {
        socket: runtime_root.path(&cfg.paths.containerd_socket),
        root: runtime_root,
        index: runtime_index,
        fs: fs_tx,
        telemetry: telemetry.clone(),
        usage_every,
    };
    Ok(Parts {
        collector,
        fs_view,
        volume_tx,
        metadata,
        node,
        runtime,
        runtime_interval,
        gpus,
        neurons,
    })
}

/// The accelerator source: asks `settings` (the live, reloaded collector settings) and the
/// own Node object in `index` before each scrape.
pub(super) fn accelerators(
    outside: &Outside,
    parts: &Parts,
    settings: tokio::sync::watch::Receiver<Settings>,
    telemetry: &Telemetry,
) -> crate::host::accel::AcceleratorSource {
    let index = parts.metadata.as_ref().map(|m| m.index().clone());
    let plan = move || {
        let snapshot = index.as_ref().map(PodIndex::snapshot);
        settings
            .borrow()
            .scrape_plan(snapshot.as_deref().and_then(kube::Snapshot::own_node))
    };
    crate::host::accel::AcceleratorSource {
        plan: Arc::new(plan),
        gpus: parts.gpus.clone(),
        neurons: parts.neurons.clone(),
        pod_resources: Some(Root::new(&outside.host_root).path(crate::host::accel::podresources::SOCKET)),
        host: Some(Root::new(&outside.host_root)),
        imds: Some(outside.env.aws.clone()),
        telemetry: telemetry.clone(),
    }
}

/// Another collector over the node of `outside` with `settings`, reading `index`: `kinsight
/// cost` runs one per mode side by side.
pub(super) fn collector(
    outside: &Outside,
    settings: Settings,
    index: Option<PodIndex>,
    telemetry: &Telemetry,
) -> Result<Collector, AppError> {
    let root = Root::new(&outside.host_root);
    let mode = CgroupMode::detect(&root).map_err(AppError::Host)?;
    let capacity: NodeCapacity = procfs::read_capacity(&root).map_err(AppError::Host)?;
    Ok(Collector::new(
        Sampler::new(root, mode, telemetry.clone()),
        capacity,
        settings,
        index,
    ))
}

/// The output for `cfg`, and the tasks it needs. The same function serves startup and reload.
pub(super) fn output(
    cfg: &Config,
    aws: Option<&AwsContext>,
    telemetry: &Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
) -> Result<(Arc<dyn Output>, Vec<OutputTask>), AppError> {
    match (&cfg.output, aws) {
        (OutputKind::Cloudwatch, Some(ctx)) => {
            let (out, tasks) = ship::build_cloudwatch(cfg, &ctx.metrics, &ctx.logs, telemetry, ack);
            Ok((Arc::new(out), tasks))
        }
        (kind, _) => {
            let out = ship::build_local(kind, telemetry, ack).map_err(AppError::Ship)?;
            Ok((Arc::from(out), Vec::new()))
        }
    }
}

/// The config's warnings, first thing at startup: before any AWS call, so that an endpoint
/// override is named before a request goes to it.
pub(super) fn log_config_warnings(cfg: &Config) {
    let (shown, more) = crate::config::printed(&cfg.warnings);
    for w in shown {
        tracing::warn!("{w}");
    }
    if more > 0 {
        tracing::warn!(more, "more configuration warnings not shown");
    }
}

/// The startup log lines after the identity: one line naming what runs.
pub(super) fn log_startup(cfg: &Config, outside: &Outside) {
    if cfg.kubernetes.enhanced_container_insights {
        // Never ignore the flag silently: name what is not implemented.
        let missing = crate::metrics::declare::missing_enhanced(cfg.kubernetes.accelerated_compute_metrics);
        if !missing.is_empty() {
            tracing::warn!(
                missing = ?missing,
                "enhanced_container_insights: these enhanced metric groups are not implemented by kinsight"
            );
        }
        // PutMetricData bills every series as a custom metric, unlike EMF extraction.
        if cfg.metrics.destination != MetricsDestination::Emf {
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

/// Where a reload sends the log pipeline new container multiline rules (`Running::reload`).
pub(super) fn multiline_updates(
    pipeline: &mut crate::logs::LogPipeline,
    cfg: &Config,
) -> Option<tokio::sync::watch::Sender<Arc<crate::logs::pipeline::ContainerRules>>> {
    // The pipeline was built from these same rules, so they compile.
    crate::logs::pipeline::container_rules(&cfg.logs.multiline, cfg.logs.record_profile)
        .ok()
        .map(|rules| pipeline.multiline_updates(rules))
}

/// The tailer's settings for `cfg`, or `None` when log collection is off. An error (a multiline
/// pattern or a `collect_list` entry that cannot be used) leaves logs off at startup, and the
/// running pipeline in place on a reload.
pub(super) fn log_settings(
    outside: &Outside,
    cfg: &Config,
    node: &NodeMetadata,
) -> Result<Option<crate::logs::tail::TailSettings>, crate::logs::LogsError> {
    if !cfg.logs.enabled {
        return Ok(None);
    }
    let own_pod = match (&outside.env.k8s_namespace, &outside.env.pod_name) {
        (Some(ns), Some(pod)) => Some((ns.clone(), pod.clone())),
        _ => None,
    };
    let facts = crate::logs::encode::NodeFacts {
        az: node.availability_zone.clone(),
        instance_id: node.instance_id.clone(),
    };
    let placeholders = crate::logs::collect::Placeholders::of(
        &cfg.node_name,
        node.instance_id.as_deref(),
        outside.env.host_ip.as_deref(),
        &cfg.logs.collect_list,
    );
    crate::logs::pipeline::settings(cfg, &outside.host_root, own_pod, facts, &placeholders).map(Some)
}

/// The log pipeline for `settings`, reporting to `settlements` (the table the output
/// acknowledges to). One that cannot start (the host root cannot be opened) is reported and the
/// agent goes on with metrics.
pub(super) fn logs(
    outside: &Outside,
    cfg: &Config,
    settings: crate::logs::tail::TailSettings,
    pods: Option<PodIndex>,
    settlements: &Arc<crate::logs::Settlements>,
    telemetry: &Telemetry,
) -> Option<crate::logs::LogPipeline> {
    let built = crate::logs::LogPipeline::build(
        settings,
        &outside.host_root,
        &cfg.paths.state_dir,
        pods,
        settlements.clone(),
        telemetry.clone(),
        outside.clock.clone(),
    );
    match built {
        Ok(pipeline) => {
            tracing::info!(
                pod_logs_dir = %cfg.paths.pod_logs_dir.display(),
                host_files = ?cfg.logs.host_files,
                collect_list = cfg.logs.collect_list.len(),
                "log collection on"
            );
            Some(pipeline)
        }
        Err(e) => {
            tracing::error!(error = %crate::telemetry::chain(&e), "log collection cannot start; metrics go on");
            None
        }
    }
}
