//! The parsed form of one runtime log line, shared by the CRI and Docker parsers.

use std::fmt;

/// The container output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// File descriptor 1.
    Stdout,
    /// File descriptor 2.
    Stderr,
}

impl Stream {
    /// Both streams, in index order.
    pub const ALL: [Stream; 2] = [Stream::Stdout, Stream::Stderr];

    /// The name as written in the log file and kept in the record (`stdout` / `stderr`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    /// Reads a stream name; anything but exactly `stdout` or `stderr` is `None`, as in kubelet.
    pub fn from_bytes(b: &[u8]) -> Option<Stream> {
        match b {
            b"stdout" => Some(Stream::Stdout),
            b"stderr" => Some(Stream::Stderr),
            _ => None,
        }
    }

    /// A dense index (0 or 1) for per-stream state kept in arrays instead of maps.
    pub fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One parsed runtime log line (CRI or Docker `json-file`), borrowing from the input line or from
/// the caller's decode buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// The runtime timestamp exactly as written (always ASCII once parsed); records keep it verbatim.
    pub time: &'a str,
    /// `time` as UTC milliseconds since the epoch, fraction truncated.
    pub timestamp_ms: i64,
    /// The stream the container wrote to.
    pub stream: Stream,
    /// The runtime cut this line and more pieces of the same stream follow (CRI tag `P`, or a Docker
    /// `log` value without its trailing `\n`).
    pub partial: bool,
    /// The container's bytes. CRI: without the line terminator. Docker: the decoded `log` value, which
    /// keeps its trailing `\n` on the last piece.
    pub content: &'a [u8],
}
