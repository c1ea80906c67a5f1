//! Lines of the host's `/var/log/messages` and `/var/log/secure` (BSD syslog file layout).
//!
//! The layout is `<Mmm> <d> <hh:mm:ss> <host> <ident>[<pid>]: <message>`, read as the Container
//! Insights Fluent Bit setup's `syslog` parser does
//! (`aws-samples/amazon-cloudwatch-container-insights:
//! k8s-deployment-manifest-templates/deployment-mode/daemonset/container-insights-monitoring/fluent-bit/fluent-bit.yaml`,
//! `parsers.conf`):
//! `^(?<time>[^ ]* {1,2}[^ ]* [^ ]*) (?<host>[^ ]*) (?<ident>[a-zA-Z0-9_\/\.\-]*)(?:\[(?<pid>[0-9]+)\])?(?:[^\:]*\:)? *(?<message>.*)$`
//! with time format `%b %d %H:%M:%S`. That regex is followed literally (the day may be
//! space-padded, `[pid]` is optional, everything up to the first `:` after the ident is skipped,
//! spaces before the message are dropped), but hand-written, and the time must be a real date.
//!
//! The time has neither year nor zone. The year is the current one unless that puts the line more
//! than a day in the future (a December line read in January), then the previous one; the zone is
//! UTC, which is what EKS node images log in.

use super::time::{days_from_civil, days_in_month, year_of_epoch_ms};

/// A parsed syslog line; the fields borrow from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogLine<'a> {
    /// The line's time as UTC milliseconds since the epoch, with the year inferred.
    pub timestamp_ms: i64,
    /// The host name field.
    pub host: &'a [u8],
    /// The program name; may be empty when the tag has characters outside `[a-zA-Z0-9_/.-]`.
    pub ident: &'a [u8],
    /// The process ID in `ident[pid]`, when present.
    pub pid: Option<&'a [u8]>,
    /// The text after the tag.
    pub message: &'a [u8],
}

const MS_PER_DAY: i64 = 86_400_000;

const MONTHS: [&[u8; 3]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

/// Parses one syslog line (without its `\n`), placing its year-less time relative to `now_ms`
/// (UTC milliseconds of the injected clock). A line that does not have the layout, or whose time
/// is not a real date, is `None`: the caller ships it whole with the read time.
pub fn parse_syslog(line: &[u8], now_ms: i64) -> Option<SyslogLine<'_>> {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    let mut c = Cursor { s: line, pos: 0 };
    // `%b` is case-insensitive in strptime.
    let month_name = c.take(3)?;
    let month = u32::try_from(MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month_name))? + 1).ok()?;
    c.byte(b' ')?;
    c.eat(b' ');
    let day = c.number(1, 2)?;
    c.byte(b' ')?;
    let hour = c.number(2, 2)?;
    c.byte(b':')?;
    let minute = c.number(2, 2)?;
    c.byte(b':')?;
    let second = c.number(2, 2)?;
    c.byte(b' ')?;
    // strptime's %S allows a leap second; it simply lands on the next minute.
    if hour > 23 || minute > 59 || second > 60 || day == 0 {
        return None;
    }
    let host = c.until(b' ');
    c.byte(b' ')?;
    let ident = c.run(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'/' | b'.' | b'-'));
    let pid = c.pid();
    let rest = c.rest();
    // `(?:[^:]*:)?`: the tag ends at the first colon, if there is one.
    let rest = match memchr::memchr(b':', rest) {
        Some(i) => &rest[i + 1..],
        None => rest,
    };
    let message = &rest[rest.iter().take_while(|&&b| b == b' ').count()..];

    let secs_of_day = i64::from(hour * 3600 + minute * 60 + second);
    let at = |year: i64| {
        (day <= days_in_month(year, month)).then(|| days_from_civil(year, month, day) * MS_PER_DAY + secs_of_day * 1000)
    };
    let year = year_of_epoch_ms(now_ms);
    let timestamp_ms = match at(year) {
        Some(t) if t <= now_ms.saturating_add(MS_PER_DAY) => t,
        _ => at(year - 1)?,
    };
    Some(SyslogLine {
        timestamp_ms,
        host,
        ident,
        pid,
        message,
    })
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let out = self.s.get(self.pos..self.pos + n)?;
        self.pos += n;
        Some(out)
    }

    fn byte(&mut self, b: u8) -> Option<()> {
        (self.s.get(self.pos) == Some(&b)).then(|| self.pos += 1)
    }

    fn eat(&mut self, b: u8) {
        if self.s.get(self.pos) == Some(&b) {
            self.pos += 1;
        }
    }

    /// `min..=max` ASCII digits.
    fn number(&mut self, min: usize, max: usize) -> Option<u32> {
        let digits = self.s[self.pos..]
            .iter()
            .take(max)
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits < min {
            return None;
        }
        let v = self.s[self.pos..self.pos + digits]
            .iter()
            .fold(0u32, |v, &d| v * 10 + u32::from(d - b'0'));
        self.pos += digits;
        Some(v)
    }

    fn run(&mut self, keep: impl Fn(u8) -> bool) -> &'a [u8] {
        let n = self.s[self.pos..].iter().take_while(|&&b| keep(b)).count();
        let out = &self.s[self.pos..self.pos + n];
        self.pos += n;
        out
    }

    fn until(&mut self, stop: u8) -> &'a [u8] {
        self.run(|b| b != stop)
    }

    /// `\[([0-9]+)\]`, consumed only if it matches whole.
    fn pid(&mut self) -> Option<&'a [u8]> {
        let rest = &self.s[self.pos..];
        let digits = rest.get(1..)?.iter().take_while(|b| b.is_ascii_digit()).count();
        if rest.first() == Some(&b'[') && digits > 0 && rest.get(1 + digits) == Some(&b']') {
            self.pos += digits + 2;
            Some(&rest[1..=digits])
        } else {
            None
        }
    }

    fn rest(&self) -> &'a [u8] {
        &self.s[self.pos..]
    }
}

