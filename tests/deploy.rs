//! The deployment against the agent: `manifests/` (the kustomize base and its render
//! `manifests/kinsight.yaml`), the `Dockerfile` and the dashboard.
//!
//! - Every Kubernetes manifest parses into the `k8s-openapi` types, and re-serialised it equals
//!   its input: a misspelt or misplaced field (which the types would silently drop) fails.
//! - `kubectl kustomize manifests/` renders, and `manifests/kinsight.yaml` holds the same objects
//!   in the same order (compared as parsed values, so a newer or older kubectl's formatting does
//!   not matter).
//! - The DaemonSet's arguments, mounts, environment, port, probes and grace period agree with the
//!   agent's code; the agent started with exactly those arguments and that environment, on a
//!   fixture node laid out as the mounts lay it out, passes `kinsight check` apart from AWS.
//! - The RBAC rules are exactly the agreed ones.
//! - The Dockerfile cannot be built here (no engine, no registry): what can be proved without
//!   building is (its parser is below: no Dockerfile linter or daemonless builder is packaged
//!   for Debian, and Debian's `buildah` would need the base images from their registries).
//! - The dashboard names only (metric, dimension set) pairs kinsight declares.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, Container, Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use support::{kinsight, repo, run};

// ---------------------------------------------------------------------------------------------
// Reading the manifests

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Every document of a YAML stream (JSON is YAML), as JSON values; empty documents skipped.
fn yaml_docs(text: &str, what: &str) -> Vec<Value> {
    use serde::Deserialize as _;
    serde_norway::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{what}: not YAML: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

/// The kustomization's resources, in its order.
fn kustomization_resources() -> Vec<String> {
    let [k] = yaml_docs(&read("manifests/kustomization.yaml"), "kustomization.yaml")
        .try_into()
        .expect("one kustomization document");
    k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// Every object of the base, file by file, in the kustomization's order.
fn base_objects() -> Vec<Value> {
    kustomization_resources()
        .iter()
        .flat_map(|r| yaml_docs(&read(&format!("manifests/{r}")), r))
        .collect()
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the base"))
}

/// `value` parsed into `T` and serialised again must give `value` back: `k8s-openapi` ignores
/// fields it does not know, so a field that is not part of the API (a typo, a wrong level) would
/// otherwise vanish silently, as the apiserver's non-strict decoding would drop it.
fn strict<T: DeserializeOwned + Serialize>(value: &Value) -> T {
    let what = format!("{} {}", value["kind"], value["metadata"]["name"]);
    let typed: T = serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    assert!(
        &back == value,
        "{what}: fields the Kubernetes API does not have (or of the wrong type) — \
         the manifest:\n{}\nas the API types read it:\n{}",
        serde_json::to_string_pretty(value).unwrap(),
        serde_json::to_string_pretty(&back).unwrap()
    );
    typed
}

fn check<T: DeserializeOwned + Serialize>(object: &Value) {
    let _: T = strict(object);
}

fn parse_strictly(object: &Value) {
    let api = (
        object["apiVersion"].as_str().unwrap_or(""),
        object["kind"].as_str().unwrap_or(""),
    );
    match api {
        ("v1", "Namespace") => check::<Namespace>(object),
        ("v1", "ServiceAccount") => check::<ServiceAccount>(object),
        ("v1", "ConfigMap") => check::<ConfigMap>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => check::<ClusterRole>(object),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => check::<ClusterRoleBinding>(object),
        ("rbac.authorization.k8s.io/v1", "Role") => check::<Role>(object),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => check::<RoleBinding>(object),
        ("apps/v1", "DaemonSet") => check::<DaemonSet>(object),
        ("networking.k8s.io/v1", "NetworkPolicy") => check::<NetworkPolicy>(object),
        other => panic!("{other:?}: a kind this test does not know; add it here"),
    }
}

fn daemon_set() -> DaemonSet {
    strict(find(&base_objects(), "DaemonSet", "kinsight"))
}

fn container(ds: &DaemonSet) -> Container {
    let pod = ds.spec.as_ref().unwrap().template.spec.clone().unwrap();
    let [c] = pod.containers.try_into().expect("one container");
    c
}

// ---------------------------------------------------------------------------------------------
// Kubernetes manifests

#[test]
fn every_manifest_parses_into_the_kubernetes_types_with_no_unknown_field() {
    let objects = base_objects();
    assert!(objects.len() >= 9, "{} objects", objects.len());
    for o in &objects {
        parse_strictly(o);
        assert!(
            o["kind"] == "Namespace" || o["kind"] == "ClusterRole" || o["kind"] == "ClusterRoleBinding" || {
                o["metadata"]["namespace"] == "amazon-cloudwatch"
            },
            "{} {}: every namespaced object is in amazon-cloudwatch",
            o["kind"],
            o["metadata"]["name"]
        );
    }
    for o in yaml_docs(&read("manifests/kinsight.yaml"), "kinsight.yaml") {
        parse_strictly(&o);
    }
}

/// Files in `manifests/` that are not Kubernetes objects.
const NOT_KUBERNETES: [&str; 6] = [
    "kustomization.yaml",
    "kinsight.yaml",
    "iam-policy.json",
    "iam-policy-optional.json",
    "pod-identity-trust-policy.json",
    "dashboard.json",
];

#[test]
fn the_kustomization_lists_every_kubernetes_manifest() {
    let listed: BTreeSet<String> = kustomization_resources().into_iter().collect();
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(repo("manifests")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if !NOT_KUBERNETES.contains(&name.as_str()) {
            files.insert(name);
        }
    }
    assert_eq!(
        listed, files,
        "manifests/kustomization.yaml resources vs the files in manifests/"
    );
}

/// kubectl, or `None` after saying why the test skips (a failure under CI: scripts/test-env.sh
/// installs it).
fn kubectl() -> Option<PathBuf> {
    for dir in ["/usr/local/bin", "/usr/bin", "/bin"] {
        let p = Path::new(dir).join("kubectl");
        if p.exists() {
            return Some(p);
        }
    }
    assert!(
        !support::in_ci(),
        "kubectl is missing under CI=true: scripts/test-env.sh installs it"
    );
    support::skip("kubectl not found (scripts/test installs Debian's kubernetes-client)");
    None
}

#[test]
fn kubectl_kustomize_renders_the_base_and_kinsight_yaml_is_that_render() {
    let Some(kubectl) = kubectl() else { return };
    let out = Command::new(kubectl)
        .args(["kustomize", "manifests/"])
        .current_dir(repo(""))
        .env("HOME", std::env::temp_dir())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "kubectl kustomize manifests/ failed: {stderr}");
    let rendered = yaml_docs(&String::from_utf8(out.stdout).unwrap(), "kubectl kustomize");
    let file = read("manifests/kinsight.yaml");
    assert!(
        file.starts_with("# Rendered from manifests/kustomization.yaml"),
        "the header says how"
    );
    let committed = yaml_docs(&file, "manifests/kinsight.yaml");
    let names = |objs: &[Value]| -> Vec<String> {
        objs.iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap(),
                    o["metadata"]["name"].as_str().unwrap()
                )
            })
            .collect()
    };
    assert_eq!(
        names(&committed),
        names(&rendered),
        "manifests/kinsight.yaml is stale: run scripts/render-manifests"
    );
    for (c, r) in committed.iter().zip(&rendered) {
        assert_eq!(c, r, "manifests/kinsight.yaml is stale: run scripts/render-manifests");
    }
    // `kubectl apply -f` creates in file order: the namespace before what lives in it.
    assert_eq!(rendered[0]["kind"], "Namespace");
    // What kustomize renders is what the files say: nothing is added or renamed.
    let mut base = base_objects();
    let key = |o: &Value| format!("{}/{}", o["kind"], o["metadata"]["name"]);
    base.sort_by_key(key);
    let mut sorted = rendered.clone();
    sorted.sort_by_key(key);
    assert_eq!(base, sorted, "kustomize changed an object: the base transforms nothing");
}

