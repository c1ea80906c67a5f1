//! The systemd journal as a log source: the `dataplane` units and, with `host_source = journald`,
//! the three `host` streams. Read with the pure-Rust `sdjournal` crate: no libsystemd, no
//! `journalctl` child.
//!
//! **Filters**, as the current Container Insights Fluent Bit set-up has them
//! (`aws-samples/amazon-cloudwatch-container-insights`,
//! `k8s-deployment-manifest-templates/deployment-mode/daemonset/container-insights-monitoring/fluent-bit/fluent-bit.yaml`,
//! `dataplane-log.conf` and `host-log.conf`):
//! - dataplane: `_SYSTEMD_UNIT` is one of the configured units. Fluent Bit's `systemd` input adds
//!   each `Systemd_Filter` line with `sd_journal_add_match` then `sd_journal_add_disjunction`, so
//!   any of the lines matches (`fluent/fluent-bit: plugins/in_systemd/systemd_config.c`);
//! - `host.dmesg`: `_TRANSPORT=kernel`;
//! - `host.messages`: `PRIORITY` 0 to 6, then a `grep` filter excludes `SYSLOG_FACILITY` 2 (mail),
//!   9 (cron) and 10 (authpriv) — the journal version of rsyslog's classic
//!   `*.info;mail.none;authpriv.none;cron.none /var/log/messages`;
//! - `host.secure`: `SYSLOG_FACILITY=10` (authpriv), whatever the priority.
//!
//! Each of those is a separate Fluent Bit input with its own cursor, so one journal entry can land
//! in several streams: a kubelet line at priority 6 is in `dataplane` *and* in `host.messages`, a
//! kernel line at priority 0–6 in `host.dmesg` *and* `host.messages`. This reader does the same:
//! one [`JournalRecord`] per matching kind, in the order dataplane, dmesg, messages, secure, all
//! carrying the entry's cursor. Matches compare the raw field bytes, exactly as
//! `sd_journal_add_match` does (`PRIORITY=06` is not priority 6).
//!
//! **Snapshots.** journald keeps appending to the online files (`system.journal` and, with
//! per-user journals, `user-<uid>.journal`) while they are read, and `sdjournal` reads each file's
//! entry arrays (its index of entries) when its iterator reaches them, file by file
//! (`src/file/iter.rs`). One query can therefore return a newer entry of one file and miss an older
//! entry of a file whose array it read a moment earlier; once the reader moved past the newer one,
//! the older one would never be read. journald is single-threaded and writes and indexes each
//! entry, stamped with `__REALTIME_TIMESTAMP`, before the next one (systemd.io, "Journal File
//! Format": objects are appended, then linked into the entry arrays). So every entry with a
//! realtime at or below the newest entry a query A found was indexed before A returned, and a query
//! B started after A finds all of them. Each round asks A only for that *horizon*, reads from B,
//! and stops at the first entry newer than it; newer entries are read by a later round. Entries
//! journald copies from `/run/log/journal` to `/var/log/journal` at boot are distinct entries to
//! `sdjournal` (it tells files apart by file ID): read from both roots, they arrive twice.
//!
//! **Order and cursors.** `sdjournal` merges files by realtime, then sequence number. A
//! wall-clock step backwards on the node makes entries written after it sort before those
//! already read; like every realtime-ordered reader this one does not go back for them. The
//! cursor a record carries is `rt=<µs>;<sdjournal cursor>`: the realtime prefix lets a restart
//! seek by time (a binary search over each file's entry arrays) instead of scanning every file
//! from its start. A cursor whose entry is gone (journald vacuumed its file) cannot be found;
//! reading then restarts at the oldest entry and [`JournalSource::gap_detected`] says so.
//!
//! **Errors.** A file `sdjournal` cannot open (truncated, not a journal) is left out of the set;
//! when no file can be opened, or none of the entries can be read, [`JournalSource::read`] says so.
//! An entry that cannot be read ends the round; the next round, on fresh queries, skips what still
//! fails and counts it ([`JournalSource::skipped_errors`]). An error of the moment (a file growing
//! or rotated while read) does not recur, so it costs nothing but a round.
//!
//! The decision a newcomer would question: entries are matched here, not by `sdjournal` queries.
//! Its indexed matches walk every entry of the matched field value from the start of each file on
//! every query, and the host filters match nearly every entry anyway; one time-seeked scan per
//! round, classified here, is cheaper.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::path::PathBuf;

