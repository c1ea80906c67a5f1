//! What `/healthz` and `/readyz` answer.
//!
//! - Liveness: each must-run task that works in rounds (the metric tick, the delivery of its
//!   cycles) registers a [`Heartbeat`] with a bound. `/healthz` fails, naming the task, when a
//!   heartbeat is older than its bound: the kubelet then restarts a pod whose loop is stuck,
//!   which no amount of waiting would fix. A task waiting on the network (a sender retrying
//!   through an outage) is not stuck and has no heartbeat: restarting would not help it.
//! - Readiness: named conditions (`cycle`, `credentials`, `pod_index`), each unmet until a
//!   component says otherwise; `/readyz` lists those not met.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Default)]
pub(super) struct Health {
    beats: Mutex<BTreeMap<&'static str, Beat>>,
    conditions: Mutex<BTreeMap<&'static str, Condition>>,
    /// Degradations that do not make the agent unready (an apiserver outage after the first
    /// sync: cached metadata serves), shown in `/readyz`'s text.
    notes: Mutex<BTreeMap<&'static str, String>>,
}

#[derive(Debug, Clone, Copy)]
struct Beat {
    last: Instant,
    bound: Duration,
}

#[derive(Debug, Clone)]
struct Condition {
    met: bool,
    /// Why it is not met, for `/readyz`.
    detail: String,
}

impl Health {
    pub(super) fn register(&self, task: &'static str, bound: Duration) {
        self.lock_beats().insert(
            task,
            Beat {
                last: Instant::now(),
                bound,
            },
        );
    }

    pub(super) fn beat(&self, task: &'static str) {
        if let Some(b) = self.lock_beats().get_mut(task) {
            b.last = Instant::now();
        }
    }

    pub(super) fn set_bound(&self, task: &'static str, bound: Duration) {
        if let Some(b) = self.lock_beats().get_mut(task) {
            b.bound = bound;
        }
    }

    pub(super) fn unregister(&self, task: &'static str) {
        self.lock_beats().remove(task);
    }

    /// `Ok` while every heartbeat is within its bound, else one line per stuck task.
    pub(super) fn liveness(&self) -> Result<(), String> {
        let now = Instant::now();
        let mut out = String::new();
        for (task, b) in self.lock_beats().iter() {
            let age = now.saturating_duration_since(b.last);
            if age > b.bound {
                let _ = writeln!(
                    out,
                    "task {task} made no progress for {} s (bound {} s)",
                    age.as_secs(),
                    b.bound.as_secs()
                );
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    pub(super) fn expect(&self, name: &'static str, detail: &str) {
        self.lock_conditions().entry(name).or_insert(Condition {
            met: false,
            detail: detail.to_string(),
        });
    }

    pub(super) fn set_condition(&self, name: &'static str, met: bool, detail: &str) {
        let mut c = self.lock_conditions();
        let entry = c.entry(name).or_insert(Condition {
            met,
            detail: String::new(),
        });
        entry.met = met;
        if !met {
            detail.clone_into(&mut entry.detail);
        }
    }

    /// `Ok` when every condition is met, else one line per unmet condition.
    pub(super) fn readiness(&self) -> Result<(), String> {
        let mut out = String::new();
        for (name, c) in self.lock_conditions().iter() {
            if !c.met {
                let _ = writeln!(out, "{name}: {}", c.detail);
            }
        }
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    pub(super) fn set_note(&self, name: &'static str, note: Option<&str>) {
        let mut notes = self.notes.lock().unwrap_or_else(PoisonError::into_inner);
        match note {
            Some(n) => {
                notes.insert(name, n.to_string());
            }
            None => {
                notes.remove(name);
            }
        }
    }

    /// One line per degradation, empty when there is none.
    pub(super) fn notes(&self) -> String {
        let mut out = String::new();
        for (name, note) in self.notes.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            let _ = writeln!(out, "degraded: {name}: {note}");
        }
        out
    }

    fn lock_beats(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Beat>> {
        self.beats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_conditions(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, Condition>> {
        self.conditions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A must-run task's proof of progress: call [`Heartbeat::beat`] once per round. Dropping it
/// takes the task off `/healthz` (a task that ended on purpose is not stuck).
#[derive(Debug)]
pub struct Heartbeat {
    pub(super) health: Arc<Health>,
    pub(super) task: &'static str,
}

impl Heartbeat {
    pub fn beat(&self) {
        self.health.beat(self.task);
    }

    /// A new bound (the interval changed on reload).
    pub fn set_bound(&self, bound: Duration) {
        self.health.set_bound(self.task, bound);
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.health.unregister(self.task);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_older_than_its_bound_fails_liveness_by_name() {
        let h = Arc::new(Health::default());
        h.register("metrics::tick", Duration::from_secs(30));
        assert!(h.liveness().is_ok());
        tokio::time::advance(Duration::from_secs(31)).await;
        let err = h.liveness().unwrap_err();
        assert!(err.contains("metrics::tick"), "{err}");
        h.beat("metrics::tick");
        assert!(h.liveness().is_ok());
        h.unregister("metrics::tick");
        tokio::time::advance(Duration::from_secs(100)).await;
        assert!(h.liveness().is_ok());
    }

    #[test]
    fn readiness_lists_each_unmet_condition() {
        let h = Health::default();
        h.expect("cycle", "no collection cycle has completed yet");
        h.expect("credentials", "not checked yet");
        let err = h.readiness().unwrap_err();
        assert!(
            err.contains("cycle: no collection cycle") && err.contains("credentials:"),
            "{err}"
        );
        h.set_condition("cycle", true, "");
        h.set_condition("credentials", false, "the AWS credentials expired");
        assert_eq!(h.readiness().unwrap_err(), "credentials: the AWS credentials expired\n");
        h.set_condition("credentials", true, "");
        assert!(h.readiness().is_ok());
    }
}
