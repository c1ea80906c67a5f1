//! An accelerator exporter's URL (the DCGM exporter, neuron-monitor) to one bounded GET (`host::exporter`), and its failures as telemetry
//! labels.

use std::time::Duration;

/// An exporter's answer larger than this is refused: dcgm-exporter writes a few kilobytes per
/// GPU.
pub const MAX_BODY_BYTES: usize = 16 << 20;

/// Why a scrape failed; [`ScrapeError::kind`] is the telemetry label.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("cannot connect to {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("GET {url} failed")]
    Http {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("GET {url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url} took longer than {timeout:?}")]
    Timeout { url: String, timeout: Duration },
    #[error("reading the answer of {url} failed (or it is larger than {} MiB)", MAX_BODY_BYTES >> 20)]
    Body { url: String },
    #[error(transparent)]
    Parse(#[from] super::dcgm::ParseError),
    /// AWS Neuron: neuron-monitor's answer.
    #[error(transparent)]
    NeuronParse(#[from] super::neuron::ParseError),
}

impl ScrapeError {
    /// `unreachable` | `status` | `timeout` | `invalid`: bounded labels for
    /// `kinsight_accelerator_scrapes_total{result}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Connect { .. } => "unreachable",
            ScrapeError::Status { .. } => "status",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Http { .. }
            | ScrapeError::Body { .. }
            | ScrapeError::Parse(_)
            | ScrapeError::NeuronParse(_) => "invalid",
        }
    }
}

/// `GET url` (an `http://host:port/path` URL, checked when the config was read) within
/// `timeout`; the body as text (invalid UTF-8 replaced).
pub async fn get(url: &url::Url, timeout: Duration) -> Result<String, ScrapeError> {
    use crate::host::exporter::{self, ExporterError};
    let text = url.to_string();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let address = format!("{host}:{port}");
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let body = exporter::get(&address, &path, MAX_BODY_BYTES, timeout)
        .await
        .map_err(|e| match e {
            ExporterError::Connect { addr, source } => ScrapeError::Connect { address: addr, source },
            ExporterError::Http { source, .. } => ScrapeError::Http {
                url: text.clone(),
                source,
            },
            ExporterError::Status { status, .. } => ScrapeError::Status {
                url: text.clone(),
                status,
            },
            ExporterError::Body { .. } => ScrapeError::Body { url: text.clone() },
            ExporterError::Timeout { timeout, .. } => ScrapeError::Timeout {
                url: text.clone(),
                timeout,
            },
        })?;
    Ok(String::from_utf8_lossy(&body).into_owned())
}
