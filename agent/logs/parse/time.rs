//! RFC 3339 timestamps as container runtimes write them, to UTC epoch milliseconds.
//!
//! Runtimes format with Go's `time.RFC3339Nano`, which trims trailing zeros of the fraction
//! (`…:12.2Z`, `…:12Z`) and writes the node's offset (`Z`, or `+01:00` on a node whose zone is not
//! UTC). Kubelet reads them back with the layout `2006-01-02T15:04:05.999999999Z07:00`
//! (`kubernetes/kubernetes: pkg/kubelet/kuberuntime/logs/logs.go`, `parseCRILog`), so this parser
//! accepts exactly that shape: 0–9 fraction digits and `Z` or `±hh:mm`. The date arithmetic is done
//! by hand (no date crate) because it is a few lines and sits on the per-line hot path.

use std::fmt;

/// Why a timestamp was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// The text does not have the `YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)` shape.
    Layout,
    /// The shape is right but a field is out of range (month 13, 31 April, hour 24, …).
    OutOfRange,
}

impl fmt::Display for TimestampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimestampError::Layout => "timestamp is not RFC 3339 (YYYY-MM-DDThh:mm:ss[.fraction](Z|+hh:mm))",
            TimestampError::OutOfRange => "timestamp has a field out of range",
        })
    }
}

impl std::error::Error for TimestampError {}

const MS_PER_DAY: i64 = 86_400_000;

/// `SCALE[n]` turns an `n`-digit fraction into nanoseconds.
const SCALE: [u32; 10] = [
    1_000_000_000,
    100_000_000,
    10_000_000,
    1_000_000,
    100_000,
    10_000,
    1_000,
    100,
    10,
    1,
];

/// Parses an RFC 3339 timestamp with 0–9 fraction digits and a `Z` or `±hh:mm` offset into UTC
/// milliseconds since the epoch, truncating the fraction (never rounding: `…12.9999Z` is still in
/// second 12, which keeps a record's millisecond consistent with the `time` string it carries).
pub fn parse_rfc3339_ms(s: &[u8]) -> Result<i64, TimestampError> {
    // Fixed part: "YYYY-MM-DDThh:mm:ss" is 19 bytes.
    if s.len() < 20 {
        return Err(TimestampError::Layout);
    }
    let year = digits(&s[0..4])?;
    let month = digits(&s[5..7])?;
    let day = digits(&s[8..10])?;
    let hour = digits(&s[11..13])?;
    let minute = digits(&s[14..16])?;
    let second = digits(&s[17..19])?;
    if s[4] != b'-' || s[7] != b'-' || s[10] != b'T' || s[13] != b':' || s[16] != b':' {
        return Err(TimestampError::Layout);
    }
    let mut rest = &s[19..];
    let mut nanos: u32 = 0;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|b| b.is_ascii_digit()).count();
        // Go's layout ".999999999" needs at least one digit after the dot and reads at most nine.
        if n == 0 || n > 9 {
            return Err(TimestampError::Layout);
        }
        // Scale the digits read to nanoseconds: ".2" is 200_000_000 ns.
        nanos = digits(&tail[..n])? * SCALE[n];
        rest = &tail[n..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::OutOfRange);
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return Err(TimestampError::Layout),
    };
    // Go's time.Parse rejects second 60 as well, so a leap second is not a valid runtime time.
    if !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return Err(TimestampError::OutOfRange);
    }
    let year = i64::from(year);
    if day == 0 || day > days_in_month(year, month) {
        return Err(TimestampError::OutOfRange);
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Ok(secs * 1000 + i64::from(nanos / 1_000_000))
}

/// Reads a run of ASCII digits as a number; anything else is a layout error.
fn digits(b: &[u8]) -> Result<u32, TimestampError> {
    b.iter().try_fold(0u32, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + u32::from(c - b'0'))
        } else {
            Err(TimestampError::Layout)
        }
    })
}

/// Whether `year` is a Gregorian leap year.
pub fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// Number of days of `month` (1–12) in `year`; 0 for a month out of range.
pub fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (month 1–12, day 1–31).
///
/// Howard Hinnant's `days_from_civil` (<https://howardhinnant.github.io/date_algorithms.html>):
/// counting years from March makes the leap day the last day of the "year", so the day of the
/// year is a closed formula of the month.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

