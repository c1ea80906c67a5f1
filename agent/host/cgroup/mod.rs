//! cgroup layouts and the per-cgroup counters the metrics are computed from.
//!
//! [`CgroupMode`] is detected once at build time from files under the host root:
//! - `sys/fs/cgroup/cgroup.controllers` present ⇒ the unified hierarchy is mounted at the cgroup
//!   root: **v2** (AL2023, Bottlerocket);
//! - otherwise v1 controllers at `sys/fs/cgroup/<controller>`, either co-mounted as
//!   `cpu,cpuacct` (EKS AL2, with `cpu` and `cpuacct` symlinks) or mounted separately (this
//!   project's test machines); if a cgroup2 tree is also mounted at `sys/fs/cgroup/unified`,
//!   the node is **hybrid** (systemd's layout), and the resource counters still come from v1.

mod discover;
mod io;
mod parse;
mod procs;
#[cfg(test)]
mod proptests;
pub mod v1;
pub mod v2;

pub use discover::{ContainerCgroup, PodCgroup, Qos, Runtime};
pub(crate) use discover::{container_from_name, uid_from_component};
pub use io::{DeviceIo, IoCounters, IoStats};

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;

use super::{Dir, HostError, Root};

/// Where the v1 controllers this agent reads are mounted (host paths, before re-rooting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Layout {
    pub cpu: PathBuf,
    pub cpuacct: PathBuf,
    pub memory: PathBuf,
    pub blkio: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMode {
    V1(V1Layout),
    /// v1 controllers plus a controller-less cgroup2 mount at `/sys/fs/cgroup/unified`.
    Hybrid(V1Layout),
    V2(V2Files),
}

/// Optional cgroup v2 files, probed once at detection on the kubepods cgroup, so a kernel that
/// lacks them costs no failed `open` per pod and tick (`memory.peak` needs Linux 5.19;
/// `memory.swap.current` needs swap accounting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V2Files {
    pub memory_peak: bool,
    pub memory_swap_current: bool,
}

impl V2Files {
    /// Try every optional file (no kubepods cgroup to probe yet).
    pub const ALL: V2Files = V2Files {
        memory_peak: true,
        memory_swap_current: true,
    };

    fn probe(root: &Root) -> V2Files {
        for parent in ["kubepods.slice", "kubepods"] {
            let dir = format!("{CGROUP_ROOT}/{parent}");
            if root.exists(&dir) {
                return V2Files {
                    memory_peak: root.exists(format!("{dir}/memory.peak")),
                    memory_swap_current: root.exists(format!("{dir}/memory.swap.current")),
                };
            }
        }
        V2Files::ALL
    }
}

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

