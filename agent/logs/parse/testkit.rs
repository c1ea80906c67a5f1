//! Helpers shared by the tests of this module.

use std::time::Duration;

use super::detect::LineParser;
use super::join::Joiner;
use super::line::Stream;
use super::record::{CloseReason, Record};

/// An owned copy of a [`Record`], for collecting and comparing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    pub time: String,
    pub timestamp_ms: i64,
    pub stream: Stream,
    pub content: Vec<u8>,
    pub start: u64,
    pub end: u64,
    pub pieces: u32,
    pub truncated: bool,
    pub closed: CloseReason,
}

impl OwnedRecord {
    pub fn is_complete(&self) -> bool {
        self.closed == CloseReason::Terminated
    }
}

impl From<Record<'_>> for OwnedRecord {
    fn from(r: Record<'_>) -> Self {
        OwnedRecord {
            time: r.time.to_owned(),
            timestamp_ms: r.timestamp_ms,
            stream: r.stream,
            content: r.content.to_vec(),
            start: r.start,
            end: r.end,
            pieces: r.pieces,
            truncated: r.truncated,
            closed: r.closed,
        }
    }
}

/// Feeds the complete lines of `text` through `parser` and `joiner`, line `i` read at
/// `t0 + i * step`, with its file byte range. Records go to `on_record`; after each line
/// `on_pending` gets the joiner's pending start. Unparsed lines are skipped.
pub fn feed(
    text: &[u8],
    parser: &mut LineParser,
    joiner: &mut Joiner,
    t0: Duration,
    step: Duration,
    mut on_record: impl FnMut(OwnedRecord),
    mut on_pending: impl FnMut(Option<u64>),
) {
    let mut scratch = Vec::new();
    let mut offset = 0u64;
    let mut now = t0;
    for raw in text.split_inclusive(|&b| b == b'\n') {
        let start = offset;
        offset += raw.len() as u64;
        let body = raw.strip_suffix(b"\n").unwrap_or(raw);
        if let Ok(line) = parser.parse(body, &mut scratch) {
            joiner.push(line, start, offset, now, |r| on_record(OwnedRecord::from(r)));
        }
        on_pending(joiner.pending_start());
        now += step;
    }
}

/// A closure collecting owned copies of records into `out`.
pub fn collect(out: &mut Vec<OwnedRecord>) -> impl FnMut(Record<'_>) + '_ {
    |r| out.push(OwnedRecord::from(r))
}
