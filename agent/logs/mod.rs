//! Container, dataplane and host logs: discovery, tailing, rotation, checkpoints, parsing,
//! multiline, enrichment and routing to group and stream. Must not talk to AWS: records leave as
//! `ship::LogEvent`s, and outcomes come back through `ship::Acknowledge`.
//!
//! Built so far: the parsers (`parse`: CRI and Docker `json-file` lines, partial-line joining,
//! multiline rules, syslog lines, UTF-8 repair), file identity (`identity`) and the checkpoint
//! store (`checkpoint`). The tailer that drives them is the next step.
//!
//! The decision a newcomer would question: a file offset is committed only after CloudWatch Logs
//! accepted everything before it, so the log files on the node are the only buffer; kinsight
//! keeps no second copy of log data on disk.

pub mod checkpoint;
pub mod identity;
pub mod parse;
