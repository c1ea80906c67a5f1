//! The checkpoint store: committed read positions, persisted in the state directory.
//!
//! One JSON file, `checkpoints.json`, in the state directory (a hostPath, so positions survive
//! pod restarts and upgrades):
//!
//! ```json
//! {"version":1,
//!  "files":[{"path":"/var/log/pods/…/0.log","dev":2049,"inode":100,
//!            "fingerprint":{"len":49,"hash":"f5e2d1533c0056e1"},"offset":241,
//!            "marker":"…","container_id":"0123…","group":"…","stream":"…","finished":false}],
//!  "journal":{"cursor":"s=…"}}
//! ```
//!
//! Offsets here are *committed* offsets: the caller stores an offset only once CloudWatch Logs
//! accepted (or permanently rejected) every event before it, so a restart re-sends at most what
//! was in flight and never skips. Fluent Bit and Vector, by contrast, record a position as soon
//! as its lines are read into their own buffers, not when they are delivered
//! (`fluent/fluent-bit: plugins/in_tail/tail_file.c`; `vectordotdev/vector:
//! lib/file-source/src/checkpointer.rs`), so whatever was buffered at a crash is lost.
//!
//! Rules this module keeps:
//!
//! - **Never a stopped agent.** A state file that cannot be read (corrupt, truncated, foreign,
//!   from an unknown future format version, larger than [`MAX_STATE_BYTES`]) is renamed aside to
//!   `checkpoints.json.corrupt-<unix ms>` (never deleted: it may be needed to explain a gap), a
//!   [`LoadWarning`] is handed to the caller to log and count, and the store starts empty.
//! - **Atomic replacement.** A save writes `checkpoints.json.tmp` in the same directory, fsyncs
//!   it, renames it over `checkpoints.json` and fsyncs the directory (rename(2) is atomic within
//!   a filesystem; without the directory fsync the rename itself may not survive a power loss).
//!   A crash at any point leaves either the old or the new file complete; a stale `.tmp` is
//!   ignored by the loader and replaced by the next save.
//! - **Coalesced writes.** Commits happen per acknowledged batch, far more often than the disk
//!   needs to hear about them: [`Store::save_if_due`] writes at most once per
//!   [`SAVE_INTERVAL`], [`Store::save_now`] once more at shutdown, and neither writes when
//!   nothing changed. The caller passes monotonic time, so tests control it.
//! - **Versioned.** `version` is checked before anything else; a release reads every version an
//!   earlier release wrote. Unknown fields inside a version-1 file are ignored, so a later
//!   release may add optional fields without a version bump and an older release can still
//!   read the file after a rollback.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use serde::{Deserialize, Serialize};

use super::identity::{self, FileKey, Fingerprint, Mismatch, ReadAt, Stored, Verdict};

/// The state file's name in the state directory.
pub const FILE_NAME: &str = "checkpoints.json";

/// The temporary file a save writes before renaming it over [`FILE_NAME`].
pub const TMP_FILE_NAME: &str = "checkpoints.json.tmp";

/// The format version this release writes (and the only one it reads so far).
pub const FORMAT_VERSION: u64 = 1;

/// A state file larger than this is not read. An entry is about 500 bytes, so this is over
/// 100,000 files: far beyond a node's 110 pods × 5 rotated files, and small enough that a
/// garbage file cannot make the agent allocate without bound at startup.
pub const MAX_STATE_BYTES: u64 = 64 * 1024 * 1024;

/// Minimum time between two writes by [`Store::save_if_due`].
pub const SAVE_INTERVAL: Duration = Duration::from_secs(1);

/// How many `-<n>` suffixes are tried when a set-aside name is taken (two failures in the same
/// millisecond, or a clock that stands still).
const SET_ASIDE_ATTEMPTS: u32 = 100;

/// One tailed file's checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the file was last seen (its rotated name once rotated). Informational and used to
    /// group files by container directory; the file is recognised by `dev`, `inode`,
    /// `fingerprint` and `marker`. Written as UTF-8 (a non-UTF-8 byte becomes U+FFFD).
    #[serde(with = "path_text")]
    pub path: PathBuf,
    /// `st_dev` of the file.
    pub dev: u64,
    /// `st_ino` of the file.
    pub inode: u64,
    /// The file's head ([`identity::fingerprint`]).
    pub fingerprint: Fingerprint,
    /// The committed offset: every byte before it was delivered or permanently settled.
    pub offset: u64,
    /// [`identity::marker`] of `offset`; a 16-digit hex string in JSON.
    #[serde(with = "identity::hex_u64")]
    pub marker: u64,
    /// The container ID, when known (from the `/var/log/containers` name or the pod index).
    pub container_id: Option<String>,
    /// The log group the file's events go to.
    pub group: String,
    /// The log stream the file's events go to, fixed for the file across rotations.
    pub stream: String,
    /// Read to the end and fully settled after a rotation: kept so that a restart does not read
    /// the rotated file again, until it is gone (re-reading rotated files after an upgrade is
    /// vectordotdev/vector#20798).
    pub finished: bool,
}

