//! Unit tests of whole loads: defaults, precedence rules and cross-key rules. Per-value rules
//! are tested beside their code (`values.rs`, `walk.rs`, `error.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::*;

fn inputs() -> Inputs {
    Inputs {
        env: Env::default(),
        output_override: None,
        host_name_fallback: "test-node".into(),
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
    }
}

fn local() -> Inputs {
    Inputs {
        output_override: Some(OutputKind::Stdout),
        ..inputs()
    }
}

fn ok(text: &str, inputs: &Inputs) -> Config {
    match load_str(text, inputs) {
        Ok(cfg) => cfg,
        Err(e) => panic!("expected a valid config, got:\n{e}"),
    }
}

fn errors(text: &str, inputs: &Inputs) -> Vec<String> {
    match load_str(text, inputs) {
        Ok(cfg) => panic!("expected errors, got {cfg:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

const NAMED: &str = r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"c1"}}}}"#;

#[test]
fn an_empty_object_takes_every_default() {
    let cfg = ok("{}", &local());
    assert_eq!(cfg.cluster_name, "local");
    assert_eq!(cfg.cluster_name_source, ClusterNameSource::LocalDefault);
    assert_eq!(cfg.node_name, "test-node");
    assert_eq!(cfg.region, None);
    assert_eq!(cfg.interval, Duration::from_mins(1));
    assert!(!cfg.debug);
    assert_eq!(cfg.output, OutputKind::Stdout);
    let k = &cfg.kubernetes;
    assert!(!k.enhanced_container_insights && !k.prefer_full_pod_name);
    assert!(k.tag_service && k.accelerated_compute_metrics && !k.disable_metric_extraction);
    assert_eq!(k.kube_config_path, None);
    let m = &cfg.metrics;
    assert_eq!(m.destination, MetricsDestination::PutMetricData);
    assert_eq!(m.metadata_source, MetadataSource::None);
    assert_eq!((m.endpoint_override.as_deref(), m.queue_intervals), (None, 5));
    assert_eq!(m.leader_lease, std::time::Duration::from_mins(1));
    let l = &cfg.logs;
    assert!(l.enabled && l.create_log_groups && !l.honour_exclude_annotation);
    assert_eq!(l.disk_pressure_free_percent, 15);
    assert_eq!(l.buffer_bytes, 3 << 20);
    assert_eq!(l.put_concurrency, 16);
    assert!(
        !l.labels && !l.annotations,
        "the Fluent Bit set-up has Labels Off, Annotations Off"
    );
    let fluentd = ok(r#"{"kinsight": {"logs": {"record_profile": "fluentd"}}}"#, &local());
    assert!(fluentd.logs.labels, "the fluentd set-up kept labels");
    assert_eq!(l.record_profile, RecordProfile::FluentBit);
    assert_eq!(l.stream_names, StreamNames::FluentBit);
    assert!(l.exclude_container_globs.is_empty());
    assert_eq!(l.dataplane_container_globs, ["aws-node*", "kube-proxy*"]);
    assert_eq!(
        l.dataplane_units,
        ["kubelet.service", "containerd.service", "docker.service"]
    );
    assert_eq!(l.host_source, HostLogSource::Files);
    let host_files: Vec<PathBuf> = ["/var/log/messages", "/var/log/secure", "/var/log/dmesg"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(l.host_files, host_files);
    assert_eq!(l.multiline, None, "the record profile's default");
    assert_eq!(l.partial_flush_timeout, Duration::from_secs(5));
    assert_eq!(l.max_event_bytes, 1_048_550);
    assert_eq!(l.oversize_event, OversizeEvent::Truncate);
    assert_eq!(l.flush_interval, Duration::from_secs(5));
    assert_eq!(l.retention_days, None);
    assert_eq!(l.application_log_group, None);
    assert_eq!(l.shutdown_grace, Duration::from_secs(25));
    assert_eq!(l.force_flush_interval, Duration::from_secs(5));
    assert_eq!(l.endpoint_override, None);
    assert_eq!(cfg.paths.state_dir, PathBuf::from("/var/lib/kinsight"));
    assert_eq!(cfg.paths.pod_logs_dir, PathBuf::from("/var/log/pods"));
    assert_eq!(cfg.paths.container_logs_dir, PathBuf::from("/var/log/containers"));
    assert_eq!(
        cfg.identity,
        IdentitySettings {
            require_workload_identity: false,
            agent_role_arn: None,
            logs_role_arn: None
        }
    );
    // No POD_IP in these inputs: loopback, never every interface unless asked.
    let addr: SocketAddr = "127.0.0.1:9464".parse().unwrap();
    assert_eq!(cfg.telemetry.listen_address, Some(addr));
    assert_eq!(cfg.telemetry.log_format, LogFormat::Text);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn the_embedded_default_is_a_quiet_local_run() {
    let cfg = ok(DEFAULT_CONFIG, &inputs());
    assert_eq!(cfg.output, OutputKind::Stdout);
    assert_eq!(cfg.interval, Duration::from_secs(10));
    assert_eq!(cfg.cluster_name_source, ClusterNameSource::LocalDefault);
    assert_eq!(cfg.metrics.metadata_source, MetadataSource::None);
    // Logs on, with checkpoints in /tmp: a local run shows this machine's logs without writing
    // to /var/lib.
    assert!(cfg.logs.enabled);
    assert_eq!(cfg.paths.state_dir, std::path::Path::new("/tmp/kinsight-state"));
    assert_eq!(cfg.telemetry.listen_address, None);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn interval_follows_tick_1() {
    let both = r#"{"agent":{"metrics_collection_interval":30},
        "logs":{"metrics_collected":{"kubernetes":{"metrics_collection_interval":15}}}}"#;
    assert_eq!(ok(both, &local()).interval, Duration::from_secs(15));
    let agent_only = r#"{"agent":{"metrics_collection_interval":30}}"#;
    assert_eq!(ok(agent_only, &local()).interval, Duration::from_secs(30));
    assert_eq!(ok("{}", &local()).interval, Duration::from_mins(1));
}

#[test]
fn enhanced_forces_full_pod_names_and_granularity_above_one_means_enhanced() {
    let k = |text: &str| ok(text, &local()).kubernetes;
    let enhanced = k(r#"{"logs":{"metrics_collected":{"kubernetes":
        {"enhanced_container_insights":true,"prefer_full_pod_name":false}}}}"#);
    assert!(enhanced.enhanced_container_insights && enhanced.prefer_full_pod_name);
    let legacy = k(r#"{"logs":{"metrics_collected":{"kubernetes":{"metric_granularity":2}}}}"#);
    assert!(legacy.enhanced_container_insights && legacy.prefer_full_pod_name);
    let one = k(r#"{"logs":{"metrics_collected":{"kubernetes":{"metric_granularity":1}}}}"#);
    assert!(!one.enhanced_container_insights && !one.prefer_full_pod_name);
    let full = k(r#"{"logs":{"metrics_collected":{"kubernetes":{"prefer_full_pod_name":true}}}}"#);
    assert!(!full.enhanced_container_insights && full.prefer_full_pod_name);
    assert_eq!(
        errors(
            r#"{"logs":{"metrics_collected":{"kubernetes":{"metric_granularity":0}}}}"#,
            &local()
        ),
        ["logs.metrics_collected.kubernetes.metric_granularity: must be greater than 0, got 0"]
    );
}

#[test]
fn node_name_precedence() {
    let mut inputs = local();
    assert_eq!(ok("{}", &inputs).node_name, "test-node");
    inputs.env.host_name = Some("from-env".into());
    assert_eq!(ok("{}", &inputs).node_name, "from-env");
    let host_name = r#"{"logs":{"metrics_collected":{"kubernetes":{"host_name":"from-k8s"}}}}"#;
    assert_eq!(ok(host_name, &inputs).node_name, "from-k8s");
    let both = r#"{"kinsight":{"node_name":"from-kinsight"},
        "logs":{"metrics_collected":{"kubernetes":{"host_name":"from-k8s"}}}}"#;
    assert_eq!(ok(both, &inputs).node_name, "from-kinsight");
}

#[test]
fn region_precedence_and_validation() {
    let mut inputs = local();
    assert_eq!(ok("{}", &inputs).region, None);
    inputs.env.aws_region = Some("eu-west-1".into());
    assert_eq!(ok("{}", &inputs).region.as_deref(), Some("eu-west-1"));
    let file = r#"{"agent":{"region":"us-west-2"}}"#;
    assert_eq!(ok(file, &inputs).region.as_deref(), Some("us-west-2"));
    inputs.env.aws_region = Some("Not A Region".into());
    assert_eq!(ok(file, &inputs).region.as_deref(), Some("us-west-2"));
    assert_eq!(
        errors("{}", &inputs),
        [
            "env AWS_REGION: invalid region \"Not A Region\"; expected lowercase letters, digits \
          and '-', as in \"us-east-1\""
        ]
    );
}

#[test]
fn output_override_wins_and_decides_the_cluster_name_fallback() {
    let dir = r#"{"kinsight":{"output":"dir:/tmp/out"}}"#;
    assert_eq!(ok(dir, &inputs()).output, OutputKind::Dir("/tmp/out".into()));
    assert_eq!(ok(dir, &local()).output, OutputKind::Stdout);
    // A cloudwatch override makes the local file need a cluster name.
    let cloudwatch = Inputs {
        output_override: Some(OutputKind::Cloudwatch),
        ..inputs()
    };
    assert_eq!(
        load_str(dir, &cloudwatch).unwrap_err().0[0].kind,
        ErrorKind::MissingClusterName
    );
    assert_eq!(ok(NAMED, &inputs()).output, OutputKind::Cloudwatch);
}

#[test]
fn cluster_name_precedence() {
    let mut inputs = inputs();
    assert_eq!(
        errors("{}", &inputs),
        [
            "logs.metrics_collected.kubernetes.cluster_name: cluster name is not set; set this key \
          in cwagentconfig.json or the K8S_CLUSTER_NAME environment variable, or run with \
          --output stdout or --output dir:PATH for a local run"
        ]
    );
    inputs.env.k8s_cluster_name = Some("from-env".into());
    let cfg = ok("{}", &inputs);
    assert_eq!(
        (cfg.cluster_name.as_str(), cfg.cluster_name_source),
        ("from-env", ClusterNameSource::Env)
    );
    let cfg = ok(NAMED, &inputs);
    assert_eq!(
        (cfg.cluster_name.as_str(), cfg.cluster_name_source),
        ("c1", ClusterNameSource::Config)
    );
    inputs.env.k8s_cluster_name = Some("bad name".into());
    assert_eq!(
        errors("{}", &inputs),
        [
            "env K8S_CLUSTER_NAME: invalid cluster name \"bad name\": ' ' cannot appear in a log \
          group name; allowed are letters, digits and . - _ / #"
        ]
    );
    // A bad name in the file is one error, not also "not set".
    let bad = r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":""}}}}"#;
    assert_eq!(errors(bad, &inputs).len(), 1);
}

#[test]
fn metadata_source_defaults_to_apiserver_in_a_cluster_or_with_a_kubeconfig() {
    let mut inputs = local();
    assert_eq!(ok("{}", &inputs).metrics.metadata_source, MetadataSource::None);
    let kubeconfig = r#"{"logs":{"metrics_collected":{"kubernetes":{"kube_config_path":"/root/.kube/config"}}}}"#;
    let cfg = ok(kubeconfig, &inputs);
    assert_eq!(cfg.metrics.metadata_source, MetadataSource::Apiserver);
    assert_eq!(
        cfg.kubernetes.kube_config_path,
        Some(PathBuf::from("/root/.kube/config"))
    );
    inputs.env.kubernetes_service_host = Some("10.100.0.1".into());
    assert_eq!(ok("{}", &inputs).metrics.metadata_source, MetadataSource::Apiserver);
    let none = r#"{"kinsight":{"metrics":{"metadata_source":"none"}}}"#;
    assert_eq!(ok(none, &inputs).metrics.metadata_source, MetadataSource::None);
}

#[test]
fn the_containerd_socket_defaults_to_its_standard_path_and_must_be_absolute() {
    let inputs = local();
    let cfg = ok("{}", &inputs);
    assert_eq!(
        cfg.paths.containerd_socket,
        PathBuf::from("/run/containerd/containerd.sock")
    );
    let custom = r#"{"kinsight":{"paths":{"containerd_socket":"/var/run/k3s/containerd/containerd.sock"},
                                 "metrics":{"metadata_source":"runtime"}}}"#;
    let cfg = ok(custom, &inputs);
    assert_eq!(
        cfg.paths.containerd_socket,
        PathBuf::from("/var/run/k3s/containerd/containerd.sock")
    );
    assert_eq!(cfg.metrics.metadata_source, MetadataSource::Runtime);
    let relative = r#"{"kinsight":{"paths":{"containerd_socket":"run/containerd.sock"}}}"#;
    assert!(load_str(relative, &inputs).is_err());
}

#[test]
fn misspelt_keys_get_a_suggestion() {
    let text = r#"{"logs":{"metrics_collected":{"kubernetes":{"metrics_colection_interval":60}}}}"#;
    assert_eq!(
        errors(text, &local()),
        [
            "logs.metrics_collected.kubernetes.metrics_colection_interval: unknown key; did you \
          mean \"metrics_collection_interval\"?"
        ]
    );
    assert_eq!(
        errors(r#"{"kinsigth":{}}"#, &local()),
        ["kinsigth: unknown key; did you mean \"kinsight\"?"]
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let text = r#"{
        "agent": {"debug": "yes"},
        "logs": {"force_flush_interval": 0},
        "kinsight": {"metrics": {"destination": "cloudwatch"}}
    }"#;
    assert_eq!(
        errors(text, &local()),
        [
            "agent.debug: expected a boolean, got a string",
            "kinsight.metrics.destination: invalid value \"cloudwatch\"; expected one of \
             \"put_metric_data\", \"emf\", \"both\"",
            "logs.force_flush_interval: must be 1..=172800 seconds, got 0",
        ]
    );
}

#[test]
fn disable_metric_extraction_needs_a_destination_that_sends_events() {
    let text = |dest: &str| {
        format!(
            r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"disable_metric_extraction":true}}}}}},
                "kinsight":{{"metrics":{{"destination":"{dest}"}}}}}}"#
        )
    };
    let e = errors(&text("put_metric_data"), &local());
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("logs.metrics_collected.kubernetes.disable_metric_extraction: true sends no metrics"),
        "{e:?}"
    );
    assert!(ok(&text("emf"), &local()).kubernetes.disable_metric_extraction);
    assert!(ok(&text("both"), &local()).kubernetes.disable_metric_extraction);
}

