//! The tailer against real files in a fixture host root: rotation, deletion, truncation, restart
//! from checkpoints, planted links and devices, and bad input. Outcomes are settled by the test
//! (as an output would), so the commit points are the tailer's and the settle table's own.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use kinsight::config::{OversizeEvent, RecordProfile, StreamNames};
use kinsight::host::confined::ConfinedRoot;
use kinsight::logs::Settlements;
use kinsight::logs::checkpoint::Store;
use kinsight::logs::discover::Places;
use kinsight::logs::encode::NodeFacts;
use kinsight::logs::parse::Limits;
use kinsight::logs::tail::{TailSettings, Tailer, size_rules};
use kinsight::ship::{Acknowledge, LogEvent, Outcome};
use serde_json::Value;

mod support;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const POD_DIR: &str = "var/log/pods/shop_web-1_uid-1/web";
const WALL: i64 = 1_796_551_200_000;

fn settings() -> TailSettings {
    TailSettings {
        cluster: "c".into(),
        node: "node-a".into(),
        places: Places {
            pod_logs_dir: "/var/log/pods".into(),
            container_logs_dir: "/var/log/containers".into(),
            host_files: vec!["/var/log/messages".into()],
            collect: Vec::new(),
        },
        profile: RecordProfile::FluentBit,
        stream_names: StreamNames::FluentBit,
        labels: false,
        annotations: false,
        exclude_globs: vec![],
        filters: Vec::new(),
        application_group: None,
        dataplane_globs: vec!["aws-node*".into(), "kube-proxy*".into()],
        multiline: Vec::new(),
        limits: Limits {
            max_record_bytes: 1_048_550,
            flush_timeout: Duration::from_secs(5),
        },
        size: size_rules(1_048_550, OversizeEvent::Truncate),
        own_pod: Some(("amazon-cloudwatch".into(), "kinsight-abcde".into())),
        node_facts: Arc::new(NodeFacts::default()),
        merge_json: true,
        journal: None,
        honour_exclude_annotation: true,
        disk_pressure_free_percent: 15,
        disk_space: kinsight::logs::tail::disk_space,
    }
}

/// A fixture host root and a tailer over it; `now` is the tailer's clock.
struct Node {
    dir: tempfile::TempDir,
    tailer: Tailer,
    settlements: Arc<Settlements>,
    now: Duration,
    /// Every event the tailer handed over, in order.
    got: Vec<LogEvent>,
}

impl Node {
    fn new() -> Node {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(POD_DIR)).unwrap();
        std::fs::create_dir_all(dir.path().join("var/log/containers")).unwrap();
        std::os::unix::fs::symlink(
            "/var/log/pods/shop_web-1_uid-1/web/0.log",
            dir.path().join(format!("var/log/containers/web-1_shop_web-{ID}.log")),
        )
        .unwrap();
        let (tailer, settlements) = Node::tailer_over(dir.path(), settings());
        Node {
            dir,
            tailer,
            settlements,
            now: Duration::ZERO,
            got: Vec::new(),
        }
    }

    fn tailer_over(root: &Path, settings: TailSettings) -> (Tailer, Arc<Settlements>) {
        let state = root.join("var/lib/kinsight");
        std::fs::create_dir_all(&state).unwrap();
        let (store, warning) = Store::open(&state, 1);
        assert!(warning.is_none(), "{warning:?}");
        let settlements = Arc::new(Settlements::default());
        let tailer = Tailer::new(
            settings,
            ConfinedRoot::open(root).unwrap(),
            None,
            settlements.clone(),
            Some(store),
        );
        (tailer, settlements)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn append(&self, rel: &str, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path(rel))
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Scans and reads until nothing is left, settling what was read when `ack`; then commits.
    fn step(&mut self, ack: bool) -> Vec<LogEvent> {
        let mut new = Vec::new();
        self.tailer.discover(self.now);
        loop {
            let (events, any) = self.tailer.read_round(self.now, WALL);
            if ack {
                let tokens: Vec<u64> = events.iter().map(|e| e.token).collect();
                self.settlements.settled(&tokens, Outcome::Accepted);
            }
            new.extend(events);
            if !any {
                break;
            }
        }
        self.tailer.commit(self.now, true);
        self.got.extend(new.iter().cloned());
        new
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
    }
}

fn logs(events: &[LogEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| {
            let v: Value = serde_json::from_str(&e.message.text()).unwrap();
            v["log"].as_str().or(v["message"].as_str()).unwrap().to_string()
        })
        .collect()
}

fn cri(n: usize) -> String {
    format!(
        "2026-12-06T10:00:00.{:09}Z stdout F line {n:06} {}\n",
        n % 1_000_000_000,
        "x".repeat(100)
    )
}

fn checkpoint(dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join("var/lib/kinsight/checkpoints.json")).unwrap()).unwrap()
}

#[test]
fn every_line_arrives_exactly_once_through_rename_rotation_and_gzip() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    let mut written = 0usize;
    let mut since_rotation = 0usize;
    let mut rotations = 0;
    let mut previous: Option<PathBuf> = None;
    for round in 0..60 {
        // A writer at full speed between reads: a few hundred lines per round.
        for _ in 0..(200 + round * 7 % 150) {
            let l = cri(written);
            since_rotation += l.len();
            node.append(&live, &l);
            written += 1;
            if since_rotation >= 200 * 1024 {
                // kubelet: gzip the previous rotated file, rename the live one, reopen.
                if let Some(p) = previous.take() {
                    let data = std::fs::read(&p).unwrap();
                    let gz = std::fs::File::create(
                        p.with_extension(format!("{}.gz", p.extension().unwrap().to_string_lossy())),
                    )
                    .unwrap();
                    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
                    enc.write_all(&data).unwrap();
                    enc.finish().unwrap();
                    std::fs::remove_file(&p).unwrap();
                }
                let rotated = node.path(&format!("{POD_DIR}/0.log.20261206-10{rotations:04}"));
                std::fs::rename(node.path(&live), &rotated).unwrap();
                previous = Some(rotated);
                since_rotation = 0;
                rotations += 1;
            }
        }
        // The tailer runs only every other round: rotations happen while it is not looking.
        if round % 2 == 1 {
            node.step(true);
        }
        node.advance(Duration::from_secs(3));
    }
    for _ in 0..6 {
        node.advance(Duration::from_secs(5));
        node.step(true);
    }
    assert!(rotations >= 10, "{rotations} rotations");
    let got = logs(&node.got);
    let mut seen = BTreeMap::new();
    for l in &got {
        *seen.entry(l.clone()).or_insert(0) += 1;
    }
    let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dup.is_empty(), "duplicates: {:?}", &dup[..dup.len().min(5)]);
    assert_eq!(got.len(), written, "every line exactly once");
    for (i, l) in got.iter().enumerate() {
        assert!(l.starts_with(&format!("line {i:06} ")), "line {i} out of order: {l}");
    }
    let stream = &node.got[0].stream;
    assert!(
        node.got.iter().all(|e| &e.stream == stream),
        "one stream across rotations"
    );
    assert_eq!(node.tailer.files(), 1, "rotated files are finished and closed");
}

