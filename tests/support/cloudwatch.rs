//! The strict local CloudWatch metrics endpoint: rpc-v2-cbor `PutMetricData`
//! on 127.0.0.1, enforcing the API limits that no third-party emulator enforces, with scripted
//! faults, and a record of everything it accepted.
//!
//! What was verified and what is inferred:
//! - **Verified** against aws-sdk-cloudwatch 1.140 (this file's sanity test pins it): the request
//!   path, `smithy-protocol: rpc-v2-cbor`, gzip from 10,240 bytes, the member names, `Timestamp`
//!   as tag 1 around a float of epoch seconds; and that the SDK takes the error code from the
//!   `x-amzn-query-error: <Code>;<Sender|Receiver>` header (awsQuery compatibility,
//!   `aws_query_compatible_errors.rs`), which wins over `__type` in the body
//!   (`protocol_serde::parse_http_error_metadata`).
//! - **From the API reference**: the limits and the error codes (`InvalidParameterValue`,
//!   `MissingParameter`, `InvalidParameterCombination`, `Throttling`, `InternalServiceError`).
//! - **Inferred**, not observed on the real service: the exact `__type` strings (shape ids such as
//!   `com.amazonaws.cloudwatch#InvalidParameterValueException`), the message wording, and that an
//!   over-large body is a 400 `InvalidParameterValue` (AWS documents only "1 MB"; the real front
//!   end may answer 413).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt as _, Full};
use hyper::body::{Bytes, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use minicbor::Decoder;
use minicbor::data::Type;

/// `POST` path of PutMetricData in rpc-v2-cbor.
pub const PUT_METRIC_DATA_PATH: &str = "/service/GraniteServiceVersion20100801/operation/PutMetricData";

/// API limits (PutMetricData API reference).
pub const MAX_BODY_BYTES: usize = 1_000_000;
pub const MAX_METRICS: usize = 1000;
pub const MAX_DIMENSIONS: usize = 30;
pub const MAX_VALUES: usize = 150;
const TWO_WEEKS_S: f64 = 14.0 * 24.0 * 3600.0;
const TWO_HOURS_S: f64 = 2.0 * 3600.0;
/// 2^360: CloudWatch rejects larger magnitudes.
const MAX_MAGNITUDE: f64 = 2.348_542_582_773_833e108;

const STANDARD_UNITS: &[&str] = &[
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];

/// A scripted answer, taken one per request before anything else is looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 400 `Throttling` (what CloudWatch answers when the PutMetricData rate is exceeded).
    Throttle,
    /// A 5xx: 500 `InternalServiceError`, 503 `ServiceUnavailable`, or any status.
    Status(u16),
    /// Any error: status, code, message.
    Error(u16, String, String),
    /// Wait this long, then answer normally.
    Stall(Duration),
}

/// One datum the endpoint accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct AcceptedDatum {
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: Vec<(String, String)>,
    /// Epoch milliseconds (from the CBOR epoch-seconds float), when given.
    pub timestamp_ms: Option<i64>,
    pub value: Option<f64>,
    pub values: Vec<f64>,
    pub counts: Vec<f64>,
    /// `StatisticValues`: `[SampleCount, Sum, Minimum, Maximum]`.
    pub statistic_values: Option<[f64; 4]>,
    pub unit: Option<String>,
    pub storage_resolution: Option<i64>,
    /// Index of the request in [`StrictCloudwatch::requests`].
    pub request: usize,
}

/// One request as it arrived, and what the endpoint answered.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub path: String,
    /// Lower-case names, `authorization` left out.
    pub headers: Vec<(String, String)>,
    pub gzip: bool,
    pub wire_bytes: usize,
    /// The decompressed body length.
    pub body_bytes: usize,
    /// `MetricData` entries in the body (0 when it could not be decoded).
    pub datums: usize,
    pub status: u16,
    /// The error code answered, if any.
    pub error: Option<String>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct State {
    faults: VecDeque<Fault>,
    /// Answers every request while set (after the scripted ones run out).
    sticky: Option<Fault>,
    accepted: Vec<AcceptedDatum>,
    requests: Vec<RecordedRequest>,
    raw: Vec<Vec<u8>>,
}