#[test]
fn pasted_cloudwatch_agent_sections_warn_once_each() {
    let text = r#"{
        "agent": {"logfile": "/opt/aws/amazon-cloudwatch-agent/logs/amazon-cloudwatch-agent.log",
                  "run_as_user": "root"},
        "metrics": {"namespace": "ContainerInsights"},
        "traces": {"traces_collected": {"app_signals": {}}},
        "logs": {"metrics_collected": {"kubernetes": {"cluster_name": "c1"},
                                       "app_signals": {}},
                 "logs_collected": {"files": {}}}
    }"#;
    let cfg = ok(text, &inputs());
    assert_eq!(
        cfg.warnings,
        [
            "agent.logfile: accepted for compatibility with the CloudWatch agent and ignored",
            "agent.run_as_user: accepted for compatibility with the CloudWatch agent and ignored",
            "logs.metrics_collected.app_signals: not implemented by kinsight and ignored",
            "section \"metrics\" is not implemented by kinsight and is ignored",
            "section \"traces\" is not implemented by kinsight and is ignored",
        ]
    );
}

#[test]
fn kueue_and_jmx_warn_only_when_true_and_plain_http_needs_the_environment_opt_in() {
    let text = r#"{"logs":{"endpoint_override":"http://logs.internal:8080",
        "metrics_collected":{"kubernetes":{"kueue_container_insights":true,
        "jmx_container_insights":false}}}}"#;
    assert_eq!(
        errors(text, &local()),
        [
            "logs.endpoint_override: plain http to logs.internal, which is not loopback, would send signed \
          requests and data unencrypted; use https, or set KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS=true in the DaemonSet"
        ]
    );
    let mut opted_in = local();
    opted_in.env.allow_plain_http_endpoints = true;
    let cfg = ok(text, &opted_in);
    assert_eq!(cfg.logs.endpoint_override.as_deref(), Some("http://logs.internal:8080"));
    assert_eq!(
        cfg.warnings,
        [
            "logs.endpoint_override: plain http to logs.internal (allowed by \
             KINSIGHT_ALLOW_PLAIN_HTTP_ENDPOINTS); data travels unencrypted",
            "logs.endpoint_override: endpoint override in effect; requests signed with the agent's \
             credentials go to logs.internal",
            "logs.metrics_collected.kubernetes.kueue_container_insights: not supported by \
             kinsight; ignored",
        ]
    );
}

