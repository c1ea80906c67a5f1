//! Fuzz-style property tests of the cgroup file parsers (`memory.stat`, `cpu.stat`,
//! `io.stat`, `blkio.*`, cgroup directory names): see `host/proptests.rs`.

use std::path::Path;

use proptest::prelude::*;

use super::{container_from_name, io, parse, uid_from_component};
use crate::host::proptests::{fuzz, inputs, lines};

const FLAT_KEYED: &[&str] = &[
    "usage_usec 1000000",
    "user_usec 600000",
    "anon 1073741824",
    "inactive_file 18446744073709551615",
    "total_rss 12 34",
    "pgfault",
];

const IO_STAT: &[&str] = &[
    "259:0 rbytes=1 wbytes=2 rios=3 wios=4 dbytes=0 dios=0",
    "253:1 rbytes=18446744073709551615 wbytes=0 rios=0 wios=0",
    "8:0 rbytes=x",
    "259:0",
];

const BLKIO: &[&str] = &["259:0 Read 100", "259:0 Write 200", "259:0 Total 300", "Total 300"];

const NAMES: &[&str] = &[
    "kubepods-burstable-pod198f7dd2_2270_11ea_be47_0a5d932f5920.slice",
    "pod198f7dd2-2270-11ea-be47-0a5d932f5920",
    "cri-containerd-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
    "docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope",
    "crio-0123.scope",
];

#[test]
fn flat_keyed_files_never_panic() {
    fuzz("cgroup_flat_keyed", inputs(FLAT_KEYED), |text| {
        let wanted = ["usage_usec", "user_usec", "anon", "inactive_file", "total_rss"];
        let mut out = [None; 5];
        let _ = parse::flat_keyed(Path::new("/sys/fs/cgroup/memory.stat"), &text, &wanted, &mut out);
        Ok(())
    });
}

#[test]
fn io_stat_and_blkio_never_panic() {
    fuzz("cgroup_io", inputs(IO_STAT), |text| {
        if let Ok(stats) = io::parse_io_stat(Path::new("/sys/fs/cgroup/io.stat"), &text) {
            prop_assert!(stats.devices.len() <= lines(&text));
        }
        Ok(())
    });
    fuzz("cgroup_blkio", inputs(BLKIO), |text| {
        if let Ok(entries) = io::parse_blkio(Path::new("/sys/fs/cgroup/blkio/blkio.throttle.io_serviced"), &text) {
            prop_assert!(entries.len() <= lines(&text));
        }
        Ok(())
    });
}

#[test]
fn cgroup_directory_names_never_panic() {
    fuzz("cgroup_names", inputs(NAMES), |text| {
        for name in text.lines() {
            if let Some(uid) = uid_from_component(name) {
                prop_assert!(uid.len() <= name.len());
            }
            let _ = container_from_name(name);
        }
        Ok(())
    });
}
