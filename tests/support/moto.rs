//! A `moto_server` per test: STS and `CloudWatch Logs` on 127.0.0.1.

use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use super::http::request;
use super::{Deadline, http_request, require_env};

/// How long `moto_server` may take to answer `/moto-api/` (it usually takes about 0.5 s).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
const READY_POLL: Duration = Duration::from_millis(50);
/// One readiness probe: `/moto-api/` answers in milliseconds once moto is up.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Attempts at a free port: another test may take the port between probing and moto binding it.
const PORT_ATTEMPTS: u32 = 3;

/// An `Authorization` header that looks like `SigV4` for `CloudWatch Logs` in `us-east-1`. moto does not
/// check signatures by default, but takes the region from the credential scope.
pub const FAKE_SIGV4_AUTHORIZATION: &str = "AWS4-HMAC-SHA256 \
     Credential=AKIAIOSFODNN7EXAMPLE/20261128/us-east-1/logs/aws4_request, \
     SignedHeaders=host, Signature=0";

/// A `moto_server` of one test's own, on a free port of 127.0.0.1, killed (and waited for) on
/// drop. Its state lives in the process, so tests need no cleanup between each other; within a
/// test, [`Moto::reset`] clears it. Everything lives in account `123456789012`.
///
/// ```ignore
/// let Some(moto) = Moto::start() else { return };   // skips without KINSIGHT_TEST_MOTO_SERVER
/// let out = run(kinsight().env("AWS_ENDPOINT_URL_CLOUDWATCH_LOGS", &moto.endpoint) …);
/// ```
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL_*`.
    pub endpoint: String,
    addr: SocketAddr,
    child: Child,
    log_path: PathBuf,
    /// Holds the log; removed after `Drop::drop` has stopped the server.
    _dir: TempDir,
}

impl Moto {
    /// Starts `$KINSIGHT_TEST_MOTO_SERVER` and waits until it answers. `None` (after one line on
    /// stderr) when the variable is not set, which fails under `CI=true` ([`require_env`]).
    /// Panics, with the end of moto's log, when it does not come up.
    pub fn start() -> Option<Moto> {
        Self::start_with(&[])
    }

    /// [`Moto::start`] with extra environment variables for `moto_server`, for example
    /// `("MOTO_ENABLE_RECORDING", "True")` or `("INITIAL_NO_AUTH_ACTION_COUNT", "3")`.
    /// Nothing else from the test's environment reaches it.
    pub fn start_with(env: &[(&str, &str)]) -> Option<Moto> {
        let server = require_env("KINSIGHT_TEST_MOTO_SERVER")?;
        let dir = tempfile::Builder::new()
            .prefix("kinsight-moto.")
            .tempdir()
            .expect("create a temporary directory for moto's log");
        for attempt in 1..=PORT_ATTEMPTS {
            let port = free_port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log_path = dir.path().join(format!("moto-{port}.log"));
            let log = File::create(&log_path).expect("create moto's log file");
            let mut child = Command::new(&server)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.path())
                .env("PYTHONUNBUFFERED", "1")
                .envs(env.iter().copied())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("duplicate moto's log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
            match wait_ready(&mut child, addr) {
                Ok(()) => {
                    return Some(Moto {
                        endpoint: format!("http://{addr}"),
                        addr,
                        child,
                        log_path,
                        _dir: dir,
                    });
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = tail(&fs::read_to_string(&log_path).unwrap_or_default(), 40);
                    match why {
                        // lost the port to someone else between probing and binding: take another
                        NotReady::Exited(_) if attempt < PORT_ATTEMPTS && log.contains("in use") => {}
                        NotReady::Exited(status) => panic!("{server} exited at start ({status}); its log ends:\n{log}"),
                        NotReady::NotUp => panic!(
                            "moto_server on {addr} did not answer /moto-api/ within \
                             {READY_TIMEOUT:?}; its log ends:\n{log}"
                        ),
                    }
                }
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `endpoint` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// The listening address, 127.0.0.1:PORT.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Clears all of moto's state (`POST /moto-api/reset`).
    pub fn reset(&self) {
        let (status, body) = http_request("POST", &self.url("/moto-api/reset"), &[], "");
        assert_eq!(status, 200, "moto reset: {body}");
    }

    /// `GET path` as JSON, for example `/moto-api/data.json` (the whole backend state).
    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = http_request("GET", &self.url(path), &[], "");
        assert_eq!(status, 200, "GET {path} from moto: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path} from moto is not JSON ({e}): {body}"))
    }

    /// One `CloudWatch Logs` call (`awsJson1.1`, `X-Amz-Target: Logs_20140328.ACTION`) with a fake
    /// signature: for setting up and reading back without an SDK. Returns the status and the JSON
    /// body (`Null` when empty); errors carry `__type`, for example
    /// `ResourceAlreadyExistsException`.
    pub fn logs_call(&self, action: &str, body: &Value) -> (u16, Value) {
        let target = format!("Logs_20140328.{action}");
        let (status, text) = http_request(
            "POST",
            &self.url("/"),
            &[
                ("X-Amz-Target", &target),
                ("Content-Type", "application/x-amz-json-1.1"),
                ("Authorization", FAKE_SIGV4_AUTHORIZATION),
            ],
            body.to_string(),
        );
        let json = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{action} answer is not JSON ({e}): {text}"))
        };
        (status, json)
    }

    /// Everything moto has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The last `lines` lines of moto's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log(), lines)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why `moto_server` is not ready.
enum NotReady {
    /// The process exited.
    Exited(ExitStatus),
    /// Still no answer at the deadline.
    NotUp,
}

/// Polls `GET /moto-api/` until it answers 200, watching for the process to exit.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), NotReady> {
    let deadline = Deadline::after(READY_TIMEOUT);
    let url = format!("http://{addr}/moto-api/");
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(NotReady::Exited(status));
        }
        if let Ok((200, _)) = request("GET", &url, &[], b"", PROBE_TIMEOUT) {
            return Ok(());
        }
        if deadline.passed() {
            return Err(NotReady::NotUp);
        }
        thread::sleep(READY_POLL);
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A port that was free a moment ago: bind port 0, read the port, close.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}
