//! The `file` pod metadata source against real files in a temporary directory: the oracle pod
//! list (`tests/fixtures/kube/podlist-oracle.json`), rewrites in place and by rename, a
//! `ConfigMap`-style `..data` symlink swap (`pkg/volume/util/atomic_writer.go` in
//! kubernetes/kubernetes), a broken rewrite, a file that appears late, and a list with unknown or
//! missing fields.
//!
//! The source polls every 50 ms here (2 s in production) and its safety re-read is set to an
//! hour, so every change below is found by the metadata fingerprint. No test sleeps for a fixed
//! time: each waits on a condition, with a 10 s limit.

#![allow(clippy::float_cmp, reason = "counters and request sums are integers, exact in f64")]

use std::path::{Path, PathBuf};
use std::time::Duration;

use kinsight::kube::{FileSource, PodIndex, PodListError, load_file_now, parse_pod_list};
use kinsight::telemetry::{Name, Telemetry};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";
const ORACLE: &str = "tests/fixtures/kube/podlist-oracle.json";
const POD_A: &str = "3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718";
const LIMIT: Duration = Duration::from_secs(10);

/// Polls `cond` every 20 ms until it holds; panics naming `what` after [`LIMIT`].
async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "waited {LIMIT:?} for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A pod list of one running pod `name` on [`NODE`] with one container `c` of id `cid`.
fn one_pod(name: &str, cid: &str) -> String {
    format!(
        r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"7"}},"items":[
          {{"metadata":{{"name":"{name}","namespace":"default","uid":"uid-{name}"}},
            "spec":{{"nodeName":"{NODE}","containers":[{{"name":"c","image":"i","resources":{{"requests":{{"cpu":"100m"}}}}}}]}},
            "status":{{"phase":"Running","containerStatuses":[{{"name":"c","containerID":"containerd://{cid}",
              "image":"i","imageID":"","ready":true,"restartCount":0,"state":{{"running":{{}}}}}}]}}}}]}}"#
    )
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reloads(t: &Telemetry, result: &'static str) -> f64 {
    t.get(Name::PodIndexReloads, &[("result", result)])
}

struct Running {
    index: PodIndex,
    telemetry: Telemetry,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(path: PathBuf) -> Running {
        let index = PodIndex::new(Some(NODE.to_string()));
        let telemetry = Telemetry::new();
        let cancel = CancellationToken::new();
        let mut source = FileSource::new(path, Some(NODE.to_string()), index.clone(), telemetry.clone());
        source.poll_interval = Duration::from_millis(50);
        source.rescan_interval = Duration::from_hours(1);
        let task = tokio::spawn(source.run(cancel.clone()));
        Running {
            index,
            telemetry,
            cancel,
            task,
        }
    }

    fn has_uid(&self, uid: &str) -> bool {
        self.index.by_uid(uid).is_some()
    }

    async fn stop(self) {
        self.cancel.cancel();
        tokio::time::timeout(LIMIT, self.task)
            .await
            .expect("the source stops on cancel")
            .unwrap();
    }
}

#[tokio::test]
async fn oracle_list_loads_with_the_right_totals() {
    let index = PodIndex::new(Some(NODE.to_string()));
    assert_eq!(load_file_now(Path::new(ORACLE), Some(NODE), &index).unwrap(), 4);
    let totals = index.node_totals();
    assert_eq!((totals.running_pods, totals.running_containers), (2, 3));
    assert_eq!(totals.cpu_request_millicores, 600.0);
    assert_eq!(totals.memory_request_bytes, 671_088_640.0);
    let a = index.by_uid(POD_A).unwrap();
    assert_eq!((a.pod_name(false), a.service.as_deref()), ("web", Some("web-svc")));

    // The running source loads it too, and counts the load.
    let running = Running::start(PathBuf::from(ORACLE));
    until("the first load", || reloads(&running.telemetry, "applied") == 1.0).await;
    assert_eq!(running.telemetry.get(Name::PodIndexPods, &[]), 4.0);
    assert!(
        running
            .telemetry
            .render()
            .contains("kinsight_pod_index_reloads_total{result=\"applied\"} 1\n")
    );
    running.stop().await;
}

#[tokio::test]
async fn a_container_id_resolves_from_a_containerd_status() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    let cid = "0123456789abcdef".repeat(4);
    std::fs::write(&file, one_pod("p", &cid)).unwrap();
    let index = PodIndex::new(Some(NODE.to_string()));
    load_file_now(&file, None, &index).unwrap();
    let (pod, i) = index.by_container_id(&cid).unwrap();
    let c = pod.container(i).unwrap();
    assert_eq!(
        (pod.name.as_str(), c.name.as_str(), c.runtime.as_deref()),
        ("p", "c", Some("containerd"))
    );
}

#[tokio::test]
async fn rewrites_in_place_and_by_rename_update_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    std::fs::write(&file, one_pod("first", &"a".repeat(64))).unwrap();
    let running = Running::start(file.clone());
    until("the first pod", || running.has_uid("uid-first")).await;

    write_atomically(&file, &one_pod("second", &"b".repeat(64)));
    until("the renamed-over file", || running.has_uid("uid-second")).await;
    assert!(!running.has_uid("uid-first"), "a reload replaces the whole index");

    // In place: truncate and write, as an editor without atomic saves does.
    std::fs::write(&file, one_pod("third-with-a-longer-name", &"c".repeat(64))).unwrap();
    until("the file rewritten in place", || {
        running.has_uid("uid-third-with-a-longer-name")
    })
    .await;
    assert!(running.index.by_container_id(&"c".repeat(64)).is_some());
    assert_eq!(reloads(&running.telemetry, "applied"), 3.0);
    running.stop().await;
}

