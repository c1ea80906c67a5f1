//! The `PutLogEvents` request as bytes: the JSON body written straight from the events, and the
//! interceptor that puts it into the SDK's request.
//!
//! The SDK still builds, signs, sends and parses each request; it is given one placeholder event,
//! which the body replaces before signing (see `Sender::put` in `shipper`). The signer hashes the
//! body (SHA-256, about 30 % of the agent's CPU in `scripts/bench logs`). Hashing it here with
//! aws-lc instead and handing the signer the hash (`PayloadSigningOverride::Precomputed`) was
//! tried: no difference in CPU in interleaved runs (both use the CPU's SHA extensions, about
//! 1.9 GB/s here), so the signer keeps hashing.

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextMut;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::config_bag::ConfigBag;
use bytes::{Bytes, BytesMut};

use super::super::json_lines::push_json_str;
use super::super::payload::LogEvent;
use super::shipper::EMF_HEADER;

/// The `PutLogEvents` request body (AWS CloudWatch Logs API reference, "PutLogEvents", JSON
/// protocol 1.1): `{"logGroupName":…,"logStreamName":…,"logEvents":[{"timestamp":…,"message":…}]}`,
/// written into `out` (cleared first). Messages are kept escaped, so each is one copy.
pub fn put_body(out: &mut BytesMut, group: &str, stream: &str, events: &[LogEvent]) {
    let need = size_hint(events) + 2 * (group.len() + stream.len());
    if out.capacity() < need {
        // A fresh buffer rather than growing the old one: `realloc` would copy all of the old
        // buffer's bytes, though none of them is kept.
        *out = BytesMut::with_capacity(need.next_multiple_of(BODY_GRAIN));
    } else {
        out.clear();
    }
    out.extend_from_slice(b"{\"logGroupName\":");
    push_json_str(out, group);
    out.extend_from_slice(b",\"logStreamName\":");
    push_json_str(out, stream);
    out.extend_from_slice(b",\"logEvents\":[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b",");
        }
        out.extend_from_slice(b"{\"timestamp\":");
        push_decimal(out, e.timestamp_ms);
        out.extend_from_slice(b",\"message\":\"");
        out.extend_from_slice(e.message.escaped());
        out.extend_from_slice(b"\"}");
    }
    out.extend_from_slice(b"]}");
}

/// New body buffers are sized in steps of this, so that a kept buffer fits the next bodies of
/// about its size, not only smaller ones.
pub const BODY_GRAIN: usize = 256 << 10;

/// At least the size of the body of `events`, but for the group and stream names (twice their
/// length covers their escaping).
pub fn size_hint(events: &[LogEvent]) -> usize {
    // `,{"timestamp":` + at most 20 digits + `,"message":"` + `"}`
    const EVENT_MARKUP: usize = 48;
    events
        .iter()
        .map(|e| e.message.escaped().len() + EVENT_MARKUP)
        .sum::<usize>()
        + 64
}

/// `n` in decimal, without going through `fmt` (once per event of every request).
fn push_decimal(out: &mut BytesMut, n: i64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + u8::try_from(v % 10).unwrap_or(0);
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.extend_from_slice(b"-");
    }
    out.extend_from_slice(&digits[i..]);
}

/// Puts a prepared body into the SDK's request before it is signed: the body, its
/// `content-length`, and the EMF header when asked. Runs again on every attempt, so a retried
/// request is signed over the same body.
#[derive(Debug)]
pub struct PreparedBody {
    pub body: Bytes,
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
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let req = context.request_mut();
        *req.body_mut() = SdkBody::from(self.body.clone());
        req.headers_mut().insert("content-length", self.body.len().to_string());
        if self.emf {
            req.headers_mut().insert(EMF_HEADER.0, EMF_HEADER.1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_the_json_the_api_expects() {
        let e = |ts, m: &str| LogEvent {
            group: "g".into(),
            stream: "s".into(),
            timestamp_ms: ts,
            message: m.into(),
            token: 0,
        };
        let mut body = BytesMut::new();
        put_body(
            &mut body,
            "/aws/x",
            "a\"b",
            &[e(1, "{\"log\":\"q\\\"\"}"), e(2, "line\n\u{1}é")],
        );
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["logGroupName"], "/aws/x");
        assert_eq!(v["logStreamName"], "a\"b");
        assert_eq!(v["logEvents"][0]["timestamp"], 1);
        assert_eq!(v["logEvents"][0]["message"], "{\"log\":\"q\\\"\"}");
        assert_eq!(v["logEvents"][1]["message"], "line\n\u{1}é");
    }

    #[test]
    fn a_large_enough_buffer_is_reused_and_a_small_one_replaced_in_steps() {
        let events = [LogEvent {
            group: "g".into(),
            stream: "s".into(),
            timestamp_ms: 1,
            message: "m".repeat(1000).as_str().into(),
            token: 0,
        }];
        let mut body = BytesMut::with_capacity(4096);
        let before = body.as_ptr();
        put_body(&mut body, "g", "s", &events);
        assert_eq!(body.as_ptr(), before, "the buffer's own allocation");
        let mut small = BytesMut::with_capacity(16);
        put_body(&mut small, "g", "s", &events);
        assert_eq!(small, body);
        assert!(small.capacity() >= BODY_GRAIN && small.capacity().is_multiple_of(BODY_GRAIN));
    }

    #[test]
    fn timestamps_are_written_in_decimal() {
        for n in [0, 7, 10, 1_764_300_000_000, i64::MAX, -1, i64::MIN] {
            let mut out = BytesMut::new();
            push_decimal(&mut out, n);
            assert_eq!(std::str::from_utf8(&out).unwrap(), n.to_string());
        }
    }
}
