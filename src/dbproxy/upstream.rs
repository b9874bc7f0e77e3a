//! The proxy's connection to the database: TCP, SSLRequest, then TLS under the DSN's
//! `sslmode` (verify-full unless the operator opted out) with the client certificate of the
//! snapshot being served, so that a rotation applies to the next connection. The rustls
//! config is built once per DB material and reused until the material changes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::wire;
use crate::db::dsn::DbTarget;
use crate::db::material::DbTls;
use crate::snapshot::Snapshots;

/// Why the database could not be reached; [`UpstreamError::reason`] is the metric label.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UpstreamError {
    /// The snapshot has no DB material (the DSN has no TLS, or none loaded yet).
    #[error("no database TLS material is loaded (sslrootcert/sslcert/sslkey of --db-url)")]
    NoMaterial,
    /// The TLS client config could not be built.
    #[error("{0}")]
    Config(String),
    /// TCP connect failed.
    #[error("cannot connect to {target}: {source}")]
    Connect {
        /// host:port.
        target: String,
        /// The cause.
        source: std::io::Error,
    },
    /// TCP, SSLRequest and handshake took longer than the connect timeout.
    #[error("no TLS session with {0} within the connect timeout")]
    Timeout(String),
    /// The server answered SSLRequest with something other than `S`.
    #[error("{0} does not offer TLS (it answered the SSLRequest with {1:?})")]
    NoTls(String, char),
    /// The TLS handshake failed.
    #[error("the TLS handshake with {target} failed: {source}{hint}")]
    Handshake {
        /// host:port.
        target: String,
        /// The cause (a rustls error inside).
        source: std::io::Error,
        /// What to check, or empty.
        hint: String,
    },
}

impl UpstreamError {
    /// A fixed word for `tlsward_db_proxy_upstream_failures{reason}`.
    pub(crate) fn reason(&self) -> &'static str {
        use rustls::{AlertDescription as A, CertificateError as C};
        match self {
            Self::NoMaterial | Self::Config(_) => "material",
            Self::Connect { .. } => "connect",
            Self::Timeout(_) => "timeout",
            Self::NoTls(..) => "tls_refused",
            Self::Handshake { source, .. } => match crate::tls::rustls_error(source) {
                Some(rustls::Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. })) => {
                    "server_name"
                }
                Some(rustls::Error::InvalidCertificate(_)) => "server_certificate",
                Some(rustls::Error::AlertReceived(
                    A::UnknownCA | A::BadCertificate | A::CertificateUnknown | A::CertificateRequired,
                )) => "client_certificate",
                _ => "handshake",
            },
        }
    }

    /// The SQLSTATE the app is answered with.
    pub(crate) fn sqlstate(&self) -> &'static str {
        match self {
            Self::NoMaterial | Self::Config(_) => "58000",
            _ => "08001",
        }
    }
}

/// Opens verified TLS connections to the database with the served DB material.
pub(crate) struct Connector {
    target: Arc<DbTarget>,
    snapshots: Snapshots,
    timeout: Duration,
    cached: Mutex<Option<(Arc<DbTls>, Arc<ClientConfig>)>>,
}

impl Connector {
    /// A connector for `target`, whose material is read from `snapshots` at each connection.
    pub(crate) fn new(target: Arc<DbTarget>, snapshots: Snapshots, timeout: Duration) -> Self {
        Self {
            target,
            snapshots,
            timeout,
            cached: Mutex::new(None),
        }
    }

    /// The material connections use now.
    pub(crate) fn material(&self) -> Option<Arc<DbTls>> {
        self.snapshots.load().db_tls.clone()
    }

    /// The client config for the current material (built once per material).
    fn config(&self) -> Result<Arc<ClientConfig>, UpstreamError> {
        let tls = self.material().ok_or(UpstreamError::NoMaterial)?;
        let mut cached = self.cached.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, c)) = cached.as_ref().filter(|(m, _)| Arc::ptr_eq(m, &tls)) {
            return Ok(c.clone());
        }
        let config = Arc::new(
            tls.client_config(self.target.sslmode)
                .map_err(|e| UpstreamError::Config(e.to_string()))?,
        );
        *cached = Some((tls, config.clone()));
        Ok(config)
    }

    /// TCP + SSLRequest + TLS handshake, within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<TlsStream<TcpStream>, UpstreamError> {
        let config = self.config()?;
        let target = format!("{}:{}", self.target.host, self.target.port);
        tokio::time::timeout(self.timeout, self.handshake(config, &target))
            .await
            .map_err(|_| UpstreamError::Timeout(target.clone()))?
    }

    async fn handshake(&self, config: Arc<ClientConfig>, target: &str) -> Result<TlsStream<TcpStream>, UpstreamError> {
        let connect_error = |source| UpstreamError::Connect {
            target: target.to_string(),
            source,
        };
        let mut tcp = TcpStream::connect((self.target.host.as_str(), self.target.port))
            .await
            .map_err(connect_error)?;
        let _ = tcp.set_nodelay(true);
        tcp.write_all(&wire::ssl_request()).await.map_err(connect_error)?;
        let answer = tcp.read_u8().await.map_err(connect_error)?;
        if answer != b'S' {
            return Err(UpstreamError::NoTls(target.to_string(), char::from(answer)));
        }
        let name = ServerName::try_from(self.target.host.clone())
            .map_err(|e| UpstreamError::Config(format!("{}: not a server name: {e}", self.target.host)))?;
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|source| {
                let hint = crate::tls::rustls_error(&source)
                    .and_then(|t| crate::db::pool::tls_hint(t, &self.target.host))
                    .map_or(String::new(), |h| format!("; {h}"));
                UpstreamError::Handshake {
                    target: target.to_string(),
                    source,
                    hint,
                }
            })
    }
}
