//! Diagnostic logs on stderr (stdout is the `stdout` output's data channel).

use tracing_subscriber::EnvFilter;

/// Format of kinsight's own log lines on stderr (`kinsight.telemetry.log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The AWS SDK, its HTTP stack and signer log request headers and bodies at debug and trace:
/// credentials, tokens and log contents. They stay at `warn` whatever `agent.debug` says
/// (secrets must never reach the log); raising them is a deliberate step through `KINSIGHT_LOG`.
const QUIET_DEPENDENCIES: &str = "aws_smithy_runtime=warn,aws_smithy_http_client=warn,aws_smithy_runtime_api=warn,aws_sigv4=warn,aws_config=warn,aws_sdk_sts=warn,aws_sdk_cloudwatch=warn,aws_sdk_cloudwatchlogs=warn,hyper=warn,hyper_util=warn,h2=warn,rustls=warn,notify=warn";

/// Sets the global subscriber once at start. `filter_override` is `KINSIGHT_LOG` (an
/// `EnvFilter` directive string), read by `main`.
pub fn init_logging(format: LogFormat, debug: bool, filter_override: Option<&str>) {
    let level = if debug { "debug" } else { "info" };
    let directives = match filter_override {
        Some(f) => f.to_string(),
        None => format!("{level},{QUIET_DEPENDENCIES}"),
    };
    let filter =
        EnvFilter::try_new(&directives).unwrap_or_else(|_| EnvFilter::new(format!("{level},{QUIET_DEPENDENCIES}")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    // try_init: a second call (tests running several agents in one process) keeps the first.
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
}
