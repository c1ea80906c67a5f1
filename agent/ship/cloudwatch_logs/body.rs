//! The `PutLogEvents` request as bytes: the JSON body written straight from the events, and the
//! interceptor that puts it into the SDK's request.
//!
//! The SDK still builds, signs, sends and parses each request; it is given one placeholder event,
//! which the body replaces before signing (see `Sender::put` in `shipper`).
//!
//! The body is not one buffer but the parts hyper writes one after the other: the messages of the
//! log encoder come framed (each inside its event object, see `ship::Message`), and the events of
//! one file read one after the other are one contiguous run of the encoder's buffer, which is sent
//! as it is. Copying every message into one body was 7 % of the agent's CPU in the 1 GiB
//! catch-up benchmark (`scripts/bench logs`), and the bodies were several megabytes of its peak
//! memory. Only the head, the tail and unframed messages (performance events, host lines) are
//! written, into a buffer of the shipper's.
//!
//! The signer needs the body's SHA-256 and cannot read a body of parts, so it is computed here
//! over the parts and handed to the signer (`PayloadSigningOverride::Precomputed`). It is the
//! largest single cost of the agent (about 30 % of its CPU in that benchmark), at the speed of the
//! CPU's SHA extensions, which both the `sha2` crate and aws-lc use (no difference measured).

use std::convert::Infallible;
use std::ops::Range;
use std::pin::Pin;
use std::task::{Context, Poll};

use aws_runtime::auth::PayloadSigningOverride;
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::{Bytes, BytesMut};
use hyper::body::{Frame, SizeHint};
use sha2::{Digest as _, Sha256};

use super::super::json_lines::{push_decimal, push_json_str};
use super::super::payload::LogEvent;
use super::shipper::EMF_HEADER;

/// A `PutLogEvents` request body (AWS CloudWatch Logs API reference, "PutLogEvents", JSON
/// protocol 1.1): `{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,"message":…}]}`,
/// as the parts it is sent in.
#[derive(Debug, Clone, Default)]
pub struct Body {
    parts: Vec<Bytes>,
    len: usize,
}

impl Body {
    pub fn len(&self) -> usize {
        self.len
    }

    #[cfg(test)]
    fn parts(&self) -> &[Bytes] {
        &self.parts
    }

