//! One collection cycle: sample → compute → encode.

use std::time::Duration;

use serde_json::json;

use crate::config::{Config, MetricsDestination};
use crate::host::Clock;
use crate::host::procfs::NodeCapacity;

use std::collections::HashSet;
use std::sync::Arc;

use tokio::time::Instant;

use crate::host::cgroup::{At, CgroupMode, CpuStats, HeldDirs, MemoryStats, PodCgroup};
use crate::host::pids::PidMap;
use crate::host::{HostError, Root};
use crate::kube::{PodIndex, PodInfo, RestartTracker, Snapshot};
use crate::telemetry::events::{HeldObjects, PodsUnknown, ReadSource};

use super::compute::cpumem::Tick;
use super::compute::pod::{self, PodRead, PodSettings};
use super::compute::{self, NodeAttributes, RateKey, gpu, net, node_record, storage};
use super::encode::datum::{self, Datum};
use super::encode::emf::{self, EmfOptions, LogEvent};
use super::rate::{RateCalculator, expiry_for};
use super::record::{Record, RecordType};
use super::sample::Sampler;

/// What one tick produced.
#[derive(Debug, Default)]
pub struct Cycle {
    pub records: Vec<Record>,
    pub datums: Vec<Datum>,
    pub events: Vec<LogEvent>,
}

/// The parts of the configuration a cycle depends on; rebuilt on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub attrs: NodeAttributes,
    pub interval: Duration,
    pub enhanced: bool,
    pub prefer_full_pod_name: bool,
    pub tag_service: bool,
    pub produce: Produce,
    /// `kinsight.metrics.drop`: (metric, dimension set) pairs not sent.
    pub drop: Vec<crate::config::MetricDrop>,
    pub accel: AccelSettings,
}

/// The accelerated compute settings of a cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelSettings {
    /// [E] with `accelerated_compute_metrics`: GPU records and fields.
    pub enabled: bool,
    /// The DCGM exporter, and whether the config names it explicitly.
    pub dcgm_url: url::Url,
    pub dcgm_url_set: bool,
    /// AWS Neuron: neuron-monitor, and whether the config names it explicitly.
    pub neuron_url: url::Url,
    pub neuron_url_set: bool,
}

/// What a cycle produces for the configured destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Produce {
    /// `put_metric_data`: datums only.
    Datums,
    /// `emf`: performance events; with the `CloudWatchMetrics` directive unless
    /// `disable_metric_extraction`.
    Events { directive: bool },
    /// `both`: datums, plus events without the directive (each datapoint reaches CloudWatch
    /// once). With `disable_metric_extraction` it behaves like `emf` without the directive.
    DatumsAndEvents,
}

impl Produce {
    fn datums(self) -> bool {
        matches!(self, Produce::Datums | Produce::DatumsAndEvents)
    }

    fn events(self) -> Option<bool> {
        match self {
            Produce::Datums => None,
            Produce::Events { directive } => Some(directive),
            Produce::DatumsAndEvents => Some(false),
        }
    }
}

impl Settings {
    pub fn from_config(cfg: &Config, attrs: NodeAttributes) -> Self {
        let k = &cfg.kubernetes;
        // Extraction disabled means no metrics at all; validation already refuses it
        // together with `put_metric_data`.
        let produce = match (cfg.metrics.destination, k.disable_metric_extraction) {
            (MetricsDestination::PutMetricData, _) => Produce::Datums,
            (MetricsDestination::Emf, disabled) => Produce::Events { directive: !disabled },
            (MetricsDestination::Both, false) => Produce::DatumsAndEvents,
            (MetricsDestination::Both, true) => Produce::Events { directive: false },
        };
        Settings {
            attrs,
            interval: cfg.interval,
            enhanced: k.enhanced_container_insights,
            prefer_full_pod_name: k.prefer_full_pod_name,
            tag_service: k.tag_service,
            produce,
            drop: cfg.metrics.drop.clone(),
            // Upstream declares every accelerated metric only with enhanced observability
            // (`getGPUMetricDeclarations` in `kubernetes.go` checks both flags).
            accel: AccelSettings {
                enabled: k.enhanced_container_insights && k.accelerated_compute_metrics,
                dcgm_url: cfg.metrics.dcgm_exporter_url.clone(),
                dcgm_url_set: cfg.metrics.dcgm_exporter_url_set,
                neuron_url: cfg.metrics.neuron_monitor_url.clone(),
                neuron_url_set: cfg.metrics.neuron_monitor_url_set,
            },
        }
    }

