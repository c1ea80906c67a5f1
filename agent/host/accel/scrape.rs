//! One plain-HTTP GET of a node-local exporter's `/metrics`, bounded in time and size.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;

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
}

impl ScrapeError {
    /// `unreachable` | `status` | `timeout` | `invalid`: bounded labels for
    /// `kinsight_accelerator_scrapes_total{result}`.
    pub fn kind(&self) -> &'static str {
        match self {
            ScrapeError::Connect { .. } => "unreachable",
            ScrapeError::Status { .. } => "status",
            ScrapeError::Timeout { .. } => "timeout",
            ScrapeError::Http { .. } | ScrapeError::Body { .. } | ScrapeError::Parse(_) => "invalid",
        }
    }
}

/// `GET url` (an `http://host:port/path` URL, checked when the config was read) within
/// `timeout`; the body as text (invalid UTF-8 replaced).
pub async fn get(url: &url::Url, timeout: Duration) -> Result<String, ScrapeError> {
    let text = url.to_string();
    match tokio::time::timeout(timeout, get_unbounded(url)).await {
        Ok(r) => r,
        Err(_) => Err(ScrapeError::Timeout { url: text, timeout }),
    }
}

async fn get_unbounded(url: &url::Url) -> Result<String, ScrapeError> {
    let text = url.to_string();
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let address = format!("{host}:{port}");
    let stream = tokio::net::TcpStream::connect(&address)
        .await
        .map_err(|source| ScrapeError::Connect {
            address: address.clone(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|source| ScrapeError::Http {
            url: text.clone(),
            source,
        })?;
    let path = match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    };
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, address.as_str())
        .header(hyper::header::ACCEPT, "text/plain;version=0.0.4")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|_| ScrapeError::Body { url: text.clone() })?;
    // The request owns the sender: when it is done the connection ends too, so both futures
    // finish (no task is spawned for the connection).
    let exchange = async move {
        let response = sender.send_request(request).await.map_err(|source| ScrapeError::Http {
            url: text.clone(),
            source,
        })?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(ScrapeError::Status {
                url: text.clone(),
                status,
            });
        }
        let body = Limited::new(response.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| ScrapeError::Body { url: text.clone() })?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    };
    let (result, _) = tokio::join!(exchange, connection);
    result
}
