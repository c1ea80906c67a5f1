//! Optional multiline rules, applied per (file, stream) to the records the [`Joiner`] completed.
//!
//! Two kinds of rule:
//! - a **start pattern**: a record starts at a line matching the regex and every following line
//!   that does not match continues it (fluentd's `concat` filter with `multiline_start_regexp`;
//!   the Container Insights fluentd setup used `^\S`);
//! - a **preset** (`java`, `python`, `go`): the state machines of Fluent Bit's built-in multiline
//!   parsers (`fluent/fluent-bit: src/multiline/flb_ml_parser_{java,python,go}.c`), run the way
//!   `src/multiline/flb_ml_rule.c` runs them: a line matching a start rule opens a record; while one
//!   is open, a line matching a continuation rule of the current state is appended; a rule leading
//!   back to a state a start rule leaves from closes the record at once (Python's final exception
//!   line); any other line closes the open record and passes through alone.
//!
//! Lines are joined with `\n`. A Docker record's trailing `\n` is removed before matching and put
//! back once at the end of the joined record, so both formats match the same patterns and Docker
//! records keep their usual shape. Because patterns see lines without their terminator, the Java
//! start rule also accepts an exception name at the end of the line, where Fluent Bit's regex
//! needs the `\n` that only Docker lines carry.
//!
//! [`Joiner`]: super::Joiner

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use regex::bytes::Regex;

use super::line::Stream;
use super::record::{CloseReason, Counters, Limits, Record};
use super::utf8::utf8_floor;

/// A built-in multiline rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Java (and C#) exceptions with their `at …`, `Caused by:` and `... N more` lines.
    Java,
    /// Python tracebacks, up to and including the exception line.
    Python,
    /// Go panics with their goroutine stacks.
    Go,
}

impl Preset {
    /// The name used in configuration (`java`, `python`, `go`).
    pub fn name(self) -> &'static str {
        match self {
            Preset::Java => "java",
            Preset::Python => "python",
            Preset::Go => "go",
        }
    }

    /// The preset called `name` in configuration.
    pub fn from_name(name: &str) -> Option<Preset> {
        match name {
            "java" => Some(Preset::Java),
            "python" => Some(Preset::Python),
            "go" => Some(Preset::Go),
            _ => None,
        }
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One transition of a preset's state machine.
#[derive(Debug)]
struct Rule {
    /// Bit `s` set: the rule applies in state `s`.
    from: u16,
    re: Regex,
    /// The match may not start at the line's first byte: the pattern began with `(.)`.
    not_first: bool,
    to: u8,
}

impl Rule {
    fn is_match(&self, line: &[u8]) -> bool {
        if self.not_first {
            !line.is_empty() && self.re.is_match_at(line, 1)
        } else {
            self.re.is_match(line)
        }
    }
}

/// The state in which no record is open; rules leaving from it start records.
const START: u8 = 0;

fn bit(state: u8) -> u16 {
    1 << state
}

#[derive(Debug)]
struct Machine {
    rules: Vec<Rule>,
    /// Union of the `from` sets of the start rules: reaching one of these states closes the record.
    start_from: u16,
}

impl Machine {
    fn new(rules: &[(&[u8], &str, u8)]) -> Machine {
        let rules: Vec<Rule> = rules
            .iter()
            .map(|&(from, pattern, to)| {
                // Fluent Bit's Java start rule begins with `(.)`: the exception's name may not
                // start the line. Behind a leading `.` the `regex` crate cannot search for the
                // literals first, and that rule took about 310 ns on a 190-byte line that does
                // not match (most lines) instead of 36 ns; so it is searched from the second byte
                // without the `(.)`. (The one difference: a line whose first byte is not valid
                // UTF-8, which `.` does not match, can start a record too.)
                let (pattern, not_first) = match pattern.strip_prefix("(.)") {
                    Some(rest) => (rest, true),
                    None => (pattern, false),
                };
                Rule {
                    from: from.iter().fold(0, |m, &s| m | bit(s)),
                    re: compile(pattern),
                    not_first,
                    to,
                }
            })
            .collect();
        let start_from = rules
            .iter()
            .filter(|r| r.from & bit(START) != 0)
            .fold(0, |m, r| m | r.from);
        Machine { rules, start_from }
    }

    fn is_start(rule: &Rule) -> bool {
        rule.from & bit(START) != 0
    }
}

/// Compiles a preset pattern. They are constants exercised by the tests, so failure is a bug.
fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).unwrap_or_else(|e| panic!("preset pattern {pattern:?}: {e}"))
}

