//! [`Identity`]: the one owner of the current AWS credentials; no other module caches them.
//!
//! Every AWS client asks it on every request (the SDK's identity cache is off: its lazy cache
//! would refresh inline, on a request, only 5–10 s before expiry), and it answers
//! from memory: no I/O ever happens on the send path. A background task refreshes the
//! credentials well before they expire, keeps serving the still-valid ones while a refresh
//! fails, and retries with backoff. Only once they have expired does [`Identity`] answer an
//! error, which names the expiry and the last refresh error; the first successful refresh
//! recovers by itself.

use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::host::Clock;
use crate::telemetry::Telemetry;
use crate::telemetry::events::{CredentialsExpiry, CredentialsRefreshFailed, CredentialsRefreshed};

/// The most a refresh starts before expiry: 15 minutes, i.e. 45 minutes into 1-hour IRSA
/// credentials.
const MAX_LEAD: Duration = Duration::from_mins(15);
/// The most jitter taken off the refresh time, so that a fleet of nodes started together does
/// not refresh in the same second.
const MAX_JITTER: Duration = Duration::from_mins(1);
/// Backoff after a failed refresh: 1 s doubling to 60 s, full jitter.
const BACKOFF_BASE: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_mins(1);
/// A floor under the jittered backoff, so that a jitter draw near zero cannot spin.
const BACKOFF_FLOOR: Duration = Duration::from_millis(100);
/// One refresh attempt, SDK retries included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(30);
/// At most one forced refresh per 30 s: a burst of `ExpiredToken` answers from many
/// in-flight requests makes one STS call, not hundreds.
pub const FORCE_DEBOUNCE: Duration = Duration::from_secs(30);
/// How often the `kinsight_aws_credentials_expiry_seconds` gauge is brought up to date.
const GAUGE_PERIOD: Duration = Duration::from_mins(1);
/// At most one "still failing" line per minute after the first WARN.
const FAILURE_LOG_PERIOD: Duration = Duration::from_mins(1);

/// When a refresh of credentials obtained at `obtained` and expiring at `expiry` is due:
/// `expiry − lead − jitter`, `lead = min(15 min, lifetime / 2)`, `jitter` uniform in
/// `[0, min(60 s, lifetime / 10)]`; `unit` in `[0, 1]` picks the point in that range.
pub fn refresh_due(obtained: SystemTime, expiry: SystemTime, unit: f64) -> SystemTime {
    let lifetime = expiry.duration_since(obtained).unwrap_or_default();
    let lead = MAX_LEAD.min(lifetime / 2);
    let jitter = MAX_JITTER.min(lifetime / 10).mul_f64(unit.clamp(0.0, 1.0));
    expiry.checked_sub(lead + jitter).unwrap_or(obtained).max(obtained)
}

/// Delay before retry number `failures` (1-based): uniform in `[0, min(60 s, 1 s · 2^(n−1))]`
/// (full jitter), never below 100 ms.
pub fn backoff(failures: u32, unit: f64) -> Duration {
    let cap = BACKOFF_BASE
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(BACKOFF_MAX);
    cap.mul_f64(unit.clamp(0.0, 1.0)).max(BACKOFF_FLOOR)
}

/// The error [`Identity`] answers once the credentials have expired and no refresh succeeded.
#[derive(Debug, thiserror::Error)]
#[error("AWS credentials ({identity}) expired at {expired_at} and could not be refreshed; last error: {last_error}")]
pub struct CredentialsExpired {
    pub identity: String,
    pub expired_at: String,
    pub last_error: String,
}

struct State {
    creds: Credentials,
    obtained: SystemTime,
    /// The last refresh error, one line (never contains a secret: provider errors name files,
    /// URLs and STS error codes only).
    last_error: Option<String>,
}

// Hand-written: `Credentials`' Debug prints the whole access key ID.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("expiry", &self.creds.expiry())
            .field("obtained", &self.obtained)
            .field("last_error", &self.last_error)
            .finish_non_exhaustive()
    }
}

