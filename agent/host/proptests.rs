//! Fuzz-style property tests of the node file parsers: arbitrary bytes, and realistic lines
//! with arbitrary damage, never panic, and what comes out is bounded by what went in (no parser
//! makes more entries than the text has lines). The cgroup parsers' own are in
//! `cgroup/proptests.rs`, the config loader's in `config/proptests.rs`.
//!
//! [`fuzz`] runs a case count taken from `PROPTEST_CASES` (proptest's default config reads it;
//! 256 without it), and prints it: `scripts/fuzz` runs a million cases of each.

use std::fmt::Debug;
use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

use super::{disk, fs, net, pids, procfs, root};

/// Runs `check` on `Config::default().cases` values of `strategy` and prints how many passed;
/// any panic or failed check fails the test with the (shrunk) input.
pub(crate) fn fuzz<S>(name: &str, strategy: S, check: impl Fn(S::Value) -> Result<(), TestCaseError>)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = Config {
        failure_persistence: None,
        ..Config::default()
    };
    let cases = config.cases;
    let mut runner = TestRunner::new(config);
    if let Err(e) = runner.run(&strategy, check) {
        panic!("fuzz {name}: {e}");
    }
    eprintln!("fuzz {name}: {cases} cases, no panic");
}

/// Arbitrary bytes as text (invalid UTF-8 replaced, as `Root::read` would refuse it).
pub(crate) fn any_text() -> impl Strategy<Value = String> {
    vec(any::<u8>(), 0..2048).prop_map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// Lines taken from `samples`, each possibly damaged: cut, a byte replaced, a field duplicated,
/// numbers replaced by huge, negative or non-numeric ones.
pub(crate) fn damaged_lines(samples: &'static [&'static str]) -> impl Strategy<Value = String> {
    let line = (
        proptest::sample::select(samples),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0u8..6,
    )
        .prop_map(|(line, at, byte, how)| {
            let mut b = line.as_bytes().to_vec();
            let i = if b.is_empty() { 0 } else { at.index(b.len()) };
            match how {
                0 => b.truncate(i),
                1 if !b.is_empty() => b[i] = byte,
                2 => b.splice(i..i, b" 18446744073709551616 ".iter().copied()).for_each(drop),
                3 => b.splice(i..i, b" -1 ".iter().copied()).for_each(drop),
                4 => {
                    let copy = b.clone();
                    b.extend_from_slice(b" ");
                    b.extend_from_slice(&copy);
                }
                _ => {}
            }
            String::from_utf8_lossy(&b).into_owned()
        });
    vec(line, 0..40).prop_map(|lines| lines.join("\n"))
}

/// Both kinds of input for one parser.
pub(crate) fn inputs(samples: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop_oneof![any_text(), damaged_lines(samples)]
}

/// The most entries a parser may return for `text`: one per line.
pub(crate) fn lines(text: &str) -> usize {
    text.lines().count()
}

const MOUNTINFO: &[&str] = &[
    "22 1 259:1 / / rw,noatime shared:1 - xfs /dev/nvme0n1p1 rw,attr2",
    "36 22 259:1 /var/lib/kubelet /var/lib/kubelet rw - xfs /dev/nvme0n1p1 rw",
    "40 22 0:5 / /dev rw,nosuid - devtmpfs devtmpfs rw,size=4k",
    "41 22 259:3 / /mnt/with\\040space rw - ext4 /dev/nvme1n1 rw",
    "42 22 0:44 / /run/x rw shared:2 master:1 - tmpfs tmpfs rw",
];

const DISKSTATS: &[&str] = &[
    " 259       0 nvme0n1 4069 23 221154 1617 21870 11393 1045448 29380 0 32224 32080 0 0 0 0",
    " 259       1 nvme0n1p1 3944 23 216178 1592 21870 11393 1045448 29380 0 32180 30972 0 0 0 0 0 0",
    "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0",
    " 253       0 dm-0 1 2 3 4 5 6 7 8 9 10 11",
];

const NET_DEV: &[&str] = &[
    "Inter-|   Receive                                                |  Transmit",
    " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
    "  eth0: 1234 10 0 0 0 0 0 0 5678 20 0 0 0 0 0 0",
    "    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0",
    "eni1234abcd:99 9 1 1 0 0 0 0 88 8 1 1 0 0 0 0",
];

const PID_CGROUP: &[&str] = &[
    "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod198f7dd2_2270_11ea_be47_0a5d932f5920.slice/cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
    "12:memory:/kubepods/besteffort/pod198f7dd2-2270-11ea-be47-0a5d932f5920/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    "1:name=systemd:/system.slice/kubelet.service",
    "0::/",
];

const MEMINFO: &[&str] = &[
    "MemTotal:        4194304 kB",
    "MemFree:          100 kB",
    "HugePages_Total:       0",
    "MemTotal: 18446744073709551615 kB",
];

#[test]
fn mountinfo_never_panics_and_yields_at_most_a_mount_per_line() {
    fuzz("mountinfo", inputs(MOUNTINFO), |text| {
        let mounts = fs::block_filesystems_from(&text);
        prop_assert!(mounts.len() <= lines(&text));
        for m in &mounts {
            prop_assert!(m.mount_point.len() <= text.len());
        }
        Ok(())
    });
}

#[test]
fn diskstats_never_panic() {
    fuzz("diskstats", inputs(DISKSTATS), |text| {
        if let Ok(stats) = disk::parse_diskstats(Path::new("/proc/diskstats"), &text) {
            prop_assert!(stats.len() <= lines(&text));
            prop_assert!(disk::device_names(&stats).len() <= stats.len());
        }
        Ok(())
    });
}

#[test]
fn net_dev_never_panics() {
    fuzz("net_dev", inputs(NET_DEV), |text| {
        if let Ok(ifaces) = net::parse_net_dev(Path::new("/proc/1/net/dev"), &text) {
            prop_assert!(ifaces.len() <= lines(&text));
            for i in &ifaces {
                let _ = net::is_counted_interface(&i.name);
            }
        }
        Ok(())
    });
}

#[test]
fn pid_cgroup_files_never_panic() {
    fuzz("proc_pid_cgroup", inputs(PID_CGROUP), |text| {
        if let Some(pod) = pids::pod_of_cgroup_file(&text) {
            prop_assert!(pod.pod_uid.len() <= text.len());
        }
        Ok(())
    });
}

#[test]
fn meminfo_and_single_numbers_never_panic() {
    fuzz("meminfo", inputs(MEMINFO), |text| {
        for name in ["MemTotal", "MemFree", "HugePages_Total", ""] {
            let _ = procfs::meminfo_field_bytes(&text, name);
        }
        let _ = root::parse_u64(&text, Path::new("/sys/fs/cgroup/memory.current"));
        Ok(())
    });
}
