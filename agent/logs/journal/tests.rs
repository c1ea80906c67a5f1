//! Real journal files, written by `systemd-journal-remote` from journald's export format
//! (systemd.io, "Journal Export Formats"): text fields `NAME=value\n`, binary ones
//! `NAME\n<u64 LE length><bytes>\n`, a blank line after each entry.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";

/// 2023-11-14T22:13:20Z, in µs: fixtures live in the past, so no clock matters.
const T0: u64 = 1_700_000_000_000_000;

const HOST: &str = "ip-10-0-0-1.ec2.internal";

/// The journal writer, or `None` after one line on stderr; under `CI=true` a missing writer fails.
fn remote() -> Option<&'static Path> {
    let path = Path::new(REMOTE);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none_or(|v| v != "true"),
        "{REMOTE} is missing: CI must install systemd-journal-remote"
    );
    eprintln!("skipped: {REMOTE} is missing (apt-get install -y systemd-journal-remote)");
    None
}

/// One export-format entry at `T0 + seq` ms.
fn entry(seq: u64, fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let realtime = T0 + seq * 1000;
    let head = format!(
        "__REALTIME_TIMESTAMP={realtime}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n",
        1000 + seq
    );
    out.extend_from_slice(head.as_bytes());
    for (name, value) in fields {
        let binary = value.contains(&b'\n') || std::str::from_utf8(value).is_err();
        out.extend_from_slice(name.as_bytes());
        if binary {
            out.push(b'\n');
            out.extend_from_slice(&(value.len() as u64).to_le_bytes());
        } else {
            out.push(b'=');
        }
        out.extend_from_slice(value);
        out.push(b'\n');
    }
    out.push(b'\n');
    out
}

/// Appends `entries` to the journal file `file` (created when missing).
fn write_journal(file: &Path, entries: &[Vec<u8>]) {
    fs::create_dir_all(file.parent().expect("parent")).expect("journal dir");
    let export = file.with_extension("export");
    fs::write(&export, entries.concat()).expect("export file");
    let out = Command::new(REMOTE)
        .arg("-o")
        .arg(file)
        .arg(&export)
        .output()
        .expect("run systemd-journal-remote");
    assert!(
        out.status.success(),
        "journal-remote: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    fs::remove_file(&export).expect("remove export file");
}

/// `<tmp>/var/log/journal/<machine-id>/`, as on a node.
fn journal_root(tmp: &tempfile::TempDir) -> PathBuf {
    tmp.path().join("var/log/journal")
}

fn machine_dir(tmp: &tempfile::TempDir) -> PathBuf {
    journal_root(tmp).join("0123456789abcdef0123456789abcdef")
}

fn config(tmp: &tempfile::TempDir, host: bool, start_at_tail: bool) -> JournalConfig {
    JournalConfig {
        dirs: vec![journal_root(tmp), tmp.path().join("run/log/journal")],
        dataplane_units: vec![
            "kubelet.service".to_string(),
            "containerd.service".to_string(),
            "docker.service".to_string(),
        ],
        host,
        start_at_tail,
    }
}

/// Everything readable now, in calls of `max`.
fn read_all(source: &mut JournalSource, max: usize) -> Vec<JournalRecord> {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let n = source.read(max, &mut out).expect("read");
        assert!(n <= max);
        if n == 0 && !source.has_more() {
            return out;
        }
    }
    panic!("reader did not settle");
}

fn kubelet(seq: u64, message: &str) -> Vec<u8> {
    entry(
        seq,
        &[
            ("_HOSTNAME", HOST.as_bytes()),
            ("_TRANSPORT", b"stdout"),
            ("_SYSTEMD_UNIT", b"kubelet.service"),
            ("SYSLOG_IDENTIFIER", b"kubelet"),
            ("SYSLOG_FACILITY", b"3"),
            ("PRIORITY", b"6"),
            ("MESSAGE", message.as_bytes()),
        ],
    )
}