#[test]
fn a_deleted_pod_directory_is_drained_through_the_held_descriptor() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    node.append(&live, &cri(0));
    node.step(true);
    for n in 1..500 {
        node.append(&live, &cri(n));
    }
    // kubelet removes the directory of a deleted pod before the tailer read the rest.
    std::fs::remove_dir_all(node.path("var/log/pods/shop_web-1_uid-1")).unwrap();
    node.step(true);
    assert_eq!(logs(&node.got).len(), 500, "nothing lost");
    node.advance(Duration::from_secs(6));
    node.step(true);
    assert_eq!(node.tailer.files(), 0, "closed once drained, settled and quiet");
}

#[test]
fn copytruncate_is_read_again_from_the_start_and_counted() {
    let mut node = Node::new();
    node.append(
        "var/log/messages",
        "Dec  6 10:00:00 h a[1]: one\nDec  6 10:00:01 h a[1]: two\n",
    );
    node.step(true);
    std::fs::write(node.path("var/log/messages"), "Dec  6 10:00:02 h a[1]: three\n").unwrap();
    node.step(true);
    assert_eq!(logs(&node.got), ["one", "two", "three"]);
    assert_eq!(node.tailer.counts.truncations, 1);
}

/// A node whose one container file holds 10 lines, discovered by the tailer; and that file.
fn ten_lines_found() -> (Node, String) {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    for n in 0..10 {
        node.append(&live, &cri(n));
    }
    node.tailer.discover(node.now);
    (node, live)
}

#[test]
fn a_restart_resumes_at_the_committed_offset_and_reads_unsettled_lines_again() {
    let (mut node, live) = ten_lines_found();
    // Read everything, but only the first 4 events were accepted when the agent stopped.
    let (events, _) = node.tailer.read_round(node.now, WALL);
    assert_eq!(events.len(), 10);
    let tokens: Vec<u64> = events[..4].iter().map(|e| e.token).collect();
    node.settlements.settled(&tokens, Outcome::Accepted);
    node.tailer.commit(node.now, true);
    let committed = checkpoint(node.dir.path())["files"][0]["offset"].as_u64().unwrap();
    assert_eq!(committed, 4 * cri(0).len() as u64);

    for n in 10..12 {
        node.append(&live, &cri(n));
    }
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), settings());
    node.tailer = tailer;
    node.settlements = settlements;
    node.got.clear();
    node.step(true);
    let got = logs(&node.got);
    assert_eq!(got.len(), 8, "lines 4..12: the unsettled six again, then the two new");
    assert!(got[0].starts_with("line 000004"), "{}", got[0]);
    assert!(got[7].starts_with("line 000011"), "{}", got[7]);
}

#[test]
fn an_open_partial_line_pins_the_commit_point() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    // stdout starts a partial line, stderr writes a full one, stdout is not finished yet.
    let p = "2026-12-06T10:00:00Z stdout P part-one|\n";
    let e = "2026-12-06T10:00:00.5Z stderr F error line\n";
    node.append(&live, p);
    node.append(&live, e);
    node.step(true);
    assert_eq!(logs(&node.got), ["error line"]);
    let committed = checkpoint(node.dir.path())["files"][0]["offset"].as_u64().unwrap();
    assert_eq!(committed, 0, "the open stdout record started at 0");
    node.append(&live, "2026-12-06T10:00:01Z stdout F part-two\n");
    node.step(true);
    assert_eq!(logs(&node.got), ["error line", "part-one|part-two"]);
    let committed = checkpoint(node.dir.path())["files"][0]["offset"].as_u64().unwrap();
    assert_eq!(committed, std::fs::metadata(node.path(&live)).unwrap().len());
}

#[test]
fn planted_links_devices_and_hardlinks_never_ship_another_file() {
    let mut node = Node::new();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("kubelet-client-current.pem");
    std::fs::write(&secret, "SECRET KEY MATERIAL\n").unwrap();
    // A symlink named like a log file, to a file outside the root.
    std::os::unix::fs::symlink(&secret, node.path(&format!("{POD_DIR}/1.log"))).unwrap();
    // A FIFO: opening it blocking would hang the tailer for ever.
    rustix::fs::mknodat(
        rustix::fs::CWD,
        node.path(&format!("{POD_DIR}/2.log")),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    // A hard link to a file elsewhere on the same filesystem (the root's own tree here).
    std::fs::create_dir_all(node.path("etc")).unwrap();
    std::fs::write(node.path("etc/shadow"), "root:SECRET\n").unwrap();
    std::fs::hard_link(node.path("etc/shadow"), node.path(&format!("{POD_DIR}/3.log"))).unwrap();
    // A /var/log/containers link pointing anywhere but a pod log.
    std::os::unix::fs::symlink("/etc/shadow", node.path("var/log/containers/evil_ns_c-x.log")).unwrap();
    node.append(&format!("{POD_DIR}/0.log"), &cri(0));
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        node.step(true);
        tx.send(()).unwrap();
        node
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("the tailer hung on a planted file");
    let node = handle.join().unwrap();
    let all: String = node.got.iter().map(|e| e.message.text()).collect();
    assert!(!all.contains("SECRET"), "{all}");
    assert_eq!(logs(&node.got).len(), 1);
    assert!(
        node.tailer.counts.open_errors >= 1,
        "the hardlink was refused and counted"
    );
}

#[test]
fn bad_input_is_shipped_visible_and_counted_never_a_panic() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    // Binary garbage, a malformed CRI line, invalid UTF-8 inside a valid line, an empty line.
    let mut bytes: Vec<u8> = (0..=255u8).cycle().take(3000).filter(|b| *b != b'\n').collect();
    bytes.push(b'\n');
    bytes.extend_from_slice(b"not a cri line at all\n");
    bytes.extend_from_slice(b"2026-12-06T10:00:00Z stdout F bad \xff\xfe bytes\n");
    bytes.extend_from_slice(b"\n");
    std::fs::write(node.path(&live), &bytes).unwrap();
    // An empty file of another container.
    std::fs::create_dir_all(node.path("var/log/pods/shop_db-1_uid-2/db")).unwrap();
    std::fs::write(node.path("var/log/pods/shop_db-1_uid-2/db/0.log"), "").unwrap();
    node.step(true);
    let got = logs(&node.got);
    assert_eq!(got.len(), 4, "{got:?}");
    assert!(got[2].contains('\u{fffd}'), "invalid UTF-8 kept visible: {}", got[2]);
    assert!(node.tailer.counts.parse_errors >= 2);
    assert!(node.tailer.counts.utf8_repaired >= 1);
    for e in &node.got {
        assert!(!e.message.is_empty());
        serde_json::from_str::<Value>(&e.message.text()).expect("every message is valid JSON");
    }
}

