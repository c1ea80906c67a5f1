//! The leader's control-plane scrape: the apiserver's own `/metrics` (Prometheus text), reduced
//! to the families Container Insights declares, for the enhanced `ControlPlane` records.
//!
//! As the CloudWatch agent (`internal/k8sapiserver/prometheus_scraper.go` in
//! amazon-contributing/opentelemetry-collector-contrib): only the leader scrapes, once an
//! interval, through the in-cluster apiserver address with the agent's ServiceAccount token
//! (RBAC: `nonResourceURLs: ["/metrics"]`, verb `get`), and an allow-list keeps the families the
//! dashboards use. Counters and histograms stay cumulative here; `metrics` turns them into
//! interval deltas.
//!
//! The response of a large cluster's apiserver is tens of megabytes, almost all of it families
//! nobody asked for. It is read as a stream, line by line: a line of another family is dropped as
//! it arrives, and each allowed family is parsed (by the `prometheus-parse` crate) and reduced on
//! its own, so memory holds one family's lines at a time, never the whole body.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use http_body_util::BodyExt as _;
use kube::Client;
use prometheus_parse::{Scrape, Value};

/// The families scraped: the names upstream declares (`getControlPlaneMetricDeclarations` in the
/// CloudWatch agent's `translator/translate/otel/exporter/awsemf/kubernetes.go`).
/// `apiserver_storage_db_total_size_in_bytes` is the name apiservers before Kubernetes 1.28 use
/// for `apiserver_storage_size_bytes`; a cluster exports one or the other.
/// `apiserver_request_total_5xx` is derived from `apiserver_request_total`.
pub const FAMILIES: &[&str] = &[
    "apiserver_admission_controller_admission_duration_seconds",
    "apiserver_admission_step_admission_duration_seconds",
    "apiserver_admission_webhook_admission_duration_seconds",
    "apiserver_current_inflight_requests",
    "apiserver_current_inqueue_requests",
    "apiserver_flowcontrol_rejected_requests_total",
    "apiserver_flowcontrol_request_concurrency_limit",
    "apiserver_longrunning_requests",
    "apiserver_request_duration_seconds",
    "apiserver_request_total",
    "apiserver_requested_deprecated_apis",
    "apiserver_storage_list_duration_seconds",
    "apiserver_storage_db_total_size_in_bytes",
    "apiserver_storage_objects",
    "apiserver_storage_size_bytes",
    "etcd_db_total_size_in_bytes",
    "etcd_request_duration_seconds",
    "rest_client_request_duration_seconds",
    "rest_client_requests_total",
];

/// The Prometheus labels kept on a series: every label a control-plane dimension set names.
/// The others (`scope`, `component`, `subresource`, `le` …) only tell series apart, which the
/// series key does.
pub const KEPT_LABELS: &[&str] = &[
    "code",
    "endpoint",
    "group",
    "method",
    "name",
    "operation",
    "priority_level",
    "reason",
    "request_kind",
    "resource",
    "verb",
];

/// The apiserver process start time, which tells apart the instances behind the `kubernetes`
/// Service (EKS runs at least two): their counters are unrelated.
const INSTANCE_FAMILY: &str = "process_start_time_seconds";

/// A response larger than this is abandoned: a real apiserver's is tens of megabytes.
const MAX_BODY_BYTES: usize = 256 << 20;
/// A line longer than this is skipped (a label value gone wrong), not buffered further.
const MAX_LINE_BYTES: usize = 64 << 10;

/// One scrape, cumulative as the apiserver reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlPlaneScrape {
    /// Bumped by every scrape of this agent: each is turned into records once.
    pub seq: u64,
    /// `process_start_time_seconds` of the instance that answered (its bits), 0 if absent.
    pub instance: u64,
    pub series: Vec<Series>,
}

