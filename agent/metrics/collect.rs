//! One collection cycle: sample → compute → encode.

use std::time::Duration;

use serde_json::json;

use crate::config::{Config, MetricsDestination};
use crate::host::Clock;
use crate::host::procfs::NodeCapacity;

use super::compute::{NodeAttributes, RateKey, node_record};
use super::encode::datum::{self, Datum};
use super::encode::emf::{self, EmfEvent, EmfOptions};
use super::rate::{RateCalculator, expiry_for};
use super::record::{Record, RecordType};
use super::sample::Sampler;

/// What one tick produced.
#[derive(Debug, Default)]
pub struct Cycle {
    pub records: Vec<Record>,
    pub datums: Vec<Datum>,
    pub events: Vec<EmfEvent>,
}

/// The parts of the configuration a cycle depends on; rebuilt on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub attrs: NodeAttributes,
    pub interval: Duration,
    pub enhanced: bool,
    pub produce: Produce,
}

/// What a cycle produces for the configured destination (`spec/METRICS.md` OUT-1…OUT-6).
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
        // OUT-6: extraction disabled means no metrics at all; validation already refuses it
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
            produce,
        }
    }
}

/// `Sources` of each record type as upstream writes them (§12.3; parity of log content).
fn sources(kind: RecordType) -> serde_json::Value {
    match kind {
        RecordType::Node => json!(["cadvisor", "/proc", "pod", "calculated"]),
        RecordType::NodeFS | RecordType::NodeNet | RecordType::PodNet => json!(["cadvisor", "calculated"]),
        RecordType::NodeDiskIO => json!(["cadvisor"]),
        RecordType::Pod | RecordType::Container => json!(["cadvisor", "pod", "calculated"]),
        RecordType::Cluster | RecordType::ClusterNamespace | RecordType::ClusterService => json!(["apiserver"]),
    }
}

/// Holds the rate state across ticks.
#[derive(Debug)]
pub struct Collector {
    sampler: Sampler,
    capacity: NodeCapacity,
    settings: Settings,
    rates: RateCalculator<RateKey>,
}

impl Collector {
    pub fn new(sampler: Sampler, capacity: NodeCapacity, settings: Settings) -> Self {
        let rates = RateCalculator::new(expiry_for(settings.interval));
        Collector {
            sampler,
            capacity,
            settings,
            rates,
        }
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
        let (node, _usage) = node_record(&sample, self.capacity, &self.settings.attrs, &mut self.rates);
        self.rates.evict_stale(sample.at);
        let records = vec![node];
        self.encode(records)
    }

    fn encode(&self, mut records: Vec<Record>) -> Cycle {
        let s = &self.settings;
        let mut datums = Vec::new();
        let mut events = Vec::new();
        if s.produce.datums() {
            datums.reserve(records.len() * 8);
            for r in &records {
                datum::encode(r, s.enhanced, &mut datums);
            }
        }
        if let Some(with_directive) = s.produce.events() {
            events.reserve(records.len());
            let opts = EmfOptions {
                with_directive,
                enhanced: s.enhanced,
            };
            for r in &mut records {
                r.json_attributes.push(("Sources", sources(r.kind)));
                if !r.json_attributes.iter().any(|(k, _)| *k == "kubernetes") {
                    r.json_attributes
                        .push(("kubernetes", json!({ "host": s.attrs.node_name })));
                }
                emf::encode(r, opts, &mut events);
            }
        }
        Cycle {
            records,
            datums,
            events,
        }
    }
}
