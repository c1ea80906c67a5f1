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
        std::fs::read_to_string(&path).map_err(|source| HostError::Read { path, source })
    }

    /// Reads a file that holds a single unsigned integer (`cpuacct.usage`, `memory.current`).
    pub fn read_u64(&self, host_path: impl AsRef<Path>) -> Result<u64, HostError> {
        let path = self.path(&host_path);
        let text = self.read(host_path)?;
        let t = text.trim();
        t.parse::<u64>()
            .map_err(|_| HostError::parse(&path, format!("expected an unsigned integer, got {t:?}")))
    }

    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.path(host_path).exists()
    }
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
