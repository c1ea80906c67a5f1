//! A Kubernetes API test server on 127.0.0.1:0: no real apiserver can be installed on the
//! project's machines, so this one speaks the parts of the API kinsight uses, with the apiserver's
//! own semantics where the agent depends on them:
//!
//! - list and watch of any resource under `/api/v1` and `/apis/{group}/{version}`, namespaced or
//!   cluster-wide, with `fieldSelector` (`spec.nodeName`, `metadata.name`,
//!   `metadata.namespace`, `=`/`==`/`!=`, comma-joined) and `labelSelector` equality;
//! - one global `resourceVersion` counter; a list returns it in `metadata.resourceVersion`; a
//!   watch from a version older than the last compaction gets the apiserver's `410 Gone`
//!   (`ERROR` event, reason `Expired`) and must relist; a watch whose field selector an object
//!   moves into or out of sees `ADDED` / `DELETED`, as the watch cache sends them;
//! - `limit` and `continue` on lists (the watcher's pages), as the apiserver pages a list;
//! - `BOOKMARK` events when the watch asks for them (`allowWatchBookmarks`), `timeoutSeconds`;
//! - GET, create (`409 AlreadyExists`), update with optimistic concurrency (`409 Conflict`
//!   when `metadata.resourceVersion` is stale), delete;
//! - `SelfSubjectAccessReview` answered from a deny list; `/metrics` in Prometheus text;
//! - chaos: dropped watch connections, a server that is down (every connection closed at once)
//!   and comes back, compaction;
//! - every request recorded (verb, resource, namespace, name, subresource) for the RBAC test.
//!
//! One thread per connection, one request per connection (`Connection: close`). The server runs
//! on real threads in real time, so it uses `std::time::Instant` (clippy.toml bans it for the
//! agent, whose clock tests pause).
#![allow(clippy::disallowed_types, reason = "a threaded test server in real time")]

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The API resources the server knows: (kind, group/version, plural, namespaced).
const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("Pod", "v1", "pods", true),
    ("Node", "v1", "nodes", false),
    ("Service", "v1", "services", true),
    ("Namespace", "v1", "namespaces", false),
    ("Endpoints", "v1", "endpoints", true),
    ("PersistentVolume", "v1", "persistentvolumes", false),
    ("PersistentVolumeClaim", "v1", "persistentvolumeclaims", true),
    ("ReplicaSet", "apps/v1", "replicasets", true),
    ("Deployment", "apps/v1", "deployments", true),
    ("DaemonSet", "apps/v1", "daemonsets", true),
    ("StatefulSet", "apps/v1", "statefulsets", true),
    ("Job", "batch/v1", "jobs", true),
    ("CronJob", "batch/v1", "cronjobs", true),
    ("EndpointSlice", "discovery.k8s.io/v1", "endpointslices", true),
    ("Ingress", "networking.k8s.io/v1", "ingresses", true),
    ("Lease", "coordination.k8s.io/v1", "leases", true),
];

/// One request as RBAC sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiRequest {
    /// `get`, `list`, `watch`, `create`, `update`, `patch`, `delete`.
    pub verb: String,
    /// The API group (`""` for the core group).
    pub group: String,
    /// The plural resource, or the path for a non-resource URL (`/metrics`).
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Clone)]
struct Event {
    rv: u64,
    resource: &'static str,
    /// `ADDED`, `MODIFIED` or `DELETED`, as stored.
    kind: &'static str,
    object: Value,
    /// The object before this event (for field-selector transitions).
    old: Option<Value>,
}

