# kinsight container image. Built in CI elsewhere (no Docker engine on the project's machines);
# the deployment issue completes and tests it.
# Base images by exact version tag: the Rust toolchain is 1.95.0 (Cargo.toml `rust-version`, the
# toolchain the tests run with). No digest is written here: none could be checked against the
# registry from the project's machines, and a digest nobody verified is worse than a tag. CI that
# can reach the registries should pin both with `crane digest <image>:<tag>` (or `docker
# buildx imagetools inspect`) and record the digests here with the date they were read.
FROM rust:1.95.0-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY agent ./agent
COPY config ./config
RUN cargo build --release --locked --bin kinsight

# distroless publishes no version tags (only `latest`, `nonroot`, `debug` and digests); the
# Debian release is in the name. See the digest note above.
FROM gcr.io/distroless/cc-debian12:latest
COPY --from=build /src/target/release/kinsight /usr/local/bin/kinsight
# Reads the host through read-only mounts under /rootfs; the state directory is the one
# writable host path (/rootfs/var/lib/kinsight).
ENTRYPOINT ["/usr/local/bin/kinsight"]
CMD ["run", "--host-root", "/rootfs"]
