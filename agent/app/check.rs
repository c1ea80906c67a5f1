//! `kinsight check`: a readable preflight report. Each line is a verdict on one thing the agent
//! needs; any `FAIL` makes the command exit non-zero.

use std::fmt::Write as _;
use std::sync::Arc;

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
    /// A failure only a configuration change can fix (a refused identity, no region): the
    /// command exits 78 (`EX_CONFIG`) instead of 1.
    pub config_failure: bool,
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

    /// 0 when nothing failed, 78 for a configuration failure, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.ok() {
            0
        } else if self.config_failure {
            78
        } else {
            1
        }
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

/// What `kinsight check` was asked to do besides the read-only checks.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// `--send-test`: one datum and one log event, to prove the write permissions end to end.
    pub send_test: bool,
}

pub fn run(o: &Outside) -> Report {
    run_with(o, Options::default())
}

pub fn run_with(o: &Outside, opts: Options) -> Report {
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
            let (shown, more) = crate::config::printed(&cfg.warnings);
            for w in shown {
                r.push(Verdict::Warn, "config", w.clone());
            }
            if more > 0 {
                r.push(Verdict::Warn, "config", format!("… and {more} more warnings"));
            }
            Some(cfg)
        }
        Err(errors) => {
            let (shown, more) = crate::config::printed(&errors.0);
            for e in shown {
                r.push(Verdict::Fail, "config", format!("{source}: {e}"));
            }
            if more > 0 {
                r.push(Verdict::Fail, "config", format!("… and {more} more errors"));
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
        Ok(m) => {
            r.push(Verdict::Ok, "cgroup", format!("mode {}", m.name()));
            open_files(&mut r, &root, &m);
        }
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
        log_sources(&mut r, o, cfg);
        enhanced_groups(&mut r, cfg);
    }
    apiserver(&mut r, o, cfg.as_ref());
    if let Some(cfg) = &cfg {
        runtime(&mut r, &root, cfg);
    }
    match &cfg {
        Some(cfg) => aws_identity(&mut r, o, cfg, opts),
        None => r.push(
            Verdict::Skip,
            "aws identity",
            "not checked: the configuration is invalid",
        ),
    }
    r
}

/// With enhanced observability on, the enhanced metric groups kinsight does not send (the same
/// list the startup warning names).
fn enhanced_groups(r: &mut Report, cfg: &crate::config::Config) {
    if !cfg.kubernetes.enhanced_container_insights {
        return;
    }
    let missing = crate::metrics::declare::missing_enhanced(cfg.kubernetes.accelerated_compute_metrics);
    if missing.is_empty() {
        r.push(Verdict::Ok, "enhanced metrics", "every enhanced metric group is sent");
    } else {
        r.push(
            Verdict::Warn,
            "enhanced metrics",
            format!("not implemented by kinsight: {}", missing.join("; ")),
        );
    }
}

/// The open-files limit against this node's pods: each pod's cgroup and process are held open
/// across intervals (README "How the files are read"); past the budget, reads go by path.
fn open_files(r: &mut Report, root: &Root, mode: &CgroupMode) {
    use crate::host::cgroup::MAX_DESCRIPTORS_PER_CGROUP;
    let soft = crate::host::pids::raise_open_files_limit();
    let budget = crate::host::pids::open_files_budget();
    let cgroups = (budget - budget / 4) / MAX_DESCRIPTORS_PER_CGROUP;
    let limit = if soft == u64::MAX {
        "unlimited".to_string()
    } else {
        soft.to_string()
    };
    let pods = mode.list_pod_cgroups_only(root).map_or(0, |p| p.len());
    if pods > cgroups {
        r.push(
            Verdict::Warn,
            "open files",
            format!(
                "limit {limit} (soft, raised to the hard limit): room to hold {cgroups} cgroups open, this node \
                 has {pods} pods; the rest are read by path (more CPU). Raise the container runtime's hard LimitNOFILE"
            ),
        );
    } else {
        r.push(
            Verdict::Ok,
            "open files",
            format!(
                "limit {limit} (soft, raised to the hard limit): room to hold {cgroups} cgroups open, {pods} pods here"
            ),
        );
    }
}

