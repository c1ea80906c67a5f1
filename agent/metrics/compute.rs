//! Samples → records: the node record of `spec/METRICS.md` §5.1.

use crate::host::procfs::NodeCapacity;

use super::rate::RateCalculator;
use super::record::{Record, RecordType};
use super::sample::NodeSample;

/// Which counter a rate belongs to. The metrics issue extends the key with the cgroup, the
/// interface or the device; an enum keeps the hot path free of string keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RateKey {
    NodeCpuTotal,
    NodeCpuUser,
    NodeCpuSystem,
    NodePgfault,
    NodePgmajfault,
}

/// Node-level attributes that become dimensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAttributes {
    pub cluster_name: String,
    pub node_name: String,
    /// From IMDS (metrics issue); absent in a local run, so the N dimension set is skipped.
    pub instance_id: Option<String>,
}

const NS_PER_S: f64 = 1e9;

/// Builds the node record from the current sample and the rate state.
pub fn node_record(
    sample: &NodeSample,
    capacity: NodeCapacity,
    attrs: &NodeAttributes,
    rates: &mut RateCalculator<RateKey>,
) -> Record {
    let mut r = Record::new(RecordType::Node, sample.wall_ms);
    r.set_attribute("ClusterName", attrs.cluster_name.as_str());
    r.set_attribute("NodeName", attrs.node_name.as_str());
    if let Some(id) = &attrs.instance_id {
        r.set_attribute("InstanceId", id.as_str());
    }

    let cpu_limit = f64::from(capacity.cpus) * 1000.0;
    // CPU seconds per second = cores; × 1000 = millicores (RATE-1).
    let millicores = |ns_per_s: f64| ns_per_s / NS_PER_S * 1000.0;
    let usage_total = sample
        .cpu
        .and_then(|c| rates.rate(RateKey::NodeCpuTotal, c.usage_ns, sample.at))
        .map(millicores);
    let user = sample
        .cpu
        .and_then(|c| c.user_ns)
        .and_then(|v| rates.rate(RateKey::NodeCpuUser, v, sample.at))
        .map(millicores);
    let system = sample
        .cpu
        .and_then(|c| c.system_ns)
        .and_then(|v| rates.rate(RateKey::NodeCpuSystem, v, sample.at))
        .map(millicores);
    r.set_field("node_cpu_usage_total", usage_total);
    r.set_field("node_cpu_usage_user", user);
    r.set_field("node_cpu_usage_system", system);
    r.set_field("node_cpu_limit", Some(cpu_limit));
    r.set_field("node_cpu_utilization", usage_total.map(|u| u / cpu_limit * 100.0));

    let mem_limit = capacity.memory_bytes as f64;
    if let Some(m) = sample.memory {
        // Working set = usage − inactive file, floored at 0 (trap 6).
        let working_set = m.usage.saturating_sub(m.inactive_file) as f64;
        r.set_field("node_memory_usage", Some(m.usage as f64));
        r.set_field("node_memory_cache", Some(m.cache as f64));
        r.set_field("node_memory_rss", Some(m.rss as f64));
        r.set_field("node_memory_swap", Some(m.swap as f64));
        r.set_field("node_memory_mapped_file", Some(m.mapped_file as f64));
        r.set_field("node_memory_max_usage", Some(m.max_usage as f64));
        r.set_field("node_memory_failcnt", Some(m.failcnt as f64));
        r.set_field("node_memory_working_set", Some(working_set));
        r.set_field(
            "node_memory_utilization",
            (mem_limit > 0.0).then(|| working_set / mem_limit * 100.0),
        );
        let pgfault = rates.rate(RateKey::NodePgfault, m.pgfault, sample.at);
        let pgmajfault = rates.rate(RateKey::NodePgmajfault, m.pgmajfault, sample.at);
        r.set_field("node_memory_pgfault", pgfault);
        r.set_field("node_memory_pgmajfault", pgmajfault);
        r.set_field("node_memory_hierarchical_pgfault", pgfault);
        r.set_field("node_memory_hierarchical_pgmajfault", pgmajfault);
    }
    r.set_field("node_memory_limit", Some(mem_limit));
    r
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::host::cgroup::{CpuStats, MemoryStats};

    fn sample(at: Instant, cpu_ns: u64, usage: u64, inactive: u64) -> NodeSample {
        NodeSample {
            at,
            wall_ms: 1_764_300_000_000,
            cpu: Some(CpuStats {
                usage_ns: cpu_ns,
                user_ns: None,
                system_ns: None,
            }),
            memory: Some(MemoryStats {
                usage,
                inactive_file: inactive,
                ..MemoryStats::default()
            }),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn utilization_over_node_capacity() {
        let cap = NodeCapacity {
            cpus: 4,
            memory_bytes: 8 << 30,
        };
        let attrs = NodeAttributes {
            cluster_name: "c".into(),
            node_name: "n".into(),
            instance_id: None,
        };
        let mut rates = RateCalculator::new(Duration::from_mins(5));
        let t0 = Instant::now();
        let first = node_record(&sample(t0, 0, 2 << 30, 1 << 30), cap, &attrs, &mut rates);
        assert_eq!(first.field("node_cpu_utilization"), None, "no rate on the first tick");
        assert_eq!(first.field("node_cpu_usage_total"), None);
        assert_eq!(first.field("node_cpu_limit"), Some(4000.0));
        assert_eq!(first.field("node_memory_working_set"), Some(f64::from(1u32 << 30)));
        assert_eq!(first.field("node_memory_utilization"), Some(12.5));
        // 2 CPU-seconds over 2 s = 1 core = 1000 millicores = 25 % of 4 cores.
        let second = node_record(
            &sample(t0 + Duration::from_secs(2), 2_000_000_000, 100, 200),
            cap,
            &attrs,
            &mut rates,
        );
        assert_eq!(second.field("node_cpu_usage_total"), Some(1000.0));
        assert_eq!(second.field("node_cpu_utilization"), Some(25.0));
        assert_eq!(second.field("node_memory_working_set"), Some(0.0), "floored at zero");
    }
}