use sdjournal::{Cursor, EntryRef, Journal, SdJournalError};

/// Where and what to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JournalConfig {
    /// Journal roots on disk, the host root already joined, e.g. `<root>/var/log/journal` and
    /// `<root>/run/log/journal`. Files directly inside and in `<machine-id>` subdirectories are
    /// read; a root that does not exist (yet) is skipped and looked at again every round.
    pub dirs: Vec<PathBuf>,
    /// Units whose entries go to `dataplane` (`_SYSTEMD_UNIT` equal to any of them), e.g.
    /// `kubelet.service`, `containerd.service`, `docker.service`.
    pub dataplane_units: Vec<String>,
    /// Also produce the three host streams from the journal (`host_source = journald`).
    pub host: bool,
    /// Without a cursor, start after the newest entry instead of at the oldest, like Fluent Bit's
    /// `Read_From_Tail`: a journal can hold weeks that CloudWatch Logs would reject as too old.
    pub start_at_tail: bool,
}

/// Which stream a record belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum JournalRecordKind {
    /// `dataplane`, from the unit named (`_SYSTEMD_UNIT`).
    Dataplane {
        /// The matching `_SYSTEMD_UNIT` value, one of [`JournalConfig::dataplane_units`].
        unit: String,
    },
    /// `host`, stream `dmesg`: kernel messages.
    HostDmesg,
    /// `host`, stream `messages`.
    HostMessages,
    /// `host`, stream `secure`.
    HostSecure,
}

impl JournalRecordKind {
    /// The host file a host kind stands for (`dmesg`, `messages`, `secure`), as stream names use it.
    pub fn host_file(&self) -> Option<&'static str> {
        match self {
            JournalRecordKind::Dataplane { .. } => None,
            JournalRecordKind::HostDmesg => Some("dmesg"),
            JournalRecordKind::HostMessages => Some("messages"),
            JournalRecordKind::HostSecure => Some("secure"),
        }
    }
}

/// One journal entry for one stream. Text fields are valid UTF-8: invalid bytes (the export
/// format and the native protocol allow binary values) became U+FFFD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecord {
    /// The stream.
    pub kind: JournalRecordKind,
    /// `__REALTIME_TIMESTAMP`, microseconds since the epoch: the event time.
    pub realtime_us: u64,
    /// `_HOSTNAME`.
    pub hostname: Option<String>,
    /// `MESSAGE`; empty when the entry has none.
    pub message: String,
    /// `SYSLOG_IDENTIFIER`.
    pub identifier: Option<String>,
    /// `SYSLOG_PID`.
    pub pid: Option<String>,
    /// The entry's position: pass it to [`JournalSource::open`] to resume after it. All records of
    /// one entry carry the same cursor.
    pub cursor: String,
}

/// Why the journal could not be read.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A cursor that this reader did not write (or that was damaged in the state file).
    #[error("journal cursor {0:?} is not `rt=<µs>;<sdjournal cursor>`")]
    InvalidCursor(String),
    /// The journal files exist but none of them could be opened, or a query failed.
    #[error("cannot read the journal in {dirs}: {source}")]
    Read {
        /// The roots, comma-separated.
        dirs: String,
        /// What `sdjournal` reported.
        source: SdJournalError,
    },
}

/// Entries (and skipped errors) looked at per [`JournalSource::read`] call at most, matching or
/// not, so that one call over a long backlog of other units' entries stays short (each entry is a
/// few `pread`s).
const SCAN_BUDGET: usize = 4096;

/// The largest decompressed field accepted: `sdjournal`'s default is 1 MiB, below what a
/// native-protocol `MESSAGE` may hold; 16 MiB matches its limit for an uncompressed object, and a
/// message longer than a CloudWatch event is cut later, when the event is built.
const MAX_FIELD_BYTES: usize = 16 << 20;

