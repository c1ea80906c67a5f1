//! Run: every task under the supervisor, reloads applied live, and the phased drain.
//!
//! Drain on SIGTERM/SIGINT, in order: stop the inputs (the tick loop, the config watcher, the
//! pod source), let the delivery task hand over what the inputs produced, flush the output
//! within `kinsight.logs.shutdown_grace_secs`, then (with the log pipeline) commit checkpoints
//! last, and stop what is left. What could not be flushed is counted and logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::auth::{AwsContext, NodeMetadata};
use crate::config::{self, Config};
use crate::host::Clock;
use crate::kube;
use crate::metrics::collect::Settings;
use crate::metrics::{Cycle, tick};
use crate::ship::{Acknowledge, Output};
use crate::telemetry::events::{
    ConfigReloaded, CycleCompleted, LogPipelineOutcome, LogPipelineRebuilt, OutputRebuilt, ReloadResult,
};
use crate::telemetry::{self, Heartbeat, Telemetry};

use super::load::{Loaded, resolve_cluster_name};
use super::reload::{Plan, RETIRE_GRACE};
use super::supervise::Supervisor;
use super::{AppError, Outside, build};

/// The output in use, and the token that retires its tasks.
#[derive(Debug)]
struct Installed {
    output: Arc<dyn Output>,
    owner: CancellationToken,
}

/// Starts an output's tasks and makes it the current one.
fn install(
    sup: &mut Supervisor,
    output: Arc<dyn Output>,
    tasks: Vec<crate::ship::OutputTask>,
    stopping: &CancellationToken,
) -> Installed {
    let owner = stopping.child_token();
    for (name, task) in tasks {
        sup.must_run_until(name, owner.clone(), task);
    }
    Installed { output, owner }
}

/// Starts the identity's refreshers (restartable) and its caller-identity retry (oneshot); they
/// stop with `owner`.
fn supervise_aws(sup: &mut Supervisor, aws: &mut AwsContext, owner: &CancellationToken) {
    for (name, id) in aws.refreshers.clone() {
        let owner = owner.clone();
        let token = owner.clone();
        sup.restartable_until(name, owner.clone(), move || id.refresher(token.clone()));
    }
    if let Some(task) = aws.caller_identity_retry.take() {
        sup.oneshot("auth::caller_identity_retry", task.0);
    }
}

/// Hands each cycle of the tick loop to the current output, and keeps `/readyz` current. Its
/// heartbeat's bound follows the interval: it beats once a cycle, so a reload that lengthens the
/// interval would otherwise fail `/healthz` (and kubelet's liveness probe would restart the pod).
async fn deliver(
    mut cycles: mpsc::Receiver<Cycle>,
    output: watch::Receiver<Arc<dyn Output>>,
    credentials: watch::Receiver<Option<crate::auth::Identity>>,
    mut settings: watch::Receiver<Settings>,
    telemetry: Telemetry,
    heartbeat: Heartbeat,
) {
    loop {
        let cycle = tokio::select! {
            cycle = cycles.recv() => match cycle {
                Some(c) => c,
                None => return,
            },
            Ok(()) = settings.changed() => {
                let interval = settings.borrow_and_update().interval;
                heartbeat.set_bound(tick::stuck_bound(interval));
                continue;
            }
        };
        let out = output.borrow().clone();
        // A failed write was counted by the output; the next interval goes on.
        let _ = out.send_metrics(cycle.datums);
        let _ = out.send_performance(cycle.events);
        heartbeat.beat();
        telemetry.set_condition("cycle", true, "");
        if let Some(id) = credentials.borrow().as_ref() {
            match id.current() {
                Ok(_) => telemetry.set_condition("credentials", true, ""),
                Err(e) => telemetry.set_condition("credentials", false, &telemetry::chain(&e)),
            }
        }
    }
}

/// The running log pipeline, if any: its stop hand-shake (`crate::logs::Stop`), `done` once it
/// committed its checkpoints, and where a reload sends it new multiline rules.
#[derive(Debug)]
struct LogsTask {
    stop: crate::logs::Stop,
    done: CancellationToken,
    multiline_tx: Option<watch::Sender<Arc<crate::logs::pipeline::ContainerRules>>>,
}

/// How long a log pipeline being replaced by a reload may take to hand over what it was
/// assembling and for the output to send what it handed over. What is still unsent then is read
/// again by the new pipeline from the committed checkpoints.
const LOG_HANDOVER_GRACE: Duration = RETIRE_GRACE;

