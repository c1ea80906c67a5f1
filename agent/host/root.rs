use std::path::{Path, PathBuf};

use super::HostError;

/// The node's filesystem root as this process sees it.
///
/// `Root::new("/rootfs").path("/proc/stat")` is `/rootfs/proc/stat`. Absolute host paths are
/// always re-rooted; that is the whole point of the type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    base: PathBuf,
}

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Root { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Re-roots an absolute host path (`/proc/stat`) under the base.
    pub fn path(&self, host_path: impl AsRef<Path>) -> PathBuf {
        let p = host_path.as_ref();
        let relative = p.strip_prefix("/").unwrap_or(p);
        if relative.as_os_str().is_empty() {
            return self.base.clone();
        }
        self.base.join(relative)
    }

    /// Reads a whole small file (kernel interface files are a few KiB at most).
    pub fn read(&self, host_path: impl AsRef<Path>) -> Result<String, HostError> {
        let path = self.path(host_path);
        read_small(&path).map_err(|source| HostError::Read { path, source })
    }

    /// Reads a file that holds a single unsigned integer (`cpuacct.usage`, `memory.current`).
    pub fn read_u64(&self, host_path: impl AsRef<Path>) -> Result<u64, HostError> {
        let path = self.path(&host_path);
        let text = read_small(&path).map_err(|source| HostError::Read {
            path: path.clone(),
            source,
        })?;
        let t = text.trim();
        t.parse::<u64>()
            .map_err(|_| HostError::parse(&path, format!("expected an unsigned integer, got {t:?}")))
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }
}

/// `open` + `read` + `close`, nothing else. `std::fs::read_to_string` first asks `statx` for a
/// size hint, which cgroup and proc files answer with 0 or 4096 anyway; on a node with 700 pods
/// that is thousands of useless system calls per tick. A file that is not UTF-8 is an
/// `InvalidData` error.
fn read_small(path: &Path) -> std::io::Result<String> {
    use std::io::Read as _;
    let mut file = std::fs::File::open(path)?;
    // 4 KiB holds a v2 `memory.stat` (about 1.5 KiB) in one read. A read that returns less than
    // asked is the end of the file for regular files and for the kernel's seq_file-backed
    // proc, sysfs and cgroup files (they fill the buffer until their end), so the usual second
    // `read` that returns 0 is skipped: one system call fewer per file and tick.
    let mut buf = vec![0_u8; 4096];
    let n = file.read(&mut buf)?;
    if n < buf.len() {
        buf.truncate(n);
    } else {
        file.take(u64::MAX).read_to_end(&mut buf)?;
    }
    String::from_utf8(buf).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reroots_absolute_paths() {
        let r = Root::new("/rootfs");
        assert_eq!(r.path("/proc/stat"), PathBuf::from("/rootfs/proc/stat"));
        assert_eq!(r.path("proc/stat"), PathBuf::from("/rootfs/proc/stat"));
        assert_eq!(r.path("/"), PathBuf::from("/rootfs"));
        assert_eq!(Root::new("/").path("/proc/stat"), PathBuf::from("/proc/stat"));
    }

    #[test]
    fn read_u64_reports_path_and_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n"), "12345\n").unwrap();
        std::fs::write(dir.path().join("bad"), "max\n").unwrap();
        let r = Root::new(dir.path());
        assert_eq!(r.read_u64("/n").unwrap(), 12345);
        let err = r.read_u64("/bad").unwrap_err().to_string();
        assert!(err.contains("bad") && err.contains("\"max\""), "{err}");
        let missing = r.read_u64("/missing").unwrap_err();
        assert!(missing.is_not_found());
        assert_eq!(missing.kind(), "not_found");
    }
}
