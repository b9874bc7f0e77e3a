//! # tlsward
//!
//! A hardened HTTPS users API for Kubernetes, in one binary, built so that BEAST-class
//! downgrades are impossible by construction: rustls (aws-lc-rs) offers only TLS 1.2 with
//! ECDHE + AEAD suites and TLS 1.3, and the cipher policy refuses anything weaker by name.
//!
//! Architecture:
//! - [`config`] turns flags/env into a checked [`config::Config`] and the first
//!   [`snapshot::Snapshot`] (server cert + key, policy, client CAs, token keys), reporting
//!   every problem at once.
//! - [`server`] runs our own accept loop: one task per connection, the handshake under a
//!   timeout with the current snapshot's `ServerConfig`, then hyper-util auto (h1 + h2)
//!   serving the [`api`] router; plus the admin listener and a graceful drain.
//! - [`db`] parses the CockroachDB DSN, builds a deadpool pool whose connections use
//!   `verify-full` TLS and client certificates, verifies it (`SELECT 1`) before use, and
//!   retries 40001 serialization failures.
//! - [`token`] mints and verifies short-lived HMAC-signed bearer tokens with key rotation.
//! - [`pki`] makes the dev PKI and test fixtures with rcgen.
//! - [`reload`] re-reads the mounted directories on file events, SIGHUP or an interval and
//!   publishes a new snapshot only when it is valid; [`files`] is where it reads them from.
//! - [`k8s`] publishes a Kubernetes Event for every reload and DB pool outcome, and with
//!   `--watch-secrets api` watches the mounted Secrets through the API (kube-rs).
//! - [`scan`] is `tlsward scan`: protocols, suites, certificate and findings of any endpoint.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod edge;
pub mod files;
pub mod k8s;
pub mod logs;
pub mod metrics;
pub mod pki;
pub mod reload;
pub mod scan;
pub mod server;
pub mod snapshot;
pub mod state;
pub mod tls;
pub mod token;
pub mod util;

/// Installs aws-lc-rs as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