static JAVA: LazyLock<Arc<Machine>> = LazyLock::new(|| {
    const AFTER_EXCEPTION: u8 = 1;
    const FRAMES: u8 = 2;
    const START_EXCEPTION: u8 = 3;
    Arc::new(Machine::new(&[
        (
            &[START, START_EXCEPTION],
            r"(.)(?:Exception|Error|Throwable|V8 errors stack trace)(?:[:\r\n]|$)",
            AFTER_EXCEPTION,
        ),
        (
            &[AFTER_EXCEPTION],
            r"^[\t ]*nested exception is:[\t ]*",
            START_EXCEPTION,
        ),
        (&[AFTER_EXCEPTION], r"^[\r\n]*$", AFTER_EXCEPTION),
        (&[AFTER_EXCEPTION, FRAMES], r"^[\t ]+(?:eval )?at ", FRAMES),
        // C# nested exception.
        (
            &[AFTER_EXCEPTION, FRAMES],
            r"^[\t ]+--- End of inner exception stack trace ---$",
            FRAMES,
        ),
        // C# exception from async code.
        (
            &[AFTER_EXCEPTION, FRAMES],
            r"^--- End of stack trace from previous location where exception was thrown ---$",
            FRAMES,
        ),
        (
            &[AFTER_EXCEPTION, FRAMES],
            r"^[\t ]*(?:Caused by|Suppressed):",
            AFTER_EXCEPTION,
        ),
        (
            &[AFTER_EXCEPTION, FRAMES],
            r"^[\t ]*... \d+ (?:more|common frames omitted)",
            FRAMES,
        ),
    ]))
});

static PYTHON: LazyLock<Arc<Machine>> = LazyLock::new(|| {
    const TRACE: u8 = 1;
    const CODE: u8 = 2;
    Arc::new(Machine::new(&[
        (&[START], r"^Traceback \(most recent call last\):$", TRACE),
        (&[TRACE], r"^[\t ]+File ", CODE),
        (&[CODE], r"[^\t ]", TRACE),
        (&[TRACE], r"^(?:[^\s.():]+\.)*[^\s.():]+:", START),
    ]))
});

static GO: LazyLock<Arc<Machine>> = LazyLock::new(|| {
    const AFTER_PANIC: u8 = 1;
    const GOROUTINE: u8 = 2;
    const FRAME_1: u8 = 3;
    const FRAME_2: u8 = 4;
    const AFTER_SIGNAL: u8 = 5;
    Arc::new(Machine::new(&[
        (&[START], r"\bpanic: ", AFTER_PANIC),
        (&[START], r"http: panic serving", GOROUTINE),
        (&[AFTER_PANIC, AFTER_SIGNAL, FRAME_1], r"^$", GOROUTINE),
        (&[AFTER_PANIC], r"^\[signal ", AFTER_SIGNAL),
        (&[GOROUTINE], r"^goroutine \d+ \[[^\]]+\]:$", FRAME_1),
        (&[FRAME_1], r"^(?:[^\s.:]+\.)*[^\s.():]+\(|^created by ", FRAME_2),
        (&[FRAME_2], r"^\s", FRAME_1),
    ]))
});

#[derive(Debug, Clone)]
enum Kind {
    Start(Regex),
    Machine(Arc<Machine>),
}

/// A compiled multiline rule. Cloning is cheap (compiled patterns are shared), so every file's
/// [`Multiline`] holds its own clone.
#[derive(Debug, Clone)]
pub struct MultilineRule {
    kind: Kind,
}

