//! The supervisor: every long-lived task of the agent is started here, by name, under one of
//! three policies.
//!
//! - **must-run** (the metric tick, the delivery of cycles, an output's senders): ending or
//!   panicking before the agent stops — or before the task's owner retired it (a replaced
//!   output) — is fatal: the agent drains, exits 1, and names the task in `/dev/termination-log`.
//! - **restartable** (the config watcher, the pod list source, a credential refresher): started
//!   again after a capped, jittered backoff, each restart counted in
//!   `kinsight_task_restarts_total{task}`.
//! - **oneshot** (work that is allowed to finish, such as retrying `sts:GetCallerIdentity` after
//!   a refresh): its end is not an event.
//!
//! Builders (`ship::build_cloudwatch`, `auth::build`, …) return futures; nothing below `app`
//! calls `tokio::spawn` for a long-lived task. With `panic = "abort"` (the release profile) a
//! panic ends the process at once instead, and the panic hook writes it to
//! `/dev/termination-log`; in debug builds and tests panics unwind and land here.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::ship::retry::Backoff;
use crate::telemetry::Telemetry;
use crate::telemetry::events::TaskRestarted;

/// Backoff between restarts of a restartable task: 1 s doubling to 5 minutes, full jitter.
const RESTART_BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    max: Duration::from_mins(5),
};

/// A restartable task that ran this long before ending starts over from the first backoff step.
const HEALTHY_RUN: Duration = Duration::from_mins(10);

/// A must-run task ended while it should still be running.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task} {cause}")]
pub struct TaskFailed {
    pub task: &'static str,
    /// "ended" or "panicked: <message>".
    pub cause: String,
}

struct Exit {
    task: &'static str,
    /// `None`: nobody cares how it ended (oneshot, restartable driver, retired owner).
    must_run: Option<CancellationToken>,
    panic: Option<String>,
}

/// Owns the agent's tasks. Not `Clone`: the run loop holds it and passes `&mut` to what starts
/// tasks (startup and reload).
#[derive(Debug)]
pub struct Supervisor {
    set: JoinSet<Exit>,
    telemetry: Telemetry,
    /// Cancelled when the agent stops: from then on no task end is fatal.
    stopping: CancellationToken,
}

impl std::fmt::Debug for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exit").field("task", &self.task).finish_non_exhaustive()
    }
}