#[test]
fn rbac_is_exactly_the_permissions_the_code_uses() {
    use kinsight::kube::rbac::{PERMISSIONS, Scope};
    use std::collections::BTreeSet;
    let objects = base_objects();
    // Every (group, resource, verb, namespace-scoped?, name) a rule grants.
    let expand =
        |rules: Vec<PolicyRule>, namespaced: bool| -> BTreeSet<(String, String, String, bool, Option<String>)> {
            let mut out = BTreeSet::new();
            for r in rules {
                for verb in &r.verbs {
                    if let Some(urls) = &r.non_resource_urls {
                        for u in urls {
                            out.insert((String::new(), u.clone(), verb.clone(), false, None));
                        }
                    }
                    for g in r.api_groups.iter().flatten() {
                        for res in r.resources.iter().flatten() {
                            match &r.resource_names {
                                Some(names) => {
                                    for n in names {
                                        out.insert((g.clone(), res.clone(), verb.clone(), namespaced, Some(n.clone())));
                                    }
                                }
                                None => {
                                    out.insert((g.clone(), res.clone(), verb.clone(), namespaced, None));
                                }
                            }
                        }
                    }
                }
            }
            out
        };
    let cluster: ClusterRole = strict(find(&objects, "ClusterRole", "kinsight"));
    let role: Role = strict(find(&objects, "Role", "kinsight-leader"));
    assert_eq!(role.metadata.namespace.as_deref(), Some("amazon-cloudwatch"));
    let mut granted = expand(cluster.rules.unwrap(), false);
    granted.extend(expand(role.rules.unwrap(), true));
    let wanted: BTreeSet<_> = PERMISSIONS
        .iter()
        .map(|p| {
            let (namespaced, name) = match p.scope {
                Scope::Cluster | Scope::NonResource => (false, None),
                Scope::OwnNamespace { name } => (true, name.map(str::to_string)),
            };
            (
                p.group.to_string(),
                p.resource.to_string(),
                p.verb.to_string(),
                namespaced,
                name,
            )
        })
        .collect();
    assert_eq!(
        granted, wanted,
        "manifests/rbac.yaml must grant exactly kube::rbac::PERMISSIONS"
    );
    // Never: secrets, nodes/proxy, or a write verb outside the Lease. The one non-resource URL is
    // the apiserver's own /metrics (the leader's control-plane scrape).
    for (group, resource, verb, _, _) in &granted {
        if resource.starts_with('/') {
            assert_eq!((resource.as_str(), verb.as_str()), ("/metrics", "get"));
            continue;
        }
        assert!(resource != "secrets" && !resource.contains('/'), "{resource}");
        if !["get", "list", "watch"].contains(&verb.as_str()) {
            assert_eq!(
                (group.as_str(), resource.as_str()),
                ("coordination.k8s.io", "leases"),
                "{verb}"
            );
        }
    }
    let sa = json!([{"kind": "ServiceAccount", "name": "kinsight", "namespace": "amazon-cloudwatch"}]);
    let crb: ClusterRoleBinding = strict(find(&objects, "ClusterRoleBinding", "kinsight"));
    assert_eq!(serde_json::to_value(&crb.subjects).unwrap(), sa);
    assert_eq!(
        (crb.role_ref.kind.as_str(), crb.role_ref.name.as_str()),
        ("ClusterRole", "kinsight")
    );
    let rb: RoleBinding = strict(find(&objects, "RoleBinding", "kinsight-leader"));
    assert_eq!(serde_json::to_value(&rb.subjects).unwrap(), sa);
    assert_eq!(rb.metadata.namespace.as_deref(), Some("amazon-cloudwatch"));
    assert_eq!(
        (rb.role_ref.kind.as_str(), rb.role_ref.name.as_str()),
        ("Role", "kinsight-leader")
    );
    // Only these four RBAC objects, so no other grant hides in another file.
    let rbac: Vec<_> = objects
        .iter()
        .filter(|o| o["apiVersion"].as_str().unwrap().starts_with("rbac."))
        .collect();
    assert_eq!(rbac.len(), 4);
}

