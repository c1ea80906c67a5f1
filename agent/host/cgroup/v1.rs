//! cgroup v1 readers: `cpuacct.usage`, `cpuacct.stat`, `memory.*`.

use super::parse::flat_keyed;
use super::{CpuStats, MemoryStats, V1Layout, join};
use crate::host::{HostError, Root};

/// `cpuacct.stat` counts in USER_HZ ticks, which is 100 on every Linux architecture the
/// kernel exports to user space (`USER_HZ` in include/asm-generic/param.h): 1 tick = 10 ms.
const NS_PER_USER_HZ_TICK: u64 = 10_000_000;

pub fn read_cpu(root: &Root, l: &V1Layout, rel: &str) -> Result<CpuStats, HostError> {
    let usage_ns = root.read_u64(join(&l.cpuacct, rel, "cpuacct.usage"))?;
    let stat_path = root.path(join(&l.cpuacct, rel, "cpuacct.stat"));
    let mut out = [None; 2];
    // `cpuacct.stat` is optional detail: a missing file leaves user/system unknown.
    if let Ok(text) = root.read(join(&l.cpuacct, rel, "cpuacct.stat")) {
        flat_keyed(&stat_path, &text, &["user", "system"], &mut out)?;
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

pub fn read_memory(root: &Root, l: &V1Layout, rel: &str) -> Result<MemoryStats, HostError> {
    let usage = root.read_u64(join(&l.memory, rel, "memory.usage_in_bytes"))?;
    let stat_rel = join(&l.memory, rel, "memory.stat");
    let text = root.read(&stat_rel)?;
    let mut v = [None; STAT_KEYS.len()];
    flat_keyed(&root.path(&stat_rel), &text, &STAT_KEYS, &mut v)?;
    let optional = |file: &str| root.read_u64(join(&l.memory, rel, file)).unwrap_or(0);
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
