use std::cell::Cell;
use std::fs::File;
use std::io::Read as _;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::OFlags;

use super::HostError;
use super::confined::{ConfinedError, ConfinedRoot};

/// The node's filesystem root as this process sees it.
///
/// `Root::new("/rootfs").path("/proc/stat")` is `/rootfs/proc/stat`. Absolute host paths are
/// always re-rooted; that is the whole point of the type.
///
/// [`Root::anchored`] opens the directories read on every tick (`/sys/fs/cgroup`, `/proc`)
/// once, and reads below them with `openat` relative to that descriptor: the kernel then walks
/// the few components below the anchor instead of the whole path. A pod's `cpu.stat` is eight
/// components deep under `/rootfs`; on a node with 700 pods, path lookup was the largest single
/// cost of a tick.
///
/// Every open resolves inside the base ([`ConfinedRoot`]: `openat2` with `RESOLVE_IN_ROOT |
/// RESOLVE_NO_MAGICLINKS`, or a component walk that follows only relative symlinks without
/// `..`), `..` is refused, and a whole-file read stops at [`MAX_READ_BYTES`]. Kernel interface
/// files cannot be planted by pods today, but a root that a symlink can leave would read
/// whatever a writer of the tree chose: a fixture or a tarball replayed with `--host-root`, a
/// future reader of a directory pods write to.
#[derive(Debug, Clone)]
pub struct Root {
    base: PathBuf,
    /// The base opened as a confining root; `None` when it could not be opened (every read then
    /// fails as not found).
    confined: Option<Arc<ConfinedRoot>>,
    anchors: Arc<[Anchor]>,
}

#[derive(Debug)]
struct Anchor {
    /// Host path without a trailing slash (`/sys/fs/cgroup`).
    host: &'static str,
    dir: ConfinedRoot,
}

impl PartialEq for Root {
    fn eq(&self, other: &Self) -> bool {
        self.base == other.base
    }
}

impl Eq for Root {}

/// A directory of the node opened with [`Root::open_dir`]; files in it are opened confined to
/// it.
#[derive(Debug)]
pub struct Dir {
    fd: ConfinedRoot,
    /// The host path, for error messages.
    host: PathBuf,
}

impl Dir {
    pub fn host_path(&self) -> &Path {
        &self.host
    }
}

const READ_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::CLOEXEC).union(OFlags::NOCTTY);

/// The host directories a tick reads below, in every cgroup mode.
const ANCHORS: [&str; 2] = ["/sys/fs/cgroup", "/proc"];

/// The largest file a whole-file read takes: `/proc/1/mountinfo` of a node with 110 pods is a
/// few hundred KiB, every other file read whole a few KiB. A larger one is an error counted as
/// `too_large`, never a growing buffer.
pub const MAX_READ_BYTES: usize = 4 * 1024 * 1024;

impl Root {
    pub fn new(base: impl Into<PathBuf>) -> Self {
        let base = base.into();
        let confined = ConfinedRoot::open(&base)
            .ok()
            .map(|r| Arc::new(r.with_relative_links()));
        Root {
            base,
            confined,
            anchors: Arc::new([]),
        }
    }

    /// The same root, with the per-tick directories opened (`O_PATH`, no read rights needed).
    /// A directory that cannot be opened is read through its full path, as without anchors.
    ///
    /// The descriptors pin the directories: the DaemonSet's host mounts do not change while
    /// the pod runs, but a test that deletes and re-creates an anchor directory must build a
    /// new `Root`.
    #[must_use]
    pub fn anchored(self) -> Self {
        let anchors: Vec<Anchor> = ANCHORS
            .iter()
            .filter_map(|host| {
                let fd = self
                    .confined
                    .as_ref()?
                    .open_raw(Path::new(host), OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)
                    .ok()?;
                let dir = ConfinedRoot::from_fd(fd, self.path(host)).with_relative_links();
                Some(Anchor { host, dir })
            })
            .collect();
        Root {
            base: self.base,
            confined: self.confined,
            anchors: anchors.into(),
        }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Re-roots an absolute host path (`/proc/stat`) under the base: for messages and for
    /// listings of fixed directories. Files are never opened through it.
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
        self.read_with(host_path, |text| Ok(text.to_owned()))
    }

