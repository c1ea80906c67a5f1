//! Joining the pieces a runtime cut a long output line into.
//!
//! CRI runtimes write a line longer than their limit (containerd: `max_container_log_line_size`,
//! 16 KiB by default) as `P` pieces ended by an `F` piece; Docker's `json-file` writes 16 KiB pieces
//! of which only the last `log` ends with `\n`. Kubelet joins consecutive pieces of the same stream
//! (`kubernetes/kubernetes: pkg/kubelet/kuberuntime/logs/logs.go`), and so does Fluent Bit's `cri`
//! multiline parser, keyed by `stream` (`fluent/fluent-bit: src/multiline/flb_ml_parser_cri.c`).
//! Stdout and stderr pieces interleave in one file, so a [`Joiner`] (one per file) keeps one open
//! record per stream and never mixes them.
//!
//! Every record carries the byte range of the lines it was built from, and
//! [`Joiner::pending_start`] reports where the earliest still-open record began: the file's
//! checkpoint must not move past that offset, or a restart would lose the pieces read so far.

use std::time::Duration;

use super::line::{Line, Stream};
use super::record::{CloseReason, Counters, Limits, Record};
use super::utf8::utf8_floor;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// Nothing pending on this stream.
    #[default]
    Idle,
    /// Pieces joined so far are in `content`.
    Open,
    /// The record was cut at the cap and already emitted; pieces are thrown away up to the last one.
    Discarding,
}

/// The open record of one stream; its buffers are reused from record to record.
#[derive(Debug, Default)]
struct Pending {
    phase: Phase,
    content: Vec<u8>,
    time: String,
    timestamp_ms: i64,
    start: u64,
    end: u64,
    last_at: Duration,
    pieces: u32,
}

impl Pending {
    fn expired(&self, now: Duration, timeout: Duration) -> bool {
        self.phase != Phase::Idle && now.saturating_sub(self.last_at) >= timeout
    }

    fn record(&self, stream: Stream, truncated: bool, closed: CloseReason) -> Record<'_> {
        Record {
            time: &self.time,
            timestamp_ms: self.timestamp_ms,
            stream,
            content: &self.content,
            start: self.start,
            end: self.end,
            pieces: self.pieces,
            truncated,
            closed,
        }
    }

    /// Ends whatever is pending: an open record is emitted incomplete, a discard simply stops.
    fn flush(
        &mut self,
        stream: Stream,
        reason: CloseReason,
        counters: &mut Counters,
        emit: &mut impl FnMut(Record<'_>),
    ) {
        let phase = std::mem::take(&mut self.phase);
        if phase == Phase::Open {
            match reason {
                CloseReason::Timeout => counters.timed_out += 1,
                CloseReason::Finished => counters.finished += 1,
                CloseReason::Terminated | CloseReason::Cap => {}
            }
            emit(self.record(stream, false, reason));
        }
    }
}

/// Joins partial pieces per stream for one file. See the module documentation.
///
/// Time is passed in as `now`, a monotonic duration from any fixed origin (the caller's clock),
/// so the joiner itself has no clock and tests control time exactly.
#[derive(Debug)]
pub struct Joiner {
    limits: Limits,
    streams: [Pending; 2],
    counters: Counters,
}

impl Joiner {
    /// A joiner with nothing pending.
    pub fn new(limits: Limits) -> Self {
        Joiner {
            limits,
            streams: Default::default(),
            counters: Counters::default(),
        }
    }

