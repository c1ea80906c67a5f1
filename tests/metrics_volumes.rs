//! The enhanced EBS volume I/O metrics end to end on one node: a fake EBS CSI node plugin (plain
//! HTTP on 127.0.0.1, serving the driver's exposition with counters that grow per request), its
//! pod in the pod index, the volume source scraping it in the background and the collector
//! turning two scrapes into `node_diskio_ebs_*` datums and EMF directives with exactly the
//! declared dimension sets. Standard mode neither scrapes nor sends; a plugin that refuses is
//! counted and the agent goes on.

#[path = "support/settings.rs"]
mod config;
#[path = "support/pairs.rs"]
mod pairs;
#[path = "../benches/support/synthetic.rs"]
mod synthetic;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use kinsight::host::{CgroupMode, Root, SystemClock, procfs};
use kinsight::kube::{self, PodIndex};
use kinsight::metrics::Collector;
use kinsight::metrics::collect::Settings;
use kinsight::metrics::declare;
use kinsight::metrics::record::RecordType;
use kinsight::metrics::sample::Sampler;
use kinsight::metrics::volumes::{VolumeSource, volume_channel};
use kinsight::telemetry::{Name, Telemetry};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// A plugin answering every request; its read-ops counter grows by 50 per request.
fn plugin() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&served);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let n = count.fetch_add(1, Ordering::SeqCst);
            let body = format!(
                "# TYPE aws_ebs_csi_read_ops_total counter\n\
                 aws_ebs_csi_read_ops_total{{instance_id=\"i-0123456789abcdef0\",volume_id=\"vol-0a\"}} {}\n\
                 # TYPE aws_ebs_csi_write_bytes_total counter\n\
                 aws_ebs_csi_write_bytes_total{{instance_id=\"i-0123456789abcdef0\",volume_id=\"vol-0a\"}} 4096\n\
                 # TYPE aws_ebs_csi_volume_queue_length gauge\n\
                 aws_ebs_csi_volume_queue_length{{instance_id=\"i-0123456789abcdef0\",volume_id=\"vol-0a\"}} 2\n",
                100 + 50 * n
            );
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, served)
}

fn settings(enhanced: bool, destination: &str) -> Settings {
    let json = format!(
        r#"{{"logs":{{"metrics_collected":{{"kubernetes":{{"cluster_name":"c","metrics_collection_interval":1,"enhanced_container_insights":{enhanced}}}}}}},
            "kinsight":{{"metrics":{{"destination":"{destination}"}}}}}}"#
    );
    let cfg = config::load(&json);
    config::settings(&cfg, "m5.large")
}

/// This node's pods: the synthetic ones and the EBS CSI node plugin at 127.0.0.1:`port`.
fn index(root: &std::path::Path, port: u16) -> PodIndex {
    let list_path = root.join("proc/podlist.json");
    let mut list: Value = serde_json::from_str(&std::fs::read_to_string(&list_path).unwrap()).unwrap();
    list["items"].as_array_mut().unwrap().push(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "ebs-csi-node-x7k2p", "namespace": "kube-system", "uid": "e85c0000-0000-4000-8000-000000000001",
                     "labels": {"app": "ebs-csi-node"}},
        "spec": {"containers": [{"name": "ebs-plugin", "ports": [{"name": "healthz", "containerPort": 9808},
                                                                  {"name": "metrics", "containerPort": port}]}]},
        "status": {"phase": "Running", "podIP": "127.0.0.1"}
    }));
    std::fs::write(&list_path, list.to_string()).unwrap();
    let index = PodIndex::new(None);
    kube::load_file_now(&list_path, None, &index).unwrap();
    index
}

use pairs::Pair;

