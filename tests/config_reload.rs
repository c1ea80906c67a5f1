//! Hot reload against real `ConfigMap` volume mechanics in a temporary directory: the file is a
//! symlink through `..data`, which kubelet swaps atomically (`pkg/volume/util/atomic_writer.go`
//! in kubernetes/kubernetes), plus a direct write and a directory that cannot be watched.
//!
//! Each test first lets the reloader apply a config that differs from the one it was started
//! with, which proves the directory watch is in place; the periodic re-read is set to an hour,
//! so every later change can only arrive through a file event. No test sleeps for a fixed time:
//! each waits on a channel or a condition, with a 10 s limit.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kinsight::config::reload::{RESTART_KEYS, ReloadOutcome, Reloader};
use kinsight::config::{self, Config, Inputs};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const LIMIT: Duration = Duration::from_secs(10);
const FILE: &str = "cwagentconfig.json";

fn text(interval: u32) -> String {
    format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c1","metrics_collection_interval":{interval}}}}}}}}}"#
    )
}

fn inputs() -> Inputs {
    Inputs {
        host_name_fallback: "test-node".into(),
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
        ..Inputs::default()
    }
}

/// A `ConfigMap` volume as kubelet lays it out.
struct ConfigMapDir {
    dir: tempfile::TempDir,
    generation: u32,
}

