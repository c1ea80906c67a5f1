//! cgroup v1 readers: `cpuacct.usage`, `cpuacct.stat`, `memory.*`.

use super::parse::flat_keyed;
use super::{At, Controller, CpuStats, MemoryStats};
use crate::host::{HostError, Root};

/// `cpuacct.stat` counts in USER_HZ ticks, which is 100 on every Linux architecture the
/// kernel exports to user space (`USER_HZ` in include/asm-generic/param.h): 1 tick = 10 ms.
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

/// `full`: also `cpuacct.stat` (user and system time), which only the container-level and
/// performance-event fields use.
pub fn read_cpu(root: &Root, at: &At<'_>, full: bool) -> Result<CpuStats, HostError> {
    let usage_ns = at.read_u64(root, Controller::Cpu, "cpuacct.usage")?;
    let mut out = [None; 2];
    // `cpuacct.stat` is optional detail: a missing file leaves user/system unknown.
    let stat = if full {
        at.read(root, Controller::Cpu, "cpuacct.stat", |text, path| {
            flat_keyed(path, text, &["user", "system"], &mut out)
        })
    } else {
        Ok(())
    };
    match stat {
        Err(e @ (HostError::Parse { .. } | HostError::Refused { .. } | HostError::TooLarge { .. })) => return Err(e),
        Ok(()) | Err(HostError::Read { .. }) => {}
    }
    let ticks = |v: Option<u64>| v.and_then(|t| t.checked_mul(NS_PER_USER_HZ_TICK));
    Ok(CpuStats {
        usage_ns,
        user_ns: ticks(out[0]),
        system_ns: ticks(out[1]),
    })
}

/// Hierarchical (`total_*`) keys, so that a pod cgroup includes its containers.
const STAT_KEYS: [&str; 7] = [
    "total_inactive_file",
    "total_cache",
    "total_rss",
    "total_swap",
    "total_mapped_file",
    "total_pgfault",
    "total_pgmajfault",
];

/// `full`: also `memory.max_usage_in_bytes` and `memory.failcnt`, which only the
/// container-level and performance-event fields use.
pub fn read_memory(root: &Root, at: &At<'_>, full: bool) -> Result<MemoryStats, HostError> {
    let usage = at.read_u64(root, Controller::Memory, "memory.usage_in_bytes")?;
    let mut v = [None; STAT_KEYS.len()];
    at.read(root, Controller::Memory, "memory.stat", |text, path| {
        flat_keyed(path, text, &STAT_KEYS, &mut v)
    })?;
    let optional = |file: &'static str| {
        if full {
            at.read_u64(root, Controller::Memory, file).unwrap_or(0)
        } else {
            0
        }
    };
    Ok(MemoryStats {
        usage,
        inactive_file: v[0].unwrap_or(0),
        cache: v[1].unwrap_or(0),
        rss: v[2].unwrap_or(0),
        swap: v[3].unwrap_or(0),
        mapped_file: v[4].unwrap_or(0),
        pgfault: v[5].unwrap_or(0),
        pgmajfault: v[6].unwrap_or(0),
        max_usage: optional("memory.max_usage_in_bytes"),
        failcnt: optional("memory.failcnt"),
    })
}
