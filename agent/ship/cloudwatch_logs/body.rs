//! The `PutLogEvents` request as bytes: the JSON body written straight from the events, its
//! SHA-256 for the signature, and the interceptor that puts both into the SDK's request.
//!
//! The SDK still builds, signs, sends and parses each request; it is given one placeholder event,
//! which the body replaces before signing (see `Sender::put` in `shipper`).

use std::fmt::Write as _;

use aws_lc_rs::digest;
use aws_runtime::auth::PayloadSigningOverride;
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
    // `,{"timestamp":` + at most 20 digits + `,"message":"` + `"}`
    const EVENT_MARKUP: usize = 48;
    let size: usize = events.iter().map(|e| e.message.escaped().len() + EVENT_MARKUP).sum();
    out.clear();
    out.reserve(size + 2 * (group.len() + stream.len()) + 64);
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

/// The lower-case hex SHA-256 of `body`: the payload hash of the `SigV4` canonical request (AWS
/// General Reference, "Create a canonical request for Signature Version 4": `Hex(SHA256Hash(payload))`).
///
/// Computed here with aws-lc (already built for rustls) rather than left to the SDK's signer,
/// which hashes with the `sha2` crate. Every body is hashed once, about 3.3 bytes per byte of log
/// input, and that hash is about 30 % of the agent's CPU in the cold throughput benchmark
/// (`scripts/bench logs`). Both use the CPU's SHA extensions where present; in that benchmark
/// aws-lc took about 6 % fewer samples than `sha2` for the same bytes (1,879 against 1,995 in
/// `perf record` runs of equal length), a small gain. The payload stays signed: CloudWatch Logs
/// does not accept `UNSIGNED-PAYLOAD`.
pub fn payload_sha256_hex(body: &[u8]) -> String {
    let d = digest::digest(&digest::SHA256, body);
    let mut hex = String::with_capacity(64);
    for b in d.as_ref() {
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

/// Puts a prepared body into the SDK's request before it is signed: the body, its
/// `content-length`, the EMF header when asked, and the body's precomputed SHA-256 for the
/// signer (`PayloadSigningOverride::Precomputed`, the SDK's own way to hand the signer a payload
/// hash; see `aws_runtime::auth::sigv4`). Runs again on every attempt, so a retried request is
/// signed the same way.
#[derive(Debug)]
pub struct PreparedBody {
    pub body: Bytes,
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
        *req.body_mut() = SdkBody::from(self.body.clone());
        req.headers_mut().insert("content-length", self.body.len().to_string());
        if self.emf {
            req.headers_mut().insert(EMF_HEADER.0, EMF_HEADER.1);
        }
        cfg.interceptor_state()
            .store_put(PayloadSigningOverride::Precomputed(self.sha256_hex.clone()));
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
    fn the_payload_hash_is_sha256_in_lower_case_hex() {
        // FIPS 180-2 test vectors: "" and "abc".
        assert_eq!(
            payload_sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            payload_sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
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
