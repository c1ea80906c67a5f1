//! A tiny HTTP/1.1 client over `std::net::TcpStream`: one request per connection, for talking to
//! local test servers without an HTTP client crate.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request and returns the status and the body (chunked encoding undone, invalid UTF-8
/// replaced). Panics on any failure; see [`try_http_request`] for polling.
///
/// `url` is `http://HOST:PORT/PATH?QUERY`. `Host`, `Content-Length` and `Connection: close` are
/// added unless `headers` has them.
///
/// ```ignore
/// let (status, body) = http_request("POST", &moto.url("/"), &[("X-Amz-Target", "…")], "{}");
/// ```
pub fn http_request(method: &str, url: &str, headers: &[(&str, &str)], body: impl AsRef<[u8]>) -> (u16, String) {
    try_http_request(method, url, headers, body).unwrap_or_else(|e| panic!("HTTP {method} {url} failed: {e}"))
}

/// [`http_request`] that returns I/O errors (connection refused, timeouts, a malformed response)
/// instead of panicking.
pub fn try_http_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: impl AsRef<[u8]>,
) -> io::Result<(u16, String)> {
    request(method, url, headers, body.as_ref(), IO_TIMEOUT)
}

/// The request itself; `io_timeout` bounds each read and write (a readiness probe keeps it short,
/// so that a port held by a process that never answers cannot stall it).
pub(super) fn request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    io_timeout: Duration,
) -> io::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| invalid(format!("only http:// URLs are supported: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addr = authority
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid(format!("{authority} resolves to no address")))?;

    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    if !has("host") {
        let _ = write!(head, "Host: {authority}\r\n");
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    if !has("content-length") {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");

    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT.min(io_timeout))?;
    stream.set_read_timeout(Some(io_timeout))?;
    stream.set_write_timeout(Some(io_timeout))?;
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// Splits a whole `Connection: close` response into status and body.
fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let end = find(raw, b"\r\n\r\n").ok_or_else(|| invalid(format!("no end of headers in {} bytes", raw.len())))?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| invalid(format!("bad status line: {status_line:?}")))?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &raw[end + 4..];
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest[..length.unwrap_or(rest.len()).min(rest.len())].to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Undoes `Transfer-Encoding: chunked`.
fn dechunk(mut rest: &[u8]) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let eol = find(rest, b"\r\n").ok_or_else(|| invalid("chunk size line not terminated"))?;
        let size_field = String::from_utf8_lossy(&rest[..eol]);
        let size_hex = size_field.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16).map_err(|_| invalid(format!("bad chunk size {size_hex:?}")))?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or_else(|| invalid("chunk shorter than its size"))?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}
