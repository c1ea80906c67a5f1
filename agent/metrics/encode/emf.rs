//! EMF "version 0" performance events, as the `CloudWatch` agent writes them (top-level
//! `CloudWatchMetrics`, `Timestamp` as a string): one event per record, to
//! `/aws/containerinsights/<cluster>/performance`, stream = node name.

use std::collections::HashMap;

use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::super::declare::{self, Declaration};
use super::super::record::{Record, StatisticSet};
use super::datum::{NAMESPACE, Unit};
use crate::config::{MetricDrop, is_dropped};

/// A performance event is an ordinary CloudWatch Logs event whose `message` is the EMF JSON.
pub use crate::ship::LogEvent;

/// The performance log group of a cluster.
pub fn performance_log_group(cluster_name: &str) -> String {
    format!("/aws/containerinsights/{cluster_name}/performance")
}

/// Whether `group` is the performance log group of `cluster`, without building the name.
fn is_group_of(group: &str, cluster: &str) -> bool {
    group
        .strip_prefix("/aws/containerinsights/")
        .and_then(|g| g.strip_suffix("/performance"))
        == Some(cluster)
}

/// How events are written for the configured destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmfOptions {
    /// Mode `emf` (and extraction not disabled): add the `CloudWatchMetrics` directive. Mode
    /// `both` leaves it out, so a datapoint reaches CloudWatch by one path only.
    pub with_directive: bool,
    pub enhanced: bool,
}

/// Integer-valued fields (counts, sizes, limits, requests) are written without a fractional
/// part: `"node_cpu_limit": 4000`, not `4000.0`.
fn is_integer_valued(field: &'static str) -> bool {
    // Field names are a few hundred `&'static str` constants, each written thousands of times
    // a tick: the suffix rules of `unit_of` run once per name and thread.
    thread_local! {
        static KNOWN: std::cell::RefCell<HashMap<(usize, usize), bool>> = std::cell::RefCell::new(HashMap::new());
    }
    let key = (field.as_ptr() as usize, field.len());
    KNOWN.with_borrow_mut(|known| {
        *known.entry(key).or_insert_with(|| match declare::unit_of(field) {
            Unit::Bytes | Unit::Count => true,
            Unit::None => !field.contains("_usage_"),
            _ => false,
        })
    })
}

/// Same dimension sets: the tables reuse the same constant slices, so pointers usually answer;
/// the content decides otherwise.
fn same_sets(a: &[&'static [&'static str]], b: &[&'static [&'static str]]) -> bool {
    std::ptr::eq(a, b) || (a.len() == b.len() && a.iter().zip(b).all(|(x, y)| std::ptr::eq(*x, *y) || x == y))
}