/// The endpoint: a thread with its own tokio runtime serving `http://127.0.0.1:PORT`; stopped on
/// drop. Independent of the test's runtime (paused or not).
#[derive(Debug)]
pub struct StrictCloudwatch {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StrictCloudwatch {
    pub fn start() -> StrictCloudwatch {
        let state = Arc::new(Mutex::new(State::default()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("listener address");
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let st = state.clone();
        let thread = thread::Builder::new()
            .name("strict-cloudwatch".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime for the strict CloudWatch endpoint");
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
                                    let _ = hyper::server::conn::http1::Builder::new()
                                        .serve_connection(TokioIo::new(stream), svc)
                                        .await;
                                });
                            }
                        }
                    }
                });
            })
            .expect("spawn the strict CloudWatch endpoint");
        StrictCloudwatch {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, for `endpoint_url` or `AWS_ENDPOINT_URL_CLOUDWATCH`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues scripted answers for the next requests, in order.
    pub fn push_faults(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().faults.extend(faults);
    }

    /// Answers every request with `fault` until called with `None`.
    pub fn set_sticky(&self, fault: Option<Fault>) {
        self.lock().sticky = fault;
    }

    pub fn accepted(&self) -> Vec<AcceptedDatum> {
        self.lock().accepted.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.lock().requests.clone()
    }

    pub fn request_count(&self) -> usize {
        self.lock().requests.len()
    }

    /// The raw (still compressed) request bodies.
    pub fn raw_bodies(&self) -> Vec<Vec<u8>> {
        self.lock().raw.clone()
    }
}

impl Drop for StrictCloudwatch {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An answer before it is recorded.
struct Answer {
    status: u16,
    error: Option<(String, String)>,
}

impl Answer {
    fn ok() -> Self {
        Answer {
            status: 200,
            error: None,
        }
    }

