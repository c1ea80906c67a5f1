//! A record: one `Type` of Container Insights data for one object at one tick, with its
//! attributes (the dimension candidates) and numeric fields.

use std::sync::Arc;

/// The record types (only those kinsight emits so far; the metrics issue adds the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecordType {
    Node,
    NodeFS,
    NodeDiskIO,
    NodeNet,
    Pod,
    PodNet,
    Container,
    ContainerFS,
    Cluster,
    ClusterNamespace,
    ClusterService,
    ClusterDeployment,
    ClusterDaemonSet,
    ClusterStatefulSet,
    ClusterReplicaSet,
    /// The apiserver's own metrics (`/metrics`), scraped by the leader with enhanced
    /// observability.
    ControlPlane,
    /// One `PersistentVolumeClaim` (leader, enhanced).
    ClusterPersistentVolumeClaim,
    /// One `SageMaker` `HyperPod` node's health label (leader, enhanced).
    HyperPodNode,
    /// One EBS volume's NVMe statistics from the EBS CSI node plugin (enhanced).
    NodeEBS,
    /// One instance-store volume's NVMe statistics from its CSI node plugin (enhanced).
    NodeInstanceStore,
    /// One GPU as a container, a pod and the node see it (DCGM exporter readings), as upstream's
    /// `TypeContainerGPU`, `TypePodGPU`, `TypeNodeGPU` (`internal/aws/containerinsight/const.go`).
    ContainerGPU,
    PodGPU,
    NodeGPU,
    /// One EFA device as a container, a pod and the node see it (sysfs counters), as upstream's
    /// `TypeContainerEFA`, `TypePodEFA`, `TypeNodeEFA`.
    ContainerEFA,
    PodEFA,
    NodeEFA,
    // AWS Neuron: the `Type`s upstream's Neuron metric modifier writes (`duplicateMetricForType`
    // in the CloudWatch agent's `plugins/processors/gpuattributes/internal/
    // awsneuron_metric_modifier.go`: level + "AWSNeuron" + "Core" | "Device" | "").
    /// One `NeuronCore` as its holding container, its pod and the node see it.
    ContainerAWSNeuronCore,
    PodAWSNeuronCore,
    NodeAWSNeuronCore,
    /// One Neuron device (its ECC events) as its holding container, its pod and the node see it.
    ContainerAWSNeuronDevice,
    PodAWSNeuronDevice,
    NodeAWSNeuronDevice,
    /// The node's Neuron runtime figures (execution errors and latency, device memory).
    NodeAWSNeuron,
}

