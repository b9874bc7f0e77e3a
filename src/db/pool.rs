//! Builds, verifies and runs queries on a deadpool pool whose connections use TLS
//! (`sslmode` from the DSN, `verify-full` unless the operator opted out) and client
//! certificates. A pool is published only after one connection has run `SELECT 1`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::{IsolationLevel, Transaction};

use super::breaker::{Admission, Breaker};
use super::dsn::DbTarget;
use super::material::DbTls;
use super::retry::{RetryPolicy, is_connection_broken, is_retryable};
use crate::metrics::Metrics;
use crate::tls::client;
use crate::tls::material::MaterialError;

/// Pool settings.
#[derive(Debug, Clone, Copy)]
pub struct PoolSettings {
    /// Largest number of connections.
    pub max_size: usize,
    /// TCP + TLS + startup time limit of a new connection.
    pub connect_timeout: Duration,
    /// Server-side statement timeout (0 = none).
    pub statement_timeout: Duration,
    /// How long a request waits for a free connection.
    pub checkout_timeout: Duration,
    /// Connections older than this are closed instead of reused.
    pub max_lifetime: Duration,
}

impl PoolSettings {
    /// The client-side deadline of one query or transaction attempt: the server-side
    /// statement timeout plus a margin for the round trip, or [`NO_STATEMENT_TIMEOUT_DEADLINE`]
    /// when there is none. A frozen server cannot enforce its own `statement_timeout`; this
    /// deadline holds anyway.
    pub fn query_deadline(&self) -> Duration {
        if self.statement_timeout.is_zero() {
            NO_STATEMENT_TIMEOUT_DEADLINE
        } else {
            self.statement_timeout + QUERY_DEADLINE_MARGIN
        }
    }
}

/// Added to the statement timeout for the client-side deadline of a query.
const QUERY_DEADLINE_MARGIN: Duration = Duration::from_secs(1);
/// The client-side deadline of a query when `--db-statement-timeout` is 0.
const NO_STATEMENT_TIMEOUT_DEADLINE: Duration = Duration::from_secs(30);

/// Database errors, with what the operator needs to fix.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A CA, certificate or key file is unusable.
    #[error(transparent)]
    Material(#[from] MaterialError),
    /// The TLS client config could not be built.
    #[error(transparent)]
    Tls(#[from] client::ClientConfigError),
    /// No connection could be made or verified.
    #[error("cannot connect to {target}: {reason}")]
    Connect {
        /// host:port as user.
        target: String,
        /// The full cause chain.
        reason: String,
    },
    /// No connection could be had in time.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query (or transaction attempt) did not finish within the client-side deadline; its
    /// connection was discarded.
    #[error("the database did not answer within {0:?} (statement timeout + margin); the connection was discarded")]
    Deadline(Duration),
    /// A statement failed (shown in the message, so not also a `source`).
    #[error("query failed: {0}")]
    Query(tokio_postgres::Error),
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Query(e)
    }
}

impl DbError {
    /// Whether this error means the database cannot be reached right now (answer 503).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) | Self::Connect { .. } | Self::Deadline(_) => true,
            Self::Query(e) => is_connection_broken(e),
            _ => false,
        }
    }
}

fn pool_error(target: &DbTarget, e: PoolError) -> DbError {
    let where_ = format!("{}:{} as {}", target.host, target.port, target.user);
    match e {
        PoolError::Backend(pg) => {
            let mut reason = crate::util::error_chain(&pg);
            if let Some(db) = pg.as_db_error() {
                reason = format!("the server refused: {} (SQLSTATE {})", db.message(), db.code().code());
                if db.message().contains("certificate") {
                    reason.push_str("; check sslcert/sslkey: the client certificate must be issued by the cluster's CA and its CN must equal the user");
                }
            } else if let Some(hint) = crate::tls::rustls_error(&pg).and_then(|t| tls_hint(t, &target.host)) {
                reason.push_str("; ");
                reason.push_str(&hint);
            }
            DbError::Connect { target: where_, reason }
        }
        PoolError::Timeout(kind) => DbError::Connect {
            target: where_,
            reason: format!("timed out ({kind:?})"),
        },
        other => DbError::Connect {
            target: where_,
            reason: other.to_string(),
        },
    }
}

/// What to check when the TLS handshake with the database failed this way.
pub(crate) fn tls_hint(e: &rustls::Error, host: &str) -> Option<String> {
    use rustls::{AlertDescription as A, CertificateError as C};
    match e {
        rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            Some(format!("the database's certificate does not name {host}"))
        }
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            Some("the database's certificate is not issued by a CA in sslrootcert".into())
        }
        rustls::Error::AlertReceived(
            A::UnknownCA | A::BadCertificate | A::CertificateUnknown | A::CertificateRequired,
        ) => Some("the database does not trust the client certificate in sslcert (issued by another CA?)".into()),
        _ => None,
    }
}

