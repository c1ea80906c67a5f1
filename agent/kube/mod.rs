//! The node-scoped pod index and the pod metadata the metrics and log code read from it.
//!
//! Owns: [`PodIndex`] (query by pod UID — static pods by their config hash — and by container
//! id, node totals), the workload name used as `PodName` ([`derive_workload`]), Service
//! membership by selector ([`service_for`]), Kubernetes quantities ([`Quantity`]), restart deltas
//! ([`RestartTracker`]), the leader's cluster view ([`ClusterState`]: Nodes, running pods per
//! namespace, ready endpoints per Service), and the sources that fill the index: today the
//! `file` source ([`run_file_source`], [`load_file_now`]), which also yields the cluster view
//! when its file is a cluster dump; the apiserver watch plugs into the same
//! [`PodIndex::replace`] later.
//!
//! Must not: block the metric or log path. Readers take an immutable [`Snapshot`] and never
//! wait on a source's I/O; a source builds a whole new snapshot and swaps it in.
//!
//! Inputs: the pod list file (`--pods-file PATH`, `kinsight.metrics.metadata_source:
//! "file:PATH"`) and the node name (`HOST_NAME` / config `host_name`), both passed from `main`.
//!
//! The decision a newcomer would question: the index holds plain owned values (`PodInfo`), not
//! Kubernetes API types, so that the metrics and log code and their tests need no Kubernetes
//! crate, and every source — file now, apiserver later — produces the same shape.

mod api;
mod cluster;
mod control_plane;
mod convert;
mod error;
mod file;
mod index;
mod leader;
mod lease;
mod model;
mod podlist;
mod quantity;
pub mod rbac;
mod restarts;
mod service;
mod workload;

#[cfg(test)]
mod tests;

pub use api::{ApiError, ApiSource, CONDITION as API_CONDITION, connect as connect_apiserver};
pub use cluster::{
    ClaimPhase, ClaimState, ClusterState, FAILED_NODE_CONDITIONS, HyperPodHealth, NodeCondition, NodeState,
    SERVICE_NAME_LABEL, ServiceKey, WorkloadKind, WorkloadState,
};
pub use control_plane::{
    ControlPlaneScrape, FAMILIES as CONTROL_PLANE_FAMILIES, KEPT_LABELS as CONTROL_PLANE_LABELS, ScrapeError, Series,
    SeriesValue, parse_text as parse_control_plane,
};
pub use error::{PodListError, QuantityError};
pub use file::{
    FileSource, NodeScope, POLL_INTERVAL, RESCAN_INTERVAL, load_file_now, load_file_scoped, run_file_source,
};
pub use index::{DEPARTED_GRACE, PodIndex, Snapshot, is_bound_to};
pub use leader::ClusterWatch;
pub use lease::{DEFAULT_LEASE_DURATION, Elector};
pub use model::{
    Accelerators, ConditionStatus, ContainerInfo, ContainerState, EFA_RESOURCE, GPU_RESOURCE, LogExclusion, NodeTotals,
    PodInfo, PodPhase, PodResourceCeiling, PodResources,
};
pub use model::{NEURONCORE_RESOURCE, NEURONDEVICE_RESOURCES};
pub use podlist::{CONFIG_MIRROR_ANNOTATION, ParsedList, Warning, parse_list, parse_pod_list};
pub use quantity::Quantity;
pub use restarts::{RESTART_EXPIRY, RestartTracker};
pub use service::{ServiceSelector, service_for};
pub use workload::{
    Owner, OwnerRef, Workload, cron_job_from_job, deployment_from_replica_set, derive_workload, job_name_prefix,
};
