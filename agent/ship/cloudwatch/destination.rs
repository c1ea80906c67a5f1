//! [`CloudwatchSink`]: the `cloudwatch` output for the three destinations of
//! `kinsight.metrics.destination` (`spec/METRICS.md` §2.2).

use aws_types::SdkConfig;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, MetricsDestination};
use crate::metrics::Datum;
use crate::metrics::encode::emf::EmfEvent;
use crate::telemetry::Telemetry;

use super::super::ShipError;
use super::super::cloudwatch_logs::{EmfLogs, EmfLogsOptions};
use super::super::output::{BoxFuture, Sink};
use super::CloudwatchMetrics;

/// `put_metric_data`: datums only (OUT-1). `emf`: events only, with the `x-amzn-logs-format`
/// header (OUT-2). `both`: datums with PutMetricData and events (which the encoder writes
/// without a `CloudWatchMetrics` directive) without the header (OUT-3, OUT-4), so a datapoint
/// reaches CloudWatch by one path only (OUT-5). Items of the other kind are ignored.
#[derive(Debug)]
pub struct CloudwatchSink {
    metrics: Option<CloudwatchMetrics>,
    emf: Option<EmfLogs>,
}

impl CloudwatchSink {
    pub fn new(metrics: Option<CloudwatchMetrics>, emf: Option<EmfLogs>) -> Self {
        CloudwatchSink { metrics, emf }
    }
}

/// Builds the `cloudwatch` output for `cfg` and spawns its background tasks (needs a tokio
/// runtime). `metrics_sdk` and `logs_sdk` come from `auth` (`logs.credentials.role_arn` may give
/// Logs its own identity). When `cancel` fires, buffered events are sent at once instead of at
/// the next flush period; the tasks stop when the sink is dropped or its `flush` deadline passes.
pub fn build_cloudwatch(
    cfg: &Config,
    metrics_sdk: &SdkConfig,
    logs_sdk: &SdkConfig,
    telemetry: &Telemetry,
    cancel: CancellationToken,
) -> Box<dyn Sink> {
    let dest = cfg.metrics.destination;
    let metrics = matches!(dest, MetricsDestination::PutMetricData | MetricsDestination::Both).then(|| {
        CloudwatchMetrics::new(
            metrics_sdk,
            cfg.metrics.endpoint_override.as_deref(),
            cfg.metrics.queue_intervals,
            telemetry.clone(),
        )
    });
    let emf = matches!(dest, MetricsDestination::Emf | MetricsDestination::Both).then(|| {
        let opts = EmfLogsOptions::from_config(cfg, dest == MetricsDestination::Emf);
        EmfLogs::new(logs_sdk, opts, telemetry.clone())
    });
    if let Some(e) = &emf {
        let handle = e.flush_trigger();
        tokio::spawn(async move {
            cancel.cancelled().await;
            handle.notify_one();
        });
    }
    Box::new(CloudwatchSink { metrics, emf })
}

impl Sink for CloudwatchSink {
    fn name(&self) -> &'static str {
        "cloudwatch"
    }

    fn write_metrics<'a>(&'a self, datums: &'a [Datum]) -> BoxFuture<'a, Result<(), ShipError>> {
        match &self.metrics {
            Some(m) => m.enqueue(datums),
            None if !datums.is_empty() => {
                tracing::debug!(
                    count = datums.len(),
                    "destination emf: datums are not sent with PutMetricData"
                );
            }
            None => {}
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn write_emf<'a>(&'a self, events: &'a [EmfEvent]) -> BoxFuture<'a, Result<(), ShipError>> {
        match &self.emf {
            Some(e) => e.enqueue(events),
            None if !events.is_empty() => {
                tracing::debug!(
                    count = events.len(),
                    "destination put_metric_data: performance events are not sent"
                );
            }
            None => {}
        }
        Box::pin(std::future::ready(Ok(())))
    }

    fn flush(&self, deadline: Instant) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let m = async {
                if let Some(m) = &self.metrics {
                    m.flush(deadline).await;
                }
            };
            let e = async {
                if let Some(e) = &self.emf {
                    e.flush(deadline).await;
                }
            };
            tokio::join!(m, e);
        })
    }
}
