//! The leader's cluster-level records: Cluster, `ClusterNamespace`, `ClusterService` and the
//! workload records (`ClusterDeployment`, `ClusterDaemonSet`, `ClusterStatefulSet`,
//! `ClusterReplicaSet`), from a [`ClusterState`].
//!
//! Only the leader calls this; in file mode that is the agent whose file is a cluster dump. The
//! records carry the leader's `ClusterName` and `NodeName` and, as upstream's, no instance
//! attributes, and the wall-clock time of the Node record of the same tick, so that every record
//! of a tick shares one timestamp.

use serde_json::{Map, Value, json};

use crate::kube::{ClaimPhase, ClusterState, HyperPodHealth, WorkloadKind};

use super::super::record::{Record, RecordType};

/// An empty leader record of `kind` with the `ClusterName`, `NodeName` and time of `node`, this
/// tick's Node record.
pub fn leader_record(kind: RecordType, node: &Record) -> Record {
    let mut r = Record::new(kind, node.timestamp_ms);
    for name in ["ClusterName", "NodeName"] {
        if let Some((_, value)) = node.attributes.iter().find(|(k, _)| *k == name) {
            r.set_attribute(name, value.clone());
        }
    }
    r
}

/// Cluster, then one `ClusterNamespace` per namespace with ≥ 1 running pod (by name), then one
/// `ClusterService` per Service with ≥ 1 ready pod endpoint (by namespace, then name). `node` is
/// this tick's Node record: its `ClusterName`, `NodeName` and timestamp are copied. With
/// `kubernetes_object` (modes that write performance events), `ClusterNamespace` and
/// `ClusterService` get their `kubernetes` object; Cluster has none.
///
/// With `enhanced`, the storage and `HyperPod` views too: `persistent_volume_count` on the
/// Cluster record, `namespace_ingress_count` on each `ClusterNamespace` (and a namespace with
/// Ingresses but no running pod gets one), one `ClusterPersistentVolumeClaim` per claim, and one
/// `HyperPodNode` per `HyperPod` node.
pub fn cluster_records(cluster: &ClusterState, node: &Record, kubernetes_object: bool, enhanced: bool) -> Vec<Record> {
    let mut out = Vec::with_capacity(1 + cluster.namespace_running_pods.len() + cluster.service_ready_pods.len());
    let leader = |kind: RecordType| leader_record(kind, node);

    let mut c = leader(RecordType::Cluster);
    c.set_field("cluster_node_count", Some(cluster.node_count() as f64));
    c.set_field("cluster_failed_node_count", Some(cluster.failed_node_count() as f64));
    // Declared only with enhanced observability; a performance-event field in standard mode.
    c.set_field("cluster_number_of_running_pods", Some(cluster.running_pods() as f64));
    if enhanced {
        c.set_field("persistent_volume_count", Some(cluster.persistent_volumes as f64));
    }
    out.push(c);

    let mut namespaces: Vec<(&str, u64)> = cluster
        .namespace_running_pods
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(ns, n)| (ns.as_str(), *n))
        .collect();
    if enhanced {
        for ns in cluster.namespace_ingresses.keys() {
            if cluster.namespace_running_pods.get(ns).is_none_or(|n| *n == 0) {
                namespaces.push((ns.as_str(), 0));
            }
        }
        namespaces.sort_unstable();
    }
    for (namespace, running) in namespaces {
        let mut r = leader(RecordType::ClusterNamespace);
        r.set_attribute("Namespace", namespace);
        r.set_field("namespace_number_of_running_pods", Some(running as f64));
        if enhanced {
            let ingresses = cluster.namespace_ingresses.get(namespace).copied().unwrap_or(0);
            r.set_field("namespace_ingress_count", Some(ingresses as f64));
        }
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

    // Workloads: `PodName` is the workload's name and the fields have no type prefix, so that
    // upstream's substring selectors (`replicas_desired`) match all four types.
    for w in &cluster.workloads {
        let kind = match w.kind {
            WorkloadKind::Deployment => RecordType::ClusterDeployment,
            WorkloadKind::DaemonSet => RecordType::ClusterDaemonSet,
            WorkloadKind::StatefulSet => RecordType::ClusterStatefulSet,
            WorkloadKind::ReplicaSet => RecordType::ClusterReplicaSet,
        };
        let mut r = leader(kind);
        r.set_attribute("PodName", w.name.as_str());
        r.set_attribute("Namespace", w.namespace.as_str());
        let f = |n: Option<u64>| n.map(|n| n as f64);
        r.set_field("replicas_desired", f(w.desired));
        r.set_field("replicas_ready", f(w.ready));
        r.set_field("status_replicas_available", f(w.available));
        if matches!(w.kind, WorkloadKind::Deployment | WorkloadKind::DaemonSet) {
            r.set_field("status_replicas_unavailable", f(w.unavailable));
        }
        out.push(r);
    }
    if enhanced {
        storage_and_hyperpod_records(cluster, &leader, kubernetes_object, &mut out);
    }
    out
}