/// Everything the run loop changes on reload.
struct Running {
    outside: Outside,
    cfg: Arc<Config>,
    node: NodeMetadata,
    aws: Option<AwsContext>,
    aws_owner: CancellationToken,
    installed: Installed,
    output_tx: watch::Sender<Arc<dyn Output>>,
    settings_tx: watch::Sender<Settings>,
    /// The hourly cost line's prices (`kinsight.cost`).
    prices_tx: watch::Sender<crate::config::Prices>,
    credentials_tx: watch::Sender<Option<crate::auth::Identity>>,
    logs: LogsTask,
    /// The settle table every log pipeline of the process reports to; the output acknowledges
    /// to it.
    settlements: Arc<crate::logs::Settlements>,
    /// The pod index log records are enriched from.
    pods: Option<kube::PodIndex>,
    /// The apiserver task, with metadata source `apiserver`.
    apiserver: Option<ApiserverTask>,
    /// The runtime source's measuring interval.
    runtime_interval: watch::Sender<Duration>,
    telemetry: Telemetry,
    stopping: CancellationToken,
    inputs: CancellationToken,
    /// SIGTERM/SIGINT: a log pipeline rebuild gives way to the drain.
    shutdown: CancellationToken,
}

impl Running {
    /// Applies a validated new configuration: see `reload.rs`.
    async fn reload(&mut self, sup: &mut Supervisor, new: Arc<Config>) {
        let plan = Plan::of(&self.cfg, &new);
        for key in &plan.restart {
            tracing::warn!(key, "this setting needs a restart; the running value stays until then");
        }
        self.settings_tx.send_replace(build::settings(&new, &self.node));
        self.runtime_interval.send_if_modified(|every| {
            let changed = *every != new.interval;
            *every = new.interval;
            changed
        });
        apply_logging(&self.cfg, &new);
        if new.prices != self.cfg.prices {
            self.prices_tx.send_replace(new.prices.clone());
        }
        if plan.logs.is_empty()
            && new.logs.multiline != self.cfg.logs.multiline
            && let Some(tx) = &self.logs.multiline_tx
        {
            // With the running record profile: a new one replaces the pipeline (below), which
            // then takes that profile's default rules.
            match crate::logs::pipeline::container_rules(&new.logs.multiline, self.cfg.logs.record_profile) {
                Ok(rules) => {
                    tx.send_replace(Arc::new(rules));
                }
                Err(e) => {
                    tracing::error!(error = %telemetry::chain(&e), "the new multiline rules cannot be used; the running ones stay");
                }
            }
        }
        if plan.rebuilds_output() {
            let mut changed = plan.identity.clone();
            changed.extend(&plan.output);
            match self.rebuild_output(sup, &new, !plan.identity.is_empty()).await {
                Ok(()) => OutputRebuilt {
                    changed: &changed,
                    error: None,
                }
                .emit(&self.telemetry),
                Err(e) => OutputRebuilt {
                    changed: &changed,
                    error: Some(&telemetry::chain(&e)),
                }
                .emit(&self.telemetry),
            }
        }
        if !plan.logs.is_empty() {
            self.rebuild_logs(sup, &new, &plan.logs).await;
        }
        self.restart_apiserver(sup, &new);
        tracing::info!(interval_s = new.interval.as_secs(), output = ?new.output, "configuration applied");
        self.cfg = new;
    }

    async fn rebuild_output(&mut self, sup: &mut Supervisor, new: &Config, identity: bool) -> Result<(), AppError> {
        let needs = build::needs_aws(new);
        let mut fresh_aws = None;
        if needs && (identity || self.aws.is_none()) {
            let owner = self.stopping.child_token();
            let mut aws = build::aws(new, &self.outside, &self.telemetry, &owner)
                .await?
                .ok_or_else(|| AppError::Ship(crate::ship::ShipError::NotLocal))?;
            supervise_aws(sup, &mut aws, &owner);
            fresh_aws = Some((aws, owner));
        }
        let aws = fresh_aws.as_ref().map(|(a, _)| a).or(self.aws.as_ref());
        let ack: Arc<dyn Acknowledge> = self.settlements.clone();
        let (output, tasks) = build::output(new, aws, &self.telemetry, Some(ack))?;
        if let Some((aws, owner)) = fresh_aws {
            self.aws_owner.cancel();
            self.aws_owner = owner;
            self.credentials_tx.send_replace(Some(aws.identity.clone()));
            self.aws = Some(aws);
        }
        let old = std::mem::replace(&mut self.installed, install(sup, output.clone(), tasks, &self.stopping));
        self.output_tx.send_replace(output.clone());
        retire(old, &output).await;
        Ok(())
    }
}

impl Running {
    /// Restarts the apiserver task when `new` changes what it was started with (the kubeconfig,
    /// the Lease duration, what the cluster watch watches): the running one stops (its elector
    /// releases the Lease), and one started for `new` lists this node's pods again into the same
    /// index, which the collector and the log pipeline keep reading meanwhile.
    fn restart_apiserver(&mut self, sup: &mut Supervisor, new: &Config) {
        let Some(task) = &self.apiserver else { return };
        let settings = ApiserverSettings::of(new);
        if settings == task.settings {
            return;
        }
        tracing::info!(
            from = ?task.settings,
            to = ?settings,
            "restarting the apiserver watch for the new configuration"
        );
        task.owner.cancel();
        let index = task.index.clone();
        self.apiserver = Some(start_apiserver(
            sup,
            index,
            new,
            &self.outside,
            &self.telemetry,
            &self.inputs,
        ));
    }