    /// What the accelerator source scrapes next: the DCGM exporter when GPU metrics are on and
    /// the node has GPUs — its Node object advertises `nvidia.com/gpu` — or the config names the
    /// exporter. A node without GPUs is never scraped (and says nothing about it). The EFA
    /// devices are looked for whenever accelerated metrics are on (a directory listing).
    pub fn scrape_plan(&self, own: Option<&crate::kube::NodeState>) -> crate::host::accel::ScrapePlan {
        let has_gpus = own.and_then(|n| n.capacity_gpus).is_some_and(|n| n > 0);
        let a = &self.accel;
        let dcgm = (a.enabled && (has_gpus || a.dcgm_url_set)).then(|| a.dcgm_url.clone());
        // AWS Neuron: likewise, on a node whose Node object advertises
        // `aws.amazon.com/neuroncore`, or when the config names neuron-monitor.
        let has_neuron = own.and_then(|n| n.capacity_neuroncores).is_some_and(|n| n > 0);
        let neuron = (a.enabled && (has_neuron || a.neuron_url_set)).then(|| a.neuron_url.clone());
        crate::host::accel::ScrapePlan {
            dcgm,
            efa: a.enabled,
            neuron,
            interval: self.interval,
        }
    }
}

/// `Sources` of each record type as upstream writes them (`TagMetricSource` in
/// awscontainerinsightreceiver `internal/stores/utils.go`), although no cAdvisor is embedded here.
fn sources(kind: RecordType) -> serde_json::Value {
    match kind {
        RecordType::Node => json!(["cadvisor", "/proc", "pod", "calculated"]),
        RecordType::NodeFS | RecordType::NodeNet | RecordType::PodNet | RecordType::ContainerFS => {
            json!(["cadvisor", "calculated"])
        }
        RecordType::NodeDiskIO => json!(["cadvisor"]),
        RecordType::Pod | RecordType::Container => json!(["cadvisor", "pod", "calculated"]),
        kind if kind.is_leader() => json!(["apiserver"]),
        _ => json!([]),
    }
}

/// The accelerated compute fields of a Pod record (GPUs and EFA devices, AWS Neuron).
fn accelerated_pod_fields(enabled: bool, r: &mut Record, pod: &PodInfo, own: Option<&crate::kube::NodeState>) {
    gpu::add_pod_fields(enabled, r, pod, own);
    compute::neuron::add_pod_fields(enabled, r, pod, own);
}

/// CPU and memory of one cgroup, through its held directories when possible. A cgroup that
/// went away is forgotten (its reads are "not found", counted as ordinary churn).
fn read_cgroup(
    dirs: &mut HeldDirs,
    mode: &CgroupMode,
    root: &Root,
    rel: &str,
    full: bool,
) -> (Result<CpuStats, HostError>, Result<MemoryStats, HostError>) {
    let at: At<'_> = dirs.at(mode, root, rel);
    let cpu = mode.read_cpu_at(root, &at, full);
    let memory = mode.read_memory_at(root, &at, full);
    let held = matches!(at, At::Held(_));
    if held && (cpu.as_ref().is_err_and(HostError::is_not_found) || memory.as_ref().is_err_and(HostError::is_not_found))
    {
        dirs.forget(rel);
    }
    (cpu, memory)
}

/// Adds a Container record, and its ContainerFS record when the runtime measured the
/// container's writable layer.
fn push_with_fs(out: &mut Vec<Record>, container: Record, fs: Option<&crate::runtime::FsView>, id: &str) {
    let usage = fs.and_then(|v| v.borrow().of(id));
    if let Some((bytes, image_fs)) = usage {
        let rec = pod::container_fs_record(&container, bytes, image_fs);
        out.push(container);
        out.push(rec);
    } else {
        out.push(container);
    }
}

/// Holds the rate state across ticks.
#[derive(Debug)]
pub struct Collector {
    sampler: Sampler,
    capacity: NodeCapacity,
    settings: Settings,
    rates: RateCalculator<RateKey>,
    /// `None` with metadata source `none`: node-level records only.
    pods: Option<PodIndex>,
    restarts: RestartTracker,
    pids: PidMap,
    /// Pod and container cgroup directories, held across ticks.
    dirs: HeldDirs,
    /// The metric series sent in the last hour (`kinsight_billable_metric_series`).
    series: super::series::SeriesWindow,
    /// Deltas of the leader's control-plane scrapes.
    control_plane: compute::control_plane::ControlPlane,
    /// The runtime source's writable-layer usage, for ContainerFS records.
    container_fs: Option<crate::runtime::FsView>,
    /// The CSI node plugins' last scrape and the counters' previous values, for the enhanced
    /// `NodeEBS` and `NodeInstanceStore` records.
    volumes: Option<(super::volumes::VolumeView, super::volumes::Volumes)>,
    /// The accelerator source's last DCGM scrape and EFA read, for the GPU and EFA records.
    gpus: Option<crate::host::accel::GpuView>,
    /// AWS Neuron: neuron-monitor's last scrape, and the counters' previous values.
    neurons: Option<(crate::host::accel::NeuronView, compute::neuron::Neurons)>,
    /// Datums of the last cycle: the next one reserves that many at once instead of growing
    /// (and copying) a vector of tens of thousands of datums several times.
    last_datums: usize,
}

