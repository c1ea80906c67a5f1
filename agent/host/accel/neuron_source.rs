//! AWS Neuron in the accelerator source: once an interval, beside the DCGM scrape, neuron-monitor
//! is scraped, its cores and devices given their holders by the kubelet's pod-resources API (the
//! same `List` answer as the GPUs and EFA devices), and the result published for the metrics
//! tick.
//!
//! neuron-monitor knows nothing of pods; the holders are the Neuron device plugin's allocations,
//! as upstream finds them (`PodAttributesDecoratorConsumer` in awscontainerinsightreceiver
//! `internal/neuron/pod_attribute_decorator.go`): a core by its index under
//! `aws.amazon.com/neuroncore`, else by its device; a device by its index under
//! `aws.amazon.com/neurondevice` or `aws.amazon.com/neuron` (the older name, which the device
//! plugin still advertises).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::telemetry::Name;

use super::dcgm::Assignment;
use super::neuron::{self, NeuronScrape};
use super::podresources::DeviceOwners;
use super::scrape::{self, ScrapeError};
use super::source::AcceleratorSource;

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
    /// One scrape of neuron-monitor; `None` after a failure (said once per kind, counted as
    /// `exporter="neuron_monitor"`).
    pub(super) async fn scrape_neuron(
        &self,
        url: &url::Url,
        timeout: Duration,
        state: &mut NeuronState,
        reported: &mut HashSet<&'static str>,
    ) -> Option<NeuronScrape> {
        match scrape_neuron_monitor(url, timeout).await {
            Ok(scrape) => {
                self.count("ok");
                if !state.was_ok {
                    tracing::info!(
                        url = %url,
                        cores = scrape.cores.len(),
                        devices = scrape.devices.len(),
                        "neuron-monitor answered: AWS Neuron metrics on"
                    );
                }
                state.was_ok = true;
                Some(scrape)
            }
            Err(e) => {
                state.was_ok = false;
                self.neuron_failed(&e, url, reported);
                None
            }
        }
    }

    /// Publishes `scrape` with its holders (numbered), or an empty scrape after a failure or when
    /// no scrape is wanted (once: an empty view stays as it is).
    pub(super) fn publish_neuron(
        &self,
        scrape: Option<NeuronScrape>,
        owners: Option<&DeviceOwners>,
        state: &mut NeuronState,
    ) {
        match scrape {
            Some(mut s) => {
                if let Some(o) = owners {
                    attribute(&mut s, &o.neuron_cores, &o.neuron_devices);
                }
                state.seq += 1;
                s.seq = state.seq;
                self.neurons.send_replace(Arc::new(s));
            }
            None => {
                if self.neurons.borrow().seq != 0 {
                    self.neurons.send_replace(Arc::new(NeuronScrape::default()));
                }
            }
        }
    }

    fn count(&self, result: &'static str) {
        self.telemetry.add(
            Name::AcceleratorScrapes,
            &[("exporter", "neuron_monitor"), ("result", result)],
            1,
        );
    }

    fn neuron_failed(&self, e: &ScrapeError, url: &url::Url, reported: &mut HashSet<&'static str>) {
        let kind = e.kind();
        self.count(kind);
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
}

/// Index → holders, for one kind of Neuron resource.
type Holders = HashMap<String, Vec<Assignment>>;

/// The first container the kubelet names for index `id`.
fn holder(owners: &Holders, id: u32) -> Option<Assignment> {
    owners.get(&id.to_string()).and_then(|h| h.first().cloned())
}

/// Gives each core and device of `scrape` its holder: cores by core index, else by their
/// device's; devices by device index.
pub(super) fn attribute(scrape: &mut NeuronScrape, cores: &Holders, devices: &Holders) {
    if cores.is_empty() && devices.is_empty() {
        return;
    }
    for c in &mut scrape.cores {
        c.holder = holder(cores, c.core).or_else(|| c.device.and_then(|d| holder(devices, d)));
    }
    for d in &mut scrape.devices {
        d.holder = holder(devices, d.device);
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
    fn cores_by_core_id_else_by_device_and_devices_by_device_id() {
        let cores = Holders::from([("0".into(), vec![a("by-core")])]);
        let devices = Holders::from([("1".into(), vec![a("by-device")])]);
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
        attribute(&mut s, &cores, &devices);
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
