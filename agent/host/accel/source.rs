//! The accelerator source: scrapes the node-local DCGM exporter and neuron-monitor (AWS Neuron,
//! `neuron_source.rs`) and reads the EFA devices' counters once an interval in the background,
//! and publishes the last answers, which the metrics tick reads without waiting.
//!
//! Nothing here is required: a node without GPUs is not scraped at all, a node without RDMA
//! devices is looked at (one directory listing) and said nothing of, and an exporter that does
//! not answer is said once per kind of failure, counted, and asked again next interval. A
//! failed scrape publishes an empty reading, so the tick never reports stale figures.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::host::Root;
use crate::telemetry::{Name, Telemetry};

use super::dcgm::{self, GpuReading};
use super::efa::{self, EfaRates, EfaReading};
use super::podresources::{self, DeviceOwners};
use super::scrape::{self, ScrapeError};

/// A scrape that takes longer is abandoned (an exporter answers in milliseconds).
const MAX_SCRAPE_TIME: Duration = Duration::from_secs(10);

/// How long a MAC whose interface id IMDS did not give waits before it is asked again (a pod
/// without `hostNetwork` behind a hop limit of 1 never gets an answer; each try costs a second).
const ENI_RETRY: Duration = Duration::from_mins(10);

/// What the source should do now; asked before every scrape, so a reloaded config or the own
/// Node object's appearance takes effect at the next interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapePlan {
    /// The DCGM exporter to scrape; `None`: no GPU metrics wanted on this node.
    pub dcgm: Option<url::Url>,
    /// Whether to read the EFA devices' counters (accelerated compute metrics on).
    pub efa: bool,
    /// AWS Neuron: neuron-monitor to scrape; `None`: no Neuron metrics wanted on this node.
    pub neuron: Option<url::Url>,
    pub interval: Duration,
}

/// The last scrape's GPUs and EFA devices; empty before the first and after a failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuScrape {
    pub gpus: Vec<GpuReading>,
    pub efa: Vec<EfaReading>,
}

/// The receiving side the metrics collector holds.
pub type GpuView = watch::Receiver<Arc<GpuScrape>>;

/// A new, empty view and its sender.
pub fn gpu_channel() -> (watch::Sender<Arc<GpuScrape>>, GpuView) {
    watch::channel(Arc::new(GpuScrape::default()))
}

/// The source's settings and handles.
#[derive(Clone)]
pub struct AcceleratorSource {
    /// Asked before each scrape (the composition root reads the config and the pod index).
    pub plan: Arc<dyn Fn() -> ScrapePlan + Send + Sync>,
    pub gpus: watch::Sender<Arc<GpuScrape>>,
    /// AWS Neuron: where neuron-monitor's scrapes go (`neuron_source.rs`).
    pub neurons: watch::Sender<Arc<super::neuron::NeuronScrape>>,
    /// The kubelet's pod-resources socket (host root applied): who holds each GPU, EFA device
    /// and Neuron core or device. Without it GPUs keep the exporter's own pod labels and EFA and
    /// Neuron devices no holder.
    pub pod_resources: Option<PathBuf>,
    /// The node's root, for `/sys/class/infiniband`; `None`: no EFA metrics.
    pub host: Option<Root>,
    /// Where to ask the EFA devices' network interface ids (IMDS); `None`: not asked, and the
    /// `NetworkInterfaceId` sets are not sent.
    pub imds: Option<crate::config::AwsEnv>,
    pub telemetry: Telemetry,
}

impl std::fmt::Debug for AcceleratorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceleratorSource").finish_non_exhaustive()
    }
}

/// What the loop keeps between scrapes.
#[derive(Default)]
struct State {
    /// Kinds of failure already said (each once).
    reported: HashSet<&'static str>,
    dcgm_ok: bool,
    efa_devices: usize,
    efa_rates: EfaRates,
    /// MAC → interface id, or when IMDS last failed to say it.
    enis: HashMap<String, Result<Arc<str>, Instant>>,
    /// AWS Neuron.
    neuron: super::neuron_source::NeuronState,
}

