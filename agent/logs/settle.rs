//! From outcomes to commit points: which bytes of each source may be skipped after a restart.
//!
//! Every event the tailer hands to the output carries a token (source id, sequence number) and
//! the byte range `[start, end)` of the lines it was built from. The output reports each event's
//! final outcome through [`Acknowledge`]; a source's commit point is then
//!
//! `min(start of the earliest unsettled event, the watermark)`
//!
//! where the watermark, set by the tailer after every read, is the end of the last complete line
//! read, or the start of a record still being assembled (an open partial-line join or multiline
//! record) if that is earlier. Events are emitted in completion order, not file order (stdout and
//! stderr pieces interleave), so the earliest unsettled *start* is what counts, not the oldest
//! event.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ship::{Acknowledge, Outcome};

/// Bits of a token that hold the sequence number; the rest hold the source id.
const SEQ_BITS: u32 = 40;
const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
/// The source ids a token can hold (the bits above the sequence number).
const SOURCE_MASK: u32 = (1 << (64 - SEQ_BITS)) - 1;

/// The token of event `seq` of `source`.
pub fn token(source: u32, seq: u64) -> u64 {
    (u64::from(source) << SEQ_BITS) | (seq & SEQ_MASK)
}

fn split(token: u64) -> (u32, u64) {
    (u32::try_from(token >> SEQ_BITS).unwrap_or(u32::MAX), token & SEQ_MASK)
}

#[derive(Debug, Clone, Copy)]
struct InFlight {
    seq: u64,
    start: u64,
    settled: bool,
}

/// One source's events in flight, in emission order.
#[derive(Debug, Default)]
struct Source {
    events: VecDeque<InFlight>,
    next_seq: u64,
    watermark: u64,
    /// When the oldest unsettled event was handed over (seconds on the tailer's clock), for the
    /// "oldest unacknowledged" gauge.
    oldest_handed: Option<f64>,
}

impl Source {
    /// Registers the next event, starting at byte `start`; returns its sequence number.
    fn push(&mut self, start: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.events.push_back(InFlight {
            seq,
            start,
            settled: false,
        });
        seq
    }

    fn settle(&mut self, seq: u64) {
        let Some(front) = self.events.front() else { return };
        let Some(i) = seq.checked_sub(front.seq).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if let Some(e) = self.events.get_mut(i) {
            debug_assert_eq!(e.seq, seq);
            e.settled = true;
        }
        while self.events.front().is_some_and(|e| e.settled) {
            self.events.pop_front();
        }
        if self.events.is_empty() {
            self.oldest_handed = None;
        }
    }

    fn commit_point(&self) -> u64 {
        self.events
            .iter()
            .filter(|e| !e.settled)
            .map(|e| e.start)
            .fold(self.watermark, u64::min)
    }
}

/// The settle table of every source: the `Acknowledge` the log output is built with.
///
/// One table serves the process: a reload that rebuilds the log pipeline gives the new tailer the
/// same table. Source ids come from the table ([`Settlements::new_source`]) and are never
/// reused while a source could still be open, so a late outcome of a replaced tailer's event
/// (still queued in the output) finds no source and settles nothing of the new one's.
#[derive(Debug, Default)]
pub struct Settlements {
    sources: Mutex<HashMap<u32, Source>>,
    last_id: AtomicU32,
}