#[test]
fn a_line_of_5_mib_without_newline_is_cut_and_the_next_line_still_arrives() {
    let mut s = settings();
    s.limits.max_record_bytes = 64 * 1024;
    s.size = size_rules(64 * 1024, OversizeEvent::Truncate);
    let mut node = Node::new();
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), s);
    node.tailer = tailer;
    node.settlements = settlements;
    let live = format!("{POD_DIR}/0.log");
    node.append(&live, "2026-12-06T10:00:00Z stdout F ");
    node.append(&live, &"y".repeat(5 << 20));
    node.step(true);
    node.append(&live, "\n");
    node.append(&live, &cri(1));
    node.step(true);
    let got = logs(&node.got);
    assert_eq!(got.len(), 2, "{:?}", got.iter().map(String::len).collect::<Vec<_>>());
    assert!(
        got[0].len() <= 64 * 1024 && got[0].len() > 60 * 1024,
        "{}",
        got[0].len()
    );
    assert!(got[1].starts_with("line 000001"));
    assert_eq!(node.tailer.counts.long_lines, 1);
    let v: Value = serde_json::from_str(&node.got[0].message.text()).unwrap();
    assert_eq!(v["_truncated"], true);
}

#[test]
fn the_agents_own_pod_is_excluded_and_aws_node_goes_to_dataplane() {
    let mut node = Node::new();
    for (dir, name) in [
        ("var/log/pods/amazon-cloudwatch_kinsight-abcde_u9/kinsight", "kinsight"),
        ("var/log/pods/kube-system_aws-node-xyz_u8/aws-node", "aws-node"),
    ] {
        std::fs::create_dir_all(node.path(dir)).unwrap();
        node.append(
            &format!("{dir}/0.log"),
            &format!("2026-12-06T10:00:00Z stdout F from {name}\n"),
        );
    }
    node.step(true);
    let got = logs(&node.got);
    assert_eq!(got, ["from aws-node"], "own logs are not shipped");
    assert_eq!(&*node.got[0].group, "/aws/containerinsights/c/dataplane");
    assert!(
        node.got[0]
            .stream
            .starts_with("node-a-dataplane.tail.var.log.containers.aws-node-xyz_kube-system_aws-node-"),
        "{}",
        node.got[0].stream
    );
}

/// `kinsight.logs.filters` per container: an exclude filter drops the matching records of the
/// containers its globs match (a multiline record as a whole), the others keep theirs, and the
/// dropped records are counted and committed like shipped ones.
#[test]
fn container_filters_drop_whole_records_of_their_containers_and_commit_them() {
    use kinsight::logs::parse::{MultilineRule, Preset};
    use kinsight::logs::tail::ContainerFilterRule;
    let dir = tempfile::tempdir().unwrap();
    for (pod, c) in [("web-1", "web"), ("api-2", "api")] {
        std::fs::create_dir_all(dir.path().join(format!("var/log/pods/shop_{pod}_u-{pod}/{c}"))).unwrap();
    }
    let mut s = settings();
    s.filters = vec![ContainerFilterRule {
        include: false,
        regex: regex::Regex::new("GET /healthz|NoStock").unwrap(),
        globs: vec!["web-*".into()],
    }];
    s.multiline = vec![(MultilineRule::preset(Preset::Java), vec!["*".into()])];
    let mut node = Node::over(dir, s.clone());
    let lines = [
        "GET /orders 200",
        "GET /healthz 200",
        "java.lang.IllegalStateException: NoStock",
        "\tat shop.Orders.take(Orders.java:42)",
        "GET /cart 200",
    ];
    for (pod, c) in [("web-1", "web"), ("api-2", "api")] {
        let text = lines.iter().fold(String::new(), |mut t, l| {
            t.push_str("2026-12-06T10:00:00Z stdout F ");
            t.push_str(l);
            t.push('\n');
            t
        });
        node.append(&format!("var/log/pods/shop_{pod}_u-{pod}/{c}/0.log"), &text);
    }
    node.step(true);
    node.advance(Duration::from_secs(10));
    node.step(true);
    let of = |pod: &str| -> Vec<String> {
        node.got
            .iter()
            .filter(|e| e.stream.contains(pod))
            .map(|e| logs(std::slice::from_ref(e))[0].clone())
            .collect()
    };
    assert_eq!(of("web-1"), ["GET /orders 200", "GET /cart 200"]);
    assert_eq!(
        of("api-2"),
        [
            "GET /orders 200",
            "GET /healthz 200",
            "java.lang.IllegalStateException: NoStock\n\tat shop.Orders.take(Orders.java:42)",
            "GET /cart 200"
        ]
    );
    assert_eq!(node.tailer.counts.filtered, 2, "the health check and the whole trace");
    // Committed past the dropped records: a new tailer reads nothing again.
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), s);
    node.tailer = tailer;
    node.settlements = settlements;
    node.got.clear();
    node.step(true);
    assert!(node.got.is_empty(), "{:?}", logs(&node.got));
}