/// kubelet's atomic writer: `pods.json` → `..data/pods.json`, `..data` → `..<timestamp>`; an
/// update writes a new timestamped directory and renames a new `..data` symlink over the old.
#[tokio::test]
async fn a_configmap_symlink_swap_updates_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let version = |name: &str, text: &str| {
        let d = root.join(name);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("pods.json"), text).unwrap();
    };
    version("..2026_01_15_10_00_00.1", &one_pod("old", &"a".repeat(64)));
    std::os::unix::fs::symlink("..2026_01_15_10_00_00.1", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/pods.json", root.join("pods.json")).unwrap();
    let running = Running::start(root.join("pods.json"));
    until("the first pod", || running.has_uid("uid-old")).await;

    version("..2026_01_15_10_05_00.2", &one_pod("new", &"b".repeat(64)));
    std::os::unix::fs::symlink("..2026_01_15_10_05_00.2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    std::fs::remove_dir_all(root.join("..2026_01_15_10_00_00.1")).unwrap();
    until("the swapped file", || running.has_uid("uid-new")).await;
    assert!(!running.has_uid("uid-old"));
    running.stop().await;
}

#[tokio::test]
async fn a_broken_rewrite_keeps_the_old_index_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    std::fs::write(&file, one_pod("good", &"a".repeat(64))).unwrap();
    let running = Running::start(file.clone());
    until("the first pod", || running.has_uid("uid-good")).await;
    let generation = running.index.snapshot().generation();

    write_atomically(&file, "{\"kind\":\"PodList\",\"items\":[{\"metadata\":");
    until("the invalid load to be counted", || {
        reloads(&running.telemetry, "invalid") == 1.0
    })
    .await;
    assert!(running.has_uid("uid-good"), "the previous index stays");
    assert_eq!(
        running.index.snapshot().generation(),
        generation,
        "nothing was replaced"
    );
    assert_eq!(running.telemetry.get(Name::PodIndexPods, &[]), 1.0);

    write_atomically(&file, r#"{"kind":"Deployment","spec":{}}"#);
    until("the wrong kind to be counted", || {
        reloads(&running.telemetry, "invalid") == 2.0
    })
    .await;

    std::fs::remove_file(&file).unwrap();
    until("the missing file to be counted", || {
        reloads(&running.telemetry, "read_failed") == 1.0
    })
    .await;
    assert!(running.has_uid("uid-good"), "a vanished file does not empty the index");

    write_atomically(&file, &one_pod("fixed", &"b".repeat(64)));
    until("the repaired file", || running.has_uid("uid-fixed")).await;
    assert_eq!(reloads(&running.telemetry, "applied"), 2.0);
    assert_eq!(
        reloads(&running.telemetry, "read_failed"),
        1.0,
        "a missing file is counted once, not per poll"
    );
    running.stop().await;
}

#[tokio::test]
async fn a_file_that_appears_late_syncs_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    let running = Running::start(file.clone());
    until("the missing file to be counted", || {
        reloads(&running.telemetry, "read_failed") == 1.0
    })
    .await;
    assert!(!running.index.is_synced(), "pod-derived fields stay withheld");
    write_atomically(&file, &one_pod("late", &"a".repeat(64)));
    until("the late file", || running.index.is_synced()).await;
    assert!(running.has_uid("uid-late"));
    running.stop().await;
}

#[tokio::test]
async fn unknown_and_missing_fields_load_and_skipped_pods_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    let text = format!(
        r#"[{{"metadata":{{"name":"no-uid"}}}},
            {{"metadata":{{"name":"minimal","uid":"u-min"}},"spec":{{"nodeName":"{NODE}"}},"status":{{"phase":"Running"}},
              "aFieldFromTheFuture":{{"nested":[1,2,3]}}}},
            {{"metadata":{{"name":"bad-cpu","uid":"u-bad"}},
              "spec":{{"nodeName":"{NODE}","containers":[{{"name":"c","resources":{{"requests":{{"cpu":"one"}}}}}}]}}}}]"#
    );
    std::fs::write(&file, &text).unwrap();
    let running = Running::start(file.clone());
    until("the first load", || running.index.is_synced()).await;
    let t = &running.telemetry;
    assert_eq!(t.get(Name::PodIndexWarnings, &[("kind", "pod_skipped")]), 1.0);
    assert_eq!(t.get(Name::PodIndexWarnings, &[("kind", "bad_quantity")]), 1.0);
    assert!(running.has_uid("u-min"));
    let bad = running.index.by_uid("u-bad").unwrap();
    assert_eq!(bad.containers[0].cpu_request_millicores, None);
    assert_eq!(bad.phase.as_str(), "Unknown", "no phase given");
    running.stop().await;

    let (pods, warnings) = parse_pod_list(&text).unwrap();
    assert_eq!((pods.len(), warnings.len()), (2, 2));
    assert_eq!(
        warnings[0].to_string(),
        "item 0: pod skipped: metadata.uid or metadata.name is missing"
    );
}

#[test]
fn load_file_now_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pods.json");
    let index = PodIndex::default();
    let err = load_file_now(&file, None, &index).unwrap_err();
    assert!(matches!(err, PodListError::Read { .. }));
    assert!(err.to_string().contains("pods.json"), "{err}");
    std::fs::write(&file, "{\n\"items\": [}").unwrap();
    let err = load_file_now(&file, None, &index).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("pods.json: not valid JSON at line 2, column 11"),
        "{text}"
    );
    assert!(!index.is_synced(), "a failed load leaves the index as it was");
}