    /// Replaces the log pipeline for `new` (see `reload::LOG_KEYS`): the running one stops
    /// reading and hands over what it was assembling, the output sends what it holds (within
    /// [`LOG_HANDOVER_GRACE`]), the checkpoints are committed, and a pipeline built from `new`
    /// starts from them, as after a restart. Nothing is lost; what the output had not sent by
    /// then is withdrawn from it and read again, so it is sent once.
    async fn rebuild_logs(&mut self, sup: &mut Supervisor, new: &Config, changed: &[&'static str]) {
        // Settings first: a configuration the pipeline cannot use leaves the running one alone.
        let settings = match build::log_settings(&self.outside, new, &self.node) {
            Ok(s) => s,
            Err(e) => {
                LogPipelineRebuilt {
                    changed,
                    outcome: LogPipelineOutcome::Failed(&telemetry::chain(&e)),
                }
                .emit(&self.telemetry);
                return;
            }
        };
        tracing::info!(changed = ?changed, "replacing the log pipeline for the new configuration");
        let Some(unsent) = self.stop_logs().await else {
            tracing::info!("stopping during a log pipeline rebuild: the drain finishes the running one");
            return;
        };
        let pipeline = settings.and_then(|s| {
            build::logs(
                &self.outside,
                new,
                s,
                self.pods.clone(),
                &self.settlements,
                &self.telemetry,
            )
        });
        let on = pipeline.is_some();
        self.logs = start_logs(sup, pipeline, new, &self.output_tx.subscribe(), &self.inputs);
        let outcome = match (on, new.logs.enabled) {
            (true, _) => LogPipelineOutcome::Rebuilt { unsent },
            (false, false) => LogPipelineOutcome::Off,
            (false, true) => LogPipelineOutcome::Failed("the new log pipeline cannot start (logged above)"),
        };
        LogPipelineRebuilt { changed, outcome }.emit(&self.telemetry);
    }

    /// Stops the running log pipeline, if any: reading first, then what it handed over is sent,
    /// then it commits. Returns how many of its events were still unsent (withdrawn from the
    /// output and read again), or `None` when the agent began to stop meanwhile: the drain then
    /// finishes the pipeline with the output's whole shutdown grace.
    async fn stop_logs(&self) -> Option<usize> {
        let logs = &self.logs;
        logs.stop.inputs.cancel();
        let deadline = Instant::now() + LOG_HANDOVER_GRACE;
        let sent = async {
            logs.stop.handed.cancelled().await;
            self.installed.output.flush_logs(deadline).await;
        };
        tokio::select! {
            () = sent => {}
            () = tokio::time::sleep_until(deadline) => {}
            () = self.shutdown.cancelled() => return None,
        }
        let unsent = self.settlements.unsettled();
        logs.stop.flushed.cancel();
        tokio::select! {
            () = logs.done.cancelled() => {}
            () = tokio::time::sleep(Duration::from_secs(5)) => {
                tracing::warn!("the replaced log pipeline did not commit its checkpoints in time");
            }
        }
        if unsent > 0 {
            // CloudWatch Logs slow or down: the output would send these later, and the new
            // pipeline reads them again from the checkpoints; only one of the two may. The old
            // pipeline is done (it can hand over nothing more) and the new one has not started,
            // so everything the output holds is the old one's.
            let withdrawn = self.installed.output.withdraw_logs().await;
            tracing::info!(
                withdrawn,
                "the output gave up the unsent events of the replaced log pipeline; they are read again"
            );
        }
        Some(unsent)
    }
}

/// Applies a changed `agent.debug` and `kinsight.telemetry.log_format` to kinsight's own log.
fn apply_logging(old: &Config, new: &Config) {
    if new.telemetry.log_format != old.telemetry.log_format && telemetry::set_format(new.telemetry.log_format) {
        tracing::info!(format = ?new.telemetry.log_format, "kinsight.telemetry.log_format applied");
    }
    if new.debug != old.debug {
        if telemetry::set_debug(new.debug) {
            tracing::info!(
                debug = new.debug,
                "agent.debug applied: kinsight's own log level changed"
            );
        } else {
            tracing::warn!(
                debug = new.debug,
                "agent.debug changed, but KINSIGHT_LOG sets the log filter; it stays"
            );
        }
    }
}

/// Retires a replaced output: a few seconds to send what it held; log events it still held go
/// to the new output; what else is left was counted by the output.
async fn retire(old: Installed, new: &Arc<dyn Output>) {
    old.owner.cancel();
    let left = old.output.flush(Instant::now() + RETIRE_GRACE).await;
    if left.dropped > 0 {
        tracing::warn!(
            dropped = left.dropped,
            "the replaced output could not send everything it held"
        );
    }
    if !left.logs.is_empty() && new.send_logs(left.logs).await.is_err() {
        tracing::warn!("the new output stopped before it took the log events of the replaced one");
    }
}

/// Starts the hourly cost line (restartable); a reload sends new prices on the returned sender.
fn start_cost(
    sup: &mut Supervisor,
    cfg: &Config,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) -> watch::Sender<crate::config::Prices> {
    let (tx, rx) = watch::channel(cfg.prices.clone());
    let (t, token) = (telemetry.clone(), inputs.clone());
    sup.restartable_until("cost::hourly", inputs.clone(), move || {
        super::cost::log_hourly(t.clone(), rx.clone(), token.clone())
    });
    tx
}

/// Starts the tick loop and the delivery of its cycles (both must-run until the inputs stop).
/// The returned token fires once delivery has handed over the last cycle.
#[expect(
    clippy::too_many_arguments,
    reason = "the wiring of one pipeline: each value goes to one task"
)]
fn start_metrics(
    sup: &mut Supervisor,
    collector: crate::metrics::Collector,
    outside: &Outside,
    cfg: &Config,
    settings: watch::Receiver<Settings>,
    output: watch::Receiver<Arc<dyn Output>>,
    credentials: watch::Receiver<Option<crate::auth::Identity>>,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) -> CancellationToken {
    let (cycle_tx, cycle_rx) = mpsc::channel(tick::CYCLE_QUEUE);
    let bound = tick::stuck_bound(cfg.interval);
    let deliver_settings = settings.clone();
    sup.must_run_until(
        "metrics::tick",
        inputs.clone(),
        tick::run(
            collector,
            outside.clock.clone(),
            settings,
            cycle_tx,
            telemetry.clone(),
            telemetry.heartbeat("metrics::tick", bound),
            inputs.clone(),
        ),
    );
    let delivered = CancellationToken::new();
    let (t, hb, done) = (
        telemetry.clone(),
        telemetry.heartbeat("ship::deliver_cycles", bound),
        delivered.clone(),
    );
    sup.must_run_until("ship::deliver_cycles", inputs.clone(), async move {
        deliver(cycle_rx, output, credentials, deliver_settings, t, hb).await;
        done.cancel();
    });
    delivered
}

