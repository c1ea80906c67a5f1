//! The static declaration table: metric name → unit and dimension sets (`spec/METRICS.md`
//! §3.2–§3.4, DIM-3). This is the *effective* result of upstream's unanchored selectors for
//! the standard set; the enhanced [E] declarations come with the metrics issue.

use super::Unit;
use super::record::RecordType;

/// Dimension sets as written: names sorted alphabetically (DIM-2).
pub const SET_C: &[&str] = &["ClusterName"];
pub const SET_N: &[&str] = &["ClusterName", "InstanceId", "NodeName"];
pub const SET_NS: &[&str] = &["ClusterName", "Namespace"];
pub const SET_P: &[&str] = &["ClusterName", "Namespace", "PodName"];
pub const SET_S: &[&str] = &["ClusterName", "Namespace", "Service"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Declaration {
    pub metric: &'static str,
    pub record: RecordType,
    pub unit: Unit,
    pub sets: &'static [&'static [&'static str]],
}

const fn d(
    metric: &'static str,
    record: RecordType,
    unit: Unit,
    sets: &'static [&'static [&'static str]],
) -> Declaration {
    Declaration {
        metric,
        record,
        unit,
        sets,
    }
}

use RecordType::{Cluster, ClusterNamespace, ClusterService, Node, NodeFS, Pod};
use Unit::{Bytes, BytesPerSecond, Count, None as NoUnit, Percent};

/// The 25 standard metrics, §3.3, in the table's order.
pub const STANDARD: [Declaration; 25] = [
    d("node_cpu_utilization", Node, Percent, &[SET_N, SET_C]),
    d("node_memory_utilization", Node, Percent, &[SET_N, SET_C]),
    d("node_network_total_bytes", Node, BytesPerSecond, &[SET_N, SET_C]),
    d("node_cpu_reserved_capacity", Node, Percent, &[SET_N, SET_C]),
    d("node_memory_reserved_capacity", Node, Percent, &[SET_N, SET_C]),
    d("node_number_of_running_pods", Node, Count, &[SET_N, SET_C]),
    d("node_number_of_running_containers", Node, Count, &[SET_N, SET_C]),
    // CPU millicores carry no unit: CloudWatch has no millicore unit (trap 9).
    d("node_cpu_usage_total", Node, NoUnit, &[SET_C]),
    d("node_cpu_limit", Node, NoUnit, &[SET_C]),
    d("node_memory_working_set", Node, Bytes, &[SET_C]),
    d("node_memory_limit", Node, Bytes, &[SET_C]),
    d("node_filesystem_utilization", NodeFS, Percent, &[SET_N, SET_C]),
    d("pod_cpu_utilization", Pod, Percent, &[SET_P, SET_C, SET_S, SET_NS]),
    d("pod_memory_utilization", Pod, Percent, &[SET_P, SET_C, SET_S, SET_NS]),
    d(
        "pod_network_rx_bytes",
        Pod,
        BytesPerSecond,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_network_tx_bytes",
        Pod,
        BytesPerSecond,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_cpu_utilization_over_pod_limit",
        Pod,
        Percent,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d(
        "pod_memory_utilization_over_pod_limit",
        Pod,
        Percent,
        &[SET_P, SET_C, SET_S, SET_NS],
    ),
    d("pod_cpu_reserved_capacity", Pod, Percent, &[SET_P, SET_C]),
    d("pod_memory_reserved_capacity", Pod, Percent, &[SET_P, SET_C]),
    d("pod_number_of_container_restarts", Pod, Count, &[SET_P]),
    d("service_number_of_running_pods", ClusterService, Count, &[SET_S, SET_C]),
    d(
        "namespace_number_of_running_pods",
        ClusterNamespace,
        Count,
        &[SET_NS, SET_C],
    ),
    d("cluster_node_count", Cluster, Count, &[SET_C]),
    d("cluster_failed_node_count", Cluster, Count, &[SET_C]),
];

/// The declaration of `metric` for records of type `record`, if it is a declared metric.
pub fn lookup(record: RecordType, metric: &str) -> Option<&'static Declaration> {
    STANDARD.iter().find(|d| d.record == record && d.metric == metric)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_sorted_and_names_unique() {
        for decl in &STANDARD {
            for set in decl.sets {
                assert!(
                    set.windows(2).all(|w| w[0] < w[1]),
                    "{} has an unsorted set",
                    decl.metric
                );
            }
        }
        let mut names: Vec<_> = STANDARD.iter().map(|d| d.metric).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 25);
    }
}