#[derive(Debug, Default)]
struct State {
    rv: u64,
    /// (plural, namespace or "", name) → object.
    objects: BTreeMap<(&'static str, String, String), Value>,
    events: Vec<Event>,
    /// Watches from a version below this get 410 Gone.
    compacted_below: u64,
    requests: Vec<ApiRequest>,
    down: bool,
    /// Bumped to end every open watch stream abruptly.
    drop_generation: u64,
    bookmark_every: Option<Duration>,
    /// (verb, resource) pairs a `SelfSubjectAccessReview` answers as denied.
    denied: HashSet<(String, String)>,
    /// (verb, resource) pairs answered `403 Forbidden` (RBAC that lacks them).
    forbidden: HashSet<(String, String)>,
    /// Added to every answer (a slow apiserver).
    delay: Duration,
    control_plane_metrics: String,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server; stopped on drop.
pub struct KubeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

fn resource_of_kind(kind: &str) -> Option<(&'static str, &'static str, &'static str, bool)> {
    RESOURCES.iter().copied().find(|r| r.0 == kind)
}

fn resource_by_plural(group_version: &str, plural: &str) -> Option<(&'static str, &'static str, &'static str, bool)> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.1 == group_version && r.2 == plural)
}

impl KubeApi {
    pub fn start() -> KubeApi {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                control_plane_metrics: DEFAULT_CONTROL_PLANE_METRICS.to_string(),
                ..State::default()
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        thread::spawn(move || {
            while !s.stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let s = s.clone();
                        thread::spawn(move || serve(stream, &s));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(2)),
                }
            }
        });
        KubeApi { addr, shared }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Writes a kubeconfig for this server (a bearer token user) into `dir` and returns its path.
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\ncontexts:\n- name: test\n  \
             context:\n    cluster: test\n    user: agent\n    namespace: amazon-cloudwatch\ncurrent-context: test\nusers:\n- \
             name: agent\n  user:\n    token: test-token-not-a-secret\n",
            self.url()
        );
        std::fs::write(&path, text).expect("write kubeconfig");
        path
    }

    /// Creates or replaces an object (its `kind` picks the resource); returns its new version.
    pub fn apply(&self, mut object: Value) -> u64 {
        let kind = object["kind"].as_str().expect("object has a kind").to_string();
        let (_, gv, plural, namespaced) = resource_of_kind(&kind).unwrap_or_else(|| panic!("unknown kind {kind}"));
        if object.get("apiVersion").is_none() {
            object["apiVersion"] = json!(gv);
        }
        let ns = if namespaced {
            object["metadata"]["namespace"]
                .as_str()
                .unwrap_or("default")
                .to_string()
        } else {
            String::new()
        };
        let name = object["metadata"]["name"]
            .as_str()
            .expect("object has a name")
            .to_string();
        let mut st = self.shared.lock();
        let rv = store(&mut st, plural, &ns, name, object);
        drop(st);
        self.shared.changed.notify_all();
        rv
    }

    /// Every item of a `List` (a `kubectl get -o json` dump), applied in order.
    pub fn apply_list(&self, list: &Value) {
        for item in list["items"].as_array().expect("a List with items") {
            self.apply(item.clone());
        }
    }

    /// Deletes an object; `false` when there was none.
    pub fn delete(&self, kind: &str, namespace: &str, name: &str) -> bool {
        let (_, _, plural, namespaced) = resource_of_kind(kind).expect("known kind");
        let ns = if namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        let mut st = self.shared.lock();
        let found = remove(&mut st, plural, &ns, name);
        drop(st);
        self.shared.changed.notify_all();
        found
    }

    /// The stored object, if any.
    pub fn get(&self, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let (_, _, plural, namespaced) = resource_of_kind(kind).expect("known kind");
        let ns = if namespaced {
            namespace.to_string()
        } else {
            String::new()
        };
        self.shared.lock().objects.get(&(plural, ns, name.to_string())).cloned()
    }

    /// Forgets the event history: a watch resumed from any version up to now gets 410 Gone.
    pub fn compact(&self) {
        let mut st = self.shared.lock();
        st.compacted_below = st.rv + 1;
        st.events.clear();
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Forgets the events before `rv`, as the apiserver's watch cache forgets old history: a
    /// watch resumed from a version before it gets 410 Gone.
    pub fn compact_before(&self, rv: u64) {
        let mut st = self.shared.lock();
        st.compacted_below = st.compacted_below.max(rv);
        let keep = st.events.partition_point(|e| e.rv < rv);
        st.events.drain(..keep);
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Ends every open watch stream abruptly (no final chunk), as a load balancer or an
    /// apiserver restart does.
    pub fn drop_watches(&self) {
        self.shared.lock().drop_generation += 1;
        self.shared.changed.notify_all();
    }

    /// While down, every connection is closed at once without an answer, and open watches end.
    pub fn set_down(&self, down: bool) {
        let mut st = self.shared.lock();
        st.down = down;
        st.drop_generation += 1;
        drop(st);
        self.shared.changed.notify_all();
    }

    /// Sends a `BOOKMARK` on watches that allow them, this often.
    pub fn set_bookmark_every(&self, every: Option<Duration>) {
        self.shared.lock().bookmark_every = every;
    }

    /// Every answer waits this long first (a slow apiserver).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.lock().delay = delay;
    }

    /// `SelfSubjectAccessReview`s for `verb` on `resource` (plural, or the non-resource path)
    /// answer `allowed: false`.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.shared
            .lock()
            .denied
            .insert((verb.to_string(), resource.to_string()));
    }

    /// Requests for `verb` on `resource` (plural) answer `403 Forbidden`, and a review of them
    /// says denied, as RBAC without that rule would.
    pub fn forbid(&self, verb: &str, resource: &str) {
        let mut st = self.shared.lock();
        st.forbidden.insert((verb.to_string(), resource.to_string()));
        st.denied.insert((verb.to_string(), resource.to_string()));
    }

    pub fn set_control_plane_metrics(&self, text: &str) {
        self.shared.lock().control_plane_metrics = text.to_string();
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<ApiRequest> {
        self.shared.lock().requests.clone()
    }

    /// Waits until `pred` holds for the recorded requests, up to `timeout`.
    pub fn wait_for_request(&self, timeout: Duration, pred: impl Fn(&ApiRequest) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.lock();
        loop {
            if st.requests.iter().any(&pred) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, left.min(Duration::from_millis(50)))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// The current `resourceVersion`.
    pub fn current_rv(&self) -> u64 {
        self.shared.lock().rv
    }
}

impl Drop for KubeApi {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.shared.lock().drop_generation += 1;
        self.shared.changed.notify_all();
    }
}