/// The log pipeline at startup, or `None` when log collection is off or cannot start (reported;
/// metrics go on).
fn first_logs(
    outside: &Outside,
    cfg: &Config,
    node: &NodeMetadata,
    pods: Option<kube::PodIndex>,
    settlements: &Arc<crate::logs::Settlements>,
    telemetry: &Telemetry,
) -> Option<crate::logs::LogPipeline> {
    match build::log_settings(outside, cfg, node) {
        Ok(Some(settings)) => build::logs(outside, cfg, settings, pods, settlements, telemetry),
        Ok(None) => {
            tracing::info!("log collection is off (kinsight.logs.enabled: false)");
            None
        }
        Err(e) => {
            tracing::error!(error = %telemetry::chain(&e), "log collection cannot start; metrics go on");
            None
        }
    }
}

/// Starts the log pipeline (must-run until the inputs stop, or a reload replaces it), or marks
/// it done at once when there is none.
fn start_logs(
    sup: &mut Supervisor,
    logs: Option<crate::logs::LogPipeline>,
    cfg: &Config,
    output: &watch::Receiver<Arc<dyn Output>>,
    inputs: &CancellationToken,
) -> LogsTask {
    let mut task = LogsTask {
        stop: crate::logs::Stop {
            inputs: inputs.child_token(),
            ..crate::logs::Stop::default()
        },
        done: CancellationToken::new(),
        multiline_tx: None,
    };
    let Some(mut pipeline) = logs else {
        task.stop.handed.cancel();
        task.done.cancel();
        return task;
    };
    task.multiline_tx = build::multiline_updates(&mut pipeline, cfg);
    let (out, stop, done) = (output.clone(), task.stop.clone(), task.done.clone());
    sup.must_run_until("logs::tail", task.stop.inputs.clone(), async move {
        pipeline.run(out, stop).await;
        done.cancel();
    });
    task
}

/// Starts the config watcher (restartable); new valid configurations arrive on the receiver.
fn watch_config(
    sup: &mut Supervisor,
    path: Option<&std::path::PathBuf>,
    loaded: &Loaded,
    cfg: &Arc<Config>,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) -> watch::Receiver<Arc<Config>> {
    let (cfg_tx, cfg_rx) = watch::channel(cfg.clone());
    if let Some(path) = path.cloned() {
        let (t, token, current, reload_inputs) =
            (telemetry.clone(), inputs.clone(), cfg.clone(), loaded.inputs.clone());
        sup.restartable_until("config::watch", inputs.clone(), move || {
            let t = t.clone();
            config::reload::watch(
                path.clone(),
                reload_inputs.clone(),
                current.clone(),
                cfg_tx.clone(),
                move |outcome: &config::reload::ReloadOutcome| {
                    let result = match outcome {
                        config::reload::ReloadOutcome::Applied { .. } => ReloadResult::Applied,
                        config::reload::ReloadOutcome::Invalid(_) => ReloadResult::Invalid,
                        config::reload::ReloadOutcome::Unchanged => ReloadResult::Unchanged,
                        config::reload::ReloadOutcome::ReadFailed(_) => ReloadResult::ReadFailed,
                    };
                    ConfigReloaded { result }.emit(&t);
                },
                token.clone(),
            )
        });
    }
    cfg_rx
}

