# The image for users' pipelines (Docker, kaniko, buildah bud with registry access): a build
# stage compiles the release binary; the runtime image is FROM scratch with exactly the layout
# `make image` builds on machines that cannot pull a base image (image/rootfs.sh: the binary,
# the shared libraries ldd lists, the CA roots, a passwd entry for UID 65532).
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY crates ./crates
COPY benches ./benches
RUN cargo build --locked --release --bin tlsward
COPY image/rootfs.sh /usr/local/bin/rootfs.sh
RUN rootfs.sh /src/target/release/tlsward /rootfs

FROM scratch
COPY --from=build /rootfs/ /
ENV PATH=/usr/local/bin
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/tlsward"]
CMD ["serve"]
