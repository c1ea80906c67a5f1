//! The leader's cluster-level records: Cluster, `ClusterNamespace` and `ClusterService`, from a
//! [`ClusterState`].
//!
//! Only the leader calls this; in file mode that is the agent whose file is a cluster dump. The
//! records carry the leader's `ClusterName` and `NodeName` and, as upstream's, no instance
//! attributes, and the wall-clock time of the Node record of the same tick, so that every record
//! of a tick shares one timestamp.

use serde_json::{Map, Value, json};

use crate::kube::ClusterState;

use super::super::record::{Record, RecordType};

/// Cluster, then one `ClusterNamespace` per namespace with ≥ 1 running pod (by name), then one
/// `ClusterService` per Service with ≥ 1 ready pod endpoint (by namespace, then name). `node` is
/// this tick's Node record: its `ClusterName`, `NodeName` and timestamp are copied. With
/// `kubernetes_object` (modes that write performance events), `ClusterNamespace` and
/// `ClusterService` get their `kubernetes` object; Cluster has none.
pub fn cluster_records(cluster: &ClusterState, node: &Record, kubernetes_object: bool) -> Vec<Record> {
    let mut out = Vec::with_capacity(1 + cluster.namespace_running_pods.len() + cluster.service_ready_pods.len());
    let leader = |kind: RecordType| {
        let mut r = Record::new(kind, node.timestamp_ms);
        for name in ["ClusterName", "NodeName"] {
            if let Some((_, value)) = node.attributes.iter().find(|(k, _)| *k == name) {
                r.set_attribute(name, value.clone());
            }
        }
        r
    };

    let mut c = leader(RecordType::Cluster);
    c.set_field("cluster_node_count", Some(cluster.node_count() as f64));
    c.set_field("cluster_failed_node_count", Some(cluster.failed_node_count() as f64));
    // Declared only with enhanced observability; a performance-event field in standard mode.
    c.set_field("cluster_number_of_running_pods", Some(cluster.running_pods() as f64));
    out.push(c);

    for (namespace, &running) in cluster.namespace_running_pods.iter().filter(|(_, n)| **n > 0) {
        let mut r = leader(RecordType::ClusterNamespace);
        r.set_attribute("Namespace", namespace.as_str());
        r.set_field("namespace_number_of_running_pods", Some(running as f64));
        if kubernetes_object {
            r.json_attributes
                .push(("kubernetes", json!({ "namespace_name": namespace })));
        }
        out.push(r);
    }

    for (service, &ready) in cluster.service_ready_pods.iter().filter(|(_, n)| **n > 0) {
        let mut r = leader(RecordType::ClusterService);
        r.set_attribute("Service", service.name.as_str());
        r.set_attribute("Namespace", service.namespace.as_str());
        r.set_field("service_number_of_running_pods", Some(ready as f64));
        if kubernetes_object {
            let mut k = Map::new();
            k.insert("namespace_name".into(), json!(service.namespace));
            k.insert("service_name".into(), json!(service.name));
            r.json_attributes.push(("kubernetes", Value::Object(k)));
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kube::{ConditionStatus, NodeCondition, NodeState, ServiceKey};

    fn node_record() -> Record {
        let mut n = Record::new(RecordType::Node, 1_768_471_290_000);
        n.set_attribute("ClusterName", "demo");
        n.set_attribute("NodeName", "leader-node");
        n.set_attribute("InstanceId", "i-0abc123def4567890");
        n.set_attribute("InstanceType", "c5.xlarge");
        n
    }

    fn state() -> ClusterState {
        let cond = |kind: &str, status| NodeCondition {
            kind: kind.into(),
            status,
        };
        ClusterState {
            nodes: vec![
                NodeState {
                    name: "a".into(),
                    conditions: vec![cond("Ready", ConditionStatus::False)],
                    ..NodeState::default()
                },
                NodeState {
                    name: "b".into(),
                    conditions: vec![cond("DiskPressure", ConditionStatus::True)],
                    ..NodeState::default()
                },
            ],
            namespace_running_pods: BTreeMap::from([("ns".into(), 3), ("empty".into(), 0)]),
            service_ready_pods: BTreeMap::from([(
                ServiceKey {
                    namespace: "ns".into(),
                    name: "svc".into(),
                },
                2,
            )]),
        }
    }

    #[test]
    fn records_copy_the_leader_and_skip_zero_counts() {
        let records = cluster_records(&state(), &node_record(), false);
        let kinds: Vec<RecordType> = records.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordType::Cluster,
                RecordType::ClusterNamespace,
                RecordType::ClusterService
            ]
        );
        for r in &records {
            assert_eq!(r.timestamp_ms, 1_768_471_290_000);
            assert_eq!(r.attribute("ClusterName"), Some("demo"));
            assert_eq!(r.attribute("NodeName"), Some("leader-node"));
            assert_eq!(r.attribute("InstanceId"), None, "no instance attributes");
            assert!(r.json_attributes.is_empty());
        }
        let c = &records[0];
        assert_eq!(c.field("cluster_node_count"), Some(2.0));
        assert_eq!(c.field("cluster_failed_node_count"), Some(1.0));
        assert_eq!(c.field("cluster_number_of_running_pods"), Some(3.0));
        assert_eq!(records[1].attribute("Namespace"), Some("ns"));
        assert_eq!(records[1].field("namespace_number_of_running_pods"), Some(3.0));
        assert_eq!(
            (records[2].attribute("Service"), records[2].attribute("Namespace")),
            (Some("svc"), Some("ns"))
        );
        assert_eq!(records[2].field("service_number_of_running_pods"), Some(2.0));
    }

    #[test]
    fn kubernetes_object_on_namespace_and_service_only() {
        let records = cluster_records(&state(), &node_record(), true);
        let k = |i: usize| {
            records[i]
                .json_attributes
                .iter()
                .find(|(k, _)| *k == "kubernetes")
                .map(|(_, v)| v.clone())
        };
        assert_eq!(k(0), None);
        assert_eq!(k(1), Some(json!({"namespace_name": "ns"})));
        assert_eq!(k(2), Some(json!({"namespace_name": "ns", "service_name": "svc"})));
    }

    #[test]
    fn an_empty_cluster_still_has_its_cluster_record() {
        let records = cluster_records(&ClusterState::default(), &node_record(), true);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].field("cluster_node_count"), Some(0.0));
    }
}
