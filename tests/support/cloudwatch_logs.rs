//! The strict local CloudWatch Logs endpoint: the JSON protocol (`POST /`,
//! `content-type: application/x-amz-json-1.1`, `X-Amz-Target: Logs_20140328.<Action>`) on
//! 127.0.0.1, enforcing the `PutLogEvents` rules that moto does not enforce, with scripted faults,
//! a clock of its own, and a record of every request and every stored event.
//!
//! Actions: `CreateLogGroup`, `CreateLogStream`, `PutRetentionPolicy`, `PutLogEvents`.
//!
//! What comes from where:
//! - **From the API reference** (`API_PutLogEvents.html`, `API_RejectedLogEventsInfo.html`,
//!   `API_CreateLogGroup.html`, `API_CreateLogStream.html`, `API_PutRetentionPolicy.html`,
//!   `API_InputLogEvent.html`): at most 10,000 events and at least one; at most 1,048,576 bytes
//!   counted as the UTF-8 message bytes plus 26 per event; an event of at most 1 MB (taken as
//!   1,048,576 − 26 message bytes) and at least one character; chronological order; a span of at
//!   most 24 hours among the events within the window (14 days back to 2 hours ahead); events out
//!   of the window, or before the group's retention, rejected one by one in
//!   `rejectedLogEventsInfo` (`tooNewLogEventStartIndex` inclusive, `tooOldLogEventEndIndex` and
//!   `expiredLogEventEndIndex` exclusive) while the others are stored; the error codes
//!   (`InvalidParameterException`, `ResourceNotFoundException`, `ResourceAlreadyExistsException`,
//!   `ThrottlingException`, `ServiceUnavailableException`); group and stream name patterns; the
//!   retention values `PutRetentionPolicy` allows.
//! - **Inferred**, not observed on the real service: the order in which the rules are checked (the
//!   first broken one answers), the message wording, that `expiredLogEventEndIndex` is reported only
//!   where it reaches past `tooOldLogEventEndIndex`, that the 24-hour span ignores the
//!   expired events too (they are out of the group's window), and that a missing
//!   `rejectedLogEventsInfo` field means "none of that kind".

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

use super::sigv4::{SignedRequest, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, parse_authorization, verify};

/// The `X-Amz-Target` prefix of CloudWatch Logs (API version 2014-03-28).
pub const LOGS_TARGET_PREFIX: &str = "Logs_20140328.";

/// "The maximum number of log events in a batch is 10,000."
pub const LOGS_MAX_EVENTS: usize = 10_000;
/// "The maximum batch size is 1,048,576 bytes. This size is calculated as the sum of all event
/// messages in UTF-8, plus 26 bytes for each log event."
pub const LOGS_MAX_BATCH_BYTES: usize = 1_048_576;
/// The per-event overhead of the batch size.
pub const LOGS_EVENT_OVERHEAD: usize = 26;
/// "Each log event can be no larger than 1 MB": the largest message that fits a batch alone.
pub const LOGS_MAX_MESSAGE_BYTES: usize = LOGS_MAX_BATCH_BYTES - LOGS_EVENT_OVERHEAD;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// "Events older than 14 days … are rejected while processing remaining valid events."
const MAX_AGE_MS: i64 = 14 * DAY_MS;
/// "Events more than 2 hours in the future are rejected while processing remaining valid events."
const MAX_AHEAD_MS: i64 = 2 * HOUR_MS;
/// "For valid events …, the time span in a single batch cannot exceed 24 hours."
const MAX_SPAN_MS: i64 = DAY_MS;

/// `retentionInDays` values `PutRetentionPolicy` accepts (API reference, `PutRetentionPolicy`).
const RETENTION_DAYS: &[i64] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
];

/// A scripted answer, taken one per request of its action before anything else is looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogsFault {
    /// 400 `ThrottlingException` ("Rate exceeded").
    Throttle,
    /// 500 `ServiceUnavailableException`.
    Unavailable,
    /// The connection is closed after the request was read, without an answer.
    Close,
    /// Any error: status, code (`__type`), message.
    Error(u16, String, String),
}

