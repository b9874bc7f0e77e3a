//! The running server: composes the parts of `serve` and `proxy` — the TLS listener (whose
//! accept loop is `edge::Edge::run`: one task per connection, handshake under a timeout,
//! hyper-util auto HTTP/1.1 + h2, graceful drain), the admin and redirect listeners, the reload
//! task, the DB manager or the proxy, the reporters — and starts them in order.

pub(crate) mod admin;
pub mod command;
pub mod db_proxy;
pub(crate) mod hello;
pub(crate) mod readiness;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::api::ApiState;
use crate::config::{Config, Front};
use crate::db;
use crate::db::handle::Db;
use crate::edge::{Conn, Edge, Limits};
use crate::metrics::{HandshakeLabels, Metrics};
use crate::reload::Notices;
use crate::snapshot::{Snapshot, SnapshotStore, Snapshots};
use admin::AdminState;
use readiness::Readiness;

/// A server that is running: its bound addresses, its state and how to stop it.
pub struct Running {
    /// The HTTPS address actually bound (port 0 resolved).
    pub tls_addr: SocketAddr,
    /// The admin address actually bound.
    pub admin_addr: SocketAddr,
    /// The redirect listener's address, if on.
    pub redirect_addr: Option<SocketAddr>,
    snapshots: Snapshots,
    db: Db,
    files: crate::files::Files,
    stopper: Stopper,
    reload: tokio::sync::mpsc::UnboundedSender<()>,
}

impl Running {
    /// Asks for a reload, as SIGHUP does.
    pub fn reload(&self) {
        let _ = self.reload.send(());
    }

    /// A read handle on the served snapshot.
    pub fn snapshots(&self) -> Snapshots {
        self.snapshots.clone()
    }

    /// The file reader of the reloads (with the Secret data laid over the directories).
    pub fn files(&self) -> crate::files::Files {
        self.files.clone()
    }

    /// A read handle on the served DB pool.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// Shuts down without losing a request: `/readyz` answers 503 at once while both
    /// listeners keep accepting and serving for `--drain-delay` (the time Endpoints,
    /// kube-proxy, ingresses and meshes take to stop sending here); then the listeners stop
    /// accepting, open connections are asked to close (`Connection: close` on HTTP/1.1,
    /// GOAWAY on h2) and in-flight requests get up to `--shutdown-grace` to finish.
    pub async fn shutdown(self) {
        self.stopper.stop().await;
    }
}

/// How a running server stops: its readiness, drain delay, the stop signal of its tasks and
/// the tasks it then waits for.
struct Stopper {
    readiness: Readiness,
    drain_delay: Duration,
    /// Every task's stop signal; dropped with the server, it stops them too.
    shutdown: DropGuard,
    tasks: Vec<JoinHandle<()>>,
}

