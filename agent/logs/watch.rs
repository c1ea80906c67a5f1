//! inotify on the directories where log files appear, so that a new file (a new pod, a restart,
//! a rotation) is found at once instead of at the next periodic scan.
//!
//! Only directory events are asked for (`IN_CREATE`, `IN_MOVED_FROM`, `IN_MOVED_TO`,
//! `IN_DELETE`, `IN_DELETE_SELF`; inotify(7)): a container runtime writes each log line with its
//! own `write(2)`, so `IN_MODIFY` on the files would cost an event per line (tens of thousands a
//! second on a busy node) for nothing the read rounds do not already see. Appended data is
//! found by the rounds; inotify only says "scan now".
//!
//! The watches name paths below the host root; they never open a file, so a planted symlink
//! can at most make kinsight watch another directory and scan once more. When inotify cannot be
//! used (no instance left, `max_user_watches` reached), the pipeline keeps its periodic scan and
//! says so once.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use inotify::{EventMask, Inotify, WatchDescriptor, WatchMask};
use rustix::io::Errno;

/// What is watched on every directory.
const MASK: WatchMask = WatchMask::CREATE
    .union(WatchMask::MOVED_FROM)
    .union(WatchMask::MOVED_TO)
    .union(WatchMask::DELETE)
    .union(WatchMask::DELETE_SELF)
    .union(WatchMask::ONLYDIR);

/// The directories being watched.
pub struct DirWatch {
    inotify: Inotify,
    /// The host root, joined to the relative directories.
    root: PathBuf,
    by_dir: HashMap<PathBuf, WatchDescriptor>,
    buf: Vec<u8>,
    /// A watch could not be added (reported once): the periodic scan covers that directory.
    pub degraded: bool,
}

impl std::fmt::Debug for DirWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirWatch")
            .field("dirs", &self.by_dir.len())
            .field("degraded", &self.degraded)
            .finish_non_exhaustive()
    }
}

impl DirWatch {
    /// An inotify instance for directories below `root`.
    pub fn new(root: &Path) -> io::Result<DirWatch> {
        Ok(DirWatch {
            inotify: Inotify::init()?,
            root: root.to_path_buf(),
            by_dir: HashMap::new(),
            buf: vec![0; 16 * 1024],
            degraded: false,
        })
    }

    /// Watches `dirs` (relative to the root) that are not watched yet, or, for one that does not
    /// exist (yet), its nearest existing ancestor, whose events say when it appears; forgets the
    /// watches of directories no longer wanted. Returns how many watches were added: a
    /// directory watched only now may have received entries between the scan that found it and
    /// its watch (kubelet creates a pod's directory, then the container's, then the file), so
    /// the caller scans once more.
    pub fn set(&mut self, dirs: &[PathBuf]) -> usize {
        let mut wanted: Vec<PathBuf> = dirs
            .iter()
            .filter_map(|d| {
                d.ancestors()
                    .find(|a| self.root.join(a).is_dir())
                    .map(Path::to_path_buf)
            })
            .collect();
        wanted.sort();
        wanted.dedup();
        let gone: Vec<PathBuf> = self
            .by_dir
            .keys()
            .filter(|d| wanted.binary_search(d).is_err())
            .cloned()
            .collect();
        for d in gone {
            if let Some(wd) = self.by_dir.remove(&d) {
                // Already removed by the kernel when the directory went away.
                let _ = self.inotify.watches().remove(wd);
            }
        }
        let mut added = 0;
        for d in &wanted {
            if self.by_dir.contains_key(d) {
                continue;
            }
            match self.inotify.watches().add(self.root.join(d), MASK) {
                Ok(wd) => {
                    self.by_dir.insert(d.clone(), wd);
                    added += 1;
                }
                // Gone (or never a directory) between the check and now: the next scan sees it.
                Err(e) if matches!(Errno::from_io_error(&e), Some(Errno::NOENT | Errno::NOTDIR)) => {}
                Err(e) => {
                    if !self.degraded {
                        tracing::warn!(dir = %d.display(), error = %e, "cannot watch a log directory with inotify (fs.inotify.max_user_watches?); new files there are found by the periodic scan");
                    }
                    self.degraded = true;
                }
            }
        }
        added
    }

    /// Whether anything appeared, moved or went away since the last call (drains the queue;
    /// never blocks). A queue overflow counts as a change.
    pub fn changed(&mut self) -> bool {
        let mut changed = false;
        let mut ignored: Vec<WatchDescriptor> = Vec::new();
        loop {
            match self.inotify.read_events(&mut self.buf) {
                Ok(events) => {
                    let mut any = false;
                    for e in events {
                        any = true;
                        if e.mask.contains(EventMask::IGNORED) {
                            ignored.push(e.wd.clone());
                        } else {
                            changed = true;
                        }
                    }
                    if !any {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "reading inotify events failed; scanning");
                    changed = true;
                    break;
                }
            }
        }
        if !ignored.is_empty() {
            // The kernel dropped these watches (their directory is gone).
            self.by_dir.retain(|_, wd| !ignored.contains(wd));
        }
        changed
    }

    /// Directories being watched.
    pub fn len(&self) -> usize {
        self.by_dir.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_dir.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn new_files_and_renames_are_changes_and_appends_are_not() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("var/log/app");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.log"), "x\n").unwrap();
        let mut w = DirWatch::new(t.path()).unwrap();
        assert_eq!(w.set(&[PathBuf::from("var/log/app")]), 1);
        assert_eq!(w.len(), 1);
        assert_eq!(w.set(&[PathBuf::from("var/log/app")]), 0, "already watched");
        assert!(!w.changed());

        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.join("a.log"))
            .unwrap()
            .write_all(b"more\n")
            .unwrap();
        assert!(!w.changed(), "an append is not a change");
        std::fs::write(dir.join("b.log"), "x\n").unwrap();
        assert!(w.changed(), "a new file");
        assert!(!w.changed(), "drained");
        std::fs::rename(dir.join("a.log"), dir.join("a.log.1")).unwrap();
        assert!(w.changed(), "a rename");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(w.changed());
        w.changed();
        assert!(w.is_empty(), "the kernel dropped the watch of the removed directory");
        assert_eq!(w.set(&[]), 0);
        assert!(w.is_empty());
    }

    #[test]
    fn a_directory_that_does_not_exist_yet_is_watched_through_its_ancestor() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("var")).unwrap();
        let mut w = DirWatch::new(t.path()).unwrap();
        let pods = [PathBuf::from("var/log/pods")];
        assert_eq!(w.set(&pods), 1, "var, the nearest existing ancestor");
        assert_eq!(w.set(&pods), 0);
        std::fs::create_dir_all(t.path().join("var/log/pods")).unwrap();
        assert!(w.changed(), "var/log appeared");
        assert_eq!(w.set(&pods), 1, "now the directory itself");
        assert_eq!(w.len(), 1, "and no longer its ancestor");
        std::fs::write(t.path().join("var/log/pods/x"), "").unwrap();
        assert!(w.changed());
    }
}
