//! `kinsight cost`: what this node's metrics and logs would cost a month in CloudWatch, for each
//! destination (`put_metric_data`, `emf`, `both`) with enhanced observability off and on, per
//! node and for a cluster of N such nodes.
//!
//! The inputs are measured, not assumed: the collector runs on the node (the same inputs as
//! `run`: config, `--host-root`, pod metadata) for two samples `--interval` apart, in each mode,
//! and its datums and performance events are counted; the log volume is what the node's log
//! files grew by over the same window. The arithmetic (`estimate`) is pure and priced from
//! `kinsight.cost` (the us-east-1 list prices by default).
//!
//! What CloudWatch bills, and how it is counted here:
//! - custom metrics: each distinct metric name and dimension values, per month, in volume tiers
//!   over the whole account. A series whose dimensions name this node or one of its pods or
//!   containers is counted once per node; one with only cluster-wide dimensions (`ClusterName`,
//!   `Namespace`, `Service`) once for the cluster. The same series are billed whichever way they
//!   arrive (datums or an EMF directive); `both` bills them once (its events carry no directive);
//! - `PutMetricData` requests: at most 1,000 datums each (the API limit);
//! - log ingestion: UTF-8 message bytes plus 26 per event (the `PutLogEvents` size rule), per GB
//!   of 2^30 bytes. Performance events in `emf` and `both`; log files in every mode.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MetricDrop, Prices};
use crate::host::{Clock, Root};
use crate::metrics::collect::{Cycle, Produce};
use crate::metrics::encode::datum;
use crate::metrics::encode::emf::{self, EmfOptions};
use crate::telemetry::Telemetry;

use super::{AppError, Loaded, Outside, build, run};

/// Hours in a billing month, as the AWS Pricing Calculator counts them.
pub const HOURS_PER_MONTH: f64 = 730.0;
/// A GB as AWS bills data: 2^30 bytes.
pub const GB: f64 = 1_073_741_824.0;
/// "The maximum number of metric data points in one PutMetricData request is 1,000"
/// (PutMetricData API reference).
const DATUMS_PER_REQUEST: u64 = 1000;
/// `PutLogEvents` counts each event as its message bytes plus 26.
const EVENT_OVERHEAD: u64 = 26;

/// The volume tiers of custom metrics: the first 10,000, the next 240,000, the next 750,000.
const TIER_BOUNDS: [u64; 3] = [10_000, 250_000, 1_000_000];

/// What one interval of one mode (enhanced off or on) sends from this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MetricSample {
    /// Datums (mode `put_metric_data` and `both`).
    pub datums: u64,
    /// Distinct series whose dimensions name this node, its pods or containers.
    pub node_series: u64,
    /// Distinct series with cluster-wide dimensions only.
    pub shared_series: u64,
    /// Performance-event bytes as billed (message + 26 each) with the `CloudWatchMetrics`
    /// directive (mode `emf`) and without it (mode `both`).
    pub emf_bytes: u64,
    pub both_bytes: u64,
}

/// What one log group kind's files grew by during the sampling window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogGrowth {
    /// `application`, `dataplane` or `host`.
    pub group: &'static str,
    pub bytes: u64,
    pub lines: u64,
}

/// Everything the estimate is computed from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inputs {
    pub interval_secs: f64,
    pub standard: MetricSample,
    pub enhanced: MetricSample,
    pub window_secs: f64,
    pub logs: Vec<LogGrowth>,
    pub nodes: u64,
}

/// One destination and mode: monthly dollars for the whole cluster of `nodes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub destination: &'static str,
    pub enhanced: bool,
    /// Custom metrics billed for the cluster.
    pub series: u64,
    pub custom_metrics_usd: f64,
    /// `PutMetricData` requests a month, all nodes.
    pub requests: f64,
    pub requests_usd: f64,
    /// Performance-event ingestion a month, all nodes, GB.
    pub emf_gb: f64,
    pub emf_usd: f64,
    /// The metrics' total, and per node.
    pub total_usd: f64,
    pub per_node_usd: f64,
}

