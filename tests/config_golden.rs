//! Golden config cases: `tests/fixtures/config/<case>/cwagentconfig.json` is loaded with fixed
//! inputs and the printed errors are compared with `errors.txt` in the same directory (empty
//! for a valid file). `KINSIGHT_UPDATE_GOLDEN=1 cargo test --test config_golden` rewrites the
//! `errors.txt` files instead; review the diff like code.
//!
//! Also: every example in `config/` validates, the three upstream AWS files are the upstream
//! text, and a pasted `CloudWatch` agent file loads with one warning per unimplemented section.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kinsight::config::{self, ClusterNameSource, Config, Env, Inputs, OutputKind};

const FIXTURES: &str = "tests/fixtures/config";

/// The fixed inputs of every golden case: no environment, no `--output`, host name `test-node`.
fn golden_inputs() -> Inputs {
    Inputs {
        env: Env::default(),
        output_override: None,
        host_name_fallback: "test-node".into(),
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
    }
}

fn with_output(output: OutputKind) -> Inputs {
    Inputs {
        output_override: Some(output),
        ..golden_inputs()
    }
}

/// Loads one case through the relative path (cargo runs tests in the package root), so the
/// file name printed for malformed JSON is the same on every machine.
fn golden(case: &str) {
    let dir = Path::new(FIXTURES).join(case);
    let got = match config::load_file(&dir.join("cwagentconfig.json"), &golden_inputs()) {
        Ok(_) => String::new(),
        Err(errors) => format!("{errors}\n"),
    };
    let expected_file = dir.join("errors.txt");
    if std::env::var_os("KINSIGHT_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&expected_file, &got).expect("write errors.txt");
        return;
    }
    let expected = std::fs::read_to_string(&expected_file).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with KINSIGHT_UPDATE_GOLDEN=1 to create it",
            expected_file.display()
        )
    });
    assert_eq!(
        got, expected,
        "case {case}: the errors differ from errors.txt (KINSIGHT_UPDATE_GOLDEN=1 rewrites it)"
    );
}

/// One line per case: `case!(test_name, "fixture-dir")`.
macro_rules! case {
    ($name:ident, $dir:literal) => {
        #[test]
        fn $name() {
            golden($dir);
        }
    };
}

const CASES: &[&str] = &[
    "bad-regex",
    "cluster-name-too-long",
    "extraction-disabled-with-put-metric-data",
    "interval-out-of-range",
    "invalid-enum",
    "look-around-regex",
    "malformed-json",
    "missing-cluster-name",
    "misspelt-key",
    "pasted-cloudwatch-agent-config",
    "role-arn-and-endpoint",
    "several-errors-at-once",
    "top-level-array",
    "unknown-top-level-section-with-suggestion",
    "wrong-type",
];

case!(bad_regex, "bad-regex");
case!(cluster_name_too_long, "cluster-name-too-long");
case!(
    extraction_disabled_with_put_metric_data,
    "extraction-disabled-with-put-metric-data"
);
case!(interval_out_of_range, "interval-out-of-range");
case!(invalid_enum, "invalid-enum");
case!(look_around_regex, "look-around-regex");
case!(malformed_json, "malformed-json");
case!(missing_cluster_name, "missing-cluster-name");
case!(misspelt_key, "misspelt-key");
case!(pasted_cloudwatch_agent_config, "pasted-cloudwatch-agent-config");
case!(role_arn_and_endpoint, "role-arn-and-endpoint");
case!(several_errors_at_once, "several-errors-at-once");
case!(top_level_array, "top-level-array");
case!(
    unknown_top_level_section_with_suggestion,
    "unknown-top-level-section-with-suggestion"
);
case!(wrong_type, "wrong-type");

#[test]
fn every_fixture_directory_is_a_case() {
    let dirs: BTreeSet<String> = std::fs::read_dir(FIXTURES)
        .expect("fixture directory")
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    let listed: BTreeSet<String> = CASES.iter().map(|c| (*c).to_owned()).collect();
    assert_eq!(
        dirs, listed,
        "add a case!() line (and a CASES entry) per fixture directory"
    );
}

fn examples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir("config")
        .expect("config/ directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn load_example(file: &Path, inputs: &Inputs) -> Config {
    config::load_file(file, inputs).unwrap_or_else(|e| panic!("{}:\n{e}", file.display()))
}

