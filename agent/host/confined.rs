//! Opening node files without leaving a root directory.
//!
//! The log tailer opens files below directories that other tenants of the node write to: a pod
//! controls the names and contents of its container's log directory in some setups, and anyone
//! with a hostPath mount can plant a symlink (`0.log -> /etc/shadow`), a hardlink to a file
//! elsewhere on the same filesystem, or a FIFO that would block a plain `open(2)` forever.
//! Everything here therefore resolves paths relative to one descriptor, the [`ConfinedRoot`],
//! and never by a string path:
//!
//! - on Linux ≥ 5.6 with `openat2(2)` and `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`: the kernel
//!   resolves every component as if the root were `/`, so `..` and absolute symlinks cannot
//!   climb out of it (an absolute symlink written by kubelet or Docker on the host resolves to
//!   the same file under a host root mounted at `/rootfs`), and `/proc/<pid>/fd/*`-style magic
//!   links are refused (openat2(2) man page);
//! - otherwise (`ENOSYS` on kernels before 5.6; `EPERM` where a seccomp profile does not list
//!   the syscall: Docker's default profile answers unlisted syscalls with `EPERM`, not `ENOSYS`
//!   (moby/moby#42871), and listed `openat2` only from moby/moby#41353 on) by walking the
//!   path one component at a time with `O_NOFOLLOW`, refusing any symlink on the way. Stricter
//!   than the kernel path (a symlink that would stay inside the root is refused too), but it
//!   cannot leave the root.
//!
//! `..` is refused up front in both modes. Files are opened `O_NONBLOCK`, so a FIFO does not
//! block the open (open(2): with `O_NONBLOCK`, an open of a FIFO for reading only returns at
//! once), and then `fstat`ed: only regular files are handed out. A held [`ConfinedFile`] is
//! never re-opened by path: [`ConfinedFile::stat`] asks the descriptor.
//!
//! The `/var/log/containers` symlinks are not opened through: [`ConfinedRoot::read_link_target`]
//! returns their text, which the caller matches against the expected
//! `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log` shape (kubelet creates them in
//! `kubernetes/kubernetes: pkg/kubelet/kuberuntime/kuberuntime_container.go`) and then opens the
//! `/var/log/pods` path itself.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt as _, OsStringExt as _};
use std::os::unix::fs::{FileExt as _, FileTypeExt as _, MetadataExt as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// Flags of every file opened for reading. `O_NONBLOCK`: opening a FIFO for reading returns at
/// once instead of waiting for a writer (and regular files ignore the flag). `O_NOCTTY`: a
/// planted terminal device never becomes our controlling terminal.
const FILE_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::CLOEXEC)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY);

/// Flags of a directory opened to list it.
const LIST_FLAGS: OFlags = OFlags::RDONLY.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// Flags of a directory opened only to resolve names below it (no read right needed).
const PATH_DIR_FLAGS: OFlags = OFlags::PATH.union(OFlags::DIRECTORY).union(OFlags::CLOEXEC);

/// How often an `openat2` that answered `EAGAIN` is retried. The kernel returns it with
/// `RESOLVE_IN_ROOT` when a concurrent rename could have let a `..` escape (openat2(2)); that
/// needs a rename racing with the lookup, so a few retries suffice before giving up.
const EAGAIN_RETRIES: usize = 8;

/// A directory that files are opened below, and never outside of.
#[derive(Debug)]
pub struct ConfinedRoot {
    /// `O_PATH | O_DIRECTORY`: pins the directory; no read right on it is needed.
    dir: OwnedFd,
    /// Where the root was opened from, for error messages only.
    path: PathBuf,
    /// Set once `openat2` is known to be unavailable (or by [`ConfinedRoot::with_walk_only`]):
    /// from then on every lookup takes the component walk.
    walk_only: AtomicBool,
    /// The walk follows relative symlinks without `..` ([`ConfinedRoot::with_relative_links`]).
    relative_links: bool,
}

/// How many symlinks the walk follows in one lookup with [`ConfinedRoot::with_relative_links`];
/// the kernel gives up after 40 (`path_resolution(7)`), kernel interface trees need one or two.
const MAX_LINK_HOPS: usize = 8;

/// Checks a caller may ask for on top of "a regular file inside the root".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenChecks {
    /// The file must be on this device (`st_dev`): for example the device of the pod logs
    /// directory, so that a bind mount planted below it is refused.
    pub device: Option<u64>,
    /// Refuse a file with more than one hard link. A hardlink to a file elsewhere on the same
    /// filesystem is indistinguishable from the file itself once opened; kubelet never makes
    /// one (it renames), so two links mean someone else did.
    pub reject_hardlinked: bool,
}

/// The kind of a filesystem object, for error messages and directory listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
    /// The filesystem did not say (`DT_UNKNOWN` in a listing).
    Unknown,
}

impl FileKind {
    fn from_rustix(t: FileType) -> Self {
        match t {
            FileType::RegularFile => FileKind::Regular,
            FileType::Directory => FileKind::Directory,
            FileType::Symlink => FileKind::Symlink,
            FileType::Fifo => FileKind::Fifo,
            FileType::Socket => FileKind::Socket,
            FileType::CharacterDevice => FileKind::CharDevice,
            FileType::BlockDevice => FileKind::BlockDevice,
            FileType::Unknown => FileKind::Unknown,
        }
    }

    fn from_std(t: std::fs::FileType) -> Self {
        if t.is_file() {
            FileKind::Regular
        } else if t.is_dir() {
            FileKind::Directory
        } else if t.is_symlink() {
            FileKind::Symlink
        } else if t.is_fifo() {
            FileKind::Fifo
        } else if t.is_socket() {
            FileKind::Socket
        } else if t.is_char_device() {
            FileKind::CharDevice
        } else if t.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Unknown
        }
    }

    /// A short, bounded label.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Regular => "regular file",
            FileKind::Directory => "directory",
            FileKind::Symlink => "symlink",
            FileKind::Fifo => "fifo",
            FileKind::Socket => "socket",
            FileKind::CharDevice => "character device",
            FileKind::BlockDevice => "block device",
            FileKind::Unknown => "unknown",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A failed confined open, read or listing. Every variant names the path as the caller gave it
