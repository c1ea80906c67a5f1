//! The plain payloads producers hand to an [`Output`](super::Output), and the outcome each one
//! gets back. No AWS type appears here: `metrics` and `logs` build these and their tests need no
//! AWS crate.

use std::fmt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

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
    /// Never empty: `PutLogEvents` requires at least one character.
    pub message: Message,
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

/// An event's message, kept in the form it takes inside a JSON string (escaped, without the
/// quotes): a `PutLogEvents` body and a JSON-lines output copy it as it is. A log record is
/// itself JSON, so escaping it as it is sent meant a second pass over every byte of every record;
/// the log encoder writes records in this form directly, in one pass, into shared buffers that
/// messages are cut from (a `Bytes` handle: no allocation of its own).
///
/// A message of the log encoder is also *framed*: the encoder writes the `PutLogEvents` event
/// object around it, `,{"timestamp":T,"message":"` before and `"}` after, and keeps its whole
/// buffer. The events of one file written one after the other are then one contiguous run of
/// that buffer, which a request body takes as it is, without copying (`Message::framed`).
#[derive(Clone, Default)]
pub struct Message {
    /// Valid UTF-8. Unframed: the escaped text. Framed: a buffer of the encoder, the text at
    /// `start..end`, its event object at `at..end + 2`.
    buf: Bytes,
    at: u32,
    start: u32,
    /// 0 when unframed (a framed text starts after its frame, so its end is never 0).
    end: u32,
    /// UTF-8 bytes of the text itself: what `PutLogEvents` counts against its limits. A text of
    /// 4 GiB or more counts as `u32::MAX`, far over any limit, so it is refused as too large.
    len: u32,
}

/// The bytes that end a framed message's event object.
pub const FRAME_END: &[u8] = b"\"}";

impl Message {
    /// The message `text`.
    pub fn new(text: &str) -> Message {
        let mut escaped = BytesMut::with_capacity(text.len() + text.len() / 8);
        super::json_lines::push_escaped(&mut escaped, text);
        Message::from_escaped(escaped.freeze(), text.len())
    }

    /// A message already escaped: `escaped` must be what [`push_escaped`] makes of a text of
    /// `len` bytes (the log encoder's one-pass form).
    ///
    /// [`push_escaped`]: super::json_lines::push_escaped
    pub fn from_escaped(escaped: Bytes, len: usize) -> Message {
        debug_assert!(
            unescape(&escaped).is_some_and(|t| t.len() == len),
            "not an escaped text of {len} bytes"
        );
        Message {
            buf: escaped,
            at: 0,
            start: 0,
            end: 0,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }

    /// A framed message: `buf[at..start]` is `,{"timestamp":T,"message":"` for the event's
    /// timestamp T, `buf[start..end]` the escaped form of a text of `len` bytes, and
    /// `buf[end..end + 2]` is `"}`. Offsets that do not say so give an unframed message of
    /// `buf[start..end]` (never the case for the log encoder, which writes them; a debug build
    /// asserts it).
    pub fn framed(buf: Bytes, at: u32, start: u32, end: u32, len: usize) -> Message {
        let (a, s, e) = (at as usize, start as usize, end as usize);
        let ok = a < s
            && s <= e
            && e + FRAME_END.len() <= buf.len()
            && buf[a..s].starts_with(b",{\"timestamp\":")
            && buf[a..s].ends_with(b",\"message\":\"")
            && &buf[e..e + FRAME_END.len()] == FRAME_END;
        debug_assert!(ok, "not a framed message");
        if !ok {
            let text = buf.get(s..e).map(|t| buf.slice_ref(t)).unwrap_or_default();
            return Message::from_escaped(text, len);
        }
        debug_assert!(
            unescape(&buf[s..e]).is_some_and(|t| t.len() == len),
            "not an escaped text of {len} bytes"
        );
        Message {
            buf,
            at,
            start,
            end,
            len: u32::try_from(len).unwrap_or(u32::MAX),
        }
    }

    /// UTF-8 bytes of the text.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The escaped form, for a JSON string (valid UTF-8).
    pub fn escaped(&self) -> &[u8] {
        if self.end == 0 {
            &self.buf
        } else {
            &self.buf[self.start as usize..self.end as usize]
        }
    }

    /// A framed message's buffer and where its event object is in it (with its leading comma):
    /// `None` for an unframed one.
    pub fn frame(&self) -> Option<(&Bytes, std::ops::Range<usize>)> {
        (self.end != 0).then(|| (&self.buf, self.at as usize..self.end as usize + FRAME_END.len()))
    }

    /// The text itself (unescaped again: for tests and the rare reader, not the send path).
    pub fn text(&self) -> String {
        unescape(self.escaped()).unwrap_or_default()
    }
}

impl PartialEq for Message {
    /// The same text, framed or not.
    fn eq(&self, other: &Message) -> bool {
        self.len == other.len && self.escaped() == other.escaped()
    }
}

impl Eq for Message {}

fn unescape(escaped: &[u8]) -> Option<String> {
    let mut quoted = Vec::with_capacity(escaped.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(escaped);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

impl From<&str> for Message {
    fn from(text: &str) -> Message {
        Message::new(text)
    }
}

impl From<String> for Message {
    fn from(text: String) -> Message {
        Message::new(&text)
    }
}

impl fmt::Debug for Message {
    /// The size only: a message is user data and can be large.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Message({} bytes)", self.len)
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
