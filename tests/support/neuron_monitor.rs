//! A node-local AWS neuron-monitor (its Prometheus exporter): `GET /metrics` answers
//! `tests/fixtures/accel/neuron-monitor.txt` or what the test gives, anything else 404.
//!
//! The fixture is the exporter's format (`neuron-monitor-prometheus.py`; the families and labels
//! of `internal/neuron/neuron_monitor_scraper_test.go` in awscontainerinsightreceiver) on an
//! inf2.24xlarge: 6 devices of 2 cores, one runtime (`runtime_tag` 1024) on cores 0–3, ECC
//! counters of devices 0 and 1, the node's execution errors, status, latency percentiles and
//! runtime memory, and families kinsight ignores (`system_*`, Python's, `execution_*_created`).

use std::sync::{Arc, Mutex};

use super::fake_server::{FakeServer, Response};

/// The fixture exposition.
pub const NEURON_MONITOR_TEXT: &str = include_str!("../fixtures/accel/neuron-monitor.txt");

/// What the fake answers; the test changes it between scrapes.
#[derive(Clone)]
pub struct Answer(Arc<Mutex<(u16, String)>>);

impl Answer {
    pub fn set(&self, status: u16, body: impl Into<String>) {
        *self.0.lock().unwrap() = (status, body.into());
    }
}

/// A running fake neuron-monitor serving `text`; its URL is `{server.url()}/metrics`.
pub fn neuron_monitor(text: &str) -> (FakeServer, Answer) {
    let answer = Answer(Arc::new(Mutex::new((200, text.to_string()))));
    let current = answer.clone();
    let server = FakeServer::start(move |req| {
        if req.method == "GET" && req.path == "/metrics" {
            let (status, body) = current.0.lock().unwrap().clone();
            Response::new(status, "text/plain; version=0.0.4; charset=utf-8", body)
        } else {
            Response::text(404, "not found")
        }
    });
    (server, answer)
}