/// Log ingestion of one group kind a month, all nodes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogLine {
    pub group: &'static str,
    pub gb: f64,
    pub usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub nodes: u64,
    pub metrics: Vec<Line>,
    pub logs: Vec<LogLine>,
    /// Log ingestion, all groups, all nodes.
    pub logs_usd: f64,
    pub inputs: Inputs,
    /// With `kinsight.metrics.drop` set: the lines of the full Container Insights set, for the
    /// saving.
    pub without_drop: Option<Vec<Line>>,
}

/// The monthly charge for `series` custom metrics in CloudWatch's volume tiers.
pub fn tiered(series: u64, prices: &[f64; 4]) -> f64 {
    let mut left = series;
    let mut below = 0;
    let mut usd = 0.0;
    for (i, &bound) in TIER_BOUNDS.iter().enumerate() {
        let here = left.min(bound - below);
        usd += here as f64 * prices[i];
        left -= here;
        below = bound;
    }
    usd + left as f64 * prices[3]
}

/// The estimate for `inputs` at `prices`.
pub fn estimate(inputs: &Inputs, prices: &Prices) -> Estimate {
    let n = inputs.nodes.max(1);
    let intervals = HOURS_PER_MONTH * 3600.0 / inputs.interval_secs;
    let mut metrics = Vec::new();
    for (enhanced, s) in [(false, &inputs.standard), (true, &inputs.enhanced)] {
        let series = s.shared_series + n * s.node_series;
        let custom_metrics_usd = tiered(series, &prices.custom_metric_month);
        let requests = s.datums.div_ceil(DATUMS_PER_REQUEST) as f64 * intervals * n as f64;
        for (destination, datums, emf_bytes) in [
            ("put_metric_data", true, 0),
            ("emf", false, s.emf_bytes),
            ("both", true, s.both_bytes),
        ] {
            let requests = if datums { requests } else { 0.0 };
            let requests_usd = requests / 1000.0 * prices.put_metric_data_per_1000;
            let emf_gb = emf_bytes as f64 * intervals * n as f64 / GB;
            let emf_usd = emf_gb * prices.log_ingestion_per_gb;
            let total_usd = custom_metrics_usd + requests_usd + emf_usd;
            metrics.push(Line {
                destination,
                enhanced,
                series,
                custom_metrics_usd,
                requests,
                requests_usd,
                emf_gb,
                emf_usd,
                total_usd,
                per_node_usd: total_usd / n as f64,
            });
        }
    }
    let month_secs = HOURS_PER_MONTH * 3600.0;
    let logs: Vec<LogLine> = inputs
        .logs
        .iter()
        .map(|g| {
            let billed = (g.bytes + g.lines * EVENT_OVERHEAD) as f64;
            let gb = billed / inputs.window_secs * month_secs * n as f64 / GB;
            LogLine {
                group: g.group,
                gb,
                usd: gb * prices.log_ingestion_per_gb,
            }
        })
        .collect();
    let logs_usd = logs.iter().map(|l| l.usd).sum();
    Estimate {
        nodes: n,
        metrics,
        logs,
        logs_usd,
        inputs: inputs.clone(),
        without_drop: None,
    }
}

