//! The refresher with a fake clock and a fake pinned link: tokio's paused time
//! drives both the timers and the wall clock, so an hour of refreshes runs in milliseconds.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::telemetry::Name;

const HOUR: Duration = Duration::from_hours(1);
const BASE_MS: i64 = 1_800_000_000_000;

/// Wall time that follows tokio's (paused) clock.
#[derive(Debug)]
struct FakeClock {
    start: tokio::time::Instant,
}

impl Clock for FakeClock {
    fn wall_ms(&self) -> i64 {
        BASE_MS + i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
    fn monotonic(&self) -> tokio::time::Instant {
        tokio::time::Instant::now()
    }
}

/// A pinned link: answers from a script, then fresh 1-hour credentials; counts its calls.
#[derive(Debug)]
struct FakeLink {
    clock: Arc<FakeClock>,
    script: Mutex<VecDeque<Result<(), &'static str>>>,
    calls: AtomicUsize,
    /// While set, every call fails with "sts down" (after the script).
    down: std::sync::atomic::AtomicBool,
}

impl FakeLink {
    fn creds(clock: &FakeClock, n: usize) -> Credentials {
        Credentials::new(
            format!("ASIAFAKE{n}"),
            "secret",
            Some("token".into()),
            Some(now(clock) + HOUR),
            "fake",
        )
    }
}

impl ProvideCredentials for FakeLink {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let fallback = if self.down.load(Ordering::SeqCst) {
            Err("sts down")
        } else {
            Ok(())
        };
        let step = self.script.lock().unwrap().pop_front().unwrap_or(fallback);
        future::ProvideCredentials::ready(match step {
            Ok(()) => Ok(Self::creds(&self.clock, n)),
            Err(msg) => Err(CredentialsError::provider_error(msg)),
        })
    }
}

struct Setup {
    identity: Identity,
    link: Arc<FakeLink>,
    clock: Arc<FakeClock>,
    telemetry: Telemetry,
    cancel: CancellationToken,
}

fn setup(script: Vec<Result<(), &'static str>>) -> Setup {
    let clock = Arc::new(FakeClock {
        start: tokio::time::Instant::now(),
    });
    let link = Arc::new(FakeLink {
        clock: clock.clone(),
        script: Mutex::new(script.into()),
        calls: AtomicUsize::new(0),
        down: std::sync::atomic::AtomicBool::new(false),
    });
    let telemetry = Telemetry::new();
    let first = FakeLink::creds(&clock, 0);
    let identity = Identity::new(
        "irsa",
        "base",
        SharedCredentialsProvider::new(ArcLink(link.clone())),
        first,
        clock.clone(),
        telemetry.clone(),
    );
    let cancel = CancellationToken::new();
    let id = identity.clone();
    let c = cancel.clone();
    // Jitter unit 0: refresh exactly `lead` before expiry, backoff at its floor.
    tokio::spawn(async move { id.refresh_loop(c, || 0.0).await });
    Setup {
        identity,
        link,
        clock,
        telemetry,
        cancel,
    }
}

#[derive(Debug)]
struct ArcLink(Arc<FakeLink>);

impl ProvideCredentials for ArcLink {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        self.0.provide_credentials()
    }
}

/// Lets spawned tasks run at the current paused instant.
async fn settle() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

/// Moves paused time to `since_start`, in steps of at most a second so that every timer the
/// refresher sets on the way fires at its own instant.
async fn advance_to(s: &Setup, since_start: Duration) {
    let target = s.clock.start + since_start;
    loop {
        let now = tokio::time::Instant::now();
        if now >= target {
            break;
        }
        tokio::time::advance((target - now).min(Duration::from_secs(1))).await;
        settle().await;
    }
    settle().await;
}

