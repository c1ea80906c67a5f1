//! The agent's own telemetry: typed counters, structured logs, and the HTTP endpoints
//! `/healthz`, `/readyz`, `/metrics` (Prometheus text).
//!
//! Owns: the one list of exported metric names ([`Name`]), the typed events that bump them
//! ([`events`]), the log subscriber set-up, and the HTTP server. Components get a [`Telemetry`]
//! handle at build time; there is no global registry. A leaf: it imports no other module of
//! the agent, so every module can report through it.
//!
//! The decision a newcomer would question: counters live behind one mutex-guarded map instead
//! of lock-free atomics per series. Hot loops count locally and add once per batch or tick, so
//! the lock is taken a handful of times per interval, and one map keeps label sets bounded and
//! rendering trivial.

pub mod events;
mod health;
mod http;
mod logging;
mod names;
mod registry;

pub use health::Heartbeat;
pub use http::{MAX_BUF_BYTES, ServerLimits, serve};
pub use logging::{CAPPED_AT_WARN, LogFormat, init_logging, set_debug, set_format};
pub use names::Name;
pub use registry::Telemetry;

/// The whole error chain on one line (`outer: cause: root cause`), for logs and exit messages.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Log lines captured in memory, for tests of what kinsight logs (a `MakeWriter` through a
/// closure returning a clone).
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

#[cfg(test)]
impl LogBuffer {
    /// Everything written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