#[test]
fn a_url_that_hides_its_host_or_carries_a_password_is_refused() {
    let text = r#"{"kinsight":{"metrics":{"endpoint_override":"http://evil.example\\@localhost"}},
        "logs":{"endpoint_override":"https://user:hunter2@logs.us-east-1.amazonaws.com"}}"#;
    let found = errors(text, &local());
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("kinsight.metrics.endpoint_override: plain http to evil.example"),
        "{found:?}"
    );
    assert!(found[1].contains("user information"), "{found:?}");
    assert!(!found.join("\n").contains("hunter2"), "{found:?}");
}

#[test]
fn collect_list_entries_are_read_with_the_agents_defaults() {
    let text = r#"{"logs": {
        "metrics_collected": {"kubernetes": {"cluster_name": "c1"}},
        "log_stream_name": "{hostname}",
        "logs_collected": {"files": {"collect_list": [
            {"file_path": "/var/log/app/server.log"},
            {"file_path": "/var/log/app/*.log", "publish_multi_logs": true,
             "log_stream_name": "{instance_id}-{ip_address}",
             "timestamp_format": "%Y-%m-%d %H:%M:%S", "timezone": "UTC",
             "multi_line_start_pattern": "{timestamp_format}", "trim_timestamp": true,
             "encoding": "latin1", "retention_in_days": 7, "log_group_class": "INFREQUENT_ACCESS",
             "blacklist": "^debug", "filters": [{"type": "exclude", "expression": "healthz"},
                                                {"type": "include", "expression": "GET|POST"}]}
        ]}}
    }}"#;
    let cfg = ok(text, &inputs());
    let [a, b] = cfg.logs.collect_list.as_slice() else {
        panic!("{:?}", cfg.logs.collect_list)
    };
    assert_eq!(a.file_path, "/var/log/app/server.log");
    assert_eq!(a.log_group_name, None);
    assert_eq!(a.log_stream_name, "{hostname}", "logs.log_stream_name is the default");
    assert_eq!(a.multi_line_start, MultiLineStart::Pattern(r"^[\S]".into()));
    assert!(!a.publish_multi_logs && a.filters.is_empty() && a.retention_in_days.is_none());
    assert_eq!(b.log_stream_name, "{instance_id}-{ip_address}");
    assert_eq!(b.multi_line_start, MultiLineStart::Timestamp);
    assert_eq!(b.encoding.as_deref(), Some("latin1"));
    assert_eq!(b.retention_in_days, Some(7));
    assert_eq!(b.log_group_class, Some(LogGroupClass::InfrequentAccess));
    assert!(b.timezone_utc && b.trim_timestamp && b.publish_multi_logs);
    assert_eq!(
        b.filters,
        [
            LogFilter {
                include: false,
                expression: "healthz".into()
            },
            LogFilter {
                include: true,
                expression: "GET|POST".into()
            },
        ]
    );
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn collect_list_errors_name_the_entry_and_the_field() {
    let text = r#"{"logs": {"logs_collected": {"files": {"collect_list": [
        {"file_path": "/var/log/../../etc/shadow"},
        {"file_path": "/var/log/app/*.log"},
        {"log_group_name": "g"},
        {"file_path": "/x.log", "log_group_name": "/g/{instanceid}", "log_stream_name": "a:b",
         "timestamp_format": "%Y-%Q", "encoding": "utf-16", "retention_in_days": 2,
         "filters": [{"type": "maybe", "expression": "("}], "auto_removal": true}
    ]}}}}"#;
    assert_eq!(
        errors(text, &local()),
        [
            "logs.logs_collected.files.collect_list[0].file_path: \"/var/log/../../etc/shadow\": '.' and '..' \
             components are not allowed (paths are resolved under the host root)",
            "logs.logs_collected.files.collect_list[1].log_group_name: required here: the default, the file \
             path without its extension (\"/var/log/app/*\"), is not a valid log group name ('*' cannot appear \
             in a log group name; allowed are letters, digits and . - _ / #)",
            "logs.logs_collected.files.collect_list[2].file_path: required: the file, or file name pattern, \
             to collect",
            "logs.logs_collected.files.collect_list[3].encoding: \"utf-16\": UTF-16 files are not supported by \
             kinsight (their lines do not end in a single '\\n' byte)",
            "logs.logs_collected.files.collect_list[3].filters[0].expression: invalid regular expression \"(\": \
             unclosed group",
            "logs.logs_collected.files.collect_list[3].filters[0].type: invalid value \"maybe\"; expected one of \
             \"include\", \"exclude\"",
            "logs.logs_collected.files.collect_list[3].log_group_name: unknown placeholder {instanceid}; known \
             are {instance_id}, {hostname}, {local_hostname}, {ip_address}",
            "logs.logs_collected.files.collect_list[3].log_stream_name: ':' and '*' cannot appear in a log \
             stream name",
            "logs.logs_collected.files.collect_list[3].retention_in_days: must be -1 or one of 1, 3, 5, 7, 14, \
             30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (days, as \
             PutRetentionPolicy allows), got 2",
            "logs.logs_collected.files.collect_list[3].timestamp_format: unknown directive %Q (supported: %Y %y \
             %m %-m %B %b %d %-d %A %a %H %I %-I %M %-M %S %-S %p %f %Z %z %%)",
        ]
    );
}

