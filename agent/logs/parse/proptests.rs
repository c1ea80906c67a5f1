//! Property tests across the module: parsers never panic on arbitrary input, and the joining
//! stages never lose or reorder content except where the size cap says so.

use std::fmt::Write as _;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;

use super::testkit::OwnedRecord;
use super::time::{days_in_month, parse_rfc3339_ms};
use super::{
    Joiner, Limits, Line, LineParser, Multiline, MultilineRule, Preset, Stream, parse_cri, parse_docker, parse_syslog,
    repair, utf8_floor,
};

fn stream() -> impl Strategy<Value = Stream> {
    prop_oneof![Just(Stream::Stdout), Just(Stream::Stderr)]
}

/// Bytes that look like the start of a CRI or Docker line more often than uniform noise would.
fn line_like() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<&'static [u8]> = vec![
        b"",
        b"2026-01-05T10:11:12.5Z stdout ",
        b"2026-01-05T10:11:12+02:00 stderr P",
        b"{\"log\":\"",
        b"{\"log\":\"x\\n\",\"stream\":\"stdout\",\"time\":\"",
        b"{\"attrs\":{\"a\":[",
        b"{\"log\":\"\\ud83d",
        b"Jan  5 10:11:12 host ",
    ];
    (proptest::sample::select(prefixes), vec(any::<u8>(), 0..64)).prop_map(|(p, tail)| [p, &tail[..]].concat())
}

/// Go-style JSON string encoding; `ascii` escapes every non-ASCII character as `\u` (with
/// surrogate pairs), as Go's encoder does not but other writers may.
fn json_string(s: &str, ascii: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || (ascii && !c.is_ascii()) => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{u:04x}");
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Days since the epoch counted naively, as an independent check of the date arithmetic.
fn naive_days(year: i64, month: u32, day: u32) -> i64 {
    let mut days = 0;
    for y in 1970..year {
        days += (1..=12).map(|m| i64::from(days_in_month(y, m))).sum::<i64>();
    }
    days + (1..month).map(|m| i64::from(days_in_month(year, m))).sum::<i64>() + i64::from(day) - 1
}

/// One step of a joiner scenario.
#[derive(Debug, Clone)]
enum Op {
    Piece(Stream, bool, Vec<u8>),
    Advance(u64),
    FlushExpired,
}

fn ops(max_piece: usize) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (stream(), any::<bool>(), vec(any::<u8>(), 0..max_piece)).prop_map(|(s, p, c)| Op::Piece(s, p, c)),
        1 => (0u64..8).prop_map(Op::Advance),
        1 => Just(Op::FlushExpired),
    ];
    vec(op, 0..40)
}

const TIME: &str = "2026-01-05T10:11:12Z";

/// Runs a scenario; each piece is a 10-byte "line". Returns the records, and for every record the
/// lowest start the checkpoint rule allowed at the moment it was emitted.
fn run_joiner(limits: Limits, ops: &[Op]) -> (Vec<OwnedRecord>, Vec<u64>) {
    let mut j = Joiner::new(limits);
    let mut out = Vec::new();
    let mut bounds = Vec::new();
    let mut now = Duration::ZERO;
    let mut offset = 0u64;
    // Lowest offset a record emitted from now on may start at: the earliest pending start, or the
    // next line to be read.
    let mut bound = 0u64;
    let mut sink = |r: super::Record<'_>, bound: u64| {
        bounds.push(bound);
        out.push(OwnedRecord::from(r));
    };
    for op in ops {
        match op {
            Op::Piece(stream, partial, content) => {
                let line = Line {
                    time: TIME,
                    timestamp_ms: 0,
                    stream: *stream,
                    partial: *partial,
                    content,
                };
                j.push(line, offset, offset + 10, now, |r| sink(r, bound));
                offset += 10;
            }
            Op::Advance(s) => now += Duration::from_secs(*s),
            Op::FlushExpired => j.flush_expired(now, |r| sink(r, bound)),
        }
        bound = j.pending_start().unwrap_or(offset).min(offset);
    }
    j.finish(|r| sink(r, bound));
    assert!(j.is_idle());
    (out, bounds)
}

