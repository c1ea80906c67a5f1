//! Per-counter rates from two samples, `(cur − prev) / Δt`, as upstream's
//! `NewFloat64RateCalculator` computes them (`internal/cadvisor/extractors/extractor.go` in
//! `awscontainerinsightreceiver`); a rate is never negative, and absent rather than 0.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::time::Duration;

use tokio::time::Instant;

/// Upstream's `MinTimeDiff` (`internal/aws/containerinsight/const.go`); a Δt this small or
/// smaller gives no rate.
pub const MIN_TIME_DIFF: Duration = Duration::from_micros(50);

/// Previous samples expire after max(300 s, 2 × interval). Upstream's fixed 5 min
/// (`cleanInterval` in `internal/aws/metrics/metric_calculator.go`) gives no rates at all for
/// intervals above 300 s.
pub fn expiry_for(interval: Duration) -> Duration {
    Duration::from_mins(5).max(interval * 2)
}

#[derive(Debug, Clone, Copy)]
struct Prev {
    value: u64,
    at: Instant,
}

/// A multiply-rotate hasher (the `FxHash` scheme). Rate keys are already well-mixed 64-bit
/// hashes of local cgroup paths plus a small field tag, so `SipHash`'s flood resistance buys
/// nothing here, and this map is probed thousands of times per tick.
#[derive(Debug, Default, Clone, Copy)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    /// Eight bytes at a time: strings (metric names, about 20 bytes) are hashed too.
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            self.write_u64(u64::from_le_bytes(c.try_into().unwrap_or([0; 8])));
        }
        let mut tail = [0_u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail));
    }

    fn write_u8(&mut self, i: u8) {
        self.write_u64(u64::from(i));
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_isize(&mut self, i: isize) {
        self.write_u64(u64::from_ne_bytes(i.to_ne_bytes()));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Holds the previous value of every counter, keyed by whatever identifies it (cgroup +
/// field, interface + field, …).
#[derive(Debug)]
pub struct RateCalculator<K> {
    prev: HashMap<K, Prev, BuildHasherDefault<KeyHasher>>,
    expiry: Duration,
}

impl<K: Hash + Eq> RateCalculator<K> {
    pub fn new(expiry: Duration) -> Self {
        RateCalculator {
            prev: HashMap::default(),
            expiry,
        }
    }

    pub fn set_expiry(&mut self, expiry: Duration) {
        self.expiry = expiry;
    }

    /// Per-second rate of `value` since the previous call for `key`, or `None` when there is
    /// no usable previous sample.
    pub fn rate(&mut self, key: K, value: u64, at: Instant) -> Option<f64> {
        let Some(prev) = self.prev.get_mut(&key) else {
            self.prev.insert(key, Prev { value, at });
            return None;
        };
        let dt = at.saturating_duration_since(prev.at);
        if dt <= MIN_TIME_DIFF {
            // Keep the previous sample as it is.
            return None;
        }
        let Some(delta) = value.checked_sub(prev.value) else {
            // A decrease is a reset (or a restarted container reusing a key): no rate, and start
            // over from the current value so the next tick has one (upstream keeps the old sample,
            // so its rates stay absent until the counter passes the old value).
            *prev = Prev { value, at };
            return None;
        };
        *prev = Prev { value, at };
        Some(delta as f64 / dt.as_secs_f64())
    }

    /// Forgets counters not updated within the expiry (vanished cgroups, interfaces).
    pub fn evict_stale(&mut self, now: Instant) {
        let expiry = self.expiry;
        self.prev.retain(|_, p| now.saturating_duration_since(p.at) <= expiry);
    }

    pub fn len(&self) -> usize {
        self.prev.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prev.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_sample_has_no_rate_then_rates_follow() {
        let mut r = RateCalculator::new(expiry_for(Duration::from_mins(1)));
        let t0 = Instant::now();
        assert_eq!(r.rate("cpu", 1_000, t0), None);
        assert_eq!(r.rate("cpu", 3_000, t0 + Duration::from_secs(2)), Some(1_000.0));
    }

    #[tokio::test(start_paused = true)]
    async fn reset_gives_no_rate_and_restarts_from_current() {
        let mut r = RateCalculator::new(Duration::from_mins(5));
        let t0 = Instant::now();
        r.rate("c", 500, t0);
        assert_eq!(r.rate("c", 100, t0 + Duration::from_secs(1)), None, "never negative");
        assert_eq!(r.rate("c", 300, t0 + Duration::from_secs(2)), Some(200.0));
    }

    #[tokio::test(start_paused = true)]
    async fn tiny_dt_keeps_previous_sample() {
        let mut r = RateCalculator::new(Duration::from_mins(5));
        let t0 = Instant::now();
        r.rate("c", 0, t0);
        assert_eq!(r.rate("c", 10, t0 + Duration::from_micros(50)), None);
        // The kept sample is still the first one: Δ = 20 over 1 s.
        assert_eq!(r.rate("c", 20, t0 + Duration::from_secs(1)), Some(20.0));
    }

    #[tokio::test(start_paused = true)]
    async fn stale_entries_expire() {
        let interval = Duration::from_mins(10);
        assert_eq!(expiry_for(interval), Duration::from_mins(20));
        assert_eq!(expiry_for(Duration::from_secs(10)), Duration::from_mins(5));
        let mut r = RateCalculator::new(Duration::from_mins(5));
        let t0 = Instant::now();
        r.rate("gone", 1, t0);
        r.rate("kept", 1, t0 + Duration::from_secs(200));
        r.evict_stale(t0 + Duration::from_secs(301));
        assert_eq!(r.len(), 1);
    }
}
