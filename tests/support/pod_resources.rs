//! A fake kubelet pod-resources API (`v1.PodResourcesLister/List`) on a Unix socket: gRPC over
//! HTTP/2 by hand (a 5-byte frame header, `grpc-status` in the trailers), with its own prost
//! messages written from the kubelet's `api.proto` field numbers, so the agent's generated
//! client is checked against an independent encoding. Needs a tokio runtime.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::StreamBody;
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;

#[derive(Clone, PartialEq, Message)]
pub struct ListPodResourcesResponse {
    #[prost(message, repeated, tag = "1")]
    pub pod_resources: Vec<PodResources>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PodResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(message, repeated, tag = "3")]
    pub containers: Vec<ContainerResources>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ContainerResources {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, repeated, tag = "2")]
    pub devices: Vec<ContainerDevices>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ContainerDevices {
    #[prost(string, tag = "1")]
    pub resource_name: String,
    #[prost(string, repeated, tag = "2")]
    pub device_ids: Vec<String>,
}

/// One pod whose `container` holds `resource` devices `ids`.
pub fn holding(namespace: &str, pod: &str, container: &str, resource: &str, ids: &[&str]) -> PodResources {
    PodResources {
        name: pod.into(),
        namespace: namespace.into(),
        containers: vec![ContainerResources {
            name: container.into(),
            devices: vec![ContainerDevices {
                resource_name: resource.into(),
                device_ids: ids.iter().map(|s| (*s).to_string()).collect(),
            }],
        }],
    }
}

/// A running fake kubelet; the listener task stops on drop.
pub struct FakeKubelet {
    pub socket: PathBuf,
    calls: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeKubelet {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeKubelet {
    /// Serves `response` to every `List` at `dir/kubelet.sock`.
    pub fn start(dir: &Path, response: &ListPodResourcesResponse) -> FakeKubelet {
        let socket = dir.join("kubelet.sock");
        let listener = tokio::net::UnixListener::bind(&socket).expect("bind the fake kubelet socket");
        let calls = Arc::new(AtomicUsize::new(0));
        let body = {
            let message = response.encode_to_vec();
            let mut b = BytesMut::with_capacity(5 + message.len());
            b.put_u8(0); // not compressed
            b.put_u32(u32::try_from(message.len()).unwrap());
            b.put_slice(&message);
            b.freeze()
        };
        let counter = calls.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (body, counter) = (body.clone(), counter.clone());
                let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let ok = req.uri().path() == "/v1.PodResourcesLister/List";
                    if ok {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    let body = body.clone();
                    async move { Ok::<_, Infallible>(answer(ok, body)) }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FakeKubelet { socket, calls, task }
    }

    /// `List` calls so far.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

type Body = StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// The gRPC answer: the message, then `grpc-status: 0`; or `UNIMPLEMENTED` (12) for another
/// method.
fn answer(ok: bool, message: Bytes) -> hyper::Response<Body> {
    let mut trailers = hyper::HeaderMap::new();
    let status = if ok { "0" } else { "12" };
    trailers.insert("grpc-status", status.parse().unwrap());
    let mut frames = Vec::new();
    if ok {
        frames.push(Ok(Frame::data(message)));
    }
    frames.push(Ok(Frame::trailers(trailers)));
    hyper::Response::builder()
        .header("content-type", "application/grpc")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .unwrap()
}