/// The table `kinsight cost` prints.
pub fn render(e: &Estimate) -> String {
    let mut out = String::new();
    let i = &e.inputs;
    let _ = writeln!(
        out,
        "kinsight cost: a month (730 h) for {} node{} like this one, interval {} s, us-east-1 list prices unless kinsight.cost says otherwise",
        e.nodes,
        if e.nodes == 1 { "" } else { "s" },
        i.interval_secs
    );
    let _ = writeln!(
        out,
        "measured per interval: standard {} datums, {} node + {} cluster-wide series; enhanced {} datums, {} node + {} cluster-wide series",
        i.standard.datums,
        i.standard.node_series,
        i.standard.shared_series,
        i.enhanced.datums,
        i.enhanced.node_series,
        i.enhanced.shared_series
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<9} {:>9} {:>12} {:>13} {:>10} {:>10} {:>12} {:>11}",
        "destination", "enhanced", "series", "metrics $", "requests", "requests $", "EMF GB", "EMF $", "per node $"
    );
    for l in &e.metrics {
        let _ = writeln!(
            out,
            "{:<16} {:<9} {:>9} {:>12.2} {:>13.0} {:>10.2} {:>10.2} {:>12.2} {:>11.2}",
            l.destination,
            if l.enhanced { "on" } else { "off" },
            l.series,
            l.custom_metrics_usd,
            l.requests,
            l.requests_usd,
            l.emf_gb,
            l.emf_usd,
            l.per_node_usd
        );
    }
    if let Some(full) = &e.without_drop {
        let _ = writeln!(
            out,
            "\nkinsight.metrics.drop saves, a node a month, against the full Container Insights set:"
        );
        for (l, f) in e.metrics.iter().zip(full) {
            let _ = writeln!(
                out,
                "  {:<16} {:<4} {:>9.2} $ ({} series fewer in the cluster)",
                l.destination,
                if l.enhanced { "on" } else { "off" },
                f.per_node_usd - l.per_node_usd,
                f.series.saturating_sub(l.series)
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "logs (every destination), from the node's log growth over {:.0} s:",
        i.window_secs
    );
    for l in &e.logs {
        let _ = writeln!(out, "  {:<12} {:>10.2} GB {:>10.2} $", l.group, l.gb, l.usd);
    }
    let _ = writeln!(out, "  {:<12} {:>13} {:>10.2} $", "all", "", e.logs_usd);
    let _ = writeln!(
        out,
        "\nNot included: log storage, Logs Insights queries, alarms, dashboards; the per-observation price of enhanced observability through EMF (its series are counted as custom metrics here, an upper bound)."
    );
    out
}

/// The series of datums: (node-scoped, cluster-wide).
fn series(datums: &[crate::metrics::Datum]) -> (u64, u64) {
    const NODE_SCOPED: [&str; 6] = [
        "NodeName",
        "InstanceId",
        "PodName",
        "FullPodName",
        "ContainerName",
        "VolumeId",
    ];
    let (mut node, mut shared) = (HashSet::new(), HashSet::new());
    for d in datums {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        d.metric_name.hash(&mut h);
        d.dimensions.hash(&mut h);
        if d.dimensions.iter().any(|(k, _)| NODE_SCOPED.contains(k)) {
            node.insert(h.finish());
        } else {
            shared.insert(h.finish());
        }
    }
    (node.len() as u64, shared.len() as u64)
}

fn billed_bytes(events: &[crate::ship::LogEvent]) -> u64 {
    events.iter().map(|e| e.message.len() as u64 + EVENT_OVERHEAD).sum()
}

/// What the cycle of one mode sends with `drops` (`kinsight.metrics.drop`) left out: datums,
/// series, and the performance events' bytes with and without the directive (the cycle was made
/// with [`Produce::DatumsAndEvents`]: events without it, and the records to write them again
/// with it). The datums are encoded again from the records, so that the same cycle prices the
/// configured set and the full Container Insights set alike.
fn sample_of(cycle: &Cycle, enhanced: bool, drops: &[MetricDrop]) -> MetricSample {
    let mut datums = Vec::with_capacity(cycle.datums.len());
    let mut with_directive = Vec::with_capacity(cycle.records.len());
    let opts = EmfOptions {
        with_directive: true,
        enhanced,
    };
    for r in &cycle.records {
        datum::encode_selected(r, enhanced, drops, &mut datums);
        emf::encode_selected(r, opts, drops, &mut with_directive);
    }
    let (node_series, shared_series) = series(&datums);
    MetricSample {
        datums: datums.len() as u64,
        node_series,
        shared_series,
        emf_bytes: billed_bytes(&with_directive),
        both_bytes: billed_bytes(&cycle.events),
    }
}

/// Sizes and line counts of the node's log files by group kind, and where each file ended, so
/// that the growth since can be read.
#[derive(Debug, Default)]
struct LogFiles {
    /// (group, path, size).
    files: Vec<(&'static str, std::path::PathBuf, u64)>,
}

impl LogFiles {
    fn scan(root: &Root, cfg: &Config) -> LogFiles {
        let mut files = Vec::new();
        let dir = root.path(&cfg.paths.container_logs_dir);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if !Path::new(&name)
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("log"))
                {
                    continue;
                }
                // /var/log/containers holds symlinks, usually absolute: resolved under the root.
                let path = match std::fs::read_link(entry.path()) {
                    Ok(target) if target.is_absolute() => root.path(&target),
                    Ok(target) => dir.join(target),
                    Err(_) => entry.path(),
                };
                let dataplane = cfg
                    .logs
                    .dataplane_container_globs
                    .iter()
                    .any(|g| crate::logs::route::glob_match(g, &name));
                let group = if dataplane { "dataplane" } else { "application" };
                if let Ok(meta) = std::fs::metadata(&path)
                    && meta.is_file()
                {
                    files.push((group, path, meta.len()));
                }
            }
        }
        for host in &cfg.logs.host_files {
            let path = root.path(host);
            if let Ok(meta) = std::fs::metadata(&path)
                && meta.is_file()
            {
                files.push(("host", path, meta.len()));
            }
        }
        LogFiles { files }
    }

    /// Growth by group since `self`: bytes appended and the lines in them (a file that shrank
    /// was rotated: its whole new content counts).
    fn growth(&self) -> Vec<LogGrowth> {
        let mut out: Vec<LogGrowth> = ["application", "dataplane", "host"]
            .into_iter()
            .map(|group| LogGrowth {
                group,
                bytes: 0,
                lines: 0,
            })
            .collect();
        for (group, path, before) in &self.files {
            let Some((bytes, lines)) = appended(path, *before) else {
                continue;
            };
            if let Some(g) = out.iter_mut().find(|g| g.group == *group) {
                g.bytes += bytes;
                g.lines += lines;
            }
        }
        out
    }
}

