//! A fault-injecting HTTP proxy in front of a local AWS server (moto): it can be taken down
//! (connections refused: the listener closes) and brought back on the same port, and it can
//! answer a share of requests with CloudWatch Logs' throttling error instead of forwarding them.
//!
//! One request per connection: the request is read whole (headers and `Content-Length` body),
//! forwarded with `Connection: close`, and the upstream answer is relayed until upstream closes,
//! with `Connection: close` so the client opens a new connection for the next request.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The body CloudWatch Logs sends when throttling (`ThrottlingException`, HTTP 400).
const THROTTLED: &str = "{\"__type\":\"ThrottlingException\",\"message\":\"Rate exceeded\"}";

#[derive(Debug, Default)]
struct Shared {
    /// Percent of requests answered with throttling (0–100).
    throttle_percent: AtomicU64,
    requests: AtomicUsize,
    throttled: AtomicUsize,
    stop: AtomicBool,
}

/// See the module doc. Stops (and frees its port) on drop.
#[derive(Debug)]
pub struct Chaos {
    pub addr: SocketAddr,
    upstream: SocketAddr,
    shared: Arc<Shared>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Chaos {
    /// A proxy on a free port of 127.0.0.1 in front of `upstream`.
    pub fn start(upstream: SocketAddr) -> Chaos {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let c = Chaos {
            addr,
            upstream,
            shared: Arc::new(Shared::default()),
            listener: Mutex::new(None),
        };
        c.serve(listener);
        c
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let (shared, upstream) = (self.shared.clone(), self.upstream);
        shared.stop.store(false, Ordering::SeqCst);
        let h = std::thread::spawn(move || {
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let shared = shared.clone();
                        std::thread::spawn(move || {
                            let _ = relay(conn, upstream, &shared);
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            // Dropping the listener closes the port: new connections are refused.
        });
        *self.listener.lock().unwrap() = Some(h);
    }

    /// Closes the port: connections are refused until [`Chaos::up`].
    pub fn down(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.listener.lock().unwrap().take() {
            let _ = h.join();
        }
    }

    /// Opens the same port again.
    pub fn up(&self) {
        let listener = TcpListener::bind(self.addr).expect("the proxy's port was taken while it was down");
        self.serve(listener);
    }

    /// Answers `percent` % of requests (spread evenly) with `ThrottlingException`.
    pub fn throttle(&self, percent: u64) {
        self.shared.throttle_percent.store(percent.min(100), Ordering::SeqCst);
    }

    /// Requests seen, and how many of them were throttled.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.shared.requests.load(Ordering::SeqCst),
            self.shared.throttled.load(Ordering::SeqCst),
        )
    }
}

impl Drop for Chaos {
    fn drop(&mut self) {
        self.down();
    }
}

/// Reads one HTTP request: the head (up to the blank line) and `Content-Length` bytes of body.
fn read_request(conn: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let head_end = loop {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    // Ask upstream to close after its answer, so that reading to EOF ends the response.
    let head_text = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut out: Vec<u8> = head_text
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:") && !l.is_empty())
        .flat_map(|l| format!("{l}\r\n").into_bytes())
        .collect();
    out.extend_from_slice(b"Connection: close\r\n\r\n");
    out.extend_from_slice(&buf[head_end..]);
    Ok(out)
}

fn relay(mut conn: TcpStream, upstream: SocketAddr, shared: &Shared) -> std::io::Result<()> {
    conn.set_nonblocking(false)?;
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let request = read_request(&mut conn)?;
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) as u64;
    let percent = shared.throttle_percent.load(Ordering::SeqCst);
    // Evenly spread: request n is throttled when the running share would stay at or below p%.
    if percent > 0 && (n * percent / 100) != ((n + 1) * percent / 100) {
        shared.throttled.fetch_add(1, Ordering::SeqCst);
        let resp = format!(
            "HTTP/1.1 400 Bad Request\r\nContent-Type: application/x-amz-json-1.1\r\n\
             x-amzn-RequestId: chaos-{n}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{THROTTLED}",
            THROTTLED.len()
        );
        conn.write_all(resp.as_bytes())?;
        return Ok(());
    }
    let mut up = TcpStream::connect(upstream)?;
    up.write_all(&request)?;
    let mut response = Vec::new();
    up.read_to_end(&mut response)?;
    // Say that this connection closes, so the client does not reuse it.
    if let Some(i) = response.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&response[..i]).to_ascii_lowercase();
        if !head.contains("\r\nconnection:") {
            response.splice(i..i, b"\r\nConnection: close".iter().copied());
        }
    }
    conn.write_all(&response)?;
    Ok(())
}