/// The node of the brief: two dataplane units, a unit to ignore, kernel, authpriv, debug, error
/// and cron entries, one millisecond apart.
fn node_entries() -> Vec<Vec<u8>> {
    vec![
        kubelet(1, "I0101 kubelet started"),
        entry(
            2,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("_SYSTEMD_UNIT", b"containerd.service"),
                ("SYSLOG_IDENTIFIER", b"containerd"),
                ("SYSLOG_FACILITY", b"3"),
                ("PRIORITY", b"4"),
                ("MESSAGE", b"level=warning msg=\"slow \\\"pull\\\"\"\ttab"),
            ],
        ),
        entry(
            3,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("_SYSTEMD_UNIT", b"amazon-ssm-agent.service"),
                ("SYSLOG_IDENTIFIER", b"amazon-ssm-agent"),
                ("SYSLOG_FACILITY", b"3"),
                ("PRIORITY", b"6"),
                ("MESSAGE", b"ssm agent heartbeat"),
            ],
        ),
        entry(
            4,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("_TRANSPORT", b"kernel"),
                ("SYSLOG_IDENTIFIER", b"kernel"),
                ("SYSLOG_FACILITY", b"0"),
                ("PRIORITY", b"4"),
                ("MESSAGE", b"ena 0000:00:05.0 eth0: link up"),
            ],
        ),
        entry(
            5,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("_SYSTEMD_UNIT", b"sshd.service"),
                ("SYSLOG_IDENTIFIER", b"sshd"),
                ("SYSLOG_PID", b"4242"),
                ("SYSLOG_FACILITY", b"10"),
                ("PRIORITY", b"6"),
                ("MESSAGE", b"Accepted publickey for ec2-user"),
            ],
        ),
        entry(
            6,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"dhclient"),
                ("SYSLOG_FACILITY", b"3"),
                ("PRIORITY", b"7"),
                ("MESSAGE", b"debug noise"),
            ],
        ),
        entry(
            7,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"systemd"),
                ("SYSLOG_PID", b"1"),
                ("SYSLOG_FACILITY", b"3"),
                ("PRIORITY", b"3"),
                ("MESSAGE", b"Failed to start foo.service."),
            ],
        ),
        entry(
            8,
            &[
                ("_HOSTNAME", HOST.as_bytes()),
                ("SYSLOG_IDENTIFIER", b"crond"),
                ("SYSLOG_FACILITY", b"9"),
                ("PRIORITY", b"6"),
                ("MESSAGE", b"cron job ran"),
            ],
        ),
    ]
}

fn dataplane(unit: &str) -> JournalRecordKind {
    JournalRecordKind::Dataplane { unit: unit.to_string() }
}

fn summary(records: &[JournalRecord]) -> Vec<(JournalRecordKind, u64, &str)> {
    records
        .iter()
        .map(|r| (r.kind.clone(), (r.realtime_us - T0) / 1000, r.message.as_str()))
        .collect()
}

