//! The `CloudWatch` agent's `timestamp_format` (`collect_list` entries): a strftime-like pattern
//! that finds the time in a log line and makes it the event's timestamp.
//!
//! The agent turns the pattern into a regular expression that finds the time anywhere in the line
//! and a Go layout that parses it (`aws/amazon-cloudwatch-agent`:
//! `translator/translate/logs/logs_collected/files/collect_list/ruleTimestampFormat.go`, then
//! `plugins/inputs/logfile/fileconfig.go` `timestampFromLogLine`). The same directives are
//! accepted here: `%Y %y %m %-m %B %b %d %-d %A %a %H %I %-I %M %-M %S %-S %p %f %Z %z`, and
//! `%%` for a percent sign; any other character matches itself. Compiled once into one regex with
//! a named group per directive, so a line is searched once and its fields read from the groups.
//!
//! Differences from the agent, each on the side of reading more lines correctly:
//! - month and weekday names match in any case and at their real lengths (the agent's regex
//!   takes `%B` as exactly 7 word characters, so it finds `January` but not `May`);
//! - `%z` also takes `Z` and `±hh:mm`;
//! - a date that does not exist (31 April) is not a timestamp, where Go would fail the same way.
//!
//! Like the agent: a pattern without a year takes the current one, or the previous one when that
//! would put the line more than 30 days in the future (a December line read in January); without
//! `%z`/`%Z` the time is in the configured zone (UTC, or "local", which is UTC in kinsight's
//! image: it has no zone database, as the agent's does not); `%Z` names are read as UTC, which is
//! what Go does with an abbreviation it does not know; fractions are truncated to milliseconds.

use std::fmt::Write as _;
use std::ops::Range;

use regex::Regex;

use super::time::{days_from_civil, days_in_month, year_of_epoch_ms};

const MS_PER_DAY: i64 = 86_400_000;

/// Why a `timestamp_format` cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TimestampFormatError {
    #[error(
        "unknown directive %{0} (supported: %Y %y %m %-m %B %b %d %-d %A %a %H %I %-I %M %-M %S %-S %p %f %Z %z %%)"
    )]
    Unknown(String),
    #[error("directive {0} appears twice")]
    Twice(&'static str),
    #[error("the pattern ends with a lone %")]
    Dangling,
    #[error("the pattern has no directive, so it cannot find a time")]
    Empty,
}

/// One directive: its group name in the regex and the pattern it matches.
struct Directive {
    spec: &'static str,
    group: &'static str,
    pattern: &'static str,
}

const DIRECTIVES: [Directive; 21] = [
    d("%Y", "Y", r"\d{4}"),
    d("%y", "y", r"\d{2}"),
    d("%m", "m", r"\d{2}"),
    d("%-m", "m", r" ?\d{1,2}"),
    d("%B", "B", r"[A-Za-z]{3,9}"),
    d("%b", "b", r"[A-Za-z]{3}"),
    d("%d", "d", r"\d{2}"),
    d("%-d", "d", r" ?\d{1,2}"),
    d("%A", "A", r"[A-Za-z]{6,9}"),
    d("%a", "a", r"[A-Za-z]{3}"),
    d("%H", "H", r"\d{2}"),
    d("%I", "I", r"\d{2}"),
    d("%-I", "I", r"\d{1,2}"),
    d("%M", "M", r"\d{2}"),
    d("%-M", "M", r"\d{1,2}"),
    d("%S", "S", r"\d{2}"),
    d("%-S", "S", r"\d{1,2}"),
    d("%p", "p", r"[AaPp][Mm]"),
    d("%f", "f", r"\d{1,9}"),
    d("%Z", "Z", r"[A-Za-z]{1,5}"),
    d("%z", "z", r"Z|[+-]\d{2}:?\d{2}"),
];

const fn d(spec: &'static str, group: &'static str, pattern: &'static str) -> Directive {
    Directive { spec, group, pattern }
}

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A compiled `timestamp_format`.
#[derive(Debug, Clone)]
pub struct TimestampFormat {
    /// The pattern as configured.
    pub source: String,
    re: Regex,
}

/// A time found in a line: UTC milliseconds and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub timestamp_ms: i64,
    pub span: Range<usize>,
}