impl MultilineRule {
    /// A rule where a record starts at each line matching `pattern` (Rust `regex` syntax, matched
    /// against the line's bytes without its terminator). The error is the pattern's compile error,
    /// for validation at configuration load.
    pub fn start_pattern(pattern: &str) -> Result<MultilineRule, regex::Error> {
        Ok(MultilineRule {
            kind: Kind::Start(Regex::new(pattern)?),
        })
    }

    /// A built-in rule.
    pub fn preset(preset: Preset) -> MultilineRule {
        let machine = match preset {
            Preset::Java => &JAVA,
            Preset::Python => &PYTHON,
            Preset::Go => &GO,
        };
        MultilineRule {
            kind: Kind::Machine(Arc::clone(machine)),
        }
    }
}

/// What to do with an incoming line.
enum Action {
    /// Close any open record, open a new one with this line, in machine state `.0`.
    Start(u8),
    /// Append to the open record and move to state `.0`; `.1`: the record ends with this line.
    Continue(u8, bool),
    /// Close any open record and pass this line through on its own.
    Single,
}

impl MultilineRule {
    fn decide(&self, open: bool, state: u8, line: &[u8]) -> Action {
        match &self.kind {
            // With nothing open, a continuation line has nothing to continue and opens a record.
            Kind::Start(re) if open && !re.is_match(line) => Action::Continue(START, false),
            Kind::Start(_) => Action::Start(START),
            Kind::Machine(m) => {
                if open {
                    let next = m
                        .rules
                        .iter()
                        .find(|r| !Machine::is_start(r) && r.from & bit(state) != 0 && r.is_match(line));
                    if let Some(r) = next {
                        return Action::Continue(r.to, m.start_from & bit(r.to) != 0);
                    }
                }
                match m.rules.iter().find(|r| Machine::is_start(r) && r.is_match(line)) {
                    Some(r) => Action::Start(r.to),
                    None => Action::Single,
                }
            }
        }
    }
}

/// The open multiline record of one stream; buffers are reused from record to record.
#[derive(Debug, Default)]
struct Assembly {
    open: bool,
    /// Lines joined with `\n`, each without its own trailing `\n`.
    content: Vec<u8>,
    /// The last line ended with `\n` (Docker): put one back when the record is emitted.
    newline: bool,
    time: String,
    timestamp_ms: i64,
    start: u64,
    end: u64,
    last_at: Duration,
    pieces: u32,
    truncated: bool,
    /// The first non-complete reason among the joined records, reported if this record itself
    /// closes normally.
    inherited: Option<CloseReason>,
    state: u8,
}

impl Assembly {
    fn expired(&self, now: Duration, timeout: Duration) -> bool {
        self.open && now.saturating_sub(self.last_at) >= timeout
    }

    /// Opens a record with `rec`, whose content without its trailing `\n` is `body`.
    fn begin(&mut self, rec: &Record<'_>, body: &[u8], newline: bool, now: Duration, cap: usize, c: &mut Counters) {
        let room = cap.saturating_sub(usize::from(newline));
        let keep = if body.len() > room {
            utf8_floor(body, room)
        } else {
            body.len()
        };
        self.content.clear();
        self.content.extend_from_slice(&body[..keep]);
        self.truncated = rec.truncated || keep < body.len();
        if keep < body.len() {
            c.truncated += 1;
            c.discarded_bytes += (body.len() - keep) as u64;
        }
        self.open = true;
        self.newline = newline;
        self.time.clear();
        self.time.push_str(rec.time);
        self.timestamp_ms = rec.timestamp_ms;
        self.start = rec.start;
        self.end = rec.end;
        self.last_at = now;
        self.pieces = rec.pieces;
        self.inherited = (!rec.is_complete()).then_some(rec.closed);
    }

    fn append(&mut self, rec: &Record<'_>, body: &[u8], newline: bool, now: Duration) {
        self.content.push(b'\n');
        self.content.extend_from_slice(body);
        self.newline = newline;
        self.end = self.end.max(rec.end);
        self.last_at = now;
        self.pieces = self.pieces.saturating_add(rec.pieces);
        self.truncated |= rec.truncated;
        if self.inherited.is_none() && !rec.is_complete() {
            self.inherited = Some(rec.closed);
        }
    }