#[test]
fn classify_follows_the_container_insights_filters() {
    use JournalRecordKind::{HostDmesg as D, HostMessages as M, HostSecure as S};
    let units = vec!["kubelet.service".to_string(), "containerd.service".to_string()];
    let kinds = |fields: &[(&str, &'static [u8])], host: bool| {
        let get = |name: &str| fields.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
        classify(get, &units, host)
    };
    let kubelet: &[(&str, &[u8])] = &[("_SYSTEMD_UNIT", b"kubelet.service"), ("PRIORITY", b"6")];
    assert_eq!(kinds(kubelet, true), vec![dataplane("kubelet.service"), M]);
    assert_eq!(kinds(kubelet, false), vec![dataplane("kubelet.service")]);
    assert_eq!(
        kinds(&[("_SYSTEMD_UNIT", b"kubelet.service"), ("PRIORITY", b"7")], true),
        vec![dataplane("kubelet.service")]
    );
    assert!(kinds(&[("_SYSTEMD_UNIT", b"kubelet"), ("PRIORITY", b"7")], true).is_empty());
    assert_eq!(
        kinds(
            &[("_TRANSPORT", b"kernel"), ("PRIORITY", b"3"), ("SYSLOG_FACILITY", b"0")],
            true
        ),
        vec![D, M]
    );
    assert_eq!(kinds(&[("_TRANSPORT", b"kernel"), ("PRIORITY", b"7")], true), vec![D]);
    assert_eq!(kinds(&[("SYSLOG_FACILITY", b"10"), ("PRIORITY", b"6")], true), vec![S]);
    assert_eq!(kinds(&[("SYSLOG_FACILITY", b"10"), ("PRIORITY", b"7")], true), vec![S]);
    for excluded in [b"2".as_slice(), b"9", b"10"] {
        let fields = [("SYSLOG_FACILITY", excluded), ("PRIORITY", b"0".as_slice())];
        assert!(!kinds(&fields, true).contains(&M));
    }
    assert_eq!(kinds(&[("SYSLOG_FACILITY", b"4"), ("PRIORITY", b"0")], true), vec![M]);
    // No facility is not an excluded facility (Fluent Bit's grep keeps records without the key).
    assert_eq!(kinds(&[("PRIORITY", b"5")], true), vec![M]);
    // Exact bytes, as sd_journal_add_match compares them.
    assert!(kinds(&[("PRIORITY", b"06")], true).is_empty());
    assert!(kinds(&[("MESSAGE", b"no priority")], true).is_empty());
    assert!(kinds(&[("_TRANSPORT", b"kernel")], false).is_empty());
}

#[test]
fn messages_are_compact_json_with_a_stable_key_order() {
    assert_eq!(
        dataplane_message(Some("node-a"), "kubelet.service", "say \"hi\"\n\u{1}", ""),
        r#"{"hostname":"node-a","systemd_unit":"kubelet.service","message":"say \"hi\"\n\u0001"}"#
    );
    let extra = r#","az":"us-east-1a","ec2_instance_id":"i-0abc""#;
    assert_eq!(
        dataplane_message(None, "containerd.service", "", extra),
        r#"{"systemd_unit":"containerd.service","az":"us-east-1a","ec2_instance_id":"i-0abc"}"#
    );
    assert_eq!(
        host_message(Some("node-a"), "Accepted", Some("sshd"), Some("4242"), extra),
        r#"{"host":"node-a","message":"Accepted","ident":"sshd","pid":"4242","az":"us-east-1a","ec2_instance_id":"i-0abc"}"#
    );
    assert_eq!(
        host_message(None, "eth0 up", Some("kernel"), None, ""),
        r#"{"message":"eth0 up","ident":"kernel"}"#
    );
    // Nothing known but the node facts: still one valid object.
    assert_eq!(
        host_message(Some(""), "", None, None, extra),
        r#"{"az":"us-east-1a","ec2_instance_id":"i-0abc"}"#
    );
    assert_eq!(host_message(None, "", None, None, ""), "{}");
    let record = JournalRecord {
        kind: JournalRecordKind::HostSecure,
        realtime_us: T0,
        hostname: Some("h".into()),
        message: "m\u{fffd}".into(),
        identifier: Some("sudo".into()),
        pid: None,
        cursor: String::new(),
    };
    let json = record_message(&record, "");
    assert_eq!(json, "{\"host\":\"h\",\"message\":\"m\u{fffd}\",\"ident\":\"sudo\"}");
    assert!(serde_json::from_str::<serde_json::Value>(&json).is_ok());
    let dp = JournalRecord {
        kind: dataplane("kubelet.service"),
        ..record
    };
    assert_eq!(
        record_message(&dp, ""),
        r#"{"hostname":"h","systemd_unit":"kubelet.service","message":"m�"}"#
    );
}

#[test]
fn stream_names_in_both_styles() {
    let node = "ip-192-168-1-2.us-west-2.compute.internal";
    let kubelet = dataplane("kubelet.service");
    assert_eq!(
        fluent_bit_stream(&kubelet, node),
        format!("{node}-dataplane.systemd.kubelet.service")
    );
    assert_eq!(
        fluent_bit_stream(&JournalRecordKind::HostDmesg, node),
        format!("{node}.host.dmesg")
    );
    assert_eq!(
        fluent_bit_stream(&JournalRecordKind::HostMessages, node),
        format!("{node}.host.messages")
    );
    assert_eq!(
        fluent_bit_stream(&JournalRecordKind::HostSecure, node),
        format!("{node}.host.secure")
    );
    assert_eq!(
        fluentd_stream(&kubelet, Some("ip-192-168-1-2"), node),
        "kubelet.service-ip-192-168-1-2"
    );
    assert_eq!(fluentd_stream(&kubelet, None, node), format!("kubelet.service-{node}"));
    assert_eq!(
        fluentd_stream(&JournalRecordKind::HostSecure, Some("h"), node),
        "host.secure-h"
    );
    assert_eq!(
        fluentd_stream(&JournalRecordKind::HostDmesg, Some(""), node),
        format!("host.dmesg-{node}")
    );
}

#[test]
fn cursors_round_trip_and_foreign_ones_are_refused() {
    let resume = Resume {
        realtime_us: T0,
        cursor: Cursor::parse("s=4c7d209d5dfb438bb729d146e804c34f;i=1;b=0123456789abcdef0123456789abcdef;m=3e8;t=60a24181e4000;x=319cf2fe3679512f")
            .expect("systemd cursor"),
    };
    let text = resume.text();
    assert!(text.starts_with("rt=1700000000000000;"), "{text}");
    assert_eq!(Resume::parse(&text).expect("round trip"), resume);
    for bad in ["", "rt=;SJ1:00", "rt=12", "rt=x;SJ1:0400", "SJ1:0400", "rt=1;SJ1:zz"] {
        assert!(
            matches!(Resume::parse(bad), Err(JournalError::InvalidCursor(_))),
            "{bad:?}"
        );
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    assert!(matches!(
        JournalSource::open(config(&tmp, true, false), Some("garbage")),
        Err(JournalError::InvalidCursor(_))
    ));
}

#[test]
fn the_source_can_move_to_a_blocking_thread() {
    fn send<T: Send>() {}
    send::<JournalSource>();
    send::<JournalError>();
}

#[test]
fn reads_kinds_fields_and_order_from_a_real_journal() {
    use JournalRecordKind::{HostDmesg as D, HostMessages as M, HostSecure as S};
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    write_journal(&machine_dir(&tmp).join("system.journal"), &node_entries());

    let mut source = JournalSource::open(config(&tmp, true, false), None).expect("open");
    let records = read_all(&mut source, 100);
    let warn = "level=warning msg=\"slow \\\"pull\\\"\"\ttab";
    assert_eq!(
        summary(&records),
        vec![
            (dataplane("kubelet.service"), 1, "I0101 kubelet started"),
            (M, 1, "I0101 kubelet started"),
            (dataplane("containerd.service"), 2, warn),
            (M, 2, warn),
            (M, 3, "ssm agent heartbeat"),
            (D, 4, "ena 0000:00:05.0 eth0: link up"),
            (M, 4, "ena 0000:00:05.0 eth0: link up"),
            (S, 5, "Accepted publickey for ec2-user"),
            (M, 7, "Failed to start foo.service."),
        ]
    );
    assert!(!source.gap_detected());
    assert_eq!(source.skipped_errors(), 0);
    assert_eq!(
        records[0].cursor, records[1].cursor,
        "records of one entry share its cursor"
    );
    assert_ne!(records[1].cursor, records[2].cursor);
    let secure = &records[7];
    assert_eq!(secure.hostname.as_deref(), Some(HOST));
    assert_eq!(secure.identifier.as_deref(), Some("sshd"));
    assert_eq!(secure.pid.as_deref(), Some("4242"));
    assert_eq!(secure.realtime_us, T0 + 5000);
    assert_eq!(records[0].pid, None);
    assert_eq!(
        record_message(&records[0], ""),
        format!(r#"{{"hostname":"{HOST}","systemd_unit":"kubelet.service","message":"I0101 kubelet started"}}"#)
    );
    assert_eq!(
        record_message(secure, ""),
        format!(r#"{{"host":"{HOST}","message":"Accepted publickey for ec2-user","ident":"sshd","pid":"4242"}}"#)
    );

    // Dataplane only: the other unit and every host entry are ignored.
    let mut source = JournalSource::open(config(&tmp, false, false), None).expect("open");
    let records = read_all(&mut source, 100);
    assert_eq!(
        summary(&records),
        vec![
            (dataplane("kubelet.service"), 1, "I0101 kubelet started"),
            (dataplane("containerd.service"), 2, warn)
        ]
    );

    // Nothing new: nothing returned.
    assert_eq!(source.read(100, &mut Vec::new()).expect("read"), 0);
}

#[test]
fn max_bounds_a_call_without_splitting_or_losing_records() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    write_journal(&machine_dir(&tmp).join("system.journal"), &node_entries());
    let mut all = JournalSource::open(config(&tmp, true, false), None).expect("open");
    let expected = read_all(&mut all, 100);

    let mut one_by_one = JournalSource::open(config(&tmp, true, false), None).expect("open");
    let mut out = Vec::new();
    assert_eq!(one_by_one.read(1, &mut out).expect("read"), 1);
    // The kubelet entry made two records: the second waits for the next call.
    assert!(one_by_one.has_more());
    assert_eq!(one_by_one.read(0, &mut out).expect("read"), 0);
    out.extend(read_all(&mut one_by_one, 1));
    assert_eq!(out, expected);
}

#[test]
fn resumes_strictly_after_a_cursor() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    write_journal(&machine_dir(&tmp).join("system.journal"), &node_entries());
    let records = read_all(
        &mut JournalSource::open(config(&tmp, true, false), None).expect("open"),
        100,
    );

    // After the containerd entry (records 2 and 3): the ssm entry is next.
    let mut source = JournalSource::open(config(&tmp, true, false), Some(&records[2].cursor)).expect("open");
    assert!(!source.gap_detected());
    let rest = read_all(&mut source, 100);
    assert_eq!(rest, records[4..].to_vec());

    // After the last entry: nothing, even with `start_at_tail` (the cursor wins).
    let last = &records.last().expect("records").cursor;
    let mut source = JournalSource::open(config(&tmp, true, true), Some(last)).expect("open");
    assert!(read_all(&mut source, 100).is_empty());
    assert!(!source.gap_detected());

    // A cursor resumes across appends, and the source follows them.
    write_journal(&machine_dir(&tmp).join("system.journal"), &[kubelet(20, "later")]);
    let rest = read_all(&mut source, 100);
    assert_eq!(
        summary(&rest),
        vec![
            (dataplane("kubelet.service"), 20, "later"),
            (JournalRecordKind::HostMessages, 20, "later")
        ]
    );
}

#[test]
fn without_a_cursor_start_at_tail_skips_the_backlog() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = machine_dir(&tmp).join("system.journal");
    write_journal(&file, &[kubelet(1, "old 1"), kubelet(2, "old 2")]);

    let mut tail = JournalSource::open(config(&tmp, false, true), None).expect("open");
    let mut head = JournalSource::open(config(&tmp, false, false), None).expect("open");
    assert!(read_all(&mut tail, 100).is_empty());
    assert_eq!(read_all(&mut head, 100).len(), 2);

    write_journal(&file, &[kubelet(3, "new 3"), kubelet(4, "new 4")]);
    let new = read_all(&mut tail, 100);
    assert_eq!(
        summary(&new),
        vec![
            (dataplane("kubelet.service"), 3, "new 3"),
            (dataplane("kubelet.service"), 4, "new 4")
        ]
    );
    assert_eq!(read_all(&mut head, 100), new);
    assert!(!tail.gap_detected());
}

#[test]
fn a_vacuumed_cursor_resumes_at_the_oldest_entry_and_reports_the_gap() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let old = machine_dir(&tmp).join("system@0000000000000001-0000000000000001.journal");
    write_journal(&old, &[kubelet(1, "vacuumed 1"), kubelet(2, "vacuumed 2")]);
    write_journal(
        &machine_dir(&tmp).join("system.journal"),
        &[kubelet(3, "kept 3"), kubelet(4, "kept 4")],
    );
    let records = read_all(
        &mut JournalSource::open(config(&tmp, false, false), None).expect("open"),
        100,
    );
    assert_eq!(records.len(), 4);
    let in_old = records[0].cursor.clone();
    let in_kept = records[2].cursor.clone();

    fs::remove_file(&old).expect("vacuum");
    let mut source = JournalSource::open(config(&tmp, false, true), Some(&in_old)).expect("open");
    assert!(source.gap_detected());
    assert_eq!(read_all(&mut source, 100), records[2..].to_vec());

    let mut source = JournalSource::open(config(&tmp, false, true), Some(&in_kept)).expect("open");
    assert!(!source.gap_detected());
    assert_eq!(read_all(&mut source, 100), records[3..].to_vec());
}

