//! The distinct metric series sent in the last hour: CloudWatch bills a custom metric (a metric
//! name with one set of dimension values) for every hour in which it receives a value ("metrics
//! are prorated by the hour", CloudWatch pricing page), so this is the number the monthly
//! custom-metric charge follows, for `kinsight_billable_metric_series` and `kinsight cost`.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::encode::datum;
use super::record::Record;

/// Series hashes are already well mixed: the map keys them as they are.
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }

    fn write_u64(&mut self, i: u64) {
        self.0 = i;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// How long a series counts after its last value.
pub const WINDOW_MS: i64 = 3_600_000;

/// Series by hash → the time of their last value (ms).
#[derive(Debug, Default)]
pub struct SeriesWindow {
    seen: HashMap<u64, i64, BuildHasherDefault<Identity>>,
}

impl SeriesWindow {
    /// Notes the series of `records` (sent at `now_ms`) and forgets those older than an hour.
    pub fn observe(&mut self, records: &[Record], enhanced: bool, drops: &[crate::config::MetricDrop], now_ms: i64) {
        for r in records {
            datum::for_each_series(r, enhanced, drops, |h| {
                self.seen.insert(h, now_ms);
            });
        }
        self.seen.retain(|_, at| now_ms - *at < WINDOW_MS);
    }

    /// [`SeriesWindow::observe`] from the datums themselves (modes that send them): their
    /// dimension lists are shared by the datums of one record and set, so each list's values are
    /// hashed once, not once per metric, and no attribute is looked up again. A series is the
    /// same whichever way it is counted.
    pub fn observe_datums(&mut self, datums: &[super::Datum], now_ms: i64) {
        use std::hash::Hash as _;
        let mut lists: HashMap<*const (), u64, BuildHasherDefault<super::rate::KeyHasher>> =
            HashMap::with_capacity_and_hasher(datums.len() / 4, BuildHasherDefault::default());
        for d in datums {
            let list = *lists
                .entry(std::sync::Arc::as_ptr(&d.dimensions).cast::<()>())
                .or_insert_with(|| {
                    let mut h = super::rate::KeyHasher::default();
                    for (name, value) in d.dimensions.iter() {
                        name.hash(&mut h);
                        (**value).hash(&mut h);
                    }
                    h.finish()
                });
            let mut h = super::rate::KeyHasher::default();
            d.metric_name.hash(&mut h);
            h.write_u64(list);
            self.seen.insert(h.finish(), now_ms);
        }
        self.seen.retain(|_, at| now_ms - *at < WINDOW_MS);
    }

    /// Distinct series with a value in the last hour.
    pub fn count(&self) -> usize {
        self.seen.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::RecordType;

    fn pod(name: &str, cpu: f64) -> Record {
        let mut r = Record::new(RecordType::Pod, 0);
        r.set_attribute("ClusterName", "c");
        r.set_attribute("Namespace", "shop");
        r.set_attribute("PodName", name);
        r.set_field("pod_cpu_utilization", Some(cpu));
        r
    }

    /// `pod_cpu_utilization` has the standard sets P, C, S and NS; without a `Service` three
    /// apply. Two pods: P twice (their names differ), C and NS shared: 4 series, whatever the
    /// values, and the same again an interval later.
    #[test]
    fn counts_distinct_series_over_the_last_hour() {
        let mut w = SeriesWindow::default();
        let records = [pod("web", 1.0), pod("api", 2.0)];
        let mut datums = Vec::new();
        for r in &records {
            datum::encode(r, false, &mut datums);
        }
        assert_eq!(datums.len(), 6, "3 datums a pod");
        w.observe(&records, false, &[], 0);
        assert_eq!(w.count(), 4);
        w.observe(&[pod("web", 9.0), pod("api", 7.0)], false, &[], 60_000);
        assert_eq!(w.count(), 4, "the same series again");
        // An hour after the first sight of `api`, it is gone if not seen since.
        w.observe(&[pod("web", 3.0)], false, &[], 60_000 + WINDOW_MS - 1);
        assert_eq!(w.count(), 4, "api's last value was 59:59 ago");
        w.observe(&[pod("web", 3.0)], false, &[], 60_000 + WINDOW_MS);
        assert_eq!(w.count(), 3);
    }

    /// Counted from the datums, the same series as from the records.
    #[test]
    fn datums_count_the_same_series_as_records() {
        let records = [pod("web", 1.0), pod("api", 2.0), pod("web", 3.0)];
        let mut datums = Vec::new();
        for r in &records {
            datum::encode(r, false, &mut datums);
        }
        let mut from_datums = SeriesWindow::default();
        from_datums.observe_datums(&datums, 0);
        let mut from_records = SeriesWindow::default();
        from_records.observe(&records, false, &[], 0);
        assert_eq!(from_datums.count(), 4);
        assert_eq!(from_datums.count(), from_records.count());
    }
}
