//! The Docker `json-file` log line: `{"log":"…\n","stream":"stdout","time":"…"}`.
//!
//! Docker's `json-file` driver (`moby/moby: daemon/logger/jsonfilelog/jsonlog/jsonlogbytes.go`) writes
//! one object per line with Go's JSON string escaping. Docker's log copier
//! (`moby/moby: daemon/logger/copier.go`) hands it output longer than 16 KiB in several messages,
//! of which only the last has a `log` ending in `\n`. Kubelet decodes
//! it with `encoding/json` (`parseDockerJSONLog` in `kubernetes/kubernetes:
//! pkg/kubelet/kuberuntime/logs/logs.go`); Fluent Bit's `docker` multiline parser joins pieces
//! until `log` ends with `\n` and keeps that `\n` in the record
//! (`fluent/fluent-bit: src/multiline/flb_ml_parser_docker.c`).
//!
//! The decoder is hand-written rather than a general JSON library because it must decode into
//! a buffer the caller reuses across lines (no allocation per line) and only three string keys
//! matter. It decodes strings fully (all escapes, UTF-16 surrogate pairs; a lone surrogate becomes
//! U+FFFD as Go's decoder does), skips other keys' values of any JSON type, and rejects anything
//! that is not a single JSON object.

use std::fmt;

use memchr::memchr2;

use super::line::{Line, Stream};
use super::time::{TimestampError, parse_rfc3339_ms};

/// Why a line is not a Docker `json-file` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerError {
    /// The line is not one well-formed JSON object (the byte offset where decoding stopped).
    Syntax(usize),
    /// A string holds a raw control character or an invalid escape (byte offset).
    BadString(usize),
    /// Unknown values nest deeper than this decoder follows.
    TooDeep,
    /// `log`, `stream` or `time` is missing or not a string.
    MissingKey(&'static str),
    /// `stream` is neither `stdout` nor `stderr`.
    Stream,
    /// `time` is not an RFC 3339 timestamp.
    Timestamp(TimestampError),
}

impl fmt::Display for DockerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DockerError::Syntax(at) => write!(f, "Docker line: not a JSON object (at byte {at})"),
            DockerError::BadString(at) => write!(f, "Docker line: invalid JSON string (at byte {at})"),
            DockerError::TooDeep => write!(f, "Docker line: values nested deeper than {MAX_DEPTH}"),
            DockerError::MissingKey(key) => write!(f, "Docker line: no string {key:?}"),
            DockerError::Stream => f.write_str("Docker line: stream is neither stdout nor stderr"),
            DockerError::Timestamp(e) => write!(f, "Docker line: {e}"),
        }
    }
}

impl std::error::Error for DockerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DockerError::Timestamp(e) => Some(e),
            _ => None,
        }
    }
}

/// Nesting followed when skipping unknown values (`attrs` is one level deep); deeper input is
/// rejected instead of recursing without bound.
const MAX_DEPTH: usize = 32;

/// A decoded string: either an unescaped run of the input line, or a range of the decode buffer.
#[derive(Debug, Clone, Copy)]
enum Str {
    Line(usize, usize),
    Buf(usize, usize),
}

impl Str {
    fn get<'a>(self, line: &'a [u8], buf: &'a [u8]) -> &'a [u8] {
        match self {
            Str::Line(a, b) => &line[a..b],
            Str::Buf(a, b) => &buf[a..b],
        }
    }
}