/// The apiserver, when pod metadata comes from it: reachable through the client the agent would
/// use (in-cluster service account, `kube_config_path` or `KUBECONFIG`), its version, and each
/// permission of [`crate::kube::rbac::PERMISSIONS`] by a `SelfSubjectAccessReview`. A missing
/// essential permission (pods) is a FAIL; the others cost one feature each and WARN.
fn apiserver(r: &mut Report, o: &Outside, cfg: Option<&crate::config::Config>) {
    use crate::config::MetadataSource;
    let Some(cfg) = cfg else {
        return r.push(Verdict::Skip, "apiserver", "not checked: the configuration is invalid");
    };
    if o.pods_file.is_some() || cfg.metrics.metadata_source != MetadataSource::Apiserver {
        let why = if o.pods_file.is_some() {
            "--pods-file".to_string()
        } else {
            format!("{:?}", cfg.metrics.metadata_source).to_lowercase()
        };
        return r.push(
            Verdict::Skip,
            "apiserver",
            format!("pod metadata source is {why}; the apiserver is not used"),
        );
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return r.push(Verdict::Fail, "apiserver", format!("cannot start a runtime: {e}")),
    };
    let namespace = o
        .env
        .k8s_namespace
        .clone()
        .unwrap_or_else(|| "amazon-cloudwatch".to_string());
    rt.block_on(async {
        let timeout = std::time::Duration::from_secs(5);
        let client = match crate::kube::connect_apiserver(
            cfg.kubernetes.kube_config_path.as_deref(),
            o.env.allow_plain_http_endpoints,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => return r.push(Verdict::Fail, "apiserver", chain(&e)),
        };
        match tokio::time::timeout(timeout, client.apiserver_version()).await {
            Ok(Ok(v)) => r.push(
                Verdict::Ok,
                "apiserver",
                format!("reachable, Kubernetes {}", v.git_version),
            ),
            Ok(Err(e)) => {
                return r.push(
                    Verdict::Warn,
                    "apiserver",
                    format!(
                        "unreachable: {}; pod metadata will be missing until it answers",
                        chain(&e)
                    ),
                );
            }
            Err(_) => {
                return r.push(
                    Verdict::Warn,
                    "apiserver",
                    "no answer within 5 s; pod metadata will be missing until it answers",
                );
            }
        }
        for p in crate::kube::rbac::PERMISSIONS {
            let what = p.describe();
            match tokio::time::timeout(timeout, crate::kube::rbac::allowed(&client, p, &namespace)).await {
                Ok(Ok(true)) => r.push(Verdict::Ok, "rbac", format!("{what}: allowed ({})", p.why)),
                Ok(Ok(false)) => r.push(
                    if p.essential { Verdict::Fail } else { Verdict::Warn },
                    "rbac",
                    format!("{what}: DENIED — {} will be missing; see manifests/rbac.yaml", p.why),
                ),
                Ok(Err(e)) => r.push(Verdict::Warn, "rbac", format!("{what}: review failed: {}", chain(&e))),
                Err(_) => r.push(Verdict::Warn, "rbac", format!("{what}: review not answered within 5 s")),
            }
        }
    });
}

