//! Which pod and container hold each GPU, EFA device and AWS Neuron core or device, from the
//! kubelet's pod-resources API
//! (`PodResourcesLister.List` over `/var/lib/kubelet/pod-resources/kubelet.sock`, GA since
//! Kubernetes 1.20: <https://kubernetes.io/docs/concepts/extend-kubernetes/compute-storage-net/device-plugins/#monitoring-device-plugin-resources>).
//!
//! The device ids of `nvidia.com/gpu` are the GPUs' UUIDs (NVIDIA's `k8s-device-plugin`), the
//! `UUID` label of dcgm-exporter's series. With time slicing the plugin advertises replicas,
//! `<UUID>::<n>`: the replica suffix is dropped, so a shared GPU names every pod using it.
//! The device ids of `vpc.amazonaws.com/efa` are the RDMA device names of
//! `/sys/class/infiniband` (`rdmap16s27`), as upstream matches them
//! (`internal/efa/efaSysfs.go` in awscontainerinsightreceiver).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::dcgm::{Assignment, GpuReading};
use super::proto::v1::ListPodResourcesRequest;
use super::proto::v1::pod_resources_lister_client::PodResourcesListerClient;

/// Where the kubelet serves the API (`podresources.Socket` under its root directory,
/// `pkg/kubelet/apis/podresources` in kubernetes/kubernetes), before the host root is applied.
pub const SOCKET: &str = "/var/lib/kubelet/pod-resources/kubelet.sock";

/// The extended resource of NVIDIA GPUs.
const GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The extended resource of EFA devices (the `aws-efa-k8s-device-plugin`).
pub const EFA_RESOURCE: &str = "vpc.amazonaws.com/efa";

/// GPU UUID → the containers holding it.
pub type GpuOwners = HashMap<String, Vec<Assignment>>;

/// Device id → the containers holding it, per kind of device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceOwners {
    pub gpus: GpuOwners,
    /// EFA device name → holders.
    pub efa: HashMap<String, Vec<Assignment>>,
    /// AWS Neuron: core index (`aws.amazon.com/neuroncore`) → holders.
    pub neuron_cores: HashMap<String, Vec<Assignment>>,
    /// AWS Neuron: device index (`aws.amazon.com/neurondevice`, or the older
    /// `aws.amazon.com/neuron`) → holders.
    pub neuron_devices: HashMap<String, Vec<Assignment>>,
}

/// AWS Neuron: the extended resources of the Neuron device plugin, whose device ids are core
/// and device indices (as upstream reads them, `internal/neuron/pod_attribute_decorator.go` in
/// awscontainerinsightreceiver).
const NEURONCORE_RESOURCE: &str = "aws.amazon.com/neuroncore";
const NEURONDEVICE_RESOURCE: &str = "aws.amazon.com/neurondevice";
const NEURON_RESOURCE: &str = "aws.amazon.com/neuron";

/// Why the kubelet could not be asked; [`PodResourcesError::kind`] is the telemetry label.
#[derive(Debug, thiserror::Error)]
pub enum PodResourcesError {
    #[error("no kubelet pod-resources socket at {}", path.display())]
    Missing { path: PathBuf },
    #[error("cannot connect to {}", path.display())]
    Connect {
        path: PathBuf,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("PodResourcesLister.List failed")]
    Call(#[source] tonic::Status),
    #[error("PodResourcesLister.List took longer than {0:?}")]
    Timeout(Duration),
}

impl PodResourcesError {
    /// `unreachable` | `error` | `timeout`.
    pub fn kind(&self) -> &'static str {
        match self {
            PodResourcesError::Missing { .. } | PodResourcesError::Connect { .. } => "unreachable",
            PodResourcesError::Call(_) => "error",
            PodResourcesError::Timeout(_) => "timeout",
        }
    }
}

/// Asks the kubelet at `socket` (host root applied) which containers hold which GPUs and EFA
/// devices.
pub async fn owners(socket: &Path, timeout: Duration) -> Result<DeviceOwners, PodResourcesError> {
    match tokio::time::timeout(timeout, list(socket)).await {
        Ok(r) => r,
        Err(_) => Err(PodResourcesError::Timeout(timeout)),
    }
}

