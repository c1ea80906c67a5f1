//! [`CloudwatchOutput`]: the `cloudwatch` output, for the three destinations of
//! `kinsight.metrics.destination` and for log records.
//!
//! - `put_metric_data`: datums with `PutMetricData`, no performance events.
//! - `emf`: performance events with the `x-amzn-logs-format: json/emf` header, which makes
//!   CloudWatch Logs extract the metrics (the CloudWatch agent's behaviour); no datums.
//! - `both`: datums with `PutMetricData`, and performance events without the header and without
//!   the `CloudWatchMetrics` directive, so each datapoint reaches CloudWatch by one path only.
//!
//! Log records always go to their own [`Shipper`] (logs lane), whatever the destination.

use std::sync::Arc;

use aws_types::SdkConfig;
use tokio::time::Instant;

use crate::config::{Config, MetricsDestination};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{EmfEventsDropped, MetricsDropped, ShipDropReason};

use super::super::ShipError;
use super::super::cloudwatch_logs::{
    DEFAULT_PERFORMANCE_CAPACITY, DEFAULT_PUT_CONCURRENCY, Lane, Shipper, ShipperOptions, logs_client,
};
use super::super::output::{BoxFuture, Output, OutputTask};
use super::super::payload::{Acknowledge, Datum, Leftover, LogEvent};
use super::super::retry::Backoff;
use super::CloudwatchMetrics;

/// The `cloudwatch` output: up to three lanes, each with its own sender task.
#[derive(Debug)]
pub struct CloudwatchOutput {
    metrics: Option<CloudwatchMetrics>,
    performance: Option<Shipper>,
    logs: Shipper,
    telemetry: Telemetry,
}

/// Builds the `cloudwatch` output for `cfg` and the tasks it needs (nothing is spawned here).
/// `metrics_sdk` and `logs_sdk` come from `auth` (`logs.credentials.role_arn` may give Logs its
/// own identity); `ack` hears the outcome of every log event.
pub fn build_cloudwatch(
    cfg: &Config,
    metrics_sdk: &SdkConfig,
    logs_sdk: &SdkConfig,
    telemetry: &Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
) -> (CloudwatchOutput, Vec<OutputTask>) {
    let dest = cfg.metrics.destination;
    let mut tasks: Vec<OutputTask> = Vec::new();
    let metrics = matches!(dest, MetricsDestination::PutMetricData | MetricsDestination::Both).then(|| {
        let (m, task) = CloudwatchMetrics::new(
            metrics_sdk,
            cfg.metrics.endpoint_override.as_deref(),
            cfg.metrics.queue_intervals,
            telemetry.clone(),
        );
        tasks.push(("ship::put_metric_data", task));
        m
    });
    let client = logs_client(logs_sdk, cfg.logs.endpoint_override.as_deref());
    let performance = matches!(dest, MetricsDestination::Emf | MetricsDestination::Both).then(|| {
        let opts = ShipperOptions {
            lane: Lane::Performance,
            emf_header: dest == MetricsDestination::Emf,
            retention_days: cfg.logs.retention_days,
            group_rules: Arc::from([]),
            create_groups: cfg.logs.create_log_groups,
            flush_interval: cfg.logs.force_flush_interval,
            capacity: DEFAULT_PERFORMANCE_CAPACITY,
            concurrency: DEFAULT_PUT_CONCURRENCY,
            backoff: Backoff::default(),
        };
        let (s, task) = Shipper::new(client.clone(), opts, telemetry.clone(), None);
        tasks.push(("ship::performance_events", task));
        s
    });
    let opts = ShipperOptions {
        lane: Lane::Logs,
        emf_header: false,
        retention_days: cfg.logs.retention_days,
        group_rules: crate::config::collect::GroupRule::of(&cfg.logs.collect_list),
        create_groups: cfg.logs.create_log_groups,
        flush_interval: cfg.logs.flush_interval,
        capacity: cfg.logs.buffer_bytes,
        concurrency: cfg.logs.put_concurrency,
        backoff: Backoff::default(),
    };
    let (logs, task) = Shipper::new(client, opts, telemetry.clone(), ack);
    tasks.push(("ship::log_events", task));
    let output = CloudwatchOutput {
        metrics,
        performance,
        logs,
        telemetry: telemetry.clone(),
    };
    (output, tasks)
}

impl Output for CloudwatchOutput {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn send_metrics(&self, datums: Vec<Datum>) -> Result<(), ShipError> {
        match &self.metrics {
            Some(m) => m.enqueue(datums),
            // The collector makes no datums for destination `emf`; reaching here means the
            // collector and this output disagree, which must show in the counters.
            None if !datums.is_empty() => MetricsDropped {
                reason: ShipDropReason::NoLane,
                count: datums.len(),
                code: None,
                detail: "this output was built for destination emf",
                log: true,
            }
            .emit(&self.telemetry),
            None => {}
        }
        Ok(())
    }

    fn send_performance(&self, events: Vec<LogEvent>) -> Result<(), ShipError> {
        match &self.performance {
            Some(p) => p.enqueue_dropping(events),
            None if !events.is_empty() => EmfEventsDropped {
                reason: ShipDropReason::NoLane,
                count: events.len(),
                log_group: &events[0].group,
                code: None,
                detail: "this output was built for destination put_metric_data",
            }
            .emit(&self.telemetry),
            None => {}
        }
        Ok(())
    }

    fn send_logs(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<Vec<LogEvent>, Vec<LogEvent>>> {
        Box::pin(self.logs.enqueue_waiting(events))
    }

    fn flush_logs(&self, deadline: Instant) -> BoxFuture<'_, bool> {
        Box::pin(self.logs.flush(deadline))
    }

    fn withdraw_logs(&self) -> BoxFuture<'_, usize> {
        Box::pin(self.logs.withdraw())
    }

    fn flush(&self, deadline: Instant) -> BoxFuture<'_, Leftover> {
        Box::pin(async move {
            let m = async {
                match &self.metrics {
                    Some(m) => m.flush(deadline).await,
                    None => 0,
                }
            };
            let p = async {
                match &self.performance {
                    Some(p) => p.drain(deadline).await,
                    None => Leftover::default(),
                }
            };
            let (m, p, l) = tokio::join!(m, p, self.logs.drain(deadline));
            Leftover {
                dropped: m + p.dropped,
                logs: l.logs,
            }
        })
    }
}
