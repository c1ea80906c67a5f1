//! The events of one log stream → `PutLogEvents` requests within the API limits.
//! <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html>

use std::ops::Range;
use std::time::Duration;

use super::super::payload::LogEvent;

/// "The maximum number of log events in a batch is 10,000."
pub const MAX_EVENTS_PER_PUT: usize = 10_000;

/// "The maximum batch size is 1,048,576 bytes. This size is calculated as the sum of all event
/// messages in UTF-8, plus 26 bytes for each log event."
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// PutLogEvents counts each event as its UTF-8 message bytes plus 26 bytes.
pub const EVENT_OVERHEAD_BYTES: usize = 26;

/// "A batch of log events in a single request cannot span more than 24 hours."
pub const MAX_SPAN: Duration = Duration::from_hours(24);

/// "None of the log events in the batch can be older than 14 days or older than the retention
/// period of the log group", minus a 5-minute margin so an event does not age out in flight
/// (Vector's CloudWatch Logs sink keeps the same margin).
pub const MAX_AGE: Duration = Duration::from_mins(14 * 24 * 60 - 5);

/// "None of the log events in the batch can be more than 2 hours in the future."
pub const MAX_AHEAD: Duration = Duration::from_hours(2);

/// The PutLogEvents size of one event.
pub fn event_bytes(e: &LogEvent) -> usize {
    e.message.len() + EVENT_OVERHEAD_BYTES
}

/// Why an event is not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsendable {
    /// Older than [`MAX_AGE`].
    Old,
    /// More than [`MAX_AHEAD`] ahead.
    Ahead,
    /// Larger than a whole request (never the case for performance events, a few KiB each, nor
    /// for log records, which the log pipeline cuts to `kinsight.logs.max_event_bytes`).
    Large,
    /// An empty message, which `PutLogEvents` refuses for the whole request (its `message` has a
    /// minimum length of 1): dropped alone instead.
    Empty,
}

/// Whether `e` can go into a request at wall time `now_ms`.
pub fn check(e: &LogEvent, now_ms: i64) -> Result<(), Unsendable> {
    let age = i64::try_from(MAX_AGE.as_millis()).unwrap_or(i64::MAX);
    let ahead = i64::try_from(MAX_AHEAD.as_millis()).unwrap_or(i64::MAX);
    if e.timestamp_ms < now_ms - age {
        Err(Unsendable::Old)
    } else if e.timestamp_ms > now_ms + ahead {
        Err(Unsendable::Ahead)
    } else if event_bytes(e) > MAX_BATCH_BYTES {
        Err(Unsendable::Large)
    } else if e.message.is_empty() {
        Err(Unsendable::Empty)
    } else {
        Ok(())
    }
}

/// Sorts one stream's events by timestamp (stable: equal timestamps keep their order) and splits
/// them into requests of at most [`MAX_EVENTS_PER_PUT`] events, [`MAX_BATCH_BYTES`] bytes and a
/// [`MAX_SPAN`] span, as ranges of `events`: the events stay where they are (a request is sent
/// from a slice), so nothing is moved or allocated per request. Every event must have passed
/// [`check`].
pub fn split(events: &mut [LogEvent]) -> Vec<Range<usize>> {
    // One file's lines arrive in time order: the common case needs no sort (whose scratch
    // buffer would be an allocation per stream and round).
    if !events.is_sorted_by_key(|e| e.timestamp_ms) {
        events.sort_by_key(|e| e.timestamp_ms);
    }
    let span = i64::try_from(MAX_SPAN.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, e) in events.iter().enumerate() {
        let size = event_bytes(e);
        let full = i - start == MAX_EVENTS_PER_PUT
            || bytes + size > MAX_BATCH_BYTES
            || e.timestamp_ms - events[start].timestamp_ms > span;
        if i > start && full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < events.len() {
        out.push(start..events.len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(ts: i64, len: usize) -> LogEvent {
        LogEvent {
            group: "g".into(),
            stream: "s".into(),
            timestamp_ms: ts,
            message: "x".repeat(len).into(),
            token: 0,
        }
    }

    #[test]
    fn splits_at_10000_events() {
        let mut events: Vec<LogEvent> = (0..25_000).map(|i| ev(i, 10)).collect();
        let sizes: Vec<usize> = split(&mut events).iter().map(ExactSizeIterator::len).collect();
        assert_eq!(sizes, [10_000, 10_000, 5_000]);
    }

    #[test]
    fn splits_at_1_mib_counting_26_bytes_per_event() {
        // 1,000 events of 1,022 bytes: 1,048 bytes each with overhead, so 1,000 fit exactly in
        // 1,048,000 ≤ 1,048,576, and one more 1,048-byte event does not.
        let mut events: Vec<LogEvent> = (0..1001).map(|i| ev(i, 1022)).collect();
        let batches = split(&mut events);
        let sizes: Vec<usize> = batches.iter().map(ExactSizeIterator::len).collect();
        assert_eq!(sizes, [1000, 1]);
        for b in batches {
            assert!(events[b].iter().map(event_bytes).sum::<usize>() <= MAX_BATCH_BYTES);
        }
    }

    #[test]
    fn sorts_chronologically_and_splits_at_24_hours() {
        let h = 3_600_000;
        let mut events = vec![ev(30 * h, 1), ev(0, 1), ev(24 * h, 1), ev(24 * h + 1, 1)];
        let batches = split(&mut events);
        let ts: Vec<Vec<i64>> = batches
            .into_iter()
            .map(|b| events[b].iter().map(|e| e.timestamp_ms).collect())
            .collect();
        assert_eq!(ts, vec![vec![0, 24 * h], vec![24 * h + 1, 30 * h]]);
    }

    #[test]
    fn equal_timestamps_keep_their_order() {
        let mut a = ev(5, 1);
        a.message = "a".into();
        let mut b = ev(5, 1);
        b.message = "b".into();
        let mut events = vec![ev(9, 1), a, b];
        let batches = split(&mut events);
        assert_eq!(batches, vec![Range { start: 0, end: 3 }]);
        assert_eq!(events[0].message.text(), "a");
        assert_eq!(events[1].message.text(), "b");
    }

    #[test]
    fn the_time_window_and_size_are_checked() {
        let now = 20 * 24 * 3_600_000;
        assert_eq!(check(&ev(now, 10), now), Ok(()));
        assert_eq!(check(&ev(now - 15 * 24 * 3_600_000, 10), now), Err(Unsendable::Old));
        assert_eq!(check(&ev(now + 3 * 3_600_000, 10), now), Err(Unsendable::Ahead));
        assert_eq!(check(&ev(now, MAX_BATCH_BYTES), now), Err(Unsendable::Large));
        assert_eq!(check(&ev(now, MAX_BATCH_BYTES - EVENT_OVERHEAD_BYTES), now), Ok(()));
    }
}