impl Stopper {
    /// Unready at once; serving on for the drain delay; then every task told to stop and
    /// waited for.
    async fn stop(self) {
        self.readiness.start_draining();
        let delay = self.drain_delay;
        if !delay.is_zero() {
            tracing::info!(
                ?delay,
                "draining: /readyz answers 503, still serving until the drain delay is over"
            );
            tokio::time::sleep(delay).await;
        }
        tracing::info!("no longer accepting connections; closing the open ones gracefully");
        self.shutdown.disarm().cancel();
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
    let listeners = Listeners::bind(&config).await?;
    let (tls_addr, admin_addr, redirect_addr) = listeners.addrs()?;
    let metrics = Arc::new(Metrics::new());
    metrics.init_series();
    let store = SnapshotStore::new(snapshot);
    let snapshots = store.reader();
    let (db_publisher, db) = Db::new();
    let (tls_app, readiness) = match &config.front {
        Front::Api { db_unready_after, .. } => {
            let api = crate::api::router(Arc::new(ApiState {
                snapshots: snapshots.clone(),
                db: db.clone(),
                metrics: metrics.clone(),
                limits: config.requests,
                throttle: crate::logs::Throttle::default(),
            }));
            (FrontService::Api(api), Readiness::new(db.clone(), *db_unready_after))
        }
        Front::Proxy { http: p, .. } => {
            let f = Arc::new(crate::proxy::Forwarder::new(p.clone(), Some(snapshots.clone())));
            let readiness = Readiness::for_upstream(f.health(), p.unready_after);
            (FrontService::Proxy(f), readiness)
        }
    };
    let control = Control::new(config.reload.clone(), &config.kube, store, &metrics);
    let (status, reporters, files) = (control.status.clone(), control.reporters.clone(), control.files.clone());
    let stop = CancellationToken::new();
    // Dropped on an early return below, it stops whatever was already spawned.
    let shutdown = stop.clone().drop_guard();
    let services = Services {
        tls: tls_app,
        handshake: Arc::new(Handshake {
            snapshots: snapshots.clone(),
            metrics: metrics.clone(),
            timeout: config.edge.handshake_timeout,
        }),
        admin: Arc::new(AdminState {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
            status: status.clone(),
            db: db.clone(),
        }),
    };
    if let FrontService::Proxy(f) = &services.tls {
        tokio::spawn(f.clone().probe_until(stop.clone()));
    }
    let db_proxy = match &config.front {
        Front::Proxy { db: Some(d), .. } => Some((d, crate::dbproxy::Listener::bind(&d.listen).await?)),
        _ => None,
    };
    let mut tasks = listeners.serve(&config, services, &metrics, &stop);
    if let Some((settings, listener)) = db_proxy {
        let proxy = crate::dbproxy::DbProxy::new(settings.clone(), snapshots.clone(), metrics.clone());
        tasks.push(proxy.spawn(listener, stop.clone()));
    }
    let reload = control.start(&config.kube, &metrics, &stop, kube).await?;
    let outputs = db::manager::Outputs {
        publisher: db_publisher,
        metrics,
        report: move |o: db::manager::PoolOutcome| reporters.report(&crate::reload::report::Event::Pool(&o)),
    };
    if let Front::Api { db: settings, .. } = &config.front {
        db::manager::spawn(settings.clone(), snapshots.clone(), outputs, stop.clone());
    }
    tracing::info!(%tls_addr, %admin_addr, "serving");
    Ok(Running {
        tls_addr,
        admin_addr,
        redirect_addr,
        snapshots,
        db,
        files,
        stopper: Stopper {
            readiness,
            drain_delay: config.edge.drain_delay,
            shutdown,
            tasks,
        },
        reload,
    })
}

/// The reload task before it starts, and what hears its and the DB manager's outcomes:
/// `/reload-status`, the metrics, the log and the notices (Kubernetes Events when they are on).
struct Control {
    reloader: crate::reload::task::Reloader,
    status: crate::reload::Status,
    reporters: crate::reload::report::Reporters,
    heard: Option<tokio::sync::mpsc::Receiver<crate::reload::Notice>>,
    files: crate::files::Files,
}

impl Control {
    /// The reload task of `store`'s snapshot; the notices are listened for before the first
    /// outcome (the start-up expiry check) happens.
    fn new(
        settings: crate::reload::Settings,
        kube: &crate::k8s::KubeSettings,
        store: SnapshotStore,
        metrics: &Arc<Metrics>,
    ) -> Self {
        let (notices, heard) = notices_for(kube, metrics);
        let files = crate::files::Files::disk();
        let status = crate::reload::Status::default();
        let reporters = crate::reload::report::Reporters::new(vec![
            Arc::new(status.clone()),
            metrics.clone(),
            Arc::new(crate::reload::report::Log),
            Arc::new(notices.clone()),
        ]);
        let reloader = crate::reload::task::Reloader::new(settings, files.clone(), store, reporters.clone());
        Self {
            reloader,
            status,
            reporters,
            heard,
            files,
        }
    }

