//! A process of a cgroup tree, to reach the pod's network namespace.
//!
//! A pod's own cgroup holds no process: they live in its container cgroups, and every container
//! of a pod shares the sandbox's network namespace, so any of them will do. The kernel writes
//! `cgroup.procs` in the *reader's* PID namespace and leaves out processes it cannot see; an
//! agent without `hostPID` therefore finds nothing here and must map host PIDs to pods through
//! `<root>/proc/<pid>/cgroup` instead ([`crate::host::pids`]).

use std::path::Path;

use super::join;
use crate::host::{HostError, Root};

/// How far below `rel` to look: the pod cgroup, its containers, and one more level for runtimes
/// that nest (a CRI-O or crun `container` sub-cgroup).
const MAX_DEPTH: usize = 2;

pub(super) fn first_pid(root: &Root, dir: &Path, rel: &str) -> Result<Option<u32>, HostError> {
    first_pid_at(root, dir, rel.trim_matches('/'), 0)
}

fn first_pid_at(root: &Root, dir: &Path, rel: &str, depth: usize) -> Result<Option<u32>, HostError> {
    let file = join(dir, rel, "cgroup.procs");
    let path = root.path(&file);
    let text = root.read(&file)?;
    for line in text.lines() {
        let t = line.trim();
        if t.is_empty() {
            continue;
        }
        match t.parse::<u32>() {
            Ok(0) => {}
            Ok(pid) => return Ok(Some(pid)),
            Err(_) => return Err(HostError::parse(&path, format!("not a PID: {t:?}"))),
        }
    }
    if depth >= MAX_DEPTH {
        return Ok(None);
    }
    let Some(mut names) = root.subdirectories(join(dir, rel, ""))? else {
        return Ok(None);
    };
    names.sort_unstable();
    for name in names {
        let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
        match first_pid_at(root, dir, &child, depth + 1) {
            Ok(Some(pid)) => return Ok(Some(pid)),
            Ok(None) => {}
            // A container that stopped while we looked: try its siblings.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}