impl LogsFault {
    /// 400 `InvalidParameterException` with `message`.
    pub fn invalid(message: &str) -> Self {
        LogsFault::Error(400, "InvalidParameterException".into(), message.into())
    }
}

/// One event the endpoint stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogEvent {
    pub timestamp_ms: i64,
    pub message: String,
    /// Index of the request in [`StrictLogs::requests`].
    pub request: usize,
}

/// `rejectedLogEventsInfo` as answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RejectedInfo {
    /// Inclusive: this event and the ones after it were too new.
    pub too_new_start: Option<usize>,
    /// Exclusive: the events before this one were too old.
    pub too_old_end: Option<usize>,
    /// Exclusive: the events before this one preceded the group's retention.
    pub expired_end: Option<usize>,
}

/// One request as it arrived, and what the endpoint answered.
#[derive(Debug, Clone)]
pub struct LogsRequest {
    /// The action from `X-Amz-Target` (`PutLogEvents`, …); empty when missing.
    pub action: String,
    /// Lower-case names, `authorization` left out.
    pub headers: Vec<(String, String)>,
    pub group: Option<String>,
    pub stream: Option<String>,
    /// `PutLogEvents`: `logEvents` entries (0 when the body could not be read).
    pub events: usize,
    /// `PutLogEvents`: the batch size as the API counts it (UTF-8 message bytes + 26 per event).
    pub bytes: usize,
    /// `PutLogEvents`: the first and last timestamps, as sent.
    pub first_ts: Option<i64>,
    pub last_ts: Option<i64>,
    /// `PutLogEvents`: the events stored.
    pub stored: usize,
    pub rejected: Option<RejectedInfo>,
    /// `PutRetentionPolicy`: `retentionInDays`.
    pub retention_days: Option<i64>,
    /// Whether the `SigV4` signature verified (`support::sigv4`, recomputed from the request as
    /// received); `None` when it was signed with other than the test credentials, which the
    /// endpoint cannot check.
    pub signature_ok: Option<bool>,
    /// 0 when the connection was closed without an answer.
    pub status: u16,
    /// The error code answered, if any.
    pub error: Option<String>,
    pub message: Option<String>,
}

impl LogsRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// `last_ts - first_ts`, for a request with events.
    pub fn span_ms(&self) -> Option<i64> {
        Some(self.last_ts? - self.first_ts?)
    }
}

#[derive(Debug, Default)]
struct Group {
    retention_days: Option<i64>,
    /// `CreateLogGroup` `logGroupClass`; `STANDARD` when not given.
    class: String,
    streams: BTreeMap<String, Vec<StoredLogEvent>>,
}

#[derive(Debug, Default)]
struct State {
    /// Per action.
    faults: HashMap<String, VecDeque<LogsFault>>,
    /// Per action: answers every request while set (after the scripted ones run out).
    sticky: HashMap<String, LogsFault>,
    groups: BTreeMap<String, Group>,
    requests: Vec<LogsRequest>,
    /// Added to the wall clock: the endpoint's "now".
    clock_offset_ms: i64,
    /// Streams whose `PutLogEvents` requests wait for an answer until released, as a slow
    /// endpoint keeps them waiting.
    held: BTreeSet<String>,
    /// Woken when `held` shrinks.
    released: Arc<tokio::sync::Notify>,
    /// Requests waiting in `held` now.
    holding: usize,
    /// The most requests that waited in `held` at once.
    most_holding: usize,
}

impl State {
    fn now_ms(&self) -> i64 {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        wall + self.clock_offset_ms
    }
}

