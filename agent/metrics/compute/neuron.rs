//! AWS Neuron records and fields [E], with `accelerated_compute_metrics`:
//!
//! - from neuron-monitor's last scrape (`host::accel::neuron`), the records upstream's Neuron
//!   metric modifier makes (`plugins/processors/gpuattributes/internal/
//!   awsneuron_metric_modifier.go` in aws/amazon-cloudwatch-agent): per `NeuronCore` a
//!   `NodeAWSNeuronCore` record and, for a core a container holds, `PodAWSNeuronCore` and
//!   `ContainerAWSNeuronCore` (`*_neuroncore_utilization` in percent — the ratio × 100 of the
//!   agent's `metricstransform` rule — and the `*_neuroncore_memory_usage_*` bytes with their
//!   sum, `_total`); per device the same three levels of `*AWSNeuronDevice` with
//!   `*_neurondevice_hw_ecc_events_total`; one `NodeAWSNeuron` record with
//!   `node_neuron_execution_errors_total`, `node_neuron_execution_latency` (p50, seconds) and
//!   `node_neurondevice_runtime_memory_used_bytes`. `NeuronCore` and `NeuronDevice` are
//!   `core<N>` and `device<N>` (`updateCoreDeviceRuntimeLabels`). The two counters are sent as
//!   the increase since the previous scrape (upstream marks them cumulative, and its EMF
//!   exporter sends deltas: nothing for the first scrape, a counter that went down counts from
//!   zero);
//! - `pod_neuroncore_{request,limit,usage_total,reserved_capacity}` and `node_neuroncore_*` on
//!   the Pod and Node records, from the pods' `aws.amazon.com/neuroncore` (and whole-device)
//!   resources and the Node's capacity, computed as the GPU ones are (`gpu.rs`): the
//!   CloudWatch agent declares them (`kubernetes.go`) but the receiver revision kinsight follows
//!   has no code for them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::host::accel::dcgm::Assignment;
use crate::host::accel::neuron::{CoreReading, NeuronScrape};
use crate::kube::{NodeState, PodInfo, PodPhase, Snapshot};
use crate::metrics::record::{Record, RecordType};

use super::pod::{PodSettings, pod_attributes};

/// The per-core metric names of one level: utilization, the five memory parts in
/// `neuron::MEMORY_PARTS` order, the memory total.
struct CoreNames {
    utilization: &'static str,
    memory: [&'static str; 5],
    total: &'static str,
}

const fn core_names(utilization: &'static str, memory: [&'static str; 5], total: &'static str) -> CoreNames {
    CoreNames {
        utilization,
        memory,
        total,
    }
}

const CONTAINER: CoreNames = core_names(
    "container_neuroncore_utilization",
    [
        "container_neuroncore_memory_usage_constants",
        "container_neuroncore_memory_usage_model_code",
        "container_neuroncore_memory_usage_model_shared_scratchpad",
        "container_neuroncore_memory_usage_runtime_memory",
        "container_neuroncore_memory_usage_tensors",
    ],
    "container_neuroncore_memory_usage_total",
);
const POD: CoreNames = core_names(
    "pod_neuroncore_utilization",
    [
        "pod_neuroncore_memory_usage_constants",
        "pod_neuroncore_memory_usage_model_code",
        "pod_neuroncore_memory_usage_model_shared_scratchpad",
        "pod_neuroncore_memory_usage_runtime_memory",
        "pod_neuroncore_memory_usage_tensors",
    ],
    "pod_neuroncore_memory_usage_total",
);
const NODE: CoreNames = core_names(
    "node_neuroncore_utilization",
    [
        "node_neuroncore_memory_usage_constants",
        "node_neuroncore_memory_usage_model_code",
        "node_neuroncore_memory_usage_model_shared_scratchpad",
        "node_neuroncore_memory_usage_runtime_memory",
        "node_neuroncore_memory_usage_tensors",
    ],
    "node_neuroncore_memory_usage_total",
);

fn set_core(r: &mut Record, names: &CoreNames, c: &CoreReading) {
    r.set_field(names.utilization, c.utilization_ratio.map(|u| u * 100.0));
    for (name, v) in names.memory.iter().zip(c.memory) {
        r.set_field(name, v);
    }
    r.set_field(names.total, c.memory_total());
}

