//! AWS Neuron in the accelerator source: once an interval, beside the DCGM scrape, neuron-monitor
//! is scraped, its cores and devices given their holders by the kubelet's pod-resources API, and
//! the result published for the metrics tick.
//!
//! neuron-monitor knows nothing of pods; the holders are the Neuron device plugin's allocations,
//! as upstream finds them (`PodAttributesDecoratorConsumer` in awscontainerinsightreceiver
//! `internal/neuron/pod_attribute_decorator.go`): a core by its index under
//! `aws.amazon.com/neuroncore`, else by its device; a device by its index under
//! `aws.amazon.com/neurondevice`, else under `aws.amazon.com/neuron` (the older name, which the
//! device plugin still advertises).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::telemetry::Name;

use super::dcgm::Assignment;
use super::neuron::{self, NeuronScrape};
use super::podresources::{self, DeviceOwners};
use super::scrape::{self, ScrapeError};
use super::source::{AcceleratorSource, ScrapePlan};

/// A scrape that takes longer is abandoned (neuron-monitor answers in milliseconds).
const MAX_SCRAPE_TIME: Duration = Duration::from_secs(10);

const CORE_RESOURCE: &str = "aws.amazon.com/neuroncore";
/// In the order upstream asks for them.
const DEVICE_RESOURCES: [&str; 2] = ["aws.amazon.com/neurondevice", "aws.amazon.com/neuron"];

/// The receiving side the metrics collector holds: the last neuron-monitor scrape (empty before
/// the first and after a failure).
pub type NeuronView = watch::Receiver<Arc<NeuronScrape>>;

/// A new, empty view and its sender.
pub fn neuron_channel() -> (watch::Sender<Arc<NeuronScrape>>, NeuronView) {
    watch::channel(Arc::new(NeuronScrape::default()))
}

/// What the source remembers of neuron-monitor between intervals.
#[derive(Debug, Default)]
pub(super) struct NeuronState {
    /// Successful scrapes so far (each published scrape carries its number).
    seq: u64,
    was_ok: bool,
}

/// One scrape of neuron-monitor at `url`.
pub async fn scrape_neuron_monitor(url: &url::Url, timeout: Duration) -> Result<NeuronScrape, ScrapeError> {
    let text = scrape::get(url, timeout).await?;
    Ok(neuron::parse(&text)?)
}

impl AcceleratorSource {
    /// Scrapes neuron-monitor when `plan` names it (else clears what was published). `false`
    /// when cancelled.
    pub(super) async fn scrape_neuron(
        &self,
        plan: &ScrapePlan,
        cancel: &CancellationToken,
        state: &mut NeuronState,
        reported: &mut HashSet<&'static str>,
    ) -> bool {
        let Some(url) = &plan.neuron else {
            if !self.neurons.borrow().is_empty() {
                self.neurons.send_replace(Arc::new(NeuronScrape::default()));
            }
            return true;
        };
        let timeout = MAX_SCRAPE_TIME.min(plan.interval);
        let result = tokio::select! {
            () = cancel.cancelled() => return false,
            r = scrape_neuron_monitor(url, timeout) => r,
        };
        match result {
            Ok(mut scrape) => {
                if let Some(socket) = &self.pod_resources {
                    let kubelet = tokio::select! {
                        () = cancel.cancelled() => return false,
                        r = podresources::device_owners(socket, timeout, &[CORE_RESOURCE, DEVICE_RESOURCES[0], DEVICE_RESOURCES[1]]) => r,
                    };
                    match kubelet {
                        Ok(owners) => {
                            self.count("pod_resources", "ok");
                            attribute(&mut scrape, &owners);
                        }
                        Err(e) => self.kubelet_failed(&e, reported),
                    }
                }
                self.count("neuron_monitor", "ok");
                if !state.was_ok {
                    tracing::info!(
                        url = %url,
                        cores = scrape.cores.len(),
                        devices = scrape.devices.len(),
                        "neuron-monitor answered: AWS Neuron metrics on"
                    );
                }
                state.was_ok = true;
                state.seq += 1;
                scrape.seq = state.seq;
                self.neurons.send_replace(Arc::new(scrape));
            }
            Err(e) => {
                state.was_ok = false;
                self.neuron_failed(&e, url, reported);
            }
        }
        true
    }