/// A connection idle at least this long is pinged before it is handed out.
const PING_AFTER_IDLE: Duration = Duration::from_secs(5);

/// A verified pool and the target it connects to.
#[derive(Clone)]
pub struct DbPool {
    /// The deadpool pool.
    pub pool: Pool,
    /// The target (for messages): the one value the configuration holds, shared.
    pub target: Arc<DbTarget>,
    /// Increments with every rebuilt pool (also in `application_name`: `tlsward/g<n>`).
    pub generation: u64,
    /// Retry bounds of transactions.
    pub retry: RetryPolicy,
    /// Digest of the TLS material the pool's connections use.
    pub tls_digest: Option<String>,
    /// Deadline of each query or transaction attempt ([`PoolSettings::query_deadline`]).
    pub query_deadline: Duration,
    /// Fails requests fast while the database does not answer.
    pub breaker: std::sync::Arc<Breaker>,
}

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = Result<T, tokio_postgres::Error>> + Send + 'a>>;

/// Builds a pool for `target` with already loaded TLS material (without connecting).
pub fn build(
    target: &Arc<DbTarget>,
    settings: &PoolSettings,
    generation: u64,
    tls: Option<&DbTls>,
) -> Result<DbPool, DbError> {
    let cfg = target.pg_config(settings.connect_timeout, settings.statement_timeout, generation);
    let mgr_cfg = ManagerConfig {
        // `Fast` only checks that the connection is open; the ping (the seed's `pool_pre_ping`)
        // is paid only by connections idle longer than `PING_AFTER_IDLE` (post_recycle
        // below): a busy pool does not double its round trips, an idle one is checked.
        recycling_method: RecyclingMethod::Fast,
    };
    let mgr = match tls {
        None => Manager::from_config(cfg, tokio_postgres::NoTls, mgr_cfg),
        Some(tls) => {
            let config = tls.client_config(target.sslmode)?;
            Manager::from_config(cfg, tokio_postgres_rustls::MakeRustlsConnect::new(config), mgr_cfg)
        }
    };
    let max_lifetime = settings.max_lifetime;
    let pool = Pool::builder(mgr)
        .max_size(settings.max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(settings.checkout_timeout))
        .create_timeout(Some(settings.connect_timeout))
        .recycle_timeout(Some(settings.connect_timeout))
        .pre_recycle(Hook::sync_fn(move |_, metrics| {
            // Bounded connection age: old connections (and those of a replaced pool) go away.
            if metrics.age() > max_lifetime {
                return Err(HookError::message("connection reached --db-conn-max-lifetime"));
            }
            Ok(())
        }))
        .post_recycle(Hook::async_fn(
            |client: &mut deadpool_postgres::ClientWrapper, metrics| {
                let idle = metrics.last_used() > PING_AFTER_IDLE;
                Box::pin(async move {
                    if idle {
                        client.simple_query("").await.map_err(HookError::Backend)?;
                    }
                    Ok(())
                })
            },
        ))
        .build()
        .map_err(|e| DbError::Connect {
            target: target.redacted(),
            reason: e.to_string(),
        })?;
    Ok(DbPool {
        pool,
        target: target.clone(),
        generation,
        retry: RetryPolicy::default(),
        tls_digest: tls.map(DbTls::digest),
        query_deadline: settings.query_deadline(),
        breaker: Default::default(),
    })
}

/// Reads the TLS files of `target`, builds a pool and verifies it.
pub async fn build_and_verify(target: &DbTarget, settings: &PoolSettings, generation: u64) -> Result<DbPool, DbError> {
    let tls = DbTls::load(&crate::files::Files::disk(), target, crate::util::now_unix())?;
    let target = Arc::new(target.clone());
    verify(build(&target, settings, generation, tls.as_deref())?).await
}

/// Verifies a built pool: one connection under the configured `sslmode`, then `SELECT 1`
/// within the query deadline.
pub async fn verify(db: DbPool) -> Result<DbPool, DbError> {
    let target = &db.target;
    let client = db.pool.get().await.map_err(|e| pool_error(target, e))?;
    match tokio::time::timeout(db.query_deadline, client.simple_query("SELECT 1")).await {
        Err(_) => {
            drop(deadpool_postgres::Object::take(client));
            return Err(DbError::Deadline(db.query_deadline));
        }
        Ok(r) => r.map_err(|e| DbError::Connect {
            target: format!("{}:{}", target.host, target.port),
            reason: crate::util::error_chain(&e),
        })?,
    };
    drop(client);
    Ok(db)
}

