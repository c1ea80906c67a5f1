//! The JSON-lines contract of the local outputs (README "Output format"):
//!
//! - metric datum: `{"kind":"metric","namespace":"ContainerInsights","metric_name":…,
//!   "dimensions":{"ClusterName":…,…},"value":…,"unit":…,"timestamp":<ms>}`
//! - EMF event: `{"kind":"emf","log_group":…,"log_stream":…,"timestamp":<ms>,"message":"…"}`
//! - log event: `{"kind":"log","log_group":…,"log_stream":…,"timestamp":<ms>,"message":…}`

use std::fmt::Write as _;

use serde::ser::{SerializeMap, Serializer};

use super::payload::LogEvent;
use crate::metrics::Datum;
use crate::metrics::encode::datum::NAMESPACE;

struct Dimensions<'a>(&'a [(&'static str, std::sync::Arc<str>)]);

impl serde::Serialize for Dimensions<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, &**v)?;
        }
        m.end()
    }
}

/// Where the escapers write: a `String`, or the `BytesMut` that log messages and request bodies
/// are written into (only whole UTF-8 sequences and ASCII are ever appended).
pub trait JsonOut {
    fn put_str(&mut self, s: &str);
    /// An ASCII byte.
    fn put_ascii(&mut self, b: u8);
    fn reserve_more(&mut self, n: usize);
}

impl JsonOut for String {
    fn put_str(&mut self, s: &str) {
        self.push_str(s);
    }
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii());
        self.push(char::from(b));
    }
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
}

impl JsonOut for bytes::BytesMut {
    fn put_str(&mut self, s: &str) {
        self.extend_from_slice(s.as_bytes());
    }
    fn put_ascii(&mut self, b: u8) {
        debug_assert!(b.is_ascii());
        self.extend_from_slice(&[b]);
    }
    fn reserve_more(&mut self, n: usize) {
        self.reserve(n);
    }
}

/// Appends `s` to `out` as a JSON string (with its quotes): `"` and `\\` and the control
/// characters escaped, everything else copied in runs. The same bytes `serde_json` writes.
pub fn push_json_str(out: &mut impl JsonOut, s: &str) {
    out.reserve_more(s.len() + s.len() / 8 + 2);
    out.put_ascii(b'"');
    push_escaped(out, s);
    out.put_ascii(b'"');
}

/// `n` in decimal, without going through `fmt` (once per event): `itoa`, two digits a step.
pub fn push_decimal(out: &mut bytes::BytesMut, n: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// Appends the inside of `s`'s JSON string (no quotes): what [`push_json_str`] writes between
/// them.
pub fn push_escaped(out: &mut impl JsonOut, s: &str) {
    if !needs_any_escape(s.as_bytes()) {
        out.put_str(s);
    } else if has_control(s.as_bytes()) {
        push_escaped_slow(out, s);
    } else {
        // Only `"` and `\\` left to escape: jump between them with `memchr2` (vectorised). Log
        // records are JSON themselves, so quotes are frequent; the runs between them are copied
        // whole.
        let bytes = s.as_bytes();
        let mut run = 0;
        while let Some(k) = memchr::memchr2(b'"', b'\\', &bytes[run..]) {
            let i = run + k;
            out.put_str(&s[run..i]);
            out.put_ascii(b'\\');
            out.put_ascii(bytes[i]);
            run = i + 1;
        }
        out.put_str(&s[run..]);
    }
}

/// Appends `s` escaped twice, as a string value inside a JSON document that is itself sent as a
/// JSON string (a log record inside a `PutLogEvents` body): the result is what
/// `push_escaped(out, &once)` would append where `once` is `s` escaped once, without building
/// `once`. Returns `once.len()`, the bytes the string takes in the record. One pass instead of
/// two, and most log lines have nothing to escape, so they are one scan and one copy.
pub fn push_escaped_twice(out: &mut impl JsonOut, s: &str) -> usize {
    let bytes = s.as_bytes();
    if !needs_any_escape(bytes) {
        out.put_str(s);
        return s.len();
    }
    let mut once = s.len();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !needs_escape(x) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        // The once-escaped form of `b`, then its escape: `"` → `\"` → `\\\"`.
        let esc: Option<&str> = match b {
            b'"' => Some("\\\\\\\""),
            b'\\' => Some("\\\\\\\\"),
            b'\n' => Some("\\\\n"),
            b'\r' => Some("\\\\r"),
            b'\t' => Some("\\\\t"),
            0x08 => Some("\\\\b"),
            0x0c => Some("\\\\f"),
            0..=0x1f => None,
            _ => {
                i += 1;
                continue;
            }
        };
        out.put_str(&s[run..i]);
        match esc {
            Some(e) => {
                out.put_str(e);
                once += 1;
            }
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_str("\\\\u00");
                out.put_ascii(HEX[usize::from(b >> 4)]);
                out.put_ascii(HEX[usize::from(b & 0xf)]);
                once += 5;
            }
        }
        i += 1;
        run = i;
    }
    out.put_str(&s[run..]);
    once
}

