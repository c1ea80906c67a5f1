//! The `CloudWatch` agent's file collection (`logs.logs_collected.files.collect_list`) at run
//! time: which files an entry names, where their events go, and how a line becomes an event.
//!
//! As the agent does it (`aws/amazon-cloudwatch-agent`: `plugins/inputs/logfile/logfile.go`,
//! `tailersrc.go`, `fileconfig.go`, `logfilter.go`):
//! - a pattern names files; without `publish_multi_logs` only the most recently modified match
//!   is collected (a newer one that appears later is added, and the one being read is read to
//!   its end), with it every match, each to its own stream; compressed files (`.gz`, `.zip`,
//!   `.bz2`, `.zst`, `.tar`, `.rar`) and names matching `blacklist` never are;
//! - the message is the line itself (no JSON around it), decoded from `encoding`; lines are
//!   joined into one event by `multi_line_start_pattern` (default `^[\S]`: a line starting with
//!   a space or tab continues the previous one), and an event with no new line for the flush
//!   timeout is sent as it is;
//! - the timestamp is the time `timestamp_format` finds in the event, else the time it was read;
//! - an event is sent only if every filter lets it through (`include`: must match, `exclude`:
//!   must not); an empty event is not sent.
//!
//! Unlike the agent, a symlink that the pattern names is not followed (a link planted in a
//! directory that pods can write to must not make kinsight ship another file), a file with
//! more than one name (a hardlink) is refused, and the state directory is never collected.

use std::path::{Path, PathBuf};

use regex::Regex;

use crate::config::collect::default_group;
use crate::config::{CollectFile, MultiLineStart};
use crate::host::confined::{ConfinedError, ConfinedRoot, DirEntry, FileKind};

use super::discover::list;
use super::encode::SizeRules;
use super::parse::{MultilineRule, Record, TimestampFormat, repair, utf8_floor};
use super::route::glob_match;

/// `**` descends at most this many directories.
const MAX_DEPTH: usize = 16;

/// Suffixes of files the agent never collects (`isCompressedFile` in its `logfile.go`).
const COMPRESSED: [&str; 6] = [".tar", ".zst", ".gz", ".zip", ".bz2", ".rar"];

/// The values of the placeholders in group and stream names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placeholders {
    /// `{instance_id}`: the EC2 instance id, else the node name.
    pub instance_id: String,
    /// `{hostname}` and `{local_hostname}`: the node name (on EKS, the instance's private DNS name).
    pub hostname: String,
    /// `{ip_address}`: `HOST_IP` (the downward API's `status.hostIP`).
    pub ip_address: String,
}

impl Placeholders {
    /// The values on this node. Without `HOST_IP` (a run outside the DaemonSet) `{ip_address}`
    /// is `unknown`, and a warning says so when an entry uses it.
    pub fn of(
        node_name: &str,
        instance_id: Option<&str>,
        host_ip: Option<&str>,
        entries: &[CollectFile],
    ) -> Placeholders {
        let uses_ip = entries.iter().any(|e| {
            e.log_stream_name.contains("{ip_address}")
                || e.log_group_name.as_deref().is_some_and(|g| g.contains("{ip_address}"))
        });
        if uses_ip && host_ip.is_none() {
            tracing::warn!(
                "a collect_list name uses {{ip_address}} but HOST_IP is not set (the DaemonSet sets it from status.hostIP); it reads \"unknown\""
            );
        }
        Placeholders {
            instance_id: instance_id.unwrap_or(node_name).to_string(),
            hostname: node_name.to_string(),
            ip_address: host_ip.unwrap_or("unknown").to_string(),
        }
    }

    pub fn fill(&self, template: &str) -> String {
        template
            .replace("{instance_id}", &self.instance_id)
            .replace("{hostname}", &self.hostname)
            .replace("{local_hostname}", &self.hostname)
            .replace("{ip_address}", &self.ip_address)
    }
}

/// Why a `collect_list` entry cannot be used (the configuration was validated, so only a
/// pattern that compiled there and not here, which is a bug, or a bad placeholder value).
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("collect_list[{index}]: {what} does not compile")]
    Regex {
        index: usize,
        what: &'static str,
        #[source]
        source: regex::Error,
    },
    #[error("collect_list[{index}].timestamp_format: {source}")]
    Timestamp {
        index: usize,
        #[source]
        source: super::parse::TimestampFormatError,
    },
}

