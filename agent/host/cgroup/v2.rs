//! cgroup v2 readers: `cpu.stat`, `memory.current`, `memory.stat`.

use super::parse::flat_keyed;
use super::{At, Controller, CpuStats, MemoryStats};
use crate::host::{HostError, Root};

pub fn read_cpu(root: &Root, at: &At<'_>) -> Result<CpuStats, HostError> {
    at.read(root, Controller::Cpu, "cpu.stat", |text, path| {
        let mut v = [None; 3];
        flat_keyed(path, text, &["usage_usec", "user_usec", "system_usec"], &mut v)?;
        let ns = |x: Option<u64>| x.and_then(|us| us.checked_mul(1000));
        let usage_ns = ns(v[0]).ok_or_else(|| HostError::parse(path, "no usage_usec"))?;
        Ok(CpuStats {
            usage_ns,
            user_ns: ns(v[1]),
            system_ns: ns(v[2]),
        })
    })
}

const STAT_KEYS: [&str; 6] = ["inactive_file", "file", "anon", "file_mapped", "pgfault", "pgmajfault"];

/// `full`: also the optional files (`memory.peak`, `memory.swap.current`), which only the
/// container-level and performance-event fields use.
pub fn read_memory(root: &Root, at: &At<'_>, files: super::V2Files, full: bool) -> Result<MemoryStats, HostError> {
    let mut v = [None; STAT_KEYS.len()];
    at.read(root, Controller::Memory, "memory.stat", |text, path| {
        flat_keyed(path, text, &STAT_KEYS, &mut v)
    })?;
    let (file, anon) = (v[1].unwrap_or(0), v[2].unwrap_or(0));
    let is_root = at.is_root();
    // The v2 root has no memory.current: usage = anon + file from the root memory.stat, as
    // opencontainers/cgroups does (`fs2/memory.go`).
    let usage = if is_root {
        anon.saturating_add(file)
    } else {
        at.read_u64(root, Controller::Memory, "memory.current")?
    };
    let optional = |f: &'static str| at.read_u64(root, Controller::Memory, f).unwrap_or(0);
    Ok(MemoryStats {
        usage,
        inactive_file: v[0].unwrap_or(0),
        cache: file,
        rss: anon,
        swap: if is_root || !full || !files.memory_swap_current {
            0
        } else {
            optional("memory.swap.current")
        },
        mapped_file: v[3].unwrap_or(0),
        pgfault: v[4].unwrap_or(0),
        pgmajfault: v[5].unwrap_or(0),
        max_usage: if is_root || !full || !files.memory_peak {
            0
        } else {
            optional("memory.peak")
        },
        failcnt: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_usage_is_anon_plus_file() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("sys/fs/cgroup");
        std::fs::create_dir_all(&cg).unwrap();
        std::fs::write(
            cg.join("cpu.stat"),
            "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\nnr_periods 0\n",
        )
        .unwrap();
        std::fs::write(
            cg.join("memory.stat"),
            "anon 1000\nfile 3000\ninactive_file 1200\npgfault 7\n",
        )
        .unwrap();
        let r = Root::new(d.path());
        let at = At::Rel(super::super::Hierarchy::V2, "");
        let cpu = read_cpu(&r, &at).unwrap();
        assert_eq!(
            cpu,
            CpuStats {
                usage_ns: 2_500_000,
                user_ns: Some(2_000_000),
                system_ns: Some(500_000)
            }
        );
        let m = read_memory(&r, &at, super::super::V2Files::ALL, true).unwrap();
        assert_eq!((m.usage, m.inactive_file, m.pgfault, m.failcnt), (4000, 1200, 7, 0));
        std::fs::write(cg.join("cpu.stat"), "user_usec 1\n").unwrap();
        assert_eq!(read_cpu(&r, &at).unwrap_err().kind(), "parse");
    }
}
