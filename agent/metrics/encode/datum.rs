//! Records → PutMetricData datums (`spec/METRICS.md` §11): one datum per declared field and
//! per dimension set whose attributes are all present (DIM-1), dimensions sorted by name (DIM-2).

use std::sync::Arc;

use super::super::declare;
use super::super::record::Record;

/// A CloudWatch unit as PutMetricData spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Percent,
    Bytes,
    BytesPerSecond,
    Count,
    CountPerSecond,
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
            Unit::None => "None",
        }
    }
}

/// One metric datum, exactly what is sent (namespace `ContainerInsights`).
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    pub metric_name: &'static str,
    /// Sorted by name (DIM-2). Values are shared with the record they came from.
    pub dimensions: Vec<(&'static str, Arc<str>)>,
    pub value: f64,
    pub unit: Unit,
    pub timestamp_ms: i64,
}

/// The CloudWatch namespace of every Container Insights datum.
pub const NAMESPACE: &str = "ContainerInsights";

/// Appends the datums of `record` to `out` (reused across records to avoid reallocating).
pub fn encode(record: &Record, enhanced: bool, out: &mut Vec<Datum>) {
    for &(field, value) in &record.fields {
        let Some(decl) = declare::lookup(enhanced, record.kind, field) else {
            continue;
        };
        'sets: for set in decl.sets {
            let mut dimensions = Vec::with_capacity(set.len());
            for &name in *set {
                // DIM-1: a set with a missing or empty attribute is skipped, not sent empty.
                let Some(v) = record.attribute_shared(name) else {
                    continue 'sets;
                };
                dimensions.push((name, Arc::clone(v)));
            }
            out.push(Datum {
                metric_name: decl.metric,
                dimensions,
                value,
                unit: decl.unit,
                timestamp_ms: record.timestamp_ms,
            });
        }
    }
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
        assert_eq!(out[0].dimensions, vec![("ClusterName", std::sync::Arc::from("c"))]);
        assert_eq!(out[0].unit, Unit::Percent);

        r.attributes.retain(|(k, _)| *k != "InstanceId");
        r.set_attribute("InstanceId", "i-0123");
        out.clear();
        encode(&r, false, &mut out);
        assert_eq!(out.len(), 2);
        let names: Vec<_> = out[0].dimensions.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["ClusterName", "InstanceId", "NodeName"]);
    }
}
