//! A node-local NVIDIA DCGM exporter: `GET /metrics` answers the Prometheus text of
//! `tests/fixtures/accel/dcgm-exporter.txt` (dcgm-exporter 3.x with `--kubernetes`: labels
//! `gpu`, `UUID`, `device`, `modelName`, `Hostname`, `DCGM_FI_DRIVER_VERSION`, `container`,
//! `namespace`, `pod`; two A10G GPUs, `nvidia0` assigned to pod `ns0/web-7d4b9c8f6d-00000`
//! container `c0`, `nvidia1` idle), anything else 404.

use super::fake_server::{FakeServer, Response};

/// The fixture exposition.
pub const DCGM_EXPORTER_TEXT: &str = include_str!("../fixtures/accel/dcgm-exporter.txt");

/// A running fake exporter serving `text`; its URL is `{server.url()}/metrics`.
pub fn dcgm_exporter(text: &'static str) -> FakeServer {
    FakeServer::start(move |req| {
        if req.method == "GET" && req.path == "/metrics" {
            Response::new(200, "text/plain; version=0.0.4; charset=utf-8", text)
        } else {
            Response::text(404, "not found")
        }
    })
}