/// A group of declared metrics that share their dimension sets: one `CloudWatchMetrics` entry.
struct Group {
    sets: &'static [&'static [&'static str]],
    /// Sets left out by `kinsight.metrics.drop` (bit i: `sets[i]`).
    dropped: u32,
    metrics: Vec<&'static Declaration>,
}

/// The sets of `decl` that `drops` leaves out, as bits.
fn dropped_sets(decl: &Declaration, drops: &[MetricDrop]) -> u32 {
    if drops.is_empty() {
        return 0;
    }
    decl.sets
        .iter()
        .enumerate()
        .filter(|(_, set)| is_dropped(drops, decl.metric, set))
        .fold(0, |mask, (i, _)| mask | (1 << i))
}

fn groups(record: &Record, enhanced: bool, drops: &[MetricDrop]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    let stats = record.stats.iter().map(|(f, _)| f);
    for field in record.fields.iter().map(|(f, _)| f).chain(stats) {
        let Some(decl) = declare::lookup(enhanced, record.kind, field) else {
            continue;
        };
        let dropped = dropped_sets(decl, drops);
        if dropped != 0 && dropped.count_ones() as usize == decl.sets.len() {
            continue;
        }
        match groups
            .iter_mut()
            .find(|g| g.dropped == dropped && same_sets(g.sets, decl.sets))
        {
            Some(g) => g.metrics.push(decl),
            None => groups.push(Group {
                sets: decl.sets,
                dropped,
                metrics: vec![decl],
            }),
        }
    }
    groups
}

/// Appends the event of `record` to `out`. In enhanced mode a record with no declared metric
/// is dropped, as upstream's EMF exporter does; in standard mode it is still written (log-only
/// data).
pub fn encode(record: &Record, opts: EmfOptions, out: &mut Vec<LogEvent>) {
    encode_selected(record, opts, &[], out);
}

/// [`encode`], leaving out of the directive what `drops` (`kinsight.metrics.drop`) names; the
/// values stay in the event (log data, billed as bytes, not as metrics).
pub fn encode_selected(record: &Record, opts: EmfOptions, drops: &[MetricDrop], out: &mut Vec<LogEvent>) {
    let groups = groups(record, opts.enhanced, drops);
    if opts.enhanced && groups.is_empty() {
        return;
    }
    let mut buf = Vec::with_capacity(1024);
    let mut ser = serde_json::Serializer::new(&mut buf);
    let result = (|| {
        let mut m = ser.serialize_map(None)?;
        m.serialize_entry("Type", record.kind.as_str())?;
        for (k, v) in &record.attributes {
            m.serialize_entry(k, &**v)?;
        }
        for (k, v) in &record.json_attributes {
            m.serialize_entry(k, v)?;
        }
        for &(k, v) in &record.fields {
            if is_integer_valued(k) && v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
                #[expect(
                    clippy::cast_possible_truncation,
                    reason = "checked integral and below 2^53 just above"
                )]
                m.serialize_entry(k, &(v as i64))?;
            } else {
                m.serialize_entry(k, &v)?;
            }
        }
        for (k, v) in &record.stats {
            m.serialize_entry(k, &EmfStats(v))?;
        }
        m.serialize_entry("Version", "0")?;
        m.serialize_entry("Timestamp", &record.timestamp_ms.to_string())?;
        if opts.with_directive {
            let entries: Vec<Entry<'_>> = groups
                .iter()
                .filter_map(|g| {
                    let dims = satisfied(record, g);
                    (!dims.is_empty()).then_some(Entry {
                        dims,
                        metrics: &g.metrics,
                    })
                })
                .collect();
            if !entries.is_empty() {
                m.serialize_entry("CloudWatchMetrics", &Directive(entries))?;
            }
        }
        SerializeMap::end(m)
    })();
    debug_assert!(result.is_ok(), "EMF serialization failed: {result:?}");
    let cluster = record.attribute("ClusterName").unwrap_or("undefined");
    let node = record.attribute("NodeName").unwrap_or("undefined");
    // Every event of a tick names the same group and stream: share the previous event's.
    let (group, stream) = match out.last() {
        Some(prev) if prev.stream.as_ref() == node && is_group_of(&prev.group, cluster) => {
            (prev.group.clone(), prev.stream.clone())
        }
        _ => (performance_log_group(cluster).into(), node.into()),
    };
    out.push(LogEvent {
        group,
        stream,
        timestamp_ms: record.timestamp_ms,
        // serde_json writes valid UTF-8.
        message: crate::ship::Message::new(std::str::from_utf8(&buf).unwrap_or_default()),
        token: 0,
    });
}

/// A statistic-set value as upstream's EMF exporter writes one (`cWMetricStats` in
/// `exporter/awsemfexporter/datapoint.go`): `{"Max","Min","Count","Sum"}`.
struct EmfStats<'a>(&'a StatisticSet);

impl serde::Serialize for EmfStats<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("Max", &self.0.maximum)?;
        m.serialize_entry("Min", &self.0.minimum)?;
        // A count of observations: an integer, as upstream's uint64 `Count`.
        let count = self.0.sample_count;
        if count.fract() == 0.0 && (0.0..9_007_199_254_740_992.0).contains(&count) {
            #[expect(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "checked integral, non-negative and below 2^53 just above"
            )]
            m.serialize_entry("Count", &(count as u64))?;
        } else {
            m.serialize_entry("Count", &count)?;
        }
        m.serialize_entry("Sum", &self.0.sum)?;
        SerializeMap::end(m)
    }
}

/// The dimension sets of a group that the record satisfies, de-duplicated.
fn satisfied(record: &Record, g: &Group) -> Vec<&'static [&'static str]> {
    let mut sets: Vec<&'static [&'static str]> = Vec::new();
    for (i, &set) in g.sets.iter().enumerate() {
        if g.dropped & (1 << i) == 0 && set.iter().all(|d| record.attribute(d).is_some()) && !sets.contains(&set) {
            sets.push(set);
        }
    }
    sets
}

/// The `CloudWatchMetrics` array: one entry per group with a satisfied dimension set.
struct Directive<'a>(Vec<Entry<'a>>);

impl serde::Serialize for Directive<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for e in &self.0 {
            seq.serialize_element(e)?;
        }
        seq.end()
    }
}

struct Entry<'a> {
    dims: Vec<&'static [&'static str]>,
    metrics: &'a [&'static Declaration],
}

