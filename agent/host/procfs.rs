//! `/proc` readers: node capacity and identity.

use super::{HostError, Root};

/// What the node offers, read once at start from the host's `/proc` (as the Container Insights
/// receiver's `internal/host/nodeCapacity.go` does): never from the agent's own cgroup limits
/// or CPU affinity, which would make a limited agent see a smaller node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeCapacity {
    /// Logical CPUs: the `processor` entries of `/proc/cpuinfo`, as gopsutil counts them.
    pub cpus: u32,
    /// `MemTotal` of `/proc/meminfo` in bytes (the file says `kB`, which is KiB).
    pub memory_bytes: u64,
}

pub fn read_capacity(root: &Root) -> Result<NodeCapacity, HostError> {
    Ok(NodeCapacity {
        cpus: read_cpu_count(root)?,
        memory_bytes: read_mem_total(root)?,
    })
}

pub fn read_cpu_count(root: &Root) -> Result<u32, HostError> {
    const FILE: &str = "/proc/cpuinfo";
    let text = root.read(FILE)?;
    let n = text
        .lines()
        .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
        .count();
    if n == 0 {
        return Err(HostError::parse(&root.path(FILE), "no \"processor\" entries"));
    }
    u32::try_from(n).map_err(|_| HostError::parse(&root.path(FILE), "absurd processor count"))
}

pub fn read_mem_total(root: &Root) -> Result<u64, HostError> {
    const FILE: &str = "/proc/meminfo";
    let text = root.read(FILE)?;
    meminfo_field_bytes(&text, "MemTotal")
        .ok_or_else(|| HostError::parse(&root.path(FILE), "no valid \"MemTotal: <n> kB\" line"))
}

/// A `/proc/meminfo` field in bytes. Lines are `Name:   123456 kB`.
pub(super) fn meminfo_field_bytes(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.split(':').next() == Some(name))?;
    let mut parts = line.split(':').nth(1)?.split_whitespace();
    let value: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") => value.checked_mul(1024),
        None => Some(value),
        Some(_) => None,
    }
}

/// The host's name from `/proc/sys/kernel/hostname` (the host's UTS namespace only when the
/// agent runs with `hostNetwork`/`hostPID`-like views; the DaemonSet passes `HOST_NAME`, which
/// wins). Used for the node name of a local run.
pub fn read_hostname(root: &Root) -> Result<String, HostError> {
    const FILE: &str = "/proc/sys/kernel/hostname";
    let text = root.read(FILE)?;
    let name = text.trim();
    if name.is_empty() {
        return Err(HostError::parse(&root.path(FILE), "empty host name"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (p, c) in files {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, c).unwrap();
        }
        dir
    }

    #[test]
    fn capacity_from_cpuinfo_and_meminfo() {
        let d = tree(&[
            (
                "proc/cpuinfo",
                "processor\t: 0\nmodel name\t: x\n\nprocessor\t: 1\nmodel name\t: x\n",
            ),
            ("proc/meminfo", "MemTotal:        8029876 kB\nMemFree:  1 kB\n"),
        ]);
        let cap = read_capacity(&Root::new(d.path())).unwrap();
        assert_eq!(
            cap,
            NodeCapacity {
                cpus: 2,
                memory_bytes: 8_029_876 * 1024
            }
        );
    }

    #[test]
    fn odd_files_are_errors_not_panics() {
        let d = tree(&[("proc/cpuinfo", ""), ("proc/meminfo", "MemTotal: lots kB\n")]);
        let r = Root::new(d.path());
        assert_eq!(read_cpu_count(&r).unwrap_err().kind(), "parse");
        assert_eq!(read_mem_total(&r).unwrap_err().kind(), "parse");
        assert_eq!(
            meminfo_field_bytes("MemTotal: 18446744073709551615 kB", "MemTotal"),
            None
        );
    }

    #[test]
    fn hostname_is_trimmed() {
        let d = tree(&[("proc/sys/kernel/hostname", "ip-10-0-1-23\n")]);
        assert_eq!(read_hostname(&Root::new(d.path())).unwrap(), "ip-10-0-1-23");
    }
}
