//! Whether the server is ready for traffic: not draining and, for `serve`, a verified DB pool
//! and the database not unreachable for longer than `--db-unready-after`; for `proxy`, the
//! app not unreachable for longer than `--upstream-unready-after`; for `db-proxy`, only not
//! draining. Shutdown writes the draining flag;
//! `/readyz` and `tlsward_ready` read it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::db::handle::Db;

/// The readiness handle.
#[derive(Clone)]
pub(crate) struct Readiness {
    draining: Arc<AtomicBool>,
    /// The DB pool and its unready-after (`serve`).
    db: Option<(Db, Duration)>,
    /// The app's reachability and its unready-after (`proxy`).
    upstream: Option<(crate::proxy::health::Health, Duration)>,
}

impl Readiness {
    /// Ready once `db` has a verified pool, for as long as the database answers within
    /// `db_unready_after` (zero: its outages never make the server unready).
    pub(crate) fn new(db: Db, db_unready_after: Duration) -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            db: Some((db, db_unready_after)),
            upstream: None,
        }
    }

    /// Ready for as long as the app has not been unreachable longer than `unready_after`.
    pub(crate) fn for_upstream(health: crate::proxy::health::Health, unready_after: Duration) -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            db: None,
            upstream: Some((health, unready_after)),
        }
    }

    /// Ready until it starts draining (`db-proxy`).
    pub(crate) fn unless_draining() -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            db: None,
            upstream: None,
        }
    }

    /// Marks the server as shutting down (readiness turns false for good).
    pub(crate) fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Why the server is not ready, or `None` when it is.
    pub(crate) fn not_ready_reason(&self) -> Option<&'static str> {
        if self.draining.load(Ordering::SeqCst) {
            return Some("shutting down");
        }
        if let Some((health, after)) = &self.upstream
            && health.down_longer_than(*after)
        {
            return Some("the app unreachable for longer than --upstream-unready-after");
        }
        let (db, unready_after) = self.db.as_ref()?;
        if !db.is_verified() {
            Some("database pool not verified yet")
        } else if db.down_longer_than(*unready_after) {
            Some("database unreachable for longer than --db-unready-after")
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draining_makes_a_server_without_a_pool_say_shutting_down() {
        let (_, db) = Db::new();
        let r = Readiness::new(db, Duration::from_secs(30));
        assert_eq!(r.not_ready_reason(), Some("database pool not verified yet"));
        r.clone().start_draining();
        assert_eq!(r.not_ready_reason(), Some("shutting down"));
    }

    #[test]
    fn a_proxy_turns_unready_when_the_app_stays_down_and_ready_when_it_is_back() {
        let health = crate::proxy::health::Health::default();
        let r = Readiness::for_upstream(health.clone(), Duration::from_millis(10));
        assert_eq!(r.not_ready_reason(), None);
        health.mark_down();
        std::thread::sleep(Duration::from_millis(20));
        assert!(r.not_ready_reason().unwrap().contains("--upstream-unready-after"));
        health.mark_up();
        assert_eq!(r.not_ready_reason(), None);
        r.start_draining();
        assert_eq!(r.not_ready_reason(), Some("shutting down"));
    }
}
