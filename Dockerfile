# Multi-stage build of the tlsward binary; the runtime image holds only the binary and the CA
# roots, and runs as a non-root UID. (No Docker engine runs on the project's build machines:
# CI builds the release binary instead; this file is built by users' pipelines.)
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
RUN cargo build --locked --release --bin tlsward

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tlsward /usr/local/bin/tlsward
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/usr/local/bin/tlsward"]
CMD ["serve"]
