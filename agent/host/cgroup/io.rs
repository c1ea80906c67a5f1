//! Block I/O counters of a cgroup: the v1 `blkio.*` files
//! (`8:0 Read 123` lines) and the v2 `io.stat` file (`8:0 rbytes=… wbytes=… rios=… wios=…`).

use std::path::Path;

use super::join;
use crate::host::{HostError, Root};

/// Block I/O of one cgroup, one entry per device, in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IoStats {
    pub devices: Vec<DeviceIo>,
}

/// Cumulative counters of one device (`major:minor`; name it with `host::disk::device_names`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceIo {
    pub major: u32,
    pub minor: u32,
    /// Bytes (`io_service_bytes` / `rbytes`, `wbytes`).
    pub bytes: IoCounters,
    /// Operations (`io_serviced` / `rios`, `wios`).
    pub ops: IoCounters,
}

/// Read and Write always; Sync, Async and Total only where the kernel gives them (cgroup v1).
/// cgroup v2 has none of the three (runc's `libcontainer/cgroups/fs2/io.go` maps `io.stat` to
/// Read and Write only): they stay `None`, never an invented 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IoCounters {
    pub read: u64,
    pub write: u64,
    pub sync: Option<u64>,
    pub async_: Option<u64>,
    pub total: Option<u64>,
}

impl IoCounters {
    /// The kernel's Total, or `read + write` where it gives none (kinsight fills the
    /// `*_total` fields on cgroup v2, which upstream leaves out).
    pub fn total_or_sum(&self) -> u64 {
        self.total.unwrap_or_else(|| self.read.saturating_add(self.write))
    }
}

/// The v1 file pairs in runc's order of preference (`libcontainer/cgroups/fs/blkio.go`
/// `GetStats`): BFQ, then CFQ, then the throttle files (recursive, then local). A pair is used
/// when its `io_serviced` file exists and lists at least one device. On blk-mq kernels without
/// BFQ only the throttle files are populated (and read 0 on AL2 kernels ≥ 5.10.236,
/// awslabs/amazon-eks-ami#2270).
const V1_CANDIDATES: [(&str, &str); 4] = [
    (
        "blkio.bfq.io_serviced_recursive",
        "blkio.bfq.io_service_bytes_recursive",
    ),
    ("blkio.io_serviced_recursive", "blkio.io_service_bytes_recursive"),
    (
        "blkio.throttle.io_serviced_recursive",
        "blkio.throttle.io_service_bytes_recursive",
    ),
    ("blkio.throttle.io_serviced", "blkio.throttle.io_service_bytes"),
];

