//! The built binary's telemetry endpoint under the attacks of issue #9, measured from outside:
//! hundreds of idle and half-sent connections (descriptors and RSS stay bounded, `/healthz`
//! answers, every one is closed by the head timeout), and a descriptor limit so low that
//! `accept` fails with `EMFILE` (no spinning; the probe still gets through).

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use support::{free_port, kinsight, try_http_request, wait_until};

/// The agent's head timeout (`telemetry::ServerLimits::default`).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

struct Agent {
    child: Child,
    port: u16,
    _root: tempfile::TempDir,
}

impl Agent {
    fn start() -> Agent {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        write(&r.join("proc/cpuinfo"), "processor\t: 0\n");
        write(
            &r.join("proc/meminfo"),
            "MemTotal:        4194304 kB\nMemFree:          100 kB\n",
        );
        write(&r.join("proc/sys/kernel/hostname"), "fixture-node\n");
        write(&r.join("sys/fs/cgroup/cgroup.controllers"), "cpu io memory pids\n");
        write(&r.join("sys/fs/cgroup/cpu.stat"), "usage_usec 1000000\n");
        write(&r.join("sys/fs/cgroup/memory.stat"), "anon 1073741824\nfile 0\n");
        let port = free_port();
        let config = r.join("cwagentconfig.json");
        write(
            &config,
            &format!(
                r#"{{"agent":{{"metrics_collection_interval":10}},
                    "kinsight":{{"output":"stdout","metrics":{{"metadata_source":"none"}},"logs":{{"enabled":false}},
                                 "telemetry":{{"listen_address":"127.0.0.1:{port}"}}}}}}"#
            ),
        );
        let child = kinsight()
            .args(["run", "--config"])
            .arg(&config)
            .arg("--host-root")
            .arg(r)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = Agent {
            child,
            port,
            _root: root,
        };
        assert!(
            wait_until(Duration::from_secs(15), Duration::from_millis(50), || agent.healthz()),
            "/healthz never answered"
        );
        agent
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn healthz(&self) -> bool {
        matches!(try_http_request("GET", &self.url("/healthz"), &[], ""), Ok((200, _)))
    }

    fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).unwrap().count()
    }

    /// A `/proc/PID/status` field in KiB (`VmRSS`, `VmHWM`).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// utime + stime in clock ticks, fields 14 and 15 of `proc_pid_stat(5)`.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after_comm = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_comm.split(' ').collect();
        // after "pid (comm) " the state is field 3, so field N is at index N - 3
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    fn metric(&self, name: &str) -> f64 {
        let (_, text) = try_http_request("GET", &self.url("/metrics"), &[], "").unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// Whether the server has closed `s` (EOF or reset); `s` is non-blocking.
fn is_closed(mut s: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// This test process holds hundreds of sockets: raise its soft descriptor limit to the hard one.
fn raise_own_fd_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    )
    .unwrap();
}

#[test]
fn idle_and_half_sent_connections_stay_bounded_and_are_closed() {
    raise_own_fd_limit();
    let limits = kinsight::telemetry::ServerLimits::default();
    assert_eq!(limits.header_read_timeout, HEAD_TIMEOUT);
    let max = limits.max_connections;
    let agent = Agent::start();
    let (fds_before, rss_before) = (agent.open_fds(), agent.status_kib("VmRSS"));

    // 400 connections that send nothing, 200 that send 390 KB of a head that never ends.
    let mut flood: Vec<TcpStream> = (0..400).map(|_| agent.connect()).collect();
    let partial = {
        let mut h = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Fill: ".to_vec();
        h.resize(390 * 1024, b'a');
        h
    };
    for _ in 0..200 {
        let mut s = agent.connect();
        // as much as the socket takes; the server stops reading at its buffer size
        let _ = s.write(&partial);
        flood.push(s);
    }

    assert!(agent.healthz(), "/healthz must answer during the flood");
    let fds_during = agent.open_fds();
    let rss_peak = agent.status_kib("VmHWM");
    eprintln!(
        "flood of {}: descriptors {fds_before} -> {fds_during}, RSS {rss_before} KiB -> peak {rss_peak} KiB",
        flood.len()
    );
    assert!(
        fds_during <= fds_before + max + 8,
        "descriptors grew from {fds_before} to {fds_during}"
    );
    assert!(
        rss_peak <= rss_before + 32 * 1024,
        "RSS grew from {rss_before} KiB to a peak of {rss_peak} KiB"
    );

    // Every flood connection is closed: the oldest at once to admit newer ones, the rest at
    // the head timeout.
    assert!(
        wait_until(HEAD_TIMEOUT * 3, Duration::from_millis(100), || {
            flood.iter().all(is_closed)
        }),
        "{} flood connections still open after three head timeouts",
        flood.iter().filter(|s| !is_closed(s)).count()
    );
    assert!(
        wait_until(HEAD_TIMEOUT, Duration::from_millis(100), || agent.open_fds()
            <= fds_before + 2),
        "descriptors did not come back: {} (before the flood {fds_before})",
        agent.open_fds()
    );
    // The half-sent heads overflow the buffer and are refused at once; the idle ones are evicted.
    assert!(agent.metric("kinsight_telemetry_connections_evicted_total") >= (400 - max) as f64);
}

#[test]
fn out_of_descriptors_the_endpoint_pauses_instead_of_spinning_and_recovers() {
    raise_own_fd_limit();
    let agent = Agent::start();
    // A few descriptors more than the agent holds now: accept soon fails with EMFILE.
    let limit = (agent.open_fds() + 4) as u64;
    let pid = rustix::process::Pid::from_raw(agent.pid().cast_signed()).unwrap();
    rustix::process::prlimit(
        Some(pid),
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .unwrap();

    let idle: Vec<TcpStream> = (0..100).map(|_| agent.connect()).collect();
    let ticks_before = agent.cpu_ticks();
    // A measurement window, not a wait for a condition: a spinning accept loop burns the
    // whole window (USER_HZ is 100 on Linux, so two seconds are 200 ticks).
    std::thread::sleep(Duration::from_secs(2));
    let ticks = agent.cpu_ticks() - ticks_before;
    eprintln!("out of descriptors: {ticks} CPU ticks in 2 s");
    assert!(
        ticks < 20,
        "the agent used {ticks} ticks of CPU in 2 s while out of descriptors"
    );

    assert!(
        wait_until(Duration::from_secs(10), Duration::from_millis(100), || agent.healthz()),
        "/healthz never answered while the descriptor limit was reached"
    );
    assert!(agent.metric("kinsight_telemetry_accept_errors_total") > 0.0);
    assert!(
        wait_until(HEAD_TIMEOUT * 3, Duration::from_millis(100), || idle
            .iter()
            .all(is_closed)),
        "idle connections still open"
    );
}