const CURSOR_PREFIX: &str = "rt=";

/// A position in the journal: an entry, with its realtime for seeking.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Resume {
    realtime_us: u64,
    cursor: Cursor,
}

impl Resume {
    fn parse(text: &str) -> Result<Resume, JournalError> {
        let invalid = || JournalError::InvalidCursor(text.to_string());
        let (realtime, cursor) = text
            .strip_prefix(CURSOR_PREFIX)
            .and_then(|rest| rest.split_once(';'))
            .ok_or_else(invalid)?;
        let realtime_us = realtime.parse().map_err(|_| invalid())?;
        let cursor = Cursor::parse(cursor).map_err(|_| invalid())?;
        Ok(Resume { realtime_us, cursor })
    }

    fn of(entry: &EntryRef) -> Result<Resume, SdJournalError> {
        Ok(Resume {
            realtime_us: entry.realtime_usec(),
            cursor: entry.cursor()?,
        })
    }

    fn text(&self) -> String {
        format!("{CURSOR_PREFIX}{};{}", self.realtime_us, self.cursor)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Position {
    /// A cursor to resume after, not yet looked up because no journal file could be read.
    Unchecked(Resume),
    /// From the oldest entry.
    Head,
    /// Strictly after this entry.
    After(Resume),
}

type Entries = Box<dyn Iterator<Item = sdjournal::Result<EntryRef>> + Send>;

/// How a [`JournalSource::read`] call left its round.
enum RoundEnd {
    /// `max` or the scan budget reached: the round goes on at the next call.
    Unfinished,
    /// The snapshot was read up to its horizon.
    Done,
    /// An error ended it; the next round starts from a fresh snapshot.
    Error,
}

/// One snapshot being read: its entries from the position on, up to the horizon.
struct Round {
    entries: Entries,
    horizon_us: u64,
}

/// A reader over a set of journal directories. Synchronous: every call does its file I/O on the
/// calling thread, so run it where blocking is allowed.
pub struct JournalSource {
    cfg: JournalConfig,
    position: Position,
    round: Option<Round>,
    /// Records of an entry that did not fit into the caller's `max`; returned first next time.
    pending: VecDeque<JournalRecord>,
    gap: bool,
    /// The previous round ended at an error: this one skips errors instead of stopping.
    retry: bool,
    skipped_errors: u64,
    utf8_repaired: u64,
    last_error: Option<String>,
}

impl fmt::Debug for JournalSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JournalSource")
            .field("cfg", &self.cfg)
            .field("position", &self.position)
            .field("reading", &self.round.is_some())
            .field("pending", &self.pending.len())
            .field("gap", &self.gap)
            .field("skipped_errors", &self.skipped_errors)
            .finish_non_exhaustive()
    }
}

impl JournalSource {
    /// Opens the reader. With `cursor`, reading resumes strictly after that entry; if the entry is
    /// no longer in the journal, at the oldest entry, and [`gap_detected`](Self::gap_detected)
    /// turns true. When no journal file can be read yet, the cursor is looked up at the first
    /// [`read`](Self::read) that finds one. Without a cursor, [`JournalConfig::start_at_tail`]
    /// decides; a journal with no readable file then starts at its oldest entry (everything in it
    /// will be new).
    pub fn open(cfg: JournalConfig, cursor: Option<&str>) -> Result<JournalSource, JournalError> {
        let resume = cursor.map(Resume::parse).transpose()?;
        let mut source = JournalSource {
            cfg,
            position: Position::Head,
            round: None,
            pending: VecDeque::new(),
            gap: false,
            retry: false,
            skipped_errors: 0,
            utf8_repaired: 0,
            last_error: None,
        };
        // Unreadable files now are not an error of `open`: `read` reports them, and may succeed later.
        let snapshot = source.snapshot().unwrap_or_else(|e| {
            source.last_error = Some(e.to_string());
            None
        });
        source.position = match (resume, snapshot) {
            (Some(resume), Some(journal)) => source.locate(&journal, resume),
            (Some(resume), None) => Position::Unchecked(resume),
            (None, Some(journal)) if source.cfg.start_at_tail => {
                match newest(&journal).and_then(|newest| newest.map(|e| Resume::of(&e)).transpose()) {
                    Ok(Some(resume)) => Position::After(resume),
                    Ok(None) => Position::Head,
                    Err(e) => {
                        source.last_error = Some(e.to_string());
                        Position::Head
                    }
                }
            }
            (None, _) => Position::Head,
        };
        Ok(source)
    }