/// The drain after the run loop: inputs first, then the output, checkpoints last.
async fn drain(running: &Running, inputs: &CancellationToken, delivered: &CancellationToken) {
    let logs = &running.logs;
    // Phase 1: stop the inputs; the delivery task hands over what they made, then ends.
    let deadline = Instant::now() + running.cfg.logs.shutdown_grace;
    inputs.cancel();
    tokio::select! {
        () = delivered.cancelled() => {}
        () = tokio::time::sleep_until(deadline) => {}
    }
    // Phase 2: flush the output within the grace period.
    let left = running.installed.output.flush(deadline).await;
    if left.dropped > 0 || !left.logs.is_empty() {
        tracing::warn!(
            dropped = left.dropped,
            log_events_unsent = left.logs.len(),
            "not everything could be sent before the drain deadline; unsent log events are read again after the restart"
        );
    }
    // Phase 3: the log pipeline commits its checkpoints last, once the output said what it
    // accepted; what it did not is read again after the restart.
    logs.stop.flushed.cancel();
    tokio::select! {
        () = logs.done.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(5)) => {
            tracing::warn!("the log pipeline did not commit its checkpoints in time; the last second of progress is read again after the restart");
        }
    }
    running.installed.owner.cancel();
}

/// What `run` and `once` start from.
pub(super) struct Started {
    pub(super) sup: Supervisor,
    pub(super) aws: Option<AwsContext>,
    pub(super) aws_owner: CancellationToken,
    pub(super) cfg: Config,
    pub(super) parts: build::Parts,
}

/// The common start of `run` and `once`: the identity first (a refused identity stops the agent
/// before anything else starts), its refreshers, the cluster name, the startup lines, the node.
pub(super) async fn start(
    outside: &Outside,
    mut loaded: Loaded,
    telemetry: &Telemetry,
    stopping: &CancellationToken,
) -> Result<(Started, Loaded), AppError> {
    build::log_config_warnings(&loaded.cfg);
    let mut sup = Supervisor::new(telemetry.clone(), stopping.clone());
    let aws_owner = stopping.child_token();
    let mut aws = build::aws(&loaded.cfg, outside, telemetry, &aws_owner).await?;
    if let Some(a) = aws.as_mut() {
        supervise_aws(&mut sup, a, &aws_owner);
    }
    resolve_cluster_name(&mut loaded, outside, aws.as_ref()).await?;
    let cfg = loaded.cfg.clone();
    build::log_startup(&cfg, outside);
    let parts = Box::pin(build::parts(outside, &cfg, telemetry)).await?;
    Ok((
        Started {
            sup,
            aws,
            aws_owner,
            cfg,
            parts,
        },
        loaded,
    ))
}

/// `kinsight run`: collect every interval until `cancel`, applying config reloads live.
/// Starts the pod metadata source, if any: the file source or the apiserver watch.
pub(super) fn start_metadata(
    sup: &mut Supervisor,
    metadata: Option<build::Metadata>,
    cfg: &Config,
    outside: &Outside,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) -> Option<ApiserverTask> {
    match metadata {
        Some(build::Metadata::File(path, index)) => {
            let scope = kube::NodeScope::NodeOfClusterDump(cfg.node_name.clone());
            let (t, token) = (telemetry.clone(), inputs.clone());
            sup.restartable_until("kube::pods_file", inputs.clone(), move || {
                let source =
                    kube::FileSource::new(path.clone(), None, index.clone(), t.clone()).with_scope(scope.clone());
                source.run(token.clone())
            });
        }
        Some(build::Metadata::Apiserver(index)) => {
            telemetry.expect_condition(
                kube::API_CONDITION,
                "the apiserver pod watch has not completed its first list",
            );
            return Some(start_apiserver(sup, index, cfg, outside, telemetry, inputs));
        }
        // The runtime source fills this index itself (`start_runtime`).
        Some(build::Metadata::Runtime(_)) | None => {}
    }
    None
}

/// What the apiserver task is started with from the configuration: a reload that changes any of
/// it restarts the task (`Running::restart_apiserver`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ApiserverSettings {
    kubeconfig: Option<std::path::PathBuf>,
    lease: Duration,
    /// Services are watched for the `Service` dimension.
    tag_service: bool,
    /// Pending pods and the storage records: enhanced observability.
    enhanced: bool,
    /// Workload records are performance events (and enhanced metrics): not watched when neither
    /// is written.
    workloads: bool,
    /// The control plane is an enhanced group: scraped once an interval, by the leader only.
    control_plane: Option<Duration>,
}