impl Entry {
    /// The `(dev, inode)` the entry is filed under.
    pub fn key(&self) -> FileKey {
        FileKey {
            dev: self.dev,
            inode: self.inode,
        }
    }

    /// What [`identity::matches`] checks a file against.
    pub fn stored(&self) -> Stored {
        Stored {
            key: self.key(),
            fingerprint: self.fingerprint,
            offset: self.offset,
            marker: self.marker,
        }
    }
}

/// The journal's checkpoint: the cursor of the last entry committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalCheckpoint {
    /// The journald cursor string (`s=…;i=…;…`), opaque.
    pub cursor: String,
}

/// What [`Store::lookup`] found for a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'a> {
    /// No checkpoint for this `(dev, inode)`.
    Absent,
    /// The checkpoint is this file's: resume at `entry.offset` (or skip it if `finished`).
    Same(&'a Entry),
    /// A checkpoint for this `(dev, inode)` exists but describes another file (the inode was
    /// reused, or the file was truncated or rewritten): the file is new. The caller replaces the
    /// entry once it tracks the file.
    Reused {
        /// The stale checkpoint.
        entry: &'a Entry,
        /// What differed.
        mismatch: Mismatch,
    },
}

/// Why a state file could not be loaded.
#[derive(Debug)]
pub enum LoadProblem {
    /// Opening or reading it failed (including a symlink planted at its name: `ELOOP`).
    Io(io::Error),
    /// It is not a regular file.
    NotRegular,
    /// It is larger than the cap.
    TooLarge {
        /// Bytes seen (at least `cap + 1`).
        size: u64,
        /// [`MAX_STATE_BYTES`].
        cap: u64,
    },
    /// It is not JSON of the expected shape (garbage, truncated, another program's file).
    Parse(serde_json::Error),
    /// Its format version is not one this release knows (written by a newer release).
    UnsupportedVersion(u64),
    /// It parsed, but a value is out of range.
    Invalid(&'static str),
}

impl LoadProblem {
    /// A short, bounded label for counters.
    pub fn kind(&self) -> &'static str {
        match self {
            LoadProblem::Io(_) => "io",
            LoadProblem::NotRegular => "not_regular",
            LoadProblem::TooLarge { .. } => "too_large",
            LoadProblem::Parse(_) => "parse",
            LoadProblem::UnsupportedVersion(_) => "unsupported_version",
            LoadProblem::Invalid(_) => "invalid",
        }
    }
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Io(e) => write!(f, "cannot read it: {e}"),
            LoadProblem::NotRegular => f.write_str("it is not a regular file"),
            LoadProblem::TooLarge { size, cap } => write!(f, "it holds {size} bytes or more, over the cap of {cap}"),
            LoadProblem::Parse(e) => write!(f, "it is not a checkpoint file: {e}"),
            LoadProblem::UnsupportedVersion(v) => {
                write!(
                    f,
                    "its format version {v} is unknown to this release (which reads {FORMAT_VERSION})"
                )
            }
            LoadProblem::Invalid(what) => write!(f, "it holds an invalid value: {what}"),
        }
    }
}

/// What became of an unreadable state file.
#[derive(Debug)]
pub enum SetAside {
    /// Renamed to this path.
    Renamed(PathBuf),
    /// The rename failed; the file stays in place and the store will not overwrite it until a
    /// later save manages to set it aside.
    Failed(io::Error),
}

/// The state file could not be loaded; the store started empty. For the caller to log (WARN:
/// files are then read per the start-position rules as if new) and count.
#[derive(Debug)]
pub struct LoadWarning {
    /// The state file.
    pub path: PathBuf,
    /// Why it was not loaded.
    pub problem: LoadProblem,
    /// Where it went.
    pub set_aside: SetAside,
}

impl fmt::Display for LoadWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "checkpoint file {} not loaded: {}; ",
            self.path.display(),
            self.problem
        )?;
        match &self.set_aside {
            SetAside::Renamed(to) => write!(f, "renamed to {}", to.display())?,
            SetAside::Failed(e) => write!(f, "could not rename it aside ({e}), it is kept in place")?,
        }
        f.write_str("; starting without checkpoints")
    }
}

impl std::error::Error for LoadWarning {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            LoadProblem::Io(e) => Some(e),
            LoadProblem::Parse(e) => Some(e),
            _ => None,
        }
    }
}

/// The step of a save that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveStep {
    /// Renaming an unreadable state file aside before replacing it.
    SetAside,
    /// Creating or writing the temporary file.
    Write,
    /// fsync of the temporary file.
    Sync,
    /// Renaming the temporary file over the state file.
    Rename,
    /// fsync of the state directory.
    SyncDir,
}

impl fmt::Display for SaveStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SaveStep::SetAside => "set aside the unreadable",
            SaveStep::Write => "write",
            SaveStep::Sync => "fsync",
            SaveStep::Rename => "rename into place",
            SaveStep::SyncDir => "fsync the directory of",
        })
    }
}

