//! Hot reload of the mounted `ConfigMap`: validate, then swap through a watch channel, so an
//! invalid edit leaves the running config in place.
//!
//! kubelet updates a `ConfigMap` volume atomically: it writes a new `..<timestamp>` directory,
//! points a `..data_tmp` symlink at it, renames that over `..data` and deletes the old
//! directory; `cwagentconfig.json` is a symlink to `..data/cwagentconfig.json` and never changes
//! itself (`pkg/volume/util/atomic_writer.go` in kubernetes/kubernetes). A watch on the file
//! would follow a target that is then deleted (vectordotdev/vector#10877), and the swap may be
//! reported as any kind of event (jimmidyson/configmap-reload#190). So the reloader watches the
//! file's *directory*, non-recursively, treats any event there as "look again", and also looks
//! again every [`RESCAN_INTERVAL`] in case an event was lost.
//!
//! On each look it reads the file through its stable path, stops if the bytes hash as before,
//! runs [`load_str`] — the startup path — and either `send_replace`s the new config or keeps
//! the running one and logs every error with its path. Events coalesce through a channel of
//! capacity 1 fed with `try_send` from notify's own thread: while one look is pending, more
//! events add nothing, and the look after the last event always happens.
//!
//! Keys that cannot change live ([`RESTART_KEYS`]): a new value is logged as needing a restart
//! and the config sent on the channel keeps the running value, so every component sees what
//! is actually in effect; everything else in the new file is applied.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::Watcher as _;
use tokio::sync::{mpsc, watch as channel};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::error::{ConfigError, ConfigErrors, ErrorKind, printed};
use super::model::Config;
use super::parse::{Inputs, MAX_FILE_BYTES, load_str, too_large};

/// The safety-net re-read period.
pub const RESCAN_INTERVAL: Duration = Duration::from_mins(1);

/// Quiet time after a file event before reading, so that a direct (non-atomic) write that
/// truncates and then writes is read once, complete, rather than half-written.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Keys whose new value needs a restart: the telemetry socket is bound once at startup, and
/// the checkpoint directory is opened once.
pub const RESTART_KEYS: [&str; 2] = ["kinsight.telemetry.listen_address", "kinsight.paths.state_dir"];

/// What one look at the file led to; `watch` passes each to its `on_outcome` callback (which
/// counts `config_reloads_total{result}`). A look that finds the same bytes as the previous one
/// reports nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadOutcome {
    /// A new config was sent. `changed` names the parts of [`Config`] that differ (`interval`,
    /// `output`, `logs`, …); `needs_restart` the [`RESTART_KEYS`] whose change was not applied.
    Applied {
        changed: Vec<&'static str>,
        needs_restart: Vec<&'static str>,
    },
    /// The file changed but the resulting config is the same (a comment-free reformat, an
    /// ignored key).
    Unchanged,
    /// The new file is invalid; the running config stays. Each error was logged.
    Invalid(ConfigErrors),
    /// The file could not be read; the running config stays.
    ReadFailed(String),
}

/// The reloader's settings; [`Reloader::new`] gives the production values, tests shorten them.
#[derive(Debug, Clone)]
pub struct Reloader {
    /// The stable path, e.g. `/etc/cwagentconfig/cwagentconfig.json`.
    pub file: PathBuf,
    /// The same inputs startup validated with (environment, `--output`, host name).
    pub inputs: Inputs,
    pub rescan_interval: Duration,
    pub debounce: Duration,
}

/// Watches `file` until `cancel`, sending each valid new config on `tx`. `current` is the
/// config startup loaded from that file. See the module doc; the same as
/// `Reloader::new(file, inputs).run(..)`.
pub async fn watch(
    file: PathBuf,
    inputs: Inputs,
    current: Arc<Config>,
    tx: channel::Sender<Arc<Config>>,
    on_outcome: impl Fn(&ReloadOutcome) + Send + Sync + 'static,
    cancel: CancellationToken,
) {
    Reloader::new(file, inputs).run(current, tx, on_outcome, cancel).await;
}

/// What the loop remembers between looks.
#[derive(Debug)]
struct State {
    /// Hash of the bytes last looked at (valid or not), so the same bad file is reported once.
    last_hash: Option<u64>,
    /// The config in effect, i.e. last sent (or startup's).
    current: Arc<Config>,
    /// The first look only confirms what startup loaded: it reports nothing if equal.
    is_first: bool,
}