/// `kinsight.logs.multiline` takes one rule or a list of them, each a pattern or a preset.
#[test]
fn multiline_rules_are_a_pattern_or_a_preset_one_or_several() {
    let one = ok(
        r#"{"kinsight":{"logs":{"multiline":{"first_line_regex":"^\\S"}}}}"#,
        &local(),
    );
    assert_eq!(
        one.logs.multiline.unwrap(),
        [Multiline {
            start: MultilineStart::FirstLineRegex(r"^\S".to_owned()),
            container_globs: vec!["*".to_owned()],
        }]
    );
    let several = ok(
        r#"{"kinsight":{"logs":{"multiline":[
            {"preset":"java","container_globs":["orders-*","billing-*"]},
            {"preset":"python","container_globs":["ml-*"]},
            {"preset":"go"},
            {"first_line_regex":"^\\d{4}-","container_globs":["legacy-*"]}]}}}"#,
        &local(),
    );
    let several = several.logs.multiline.unwrap();
    let starts: Vec<_> = several.iter().map(|m| m.start.clone()).collect();
    assert_eq!(
        starts,
        [
            MultilineStart::Preset(MultilinePreset::Java),
            MultilineStart::Preset(MultilinePreset::Python),
            MultilineStart::Preset(MultilinePreset::Go),
            MultilineStart::FirstLineRegex(r"^\d{4}-".to_owned()),
        ]
    );
    assert_eq!(several[0].container_globs, ["orders-*", "billing-*"]);
    assert_eq!(several[2].container_globs, ["*"]);
    let none = ok(r#"{"kinsight":{"logs":{"multiline":[]}}}"#, &local());
    assert_eq!(
        none.logs.multiline,
        Some(Vec::new()),
        "an empty list turns the default off"
    );

    let text = r#"{"kinsight":{"logs":{"multiline":[
        {"preset":"java","first_line_regex":"^x"},
        {"preset":"ruby"},
        {"container_globs":["a"]},
        {"first_line_regex":"(x"},
        "^x"]}}}"#;
    assert_eq!(
        errors(text, &local()),
        [
            "kinsight.logs.multiline[0]: set first_line_regex or preset, not both",
            "kinsight.logs.multiline[1].preset: invalid value \"ruby\"; expected one of \"java\", \"python\", \"go\"",
            "kinsight.logs.multiline[2]: needs first_line_regex (a pattern) or preset (java, python or go)",
            "kinsight.logs.multiline[3].first_line_regex: invalid regular expression \"(x\": unclosed group",
            "kinsight.logs.multiline[4]: expected an object, got a string",
        ]
    );
}