    fn count(&self, exporter: &'static str, result: &'static str) {
        self.telemetry.add(
            Name::AcceleratorScrapes,
            &[("exporter", exporter), ("result", result)],
            1,
        );
    }

    fn neuron_failed(&self, e: &ScrapeError, url: &url::Url, reported: &mut HashSet<&'static str>) {
        let kind = e.kind();
        self.count("neuron_monitor", kind);
        self.neurons.send_replace(Arc::new(NeuronScrape::default()));
        // Its own set of kinds: "neuron-monitor unreachable" is not "DCGM unreachable".
        let key = match kind {
            "unreachable" => "neuron_monitor_unreachable",
            "status" => "neuron_monitor_status",
            "timeout" => "neuron_monitor_timeout",
            _ => "neuron_monitor_invalid",
        };
        let error = crate::telemetry::chain(e);
        if reported.insert(key) {
            tracing::warn!(
                %error,
                url = %url,
                "neuron-monitor not scraped: no container_neuroncore_*/pod_neuroncore_*/node_neuron* metrics from it; \
                 retrying every interval (said once per kind of failure)"
            );
        } else {
            tracing::debug!(%error, "neuron-monitor still not scraped");
        }
    }

    fn kubelet_failed(&self, e: &podresources::PodResourcesError, reported: &mut HashSet<&'static str>) {
        let kind = e.kind();
        self.count("pod_resources", kind);
        let key = match kind {
            "unreachable" => "neuron_pod_resources_unreachable",
            "timeout" => "neuron_pod_resources_timeout",
            _ => "neuron_pod_resources_error",
        };
        let error = crate::telemetry::chain(e);
        if reported.insert(key) {
            tracing::warn!(
                %error,
                "kubelet pod-resources API not read: Neuron cores and devices are sent for the node only, \
                 not for the pods holding them; retrying every interval (said once per kind of failure)"
            );
        } else {
            tracing::debug!(%error, "kubelet pod-resources API still not read (Neuron)");
        }
    }
}

/// The first container the kubelet names for `id` under one of `resources`.
fn holder(owners: &DeviceOwners, resources: &[&str], id: u32) -> Option<Assignment> {
    let id = id.to_string();
    resources.iter().find_map(|r| {
        owners
            .get(&((*r).to_string(), id.clone()))
            .and_then(|h| h.first().cloned())
    })
}

/// Gives each core and device of `scrape` its holder.
pub(super) fn attribute(scrape: &mut NeuronScrape, owners: &DeviceOwners) {
    if owners.is_empty() {
        return;
    }
    for c in &mut scrape.cores {
        c.holder = holder(owners, &[CORE_RESOURCE], c.core)
            .or_else(|| c.device.and_then(|d| holder(owners, &DEVICE_RESOURCES, d)));
    }
    for d in &mut scrape.devices {
        d.holder = holder(owners, &DEVICE_RESOURCES, d.device);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::accel::neuron::{CoreReading, DeviceReading};

    fn a(pod: &str) -> Assignment {
        Assignment {
            namespace: "ml".into(),
            pod: pod.into(),
            container: Some("main".into()),
        }
    }

    #[test]
    fn cores_by_core_id_else_by_device_and_devices_by_either_resource_name() {
        let owners = DeviceOwners::from([
            (("aws.amazon.com/neuroncore".into(), "0".into()), vec![a("by-core")]),
            (("aws.amazon.com/neuron".into(), "1".into()), vec![a("by-device")]),
        ]);
        let core = |core, device| CoreReading {
            core,
            device: Some(device),
            ..CoreReading::default()
        };
        let mut s = NeuronScrape {
            cores: vec![core(0, 0), core(1, 0), core(2, 1)],
            devices: vec![
                DeviceReading {
                    device: 0,
                    ..DeviceReading::default()
                },
                DeviceReading {
                    device: 1,
                    ..DeviceReading::default()
                },
            ],
            ..NeuronScrape::default()
        };
        attribute(&mut s, &owners);
        let pods: Vec<Option<&str>> = s
            .cores
            .iter()
            .map(|c| c.holder.as_ref().map(|h| h.pod.as_str()))
            .collect();
        assert_eq!(pods, [Some("by-core"), None, Some("by-device")]);
        assert_eq!(s.devices[0].holder, None);
        assert_eq!(s.devices[1].holder.as_ref().map(|h| h.pod.as_str()), Some("by-device"));
    }
}
