//! The leader's `ControlPlane` records (enhanced observability) from its scrapes of the
//! apiserver's `/metrics`: interval deltas of the counters and histograms, gauges as they are,
//! rolled up to the labels the declarations use.
//!
//! Upstream (the CloudWatch agent) sends one EMF value per Prometheus series; CloudWatch then
//! aggregates the series that share a dimension set (every `apiserver_request_total` series of
//! one `code` and `verb`, whatever its `resource`, `scope` or `component`). kinsight rolls them
//! up before sending: one statistic set per dimension values (`SampleCount` = the series,
//! `Sum`, `Minimum`, `Maximum` of their values) carries exactly what the separate values would
//! — every CloudWatch statistic of the metric comes out the same — in a fraction of the datums
//! and events. A group of one series is sent as a plain value.
//!
//! - Counters: the increase since this instance's previous scrape; a decrease is a restart of
//!   the apiserver, and the value itself is the increase (upstream's delta calculator does the
//!   same). The first scrape of an instance sends nothing.
//! - Histograms: the interval's observations as a statistic set: the `_count` and `_sum`
//!   deltas, with `Minimum` and `Maximum` the bounds of the lowest and highest buckets that
//!   received observations (Prometheus histograms keep no min or max; upstream sends 0 for
//!   both). An interval without observations sends nothing: a set of no samples says nothing.
//! - Gauges: as scraped.
//! - `apiserver_request_total_5xx`: the `apiserver_request_total` series with a `5xx` code, as
//!   upstream's metrics-transform rule derives it.
//!
//! The apiserver behind the `kubernetes` Service is several instances (two or more on EKS), each
//! with its own counters. Deltas are kept per instance (told apart by its
//! `process_start_time_seconds`), so answering from another instance never makes a delta of
//! two unrelated counters.

use std::collections::HashMap;
use std::sync::Arc;

use crate::kube::{ControlPlaneScrape, Series, SeriesValue};

use super::super::declare;
use super::super::record::{Record, RecordType, StatisticSet};

/// Instances whose previous values are kept (EKS runs two or three apiservers).
const MAX_INSTANCES: usize = 4;

/// Previous cumulative values of one series.
#[derive(Debug, Clone)]
enum Previous {
    Counter(f64),
    Histogram {
        count: f64,
        sum: f64,
        buckets: Vec<(f64, f64)>,
    },
}

#[derive(Debug, Default)]
struct Instance {
    /// The scrape that last used it, for eviction.
    last_seq: u64,
    previous: HashMap<u64, Previous>,
}

/// The state across scrapes; lives in the metrics collector.
#[derive(Debug, Default)]
pub struct ControlPlane {
    /// The last scrape turned into records: each is used once.
    last_seq: Option<u64>,
    instances: HashMap<u64, Instance>,
}

/// Values of one dimension group: (metric, declared labels and their values).
type GroupKey = (&'static str, Vec<(&'static str, Arc<str>)>);

impl ControlPlane {
    pub fn new() -> Self {
        ControlPlane::default()
    }

    /// The records of `scrape`, once per scrape (an interval without a new scrape has none).
    /// `node` is this tick's Node record: its `ClusterName`, `NodeName` and time are copied.
    pub fn records(&mut self, scrape: &ControlPlaneScrape, node: &Record) -> Vec<Record> {
        if self.last_seq == Some(scrape.seq) {
            return Vec::new();
        }
        self.last_seq = Some(scrape.seq);
        if !self.instances.contains_key(&scrape.instance) && self.instances.len() >= MAX_INSTANCES {
            let oldest = self.instances.iter().min_by_key(|(_, i)| i.last_seq).map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.instances.remove(&k);
            }
        }
        let instance = self.instances.entry(scrape.instance).or_default();
        instance.last_seq = scrape.seq;
        let mut previous = HashMap::with_capacity(scrape.series.len());
        let mut groups: HashMap<GroupKey, (StatisticSet, bool)> = HashMap::new();
        for series in &scrape.series {
            let (value, plain) = interval_value(series, instance.previous.get(&series.key));
            remember(series, &mut previous);
            let Some(value) = value else { continue };
            add(&mut groups, series.family, series, value, plain);
            if series.family == "apiserver_request_total" && label(series, "code").is_some_and(|c| c.starts_with('5')) {
                add(&mut groups, "apiserver_request_total_5xx", series, value, plain);
            }
        }
        instance.previous = previous;
        build(groups, node)
    }
}