#[test]
fn kinsight_values_are_checked() {
    let text = r#"{"kinsight":{
        "output": "dir:",
        "metrics": {"queue_intervals": 61, "endpoint_override": "ftp://x", "leader_lease_secs": 2},
        "logs": {"host_files": ["var/log/messages", "/var/log/../../etc/shadow"], "retention_days": 2,
                 "exclude_container_globs": ["a/b"],
                 "application_log_group": "/eks/{namespace}",
                 "filters": [{"type": "drop", "expression": "(x", "container_globs": ["a/b"]},
                             {"expression": "ok"}],
                 "multiline": {"container_globs": ["*"]},
                 "max_event_bytes": 1048551, "disk_pressure_free_percent": 51, "buffer_mib": 0,
                 "put_concurrency": 17},
        "paths": {"state_dir": "state"},
        "telemetry": {"listen_address": 9464, "log_format": "xml"}
    }}"#;
    assert_eq!(
        errors(text, &local()),
        [
            "kinsight.logs.application_log_group: unknown placeholder {namespace}; known are \
             {cluster_name}, {namespace_name}, {pod_name}, {container_name}",
            "kinsight.logs.buffer_mib: must be 1..=256 MiB, got 0",
            "kinsight.logs.disk_pressure_free_percent: must be 0..=50 percent, got 51",
            "kinsight.logs.exclude_container_globs[0]: invalid glob \"a/b\": matches a file \
             name, so it cannot contain '/'",
            "kinsight.logs.filters[0].container_globs[0]: invalid glob \"a/b\": matches a file \
             name, so it cannot contain '/'",
            "kinsight.logs.filters[0].expression: invalid regular expression \"(x\": unclosed group",
            "kinsight.logs.filters[0].type: invalid value \"drop\"; expected one of \"include\", \"exclude\"",
            "kinsight.logs.filters[1].type: required: \"include\" or \"exclude\"",
            "kinsight.logs.host_files[0]: must be an absolute path, got \"var/log/messages\"",
            "kinsight.logs.host_files[1]: \"/var/log/../../etc/shadow\": '.' and '..' components are not \
             allowed (paths are resolved under the host root)",
            "kinsight.logs.max_event_bytes: must be 1..=1048550 bytes, got 1048551",
            "kinsight.logs.multiline: needs first_line_regex (a pattern) or preset (java, python or go)",
            "kinsight.logs.put_concurrency: must be 1..=16 requests, got 17",
            "kinsight.logs.retention_days: must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, \
             180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (days, as \
             PutRetentionPolicy allows), got 2",
            "kinsight.metrics.endpoint_override: invalid endpoint \"ftp://x\": scheme \"ftp\" is \
             not http or https; expected an http or https URL or a host name",
            "kinsight.metrics.leader_lease_secs: must be 3..=600 seconds, got 2",
            "kinsight.metrics.queue_intervals: must be 1..=60 intervals, got 61",
            "kinsight.output: \"dir:\" needs a directory, as in \"dir:/tmp/kinsight\"",
            "kinsight.paths.state_dir: must be an absolute path, got \"state\"",
            "kinsight.telemetry.listen_address: expected a string or null, got a number",
            "kinsight.telemetry.log_format: invalid value \"xml\"; expected one of \"text\", \
             \"json\"",
        ]
    );
}

