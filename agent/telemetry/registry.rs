use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::Name;
use super::health::{Health, Heartbeat};

/// Label pairs of one series. Names and values are `'static` on purpose: only bounded, code-defined
/// values can be labels, so cardinality cannot grow with pods or files.
pub type Labels<'a> = &'a [(&'static str, &'static str)];

type Key = (Name, Vec<(&'static str, &'static str)>);

#[derive(Debug, Default)]
struct Inner {
    series: Mutex<BTreeMap<Key, f64>>,
    health: Arc<Health>,
}

/// Cheap to clone; every component holds one.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Telemetry {
    pub fn new() -> Self {
        let t = Telemetry::default();
        t.set(Name::BuildInfo, &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        t
    }

    pub fn add(&self, name: Name, labels: Labels<'_>, by: u64) {
        let mut map = self.inner.series.lock().unwrap_or_else(PoisonError::into_inner);
        *map.entry((name, labels.to_vec())).or_insert(0.0) += by as f64;
    }

    pub fn set(&self, name: Name, labels: Labels<'_>, value: f64) {
        let mut map = self.inner.series.lock().unwrap_or_else(PoisonError::into_inner);
        map.insert((name, labels.to_vec()), value);
    }

    /// Current value of one series (tests and `/readyz` use it).
    pub fn get(&self, name: Name, labels: Labels<'_>) -> f64 {
        let map = self.inner.series.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(&(name, labels.to_vec())).copied().unwrap_or(0.0)
    }

    /// Registers a must-run task for `/healthz`: it must [`Heartbeat::beat`] at least once per
    /// `bound`.
    pub fn heartbeat(&self, task: &'static str, bound: Duration) -> Heartbeat {
        self.inner.health.register(task, bound);
        Heartbeat {
            health: self.inner.health.clone(),
            task,
        }
    }

    /// Declares a readiness condition, unmet until [`Telemetry::set_condition`] says so;
    /// `detail` is what `/readyz` shows meanwhile.
    pub fn expect_condition(&self, name: &'static str, detail: &str) {
        self.inner.health.expect(name, detail);
    }

    /// Sets a readiness condition; `detail` says why it is not met.
    pub fn set_condition(&self, name: &'static str, met: bool, detail: &str) {
        self.inner.health.set_condition(name, met, detail);
    }

    /// Sets (or with `None` clears) a degradation note that `/readyz` shows without failing.
    pub fn set_note(&self, name: &'static str, note: Option<&str>) {
        self.inner.health.set_note(name, note);
    }

    /// The degradation notes, one line each.
    pub fn notes(&self) -> String {
        self.inner.health.notes()
    }

    /// `Ok` while every must-run task makes progress, else why not (one line per task).
    pub fn liveness(&self) -> Result<(), String> {
        self.inner.health.liveness()
    }

    /// `Ok` when every readiness condition is met, else the unmet ones (one line each).
    pub fn readiness(&self) -> Result<(), String> {
        self.inner.health.readiness()
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.readiness().is_ok()
    }

    /// Prometheus text exposition format 0.0.4.
    pub fn render(&self) -> String {
        let map = self.inner.series.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(4096);
        let mut last: Option<Name> = None;
        for ((name, labels), value) in map.iter() {
            if last != Some(*name) {
                let kind = if name.is_gauge() { "gauge" } else { "counter" };
                let _ = writeln!(out, "# HELP {} {}", name.as_str(), name.help());
                let _ = writeln!(out, "# TYPE {} {kind}", name.as_str());
                last = Some(*name);
            }
            out.push_str(name.as_str());
            if !labels.is_empty() {
                out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    // Label values are code-defined identifiers; escape anyway for safety.
                    let _ = write!(out, "{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""));
                }
                out.push('}');
            }
            let _ = writeln!(out, " {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let t = Telemetry::new();
        t.add(Name::ConfigReloads, &[("result", "invalid")], 1);
        t.add(Name::ConfigReloads, &[("result", "invalid")], 2);
        t.add(Name::ConfigReloads, &[("result", "applied")], 1);
        let text = t.render();
        assert!(
            text.contains("# TYPE kinsight_config_reloads_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("kinsight_config_reloads_total{result=\"invalid\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("kinsight_config_reloads_total{result=\"applied\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("kinsight_build_info{version=\""), "{text}");
        assert_eq!(text.matches("# TYPE kinsight_config_reloads_total").count(), 1);
        assert!((t.get(Name::ConfigReloads, &[("result", "invalid")]) - 3.0).abs() < f64::EPSILON);
    }
}