impl Collector {
    pub fn new(sampler: Sampler, capacity: NodeCapacity, settings: Settings, pods: Option<PodIndex>) -> Self {
        let rates = RateCalculator::new(expiry_for(settings.interval));
        let budget = crate::host::pids::open_files_budget();
        Collector {
            sampler,
            capacity,
            settings,
            rates,
            pods,
            restarts: RestartTracker::new(),
            pids: PidMap::with_budget(budget / 4),
            dirs: HeldDirs::with_budget(budget - budget / 4),
            control_plane: compute::control_plane::ControlPlane::new(),
            series: super::series::SeriesWindow::default(),
            container_fs: None,
            volumes: None,
            gpus: None,
            neurons: None,
            last_datums: 0,
        }
    }

    /// Adds ContainerFS records from the runtime source's last measurement (read without
    /// waiting: the source measures in the background).
    #[must_use]
    pub fn with_container_fs(mut self, view: crate::runtime::FsView) -> Self {
        self.container_fs = Some(view);
        self
    }

    /// Adds the enhanced volume I/O records from the CSI node plugins' last scrape (read without
    /// waiting: [`super::volumes::VolumeSource`] scrapes in the background).
    #[must_use]
    pub fn with_volumes(mut self, view: super::volumes::VolumeView) -> Self {
        self.volumes = Some((view, super::volumes::Volumes::default()));
        self
    }

    /// Adds GPU records from the accelerator source's last scrape (read without waiting).
    #[must_use]
    pub fn with_gpus(mut self, view: crate::host::accel::GpuView) -> Self {
        self.gpus = Some(view);
        self
    }

    /// AWS Neuron: adds Neuron records from the accelerator source's last neuron-monitor scrape.
    #[must_use]
    pub fn with_neurons(mut self, view: crate::host::accel::NeuronView) -> Self {
        self.neurons = Some((view, compute::neuron::Neurons::default()));
        self
    }

    /// AWS Neuron: the records of the accelerator source's last neuron-monitor scrape ([E] with
    /// accelerated compute metrics only).
    fn neuron_records(&mut self, node: &Record, records: &mut Vec<Record>) {
        let s = &self.settings;
        let Some((view, neurons)) = self.neurons.as_mut().filter(|_| s.accel.enabled) else {
            return;
        };
        let scrape = Arc::clone(&view.borrow());
        let snapshot = self.pods.as_ref().map(PodIndex::snapshot);
        let cx = compute::neuron::Context {
            node,
            pods: snapshot.as_deref(),
            settings: PodSettings {
                enhanced: s.enhanced,
                prefer_full_pod_name: s.prefer_full_pod_name,
                tag_service: s.tag_service,
                kubernetes_object: false,
            },
        };
        records.extend(neurons.records(&scrape, cx));
    }

