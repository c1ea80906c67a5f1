//! End to end on the kernel's live cgroup v1 counters (issue #3, Tests, first bullet): the built
//! binary, `kinsight once --interval 3s --pods-file F --config C --output stdout`, on the real
//! host (`--host-root /`), for a pod this test builds by hand.
//!
//! Each test builds a kubelet-like tree for one Burstable pod with two containers — cgroupfs
//! layout `kubepods/burstable/pod<uid>/<id>` or systemd layout
//! `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`
//! — in the `cpu`, `cpuacct` and `memory` hierarchies. Container `burner` runs a shell busy loop
//! (one core), container `holder` a Python process holding 128 MiB it has touched; each joins
//! its cgroups itself before it works, so every charge lands there. The pod list is what
//! `kubectl get pods,services,endpointslices,nodes -o json` would print for it (tests/e2e).
//!
//! Checked, for a standard and an enhanced run side by side:
//! - `pod_cpu_utilization` within ±15 % of one core's share of the node (100 / logical CPUs of
//!   `/proc/cpuinfo`), and within 0.15 cores of the kernel's accounting of the burner;
//! - `pod_memory_utilization` between 128 MiB and 192 MiB over `MemTotal`;
//! - over-limit and reserved-capacity values consistent with the same usage and the pod spec;
//! - all 25 standard metric names with their unit and exactly their dimension sets (N is absent
//!   because a local run has no `InstanceId`), and nothing else;
//! - enhanced: `container_cpu_utilization` / `container_memory_utilization` with the sets C, CT
//!   and FCT, the burner at one core, the holder's memory; pod metrics gain FP.
//!
//! The burner's cgroups get the maximum `cpu.shares`, so that it holds a whole core while builds
//! keep the shared 2-core machine busy; without that, it got 0.5–0.7 of a core here. When the
//! kernel's own accounting still shows it below 0.85 cores over a measurement (the machine, not
//! kinsight, decided the value), the measurement is repeated, at most 3 times; the checks are
//! the same on every attempt.
//!
//! Needs root and cgroup v1 (this project's machines): otherwise the tests say so and return,
//! and under `CI=true` they fail. Never run on a real Kubernetes node: they write into kubepods.

mod e2e;
mod support;

use std::path::PathBuf;
use std::sync::Mutex;

use e2e::{Cleanup, ContainerSpec, Host, MIB, PodSpec};
use support::start_in;

/// The two layouts each burn a core on a 2-core machine: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const HELD: u64 = 128 * MIB;
/// Above the 128 MiB: the Python interpreter, the shell, kernel bookkeeping.
const SLACK: u64 = 64 * MIB;

fn run_layout(systemd: bool) {
    let Some(hierarchies) = e2e::v1_prerequisites() else {
        return;
    };
    let _serial = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let host = Host::read();
    let mut cleanup = Cleanup::default();
    let uid = e2e::random_pod_uid();
    let (burn_id, hold_id) = (e2e::random_container_id(), e2e::random_container_id());
    let pod_rel = e2e::pod_cgroup(&uid, systemd);
    let (burn_rel, hold_rel) = (
        e2e::container_cgroup(&pod_rel, &burn_id, systemd),
        e2e::container_cgroup(&pod_rel, &hold_id, systemd),
    );
    for h in &hierarchies {
        // kubepods and its QoS parent may be another test's: removed only when empty.
        cleanup.mkdirs(h, &burn_rel, 2);
        cleanup.mkdirs(h, &hold_rel, 2);
    }
    let cpu = hierarchies
        .iter()
        .find(|h| h.join(&pod_rel).join("cpu.shares").exists())
        .expect("a cpu hierarchy")
        .clone();
    cleanup.boost_cpu_shares(&cpu, &burn_rel);

    let procs = |rel: &str| -> Vec<PathBuf> { hierarchies.iter().map(|h| h.join(rel).join("cgroup.procs")).collect() };
    let burner = start_in(&mut cleanup, &procs(&burn_rel), "echo joined; while :; do :; done");
    start_in(
        &mut cleanup,
        &procs(&hold_rel),
        "exec python3 -c 'import time; b = b\"x\" * (128 << 20); print(\"ready\", flush=True); time.sleep(600)'",
    );

    let pod = PodSpec::new(
        uid,
        vec![
            ContainerSpec {
                name: "burner",
                id: burn_id,
                cpu_request_m: 500,
                cpu_limit_m: 1200,
                memory_request: 64 * MIB,
                memory_limit: 256 * MIB,
            },
            ContainerSpec {
                name: "holder",
                id: hold_id,
                cpu_request_m: 100,
                cpu_limit_m: 300,
                memory_request: 192 * MIB,
                memory_limit: 512 * MIB,
            },
        ],
    );
    let dir = tempfile::tempdir().unwrap();
    let runs = e2e::run_both(dir.path(), &pod, burner);

    e2e::check_pod_values(&runs.standard, &pod, host, runs.burner_cores, HELD, SLACK);
    e2e::check_enhanced(&runs.enhanced, &pod, host, "burner", Some(("holder", HELD, SLACK)));
    e2e::check_standard_table(&runs.standard, &pod);
    e2e::check_cluster_values(&runs.standard);

    drop(cleanup);
    for h in &hierarchies {
        assert!(!h.join(&pod_rel).exists(), "{} left behind", h.join(&pod_rel).display());
    }
}

#[test]
fn cgroupfs_layout_pod_metrics_end_to_end() {
    run_layout(false);
}

#[test]
fn systemd_layout_pod_metrics_end_to_end() {
    run_layout(true);
}
