//! The running server: our own TLS accept loop (one task per connection, handshake under a
//! timeout, hyper-util auto HTTP/1.1 + h2, graceful drain), the admin and redirect listeners,
//! and the task that verifies the DB pool before the server turns ready.

pub mod admin;
pub mod hello;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::db;
use crate::metrics::HandshakeLabels;
use crate::snapshot::Snapshot;
use crate::state::AppState;

/// A server that is running: its bound addresses, its state and how to stop it.
pub struct Running {
    /// The HTTPS address actually bound (port 0 resolved).
    pub tls_addr: SocketAddr,
    /// The admin address actually bound.
    pub admin_addr: SocketAddr,
    /// The redirect listener's address, if on.
    pub redirect_addr: Option<SocketAddr>,
    /// Shared state.
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    reload: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Running {
    /// Asks for a reload, as SIGHUP does.
    pub fn reload(&self) {
        let _ = self.reload.send(());
    }

    /// Starts draining and waits (up to the grace period) for open connections to finish.
    pub async fn shutdown(self) {
        self.state.start_draining();
        let _ = self.shutdown.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(addr: SocketAddr, what: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {addr} ({what}): {e}")))
}

/// Binds every listener and starts serving. The DB pool is verified in the background; the
/// server answers 503 `database_unavailable` and `/readyz` is false until it is.
pub async fn start(config: Config, snapshot: Snapshot) -> std::io::Result<Running> {
    start_with(config, snapshot, None).await
}

/// [`start`], with a given Kubernetes client instead of one inferred from the environment
/// (tests hand in one that talks to a mock or a fake API server).
pub async fn start_with(config: Config, snapshot: Snapshot, kube: Option<kube::Client>) -> std::io::Result<Running> {
    let tls = bind(config.listen, "--listen").await?;
    let admin = bind(config.admin_listen, "--admin-listen").await?;
    let redirect = match config.http_redirect_listen {
        Some(a) => Some(bind(a, "--http-redirect-listen").await?),
        None => None,
    };
    let tls_addr = tls.local_addr()?;
    let admin_addr = admin.local_addr()?;
    let redirect_addr = redirect.as_ref().map(TcpListener::local_addr).transpose()?;
    let state = Arc::new(AppState::new(config, snapshot));
    let (tx, rx) = watch::channel(false);
    let mut tasks = vec![
        tokio::spawn(accept_loop(tls, state.clone(), rx.clone())),
        tokio::spawn(plain(admin, crate::server::admin::router(state.clone()), rx.clone())),
    ];
    if let Some(l) = redirect {
        tasks.push(tokio::spawn(plain(
            l,
            crate::api::redirect_router(tls_addr.port()),
            rx.clone(),
        )));
    }
    // Listen for notices before the first reload outcome (the start-up expiry check) happens.
    let notices = state
        .config
        .kube
        .events_on()
        .then(|| state.listen_notices(crate::k8s::events::QUEUE))
        .flatten();
    let reload = crate::reload::task::spawn(state.clone(), rx.clone());
    crate::k8s::start(state.clone(), notices, reload.clone(), rx.clone(), kube)
        .await
        .map_err(std::io::Error::other)?;
    db::manager::spawn(state.clone(), rx);
    tracing::info!(%tls_addr, %admin_addr, "serving");
    Ok(Running {
        tls_addr,
        admin_addr,
        redirect_addr,
        state,
        shutdown: tx,
        tasks,
        reload,
    })
}

async fn wait_for(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn plain(listener: TcpListener, router: axum::Router, rx: watch::Receiver<bool>) {
    if let Err(e) = axum::serve(listener, router).with_graceful_shutdown(wait_for(rx)).await {
        tracing::error!(error = %e, "plain HTTP listener failed");
    }
}

/// Maps a failed handshake to a bounded `reason` label.
pub fn handshake_failure_reason(err: &std::io::Error) -> &'static str {
    use rustls::PeerIncompatible as P;
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => "eof",
            _ => "io",
        };
    };
    match tls {
        rustls::Error::PeerIncompatible(
            P::Tls12NotOffered
            | P::Tls12NotOfferedOrEnabled
            | P::SupportedVersionsExtensionRequired
            | P::ServerDoesNotSupportTls12Or13,
        ) => "protocol_version",
        rustls::Error::PeerIncompatible(P::NoCipherSuitesInCommon) => "no_shared_cipher",
        rustls::Error::PeerIncompatible(
            P::NoKxGroupsInCommon | P::NamedGroupsExtensionRequired | P::KeyShareExtensionRequired,
        ) => "no_shared_group",
        rustls::Error::PeerIncompatible(_) => "incompatible",
        rustls::Error::NoCertificatesPresented | rustls::Error::InvalidCertificate(_) => "client_certificate",
        rustls::Error::InvalidMessage(_) => "invalid_message",
        rustls::Error::AlertReceived(_) => "alert_received",
        rustls::Error::NoApplicationProtocol => "no_alpn",
        _ => "other",
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<AppState>, rx: watch::Receiver<bool>) {
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(state.config.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let app = crate::api::router(state.clone());
    let stop = wait_for(rx);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let task = connection(tcp, state.clone(), builder.clone(), app.clone(), graceful.watcher());
                    tokio::spawn(task);
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            () = &mut stop => break,
        }
    }
    drop(listener);
    let grace = state.config.shutdown_grace;
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!(?grace, "connections still open after the shutdown grace; closing them");
    }
}

async fn connection(
    tcp: TcpStream,
    state: Arc<AppState>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    app: axum::Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = tcp.set_nodelay(true);
    let acceptor = TlsAcceptor::from(state.snapshot.load().server_config.clone());
    let m = &state.metrics;
    let accept = acceptor.accept(hello::FirstBytes::new(tcp)).into_fallible();
    let tls = match tokio::time::timeout(state.config.handshake_timeout, accept).await {
        Ok(Ok(tls)) => tls,
        Ok(Err((e, io))) => {
            let reason = match io.client_version() {
                Some(v) if v < 0x0303 => "protocol_version",
                _ => handshake_failure_reason(&e),
            };
            tracing::debug!(error = %e, reason, "TLS handshake failed");
            m.handshake_failed(reason);
            return;
        }
        Err(_) => {
            m.handshake_failed("timeout");
            return;
        }
    };
    let (_, conn) = tls.get_ref();
    let version = conn
        .protocol_version()
        .map_or("unknown".to_string(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or("unknown", crate::tls::policy::suite_name);
    m.handshakes
        .get_or_create(&HandshakeLabels {
            version,
            suite: suite.to_string(),
        })
        .inc();
    let service = TowerToHyperService::new(app);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
