//! The collection loop: a tick every interval, the cycle run off the async workers, its output
//! handed to the delivery side through a bounded channel.
//!
//! Ticks fall on second 30 of the minute and every interval on that phase, so a datapoint never
//! straddles a minute boundary (the CloudWatch agent aligns its Container Insights collection
//! the same way). A cycle reads thousands of small node files synchronously (95 ms of CPU at 737
//! pods in `emf` + enhanced mode), so it runs on tokio's blocking pool: log tailers and HTTP
//! clients on the two async workers never wait behind it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::host::{Clock, thread_cpu_time};
use crate::telemetry::events::{CycleCompleted, CycleSkipped};
use crate::telemetry::{Heartbeat, Telemetry};

use super::collect::{Collector, Cycle, Settings};

/// Cycles waiting for the delivery side. Delivery only queues (it never waits for the network),
/// so one cycle in hand and one waiting is plenty; a full channel means delivery is stuck, which
/// `/healthz` reports.
pub const CYCLE_QUEUE: usize = 2;

/// How many intervals without a completed cycle make `/healthz` fail.
pub const STUCK_AFTER_INTERVALS: u32 = 3;

/// Delay from `now_ms` to the next tick on the second-30 phase of `interval`.
pub fn next_tick_delay(now_ms: i64, interval: Duration) -> Duration {
    let i = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1);
    let offset = (now_ms - 30_000).rem_euclid(i);
    Duration::from_millis(u64::try_from(i - offset).unwrap_or(0))
}

/// The heartbeat bound for `interval`: three intervals, plus a minute for a slow first cycle.
pub fn stuck_bound(interval: Duration) -> Duration {
    interval * STUCK_AFTER_INTERVALS + Duration::from_mins(1)
}

/// Runs `f` on tokio's blocking pool, so that the async workers go on meanwhile. A panic in `f`
/// is the caller's (the supervisor reports it with the task's name).
pub async fn on_blocking_pool<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(f).await {
        Ok(done) => done,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs one cycle on the blocking pool and gives the collector back with it. The CPU time is
/// measured on the thread that ran it.
pub async fn collect_off_thread(mut collector: Collector, clock: Arc<dyn Clock>) -> (Collector, Cycle, Duration) {
    on_blocking_pool(move || {
        let cpu_started = thread_cpu_time();
        let cycle = collector.collect(clock.as_ref());
        let cpu = thread_cpu_time().saturating_sub(cpu_started);
        (collector, cycle, cpu)
    })
    .await
}

/// The tick loop, until `cancel`: collects every interval and sends each cycle to `out`.
/// `settings` carries reloaded settings (interval, destination, node attributes).
pub async fn run(
    mut collector: Collector,
    clock: Arc<dyn Clock>,
    mut settings: watch::Receiver<Settings>,
    out: mpsc::Sender<Cycle>,
    telemetry: Telemetry,
    heartbeat: Heartbeat,
    cancel: CancellationToken,
) {
    loop {
        let interval = collector.settings().interval;
        let delay = next_tick_delay(clock.wall_ms(), interval);
        tokio::select! {
            () = cancel.cancelled() => return,
            changed = settings.changed() => {
                if changed.is_err() {
                    // The sender is gone only at shutdown; keep ticking until cancelled.
                    cancel.cancelled().await;
                    return;
                }
                let s = settings.borrow_and_update().clone();
                heartbeat.set_bound(stuck_bound(s.interval));
                collector.reconfigure(s);
            }
            () = tokio::time::sleep(delay) => {
                let started = clock.monotonic();
                let (back, cycle, cpu) = collect_off_thread(collector, clock.clone()).await;
                collector = back;
                let (records, datums) = (cycle.records.len(), cycle.datums.len());
                tokio::select! {
                    () = cancel.cancelled() => return,
                    sent = out.send(cycle) => if sent.is_err() { return },
                }
                let elapsed = clock.monotonic() - started;
                CycleCompleted { records, datums, elapsed, cpu }.emit(&telemetry);
                heartbeat.beat();
                if elapsed > interval {
                    CycleSkipped.emit(&telemetry);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With one async worker, a task keeps running while a slow synchronous job (a cycle over
    /// thousands of files) runs on the blocking pool: the worker is not held.
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocking_job_does_not_hold_the_async_worker() {
        let ticks = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(5)).await;
                t.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        let worker = std::thread::current().id();
        let (ran_on, during) = on_blocking_pool({
            let ticks = ticks.clone();
            move || {
                let start = ticks.load(std::sync::atomic::Ordering::SeqCst);
                // Busy for 300 ms, as a long cycle would be.
                let until = std::time::SystemTime::now() + Duration::from_millis(300);
                while std::time::SystemTime::now() < until {
                    std::hint::spin_loop();
                }
                (
                    std::thread::current().id(),
                    ticks.load(std::sync::atomic::Ordering::SeqCst) - start,
                )
            }
        })
        .await;
        ticker.abort();
        assert_ne!(ran_on, worker, "the job ran on the blocking pool");
        assert!(during >= 10, "the async task ticked only {during} times during the job");
    }

    #[test]
    fn ticks_fall_on_second_30_phase() {
        // 12:00:10.000 with a 60 s interval → 12:00:30, 20 s later.
        let noon_10 = 1_764_331_210_000; // a whole minute + 10 s
        assert_eq!(noon_10 % 60_000, 10_000);
        assert_eq!(
            next_tick_delay(noon_10, Duration::from_mins(1)),
            Duration::from_secs(20)
        );
        // With 10 s: the phase is :30, :40, … → next at :20.
        assert_eq!(
            next_tick_delay(noon_10, Duration::from_secs(10)),
            Duration::from_secs(10)
        );
        assert_eq!(
            next_tick_delay(noon_10 + 1, Duration::from_secs(10)),
            Duration::from_millis(9_999)
        );
        // Exactly on a tick: the next one, a whole interval later.
        assert_eq!(
            next_tick_delay(noon_10 + 20_000, Duration::from_mins(1)),
            Duration::from_mins(1)
        );
    }
}
