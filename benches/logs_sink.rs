//! A fast local CloudWatch Logs endpoint for the log throughput benchmark (`scripts/bench logs`):
//! it answers `CreateLogGroup`, `CreateLogStream` and `PutLogEvents` at once, so the benchmark
//! measures the agent, not the server. It counts accepted events (the `"timestamp":` keys of the
//! request), bytes and requests, and writes `<events> <bytes> <p50 ms> <p99 ms> <max ms> <requests>`
//! to the stats file after every request: the latencies from each event's own time to its arrival.
//!
//! It also answers `PutMetricData` (the rpc-v2-cbor protocol: an empty CBOR map), counting
//! requests and bytes into `STATS_FILE.metrics` (`<requests> <bytes>`), for the whole-agent
//! footprint benchmark.
//!
//! `logs_sink PORT_FILE STATS_FILE [LATENCY_MS]`: binds 127.0.0.1:0, writes the port to
//! `PORT_FILE`. With `LATENCY_MS`, each `PutLogEvents` is answered that much later, as a
//! distant or busy CloudWatch Logs would (its events count as arrived when the answer goes out).

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
    requests: AtomicU64,
    metric_requests: AtomicU64,
    metric_bytes: AtomicU64,
    /// Milliseconds from each event's own time (the line's runtime timestamp, written when the
    /// line was written) to its arrival here, as a histogram of 1 ms buckets (the last bucket
    /// holds everything from 10 minutes on): the end-to-end latency of a live run.
    latencies: std::sync::Mutex<Vec<u64>>,
}

/// The `"timestamp":N` values of a request body.
fn timestamps(body: &[u8]) -> impl Iterator<Item = i64> + '_ {
    memchr::memmem::find_iter(body, b"\"timestamp\":").map(move |i| {
        let digits = &body[i + 12..];
        let end = digits.iter().position(|b| !b.is_ascii_digit()).unwrap_or(digits.len());
        std::str::from_utf8(&digits[..end])
            .ok()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0)
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
}

const BUCKETS: usize = 600_000;

/// The bucket (milliseconds) below which a share `p` of the latencies fall.
fn percentile(hist: &[u64], p: f64) -> usize {
    let total: u64 = hist.iter().sum();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a count")]
    let want = ((total as f64) * p).ceil() as u64;
    let mut seen = 0;
    for (ms, n) in hist.iter().enumerate() {
        seen += n;
        if seen >= want.max(1) {
            return ms;
        }
    }
    0
}

fn count(body: &[u8]) -> u64 {
    memchr::memmem::find_iter(body, b"\"timestamp\":").count() as u64
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    stats: Arc<Stats>,
    path: Arc<String>,
    latency: std::time::Duration,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let is_metrics = req.uri().path().ends_with("/operation/PutMetricData");
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
    if is_metrics {
        let n = stats.metric_requests.fetch_add(1, Ordering::SeqCst) + 1;
        let b = stats.metric_bytes.fetch_add(body.len() as u64, Ordering::SeqCst) + body.len() as u64;
        let _ = std::fs::write(format!("{path}.metrics"), format!("{n} {b}\n"));
        // PutMetricData's output is an empty structure: an empty CBOR map.
        let mut resp = Response::new(Full::new(Bytes::from_static(&[0xa0])));
        let h = resp.headers_mut();
        h.insert(
            "content-type",
            hyper::header::HeaderValue::from_static("application/cbor"),
        );
        h.insert(
            "smithy-protocol",
            hyper::header::HeaderValue::from_static("rpc-v2-cbor"),
        );
        h.insert("x-amzn-requestid", hyper::header::HeaderValue::from_static("bench"));
        return Ok(resp);
    }
    let reply = if target.ends_with("PutLogEvents") {
        if !latency.is_zero() {
            tokio::time::sleep(latency).await;
        }
        stats.events.fetch_add(count(&body), Ordering::SeqCst);
        stats.bytes.fetch_add(body.len() as u64, Ordering::SeqCst);
        stats.requests.fetch_add(1, Ordering::SeqCst);
        let now = now_ms();
        let (p50, p99, max) = {
            let mut h = stats
                .latencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if h.is_empty() {
                h.resize(BUCKETS, 0);
            }
            for t in timestamps(&body) {
                let ms = usize::try_from((now - t).max(0))
                    .unwrap_or(BUCKETS - 1)
                    .min(BUCKETS - 1);
                h[ms] += 1;
            }
            let max = h.iter().rposition(|n| *n > 0).unwrap_or(0);
            (percentile(&h, 0.5), percentile(&h, 0.99), max)
        };
        let _ = std::fs::write(
            path.as_str(),
            format!(
                "{} {} {p50} {p99} {max} {}\n",
                stats.events.load(Ordering::SeqCst),
                stats.bytes.load(Ordering::SeqCst),
                stats.requests.load(Ordering::SeqCst)
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
    let latency = std::time::Duration::from_millis(args.get(3).and_then(|a| a.parse().ok()).unwrap_or(0));
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
                let service = hyper::service::service_fn(move |req| handle(req, stats.clone(), path.clone(), latency));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
