//! What the runtime says about a container, reduced to plain values, and the pods it implies:
//! pure functions, tested without containerd.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime};

use crate::kube::{ContainerInfo, ContainerState, PodInfo, PodPhase};

use prost::Message as _;

use super::client::Container;
use super::proto::containerd::events::TaskOom;
use super::proto::containerd::types::Envelope;
use super::proto::containerd::v1::types::{Process, Status};

/// The labels kubelet puts on every container it asks the runtime to create
/// (`pkg/kubelet/types/labels.go`: `KubernetesPodNameLabel`, `KubernetesPodNamespaceLabel`,
/// `KubernetesPodUIDLabel`, `KubernetesContainerNameLabel`). A sandbox carries the pod labels
/// but no container name.
pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";
pub const CONTAINER_NAME: &str = "io.kubernetes.container.name";
/// containerd's CRI plugin marks each container `sandbox` (the pause container) or `container`
/// (`containerKindLabel` in `pkg/cri/server/helpers.go`).
pub const KIND: &str = "io.cri-containerd.kind";

/// A task's state, as `Tasks.List` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TaskState {
    /// No task: created but never started, or deleted after it exited.
    #[default]
    None,
    Running,
    Stopped {
        exit_status: u32,
    },
    /// Created, paused, pausing, unknown.
    Other,
}

/// One Kubernetes container (or sandbox) as the runtime knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeContainer {
    pub id: String,
    pub pod_uid: String,
    pub pod_name: String,
    pub namespace: String,
    /// `None` for a sandbox.
    pub name: Option<String>,
    pub image: String,
    pub created_at: Option<SystemTime>,
    pub snapshotter: String,
    pub snapshot_key: String,
    pub task: TaskState,
}

impl RuntimeContainer {
    /// The container of a Kubernetes pod, `None` for anything else (a container `ctr` or
    /// another client made in the namespace, with no pod labels).
    pub fn from_container(c: &Container) -> Option<RuntimeContainer> {
        let label = |k: &str| c.labels.get(k).filter(|v| !v.is_empty()).cloned();
        let is_sandbox = c.labels.get(KIND).is_some_and(|k| k == "sandbox");
        Some(RuntimeContainer {
            id: c.id.clone(),
            pod_uid: label(POD_UID)?,
            pod_name: label(POD_NAME)?,
            namespace: label(POD_NAMESPACE)?,
            name: if is_sandbox { None } else { Some(label(CONTAINER_NAME)?) },
            image: c.image.clone(),
            created_at: c.created_at.as_ref().and_then(|t| {
                let secs = u64::try_from(t.seconds).ok()?;
                let nanos = u32::try_from(t.nanos).ok()?;
                SystemTime::UNIX_EPOCH.checked_add(Duration::new(secs, nanos))
            }),
            snapshotter: c.snapshotter.clone(),
            snapshot_key: c.snapshot_key.clone(),
            task: TaskState::None,
        })
    }

    pub fn is_sandbox(&self) -> bool {
        self.name.is_none()
    }
}

/// The `topic` label of `kinsight_runtime_events_total` for an event topic (containerd's
/// `runtime.TaskOOMEventTopic` and its siblings in `runtime/events.go`).
pub fn topic_label(topic: &str) -> &'static str {
    match topic {
        "/tasks/oom" => "oom",
        "/tasks/start" => "start",
        "/tasks/exit" => "exit",
        "/containers/create" => "create",
        "/containers/delete" => "delete",
        _ => "other",
    }
}

/// The container of an OOM event: its payload is a `TaskOOM` message
/// (`containerd.events.TaskOOM`). `None` for another or an unreadable payload.
pub fn oom_container(envelope: &Envelope) -> Option<String> {
    let any = envelope.event.as_ref()?;
    if !any.type_url.ends_with("containerd.events.TaskOOM") {
        return None;
    }
    let oom = TaskOom::decode(any.value.as_slice()).ok()?;
    (!oom.container_id.is_empty()).then_some(oom.container_id)
}

