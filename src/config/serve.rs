//! `serve`'s load: the shared groups plus the database and its pool, which only `serve` opens.

use super::db::{db_target, pool_settings};
use super::edge::API_MAX_BODY;
use super::{Config, ConfigErrors, DbSettings, Front, Shared};
use crate::cli::ServeArgs;
use crate::snapshot::Snapshot;

impl Config {
    /// Checks the arguments of `serve` and loads the first snapshot; every problem is
    /// reported at once.
    pub fn load(a: &ServeArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        let shared = Shared::from(a);
        let mut p = Vec::new();
        let edge = shared.check_edge(API_MAX_BODY, &mut p);
        let target = db_target(&a.db, &mut p);
        let pool = pool_settings(&a.pool, &a.db, &mut p);
        let front = target.clone().map(|target| Front::Api {
            db: DbSettings {
                target,
                pool,
                migrate: a.pool.db_migrate,
                health_interval: a.pool.db_health_interval,
            },
            db_unready_after: a.pool.db_unready_after,
        });
        Self::assemble(&shared, edge, target.as_ref(), true, front, p)
    }
}