/// The containerd socket: reachable (its version and how many Kubernetes containers it has), or
/// missing — a warning, as the agent works without it, unless it is the pod metadata source.
fn runtime(r: &mut Report, root: &Root, cfg: &crate::config::Config) {
    let socket = root.path(&cfg.paths.containerd_socket);
    let needed = cfg.metrics.metadata_source == crate::config::MetadataSource::Runtime;
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return r.push(Verdict::Fail, "runtime", format!("cannot start a runtime: {e}")),
    };
    let answer = rt.block_on(async {
        let client = crate::runtime::Client::connect(&socket).await?;
        let version = client.version().await?;
        let containers = client.containers().await?;
        Ok::<_, crate::runtime::RuntimeError>((version, containers.len()))
    });
    match answer {
        Ok((version, n)) => r.push(
            Verdict::Ok,
            "runtime",
            format!(
                "containerd {version} at {}: {n} containers in namespace {}",
                socket.display(),
                crate::runtime::K8S_NAMESPACE
            ),
        ),
        Err(e) => r.push(
            if needed { Verdict::Fail } else { Verdict::Warn },
            "runtime",
            format!(
                "{}; container filesystem metrics, OOM events and runtime pod names will be missing{}",
                chain(&e),
                if needed {
                    " (metadata_source is runtime: no pod records)"
                } else {
                    ""
                }
            ),
        ),
    }
}

/// What the log pipeline would read: the pod log directories (how many container files), and
/// each configured host file, present or not; the journal is not read yet.
fn log_sources(r: &mut Report, o: &Outside, cfg: &crate::config::Config) {
    if !cfg.logs.enabled {
        return;
    }
    let root = match crate::host::confined::ConfinedRoot::open(&o.host_root) {
        Ok(root) => root,
        Err(e) => {
            r.push(Verdict::Fail, "log files", chain(&e));
            return;
        }
    };
    let placeholders =
        crate::logs::collect::Placeholders::of(&cfg.node_name, None, o.env.host_ip.as_deref(), &cfg.logs.collect_list);
    let mut collect = Vec::new();
    for (i, entry) in cfg.logs.collect_list.iter().enumerate() {
        match crate::logs::collect::CollectRule::compile(i, entry, &placeholders, &cfg.paths.state_dir) {
            Ok(rule) => collect.push(Arc::new(rule)),
            Err(e) => r.push(Verdict::Fail, "collect_list", chain(&e)),
        }
    }
    let places = crate::logs::discover::Places {
        pod_logs_dir: cfg.paths.pod_logs_dir.display().to_string(),
        container_logs_dir: cfg.paths.container_logs_dir.display().to_string(),
        host_files: cfg.logs.host_files.clone(),
        collect,
    };
    let scan = crate::logs::discover::scan(&root, &places);
    for e in &scan.errors {
        r.push(Verdict::Warn, "log files", chain(e));
    }
    let containers = scan
        .found
        .iter()
        .filter(|f| matches!(f.what, crate::logs::discover::What::Container { .. }))
        .count();
    r.push(
        Verdict::Ok,
        "container logs",
        format!(
            "{containers} files below {} (links in {})",
            cfg.paths.pod_logs_dir.display(),
            cfg.paths.container_logs_dir.display()
        ),
    );
    application_group(r, cfg, &scan);
    for h in &cfg.logs.host_files {
        let present = scan
            .found
            .iter()
            .any(|f| Some(f.rel.as_path()) == h.strip_prefix("/").ok());
        if present {
            r.push(Verdict::Ok, "host logs", format!("{} read", h.display()));
        } else {
            r.push(
                Verdict::Warn,
                "host logs",
                format!(
                    "{} absent: nothing for that stream of the host group (nodes without rsyslog, such as AL2023, have none)",
                    h.display()
                ),
            );
        }
    }
    collect_sources(r, cfg, &places, &scan);
    let journals: Vec<String> = ["var/log/journal", "run/log/journal"]
        .iter()
        .filter(|d| o.host_root.join(d).is_dir())
        .map(|d| format!("/{d}"))
        .collect();
    if cfg.logs.dataplane_units.is_empty() && cfg.logs.host_source != crate::config::HostLogSource::Journald {
        r.push(Verdict::Skip, "journal", "no dataplane units configured");
    } else if journals.is_empty() {
        r.push(
            Verdict::Warn,
            "journal",
            "no /var/log/journal or /run/log/journal under the host root: the kubelet and containerd units will be missing",
        );
    } else {
        r.push(
            Verdict::Ok,
            "journal",
            format!("{} read for {:?}", journals.join(" and "), cfg.logs.dataplane_units),
        );
    }
}

