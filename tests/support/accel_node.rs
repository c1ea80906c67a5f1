//! A synthetic node for the accelerated compute tests (`metrics_accel`, `metrics_efa`,
//! `metrics_neuron`): two pods of one container, the first asking for devices of an extended
//! resource, a Service over its namespace, the collector over it, and lookups in what a cycle
//! sent. Included by path; the including test declares `mod synthetic` (the benchmark's node).

#![allow(dead_code, reason = "each test includes this file and uses part of it")]

use std::path::Path;
use std::time::Duration;

use kinsight::host::{CgroupMode, Root, SystemClock, procfs};
use kinsight::kube::{self, NodeState, PodIndex};
use kinsight::metrics::collect::{Cycle, Settings};
use kinsight::metrics::{Collector, Datum};
use kinsight::telemetry::Telemetry;
use serde_json::Value;

use crate::synthetic;

/// The first pod, whose container `c0` holds the devices.
pub const DEVICE_POD: &str = "web-7d4b9c8f6d-00000";

/// Two pods whose first pod's container `c0` requests and limits `count` of `resource`, and a
/// Service over `ns0` (so the `Service` sets have members).
pub fn node_with_device_pod(dir: &Path, resource: &str, count: &str) -> synthetic::Node {
    let node = synthetic::Node::create(dir, 2, 1);
    let list_path = node.pod_list_path();
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(&list_path).unwrap()).unwrap();
    let c0 = &mut list["items"][0]["spec"]["containers"][0]["resources"];
    c0["limits"][resource] = count.into();
    c0["requests"][resource] = count.into();
    list["items"].as_array_mut().unwrap().push(serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "ns0"},
        "spec": {"selector": {"app": "web"}, "publishNotReadyAddresses": true}
    }));
    std::fs::write(&list_path, list.to_string()).unwrap();
    node
}

/// The collector over the node at `root`, its pods from the node's pod list and `own` as the
/// Node object.
pub fn collector(root: &Path, settings: Settings, own: NodeState, telemetry: Telemetry) -> Collector {
    let root = Root::new(root);
    let mode = CgroupMode::detect(&root).unwrap();
    let capacity = procfs::read_capacity(&root).unwrap();
    let index = PodIndex::new(None);
    kube::load_file_now(&root.path("/proc/podlist.json"), None, &index).unwrap();
    index.set_own_node(Some(own));
    Collector::new(
        kinsight::metrics::sample::Sampler::new(root, mode, telemetry),
        capacity,
        settings,
        Some(index),
    )
}

/// Two cycles (the second has rates), the second one returned.
pub fn two_cycles(mut c: Collector, node: &mut synthetic::Node) -> Cycle {
    c.collect(&SystemClock);
    node.advance();
    std::thread::sleep(Duration::from_millis(20));
    c.collect(&SystemClock)
}

/// The datums of `metric` with exactly the dimensions `dims` (name, value).
pub fn datums<'a>(d: &'a [Datum], metric: &str, dims: &[(&str, &str)]) -> Vec<&'a Datum> {
    let mut want: Vec<(&str, &str)> = dims.to_vec();
    want.sort_unstable();
    d.iter()
        .filter(|x| {
            x.metric_name == metric
                && x.dimensions.len() == want.len()
                && x.dimensions
                    .iter()
                    .zip(&want)
                    .all(|((k, v), (wk, wv))| k == wk && &**v == *wv)
        })
        .collect()
}

/// The one datum of `metric` with exactly the dimensions `dims`.
pub fn datum<'a>(d: &'a [Datum], metric: &str, dims: &[(&str, &str)]) -> &'a Datum {
    let found = datums(d, metric, dims);
    assert_eq!(found.len(), 1, "{metric} {dims:?}: {found:#?}");
    found[0]
}
