//! Bad node input for the `host` readers: every case is a typed error naming the file (or a
//! clean skip), never a panic. The caller counts the error and goes on (`HostReadFailed`).
//! Each test works on a private copy of a fixture tree (`tests/fixtures/host/`).

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kinsight::host::cgroup::CgroupMode;
use std::collections::HashSet;

use kinsight::host::{HostError, Root, disk, fs, net, pids};
use support::is_root;

const A_UID: &str = "3f1c2b7a-8d9e-4f10-a1b2-c3d4e5f60718";

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/host")
        .join(name)
}

/// A private copy of a fixture tree (symlinks kept as symlinks).
fn copy_of(name: &str) -> (tempfile::TempDir, Root) {
    fn copy(src: &Path, dst: &Path) {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            let (from, to) = (e.path(), dst.join(e.file_name()));
            let t = e.file_type().unwrap();
            if t.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&from).unwrap(), &to).unwrap();
            } else if t.is_dir() {
                copy(&from, &to);
            } else {
                std::fs::copy(&from, &to).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&fixture(name), dir.path());
    // Anchored as the agent's sampler does: reads below /sys/fs/cgroup and /proc go through
    // `openat`, and their errors must still name the whole path.
    let root = Root::new(dir.path()).anchored();
    (dir, root)
}

fn pod_a_v2() -> String {
    format!(
        "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice",
        A_UID.replace('-', "_")
    )
}

fn assert_parse_error(err: &HostError, file: &str, what: &str) {
    let msg = err.to_string();
    assert_eq!(err.kind(), "parse", "{msg}");
    assert!(
        msg.contains(file) && msg.contains(what),
        "{msg} should name {file} and say {what}"
    );
}

#[test]
fn a_cgroup_vanishing_between_listing_and_reading_is_not_found() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let mode = CgroupMode::V2(kinsight::host::cgroup::V2Files::ALL);
    let pods = mode.list_pods(&r).unwrap();
    let a = pods.iter().find(|p| p.uid == A_UID).unwrap();
    let app = a.containers.iter().find(|c| c.id.starts_with('a')).unwrap();
    std::fs::remove_dir_all(r.path(format!("/sys/fs/cgroup/{}", app.rel))).unwrap();
    for err in [
        mode.read_cpu(&r, &app.rel).unwrap_err(),
        mode.read_memory(&r, &app.rel).unwrap_err(),
        mode.read_io(&r, &app.rel).unwrap_err(),
        mode.first_pid(&r, &app.rel).unwrap_err(),
    ] {
        assert!(err.is_not_found(), "{err}");
        assert_eq!(err.kind(), "not_found");
        assert!(err.to_string().contains(&app.rel), "{err}");
    }
    // The next listing simply lacks it; siblings are still found.
    let again = mode.list_pods(&r).unwrap();
    let a = again.iter().find(|p| p.uid == A_UID).unwrap();
    assert_eq!(a.containers.len(), 2);
    // A whole pod gone: its cgroup reads are not_found too, the listing goes on without it.
    std::fs::remove_dir_all(r.path(format!("/sys/fs/cgroup/{}", a.rel))).unwrap();
    assert!(mode.read_cpu(&r, &a.rel).unwrap_err().is_not_found());
    assert_eq!(mode.list_pods(&r).unwrap().len(), 1);
}

#[test]
fn empty_and_unparsable_cgroup_files_are_parse_errors_naming_the_file() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let mode = CgroupMode::V2(kinsight::host::cgroup::V2Files::ALL);
    let pod = pod_a_v2();
    let put = |file: &str, text: &str| std::fs::write(r.path(format!("/sys/fs/cgroup/{pod}/{file}")), text).unwrap();

    put("cpu.stat", "");
    assert_parse_error(&mode.read_cpu(&r, &pod).unwrap_err(), "cpu.stat", "no usage_usec");
    put("cpu.stat", "usage_usec twelve\n");
    assert_parse_error(
        &mode.read_cpu(&r, &pod).unwrap_err(),
        "cpu.stat",
        "usage_usec: not an unsigned integer",
    );
    put("memory.current", "");
    assert_parse_error(
        &mode.read_memory(&r, &pod).unwrap_err(),
        "memory.current",
        "expected an unsigned integer",
    );
    put("memory.current", "1\n");
    put("memory.stat", "anon -1\n");
    assert_parse_error(&mode.read_memory(&r, &pod).unwrap_err(), "memory.stat", "anon");
    put("io.stat", "259:0 rbytes=zz\n");
    assert_parse_error(&mode.read_io(&r, &pod).unwrap_err(), "io.stat", "rbytes");
    put("cgroup.procs", "not-a-pid\n");
    assert_parse_error(&mode.first_pid(&r, &pod).unwrap_err(), "cgroup.procs", "not a PID");
    // Not UTF-8: an I/O error (InvalidData) naming the file, not a panic.
    put("memory.stat", "");
    std::fs::write(r.path(format!("/sys/fs/cgroup/{pod}/memory.stat")), [0xff, 0xfe, b'\n']).unwrap();
    let err = mode.read_memory(&r, &pod).unwrap_err();
    assert_eq!(err.kind(), "io");
    assert!(err.to_string().contains("memory.stat"));
}