    /// Starts the reload task and the Kubernetes side (the Event publisher, the Secret
    /// watch); returns the sender that asks for a reload.
    async fn start(
        self,
        kube: &crate::k8s::KubeSettings,
        metrics: &Arc<Metrics>,
        stop: &CancellationToken,
        client: Option<kube::Client>,
    ) -> std::io::Result<tokio::sync::mpsc::UnboundedSender<()>> {
        let reload = self.reloader.spawn(stop.clone());
        let handles = crate::k8s::Handles {
            metrics: metrics.clone(),
            notices: self.heard,
            files: self.files,
            reload: reload.clone(),
        };
        crate::k8s::start(kube.clone(), handles, stop.clone(), client)
            .await
            .map_err(std::io::Error::other)?;
        Ok(reload)
    }
}

/// The bound listeners.
struct Listeners {
    tls: TcpListener,
    admin: TcpListener,
    redirect: Option<TcpListener>,
}

/// What the TLS listener serves: the running form of the configured [`Front`].
#[derive(Clone)]
enum FrontService {
    /// The users API.
    Api(crate::api::Api),
    /// The proxy to the app (a service per connection, which knows the peer and its
    /// verified client certificate).
    Proxy(Arc<crate::proxy::Forwarder>),
}

/// A TLS connection after its handshake.
type Tls = tokio_rustls::server::TlsStream<hello::FirstBytes<TcpStream>>;

impl FrontService {
    /// Serves one connection from `peer` after its handshake: the API's router, or the
    /// proxy's service for this connection (which reads the verified client certificate once).
    async fn serve(&self, conn: Conn, tls: Tls, peer: std::net::IpAddr) {
        match self {
            Self::Api(r) => conn.serve_http(tls, r.clone()).await,
            Self::Proxy(f) => {
                let leaf = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                let connection = crate::proxy::Connection::new(peer, leaf.map(|c| c.as_ref()));
                conn.serve_http(tls, crate::proxy::service(f.clone(), connection)).await;
            }
        }
    }
}

/// What the listeners serve: the front, the handshake before it, the admin router.
struct Services {
    tls: FrontService,
    handshake: Arc<Handshake>,
    admin: Arc<AdminState>,
}

impl Listeners {
    async fn bind(config: &Config) -> std::io::Result<Self> {
        let redirect = match config.listeners.http_redirect_listen {
            Some(a) => Some(bind(a, "--http-redirect-listen").await?),
            None => None,
        };
        Ok(Self {
            tls: bind(config.listeners.listen, "--listen").await?,
            admin: bind(config.listeners.admin_listen, "--admin-listen").await?,
            redirect,
        })
    }

    fn addrs(&self) -> std::io::Result<(SocketAddr, SocketAddr, Option<SocketAddr>)> {
        let redirect = self.redirect.as_ref().map(TcpListener::local_addr).transpose()?;
        Ok((self.tls.local_addr()?, self.admin.local_addr()?, redirect))
    }

