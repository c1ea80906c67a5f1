//! Real cgroups for the tests that build kubelet-like trees as root: who may,
//! how to start a workload inside a cgroup, and how to undo it all.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_until;

/// Whether this process runs as root (effective UID 0): creating cgroups needs it.
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        .unwrap_or(false)
}

/// Undoes what a test did, also when an assertion fails: runs `before` hooks (containerd
/// deletions), kills its child processes, removes the cgroup directories it created (children
/// first, waiting for the kernel to release a killed task's cgroup), restores the `cpu.shares` it
/// raised on directories it did not create, and removes shared parents that ended up empty.
#[derive(Default)]
pub struct Cleanup {
    pub before: Vec<Box<dyn FnOnce()>>,
    pub children: Vec<Child>,
    /// Directories this test created, in creation order (parents first).
    pub created: Vec<PathBuf>,
    /// Parents that may be shared with another test (`kubepods`, …): removed if empty.
    pub shared: Vec<PathBuf>,
    /// `(cpu.shares file, old value)` to restore where the directory outlives the test.
    pub shares: Vec<(PathBuf, String)>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in self.before.drain(..) {
            f();
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for d in self.created.iter().rev() {
            // A killed task leaves its cgroup asynchronously: EBUSY until then.
            let gone = wait_until(
                Duration::from_secs(10),
                Duration::from_millis(20),
                || match std::fs::remove_dir(d) {
                    Ok(()) => true,
                    Err(e) => e.kind() == std::io::ErrorKind::NotFound,
                },
            );
            if !gone {
                eprintln!("warning: could not remove {}", d.display());
            }
        }
        for (file, old) in &self.shares {
            if file.exists() {
                let _ = std::fs::write(file, old);
            }
        }
        let mut shared = self.shared.clone();
        shared.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for d in shared {
            let _ = std::fs::remove_dir(d); // still used by someone else: EBUSY, left alone
        }
    }
}

/// Starts `sh -c SCRIPT` that first writes its own PID into each `cgroup.procs`, then runs
/// `then`, which must print one line when it is ready. Returns its PID after that line; the
/// process is killed by `cleanup`.
pub fn start_in(cleanup: &mut Cleanup, procs: &[PathBuf], then: &str) -> u32 {
    let script = format!("for f in \"$@\"; do echo $$ > \"$f\" || exit 1; done; {then}");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .args(procs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let pid = child.id();
    let stdout = child.stdout.take().unwrap();
    cleanup.children.push(child);
    let mut line = String::new();
    // Returns at the ready line, or at EOF if the workload failed (then the assert says so).
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(
        !line.is_empty(),
        "workload {then:?} exited before it was ready (is python3 installed?)"
    );
    pid
}
