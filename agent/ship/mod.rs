//! Where batches go: the one [`Sink`] trait and its implementations.
//!
//! Owns: the local outputs (`stdout`, `dir:PATH`) and, with the metrics and logs issues, the
//! CloudWatch and CloudWatch Logs clients with batching, retries and throttling. Must not:
//! parse or enrich.
//!
//! The local outputs write JSON lines, one per item, exactly what would be sent; the format is
//! a contract that tests and users rely on (README "Output format").

pub mod cloudwatch;
pub mod cloudwatch_logs;
mod dir;
mod error;
pub mod json_lines;
mod output;
mod stdout;

pub use cloudwatch::{CloudwatchMetrics, CloudwatchSink, build_cloudwatch};
pub use cloudwatch_logs::EmfLogs;
pub use dir::DirSink;
pub use error::ShipError;
pub use output::{Sink, build};
pub use stdout::StdoutSink;
