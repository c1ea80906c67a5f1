# kinsight container image: the release binary on a distroless base, nothing else.
# No Docker engine exists on the project's machines, and the base images cannot be pulled from
# them either: tests/deploy.rs proves what can be proved without building (every COPY source is
# in the build context, the manifest and its targets load from exactly that context, the binary
# path, user, entrypoint and arguments agree with manifests/daemonset.yaml).
#
# Base images by exact version tag: the Rust toolchain is 1.95.0 (Cargo.toml `rust-version`, the
# toolchain the tests run with). No digest is written here: none could be checked against the
# registry from the project's machines, and a digest nobody verified is worse than a tag. CI that
# can reach the registries should pin both with `crane digest <image>:<tag>` (or `docker
# buildx imagetools inspect`) and record the digests here with the date they were read.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
# Only what the release build reads (.dockerignore admits nothing else). benches/ because
# Cargo.toml declares its bench and example targets there, and cargo refuses a manifest whose
# declared target files are missing, even for `--bin kinsight`.
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY agent ./agent
COPY config ./config
COPY benches ./benches
RUN cargo build --release --locked --bin kinsight

# The binary links glibc dynamically: distroless cc (glibc, libgcc, CA roots, tzdata; no shell,
# no package manager) of the same Debian release as the build image. distroless publishes no
# version tags (only `latest`, `nonroot`, `debug` and digests); the Debian release is in the
# name. See the digest note above.
FROM gcr.io/distroless/cc-debian12:latest
# https://github.com/opencontainers/image-spec/blob/main/annotations.md
LABEL org.opencontainers.image.title="kinsight" \
      org.opencontainers.image.description="Container Insights metrics and logs for Amazon EKS, in one agent" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:latest"
COPY --from=build /src/target/release/kinsight /usr/local/bin/kinsight
# Root, as manifests/daemonset.yaml runs it (with every capability dropped): container logs,
# /var/log/secure and journal files on the node are readable by their owner, root, only, and
# the state directory is a root-owned hostPath. The DaemonSet's comment has the details.
USER 0:0
# glibc hands blocks of 128 KiB and more back to the kernel when they are freed. Its default
# raises that threshold after the first such free, and the vectors an interval builds (an enhanced
# leader's records and 100,000 datums) then stay resident between intervals: the leader on a
# simulated 5,000-node cluster held about 6 MiB more without this (docs/performance.md).
ENV MALLOC_MMAP_THRESHOLD_=131072
# One malloc arena for the whole process instead of one per thread that allocates (glibc's
# default, up to 8 per core): each arena keeps the memory its thread freed. In the log
# throughput benchmark the peak RSS was 39.0-39.3 MiB with it against 40.0-40.3 without, at the
# same CPU (docs/performance.md); the agent's few threads do not contend for the one lock.
ENV MALLOC_ARENA_MAX=1
# Reads the host through read-only mounts under /rootfs; the state directory is the one
# writable host path (/rootfs/var/lib/kinsight).
ENTRYPOINT ["/usr/local/bin/kinsight"]
CMD ["run", "--config", "/etc/cwagentconfig/cwagentconfig.json", "--host-root", "/rootfs"]