/// Whether a checkout failure says the database did not answer (as opposed to a pool whose
/// connections are all busy).
fn unreachable(e: &PoolError) -> bool {
    !matches!(
        e,
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) | PoolError::Closed
    )
}

impl DbPool {
    /// Checks out a connection (pinged first when it was idle for `PING_AFTER_IDLE`), unless
    /// the breaker says the database is down: then it fails fast, except for the one caller
    /// whose checkout is the next attempt.
    pub async fn get(&self, metrics: &Metrics) -> Result<deadpool_postgres::Object, DbError> {
        let admission = self.breaker.admit(Instant::now());
        if let Admission::FailFast(next) = admission {
            metrics.db_retry("failing_fast");
            return Err(DbError::Unavailable(format!(
                "the database did not answer; failing fast until a reconnect succeeds (next attempt in {} ms)",
                next.as_millis()
            )));
        }
        let start = Instant::now();
        let got = self.pool.get().await;
        metrics.db_checkout_wait.observe(start.elapsed().as_secs_f64());
        match &got {
            Ok(_) => self.breaker.succeeded(),
            Err(e) if unreachable(e) => self.breaker.failed(Instant::now()),
            Err(_) if admission == Admission::Probe => self.breaker.probe_done(false, Instant::now()),
            Err(_) => {}
        }
        got.map_err(|e| match e {
            PoolError::Timeout(kind) => {
                DbError::Unavailable(format!("no connection within the checkout timeout ({kind:?})"))
            }
            other => pool_error(&self.target, other),
        })
    }

    /// A query ran past the deadline: the connection is discarded (it may still be waiting
    /// for the answer, and a later query would queue behind it) and the breaker learns that
    /// the database did not answer.
    fn discard_late(&self, client: deadpool_postgres::Object) -> DbError {
        drop(deadpool_postgres::Object::take(client));
        self.breaker.failed(Instant::now());
        DbError::Deadline(self.query_deadline)
    }

    /// Runs a read within the query deadline; if it fails because the connection broke, runs
    /// it once more on a fresh one.
    pub async fn read<T, F>(&self, metrics: &Metrics, f: F) -> Result<T, DbError>
    where
        F: for<'c> Fn(&'c deadpool_postgres::Client) -> BoxFut<'c, T>,
    {
        let client = self.get(metrics).await?;
        match tokio::time::timeout(self.query_deadline, f(&client)).await {
            Err(_) => Err(self.discard_late(client)),
            Ok(Err(e)) if is_connection_broken(&e) => {
                drop(deadpool_postgres::Object::take(client));
                metrics.db_retry("connection_broken");
                let fresh = self.get(metrics).await?;
                match tokio::time::timeout(self.query_deadline, f(&fresh)).await {
                    Err(_) => Err(self.discard_late(fresh)),
                    Ok(r) => Ok(r?),
                }
            }
            Ok(other) => Ok(other?),
        }
    }

    /// Runs `f` in a SERIALIZABLE transaction, retrying SQLSTATE 40001 with back-off; each
    /// attempt (BEGIN to COMMIT) has the query deadline. Past it the outcome is unknown to
    /// the caller (COMMIT may have been applied), which is reported as unavailable.
    pub async fn transaction<T, F>(&self, metrics: &Metrics, mut f: F) -> Result<T, DbError>
    where
        F: for<'t> FnMut(&'t Transaction<'_>) -> BoxFut<'t, T>,
    {
        let mut client = self.get(metrics).await?;
        if client.is_closed() {
            // Nothing was sent yet: a connection that died idle is replaced once.
            metrics.db_retry("connection_broken");
            drop(deadpool_postgres::Object::take(client));
            client = self.get(metrics).await?;
        }
        let mut attempt = 1;
        loop {
            let once = async {
                let tx = client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start()
                    .await?;
                let value = f(&tx).await?;
                tx.commit().await?;
                Ok::<T, tokio_postgres::Error>(value)
            };
            match tokio::time::timeout(self.query_deadline, once).await {
                Err(_) => return Err(self.discard_late(client)),
                Ok(Err(e)) if is_retryable(&e) && attempt < self.retry.max_attempts => {
                    metrics.db_retry("serialization_failure");
                    tokio::time::sleep(self.retry.backoff(attempt, rand::random::<f64>())).await;
                    attempt += 1;
                }
                Ok(other) => return Ok(other?),
            }
        }
    }
}
