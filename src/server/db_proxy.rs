//! `db-proxy`'s server: the database proxy, the admin listener, the reload task of the
//! database material and the Kubernetes side (Events, Secret watch); no TLS listener of its
//! own. Ready while it is not draining: the database's outages reach the app as PostgreSQL
//! errors on its next connection, as they would without the proxy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::admin::{self, AdminState};
use super::readiness::Readiness;
use super::{Control, Stopper, bind, plain_limits};
use crate::config::DbProxyConfig;
use crate::db::handle::Db;
use crate::edge::Edge;
use crate::metrics::Metrics;
use crate::snapshot::{Snapshot, SnapshotStore};

/// The admin listener's request-header time limit.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The admin listener's largest request head.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A running `db-proxy`.
pub struct RunningDbProxy {
    /// The admin address actually bound (port 0 resolved).
    pub admin_addr: SocketAddr,
    stopper: Stopper,
}

impl RunningDbProxy {
    /// Unready at once, still proxying for `--drain-delay`; then no new sessions, and the
    /// open ones closed between transactions within `--shutdown-grace`.
    pub async fn shutdown(self) {
        self.stopper.stop().await;
    }
}

/// Binds the admin listener and the app's socket and starts proxying.
pub async fn start(
    config: DbProxyConfig,
    snapshot: Snapshot,
    kube: Option<kube::Client>,
) -> std::io::Result<RunningDbProxy> {
    let admin = bind(config.admin_listen, "--admin-listen").await?;
    let admin_addr = admin.local_addr()?;
    let listener = crate::dbproxy::Listener::bind(&config.db.listen).await?;
    let metrics = Arc::new(Metrics::new());
    metrics.init_series();
    let store = SnapshotStore::new(snapshot);
    let snapshots = store.reader();
    let control = Control::new(config.reload.clone(), &config.kube, store, &metrics);
    let readiness = Readiness::unless_draining();
    let stop = CancellationToken::new();
    // Dropped on an early return below, it stops whatever was already spawned.
    let shutdown = stop.clone().drop_guard();
    let app = admin::router(Arc::new(AdminState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        status: control.status.clone(),
        db: Db::new().1,
    }));
    let edge = Edge::new("admin", plain_limits(HEADER_TIMEOUT, MAX_HEADER_BYTES), metrics.clone());
    let grace = config.db.shutdown_grace;
    let proxy = crate::dbproxy::DbProxy::new(config.db.clone(), snapshots, metrics.clone());
    let tasks = vec![
        tokio::spawn(edge.run(admin, stop.clone(), grace, move |tcp, conn| {
            conn.serve_http(tcp, app.clone())
        })),
        proxy.spawn(listener, stop.clone()),
    ];
    // The reload sender it returns is not needed here: SIGHUP, the file watcher and the
    // interval trigger reloads, each with its own sender.
    let _ = control.start(&config.kube, &metrics, &stop, kube).await?;
    tracing::info!(%admin_addr, "db-proxy serving");
    Ok(RunningDbProxy {
        admin_addr,
        stopper: Stopper {
            readiness,
            drain_delay: config.drain_delay,
            shutdown,
            tasks,
        },
    })
}
