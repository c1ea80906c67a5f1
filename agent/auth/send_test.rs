//! `kinsight check --send-test` (issue #4 item 5): one datum and one log
//! event, sent with the same `SdkConfig`s the agent uses, to prove the permissions end to end.
//! Both destinations are inside what `manifests/iam-policy.json` allows: the namespace
//! `ContainerInsights/kinsight-check` and the application log group of the cluster.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_cloudwatchlogs::error::ProvideErrorMetadata;
use aws_sdk_cloudwatchlogs::types::InputLogEvent;
use aws_types::SdkConfig;

use super::AuthError;

/// Where the test datum goes: a namespace of its own, so it never mixes with real metrics.
pub const CHECK_NAMESPACE: &str = "ContainerInsights/kinsight-check";
/// One test call, SDK retries included.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// The log group and stream of the test event: `/aws/containerinsights/<cluster>/application`,
/// `kinsight-check-<node>`.
pub fn check_log_target(cluster: &str, node: &str) -> (String, String) {
    (
        format!("/aws/containerinsights/{cluster}/application"),
        super::sanitise_session_name(&format!("kinsight-check-{node}")),
    )
}

/// `cloudwatch:PutMetricData` of one datum `kinsight_check = 1` (`ClusterName`, `NodeName`) into
/// [`CHECK_NAMESPACE`].
pub async fn put_test_metric(sdk: &SdkConfig, cluster: &str, node: &str) -> Result<(), AuthError> {
    let client = aws_sdk_cloudwatch::Client::new(sdk);
    let datum = MetricDatum::builder()
        .metric_name("kinsight_check")
        .dimensions(Dimension::builder().name("ClusterName").value(cluster).build())
        .dimensions(Dimension::builder().name("NodeName").value(node).build())
        .value(1.0)
        .unit(StandardUnit::Count)
        .timestamp(SystemTime::now().into())
        .build();
    let call = client
        .put_metric_data()
        .namespace(CHECK_NAMESPACE)
        .metric_data(datum)
        .send();
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(call_error("cloudwatch:PutMetricData", &e)),
        Err(_) => Err(timeout("cloudwatch:PutMetricData")),
    }
}

/// `logs:CreateLogStream` (and `logs:CreateLogGroup` if the group is missing), then
/// `logs:PutLogEvents` of one event. Returns `<group>:<stream>`.
pub async fn put_test_event(sdk: &SdkConfig, cluster: &str, node: &str) -> Result<String, AuthError> {
    let client = aws_sdk_cloudwatchlogs::Client::new(sdk);
    let (group, stream) = check_log_target(cluster, node);
    let create_stream = || {
        client
            .create_log_stream()
            .log_group_name(&group)
            .log_stream_name(&stream)
            .send()
    };
    match bounded(create_stream()).await? {
        Ok(_) => {}
        Err(e) if e.as_service_error().is_some_and(aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError::is_resource_already_exists_exception) => {}
        Err(e) if e.as_service_error().is_some_and(aws_sdk_cloudwatchlogs::operation::create_log_stream::CreateLogStreamError::is_resource_not_found_exception) => {
            match bounded(client.create_log_group().log_group_name(&group).send()).await? {
                Ok(_) => {}
                Err(e) if e.code() == Some("ResourceAlreadyExistsException") => {}
                Err(e) => return Err(call_error("logs:CreateLogGroup", &e)),
            }
            bounded(create_stream())
                .await?
                .map_err(|e| call_error("logs:CreateLogStream", &e))?;
        }
        Err(e) => return Err(call_error("logs:CreateLogStream", &e)),
    }
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let event = InputLogEvent::builder()
        .timestamp(now_ms)
        .message(format!(
            "{{\"kinsight_check\":\"send-test\",\"node\":\"{node}\",\"version\":\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        ))
        .build()
        .map_err(|e| AuthError::Call {
            operation: "logs:PutLogEvents",
            message: e.to_string(),
        })?;
    bounded(
        client
            .put_log_events()
            .log_group_name(&group)
            .log_stream_name(&stream)
            .log_events(event)
            .send(),
    )
    .await?
    .map_err(|e| call_error("logs:PutLogEvents", &e))?;
    Ok(format!("{group}:{stream}"))
}

async fn bounded<T>(f: impl Future<Output = T>) -> Result<T, AuthError> {
    tokio::time::timeout(CALL_TIMEOUT, f)
        .await
        .map_err(|_| timeout("CloudWatch Logs"))
}

fn timeout(operation: &'static str) -> AuthError {
    AuthError::Call {
        operation,
        message: format!("no answer within {} s", CALL_TIMEOUT.as_secs()),
    }
}

/// The error's code and message (never request headers): `AccessDenied: User … is not authorized…`.
fn call_error<E>(operation: &'static str, e: &E) -> AuthError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let message = match (e.code(), e.message()) {
        (Some(code), Some(msg)) => format!("{code}: {msg}"),
        (Some(code), None) => code.to_string(),
        _ => crate::telemetry::chain(e),
    };
    AuthError::Call { operation, message }
}
