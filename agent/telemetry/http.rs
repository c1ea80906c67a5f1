//! `/healthz`, `/readyz` and `/metrics` on their own thread with a current-thread runtime, so
//! a busy data plane cannot starve the kubelet's probes (linkerd's admin server does the same).
//!
//! Any pod that can reach the port is a client, so the server holds no more than it must:
//! [`ServerLimits`] bounds how long a connection may stay without a complete request head (which in
//! hyper also bounds an idle keep-alive connection), how long any connection may live, how many
//! are open at once and how much of a request head is buffered. When the cap is reached the
//! *oldest* connection is closed to admit the new one: a probe sends its request as soon as it
//! connects and is done in milliseconds, so the connections that have been open longest are the
//! ones that sent nothing useful, and a flood of idle connections cannot lock the probes out.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{Name, Telemetry};

/// What one telemetry server may hold. [`ServerLimits::default`] is what the agent uses; tests
/// shorten the times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Time allowed from the start of waiting for a request head until it is complete. hyper
    /// starts this timer whenever it waits for a head — on a new connection and again after each
    /// response on a kept-alive one (`proto/h1/conn.rs`, `poll_read_head` and `State::idle`) — so
    /// it is also the idle keep-alive timeout.
    pub header_read_timeout: Duration,
    /// Longest life of any connection, whatever it does (a client that reads its response
    /// slowly is not covered by the head timeout).
    pub max_connection_age: Duration,
    /// Connections open at once; the oldest is closed to admit one more.
    pub max_connections: usize,
    /// Pause after a failed `accept`. The failures that matter (`EMFILE`, `ENFILE`, `ENOBUFS`,
    /// accept(2)) leave the connection queued, so retrying at once spins a core; hyper 0.14's
    /// `AddrIncoming::set_sleep_on_errors` slept one second for the same reason.
    pub accept_error_pause: Duration,
}

/// hyper's smallest allowed read buffer (`Builder::max_buf_size` panics below 8192): a request
/// head larger than this is answered `431` and the connection closed. Probes and scrapers send a
/// few hundred bytes.
pub const MAX_BUF_BYTES: usize = 8192;

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connection_age: Duration::from_mins(1),
            max_connections: 64,
            accept_error_pause: Duration::from_secs(1),
        }
    }
}

/// Binds `addr` now (so a taken port fails at startup, with the address in the error), then
/// serves on a dedicated thread until `cancel` fires. Returns the bound address (port 0 picks
/// a free port; tests use that).
pub fn serve(
    addr: SocketAddr,
    limits: ServerLimits,
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
            rt.block_on(accept_loop(std_listener, limits, telemetry, cancel));
        })?;
    Ok((bound, handle))
}

/// The open connections, oldest first, each with the token that closes it.
type Open = Arc<Mutex<BTreeMap<u64, CancellationToken>>>;

async fn accept_loop(
    std_listener: std::net::TcpListener,
    limits: ServerLimits,
    telemetry: Telemetry,
    cancel: CancellationToken,
) {
    let listener = match tokio::net::TcpListener::from_std(std_listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register the telemetry listener");
            return;
        }
    };
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open: Open = Arc::default();
    let mut next_id = 0u64;
    let mut failing = false;
    loop {
        let stream = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    TelemetryAcceptFailed { error: &error, is_first: !failing }.emit(&telemetry);
                    failing = true;
                    // Out of descriptors: this server's own connections are the first to give
                    // theirs back (the oldest first), so the agent's reads and the next probe
                    // get one; once it holds none, it pauses instead of spinning.
                    if is_out_of_descriptors(&error) && close_oldest(&open, &telemetry) {
                        // Lets the closed connection's task run and drop its socket.
                        tokio::task::yield_now().await;
                        continue;
                    }
                    tokio::select! {
                        () = cancel.cancelled() => return,
                        () = tokio::time::sleep(limits.accept_error_pause) => continue,
                    }
                }
            },
        };
        failing = false;
        let Some(permit) = admit(&slots, &open, &telemetry, &cancel).await else {
            return;
        };
        let id = next_id;
        next_id += 1;
        let token = cancel.child_token();
        lock(&open).insert(id, token.clone());
        let (t, open) = (telemetry.clone(), open.clone());
        tokio::spawn(async move {
            serve_connection(stream, limits, t, token).await;
            lock(&open).remove(&id);
            // After the socket was closed (it is dropped inside `serve_connection`), so the
            // permit count bounds open descriptors.
            drop(permit);
        });
    }
}