#[test]
fn the_service_account_carries_the_irsa_annotation_placeholder() {
    let objects = base_objects();
    let sa: ServiceAccount = strict(find(&objects, "ServiceAccount", "kinsight"));
    let annotations = sa.metadata.annotations.unwrap();
    assert_eq!(
        annotations["eks.amazonaws.com/role-arn"],
        "arn:aws:iam::<account>:role/<role>"
    );
    let ds = daemon_set();
    let pod = ds.spec.unwrap().template.spec.unwrap();
    assert_eq!(pod.service_account_name.as_deref(), Some("kinsight"));
    // The Pod Identity trust policy names the same ServiceAccount.
    let trust: Value = serde_json::from_str(&read("manifests/pod-identity-trust-policy.json")).unwrap();
    let eq = &trust["Statement"][0]["Condition"]["StringEquals"];
    assert_eq!(eq["aws:RequestTag/kubernetes-service-account"], "kinsight");
    assert_eq!(eq["aws:RequestTag/kubernetes-namespace"], "amazon-cloudwatch");
}

// ---------------------------------------------------------------------------------------------
// The DaemonSet against the agent's code

/// The value after `flag` in `args`.
fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[i + 1]
}

/// The cwagentconfig.json of the ConfigMap, with the cluster name filled in as docs/deploy.md
/// says.
fn configmap_json(cluster: &str) -> String {
    let objects = base_objects();
    let cm: ConfigMap = strict(find(&objects, "ConfigMap", "cwagentconfig"));
    let data = cm.data.unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), ["cwagentconfig.json"]);
    let text = &data["cwagentconfig.json"];
    assert!(text.contains("\"{{cluster_name}}\""), "the placeholder: {text}");
    text.replace("{{cluster_name}}", cluster)
}

/// The agent's view of the ConfigMap: its settings as `run` would load them in the pod.
fn configmap_config() -> kinsight::config::Config {
    let inputs = kinsight::config::Inputs {
        host_name_fallback: "node".into(),
        ..kinsight::config::Inputs::default()
    };
    kinsight::config::load_str(&configmap_json("test-cluster"), &inputs).unwrap()
}

struct Mount {
    name: String,
    path: String,
    read_only: bool,
    host_path: Option<String>,
}

fn mounts(ds: &DaemonSet) -> Vec<Mount> {
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    container(ds)
        .volume_mounts
        .unwrap()
        .into_iter()
        .map(|m| {
            assert!(
                m.sub_path.is_none() && m.sub_path_expr.is_none(),
                "{}: no subPath",
                m.name
            );
            let v = volumes.iter().find(|v| v.name == m.name).unwrap();
            Mount {
                host_path: v.host_path.as_ref().map(|h| h.path.clone()),
                name: m.name,
                path: m.mount_path,
                read_only: m.read_only == Some(true),
            }
        })
        .collect()
}