impl CgroupMode {
    /// Detects the layout; an error means no usable cgroup hierarchy is mounted at
    /// `<root>/sys/fs/cgroup` (in the DaemonSet: the `/sys` host mount is missing).
    pub fn detect(root: &Root) -> Result<CgroupMode, HostError> {
        if root.exists(format!("{CGROUP_ROOT}/cgroup.controllers")) {
            return Ok(CgroupMode::V2(V2Files::probe(root)));
        }
        let pick = |candidates: &[&str], probe: &str| -> Option<PathBuf> {
            candidates
                .iter()
                .map(|c| PathBuf::from(format!("{CGROUP_ROOT}/{c}")))
                .find(|p| root.exists(p.join(probe)))
        };
        let cpuacct = pick(&["cpuacct", "cpu,cpuacct", "cpuacct,cpu"], "cpuacct.usage");
        let memory = pick(&["memory"], "memory.usage_in_bytes");
        let (Some(cpuacct), Some(memory)) = (cpuacct, memory) else {
            return Err(HostError::Read {
                path: root.path(CGROUP_ROOT),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "no cgroup v2 root (cgroup.controllers) and no cgroup v1 cpuacct and memory \
                     controllers: is the host /sys mounted?",
                ),
            });
        };
        let cpu = pick(&["cpu", "cpu,cpuacct", "cpuacct,cpu"], "cpu.shares").unwrap_or_else(|| cpuacct.clone());
        let blkio = PathBuf::from(format!("{CGROUP_ROOT}/blkio"));
        let layout = V1Layout {
            cpu,
            cpuacct,
            memory,
            blkio,
        };
        if root.exists(format!("{CGROUP_ROOT}/unified/cgroup.controllers")) {
            Ok(CgroupMode::Hybrid(layout))
        } else {
            Ok(CgroupMode::V1(layout))
        }
    }

    /// `v1`, `v2` or `hybrid`, for logs and `kinsight check`.
    pub fn name(&self) -> &'static str {
        match self {
            CgroupMode::V1(_) => "v1",
            CgroupMode::Hybrid(_) => "hybrid",
            CgroupMode::V2(_) => "v2",
        }
    }

    /// CPU counters of the cgroup at `rel` (`""` is the root cgroup), all of them.
    pub fn read_cpu(&self, root: &Root, rel: &str) -> Result<CpuStats, HostError> {
        self.read_cpu_at(root, &self.at(rel), true)
    }

    /// Memory counters of the cgroup at `rel` (`""` is the root cgroup), all of them.
    pub fn read_memory(&self, root: &Root, rel: &str) -> Result<MemoryStats, HostError> {
        self.read_memory_at(root, &self.at(rel), true)
    }

    /// The cgroup at `rel`, read by path.
    pub fn at<'a>(&'a self, rel: &'a str) -> At<'a> {
        match self {
            CgroupMode::V1(l) | CgroupMode::Hybrid(l) => At::Rel(Hierarchy::V1(l), rel),
            CgroupMode::V2(_) => At::Rel(Hierarchy::V2, rel),
        }
    }

    /// Opens the directories of the cgroup at `rel` (one on v2; the `cpuacct` and `memory`
    /// ones on v1), to read it through [`At::Held`] at every tick.
    pub fn open_dirs(&self, root: &Root, rel: &str) -> Result<CgroupDirs, HostError> {
        match self {
            CgroupMode::V1(l) | CgroupMode::Hybrid(l) => Ok(CgroupDirs::new(
                root.open_dir(join(&l.cpuacct, rel, ""))?,
                Some(root.open_dir(join(&l.memory, rel, ""))?),
            )),
            CgroupMode::V2(_) => Ok(CgroupDirs::new(
                root.open_dir(join(std::path::Path::new(CGROUP_ROOT), rel, ""))?,
                None,
            )),
        }
    }

    /// CPU counters; `full: false` skips the files only detailed fields use (v1
    /// `cpuacct.stat`: user and system time).
    pub fn read_cpu_at(&self, root: &Root, at: &At<'_>, full: bool) -> Result<CpuStats, HostError> {
        match self {
            CgroupMode::V1(_) | CgroupMode::Hybrid(_) => v1::read_cpu(root, at, full),
            CgroupMode::V2(_) => v2::read_cpu(root, at),
        }
    }

    /// Memory counters; `full: false` skips the files only detailed fields use (v1
    /// `memory.max_usage_in_bytes` and `memory.failcnt`, v2 `memory.peak` and
    /// `memory.swap.current`): those fields are then 0.
    pub fn read_memory_at(&self, root: &Root, at: &At<'_>, full: bool) -> Result<MemoryStats, HostError> {
        match self {
            CgroupMode::V1(_) | CgroupMode::Hybrid(_) => v1::read_memory(root, at, full),
            CgroupMode::V2(files) => v2::read_memory(root, at, *files, full),
        }
    }

    /// Every pod cgroup below `kubepods` / `kubepods.slice` with its container cgroups.
    /// On v1 the tree is listed in the `cpuacct` hierarchy; the
    /// `rel` paths are valid in every controller hierarchy. The layouts are in `cgroup/discover.rs`.
    pub fn list_pods(&self, root: &Root) -> Result<Vec<PodCgroup>, HostError> {
        discover::list_pods(root, self.listing_dir(), true)
    }

    /// [`Self::list_pods`] without the container cgroups (each `containers` is empty): what the
    /// default `put_metric_data` mode needs, one directory read per pod cheaper.
    pub fn list_pod_cgroups_only(&self, root: &Root) -> Result<Vec<PodCgroup>, HostError> {
        discover::list_pods(root, self.listing_dir(), false)
    }

    /// Block I/O counters of the cgroup at `rel` (`""` is the root cgroup; the `NodeDiskIO`
    /// records read only the root). v1 from the `blkio` hierarchy, v2 from `io.stat`.
    pub fn read_io(&self, root: &Root, rel: &str) -> Result<IoStats, HostError> {
        match self {
            CgroupMode::V1(l) | CgroupMode::Hybrid(l) => io::read_v1(root, &l.blkio, rel),
            CgroupMode::V2(_) => io::read_v2(root, std::path::Path::new(CGROUP_ROOT), rel),
        }
    }

    /// A PID of a process in the cgroup at `rel` or below it (a pod cgroup's own
    /// `cgroup.procs` is empty; its containers hold the processes). `None`: no process visible
    /// in this PID namespace (then use [`crate::host::pids::PidMap`]).
    pub fn first_pid(&self, root: &Root, rel: &str) -> Result<Option<u32>, HostError> {
        procs::first_pid(root, self.listing_dir(), rel)
    }

    /// The kubelet's cgroup driver, from the presence of `kubepods.slice` (systemd) or
    /// `kubepods` (cgroupfs) in the listing hierarchy; `None` without a kubelet tree.
    /// For `kinsight check` and logs; [`CgroupMode::list_pods`] walks both anyway.
    pub fn driver(&self, root: &Root) -> Option<&'static str> {
        let dir = self.listing_dir();
        if root.path(dir.join("kubepods.slice")).is_dir() {
            Some("systemd")
        } else if root.path(dir.join("kubepods")).is_dir() {
            Some("cgroupfs")
        } else {
            None
        }
    }

    /// The hierarchy pods are listed in: `cpuacct` on v1 (always mounted where CPU is read),
    /// the unified root on v2.
    fn listing_dir(&self) -> &std::path::Path {
        match self {
            CgroupMode::V1(l) | CgroupMode::Hybrid(l) => &l.cpuacct,
            CgroupMode::V2(_) => std::path::Path::new(CGROUP_ROOT),
        }
    }
}