/// One series of an allowed family.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The family, one of [`FAMILIES`].
    pub family: &'static str,
    /// A hash of the family and all its labels: the series' identity across scrapes.
    pub key: u64,
    /// The [`KEPT_LABELS`] it has, in that order.
    pub labels: Vec<(&'static str, Arc<str>)>,
    pub value: SeriesValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SeriesValue {
    Counter(f64),
    /// Gauges, and untyped samples.
    Gauge(f64),
    /// Cumulative: observations, their sum, and `(le, cumulative count)` by increasing `le`
    /// (the last one `+Inf`).
    Histogram {
        count: f64,
        sum: f64,
        buckets: Vec<(f64, f64)>,
    },
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error(
        "the apiserver refused GET /metrics (HTTP 403): the ClusterRole needs nonResourceURLs [\"/metrics\"], verb get"
    )]
    Forbidden,
    #[error("GET /metrics answered HTTP {0}")]
    Status(u16),
    #[error("GET /metrics failed: {0}")]
    Request(#[source] kube::Error),
    #[error("reading the /metrics response failed: {0}")]
    Body(String),
    #[error("the /metrics response is larger than {} MiB", MAX_BODY_BYTES >> 20)]
    TooLarge,
}

/// Scrapes `/metrics` through `client`.
pub async fn scrape(client: &Client, seq: u64) -> Result<ControlPlaneScrape, ScrapeError> {
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::ACCEPT, "text/plain;version=0.0.4")
        .body(kube::client::Body::empty())
        .map_err(|e| ScrapeError::Body(e.to_string()))?;
    let response = client.send(request).await.map_err(ScrapeError::Request)?;
    match response.status().as_u16() {
        200 => {}
        403 => return Err(ScrapeError::Forbidden),
        other => return Err(ScrapeError::Status(other)),
    }
    let mut body = response.into_body();
    let mut reader = Reader::new(seq);
    let mut carry: Vec<u8> = Vec::new();
    let mut total = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ScrapeError::Body(crate::telemetry::chain(&e)))?;
        let Ok(data) = frame.into_data() else { continue };
        total += data.len();
        if total > MAX_BODY_BYTES {
            return Err(ScrapeError::TooLarge);
        }
        let mut rest: &[u8] = &data;
        while let Some(nl) = memchr::memchr(b'\n', rest) {
            if carry.is_empty() {
                reader.line(&rest[..nl]);
            } else {
                carry.extend_from_slice(&rest[..nl]);
                reader.line(&carry);
                carry.clear();
            }
            rest = &rest[nl + 1..];
        }
        if carry.len() + rest.len() <= MAX_LINE_BYTES {
            carry.extend_from_slice(rest);
        } else {
            // Dropped whole: the tail of this line arrives with the next frame and is not a
            // line of its own — mark the carry as poisoned until the newline.
            reader.overlong += 1;
            carry.clear();
            carry.extend_from_slice(b"#");
        }
    }
    if !carry.is_empty() {
        reader.line(&carry);
    }
    Ok(reader.finish())
}

/// Parses a whole exposition at once (tests, fixtures).
pub fn parse_text(text: &str, seq: u64) -> ControlPlaneScrape {
    let mut reader = Reader::new(seq);
    for line in text.lines() {
        reader.line(line.as_bytes());
    }
    reader.finish()
}

/// The streaming reduction: one family's lines at a time go to the parser.
struct Reader {
    seq: u64,
    instance: u64,
    series: Vec<Series>,
    /// The family whose lines are being gathered, its `# TYPE` line, and the lines.
    family: Option<&'static str>,
    type_lines: HashMap<&'static str, String>,
    lines: Vec<String>,
    /// Histogram series by key → position in `series`, and the `_sum` / `_count` samples seen
    /// (joined at the end: a family split in two parts may bring them in another part).
    histograms: HashMap<u64, usize>,
    sums: Vec<(u64, f64, bool)>,
    overlong: u64,
}

impl Reader {
    fn new(seq: u64) -> Reader {
        Reader {
            seq,
            instance: 0,
            series: Vec::new(),
            family: None,
            type_lines: HashMap::new(),
            lines: Vec::new(),
            histograms: HashMap::new(),
            sums: Vec::new(),
            overlong: 0,
        }
    }