#[test]
fn the_daemon_set_mounts_what_the_agent_reads_where_it_reads_it() {
    let ds = daemon_set();
    let c = container(&ds);
    let args = c.args.clone().unwrap();
    assert_eq!(args[0], "run");
    assert!(c.command.is_none(), "the image's entrypoint runs (Dockerfile)");
    let mounts = mounts(&ds);

    // The config: the agent's default path, in a mounted directory (reload needs the directory).
    let config = flag(&args, "--config");
    assert_eq!(config, kinsight::app::DEFAULT_CONFIG_PATH);
    let config_dir = Path::new(config).parent().unwrap().to_str().unwrap();
    let cm = mounts
        .iter()
        .find(|m| m.path == config_dir)
        .expect("the ConfigMap's mount");
    assert!(cm.read_only && cm.host_path.is_none());
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    let volume = pod.volumes.unwrap().into_iter().find(|v| v.name == cm.name).unwrap();
    assert_eq!(volume.config_map.unwrap().name, "cwagentconfig");
    assert_eq!(
        Path::new(config).file_name().unwrap(),
        "cwagentconfig.json",
        "the ConfigMap key is the file name"
    );

    // The host root: the host's / read-only, with host-to-container propagation (new mounts
    // are measured on their own filesystem).
    let host_root = flag(&args, "--host-root");
    let root = mounts.iter().find(|m| m.host_path.as_deref() == Some("/")).unwrap();
    assert_eq!(root.path, host_root);
    assert!(root.read_only);
    let root_mount = c
        .volume_mounts
        .clone()
        .unwrap()
        .into_iter()
        .find(|m| m.name == root.name)
        .unwrap();
    assert_eq!(root_mount.mount_propagation.as_deref(), Some("HostToContainer"));

    // Every other host path appears where the agent reads it: under the host root at its own
    // path. Read-only, recursively where possible, except the state directory.
    let state_dir = configmap_config().paths.state_dir;
    let state = state_dir.to_str().unwrap();
    let mut host_paths = BTreeSet::new();
    for m in mounts.iter().filter(|m| m.host_path.is_some()) {
        let hp = m.host_path.as_deref().unwrap();
        host_paths.insert(hp.to_string());
        if hp == "/" {
            continue;
        }
        assert_eq!(m.path, format!("{host_root}{hp}"), "{}: read under --host-root", m.name);
        if hp == state {
            assert!(!m.read_only, "the state directory is writable");
        } else {
            assert!(m.read_only, "{}: only the state directory is writable", m.name);
        }
    }
    let want: BTreeSet<String> = ["/", "/sys", "/var/log", "/run/containerd/containerd.sock", state]
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(host_paths, want);
    let writable: Vec<&str> = mounts
        .iter()
        .filter(|m| !m.read_only)
        .map(|m| m.path.as_str())
        .collect();
    assert_eq!(writable, [format!("{host_root}{state}")], "one writable mount");
    for m in c.volume_mounts.unwrap() {
        if m.name == "sys" || m.name == "varlog" {
            assert_eq!(m.recursive_read_only.as_deref(), Some("IfPossible"), "{}", m.name);
        }
    }
}

/// The environment variables the agent reads (`agent/config/env.rs`: `get("NAME")`).
fn variables_the_agent_reads() -> BTreeSet<String> {
    let src = read("agent/config/env.rs");
    src.split("get(\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .collect()
}

#[test]
fn the_daemon_set_environment_port_and_probes_agree_with_the_agent() {
    let ds = daemon_set();
    let c = container(&ds);
    let env: BTreeMap<String, String> = c
        .env
        .clone()
        .unwrap()
        .into_iter()
        .map(|e| {
            let field = e.value_from.and_then(|v| v.field_ref).map(|f| f.field_path);
            (e.name, field.expect("downward API"))
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("HOST_NAME", "spec.nodeName"),
        ("HOST_IP", "status.hostIP"),
        ("POD_IP", "status.podIP"),
        ("K8S_NAMESPACE", "metadata.namespace"),
        ("POD_NAME", "metadata.name"),
    ]
    .iter()
    .map(|(a, b)| ((*a).to_string(), (*b).to_string()))
    .collect();
    assert_eq!(env, want);
    let reads = variables_the_agent_reads();
    for name in env.keys() {
        assert!(reads.contains(name), "{name}: the agent does not read it ({reads:?})");
    }

    // The telemetry port, by name, for both probes; the NetworkPolicy admits the same port.
    let [port] = c.ports.clone().unwrap().try_into().expect("one port");
    assert_eq!(port.container_port, i32::from(kinsight::config::TELEMETRY_PORT));
    assert_eq!(port.name.as_deref(), Some("telemetry"));
    assert!(port.host_port.is_none(), "no host port");
    for (probe, path) in [
        (&c.startup_probe, "/healthz"),
        (&c.liveness_probe, "/healthz"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let get = probe.clone().unwrap().http_get.unwrap();
        assert_eq!(get.path.as_deref(), Some(path));
        assert_eq!(serde_json::to_value(&get.port).unwrap(), "telemetry");
    }
    let np: Value = serde_json::from_str(&read("manifests/networkpolicy.json")).unwrap();
    assert_eq!(
        np["spec"]["ingress"][0]["ports"][0]["port"],
        kinsight::config::TELEMETRY_PORT
    );
    let labels = ds.spec.clone().unwrap().template.metadata.unwrap().labels.unwrap();
    for (k, v) in np["spec"]["podSelector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(
            labels.get(k).map(String::as_str),
            v.as_str(),
            "the NetworkPolicy selects the pods"
        );
    }

    // The drain ends before the kubelet's SIGKILL.
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    let grace = pod.termination_grace_period_seconds.unwrap();
    let drain = configmap_config().logs.shutdown_grace.as_secs();
    assert!(
        u64::try_from(grace).unwrap() >= drain + 10,
        "terminationGracePeriodSeconds {grace} vs the {drain} s drain"
    );

    // The image is this version.
    assert_eq!(
        c.image.as_deref(),
        Some(concat!("kinsight:", env!("CARGO_PKG_VERSION")))
    );
}

fn mebibytes(q: &str) -> f64 {
    let (n, unit) = q.split_at(q.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(q.len()));
    let n: f64 = n.parse().unwrap();
    n * match unit {
        "Mi" => 1.0,
        "Gi" => 1024.0,
        other => panic!("unit {other}"),
    }
}

fn millicores(q: &str) -> f64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => q.parse::<f64>().unwrap() * 1000.0,
    }
}

