//! The bounded queue of whole intervals between the collection tick and the `PutMetricData`
//! sender: memory stays bounded through a CloudWatch outage, at the cost of the oldest intervals.
//!
//! An interval is split into batches when it is queued. The sender takes one batch at a time out
//! of the front interval; the interval stays in the queue (and counts against its capacity) until
//! its last batch is settled. A push into a full queue evicts the front interval, the oldest,
//! even while one of its batches is in flight: the sender then finishes that send but never
//! retries it. No batch is ever handed out twice.

use std::collections::VecDeque;

use crate::metrics::Datum;

#[derive(Debug)]
struct Interval {
    id: u64,
    pending: VecDeque<Vec<Datum>>,
}

/// What a push evicted to make room.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub intervals: usize,
    /// Datums of the evicted intervals that had not been handed to the sender.
    pub datums: usize,
}

#[derive(Debug)]
pub struct IntervalQueue {
    intervals: VecDeque<Interval>,
    capacity: usize,
    next_id: u64,
    /// Every interval id up to this one was evicted (ids grow, and eviction takes the oldest).
    evicted_upto: Option<u64>,
}

impl IntervalQueue {
    /// `capacity` intervals (at least one).
    pub fn new(capacity: usize) -> Self {
        IntervalQueue {
            intervals: VecDeque::new(),
            capacity: capacity.max(1),
            next_id: 0,
            evicted_upto: None,
        }
    }

    /// Queues one interval's batches, evicting the oldest intervals while the queue is full.
    pub fn push(&mut self, batches: Vec<Vec<Datum>>) -> Evicted {
        let mut evicted = Evicted::default();
        if batches.is_empty() {
            return evicted;
        }
        while self.intervals.len() >= self.capacity {
            let Some(old) = self.intervals.pop_front() else { break };
            evicted.intervals += 1;
            evicted.datums += old.pending.iter().map(Vec::len).sum::<usize>();
            self.evicted_upto = Some(old.id);
        }
        self.intervals.push_back(Interval {
            id: self.next_id,
            pending: batches.into(),
        });
        self.next_id += 1;
        evicted
    }

    /// The next batch to send and the id of its interval, taken out of the queue.
    pub fn take_next(&mut self) -> Option<(u64, Vec<Datum>)> {
        loop {
            let front = self.intervals.front_mut()?;
            if let Some(batch) = front.pending.pop_front() {
                return Some((front.id, batch));
            }
            // Every batch of the front interval was settled.
            self.intervals.pop_front();
        }
    }

    /// The sender settled a batch of interval `id` (sent or dropped): drop the interval once it
    /// has nothing left.
    pub fn settle(&mut self, id: u64) {
        if let Some(front) = self.intervals.front()
            && front.id == id
            && front.pending.is_empty()
        {
            self.intervals.pop_front();
        }
    }

    /// Whether interval `id` was evicted after its batch was taken.
    pub fn is_evicted(&self, id: u64) -> bool {
        self.evicted_upto.is_some_and(|e| id <= e)
    }

    pub fn is_empty(&self) -> bool {
        self.intervals.iter().all(|i| i.pending.is_empty())
    }

    /// Datums not yet handed to the sender.
    pub fn queued_datums(&self) -> usize {
        self.intervals.iter().flat_map(|i| &i.pending).map(Vec::len).sum()
    }

    /// Empties the queue, returning how many datums it held.
    pub fn clear(&mut self) -> usize {
        let n = self.queued_datums();
        if let Some(last) = self.intervals.back() {
            self.evicted_upto = Some(last.id);
        }
        self.intervals.clear();
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::encode::datum::Unit;

    fn batch(n: usize, tag: f64) -> Vec<Datum> {
        (0..n)
            .map(|_| Datum {
                metric_name: "node_cpu_utilization",
                dimensions: vec![].into(),
                value: tag,
                stats: None,
                unit: Unit::Percent,
                timestamp_ms: 0,
            })
            .collect()
    }

    #[test]
    fn batches_come_out_in_order_and_once() {
        let mut q = IntervalQueue::new(3);
        q.push(vec![batch(2, 1.0), batch(1, 2.0)]);
        q.push(vec![batch(1, 3.0)]);
        let mut seen = vec![];
        while let Some((id, b)) = q.take_next() {
            seen.push((id, b[0].value, b.len()));
            q.settle(id);
        }
        assert_eq!(seen, [(0, 1.0, 2), (0, 2.0, 1), (1, 3.0, 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_evicts_the_oldest_interval_even_in_flight() {
        let mut q = IntervalQueue::new(2);
        q.push(vec![batch(3, 1.0), batch(4, 1.0)]);
        let (id0, _) = q.take_next().unwrap(); // 3 datums in flight
        q.push(vec![batch(5, 2.0)]);
        let ev = q.push(vec![batch(6, 3.0)]);
        assert_eq!(
            ev,
            Evicted {
                intervals: 1,
                datums: 4
            }
        );
        assert!(q.is_evicted(id0));
        q.settle(id0); // no effect on the newer front interval
        let (id1, b) = q.take_next().unwrap();
        assert!(!q.is_evicted(id1));
        assert_eq!((b[0].value, b.len()), (2.0, 5));
        assert_eq!(q.queued_datums(), 6);
    }

    #[test]
    fn empty_intervals_are_not_queued() {
        let mut q = IntervalQueue::new(1);
        assert_eq!(q.push(vec![]), Evicted::default());
        assert!(q.take_next().is_none());
    }
}
