//! The one retry policy of every output: error classification, capped exponential backoff with
//! full jitter, and the SDK client settings that keep the SDK's own retry layer out of the way.
//!
//! Errors are classified by `ProvideErrorMetadata::code()`, never by the SDK's enum variant:
//! throttling and access errors usually arrive as `Unhandled`, and the modeled `PutMetricData`
//! errors are only four (AWS CloudWatch API reference, "PutMetricData", Errors).
//!
//! The decision a newcomer would question: the SDK's standard retry mode (3 attempts) is turned
//! off for the CloudWatch and CloudWatch Logs clients ([`sdk_retry_config`]). The senders retry
//! without limit themselves, and two layers would multiply: every one of our attempts would be
//! up to three requests, and the SDK's backoff would hide from our counters and logs.

use std::time::Duration;

use aws_sdk_cloudwatch::error::{ProvideErrorMetadata, SdkError};

/// What a failed call means for the data it carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throttling, 5xx, timeouts, refused or dropped connections: retry with backoff.
    Transient,
    /// Credentials expired, revoked or not yet valid, or clock skew: retry with backoff (the
    /// credentials provider refreshes in the background).
    Credentials,
    /// The identity lacks the action, or a condition key does not match.
    AccessDenied,
    /// The request itself is wrong (`InvalidParameterValue`, `MissingParameter`, …): resending
    /// it verbatim cannot succeed.
    Rejected,
}

impl ErrorClass {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorClass::Transient | ErrorClass::Credentials)
    }
}

/// One failed call, classified, with what a log line needs.
#[derive(Debug, Clone)]
pub struct Failure {
    pub class: ErrorClass,
    /// The AWS error code (`Throttling`, `InvalidParameterValue`, …), when the service sent one.
    pub code: Option<String>,
    /// HTTP status of the last response, when there was one.
    pub status: Option<u16>,
    /// The whole error chain on one line.
    pub message: String,
    /// The IAM action of the call that failed, when it is not the caller's main one.
    pub action: Option<&'static str>,
}

impl Failure {
    /// The same failure, naming the IAM action that failed (for `AccessDenied` counters).
    #[must_use]
    pub fn during(mut self, action: &'static str) -> Self {
        self.action = Some(action);
        self
    }

    /// The code, or a short word for failures without one (`timeout`, `dispatch`, `http_503`).
    pub fn code_or_kind(&self) -> String {
        match (&self.code, self.status) {
            (Some(c), _) => c.clone(),
            (None, Some(s)) => format!("http_{s}"),
            (None, None) => "no_response".to_string(),
        }
    }
}

/// Throttling codes of CloudWatch (`Throttling`, awsQuery heritage), CloudWatch Logs
/// (`ThrottlingException`) and the generic ones the SDK's retry classifier knows
/// (aws-runtime `retries::classifiers::THROTTLING_ERRORS`).
const THROTTLING: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
];

/// Server-side faults that the same request may survive (the SDK's `TRANSIENT_ERRORS` plus the
/// CloudWatch fault codes).
const TRANSIENT: &[&str] = &[
    "RequestTimeout",
    "RequestTimeoutException",
    "InternalError",
    "InternalFailure",
    "InternalServiceError",
    "InternalServiceFault",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "OperationAbortedException",
];

/// Expired, revoked or not-yet-valid credentials, and clock skew: worth a forced refresh.
const CREDENTIALS: &[&str] = &[
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "RequestExpired",
];

const ACCESS_DENIED: &[&str] = &["AccessDenied", "AccessDeniedException"];

/// Classifies a failed SDK call by its error code, not its enum variant: after the SDK's retries,
/// throttling and access errors often arrive as `Unhandled`.
pub fn classify<E>(err: &SdkError<E>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let code = err.code().map(str::to_string);
    let message = crate::telemetry::chain(err);
    let class = match err {
        SdkError::ConstructionFailure(_) => ErrorClass::Rejected,
        // Timeouts, refused or dropped connections, and a response the SDK could not read (a
        // proxy's HTML page, a truncated body): retry.
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => ErrorClass::Transient,
        _ => classify_code(code.as_deref(), status),
    };
    Failure {
        class,
        code,
        status,
        message,
        action: None,
    }
}

