//! The CPU and memory fields shared by Node, Pod and Container records, as upstream's cAdvisor
//! extractors compute them (`internal/cadvisor/extractors/` in `awscontainerinsightreceiver`).

use tokio::time::Instant;

use crate::host::cgroup::{CpuStats, MemoryStats};
use crate::host::procfs::NodeCapacity;

use super::super::rate::RateCalculator;
use super::super::record::Record;
use super::{Field, RateKey};

/// The field names of one record type: `node_…`, `pod_…` or `container_…`.
#[derive(Debug)]
pub struct Names {
    pub cpu_usage_total: &'static str,
    pub cpu_usage_user: &'static str,
    pub cpu_usage_system: &'static str,
    pub cpu_utilization: &'static str,
    pub memory_usage: &'static str,
    pub memory_cache: &'static str,
    pub memory_rss: &'static str,
    pub memory_swap: &'static str,
    pub memory_mapped_file: &'static str,
    pub memory_max_usage: &'static str,
    pub memory_failcnt: &'static str,
    pub memory_working_set: &'static str,
    pub memory_utilization: &'static str,
    pub memory_pgfault: &'static str,
    pub memory_pgmajfault: &'static str,
    pub memory_hierarchical_pgfault: &'static str,
    pub memory_hierarchical_pgmajfault: &'static str,
    pub memory_failures_total: &'static str,
}

macro_rules! names {
    ($p:literal) => {
        Names {
            cpu_usage_total: concat!($p, "_cpu_usage_total"),
            cpu_usage_user: concat!($p, "_cpu_usage_user"),
            cpu_usage_system: concat!($p, "_cpu_usage_system"),
            cpu_utilization: concat!($p, "_cpu_utilization"),
            memory_usage: concat!($p, "_memory_usage"),
            memory_cache: concat!($p, "_memory_cache"),
            memory_rss: concat!($p, "_memory_rss"),
            memory_swap: concat!($p, "_memory_swap"),
            memory_mapped_file: concat!($p, "_memory_mapped_file"),
            memory_max_usage: concat!($p, "_memory_max_usage"),
            memory_failcnt: concat!($p, "_memory_failcnt"),
            memory_working_set: concat!($p, "_memory_working_set"),
            memory_utilization: concat!($p, "_memory_utilization"),
            memory_pgfault: concat!($p, "_memory_pgfault"),
            memory_pgmajfault: concat!($p, "_memory_pgmajfault"),
            memory_hierarchical_pgfault: concat!($p, "_memory_hierarchical_pgfault"),
            memory_hierarchical_pgmajfault: concat!($p, "_memory_hierarchical_pgmajfault"),
            memory_failures_total: concat!($p, "_memory_failures_total"),
        }
    };
}

pub const NODE: Names = names!("node");
pub const POD: Names = names!("pod");
pub const CONTAINER: Names = names!("container");

/// What later fields are gated on: the CPU rate and the working set of this tick (upstream adds
/// requests, limits and reserved capacity only when these exist).
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// Millicores; `None` on the first tick, after a reset, or when unreadable.
    pub cpu_millicores: Option<f64>,
    pub working_set_bytes: Option<f64>,
}

const NS_PER_S: f64 = 1e9;

fn millicores(ns_per_s: f64) -> f64 {
    ns_per_s / NS_PER_S * 1000.0
}

/// What every record of one tick is computed against.
#[derive(Debug)]
pub struct Tick<'a> {
    pub capacity: NodeCapacity,
    pub rates: &'a mut RateCalculator<RateKey>,
    pub at: Instant,
}

/// Adds the CPU and memory fields to `r` and returns the values that gate derived fields.
pub fn add(
    r: &mut Record,
    names: &Names,
    scope: u64,
    cpu: Option<CpuStats>,
    memory: Option<MemoryStats>,
    tick: &mut Tick<'_>,
) -> Usage {
    let (capacity, at) = (tick.capacity, tick.at);
    let rates = &mut *tick.rates;
    let mut rate = |field: Field, v: u64| rates.rate(RateKey { scope, field }, v, at);
    let cpu_limit = f64::from(capacity.cpus) * 1000.0;
    let total = cpu.and_then(|c| rate(Field::CpuTotal, c.usage_ns)).map(millicores);
    let user = cpu
        .and_then(|c| c.user_ns)
        .and_then(|v| rate(Field::CpuUser, v))
        .map(millicores);
    let system = cpu
        .and_then(|c| c.system_ns)
        .and_then(|v| rate(Field::CpuSystem, v))
        .map(millicores);
    r.set_field(names.cpu_usage_total, total);
    r.set_field(names.cpu_usage_user, user);
    r.set_field(names.cpu_usage_system, system);
    // Utilisation is over node capacity, never the pod's limit.
    r.set_field(names.cpu_utilization, total.map(|t| t / cpu_limit * 100.0));

    let mut working_set = None;
    if let Some(m) = memory {
        // Working set = usage − inactive file, floored at 0.
        let ws = m.usage.saturating_sub(m.inactive_file) as f64;
        working_set = Some(ws);
        r.set_field(names.memory_usage, Some(m.usage as f64));
        r.set_field(names.memory_cache, Some(m.cache as f64));
        r.set_field(names.memory_rss, Some(m.rss as f64));
        r.set_field(names.memory_swap, Some(m.swap as f64));
        r.set_field(names.memory_mapped_file, Some(m.mapped_file as f64));
        r.set_field(names.memory_max_usage, Some(m.max_usage as f64));
        r.set_field(names.memory_failcnt, Some(m.failcnt as f64));
        r.set_field(names.memory_working_set, Some(ws));
        let mem_total = capacity.memory_bytes as f64;
        r.set_field(
            names.memory_utilization,
            (mem_total > 0.0).then(|| ws / mem_total * 100.0),
        );
        let pgfault = rate(Field::Pgfault, m.pgfault);
        let pgmajfault = rate(Field::Pgmajfault, m.pgmajfault);
        // cAdvisor copies the same value to the container and the hierarchical field.
        r.set_field(names.memory_pgfault, pgfault);
        r.set_field(names.memory_pgmajfault, pgmajfault);
        r.set_field(names.memory_hierarchical_pgfault, pgfault);
        r.set_field(names.memory_hierarchical_pgmajfault, pgmajfault);
        r.set_field(names.memory_failures_total, pgfault.zip(pgmajfault).map(|(a, b)| a + b));
    }
    Usage {
        cpu_millicores: total,
        working_set_bytes: working_set,
    }
}