    fn err(status: u16, code: &str, message: impl Into<String>) -> Self {
        Answer {
            status,
            error: Some((code.to_string(), message.into())),
        }
    }
}

#[allow(
    clippy::too_many_lines,
    reason = "one request, top to bottom: record, fault, decode, validate, answer"
)]
async fn handle(state: Arc<Mutex<State>>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
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
    let method = req.method().clone();
    let raw = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes().to_vec())
        .unwrap_or_default();
    let fault = {
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        st.faults.pop_front().or_else(|| st.sticky.clone())
    };
    if let Some(Fault::Stall(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let gzip = header("content-encoding").is_some_and(|v| v.contains("gzip"));
    let body = if gzip { gunzip(&raw) } else { Ok(raw.clone()) };
    let mut decoded_datums = 0;
    let mut accepted = Vec::new();
    let answer = match fault {
        Some(Fault::Throttle) => Answer::err(400, "Throttling", "Rate exceeded"),
        Some(Fault::Status(s)) => {
            let code = if s == 503 {
                "ServiceUnavailable"
            } else {
                "InternalServiceError"
            };
            Answer::err(s, code, "injected fault")
        }
        Some(Fault::Error(s, code, msg)) => Answer::err(s, &code, msg),
        Some(Fault::Stall(_)) | None => {
            if method != hyper::Method::POST || path != PUT_METRIC_DATA_PATH {
                Answer::err(
                    404,
                    "UnknownOperationException",
                    format!("{method} {path}: not served here"),
                )
            } else if header("smithy-protocol") != Some("rpc-v2-cbor") {
                Answer::err(400, "InvalidAction", "missing header smithy-protocol: rpc-v2-cbor")
            } else {
                match body {
                    Err(e) => Answer::err(400, "InvalidParameterValue", format!("bad gzip body: {e}")),
                    Ok(body) if body.len() > MAX_BODY_BYTES => Answer::err(
                        400,
                        "InvalidParameterValue",
                        format!("request body of {} bytes exceeds the 1 MB limit", body.len()),
                    ),
                    Ok(body) => match decode_value(&body) {
                        Err(e) => Answer::err(400, "SerializationException", e),
                        Ok(v) => {
                            decoded_datums = v.get("MetricData").and_then(Cbor::as_array).map_or(0, <[Cbor]>::len);
                            match validate(&v) {
                                Ok(ds) => {
                                    accepted = ds;
                                    Answer::ok()
                                }
                                Err((code, msg)) => Answer::err(400, code, msg),
                            }
                        }
                    },
                }
            }
        }
    };
    let body_bytes = if gzip {
        gunzip(&raw).map_or(0, |b| b.len())
    } else {
        raw.len()
    };
    {
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        let index = st.requests.len();
        st.requests.push(RecordedRequest {
            path,
            headers,
            gzip,
            wire_bytes: raw.len(),
            body_bytes,
            datums: decoded_datums,
            status: answer.status,
            error: answer.error.as_ref().map(|(c, _)| c.clone()),
        });
        st.raw.push(raw);
        for mut d in accepted {
            d.request = index;
            st.accepted.push(d);
        }
    }
    Ok(respond(&answer))
}

fn respond(a: &Answer) -> Response<Full<Bytes>> {
    let mut b = Response::builder()
        .status(StatusCode::from_u16(a.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("smithy-protocol", "rpc-v2-cbor")
        .header("content-type", "application/cbor")
        .header("x-amzn-requestid", "00000000-0000-4000-8000-000000000000");
    let body = match &a.error {
        None => vec![0xa0], // an empty map
        Some((code, message)) => {
            let fault = if a.status >= 500 { "Receiver" } else { "Sender" };
            b = b.header("x-amzn-query-error", format!("{code};{fault}"));
            let mut out = vec![0xa2];
            cbor_text(&mut out, "__type");
            cbor_text(&mut out, &type_of(code));
            cbor_text(&mut out, "message");
            cbor_text(&mut out, message);
            out
        }
    };
    b.body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// The `__type` of an error: the modeled shape id where one exists (inferred, see module doc).
fn type_of(code: &str) -> String {
    let shape = match code {
        "InvalidParameterValue" => "InvalidParameterValueException",
        "MissingParameter" => "MissingRequiredParameterException",
        "InvalidParameterCombination" => "InvalidParameterCombinationException",
        "InternalServiceError" => "InternalServiceFault",
        other => return other.to_string(),
    };
    format!("com.amazonaws.cloudwatch#{shape}")
}

fn cbor_text(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    match n {
        0..=23 => out.push(0x60 | u8::try_from(n).unwrap_or(0)),
        24..=0xff => out.extend([0x78, u8::try_from(n).unwrap_or(0)]),
        _ => {
            out.push(0x79);
            out.extend(u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
    out.extend(s.as_bytes());
}

fn gunzip(raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    Ok(out)
}

/// A decoded CBOR item.
#[derive(Debug, Clone, PartialEq)]
pub enum Cbor {
    Int(i128),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Array(Vec<Cbor>),
    Map(Vec<(Cbor, Cbor)>),
    Tag(u64, Box<Cbor>),
    Bool(bool),
    Null,
}

impl Cbor {
    /// The value of text key `key` in a map.
    pub fn get(&self, key: &str) -> Option<&Cbor> {
        match self {
            Cbor::Map(m) => m
                .iter()
                .find(|(k, _)| matches!(k, Cbor::Text(t) if t == key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Cbor]> {
        match self {
            Cbor::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Cbor::Text(s) => Some(s),
            _ => None,
        }
    }

    #[allow(clippy::cast_precision_loss, reason = "test values are small")]
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cbor::Float(f) => Some(*f),
            Cbor::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Cbor::Int(i) => i64::try_from(*i).ok(),
            _ => None,
        }
    }
}

/// Decodes one whole CBOR item (definite and indefinite lengths).
pub fn decode_value(bytes: &[u8]) -> Result<Cbor, String> {
    let mut d = Decoder::new(bytes);
    let v = decode(&mut d)?;
    if d.position() != bytes.len() {
        return Err(format!(
            "{} trailing bytes after the CBOR item",
            bytes.len() - d.position()
        ));
    }
    Ok(v)
}

fn decode(d: &mut Decoder<'_>) -> Result<Cbor, String> {
    let e = |e: minicbor::decode::Error| e.to_string();
    Ok(match d.datatype().map_err(e)? {
        Type::Bool => Cbor::Bool(d.bool().map_err(e)?),
        Type::Null | Type::Undefined => {
            d.skip().map_err(e)?;
            Cbor::Null
        }
        Type::U8 | Type::U16 | Type::U32 | Type::U64 | Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            Cbor::Int(d.i128().map_err(e)?)
        }
        Type::F32 => Cbor::Float(f64::from(d.f32().map_err(e)?)),
        Type::F64 => Cbor::Float(d.f64().map_err(e)?),
        Type::String => Cbor::Text(d.str().map_err(e)?.to_string()),
        Type::StringIndef => {
            let mut s = String::new();
            for part in d.str_iter().map_err(e)? {
                s.push_str(part.map_err(e)?);
            }
            Cbor::Text(s)
        }
        Type::Bytes => Cbor::Bytes(d.bytes().map_err(e)?.to_vec()),
        Type::Array | Type::ArrayIndef => {
            let mut out = Vec::new();
            match d.array().map_err(e)? {
                Some(n) => {
                    for _ in 0..n {
                        out.push(decode(d)?);
                    }
                }
                None => loop {
                    if d.datatype().map_err(e)? == Type::Break {
                        d.skip().map_err(e)?;
                        break;
                    }
                    out.push(decode(d)?);
                },
            }
            Cbor::Array(out)
        }
        Type::Map | Type::MapIndef => {
            let mut out = Vec::new();
            match d.map().map_err(e)? {
                Some(n) => {
                    for _ in 0..n {
                        let k = decode(d)?;
                        out.push((k, decode(d)?));
                    }
                }
                None => loop {
                    if d.datatype().map_err(e)? == Type::Break {
                        d.skip().map_err(e)?;
                        break;
                    }
                    let k = decode(d)?;
                    out.push((k, decode(d)?));
                },
            }
            Cbor::Map(out)
        }
        Type::Tag => {
            let t = u64::from(d.tag().map_err(e)?);
            Cbor::Tag(t, Box::new(decode(d)?))
        }
        other => return Err(format!("unexpected CBOR type {other} at {}", d.position())),
    })
}

type Invalid = (&'static str, String);

fn invalid(msg: String) -> Invalid {
    ("InvalidParameterValue", msg)
}

/// Checks a request against the PutMetricData API reference's limits; the first broken rule answers.
fn validate(v: &Cbor) -> Result<Vec<AcceptedDatum>, Invalid> {
    let namespace = v
        .get("Namespace")
        .and_then(Cbor::as_str)
        .ok_or(("MissingParameter", "The parameter Namespace is required.".to_string()))?;
    if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with("AWS/") || namespace.starts_with(':') {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid."
        )));
    }
    let data = v.get("MetricData").and_then(Cbor::as_array).unwrap_or(&[]);
    let entity = v.get("EntityMetricData").and_then(Cbor::as_array).map_or(0, |e| {
        e.iter()
            .map(|x| x.get("MetricData").and_then(Cbor::as_array).map_or(0, <[Cbor]>::len))
            .sum()
    });
    if data.is_empty() && entity == 0 {
        return Err(("MissingParameter", "The parameter MetricData is required.".to_string()));
    }
    if data.len() + entity > MAX_METRICS {
        return Err(invalid(format!(
            "The collection MetricData must not have a size greater than {MAX_METRICS}."
        )));
    }
    let now_s = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    data.iter()
        .enumerate()
        .map(|(i, m)| datum(namespace, i + 1, m, now_s))
        .collect()
}

#[allow(
    clippy::too_many_lines,
    reason = "one rule after the other, in the order of the API reference"
)]
fn datum(namespace: &str, n: usize, m: &Cbor, now_s: f64) -> Result<AcceptedDatum, Invalid> {
    let at = |field: &str| format!("MetricData.member.{n}.{field}");
    let name = m.get("MetricName").and_then(Cbor::as_str).ok_or_else(|| {
        (
            "MissingParameter",
            format!("The parameter {} is required.", at("MetricName")),
        )
    })?;
    if name.is_empty() || name.len() > 255 {
        return Err(invalid(format!(
            "The value for parameter {} is invalid.",
            at("MetricName")
        )));
    }
    let dims = m.get("Dimensions").and_then(Cbor::as_array).unwrap_or(&[]);
    if dims.len() > MAX_DIMENSIONS {
        return Err(invalid(format!(
            "The collection {} must not have a size greater than {MAX_DIMENSIONS}.",
            at("Dimensions")
        )));
    }
    let mut dimensions = Vec::with_capacity(dims.len());
    for (j, d) in dims.iter().enumerate() {
        let (Some(k), Some(val)) = (
            d.get("Name").and_then(Cbor::as_str),
            d.get("Value").and_then(Cbor::as_str),
        ) else {
            return Err((
                "MissingParameter",
                format!(
                    "The parameters {0}.member.{1}.Name and Value are required.",
                    at("Dimensions"),
                    j + 1
                ),
            ));
        };
        if k.is_empty() || k.len() > 255 || val.is_empty() || val.len() > 1024 {
            return Err(invalid(format!(
                "The value for {}.member.{} is invalid.",
                at("Dimensions"),
                j + 1
            )));
        }
        dimensions.push((k.to_string(), val.to_string()));
    }
    let value = m.get("Value").and_then(Cbor::as_f64);
    let nums = |key: &str| -> Vec<f64> {
        m.get(key)
            .and_then(Cbor::as_array)
            .map(|a| a.iter().filter_map(Cbor::as_f64).collect())
            .unwrap_or_default()
    };
    let values = nums("Values");
    let counts = nums("Counts");
    let stats = m.get("StatisticValues");
    let given = usize::from(value.is_some()) + usize::from(!values.is_empty()) + usize::from(stats.is_some());
    if given > 1 {
        return Err((
            "InvalidParameterCombination",
            format!(
                "The parameters {}, Values and StatisticValues are mutually exclusive.",
                at("Value")
            ),
        ));
    }
    if given == 0 {
        return Err((
            "MissingParameter",
            format!("One of {}, Values or StatisticValues is required.", at("Value")),
        ));
    }
    if values.len() > MAX_VALUES {
        return Err(invalid(format!(
            "The collection {} must not have a size greater than {MAX_VALUES}.",
            at("Values")
        )));
    }
    if !counts.is_empty() && counts.len() != values.len() {
        return Err(invalid(format!(
            "{} and {} must have the same length.",
            at("Values"),
            at("Counts")
        )));
    }
    let mut all = values.clone();
    all.extend(value);
    let mut statistic_values = None;
    if let Some(s) = stats {
        // All four members are required (`StatisticSet`, CloudWatch API reference).
        let mut four = [0.0; 4];
        for (i, k) in ["SampleCount", "Sum", "Minimum", "Maximum"].into_iter().enumerate() {
            let Some(x) = s.get(k).and_then(Cbor::as_f64) else {
                return Err((
                    "MissingParameter",
                    format!("The parameter {}.{k} is required.", at("StatisticValues")),
                ));
            };
            four[i] = x;
        }
        all.extend(four);
        statistic_values = Some(four);
    }
    if let Some(bad) = all.iter().find(|x| !x.is_finite() || x.abs() > MAX_MAGNITUDE) {
        return Err(invalid(format!(
            "The value {bad} for parameter {} is invalid.",
            at("Value")
        )));
    }
    let unit = m.get("Unit").and_then(Cbor::as_str);
    if let Some(u) = unit
        && !STANDARD_UNITS.contains(&u)
    {
        return Err(invalid(format!(
            "The value {u} for parameter {} is invalid.",
            at("Unit")
        )));
    }
    let storage_resolution = m.get("StorageResolution").and_then(Cbor::as_i64);
    if let Some(r) = storage_resolution
        && r != 1
        && r != 60
    {
        return Err(invalid(format!(
            "The value {r} for parameter {} is invalid.",
            at("StorageResolution")
        )));
    }
    let timestamp_s = match m.get("Timestamp") {
        None => None,
        Some(Cbor::Tag(1, inner)) => Some(
            inner
                .as_f64()
                .ok_or_else(|| invalid(format!("{} is not epoch seconds", at("Timestamp"))))?,
        ),
        Some(other) => {
            return Err(invalid(format!(
                "{} is not a CBOR tag 1 timestamp: {other:?}",
                at("Timestamp")
            )));
        }
    };
    if let Some(ts) = timestamp_s {
        if ts < now_s - TWO_WEEKS_S {
            return Err(invalid(format!(
                "The parameter {} must specify a time no more than two weeks in the past.",
                at("Timestamp")
            )));
        }
        if ts > now_s + TWO_HOURS_S {
            return Err(invalid(format!(
                "The parameter {} must specify a time no more than two hours in the future.",
                at("Timestamp")
            )));
        }
    }
    #[allow(clippy::cast_possible_truncation, reason = "epoch milliseconds fit an i64")]
    Ok(AcceptedDatum {
        namespace: namespace.to_string(),
        metric_name: name.to_string(),
        dimensions,
        timestamp_ms: timestamp_s.map(|s| (s * 1000.0).round() as i64),
        value,
        values,
        counts,
        statistic_values,
        unit: unit.map(str::to_string),
        storage_resolution,
        request: 0,
    })
}

/// An `SdkConfig` for in-process tests: static test credentials, `us-east-1`, `endpoint` for
/// every client, and the SDK's standard retries with millisecond backoff. Nothing comes from the
/// environment or `~/.aws`.
pub fn test_sdk_config(endpoint: &str) -> aws_types::SdkConfig {
    use aws_credential_types::Credentials;
    use aws_credential_types::provider::SharedCredentialsProvider;
    aws_types::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_types::region::Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            super::sigv4::TEST_ACCESS_KEY_ID,
            super::sigv4::TEST_SECRET_ACCESS_KEY,
            None,
            None,
            "kinsight-test",
        )))
        .endpoint_url(endpoint)
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(50)),
        )
        .build()
}

