//! kinsight: one agent for Amazon CloudWatch Container Insights on EKS.
//!
//! The module map is in docs/architecture.md; `main.rs` is a thin CLI over
//! [`app`], which takes everything from outside (host root, environment, output) as values.

pub mod app;
pub mod auth;
pub mod config;
pub mod host;
pub mod kube;
pub mod logs;
pub mod metrics;
pub mod runtime;
pub mod ship;
pub mod telemetry;
