//! Reload: what a new configuration changes, and how.
//!
//! - Collector settings (interval, destination, enhanced, pod names, node attributes) go to the
//!   tick loop at once; container multiline rules (`kinsight.logs.multiline`) to the log
//!   pipeline, which applies them before its next round.
//! - A key that shapes an output ([`OUTPUT_KEYS`]) rebuilds the output through the same build
//!   function startup uses; keys that shape the identity ([`IDENTITY_KEYS`]) rebuild the AWS
//!   context first. The old output is retired: it flushes for a few seconds while the new one
//!   takes new data; log events it still held go to the new one, the rest is counted.
//! - A key that cannot change live ([`RESTART_KEYS`]) is logged as such and keeps its running
//!   value until the next start.

use std::time::Duration;

use crate::config::Config;

/// A configuration key and how to tell whether it changed.
pub type Key = (&'static str, fn(&Config, &Config) -> bool);

/// Keys that need a restart: the running value stays until then. The README lists the same.
pub const RESTART_KEYS: &[Key] = &[
    ("kinsight.paths.state_dir", |a, b| {
        a.paths.state_dir != b.paths.state_dir
    }),
    ("kinsight.paths.containerd_socket", |a, b| {
        a.paths.containerd_socket != b.paths.containerd_socket
    }),
    ("kinsight.telemetry.listen_address", |a, b| {
        a.telemetry.listen_address != b.telemetry.listen_address
    }),
    ("kinsight.metrics.metadata_source", |a, b| {
        a.metrics.metadata_source != b.metrics.metadata_source
    }),
    // Metrics take a new node name at their next tick, but the pod metadata source watches the
    // node it was started for (and log records would name a node the metadata does not).
    ("kinsight.node_name", |a, b| a.node_name != b.node_name),
];

/// Keys the log pipeline is built with: with logs on before or after, a change replaces the
/// pipeline (`Running::rebuild_logs`). Its tailer holds them in records being assembled, open
/// files' routes and shapes, and the journal reader, so they are not changed under it: the old
/// pipeline stops reading, the output sends what it handed over, the checkpoints are committed,
/// and a new pipeline starts from them, as after a restart.
pub const LOG_KEYS: &[Key] = &[
    ("kinsight.logs.enabled", |a, b| a.logs.enabled != b.logs.enabled),
    // The log groups are `/aws/containerinsights/<cluster>/…`.
    ("logs.metrics_collected.kubernetes.cluster_name", |a, b| {
        a.cluster_name != b.cluster_name
    }),
    ("kinsight.paths.pod_logs_dir", |a, b| {
        a.paths.pod_logs_dir != b.paths.pod_logs_dir
    }),
    ("kinsight.paths.container_logs_dir", |a, b| {
        a.paths.container_logs_dir != b.paths.container_logs_dir
    }),
    ("kinsight.logs.record_profile", |a, b| {
        a.logs.record_profile != b.logs.record_profile
    }),
    ("kinsight.logs.stream_names", |a, b| {
        a.logs.stream_names != b.logs.stream_names
    }),
    ("kinsight.logs.exclude_container_globs", |a, b| {
        a.logs.exclude_container_globs != b.logs.exclude_container_globs
    }),
    ("kinsight.logs.filters", |a, b| a.logs.filters != b.logs.filters),
    ("kinsight.logs.application_log_group", |a, b| {
        a.logs.application_log_group != b.logs.application_log_group
    }),
    ("kinsight.logs.dataplane_container_globs", |a, b| {
        a.logs.dataplane_container_globs != b.logs.dataplane_container_globs
    }),
    ("kinsight.logs.host_files", |a, b| {
        a.logs.host_files != b.logs.host_files
    }),
    ("kinsight.logs.partial_flush_timeout_ms", |a, b| {
        a.logs.partial_flush_timeout != b.logs.partial_flush_timeout
    }),
    ("kinsight.logs.max_event_bytes", |a, b| {
        a.logs.max_event_bytes != b.logs.max_event_bytes
    }),
    ("kinsight.logs.oversize_event", |a, b| {
        a.logs.oversize_event != b.logs.oversize_event
    }),
    ("kinsight.logs.labels", |a, b| a.logs.labels != b.logs.labels),
    ("kinsight.logs.annotations", |a, b| {
        a.logs.annotations != b.logs.annotations
    }),
    ("kinsight.logs.disk_pressure_free_percent", |a, b| {
        a.logs.disk_pressure_free_percent != b.logs.disk_pressure_free_percent
    }),
    ("kinsight.logs.honour_exclude_annotation", |a, b| {
        a.logs.honour_exclude_annotation != b.logs.honour_exclude_annotation
    }),
    // The journal reader is built once with these.
    ("kinsight.logs.dataplane_units", |a, b| {
        a.logs.dataplane_units != b.logs.dataplane_units
    }),
    ("kinsight.logs.host_source", |a, b| {
        a.logs.host_source != b.logs.host_source
    }),
    ("logs.logs_collected.files.collect_list", |a, b| {
        a.logs.collect_list != b.logs.collect_list
    }),
];

/// Keys that shape the AWS identity or where its signed requests go: a change rebuilds the AWS
/// context (credentials and the SDK configurations the clients are built from), then the
/// output. An endpoint override is part of that SDK configuration: rebuilding only the output
/// would keep the old endpoint while reporting the new one as applied.
pub const IDENTITY_KEYS: &[Key] = &[
    ("agent.region", |a, b| a.region != b.region),
    ("kinsight.metrics.endpoint_override", |a, b| {
        a.metrics.endpoint_override != b.metrics.endpoint_override
    }),
    ("logs.endpoint_override", |a, b| {
        a.logs.endpoint_override != b.logs.endpoint_override
    }),
    ("agent.credentials.role_arn", |a, b| {
        a.identity.agent_role_arn != b.identity.agent_role_arn
    }),
    ("logs.credentials.role_arn", |a, b| {
        a.identity.logs_role_arn != b.identity.logs_role_arn
    }),
    ("kinsight.identity.require_workload_identity", |a, b| {
        a.identity.require_workload_identity != b.identity.require_workload_identity
    }),
];

/// Keys that shape an output: a change rebuilds it.
pub const OUTPUT_KEYS: &[Key] = &[
    ("kinsight.output", |a, b| a.output != b.output),
    ("kinsight.metrics.destination", |a, b| {
        a.metrics.destination != b.metrics.destination
    }),
    ("kinsight.metrics.queue_intervals", |a, b| {
        a.metrics.queue_intervals != b.metrics.queue_intervals
    }),
    ("logs.force_flush_interval", |a, b| {
        a.logs.force_flush_interval != b.logs.force_flush_interval
    }),
    ("kinsight.logs.flush_interval_secs", |a, b| {
        a.logs.flush_interval != b.logs.flush_interval
    }),
    ("kinsight.logs.retention_days", |a, b| {
        a.logs.retention_days != b.logs.retention_days
    }),
    ("kinsight.logs.create_log_groups", |a, b| {
        a.logs.create_log_groups != b.logs.create_log_groups
    }),
    ("kinsight.logs.buffer_mib", |a, b| {
        a.logs.buffer_bytes != b.logs.buffer_bytes
    }),
    ("kinsight.logs.put_concurrency", |a, b| {
        a.logs.put_concurrency != b.logs.put_concurrency
    }),
];

/// How long a retired output may keep sending what it held.
pub const RETIRE_GRACE: Duration = Duration::from_secs(5);

/// The keys of `table` whose value differs between `old` and `new`.
pub fn changed(table: &[Key], old: &Config, new: &Config) -> Vec<&'static str> {
    table
        .iter()
        .filter(|(_, differs)| differs(old, new))
        .map(|(k, _)| *k)
        .collect()
}