    /// One accept loop per listener, each stopping when `stop` is cancelled.
    fn serve(
        self,
        config: &Config,
        services: Services,
        metrics: &Arc<Metrics>,
        stop: &CancellationToken,
    ) -> Vec<JoinHandle<()>> {
        let grace = config.edge.shutdown_grace;
        let https_port = self.tls.local_addr().map_or(443, |a| a.port());
        let tls_edge = Edge::new("tls", config.edge.tls_limits, metrics.clone());
        let (app, handshake) = (services.tls, services.handshake);
        let mut tasks = vec![tokio::spawn(tls_edge.run(
            self.tls,
            stop.clone(),
            grace,
            move |tcp, conn| tls_connection(tcp, conn, handshake.clone(), app.clone()),
        ))];
        let plain = plain_limits(config.edge.header_timeout, config.edge.tls_limits.max_header_bytes);
        let admin_app = admin::router(services.admin);
        let admin_edge = Edge::new("admin", plain, metrics.clone());
        tasks.push(tokio::spawn(admin_edge.run(
            self.admin,
            stop.clone(),
            grace,
            move |tcp, conn| conn.serve_http(tcp, admin_app.clone()),
        )));
        if let Some(l) = self.redirect {
            let app = crate::web::redirect_router(https_port);
            let edge = Edge::new("redirect", plain, metrics.clone());
            tasks.push(tokio::spawn(edge.run(l, stop.clone(), grace, move |tcp, conn| {
                conn.serve_http(tcp, app.clone())
            })));
        }
        tasks
    }
}

/// Where reload and pool outcomes go: a channel to the Event publisher when Events are on.
fn notices_for(
    kube: &crate::k8s::KubeSettings,
    metrics: &Arc<Metrics>,
) -> (Notices, Option<tokio::sync::mpsc::Receiver<crate::reload::Notice>>) {
    if kube.events_on() {
        let (tx, rx) = Notices::channel(crate::k8s::events::QUEUE, metrics.clone());
        (tx, Some(rx))
    } else {
        (Notices::unheard(metrics.clone()), None)
    }
}

/// The limits of the plain-HTTP listeners (admin, redirect): few connections (probes and a
/// scraper), the same header timeout, a short idle timeout.
fn plain_limits(header_timeout: Duration, max_header_bytes: usize) -> Limits {
    Limits {
        max_connections: PLAIN_MAX_CONNECTIONS,
        header_timeout,
        idle_timeout: PLAIN_IDLE_TIMEOUT,
        h2_keepalive: Duration::ZERO,
        max_age: Duration::ZERO,
        max_header_bytes,
    }
}

/// Most open connections on the admin and redirect listeners each.
const PLAIN_MAX_CONNECTIONS: usize = 128;
/// Idle timeout of the admin and redirect listeners.
const PLAIN_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Maps a failed handshake to a bounded `reason` label.
pub fn handshake_failure_reason(err: &std::io::Error) -> &'static str {
    use rustls::PeerIncompatible as P;
    let Some(tls) = crate::tls::rustls_error(err) else {
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

/// What a TLS handshake reads: the served snapshot's `ServerConfig`, its timeout, and the
/// metrics it is counted in. Shared behind one `Arc` (one reference count per connection).
struct Handshake {
    snapshots: Snapshots,
    metrics: Arc<Metrics>,
    timeout: Duration,
}

/// One TLS connection: the handshake under a timeout with the current snapshot's
/// `ServerConfig` (counted by version and suite, failures by reason), then HTTP.
async fn tls_connection(tcp: TcpStream, conn: Conn, hs: Arc<Handshake>, app: FrontService) {
    let _ = tcp.set_nodelay(true);
    let peer = tcp
        .peer_addr()
        .map_or_else(|_| std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip());
    // Only `db-proxy`'s snapshots have no server configuration, and it has no TLS listener.
    let Some(config) = hs.snapshots.load().server_config.clone() else {
        tracing::error!("no server certificate to handshake with");
        return;
    };
    let acceptor = TlsAcceptor::from(config);
    let m = &hs.metrics;
    let accept = acceptor.accept(hello::FirstBytes::new(tcp)).into_fallible();
    let tls = match tokio::time::timeout(hs.timeout, accept).await {
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
    let (_, session) = tls.get_ref();
    let version = session
        .protocol_version()
        .map_or_else(|| "unknown".to_string(), |v| format!("{v:?}"));
    let suite = session
        .negotiated_cipher_suite()
        .map_or("unknown", crate::tls::policy::suite_name);
    m.handshakes
        .get_or_create(&HandshakeLabels {
            version,
            suite: suite.to_string(),
        })
        .inc();
    // Boxed: the HTTP connection's state is allocated once the handshake is done, so that a
    // connection still in its handshake (or one that never sends a byte) holds only its own.
    Box::pin(app.serve(conn, tls, peer)).await;
}
