//! Accelerated compute: the node-local exporters of GPU figures, read once an interval.
//!
//! Owns: the plain-HTTP scrape of NVIDIA's DCGM exporter (`/metrics`, Prometheus text, parsed by
//! the `prometheus-parse` crate) into typed per-GPU readings ([`dcgm`]), and the background
//! source that publishes them ([`AcceleratorSource`], read by the tick as a [`GpuView`]).
//! Must not: know metric names or dimension sets (that is `metrics::compute::gpu`), or block a
//! tick.
//!
//! Inputs: the exporter's URL (`kinsight.metrics.dcgm_exporter_url`, default
//! `http://$HOST_IP:9400/metrics`: dcgm-exporter's port, reached through the node's address
//! because kinsight does not run in the host network).
//!
//! The decision a newcomer would question: the node-local exporter, not Kubernetes service
//! discovery. Upstream's receiver discovers the `dcgm-exporter-service` Service and relies on
//! its node-local traffic policy; kinsight already runs on the node and asks the node directly,
//! which needs no list/watch of Services and no TLS set-up between two agents.

pub mod dcgm;
mod scrape;
mod source;

pub use scrape::{MAX_BODY_BYTES, ScrapeError};
pub use source::{AcceleratorSource, GpuScrape, GpuView, ScrapePlan, gpu_channel, scrape_dcgm};