/// What a reload must do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Changed keys that keep their running value until a restart.
    pub restart: Vec<&'static str>,
    /// Changed keys that rebuild the AWS context (and so the output).
    pub identity: Vec<&'static str>,
    /// Changed keys that rebuild the output.
    pub output: Vec<&'static str>,
    /// Changed keys that replace the log pipeline.
    pub logs: Vec<&'static str>,
}

impl Plan {
    pub fn of(old: &Config, new: &Config) -> Plan {
        Plan {
            restart: changed(RESTART_KEYS, old, new),
            identity: changed(IDENTITY_KEYS, old, new),
            output: changed(OUTPUT_KEYS, old, new),
            // Without logs before or after, nothing runs that these keys shape.
            logs: if old.logs.enabled || new.logs.enabled {
                changed(LOG_KEYS, old, new)
            } else {
                Vec::new()
            },
        }
    }

    /// Whether the output is rebuilt.
    pub fn rebuilds_output(&self) -> bool {
        !self.output.is_empty() || !self.identity.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{self, Inputs, MetricsDestination};

    fn cfg(extra: &str) -> Config {
        config::load_str(&format!("{{\"kinsight\": {{{extra}}}}}"), &Inputs::local_test()).unwrap()
    }

    #[test]
    fn a_destination_change_rebuilds_the_output() {
        let old = cfg("");
        let new = cfg(r#""metrics": {"destination": "emf"}"#);
        assert_eq!(new.metrics.destination, MetricsDestination::Emf);
        let plan = Plan::of(&old, &new);
        assert_eq!(plan.output, vec!["kinsight.metrics.destination"]);
        assert!(plan.rebuilds_output() && plan.restart.is_empty());
    }

    #[test]
    fn a_cluster_rename_replaces_the_log_pipeline_only_with_logs_on() {
        let key = "logs.metrics_collected.kubernetes.cluster_name";
        let named = |name: &str, logs: bool| {
            config::load_str(
                &format!(
                    r#"{{"logs": {{"metrics_collected": {{"kubernetes": {{"cluster_name": "{name}"}}}}}},
                        "kinsight": {{"logs": {{"enabled": {logs}}}}}}}"#
                ),
                &Inputs::local_test(),
            )
            .unwrap()
        };
        let plan = Plan::of(&named("a", true), &named("b", true));
        assert_eq!(plan.logs, vec![key]);
        assert!(plan.restart.is_empty() && !plan.rebuilds_output());
        assert_eq!(Plan::of(&named("a", true), &named("a", true)), Plan::default());
        assert_eq!(
            Plan::of(&named("a", false), &named("b", false)),
            Plan::default(),
            "without logs, metrics take the new name at their next tick"
        );
        assert_eq!(
            Plan::of(&named("a", false), &named("b", true)).logs,
            vec!["kinsight.logs.enabled", key],
            "turning logs on starts a pipeline"
        );
    }

