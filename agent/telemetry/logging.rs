//! Diagnostic logs on stderr (stdout is the `stdout` output's data channel).

use std::sync::OnceLock;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::Layered;
use tracing_subscriber::prelude::*;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// Format of kinsight's own log lines on stderr (`kinsight.telemetry.log_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Crates that see credentials, signatures, tokens or log contents, by target prefix (a target
/// matches when it starts with the prefix, so `aws_` covers `aws_sigv4::sign::v4`,
/// `aws_smithy_runtime`, `aws_config`, every `aws_sdk_*`…). The AWS signer traces its canonical
/// request and string to sign (with the access key ID) and the signature; the SDK's runtime and
/// HTTP client log request headers (`authorization`, `x-amz-security-token`) and bodies at debug
/// and trace; hyper, h2 and rustls see the same bytes. They are capped at `warn` on top of any
/// filter, `KINSIGHT_LOG` included: no filter string can raise them.
pub const CAPPED_AT_WARN: [&str; 8] = [
    "aws_",
    "hyper",
    "h2",
    "http",
    "rustls",
    "tokio_rustls",
    "tower",
    "notify",
];

/// The subscriber below the output layer: the reloadable level filter and the cap.
type Filtered = Layered<Targets, Layered<reload::Layer<EnvFilter, Registry>, Registry>>;
/// The output layer, text or JSON.
type Output = Box<dyn Layer<Filtered> + Send + Sync>;

/// Changes the installed subscriber's level (`agent.debug`) and format
/// (`kinsight.telemetry.log_format`) on a reload.
pub struct LogSwitch {
    level: reload::Handle<EnvFilter, Registry>,
    /// `KINSIGHT_LOG` set the filter: it wins over `agent.debug`, at start and on a reload.
    overridden: bool,
    output: reload::Handle<Output, Filtered>,
    /// Builds the output layer for a format, on the subscriber's writer.
    make_output: Box<dyn Fn(LogFormat) -> Output + Send + Sync>,
}

impl std::fmt::Debug for LogSwitch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSwitch")
            .field("overridden", &self.overridden)
            .finish_non_exhaustive()
    }
}

impl LogSwitch {
    /// Debug or info for kinsight's own events (the capped crates stay at warn). Returns whether
    /// the filter changed: not under `KINSIGHT_LOG`.
    pub fn set_debug(&self, debug: bool) -> bool {
        !self.overridden && self.level.reload(EnvFilter::new(level(debug))).is_ok()
    }

    /// Text or JSON lines from the next event on.
    pub fn set_format(&self, format: LogFormat) -> bool {
        self.output.reload((self.make_output)(format)).is_ok()
    }
}

/// The switch of the subscriber [`init_logging`] installed.
static SWITCH: OnceLock<LogSwitch> = OnceLock::new();

/// Sets the global subscriber once at start. `filter_override` is `KINSIGHT_LOG` (an
/// `EnvFilter` directive string), read by `main`.
pub fn init_logging(format: LogFormat, debug: bool, filter_override: Option<&str>) {
    let (subscriber, switch) = subscriber(format, debug, filter_override, std::io::stderr);
    // try_init: a second call (tests running several agents in one process) keeps the first.
    if subscriber.try_init().is_ok() {
        let _ = SWITCH.set(switch);
    }
}

/// Turns debug logging on or off in the running process (`agent.debug` changed by a reload).
/// Returns whether it changed: not when `KINSIGHT_LOG` chose the filter, or before
/// [`init_logging`].
pub fn set_debug(debug: bool) -> bool {
    SWITCH.get().is_some_and(|s| s.set_debug(debug))
}

/// Switches the running process's log lines to `format` (`kinsight.telemetry.log_format`
/// changed by a reload). Returns whether it changed (not before [`init_logging`]).
pub fn set_format(format: LogFormat) -> bool {
    SWITCH.get().is_some_and(|s| s.set_format(format))
}

fn level(debug: bool) -> &'static str {
    if debug { "debug" } else { "info" }
}

/// The output layer for `format`, writing to `writer`.
fn output<W>(format: LogFormat, writer: W) -> Output
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer).with_target(true);
    match format {
        LogFormat::Json => layer.json().flatten_event(true).boxed(),
        LogFormat::Text => layer.with_ansi(false).boxed(),
    }
}

