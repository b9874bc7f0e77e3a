//! tlsward's test kit, shared by the integration tests and the benchmarks (a dev-only crate:
//! nothing in the product depends on it).
//!
//! - [`wait`]: waiting for a condition with a deadline, never for a fixed time; deadlines scale
//!   with `TLSWARD_TEST_PATIENCE` on a loaded machine.
//! - [`cluster`]: the real one-node Kubernetes cluster of `scripts/cluster/cluster.sh`, started
//!   once per test binary and torn down when it exits, with a fresh namespace per test,
//!   `kubectl`, `helm` and `kubectl port-forward` as a user runs them.

pub mod cluster;
pub mod wait;

use std::path::{Path, PathBuf};

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
