//! The day log fixtures are dated. CloudWatch Logs takes events from the last 14 days up to
//! 2 hours ahead (`PutLogEvents` API reference) and kinsight drops the others before sending, so
//! fixtures with a fixed date would fail two weeks after they were written; today's 10:00 would be
//! ahead before 08:00. Yesterday is always inside the window.

use std::time::{SystemTime, UNIX_EPOCH};

use super::fake_server::civil_from_days;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A calendar day (UTC).
#[derive(Debug, Clone, Copy)]
pub struct Date {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    /// Its midnight, in milliseconds since the epoch.
    pub midnight_ms: i64,
}

impl Date {
    /// Yesterday, UTC.
    pub fn yesterday() -> Date {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let days = i64::try_from(secs / 86_400).expect("days fit") - 1;
        let (year, month, day) = civil_from_days(days);
        Date {
            year,
            month,
            day,
            midnight_ms: days * 86_400_000,
        }
    }

    fn month_name(&self) -> &'static str {
        MONTHS[self.month as usize - 1]
    }

    /// `2026-12-06`, as RFC 3339 dates start.
    pub fn iso(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    /// `06/Dec/2026`, as the Common Log Format writes it.
    pub fn clf(&self) -> String {
        format!("{:02}/{}/{:04}", self.day, self.month_name(), self.year)
    }

    /// `Dec  6`, as syslog writes it (the day padded to two characters with a space).
    pub fn syslog(&self) -> String {
        format!("{} {:>2}", self.month_name(), self.day)
    }

    /// `text` with the fixture date 2026-12-06, in each of the forms above, moved to this day.
    pub fn shift(&self, text: &str) -> String {
        text.replace("2026-12-06", &self.iso())
            .replace("06/Dec/2026", &self.clf())
            .replace("Dec  6", &self.syslog())
    }
}