/// Where each controller's files are, for a cgroup read by path.
#[derive(Debug, Clone, Copy)]
pub enum Hierarchy<'a> {
    V1(&'a V1Layout),
    V2,
}

/// The controller whose files are read (on v1 each has its own hierarchy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    /// `cpuacct` on v1.
    Cpu,
    Memory,
}

/// A cgroup's directories and files held open ([`CgroupMode::open_dirs`]). Each file is opened
/// at its first read, relative to its directory, and then re-read from its start at every tick
/// ([`Root::reread`]): one `pread` instead of `open` (a walk of four or five path components
/// below `/sys/fs/cgroup` on a systemd node), `read` and `close`. On a node with 737 pods that
/// is about 4 400 system calls fewer per tick.
///
/// Holding the files does not keep a removed cgroup alive: kernfs deactivates the node on
/// `rmdir`, and reads of its open files answer `ENODEV` ("not found" here).
#[derive(Debug)]
pub struct CgroupDirs {
    /// The unified directory on v2; the `cpuacct` one on v1.
    cpu: Dir,
    /// The `memory` directory on v1.
    memory: Option<Dir>,
    files: RefCell<Vec<(Controller, &'static str, std::fs::File)>>,
}

impl CgroupDirs {
    fn new(cpu: Dir, memory: Option<Dir>) -> Self {
        CgroupDirs {
            cpu,
            memory,
            files: RefCell::new(Vec::with_capacity(3)),
        }
    }

