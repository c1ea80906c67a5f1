//! The `host` readers on recorded node trees: `tests/fixtures/host/<tree>/t<tick>`, written by
//! `tests/fixtures/host/generate.py`. The v2 tree and the v1 cgroupfs tree carry the hand-worked
//! test oracle (one node, pods A and B, two ticks 60 s apart) at both ticks; the expected values
//! below are the oracle's, plus the small invented values the generator documents.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use kinsight::host::cgroup::{CgroupMode, IoCounters, PodCgroup, Qos, Runtime};
use kinsight::host::{Root, disk, fs, net, pids, procfs};

const A_UID: &str = "3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718";
const B_UID: &str = "9b8c7d6e-5f4a-4b3c-9d2e-1f0a9b8c7d6e";
const G_UID: &str = "7e570000-0000-4000-8000-00000000000a";
const STATIC_UID: &str = "6d3f0c1e2b4a59788c7d6e5f4a3b2c1d";
const G1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn x64(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

fn tree(name: &str, tick: u8) -> Root {
    Root::new(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/host/{name}/t{tick}")))
}

/// `(uid, qos, rel, [(id, runtime, rel)])`, for one-line comparisons.
type PodView = (String, Qos, String, Vec<(String, Runtime, String)>);

fn view(pods: &[PodCgroup]) -> Vec<PodView> {
    pods.iter()
        .map(|p| {
            let cs = p
                .containers
                .iter()
                .map(|c| (c.id.clone(), c.runtime, c.rel.clone()))
                .collect();
            (p.uid.clone(), p.qos, p.rel.clone(), cs)
        })
        .collect()
}

fn systemd_pod(qos: &str, uid: &str) -> String {
    let u = uid.replace('-', "_");
    if qos.is_empty() {
        format!("kubepods.slice/kubepods-pod{u}.slice")
    } else {
        format!("kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice")
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Counter delta per second over the oracle's 60 s between t0 and t1.
fn per_sec(t0: u64, t1: u64) -> f64 {
    (t1 - t0) as f64 / 60.0
}

// ---------------------------------------------------------------------------------------------
// cgroup v2, systemd driver: the oracle node and pods A and B
// ---------------------------------------------------------------------------------------------

#[test]
fn v2_systemd_lists_oracle_pods_at_both_ticks() {
    for tick in [0, 1] {
        let r = tree("cgroup-v2-systemd", tick);
        let mode = CgroupMode::detect(&r).unwrap();
        assert!(matches!(mode, CgroupMode::V2(_)), "{mode:?}");
        assert_eq!(mode.driver(&r), Some("systemd"));
        let a = systemd_pod("burstable", A_UID);
        let b = systemd_pod("besteffort", B_UID);
        let scope = |pod: &str, c: &str| {
            (
                c.to_string(),
                Runtime::Containerd,
                format!("{pod}/cri-containerd-{c}.scope"),
            )
        };
        let shell = if tick == 0 { x64('d') } else { x64('e') };
        assert_eq!(
            view(&mode.list_pods(&r).unwrap()),
            vec![
                // Sorted by directory name: besteffort before burstable. The nested cgroup
                // below a's scope (not a container of the pod) and system.slice are not listed.
                (
                    B_UID.into(),
                    Qos::BestEffort,
                    b.clone(),
                    vec![scope(&b, &x64('1')), scope(&b, &shell)]
                ),
                (
                    A_UID.into(),
                    Qos::Burstable,
                    a.clone(),
                    vec![scope(&a, &x64('a')), scope(&a, &x64('b')), scope(&a, &x64('c'))]
                ),
            ],
            "tick {tick}"
        );
    }
}

#[test]
fn v2_systemd_node_values_match_the_oracle() {
    let (r0, r1) = (tree("cgroup-v2-systemd", 0), tree("cgroup-v2-systemd", 1));
    let mode = CgroupMode::V2(kinsight::host::cgroup::V2Files::ALL);
    let cap = procfs::read_capacity(&r1).unwrap();
    assert_eq!((cap.cpus, cap.memory_bytes), (4, 8_192_000_000));
    assert_eq!(
        procfs::read_hostname(&r1).unwrap(),
        "ip-10-0-1-23.eu-west-1.compute.internal"
    );

    let (c0, c1) = (mode.read_cpu(&r0, "").unwrap(), mode.read_cpu(&r1, "").unwrap());
    assert_eq!(
        (c1.usage_ns, c1.user_ns, c1.system_ns),
        (1_072_000_000_000, Some(754_000_000_000), Some(318_000_000_000))
    );
    // #1 node_cpu_utilization 30.0: Δns / 60 s = cores; ×1000 millicores; / (4 × 1000) × 100.
    let millicores = (c1.usage_ns - c0.usage_ns) as f64 / 60e9 * 1000.0;
    assert!(
        close(millicores, 1200.0) && close(millicores / 4000.0 * 100.0, 30.0),
        "{millicores}"
    );

    // #2 node_memory_utilization 48.828125 (the v2 root has no memory.current: usage = anon + file).
    let m = mode.read_memory(&r1, "").unwrap();
    assert_eq!(
        (m.usage, m.inactive_file, m.rss, m.cache, m.max_usage, m.failcnt),
        (5_000_000_000, 1_000_000_000, 3_000_000_000, 2_000_000_000, 0, 0)
    );
    assert_eq!((m.mapped_file, m.pgfault, m.pgmajfault), (300_000_000, 900_000, 1200));
    assert!(close(
        (m.usage - m.inactive_file) as f64 / cap.memory_bytes as f64 * 100.0,
        48.828_125
    ));

    // #3 node_network_total_bytes 200000.0: eth0 + eni (quirk), not lo or docker0.
    let counted = |root: &Root| -> (u64, u64) {
        let ifaces = net::read_net_dev(root, 1).unwrap();
        assert_eq!(
            ifaces.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["lo", "eth0", "eni1a2b3c4d5e6", "docker0"]
        );
        ifaces
            .iter()
            .filter(|i| net::is_counted_interface(&i.name))
            .fold((0, 0), |(rx, tx), i| (rx + i.rx_bytes, tx + i.tx_bytes))
    };
    let ((rx0, tx0), (rx1, tx1)) = (counted(&r0), counted(&r1));
    assert!(close(per_sec(rx0, rx1), 120_000.0) && close(per_sec(tx0, tx1), 80_000.0));
    assert!(close(per_sec(rx0, rx1) + per_sec(tx0, tx1), 200_000.0));

    // NodeDiskIO: v2 has Read and Write only; total = read + write.
    let (io0, io1) = (mode.read_io(&r0, "").unwrap(), mode.read_io(&r1, "").unwrap());
    assert_eq!(io1.devices.len(), 1);
    let d = io1.devices[0];
    assert_eq!((d.major, d.minor), (259, 0));
    assert_eq!(
        d.bytes,
        IoCounters {
            read: 3_003_006_976,
            write: 1_506_000_000,
            sync: None,
            async_: None,
            total: None
        }
    );
    assert_eq!((d.ops.read, d.ops.write), (90_600, 61_260));
    assert!(close(
        per_sec(io0.devices[0].bytes.total_or_sum(), d.bytes.total_or_sum()),
        150_116.266_666_666_66
    ));
    let names = disk::device_names(&disk::read_diskstats(&r1).unwrap());
    assert_eq!(names[&(259, 0)], "/dev/nvme0n1");

    // NodeFS: exactly one block filesystem (a bind mount of it is skipped) — its statvfs values are the
    // kernel's (the syscall cannot be faked by a file); the arithmetic is unit-tested.
    let mounts = fs::block_filesystems(&r1).unwrap();
    assert_eq!(mounts.len(), 1);
    assert_eq!(
        (
            mounts[0].device.as_str(),
            mounts[0].mount_point.as_str(),
            mounts[0].fstype.as_str()
        ),
        ("/dev/nvme0n1p1", "/", "xfs")
    );
    assert!(fs::statvfs(&r1, &mounts[0].mount_point).unwrap().capacity_bytes > 0);
}

#[test]
fn v2_systemd_pod_values_match_the_oracle() {
    let (r0, r1) = (tree("cgroup-v2-systemd", 0), tree("cgroup-v2-systemd", 1));
    let mode = CgroupMode::V2(kinsight::host::cgroup::V2Files::ALL);
    let a = systemd_pod("burstable", A_UID);
    let b = systemd_pod("besteffort", B_UID);
    let mem_total = 8_192_000_000f64;

    // #13 pod_cpu_utilization A 11.25, B 0.25.
    for (rel, want) in [(&a, 11.25), (&b, 0.25)] {
        let (c0, c1) = (mode.read_cpu(&r0, rel).unwrap(), mode.read_cpu(&r1, rel).unwrap());
        let util = (c1.usage_ns - c0.usage_ns) as f64 / 60e9 * 1000.0 / 4000.0 * 100.0;
        assert!(close(util, want), "{rel}: {util}");
        assert_eq!(c1.user_ns.unwrap() + c1.system_ns.unwrap(), c1.usage_ns);
    }
    // #14 pod_memory_utilization A 6.4, B 0.512 (non-root v2 usage = memory.current).
    for (rel, usage, inactive, want) in [(&a, 629_145_600, 104_857_600, 6.4), (&b, 52_428_800, 10_485_760, 0.512)] {
        let m = mode.read_memory(&r1, rel).unwrap();
        assert_eq!(
            (m.usage, m.inactive_file, m.max_usage, m.swap, m.failcnt),
            (usage, inactive, usage + 4096, 0, 0)
        );
        assert_eq!(m.rss + m.cache, usage);
        assert!(
            close((m.usage - m.inactive_file) as f64 / mem_total * 100.0, want),
            "{rel}"
        );
    }
    // Containers: app and sidecar of A (the sandbox c×64 is listed too; metrics ignores it).
    let app = format!("{a}/cri-containerd-{}.scope", x64('a'));
    let (c0, c1) = (mode.read_cpu(&r0, &app).unwrap(), mode.read_cpu(&r1, &app).unwrap());
    assert_eq!((c0.usage_ns, c1.usage_ns), (300_000_000_000, 318_000_000_000));
    assert_eq!(mode.read_memory(&r1, &app).unwrap().usage, 419_430_400);
    // B's shell restarted: the t0 cgroup (d×64) is gone at t1.
    let old_shell = format!("{b}/cri-containerd-{}.scope", x64('d'));
    assert_eq!(mode.read_cpu(&r0, &old_shell).unwrap().usage_ns, 500_000_000);
    assert!(mode.read_cpu(&r1, &old_shell).unwrap_err().is_not_found());

    // #15/#16 pod network through a process of the pod: A 50000 / 25000, B 1000 / 500.
    assert_eq!(mode.first_pid(&r1, &a).unwrap(), Some(4242));
    assert_eq!(mode.first_pid(&r1, &b).unwrap(), Some(5151));
    assert_eq!(
        mode.first_pid(&r1, "system.slice/containerd.service").unwrap(),
        Some(900)
    );
    for (pid, rx, tx) in [(4242, 50_000.0, 25_000.0), (5151, 1000.0, 500.0)] {
        let eth0 = |r: &Root| {
            let v = net::read_net_dev(r, pid).unwrap();
            assert!(v.iter().any(|i| i.name == "lo"));
            v.into_iter().find(|i| i.name == "eth0").unwrap()
        };
        let (e0, e1) = (eth0(&r0), eth0(&r1));
        assert!(
            close(per_sec(e0.rx_bytes, e1.rx_bytes), rx) && close(per_sec(e0.tx_bytes, e1.tx_bytes), tx),
            "{pid}"
        );
    }

    // The same PIDs found from the host procfs, without cgroup.procs.
    let by_uid = pids::pod_pids(&r1).unwrap();
    assert_eq!(by_uid.len(), 2);
    assert_eq!((by_uid[A_UID], by_uid[B_UID]), (4242, 5151));
    let p = pids::pod_of_pid(&r1, 4242).unwrap().unwrap();
    assert_eq!((p.pod_uid.as_str(), p.container_id), (A_UID, Some(x64('c'))));
    assert_eq!(pids::pod_of_pid(&r1, 1).unwrap(), None);
    let mut map = pids::PidMap::default();
    map.refresh(
        &r1,
        &HashSet::from([A_UID, B_UID, "0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"]),
    )
    .unwrap();
    assert_eq!(
        (
            map.get(A_UID),
            map.get(B_UID),
            map.get("0d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6")
        ),
        (Some(4242), Some(5151), None)
    );
    map.refresh(&r1, &HashSet::from([B_UID])).unwrap();
    assert_eq!((map.get(A_UID), map.get(B_UID)), (None, Some(5151)));
}

// ---------------------------------------------------------------------------------------------
// cgroup v1, separate mounts, cgroupfs driver: the oracle's v1 rendering plus a Guaranteed pod
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_cgroupfs_lists_every_qos_class() {
    let r = tree("cgroup-v1-cgroupfs", 1);
    let mode = CgroupMode::detect(&r).unwrap();
    let CgroupMode::V1(layout) = &mode else {
        panic!("not v1: {mode:?}")
    };
    assert_eq!(
        (layout.cpu.as_path(), layout.cpuacct.as_path()),
        (Path::new("/sys/fs/cgroup/cpu"), Path::new("/sys/fs/cgroup/cpuacct"))
    );
    let bare = |pod: &str, c: &str| (c.to_string(), Runtime::Unknown, format!("{pod}/{c}"));
    let a = format!("kubepods/burstable/pod{A_UID}");
    let b = format!("kubepods/besteffort/pod{B_UID}");
    let g = format!("kubepods/pod{G_UID}");
    assert_eq!(
        view(&mode.list_pods(&r).unwrap()),
        vec![
            (
                B_UID.into(),
                Qos::BestEffort,
                b.clone(),
                vec![bare(&b, &x64('1')), bare(&b, &x64('e'))]
            ),
            (
                A_UID.into(),
                Qos::Burstable,
                a.clone(),
                vec![bare(&a, &x64('a')), bare(&a, &x64('b')), bare(&a, &x64('c'))]
            ),
            (G_UID.into(), Qos::Guaranteed, g.clone(), vec![bare(&g, G1)]),
        ]
    );
}

#[test]
fn v1_cgroupfs_values_match_the_oracle() {
    let (r0, r1) = (tree("cgroup-v1-cgroupfs", 0), tree("cgroup-v1-cgroupfs", 1));
    let mode = CgroupMode::detect(&r1).unwrap();
    assert_eq!((mode.name(), mode.driver(&r1)), ("v1", Some("cgroupfs")));

    // Root: cpuacct.usage in ns, cpuacct.stat in USER_HZ ticks (the oracle's v1 rendering).
    let (c0, c1) = (mode.read_cpu(&r0, "").unwrap(), mode.read_cpu(&r1, "").unwrap());
    assert_eq!(
        (c1.usage_ns, c1.user_ns, c1.system_ns),
        (1_072_000_000_000, Some(754_000_000_000), Some(318_000_000_000))
    );
    assert!(close(
        (c1.usage_ns - c0.usage_ns) as f64 / 60e9 * 1000.0 / 4000.0 * 100.0,
        30.0
    ));
    let m = mode.read_memory(&r1, "").unwrap();
    assert_eq!(
        (m.usage, m.inactive_file, m.failcnt, m.max_usage),
        (5_000_000_000, 1_000_000_000, 3, 5_000_004_096)
    );
    assert!(close(
        (m.usage - m.inactive_file) as f64 / 8_192_000_000.0 * 100.0,
        48.828_125
    ));

    // Pod A: the same relative path in the cpuacct and memory hierarchies.
    let a = format!("kubepods/burstable/pod{A_UID}");
    let (p0, p1) = (mode.read_cpu(&r0, &a).unwrap(), mode.read_cpu(&r1, &a).unwrap());
    assert!(close(
        (p1.usage_ns - p0.usage_ns) as f64 / 60e9 * 1000.0 / 4000.0 * 100.0,
        11.25
    ));
    // user = 4/5 of usage in the generator: 421600000 µs = 42160 ticks.
    assert_eq!(
        (p1.user_ns, p1.system_ns),
        (Some(421_600_000_000), Some(105_400_000_000))
    );
    let pm = mode.read_memory(&r1, &a).unwrap();
    assert_eq!(
        (
            pm.usage,
            pm.inactive_file,
            pm.cache,
            pm.rss,
            pm.mapped_file,
            pm.pgfault,
            pm.pgmajfault,
            pm.failcnt
        ),
        (629_145_600, 104_857_600, 105_906_176, 523_239_424, 4096, 3000, 30, 3)
    );
    assert!(close(
        (pm.usage - pm.inactive_file) as f64 / 8_192_000_000.0 * 100.0,
        6.4
    ));
    assert_eq!(mode.first_pid(&r1, &a).unwrap(), Some(4242));
    assert_eq!(
        mode.first_pid(&r1, &format!("kubepods/pod{G_UID}")).unwrap(),
        Some(6161)
    );

    // Root block I/O: the empty recursive throttle files fall through to the local ones
    // (runc's order); v1 has Sync, Async and Total.
    let io = mode.read_io(&r1, "").unwrap();
    assert_eq!(io.devices.len(), 1);
    let d = io.devices[0];
    assert_eq!(
        d.bytes,
        IoCounters {
            read: 3_003_006_976,
            write: 1_506_000_000,
            sync: Some(1_506_000_000),
            async_: Some(3_003_006_976),
            total: Some(4_509_006_976)
        }
    );
    assert_eq!((d.ops.read, d.ops.write, d.ops.total), (90_600, 61_260, Some(151_860)));
    // No blkio files at a pod cgroup of this tree: the cgroup exists, so "no I/O", not an error.
    assert!(mode.read_io(&r1, &a).unwrap().devices.is_empty());
    assert!(mode.read_io(&r1, "kubepods/gone").unwrap_err().is_not_found());
}

// ---------------------------------------------------------------------------------------------
// cgroup v1 co-mounted (`cpu,cpuacct` + symlinks, EKS AL2), systemd driver, three runtimes
// ---------------------------------------------------------------------------------------------

#[test]
fn v1_comounted_systemd_lists_scopes_of_each_runtime() {
    let r = tree("cgroup-v1-comounted", 1);
    assert!(r.path("/sys/fs/cgroup/cpu").is_symlink() && r.path("/sys/fs/cgroup/cpuacct").is_symlink());
    let mode = CgroupMode::detect(&r).unwrap();
    assert_eq!((mode.name(), mode.driver(&r)), ("v1", Some("systemd")));
    let a = systemd_pod("burstable", A_UID);
    let b = systemd_pod("besteffort", B_UID);
    let g = systemd_pod("", G_UID);
    let scope = |pod: &str, prefix: &str, c: &str, rt| (c.to_string(), rt, format!("{pod}/{prefix}-{c}.scope"));
    assert_eq!(
        view(&mode.list_pods(&r).unwrap()),
        vec![
            // crio-conmon-<id>.scope is CRI-O's monitor, not a container.
            (
                B_UID.into(),
                Qos::BestEffort,
                b.clone(),
                vec![
                    scope(&b, "crio", &x64('1'), Runtime::Crio),
                    scope(&b, "crio", &x64('e'), Runtime::Crio)
                ]
            ),
            (
                A_UID.into(),
                Qos::Burstable,
                a.clone(),
                ['a', 'b', 'c']
                    .iter()
                    .map(|c| scope(&a, "cri-containerd", &x64(*c), Runtime::Containerd))
                    .collect()
            ),
            (
                G_UID.into(),
                Qos::Guaranteed,
                g.clone(),
                vec![scope(&g, "docker", G1, Runtime::Docker)]
            ),
        ]
    );
    let app = format!("{a}/cri-containerd-{}.scope", x64('a'));
    assert_eq!(mode.read_cpu(&r, &app).unwrap().usage_ns, 318_000_000_000);
    assert_eq!(mode.read_memory(&r, &app).unwrap().usage, 419_430_400);
    assert_eq!(mode.first_pid(&r, &b).unwrap(), Some(5151));
    assert_eq!(mode.read_io(&r, "").unwrap().devices[0].bytes.read, 3_003_006_976);
}

// ---------------------------------------------------------------------------------------------
// hybrid (systemd's layout, this project's machines): v1 counters + a cgroup2 `unified` mount
// ---------------------------------------------------------------------------------------------

#[test]
fn hybrid_reads_v1_and_finds_static_pods_among_odd_names() {
    let r = tree("cgroup-hybrid", 1);
    let mode = CgroupMode::detect(&r).unwrap();
    assert_eq!(mode.name(), "hybrid");
    let pods = mode.list_pods(&r).unwrap();
    let uids: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
    // podNOT-A-UID, notapod and the not-a-container child are skipped without an error.
    assert_eq!(uids, [B_UID, A_UID, STATIC_UID, G_UID]);
    let s = &pods[2];
    assert_eq!(
        (s.qos, s.rel.as_str()),
        (Qos::Burstable, format!("kubepods/burstable/pod{STATIC_UID}").as_str())
    );
    assert_eq!(
        view(std::slice::from_ref(s))[0].3,
        vec![(x64('f'), Runtime::Unknown, format!("{}/{}", s.rel, x64('f')))]
    );
    assert_eq!(mode.read_cpu(&r, &s.rel).unwrap().usage_ns, 7_000_000_000);
    assert_eq!(mode.read_memory(&r, &s.containers[0].rel).unwrap().usage, 9_437_184);
    assert_eq!(mode.first_pid(&r, &s.rel).unwrap(), Some(8181));
    assert_eq!(mode.read_cpu(&r, "").unwrap().usage_ns, 1_072_000_000_000);
}

/// The pod-only listing (the default `put_metric_data` mode) finds the same pods, in the same
/// order, with the same `QoS` and paths as the full listing, only without their containers.
#[test]
fn pod_only_listing_matches_the_full_listing_without_containers() {
    for (name, tick) in [
        ("cgroup-v2-systemd", 1),
        ("cgroup-v1-cgroupfs", 1),
        ("cgroup-v1-comounted", 1),
        ("cgroup-hybrid", 1),
    ] {
        let r = tree(name, tick);
        let mode = CgroupMode::detect(&r).unwrap();
        let full = mode.list_pods(&r).unwrap();
        let shallow = mode.list_pod_cgroups_only(&r).unwrap();
        assert!(!full.is_empty(), "{name}: no pods listed");
        assert!(
            full.iter().any(|p| !p.containers.is_empty()),
            "{name}: no containers in the full listing"
        );
        let key = |p: &PodCgroup| (p.uid.clone(), format!("{:?}", p.qos), p.rel.clone());
        assert_eq!(
            shallow.iter().map(key).collect::<Vec<_>>(),
            full.iter().map(key).collect::<Vec<_>>(),
            "{name}"
        );
        assert!(shallow.iter().all(|p| p.containers.is_empty()), "{name}");
    }
}
