//! AWS Neuron monitor's `/metrics` (Prometheus text) → one [`NeuronScrape`]: per-NeuronCore and
//! per-Neuron-device readings and the node's execution figures.
//!
//! `neuron-monitor` (with `neuron-monitor-prometheus.py`, as the Container Insights add-on runs
//! it) writes, on every node with Neuron devices, `neuron_hardware_info{neuron_device_count,
//! neuroncore_per_device_count}` and, while a Neuron runtime runs, per-core gauges
//! (`neuroncore_utilization_ratio`, `neuroncore_memory_usage_*`, label `neuroncore`), per-device
//! counters (`hardware_ecc_events_total`, labels `neuron_device_index`, `event_type`) and node
//! figures (`execution_errors_total{error_type}`, `execution_latency_seconds{percentile}`,
//! `neuron_runtime_memory_used_bytes{memory_location}`), each with `runtime_tag` and the
//! instance's labels.
//!
//! What is kept, and how, is what upstream makes of the same text (the facts are upstream's,
//! the code is not):
//! - the families: `internal/neuron/neuron_monitor_scraper_config.go` and `metric_name.go` in
//!   awscontainerinsightreceiver (amazon-contributing/opentelemetry-collector-contrib) and the
//!   agent's `metricstransform` renames (`translator/tocwconfig/sampleConfig/
//!   emf_and_kubernetes_with_gpu_config.yaml` in aws/amazon-cloudwatch-agent);
//! - a core's device is `core / neuroncore_per_device_count`
//!   (`getNeuronDeviceIndexFromCoreAttribute`, `internal/neuron/pod_attribute_decorator.go`);
//! - the latency is the `p50` series, the runtime memory the `neuron_device` one, the error and
//!   ECC totals the sums over the known `error_type`s and `event_type`s, the core utilization the
//!   largest value a core reports (`plugins/processors/gpuattributes/internal/
//!   awsneuron_metric_modifier.go`);
//! - a family the exporter does not write while `neuron_hardware_info` is there is zero, for every
//!   core of the node (`internal/neuron/neuron_empty_metric_decorator.go`): an idle node still
//!   sends its series.

use std::collections::BTreeMap;

use prometheus_parse::{Scrape, Value};

use super::dcgm::Assignment;

/// The five `neuroncore_memory_usage_*` parts, in this order in [`CoreReading::memory`]; their
/// sum is `neuroncore_memory_usage_total` (`awsneuron_memory_metric_aggregator.go`).
pub const MEMORY_PARTS: [&str; 5] = [
    "neuroncore_memory_usage_constants",
    "neuroncore_memory_usage_model_code",
    "neuroncore_memory_usage_model_shared_scratchpad",
    "neuroncore_memory_usage_runtime_memory",
    "neuroncore_memory_usage_tensors",
];

const UTILIZATION: &str = "neuroncore_utilization_ratio";
const ECC: &str = "hardware_ecc_events_total";
const ERRORS: &str = "execution_errors_total";
const LATENCY: &str = "execution_latency_seconds";
const RUNTIME_MEMORY: &str = "neuron_runtime_memory_used_bytes";
/// The prometheus receiver upstream strips `_info`; the exporter writes it.
const HARDWARE: [&str; 2] = ["neuron_hardware_info", "neuron_hardware"];

/// The `error_type`s summed into `node_neuron_execution_errors_total`
/// (`uniquesDatapointsToAggregatedMetricMappings` in `awsneuron_metric_modifier.go`).
const ERROR_TYPES: [&str; 6] = ["generic", "numerical", "transient", "model", "runtime", "hardware"];
/// The `event_type`s summed into `*_neurondevice_hw_ecc_events_total`.
const ECC_TYPES: [&str; 4] = [
    "mem_ecc_corrected",
    "mem_ecc_uncorrected",
    "sram_ecc_corrected",
    "sram_ecc_uncorrected",
];

/// The node's Neuron topology (`neuron_hardware_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hardware {
    pub device_count: u32,
    pub cores_per_device: u32,
}

/// One `NeuronCore`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CoreReading {
    /// The core's index on the node (the `neuroncore` label).
    pub core: u32,
    /// Its device's index; known with the topology.
    pub device: Option<u32>,
    /// `neuroncore_utilization_ratio`, 0..=1 (the largest of the runtimes using the core).
    pub utilization_ratio: Option<f64>,
    /// The [`MEMORY_PARTS`], bytes (summed over runtimes and memory locations).
    pub memory: [Option<f64>; 5],
    /// The container holding the core, from the kubelet.
    pub holder: Option<Assignment>,
}

