//! `logs.logs_collected.files.collect_list`: the `CloudWatch` agent's own file collection, read
//! so that an existing agent file configuration keeps working. Keys and defaults as the agent
//! documents them ("Manually create or edit the `CloudWatch` agent configuration file", `logs`
//! section) and implements them (`aws/amazon-cloudwatch-agent`: `plugins/inputs/logfile/
//! fileconfig.go`, `logfile.go`, and the translator's `collect_list` rules).

use super::error::ErrorKind;
use super::model::{CollectFile, LogFilter, LogGroupClass, MultiLineStart};
use super::values;
use super::walk::{Ctx, Obj};

/// The placeholders a group or stream name may hold, and a sample of each used to check that
/// the name is valid once they are filled in.
pub const PLACEHOLDERS: [(&str, &str); 4] = [
    ("{instance_id}", "i-0123456789abcdef0"),
    ("{hostname}", "ip-10-0-1-23.ec2.internal"),
    ("{local_hostname}", "ip-10-0-1-23.ec2.internal"),
    ("{ip_address}", "10.0.1.23"),
];

/// `file_path` is at most 4096 characters (the agent's schema).
const MAX_FILE_PATH: usize = 4096;

/// The stream name when neither the entry nor `logs.log_stream_name` sets one (the agent's
/// default).
pub const DEFAULT_STREAM: &str = "{instance_id}";

/// The agent's multiline default (`fileconfig.go` sets it when the key is absent).
pub const DEFAULT_MULTI_LINE_START: &str = r"^[\S]";

/// `logs.logs_collected`: `files.collect_list` is read; the other sources warn.
pub(super) fn logs_collected(mut o: Obj<'_>, cx: &mut Ctx, default_stream: Option<&str>) -> Vec<CollectFile> {
    let mut files = o.object(cx, "files");
    let list = files
        .objects(cx, "collect_list")
        .into_iter()
        .filter_map(|entry| collect_file(entry, cx, default_stream))
        .collect();
    files.finish(cx);
    for section in ["windows_events", "journald", "otlp", "prometheus", "emf"] {
        if o.value(section).is_some() {
            cx.warn(format!(
                "{}: not implemented by kinsight and ignored (only files.collect_list is read)",
                o.path_of(section)
            ));
        }
    }
    o.finish(cx);
    list
}

