//! Records as the message of a CloudWatch Logs event: compact JSON in a stable key order, valid
//! UTF-8, never empty, at most `max_event_bytes` bytes.
//!
//! Shapes (the Container Insights set-ups, `amazon-cloudwatch-container-insights`):
//! - application, Fluent Bit (default): `{"time","stream","log",["_truncated"],["log_processed"],
//!   "kubernetes":{pod_name, namespace_name, pod_id, host, container_name, docker_id,
//!   container_hash, container_image}}` — the key order of Fluent Bit's kubernetes filter
//!   (`plugins/filter_kubernetes/kube_meta.c`, `merge_pod_meta`), `log_processed` being the
//!   `Merge_Log_Key` of `fluent-bit.yaml`;
//! - application, fluentd: `{"log","stream","logtag","docker":{"container_id"},
//!   "kubernetes":{container_name, namespace_name, pod_name, container_image,
//!   container_image_id, pod_id, host, labels}}`, empty fields dropped as fluentd's output did;
//! - dataplane containers: `{"time","stream","log","az","ec2_instance_id"}` (Fluent Bit's
//!   dataplane inputs skip the kubernetes filter);
//! - host: `/var/log/dmesg` `{"message",…}`; `messages` and `secure` parsed as syslog,
//!   `{"host","ident","pid","message",…}`, or `{"message"}` when a line is not syslog.
//!
//! The decision a newcomer would question: messages are written in their escaped form, the
//! bytes a `PutLogEvents` body carries inside its JSON string (see `ship::Message`), not as the
//! record's JSON text. The record is JSON and would otherwise be escaped a second time as it is
//! sent: its quotes on every line, and the `kubernetes` object, which is most of a record. So the
//! line is escaped twice in one pass, and the `kubernetes` object of a file is serialised and
//! escaped once (it is the same for every line of a container) and copied as it is.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::config::{OversizeEvent, RecordProfile};
use bytes::{Bytes, BytesMut};

use crate::ship::Message;
use crate::ship::json_lines::{push_decimal, push_escaped, push_escaped_twice};
use crate::ship::payload::FRAME_END;

use super::parse::{Record, Stream, SyslogLine};

pub use crate::ship::json_lines::push_json_str;

/// The node facts host and dataplane records carry, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeFacts {
    pub az: Option<String>,
    pub instance_id: Option<String>,
}

impl NodeFacts {
    fn append(&self, out: &mut String) {
        if let Some(az) = &self.az {
            out.push_str(",\"az\":");
            push_json_str(out, az);
        }
        if let Some(id) = &self.instance_id {
            out.push_str(",\"ec2_instance_id\":");
            push_json_str(out, id);
        }
    }
}

/// What an application record says about its container, from the file name and the pod index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerMeta {
    pub pod_name: String,
    pub namespace: String,
    pub pod_id: String,
    pub host: String,
    pub container_name: String,
    /// The 64-hex container id (`docker_id`), when known.
    pub container_id: Option<String>,
    /// `imageID` without its `scheme://` prefix.
    pub container_hash: Option<String>,
    pub container_image: Option<String>,
    /// `imageID` as the pod status has it (fluentd's `container_image_id`).
    pub container_image_id: Option<String>,
    /// Empty unless `kinsight.logs.labels`.
    pub labels: Vec<(String, String)>,
    /// Empty unless `kinsight.logs.annotations`.
    pub annotations: Vec<(String, String)>,
}

/// `"key":{"k":"v",…}` after the fields before it, when `pairs` is not empty.
fn object(out: &mut String, first: &mut bool, key: &str, pairs: &[(String, String)]) {
    if pairs.is_empty() {
        return;
    }
    if !*first {
        out.push(',');
    }
    *first = false;
    push_json_str(out, key);
    out.push_str(":{");
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_str(out, k);
        out.push(':');
        push_json_str(out, v);
    }
    out.push('}');
}