impl CoreReading {
    /// `neuroncore_memory_usage_total`: the parts' sum, when one is known.
    pub fn memory_total(&self) -> Option<f64> {
        self.memory.iter().flatten().copied().reduce(|a, b| a + b)
    }
}

/// One Neuron device.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DeviceReading {
    /// The `neuron_device_index` label.
    pub device: u32,
    /// The ECC event counters of the known kinds, summed (a counter: the metrics take its
    /// increase).
    pub ecc_events: f64,
    /// The container holding the device, from the kubelet.
    pub holder: Option<Assignment>,
}

/// The node-wide figures.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct NodeValues {
    /// `execution_errors_total` summed over the known error types (a counter).
    pub execution_errors: Option<f64>,
    /// `execution_latency_seconds{percentile="p50"}` (the largest of the runtimes).
    pub execution_latency_p50: Option<f64>,
    /// `neuron_runtime_memory_used_bytes{memory_location="neuron_device"}`, summed over runtimes.
    pub runtime_memory_device_bytes: Option<f64>,
}

/// One scrape of neuron-monitor.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NeuronScrape {
    /// Grows with each successful scrape (0: none yet), so that the counters' increases are
    /// taken once per scrape, not once per tick.
    pub seq: u64,
    pub hardware: Option<Hardware>,
    /// By core index.
    pub cores: Vec<CoreReading>,
    /// By device index.
    pub devices: Vec<DeviceReading>,
    pub node: NodeValues,
}

impl NeuronScrape {
    /// Whether there is anything to send.
    pub fn is_empty(&self) -> bool {
        self.cores.is_empty() && self.devices.is_empty() && self.node == NodeValues::default()
    }
}

/// Why an exposition could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("neuron-monitor's response is not Prometheus text")]
    Text(#[source] std::io::Error),
    #[error("the response has no neuron-monitor series (no neuron_hardware_info): is the URL neuron-monitor's?")]
    NotNeuronMonitor,
}

/// The metric family a sample, `# HELP` or `# TYPE` line is about.
fn family(line: &str) -> &str {
    let rest = line
        .strip_prefix("# HELP ")
        .or_else(|| line.strip_prefix("# TYPE "))
        .unwrap_or(line);
    let end = rest.find(|c: char| c == '{' || c.is_whitespace()).unwrap_or(rest.len());
    &rest[..end]
}

fn wanted(name: &str) -> bool {
    name == UTILIZATION
        || MEMORY_PARTS.contains(&name)
        || name == ECC
        || name == ERRORS
        || name == LATENCY
        || name == RUNTIME_MEMORY
        || HARDWARE.contains(&name)
}

fn index(s: &prometheus_parse::Sample, label: &str) -> Option<u32> {
    s.labels.get(label)?.trim().parse().ok()
}

fn add(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.unwrap_or(0.0) + v);
}

fn max(slot: &mut Option<f64>, v: f64) {
    *slot = Some(slot.map_or(v, |o| o.max(v)));
}

