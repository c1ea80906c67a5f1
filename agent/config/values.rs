//! Rules for single string values: regions, role ARNs, cluster names, endpoints, globs, paths.
//!
//! Each is a pure `fn(&str) -> Result<T, ErrorKind>`, used by the section walkers through
//! `Obj::parsed` / `Obj::str_list`, and for the environment fallbacks in `parse.rs`.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::error::ErrorKind;
use super::model::{MetadataSource, OutputKind};

/// The log groups kinsight writes are `/aws/containerinsights/<cluster>/<suffix>`; the longest
/// suffix decides the limit.
const LOG_GROUP_PREFIX: &str = "/aws/containerinsights/";
const LOG_GROUP_SUFFIXES: [&str; 4] = ["/performance", "/application", "/dataplane", "/host"];

/// A log group name is 1..=512 characters of `[\.\-_/#A-Za-z0-9]`.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_CreateLogGroup.html>
pub(super) const MAX_LOG_GROUP_NAME: usize = 512;

/// `retentionInDays` values `PutRetentionPolicy` accepts.
/// <https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutRetentionPolicy.html>
pub(super) const RETENTION_DAYS: [u64; 22] = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// Cluster names: the characters of a log group name, short enough that every group fits.
pub(super) fn cluster_name(s: &str) -> Result<String, ErrorKind> {
    let invalid = |reason: String| ErrorKind::InvalidClusterName {
        value: s.to_owned(),
        reason,
    };
    if s.is_empty() {
        return Err(invalid("must not be empty".into()));
    }
    if let Some(c) = s.chars().find(|c| !is_log_group_char(*c)) {
        return Err(invalid(format!(
            "{c:?} cannot appear in a log group name; allowed are letters, digits and . - _ / #"
        )));
    }
    let longest = LOG_GROUP_SUFFIXES.iter().map(|s| s.len()).max().unwrap_or(0);
    let max = MAX_LOG_GROUP_NAME - LOG_GROUP_PREFIX.len() - longest;
    if s.len() > max {
        return Err(invalid(format!(
            "{} characters; at most {max} fit in the log group name \
             {LOG_GROUP_PREFIX}<cluster>/performance ({MAX_LOG_GROUP_NAME} characters)",
            s.len()
        )));
    }
    Ok(s.to_owned())
}

/// `kinsight.logs.application_log_group`: a log group name with the placeholders of
/// `logs::route::APPLICATION_GROUP_PLACEHOLDERS`. Valid when it is a group name with each
/// placeholder one character long; a name that grows too long once filled in falls back to the
/// Container Insights group at run time (`logs::route::application_group`).
pub(super) fn application_group_template(s: &str) -> Result<String, ErrorKind> {
    let filled = crate::logs::route::APPLICATION_GROUP_PLACEHOLDERS
        .iter()
        .fold(s.to_owned(), |t, p| t.replace(p, "x"));
    if let Some(open) = filled.find('{') {
        let close = filled[open..].find('}').map_or(filled.len(), |c| open + c + 1);
        return Err(ErrorKind::invalid(format!(
            "unknown placeholder {}; known are {}",
            &filled[open..close],
            crate::logs::route::APPLICATION_GROUP_PLACEHOLDERS.join(", ")
        )));
    }
    if let Some(c) = filled.chars().find(|c| !is_log_group_char(*c)) {
        return Err(ErrorKind::invalid(format!(
            "{c:?} cannot appear in a log group name; allowed are letters, digits and . - _ / #"
        )));
    }
    if filled.is_empty() || filled.len() > MAX_LOG_GROUP_NAME {
        return Err(ErrorKind::invalid(format!(
            "a log group name is 1 to {MAX_LOG_GROUP_NAME} characters"
        )));
    }
    Ok(s.to_owned())
}

pub(super) fn is_log_group_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#')
}

/// A region is one label of every service host name (`monitoring.us-east-1.amazonaws.com`), and
/// a DNS label is at most 63 octets (RFC 1035, section 2.3.4).
const MAX_REGION: usize = 63;

/// `RoleArn` of `AssumeRole` is 20 to 2048 characters.
/// <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>
const ROLE_ARN_LEN: std::ops::RangeInclusive<usize> = 20..=2048;

/// A Kubernetes node name is a DNS subdomain name: at most 253 characters (RFC 1123, as
/// <https://kubernetes.io/docs/concepts/overview/working-with-objects/names/> states).
const MAX_NODE_NAME: usize = 253;

/// `PATH_MAX` of Linux (`include/uapi/linux/limits.h`): 4096 bytes with the final NUL.
const MAX_PATH: usize = 4095;

