//! A synthetic EKS node for benchmarks and load tests: a cgroup v2 tree (systemd driver,
//! containerd scopes), host `/proc` files, and the matching `PodList`, for N pods with
//! C containers each. Counters advance with [`Node::advance`] so rates are non-trivial.

#![allow(dead_code, reason = "each bench or test includes this file and uses part of it")]

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Node {
    pub root: PathBuf,
    pub pods: usize,
    pub containers: usize,
    tick: u64,
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().expect("absolute path")).expect("mkdir");
    fs::write(path, text).expect("write");
}

pub fn pod_uid(i: usize) -> String {
    format!("7e570000-0000-4000-8000-{i:012x}")
}

pub fn container_id(pod: usize, c: usize) -> String {
    format!("{:064x}", (pod as u128) << 16 | c as u128 | 1 << 100)
}

fn pod_dir(root: &Path, i: usize) -> PathBuf {
    let uid = pod_uid(i).replace('-', "_");
    root.join(format!(
        "sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice"
    ))
}

fn pid(pod: usize, c: usize) -> usize {
    1000 + pod * 8 + c
}

const NET_DEV_HEAD: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

fn net_dev(rx: u64, tx: u64) -> String {
    let mut s = String::from(NET_DEV_HEAD);
    let _ = writeln!(s, "    lo: {rx} 10 0 0 0 0 0 0 {tx} 10 0 0 0 0 0 0");
    let _ = writeln!(s, "  eth0: {rx} 100 0 1 0 0 0 0 {tx} 90 0 2 0 0 0 0");
    s
}

impl Node {
    /// Builds the tree under `root` (use a tmpfs directory for benchmarks).
    pub fn create(root: &Path, pods: usize, containers: usize) -> Node {
        let node = Node {
            root: root.to_path_buf(),
            pods,
            containers,
            tick: 0,
        };
        let mut cpuinfo = String::new();
        for i in 0..8 {
            let _ = write!(cpuinfo, "processor\t: {i}\nmodel name\t: synthetic\n\n");
        }
        write(&root.join("proc/cpuinfo"), &cpuinfo);
        write(
            &root.join("proc/meminfo"),
            "MemTotal:       32505856 kB\nMemFree:        1000000 kB\n",
        );
        write(&root.join("proc/sys/kernel/hostname"), "ip-10-0-0-1.ec2.internal\n");
        write(
            &root.join("sys/fs/cgroup/cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids\n",
        );
        write(&root.join("proc/podlist.json"), &node.pod_list());
        node.write_counters();
        node
    }

    /// The `PodList` for `--pods-file`, as `kubectl get pods -o json` prints it.
    pub fn pod_list_path(&self) -> PathBuf {
        self.root.join("proc/podlist.json")
    }

    fn pod_list(&self) -> String {
        let mut items = Vec::with_capacity(self.pods);
        for p in 0..self.pods {
            let containers: Vec<_> = (0..self.containers)
                .map(|c| {
                    serde_json::json!({"name": format!("c{c}"), "resources": {
                        "requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}})
                })
                .collect();
            let statuses: Vec<_> = (0..self.containers)
                .map(|c| {
                    serde_json::json!({"name": format!("c{c}"), "containerID": format!("containerd://{}", container_id(p, c)),
                        "restartCount": 0, "ready": true, "state": {"running": {"startedAt": "2026-11-28T00:00:00Z"}}})
                })
                .collect();
            items.push(serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": format!("web-7d4b9c8f6d-{p:05x}"), "namespace": format!("ns{}", p % 10),
                    "uid": pod_uid(p), "labels": {"app": "web"},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c8f6d",
                        "uid": "00000000-0000-0000-0000-000000000001", "controller": true}]},
                "spec": {"nodeName": "ip-10-0-0-1.ec2.internal", "containers": containers},
                "status": {"phase": "Running", "qosClass": "Burstable", "containerStatuses": statuses}
            }));
        }
        serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items}).to_string()
    }

    /// Moves every counter forward, as a busy node would between two ticks.
    pub fn advance(&mut self) {
        self.tick += 1;
        self.write_counters();
    }

    fn write_counters(&self) {
        let t = self.tick;
        let cg = self.root.join("sys/fs/cgroup");
        write(
            &cg.join("cpu.stat"),
            &format!(
                "usage_usec {}\nuser_usec {}\nsystem_usec {}\n",
                9_000_000 * (t + 1),
                6_000_000 * (t + 1),
                3_000_000 * (t + 1)
            ),
        );
        write(&cg.join("memory.stat"), &memory_stat(8 << 30, t));
        write(
            &cg.join("io.stat"),
            &format!(
                "259:0 rbytes={} wbytes={} rios={} wios={} dbytes=0 dios=0\n",
                4096 * t,
                8192 * t,
                t,
                2 * t
            ),
        );
        write(&self.root.join("proc/1/net/dev"), &net_dev(1_000_000 * t, 500_000 * t));
        for p in 0..self.pods {
            let dir = pod_dir(&self.root, p);
            write(
                &dir.join("cpu.stat"),
                &format!(
                    "usage_usec {}\nuser_usec {}\nsystem_usec {}\n",
                    30_000 * (t + 1),
                    20_000 * (t + 1),
                    10_000 * (t + 1)
                ),
            );
            write(&dir.join("memory.current"), &format!("{}\n", 100 << 20));
            write(&dir.join("memory.stat"), &memory_stat(100 << 20, t));
            write(&dir.join("cgroup.procs"), "");
            for c in 0..self.containers {
                let scope = dir.join(format!("cri-containerd-{}.scope", container_id(p, c)));
                write(
                    &scope.join("cpu.stat"),
                    &format!(
                        "usage_usec {}\nuser_usec {}\nsystem_usec {}\n",
                        10_000 * (t + 1),
                        7_000 * (t + 1),
                        3_000 * (t + 1)
                    ),
                );
                write(&scope.join("memory.current"), &format!("{}\n", 30 << 20));
                write(&scope.join("memory.stat"), &memory_stat(30 << 20, t));
                write(&scope.join("cgroup.procs"), &format!("{}\n", pid(p, c)));
                let proc_dir = self.root.join(format!("proc/{}", pid(p, c)));
                if t == 0 {
                    let uid = pod_uid(p).replace('-', "_");
                    let id = container_id(p, c);
                    write(
                        &proc_dir.join("cgroup"),
                        &format!(
                            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid}.slice/cri-containerd-{id}.scope\n"
                        ),
                    );
                }
                if c == 0 {
                    write(&proc_dir.join("net/dev"), &net_dev(10_000 * t, 5_000 * t));
                }
            }
        }
    }
}

fn memory_stat(usage: u64, t: u64) -> String {
    format!(
        "anon {}\nfile {}\nkernel 0\nfile_mapped 4096\ninactive_file {}\nactive_file 0\npgfault {}\npgmajfault {}\n",
        usage / 2,
        usage / 2,
        usage / 4,
        1000 * t,
        t
    )
}
