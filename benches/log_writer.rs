//! The live log benchmark's writer (`scripts/bench logs-live`): `FILES` containers below
//! `ROOT/var/log/pods`, written at `KB_PER_S` KB/s in total for `SECONDS` seconds, in 100 ms ticks,
//! with CRI lines of 80–300 bytes stamped with the time they are written. Prints the number of
//! lines written.
//!
//! `log_writer ROOT FILES KB_PER_S SECONDS`

#![allow(clippy::print_stdout, reason = "the line count on stdout is this tool's output")]

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

fn stamp(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_nanos()
    )
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::PathBuf::from(&args[1]);
    let files: usize = args[2].parse().unwrap();
    let kb_per_s: usize = args[3].parse().unwrap();
    let seconds: u64 = args[4].parse().unwrap();
    std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
    let mut outs = Vec::new();
    for f in 0..files {
        let (ns, pod, uid, c) = (
            "live",
            format!("live-{f}"),
            format!("7e570000-0000-0000-0001-{f:012}"),
            "app",
        );
        let id = format!("{:064x}", f + 1000);
        let dir = root.join(format!("var/log/pods/{ns}_{pod}_{uid}/{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        let _ = std::os::unix::fs::symlink(
            format!("/var/log/pods/{ns}_{pod}_{uid}/{c}/0.log"),
            root.join(format!("var/log/containers/{pod}_{ns}_{c}-{id}.log")),
        );
        outs.push(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("0.log"))
                .unwrap(),
        );
    }
    let per_tick = kb_per_s * 1024 / 10;
    let start = SystemTime::now();
    let mut lines = 0u64;
    let mut n = 0usize;
    let mut buf = String::new();
    for tick in 0..seconds * 10 {
        let due = start + Duration::from_millis(tick * 100);
        if let Ok(wait) = due.duration_since(SystemTime::now()) {
            std::thread::sleep(wait);
        }
        let mut written = 0;
        while written < per_tick {
            let f = n % files;
            n += 1;
            buf.clear();
            let len = 80 + (n * 7919) % 221;
            let prefix = format!("{} stdout F ", stamp(SystemTime::now()));
            let _ = write!(buf, "{prefix}req={n:010} ");
            while buf.len() < len.max(prefix.len() + 16) - 1 {
                buf.push(char::from(b'a' + u8::try_from(buf.len() % 26).unwrap_or(0)));
            }
            buf.push('\n');
            outs[f].write_all(buf.as_bytes()).unwrap();
            written += buf.len();
            lines += 1;
        }
    }
    println!("{lines}");
}