/// A few lines of an apiserver's `/metrics`, enough for the control-plane records.
const DEFAULT_CONTROL_PLANE_METRICS: &str = "# HELP apiserver_storage_objects Number of stored objects\n# TYPE \
                                             apiserver_storage_objects gauge\napiserver_storage_objects{resource=\"pods\"} \
                                             42\n";

fn store(st: &mut State, plural: &'static str, ns: &str, name: String, mut object: Value) -> u64 {
    st.rv += 1;
    let rv = st.rv;
    let key = (plural, ns.to_string(), name);
    let old = st.objects.get(&key).cloned();
    let meta = object["metadata"].as_object_mut().expect("metadata is an object");
    meta.insert("resourceVersion".into(), json!(rv.to_string()));
    if !ns.is_empty() {
        meta.insert("namespace".into(), json!(ns));
    }
    if !meta.contains_key("uid") {
        let uid = old
            .as_ref()
            .and_then(|o| o["metadata"]["uid"].as_str().map(str::to_string))
            .unwrap_or_else(|| format!("00000000-0000-4000-8000-{rv:012}"));
        meta.insert("uid".into(), json!(uid));
    }
    if !meta.contains_key("creationTimestamp") {
        meta.insert("creationTimestamp".into(), json!("2026-01-15T10:00:00Z"));
    }
    let kind = if old.is_some() { "MODIFIED" } else { "ADDED" };
    st.events.push(Event {
        rv,
        resource: plural,
        kind,
        object: object.clone(),
        old,
    });
    st.objects.insert(key, object);
    rv
}

fn remove(st: &mut State, plural: &'static str, ns: &str, name: &str) -> bool {
    let Some(mut object) = st.objects.remove(&(plural, ns.to_string(), name.to_string())) else {
        return false;
    };
    st.rv += 1;
    let rv = st.rv;
    object["metadata"]["resourceVersion"] = json!(rv.to_string());
    st.events.push(Event {
        rv,
        resource: plural,
        kind: "DELETED",
        old: Some(object.clone()),
        object,
    });
    true
}

/// A parsed request.
struct Http {
    method: String,
    path: String,
    query: BTreeMap<String, String>,
    body: Vec<u8>,
}

fn read_request(stream: &TcpStream) -> Option<Http> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut length = 0;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':')
            && k.trim().eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Http {
        method,
        path: path.to_string(),
        query,
        body,
    })
}