/// (relative to the root), so one log line is enough.
#[derive(Debug)]
pub enum ConfinedError {
    /// Nothing there, or a component on the way is not a directory (`ENOENT`, `ENOTDIR`):
    /// usually churn (a container or pod that just went away).
    NotFound {
        /// The path asked for.
        path: PathBuf,
    },
    /// The object is not a regular file (a FIFO, device, socket or directory).
    NotRegular {
        /// The path asked for.
        path: PathBuf,
        /// What it is instead.
        kind: FileKind,
    },
    /// The kernel reported that resolving the path would leave the root (`EXDEV`), or could not
    /// rule it out (`EAGAIN` on every retry).
    Escapes {
        /// The path asked for.
        path: PathBuf,
    },
    /// The path has a `..` component; refused before any lookup.
    DotDot {
        /// The path asked for.
        path: PathBuf,
    },
    /// The component walk (used without `openat2`) met a symlink.
    SymlinkInPath {
        /// The path asked for.
        path: PathBuf,
        /// The leading part of `path` that is a symlink.
        symlink: PathBuf,
    },
    /// [`ConfinedRoot::read_link_target`] on something that is not a symlink.
    NotSymlink {
        /// The path asked for.
        path: PathBuf,
    },
    /// The file is not on the device the caller required.
    WrongDevice {
        /// The path asked for.
        path: PathBuf,
        /// The `st_dev` required.
        expected: u64,
        /// The file's `st_dev`.
        found: u64,
    },
    /// The file has more than one hard link and the caller refused those.
    Hardlinked {
        /// The path asked for.
        path: PathBuf,
        /// The file's `st_nlink`.
        nlink: u64,
    },
    /// [`ConfinedRoot::read_to_end_capped`] on a file larger than the cap.
    TooLarge {
        /// The path asked for.
        path: PathBuf,
        /// The size seen (at least `cap + 1`).
        size: u64,
        /// The cap.
        cap: u64,
    },
    /// Any other failure of a system call.
    Io {
        /// The path asked for.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

impl ConfinedError {
    /// The path the failed operation was asked for (relative to the root).
    pub fn path(&self) -> &Path {
        match self {
            ConfinedError::NotFound { path }
            | ConfinedError::NotRegular { path, .. }
            | ConfinedError::Escapes { path }
            | ConfinedError::DotDot { path }
            | ConfinedError::SymlinkInPath { path, .. }
            | ConfinedError::NotSymlink { path }
            | ConfinedError::WrongDevice { path, .. }
            | ConfinedError::Hardlinked { path, .. }
            | ConfinedError::TooLarge { path, .. }
            | ConfinedError::Io { path, .. } => path,
        }
    }

    /// Whether the file simply is not there (expected churn, counted apart from real errors).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ConfinedError::NotFound { .. })
    }

    /// Whether the path was refused because it tried, or could have tried, to leave the root or
    /// to reach something other than a plain file: worth a warning, unlike churn.
    pub fn is_refused(&self) -> bool {
        matches!(
            self,
            ConfinedError::NotRegular { .. }
                | ConfinedError::Escapes { .. }
                | ConfinedError::DotDot { .. }
                | ConfinedError::SymlinkInPath { .. }
                | ConfinedError::WrongDevice { .. }
                | ConfinedError::Hardlinked { .. }
        )
    }

    /// A short, bounded label for counters (`kind` label; never a path).
    pub fn kind(&self) -> &'static str {
        match self {
            ConfinedError::NotFound { .. } => "not_found",
            ConfinedError::NotRegular { .. } => "not_regular",
            ConfinedError::Escapes { .. } => "escapes",
            ConfinedError::DotDot { .. } => "dot_dot",
            ConfinedError::SymlinkInPath { .. } => "symlink_in_path",
            ConfinedError::NotSymlink { .. } => "not_symlink",
            ConfinedError::WrongDevice { .. } => "wrong_device",
            ConfinedError::Hardlinked { .. } => "hardlinked",
            ConfinedError::TooLarge { .. } => "too_large",
            ConfinedError::Io { .. } => "io",
        }
    }
}

impl fmt::Display for ConfinedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfinedError::NotFound { path } => write!(f, "{}: not found", path.display()),
            ConfinedError::NotRegular { path, kind } => {
                write!(f, "{}: is a {kind}, not a regular file", path.display())
            }
            ConfinedError::Escapes { path } => write!(f, "{}: resolves outside the root", path.display()),
            ConfinedError::DotDot { path } => write!(f, "{}: paths with `..` are refused", path.display()),
            ConfinedError::SymlinkInPath { path, symlink } => {
                write!(f, "{}: {} is a symlink, refused", path.display(), symlink.display())
            }
            ConfinedError::NotSymlink { path } => write!(f, "{}: not a symlink", path.display()),
            ConfinedError::WrongDevice { path, expected, found } => {
                write!(f, "{}: on device {found:#x}, expected {expected:#x}", path.display())
            }
            ConfinedError::Hardlinked { path, nlink } => {
                write!(f, "{}: has {nlink} hard links, refused", path.display())
            }
            ConfinedError::TooLarge { path, size, cap } => {
                write!(f, "{}: {size} bytes or more, over the cap of {cap}", path.display())
            }
            ConfinedError::Io { path, .. } => write!(f, "cannot read {}", path.display()),
        }
    }
}

impl std::error::Error for ConfinedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConfinedError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// One entry of [`ConfinedRoot::read_dir_entries`] (never `.` or `..`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// The file name.
    pub name: OsString,
    /// The kind reported by the directory (`d_type`); [`FileKind::Unknown`] on filesystems that
    /// do not fill it in.
    pub kind: FileKind,
    /// The inode number reported by the directory.
    pub ino: u64,
}

/// What `fstat` said about a held file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStat {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `st_size`.
    pub size: u64,
    /// `st_nlink`: 0 once every name of the file was removed (the pod was deleted) while the
    /// descriptor keeps it readable.
    pub nlink: u64,
}

impl FileStat {
    fn of(file: &File) -> io::Result<(Self, FileKind)> {
        // std's metadata is an fstat of this descriptor (statx with AT_EMPTY_PATH), and gives
        // every field as u64 on every architecture.
        let m = file.metadata()?;
        let stat = FileStat {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            nlink: m.nlink(),
        };
        Ok((stat, FileKind::from_std(m.file_type())))
    }
}