impl ConfigMapDir {
    fn new(text: &str) -> ConfigMapDir {
        let dir = tempfile::tempdir().unwrap();
        let generation_dir = Self::write_generation(dir.path(), 1, text);
        std::os::unix::fs::symlink(generation_dir, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink(format!("..data/{FILE}"), dir.path().join(FILE)).unwrap();
        ConfigMapDir { dir, generation: 1 }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join(FILE)
    }

    /// Writes `..2026_11_28_00_00_00.<n>/cwagentconfig.json`; returns the directory's name.
    fn write_generation(dir: &Path, generation: u32, text: &str) -> String {
        let name = format!("..2026_11_28_00_00_00.{generation}");
        std::fs::create_dir(dir.join(&name)).unwrap();
        std::fs::write(dir.join(&name).join(FILE), text).unwrap();
        name
    }

    /// kubelet's update: new generation, `..data_tmp` → it, rename over `..data`, old one removed.
    fn swap(&mut self, text: &str) {
        let dir = self.dir.path();
        let old = format!("..2026_11_28_00_00_00.{}", self.generation);
        self.generation += 1;
        let new = Self::write_generation(dir, self.generation, text);
        std::os::unix::fs::symlink(&new, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        std::fs::remove_dir_all(dir.join(old)).unwrap();
    }
}

/// A running reloader and what it reported.
struct Running {
    rx: watch::Receiver<Arc<Config>>,
    outcomes: Arc<Mutex<Vec<ReloadOutcome>>>,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts the reloader with a config that differs from the file (interval 1 s), and waits
    /// until it has applied the file: from then on the directory watch is in place.
    async fn start(file: PathBuf, rescan_interval: Duration) -> Running {
        let started_with = Arc::new(config::load_str(&text(1), &inputs()).unwrap());
        let (tx, rx) = watch::channel(Arc::clone(&started_with));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&outcomes);
        let cancel = CancellationToken::new();
        let mut reloader = Reloader::new(file, inputs());
        reloader.rescan_interval = rescan_interval;
        reloader.debounce = Duration::from_millis(20);
        let task = tokio::spawn(reloader.run(
            started_with,
            tx,
            move |outcome: &ReloadOutcome| seen.lock().unwrap().push(outcome.clone()),
            cancel.clone(),
        ));
        let mut running = Running {
            rx,
            outcomes,
            cancel,
            task,
        };
        running.next_config().await;
        running
    }

    /// The next config sent on the channel.
    async fn next_config(&mut self) -> Arc<Config> {
        tokio::time::timeout(LIMIT, self.rx.changed())
            .await
            .expect("no new config within 10 s")
            .expect("reloader stopped");
        Arc::clone(&self.rx.borrow_and_update())
    }

    fn count(&self, pred: impl Fn(&ReloadOutcome) -> bool) -> usize {
        self.outcomes.lock().unwrap().iter().filter(|o| pred(o)).count()
    }

    /// Waits until `pred` holds for `n` outcomes.
    async fn wait_for(&self, n: usize, pred: impl Fn(&ReloadOutcome) -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        while self.count(&pred) < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited 10 s for {n} matching outcomes; got {:?}",
                self.outcomes.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("reloader did not stop on cancel")
            .unwrap();
    }
}

fn is_invalid(o: &ReloadOutcome) -> bool {
    matches!(o, ReloadOutcome::Invalid(_))
}

const HOUR: Duration = Duration::from_hours(1);

#[tokio::test(flavor = "multi_thread")]
async fn an_atomic_configmap_swap_is_applied() {
    let mut cm = ConfigMapDir::new(&text(60));
    let mut running = Running::start(cm.file(), HOUR).await;
    assert_eq!(running.rx.borrow().interval, Duration::from_mins(1));

    cm.swap(&text(30));
    assert_eq!(running.next_config().await.interval, Duration::from_secs(30));
    // The outcome is reported just after the config is sent.
    running
        .wait_for(2, |o| {
            matches!(o, ReloadOutcome::Applied { changed, needs_restart }
                if changed == &["interval"] && needs_restart.is_empty())
        })
        .await;
    assert_eq!(running.count(is_invalid), 0);
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_file_keeps_the_running_config() {
    let mut cm = ConfigMapDir::new(&text(60));
    let mut running = Running::start(cm.file(), HOUR).await;

    cm.swap("{\"logs\": {\"metrics_collected\": ");
    running.wait_for(1, is_invalid).await;
    cm.swap(&text(0));
    running.wait_for(2, is_invalid).await;
    assert!(!running.rx.has_changed().unwrap(), "an invalid file was sent");
    assert_eq!(running.rx.borrow().interval, Duration::from_mins(1));
    let texts: Vec<String> = running
        .outcomes
        .lock()
        .unwrap()
        .iter()
        .filter_map(|o| match o {
            ReloadOutcome::Invalid(errors) => Some(errors.to_string()),
            _ => None,
        })
        .collect();
    assert!(texts[0].contains("malformed JSON at line 1"), "{texts:?}");
    assert_eq!(
        texts[1],
        "logs.metrics_collected.kubernetes.metrics_collection_interval: must be 1..=172800 \
         seconds, got 0"
    );

    // A fixed file is applied again.
    cm.swap(&text(30));
    assert_eq!(running.next_config().await.interval, Duration::from_secs(30));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_direct_write_is_applied() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(FILE);
    std::fs::write(&file, text(60)).unwrap();
    let mut running = Running::start(file.clone(), HOUR).await;

    std::fs::write(&file, text(30)).unwrap();
    // A write is truncate-then-write: a look between the two may see a half-written file
    // (reported as invalid); the look after the last event sees the whole file.
    let cfg = running.next_config().await;
    assert_eq!(cfg.interval, Duration::from_secs(30));
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restart_only_keys_are_reported_and_keep_their_running_value() {
    let mut cm = ConfigMapDir::new(&text(60));
    let mut running = Running::start(cm.file(), HOUR).await;
    let before = running.rx.borrow().clone();

    cm.swap(
        r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"c1","metrics_collection_interval":30}}},
            "kinsight":{"telemetry":{"listen_address":"127.0.0.1:1"},"paths":{"state_dir":"/tmp/elsewhere"}}}"#,
    );
    let cfg = running.next_config().await;
    assert_eq!(cfg.interval, Duration::from_secs(30));
    assert_eq!(cfg.telemetry.listen_address, before.telemetry.listen_address);
    assert_eq!(cfg.paths.state_dir, before.paths.state_dir);
    let expected = ReloadOutcome::Applied {
        changed: vec!["interval"],
        needs_restart: RESTART_KEYS.to_vec(),
    };
    running.wait_for(1, |o| *o == expected).await;
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unwatchable_directory_falls_back_to_the_periodic_read() {
    let dir = tempfile::tempdir().unwrap();
    // The parent does not exist yet, so it cannot be watched: only the re-read sees the file.
    let parent = dir.path().join("later");
    let file = parent.join(FILE);
    let started_with = Arc::new(config::load_str(&text(60), &inputs()).unwrap());
    let (tx, mut rx) = watch::channel(Arc::clone(&started_with));
    let outcomes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&outcomes);
    let cancel = CancellationToken::new();
    let mut reloader = Reloader::new(file.clone(), inputs());
    reloader.rescan_interval = Duration::from_millis(50);
    let task = tokio::spawn(reloader.run(
        started_with,
        tx,
        move |o: &ReloadOutcome| seen.lock().unwrap().push(o.clone()),
        cancel.clone(),
    ));

    // The first look (after the watch attempt) reports the missing file.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !outcomes
        .lock()
        .unwrap()
        .iter()
        .any(|o| matches!(o, ReloadOutcome::ReadFailed(_)))
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the missing file was not reported"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    std::fs::create_dir(&parent).unwrap();
    std::fs::write(&file, text(30)).unwrap();
    tokio::time::timeout(LIMIT, rx.changed())
        .await
        .expect("the periodic read did not pick up the file")
        .unwrap();
    assert_eq!(rx.borrow().interval, Duration::from_secs(30));
    cancel.cancel();
    tokio::time::timeout(LIMIT, task).await.unwrap().unwrap();
}