/// The endpoint: a thread with its own tokio runtime serving `http://127.0.0.1:PORT`; stopped on
/// drop. Independent of the test's runtime (paused or not).
#[derive(Debug)]
pub struct StrictLogs {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StrictLogs {
    pub fn start() -> StrictLogs {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = thread::Builder::new()
            .name("strict-logs".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for the strict CloudWatch Logs endpoint");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    loop {
                        tokio::select! {
                            _ = &mut stopped => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                let st = st.clone();
                                tokio::spawn(async move {
                                    let svc = service_fn(move |req| handle(st.clone(), req));
                                    // An error here is a `Close` fault (or the client going away).
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .expect("spawn the strict CloudWatch Logs endpoint");
        StrictLogs {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues scripted answers for the next requests of `action` (`PutLogEvents`, …), in order.
    pub fn push_faults(&self, action: &str, faults: impl IntoIterator<Item = LogsFault>) {
        self.lock().faults.entry(action.to_string()).or_default().extend(faults);
    }

    /// Answers every request of `action` with `fault` until called with `None`.
    pub fn set_sticky(&self, action: &str, fault: Option<LogsFault>) {
        let mut st = self.lock();
        match fault {
            Some(f) => st.sticky.insert(action.to_string(), f),
            None => st.sticky.remove(action),
        };
    }

    /// Holds the answers to `PutLogEvents` requests for `stream` (any group) until
    /// [`StrictLogs::release`]: the request is read, then the connection waits.
    pub fn hold(&self, stream: &str) {
        self.lock().held.insert(stream.to_string());
    }

    /// `PutLogEvents` requests waiting for their answer in [`StrictLogs::hold`] now.
    pub fn held_requests(&self) -> usize {
        self.lock().holding
    }

    /// The most `PutLogEvents` requests that waited in [`StrictLogs::hold`] at once.
    pub fn most_held_requests(&self) -> usize {
        self.lock().most_holding
    }

    /// Answers the held requests of `stream`, and its later ones at once.
    pub fn release(&self, stream: &str) {
        let mut st = self.lock();
        st.held.remove(stream);
        st.released.notify_waiters();
    }

    /// Moves the endpoint's clock `offset_ms` away from the wall clock (negative: behind). The
    /// time window of `PutLogEvents` is judged against this clock, as the real service judges it
    /// against its own.
    pub fn set_clock_offset_ms(&self, offset_ms: i64) {
        self.lock().clock_offset_ms = offset_ms;
    }

    /// The endpoint's "now", epoch milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.lock().now_ms()
    }

    /// Creates `group` directly (as another agent or an operator would); `false` if it existed.
    pub fn create_group(&self, group: &str) -> bool {
        let mut st = self.lock();
        if st.groups.contains_key(group) {
            return false;
        }
        st.groups.insert(group.to_string(), Group::default());
        true
    }

    /// Creates `stream` in an existing `group` directly; `false` if it existed.
    pub fn create_stream(&self, group: &str, stream: &str) -> bool {
        let mut st = self.lock();
        let g = st.groups.get_mut(group).expect("create_stream: the group exists");
        if g.streams.contains_key(stream) {
            return false;
        }
        g.streams.insert(stream.to_string(), Vec::new());
        true
    }

    /// Sets `group`'s retention directly.
    pub fn set_retention(&self, group: &str, days: Option<i64>) {
        self.lock()
            .groups
            .get_mut(group)
            .expect("set_retention: the group exists")
            .retention_days = days;
    }

    pub fn has_group(&self, group: &str) -> bool {
        self.lock().groups.contains_key(group)
    }

    pub fn has_stream(&self, group: &str, stream: &str) -> bool {
        self.lock()
            .groups
            .get(group)
            .is_some_and(|g| g.streams.contains_key(stream))
    }

    /// The class `group` was created with (`None`: no such group).
    pub fn class(&self, group: &str) -> Option<String> {
        self.lock().groups.get(group).map(|g| g.class.clone())
    }

    /// The retention set on `group` (`None`: never expire, or no such group).
    pub fn retention(&self, group: &str) -> Option<i64> {
        self.lock().groups.get(group).and_then(|g| g.retention_days)
    }

    /// The events stored in `group`/`stream`, in the order they were stored.
    pub fn events(&self, group: &str, stream: &str) -> Vec<StoredLogEvent> {
        self.lock()
            .groups
            .get(group)
            .and_then(|g| g.streams.get(stream))
            .cloned()
            .unwrap_or_default()
    }

    /// Every event stored, in every stream.
    pub fn stored_count(&self) -> usize {
        self.lock()
            .groups
            .values()
            .flat_map(|g| g.streams.values())
            .map(Vec::len)
            .sum()
    }

    pub fn requests(&self) -> Vec<LogsRequest> {
        self.lock().requests.clone()
    }

    /// The requests of one action, in arrival order.
    pub fn requests_of(&self, action: &str) -> Vec<LogsRequest> {
        self.lock()
            .requests
            .iter()
            .filter(|r| r.action == action)
            .cloned()
            .collect()
    }

    /// The actions of every request, in arrival order.
    pub fn actions(&self) -> Vec<String> {
        self.lock().requests.iter().map(|r| r.action.clone()).collect()
    }
}

impl Drop for StrictLogs {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the service function returns to make hyper drop the connection without an answer.
#[derive(Debug)]
struct CloseConnection;

impl fmt::Display for CloseConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("injected fault: connection closed without an answer")
    }
}

impl std::error::Error for CloseConnection {}

/// An error answer: status, `__type`, message.
type Failure = (u16, String, String);

fn invalid(message: impl Into<String>) -> Failure {
    (400, "InvalidParameterException".into(), message.into())
}

fn not_found(message: &str) -> Failure {
    (400, "ResourceNotFoundException".into(), message.to_string())
}

fn already_exists(message: &str) -> Failure {
    (400, "ResourceAlreadyExistsException".into(), message.to_string())
}

#[allow(
    clippy::too_many_lines,
    reason = "one request, top to bottom: record, fault, decode, dispatch, answer"
)]
async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, CloseConnection> {
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter(|(k, _)| k.as_str() != "authorization")
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let authorization: Option<String> = req
        .headers()
        .get("authorization")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let action = header("x-amz-target")
        .and_then(|t| t.strip_prefix(LOGS_TARGET_PREFIX))
        .unwrap_or("")
        .to_string();
    let content_type = header("content-type").unwrap_or("").to_string();
    let body: Option<Value> = serde_json::from_slice(&raw).ok();
    if let Some(stream) = body
        .as_ref()
        .and_then(|b| b.get("logStreamName"))
        .and_then(Value::as_str)
        && action == "PutLogEvents"
    {
        let released = state.lock().unwrap_or_else(PoisonError::into_inner).released.clone();
        let mut counted = false;
        loop {
            let woken = released.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            {
                let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
                if !st.held.contains(stream) {
                    st.holding -= usize::from(counted);
                    break;
                }
                if !counted {
                    st.holding += 1;
                    st.most_holding = st.most_holding.max(st.holding);
                    counted = true;
                }
            }
            woken.await;
        }
    }

    let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
    let index = st.requests.len();
    let mut rec = LogsRequest {
        action: action.clone(),
        headers: headers.clone(),
        group: None,
        stream: None,
        events: 0,
        bytes: 0,
        first_ts: None,
        last_ts: None,
        stored: 0,
        rejected: None,
        retention_days: None,
        signature_ok: None,
        status: 200,
        error: None,
        message: None,
    };
    if let Some(b) = &body {
        rec.group = b.get("logGroupName").and_then(Value::as_str).map(str::to_string);
        rec.stream = b.get("logStreamName").and_then(Value::as_str).map(str::to_string);
        rec.retention_days = b.get("retentionInDays").and_then(Value::as_i64);
        if let Some(evs) = b.get("logEvents").and_then(Value::as_array) {
            rec.events = evs.len();
            rec.bytes = evs
                .iter()
                .map(|e| e.get("message").and_then(Value::as_str).map_or(0, str::len) + LOGS_EVENT_OVERHEAD)
                .sum();
            rec.first_ts = evs.first().and_then(|e| e.get("timestamp")).and_then(Value::as_i64);
            rec.last_ts = evs.last().and_then(|e| e.get("timestamp")).and_then(Value::as_i64);
        }
    }
    // The signature first, as AWS checks it before the request: with the test credentials every
    // request must verify (a body changed after its hash was taken fails here).
    let signature = authorization.as_deref().map(|auth| {
        let mut all = headers.clone();
        all.push(("authorization".into(), auth.to_string()));
        let signed = SignedRequest {
            method: method.as_str(),
            path: &path,
            query: &query,
            headers: &all,
            body: &raw,
        };
        match parse_authorization(auth) {
            Ok(a) if a.access_key_id == TEST_ACCESS_KEY_ID => Some(verify(&signed, TEST_SECRET_ACCESS_KEY)),
            _ => None,
        }
    });
    let bad_signature = match signature.flatten() {
        Some(Ok(())) => {
            rec.signature_ok = Some(true);
            None
        }
        Some(Err(why)) => {
            rec.signature_ok = Some(false);
            Some(why)
        }
        None => None,
    };
    let fault = match st.faults.get_mut(&action).and_then(VecDeque::pop_front) {
        Some(f) => Some(f),
        None => st.sticky.get(&action).cloned(),
    };
    let fault = match bad_signature {
        // The code and wording of AWS's answer to a wrong signature (status 400 inferred for the
        // JSON protocol, not observed); the reason goes to the endpoint's record only.
        Some(why) => Some(LogsFault::Error(
            400,
            "InvalidSignatureException".into(),
            format!(
                "The request signature we calculated does not match the signature you provided. \
                 ({why})"
            ),
        )),
        None => fault,
    };
    let result: Result<Value, Failure> = match fault {
        Some(LogsFault::Close) => {
            rec.status = 0;
            rec.error = Some("connection closed".into());
            st.requests.push(rec);
            return Err(CloseConnection);
        }
        Some(LogsFault::Throttle) => Err((400, "ThrottlingException".into(), "Rate exceeded".into())),
        Some(LogsFault::Unavailable) => Err((
            500,
            "ServiceUnavailableException".into(),
            "The service cannot complete the request.".into(),
        )),
        Some(LogsFault::Error(status, code, message)) => Err((status, code, message)),
        None => {
            if method != hyper::Method::POST || path != "/" {
                Err((
                    404,
                    "UnknownOperationException".into(),
                    format!("{method} {path}: not served here"),
                ))
            } else if !content_type.starts_with("application/x-amz-json-1.1") {
                Err((
                    400,
                    "SerializationException".into(),
                    format!("content-type {content_type:?}: expected application/x-amz-json-1.1"),
                ))
            } else {
                match body {
                    None => Err((
                        400,
                        "SerializationException".into(),
                        "the body is not a JSON object".into(),
                    )),
                    Some(b) if !b.is_object() => Err((
                        400,
                        "SerializationException".into(),
                        "the body is not a JSON object".into(),
                    )),
                    Some(b) => dispatch(&mut st, &action, &b, index, &mut rec),
                }
            }
        }
    };
    let response = match result {
        Ok(v) => respond(index, 200, &v),
        Err((status, code, message)) => {
            let r = respond(index, status, &error_body(&code, &message));
            rec.status = status;
            rec.error = Some(code);
            rec.message = Some(message);
            r
        }
    };
    st.requests.push(rec);
    Ok(response)
}

fn dispatch(st: &mut State, action: &str, b: &Value, index: usize, rec: &mut LogsRequest) -> Result<Value, Failure> {
    match action {
        "CreateLogGroup" => create_log_group(st, b),
        "CreateLogStream" => create_log_stream(st, b),
        "PutRetentionPolicy" => put_retention_policy(st, b),
        "PutLogEvents" => put_log_events(st, b, index, rec),
        "" => Err((400, "UnknownOperationException".into(), "missing X-Amz-Target".into())),
        other => Err((
            400,
            "UnknownOperationException".into(),
            format!("{other}: not served here"),
        )),
    }
}

fn required<'a>(b: &'a Value, member: &str) -> Result<&'a str, Failure> {
    b.get(member)
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(format!("1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null")))
}

