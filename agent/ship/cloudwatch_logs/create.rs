//! Lazy creation of a log stream, and of its group when that is missing too
//! (as upstream's `internal/aws/cwlogs/cwlog_client.go` does, in amazon-contributing/opentelemetry-collector-contrib).
//!
//! Only after PutLogEvents answered `ResourceNotFoundException`: `CreateLogStream`; if that says
//! the group is missing, `CreateLogGroup`, then `PutRetentionPolicy` only when this call created
//! the group and a retention is configured (kinsight never changes another creator's retention),
//! then `CreateLogStream` again. `ResourceAlreadyExistsException` means another node won the race
//! and counts as success.

use aws_sdk_cloudwatchlogs::Client;

use crate::telemetry::Telemetry;
use crate::telemetry::events::{AwsCall, AwsCallResult};

use super::super::retry::{Failure, classify};

/// What [`ensure`] created (both false: someone else had just created them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub group: bool,
    pub stream: bool,
}

const NOT_FOUND: &str = "ResourceNotFoundException";
const ALREADY_EXISTS: &str = "ResourceAlreadyExistsException";

/// What a group kinsight creates gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupSettings {
    pub retention_days: Option<u32>,
    /// `logGroupClass` of `CreateLogGroup`; `None` is the service default (`STANDARD`).
    pub class: Option<crate::config::LogGroupClass>,
}

/// Makes sure `group`/`stream` exist.
pub async fn ensure(
    client: &Client,
    group: &str,
    stream: &str,
    settings: GroupSettings,
    create_groups: bool,
    telemetry: &Telemetry,
) -> Result<Created, Failure> {
    match create_stream(client, group, stream, telemetry).await {
        Ok(stream) => return Ok(Created { group: false, stream }),
        Err(f) if f.code.as_deref() == Some(NOT_FOUND) => {}
        Err(f) => return Err(f.during("logs:CreateLogStream")),
    }
    if !create_groups {
        // `kinsight.logs.create_log_groups: false`: the group is someone else's to create. The
        // data is held and the call retried with backoff until it exists.
        return Err(Failure {
            class: super::super::retry::ErrorClass::Transient,
            code: Some(NOT_FOUND.into()),
            status: None,
            message: format!("log group {group} does not exist and kinsight.logs.create_log_groups is false"),
            action: None,
        });
    }
    let created_group = create_group(client, group, settings.class, telemetry)
        .await
        .map_err(|f| f.during("logs:CreateLogGroup"))?;
    if created_group && let Some(days) = settings.retention_days {
        retain(client, group, days, telemetry).await;
    }
    let stream = create_stream(client, group, stream, telemetry)
        .await
        .map_err(|f| f.during("logs:CreateLogStream"))?;
    Ok(Created {
        group: created_group,
        stream,
    })
}

/// Attempts at `PutRetentionPolicy` on a group this call created. The group is ours, so its
/// retention must not be lost to one throttled call: a later `ensure` finds the group existing
/// and would not know it still lacks its retention.
const RETENTION_ATTEMPTS: u32 = 6;

/// Sets the retention of a group just created, retrying transient failures. It never fails the
/// caller: the group exists, so the events can flow; a retention that could not be set (denied,
/// or still failing) is logged and counted, never silent.
async fn retain(client: &Client, group: &str, days: u32, t: &Telemetry) {
    let backoff = super::super::retry::Backoff::default();
    for attempt in 0..RETENTION_ATTEMPTS {
        match put_retention(client, group, days, t).await {
            Ok(()) => return,
            Err(f) if f.class.is_retryable() && attempt + 1 < RETENTION_ATTEMPTS => {
                tokio::time::sleep(backoff.delay(attempt)).await;
            }
            Err(f) => {
                if f.class == super::super::retry::ErrorClass::AccessDenied {
                    crate::telemetry::events::AccessDenied {
                        action: "logs:PutRetentionPolicy",
                    }
                    .emit(t);
                }
                tracing::error!(log_group = group, days, code = f.code.as_deref().unwrap_or(""), error = %f.message, "cannot set the retention of a log group kinsight created; it keeps the default (never expire)");
                return;
            }
        }
    }
}

/// `Ok(true)` created, `Ok(false)` already there.
async fn create_stream(client: &Client, group: &str, stream: &str, t: &Telemetry) -> Result<bool, Failure> {
    let r = client
        .create_log_stream()
        .log_group_name(group)
        .log_stream_name(stream)
        .send()
        .await;
    settle("CreateLogStream", r.map(|_| ()).map_err(|e| classify(&e)), t)
}

async fn create_group(
    client: &Client,
    group: &str,
    class: Option<crate::config::LogGroupClass>,
    t: &Telemetry,
) -> Result<bool, Failure> {
    let r = client
        .create_log_group()
        .log_group_name(group)
        .set_log_group_class(class.map(|c| aws_sdk_cloudwatchlogs::types::LogGroupClass::from(c.as_str())))
        .send()
        .await;
    settle("CreateLogGroup", r.map(|_| ()).map_err(|e| classify(&e)), t)
}

async fn put_retention(client: &Client, group: &str, days: u32, t: &Telemetry) -> Result<(), Failure> {
    let days = i32::try_from(days).unwrap_or(i32::MAX);
    let r = client
        .put_retention_policy()
        .log_group_name(group)
        .retention_in_days(days)
        .send()
        .await;
    settle("PutRetentionPolicy", r.map(|_| ()).map_err(|e| classify(&e)), t).map(|_| ())
}

/// Counts the call; `ResourceAlreadyExistsException` is success (`Ok(false)`).
fn settle(api: &'static str, r: Result<(), Failure>, t: &Telemetry) -> Result<bool, Failure> {
    match r {
        Ok(()) => {
            AwsCall {
                api,
                result: AwsCallResult::Ok,
                code: None,
                detail: "",
            }
            .emit(t);
            Ok(true)
        }
        Err(f) if f.code.as_deref() == Some(ALREADY_EXISTS) => {
            AwsCall {
                api,
                result: AwsCallResult::Ok,
                code: f.code.as_deref(),
                detail: "",
            }
            .emit(t);
            Ok(false)
        }
        Err(f) => {
            let result = if f.class.is_retryable() {
                AwsCallResult::Retry
            } else {
                AwsCallResult::Error
            };
            AwsCall {
                api,
                result,
                code: f.code.as_deref(),
                detail: &f.message,
            }
            .emit(t);
            if !f.class.is_retryable() && f.code.as_deref() != Some(NOT_FOUND) {
                tracing::error!(api, code = f.code.as_deref().unwrap_or(""), error = %f.message, "cannot create the performance log group or stream");
            }
            Err(f)
        }
    }
}