/// `application_log_group` places each container's application logs by its pod directory; a
/// name too long for CloudWatch Logs falls back to the Container Insights group, counted, and the
/// dataplane containers keep their group.
#[test]
fn application_groups_follow_the_template_and_fall_back_when_too_long() {
    let dir = tempfile::tempdir().unwrap();
    let long_pod = format!("w{}", "x".repeat(40));
    let pods = [
        ("shop", "web-1".to_owned(), "web"),
        ("shop", long_pod.clone(), "web"),
        ("kube-system", "aws-node-z".to_owned(), "aws-node"),
    ];
    for (ns, pod, c) in &pods {
        std::fs::create_dir_all(dir.path().join(format!("var/log/pods/{ns}_{pod}_u-{pod}/{c}"))).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("var/log/containers")).unwrap();
    let mut s = settings();
    // 490 characters before the pod name: `web-1` fits in 512, the 41-character pod does not.
    let prefix = format!("/{}", "p".repeat(489));
    s.application_group = Some(format!("{prefix}/{{namespace_name}}/{{pod_name}}"));
    let mut node = Node::over(dir, s);
    for (ns, pod, c) in &pods {
        node.append(
            &format!("var/log/pods/{ns}_{pod}_u-{pod}/{c}/0.log"),
            &format!("2026-12-06T10:00:00Z stdout F from {pod}\n"),
        );
    }
    node.step(true);
    let mut got: Vec<(String, String)> = node
        .got
        .iter()
        .map(|e| (logs(std::slice::from_ref(e))[0].clone(), e.group.to_string()))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "from aws-node-z".to_owned(),
                "/aws/containerinsights/c/dataplane".to_owned()
            ),
            ("from web-1".to_owned(), format!("{prefix}/shop/web-1")),
            (
                format!("from {long_pod}"),
                "/aws/containerinsights/c/application".to_owned()
            ),
        ]
    );
    assert_eq!(node.tailer.counts.group_fallbacks, 1);
}

/// Multiline rules are chosen per container by its `/var/log/containers` basename, the first
/// matching rule wins, and a container no rule matches keeps one record per line.
#[test]
fn multiline_rules_apply_per_container_by_basename_first_match_wins() {
    use kinsight::logs::parse::{MultilineRule, Preset};
    let dir = tempfile::tempdir().unwrap();
    let containers = [("orders-7", "orders"), ("ml-3", "worker"), ("web-1", "web")];
    for (pod, c) in containers {
        std::fs::create_dir_all(dir.path().join(format!("var/log/pods/shop_{pod}_u-{pod}/{c}"))).unwrap();
    }
    std::fs::create_dir_all(dir.path().join("var/log/containers")).unwrap();
    for (pod, c) in containers {
        std::os::unix::fs::symlink(
            format!("/var/log/pods/shop_{pod}_u-{pod}/{c}/0.log"),
            dir.path().join(format!("var/log/containers/{pod}_shop_{c}-{ID}.log")),
        )
        .unwrap();
    }
    let mut s = settings();
    // The Java rule comes first: `orders-7` matches both and takes it. `web-*` matches neither.
    s.multiline = vec![
        (MultilineRule::preset(Preset::Java), vec!["orders-*".into()]),
        (
            MultilineRule::start_pattern(r"^\d{4}-").unwrap(),
            vec!["orders-*".into(), "ml-*".into()],
        ),
    ];
    let (tailer, settlements) = Node::tailer_over(dir.path(), s);
    let mut node = Node {
        dir,
        tailer,
        settlements,
        now: Duration::ZERO,
        got: Vec::new(),
    };
    let cri = |lines: &[&str]| -> String {
        use std::fmt::Write as _;
        lines.iter().fold(String::new(), |mut out, l| {
            writeln!(out, "2026-12-06T10:00:00Z stdout F {l}").unwrap();
            out
        })
    };
    let trace = [
        "java.lang.IllegalStateException: no stock",
        "\tat shop.Orders.take(Orders.java:42)",
        "\tat shop.Main.main(Main.java:7)",
    ];
    node.append(
        "var/log/pods/shop_orders-7_u-orders-7/orders/0.log",
        &cri(&[&["order 1 taken"][..], &trace[..], &["order 2 taken"]].concat()),
    );
    let python = [
        "2026-12-06 10:00:00 job failed",
        "  retrying in 5 s",
        "2026-12-06 10:00:05 job ok",
    ];
    node.append("var/log/pods/shop_ml-3_u-ml-3/worker/0.log", &cri(&python));
    node.append(
        "var/log/pods/shop_web-1_u-web-1/web/0.log",
        &cri(&["GET /", "  indented, but no rule applies"]),
    );
    node.step(true);
    // The last record of each joined file stays open until the flush timeout.
    node.advance(Duration::from_secs(6));
    node.step(true);
    let by_stream = |needle: &str| -> Vec<String> {
        let events: Vec<LogEvent> = node.got.iter().filter(|e| e.stream.contains(needle)).cloned().collect();
        logs(&events)
    };
    assert_eq!(
        by_stream("orders-7_shop_orders"),
        ["order 1 taken".to_owned(), trace.join("\n"), "order 2 taken".to_owned()]
    );
    assert_eq!(
        by_stream("ml-3_shop_worker"),
        [python[..2].join("\n"), python[2].to_owned()]
    );
    assert_eq!(
        by_stream("web-1_shop_web"),
        ["GET /", "  indented, but no rule applies"]
    );
}

/// New multiline rules (a reload) reach files already open: the record the old rule holds open
/// is shipped as it is, and the next lines follow the new rule; nothing is lost or pinned.
#[test]
fn new_multiline_rules_apply_to_open_files_at_a_record_boundary() {
    use kinsight::logs::parse::MultilineRule;
    let mut node = Node::new();
    let log = format!("{POD_DIR}/0.log");
    let indented = || vec![(MultilineRule::start_pattern(r"^\S").unwrap(), vec!["web-*".to_owned()])];
    node.tailer.set_multiline(indented());
    node.append(
        &log,
        "2026-12-06T10:00:00Z stdout F a\n2026-12-06T10:00:00Z stdout F  b\n",
    );
    assert!(node.step(true).is_empty(), "the record stays open for its next line");
    // The rule removed: the open record goes out whole, and later lines stand alone.
    node.tailer.set_multiline(Vec::new());
    node.append(&log, "2026-12-06T10:00:01Z stdout F  c\n");
    node.step(true);
    assert_eq!(logs(&node.got), ["a\n b", " c"]);
    // And back: the rule joins again from the next record on.
    node.tailer.set_multiline(indented());
    node.append(
        &log,
        "2026-12-06T10:00:02Z stdout F d\n2026-12-06T10:00:02Z stdout F  e\n2026-12-06T10:00:03Z stdout F f\n",
    );
    node.step(true);
    assert_eq!(logs(&node.got), ["a\n b", " c", "d\n e"]);
    node.advance(Duration::from_secs(6));
    node.step(true);
    assert_eq!(logs(&node.got), ["a\n b", " c", "d\n e", "f"]);
    let committed = checkpoint(node.dir.path())["files"][0]["offset"].as_u64().unwrap();
    assert_eq!(
        committed,
        std::fs::metadata(node.path(&log)).unwrap().len(),
        "committed to the end"
    );
}