struct Inner {
    /// What this identity is, for logs and errors: `irsa`, `pod-identity`, `agent role <arn>`…
    label: String,
    /// Telemetry label of this identity: `base`, `agent_role` or `logs_role`.
    role: &'static str,
    /// The pinned link: the refresher calls only this, never the whole chain, so a failed refresh
    /// can never fall through to the node role.
    source: SharedCredentialsProvider,
    clock: Arc<dyn Clock>,
    telemetry: Telemetry,
    state: RwLock<State>,
    force: Notify,
    last_forced: Mutex<Option<tokio::time::Instant>>,
    /// Counts successful refreshes; [`Identity::refreshes`] hands out receivers.
    refreshed: watch::Sender<u64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credentials themselves: `Credentials`' Debug prints the whole access key ID.
        f.debug_struct("Identity")
            .field("label", &self.label)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// The current credentials of one identity, and the handle of its refresher. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

impl Identity {
    /// An identity serving `first` (just loaded from `source`) and refreshing from `source` once
    /// [`Identity::refresher`] runs.
    pub fn new(
        label: impl Into<String>,
        role: &'static str,
        source: SharedCredentialsProvider,
        first: Credentials,
        clock: Arc<dyn Clock>,
        telemetry: Telemetry,
    ) -> Identity {
        let obtained = now(clock.as_ref());
        let identity = Identity {
            inner: Arc::new(Inner {
                label: label.into(),
                role,
                source,
                clock,
                telemetry,
                state: RwLock::new(State {
                    creds: first,
                    obtained,
                    last_error: None,
                }),
                force: Notify::new(),
                last_forced: Mutex::new(None),
                refreshed: watch::Sender::new(0),
            }),
        };
        identity.update_gauge();
        identity
    }

    /// The credentials, or the "expired" error: memory only, no I/O.
    pub fn current(&self) -> Result<Credentials, CredentialsError> {
        let state = self.inner.state.read().unwrap_or_else(PoisonError::into_inner);
        match state.creds.expiry() {
            Some(expiry) if now(self.inner.clock.as_ref()) >= expiry => {
                Err(CredentialsError::provider_error(CredentialsExpired {
                    identity: self.inner.label.clone(),
                    expired_at: humantime::format_rfc3339_seconds(expiry).to_string(),
                    last_error: state.last_error.clone().unwrap_or_else(|| "none yet".into()),
                }))
            }
            _ => Ok(state.creds.clone()),
        }
    }

    /// Whether the current credentials are still valid (`/readyz` is ready only while they are).
    pub fn is_valid(&self) -> bool {
        self.current().is_ok()
    }

    /// When the current credentials expire; `None` for static keys.
    pub fn expiry(&self) -> Option<SystemTime> {
        self.inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .creds
            .expiry()
    }

    /// The first four characters of the access key ID (`ASIA` temporary, `AKIA` long-term): the
    /// only part of the credentials ever logged.
    pub fn access_key_prefix(&self) -> String {
        let state = self.inner.state.read().unwrap_or_else(PoisonError::into_inner);
        state.creds.access_key_id().chars().take(4).collect()
    }

    /// When the refresher will next call the source, with a mid-range jitter (for the report).
    pub fn refresh_at(&self) -> Option<SystemTime> {
        let state = self.inner.state.read().unwrap_or_else(PoisonError::into_inner);
        state.creds.expiry().map(|e| refresh_due(state.obtained, e, 0.5))
    }

    /// Asks the refresher for a refresh now, because AWS rejected the credentials themselves
    /// (`ExpiredToken`, `InvalidClientTokenId`, …; never for `AccessDenied`, a missing permission). Debounced: at
    /// most one per [`FORCE_DEBOUNCE`]. Returns whether this call triggered one.
    pub fn refresh_now(&self, reason: &str) -> bool {
        let now = self.inner.clock.monotonic();
        let mut last = self.inner.last_forced.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|t| now.duration_since(t) < FORCE_DEBOUNCE) {
            return false;
        }
        *last = Some(now);
        tracing::info!(identity = %self.inner.label, reason, "forced credentials refresh");
        self.inner.force.notify_one();
        true
    }

    /// A receiver that changes after every successful refresh (the value counts them). For work
    /// that waits on fresh credentials, such as retrying a startup `sts:GetCallerIdentity` that failed.
    pub fn refreshes(&self) -> watch::Receiver<u64> {
        self.inner.refreshed.subscribe()
    }

    /// The background refresher, for the supervisor to run; it ends when `cancel` fires.
    pub fn refresher(&self, cancel: CancellationToken) -> impl std::future::Future<Output = ()> + Send + use<> {
        let this = self.clone();
        async move { this.refresh_loop(cancel, fastrand::f64).await }
    }

