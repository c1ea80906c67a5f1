//! NVIDIA DCGM exporter's `/metrics` (Prometheus text) → one [`GpuReading`] per GPU and pod.
//!
//! dcgm-exporter writes one series per GPU and DCGM field, labelled `gpu` (index), `UUID`,
//! `device` (`nvidia0`), `modelName`, `Hostname`, and — with `--kubernetes`, which the
//! Container Insights add-on and the GPU operator enable — `namespace`, `pod` and `container`
//! of the pod the kubelet gave the GPU to (dcgm-exporter asks the kubelet's pod-resources socket
//! itself). A GPU shared by several pods (time slicing) has one series per pod.
//!
//! The fields kept are those upstream renames into Container Insights metrics (the CloudWatch
//! agent's `metricstransform` rules for `DCGM_FI_*`, see its
//! `translator/tocwconfig/sampleConfig/emf_and_kubernetes_with_gpu_config.yaml`).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_parse::{Scrape, Value};

/// The DCGM fields read, and where each goes.
const FIELDS: [(&str, Field); 7] = [
    ("DCGM_FI_DEV_GPU_UTIL", Field::Utilization),
    ("DCGM_FI_DEV_FB_USED_PERCENT", Field::MemoryUsedFraction),
    ("DCGM_FI_DEV_FB_USED", Field::MemoryUsedMib),
    ("DCGM_FI_DEV_FB_TOTAL", Field::MemoryTotalMib),
    ("DCGM_FI_DEV_POWER_USAGE", Field::PowerWatts),
    ("DCGM_FI_DEV_GPU_TEMP", Field::TemperatureCelsius),
    ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", Field::TensorActive),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Utilization,
    MemoryUsedFraction,
    MemoryUsedMib,
    MemoryTotalMib,
    PowerWatts,
    TemperatureCelsius,
    TensorActive,
}

/// The values of one GPU (as DCGM reports them: units converted later, in `metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GpuValues {
    /// `DCGM_FI_DEV_GPU_UTIL`, percent.
    pub utilization_percent: Option<f64>,
    /// `DCGM_FI_DEV_FB_USED_PERCENT`, a fraction 0..=1 despite its name.
    pub memory_used_fraction: Option<f64>,
    /// `DCGM_FI_DEV_FB_USED`, MiB.
    pub memory_used_mib: Option<f64>,
    /// `DCGM_FI_DEV_FB_TOTAL`, MiB.
    pub memory_total_mib: Option<f64>,
    /// `DCGM_FI_DEV_POWER_USAGE`, watts.
    pub power_watts: Option<f64>,
    /// `DCGM_FI_DEV_GPU_TEMP`, degrees Celsius.
    pub temperature_celsius: Option<f64>,
    /// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`, as the exporter writes it.
    pub tensor_active: Option<f64>,
}

impl GpuValues {
    fn set(&mut self, field: Field, v: f64) {
        let slot = match field {
            Field::Utilization => &mut self.utilization_percent,
            Field::MemoryUsedFraction => &mut self.memory_used_fraction,
            Field::MemoryUsedMib => &mut self.memory_used_mib,
            Field::MemoryTotalMib => &mut self.memory_total_mib,
            Field::PowerWatts => &mut self.power_watts,
            Field::TemperatureCelsius => &mut self.temperature_celsius,
            Field::TensorActive => &mut self.tensor_active,
        };
        *slot = Some(v);
    }
}

/// The pod (and container) the exporter says a GPU is assigned to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Assignment {
    pub namespace: String,
    /// The pod's own name (not a workload name).
    pub pod: String,
    pub container: Option<String>,
}

/// One GPU, and the pod it is assigned to when the exporter says so.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuReading {
    /// The `device` label (`nvidia0`): upstream's `GpuDevice` dimension. `None` when the
    /// exporter does not write it.
    pub device: Option<Arc<str>>,
    /// The `UUID` label.
    pub uuid: Option<Arc<str>>,
    pub assignment: Option<Assignment>,
    pub values: GpuValues,
}

