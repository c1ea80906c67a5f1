//! AWS identity: the credential chain, background refresh, region and endpoints, and the
//! `SdkConfig`s every AWS client is built from.
//!
//! Owns: which credentials kinsight uses and keeping them fresh; the startup identity report;
//! the refusal of non-workload identities; node metadata from `IMDSv2`; the instance tags and
//! the cluster name they carry (`ec2:DescribeTags`). Must not: send metrics or logs (`ship` does, with the `SdkConfig`s from
//! [`build`]).
//!
//! Inputs: the validated [`crate::config::Config`], the environment captured by `main`
//! ([`crate::config::Env`]; the SDK's providers also read the process environment themselves),
//! a [`crate::telemetry::Telemetry`] handle, a cancellation token for the refreshers.
//!
//! The decision a newcomer would question: kinsight walks the SDK's credential chain link by
//! link instead of using `DefaultCredentialsChain`, and turns the SDK's identity cache off in
//! favour of its own [`Identity`]. The stock chain hides which link answered (so an IRSA setup
//! silently falling through to the node role goes unnoticed), and the stock cache refreshes
//! 5–10 s before expiry *on the request path*, dropping the old credentials first: one STS
//! hiccup at the hour becomes failed sends (eager loading is an open request,
//! smithy-lang/smithy-rs#2376). [`Identity`] answers from memory and refreshes in the background
//! 15 minutes ahead.
//!
//! Files: `kind.rs` (identity kinds, session name), `chain.rs` (links, walk, hints),
//! `identity.rs` (the credentials owner and its refresher), `context.rs` ([`build`], region,
//! endpoints, the report), `imds.rs` (node metadata), `ec2.rs` (instance tags and the cluster
//! name from `ec2:DescribeTags`),
//! `send_test.rs` (`kinsight check --send-test`), `error.rs`.

mod chain;
mod context;
mod ec2;
mod error;
mod identity;
mod imds;
mod kind;
pub mod send_test;

pub use chain::token_claims;
pub use context::{
    AuthTask, AwsContext, Endpoints, IdentityReport, RegionSource, base_identity, build, build_with_clock,
    resolve_region, retry_caller_identity, sdk_config,
};
pub use ec2::{
    ASG_TAG, CLUSTER_TAG_PREFIX, ClusterNameFrom, ClusterTag, Tag, cluster_name_from_tags, cluster_tag,
    describe_instance_tags, resolve_cluster_name,
};
pub use error::AuthError;
pub use identity::{ATTEMPT_TIMEOUT, CredentialsExpired, FORCE_DEBOUNCE, Identity, backoff, refresh_due};
pub use imds::{LOOKUP_BUDGET, NodeMetadata, interface_id, node_metadata};
pub use kind::{IdentityKind, ImdsSource, sanitise_session_name, session_name};