/// "logGroupName … Length Constraints: Minimum length of 1. Maximum length of 512. Pattern:
/// `[\.\-_/#A-Za-z0-9]+`" (API reference, `CreateLogGroup`).
fn check_group_name(name: &str) -> Result<(), Failure> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '/' | '#'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "The value {name:?} for parameter logGroupName is invalid."
        )))
    }
}

/// "logStreamName … Minimum length of 1. Maximum length of 512. Pattern: `[^:*]*`" (API
/// reference, `CreateLogStream`).
fn check_stream_name(name: &str) -> Result<(), Failure> {
    if name.is_empty() || name.len() > 512 || name.contains([':', '*']) {
        Err(invalid(format!(
            "The value {name:?} for parameter logStreamName is invalid."
        )))
    } else {
        Ok(())
    }
}

fn create_log_group(st: &mut State, b: &Value) -> Result<Value, Failure> {
    let group = required(b, "logGroupName")?;
    check_group_name(group)?;
    if st.groups.contains_key(group) {
        return Err(already_exists("The specified log group already exists"));
    }
    // "Valid Values: STANDARD | INFREQUENT_ACCESS | DELIVERY" (API reference, `CreateLogGroup`).
    let class = match b.get("logGroupClass").and_then(Value::as_str) {
        None => "STANDARD",
        Some(c @ ("STANDARD" | "INFREQUENT_ACCESS" | "DELIVERY")) => c,
        Some(other) => {
            return Err(invalid(format!(
                "1 validation error detected: Value '{other}' at 'logGroupClass' failed to satisfy constraint: \
                 Member must satisfy enum value set: [STANDARD, INFREQUENT_ACCESS, DELIVERY]"
            )));
        }
    };
    st.groups.insert(
        group.to_string(),
        Group {
            class: class.to_string(),
            ..Group::default()
        },
    );
    Ok(json!({}))
}

