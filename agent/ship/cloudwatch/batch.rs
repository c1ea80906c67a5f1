//! One interval's datums → `PutMetricData` requests within the API limits, and the local
//! checks that keep a request from being rejected as a whole for one bad datum.

use std::time::Duration;

use crate::metrics::Datum;

/// "The `MetricData` … can include up to 1000 metrics per call" (`MetricData` and
/// `EntityMetricData` counted together).
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_DATUMS_PER_PUT: usize = 1000;

/// "Each `PutMetricData` request is limited to 1 MB in size for HTTP POST requests", counted here on
/// the uncompressed body to be safe: the SDK gzips, but the limit's basis is not documented.
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

/// Headroom for the request's own envelope (`Namespace`, the outer map and array heads).
const REQUEST_OVERHEAD_BYTES: usize = 64;

/// "Data points with time stamps from 24 hours ago or longer can take at least 48 hours to become
/// available …; data points with time stamps more than two weeks in the past or more than two hours
/// in the future are rejected" (PutMetricData API reference, `Timestamp`).
pub const MAX_AGE: Duration = Duration::from_hours(14 * 24);
pub const MAX_AHEAD: Duration = Duration::from_hours(2);

/// "Although the Value parameter accepts numbers of type Double, CloudWatch rejects values that
/// are either too small or too large. Values must be in the range of -2^360 to 2^360. In
/// addition, special values (for example, NaN, +Infinity, -Infinity) are not supported."
/// (`MetricDatum`, API reference)
pub fn value_is_sendable(v: f64) -> bool {
    const LIMIT: f64 = 2.348_542_582_773_833e108; // 2^360
    v.is_finite() && v.abs() <= LIMIT
}

/// Whether CloudWatch would take the datum's value or statistic set: every number sendable
/// (the same range applies to `StatisticValues`), and a set of at least one sample.
pub fn datum_is_sendable(d: &Datum) -> bool {
    match &d.stats {
        Some(s) => {
            s.sample_count > 0.0
                && [s.sample_count, s.sum, s.minimum, s.maximum]
                    .into_iter()
                    .all(value_is_sendable)
        }
        None => value_is_sendable(d.value),
    }
}

/// An upper bound of one datum's size in the rpc-v2-cbor body: its strings plus a generous
/// fixed allowance for keys (`MetricName`, `Dimensions`, `Value`, `Unit`, `Timestamp`,
/// `StorageResolution`: 61 bytes), heads, the float64 value and timestamp (9 + 10 bytes) and
/// the unit string (≤ 16 bytes), and 16 bytes per dimension for its keys and heads. The real
/// encoding is smaller; `tests/ship_cloudwatch.rs` checks the bound against actual bodies.
pub fn estimate_bytes(d: &Datum) -> usize {
    let dims: usize = d.dimensions.iter().map(|(n, v)| 16 + n.len() + v.len()).sum();
    // `StatisticValues` and its four keys and float64s instead of one value: 80 bytes more.
    let stats = if d.stats.is_some() { 80 } else { 0 };
    128 + d.metric_name.len() + dims + stats
}

/// Splits datums into requests of at most [`MAX_DATUMS_PER_PUT`] datums and
/// [`MAX_REQUEST_BYTES`] estimated bytes, keeping their order.
pub fn split(datums: Vec<Datum>) -> Vec<Vec<Datum>> {
    let mut out = Vec::with_capacity(datums.len().div_ceil(MAX_DATUMS_PER_PUT));
    let mut cur: Vec<Datum> = Vec::new();
    let mut bytes = REQUEST_OVERHEAD_BYTES;
    for d in datums {
        let size = estimate_bytes(&d);
        if !cur.is_empty() && (cur.len() == MAX_DATUMS_PER_PUT || bytes + size > MAX_REQUEST_BYTES) {
            out.push(std::mem::take(&mut cur));
            bytes = REQUEST_OVERHEAD_BYTES;
        }
        bytes += size;
        cur.push(d);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode::datum::Unit;

    fn datum(i: usize, dim_len: usize) -> Datum {
        Datum {
            metric_name: "pod_cpu_utilization",
            dimensions: vec![
                ("ClusterName", "c".repeat(dim_len).into()),
                ("PodName", format!("p{i}").into()),
            ]
            .into(),
            value: 1.0,
            stats: None,
            unit: Unit::Percent,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn splits_at_1000_datums_keeping_order() {
        let batches = split((0..2500).map(|i| datum(i, 1)).collect());
        let sizes: Vec<usize> = batches.iter().map(Vec::len).collect();
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(&*batches[1][0].dimensions[1].1, "p1000");
        assert_eq!(&*batches[2][499].dimensions[1].1, "p2499");
    }

    #[test]
    fn splits_at_the_byte_limit() {
        // ~1,2 KB per datum: about 800 fit in 1 MB.
        let batches = split((0..1000).map(|i| datum(i, 1024)).collect());
        assert!(batches.len() >= 2, "{}", batches.len());
        for b in &batches {
            let total: usize = REQUEST_OVERHEAD_BYTES + b.iter().map(estimate_bytes).sum::<usize>();
            assert!(total <= MAX_REQUEST_BYTES, "{total}");
        }
        assert_eq!(batches.iter().map(Vec::len).sum::<usize>(), 1000);
    }

    #[test]
    fn empty_input_gives_no_request() {
        assert!(split(vec![]).is_empty());
    }

    #[test]
    fn values_outside_the_api_range_are_not_sendable() {
        assert!(value_is_sendable(0.0));
        assert!(value_is_sendable(-1e100));
        assert!(!value_is_sendable(f64::NAN));
        assert!(!value_is_sendable(f64::INFINITY));
        assert!(!value_is_sendable(1e109));
    }
}