    fn read<T>(
        &self,
        root: &Root,
        ctl: Controller,
        name: &'static str,
        parse: impl FnOnce(&str) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        let dir = match (ctl, &self.memory) {
            (Controller::Memory, Some(m)) => m,
            _ => &self.cpu,
        };
        let held = self.files.borrow().iter().position(|(c, n, _)| *c == ctl && *n == name);
        let i = if let Some(i) = held {
            i
        } else {
            let file = root.open_in(dir, name)?;
            let mut files = self.files.borrow_mut();
            files.push((ctl, name, file));
            files.len() - 1
        };
        let files = self.files.borrow();
        root.reread(&files[i].2, dir, name, parse)
    }
}

/// The most descriptors one held cgroup uses: on v1 two directories (`cpuacct`, `memory`) and
/// six files (`cpuacct.usage`, `cpuacct.stat`, `memory.usage_in_bytes`, `memory.stat`,
/// `memory.max_usage_in_bytes`, `memory.failcnt`); v2 needs at most six.
pub const MAX_DESCRIPTORS_PER_CGROUP: usize = 8;

/// The directories of the cgroups read at every tick, held across ticks (see [`CgroupDirs`]).
/// A cgroup that was not seen during a tick is closed at its end; one whose read says "not
/// found" (removed) is forgotten at once. Past the budget of descriptors, cgroups are read by
/// path, with the same results.
#[derive(Debug)]
pub struct HeldDirs {
    by_rel: HashMap<String, (CgroupDirs, u64)>,
    tick: u64,
    max: usize,
}

impl HeldDirs {
    /// Holds cgroups for at most `descriptors` open descriptors, counting
    /// [`MAX_DESCRIPTORS_PER_CGROUP`] for each.
    pub fn with_budget(descriptors: usize) -> Self {
        HeldDirs {
            by_rel: HashMap::default(),
            tick: 0,
            max: descriptors / MAX_DESCRIPTORS_PER_CGROUP,
        }
    }

    /// Cgroups held now.
    pub fn len(&self) -> usize {
        self.by_rel.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_rel.is_empty()
    }

    /// Starts a tick: what is not asked for until [`HeldDirs::end_tick`] is closed then.
    pub fn begin_tick(&mut self) {
        self.tick += 1;
    }

    /// Closes the cgroups not asked for since [`HeldDirs::begin_tick`].
    pub fn end_tick(&mut self) {
        let tick = self.tick;
        self.by_rel.retain(|_, (_, seen)| *seen == tick);
    }

    /// Where to read the cgroup at `rel`: its held directories (opened now if new), or its path
    /// when they cannot be opened (it is being removed, or the budget is spent).
    pub fn at<'a>(&'a mut self, mode: &'a CgroupMode, root: &Root, rel: &'a str) -> At<'a> {
        let tick = self.tick;
        if !self.by_rel.contains_key(rel) {
            if self.by_rel.len() >= self.max {
                return mode.at(rel);
            }
            let Ok(dirs) = mode.open_dirs(root, rel) else {
                return mode.at(rel);
            };
            self.by_rel.insert(rel.to_owned(), (dirs, tick));
        }
        match self.by_rel.get_mut(rel) {
            Some((dirs, seen)) => {
                *seen = tick;
                At::Held(dirs)
            }
            None => mode.at(rel),
        }
    }

    /// Drops the cgroup at `rel` (a read through it said it is gone).
    pub fn forget(&mut self, rel: &str) {
        self.by_rel.remove(rel);
    }
}

/// A cgroup to read: by path, or through its held directories.
#[derive(Debug, Clone, Copy)]
pub enum At<'a> {
    /// `rel` below the controller's mount (`""` is the root cgroup).
    Rel(Hierarchy<'a>, &'a str),
    Held(&'a CgroupDirs),
}

