//! (metric, dimension set) pairs: what a cycle sends, and what the CloudWatch agent declares
//! (`tests/fixtures/upstream/declarations.json`). Included by path by the declaration tests,
//! which need nothing else of `support`.

#![allow(dead_code, reason = "each test includes this file and uses part of it")]

use std::collections::BTreeSet;

use kinsight::metrics::{Cycle, declare};
use serde_json::Value;

/// A metric (or upstream selector) and its dimension names, sorted.
pub type Pair = (String, Vec<String>);

fn sorted_names(list: &Value) -> Vec<String> {
    let mut dims: Vec<String> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    dims.sort();
    dims
}

/// The pairs of the `CloudWatchMetrics` directives of a cycle's performance events whose `Type`
/// passes `keep`.
pub fn directive_pairs_of(c: &Cycle, keep: impl Fn(&str) -> bool) -> BTreeSet<Pair> {
    let mut out = BTreeSet::new();
    for e in &c.events {
        let v: Value = serde_json::from_str(&e.message.text()).unwrap();
        if !keep(v["Type"].as_str().unwrap_or_default()) {
            continue;
        }
        for d in v["CloudWatchMetrics"].as_array().into_iter().flatten() {
            for m in d["Metrics"].as_array().unwrap() {
                for set in d["Dimensions"].as_array().unwrap() {
                    out.insert((m["Name"].as_str().unwrap().to_string(), sorted_names(set)));
                }
            }
        }
    }
    out
}

/// The pairs of a cycle's datums.
pub fn datum_pairs(c: &Cycle) -> BTreeSet<Pair> {
    c.datums
        .iter()
        .map(|d| {
            (
                d.metric_name.to_string(),
                d.dimensions.iter().map(|(k, _)| (*k).to_string()).collect(),
            )
        })
        .collect()
}

/// The enhanced declaration table's pairs of the metrics `keep` selects.
pub fn declared_pairs(keep: impl Fn(&str) -> bool) -> BTreeSet<Pair> {
    declare::table(true)
        .iter()
        .filter(|d| keep(d.metric))
        .flat_map(|d| {
            d.sets
                .iter()
                .map(|set| (d.metric.to_string(), set.iter().map(|x| (*x).to_string()).collect()))
        })
        .collect()
}

/// Fails, naming both differences, unless `sent` is exactly `want`.
pub fn assert_same_pairs(want: &BTreeSet<Pair>, sent: &BTreeSet<Pair>) {
    let missing: Vec<_> = want.difference(sent).collect();
    let extra: Vec<_> = sent.difference(want).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "wanted, not sent: {missing:#?}; sent, not wanted: {extra:#?}"
    );
}

/// The upstream fixture: its commit, and the (selector, dimension set) pairs of `mode`
/// (`standard`, `enhanced`, `enhanced_accelerated`).
pub fn upstream(mode: &str) -> (String, BTreeSet<Pair>) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/upstream/declarations.json");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let pairs = v[mode]
        .as_array()
        .unwrap_or_else(|| panic!("no mode {mode} in the fixture"))
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), sorted_names(&p[1])))
        .collect();
    (v["commit"].as_str().unwrap().to_string(), pairs)
}