/// Whether `bytes` holds anything JSON escapes (`"`, `\\`, a control character), checked 32 bytes
/// at a time without branches so that the compiler vectorises it: most log lines have nothing
/// to escape, and this one pass is all they cost before they are copied. The tail is one more
/// 32-byte pass over the last 32 bytes (overlapping what was checked), and a string shorter than
/// that goes eight bytes at a time: it is called twice per record (the timestamp, about 30
/// bytes, and the line), and a byte-by-byte tail took most of its time in the throughput
/// benchmark.
fn needs_any_escape(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 32 {
        let mut chunks = bytes.chunks_exact(32);
        if chunks.any(|c| <&[u8; 32]>::try_from(c).is_ok_and(chunk_needs_escape)) {
            return true;
        }
        return !chunks.remainder().is_empty() && <&[u8; 32]>::try_from(&bytes[n - 32..]).is_ok_and(chunk_needs_escape);
    }
    let word = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap_or([0; 8]));
    if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            if needs_escape(word(i)) {
                return true;
            }
            i += 8;
        }
        return i < n && needs_escape(word(n - 8));
    }
    bytes.iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

/// [`needs_any_escape`] of one 32-byte chunk, without branches.
#[inline]
fn chunk_needs_escape(c: &[u8; 32]) -> bool {
    let special = |b: u8| u8::from(b < 0x20) | u8::from(b == b'"') | u8::from(b == b'\\');
    c.iter().fold(0u8, |acc, &b| acc | special(b)) != 0
}

/// Whether `bytes` holds a control character (below 0x20), checked 32 bytes at a time without
/// branches so that the compiler vectorises it.
fn has_control(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(32);
    for c in &mut chunks {
        if c.iter().fold(0u8, |acc, &b| acc | u8::from(b < 0x20)) != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20)
}

/// The general case: every byte looked at, eight at a time while none needs escaping.
fn push_escaped_slow(out: &mut impl JsonOut, s: &str) {
    let bytes = s.as_bytes();
    let mut run = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            let x = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            if !needs_escape(x) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let esc: Option<&str> = match b {
            b'"' => Some("\\\""),
            b'\\' => Some("\\\\"),
            b'\n' => Some("\\n"),
            b'\r' => Some("\\r"),
            b'\t' => Some("\\t"),
            0x08 => Some("\\b"),
            0x0c => Some("\\f"),
            0..=0x1f => None,
            _ => {
                i += 1;
                continue;
            }
        };
        out.put_str(&s[run..i]);
        match esc {
            Some(e) => out.put_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.put_str("\\u00");
                out.put_ascii(HEX[usize::from(b >> 4)]);
                out.put_ascii(HEX[usize::from(b & 0xf)]);
            }
        }
        i += 1;
        run = i;
    }
    out.put_str(&s[run..]);
}

