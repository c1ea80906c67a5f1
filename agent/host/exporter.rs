//! One plain-HTTP `GET` of a node-local exporter's `/metrics` (a CSI node plugin in a pod of this
//! node, the DCGM exporter on the node's IP), bounded in time and size.
//!
//! The exporters speak plain HTTP, as Prometheus scrapes them; the addresses are this node's
//! (a pod of it from the pod index, or its own IP).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ExporterError {
    #[error("connecting to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error("{addr}: {source}")]
    Http { addr: String, source: hyper::Error },
    #[error("{addr}: HTTP status {status}")]
    Status { addr: String, status: u16 },
    #[error("{addr}: the response is larger than {limit} bytes or broke off: {reason}")]
    Body { addr: String, limit: usize, reason: String },
    #[error("{addr}: no answer within {0:?}", .timeout)]
    Timeout { addr: String, timeout: Duration },
}

/// `GET http://{addr}{path}` (`addr` is `host:port`, an IPv6 host in brackets) with
/// `Connection: close`; the body, at most `limit` bytes, within `timeout` for the whole exchange.
pub async fn get(addr: &str, path: &str, limit: usize, timeout: Duration) -> Result<Bytes, ExporterError> {
    let exchange = async {
        let owned = || addr.to_string();
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ExporterError::Connect { addr: owned(), source })?;
        let (mut send, conn) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|source| ExporterError::Http { addr: owned(), source })?;
        let request = Request::get(path)
            .header(hyper::header::HOST, addr)
            // Prometheus' text format, which every exporter serves (no protobuf negotiation).
            .header(hyper::header::ACCEPT, "text/plain;version=0.0.4")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::new())
            .map_err(|e| ExporterError::Body {
                addr: owned(),
                limit,
                reason: e.to_string(),
            })?;
        let fetch = async move {
            let response = send
                .send_request(request)
                .await
                .map_err(|source| ExporterError::Http { addr: owned(), source })?;
            // Dropping the sender lets the connection end once the response is read.
            drop(send);
            let status = response.status();
            if !status.is_success() {
                return Err(ExporterError::Status {
                    addr: owned(),
                    status: status.as_u16(),
                });
            }
            Limited::new(response.into_body(), limit)
                .collect()
                .await
                .map(http_body_util::Collected::to_bytes)
                .map_err(|e| ExporterError::Body {
                    addr: owned(),
                    limit,
                    reason: e.to_string(),
                })
        };
        // The connection is driven alongside the request: it ends when the response is read.
        let (_, body) = tokio::join!(conn, fetch);
        body
    };
    tokio::time::timeout(timeout, exchange).await.unwrap_or_else(|_| {
        Err(ExporterError::Timeout {
            addr: addr.to_string(),
            timeout,
        })
    })
}

#[cfg(test)]
mod tests {
    use std::io::{Read as _, Write as _};

    use super::*;

    /// A one-shot server answering one connection with `response` (raw HTTP).
    fn serve_once(response: &'static [u8]) -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf);
                let _ = s.write_all(response);
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_returned() {
        let addr = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello");
        let body = get(&addr, "/metrics", 100, Duration::from_secs(5)).await.unwrap();
        assert_eq!(&body[..], b"hello");
    }

    #[tokio::test]
    async fn statuses_sizes_refusals_and_silence_are_errors() {
        let addr = serve_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n");
        let e = get(&addr, "/metrics", 100, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, ExporterError::Status { status: 404, .. }), "{e}");

        let addr = serve_once(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n0123456789");
        let e = get(&addr, "/metrics", 4, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, ExporterError::Body { limit: 4, .. }), "{e}");

        // Nothing listens: refused.
        let free = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .to_string();
        let e = get(&free, "/metrics", 4, Duration::from_secs(5)).await.unwrap_err();
        assert!(matches!(e, ExporterError::Connect { .. }), "{e}");

        // Accepted, never answered.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let e = get(&addr, "/metrics", 4, Duration::from_millis(200)).await.unwrap_err();
        assert!(matches!(e, ExporterError::Timeout { .. }), "{e}");
        drop(listener);
    }
}
