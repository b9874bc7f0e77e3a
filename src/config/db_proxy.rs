//! `db-proxy`'s arguments → a checked [`DbProxyConfig`] plus the first snapshot, which holds
//! the database material alone (no server certificate: `db-proxy` serves no TLS itself).
//! Every problem is reported at once, as for `serve`.

use std::net::SocketAddr;
use std::time::Duration;

use super::db::{db_proxy_settings, db_target};
use super::describe::{describe_db_proxy, describe_kube, describe_reload, human};
use super::kube::kube_settings;
use super::sources::reload_triggers;
use super::{ConfigErrors, ReloadSettings};
use crate::cli::DbProxyArgs;
use crate::dbproxy::DbProxySettings;
use crate::k8s::KubeSettings;
use crate::snapshot::{Snapshot, Sources};

/// The checked configuration of `db-proxy`.
#[derive(Debug, Clone)]
pub struct DbProxyConfig {
    /// The admin listener (probes, metrics, `/reload-status`).
    pub admin_listen: SocketAddr,
    /// The database proxy.
    pub db: DbProxySettings,
    /// The reload task: the database material's files and when to re-read them.
    pub reload: ReloadSettings,
    /// Kubernetes Events and Secret watch.
    pub kube: KubeSettings,
    /// Time still serving, not ready, after SIGTERM.
    pub drain_delay: Duration,
}

impl DbProxyConfig {
    /// Checks the arguments of `db-proxy` and loads the database material; every problem is
    /// reported at once.
    pub fn load(a: &DbProxyArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        let mut p = Vec::new();
        let target = db_target(&a.db, &mut p);
        let others = [a.admin_listen];
        let db = db_proxy_settings(&a.proxy, &a.db, target.as_ref(), a.stop.shutdown_grace, &others, &mut p);
        let reload = ReloadSettings {
            sources: Sources::database(target.clone()),
            ..reload_triggers(&a.reload, &mut p)
        };
        // Without a target (reported) there are no source directories to check against.
        let dirs = target.as_ref().map(|_| reload.sources.dirs());
        let kube = kube_settings(&a.kube, dirs.as_deref(), &mut p);
        let snapshot = target.and_then(|_| {
            Snapshot::load(&reload.sources, &crate::files::Files::disk(), 1)
                .map_err(|e| p.extend(e.iter().map(ToString::to_string)))
                .ok()
        });
        let (Some(db), Some(snapshot), true) = (db, snapshot, p.is_empty()) else {
            return Err(ConfigErrors(p));
        };
        let config = Self {
            admin_listen: a.admin_listen,
            db,
            reload,
            kube,
            drain_delay: a.stop.drain_delay,
        };
        Ok((config, snapshot))
    }

    /// The normalized effective configuration, as YAML (`db-proxy --check`).
    pub fn describe(&self, snapshot: &Snapshot) -> String {
        let mut out = format!("admin_listen: http://{}\n", self.admin_listen);
        out.push_str(&describe_db_proxy(Some(&self.db)));
        out.push_str(&snapshot.describe_db(&self.reload.sources));
        out.push_str(&describe_reload(&self.reload));
        out.push_str(&describe_kube(&self.kube));
        out.push_str(&format!(
            "drain_delay: {}\nshutdown_grace: {}\n",
            human(self.drain_delay),
            human(self.db.shutdown_grace)
        ));
        out
    }
}