/// A failed save. The store stays dirty, so the next due save tries again; the checkpoint on
/// disk is the previous complete one.
#[derive(Debug)]
pub struct SaveError {
    /// What failed.
    pub step: SaveStep,
    /// The file concerned.
    pub path: PathBuf,
    /// The cause.
    pub source: io::Error,
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot {} {}", self.step, self.path.display())
    }
}

impl std::error::Error for SaveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// The checkpoints of every tailed file and of the journal, and their file on disk.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    files: BTreeMap<FileKey, Entry>,
    journal: Option<JournalCheckpoint>,
    /// Changed since the last successful write.
    dirty: bool,
    /// Monotonic time of the last write attempt by `save_if_due` (successful or not: a failing
    /// disk is retried once per interval, not at every commit).
    last_attempt: Option<Duration>,
    /// An unreadable state file that could not be renamed aside at open, with the wall-clock
    /// milliseconds of that open for its name: set aside before the first write replaces it.
    set_aside_pending: Option<u64>,
}

/// The file format, version 1, as read (`version` was checked by [`VersionProbe`] first).
#[derive(Deserialize)]
struct StateV1 {
    files: Vec<Entry>,
    #[serde(default)]
    journal: Option<JournalCheckpoint>,
}

/// The file format, version 1, as written (borrowing the store).
#[derive(Serialize)]
struct StateV1Out<'a> {
    version: u64,
    files: FilesOut<'a>,
    journal: Option<&'a JournalCheckpoint>,
}

struct FilesOut<'a>(&'a BTreeMap<FileKey, Entry>);

impl Serialize for FilesOut<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.values())
    }
}

/// Only the version, read first: a future version may change everything else.
#[derive(Deserialize)]
struct VersionProbe {
    version: u64,
}

impl Store {
    /// Loads the checkpoints in `dir` (which must exist; a missing state file is a first start).
    ///
    /// `wall_clock_ms` (Unix time in milliseconds) names a state file set aside. Never fails:
    /// an unreadable file yields an empty store and a [`LoadWarning`].
    pub fn open(dir: impl Into<PathBuf>, wall_clock_ms: u64) -> (Store, Option<LoadWarning>) {
        let mut store = Store::empty(dir);
        let path = store.file_path();
        let problem = match read_capped(&path).and_then(|bytes| bytes.map(|b| parse(&b)).transpose()) {
            Ok(None) => return (store, None),
            Ok(Some(state)) => {
                store.files = state.files.into_iter().map(|e| (e.key(), e)).collect();
                store.journal = state.journal;
                return (store, None);
            }
            Err(problem) => problem,
        };
        let set_aside = match set_aside(&store.dir, wall_clock_ms) {
            Ok(to) => SetAside::Renamed(to),
            Err(e) => {
                store.set_aside_pending = Some(wall_clock_ms);
                SetAside::Failed(e)
            }
        };
        let warning = LoadWarning {
            path,
            problem,
            set_aside,
        };
        (store, Some(warning))
    }

    /// An empty store that saves to `dir`, ignoring what is there until the first save replaces
    /// it.
    pub fn empty(dir: impl Into<PathBuf>) -> Store {
        Store {
            dir: dir.into(),
            files: BTreeMap::new(),
            journal: None,
            dirty: false,
            last_attempt: None,
            set_aside_pending: None,
        }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn file_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Number of file checkpoints.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file checkpoint.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The checkpoint filed under `key`, unverified.
    pub fn get(&self, key: FileKey) -> Option<&Entry> {
        self.files.get(&key)
    }

    /// The checkpoint of the file `file` found with `key`, verified against its content
    /// ([`identity::matches`]: head hash and marker).
    pub fn lookup<R: ReadAt + ?Sized>(&self, key: FileKey, file: &R) -> io::Result<Lookup<'_>> {
        let Some(entry) = self.files.get(&key) else {
            return Ok(Lookup::Absent);
        };
        Ok(match identity::matches(&entry.stored(), key, file)? {
            Verdict::Same => Lookup::Same(entry),
            Verdict::Different(mismatch) => Lookup::Reused { entry, mismatch },
        })
    }

