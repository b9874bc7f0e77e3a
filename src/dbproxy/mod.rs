//! `--db-proxy-listen`: the database hop of the sidecar. The app connects in clear to a
//! unix socket in a shared `emptyDir` (`.s.PGSQL.26257`, so libpq/psycopg `host=/run/tlsward`
//! works) or to loopback TCP; per connection the proxy reads the StartupMessage, checks that
//! its `user` is the client certificate's CN, opens the database with TLS under the DSN's
//! `sslmode` (verify-full) and the snapshot's current client certificate ([`upstream`]), and
//! relays both ways ([`relay`]). A rotation applies to the next connection; a session past
//! `--db-max-session-age` is closed only when idle between transactions.

pub(crate) mod relay;
pub(crate) mod upstream;
pub(crate) mod wire;

use std::net::SocketAddr;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::db::dsn::DbTarget;
use crate::metrics::Metrics;
use crate::snapshot::Snapshots;
use relay::{Bytes, End, Ends};
use upstream::Connector;
use wire::{First, Startup};

/// The socket file name libpq looks for in `host=DIR` with port 26257.
pub const SOCKET_NAME: &str = ".s.PGSQL.26257";

/// Where the app connects to the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbListen {
    /// A unix socket: the file.
    Unix(PathBuf),
    /// Loopback (or, when allowed, any) TCP.
    Tcp(SocketAddr),
}

impl DbListen {
    /// Parses `--db-proxy-listen`: `unix:/DIR` (the socket is `DIR/.s.PGSQL.26257`),
    /// `unix:/DIR/.s.PGSQL.PORT`, or `HOST:PORT` (loopback unless `allow_remote`).
    pub fn parse(s: &str, allow_remote: bool) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("{s}: write unix:/absolute/dir"));
            }
            let named = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(".s.PGSQL."));
            return Ok(Self::Unix(if named { path } else { path.join(SOCKET_NAME) }));
        }
        let addr: SocketAddr = s
            .parse()
            .map_err(|e| format!("{s}: {e}; write unix:/run/tlsward or 127.0.0.1:26257"))?;
        if !addr.ip().is_loopback() && !allow_remote {
            return Err(format!(
                "{s}: the app reaches the database proxy in clear, so it listens on a unix socket or loopback only; pass --db-proxy-allow-remote to listen on {}",
                addr.ip()
            ));
        }
        Ok(Self::Tcp(addr))
    }
}

/// How the database proxy runs.
#[derive(Debug, Clone)]
pub struct DbProxySettings {
    /// Where the app connects.
    pub listen: DbListen,
    /// The database (its `sslrootcert`/`sslcert`/`sslkey` reload with the snapshot).
    pub target: Arc<DbTarget>,
    /// TCP + SSLRequest + TLS handshake limit towards the database.
    pub connect_timeout: Duration,
    /// Sessions older than this are closed when next idle between transactions (zero: never).
    pub max_session_age: Duration,
    /// How long open sessions get at shutdown to become idle.
    pub shutdown_grace: Duration,
}

/// A bound listener.
pub enum Listener {
    /// On a unix socket.
    Unix(UnixListener, PathBuf),
    /// On TCP.
    Tcp(TcpListener),
}

impl Listener {
    /// Binds `listen`: a stale socket file is replaced, the new one is `0660` (the app shares
    /// the pod's `fsGroup`).
    pub async fn bind(listen: &DbListen) -> std::io::Result<Self> {
        let fail = |e: std::io::Error, what: &str| {
            std::io::Error::new(e.kind(), format!("cannot listen on {what} (--db-proxy-listen): {e}"))
        };
        match listen {
            DbListen::Tcp(a) => Ok(Self::Tcp(
                TcpListener::bind(a).await.map_err(|e| fail(e, &a.to_string()))?,
            )),
            DbListen::Unix(path) => {
                let shown = path.display().to_string();
                remove_stale_socket(path).map_err(|e| fail(e, &shown))?;
                let l = UnixListener::bind(path).map_err(|e| fail(e, &shown))?;
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|e| fail(e, &shown))?;
                Ok(Self::Unix(l, path.clone()))
            }
        }
    }

    /// What to show in the log.
    pub fn describe(&self) -> String {
        match self {
            Self::Unix(_, p) => format!("unix:{}", p.display()),
            Self::Tcp(l) => l.local_addr().map_or_else(|_| "tcp".into(), |a| a.to_string()),
        }
    }
}

