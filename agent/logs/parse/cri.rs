//! The CRI log line written by containerd and CRI-O: `<timestamp> <stream> <tags> <content>`.
//!
//! The layout is the one kubelet reads back (`kubernetes/kubernetes:
//! pkg/kubelet/kuberuntime/logs/logs.go`, `parseCRILog`): fields are split at the first three
//! spaces (the content keeps any spaces of its own), the stream must be `stdout` or `stderr`, and
//! the tags are a `:`-separated list of which only the first is read, `P` meaning the runtime cut
//! the line (containerd does so at `max_container_log_line_size`, 16 KiB by default:
//! `containerd/containerd: internal/cri/config/config_unix.go`, `DefaultRuntimeConfig`) and anything
//! else meaning a full line, so that tags added by future runtimes do not break parsing.

use std::fmt;

use memchr::memchr;

use super::line::{Line, Stream};
use super::time::{TimestampError, parse_rfc3339_ms};

/// Why a line is not a CRI log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CriError {
    /// Fewer than three space-separated fields (timestamp, stream, tags).
    MissingFields,
    /// The first field is not an RFC 3339 timestamp.
    Timestamp(TimestampError),
    /// The second field is neither `stdout` nor `stderr`.
    Stream,
}

impl fmt::Display for CriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CriError::MissingFields => f.write_str("CRI line has fewer than three fields"),
            CriError::Timestamp(e) => write!(f, "CRI line: {e}"),
            CriError::Stream => f.write_str("CRI line: stream is neither stdout nor stderr"),
        }
    }
}

impl std::error::Error for CriError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CriError::Timestamp(e) => Some(e),
            _ => None,
        }
    }
}