    /// Appends up to `max` new records to `out`, in journal order, and returns how many. Never
    /// waits for new entries. A call reads from where the last one stopped up to the entries
    /// written before it started, unless `max` or the per-call scan budget stops it first: then
    /// [`has_more`](Self::has_more) is true, and the next call goes on with the same round before
    /// looking at newer entries. 0 with `has_more()` false means nothing new (or a read error that
    /// the next call retries, see [`skipped_errors`](Self::skipped_errors)). An `Err` leaves the
    /// position where it was: call again later.
    pub fn read(&mut self, max: usize, out: &mut Vec<JournalRecord>) -> Result<usize, JournalError> {
        let mut n = 0;
        while n < max {
            let Some(record) = self.pending.pop_front() else { break };
            out.push(record);
            n += 1;
        }
        if n == max {
            return Ok(n);
        }
        if self.round.is_none() {
            if n > 0 {
                // Records already handed over must not come back with an error the caller may drop them on.
                return Ok(n);
            }
            self.start_round()?;
        }
        let Some(mut round) = self.round.take() else {
            return Ok(n);
        };
        let mut scanned = 0;
        let end = loop {
            if n >= max || scanned >= SCAN_BUDGET {
                break RoundEnd::Unfinished;
            }
            scanned += 1;
            let entry = match round.entries.next() {
                None => break RoundEnd::Done,
                Some(Ok(entry)) => entry,
                Some(Err(e)) if self.skip_error(&e) => continue,
                Some(Err(_)) => break RoundEnd::Error,
            };
            if entry.realtime_usec() > round.horizon_us {
                // Not consumed: the next round reads it again, from a snapshot that has all its elders.
                break RoundEnd::Done;
            }
            let resume = match Resume::of(&entry) {
                Ok(resume) => resume,
                Err(e) if self.skip_error(&e) => continue,
                Err(_) => break RoundEnd::Error,
            };
            let kinds = classify(|name| entry.get(name), &self.cfg.dataplane_units, self.cfg.host);
            if !kinds.is_empty() {
                for record in self.records(&entry, kinds, &resume.text()) {
                    if n < max {
                        out.push(record);
                        n += 1;
                    } else {
                        self.pending.push_back(record);
                    }
                }
            }
            self.position = Position::After(resume);
        };
        match end {
            RoundEnd::Unfinished => self.round = Some(round),
            // A retry round that got through ends the retry; one that stopped at an error has just
            // set it (`skip_error`).
            RoundEnd::Done => self.retry = false,
            RoundEnd::Error => {}
        }
        Ok(n)
    }

    /// The cursor given to [`open`](Self::open) was not found in the journal (journald vacuumed
    /// it, or the journal was replaced): reading restarted at the oldest entry, and entries
    /// between the cursor and that one may have been lost.
    pub fn gap_detected(&self) -> bool {
        self.gap
    }

    /// A call to [`read`](Self::read) stopped at `max` or at its scan budget with entries left in
    /// the current snapshot: call again without waiting.
    pub fn has_more(&self) -> bool {
        self.round.is_some() || !self.pending.is_empty()
    }

    /// Read errors skipped since [`open`](Self::open): each may have cost an entry (a corrupt
    /// one), or a whole file for a round. A file that stays corrupt is counted at every round
    /// that meets it again.
    pub fn skipped_errors(&self) -> u64 {
        self.skipped_errors
    }

    /// Entries whose text fields had invalid UTF-8 (replaced by U+FFFD) since
    /// [`open`](Self::open).
    pub fn utf8_repaired(&self) -> u64 {
        self.utf8_repaired
    }