#[test]
fn the_daemon_set_is_confined_scheduled_everywhere_and_sized_by_the_benchmarks() {
    let ds = daemon_set();
    let c = container(&ds);
    let spec = ds.spec.clone().unwrap();
    let pod = spec.template.spec.clone().unwrap();
    let sc = c.security_context.clone().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_ne!(sc.privileged, Some(true));
    let caps = sc.capabilities.unwrap();
    assert_eq!(caps.drop, Some(vec!["ALL".to_string()]));
    assert_eq!(caps.add, None, "no capability is added");
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(0), Some(0)));
    for (what, v) in [
        ("hostNetwork", pod.host_network),
        ("hostPID", pod.host_pid),
        ("hostIPC", pod.host_ipc),
    ] {
        assert_ne!(v, Some(true), "{what}");
    }
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    let tolerations = serde_json::to_value(pod.tolerations.unwrap()).unwrap();
    assert_eq!(tolerations, json!([{"operator": "Exists"}]), "every taint");

    let strategy = spec.update_strategy.unwrap();
    assert_eq!(strategy.type_.as_deref(), Some("RollingUpdate"));
    let ru = serde_json::to_value(strategy.rolling_update.unwrap()).unwrap();
    assert!(ru["maxUnavailable"].as_str().is_some_and(|s| s.ends_with('%')), "{ru}");
    assert_eq!(ru["maxSurge"], 0, "never two agents on one node");

    // Requests cover the measured peaks, limits leave room; the comment cites the figures of
    // docs/performance.md, and those figures are still there.
    let r = c.resources.unwrap();
    let q = |m: &Option<BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>, k: &str| {
        m.as_ref().unwrap()[k].0.clone()
    };
    // `scripts/bench footprint`: the whole agent on a busy node.
    let (footprint_peak, footprint_millicores) = (31.2, 36.8);
    assert!(mebibytes(&q(&r.requests, "memory")) >= footprint_peak);
    assert!(mebibytes(&q(&r.limits, "memory")) >= 2.0 * footprint_peak);
    assert!(millicores(&q(&r.requests, "cpu")) >= footprint_millicores);
    assert!(millicores(&q(&r.limits, "cpu")) > millicores(&q(&r.requests, "cpu")));
    let source = read("manifests/daemonset.yaml");
    let perf = read("docs/performance.md");
    for figure in ["31.2 MiB", "3.68 %", "12.2 MiB", "188", "197"] {
        assert!(source.contains(figure), "daemonset.yaml cites {figure}");
        assert!(perf.contains(figure), "docs/performance.md no longer says {figure}");
    }
}

// ---------------------------------------------------------------------------------------------
// The agent as the DaemonSet starts it

/// What the downward API would give the pod on the fixture node.
fn downward(field: &str) -> &'static str {
    match field {
        "spec.nodeName" => "ip-10-0-1-23.ec2.internal",
        "status.hostIP" | "status.podIP" => "127.0.0.1",
        "metadata.namespace" => "amazon-cloudwatch",
        "metadata.name" => "kinsight-x7k2p",
        other => panic!("downward API field {other}: give it a fixture value"),
    }
}

/// Lays out the container's filesystem under `ctr` as the DaemonSet's mounts would: the
/// ConfigMap's files at its mount path, the fixture node at the host root's mount path (the
/// nested host-path mounts are the same node's directories, so they are there too; a
/// `DirectoryOrCreate` one is created as the kubelet would). Returns the fixture node's root.
fn lay_out_container(ctr: &Path, ds: &DaemonSet, config: &str) -> PathBuf {
    let pod = ds.spec.clone().unwrap().template.spec.unwrap();
    let volumes = pod.volumes.unwrap();
    let inside = |p: &str| ctr.join(p.trim_start_matches('/'));
    let mounts = container(ds).volume_mounts.unwrap();
    let mut node = None;
    for m in &mounts {
        let v = volumes.iter().find(|v| v.name == m.name).unwrap();
        if v.config_map.is_some() {
            std::fs::create_dir_all(inside(&m.mount_path)).unwrap();
            std::fs::write(inside(&m.mount_path).join("cwagentconfig.json"), config).unwrap();
        } else if v.host_path.as_ref().unwrap().path == "/" {
            let root = inside(&m.mount_path);
            support::copy_dir(&repo("tests/fixtures/host/cgroup-v2-systemd/t0"), &root);
            std::fs::create_dir_all(root.join("var/log/pods")).unwrap();
            std::fs::create_dir_all(root.join("var/log/containers")).unwrap();
            node = Some(root);
        }
    }
    for m in &mounts {
        let hp = volumes.iter().find(|v| v.name == m.name).unwrap().host_path.clone();
        if let Some(hp) = hp
            && hp.type_.as_deref() == Some("DirectoryOrCreate")
        {
            std::fs::create_dir_all(inside(&m.mount_path)).unwrap();
        }
    }
    node.expect("a host root mount")
}