/// One compiled `collect_list` entry.
#[derive(Debug)]
pub struct CollectRule {
    pub index: usize,
    /// The pattern's components below the root (no leading `/`).
    components: Vec<String>,
    /// The group with its placeholders filled; `None`: per file (`publish_multi_logs`).
    group: Option<String>,
    stream: String,
    pub publish_multi_logs: bool,
    timestamp: Option<TimestampFormat>,
    trim_timestamp: bool,
    pub multiline: MultilineRule,
    encoding: Option<&'static encoding_rs::Encoding>,
    filters: Vec<(bool, Regex)>,
    blacklist: Option<Regex>,
    /// Below the root, no leading `/`: never collected.
    state_dir: PathBuf,
}

impl CollectRule {
    pub fn compile(
        index: usize,
        entry: &CollectFile,
        values: &Placeholders,
        state_dir: &Path,
    ) -> Result<CollectRule, CollectError> {
        let regex =
            |what: &'static str, p: &str| Regex::new(p).map_err(|source| CollectError::Regex { index, what, source });
        let timestamp = entry
            .timestamp_format
            .as_deref()
            .map(TimestampFormat::compile)
            .transpose()
            .map_err(|source| CollectError::Timestamp { index, source })?;
        let start = match (&entry.multi_line_start, &timestamp) {
            (MultiLineStart::Timestamp, Some(t)) => t.pattern().to_string(),
            (MultiLineStart::Pattern(p), _) => p.clone(),
            (MultiLineStart::Timestamp, None) => crate::config::collect::DEFAULT_MULTI_LINE_START.to_string(),
        };
        let multiline = MultilineRule::start_pattern(&start).map_err(|source| CollectError::Regex {
            index,
            what: "multi_line_start_pattern",
            source,
        })?;
        let group = match (&entry.log_group_name, entry.publish_multi_logs) {
            (Some(g), _) => Some(values.fill(g)),
            (None, false) => Some(default_group(&entry.file_path)),
            (None, true) => None,
        };
        Ok(CollectRule {
            index,
            components: entry
                .file_path
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect(),
            group,
            stream: values.fill(&entry.log_stream_name),
            publish_multi_logs: entry.publish_multi_logs,
            timestamp,
            trim_timestamp: entry.trim_timestamp,
            multiline,
            encoding: entry
                .encoding
                .as_deref()
                .and_then(|l| encoding_rs::Encoding::for_label(l.as_bytes())),
            filters: entry
                .filters
                .iter()
                .map(|f| Ok((f.include, regex("filters", &f.expression)?)))
                .collect::<Result<_, CollectError>>()?,
            blacklist: entry.blacklist.as_deref().map(|b| regex("blacklist", b)).transpose()?,
            state_dir: state_dir.strip_prefix("/").unwrap_or(state_dir).to_path_buf(),
        })
    }

    /// The group and stream of the file at `rel` (below the root). With `publish_multi_logs`:
    /// a file without a configured group goes to a group named after its own path, one with a
    /// configured group to a stream named after it (`generateLogGroupName` and
    /// `generateLogStreamName` in the agent's `logfile.go`).
    pub fn route(&self, rel: &Path) -> (String, String) {
        let abs = format!("/{}", rel.display());
        match (&self.group, self.publish_multi_logs) {
            (Some(g), false) => (g.clone(), self.stream.clone()),
            (Some(g), true) => (
                g.clone(),
                format!("{}_{}", self.stream, sanitized(&abs).replace('/', "_")),
            ),
            (None, _) => (sanitized(&abs), self.stream.clone()),
        }
    }

    /// The deepest directory of the pattern without a wildcard: where its files (or the
    /// directories that hold them) appear.
    pub fn prefix_dir(&self) -> PathBuf {
        let fixed = self
            .components
            .iter()
            .take(self.components.len().saturating_sub(1))
            .take_while(|c| !c.contains(['*', '?']));
        fixed.collect()
    }

    /// The files the pattern names now: regular files only, with the inode the directory lists.
    pub fn find(&self, root: &ConfinedRoot, errors: &mut Vec<ConfinedError>) -> Vec<(PathBuf, u64)> {
        let mut out = Vec::new();
        self.walk(root, Path::new(""), 0, 0, errors, &mut out);
        out.retain(|(rel, _)| {
            let name = rel.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
            !COMPRESSED.iter().any(|s| name.ends_with(s))
                && !self.blacklist.as_ref().is_some_and(|b| b.is_match(&name))
                && (self.state_dir.as_os_str().is_empty() || !rel.starts_with(&self.state_dir))
        });
        out
    }