fn label<'a>(series: &'a Series, name: &str) -> Option<&'a str> {
    series.labels.iter().find(|(k, _)| *k == name).map(|(_, v)| &**v)
}

fn remember(series: &Series, previous: &mut HashMap<u64, Previous>) {
    let p = match &series.value {
        SeriesValue::Counter(v) => Previous::Counter(*v),
        SeriesValue::Histogram { count, sum, buckets } => Previous::Histogram {
            count: *count,
            sum: *sum,
            buckets: buckets.clone(),
        },
        SeriesValue::Gauge(_) => return,
    };
    previous.insert(series.key, p);
}

/// The series' value for this interval, and whether it is a single plain value (`false`: a
/// histogram's statistic set). `None`: nothing to send (first scrape, no observations).
fn interval_value(series: &Series, previous: Option<&Previous>) -> (Option<StatisticSet>, bool) {
    match (&series.value, previous) {
        (SeriesValue::Gauge(v), _) => (Some(StatisticSet::single(*v)), true),
        (SeriesValue::Counter(v), Some(Previous::Counter(p))) => {
            let delta = if v >= p { v - p } else { *v };
            (Some(StatisticSet::single(delta)), true)
        }
        (
            SeriesValue::Histogram { count, sum, buckets },
            Some(Previous::Histogram {
                count: pc,
                sum: ps,
                buckets: pb,
            }),
        ) => {
            let restarted = count < pc;
            let (dc, ds) = if restarted {
                (*count, *sum)
            } else {
                (count - pc, sum - ps)
            };
            if dc <= 0.0 {
                return (None, false);
            }
            let delta_buckets: Vec<(f64, f64)> = buckets
                .iter()
                .map(|&(le, c)| {
                    let before = if restarted {
                        0.0
                    } else {
                        pb.iter()
                            .find(|(l, _)| l.total_cmp(&le).is_eq())
                            .map_or(0.0, |(_, c)| *c)
                    };
                    (le, c - before)
                })
                .collect();
            (Some(histogram_set(dc, ds, &delta_buckets)), false)
        }
        _ => (None, true),
    }
}

/// A statistic set of `count` observations summing to `sum`, whose cumulative bucket counts
/// (by increasing `le`) increased by `buckets` in the interval.
fn histogram_set(count: f64, sum: f64, buckets: &[(f64, f64)]) -> StatisticSet {
    let mean = sum / count;
    // Lowest bucket with observations: its lower bound is the previous bucket's `le` (0 for the
    // first: these are durations and sizes).
    let mut below = 0.0;
    let mut low = None;
    let mut high = None;
    let mut last_count = 0.0;
    let mut last_le: f64 = 0.0;
    for &(le, cumulative) in buckets {
        if cumulative > last_count {
            if low.is_none() {
                low = Some(below);
            }
            // The +Inf bucket has no upper bound: the largest finite bound is the best known.
            high = Some(if le.is_finite() { le } else { last_le.max(mean) });
        }
        last_count = last_count.max(cumulative);
        if le.is_finite() {
            below = le;
            last_le = le;
        }
    }
    let (minimum, maximum) = (low.unwrap_or(mean), high.unwrap_or(mean));
    // Bucket bounds and the mean always satisfy min ≤ mean ≤ max in real data; with counters
    // read a moment apart they may not, and a set whose mean lies outside its bounds is nonsense.
    StatisticSet {
        sample_count: count,
        sum,
        minimum: minimum.min(mean),
        maximum: maximum.max(mean),
    }
}