/// Bytes and lines appended to `path` after `from` (from 0 when it shrank), reading at most
/// 256 MiB.
fn appended(path: &Path, from: u64) -> Option<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let start = if len < from { 0 } else { from };
    f.seek(SeekFrom::Start(start)).ok()?;
    let mut lines = 0u64;
    let mut bytes = 0u64;
    let mut buf = vec![0u8; 64 << 10];
    let mut take = f.take(256 << 20);
    loop {
        let n = take.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        bytes += n as u64;
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
    Some((bytes, lines))
}

/// `kinsight cost`: samples the node in both modes `interval` apart and prints the estimate for
/// `nodes` nodes (a table, or one JSON object).
pub async fn cost(
    outside: Outside,
    loaded: Loaded,
    interval: Duration,
    nodes: u64,
    json: bool,
    cancel: CancellationToken,
) -> Result<(), AppError> {
    let telemetry = Telemetry::new();
    let stopping = CancellationToken::new();
    let (started, _) = Box::pin(run::start(&outside, loaded, &telemetry, &stopping)).await?;
    let run::Started {
        mut sup, cfg, parts, ..
    } = started;
    let inputs = stopping.child_token();
    run::start_metadata(&mut sup, parts.metadata.clone(), &cfg, &outside, &telemetry, &inputs);
    run::start_runtime(&mut sup, parts.runtime.clone(), &inputs);
    let index = parts.metadata.as_ref().map(|m| m.index().clone());
    let mut collectors = Vec::new();
    for enhanced in [false, true] {
        let mut settings = build::settings(&cfg, &parts.node);
        settings.enhanced = enhanced;
        settings.prefer_full_pod_name |= enhanced;
        settings.produce = Produce::DatumsAndEvents;
        collectors.push(
            build::collector(&outside, settings, index.clone(), &telemetry)?.with_container_fs(parts.fs_view.clone()),
        );
    }
    let clock: Arc<dyn Clock> = outside.clock.clone();
    let root = Root::new(&outside.host_root);
    let logs = LogFiles::scan(&root, &cfg);
    let started = Instant::now();
    for c in &mut collectors {
        c.collect(clock.as_ref());
    }
    tokio::select! {
        () = tokio::time::sleep(interval) => {}
        () = cancel.cancelled() => {
            sup.shutdown(Instant::now() + Duration::from_secs(1)).await;
            return Ok(());
        }
    }
    let cycles: Vec<Cycle> = collectors.iter_mut().map(|c| c.collect(clock.as_ref())).collect();
    let drops = &cfg.metrics.drop;
    let window = started.elapsed();
    let growth = logs.growth();
    if index.as_ref().is_none_or(|i| !i.snapshot().is_synced()) {
        eprintln!(
            "kinsight cost: no pod metadata (metadata source none, or not loaded in time): pod and container metrics are not in this estimate"
        );
    }
    let inputs_with = |drops: &[MetricDrop]| Inputs {
        interval_secs: cfg.interval.as_secs_f64(),
        standard: sample_of(&cycles[0], false, drops),
        enhanced: sample_of(&cycles[1], true, drops),
        window_secs: window.as_secs_f64(),
        logs: growth.clone(),
        nodes,
    };
    let mut est = estimate(&inputs_with(drops), &cfg.prices);
    if !drops.is_empty() {
        est.without_drop = Some(estimate(&inputs_with(&[]), &cfg.prices).metrics);
    }
    let text = if json {
        format!("{}\n", serde_json::to_string(&est).unwrap_or_default())
    } else {
        render(&est)
    };
    {
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush());
    }
    inputs.cancel();
    sup.shutdown(Instant::now() + Duration::from_secs(2)).await;
    Ok(())
}

