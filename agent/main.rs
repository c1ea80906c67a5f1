//! The `kinsight` command line: parse → load (validate) → build → run.
//!
//! Exit codes: 0 success, 64 usage error (`EX_USAGE`), 78 configuration error (`EX_CONFIG`),
//! 1 run-time failure. A bad command line or config fails before any port or task exists.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};
use kinsight::app::{self, AppError, Outside};
use kinsight::config::{self, Env, OutputKind};
use kinsight::host::SystemClock;
use kinsight::telemetry;
use tokio_util::sync::CancellationToken;

const EX_USAGE: u8 = 64;

#[derive(Debug, Parser)]
#[command(
    name = "kinsight",
    version,
    about = "Container Insights metrics and logs for Amazon EKS, in one agent"
)]
#[command(after_help = "A first run needs no AWS account and no cluster:\n  kinsight run --output stdout")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// cwagentconfig.json to use [default: /etc/cwagentconfig/cwagentconfig.json if it exists,
    /// else the embedded default, which prints node metrics to stdout]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Where items go: cloudwatch, stdout, or dir:PATH (JSON lines); overrides kinsight.output
    #[arg(long, value_name = "OUTPUT", value_parser = parse_output)]
    output: Option<OutputKind>,
    /// Root of the node's filesystem: /proc, /sys and log directories resolve under it (the
    /// DaemonSet mounts the host's / read-only at /rootfs)
    #[arg(long, value_name = "DIR", default_value = "/")]
    host_root: PathBuf,
    /// Pod metadata from a `PodList` JSON file (`kubectl get pods -o json`), re-read when it
    /// changes; overrides `kinsight.metrics.metadata_source`
    #[arg(long, value_name = "FILE")]
    pods_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Collect and ship every interval until SIGTERM; config changes apply without a restart
    Run {
        #[command(flatten)]
        common: Common,
    },
    /// Collect one interval (a priming sample, then the real one), write it and exit
    Once {
        #[command(flatten)]
        common: Common,
        /// Time between the priming sample and the collected one (e.g. 2s, 500ms)
        #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = parse_duration)]
        interval: Duration,
    },
    /// Preflight: configuration, host mounts, cgroup mode, state directory; exits non-zero on a problem
    Check {
        #[command(flatten)]
        common: Common,
        /// Also send one datum (namespace ContainerInsights/kinsight-check) and one log event
        /// (the application log group) to prove the write permissions end to end
        #[arg(long)]
        send_test: bool,
    },
    /// Estimate what this node's metrics and logs cost a month in CloudWatch, per destination,
    /// with enhanced observability off and on (sends nothing)
    Cost {
        #[command(flatten)]
        common: Common,
        /// Time between the two samples; also the window the log growth is measured over
        #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_duration)]
        interval: Duration,
        /// Nodes like this one in the cluster
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        nodes: u64,
        /// `text` (a table) or `json` (one object)
        #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
        format: String,
    },
    /// Configuration file commands
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate FILE: exit 0, or print every error with its JSON path and exit 78
    Validate {
        /// The cwagentconfig.json to check
        file: PathBuf,
        /// Validate as if run with this output (local outputs need no cluster name)
        #[arg(long, value_name = "OUTPUT", value_parser = parse_output)]
        output: Option<OutputKind>,
    },
}

fn parse_output(s: &str) -> Result<OutputKind, String> {
    OutputKind::parse(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d.is_zero() {
        return Err("must be greater than zero".into());
    }
    Ok(d)
}

#[expect(
    clippy::disallowed_methods,
    reason = "main reads the environment once and passes it down"
)]
fn log_filter_from_env() -> Option<String> {
    std::env::var("KINSIGHT_LOG").ok().filter(|s| !s.is_empty())
}

fn outside(common: &Common, env: Env) -> Outside {
    let config_path = common.config.clone().or_else(|| {
        let default = PathBuf::from(app::DEFAULT_CONFIG_PATH);
        default.exists().then_some(default)
    });
    Outside {
        host_root: common.host_root.clone(),
        env,
        config_path,
        output_override: common.output.clone(),
        pods_file: common.pods_file.clone(),
        clock: Arc::new(SystemClock),
    }
}

/// Where the kubelet reads a container's termination message (`kubectl describe pod` shows it).
const TERMINATION_LOG: &str = "/dev/termination-log";