    /// Emits the open record, closed for `reason`.
    fn close(&mut self, stream: Stream, reason: CloseReason, emit: &mut impl FnMut(Record<'_>)) {
        if !self.open {
            return;
        }
        self.open = false;
        if self.newline {
            // Restored once for the whole record; the buffer is cleared when the next one opens.
            self.content.push(b'\n');
        }
        // A multiline record has no end mark of its own: a start-pattern record ends where the
        // next starts, a preset's where a line does not continue it, and the last one before a
        // pause at the flush timeout or at the end of the file. Its lines were whole either way
        // (Fluent Bit and fluentd's `concat` ship it as they would any other), so it is
        // incomplete (`_p: P`, `logtag: P`) only when one of its pieces was, or the cap cut it.
        let closed = match reason {
            CloseReason::Cap => CloseReason::Cap,
            CloseReason::Terminated | CloseReason::Timeout | CloseReason::Finished => {
                self.inherited.unwrap_or(CloseReason::Terminated)
            }
        };
        emit(Record {
            time: &self.time,
            timestamp_ms: self.timestamp_ms,
            stream,
            content: &self.content,
            start: self.start,
            end: self.end,
            pieces: self.pieces,
            truncated: self.truncated || reason == CloseReason::Cap,
            closed,
        });
    }
}

/// Applies a [`MultilineRule`] to the records of one file, per stream.
///
/// Like the [`Joiner`](super::Joiner) it takes time as `now` from the caller and hands records to
/// a closure; a record passed through alone (a preset's non-matching line) is not copied.
#[derive(Debug)]
pub struct Multiline {
    rule: MultilineRule,
    limits: Limits,
    streams: [Assembly; 2],
    counters: Counters,
}

impl Multiline {
    /// A stage with nothing open.
    pub fn new(rule: MultilineRule, limits: Limits) -> Self {
        Multiline {
            rule,
            limits,
            streams: Default::default(),
            counters: Counters::default(),
        }
    }

    /// Feeds one record completed by the joiner, at `now`. Completed multiline records go to
    /// `emit` in order: possibly the stream's open record (closed by timeout, by this line or by the
    /// cap), then possibly this record itself if it stands alone.
    ///
    /// When appending a line would make a record exceed `max_record_bytes`, the record is closed
    /// there (marked truncated and counted, since the logical record continues) and the line opens
    /// the next one; no line content is thrown away.
    pub fn push(&mut self, rec: Record<'_>, now: Duration, mut emit: impl FnMut(Record<'_>)) {
        let Limits {
            max_record_bytes: cap,
            flush_timeout,
        } = self.limits;
        let counters = &mut self.counters;
        let o = &mut self.streams[rec.stream.index()];
        if o.expired(now, flush_timeout) {
            counters.timed_out += 1;
            o.close(rec.stream, CloseReason::Timeout, &mut emit);
            o.state = START;
        }
        let (body, newline) = match rec.content.strip_suffix(b"\n") {
            Some(body) => (body, true),
            None => (rec.content, false),
        };
        match self.rule.decide(o.open, o.state, body) {
            Action::Single => {
                o.close(rec.stream, CloseReason::Terminated, &mut emit);
                o.state = START;
                emit(rec);
            }
            Action::Start(to) => {
                o.close(rec.stream, CloseReason::Terminated, &mut emit);
                o.begin(&rec, body, newline, now, cap, counters);
                o.state = to;
            }
            Action::Continue(to, ends) => {
                let joined = o.content.len() + 1 + body.len() + usize::from(newline);
                if joined > cap {
                    counters.truncated += 1;
                    o.close(rec.stream, CloseReason::Cap, &mut emit);
                    o.begin(&rec, body, newline, now, cap, counters);
                } else {
                    o.append(&rec, body, newline, now);
                }
                o.state = to;
                if ends {
                    o.close(rec.stream, CloseReason::Terminated, &mut emit);
                    o.state = START;
                }
            }
        }
    }