/// A regular file opened below a [`ConfinedRoot`].
#[derive(Debug)]
pub struct ConfinedFile {
    file: File,
    stat: FileStat,
}

impl ConfinedFile {
    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The open file, giving up the cached stat.
    pub fn into_file(self) -> File {
        self.file
    }

    /// The descriptor.
    pub fn into_owned_fd(self) -> OwnedFd {
        OwnedFd::from(self.file)
    }

    /// `st_dev` as of the open or the last [`ConfinedFile::stat`].
    pub fn dev(&self) -> u64 {
        self.stat.dev
    }

    /// `st_ino` as of the open or the last [`ConfinedFile::stat`].
    pub fn ino(&self) -> u64 {
        self.stat.ino
    }

    /// `st_size` as of the open or the last [`ConfinedFile::stat`].
    pub fn size(&self) -> u64 {
        self.stat.size
    }

    /// `st_nlink` as of the open or the last [`ConfinedFile::stat`].
    pub fn nlink(&self) -> u64 {
        self.stat.nlink
    }

    /// The stat cached at the open or the last [`ConfinedFile::stat`].
    pub fn last_stat(&self) -> FileStat {
        self.stat
    }

    /// Re-reads the stat of the held descriptor (never of the path, which may name another file
    /// by now), caches and returns it.
    pub fn stat(&mut self) -> io::Result<FileStat> {
        self.stat = FileStat::of(&self.file)?.0;
        Ok(self.stat)
    }

    /// Reads up to `buf.len()` bytes at `offset` (`pread(2)`: no file position moves).
    /// `Ok(0)` is the end of the file.
    pub fn pread(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.file.read_at(buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }
}

impl AsFd for ConfinedFile {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl ConfinedRoot {
    /// Opens `path` (followed normally: the caller chooses its root) as the root.
    pub fn open(path: impl Into<PathBuf>) -> Result<Self, ConfinedError> {
        let path = path.into();
        let dir = rustix::fs::open(&path, PATH_DIR_FLAGS, Mode::empty()).map_err(|e| errno_error(&path, e))?;
        Ok(Self::from_fd(dir, path))
    }

    /// Wraps a directory descriptor the caller already holds (`O_PATH` is enough). `path` is only
    /// used in error messages.
    pub fn from_fd(dir: OwnedFd, path: impl Into<PathBuf>) -> Self {
        ConfinedRoot {
            dir,
            path: path.into(),
            walk_only: AtomicBool::new(false),
            relative_links: false,
        }
    }

    /// The same root, whose component walk (the mode without `openat2`) follows a symlink whose
    /// target is relative and has no `..` component, instead of refusing it. Such a link names
    /// something below the directory that holds it, so it cannot leave the root: cgroup v1's
    /// `/sys/fs/cgroup/cpu -> cpu,cpuacct` and procfs' `/proc/mounts -> self/mounts` are of this
    /// kind. Absolute links and links with `..` are still refused. With `openat2` the kernel
    /// resolves every link inside the root anyway.
    #[must_use]
    pub fn with_relative_links(mut self) -> Self {
        self.relative_links = true;
        self
    }

