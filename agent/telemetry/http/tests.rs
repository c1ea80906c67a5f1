//! The telemetry server against real sockets, with short limits. The flood against the built
//! binary, with descriptors and RSS measured, is `tests/telemetry_flood.rs`.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use super::*;

const SHORT: ServerLimits = ServerLimits {
    header_read_timeout: Duration::from_millis(300),
    max_connection_age: Duration::from_secs(30),
    max_connections: 8,
    accept_error_pause: Duration::from_millis(50),
};

struct Server {
    addr: SocketAddr,
    telemetry: Telemetry,
    cancel: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(limits: ServerLimits) -> Server {
        let telemetry = Telemetry::new();
        let cancel = CancellationToken::new();
        let (addr, thread) = serve(
            "127.0.0.1:0".parse().unwrap(),
            limits,
            telemetry.clone(),
            cancel.clone(),
        )
        .unwrap();
        Server {
            addr,
            telemetry,
            cancel,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    }

    /// One request on a new connection; the whole answer (the server closes after it).
    fn request(&self, head: &str) -> String {
        let mut s = self.connect();
        s.write_all(head.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// Whether the server closed `s` (EOF or reset) within `within`.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = SystemTime::now() + within;
    let mut buf = [0u8; 1024];
    loop {
        let Ok(left) = deadline.duration_since(SystemTime::now()) else {
            return false;
        };
        s.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => return false,
            Err(_) => return true,
        }
    }
}

const GET_HEALTHZ: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn get_and_head_answer_and_other_methods_are_refused_with_405() {
    let server = Server::start(SHORT);
    assert!(server.request(GET_HEALTHZ).starts_with("HTTP/1.1 200 OK"));

    let head = server.request("HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.ends_with("\r\n\r\n"), "a HEAD answer has no body: {head:?}");

    for method in ["POST", "PUT", "DELETE", "OPTIONS", "TRACE"] {
        let out = server.request(&format!(
            "{method} /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert!(out.starts_with("HTTP/1.1 405 Method Not Allowed"), "{method}: {out}");
        assert!(out.to_ascii_lowercase().contains("\r\nallow: get, head\r\n"), "{out}");
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_head_timeout() {
    let server = Server::start(SHORT);
    let mut idle = server.connect();
    let mut half = server.connect();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "idle connection still open"
    );
    assert!(
        closed_within(&mut half, Duration::from_secs(5)),
        "half-sent connection still open"
    );
}

#[test]
fn a_kept_alive_connection_is_closed_when_idle() {
    let server = Server::start(SHORT);
    let mut s = server.connect();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    // The head timeout starts again after the answer: silence then closes the connection.
    assert!(
        closed_within(&mut s, Duration::from_secs(5)),
        "kept-alive connection never closed"
    );
}

#[test]
fn a_head_larger_than_the_buffer_is_refused() {
    let server = Server::start(SHORT);
    let mut s = server.connect();
    let mut head = b"GET /healthz HTTP/1.1\r\nX-Fill: ".to_vec();
    head.resize(MAX_BUF_BYTES * 4, b'a');
    // The server may close before it has read everything: a failed write is expected.
    let _ = s.write_all(&head);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.is_empty() || out.starts_with("HTTP/1.1 431"),
        "an oversized head must not be served: {out}"
    );
}

#[test]
fn a_flood_of_idle_connections_cannot_lock_out_a_probe() {
    let server = Server::start(SHORT);
    let mut flood: Vec<TcpStream> = (0..SHORT.max_connections * 10).map(|_| server.connect()).collect();
    for (i, s) in flood.iter_mut().enumerate() {
        if i % 2 == 0 {
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
        }
    }
    // The probe comes after the whole flood; the oldest connections make room for it.
    assert!(server.request(GET_HEALTHZ).starts_with("HTTP/1.1 200 OK"));
    let evicted = server.telemetry.get(Name::TelemetryConnectionsEvicted, &[]);
    assert!(
        evicted >= (flood.len() - SHORT.max_connections) as f64,
        "only {evicted} connections evicted"
    );
    // And every flood connection ends: evicted at once, or at the head timeout.
    for s in &mut flood {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "a flood connection stayed open"
        );
    }
}

#[test]
fn shutdown_closes_open_connections() {
    let limits = ServerLimits {
        header_read_timeout: Duration::from_mins(1),
        ..SHORT
    };
    let mut server = Server::start(limits);
    let mut idle = server.connect();
    server.cancel.cancel();
    server.thread.take().unwrap().join().unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(5)));
}
