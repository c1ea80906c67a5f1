//! The accelerator source: scrapes the node-local DCGM exporter once an interval in the
//! background and publishes the last answer, which the metrics tick reads without waiting.
//!
//! Nothing here is required: a node without GPUs is not scraped at all, and an exporter that
//! does not answer is said once per kind of failure, counted, and asked again next interval.
//! A failed scrape publishes an empty reading, so the tick never reports stale GPU figures.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Name, Telemetry};

use super::dcgm::{self, GpuReading};
use super::podresources;
use super::scrape::{self, ScrapeError};

/// A scrape that takes longer is abandoned (an exporter answers in milliseconds).
const MAX_SCRAPE_TIME: Duration = Duration::from_secs(10);

/// What the source should do now; asked before every scrape, so a reloaded config or the own
/// Node object's appearance takes effect at the next interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapePlan {
    /// The DCGM exporter to scrape; `None`: no GPU metrics wanted on this node.
    pub dcgm: Option<url::Url>,
    /// AWS Neuron: neuron-monitor to scrape; `None`: no Neuron metrics wanted on this node.
    pub neuron: Option<url::Url>,
    pub interval: Duration,
}

/// The last scrape's GPUs; empty before the first and after a failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuScrape {
    pub gpus: Vec<GpuReading>,
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
    /// The kubelet's pod-resources socket (host root applied): who holds each GPU. Without it
    /// the exporter's own pod labels are used.
    pub pod_resources: Option<PathBuf>,
    pub telemetry: Telemetry,
}

impl std::fmt::Debug for AcceleratorSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcceleratorSource").finish_non_exhaustive()
    }
}

impl AcceleratorSource {
    /// Runs until `cancel`.
    pub async fn run(self, cancel: CancellationToken) {
        let mut reported: HashSet<&'static str> = HashSet::new();
        let mut was_ok = false;
        let mut neuron = super::neuron_source::NeuronState::default();
        loop {
            let plan = (self.plan)();
            if let Some(url) = &plan.dcgm {
                let timeout = MAX_SCRAPE_TIME.min(plan.interval);
                let result = tokio::select! {
                    () = cancel.cancelled() => return,
                    r = scrape_dcgm(url, timeout) => r,
                };
                match result {
                    Ok(gpus) => {
                        let gpus = self.attribute(gpus, timeout, &mut reported).await;
                        self.telemetry
                            .add(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", "ok")], 1);
                        if !was_ok {
                            tracing::info!(url = %url, gpus = gpus.len(), "DCGM exporter answered: GPU metrics on");
                        }
                        was_ok = true;
                        self.gpus.send_replace(Arc::new(GpuScrape { gpus }));
                    }
                    Err(e) => {
                        self.failed(&e, url, &mut reported);
                        was_ok = false;
                    }
                }
            } else if !self.gpus.borrow().gpus.is_empty() {
                self.gpus.send_replace(Arc::new(GpuScrape::default()));
            }
            // AWS Neuron, in the same interval.
            if !self.scrape_neuron(&plan, &cancel, &mut neuron, &mut reported).await {
                return;
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(plan.interval) => {}
            }
        }
    }

    /// The readings with the kubelet's assignment of GPUs, when its socket answers; else as the
    /// exporter labelled them.
    async fn attribute(
        &self,
        gpus: Vec<GpuReading>,
        timeout: Duration,
        reported: &mut HashSet<&'static str>,
    ) -> Vec<GpuReading> {
        let Some(socket) = &self.pod_resources else { return gpus };
        match podresources::gpu_owners(socket, timeout).await {
            Ok(owners) => {
                self.telemetry.add(
                    Name::AcceleratorScrapes,
                    &[("exporter", "pod_resources"), ("result", "ok")],
                    1,
                );
                podresources::attribute(gpus, &owners)
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
                if reported.insert(key) {
                    tracing::warn!(
                        %error,
                        "kubelet pod-resources API not read: GPUs are attributed to pods by the DCGM exporter's own \
                         labels; retrying every interval (said once per kind of failure)"
                    );
                } else {
                    tracing::debug!(%error, "kubelet pod-resources API still not read");
                }
                gpus
            }
        }
    }

    fn failed(&self, e: &ScrapeError, url: &url::Url, reported: &mut HashSet<&'static str>) {
        let kind = e.kind();
        self.telemetry
            .add(Name::AcceleratorScrapes, &[("exporter", "dcgm"), ("result", kind)], 1);
        self.gpus.send_replace(Arc::new(GpuScrape::default()));
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