    /// The last read error met, skipped or not, for diagnostics.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The roots that exist, opened as one set; `None` when there is no journal file at all.
    fn snapshot(&self) -> Result<Option<Journal>, JournalError> {
        let dirs: Vec<PathBuf> = self.cfg.dirs.iter().filter(|d| d.is_dir()).cloned().collect();
        if dirs.is_empty() {
            return Ok(None);
        }
        let config = sdjournal::JournalConfig {
            max_decompressed_bytes: MAX_FIELD_BYTES,
            // journald renames a file it found unclean to `*.journal~` and starts a new one; its
            // entries can still be unread. `sd_journal_open` reads them too.
            include_journal_tilde: true,
            ..sdjournal::JournalConfig::default()
        };
        match Journal::open_dirs_with_config(&dirs, config) {
            Ok(journal) => Ok(Some(journal)),
            Err(SdJournalError::NotFound) => Ok(None),
            Err(source) => Err(self.read_error(source)),
        }
    }

    fn read_error(&self, source: SdJournalError) -> JournalError {
        let dirs: Vec<String> = self.cfg.dirs.iter().map(|d| d.display().to_string()).collect();
        JournalError::Read {
            dirs: dirs.join(", "),
            source,
        }
    }

    /// Where to resume for a cursor: after it when its entry is in `journal`, else at the oldest
    /// entry, noting the gap.
    fn locate(&mut self, journal: &Journal, resume: Resume) -> Position {
        let found = match first_from(journal, &resume) {
            Ok(found) => found,
            Err(e) => {
                self.last_error = Some(e.to_string());
                None
            }
        };
        if found.as_ref() == Some(&resume.cursor) {
            Position::After(resume)
        } else {
            self.gap = true;
            Position::Head
        }
    }

    /// Takes the two snapshots of a round (see the module docs) and positions the second one.
    fn start_round(&mut self) -> Result<(), JournalError> {
        let Some(first) = self.snapshot()? else { return Ok(()) };
        if let Position::Unchecked(resume) = &self.position {
            self.position = self.locate(&first, resume.clone());
        }
        let Some(newest) = newest(&first).map_err(|e| self.read_error(e))? else {
            return Ok(());
        };
        if let Position::After(resume) = &self.position
            && newest.cursor().ok().as_ref() == Some(&resume.cursor)
        {
            // Caught up: nothing after the position, so no error of an earlier round is waiting.
            self.retry = false;
            return Ok(());
        }
        let horizon_us = newest.realtime_usec();
        let Some(journal) = self.snapshot()? else { return Ok(()) };
        let mut query = journal.query();
        if let Position::After(resume) = &self.position {
            // Seek by time first (a binary search per file); the cursor then excludes the entries
            // of that same microsecond up to and including the resumed one.
            query.since_realtime(resume.realtime_us);
            query.after_cursor(resume.cursor.clone());
        }
        let entries = query.iter().map_err(|e| self.read_error(e))?;
        self.round = Some(Round {
            entries: Box::new(entries),
            horizon_us,
        });
        Ok(())
    }

    /// Handles an error met while reading: `true` to skip it and go on, `false` to end the round.
    /// The first error ends the round, so that one caused by a file being written while read is
    /// read again from a fresh snapshot; in the round after, errors are skipped, so that a corrupt
    /// entry or file costs one round, not the reader.
    fn skip_error(&mut self, e: &SdJournalError) -> bool {
        self.last_error = Some(e.to_string());
        if self.retry {
            self.skipped_errors += 1;
            true
        } else {
            self.retry = true;
            false
        }
    }

