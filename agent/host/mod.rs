//! Every read of the node: `/proc`, `/sys`, cgroup trees, all under a configurable root.
//!
//! Owns: file formats of the kernel interfaces and the cgroup layout ([`CgroupMode`]).
//! Must not: compute rates or know metric names (that is `metrics`).
//!
//! Inputs: the host root (`--host-root`, default `/`; in the DaemonSet the host `/` is mounted
//! read-only at `/rootfs` and `/sys` at `/sys`). No other module writes a literal `"/proc"`:
//! every node path is built by [`Root`], so a test or a user's bug report can replay a fixture
//! tree with `kinsight once --host-root DIR`.
//!
//! The decision a newcomer would question: readers return typed errors that carry the path,
//! and callers count and skip them; nothing here panics on what the kernel (or a fixture) says.

pub mod accel;
pub mod cgroup;
mod clock;
pub mod confined;
pub mod disk;
mod error;
pub mod exporter;
pub mod fs;
pub mod net;
pub mod pids;
pub mod procfs;
mod root;
pub mod unix_grpc;

#[cfg(test)]
pub(crate) mod proptests;

pub use cgroup::CgroupMode;
pub use clock::{Clock, SystemClock, thread_cpu_time};
pub use error::HostError;
pub use root::{Dir, Root};
