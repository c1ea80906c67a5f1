//! The systemd journal through the tailer: the dataplane units to their group and streams, the
//! journal's end as the start, the cursor committed on acknowledgement and resumed after a
//! restart. Journal files are real, written by `systemd-journal-remote` from export format.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use kinsight::config::{OversizeEvent, RecordProfile, StreamNames};
use kinsight::host::confined::ConfinedRoot;
use kinsight::logs::Settlements;
use kinsight::logs::checkpoint::Store;
use kinsight::logs::discover::Places;
use kinsight::logs::encode::NodeFacts;
use kinsight::logs::parse::Limits;
use kinsight::logs::tail::{JournalSettings, TailSettings, Tailer, size_rules};
use kinsight::ship::{Acknowledge, LogEvent, Outcome};
use serde_json::Value;

const REMOTE: &str = "/lib/systemd/systemd-journal-remote";
const T0_US: u64 = 1_796_551_200_000_000;

fn remote() -> bool {
    if Path::new(REMOTE).exists() {
        return true;
    }
    assert!(
        !support::in_ci(),
        "{REMOTE} is missing under CI=true: scripts/test-env.sh installs it"
    );
    support::skip(&format!("{REMOTE} is missing (apt-get install systemd-journal-remote)"));
    false
}

fn entry(seq: u64, unit: &str, message: &str) -> String {
    format!(
        "__REALTIME_TIMESTAMP={}\n__MONOTONIC_TIMESTAMP={}\n_BOOT_ID=0123456789abcdef0123456789abcdef\n\
         _HOSTNAME=ip-10-0-1-23\n_SYSTEMD_UNIT={unit}\nPRIORITY=6\nSYSLOG_FACILITY=3\nSYSLOG_IDENTIFIER=x\nMESSAGE={message}\n\n",
        T0_US + seq * 1000,
        1000 + seq
    )
}

fn append(root: &Path, entries: &[String]) {
    let dir = root.join("var/log/journal/0123456789abcdef0123456789abcdef");
    std::fs::create_dir_all(&dir).unwrap();
    let export = root.join("x.export");
    std::fs::write(&export, entries.concat()).unwrap();
    let out = Command::new(REMOTE)
        .arg("-o")
        .arg(dir.join("system.journal"))
        .arg(&export)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn tailer(root: &Path) -> (Tailer, Arc<Settlements>) {
    let settings = TailSettings {
        cluster: "c".into(),
        node: "node-a".into(),
        places: Places {
            pod_logs_dir: "/var/log/pods".into(),
            container_logs_dir: "/var/log/containers".into(),
            host_files: vec![],
            collect: Vec::new(),
        },
        profile: RecordProfile::FluentBit,
        stream_names: StreamNames::FluentBit,
        labels: false,
        annotations: false,
        exclude_globs: vec![],
        filters: Vec::new(),
        application_group: None,
        dataplane_globs: vec![],
        multiline: Vec::new(),
        limits: Limits::default(),
        size: size_rules(1_048_550, OversizeEvent::Truncate),
        own_pod: None,
        node_facts: Arc::new(NodeFacts {
            az: Some("eu-west-1a".into()),
            instance_id: Some("i-0123".into()),
        }),
        merge_json: true,
        journal: Some(JournalSettings {
            dirs: vec![root.join("var/log/journal"), root.join("run/log/journal")],
            units: vec!["kubelet.service".into(), "containerd.service".into()],
            host: false,
        }),
        honour_exclude_annotation: false,
        disk_pressure_free_percent: 15,
        disk_space: kinsight::logs::tail::disk_space,
    };
    let state = root.join("var/lib/kinsight");
    std::fs::create_dir_all(&state).unwrap();
    let (store, _) = Store::open(&state, 1);
    let settlements = Arc::new(Settlements::default());
    let t = Tailer::new(
        settings,
        ConfinedRoot::open(root).unwrap(),
        None,
        settlements.clone(),
        Some(store),
    );
    (t, settlements)
}

fn round(t: &mut Tailer, s: &Settlements, ack: bool) -> Vec<LogEvent> {
    let (events, _) = t.read_round(Duration::from_secs(1), 0);
    if ack {
        let tokens: Vec<u64> = events.iter().map(|e| e.token).collect();
        s.settled(&tokens, Outcome::Accepted);
    }
    t.commit(Duration::from_secs(1), true);
    events
}

fn cursor(root: &Path) -> Value {
    let v: Value =
        serde_json::from_slice(&std::fs::read(root.join("var/lib/kinsight/checkpoints.json")).unwrap()).unwrap();
    v["journal"].clone()
}

#[test]
fn dataplane_units_ship_from_the_journal_and_resume_after_a_restart() {
    if !remote() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root: PathBuf = dir.path().to_path_buf();
    append(&root, &[entry(1, "kubelet.service", "old, before the agent")]);
    let (mut t, s) = tailer(&root);
    assert!(round(&mut t, &s, true).is_empty(), "the journal is read from its end");

    append(
        &root,
        &[
            entry(2, "kubelet.service", "node ready"),
            entry(3, "sshd.service", "not a dataplane unit"),
            entry(4, "containerd.service", "started"),
        ],
    );
    let events = round(&mut t, &s, true);
    let got: Vec<(String, String, Value)> = events
        .iter()
        .map(|e| {
            (
                e.group.to_string(),
                e.stream.to_string(),
                serde_json::from_str(&e.message.text()).unwrap(),
            )
        })
        .collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[0].0, "/aws/containerinsights/c/dataplane");
    assert_eq!(got[0].1, "node-a-dataplane.systemd.kubelet.service");
    assert_eq!(
        got[0].2,
        serde_json::json!({"hostname":"ip-10-0-1-23","systemd_unit":"kubelet.service","message":"node ready",
                           "az":"eu-west-1a","ec2_instance_id":"i-0123"})
    );
    assert_eq!(events[0].timestamp_ms, i64::try_from((T0_US + 2000) / 1000).unwrap());
    assert_eq!(got[1].1, "node-a-dataplane.systemd.containerd.service");
    assert!(cursor(&root)["cursor"].is_string(), "{}", cursor(&root));

    // One more entry is read but not acknowledged when the agent stops: the restart reads it
    // again, and nothing before it.
    append(&root, &[entry(5, "kubelet.service", "unacknowledged")]);
    assert_eq!(round(&mut t, &s, false).len(), 1);
    drop(t);
    let (mut t, s) = tailer(&root);
    append(&root, &[entry(6, "kubelet.service", "after the restart")]);
    let again: Vec<String> = round(&mut t, &s, true)
        .iter()
        .map(|e| {
            serde_json::from_str::<Value>(&e.message.text()).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(again, ["unacknowledged", "after the restart"]);
}
