//! The typed configuration behind `cwagentconfig.json`: parse, validate, reload.
//!
//! Owns: the config tree ([`Config`]), its defaults, validation with JSON paths, and hot reload
//! of the mounted `ConfigMap` directory. Must not: know about tasks or AWS clients.
//!
//! Inputs: the file text, the process environment captured once by [`Env::from_process`]
//! (`HOST_NAME`, `HOST_IP`, `K8S_NAMESPACE`, `K8S_CLUSTER_NAME`, `AWS_REGION`, `POD_NAME`,
//! `KUBERNETES_SERVICE_HOST`), and the `--output` override.
//!
//! The decision a newcomer would question: the file is first read into a `serde_json::Value`
//! and then walked by hand, instead of `#[serde(deny_unknown_fields)]` structs, because serde
//! stops at the first error while users need every error at once, each with its JSON path.
//!
//! Files: `model.rs` (the validated tree), `parse.rs` (`load_str`/`load_file` and the rules that
//! combine sources: cluster name, node name, region, interval, output), `upstream.rs` (the
//! `CloudWatch` agent's `agent` and `logs` sections), `kinsight.rs` (the `kinsight` section),
//! `values.rs` (rules for single values), `walk.rs` (the path-tracking walker), `error.rs`,
//! `env.rs`, `reload.rs`. Each key is read in exactly one place, with its type, unit, default
//! and range in the comment above it: that is the configuration reference.

pub mod collect;
mod env;
mod error;
mod kinsight;
mod model;
mod parse;
#[cfg(test)]
mod proptests;
pub mod reload;
mod upstream;
mod values;
mod walk;

#[cfg(test)]
mod tests;

pub use env::{AwsEnv, Env};
pub use error::{ConfigError, ConfigErrors, ErrorKind, MAX_PRINTED, printed};
pub use kinsight::{MAX_EVENT_BYTES, TELEMETRY_PORT, default_listen_address};
pub use model::*;
pub use parse::{DEFAULT_CONFIG, Inputs, LOCAL_CLUSTER_NAME, MAX_FILE_BYTES, load_file, load_str, read_file};
pub use walk::known_keys;
