/// Every metric kinsight exports about itself. `/metrics`, the README's troubleshooting table
/// and the dashboards read these names; labels are bounded (component, reason, kind, result —
/// never a pod, stream or file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Name {
    /// Config reloads by `result` = `applied` | `invalid` | `unchanged` | `read_failed`.
    ConfigReloads,
    /// Completed metric collection ticks.
    MetricCycles,
    /// Ticks skipped because the previous one was still running (TICK-6).
    MetricCyclesSkipped,
    /// CPU time of the last collection cycle (sample + compute + encode), seconds.
    MetricCycleSeconds,
    /// Host file reads that failed, by `source` (`procfs` | `cgroup`) and `kind`
    /// (`not_found` | `permission_denied` | `parse` | `io`).
    HostReadErrors,
    /// Items handed to an output, by `output` and `kind` (`metric` | `emf` | `log`).
    ItemsWritten,
    /// Items an output could not write, by `output` and `reason`.
    ItemsDropped,
    /// Constant 1, labelled with the running version.
    BuildInfo,
}

impl Name {
    pub fn as_str(self) -> &'static str {
        match self {
            Name::ConfigReloads => "kinsight_config_reloads_total",
            Name::MetricCycles => "kinsight_metrics_cycles_total",
            Name::MetricCyclesSkipped => "kinsight_metrics_cycles_skipped_total",
            Name::MetricCycleSeconds => "kinsight_metrics_cycle_seconds",
            Name::HostReadErrors => "kinsight_host_read_errors_total",
            Name::ItemsWritten => "kinsight_output_items_written_total",
            Name::ItemsDropped => "kinsight_output_items_dropped_total",
            Name::BuildInfo => "kinsight_build_info",
        }
    }

    pub fn help(self) -> &'static str {
        match self {
            Name::ConfigReloads => "Configuration reloads by result.",
            Name::MetricCycles => "Completed metric collection cycles.",
            Name::MetricCyclesSkipped => "Collection ticks skipped because the previous cycle was still running.",
            Name::MetricCycleSeconds => "Wall time of the last collection cycle in seconds.",
            Name::HostReadErrors => "Failed reads of node files by source and kind.",
            Name::ItemsWritten => "Items handed to an output by output and kind.",
            Name::ItemsDropped => "Items an output dropped by output and reason.",
            Name::BuildInfo => "Always 1; the version label names the running build.",
        }
    }

    pub fn is_gauge(self) -> bool {
        matches!(self, Name::MetricCycleSeconds | Name::BuildInfo)
    }
}
