use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    #[error("cannot write to {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create output directory {}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `build_local` was asked for the `cloudwatch` output, which needs AWS credentials.
    #[error("the cloudwatch output is built with AWS credentials, not as a local output")]
    NotLocal,
}