    /// Emits, as incomplete records, the open records that received nothing for the flush timeout.
    pub fn flush_expired(&mut self, now: Duration, mut emit: impl FnMut(Record<'_>)) {
        let timeout = self.limits.flush_timeout;
        for stream in self.by_start() {
            let o = &mut self.streams[stream.index()];
            if o.expired(now, timeout) {
                self.counters.timed_out += 1;
                o.close(stream, CloseReason::Timeout, &mut emit);
                o.state = START;
            }
        }
    }

    /// Emits every open record: the file is finished.
    pub fn finish(&mut self, mut emit: impl FnMut(Record<'_>)) {
        for stream in self.by_start() {
            let o = &mut self.streams[stream.index()];
            if o.open {
                self.counters.finished += 1;
                o.close(stream, CloseReason::Finished, &mut emit);
            }
            o.state = START;
        }
    }

    /// The file offset where the earliest open multiline record began; the file's committed
    /// offset must stay at or before it.
    pub fn pending_start(&self) -> Option<u64> {
        self.streams.iter().filter(|o| o.open).map(|o| o.start).min()
    }

    /// When [`Multiline::flush_expired`] will next have something to do, if anything is open.
    pub fn next_deadline(&self) -> Option<Duration> {
        let timeout = self.limits.flush_timeout;
        self.streams
            .iter()
            .filter(|o| o.open)
            .map(|o| o.last_at.saturating_add(timeout))
            .min()
    }

    /// Nothing is open on either stream.
    pub fn is_idle(&self) -> bool {
        self.streams.iter().all(|o| !o.open)
    }

    /// The counters accumulated since the last call, resetting them.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    fn by_start(&self) -> [Stream; 2] {
        let [out, err] = &self.streams;
        if err.open && (!out.open || err.start < out.start) {
            [Stream::Stderr, Stream::Stdout]
        } else {
            [Stream::Stdout, Stream::Stderr]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::{OwnedRecord, collect};
    use super::*;

    const S: Duration = Duration::from_secs(1);

    /// A complete single-piece record of `text` occupying `[start, start + len + 1)`.
    fn rec(stream: Stream, text: &[u8], start: u64) -> Record<'_> {
        Record {
            time: "2026-01-05T10:11:12Z",
            timestamp_ms: i64::try_from(start).unwrap_or_default(),
            stream,
            content: text,
            start,
            end: start + text.len() as u64 + 1,
            pieces: 1,
            truncated: false,
            closed: CloseReason::Terminated,
        }
    }

    /// Runs `lines` (stdout, one per second) through a stage, then finishes it.
    fn run(rule: MultilineRule, limits: Limits, lines: &[&str]) -> Vec<OwnedRecord> {
        let mut m = Multiline::new(rule, limits);
        let mut out = Vec::new();
        let mut offset = 0;
        for (i, l) in lines.iter().enumerate() {
            let now = S * u32::try_from(i).unwrap_or_default();
            m.push(rec(Stream::Stdout, l.as_bytes(), offset), now, collect(&mut out));
            offset += l.len() as u64 + 1;
        }
        m.finish(collect(&mut out));
        out
    }

    fn texts(out: &[OwnedRecord]) -> Vec<String> {
        out.iter()
            .map(|r| String::from_utf8_lossy(&r.content).into_owned())
            .collect()
    }

    fn start(p: &str) -> MultilineRule {
        MultilineRule::start_pattern(p).unwrap()
    }

    #[test]
    fn start_pattern_joins_indented_lines() {
        let out = run(
            start(r"^\S"),
            Limits::default(),
            &["first", "  cont 1", "\tcont 2", "second", "third", " c"],
        );
        assert_eq!(texts(&out), ["first\n  cont 1\n\tcont 2", "second", "third\n c"]);
        assert_eq!((out[0].start, out[0].end, out[0].pieces), (0, 23, 3));
        assert_eq!((out[1].start, out[1].end), (23, 30));
        assert_eq!(out[1].closed, CloseReason::Terminated);
        // Closed by the end of the file, but every line of it was whole.
        assert_eq!(out[2].closed, CloseReason::Terminated);
        // The first record keeps its first line's timestamp.
        assert_eq!(out[0].timestamp_ms, 0);
    }

    #[test]
    fn start_pattern_opens_a_record_with_a_leading_continuation() {
        let out = run(start(r"^\S"), Limits::default(), &["  orphan", "  more", "x"]);
        assert_eq!(texts(&out), ["  orphan\n  more", "x"]);
    }

    #[test]
    fn date_start_pattern() {
        let p = r"^\d{4}[-/]\d{1,2}[-/]\d{1,2}";
        let out = run(
            start(p),
            Limits::default(),
            &["2026/01/05 10:11:12 E! boom", "detail", "2026-01-05 next"],
        );
        assert_eq!(texts(&out), ["2026/01/05 10:11:12 E! boom\ndetail", "2026-01-05 next"]);
    }

    #[test]
    fn bad_pattern_is_reported() {
        let e = MultilineRule::start_pattern("(unclosed").unwrap_err();
        assert!(!e.to_string().is_empty());
        // Look-around is not supported by the regex crate.
        assert!(MultilineRule::start_pattern("(?=x)").is_err());
    }

    #[test]
    fn docker_newlines_are_stripped_and_restored_once() {
        let mut m = Multiline::new(start(r"^\S"), Limits::default());
        let mut out = Vec::new();
        for (i, l) in ["a\n", "  b\n", "  c\n", "d\n"].iter().enumerate() {
            m.push(
                rec(Stream::Stdout, l.as_bytes(), i as u64 * 10),
                Duration::ZERO,
                collect(&mut out),
            );
        }
        m.finish(collect(&mut out));
        assert_eq!(texts(&out), ["a\n  b\n  c\n", "d\n"]);
    }

    #[test]
    fn java_stack_trace() {
        let lines = [
            "2026-01-05 10:11:12 INFO starting",
            "Exception in thread \"main\" java.lang.IllegalStateException: boom",
            "\tat com.example.Foo.bar(Foo.java:10)",
            "\tat com.example.Main.main(Main.java:5)",
            "Caused by: java.io.IOException: disk full",
            "\tat com.example.Disk.write(Disk.java:3)",
            "\t... 2 more",
            "2026-01-05 10:11:13 INFO next",
            "java.lang.NullPointerException",
            "    at Foo.bar(Foo.java:1)",
        ];
        let out = run(MultilineRule::preset(Preset::Java), Limits::default(), &lines);
        assert_eq!(
            texts(&out),
            [
                lines[0].to_owned(),
                lines[1..7].join("\n"),
                lines[7].to_owned(),
                lines[8..].join("\n")
            ]
        );
        assert_eq!(out[1].pieces, 6);
        assert_eq!(out[1].closed, CloseReason::Terminated);
        assert_eq!(out[3].closed, CloseReason::Terminated);
    }

    #[test]
    fn java_start_needs_a_character_before_the_name() {
        let out = run(
            MultilineRule::preset(Preset::Java),
            Limits::default(),
            &["Exception", "\tat x"],
        );
        assert_eq!(texts(&out), ["Exception", "\tat x"]);
    }

    #[test]
    fn python_traceback_ends_at_the_exception_line() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"app.py\", line 3, in <module>",
            "    main()",
            "  File \"app.py\", line 2, in main",
            "    raise ValueError(\"bad\")",
            "ValueError: bad",
            "  indented but after the end",
        ];
        let mut m = Multiline::new(MultilineRule::preset(Preset::Python), Limits::default());
        let mut out = Vec::new();
        let mut offset = 0;
        for l in &lines[..6] {
            m.push(
                rec(Stream::Stderr, l.as_bytes(), offset),
                Duration::ZERO,
                collect(&mut out),
            );
            offset += l.len() as u64 + 1;
        }
        // Closed by the exception line itself, without waiting for the next line.
        assert_eq!(texts(&out), [lines[..6].join("\n")]);
        assert_eq!((out[0].stream, out[0].start, out[0].end), (Stream::Stderr, 0, offset));
        assert!(m.is_idle());
        m.push(
            rec(Stream::Stderr, lines[6].as_bytes(), offset),
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(texts(&out)[1], lines[6]);
    }

    #[test]
    fn python_chained_exceptions() {
        let lines = [
            "Traceback (most recent call last):",
            "  File \"a.py\", line 1, in <module>",
            "    x()",
            "KeyError: 'k'",
            "",
            "During handling of the above exception, another exception occurred:",
            "",
            "Traceback (most recent call last):",
            "  File \"a.py\", line 3, in <module>",
            "    y()",
            "mod.sub.CustomError: again",
        ];
        let out = run(MultilineRule::preset(Preset::Python), Limits::default(), &lines);
        assert_eq!(
            texts(&out),
            [
                lines[..4].join("\n"),
                String::new(),
                lines[5].to_owned(),
                String::new(),
                lines[7..].join("\n")
            ]
        );
    }

    #[test]
    fn go_panic() {
        let lines = [
            "starting server",
            "panic: runtime error: index out of range [5] with length 3",
            "",
            "goroutine 1 [running]:",
            "main.process(...)",
            "\t/app/main.go:12",
            "main.main()",
            "\t/app/main.go:8 +0x1d",
            "created by main.start",
            "\t/app/main.go:20 +0x30",
            "exit status 2",
        ];
        let out = run(MultilineRule::preset(Preset::Go), Limits::default(), &lines);
        assert_eq!(
            texts(&out),
            [lines[0].to_owned(), lines[1..10].join("\n"), lines[10].to_owned()]
        );
    }

    #[test]
    fn go_signal_panic() {
        let lines = [
            "panic: runtime error: invalid memory address or nil pointer dereference",
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x45]",
            "",
            "goroutine 7 [running]:",
            "main.handler(0x0)",
            "\t/app/h.go:3 +0x1",
        ];
        let out = run(MultilineRule::preset(Preset::Go), Limits::default(), &lines);
        assert_eq!(texts(&out), [lines.join("\n")]);
    }

