//! The configuration reference (`docs/configuration.md`, its table of keys) and the keys the
//! config code defines stay in step: every key the code reads is documented, and every documented
//! key is one the code reads.

use std::collections::BTreeSet;

use kinsight::config::{Inputs, known_keys};

/// A file that contains every section and one item of every array, so that the walk visits all
/// of them.
const EVERY_SECTION: &str = r#"{
  "agent": {"credentials": {}},
  "logs": {
    "credentials": {},
    "metrics_collected": {"kubernetes": {}},
    "logs_collected": {"files": {"collect_list": [{"file_path": "/var/log/x.log", "filters": [{"type": "include", "expression": "x"}]}]}}
  },
  "kinsight": {
    "metrics": {}, "paths": {}, "identity": {}, "telemetry": {},
    "logs": {"multiline": {"first_line_regex": "^x"}}
  }
}"#;

fn code_keys() -> BTreeSet<String> {
    known_keys(EVERY_SECTION, &Inputs::default())
        .into_iter()
        .map(|k| k.replace("[0]", "[]"))
        .collect()
}

/// The keys the table of `docs/configuration.md` ("## Keys") documents, abbreviations expanded:
/// `…kubernetes.` and `…collect_list[].` stand for their full paths, `a.{b,c}` for `a.b` and `a.c`
/// (`…` inside braces for "and others the code does not read"), and further keys in a first
/// cell are siblings of the first (or top-level keys when the cell says so). A trailing `[]`
/// (an array documented in one row) is dropped.
fn documented_keys() -> BTreeSet<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md")).unwrap();
    let table = text
        .split("\n## Keys")
        .nth(1)
        .expect("docs/configuration.md has a `## Keys` section");
    let table = table.split("\n## ").next().unwrap();
    let expand_abbreviation = |t: &str| -> String {
        if let Some(rest) = t.strip_prefix("…collect_list[]") {
            format!("logs.logs_collected.files.collect_list[]{rest}")
        } else if let Some(rest) = t.strip_prefix("…kubernetes") {
            format!("logs.metrics_collected.kubernetes{rest}")
        } else {
            t.to_string()
        }
    };
    let braces = |t: &str| -> Vec<String> {
        match (t.find('{'), t.ends_with('}')) {
            (Some(i), true) => t[i + 1..t.len() - 1]
                .split(',')
                .filter(|p| !p.is_empty() && *p != "…")
                .map(|p| format!("{}{p}", &t[..i]))
                .collect(),
            _ => vec![t.to_string()],
        }
    };
    let mut out = BTreeSet::new();
    for line in table.lines().filter(|l| l.starts_with("| `")) {
        let cell = line[2..].split(" | ").next().unwrap();
        let tokens: Vec<&str> = cell.split('`').skip(1).step_by(2).collect();
        let Some(first) = tokens.first() else { continue };
        let first = expand_abbreviation(first);
        let parent = first.rsplit_once('.').map_or("", |(p, _)| p).to_string();
        let top_level = cell.contains("(top level)");
        for (i, t) in tokens.iter().enumerate() {
            let full = if i == 0 {
                first.clone()
            } else if top_level
                || t.starts_with('…')
                || ["agent.", "logs.", "kinsight."].iter().any(|r| t.starts_with(r))
            {
                expand_abbreviation(t)
            } else {
                format!("{parent}.{t}")
            };
            for key in braces(&full) {
                out.insert(key.trim_end_matches("[]").to_string());
            }
        }
    }
    out
}

#[test]
fn every_key_the_code_reads_is_documented_and_every_documented_key_is_read() {
    let code = code_keys();
    let docs = documented_keys();
    // Sections are documented through their keys; arrays of objects in one row.
    let is_parent = |k: &str| {
        code.iter()
            .any(|o| o.len() > k.len() && o.starts_with(k) && matches!(o.as_bytes()[k.len()], b'.' | b'['))
    };
    let documented_as_array = |k: &str| {
        k.rsplit_once("[].")
            .is_some_and(|(array, _)| docs.contains(array.trim_end_matches("[]")))
    };
    let undocumented: Vec<&String> = code
        .iter()
        .filter(|k| !is_parent(k) && !docs.contains(k.as_str()) && !documented_as_array(k))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys the code reads that docs/configuration.md does not document: {undocumented:#?}"
    );
    let unknown: Vec<&String> = docs.iter().filter(|k| !code.contains(k.as_str())).collect();
    assert!(
        unknown.is_empty(),
        "keys docs/configuration.md documents that the code does not read: {unknown:#?}"
    );
}