    /// The body's SHA-256, lower-case hex: the payload hash of its `SigV4` signature.
    pub fn sha256_hex(&self) -> String {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut h = Sha256::new();
        for p in &self.parts {
            h.update(p);
        }
        let digest = h.finalize();
        let mut out = String::with_capacity(64);
        for b in &digest {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
        out
    }

    /// The body in one buffer.
    #[cfg(test)]
    fn to_vec(&self) -> Vec<u8> {
        self.parts.concat()
    }
}

/// The body of `events`, with its head, its tail and the unframed messages written into
/// `scratch` (cleared first, or replaced when too small: see [`BODY_GRAIN`]). The body shares
/// `scratch`'s buffer, returned as the second value: the caller gets it back after the request
/// with `Bytes::try_into_mut`, once the body is dropped.
pub fn put_body(mut scratch: BytesMut, group: &str, stream: &str, events: &[LogEvent]) -> (Body, Bytes) {
    let need = size_hint(events) + 2 * (group.len() + stream.len());
    if scratch.capacity() < need {
        // A fresh buffer rather than growing the old one: `realloc` would copy all of the old
        // buffer's bytes, though none of them is kept.
        // The logs lane's bodies write only their head and tail here: a page is plenty.
        let grain = if need <= SMALL_SCRATCH {
            SMALL_SCRATCH
        } else {
            BODY_GRAIN
        };
        scratch = BytesMut::with_capacity(need.next_multiple_of(grain));
    } else {
        scratch.clear();
    }
    // Where each part is: a range of `scratch`, or a run of an encoder's buffer.
    let mut parts: Vec<Result<Range<usize>, Bytes>> = Vec::new();
    let mut mark = 0;
    scratch.extend_from_slice(b"{\"logGroupName\":");
    push_json_str(&mut scratch, group);
    scratch.extend_from_slice(b",\"logStreamName\":");
    push_json_str(&mut scratch, stream);
    scratch.extend_from_slice(b",\"logEvents\":[");
    let mut len = 0;
    let mut i = 0;
    while i < events.len() {
        let e = &events[i];
        if let Some((buf, frame)) = e.message.frame() {
            debug_assert_eq!(frame_timestamp(&buf[frame.clone()]), Some(e.timestamp_ms));
            // The first event of the body goes without its leading comma.
            let from = if i == 0 { frame.start + 1 } else { frame.start };
            let mut to = frame.end;
            i += 1;
            while let Some((next, f)) = events.get(i).and_then(|n| n.message.frame()) {
                // The same buffer (two live handles of one address and length are one buffer),
                // right after the previous event.
                if next.as_ptr() != buf.as_ptr() || next.len() != buf.len() || f.start != to {
                    break;
                }
                debug_assert_eq!(frame_timestamp(&next[f.clone()]), Some(events[i].timestamp_ms));
                to = f.end;
                i += 1;
            }
            if scratch.len() > mark {
                parts.push(Ok(mark..scratch.len()));
                mark = scratch.len();
            }
            len += to - from;
            parts.push(Err(buf.slice(from..to)));
        } else {
            if i > 0 {
                scratch.extend_from_slice(b",");
            }
            scratch.extend_from_slice(b"{\"timestamp\":");
            push_decimal(&mut scratch, e.timestamp_ms);
            scratch.extend_from_slice(b",\"message\":\"");
            scratch.extend_from_slice(e.message.escaped());
            scratch.extend_from_slice(b"\"}");
            i += 1;
        }
    }
    scratch.extend_from_slice(b"]}");
    parts.push(Ok(mark..scratch.len()));
    // The whole buffer, its spare room too, so that it comes back whole.
    let written = scratch.freeze();
    len += written.len();
    let parts = parts
        .into_iter()
        .map(|p| match p {
            Ok(r) => written.slice(r),
            Err(b) => b,
        })
        .collect();
    (Body { parts, len }, written)
}

/// The timestamp a frame `,{"timestamp":T,…` carries (debug checks: a framed message's
/// timestamp is its event's).
fn frame_timestamp(frame: &[u8]) -> Option<i64> {
    let rest = frame.strip_prefix(b",{\"timestamp\":")?;
    let digits = rest.split(|&b| b == b',').next()?;
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// A scratch buffer for a body with few or no unframed messages.
const SMALL_SCRATCH: usize = 4096;

/// New scratch buffers are sized in steps of this, so that a kept buffer fits the next bodies of
/// about its size, not only smaller ones.
pub const BODY_GRAIN: usize = 256 << 10;

/// At least the bytes `put_body` writes into its scratch buffer for `events` (the unframed
/// messages and their markup), but for the group and stream names (twice their length covers
/// their escaping).
pub fn size_hint(events: &[LogEvent]) -> usize {
    // `,{"timestamp":` + at most 20 digits + `,"message":"` + `"}`
    const EVENT_MARKUP: usize = 48;
    events
        .iter()
        .filter(|e| e.message.frame().is_none())
        .map(|e| e.message.escaped().len() + EVENT_MARKUP)
        .sum::<usize>()
        + 64
}

/// Puts a prepared body into the SDK's request before it is signed: the body, its
/// `content-length`, its SHA-256 for the signer, and the EMF header when asked. Runs again on
/// every attempt, so a retried request is signed over the same body.
#[derive(Debug)]
pub struct PreparedBody {
    pub body: Body,
    pub sha256_hex: String,
    pub emf: bool,
}

impl Intercept for PreparedBody {
    fn name(&self) -> &'static str {
        "kinsight::PreparedBody"
    }

    fn modify_before_signing(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request_mut();
        let body = self.body.clone();
        *req.body_mut() = SdkBody::retryable(move || SdkBody::from_body_1_x(Parts::new(&body)));
        req.headers_mut().insert("content-length", self.body.len().to_string());
        if self.emf {
            req.headers_mut().insert(EMF_HEADER.0, EMF_HEADER.1);
        }
        cfg.interceptor_state()
            .store_put(PayloadSigningOverride::Precomputed(self.sha256_hex.clone()));
        Ok(())
    }
}

/// A [`Body`] as an HTTP body: its parts, one frame each, of an exact length.
struct Parts {
    parts: std::vec::IntoIter<Bytes>,
    left: u64,
}

impl Parts {
    fn new(body: &Body) -> Parts {
        Parts {
            parts: body.parts.clone().into_iter(),
            left: body.len as u64,
        }
    }
}

impl hyper::body::Body for Parts {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        Poll::Ready(this.parts.next().map(|b| {
            this.left -= b.len() as u64;
            Ok(Frame::data(b))
        }))
    }

