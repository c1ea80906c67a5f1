//! The clocks, behind a narrow trait so tests can drive time (STYLE.md §5).

use tokio::time::Instant;

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Wall-clock time in milliseconds since the Unix epoch: datum and event timestamps.
    fn wall_ms(&self) -> i64;
    /// Monotonic time: rate denominators (SAMP-2). tokio's, so paused test time controls it.
    fn monotonic(&self) -> Instant;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}