    fn walk(
        &self,
        root: &ConfinedRoot,
        dir: &Path,
        i: usize,
        depth: usize,
        errors: &mut Vec<ConfinedError>,
        out: &mut Vec<(PathBuf, u64)>,
    ) {
        let Some(comp) = self.components.get(i) else { return };
        let last = i + 1 == self.components.len();
        if comp == "**" {
            if last {
                return; // validated against: `**` names directories
            }
            self.walk(root, dir, i + 1, depth, errors, out);
            if depth < MAX_DEPTH {
                for e in list(root, dir, errors) {
                    if is_dir(&e) {
                        self.walk(root, &dir.join(&e.name), i, depth + 1, errors, out);
                    }
                }
            }
            return;
        }
        if !comp.contains(['*', '?']) && !last {
            self.walk(root, &dir.join(comp), i + 1, depth, errors, out);
            return;
        }
        for e in list(root, dir, errors) {
            let name = e.name.to_string_lossy();
            if !glob_match(comp, &name) {
                continue;
            }
            if last {
                if matches!(e.kind, FileKind::Regular | FileKind::Unknown) {
                    out.push((dir.join(&e.name), e.ino));
                }
            } else if is_dir(&e) {
                self.walk(root, &dir.join(&e.name), i + 1, depth, errors, out);
            }
        }
    }

    /// One line as text: decoded from the entry's encoding, or repaired as UTF-8. Returns the
    /// text and whether anything had to be replaced.
    pub fn decode<'a>(&self, line: &'a [u8], buf: &'a mut String) -> (&'a str, bool) {
        match self.encoding {
            None => {
                let r = repair(line, buf);
                (r.text, r.repaired)
            }
            Some(enc) => {
                let (text, had_errors) = enc.decode_without_bom_handling(line);
                buf.clear();
                buf.push_str(&text);
                (buf.as_str(), had_errors)
            }
        }
    }

    /// The event(s) of one assembled record: its timestamp and message(s), or `None` when it is
    /// empty or a filter holds it back (counted by the caller as filtered).
    pub fn event(&self, r: &Record<'_>, now_ms: i64, rules: SizeRules) -> Option<Event> {
        // The multiline stage joins valid UTF-8 with `\n`, so this never replaces anything.
        let text = String::from_utf8_lossy(r.content);
        let mut message: &str = &text;
        let mut trimmed = String::new();
        let mut timestamp_ms = r.timestamp_ms;
        if let Some(found) = self.timestamp.as_ref().and_then(|t| t.find(&text, now_ms)) {
            timestamp_ms = found.timestamp_ms;
            if self.trim_timestamp {
                trimmed.push_str(&text[..found.span.start]);
                trimmed.push_str(text[found.span.end..].trim_start());
                message = &trimmed;
            }
        }
        if message.is_empty() {
            return None;
        }
        if !self
            .filters
            .iter()
            .all(|(include, re)| re.is_match(message) == *include)
        {
            return Some(Event {
                timestamp_ms,
                messages: Vec::new(),
                truncated: false,
            });
        }
        let (messages, truncated) = sized(message, rules);
        Some(Event {
            timestamp_ms,
            messages,
            truncated,
        })
    }
}

/// What one record became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub timestamp_ms: i64,
    /// Empty: a filter held the record back.
    pub messages: Vec<String>,
    /// Cut or split to fit `max_event_bytes`.
    pub truncated: bool,
}

/// A message within `max_event_bytes`: cut at a character boundary, or split into pieces, as
/// `kinsight.logs.oversize_event` says.
fn sized(message: &str, rules: SizeRules) -> (Vec<String>, bool) {
    let max = rules.max_event_bytes.max(4);
    if message.len() <= max {
        return (vec![message.to_string()], false);
    }
    match rules.oversize {
        crate::config::OversizeEvent::Truncate => {
            let cut = utf8_floor(message.as_bytes(), max);
            (vec![message[..cut].to_string()], true)
        }
        crate::config::OversizeEvent::Split => {
            let mut out = Vec::new();
            let mut rest = message;
            while !rest.is_empty() {
                let cut = utf8_floor(rest.as_bytes(), max).max(rest.chars().next().map_or(1, char::len_utf8));
                out.push(rest[..cut].to_string());
                rest = &rest[cut..];
            }
            (out, true)
        }
    }
}