    /// Every file checkpoint, ordered by `(dev, inode)`.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.files.values()
    }

    /// Inserts or replaces the checkpoint filed under `entry`'s `(dev, inode)`. Returns whether
    /// anything changed.
    pub fn update(&mut self, entry: Entry) -> bool {
        let key = entry.key();
        if self.files.get(&key) == Some(&entry) {
            return false;
        }
        self.files.insert(key, entry);
        self.dirty = true;
        true
    }

    /// Moves the committed offset of the checkpoint under `key`, without rebuilding the entry.
    /// Returns whether anything changed (`false` also when there is no such checkpoint).
    pub fn commit(&mut self, key: FileKey, offset: u64, marker: u64) -> bool {
        match self.files.get_mut(&key) {
            Some(e) if e.offset != offset || e.marker != marker => {
                e.offset = offset;
                e.marker = marker;
                self.dirty = true;
                true
            }
            _ => false,
        }
    }

    /// Marks the checkpoint under `key` as finished (read to the end and settled). Returns
    /// whether there is such a checkpoint.
    pub fn mark_finished(&mut self, key: FileKey) -> bool {
        match self.files.get_mut(&key) {
            Some(e) => {
                if !e.finished {
                    e.finished = true;
                    self.dirty = true;
                }
                true
            }
            None => false,
        }
    }

    /// Removes the checkpoint under `key` (its file is gone).
    pub fn remove(&mut self, key: FileKey) -> Option<Entry> {
        let removed = self.files.remove(&key);
        self.dirty |= removed.is_some();
        removed
    }

    /// Keeps only the checkpoints for which `keep` is true (prunes those of files that are
    /// gone). Returns how many were removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&Entry) -> bool) -> usize {
        let before = self.files.len();
        self.files.retain(|_, e| keep(e));
        let removed = before - self.files.len();
        self.dirty |= removed > 0;
        removed
    }

    /// The journal's committed cursor.
    pub fn journal_cursor(&self) -> Option<&str> {
        self.journal.as_ref().map(|j| j.cursor.as_str())
    }

    /// Sets (or clears) the journal's committed cursor.
    pub fn set_journal_cursor(&mut self, cursor: Option<String>) {
        let journal = cursor.map(|cursor| JournalCheckpoint { cursor });
        if self.journal != journal {
            self.journal = journal;
            self.dirty = true;
        }
    }

    /// Whether something changed since the last successful save.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Writes the checkpoints if something changed and the last attempt was at least
    /// [`SAVE_INTERVAL`] before `now` (monotonic time, any fixed origin). Returns whether it
    /// wrote.
    pub fn save_if_due(&mut self, now: Duration) -> Result<bool, SaveError> {
        if !self.dirty {
            return Ok(false);
        }
        if self
            .last_attempt
            .is_some_and(|last| now.saturating_sub(last) < SAVE_INTERVAL)
        {
            return Ok(false);
        }
        self.last_attempt = Some(now);
        self.write()?;
        Ok(true)
    }

    /// Writes the checkpoints now if something changed (the final write at shutdown, after the
    /// drain). Returns whether it wrote.
    pub fn save_now(&mut self) -> Result<bool, SaveError> {
        if !self.dirty {
            return Ok(false);
        }
        self.write()?;
        Ok(true)
    }

    /// The state file's bytes.
    fn to_bytes(&self) -> Vec<u8> {
        let out = StateV1Out {
            version: FORMAT_VERSION,
            files: FilesOut(&self.files),
            journal: self.journal.as_ref(),
        };
        let mut bytes = serde_json::to_vec(&out).expect("checkpoint state serialises: string keys, no floats");
        bytes.push(b'\n');
        bytes
    }

    /// The atomic replacement: temporary file, fsync, rename, directory fsync.
    fn write(&mut self) -> Result<(), SaveError> {
        let path = self.file_path();
        let err = |step, path: &Path| {
            let path = path.to_path_buf();
            move |source| SaveError { step, path, source }
        };
        if let Some(ms) = self.set_aside_pending {
            set_aside(&self.dir, ms).map_err(err(SaveStep::SetAside, &path))?;
            self.set_aside_pending = None;
        }
        let bytes = self.to_bytes();
        let tmp = self.dir.join(TMP_FILE_NAME);
        // A stale temporary file from a crash (or anything else at that name, a symlink
        // included) goes first; O_EXCL | O_NOFOLLOW then guarantees a fresh file of our own.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(err(SaveStep::Write, &tmp)(e)),
            _ => {}
        }
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(&tmp, flags, Mode::from_raw_mode(0o644))
            .map_err(|e| err(SaveStep::Write, &tmp)(e.into()))?;
        let mut file = File::from(fd);
        file.write_all(&bytes).map_err(err(SaveStep::Write, &tmp))?;
        file.sync_all().map_err(err(SaveStep::Sync, &tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(err(SaveStep::Rename, &path))?;
        sync_dir(&self.dir).map_err(err(SaveStep::SyncDir, &path))?;
        self.dirty = false;
        Ok(())
    }
}