impl AcceleratorSource {
    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut state = State::default();
        loop {
            let plan = (self.plan)();
            let timeout = MAX_SCRAPE_TIME.min(plan.interval);
            let gpus = match &plan.dcgm {
                Some(url) => tokio::select! {
                    () = cancel.cancelled() => return,
                    r = self.scrape_gpus(url, timeout, &mut state) => r,
                },
                None => Vec::new(),
            };
            let devices = if plan.efa {
                self.read_efa(&mut state)
            } else {
                Vec::new()
            };
            // AWS Neuron: neuron-monitor, in the same interval.
            let neuron = match &plan.neuron {
                Some(url) => tokio::select! {
                    () = cancel.cancelled() => return,
                    r = self.scrape_neuron(url, timeout, &mut state.neuron, &mut state.reported) => r,
                },
                None => None,
            };
            // One question to the kubelet covers every kind of device.
            let owners = if gpus.is_empty()
                && devices.is_empty()
                && neuron.as_ref().is_none_or(super::neuron::NeuronScrape::is_empty)
            {
                None
            } else {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    o = self.owners(timeout, &mut state) => o,
                }
            };
            let gpus = match &owners {
                Some(o) => podresources::attribute(gpus, &o.gpus),
                None => gpus,
            };
            let efa = tokio::select! {
                () = cancel.cancelled() => return,
                e = self.efa_readings(&devices, owners.as_ref(), &mut state) => e,
            };
            self.gpus.send_replace(Arc::new(GpuScrape { gpus, efa }));
            self.publish_neuron(neuron, owners.as_ref(), &mut state.neuron);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(plan.interval) => {}
            }
        }
    }

    /// One DCGM scrape; empty after a failure (said once per kind).
    async fn scrape_gpus(&self, url: &url::Url, timeout: Duration, state: &mut State) -> Vec<GpuReading> {
        match scrape_dcgm(url, timeout).await {
            Ok(gpus) => {
                self.telemetry
                    .add(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", "ok")], 1);
                if !state.dcgm_ok {
                    tracing::info!(url = %url, gpus = gpus.len(), "DCGM exporter answered: GPU metrics on");
                }
                state.dcgm_ok = true;
                gpus
            }
            Err(e) => {
                self.failed(&e, url, &mut state.reported);
                state.dcgm_ok = false;
                Vec::new()
            }
        }
    }

    /// The EFA devices of the node now; none without RDMA devices or when sysfs cannot be read
    /// (said once per kind, counted as `exporter="efa"`).
    fn read_efa(&self, state: &mut State) -> Vec<efa::EfaDevice> {
        let Some(root) = &self.host else { return Vec::new() };
        let count = |result: &'static str| {
            self.telemetry
                .add(Name::AcceleratorScrapes, &[("exporter", "efa"), ("result", result)], 1);
        };
        match efa::read(root) {
            Ok(None) => Vec::new(),
            Ok(Some(read)) => {
                if let Some(e) = read.errors.first() {
                    count("partial");
                    let key = match e.kind() {
                        "permission_denied" => "efa_permission_denied",
                        "parse" => "efa_parse",
                        _ => "efa_io",
                    };
                    if state.reported.insert(key) {
                        tracing::warn!(
                            error = %crate::telemetry::chain(e),
                            unreadable = read.errors.len(),
                            "some EFA counters could not be read: those are not sent, the rest are \
                             (said once per kind of failure)"
                        );
                    }
                } else if !read.devices.is_empty() {
                    count("ok");
                }
                if read.devices.len() != state.efa_devices {
                    tracing::info!(
                        devices = read.devices.len(),
                        "EFA devices found: *_efa_* metrics from sysfs"
                    );
                    state.efa_devices = read.devices.len();
                }
                read.devices
            }
            Err(e) => {
                count(e.kind());
                if state.reported.insert("efa_unreadable") {
                    tracing::warn!(
                        error = %crate::telemetry::chain(&e),
                        "EFA devices not read: no *_efa_* metrics; retrying every interval (said once)"
                    );
                }
                Vec::new()
            }
        }
    }

    /// The readings of `devices`: rates, holders and network interface ids.
    async fn efa_readings(
        &self,
        devices: &[efa::EfaDevice],
        owners: Option<&DeviceOwners>,
        state: &mut State,
    ) -> Vec<EfaReading> {
        let now = Instant::now();
        let mut out = Vec::with_capacity(devices.len());
        for d in devices {
            let rates = state.efa_rates.update(d, now);
            let interface_id = match &d.mac {
                Some(mac) => self.interface_id(mac, state).await,
                None => None,
            };
            let holders = owners.and_then(|o| o.efa.get(&*d.name)).cloned().unwrap_or_default();
            out.push(EfaReading {
                device: Arc::clone(&d.name),
                interface_id,
                rates,
                holders,
            });
        }
        state.efa_rates.retain(devices);
        out
    }

    /// The interface id of `mac`, from the cache or IMDS (a failure is retried after
    /// [`ENI_RETRY`] and said once).
    async fn interface_id(&self, mac: &str, state: &mut State) -> Option<Arc<str>> {
        let aws = self.imds.as_ref()?;
        match state.enis.get(mac) {
            Some(Ok(id)) => return Some(Arc::clone(id)),
            Some(Err(at)) if at.elapsed() < ENI_RETRY => return None,
            _ => {}
        }
        match crate::auth::interface_id(aws, mac).await {
            Ok(id) => {
                let id: Arc<str> = Arc::from(id);
                tracing::info!(mac, interface_id = %id, "EFA device's network interface found");
                state.enis.insert(mac.to_string(), Ok(Arc::clone(&id)));
                Some(id)
            }
            Err(error) => {
                if state.reported.insert("efa_interface_id") {
                    tracing::warn!(
                        mac,
                        %error,
                        "EFA device's network interface id not known: the NetworkInterfaceId dimension sets are \
                         not sent; asked again every 10 minutes (said once)"
                    );
                }
                state.enis.insert(mac.to_string(), Err(Instant::now()));
                None
            }
        }
    }

    /// The kubelet's word on who holds which device, when its socket answers.
    async fn owners(&self, timeout: Duration, state: &mut State) -> Option<DeviceOwners> {
        let socket = self.pod_resources.as_ref()?;
        match podresources::owners(socket, timeout).await {
            Ok(owners) => {
                self.telemetry.add(
                    Name::AcceleratorScrapes,
                    &[("exporter", "pod_resources"), ("result", "ok")],
                    1,
                );
                Some(owners)
            }
            Err(e) => {
                let kind = e.kind();
                self.telemetry.add(
                    Name::AcceleratorScrapes,
                    &[("exporter", "pod_resources"), ("result", kind)],
                    1,
                );
                let error = crate::telemetry::chain(&e);
                // Its own set of kinds: "pod_resources unreachable" is not "dcgm unreachable".
                let key = match kind {
                    "unreachable" => "pod_resources_unreachable",
                    "timeout" => "pod_resources_timeout",
                    _ => "pod_resources_error",
                };
                if state.reported.insert(key) {
                    tracing::warn!(
                        %error,
                        "kubelet pod-resources API not read: GPUs are attributed to pods by the DCGM exporter's own \
                         labels, EFA devices and Neuron cores and devices to no pod; retrying every interval (said \
                         once per kind of failure)"
                    );
                } else {
                    tracing::debug!(%error, "kubelet pod-resources API still not read");
                }
                None
            }
        }
    }

    fn failed(&self, e: &ScrapeError, url: &url::Url, reported: &mut HashSet<&'static str>) {
        let kind = e.kind();
        self.telemetry
            .add(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", kind)], 1);
        let error = crate::telemetry::chain(e);
        if reported.insert(kind) {
            tracing::warn!(
                %error,
                url = %url,
                "DCGM exporter not scraped: no container_gpu_*/pod_gpu_*/node_gpu_* metrics from it; \
                 retrying every interval (said once per kind of failure)"
            );
        } else {
            tracing::debug!(%error, "DCGM exporter still not scraped");
        }
    }
}

/// One scrape of the DCGM exporter at `url`.
pub async fn scrape_dcgm(url: &url::Url, timeout: Duration) -> Result<Vec<GpuReading>, ScrapeError> {
    let text = scrape::get(url, timeout).await?;
    Ok(dcgm::parse(&text)?)
}