#[test]
fn a_cursor_is_checked_once_journal_files_appear() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let elsewhere = tempfile::tempdir().expect("tempdir");
    write_journal(&machine_dir(&elsewhere).join("system.journal"), &[kubelet(1, "gone")]);
    let gone = read_all(
        &mut JournalSource::open(config(&elsewhere, false, false), None).expect("open"),
        100,
    );

    // No journal directory at all yet: nothing to read, nothing decided.
    let mut source = JournalSource::open(config(&tmp, false, true), Some(&gone[0].cursor)).expect("open");
    assert_eq!(source.read(100, &mut Vec::new()).expect("read"), 0);
    assert!(!source.gap_detected());

    // The volatile journal appears, without the cursor's entry: a gap, read from its oldest entry.
    let run = tmp
        .path()
        .join("run/log/journal/0123456789abcdef0123456789abcdef/system.journal");
    write_journal(&run, &[kubelet(2, "volatile 2"), kubelet(3, "volatile 3")]);
    let records = read_all(&mut source, 100);
    assert!(source.gap_detected());
    assert_eq!(
        summary(&records),
        vec![
            (dataplane("kubelet.service"), 2, "volatile 2"),
            (dataplane("kubelet.service"), 3, "volatile 3")
        ]
    );
}

#[test]
fn invalid_utf8_becomes_replacement_characters() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let bad = entry(
        1,
        &[
            ("_HOSTNAME", HOST.as_bytes()),
            ("_SYSTEMD_UNIT", b"kubelet.service"),
            ("MESSAGE", b"bad \xff\xfe bytes\nand a second line"),
            ("SYSLOG_IDENTIFIER", b"kube\xc3"),
        ],
    );
    write_journal(&machine_dir(&tmp).join("system.journal"), &[bad, kubelet(2, "fine")]);
    let mut source = JournalSource::open(config(&tmp, false, false), None).expect("open");
    let records = read_all(&mut source, 100);
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].message, "bad \u{fffd}\u{fffd} bytes\nand a second line");
    assert_eq!(records[0].identifier.as_deref(), Some("kube\u{fffd}"));
    assert_eq!(records[1].message, "fine");
    assert_eq!(source.utf8_repaired(), 1);
    let json = record_message(&records[0], "");
    let value: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(value["message"], "bad \u{fffd}\u{fffd} bytes\nand a second line");
}

