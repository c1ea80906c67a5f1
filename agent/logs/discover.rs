//! Finding the log files of the node: container logs below the pod logs directory, their
//! `/var/log/containers` names, the configured host files and the `collect_list` files. Every
//! listing and link read is confined to the host root ([`ConfinedRoot`]); a
//! `/var/log/containers` link is matched against the pod-log path it must name, never followed.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::host::confined::{ConfinedError, ConfinedRoot, FileKind};

use super::collect::CollectRule;
use super::route::{ContainerFile, symlink_target};

/// One source found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Below the host root, without a leading `/`.
    pub rel: PathBuf,
    /// The inode the directory listed (to tell a renamed, tracked file from a new one without
    /// opening it).
    pub ino: u64,
    pub what: What,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Container {
        file: ContainerFile,
        /// `N.log.<timestamp>`: renamed by kubelet's rotation.
        rotated: bool,
        /// The `/var/log/containers` basename that names this container's current file.
        basename: Option<String>,
    },
    /// `messages`, `secure`, `dmesg`, … (the file name of a configured host file).
    Host { name: String },
    /// A file of `collect_list` entry `entry`. `newest`: the one to collect; without
    /// `publish_multi_logs` the other matches are collected only to finish what a checkpoint
    /// says was not read to its end.
    Collected { entry: usize, newest: bool },
}

/// Where to look, relative to the host root.
#[derive(Debug, Clone)]
pub struct Places {
    /// `kinsight.paths.pod_logs_dir` as configured (absolute): symlink targets name it.
    pub pod_logs_dir: String,
    pub container_logs_dir: String,
    pub host_files: Vec<PathBuf>,
    /// The `collect_list` entries, by index.
    pub collect: Vec<Arc<CollectRule>>,
}

fn rel(abs: &Path) -> PathBuf {
    abs.strip_prefix("/").unwrap_or(abs).to_path_buf()
}

/// What one scan found, and what could not be read (reported by the caller once per path).
#[derive(Debug, Default)]
pub struct Scan {
    pub found: Vec<Found>,
    /// `N.log.<timestamp>.gz` files kubelet compressed: never sources, but where a file a
    /// checkpoint says was not finished may be found again after a restart.
    pub gzipped: Vec<PathBuf>,
    pub errors: Vec<ConfinedError>,
    /// The directories where a new source would appear (below the root, sorted, no duplicates):
    /// what the pipeline watches with inotify between scans.
    pub dirs: Vec<PathBuf>,
}

/// Lists every source. A missing directory is not an error (a node without pods).
pub fn scan(root: &ConfinedRoot, places: &Places) -> Scan {
    let mut out = Scan::default();
    let names = symlink_names(root, places, &mut out.errors);
    out.dirs.push(rel(Path::new(&places.container_logs_dir)));
    let pods = rel(Path::new(&places.pod_logs_dir));
    out.dirs.push(pods.clone());
    for pod_dir in list(root, &pods, &mut out.errors) {
        if pod_dir.kind != FileKind::Directory && pod_dir.kind != FileKind::Unknown {
            continue;
        }
        let pod_rel = pods.join(&pod_dir.name);
        out.dirs.push(pod_rel.clone());
        for c in list(root, &pod_rel, &mut out.errors) {
            if c.kind != FileKind::Directory && c.kind != FileKind::Unknown {
                continue;
            }
            let c_rel = pod_rel.join(&c.name);
            out.dirs.push(c_rel.clone());
            for f in list(root, &c_rel, &mut out.errors) {
                // Regular files only; a planted FIFO, device or symlink is not even opened.
                if f.kind != FileKind::Regular && f.kind != FileKind::Unknown {
                    continue;
                }
                let below = format!(
                    "{}/{}/{}",
                    pod_dir.name.to_string_lossy(),
                    c.name.to_string_lossy(),
                    f.name.to_string_lossy()
                );
                if let Some(plain) = below.strip_suffix(".gz")
                    && matches!(ContainerFile::parse(plain), Some((_, true)))
                {
                    out.gzipped.push(c_rel.join(&f.name));
                    continue;
                }
                let Some((file, rotated)) = ContainerFile::parse(&below) else {
                    continue;
                };
                let basename = names.get(&key(&file)).cloned();
                out.found.push(Found {
                    rel: c_rel.join(&f.name),
                    ino: f.ino,
                    what: What::Container {
                        file,
                        rotated,
                        basename,
                    },
                });
            }
        }
    }
    for h in &places.host_files {
        let r = rel(h);
        let (Some(parent), Some(name)) = (r.parent(), r.file_name()) else {
            continue;
        };
        out.dirs.push(parent.to_path_buf());
        let entries = list(root, parent, &mut Vec::new());
        if let Some(e) = entries.iter().find(|e| e.name == name) {
            out.found.push(Found {
                rel: r.clone(),
                ino: e.ino,
                what: What::Host {
                    name: name.to_string_lossy().into_owned(),
                },
            });
        }
    }
    for rule in &places.collect {
        let files = rule.find(root, &mut out.errors);
        out.dirs.push(rule.prefix_dir());
        out.dirs
            .extend(files.iter().filter_map(|(f, _)| f.parent().map(Path::to_path_buf)));
        // Without `publish_multi_logs`, only the most recently modified match (the agent's
        // `getTargetFiles`); a file that cannot be opened now is left to the tailer to report.
        let newest = if rule.publish_multi_logs || files.len() < 2 {
            None
        } else {
            files
                .iter()
                .filter_map(|(rel, ino)| Some((modified(root, rel)?, *ino)))
                .max()
                .map(|(_, ino)| ino)
        };
        for (rel, ino) in files {
            out.found.push(Found {
                rel,
                ino,
                what: What::Collected {
                    entry: rule.index,
                    newest: newest.is_none_or(|n| n == ino),
                },
            });
        }
    }
    out.dirs.sort();
    out.dirs.dedup();
    out
}