fn remove_stale_socket(path: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => std::fs::remove_file(path),
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            "a file that is not a socket is in the way",
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The proxy: the connector, the settings and the metrics each session reports to.
pub struct DbProxy {
    connector: Connector,
    settings: DbProxySettings,
    metrics: Arc<Metrics>,
    bytes: Bytes,
}

impl DbProxy {
    /// A proxy to `settings.target` with the DB material of `snapshots`.
    pub fn new(settings: DbProxySettings, snapshots: Snapshots, metrics: Arc<Metrics>) -> Arc<Self> {
        let bytes = Bytes {
            to_db: metrics.db_proxy_bytes("to_db"),
            to_app: metrics.db_proxy_bytes("to_app"),
        };
        Arc::new(Self {
            connector: Connector::new(settings.target.clone(), snapshots, settings.connect_timeout),
            settings,
            metrics,
            bytes,
        })
    }

    /// Accepts until `stop` is cancelled, then gives open sessions up to the shutdown grace to
    /// become idle (each is closed at its first idle moment).
    pub fn spawn(self: Arc<Self>, listener: Listener, stop: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            tracing::info!(listen = %listener.describe(), target = %self.settings.target.redacted(), "database proxy listening");
            let mut sessions = JoinSet::new();
            self.accept_until(&listener, &mut sessions, stop).await;
            if let Listener::Unix(_, path) = &listener {
                let _ = std::fs::remove_file(path);
            }
            let drain = async { while sessions.join_next().await.is_some() {} };
            if tokio::time::timeout(self.settings.shutdown_grace, drain).await.is_err() {
                tracing::warn!(
                    open = sessions.len(),
                    "database sessions still busy after the shutdown grace; closing them"
                );
            }
        })
    }

    async fn accept_until(self: &Arc<Self>, listener: &Listener, sessions: &mut JoinSet<()>, stop: CancellationToken) {
        loop {
            let accepted = tokio::select! {
                a = accept(listener) => a,
                () = stop.cancelled() => return,
            };
            while sessions.try_join_next().is_some() {}
            match accepted {
                Ok(Accepted::Unix(s)) => sessions.spawn(self.clone().session(s, stop.clone())),
                Ok(Accepted::Tcp(s)) => {
                    let _ = s.set_nodelay(true);
                    sessions.spawn(self.clone().session(s, stop.clone()))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "database proxy: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
        }
    }

    async fn session<S>(self: Arc<Self>, mut app: S, stop: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        match wire::read_first(&mut app).await {
            Ok(First::Cancel(packet)) => self.cancel(&packet).await,
            Ok(First::Startup(startup)) => self.relay(app, startup, stop).await,
            Err(e) => {
                tracing::debug!(error = %e, "database proxy: refused a client's start-up");
                if let Some(code) = e.sqlstate() {
                    let _ = app.write_all(&wire::fatal(code, &e.to_string(), None)).await;
                }
            }
        }
    }

    /// Forwards a CancelRequest on a fresh TLS connection (the key is the database's own,
    /// relayed to the app in BackendKeyData).
    async fn cancel(&self, packet: &[u8]) {
        match self.connector.connect().await {
            Ok(mut db) => {
                let _ = db.write_all(packet).await;
                let _ = db.shutdown().await;
            }
            Err(e) => {
                self.metrics.db_proxy_upstream_failed(e.reason());
                tracing::warn!(error = %e, "database proxy: cannot forward a cancel request");
            }
        }
    }

    async fn relay<S>(&self, mut app: S, mut startup: Startup, stop: CancellationToken)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        if let Err((code, message, hint)) = self.check_user(&startup) {
            let _ = app.write_all(&wire::fatal(code, &message, Some(&hint))).await;
            return;
        }
        if let Some(options) = &self.settings.target.options {
            startup.default_param("options", options);
        }
        let started = std::time::Instant::now();
        let mut db = match self.connector.connect().await {
            Ok(db) => db,
            Err(e) => {
                self.metrics.db_proxy_upstream_failed(e.reason());
                tracing::warn!(error = %e, "database proxy: cannot open the database");
                let message = format!("the database proxy cannot reach the database: {e}");
                let _ = app.write_all(&wire::fatal(e.sqlstate(), &message, None)).await;
                return;
            }
        };
        self.metrics.db_proxy_connected(started.elapsed());
        if db.write_all(&startup.encode()).await.is_err() {
            return;
        }
        let _open = self.metrics.db_proxy_session_opened();
        let deadline = (!self.settings.max_session_age.is_zero())
            .then(|| tokio::time::Instant::now() + self.settings.max_session_age);
        match relay::relay(app, db, Ends { deadline, stop }, &self.bytes).await {
            End::Closed(c) => self.metrics.db_proxy_session_closed(c.reason()),
            End::Ended(Some(e)) => tracing::debug!(error = %e, "database proxy: session ended"),
            End::Ended(None) => {}
        }
    }

    /// The StartupMessage's `user` must be the client certificate's CN: the database would
    /// refuse it anyway, less clearly, after a TLS handshake.
    fn check_user(&self, startup: &Startup) -> Result<(), (&'static str, String, String)> {
        let Some(user) = startup.param("user") else {
            return Err((
                "28000",
                "no user in the StartupMessage".into(),
                "set the user in the app's database URL".into(),
            ));
        };
        let material = self.connector.material();
        let cn = material
            .as_ref()
            .and_then(|m| m.client.as_ref())
            .and_then(|c| c.info.common_name().map(str::to_string));
        match cn {
            Some(cn) if cn != user => Err((
                "28000",
                format!("user {user:?} is not the database proxy's client certificate user {cn:?}"),
                format!(
                    "connect as {cn:?}: the proxy authenticates to the database with the certificate in sslcert of --db-url"
                ),
            )),
            _ => Ok(()),
        }
    }
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream),
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    Ok(match l {
        Listener::Unix(l, _) => Accepted::Unix(l.accept().await?.0),
        Listener::Tcp(l) => Accepted::Tcp(l.accept().await?.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_socket_directory_a_socket_file_and_loopback_tcp() {
        assert_eq!(
            DbListen::parse("unix:/run/tlsward", false),
            Ok(DbListen::Unix(PathBuf::from("/run/tlsward/.s.PGSQL.26257")))
        );
        assert_eq!(
            DbListen::parse("unix:/run/tlsward/.s.PGSQL.5432", false),
            Ok(DbListen::Unix(PathBuf::from("/run/tlsward/.s.PGSQL.5432")))
        );
        assert_eq!(
            DbListen::parse("127.0.0.1:26257", false),
            Ok(DbListen::Tcp("127.0.0.1:26257".parse().unwrap()))
        );
    }

    #[test]
    fn refuses_a_remote_address_unless_allowed_and_a_relative_socket() {
        let e = DbListen::parse("0.0.0.0:26257", false).unwrap_err();
        assert!(e.contains("--db-proxy-allow-remote"), "{e}");
        assert!(DbListen::parse("0.0.0.0:26257", true).is_ok());
        assert!(DbListen::parse("unix:run/x", false).unwrap_err().contains("absolute"));
        assert!(DbListen::parse("localhost", false).is_err());
    }
}