/// The `kubernetes` object (or, for fluentd, `docker` + `kubernetes`), serialised once per file:
/// the text that follows `"log"…` up to the closing brace.
pub fn kubernetes_suffix(profile: RecordProfile, m: &ContainerMeta) -> String {
    let mut out = String::with_capacity(512);
    let field = |out: &mut String, first: &mut bool, k: &str, v: &str| {
        if !*first {
            out.push(',');
        }
        *first = false;
        push_json_str(out, k);
        out.push(':');
        push_json_str(out, v);
    };
    let mut first = true;
    match profile {
        RecordProfile::FluentBit => {
            out.push_str(",\"kubernetes\":{");
            field(&mut out, &mut first, "pod_name", &m.pod_name);
            field(&mut out, &mut first, "namespace_name", &m.namespace);
            field(&mut out, &mut first, "pod_id", &m.pod_id);
            object(&mut out, &mut first, "labels", &m.labels);
            object(&mut out, &mut first, "annotations", &m.annotations);
            field(&mut out, &mut first, "host", &m.host);
            field(&mut out, &mut first, "container_name", &m.container_name);
            for (k, v) in [
                ("docker_id", &m.container_id),
                ("container_hash", &m.container_hash),
                ("container_image", &m.container_image),
            ] {
                if let Some(v) = v {
                    field(&mut out, &mut first, k, v);
                }
            }
            out.push('}');
        }
        RecordProfile::Fluentd => {
            if let Some(id) = m.container_id.as_deref().filter(|s| !s.is_empty()) {
                out.push_str(",\"docker\":{\"container_id\":");
                push_json_str(&mut out, id);
                out.push('}');
            }
            out.push_str(",\"kubernetes\":{");
            for (k, v) in [
                ("container_name", Some(&m.container_name)),
                ("namespace_name", Some(&m.namespace)),
                ("pod_name", Some(&m.pod_name)),
                ("container_image", m.container_image.as_ref()),
                ("container_image_id", m.container_image_id.as_ref()),
                ("pod_id", Some(&m.pod_id)),
                ("host", Some(&m.host)),
            ] {
                if let Some(v) = v.filter(|v| !v.is_empty()) {
                    field(&mut out, &mut first, k, v);
                }
            }
            object(&mut out, &mut first, "labels", &m.labels);
            object(&mut out, &mut first, "annotations", &m.annotations);
            out.push('}');
        }
    }
    out.push('}');
    out
}

/// The `kubernetes` text of a file's records ([`kubernetes_suffix`]), kept in its escaped form
/// so that each record copies it as it is.
#[derive(Debug, Clone)]
pub struct Suffix {
    escaped: Arc<str>,
    /// Bytes of the text itself.
    len: usize,
}

impl From<String> for Suffix {
    fn from(text: String) -> Suffix {
        let mut escaped = String::with_capacity(text.len() + text.len() / 4);
        push_escaped(&mut escaped, &text);
        Suffix {
            escaped: escaped.into(),
            len: text.len(),
        }
    }
}

/// How the records of one file are written.
#[derive(Debug, Clone)]
pub enum Shape {
    /// Application records: the profile, the precomputed `kubernetes` suffix, and whether to
    /// merge a JSON `log` under `log_processed` (Fluent Bit's `Merge_Log`).
    Application {
        profile: RecordProfile,
        suffix: Suffix,
        merge_json: bool,
    },
    /// Dataplane container records, with the node facts.
    Dataplane { node: std::sync::Arc<NodeFacts> },
    /// `/var/log/dmesg`: the line under `message`.
    HostPlain { node: std::sync::Arc<NodeFacts> },
    /// `/var/log/messages`, `/var/log/secure`: syslog.
    HostSyslog { node: std::sync::Arc<NodeFacts> },
}

/// Per-event size rules.
#[derive(Debug, Clone, Copy)]
pub struct SizeRules {
    /// Message bytes one event may carry (`kinsight.logs.max_event_bytes`).
    pub max_event_bytes: usize,
    pub oversize: OversizeEvent,
}

/// What had to be done to a record to make its message(s).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Encoded {
    /// The content was cut to fit (`_truncated: true`).
    pub truncated: bool,
    pub split: bool,
}

/// `log` and its JSON merge: the object text when `log` (trailing newlines trimmed) is a JSON
/// object.
fn json_object(content: &str) -> Option<String> {
    let t = content.trim_end_matches(['\n', '\r']);
    if !t.trim_start().starts_with('{') {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(t).ok()?;
    v.is_object().then(|| v.to_string())
}

/// Where messages are written: a buffer that messages are cut from, so an event costs no
/// allocation (nor free) of its own. Each message is written framed, inside its `PutLogEvents`
/// event object (see `ship::Message`), so that a request body takes a run of them as it is.
///
/// A message is first a [`Pending`]: where it is in the buffer. [`Arena::seal`] freezes what was
/// written since the last seal into one shared buffer and turns the pending messages into
/// [`Message`]s of it: one freeze per file read rather than per message, and the messages of one
/// seal are one contiguous buffer. A chunk is freed when the last message cut from it is; chunks
/// are small so that a few events held long (a stream that keeps failing) pin little memory.
#[derive(Debug, Default)]
pub struct Arena {
    /// The current chunk: what was written since the last seal, then room.
    buf: BytesMut,
    /// Earlier chunks' unsealed parts (the chunk ran out of room before the seal).
    full: Vec<Bytes>,
    /// Seals so far: a pending message names the seal it belongs to.
    seals: u32,
}

/// Bytes of one arena chunk: about a hundred records of the Fluent Bit shape.
const ARENA_CHUNK: usize = 64 << 10;

/// The most bytes of a message's frame: `,{"timestamp":` (14), 20 digits and a sign, and
/// `,"message":"` (12) before it; `"}` after.
const FRAME_BYTES: usize = 14 + 21 + 12 + 2;

/// A message written to an [`Arena`] and not yet sealed.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// The seal that makes it a message (`Arena::seals` when it was written).
    seal: u32,
    /// Index of its chunk among the unsealed ones (`Arena::full`, then the current chunk).
    chunk: u32,
    at: u32,
    start: u32,
    end: u32,
    len: u32,
}

