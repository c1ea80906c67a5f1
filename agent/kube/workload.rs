//! The `PodName` dimension and `kubernetes.pod_owners`, as upstream's `addPodOwnersAndPodName`
//! computes them [amazon-contributing/opentelemetry-collector-contrib:
//! `receiver/awscontainerinsightreceiver/internal/stores/podstore.go`, `internal/stores/utils.go`].
//!
//! `PodName` is a *workload* name so that one series collects the datapoints of every replica:
//! a Deployment's pods report the Deployment name, a Job's pods a name prefix. Owner references
//! are visited in order; each with a kind and a name adds a `pod_owners` entry, and the first
//! whose kind is a known controller decides `PodName`.

use serde::Serialize;

/// Characters of the random suffix Kubernetes appends to generated names
/// (`k8s.io/apimachinery/pkg/util/rand` `alphanums`: no vowels, no `0`, `1`, `3`), which the
/// Deployment controller uses for the pod-template hash of a `ReplicaSet` name.
const GENERATED_SUFFIX_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// Pods whose name starts with this report it as their `PodName` unless
/// `prefer_full_pod_name` (upstream's `kubeProxy` constant).
const KUBE_PROXY: &str = "kube-proxy";

/// One `pod_owners` entry after the rewriting (`ReplicaSet` → `Deployment`, `Job` → `CronJob` or name
/// prefix); serialises as upstream writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Owner {
    #[serde(rename = "owner_kind")]
    pub kind: String,
    #[serde(rename = "owner_name")]
    pub name: String,
}

/// One `metadata.ownerReferences` entry as the pod lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
}

/// The result of [`derive_workload`] for one pod and one `prefer_full_pod_name` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// The `PodName` dimension value.
    pub pod_name: String,
    /// `pod_owners` (empty when the pod has no owner with a kind and a name).
    pub owners: Vec<Owner>,
}

/// Computes `PodName` and `pod_owners` for the pod called `pod_name`.
///
/// `deployment_of(replica_set_name)` gives the Deployment that controls the named `ReplicaSet`
/// of the pod's namespace, when a (cached) GET said so (upstream watches every `ReplicaSet`
/// instead). It returns `None` when that is unknown or when the owner is not a Deployment; the
/// suffix rule ([`deployment_from_replica_set`]) then decides. The
/// file source has no apiserver and passes `|_| None`.
pub fn derive_workload(
    pod_name: &str,
    owner_refs: &[OwnerRef],
    prefer_full_pod_name: bool,
    deployment_of: &dyn Fn(&str) -> Option<String>,
) -> Workload {
    let mut owners = Vec::new();
    let mut workload = String::new();
    for owner in owner_refs {
        if owner.kind.is_empty() || owner.name.is_empty() {
            continue;
        }
        let (kind, name) = match owner.kind.as_str() {
            "ReplicaSet" => match deployment_of(&owner.name).or_else(|| deployment_from_replica_set(&owner.name)) {
                Some(deployment) => ("Deployment".to_string(), deployment),
                None => (owner.kind.clone(), owner.name.clone()),
            },
            "Job" => match cron_job_from_job(&owner.name) {
                Some(cron_job) => ("CronJob".to_string(), cron_job),
                None if prefer_full_pod_name => (owner.kind.clone(), owner.name.clone()),
                None => (owner.kind.clone(), job_name_prefix(&owner.name).to_string()),
            },
            _ => (owner.kind.clone(), owner.name.clone()),
        };
        // Upstream tests for an empty PodName, not for "decided": an owner whose rewritten name
        // is empty (a Job named `-x`) leaves the choice to the next owner, then to the pod name.
        if workload.is_empty() {
            match owner.kind.as_str() {
                "StatefulSet" => workload = pod_name.to_string(),
                "DaemonSet" | "Job" | "ReplicaSet" | "ReplicationController" => workload.clone_from(&name),
                _ => {}
            }
        }
        owners.push(Owner { kind, name });
    }
    if workload.is_empty() {
        workload = if pod_name.starts_with(KUBE_PROXY) && !prefer_full_pod_name {
            KUBE_PROXY.to_string()
        } else {
            pod_name.to_string()
        };
    }
    Workload {
        pod_name: workload,
        owners,
    }
}