#[test]
fn schedule_is_fifteen_minutes_before_a_one_hour_expiry() {
    let t0 = UNIX_EPOCH + Duration::from_hours(500_000);
    let due = refresh_due(t0, t0 + HOUR, 0.0);
    assert_eq!(due, t0 + Duration::from_mins(45));
    // Full jitter takes at most min(60 s, lifetime / 10) more.
    assert_eq!(refresh_due(t0, t0 + HOUR, 1.0), t0 + Duration::from_mins(44));
    // Short lifetimes: lead = lifetime / 2, jitter ≤ lifetime / 10.
    let five = Duration::from_mins(5);
    assert_eq!(refresh_due(t0, t0 + five, 0.0), t0 + Duration::from_secs(150));
    assert_eq!(refresh_due(t0, t0 + five, 1.0), t0 + Duration::from_mins(2));
    // Already expired: due at once.
    assert_eq!(refresh_due(t0, t0, 0.5), t0);
}

#[test]
fn backoff_doubles_to_a_minute_with_full_jitter() {
    assert_eq!(backoff(1, 1.0), Duration::from_secs(1));
    assert_eq!(backoff(2, 1.0), Duration::from_secs(2));
    assert_eq!(backoff(6, 1.0), Duration::from_secs(32));
    assert_eq!(backoff(7, 1.0), Duration::from_mins(1));
    assert_eq!(backoff(40, 1.0), Duration::from_mins(1));
    assert_eq!(backoff(3, 0.5), Duration::from_secs(2));
    assert_eq!(backoff(3, 0.0), BACKOFF_FLOOR);
}

#[tokio::test(start_paused = true)]
async fn refreshes_fifteen_minutes_before_expiry_and_only_from_the_pinned_link() {
    let s = setup(vec![]);
    settle().await;
    advance_to(&s, Duration::from_mins(44)).await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 0, "no refresh before the lead");
    assert_eq!(s.identity.access_key_prefix(), "ASIA");
    advance_to(&s, Duration::from_mins(45) + Duration::from_millis(1)).await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 1, "one refresh at expiry - 15 min");
    let c = s.identity.current().expect("fresh credentials");
    assert_eq!(c.access_key_id(), "ASIAFAKE1");
    let refreshed_at = UNIX_EPOCH + Duration::from_millis(u64::try_from(BASE_MS).unwrap()) + Duration::from_mins(45);
    let expiry = c.expiry().expect("expiry");
    assert!(expiry >= refreshed_at + HOUR && expiry <= refreshed_at + HOUR + Duration::from_secs(1));
    // The next one comes 45 minutes after that, not before.
    advance_to(&s, Duration::from_mins(89)).await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 1);
    advance_to(&s, Duration::from_mins(91)).await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 2);
    assert!(
        (s.telemetry
            .get(Name::AwsCredentialsRefresh, &[("result", "ok"), ("role", "base")])
            - 2.0)
            .abs()
            < 1e-9
    );
    let left = s.telemetry.get(Name::AwsCredentialsExpiry, &[("role", "base")]);
    assert!(left > 2_600.0 && left <= 3_600.0, "expiry gauge {left}");
    s.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn failing_refresh_keeps_valid_credentials_then_errors_after_expiry_then_recovers() {
    let s = setup(vec![]);
    s.link.down.store(true, Ordering::SeqCst);
    settle().await;
    advance_to(&s, Duration::from_mins(50)).await;
    let calls = s.link.calls.load(Ordering::SeqCst);
    assert!(calls >= 2, "retries with backoff while valid ({calls} calls)");
    assert_eq!(
        s.identity.current().expect("still valid").access_key_id(),
        "ASIAFAKE0",
        "the old credentials are served while valid"
    );
    // Past expiry: the clear error, naming the expiry and the last error.
    advance_to(&s, HOUR + Duration::from_secs(1)).await;
    let err = s.identity.current().expect_err("expired");
    let text = crate::telemetry::chain(&err);
    assert!(text.contains("expired at"), "{text}");
    assert!(text.contains("sts down"), "{text}");
    assert!(!s.identity.is_valid());
    assert!(
        s.telemetry
            .get(Name::AwsCredentialsRefresh, &[("result", "error"), ("role", "base")])
            >= 2.0
    );
    // STS comes back: backoff never exceeds a minute, so recovery follows within one.
    s.link.down.store(false, Ordering::SeqCst);
    let before = s.link.calls.load(Ordering::SeqCst);
    advance_to(&s, HOUR + Duration::from_secs(62)).await;
    assert!(s.link.calls.load(Ordering::SeqCst) > before);
    assert!(s.identity.is_valid(), "recovered without outside help");
    s.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn forced_refresh_is_debounced() {
    let s = setup(vec![]);
    settle().await;
    assert!(s.identity.refresh_now("ExpiredToken"));
    settle().await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 1);
    assert!(!s.identity.refresh_now("ExpiredToken"), "within 30 s: ignored");
    assert!(!s.identity.refresh_now("InvalidClientTokenId"));
    settle().await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 1);
    advance_to(&s, FORCE_DEBOUNCE + Duration::from_secs(1)).await;
    assert!(s.identity.refresh_now("ExpiredToken"));
    settle().await;
    assert_eq!(s.link.calls.load(Ordering::SeqCst), 2);
    s.cancel.cancel();
}

