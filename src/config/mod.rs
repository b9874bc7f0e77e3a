//! `serve`'s, `proxy`'s and `db-proxy`'s arguments → a checked configuration plus the first
//! [`Snapshot`]. Each command's load lives in a file of its own (`serve.rs`, `proxy.rs`,
//! `db_proxy.rs`) and reads exactly its argument groups, each group checked by one file
//! (`edge.rs`, `sources.rs`, `db.rs`, `kube.rs`). Every problem is collected and reported at
//! once, each naming the flag, its environment variable or the file, and the fix. `--check`
//! runs exactly this and prints the `describe` of `describe.rs`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use crate::api::RequestLimits;
use crate::cli::{
    EdgeArgs, KubeArgs, ListenArgs, ProxyArgs, ReloadArgs, ServeArgs, StopArgs, TlsSourceArgs, TokenArgs,
};
use crate::db::dsn::DbTarget;
pub use crate::db::manager::Settings as DbSettings;
use crate::k8s::KubeSettings;
pub use crate::reload::Settings as ReloadSettings;
use crate::snapshot::Snapshot;

pub use crate::util::EXIT_CONFIG;
pub use db_proxy::DbProxyConfig;
pub use edge::{API_MAX_BODY, PROXY_MAX_BODY};
pub use flags::flag;

mod db;
mod db_proxy;
mod describe;
mod edge;
mod flags;
mod kube;
mod proxy;
mod serve;
mod sources;

/// Every configuration problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<String>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for p in &self.0 {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

/// The checked configuration of `serve` or `proxy`, grouped by the part that uses it.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen.
    pub listeners: Listeners,
    /// Handshakes, connection limits and shutdown.
    pub edge: EdgeSettings,
    /// What each request is held to.
    pub requests: RequestLimits,
    /// The reload task: the sources and when to re-read them.
    pub reload: ReloadSettings,
    /// What the TLS listener serves.
    pub front: Front,
    /// Kubernetes Events and Secret watch.
    pub kube: KubeSettings,
}

/// What the TLS listener serves.
#[derive(Debug, Clone)]
pub enum Front {
    /// `serve`: the users API and its database.
    Api {
        /// The database and its pool.
        db: DbSettings,
        /// Unreachable this long, the server turns unready (0: never).
        db_unready_after: Duration,
    },
    /// `proxy`: every request forwarded to the app; with `--db-proxy-listen`, the app's
    /// database connections too.
    Proxy {
        /// The HTTP forwarding.
        http: crate::proxy::ProxySettings,
        /// The database proxy, if on.
        db: Option<crate::dbproxy::DbProxySettings>,
    },
}

/// The argument groups `serve` and `proxy` share: the TLS listener and what it serves.
struct Shared<'a> {
    listen: &'a ListenArgs,
    edge: &'a EdgeArgs,
    tls: &'a TlsSourceArgs,
    tokens: &'a TokenArgs,
    reload: &'a ReloadArgs,
    kube: &'a KubeArgs,
    stop: &'a StopArgs,
}

impl<'a> From<&'a ServeArgs> for Shared<'a> {
    fn from(a: &'a ServeArgs) -> Self {
        let ServeArgs {
            listen,
            edge,
            tls,
            tokens,
            reload,
            kube,
            stop,
            pool: _,
            db: _,
            check: _,
        } = a;
        Self {
            listen,
            edge,
            tls,
            tokens,
            reload,
            kube,
            stop,
        }
    }
}

impl<'a> From<&'a ProxyArgs> for Shared<'a> {
    fn from(a: &'a ProxyArgs) -> Self {
        let ProxyArgs {
            listen,
            edge,
            tls,
            tokens,
            reload,
            kube,
            stop,
            upstream: _,
            db: _,
            db_proxy: _,
            check: _,
        } = a;
        Self {
            listen,
            edge,
            tls,
            tokens,
            reload,
            kube,
            stop,
        }
    }
}

/// The checked listen, edge and request groups, before the command's own.
struct EdgeParts {
    listeners: Listeners,
    edge: EdgeSettings,
    requests: RequestLimits,
}

impl Shared<'_> {
    /// Checks the listen, edge, stop and request groups (`default_body`: the command's
    /// `--max-body-bytes` default).
    fn check_edge(&self, default_body: usize, p: &mut Vec<String>) -> EdgeParts {
        EdgeParts {
            listeners: edge::listeners(self.listen, p),
            edge: edge::edge_settings(self.edge, self.stop, p),
            requests: edge::request_limits(self.edge, self.tokens, default_body, p),
        }
    }
}

/// The listen addresses.
#[derive(Debug, Clone, Copy)]
pub struct Listeners {
    /// HTTPS listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Optional redirect listener.
    pub http_redirect_listen: Option<SocketAddr>,
}

/// How connections are accepted, handshaken and drained.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSettings {
    /// TLS handshake time limit.
    pub handshake_timeout: Duration,
    /// Request-header time limit (also of the plain listeners).
    pub header_timeout: Duration,
    /// The TLS listener's connection limits.
    pub tls_limits: crate::edge::Limits,
    /// Time still serving, not ready, after SIGTERM.
    pub drain_delay: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
}

impl Config {
    /// The rest of `serve`'s and `proxy`'s load once their own groups are checked: the sources
    /// (`target`: the database material's; token keys required by `serve`), the Kubernetes
    /// settings and the first snapshot; every problem of `p` and these at once.
    fn assemble(
        a: &Shared<'_>,
        parts: EdgeParts,
        target: Option<&Arc<DbTarget>>,
        tokens_required: bool,
        front: Option<Front>,
        mut p: Vec<String>,
    ) -> Result<(Self, Snapshot), ConfigErrors> {
        let reload = sources::reload_settings(a, target, tokens_required, &mut p);
        let source_dirs = reload.as_ref().map(|r| r.sources.dirs());
        let kube = kube::kube_settings(a.kube, source_dirs.as_deref(), &mut p);
        let snapshot = sources::first_snapshot(a, reload.as_ref(), target.map(|t| &**t), &mut p);
        let (Some(front), Some(reload), Some(snapshot), true) = (front, reload, snapshot, p.is_empty()) else {
            return Err(ConfigErrors(p));
        };
        let EdgeParts {
            listeners,
            edge,
            requests,
        } = parts;
        let config = Self {
            listeners,
            edge,
            requests,
            reload,
            front,
            kube,
        };
        Ok((config, snapshot))
    }
}

#[cfg(test)]
mod tests;