/// The (metric, dimension set) pairs of the `NodeEBS` metrics a destination sends: the
/// directive of the performance events with `emf`, the datums otherwise.
fn sent_pairs(cycle: &kinsight::metrics::Cycle, destination: &str) -> BTreeSet<Pair> {
    if destination == "emf" {
        pairs::directive_pairs_of(cycle, |t| t == "NodeEBS")
    } else {
        cycle
            .datums
            .iter()
            .filter(|d| d.metric_name.starts_with("node_diskio_ebs_"))
            .map(|d| {
                (
                    d.metric_name.to_string(),
                    d.dimensions.iter().map(|(k, _)| (*k).to_string()).collect(),
                )
            })
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ebs_volume_io_from_this_nodes_plugin_in_every_destination() {
    let (port, served) = plugin();
    for destination in ["put_metric_data", "emf", "both"] {
        let dir = tempfile::tempdir().unwrap();
        let mut node = synthetic::Node::create(dir.path(), 2, 1);
        let index = index(dir.path(), port);
        let root = Root::new(dir.path());
        let mode = CgroupMode::detect(&root).unwrap();
        let capacity = procfs::read_capacity(&root).unwrap();
        let telemetry = Telemetry::new();
        let (tx, view) = volume_channel();
        let (_settings_tx, settings_rx) = watch::channel(settings(true, destination));
        let mut collector = Collector::new(
            Sampler::new(root, mode, telemetry.clone()),
            capacity,
            settings(true, destination),
            Some(index.clone()),
        )
        .with_volumes(view.clone());
        let cancel = CancellationToken::new();
        let source = VolumeSource {
            index,
            tx,
            telemetry: telemetry.clone(),
            settings: settings_rx,
        };
        let task = tokio::spawn(source.run(cancel.clone()));

        let wait_for = |seq: u64| {
            let mut v = view.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(10), v.wait_for(|s| s.seq >= seq))
                    .await
                    .expect("a scrape")
                    .unwrap();
            }
        };
        wait_for(1).await;
        let first = collector.collect(&SystemClock);
        // The first scrape: the gauge only (no counter has an increase yet).
        let ebs = |c: &kinsight::metrics::Cycle| -> Vec<(String, f64)> {
            c.records
                .iter()
                .filter(|r| r.kind == RecordType::NodeEBS)
                .flat_map(|r| r.fields.iter().map(|(k, v)| ((*k).to_string(), *v)))
                .collect()
        };
        assert_eq!(ebs(&first), [("node_diskio_ebs_volume_queue_length".to_string(), 2.0)]);
        node.advance();
        // A scrape newer than any the first cycle can have seen.
        let seen = view.borrow().seq;
        wait_for(seen + 1).await;
        let second = collector.collect(&SystemClock);
        let mut fields = ebs(&second);
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        // The read-ops counter grew by 50 per scrape; the cycles are usually one scrape apart,
        // two on a slow machine (a scrape may land between the first cycle and reading `seen`).
        let read_ops = fields[0].1;
        assert!(read_ops >= 50.0 && read_ops % 50.0 == 0.0, "{destination}: {read_ops}");
        assert_eq!(
            fields,
            [
                ("node_diskio_ebs_total_read_ops".to_string(), read_ops),
                ("node_diskio_ebs_total_write_bytes".to_string(), 0.0),
                ("node_diskio_ebs_volume_queue_length".to_string(), 2.0),
            ],
            "{destination}"
        );
        let r = second.records.iter().find(|r| r.kind == RecordType::NodeEBS).unwrap();
        assert_eq!(r.attribute("VolumeId"), Some("vol-0a"));
        assert_eq!(r.attribute("NodeName"), Some("node"));

        // The declared sets, exactly, in what this destination sends.
        let declared: BTreeSet<Pair> = declare::table(true)
            .iter()
            .filter(|d| d.record == RecordType::NodeEBS)
            .filter(|d| fields.iter().any(|(f, _)| f == d.metric))
            .flat_map(|d| {
                d.sets
                    .iter()
                    .map(|s| (d.metric.to_string(), s.iter().map(|x| (*x).to_string()).collect()))
            })
            .collect();
        let sent = sent_pairs(&second, destination);
        assert_eq!(declared.len(), 9, "three metrics, three sets each");
        assert_eq!(sent, declared, "{destination}");
        assert!(telemetry.get(Name::VolumeScrapes, &[("exporter", "ebs"), ("result", "ok")]) >= 2.0);
        cancel.cancel();
        task.await.unwrap();
    }
    assert!(served.load(Ordering::SeqCst) >= 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::float_cmp, reason = "counts, exact in f64")]
async fn standard_mode_does_not_scrape_and_a_refusing_plugin_is_counted() {
    // A port nothing listens on: the plugin runs without node metrics.
    let refused = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let _node = synthetic::Node::create(dir.path(), 1, 1);
    let index = index(dir.path(), refused);
    let telemetry = Telemetry::new();
    let (tx, view) = volume_channel();
    let (settings_tx, settings_rx) = watch::channel(settings(false, "emf"));
    let cancel = CancellationToken::new();
    let task = tokio::spawn(
        VolumeSource {
            index,
            tx,
            telemetry: telemetry.clone(),
            settings: settings_rx,
        }
        .run(cancel.clone()),
    );
    // Standard mode: no scrape at all, however long.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(view.borrow().seq, 0);
    assert_eq!(
        telemetry.get(Name::VolumeScrapes, &[("exporter", "ebs"), ("result", "error")]),
        0.0
    );
    // A reload turns enhanced on: the refusal is counted, the scrape is empty, nothing stops.
    settings_tx.send_replace(settings(true, "emf"));
    let mut v = view.clone();
    tokio::time::timeout(Duration::from_secs(10), v.wait_for(|s| s.seq >= 1))
        .await
        .unwrap()
        .unwrap();
    assert!(view.borrow().samples.is_empty());
    assert_eq!(
        telemetry.get(Name::VolumeScrapes, &[("exporter", "ebs"), ("result", "error")]),
        1.0
    );
    cancel.cancel();
    task.await.unwrap();
}
