//! Where a log file's records go: what its path says about it, and its log group and stream.
//!
//! Paths (kubelet, `pkg/kubelet/kuberuntime/helpers.go` `BuildPodLogsDirectory` and
//! `kuberuntime_container.go` `logSymlink`):
//! - the real file: `/var/log/pods/<namespace>_<pod>_<uid>/<container>/<restart>.log`, rotated
//!   as `<restart>.log.<YYYYMMDD-hhmmss>` (then gzipped);
//! - its symlink: `/var/log/containers/<pod>_<namespace>_<container>-<64-hex id>.log`, the name
//!   truncated to 255 bytes on long names. Pod, namespace and container names cannot contain `_`,
//!   so splitting on `_` is safe.
//!
//! Groups and streams as the Container Insights Fluent Bit set-up names them
//! (`amazon-cloudwatch-container-insights`, `fluent-bit.yaml`): application
//! `<node>-application.var.log.containers.<basename>`, dataplane containers
//! `<node>-dataplane.tail.var.log.containers.<basename>`, host `<node>.host.<file>`; or as the
//! fluentd set-up did (`stream_names: fluentd`): the basename without `.log`, and
//! `host.<file>-<node>`.

use std::sync::Arc;

use crate::config::StreamNames;

/// What a container log file's path under the pod logs directory says.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ContainerFile {
    pub namespace: String,
    pub pod_name: String,
    /// The pod UID (for a static pod, the kubelet's config hash).
    pub pod_uid: String,
    pub container: String,
    pub restart: u32,
}

impl ContainerFile {
    /// Parses `<namespace>_<pod>_<uid>/<container>/<restart>.log` (the part below the pod logs
    /// directory). Rotated names (`….log.<timestamp>`) parse too, with `rotated` true.
    pub fn parse(rel: &str) -> Option<(ContainerFile, bool)> {
        let mut parts = rel.split('/');
        let (dir, container, file) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || container.is_empty() {
            return None;
        }
        let mut d = dir.splitn(3, '_');
        let (namespace, pod_name, pod_uid) = (d.next()?, d.next()?, d.next()?);
        if namespace.is_empty() || pod_name.is_empty() || pod_uid.is_empty() {
            return None;
        }
        let (restart, rest) = file.split_once(".log")?;
        let restart: u32 = restart.parse().ok()?;
        let rotated = match rest {
            "" => false,
            r => {
                let ts = r.strip_prefix('.')?;
                // YYYYMMDD-hhmmss: never `.gz` or `.tmp`, which are not sources.
                let ok = ts.len() == 15
                    && ts
                        .bytes()
                        .enumerate()
                        .all(|(i, b)| if i == 8 { b == b'-' } else { b.is_ascii_digit() });
                if !ok {
                    return None;
                }
                true
            }
        };
        Some((
            ContainerFile {
                namespace: namespace.into(),
                pod_name: pod_name.into(),
                pod_uid: pod_uid.into(),
                container: container.into(),
                restart,
            },
            rotated,
        ))
    }

    /// The `/var/log/containers` basename kubelet gives this file, when the container id is
    /// known: `<pod>_<namespace>_<container>-<id>.log`, truncated to 251 bytes plus `.log` as
    /// kubelet does for ext4's 255-byte names.
    pub fn symlink_basename(&self, container_id: &str) -> String {
        let mut stem = format!(
            "{}_{}_{}-{}",
            self.pod_name, self.namespace, self.container, container_id
        );
        if stem.len() > 251 {
            let mut cut = 251;
            while !stem.is_char_boundary(cut) {
                cut -= 1;
            }
            stem.truncate(cut);
        }
        stem.push_str(".log");
        stem
    }

    /// The basename when no container id can be found (counted by the caller):
    /// `<pod>_<namespace>_<container>-<uid>-<restart>.log`.
    pub fn fallback_basename(&self) -> String {
        format!(
            "{}_{}_{}-{}-{}.log",
            self.pod_name, self.namespace, self.container, self.pod_uid, self.restart
        )
    }
}

/// Parses the target of a `/var/log/containers` symlink, which must name a file directly in a
/// container directory below `pod_logs_dir` (absolute, as kubelet writes it, or relative to
/// `/var/log/containers`). Anything else is not followed.
pub fn symlink_target(target: &str, pod_logs_dir: &str) -> Option<ContainerFile> {
    let below = target
        .strip_prefix(pod_logs_dir)
        .and_then(|t| t.strip_prefix('/'))
        .or_else(|| {
            // `../pods/…` relative to `/var/log/containers`, when the directories are siblings.
            let name = pod_logs_dir.rsplit('/').next()?;
            target.strip_prefix("../")?.strip_prefix(name)?.strip_prefix('/')
        })?;
    if below.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return None;
    }
    match ContainerFile::parse(below) {
        Some((f, false)) => Some(f),
        _ => None,
    }
}