#[test]
fn empty_and_unparsable_v1_files_are_parse_errors_naming_the_file() {
    let (_dir, r) = copy_of("cgroup-v1-cgroupfs/t1");
    let mode = CgroupMode::detect(&r).unwrap();
    let pod = format!("kubepods/burstable/pod{A_UID}");
    std::fs::write(r.path(format!("/sys/fs/cgroup/cpuacct/{pod}/cpuacct.usage")), "").unwrap();
    assert_parse_error(
        &mode.read_cpu(&r, &pod).unwrap_err(),
        "cpuacct/kubepods",
        "expected an unsigned integer",
    );
    std::fs::write(
        r.path(format!("/sys/fs/cgroup/memory/{pod}/memory.stat")),
        "total_rss 1.5\n",
    )
    .unwrap();
    assert_parse_error(&mode.read_memory(&r, &pod).unwrap_err(), "memory.stat", "total_rss");
    std::fs::write(
        r.path("/sys/fs/cgroup/blkio/blkio.throttle.io_serviced"),
        "8:0 Read many\n",
    )
    .unwrap();
    assert_parse_error(
        &mode.read_io(&r, "").unwrap_err(),
        "blkio.throttle.io_serviced",
        "8:0 Read many",
    );
}

/// Whether this process runs with effective UID 0 (from `/proc/self/status`, no libc call).

#[test]
fn unreadable_directories_are_errors_for_the_listing() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let mode = CgroupMode::V2(kinsight::host::cgroup::V2Files::ALL);
    // Only a directory is a cgroup: a file where a QoS slice should be is skipped by the walk.
    let slice = r.path("/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice");
    std::fs::remove_dir_all(&slice).unwrap();
    std::fs::write(&slice, "").unwrap();
    assert_eq!(mode.list_pods(&r).unwrap().len(), 1);
    // A file where the top of the kubelet's tree should be: ENOTDIR, an `io` error naming it.
    let (_dir2, r2) = copy_of("cgroup-v2-systemd/t1");
    let top = r2.path("/sys/fs/cgroup/kubepods.slice");
    std::fs::remove_dir_all(&top).unwrap();
    std::fs::write(&top, "").unwrap();
    let err = mode.list_pods(&r2).unwrap_err();
    assert_eq!(err.kind(), "io", "{err}");
    assert!(err.to_string().contains("kubepods.slice"), "{err}");

    // Permission denied. Root bypasses the mode bits (CAP_DAC_OVERRIDE), and the test machines
    // and CI run as root, so there the case cannot be produced without dropping
    // capabilities, which needs unsafe code or a helper binary; it runs for non-root users.
    // The classification itself is unit-tested in `host::root` (kind() on io::ErrorKind).
    if is_root() {
        eprintln!("note: running as root; the mode-000 sub-case is skipped (root bypasses DAC)");
        return;
    }
    let burstable = r.path("/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice");
    std::fs::set_permissions(&burstable, std::fs::Permissions::from_mode(0o000)).unwrap();
    let err = mode.list_pods(&r).unwrap_err();
    std::fs::set_permissions(&burstable, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(err.kind(), "permission_denied", "{err}");
    assert!(err.to_string().contains("kubepods-burstable.slice"), "{err}");
}

#[test]
fn no_kubepods_is_an_empty_listing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("sys/fs/cgroup")).unwrap();
    std::fs::write(dir.path().join("sys/fs/cgroup/cgroup.controllers"), "cpu memory\n").unwrap();
    let r = Root::new(dir.path());
    let mode = CgroupMode::detect(&r).unwrap();
    assert!(mode.list_pods(&r).unwrap().is_empty());
    assert!(mode.read_cpu(&r, "").unwrap_err().is_not_found());
}

#[test]
fn odd_mountinfo_lines_are_skipped() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let table = "\
\n\
garbage\n\
1 0 259:1 / / rw - xfs\n\
1 0 259:1 / / rw shared:1 xfs /dev/nvme0n1p1 rw\n\
2 1 zz:1 / /x rw - ext4 /dev/sdz rw\n\
3 1 8:16 / /data rw,noatime shared:2 - ext4 /dev/sdb rw\n\
4 1 0:5 / /dev rw - devtmpfs devtmpfs rw\n\
5 3 8:16 /sub /data/bind rw - ext4 /dev/sdb rw\n";
    std::fs::write(r.path("/proc/1/mountinfo"), table).unwrap();
    let mounts = fs::block_filesystems(&r).unwrap();
    assert_eq!(mounts.len(), 1, "{mounts:?}");
    assert_eq!(
        (mounts[0].device.as_str(), mounts[0].mount_point.as_str()),
        ("/dev/sdb", "/data")
    );
    std::fs::write(r.path("/proc/1/mountinfo"), "").unwrap();
    assert!(fs::block_filesystems(&r).unwrap().is_empty());
    std::fs::remove_file(r.path("/proc/1/mountinfo")).unwrap();
    assert!(fs::block_filesystems(&r).unwrap_err().is_not_found());
    // A mount point that is not there under the root (mount not propagated): not_found.
    assert!(fs::statvfs(&r, "/data").unwrap_err().is_not_found());
}