proptest! {
    #[test]
    fn parsers_never_panic(bytes in line_like(), now_ms in any::<i64>()) {
        let _ = parse_cri(&bytes);
        let mut scratch = Vec::new();
        let _ = parse_docker(&bytes, &mut scratch);
        let _ = parse_syslog(&bytes, now_ms);
        let _ = parse_rfc3339_ms(&bytes);
        let _ = LineParser::new().parse(&bytes, &mut scratch);
        let _ = MultilineRule::start_pattern(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn parsers_never_panic_on_noise(bytes in vec(any::<u8>(), 0..200)) {
        let _ = parse_cri(&bytes);
        let mut scratch = Vec::new();
        let _ = parse_docker(&bytes, &mut scratch);
        let _ = parse_syslog(&bytes, 1_767_607_920_000);
        let _ = parse_rfc3339_ms(&bytes);
    }

    #[test]
    fn repair_matches_from_utf8_lossy(bytes in vec(any::<u8>(), 0..64)) {
        let mut buf = String::new();
        let r = repair(&bytes, &mut buf);
        prop_assert_eq!(r.text, String::from_utf8_lossy(&bytes));
        prop_assert_eq!(r.repaired, std::str::from_utf8(&bytes).is_err());
    }

    #[test]
    fn utf8_floor_cuts_valid_text_at_char_boundaries(s in ".{0,20}", max in 0usize..80) {
        let cut = utf8_floor(s.as_bytes(), max);
        prop_assert!(cut <= max.min(s.len()));
        prop_assert!(s.is_char_boundary(cut));
        prop_assert!(max.min(s.len()) - cut <= 3);
    }

    #[test]
    fn utf8_floor_bounds_on_bytes(bytes in vec(any::<u8>(), 0..20), max in 0usize..30) {
        let cut = utf8_floor(&bytes, max);
        prop_assert!(cut <= max.min(bytes.len()));
        prop_assert!(max.min(bytes.len()) - cut <= 3);
    }

    #[test]
    fn timestamps_match_naive_arithmetic(
        year in 1970i64..2100,
        month in 1u32..=12,
        day_seed in 0u32..31,
        hms in (0u32..24, 0u32..60, 0u32..60),
        frac in proptest::option::of("[0-9]{1,9}"),
        offset in proptest::option::of((any::<bool>(), 0u32..24, 0u32..60)),
    ) {
        let day = day_seed % days_in_month(year, month) + 1;
        let (h, mi, s) = hms;
        let mut text = format!("{year:04}-{month:02}-{day:02}T{h:02}:{mi:02}:{s:02}");
        let mut ms_frac = 0;
        if let Some(f) = &frac {
            text.push('.');
            text.push_str(f);
            ms_frac = format!("{f:0<3}")[..3].parse::<i64>().unwrap();
        }
        let mut off_secs = 0i64;
        match offset {
            None => text.push('Z'),
            Some((neg, oh, om)) => {
                let _ = write!(text, "{}{oh:02}:{om:02}", if neg { '-' } else { '+' });
                off_secs = i64::from(oh * 3600 + om * 60) * if neg { -1 } else { 1 };
            }
        }
        let expected = (naive_days(year, month, day) * 86_400 + i64::from(h * 3600 + mi * 60 + s) - off_secs) * 1000
            + ms_frac;
        prop_assert_eq!(parse_rfc3339_ms(text.as_bytes()), Ok(expected));
        // The same timestamp in a CRI line.
        let line = format!("{text} stderr F x y");
        let parsed = parse_cri(line.as_bytes()).unwrap();
        prop_assert_eq!(parsed.time, text.as_str());
        prop_assert_eq!(parsed.timestamp_ms, expected);
        prop_assert_eq!(parsed.content, b"x y");
    }

    #[test]
    fn docker_strings_round_trip(log in "\\PC{0,12}|[\\x00-\\x7f]{0,12}|[\\u{10000}-\\u{10ffff}]{0,4}", ascii in any::<bool>(), nl in any::<bool>()) {
        let log = if nl { format!("{log}\n") } else { log };
        let line = format!(
            "{{\"log\":{},\"stream\":{},\"time\":\"2026-01-05T10:11:14.2Z\"}}",
            json_string(&log, ascii),
            json_string("stderr", ascii),
        );
        let mut scratch = Vec::new();
        let parsed = parse_docker(line.as_bytes(), &mut scratch).unwrap();
        prop_assert_eq!(parsed.content, log.as_bytes());
        prop_assert_eq!(parsed.stream, Stream::Stderr);
        prop_assert_eq!(parsed.partial, !log.ends_with('\n'));
    }

    #[test]
    fn joining_loses_and_reorders_nothing_without_a_cap(ops in ops(20)) {
        let (out, bounds) = run_joiner(Limits::default(), &ops);
        for s in Stream::ALL {
            let pushed: Vec<u8> = ops
                .iter()
                .filter_map(|op| match op {
                    Op::Piece(st, _, c) if *st == s => Some(c.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            let recs: Vec<&OwnedRecord> = out.iter().filter(|r| r.stream == s).collect();
            let emitted: Vec<u8> = recs.iter().flat_map(|r| r.content.clone()).collect();
            prop_assert_eq!(emitted, pushed);
            let pieces: u32 = recs.iter().map(|r| r.pieces).sum();
            let n = ops.iter().filter(|op| matches!(op, Op::Piece(st, _, _) if *st == s)).count();
            prop_assert_eq!(pieces as usize, n);
            // A stream's records are in file order and do not overlap.
            for w in recs.windows(2) {
                prop_assert!(w[0].end <= w[1].start);
            }
        }
        for (r, bound) in out.iter().zip(&bounds) {
            prop_assert!(!r.truncated);
            prop_assert!(r.start < r.end);
            // Trap 2: no record ever starts before what the checkpoint rule allowed to commit.
            prop_assert!(r.start >= *bound, "record at {} emitted below bound {}", r.start, bound);
        }
    }

    #[test]
    fn joining_with_a_cap_keeps_a_prefix_of_each_record(ops in ops(12), cap in 0usize..30) {
        // No time passes: every record is closed by its final piece, the cap or `finish`.
        let ops: Vec<Op> = ops.into_iter().filter(|op| matches!(op, Op::Piece(..))).collect();
        let limits = Limits { max_record_bytes: cap, flush_timeout: Duration::from_secs(5) };
        let (out, bounds) = run_joiner(limits, &ops);
        for (r, bound) in out.iter().zip(&bounds) {
            prop_assert!(r.start >= *bound);
        }
        for s in Stream::ALL {
            // The logical records of this stream: runs of pieces ended by a final piece.
            let mut logical: Vec<Vec<u8>> = Vec::new();
            let mut cur: Option<Vec<u8>> = None;
            for op in &ops {
                if let Op::Piece(st, partial, c) = op {
                    if *st != s {
                        continue;
                    }
                    cur.get_or_insert_with(Vec::new).extend_from_slice(c);
                    if !partial {
                        logical.extend(cur.take());
                    }
                }
            }
            logical.extend(cur.take());
            let recs: Vec<&OwnedRecord> = out.iter().filter(|r| r.stream == s).collect();
            prop_assert_eq!(recs.len(), logical.len());
            for (r, full) in recs.iter().zip(&logical) {
                prop_assert!(r.content.len() <= cap);
                prop_assert!(full.starts_with(&r.content));
                prop_assert_eq!(r.truncated, full.len() > cap);
                if r.truncated {
                    prop_assert!(r.content.len() + 3 >= cap);
                } else {
                    prop_assert_eq!(&r.content, full);
                }
            }
        }
    }

    #[test]
    fn multiline_start_pattern_keeps_every_line(
        lines in vec((stream(), "[ a-c]{0,6}", any::<bool>()), 0..30),
        cap_extra in proptest::option::of(1usize..20),
    ) {
        // With a cap at least one line long, records split at line boundaries and nothing is lost.
        let cap = cap_extra.map_or(1_048_576, |e| 7 + e);
        run_multiline(&MultilineRule::start_pattern(r"^\S").unwrap(), cap, &lines)?;
    }

    #[test]
    fn multiline_presets_keep_every_line(
        lines in vec((stream(), preset_line(), any::<bool>()), 0..40),
        which in 0usize..3,
    ) {
        let preset = [Preset::Java, Preset::Python, Preset::Go][which];
        run_multiline(&MultilineRule::preset(preset), 1_048_576, &lines)?;
    }
}

/// Lines that drive the preset state machines through their transitions.
fn preset_line() -> impl Strategy<Value = String> {
    let vocabulary: Vec<&'static str> = vec![
        "",
        "plain",
        "java.lang.IllegalStateException: boom",
        "\tat com.example.Foo.bar(Foo.java:10)",
        "Caused by: java.io.IOException: x",
        "\t... 3 more",
        "  nested exception is: x",
        "Traceback (most recent call last):",
        "  File \"a.py\", line 1, in <module>",
        "    x()",
        "ValueError: bad",
        "panic: boom",
        "[signal SIGSEGV: segmentation violation]",
        "goroutine 1 [running]:",
        "main.main()",
        "\t/app/main.go:8 +0x1d",
        "created by main.start",
    ];
    prop_oneof![
        proptest::sample::select(vocabulary).prop_map(str::to_owned),
        "[ a-z:.(]{0,8}"
    ]
}

/// Feeds `lines` (stream, text, Docker-style trailing newline) through a multiline stage and checks
/// that, per stream, the records joined back with `\n` give exactly the input lines.
fn run_multiline(rule: &MultilineRule, cap: usize, lines: &[(Stream, String, bool)]) -> Result<(), TestCaseError> {
    let limits = Limits {
        max_record_bytes: cap,
        flush_timeout: Duration::from_secs(5),
    };
    let mut m = Multiline::new(rule.clone(), limits);
    let mut out = Vec::new();
    for (i, (stream, text, nl)) in lines.iter().enumerate() {
        let content = if *nl { format!("{text}\n") } else { text.clone() };
        let start = i as u64 * 100;
        let rec = super::Record {
            time: TIME,
            timestamp_ms: 0,
            stream: *stream,
            content: content.as_bytes(),
            start,
            end: start + 100,
            pieces: 1,
            truncated: false,
            closed: super::CloseReason::Terminated,
        };
        let bound = m.pending_start().unwrap_or(start).min(start);
        m.push(rec, Duration::ZERO, |r| {
            assert!(r.start >= bound);
            out.push(OwnedRecord::from(r));
        });
    }
    m.finish(|r| out.push(OwnedRecord::from(r)));
    for s in Stream::ALL {
        let expected: Vec<&str> = lines.iter().filter(|l| l.0 == s).map(|l| l.1.as_str()).collect();
        let mut got: Vec<String> = Vec::new();
        for r in out.iter().filter(|r| r.stream == s) {
            prop_assert!(r.content.len() <= cap);
            // `pieces` lines joined with `\n`, plus one restored `\n` if the last line had one.
            let text = String::from_utf8(r.content.clone()).unwrap();
            let mut parts: Vec<&str> = text.split('\n').collect();
            if parts.len() == r.pieces as usize + 1 {
                prop_assert_eq!(parts.pop(), Some(""));
            }
            prop_assert_eq!(parts.len(), r.pieces as usize);
            got.extend(parts.into_iter().map(str::to_owned));
        }
        prop_assert_eq!(got, expected);
        let pieces: u32 = out.iter().filter(|r| r.stream == s).map(|r| r.pieces).sum();
        prop_assert_eq!(pieces as usize, lines.iter().filter(|l| l.0 == s).count());
    }
    Ok(())
}