/// The state file's bytes, `None` when there is none. Opened `O_NOFOLLOW | O_NONBLOCK` so a
/// symlink or FIFO planted at its name is reported instead of followed or waited on.
fn read_capped(path: &Path) -> Result<Option<Vec<u8>>, LoadProblem> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(LoadProblem::Io(e.into())),
    };
    let file = File::from(fd);
    let meta = file.metadata().map_err(LoadProblem::Io)?;
    if !meta.is_file() {
        return Err(LoadProblem::NotRegular);
    }
    let too_large = |size| LoadProblem::TooLarge {
        size,
        cap: MAX_STATE_BYTES,
    };
    if meta.len() > MAX_STATE_BYTES {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // One byte past the cap tells a file that grew since the fstat.
    let read = file
        .take(MAX_STATE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(LoadProblem::Io)?;
    if read as u64 > MAX_STATE_BYTES {
        return Err(too_large(read as u64));
    }
    Ok(Some(bytes))
}

/// Parses a state file of any known version.
fn parse(bytes: &[u8]) -> Result<StateV1, LoadProblem> {
    let probe: VersionProbe = serde_json::from_slice(bytes).map_err(LoadProblem::Parse)?;
    if probe.version != FORMAT_VERSION {
        return Err(LoadProblem::UnsupportedVersion(probe.version));
    }
    let state: StateV1 = serde_json::from_slice(bytes).map_err(LoadProblem::Parse)?;
    if !state.files.iter().all(|e| e.fingerprint.is_valid()) {
        return Err(LoadProblem::Invalid("fingerprint len over 1024"));
    }
    Ok(state)
}

/// Renames the state file in `dir` to `checkpoints.json.corrupt-<ms>` (or `…-<ms>-<n>` when
/// that name is taken, so an earlier set-aside file is never replaced) and returns the new path.
fn set_aside(dir: &Path, wall_clock_ms: u64) -> io::Result<PathBuf> {
    let from = dir.join(FILE_NAME);
    for n in 0..SET_ASIDE_ATTEMPTS {
        let name = if n == 0 {
            format!("{FILE_NAME}.corrupt-{wall_clock_ms}")
        } else {
            format!("{FILE_NAME}.corrupt-{wall_clock_ms}-{n}")
        };
        let to = dir.join(name);
        match std::fs::symlink_metadata(&to) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::rename(&from, &to)?;
                sync_dir(dir)?;
                return Ok(to);
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{SET_ASIDE_ATTEMPTS} set-aside names for {wall_clock_ms} are taken"),
    ))
}

/// fsync of a directory, which makes a rename in it durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let fd = rustix::fs::open(dir, OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    rustix::fs::fsync(&fd)?;
    Ok(())
}