impl ApiserverSettings {
    pub(super) fn of(cfg: &Config) -> ApiserverSettings {
        let enhanced = cfg.kubernetes.enhanced_container_insights;
        ApiserverSettings {
            kubeconfig: cfg.kubernetes.kube_config_path.clone(),
            lease: cfg.metrics.leader_lease,
            tag_service: cfg.kubernetes.tag_service,
            enhanced,
            workloads: enhanced || cfg.metrics.destination != crate::config::MetricsDestination::PutMetricData,
            control_plane: enhanced.then_some(cfg.interval),
        }
    }
}

/// The running apiserver task: the pod watch, the leader election and the cluster watch.
#[derive(Debug)]
pub(super) struct ApiserverTask {
    /// Cancelled to stop it (a child of the inputs' token).
    owner: CancellationToken,
    index: kube::PodIndex,
    settings: ApiserverSettings,
}

/// Starts the apiserver task for `cfg`, filling `index`.
fn start_apiserver(
    sup: &mut Supervisor,
    index: kube::PodIndex,
    cfg: &Config,
    outside: &Outside,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) -> ApiserverTask {
    let settings = ApiserverSettings::of(cfg);
    let owner = inputs.child_token();
    let (t, token) = (telemetry.clone(), owner.clone());
    let node = cfg.node_name.clone();
    let allow_plain_http = outside.env.allow_plain_http_endpoints;
    let namespace = outside
        .env
        .k8s_namespace
        .clone()
        .unwrap_or_else(|| "amazon-cloudwatch".to_string());
    // Unique per agent pod: during a rolling update with surge two run on one node.
    let identity = format!(
        "{node}/{}",
        outside
            .env
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("pid-{}", std::process::id()))
    );
    let s = settings.clone();
    let task_index = index.clone();
    sup.restartable_until("kube::apiserver", owner.clone(), move || {
        let (t, token, index, node, s) = (t.clone(), token.clone(), task_index.clone(), node.clone(), s.clone());
        let (namespace, identity) = (namespace.clone(), identity.clone());
        async move {
            match kube::connect_apiserver(s.kubeconfig.as_deref(), allow_plain_http).await {
                Ok(client) => {
                    let source = kube::ApiSource {
                        client: client.clone(),
                        node,
                        index: index.clone(),
                        telemetry: t.clone(),
                        tag_service: s.tag_service,
                    };
                    let elector = kube::Elector {
                        client: client.clone(),
                        namespace,
                        identity,
                        duration: s.lease,
                        telemetry: t.clone(),
                    };
                    let cluster = kube::ClusterWatch {
                        client,
                        index,
                        telemetry: t,
                        workloads: s.workloads,
                        pending_pods: s.enhanced,
                        storage: s.enhanced,
                        control_plane: s.control_plane,
                    };
                    let (leading_tx, leading_rx) = watch::channel(false);
                    tokio::join!(
                        source.run(token.clone()),
                        elector.run(leading_tx, token.clone()),
                        cluster.run(leading_rx, token),
                    );
                }
                Err(e) => {
                    // Not retried: a missing kubeconfig or service account does not appear
                    // by waiting. Metrics and logs go on without pod metadata.
                    let error = crate::telemetry::chain(&e);
                    tracing::error!(%error, "no apiserver client; pod metadata is unavailable");
                    t.set_condition(kube::API_CONDITION, false, &format!("no apiserver client: {error}"));
                    token.cancelled().await;
                }
            }
        }
    });
    ApiserverTask { owner, index, settings }
}

/// Starts the scrapes of this node's CSI node plugins (enhanced volume I/O) when there is a pod
/// index to find them in; the source idles while enhanced observability is off.
pub(super) fn start_volumes(
    sup: &mut Supervisor,
    parts: &build::Parts,
    settings: &watch::Receiver<crate::metrics::collect::Settings>,
    telemetry: &Telemetry,
    inputs: &CancellationToken,
) {
    let Some(metadata) = &parts.metadata else { return };
    let source = crate::metrics::volumes::VolumeSource {
        index: metadata.index().clone(),
        tx: parts.volume_tx.clone(),
        telemetry: telemetry.clone(),
        settings: settings.clone(),
    };
    let token = inputs.clone();
    sup.restartable_until("metrics::volumes", inputs.clone(), move || {
        source.clone().run(token.clone())
    });
}

/// Starts the container runtime source (restartable; it retries a missing socket itself).
pub(super) fn start_runtime(sup: &mut Supervisor, source: crate::runtime::RuntimeSource, inputs: &CancellationToken) {
    let token = inputs.clone();
    sup.restartable_until("runtime::containerd", inputs.clone(), move || {
        source.clone().run(token.clone())
    });
}