async fn list(socket: &Path) -> Result<DeviceOwners, PodResourcesError> {
    if std::fs::symlink_metadata(socket).is_err() {
        return Err(PodResourcesError::Missing {
            path: socket.to_path_buf(),
        });
    }
    let channel = crate::host::unix_grpc::channel(socket, None)
        .await
        .map_err(|source| PodResourcesError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
    let response = PodResourcesListerClient::new(channel)
        .list(ListPodResourcesRequest {})
        .await
        .map_err(PodResourcesError::Call)?
        .into_inner();
    let mut owners = DeviceOwners::default();
    for pod in response.pod_resources {
        for c in pod.containers {
            for d in &c.devices {
                let (map, gpu) = match d.resource_name.as_str() {
                    GPU_RESOURCE => (&mut owners.gpus, true),
                    EFA_RESOURCE => (&mut owners.efa, false),
                    NEURONCORE_RESOURCE => (&mut owners.neuron_cores, false),
                    NEURONDEVICE_RESOURCE | NEURON_RESOURCE => (&mut owners.neuron_devices, false),
                    _ => continue,
                };
                for id in &d.device_ids {
                    let id = if gpu { id.split("::").next().unwrap_or(id) } else { id };
                    let a = Assignment {
                        namespace: pod.namespace.clone(),
                        pod: pod.name.clone(),
                        container: Some(c.name.clone()).filter(|n| !n.is_empty()),
                    };
                    let list = map.entry(id.to_string()).or_default();
                    if !list.contains(&a) {
                        list.push(a);
                    }
                }
            }
        }
    }
    Ok(owners)
}

/// The readings with the kubelet's word on who holds each GPU: a GPU the kubelet names gets one
/// reading per holder (its figures copied), replacing the exporter's own labels; a GPU it does
/// not name keeps them.
pub fn attribute(readings: Vec<GpuReading>, owners: &GpuOwners) -> Vec<GpuReading> {
    let mut out = Vec::with_capacity(readings.len());
    let mut done: Vec<String> = Vec::new();
    for r in readings {
        let holders = r.uuid.as_deref().and_then(|u| owners.get(u).map(|h| (u, h)));
        match holders {
            Some((uuid, holders)) => {
                if done.iter().any(|d| d == uuid) {
                    continue;
                }
                done.push(uuid.to_string());
                for a in holders {
                    out.push(GpuReading {
                        assignment: Some(a.clone()),
                        ..r.clone()
                    });
                }
            }
            None => out.push(r),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::host::accel::dcgm::GpuValues;

    fn reading(uuid: &str, pod: Option<&str>) -> GpuReading {
        GpuReading {
            device: Some(Arc::from("nvidia0")),
            uuid: Some(Arc::from(uuid)),
            assignment: pod.map(|p| Assignment {
                namespace: "ns".into(),
                pod: p.into(),
                container: None,
            }),
            values: GpuValues {
                utilization_percent: Some(10.0),
                ..GpuValues::default()
            },
        }
    }

    fn holder(pod: &str) -> Assignment {
        Assignment {
            namespace: "ml".into(),
            pod: pod.into(),
            container: Some("main".into()),
        }
    }

    #[test]
    fn the_kubelet_wins_over_the_exporters_labels_and_unknown_gpus_keep_them() {
        let owners = GpuOwners::from([("GPU-a".to_string(), vec![holder("p1"), holder("p2")])]);
        let out = attribute(
            vec![reading("GPU-a", Some("stale")), reading("GPU-b", Some("exporter"))],
            &owners,
        );
        let pods: Vec<Option<&str>> = out
            .iter()
            .map(|r| r.assignment.as_ref().map(|a| a.pod.as_str()))
            .collect();
        assert_eq!(pods, [Some("p1"), Some("p2"), Some("exporter")]);
        assert!(out.iter().all(|r| r.values.utilization_percent == Some(10.0)));
    }

    #[tokio::test]
    async fn a_missing_socket_is_unreachable() {
        let dir = tempfile::tempdir().unwrap();
        let e = owners(&dir.path().join("kubelet.sock"), Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), "unreachable");
    }
}