/// One `collect_list` entry.
fn collect_file(mut o: Obj<'_>, cx: &mut Ctx, default_stream: Option<&str>) -> Option<CollectFile> {
    let before = cx.errors.len();
    // string, required: absolute path; `*`, `?` and `**` (any directories) are wildcards.
    let file_path = o.parsed(cx, "file_path", file_path);
    if o.value("file_path").is_none() {
        cx.error(
            o.path_of("file_path"),
            ErrorKind::invalid("required: the file, or file name pattern, to collect"),
        );
    }
    // bool, default false: every matching file, each to its own stream (else only the newest).
    let publish_multi_logs = o.bool(cx, "publish_multi_logs", false);
    // string template, default the file path without its extension.
    let log_group_name = o.parsed(cx, "log_group_name", group_template);
    // string template, default `logs.log_stream_name`, else "{instance_id}".
    let log_stream_name = o
        .parsed(cx, "log_stream_name", stream_template)
        .unwrap_or_else(|| default_stream.unwrap_or(DEFAULT_STREAM).to_string());
    // string: strftime-like pattern of the time in each line (the event's timestamp).
    let timestamp_format = o.parsed(cx, "timestamp_format", |s| {
        crate::logs::parse::TimestampFormat::compile(s)
            .map(|_| s.to_string())
            .map_err(|e| ErrorKind::invalid(e.to_string()))
    });
    // "UTC" | "Local", default "Local": zone of times without %z (Local is UTC in the image).
    let timezone_utc = o
        .choice(cx, "timezone", &[("UTC", true), ("Local", false), ("LOCAL", false)])
        .unwrap_or(false);
    // string regex, or "{timestamp_format}"; default `^[\S]`.
    let multi_line_start = match o.str(cx, "multi_line_start_pattern") {
        Some("{timestamp_format}") => {
            if o.value("timestamp_format").is_none() {
                cx.error(
                    o.path_of("multi_line_start_pattern"),
                    ErrorKind::invalid("\"{timestamp_format}\" needs timestamp_format in the same entry"),
                );
            }
            MultiLineStart::Timestamp
        }
        Some(p) => match values::regex(p) {
            Ok(p) => MultiLineStart::Pattern(p),
            Err(kind) => {
                cx.error(o.path_of("multi_line_start_pattern"), kind);
                MultiLineStart::Pattern(DEFAULT_MULTI_LINE_START.into())
            }
        },
        None => MultiLineStart::Pattern(DEFAULT_MULTI_LINE_START.into()),
    };
    // string, default "utf-8": the file's encoding (WHATWG labels).
    let encoding = o.parsed(cx, "encoding", encoding).flatten();
    // [{type: include|exclude, expression: regex}]: every filter must let a record through.
    let filters = filters(&mut o, cx);
    // integer days, default -1 (never expire): retention of groups kinsight creates.
    let retention_in_days = retention(&mut o, cx);
    // "STANDARD" | "INFREQUENT_ACCESS", default STANDARD: class of groups kinsight creates.
    let log_group_class = o.choice(
        cx,
        "log_group_class",
        &[
            ("STANDARD", LogGroupClass::Standard),
            ("standard", LogGroupClass::Standard),
            ("INFREQUENT_ACCESS", LogGroupClass::InfrequentAccess),
            ("infrequent_access", LogGroupClass::InfrequentAccess),
        ],
    );
    // string regex: files whose name matches are not collected.
    let blacklist = o.parsed(cx, "blacklist", values::regex);
    // bool, default false: remove the time found by timestamp_format from the message.
    let trim_timestamp = o.bool(cx, "trim_timestamp", false);
    if trim_timestamp && o.value("timestamp_format").is_none() {
        cx.warn(format!(
            "{}: has no effect without timestamp_format",
            o.path_of("trim_timestamp")
        ));
    }
    ignored_keys(&mut o, cx);
    let group_path = o.path_of("log_group_name");
    o.finish(cx);
    let file_path = file_path?;
    if log_group_name.is_none() && !publish_multi_logs {
        let default = default_group(&file_path);
        if let Err(e) = group_template(&default) {
            cx.error(
                group_path,
                ErrorKind::invalid(format!(
                    "required here: the default, the file path without its extension ({default:?}), is not a valid \
                     log group name ({e})"
                )),
            );
        }
    }
    (cx.errors.len() == before).then_some(CollectFile {
        file_path,
        log_group_name,
        log_stream_name,
        timestamp_format,
        timezone_utc,
        multi_line_start,
        encoding,
        filters,
        retention_in_days,
        log_group_class,
        publish_multi_logs,
        blacklist,
        trim_timestamp,
    })
}

fn filters(o: &mut Obj<'_>, cx: &mut Ctx) -> Vec<LogFilter> {
    let mut filters = Vec::new();
    for mut f in o.objects(cx, "filters") {
        if let Some(filter) = filter(&mut f, cx) {
            filters.push(filter);
        }
        f.finish(cx);
    }
    filters
}

/// The `type` and `expression` of one filter object (the caller reads its other keys and
/// finishes it): the CloudWatch agent's `collect_list` filters, and `kinsight.logs.filters`.
pub(super) fn filter(f: &mut Obj<'_>, cx: &mut Ctx) -> Option<LogFilter> {
    let include = f.choice(cx, "type", &[("include", true), ("exclude", false)]);
    if f.value("type").is_none() {
        cx.error(
            f.path_of("type"),
            ErrorKind::invalid("required: \"include\" or \"exclude\""),
        );
    }
    let expression = f.parsed(cx, "expression", values::regex);
    if f.value("expression").is_none() {
        cx.error(
            f.path_of("expression"),
            ErrorKind::invalid("required: a regular expression"),
        );
    }
    include
        .zip(expression)
        .map(|(include, expression)| LogFilter { include, expression })
}