/// Whether any of the eight bytes of `x` is `"`, `\\` or a control character (below 0x20), by
/// the classic "has a zero byte" and "has a byte less than n" bit tricks (Bit Twiddling Hacks,
/// Sean Eron Anderson); bytes of 0x80 and above never match, so UTF-8 passes through.
fn needs_escape(x: u64) -> bool {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let has_zero = |y: u64| y.wrapping_sub(LO) & !y & HI != 0;
    let below_0x20 = x.wrapping_sub(LO * 0x20) & !x & HI != 0;
    below_0x20 || has_zero(x ^ (LO * u64::from(b'"'))) || has_zero(x ^ (LO * u64::from(b'\\')))
}

#[cfg(test)]
mod escape_tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The result is the JSON string serde_json writes, for any text.
        #[test]
        fn escapes_like_serde_json(s in any::<String>()) {
            let mut out = String::new();
            push_json_str(&mut out, &s);
            prop_assert_eq!(&out, &serde_json::to_string(&s).unwrap());
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
        }

        /// Escaping twice in one pass is escaping once, then escaping the result.
        #[test]
        fn escaping_twice_is_two_escapes(s in tricky_text()) {
            let mut once = String::new();
            push_escaped(&mut once, &s);
            let mut twice = String::new();
            push_escaped(&mut twice, &once);
            let mut fast = String::from("prefix");
            let n = push_escaped_twice(&mut fast, &s);
            prop_assert_eq!(&fast["prefix".len()..], twice.as_str());
            prop_assert_eq!(n, once.len());
        }
    }

    /// Text dense in what needs escaping: quotes, backslashes, every control character, the
    /// replacement character of a UTF-8 repair, multi-byte characters, runs of plain ASCII.
    fn tricky_text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_string()),
            Just("\\".to_string()),
            (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            Just("\u{fffd}".to_string()),
            Just("é日本\u{7f}".to_string()),
            "[a-z ]{0,20}",
            any::<String>(),
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|v| v.concat())
    }

    #[test]
    fn needs_any_escape_sees_a_special_byte_anywhere_at_any_length() {
        for len in 0..80 {
            let plain = "é".repeat(len / 2) + &"a".repeat(len % 2);
            assert!(!needs_any_escape(plain.as_bytes()), "len {len}");
            for pos in 0..len {
                for special in [b'"', b'\\', 0, b'\n', 0x1f] {
                    let mut b = vec![b'a'; len];
                    b[pos] = special;
                    assert!(needs_any_escape(&b), "{special:#x} at {pos} of {len}");
                }
                let mut b = vec![b'a'; len];
                b[pos] = 0x20;
                assert!(!needs_any_escape(&b), "a space at {pos} of {len}");
            }
        }
    }

    #[test]
    fn every_special_byte_at_every_position_of_a_word() {
        for special in ['"', '\\', '\n', '\u{1}', '\u{1f}', '\t'] {
            for pos in 0..17 {
                let mut s: String = "abcdefghijklmnopq".into();
                s.replace_range(pos..=pos, &special.to_string());
                let mut out = String::new();
                push_json_str(&mut out, &s);
                assert_eq!(serde_json::from_str::<String>(&out).unwrap(), s, "{special:?} at {pos}");
            }
        }
        let mut out = String::new();
        push_json_str(&mut out, "é日本\u{7f}~");
        assert_eq!(out, "\"é日本\u{7f}~\"");
    }
}

/// A statistic set as PutMetricData names its members.
struct Stats<'a>(&'a crate::metrics::record::StatisticSet);

impl serde::Serialize for Stats<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("SampleCount", &self.0.sample_count)?;
        m.serialize_entry("Sum", &self.0.sum)?;
        m.serialize_entry("Minimum", &self.0.minimum)?;
        m.serialize_entry("Maximum", &self.0.maximum)?;
        m.end()
    }
}