/// Where application logs go with `kinsight.logs.application_log_group`: the template, the group
/// of the first container found, and whether the policy kinsight ships covers it (it grants
/// `/aws/containerinsights/<cluster>/*` only).
fn application_group(r: &mut Report, cfg: &crate::config::Config, scan: &crate::logs::discover::Scan) {
    let Some(template) = &cfg.logs.application_log_group else {
        return;
    };
    let example = scan.found.iter().find_map(|f| match &f.what {
        crate::logs::discover::What::Container { file, .. } => {
            crate::logs::route::application_group(template, &cfg.cluster_name, file)
        }
        _ => None,
    });
    let example = example.map_or_else(String::new, |g| format!(", e.g. {g}"));
    let covered = [
        format!("/aws/containerinsights/{}/", cfg.cluster_name),
        "/aws/containerinsights/{cluster_name}/".to_owned(),
    ]
    .iter()
    .any(|p| template.starts_with(p.as_str()));
    if covered {
        r.push(Verdict::Ok, "application", format!("logs to {template}{example}"));
    } else {
        r.push(
            Verdict::Warn,
            "application",
            format!(
                "logs to {template}{example}: outside /aws/containerinsights/{}/, which is all \
                 deploy/iam-policy.json grants; add a statement for these groups (docs/identity.md)",
                cfg.cluster_name
            ),
        );
    }
}

/// Each `collect_list` entry: the files it collects now and where the first goes.
fn collect_sources(
    r: &mut Report,
    cfg: &crate::config::Config,
    places: &crate::logs::discover::Places,
    scan: &crate::logs::discover::Scan,
) {
    for (i, entry) in cfg.logs.collect_list.iter().enumerate() {
        let files: Vec<&crate::logs::discover::Found> = scan
            .found
            .iter()
            .filter(|f| matches!(f.what, crate::logs::discover::What::Collected { entry, newest: true } if entry == i))
            .collect();
        match places.collect.iter().find(|r| r.index == i) {
            Some(rule) if !files.is_empty() => {
                let (group, stream) = rule.route(&files[0].rel);
                r.push(
                    Verdict::Ok,
                    "collect_list",
                    format!(
                        "[{i}] {}: {} file(s) collected, e.g. /{} to {group} / {stream}",
                        entry.file_path,
                        files.len(),
                        files[0].rel.display()
                    ),
                );
            }
            Some(_) => r.push(
                Verdict::Warn,
                "collect_list",
                format!(
                    "[{i}] {}: no file matches yet (collected once one appears)",
                    entry.file_path
                ),
            ),
            None => {}
        }
    }
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

/// The identity lines: kind and ARN, region and its source, endpoints,
/// expiry; `OK` for IRSA and Pod Identity, `WARN` for the fallbacks, `FAIL` when refused or
/// when no credentials or region are found. With `--send-test`, one datum and one log event.
fn aws_identity(r: &mut Report, o: &Outside, cfg: &crate::config::Config, opts: Options) {
    if cfg.output.is_local() {
        r.push(
            Verdict::Skip,
            "aws identity",
            format!(
                "output {:?} makes no AWS call; no credentials or region needed",
                cfg.output
            ),
        );
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            r.push(Verdict::Fail, "aws identity", format!("cannot start a runtime: {e}"));
            return;
        }
    };
    let cancel = tokio_util::sync::CancellationToken::new();
    let telemetry = crate::telemetry::Telemetry::new();
    rt.block_on(async {
        let ctx = match crate::auth::build(cfg, &o.env, &telemetry, cancel.clone()).await {
            Ok(ctx) => ctx,
            Err(e) => {
                r.config_failure |= e.exit_code() == 78;
                r.push(Verdict::Fail, "aws identity", chain(&e));
                return;
            }
        };
        identity_lines(r, cfg, &ctx.report);
        if opts.send_test {
            send_test(r, cfg, &ctx).await;
        }
    });
    cancel.cancel();
}