    fn update_gauge(&self) {
        let left = self.expiry().map(|e| {
            e.duration_since(now(self.inner.clock.as_ref()))
                .unwrap_or_default()
                .as_secs_f64()
        });
        CredentialsExpiry {
            role: self.inner.role,
            seconds_left: left,
        }
        .emit(&self.inner.telemetry);
    }

    /// The refresher: sleep until due (or forced), refresh, back off on failure. `unit` draws the
    /// jitter in `[0, 1]` (tests pass a constant).
    pub async fn refresh_loop(self, cancel: CancellationToken, mut unit: impl FnMut() -> f64 + Send) {
        let clock = self.inner.clock.clone();
        let mut due = self.next_due(unit());
        let mut failures: u32 = 0;
        let mut last_failure_log: Option<tokio::time::Instant> = None;
        loop {
            // Static keys have no expiry: only a forced refresh (or the gauge tick) wakes us.
            let wait = due.map_or(GAUGE_PERIOD, |d| {
                d.duration_since(now(clock.as_ref()))
                    .unwrap_or_default()
                    .min(GAUGE_PERIOD)
            });
            let forced = tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(wait) => false,
                () = self.inner.force.notified() => true,
            };
            self.update_gauge();
            if !forced && due.is_none_or(|d| now(clock.as_ref()) < d) {
                continue;
            }
            match self.attempt().await {
                Ok(creds) => {
                    CredentialsRefreshed {
                        identity: &self.inner.label,
                        role: self.inner.role,
                        after_failures: failures,
                        expiry: creds.expiry(),
                    }
                    .emit(&self.inner.telemetry);
                    {
                        let mut state = self.inner.state.write().unwrap_or_else(PoisonError::into_inner);
                        state.creds = creds;
                        state.obtained = now(clock.as_ref());
                        state.last_error = None;
                    }
                    failures = 0;
                    last_failure_log = None;
                    self.inner.refreshed.send_modify(|n| *n += 1);
                    self.update_gauge();
                    due = self.next_due(unit());
                }
                Err(error) => {
                    failures = failures.saturating_add(1);
                    let mono = clock.monotonic();
                    let log = last_failure_log.is_none_or(|t| mono.duration_since(t) >= FAILURE_LOG_PERIOD);
                    if log {
                        last_failure_log = Some(mono);
                    }
                    let expiry = self.expiry();
                    CredentialsRefreshFailed {
                        identity: &self.inner.label,
                        role: self.inner.role,
                        error: &error,
                        failures,
                        expiry,
                        expired: expiry.is_some_and(|e| now(clock.as_ref()) >= e),
                        log,
                    }
                    .emit(&self.inner.telemetry);
                    self.inner
                        .state
                        .write()
                        .unwrap_or_else(PoisonError::into_inner)
                        .last_error = Some(error);
                    // Retry with backoff, but while the credentials are valid never sleep past
                    // their expiry: the attempt at expiry is the last chance to stay ready.
                    let t = now(clock.as_ref());
                    let mut delay = backoff(failures, unit());
                    if let Some(left) = expiry.and_then(|e| e.duration_since(t).ok())
                        && !left.is_zero()
                    {
                        delay = delay.min(left);
                    }
                    due = Some(t + delay);
                }
            }
        }
    }

    fn next_due(&self, unit: f64) -> Option<SystemTime> {
        let state = self.inner.state.read().unwrap_or_else(PoisonError::into_inner);
        state.creds.expiry().map(|e| refresh_due(state.obtained, e, unit))
    }

    /// One call to the pinned source, bounded by [`ATTEMPT_TIMEOUT`]. The error is one line.
    async fn attempt(&self) -> Result<Credentials, String> {
        match tokio::time::timeout(ATTEMPT_TIMEOUT, self.inner.source.provide_credentials()).await {
            Ok(Ok(creds)) => Ok(creds),
            Ok(Err(e)) => Err(crate::telemetry::chain(&e)),
            Err(_) => Err(format!("no answer within {} s", ATTEMPT_TIMEOUT.as_secs())),
        }
    }
}

impl ProvideCredentials for Identity {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.current())
    }
}

fn now(clock: &dyn Clock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(clock.wall_ms()).unwrap_or(0))
}

#[cfg(test)]
mod tests;