/// The readings of one exposition. Samples without the label that places them (`neuroncore`,
/// `neuron_device_index`), or whose value is not a finite number, are skipped; text with no
/// neuron-monitor family at all is refused (a wrong URL, not an idle node).
pub fn parse(text: &str) -> Result<NeuronScrape, ParseError> {
    // Only the Neuron families go to the parser: the exporter adds `system_*` and Python ones.
    let lines = text.lines().filter(|l| wanted(family(l))).map(|l| Ok(l.to_string()));
    let scrape = Scrape::parse(lines).map_err(ParseError::Text)?;
    let mut hardware = None;
    let mut cores: BTreeMap<u32, CoreReading> = BTreeMap::new();
    let mut devices: BTreeMap<u32, DeviceReading> = BTreeMap::new();
    let mut node = NodeValues::default();
    // Families seen, for the zeros of an idle node: utilization, the five memory parts, errors,
    // latency, runtime memory.
    let mut seen = [false; 9];
    let mut any = false;
    for s in &scrape.samples {
        let (Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v)) = s.value else {
            continue;
        };
        if HARDWARE.contains(&s.metric.as_str()) {
            any = true;
            let (Some(device_count), Some(cores_per_device)) =
                (index(s, "neuron_device_count"), index(s, "neuroncore_per_device_count"))
            else {
                continue;
            };
            if cores_per_device > 0 {
                hardware = Some(Hardware {
                    device_count,
                    cores_per_device,
                });
            }
            continue;
        }
        any = true;
        if !v.is_finite() {
            continue;
        }
        let name = s.metric.as_str();
        let label = |k: &str| s.labels.get(k).map(str::trim);
        if name == UTILIZATION || MEMORY_PARTS.contains(&name) {
            let Some(core) = index(s, "neuroncore") else { continue };
            let c = cores.entry(core).or_insert_with(|| CoreReading {
                core,
                ..CoreReading::default()
            });
            if name == UTILIZATION {
                seen[0] = true;
                // Upstream's `max(…, 0)`: a negative ratio is no utilization.
                max(&mut c.utilization_ratio, v.max(0.0));
            } else if let Some(i) = MEMORY_PARTS.iter().position(|p| *p == name) {
                seen[1 + i] = true;
                add(&mut c.memory[i], v);
            }
        } else if name == ECC {
            let Some(device) = index(s, "neuron_device_index") else {
                continue;
            };
            if !label("event_type").is_some_and(|t| ECC_TYPES.contains(&t)) {
                continue;
            }
            devices
                .entry(device)
                .or_insert_with(|| DeviceReading {
                    device,
                    ..DeviceReading::default()
                })
                .ecc_events += v;
        } else if name == ERRORS {
            seen[6] = true;
            if label("error_type").is_some_and(|t| ERROR_TYPES.contains(&t)) {
                add(&mut node.execution_errors, v);
            }
        } else if name == LATENCY {
            seen[7] = true;
            if label("percentile") == Some("p50") {
                max(&mut node.execution_latency_p50, v);
            }
        } else if name == RUNTIME_MEMORY {
            seen[8] = true;
            if label("memory_location") == Some("neuron_device") {
                add(&mut node.runtime_memory_device_bytes, v);
            }
        }
    }
    if !any {
        return Err(ParseError::NotNeuronMonitor);
    }
    if let Some(hw) = hardware {
        fill_idle(hw, &seen, &mut cores, &mut node);
        for c in cores.values_mut() {
            c.device = Some(c.core / hw.cores_per_device);
        }
    }
    Ok(NeuronScrape {
        seq: 0,
        hardware,
        cores: cores.into_values().collect(),
        devices: devices.into_values().collect(),
        node,
    })
}

