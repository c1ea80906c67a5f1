//! Fuzz-style property tests of the config loader: arbitrary bytes, and arbitrary JSON made of
//! the keys the loader knows, never panic; the errors printed stay at [`MAX_PRINTED`] lines plus
//! one, and there are never more errors than the document has values. See `host/proptests.rs`
//! for the runner and `scripts/fuzz`.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;
use crate::host::proptests::fuzz;

/// Keys of every section, so that the walk goes deep rather than stopping at the first
/// unknown key.
const KEYS: &[&str] = &[
    "agent",
    "logs",
    "kinsight",
    "metrics",
    "metrics_collected",
    "kubernetes",
    "cluster_name",
    "region",
    "credentials",
    "role_arn",
    "endpoint_override",
    "metrics_collection_interval",
    "force_flush_interval",
    "logs_collected",
    "files",
    "collect_list",
    "file_path",
    "log_group_name",
    "log_stream_name",
    "telemetry",
    "listen_address",
    "paths",
    "state_dir",
    "host_files",
    "multiline",
    "first_line_regex",
    "retention_days",
    "application_log_group",
    "output",
    "node_name",
    "destination",
    "metadata_source",
    "identity",
    "require_workload_identity",
    "debug",
    "enhanced_container_insights",
    "timestamp_format",
    "filters",
    "type",
    "expression",
    "encoding",
];

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,24}".prop_map(Value::String),
        prop::sample::select(
            &[
                "/var/log/../etc/shadow",
                "http://evil.example\\@localhost",
                "https://u:p@h",
                "arn:aws:iam::123456789012:role/x",
                "us-east-1",
                "dir:/tmp/x",
                "file:/p.json",
                "0.0.0.0:9464",
                "(unclosed",
                "%Y-%m-%d",
            ][..]
        )
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..8).prop_map(|kv| {
                let map: Map<String, Value> = kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                Value::Object(map)
            }),
        ]
    })
}

fn values_in(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(values_in).sum(),
        Value::Object(o) => o.values().map(values_in).sum(),
        _ => 0,
    }
}

fn local() -> Inputs {
    Inputs {
        output_override: Some(OutputKind::Stdout),
        host_name_fallback: "n".into(),
        ..Inputs::default()
    }
}

#[test]
fn the_loader_never_panics_on_bytes() {
    fuzz("config_bytes", crate::host::proptests::any_text(), |text| {
        if let Err(e) = load_str(&text, &local()) {
            prop_assert!(e.to_string().lines().count() <= MAX_PRINTED + 1);
        }
        Ok(())
    });
}

#[test]
fn the_loader_never_panics_on_json_of_its_own_keys() {
    fuzz("config_json", json(), |doc| {
        let text = doc.to_string();
        if let Err(e) = load_str(&text, &local()) {
            prop_assert!(
                e.len() <= 2 * values_in(&doc) + 4,
                "{} errors for {} values",
                e.len(),
                values_in(&doc)
            );
            prop_assert!(e.to_string().lines().count() <= MAX_PRINTED + 1);
        }
        Ok(())
    });
}