impl Reloader {
    pub fn new(file: PathBuf, inputs: Inputs) -> Reloader {
        Reloader {
            file,
            inputs,
            rescan_interval: RESCAN_INTERVAL,
            debounce: DEBOUNCE,
        }
    }

    /// Runs until `cancel`. If the directory cannot be watched (inotify limits, a missing
    /// directory), it logs a warning and relies on the periodic re-read alone.
    pub async fn run(
        self,
        current: Arc<Config>,
        tx: channel::Sender<Arc<Config>>,
        on_outcome: impl Fn(&ReloadOutcome) + Send + Sync + 'static,
        cancel: CancellationToken,
    ) {
        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        // Dropping the watcher at the end of this function stops its thread.
        let _watcher = self.watch_directory(wake_tx);
        let mut ticker = tokio::time::interval(self.rescan_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut state = State {
            last_hash: None,
            current,
            is_first: true,
        };
        loop {
            // The ticker's first tick is immediate: a change made between startup's load and
            // the watch being in place is not missed.
            let is_event = tokio::select! {
                () = cancel.cancelled() => break,
                _ = ticker.tick() => false,
                Some(()) = wake_rx.recv() => true,
            };
            if is_event && !self.debounce.is_zero() {
                tokio::select! {
                    () = cancel.cancelled() => break,
                    () = tokio::time::sleep(self.debounce) => {}
                }
                while wake_rx.try_recv().is_ok() {}
            }
            if let Some(outcome) = self.look(&mut state, &tx).await {
                on_outcome(&outcome);
            }
            state.is_first = false;
        }
    }

    fn watch_directory(&self, wake: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
        let dir = match self.file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        // Runs on notify's thread. Any change, even an error (e.g. a queue overflow), means
        // "look again"; a full channel means a look is already pending. Access events (open,
        // read, close without writing) are not changes: the re-read itself causes them, and
        // reacting to them re-reads the file forever (kubelet's `..data` swap creates, renames
        // and removes, it never only reads).
        let handler = move |event: notify::Result<notify::Event>| {
            if let Ok(e) = &event
                && matches!(e.kind, notify::EventKind::Access(_))
            {
                return;
            }
            let _ = wake.try_send(());
        };
        let watched = notify::recommended_watcher(handler).and_then(|mut w| {
            w.watch(dir, notify::RecursiveMode::NonRecursive)?;
            Ok(w)
        });
        match watched {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(
                    directory = %dir.display(),
                    error = %e,
                    every_s = self.rescan_interval.as_secs(),
                    "cannot watch the config directory; changes are picked up by the periodic re-read only"
                );
                None
            }
        }
    }

    /// One look at the file.
    async fn look(&self, state: &mut State, tx: &channel::Sender<Arc<Config>>) -> Option<ReloadOutcome> {
        let bytes = match read_bounded(&self.file).await {
            Ok(bytes) => bytes,
            Err(e) => {
                let message = format!("cannot read {}: {e}", self.file.display());
                tracing::warn!(error = %message, "config reload skipped; keeping the running configuration");
                state.last_hash = None;
                return Some(ReloadOutcome::ReadFailed(message));
            }
        };
        let hash = hash_of(&bytes);
        if state.last_hash == Some(hash) {
            return None;
        }
        state.last_hash = Some(hash);
        let loaded = match std::str::from_utf8(&bytes) {
            Ok(text) => load_str(text, &self.inputs).map_err(|e| self.name_file(e)),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                path: String::new(),
                kind: ErrorKind::Io {
                    file: self.file.clone(),
                    message: e.to_string(),
                },
            }])),
        };
        match loaded {
            Err(errors) => {
                let (shown, more) = printed(&errors.0);
                for error in shown {
                    tracing::warn!(
                        path = %error.path,
                        error = %error,
                        "config reload rejected; keeping the running configuration"
                    );
                }
                if more > 0 {
                    tracing::warn!(more, "config reload rejected: more errors not shown");
                }
                Some(ReloadOutcome::Invalid(errors))
            }
            Ok(new) => Some(self.apply(state, tx, new))
                .filter(|outcome| !(state.is_first && *outcome == ReloadOutcome::Unchanged)),
        }
    }

    /// Malformed JSON is reported against the file name, as `load_file` does.
    fn name_file(&self, mut errors: ConfigErrors) -> ConfigErrors {
        for error in &mut errors.0 {
            if matches!(error.kind, ErrorKind::Malformed { .. }) {
                error.path = self.file.display().to_string();
            }
        }
        errors
    }

    fn apply(&self, state: &mut State, tx: &channel::Sender<Arc<Config>>, mut new: Config) -> ReloadOutcome {
        let old = &state.current;
        let needs_restart = keep_restart_keys(old, &mut new);
        for key in &needs_restart {
            tracing::warn!(
                key = *key,
                "changed in the config file but needs a restart to take effect; the running value stays"
            );
        }
        let changed = changed_parts(old, &new);
        if changed.is_empty() {
            return ReloadOutcome::Unchanged;
        }
        let fresh: Vec<&String> = new.warnings.iter().filter(|w| !old.warnings.contains(w)).collect();
        let (shown, more) = printed(&fresh);
        for warning in shown {
            tracing::warn!("{warning}");
        }
        if more > 0 {
            tracing::warn!(more, "more configuration warnings not shown");
        }
        tracing::info!(changed = ?changed, file = %self.file.display(), "configuration reloaded");
        let new = Arc::new(new);
        tx.send_replace(Arc::clone(&new));
        state.current = new;
        ReloadOutcome::Applied { changed, needs_restart }
    }
}