/// One `ClusterPersistentVolumeClaim` per claim (`persistent_volume_claim_count` 1 and the
/// phase's `status_*` 1, the others 0, so that the `Namespace` and `ClusterName` sets sum to
/// counts), and one `HyperPodNode` per `HyperPod` node, whose `NodeName` is that node and whose
/// `InstanceId` is its name without the `hyperpod-` prefix, as upstream's
/// `getHyperPodResiliencyMetrics` (the receiver's `internal/k8sapiserver/k8sapiserver.go`).
fn storage_and_hyperpod_records(
    cluster: &ClusterState,
    leader: &dyn Fn(RecordType) -> Record,
    kubernetes_object: bool,
    out: &mut Vec<Record>,
) {
    for claim in &cluster.claims {
        let mut r = leader(RecordType::ClusterPersistentVolumeClaim);
        r.set_attribute("Namespace", claim.namespace.as_str());
        r.set_attribute("PersistentVolumeClaimName", claim.name.as_str());
        let is = |p: ClaimPhase| Some(if claim.phase == p { 1.0 } else { 0.0 });
        r.set_field("persistent_volume_claim_count", Some(1.0));
        r.set_field("persistent_volume_claim_status_bound", is(ClaimPhase::Bound));
        r.set_field("persistent_volume_claim_status_lost", is(ClaimPhase::Lost));
        r.set_field("persistent_volume_claim_status_pending", is(ClaimPhase::Pending));
        if kubernetes_object {
            r.json_attributes.push((
                "kubernetes",
                json!({ "namespace_name": claim.namespace, "persistent_volume_claim_name": claim.name }),
            ));
        }
        out.push(r);
    }
    for n in &cluster.nodes {
        let Some(health) = n.hyperpod_health else { continue };
        let mut r = leader(RecordType::HyperPodNode);
        r.attributes.retain(|(k, _)| *k != "NodeName");
        r.set_attribute("NodeName", n.name.as_str());
        r.set_attribute("InstanceId", n.name.strip_prefix("hyperpod-").unwrap_or(&n.name));
        for h in HyperPodHealth::ALL {
            r.set_field(h.field(), Some(if h == health { 1.0 } else { 0.0 }));
        }
        out.push(r);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::kube::{ConditionStatus, NodeCondition, NodeState, ServiceKey, WorkloadKind, WorkloadState};

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
            workloads: Vec::new(),
            pending_pods: Vec::new(),
            ..ClusterState::default()
        }
    }

    #[test]
    fn records_copy_the_leader_and_skip_zero_counts() {
        let records = cluster_records(&state(), &node_record(), false, false);
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

    /// With enhanced observability: the PV count on Cluster, Ingresses per namespace (a namespace
    /// with Ingresses and no running pod gets a record), one record per claim with its phase,
    /// and one `HyperPodNode` per `HyperPod` node. Without it, none of these.
    #[test]
    fn storage_and_hyperpod_records_only_with_enhanced() {
        use crate::kube::{ClaimPhase, ClaimState, HyperPodHealth};
        let mut cluster = state();
        cluster.persistent_volumes = 3;
        cluster.namespace_ingresses = BTreeMap::from([("ns".into(), 2), ("edge".into(), 1)]);
        let claim = |name: &str, phase| ClaimState {
            namespace: "ns".into(),
            name: name.into(),
            phase,
        };
        cluster.claims = vec![claim("a", ClaimPhase::Bound), claim("b", ClaimPhase::Other)];
        cluster.nodes[1].name = "hyperpod-i-0123456789abcdef0".into();
        cluster.nodes[1].hyperpod_health = Some(HyperPodHealth::UnschedulablePendingReplacement);

        let plain = cluster_records(&cluster, &node_record(), false, false);
        assert_eq!(plain.len(), 3);
        assert_eq!(plain[0].field("persistent_volume_count"), None);
        assert_eq!(plain[1].field("namespace_ingress_count"), None);

        let records = cluster_records(&cluster, &node_record(), true, true);
        assert_eq!(records[0].field("persistent_volume_count"), Some(3.0));
        let namespaces: Vec<(Option<&str>, Option<f64>, Option<f64>)> = records
            .iter()
            .filter(|r| r.kind == RecordType::ClusterNamespace)
            .map(|r| {
                (
                    r.attribute("Namespace"),
                    r.field("namespace_number_of_running_pods"),
                    r.field("namespace_ingress_count"),
                )
            })
            .collect();
        assert_eq!(
            namespaces,
            [(Some("edge"), Some(0.0), Some(1.0)), (Some("ns"), Some(3.0), Some(2.0))]
        );
        let claims: Vec<&Record> = records
            .iter()
            .filter(|r| r.kind == RecordType::ClusterPersistentVolumeClaim)
            .collect();
        assert_eq!(claims.len(), 2);
        let fields = |r: &Record| {
            [
                "persistent_volume_claim_count",
                "persistent_volume_claim_status_bound",
                "persistent_volume_claim_status_lost",
                "persistent_volume_claim_status_pending",
            ]
            .map(|f| r.field(f))
        };
        assert_eq!(claims[0].attribute("PersistentVolumeClaimName"), Some("a"));
        assert_eq!(claims[0].attribute("Namespace"), Some("ns"));
        assert_eq!(fields(claims[0]), [Some(1.0), Some(1.0), Some(0.0), Some(0.0)]);
        // A claim in no known phase still counts, in no status.
        assert_eq!(fields(claims[1]), [Some(1.0), Some(0.0), Some(0.0), Some(0.0)]);
        assert!(claims[0].json_attributes.iter().any(|(k, _)| *k == "kubernetes"));

        let hyperpod: Vec<&Record> = records.iter().filter(|r| r.kind == RecordType::HyperPodNode).collect();
        assert_eq!(hyperpod.len(), 1, "only the HyperPod node");
        let h = hyperpod[0];
        assert_eq!(h.attribute("NodeName"), Some("hyperpod-i-0123456789abcdef0"));
        assert_eq!(h.attribute("InstanceId"), Some("i-0123456789abcdef0"));
        assert_eq!(h.attribute("ClusterName"), Some("demo"));
        assert_eq!(
            h.field("hyperpod_node_health_status_unschedulable_pending_replacement"),
            Some(1.0)
        );
        for other in [
            "hyperpod_node_health_status_schedulable",
            "hyperpod_node_health_status_unschedulable",
            "hyperpod_node_health_status_unschedulable_pending_reboot",
        ] {
            assert_eq!(h.field(other), Some(0.0), "{other}");
        }
    }

    #[test]
    fn workload_records_carry_the_workload_name_and_unprefixed_fields() {
        let w = |kind, name: &str, unavailable| WorkloadState {
            kind,
            namespace: "shop".into(),
            name: name.into(),
            desired: Some(3),
            ready: Some(2),
            available: Some(2),
            unavailable,
        };
        let mut cluster = state();
        cluster.workloads = vec![
            w(WorkloadKind::Deployment, "web", Some(1)),
            w(WorkloadKind::DaemonSet, "agent", Some(1)),
            w(WorkloadKind::StatefulSet, "db", None),
            w(WorkloadKind::ReplicaSet, "bare", None),
        ];
        let records = cluster_records(&cluster, &node_record(), false, false);
        let workloads: Vec<&Record> = records.iter().skip(3).collect();
        let kinds: Vec<RecordType> = workloads.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                RecordType::ClusterDeployment,
                RecordType::ClusterDaemonSet,
                RecordType::ClusterStatefulSet,
                RecordType::ClusterReplicaSet
            ]
        );
        for r in &workloads {
            assert_eq!(r.attribute("Namespace"), Some("shop"));
            assert_eq!(r.attribute("NodeName"), Some("leader-node"));
            assert_eq!(r.field("replicas_desired"), Some(3.0));
            assert_eq!(r.field("replicas_ready"), Some(2.0));
            assert_eq!(r.field("status_replicas_available"), Some(2.0));
        }
        assert_eq!(workloads[0].attribute("PodName"), Some("web"));
        assert_eq!(workloads[0].field("status_replicas_unavailable"), Some(1.0));
        assert_eq!(workloads[1].field("status_replicas_unavailable"), Some(1.0));
        // StatefulSets and ReplicaSets have no unavailable count.
        assert_eq!(workloads[2].field("status_replicas_unavailable"), None);
        assert_eq!(workloads[3].field("status_replicas_unavailable"), None);
    }

    #[test]
    fn kubernetes_object_on_namespace_and_service_only() {
        let records = cluster_records(&state(), &node_record(), true, false);
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
        let records = cluster_records(&ClusterState::default(), &node_record(), true, false);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].field("cluster_node_count"), Some(0.0));
    }
}