/// Writes `msg` to the termination log when it exists: the kubelet creates it in containers,
/// and outside one we must not create it.
fn write_termination_log(msg: &str) {
    let log = std::path::Path::new(TERMINATION_LOG);
    if log.exists() {
        let _ = std::fs::write(log, format!("{msg}\n"));
    }
}

/// A panic is written to the termination log before the default hook prints it: release builds
/// abort on panic, so nothing else would get the chance.
fn install_panic_hook() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current();
        write_termination_log(&format!(
            "kinsight panicked in thread {}: {info}",
            thread.name().unwrap_or("unnamed")
        ));
        default(info);
    }));
}

fn main() -> ExitCode {
    install_panic_hook();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EX_USAGE } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let env = Env::from_process();
    match cli.command {
        Command::Config {
            command: ConfigCommand::Validate { file, output },
        } => validate(&file, output, env),
        Command::Check { common, send_test } => check(&outside(&common, env), send_test),
        Command::Once { common, interval } => start(outside(&common, env), move |o, l, c| app::once(o, l, interval, c)),
        Command::Run { common } => start(outside(&common, env), app::run),
        Command::Cost {
            mut common,
            interval,
            nodes,
            format,
        } => {
            // Nothing is sent: a local output, so that no AWS identity is needed.
            common.output = Some(OutputKind::Stdout);
            let json = format == "json";
            start(outside(&common, env), move |o, l, c| {
                app::cost(o, l, interval, nodes, json, c)
            })
        }
    }
}

fn validate(file: &std::path::Path, output: Option<OutputKind>, env: Env) -> ExitCode {
    let o = Outside {
        host_root: PathBuf::from("/"),
        env,
        config_path: Some(file.to_path_buf()),
        output_override: output,
        pods_file: None,
        clock: Arc::new(SystemClock),
    };
    match app::load_config(&o) {
        Ok(cfg) => {
            let (shown, more) = config::printed(&cfg.warnings);
            for w in shown {
                eprintln!("warning: {w}");
            }
            if more > 0 {
                eprintln!("warning: … and {more} more warnings");
            }
            eprintln!(
                "{}: valid (cluster {}, interval {} s)",
                file.display(),
                cfg.cluster_name,
                cfg.interval.as_secs()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: invalid configuration", file.display());
            eprintln!("{errors}");
            ExitCode::from(AppError::Config(errors).exit_code())
        }
    }
}

fn check(o: &Outside, send_test: bool) -> ExitCode {
    // The identity checks log their report like a start does (secrets never appear).
    if let Ok(cfg) = app::load_config(o) {
        telemetry::init_logging(cfg.telemetry.log_format, cfg.debug, log_filter_from_env().as_deref());
    }
    let report = kinsight::app::check::run_with(o, kinsight::app::check::Options { send_test });
    eprint!("{}", report.render());
    ExitCode::from(report.exit_code())
}

fn start<F, Fut>(o: Outside, f: F) -> ExitCode
where
    F: FnOnce(Outside, app::Loaded, CancellationToken) -> Fut,
    Fut: std::future::Future<Output = Result<(), AppError>>,
{
    // Load (the file is read once) and validate before anything starts, so a bad config exits
    // 78 with every error listed. A missing cluster name is asked of the EC2 instance tag later.
    let loaded = match app::load(&o) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!(
                "kinsight: invalid configuration ({}):",
                o.config_path
                    .as_ref()
                    .map_or("<embedded default>".into(), |p| p.display().to_string())
            );
            eprintln!("{errors}");
            return ExitCode::from(AppError::Config(errors).exit_code());
        }
    };
    telemetry::init_logging(
        loaded.cfg.telemetry.log_format,
        loaded.cfg.debug,
        log_filter_from_env().as_deref(),
    );
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    let cancel = CancellationToken::new();
    let result = rt.block_on(async {
        let signals = tokio::spawn(shutdown_on_signal(cancel.clone()));
        let r = f(o, loaded, cancel.clone()).await;
        signals.abort();
        r
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = telemetry::chain(&e);
            tracing::error!(error = %msg, "kinsight failed");
            write_termination_log(&msg);
            ExitCode::from(e.exit_code())
        }
    }
}

async fn shutdown_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
    cancel.cancel();
}