    fn line(&mut self, raw: &[u8]) {
        // Invalid UTF-8 cannot be a line of an allowed family: names and label values of the
        // families kept are ASCII.
        let Ok(line) = std::str::from_utf8(raw) else { return };
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split_whitespace().next().unwrap_or_default();
            if let Some(family) = allowed(name) {
                self.switch_to(family);
                self.type_lines.insert(family, line.to_string());
                self.lines.push(line.to_string());
            }
            return;
        }
        if line.starts_with('#') || line.is_empty() {
            return;
        }
        let name_end = line.find(['{', ' ', '\t']).unwrap_or(line.len());
        let name = &line[..name_end];
        if name == INSTANCE_FAMILY {
            if let Some(v) = line[name_end..]
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
            {
                self.instance = v.to_bits();
            }
            return;
        }
        let Some(family) = family_of_sample(name) else { return };
        if self.family != Some(family) {
            self.switch_to(family);
            // A family split in two parts keeps its type.
            if let Some(t) = self.type_lines.get(family) {
                self.lines.push(t.clone());
            }
        }
        self.lines.push(line.to_string());
    }

    fn switch_to(&mut self, family: &'static str) {
        if self.family != Some(family) {
            self.flush();
            self.family = Some(family);
        }
    }

    /// Parses and reduces the gathered family.
    fn flush(&mut self) {
        let Some(family) = self.family.take() else { return };
        let lines = std::mem::take(&mut self.lines);
        let Ok(scrape) = Scrape::parse(lines.into_iter().map(Ok)) else {
            return;
        };
        // Histograms arrive as a bucket sample plus `_sum` and `_count` samples with the same
        // labels: joined by their label hash in `finish`.
        for s in scrape.samples {
            let labels: Vec<(&str, &str)> = sorted_labels(&s.labels);
            let key = series_key(family, &labels);
            let value = match s.value {
                Value::Counter(v) => SeriesValue::Counter(v),
                Value::Gauge(v) | Value::Untyped(v) if s.metric == family => SeriesValue::Gauge(v),
                Value::Untyped(v) | Value::Gauge(v) => {
                    if s.metric.ends_with("_sum") {
                        self.sums.push((key, v, true));
                    } else if s.metric.ends_with("_count") {
                        self.sums.push((key, v, false));
                    }
                    continue;
                }
                Value::Histogram(buckets) => {
                    let mut buckets: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
                    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                    let count = buckets.last().map_or(0.0, |b| b.1);
                    self.histograms.insert(key, self.series.len());
                    SeriesValue::Histogram {
                        count,
                        sum: 0.0,
                        buckets,
                    }
                }
                Value::Summary(_) => continue,
            };
            let kept = KEPT_LABELS
                .iter()
                .filter_map(|&k| labels.iter().find(|(n, _)| *n == k).map(|(_, v)| (k, Arc::from(*v))))
                .collect();
            self.series.push(Series {
                family,
                key,
                labels: kept,
                value,
            });
        }
    }

    fn finish(mut self) -> ControlPlaneScrape {
        self.flush();
        for &(key, v, is_sum) in &self.sums {
            let Some(&i) = self.histograms.get(&key) else { continue };
            if let SeriesValue::Histogram { count, sum, .. } = &mut self.series[i].value {
                if is_sum {
                    *sum = v;
                } else {
                    *count = v;
                }
            }
        }
        if self.overlong > 0 {
            tracing::debug!(lines = self.overlong, "control plane: overlong /metrics lines skipped");
        }
        ControlPlaneScrape {
            seq: self.seq,
            instance: self.instance,
            series: self.series,
        }
    }
}

/// The allowed family named `name`, as a `&'static str`.
fn allowed(name: &str) -> Option<&'static str> {
    FAMILIES.iter().copied().find(|f| *f == name)
}

/// The allowed family a sample belongs to: its own name, or a histogram's `_bucket`, `_sum` and
/// `_count` samples.
fn family_of_sample(name: &str) -> Option<&'static str> {
    allowed(name).or_else(|| {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix).and_then(allowed))
    })
}

fn sorted_labels(labels: &prometheus_parse::Labels) -> Vec<(&str, &str)> {
    let mut v: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    v.sort_unstable();
    v
}

fn series_key(family: &str, labels: &[(&str, &str)]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    family.hash(&mut h);
    labels.hash(&mut h);
    h.finish()
}

