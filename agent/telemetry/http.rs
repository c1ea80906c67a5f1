//! `/healthz`, `/readyz` and `/metrics` on their own thread with a current-thread runtime, so
//! a busy data plane cannot starve the kubelet's probes (linkerd's admin server does the same).

use std::convert::Infallible;
use std::net::SocketAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use super::Telemetry;

/// Binds `addr` now (so a taken port fails at startup, with the address in the error), then
/// serves on a dedicated thread until `cancel` fires. Returns the bound address (port 0 picks
/// a free port; tests use that).
pub fn serve(
    addr: SocketAddr,
    telemetry: Telemetry,
    cancel: CancellationToken,
) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let handle = std::thread::Builder::new()
        .name("kinsight-telemetry".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the telemetry runtime");
                    return;
                }
            };
            rt.block_on(accept_loop(std_listener, telemetry, cancel));
        })?;
    Ok((bound, handle))
}

async fn accept_loop(std_listener: std::net::TcpListener, telemetry: Telemetry, cancel: CancellationToken) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the telemetry listener");
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::debug!(error = %e, "telemetry accept failed");
                    continue;
                }
            },
        };
        let t = telemetry.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let t = t.clone();
                async move { Ok::<_, Infallible>(route(&req, &t)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(error = %e, "telemetry connection error");
            }
        });
    }
}

fn route<B>(req: &Request<B>, t: &Telemetry) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match req.uri().path() {
        "/healthz" => match t.liveness() {
            Ok(()) => (StatusCode::OK, "text/plain", "ok\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("unhealthy:\n{why}"),
            ),
        },
        "/readyz" => match t.readiness() {
            Ok(()) => (StatusCode::OK, "text/plain", "ready\n".to_string()),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready:\n{why}"),
            ),
        },
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", t.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /healthz, /readyz or /metrics\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
