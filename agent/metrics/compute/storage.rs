//! NodeFS and NodeDiskIO records.

use std::collections::HashMap;

use tokio::time::Instant;

use crate::host::cgroup::{IoCounters, IoStats};
use crate::host::fs::{FsStats, Mount};

use super::super::rate::RateCalculator;
use super::super::record::{Record, RecordType};
use super::{Field, RateKey, scope};

/// One NodeFS record per mounted block-device filesystem.
pub fn filesystem_record(owner: &Record, mount: &Mount, fs: &FsStats) -> Record {
    let mut r = Record::new(RecordType::NodeFS, owner.timestamp_ms);
    r.attributes.clone_from(&owner.attributes);
    r.set_attribute("device", mount.device.as_str());
    // cAdvisor's type string for ordinary block filesystems, not xfs/ext4.
    r.set_attribute("fstype", "vfs");
    let capacity = fs.capacity_bytes as f64;
    let usage = fs.used_bytes() as f64;
    r.set_field("node_filesystem_capacity", Some(capacity));
    r.set_field("node_filesystem_usage", Some(usage));
    r.set_field("node_filesystem_available", Some(fs.available_bytes as f64));
    // Trap 12: free blocks, not available ones: reserved root blocks count as used.
    r.set_field(
        "node_filesystem_utilization",
        (capacity > 0.0).then(|| usage / capacity * 100.0),
    );
    r.set_field("node_filesystem_inodes", Some(fs.inodes as f64));
    r.set_field("node_filesystem_inodes_free", Some(fs.inodes_free as f64));
    r
}

const BYTES: [&str; 5] = [
    "node_diskio_io_service_bytes_read",
    "node_diskio_io_service_bytes_write",
    "node_diskio_io_service_bytes_sync",
    "node_diskio_io_service_bytes_async",
    "node_diskio_io_service_bytes_total",
];
const OPS: [&str; 5] = [
    "node_diskio_io_serviced_read",
    "node_diskio_io_serviced_write",
    "node_diskio_io_serviced_sync",
    "node_diskio_io_serviced_async",
    "node_diskio_io_serviced_total",
];
const BYTE_FIELDS: [Field; 5] = [
    Field::IoReadBytes,
    Field::IoWriteBytes,
    Field::IoSyncBytes,
    Field::IoAsyncBytes,
    Field::IoTotalBytes,
];
const OP_FIELDS: [Field; 5] = [
    Field::IoReadOps,
    Field::IoWriteOps,
    Field::IoSyncOps,
    Field::IoAsyncOps,
    Field::IoTotalOps,
];

fn values(c: &IoCounters) -> [Option<u64>; 5] {
    // total = read + write when the kernel gives none (cgroup v2); Sync/Async are never invented.
    [Some(c.read), Some(c.write), c.sync, c.async_, Some(c.total_or_sum())]
}

/// One NodeDiskIO record per device of the root cgroup's block I/O counters. A device the
/// kernel names nowhere in `/proc/diskstats` is written as `major:minor`.
pub fn diskio_records(
    owner: &Record,
    io: &IoStats,
    names: &HashMap<(u32, u32), String, impl std::hash::BuildHasher>,
    rates: &mut RateCalculator<RateKey>,
    at: Instant,
) -> Vec<Record> {
    let mut out = Vec::with_capacity(io.devices.len());
    for dev in &io.devices {
        let device = names
            .get(&(dev.major, dev.minor))
            .cloned()
            .unwrap_or_else(|| format!("{}:{}", dev.major, dev.minor));
        let s = scope(&["diskio", &device]);
        let mut r = Record::new(RecordType::NodeDiskIO, owner.timestamp_ms);
        r.attributes.clone_from(&owner.attributes);
        for (i, v) in values(&dev.bytes).into_iter().enumerate() {
            let rate = v.and_then(|v| {
                rates.rate(
                    RateKey {
                        scope: s,
                        field: BYTE_FIELDS[i],
                    },
                    v,
                    at,
                )
            });
            r.set_field(BYTES[i], rate);
        }
        for (i, v) in values(&dev.ops).into_iter().enumerate() {
            let rate = v.and_then(|v| {
                rates.rate(
                    RateKey {
                        scope: s,
                        field: OP_FIELDS[i],
                    },
                    v,
                    at,
                )
            });
            r.set_field(OPS[i], rate);
        }
        r.set_attribute("device", device);
        out.push(r);
    }
    out
}