/// Starts the accelerator source (restartable; an unreachable exporter is its normal case).
pub(super) fn start_accelerators(
    sup: &mut Supervisor,
    source: crate::host::accel::AcceleratorSource,
    inputs: &CancellationToken,
) {
    let token = inputs.clone();
    sup.restartable_until("host::accel", inputs.clone(), move || source.clone().run(token.clone()));
}

/// Starts the telemetry endpoint, when one is configured, and names the readiness conditions
/// not met yet.
fn serve_telemetry(
    cfg: &Config,
    telemetry: &Telemetry,
    stopping: &CancellationToken,
    aws: bool,
) -> Result<(), AppError> {
    if let Some(addr) = cfg.telemetry.listen_address {
        let (bound, _thread) = telemetry::serve(
            addr,
            telemetry::ServerLimits::default(),
            telemetry.clone(),
            stopping.clone(),
        )
        .map_err(|source| AppError::Telemetry { addr, source })?;
        tracing::info!(address = %bound, "telemetry endpoint listening (/healthz, /readyz, /metrics)");
    }
    telemetry.expect_condition("cycle", "no collection cycle has completed yet");
    if aws {
        telemetry.expect_condition("credentials", "not checked yet");
    }
    Ok(())
}

pub async fn run(outside: Outside, loaded: Loaded, cancel: CancellationToken) -> Result<(), AppError> {
    let telemetry = Telemetry::new();
    let stopping = CancellationToken::new();
    let inputs = stopping.child_token();
    let (started, loaded) = Box::pin(start(&outside, loaded, &telemetry, &stopping)).await?;
    let Started {
        mut sup,
        aws,
        aws_owner,
        cfg,
        parts,
    } = started;
    let cfg = Arc::new(cfg);
    serve_telemetry(&cfg, &telemetry, &stopping, aws.is_some())?;

    // Logs first: the output acknowledges log events to the settle table, which every log
    // pipeline of the process shares (a reload may replace the pipeline, or start one).
    let settlements = Arc::new(crate::logs::Settlements::default());
    let pods = parts.metadata.as_ref().map(|m| m.index().clone());
    let logs = first_logs(&outside, &cfg, &parts.node, pods.clone(), &settlements, &telemetry);
    // Output.
    let ack: Arc<dyn Acknowledge> = settlements.clone();
    let (output, tasks) = build::output(&cfg, aws.as_ref(), &telemetry, Some(ack))?;
    let installed = install(&mut sup, output.clone(), tasks, &stopping);
    let (output_tx, output_rx) = watch::channel(output);
    let (credentials_tx, credentials_rx) = watch::channel(aws.as_ref().map(|a| a.identity.clone()));
    let logs_task = start_logs(&mut sup, logs, &cfg, &output_rx, &inputs);

    // Pod metadata.
    let apiserver = start_metadata(&mut sup, parts.metadata.clone(), &cfg, &outside, &telemetry, &inputs);
    start_runtime(&mut sup, parts.runtime.clone(), &inputs);

    // Metrics: the tick loop and the delivery of its cycles.
    let (settings_tx, settings_rx) = watch::channel(build::settings(&cfg, &parts.node));
    start_volumes(&mut sup, &parts, &settings_rx, &telemetry, &inputs);
    start_accelerators(
        &mut sup,
        build::accelerators(&outside, &parts, settings_rx.clone(), &telemetry),
        &inputs,
    );
    let prices_tx = start_cost(&mut sup, &cfg, &telemetry, &inputs);
    let delivered = start_metrics(
        &mut sup,
        parts.collector,
        &outside,
        &cfg,
        settings_rx,
        output_rx,
        credentials_rx,
        &telemetry,
        &inputs,
    );

    let mut cfg_rx = watch_config(
        &mut sup,
        outside.config_path.as_ref(),
        &loaded,
        &cfg,
        &telemetry,
        &inputs,
    );

    let mut running = Running {
        outside,
        cfg,
        node: parts.node,
        aws,
        aws_owner,
        installed,
        output_tx,
        settings_tx,
        prices_tx,
        credentials_tx,
        logs: logs_task,
        settlements,
        pods,
        apiserver,
        runtime_interval: parts.runtime_interval,
        telemetry: telemetry.clone(),
        stopping: stopping.clone(),
        inputs: inputs.clone(),
        shutdown: cancel.clone(),
    };
    let failed = loop {
        tokio::select! {
            () = cancel.cancelled() => break None,
            failed = sup.failure() => break Some(failed),
            changed = cfg_rx.changed() => {
                if changed.is_err() { continue; }
                let new = cfg_rx.borrow_and_update().clone();
                running.reload(&mut sup, new).await;
            }
        }
    };
    if let Some(f) = &failed {
        tracing::error!(task = f.task, cause = %f.cause, "a must-run task stopped; draining and exiting");
    } else {
        tracing::info!("kinsight stopping: inputs first, then the output, checkpoints last");
    }

    drain(&running, &inputs, &delivered).await;
    sup.shutdown(Instant::now() + Duration::from_secs(2)).await;
    match failed {
        Some(f) => Err(AppError::Task(f)),
        None => Ok(()),
    }
}

