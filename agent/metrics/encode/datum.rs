//! Records → PutMetricData datums: one datum per declared field and per dimension set whose
//! attributes are all present, dimensions sorted by name.

use std::sync::Arc;

use super::super::declare;
use super::super::record::{Record, StatisticSet};
use crate::config::{MetricDrop, is_dropped};

/// A CloudWatch unit as PutMetricData spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Bytes,
    BytesPerSecond,
    Count,
    CountPerSecond,
    Seconds,
    /// No unit: millicores (CloudWatch has none for them).
    None,
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::Count => "Count",
            Unit::CountPerSecond => "Count/Second",
            Unit::Seconds => "Seconds",
            Unit::None => "None",
        }
    }
}

/// One metric datum, exactly what is sent (namespace `ContainerInsights`).
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub metric_name: &'static str,
    /// Sorted by name. Shared by the datums of one record with the same dimension set,
    /// and the values with the record they came from: a pod's 27 datums hold 3 lists.
    pub dimensions: Dimensions,
    /// The value; with `stats`, their sum (what the datum adds to a Sum statistic).
    pub value: f64,
    /// Several observations in one datum: sent as `StatisticValues` instead of `Value` (the API
    /// takes one or the other). Boxed: a handful of control-plane datums carry one, the tens of
    /// thousands of others stay one pointer larger only.
    pub stats: Option<Box<StatisticSet>>,
    pub unit: Unit,
    pub timestamp_ms: i64,
}

/// The dimensions of a datum, as (name, value) pairs.
pub type Dimensions = Arc<[(&'static str, Arc<str>)]>;

/// The CloudWatch namespace of every Container Insights datum.
pub const NAMESPACE: &str = "ContainerInsights";

/// Appends the datums of `record` to `out` (reused across records to avoid reallocating).
pub fn encode(record: &Record, enhanced: bool, out: &mut Vec<Datum>) {
    encode_selected(record, enhanced, &[], out);
}

/// [`encode`], without the (metric, dimension set) pairs `drops` names (`kinsight.metrics.drop`).
pub fn encode_selected(record: &Record, enhanced: bool, drops: &[MetricDrop], out: &mut Vec<Datum>) {
    // The dimension lists built for this record, by set (`None`: an attribute is missing).
    let mut built: Vec<(&'static [&'static str], Option<Dimensions>)> = Vec::new();
    let plain = record.fields.iter().map(|&(field, value)| (field, value, None));
    let sets = record.stats.iter().map(|(field, s)| (*field, s.sum, Some(s)));
    for (field, value, stats) in plain.chain(sets) {
        let Some(decl) = declare::lookup(enhanced, record.kind, field) else {
            continue;
        };
        for &set in decl.sets {
            if is_dropped(drops, decl.metric, set) {
                continue;
            }
            let dims = if let Some((_, dims)) = built.iter().find(|(s, _)| *s == set) {
                dims.clone()
            } else {
                let dims = dimensions(record, set);
                built.push((set, dims.clone()));
                dims
            };
            // A set with a missing or empty attribute is skipped, not sent empty (PutMetricData
            // rejects empty dimension values).
            let Some(dimensions) = dims else { continue };
            out.push(Datum {
                metric_name: decl.metric,
                dimensions,
                value,
                stats: stats.map(|s| Box::new(*s)),
                unit: decl.unit,
                timestamp_ms: record.timestamp_ms,
            });
        }
    }
}

/// Calls `f` with a hash of each metric series (metric name, dimension names and values) that
/// the datums of `record` would carry, without building them: what CloudWatch bills as custom
/// metrics, whichever way (PutMetricData or an EMF directive) the values arrive.
pub fn for_each_series(record: &Record, enhanced: bool, drops: &[MetricDrop], mut f: impl FnMut(u64)) {
    use std::hash::{Hash, Hasher};
    let plain = record.fields.iter().map(|(field, _)| *field);
    let sets = record.stats.iter().map(|(field, _)| *field);
    for field in plain.chain(sets) {
        let Some(decl) = declare::lookup(enhanced, record.kind, field) else {
            continue;
        };
        'sets: for &set in decl.sets {
            if is_dropped(drops, decl.metric, set) {
                continue;
            }
            let mut h = super::super::rate::KeyHasher::default();
            decl.metric.hash(&mut h);
            for &name in set {
                let Some(value) = record.attribute(name) else {
                    continue 'sets;
                };
                name.hash(&mut h);
                value.hash(&mut h);
            }
            f(h.finish());
        }
    }
}