impl RecordType {
    /// The `Type` attribute as the performance events spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordType::Node => "Node",
            RecordType::NodeFS => "NodeFS",
            RecordType::NodeDiskIO => "NodeDiskIO",
            RecordType::NodeNet => "NodeNet",
            RecordType::Pod => "Pod",
            RecordType::PodNet => "PodNet",
            RecordType::Container => "Container",
            RecordType::ContainerFS => "ContainerFS",
            RecordType::Cluster => "Cluster",
            RecordType::ClusterNamespace => "ClusterNamespace",
            RecordType::ClusterService => "ClusterService",
            RecordType::ClusterDeployment => "ClusterDeployment",
            RecordType::ClusterDaemonSet => "ClusterDaemonSet",
            RecordType::ClusterStatefulSet => "ClusterStatefulSet",
            RecordType::ClusterReplicaSet => "ClusterReplicaSet",
            RecordType::ControlPlane => "ControlPlane",
            RecordType::ClusterPersistentVolumeClaim => "ClusterPersistentVolumeClaim",
            RecordType::HyperPodNode => "HyperPodNode",
            RecordType::NodeEBS => "NodeEBS",
            RecordType::NodeInstanceStore => "NodeInstanceStore",
            RecordType::ContainerGPU => "ContainerGPU",
            RecordType::PodGPU => "PodGPU",
            RecordType::NodeGPU => "NodeGPU",
            RecordType::ContainerEFA => "ContainerEFA",
            RecordType::PodEFA => "PodEFA",
            RecordType::NodeEFA => "NodeEFA",
            // AWS Neuron.
            RecordType::ContainerAWSNeuronCore => "ContainerAWSNeuronCore",
            RecordType::PodAWSNeuronCore => "PodAWSNeuronCore",
            RecordType::NodeAWSNeuronCore => "NodeAWSNeuronCore",
            RecordType::ContainerAWSNeuronDevice => "ContainerAWSNeuronDevice",
            RecordType::PodAWSNeuronDevice => "PodAWSNeuronDevice",
            RecordType::NodeAWSNeuronDevice => "NodeAWSNeuronDevice",
            RecordType::NodeAWSNeuron => "NodeAWSNeuron",
        }
    }

    /// The records only the elected leader sends, from the apiserver.
    pub fn is_leader(self) -> bool {
        matches!(
            self,
            RecordType::Cluster
                | RecordType::ClusterNamespace
                | RecordType::ClusterService
                | RecordType::ClusterDeployment
                | RecordType::ClusterDaemonSet
                | RecordType::ClusterStatefulSet
                | RecordType::ClusterReplicaSet
                | RecordType::ControlPlane
                | RecordType::ClusterPersistentVolumeClaim
                | RecordType::HyperPodNode
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: RecordType,
    /// Milliseconds since the epoch; all records of a tick share the tick's time.
    pub timestamp_ms: i64,
    /// Dimension candidates (`ClusterName`, `NodeName`, `InstanceId`, …). An absent or empty
    /// attribute removes every dimension set that needs it.
    /// Values are shared (`Arc<str>`): a pod's attributes are copied into each of its records
    /// and datums, and a clone is a reference count, not an allocation.
    pub attributes: Vec<(&'static str, Arc<str>)>,
    /// Attributes that are JSON values in performance events (`Sources`, `kubernetes`);
    /// built only when events are written (modes `emf` and `both`).
    pub json_attributes: Vec<(&'static str, serde_json::Value)>,
    /// Metric fields. An absent field (no rate yet) is simply not in the list.
    pub fields: Vec<(&'static str, f64)>,
    /// Fields that summarise several observations (the control plane's histograms and its
    /// series rolled up to the declared dimensions): sent as statistic sets.
    pub stats: Vec<(&'static str, StatisticSet)>,
}

/// Several observations of one metric in one interval, as PutMetricData's `StatisticValues`
/// and an EMF statistic-set value (`{"Count","Sum","Min","Max"}`) carry them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatisticSet {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

impl StatisticSet {
    /// One observation.
    pub fn single(v: f64) -> Self {
        StatisticSet {
            sample_count: 1.0,
            sum: v,
            minimum: v,
            maximum: v,
        }
    }

    /// Both sets' observations together.
    pub fn merge(&mut self, other: &StatisticSet) {
        self.sample_count += other.sample_count;
        self.sum += other.sum;
        self.minimum = self.minimum.min(other.minimum);
        self.maximum = self.maximum.max(other.maximum);
    }

    /// Whether every number is finite and the set holds at least one observation: CloudWatch
    /// rejects NaN and infinities, and a set of no observations says nothing.
    pub fn is_valid(&self) -> bool {
        self.sample_count > 0.0
            && [self.sample_count, self.sum, self.minimum, self.maximum]
                .iter()
                .all(|v| v.is_finite())
            && self.minimum <= self.maximum
    }
}

impl Record {
    pub fn new(kind: RecordType, timestamp_ms: i64) -> Self {
        Record {
            kind,
            timestamp_ms,
            attributes: Vec::new(),
            json_attributes: Vec::new(),
            fields: Vec::new(),
            stats: Vec::new(),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| &**v)
            .filter(|v| !v.is_empty())
    }

    /// The shared value of a non-empty attribute (for datums, without copying the text).
    pub fn attribute_shared(&self, name: &str) -> Option<&Arc<str>> {
        self.attributes
            .iter()
            .find(|(k, v)| *k == name && !v.is_empty())
            .map(|(_, v)| v)
    }

    pub fn field(&self, name: &str) -> Option<f64> {
        self.fields.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
    }

    pub fn set_attribute(&mut self, name: &'static str, value: impl Into<Arc<str>>) {
        self.attributes.push((name, value.into()));
    }

    /// Adds a field when it has a value; `None` (unknown) leaves it absent, never zero.
    pub fn set_field(&mut self, name: &'static str, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.fields.push((name, v));
        }
    }

    /// Adds a statistic-set field when it is valid (see [`StatisticSet::is_valid`]).
    pub fn set_stats(&mut self, name: &'static str, stats: StatisticSet) {
        if stats.is_valid() {
            self.stats.push((name, stats));
        }
    }
}
