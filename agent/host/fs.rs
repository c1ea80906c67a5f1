//! Block-device filesystems of the host and their sizes, as cAdvisor reports them
//! (`lib/container/raw/handler.go` `fsToFsStats`).
//!
//! The mount table is the host's: `<root>/proc/1/mountinfo`, the mount namespace of host PID 1.
//! `<root>/proc/self/mountinfo` would resolve `self` to the *reading* task and list the agent
//! container's own mounts (overlay root, its volumes), the same trap as `/proc/net/dev`.
//! Mount points in that table are host paths; [`statvfs`] re-roots them under the host root
//! (`/var/lib/kubelet` → `/rootfs/var/lib/kubelet`). In the DaemonSet a host mount is visible
//! below `/rootfs` only if the `/rootfs` volume propagates mounts (`HostToContainer`); without
//! it, `statvfs` would silently measure the filesystem underneath, so the manifests set it.

use super::{HostError, Root};

/// One mounted block-device filesystem, as kept by [`block_filesystems`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The mount source, `/dev/nvme0n1p1` (the record's `device` attribute).
    pub device: String,
    /// Host path of the mount point (unescaped), to be re-rooted before `statvfs`.
    pub mount_point: String,
    /// The kernel's type (`xfs`, `ext4`). The record's `fstype` attribute is cAdvisor's `vfs`;
    /// that mapping belongs to `metrics`.
    pub fstype: String,
    pub major: u32,
    pub minor: u32,
}

/// `statvfs` of a mount point, in bytes and inodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FsStats {
    /// `f_blocks × f_frsize`.
    pub capacity_bytes: u64,
    /// `f_bfree × f_frsize`: free *including* the blocks reserved for root. Usage is
    /// `capacity − free` (reserved blocks count as used, as in cAdvisor).
    pub free_bytes: u64,
    /// `f_bavail × f_frsize`: what an unprivileged user may still write.
    pub available_bytes: u64,
    pub inodes: u64,
    pub inodes_free: u64,
}

impl FsStats {
    /// From the raw `statvfs` fields. The multiplier is `f_frsize`; a zero `f_frsize`
    /// (old kernels for some filesystems) falls back to `f_bsize`.
    pub fn from_raw(frsize: u64, bsize: u64, blocks: u64, bfree: u64, bavail: u64, files: u64, ffree: u64) -> Self {
        let unit = if frsize == 0 { bsize } else { frsize };
        FsStats {
            capacity_bytes: blocks.saturating_mul(unit),
            free_bytes: bfree.saturating_mul(unit),
            available_bytes: bavail.saturating_mul(unit),
            inodes: files,
            inodes_free: ffree,
        }
    }

    /// `capacity − free` (the `*_filesystem_usage` value).
    pub fn used_bytes(&self) -> u64 {
        self.capacity_bytes.saturating_sub(self.free_bytes)
    }
}

/// The host's mounted block-device filesystems, one per device.
///
/// Kept: sources under `/dev/` (overlay, tmpfs, proc, sysfs, cgroup, nsfs, … have other
/// sources and drop out, as they do in cAdvisor once it renames overlay and tmpfs sources).
/// Each device appears once: bind mounts of the same source are skipped, preferring the mount
/// of the filesystem's own root (`/` in the fourth column) over a bind of a subdirectory, and
/// otherwise the first in table order (the host `/` comes before `/var/lib/kubelet`).
pub fn block_filesystems(root: &Root) -> Result<Vec<Mount>, HostError> {
    const FILE: &str = "/proc/1/mountinfo";
    let text = root.read(FILE)?;
    Ok(block_filesystems_from(&text))
}

/// Like [`block_filesystems`] on a given table. Malformed lines are skipped (the mount table is
/// the kernel's and a line we cannot read is one filesystem less, not a reason to lose all).
pub fn block_filesystems_from(text: &str) -> Vec<Mount> {
    let mut out: Vec<(Mount, bool)> = Vec::new();
    for line in text.lines() {
        let Some(e) = parse_mountinfo_line(line) else { continue };
        if !e.source.starts_with("/dev/") {
            continue;
        }
        let is_fs_root = e.fs_root == "/";
        let mount = Mount {
            device: e.source.to_string(),
            mount_point: unescape(e.mount_point),
            fstype: e.fstype.to_string(),
            major: e.major,
            minor: e.minor,
        };
        match out.iter_mut().find(|(m, _)| m.device == mount.device) {
            Some(slot) if !slot.1 && is_fs_root => *slot = (mount, true),
            Some(_) => {}
            None => out.push((mount, is_fs_root)),
        }
    }
    out.into_iter().map(|(m, _)| m).collect()
}

struct MountInfoLine<'a> {
    major: u32,
    minor: u32,
    fs_root: &'a str,
    mount_point: &'a str,
    fstype: &'a str,
    source: &'a str,
}

