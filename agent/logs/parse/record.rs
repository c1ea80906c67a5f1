//! The assembled record handed downstream by the joiner and the multiline stage, and their
//! shared limits and counters.

use std::time::Duration;

use super::line::Stream;

/// How a record was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// Its last piece arrived (a CRI `F` line, a Docker `log` ending in `\n`, or the multiline rule
    /// saw the record end). A complete record, even if its content was cut at the cap.
    Terminated,
    /// No piece arrived for the flush timeout; later pieces start a new record. (The multiline
    /// stage closes its records this way too, but reports them `Terminated` unless one of their
    /// pieces was incomplete: a multiline record has no end mark to miss.)
    Timeout,
    /// The size cap was reached before the record's end. The joiner cuts the content at the cap and
    /// discards the record's remaining pieces; the multiline stage closes the record before the line
    /// that would overflow it, and that line opens the next record.
    Cap,
    /// The file was finished (rotated or deleted and read to the end) with the record still open.
    Finished,
}

/// A complete or flushed record. It borrows either the line it came from (a full line with
/// nothing pending: no copy) or the stage's own reusable buffers, so it is handed to a closure
/// rather than returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// The runtime timestamp string of the record's first piece, verbatim.
    pub time: &'a str,
    /// UTC milliseconds of the first piece (the event timestamp).
    pub timestamp_ms: i64,
    /// The stream all pieces came from.
    pub stream: Stream,
    /// The joined content, at most the configured `max_record_bytes` long.
    pub content: &'a [u8],
    /// File offset of the first byte of the first line the record was built from.
    pub start: u64,
    /// File offset just past the last line the record was built from (its terminator included).
    pub end: u64,
    /// Number of pieces (lines) joined into this record.
    pub pieces: u32,
    /// Because of the size cap the record does not hold all of its content (`_truncated: true` in
    /// the shipped record): bytes were cut, or the multiline record continues in the next one.
    pub truncated: bool,
    /// Why the record was closed.
    pub closed: CloseReason,
}

impl Record<'_> {
    /// The record ended with its own last piece (`_p: F`) rather than being flushed incomplete by
    /// a timeout, the cap or the end of the file (`_p: P`).
    pub fn is_complete(&self) -> bool {
        self.closed == CloseReason::Terminated
    }
}

/// Limits shared by the joiner and the multiline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum content bytes of one record; longer content is cut at a UTF-8 boundary. The default
    /// is 1 MiB, the size of the largest CloudWatch Logs event.
    pub max_record_bytes: usize,
    /// A record with no new piece for this long is flushed as it is.
    pub flush_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1_048_576,
            flush_timeout: Duration::from_secs(5),
        }
    }
}

/// What the joiner or multiline stage did beyond plain joining, for telemetry. Cumulative until
/// taken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records cut short by the cap (see [`Record::truncated`]).
    pub truncated: u64,
    /// Records flushed incomplete by the timeout.
    pub timed_out: u64,
    /// Records flushed incomplete because the file was finished.
    pub finished: u64,
    /// Pieces thrown away after a cap, up to the record's last piece.
    pub discarded_pieces: u64,
    /// Content bytes lost to the cap: the cut-off part of the piece that overflowed plus all bytes
    /// of the discarded pieces.
    pub discarded_bytes: u64,
}

impl Counters {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Counters) {
        self.truncated += other.truncated;
        self.timed_out += other.timed_out;
        self.finished += other.finished;
        self.discarded_pieces += other.discarded_pieces;
        self.discarded_bytes += other.discarded_bytes;
    }
}
