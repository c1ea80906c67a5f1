//! A sysfs fixture of Elastic Fabric Adapter devices under a test's host root, as the kernel's
//! `efa` driver lays it out: `/sys/devices/.../infiniband/<device>/ports/1/hw_counters/<counter>`
//! (one decimal number per file), `ports/1/gids/0` (the IPv6 link-local GID in full form), and
//! `/sys/class/infiniband/<device>` as a relative link to the device directory.

use std::path::{Path, PathBuf};

use super::imds::IMDS_MAC;

/// The counter files of the driver (`efa_port_stats_descs` in the kernel's
/// `drivers/infiniband/hw/efa/efa_verbs.c`) that kinsight reads, in its order.
pub const EFA_COUNTERS: [&str; 11] = [
    "rdma_read_bytes",
    "rdma_write_bytes",
    "rdma_write_recv_bytes",
    "rx_bytes",
    "rx_drops",
    "tx_bytes",
    "retrans_bytes",
    "retrans_pkts",
    "retrans_timeout_events",
    "impaired_remote_conn_events",
    "unresponsive_remote_events",
];

/// The GID whose EUI-64 interface identifier is [`IMDS_MAC`] (`0e:11:…` with the
/// universal/local bit inverted is `0c:11:…`).
pub const EFA_GID: &str = "fe80:0000:0000:0000:0c11:22ff:fe33:4455";

/// One EFA device in the fixture.
#[derive(Debug)]
pub struct EfaDevice {
    dir: PathBuf,
}

impl EfaDevice {
    /// Creates device `name` under `root` with every counter at `start` (plus its index, so no
    /// two counters are equal), and `gid` as its first GID when given.
    pub fn create(root: &Path, name: &str, start: u64, gid: Option<&str>) -> EfaDevice {
        let rel = format!("sys/devices/pci0000:00/0000:00:1d.0/infiniband/{name}");
        let dir = root.join(&rel);
        std::fs::create_dir_all(dir.join("ports/1/hw_counters")).unwrap();
        let device = EfaDevice { dir };
        device.set_all(start);
        if let Some(gid) = gid {
            std::fs::create_dir_all(device.dir.join("ports/1/gids")).unwrap();
            std::fs::write(device.dir.join("ports/1/gids/0"), format!("{gid}\n")).unwrap();
        }
        let class = root.join("sys/class/infiniband");
        std::fs::create_dir_all(&class).unwrap();
        std::os::unix::fs::symlink(
            format!("../../devices/pci0000:00/0000:00:1d.0/infiniband/{name}"),
            class.join(name),
        )
        .unwrap();
        device
    }

    /// Sets every counter to `base` plus its index.
    pub fn set_all(&self, base: u64) {
        for (i, c) in EFA_COUNTERS.iter().enumerate() {
            self.set(c, &format!("{}", base + i as u64));
        }
    }

    /// Writes `text` as counter `name` (anything: tests write garbage too).
    pub fn set(&self, name: &str, text: &str) {
        std::fs::write(self.dir.join("ports/1/hw_counters").join(name), format!("{text}\n")).unwrap();
    }
}

/// The MAC the fixture GID encodes.
pub const EFA_MAC: &str = IMDS_MAC;