fn modified(root: &ConfinedRoot, rel: &Path) -> Option<std::time::SystemTime> {
    root.open_file(rel).ok()?.file().metadata().ok()?.modified().ok()
}

type Key = (String, String, String, String, u32);

fn key(f: &ContainerFile) -> Key {
    (
        f.namespace.clone(),
        f.pod_name.clone(),
        f.pod_uid.clone(),
        f.container.clone(),
        f.restart,
    )
}

/// `/var/log/containers` names by the container file their link names.
fn symlink_names(root: &ConfinedRoot, places: &Places, errors: &mut Vec<ConfinedError>) -> HashMap<Key, String> {
    let dir = rel(Path::new(&places.container_logs_dir));
    let mut names = HashMap::new();
    for e in list(root, &dir, errors) {
        if e.kind != FileKind::Symlink && e.kind != FileKind::Unknown {
            continue;
        }
        let Ok(target) = root.read_link_target(&dir.join(&e.name)) else {
            continue;
        };
        if let Some(f) = symlink_target(&target.to_string_lossy(), &places.pod_logs_dir) {
            names.insert(key(&f), e.name.to_string_lossy().into_owned());
        }
    }
    names
}

/// The entries of `dir`; one that is not there (yet), or is not a directory after all
/// (`ENOTDIR`, for an entry whose kind the directory did not report), is empty, not an error.
pub(super) fn list(
    root: &ConfinedRoot,
    dir: &Path,
    errors: &mut Vec<ConfinedError>,
) -> Vec<crate::host::confined::DirEntry> {
    match root.read_dir_entries(dir) {
        Ok(v) => v,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn places() -> Places {
        Places {
            pod_logs_dir: "/var/log/pods".into(),
            container_logs_dir: "/var/log/containers".into(),
            host_files: vec!["/var/log/messages".into(), "/var/log/secure".into()],
            collect: Vec::new(),
        }
    }

    #[test]
    fn finds_container_files_their_names_and_host_files_and_nothing_planted() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let c = r.join("var/log/pods/shop_web-1_uid-1/web");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(c.join("0.log"), "x\n").unwrap();
        std::fs::write(c.join("0.log.20260105-101112"), "y\n").unwrap();
        std::fs::write(c.join("0.log.20260105-101000.gz"), "z").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", c.join("1.log")).unwrap();
        std::fs::create_dir_all(r.join("var/log/containers")).unwrap();
        std::os::unix::fs::symlink(
            "/var/log/pods/shop_web-1_uid-1/web/0.log",
            r.join(format!("var/log/containers/web-1_shop_web-{ID}.log")),
        )
        .unwrap();
        std::os::unix::fs::symlink("/etc/shadow", r.join("var/log/containers/evil_ns_c-x.log")).unwrap();
        std::fs::write(r.join("var/log/messages"), "m\n").unwrap();
        let root = ConfinedRoot::open(r).unwrap();
        let s = scan(&root, &places());
        let mut rels: Vec<String> = s.found.iter().map(|f| f.rel.display().to_string()).collect();
        rels.sort();
        assert_eq!(
            rels,
            [
                "var/log/messages",
                "var/log/pods/shop_web-1_uid-1/web/0.log",
                "var/log/pods/shop_web-1_uid-1/web/0.log.20260105-101112",
            ]
        );
        for f in &s.found {
            if let What::Container { basename, .. } = &f.what {
                assert_eq!(basename.as_deref(), Some(format!("web-1_shop_web-{ID}.log").as_str()));
            }
        }
        assert!(s.errors.is_empty(), "{:?}", s.errors);
    }

    #[test]
    fn a_node_without_pods_finds_nothing_and_reports_nothing() {
        let t = tempfile::tempdir().unwrap();
        let root = ConfinedRoot::open(t.path()).unwrap();
        let s = scan(&root, &places());
        assert!(s.found.is_empty() && s.errors.is_empty());
    }
}