/// The container id at the end of a `/var/log/containers` basename, when it was not truncated.
pub fn container_id_of_basename(basename: &str) -> Option<&str> {
    let stem = basename.strip_suffix(".log")?;
    let (_, id) = stem.rsplit_once('-')?;
    (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

/// Which of the three Container Insights groups a source goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Group {
    Application,
    Dataplane,
    Host,
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Application => "application",
            Group::Dataplane => "dataplane",
            Group::Host => "host",
        }
    }

    /// `/aws/containerinsights/<cluster>/<group>`.
    pub fn name(self, cluster: &str) -> String {
        format!("/aws/containerinsights/{cluster}/{}", self.as_str())
    }
}

/// The placeholders of `kinsight.logs.application_log_group`, as Fluent Bit's Kubernetes record
/// fields name them; each is filled from the pod log directory
/// (`<namespace>_<pod>_<uid>/<container>/`), so it is known when the file is found, before any
/// metadata.
pub const APPLICATION_GROUP_PLACEHOLDERS: [&str; 4] =
    ["{cluster_name}", "{namespace_name}", "{pod_name}", "{container_name}"];

/// A log group name is 1 to 512 characters of `[\.\-_/#A-Za-z0-9]` (CloudWatch Logs API
/// reference, `CreateLogGroup`).
pub fn valid_group_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
}

/// The application group of a container file with `template` (`kinsight.logs.application_log_group`),
/// or `None` when the filled-in name is not a valid group name (over 512 characters with a long
/// cluster and pod name, or a pod directory kubelet did not make): the caller falls back to the
/// Container Insights group, as Fluent Bit falls back to `log_group_name` when its
/// `log_group_template` cannot be filled.
pub fn application_group(template: &str, cluster: &str, cf: &ContainerFile) -> Option<String> {
    let values = [cluster, &cf.namespace, &cf.pod_name, &cf.container];
    let name = APPLICATION_GROUP_PLACEHOLDERS
        .iter()
        .zip(values)
        .fold(template.to_owned(), |t, (p, v)| t.replace(p, v));
    valid_group_name(&name).then_some(name)
}

/// A source's group and stream, shared by all its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub group_name: Arc<str>,
    pub stream: Arc<str>,
}

/// A valid log stream name: 1–512 characters without `:` or `*` (CloudWatch Logs API reference,
/// `CreateLogStream`). Invalid characters become `_`; a longer name keeps its first 495
/// characters, `-`, and 16 hex digits of a hash of the whole name, so it stays unique. Returns
/// whether the name had to change.
pub fn valid_stream_name(name: &str) -> (String, bool) {
    let mut out: String = name
        .chars()
        .map(|c| if c == ':' || c == '*' { '_' } else { c })
        .collect();
    let mut changed = out != name;
    if out.chars().count() > 512 {
        let hash = super::identity::hash(name.as_bytes());
        let keep: String = out.chars().take(495).collect();
        out = format!("{keep}-{hash:016x}");
        changed = true;
    }
    if out.is_empty() {
        out.push('_');
        changed = true;
    }
    (out, changed)
}

/// The stream of a container file: `basename` is the `/var/log/containers` name (with `.log`).
pub fn container_stream(style: StreamNames, group: Group, node: &str, basename: &str) -> String {
    match (style, group) {
        (StreamNames::Fluentd, _) => basename.strip_suffix(".log").unwrap_or(basename).to_string(),
        (StreamNames::FluentBit, Group::Dataplane) => {
            format!("{node}-dataplane.tail.var.log.containers.{basename}")
        }
        (StreamNames::FluentBit, _) => format!("{node}-application.var.log.containers.{basename}"),
    }
}

/// The stream of a host file (`messages`, `secure`, `dmesg`).
pub fn host_stream(style: StreamNames, node: &str, file: &str) -> String {
    match style {
        StreamNames::FluentBit => format!("{node}.host.{file}"),
        StreamNames::Fluentd => format!("host.{file}-{node}"),
    }
}

