//! Generates the containerd gRPC client (messages and the client stubs of the services kinsight
//! calls) from the `.proto` files in `agent/runtime/proto`, copied from containerd's
//! `api/` directory as the `containerd-client` crate 0.9.0 vendors them, and the client of the
//! kubelet's pod-resources API (`k8s.io/kubelet/pkg/apis/podresources/v1/api.proto`, the part
//! kinsight reads; its header names the source), for the GPU metrics' pod attribution.
//!
//! The decision a newcomer would question: the `protoc` binary comes from the
//! `protoc-bin-vendored` crate, so `cargo build` works on a machine with nothing installed by
//! hand. `containerd-client` itself cannot be used for that: its build script finds `protoc` only
//! on `PATH` or through `PROTOC`, which a dependent crate cannot set for it.

use std::path::PathBuf;

const ROOT: &str = "agent/runtime/proto";

/// The services kinsight calls, and the event payloads it decodes.
const PROTOS: &[&str] = &[
    "github.com/containerd/containerd/api/services/containers/v1/containers.proto",
    "github.com/containerd/containerd/api/services/tasks/v1/tasks.proto",
    "github.com/containerd/containerd/api/services/snapshots/v1/snapshots.proto",
    "github.com/containerd/containerd/api/services/events/v1/events.proto",
    "github.com/containerd/containerd/api/services/introspection/v1/introspection.proto",
    "github.com/containerd/containerd/api/services/version/v1/version.proto",
    "github.com/containerd/containerd/api/events/task.proto",
    "github.com/containerd/containerd/api/events/container.proto",
    "k8s.io/kubelet/pkg/apis/podresources/v1/api.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={ROOT}");
    println!("cargo:rerun-if-changed=agent/runtime/build.rs");
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let files: Vec<PathBuf> = PROTOS.iter().map(|p| PathBuf::from(ROOT).join(p)).collect();
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .build_transport(false)
        .compile_with_config(config, &files, &[PathBuf::from(ROOT)])?;
    Ok(())
}