/// The subscriber [`init_logging`] installs, writing to `writer`, and its switch.
fn subscriber<W>(
    format: LogFormat,
    debug: bool,
    filter_override: Option<&str>,
    writer: W,
) -> (impl tracing::Subscriber + Send + Sync + 'static, LogSwitch)
where
    W: for<'w> MakeWriter<'w> + Clone + Send + Sync + 'static,
{
    let overridden = filter_override.and_then(|f| EnvFilter::try_new(f).ok());
    let switch_overridden = overridden.is_some();
    let filter = overridden.unwrap_or_else(|| EnvFilter::new(level(debug)));
    let (filter, level_handle) = reload::Layer::new(filter);
    let cap = CAPPED_AT_WARN
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, prefix| {
            t.with_target(*prefix, LevelFilter::WARN)
        });
    let (layer, output_handle) = reload::Layer::new(output(format, writer.clone()));
    // Two global filters: an event is logged only when both enable it.
    let subscriber = tracing_subscriber::registry().with(filter).with(cap).with(layer);
    let switch = LogSwitch {
        level: level_handle,
        overridden: switch_overridden,
        output: output_handle,
        make_output: Box::new(move |format| output(format, writer.clone())),
    };
    (subscriber, switch)
}

#[cfg(test)]
mod tests {

    use super::*;

    use super::super::LogBuffer as Buffer;

    fn logged(filter: Option<&str>, debug: bool) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let (subscriber, _) = subscriber(LogFormat::Text, debug, filter, move || out.clone());
        tracing::subscriber::with_default(subscriber, || {
            tracing::trace!(target: "aws_sigv4::http_request::sign", "canonical request AKIA-TRACE");
            tracing::debug!(target: "aws_smithy_runtime::client::orchestrator", "authorization AKIA-DEBUG");
            tracing::info!(target: "hyper_util::client", "connecting AKIA-INFO");
            tracing::trace!(target: "rustls::client", "handshake AKIA-TLS");
            tracing::trace!(target: "h2::codec", "frame AKIA-H2");
            tracing::warn!(target: "aws_config::imds", "imds slow (shown)");
            tracing::trace!(target: "kinsight::auth", "own trace (shown at trace)");
            tracing::debug!(target: "kinsight::auth", "own debug (shown at debug)");
        });
        buffer.text()
    }

    #[test]
    fn no_filter_raises_the_capped_crates_above_warn() {
        for filter in [
            Some("trace"),
            Some("aws_sigv4=trace,aws_smithy_runtime=trace,hyper_util=trace,rustls=trace,h2=trace,trace"),
            Some("aws_sigv4::http_request::sign=trace,aws_smithy_runtime::client::orchestrator=trace,info"),
            Some("[{secret}]=trace,info"),
            None,
        ] {
            for debug in [false, true] {
                let text = logged(filter, debug);
                assert!(!text.contains("AKIA"), "{filter:?}: {text}");
                assert!(text.contains("imds slow (shown)"), "{filter:?}: {text}");
            }
        }
        assert!(logged(Some("trace"), false).contains("own trace (shown at trace)"));
        assert!(logged(None, true).contains("own debug (shown at debug)"));
        assert!(!logged(None, false).contains("own debug"));
    }

    /// `agent.debug` changed by a reload turns kinsight's debug lines on and off; the capped
    /// crates stay at warn, and `KINSIGHT_LOG` keeps its filter.
    #[test]
    fn the_level_switch_turns_debug_on_and_off_but_not_under_kinsight_log() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let (installed, switch) = subscriber(LogFormat::Text, false, None, move || out.clone());
        tracing::subscriber::with_default(installed, || {
            tracing::debug!(target: "kinsight::app", "first debug");
            assert!(switch.set_debug(true));
            tracing::debug!(target: "kinsight::app", "second debug");
            tracing::debug!(target: "aws_smithy_runtime::client", "authorization AKIA-DEBUG");
            assert!(switch.set_debug(false));
            tracing::debug!(target: "kinsight::app", "third debug");
        });
        let text = buffer.text();
        assert!(!text.contains("first debug") && !text.contains("third debug"), "{text}");
        assert!(text.contains("second debug"), "{text}");
        assert!(!text.contains("AKIA"), "{text}");

        let (_, pinned) = subscriber(LogFormat::Text, false, Some("warn"), std::io::sink);
        assert!(!pinned.set_debug(true), "KINSIGHT_LOG wins over agent.debug");
    }

    /// `kinsight.telemetry.log_format` changed by a reload: JSON lines from the next event on.
    #[test]
    fn the_switch_changes_the_format_of_the_next_lines() {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let (installed, switch) = subscriber(LogFormat::Text, false, None, move || out.clone());
        tracing::subscriber::with_default(installed, || {
            tracing::info!(target: "kinsight::app", n = 1, "as text");
            assert!(switch.set_format(LogFormat::Json));
            tracing::info!(target: "kinsight::app", n = 2, "as json");
        });
        let text = buffer.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("as text") && serde_json::from_str::<serde_json::Value>(lines[0]).is_err());
        let json: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            (json["message"].as_str(), json["n"].as_u64()),
            (Some("as json"), Some(2))
        );
    }
}
