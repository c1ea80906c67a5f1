//! Writes the log throughput benchmark's node (`scripts/bench logs`): `FILES` containers with CRI
//! log files totalling `MIB` MiB below `ROOT/var/log/pods`, their `/var/log/containers` links, and
//! a pod list with their images (so records carry the Kubernetes metadata). Lines are 80–300
//! bytes, and one in 2,000 is a long line of 20–48 KiB that containerd cut into 16 KiB `P`
//! pieces. Prints the number of records the agent must ship.
//!
//! `log_files ROOT MIB FILES`

#![allow(clippy::print_stdout, reason = "the record count on stdout is this tool's output")]

use std::fmt::Write as _;
use std::io::Write as _;

/// containerd's default `max_container_log_line_size`.
const PIECE: usize = 16 * 1024;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let root = std::path::PathBuf::from(&args[1]);
    let total: usize = args[2].parse::<usize>().unwrap() << 20;
    let files: usize = args[3].parse().unwrap();
    let per_file = total / files;
    let mut records = 0u64;
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut pods = Vec::new();
    std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
    for f in 0..files {
        let (ns, pod, uid, c) = (
            "bench",
            format!("app-{f}-7d4b9c8f5-x{f:04}"),
            format!("7e570000-0000-0000-0000-{f:012}"),
            "app",
        );
        let id = format!("{:064x}", f + 1);
        let dir = root.join(format!("var/log/pods/{ns}_{pod}_{uid}/{c}"));
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(
            format!("/var/log/pods/{ns}_{pod}_{uid}/{c}/0.log"),
            root.join(format!("var/log/containers/{pod}_{ns}_{c}-{id}.log")),
        )
        .unwrap();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(dir.join("0.log")).unwrap());
        let mut written = 0;
        let mut n = 0u64;
        let mut line = String::new();
        while written < per_file {
            n += 1;
            let stream = if n.is_multiple_of(7) { "stderr" } else { "stdout" };
            let ts = format!(
                "2026-12-06T10:{:02}:{:02}.{:09}Z",
                (n / 60_000) % 60,
                (n / 1000) % 60,
                n % 1_000_000_000
            );
            if n.is_multiple_of(2000) {
                // A long line, cut into pieces by the runtime.
                let len = 20 * 1024 + usize::try_from(next() % (28 * 1024)).unwrap();
                let body: String = std::iter::repeat_n('L', len).collect();
                let mut rest = body.as_str();
                while rest.len() > PIECE {
                    let (piece, tail) = rest.split_at(PIECE);
                    line.clear();
                    let _ = writeln!(line, "{ts} {stream} P {piece}");
                    out.write_all(line.as_bytes()).unwrap();
                    written += line.len();
                    rest = tail;
                }
                line.clear();
                let _ = writeln!(line, "{ts} {stream} F {rest}");
            } else {
                let len = 80 + usize::try_from(next() % 221).unwrap();
                let prefix = format!("{ts} {stream} F ");
                let fill = len.saturating_sub(prefix.len() + 1 + 20);
                line.clear();
                let _ = write!(line, "{prefix}level=info req={n:012} msg=");
                for i in 0..fill {
                    line.push(char::from(b'a' + u8::try_from((n + i as u64) % 26).unwrap()));
                }
                line.push('\n');
            }
            out.write_all(line.as_bytes()).unwrap();
            written += line.len();
            records += 1;
        }
        out.flush().unwrap();
        pods.push(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": pod, "namespace": ns, "uid": uid, "labels": {"app": "bench"}},
            "spec": {"nodeName": "bench-node", "containers": [{"name": c, "image": "registry.example/app:1.0"}]},
            "status": {"phase": "Running", "containerStatuses": [{
                "name": c, "containerID": format!("containerd://{id}"), "restartCount": 0,
                "image": "registry.example/app:1.0",
                "imageID": "registry.example/app@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "state": {"running": {}}}]}
        }));
    }
    let list = serde_json::json!({"apiVersion": "v1", "kind": "PodList", "items": pods});
    std::fs::write(root.join("podlist.json"), list.to_string()).unwrap();
    println!("{records}");
}