fn gzip(path: &Path) {
    let data = std::fs::read(path).unwrap();
    let gz = std::fs::File::create(format!("{}.gz", path.display())).unwrap();
    let mut enc = flate2::write::GzEncoder::new(gz, flate2::Compression::fast());
    enc.write_all(&data).unwrap();
    enc.finish().unwrap();
    std::fs::remove_file(path).unwrap();
}

#[test]
fn a_file_gzipped_while_the_agent_was_down_is_resumed_from_its_twin() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    for n in 0..100 {
        node.append(&live, &cri(n));
    }
    node.tailer.discover(node.now);
    let (events, _) = node.tailer.read_round(node.now, WALL);
    let tokens: Vec<u64> = events[..40].iter().map(|e| e.token).collect();
    node.settlements.settled(&tokens, Outcome::Accepted);
    node.tailer.commit(node.now, true);
    // Down: more lines, kubelet rotates twice and gzips the older rotated file.
    for n in 100..150 {
        node.append(&live, &cri(n));
    }
    let first = node.path(&format!("{POD_DIR}/0.log.20261206-100000"));
    std::fs::rename(node.path(&live), &first).unwrap();
    for n in 150..200 {
        node.append(&live, &cri(n));
    }
    std::fs::rename(node.path(&live), node.path(&format!("{POD_DIR}/0.log.20261206-100100"))).unwrap();
    gzip(&first);
    for n in 200..210 {
        node.append(&live, &cri(n));
    }

    let (tailer, settlements) = Node::tailer_over(node.dir.path(), settings());
    node.tailer = tailer;
    node.settlements = settlements;
    node.got.clear();
    node.step(true);
    let mut got = logs(&node.got);
    got.sort();
    assert_eq!(got.len(), 170, "lines 40..210, each once");
    for (i, l) in got.iter().enumerate() {
        assert!(l.starts_with(&format!("line {:06} ", i + 40)), "{l}");
    }
    assert_eq!(node.tailer.counts.resumed_gzip, 1);
    node.advance(Duration::from_secs(11));
    node.step(true);
    assert_eq!(node.tailer.files(), 1, "the twin and the rotated file are finished");
}

#[test]
fn a_file_removed_while_the_agent_was_down_is_counted_as_lost() {
    let mut node = Node::new();
    let live = format!("{POD_DIR}/0.log");
    node.append(&live, &cri(0));
    node.append(&live, &cri(1));
    node.tailer.discover(node.now);
    let (events, _) = node.tailer.read_round(node.now, WALL);
    node.settlements.settled(&[events[0].token], Outcome::Accepted);
    node.tailer.commit(node.now, true);
    std::fs::remove_dir_all(node.path("var/log/pods/shop_web-1_uid-1")).unwrap();
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), settings());
    node.tailer = tailer;
    node.settlements = settlements;
    node.step(true);
    assert_eq!(node.tailer.counts.lost_at_restart, 1);
}

/// What the property test does to the node, and to the agent.
#[derive(Debug, Clone)]
enum Op {
    /// The container writes this many lines.
    Append(usize),
    /// kubelet rotates: `0.log` renamed, a new one started on the next append.
    Rotate,
    /// The agent reads and CloudWatch Logs accepts everything read.
    Step,
    /// The agent reads, and stops (restarts) before anything is acknowledged.
    CrashAfterRead,
    /// Time passes (rotated files become quiet and are finished).
    Wait,
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (1usize..40).prop_map(Op::Append),
        1 => Just(Op::Rotate),
        3 => Just(Op::Step),
        1 => Just(Op::CrashAfterRead),
        1 => Just(Op::Wait),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Against a model of the files: whatever the writes, rotations, reads and crashes, every line
    /// arrives, in order within the file it was written to; a line arrives twice only when it was
    /// read but not acknowledged before a crash.
    #[test]
    fn the_tailer_loses_nothing_against_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let mut node = Node::new();
        let live = format!("{POD_DIR}/0.log");
        let mut written = 0usize;
        let mut rotations = 0;
        // Lines read but unacknowledged when the agent crashed: they may come twice.
        let mut may_repeat = std::collections::BTreeSet::new();
        for op in ops {
            match op {
                Op::Append(n) => {
                    for _ in 0..n {
                        node.append(&live, &cri(written));
                        written += 1;
                    }
                }
                Op::Rotate => {
                    if node.path(&live).exists() {
                        let to = node.path(&format!("{POD_DIR}/0.log.20261206-1{rotations:05}"));
                        std::fs::rename(node.path(&live), to).unwrap();
                        rotations += 1;
                    }
                }
                Op::Step => {
                    node.step(true);
                }
                Op::CrashAfterRead => {
                    node.tailer.discover(node.now);
                    let (events, _) = node.tailer.read_round(node.now, WALL);
                    for l in logs(&events) {
                        may_repeat.insert(l);
                    }
                    node.got.extend(events);
                    let (tailer, settlements) = Node::tailer_over(node.dir.path(), settings());
                    node.tailer = tailer;
                    node.settlements = settlements;
                }
                Op::Wait => node.advance(Duration::from_secs(11)),
            }
        }
        for _ in 0..3 {
            node.step(true);
            node.advance(Duration::from_secs(11));
        }
        node.step(true);
        let got = logs(&node.got);
        let mut count = BTreeMap::new();
        for l in &got {
            *count.entry(l.clone()).or_insert(0usize) += 1;
        }
        for n in 0..written {
            let line = logs(&[LogEvent {
                group: "g".into(),
                stream: "s".into(),
                timestamp_ms: 0,
                message: serde_json::json!({"log": cri(n).trim_end().splitn(4, ' ').nth(3).unwrap()}).to_string().into(),
                token: 0,
            }])
            .remove(0);
            let c = count.get(&line).copied().unwrap_or(0);
            proptest::prop_assert!(c >= 1, "line {} lost", n);
            proptest::prop_assert!(c == 1 || may_repeat.contains(&line), "line {} arrived {} times", n, c);
        }
    }
}

