//! EFA records [E], with `accelerated_compute_metrics`: `NodeEFA` per Elastic Fabric Adapter
//! device, and `PodEFA` / `ContainerEFA` per container the kubelet gave the device to, as
//! upstream's `TypeNodeEFA`, `TypePodEFA`, `TypeContainerEFA`
//! (`internal/aws/containerinsight/const.go` and `internal/efa/efaSysfs.go` in
//! awscontainerinsightreceiver). Each carries the device (`EfaDevice`) and, when IMDS named it,
//! its network interface (`NetworkInterfaceId`, a dimension of one set per level in the
//! CloudWatch agent's `getEFAMetricDeclarations`).
//!
//! The values are per second over the last interval. Upstream's receiver sends the counters'
//! increase since its previous collection under the same `Bytes/Second` and `Count/Second` units;
//! kinsight divides by the elapsed time so that the value is what its unit says.

use std::sync::Arc;

use crate::host::accel::efa::{COUNTERS, EfaReading};
use crate::kube::Snapshot;
use crate::metrics::record::{Record, RecordType};

use super::gpu::holder_records;
use super::pod::PodSettings;

/// The metric names of one level, in `host::accel::efa::COUNTER_FILES` order (the driver's
/// `rx_drops` is upstream's `rx_dropped`).
pub const CONTAINER: [&str; COUNTERS] = [
    "container_efa_rdma_read_bytes",
    "container_efa_rdma_write_bytes",
    "container_efa_rdma_write_recv_bytes",
    "container_efa_rx_bytes",
    "container_efa_rx_dropped",
    "container_efa_tx_bytes",
    "container_efa_retrans_bytes",
    "container_efa_retrans_pkts",
    "container_efa_retrans_timeout_events",
    "container_efa_impaired_remote_conn_events",
    "container_efa_unresponsive_remote_events",
];
pub const POD: [&str; COUNTERS] = [
    "pod_efa_rdma_read_bytes",
    "pod_efa_rdma_write_bytes",
    "pod_efa_rdma_write_recv_bytes",
    "pod_efa_rx_bytes",
    "pod_efa_rx_dropped",
    "pod_efa_tx_bytes",
    "pod_efa_retrans_bytes",
    "pod_efa_retrans_pkts",
    "pod_efa_retrans_timeout_events",
    "pod_efa_impaired_remote_conn_events",
    "pod_efa_unresponsive_remote_events",
];
pub const NODE: [&str; COUNTERS] = [
    "node_efa_rdma_read_bytes",
    "node_efa_rdma_write_bytes",
    "node_efa_rdma_write_recv_bytes",
    "node_efa_rx_bytes",
    "node_efa_rx_dropped",
    "node_efa_tx_bytes",
    "node_efa_retrans_bytes",
    "node_efa_retrans_pkts",
    "node_efa_retrans_timeout_events",
    "node_efa_impaired_remote_conn_events",
    "node_efa_unresponsive_remote_events",
];

fn set_rates(r: &mut Record, names: &[&'static str; COUNTERS], e: &EfaReading) {
    for (name, rate) in names.iter().zip(e.rates) {
        r.set_field(name, rate);
    }
}

fn with_device(mut r: Record, e: &EfaReading) -> Record {
    r.set_attribute("EfaDevice", Arc::clone(&e.device));
    if let Some(eni) = &e.interface_id {
        r.set_attribute("NetworkInterfaceId", Arc::clone(eni));
    }
    r
}

/// The records of one read of the EFA devices. A device's first read (no rates yet) gives none.
pub fn records(devices: &[EfaReading], node: &Record, pods: Option<&Snapshot>, s: PodSettings) -> Vec<Record> {
    let mut out = Vec::with_capacity(devices.len() * 3);
    for e in devices.iter().filter(|e| e.rates.iter().any(Option::is_some)) {
        let mut n = Record::new(RecordType::NodeEFA, node.timestamp_ms);
        n.attributes.extend(node.attributes.iter().cloned());
        set_rates(&mut n, &NODE, e);
        out.push(with_device(n, e));
        for a in &e.holders {
            let (mut pod, container) = holder_records(a, (RecordType::PodEFA, RecordType::ContainerEFA), node, pods, s);
            set_rates(&mut pod, &POD, e);
            out.push(with_device(pod, e));
            if let Some(mut c) = container {
                set_rates(&mut c, &CONTAINER, e);
                out.push(with_device(c, e));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::accel::dcgm::Assignment;

    #[test]
    fn a_device_is_a_node_record_and_one_pod_and_container_record_per_holder() {
        use RecordType::{ContainerEFA, NodeEFA, PodEFA};
        let mut node = Record::new(RecordType::Node, 7);
        node.set_attribute("ClusterName", "c");
        node.set_attribute("NodeName", "n");
        let mut rates = [None; COUNTERS];
        rates[3] = Some(1000.0);
        rates[4] = Some(2.0);
        let holder = |c: Option<&str>| Assignment {
            namespace: "ml".into(),
            pod: "trainer-0".into(),
            container: c.map(Into::into),
        };
        let e = EfaReading {
            device: Arc::from("rdmap16s27"),
            interface_id: Some(Arc::from("eni-0abc")),
            rates,
            holders: vec![holder(Some("main")), holder(None)],
        };
        let first = EfaReading {
            device: Arc::from("rdmap32s27"),
            interface_id: None,
            rates: [None; COUNTERS],
            holders: vec![],
        };
        let s = PodSettings {
            enhanced: true,
            prefer_full_pod_name: false,
            tag_service: true,
            kubernetes_object: false,
        };
        let out = records(&[e, first], &node, None, s);
        let kinds: Vec<RecordType> = out.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [NodeEFA, PodEFA, ContainerEFA, PodEFA],
            "no record for a first read"
        );
        assert_eq!(out[0].field("node_efa_rx_bytes"), Some(1000.0));
        assert_eq!(out[0].field("node_efa_rx_dropped"), Some(2.0));
        assert_eq!(out[0].field("node_efa_tx_bytes"), None);
        assert_eq!(out[0].attribute("NetworkInterfaceId"), Some("eni-0abc"));
        assert_eq!(out[1].attribute("FullPodName"), Some("trainer-0"));
        assert_eq!(out[2].attribute("ContainerName"), Some("main"));
        assert_eq!(out[2].field("container_efa_rx_bytes"), Some(1000.0));
        assert_eq!(out[2].attribute("EfaDevice"), Some("rdmap16s27"));
        assert_eq!(out[3].timestamp_ms, 7);
    }
}
