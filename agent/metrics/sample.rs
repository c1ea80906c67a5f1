//! Sampling: read the node's counters at one instant, straight from the files at each tick, so
//! the rate window is the tick interval.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::host::cgroup::{CpuStats, IoStats, MemoryStats};
use crate::host::fs::{FsStats, Mount};
use crate::host::net::InterfaceCounters;
use crate::host::{CgroupMode, Clock, HostError, Root, disk, fs, net};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{HostReadFailed, ReadSource};

/// The node's counters at one instant. A part that could not be read is `None` (or empty):
/// the error was counted, and the fields derived from it are absent this tick.
#[derive(Debug, Clone)]
pub struct NodeSample {
    pub at: Instant,
    pub wall_ms: i64,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
    /// Host network namespace, through host PID 1 (`/proc/net/dev` would be the agent's own).
    pub interfaces: Vec<InterfaceCounters>,
    pub filesystems: Vec<(Mount, FsStats)>,
    pub io: Option<IoStats>,
    /// `major:minor` → `/dev/<name>`, from `/proc/diskstats`.
    pub device_names: HashMap<(u32, u32), String>,
}

/// Reads samples through the host root; holds no state between ticks.
#[derive(Debug)]
pub struct Sampler {
    pub(crate) root: Root,
    pub(crate) mode: CgroupMode,
    pub(crate) telemetry: Telemetry,
}

impl Sampler {
    pub fn new(root: Root, mode: CgroupMode, telemetry: Telemetry) -> Self {
        Sampler {
            root: root.anchored(),
            mode,
            telemetry,
        }
    }

    pub fn mode(&self) -> &CgroupMode {
        &self.mode
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn sample_node(&self, clock: &dyn Clock) -> NodeSample {
        let at = clock.monotonic();
        let wall_ms = clock.wall_ms();
        let cpu = self.counted(ReadSource::Cgroup, self.mode.read_cpu(&self.root, ""));
        let memory = self.counted(ReadSource::Cgroup, self.mode.read_memory(&self.root, ""));
        let io = self.counted(ReadSource::Cgroup, self.mode.read_io(&self.root, ""));
        let interfaces = self
            .counted(ReadSource::Procfs, net::read_net_dev(&self.root, 1))
            .unwrap_or_default();
        let device_names = self
            .counted(ReadSource::Procfs, disk::read_diskstats(&self.root))
            .map(|d| disk::device_names(&d))
            .unwrap_or_default();
        let mounts = self
            .counted(ReadSource::Procfs, fs::block_filesystems(&self.root))
            .unwrap_or_default();
        let mut filesystems = Vec::with_capacity(mounts.len());
        for m in mounts {
            if let Some(stats) = self.counted(ReadSource::Procfs, fs::statvfs(&self.root, &m.mount_point)) {
                filesystems.push((m, stats));
            }
        }
        NodeSample {
            at,
            wall_ms,
            cpu,
            memory,
            interfaces,
            filesystems,
            io,
            device_names,
        }
    }

    /// Turns a failed read into a counted event and `None`.
    pub(crate) fn counted<T>(&self, source: ReadSource, r: Result<T, HostError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(error) => {
                HostReadFailed {
                    source,
                    kind: error.kind(),
                    error: &error,
                }
                .emit(&self.telemetry);
                None
            }
        }
    }
}
