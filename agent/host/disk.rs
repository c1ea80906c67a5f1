//! `/proc/diskstats`: the kernel's block devices, to name the devices of the cgroup I/O counters.
//!
//! The `NodeDiskIO` records come from the root cgroup's I/O files (`blkio.*` / `io.stat`), which
//! identify a device only by `major:minor`. The record's `device` attribute is
//! `/dev/<kernel name>`, and the kernel name is the third column here. So the devices that
//! *count* are those the root cgroup reports; this table only names them. A device the cgroup
//! reports but this table lacks (removed between the two reads) has no name this interval.

use std::collections::HashMap;
use std::path::Path;

use super::{HostError, Root};

/// One line of `/proc/diskstats` (the 14 columns every kernel since 2.6 prints; the discard
/// and flush columns of 4.18+ and 5.5+ are ignored). Times in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiskStat {
    pub major: u32,
    pub minor: u32,
    /// Kernel name without `/dev/` (`nvme0n1`, `nvme0n1p1`, `dm-0`).
    pub name: String,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub read_time_ms: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub write_time_ms: u64,
    pub ios_in_progress: u64,
    pub io_time_ms: u64,
    pub weighted_io_time_ms: u64,
}

impl DiskStat {
    /// The `device` attribute of a `NodeDiskIO` record.
    pub fn device_path(&self) -> String {
        format!("/dev/{}", self.name)
    }
}

pub fn read_diskstats(root: &Root) -> Result<Vec<DiskStat>, HostError> {
    const FILE: &str = "/proc/diskstats";
    let text = root.read(FILE)?;
    parse_diskstats(&root.path(FILE), &text)
}

/// `major:minor` → `/dev/<name>`, for naming the cgroup I/O devices.
pub fn device_names(stats: &[DiskStat]) -> HashMap<(u32, u32), String> {
    stats.iter().map(|d| ((d.major, d.minor), d.device_path())).collect()
}

/// Blank lines are skipped; any other line must have at least 14 columns, or the file is
/// reported as unparsable (with the offending line).
pub fn parse_diskstats(path: &Path, text: &str) -> Result<Vec<DiskStat>, HostError> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(first) = it.next() else { continue };
        let bad = |what: &str| HostError::parse(path, format!("{what} in line {line:?}"));
        let major = first.parse().map_err(|_| bad("bad major number"))?;
        let minor = it
            .next()
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| bad("bad minor number"))?;
        let name = it.next().ok_or_else(|| bad("no device name"))?.to_string();
        let mut v = [0u64; 11];
        for slot in &mut v {
            *slot = it
                .next()
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| bad("fewer than 14 numeric columns"))?;
        }
        out.push(DiskStat {
            major,
            minor,
            name,
            reads_completed: v[0],
            reads_merged: v[1],
            sectors_read: v[2],
            read_time_ms: v[3],
            writes_completed: v[4],
            writes_merged: v[5],
            sectors_written: v[6],
            write_time_ms: v[7],
            ios_in_progress: v[8],
            io_time_ms: v[9],
            weighted_io_time_ms: v[10],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_modern_lines_with_discard_and_flush_columns() {
        let text = " 259       0 nvme0n1 9017 2404 733218 3201 61263 42003 2885416 40231 0 51124 47270 0 0 0 0 1234 3837\n\
                    \n 259       1 nvme0n1p1 8900 2404 729034 3150 61263 42003 2885416 40231 0 51092 43381 0 0 0 0 0 0\n";
        let v = parse_diskstats(Path::new("d"), text).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].major, v[0].minor, v[0].name.as_str()), (259, 0, "nvme0n1"));
        assert_eq!(
            (v[0].reads_completed, v[0].sectors_written, v[0].weighted_io_time_ms),
            (9017, 2_885_416, 47270)
        );
        assert_eq!(device_names(&v)[&(259, 1)], "/dev/nvme0n1p1");
    }

    #[test]
    fn short_or_garbage_lines_are_errors() {
        for text in ["8 0 sda 1 2 3\n", "x 0 sda 1 2 3 4 5 6 7 8 9 10 11\n", "8 0\n"] {
            let err = parse_diskstats(Path::new("/r/proc/diskstats"), text)
                .unwrap_err()
                .to_string();
            assert!(err.contains("/r/proc/diskstats") && err.contains("line"), "{err}");
        }
    }
}