impl At<'_> {
    /// Reads `file` of the cgroup for `ctl`; `parse` gets the text and the path to name in its
    /// errors (the reader reports it under the root).
    pub(crate) fn read<T>(
        &self,
        root: &Root,
        ctl: Controller,
        file: &'static str,
        parse: impl FnOnce(&str, &std::path::Path) -> Result<T, HostError>,
    ) -> Result<T, HostError> {
        match *self {
            At::Rel(h, rel) => {
                let dir = match (h, ctl) {
                    (Hierarchy::V1(l), Controller::Cpu) => l.cpuacct.as_path(),
                    (Hierarchy::V1(l), Controller::Memory) => l.memory.as_path(),
                    (Hierarchy::V2, _) => std::path::Path::new(CGROUP_ROOT),
                };
                let path = join(dir, rel, file);
                root.read_with(&path, |text| parse(text, &path))
            }
            At::Held(d) => d.read(root, ctl, file, |text| parse(text, std::path::Path::new(file))),
        }
    }

    /// Reads a file that holds one unsigned integer (`cpuacct.usage`, `memory.current`).
    pub(crate) fn read_u64(&self, root: &Root, ctl: Controller, file: &'static str) -> Result<u64, HostError> {
        self.read(root, ctl, file, crate::host::root::parse_u64)
    }

    /// The root cgroup (never held: it is read once per tick).
    pub(crate) fn is_root(&self) -> bool {
        matches!(self, At::Rel(_, rel) if rel.trim_matches('/').is_empty())
    }
}

/// CPU time consumed by a cgroup, in nanoseconds (cumulative counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CpuStats {
    pub usage_ns: u64,
    pub user_ns: Option<u64>,
    pub system_ns: Option<u64>,
}

/// Memory of a cgroup in bytes; fault counters are cumulative counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MemoryStats {
    pub usage: u64,
    /// `total_inactive_file` (v1, hierarchical) or `inactive_file` (v2).
    pub inactive_file: u64,
    pub cache: u64,
    pub rss: u64,
    pub swap: u64,
    pub mapped_file: u64,
    pub pgfault: u64,
    pub pgmajfault: u64,
    /// v1 `memory.max_usage_in_bytes`; v2 `memory.peak` (absent at the root ⇒ 0).
    pub max_usage: u64,
    /// v1 `memory.failcnt`; v2 has none ⇒ 0, as upstream writes it.
    pub failcnt: u64,
}