#[cfg(test)]
#[allow(clippy::float_cmp, reason = "values parsed from the same text")]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP apiserver_request_total [STABLE] Counter of apiserver requests
# TYPE apiserver_request_total counter
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 120
apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="nodes",scope="cluster",subresource="",verb="LIST",version="v1"} 30
apiserver_request_total{code="503",component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="GET",version="v1"} 2
# HELP go_goroutines Number of goroutines
# TYPE go_goroutines gauge
go_goroutines 1234
# TYPE process_start_time_seconds gauge
process_start_time_seconds 1.70000001e+09
# TYPE apiserver_request_duration_seconds histogram
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1",le="0.005"} 10
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1",le="0.1"} 90
apiserver_request_duration_seconds_bucket{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1",le="+Inf"} 100
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 4.5
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="",resource="pods",scope="namespace",subresource="",verb="LIST",version="v1"} 100
# TYPE apiserver_storage_objects gauge
apiserver_storage_objects{resource="pods"} 4000
"#;

    #[test]
    fn keeps_allowed_families_with_their_types_and_kept_labels() {
        let s = parse_text(TEXT, 7);
        assert_eq!(s.seq, 7);
        assert_eq!(s.instance, 1.700_000_01e9_f64.to_bits());
        let families: Vec<&str> = s.series.iter().map(|x| x.family).collect();
        assert_eq!(
            families,
            [
                "apiserver_request_total",
                "apiserver_request_total",
                "apiserver_request_total",
                "apiserver_request_duration_seconds",
                "apiserver_storage_objects"
            ]
        );
        let first = &s.series[0];
        assert_eq!(first.value, SeriesValue::Counter(120.0));
        let names: Vec<&str> = first.labels.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["code", "group", "resource", "verb"]);
        assert_ne!(s.series[0].key, s.series[1].key, "series with other labels differ");
        match &s.series[3].value {
            SeriesValue::Histogram { count, sum, buckets } => {
                assert_eq!((*count, *sum), (100.0, 4.5));
                assert_eq!(buckets, &[(0.005, 10.0), (0.1, 90.0), (f64::INFINITY, 100.0)]);
            }
            other => panic!("not a histogram: {other:?}"),
        }
        assert_eq!(s.series[4].value, SeriesValue::Gauge(4000.0));
    }

    #[test]
    fn keys_are_stable_across_scrapes_and_line_order() {
        let a = parse_text(TEXT, 1);
        let reordered: String = {
            let mut lines: Vec<&str> = TEXT.lines().collect();
            lines.swap(2, 4);
            lines.join("\n")
        };
        let b = parse_text(&reordered, 2);
        let keys = |s: &ControlPlaneScrape| {
            let mut k: Vec<u64> = s.series.iter().map(|x| x.key).collect();
            k.sort_unstable();
            k
        };
        assert_eq!(keys(&a), keys(&b));
    }

    #[test]
    fn garbage_and_unknown_families_are_skipped_without_panic() {
        let text = "apiserver_request_total{code=\"200\" 12\n\
                    apiserver_request_total not-a-number\n\
                    # TYPE apiserver_request_total counter\n\
                    \u{0}\u{1}\n\
                    some_other_metric 3\n\
                    apiserver_request_total{code=\"200\",verb=\"GET\"} 5\n";
        let s = parse_text(text, 1);
        assert!(
            s.series
                .iter()
                .any(|x| x.value == SeriesValue::Counter(5.0) && x.labels.len() == 2),
            "{s:?}"
        );
        let bytes = [0xffu8, 0xfe, b'\n'];
        let mut r = Reader::new(1);
        r.line(&bytes);
        assert!(r.finish().series.is_empty());
    }

    #[test]
    fn a_family_split_in_two_keeps_its_histogram_type() {
        let text = "# TYPE etcd_request_duration_seconds histogram\n\
            etcd_request_duration_seconds_bucket{operation=\"get\",type=\"pods\",le=\"0.1\"} 3\n\
            etcd_request_duration_seconds_bucket{operation=\"get\",type=\"pods\",le=\"+Inf\"} 4\n\
            apiserver_storage_objects{resource=\"pods\"} 1\n\
            etcd_request_duration_seconds_sum{operation=\"get\",type=\"pods\"} 0.2\n\
            etcd_request_duration_seconds_count{operation=\"get\",type=\"pods\"} 4\n";
        let s = parse_text(text, 1);
        let hist: Vec<&Series> = s
            .series
            .iter()
            .filter(|x| x.family == "etcd_request_duration_seconds")
            .collect();
        assert_eq!(hist.len(), 1, "{s:?}");
        match &hist[0].value {
            SeriesValue::Histogram { count, buckets, .. } => {
                assert_eq!(*count, 4.0);
                assert_eq!(buckets.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }
}