    /// Reads a whole small file into a buffer reused across calls and hands its text to
    /// `parse`: no allocation per file on the per-pod paths. An error from `parse` that names
    /// `host_path` (as [`HostError::parse`] with the host path does) is reported with the file's
    /// path under the root.
    pub fn read_with<T>(
        &self,
        host_path: impl AsRef<Path>,
        parse: impl FnOnce(&str) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        let host_path = host_path.as_ref();
        let file = self.open(host_path)?;
        Self::read_file(&file, false, parse, host_path, || self.path(host_path))
    }

    /// Reads all of `file` (from its start with `pread` when `from_start`, else from its
    /// position) into this thread's buffer and hands the text to `parse`. Errors name `full()`,
    /// also a parse error that names `named`.
    fn read_file<T>(
        file: &File,
        from_start: bool,
        parse: impl FnOnce(&str) -> Result<T, HostError>,
        named: &Path,
        full: impl Fn() -> PathBuf,
    ) -> Result<T, HostError> {
        let mut buf = BUF.take();
        let result = match read_whole(file, &mut buf, from_start) {
            Ok(Some(n)) => match std::str::from_utf8(&buf[..n]) {
                Ok(text) => parse(text).map_err(|e| match e {
                    HostError::Parse { path, what } if path == named => HostError::Parse { path: full(), what },
                    other => other,
                }),
                Err(e) => Err(HostError::Read {
                    path: full(),
                    source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
                }),
            },
            Ok(None) => Err(HostError::TooLarge {
                path: full(),
                cap: MAX_READ_BYTES,
            }),
            Err(source) => Err(HostError::Read { path: full(), source }),
        };
        // A file that grew the buffer past the usual size does not keep the memory.
        if buf.capacity() <= BUF_KEEP {
            BUF.set(buf);
        }
        result
    }

    /// Reads a file that holds a single unsigned integer (`cpuacct.usage`, `memory.current`).
    pub fn read_u64(&self, host_path: impl AsRef<Path>) -> Result<u64, HostError> {
        let host_path = host_path.as_ref();
        self.read_with(host_path, |text| parse_u64(text, host_path))
    }

    /// Whether `host_path` resolves, inside the root, to something.
    pub fn exists(&self, host_path: impl AsRef<Path>) -> bool {
        self.open_flags(host_path.as_ref(), OFlags::PATH | OFlags::CLOEXEC)
            .is_ok()
    }

    /// The subdirectories of `host_path` (names, unsorted), listed through a confined descriptor
    /// like every other open; `None` when the directory is not there (or went away while it was
    /// listed). Entries whose type the directory does not report are taken as directories: the
    /// caller's reads below them fail as "not found" if they are not.
    pub fn subdirectories(&self, host_path: impl AsRef<Path>) -> Result<Option<Vec<String>>, HostError> {
        self.list(host_path.as_ref(), |t| {
            matches!(t, rustix::fs::FileType::Directory | rustix::fs::FileType::Unknown)
        })
    }

    /// The directories and symbolic links in `host_path`, as [`Root::subdirectories`]: sysfs
    /// class directories (`/sys/class/infiniband`) hold their devices as links into
    /// `/sys/devices`, which later reads below them resolve inside the root.
    pub fn subdirectories_and_links(&self, host_path: impl AsRef<Path>) -> Result<Option<Vec<String>>, HostError> {
        self.list(host_path.as_ref(), |t| {
            matches!(
                t,
                rustix::fs::FileType::Directory | rustix::fs::FileType::Symlink | rustix::fs::FileType::Unknown
            )
        })
    }