impl Pending {
    /// UTF-8 bytes of the message text.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Arena {
    /// A message of the event at `timestamp_ms`, of about `estimate` escaped bytes (it may grow
    /// past it).
    fn message(&mut self, timestamp_ms: i64, estimate: usize) -> Escaped<'_> {
        let need = estimate + FRAME_BYTES;
        if self.buf.capacity() - self.buf.len() < need {
            if !self.buf.is_empty() {
                self.full.push(self.buf.split().freeze());
            }
            self.buf = BytesMut::with_capacity(need.max(ARENA_CHUNK));
        }
        let at = self.buf.len();
        self.buf.extend_from_slice(b",{\"timestamp\":");
        push_decimal(&mut self.buf, timestamp_ms);
        self.buf.extend_from_slice(b",\"message\":\"");
        let start = self.buf.len();
        Escaped {
            out: &mut self.buf,
            seal: self.seals,
            chunk: self.full.len(),
            at,
            start,
            len: 0,
        }
    }

    /// Freezes what was written since the last seal; `take` turns the pending messages written
    /// meanwhile into messages. A pending message from before the last seal gives an empty
    /// message (which the output drops and counts), never another one's bytes.
    pub fn seal(&mut self) -> Sealed {
        if !self.buf.is_empty() {
            self.full.push(self.buf.split().freeze());
        }
        let seal = self.seals;
        self.seals = self.seals.wrapping_add(1);
        Sealed {
            seal,
            chunks: std::mem::take(&mut self.full),
        }
    }
}

/// The chunks of one [`Arena::seal`].
#[derive(Debug)]
pub struct Sealed {
    seal: u32,
    chunks: Vec<Bytes>,
}

impl Sealed {
    pub fn take(&self, p: Pending) -> Message {
        match self.chunks.get(p.chunk as usize).filter(|_| p.seal == self.seal) {
            Some(chunk) => Message::framed(chunk.clone(), p.at, p.start, p.end, p.len as usize),
            None => {
                debug_assert!(false, "a message from before the last seal");
                Message::default()
            }
        }
    }
}

/// A message being written in its escaped form, with the length of the text it stands for.
struct Escaped<'a> {
    out: &'a mut BytesMut,
    seal: u32,
    chunk: usize,
    at: usize,
    start: usize,
    len: usize,
}

impl Escaped<'_> {
    /// Record text (JSON syntax, or a value already in JSON), escaped once.
    fn json(&mut self, json: &str) {
        self.len += json.len();
        push_escaped(self.out, json);
    }

    /// Record syntax given already escaped (a constant such as `{\"time\":`), so that the
    /// markup of every record is not escaped again each time. Its only escapes are `\"`, one
    /// byte more each than the text.
    fn lit(&mut self, escaped: &'static str) {
        self.out.extend_from_slice(escaped.as_bytes());
        self.len += escaped.len() - escaped.bytes().filter(|&b| b == b'\\').count();
    }

    /// A string value of the record: quoted and escaped in the record, escaped again for the
    /// body.
    fn string(&mut self, s: &str) {
        self.out.extend_from_slice(b"\\\"");
        self.len += 2 + push_escaped_twice(self.out, s);
        self.out.extend_from_slice(b"\\\"");
    }

    fn suffix(&mut self, s: &Suffix) {
        self.out.extend_from_slice(s.escaped.as_bytes());
        self.len += s.len;
    }

    fn finish(self) -> Pending {
        let end = self.out.len();
        self.out.extend_from_slice(FRAME_END);
        // Chunks are at most a record's cap plus its escapes and frame: far below 4 GiB.
        let off = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Pending {
            seal: self.seal,
            chunk: off(self.chunk),
            at: off(self.at),
            start: off(self.start),
            end: off(end),
            len: off(self.len),
        }
    }
}

/// Escaped bytes of a record of `content`: content and markup, with room for some escapes.
fn estimate(content: &str, shape: &Shape) -> usize {
    let suffix = match shape {
        Shape::Application { suffix, .. } => suffix.escaped.len(),
        _ => 128,
    };
    content.len() + content.len() / 16 + suffix + 128
}