/// Refuses a value longer than `max` bytes before any other rule looks at it.
fn at_most(s: &str, max: usize, what: &str) -> Result<(), ErrorKind> {
    if s.len() > max {
        return Err(ErrorKind::invalid(format!(
            "{what} of {} bytes; at most {max} are allowed",
            s.len()
        )));
    }
    Ok(())
}

/// A node name: non-empty, at most 253 characters.
pub(super) fn node_name(s: &str) -> Result<String, ErrorKind> {
    at_most(s, MAX_NODE_NAME, "a node name")?;
    non_empty(s)
}

/// AWS regions: lowercase letters, digits and `-` (`us-east-1`, `us-gov-west-1`).
pub(super) fn region(s: &str) -> Result<String, ErrorKind> {
    at_most(s, MAX_REGION, "a region")?;
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ErrorKind::invalid(format!(
            "invalid region {s:?}; expected lowercase letters, digits and '-', as in \"us-east-1\""
        )))
    }
}

/// IAM role ARNs: `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
pub(super) fn role_arn(s: &str) -> Result<String, ErrorKind> {
    if !ROLE_ARN_LEN.contains(&s.len()) {
        return Err(ErrorKind::invalid(format!(
            "a role ARN of {} bytes; AssumeRole takes {} to {}",
            s.len(),
            ROLE_ARN_LEN.start(),
            ROLE_ARN_LEN.end()
        )));
    }
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let ok = matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if partition.starts_with("aws")
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.len() > "role/".len()
                && resource.starts_with("role/")
    );
    if ok {
        Ok(s.to_owned())
    } else {
        Err(ErrorKind::invalid(format!(
            "invalid role ARN {s:?}; expected arn:aws:iam::<12-digit account>:role/<name>"
        )))
    }
}

/// A host name is at most 253 characters (RFC 1035 section 2.3.4, as written in text).
const MAX_HOST: usize = 253;

/// An endpoint override, parsed by the WHATWG URL rules (the `url` crate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    /// The URL as the parser normalised it (no trailing `/` for an empty path): what was checked
    /// is exactly what the SDK is given.
    pub url: String,
    /// The host alone, for the startup warning.
    pub host: String,
    /// `http://` to a host that is not loopback.
    pub is_plain_http: bool,
}