#[test]
fn net_dev_and_diskstats_with_garbage_are_parse_errors() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let file = r.path("/proc/4242/net/dev");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str("  eth1: 1 2 3 garbage\n");
    std::fs::write(&file, &text).unwrap();
    assert_parse_error(&net::read_net_dev(&r, 4242).unwrap_err(), "proc/4242/net/dev", "eth1");
    // Header lines and blank lines alone: no interfaces, no error.
    std::fs::write(&file, "Inter-|   Receive\n face |bytes\n\n").unwrap();
    assert!(net::read_net_dev(&r, 4242).unwrap().is_empty());
    // A process that exited: not_found.
    assert!(net::read_net_dev(&r, 99_999).unwrap_err().is_not_found());

    std::fs::write(r.path("/proc/diskstats"), " 259 0 nvme0n1 1 2 3\n").unwrap();
    assert_parse_error(
        &disk::read_diskstats(&r).unwrap_err(),
        "proc/diskstats",
        "fewer than 14",
    );
}

/// A pod's process exits between ticks. The PID map holds the process's `/proc/<pid>`
/// directory, so the next read through it fails as not found (a reused PID number cannot
/// answer for it); the pod is forgotten for this tick, and the next refresh adopts another
/// process of the pod at once.
#[test]
fn a_pods_process_exiting_is_forgotten_and_another_one_adopted() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let wanted = HashSet::from([A_UID]);
    let mut map = pids::PidMap::default();
    map.refresh(&r, &wanted).unwrap();
    assert_eq!(map.get(A_UID), Some(4242));
    let eth0 = |v: Vec<net::InterfaceCounters>| v.into_iter().find(|i| i.name == "eth0").unwrap().rx_bytes;
    let before = eth0(map.read_net_dev(&r, A_UID).unwrap().unwrap());

    // The process exits; a new one of the same pod (another container) starts.
    std::fs::remove_dir_all(r.path("/proc/4242")).unwrap();
    assert!(
        map.read_net_dev(&r, A_UID).is_none(),
        "an exited process answers nothing"
    );
    assert_eq!(map.get(A_UID), None);
    let new = r.path("/proc/4300");
    std::fs::create_dir_all(new.join("net")).unwrap();
    let cgroup = std::fs::read_to_string(fixture("cgroup-v2-systemd/t1/proc/4242/cgroup")).unwrap();
    std::fs::write(new.join("cgroup"), cgroup).unwrap();
    let dev = std::fs::read_to_string(fixture("cgroup-v2-systemd/t1/proc/4242/net/dev")).unwrap();
    std::fs::write(new.join("net/dev"), dev).unwrap();

    map.refresh(&r, &wanted).unwrap();
    assert_eq!(
        map.get(A_UID),
        Some(4300),
        "rescanned right away: the pod had a PID before"
    );
    assert_eq!(eth0(map.read_net_dev(&r, A_UID).unwrap().unwrap()), before);

    // The pod's last process exits: no network counters, and no error either.
    std::fs::remove_dir_all(&new).unwrap();
    assert!(map.read_net_dev(&r, A_UID).is_none());
    map.refresh(&r, &wanted).unwrap();
    assert_eq!(map.get(A_UID), None);
}

/// Without descriptors to spare (budget 0), the PID map re-validates each PID through its
/// `cgroup` file every tick: a PID number now used by a process of another cgroup is dropped.
#[test]
fn without_a_descriptor_budget_pids_are_revalidated_through_their_cgroup_file() {
    let (_dir, r) = copy_of("cgroup-v2-systemd/t1");
    let wanted = HashSet::from([A_UID]);
    let mut map = pids::PidMap::with_budget(0);
    map.refresh(&r, &wanted).unwrap();
    assert_eq!((map.get(A_UID), map.held()), (Some(4242), 0));
    assert!(map.read_net_dev(&r, A_UID).unwrap().is_ok());
    // PID 4242 exited and the number went to a host daemon.
    std::fs::write(r.path("/proc/4242/cgroup"), "0::/system.slice/chronyd.service\n").unwrap();
    map.refresh(&r, &wanted).unwrap();
    assert_eq!(map.get(A_UID), None);
    assert!(map.read_net_dev(&r, A_UID).is_none());
}