/// The counters' previous values, so that each scrape's increase is sent once.
#[derive(Debug, Default)]
pub struct Neurons {
    last_seq: u64,
    errors: Option<f64>,
    ecc: HashMap<u32, f64>,
    /// The increases of the current scrape; emptied once sent.
    errors_increase: Option<f64>,
    ecc_increase: HashMap<u32, f64>,
    /// `core<N>` and `device<N>`, made once per index rather than once per record and tick.
    names: Names,
}

/// The `NeuronCore` and `NeuronDevice` values by index.
#[derive(Debug, Default)]
struct Names {
    cores: HashMap<u32, Arc<str>>,
    devices: HashMap<u32, Arc<str>>,
}

impl Names {
    /// More indices than any node has (a trn2.48xlarge has 128 cores) means the exporter's text
    /// is odd: start again rather than grow.
    const MAX: usize = 4096;

    fn core(&mut self, i: u32) -> Arc<str> {
        Self::get(&mut self.cores, "core", i)
    }

    fn device(&mut self, i: u32) -> Arc<str> {
        Self::get(&mut self.devices, "device", i)
    }

    fn get(map: &mut HashMap<u32, Arc<str>>, prefix: &str, i: u32) -> Arc<str> {
        if map.len() >= Self::MAX && !map.contains_key(&i) {
            map.clear();
        }
        Arc::clone(map.entry(i).or_insert_with(|| Arc::from(format!("{prefix}{i}"))))
    }
}

fn increase(before: Option<f64>, now: f64) -> Option<f64> {
    match before {
        Some(b) if now >= b => Some(now - b),
        Some(_) => Some(now),
        None => None,
    }
}

/// What the records of a scrape are made with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub node: &'a Record,
    pub pods: Option<&'a Snapshot>,
    pub settings: PodSettings,
}

impl Neurons {
    /// The records of `scrape` for this tick. Gauges come every tick from the last scrape; the
    /// counters' increases once per scrape (a tick that sees the same scrape again sends none).
    pub fn records(&mut self, scrape: &NeuronScrape, cx: Context<'_>) -> Vec<Record> {
        if scrape.seq == 0 {
            // No scrape, or the last one failed: the next answer starts the counters afresh.
            let names = std::mem::take(&mut self.names);
            *self = Neurons {
                names,
                ..Neurons::default()
            };
            return Vec::new();
        }
        if scrape.seq != self.last_seq {
            self.last_seq = scrape.seq;
            self.errors_increase = scrape.node.execution_errors.and_then(|now| increase(self.errors, now));
            self.errors = scrape.node.execution_errors;
            self.ecc_increase.clear();
            let mut seen = HashMap::with_capacity(scrape.devices.len());
            for d in &scrape.devices {
                if let Some(inc) = increase(self.ecc.get(&d.device).copied(), d.ecc_events) {
                    self.ecc_increase.insert(d.device, inc);
                }
                seen.insert(d.device, d.ecc_events);
            }
            self.ecc = seen;
        }
        let ultraserver = cx
            .pods
            .and_then(Snapshot::own_node)
            .and_then(|n| n.ultraserver.as_deref());
        let mut out = Vec::with_capacity(scrape.cores.len() * 3 + scrape.devices.len() * 3 + 1);
        let mut pods = PodRecords::new(cx);
        for c in &scrape.cores {
            let core = self.names.core(c.core);
            let device = c.device.map(|d| self.names.device(d));
            let mut n = node_level(RecordType::NodeAWSNeuronCore, cx.node, ultraserver);
            n.set_attribute("NeuronCore", Arc::clone(&core));
            if let Some(d) = &device {
                n.set_attribute("NeuronDevice", Arc::clone(d));
            }
            set_core(&mut n, &NODE, c);
            out.push(n);
            let Some(holder) = &c.holder else { continue };
            let (mut pod, mut container) =
                pods.make(holder, RecordType::PodAWSNeuronCore, RecordType::ContainerAWSNeuronCore);
            for r in std::iter::once(&mut pod).chain(container.as_mut()) {
                r.set_attribute("NeuronCore", Arc::clone(&core));
                if let Some(d) = &device {
                    r.set_attribute("NeuronDevice", Arc::clone(d));
                }
            }
            set_core(&mut pod, &POD, c);
            out.push(pod);
            if let Some(mut k) = container {
                set_core(&mut k, &CONTAINER, c);
                out.push(k);
            }
        }
        // The counters' increases: sent once per scrape.
        let ecc = std::mem::take(&mut self.ecc_increase);
        for d in &scrape.devices {
            let Some(&inc) = ecc.get(&d.device) else { continue };
            let device = self.names.device(d.device);
            let mut n = node_level(RecordType::NodeAWSNeuronDevice, cx.node, ultraserver);
            n.set_attribute("NeuronDevice", Arc::clone(&device));
            n.set_field("node_neurondevice_hw_ecc_events_total", Some(inc));
            out.push(n);
            let Some(holder) = &d.holder else { continue };
            let (mut pod, container) = pods.make(
                holder,
                RecordType::PodAWSNeuronDevice,
                RecordType::ContainerAWSNeuronDevice,
            );
            pod.set_attribute("NeuronDevice", Arc::clone(&device));
            pod.set_field("pod_neurondevice_hw_ecc_events_total", Some(inc));
            out.push(pod);
            if let Some(mut k) = container {
                k.set_attribute("NeuronDevice", device);
                k.set_field("container_neurondevice_hw_ecc_events_total", Some(inc));
                out.push(k);
            }
        }
        let mut n = node_level(RecordType::NodeAWSNeuron, cx.node, ultraserver);
        n.set_field("node_neuron_execution_errors_total", self.errors_increase.take());
        n.set_field("node_neuron_execution_latency", scrape.node.execution_latency_p50);
        n.set_field(
            "node_neurondevice_runtime_memory_used_bytes",
            scrape.node.runtime_memory_device_bytes,
        );
        if !n.fields.is_empty() {
            out.push(n);
        }
        out
    }
}