/// Percent-decoding of a query component (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A `continue` token: `<list version>/<namespace>/<name>` of the last item sent.
fn parse_continue(token: &str) -> Option<(u64, String, String)> {
    let mut parts = token.splitn(3, '/');
    let rv = parts.next()?.parse().ok()?;
    Some((rv, parts.next()?.to_string(), parts.next()?.to_string()))
}

/// Where a path points.
struct Target {
    group_version: String,
    plural: String,
    namespace: Option<String>,
    name: Option<String>,
}

fn parse_target(path: &str) -> Option<Target> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (gv, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("v1".to_string(), rest),
        ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_string()), rest),
        _ => (None, rest),
    };
    let (plural, name) = match rest {
        [plural] => ((*plural).to_string(), None),
        [plural, name] => ((*plural).to_string(), Some((*name).to_string())),
        _ => return None,
    };
    Some(Target {
        group_version: gv,
        plural,
        namespace,
        name,
    })
}

fn group_of(gv: &str) -> String {
    gv.rsplit_once('/').map_or(String::new(), |(g, _)| g.to_string())
}

#[allow(
    clippy::too_many_lines,
    reason = "one match over the API verbs reads best in one place"
)]
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    if shared.lock().down {
        return; // closed without an answer
    }
    let Some(req) = read_request(&stream) else { return };
    let delay = shared.lock().delay;
    if !delay.is_zero() {
        thread::sleep(delay);
    }
    let mut stream = stream;
    if req.path == "/metrics" {
        record(shared, "get", "", "/metrics", None, None);
        if shared
            .lock()
            .forbidden
            .contains(&("get".to_string(), "/metrics".to_string()))
        {
            let message =
                "forbidden: User \"system:serviceaccount:amazon-cloudwatch:kinsight\" cannot get path \"/metrics\"";
            respond_json(&mut stream, 403, &status(403, "Forbidden", message));
            return;
        }
        let text = shared.lock().control_plane_metrics.clone();
        respond(&mut stream, 200, "text/plain; version=0.0.4", text.as_bytes());
        return;
    }
    if req.path == "/version" {
        record(shared, "get", "", "/version", None, None);
        let body = json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-eks-test", "platform": "linux/amd64"});
        respond_json(&mut stream, 200, &body);
        return;
    }
    if req.method == "POST" && req.path == "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" {
        record(
            shared,
            "create",
            "authorization.k8s.io",
            "selfsubjectaccessreviews",
            None,
            None,
        );
        let mut review: Value = serde_json::from_slice(&req.body).unwrap_or(Value::Null);
        let attrs = &review["spec"]["resourceAttributes"];
        let key = if attrs.is_object() {
            (
                attrs["verb"].as_str().unwrap_or("").to_string(),
                attrs["resource"].as_str().unwrap_or("").to_string(),
            )
        } else {
            let n = &review["spec"]["nonResourceAttributes"];
            (
                n["verb"].as_str().unwrap_or("").to_string(),
                n["path"].as_str().unwrap_or("").to_string(),
            )
        };
        let allowed = !shared.lock().denied.contains(&key);
        review["status"] = json!({"allowed": allowed});
        respond_json(&mut stream, 201, &review);
        return;
    }
    let Some(target) = parse_target(&req.path) else {
        respond_json(
            &mut stream,
            404,
            &status(404, "NotFound", &format!("no route {}", req.path)),
        );
        return;
    };
    let Some((kind, gv, plural, namespaced)) = resource_by_plural(&target.group_version, &target.plural) else {
        respond_json(
            &mut stream,
            404,
            &status(
                404,
                "NotFound",
                &format!("the server could not find the requested resource {}", req.path),
            ),
        );
        return;
    };
    let group = group_of(gv);
    let is_watch = matches!(req.query.get("watch").map(String::as_str), Some("1" | "true"));
    let verb = match (req.method.as_str(), target.name.is_some()) {
        ("GET", true) => "get",
        ("GET", false) if is_watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        _ => {
            respond_json(&mut stream, 405, &status(405, "MethodNotAllowed", "method not allowed"));
            return;
        }
    };
    record(
        shared,
        verb,
        &group,
        plural,
        target.namespace.clone(),
        target.name.clone(),
    );
    if shared
        .lock()
        .forbidden
        .contains(&(verb.to_string(), plural.to_string()))
    {
        let message = format!(
            "{plural}{} is forbidden: User \"system:serviceaccount:amazon-cloudwatch:kinsight\" cannot {verb} resource \"{plural}\" in API group \"{group}\"",
            target.name.as_deref().map(|n| format!(" \"{n}\"")).unwrap_or_default()
        );
        respond_json(&mut stream, 403, &status(403, "Forbidden", &message));
        return;
    }
    let ns_key = |ns: Option<&str>| {
        if namespaced {
            ns.unwrap_or("default").to_string()
        } else {
            String::new()
        }
    };
    match verb {
        "list" => {
            let filter = Filter::parse(&req.query, target.namespace.as_deref());
            let limit = req
                .query
                .get("limit")
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&n| n > 0);
            let after = req.query.get("continue").and_then(|c| parse_continue(c));
            let st = shared.lock();
            // A continued list answers at its first page's version, as the apiserver does, so
            // the watch that follows replays whatever changed while the pages were read.
            let list_rv = after.as_ref().map_or(st.rv, |(rv, _, _)| *rv);
            let start = after.map_or(
                Bound::Included((plural, String::new(), String::new())),
                |(_, ns, name)| Bound::Excluded((plural, ns, name)),
            );
            // Items are serialised under the lock straight from the store, without a copy of each
            // object first: the benchmark's cluster (benches/kube_cluster.rs) holds 150,000 pods.
            let mut items = Vec::new();
            let mut count = 0;
            let mut next = None;
            let mut last: Option<&(&'static str, String, String)> = None;
            for (key, o) in st
                .objects
                .range((start, Bound::Unbounded))
                .take_while(|((p, _, _), _)| *p == plural)
            {
                if limit.is_some_and(|n| count == n) {
                    next = last.map(|(_, ns, name)| format!("{list_rv}/{ns}/{name}"));
                    break;
                }
                if !filter.matches(o) {
                    continue;
                }
                if count > 0 {
                    items.push(b',');
                }
                serde_json::to_writer(&mut items, o).expect("serialisable");
                count += 1;
                last = Some(key);
            }
            drop(st);
            let mut metadata = json!({"resourceVersion": list_rv.to_string()});
            if let Some(token) = next {
                metadata["continue"] = json!(token);
            }
            let mut body =
                format!("{{\"kind\":\"{kind}List\",\"apiVersion\":\"{gv}\",\"metadata\":{metadata},\"items\":[")
                    .into_bytes();
            body.extend_from_slice(&items);
            body.extend_from_slice(b"]}");
            respond(&mut stream, 200, "application/json", &body);
        }
        "watch" => watch(&mut stream, shared, &req, &target, kind, gv, plural),
        "get" => {
            let key = (
                plural,
                ns_key(target.namespace.as_deref()),
                target.name.clone().unwrap_or_default(),
            );
            let found = shared.lock().objects.get(&key).cloned();
            match found {
                Some(o) => respond_json(&mut stream, 200, &o),
                None => respond_json(
                    &mut stream,
                    404,
                    &status(404, "NotFound", &format!("{plural} \"{}\" not found", key.2)),
                ),
            }
        }
        "create" => {
            let Ok(mut object) = serde_json::from_slice::<Value>(&req.body) else {
                respond_json(&mut stream, 400, &status(400, "BadRequest", "body is not JSON"));
                return;
            };
            let name = object["metadata"]["name"].as_str().unwrap_or("").to_string();
            let key = (plural, ns_key(target.namespace.as_deref()), name.clone());
            let mut st = shared.lock();
            if name.is_empty() {
                drop(st);
                respond_json(
                    &mut stream,
                    422,
                    &status(422, "Invalid", "metadata.name: Required value"),
                );
            } else if st.objects.contains_key(&key) {
                drop(st);
                respond_json(
                    &mut stream,
                    409,
                    &status(409, "AlreadyExists", &format!("{plural} \"{name}\" already exists")),
                );
            } else {
                object["metadata"].as_object_mut().map(|m| m.remove("resourceVersion"));
                store(&mut st, plural, &key.1, name, object);
                let stored = st.objects[&key].clone();
                drop(st);
                shared.changed.notify_all();
                respond_json(&mut stream, 201, &stored);
            }
        }
        "update" => {
            let Ok(object) = serde_json::from_slice::<Value>(&req.body) else {
                respond_json(&mut stream, 400, &status(400, "BadRequest", "body is not JSON"));
                return;
            };
            let name = target.name.clone().unwrap_or_default();
            let key = (plural, ns_key(target.namespace.as_deref()), name.clone());
            let mut st = shared.lock();
            let current = st.objects.get(&key).map(|o| o["metadata"]["resourceVersion"].clone());
            match current {
                None => {
                    drop(st);
                    respond_json(
                        &mut stream,
                        404,
                        &status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                    );
                }
                // An update must carry the version it read (optimistic concurrency).
                Some(rv) if object["metadata"]["resourceVersion"] != rv => {
                    drop(st);
                    respond_json(
                        &mut stream,
                        409,
                        &status(
                            409,
                            "Conflict",
                            &format!(
                                "Operation cannot be fulfilled on {plural} \"{name}\": the object has been modified; \
                                 please apply your changes to the latest version and try again"
                            ),
                        ),
                    );
                }
                Some(_) => {
                    store(&mut st, plural, &key.1, name, object);
                    let stored = st.objects[&key].clone();
                    drop(st);
                    shared.changed.notify_all();
                    respond_json(&mut stream, 200, &stored);
                }
            }
        }
        "delete" => {
            let name = target.name.clone().unwrap_or_default();
            let ns = ns_key(target.namespace.as_deref());
            let mut st = shared.lock();
            let found = remove(&mut st, plural, &ns, &name);
            drop(st);
            shared.changed.notify_all();
            if found {
                respond_json(&mut stream, 200, &status(200, "", "deleted"));
            } else {
                respond_json(
                    &mut stream,
                    404,
                    &status(404, "NotFound", &format!("{plural} \"{name}\" not found")),
                );
            }
        }
        _ => respond_json(&mut stream, 405, &status(405, "MethodNotAllowed", "not supported here")),
    }
}