/// An endpoint override: an `http`/`https` URL, or a bare host (with an optional port) that
/// means `https://<host>`. The parser decides the host the way the request will see it: in
/// `http://evil.example\@localhost` the `\` ends the host (WHATWG URL, "special" schemes), so
/// the host is `evil.example`, not loopback. User info (`user:pass@`) is refused: the SDK signs
/// with the agent's credentials and would send these to the host as well, and the value would be
/// logged. Only a scheme, host, port and path are allowed.
pub(super) fn endpoint(s: &str) -> Result<Endpoint, ErrorKind> {
    at_most(s, MAX_PATH, "an endpoint")?;
    let shown = redacted(s);
    let bad = |why: &str| {
        ErrorKind::invalid(format!(
            "invalid endpoint {shown:?}: {why}; expected an http or https URL or a host name"
        ))
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace"));
    }
    let text = if s.contains("://") {
        s.to_owned()
    } else {
        format!("https://{s}")
    };
    let url = url::Url::parse(&text).map_err(|e| bad(&e.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad(&format!("scheme {:?} is not http or https", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries user information (user:password@); an endpoint must not"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => format!("[{ip}]"),
        _ => return Err(bad("no host")),
    };
    at_most(&host, MAX_HOST, "an endpoint host")?;
    let is_loopback = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    let mut normalised = url.to_string();
    if url.path() == "/" {
        normalised.pop();
    }
    Ok(Endpoint {
        url: normalised,
        host,
        is_plain_http: url.scheme() == "http" && !is_loopback,
    })
}

/// `s` with anything between `://` and the last `@` before the path replaced by `***`, so that a
/// refused URL is named without its password.
fn redacted(s: &str) -> String {
    let (scheme, rest) = s.split_once("://").map_or(("", s), |(a, b)| (a, b));
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let authority = match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_owned(),
    };
    if scheme.is_empty() {
        format!("{authority}{path}")
    } else {
        format!("{scheme}://{authority}{path}")
    }
}

/// A file-name glob on a `/var/log/containers` basename: only `*` and `?` are wildcards.
pub(super) fn glob(s: &str) -> Result<String, ErrorKind> {
    let bad = |reason| ErrorKind::InvalidGlob {
        glob: s.to_owned(),
        reason,
    };
    if s.is_empty() {
        return Err(bad("must not be empty"));
    }
    if s.contains('/') {
        return Err(bad("matches a file name, so it cannot contain '/'"));
    }
    if s.contains(['[', ']', '{', '}', '\\']) {
        return Err(bad("only '*' and '?' are wildcards; [ ] { } \\ are not supported"));
    }
    Ok(s.to_owned())
}

/// A node-local exporter's URL: `http://host[:port]/path`. Plain HTTP only: the exporters
/// (dcgm-exporter, neuron-monitor) serve plain HTTP on the node, and nothing secret is sent.
pub(super) fn exporter_url(s: &str) -> Result<url::Url, ErrorKind> {
    let u = url::Url::parse(s).map_err(|e| ErrorKind::invalid(format!("{s:?} is not a URL: {e}")))?;
    if u.scheme() != "http" || u.host_str().is_none_or(str::is_empty) {
        return Err(ErrorKind::invalid(format!(
            "{s:?} must be an http://host[:port]/path URL"
        )));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(ErrorKind::invalid(
            "user information is not allowed in the URL".to_string(),
        ));
    }
    Ok(u)
}

/// An absolute host path. `.` and `..` components are refused: every host path is resolved
/// under `--host-root`, and a `..` could only mean leaving the directory it names.
pub(super) fn absolute_path(s: &str) -> Result<PathBuf, ErrorKind> {
    at_most(s, MAX_PATH, "a path")?;
    let path = PathBuf::from(s);
    if !path.is_absolute() {
        return Err(ErrorKind::NotAbsolute { value: s.to_owned() });
    }
    if s.split('/').any(|c| c == "." || c == "..") {
        return Err(ErrorKind::invalid(format!(
            "{s:?}: '.' and '..' components are not allowed (paths are resolved under the host root)"
        )));
    }
    Ok(path)
}

pub(super) fn non_empty(s: &str) -> Result<String, ErrorKind> {
    if s.is_empty() {
        Err(ErrorKind::invalid("must not be empty"))
    } else {
        Ok(s.to_owned())
    }
}

/// A regular expression in the `regex` crate's syntax (no look-around).
pub(super) fn regex(s: &str) -> Result<String, ErrorKind> {
    match regex::Regex::new(s) {
        Ok(_) => Ok(s.to_owned()),
        Err(e) => Err(ErrorKind::InvalidRegex {
            pattern: s.to_owned(),
            msg: one_line_regex_error(&e),
        }),
    }
}

/// `regex::Error` prints the pattern with a caret under the fault and the message on a last
/// line starting `error: `; the pattern is already in our message, so keep that line.
fn one_line_regex_error(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .rev()
        .find_map(|line| line.trim().strip_prefix("error: "))
        .map_or_else(|| text.split_whitespace().collect::<Vec<_>>().join(" "), str::to_owned)
}

/// `IP:PORT`, as in `0.0.0.0:9464` or `[::]:9464`.
pub(super) fn socket_address(s: &str) -> Result<SocketAddr, ErrorKind> {
    s.parse().map_err(|_| {
        ErrorKind::invalid(format!(
            "invalid socket address {s:?}; expected IP:PORT, as in \"0.0.0.0:9464\", or null to \
             disable the endpoint"
        ))
    })
}

/// A path given with `dir:` or `file:` (in the container, relative or absolute) may not climb
/// with `..`: it names a directory or file, never a way out of one.
fn no_parent_components(s: &str) -> Result<(), ErrorKind> {
    at_most(s, MAX_PATH, "a path")?;
    if s.split('/').any(|c| c == "..") {
        return Err(ErrorKind::invalid(format!("{s:?}: '..' components are not allowed")));
    }
    Ok(())
}

/// `cloudwatch`, `stdout` or `dir:PATH` (config key `kinsight.output` and the `--output` flag).
pub(super) fn output(s: &str) -> Result<OutputKind, ErrorKind> {
    match s {
        "cloudwatch" => Ok(OutputKind::Cloudwatch),
        "stdout" => Ok(OutputKind::Stdout),
        _ => match s.strip_prefix("dir:") {
            Some("") => Err(ErrorKind::invalid(
                "\"dir:\" needs a directory, as in \"dir:/tmp/kinsight\"",
            )),
            Some(dir) => no_parent_components(dir).map(|()| OutputKind::Dir(PathBuf::from(dir))),
            None => Err(ErrorKind::InvalidValue {
                value: s.to_owned(),
                allowed: vec!["cloudwatch", "stdout", "dir:PATH"],
            }),
        },
    }
}

/// `apiserver`, `runtime`, `file:PATH` or `none`.
pub(super) fn metadata_source(s: &str) -> Result<MetadataSource, ErrorKind> {
    match s {
        "apiserver" => Ok(MetadataSource::Apiserver),
        "none" => Ok(MetadataSource::None),
        "runtime" => Ok(MetadataSource::Runtime),
        _ => match s.strip_prefix("file:") {
            Some("") => Err(ErrorKind::invalid(
                "\"file:\" needs the path of a PodList JSON file, as in \"file:/tmp/pods.json\"",
            )),
            Some(file) => no_parent_components(file).map(|()| MetadataSource::File(PathBuf::from(file))),
            None => Err(ErrorKind::InvalidValue {
                value: s.to_owned(),
                allowed: vec!["apiserver", "runtime", "file:PATH", "none"],
            }),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn application_group_templates_are_group_names_with_known_placeholders() {
        let ok = "/aws/containerinsights/{cluster_name}/application/{namespace_name}";
        assert_eq!(application_group_template(ok).unwrap(), ok);
        assert!(application_group_template("/eks/{namespace_name}/{pod_name}/{container_name}").is_ok());
        assert_eq!(
            application_group_template("/eks/{namespace}").unwrap_err().to_string(),
            "unknown placeholder {namespace}; known are {cluster_name}, {namespace_name}, {pod_name}, {container_name}"
        );
        assert!(
            application_group_template("/eks/{pod_name")
                .unwrap_err()
                .to_string()
                .starts_with("unknown placeholder {pod_name;")
        );
        assert!(
            application_group_template("/eks/{pod_name}:x")
                .unwrap_err()
                .to_string()
                .starts_with("':' cannot appear")
        );
        assert!(application_group_template("").is_err());
        assert!(application_group_template(&"a".repeat(513)).is_err());
    }

    #[test]
    fn cluster_names_follow_the_log_group_rule() {
        assert!(cluster_name("my-cluster_1.prod/#x").is_ok());
        assert!(cluster_name("").is_err());
        assert_eq!(
            cluster_name("my cluster").unwrap_err().to_string(),
            "invalid cluster name \"my cluster\": ' ' cannot appear in a log group name; \
             allowed are letters, digits and . - _ / #"
        );
        // 512 - len("/aws/containerinsights/") - len("/performance") = 477.
        assert!(cluster_name(&"a".repeat(477)).is_ok());
        let long = cluster_name(&"a".repeat(478)).unwrap_err().to_string();
        assert!(long.contains("478 characters; at most 477 fit"), "{long}");
    }

    #[test]
    fn regions_and_role_arns() {
        assert!(region("us-east-1").is_ok());
        assert!(region("us-gov-west-1").is_ok());
        assert!(region("US-EAST-1").is_err());
        assert!(region("us_east_1").is_err());
        assert!(region("").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:role/kinsight").is_ok());
        assert!(role_arn("arn:aws-cn:iam::123456789012:role/path/name").is_ok());
        assert!(role_arn("arn:aws:iam::12345:role/x").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:user/x").is_err());
        assert!(role_arn("arn:aws:iam::123456789012:role/").is_err());
        assert!(role_arn("kinsight").is_err());
    }

    #[test]
    fn lengths_are_bounded_where_aws_and_linux_bound_them() {
        assert!(region(&"a".repeat(63)).is_ok());
        let e = region(&"a".repeat(10 * 1024 * 1024)).unwrap_err().to_string();
        assert_eq!(e, "a region of 10485760 bytes; at most 63 are allowed");
        let arn = format!("arn:aws:iam::123456789012:role/{}", "r".repeat(2048 - 31));
        assert_eq!(arn.len(), 2048);
        assert!(role_arn(&arn).is_ok());
        assert!(
            role_arn(&format!("{arn}r"))
                .unwrap_err()
                .to_string()
                .contains("AssumeRole takes 20 to 2048")
        );
        assert!(node_name(&"n".repeat(253)).is_ok());
        assert!(node_name(&"n".repeat(254)).is_err());
        assert!(node_name("").is_err());
        assert!(absolute_path(&format!("/{}", "p".repeat(4094))).is_ok());
        assert!(absolute_path(&format!("/{}", "p".repeat(4095))).is_err());
    }

    #[test]
    fn dir_and_file_paths_may_not_climb() {
        assert!(output("dir:/tmp/../etc").is_err());
        assert!(output("dir:out/x").is_ok());
        assert!(metadata_source("file:../pods.json").is_err());
        assert!(metadata_source("file:/var/lib/../pods.json").is_err());
        assert!(metadata_source("file:/tmp/pods.json").is_ok());
    }

    #[test]
    fn endpoints_become_urls_and_flag_plain_http() {
        let ok = |s: &str| {
            let e = endpoint(s).unwrap();
            (e.url, e.host, e.is_plain_http)
        };
        let owned = |u: &str, h: &str, plain| (u.to_owned(), h.to_owned(), plain);
        assert_eq!(
            ok("logs.example.com"),
            owned("https://logs.example.com", "logs.example.com", false)
        );
        assert_eq!(
            ok("http://127.0.0.1:4566"),
            owned("http://127.0.0.1:4566", "127.0.0.1", false)
        );
        assert_eq!(
            ok("http://localhost:4566/"),
            owned("http://localhost:4566", "localhost", false)
        );
        assert_eq!(ok("http://[::1]:4566"), owned("http://[::1]:4566", "[::1]", false));
        assert_eq!(
            ok("https://vpce-1.logs.us-east-1.vpce.amazonaws.com/base"),
            owned(
                "https://vpce-1.logs.us-east-1.vpce.amazonaws.com/base",
                "vpce-1.logs.us-east-1.vpce.amazonaws.com",
                false
            )
        );
        assert!(ok("http://vpce.example.com").2);
        assert!(endpoint("ftp://x").is_err());
        assert!(endpoint("https://").is_err());
        assert!(endpoint("").is_err());
        assert!(endpoint("a b").is_err());
    }

    #[test]
    fn the_host_is_the_one_the_request_would_reach() {
        // A backslash ends the host of an http(s) URL (WHATWG): this is evil.example, plain.
        let e = endpoint("http://evil.example\\@localhost").unwrap();
        assert_eq!((e.host.as_str(), e.is_plain_http), ("evil.example", true));
        assert_eq!(e.url, "http://evil.example/@localhost");
        // Loopback in disguise is still loopback; a loopback-looking name is not.
        assert!(!endpoint("http://127.1:4566").unwrap().is_plain_http);
        assert!(!endpoint("http://LOCALHOST:4566").unwrap().is_plain_http);
        assert!(endpoint("http://localhost.evil.example").unwrap().is_plain_http);
        assert!(endpoint("http://127.0.0.1.nip.io").unwrap().is_plain_http);
    }

    #[test]
    fn user_information_is_refused_and_never_echoed() {
        for s in [
            "https://user:hunter2@monitoring.us-east-1.amazonaws.com",
            "https://user@monitoring.us-east-1.amazonaws.com",
            "user:hunter2@monitoring.us-east-1.amazonaws.com",
            "http://evil.example:hunter2@localhost",
        ] {
            let e = endpoint(s).unwrap_err().to_string();
            assert!(e.contains("user information"), "{s}: {e}");
            assert!(!e.contains("hunter2"), "{s}: {e}");
        }
        assert!(endpoint("https://h.example/?x=1").is_err());
        assert!(endpoint("https://h.example/#x").is_err());
        assert!(endpoint(&format!("https://{}.example", "a".repeat(250))).is_err());
    }

    #[test]
    fn globs_paths_and_regexes() {
        assert!(glob("aws-node*").is_ok());
        assert!(glob("kube-?roxy*").is_ok());
        assert!(glob("").is_err());
        assert!(glob("/var/log/*").is_err());
        assert!(glob("[ab]*").is_err());
        assert!(absolute_path("/var/lib/kinsight").is_ok());
        assert!(absolute_path("var/lib").is_err());
        assert!(regex(r"^\S").is_ok());
        assert_eq!(
            regex("(abc").unwrap_err().to_string(),
            "invalid regular expression \"(abc\": unclosed group"
        );
    }

    #[test]
    fn outputs_and_sources() {
        assert_eq!(output("stdout"), Ok(OutputKind::Stdout));
        assert_eq!(output("dir:/tmp/x"), Ok(OutputKind::Dir("/tmp/x".into())));
        assert!(output("dir:").is_err());
        assert_eq!(
            output("file").unwrap_err().to_string(),
            "invalid value \"file\"; expected one of \"cloudwatch\", \"stdout\", \"dir:PATH\""
        );
        assert_eq!(
            metadata_source("file:/p.json"),
            Ok(MetadataSource::File("/p.json".into()))
        );
        assert!(metadata_source("file:").is_err());
        assert!(metadata_source("kubelet").is_err());
        assert_eq!(metadata_source("runtime"), Ok(MetadataSource::Runtime));
        assert!(socket_address("0.0.0.0:9464").is_ok());
        assert!(socket_address("[::]:9464").is_ok());
        assert!(socket_address("localhost:9464").is_err());
    }
}