    /// Applies a reloaded configuration.
    pub fn reconfigure(&mut self, settings: Settings) {
        self.rates.set_expiry(expiry_for(settings.interval));
        self.settings = settings;
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn collect(&mut self, clock: &dyn Clock) -> Cycle {
        let sample = self.sampler.sample_node(clock);
        let (mut node, usage) = node_record(&sample, self.capacity, &self.settings.attrs, &mut self.rates);
        let mut records = Vec::with_capacity(16);
        if let Some(index) = &self.pods {
            let snapshot = index.snapshot();
            if self.settings.enhanced
                && let Some(own) = snapshot.own_node()
            {
                pod::add_node_status(&mut node, own);
            }
            // This node's volumes, from the CSI node plugins ([E] only).
            if self.settings.enhanced
                && let Some((view, volumes)) = &mut self.volumes
            {
                let scrape = Arc::clone(&view.borrow());
                records.extend(volumes.records(&scrape, &node));
            }
            // The leader's control-plane scrape ([E] only: the leader scrapes only then).
            if self.settings.enhanced
                && let Some(scrape) = snapshot.control_plane()
            {
                records.extend(self.control_plane.records(scrape, &node));
            }
            // Pod-derived fields wait for the index's first complete load.
            if snapshot.is_synced() {
                let capacity = crate::kube::PodResourceCeiling {
                    cpu_millicores: f64::from(self.capacity.cpus) * 1000.0,
                    memory_bytes: self.capacity.memory_bytes as f64,
                };
                pod::add_node_totals(&mut node, &snapshot.node_totals_clamped(&capacity), usage);
                if self.settings.accel.enabled
                    && let Some(own) = snapshot.own_node()
                {
                    gpu::add_node_fields(&mut node, snapshot.pods(), own);
                    compute::neuron::add_node_fields(&mut node, snapshot.pods(), own);
                }
                self.collect_pods(&snapshot, &node, sample.at, &mut records);
                // File mode with a cluster dump: this agent is the leader (see README).
                if let Some(cluster) = snapshot.cluster() {
                    let events = self.settings.produce.events().is_some();
                    records.extend(compute::cluster::cluster_records(
                        cluster,
                        &node,
                        events,
                        self.settings.enhanced,
                    ));
                    if self.settings.enhanced {
                        let s = pod::PodSettings {
                            enhanced: true,
                            prefer_full_pod_name: self.settings.prefer_full_pod_name,
                            tag_service: self.settings.tag_service,
                            kubernetes_object: events,
                        };
                        records.extend(
                            cluster
                                .pending_pods
                                .iter()
                                .map(|p| pod::pending_pod_record(&node, p, s)),
                        );
                    }
                }
            }
        }
        records.extend(self.accelerator_records(&node));
        self.neuron_records(&node, &mut records);
        let nets = net::add(
            &mut node,
            &net::NODE_NET,
            "node",
            &sample.interfaces,
            &mut self.rates,
            sample.at,
            true,
        );
        for (mount, stats) in &sample.filesystems {
            records.push(storage::filesystem_record(&node, mount, stats));
        }
        if let Some(io) = &sample.io {
            records.extend(storage::diskio_records(
                &node,
                io,
                &sample.device_names,
                &mut self.rates,
                sample.at,
            ));
        }
        records.extend(nets);
        records.insert(0, node);
        self.rates.evict_stale(sample.at);
        self.encode(records)
    }

    /// The GPU and EFA records of the accelerator source's last read ([E] with accelerated
    /// compute metrics only).
    fn accelerator_records(&self, node: &Record) -> Vec<Record> {
        let s = &self.settings;
        let Some(view) = self.gpus.as_ref().filter(|_| s.accel.enabled) else {
            return Vec::new();
        };
        let scrape = Arc::clone(&view.borrow());
        let snapshot = self.pods.as_ref().map(PodIndex::snapshot);
        let pod_settings = PodSettings {
            enhanced: s.enhanced,
            prefer_full_pod_name: s.prefer_full_pod_name,
            tag_service: s.tag_service,
            kubernetes_object: false,
        };
        let mut out = gpu::records(&scrape.gpus, node, snapshot.as_deref(), pod_settings);
        out.extend(compute::efa::records(
            &scrape.efa,
            node,
            snapshot.as_deref(),
            pod_settings,
        ));
        out
    }

    /// Pod, PodNet and Container records for every pod cgroup the index knows (an
    /// unknown pod produces nothing this tick and is counted).
    fn collect_pods(&mut self, snapshot: &Snapshot, node: &Record, at: Instant, out: &mut Vec<Record>) {
        let (root, mode) = (&self.sampler.root, &self.sampler.mode);
        let s = &self.settings;
        let events = s.produce.events().is_some();
        // Container and PodNet records carry no standard metric: skip them when nothing would
        // send them (`put_metric_data` without enhanced observability), and then do not even
        // list the container cgroups.
        let containers = events || s.enhanced;
        let listed = if containers {
            mode.list_pods(root)
        } else {
            mode.list_pod_cgroups_only(root)
        };
        let Some(cgroups) = self.sampler.counted(ReadSource::Cgroup, listed) else {
            return;
        };
        let pod_settings = PodSettings {
            enhanced: s.enhanced,
            prefer_full_pod_name: s.prefer_full_pod_name,
            tag_service: s.tag_service,
            kubernetes_object: events,
        };
        let known: Vec<(Arc<PodInfo>, &PodCgroup)> = cgroups
            .iter()
            .filter_map(|c| snapshot.by_uid(&c.uid).map(|p| (p, c)))
            .collect();
        let unknown = cgroups.len() - known.len();
        if unknown > 0 {
            PodsUnknown { count: unknown }.emit(&self.sampler.telemetry);
        }
        let wanted: HashSet<&str> = known.iter().map(|(_, c)| c.uid.as_str()).collect();
        self.sampler
            .counted(ReadSource::Procfs, self.pids.refresh(root, &wanted));
        let mut tick = Tick {
            capacity: self.capacity,
            rates: &mut self.rates,
            at,
        };
        // Fields from the optional cgroup files (peak, swap, failcnt, user/system time on v1)
        // are only sent as container metrics or in performance events.
        let full = containers;
        self.dirs.begin_tick();
        for (pod, cg) in &known {
            let (cpu, memory) = read_cgroup(&mut self.dirs, mode, root, &cg.rel, full);
            let cpu = self.sampler.counted(ReadSource::Cgroup, cpu);
            let memory = self.sampler.counted(ReadSource::Cgroup, memory);
            let restarts = self.restarts.delta_at(pod, at);
            let read = PodRead {
                pod,
                cgroup: &cg.rel,
                cpu,
                memory,
            };
            let (mut rec, _) = pod::pod_record(node, &read, restarts, pod_settings, &mut tick);
            accelerated_pod_fields(s.accel.enabled, &mut rec, pod, snapshot.own_node());
            let interfaces = self
                .pids
                .read_net_dev(root, &cg.uid)
                .and_then(|read| self.sampler.counted(ReadSource::Procfs, read));
            if let Some(ifaces) = interfaces {
                // Per-interface records whenever something sends them: events, or the
                // enhanced `pod_interface_network_*_dropped` datums.
                let nets = compute::net::add(
                    &mut rec,
                    &compute::net::POD_NET,
                    &cg.rel,
                    &ifaces,
                    tick.rates,
                    at,
                    containers,
                );
                out.push(rec);
                out.extend(nets);
            } else {
                out.push(rec);
            }
            if !containers {
                continue;
            }
            for cc in &cg.containers {
                // An id no container status names is the sandbox (or its status is not published yet).
                let Some((owner, i)) = snapshot.by_container_id(&cc.id) else {
                    continue;
                };
                let Some(container) = owner.container(i).filter(|_| owner.uid == pod.uid) else {
                    continue;
                };
                let (cpu, memory) = read_cgroup(&mut self.dirs, mode, root, &cc.rel, full);
                let cpu = self.sampler.counted(ReadSource::Cgroup, cpu);
                let memory = self.sampler.counted(ReadSource::Cgroup, memory);
                let restarts = self.restarts.container_delta_at(pod, i, at);
                let rec = pod::container_record(
                    node,
                    pod,
                    container,
                    (&cc.rel, cpu, memory),
                    restarts,
                    pod_settings,
                    &mut tick,
                );
                push_with_fs(out, rec, self.container_fs.as_ref(), &cc.id);
            }
        }
        self.dirs.end_tick();
        HeldObjects {
            cgroups: self.dirs.len(),
            processes: self.pids.held(),
        }
        .emit(&self.sampler.telemetry);
    }

    fn encode(&mut self, mut records: Vec<Record>) -> Cycle {
        let s = &self.settings;
        let mut datums = Vec::new();
        let mut events = Vec::new();
        if s.produce.datums() {
            datums.reserve((records.len() * 8).max(self.last_datums + self.last_datums / 8));
            for r in &records {
                datum::encode_selected(r, s.enhanced, &s.drop, &mut datums);
            }
            self.last_datums = datums.len();
        }
        // Metrics reach CloudWatch as datums or through an EMF directive; events without one
        // make none.
        let now_ms = records.first().map_or(0, |r| r.timestamp_ms);
        if s.produce.datums() {
            self.series.observe_datums(&datums, now_ms);
        } else if s.produce.events() == Some(true) {
            self.series.observe(&records, s.enhanced, &s.drop, now_ms);
        }
        self.sampler.telemetry.set(
            crate::telemetry::Name::BillableMetricSeries,
            &[],
            self.series.count() as f64,
        );
        if let Some(with_directive) = s.produce.events() {
            events.reserve(records.len());
            let opts = EmfOptions {
                with_directive,
                enhanced: s.enhanced,
            };
            for r in &mut records {
                r.json_attributes.push(("Sources", sources(r.kind)));
                // As upstream's `AddKubernetesInfo`: node, pod and container types carry {"host"};
                // Cluster carries none.
                let needs_host = !r.kind.is_leader();
                if needs_host && !r.json_attributes.iter().any(|(k, _)| *k == "kubernetes") {
                    r.json_attributes
                        .push(("kubernetes", json!({ "host": s.attrs.node_name })));
                }
                emf::encode_selected(r, opts, &s.drop, &mut events);
            }
        }
        Cycle {
            records,
            datums,
            events,
        }
    }
}
