//! The plain payloads producers hand to an [`Output`](super::Output), and the outcome each one
//! gets back. No AWS type appears here: `metrics` and `logs` build these and their tests need no
//! AWS crate.

use std::fmt;
use std::sync::Arc;

pub use crate::metrics::Datum;

/// One CloudWatch Logs event, exactly what `PutLogEvents` sends: a performance (EMF) event or a
/// log record. `group` and `stream` are shared (`Arc`) because every event of a stream names the
/// same pair, and a log file produces thousands of them.
#[derive(Clone, PartialEq, Eq)]
pub struct LogEvent {
    pub group: Arc<str>,
    pub stream: Arc<str>,
    /// Milliseconds since the Unix epoch: the record's own time, not the send time.
    pub timestamp_ms: i64,
    /// Valid UTF-8 (a `String`), never empty: `PutLogEvents` requires at least one character.
    pub message: String,
    /// The producer's handle for this event, returned with its [`Outcome`] through
    /// [`Acknowledge`]; 0 where nobody listens (performance events).
    pub token: u64,
}

impl fmt::Debug for LogEvent {
    /// Group, stream, time and size only: a message is user data and can be large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogEvent")
            .field("group", &self.group)
            .field("stream", &self.stream)
            .field("timestamp_ms", &self.timestamp_ms)
            .field("message_bytes", &self.message.len())
            .field("token", &self.token)
            .finish()
    }
}

/// How one event ended. Every event handed to an output gets exactly one outcome, except those
/// still unsent when the agent stops: a log pipeline reads those again after the restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// CloudWatch Logs accepted it (for `stdout` and `dir:`: written and flushed).
    Accepted,
    /// CloudWatch Logs refused this event for good; resending cannot help.
    Rejected(Rejection),
    /// The output gave up on it for good, with a reason that is counted.
    Dropped(DropReason),
}

/// Why CloudWatch Logs refused single events (`rejectedLogEventsInfo` of the `PutLogEvents`
/// response, or the time window the API documents).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// More than 2 hours in the future.
    TooNew,
    /// Older than 14 days.
    TooOld,
    /// Older than the log group's retention.
    Expired,
}

/// Why an output gave up on an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A bounded drop-oldest queue (performance events) was full.
    QueueFull,
    /// `InvalidParameterException` even after the request was split in two.
    Invalid,
    /// The identity may not call `logs:PutLogEvents`.
    AccessDenied,
    /// Larger than one `PutLogEvents` request can carry.
    TooLarge,
    /// Still queued when the agent stopped (performance events only: log events stay unsent
    /// and are read again from their file).
    Shutdown,
    /// A local output could not write it.
    WriteFailed,
}

/// Where an output reports outcomes: the log pipeline's settle table, which turns a contiguous
/// run of final outcomes into a committed file offset. Called from the output's task, so an
/// implementation must not block (a short mutex section is fine).
pub trait Acknowledge: Send + Sync + fmt::Debug {
    /// `tokens` reached `outcome`.
    fn settled(&self, tokens: &[u64], outcome: Outcome);
}

/// What an output still held when it stopped (a flush deadline passed, or a reload replaced it).
#[derive(Debug, Default)]
pub struct Leftover {
    /// Metric datums and performance events given up on; counted as dropped.
    pub dropped: usize,
    /// Log events not sent: a reload hands them to the new output; at shutdown they are read
    /// again from their files after the restart.
    pub logs: Vec<LogEvent>,
}