/// Serde for a path as a JSON string.
mod path_text {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize as _, Deserializer, Serializer};

    #[expect(clippy::ptr_arg, reason = "serde's `with` passes &PathBuf")]
    pub fn serialize<S: Serializer>(path: &PathBuf, s: S) -> Result<S::Ok, S::Error> {
        let path: &Path = path;
        s.serialize_str(&path.to_string_lossy())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        String::deserialize(d).map(PathBuf::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW_MS: u64 = 1_767_607_920_000;
    const LOG: &[u8] = b"2026-01-05T10:11:12.2Z stderr F error: disk full\n2026-01-05T10:11:13Z stdout F ok\n";

    fn entry(inode: u64, offset: u64) -> Entry {
        Entry {
            path: PathBuf::from(format!("/var/log/pods/shop_web_uid/web/{inode}.log")),
            dev: 2049,
            inode,
            fingerprint: identity::fingerprint(LOG, LOG.len() as u64).unwrap(),
            offset,
            marker: identity::marker(LOG, offset).unwrap().unwrap(),
            container_id: Some("0123456789abcdef".repeat(4)),
            group: "/aws/containerinsights/demo/application".into(),
            stream: "ip-10-1-128-166.application.var.log.containers.web.log".into(),
            finished: false,
        }
    }

    fn key(inode: u64) -> FileKey {
        FileKey { dev: 2049, inode }
    }

    fn open(dir: &Path) -> (Store, Option<LoadWarning>) {
        Store::open(dir, NOW_MS)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn missing_file_is_a_first_start() {
        let dir = tempfile::tempdir().unwrap();
        let (store, warning) = open(dir.path());
        assert!(warning.is_none());
        assert!(store.is_empty());
        assert_eq!(store.journal_cursor(), None);
        assert!(!store.is_dirty());
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open(dir.path());
        assert!(store.update(entry(100, 50)));
        let mut rotated = entry(101, LOG.len() as u64);
        rotated.finished = true;
        rotated.container_id = None;
        rotated.path = PathBuf::from("/var/log/pods/shop_web_uid/web/0.log.20260105-101112");
        assert!(store.update(rotated.clone()));
        store.set_journal_cursor(Some("s=abc;i=1f".into()));
        assert!(store.save_now().unwrap());
        assert_eq!(listing(dir.path()), vec![FILE_NAME]);

        let (loaded, warning) = open(dir.path());
        assert!(warning.is_none());
        assert_eq!(
            loaded.entries().cloned().collect::<Vec<_>>(),
            vec![entry(100, 50), rotated]
        );
        assert_eq!(loaded.journal_cursor(), Some("s=abc;i=1f"));
        assert!(!loaded.is_dirty());
    }

    #[test]
    fn file_format() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::empty(dir.path());
        store.update(Entry {
            path: PathBuf::from("/var/log/messages"),
            dev: 1,
            inode: u64::MAX,
            fingerprint: Fingerprint { len: 12, hash: 0xab },
            offset: 12,
            marker: 0x1234,
            container_id: None,
            group: "g".into(),
            stream: "s".into(),
            finished: false,
        });
        store.save_now().unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"version":1,"files":[{"path":"/var/log/messages","dev":1,"inode":18446744073709551615,"#,
                r#""fingerprint":{"len":12,"hash":"00000000000000ab"},"offset":12,"marker":"0000000000001234","#,
                r#""container_id":null,"group":"g","stream":"s","finished":false}],"journal":null}"#,
                "\n"
            )
        );
    }

    #[test]
    fn reads_file_without_journal_key_and_with_unknown_fields() {
        let dir = tempfile::tempdir().unwrap();
        let text = r#"{"version":1,"files":[{"path":"/p","dev":1,"inode":2,"fingerprint":{"len":0,"hash":"cbf29ce484222325"},
            "offset":0,"marker":"cbf29ce484222325","container_id":null,"group":"g","stream":"s","finished":true,
            "added_later":{"x":1}}],"also_later":[]}"#;
        std::fs::write(dir.path().join(FILE_NAME), text).unwrap();
        let (store, warning) = open(dir.path());
        assert!(warning.is_none(), "{}", warning.unwrap());
        assert!(store.get(FileKey { dev: 1, inode: 2 }).unwrap().finished);
        assert_eq!(store.journal_cursor(), None);
    }

    /// Writes `bytes` as the state file, opens the store and checks that it starts empty, with a
    /// warning, and that the file was renamed aside intact.
    fn assert_set_aside(bytes: &[u8]) -> LoadWarning {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE_NAME), bytes).unwrap();
        let (mut store, warning) = open(dir.path());
        let warning = warning.expect("warning");
        assert!(store.is_empty());
        assert_eq!(store.journal_cursor(), None);
        let aside = format!("{FILE_NAME}.corrupt-{NOW_MS}");
        match &warning.set_aside {
            SetAside::Renamed(to) => assert_eq!(to, &dir.path().join(&aside)),
            SetAside::Failed(e) => panic!("{e}"),
        }
        assert_eq!(listing(dir.path()), vec![aside.clone()]);
        assert_eq!(std::fs::read(dir.path().join(&aside)).unwrap(), bytes);
        // The store works on: the next save writes a fresh file beside the one set aside.
        store.update(entry(100, 0));
        store.save_now().unwrap();
        assert_eq!(listing(dir.path()), vec![FILE_NAME.to_string(), aside]);
        warning
    }

    #[test]
    fn garbage_is_set_aside() {
        let w = assert_set_aside(b"\x00\xff\xfe garbage \x1b[31m");
        assert_eq!(w.problem.kind(), "parse");
        let text = w.to_string();
        assert!(
            text.contains("not loaded") && text.contains(".corrupt-1767607920000"),
            "{text}"
        );
    }

    #[test]
    fn truncated_json_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::empty(dir.path());
        store.update(entry(100, 50));
        let full = store.to_bytes();
        for cut in [1, full.len() / 2, full.len() - 3] {
            let w = assert_set_aside(&full[..cut]);
            assert_eq!(w.problem.kind(), "parse");
        }
        assert_set_aside(b"");
    }

    #[test]
    fn other_shapes_are_set_aside() {
        for text in [
            // Vector's checkpoints.json (lib/file-source/src/checkpointer.rs): version is a string.
            r#"{"version":"1","checkpoints":[{"fingerprint":{"first_lines_checksum":1},"position":5}]}"#,
            r#"{"version":1,"checkpoints":[]}"#,
            r#"{"files":[]}"#,
            "[1,2,3]",
            r#""version""#,
            "null",
            r#"{"version":1,"files":[{"path":"/p"}],"journal":null}"#,
            r#"{"version":1,"files":[],"journal":{"cursor":5}}"#,
            r#"{"version":-1,"files":[]}"#,
            r#"{"version":1.5,"files":[]}"#,
        ] {
            let w = assert_set_aside(text.as_bytes());
            assert_eq!(w.problem.kind(), "parse", "{text}");
        }
    }

    #[test]
    fn unknown_version_is_set_aside() {
        let w = assert_set_aside(br#"{"version":999,"whatever":{"shape":"new"}}"#);
        assert!(matches!(w.problem, LoadProblem::UnsupportedVersion(999)));
        assert!(w.to_string().contains("999"));
        let w = assert_set_aside(br#"{"version":0,"files":[],"journal":null}"#);
        assert!(matches!(w.problem, LoadProblem::UnsupportedVersion(0)));
    }

    #[test]
    fn out_of_range_fingerprint_is_set_aside() {
        let mut e = entry(100, 0);
        e.fingerprint.len = 5000;
        let mut store = Store::empty("/nowhere");
        store.files.insert(e.key(), e);
        let w = assert_set_aside(&store.to_bytes());
        assert_eq!(w.problem.kind(), "invalid");
    }

    #[test]
    fn oversized_file_is_set_aside_unread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        // Sparse: no 64 MiB written.
        File::create(&path).unwrap().set_len(MAX_STATE_BYTES + 1).unwrap();
        let (store, warning) = open(dir.path());
        let warning = warning.unwrap();
        assert!(matches!(
            warning.problem,
            LoadProblem::TooLarge { size, cap: MAX_STATE_BYTES } if size == MAX_STATE_BYTES + 1
        ));
        assert!(store.is_empty());
        assert!(!path.exists());
    }

    #[test]
    fn planted_symlink_fifo_or_directory_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elsewhere"), b"{}").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join(FILE_NAME)).unwrap();
        let (_, warning) = open(dir.path());
        assert_eq!(warning.unwrap().problem.kind(), "io");
        assert_eq!(std::fs::read(dir.path().join("elsewhere")).unwrap(), b"{}");

        let dir = tempfile::tempdir().unwrap();
        let dirfd = rustix::fs::open(dir.path(), OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap();
        rustix::fs::mknodat(
            &dirfd,
            FILE_NAME,
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (_, warning) = open(dir.path());
        assert_eq!(warning.unwrap().problem.kind(), "not_regular");

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(FILE_NAME)).unwrap();
        let (mut store, warning) = open(dir.path());
        assert_eq!(warning.unwrap().problem.kind(), "not_regular");
        store.update(entry(1, 0));
        store.save_now().unwrap();
        assert!(dir.path().join(FILE_NAME).is_file());
    }

    #[test]
    fn set_aside_never_replaces_an_earlier_one() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join(format!("{FILE_NAME}.corrupt-{NOW_MS}"));
        std::fs::write(&first, b"first").unwrap();
        std::fs::write(dir.path().join(FILE_NAME), b"second").unwrap();
        let (_, warning) = open(dir.path());
        match warning.unwrap().set_aside {
            SetAside::Renamed(to) => {
                assert_eq!(to, dir.path().join(format!("{FILE_NAME}.corrupt-{NOW_MS}-1")));
                assert_eq!(std::fs::read(to).unwrap(), b"second");
            }
            SetAside::Failed(e) => panic!("{e}"),
        }
        assert_eq!(std::fs::read(first).unwrap(), b"first");
    }

    #[test]
    fn stale_tmp_from_a_crash_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open(dir.path());
        store.update(entry(100, 50));
        store.save_now().unwrap();
        // A crash in the middle of the next save: a partial temporary file is left behind.
        std::fs::write(dir.path().join(TMP_FILE_NAME), b"{\"version\":1,\"fi").unwrap();
        let (mut store, warning) = open(dir.path());
        assert!(warning.is_none());
        assert_eq!(store.get(key(100)), Some(&entry(100, 50)));
        // The next save replaces it and leaves no temporary file.
        store.commit(key(100), 80, identity::marker(LOG, 80).unwrap().unwrap());
        store.save_now().unwrap();
        assert_eq!(listing(dir.path()), vec![FILE_NAME]);
        assert_eq!(open(dir.path()).0.get(key(100)).unwrap().offset, 80);
    }

    #[test]
    fn planted_tmp_symlink_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join(TMP_FILE_NAME)).unwrap();
        let mut store = Store::empty(dir.path());
        store.update(entry(100, 0));
        store.save_now().unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
        assert!(dir.path().join(FILE_NAME).is_file());
        assert!(!dir.path().join(TMP_FILE_NAME).exists());
    }

    #[test]
    fn failed_save_keeps_the_previous_file_and_stays_dirty() {
        let dir = tempfile::tempdir().unwrap();
        let (mut store, _) = open(dir.path());
        store.update(entry(100, 50));
        store.save_now().unwrap();
        // A directory at the temporary name cannot be removed by remove_file: the save fails
        // before touching checkpoints.json.
        std::fs::create_dir(dir.path().join(TMP_FILE_NAME)).unwrap();
        store.commit(key(100), 80, 0);
        let err = store.save_now().unwrap_err();
        assert_eq!(err.step, SaveStep::Write);
        assert!(err.to_string().starts_with("cannot write "), "{err}");
        assert!(store.is_dirty());
        assert_eq!(open(dir.path()).0.get(key(100)).unwrap().offset, 50);
        std::fs::remove_dir(dir.path().join(TMP_FILE_NAME)).unwrap();
        assert!(store.save_now().unwrap());
        assert_eq!(open(dir.path()).0.get(key(100)).unwrap().offset, 80);
    }

    #[test]
    fn saves_are_coalesced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let on_disk = || open(dir.path()).0.get(key(100)).map(|e| e.offset);
        let (mut store, _) = open(dir.path());
        let s = Duration::from_secs;
        let ms = Duration::from_millis;

        assert!(!store.save_if_due(s(0)).unwrap(), "nothing changed");
        assert!(!path.exists());
        store.update(entry(100, 10));
        assert!(store.save_if_due(s(100)).unwrap());
        assert_eq!(on_disk(), Some(10));

        store.commit(key(100), 20, 0);
        assert!(!store.save_if_due(s(100) + ms(999)).unwrap(), "within a second");
        assert_eq!(on_disk(), Some(10));
        store.commit(key(100), 30, 0);
        assert!(store.save_if_due(s(101)).unwrap());
        assert_eq!(on_disk(), Some(30));

        assert!(!store.save_if_due(s(200)).unwrap(), "nothing changed since");
        assert!(!store.save_now().unwrap());
        // Unchanged values do not count as a change.
        assert!(!store.update(store.get(key(100)).unwrap().clone()));
        assert!(!store.commit(key(100), 30, 0));
        assert!(!store.is_dirty());

        store.commit(key(100), 40, 0);
        assert!(
            store.save_if_due(s(200) + ms(500)).unwrap(),
            "last attempt was at 101 s"
        );
        assert_eq!(on_disk(), Some(40));
        // The final write at shutdown does not wait for the interval.
        store.commit(key(100), 50, 0);
        assert!(!store.save_if_due(s(200) + ms(900)).unwrap());
        assert!(store.save_now().unwrap());
        assert_eq!(on_disk(), Some(50));
        // A clock that goes backwards does not cause a write storm either.
        store.commit(key(100), 60, 0);
        assert!(!store.save_if_due(s(5)).unwrap());
    }

    #[test]
    fn changes_mark_the_store_dirty() {
        let mut store = Store::empty("/nowhere");
        assert!(!store.mark_finished(key(1)));
        assert!(store.remove(key(1)).is_none());
        assert_eq!(store.retain(|_| false), 0);
        store.set_journal_cursor(None);
        assert!(!store.is_dirty());

        for i in 1..=4 {
            store.update(entry(i, 0));
        }
        store.dirty = false;
        assert!(store.mark_finished(key(1)));
        assert!(store.get(key(1)).unwrap().finished);
        assert!(store.is_dirty());
        store.dirty = false;
        assert!(store.mark_finished(key(1)));
        assert!(!store.is_dirty(), "already finished");
        assert_eq!(store.remove(key(2)).unwrap().inode, 2);
        assert!(store.is_dirty());
        store.dirty = false;
        assert_eq!(store.retain(|e| e.inode != 3), 1);
        assert_eq!(store.len(), 2);
        assert!(store.is_dirty());
        store.dirty = false;
        store.set_journal_cursor(Some("c".into()));
        assert!(store.is_dirty());
        store.dirty = false;
        store.set_journal_cursor(Some("c".into()));
        assert!(!store.is_dirty());
    }

    #[test]
    fn lookup_verifies_identity() {
        let mut store = Store::empty("/nowhere");
        store.update(entry(100, 49));
        assert_eq!(store.lookup(key(7), LOG).unwrap(), Lookup::Absent);
        assert_eq!(
            store.lookup(key(100), LOG).unwrap(),
            Lookup::Same(store.get(key(100)).unwrap())
        );
        // The inode was reused by a new file.
        let other = b"2026-01-05T10:15:30Z stdout F another file\n";
        assert!(matches!(
            store.lookup(key(100), &other[..]).unwrap(),
            Lookup::Reused {
                mismatch: Mismatch::Head,
                ..
            }
        ));
        // Same first line, different bytes before the offset.
        let mut rewritten = LOG.to_vec();
        rewritten[40] = b'X';
        assert!(matches!(
            store.lookup(key(100), rewritten.as_slice()).unwrap(),
            Lookup::Reused {
                mismatch: Mismatch::Head,
                ..
            }
        ));
        store.update(entry(100, LOG.len() as u64));
        let mut tail_changed = LOG.to_vec();
        let last = tail_changed.len() - 2;
        tail_changed[last] = b'X';
        assert!(matches!(
            store.lookup(key(100), tail_changed.as_slice()).unwrap(),
            Lookup::Reused {
                mismatch: Mismatch::Marker,
                ..
            }
        ));
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (
            (any::<String>(), any::<u64>(), any::<u64>(), 0..=1024u32, any::<u64>()),
            (any::<u64>(), any::<u64>(), proptest::option::of(any::<String>())),
            (any::<String>(), any::<String>(), any::<bool>()),
        )
            .prop_map(
                |((path, dev, inode, len, hash), (offset, marker, container_id), (group, stream, finished))| Entry {
                    path: PathBuf::from(path),
                    dev,
                    inode,
                    fingerprint: Fingerprint { len, hash },
                    offset,
                    marker,
                    container_id,
                    group,
                    stream,
                    finished,
                },
            )
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            files in proptest::collection::vec(arb_entry(), 0..4),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut store = Store::empty("/nowhere");
            for e in files {
                store.update(e);
            }
            let mut bytes = store.to_bytes();
            let i = flip.index(bytes.len());
            bytes[i] = byte;
            let _ = parse(&bytes);
            let _ = parse(&bytes[..cut.index(bytes.len())]);
        }

        #[test]
        fn serialised_state_parses_back(
            files in proptest::collection::vec(arb_entry(), 0..8),
            cursor in proptest::option::of(any::<String>()),
        ) {
            let mut store = Store::empty("/nowhere");
            for e in files {
                store.update(e);
            }
            store.set_journal_cursor(cursor.clone());
            let state = parse(&store.to_bytes()).unwrap();
            let back: Vec<Entry> = state.files;
            prop_assert_eq!(back, store.entries().cloned().collect::<Vec<_>>());
            prop_assert_eq!(state.journal.map(|j| j.cursor), cursor);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn open_never_panics_on_any_state_file(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join(FILE_NAME), &bytes).unwrap();
            let (store, warning) = open(dir.path());
            match warning {
                Some(_) => {
                    prop_assert!(store.is_empty());
                    prop_assert!(!dir.path().join(FILE_NAME).exists());
                }
                None => prop_assert!(dir.path().join(FILE_NAME).exists()),
            }
        }
    }
}
