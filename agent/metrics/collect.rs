//! One collection cycle: sample → compute → encode.

use std::time::Duration;

use crate::host::Clock;
use crate::host::procfs::NodeCapacity;

use super::compute::{NodeAttributes, RateKey, node_record};
use super::encode::datum::{self, Datum};
use super::rate::{RateCalculator, expiry_for};
use super::record::Record;
use super::sample::Sampler;

/// What one tick produced.
#[derive(Debug, Default)]
pub struct Cycle {
    pub records: Vec<Record>,
    pub datums: Vec<Datum>,
}

/// Holds the rate state across ticks.
#[derive(Debug)]
pub struct Collector {
    sampler: Sampler,
    capacity: NodeCapacity,
    attrs: NodeAttributes,
    rates: RateCalculator<RateKey>,
}

impl Collector {
    pub fn new(sampler: Sampler, capacity: NodeCapacity, attrs: NodeAttributes, interval: Duration) -> Self {
        Collector {
            sampler,
            capacity,
            attrs,
            rates: RateCalculator::new(expiry_for(interval)),
        }
    }

    /// Applies a reloaded configuration's node attributes and interval.
    pub fn reconfigure(&mut self, attrs: NodeAttributes, interval: Duration) {
        self.attrs = attrs;
        self.rates.set_expiry(expiry_for(interval));
    }

    pub fn collect(&mut self, clock: &dyn Clock) -> Cycle {
        let sample = self.sampler.sample_node(clock);
        let node = node_record(&sample, self.capacity, &self.attrs, &mut self.rates);
        self.rates.evict_stale(sample.at);
        let records = vec![node];
        let mut datums = Vec::with_capacity(32);
        for r in &records {
            datum::encode(r, false, &mut datums);
        }
        Cycle { records, datums }
    }
}