fn record(shared: &Shared, verb: &str, group: &str, resource: &str, namespace: Option<String>, name: Option<String>) {
    shared.lock().requests.push(ApiRequest {
        verb: verb.to_string(),
        group: group.to_string(),
        resource: resource.to_string(),
        namespace,
        name,
    });
    shared.changed.notify_all();
}

/// A `fieldSelector` / `labelSelector` / namespace filter.
struct Filter {
    namespace: Option<String>,
    /// (path, value, equal?)
    fields: Vec<(String, String, bool)>,
    labels: Vec<(String, String)>,
}

impl Filter {
    fn parse(query: &BTreeMap<String, String>, namespace: Option<&str>) -> Filter {
        let mut fields = Vec::new();
        for term in query.get("fieldSelector").map_or("", String::as_str).split(',') {
            if let Some((k, v)) = term.split_once("!=") {
                fields.push((k.to_string(), v.to_string(), false));
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                fields.push((k.to_string(), v.to_string(), true));
            }
        }
        let labels = query
            .get("labelSelector")
            .map_or("", String::as_str)
            .split(',')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.trim_end_matches('=').to_string(), v.to_string()))
            .collect();
        Filter {
            namespace: namespace.map(str::to_string),
            fields,
            labels,
        }
    }

    fn matches(&self, o: &Value) -> bool {
        if let Some(ns) = &self.namespace
            && o["metadata"]["namespace"].as_str() != Some(ns)
        {
            return false;
        }
        self.fields.iter().all(|(path, want, eq)| {
            let mut v = o;
            for part in path.split('.') {
                v = &v[part];
            }
            let got = v.as_str().unwrap_or("");
            (got == want) == *eq
        }) && self
            .labels
            .iter()
            .all(|(k, want)| o["metadata"]["labels"][k].as_str() == Some(want))
    }
}