/// `kinsight check` with the DaemonSet's arguments (`check` in place of `run`, absolute paths
/// inside the fixture container) and environment; `AWS_EC2_METADATA_DISABLED` keeps the identity
/// check off the network (no instance metadata service here).
fn check_as_the_daemon_set(ctr: &Path, ds: &DaemonSet) -> support::Run {
    let c = container(ds);
    let mut cmd = kinsight();
    let args = c.args.unwrap();
    assert_eq!(args[0], "run");
    cmd.arg("check");
    for a in &args[1..] {
        if a.starts_with('/') {
            cmd.arg(ctr.join(a.trim_start_matches('/')));
        } else {
            cmd.arg(a);
        }
    }
    for e in c.env.unwrap() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => downward(&from.field_ref.clone().unwrap().field_path).to_string(),
            _ => String::new(),
        };
        cmd.env(&e.name, value);
    }
    cmd.env("AWS_EC2_METADATA_DISABLED", "true");
    run(&mut cmd)
}

fn lines_of(report: &str, verdict: &str) -> Vec<String> {
    report
        .lines()
        .filter(|l| l.starts_with(&format!("{verdict:<5} ")))
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_agent_started_as_the_daemon_set_starts_it_passes_check_apart_from_aws() {
    let ds = daemon_set();
    let dir = tempfile::tempdir().unwrap();
    let ctr = dir.path().join("ctr");
    let node = lay_out_container(&ctr, &ds, &configmap_json("test-cluster"));
    let r = check_as_the_daemon_set(&ctr, &ds);
    let failed = lines_of(&r.stderr, "FAIL");
    // No AWS credentials or region here: the identity check fails, and only it.
    assert!(!failed.is_empty(), "{}", r.stderr);
    for f in &failed {
        assert!(f.starts_with("FAIL  aws identity"), "{f}\n{}", r.stderr);
    }
    let ok = lines_of(&r.stderr, "OK");
    let has = |prefix: &str| ok.iter().any(|l| l.starts_with(prefix));
    assert!(has("OK    config         "), "{}", r.stderr);
    assert!(
        ok.iter()
            .any(|l| l.contains("cluster test-cluster") && l.contains("node ip-10-0-1-23.ec2.internal")),
        "{}",
        r.stderr
    );
    assert!(has("OK    host /proc"), "{}", r.stderr);
    assert!(has("OK    cgroup"), "{}", r.stderr);
    // The checkpoints go to the one writable mount.
    let state = format!(
        "OK    state dir      {} writable",
        node.join("var/lib/kinsight").display()
    );
    assert!(has(&state), "{state}\n{}", r.stderr);
    assert!(has("OK    container logs"), "{}", r.stderr);
}

#[test]
fn an_unfilled_cluster_name_placeholder_stops_the_agent_with_a_reason() {
    let ds = daemon_set();
    let dir = tempfile::tempdir().unwrap();
    let ctr = dir.path().join("ctr");
    let cm = configmap_json("{{cluster_name}}");
    lay_out_container(&ctr, &ds, &cm);
    let r = check_as_the_daemon_set(&ctr, &ds);
    let failed = lines_of(&r.stderr, "FAIL");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("cluster_name") && l.contains("cannot appear in a log group name")),
        "{}",
        r.stderr
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile

#[derive(Debug)]
struct Instruction {
    stage: usize,
    op: String,
    args: String,
}

/// Instructions in order, continuation lines joined, comments dropped; `stage` counts `FROM`s.
/// <https://docs.docker.com/reference/dockerfile/#format>
fn dockerfile() -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut stage = 0;
    let mut pending = String::new();
    for line in read("Dockerfile").lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && pending.is_empty()) {
            continue;
        }
        if let Some(head) = t.strip_suffix('\\') {
            pending.push_str(head);
            pending.push(' ');
            continue;
        }
        pending.push_str(t);
        let (op, args) = pending.split_once(char::is_whitespace).unwrap();
        let op = op.to_ascii_uppercase();
        if op == "FROM" {
            stage += 1;
        }
        out.push(Instruction {
            stage,
            op,
            args: args.trim().to_string(),
        });
        pending.clear();
    }
    out
}

fn exec_form(args: &str) -> Vec<String> {
    serde_json::from_str(args).unwrap_or_else(|e| panic!("{args}: not the JSON exec form: {e}"))
}

/// The `.dockerignore` patterns used here: `*` then `!name` exceptions, a whole top-level
/// entry each. <https://docs.docker.com/build/concepts/context/#dockerignore-files>
fn admitted_by_dockerignore(path: &str) -> bool {
    let mut admitted = true;
    for line in read(".dockerignore").lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (negate, pattern) = line.strip_prefix('!').map_or((false, line), |p| (true, p));
        let top = path.split('/').next().unwrap();
        assert!(
            !pattern.contains('/') && (pattern == "*" || !pattern.contains('*')),
            "{line}"
        );
        if pattern == "*" || pattern == top {
            admitted = negate;
        }
    }
    admitted
}