fn add(
    groups: &mut HashMap<GroupKey, (StatisticSet, bool)>,
    metric: &'static str,
    series: &Series,
    value: StatisticSet,
    plain: bool,
) {
    let Some(decl) = declare::lookup(true, RecordType::ControlPlane, metric) else {
        return;
    };
    // Only the labels of its dimension sets tell its groups apart.
    let labels: Vec<(&'static str, Arc<str>)> = series
        .labels
        .iter()
        .filter(|(k, _)| decl.sets.iter().any(|s| s.contains(k)))
        .cloned()
        .collect();
    groups
        .entry((decl.metric, labels))
        .and_modify(|(s, single)| {
            s.merge(&value);
            *single = false;
        })
        .or_insert((value, plain));
}

/// One record per distinct label set, holding every metric of that set.
fn build(groups: HashMap<GroupKey, (StatisticSet, bool)>, node: &Record) -> Vec<Record> {
    let mut by_labels: HashMap<Vec<(&'static str, Arc<str>)>, Record> = HashMap::new();
    for ((metric, labels), (stats, single)) in groups {
        let record = by_labels.entry(labels.clone()).or_insert_with(|| {
            let mut r = super::cluster::leader_record(RecordType::ControlPlane, node);
            for (k, v) in &labels {
                r.set_attribute(k, v.clone());
            }
            r
        });
        if single {
            record.set_field(metric, Some(stats.sum));
        } else {
            record.set_stats(metric, stats);
        }
    }
    let mut out: Vec<Record> = by_labels.into_values().collect();
    // A stable order: by attributes, then every record's fields by name.
    for r in &mut out {
        r.fields.sort_by(|a, b| a.0.cmp(b.0));
        r.stats.sort_by(|a, b| a.0.cmp(b.0));
    }
    out.sort_by(|a, b| a.attributes.cmp(&b.attributes));
    out
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "sums of small integers, exact in f64")]
mod tests {
    use super::*;
    use crate::kube::parse_control_plane;

    fn node() -> Record {
        let mut n = Record::new(RecordType::Node, 1_700_000_000_000);
        n.set_attribute("ClusterName", "c");
        n.set_attribute("NodeName", "ip-10-0-0-1");
        n.set_attribute("InstanceId", "i-1");
        n
    }

    fn scrape(seq: u64, requests: [f64; 3], hist: [f64; 4], sum: f64, objects: f64) -> ControlPlaneScrape {
        let [pods_get_200, nodes_get_200, pods_get_503] = requests;
        let [b1, b2, b3, count] = hist;
        let text = format!(
            r#"# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.7e9
# TYPE apiserver_request_total counter
apiserver_request_total{{code="200",component="apiserver",resource="pods",scope="namespace",verb="GET"}} {pods_get_200}
apiserver_request_total{{code="200",component="apiserver",resource="nodes",scope="cluster",verb="GET"}} {nodes_get_200}
apiserver_request_total{{code="503",component="apiserver",resource="pods",scope="namespace",verb="GET"}} {pods_get_503}
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{{resource="pods",verb="LIST",le="0.05"}} {b1}
apiserver_request_duration_seconds_bucket{{resource="pods",verb="LIST",le="0.5"}} {b2}
apiserver_request_duration_seconds_bucket{{resource="pods",verb="LIST",le="1"}} {b3}
apiserver_request_duration_seconds_bucket{{resource="pods",verb="LIST",le="+Inf"}} {count}
apiserver_request_duration_seconds_sum{{resource="pods",verb="LIST"}} {sum}
apiserver_request_duration_seconds_count{{resource="pods",verb="LIST"}} {count}
# TYPE apiserver_storage_objects gauge
apiserver_storage_objects{{resource="pods"}} {objects}
apiserver_storage_objects{{resource="nodes"}} 3
"#
        );
        parse_control_plane(&text, seq)
    }

    fn find<'a>(records: &'a [Record], attrs: &[(&str, &str)]) -> &'a Record {
        records
            .iter()
            .find(|r| {
                let own: Vec<(&str, &str)> = r
                    .attributes
                    .iter()
                    .filter(|(k, _)| !["ClusterName", "NodeName"].contains(k))
                    .map(|(k, v)| (*k, &**v))
                    .collect();
                own == attrs
            })
            .unwrap_or_else(|| panic!("no record with {attrs:?} in {records:#?}"))
    }

    #[test]
    fn the_first_scrape_sends_gauges_only_and_the_second_the_deltas() {
        let mut cp = ControlPlane::new();
        let first = cp.records(
            &scrape(1, [100.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 4000.0),
            &node(),
        );
        let kinds: Vec<_> = first.iter().flat_map(|r| r.fields.iter().map(|f| f.0)).collect();
        assert_eq!(kinds, ["apiserver_storage_objects", "apiserver_storage_objects"]);
        assert!(first.iter().all(|r| r.stats.is_empty()));
        // The same scrape again makes nothing.
        let again = cp.records(&scrape(1, [0.0; 3], [0.0; 4], 0.0, 0.0), &node());
        assert!(again.is_empty());

        // 60 more pod GETs, 20 more node GETs, 3 more 503s; 30 LISTs: 10 ≤ 0.05 s, 15 in
        // (0.05, 0.5], 5 in (0.5, 1], none above; their durations sum to 4.5 s.
        let second = cp.records(
            &scrape(2, [160.0, 60.0, 5.0], [15.0, 34.0, 40.0, 40.0], 6.5, 4100.0),
            &node(),
        );
        // code=200, verb=GET: two series (pods, nodes) rolled up: 60 + 20 in 2 samples.
        let ok = find(&second, &[("code", "200"), ("verb", "GET")]);
        assert_eq!(
            ok.stats,
            [(
                "apiserver_request_total",
                StatisticSet {
                    sample_count: 2.0,
                    sum: 80.0,
                    minimum: 20.0,
                    maximum: 60.0
                }
            )]
        );
        // code=503: one series, a plain value, in both the total and the derived 5xx metric.
        let failed = find(&second, &[("code", "503"), ("verb", "GET")]);
        assert_eq!(
            failed.fields,
            [("apiserver_request_total", 3.0), ("apiserver_request_total_5xx", 3.0)]
        );
        let lists = find(&second, &[("verb", "LIST")]);
        assert_eq!(
            lists.stats,
            [(
                "apiserver_request_duration_seconds",
                StatisticSet {
                    sample_count: 30.0,
                    sum: 4.5,
                    minimum: 0.0,
                    maximum: 1.0
                }
            )]
        );
        assert_eq!(lists.attribute("ClusterName"), Some("c"));
        assert_eq!(lists.kind, RecordType::ControlPlane);
        let pods = find(&second, &[("resource", "pods")]);
        assert_eq!(pods.fields, [("apiserver_storage_objects", 4100.0)]);
    }

    #[test]
    fn a_restarted_apiserver_counts_from_zero_and_quiet_histograms_send_nothing() {
        let mut cp = ControlPlane::new();
        cp.records(
            &scrape(1, [100.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 1.0),
            &node(),
        );
        // Counters went down: a restart; the value is the increase since it. The histogram did
        // not move: no observations, no set.
        let after = cp.records(&scrape(2, [7.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 1.0), &node());
        let ok = find(&after, &[("code", "200"), ("verb", "GET")]);
        assert_eq!(ok.stats[0].1.sum, 7.0);
        assert!(
            after
                .iter()
                .all(|r| r.stats.iter().all(|(m, _)| *m != "apiserver_request_duration_seconds"))
        );
    }

    #[test]
    fn another_instance_is_never_subtracted_from_the_first() {
        let mut cp = ControlPlane::new();
        let other = |seq| {
            let mut s = scrape(seq, [10.0, 10.0, 0.0], [1.0, 1.0, 1.0, 1.0], 0.01, 1.0);
            s.instance = 42;
            s
        };
        cp.records(
            &scrape(1, [100.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 1.0),
            &node(),
        );
        // Another apiserver answers: its first scrape, no deltas (not 10 - 100).
        let b = cp.records(&other(2), &node());
        assert!(
            b.iter()
                .all(|r| r.stats.is_empty() && r.fields.iter().all(|f| f.0 == "apiserver_storage_objects"))
        );
        // The first answers again: deltas against its own previous values.
        let a = cp.records(
            &scrape(3, [110.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 1.0),
            &node(),
        );
        let ok = find(&a, &[("code", "200"), ("verb", "GET")]);
        assert_eq!(ok.stats[0].1.sum, 10.0);
    }

    #[test]
    fn observations_above_every_bound_keep_the_mean_inside_the_set() {
        let s = histogram_set(2.0, 30.0, &[(0.5, 0.0), (1.0, 0.0), (f64::INFINITY, 2.0)]);
        assert_eq!((s.minimum, s.maximum), (1.0, 15.0));
        assert!(s.is_valid());
    }

    #[test]
    fn the_scraped_families_and_labels_are_exactly_what_the_declarations_use() {
        use std::collections::BTreeSet;
        let declared: Vec<&declare::Declaration> = declare::table(true)
            .iter()
            .filter(|d| d.record == RecordType::ControlPlane)
            .collect();
        let names: BTreeSet<&str> = declared
            .iter()
            .map(|d| d.metric)
            .filter(|m| *m != "apiserver_request_total_5xx")
            .collect();
        let scraped: BTreeSet<&str> = crate::kube::CONTROL_PLANE_FAMILIES.iter().copied().collect();
        assert_eq!(names, scraped);
        let labels: BTreeSet<&str> = declared
            .iter()
            .flat_map(|d| d.sets.iter().flat_map(|s| s.iter().copied()))
            .filter(|l| *l != "ClusterName")
            .collect();
        let kept: BTreeSet<&str> = crate::kube::CONTROL_PLANE_LABELS.iter().copied().collect();
        assert_eq!(labels, kept);
    }

    #[test]
    fn statistic_sets_become_statistic_datums_and_emf_statistic_values() {
        use crate::metrics::encode::{datum, emf};
        let mut cp = ControlPlane::new();
        cp.records(
            &scrape(1, [100.0, 40.0, 2.0], [5.0, 9.0, 10.0, 10.0], 2.0, 1.0),
            &node(),
        );
        let records = cp.records(
            &scrape(2, [160.0, 60.0, 5.0], [15.0, 34.0, 40.0, 40.0], 6.5, 1.0),
            &node(),
        );
        let ok = find(&records, &[("code", "200"), ("verb", "GET")]);
        let mut datums = Vec::new();
        datum::encode(ok, true, &mut datums);
        let sets: Vec<Vec<&str>> = datums
            .iter()
            .map(|d| d.dimensions.iter().map(|(k, _)| *k).collect())
            .collect();
        assert_eq!(sets, [vec!["ClusterName", "code", "verb"], vec!["ClusterName"]]);
        for d in &datums {
            assert_eq!(d.metric_name, "apiserver_request_total");
            assert_eq!(d.unit, datum::Unit::Count);
            let s = d.stats.as_deref().expect("a statistic set");
            assert_eq!((s.sample_count, s.sum, s.minimum, s.maximum), (2.0, 80.0, 20.0, 60.0));
        }
        // Not declared in standard mode: nothing.
        datums.clear();
        datum::encode(ok, false, &mut datums);
        assert!(datums.is_empty());

        let mut events = Vec::new();
        let opts = emf::EmfOptions {
            with_directive: true,
            enhanced: true,
        };
        emf::encode(ok, opts, &mut events);
        let v: serde_json::Value = serde_json::from_str(&events[0].message.text()).unwrap();
        assert_eq!(v["Type"], "ControlPlane");
        assert_eq!(
            v["apiserver_request_total"],
            serde_json::json!({"Max": 60.0, "Min": 20.0, "Count": 2, "Sum": 80.0})
        );
        assert_eq!(
            v["CloudWatchMetrics"][0]["Dimensions"],
            serde_json::json!([["ClusterName", "code", "verb"], ["ClusterName"]])
        );
        assert_eq!(
            v["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([{"Name": "apiserver_request_total", "Unit": "Count"}])
        );
        let lists = find(&records, &[("verb", "LIST")]);
        events.clear();
        emf::encode(lists, opts, &mut events);
        let v: serde_json::Value = serde_json::from_str(&events[0].message.text()).unwrap();
        assert_eq!(
            v["CloudWatchMetrics"][0]["Metrics"],
            serde_json::json!([{"Name": "apiserver_request_duration_seconds", "Unit": "Seconds"}])
        );
    }
}