/// Keys with no meaning for kinsight: one warning each.
fn ignored_keys(o: &mut Obj<'_>, cx: &mut Ctx) {
    for (key, why) in [
        (
            "auto_removal",
            "kinsight never deletes or writes the host's files (it reads the host read-only)",
        ),
        ("pipe", "kinsight reads regular files only"),
        ("from_beginning", "a file without a checkpoint is read from its start"),
        (
            "backpressure_mode",
            "kinsight never drops lines: readers pause while CloudWatch Logs is slow",
        ),
        ("max_event_size", "kinsight.logs.max_event_bytes applies"),
        ("truncate_suffix", "kinsight.logs.oversize_event applies"),
        ("service.name", "entity attributes are not sent"),
        ("deployment.environment", "entity attributes are not sent"),
    ] {
        if o.value(key).is_some() {
            cx.warn(format!("{}: ignored: {why}", o.path_of(key)));
        }
    }
}

/// Settings of the groups `collect_list` entries send to, for when kinsight creates them: a
/// glob over group names (a placeholder, or a wildcard of a per-file group, matches any run of
/// characters) and what to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRule {
    pub glob: String,
    pub retention_days: Option<u32>,
    pub class: Option<LogGroupClass>,
}

impl GroupRule {
    /// The rules of `entries` that set anything, in order (the first match wins).
    pub fn of(entries: &[CollectFile]) -> std::sync::Arc<[GroupRule]> {
        entries
            .iter()
            .filter(|e| e.retention_in_days.is_some() || e.log_group_class.is_some())
            .map(|e| {
                let template = match (&e.log_group_name, e.publish_multi_logs) {
                    (Some(g), _) => g.clone(),
                    (None, false) => default_group(&e.file_path),
                    // The wildcards stay wildcards; a file they match is sanitized the same way.
                    (None, true) => e
                        .file_path
                        .split_inclusive(['*', '?'])
                        .map(|part| match part.strip_suffix(['*', '?']) {
                            Some(lit) => format!("{}{}", sanitized(lit), &part[lit.len()..]),
                            None => sanitized(part),
                        })
                        .collect(),
                };
                let glob = PLACEHOLDERS.iter().fold(template, |t, (p, _)| t.replace(p, "*"));
                GroupRule {
                    glob,
                    retention_days: e.retention_in_days,
                    class: e.log_group_class,
                }
            })
            .collect()
    }

    /// The rule for `group`, if one matches.
    pub fn find<'a>(rules: &'a [GroupRule], group: &str) -> Option<&'a GroupRule> {
        rules.iter().find(|r| crate::logs::route::glob_match(&r.glob, group))
    }
}

/// The agent's `generateLogGroupName`: every character outside `[.\-_/#A-Za-z0-9]` becomes `_`.
pub fn sanitized(path: &str) -> String {
    path.chars()
        .map(|c| if values::is_log_group_char(c) { c } else { '_' })
        .collect()
}

/// The agent's default group: the path up to the extension of its last element
/// (`/tmp/a.log.2017-07-11` → `/tmp/a.log`).
pub fn default_group(file_path: &str) -> String {
    let name_start = file_path.rfind('/').map_or(0, |i| i + 1);
    match file_path[name_start..].rfind('.') {
        Some(dot) => file_path[..name_start + dot].to_string(),
        None => file_path.to_string(),
    }
}

