//! A gRPC client of containerd's own API over its Unix socket: the calls the runtime source makes,
//! each bounded by a timeout, each in the Kubernetes namespace.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

use super::error::RuntimeError;
use super::proto::containerd::services::containers::v1 as containers;
use super::proto::containerd::services::events::v1 as events;
use super::proto::containerd::services::introspection::v1 as introspection;
use super::proto::containerd::services::snapshots::v1 as snapshots;
use super::proto::containerd::services::tasks::v1 as tasks;
use super::proto::containerd::services::version::v1 as version;
use super::proto::containerd::types::Envelope;
use super::proto::containerd::v1::types::Process;

pub use containers::Container;

/// The containerd namespace the CRI plugin puts every Kubernetes container in
/// (`constants.K8sContainerdNamespace` in containerd's `pkg/cri/constants`).
pub const K8S_NAMESPACE: &str = "k8s.io";

/// The gRPC metadata key that selects a containerd namespace (`namespaces.GRPCHeader` in
/// containerd's `namespaces/grpc.go`).
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A unary call that takes longer is abandoned (and counted); the next refresh asks again.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Connecting to a local socket is immediate or never.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// A container list carries each container's OCI spec (kilobytes each; more with long
/// environments). tonic refuses messages above 4 MiB by default, so each streamed container is
/// allowed up to this much.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// One connection to containerd. Cheap to clone (tonic channels multiplex over one HTTP/2
/// connection).
#[derive(Debug, Clone)]
pub struct Client {
    channel: Channel,
    socket: PathBuf,
}

/// A request in the Kubernetes namespace.
fn request<T>(message: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(message);
    r.metadata_mut()
        .insert(NAMESPACE_HEADER, MetadataValue::from_static(K8S_NAMESPACE));
    r
}

/// `fut` within [`CALL_TIMEOUT`], its error named after `call`.
async fn bounded<T>(
    call: &'static str,
    fut: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, RuntimeError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(source)) => Err(RuntimeError::Call { call, source }),
        Err(_) => Err(RuntimeError::Timeout {
            call,
            timeout: CALL_TIMEOUT,
        }),
    }
}

impl Client {
    /// Connects to the socket at `socket` (a path on this machine, the host root already
    /// applied).
    pub async fn connect(socket: &Path) -> Result<Client, RuntimeError> {
        if std::fs::symlink_metadata(socket).is_err() {
            return Err(RuntimeError::Missing {
                path: socket.to_path_buf(),
            });
        }
        let channel = crate::host::unix_grpc::channel(socket, Some(CONNECT_TIMEOUT))
            .await
            .map_err(|source| RuntimeError::Connect {
                path: socket.to_path_buf(),
                source,
            })?;
        Ok(Client {
            channel,
            socket: socket.to_path_buf(),
        })
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// containerd's version (`ctr version`), for `kinsight check` and the startup line.
    pub async fn version(&self) -> Result<String, RuntimeError> {
        let mut c = version::version_client::VersionClient::new(self.channel.clone());
        bounded("Version", c.version(tonic::Request::new(())))
            .await
            .map(|v| v.version)
    }

    /// Every container of the Kubernetes namespace. `ListStream` sends one message per
    /// container, so a node with hundreds of large specs never meets the message size limit.
    pub async fn containers(&self) -> Result<Vec<Container>, RuntimeError> {
        let mut c = containers::containers_client::ContainersClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let read = async {
            let mut stream = c
                .list_stream(request(containers::ListContainersRequest::default()))
                .await?
                .into_inner();
            let mut out = Vec::new();
            while let Some(m) = stream.message().await? {
                out.extend(m.container);
            }
            Ok(tonic::Response::new(out))
        };
        bounded("Containers.ListStream", read).await
    }

    /// Every task (the container's init process) of the Kubernetes namespace.
    pub async fn tasks(&self) -> Result<Vec<Process>, RuntimeError> {
        let mut c = tasks::tasks_client::TasksClient::new(self.channel.clone());
        bounded("Tasks.List", c.list(request(tasks::ListTasksRequest::default())))
            .await
            .map(|r| r.tasks)
    }

    /// The disk usage of one snapshot: for a container's active snapshot, its writable layer
    /// (the overlayfs snapshotter walks the snapshot's `fs` directory).
    pub async fn usage(&self, snapshotter: &str, key: &str) -> Result<(u64, u64), RuntimeError> {
        let mut c = snapshots::snapshots_client::SnapshotsClient::new(self.channel.clone());
        let r = bounded(
            "Snapshots.Usage",
            c.usage(request(snapshots::UsageRequest {
                snapshotter: snapshotter.to_string(),
                key: key.to_string(),
            })),
        )
        .await?;
        Ok((u64::try_from(r.size).unwrap_or(0), u64::try_from(r.inodes).unwrap_or(0)))
    }

    /// The `exports` of each snapshotter plugin, by plugin id: the overlayfs snapshotter exports
    /// its `root` directory, which is where writable layers live.
    pub async fn snapshotter_exports(&self) -> Result<HashMap<String, HashMap<String, String>>, RuntimeError> {
        let mut c = introspection::introspection_client::IntrospectionClient::new(self.channel.clone());
        let r = bounded(
            "Introspection.Plugins",
            c.plugins(tonic::Request::new(introspection::PluginsRequest {
                filters: vec!["type==io.containerd.snapshotter.v1".to_string()],
            })),
        )
        .await?;
        Ok(r.plugins.into_iter().map(|p| (p.id, p.exports)).collect())
    }

    /// The event stream of the Kubernetes namespace, filtered to task and container topics.
    /// Not bounded by [`CALL_TIMEOUT`]: containerd sends the response headers with the first
    /// event, which may be minutes away on a quiet node.
    async fn subscribe(&self) -> Result<tonic::Streaming<Envelope>, RuntimeError> {
        let mut c = events::events_client::EventsClient::new(self.channel.clone());
        // containerd's filter syntax (`filters/parser.go`); `~=` matches a regular expression.
        let filters = vec![
            format!(r#"namespace=="{K8S_NAMESPACE}",topic~="^/tasks/""#),
            format!(r#"namespace=="{K8S_NAMESPACE}",topic~="^/containers/""#),
        ];
        c.subscribe(tonic::Request::new(events::SubscribeRequest { filters }))
            .await
            .map(tonic::Response::into_inner)
            .map_err(|source| RuntimeError::Call {
                call: "Events.Subscribe",
                source,
            })
    }

    /// The events, as a stream that ends after its first error: subscribing is part of
    /// polling it, so that the caller's loop serves ticks while containerd is silent.
    pub fn events(&self) -> impl futures_util::Stream<Item = Result<Envelope, RuntimeError>> + use<> {
        enum State {
            Start(Client),
            Open(tonic::Streaming<Envelope>),
            Done,
        }
        futures_util::stream::unfold(State::Start(self.clone()), |state| async move {
            let mut stream = match state {
                State::Start(client) => match client.subscribe().await {
                    Ok(stream) => stream,
                    Err(e) => return Some((Err(e), State::Done)),
                },
                State::Open(stream) => stream,
                State::Done => return None,
            };
            match stream.message().await {
                Ok(Some(envelope)) => Some((Ok(envelope), State::Open(stream))),
                Ok(None) => Some((Err(RuntimeError::StreamEnded), State::Done)),
                Err(source) => Some((
                    Err(RuntimeError::Call {
                        call: "Events.Subscribe",
                        source,
                    }),
                    State::Done,
                )),
            }
        })
    }
}
