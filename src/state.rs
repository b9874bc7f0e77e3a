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
    pub metrics: std::sync::Arc<Metrics>,
    /// The configuration the server was started with.
    pub config: Config,
    /// What the reloads did, for `/reload-status`.
    pub reload_status: std::sync::Mutex<ReloadStatus>,
    /// Aggregates repeated request failures into one log line per interval.
    pub log_throttle: crate::logs::Throttle,
    draining: AtomicBool,
    /// Unix milliseconds since which the database has been unreachable (0: reachable).
    db_down_since: std::sync::atomic::AtomicI64,
    snapshots: tokio::sync::watch::Sender<u64>,
    notices: std::sync::OnceLock<tokio::sync::mpsc::Sender<crate::reload::Notice>>,
}

impl AppState {
    /// State with a first snapshot and no DB pool yet.
    pub fn new(config: Config, snapshot: Snapshot) -> Self {
        let generation = snapshot.generation;
        let metrics = std::sync::Arc::new(Metrics::new());
        metrics.init_series();
        metrics.describe_snapshot(&snapshot);
        for material in snapshot.digests.keys() {
            metrics.init_material(material.as_str());
        }
        let now = crate::util::now_unix();
        metrics.reload_last_success.set(now);
        Self {
            reload_status: std::sync::Mutex::new(ReloadStatus::initial(&snapshot, now)),
            snapshot: ArcSwap::from_pointee(snapshot),
            log_throttle: crate::logs::Throttle::default(),
            db: ArcSwapOption::empty(),
            metrics,
            config,
            draining: AtomicBool::new(false),
            db_down_since: std::sync::atomic::AtomicI64::new(0),
            snapshots: tokio::sync::watch::Sender::new(generation),
            notices: std::sync::OnceLock::new(),
        }
    }

    /// Starts delivering [`Notice`](crate::reload::Notice)s to the returned receiver (at most
    /// one listener; `None` if there is one already). Up to `capacity` notices wait; more are
    /// dropped and counted, so that a slow listener never holds up a reload.
    pub fn listen_notices(&self, capacity: usize) -> Option<tokio::sync::mpsc::Receiver<crate::reload::Notice>> {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity);
        self.notices.set(tx).ok().map(|()| rx)
    }

    /// Tells the listener, if any, about a reload or DB pool outcome.
    pub fn notify(&self, notice: crate::reload::Notice) {
        if let Some(tx) = self.notices.get()
            && let Err(tokio::sync::mpsc::error::TrySendError::Full(_)) = tx.try_send(notice)
        {
            crate::metrics::Metrics::count(&self.metrics.kube_events, "dropped");
        }
    }

    /// Publishes a new snapshot: new handshakes and requests use it from now on, and the
    /// DB manager is told (it rebuilds the pool when the DB material changed).
    pub fn publish(&self, snapshot: crate::snapshot::Snapshot) {
        let generation = snapshot.generation;
        self.snapshot.store(std::sync::Arc::new(snapshot));
        self.snapshots.send_replace(generation);
    }

    /// A receiver that changes whenever a snapshot is published.
    pub fn subscribe_snapshots(&self) -> tokio::sync::watch::Receiver<u64> {
        self.snapshots.subscribe()
    }

    /// Records the outcome of a DB pool rebuild for `/reload-status`.
    pub fn db_pool_outcome(&self, serving_generation: u64, error: Option<String>, now: i64) {
        let mut status = self.reload_status.lock().expect("reload status lock");
        let p = &mut status.db_pool;
        p.generation = serving_generation;
        p.last_attempt = Some(now);
        if error.is_none() {
            p.last_applied = Some(now);
        }
        p.last_outcome = Some(if error.is_some() { "failed" } else { "applied" });
        p.last_error = error;
    }

    /// Records whether the database answered; readiness turns false once it has been
    /// unreachable for longer than `--db-unready-after`.
    pub fn db_reachable(&self, up: bool) {
        if up {
            if self.db_down_since.load(Ordering::Relaxed) != 0 {
                self.db_down_since.store(0, Ordering::Relaxed);
            }
        } else {
            let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
            let _ = self
                .db_down_since
                .compare_exchange(0, now as i64, Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Marks the server as shutting down (readiness turns false).
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    fn db_down_longer_than(&self, grace: std::time::Duration) -> bool {
        let since = self.db_down_since.load(Ordering::Relaxed);
        if since == 0 || grace.is_zero() {
            return false;
        }
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        now - since > grace.as_millis() as i64
    }

    /// Why the server is not ready, or `None` when it is.
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            Some("shutting down")
        } else if self.db.load().is_none() {
            Some("database pool not verified yet")
        } else if self.db_down_longer_than(self.config.db_unready_after) {
            Some("database unreachable for longer than --db-unready-after")
        } else {
            None
        }
    }
}