/// An absolute path pattern: no `.` or `..` component, wildcards `*` and `?` in names and `**`
/// as a whole component.
fn file_path(s: &str) -> Result<String, ErrorKind> {
    values::absolute_path(s)?;
    if s.len() > MAX_FILE_PATH {
        return Err(ErrorKind::invalid(format!("longer than {MAX_FILE_PATH} characters")));
    }
    if s.ends_with('/') {
        return Err(ErrorKind::invalid(format!(
            "{s:?} names a directory; name the files, as in \"{s}*.log\""
        )));
    }
    if s.contains(['[', ']', '{', '}', '\\']) {
        return Err(ErrorKind::invalid(format!(
            "{s:?}: only '*', '?' and '**' are wildcards in kinsight; [ ] {{ }} \\ are not supported"
        )));
    }
    if let Some(c) = s.split('/').find(|c| c.contains("**") && *c != "**") {
        return Err(ErrorKind::invalid(format!(
            "{s:?}: '**' must be a whole path component (\"/var/log/**/x.log\"), not part of {c:?}"
        )));
    }
    Ok(s.to_string())
}

/// Fills the placeholders with samples.
fn sample(template: &str) -> String {
    PLACEHOLDERS
        .iter()
        .fold(template.to_string(), |t, (p, v)| t.replace(p, v))
}

fn unknown_placeholder(filled: &str) -> Option<&str> {
    let open = filled.find('{')?;
    let close = filled[open..].find('}').map_or(filled.len(), |c| open + c + 1);
    Some(&filled[open..close])
}

/// A log group name template: valid once its placeholders are filled in.
fn group_template(s: &str) -> Result<String, ErrorKind> {
    let filled = sample(s);
    if let Some(p) = unknown_placeholder(&filled) {
        return Err(ErrorKind::invalid(format!(
            "unknown placeholder {p}; known are {{instance_id}}, {{hostname}}, {{local_hostname}}, {{ip_address}}"
        )));
    }
    if filled.is_empty() || filled.chars().count() > values::MAX_LOG_GROUP_NAME {
        return Err(ErrorKind::invalid("a log group name is 1 to 512 characters"));
    }
    if let Some(c) = filled.chars().find(|c| !values::is_log_group_char(*c)) {
        return Err(ErrorKind::invalid(format!(
            "{c:?} cannot appear in a log group name; allowed are letters, digits and . - _ / #"
        )));
    }
    Ok(s.to_string())
}

/// A log stream name template: 1 to 512 characters without `:` or `*` once filled in
/// (`CreateLogStream`).
fn stream_template(s: &str) -> Result<String, ErrorKind> {
    let filled = sample(s);
    if let Some(p) = unknown_placeholder(&filled) {
        return Err(ErrorKind::invalid(format!(
            "unknown placeholder {p}; known are {{instance_id}}, {{hostname}}, {{local_hostname}}, {{ip_address}}"
        )));
    }
    if filled.is_empty() || filled.chars().count() > 512 {
        return Err(ErrorKind::invalid("a log stream name is 1 to 512 characters"));
    }
    if filled.contains([':', '*']) {
        return Err(ErrorKind::invalid("':' and '*' cannot appear in a log stream name"));
    }
    Ok(s.to_string())
}

/// An encoding label. UTF-8 and ASCII read as UTF-8 (`None`), as the agent does.
fn encoding(s: &str) -> Result<Option<String>, ErrorKind> {
    let lower = s.trim().to_ascii_lowercase();
    if matches!(lower.as_str(), "" | "utf-8" | "utf8" | "utf_8" | "ascii" | "us-ascii") {
        return Ok(None);
    }
    match encoding_rs::Encoding::for_label(lower.replace('_', "-").as_bytes()) {
        Some(e) if e == encoding_rs::UTF_8 => Ok(None),
        Some(e) if e == encoding_rs::UTF_16LE || e == encoding_rs::UTF_16BE => Err(ErrorKind::invalid(format!(
            "{s:?}: UTF-16 files are not supported by kinsight (their lines do not end in a single '\\n' byte)"
        ))),
        Some(e) if e == encoding_rs::REPLACEMENT => Err(ErrorKind::invalid(format!(
            "{s:?}: this label names an encoding that cannot be decoded safely (WHATWG maps it to \"replacement\")"
        ))),
        Some(_) => Ok(Some(lower.replace('_', "-"))),
        None => Err(ErrorKind::invalid(format!(
            "unknown encoding {s:?}; use a WHATWG label such as \"latin1\", \"windows-1252\", \"gbk\", \"shift_jis\", \
             \"euc-kr\", \"big5\""
        ))),
    }
}

