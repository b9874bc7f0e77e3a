//! The database groups → the checked [`DbTarget`], `serve`'s pool and the database proxy's
//! settings (`proxy --db-proxy-listen`, `db-proxy`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::flags::{check_positive, flag, need};
use crate::cli::{DbArgs, DbProxyFlags, PoolArgs};
use crate::db::dsn::{DbTarget, SslMode};
use crate::db::pool::PoolSettings;

/// The database target from `--db-url`, checked for an authenticating `sslmode`.
pub(super) fn db_target(a: &DbArgs, p: &mut Vec<String>) -> Option<Arc<DbTarget>> {
    let url = need(
        &a.db_url,
        "db_url",
        "e.g. postgresql://app@localhost:26257/app?sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…",
        p,
    )?;
    let target = DbTarget::parse(&url)
        .map_err(|list| p.extend(list.into_iter().map(|e| format!("{}: {e}", flag("db_url")))))
        .ok()?;
    if target.sslmode < SslMode::VerifyFull && !a.db_allow_insecure {
        p.push(format!(
            "{}: sslmode={} does not authenticate the database; use sslmode=verify-full, or pass {} to accept the risk",
            flag("db_url"),
            target.sslmode.as_str(),
            flag("db_allow_insecure").replace(')', "=true)")
        ));
    }
    Some(Arc::new(target))
}

pub(super) fn pool_settings(a: &PoolArgs, db: &DbArgs, p: &mut Vec<String>) -> PoolSettings {
    check_positive(
        &[
            (db.db_connect_timeout, "db_connect_timeout"),
            (a.db_checkout_timeout, "db_checkout_timeout"),
            (a.db_health_interval, "db_health_interval"),
        ],
        p,
    );
    if a.db_pool_size == 0 || a.db_pool_size > 1024 {
        p.push(format!("{} is {}; use 1 to 1024", flag("db_pool_size"), a.db_pool_size));
    }
    if a.db_conn_max_lifetime < Duration::from_secs(1) {
        p.push(format!("{} is below 1s; use e.g. 30m", flag("db_conn_max_lifetime")));
    }
    PoolSettings {
        max_size: a.db_pool_size,
        connect_timeout: db.db_connect_timeout,
        statement_timeout: a.db_statement_timeout,
        checkout_timeout: a.db_checkout_timeout,
        max_lifetime: a.db_conn_max_lifetime,
    }
}

/// The database proxy's settings (`proxy --db-proxy-listen`, `db-proxy`): where it listens
/// (not on one of the command's `other_listeners`) and the checked database target it opens.
pub(super) fn db_proxy_settings(
    a: &DbProxyFlags,
    db: &DbArgs,
    target: Option<&Arc<DbTarget>>,
    shutdown_grace: Duration,
    other_listeners: &[SocketAddr],
    p: &mut Vec<String>,
) -> Option<crate::dbproxy::DbProxySettings> {
    let listen = need(
        &a.db_proxy_listen,
        "db_proxy_listen",
        "e.g. unix:/run/tlsward (the socket the app's libpq finds with host=/run/tlsward)",
        p,
    )?;
    let listen = crate::dbproxy::DbListen::parse(&listen, a.db_proxy_allow_remote)
        .map_err(|e| p.push(format!("{} {e}", flag("db_proxy_listen"))))
        .ok();
    match &listen {
        Some(crate::dbproxy::DbListen::Unix(socket)) => {
            if let Some(dir) = socket.parent().filter(|d| !d.is_dir()) {
                p.push(format!(
                    "{}: {} is not a directory; mount the pod's shared emptyDir there (or create it)",
                    flag("db_proxy_listen"),
                    dir.display()
                ));
            }
        }
        Some(crate::dbproxy::DbListen::Tcp(addr)) if addr.port() != 0 && other_listeners.contains(addr) => {
            p.push(format!(
                "{}: {addr} is also another listener's address; give the database proxy its own",
                flag("db_proxy_listen")
            ));
        }
        _ => {}
    }
    let target = target?.clone();
    if !crate::db::material::DbTls::wanted(&target) {
        p.push(format!(
            "{}: sslmode=disable: the database proxy exists to encrypt the hop to the database; use sslmode=verify-full",
            flag("db_url")
        ));
    }
    if db.db_connect_timeout.is_zero() {
        p.push(format!("{} is 0; use e.g. 3s", flag("db_connect_timeout")));
    }
    Some(crate::dbproxy::DbProxySettings {
        listen: listen?,
        target,
        connect_timeout: db.db_connect_timeout,
        max_session_age: a.db_max_session_age,
        shutdown_grace,
    })
}
