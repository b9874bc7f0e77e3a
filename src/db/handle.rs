//! The served DB pool and whether the database answers. [`DbPublisher`] is the only writer of
//! the pool (the DB manager holds it); [`Db`] is the read handle of handlers, readiness and
//! metrics, which also note whether the database answered.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use super::pool::DbPool;

#[derive(Default)]
struct Shared {
    pool: ArcSwapOption<DbPool>,
    /// Unix milliseconds since which the database has been unreachable (0: reachable).
    down_since_ms: AtomicI64,
}

/// A read handle on the served pool.
#[derive(Clone, Default)]
pub struct Db {
    shared: Arc<Shared>,
}

/// The writer of the served pool.
pub struct DbPublisher {
    db: Db,
}

fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

impl Db {
    /// A handle with no pool yet, and its writer.
    pub fn new() -> (DbPublisher, Db) {
        let db = Db::default();
        (DbPublisher { db: db.clone() }, db)
    }

    /// The served pool; `None` until one has been verified.
    pub fn current(&self) -> Option<Arc<DbPool>> {
        self.shared.pool.load_full()
    }

    /// Whether a pool has been verified and published.
    pub fn is_verified(&self) -> bool {
        self.shared.pool.load().is_some()
    }

    /// Notes whether the database answered.
    pub fn reachable(&self, up: bool) {
        let since = &self.shared.down_since_ms;
        if up {
            if since.load(Ordering::Relaxed) != 0 {
                since.store(0, Ordering::Relaxed);
            }
        } else {
            let _ = since.compare_exchange(0, now_ms(), Ordering::Relaxed, Ordering::Relaxed);
        }
    }

    /// Whether the database has been unreachable for longer than `grace` (never with a zero
    /// grace).
    pub fn down_longer_than(&self, grace: Duration) -> bool {
        let since = self.shared.down_since_ms.load(Ordering::Relaxed);
        if since == 0 || grace.is_zero() {
            return false;
        }
        now_ms() - since > i64::try_from(grace.as_millis()).unwrap_or(i64::MAX)
    }
}

impl DbPublisher {
    /// Serves `pool` (requests take it from now on; the previous one drains) and notes the
    /// database as reachable.
    pub fn publish(&self, pool: DbPool) {
        self.db.shared.pool.store(Some(Arc::new(pool)));
        self.db.reachable(true);
    }

    /// The read handle.
    pub fn reader(&self) -> Db {
        self.db.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unreachable_database_counts_only_after_the_grace() {
        let (_, db) = Db::new();
        db.reachable(false);
        assert!(!db.down_longer_than(Duration::from_secs(60)));
        assert!(!db.down_longer_than(Duration::ZERO), "zero grace: never unready for it");
        std::thread::sleep(Duration::from_millis(30));
        assert!(db.down_longer_than(Duration::from_millis(10)));
        db.reachable(true);
        assert!(!db.down_longer_than(Duration::from_millis(10)));
    }
}