    fn is_end_stream(&self) -> bool {
        self.left == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ship::Message;

    fn e(ts: i64, m: &str) -> LogEvent {
        LogEvent {
            group: "g".into(),
            stream: "s".into(),
            timestamp_ms: ts,
            message: m.into(),
            token: 0,
        }
    }

    /// Framed messages as the log encoder writes them, one after the other into `buf`, then
    /// frozen: `(timestamp, escaped text)` each.
    fn framed(texts: &[(i64, &str)]) -> Vec<LogEvent> {
        let mut buf = BytesMut::new();
        let mut at = Vec::new();
        for (ts, t) in texts {
            let a = buf.len();
            buf.extend_from_slice(b",{\"timestamp\":");
            push_decimal(&mut buf, *ts);
            buf.extend_from_slice(b",\"message\":\"");
            let s = buf.len();
            buf.extend_from_slice(t.as_bytes());
            at.push((a, s, buf.len()));
            buf.extend_from_slice(b"\"}");
        }
        let buf = buf.freeze();
        let n = |x: usize| u32::try_from(x).unwrap();
        texts
            .iter()
            .zip(at)
            .map(|((ts, t), (a, s, end))| LogEvent {
                message: Message::framed(buf.clone(), n(a), n(s), n(end), text_len(t)),
                ..e(*ts, "x")
            })
            .collect()
    }

    /// Bytes of the text whose escaped form is `escaped`.
    fn text_len(escaped: &str) -> usize {
        serde_json::from_str::<String>(&format!("\"{escaped}\"")).unwrap().len()
    }

    fn parse(body: &Body) -> serde_json::Value {
        let bytes = body.to_vec();
        assert_eq!(bytes.len(), body.len());
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn the_body_is_the_json_the_api_expects() {
        let (body, _) = put_body(
            BytesMut::new(),
            "/aws/x",
            "a\"b",
            &[e(1, "{\"log\":\"q\\\"\"}"), e(2, "line\n\u{1}é")],
        );
        let v = parse(&body);
        assert_eq!(v["logGroupName"], "/aws/x");
        assert_eq!(v["logStreamName"], "a\"b");
        assert_eq!(v["logEvents"][0]["timestamp"], 1);
        assert_eq!(v["logEvents"][0]["message"], "{\"log\":\"q\\\"\"}");
        assert_eq!(v["logEvents"][1]["message"], "line\n\u{1}é");
        assert_eq!(
            body.parts().len(),
            1,
            "unframed messages are written into the scratch buffer"
        );
    }

    #[test]
    fn runs_of_framed_messages_are_sent_as_they_are() {
        let mut events = framed(&[(1, "a"), (2, "b\\\"c"), (3, "d")]);
        let more = framed(&[(4, "e"), (5, "f")]);
        events.push(e(4, "plain"));
        events.extend(more);
        let (body, _) = put_body(BytesMut::new(), "g", "s", &events);
        let v = parse(&body);
        let got: Vec<(i64, String)> = v["logEvents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["timestamp"].as_i64().unwrap(),
                    e["message"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(i64, String)> = events.iter().map(|e| (e.timestamp_ms, e.message.text())).collect();
        assert_eq!(got, want);
        assert_eq!(got[1].1, "b\"c");
        // head, the first run (shared), the plain event (scratch), the second run, the tail.
        assert_eq!(body.parts().len(), 5);
        let (first_buf, _) = events[0].message.frame().unwrap();
        assert!(
            first_buf.as_ptr_range().contains(&body.parts()[1].as_ptr()),
            "the run is the encoder's buffer itself"
        );
    }

    #[test]
    fn a_framed_message_first_in_the_body_goes_without_its_comma_and_a_gap_breaks_a_run() {
        let events = framed(&[(1, "a"), (2, "b"), (3, "c")]);
        // Without the middle one: two runs of one buffer, not contiguous.
        let picked = [events[0].clone(), events[2].clone()];
        let (body, _) = put_body(BytesMut::new(), "g", "s", &picked);
        let v = parse(&body);
        assert_eq!(v["logEvents"][0]["message"], "a");
        assert_eq!(v["logEvents"][1]["message"], "c");
        assert_eq!(body.parts().len(), 4);
    }

    #[test]
    fn the_hash_is_the_sha256_of_the_whole_body() {
        let events = framed(&[(1, "a"), (2, "b")]);
        let (body, _) = put_body(BytesMut::new(), "g", "s", &events);
        let want: Vec<String> = Sha256::digest(body.to_vec())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let want = want.concat();
        assert_eq!(body.sha256_hex(), want);
    }

    #[test]
    fn a_large_enough_scratch_buffer_is_reused_and_a_small_one_replaced_in_steps() {
        let events = [e(1, &"m".repeat(10_000))];
        let scratch = BytesMut::with_capacity(64 << 10);
        let before = scratch.as_ptr();
        let (body, written) = put_body(scratch, "g", "s", &events);
        assert_eq!(written.as_ptr(), before, "the buffer's own allocation");
        drop(body);
        let back = written.try_into_mut().expect("nothing else holds it");
        assert_eq!(back.capacity(), 64 << 10, "back whole");
        let (again, _) = put_body(back, "g", "s", &events);
        let (replaced, written) = put_body(BytesMut::with_capacity(16), "g", "s", &events);
        assert_eq!(replaced.to_vec(), again.to_vec());
        drop(replaced);
        assert_eq!(written.try_into_mut().unwrap().capacity(), BODY_GRAIN);
        let (body, written) = put_body(BytesMut::new(), "g", "s", &framed(&[(1, "a")]));
        drop(body);
        assert_eq!(
            written.try_into_mut().unwrap().capacity(),
            SMALL_SCRATCH,
            "a head and a tail"
        );
    }

    #[test]
    fn timestamps_are_written_in_decimal() {
        for n in [0, 7, 10, 1_764_300_000_000, i64::MAX, -1, i64::MIN] {
            let mut out = BytesMut::new();
            push_decimal(&mut out, n);
            assert_eq!(std::str::from_utf8(&out).unwrap(), n.to_string());
            let mut frame = b",{\"timestamp\":".to_vec();
            frame.extend_from_slice(&out);
            frame.extend_from_slice(b",\"message\":\"x\"}");
            assert_eq!(frame_timestamp(&frame), Some(n));
        }
    }
}