/// A node-level Neuron record: the node's attributes and the `UltraServer` it belongs to.
fn node_level(kind: RecordType, node: &Record, ultraserver: Option<&str>) -> Record {
    let mut r = Record::new(kind, node.timestamp_ms);
    r.attributes.reserve(node.attributes.len() + 3);
    r.attributes.extend(node.attributes.iter().cloned());
    if let Some(u) = ultraserver {
        r.set_attribute("UltraServer", u);
    }
    r
}

/// A record's attributes.
type Attributes = Vec<(&'static str, Arc<str>)>;

/// Pod and container records of holders, the pod's attributes looked up once per pod (a node
/// has a handful of Neuron pods: a list is enough).
struct PodRecords<'a> {
    cx: Context<'a>,
    known: Vec<(Assignment, Attributes)>,
}

impl<'a> PodRecords<'a> {
    fn new(cx: Context<'a>) -> Self {
        PodRecords { cx, known: Vec::new() }
    }

    /// The attributes of `holder`'s pod: `PodName` and `Service` from the pod index when it
    /// knows the pod, else the kubelet's pod name for `PodName` and `FullPodName`.
    fn attributes(&mut self, holder: &Assignment) -> Attributes {
        let same = |a: &Assignment| a.namespace == holder.namespace && a.pod == holder.pod;
        if let Some((_, attrs)) = self.known.iter().find(|(a, _)| same(a)) {
            return attrs.clone();
        }
        let cx = self.cx;
        let mut pod = Record::new(RecordType::Pod, cx.node.timestamp_ms);
        let known = cx.pods.and_then(|p| {
            p.pods()
                .iter()
                .find(|pod| pod.namespace == holder.namespace && pod.name == holder.pod)
        });
        if let Some(info) = known {
            pod_attributes(&mut pod, cx.node, info, cx.settings);
        } else {
            pod.attributes.extend(cx.node.attributes.iter().cloned());
            pod.set_attribute("Namespace", holder.namespace.as_str());
            pod.set_attribute("PodName", holder.pod.as_str());
            pod.set_attribute("FullPodName", holder.pod.as_str());
        }
        self.known.push((holder.clone(), pod.attributes.clone()));
        pod.attributes
    }

