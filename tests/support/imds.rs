//! A fake `IMDSv2`, in-process on 127.0.0.1:0, for
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`. moto's metadata endpoint lacks the token TTL header the
//! SDK requires, hence this one.
//!
//! - `PUT /latest/api/token` with `x-aws-ec2-metadata-token-ttl-seconds` → the token, and the TTL
//!   echoed in the same response header;
//! - `GET` with `x-aws-ec2-metadata-token: <token>` (else 401): the role name, its credentials
//!   (with `Expiration`), region, instance id and type, availability zone, and the instance
//!   identity document, and the interface id of one network interface by its MAC.

use super::fake_server::{FakeServer, Request, Response, expiration_in};

pub const IMDS_TOKEN: &str = "imds-test-token";
pub const IMDS_ROLE: &str = "eks-nodes";
pub const IMDS_ACCESS_KEY: &str = "ASIAIMDSTESTKEY";
pub const IMDS_SECRET: &str = "imds-secret-access-key-not-to-be-logged";
pub const IMDS_SESSION_TOKEN: &str = "imds-session-token-not-to-be-logged";
pub const IMDS_INSTANCE_ID: &str = "i-0abc123def4567890";
pub const IMDS_INSTANCE_TYPE: &str = "m5.large";
pub const IMDS_REGION: &str = "eu-west-1";
pub const IMDS_AZ: &str = "eu-west-1b";
/// The one network interface IMDS lists (an EFA's: `tests/support/efa.rs` writes its GID).
pub const IMDS_MAC: &str = "0e:11:22:33:44:55";
pub const IMDS_ENI: &str = "eni-0efa1234567890abc";

/// The running fake.
#[derive(Debug)]
pub struct Imds {
    server: FakeServer,
}

impl Imds {
    pub fn start() -> Imds {
        Imds {
            server: FakeServer::start(answer),
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_EC2_METADATA_SERVICE_ENDPOINT`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    /// Every request so far (method and path are what tests assert on).
    pub fn requests(&self) -> Vec<Request> {
        self.server.requests()
    }

    /// Whether anything asked for credentials.
    pub fn credentials_requested(&self) -> bool {
        self.requests()
            .iter()
            .any(|r| r.path.contains("/iam/security-credentials"))
    }
}

fn answer(req: &Request) -> Response {
    if req.method == "PUT" {
        if req.path != "/latest/api/token" {
            return Response::text(404, "");
        }
        let Some(ttl) = req.header("x-aws-ec2-metadata-token-ttl-seconds") else {
            return Response::text(400, "missing TTL");
        };
        return Response::text(200, IMDS_TOKEN).with_header("x-aws-ec2-metadata-token-ttl-seconds", ttl);
    }
    if req.header("x-aws-ec2-metadata-token") != Some(IMDS_TOKEN) {
        return Response::text(401, "");
    }
    let creds_path = format!("/latest/meta-data/iam/security-credentials/{IMDS_ROLE}");
    match req.path.as_str() {
        "/latest/meta-data/iam/security-credentials/" | "/latest/meta-data/iam/security-credentials" => {
            Response::text(200, IMDS_ROLE)
        }
        p if p == creds_path => Response::new(
            200,
            "application/json",
            serde_json::json!({
                "Code": "Success",
                "LastUpdated": "2026-01-01T00:00:00Z",
                "Type": "AWS-HMAC",
                "AccessKeyId": IMDS_ACCESS_KEY,
                "SecretAccessKey": IMDS_SECRET,
                "Token": IMDS_SESSION_TOKEN,
                "Expiration": expiration_in(6 * 3600),
            })
            .to_string(),
        ),
        "/latest/meta-data/placement/region" => Response::text(200, IMDS_REGION),
        "/latest/meta-data/placement/availability-zone" => Response::text(200, IMDS_AZ),
        "/latest/meta-data/instance-id" => Response::text(200, IMDS_INSTANCE_ID),
        "/latest/meta-data/instance-type" => Response::text(200, IMDS_INSTANCE_TYPE),
        p if p == format!("/latest/meta-data/network/interfaces/macs/{IMDS_MAC}/interface-id") => {
            Response::text(200, IMDS_ENI)
        }
        "/latest/dynamic/instance-identity/document" => Response::new(
            200,
            "application/json",
            serde_json::json!({
                "accountId": "123456789012",
                "availabilityZone": IMDS_AZ,
                "instanceId": IMDS_INSTANCE_ID,
                "instanceType": IMDS_INSTANCE_TYPE,
                "region": IMDS_REGION,
            })
            .to_string(),
        ),
        _ => Response::text(404, ""),
    }
}
