//! Samples → rates → the Container Insights record set → encoders.
//!
//! Owns: the rate rules, the records and their fields, the static declaration table "metric
//! name → unit, dimension sets", and the encoders (PutMetricData datums; EMF events come with
//! the metrics issue). Must not: talk to AWS.
//!
//! Inputs: a [`crate::host::Root`] and [`crate::host::CgroupMode`] (every read goes through
//! them), a [`crate::host::Clock`], and the validated config. Output: plain values
//! ([`Datum`]) that `ship` sends; no AWS type appears here.
//!
//! The decision a newcomer would question: a rate that cannot be computed (first tick, counter
//! reset, Δt ≤ 50 µs) makes the field *absent*, and every field derived from it is absent too.
//! Absent is not zero (trap 5): a zero would draw a false dip on every dashboard.

pub mod collect;
pub mod compute;
pub mod declare;
pub mod encode;
pub mod rate;
pub mod record;
pub mod sample;
pub mod series;
pub mod tick;
pub mod volumes;

pub use collect::{Collector, Cycle};
pub use encode::datum::{Datum, Unit};
pub use record::{Record, RecordType};