/// A task's state from its `Process` entry.
pub fn task_state(p: &Process) -> TaskState {
    match Status::try_from(p.status) {
        Ok(Status::Running) => TaskState::Running,
        Ok(Status::Stopped) => TaskState::Stopped {
            exit_status: p.exit_status,
        },
        _ => TaskState::Other,
    }
}

/// The containers of `list` that belong to pods, with their task states from `tasks`, by id.
pub fn join(list: &[Container], tasks: &[Process]) -> HashMap<String, RuntimeContainer> {
    let states: HashMap<&str, TaskState> = tasks
        .iter()
        .filter(|p| p.id.is_empty() || p.id == p.container_id)
        .map(|p| (p.container_id.as_str(), task_state(p)))
        .collect();
    list.iter()
        .filter_map(RuntimeContainer::from_container)
        .map(|mut c| {
            c.task = states.get(c.id.as_str()).copied().unwrap_or_default();
            (c.id.clone(), c)
        })
        .collect()
}

/// The state kubelet would report for a container from its task.
fn container_state(t: TaskState) -> ContainerState {
    match t {
        TaskState::Running => ContainerState::Running,
        TaskState::Stopped { exit_status } => ContainerState::Terminated {
            reason: None,
            exit_code: i32::try_from(exit_status).ok(),
        },
        TaskState::None | TaskState::Other => ContainerState::Waiting { reason: None },
    }
}

