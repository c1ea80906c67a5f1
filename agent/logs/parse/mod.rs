//! Turning the bytes of container and host log files into records: pure, synchronous, no I/O.
//!
//! This module owns
//! - the two container log formats, CRI ([`parse_cri`]) and Docker `json-file` ([`parse_docker`]),
//!   and the per-file choice between them ([`LineParser`]);
//! - joining the pieces a runtime cut a long line into, per (file, stream) ([`Joiner`]);
//! - optional multiline rules over the joined records ([`Multiline`]);
//! - syslog lines of `/var/log/messages` and `/var/log/secure` ([`parse_syslog`]);
//! - the `CloudWatch` agent's `timestamp_format` for `collect_list` files ([`TimestampFormat`]);
//! - UTF-8 repair and cutting ([`repair`], [`utf8_floor`]).
//!
//! The caller (the tailer) owns files, offsets and clocks: it hands in complete lines with their
//! byte range and a monotonic `now`, and gets back records with the byte range they were built from
//! plus, from each stage, [`Joiner::pending_start`] / [`Multiline::pending_start`], the offset a
//! file's checkpoint must not pass while a record is still being assembled.
//!
//! The decision a newcomer may question: the stages hand records to a closure
//! (`push(…, |record| …)`) instead of returning them. A record borrows either the line it came from
//! (a full line with nothing pending, the common case, is never copied) or the stage's own buffers,
//! which are reused from record to record; one call can also complete two records (a timed-out one
//! and the current one). A closure expresses both without allocating per line, which the per-line
//! budget of the tailer does not allow.

mod cri;
mod detect;
mod docker;
mod host;
mod join;
mod line;
mod multiline;
mod record;
mod time;
mod timefmt;
mod utf8;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testkit;

pub use cri::{CriError, parse_cri};
pub use detect::{Format, LineError, LineParser};
pub use docker::{DockerError, parse_docker};
pub use host::{SyslogLine, parse_syslog};
pub use join::Joiner;
pub use line::{Line, Stream};
pub use multiline::{Multiline, MultilineRule, Preset};
pub use record::{CloseReason, Counters, Limits, Record};
pub use time::{TimestampError, days_from_civil, parse_rfc3339_ms};
pub use timefmt::{TimestampFormat, TimestampFormatError};
pub use utf8::{Repaired, repair, utf8_floor};
