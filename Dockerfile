# kinsight container image. Built in CI elsewhere (no Docker engine on the project's machines);
# the deployment issue completes and tests it.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY agent ./agent
COPY config ./config
RUN cargo build --release --locked --bin kinsight

FROM gcr.io/distroless/cc-debian12
COPY --from=build /src/target/release/kinsight /usr/local/bin/kinsight
# Reads the host through read-only mounts under /rootfs; the state directory is the one
# writable host path (/rootfs/var/lib/kinsight).
ENTRYPOINT ["/usr/local/bin/kinsight"]
CMD ["run", "--host-root", "/rootfs"]