#[test]
fn compressed_fields_are_read() {
    if remote().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = machine_dir(&tmp).join("system.journal");
    // Above journald's 512-byte compression threshold: systemd 252 writes it with zstd.
    let long = "compress me ".repeat(1000);
    write_journal(&file, &[kubelet(1, &long)]);
    let raw = fs::read(&file).expect("journal bytes");
    let needle = "compress me ".repeat(20);
    assert!(
        !raw.windows(needle.len()).any(|w| w == needle.as_bytes()),
        "the fixture was expected to hold the message compressed"
    );
    let mut source = JournalSource::open(config(&tmp, false, false), None).expect("open");
    let records = read_all(&mut source, 100);
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].message, long);
}

/// The objects of a journal file as (offset, type, size), walked from the header like the file
/// format describes: 16-byte object headers (type, flags, reserved, `u64` size), 8-byte aligned.
fn objects(bytes: &[u8]) -> Vec<(usize, u8, usize)> {
    let u64_at =
        |at: usize| usize::try_from(u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"))).expect("usize");
    let (mut at, tail) = (u64_at(88), u64_at(136));
    let mut out = Vec::new();
    while at <= tail {
        let size = u64_at(at + 8);
        out.push((at, bytes[at], size));
        at += size.div_ceil(8) * 8;
    }
    out
}

const OBJECT_DATA: u8 = 1;
const OBJECT_ENTRY: u8 = 3;
const OBJECT_ENTRY_ARRAY: u8 = 6;

/// Reads until the reader says it is done, or 50 calls; `None` if it never settled.
fn read_damaged(source: &mut JournalSource) -> Option<Vec<JournalRecord>> {
    let mut out = Vec::new();
    for _ in 0..50 {
        match source.read(100, &mut out) {
            Ok(0) if !source.has_more() => return Some(out),
            Ok(_) | Err(_) => {}
        }
    }
    None
}

/// A journal of 40 kubelet entries `line 1` … `line 40`, its directory and its bytes.
fn forty_lines() -> Option<(tempfile::TempDir, Vec<u8>)> {
    remote()?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = machine_dir(&tmp).join("system.journal");
    let entries: Vec<Vec<u8>> = (1..=40).map(|i| kubelet(i, &format!("line {i}"))).collect();
    write_journal(&file, &entries);
    let bytes = fs::read(&file).expect("journal bytes");
    Some((tmp, bytes))
}

/// A copy of `bytes`, damaged, as the only journal file of a new directory, and a reader on it.
fn open_damaged(
    bytes: &[u8],
    damage: &dyn Fn(&mut Vec<u8>),
) -> (tempfile::TempDir, Result<JournalSource, JournalError>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut copy = bytes.to_vec();
    damage(&mut copy);
    let file = machine_dir(&dir).join("system.journal");
    fs::create_dir_all(file.parent().expect("parent")).expect("dir");
    fs::write(&file, &copy).expect("damaged copy");
    let source = JournalSource::open(config(&dir, false, false), None);
    (dir, source)
}

/// The offsets and sizes of the objects of type `t`.
fn of_type(objects: &[(usize, u8, usize)], t: u8) -> Vec<(usize, usize)> {
    objects
        .iter()
        .filter(|o| o.1 == t)
        .map(|&(at, _, size)| (at, size))
        .collect()
}

#[test]
fn a_truncated_journal_file_is_an_error_alone_and_left_out_beside_others() {
    let Some((tmp, bytes)) = forty_lines() else { return };
    let end = objects(&bytes).last().map(|&(at, _, size)| at + size).expect("objects");

    // Alone: it cannot be opened, and reading says so (every time).
    let (_dir, source) = open_damaged(&bytes, &|b| b.truncate(end / 2));
    let mut source = source.expect("open");
    assert!(source.read(100, &mut Vec::new()).is_err());
    assert!(source.read(100, &mut Vec::new()).is_err());

    // Next to a good file: left out, and the good file is read in full.
    fs::write(machine_dir(&tmp).join("system@truncated.journal"), &bytes[..end / 2]).expect("truncated copy");
    let mut source = JournalSource::open(config(&tmp, false, false), None).expect("open");
    assert_eq!(read_all(&mut source, 100).len(), 40);
}

#[test]
fn an_unreadable_entry_is_skipped_and_counted() {
    let Some((_tmp, bytes)) = forty_lines() else { return };
    let entries = of_type(&objects(&bytes), OBJECT_ENTRY);
    assert_eq!(entries.len(), 40);
    let (at, size) = entries[19];
    let (_dir, source) = open_damaged(&bytes, &|b| b[at..at + size].fill(0xff));
    let mut source = source.expect("open");
    let out = read_damaged(&mut source).expect("settles");
    let lines: Vec<String> = (1..=40).filter(|&i| i != 20).map(|i| format!("line {i}")).collect();
    assert_eq!(out.iter().map(|r| r.message.clone()).collect::<Vec<_>>(), lines);
    assert!(source.skipped_errors() >= 1);
    assert!(source.last_error().is_some());
}

#[test]
fn a_round_stops_at_its_horizon_and_the_next_one_goes_on_from_there() {
    let Some((tmp, _)) = forty_lines() else { return };
    let mut source = JournalSource::open(config(&tmp, false, false), None).expect("open");
    // A round as `start_round` makes it, whose first query found `line 10` as the newest entry.
    let journal = Journal::open_dir(journal_root(&tmp)).expect("journal");
    source.round = Some(Round {
        entries: Box::new(journal.query().iter().expect("query")),
        horizon_us: T0 + 10 * 1000,
    });
    let mut out = Vec::new();
    assert_eq!(source.read(100, &mut out).expect("read"), 10);
    assert_eq!(out.last().map(|r| r.message.as_str()), Some("line 10"));
    assert!(
        !source.has_more(),
        "the round ended at the first entry past its horizon"
    );
    let rest = read_all(&mut source, 100);
    assert_eq!(rest.len(), 30);
    assert_eq!(
        rest[0].message, "line 11",
        "the entry past the horizon was not consumed"
    );
}

/// A named way to damage a journal file.
type Damage<'a> = (&'static str, Box<dyn Fn(&mut Vec<u8>) + 'a>);

#[test]
fn damaged_journal_files_are_errors_or_skips_never_panics() {
    let Some((_tmp, bytes)) = forty_lines() else { return };
    let objects = objects(&bytes);
    let end = objects.last().map(|&(at, _, size)| at + size).expect("objects");
    let data = of_type(&objects, OBJECT_DATA);
    let arrays = of_type(&objects, OBJECT_ENTRY_ARRAY);
    let patterns: Vec<Damage<'_>> = vec![
        (
            "data objects zeroed",
            Box::new(|b| {
                for &(at, size) in data.iter().step_by(3) {
                    b[at..at + size].fill(0);
                }
            }),
        ),
        (
            "entry arrays 0xff",
            Box::new(|b| {
                for &(at, size) in &arrays {
                    b[at + 16..at + size].fill(0xff);
                }
            }),
        ),
        (
            "sizes scrambled",
            Box::new(|b| {
                for &(at, _, _) in objects.iter().step_by(2) {
                    b[at + 8..at + 16].copy_from_slice(&u64::MAX.to_le_bytes());
                }
            }),
        ),
        (
            "objects sprinkled with noise",
            Box::new(|b| {
                let mut x: u32 = 0x1234_5678;
                for byte in &mut b[objects[2].0..end] {
                    x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    if x >> 27 == 0 {
                        *byte = x.to_le_bytes()[1];
                    }
                }
            }),
        ),
        ("bad signature", Box::new(|b| b[0..8].copy_from_slice(b"NOTAJRNL"))),
    ];
    for (name, damage) in &patterns {
        let (_dir, source) = open_damaged(&bytes, damage.as_ref());
        let Ok(mut source) = source else { continue };
        // Whatever is readable comes out in order; the rest is skipped, or every call is an error.
        match read_damaged(&mut source) {
            Some(out) => {
                let mut last = 0;
                for record in &out {
                    let n: u64 = record
                        .message
                        .strip_prefix("line ")
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    assert!(n > last, "{name}: {record:?} after line {last}");
                    last = n;
                }
            }
            None => assert!(
                source.read(100, &mut Vec::new()).is_err(),
                "{name}: the reader did not settle"
            ),
        }
    }
}

#[test]
fn missing_directories_are_skipped() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut source = JournalSource::open(config(&tmp, true, true), None).expect("open");
    let mut out = Vec::new();
    assert_eq!(source.read(100, &mut out).expect("read"), 0);
    assert!(!source.has_more() && !source.gap_detected());
    let JournalSource { position, .. } = source;
    assert_eq!(
        position,
        Position::Head,
        "a journal that appears later is read from its start"
    );
}