/// `36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue`
/// (proc(5)): id, parent, major:minor, root, mount point, options, optional fields, `-`,
/// type, source, super options.
fn parse_mountinfo_line(line: &str) -> Option<MountInfoLine<'_>> {
    let mut it = line.split(' ');
    let _id = it.next()?;
    let _parent = it.next()?;
    let (major, minor) = it.next()?.split_once(':')?;
    let fs_root = it.next()?;
    let mount_point = it.next()?;
    let _options = it.next()?;
    // Optional fields end at the lone `-`.
    it.find(|f| *f == "-")?;
    let fstype = it.next()?;
    let source = it.next()?;
    Some(MountInfoLine {
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        fs_root,
        mount_point,
        fstype,
        source,
    })
}

/// Mount points escape space, tab, newline and backslash as `\040`, `\011`, `\012`, `\134`.
fn unescape(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal.map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'))) {
            Some(v) if v <= 0xff => {
                out.push(u8::try_from(v).unwrap_or(b'?'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `statvfs` of a host mount point, re-rooted under the host root.
pub fn statvfs(root: &Root, mount_point: &str) -> Result<FsStats, HostError> {
    let s = root.statvfs(mount_point)?;
    Ok(FsStats::from_raw(
        s.f_frsize, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree,
    ))
}

/// `fstatvfs` of the filesystem holding an open file: what the log tailer asks of the files it
/// keeps open after they were deleted.
pub fn fstatvfs(file: &std::fs::File) -> std::io::Result<FsStats> {
    let s = rustix::fs::fstatvfs(file)?;
    Ok(FsStats::from_raw(
        s.f_frsize, s.f_bsize, s.f_blocks, s.f_bfree, s.f_bavail, s.f_files, s.f_ffree,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fstatvfs_measures_the_filesystem_of_an_open_file() {
        let f = tempfile::tempfile().unwrap();
        let s = fstatvfs(&f).unwrap();
        assert!(s.capacity_bytes > 0 && s.available_bytes <= s.capacity_bytes, "{s:?}");
    }

    /// The oracle node's mounts (the root device, a bind of it on `/var/lib/kubelet`, an overlay,
    /// a tmpfs) plus the usual pseudo filesystems.
    const TABLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
1 0 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2,inode64
25 1 0:23 / /run rw,nosuid,nodev shared:11 - tmpfs tmpfs rw,mode=755
40 1 259:1 /var/lib/kubelet /var/lib/kubelet rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw
41 25 0:50 / /run/containerd/io.containerd.runtime.v2.task/k8s.io/abc/rootfs rw,relatime - overlay overlay rw,lowerdir=/x
42 1 259:3 / /mnt/with\\040space rw - ext4 /dev/nvme1n1 rw
garbage line
43 1 x:y / /bad rw - ext4 /dev/bad rw
";

    #[test]
    fn keeps_block_devices_once() {
        let v = block_filesystems_from(TABLE);
        assert_eq!(
            v,
            vec![
                Mount {
                    device: "/dev/nvme0n1p1".into(),
                    mount_point: "/".into(),
                    fstype: "xfs".into(),
                    major: 259,
                    minor: 1
                },
                Mount {
                    device: "/dev/nvme1n1".into(),
                    mount_point: "/mnt/with space".into(),
                    fstype: "ext4".into(),
                    major: 259,
                    minor: 3
                },
            ]
        );
    }

    #[test]
    fn a_bind_listed_first_yields_to_the_filesystem_root() {
        let t = "40 1 259:1 /var/lib/kubelet /var/lib/kubelet rw - xfs /dev/nvme0n1p1 rw\n\
                 1 0 259:1 / / rw - xfs /dev/nvme0n1p1 rw\n";
        let v = block_filesystems_from(t);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].mount_point, "/");
    }

    #[test]
    fn unescapes_octal_and_leaves_odd_backslashes() {
        assert_eq!(unescape("/a\\040b\\011c\\134d"), "/a b\tc\\d");
        assert_eq!(unescape("/a\\9x\\"), "/a\\9x\\");
        assert_eq!(unescape("/a\\777"), "/a\\777");
    }

    #[test]
    fn oracle_fs_stats() {
        // The oracle node's root: f_frsize 4096, f_blocks 20971520, f_bfree 15728640, f_bavail 15000000.
        let s = FsStats::from_raw(4096, 4096, 20_971_520, 15_728_640, 15_000_000, 41_943_040, 41_500_000);
        assert_eq!(s.capacity_bytes, 85_899_345_920);
        assert_eq!(s.used_bytes(), 21_474_836_480);
        assert_eq!(s.available_bytes, 61_440_000_000);
        assert!((s.used_bytes() as f64 / s.capacity_bytes as f64 * 100.0 - 25.0).abs() < 1e-9);
        assert_eq!(FsStats::from_raw(0, 512, 2, 1, 1, 0, 0).capacity_bytes, 1024);
    }

    #[test]
    fn statvfs_of_a_real_directory_and_a_missing_one() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("mnt")).unwrap();
        let r = Root::new(d.path());
        let s = statvfs(&r, "/mnt").unwrap();
        assert!(s.capacity_bytes > 0 && s.free_bytes <= s.capacity_bytes, "{s:?}");
        let err = statvfs(&r, "/missing").unwrap_err();
        assert!(err.is_not_found(), "{err}");
        assert!(err.to_string().contains("missing"));
    }
}