/// A family the exporter did not write at all is zero (for every core of the node, for the core
/// families): neuron-monitor writes them only while a runtime runs. Bounded by the topology a
/// real node has (16 devices of 8 cores on trn2.48xlarge), not by what the text claims.
fn fill_idle(hw: Hardware, seen: &[bool; 9], cores: &mut BTreeMap<u32, CoreReading>, node: &mut NodeValues) {
    const MAX_CORES: u32 = 1024;
    let total = hw.device_count.saturating_mul(hw.cores_per_device).min(MAX_CORES);
    if !seen[..6].iter().all(|s| *s) {
        for core in 0..total {
            let c = cores.entry(core).or_insert_with(|| CoreReading {
                core,
                ..CoreReading::default()
            });
            if !seen[0] {
                c.utilization_ratio.get_or_insert(0.0);
            }
            for (i, part) in c.memory.iter_mut().enumerate() {
                if !seen[1 + i] {
                    part.get_or_insert(0.0);
                }
            }
        }
    }
    if !seen[6] {
        node.execution_errors.get_or_insert(0.0);
    }
    if !seen[7] {
        node.execution_latency_p50.get_or_insert(0.0);
    }
    if !seen[8] {
        node.runtime_memory_device_bytes.get_or_insert(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// neuron-monitor's exporter on a trn1 node with one runtime on cores 0 and 1 (the format of
    /// the receiver's `neuron_monitor_scraper_test.go`).
    const TEXT: &str = r#"# HELP neuron_hardware_info Neuron Hardware Information
# TYPE neuron_hardware_info gauge
neuron_hardware_info{availability_zone="us-east-1c",instance_id="i-0",instance_type="trn1.32xlarge",neuron_device_count="2",neuroncore_per_device_count="2",region="us-east-1",subnet_id="subnet-0"} 1.0
# TYPE neuroncore_utilization_ratio gauge
neuroncore_utilization_ratio{instance_id="i-0",neuroncore="0",runtime_tag="367"} 0.25
neuroncore_utilization_ratio{instance_id="i-0",neuroncore="0",runtime_tag="368"} 0.5
neuroncore_utilization_ratio{instance_id="i-0",neuroncore="3",runtime_tag="367"} NaN
# TYPE neuroncore_memory_usage_tensors gauge
neuroncore_memory_usage_tensors{memory_location="None",neuroncore="0",runtime_tag="367"} 1024.0
neuroncore_memory_usage_tensors{memory_location="None",neuroncore="0",runtime_tag="368"} 1024.0
neuroncore_memory_usage_tensors{memory_location="None",runtime_tag="368"} 7.0
# TYPE execution_errors_total counter
execution_errors_total{error_type="generic",runtime_tag="367"} 2.0
execution_errors_total{error_type="numerical",runtime_tag="367"} 3.0
execution_errors_created{error_type="generic",runtime_tag="367"} 1.7083389404380567e+09
# TYPE execution_latency_seconds gauge
execution_latency_seconds{percentile="p50",runtime_tag="367"} 0.002
execution_latency_seconds{percentile="p99",runtime_tag="367"} 0.009
hardware_ecc_events_total{event_type="sram_ecc_uncorrected",neuron_device_index="1"} 864.0
hardware_ecc_events_total{event_type="mem_ecc_corrected",neuron_device_index="1"} 6.0
hardware_ecc_events_total{event_type="mem_ecc_corrected"} 6.0
# TYPE system_memory_total_bytes gauge
system_memory_total_bytes{instance_id="i-0"} 5.32523487232e+11
"#;

    #[test]
    fn cores_devices_and_node_figures_as_upstream_reduces_them() {
        let s = parse(TEXT).unwrap();
        assert_eq!(
            s.hardware,
            Some(Hardware {
                device_count: 2,
                cores_per_device: 2
            })
        );
        // Four cores: the topology's, the families not written (model code, …) at zero.
        assert_eq!(s.cores.len(), 4);
        let c0 = &s.cores[0];
        assert_eq!((c0.device, c0.utilization_ratio), (Some(0), Some(0.5)), "the largest");
        assert_eq!(c0.memory[4], Some(2048.0), "summed over runtimes");
        assert_eq!(c0.memory[0], Some(0.0), "not written: zero");
        assert_eq!(c0.memory_total(), Some(2048.0));
        let c3 = &s.cores[3];
        assert_eq!((c3.device, c3.utilization_ratio), (Some(1), None), "NaN skipped");
        assert_eq!(s.devices.len(), 1);
        assert_eq!((s.devices[0].device, s.devices[0].ecc_events), (1, 870.0));
        assert_eq!(s.node.execution_errors, Some(5.0));
        assert_eq!(s.node.execution_latency_p50, Some(0.002));
        assert_eq!(s.node.runtime_memory_device_bytes, Some(0.0), "idle: zero");
    }

    /// Lines of the exporter's families, for the fuzz test to damage.
    const SAMPLES: &[&str] = &[
        "neuron_hardware_info{neuron_device_count=\"16\",neuroncore_per_device_count=\"8\"} 1.0",
        "neuron_hardware_info{neuron_device_count=\"4294967295\",neuroncore_per_device_count=\"4294967295\"} 1",
        "neuroncore_utilization_ratio{neuroncore=\"4294967295\",runtime_tag=\"1\"} 0.5",
        "neuroncore_memory_usage_tensors{memory_location=\"None\",neuroncore=\"3\"} 1e308",
        "hardware_ecc_events_total{event_type=\"mem_ecc_corrected\",neuron_device_index=\"7\"} 864.0",
        "execution_errors_total{error_type=\"generic\"} -1",
        "execution_latency_seconds{percentile=\"p50\"} +Inf",
        "# TYPE neuron_runtime_memory_used_bytes gauge",
        "neuron_runtime_memory_used_bytes{memory_location=\"neuron_device\"} 9.0e+06",
    ];

    #[test]
    fn damaged_exporter_text_never_panics_and_stays_bounded() {
        use crate::host::proptests::{fuzz, inputs, lines};
        fuzz("neuron-monitor", inputs(SAMPLES), |text| {
            if let Ok(s) = parse(&text) {
                // Cores: one per line, and the idle zeros of a topology (at most 1024).
                proptest::prop_assert!(s.cores.len() <= lines(&text) + 1024);
                proptest::prop_assert!(s.devices.len() <= lines(&text));
            }
            Ok(())
        });
    }

    #[test]
    fn an_idle_node_has_zeros_and_other_text_is_refused() {
        let idle = "neuron_hardware_info{neuron_device_count=\"1\",neuroncore_per_device_count=\"2\"} 1\n";
        let s = parse(idle).unwrap();
        assert_eq!(s.cores.len(), 2);
        assert!(
            s.cores
                .iter()
                .all(|c| c.utilization_ratio == Some(0.0) && c.memory_total() == Some(0.0))
        );
        assert_eq!(s.node.execution_errors, Some(0.0));
        assert!(matches!(
            parse("<html>not found</html>"),
            Err(ParseError::NotNeuronMonitor)
        ));
        assert!(matches!(parse("go_goroutines 12\n"), Err(ParseError::NotNeuronMonitor)));
        // A topology that cannot be used places nothing and makes no zeros.
        let odd = "neuron_hardware_info{neuron_device_count=\"x\",neuroncore_per_device_count=\"0\"} 1\n";
        let s = parse(odd).unwrap();
        assert_eq!((s.hardware, s.is_empty()), (None, true));
    }
}
