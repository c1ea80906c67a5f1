//! Container, dataplane and host logs: discovery, tailing, rotation, checkpoints, parsing,
//! multiline, enrichment and routing to group and stream. Must not talk to AWS: records leave as
//! `ship::LogEvent`s, and outcomes come back through `ship::Acknowledge`.
//!
//! - `discover`: container log files below the pod logs directory, their `/var/log/containers`
//!   names, and the host files; every open confined to the host root;
//! - `collect`: the `CloudWatch` agent's `collect_list` files: patterns, groups, streams, events;
//! - `tail`: held files read in bounded rounds, rotation, deletion and truncation;
//! - `parse`: CRI and Docker `json-file` lines, partial-line joining, multiline rules, syslog;
//! - `encode` and `route`: the record shapes, groups and streams of the Container Insights set-ups;
//! - `settle`, `identity`, `checkpoint`: outcomes → commit points → the state directory;
//! - `watch`: inotify on the log directories, so that new files are found at once;
//! - `pipeline`: the task that runs it all.
//!
//! The decision a newcomer would question: a file offset is committed only after CloudWatch Logs
//! accepted everything before it, so the log files on the node are the only buffer; kinsight
//! keeps no second copy of log data on disk.

pub mod checkpoint;
pub mod collect;
pub mod discover;
pub mod encode;
pub mod identity;
pub mod journal;
pub mod parse;
pub mod pipeline;
pub mod route;
pub mod settle;
pub mod tail;
pub mod watch;

pub use pipeline::{LogPipeline, LogsError, Stop};
pub use settle::Settlements;