#[allow(clippy::too_many_arguments)]
fn watch(
    stream: &mut TcpStream,
    shared: &Shared,
    req: &Http,
    target: &Target,
    kind: &str,
    gv: &str,
    plural: &'static str,
) {
    let filter = Filter::parse(&req.query, target.namespace.as_deref());
    let bookmarks = matches!(
        req.query.get("allowWatchBookmarks").map(String::as_str),
        Some("true" | "1")
    );
    let timeout = req
        .query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(Duration::from_hours(1), Duration::from_secs);
    let from: u64 = req
        .query
        .get("resourceVersion")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let deadline = Instant::now() + timeout;
    let mut st = shared.lock();
    let generation = st.drop_generation;
    // Events after `from` are gone when `from` is older than the last compaction.
    if from != 0 && from + 1 < st.compacted_below {
        let gone = json!({"type": "ERROR", "object": status(410, "Expired",
            &format!("too old resource version: {from} ({})", st.compacted_below))});
        drop(st);
        let _ = chunk(stream, &gone);
        let _ = stream.write_all(b"0\r\n\r\n");
        return;
    }
    // resourceVersion "0" or none: start with the current state as ADDED events.
    let mut sent_to = from;
    if from == 0 {
        let items: Vec<Value> = st
            .objects
            .range((plural, String::new(), String::new())..)
            .take_while(|((p, _, _), _)| *p == plural)
            .filter(|(_, o)| filter.matches(o))
            .map(|(_, o)| o.clone())
            .collect();
        sent_to = st.rv;
        drop(st);
        for o in items {
            if chunk(stream, &json!({"type": "ADDED", "object": o})).is_err() {
                return;
            }
        }
        st = shared.lock();
    }
    let mut last_bookmark = Instant::now();
    loop {
        if shared.stop.load(Ordering::Relaxed) || st.drop_generation != generation {
            // Abrupt end: no terminating chunk.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        // Events are stored in version order: skip to the first one not yet sent instead of
        // scanning the whole history on every wake-up.
        let first = st.events.partition_point(|e| e.rv <= sent_to);
        let pending: Vec<Value> = st.events[first..]
            .iter()
            .filter(|e| e.resource == plural)
            .filter_map(|e| {
                let was = e.old.as_ref().is_some_and(|o| filter.matches(o));
                let is = e.kind != "DELETED" && filter.matches(&e.object);
                let t = match (was, is) {
                    (false, true) => "ADDED",
                    (true, true) => e.kind,
                    (true, false) => "DELETED",
                    (false, false) => return None,
                };
                Some(json!({"type": t, "object": e.object}))
            })
            .collect();
        sent_to = st.rv;
        let every = st.bookmark_every;
        drop(st);
        for event in pending {
            if chunk(stream, &event).is_err() {
                return;
            }
        }
        if bookmarks && every.is_some_and(|d| last_bookmark.elapsed() >= d) {
            last_bookmark = Instant::now();
            let bookmark = json!({"type": "BOOKMARK", "object": {
                "kind": kind, "apiVersion": gv, "metadata": {"resourceVersion": sent_to.to_string()}}});
            if chunk(stream, &bookmark).is_err() {
                return;
            }
        }
        if Instant::now() >= deadline {
            let _ = stream.write_all(b"0\r\n\r\n");
            return;
        }
        st = shared.lock();
        if st.rv == sent_to && st.drop_generation == generation {
            st = shared
                .changed
                .wait_timeout(st, Duration::from_millis(100))
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

fn chunk(stream: &mut TcpStream, event: &Value) -> std::io::Result<()> {
    let mut line = serde_json::to_vec(event).expect("serialisable");
    line.push(b'\n');
    let mut out = format!("{:x}\r\n", line.len()).into_bytes();
    out.extend_from_slice(&line);
    out.extend_from_slice(b"\r\n");
    stream.write_all(&out)?;
    stream.flush()
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": if code < 300 { "Success" } else { "Failure" },
        "message": message,
        "reason": reason,
        "code": code,
    })
}

fn respond_json(stream: &mut TcpStream, code: u16, body: &Value) {
    respond(
        stream,
        code,
        "application/json",
        &serde_json::to_vec(body).expect("serialisable"),
    );
}

fn respond(stream: &mut TcpStream, code: u16, content_type: &str, body: &[u8]) {
    let mut head = String::new();
    let _ = write!(
        head,
        "HTTP/1.1 {code} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}