#[test]
fn fluentbit_exclude_annotations_are_honoured_per_pod_container_and_stream() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pod = |name: &str, uid: &str, annotations: serde_json::Value| {
        serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "uid": uid, "annotations": annotations},
            "spec": {"nodeName": "node-a", "containers": [{"name": "web"}, {"name": "side"}]},
            "status": {"phase": "Running"}
        })
    };
    let list = serde_json::json!({"kind": "PodList", "items": [
        pod("quiet", "u1", serde_json::json!({"fluentbit.io/exclude": "true"})),
        pod("noisy", "u2", serde_json::json!({"fluentbit.io/exclude_stderr-web": "true"})),
    ]});
    let file = root.join("pods.json");
    std::fs::write(&file, list.to_string()).unwrap();
    let index = kinsight::kube::PodIndex::new(None);
    kinsight::kube::load_file_scoped(
        &file,
        &kinsight::kube::NodeScope::NodeOfClusterDump("node-a".into()),
        &index,
    )
    .unwrap();
    for (pod, uid, c) in [("quiet", "u1", "web"), ("noisy", "u2", "web"), ("noisy", "u2", "side")] {
        let d = root.join(format!("var/log/pods/shop_{pod}_{uid}/{c}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("0.log"),
            format!("2026-12-06T10:00:00Z stdout F {pod}/{c} out\n2026-12-06T10:00:00Z stderr F {pod}/{c} err\n"),
        )
        .unwrap();
    }
    let state = root.join("var/lib/kinsight");
    std::fs::create_dir_all(&state).unwrap();
    let settlements = Arc::new(Settlements::default());
    let mut tailer = Tailer::new(
        settings(),
        ConfinedRoot::open(root).unwrap(),
        Some(index),
        settlements,
        Some(Store::open(&state, 1).0),
    );
    tailer.discover(Duration::ZERO);
    let (events, _) = tailer.read_round(Duration::ZERO, WALL);
    let mut got = logs(&events);
    got.sort();
    assert_eq!(got, ["noisy/side err", "noisy/side out", "noisy/web out"]);
    assert_eq!(
        tailer.counts.excluded, 3,
        "every excluded line is counted: both of the excluded pod, stderr of noisy/web"
    );
}

/// A `collect_list` entry in its configuration form, with the test's overrides.
fn collect_entry(path: &str, f: impl FnOnce(&mut kinsight::config::CollectFile)) -> kinsight::config::CollectFile {
    let mut e = kinsight::config::CollectFile {
        log_group_name: Some("/app/{instance_id}".into()),
        log_stream_name: "{hostname}".into(),
        ..kinsight::config::CollectFile::new(path)
    };
    f(&mut e);
    e
}

impl Node {
    /// A node over `dir` (already populated) with `settings`.
    fn over(dir: tempfile::TempDir, settings: TailSettings) -> Node {
        let (tailer, settlements) = Node::tailer_over(dir.path(), settings);
        Node {
            dir,
            tailer,
            settlements,
            now: Duration::ZERO,
            got: Vec::new(),
        }
    }
}

fn with_collect(entries: &[kinsight::config::CollectFile]) -> TailSettings {
    let values = kinsight::logs::collect::Placeholders {
        instance_id: "i-0abc".into(),
        hostname: "node-a".into(),
        ip_address: "10.0.0.1".into(),
    };
    let mut s = settings();
    s.places.collect = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            Arc::new(
                kinsight::logs::collect::CollectRule::compile(i, e, &values, Path::new("/var/lib/kinsight")).unwrap(),
            )
        })
        .collect();
    s
}

fn set_mtime(path: &Path, secs_ago: u64) {
    let t = std::time::SystemTime::now() - Duration::from_secs(secs_ago);
    std::fs::File::options()
        .append(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

#[test]
fn collect_list_files_ship_their_lines_joined_timestamped_and_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("var/log/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("old.log"), "2026-12-01 00:00:00 stale\n").unwrap();
    set_mtime(&app.join("old.log"), 3600);
    let entry = collect_entry("/var/log/app/*.log", |e| {
        e.timestamp_format = Some("%Y-%m-%d %H:%M:%S".into());
        e.filters = vec![kinsight::config::LogFilter {
            include: false,
            expression: "healthz".into(),
        }];
    });
    let mut node = Node::over(dir, with_collect(&[entry]));
    node.append(
        "var/log/app/server.log",
        "2026-12-06 10:00:00 ERROR boom\n\tat a.b(C.java:1)\n\tat c.d(E.java:2)\n2026-12-06 10:00:01 GET /healthz\nno time here\n",
    );
    node.step(true);
    // The last record may go on: it waits for its next line or the flush timeout.
    node.advance(Duration::from_secs(6));
    node.step(true);
    let texts: Vec<String> = node.got.iter().map(|e| e.message.text()).collect();
    let got: Vec<(&str, &str, i64, &str)> = node
        .got
        .iter()
        .zip(&texts)
        .map(|(e, t)| (&*e.group, &*e.stream, e.timestamp_ms, t.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "/app/i-0abc",
                "node-a",
                1_796_551_200_000,
                "2026-12-06 10:00:00 ERROR boom\n\tat a.b(C.java:1)\n\tat c.d(E.java:2)"
            ),
            ("/app/i-0abc", "node-a", WALL, "no time here"),
        ],
        "only the newest match, old.log, is not read; the healthz line is filtered"
    );
    assert_eq!(node.tailer.counts.filtered, 1);

    // logrotate: rename, then a new file. The renamed one is drained and closed; the new one
    // is the newest match and starts at 0.
    node.append("var/log/app/server.log", "before rotation\n");
    std::fs::rename(
        node.path("var/log/app/server.log"),
        node.path("var/log/app/server.log.1"),
    )
    .unwrap();
    node.append("var/log/app/server.log", "after rotation\n");
    for _ in 0..4 {
        node.advance(Duration::from_secs(6));
        node.step(true);
    }
    let last: Vec<String> = node.got[2..].iter().map(|e| e.message.text()).collect();
    assert_eq!(last, ["before rotation", "after rotation"]);
    assert_eq!(node.tailer.files(), 1, "the rotated file was closed");
}

#[test]
fn a_collect_file_rotated_while_the_agent_was_down_is_finished_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("var/log/app");
    std::fs::create_dir_all(&app).unwrap();
    let entry = collect_entry("/var/log/app/app.log*", |e| {
        e.multi_line_start = kinsight::config::MultiLineStart::Pattern("^".into());
    });
    let mut node = Node::over(dir, with_collect(std::slice::from_ref(&entry)));
    node.append("var/log/app/app.log", "one\ntwo\n");
    node.step(true);
    node.advance(Duration::from_secs(6));
    node.step(true);
    assert_eq!(node.got.len(), 2);
    // Down: more lines, then rotation, then a newer file.
    node.append("var/log/app/app.log", "three\n");
    std::fs::rename(node.path("var/log/app/app.log"), node.path("var/log/app/app.log.1")).unwrap();
    set_mtime(&node.path("var/log/app/app.log.1"), 60);
    node.append("var/log/app/app.log", "four\n");
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), with_collect(&[entry]));
    node.tailer = tailer;
    node.settlements = settlements;
    node.got.clear();
    for _ in 0..3 {
        node.step(true);
        node.advance(Duration::from_secs(6));
    }
    let mut got: Vec<String> = node.got.iter().map(|e| e.message.text()).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        ["four", "three"],
        "the rest of the rotated file, and the new one; nothing twice"
    );
}