fn dimensions(record: &Record, set: &[&'static str]) -> Option<Dimensions> {
    set.iter()
        .map(|&name| record.attribute_shared(name).map(|v| (name, Arc::clone(v))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RecordType;

    #[test]
    fn sets_with_missing_attributes_are_skipped() {
        let mut r = Record::new(RecordType::Node, 1_700_000_000_000);
        r.set_attribute("ClusterName", "c");
        r.set_attribute("NodeName", "n");
        r.set_attribute("InstanceId", "");
        r.set_field("node_cpu_utilization", Some(12.5));
        r.set_field("node_memory_usage", Some(1.0)); // log-only field: no datum
        let mut out = vec![];
        encode(&r, false, &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(*out[0].dimensions, [("ClusterName", std::sync::Arc::from("c"))]);
        assert_eq!(out[0].unit, Unit::Percent);

        r.attributes.retain(|(k, _)| *k != "InstanceId");
        r.set_attribute("InstanceId", "i-0123");
        out.clear();
        encode(&r, false, &mut out);
        assert_eq!(out.len(), 2);
        let names: Vec<_> = out[0].dimensions.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["ClusterName", "InstanceId", "NodeName"]);
    }

    /// `kinsight.metrics.drop` leaves out exactly the pairs it names, from the datums, the EMF
    /// directive and the series count alike.
    #[test]
    fn drops_leave_out_the_pairs_they_name_everywhere() {
        use crate::config::MetricDrop;
        let mut r = Record::new(RecordType::Pod, 1_700_000_000_000);
        for (k, v) in [
            ("ClusterName", "c"),
            ("Namespace", "shop"),
            ("PodName", "web"),
            ("Service", "web-svc"),
        ] {
            r.set_attribute(k, v);
        }
        r.set_field("pod_cpu_utilization", Some(1.0));
        r.set_field("pod_memory_utilization", Some(2.0));
        let drops = [
            MetricDrop {
                metric: None,
                dimensions: Some(vec!["ClusterName".into(), "Namespace".into()]),
            },
            MetricDrop {
                metric: Some("pod_memory_utilization".into()),
                dimensions: None,
            },
        ];
        let mut all = vec![];
        encode(&r, false, &mut all);
        assert_eq!(all.len(), 8, "2 metrics × P, C, S, NS");
        let mut kept = vec![];
        encode_selected(&r, false, &drops, &mut kept);
        let pairs: Vec<(&str, usize)> = kept.iter().map(|d| (d.metric_name, d.dimensions.len())).collect();
        assert_eq!(
            pairs,
            [
                ("pod_cpu_utilization", 3),
                ("pod_cpu_utilization", 1),
                ("pod_cpu_utilization", 3)
            ]
        );
        let mut n = 0;
        for_each_series(&r, false, &drops, |_| n += 1);
        assert_eq!(n, 3);

        let mut events = vec![];
        let opts = super::super::emf::EmfOptions {
            with_directive: true,
            enhanced: false,
        };
        super::super::emf::encode_selected(&r, opts, &drops, &mut events);
        let v: serde_json::Value = serde_json::from_str(&events[0].message.text()).unwrap();
        let directive = &v["CloudWatchMetrics"];
        assert_eq!(directive.as_array().unwrap().len(), 1, "{directive}");
        assert_eq!(
            directive[0]["Metrics"],
            serde_json::json!([{"Name": "pod_cpu_utilization", "Unit": "Percent"}])
        );
        assert_eq!(
            directive[0]["Dimensions"],
            serde_json::json!([
                ["ClusterName", "Namespace", "PodName"],
                ["ClusterName"],
                ["ClusterName", "Namespace", "Service"]
            ])
        );
        // The values stay in the event: log data.
        assert_eq!(v["pod_memory_utilization"], 2.0);
    }
}