impl TimestampFormat {
    /// Compiles `format`; an error says which directive is wrong.
    pub fn compile(format: &str) -> Result<TimestampFormat, TimestampFormatError> {
        let mut re = String::from("(?P<ts>");
        let mut seen: Vec<&'static str> = Vec::new();
        let mut rest = format;
        while let Some(c) = rest.chars().next() {
            if c != '%' {
                let _ = write!(re, "{}", regex::escape(&c.to_string()));
                rest = &rest[c.len_utf8()..];
                continue;
            }
            if rest.starts_with("%%") {
                re.push('%');
                rest = &rest[2..];
                continue;
            }
            let Some(dir) = DIRECTIVES.iter().find(|d| rest.starts_with(d.spec)) else {
                let spec: String = rest.chars().skip(1).take(2).collect();
                return Err(if spec.is_empty() {
                    TimestampFormatError::Dangling
                } else {
                    TimestampFormatError::Unknown(
                        spec.chars().take(if spec.starts_with('-') { 2 } else { 1 }).collect(),
                    )
                });
            };
            if seen.contains(&dir.group) {
                return Err(TimestampFormatError::Twice(dir.spec));
            }
            seen.push(dir.group);
            // A leading space-padded field: the agent drops the optional space there too.
            let pattern = if re.len() == "(?P<ts>".len() {
                dir.pattern.trim_start_matches(" ?")
            } else {
                dir.pattern
            };
            let _ = write!(re, "(?P<{}>{pattern})", dir.group);
            rest = &rest[dir.spec.len()..];
        }
        if seen.is_empty() {
            return Err(TimestampFormatError::Empty);
        }
        re.push(')');
        // Built only from escaped literals and the fixed directive patterns above, with each
        // group name at most once: it always compiles.
        let re = Regex::new(&re).map_err(|_| TimestampFormatError::Empty)?;
        Ok(TimestampFormat {
            source: format.to_string(),
            re,
        })
    }

    /// The regex that finds the time (the agent's `{timestamp_format}` multiline start pattern).
    pub fn pattern(&self) -> &str {
        self.re.as_str()
    }

    /// The first time in `text` that is a real date, placed relative to `now_ms` (UTC
    /// milliseconds) when the pattern has no year.
    pub fn find(&self, text: &str, now_ms: i64) -> Option<Found> {
        let caps = self.re.captures(text)?;
        let whole = caps.name("ts")?;
        let get = |g: &str| caps.name(g).map(|m| m.as_str().trim_start());
        let num = |g: &str| get(g).and_then(|s| s.parse::<u32>().ok());
        let month = match (num("m"), get("B").or(get("b"))) {
            (Some(m), _) => m,
            (None, Some(name)) => month_of(name)?,
            (None, None) => 1,
        };
        let day = num("d").unwrap_or(1);
        let mut hour = num("H").unwrap_or(0);
        if let Some(h12) = num("I") {
            if !(1..=12).contains(&h12) {
                return None;
            }
            let pm = get("p").is_some_and(|p| p.eq_ignore_ascii_case("pm"));
            hour = h12 % 12 + if pm { 12 } else { 0 };
        }
        let minute = num("M").unwrap_or(0);
        let second = num("S").unwrap_or(0);
        let millis = get("f").map_or(0, |f| {
            let digits: String = f.chars().chain("000".chars()).take(3).collect();
            digits.parse::<i64>().unwrap_or(0)
        });
        if month == 0 || month > 12 || day == 0 || hour > 23 || minute > 59 || second > 60 {
            return None;
        }
        let offset_ms = match get("z") {
            Some(z) => zone_offset_ms(z)?,
            None => 0,
        };
        let secs = i64::from(hour * 3600 + minute * 60 + second);
        let at = |year: i64| {
            (day <= days_in_month(year, month))
                .then(|| days_from_civil(year, month, day) * MS_PER_DAY + secs * 1000 + millis - offset_ms)
        };
        let timestamp_ms = match (num("Y"), num("y")) {
            (Some(y), _) => at(i64::from(y))?,
            // Go's two-digit years: 69–99 are 1900s, 00–68 are 2000s.
            (None, Some(y)) => at(i64::from(if y >= 69 { 1900 + y } else { 2000 + y }))?,
            (None, None) => {
                let year = year_of_epoch_ms(now_ms);
                match at(year) {
                    Some(t) if t - now_ms <= 30 * MS_PER_DAY => t,
                    _ => at(year - 1)?,
                }
            }
        };
        Some(Found {
            timestamp_ms,
            span: whole.range(),
        })
    }
}

fn month_of(name: &str) -> Option<u32> {
    let lower = name.to_ascii_lowercase();
    let i = MONTHS
        .iter()
        .position(|m| *m == lower || (lower.len() == 3 && m.starts_with(&lower)))?;
    u32::try_from(i + 1).ok()
}