/// The pods the runtime's containers imply, in pod UID order. The runtime knows names,
/// container ids, images and states; not owners, labels, requests or limits, so `PodName` is the
/// pod's own name (a Deployment's pod keeps its suffixes) and resource fields stay unset.
///
/// A pod is `Running` while one of its containers runs, `Pending` while it has a sandbox and no
/// running container, and `Succeeded`/`Failed` when every container stopped (by exit status).
/// Of several containers with one name (restarts keep the old one until kubelet removes it),
/// the newest is the pod's container; older ones still resolve their ids (as init containers
/// do), so that the cgroup of an exited container is still named.
pub fn pods<'a>(containers: impl IntoIterator<Item = &'a RuntimeContainer>) -> Vec<PodInfo> {
    let mut by_pod: BTreeMap<&str, Vec<&RuntimeContainer>> = BTreeMap::new();
    for c in containers {
        by_pod.entry(c.pod_uid.as_str()).or_default().push(c);
    }
    by_pod
        .into_values()
        .filter_map(|mut cs| {
            // Newest first, ties by id so the result does not depend on hash order.
            cs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| a.id.cmp(&b.id)));
            let first = *cs.first()?;
            let mut containers: Vec<ContainerInfo> = Vec::new();
            let mut older: Vec<ContainerInfo> = Vec::new();
            for c in cs.iter().filter(|c| !c.is_sandbox()) {
                let name = c.name.clone().unwrap_or_default();
                let info = ContainerInfo {
                    name: name.clone(),
                    id: Some(c.id.clone()),
                    runtime: Some("containerd".to_string()),
                    has_status: true,
                    image: (!c.image.is_empty()).then(|| c.image.clone()),
                    state: container_state(c.task),
                    ..ContainerInfo::default()
                };
                if containers.iter().any(|k| k.name == name) {
                    older.push(ContainerInfo {
                        has_status: false,
                        is_init: true,
                        ..info
                    });
                } else {
                    containers.push(info);
                }
            }
            containers.sort_by(|a, b| a.name.cmp(&b.name));
            let running = containers.iter().any(|c| c.state.is_running());
            let stopped: Vec<&ContainerState> = containers
                .iter()
                .map(|c| &c.state)
                .filter(|s| matches!(s, ContainerState::Terminated { .. }))
                .collect();
            let phase = if running {
                PodPhase::Running
            } else if !containers.is_empty() && stopped.len() == containers.len() {
                let failed = stopped
                    .iter()
                    .any(|s| matches!(s, ContainerState::Terminated { exit_code, .. } if *exit_code != Some(0)));
                if failed { PodPhase::Failed } else { PodPhase::Succeeded }
            } else {
                PodPhase::Pending
            };
            Some(PodInfo {
                uid: first.pod_uid.clone(),
                name: first.pod_name.clone(),
                namespace: first.namespace.clone(),
                node_name: None,
                phase,
                workload_name: first.pod_name.clone(),
                owners: Vec::new(),
                workload_name_preferring_full: first.pod_name.clone(),
                owners_preferring_full: Vec::new(),
                labels: BTreeMap::new(),
                host_network: false,
                mirror_of: None,
                log_exclusions: Vec::new(),
                annotations: BTreeMap::new(),
                containers,
                init_containers: older,
                service: None,
                ready: None,
                scheduled: None,
                metrics_endpoint: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(id: &str, labels: &[(&str, &str)], created_secs: i64) -> Container {
        Container {
            id: id.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect(),
            image: "docker.io/library/busybox:latest".to_string(),
            snapshotter: "overlayfs".to_string(),
            snapshot_key: id.to_string(),
            created_at: Some(prost_types::Timestamp {
                seconds: created_secs,
                nanos: 0,
            }),
            ..Container::default()
        }
    }

    fn labelled(id: &str, uid: &str, name: Option<&str>, created: i64) -> Container {
        let mut labels = vec![
            (POD_NAME, "web-0"),
            (POD_NAMESPACE, "shop"),
            (POD_UID, uid),
            (KIND, if name.is_some() { "container" } else { "sandbox" }),
        ];
        if let Some(n) = name {
            labels.push((CONTAINER_NAME, n));
        }
        container(id, &labels, created)
    }

    fn task(id: &str, status: Status, exit_status: u32) -> Process {
        Process {
            container_id: id.to_string(),
            id: id.to_string(),
            status: status as i32,
            exit_status,
            ..Process::default()
        }
    }

    #[test]
    fn only_containers_with_the_pod_labels_are_kept() {
        let plain = container("x", &[], 1);
        assert_eq!(RuntimeContainer::from_container(&plain), None);
        // A container without its container name is not a Kubernetes container.
        let no_name = container("y", &[(POD_NAME, "p"), (POD_NAMESPACE, "n"), (POD_UID, "u")], 1);
        assert_eq!(RuntimeContainer::from_container(&no_name), None);
        // An empty label counts as absent.
        let empty = container(
            "z",
            &[
                (POD_NAME, ""),
                (POD_NAMESPACE, "n"),
                (POD_UID, "u"),
                (CONTAINER_NAME, "c"),
            ],
            1,
        );
        assert_eq!(RuntimeContainer::from_container(&empty), None);
        let sandbox = RuntimeContainer::from_container(&labelled("s", "u1", None, 1)).unwrap();
        assert!(sandbox.is_sandbox());
        let app = RuntimeContainer::from_container(&labelled("a", "u1", Some("app"), 1_700_000_000)).unwrap();
        assert_eq!(app.name.as_deref(), Some("app"));
        assert_eq!(
            app.created_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        // A negative timestamp (malformed) is no start time, never a panic.
        let mut odd = labelled("o", "u1", Some("app"), -5);
        odd.created_at.as_mut().unwrap().nanos = -1;
        assert_eq!(RuntimeContainer::from_container(&odd).unwrap().created_at, None);
    }

    #[test]
    fn pods_group_containers_with_their_states_and_phase() {
        let list = [
            labelled("s1", "u1", None, 1),
            labelled("a1", "u1", Some("app"), 2),
            labelled("b1", "u1", Some("sidecar"), 2),
            labelled("s2", "u2", None, 1),
            labelled("a2", "u2", Some("job"), 2),
            labelled("s3", "u3", None, 1),
            container("other", &[], 1),
        ];
        let tasks = [
            task("s1", Status::Running, 0),
            task("a1", Status::Running, 0),
            task("b1", Status::Stopped, 137),
            task("s2", Status::Running, 0),
            task("a2", Status::Stopped, 0),
            // An exec process is not the container's state.
            Process {
                container_id: "a2".to_string(),
                id: "exec-1".to_string(),
                status: Status::Running as i32,
                ..Process::default()
            },
        ];
        let joined = join(&list, &tasks);
        assert_eq!(joined.len(), 6, "the container without pod labels is left out");
        let pods = pods(joined.values());
        let uids: Vec<&str> = pods.iter().map(|p| p.uid.as_str()).collect();
        assert_eq!(uids, ["u1", "u2", "u3"]);
        let p1 = &pods[0];
        assert_eq!((p1.name.as_str(), p1.namespace.as_str()), ("web-0", "shop"));
        assert_eq!(p1.pod_name(false), "web-0");
        assert_eq!(p1.phase, PodPhase::Running);
        let names: Vec<&str> = p1.containers.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["app", "sidecar"]);
        assert_eq!(p1.containers[0].id.as_deref(), Some("a1"));
        assert_eq!(p1.containers[0].runtime.as_deref(), Some("containerd"));
        assert_eq!(p1.containers[0].state, ContainerState::Running);
        assert_eq!(
            p1.containers[1].state,
            ContainerState::Terminated {
                reason: None,
                exit_code: Some(137)
            }
        );
        assert_eq!(p1.number_of_running_containers(), 1);
        // No requests or limits: the runtime does not know them.
        assert_eq!(p1.resources(None), crate::kube::PodResources::default());
        assert_eq!(pods[1].phase, PodPhase::Succeeded);
        // A sandbox alone: the pod exists, no container started yet.
        assert_eq!(pods[2].phase, PodPhase::Pending);
        assert!(pods[2].containers.is_empty());
    }

    #[test]
    fn oom_events_name_their_container_and_other_payloads_do_not() {
        let envelope = |type_url: &str, value: Vec<u8>| Envelope {
            topic: "/tasks/oom".to_string(),
            namespace: "k8s.io".to_string(),
            event: Some(prost_types::Any {
                type_url: type_url.to_string(),
                value,
            }),
            ..Envelope::default()
        };
        let oom = TaskOom {
            container_id: "abc".to_string(),
        }
        .encode_to_vec();
        assert_eq!(
            oom_container(&envelope("containerd.events.TaskOOM", oom.clone())),
            Some("abc".to_string())
        );
        assert_eq!(oom_container(&envelope("containerd.events.TaskExit", oom)), None);
        assert_eq!(
            oom_container(&envelope("containerd.events.TaskOOM", vec![0xff, 0xff, 0xff])),
            None
        );
        assert_eq!(oom_container(&Envelope::default()), None);
        assert_eq!(topic_label("/tasks/oom"), "oom");
        assert_eq!(topic_label("/tasks/paused"), "other");
    }

    #[test]
    fn a_restarted_container_is_the_newest_and_the_old_id_still_resolves() {
        let list = [
            labelled("old", "u1", Some("app"), 10),
            labelled("new", "u1", Some("app"), 20),
        ];
        let tasks = [task("old", Status::Stopped, 137), task("new", Status::Running, 0)];
        let pods = pods(join(&list, &tasks).values());
        let p = &pods[0];
        assert_eq!(p.containers.len(), 1);
        assert_eq!(p.containers[0].id.as_deref(), Some("new"));
        assert_eq!(p.number_of_containers(), 1);
        assert_eq!(p.init_containers.len(), 1);
        assert_eq!(p.init_containers[0].id.as_deref(), Some("old"));
        assert_eq!(p.phase, PodPhase::Running);
    }
}