    fn list(
        &self,
        host_path: &Path,
        accept: impl Fn(rustix::fs::FileType) -> bool,
    ) -> Result<Option<Vec<String>>, HostError> {
        let fd = match self.open_flags(host_path, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC) {
            Ok(fd) => fd,
            // Something that is not a directory where one should be is an error naming it, not
            // an absence (the confined open reports `ENOTDIR` as "not found").
            Err(e) if e.is_not_found() && self.exists(host_path) => {
                return Err(HostError::Read {
                    path: self.path(host_path),
                    source: std::io::Error::from_raw_os_error(rustix::io::Errno::NOTDIR.raw_os_error()),
                });
            }
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let io = |e: rustix::io::Errno| HostError::Read {
            path: self.path(host_path),
            source: e.into(),
        };
        let mut dir = rustix::fs::Dir::new(fd).map_err(io)?;
        let mut out = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = match entry {
                Ok(e) => e,
                // A cgroup removed while listed.
                Err(rustix::io::Errno::NOENT | rustix::io::Errno::NODEV) => return Ok(None),
                Err(e) => return Err(io(e)),
            };
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            if !accept(entry.file_type()) {
                continue;
            }
            if let Ok(name) = std::str::from_utf8(name) {
                out.push(name.to_string());
            }
        }
        Ok(Some(out))
    }

    /// `statvfs` of the filesystem mounted at `host_path`, through a confined `O_PATH`
    /// descriptor of it (`fstatfs` takes one: open(2), `O_PATH`).
    pub fn statvfs(&self, host_path: impl AsRef<Path>) -> Result<rustix::fs::StatVfs, HostError> {
        let host_path = host_path.as_ref();
        let fd = self.open_flags(host_path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)?;
        rustix::fs::fstatvfs(&fd).map_err(|e| HostError::Read {
            path: self.path(host_path),
            source: e.into(),
        })
    }

    /// Opens a directory to read files in it with [`Root::read_in`] (`O_PATH`: no read right
    /// on the directory needed, and it pins nothing but the directory entry). On procfs, a
    /// `/proc/<pid>` descriptor refers to that process, not to the number: once the process
    /// has exited every lookup below it fails with `ENOENT`, even if the PID is reused.
    pub fn open_dir(&self, host_path: impl AsRef<Path>) -> Result<Dir, HostError> {
        let host_path = host_path.as_ref();
        let fd = self.open_flags(host_path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC)?;
        Ok(Dir {
            fd: ConfinedRoot::from_fd(fd, self.path(host_path)).with_relative_links(),
            host: host_path.to_path_buf(),
        })
    }

    /// [`Root::read_with`] for the file `name` (a relative path) in `dir`; a parse error that
    /// names `name` is reported with the file's full path.
    pub fn read_in<T>(
        &self,
        dir: &Dir,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        let file = self.open_in(dir, name)?;
        Self::read_file(&file, false, parse, Path::new(name), || self.path(dir.host.join(name)))
    }

    /// Opens the file `name` in `dir` to hold it across ticks and re-read it with
    /// [`Root::reread`].
    pub fn open_in(&self, dir: &Dir, name: &str) -> Result<File, HostError> {
        dir.fd
            .open_raw(Path::new(name), READ_FLAGS)
            .map(File::from)
            .map_err(|e| host_error(e, self.path(dir.host.join(name))))
    }

    /// Reads a file held open (opened with [`Root::open_in`] as `name` in `dir`) from its start,
    /// with `pread` at offset 0: one system call instead of `open`, `read` and `close`. The
    /// kernel's seq_file-backed files (cgroup, proc) generate their content afresh for a read
    /// at offset 0 (`seq_read_iter` resets its iterator then), so each call sees the current
    /// counters. A held cgroup file whose cgroup was removed answers `ENODEV`, reported as
    /// "not found".
    pub fn reread<T>(
        &self,
        file: &File,
        dir: &Dir,
        name: &str,
        parse: impl FnOnce(&str) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        Self::read_file(file, true, parse, Path::new(name), || self.path(dir.host.join(name)))
    }

    /// Opens `host_path` read-only, relative to the deepest anchor that contains it.
    fn open(&self, host_path: &Path) -> Result<File, HostError> {
        self.open_flags(host_path, READ_FLAGS).map(File::from)
    }

