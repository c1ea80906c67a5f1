//! Encoders from records to what `ship` sends: PutMetricData datums ([`datum`]) and EMF
//! performance events ([`emf`]).

pub mod datum;
pub mod emf;