/// Reading the file is not a change: the watcher's own re-read must not wake it again, or it
/// re-reads the file forever (each read opens the file, which is an event in the directory).
/// Observed from outside: a second watcher counts opens of the file while nothing changes it.
#[tokio::test(flavor = "multi_thread")]
async fn reading_the_file_does_not_trigger_reloads() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use notify::Watcher as _;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cwagentconfig.json");
    std::fs::write(&file, r#"{"agent":{"metrics_collection_interval":60}}"#).unwrap();
    let inputs = kinsight::config::Inputs {
        output_override: Some(kinsight::config::OutputKind::Stdout),
        host_name_fallback: "n".into(),
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
        ..Default::default()
    };
    let current = Arc::new(kinsight::config::load_file(&file, &inputs).unwrap());
    let (tx, mut rx) = tokio::sync::watch::channel(current.clone());
    let cancel = tokio_util::sync::CancellationToken::new();
    let mut reloader = kinsight::config::reload::Reloader::new(file.clone(), inputs);
    reloader.rescan_interval = std::time::Duration::from_hours(1);
    let task = tokio::spawn(reloader.run(
        current,
        tx,
        |_o: &kinsight::config::reload::ReloadOutcome| {},
        cancel.clone(),
    ));

    // Prove the watch is in place: a real change arrives (and makes the reloader read the file).
    std::fs::write(&file, r#"{"agent":{"metrics_collection_interval":30}}"#).unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(10), rx.changed())
        .await
        .expect("the change was not noticed")
        .unwrap();

    // Count opens of the file from now on; nothing in this test opens it any more.
    let opens = Arc::new(AtomicUsize::new(0));
    let counted = opens.clone();
    let target = file.clone();
    let mut spy = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if let Ok(e) = e
            && matches!(e.kind, notify::EventKind::Access(notify::event::AccessKind::Open(_)))
            && e.paths.iter().any(|p| p == &target)
        {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    })
    .unwrap();
    spy.watch(dir.path(), notify::RecursiveMode::NonRecursive).unwrap();
    // A quiet second: several debounce periods of the reloader. With the feedback loop, the
    // reloader reopens the file about ten times in it.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    assert_eq!(
        opens.load(Ordering::SeqCst),
        0,
        "the reloader keeps re-reading an unchanged file"
    );
    cancel.cancel();
    let _ = task.await;
}
