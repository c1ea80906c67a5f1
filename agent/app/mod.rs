//! The composition root: load (the config read once) → build → run under one supervisor of
//! named tasks → phased drain; reload rebuilds what changed.
//!
//! `main.rs` parses the command line and calls [`load`], then [`run`] or [`once`], with an
//! [`Outside`]: everything that comes from outside the process (host root, environment, config
//! file, output override, clock), so that a test drives the same code with a fixture tree and
//! local servers.
//!
//! The decision a newcomer would question: `app` holds no pipeline logic. The metric tick loop
//! lives in `metrics::tick`, delivery in `ship`; `app` only wires them, names their tasks, and
//! decides what a reload rebuilds (`reload.rs` lists every key that needs a restart instead).

mod build;
pub mod check;
pub mod cost;
mod load;
mod reload;
mod run;
pub mod supervise;

use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::AuthError;
use crate::config::{ConfigErrors, Env, OutputKind};
use crate::host::{Clock, HostError};
use crate::ship::ShipError;

pub use cost::cost;
pub use load::{Loaded, inputs, load, load_config};
pub use reload::{IDENTITY_KEYS, Key, LOG_KEYS, OUTPUT_KEYS, RESTART_KEYS};
pub use run::{once, run};
pub use supervise::TaskFailed;

/// Where the DaemonSet mounts the `cwagentconfig` ConfigMap (the CloudWatch agent's path).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/cwagentconfig/cwagentconfig.json";

/// Everything from outside the process, passed down from `main`.
#[derive(Debug, Clone)]
pub struct Outside {
    /// `--host-root`: every node path resolves under it.
    pub host_root: PathBuf,
    pub env: Env,
    /// `None` runs the embedded default configuration.
    pub config_path: Option<PathBuf>,
    /// `--output`, which wins over `kinsight.output`.
    pub output_override: Option<OutputKind>,
    /// `--pods-file`, which wins over `kinsight.metrics.metadata_source`.
    pub pods_file: Option<PathBuf>,
    pub clock: Arc<dyn Clock>,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("invalid configuration")]
    Config(#[source] ConfigErrors),
    #[error("cannot read the node")]
    Host(#[source] HostError),
    #[error("cannot set up the output")]
    Ship(#[source] ShipError),
    #[error("cannot establish the AWS identity")]
    Auth(#[source] AuthError),
    #[error("cannot serve telemetry on {addr}")]
    Telemetry {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("a must-run task stopped")]
    Task(#[source] TaskFailed),
}

impl AppError {
    /// `EX_CONFIG` (78) for a bad configuration, 1 for anything that fails at run time.
    pub fn exit_code(&self) -> u8 {
        match self {
            AppError::Config(_) => 78,
            // A refused identity (require_workload_identity) or no region is a configuration
            // problem too.
            AppError::Auth(e) => e.exit_code(),
            _ => 1,
        }
    }
}
