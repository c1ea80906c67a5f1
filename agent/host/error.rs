use std::path::PathBuf;

/// A failed read of a node file. Each variant names the file, so one log line is enough.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot parse {}: {what}", path.display())]
    Parse { path: PathBuf, what: String },
    /// The path would leave the host root, or takes a symlink the walk refuses.
    #[error("refused to read {}: {reason}", path.display())]
    Refused { path: PathBuf, reason: String },
    /// A whole-file read found more than `cap` bytes.
    #[error("cannot read {}: larger than {cap} bytes", path.display())]
    TooLarge { path: PathBuf, cap: usize },
}

impl HostError {
    pub(crate) fn parse(path: &std::path::Path, what: impl Into<String>) -> Self {
        HostError::Parse {
            path: path.to_path_buf(),
            what: what.into(),
        }
    }

    /// The file vanished between listing and reading (a cgroup of a container that just
    /// stopped): expected churn, counted apart from real errors.
    ///
    /// Below a `/proc/<pid>` directory held open after its process exited, procfs answers
    /// `ESRCH` ("No such process"), and a held file of a removed cgroup `ENODEV`, instead of
    /// `ENOENT`: the same thing, an object that is gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, HostError::Read { source, .. } if is_gone(source))
    }

    /// A short, bounded label for counters (`kind` label; never a path).
    pub fn kind(&self) -> &'static str {
        match self {
            HostError::Read { source, .. } if is_gone(source) => "not_found",
            HostError::Read { source, .. } => match source.kind() {
                std::io::ErrorKind::PermissionDenied => "permission_denied",
                _ => "io",
            },
            HostError::Parse { .. } => "parse",
            HostError::Refused { .. } => "refused",
            HostError::TooLarge { .. } => "too_large",
        }
    }
}

/// `ENOENT`; `ESRCH` below a held `/proc/<pid>` of an exited process; `ENODEV` from a held
/// file of a removed cgroup (kernfs deactivates the node).
fn is_gone(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.kind() == std::io::ErrorKind::NotFound
        || [Errno::SRCH, Errno::NODEV]
            .iter()
            .any(|g| e.raw_os_error() == Some(g.raw_os_error()))
}