#[cfg(test)]
mod tests {
    use super::super::time::parse_rfc3339_ms;
    use super::*;

    /// The oracle's fake clock, 2026-01-05T10:12:00Z.
    const NOW: i64 = 1_767_607_920_000;

    fn ms(s: &str) -> i64 {
        parse_rfc3339_ms(s.as_bytes()).unwrap()
    }

    fn p(s: &str) -> Option<SyslogLine<'_>> {
        parse_syslog(s.as_bytes(), NOW)
    }

    #[test]
    fn typical_lines() {
        let l = p("Jan  5 10:11:12 ip-10-1-128-166 systemd[1]: Started Session 1 of user root.").unwrap();
        assert_eq!(l.timestamp_ms, ms("2026-01-05T10:11:12Z"));
        assert_eq!(l.host, b"ip-10-1-128-166");
        assert_eq!(l.ident, b"systemd");
        assert_eq!(l.pid, Some(&b"1"[..]));
        assert_eq!(l.message, b"Started Session 1 of user root.");

        let l = p("Jan  5 09:00:00 host kernel: [    1.234] eth0: link up").unwrap();
        assert_eq!(
            (l.ident, l.pid, l.message),
            (&b"kernel"[..], None, &b"[    1.234] eth0: link up"[..])
        );

        let l = p("Jan  4 23:59:59 host sshd[12345]: Accepted publickey for ec2-user port 22: RSA").unwrap();
        assert_eq!(l.timestamp_ms, ms("2026-01-04T23:59:59Z"));
        assert_eq!(l.message, b"Accepted publickey for ec2-user port 22: RSA");

        let l = p("Jan 05 10:11:12 host /usr/bin/app.sh-2_x: ok").unwrap();
        assert_eq!(l.ident, b"/usr/bin/app.sh-2_x");
        // Single space before a one-digit day, and a lower-case month, are accepted too.
        assert!(p("Jan 5 10:11:12 host a: b").is_some());
        assert!(p("jan  5 10:11:12 host a: b").is_some());
    }

    #[test]
    fn tags_the_regex_does_not_capture() {
        // An ident with other characters is empty; the tag is skipped up to the colon.
        let l = p("Jan  5 10:11:12 host (sd-pam)[99]: x").unwrap();
        assert_eq!((l.ident, l.pid, l.message), (&b""[..], None, &b"x"[..]));
        // A non-numeric bracket is not a pid.
        let l = p("Jan  5 10:11:12 host app[main]: y").unwrap();
        assert_eq!((l.ident, l.pid, l.message), (&b"app"[..], None, &b"y"[..]));
        // No colon at all: the message follows the ident.
        let l = p("Jan  5 10:11:12 host some text without colon").unwrap();
        assert_eq!((l.ident, l.message), (&b"some"[..], &b"text without colon"[..]));
        // Empty host (two spaces) and empty remainder.
        let l = p("Jan  5 10:11:12  app: m").unwrap();
        assert_eq!((l.host, l.ident), (&b""[..], &b"app"[..]));
        let l = p("Jan  5 10:11:12 host ").unwrap();
        assert_eq!((l.ident, l.message), (&b""[..], &b""[..]));
        // Invalid UTF-8 in the message is kept for the repair step.
        assert_eq!(
            parse_syslog(b"Jan  5 10:11:12 h a: \xff", NOW).unwrap().message,
            b"\xff"
        );
    }

    #[test]
    fn year_inference() {
        // A December line read early in January belongs to the previous year.
        let now = ms("2026-01-01T00:00:10Z");
        let l = parse_syslog(b"Dec 31 23:59:59 h a: m", now).unwrap();
        assert_eq!(l.timestamp_ms, ms("2025-12-31T23:59:59Z"));
        // Up to one day ahead (clock skew) stays in the current year.
        let l = parse_syslog(b"Jan  6 10:12:00 h a: m", NOW).unwrap();
        assert_eq!(l.timestamp_ms, ms("2026-01-06T10:12:00Z"));
        let l = parse_syslog(b"Jan  6 10:12:01 h a: m", NOW).unwrap();
        assert_eq!(l.timestamp_ms, ms("2025-01-06T10:12:01Z"));
        // 29 February only exists in leap years: read in 2029 it is from 2028.
        let now = ms("2029-01-10T00:00:00Z");
        assert_eq!(
            parse_syslog(b"Feb 29 01:02:03 h a: m", now).unwrap().timestamp_ms,
            ms("2028-02-29T01:02:03Z")
        );
        assert!(parse_syslog(b"Feb 29 01:02:03 h a: m", ms("2026-06-01T00:00:00Z")).is_none());
    }

    #[test]
    fn non_matching_lines() {
        for s in [
            "",
            "random text",
            "Foo  5 10:11:12 host a: b",
            "Jan  5 10:11 host a: b",
            "Jan   5 10:11:12 host a: b",
            "Jan 32 10:11:12 host a: b",
            "Jan  0 10:11:12 host a: b",
            "Apr 31 10:11:12 host a: b",
            "Jan  5 24:11:12 host a: b",
            "Jan  5 10:60:12 host a: b",
            "Jan  5 1:11:12 host a: b",
            "Jan  5 10:11:12 host",
            "Jan  5 10:11:12",
            "2026-01-05T10:11:12Z stdout F x",
        ] {
            assert!(p(s).is_none(), "{s:?}");
        }
    }
}