fn join(dir: &std::path::Path, rel: &str, file: &str) -> PathBuf {
    let rel = rel.trim_matches('/');
    match (rel.is_empty(), file.is_empty()) {
        (true, true) => dir.to_path_buf(),
        (true, false) => dir.join(file),
        (false, true) => dir.join(rel),
        (false, false) => dir.join(rel).join(file),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &std::path::Path, p: &str) {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "0\n").unwrap();
    }

    #[test]
    fn detects_each_layout() {
        let v2 = tempfile::tempdir().unwrap();
        touch(v2.path(), "sys/fs/cgroup/cgroup.controllers");
        assert_eq!(
            CgroupMode::detect(&Root::new(v2.path())).unwrap(),
            CgroupMode::V2(V2Files::ALL)
        );

        let sep = tempfile::tempdir().unwrap();
        touch(sep.path(), "sys/fs/cgroup/cpuacct/cpuacct.usage");
        touch(sep.path(), "sys/fs/cgroup/cpu/cpu.shares");
        touch(sep.path(), "sys/fs/cgroup/memory/memory.usage_in_bytes");
        let m = CgroupMode::detect(&Root::new(sep.path())).unwrap();
        assert_eq!(m.name(), "v1");
        let CgroupMode::V1(l) = m else { unreachable!() };
        assert_eq!(l.cpu, PathBuf::from("/sys/fs/cgroup/cpu"));
        assert_eq!(l.cpuacct, PathBuf::from("/sys/fs/cgroup/cpuacct"));

        touch(sep.path(), "sys/fs/cgroup/unified/cgroup.controllers");
        assert_eq!(CgroupMode::detect(&Root::new(sep.path())).unwrap().name(), "hybrid");

        let co = tempfile::tempdir().unwrap();
        touch(co.path(), "sys/fs/cgroup/cpu,cpuacct/cpuacct.usage");
        touch(co.path(), "sys/fs/cgroup/cpu,cpuacct/cpu.shares");
        touch(co.path(), "sys/fs/cgroup/memory/memory.usage_in_bytes");
        let CgroupMode::V1(l) = CgroupMode::detect(&Root::new(co.path())).unwrap() else {
            panic!("co-mounted v1 not detected")
        };
        assert_eq!(l.cpuacct, PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"));
        assert_eq!(l.cpu, l.cpuacct);
    }

    #[test]
    fn missing_mount_is_a_clear_error() {
        let empty = tempfile::tempdir().unwrap();
        let err = CgroupMode::detect(&Root::new(empty.path())).unwrap_err();
        assert!(err.is_not_found());
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(chain.contains("is the host /sys mounted?"), "{chain}");
    }

    /// Descriptors of this process open below `dir` (other tests run in parallel threads of
    /// the same process: only ours count).
    fn open_fds_below(dir: &std::path::Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| std::fs::read_link(e.path()).is_ok_and(|t| t.starts_with(dir)))
            .count()
    }

    /// Held cgroups: re-read in place, bounded by the budget, closed when not listed, dropped
    /// on "not found". Descriptors are counted in `/proc/self/fd`.
    #[test]
    fn held_dirs_reread_stay_within_budget_and_close() {
        let d = tempfile::tempdir().unwrap();
        let cg = d.path().join("sys/fs/cgroup");
        let (a, b) = ("kubepods.slice/a.slice", "kubepods.slice/b.slice");
        for rel in [a, b] {
            std::fs::create_dir_all(cg.join(rel)).unwrap();
            std::fs::write(cg.join(rel).join("cpu.stat"), "usage_usec 10\n").unwrap();
            std::fs::write(cg.join(rel).join("memory.stat"), "anon 1\ninactive_file 2\n").unwrap();
            std::fs::write(cg.join(rel).join("memory.current"), "100\n").unwrap();
        }
        let root = Root::new(d.path()).anchored();
        let mode = CgroupMode::V2(V2Files {
            memory_peak: false,
            memory_swap_current: false,
        });
        let open_fds = || open_fds_below(d.path());
        let base = open_fds();
        assert_eq!(base, 2, "the host root and the /sys/fs/cgroup anchor");
        let mut held = HeldDirs::with_budget(MAX_DESCRIPTORS_PER_CGROUP + 1);
        held.begin_tick();
        assert!(matches!(held.at(&mode, &root, a), At::Held(_)));
        assert!(matches!(held.at(&mode, &root, b), At::Rel(..)), "over budget: by path");
        let at = held.at(&mode, &root, a);
        assert_eq!(mode.read_cpu_at(&root, &at, false).unwrap().usage_ns, 10_000);
        assert_eq!(mode.read_memory_at(&root, &at, false).unwrap().usage, 100);
        held.end_tick();
        assert_eq!(held.len(), 1);
        assert_eq!(open_fds(), base + 4, "the directory and its three files");

        // Rewritten in place (as the kernel regenerates a cgroup file): the held file sees it.
        std::fs::write(cg.join(a).join("cpu.stat"), "usage_usec 25\n").unwrap();
        held.begin_tick();
        let at = held.at(&mode, &root, a);
        assert_eq!(mode.read_cpu_at(&root, &at, false).unwrap().usage_ns, 25_000);
        held.end_tick();
        assert_eq!(open_fds(), base + 4, "re-read without opening again");

        // Not listed this tick: closed at its end.
        held.begin_tick();
        held.end_tick();
        assert!(held.is_empty());
        assert_eq!(open_fds(), base);

        // Removed while held: the next file to open is not found, and the cgroup is forgotten.
        held.begin_tick();
        let at = held.at(&mode, &root, b);
        assert!(matches!(at, At::Held(_)));
        std::fs::remove_dir_all(cg.join(b)).unwrap();
        let at = held.at(&mode, &root, b);
        assert!(mode.read_cpu_at(&root, &at, false).unwrap_err().is_not_found());
        held.forget(b);
        held.end_tick();
        assert_eq!((held.len(), open_fds()), (0, base));
    }
}