/// The billable units the running agent counted, cumulative (from its telemetry).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counted {
    pub put_metric_data_requests: f64,
    pub emf_bytes: f64,
    pub log_bytes: f64,
}

impl Counted {
    /// Reads the counters: `PutMetricData` attempts (every one is billed), EMF bytes accepted,
    /// log bytes accepted.
    pub fn read(t: &Telemetry) -> Counted {
        use crate::telemetry::Name;
        let requests = ["ok", "retry", "error"]
            .iter()
            .map(|r| t.get(Name::AwsRequests, &[("api", "PutMetricData"), ("result", r)]))
            .sum();
        let logs = ["application", "dataplane", "host", "other"]
            .iter()
            .map(|g| t.get(Name::LogBytesSettled, &[("group", g), ("outcome", "accepted")]))
            .sum();
        Counted {
            put_metric_data_requests: requests,
            emf_bytes: t.get(Name::BillableEmfBytes, &[]),
            log_bytes: logs,
        }
    }
}

/// A month of what was counted over `window` (ending with `now`, begun with `before`), with
/// `series` metric series billed: (custom metrics, requests, EMF, logs, total) in dollars.
pub fn month_of(before: Counted, now: Counted, window: Duration, series: u64, p: &Prices) -> [f64; 5] {
    let scale = HOURS_PER_MONTH * 3600.0 / window.as_secs_f64().max(1.0);
    let metrics = tiered(series, &p.custom_metric_month);
    let requests =
        (now.put_metric_data_requests - before.put_metric_data_requests) * scale / 1000.0 * p.put_metric_data_per_1000;
    let emf = (now.emf_bytes - before.emf_bytes) * scale / GB * p.log_ingestion_per_gb;
    let logs = (now.log_bytes - before.log_bytes) * scale / GB * p.log_ingestion_per_gb;
    [metrics, requests, emf, logs, metrics + requests + emf + logs]
}

