//! What can go wrong talking to containerd.

use std::path::PathBuf;

/// A failed connection or call. Every case is retried by the source with backoff; none stops
/// the agent.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No socket at the path (containerd not running, or the socket not mounted).
    #[error("no containerd socket at {}", path.display())]
    Missing { path: PathBuf },
    #[error("cannot connect to the containerd socket {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    /// A call answered with an error status, or did not answer in time.
    #[error("containerd {call} failed")]
    Call {
        call: &'static str,
        #[source]
        source: tonic::Status,
    },
    #[error("containerd {call} did not answer within {} s", timeout.as_secs())]
    Timeout {
        call: &'static str,
        timeout: std::time::Duration,
    },
    /// The event stream ended (containerd stopped or restarted).
    #[error("the containerd event stream ended")]
    StreamEnded,
}

impl RuntimeError {
    /// The `kind` label of `kinsight_runtime_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Missing { .. } => "missing",
            RuntimeError::Connect { .. } => "connect",
            RuntimeError::Call { .. } => "call",
            RuntimeError::Timeout { .. } => "timeout",
            RuntimeError::StreamEnded => "stream_ended",
        }
    }
}