    /// Opens `host_path` with `flags`, confined to the anchor that contains it, else to the base.
    fn open_flags(&self, host_path: &Path, flags: OFlags) -> Result<OwnedFd, HostError> {
        let bytes = host_path.as_os_str().as_encoded_bytes();
        for a in self.anchors.iter() {
            let Some(rest) = bytes.strip_prefix(a.host.as_bytes()) else {
                continue;
            };
            // `/procfoo` is not below `/proc`.
            if !rest.starts_with(b"/") {
                continue;
            }
            let rest = trim_slashes(rest);
            if rest.is_empty() {
                continue;
            }
            return a
                .dir
                .open_raw(Path::new(std::ffi::OsStr::from_bytes(rest)), flags)
                .map_err(|e| host_error(e, self.path(host_path)));
        }
        match &self.confined {
            Some(root) => root
                .open_raw(host_path, flags)
                .map_err(|e| host_error(e, self.path(host_path))),
            None => Err(HostError::Read {
                path: self.path(host_path),
                source: std::io::ErrorKind::NotFound.into(),
            }),
        }
    }
}

/// A confined open's error as a [`HostError`] naming `path`: not found and system-call errors
/// as reads, a path that would leave the root (or take a refused symlink) as refused.
fn host_error(e: ConfinedError, path: PathBuf) -> HostError {
    match e {
        ConfinedError::NotFound { .. } => HostError::Read {
            path,
            source: std::io::ErrorKind::NotFound.into(),
        },
        ConfinedError::Io { source, .. } => HostError::Read { path, source },
        refused => HostError::Refused {
            path,
            reason: refused.to_string(),
        },
    }
}

fn trim_slashes(mut b: &[u8]) -> &[u8] {
    while let Some(rest) = b.strip_prefix(b"/") {
        b = rest;
    }
    b
}

/// What one read asks for: 4 KiB holds a v2 `memory.stat` (about 1.5 KiB) and a pod's
/// `net/dev` in one `read`.
const BUF_START: usize = 4096;
/// A buffer that grew beyond this (a huge `mountinfo`) is dropped after use.
const BUF_KEEP: usize = 64 * 1024;