/// `Z`, `±hhmm` or `±hh:mm` as milliseconds east of UTC.
fn zone_offset_ms(z: &str) -> Option<i64> {
    if z == "Z" {
        return Some(0);
    }
    let sign = if z.starts_with('-') { -1 } else { 1 };
    let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
    let (h, m) = digits.split_at(2);
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    (h <= 23 && m <= 59).then_some(sign * (h * 3600 + m * 60) * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-06T12:00:00Z.
    const NOW: i64 = 1_796_558_400_000;

    #[test]
    fn now_is_what_it_says() {
        assert_eq!(NOW, ms("2026-12-06T12:00:00Z"));
    }

    fn ms(s: &str) -> i64 {
        super::super::parse_rfc3339_ms(s.as_bytes()).unwrap()
    }

    #[test]
    fn the_agents_documented_formats_read_their_lines() {
        let cases = [
            (
                "%Y-%m-%d %H:%M:%S",
                "2026-12-01 08:09:10 INFO up",
                "2026-12-01T08:09:10Z",
            ),
            (
                "%b %d %H:%M:%S",
                "Dec 01 08:09:10 host sshd[1]: ok",
                "2026-12-01T08:09:10Z",
            ),
            ("%b %-d %H:%M:%S", "Dec  1 08:09:10 host x", "2026-12-01T08:09:10Z"),
            (
                "%d/%b/%Y:%H:%M:%S %z",
                "1.2.3.4 - - [01/Dec/2026:08:09:10 +0100] \"GET /\"",
                "2026-12-01T07:09:10Z",
            ),
            (
                "%Y-%m-%dT%H:%M:%S.%fZ",
                "2026-12-01T08:09:10.123456Z level=info",
                "2026-12-01T08:09:10.123Z",
            ),
            (
                "%Y-%m-%d %I:%M:%S %p",
                "2026-12-01 08:09:10 PM x",
                "2026-12-01T20:09:10Z",
            ),
            (
                "%Y-%m-%d %I:%M:%S %p",
                "2026-12-01 12:09:10 AM x",
                "2026-12-01T00:09:10Z",
            ),
            (
                "%A, %B %d %Y %H:%M:%S",
                "Tuesday, May 05 2026 01:02:03",
                "2026-05-05T01:02:03Z",
            ),
            ("%y%m%d %H:%M:%S.%f", "261201 08:09:10.5", "2026-12-01T08:09:10.500Z"),
            (
                "%Y-%m-%d %H:%M:%S %z",
                "2026-12-01 08:09:10 -05:30",
                "2026-12-01T13:39:10Z",
            ),
        ];
        for (format, line, want) in cases {
            let f = TimestampFormat::compile(format).unwrap();
            let got = f.find(line, NOW).unwrap_or_else(|| panic!("{format} in {line}"));
            assert_eq!(got.timestamp_ms, ms(want), "{format} in {line}");
        }
    }

    #[test]
    fn the_span_is_the_time_itself() {
        let f = TimestampFormat::compile("[%Y-%m-%d %H:%M:%S]").unwrap();
        let line = "x [2026-12-01 08:09:10] y";
        let found = f.find(line, NOW).unwrap();
        assert_eq!(&line[found.span], "[2026-12-01 08:09:10]");
    }

    #[test]
    fn a_year_less_time_is_placed_in_the_last_twelve_months() {
        let f = TimestampFormat::compile("%b %d %H:%M:%S").unwrap();
        // In December, a January line is from this year (11 months back), a line from late
        // December of "next" year cannot be: 2026.
        assert_eq!(
            f.find("Jan 02 00:00:00", NOW).unwrap().timestamp_ms,
            ms("2026-01-02T00:00:00Z")
        );
        // In early January, a late-December line is from last year.
        let jan = ms("2027-01-02T00:00:00Z");
        assert_eq!(
            f.find("Dec 31 23:00:00", jan).unwrap().timestamp_ms,
            ms("2026-12-31T23:00:00Z")
        );
    }

    #[test]
    fn lines_without_a_real_time_have_none() {
        let f = TimestampFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
        for line in [
            "no time here",
            "2026-04-31 00:00:00",
            "2026-12-01 24:00:00",
            "2026-13-01 00:00:00",
            "",
        ] {
            assert!(f.find(line, NOW).is_none(), "{line}");
        }
        let f = TimestampFormat::compile("%b %d").unwrap();
        assert!(f.find("Foo 01", NOW).is_none());
    }

    #[test]
    fn bad_formats_say_what_is_wrong() {
        assert_eq!(
            TimestampFormat::compile("%Y-%Q").unwrap_err(),
            TimestampFormatError::Unknown("Q".into())
        );
        assert_eq!(
            TimestampFormat::compile("%Y %-q").unwrap_err(),
            TimestampFormatError::Unknown("-q".into())
        );
        assert_eq!(
            TimestampFormat::compile("%Y %").unwrap_err(),
            TimestampFormatError::Dangling
        );
        assert_eq!(
            TimestampFormat::compile("%d %-d").unwrap_err(),
            TimestampFormatError::Twice("%-d")
        );
        assert_eq!(
            TimestampFormat::compile("plain").unwrap_err(),
            TimestampFormatError::Empty
        );
        // Regex metacharacters in the literal part are literal.
        let f = TimestampFormat::compile("(%H.%M)").unwrap();
        assert!(f.find("(08x09)", NOW).is_none());
        assert!(f.find("(08.09)", NOW).is_some());
        assert_eq!(f.find("100%", NOW), None);
        assert!(TimestampFormat::compile("%H%%").unwrap().find("07%", NOW).is_some());
    }
}
