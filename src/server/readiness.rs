//! Whether the server is ready for traffic: not draining and, for `serve`, a verified DB pool
//! and the database not unreachable for longer than `--db-unready-after`. Shutdown writes the draining flag;
//! `/readyz` and `tlsward_ready` read it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::db::handle::Db;

/// The readiness handle.
#[derive(Clone)]
pub(crate) struct Readiness {
    draining: Arc<AtomicBool>,
    /// The DB pool and its unready-after (`serve`); none for `proxy`.
    db: Option<(Db, Duration)>,
}

impl Readiness {
    /// Ready once `db` has a verified pool, for as long as the database answers within
    /// `db_unready_after` (zero: its outages never make the server unready).
    pub(crate) fn new(db: Db, db_unready_after: Duration) -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            db: Some((db, db_unready_after)),
        }
    }

    /// Ready until it drains (no database to wait for).
    pub(crate) fn without_db() -> Self {
        Self {
            draining: Arc::new(AtomicBool::new(false)),
            db: None,
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
    fn without_a_database_only_draining_makes_it_unready() {
        let r = Readiness::without_db();
        assert_eq!(r.not_ready_reason(), None);
        r.start_draining();
        assert_eq!(r.not_ready_reason(), Some("shutting down"));
    }
}