/// The file, or an error once it is larger than [`MAX_FILE_BYTES`] (read one byte past the cap,
/// whatever its size).
async fn read_bounded(path: &Path) -> std::io::Result<Vec<u8>> {
    use tokio::io::AsyncReadExt as _;
    let file = tokio::fs::File::open(path).await?;
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes).await?;
    if bytes.len() > MAX_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            too_large(bytes.len() as u64).to_string(),
        ));
    }
    Ok(bytes)
}

fn hash_of(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    hasher.finish()
}

/// Puts the running values of [`RESTART_KEYS`] back into `new`; returns the keys that differed.
fn keep_restart_keys(old: &Config, new: &mut Config) -> Vec<&'static str> {
    let mut differ = Vec::new();
    if new.telemetry.listen_address != old.telemetry.listen_address {
        new.telemetry.listen_address = old.telemetry.listen_address;
        differ.push(RESTART_KEYS[0]);
    }
    if new.paths.state_dir != old.paths.state_dir {
        new.paths.state_dir.clone_from(&old.paths.state_dir);
        differ.push(RESTART_KEYS[1]);
    }
    differ
}

/// The top-level parts of [`Config`] that differ, by field name.
fn changed_parts(old: &Config, new: &Config) -> Vec<&'static str> {
    let parts = [
        ("cluster_name", old.cluster_name != new.cluster_name),
        ("node_name", old.node_name != new.node_name),
        ("region", old.region != new.region),
        ("interval", old.interval != new.interval),
        ("debug", old.debug != new.debug),
        ("output", old.output != new.output),
        ("kubernetes", old.kubernetes != new.kubernetes),
        ("metrics", old.metrics != new.metrics),
        ("logs", old.logs != new.logs),
        ("paths", old.paths != new.paths),
        ("identity", old.identity != new.identity),
        ("telemetry", old.telemetry != new.telemetry),
    ];
    parts
        .into_iter()
        .filter_map(|(name, differs)| differs.then_some(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OutputKind;

    fn local(text: &str) -> Config {
        let inputs = Inputs {
            output_override: Some(OutputKind::Stdout),
            host_name_fallback: "n".into(),
            tagged_cluster_name: None,
            defer_missing_cluster_name: false,
            ..Inputs::default()
        };
        load_str(text, &inputs).expect("valid test config")
    }

    #[test]
    fn restart_keys_keep_their_running_value() {
        let old = local("{}");
        let mut new = local(
            r#"{"kinsight":{"telemetry":{"listen_address":"127.0.0.1:1"},
                "paths":{"state_dir":"/tmp/s"}},"agent":{"metrics_collection_interval":5}}"#,
        );
        assert_eq!(keep_restart_keys(&old, &mut new), RESTART_KEYS);
        assert_eq!(new.telemetry, old.telemetry);
        assert_eq!(new.paths, old.paths);
        assert_eq!(changed_parts(&old, &new), ["interval"]);
    }

    #[test]
    fn equal_configs_have_no_changed_parts() {
        assert!(changed_parts(&local("{}"), &local(" { } ")).is_empty());
    }
}