/// `kinsight once`: a priming sample, `interval` later the real one, written, done. Ctrl-C stops
/// it at any point.
pub async fn once(
    outside: Outside,
    loaded: Loaded,
    interval: Duration,
    cancel: CancellationToken,
) -> Result<(), AppError> {
    let telemetry = Telemetry::new();
    let stopping = CancellationToken::new();
    let (started, _) = Box::pin(start(&outside, loaded, &telemetry, &stopping)).await?;
    let Started {
        mut sup,
        aws,
        cfg,
        parts,
        ..
    } = started;
    let (output, tasks) = build::output(&cfg, aws.as_ref(), &telemetry, None)?;
    let installed = install(&mut sup, output, tasks, &stopping);
    // The apiserver source (and the election) run during the interval between the two samples,
    // usually long enough for the first list; the second sample then has the pods.
    let inputs = stopping.child_token();
    start_metadata(&mut sup, parts.metadata.clone(), &cfg, &outside, &telemetry, &inputs);
    start_runtime(&mut sup, parts.runtime.clone(), &inputs);
    let (_settings_tx, settings_rx) = watch::channel(build::settings(&cfg, &parts.node));
    start_volumes(&mut sup, &parts, &settings_rx, &telemetry, &inputs);
    start_accelerators(
        &mut sup,
        build::accelerators(&outside, &parts, settings_rx, &telemetry),
        &inputs,
    );
    let clock: Arc<dyn Clock> = outside.clock.clone();
    let (collector, _priming, _) = tick::collect_off_thread(parts.collector, clock.clone()).await;
    tokio::select! {
        () = tokio::time::sleep(interval) => {}
        () = cancel.cancelled() => {
            tracing::info!("interrupted before the second sample; nothing written");
            sup.shutdown(Instant::now() + Duration::from_secs(1)).await;
            return Ok(());
        }
    }
    let started = clock.monotonic();
    let (_, cycle, cpu) = tick::collect_off_thread(collector, clock.clone()).await;
    CycleCompleted {
        records: cycle.records.len(),
        datums: cycle.datums.len(),
        elapsed: clock.monotonic() - started,
        cpu,
    }
    .emit(&telemetry);
    let out = installed.output.clone();
    let written = out
        .send_metrics(cycle.datums)
        .and_then(|()| out.send_performance(cycle.events))
        .map_err(AppError::Ship);
    // The CloudWatch output sends in the background: give it the time a pod would have, or
    // less if interrupted.
    let flush = out.flush(Instant::now() + Duration::from_secs(20));
    tokio::select! {
        _ = flush => {}
        () = cancel.cancelled() => {
            let _ = out.flush(Instant::now()).await;
        }
    }
    inputs.cancel();
    installed.owner.cancel();
    sup.shutdown(Instant::now() + Duration::from_secs(2)).await;
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Inputs, OutputKind};

    fn settings(interval_s: u64) -> Settings {
        let text = format!("{{\"agent\": {{\"metrics_collection_interval\": {interval_s}}}}}");
        let cfg = config::load_str(&text, &Inputs::local_test()).unwrap();
        build::settings(&cfg, &NodeMetadata::default())
    }

    /// A reload from a 60 s to a 600 s interval: cycles now come 600 s apart, and the delivery's
    /// heartbeat must not be called stuck in between (its bound was 4 minutes).
    #[tokio::test(start_paused = true)]
    async fn the_delivery_heartbeat_follows_a_longer_interval() {
        let telemetry = Telemetry::new();
        let (settings_tx, settings_rx) = watch::channel(settings(60));
        let (cycle_tx, cycle_rx) = mpsc::channel(1);
        let local: Arc<dyn Output> =
            Arc::from(crate::ship::build_local(&OutputKind::Dir(std::env::temp_dir()), &telemetry, None).unwrap());
        let (_output_tx, output_rx) = watch::channel(local);
        let (_credentials_tx, credentials_rx) = watch::channel(None);
        let heartbeat = telemetry.heartbeat("ship::deliver_cycles", tick::stuck_bound(Duration::from_mins(1)));
        let task = tokio::spawn(deliver(
            cycle_rx,
            output_rx,
            credentials_rx,
            settings_rx,
            telemetry.clone(),
            heartbeat,
        ));
        settings_tx.send_replace(settings(600));
        tokio::time::sleep(Duration::from_mins(5)).await;
        assert!(telemetry.liveness().is_ok(), "{:?}", telemetry.liveness());
        // Still bounded: three of the new intervals and a minute.
        tokio::time::sleep(Duration::from_mins(27)).await;
        assert!(telemetry.liveness().is_err());
        drop(cycle_tx);
        task.await.unwrap();
    }
}