    #[test]
    fn tailer_keys_replace_the_log_pipeline_and_need_no_restart() {
        let old = cfg("");
        for (extra, key) in [
            (
                r#""logs": {"exclude_container_globs": ["noisy-*"]}"#,
                "kinsight.logs.exclude_container_globs",
            ),
            (r#""logs": {"labels": true}"#, "kinsight.logs.labels"),
            (r#""logs": {"host_files": []}"#, "kinsight.logs.host_files"),
            (
                r#""paths": {"pod_logs_dir": "/logs/pods"}"#,
                "kinsight.paths.pod_logs_dir",
            ),
        ] {
            let plan = Plan::of(&old, &cfg(extra));
            assert_eq!(plan.logs, vec![key], "{extra}");
            assert!(plan.restart.is_empty() && !plan.rebuilds_output(), "{extra}");
        }
        let off = cfg(r#""logs": {"enabled": false}"#);
        assert_eq!(Plan::of(&old, &off).logs, vec!["kinsight.logs.enabled"]);
        let off_labels = cfg(r#""logs": {"enabled": false, "labels": true}"#);
        assert_eq!(
            Plan::of(&off, &off_labels),
            Plan::default(),
            "a tailer key changed while logs stay off replaces nothing"
        );
    }

    #[test]
    fn log_shipping_keys_rebuild_the_output() {
        let old = cfg("");
        for (extra, key) in [
            (
                r#""logs": {"create_log_groups": false}"#,
                "kinsight.logs.create_log_groups",
            ),
            (r#""logs": {"buffer_mib": 16}"#, "kinsight.logs.buffer_mib"),
            (r#""logs": {"put_concurrency": 4}"#, "kinsight.logs.put_concurrency"),
            (r#""logs": {"retention_days": 7}"#, "kinsight.logs.retention_days"),
            (
                r#""logs": {"flush_interval_secs": 2}"#,
                "kinsight.logs.flush_interval_secs",
            ),
        ] {
            let plan = Plan::of(&old, &cfg(extra));
            assert_eq!(plan.output, vec![key], "{extra}");
            assert!(plan.restart.is_empty() && plan.identity.is_empty());
        }
        assert_eq!(cfg(r#""logs": {"buffer_mib": 16}"#).logs.buffer_bytes, 16 << 20);
        assert_eq!(cfg(r#""logs": {"put_concurrency": 4}"#).logs.put_concurrency, 4);
    }

    #[test]
    fn restart_keys_are_named_and_rebuild_nothing() {
        let old = cfg("");
        let new = cfg(r#""paths": {"state_dir": "/var/lib/other"}, "telemetry": {"listen_address": null}"#);
        let plan = Plan::of(&old, &new);
        assert_eq!(
            plan.restart,
            vec!["kinsight.paths.state_dir", "kinsight.telemetry.listen_address"]
        );
        assert!(!plan.rebuilds_output());
    }

    #[test]
    fn an_endpoint_or_role_change_rebuilds_the_aws_context_not_only_the_output() {
        let old = cfg("");
        for (extra, key) in [
            (
                r#""metrics": {"endpoint_override": "https://monitoring.example"}"#,
                "kinsight.metrics.endpoint_override",
            ),
            (
                r#""identity": {"require_workload_identity": true}"#,
                "kinsight.identity.require_workload_identity",
            ),
        ] {
            let plan = Plan::of(&old, &cfg(extra));
            assert_eq!(plan.identity, vec![key]);
            assert!(plan.output.is_empty() && plan.restart.is_empty());
        }
        let logs = config::load_str(
            r#"{"logs": {"endpoint_override": "https://logs.example",
                         "credentials": {"role_arn": "arn:aws:iam::123456789012:role/l"}}}"#,
            &Inputs::local_test(),
        )
        .unwrap();
        assert_eq!(
            Plan::of(&old, &logs).identity,
            vec!["logs.endpoint_override", "logs.credentials.role_arn"]
        );
    }

    #[test]
    fn an_unchanged_config_plans_nothing() {
        assert_eq!(Plan::of(&cfg(""), &cfg("")), Plan::default());
    }
}
