//! The one delivery interface, [`Output`], and the builder of the local outputs.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::config::OutputKind;
use crate::telemetry::Telemetry;

use super::payload::{Acknowledge, Datum, Leftover, LogEvent};
use super::{LocalOutput, ShipError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A background task an output needs, for the supervisor to run: its name (`ship::…`) and its
/// future, which ends when the output stops.
pub type OutputTask = (&'static str, BoxFuture<'static, ()>);

/// Where every payload goes: `stdout`, `dir:PATH` or `cloudwatch`. Each output carries all three
/// lanes, so any pipeline runs with any output, and one without an AWS account.
///
/// Outcomes: metric datums and performance events are fire-and-forget (an output counts what it
/// drops). Log events are acknowledged one by one through the [`Acknowledge`] the output was
/// built with.
pub trait Output: Send + Sync + std::fmt::Debug {
    /// `stdout`, `dir` or `cloudwatch`: the `output` label of the agent's own counters.
    fn name(&self) -> &'static str;

    /// One interval's metric datums. Never waits for the network. An error means a local output
    /// could not write them (counted).
    fn send_metrics(&self, datums: Vec<Datum>) -> Result<(), ShipError>;

    /// One interval's performance (EMF) events. Never waits for the network.
    fn send_performance(&self, events: Vec<LogEvent>) -> Result<(), ShipError>;

    /// Log events. Waits while the output holds as many unsettled bytes as it may
    /// (backpressure: the producer stops reading its files). Returns the vector emptied, for the
    /// producer's next batch (a fresh vector of a read round's events is over glibc's mmap
    /// threshold, and cost its page faults every round), or the events back, unsent, if the
    /// output stopped meanwhile.
    fn send_logs(&self, events: Vec<LogEvent>) -> BoxFuture<'_, Result<Vec<LogEvent>, Vec<LogEvent>>>;

    /// Sends the log events held now, waiting at most until `deadline`; the output keeps
    /// running. Returns whether every one was settled by then (a reload waits on this before it
    /// replaces the log pipeline).
    fn flush_logs(&self, deadline: tokio::time::Instant) -> BoxFuture<'_, bool>;

    /// Gives up the log events held now, queued or being sent, without settling them, and
    /// returns how many; the output keeps running. Their producer reads them again (a reload
    /// that replaced the log pipeline after `flush_logs` ran out of time), so they are sent once.
    fn withdraw_logs(&self) -> BoxFuture<'_, usize>;

    /// Sends what is queued, waiting at most until `deadline`, then stops. What was left is
    /// counted as dropped (datums, performance events) or handed back (log events).
    fn flush(&self, deadline: tokio::time::Instant) -> BoxFuture<'_, Leftover>;
}

/// Builds a local output (`stdout`, `dir:PATH`); `ack` hears the outcome of every log event.
pub fn build_local(
    kind: &OutputKind,
    telemetry: &Telemetry,
    ack: Option<Arc<dyn Acknowledge>>,
) -> Result<Box<dyn Output>, ShipError> {
    match kind {
        OutputKind::Stdout => Ok(Box::new(LocalOutput::stdout(telemetry.clone(), ack))),
        OutputKind::Dir(path) => Ok(Box::new(LocalOutput::dir(path, telemetry.clone(), ack)?)),
        OutputKind::Cloudwatch => Err(ShipError::NotLocal),
    }
}
