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
    #[error(
        "the cloudwatch output (PutMetricData, PutLogEvents) is not part of this build yet; \
         use --output stdout or --output dir:PATH"
    )]
    CloudwatchUnavailable,
}
