//! Node metadata from `IMDSv2`: instance id and type (the metrics' `InstanceId` and
//! `InstanceType` attributes), region (the region chain's step after the config, the environment
//! and the profile), availability zone.
//!
//! The SDK's IMDS client does the `IMDSv2` dance (a `PUT /latest/api/token` with the
//! `x-aws-ec2-metadata-token-ttl-seconds` header, the token reused for every `GET`) and honours
//! `AWS_EC2_METADATA_SERVICE_ENDPOINT`. With the common hop limit of 1, a pod without
//! `hostNetwork` never gets an answer, so every call here is short and the whole lookup is
//! bounded: startup never waits more than [`LOOKUP_BUDGET`] on it, and a missing field is `None`
//! (the `kube` module's Node labels are the fallback).

use std::time::Duration;

use aws_config::imds::Client;
use aws_config::provider_config::ProviderConfig;

use crate::config::AwsEnv;

/// The most the whole lookup may take.
pub const LOOKUP_BUDGET: Duration = Duration::from_secs(3);
/// One connect or read: IMDS answers in about a millisecond when reachable.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// What IMDS said about this node; `None` for each field it did not answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeMetadata {
    pub instance_id: Option<String>,
    pub instance_type: Option<String>,
    pub region: Option<String>,
    pub availability_zone: Option<String>,
}

/// The IMDS client of every lookup here: one attempt, short timeouts, the endpoint of
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` when set; `None` when that endpoint is not a URL.
fn client(aws: &AwsEnv) -> Option<Client> {
    let mut builder = Client::builder()
        .configure(&ProviderConfig::default())
        .max_attempts(1)
        .connect_timeout(IO_TIMEOUT)
        .read_timeout(IO_TIMEOUT)
        .operation_timeout(LOOKUP_BUDGET);
    // The value main captured wins over the process environment, so tests can pass one in.
    if let Some(url) = &aws.ec2_metadata_service_endpoint {
        match builder.endpoint(url) {
            Ok(b) => builder = b,
            Err(e) => {
                tracing::warn!(endpoint = %url, error = %e, "AWS_EC2_METADATA_SERVICE_ENDPOINT is not a URL; no node metadata from IMDS");
                return None;
            }
        }
    }
    Some(builder.build())
}

/// The id of the network interface (`eni-…`) with MAC address `mac` (lower-case, colon
/// separated, as IMDS lists them under `network/interfaces/macs/`), within [`LOOKUP_BUDGET`].
/// The error says why, for a log line.
pub async fn interface_id(aws: &AwsEnv, mac: &str) -> Result<String, String> {
    if aws.ec2_metadata_disabled {
        return Err("IMDS is disabled (AWS_EC2_METADATA_DISABLED)".into());
    }
    let client = client(aws).ok_or_else(|| "AWS_EC2_METADATA_SERVICE_ENDPOINT is not a URL".to_string())?;
    let path = format!("/latest/meta-data/network/interfaces/macs/{mac}/interface-id");
    match tokio::time::timeout(LOOKUP_BUDGET, client.get(path)).await {
        Ok(Ok(v)) => Some(v.as_ref().trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "IMDS answered an empty interface id".to_string()),
        Ok(Err(e)) => Err(crate::telemetry::chain(&e)),
        Err(_) => Err(format!(
            "IMDS did not answer within {} s (hop limit 1 without hostNetwork?)",
            LOOKUP_BUDGET.as_secs()
        )),
    }
}

/// Reads the four fields, concurrently, within [`LOOKUP_BUDGET`]. Nothing at all with
/// `AWS_EC2_METADATA_DISABLED=true`.
pub async fn node_metadata(aws: &AwsEnv) -> NodeMetadata {
    if aws.ec2_metadata_disabled {
        tracing::debug!("IMDS disabled (AWS_EC2_METADATA_DISABLED); no node metadata from it");
        return NodeMetadata::default();
    }
    let Some(client) = client(aws) else {
        return NodeMetadata::default();
    };
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            match client.get(path).await {
                Ok(v) => Some(v.as_ref().trim().to_string()).filter(|s| !s.is_empty()),
                Err(e) => {
                    tracing::debug!(path, error = %crate::telemetry::chain(&e), "IMDS did not answer");
                    None
                }
            }
        }
    };
    let all = async {
        tokio::join!(
            get("/latest/meta-data/instance-id"),
            get("/latest/meta-data/instance-type"),
            get("/latest/meta-data/placement/region"),
            get("/latest/meta-data/placement/availability-zone"),
        )
    };
    if let Ok((instance_id, instance_type, region, availability_zone)) = tokio::time::timeout(LOOKUP_BUDGET, all).await
    {
        NodeMetadata {
            instance_id,
            instance_type,
            region,
            availability_zone,
        }
    } else {
        tracing::info!(
            budget_s = LOOKUP_BUDGET.as_secs(),
            "IMDS did not answer in time (hop limit 1 without hostNetwork?); no node metadata from it"
        );
        NodeMetadata::default()
    }
}
