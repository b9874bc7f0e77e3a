//! tlsward's test kit, shared by the integration tests and the benchmarks (a dev-only crate:
//! nothing in the product depends on it).
//!
//! - [`wait`] and [`assert_eventually!`]: waiting for a condition with a deadline, never for a
//!   fixed time; deadlines scale with `TLSWARD_TEST_PATIENCE` on a loaded machine.
//! - [`pg`]: a throwaway PostgreSQL set up like a secure CockroachDB, and the test PKI.
//! - [`server`]: tlsward in the test process, a client that trusts the test CA, a steady
//!   request load ([`Load`]).
//! - [`child`]: the tlsward binary in a child process.
//! - [`tls`]: TLS clients (openssl `s_client`, rustls) and the serials they are served.
//! - [`kubelet`]: a directory updated the way kubelet updates a Secret volume.
//! - [`metrics`]: `/metrics` samples and `/reload-status`.
//! - [`load`]: request and readiness loops with their outcomes timed, and the drain check.
//! - [`cluster`]: the real one-node Kubernetes cluster of `scripts/cluster/cluster.sh`, started
//!   once per test binary and torn down when it exits, with a fresh namespace per test,
//!   `kubectl`, `helm` and `kubectl port-forward` as a user runs them.
//!
//! The most used helpers are re-exported at the root, so that a test reads
//! `support::postgres()` after `use tlsward_testkit as support;`.

pub mod child;
pub mod cluster;
pub mod kubelet;
pub mod load;
pub mod metrics;
pub mod pg;
pub mod server;
pub mod tls;
pub mod wait;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

pub use child::{Child, collect_log, output_text, sigterm, spawn_db_proxy, spawn_serve};
pub use load::{Outcomes, assert_drained, readyz_loop, request_loop};
pub use metrics::{handshake_failures, metric, metrics_of, reload_status};
pub use pg::{
    Postgres, Proxy, Reach, TwoCaCluster, cluster_pids, db_secret, extra_cluster, extra_cluster_reaching,
    extra_cluster_with, postgres, psql_in, reload_cluster_certs, restart_cluster, secret_dsn, signal_cluster,
    stop_cluster, write_pair,
};
pub use server::{Load, TestServer, client_for, serve_args, start, start_unready, start_with_kube};
pub use tls::{
    Tls, decimal_to_hex, new_server_cert, plain_serial, s_client, s_client_args, serial_of, served_serial, tls_client,
    tls_connect, wait_serial,
};

/// The repository's root directory.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// A script of the repository, e.g. `script("cluster/cluster.sh")`.
pub fn script(name: &str) -> PathBuf {
    repo().join("scripts").join(name)
}

/// Waits until an expression is true, polling, or panics after the deadline (scaled by
/// `TLSWARD_TEST_PATIENCE`).
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $crate::wait::scaled($timeout);
        loop {
            if $cond { break; }
            if std::time::Instant::now() > deadline { panic!($($msg)+); }
            $crate::wait::pause().await;
        }
    }};
}

/// The tlsward binary cargo built beside the running test or benchmark (in the `deps/`
/// directory's parent).
pub fn bin() -> &'static str {
    static BIN: OnceLock<String> = OnceLock::new();
    BIN.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test's own path");
        let dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("target/<profile>/deps/<test>");
        let bin = dir.join("tlsward");
        assert!(
            bin.is_file(),
            "{} is missing: run the tests through cargo, which builds the binary first",
            bin.display()
        );
        bin.to_str().expect("a UTF-8 target directory").to_string()
    })
}

/// A free TCP port on 127.0.0.1 (bound then released; prefer binding port 0 where the code
/// under test reports its address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Makes a unique name for this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}