#[test]
fn every_example_validates() {
    let files = examples();
    assert!(files.len() >= 5, "expected the examples in config/, found {files:?}");
    for file in &files {
        let cfg = load_example(file, &with_output(OutputKind::Stdout));
        // Log keys whose feature is not built yet (the journal, exclusion by annotation) warn, and
        // an endpoint override in effect always does; every other warning in an example is a
        // mistake in the example.
        let other: Vec<&String> = cfg
            .warnings
            .iter()
            .filter(|w| {
                !(w.starts_with("kinsight.logs.")
                    && (w.contains("not read yet")
                        || w.contains("not supported yet")
                        || w.contains("not in the pod index yet")))
                    && !w.contains("endpoint override in effect")
            })
            .collect();
        assert!(other.is_empty(), "{}: {other:?}", file.display());
        if cfg.cluster_name_source == ClusterNameSource::Config {
            let cfg = load_example(file, &with_output(OutputKind::Cloudwatch));
            assert_eq!(cfg.output, OutputKind::Cloudwatch);
        }
    }
}

#[test]
fn the_embedded_default_is_config_default_json() {
    let on_disk = std::fs::read_to_string("config/default.json").expect("config/default.json");
    assert_eq!(config::DEFAULT_CONFIG, on_disk);
}

/// kinsight accepts the three upstream `cwagentconfig.json` files unchanged (standard, enhanced
/// and quickstart, from aws-samples/amazon-cloudwatch-container-insights:
/// `cwagent/cwagent-configmap*.yaml`, `quickstart/`); only the placeholders are filled in.
#[test]
fn the_upstream_examples_are_the_upstream_files() {
    let standard = r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"{{cluster_name}}","metrics_collection_interval":60}},"force_flush_interval":5}}"#;
    let mut enhanced: serde_json::Value = serde_json::from_str(standard).unwrap();
    enhanced["logs"]["metrics_collected"]["kubernetes"]["enhanced_container_insights"] = true.into();
    let mut quickstart: serde_json::Value = serde_json::from_str(standard).unwrap();
    quickstart["agent"] = serde_json::json!({"region": "{{region_name}}"});
    let cases = [
        ("config/cwagentconfig-standard.json", standard.to_owned()),
        ("config/cwagentconfig-enhanced.json", enhanced.to_string()),
        ("config/cwagentconfig-quickstart.json", quickstart.to_string()),
    ];
    for (file, upstream) in cases {
        let filled = upstream
            .replace("{{cluster_name}}", "my-cluster")
            .replace("{{region_name}}", "us-west-2");
        let want: serde_json::Value = serde_json::from_str(&filled).unwrap();
        let got: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(file).expect(file)).expect(file);
        assert_eq!(got, want, "{file}");
    }
    let cfg = load_example(Path::new("config/cwagentconfig-quickstart.json"), &golden_inputs());
    assert_eq!(cfg.region.as_deref(), Some("us-west-2"));
    assert_eq!((cfg.cluster_name.as_str(), cfg.interval.as_secs()), ("my-cluster", 60));
    let cfg = load_example(Path::new("config/cwagentconfig-enhanced.json"), &golden_inputs());
    assert!(cfg.kubernetes.enhanced_container_insights && cfg.kubernetes.prefer_full_pod_name);
}

#[test]
fn a_pasted_cloudwatch_agent_config_loads_with_one_warning_per_unimplemented_section() {
    let file = Path::new(FIXTURES).join("pasted-cloudwatch-agent-config/cwagentconfig.json");
    let cfg = load_example(&file, &golden_inputs());
    assert_eq!(
        cfg.warnings,
        [
            "agent.logfile: accepted for compatibility with the CloudWatch agent and ignored",
            "logs.metrics_collected.application_signals: not implemented by kinsight and ignored",
            "section \"metrics\" is not implemented by kinsight and is ignored",
            "section \"traces\" is not implemented by kinsight and is ignored",
        ]
    );
    assert_eq!(cfg.cluster_name, "my-cluster");
    // Its file collection is kinsight's too.
    let [entry] = cfg.logs.collect_list.as_slice() else {
        panic!("{:?}", cfg.logs.collect_list)
    };
    assert_eq!(
        (entry.file_path.as_str(), entry.log_group_name.as_deref()),
        ("/var/log/app.log", Some("app"))
    );
}