    /// One record per kind, the entry's text fields repaired once and shared.
    fn records(&mut self, entry: &EntryRef, kinds: Vec<JournalRecordKind>, cursor: &str) -> Vec<JournalRecord> {
        let mut repaired = false;
        let mut text = |name: &str| {
            entry.get(name).map(|bytes| match String::from_utf8_lossy(bytes) {
                Cow::Borrowed(s) => s.to_string(),
                Cow::Owned(s) => {
                    repaired = true;
                    s
                }
            })
        };
        let hostname = text("_HOSTNAME");
        let message = text("MESSAGE").unwrap_or_default();
        let identifier = text("SYSLOG_IDENTIFIER");
        let pid = text("SYSLOG_PID");
        if repaired {
            self.utf8_repaired += 1;
        }
        kinds
            .into_iter()
            .map(|kind| JournalRecord {
                kind,
                realtime_us: entry.realtime_usec(),
                hostname: hostname.clone(),
                message: message.clone(),
                identifier: identifier.clone(),
                pid: pid.clone(),
                cursor: cursor.to_string(),
            })
            .collect()
    }
}

/// The newest readable entry of a snapshot (a horizon lower than the true newest entry is always
/// safe). An error only when entries exist and none was readable.
fn newest(journal: &Journal) -> Result<Option<EntryRef>, SdJournalError> {
    let mut query = journal.query();
    query.seek_tail();
    let mut error = None;
    for item in query.iter()? {
        match item {
            Ok(entry) => return Ok(Some(entry)),
            Err(e) => error = Some(e),
        }
    }
    error.map_or(Ok(None), Err)
}

/// The cursor of the first readable entry at or after `resume` (inclusive): `resume`'s own when its
/// entry is still there. An error only when nothing was readable.
fn first_from(journal: &Journal, resume: &Resume) -> Result<Option<Cursor>, SdJournalError> {
    let mut query = journal.seek_cursor(&resume.cursor)?;
    query.since_realtime(resume.realtime_us);
    let mut error = None;
    for item in query.iter()? {
        match item.and_then(|entry| entry.cursor()) {
            Ok(cursor) => return Ok(Some(cursor)),
            Err(e) => error = Some(e),
        }
    }
    error.map_or(Ok(None), Err)
}

/// The kinds an entry belongs to, in the order dataplane, dmesg, messages, secure (see the module
/// docs); `field` returns the first value of a field.
fn classify<'a>(field: impl Fn(&str) -> Option<&'a [u8]>, units: &[String], host: bool) -> Vec<JournalRecordKind> {
    let mut kinds = Vec::new();
    if let Some(unit) = field("_SYSTEMD_UNIT")
        && let Some(unit) = units.iter().find(|u| u.as_bytes() == unit)
    {
        kinds.push(JournalRecordKind::Dataplane { unit: unit.clone() });
    }
    if !host {
        return kinds;
    }
    if field("_TRANSPORT") == Some(b"kernel".as_slice()) {
        kinds.push(JournalRecordKind::HostDmesg);
    }
    let facility = field("SYSLOG_FACILITY");
    let info_or_above = matches!(field("PRIORITY"), Some(b"0" | b"1" | b"2" | b"3" | b"4" | b"5" | b"6"));
    if info_or_above && !matches!(facility, Some(b"2" | b"9" | b"10")) {
        kinds.push(JournalRecordKind::HostMessages);
    }
    if facility == Some(b"10".as_slice()) {
        kinds.push(JournalRecordKind::HostSecure);
    }
    kinds
}

/// A compact JSON object built member by member; absent and empty values are left out.
struct JsonObject(String);

impl JsonObject {
    fn new(capacity: usize) -> JsonObject {
        let mut out = String::with_capacity(capacity + 64);
        out.push('{');
        JsonObject(out)
    }

    fn member(&mut self, key: &str, value: Option<&str>) {
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        if self.0.len() > 1 {
            self.0.push(',');
        }
        self.0.push('"');
        self.0.push_str(key);
        self.0.push_str("\":");
        // Serialising a `str` cannot fail; the fallback only keeps the output valid JSON.
        match serde_json::to_string(value) {
            Ok(quoted) => self.0.push_str(&quoted),
            Err(_) => self.0.push_str("\"\""),
        }
    }

    fn finish(mut self, extra: &str) -> String {
        let extra = if self.0.len() == 1 {
            extra.strip_prefix(',').unwrap_or(extra)
        } else {
            extra
        };
        self.0.push_str(extra);
        self.0.push('}');
        self.0
    }
}