#[test]
fn role_arns_and_endpoints_reach_the_config() {
    let text = r#"{
        "agent": {"credentials": {"role_arn": "arn:aws:iam::123456789012:role/a"}},
        "logs": {"credentials": {"role_arn": "arn:aws:iam::123456789012:role/l"},
                 "endpoint_override": "vpce-1.logs.us-east-1.vpce.amazonaws.com"},
        "kinsight": {"metrics": {"endpoint_override": "http://127.0.0.1:4566"},
                     "identity": {"require_workload_identity": true}}
    }"#;
    let cfg = ok(text, &local());
    assert_eq!(
        cfg.identity,
        IdentitySettings {
            require_workload_identity: true,
            agent_role_arn: Some("arn:aws:iam::123456789012:role/a".into()),
            logs_role_arn: Some("arn:aws:iam::123456789012:role/l".into()),
        }
    );
    assert_eq!(
        cfg.logs.endpoint_override.as_deref(),
        Some("https://vpce-1.logs.us-east-1.vpce.amazonaws.com")
    );
    assert_eq!(cfg.metrics.endpoint_override.as_deref(), Some("http://127.0.0.1:4566"));
    // Every override in effect is named with its host, never with more of the URL.
    assert_eq!(
        cfg.warnings,
        [
            "logs.endpoint_override: endpoint override in effect; requests signed with the agent's \
             credentials go to vpce-1.logs.us-east-1.vpce.amazonaws.com",
            "kinsight.metrics.endpoint_override: endpoint override in effect; requests signed with the \
             agent's credentials go to 127.0.0.1",
        ]
    );
    let bad = r#"{"agent":{"credentials":{"role_arn":"x","external_id":"y"}}}"#;
    assert_eq!(errors(bad, &local()).len(), 2);
}