/// Parses one Docker `json-file` line. `line` is the line without its `\n` terminator (trailing
/// JSON whitespace, including a `\n`, is ignored).
///
/// `scratch` is cleared and receives the decoded strings that contain escapes; strings without
/// escapes are borrowed from `line` directly. Keep one buffer per reading task and pass it for
/// every line, so decoding allocates only while the buffer grows to the longest line seen.
///
/// `log` keeps its trailing `\n`; a `log` without one is a partial piece ([`Line::partial`]).
/// Unknown keys are skipped; a repeated key takes its last value, as Go's decoder does.
pub fn parse_docker<'a>(line: &'a [u8], scratch: &'a mut Vec<u8>) -> Result<Line<'a>, DockerError> {
    scratch.clear();
    let mut d = Decoder {
        line,
        pos: 0,
        buf: &mut *scratch,
    };
    let (log, stream, time) = d.object()?;
    let buf: &'a [u8] = scratch;
    let log = log.ok_or(DockerError::MissingKey("log"))?.get(line, buf);
    let stream = stream.ok_or(DockerError::MissingKey("stream"))?.get(line, buf);
    let time = time.ok_or(DockerError::MissingKey("time"))?.get(line, buf);
    let stream = Stream::from_bytes(stream).ok_or(DockerError::Stream)?;
    let timestamp_ms = parse_rfc3339_ms(time).map_err(DockerError::Timestamp)?;
    // A timestamp that parsed is ASCII, so this never fails; mapping the error keeps it panic-free.
    let time = std::str::from_utf8(time).map_err(|_| DockerError::Timestamp(TimestampError::Layout))?;
    Ok(Line {
        time,
        timestamp_ms,
        stream,
        partial: !log.ends_with(b"\n"),
        content: log,
    })
}

struct Decoder<'l, 'b> {
    line: &'l [u8],
    pos: usize,
    buf: &'b mut Vec<u8>,
}

type Fields = (Option<Str>, Option<Str>, Option<Str>);