/// The message of a dataplane journal record: `{"hostname":…,"systemd_unit":…,"message":…}`, the
/// keys Fluent Bit's `modify` filter keeps after renaming `_HOSTNAME`, `_SYSTEMD_UNIT` and
/// `MESSAGE`. `extra` is inserted verbatim before the closing brace: empty, or members with a
/// leading comma such as `,"az":"us-east-1a","ec2_instance_id":"i-0abc"` (what the `aws` filter
/// adds). Absent or empty values are left out.
pub fn dataplane_message(hostname: Option<&str>, unit: &str, message: &str, extra: &str) -> String {
    let mut obj = JsonObject::new(message.len() + unit.len() + extra.len());
    obj.member("hostname", hostname);
    obj.member("systemd_unit", Some(unit));
    obj.member("message", Some(message));
    obj.finish(extra)
}

/// The message of a host journal record: `{"host":…,"message":…,"ident":…,"pid":…}`, Fluent Bit's
/// renames of `_HOSTNAME`, `MESSAGE`, `SYSLOG_IDENTIFIER` and `SYSLOG_PID` (every other journal
/// field has an uppercase letter and is removed by its `Remove_regex [A-Z]`). `extra` as for
/// [`dataplane_message`]; absent or empty values are left out.
pub fn host_message(host: Option<&str>, message: &str, ident: Option<&str>, pid: Option<&str>, extra: &str) -> String {
    let mut obj = JsonObject::new(message.len() + extra.len());
    obj.member("host", host);
    obj.member("message", Some(message));
    obj.member("ident", ident);
    obj.member("pid", pid);
    obj.finish(extra)
}

/// The message of a record, in the shape of its kind ([`dataplane_message`] or
/// [`host_message`]).
pub fn record_message(record: &JournalRecord, extra: &str) -> String {
    match &record.kind {
        JournalRecordKind::Dataplane { unit } => {
            dataplane_message(record.hostname.as_deref(), unit, &record.message, extra)
        }
        _ => host_message(
            record.hostname.as_deref(),
            &record.message,
            record.identifier.as_deref(),
            record.pid.as_deref(),
            extra,
        ),
    }
}

/// The stream of a kind as Fluent Bit names it (the default `stream_names`):
/// `<node>-dataplane.systemd.<unit>` (prefix `${HOST_NAME}-` plus the tag `dataplane.systemd.*`,
/// whose `*` the `systemd` input replaces by `_SYSTEMD_UNIT`: `tag_compose` in
/// `fluent/fluent-bit: plugins/in_systemd/systemd.c`) and `<node>.host.<file>` (prefix
/// `${HOST_NAME}.`). `node` is the Kubernetes node name. Unit names may contain `:`, which stream
/// names may not: the caller makes the name valid as for any other stream.
pub fn fluent_bit_stream(kind: &JournalRecordKind, node: &str) -> String {
    match (kind, kind.host_file()) {
        (JournalRecordKind::Dataplane { unit }, _) => format!("{node}-dataplane.systemd.{unit}"),
        (_, Some(file)) => format!("{node}.host.{file}"),
        (_, None) => node.to_string(),
    }
}

/// The stream of a kind as the fluentd set-up named it (`stream_names = fluentd`): `<unit>-<host>`
/// and `host.<file>-<host>` (fluentd's `${tag}-${record["hostname"]}` and
/// `${tag}-${record["host"]}`), where `<host>` is the entry's `_HOSTNAME`, or `node` when the entry
/// has none.
pub fn fluentd_stream(kind: &JournalRecordKind, hostname: Option<&str>, node: &str) -> String {
    let host = hostname.filter(|h| !h.is_empty()).unwrap_or(node);
    match (kind, kind.host_file()) {
        (JournalRecordKind::Dataplane { unit }, _) => format!("{unit}-{host}"),
        (_, Some(file)) => format!("host.{file}-{host}"),
        (_, None) => host.to_string(),
    }
}

#[cfg(test)]
#[path = "journal/tests.rs"]
mod tests;