#[test]
fn odd_documents_give_errors_not_panics() {
    let cases = [
        ("[]", "the configuration must be a JSON object, got an array"),
        ("null", "the configuration must be a JSON object, got null"),
        ("42", "the configuration must be a JSON object, got a number"),
        ("\"x\"", "the configuration must be a JSON object, got a string"),
        (r#"{"agent":[]}"#, "agent: expected an object, got an array"),
        (
            r#"{"logs":{"metrics_collected":7}}"#,
            "logs.metrics_collected: expected an object, got a number",
        ),
        (
            r#"{"logs":{"metrics_collected":{"kubernetes":null}}}"#,
            "logs.metrics_collected.kubernetes: expected an object, got null",
        ),
        (
            r#"{"kinsight":{"logs":{"host_files":{}}}}"#,
            "kinsight.logs.host_files: expected an array of strings, got an object",
        ),
        (
            r#"{"kinsight":{"logs":{"multiline":"^x"}}}"#,
            "kinsight.logs.multiline: expected an object or an array of objects, got a string",
        ),
        (r#"{"agent":{"metrics_collection_interval":1e400}}"#, ""),
        (
            r#"{"agent":{"metrics_collection_interval":18446744073709551616}}"#,
            "agent.metrics_collection_interval: must be 1..=172800 seconds, got 1.8446744073709552e+19",
        ),
        ("", ""),
        ("{\"a\":1,}", ""),
    ];
    for (text, expected) in cases {
        let got = load_str(text, &local()).expect_err(text);
        assert!(!got.is_empty(), "{text}");
        if !expected.is_empty() {
            assert_eq!(got.to_string(), expected, "{text}");
        }
    }
}

#[test]
fn malformed_json_reports_line_and_column() {
    let got = load_str("{\n  \"agent\": {\n    debug: true\n  }\n}", &local()).unwrap_err();
    assert_eq!(
        got.to_string(),
        "malformed JSON at line 3, column 5: key must be a string"
    );
}

#[test]
fn load_file_names_the_file() {
    let dir = std::env::temp_dir().join(format!("kinsight-config-test-{}", std::process::id()));
    let missing = dir.join("missing.json");
    let got = load_file(&missing, &local()).unwrap_err();
    assert_eq!(got.len(), 1);
    assert_eq!(got.0[0].path, "");
    assert!(
        got.to_string()
            .starts_with(&format!("cannot read {}: ", missing.display())),
        "{got}"
    );
}

#[test]
fn output_parse_is_shared_with_the_cli() {
    assert_eq!(OutputKind::parse("cloudwatch"), Ok(OutputKind::Cloudwatch));
    assert_eq!("stdout".parse::<OutputKind>(), Ok(OutputKind::Stdout));
    assert_eq!(OutputKind::parse("dir:out"), Ok(OutputKind::Dir("out".into())));
    assert_eq!(
        OutputKind::parse("dir:"),
        Err("\"dir:\" needs a directory, as in \"dir:/tmp/kinsight\"".to_owned())
    );
    assert!(OutputKind::parse("s3").is_err());
}

#[test]
fn telemetry_binds_the_pod_ip_by_default_and_every_interface_only_when_asked() {
    let mut with_pod_ip = local();
    with_pod_ip.env.pod_ip = Some("10.0.3.7".into());
    let cfg = ok("{}", &with_pod_ip);
    assert_eq!(cfg.telemetry.listen_address, Some("10.0.3.7:9464".parse().unwrap()));
    with_pod_ip.env.pod_ip = Some("fd00::7".into());
    let cfg = ok("{}", &with_pod_ip);
    assert_eq!(cfg.telemetry.listen_address, Some("[fd00::7]:9464".parse().unwrap()));

    let cfg = ok(
        r#"{"kinsight":{"telemetry":{"listen_address":"0.0.0.0:9464"}}}"#,
        &with_pod_ip,
    );
    assert_eq!(cfg.telemetry.listen_address, Some("0.0.0.0:9464".parse().unwrap()));

    with_pod_ip.env.pod_ip = Some("ten.zero".into());
    assert_eq!(
        errors("{}", &with_pod_ip),
        vec![r#"env POD_IP: "ten.zero" is not an IP address (downward API status.podIP)"#]
    );
}

#[test]
fn a_file_over_one_mebibyte_is_refused_without_reading_it_all() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("cwagentconfig.json");
    // sparse: 100 MB on paper, nothing on disk
    std::fs::File::create(&big).unwrap().set_len(100 * 1024 * 1024).unwrap();
    let e = load_file(&big, &local()).unwrap_err().to_string();
    assert!(
        e.ends_with(&format!(
            "the file is larger than {MAX_FILE_BYTES} bytes (1 MiB, the most a ConfigMap holds); read {} bytes before stopping",
            MAX_FILE_BYTES + 1
        )),
        "{e}"
    );
    assert!(e.starts_with(&big.display().to_string()), "{e}");

    let text = format!("{{\"agent\":{{\"region\":\"{}\"}}}}", "a".repeat(MAX_FILE_BYTES));
    let e = load_str(&text, &local()).unwrap_err().to_string();
    assert!(e.starts_with("the file is larger than 1048576 bytes"), "{e}");
}

#[test]
fn many_unknown_keys_print_twenty_errors_and_a_count() {
    let keys: Vec<String> = (0..80_000).map(|i| format!("\"k{i}\":0")).collect();
    let text = format!("{{\"agent\":{{{}}}}}", keys.join(","));
    assert!(text.len() < MAX_FILE_BYTES);
    let errors = load_str(&text, &local()).unwrap_err();
    assert_eq!(errors.len(), 80_000);
    let printed = errors.to_string();
    assert_eq!(printed.lines().count(), MAX_PRINTED + 1, "{printed}");
    assert!(printed.ends_with("… and 79980 more errors (80000 in all)"), "{printed}");
}

#[test]
fn a_ten_megabyte_region_is_refused_by_its_length() {
    let mut env = local();
    env.env.aws_region = Some("a".repeat(10 * 1024 * 1024));
    assert_eq!(
        errors("{}", &env),
        vec!["env AWS_REGION: a region of 10485760 bytes; at most 63 are allowed"]
    );
}

#[test]
fn the_sdk_endpoint_variables_follow_the_same_rules() {
    let mut env = local();
    env.env.aws.endpoint_url_sts = Some("http://127.0.0.1:5000".into());
    env.env.aws.endpoint_url_cloudwatch = Some("http://sts.evil.example".into());
    env.env.aws.endpoint_url = Some("https://u:hunter2@proxy.example".into());
    let found = errors("{}", &env);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("env AWS_ENDPOINT_URL: invalid endpoint"),
        "{found:?}"
    );
    assert!(!found[0].contains("hunter2"), "{found:?}");
    assert!(
        found[1].starts_with("env AWS_ENDPOINT_URL_CLOUDWATCH: plain http to sts.evil.example"),
        "{found:?}"
    );
    env.env.aws.endpoint_url = None;
    env.env.allow_plain_http_endpoints = true;
    assert!(load_str("{}", &env).is_ok());
}

/// `kinsight.metrics.drop`: a metric, a dimension set, or one set of one metric, each checked
/// against the declarations; a typo is an error that says what is sent.
#[test]
fn metric_drops_are_checked_against_the_declarations() {
    let cfg = ok(
        r#"{"kinsight":{"metrics":{"drop":[
            {"metric": "node_cpu_usage_total"},
            {"dimensions": ["Namespace", "ClusterName"]},
            {"metric": "pod_cpu_utilization", "dimensions": ["Service", "Namespace", "ClusterName"]}
        ]}}}"#,
        &local(),
    );
    let d = &cfg.metrics.drop;
    assert_eq!(d.len(), 3);
    assert_eq!(
        d[1].dimensions.as_deref(),
        Some(&["ClusterName".to_string(), "Namespace".to_string()][..])
    );
    assert!(crate::config::is_dropped(d, "node_cpu_usage_total", &["ClusterName"]));
    assert!(crate::config::is_dropped(
        d,
        "pod_memory_utilization",
        &["ClusterName", "Namespace"]
    ));
    assert!(crate::config::is_dropped(
        d,
        "pod_cpu_utilization",
        &["ClusterName", "Namespace", "Service"]
    ));
    assert!(!crate::config::is_dropped(
        d,
        "pod_memory_utilization",
        &["ClusterName", "Namespace", "Service"]
    ));
    assert!(!crate::config::is_dropped(
        &[],
        "node_cpu_usage_total",
        &["ClusterName"]
    ));

    let errs = errors(
        r#"{"kinsight":{"metrics":{"drop":[
            {"metric": "pod_cpu_utilisation"},
            {"metric": "node_cpu_utilization", "dimensions": ["PodName"]},
            {"dimensions": ["ClusterName", "Nope"]},
            {},
            {"metric": "pod_cpu_utilization", "dimension": ["ClusterName"]}
        ]}}}"#,
        &local(),
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
    assert!(errs[0].starts_with("kinsight.metrics.drop[0]: no metric named \"pod_cpu_utilisation\" is sent (did you mean \"pod_cpu_utilization\"?)"), "{errs:#?}");
    assert!(
        errs[1].contains("\"node_cpu_utilization\" is not sent with the dimensions [\"PodName\"]; its sets are"),
        "{errs:#?}"
    );
    assert!(
        errs[2].contains("no metric is sent with the dimensions [\"ClusterName\", \"Nope\"]"),
        "{errs:#?}"
    );
    assert!(
        errs[3].starts_with("kinsight.metrics.drop[3]: names neither a metric nor dimensions"),
        "{errs:#?}"
    );
    assert!(errs[4].starts_with("kinsight.metrics.drop[4].dimension"), "{errs:#?}");
}

