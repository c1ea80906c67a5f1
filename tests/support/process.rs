//! Running the built `kinsight` binary and reading its `--output stdout`.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

use super::Deadline;

/// How long [`run`] lets a process take before killing it.
pub const RUN_TIMEOUT: Duration = Duration::from_mins(1);
const RUN_POLL: Duration = Duration::from_millis(20);

/// The `kinsight` binary cargo built for this test run.
pub fn kinsight_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kinsight"))
}

/// A `Command` for the binary with a clean environment: only `PATH=/usr/bin:/bin`,
/// `HOME=/nonexistent` (so no `~/.aws` leaks in) and `RUST_BACKTRACE=1`; stdin is empty. Nothing
/// AWS-related comes from the developer's environment: a test adds exactly the
/// variables it means, such as `AWS_REGION` and `AWS_ENDPOINT_URL_CLOUDWATCH_LOGS`.
pub fn kinsight() -> Command {
    let mut cmd = Command::new(kinsight_bin());
    cmd.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null());
    cmd
}

/// What a finished process did.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The exit code; `None` when a signal ended the process.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing stdout and stderr, unless the exit code is `code`
    /// (0 ok, 64 usage, 78 config error, 1 runtime failure).
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code(),
            Some(code),
            "expected exit code {code}, got {}\n--- stdout:\n{}\n--- stderr:\n{}",
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }

    /// stdout as JSON lines ([`json_lines`]).
    pub fn json_lines(&self) -> Vec<Value> {
        json_lines(&self.stdout)
    }
}

/// Runs `cmd` to the end with [`RUN_TIMEOUT`], capturing stdout and stderr.
///
/// ```ignore
/// let out = run(kinsight().args(["once", "--config", cfg, "--output", "stdout"]));
/// let lines = out.assert_code(0).json_lines();
/// ```
pub fn run(cmd: &mut Command) -> Run {
    run_with_timeout(cmd, RUN_TIMEOUT)
}

/// [`run`] with its own timeout. A process still running at the deadline is killed, and the test
/// panics with its stderr.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Run {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    // read both pipes while waiting, so that a chatty process cannot block on a full pipe
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Deadline::after(timeout);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if deadline.passed() => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = stderr.join().unwrap_or_default();
                panic!("{cmd:?} still ran after {timeout:?}; killed it. Its stderr:\n{stderr}");
            }
            Ok(None) => thread::sleep(RUN_POLL),
            Err(e) => panic!("waiting for {cmd:?}: {e}"),
        }
    };
    Run {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Every non-empty line of `stdout` as JSON (the `stdout` output writes one item per line).
/// Panics naming the first line that is not JSON, by its 1-based number.
pub fn json_lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("stdout line {} is not JSON ({e}): {line}", i + 1))
        })
        .collect()
}

/// The lines whose `kind` is `kind`: `metric`, `emf` or `log`.
pub fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

/// The metric datums (`"kind":"metric"`).
pub fn metrics(lines: &[Value]) -> Vec<&Value> {
    of_kind(lines, "metric")
}

/// The metric datums named `name`, for example `node_cpu_utilization`.
pub fn find_metric<'a>(lines: &'a [Value], name: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|l| l["kind"] == "metric" && l["metric_name"] == name)
        .collect()
}