/// `retention_in_days`: -1 or 0 is "never expire"; otherwise one of `PutRetentionPolicy`'s values.
fn retention(o: &mut Obj<'_>, cx: &mut Ctx) -> Option<u32> {
    let path = o.path_of("retention_in_days");
    let v = o.value("retention_in_days")?;
    let Some(n) = v.as_i64() else {
        cx.error(path, super::walk::wrong_type("an integer", v));
        return None;
    };
    if n == -1 || n == 0 {
        return None;
    }
    match u64::try_from(n).ok().filter(|d| values::RETENTION_DAYS.contains(d)) {
        Some(d) => u32::try_from(d).ok(),
        None => {
            let allowed: Vec<String> = values::RETENTION_DAYS.iter().map(u64::to_string).collect();
            cx.error(
                path,
                ErrorKind::OutOfRange {
                    expected: format!(
                        "-1 or one of {} (days, as PutRetentionPolicy allows)",
                        allowed.join(", ")
                    ),
                    got: n.to_string(),
                },
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_groups_drop_the_last_extension_only() {
        assert_eq!(
            default_group("/tmp/TestLogFile.log.2017-07-11-14"),
            "/tmp/TestLogFile.log"
        );
        assert_eq!(default_group("/var/log/app.log"), "/var/log/app");
        assert_eq!(default_group("/var/log.d/app"), "/var/log.d/app");
    }

    #[test]
    fn paths_reject_what_could_leave_the_root_or_is_not_supported() {
        assert!(file_path("/var/log/app/*.log").is_ok());
        assert!(file_path("/var/log/**/x?.log").is_ok());
        for bad in [
            "var/log/x.log",
            "/var/log/../../etc/shadow",
            "/var/./log/x",
            "/var/log/[ab].log",
            "/var/log/{a,b}.log",
            "/var/log/a**.log",
            "/var/log/",
        ] {
            assert!(file_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates_are_checked_with_their_placeholders_filled() {
        assert!(group_template("/app/{instance_id}/{ip_address}").is_ok());
        assert!(group_template("/app/{instanceid}").is_err());
        assert!(group_template("/app/x y").is_err());
        assert!(stream_template("{hostname}_{local_hostname}").is_ok());
        assert!(stream_template("a:b").is_err());
        assert!(stream_template("").is_err());
    }

    #[test]
    fn group_rules_match_the_groups_their_entries_make() {
        let entry = |path: &str, group: Option<&str>, multi: bool| CollectFile {
            log_group_name: group.map(str::to_string),
            retention_in_days: Some(7),
            publish_multi_logs: multi,
            ..CollectFile::new(path)
        };
        let rules = GroupRule::of(&[
            entry("/var/log/a.log", None, false),
            entry("/var/log/b/*.log", Some("/b/{instance_id}"), false),
            entry("/var/log/c d/*.log", None, true),
        ]);
        assert!(GroupRule::find(&rules, "/var/log/a").is_some());
        assert!(GroupRule::find(&rules, "/b/i-0123").is_some());
        assert!(GroupRule::find(&rules, "/var/log/c_d/x_y.log").is_some(), "{rules:?}");
        assert!(GroupRule::find(&rules, "/aws/containerinsights/c/application").is_none());
        assert_eq!(sanitized("/var/log/c d/x:y.log"), "/var/log/c_d/x_y.log");
    }

    #[test]
    fn encodings_are_whatwg_labels_without_utf16() {
        assert_eq!(encoding("utf-8").unwrap(), None);
        assert_eq!(encoding("ascii").unwrap(), None);
        assert_eq!(encoding("latin1").unwrap().as_deref(), Some("latin1"));
        assert_eq!(encoding("Shift_JIS").unwrap().as_deref(), Some("shift-jis"));
        assert!(encoding("utf-16").is_err());
        assert!(encoding("klingon").is_err());
    }
}