#[test]
fn the_dcgm_exporter_defaults_to_the_node_ip_and_must_be_a_plain_http_url() {
    let mut inputs = local();
    let cfg = ok("{}", &inputs);
    assert_eq!(cfg.metrics.dcgm_exporter_url.as_str(), "http://127.0.0.1:9400/metrics");
    assert!(!cfg.metrics.dcgm_exporter_url_set);
    inputs.env.host_ip = Some("10.0.3.17".into());
    assert_eq!(
        ok("{}", &inputs).metrics.dcgm_exporter_url.as_str(),
        "http://10.0.3.17:9400/metrics"
    );
    let named = ok(
        r#"{"kinsight":{"metrics":{"dcgm_exporter_url":"http://dcgm.local:9500/metrics"}}}"#,
        &inputs,
    );
    assert_eq!(
        named.metrics.dcgm_exporter_url.as_str(),
        "http://dcgm.local:9500/metrics"
    );
    assert!(named.metrics.dcgm_exporter_url_set);
    for bad in [
        "https://10.0.0.1:9400/metrics",
        "10.0.0.1:9400",
        "http://u:p@10.0.0.1/metrics",
    ] {
        let text = format!(r#"{{"kinsight":{{"metrics":{{"dcgm_exporter_url":"{bad}"}}}}}}"#);
        let e = errors(&text, &inputs);
        assert!(
            e.len() == 1 && e[0].starts_with("kinsight.metrics.dcgm_exporter_url: "),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn neuron_monitor_defaults_to_the_node_ip_on_8000_and_must_be_a_plain_http_url() {
    let mut inputs = local();
    let cfg = ok("{}", &inputs);
    assert_eq!(cfg.metrics.neuron_monitor_url.as_str(), "http://127.0.0.1:8000/metrics");
    assert!(!cfg.metrics.neuron_monitor_url_set);
    inputs.env.host_ip = Some("10.0.3.17".into());
    assert_eq!(
        ok("{}", &inputs).metrics.neuron_monitor_url.as_str(),
        "http://10.0.3.17:8000/metrics"
    );
    let named = ok(
        r#"{"kinsight":{"metrics":{"neuron_monitor_url":"http://neuron.local:8001/metrics"}}}"#,
        &inputs,
    );
    assert_eq!(
        named.metrics.neuron_monitor_url.as_str(),
        "http://neuron.local:8001/metrics"
    );
    assert!(named.metrics.neuron_monitor_url_set);
    for bad in [
        "https://10.0.0.1:8000/metrics",
        "10.0.0.1:8000",
        "http://u:p@10.0.0.1/metrics",
    ] {
        let text = format!(r#"{{"kinsight":{{"metrics":{{"neuron_monitor_url":"{bad}"}}}}}}"#);
        let e = errors(&text, &inputs);
        assert!(
            e.len() == 1 && e[0].starts_with("kinsight.metrics.neuron_monitor_url: "),
            "{bad}: {e:?}"
        );
    }
}
