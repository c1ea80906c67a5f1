//! `kinsight check`: a readable preflight report. Each line is a verdict on one thing the agent
//! needs; any `FAIL` makes the command exit non-zero.

use std::fmt::Write as _;

use crate::host::{CgroupMode, Root, procfs};
use crate::telemetry::chain;

use super::{Outside, load_config};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warn,
    Fail,
    Skip,
}

#[derive(Debug)]
pub struct Line {
    pub verdict: Verdict,
    pub item: &'static str,
    pub detail: String,
}

#[derive(Debug, Default)]
pub struct Report {
    pub lines: Vec<Line>,
}

impl Report {
    fn push(&mut self, verdict: Verdict, item: &'static str, detail: impl Into<String>) {
        self.lines.push(Line {
            verdict,
            item,
            detail: detail.into(),
        });
    }

    pub fn ok(&self) -> bool {
        self.lines.iter().all(|l| l.verdict != Verdict::Fail)
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for l in &self.lines {
            let v = match l.verdict {
                Verdict::Ok => "OK",
                Verdict::Warn => "WARN",
                Verdict::Fail => "FAIL",
                Verdict::Skip => "SKIP",
            };
            let _ = writeln!(out, "{v:<5} {:<14} {}", l.item, l.detail);
        }
        let _ = writeln!(out, "{}", if self.ok() { "check passed" } else { "check FAILED" });
        out
    }
}

pub fn run(o: &Outside) -> Report {
    let mut r = Report::default();
    let source = o
        .config_path
        .as_ref()
        .map_or("<embedded default>".to_string(), |p| p.display().to_string());
    let cfg = match load_config(o) {
        Ok(cfg) => {
            r.push(
                Verdict::Ok,
                "config",
                format!(
                    "{source}: cluster {} ({:?}), node {}, interval {} s, output {:?}",
                    cfg.cluster_name,
                    cfg.cluster_name_source,
                    cfg.node_name,
                    cfg.interval.as_secs(),
                    cfg.output
                ),
            );
            for w in &cfg.warnings {
                r.push(Verdict::Warn, "config", w.clone());
            }
            Some(cfg)
        }
        Err(errors) => {
            for e in &errors.0 {
                r.push(Verdict::Fail, "config", format!("{source}: {e}"));
            }
            None
        }
    };
    let root = Root::new(&o.host_root);
    match procfs::read_capacity(&root) {
        Ok(c) => r.push(
            Verdict::Ok,
            "host /proc",
            format!("{} logical CPUs, MemTotal {} bytes", c.cpus, c.memory_bytes),
        ),
        Err(e) => r.push(Verdict::Fail, "host /proc", chain(&e)),
    }
    match CgroupMode::detect(&root) {
        Ok(m) => r.push(Verdict::Ok, "cgroup", format!("mode {}", m.name())),
        Err(e) => r.push(Verdict::Fail, "cgroup", chain(&e)),
    }
    match root.read("/proc/1/net/dev") {
        Ok(_) => r.push(Verdict::Ok, "host network", "/proc/1/net/dev readable"),
        Err(e) => r.push(
            Verdict::Warn,
            "host network",
            format!("{}; node network metrics will be missing", chain(&e)),
        ),
    }
    if let Some(cfg) = &cfg {
        state_dir(&mut r, &root, cfg);
    }
    r.push(
        Verdict::Skip,
        "aws identity",
        "not checked by this build (identity issue #4)",
    );
    r
}

fn state_dir(r: &mut Report, root: &Root, cfg: &crate::config::Config) {
    if !cfg.logs.enabled {
        r.push(
            Verdict::Skip,
            "state dir",
            "log collection is off; no checkpoints are written",
        );
        return;
    }
    let dir = root.path(&cfg.paths.state_dir);
    let probe = dir.join(".kinsight-check");
    let result = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&probe, b"ok"))
        .and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => r.push(Verdict::Ok, "state dir", format!("{} writable", dir.display())),
        Err(e) => r.push(
            Verdict::Fail,
            "state dir",
            format!("{} not writable: {e}; mount it read-write (hostPath)", dir.display()),
        ),
    }
}
