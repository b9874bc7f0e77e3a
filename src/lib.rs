//! # tlsward
//!
//! A hardened HTTPS users API for Kubernetes, in one binary, built so that BEAST-class
//! downgrades are impossible by construction: rustls (aws-lc-rs) offers only TLS 1.2 with
//! ECDHE + AEAD suites and TLS 1.3, and the cipher policy refuses anything weaker by name.
//!
//! ## How the parts fit
//!
//! Start-up: [`cli`] parses the flags; [`config`] checks them into a [`config::Config`] and
//! reads the first [`snapshot::Snapshot`] (server certificate and key, cipher policy, client
//! CAs, token keys, DB material), reporting every problem at once. [`server`] then composes
//! the running parts, each owning one thing and handing narrow handles to the others:
//!
//! 1. **directory → reload → snapshot.** [`files::Files`] reads the mounted directories (with
//!    the Secret data [`k8s`] lays over them under `--watch-secrets api`). The reload task
//!    ([`reload::task::Reloader`]) re-reads them on file events, SIGHUP or an interval,
//!    validates each material on its own and publishes the result through the one writer of
//!    [`snapshot::SnapshotStore`]; a bad file keeps the last good material.
//! 2. **snapshot → accept loop.** [`edge`] accepts connections (limits, timeouts, drain,
//!    maximum age); [`server`] loads the current snapshot once per connection from a
//!    [`snapshot::Snapshots`] read handle, handshakes with its rustls `ServerConfig` ([`tls`])
//!    and serves the [`api`] router or, for `tlsward proxy`, the [`proxy`]'s forwarding; both
//!    answer through one HTTP edge (`web`: security headers, JSON errors, the bearer
//!    [`token`] check against the same snapshot).
//! 3. **snapshot → DB manager → pool.** [`db::manager`] watches the snapshot's DB material,
//!    builds a `verify-full` pool with client certificates, verifies it (`SELECT 1`) and only
//!    then publishes it through [`db::handle::DbPublisher`]; handlers take the current pool
//!    from a [`db::handle::Db`] once per request.
//! 4. **outcomes → reporters.** Reloads and pool rebuilds record to [`metrics`], to the
//!    `/reload-status` handle ([`reload::Status`]) and send [`reload::Notice`]s, which [`k8s`]
//!    publishes as Events; [`server::admin`] serves `/readyz`, `/metrics` and
//!    `/reload-status`.
//!
//! Beside the server: [`scan`] is `tlsward scan`, [`pki`] makes the dev PKI and test fixtures,
//! [`util`] holds the clock and digest helpers, [`reloadable`] names the kinds of material
//! once (for metrics, logs, `/reload-status`, Events), [`logs`] throttles repeated log lines.
//! `scripts/check-layers.py` (in `make lint`) keeps the imports pointing downwards, from
//! [`server`] to [`util`].

#![warn(unreachable_pub)]

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod dbproxy;
pub(crate) mod edge;
pub mod files;
pub mod k8s;
pub mod logs;
pub mod metrics;
pub mod pki;
pub mod proxy;
pub mod reload;
pub mod reloadable;
pub mod scan;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod token;
pub mod util;
pub mod web;

/// Installs aws-lc-rs as the process-wide rustls provider (idempotent).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