/// Whether `name` matches `glob` (`*` any run, `?` one character), as the exclusion and
/// dataplane globs on `/var/log/containers` basenames are written.
pub fn glob_match(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    let (mut gi, mut ni, mut star, mut mark) = (0, 0, None, 0);
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || g[gi] == n[ni]) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some(gi);
            mark = ni;
            gi += 1;
        } else if let Some(s) = star {
            gi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    while gi < g.len() && g[gi] == '*' {
        gi += 1;
    }
    gi == g.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn pod_log_paths_parse_and_rotated_ones_are_marked() {
        let (f, rotated) = ContainerFile::parse("shop_web-5468c5d4d7-n2swr_198f7dd2-2270-11ea/web/3.log").unwrap();
        assert!(!rotated);
        assert_eq!(
            (
                f.namespace.as_str(),
                f.pod_name.as_str(),
                f.pod_uid.as_str(),
                f.container.as_str(),
                f.restart
            ),
            ("shop", "web-5468c5d4d7-n2swr", "198f7dd2-2270-11ea", "web", 3)
        );
        assert!(ContainerFile::parse("ns_p_u/c/0.log.20260105-101112").unwrap().1);
        for bad in [
            "ns_p_u/c/0.log.20260105-101112.gz",
            "ns_p_u/c/0.log.20260105-101112.gz.tmp",
            "ns_p_u/c/x.log",
            "ns_p/c/0.log",
            "ns_p_u/c/d/0.log",
            "ns_p_u/c/0.txt",
        ] {
            assert!(ContainerFile::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn symlinks_are_matched_never_followed() {
        let f = symlink_target("/var/log/pods/ns_p_u/c/0.log", "/var/log/pods").unwrap();
        assert_eq!(f.container, "c");
        assert!(symlink_target("../pods/ns_p_u/c/0.log", "/var/log/pods").is_some());
        for planted in [
            "/var/lib/kubelet/pki/kubelet-client-current.pem",
            "/var/log/pods/../../etc/shadow",
            "/var/log/pods/ns_p_u/c/../../../x/0.log",
            "/var/log/pods/ns_p_u/c/0.log.20260105-101112",
            "/var/log/podsx/ns_p_u/c/0.log",
            "/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ] {
            assert!(symlink_target(planted, "/var/log/pods").is_none(), "{planted}");
        }
    }

    #[test]
    fn basenames_carry_the_container_id_and_are_cut_like_kubelet() {
        let f = ContainerFile::parse("ns_p_u/c/0.log").unwrap().0;
        let b = f.symlink_basename(ID);
        assert_eq!(b, format!("p_ns_c-{ID}.log"));
        assert_eq!(container_id_of_basename(&b), Some(ID));
        let long = ContainerFile {
            pod_name: "p".repeat(200),
            ..f.clone()
        };
        let b = long.symlink_basename(ID);
        assert_eq!(b.len(), 255);
        assert_eq!(container_id_of_basename(&b), None, "the id was cut");
        assert_eq!(f.fallback_basename(), "p_ns_c-u-0.log");
    }

    #[test]
    fn stream_names_follow_each_setup() {
        let n = "ip-10-1-2-3.ec2.internal";
        let b = format!("web_shop_web-{ID}.log");
        assert_eq!(
            container_stream(StreamNames::FluentBit, Group::Application, n, &b),
            format!("{n}-application.var.log.containers.{b}")
        );
        assert_eq!(
            container_stream(StreamNames::FluentBit, Group::Dataplane, n, &b),
            format!("{n}-dataplane.tail.var.log.containers.{b}")
        );
        assert_eq!(
            container_stream(StreamNames::Fluentd, Group::Application, n, &b),
            format!("web_shop_web-{ID}")
        );
        assert_eq!(
            host_stream(StreamNames::FluentBit, n, "dmesg"),
            format!("{n}.host.dmesg")
        );
        assert_eq!(
            host_stream(StreamNames::Fluentd, n, "secure"),
            format!("host.secure-{n}")
        );
        assert_eq!(Group::Host.name("c"), "/aws/containerinsights/c/host");
    }

    #[test]
    fn application_groups_are_filled_from_the_pod_directory() {
        let (cf, _) = ContainerFile::parse("shop_web-1_uid-1/web/0.log").unwrap();
        let t = "/aws/containerinsights/{cluster_name}/application/{namespace_name}";
        assert_eq!(
            application_group(t, "prod", &cf).as_deref(),
            Some("/aws/containerinsights/prod/application/shop")
        );
        assert_eq!(
            application_group("/eks/{namespace_name}/{pod_name}/{container_name}", "prod", &cf).as_deref(),
            Some("/eks/shop/web-1/web")
        );
        // A name CloudWatch Logs would refuse is not made: the caller falls back.
        let long = format!("/{}/{{pod_name}}", "a".repeat(300));
        let (long_pod, _) = ContainerFile::parse(&format!("shop_{}_uid/web/0.log", "p".repeat(253))).unwrap();
        assert_eq!(application_group(&long, "prod", &cf).map(|g| g.len()), Some(307));
        assert_eq!(application_group(&long, "prod", &long_pod), None);
        let (odd, _) = ContainerFile::parse("shop_web:1_uid/web/0.log").unwrap();
        assert_eq!(application_group("/eks/{pod_name}", "prod", &odd), None);
        assert!(!valid_group_name(""));
        assert!(valid_group_name(&"a".repeat(512)));
        assert!(!valid_group_name(&"a".repeat(513)));
    }

    #[test]
    fn invalid_stream_names_are_made_valid_deterministically() {
        assert_eq!(valid_stream_name("a:b*c"), ("a_b_c".to_string(), true));
        let long = "x".repeat(600);
        let (v, changed) = valid_stream_name(&long);
        assert!(changed && v.chars().count() == 512, "{}", v.len());
        assert_eq!(valid_stream_name(&long).0, v);
        assert_ne!(valid_stream_name(&"x".repeat(601)).0, v);
        assert_eq!(valid_stream_name("ok"), ("ok".to_string(), false));
    }

    #[test]
    fn globs() {
        assert!(glob_match("aws-node*", "aws-node-abcde_kube-system_aws-node-123.log"));
        assert!(glob_match("*_kube-system_*", "coredns-1_kube-system_coredns-2.log"));
        assert!(glob_match("kube-proxy?x", "kube-proxy-x"));
        assert!(!glob_match("kube-proxy*", "aws-node-1"));
        assert!(glob_match("*", ""));
    }
}