/// Parses one CRI log line. `line` is the line without its `\n` terminator (one trailing `\n`, if
/// present, is ignored). The result borrows from `line`; nothing is copied.
///
/// A line that ends right after the tags (with or without the separating space) has empty
/// content: runtimes write that for an empty output line.
pub fn parse_cri(line: &[u8]) -> Result<Line<'_>, CriError> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let ts_end = memchr(b' ', line).ok_or(CriError::MissingFields)?;
    let after_ts = &line[ts_end + 1..];
    let stream_end = memchr(b' ', after_ts).ok_or(CriError::MissingFields)?;
    let after_stream = &after_ts[stream_end + 1..];
    let (tags, content) = match memchr(b' ', after_stream) {
        Some(i) => (&after_stream[..i], &after_stream[i + 1..]),
        None => (after_stream, &after_stream[after_stream.len()..]),
    };
    // The timestamp is checked first so that a line of free text is reported as such, not as a
    // bad stream.
    let ts = &line[..ts_end];
    let timestamp_ms = parse_rfc3339_ms(ts).map_err(CriError::Timestamp)?;
    // A timestamp that parsed is ASCII, so this never fails; mapping the error keeps it panic-free.
    let time = std::str::from_utf8(ts).map_err(|_| CriError::Timestamp(TimestampError::Layout))?;
    let stream = Stream::from_bytes(&after_ts[..stream_end]).ok_or(CriError::Stream)?;
    let first_tag = tags.split(|&b| b == b':').next().unwrap_or_default();
    Ok(Line {
        time,
        timestamp_ms,
        stream,
        partial: first_tag == b"P",
        content,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Line<'_> {
        parse_cri(s.as_bytes()).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn oracle_lines() {
        let l = ok("2026-01-05T10:11:12.123456789Z stdout P part-one|");
        assert_eq!(l.time, "2026-01-05T10:11:12.123456789Z");
        assert_eq!(l.timestamp_ms, 1_767_607_872_123);
        assert_eq!(l.stream, Stream::Stdout);
        assert!(l.partial);
        assert_eq!(l.content, b"part-one|");

        let l = ok("2026-01-05T10:11:12.2Z stderr F error: disk full");
        assert_eq!(
            (l.stream, l.partial, l.content),
            (Stream::Stderr, false, &b"error: disk full"[..])
        );
        assert_eq!(l.timestamp_ms, 1_767_607_872_200);

        let l = ok("2026-01-05T10:11:13+01:00 stdout F {\"level\":\"info\",\"msg\":\"hi\"}");
        assert_eq!(l.time, "2026-01-05T10:11:13+01:00");
        assert_eq!(l.timestamp_ms, 1_767_604_273_000);
        assert_eq!(l.content, br#"{"level":"info","msg":"hi"}"#);
    }

    #[test]
    fn content_keeps_spaces_and_terminator_is_ignored() {
        assert_eq!(ok("2026-01-05T10:11:12Z stdout F  a  b ").content, b" a  b ");
        assert_eq!(ok("2026-01-05T10:11:12Z stdout F a b\n").content, b"a b");
        // Only one terminator is stripped; a carriage return is the container's byte.
        assert_eq!(ok("2026-01-05T10:11:12Z stdout F a\r\n").content, b"a\r");
    }

    #[test]
    fn empty_content() {
        let l = ok("2026-01-05T10:11:12Z stdout F ");
        assert_eq!((l.partial, l.content), (false, &b""[..]));
        let l = ok("2026-01-05T10:11:12Z stdout F");
        assert_eq!((l.partial, l.content), (false, &b""[..]));
        let l = ok("2026-01-05T10:11:12Z stderr P");
        assert_eq!((l.partial, l.content), (true, &b""[..]));
    }

    #[test]
    fn tags_are_forward_compatible() {
        assert!(ok("2026-01-05T10:11:12Z stdout P:x:y c").partial);
        assert!(!ok("2026-01-05T10:11:12Z stdout F:P c").partial);
        assert!(!ok("2026-01-05T10:11:12Z stdout X c").partial);
        assert!(!ok("2026-01-05T10:11:12Z stdout PP c").partial);
        // An empty tag field (two spaces) is "not P", so a full line.
        let l = ok("2026-01-05T10:11:12Z stdout  c");
        assert_eq!((l.partial, l.content), (false, &b"c"[..]));
    }

    #[test]
    fn variable_fractions_and_offsets() {
        assert_eq!(
            ok("2026-01-05T10:11:12+02:00 stdout F x").timestamp_ms,
            1_767_600_672_000
        );
        assert_eq!(ok("2026-01-05T10:11:12.5Z stdout F x").timestamp_ms, 1_767_607_872_500);
        assert_eq!(
            ok("2026-01-05T10:11:12.123456789Z stdout F x").timestamp_ms,
            1_767_607_872_123
        );
        assert_eq!(
            ok("2026-01-05T10:11:12-05:30 stdout F x").timestamp_ms,
            1_767_627_672_000
        );
    }

    #[test]
    fn malformed() {
        let err = |s: &str| parse_cri(s.as_bytes()).unwrap_err();
        assert_eq!(err(""), CriError::MissingFields);
        assert_eq!(err("hello"), CriError::MissingFields);
        assert_eq!(err("2026-01-05T10:11:12Z stdout"), CriError::MissingFields);
        assert_eq!(err("2026-01-05T10:11:12Z"), CriError::MissingFields);
        assert_eq!(
            err("hello world how are you"),
            CriError::Timestamp(TimestampError::Layout)
        );
        assert_eq!(
            err("2026-01-05T25:11:12Z stdout F x"),
            CriError::Timestamp(TimestampError::OutOfRange)
        );
        assert_eq!(err("2026-01-05T10:11:12Z stdin F x"), CriError::Stream);
        assert_eq!(err("2026-01-05T10:11:12Z STDOUT F x"), CriError::Stream);
        assert_eq!(err("2026-01-05T10:11:12Z  stdout F x"), CriError::Stream);
        assert_eq!(
            err(r#"{"log":"x\n","stream":"stdout","time":"2026-01-05T10:11:12Z"}"#),
            CriError::MissingFields
        );
        assert!(err("2026-01-05T10:11:12Z stdin F x").to_string().contains("stream"));
    }

    #[test]
    fn invalid_utf8_content_is_passed_through() {
        let l = parse_cri(b"2026-01-05T10:11:12Z stdout F \xff\xfe ok").unwrap();
        assert_eq!(l.content, b"\xff\xfe ok");
        assert!(parse_cri(b"2026-01-05T10:11:12\xffZ stdout F x").is_err());
    }
}
