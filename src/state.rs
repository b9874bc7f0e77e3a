//! Shared state of a running server: the current snapshot and DB pool, each behind one
//! pointer that readers load once per connection or request.

use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::{ArcSwap, ArcSwapOption};

use crate::config::Config;
use crate::db::pool::DbPool;
use crate::metrics::Metrics;
use crate::reload::ReloadStatus;
use crate::snapshot::Snapshot;

/// What handlers and the accept loop share.
pub struct AppState {
    /// The current TLS + token snapshot.
    pub snapshot: ArcSwap<Snapshot>,
    /// The current verified DB pool; `None` until one has been verified.
    pub db: ArcSwapOption<DbPool>,
    /// Metrics.
    pub metrics: Metrics,
    /// The configuration the server was started with.
    pub config: Config,
    /// What the reloads did, for `/reload-status`.
    pub reload_status: std::sync::Mutex<ReloadStatus>,
    draining: AtomicBool,
}

impl AppState {
    /// State with a first snapshot and no DB pool yet.
    pub fn new(config: Config, snapshot: Snapshot) -> Self {
        let metrics = Metrics::new();
        metrics.describe_snapshot(&snapshot);
        let now = crate::tls::material::now_unix();
        metrics.reload_last_success.set(now);
        Self {
            reload_status: std::sync::Mutex::new(ReloadStatus::initial(&snapshot, now)),
            snapshot: ArcSwap::from_pointee(snapshot),
            db: ArcSwapOption::empty(),
            metrics,
            config,
            draining: AtomicBool::new(false),
        }
    }

    /// Marks the server as shutting down (readiness turns false).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Why the server is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("shutting down")
        } else if self.db.load().is_none() {
            Some("database pool not verified yet")
        } else {
            None
        }
    }
}
