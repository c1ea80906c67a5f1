//! Encoders from records to what `ship` sends: PutMetricData datums ([`datum`]).

pub mod datum;
