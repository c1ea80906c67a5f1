//! A configuration from JSON as a pod would load it (`--output stdout`, node name `node`), and
//! the collector's settings for it on instance `i-0123456789abcdef0`. Included by path by the
//! metrics tests, which need nothing else of `support`.

#![allow(dead_code, reason = "each test includes this file and uses part of it")]

use kinsight::config::{self, Config, Inputs, OutputKind};
use kinsight::metrics::collect::Settings;
use kinsight::metrics::compute::NodeAttributes;

pub fn load(json: &str) -> Config {
    let inputs = Inputs {
        output_override: Some(OutputKind::Stdout),
        host_name_fallback: "node".into(),
        ..Inputs::default()
    };
    config::load_str(json, &inputs).unwrap()
}

pub fn settings(cfg: &Config, instance_type: &str) -> Settings {
    let attrs = NodeAttributes {
        cluster_name: cfg.cluster_name.clone(),
        node_name: cfg.node_name.clone(),
        instance_id: Some("i-0123456789abcdef0".into()),
        instance_type: Some(instance_type.into()),
    };
    Settings::from_config(cfg, attrs)
}