impl Decoder<'_, '_> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.pos += 1;
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), DockerError> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(DockerError::Syntax(self.pos))
        }
    }

    /// The top-level object; returns the last `log`, `stream` and `time` string values.
    fn object(&mut self) -> Result<Fields, DockerError> {
        let (mut log, mut stream, mut time) = (None, None, None);
        self.expect(b'{')?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
        } else {
            loop {
                self.expect(b'"')?;
                let mark = self.buf.len();
                let key = self.string()?;
                let slot = match key.get(self.line, self.buf) {
                    b"log" => Some(&mut log),
                    b"stream" => Some(&mut stream),
                    b"time" => Some(&mut time),
                    _ => None,
                };
                // The key is no longer needed; drop it from the buffer if it was decoded there.
                self.buf.truncate(mark);
                self.expect(b':')?;
                self.skip_ws();
                match slot {
                    Some(slot) if self.peek() == Some(b'"') => {
                        self.pos += 1;
                        *slot = Some(self.string()?);
                    }
                    Some(slot) => {
                        // A known key holding a non-string: treat the key as absent (kubelet's
                        // typed decode would fail too).
                        *slot = None;
                        self.skip_value(0)?;
                    }
                    None => self.skip_value(0)?,
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.pos += 1,
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(DockerError::Syntax(self.pos)),
                }
            }
        }
        self.skip_ws();
        if self.pos != self.line.len() {
            return Err(DockerError::Syntax(self.pos));
        }
        Ok((log, stream, time))
    }

    /// Decodes a string whose opening quote was consumed; leaves `pos` after the closing quote.
    fn string(&mut self) -> Result<Str, DockerError> {
        let start = self.pos;
        let mut buf_start = None;
        loop {
            let rest = &self.line[self.pos..];
            let Some(i) = memchr2(b'"', b'\\', rest) else {
                return Err(DockerError::Syntax(self.line.len()));
            };
            if let Some(bad) = rest[..i].iter().position(|&b| b < 0x20) {
                return Err(DockerError::BadString(self.pos + bad));
            }
            let run = &rest[..i];
            if rest[i] == b'"' {
                self.pos += i + 1;
                return Ok(match buf_start {
                    // No escape seen: borrow the run from the line.
                    None => Str::Line(start, start + i),
                    Some(b) => {
                        self.buf.extend_from_slice(run);
                        Str::Buf(b, self.buf.len())
                    }
                });
            }
            // An escape: from here on the string is assembled in the buffer.
            if buf_start.is_none() {
                buf_start = Some(self.buf.len());
            }
            self.buf.extend_from_slice(run);
            self.pos += i + 1;
            self.escape()?;
        }
    }

    /// Decodes the escape after a backslash into the buffer.
    fn escape(&mut self) -> Result<(), DockerError> {
        let at = self.pos - 1;
        let c = self.peek().ok_or(DockerError::BadString(at))?;
        self.pos += 1;
        let byte = match c {
            b'"' => b'"',
            b'\\' => b'\\',
            b'/' => b'/',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'n' => b'\n',
            b'r' => b'\r',
            b't' => b'\t',
            b'u' => {
                let unit = self.hex4().ok_or(DockerError::BadString(at))?;
                let ch = match unit {
                    0xD800..=0xDBFF => self.low_surrogate(unit),
                    // A lone low surrogate has no code point; Go's decoder writes U+FFFD.
                    0xDC00..=0xDFFF => char::REPLACEMENT_CHARACTER,
                    _ => char::from_u32(u32::from(unit)).unwrap_or(char::REPLACEMENT_CHARACTER),
                };
                let mut utf8 = [0u8; 4];
                self.buf.extend_from_slice(ch.encode_utf8(&mut utf8).as_bytes());
                return Ok(());
            }
            _ => return Err(DockerError::BadString(at)),
        };
        self.buf.push(byte);
        Ok(())
    }

    /// Completes a high surrogate with the `\uDC00`–`\uDFFF` escape that must follow it. Without
    /// one the high surrogate alone becomes U+FFFD and whatever follows is decoded on its own.
    fn low_surrogate(&mut self, high: u16) -> char {
        let save = self.pos;
        if self.line[self.pos..].starts_with(b"\\u") {
            self.pos += 2;
            if let Some(low @ 0xDC00..=0xDFFF) = self.hex4() {
                let cp = 0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(low) - 0xDC00);
                return char::from_u32(cp).unwrap_or(char::REPLACEMENT_CHARACTER);
            }
        }
        self.pos = save;
        char::REPLACEMENT_CHARACTER
    }

    fn hex4(&mut self) -> Option<u16> {
        let hex = self.line.get(self.pos..self.pos + 4)?;
        let mut v: u16 = 0;
        for &h in hex {
            let d = match h {
                b'0'..=b'9' => h - b'0',
                b'a'..=b'f' => h - b'a' + 10,
                b'A'..=b'F' => h - b'A' + 10,
                _ => return None,
            };
            v = (v << 4) | u16::from(d);
        }
        self.pos += 4;
        Some(v)
    }

    /// Skips one JSON value of any type, checking its syntax.
    fn skip_value(&mut self, depth: usize) -> Result<(), DockerError> {
        if depth >= MAX_DEPTH {
            return Err(DockerError::TooDeep);
        }
        self.skip_ws();
        match self.peek() {
            Some(b'"') => {
                self.pos += 1;
                let mark = self.buf.len();
                self.string()?;
                self.buf.truncate(mark);
                Ok(())
            }
            Some(b'{') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.expect(b'"')?;
                    let mark = self.buf.len();
                    self.string()?;
                    self.buf.truncate(mark);
                    self.expect(b':')?;
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(DockerError::Syntax(self.pos)),
                    }
                }
            }
            Some(b'[') => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(DockerError::Syntax(self.pos)),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => {
                self.number();
                Ok(())
            }
            _ => Err(DockerError::Syntax(self.pos)),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DockerError> {
        if self.line[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(DockerError::Syntax(self.pos))
        }
    }

    /// Skips a number loosely (its exact grammar does not matter for a value that is thrown away;
    /// what follows must still be `,` or `}` for the line to parse).
    fn number(&mut self) {
        while let Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &[u8]) -> Result<(String, Stream, bool, Vec<u8>, i64), DockerError> {
        let mut buf = Vec::new();
        let l = parse_docker(s, &mut buf)?;
        Ok((
            l.time.to_owned(),
            l.stream,
            l.partial,
            l.content.to_vec(),
            l.timestamp_ms,
        ))
    }

    fn content(s: &str) -> Vec<u8> {
        parse(s.as_bytes()).unwrap_or_else(|e| panic!("{s}: {e}")).3
    }

    #[test]
    fn oracle_lines() {
        let (time, stream, partial, log, ms) =
            parse(br#"{"log":"first half ","stream":"stdout","time":"2026-01-05T10:11:14.123456789Z"}"#).unwrap();
        assert_eq!(time, "2026-01-05T10:11:14.123456789Z");
        assert_eq!(
            (stream, partial, log.as_slice(), ms),
            (Stream::Stdout, true, &b"first half "[..], 1_767_607_874_123)
        );

        let (time, stream, partial, log, ms) =
            parse(br#"{"log":"err\n","stream":"stderr","time":"2026-01-05T10:11:14.2Z"}"#).unwrap();
        assert_eq!(time, "2026-01-05T10:11:14.2Z");
        assert_eq!(
            (stream, partial, log.as_slice(), ms),
            (Stream::Stderr, false, &b"err\n"[..], 1_767_607_874_200)
        );
    }

    #[test]
    fn borrows_when_unescaped_and_reuses_buffer() {
        let line = br#"{"log":"plain","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#;
        let mut buf = Vec::with_capacity(64);
        let l = parse_docker(line, &mut buf).unwrap();
        // The content points into the line itself.
        assert!(std::ptr::eq(l.content.as_ptr(), line[8..].as_ptr()));
        let line2 = br#"{"log":"esc\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#;
        let cap = buf.capacity();
        let l = parse_docker(line2, &mut buf).unwrap();
        assert_eq!(l.content, b"esc\n");
        assert_eq!(buf.capacity(), cap);
    }

    #[test]
    fn escapes() {
        assert_eq!(
            content(r#"{"log":"q\" b\\ s\/ \b\f\n\r\t end\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#),
            b"q\" b\\ s/ \x08\x0c\n\r\t end\n"
        );
        assert_eq!(
            content(r#"{"log":"\u0041\u00e9\u20AC\u0000\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#),
            "Aé€\0\n".as_bytes()
        );
        // Go escapes <, > and & in HTML-safe mode.
        assert_eq!(
            content(r#"{"log":"\u003ca\u0026b\u003e\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#),
            b"<a&b>\n"
        );
        // Raw UTF-8 and raw invalid bytes pass through undecoded (repair happens later).
        assert_eq!(
            parse("{\"log\":\"é\u{1F600}\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-05T10:11:14Z\"}".as_bytes())
                .unwrap()
                .3,
            "é😀\n".as_bytes()
        );
        assert_eq!(
            parse(b"{\"log\":\"\xff\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-05T10:11:14Z\"}")
                .unwrap()
                .3,
            b"\xff\n"
        );
    }

    #[test]
    fn surrogates() {
        let c = |esc: &str| {
            content(&format!(
                r#"{{"log":"{esc}","stream":"stdout","time":"2026-01-05T10:11:14Z"}}"#
            ))
        };
        assert_eq!(c(r"\ud83d\ude00"), "😀".as_bytes());
        assert_eq!(c(r"\uD834\uDD1E!"), "𝄞!".as_bytes());
        // Lone or misordered surrogates become U+FFFD, the following text is kept.
        assert_eq!(c(r"\ud83dx"), "\u{FFFD}x".as_bytes());
        assert_eq!(c(r"\ude00\ud83d"), "\u{FFFD}\u{FFFD}".as_bytes());
        assert_eq!(c(r"\ud83d\u0041"), "\u{FFFD}A".as_bytes());
        assert_eq!(c(r"\ud83d\ud83d\ude00"), "\u{FFFD}😀".as_bytes());
        assert_eq!(c(r"\ud83d\n"), "\u{FFFD}\n".as_bytes());
    }

    #[test]
    fn key_order_whitespace_unknown_keys() {
        let s = r#"  { "time" : "2026-01-05T10:11:14Z" , "attrs":{"a":[1,-2.5e3,true,false,null,{"x":"\"y"}]},
            "stream":"stderr", "log" : "x\n", "n": 0 }  "#;
        let (_, stream, partial, log, _) = parse(s.replace('\n', " ").as_bytes()).unwrap();
        assert_eq!((stream, partial, log.as_slice()), (Stream::Stderr, false, &b"x\n"[..]));
        // A line handed over with its terminator still parses.
        assert!(parse(b"{\"log\":\"x\",\"stream\":\"stdout\",\"time\":\"2026-01-05T10:11:14Z\"}\n").is_ok());
        // The last of duplicate keys wins, as in Go.
        let s = r#"{"log":"a","log":"b\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#;
        assert_eq!(content(s), b"b\n");
        // Escaped key names are decoded before comparison.
        let s = r#"{"\u006cog":"k\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#;
        assert_eq!(content(s), b"k\n");
    }

    #[test]
    fn empty_log_is_partial_and_newline_only_is_full() {
        let (_, _, partial, log, _) = parse(br#"{"log":"","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#).unwrap();
        assert!(partial && log.is_empty());
        let (_, _, partial, log, _) =
            parse(br#"{"log":"\n","stream":"stdout","time":"2026-01-05T10:11:14Z"}"#).unwrap();
        assert!(!partial && log == b"\n");
    }

    #[test]
    fn malformed() {
        let err = |s: &[u8]| parse(s).unwrap_err();
        assert!(matches!(err(b""), DockerError::Syntax(0)));
        assert!(matches!(
            err(b"2026-01-05T10:11:12Z stdout F x"),
            DockerError::Syntax(0)
        ));
        assert!(matches!(err(b"{"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"log\":\"x"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"log\":\"x\\"), DockerError::BadString(_)));
        assert!(matches!(err(b"{\"log\":\"\\q\"}"), DockerError::BadString(_)));
        assert!(matches!(err(b"{\"log\":\"\\u12\"}"), DockerError::BadString(_)));
        assert!(matches!(err(b"{\"log\":\"a\tb\"}"), DockerError::BadString(_)));
        assert!(matches!(err(b"{\"log\" \"x\"}"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"log\":\"x\",}"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"log\":\"x\"} x"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"a\":tru}"), DockerError::Syntax(_)));
        assert!(matches!(err(b"{\"a\":[1,}"), DockerError::Syntax(_)));
        assert_eq!(err(b"{}"), DockerError::MissingKey("log"));
        assert_eq!(
            err(br#"{"log":"x","time":"2026-01-05T10:11:14Z"}"#),
            DockerError::MissingKey("stream")
        );
        assert_eq!(
            err(br#"{"log":"x","stream":"stdout"}"#),
            DockerError::MissingKey("time")
        );
        assert_eq!(
            err(br#"{"log":1,"stream":"stdout","time":"2026-01-05T10:11:14Z"}"#),
            DockerError::MissingKey("log")
        );
        assert_eq!(
            err(br#"{"log":"x","stream":"stdin","time":"2026-01-05T10:11:14Z"}"#),
            DockerError::Stream
        );
        assert_eq!(
            err(br#"{"log":"x","stream":"stdout","time":"yesterday"}"#),
            DockerError::Timestamp(TimestampError::Layout)
        );
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(100), "]".repeat(100));
        assert_eq!(err(deep.as_bytes()), DockerError::TooDeep);
        assert!(err(b"{").to_string().contains("JSON"));
    }
}