#[test]
fn the_dockerfile_builds_the_binary_the_daemon_set_runs_and_nothing_else() {
    let ins = dockerfile();
    let froms: Vec<&Instruction> = ins.iter().filter(|i| i.op == "FROM").collect();
    assert_eq!(froms.len(), 2, "multi-stage: build, then runtime");
    let build_name = froms[0].args.rsplit(' ').next().unwrap();
    assert!(
        froms[0].args.to_lowercase().contains(" as "),
        "the build stage is named"
    );
    assert!(froms[1].args.starts_with("gcr.io/distroless/"), "{}", froms[1].args);

    // The build stage builds the release binary; the runtime stage copies exactly that path.
    let workdir = ins.iter().find(|i| i.stage == 1 && i.op == "WORKDIR").unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_kinsight"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let runs: Vec<&Instruction> = ins.iter().filter(|i| i.stage == 1 && i.op == "RUN").collect();
    assert!(
        runs.iter()
            .any(|r| r.args == format!("cargo build --release --locked --bin {bin}")),
        "{runs:?}"
    );
    assert!(!ins.iter().any(|i| i.op == "ENV" && i.args.contains("CARGO_TARGET_DIR")));
    let copy_bin = ins
        .iter()
        .find(|i| i.stage == 2 && i.op == "COPY")
        .expect("the runtime stage copies the binary");
    let built = format!("{}/target/release/{bin}", workdir.args);
    let installed = format!("/usr/local/bin/{bin}");
    assert_eq!(copy_bin.args, format!("--from={build_name} {built} {installed}"));
    assert_eq!(
        ins.iter()
            .filter(|i| i.stage == 2 && (i.op == "COPY" || i.op == "ADD" || i.op == "RUN"))
            .count(),
        1,
        "the runtime image holds the binary only"
    );

    // The allocator settings the leader's memory and the log benchmark's figures were measured
    // with ship in the image.
    assert!(
        ins.iter()
            .any(|i| i.stage == 2 && i.op == "ENV" && i.args == "MALLOC_MMAP_THRESHOLD_=131072"),
        "the runtime stage sets MALLOC_MMAP_THRESHOLD_"
    );
    assert!(
        ins.iter()
            .any(|i| i.stage == 2 && i.op == "ENV" && i.args == "MALLOC_ARENA_MAX=1"),
        "the runtime stage sets MALLOC_ARENA_MAX (the log benchmark's peak RSS was measured with it)"
    );

    // User, entrypoint and arguments agree with the DaemonSet.
    let ds = daemon_set();
    let c = container(&ds);
    let user = ins.iter().rfind(|i| i.op == "USER").unwrap();
    let sc = c.security_context.clone().unwrap();
    assert_eq!(
        user.args,
        format!("{}:{}", sc.run_as_user.unwrap(), sc.run_as_group.unwrap())
    );
    let entrypoint = exec_form(&ins.iter().rfind(|i| i.op == "ENTRYPOINT").unwrap().args);
    assert_eq!(entrypoint, [installed]);
    assert!(c.command.is_none());
    let cmd = exec_form(&ins.iter().rfind(|i| i.op == "CMD").unwrap().args);
    assert_eq!(Some(cmd), c.args, "CMD is the DaemonSet's arguments");

    // OCI labels.
    let labels: String = ins
        .iter()
        .filter(|i| i.stage == 2 && i.op == "LABEL")
        .map(|i| i.args.clone())
        .collect();
    for (k, v) in [
        ("org.opencontainers.image.title", "kinsight"),
        ("org.opencontainers.image.version", env!("CARGO_PKG_VERSION")),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
    ] {
        assert!(labels.contains(&format!("{k}=\"{v}\"")), "LABEL {k}: {labels}");
    }
}

