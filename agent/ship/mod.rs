//! Where payloads go: the one [`Output`] interface, its three implementations (`stdout`,
//! `dir:PATH`, `cloudwatch`), and the retry policy they share.
//!
//! Owns: the payload types producers hand over ([`Datum`], [`LogEvent`]) and the outcomes they
//! get back ([`Outcome`] through [`Acknowledge`]); the local outputs; the CloudWatch and
//! CloudWatch Logs clients with batching, retries and throttling. Must not: parse or enrich.
//!
//! The local outputs write JSON lines, one per item, exactly what would be sent; the format is
//! a contract that tests and users rely on (README "Output format").

pub mod cloudwatch;
pub mod cloudwatch_logs;
mod error;
pub mod json_lines;
mod local;
mod output;
pub mod payload;
pub mod retry;

pub use cloudwatch::{CloudwatchMetrics, CloudwatchOutput, build_cloudwatch};
pub use error::ShipError;
pub use local::{EMF_FILE, LOGS_FILE, LocalOutput, METRICS_FILE};
pub use output::{BoxFuture, Output, OutputTask, build_local};
pub use payload::{Acknowledge, Datum, DropReason, Leftover, LogEvent, Message, Outcome, Rejection};