fn identity_lines(r: &mut Report, cfg: &crate::config::Config, rep: &crate::auth::IdentityReport) {
    use crate::auth::IdentityKind;
    let arn = if rep.arn.is_empty() {
        "unknown"
    } else {
        rep.arn.as_str()
    };
    let mut detail = format!("kind {}, arn {arn}", rep.kind);
    if let Some(s) = rep.imds_source {
        let _ = write!(detail, ", imds_source {}", s.as_str());
    }
    if let Some(role) = &rep.role_arn {
        let _ = write!(detail, ", role {role}");
    }
    if let Some(f) = &rep.token_file {
        let _ = write!(detail, ", token file {f}");
    }
    if let Some(a) = &rep.agent_role_arn {
        let _ = write!(detail, ", then assumes {a} (agent.credentials.role_arn)");
    }
    if let Some(a) = &rep.logs_role_arn {
        let _ = write!(detail, ", logs assume {a} (logs.credentials.role_arn)");
    }
    let verdict = match rep.kind {
        IdentityKind::Irsa | IdentityKind::PodIdentity => Verdict::Ok,
        _ if rep.is_fallback() || rep.kind == IdentityKind::Ecs => Verdict::Warn,
        // Static keys or a profile outside a pod: a local run.
        _ => Verdict::Ok,
    };
    if let Some(risk) = rep.risk() {
        let _ = write!(detail, ". {risk}");
    }
    r.push(verdict, "aws identity", detail);
    if let Some(e) = &rep.caller_identity_error {
        r.push(
            Verdict::Warn,
            "aws identity",
            format!("sts:GetCallerIdentity failed: {e}"),
        );
    }
    for w in &rep.warnings {
        r.push(Verdict::Warn, "aws identity", w.clone());
    }
    r.push(
        Verdict::Ok,
        "aws region",
        format!("{} (from {})", rep.region, rep.region_source.as_str()),
    );
    r.push(
        Verdict::Ok,
        "aws endpoints",
        format!(
            "cloudwatch {}, logs {}, sts {}",
            rep.endpoints.metrics, rep.endpoints.logs, rep.endpoints.sts
        ),
    );
    let expiry = match rep.expiry {
        Some(e) => {
            let left = e.duration_since(std::time::SystemTime::now()).map_or_else(
                |_| "already".into(),
                |d| humantime::format_duration(std::time::Duration::from_secs(d.as_secs())).to_string(),
            );
            format!(
                "access key {}…, expire {} (in {left}), background refresh ahead of expiry",
                rep.access_key_prefix,
                humantime::format_rfc3339_seconds(e)
            )
        }
        None => format!("access key {}…, no expiry (static keys)", rep.access_key_prefix),
    };
    r.push(Verdict::Ok, "aws creds", expiry);
    let account = if rep.account.is_empty() {
        "<account>"
    } else {
        rep.account.as_str()
    };
    r.push(
        Verdict::Ok,
        "iam policy",
        format!(
            "expects manifests/iam-policy.json with <region>={}, <account>={account}, <cluster>={}",
            rep.region, cfg.cluster_name
        ),
    );
}

async fn send_test(r: &mut Report, cfg: &crate::config::Config, ctx: &crate::auth::AwsContext) {
    use crate::auth::send_test::{CHECK_NAMESPACE, put_test_event, put_test_metric};
    match put_test_metric(&ctx.metrics, &cfg.cluster_name, &cfg.node_name).await {
        Ok(()) => r.push(
            Verdict::Ok,
            "send test",
            format!("PutMetricData: 1 datum to namespace {CHECK_NAMESPACE}"),
        ),
        Err(e) => r.push(Verdict::Fail, "send test", chain(&e)),
    }
    match put_test_event(&ctx.logs, &cfg.cluster_name, &cfg.node_name).await {
        Ok(target) => r.push(Verdict::Ok, "send test", format!("PutLogEvents: 1 event to {target}")),
        Err(e) => r.push(Verdict::Fail, "send test", chain(&e)),
    }
}