pub use crate::config::collect::sanitized;

fn is_dir(e: &DirEntry) -> bool {
    matches!(e.kind, FileKind::Directory | FileKind::Unknown)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::{LogFilter, OversizeEvent};
    use crate::logs::parse::{CloseReason, Stream};

    fn entry(path: &str) -> CollectFile {
        CollectFile::new(path)
    }

    fn values() -> Placeholders {
        Placeholders {
            instance_id: "i-0abc".into(),
            hostname: "ip-10-0-1-23.ec2.internal".into(),
            ip_address: "10.0.1.23".into(),
        }
    }

    fn rule(e: &CollectFile) -> CollectRule {
        CollectRule::compile(0, e, &values(), Path::new("/var/lib/kinsight")).unwrap()
    }

    fn record(text: &str) -> Record<'_> {
        Record {
            time: "",
            timestamp_ms: 1_000,
            stream: Stream::Stdout,
            content: text.as_bytes(),
            start: 0,
            end: text.len() as u64 + 1,
            pieces: 1,
            truncated: false,
            closed: CloseReason::Terminated,
        }
    }

    const SIZE: SizeRules = SizeRules {
        max_event_bytes: 1_048_550,
        oversize: OversizeEvent::Truncate,
    };

    #[test]
    fn groups_and_streams_follow_the_agent() {
        let mut e = entry("/var/log/app/server.log");
        assert_eq!(
            rule(&e).route(Path::new("var/log/app/server.log")),
            ("/var/log/app/server".into(), "i-0abc".into())
        );
        e.log_group_name = Some("/app/{hostname}".into());
        e.log_stream_name = "{ip_address}-{local_hostname}".into();
        assert_eq!(
            rule(&e).route(Path::new("var/log/app/server.log")),
            (
                "/app/ip-10-0-1-23.ec2.internal".into(),
                "10.0.1.23-ip-10-0-1-23.ec2.internal".into()
            )
        );
        e.publish_multi_logs = true;
        assert_eq!(
            rule(&e).route(Path::new("var/log/app/a b.log")).1,
            "10.0.1.23-ip-10-0-1-23.ec2.internal__var_log_app_a_b.log"
        );
        e.log_group_name = None;
        assert_eq!(
            rule(&e).route(Path::new("var/log/app/a b.log")),
            (
                "/var/log/app/a_b.log".into(),
                "10.0.1.23-ip-10-0-1-23.ec2.internal".into()
            )
        );
    }

    #[test]
    fn patterns_find_regular_files_only_and_never_compressed_blacklisted_or_state_files() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        for f in [
            "var/log/app/a.log",
            "var/log/app/b.log",
            "var/log/app/b.log.gz",
            "var/log/app/debug.log",
            "var/log/app/sub/deep/c.log",
            "var/log/app/x.txt",
            "var/lib/kinsight/logs.log",
            "etc/shadow",
        ] {
            std::fs::create_dir_all(r.join(f).parent().unwrap()).unwrap();
            std::fs::write(r.join(f), "x\n").unwrap();
        }
        std::os::unix::fs::symlink("/etc/shadow", r.join("var/log/app/evil.log")).unwrap();
        std::fs::create_dir_all(r.join("var/log/app/dir.log")).unwrap();
        let root = ConfinedRoot::open(r).unwrap();
        let found = |e: &CollectFile| {
            let mut v: Vec<String> = rule(e)
                .find(&root, &mut Vec::new())
                .into_iter()
                .map(|(p, _)| p.display().to_string())
                .collect();
            v.sort();
            v
        };
        let mut e = entry("/var/log/app/*.log");
        e.blacklist = Some("^debug".into());
        assert_eq!(found(&e), ["var/log/app/a.log", "var/log/app/b.log"]);
        assert_eq!(
            found(&entry("/var/log/**/*.log")),
            [
                "var/log/app/a.log",
                "var/log/app/b.log",
                "var/log/app/debug.log",
                "var/log/app/sub/deep/c.log"
            ]
        );
        assert_eq!(
            found(&entry("/var/log/app/?.log")),
            ["var/log/app/a.log", "var/log/app/b.log"]
        );
        assert_eq!(
            found(&entry("/var/lib/*/*.log")),
            Vec::<String>::new(),
            "the state directory"
        );
        assert_eq!(found(&entry("/var/log/nope/*.log")), Vec::<String>::new());
        assert_eq!(found(&entry("/var/log/app/a.log")), ["var/log/app/a.log"]);
    }

    #[test]
    fn lines_are_decoded_from_their_encoding() {
        let mut e = entry("/x.log");
        let mut buf = String::new();
        assert_eq!(rule(&e).decode(b"caf\xc3\xa9", &mut buf), ("café", false));
        assert_eq!(rule(&e).decode(b"caf\xe9", &mut buf), ("caf\u{fffd}", true));
        e.encoding = Some("latin1".into());
        assert_eq!(rule(&e).decode(b"caf\xe9", &mut buf), ("café", false));
        e.encoding = Some("shift-jis".into());
        assert_eq!(rule(&e).decode(b"\x93\xfa\x96\x7b", &mut buf), ("日本", false));
    }

    #[test]
    fn events_take_the_time_in_the_line_and_may_drop_it() {
        let mut e = entry("/x.log");
        e.timestamp_format = Some("%Y-%m-%d %H:%M:%S".into());
        let ev = rule(&e).event(&record("2026-12-01 08:09:10 INFO up"), 0, SIZE).unwrap();
        assert_eq!(ev.timestamp_ms, 1_796_112_550_000);
        assert_eq!(ev.messages, ["2026-12-01 08:09:10 INFO up"]);
        let ev = rule(&e).event(&record("no time"), 0, SIZE).unwrap();
        assert_eq!(ev.timestamp_ms, 1_000, "the read time");
        e.trim_timestamp = true;
        let ev = rule(&e).event(&record("2026-12-01 08:09:10 INFO up"), 0, SIZE).unwrap();
        assert_eq!(ev.messages, ["INFO up"]);
        assert!(
            rule(&e).event(&record("2026-12-01 08:09:10"), 0, SIZE).is_none(),
            "empty"
        );
        assert!(rule(&entry("/x.log")).event(&record(""), 0, SIZE).is_none());
    }

    #[test]
    fn every_filter_must_let_an_event_through() {
        let mut e = entry("/x.log");
        e.filters = vec![
            LogFilter {
                include: false,
                expression: "healthz".into(),
            },
            LogFilter {
                include: true,
                expression: "GET|POST".into(),
            },
        ];
        let r = rule(&e);
        let shipped = |t: &str| !r.event(&record(t), 0, SIZE).unwrap().messages.is_empty();
        assert!(shipped("GET /api"));
        assert!(!shipped("GET /healthz"));
        assert!(!shipped("DELETE /api"));
    }

    #[test]
    fn long_events_are_cut_or_split_at_character_boundaries() {
        let r = rule(&entry("/x.log"));
        let text = "é".repeat(10);
        let cut = SizeRules {
            max_event_bytes: 7,
            oversize: OversizeEvent::Truncate,
        };
        let ev = r.event(&record(&text), 0, cut).unwrap();
        assert_eq!((ev.messages, ev.truncated), (vec!["ééé".to_string()], true));
        let split = SizeRules {
            oversize: OversizeEvent::Split,
            ..cut
        };
        let ev = r.event(&record(&text), 0, split).unwrap();
        assert_eq!(ev.messages.concat(), text);
        assert!(ev.messages.iter().all(|m| m.len() <= 7));
    }

    #[test]
    fn the_default_multiline_rule_joins_indented_lines() {
        use crate::logs::parse::{Limits, Multiline};
        let r = rule(&entry("/x.log"));
        let mut ml = Multiline::new(r.multiline.clone(), Limits::default());
        let mut out = Vec::new();
        for line in ["Exception in main", "\tat a.b(C.java:1)", "\tat c.d(E.java:2)", "next"] {
            ml.push(record(line), Duration::ZERO, |rec| {
                out.push(String::from_utf8_lossy(rec.content).into_owned());
            });
        }
        ml.finish(|rec| out.push(String::from_utf8_lossy(rec.content).into_owned()));
        assert_eq!(
            out,
            ["Exception in main\n\tat a.b(C.java:1)\n\tat c.d(E.java:2)", "next"]
        );
    }
}
