//! Keeps the published DB pool in step with the snapshot's DB material. When the digest of
//! the CA bundle or the client certificate changes (and at start-up), a new pool is built
//! with a new rustls `ClientConfig`, verified (one connection under `verify-full`, then
//! `SELECT 1`) and only then published; handlers take the current pool once per request.
//!
//! The old pool is not closed: it drains. In-flight requests finish on it, its idle
//! connections close when its last user drops it, and returned connections close with it.
//! If verification fails (the database does not accept the new certificate yet, the bundle
//! lacks the database's CA, a wrong CN), the current pool keeps serving and the rebuild is
//! retried with back-off; every outcome is logged here and handed to the reporters (counted,
//! shown in `/reload-status`, an Event).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::dsn::DbTarget;
use super::handle::{Db, DbPublisher};
use super::material::DbTls;
use super::pool::{self, DbError, DbPool, PoolSettings};
use crate::metrics::Metrics;

/// First retry delay after a failed rebuild; doubles up to [`MAX_RETRY`].
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(200);
/// Longest retry delay.
const MAX_RETRY: Duration = Duration::from_secs(10);

/// Where the DB material comes from: the served snapshot, in the server.
pub(crate) trait MaterialFeed: Send + 'static {
    /// The DB TLS material to serve now.
    fn current(&self) -> Option<Arc<DbTls>>;
    /// Waits for the material to change (perhaps); `false` when it never will again.
    fn changed(&mut self) -> impl Future<Output = bool> + Send;
}

/// What the manager was configured with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The database.
    pub target: std::sync::Arc<DbTarget>,
    /// Pool sizes and timeouts.
    pub pool: PoolSettings,
    /// Create the schema with the first pool (`--db-migrate`).
    pub migrate: bool,
    /// How often an idle pool is probed (`--db-health-interval`).
    pub health_interval: Duration,
}

/// The outcome of one rebuild, handed to the reload's reporters (`/reload-status`, metrics,
/// Events) with the reload outcomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PoolOutcome {
    /// A new pool was verified and is served.
    Rotated {
        /// Its generation.
        generation: u64,
    },
    /// The rebuild failed; the pool of `serving_generation` (0: none) keeps serving.
    Failed {
        /// The generation still served.
        serving_generation: u64,
        /// Why.
        reason: String,
    },
}

/// What the manager writes to: the served pool, the metrics and whoever wants the outcomes.
pub(crate) struct Outputs<R> {
    /// The writer of the served pool.
    pub publisher: DbPublisher,
    /// Checkout metrics (the rebuilds are counted by whoever hears `report`).
    pub metrics: Arc<Metrics>,
    /// Told about every rebuild.
    pub report: R,
}

/// Starts the manager.
pub(crate) fn spawn<F, R>(settings: Settings, feed: F, outputs: Outputs<R>, stop: CancellationToken)
where
    F: MaterialFeed,
    R: Fn(PoolOutcome) + Send + 'static,
{
    tokio::spawn(run(settings, feed, outputs, stop));
}

async fn build(
    cfg: &Settings,
    tls: Option<&DbTls>,
    serving: Option<&DbPool>,
    generation: u64,
) -> Result<DbPool, DbError> {
    let db = pool::build(&cfg.target, &cfg.pool, generation, tls)?;
    let db = pool::verify(db).await?;
    if let Some(serving) = serving {
        warm(serving, &db).await;
    }
    if serving.is_none() && cfg.migrate {
        super::users::migrate(&db).await?;
    }
    Ok(db)
}

/// Opens as many connections in the new pool as the serving one has, so that requests do
/// not pay for the new TLS handshakes after the swap. Best effort: failures are left to the
/// request path (which opens connections on demand anyway).
async fn warm(serving: &DbPool, db: &DbPool) {
    let want = serving.pool.status().size.saturating_sub(1);
    let opened = futures_util::future::join_all((0..want).map(|_| db.pool.get())).await;
    let ok = opened.iter().filter(|o| o.is_ok()).count();
    tracing::debug!(want, ok, "new pool warmed");
}

fn warn_if_insecure(cfg: &Settings) {
    if cfg.target.sslmode < super::dsn::SslMode::VerifyFull {
        tracing::warn!(
            sslmode = cfg.target.sslmode.as_str(),
            "the database connection does not use verify-full (--db-allow-insecure): the database is not authenticated"
        );
    }
}

/// Why the manager woke up.
enum Wake {
    Retry,
    Stop,
}

async fn wait<F: MaterialFeed>(feed: &mut F, stop: &CancellationToken, delay: Duration) -> Wake {
    tokio::select! {
        r = feed.changed() => if r { Wake::Retry } else { Wake::Stop },
        _ = stop.cancelled() => Wake::Stop,
        _ = tokio::time::sleep(delay) => Wake::Retry,
    }
}

async fn run<F, R>(cfg: Settings, mut feed: F, out: Outputs<R>, stop: CancellationToken)
where
    F: MaterialFeed,
    R: Fn(PoolOutcome) + Send + 'static,
{
    warn_if_insecure(&cfg);
    let db: Db = out.publisher.reader();
    let mut backoff = retry_delays();
    loop {
        let tls = feed.current();
        let want = tls.as_ref().map(|t| t.digest());
        let current = db.current();
        if let Some(serving) = current.as_ref().filter(|p| p.tls_digest == want) {
            backoff = retry_delays();
            tokio::select! {
                r = feed.changed() => if !r { return },
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(cfg.health_interval) => {
                    // Idle probe: a checkout pings the connection (or opens a new one).
                    db.reachable(serving.get(&out.metrics).await.is_ok());
                }
            }
            continue;
        }
        let generation = current.as_ref().map_or(0, |p| p.generation) + 1;
        let started = std::time::Instant::now();
        match build(&cfg, tls.as_deref(), current.as_deref(), generation).await {
            Ok(pool) => {
                tracing::info!(
                    generation,
                    target = %cfg.target.redacted(),
                    took_ms = started.elapsed().as_millis() as u64,
                    "database pool verified and published"
                );
                out.publisher.publish(pool);
                (out.report)(PoolOutcome::Rotated { generation });
                backoff = retry_delays();
            }
            Err(e) => {
                let delay = backoff.next().unwrap_or(MAX_RETRY);
                report_failure(&out, &e, current.as_ref().map_or(0, |p| p.generation), delay);
                if let Wake::Stop = wait(&mut feed, &stop, delay).await {
                    return;
                }
            }
        }
    }
}

fn report_failure<R: Fn(PoolOutcome)>(out: &Outputs<R>, e: &DbError, serving: u64, retry_in: Duration) {
    tracing::error!(error = %e, ?retry_in, still_serving_generation = serving, "database pool not usable; keeping the current one");
    (out.report)(PoolOutcome::Failed {
        serving_generation: serving,
        reason: e.to_string(),
    });
}

/// The delays between failed rebuilds: [`FIRST_RETRY`], doubling up to [`MAX_RETRY`], then
/// [`MAX_RETRY`] for ever (backon's exponential builder).
fn retry_delays() -> impl Iterator<Item = Duration> + Send {
    use backon::BackoffBuilder;
    backon::ExponentialBuilder::default()
        .with_min_delay(FIRST_RETRY)
        .with_max_delay(MAX_RETRY)
        .with_factor(2.0)
        .without_max_times()
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_delays_double_from_the_first_up_to_the_longest() {
        let ms: Vec<u128> = retry_delays().take(9).map(|d| d.as_millis()).collect();
        assert_eq!(ms, [200, 400, 800, 1600, 3200, 6400, 10_000, 10_000, 10_000]);
    }
}