    #[test]
    fn preset_passthrough_is_borrowed() {
        let mut m = Multiline::new(MultilineRule::preset(Preset::Go), Limits::default());
        let text = b"plain line".to_vec();
        let mut seen = None;
        m.push(rec(Stream::Stdout, &text, 0), Duration::ZERO, |r| {
            seen = Some(r.content.as_ptr());
        });
        assert_eq!(seen, Some(text.as_ptr()));
        assert_eq!(m.pending_start(), None);
    }

    #[test]
    fn streams_are_separate() {
        let mut m = Multiline::new(start(r"^\S"), Limits::default());
        let mut out = Vec::new();
        m.push(rec(Stream::Stdout, b"out", 0), Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stderr, b"err", 4), Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stdout, b" o2", 8), Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stderr, b" e2", 12), Duration::ZERO, collect(&mut out));
        assert!(out.is_empty());
        assert_eq!(m.pending_start(), Some(0));
        m.push(rec(Stream::Stdout, b"next", 16), Duration::ZERO, collect(&mut out));
        assert_eq!(texts(&out), ["out\n o2"]);
        assert_eq!((out[0].start, out[0].end), (0, 12));
        assert_eq!(m.pending_start(), Some(4));
        m.finish(collect(&mut out));
        assert_eq!(texts(&out), ["out\n o2", "err\n e2", "next"]);
    }

    #[test]
    fn timeout_flushes_and_next_line_starts_fresh() {
        let mut m = Multiline::new(start(r"^\S"), Limits::default());
        let mut out = Vec::new();
        m.push(rec(Stream::Stdout, b"a", 0), Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stdout, b" b", 2), S, collect(&mut out));
        assert_eq!(m.next_deadline(), Some(6 * S));
        m.flush_expired(Duration::from_nanos(5_999_999_999), collect(&mut out));
        assert!(out.is_empty());
        m.flush_expired(6 * S, collect(&mut out));
        assert_eq!(texts(&out), ["a\n b"]);
        assert_eq!(
            out[0].closed,
            CloseReason::Terminated,
            "whole lines make a whole record"
        );
        assert_eq!(m.take_counters().timed_out, 1);
        // A late continuation line opens a record of its own.
        m.push(rec(Stream::Stdout, b" c", 5), 7 * S, collect(&mut out));
        // Timeout detected on push as well.
        m.push(rec(Stream::Stdout, b" d", 8), 20 * S, collect(&mut out));
        assert_eq!(texts(&out), ["a\n b", " c"]);
        assert_eq!(m.pending_start(), Some(8));
    }

    #[test]
    fn cap_closes_the_record_and_continues_in_a_new_one() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let out = run(start(r"^\S"), limits, &["abcd", " efg", " hij", " k", "x"]);
        // "abcd\n efg" is 9 bytes; adding "\n hij" would make 14.
        assert_eq!(texts(&out), ["abcd\n efg", " hij\n k", "x"]);
        assert!(out[0].truncated);
        assert_eq!(out[0].closed, CloseReason::Cap);
        assert!(!out[1].truncated);
        assert_eq!(out[1].closed, CloseReason::Terminated);
    }

    #[test]
    fn cap_counts_a_restored_newline() {
        let limits = Limits {
            max_record_bytes: 6,
            ..Limits::default()
        };
        let mut m = Multiline::new(start(r"^\S"), limits);
        let mut out = Vec::new();
        m.push(rec(Stream::Stdout, b"ab\n", 0), Duration::ZERO, collect(&mut out));
        // "ab\n c" + "\n" = 6 fits exactly.
        m.push(rec(Stream::Stdout, b" c\n", 3), Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stdout, b" d\n", 6), Duration::ZERO, collect(&mut out));
        // A single record over the cap is cut, keeping room for its newline.
        m.push(
            rec(Stream::Stdout, "xxxxé\n".as_bytes(), 9),
            Duration::ZERO,
            collect(&mut out),
        );
        m.finish(collect(&mut out));
        assert_eq!(texts(&out), ["ab\n c\n", " d\n", "xxxx\n"]);
        assert!(out.iter().all(|r| r.content.len() <= 6));
        assert!(out[2].truncated);
        let c = m.take_counters();
        assert_eq!((c.truncated, c.discarded_bytes), (2, 2));
    }

    #[test]
    fn incomplete_input_is_reported() {
        let mut m = Multiline::new(start(r"^\S"), Limits::default());
        let mut out = Vec::new();
        let mut first = rec(Stream::Stdout, b"a", 0);
        first.closed = CloseReason::Timeout;
        m.push(first, Duration::ZERO, collect(&mut out));
        let mut second = rec(Stream::Stdout, b" b", 2);
        second.truncated = true;
        m.push(second, Duration::ZERO, collect(&mut out));
        m.push(rec(Stream::Stdout, b"c", 5), Duration::ZERO, collect(&mut out));
        assert_eq!(out[0].closed, CloseReason::Timeout);
        assert!(out[0].truncated);
    }

    /// The Java start rule's `(.)`, searched from the second byte: the name may not start the
    /// line, and any character, of any length, may come before it.
    #[test]
    fn the_java_exception_name_may_not_start_the_line() {
        let rule = MultilineRule::preset(Preset::Java);
        for (line, starts) in [
            ("Exception: at the start", false),
            ("Error", false),
            ("xException: one before", true),
            ("éError: a two-byte character before", true),
            ("java.lang.Error", true),
            ("an Errors list", false),
            ("", false),
        ] {
            let start = matches!(rule.decide(false, START, line.as_bytes()), Action::Start(_));
            assert_eq!(start, starts, "{line:?}");
        }
    }

    #[test]
    fn preset_names() {
        for p in [Preset::Java, Preset::Python, Preset::Go] {
            assert_eq!(Preset::from_name(p.name()), Some(p));
            assert_eq!(p.to_string(), p.name());
        }
        assert_eq!(Preset::from_name("ruby"), None);
    }
}
