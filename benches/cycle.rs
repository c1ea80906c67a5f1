//! One metric collection cycle (sample + compute + encode) on a synthetic cgroup v2 node with
//! 110, 250 and 737 pods of 3 containers each (issue #3's performance targets: at most 20 ms of
//! CPU for 737 pods). The tree lives on tmpfs (`/dev/shm`) so the figure is the agent's cost,
//! not the disk's; a real node's `/sys/fs/cgroup` and `/proc` are in-memory filesystems too.
//!
//! The figure is the CPU time of the benchmarking thread (`CLOCK_THREAD_CPUTIME_ID`), user and
//! system: the target is CPU, and a cycle runs on one thread. Criterion still prints it as
//! `time:`.
//!
//! `emf_enhanced_runtime` is `emf_enhanced` with the container runtime's writable-layer usage
//! for every container (a ContainerFS record beside each Container record); the runtime's calls
//! themselves run off the tick (`scripts/bench runtime` measures those).
//!
//! Run: `cargo bench --bench cycle` (README "Performance").

#[path = "support/synthetic.rs"]
mod synthetic;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use kinsight::config::{self, Inputs, OutputKind};
use kinsight::host::{CgroupMode, Root, SystemClock, procfs};
use kinsight::kube::{self, PodIndex};
use kinsight::metrics::Collector;
use kinsight::metrics::collect::Settings;
use kinsight::metrics::compute::NodeAttributes;
use kinsight::metrics::sample::Sampler;
use kinsight::telemetry::Telemetry;

fn collector(root: &Path, config_json: &str) -> Collector {
    collector_with_index(root, config_json).1
}

fn collector_with_index(root: &Path, config_json: &str) -> (PodIndex, Collector) {
    let inputs = Inputs {
        output_override: Some(OutputKind::Stdout),
        host_name_fallback: "bench".into(),
        tagged_cluster_name: None,
        defer_missing_cluster_name: false,
        ..Inputs::default()
    };
    let cfg = config::load_str(config_json, &inputs).expect("bench config is valid");
    let root = Root::new(root);
    let mode = CgroupMode::detect(&root).expect("synthetic tree has a cgroup v2 root");
    let capacity = procfs::read_capacity(&root).expect("synthetic /proc");
    let index = PodIndex::new(None);
    kube::load_file_now(&root.path("/proc/podlist.json"), None, &index).expect("synthetic pod list");
    let attrs = NodeAttributes {
        cluster_name: cfg.cluster_name.clone(),
        node_name: cfg.node_name.clone(),
        instance_id: Some("i-0123456789abcdef0".into()),
        instance_type: Some("m5.4xlarge".into()),
    };
    let sampler = Sampler::new(root, mode, Telemetry::new());
    let col = Collector::new(
        sampler,
        capacity,
        Settings::from_config(&cfg, attrs),
        Some(index.clone()),
    );
    (index, col)
}

const STANDARD: &str = r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"bench"}}}}"#;
const ENHANCED_EMF: &str = r#"{"logs":{"metrics_collected":{"kubernetes":{"cluster_name":"bench","enhanced_container_insights":true}}},
    "kinsight":{"metrics":{"destination":"emf"}}}"#;

fn tmpfs_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm)
    } else {
        tempfile::tempdir()
    }
    .expect("temporary directory")
}

/// CPU time of the calling thread, in nanoseconds, as a criterion measurement.
struct ThreadCpu;

fn thread_cpu_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(t.tv_nsec).unwrap_or(0)
}

impl Measurement for ThreadCpu {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    #[expect(clippy::cast_precision_loss, reason = "nanoseconds of a benchmark run fit in f64")]
    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        // Nanoseconds, like wall time: the same units and scaling.
        static WALL: WallTime = WallTime;
        WALL.formatter()
    }
}

fn cycle(c: &mut Criterion<ThreadCpu>) {
    let mut group = c.benchmark_group("cycle");
    group.sample_size(30).measurement_time(Duration::from_secs(6));
    for (mode, config_json) in [("put_metric_data", STANDARD), ("emf_enhanced", ENHANCED_EMF)] {
        for pods in [110, 250, 737] {
            let dir = tmpfs_dir();
            let mut node = synthetic::Node::create(dir.path(), pods, 3);
            let mut col = collector(dir.path(), config_json);
            // Two warm-up ticks with moving counters: the measured ones then have rates.
            col.collect(&SystemClock);
            node.advance();
            col.collect(&SystemClock);
            group.bench_with_input(BenchmarkId::new(mode, pods), &pods, |b, _| {
                b.iter(|| black_box(col.collect(&SystemClock)));
            });
        }
    }
    // The runtime source on (issue #12): every container's writable layer measured, so that each
    // Container record gets its ContainerFS twin. The measuring itself runs off the tick.
    for pods in [110, 737] {
        let dir = tmpfs_dir();
        let mut node = synthetic::Node::create(dir.path(), pods, 3);
        let (index, col) = collector_with_index(dir.path(), ENHANCED_EMF);
        let (tx, view) = kinsight::runtime::fs_channel();
        let mut fs = kinsight::runtime::ContainerFs {
            image_fs: Some(kinsight::runtime::ImageFs {
                capacity_bytes: 100 << 30,
                available_bytes: 60 << 30,
            }),
            ..Default::default()
        };
        for pod in index.pods() {
            for c in &pod.containers {
                if let Some(id) = &c.id {
                    fs.usage_bytes.insert(id.clone(), 5 << 20);
                }
            }
        }
        tx.send_replace(std::sync::Arc::new(fs));
        let mut col = col.with_container_fs(view);
        col.collect(&SystemClock);
        node.advance();
        col.collect(&SystemClock);
        group.bench_with_input(BenchmarkId::new("emf_enhanced_runtime", pods), &pods, |b, _| {
            b.iter(|| black_box(col.collect(&SystemClock)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpu);
    targets = cycle
}
criterion_main!(benches);