/// The application or dataplane message of a container record. `content` is valid UTF-8 (the
/// caller repaired it).
fn container_message(
    shape: &Shape,
    r: &Record<'_>,
    content: &str,
    truncated: bool,
    part: Option<(usize, usize)>,
    merge: bool,
    arena: &mut Arena,
) -> Pending {
    let mut out = arena.message(r.timestamp_ms, estimate(content, shape));
    match shape {
        Shape::Application {
            profile: RecordProfile::Fluentd,
            suffix,
            ..
        } => {
            out.lit(r#"{\"log\":"#);
            out.string(content);
            out.lit(match (r.stream, r.is_complete()) {
                (Stream::Stdout, true) => r#",\"stream\":\"stdout\",\"logtag\":\"F\""#,
                (Stream::Stdout, false) => r#",\"stream\":\"stdout\",\"logtag\":\"P\""#,
                (Stream::Stderr, true) => r#",\"stream\":\"stderr\",\"logtag\":\"F\""#,
                (Stream::Stderr, false) => r#",\"stream\":\"stderr\",\"logtag\":\"P\""#,
            });
            push_flags(&mut out, truncated, part);
            out.suffix(suffix);
        }
        Shape::Application { suffix, merge_json, .. } => {
            out.lit(r#"{\"time\":"#);
            out.string(r.time);
            out.lit(stream_then_log(r));
            out.string(content);
            push_flags(&mut out, truncated, part);
            if *merge_json
                && merge
                && let Some(obj) = json_object(content)
            {
                out.lit(r#",\"log_processed\":"#);
                out.json(&obj);
            }
            out.suffix(suffix);
        }
        Shape::Dataplane { node } | Shape::HostPlain { node } | Shape::HostSyslog { node } => {
            out.lit(r#"{\"time\":"#);
            out.string(r.time);
            out.lit(stream_then_log(r));
            out.string(content);
            push_flags(&mut out, truncated, part);
            let mut facts = String::new();
            node.append(&mut facts);
            facts.push('}');
            out.json(&facts);
        }
    }
    out.finish()
}

/// `,"stream":"stdout","log":` or its `stderr` twin, escaped.
fn stream_then_log(r: &Record<'_>) -> &'static str {
    match r.stream {
        Stream::Stdout => r#",\"stream\":\"stdout\",\"log\":"#,
        Stream::Stderr => r#",\"stream\":\"stderr\",\"log\":"#,
    }
}

fn push_flags(out: &mut Escaped, truncated: bool, part: Option<(usize, usize)>) {
    if truncated {
        out.lit(r#",\"_truncated\":true"#);
    }
    if let Some((i, n)) = part {
        let mut s = String::new();
        let _ = write!(s, ",\"_part\":{i},\"_parts\":{n}");
        out.json(&s);
    }
}

/// The largest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn floor(s: &str, max: usize) -> &str {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    &s[..cut]
}

/// Encodes a container record into `out`, keeping every message within
/// `rules.max_event_bytes`.
pub fn container_record(
    shape: &Shape,
    r: &Record<'_>,
    content: &str,
    rules: SizeRules,
    arena: &mut Arena,
    out: &mut Vec<Pending>,
) -> Encoded {
    let full = container_message(shape, r, content, r.truncated, None, true, arena);
    if full.len() <= rules.max_event_bytes {
        out.push(full);
        return Encoded {
            truncated: r.truncated,
            split: false,
        };
    }
    // Without the merged object first (Fluent Bit drops nothing; a message over the limit would
    // be refused whole), then with `log` cut at a character boundary.
    let overhead = container_message(shape, r, "", true, Some((99_999, 99_999)), false, arena).len();
    let room = rules.max_event_bytes.saturating_sub(overhead).max(1);
    match rules.oversize {
        OversizeEvent::Truncate => {
            let mut keep = content.len().min(room);
            loop {
                let cut = floor(content, keep);
                let m = container_message(shape, r, cut, true, None, false, arena);
                if m.len() <= rules.max_event_bytes || cut.is_empty() {
                    out.push(m);
                    return Encoded {
                        truncated: true,
                        split: false,
                    };
                }
                // Escaping made it longer than its bytes: shrink by the excess and try again.
                keep = cut.len().saturating_sub(m.len() - rules.max_event_bytes);
            }
        }
        OversizeEvent::Split => {
            let mut pieces: Vec<&str> = Vec::new();
            let mut rest = content;
            while !rest.is_empty() {
                let mut take = floor(rest, room);
                if take.is_empty() {
                    // A character longer than the room: take it whole (room is never below 4
                    // in practice; this only guards against a zero-length piece).
                    let n = rest.chars().next().map_or(rest.len(), char::len_utf8);
                    take = &rest[..n];
                }
                // Escaping can make a piece's message longer than its bytes: shrink until it fits.
                while take.len() > 1 {
                    let m = container_message(shape, r, take, r.truncated, Some((99_999, 99_999)), false, arena);
                    if m.len() <= rules.max_event_bytes {
                        break;
                    }
                    take = floor(take, take.len() - (m.len() - rules.max_event_bytes).min(take.len() - 1));
                    if take.is_empty() {
                        take = &rest[..rest.chars().next().map_or(rest.len(), char::len_utf8)];
                        break;
                    }
                }
                pieces.push(take);
                rest = &rest[take.len()..];
            }
            let n = pieces.len();
            for (i, p) in pieces.iter().enumerate() {
                out.push(container_message(
                    shape,
                    r,
                    p,
                    r.truncated,
                    Some((i + 1, n)),
                    false,
                    arena,
                ));
            }
            Encoded {
                truncated: r.truncated,
                split: true,
            }
        }
    }
}

/// A container line that did not parse as CRI or Docker: the raw line under `log`, with the
/// `kubernetes` object when the shape has one, as an event at `timestamp_ms`.
pub fn unparsed_line(shape: &Shape, line: &str, timestamp_ms: i64, rules: SizeRules, arena: &mut Arena) -> Pending {
    let line = floor(line, rules.max_event_bytes.saturating_sub(1024).max(1));
    let mut out = arena.message(timestamp_ms, estimate(line, shape));
    out.lit(r#"{\"log\":"#);
    out.string(line);
    match shape {
        Shape::Application { suffix, .. } => out.suffix(suffix),
        Shape::Dataplane { node } | Shape::HostPlain { node } | Shape::HostSyslog { node } => {
            let mut facts = String::new();
            node.append(&mut facts);
            facts.push('}');
            out.json(&facts);
        }
    }
    out.finish()
}

/// A host file line: `{"message"}` for dmesg, syslog fields for messages and secure (a line that
/// is not syslog keeps only `message`).
pub fn host_line(shape: &Shape, line: &str, syslog: Option<&SyslogLine<'_>>, rules: SizeRules) -> String {
    let node = match shape {
        Shape::HostPlain { node } | Shape::HostSyslog { node } | Shape::Dataplane { node } => node.clone(),
        Shape::Application { .. } => std::sync::Arc::new(NodeFacts::default()),
    };
    let room = rules.max_event_bytes.saturating_sub(512).max(1);
    let mut out = String::with_capacity(line.len() + 128);
    out.push('{');
    match syslog {
        Some(s) => {
            let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
            out.push_str("\"host\":");
            push_json_str(&mut out, &text(s.host));
            out.push_str(",\"ident\":");
            push_json_str(&mut out, &text(s.ident));
            if let Some(pid) = s.pid {
                out.push_str(",\"pid\":");
                push_json_str(&mut out, &text(pid));
            }
            out.push_str(",\"message\":");
            push_json_str(&mut out, floor(&text(s.message), room));
        }
        None => {
            out.push_str("\"message\":");
            push_json_str(&mut out, floor(line, room));
        }
    }
    node.append(&mut out);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logs::parse::CloseReason;
    use proptest::prelude::*;

    /// What a record was encoded into, with the messages as text.
    struct Out {
        messages: Vec<String>,
        truncated: bool,
        split: bool,
    }

    fn container_record(shape: &Shape, r: &Record<'_>, content: &str, rules: SizeRules) -> Out {
        let mut out = Vec::new();
        let mut arena = Arena::default();
        let e = super::container_record(shape, r, content, rules, &mut arena, &mut out);
        let sealed = arena.seal();
        Out {
            messages: out.into_iter().map(|p| sealed.take(p).text()).collect(),
            truncated: e.truncated,
            split: e.split,
        }
    }

    /// The record as JSON text, the way it was written before messages were kept escaped: the
    /// reference the one-pass encoder must match once its output is unescaped.
    fn reference_message(
        shape: &Shape,
        r: &Record<'_>,
        content: &str,
        truncated: bool,
        part: Option<(usize, usize)>,
        merge: bool,
        suffix_text: &str,
    ) -> String {
        let mut out = String::new();
        let flags = |out: &mut String| {
            if truncated {
                out.push_str(",\"_truncated\":true");
            }
            if let Some((i, n)) = part {
                let _ = write!(out, ",\"_part\":{i},\"_parts\":{n}");
            }
        };
        match shape {
            Shape::Application {
                profile: RecordProfile::Fluentd,
                ..
            } => {
                out.push_str("{\"log\":");
                push_json_str(&mut out, content);
                out.push_str(",\"stream\":\"");
                out.push_str(r.stream.as_str());
                out.push_str("\",\"logtag\":\"");
                out.push(if r.is_complete() { 'F' } else { 'P' });
                out.push('"');
                flags(&mut out);
                out.push_str(suffix_text);
            }
            Shape::Application { merge_json, .. } => {
                out.push_str("{\"time\":");
                push_json_str(&mut out, r.time);
                out.push_str(",\"stream\":\"");
                out.push_str(r.stream.as_str());
                out.push_str("\",\"log\":");
                push_json_str(&mut out, content);
                flags(&mut out);
                if *merge_json
                    && merge
                    && let Some(obj) = json_object(content)
                {
                    out.push_str(",\"log_processed\":");
                    out.push_str(&obj);
                }
                out.push_str(suffix_text);
            }
            Shape::Dataplane { node } | Shape::HostPlain { node } | Shape::HostSyslog { node } => {
                out.push_str("{\"time\":");
                push_json_str(&mut out, r.time);
                out.push_str(",\"stream\":\"");
                out.push_str(r.stream.as_str());
                out.push_str("\",\"log\":");
                push_json_str(&mut out, content);
                flags(&mut out);
                node.append(&mut out);
                out.push('}');
            }
        }
        out
    }

    /// Text dense in what needs escaping, and sometimes a JSON object (merged as `log_processed`).
    fn tricky_content() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_string()),
            Just("\\".to_string()),
            (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            Just("\u{fffd}".to_string()),
            Just("é日本\u{7f}/".to_string()),
            "[a-z ]{0,20}",
            any::<String>(),
        ];
        prop_oneof![
            proptest::collection::vec(piece, 0..16).prop_map(|v| v.concat()),
            ("[a-z\"\\\\]{0,8}", tricky_text_value())
                .prop_map(|(k, v)| serde_json::json!({ k: v, "n": 1 }).to_string() + "\n"),
        ]
    }

    fn tricky_text_value() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![Just("\"".to_string()), Just("\u{1}".to_string()), "[a-zé]{0,6}"],
            0..6,
        )
        .prop_map(|v| v.concat())
    }

    proptest! {
        /// The one-pass message is the two-pass one: the record's JSON text, escaped once more;
        /// and its size is the bytes of that JSON text (what PutLogEvents counts).
        #[test]
        fn one_pass_messages_are_the_record_escaped_again(
            content in tricky_content(),
            time in prop_oneof![Just("2026-01-05T10:11:12.123456789Z".to_string()), any::<String>()],
            shape_i in 0usize..4,
            stderr in any::<bool>(),
            truncated in any::<bool>(),
            part in proptest::option::of((1usize..100, 1usize..100)),
            merge in any::<bool>(),
            closed in prop_oneof![Just(CloseReason::Terminated), Just(CloseReason::Timeout)],
            name in any::<String>(),
        ) {
            let mut m = meta();
            m.pod_name = name.clone();
            m.labels.push((name.clone(), "\"v\\".into()));
            let node = std::sync::Arc::new(NodeFacts { az: Some(name.clone()), instance_id: None });
            let (shape, suffix_text) = match shape_i {
                0 => (app(RecordProfile::FluentBit), kubernetes_suffix(RecordProfile::FluentBit, &meta())),
                1 => {
                    let t = kubernetes_suffix(RecordProfile::Fluentd, &m);
                    (Shape::Application { profile: RecordProfile::Fluentd, suffix: t.clone().into(), merge_json: true }, t)
                }
                2 => {
                    let t = kubernetes_suffix(RecordProfile::FluentBit, &m);
                    (Shape::Application { profile: RecordProfile::FluentBit, suffix: t.clone().into(), merge_json: false }, t)
                }
                _ => (Shape::Dataplane { node }, String::new()),
            };
            let mut r = record(content.as_bytes());
            r.time = &time;
            r.stream = if stderr { Stream::Stderr } else { Stream::Stdout };
            r.closed = closed;
            let mut arena = Arena::default();
            let got = container_message(&shape, &r, &content, truncated, part, merge, &mut arena);
            let got = arena.seal().take(got);
            let want = reference_message(&shape, &r, &content, truncated, part, merge, &suffix_text);
            // The frame around it is the PutLogEvents event, after a comma.
            let (buf, frame) = got.frame().unwrap();
            prop_assert_eq!(buf[frame.start], b',');
            let event: serde_json::Value = serde_json::from_slice(&buf[frame.start + 1..frame.end]).unwrap();
            prop_assert_eq!(&event["timestamp"], r.timestamp_ms);
            prop_assert_eq!(event["message"].as_str().unwrap(), want.as_str());
            let mut want_escaped = String::new();
            push_escaped(&mut want_escaped, &want);
            prop_assert_eq!(std::str::from_utf8(got.escaped()).unwrap(), want_escaped.as_str());
            prop_assert_eq!(got.len(), want.len());
            prop_assert_eq!(got.text(), want);
        }

        /// Cutting and splitting keep their rules with sizes counted on the unescaped text.
        #[test]
        fn oversized_records_fit_counted_unescaped(
            content in tricky_content(),
            max in 420usize..1500,
            split in any::<bool>(),
        ) {
            let rules = SizeRules {
                max_event_bytes: max,
                oversize: if split { OversizeEvent::Split } else { OversizeEvent::Truncate },
            };
            let shape = app(RecordProfile::FluentBit);
            let e = container_record(&shape, &record(content.as_bytes()), &content, rules);
            let mut joined = String::new();
            for m in &e.messages {
                prop_assert!(m.len() <= max, "{} > {}", m.len(), max);
                let v: serde_json::Value = serde_json::from_str(m).unwrap();
                joined.push_str(v["log"].as_str().unwrap());
            }
            if e.split {
                prop_assert_eq!(joined, content);
            } else if !e.truncated {
                prop_assert_eq!(e.messages.len(), 1);
            }
        }
    }

    #[test]
    fn a_seal_makes_contiguous_framed_messages_across_chunks() {
        let shape = app(RecordProfile::FluentBit);
        let mut arena = Arena::default();
        let mut pending = Vec::new();
        // About 700 bytes each: 300 fill more than three 64 KiB chunks.
        for i in 0..300 {
            let content = format!("line {i} \"quoted\" {}", "x".repeat(i % 50));
            let mut r = record(content.as_bytes());
            r.timestamp_ms += i64::try_from(i).unwrap();
            super::container_record(&shape, &r, &content, RULES, &mut arena, &mut pending);
        }
        let sealed = arena.seal();
        let messages: Vec<Message> = pending.iter().map(|p| sealed.take(*p)).collect();
        let mut buffers = 1;
        for (i, pair) in messages.windows(2).enumerate() {
            let ((a, fa), (b, fb)) = (pair[0].frame().unwrap(), pair[1].frame().unwrap());
            if a.as_ptr() == b.as_ptr() {
                assert_eq!(fa.end, fb.start, "message {i} and the next are one run");
            } else {
                buffers += 1;
            }
        }
        assert!(buffers >= 3, "{buffers} buffers");
        for (i, m) in messages.iter().enumerate() {
            let (buf, f) = m.frame().unwrap();
            let event: serde_json::Value = serde_json::from_slice(&buf[f.start + 1..f.end]).unwrap();
            assert_eq!(event["timestamp"], record(b"").timestamp_ms + i64::try_from(i).unwrap());
            assert_eq!(event["message"].as_str().unwrap(), m.text());
        }
        // A pending message of an earlier seal is never another message's bytes.
        let mut later = Vec::new();
        super::container_record(&shape, &record(b"later"), "later", RULES, &mut arena, &mut later);
        let sealed = arena.seal();
        assert_eq!(sealed.take(later[0]).text(), messages_text_of(&shape, "later"));
    }

    /// The text of the message of a record of `content` at the test record's time.
    fn messages_text_of(shape: &Shape, content: &str) -> String {
        container_record(shape, &record(content.as_bytes()), content, RULES).messages[0].clone()
    }

    #[test]
    fn unparsed_lines_carry_the_escaped_suffix() {
        let shape = app(RecordProfile::FluentBit);
        let mut arena = Arena::default();
        let m = unparsed_line(&shape, "not \"cri\"\u{1}", 7, RULES, &mut arena);
        let m = arena.seal().take(m);
        let v: serde_json::Value = serde_json::from_str(&m.text()).unwrap();
        assert_eq!(v["log"], "not \"cri\"\u{1}");
        assert_eq!(v["kubernetes"]["pod_name"], "web-5468c5d4d7-n2swr");
        assert_eq!(m.len(), m.text().len());
    }

    fn record(content: &[u8]) -> Record<'_> {
        Record {
            time: "2026-01-05T10:11:12.123456789Z",
            timestamp_ms: 1_767_607_872_123,
            stream: Stream::Stdout,
            content,
            start: 0,
            end: 10,
            pieces: 1,
            truncated: false,
            closed: CloseReason::Terminated,
        }
    }

    fn meta() -> ContainerMeta {
        ContainerMeta {
            pod_name: "web-5468c5d4d7-n2swr".into(),
            namespace: "shop".into(),
            pod_id: "198f7dd2-2270-11ea-be47-0a5d932f5920".into(),
            host: "ip-10-1-128-166.us-east-2.compute.internal".into(),
            container_name: "web".into(),
            container_id: Some("c0ffee".into()),
            container_hash: Some("registry/web@sha256:ab".into()),
            container_image: Some("registry/web:1".into()),
            container_image_id: Some("docker-pullable://registry/web@sha256:ab".into()),
            labels: Vec::new(),
            annotations: Vec::new(),
        }
    }

    fn app(profile: RecordProfile) -> Shape {
        Shape::Application {
            profile,
            suffix: kubernetes_suffix(profile, &meta()).into(),
            merge_json: true,
        }
    }

    const RULES: SizeRules = SizeRules {
        max_event_bytes: 1_048_550,
        oversize: OversizeEvent::Truncate,
    };

    #[test]
    fn the_fluent_bit_shape_matches_the_documented_example() {
        let content = "{\"level\":\"info\",\"msg\":\"hello\"}";
        let e = container_record(
            &app(RecordProfile::FluentBit),
            &record(content.as_bytes()),
            content,
            RULES,
        );
        assert_eq!(
            e.messages[0],
            "{\"time\":\"2026-01-05T10:11:12.123456789Z\",\"stream\":\"stdout\",\
             \"log\":\"{\\\"level\\\":\\\"info\\\",\\\"msg\\\":\\\"hello\\\"}\",\
             \"log_processed\":{\"level\":\"info\",\"msg\":\"hello\"},\
             \"kubernetes\":{\"pod_name\":\"web-5468c5d4d7-n2swr\",\"namespace_name\":\"shop\",\
             \"pod_id\":\"198f7dd2-2270-11ea-be47-0a5d932f5920\",\
             \"host\":\"ip-10-1-128-166.us-east-2.compute.internal\",\"container_name\":\"web\",\
             \"docker_id\":\"c0ffee\",\"container_hash\":\"registry/web@sha256:ab\",\
             \"container_image\":\"registry/web:1\"}}"
        );
        let v: serde_json::Value = serde_json::from_str(&e.messages[0]).unwrap();
        assert_eq!(v["log"], content);
    }

    #[test]
    fn the_fluentd_shape_drops_empty_fields_and_carries_logtag() {
        let mut m = meta();
        m.container_image = None;
        m.labels = vec![("app".into(), "web".into())];
        let shape = Shape::Application {
            profile: RecordProfile::Fluentd,
            suffix: kubernetes_suffix(RecordProfile::Fluentd, &m).into(),
            merge_json: true,
        };
        let e = container_record(&shape, &record(b"x"), "x", RULES);
        let v: serde_json::Value = serde_json::from_str(&e.messages[0]).unwrap();
        assert_eq!(v["log"], "x");
        assert_eq!(v["logtag"], "F");
        assert_eq!(v["docker"]["container_id"], "c0ffee");
        assert_eq!(v["kubernetes"]["labels"]["app"], "web");
        assert!(v["kubernetes"].get("container_image").is_none());
        assert!(v.get("time").is_none(), "fluentd removed time from the record");
        assert!(e.messages[0].starts_with("{\"log\":"));
    }

    #[test]
    fn labels_and_annotations_sit_where_fluent_bit_puts_them_when_asked_for() {
        let mut m = meta();
        m.labels = vec![("app".into(), "web".into()), ("tier".into(), "front".into())];
        m.annotations = vec![("team".into(), "a\"b".into())];
        let suffix = kubernetes_suffix(RecordProfile::FluentBit, &m);
        assert!(
            suffix.contains(
                "\"pod_id\":\"198f7dd2-2270-11ea-be47-0a5d932f5920\",\"labels\":{\"app\":\"web\",\"tier\":\"front\"},\
                 \"annotations\":{\"team\":\"a\\\"b\"},\"host\":"
            ),
            "{suffix}"
        );
        let fluentd = kubernetes_suffix(RecordProfile::Fluentd, &m);
        let v: serde_json::Value = serde_json::from_str(&format!("{{\"log\":\"x\"{fluentd}")).unwrap();
        assert_eq!(v["kubernetes"]["annotations"]["team"], "a\"b");
        assert_eq!(v["kubernetes"]["labels"]["tier"], "front");
        let plain = kubernetes_suffix(RecordProfile::FluentBit, &meta());
        assert!(!plain.contains("labels") && !plain.contains("annotations"), "{plain}");
    }

    #[test]
    fn control_characters_and_quotes_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\n\u{1}é\t");
        assert_eq!(s, "\"a\\\"b\\\\c\\n\\u0001é\\t\"");
        assert_eq!(serde_json::from_str::<String>(&s).unwrap(), "a\"b\\c\n\u{1}é\t");
    }

    #[test]
    fn an_oversized_record_is_cut_to_fit_as_valid_json() {
        // The kubernetes object alone is about 380 bytes here.
        let rules = SizeRules {
            max_event_bytes: 700,
            oversize: OversizeEvent::Truncate,
        };
        // Quotes double when escaped: cutting must account for it.
        let content = "\"é".repeat(400);
        let e = container_record(
            &app(RecordProfile::FluentBit),
            &record(content.as_bytes()),
            &content,
            rules,
        );
        assert!(e.truncated);
        assert!(e.messages[0].len() <= 700, "{}", e.messages[0].len());
        assert!(
            e.messages[0].len() > 650,
            "cut no more than needed: {}",
            e.messages[0].len()
        );
        let v: serde_json::Value = serde_json::from_str(&e.messages[0]).unwrap();
        assert_eq!(v["_truncated"], true);
        assert!(content.starts_with(v["log"].as_str().unwrap()));
    }

    #[test]
    fn split_mode_keeps_every_byte_in_numbered_parts() {
        let rules = SizeRules {
            max_event_bytes: 800,
            oversize: OversizeEvent::Split,
        };
        let content = "0123456789\\".repeat(100);
        let e = container_record(
            &app(RecordProfile::FluentBit),
            &record(content.as_bytes()),
            &content,
            rules,
        );
        assert!(e.split && e.messages.len() > 1);
        let mut joined = String::new();
        for (i, m) in e.messages.iter().enumerate() {
            assert!(m.len() <= 800, "{}", m.len());
            let v: serde_json::Value = serde_json::from_str(m).unwrap();
            assert_eq!(v["_part"], i + 1);
            assert_eq!(v["_parts"], e.messages.len());
            joined.push_str(v["log"].as_str().unwrap());
        }
        assert_eq!(joined, content);
    }

    #[test]
    fn host_lines_have_their_shapes() {
        let node = std::sync::Arc::new(NodeFacts {
            az: Some("us-east-1a".into()),
            instance_id: Some("i-0123".into()),
        });
        let line = "Jan  5 10:11:12 ip-10-0-0-1 sshd[42]: Accepted publickey";
        let s = super::super::parse::parse_syslog(line.as_bytes(), 1_767_607_872_000).unwrap();
        let m = host_line(&Shape::HostSyslog { node: node.clone() }, line, Some(&s), RULES);
        assert_eq!(
            m,
            "{\"host\":\"ip-10-0-0-1\",\"ident\":\"sshd\",\"pid\":\"42\",\"message\":\"Accepted publickey\",\
             \"az\":\"us-east-1a\",\"ec2_instance_id\":\"i-0123\"}"
        );
        let m = host_line(&Shape::HostPlain { node }, "[    0.000000] Linux version", None, RULES);
        assert_eq!(
            m,
            "{\"message\":\"[    0.000000] Linux version\",\"az\":\"us-east-1a\",\"ec2_instance_id\":\"i-0123\"}"
        );
    }
}