thread_local! {
    /// The read buffer of this thread; taken out while in use, so a nested read (a parser
    /// that reads another file) allocates its own instead of failing.
    static BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Reads until the end into `buf` (grown as needed) and returns the length, with `read` from
/// the file's position, or with `pread` from offset 0 for files held open.
///
/// `std::fs::read_to_string` first asks `statx` for a size hint, which cgroup and proc files
/// answer with 0 or 4096 anyway, and reads once more to see the end. A read that returns less
/// than asked is the end of the file for regular files and for the kernel's seq_file-backed
/// proc, sysfs and cgroup files (they fill the buffer until their end), so that second read is
/// skipped: one system call per file and tick.
/// `None` when the file holds more than [`MAX_READ_BYTES`].
fn read_whole(file: &File, buf: &mut Vec<u8>, from_start: bool) -> std::io::Result<Option<usize>> {
    use std::os::unix::fs::FileExt as _;
    if buf.len() < BUF_START {
        // Zero-filled once per thread; later reads overwrite what they use.
        buf.resize(BUF_START, 0);
    }
    let mut n = 0;
    loop {
        let got = if from_start {
            file.read_at(&mut buf[n..], n as u64)?
        } else {
            (&mut &*file).read(&mut buf[n..])?
        };
        n += got;
        if n > MAX_READ_BYTES {
            return Ok(None);
        }
        if n < buf.len() || got == 0 {
            return Ok(Some(n));
        }
        buf.resize((2 * buf.len()).min(MAX_READ_BYTES + 1), 0);
    }
}

/// A file that holds one unsigned integer (`cpuacct.usage`, `memory.current`); a parse error
/// names `path`.
pub(crate) fn parse_u64(text: &str, path: &Path) -> Result<u64, HostError> {
    let t = text.trim();
    t.parse::<u64>()
        .map_err(|_| HostError::parse(path, format!("expected an unsigned integer, got {t:?}")))
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

    #[test]
    fn anchored_reads_stay_below_their_anchor() {
        let dir = tempfile::tempdir().unwrap();
        for (p, text) in [
            ("proc/stat", "cpu 1\n"),
            ("procfoo/stat", "other\n"),
            ("sys/fs/cgroup/a/cpu.stat", "usage_usec 5\n"),
        ] {
            let path = dir.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let r = Root::new(dir.path()).anchored();
        assert_eq!(r.anchors.len(), 2);
        assert_eq!(r.read("/proc/stat").unwrap(), "cpu 1\n");
        assert_eq!(r.read("/procfoo/stat").unwrap(), "other\n", "not below /proc");
        assert_eq!(r.read("/sys/fs/cgroup//a/cpu.stat").unwrap(), "usage_usec 5\n");
        let missing = r.read("/sys/fs/cgroup/b/cpu.stat").unwrap_err();
        assert!(missing.is_not_found());
        assert_eq!(
            missing.to_string(),
            format!("cannot read {}", dir.path().join("sys/fs/cgroup/b/cpu.stat").display())
        );
        // A parse error of the host path is reported with the rooted path.
        let err = r.read_u64("/sys/fs/cgroup/a/cpu.stat").unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "cannot parse {}",
                dir.path().join("sys/fs/cgroup/a/cpu.stat").display()
            )),
            "{err}"
        );
        // Without anchors (a missing /sys), reads go through the full path.
        let bare = Root::new(dir.path().join("proc")).anchored();
        assert!(bare.anchors.is_empty());
        assert_eq!(bare.read("/stat").unwrap(), "cpu 1\n");
    }

    #[test]
    fn files_larger_than_one_read_are_read_whole() {
        let dir = tempfile::tempdir().unwrap();
        let r = Root::new(dir.path());
        for len in [0, 1, BUF_START - 1, BUF_START, BUF_START + 1, 3 * BUF_KEEP] {
            let text: String = "abcdefghijklmnopqrstuvwxyz".chars().cycle().take(len).collect();
            std::fs::write(dir.path().join("f"), &text).unwrap();
            assert_eq!(r.read("/f").unwrap(), text, "{len} bytes");
        }
        std::fs::write(dir.path().join("f"), [b'o', b'k', 0xff]).unwrap();
        let err = r.read("/f").unwrap_err();
        assert_eq!(err.kind(), "io", "{err}");
    }

    /// A tree whose `proc/sys/kernel/hostname` leads outside it, by an absolute and by a
    /// relative symlink, with a secret beside the root; and cgroup v1's relative
    /// `cpu -> cpu,cpuacct`.
    fn planted() -> (tempfile::TempDir, PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("root");
        let secret = d.path().join("secret");
        std::fs::write(&secret, "outside-secret\n").unwrap();
        let kernel = root.join("proc/sys/kernel");
        std::fs::create_dir_all(&kernel).unwrap();
        std::os::unix::fs::symlink(&secret, kernel.join("hostname")).unwrap();
        std::os::unix::fs::symlink("../../../../secret", kernel.join("domainname")).unwrap();
        std::fs::create_dir_all(root.join("proc/escape")).unwrap();
        std::os::unix::fs::symlink("../../../secret", root.join("proc/escape/file")).unwrap();
        let cg = root.join("sys/fs/cgroup");
        std::fs::create_dir_all(cg.join("cpu,cpuacct")).unwrap();
        std::fs::write(cg.join("cpu,cpuacct/cpuacct.usage"), "42\n").unwrap();
        std::os::unix::fs::symlink("cpu,cpuacct", cg.join("cpu")).unwrap();
        (d, root)
    }

    fn roots(base: &Path) -> Vec<(&'static str, Root)> {
        let walk = Root {
            base: base.to_path_buf(),
            confined: Some(Arc::new(
                ConfinedRoot::open(base).unwrap().with_relative_links().with_walk_only(),
            )),
            anchors: Arc::new([]),
        };
        vec![
            ("plain", Root::new(base)),
            ("anchored", Root::new(base).anchored()),
            ("walk", walk),
        ]
    }

    #[test]
    fn no_read_leaves_the_root() {
        let (_d, base) = planted();
        for (mode, r) in roots(&base) {
            for path in [
                "/proc/sys/kernel/hostname",
                "/proc/sys/kernel/domainname",
                "/proc/escape/file",
                "/proc/../secret",
                "/../secret",
            ] {
                match r.read(path) {
                    Ok(text) => assert!(!text.contains("outside-secret"), "{mode} {path}: leaked"),
                    Err(e) => assert!(
                        matches!(e.kind(), "not_found" | "refused"),
                        "{mode} {path}: {e} ({})",
                        e.kind()
                    ),
                }
                assert!(!r.exists(path) || mode != "walk", "{mode} {path}");
            }
            assert_eq!(r.read("/proc/../secret").unwrap_err().kind(), "refused", "{mode}");
            // A relative link that stays inside still works, in every mode.
            assert_eq!(r.read_u64("/sys/fs/cgroup/cpu/cpuacct.usage").unwrap(), 42, "{mode}");
        }
    }

    #[test]
    fn listings_and_statvfs_stay_in_the_root_too() {
        let (d, base) = planted();
        // A directory outside the root, with subdirectories, and a link to it in a cgroup tree.
        std::fs::create_dir_all(d.path().join("outside/leaked-subdir")).unwrap();
        let cg = base.join("sys/fs/cgroup/kubepods.slice");
        std::fs::create_dir_all(cg.join("pod-a")).unwrap();
        std::fs::write(cg.join("cgroup.procs"), "").unwrap();
        std::os::unix::fs::symlink(d.path().join("outside"), cg.join("escape")).unwrap();
        std::os::unix::fs::symlink("../../../../outside", base.join("sys/fs/cgroup/rel-escape")).unwrap();
        for (mode, r) in roots(&base) {
            let mut kids = r.subdirectories("/sys/fs/cgroup/kubepods.slice").unwrap().unwrap();
            kids.sort();
            assert_eq!(kids, ["pod-a"], "{mode}: files and links are not listed");
            for path in ["/sys/fs/cgroup/kubepods.slice/escape", "/sys/fs/cgroup/rel-escape"] {
                match r.subdirectories(path) {
                    Ok(Some(names)) => panic!("{mode} {path}: listed {names:?} outside the root"),
                    Ok(None) => {}
                    Err(e) => assert_eq!(e.kind(), "refused", "{mode} {path}: {e}"),
                }
                assert!(r.statvfs(path).is_err(), "{mode} {path}");
            }
            assert_eq!(r.subdirectories("/nope").unwrap(), None, "{mode}");
            assert!(r.statvfs("/sys/fs/cgroup").unwrap().f_blocks > 0, "{mode}");
        }
    }

    #[test]
    fn a_whole_file_read_stops_at_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let f = std::fs::File::create(d.path().join("big")).unwrap();
        f.set_len(MAX_READ_BYTES as u64 + 1).unwrap();
        std::fs::write(d.path().join("ok"), vec![b'a'; MAX_READ_BYTES]).unwrap();
        let r = Root::new(d.path());
        let e = r.read("/big").unwrap_err();
        assert_eq!(e.kind(), "too_large", "{e}");
        assert_eq!(r.read("/ok").unwrap().len(), MAX_READ_BYTES);
        // The thread's buffer was not kept at that size.
        assert!(BUF.take().capacity() <= BUF_KEEP);
    }

    /// The guarantee [`crate::host::pids::PidMap`] relies on, checked on the real procfs: a
    /// `/proc/<pid>` descriptor answers for that process only, and not at all once it exited.
    #[test]
    fn a_proc_pid_directory_dies_with_its_process() {
        let r = Root::new("/").anchored();
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let dir = r.open_dir(format!("/proc/{}", child.id())).unwrap();
        let dev = r.read_in(&dir, "net/dev", |t| Ok(t.to_owned())).unwrap();
        assert!(dev.contains("lo:"), "{dev}");
        child.kill().unwrap();
        child.wait().unwrap();
        let err = r.read_in(&dir, "net/dev", |t| Ok(t.len())).unwrap_err();
        assert!(err.is_not_found(), "{err}: {:?}", std::error::Error::source(&err));
        assert!(
            err.to_string().contains(&format!("/proc/{}/net/dev", child.id())),
            "{err}"
        );
    }
}