    /// A pod record of `kind` for `holder`, and one of `container_kind` for its container when
    /// the kubelet names it.
    fn make(&mut self, holder: &Assignment, kind: RecordType, container_kind: RecordType) -> (Record, Option<Record>) {
        let at = self.cx.node.timestamp_ms;
        let mut pod = Record::new(kind, at);
        pod.attributes = self.attributes(holder);
        let container = holder.container.as_deref().map(|name| {
            let mut c = Record::new(container_kind, at);
            c.attributes.reserve(pod.attributes.len() + 3);
            c.attributes.extend(pod.attributes.iter().cloned());
            c.set_attribute("ContainerName", name);
            c
        });
        (pod, container)
    }
}

/// Cores one whole device holds on this node: the Node's core capacity over its device capacity.
fn cores_per_device(own: Option<&NodeState>) -> Option<f64> {
    let own = own?;
    match (own.capacity_neuroncores, own.capacity_neurondevices) {
        (Some(cores), Some(devices)) if cores > 0 && devices > 0 => Some((cores / devices) as f64),
        _ => None,
    }
}

/// The pod's `NeuronCore` limit and request sums, when **every** spec container sets a limit —
/// the rule of the GPU fields (upstream's `getResourceSettingForPod` with
/// `getLimitForContainer`). A container's cores are its `aws.amazon.com/neuroncore` plus its
/// whole devices times the cores of a device (when the Node's capacity tells them).
fn pod_cores(pod: &PodInfo, per_device: Option<f64>) -> Option<(f64, f64)> {
    let mut spec = pod.containers.iter().filter(|c| c.in_spec && !c.is_init).peekable();
    spec.peek()?;
    let (mut limit, mut request) = (0.0, 0.0);
    for c in spec {
        let a = c.accelerators.as_deref()?;
        let devices = |d: Option<f64>| d.zip(per_device).map(|(d, p)| d * p);
        let l = match (a.neuroncore_limit, devices(a.neurondevice_limit)) {
            (None, None) => return None,
            (x, y) => x.unwrap_or(0.0) + y.unwrap_or(0.0),
        };
        limit += l;
        request += a.neuroncore_request.unwrap_or(0.0) + devices(a.neurondevice_request).unwrap_or(0.0);
    }
    Some((limit, request))
}

/// `pod_neuroncore_{request,limit,usage_total,reserved_capacity}` on a Pod record: for pods not
/// yet finished whose containers all set a Neuron limit; the usage is the limit while the pod
/// runs, else 0; the reserved capacity divides the limit by the Node's core capacity.
/// Nothing when not `enabled` (accelerated compute metrics off).
pub fn add_pod_fields(enabled: bool, r: &mut Record, pod: &PodInfo, own: Option<&NodeState>) {
    if !enabled || pod.phase.is_terminal() {
        return;
    }
    let Some((limit, request)) = pod_cores(pod, cores_per_device(own)) else {
        return;
    };
    r.set_field("pod_neuroncore_request", Some(request));
    r.set_field("pod_neuroncore_limit", Some(limit));
    let usage = if pod.phase == PodPhase::Running { limit } else { 0.0 };
    r.set_field("pod_neuroncore_usage_total", Some(usage));
    let capacity = own.and_then(|n| n.capacity_neuroncores).filter(|&c| c > 0);
    r.set_field(
        "pod_neuroncore_reserved_capacity",
        capacity.map(|c| limit / c as f64 * 100.0),
    );
}

