//! The Node record: root-cgroup CPU and memory, over the capacity read from the host's `/proc`.

use crate::host::procfs::NodeCapacity;

use super::super::rate::RateCalculator;
use super::super::record::{Record, RecordType};
use super::super::sample::NodeSample;
use super::cpumem::{self, Usage};
use super::{RateKey, scope};

/// Node-level attributes that become dimensions and event attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeAttributes {
    pub cluster_name: String,
    pub node_name: String,
    /// From IMDS; absent in a local run, so the `ClusterName, InstanceId, NodeName` dimension set
    /// is skipped.
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
}

impl NodeAttributes {
    /// `ClusterName`, `NodeName` and, when known, `InstanceId` and `InstanceType`.
    pub fn apply(&self, r: &mut Record) {
        r.set_attribute("ClusterName", self.cluster_name.as_str());
        r.set_attribute("NodeName", self.node_name.as_str());
        if let Some(id) = &self.instance_id {
            r.set_attribute("InstanceId", id.as_str());
        }
        if let Some(t) = &self.instance_type {
            r.set_attribute("InstanceType", t.as_str());
        }
    }
}

/// Builds the node record's CPU and memory part; the caller adds network, pod counts and
/// requests. Returns the usage that gates the reserved-capacity fields.
pub fn node_record(
    sample: &NodeSample,
    capacity: NodeCapacity,
    attrs: &NodeAttributes,
    rates: &mut RateCalculator<RateKey>,
) -> (Record, Usage) {
    let mut r = Record::new(RecordType::Node, sample.wall_ms);
    attrs.apply(&mut r);
    let mut tick = cpumem::Tick {
        capacity,
        rates,
        at: sample.at,
    };
    let usage = cpumem::add(
        &mut r,
        &cpumem::NODE,
        scope(&["node"]),
        sample.cpu,
        sample.memory,
        &mut tick,
    );
    r.set_field("node_cpu_limit", Some(f64::from(capacity.cpus) * 1000.0));
    r.set_field("node_memory_limit", Some(capacity.memory_bytes as f64));
    (r, usage)
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
            interfaces: Vec::new(),
            filesystems: Vec::new(),
            io: None,
            device_names: std::collections::HashMap::new(),
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
            ..Default::default()
        };
        let mut rates = RateCalculator::new(Duration::from_mins(5));
        let t0 = Instant::now();
        let (first, usage) = node_record(&sample(t0, 0, 2 << 30, 1 << 30), cap, &attrs, &mut rates);
        assert_eq!(usage.cpu_millicores, None, "no rate on the first tick");
        assert_eq!(first.field("node_cpu_utilization"), None);
        assert_eq!(first.field("node_cpu_limit"), Some(4000.0));
        assert_eq!(first.field("node_memory_working_set"), Some(f64::from(1u32 << 30)));
        assert_eq!(first.field("node_memory_utilization"), Some(12.5));
        // 2 CPU-seconds over 2 s = 1 core = 1000 millicores = 25 % of 4 cores.
        let later = sample(t0 + Duration::from_secs(2), 2_000_000_000, 100, 200);
        let (second, _) = node_record(&later, cap, &attrs, &mut rates);
        assert_eq!(second.field("node_cpu_usage_total"), Some(1000.0));
        assert_eq!(second.field("node_cpu_utilization"), Some(25.0));
        assert_eq!(second.field("node_memory_working_set"), Some(0.0), "floored at zero");
    }
}