/// The class of an AWS error code, falling back on the HTTP status when the code is unknown.
pub fn classify_code(code: Option<&str>, status: Option<u16>) -> ErrorClass {
    match code {
        Some(c) if THROTTLING.contains(&c) || TRANSIENT.contains(&c) => ErrorClass::Transient,
        Some(c) if CREDENTIALS.contains(&c) => ErrorClass::Credentials,
        Some(c) if ACCESS_DENIED.contains(&c) => ErrorClass::AccessDenied,
        _ => match status {
            Some(s) if s >= 500 || s == 429 => ErrorClass::Transient,
            Some(403) if code.is_none() => ErrorClass::AccessDenied,
            _ => ErrorClass::Rejected,
        },
    }
}

/// Exponential backoff with full jitter: attempt `n` (0-based) waits a uniform random time in
/// `[0, min(max, base · 2^n)]` (base 200 ms, cap 30 s, near
/// Vector's CloudWatch sink defaults of 1 s and 30 s, but quicker for the first retry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let cap = self.base.saturating_mul(1u32 << attempt.min(20)).min(self.max);
        // Full jitter from `fastrand`, the agent's one source of randomness (the credential
        // refresher draws from it too): agents on many nodes must not retry in lockstep.
        cap.mul_f64(fastrand::f64())
    }
}

/// The SDK retry settings for the CloudWatch and CloudWatch Logs clients: one attempt, because
/// the senders retry themselves with [`Backoff`] (see the module doc).
pub fn sdk_retry_config() -> aws_smithy_types::retry::RetryConfig {
    aws_smithy_types::retry::RetryConfig::disabled()
}

/// How long one request may take before it counts as a transient failure. The SDK sets no
/// operation timeout by default, and a connection that hangs must not stall a sender for good.
pub const REQUEST_TIMEOUT: Duration = Duration::from_mins(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_classified_as_identity_section_11_says() {
        assert_eq!(classify_code(Some("Throttling"), Some(400)), ErrorClass::Transient);
        assert_eq!(
            classify_code(Some("ThrottlingException"), Some(400)),
            ErrorClass::Transient
        );
        assert_eq!(classify_code(None, Some(503)), ErrorClass::Transient);
        assert_eq!(
            classify_code(Some("InternalServiceError"), Some(500)),
            ErrorClass::Transient
        );
        assert_eq!(classify_code(Some("ExpiredToken"), Some(403)), ErrorClass::Credentials);
        assert_eq!(classify_code(Some("AccessDenied"), Some(403)), ErrorClass::AccessDenied);
        assert_eq!(classify_code(None, Some(403)), ErrorClass::AccessDenied);
        assert_eq!(
            classify_code(Some("InvalidParameterValue"), Some(400)),
            ErrorClass::Rejected
        );
        assert_eq!(classify_code(Some("MissingParameter"), Some(400)), ErrorClass::Rejected);
        assert_eq!(classify_code(None, Some(400)), ErrorClass::Rejected);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_stays_below_it() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for attempt in 0..40 {
            let cap = Duration::from_millis(100 * (1u64 << attempt.min(20))).min(Duration::from_secs(2));
            for _ in 0..20 {
                assert!(b.delay(attempt) <= cap);
            }
        }
        let spread: Vec<Duration> = (0..50).map(|_| b.delay(10)).collect();
        assert!(spread.iter().any(|d| *d > Duration::from_secs(1)), "{spread:?}");
        assert!(spread.iter().any(|d| *d < Duration::from_secs(1)), "{spread:?}");
    }
}