impl serde::Serialize for Entry<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("Namespace", NAMESPACE)?;
        m.serialize_entry("Dimensions", &self.dims)?;
        m.serialize_entry("Metrics", &MetricList(self.metrics))?;
        SerializeMap::end(m)
    }
}

struct MetricList<'a>(&'a [&'static Declaration]);

impl serde::Serialize for MetricList<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for d in self.0 {
            seq.serialize_element(&MetricRef(d))?;
        }
        seq.end()
    }
}

struct MetricRef<'a>(&'a Declaration);

impl serde::Serialize for MetricRef<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A metric without a unit is written as {"Name": …} with no Unit key.
        let with_unit = self.0.unit != Unit::None;
        let mut m = s.serialize_map(Some(if with_unit { 2 } else { 1 }))?;
        m.serialize_entry("Name", self.0.metric)?;
        if with_unit {
            m.serialize_entry("Unit", self.0.unit.as_str())?;
        }
        SerializeMap::end(m)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::metrics::RecordType;

    fn node() -> Record {
        let mut r = Record::new(RecordType::Node, 1_764_300_030_000);
        r.set_attribute("ClusterName", "c");
        r.set_attribute("NodeName", "ip-1");
        r.set_attribute("InstanceId", "i-1");
        r.json_attributes
            .push(("Sources", json!(["cadvisor", "/proc", "pod", "calculated"])));
        r.set_field("node_cpu_utilization", Some(12.5));
        r.set_field("node_cpu_limit", Some(4000.0));
        r.set_field("node_memory_utilization", Some(50.0));
        r.set_field("node_memory_rss", Some(1024.0));
        r
    }

    #[test]
    fn directive_groups_by_dimension_sets() {
        let mut out = vec![];
        encode(
            &node(),
            EmfOptions {
                with_directive: true,
                enhanced: false,
            },
            &mut out,
        );
        assert_eq!(&*out[0].group, "/aws/containerinsights/c/performance");
        assert_eq!(&*out[0].stream, "ip-1");
        let v: Value = serde_json::from_str(&out[0].message.text()).unwrap();
        assert_eq!(v["Type"], "Node");
        assert_eq!(v["Version"], "0");
        assert_eq!(v["Timestamp"], "1764300030000");
        assert_eq!(v["node_cpu_limit"], json!(4000), "integers stay integers");
        assert!(v["node_cpu_limit"].is_u64());
        assert_eq!(v["node_memory_rss"], json!(1024));
        assert_eq!(v["Sources"][1], "/proc");
        let cwm = v["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(cwm.len(), 2, "{cwm:?}");
        assert_eq!(cwm[0]["Namespace"], "ContainerInsights");
        assert_eq!(
            cwm[0]["Dimensions"],
            json!([["ClusterName", "InstanceId", "NodeName"], ["ClusterName"]])
        );
        assert_eq!(
            cwm[0]["Metrics"],
            json!([{"Name": "node_cpu_utilization", "Unit": "Percent"}, {"Name": "node_memory_utilization", "Unit": "Percent"}])
        );
        assert_eq!(cwm[1]["Dimensions"], json!([["ClusterName"]]));
        assert_eq!(
            cwm[1]["Metrics"],
            json!([{"Name": "node_cpu_limit"}]),
            "no Unit key for millicores"
        );
    }

    #[test]
    fn both_mode_has_no_directive_and_enhanced_drops_undeclared_records() {
        let mut out = vec![];
        encode(
            &node(),
            EmfOptions {
                with_directive: false,
                enhanced: false,
            },
            &mut out,
        );
        let v: Value = serde_json::from_str(&out[0].message.text()).unwrap();
        assert!(v.get("CloudWatchMetrics").is_none());
        assert_eq!(v["node_cpu_utilization"], json!(12.5));

        let mut net = Record::new(RecordType::NodeNet, 1);
        net.set_attribute("ClusterName", "c");
        net.set_field("node_interface_network_rx_bytes", Some(10.0));
        out.clear();
        encode(
            &net,
            EmfOptions {
                with_directive: true,
                enhanced: false,
            },
            &mut out,
        );
        assert_eq!(out.len(), 1, "standard mode keeps log-only records");
        let v: Value = serde_json::from_str(&out[0].message.text()).unwrap();
        assert!(
            v.get("CloudWatchMetrics").is_none(),
            "no declared metric ⇒ no directive"
        );
        out.clear();
        encode(
            &net,
            EmfOptions {
                with_directive: true,
                enhanced: true,
            },
            &mut out,
        );
        assert!(out.is_empty(), "[E] drops records with no declared metric");
    }
}
