//! Samples → records.
//!
//! The CPU and memory fields are the same for node, pod and container records but for their
//! prefix ([`cpumem`]); rates are keyed by the cgroup (or interface, or device) and the field,
//! so a restarted container (new id, new cgroup) starts without a previous sample, hence
//! without rates for one tick.

pub mod cluster;
pub mod control_plane;
pub mod cpumem;
pub mod efa;
pub mod gpu;
pub mod net;
pub mod neuron;

pub mod node;
pub mod pod;
pub mod storage;

pub use node::{NodeAttributes, node_record};

use std::hash::{Hash, Hasher};

/// Which counter a rate belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    CpuTotal,
    CpuUser,
    CpuSystem,
    Pgfault,
    Pgmajfault,
    NetRxBytes,
    NetTxBytes,
    NetRxPackets,
    NetTxPackets,
    NetRxDropped,
    NetTxDropped,
    NetRxErrors,
    NetTxErrors,
    IoReadBytes,
    IoWriteBytes,
    IoSyncBytes,
    IoAsyncBytes,
    IoTotalBytes,
    IoReadOps,
    IoWriteOps,
    IoSyncOps,
    IoAsyncOps,
    IoTotalOps,
}

/// A rate key: the object (a hash of its cgroup path, interface or device) and the field.
/// Hashing the path keeps the per-tick key free of allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RateKey {
    pub scope: u64,
    pub field: Field,
}

/// A stable 64-bit identity for a rate scope, from its parts (`["pod", "<cgroup rel>"]`).
pub fn scope(parts: &[&str]) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for p in parts {
        p.hash(&mut h);
    }
    h.finish()
}
