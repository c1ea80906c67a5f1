//! A fake EKS Pod Identity agent, in-process on 127.0.0.1:0, for
//! `AWS_CONTAINER_CREDENTIALS_FULL_URI` (the SDK accepts `http://` to loopback).
//!
//! `GET /v1/credentials` answers credentials only when `Authorization` equals the token file's
//! content (re-read on every request, as the SDK re-reads it on every fetch); otherwise 403
//! `AccessDeniedException`.

use std::path::PathBuf;

use super::fake_server::{FakeServer, Request, Response, expiration_in};

pub const POD_ID_ACCESS_KEY: &str = "ASIAPODIDENTITYTEST";
pub const POD_ID_SECRET: &str = "pod-identity-secret-not-to-be-logged";
pub const POD_ID_SESSION_TOKEN: &str = "pod-identity-session-token-not-to-be-logged";

#[derive(Debug)]
pub struct PodIdentity {
    server: FakeServer,
}

impl PodIdentity {
    /// Answers with credentials valid for `lifetime_secs` when `Authorization` equals the
    /// content of `token_file`.
    pub fn start(token_file: PathBuf, lifetime_secs: u64) -> PodIdentity {
        PodIdentity {
            server: FakeServer::start(move |req| answer(req, &token_file, lifetime_secs)),
        }
    }

    /// `http://127.0.0.1:PORT/v1/credentials`, for `AWS_CONTAINER_CREDENTIALS_FULL_URI`.
    pub fn full_uri(&self) -> String {
        format!("{}/v1/credentials", self.server.url())
    }

    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }
}

fn answer(req: &Request, token_file: &PathBuf, lifetime_secs: u64) -> Response {
    if req.method != "GET" || req.path != "/v1/credentials" {
        return Response::text(404, "");
    }
    let expected = std::fs::read_to_string(token_file).unwrap_or_default();
    if req.header("authorization") != Some(expected.trim()) || expected.trim().is_empty() {
        return Response::new(
            403,
            "application/json",
            r#"{"code":"AccessDeniedException","message":"the token does not match"}"#,
        );
    }
    Response::new(
        200,
        "application/json",
        serde_json::json!({
            "AccessKeyId": POD_ID_ACCESS_KEY,
            "SecretAccessKey": POD_ID_SECRET,
            "Token": POD_ID_SESSION_TOKEN,
            "AccountId": "123456789012",
            "Expiration": expiration_in(lifetime_secs),
        })
        .to_string(),
    )
}