    /// Opens `rel` below the root with `flags` as they are (no `fstat`, no kind check): for
    /// kernel interface files read every tick, where the extra system call of
    /// [`ConfinedRoot::open_file`] would cost on every pod.
    pub fn open_raw(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, ConfinedError> {
        self.open_confined(rel, flags)
    }

    /// The same root, resolving every path by the component walk instead of `openat2`: what a
    /// kernel without `openat2` gets. For tests, and to compare both modes on a node.
    #[must_use]
    pub fn with_walk_only(self) -> Self {
        self.walk_only.store(true, Ordering::Relaxed);
        self
    }

    /// Whether lookups take the component walk (no `openat2`, or [`ConfinedRoot::with_walk_only`]),
    /// which refuses every symlink. For `kinsight check`.
    pub fn uses_walk(&self) -> bool {
        self.walk_only.load(Ordering::Relaxed)
    }

    /// Where the root was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the regular file `rel` below the root for reading. An absolute `rel` is taken
    /// relative to the root, as the kernel does with `RESOLVE_IN_ROOT`.
    pub fn open_file(&self, rel: &Path) -> Result<ConfinedFile, ConfinedError> {
        self.open_file_checked(rel, OpenChecks::default())
    }

    /// [`ConfinedRoot::open_file`] with the extra `checks`.
    pub fn open_file_checked(&self, rel: &Path, checks: OpenChecks) -> Result<ConfinedFile, ConfinedError> {
        let fd = self.open_confined(rel, FILE_FLAGS)?;
        let file = File::from(fd);
        let (stat, kind) = FileStat::of(&file).map_err(|source| io_error(rel, source))?;
        if kind != FileKind::Regular {
            return Err(ConfinedError::NotRegular {
                path: rel.to_path_buf(),
                kind,
            });
        }
        if let Some(expected) = checks.device
            && stat.dev != expected
        {
            return Err(ConfinedError::WrongDevice {
                path: rel.to_path_buf(),
                expected,
                found: stat.dev,
            });
        }
        if checks.reject_hardlinked && stat.nlink > 1 {
            return Err(ConfinedError::Hardlinked {
                path: rel.to_path_buf(),
                nlink: stat.nlink,
            });
        }
        Ok(ConfinedFile { file, stat })
    }

    /// Lists the directory `rel` below the root (the root itself for an empty path), without
    /// `.` and `..`, in the order the filesystem returns them.
    pub fn read_dir_entries(&self, rel: &Path) -> Result<Vec<DirEntry>, ConfinedError> {
        let fd = self.open_confined(rel, LIST_FLAGS)?;
        let mut dir = rustix::fs::Dir::new(fd).map_err(|e| errno_error(rel, e))?;
        let mut entries = Vec::new();
        while let Some(entry) = dir.read() {
            let entry = entry.map_err(|e| errno_error(rel, e))?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            entries.push(DirEntry {
                name: OsString::from_vec(name.to_vec()),
                kind: FileKind::from_rustix(entry.file_type()),
                ino: entry.ino(),
            });
        }
        Ok(entries)
    }

    /// The text of the symlink `rel` (`readlinkat(2)` on its confined parent directory): the
    /// link is read, never followed, so the caller can check where it points before opening
    /// anything. The last component must be a plain name.
    pub fn read_link_target(&self, rel: &Path) -> Result<PathBuf, ConfinedError> {
        let parts = components(rel)?;
        let Some((name, parent)) = parts.split_last() else {
            return Err(ConfinedError::NotSymlink {
                path: rel.to_path_buf(),
            });
        };
        let parent_fd = if parent.is_empty() {
            None
        } else {
            Some(self.resolve(rel, parent, PATH_DIR_FLAGS)?)
        };
        let dir = parent_fd.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
        match rustix::fs::readlinkat(dir, *name, Vec::new()) {
            Ok(target) => Ok(PathBuf::from(OsString::from_vec(target.into_bytes()))),
            Err(Errno::INVAL) => Err(ConfinedError::NotSymlink {
                path: rel.to_path_buf(),
            }),
            Err(e) => Err(errno_error(rel, e)),
        }
    }

    /// Reads the whole regular file `rel`, failing with [`ConfinedError::TooLarge`] when it holds
    /// more than `cap` bytes (checked against the size first, then while reading, in case the
    /// file grows meanwhile or reports size 0 as procfs files do).
    pub fn read_to_end_capped(&self, rel: &Path, cap: u64) -> Result<Vec<u8>, ConfinedError> {
        let file = self.open_file(rel)?;
        let size = file.size();
        let too_large = |size| ConfinedError::TooLarge {
            path: rel.to_path_buf(),
            size,
            cap,
        };
        if size > cap {
            return Err(too_large(size));
        }
        let mut buf = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
        let read = file
            .into_file()
            .take(cap.saturating_add(1))
            .read_to_end(&mut buf)
            .map_err(|source| io_error(rel, source))?;
        if read as u64 > cap {
            return Err(too_large(read as u64));
        }
        Ok(buf)
    }

    /// Opens `rel` with `flags`, by `openat2` when the kernel has it, else by the walk.
    fn open_confined(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, ConfinedError> {
        self.resolve(rel, &components(rel)?, flags)
    }

    /// Opens the path made of `parts` (the plain names of `rel`) with `flags`.
    fn resolve(&self, rel: &Path, parts: &[&OsStr], flags: OFlags) -> Result<OwnedFd, ConfinedError> {
        if !self.uses_walk() {
            let err = match self.openat2(parts, flags) {
                Ok(fd) => return Ok(fd),
                Err(e) => e,
            };
            match after_openat2_error(err, || self.openat2_refused()) {
                AfterOpenat2::Walk => self.walk_only.store(true, Ordering::Relaxed),
                AfterOpenat2::Escapes => {
                    return Err(ConfinedError::Escapes {
                        path: rel.to_path_buf(),
                    });
                }
                AfterOpenat2::Fail(e) => return Err(errno_error(rel, e)),
            }
        }
        self.open_parts(rel, parts, flags)
    }

    /// `openat2` relative to the root, retrying the `EAGAIN` a racing rename can cause.
    fn openat2(&self, parts: &[&OsStr], flags: OFlags) -> Result<OwnedFd, Errno> {
        let joined = join(parts);
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let mut result = Err(Errno::AGAIN);
        for _ in 0..EAGAIN_RETRIES {
            result = rustix::fs::openat2(&self.dir, &joined, flags, Mode::empty(), resolve);
            if !matches!(result, Err(Errno::AGAIN)) {
                break;
            }
        }
        result
    }

    /// Whether an `EPERM` from `openat2` means the syscall itself is refused (seccomp) rather
    /// than this one file: opening the root itself with `O_PATH` cannot be refused for any
    /// other reason.
    fn openat2_refused(&self) -> bool {
        let probe = rustix::fs::openat2(
            &self.dir,
            ".",
            OFlags::PATH | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT,
        );
        matches!(probe, Err(Errno::PERM | Errno::NOSYS))
    }

    /// The walk used without `openat2`: opens every component but the last with
    /// `O_PATH | O_NOFOLLOW` and checks that it is a directory (such an open of a symlink yields
    /// the link itself, which `fstat` reports), then opens the last one with
    /// `flags | O_NOFOLLOW`, which fails with `ELOOP` on a symlink (open(2)). `..` never reaches
    /// here. A symlink met on the way is refused, or, with [`ConfinedRoot::with_relative_links`],
    /// replaced by its target's components when that target is relative and has no `..`.
    fn open_parts(&self, rel: &Path, parts: &[&OsStr], flags: OFlags) -> Result<OwnedFd, ConfinedError> {
        if parts.is_empty() {
            // The root itself.
            return rustix::fs::openat(&self.dir, ".", flags, Mode::empty()).map_err(|e| errno_error(rel, e));
        }
        let mut queue: VecDeque<OsString> = parts.iter().map(|p| p.to_os_string()).collect();
        let mut hops = 0;
        let mut walked = PathBuf::new();
        let mut cur: Option<OwnedFd> = None;
        while let Some(name) = queue.pop_front() {
            walked.push(&name);
            let at = cur.as_ref().map_or(self.dir.as_fd(), AsFd::as_fd);
            let is_link = |fd: &OwnedFd| {
                rustix::fs::fstat(fd)
                    .map(|st| FileType::from_raw_mode(st.st_mode))
                    .map_err(|e| errno_error(rel, e))
            };
            if !queue.is_empty() {
                let fd = rustix::fs::openat(
                    at,
                    &name,
                    OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| errno_error(rel, e))?;
                match is_link(&fd)? {
                    FileType::Directory => cur = Some(fd),
                    FileType::Symlink => self.follow(at, &name, &mut queue, &mut hops, rel, &walked)?,
                    _ => {
                        return Err(ConfinedError::NotFound {
                            path: rel.to_path_buf(),
                        });
                    }
                }
                continue;
            }
            if flags.contains(OFlags::PATH) {
                // O_PATH | O_NOFOLLOW opens a symlink itself instead of failing: check the kind.
                let fd = rustix::fs::openat(
                    at,
                    &name,
                    flags.difference(OFlags::DIRECTORY) | OFlags::NOFOLLOW,
                    Mode::empty(),
                )
                .map_err(|e| errno_error(rel, e))?;
                match is_link(&fd)? {
                    FileType::Symlink => self.follow(at, &name, &mut queue, &mut hops, rel, &walked)?,
                    FileType::Directory => return Ok(fd),
                    _ if flags.contains(OFlags::DIRECTORY) => {
                        return Err(ConfinedError::NotFound {
                            path: rel.to_path_buf(),
                        });
                    }
                    _ => return Ok(fd),
                }
                continue;
            }
            match rustix::fs::openat(at, &name, flags | OFlags::NOFOLLOW, Mode::empty()) {
                Err(Errno::LOOP) => self.follow(at, &name, &mut queue, &mut hops, rel, &walked)?,
                // With O_DIRECTORY a symlink fails as ENOTDIR instead: say which it was.
                Err(Errno::NOTDIR)
                    if flags.contains(OFlags::DIRECTORY)
                        && rustix::fs::statat(at, &name, AtFlags::SYMLINK_NOFOLLOW)
                            .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink) =>
                {
                    self.follow(at, &name, &mut queue, &mut hops, rel, &walked)?;
                }
                other => return other.map_err(|e| errno_error(rel, e)),
            }
        }
        // Only a followed link can empty the queue without an open: its target was empty.
        Err(ConfinedError::SymlinkInPath {
            path: rel.to_path_buf(),
            symlink: walked,
        })
    }

    /// The symlink `name` in `at` met by the walk: refused, or (with relative links allowed) its
    /// target's components put in front of what is left to walk.
    fn follow(
        &self,
        at: BorrowedFd<'_>,
        name: &OsStr,
        queue: &mut VecDeque<OsString>,
        hops: &mut usize,
        rel: &Path,
        walked: &Path,
    ) -> Result<(), ConfinedError> {
        let refused = || ConfinedError::SymlinkInPath {
            path: rel.to_path_buf(),
            symlink: walked.to_path_buf(),
        };
        if !self.relative_links || *hops >= MAX_LINK_HOPS {
            return Err(refused());
        }
        *hops += 1;
        let target = rustix::fs::readlinkat(at, name, Vec::new()).map_err(|e| errno_error(rel, e))?;
        let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
        let mut parts = Vec::new();
        for c in target.components() {
            match c {
                Component::Normal(p) => parts.push(p.to_os_string()),
                Component::CurDir => {}
                Component::RootDir | Component::ParentDir | Component::Prefix(_) => return Err(refused()),
            }
        }
        if parts.is_empty() {
            return Err(refused());
        }
        for p in parts.into_iter().rev() {
            queue.push_front(p);
        }
        Ok(())
    }
}

/// What to do after `openat2` failed.
#[derive(Debug, PartialEq, Eq)]
enum AfterOpenat2 {
    /// The syscall is unavailable: take the walk, now and for every later lookup.
    Walk,
    /// Resolution would have left the root.
    Escapes,
    /// An error about this path.
    Fail(Errno),
}

/// Classifies an `openat2` error. `ENOSYS`: kernel older than 5.6. `EPERM`: either a seccomp
/// filter that predates the syscall (then `refused()` confirms it on a probe that cannot fail
/// otherwise) or a genuine error for this file. `EXDEV`, and `EAGAIN` after the retries: the
/// kernel saw, or could not rule out, an escape from the root (openat2(2)).
fn after_openat2_error(e: Errno, refused: impl FnOnce() -> bool) -> AfterOpenat2 {
    match e {
        Errno::NOSYS => AfterOpenat2::Walk,
        Errno::PERM if refused() => AfterOpenat2::Walk,
        Errno::AGAIN | Errno::XDEV => AfterOpenat2::Escapes,
        e => AfterOpenat2::Fail(e),
    }
}

/// The plain names of `rel`: `/` and `.` dropped (an absolute path is taken relative to the
/// root), `..` refused.
fn components(rel: &Path) -> Result<Vec<&OsStr>, ConfinedError> {
    let mut parts = Vec::new();
    for c in rel.components() {
        match c {
            Component::Normal(name) => parts.push(name),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                return Err(ConfinedError::DotDot {
                    path: rel.to_path_buf(),
                });
            }
        }
    }
    Ok(parts)
}

/// `parts` joined with `/`; `.` when empty (the root itself).
fn join(parts: &[&OsStr]) -> PathBuf {
    if parts.is_empty() {
        return PathBuf::from(".");
    }
    let mut bytes = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            bytes.push(b'/');
        }
        bytes.extend_from_slice(p.as_bytes());
    }
    PathBuf::from(OsString::from_vec(bytes))
}