impl Settlements {
    fn lock(&self) -> MutexGuard<'_, HashMap<u32, Source>> {
        self.sources.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A source id not handed out before (ids wrap after 16,777,215, far more files than a node
    /// opens while one stays open; 0 is never returned).
    pub fn new_source(&self) -> u32 {
        loop {
            let id = self.last_id.fetch_add(1, Ordering::Relaxed).wrapping_add(1) & SOURCE_MASK;
            if id != 0 {
                return id;
            }
        }
    }

    /// Starts tracking `source`, whose bytes before `offset` are already committed.
    pub fn open(&self, source: u32, offset: u64) {
        self.lock().insert(
            source,
            Source {
                watermark: offset,
                ..Source::default()
            },
        );
    }

    /// Forgets `source` (finished, or abandoned).
    pub fn close(&self, source: u32) {
        self.lock().remove(&source);
    }

    /// Registers the next event of `source`, starting at byte `start`; returns its token.
    pub fn hand_over(&self, source: u32, start: u64, now_s: f64) -> u64 {
        let mut map = self.lock();
        let s = map.entry(source).or_default();
        s.oldest_handed.get_or_insert(now_s);
        token(source, s.push(start))
    }

    /// Registers the next events of `source`, one for each of `starts` (the bytes each starts
    /// at, in the order they were read), under one lock, and appends their tokens to `tokens`:
    /// the tailer hands a file's records over together after each read (one lock per event was
    /// about 1.5 % of the agent's CPU in the 1 GiB catch-up benchmark, with the shipper's
    /// settling contending for it).
    pub fn hand_over_all(&self, source: u32, starts: impl Iterator<Item = u64>, now_s: f64, tokens: &mut Vec<u64>) {
        let mut map = self.lock();
        let s = map.entry(source).or_default();
        let before = tokens.len();
        tokens.extend(starts.map(|start| token(source, s.push(start))));
        if tokens.len() > before {
            s.oldest_handed.get_or_insert(now_s);
        }
    }

    /// The tailer's read position for `source`: see the module doc.
    pub fn set_watermark(&self, source: u32, watermark: u64) {
        if let Some(s) = self.lock().get_mut(&source) {
            s.watermark = watermark;
        }
    }

    /// The offset `source` may be committed at now, and whether every event was settled.
    pub fn commit_point(&self, source: u32) -> Option<(u64, bool)> {
        self.lock()
            .get(&source)
            .map(|s| (s.commit_point(), s.events.is_empty()))
    }

    /// Events handed over and not settled, over all sources.
    pub fn unsettled(&self) -> usize {
        self.lock()
            .values()
            .map(|s| s.events.iter().filter(|e| !e.settled).count())
            .sum()
    }

    /// Events handed over and not settled, over `sources`.
    pub fn unsettled_of(&self, sources: &[u32]) -> usize {
        let map = self.lock();
        sources
            .iter()
            .filter_map(|id| map.get(id))
            .map(|s| s.events.iter().filter(|e| !e.settled).count())
            .sum()
    }

    /// When the oldest unsettled event was handed over (the tailer's clock, seconds).
    pub fn oldest_handed(&self) -> Option<f64> {
        self.lock().values().filter_map(|s| s.oldest_handed).reduce(f64::min)
    }
}

impl Acknowledge for Settlements {
    /// Every outcome is final, whatever it is: accepted, or rejected or dropped for good (and
    /// counted by the output). Only unsent events keep the commit point back.
    fn settled(&self, tokens: &[u64], _outcome: Outcome) {
        let mut map = self.lock();
        // A request's events come in runs of one source (one file's read): one lookup a run.
        for run in tokens.chunk_by(|a, b| a >> SEQ_BITS == b >> SEQ_BITS) {
            if let Some(s) = map.get_mut(&split(run[0]).0) {
                for &t in run {
                    s.settle(split(t).1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reload gives a new tailer the same table: the outcome of an event of a released source,
    /// arriving late from the output, must settle nothing of a source opened after it.
    #[test]
    fn a_late_outcome_of_a_released_source_settles_nothing_of_a_new_one() {
        let s = Settlements::default();
        let old = s.new_source();
        s.open(old, 0);
        let late = s.hand_over(old, 0, 0.0);
        s.set_watermark(old, 100);
        assert_eq!(s.unsettled_of(&[old]), 1);
        s.close(old);
        let new = s.new_source();
        assert_ne!(new, old);
        s.open(new, 0);
        let first = s.hand_over(new, 0, 0.0);
        s.set_watermark(new, 50);
        assert_ne!(late, first, "the same sequence number of another source");
        s.settled(&[late], Outcome::Accepted);
        assert_eq!(s.commit_point(new), Some((0, false)), "still waiting for its own event");
        s.settled(&[first], Outcome::Accepted);
        assert_eq!(s.commit_point(new), Some((50, true)));
    }

    #[test]
    fn source_ids_fit_a_token_and_skip_zero() {
        let s = Settlements::default();
        s.last_id.store(SOURCE_MASK - 1, Ordering::Relaxed);
        assert_eq!(s.new_source(), SOURCE_MASK);
        assert_eq!(s.new_source(), 1, "0 is skipped when the ids wrap");
        let t = token(SOURCE_MASK, 7);
        assert_eq!(split(t), (SOURCE_MASK, 7));
    }

    #[test]
    fn the_commit_point_waits_for_the_earliest_unsettled_start() {
        let s = Settlements::default();
        s.open(1, 0);
        // stderr record [50,100) completes first, then the stdout record [0,150) that began
        // earlier (interleaved partial lines): completion order is not file order.
        let a = s.hand_over(1, 50, 0.0);
        let b = s.hand_over(1, 0, 0.0);
        s.set_watermark(1, 150);
        assert_eq!(s.commit_point(1), Some((0, false)));
        s.settled(&[a], Outcome::Accepted);
        assert_eq!(s.commit_point(1), Some((0, false)), "b [0,150) still unsettled");
        s.settled(&[b], Outcome::Accepted);
        assert_eq!(s.commit_point(1), Some((150, true)));
    }

    #[test]
    fn records_handed_over_together_get_the_tokens_of_one_by_one() {
        let (one, all) = (Settlements::default(), Settlements::default());
        for s in [&one, &all] {
            s.open(3, 0);
        }
        let starts = [0u64, 40, 10, 90];
        let singles: Vec<u64> = starts.iter().map(|&st| one.hand_over(3, st, 5.0)).collect();
        let mut tokens = vec![42];
        all.hand_over_all(3, starts.iter().copied(), 5.0, &mut tokens);
        assert_eq!(tokens[0], 42, "appended");
        assert_eq!(&tokens[1..], singles.as_slice());
        for s in [&one, &all] {
            s.set_watermark(3, 100);
            s.settled(&singles[1..], Outcome::Accepted);
            assert_eq!(s.commit_point(3), Some((0, false)), "the first is not settled");
            s.settled(&singles[..1], Outcome::Accepted);
            assert_eq!(s.commit_point(3), Some((100, true)));
        }
        all.hand_over_all(3, std::iter::empty(), 9.0, &mut tokens);
        assert_eq!(tokens.len(), 5);
    }

    #[test]
    fn an_open_record_pins_the_commit_point_through_the_watermark() {
        let s = Settlements::default();
        s.open(7, 1000);
        let a = s.hand_over(7, 1000, 0.0);
        s.settled(&[a], Outcome::Accepted);
        // The tailer read to 2000, but a partial line begun at 1500 is still open.
        s.set_watermark(7, 1500);
        assert_eq!(s.commit_point(7), Some((1500, true)));
    }

    #[test]
    fn tokens_of_other_or_closed_sources_are_ignored() {
        let s = Settlements::default();
        s.open(2, 0);
        let a = s.hand_over(2, 0, 0.0);
        s.close(2);
        s.settled(&[a, token(99, 5)], Outcome::Accepted);
        assert_eq!(s.commit_point(2), None);
        assert_eq!(split(token(3, 17)), (3, 17));
    }

    #[test]
    fn rejected_and_dropped_events_settle_too() {
        let s = Settlements::default();
        s.open(1, 0);
        let t: Vec<u64> = (0..3).map(|i| s.hand_over(1, i * 10, 1.0)).collect();
        s.set_watermark(1, 30);
        assert_eq!(s.unsettled(), 3);
        assert_eq!(s.oldest_handed(), Some(1.0));
        s.settled(&t[..1], Outcome::Rejected(crate::ship::Rejection::TooOld));
        s.settled(&t[1..], Outcome::Dropped(crate::ship::DropReason::Invalid));
        assert_eq!(s.commit_point(1), Some((30, true)));
        assert_eq!(s.unsettled(), 0);
        assert_eq!(s.oldest_handed(), None);
    }
}