    /// The limits this joiner applies.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Feeds one parsed line that occupied bytes `[start, end)` of the file (`end` past its `\n`),
    /// read at `now`. Every record this completes is passed to `emit`, in order: possibly the
    /// stream's previous record flushed by the timeout, then possibly a record ended by this line.
    ///
    /// A full line with nothing pending on its stream (the common case) is emitted without any
    /// copy: the record borrows `line.content`.
    pub fn push(&mut self, line: Line<'_>, start: u64, end: u64, now: Duration, mut emit: impl FnMut(Record<'_>)) {
        let Limits {
            max_record_bytes: cap,
            flush_timeout,
        } = self.limits;
        let counters = &mut self.counters;
        let p = &mut self.streams[line.stream.index()];
        // Checked here as well as in `flush_expired`, so that the result does not depend on how
        // often the caller polls: a piece arriving after the timeout never joins the old record.
        if p.expired(now, flush_timeout) {
            p.flush(line.stream, CloseReason::Timeout, counters, &mut emit);
        }
        match p.phase {
            Phase::Idle if !line.partial => {
                let mut content = line.content;
                let truncated = content.len() > cap;
                if truncated {
                    content = &content[..utf8_floor(content, cap)];
                    counters.truncated += 1;
                    counters.discarded_bytes += (line.content.len() - content.len()) as u64;
                }
                emit(Record {
                    time: line.time,
                    timestamp_ms: line.timestamp_ms,
                    stream: line.stream,
                    content,
                    start,
                    end,
                    pieces: 1,
                    truncated,
                    closed: CloseReason::Terminated,
                });
            }
            Phase::Idle | Phase::Open => {
                if p.phase == Phase::Idle {
                    p.phase = Phase::Open;
                    p.content.clear();
                    p.time.clear();
                    p.time.push_str(line.time);
                    p.timestamp_ms = line.timestamp_ms;
                    p.start = start;
                    p.pieces = 0;
                }
                p.pieces = p.pieces.saturating_add(1);
                p.end = end;
                p.last_at = now;
                let room = cap.saturating_sub(p.content.len());
                if line.content.len() <= room {
                    p.content.extend_from_slice(line.content);
                    if !line.partial {
                        p.phase = Phase::Idle;
                        emit(p.record(line.stream, false, CloseReason::Terminated));
                    }
                } else {
                    // Over the cap. Take up to three bytes past it so that a character straddling
                    // the cut (possibly begun in an earlier piece) is recognised and dropped whole.
                    let joined_len = p.content.len() + line.content.len();
                    p.content
                        .extend_from_slice(&line.content[..line.content.len().min(room + 3)]);
                    let keep = utf8_floor(&p.content, cap);
                    p.content.truncate(keep);
                    counters.truncated += 1;
                    counters.discarded_bytes += (joined_len - keep) as u64;
                    let closed = if line.partial {
                        p.phase = Phase::Discarding;
                        CloseReason::Cap
                    } else {
                        p.phase = Phase::Idle;
                        CloseReason::Terminated
                    };
                    emit(p.record(line.stream, true, closed));
                }
            }
            Phase::Discarding => {
                counters.discarded_pieces += 1;
                counters.discarded_bytes += line.content.len() as u64;
                p.end = end;
                p.last_at = now;
                if !line.partial {
                    p.phase = Phase::Idle;
                }
            }
        }
    }

    /// Emits, as incomplete records, the open records whose last piece was read at least the flush
    /// timeout before `now`; an expired discard after a cap simply ends. Call it when the deadline
    /// of [`Joiner::next_deadline`] passes.
    pub fn flush_expired(&mut self, now: Duration, mut emit: impl FnMut(Record<'_>)) {
        let timeout = self.limits.flush_timeout;
        for stream in self.by_start() {
            let p = &mut self.streams[stream.index()];
            if p.expired(now, timeout) {
                p.flush(stream, CloseReason::Timeout, &mut self.counters, &mut emit);
            }
        }
    }

    /// Emits every open record as incomplete: the file is finished (rotated or deleted and read to
    /// its end), and pieces are never joined across files.
    pub fn finish(&mut self, mut emit: impl FnMut(Record<'_>)) {
        for stream in self.by_start() {
            self.streams[stream.index()].flush(stream, CloseReason::Finished, &mut self.counters, &mut emit);
        }
    }

    /// The file offset where the earliest open record began, if any. The file's committed offset
    /// must stay at or before it: the pieces read so far exist only in memory.
    ///
    /// A record already emitted because of the cap does not pin anything while its remaining pieces
    /// are discarded: a restart in the middle would at worst ship those pieces as a record of their
    /// own, and nothing is lost.
    pub fn pending_start(&self) -> Option<u64> {
        self.streams
            .iter()
            .filter(|p| p.phase == Phase::Open)
            .map(|p| p.start)
            .min()
    }

    /// When [`Joiner::flush_expired`] will next have something to do, if anything is pending.
    pub fn next_deadline(&self) -> Option<Duration> {
        let timeout = self.limits.flush_timeout;
        self.streams
            .iter()
            .filter(|p| p.phase != Phase::Idle)
            .map(|p| p.last_at.saturating_add(timeout))
            .min()
    }

    /// Nothing is pending on either stream.
    pub fn is_idle(&self) -> bool {
        self.streams.iter().all(|p| p.phase == Phase::Idle)
    }

    /// The counters accumulated since the last call, resetting them.
    pub fn take_counters(&mut self) -> Counters {
        std::mem::take(&mut self.counters)
    }

    /// Both streams, earliest open record first, so flushes come out in file order.
    fn by_start(&self) -> [Stream; 2] {
        let [out, err] = &self.streams;
        if err.phase == Phase::Open && (out.phase != Phase::Open || err.start < out.start) {
            [Stream::Stderr, Stream::Stdout]
        } else {
            [Stream::Stdout, Stream::Stderr]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::detect::LineParser;
    use super::super::testkit::{collect, feed};
    use super::*;

    const S: Duration = Duration::from_secs(1);

    const T1: &str = "2026-01-05T10:11:12.123456789Z stdout P part-one|\n\
                      2026-01-05T10:11:12.2Z stderr F error: disk full\n\
                      2026-01-05T10:11:12.3Z stdout P part-two|\n\
                      2026-01-05T10:11:12.45Z stdout F end\n\
                      2026-01-05T10:11:13+01:00 stdout F {\"level\":\"info\",\"msg\":\"hi\"}\n";

    fn line(stream: Stream, partial: bool, content: &[u8]) -> Line<'_> {
        Line {
            time: if partial {
                "2026-01-05T10:11:12.1Z"
            } else {
                "2026-01-05T10:11:12.9Z"
            },
            timestamp_ms: if partial { 1 } else { 9 },
            stream,
            partial,
            content,
        }
    }

    #[test]
    fn t1_cri_pieces() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        let mut pending = Vec::new();
        feed(
            T1.as_bytes(),
            &mut LineParser::new(),
            &mut j,
            Duration::ZERO,
            S,
            |r| out.push(r),
            |p| pending.push(p),
        );
        assert_eq!(out.len(), 3);
        let [a, b, c] = [&out[0], &out[1], &out[2]];
        assert_eq!(
            (a.time.as_str(), a.stream, a.content.as_slice()),
            ("2026-01-05T10:11:12.2Z", Stream::Stderr, &b"error: disk full"[..])
        );
        assert_eq!((a.timestamp_ms, a.start, a.end), (1_767_607_872_200, 50, 99));
        assert_eq!(b.time, "2026-01-05T10:11:12.123456789Z");
        assert_eq!(
            (b.stream, b.content.as_slice()),
            (Stream::Stdout, &b"part-one|part-two|end"[..])
        );
        assert_eq!(
            (b.timestamp_ms, b.start, b.end, b.pieces),
            (1_767_607_872_123, 0, 178, 3)
        );
        assert!(b.is_complete() && !b.truncated);
        assert_eq!(c.time, "2026-01-05T10:11:13+01:00");
        assert_eq!((c.timestamp_ms, c.start, c.end), (1_767_604_273_000, 178, 241));
        assert_eq!(c.content, br#"{"level":"info","msg":"hi"}"#);
        // After each line: the open stdout record pins offset 0 until line 4 closes it.
        assert_eq!(pending, [Some(0), Some(0), Some(0), None, None]);
        assert!(j.is_idle());
    }

    #[test]
    fn t1_timeout_variant() {
        let first3: String = T1.split_inclusive('\n').take(3).collect();
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        let mut pending = Vec::new();
        // Lines 1–3 read at 0 s, 1 s, 2 s.
        feed(
            first3.as_bytes(),
            &mut LineParser::new(),
            &mut j,
            Duration::ZERO,
            S,
            |r| out.push(r),
            |p| pending.push(p),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(j.pending_start(), Some(0));
        assert_eq!(j.next_deadline(), Some(7 * S));
        j.flush_expired(Duration::from_millis(6_999), collect(&mut out));
        assert_eq!(out.len(), 1);
        j.flush_expired(7 * S, collect(&mut out));
        assert_eq!(out.len(), 2);
        let t = &out[1];
        assert_eq!(t.time, "2026-01-05T10:11:12.123456789Z");
        assert_eq!(
            (t.content.as_slice(), t.start, t.end),
            (&b"part-one|part-two|"[..], 0, 141)
        );
        assert_eq!(t.closed, CloseReason::Timeout);
        assert_eq!(j.pending_start(), None);
        assert_eq!(j.take_counters().timed_out, 1);
        // A late line 4 is a record of its own.
        let mut parser = LineParser::with_format(super::super::detect::Format::Cri);
        let mut buf = Vec::new();
        let l4 = parser.parse(b"2026-01-05T10:11:12.45Z stdout F end", &mut buf).unwrap();
        j.push(l4, 141, 178, 8 * S, collect(&mut out));
        assert_eq!(
            (out[2].content.as_slice(), out[2].start, out[2].pieces),
            (&b"end"[..], 141, 1)
        );
        assert_eq!(out[2].time, "2026-01-05T10:11:12.45Z");
    }

    #[test]
    fn timeout_is_applied_on_push_too() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"a"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        // No flush_expired call in between: the late F still must not join the stale piece.
        j.push(line(Stream::Stdout, false, b"b"), 10, 20, 6 * S, collect(&mut out));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].content.as_slice(), out[0].closed),
            (&b"a"[..], CloseReason::Timeout)
        );
        assert_eq!(
            (out[1].content.as_slice(), out[1].closed, out[1].start),
            (&b"b"[..], CloseReason::Terminated, 10)
        );
        // Just under the timeout the pieces join.
        j.push(line(Stream::Stdout, true, b"c"), 20, 30, 10 * S, collect(&mut out));
        j.push(
            line(Stream::Stdout, false, b"d"),
            30,
            40,
            Duration::from_nanos(14_999_999_999),
            collect(&mut out),
        );
        assert_eq!(out[2].content, b"cd");
    }

    #[test]
    fn t2_docker_pieces() {
        let text = "{\"log\":\"first half \",\"stream\":\"stdout\",\"time\":\"2026-01-05T10:11:14.123456789Z\"}\n\
                    {\"log\":\"err\\n\",\"stream\":\"stderr\",\"time\":\"2026-01-05T10:11:14.2Z\"}\n\
                    {\"log\":\"second half\\n\",\"stream\":\"stdout\",\"time\":\"2026-01-05T10:11:14.3Z\"}\n";
        let mut parser = LineParser::new();
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        let mut pending = Vec::new();
        feed(
            text.as_bytes(),
            &mut parser,
            &mut j,
            Duration::ZERO,
            S,
            |r| out.push(r),
            |p| pending.push(p),
        );
        assert_eq!(parser.format(), Some(super::super::detect::Format::Docker));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].stream, out[0].content.as_slice()),
            (Stream::Stderr, &b"err\n"[..])
        );
        assert_eq!(
            (out[0].time.as_str(), out[0].timestamp_ms),
            ("2026-01-05T10:11:14.2Z", 1_767_607_874_200)
        );
        assert_eq!(
            (out[1].stream, out[1].content.as_slice()),
            (Stream::Stdout, &b"first half second half\n"[..])
        );
        assert_eq!(out[1].time, "2026-01-05T10:11:14.123456789Z");
        assert_eq!(out[1].timestamp_ms, 1_767_607_874_123);
        assert_eq!(pending, [Some(0), Some(0), None]);
    }

    #[test]
    fn interleaved_streams_do_not_mix() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"o1 "),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stderr, true, b"e1 "),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), Some(0));
        j.push(
            line(Stream::Stdout, true, b"o2 "),
            20,
            30,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stderr, false, b"e2"),
            30,
            40,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), Some(0));
        j.push(
            line(Stream::Stdout, false, b"o3"),
            40,
            50,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), None);
        assert_eq!(out.len(), 2);
        assert_eq!(
            (out[0].stream, out[0].content.as_slice(), out[0].start, out[0].end),
            (Stream::Stderr, &b"e1 e2"[..], 10, 40)
        );
        assert_eq!(
            (out[1].stream, out[1].content.as_slice(), out[1].start, out[1].end),
            (Stream::Stdout, &b"o1 o2 o3"[..], 0, 50)
        );
        // The first piece's time is kept.
        assert_eq!(out[1].time, "2026-01-05T10:11:12.1Z");
        assert_eq!(out[1].timestamp_ms, 1);
    }

    #[test]
    fn pending_start_is_the_earliest_open_record() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stderr, true, b"e"),
            100,
            110,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, true, b"o"),
            110,
            120,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), Some(100));
        j.push(
            line(Stream::Stderr, false, b"e"),
            120,
            130,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), Some(110));
        // A full line of the other stream in between does not move it.
        j.push(
            line(Stream::Stderr, false, b"x"),
            130,
            140,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.pending_start(), Some(110));
    }

    #[test]
    fn full_line_without_pending_is_borrowed() {
        let mut j = Joiner::new(Limits::default());
        let content = b"hello".to_vec();
        let mut seen = None;
        j.push(line(Stream::Stdout, false, &content), 0, 10, Duration::ZERO, |r| {
            seen = Some((r.content.as_ptr(), r.time.as_ptr()));
        });
        assert_eq!(seen, Some((content.as_ptr(), "2026-01-05T10:11:12.9Z".as_ptr())));
    }

    #[test]
    fn buffers_are_reused() {
        let mut j = Joiner::new(Limits::default());
        let big = vec![b'x'; 1000];
        for round in 0..3u64 {
            let base = round * 100;
            j.push(
                line(Stream::Stdout, true, &big),
                base,
                base + 10,
                Duration::ZERO,
                |_| {},
            );
            j.push(
                line(Stream::Stdout, false, &big),
                base + 10,
                base + 20,
                Duration::ZERO,
                |r| {
                    assert_eq!(r.content.len(), 2000);
                },
            );
        }
        let cap = j.streams[0].content.capacity();
        j.push(line(Stream::Stdout, true, &big), 900, 910, Duration::ZERO, |_| {});
        j.push(line(Stream::Stdout, false, b"y"), 910, 920, Duration::ZERO, |_| {});
        assert_eq!(j.streams[0].content.capacity(), cap);
    }

    #[test]
    fn cap_cuts_and_discards_to_the_final_piece() {
        let limits = Limits {
            max_record_bytes: 10,
            ..Limits::default()
        };
        let mut j = Joiner::new(limits);
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"0123456"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stderr, true, b"err"),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, true, b"789abc"),
            20,
            30,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(out.len(), 1);
        let r = &out[0];
        assert_eq!(
            (r.content.as_slice(), r.truncated, r.closed),
            (&b"0123456789"[..], true, CloseReason::Cap)
        );
        assert_eq!((r.start, r.end, r.pieces), (0, 30, 2));
        assert!(!r.is_complete());
        // Discarding pins nothing of stdout; stderr still open at 10.
        assert_eq!(j.pending_start(), Some(10));
        j.push(
            line(Stream::Stdout, true, b"dropped"),
            30,
            40,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stderr, false, b"!"),
            40,
            50,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, false, b"end"),
            50,
            60,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[1].content, b"err!");
        // The next record starts fresh.
        j.push(
            line(Stream::Stdout, false, b"next"),
            60,
            70,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!((out[2].content.as_slice(), out[2].truncated), (&b"next"[..], false));
        let c = j.take_counters();
        assert_eq!(c.truncated, 1);
        assert_eq!(c.discarded_pieces, 2);
        assert_eq!(c.discarded_bytes, 3 + 7 + 3);
        assert_eq!(j.take_counters(), Counters::default());
    }

    #[test]
    fn cap_reached_by_the_final_piece_is_complete_but_truncated() {
        let limits = Limits {
            max_record_bytes: 4,
            ..Limits::default()
        };
        let mut j = Joiner::new(limits);
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"ab"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, false, b"cdef"),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(
            (out[0].content.as_slice(), out[0].truncated, out[0].closed),
            (&b"abcd"[..], true, CloseReason::Terminated)
        );
        assert!(j.is_idle());
        // A single full line over the cap is cut too (borrowed).
        j.push(
            line(Stream::Stdout, false, b"123456"),
            20,
            30,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!((out[1].content.as_slice(), out[1].truncated), (&b"1234"[..], true));
        // Exactly at the cap is not truncated.
        j.push(
            line(Stream::Stdout, true, b"12"),
            30,
            40,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, false, b"34"),
            40,
            50,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!((out[2].content.as_slice(), out[2].truncated), (&b"1234"[..], false));
        // A partial piece alone over the cap: emitted at once, the rest discarded.
        j.push(
            line(Stream::Stdout, true, b"abcdefgh"),
            50,
            60,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(
            (out[3].content.as_slice(), out[3].closed),
            (&b"abcd"[..], CloseReason::Cap)
        );
        j.push(
            line(Stream::Stdout, false, b"ij"),
            60,
            70,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(out.len(), 4);
        assert!(j.is_idle());
    }

    #[test]
    fn cap_cuts_at_a_utf8_boundary_across_pieces() {
        let limits = Limits {
            max_record_bytes: 5,
            ..Limits::default()
        };
        let mut j = Joiner::new(limits);
        let mut out = Vec::new();
        // "€" is E2 82 AC; the runtime split it between pieces, and the cap (5) falls inside it.
        j.push(
            line(Stream::Stdout, true, b"abc\xe2"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, true, b"\x82\xacdef"),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!((out[0].content.as_slice(), out[0].truncated), (&b"abc"[..], true));
        assert_eq!(j.take_counters().discarded_bytes, 6);
        j.push(
            line(Stream::Stdout, false, b"end"),
            20,
            30,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(out.len(), 1);
        // A full line: "aé€" (6 bytes) cut at 5 keeps "aé".
        j.push(
            line(Stream::Stdout, false, "aé€".as_bytes()),
            30,
            40,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!((out[1].content.as_slice(), out[1].truncated), ("aé".as_bytes(), true));
        assert_eq!(j.take_counters().discarded_bytes, 3 + 3);
    }

    #[test]
    fn discard_ends_on_timeout() {
        let limits = Limits {
            max_record_bytes: 2,
            flush_timeout: 5 * S,
        };
        let mut j = Joiner::new(limits);
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"abc"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(j.next_deadline(), Some(5 * S));
        j.flush_expired(5 * S, collect(&mut out));
        assert!(j.is_idle());
        assert_eq!(out.len(), 1);
        j.push(line(Stream::Stdout, false, b"z"), 10, 20, 6 * S, collect(&mut out));
        assert_eq!(out[1].content, b"z");
    }

    #[test]
    fn finish_emits_everything_in_file_order() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stderr, true, b"e"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, true, b"o"),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        j.finish(collect(&mut out));
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].stream, out[0].closed), (Stream::Stderr, CloseReason::Finished));
        assert_eq!((out[1].stream, out[1].closed), (Stream::Stdout, CloseReason::Finished));
        assert!(j.is_idle());
        assert_eq!(j.pending_start(), None);
        assert_eq!(j.next_deadline(), None);
        assert_eq!(j.take_counters().finished, 2);
        j.finish(collect(&mut out));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn flush_expired_only_touches_expired_streams() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b"o"),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(line(Stream::Stderr, true, b"e"), 10, 20, 3 * S, collect(&mut out));
        assert_eq!(j.next_deadline(), Some(5 * S));
        j.flush_expired(5 * S, collect(&mut out));
        assert_eq!((out.len(), out[0].stream), (1, Stream::Stdout));
        assert_eq!(j.pending_start(), Some(10));
        assert_eq!(j.next_deadline(), Some(8 * S));
    }

    #[test]
    fn empty_pieces() {
        let mut j = Joiner::new(Limits::default());
        let mut out = Vec::new();
        j.push(
            line(Stream::Stdout, true, b""),
            0,
            10,
            Duration::ZERO,
            collect(&mut out),
        );
        j.push(
            line(Stream::Stdout, false, b""),
            10,
            20,
            Duration::ZERO,
            collect(&mut out),
        );
        assert_eq!(
            (out[0].content.len(), out[0].pieces, out[0].start, out[0].end),
            (0, 2, 0, 20)
        );
    }
}
