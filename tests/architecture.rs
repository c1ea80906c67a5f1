//! Rules of the code's shape that a reviewer would otherwise have to remember, checked on the
//! source text: module boundaries, where tasks are spawned, and self-contained comments.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file below `dir` (relative to the repository) with one of `exts`.
fn files(dir: &str, exts: &[&str]) -> Vec<PathBuf> {
    fn walk(p: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let path = e.unwrap().path();
            if path.is_dir() {
                walk(&path, exts, out);
            } else if path
                .extension()
                .and_then(|x| x.to_str())
                .is_some_and(|x| exts.contains(&x))
            {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo().join(dir), exts, &mut out);
    out.sort();
    out
}

fn rel(p: &Path) -> String {
    p.strip_prefix(repo()).unwrap().display().to_string()
}

/// The lines of `path` that are code, not comments (good enough for `use` and call checks).
fn code_lines(path: &Path) -> Vec<(usize, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim_start().starts_with("//"))
        .map(|(i, l)| (i + 1, l.to_string()))
        .collect()
}

#[test]
fn telemetry_is_a_leaf() {
    let others = [
        "app", "auth", "config", "host", "kube", "logs", "metrics", "runtime", "ship",
    ];
    let mut bad = Vec::new();
    for f in files("agent/telemetry", &["rs"]) {
        for (n, line) in code_lines(&f) {
            if others.iter().any(|m| line.contains(&format!("crate::{m}"))) {
                bad.push(format!("{}:{n}: {line}", rel(&f)));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "telemetry must import no other module:\n{}",
        bad.join("\n")
    );
}

#[test]
fn aws_sdk_types_stay_in_auth_and_ship() {
    let sdk = [
        "aws_sdk_",
        "aws_types::",
        "aws_config::",
        "aws_smithy_",
        "aws_credential_types::",
        "aws_sigv4::",
    ];
    let mut bad = Vec::new();
    for f in files("agent", &["rs"]) {
        let r = rel(&f);
        if r.starts_with("agent/auth/") || r.starts_with("agent/ship/") {
            continue;
        }
        for (n, line) in code_lines(&f) {
            // A quoted crate name (the log filter, a config key) is not a use of the SDK.
            if sdk.iter().any(|s| line.contains(s)) && !line.contains('"') {
                bad.push(format!("{r}:{n}: {line}"));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "AWS SDK types outside auth/ and ship/:\n{}",
        bad.join("\n")
    );
}

#[test]
fn long_lived_tasks_are_spawned_only_by_the_supervisor() {
    // The telemetry server spawns one short task per HTTP connection on its own runtime;
    // main spawns the signal listener before `app` exists; unit tests may spawn what they test.
    let allowed = ["agent/app/supervise.rs", "agent/telemetry/http.rs", "agent/main.rs"];
    let mut bad = Vec::new();
    for f in files("agent", &["rs"]) {
        let r = rel(&f);
        if allowed.contains(&r.as_str()) || r.ends_with("/tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let before_tests = text.split("#[cfg(test)]").next().unwrap();
        for (n, line) in before_tests.lines().enumerate() {
            if line.contains("tokio::spawn(") && !line.trim_start().starts_with("//") {
                bad.push(format!("{r}:{}: {line}", n + 1));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "return the future to `app` and let the supervisor run it by name:\n{}",
        bad.join("\n")
    );
}

#[test]
fn comments_do_not_point_outside_the_repository() {
    // The design documents the code was first written from are not in this repository: a fact
    // the code relies on is stated where it is used, with its upstream source.
    let pointers = [
        "spec/METRICS",
        "spec/LOGS",
        "spec/IDENTITY",
        "TESTING.md",
        "STYLE.md",
        "ARCHITECTURE.md",
        "§",
    ];
    let mut bad = Vec::new();
    let mut all = files("agent", &["rs"]);
    all.extend(files("tests", &["rs", "py", "sh"]));
    all.extend(files("benches", &["rs"]));
    all.extend(files("scripts", &["sh"]));
    for name in ["scripts/test", "scripts/bench", ".ci/run", "Cargo.toml", "clippy.toml"] {
        if repo().join(name).exists() {
            all.push(repo().join(name));
        }
    }
    for f in all {
        if rel(&f) == "tests/architecture.rs" {
            continue;
        }
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            if pointers.iter().any(|p| line.contains(p)) {
                bad.push(format!("{}:{}: {}", rel(&f), n + 1, line.trim()));
            }
        }
    }
    assert!(
        bad.is_empty(),
        "references to documents outside the repository:\n{}",
        bad.join("\n")
    );
}

/// The keys in backticks of a markdown table cell.
fn keys_in(cell: &str) -> std::collections::BTreeSet<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

#[test]
fn the_reload_tables_of_the_docs_are_the_codes() {
    let docs = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let set = |keys: &[kinsight::app::Key]| {
        keys.iter()
            .map(|(k, _)| (*k).to_owned())
            .collect::<std::collections::BTreeSet<_>>()
    };
    // "| keys | the output is rebuilt …" and "| keys | the AWS identity …" rows.
    let row = |what: &str| {
        let line = docs
            .lines()
            .find(|l| l.contains(&format!("| {what}")))
            .unwrap_or_else(|| panic!("no row \"{what}\" in docs/configuration.md"));
        keys_in(line.split(" | ").next().unwrap())
    };
    assert_eq!(
        row("the output is rebuilt"),
        set(kinsight::app::OUTPUT_KEYS),
        "output keys"
    );
    assert_eq!(
        row("the log pipeline is replaced"),
        set(kinsight::app::LOG_KEYS),
        "log keys"
    );
    assert_eq!(
        row("the AWS identity"),
        set(kinsight::app::IDENTITY_KEYS),
        "identity keys"
    );
    // The table after "Keys that need a restart".
    let table = docs
        .split("Keys that need a restart")
        .nth(1)
        .expect("the restart table");
    let restart: std::collections::BTreeSet<String> = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| keys_in(l.split(" | ").next().unwrap()))
        .collect();
    assert_eq!(restart, set(kinsight::app::RESTART_KEYS), "restart keys");
}