#[test]
fn a_collect_list_hardlink_or_symlink_never_ships_another_file() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("var/log/app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::create_dir_all(dir.path().join("etc")).unwrap();
    std::fs::write(dir.path().join("etc/secret"), "secret\n").unwrap();
    std::fs::hard_link(dir.path().join("etc/secret"), app.join("hard.log")).unwrap();
    std::os::unix::fs::symlink("/etc/secret", app.join("soft.log")).unwrap();
    let entry = collect_entry("/var/log/app/*.log", |e| e.publish_multi_logs = true);
    let mut node = Node::over(dir, with_collect(&[entry]));
    node.append("var/log/app/real.log", "real\n");
    node.step(true);
    node.advance(Duration::from_secs(6));
    node.step(true);
    let got: Vec<String> = node.got.iter().map(|e| e.message.text()).collect();
    assert_eq!(got, ["real"]);
    assert!(
        node.tailer.counts.open_errors >= 1,
        "the hardlink is refused and counted"
    );
    assert_eq!(&*node.got[0].stream, "node-a__var_log_app_real.log");
}

/// The free space the fake `disk_space` reports, in percent of a 100-byte filesystem.
static FREE_PERCENT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(50);

#[expect(clippy::unnecessary_wraps, reason = "the signature of TailSettings::disk_space")]
fn fake_space(_: &std::fs::File) -> Option<kinsight::host::fs::FsStats> {
    Some(kinsight::host::fs::FsStats {
        capacity_bytes: 100,
        available_bytes: FREE_PERCENT.load(std::sync::atomic::Ordering::SeqCst),
        ..Default::default()
    })
}

#[test]
fn under_disk_pressure_a_held_deleted_file_is_given_up_and_counted_and_only_then() {
    let mut node = Node::new();
    let mut s = settings();
    s.disk_space = fake_space;
    let (tailer, settlements) = Node::tailer_over(node.dir.path(), s);
    node.tailer = tailer;
    node.settlements = settlements;
    let live = format!("{POD_DIR}/0.log");
    for n in 0..100 {
        node.append(&live, &cri(n));
    }
    // Read and handed over, but CloudWatch Logs is down: nothing is acknowledged.
    node.step(false);
    std::fs::remove_dir_all(node.path("var/log/pods/shop_web-1_uid-1")).unwrap();
    node.advance(Duration::from_mins(1));
    node.step(false);
    assert_eq!(
        node.tailer.files(),
        1,
        "the deleted file is held while its lines are not shipped"
    );
    node.tailer.relieve_disk_pressure();
    assert_eq!(node.tailer.files(), 1, "50 % free: no pressure, nothing is given up");
    FREE_PERCENT.store(5, std::sync::atomic::Ordering::SeqCst);
    node.tailer.relieve_disk_pressure();
    FREE_PERCENT.store(50, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(node.tailer.files(), 0, "5 % free: the held file is closed");
    assert_eq!(node.tailer.counts.abandoned, 1);
    node.tailer.commit(node.now, true);
    let files = checkpoint(node.dir.path())["files"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(files.is_empty(), "its checkpoint entry is gone: {files:?}");
}

#[test]
fn a_deleted_pods_last_file_is_still_enriched_within_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let list = serde_json::json!({"kind": "PodList", "items": [{
        "metadata": {"name": "gone", "namespace": "shop", "uid": "u9"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "shop/web:1.2"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "web", "image": "shop/web:1.2",
            "imageID": "docker.io/shop/web@sha256:abc", "restartCount": 0, "ready": true,
            "containerID": format!("containerd://{ID}")}]}
    }]});
    let file = root.join("pods.json");
    std::fs::write(&file, list.to_string()).unwrap();
    let index = kinsight::kube::PodIndex::new(None);
    let scope = kinsight::kube::NodeScope::NodeOfClusterDump("node-a".into());
    kinsight::kube::load_file_scoped(&file, &scope, &index).unwrap();
    // The pod is deleted (the next pod list lacks it) before its log file was ever opened.
    std::fs::write(&file, serde_json::json!({"kind": "PodList", "items": []}).to_string()).unwrap();
    kinsight::kube::load_file_scoped(&file, &scope, &index).unwrap();
    assert!(index.by_uid("u9").is_none());
    let d = root.join("var/log/pods/shop_gone_u9/web");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("0.log"), "2026-12-06T10:00:00Z stdout F last words\n").unwrap();
    let state = root.join("var/lib/kinsight");
    std::fs::create_dir_all(&state).unwrap();
    let mut tailer = Tailer::new(
        settings(),
        ConfinedRoot::open(root).unwrap(),
        Some(index),
        Arc::new(Settlements::default()),
        Some(Store::open(&state, 1).0),
    );
    tailer.discover(Duration::ZERO);
    let (events, _) = tailer.read_round(Duration::ZERO, WALL);
    let record: Value = serde_json::from_str(&events[0].message.text()).unwrap();
    assert_eq!(record["log"], "last words");
    assert_eq!(record["kubernetes"]["container_image"], "shop/web:1.2", "{record}");
    assert_eq!(record["kubernetes"]["docker_id"], ID);
}