#[tokio::test(start_paused = true)]
async fn static_keys_are_never_refreshed() {
    let clock = Arc::new(FakeClock {
        start: tokio::time::Instant::now(),
    });
    let link = Arc::new(FakeLink {
        clock: clock.clone(),
        script: Mutex::new(VecDeque::new()),
        calls: AtomicUsize::new(0),
        down: std::sync::atomic::AtomicBool::new(false),
    });
    let identity = Identity::new(
        "environment",
        "base",
        SharedCredentialsProvider::new(ArcLink(link.clone())),
        Credentials::new("AKIASTATIC", "s", None, None, "env"),
        clock.clone(),
        Telemetry::new(),
    );
    let cancel = CancellationToken::new();
    let (id, c) = (identity.clone(), cancel.clone());
    tokio::spawn(async move { id.refresh_loop(c, || 0.5).await });
    tokio::time::advance(Duration::from_hours(30)).await;
    settle().await;
    assert_eq!(link.calls.load(Ordering::SeqCst), 0);
    assert!(identity.is_valid());
    cancel.cancel();
}

/// Every kinsight type that holds credentials, formatted with `{:?}` and `{:#?}`: no access key
/// ID, secret or session token may appear.
#[tokio::test]
async fn no_debug_output_shows_a_key() {
    use crate::auth::chain::{Link, Pinned};
    use crate::auth::{IdentityKind, sdk_config};

    const KEY_ID: &str = "ASIADEBUGKEYID000001";
    const SECRET: &str = "debugSecretAccessKey00000000000000000001";
    const TOKEN: &str = "debugSessionToken0001";
    let creds = Credentials::new(
        KEY_ID,
        SECRET,
        Some(TOKEN.into()),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
        "test",
    );
    // The control: the SDK type itself prints the key ID, which is why the impls below exist.
    assert!(format!("{creds:?}").contains(KEY_ID));

    let provider = SharedCredentialsProvider::new(creds.clone());
    let identity = Identity::new(
        "test",
        "base",
        provider.clone(),
        creds.clone(),
        Arc::new(crate::host::SystemClock),
        Telemetry::new(),
    );
    let link = Link {
        kind: IdentityKind::Environment,
        provider: provider.clone(),
    };
    let pinned = Pinned {
        kind: IdentityKind::Environment,
        provider,
        first: creds.clone(),
    };
    let state = State {
        creds,
        obtained: SystemTime::UNIX_EPOCH,
        last_error: None,
    };
    let sdk = sdk_config(&aws_types::region::Region::new("us-east-1"), &identity).await;
    let texts = [
        format!("{link:?}{link:#?}"),
        format!("{pinned:?}{pinned:#?}"),
        format!("{state:?}{state:#?}"),
        format!("{identity:?}{identity:#?}"),
        format!("{sdk:?}{sdk:#?}"),
    ];
    for text in &texts {
        for secret in [KEY_ID, SECRET, TOKEN] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
    assert!(texts[1].contains("Environment"), "{}", texts[1]);
}