/// The suffix rule (upstream's `parseDeploymentFromReplicaSet`): `web-7d4b9c8f5d` → `web` when
/// the last `-` suffix has at least 3 characters, all from [`GENERATED_SUFFIX_ALPHABET`].
pub fn deployment_from_replica_set(name: &str) -> Option<String> {
    let (prefix, suffix) = name.rsplit_once('-')?;
    let is_hash = suffix.len() >= 3 && suffix.chars().all(|c| GENERATED_SUFFIX_ALPHABET.contains(c));
    (is_hash && !prefix.is_empty()).then(|| prefix.to_string())
}

/// `parseCronJobFromJob`: `backup-1712345678` → `backup` when the last `-` suffix is exactly 10
/// decimal digits (the Unix-seconds names of old `CronJob` controllers).
pub fn cron_job_from_job(name: &str) -> Option<String> {
    let (prefix, suffix) = name.rsplit_once('-')?;
    let is_stamp = suffix.len() == 10 && suffix.bytes().all(|b| b.is_ascii_digit());
    (is_stamp && !prefix.is_empty()).then(|| prefix.to_string())
}

/// Upstream's `getJobNamePrefix`: the job name cut at the first `-` or `.`
/// (`container-insights-test` → `container`, `db.migrate-7` → `db`).
pub fn job_name_prefix(name: &str) -> &str {
    name.split(['-', '.']).next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(list: &[(&str, &str)]) -> Vec<OwnerRef> {
        list.iter()
            .map(|(k, n)| OwnerRef {
                kind: (*k).to_string(),
                name: (*n).to_string(),
            })
            .collect()
    }

    fn owners(list: &[(&str, &str)]) -> Vec<Owner> {
        list.iter()
            .map(|(k, n)| Owner {
                kind: (*k).to_string(),
                name: (*n).to_string(),
            })
            .collect()
    }

    /// One row of the `PodName` derivation table: owner references, pod name, the `ReplicaSet` GET
    /// answer, `prefer_full_pod_name`, then the expected `PodName` and `pod_owners`.
    struct Row {
        refs: &'static [(&'static str, &'static str)],
        pod: &'static str,
        get: Option<&'static str>,
        prefer_full: bool,
        pod_name: &'static str,
        owners: &'static [(&'static str, &'static str)],
    }

    const fn row(
        refs: &'static [(&'static str, &'static str)],
        pod: &'static str,
        get: Option<&'static str>,
        prefer_full: bool,
        pod_name: &'static str,
        owners: &'static [(&'static str, &'static str)],
    ) -> Row {
        Row {
            refs,
            pod,
            get,
            prefer_full,
            pod_name,
            owners,
        }
    }

    const NODE: &str = "ip-10-0-1-23.eu-west-1.compute.internal";
    const ETCD: &str = "etcd-ip-10-0-1-23.eu-west-1.compute.internal";

    #[test]
    #[allow(clippy::too_many_lines, reason = "one line per row of the derivation table")]
    fn pod_name_table_of_section_19_8() {
        let rows = [
            row(
                &[("ReplicaSet", "web-7d4b9c8f5d")],
                "web-7d4b9c8f5d-x7k2p",
                Some("web"),
                false,
                "web",
                &[("Deployment", "web")],
            ),
            // GET forbidden: the suffix rule.
            row(
                &[("ReplicaSet", "web-7d4b9c8f5d")],
                "web-7d4b9c8f5d-x7k2p",
                None,
                false,
                "web",
                &[("Deployment", "web")],
            ),
            row(
                &[("ReplicaSet", "api-v2-abc12")],
                "api-v2-abc12-h2x9q",
                None,
                false,
                "api-v2-abc12",
                &[("ReplicaSet", "api-v2-abc12")],
            ),
            row(
                &[("ReplicaSet", "db-x7")],
                "db-x7-k4m2n",
                None,
                false,
                "db-x7",
                &[("ReplicaSet", "db-x7")],
            ),
            // Owned by an Argo Rollout: the GET finds no Deployment; quirk: the suffix rule.
            row(
                &[("ReplicaSet", "canary-6b8c9d7f4")],
                "canary-6b8c9d7f4-q7w8e",
                None,
                false,
                "canary",
                &[("Deployment", "canary")],
            ),
            row(
                &[("DaemonSet", "aws-node")],
                "aws-node-7xk2p",
                None,
                false,
                "aws-node",
                &[("DaemonSet", "aws-node")],
            ),
            row(
                &[("StatefulSet", "cache")],
                "cache-0",
                None,
                false,
                "cache-0",
                &[("StatefulSet", "cache")],
            ),
            row(
                &[("Job", "report-28391040")],
                "report-28391040-7xkqz",
                None,
                false,
                "report",
                &[("Job", "report")],
            ),
            row(
                &[("Job", "report-28391040")],
                "report-28391040-7xkqz",
                None,
                true,
                "report-28391040",
                &[("Job", "report-28391040")],
            ),
            row(
                &[("Job", "backup-1712345678")],
                "backup-1712345678-zz9kd",
                None,
                false,
                "backup",
                &[("CronJob", "backup")],
            ),
            row(
                &[("Job", "backup-1712345678")],
                "backup-1712345678-zz9kd",
                None,
                true,
                "backup",
                &[("CronJob", "backup")],
            ),
            row(
                &[("Job", "db.migrate-7")],
                "db.migrate-7-b6x4w",
                None,
                false,
                "db",
                &[("Job", "db")],
            ),
            row(&[], "kube-proxy-x9z8w", None, false, "kube-proxy", &[]),
            row(&[], "kube-proxy-x9z8w", None, true, "kube-proxy-x9z8w", &[]),
            row(&[("Node", NODE)], ETCD, None, false, ETCD, &[("Node", NODE)]),
            row(
                &[("ReplicationController", "legacy")],
                "legacy-8gq2w",
                None,
                false,
                "legacy",
                &[("ReplicationController", "legacy")],
            ),
            row(&[], "debug", None, false, "debug", &[]),
        ];
        for (i, r) in rows.iter().enumerate() {
            let get = r.get.map(str::to_string);
            let w = derive_workload(r.pod, &refs(r.refs), r.prefer_full, &|_| get.clone());
            assert_eq!(w.pod_name, r.pod_name, "row {i}: {}", r.pod);
            assert_eq!(w.owners, owners(r.owners), "row {i}: {}", r.pod);
        }
    }

    #[test]
    fn the_first_known_controller_decides_and_every_owner_is_listed() {
        let w = derive_workload(
            "p-1",
            &refs(&[
                ("Rollout", "r"),
                ("", "no-kind"),
                ("DaemonSet", "ds"),
                ("StatefulSet", "ss"),
            ]),
            false,
            &|_| None,
        );
        assert_eq!(w.pod_name, "ds");
        assert_eq!(
            w.owners,
            owners(&[("Rollout", "r"), ("DaemonSet", "ds"), ("StatefulSet", "ss")])
        );
    }

    #[test]
    fn an_empty_rewritten_name_falls_through_to_the_pod_name() {
        let w = derive_workload("x-1", &refs(&[("Job", "-x")]), false, &|_| None);
        assert_eq!(w.pod_name, "x-1");
        assert_eq!(w.owners, owners(&[("Job", "")]));
    }

    #[test]
    fn suffix_rules() {
        assert_eq!(deployment_from_replica_set("web-7d4b9c8f5d").as_deref(), Some("web"));
        assert_eq!(deployment_from_replica_set("web-bcd").as_deref(), Some("web"));
        assert_eq!(deployment_from_replica_set("web-bc"), None);
        assert_eq!(deployment_from_replica_set("web"), None);
        assert_eq!(deployment_from_replica_set("-bcdf"), None);
        assert_eq!(deployment_from_replica_set("web-7D4b9c8f5d"), None);
        assert_eq!(cron_job_from_job("a-b-0123456789").as_deref(), Some("a-b"));
        assert_eq!(cron_job_from_job("a-012345678"), None);
        assert_eq!(job_name_prefix("container-insights-test"), "container");
        assert_eq!(job_name_prefix("plain"), "plain");
    }

    #[test]
    fn owners_serialise_as_upstream_writes_them() {
        let json = serde_json::to_string(&owners(&[("Deployment", "web")])).unwrap();
        assert_eq!(json, r#"[{"owner_kind":"Deployment","owner_name":"web"}]"#);
    }
}