#[test]
fn labels_and_annotations_are_added_when_asked_for_without_last_applied_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let list = serde_json::json!({"kind": "PodList", "items": [{
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "u1",
            "labels": {"app": "web"},
            "annotations": {"team": "payments",
                "kubectl.kubernetes.io/last-applied-configuration": "{\"huge\":true}"}},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web"}]},
        "status": {"phase": "Running"}
    }]});
    std::fs::write(root.join("pods.json"), list.to_string()).unwrap();
    let index = kinsight::kube::PodIndex::new(None);
    let scope = kinsight::kube::NodeScope::NodeOfClusterDump("node-a".into());
    kinsight::kube::load_file_scoped(&root.join("pods.json"), &scope, &index).unwrap();
    let d = root.join("var/log/pods/shop_web-1_u1/web");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("0.log"), "2026-12-06T10:00:00Z stdout F hi\n").unwrap();
    let state = root.join("var/lib/kinsight");
    std::fs::create_dir_all(&state).unwrap();
    let read = |labels: bool, annotations: bool| -> Value {
        let mut s = settings();
        s.labels = labels;
        s.annotations = annotations;
        let mut tailer = Tailer::new(
            s,
            ConfinedRoot::open(root).unwrap(),
            Some(index.clone()),
            Arc::new(Settlements::default()),
            None,
        );
        tailer.discover(Duration::ZERO);
        let (events, _) = tailer.read_round(Duration::ZERO, WALL);
        serde_json::from_str(&events[0].message.text()).unwrap()
    };
    let off = read(false, false);
    assert!(off["kubernetes"].get("labels").is_none() && off["kubernetes"].get("annotations").is_none());
    let on = read(true, true);
    assert_eq!(on["kubernetes"]["labels"], serde_json::json!({"app": "web"}));
    assert_eq!(
        on["kubernetes"]["annotations"],
        serde_json::json!({"team": "payments"}),
        "{on}"
    );
}

/// The pod of a file being read is deleted in the apiserver mid-file: it leaves the index (no
/// more metrics), and the lines still to read keep its `kubernetes` metadata.
#[test]
fn a_pod_deleted_in_the_apiserver_while_its_log_is_read_keeps_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let api = support::KubeApi::start();
    api.apply(serde_json::json!({"kind": "Pod", "apiVersion": "v1",
        "metadata": {"name": "web-1", "namespace": "shop", "uid": "uid-1"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "web", "image": "shop/web:1.2"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "web", "image": "shop/web:1.2",
            "imageID": "", "restartCount": 0, "ready": true, "containerID": format!("containerd://{ID}")}]}}));
    let kubeconfig = api.kubeconfig(root);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let index = kinsight::kube::PodIndex::new(Some("node-a".into()));
    let cancel = tokio_util::sync::CancellationToken::new();
    let source = rt.block_on(async {
        kinsight::kube::ApiSource {
            client: kinsight::kube::connect_apiserver(Some(&kubeconfig), false)
                .await
                .unwrap(),
            node: "node-a".into(),
            index: index.clone(),
            telemetry: kinsight::telemetry::Telemetry::new(),
            tag_service: false,
        }
    });
    rt.spawn(source.run(cancel.clone()));
    let until = |what: &str, cond: &dyn Fn() -> bool| {
        assert!(
            support::wait_until(Duration::from_secs(10), Duration::from_millis(20), cond),
            "waited for {what}"
        );
    };
    until("the pod", &|| index.by_uid("uid-1").is_some());

    let d = root.join(POD_DIR);
    std::fs::create_dir_all(&d).unwrap();
    let log = d.join("0.log");
    std::fs::write(&log, "2026-12-06T10:00:00Z stdout F first\n").unwrap();
    let mut tailer = Tailer::new(
        settings(),
        ConfinedRoot::open(root).unwrap(),
        Some(index.clone()),
        Arc::new(Settlements::default()),
        None,
    );
    tailer.discover(Duration::ZERO);
    let (first, _) = tailer.read_round(Duration::ZERO, WALL);
    let record: Value = serde_json::from_str(&first[0].message.text()).unwrap();
    assert_eq!(record["kubernetes"]["container_image"], "shop/web:1.2", "{record}");

    assert!(api.delete("Pod", "shop", "web-1"));
    until("the delete", &|| index.by_uid("uid-1").is_none());
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"2026-12-06T10:00:01Z stdout F last words\n")
        .unwrap();
    let (last, _) = tailer.read_round(Duration::from_secs(1), WALL);
    let record: Value = serde_json::from_str(&last[0].message.text()).unwrap();
    assert_eq!(record["log"], "last words");
    assert_eq!(record["kubernetes"]["pod_name"], "web-1", "{record}");
    assert_eq!(record["kubernetes"]["container_image"], "shop/web:1.2", "{record}");
    cancel.cancel();
}

#[test]
fn a_round_fills_the_vector_the_output_handed_back() {
    let (mut node, live) = ten_lines_found();
    let (events, _) = node.tailer.read_round(node.now, WALL);
    assert_eq!(events.len(), 10);
    let mut emptied = events;
    emptied.clear();
    emptied.reserve(64);
    let (ptr, cap) = (emptied.as_ptr(), emptied.capacity());
    node.tailer.recycle(emptied);
    node.append(&live, &cri(10));
    let (events, _) = node.tailer.read_round(node.now, WALL);
    assert_eq!(logs(&events).len(), 1);
    assert_eq!((events.as_ptr(), events.capacity()), (ptr, cap), "the same allocation");
    // A vector grown by a round of many small events is given back down to a bound.
    node.tailer.recycle(Vec::with_capacity(1 << 20));
    let (events, _) = node.tailer.read_round(node.now, WALL);
    assert!(events.capacity() < 1 << 20, "capacity {}", events.capacity());
}
