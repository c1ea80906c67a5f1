//! The JSON-lines contract of the local outputs (README "Output format"):
//!
//! - metric datum: `{"kind":"metric","namespace":"ContainerInsights","metric_name":…,
//!   "dimensions":{"ClusterName":…,…},"value":…,"unit":…,"timestamp":<ms>}`
//! - EMF event: `{"kind":"emf","log_group":…,"log_stream":…,"timestamp":<ms>,"message":"…"}`
//! - log event: `{"kind":"log","log_group":…,"log_stream":…,"timestamp":<ms>,"message":…}`

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

/// Appends `s` to `out` as a JSON string (with its quotes): `"` and `\\` and the control
/// characters escaped, everything else copied in runs. Used for log records (once per line) and
/// for `PutLogEvents` bodies, where it is the hot path of the log pipeline.
pub fn push_json_str(out: &mut String, s: &str) {
    out.reserve(s.len() + s.len() / 8 + 2);
    out.push('"');
    if has_control(s.as_bytes()) {
        push_escaped_slow(out, s);
    } else {
        // Only `"` and `\\` left to escape: jump between them with `memchr2` (vectorised). Log
        // records are JSON themselves, so quotes are frequent; the runs between them are copied
        // whole.
        let bytes = s.as_bytes();
        let mut run = 0;
        while let Some(k) = memchr::memchr2(b'"', b'\\', &bytes[run..]) {
            let i = run + k;
            out.push_str(&s[run..i]);
            out.push('\\');
            out.push(char::from(bytes[i]));
            run = i + 1;
        }
        out.push_str(&s[run..]);
    }
    out.push('"');
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
fn push_escaped_slow(out: &mut String, s: &str) {
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
        out.push_str(&s[run..i]);
        match esc {
            Some(e) => out.push_str(e),
            None => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0xf)]));
            }
        }
        i += 1;
        run = i;
    }
    out.push_str(&s[run..]);
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
            let back: String = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(back, s);
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
/// `kind` is `emf` for performance events and `log` for log records.
pub fn write_event(buf: &mut Vec<u8>, kind: &str, e: &LogEvent) {
    let mut ser = serde_json::Serializer::new(&mut *buf);
    let result = (|| {
        let mut m = ser.serialize_map(Some(5))?;
        m.serialize_entry("kind", kind)?;
        m.serialize_entry("log_group", &*e.group)?;
        m.serialize_entry("log_stream", &*e.stream)?;
        m.serialize_entry("timestamp", &e.timestamp_ms)?;
        m.serialize_entry("message", &e.message)?;
        m.end()
    })();
    debug_assert!(result.is_ok(), "event line serialization failed: {result:?}");
    buf.push(b'\n');
}

/// All datums of an interval as JSON lines, ready for one write.
pub fn datum_lines(datums: &[Datum]) -> Vec<u8> {
    let mut buf = Vec::with_capacity(datums.len() * 192);
    for d in datums {
        write_datum(&mut buf, d);
    }
    buf
}

/// Events as JSON lines of `kind`, ready for one write.
pub fn event_lines(kind: &str, events: &[LogEvent]) -> Vec<u8> {
    let size: usize = events
        .iter()
        .map(|e| e.message.len() + e.stream.len() + e.group.len() + 80)
        .sum();
    let mut buf = Vec::with_capacity(size);
    for e in events {
        write_event(&mut buf, kind, e);
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Unit;

    #[test]
    fn datum_line_matches_the_contract() {
        let d = Datum {
            metric_name: "node_cpu_utilization",
            dimensions: vec![("ClusterName", "local".into()), ("NodeName", "a\"b".into())].into(),
            value: 12.5,
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