fn panic_message(e: &(dyn std::any::Any + Send)) -> String {
    e.downcast_ref::<&str>()
        .map(ToString::to_string)
        .or_else(|| e.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl Supervisor {
    pub fn new(telemetry: Telemetry, stopping: CancellationToken) -> Self {
        Supervisor {
            set: JoinSet::new(),
            telemetry,
            stopping,
        }
    }

    /// Runs `fut` on its own task so that a panic is caught and named.
    fn spawn_named<F>(&mut self, task: &'static str, must_run: Option<CancellationToken>, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.set.spawn(async move {
            // Not a panic: it returned, or shutdown aborted it.
            let panic = match tokio::spawn(fut).await {
                Err(e) if e.is_panic() => Some(panic_message(&*e.into_panic())),
                _ => None,
            };
            Exit { task, must_run, panic }
        });
    }

    /// A task that must run until the agent stops.
    pub fn must_run<F>(&mut self, task: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.must_run_until(task, self.stopping.clone(), fut);
    }

    /// A task that must run until `owner` is cancelled (an output's sender, which ends when the
    /// output is retired by a reload), or the agent stops.
    pub fn must_run_until<F>(&mut self, task: &'static str, owner: CancellationToken, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        tracing::debug!(task, "task started");
        self.spawn_named(task, Some(owner), fut);
    }

    /// A task that may finish.
    pub fn oneshot<F>(&mut self, task: &'static str, fut: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_named(task, None, fut);
    }

    /// A task started again by `make` whenever it ends or panics before the agent stops.
    pub fn restartable<M, F>(&mut self, task: &'static str, make: M)
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        self.restartable_until(task, self.stopping.clone(), make);
    }

    /// A task started again by `make` whenever it ends or panics before `owner` is cancelled
    /// (the inputs stopping at shutdown, a replaced identity) or the agent stops.
    pub fn restartable_until<M, F>(&mut self, task: &'static str, owner: CancellationToken, mut make: M)
    where
        M: FnMut() -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let stopping = self.stopping.clone();
        let telemetry = self.telemetry.clone();
        tracing::debug!(task, "task started (restartable)");
        self.spawn_named(task, None, async move {
            let mut attempt: u32 = 0;
            loop {
                let started = tokio::time::Instant::now();
                let cause = match tokio::spawn(make()).await {
                    Ok(()) => "returned".to_string(),
                    Err(e) if e.is_panic() => format!("panicked: {}", panic_message(&*e.into_panic())),
                    Err(_) => return,
                };
                if stopping.is_cancelled() || owner.is_cancelled() {
                    return;
                }
                if started.elapsed() >= HEALTHY_RUN {
                    attempt = 0;
                }
                let delay = RESTART_BACKOFF.delay(attempt).max(Duration::from_millis(100));
                attempt = attempt.saturating_add(1);
                TaskRestarted {
                    task,
                    cause: &cause,
                    delay,
                }
                .emit(&telemetry);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = stopping.cancelled() => return,
                    () = owner.cancelled() => return,
                }
            }
        });
    }

    /// Waits for a must-run task to end while it should still run, and returns which. Pending
    /// for ever while every task behaves (and once all tasks have ended).
    pub async fn failure(&mut self) -> TaskFailed {
        loop {
            let Some(joined) = self.set.join_next().await else {
                return std::future::pending().await;
            };
            let Ok(exit) = joined else { continue };
            let Some(owner) = exit.must_run else { continue };
            if owner.is_cancelled() || self.stopping.is_cancelled() {
                tracing::debug!(task = exit.task, "task ended");
                continue;
            }
            let cause = match exit.panic {
                Some(msg) => format!("panicked: {msg}"),
                None => "ended while it should still run".into(),
            };
            return TaskFailed { task: exit.task, cause };
        }
    }

    /// After the agent was told to stop: waits up to `deadline` for every task to end, then
    /// aborts what is left (named in the log).
    pub async fn shutdown(mut self, deadline: tokio::time::Instant) {
        self.stopping.cancel();
        loop {
            tokio::select! {
                joined = self.set.join_next() => match joined {
                    None => return,
                    Some(Ok(exit)) if exit.panic.is_some() => {
                        tracing::error!(task = exit.task, panic = exit.panic.as_deref().unwrap_or(""), "task panicked while stopping");
                    }
                    Some(_) => {}
                },
                () = tokio::time::sleep_until(deadline) => {
                    tracing::warn!(tasks = self.set.len(), "tasks still running at the end of the drain; aborting them");
                    self.set.abort_all();
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::Name;

    #[tokio::test]
    async fn a_must_run_task_that_ends_is_reported_by_name() {
        let mut s = Supervisor::new(Telemetry::new(), CancellationToken::new());
        s.must_run("test::quits", async {});
        let failed = tokio::time::timeout(Duration::from_secs(5), s.failure()).await.unwrap();
        assert_eq!(failed.task, "test::quits");
        assert_eq!(failed.to_string(), "task test::quits ended while it should still run");
    }

    #[tokio::test]
    async fn a_must_run_task_that_panics_is_reported_with_its_message() {
        let mut s = Supervisor::new(Telemetry::new(), CancellationToken::new());
        s.must_run("test::panics", async { panic!("boom") });
        let failed = tokio::time::timeout(Duration::from_secs(5), s.failure()).await.unwrap();
        assert_eq!((failed.task, failed.cause.as_str()), ("test::panics", "panicked: boom"));
    }

    #[tokio::test]
    async fn a_retired_or_stopping_task_may_end() {
        let stopping = CancellationToken::new();
        let mut s = Supervisor::new(Telemetry::new(), stopping.clone());
        let owner = CancellationToken::new();
        owner.cancel();
        s.must_run_until("test::retired", owner, async {});
        s.oneshot("test::oneshot", async {});
        let r = tokio::time::timeout(Duration::from_millis(300), s.failure()).await;
        assert!(r.is_err(), "no failure expected, got {r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restartable_task_is_restarted_and_counted() {
        let t = Telemetry::new();
        let stopping = CancellationToken::new();
        let mut s = Supervisor::new(t.clone(), stopping.clone());
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let r = runs.clone();
        s.restartable("test::flaky", move || {
            let r = r.clone();
            async move {
                let run = r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                assert_ne!(run, 1, "second run panics");
            }
        });
        // Backoff is at most 1 s, then 2 s: within 10 s of paused time it runs at least 3 times.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(runs.load(std::sync::atomic::Ordering::SeqCst) >= 3);
        assert!(t.get(Name::TaskRestarts, &[("task", "test::flaky")]) >= 2.0);
        stopping.cancel();
        s.shutdown(tokio::time::Instant::now() + Duration::from_secs(5)).await;
    }
}