fn create_log_stream(st: &mut State, b: &Value) -> Result<Value, Failure> {
    let group = required(b, "logGroupName")?;
    let stream = required(b, "logStreamName")?;
    check_group_name(group)?;
    check_stream_name(stream)?;
    let Some(g) = st.groups.get_mut(group) else {
        return Err(not_found("The specified log group does not exist."));
    };
    if g.streams.contains_key(stream) {
        return Err(already_exists("The specified log stream already exists"));
    }
    g.streams.insert(stream.to_string(), Vec::new());
    Ok(json!({}))
}

fn put_retention_policy(st: &mut State, b: &Value) -> Result<Value, Failure> {
    let group = required(b, "logGroupName")?;
    let days = b
        .get("retentionInDays")
        .and_then(Value::as_i64)
        .ok_or_else(|| invalid("1 validation error detected: Value null at 'retentionInDays' failed to satisfy constraint: Member must not be null"))?;
    if !RETENTION_DAYS.contains(&days) {
        return Err(invalid(format!(
            "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {RETENTION_DAYS:?}"
        )));
    }
    let Some(g) = st.groups.get_mut(group) else {
        return Err(not_found("The specified log group does not exist."));
    };
    g.retention_days = Some(days);
    Ok(json!({}))
}

/// `PutLogEvents`, rule by rule (API reference, `PutLogEvents`); the first broken rule answers.
#[allow(
    clippy::too_many_lines,
    reason = "one rule after the other, in the order of the API reference"
)]
fn put_log_events(st: &mut State, b: &Value, index: usize, rec: &mut LogsRequest) -> Result<Value, Failure> {
    let group = required(b, "logGroupName")?.to_string();
    let stream = required(b, "logStreamName")?.to_string();
    let raw_events = b
        .get("logEvents")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    // "logEvents … Array Members: Minimum number of 1 item. Maximum number of 10000 items."
    if raw_events.is_empty() {
        return Err(invalid(
            "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length greater than or equal to 1",
        ));
    }
    if raw_events.len() > LOGS_MAX_EVENTS {
        return Err(invalid(format!(
            "1 validation error detected: Value at 'logEvents' failed to satisfy constraint: Member must have length less than or equal to {LOGS_MAX_EVENTS} (got {})",
            raw_events.len()
        )));
    }
    let mut events: Vec<(i64, &str)> = Vec::with_capacity(raw_events.len());
    for (i, e) in raw_events.iter().enumerate() {
        let (Some(ts), Some(message)) = (
            e.get("timestamp").and_then(Value::as_i64),
            e.get("message").and_then(Value::as_str),
        ) else {
            return Err(invalid(format!(
                "logEvents.{}: timestamp and message are required",
                i + 1
            )));
        };
        // InputLogEvent: "message … Minimum length of 1"; "timestamp … Valid Range: Minimum value
        // of 0".
        if message.is_empty() {
            return Err(invalid(format!(
                "1 validation error detected: Value '' at 'logEvents.{}.member.message' failed to satisfy constraint: Member must have length greater than or equal to 1",
                i + 1
            )));
        }
        if ts < 0 {
            return Err(invalid(format!("logEvents.{}: timestamp {ts} is negative", i + 1)));
        }
        if message.len() > LOGS_MAX_MESSAGE_BYTES {
            return Err(invalid(format!(
                "Log event {} is {} bytes; an event can be no larger than 1 MB ({LOGS_MAX_MESSAGE_BYTES} message bytes)",
                i + 1,
                message.len()
            )));
        }
        events.push((ts, message));
    }
    if rec.bytes > LOGS_MAX_BATCH_BYTES {
        return Err(invalid(format!(
            "Upload too large: {} bytes exceeds limit of {LOGS_MAX_BATCH_BYTES}",
            rec.bytes
        )));
    }
    if let Some(i) = events.windows(2).position(|w| w[1].0 < w[0].0) {
        return Err(invalid(format!(
            "Log events in a single PutLogEvents request must be in chronological order (event {} at {} follows {})",
            i + 2,
            events[i + 1].0,
            events[i].0
        )));
    }
    let now = st.now_ms();
    let Some(g) = st.groups.get_mut(&group) else {
        return Err(not_found("The specified log group does not exist."));
    };
    if !g.streams.contains_key(&stream) {
        return Err(not_found("The specified log stream does not exist."));
    }
    // In chronological order the too-old events are a prefix and the too-new ones a suffix.
    let too_old_end = events.partition_point(|(ts, _)| *ts < now - MAX_AGE_MS);
    let too_new_start = events.partition_point(|(ts, _)| *ts <= now + MAX_AHEAD_MS);
    let expired_end = g
        .retention_days
        .map_or(0, |days| events.partition_point(|(ts, _)| *ts < now - days * DAY_MS))
        .min(too_new_start);
    let first_valid = too_old_end.max(expired_end);
    if too_new_start > first_valid {
        let span = events[too_new_start - 1].0 - events[first_valid].0;
        if span > MAX_SPAN_MS {
            return Err(invalid(format!(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours (spans {span} ms)"
            )));
        }
    }
    let stored: Vec<StoredLogEvent> = events[first_valid..too_new_start]
        .iter()
        .map(|(ts, m)| StoredLogEvent {
            timestamp_ms: *ts,
            message: (*m).to_string(),
            request: index,
        })
        .collect();
    rec.stored = stored.len();
    g.streams.get_mut(&stream).expect("checked above").extend(stored);

    let info = RejectedInfo {
        too_new_start: (too_new_start < events.len()).then_some(too_new_start),
        too_old_end: (too_old_end > 0).then_some(too_old_end),
        expired_end: (expired_end > too_old_end).then_some(expired_end),
    };
    let mut out = json!({ "nextSequenceToken": format!("{index:056}") });
    if info != RejectedInfo::default() {
        rec.rejected = Some(info);
        let mut r = serde_json::Map::new();
        if let Some(i) = info.too_new_start {
            r.insert("tooNewLogEventStartIndex".into(), json!(i));
        }
        if let Some(i) = info.too_old_end {
            r.insert("tooOldLogEventEndIndex".into(), json!(i));
        }
        if let Some(i) = info.expired_end {
            r.insert("expiredLogEventEndIndex".into(), json!(i));
        }
        out["rejectedLogEventsInfo"] = Value::Object(r);
    }
    Ok(out)
}

fn error_body(code: &str, message: &str) -> Value {
    json!({ "__type": code, "message": message })
}

fn respond(index: usize, status: u16, body: &Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-RequestId", format!("00000000-0000-4000-8000-{index:012x}"))
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}