/// `node_neuroncore_*` on the Node record, when the Node advertises `aws.amazon.com/neuroncore`
/// capacity: the capacity (`limit`), the limits of running pods (`usage_total`), requests over
/// capacity in percent (`reserved`), its complement (`unreserved`) and the cores no running pod
/// holds (`available`).
pub fn add_node_fields(r: &mut Record, pods: &[Arc<PodInfo>], own: &NodeState) {
    let Some(capacity) = own.capacity_neuroncores.filter(|&c| c > 0) else {
        return;
    };
    let capacity = capacity as f64;
    let per_device = cores_per_device(Some(own));
    let (mut request, mut usage) = (0.0, 0.0);
    for pod in pods.iter().filter(|p| !p.phase.is_terminal()) {
        let Some((limit, req)) = pod_cores(pod, per_device) else {
            continue;
        };
        request += req;
        if pod.phase == PodPhase::Running {
            usage += limit;
        }
    }
    let reserved = request / capacity * 100.0;
    r.set_field("node_neuroncore_request", Some(request));
    r.set_field("node_neuroncore_limit", Some(capacity));
    r.set_field("node_neuroncore_usage_total", Some(usage));
    r.set_field("node_neuroncore_reserved_capacity", Some(reserved));
    r.set_field("node_neuroncore_unreserved_capacity", Some((100.0 - reserved).max(0.0)));
    r.set_field("node_neuroncore_available_capacity", Some((capacity - usage).max(0.0)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::accel::neuron::{DeviceReading, NodeValues};
    use crate::kube::{Accelerators, ContainerInfo};

    fn holder(pod: &str) -> Assignment {
        Assignment {
            namespace: "ml".into(),
            pod: pod.into(),
            container: Some("main".into()),
        }
    }

    fn node() -> Record {
        let mut node = Record::new(RecordType::Node, 7);
        node.set_attribute("ClusterName", "c");
        node.set_attribute("NodeName", "n");
        node
    }

    fn scrape(seq: u64, ecc: f64, errors: f64) -> NeuronScrape {
        NeuronScrape {
            seq,
            hardware: None,
            cores: vec![
                CoreReading {
                    core: 0,
                    device: Some(0),
                    utilization_ratio: Some(0.5),
                    memory: [Some(1.0), Some(2.0), None, None, Some(3.0)],
                    holder: Some(holder("p")),
                },
                CoreReading {
                    core: 1,
                    device: Some(0),
                    utilization_ratio: Some(0.0),
                    ..CoreReading::default()
                },
            ],
            devices: vec![DeviceReading {
                device: 0,
                ecc_events: ecc,
                holder: Some(holder("p")),
            }],
            node: NodeValues {
                execution_errors: Some(errors),
                execution_latency_p50: Some(0.25),
                runtime_memory_device_bytes: Some(4096.0),
            },
        }
    }

    fn cx(node: &Record) -> Context<'_> {
        Context {
            node,
            pods: None,
            settings: PodSettings {
                enhanced: true,
                prefer_full_pod_name: false,
                tag_service: true,
                kubernetes_object: false,
            },
        }
    }

    fn field(out: &[Record], kind: RecordType, name: &str) -> Vec<f64> {
        out.iter()
            .filter(|r| r.kind == kind)
            .filter_map(|r| r.field(name))
            .collect()
    }

    #[test]
    fn cores_go_to_every_level_and_counters_send_their_increase_once_per_scrape() {
        use RecordType::*;
        let node = node();
        let mut n = Neurons::default();
        let first = n.records(&scrape(1, 10.0, 5.0), cx(&node));
        let kinds: Vec<RecordType> = first.iter().map(|r| r.kind).collect();
        assert_eq!(
            kinds,
            [
                NodeAWSNeuronCore,
                PodAWSNeuronCore,
                ContainerAWSNeuronCore,
                NodeAWSNeuronCore,
                NodeAWSNeuron
            ]
        );
        assert_eq!(
            field(&first, NodeAWSNeuronCore, "node_neuroncore_utilization"),
            [50.0, 0.0]
        );
        assert_eq!(
            field(
                &first,
                ContainerAWSNeuronCore,
                "container_neuroncore_memory_usage_total"
            ),
            [6.0]
        );
        assert_eq!(first[2].attribute("NeuronCore"), Some("core0"));
        assert_eq!(first[2].attribute("NeuronDevice"), Some("device0"));
        assert_eq!(first[2].attribute("ContainerName"), Some("main"));
        assert_eq!(first[1].attribute("FullPodName"), Some("p"));
        // The first scrape has no increase yet.
        assert!(field(&first, NodeAWSNeuron, "node_neuron_execution_errors_total").is_empty());
        assert_eq!(field(&first, NodeAWSNeuron, "node_neuron_execution_latency"), [0.25]);

        let second = n.records(&scrape(2, 14.0, 6.0), cx(&node));
        assert_eq!(
            field(&second, NodeAWSNeuronDevice, "node_neurondevice_hw_ecc_events_total"),
            [4.0]
        );
        assert_eq!(
            field(&second, PodAWSNeuronDevice, "pod_neurondevice_hw_ecc_events_total"),
            [4.0]
        );
        assert_eq!(
            field(
                &second,
                ContainerAWSNeuronDevice,
                "container_neurondevice_hw_ecc_events_total"
            ),
            [4.0]
        );
        assert_eq!(
            field(&second, NodeAWSNeuron, "node_neuron_execution_errors_total"),
            [1.0]
        );
        // The same scrape seen by another tick: gauges again, no increase twice.
        let again = n.records(&scrape(2, 14.0, 6.0), cx(&node));
        assert!(field(&again, NodeAWSNeuronDevice, "node_neurondevice_hw_ecc_events_total").is_empty());
        assert!(field(&again, NodeAWSNeuron, "node_neuron_execution_errors_total").is_empty());
        assert_eq!(
            field(&again, NodeAWSNeuronCore, "node_neuroncore_utilization"),
            [50.0, 0.0]
        );
        // A counter that went down (a device reset) counts from zero.
        let reset = n.records(&scrape(3, 2.0, 6.0), cx(&node));
        assert_eq!(
            field(&reset, NodeAWSNeuronDevice, "node_neurondevice_hw_ecc_events_total"),
            [2.0]
        );
        // A failed scrape (seq 0) sends nothing and forgets the counters.
        assert!(n.records(&NeuronScrape::default(), cx(&node)).is_empty());
        let after = n.records(&scrape(4, 20.0, 9.0), cx(&node));
        assert!(field(&after, NodeAWSNeuron, "node_neuron_execution_errors_total").is_empty());
    }

    fn container(cores: Option<f64>, devices: Option<f64>) -> ContainerInfo {
        ContainerInfo {
            name: "x".into(),
            in_spec: true,
            accelerators: Some(Box::new(Accelerators {
                neuroncore_limit: cores,
                neuroncore_request: cores,
                neurondevice_limit: devices,
                neurondevice_request: devices,
                ..Accelerators::default()
            })),
            ..ContainerInfo::default()
        }
    }

    fn pod(phase: PodPhase, containers: Vec<ContainerInfo>) -> PodInfo {
        PodInfo::for_tests("p", "ml", phase, containers)
    }

    fn own(cores: Option<u64>, devices: Option<u64>) -> NodeState {
        NodeState {
            name: "n".into(),
            capacity_neuroncores: cores,
            capacity_neurondevices: devices,
            ..NodeState::default()
        }
    }

    #[test]
    fn cores_and_whole_devices_count_against_the_core_capacity() {
        let own = own(Some(32), Some(16));
        let p = pod(
            PodPhase::Running,
            vec![container(Some(2.0), None), container(None, Some(1.0))],
        );
        let mut r = Record::new(RecordType::Pod, 0);
        add_pod_fields(true, &mut r, &p, Some(&own));
        assert_eq!(
            r.field("pod_neuroncore_limit"),
            Some(4.0),
            "2 cores + 1 device of 2 cores"
        );
        assert_eq!(r.field("pod_neuroncore_usage_total"), Some(4.0));
        assert_eq!(r.field("pod_neuroncore_reserved_capacity"), Some(12.5));

        let sidecar = pod(
            PodPhase::Running,
            vec![
                container(Some(2.0), None),
                ContainerInfo {
                    in_spec: true,
                    ..ContainerInfo::default()
                },
            ],
        );
        let mut r = Record::new(RecordType::Pod, 0);
        add_pod_fields(true, &mut r, &sidecar, Some(&own));
        assert!(r.fields.is_empty(), "every container needs a limit: {:?}", r.fields);

        let pending = Arc::new(pod(PodPhase::Pending, vec![container(Some(8.0), None)]));
        let mut n = Record::new(RecordType::Node, 0);
        add_node_fields(&mut n, &[Arc::new(p), pending], &own);
        assert_eq!(n.field("node_neuroncore_limit"), Some(32.0));
        assert_eq!(n.field("node_neuroncore_usage_total"), Some(4.0));
        assert_eq!(n.field("node_neuroncore_reserved_capacity"), Some(37.5));
        assert_eq!(n.field("node_neuroncore_unreserved_capacity"), Some(62.5));
        assert_eq!(n.field("node_neuroncore_available_capacity"), Some(28.0));

        let mut n = Record::new(RecordType::Node, 0);
        add_node_fields(&mut n, &[], &own_none());
        assert!(n.fields.is_empty());
    }

    fn own_none() -> NodeState {
        own(None, None)
    }
}
