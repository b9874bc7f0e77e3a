//! The normalized effective configuration as YAML, printed by `--check`: one section per part,
//! each from the checked settings (never from the raw flags).

use std::time::Duration;

use super::{Config, Front, ReloadSettings};
use crate::k8s::{KubeMode, KubeSettings};
use crate::snapshot::Snapshot;

/// The `reload:` section.
pub(super) fn describe_reload(reload: &ReloadSettings) -> String {
    format!(
        "reload:\n  file_watch: {}\n  watch: [{}]\n  interval: {}\n  expiry_warning: {}\n  expect_sans: [{}]\n",
        reload.file_watch,
        reload
            .sources
            .dirs()
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        human(reload.reload_interval),
        human(reload.expiry_warning),
        reload.sources.expect_sans.join(", ")
    )
}

/// The `kubernetes:` section.
pub(super) fn describe_kube(k: &KubeSettings) -> String {
    format!(
        "kubernetes:\n  events: {}\n  pod: {}\n  watch_secrets: {}\n",
        match (k.events, k.events_on()) {
            (KubeMode::Auto, true) => "on (auto: POD_NAME and POD_NAMESPACE are set)",
            (KubeMode::Auto, false) => "off (auto: POD_NAME/POD_NAMESPACE not set)",
            (_, true) => "on",
            (_, false) => "off",
        },
        k.pod
            .as_ref()
            .map_or_else(|| "-".into(), |p| format!("{}/{}", p.namespace, p.name)),
        if k.secrets.is_empty() {
            "files".to_string()
        } else {
            let list: Vec<String> = k.secrets.iter().map(|(s, d)| format!("{s}={}", d.display())).collect();
            format!("api [{}]", list.join(", "))
        }
    )
}

pub(super) fn describe_db_proxy(db: Option<&crate::dbproxy::DbProxySettings>) -> String {
    let Some(d) = db else {
        return "db_proxy: off\n".into();
    };
    let listen = match &d.listen {
        crate::dbproxy::DbListen::Unix(path) => format!("unix:{}", path.display()),
        crate::dbproxy::DbListen::Tcp(a) => a.to_string(),
    };
    format!(
        "db_proxy:\n  listen: {listen}\n  target: \"{}\"\n  sslmode: {}\n  connect_timeout: {}\n  max_session_age: {}\n",
        d.target.redacted(),
        d.target.sslmode.as_str(),
        human(d.connect_timeout),
        if d.max_session_age.is_zero() {
            "none".into()
        } else {
            human(d.max_session_age)
        }
    )
}

/// A duration as `--check` prints it (humantime: `1h 30m`).
pub(super) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

impl Config {
    /// The normalized effective configuration, as YAML.
    pub fn describe(&self, snapshot: &Snapshot) -> String {
        let mut out = format!(
            "listen: https://{}\nadmin_listen: http://{}\nhttp_redirect_listen: {}\n",
            self.listeners.listen,
            self.listeners.admin_listen,
            self.listeners
                .http_redirect_listen
                .map_or_else(|| "off".to_string(), |a| format!("http://{a}"))
        );
        out.push_str(&snapshot.describe(&self.reload.sources));
        for section in [
            self.describe_db(),
            describe_reload(&self.reload),
            describe_kube(&self.kube),
            self.describe_http(),
        ] {
            out.push_str(&section);
        }
        out
    }

    /// The `database:` section (`serve`), or the `proxy:` section with the database proxy's
    /// (`proxy`).
    fn describe_db(&self) -> String {
        let (db, db_unready_after) = match &self.front {
            Front::Api { db, db_unready_after } => (db, *db_unready_after),
            Front::Proxy { http: p, db } => {
                let upstream = match &p.upstream {
                    crate::proxy::Upstream::Tcp(a) => format!("http://{a}"),
                    crate::proxy::Upstream::Unix(path) => format!("unix:{}", path.display()),
                };
                return format!(
                    "proxy:\n  upstream: {upstream}\n  connect_timeout: {}\n  response_timeout: {}\n  idle_timeout: {}\n  trust_forwarded_from: [{}]\n  require_token: {}\n  health_path: {}\n  unready_after: {}\n",
                    human(p.connect_timeout),
                    human(p.response_timeout),
                    human(p.idle_timeout),
                    p.trusted.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                    p.require_token.is_some(),
                    p.health_path.as_deref().unwrap_or("none (any answer)"),
                    human(p.unready_after)
                ) + &describe_db_proxy(db.as_ref());
            }
        };
        format!(
            "database:\n  target: \"{}\"\n  sslmode: {}\n  unready_after: {}\n  health_interval: {}\n  conn_max_lifetime: {}\n  pool_size: {}\n  connect_timeout: {}\n  statement_timeout: {}\n  checkout_timeout: {}\n  migrate: {}\n",
            db.target.redacted(),
            db.target.sslmode.as_str(),
            human(db_unready_after),
            human(db.health_interval),
            human(db.pool.max_lifetime),
            db.pool.max_size,
            human(db.pool.connect_timeout),
            human(db.pool.statement_timeout),
            human(db.pool.checkout_timeout),
            db.migrate
        )
    }

    /// The `http:` section.
    fn describe_http(&self) -> String {
        format!(
            "http:\n  token_max_ttl: {}\n  handshake_timeout: {}\n  header_timeout: {}\n  body_timeout: {}\n  idle_timeout: {}\n  h2_keepalive: {}\n  max_connections: {}\n  max_connection_age: {}\n  max_body_bytes: {}\n  max_header_bytes: {}\n  drain_delay: {}\n  shutdown_grace: {}\n",
            human(self.requests.token_max_ttl),
            human(self.edge.handshake_timeout),
            human(self.edge.header_timeout),
            human(self.requests.body_timeout),
            human(self.edge.tls_limits.idle_timeout),
            human(self.edge.tls_limits.h2_keepalive),
            self.edge.tls_limits.max_connections,
            human(self.edge.tls_limits.max_age),
            self.requests.max_body_bytes,
            self.edge.tls_limits.max_header_bytes,
            human(self.edge.drain_delay),
            human(self.edge.shutdown_grace)
        )
    }
}
