/// Every metric kinsight exports about itself. `/metrics`, the README's troubleshooting table
/// and the dashboards read these names; labels are bounded (component, reason, kind, result —
/// never a pod, stream or file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    /// Config reloads by `result` = `applied` | `invalid` | `unchanged` | `read_failed`.
    ConfigReloads,
    /// Completed metric collection ticks.
    MetricCycles,
    /// Ticks skipped because the previous one was still running.
    MetricCyclesSkipped,
    /// Wall time of the last collection cycle and its write, seconds.
    MetricCycleSeconds,
    /// CPU time (user + system) of the last collection cycle (sample + compute + encode),
    /// seconds: the figure of the README's performance table.
    MetricCycleCpuSeconds,
    /// Node objects held open across cycles, by `kind` (`cgroup` | `process`).
    HostHeldObjects,
    /// Host file reads that failed, by `source` (`procfs` | `cgroup`) and `kind`
    /// (`not_found` | `permission_denied` | `parse` | `io`).
    HostReadErrors,
    /// Items handed to an output, by `output` and `kind` (`metric` | `emf` | `log`).
    ItemsWritten,
    /// Items an output could not write, by `output` and `reason`.
    ItemsDropped,
    /// Pod cgroups skipped because the pod index does not know the pod.
    PodsUnknown,
    /// Constant 1, labelled with the running version.
    BuildInfo,
    /// Constant 1, labelled with the AWS identity `kind` and `imds_source` .
    AwsIdentityInfo,
    /// Seconds until the current AWS credentials expire, by `role` (`base` | `agent_role` |
    /// `logs_role`); absent for static keys.
    AwsCredentialsExpiry,
    /// Background credential refreshes by `role` and `result` (`ok` | `error`).
    AwsCredentialsRefresh,
    /// `AccessDenied` answers from AWS by `action` (e.g. `cloudwatch:PutMetricData`).
    AwsAccessDenied,
    /// Pod index loads by a source, by `result` = `applied` | `invalid` | `read_failed`.
    PodIndexReloads,
    /// Parts of a pod list skipped or treated as unset, by `kind` (see `kube::Warning::kind`).
    PodIndexWarnings,
    /// Pods in the index after the last load.
    PodIndexPods,
    /// 1 while every apiserver watch works, 0 while one fails (the index is then served from what
    /// is cached).
    ApiserverUp,
    /// Watch events from the apiserver, by `resource` and `type` (`apply` | `delete` | `relist`).
    ApiserverEvents,
    /// Failed apiserver list/watch attempts, by `resource` (each followed by a backoff).
    ApiserverWatchErrors,
    /// Single-object GETs (owner lookups), by `resource` and `result` (`ok` | `error`).
    ApiserverGets,
    /// 1 while containerd answers, 0 while it is unreachable (or not there).
    RuntimeUp,
    /// Failures talking to containerd, by `kind` (`missing` | `connect` | `call` | `timeout` |
    /// `stream_ended` | `statvfs`).
    RuntimeErrors,
    /// Connections to containerd made again after one was lost.
    RuntimeReconnects,
    /// Calls to containerd, by `call` (`Containers.ListStream`, `Tasks.List`, `Snapshots.Usage`, …).
    RuntimeCalls,
    /// containerd events received, by `topic` (`start` | `exit` | `oom` | `create` | `delete` | `other`).
    RuntimeEvents,
    /// Containers OOM-killed (containerd's `/tasks/oom` events).
    RuntimeOomKills,
    /// Kubernetes containers (and sandboxes) containerd listed last.
    RuntimeContainers,
    /// 1 while this agent holds the leader Lease (and sends the cluster records), else 0.
    Leader,
    /// Leadership changes of this agent, by `to` (`leader` | `follower`).
    LeaderTransitions,
    /// Nodes in the leader's last cluster view.
    ClusterNodes,
    /// Distinct metric series (name and dimension values) sent in the last hour: what the
    /// custom-metric charge follows.
    BillableMetricSeries,
    /// Bytes of EMF performance events CloudWatch Logs accepted, as it bills them (message bytes
    /// plus 26 per event).
    BillableEmfBytes,
    /// Scrapes of the apiserver's `/metrics` by the leader (enhanced observability), by `result`
    /// (`ok` | `forbidden` | `error`).
    ControlPlaneScrapes,
    /// Scrapes of this node's CSI node plugins for volume I/O (enhanced observability), by
    /// `exporter` (`ebs` | `instance_store`) and `result` (`ok` | `error`).
    VolumeScrapes,
    /// Scrapes of node-local accelerator exporters, by `exporter` (`dcgm` | `neuron_monitor` |
    /// `pod_resources`) and `result` (`ok` |
    /// `unreachable` | `status` | `timeout` | `invalid`).
    AcceleratorScrapes,
    /// Metric datums not delivered to `CloudWatch`, by `reason` (`queue_full` | `rejected` |
    /// `access_denied` | `invalid_value` | `out_of_window` | `shutdown`).
    MetricsDropped,
    /// Calls to AWS by the outputs, by `api` (`PutMetricData`, `PutLogEvents`, `CreateLogGroup`, …)
    /// and `result` (`ok` | `retry` | `error`).
    AwsRequests,
    /// EMF performance events not delivered to `CloudWatch Logs`, by `reason` (`queue_full` |
    /// `too_old` | `too_new` | `too_large` | `rejected` | `access_denied` | `shutdown`).
    EmfEventsDropped,
    /// Log events that reached a final outcome in an output, by `outcome` (`accepted` |
    /// `rejected_too_new` | `rejected_too_old` | `rejected_expired` | `dropped_<reason>`).
    LogEventsSettled,
    /// `PutLogEvents` bytes (message + 26 per event) of settled log events, by `outcome`.
    LogBytesSettled,
    /// Restarts of restartable background tasks, by `task`.
    TaskRestarts,
    /// Outputs rebuilt by a configuration reload, by `result` (`rebuilt` | `failed`).
    OutputRebuilds,
    /// Log pipelines replaced by a configuration reload, by `result` (`rebuilt` | `off` |
    /// `failed`).
    LogPipelineRebuilds,
    /// Log lines read from files.
    LogLinesRead,
    /// Log bytes read from files.
    LogBytesRead,
    /// Log records that needed care, by `kind` (`parse_error` | `utf8_repaired` | `truncated` |
    /// `split` | `long_line`).
    LogRecordAnomalies,
    /// Log file events, by `event` (`opened` | `finished` | `rotated` | `truncated` |
    /// `open_failed` | `resumed_gzip` | `lost_at_restart` | `abandoned_disk_pressure` |
    /// `application_group_fallback`).
    LogFileEvents,
    /// Scans of the log directories, by `trigger` (`inotify` | `timer`).
    LogScans,
    /// Log files being tailed.
    LogFilesTailed,
    /// Bytes on disk of tailed files not yet committed (size − committed offset, summed).
    LogBytesBehind,
    /// Age of the oldest log event handed to the output and not yet settled, seconds.
    LogOldestUnacknowledged,
    /// Failed `accept` calls of the telemetry endpoint (each followed by a pause).
    TelemetryAcceptErrors,
    /// Telemetry connections closed because the connection cap was reached.
    TelemetryConnectionsEvicted,
}

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::ConfigReloads => "kinsight_config_reloads_total",
            Name::MetricCycles => "kinsight_metrics_cycles_total",
            Name::MetricCyclesSkipped => "kinsight_metrics_cycles_skipped_total",
            Name::MetricCycleSeconds => "kinsight_metrics_cycle_seconds",
            Name::MetricCycleCpuSeconds => "kinsight_metrics_cycle_cpu_seconds",
            Name::HostHeldObjects => "kinsight_host_held_objects",
            Name::HostReadErrors => "kinsight_host_read_errors_total",
            Name::ItemsWritten => "kinsight_output_items_written_total",
            Name::ItemsDropped => "kinsight_output_items_dropped_total",
            Name::PodsUnknown => "kinsight_metrics_pods_unknown_total",
            Name::BuildInfo => "kinsight_build_info",
            Name::PodIndexReloads => "kinsight_pod_index_reloads_total",
            Name::PodIndexWarnings => "kinsight_pod_index_warnings_total",
            Name::PodIndexPods => "kinsight_pod_index_pods",
            Name::ApiserverUp => "kinsight_apiserver_up",
            Name::ApiserverEvents => "kinsight_apiserver_events_total",
            Name::ApiserverWatchErrors => "kinsight_apiserver_watch_errors_total",
            Name::ApiserverGets => "kinsight_apiserver_gets_total",
            Name::RuntimeUp => "kinsight_runtime_up",
            Name::RuntimeErrors => "kinsight_runtime_errors_total",
            Name::RuntimeReconnects => "kinsight_runtime_reconnects_total",
            Name::RuntimeCalls => "kinsight_runtime_calls_total",
            Name::RuntimeEvents => "kinsight_runtime_events_total",
            Name::RuntimeOomKills => "kinsight_runtime_oom_kills_total",
            Name::RuntimeContainers => "kinsight_runtime_containers",
            Name::Leader => "kinsight_leader",
            Name::LeaderTransitions => "kinsight_leader_transitions_total",
            Name::ClusterNodes => "kinsight_cluster_nodes",
            Name::ControlPlaneScrapes => "kinsight_control_plane_scrapes_total",
            Name::VolumeScrapes => "kinsight_volume_scrapes_total",
            Name::AcceleratorScrapes => "kinsight_accelerator_scrapes_total",
            Name::BillableMetricSeries => "kinsight_billable_metric_series",
            Name::BillableEmfBytes => "kinsight_billable_emf_bytes_total",
            Name::AwsIdentityInfo => "kinsight_aws_identity_info",
            Name::AwsCredentialsExpiry => "kinsight_aws_credentials_expiry_seconds",
            Name::AwsCredentialsRefresh => "kinsight_aws_credentials_refresh_total",
            Name::AwsAccessDenied => "kinsight_aws_access_denied_total",
            Name::MetricsDropped => "kinsight_metrics_dropped_total",
            Name::AwsRequests => "kinsight_aws_requests_total",
            Name::EmfEventsDropped => "kinsight_emf_events_dropped_total",
            Name::LogEventsSettled => "kinsight_log_events_settled_total",
            Name::LogBytesSettled => "kinsight_log_bytes_settled_total",
            Name::TaskRestarts => "kinsight_task_restarts_total",
            Name::OutputRebuilds => "kinsight_output_rebuilds_total",
            Name::LogPipelineRebuilds => "kinsight_log_pipeline_rebuilds_total",
            Name::LogLinesRead => "kinsight_log_lines_read_total",
            Name::LogBytesRead => "kinsight_log_bytes_read_total",
            Name::LogRecordAnomalies => "kinsight_log_records_total",
            Name::LogFileEvents => "kinsight_log_files_total",
            Name::LogScans => "kinsight_log_scans_total",
            Name::LogFilesTailed => "kinsight_log_files_tailed",
            Name::LogBytesBehind => "kinsight_log_bytes_behind",
            Name::LogOldestUnacknowledged => "kinsight_log_oldest_unacknowledged_seconds",
            Name::TelemetryAcceptErrors => "kinsight_telemetry_accept_errors_total",
            Name::TelemetryConnectionsEvicted => "kinsight_telemetry_connections_evicted_total",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Name::ConfigReloads => "Configuration reloads by result.",
            Name::MetricCycles => "Completed metric collection cycles.",
            Name::MetricCyclesSkipped => "Collection ticks skipped because the previous cycle was still running.",
            Name::MetricCycleSeconds => "Wall time of the last collection cycle in seconds.",
            Name::MetricCycleCpuSeconds => {
                "CPU time of the last collection cycle (sample, compute, encode) in seconds."
            }
            Name::HostHeldObjects => "Cgroups and pod processes held open across cycles, by kind.",
            Name::HostReadErrors => "Failed reads of node files by source and kind.",
            Name::ItemsWritten => "Items handed to an output by output and kind.",
            Name::ItemsDropped => "Items an output dropped by output and reason.",
            Name::PodsUnknown => "Pod cgroups skipped because the pod is not in the pod index.",
            Name::BuildInfo => "Always 1; the version label names the running build.",
            Name::PodIndexReloads => "Pod index loads by result.",
            Name::PodIndexWarnings => "Pod list items skipped or fields treated as unset, by kind.",
            Name::PodIndexPods => "Pods of this node in the pod index after the last load.",
            Name::ApiserverUp => "1 while every apiserver watch works, 0 while one fails (cached metadata is used).",
            Name::ApiserverEvents => "Watch events from the apiserver, by resource and type.",
            Name::ApiserverWatchErrors => "Failed apiserver list/watch attempts, by resource.",
            Name::ApiserverGets => "Single-object GETs to the apiserver (owner lookups), by resource and result.",
            Name::RuntimeUp => "1 while containerd answers, 0 while it is unreachable or absent.",
            Name::RuntimeErrors => "Failures talking to containerd, by kind.",
            Name::RuntimeReconnects => "Connections to containerd made again after one was lost.",
            Name::RuntimeCalls => "Calls to containerd, by call.",
            Name::RuntimeEvents => "containerd events received, by topic.",
            Name::RuntimeOomKills => "Containers OOM-killed, from containerd's /tasks/oom events.",
            Name::RuntimeContainers => "Kubernetes containers and sandboxes containerd listed last.",
            Name::Leader => "1 while this agent holds the leader Lease and sends the cluster records.",
            Name::LeaderTransitions => "Leadership changes of this agent, by the side it moved to.",
            Name::ClusterNodes => "Nodes in the leader's last cluster view.",
            Name::ControlPlaneScrapes => "Scrapes of the apiserver's /metrics by the leader, by result.",
            Name::VolumeScrapes => {
                "Scrapes of this node's EBS and instance-store CSI node plugins, by exporter and result."
            }
            Name::AcceleratorScrapes => {
                "Scrapes of node-local accelerator exporters (DCGM, neuron-monitor) and the kubelet's pod-resources API, by exporter and result."
            }
            Name::BillableMetricSeries => "Distinct metric series (name and dimension values) sent in the last hour.",
            Name::BillableEmfBytes => {
                "EMF performance event bytes accepted by CloudWatch Logs (message bytes + 26 per event)."
            }
            Name::AwsIdentityInfo => "Always 1; the labels name the kind of AWS identity in use.",
            Name::AwsCredentialsExpiry => "Seconds until the current AWS credentials expire.",
            Name::AwsCredentialsRefresh => "Background AWS credential refreshes by result.",
            Name::AwsAccessDenied => "AccessDenied answers from AWS by IAM action.",
            Name::MetricsDropped => "Metric datums not delivered to CloudWatch by reason.",
            Name::AwsRequests => "Calls to AWS by the outputs by api and result.",
            Name::EmfEventsDropped => "EMF performance events not delivered to CloudWatch Logs by reason.",
            Name::LogEventsSettled => "Log events that reached a final outcome in an output, by outcome.",
            Name::LogBytesSettled => "PutLogEvents bytes (message + 26 per event) of settled log events, by outcome.",
            Name::TaskRestarts => "Restarts of restartable background tasks, by task.",
            Name::OutputRebuilds => "Outputs rebuilt after a configuration reload, by result.",
            Name::LogPipelineRebuilds => "Log pipelines replaced after a configuration reload, by result.",
            Name::LogLinesRead => "Log lines read from files.",
            Name::LogBytesRead => "Log bytes read from files.",
            Name::LogRecordAnomalies => {
                "Log records that needed care (parse errors, UTF-8 repair, truncation), by kind."
            }
            Name::LogFileEvents => "Log file events (opened, finished, rotated, truncated, open failed), by event.",
            Name::LogScans => "Scans of the log directories, by what started them (inotify or the timer).",
            Name::LogFilesTailed => "Log files being tailed.",
            Name::LogBytesBehind => "Bytes of tailed log files not yet committed.",
            Name::LogOldestUnacknowledged => "Age in seconds of the oldest log event not yet settled by the output.",
            Name::TelemetryAcceptErrors => "Failed accepts of the telemetry endpoint.",
            Name::TelemetryConnectionsEvicted => "Telemetry connections closed to stay under the connection cap.",
        }
    }

    pub fn is_gauge(self) -> bool {
        matches!(
            self,
            Name::MetricCycleSeconds
                | Name::MetricCycleCpuSeconds
                | Name::HostHeldObjects
                | Name::BuildInfo
                | Name::AwsIdentityInfo
                | Name::AwsCredentialsExpiry
                | Name::PodIndexPods
                | Name::ApiserverUp
                | Name::RuntimeUp
                | Name::RuntimeContainers
                | Name::Leader
                | Name::ClusterNodes
                | Name::BillableMetricSeries
                | Name::LogFilesTailed
                | Name::LogBytesBehind
                | Name::LogOldestUnacknowledged
        )
    }
}