/// The Gregorian year containing `ms` milliseconds since the epoch (UTC).
///
/// The inverse half of Hinnant's algorithms, reduced to the year, which is all the syslog parser
/// needs to place a year-less timestamp.
pub fn year_of_epoch_ms(ms: i64) -> i64 {
    let z = ms.div_euclid(MS_PER_DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], counted from 1 March
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let year = yoe + era * 400;
    // January and February belong to the next civil year in the March-based count.
    if mp >= 10 { year + 1 } else { year }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> Result<i64, TimestampError> {
        parse_rfc3339_ms(s.as_bytes())
    }

    #[test]
    fn oracle_values() {
        // The values of the test oracle (fake clock 2026-01-05T10:12:00Z = 1_767_607_920_000).
        assert_eq!(ms("2026-01-05T10:12:00Z"), Ok(1_767_607_920_000));
        assert_eq!(ms("2026-01-05T10:11:12.2Z"), Ok(1_767_607_872_200));
        assert_eq!(ms("2026-01-05T10:11:12.123456789Z"), Ok(1_767_607_872_123));
        assert_eq!(ms("2026-01-05T10:11:13+01:00"), Ok(1_767_604_273_000));
        assert_eq!(ms("2026-01-05T10:11:14.2Z"), Ok(1_767_607_874_200));
    }

    #[test]
    fn fraction_lengths_truncate() {
        let base = 1_767_607_872_000;
        assert_eq!(ms("2026-01-05T10:11:12Z"), Ok(base));
        assert_eq!(ms("2026-01-05T10:11:12.5Z"), Ok(base + 500));
        assert_eq!(ms("2026-01-05T10:11:12.45Z"), Ok(base + 450));
        assert_eq!(ms("2026-01-05T10:11:12.123Z"), Ok(base + 123));
        assert_eq!(ms("2026-01-05T10:11:12.1239Z"), Ok(base + 123));
        assert_eq!(ms("2026-01-05T10:11:12.999999999Z"), Ok(base + 999));
        assert_eq!(ms("2026-01-05T10:11:12.000000001Z"), Ok(base));
        assert_eq!(ms("2026-01-05T10:11:12.Z"), Err(TimestampError::Layout));
        assert_eq!(ms("2026-01-05T10:11:12.1234567891Z"), Err(TimestampError::Layout));
    }

    #[test]
    fn offsets() {
        let utc = ms("2026-01-05T08:11:12Z").unwrap();
        assert_eq!(ms("2026-01-05T10:11:12+02:00"), Ok(utc));
        assert_eq!(ms("2026-01-05T06:11:12-02:00"), Ok(utc));
        assert_eq!(ms("2026-01-05T13:41:12+05:30"), Ok(utc));
        assert_eq!(ms("2026-01-05T08:11:12+00:00"), Ok(utc));
        assert_eq!(ms("2026-01-05T08:11:12-00:00"), Ok(utc));
        // The offset can move the instant across a day and a year boundary.
        assert_eq!(ms("2026-01-01T00:30:00+01:00"), ms("2025-12-31T23:30:00Z"));
        assert_eq!(ms("2026-01-05T10:11:12.5+02:00"), Ok(utc + 500));
    }

    #[test]
    fn bad_layouts() {
        for s in [
            "",
            "2026-01-05",
            "2026-01-05T10:11:12",
            "2026-01-05 10:11:12Z",
            "2026-01-05t10:11:12Z",
            "2026-01-05T10:11:12z",
            "2026-1-05T10:11:12Z",
            "2026-01-05T10:11:12+0200",
            "2026-01-05T10:11:12+02",
            "2026-01-05T10:11:12+02:00Z",
            "2026-01-05T10:11:12ZZ",
            "2026-01-05T10:11:12.12a4Z",
            "+2026-01-05T10:11:12Z",
            "2026/01/05T10:11:12Z",
        ] {
            assert_eq!(ms(s), Err(TimestampError::Layout), "{s}");
        }
    }

    #[test]
    fn out_of_range() {
        for s in [
            "2026-13-05T10:11:12Z",
            "2026-00-05T10:11:12Z",
            "2026-04-31T10:11:12Z",
            "2026-02-29T10:11:12Z",
            "2026-01-00T10:11:12Z",
            "2026-01-05T24:11:12Z",
            "2026-01-05T10:60:12Z",
            "2026-01-05T10:11:60Z",
            "2026-01-05T10:11:12+24:00",
            "2026-01-05T10:11:12+02:60",
        ] {
            assert_eq!(ms(s), Err(TimestampError::OutOfRange), "{s}");
        }
        assert!(ms("2024-02-29T10:11:12Z").is_ok());
        assert!(ms("2000-02-29T10:11:12Z").is_ok());
        assert_eq!(ms("1900-02-29T10:11:12Z"), Err(TimestampError::OutOfRange));
    }

    #[test]
    fn epoch_edges() {
        assert_eq!(ms("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(ms("1969-12-31T23:59:59.5Z"), Ok(-500));
        assert_eq!(ms("0000-01-01T00:00:00Z"), Ok(-62_167_219_200_000));
        assert_eq!(ms("9999-12-31T23:59:59.999Z"), Ok(253_402_300_799_999));
    }

    #[test]
    fn civil_round_trip() {
        // Every day of four centuries (covers the 100- and 400-year rules) maps to consecutive days.
        let mut expected = days_from_civil(1900, 1, 1);
        for year in 1900..2300 {
            for month in 1..=12 {
                for day in 1..=days_in_month(year, month) {
                    assert_eq!(days_from_civil(year, month, day), expected);
                    assert_eq!(year_of_epoch_ms(expected * MS_PER_DAY), year);
                    assert_eq!(year_of_epoch_ms(expected * MS_PER_DAY + MS_PER_DAY - 1), year);
                    expected += 1;
                }
            }
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(year_of_epoch_ms(-1), 1969);
    }
}