#[test]
fn the_image_build_context_holds_what_the_release_build_reads() {
    let ins = dockerfile();
    let bin = Path::new(env!("CARGO_BIN_EXE_kinsight"))
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    // Every COPY from the context exists and is admitted by .dockerignore.
    let context = tempfile::tempdir().unwrap();
    for i in ins.iter().filter(|i| i.op == "COPY" && !i.args.starts_with("--from")) {
        let words: Vec<&str> = i.args.split_whitespace().collect();
        let (dest, sources) = words.split_last().unwrap();
        for s in sources {
            assert!(repo(s).exists(), "COPY {s}: not in the repository");
            assert!(admitted_by_dockerignore(s), "COPY {s}: excluded by .dockerignore");
            // The build context as the build stage sees it (WORKDIR /src): dest is `./` or `./NAME`.
            let target = if *dest == "./" {
                context.path().join(s)
            } else {
                context.path().join(dest.trim_start_matches("./"))
            };
            if repo(s).is_dir() {
                support::copy_dir(&repo(s), &target);
            } else {
                std::fs::copy(repo(s), &target).unwrap();
            }
        }
    }

    // The manifest, with every target it declares, loads from exactly that context: cargo
    // parses it, then asks rustc for its version, which `RUSTC=/bin/false` refuses, so nothing
    // is built (a missing bench file, for example, fails at the parse).
    let out = Command::new(env!("CARGO"))
        .args(["build", "--locked", "--offline", "--bin", bin])
        .current_dir(context.path())
        .env("RUSTC", "/bin/false")
        .env("CARGO_TARGET_DIR", context.path().join("target"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("failed to parse manifest"), "{stderr}");
    assert!(stderr.contains("/bin/false -vV"), "cargo did not reach rustc: {stderr}");
    assert!(!context.path().join("target").exists());
    // Files the release build includes must be in the context too.
    for f in walk(&repo("agent")) {
        let rel = f.strip_prefix(repo("")).unwrap();
        if f.file_name().unwrap() == "tests.rs" || rel.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        for part in text.split("include_str!(\"").skip(1) {
            let target = f.parent().unwrap().join(part.split('"').next().unwrap());
            let target = target.canonicalize().unwrap();
            let rel = target.strip_prefix(repo("").canonicalize().unwrap()).unwrap();
            assert!(
                context.path().join(rel).exists(),
                "{}: includes {}, which the image does not copy",
                f.display(),
                rel.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The dashboard

/// (metric, dimension names sorted) for every metric a widget shows: plain metric arrays
/// (`[namespace, metric, dim, value, …, {options}]`) and Metrics Insights queries
/// (`SELECT F(metric) FROM SCHEMA("namespace", dims…) WHERE … GROUP BY …`).
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/CloudWatch-Dashboard-Body-Structure.html>
/// <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch-metrics-insights-querylanguage.html>
fn dashboard_metrics(body: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for w in body["widgets"].as_array().unwrap() {
        if w["type"] != "metric" {
            continue;
        }
        let p = &w["properties"];
        assert!(p["region"].is_string() && p["title"].is_string(), "{w}");
        for row in p["metrics"].as_array().unwrap() {
            let row = row.as_array().unwrap();
            if let Some(expr) = row[0].get("expression") {
                out.push(insights_metric(expr.as_str().unwrap()));
                continue;
            }
            let strings: Vec<&str> = row.iter().filter_map(Value::as_str).collect();
            assert_eq!(strings[0], "ContainerInsights", "{row:?}");
            let mut dims: Vec<String> = strings[2..].chunks(2).map(|kv| kv[0].to_string()).collect();
            dims.sort();
            out.push((strings[1].to_string(), dims));
        }
    }
    out
}

fn insights_metric(expr: &str) -> (String, Vec<String>) {
    let between = |s: &str, a: &str, b: &str| -> String {
        let start = s.find(a).unwrap_or_else(|| panic!("{a} in {s}")) + a.len();
        s[start..][..s[start..].find(b).unwrap()].to_string()
    };
    let metric = between(expr, "(", ")");
    let schema: Vec<String> = between(expr, "SCHEMA(", ")")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(schema[0], "\"ContainerInsights\"", "{expr}");
    let mut dims: Vec<String> = schema[1..].to_vec();
    dims.sort();
    // WHERE and GROUP BY use only the schema's dimensions.
    let group = between(&format!("{expr} ORDER"), "GROUP BY ", " ORDER");
    for d in group
        .split(',')
        .map(str::trim)
        .chain([between(expr, "WHERE ", " =").trim()])
    {
        assert!(dims.iter().any(|x| x == d), "{d} is not in the schema: {expr}");
    }
    (metric, dims)
}

#[test]
fn the_dashboard_names_only_metrics_and_dimension_sets_kinsight_emits() {
    use kinsight::metrics::declare;
    let text = read("manifests/dashboard.json");
    // The documented substitution (docs/deploy.md), then the body must be JSON without a
    // placeholder left.
    let body_text = text
        .replace("${CLUSTER_NAME}", "my-cluster")
        .replace("${AWS_REGION}", "eu-west-1");
    assert!(
        !body_text.contains("${"),
        "a placeholder docs/deploy.md does not substitute"
    );
    let body: Value = serde_json::from_str(&body_text).expect("the dashboard is JSON");
    let shown = dashboard_metrics(&body);
    let declared: BTreeSet<(String, Vec<String>)> = declare::table(false)
        .iter()
        .chain(declare::table(true))
        .flat_map(|d| {
            d.sets
                .iter()
                .map(|s| (d.metric.to_string(), s.iter().map(ToString::to_string).collect()))
        })
        .collect();
    for pair in &shown {
        assert!(
            declared.contains(pair),
            "{pair:?} is not a declared (metric, dimension set)"
        );
    }
    let names: BTreeSet<&str> = shown.iter().map(|(m, _)| m.as_str()).collect();
    for m in [
        "node_cpu_utilization",
        "node_memory_utilization",
        "pod_cpu_utilization",
        "pod_memory_utilization",
        "node_network_total_bytes",
        "pod_number_of_container_restarts",
        "cluster_failed_node_count",
        "namespace_number_of_running_pods",
    ] {
        assert!(names.contains(m), "the dashboard shows {m}");
    }
    // Every query and metric is about the one cluster.
    assert!(!text.contains("'my-cluster'") && text.matches("${CLUSTER_NAME}").count() >= shown.len());
}