pub(super) fn read_v1(root: &Root, blkio: &Path, rel: &str) -> Result<IoStats, HostError> {
    let mut last_missing = None;
    for (serviced, service_bytes) in V1_CANDIDATES {
        let ops_file = join(blkio, rel, serviced);
        let text = match root.read(&ops_file) {
            Ok(t) => t,
            Err(e) if e.is_not_found() => {
                last_missing = Some(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let ops = parse_blkio(&root.path(&ops_file), &text)?;
        if ops.is_empty() {
            continue;
        }
        let bytes_file = join(blkio, rel, service_bytes);
        let bytes = parse_blkio(&root.path(&bytes_file), &root.read(&bytes_file)?)?;
        return Ok(merge_v1(&ops, &bytes));
    }
    // Every candidate is missing: the cgroup (or the blkio mount) is gone. Files that exist
    // but list no device mean "no I/O yet": an empty result.
    match last_missing {
        Some(e) if !root.exists(join(blkio, rel, "")) => Err(e),
        _ => Ok(IoStats::default()),
    }
}

pub(super) fn read_v2(root: &Root, dir: &Path, rel: &str) -> Result<IoStats, HostError> {
    let file = join(dir, rel, "io.stat");
    let text = root.read(&file)?;
    parse_io_stat(&root.path(&file), &text)
}

/// One device's ops from a v1 `blkio` file, keyed by `(major, minor)`.
type V1Entry = ((u32, u32), IoCounters);

/// `8:0 Read 4096` lines; the last line `Total 123` (no device) is the sum over devices and is
/// skipped, as are ops this agent does not use (`Discard` on 4.19+ kernels).
pub(super) fn parse_blkio(path: &Path, text: &str) -> Result<Vec<V1Entry>, HostError> {
    let mut out: Vec<V1Entry> = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(dev), Some(op), Some(value), None) = (it.next(), it.next(), it.next(), it.next()) else {
            continue;
        };
        let dev = parse_dev(dev).ok_or_else(|| HostError::parse(path, format!("bad device in line {line:?}")))?;
        let value: u64 = value
            .parse()
            .map_err(|_| HostError::parse(path, format!("not an unsigned integer in line {line:?}")))?;
        let i = if let Some(i) = out.iter().position(|(d, _)| *d == dev) {
            i
        } else {
            out.push((dev, IoCounters::default()));
            out.len() - 1
        };
        let c = &mut out[i].1;
        match op {
            "Read" => c.read = value,
            "Write" => c.write = value,
            "Sync" => c.sync = Some(value),
            "Async" => c.async_ = Some(value),
            "Total" => c.total = Some(value),
            _ => {}
        }
    }
    Ok(out)
}

fn merge_v1(ops: &[V1Entry], bytes: &[V1Entry]) -> IoStats {
    let mut devices: Vec<DeviceIo> = ops
        .iter()
        .map(|&((major, minor), ops)| DeviceIo {
            major,
            minor,
            bytes: IoCounters::default(),
            ops,
        })
        .collect();
    for &((major, minor), b) in bytes {
        match devices.iter_mut().find(|d| (d.major, d.minor) == (major, minor)) {
            Some(d) => d.bytes = b,
            None => devices.push(DeviceIo {
                major,
                minor,
                bytes: b,
                ops: IoCounters::default(),
            }),
        }
    }
    IoStats { devices }
}

/// `259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0`; unknown keys are skipped.
pub(super) fn parse_io_stat(path: &Path, text: &str) -> Result<IoStats, HostError> {
    let mut devices = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let Some(dev) = it.next() else { continue };
        let (major, minor) =
            parse_dev(dev).ok_or_else(|| HostError::parse(path, format!("bad device in line {line:?}")))?;
        let mut d = DeviceIo {
            major,
            minor,
            ..DeviceIo::default()
        };
        for kv in it {
            let Some((k, v)) = kv.split_once('=') else {
                return Err(HostError::parse(path, format!("expected key=value, got {kv:?}")));
            };
            let slot = match k {
                "rbytes" => &mut d.bytes.read,
                "wbytes" => &mut d.bytes.write,
                "rios" => &mut d.ops.read,
                "wios" => &mut d.ops.write,
                _ => continue,
            };
            *slot = v
                .parse()
                .map_err(|_| HostError::parse(path, format!("{k}: not an unsigned integer: {v:?}")))?;
        }
        devices.push(d);
    }
    Ok(IoStats { devices })
}

fn parse_dev(s: &str) -> Option<(u32, u32)> {
    let (a, b) = s.split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_blkio_lines_and_grand_total() {
        let t = "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 8192\n8:0 Async 4096\n8:0 Discard 0\n8:0 Total 12288\n\
                 259:0 Read 1\n259:0 Write 2\n259:0 Sync 3\n259:0 Async 0\n259:0 Total 3\nTotal 12291\n";
        let v = parse_blkio(Path::new("f"), t).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[0],
            (
                (8, 0),
                IoCounters {
                    read: 4096,
                    write: 8192,
                    sync: Some(8192),
                    async_: Some(4096),
                    total: Some(12288)
                }
            )
        );
        assert!(parse_blkio(Path::new("f"), "Total 0\n").unwrap().is_empty());
        let err = parse_blkio(Path::new("/b/blkio.x"), "8:0 Read -1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/b/blkio.x") && err.contains("8:0 Read -1"), "{err}");
    }

    #[test]
    fn v2_io_stat_has_read_and_write_only() {
        let t = "259:0 rbytes=1000 wbytes=2000 rios=10 wios=20 dbytes=0 dios=0\n8:16 rbytes=5 wbytes=0 rios=1 wios=0\n";
        let s = parse_io_stat(Path::new("f"), t).unwrap();
        assert_eq!(s.devices.len(), 2);
        let d = s.devices[0];
        assert_eq!(
            (d.major, d.minor, d.bytes.read, d.bytes.write, d.ops.read, d.ops.write),
            (259, 0, 1000, 2000, 10, 20)
        );
        assert_eq!((d.bytes.sync, d.bytes.async_, d.bytes.total), (None, None, None));
        assert_eq!(d.bytes.total_or_sum(), 3000);
        for bad in ["x:y rbytes=1\n", "8:0 rbytes\n", "8:0 rbytes=-1\n"] {
            assert_eq!(parse_io_stat(Path::new("f"), bad).unwrap_err().kind(), "parse", "{bad}");
        }
    }
}