/// Once an hour, the month the last hour's real counters add up to, for this node, at info level
/// (`kinsight cost` estimates it before deploying; this is what the agent really sent).
pub async fn log_hourly(telemetry: Telemetry, prices: tokio::sync::watch::Receiver<Prices>, cancel: CancellationToken) {
    const HOUR: Duration = Duration::from_hours(1);
    let mut before = Counted::read(&telemetry);
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(HOUR) => {}
        }
        let now = Counted::read(&telemetry);
        let series = telemetry.get(crate::telemetry::Name::BillableMetricSeries, &[]);
        // The prices of now: a reload may have changed them since the last line.
        let prices = prices.borrow().clone();
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a count of series"
        )]
        let [metrics, requests, emf, logs, total] = month_of(before, now, HOUR, series as u64, &prices);
        tracing::info!(
            series,
            custom_metrics_usd = format!("{metrics:.2}"),
            put_metric_data_usd = format!("{requests:.2}"),
            emf_usd = format!("{emf:.2}"),
            logs_usd = format!("{logs:.2}"),
            total_usd = format!("{total:.2}"),
            "cost: the last hour of this node, as a month at kinsight.cost prices (custom metrics counted for this node alone)"
        );
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload's new `kinsight.cost` prices reach the running hourly line at its next hour.
    #[tokio::test(start_paused = true)]
    async fn the_hourly_line_takes_new_prices_at_its_next_hour() {
        use crate::telemetry::Name;
        let buffer = crate::telemetry::LogBuffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let telemetry = Telemetry::new();
        let (tx, rx) = tokio::sync::watch::channel(Prices::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(log_hourly(telemetry.clone(), rx, cancel.clone()));
        let accepted = [("group", "application"), ("outcome", "accepted")];
        let hour = |telemetry: &Telemetry| {
            // 1 GiB accepted in the hour: 730 hours a month at $0.50, then at $1.00 per GB.
            telemetry.add(Name::LogBytesSettled, &accepted, 1 << 30);
            tokio::time::advance(Duration::from_hours(1))
        };
        tokio::task::yield_now().await;
        hour(&telemetry).await;
        tokio::task::yield_now().await;
        tx.send_replace(Prices {
            log_ingestion_per_gb: 1.0,
            ..Prices::default()
        });
        hour(&telemetry).await;
        tokio::task::yield_now().await;
        cancel.cancel();
        task.await.unwrap();
        let text = buffer.text();
        let logs: Vec<&str> = text
            .lines()
            .filter_map(|l| l.split("logs_usd=").nth(1))
            .map(|v| v.split_whitespace().next().unwrap().trim_matches('"'))
            .collect();
        let month = HOURS_PER_MONTH;
        assert_eq!(logs, [format!("{:.2}", month * 0.5), format!("{month:.2}")], "{text}");
    }

    #[test]
    fn tiers_price_each_band_at_its_rate() {
        let p = Prices::default().custom_metric_month;
        assert!((tiered(0, &p)).abs() < 1e-9);
        assert!((tiered(10_000, &p) - 3_000.0).abs() < 1e-6);
        // 10,000 × 0.30 + 240,000 × 0.10 + 750,000 × 0.05 + 1,000 × 0.02
        assert!((tiered(1_001_000, &p) - (3_000.0 + 24_000.0 + 37_500.0 + 20.0)).abs() < 1e-6);
    }

    /// A fixture node, priced by hand.
    #[test]
    fn the_estimate_is_the_hand_computed_one() {
        let inputs = Inputs {
            interval_secs: 60.0,
            standard: MetricSample {
                datums: 2_500,
                node_series: 2_000,
                shared_series: 500,
                emf_bytes: 1 << 20,
                both_bytes: 1 << 19,
            },
            enhanced: MetricSample {
                datums: 10_000,
                node_series: 9_000,
                shared_series: 1_000,
                emf_bytes: 4 << 20,
                both_bytes: 3 << 20,
            },
            window_secs: 60.0,
            logs: vec![LogGrowth {
                group: "application",
                bytes: 974,
                lines: 1,
            }],
            nodes: 10,
        };
        let e = estimate(&inputs, &Prices::default());
        let line = |d: &str, enhanced: bool| {
            e.metrics
                .iter()
                .find(|l| l.destination == d && l.enhanced == enhanced)
                .unwrap()
                .clone()
        };
        // Standard, put_metric_data: 500 + 10 × 2,000 = 20,500 series: 10,000 × 0.30 +
        // 10,500 × 0.10 = 4,050 $. Requests: ceil(2,500 / 1,000) = 3 an interval, 43,800
        // intervals (730 h × 60), 10 nodes: 1,314,000 requests, 13.14 $.
        let pmd = line("put_metric_data", false);
        assert_eq!(pmd.series, 20_500);
        assert!((pmd.custom_metrics_usd - 4_050.0).abs() < 1e-6);
        assert!((pmd.requests - 1_314_000.0).abs() < 1e-6);
        assert!((pmd.requests_usd - 13.14).abs() < 1e-9);
        assert!((pmd.total_usd - 4_063.14).abs() < 1e-6);
        assert!((pmd.per_node_usd - 406.314).abs() < 1e-6);
        // Standard, emf: the same series, no requests; 1 MiB an interval × 43,800 × 10 =
        // 438,000 MiB = 427.734375 GB (2^30), 213.8671875 $.
        let emf = line("emf", false);
        assert!(emf.requests.abs() < 1e-9);
        assert!((emf.emf_gb - 427.734_375).abs() < 1e-9);
        assert!((emf.emf_usd - 213.867_187_5).abs() < 1e-9);
        // Standard, both: requests and half the bytes (no directive).
        let both = line("both", false);
        assert!((both.total_usd - (4_050.0 + 13.14 + 106.933_593_75)).abs() < 1e-6);
        // Enhanced, put_metric_data: 1,000 + 90,000 = 91,000 series: 3,000 + 81,000 × 0.10 =
        // 11,100 $; 10 requests an interval: 4,380,000 requests, 43.80 $.
        let enh = line("put_metric_data", true);
        assert_eq!(enh.series, 91_000);
        assert!((enh.custom_metrics_usd - 11_100.0).abs() < 1e-6);
        assert!((enh.requests_usd - 43.8).abs() < 1e-9);
        // Logs: (974 + 26) bytes a minute = 1,000 B × 43,800 min × 10 nodes = 438,000,000 B =
        // 0.407921150 GB, 0.203960575 $.
        let gb = 438_000_000.0 / GB;
        assert!((e.logs[0].gb - gb).abs() < 1e-12);
        assert!((e.logs_usd - gb * 0.5).abs() < 1e-12);
        // The rendering names every line.
        let text = render(&e);
        assert_eq!(text.lines().filter(|l| l.starts_with("put_metric_data")).count(), 2);
        assert!(text.contains("application"));
    }

    /// Growth is what was appended (bytes and lines) to container logs, by group, and a file
    /// that shrank (rotated) counts whole.
    #[test]
    fn log_growth_is_measured_by_group() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let pods = dir.path().join("var/log/pods/shop_web_1/app");
        std::fs::create_dir_all(&pods).unwrap();
        let containers = dir.path().join("var/log/containers");
        std::fs::create_dir_all(&containers).unwrap();
        let app_log = pods.join("0.log");
        std::fs::write(&app_log, "old line\n").unwrap();
        // kubelet's absolute link, resolved under the root.
        std::os::unix::fs::symlink(
            "/var/log/pods/shop_web_1/app/0.log",
            containers.join("web_shop_app-1.log"),
        )
        .unwrap();
        let proxy_log = dir
            .path()
            .join("var/log/pods/kube-system_kube-proxy-x_2/kube-proxy/0.log");
        std::fs::create_dir_all(proxy_log.parent().unwrap()).unwrap();
        std::fs::write(&proxy_log, "a long line that will be rotated away\n").unwrap();
        std::os::unix::fs::symlink(
            "/var/log/pods/kube-system_kube-proxy-x_2/kube-proxy/0.log",
            containers.join("kube-proxy-x_kube-system_kube-proxy-2.log"),
        )
        .unwrap();
        let cfg = crate::config::load_str(
            r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"c"}}}}"#,
            &crate::config::Inputs {
                output_override: Some(crate::config::OutputKind::Stdout),
                host_name_fallback: "n".into(),
                ..crate::config::Inputs::default()
            },
        )
        .unwrap();
        let before = LogFiles::scan(&root, &cfg);
        assert_eq!(before.files.len(), 2, "{:?}", before.files);
        {
            use std::io::Write as _;
            let mut f = std::fs::OpenOptions::new().append(true).open(&app_log).unwrap();
            f.write_all(b"one\ntwo\nthree\n").unwrap();
        }
        std::fs::write(&proxy_log, "new\n").unwrap();
        let g = before.growth();
        let by = |group: &str| g.iter().find(|x| x.group == group).unwrap();
        assert_eq!((by("application").bytes, by("application").lines), (14, 3));
        assert_eq!((by("dataplane").bytes, by("dataplane").lines), (4, 1));
        assert_eq!((by("host").bytes, by("host").lines), (0, 0));
    }

    /// The hourly line: an hour's counters, scaled to 730 hours and priced by hand.
    #[test]
    fn the_hourly_month_is_the_hand_computed_one() {
        let before = Counted {
            put_metric_data_requests: 100.0,
            emf_bytes: 0.0,
            log_bytes: 1e9,
        };
        // An hour: 60 requests, 2^30 EMF bytes, 2^30 log bytes more.
        let now = Counted {
            put_metric_data_requests: 160.0,
            emf_bytes: GB,
            log_bytes: 1e9 + GB,
        };
        let [metrics, requests, emf, logs, total] =
            month_of(before, now, Duration::from_hours(1), 200, &Prices::default());
        // 200 series × 0.30; 60 × 730 = 43,800 requests × 0.01 / 1,000; 730 GB × 0.50 twice.
        assert!((metrics - 60.0).abs() < 1e-9);
        assert!((requests - 0.438).abs() < 1e-9);
        assert!((emf - 365.0).abs() < 1e-9);
        assert!((logs - 365.0).abs() < 1e-9);
        assert!((total - 790.438).abs() < 1e-9);
    }

    /// The counters are read from the telemetry names the outputs count with.
    #[test]
    fn counted_reads_the_outputs_counters() {
        use crate::telemetry::Name;
        let t = Telemetry::new();
        t.add(Name::AwsRequests, &[("api", "PutMetricData"), ("result", "ok")], 3);
        t.add(Name::AwsRequests, &[("api", "PutMetricData"), ("result", "retry")], 2);
        t.add(Name::AwsRequests, &[("api", "PutLogEvents"), ("result", "ok")], 7);
        t.add(Name::BillableEmfBytes, &[], 500);
        t.add(
            Name::LogBytesSettled,
            &[("group", "application"), ("outcome", "accepted")],
            40,
        );
        t.add(Name::LogBytesSettled, &[("group", "host"), ("outcome", "accepted")], 2);
        t.add(
            Name::LogBytesSettled,
            &[("group", "host"), ("outcome", "dropped_queue_full")],
            9,
        );
        let c = Counted::read(&t);
        assert_eq!(
            c,
            Counted {
                put_metric_data_requests: 5.0,
                emf_bytes: 500.0,
                log_bytes: 42.0
            }
        );
    }
}
