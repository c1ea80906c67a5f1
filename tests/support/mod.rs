//! Test support shared by the integration tests in `tests/`.
//!
//! A file in `tests/` says `mod support;` and uses what it needs:
//! - [`require_env`]: a prerequisite that `scripts/test-env.sh` provides. Missing, the test skips
//!   with one line on stderr; under `CI=true` it fails instead.
//! - [`Moto`]: a `moto_server` of the test's own on a free port (STS and `CloudWatch Logs`), killed
//!   on drop.
//! - [`http_request`]: a tiny HTTP/1.1 client over `TcpStream`, for raw AWS calls and read-back.
//! - [`kinsight`], [`run`], [`json_lines`], [`metrics`], [`find_metric`]: run the built binary
//!   with a clean environment and read its `--output stdout` JSON lines.
//! - [`dcgm::dcgm_exporter`]: a fake node-local DCGM exporter serving a real-format fixture;
//!   [`pod_resources::FakeKubelet`]: the kubelet's pod-resources gRPC API on a Unix socket;
//!   [`efa::EfaDevice`]: EFA devices' sysfs counters under a test's host root.
//!   [`neuron_monitor::neuron_monitor`]: a fake AWS neuron-monitor exporter (real-format fixture).
//! - [`wait_until`]: wait for a condition instead of sleeping for luck.
//! - [`StrictCloudwatch`]: the strict local CloudWatch metrics endpoint (rpc-v2-cbor
//!   `PutMetricData`, real limits, scripted faults), in-process; [`test_sdk_config`] points an SDK
//!   client at a local server with static test credentials.
//! - [`sigv4`]: `SigV4` signatures recomputed from a request as received, with those test
//!   credentials; the strict CloudWatch Logs endpoint refuses a request that does not verify.

// Every file in tests/ is a crate of its own and uses only part of this module; the rest would be
// reported as dead code (and the re-exports below as unused imports) in each of them.
#![allow(dead_code, unused_imports)]

mod cgroups;
mod chaos;
mod cloudwatch;
mod cloudwatch_logs;
pub mod dates;
pub mod dcgm;
pub mod efa;
pub mod fake_server;
mod http;
pub mod imds;
mod kube_api;
mod moto;
pub mod neuron_monitor;
pub mod pod_identity;
pub mod pod_resources;
mod process;
pub mod sigv4;

use std::thread;
use std::time::Duration;

pub use self::cgroups::{Cleanup, is_root, start_in};
pub use self::chaos::Chaos;
pub use self::cloudwatch::{
    AcceptedDatum, Cbor, Fault, Ministack, PUT_METRIC_DATA_PATH, RecordedRequest, StrictCloudwatch, decode_value,
    test_sdk_config,
};
pub use self::cloudwatch_logs::{
    LOGS_EVENT_OVERHEAD, LOGS_MAX_BATCH_BYTES, LOGS_MAX_EVENTS, LOGS_MAX_MESSAGE_BYTES, LogsFault, LogsRequest,
    RejectedInfo, StoredLogEvent, StrictLogs,
};
pub use self::fake_server::{FakeServer, Request as FakeRequest, Response as FakeResponse, expiration_in};
pub use self::http::{http_request, try_http_request};
pub use self::imds::Imds;
pub use self::kube_api::{ApiRequest, KubeApi};
pub use self::moto::{FAKE_SIGV4_AUTHORIZATION, Moto};
pub use self::pod_identity::PodIdentity;
pub use self::process::{
    RUN_TIMEOUT, Run, find_metric, json_lines, kinsight, kinsight_bin, metrics, of_kind, run, run_with_timeout,
};

/// The value of `var`, an environment variable that `scripts/test-env.sh` sets for one tier's
/// prerequisite.
///
/// When it is missing or empty, this prints `skipping: VAR not set (run scripts/test)` to stderr
/// and returns `None`, and the test returns early:
///
/// ```ignore
/// let Some(server) = support::require_env("KINSIGHT_TEST_MOTO_SERVER") else { return };
/// ```
///
/// Under `CI=true` it panics instead, so that a broken `.ci/run` cannot hide a whole tier.
#[allow(
    clippy::disallowed_methods,
    reason = "the harness passes KINSIGHT_TEST_* to the test process itself; no agent code reads them"
)]
pub fn require_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ if in_ci() => panic!(
            "{var} is not set under CI=true: scripts/test-env.sh (sourced by scripts/test, which \
             .ci/run runs) must export it, or a whole test tier would silently not run"
        ),
        _ => {
            skip(&format!("{var} not set (run scripts/test)"));
            None
        }
    }
}

/// Says that the calling test skips, and why: one line on stderr, and one line appended to the
/// file named by `KINSIGHT_SKIP_LOG` (set by `scripts/test`, which prints the skips at the end,
/// because cargo's harness hides the output of tests that pass).
#[allow(
    clippy::disallowed_methods,
    reason = "the harness passes KINSIGHT_SKIP_LOG to the test process itself; no agent code reads it"
)]
pub fn skip(why: &str) {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    eprintln!("skipping: {why}");
    if let Ok(path) = std::env::var("KINSIGHT_SKIP_LOG")
        && !path.is_empty()
        && let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path)
    {
        use std::io::Write as _;
        let _ = writeln!(f, "{test}: {why}");
    }
}

/// Whether the tests run under CI (`CI` set to anything but empty, `0` or `false`).
#[allow(
    clippy::disallowed_methods,
    reason = "CI=true is the harness's own switch; no agent code reads it"
)]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Calls `cond` until it returns `true` (then `true`) or `timeout` has passed (then `false`),
/// sleeping `poll` between calls. For conditions that other processes make true, such as a file
/// appearing or a server answering; never sleep for luck instead.
pub fn wait_until(timeout: Duration, poll: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Deadline::after(timeout);
    loop {
        if cond() {
            return true;
        }
        if deadline.passed() {
            return false;
        }
        thread::sleep(poll);
    }
}

pub use self::clock::Deadline;

mod clock {
    //! The wall clock, in one place. clippy.toml bans `std::time::Instant` so that the agent's
    //! timers follow paused tokio time; test support waits on *other processes*, which paused
    //! time does not move, so it needs the real clock.
    #![allow(
        clippy::disallowed_types,
        reason = "waits on other processes need the wall clock, not tokio's paused one"
    )]

    use std::time::{Duration, Instant};

    /// A point on the wall clock after which a wait gives up.
    #[derive(Clone, Copy, Debug)]
    pub struct Deadline(Instant);

    impl Deadline {
        pub fn after(timeout: Duration) -> Self {
            Self(Instant::now() + timeout)
        }

        pub fn passed(self) -> bool {
            Instant::now() >= self.0
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (the listener is closed again), for an
/// agent's telemetry endpoint.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A path in the repository (fixtures, scripts).
pub fn repo(p: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Copies a fixture tree, keeping its symlinks as links (the `/var/log/containers` links and
/// cgroup layouts depend on them).
pub fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        let ft = entry.file_type().unwrap();
        if ft.is_dir() {
            copy_dir(&entry.path(), &target);
        } else if ft.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), &target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
