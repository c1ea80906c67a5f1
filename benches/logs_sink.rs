//! A fast local CloudWatch Logs endpoint for the log throughput benchmark (`scripts/bench logs`):
//! it answers `CreateLogGroup`, `CreateLogStream` and `PutLogEvents` at once, so the benchmark
//! measures the agent, not the server. It counts accepted events (the `"timestamp":` keys of the
//! request) and bytes, and writes `<events> <bytes>` to the stats file after every request.
//!
//! `logs_sink PORT_FILE STATS_FILE`: binds 127.0.0.1:0, writes the port to `PORT_FILE`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Request, Response};

#[derive(Debug, Default)]
struct Stats {
    events: AtomicU64,
    bytes: AtomicU64,
}

fn count(body: &[u8]) -> u64 {
    memchr::memmem::find_iter(body, b"\"timestamp\":").count() as u64
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    stats: Arc<Stats>,
    path: Arc<String>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = req
        .into_body()
        .collect()
        .await
        .map(http_body_util::Collected::to_bytes)
        .unwrap_or_default();
    let reply = if target.ends_with("PutLogEvents") {
        stats.events.fetch_add(count(&body), Ordering::SeqCst);
        stats.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
        let _ = std::fs::write(
            path.as_str(),
            format!(
                "{} {}\n",
                stats.events.load(Ordering::SeqCst),
                stats.bytes.load(Ordering::SeqCst)
            ),
        );
        "{}"
    } else {
        "{}"
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(reply.as_bytes())));
    resp.headers_mut().insert(
        "content-type",
        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    resp.headers_mut()
        .insert("x-amzn-requestid", hyper::header::HeaderValue::from_static("bench"));
    Ok(resp)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (port_file, stats_file) = (args[1].clone(), Arc::new(args[2].clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        std::fs::write(&port_file, listener.local_addr().unwrap().port().to_string()).unwrap();
        let stats = Arc::new(Stats::default());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (stats, path) = (stats.clone(), stats_file.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| handle(req, stats.clone(), path.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
