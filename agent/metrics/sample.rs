//! Sampling: read the node's counters at one instant (SAMP-1, SAMP-2).

use tokio::time::Instant;

use crate::host::cgroup::{CpuStats, MemoryStats};
use crate::host::{CgroupMode, Clock, Root};
use crate::telemetry::Telemetry;
use crate::telemetry::events::{HostReadFailed, HostSource};

/// The root cgroup's counters at one instant. A field that could not be read is `None`: the
/// error was counted, and the fields derived from it are absent this tick.
#[derive(Debug, Clone, Copy)]
pub struct NodeSample {
    pub at: Instant,
    pub wall_ms: i64,
    pub cpu: Option<CpuStats>,
    pub memory: Option<MemoryStats>,
}

/// Reads samples through the host root; holds no state between ticks.
#[derive(Debug)]
pub struct Sampler {
    root: Root,
    mode: CgroupMode,
    telemetry: Telemetry,
}

impl Sampler {
    pub fn new(root: Root, mode: CgroupMode, telemetry: Telemetry) -> Self {
        Sampler { root, mode, telemetry }
    }

    pub fn mode(&self) -> &CgroupMode {
        &self.mode
    }

    pub fn sample_node(&self, clock: &dyn Clock) -> NodeSample {
        let at = clock.monotonic();
        let wall_ms = clock.wall_ms();
        let cpu = self.counted(self.mode.read_cpu(&self.root, ""));
        let memory = self.counted(self.mode.read_memory(&self.root, ""));
        NodeSample {
            at,
            wall_ms,
            cpu,
            memory,
        }
    }

    fn counted<T>(&self, r: Result<T, crate::host::HostError>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(error) => {
                HostReadFailed {
                    source: HostSource::Cgroup,
                    error: &error,
                }
                .emit(&self.telemetry);
                None
            }
        }
    }
}