/// accept(2): `EMFILE` (per-process limit), `ENFILE` (system-wide limit), `ENOBUFS`/`ENOMEM`
/// (socket memory). The connection stays queued, so the next try fails the same way until a
/// descriptor is freed.
fn is_out_of_descriptors(error: &std::io::Error) -> bool {
    use rustix::io::Errno;
    Errno::from_io_error(error).is_some_and(|e| [Errno::MFILE, Errno::NFILE, Errno::NOBUFS, Errno::NOMEM].contains(&e))
}

/// A free slot, closing the oldest connection if there is none. `None` on shutdown.
async fn admit(
    slots: &Arc<Semaphore>,
    open: &Open,
    telemetry: &Telemetry,
    cancel: &CancellationToken,
) -> Option<OwnedSemaphorePermit> {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return Some(permit);
    }
    close_oldest(open, telemetry);
    // The closed connection's task releases its slot once its socket is gone.
    tokio::select! {
        () = cancel.cancelled() => None,
        permit = slots.clone().acquire_owned() => permit.ok(),
    }
}

/// Tells the oldest open connection to close; false when none is open.
fn close_oldest(open: &Open, telemetry: &Telemetry) -> bool {
    let oldest = lock(open).pop_first();
    let Some((_, token)) = oldest else {
        return false;
    };
    token.cancel();
    TelemetryConnectionEvicted.emit(telemetry);
    true
}

fn lock(open: &Open) -> std::sync::MutexGuard<'_, BTreeMap<u64, CancellationToken>> {
    open.lock().unwrap_or_else(PoisonError::into_inner)
}

async fn serve_connection(stream: tokio::net::TcpStream, limits: ServerLimits, t: Telemetry, token: CancellationToken) {
    let service = hyper::service::service_fn(move |req| {
        let t = t.clone();
        async move { Ok::<_, Infallible>(route(&req, &t)) }
    });
    let io = hyper_util::rt::TokioIo::new(stream);
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUF_BYTES)
        .serve_connection(io, service);
    tokio::select! {
        result = conn => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "telemetry connection error");
            }
        }
        () = token.cancelled() => tracing::debug!("telemetry connection closed to admit a newer one"),
        () = tokio::time::sleep(limits.max_connection_age) => {
            tracing::debug!("telemetry connection closed at its maximum age");
        }
    }
}

fn route<B>(req: &Request<B>, t: &Telemetry) -> Response<Full<Bytes>> {
    // Read-only endpoints: anything but GET and HEAD is 405 with the `Allow` header RFC 9110
    // section 15.5.6 requires. hyper leaves out the body of a HEAD answer itself.
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut resp = text(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "method not allowed; use GET or HEAD\n".to_owned(),
        );
        resp.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
        return resp;
    }
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
            Ok(()) => (StatusCode::OK, "text/plain", format!("ready\n{}", t.notes())),
            Err(why) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("not ready:\n{why}{}", t.notes()),
            ),
        },
        "/metrics" => (StatusCode::OK, "text/plain; version=0.0.4", t.render()),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found; try /healthz, /readyz or /metrics\n".to_string(),
        ),
    };
    text(status, content_type, body)
}

fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

/// `accept` failed; the loop pauses for [`ServerLimits::accept_error_pause`]. Only the first failure
/// of a run is a warning, so a descriptor shortage logs once, not once a second.
#[derive(Debug)]
struct TelemetryAcceptFailed<'a> {
    error: &'a std::io::Error,
    is_first: bool,
}

impl TelemetryAcceptFailed<'_> {
    fn emit(&self, t: &Telemetry) {
        if self.is_first {
            tracing::warn!(error = %self.error, "telemetry endpoint cannot accept connections; pausing between tries");
        } else {
            tracing::debug!(error = %self.error, "telemetry accept failed again");
        }
        t.add(Name::TelemetryAcceptErrors, &[], 1);
    }
}

/// The connection cap was reached and the oldest connection was closed.
#[derive(Debug)]
struct TelemetryConnectionEvicted;

impl TelemetryConnectionEvicted {
    #[expect(
        clippy::unused_self,
        reason = "every event is emitted the same way: `Event { .. }.emit(t)`"
    )]
    fn emit(&self, t: &Telemetry) {
        tracing::debug!("telemetry connection cap reached; closing the oldest connection");
        t.add(Name::TelemetryConnectionsEvicted, &[], 1);
    }
}

#[cfg(test)]
mod tests;