fn errno_error(path: &Path, e: Errno) -> ConfinedError {
    match e {
        Errno::NOENT | Errno::NOTDIR => ConfinedError::NotFound {
            path: path.to_path_buf(),
        },
        e => io_error(path, e.into()),
    }
}

fn io_error(path: &Path, source: io::Error) -> ConfinedError {
    ConfinedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;
    use std::sync::mpsc;
    use std::time::Duration;

    const SECRET: &[u8] = b"outside secret\n";
    const POD_LOG: &str = "var/log/pods/shop_web-5468c5d4d7-n2swr_198f7dd2-2270-11ea-be47-0a5d932f5920/web/0.log";
    const LINK_TARGET: &str = "/var/log/pods/shop_web-5468c5d4d7-n2swr_198f7dd2-2270-11ea-be47-0a5d932f5920/web/0.log";

    /// `<tmp>/outside/secret` and a root `<tmp>/root` holding a pod log file and a
    /// `/var/log/containers` symlink to it, as kubelet lays them out.
    struct Fixture {
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::create_dir(tmp.path().join("outside")).unwrap();
            std::fs::write(tmp.path().join("outside/secret"), SECRET).unwrap();
            let root = tmp.path().join("root");
            let log = root.join(POD_LOG);
            std::fs::create_dir_all(log.parent().unwrap()).unwrap();
            std::fs::write(&log, b"2026-01-05T10:11:12.2Z stderr F hello\n").unwrap();
            std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
            symlink(LINK_TARGET, root.join("var/log/containers/web.log")).unwrap();
            Fixture { tmp }
        }

        fn root_dir(&self) -> PathBuf {
            self.tmp.path().join("root")
        }

        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }

        /// Both modes: `openat2` and the walk.
        fn roots(&self) -> [ConfinedRoot; 2] {
            [
                ConfinedRoot::open(self.root_dir()).unwrap(),
                ConfinedRoot::open(self.root_dir()).unwrap().with_walk_only(),
            ]
        }

        fn plant_symlink(&self, target: impl AsRef<Path>, at: &str) {
            let at = self.root_dir().join(at);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            symlink(target, at).unwrap();
        }
    }

    fn read_all(f: &ConfinedFile) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = f.pread(out.len() as u64, &mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// Asserts that opening `rel` fails in both modes and returns the two errors.
    fn refused(fx: &Fixture, rel: &str) -> [ConfinedError; 2] {
        fx.roots().map(|root| match root.open_file(Path::new(rel)) {
            Ok(f) => panic!(
                "{rel} (walk {}) opened: {:?}",
                root.uses_walk(),
                String::from_utf8_lossy(&read_all(&f))
            ),
            Err(e) => e,
        })
    }

    #[test]
    fn opens_regular_file_in_both_modes() {
        let fx = Fixture::new();
        for root in fx.roots() {
            let f = root.open_file(Path::new(POD_LOG)).unwrap();
            assert_eq!(read_all(&f), b"2026-01-05T10:11:12.2Z stderr F hello\n");
            assert_eq!(f.size(), 38);
            assert_eq!(f.nlink(), 1);
            // An absolute path means the same file under the root.
            let g = root.open_file(&Path::new("/").join(POD_LOG)).unwrap();
            assert_eq!(g.ino(), f.ino());
        }
    }

    #[test]
    fn openat2_is_used_on_this_kernel() {
        let fx = Fixture::new();
        let root = ConfinedRoot::open(fx.root_dir()).unwrap();
        root.open_file(Path::new(POD_LOG)).unwrap();
        assert!(
            !root.uses_walk(),
            "openat2 missing on the test kernel: only the walk is tested"
        );
    }

    #[test]
    fn absolute_symlink_to_host_file_is_contained() {
        let fx = Fixture::new();
        fx.plant_symlink("/etc/hostname", "var/log/pods/x/c/0.log");
        let host = std::fs::read("/etc/hostname").ok();
        let [in_root, walk] = refused(&fx, "var/log/pods/x/c/0.log");
        // openat2 resolves /etc/hostname inside the root, where there is none.
        assert!(in_root.is_not_found(), "{in_root}");
        assert!(matches!(walk, ConfinedError::SymlinkInPath { .. }), "{walk}");

        // With a file of that name inside the root, openat2 opens that one, never the host's.
        std::fs::create_dir_all(fx.root_dir().join("etc")).unwrap();
        std::fs::write(fx.root_dir().join("etc/hostname"), b"inside\n").unwrap();
        let f = fx.roots()[0].open_file(Path::new("var/log/pods/x/c/0.log")).unwrap();
        let content = read_all(&f);
        assert_eq!(content, b"inside\n");
        assert_ne!(Some(content), host);
    }

    #[test]
    fn absolute_symlink_to_outside_path_is_contained() {
        let fx = Fixture::new();
        fx.plant_symlink(fx.outside().join("secret"), "var/log/pods/x/c/0.log");
        let [in_root, walk] = refused(&fx, "var/log/pods/x/c/0.log");
        assert!(in_root.is_not_found(), "{in_root}");
        assert!(matches!(walk, ConfinedError::SymlinkInPath { .. }), "{walk}");
    }

    #[test]
    fn relative_symlink_climbing_out_is_contained() {
        let fx = Fixture::new();
        // root/a/link -> ../../outside/secret would be <tmp>/outside/secret without confinement.
        fx.plant_symlink("../../outside/secret", "a/link");
        let [in_root, walk] = refused(&fx, "a/link");
        // Clamped at the root: root/outside/secret, which does not exist.
        assert!(in_root.is_not_found(), "{in_root}");
        match walk {
            ConfinedError::SymlinkInPath { symlink, .. } => assert_eq!(symlink, Path::new("a/link")),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn symlink_in_a_middle_component_is_contained() {
        let fx = Fixture::new();
        fx.plant_symlink(fx.outside(), "var/log/pods/evil");
        fx.plant_symlink("../../../../outside", "var/log/pods/evil-rel");
        for rel in ["var/log/pods/evil/secret", "var/log/pods/evil-rel/secret"] {
            let [in_root, walk] = refused(&fx, rel);
            assert!(in_root.is_not_found(), "{in_root}");
            match walk {
                ConfinedError::SymlinkInPath { symlink, .. } => {
                    assert!(symlink.ends_with("var/log/pods/evil") || symlink.ends_with("evil-rel"));
                }
                other => panic!("{other}"),
            }
        }
    }

    #[test]
    fn dot_dot_is_refused_up_front() {
        let fx = Fixture::new();
        for rel in ["../outside/secret", "var/../../outside/secret", "var/log/.."] {
            let errs = refused(&fx, rel);
            for e in errs {
                assert!(matches!(e, ConfinedError::DotDot { .. }), "{e}");
                assert!(e.to_string().contains(".."));
            }
        }
        for root in fx.roots() {
            assert!(matches!(
                root.read_dir_entries(Path::new("..")),
                Err(ConfinedError::DotDot { .. })
            ));
            assert!(matches!(
                root.read_link_target(Path::new("../x")),
                Err(ConfinedError::DotDot { .. })
            ));
        }
    }

    #[test]
    fn magic_links_are_refused() {
        // /proc/self/root is a magic link: with the host's / as the root it would lead anywhere.
        let root = ConfinedRoot::open("/").unwrap();
        let err = root.open_file(Path::new("proc/self/root/etc/hostname")).unwrap_err();
        assert!(!err.is_not_found(), "{err}");
        let walk = ConfinedRoot::open("/").unwrap().with_walk_only();
        let err = walk.open_file(Path::new("proc/self/root/etc/hostname")).unwrap_err();
        assert!(matches!(err, ConfinedError::SymlinkInPath { .. }), "{err}");
    }

    #[test]
    fn hardlink_to_outside_file_is_refused_when_asked() {
        let fx = Fixture::new();
        let at = fx.root_dir().join("var/log/pods/x/c/0.log");
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::hard_link(fx.outside().join("secret"), &at).unwrap();
        let checks = OpenChecks {
            reject_hardlinked: true,
            ..OpenChecks::default()
        };
        for root in fx.roots() {
            let err = root
                .open_file_checked(Path::new("var/log/pods/x/c/0.log"), checks)
                .unwrap_err();
            assert!(matches!(err, ConfinedError::Hardlinked { nlink: 2, .. }), "{err}");
            assert!(err.is_refused());
            // Without the check it is just a file with two names: the caller's choice.
            let f = root.open_file(Path::new("var/log/pods/x/c/0.log")).unwrap();
            assert_eq!(f.nlink(), 2);
            // The pod log itself passes.
            root.open_file_checked(Path::new(POD_LOG), checks).unwrap();
        }
    }

    #[test]
    fn wrong_device_is_refused() {
        let fx = Fixture::new();
        for root in fx.roots() {
            let dev = root.open_file(Path::new(POD_LOG)).unwrap().dev();
            let ok = OpenChecks {
                device: Some(dev),
                ..OpenChecks::default()
            };
            root.open_file_checked(Path::new(POD_LOG), ok).unwrap();
            let wrong = OpenChecks {
                device: Some(dev ^ 1),
                ..OpenChecks::default()
            };
            let err = root.open_file_checked(Path::new(POD_LOG), wrong).unwrap_err();
            assert!(
                matches!(err, ConfinedError::WrongDevice { expected, found, .. } if expected == dev ^ 1 && found == dev)
            );
        }
    }

    /// Runs `f` on another thread and fails the test if it does not return within 10 s.
    fn within_10s<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(10)).expect("hung")
    }

    #[test]
    fn fifo_does_not_hang_and_is_refused() {
        let fx = Fixture::new();
        let dir = fx.root_dir().join("var/log/pods/x/c");
        std::fs::create_dir_all(&dir).unwrap();
        let dirfd = rustix::fs::open(&dir, PATH_DIR_FLAGS, Mode::empty()).unwrap();
        rustix::fs::mknodat(&dirfd, "0.log", FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
        for walk in [false, true] {
            let root_dir = fx.root_dir();
            let err = within_10s(move || {
                let mut root = ConfinedRoot::open(root_dir).unwrap();
                if walk {
                    root = root.with_walk_only();
                }
                root.open_file(Path::new("var/log/pods/x/c/0.log")).map(|_| ())
            })
            .unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfinedError::NotRegular {
                        kind: FileKind::Fifo,
                        ..
                    }
                ),
                "{err}"
            );
            let root_dir = fx.root_dir();
            let err = within_10s(move || {
                ConfinedRoot::open(root_dir)
                    .unwrap()
                    .read_to_end_capped(Path::new("var/log/pods/x/c/0.log"), 1024)
                    .map(|_| ())
            })
            .unwrap_err();
            assert!(matches!(err, ConfinedError::NotRegular { .. }), "{err}");
        }
    }

    #[test]
    fn device_socket_and_directory_are_refused() {
        let fx = Fixture::new();
        let dir = fx.root_dir().join("var/log/pods/x/c");
        std::fs::create_dir_all(&dir).unwrap();
        let dirfd = rustix::fs::open(&dir, PATH_DIR_FLAGS, Mode::empty()).unwrap();
        // /dev/null's numbers: harmless if it were opened. Creating it needs CAP_MKNOD; without it
        // there is nothing to test.
        let have_dev = rustix::fs::mknodat(
            &dirfd,
            "dev.log",
            FileType::CharacterDevice,
            Mode::from_raw_mode(0o644),
            rustix::fs::makedev(1, 3),
        )
        .is_ok();
        let _sock = std::os::unix::net::UnixListener::bind(dir.join("sock.log")).unwrap();
        for root in fx.roots() {
            if have_dev {
                // On a `nodev` mount the open itself fails (EACCES) before fstat: refused either way.
                let err = root.open_file(Path::new("var/log/pods/x/c/dev.log")).unwrap_err();
                assert!(
                    matches!(
                        err,
                        ConfinedError::NotRegular {
                            kind: FileKind::CharDevice,
                            ..
                        }
                    ) || matches!(err, ConfinedError::Io { .. }),
                    "{err}"
                );
            }
            // open(2) on a socket fails with ENXIO.
            let err = root.open_file(Path::new("var/log/pods/x/c/sock.log")).unwrap_err();
            assert!(matches!(err, ConfinedError::Io { .. }), "{err}");
            let err = root.open_file(Path::new("var/log/pods/x/c")).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConfinedError::NotRegular {
                        kind: FileKind::Directory,
                        ..
                    }
                ),
                "{err}"
            );
            let err = root.open_file(Path::new("")).unwrap_err();
            assert!(matches!(err, ConfinedError::NotRegular { .. }), "{err}");
        }
    }

    #[test]
    fn missing_file_is_not_found() {
        let fx = Fixture::new();
        for root in fx.roots() {
            for rel in ["nope", "var/log/nope/0.log", &format!("{POD_LOG}/below-a-file")] {
                let err = root.open_file(Path::new(rel)).unwrap_err();
                assert!(err.is_not_found(), "{rel}: {err}");
                assert_eq!(err.path(), Path::new(rel));
            }
        }
    }

    #[test]
    fn read_link_target_reads_without_following() {
        let fx = Fixture::new();
        fx.plant_symlink(fx.outside().join("secret"), "var/log/containers/evil.log");
        for root in fx.roots() {
            let target = root.read_link_target(Path::new("var/log/containers/web.log")).unwrap();
            assert_eq!(target, Path::new(LINK_TARGET));
            let target = root
                .read_link_target(Path::new("/var/log/containers/evil.log"))
                .unwrap();
            assert_eq!(target, fx.outside().join("secret"));
            let err = root.read_link_target(Path::new(POD_LOG)).unwrap_err();
            assert!(matches!(err, ConfinedError::NotSymlink { .. }), "{err}");
            let err = root
                .read_link_target(Path::new("var/log/containers/gone.log"))
                .unwrap_err();
            assert!(err.is_not_found(), "{err}");
            let err = root.read_link_target(Path::new("")).unwrap_err();
            assert!(matches!(err, ConfinedError::NotSymlink { .. }), "{err}");
        }
        // The walk refuses a symlinked parent; openat2 follows it inside the root.
        fx.plant_symlink("/var/log/containers", "containers");
        let [in_root, walk] = fx.roots();
        assert_eq!(
            in_root.read_link_target(Path::new("containers/web.log")).unwrap(),
            Path::new(LINK_TARGET)
        );
        let err = walk.read_link_target(Path::new("containers/web.log")).unwrap_err();
        assert!(matches!(err, ConfinedError::SymlinkInPath { .. }), "{err}");
    }

    #[test]
    fn kubelet_symlink_is_followed_inside_the_root_by_openat2_only() {
        let fx = Fixture::new();
        let [in_root, walk] = fx.roots();
        let f = in_root.open_file(Path::new("var/log/containers/web.log")).unwrap();
        assert_eq!(f.ino(), in_root.open_file(Path::new(POD_LOG)).unwrap().ino());
        let err = walk.open_file(Path::new("var/log/containers/web.log")).unwrap_err();
        assert!(matches!(err, ConfinedError::SymlinkInPath { .. }), "{err}");
    }

    #[test]
    fn read_dir_entries_lists_confined() {
        let fx = Fixture::new();
        fx.plant_symlink(fx.outside(), "var/log/evil");
        for root in fx.roots() {
            let mut names: Vec<_> = root
                .read_dir_entries(Path::new("var/log/containers"))
                .unwrap()
                .into_iter()
                .map(|e| (e.name, e.kind))
                .collect();
            names.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(names, vec![(OsString::from("web.log"), FileKind::Symlink)]);
            let top = root.read_dir_entries(Path::new("")).unwrap();
            assert_eq!(top.len(), 1);
            assert_eq!(top[0].name, "var");
            assert_eq!(top[0].kind, FileKind::Directory);
            assert!(
                root.read_dir_entries(Path::new("var/log/nope"))
                    .unwrap_err()
                    .is_not_found()
            );
            assert!(root.read_dir_entries(Path::new(POD_LOG)).unwrap_err().is_not_found());
            // Never the outside directory's entries.
            match root.read_dir_entries(Path::new("var/log/evil")) {
                Err(e) if root.uses_walk() => assert!(matches!(e, ConfinedError::SymlinkInPath { .. }), "{e}"),
                Err(e) => assert!(e.is_not_found(), "{e}"),
                Ok(entries) => panic!("listed {entries:?}"),
            }
        }
    }

    #[test]
    fn read_to_end_capped_bounds_the_read() {
        let fx = Fixture::new();
        std::fs::write(fx.root_dir().join("big"), vec![b'x'; 100]).unwrap();
        for root in fx.roots() {
            assert_eq!(root.read_to_end_capped(Path::new("big"), 100).unwrap().len(), 100);
            let err = root.read_to_end_capped(Path::new("big"), 99).unwrap_err();
            assert!(
                matches!(err, ConfinedError::TooLarge { size: 100, cap: 99, .. }),
                "{err}"
            );
            assert!(err.to_string().contains("100"));
        }
        // procfs files report size 0: the cap is enforced while reading.
        let proc = ConfinedRoot::open("/proc").unwrap();
        let err = proc.read_to_end_capped(Path::new("self/status"), 16).unwrap_err();
        assert!(
            matches!(err, ConfinedError::TooLarge { size: 17, cap: 16, .. }),
            "{err}"
        );
    }

    #[test]
    fn stat_follows_the_descriptor_not_the_path() {
        let fx = Fixture::new();
        let path = fx.root_dir().join(POD_LOG);
        for root in fx.roots() {
            let mut f = root.open_file(Path::new(POD_LOG)).unwrap();
            let before = f.last_stat();
            // Rotate: rename away, create a new file at the path, and write to the old one.
            let rotated = path.with_extension("log.20260105-101112");
            std::fs::rename(&path, &rotated).unwrap();
            std::fs::write(&path, b"new file\n").unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&rotated)
                .and_then(|mut o| io::Write::write_all(&mut o, b"more\n"))
                .unwrap();
            let after = f.stat().unwrap();
            assert_eq!(after.ino, before.ino);
            assert_eq!(after.size, before.size + 5);
            assert_eq!(f.size(), after.size);
            let mut buf = [0u8; 5];
            assert_eq!(f.pread(before.size, &mut buf).unwrap(), 5);
            assert_eq!(&buf, b"more\n");
            // Deleted while open: nlink 0, still readable.
            std::fs::remove_file(&rotated).unwrap();
            assert_eq!(f.stat().unwrap().nlink, 0);
            assert_eq!(f.pread(0, &mut buf).unwrap(), 5);
            // Put the fixture back for the other mode.
            std::fs::remove_file(&path).unwrap();
            std::fs::write(&path, b"2026-01-05T10:11:12.2Z stderr F hello\n").unwrap();
        }
    }

    #[test]
    fn openat2_errors_choose_the_fallback() {
        let never = || -> bool { panic!("no probe needed") };
        assert_eq!(after_openat2_error(Errno::NOSYS, never), AfterOpenat2::Walk);
        assert_eq!(after_openat2_error(Errno::PERM, || true), AfterOpenat2::Walk);
        assert_eq!(
            after_openat2_error(Errno::PERM, || false),
            AfterOpenat2::Fail(Errno::PERM)
        );
        assert_eq!(after_openat2_error(Errno::XDEV, never), AfterOpenat2::Escapes);
        assert_eq!(after_openat2_error(Errno::AGAIN, never), AfterOpenat2::Escapes);
        assert_eq!(
            after_openat2_error(Errno::NOENT, never),
            AfterOpenat2::Fail(Errno::NOENT)
        );
        // On this kernel the probe succeeds: an EPERM would be about the file.
        let fx = Fixture::new();
        assert!(!ConfinedRoot::open(fx.root_dir()).unwrap().openat2_refused());
    }

    #[test]
    fn errors_display_the_path() {
        let e = ConfinedError::SymlinkInPath {
            path: PathBuf::from("a/b/c"),
            symlink: PathBuf::from("a/b"),
        };
        assert_eq!(e.to_string(), "a/b/c: a/b is a symlink, refused");
        assert_eq!(e.kind(), "symlink_in_path");
        let e = io_error(Path::new("x"), io::Error::from_raw_os_error(5));
        assert_eq!(e.to_string(), "cannot read x");
        assert!(std::error::Error::source(&e).is_some());
    }
}