/// A `ministack` of one test's own (ministack 1.5.33 with `cbor2`, without which it answers 200 but
/// stores nothing), on a free port of 127.0.0.1, killed on drop: the read-back oracle for
/// `PutMetricData` (`ListMetrics`, `GetMetricData`). It validates nothing; limits are the strict
/// endpoint's job.
#[derive(Debug)]
pub struct Ministack {
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    child: std::process::Child,
    log_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Ministack {
    /// Starts `$KINSIGHT_TEST_MINISTACK_SERVER` and waits for `/_ministack/health`. `None` (one
    /// line on stderr) without the variable, which fails under `CI=true`.
    pub fn start() -> Option<Ministack> {
        let server = super::require_env("KINSIGHT_TEST_MINISTACK_SERVER")?;
        let dir = tempfile::Builder::new()
            .prefix("kinsight-ministack.")
            .tempdir()
            .expect("a temporary directory for ministack");
        for _attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("bind 127.0.0.1:0")
                .port();
            let log_path = dir.path().join(format!("ministack-{port}.log"));
            let log = std::fs::File::create(&log_path).expect("ministack's log file");
            let mut child = std::process::Command::new(&server)
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.path())
                .env("PYTHONUNBUFFERED", "1")
                .env("BIND_HOST", "127.0.0.1")
                .env("GATEWAY_PORT", port.to_string())
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone().expect("duplicate the log file"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {server}: {e}"));
            let endpoint = format!("http://127.0.0.1:{port}");
            let health = format!("{endpoint}/_ministack/health");
            let deadline = super::Deadline::after(Duration::from_secs(30));
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost the port, or broken: try again, then panic below
                }
                if let Ok((200, _)) = super::try_http_request("GET", &health, &[], b"") {
                    return Some(Ministack {
                        endpoint,
                        child,
                        log_path,
                        _dir: dir,
                    });
                }
                if deadline.passed() {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            assert!(
                log.contains("in use"),
                "ministack did not come up on port {port}; its log:\n{log}"
            );
        }
        panic!("ministack did not come up after three ports")
    }

    /// Everything ministack has logged so far (a missing `cbor2` shows here as
    /// `CBOR decode error`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Ministack {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