/// Why an exposition could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the DCGM exporter's response is not Prometheus text: {0}")]
pub struct ParseError(#[source] std::io::Error);

fn label(s: &prometheus_parse::Sample, name: &str) -> Option<String> {
    s.labels
        .get(name)
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The GPUs of one exposition, in a stable order (by GPU index, then pod). Series of other families,
/// and samples that are not finite numbers (DCGM's "blank" values), are skipped.
pub fn parse(text: &str) -> Result<Vec<GpuReading>, ParseError> {
    // Only the DCGM families go to the parser: the exporter may add its own (Go runtime) ones.
    let lines = text
        .lines()
        .filter(|l| l.starts_with("DCGM_") || l.starts_with("# HELP DCGM_") || l.starts_with("# TYPE DCGM_"))
        .map(|l| Ok(l.to_string()));
    let scrape = Scrape::parse(lines).map_err(ParseError)?;
    // Keyed by the GPU's index (for the order), its identity (UUID, else index, else device)
    // and the assignment.
    let mut gpus: BTreeMap<(u32, String, Option<Assignment>), GpuReading> = BTreeMap::new();
    for s in &scrape.samples {
        let Some(&(_, field)) = FIELDS.iter().find(|(name, _)| *name == s.metric) else {
            continue;
        };
        let (Value::Gauge(v) | Value::Counter(v) | Value::Untyped(v)) = s.value else {
            continue;
        };
        if !v.is_finite() {
            continue;
        }
        let device = label(s, "device");
        let uuid = label(s, "UUID");
        let index = label(s, "gpu");
        let order = index.as_deref().and_then(|i| i.parse().ok()).unwrap_or(u32::MAX);
        let Some(id) = uuid.clone().or(index).or_else(|| device.clone()) else {
            continue;
        };
        let assignment = match (label(s, "namespace"), label(s, "pod")) {
            (Some(namespace), Some(pod)) => Some(Assignment {
                namespace,
                pod,
                container: label(s, "container"),
            }),
            _ => None,
        };
        gpus.entry((order, id, assignment.clone()))
            .or_insert_with(|| GpuReading {
                device: device.map(Arc::from),
                uuid: uuid.map(Arc::from),
                assignment,
                values: GpuValues::default(),
            })
            .values
            .set(field, v);
    }
    Ok(gpus.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dcgm-exporter 3.x output with `--kubernetes` (labels as its README shows them): GPU 0
    /// assigned to a pod, GPU 1 idle.
    const TEXT: &str = r#"# HELP DCGM_FI_DEV_GPU_TEMP GPU temperature (in C).
# TYPE DCGM_FI_DEV_GPU_TEMP gauge
DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="NVIDIA A10G",Hostname="ip-10-0-0-1",DCGM_FI_DRIVER_VERSION="535.161.08",container="main",namespace="ml",pod="trainer-0"} 65
DCGM_FI_DEV_GPU_TEMP{gpu="1",UUID="GPU-bbbb",device="nvidia1",modelName="NVIDIA A10G",Hostname="ip-10-0-0-1",DCGM_FI_DRIVER_VERSION="535.161.08"} 31
# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="NVIDIA A10G",Hostname="ip-10-0-0-1",container="main",namespace="ml",pod="trainer-0"} 97
DCGM_FI_DEV_GPU_UTIL{gpu="1",UUID="GPU-bbbb",device="nvidia1",modelName="NVIDIA A10G",Hostname="ip-10-0-0-1",container="",namespace="",pod=""} 0
# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-aaaa",device="nvidia0",modelName="NVIDIA A10G",Hostname="ip-10-0-0-1",container="main",namespace="ml",pod="trainer-0"} 20480
# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 12
"#;

    #[test]
    fn one_reading_per_gpu_with_the_exporters_assignment() {
        let gpus = parse(TEXT).unwrap();
        assert_eq!(gpus.len(), 2);
        let g0 = &gpus[0];
        assert_eq!(g0.device.as_deref(), Some("nvidia0"));
        assert_eq!(
            g0.assignment,
            Some(Assignment {
                namespace: "ml".into(),
                pod: "trainer-0".into(),
                container: Some("main".into()),
            })
        );
        assert_eq!(g0.values.temperature_celsius, Some(65.0));
        assert_eq!(g0.values.utilization_percent, Some(97.0));
        assert_eq!(g0.values.memory_used_mib, Some(20480.0));
        assert_eq!(g0.values.power_watts, None);
        // Empty pod labels are no assignment.
        let g1 = &gpus[1];
        assert_eq!((g1.device.as_deref(), &g1.assignment), (Some("nvidia1"), &None));
        assert_eq!(g1.values.temperature_celsius, Some(31.0));
        assert_eq!(g1.values.utilization_percent, Some(0.0));
    }

    #[test]
    fn blank_values_and_other_families_are_skipped() {
        let text = "DCGM_FI_DEV_POWER_USAGE{gpu=\"0\",device=\"nvidia0\"} NaN\nDCGM_FI_DEV_XID_ERRORS{gpu=\"0\"} 3\n";
        let gpus = parse(text).unwrap();
        assert!(gpus.is_empty(), "{gpus:?}");
        assert!(parse("").unwrap().is_empty());
    }
}
