//! `SigV4` verification for the local endpoints: a request's signature recomputed from scratch
//! (method, path, query, the headers it names, and the body as received) with the test
//! credentials of `test_sdk_config`, the way AWS checks it. The agent writes request bodies
//! itself and swaps them into the SDK's request (`ship::cloudwatch_logs::body`), so a body that
//! differs from the one that was signed must fail here as it would on AWS.
//!
//! The steps are the AWS General Reference's, "Create a signed AWS API request" (Signature
//! Version 4): canonical request, string to sign, derived signing key, HMAC, written out here
//! rather than taken from the SDK's signer (only the `sha2` and `hmac` primitives are shared).
//! Only what the JSON-protocol endpoints need: a path and query without characters to encode,
//! header-based signing (no presigned URLs), no `x-amz-content-sha256` other than the body's hash.

use std::fmt::Write as _;

use hmac::{KeyInit as _, Mac as _};
use sha2::{Digest as _, Sha256};

/// The access key id of the test credentials (`test_sdk_config`).
pub const TEST_ACCESS_KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
/// Its secret key.
pub const TEST_SECRET_ACCESS_KEY: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

/// The request as the endpoint received it.
#[derive(Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    /// Without the `?`; empty when none.
    pub query: &'a str,
    /// Every header, names in lower case, `authorization` included, in arrival order.
    pub headers: &'a [(String, String)],
    pub body: &'a [u8],
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
pub struct Authorization {
    pub access_key_id: String,
    /// `YYYYMMDD/region/service/aws4_request`.
    pub scope: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/scope, SignedHeaders=a;b, Signature=hex`.
pub fn parse_authorization(value: &str) -> Result<Authorization, String> {
    let rest = value
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not AWS4-HMAC-SHA256: {value:?}"))?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| format!("bad part {part:?}"))?;
        match k {
            "Credential" => credential = Some(v),
            "SignedHeaders" => signed = Some(v),
            "Signature" => signature = Some(v),
            _ => return Err(format!("unknown part {k:?}")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let (access_key_id, scope) = credential.split_once('/').ok_or("Credential without a scope")?;
    Ok(Authorization {
        access_key_id: access_key_id.to_string(),
        scope: scope.to_string(),
        signed_headers: signed
            .ok_or("no SignedHeaders")?
            .split(';')
            .map(str::to_string)
            .collect(),
        signature: signature.ok_or("no Signature")?.to_string(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hmac_sha256(key: &[u8], data: &str) -> Vec<u8> {
    let mut mac = hmac::Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Checks the request's signature with `secret`. `Err` says what does not match.
pub fn verify(req: &SignedRequest<'_>, secret: &str) -> Result<(), String> {
    let header_values = |name: &str| -> Vec<&str> {
        req.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let auth_value = header_values("authorization")
        .first()
        .copied()
        .ok_or("no authorization header")?;
    let auth = parse_authorization(auth_value)?;
    let amz_date = header_values("x-amz-date").first().copied().ok_or("no x-amz-date")?;
    let mut scope = auth.scope.splitn(4, '/');
    let (date, region, service, terminator) = (
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
        scope.next().unwrap_or(""),
    );
    if terminator != "aws4_request" || amz_date.get(..8) != Some(date) {
        return Err(format!("scope {:?} does not fit x-amz-date {amz_date}", auth.scope));
    }
    for required in ["host", "x-amz-date"] {
        if !auth.signed_headers.iter().any(|h| h == required) {
            return Err(format!("{required} is not signed"));
        }
    }
    let mut sorted = auth.signed_headers.clone();
    sorted.sort();
    if sorted != auth.signed_headers {
        return Err("SignedHeaders are not sorted".into());
    }
    if req
        .path
        .bytes()
        .any(|b| !(b.is_ascii_alphanumeric() || b"/-_.~".contains(&b)))
    {
        return Err(format!("path {:?}: encoding it is not implemented here", req.path));
    }
    let mut query: Vec<&str> = req.query.split('&').filter(|q| !q.is_empty()).collect();
    query.sort_unstable();
    let payload_hash = sha256_hex(req.body);
    if let Some(claimed) = header_values("x-amz-content-sha256").first()
        && *claimed != payload_hash
    {
        return Err(format!(
            "x-amz-content-sha256 {claimed} is not the body's {payload_hash}"
        ));
    }
    let mut canonical = format!("{}\n{}\n{}\n", req.method, req.path, query.join("&"));
    for name in &auth.signed_headers {
        let values = header_values(name);
        if values.is_empty() {
            return Err(format!("signed header {name} is missing"));
        }
        // Values trimmed, runs of spaces collapsed, several values joined with commas.
        let joined: Vec<String> = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        let _ = writeln!(canonical, "{name}:{}", joined.join(","));
    }
    let _ = write!(canonical, "\n{}\n{payload_hash}", auth.signed_headers.join(";"));
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{}\n{}",
        auth.scope,
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date);
    let k_region = hmac_sha256(&k_date, region);
    let k_service = hmac_sha256(&k_region, service);
    let k_signing = hmac_sha256(&k_service, "aws4_request");
    let expected = hex(&hmac_sha256(&k_signing, &string_to_sign));
    if expected == auth.signature {
        Ok(())
    } else {
        Err(format!(
            "signature {} is not the {expected} calculated over the canonical request:\n{canonical}",
            auth.signature
        ))
    }
}
