//! Keeps the published DB pool in step with the snapshot's DB material. When the digest of
//! the CA bundle or the client certificate changes (and at start-up), a new pool is built
//! with a new rustls `ClientConfig`, verified (one connection under `verify-full`, then
//! `SELECT 1`) and only then published; handlers take the current pool once per request.
//!
//! The old pool is not closed: it drains. In-flight requests finish on it, its idle
//! connections close when its last user drops it, and returned connections close with it.
//! If verification fails (the database does not accept the new certificate yet, the bundle
//! lacks the database's CA, a wrong CN), the current pool keeps serving and the rebuild is
//! retried with back-off; every outcome is logged, counted and shown in `/reload-status`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::pool::{self, DbError, DbPool};
use crate::state::AppState;
use crate::util::now_unix;

/// First retry delay after a failed rebuild; doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest retry delay.
pub const MAX_RETRY: Duration = Duration::from_secs(10);

/// Starts the manager.
pub fn spawn(state: Arc<AppState>, stop: watch::Receiver<bool>) {
    tokio::spawn(run(state, stop));
}

async fn build(state: &AppState, generation: u64, first: bool) -> Result<DbPool, DbError> {
    let cfg = &state.config;
    let snapshot = state.snapshot.load_full();
    let db = pool::build(&cfg.db, &cfg.pool, generation, snapshot.db_tls.as_deref())?;
    let db = pool::verify(db).await?;
    warm(state, &db).await;
    if first && cfg.db_migrate {
        super::users::migrate(&db).await?;
    }
    Ok(db)
}

/// Opens as many connections in the new pool as the serving one has, so that requests do
/// not pay for the new TLS handshakes after the swap. Best effort: failures are left to the
/// request path (which opens connections on demand anyway).
async fn warm(state: &AppState, db: &DbPool) {
    let Some(serving) = state.db.load_full() else { return };
    let want = serving.pool.status().size.saturating_sub(1);
    let opened = futures_util::future::join_all((0..want).map(|_| db.pool.get())).await;
    let ok = opened.iter().filter(|o| o.is_ok()).count();
    tracing::debug!(want, ok, "new pool warmed");
}

async fn run(state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    let cfg = &state.config;
    if cfg.db.sslmode < super::dsn::SslMode::VerifyFull {
        tracing::warn!(
            sslmode = cfg.db.sslmode.as_str(),
            "the database connection does not use verify-full (--db-allow-insecure): the database is not authenticated"
        );
    }
    let mut changes = state.subscribe_snapshots();
    let mut delay = FIRST_RETRY;
    loop {
        let want = state.snapshot.load().db_tls.as_ref().map(|t| t.digest());
        let current = state.db.load_full();
        if let Some(db) = current.as_ref().filter(|p| p.tls_digest == want) {
            delay = FIRST_RETRY;
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = stop.changed() => return,
                _ = tokio::time::sleep(cfg.db_health_interval) => {
                    // Idle probe: a checkout pings the connection (or opens a new one).
                    state.db_reachable(db.get(&state.metrics).await.is_ok());
                }
            }
            continue;
        }
        let generation = current.as_ref().map_or(0, |p| p.generation) + 1;
        let started = std::time::Instant::now();
        match build(&state, generation, current.is_none()).await {
            Ok(db) => {
                tracing::info!(
                    generation,
                    target = %cfg.db.redacted(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "database pool verified and published"
                );
                state.metrics.db_pool_rebuilt("applied", generation);
                state.db_pool_outcome(generation, None, now_unix());
                state.db.store(Some(Arc::new(db)));
                state.db_reachable(true);
                state.notify(crate::reload::Notice::DatabasePoolRotated { generation });
                delay = FIRST_RETRY;
            }
            Err(e) => {
                let serving = current.as_ref().map(|p| p.generation);
                tracing::error!(error = %e, retry_in = ?delay, still_serving_generation = ?serving, "database pool not usable; keeping the current one");
                state.metrics.db_pool_rebuilt("failed", serving.unwrap_or(0));
                state.db_pool_outcome(serving.unwrap_or(0), Some(e.to_string()), now_unix());
                state.notify(crate::reload::Notice::DatabasePoolRotationFailed {
                    serving_generation: serving.unwrap_or(0),
                    reason: e.to_string(),
                });
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    r = changes.changed() => if r.is_err() { return },
                    _ = stop.changed() => return,
                }
                delay = (delay * 2).min(MAX_RETRY);
            }
        }
    }
}