/// Appends one datum as a JSON line (with the trailing newline) to `buf`.
pub fn write_datum(buf: &mut Vec<u8>, d: &Datum) {
    let mut ser = serde_json::Serializer::new(&mut *buf);
    let result = (|| {
        let mut m = ser.serialize_map(Some(8))?;
        m.serialize_entry("kind", "metric")?;
        m.serialize_entry("namespace", NAMESPACE)?;
        m.serialize_entry("metric_name", d.metric_name)?;
        m.serialize_entry("dimensions", &Dimensions(&d.dimensions))?;
        m.serialize_entry("value", &d.value)?;
        if let Some(s) = &d.stats {
            m.serialize_entry("statistic_values", &Stats(s))?;
        }
        m.serialize_entry("unit", d.unit.as_str())?;
        m.serialize_entry("timestamp", &d.timestamp_ms)?;
        m.end()
    })();
    // Serializing strings and finite floats into a Vec cannot fail; records drop non-finite
    // values before they become datums (Record::set_field).
    debug_assert!(result.is_ok(), "datum serialization failed: {result:?}");
    buf.push(b'\n');
}

/// Appends one CloudWatch Logs event as a JSON line (with the trailing newline) to `buf`;
/// `kind` is `emf` for performance events and `log` for log records. Written by hand rather than
/// with `serde_json` because the message is already escaped (the same bytes `serde_json` writes).
pub fn write_event(buf: &mut Vec<u8>, kind: &str, e: &LogEvent) {
    let mut head = String::with_capacity(e.group.len() + e.stream.len() + 96);
    head.push_str("{\"kind\":");
    push_json_str(&mut head, kind);
    head.push_str(",\"log_group\":");
    push_json_str(&mut head, &e.group);
    head.push_str(",\"log_stream\":");
    push_json_str(&mut head, &e.stream);
    let _ = write!(head, ",\"timestamp\":{},\"message\":\"", e.timestamp_ms);
    buf.extend_from_slice(head.as_bytes());
    buf.extend_from_slice(e.message.escaped());
    buf.extend_from_slice(b"\"}\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Unit;

    /// The event line as `serde_json` writes it, which is what it was before messages were kept
    /// escaped.
    fn serde_event_line(kind: &str, e: &LogEvent) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut buf);
        let mut m = ser.serialize_map(Some(5)).unwrap();
        m.serialize_entry("kind", kind).unwrap();
        m.serialize_entry("log_group", &*e.group).unwrap();
        m.serialize_entry("log_stream", &*e.stream).unwrap();
        m.serialize_entry("timestamp", &e.timestamp_ms).unwrap();
        m.serialize_entry("message", &e.message.text()).unwrap();
        m.end().unwrap();
        buf.push(b'\n');
        buf
    }

    #[test]
    fn event_lines_are_the_bytes_serde_json_writes() {
        for text in [
            "plain",
            "{\"log\":\"q\\\"\"}",
            "line\n\u{1}\u{1f}é日本\u{7f}\u{fffd}",
            "",
            "\\/\t",
        ] {
            let e = LogEvent {
                group: "/aws/containerinsights/c\"q/application".into(),
                stream: "s\\1".into(),
                timestamp_ms: -1_764_300_000_123,
                message: text.into(),
                token: 0,
            };
            let mut buf = vec![];
            write_event(&mut buf, "log", &e);
            assert_eq!(
                String::from_utf8(buf).unwrap(),
                String::from_utf8(serde_event_line("log", &e)).unwrap()
            );
        }
    }

    #[test]
    fn datum_line_matches_the_contract() {
        let d = Datum {
            metric_name: "node_cpu_utilization",
            dimensions: vec![("ClusterName", "local".into()), ("NodeName", "a\"b".into())].into(),
            value: 12.5,
            stats: None,
            unit: Unit::Percent,
            timestamp_ms: 1_764_300_000_000,
        };
        let mut buf = vec![];
        write_datum(&mut buf, &d);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "{\"kind\":\"metric\",\"namespace\":\"ContainerInsights\",\"metric_name\":\"node_cpu_utilization\",\
             \"dimensions\":{\"ClusterName\":\"local\",\"NodeName\":\"a\\\"b\"},\"value\":12.5,\"unit\":\"Percent\",\
             \"timestamp\":1764300000000}\n"
        );
    }
}
