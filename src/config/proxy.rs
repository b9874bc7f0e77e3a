//! `proxy`'s load: the shared groups plus the upstream (forwarding) and its optional database
//! proxy. `serve`'s pool flags are not among its arguments.

use std::net::SocketAddr;
use std::sync::Arc;

use super::db::{db_proxy_settings, db_target};
use super::edge::PROXY_MAX_BODY;
use super::flags::flag;
use super::{Config, ConfigErrors, Front, Shared};
use crate::cli::{ProxyArgs, UpstreamArgs};
use crate::db::dsn::DbTarget;
use crate::snapshot::Snapshot;

impl Config {
    /// Checks the arguments of `proxy` and loads the first snapshot; every problem is reported
    /// at once.
    pub fn load_proxy(a: &ProxyArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        let shared = Shared::from(a);
        let mut p = Vec::new();
        let edge = shared.check_edge(PROXY_MAX_BODY, &mut p);
        let (target, db) = proxy_db(a, &mut p);
        let http = proxy_settings(a, edge.requests.max_body_bytes, &mut p);
        let front = http.map(|http| Front::Proxy { http, db });
        Self::assemble(&shared, edge, target.as_ref(), false, front, p)
    }
}

/// `proxy`'s own settings; DB flags given to it are problems (it opens no database).
fn proxy_settings(pa: &ProxyArgs, max_body_bytes: usize, p: &mut Vec<String>) -> Option<crate::proxy::ProxySettings> {
    let a = &pa.upstream;
    match (a.require_token, pa.tokens.token_key_dir.is_some()) {
        (true, false) => p.push(format!(
            "--require-token (TLSWARD_REQUIRE_TOKEN) needs {}: the directory of token signing keys",
            flag("token_key_dir")
        )),
        (false, true) => p.push(format!(
            "{} is only used by proxy with --require-token (TLSWARD_REQUIRE_TOKEN); add it or remove the directory",
            flag("token_key_dir")
        )),
        _ => {}
    }
    let upstream = match &a.upstream {
        None => {
            p.push(
                "--upstream (TLSWARD_UPSTREAM) is not set; e.g. http://127.0.0.1:8000 or unix:/run/app/app.sock".into(),
            );
            None
        }
        Some(u) => crate::proxy::Upstream::parse(u)
            .map_err(|e| p.push(format!("--upstream (TLSWARD_UPSTREAM) {e}")))
            .ok(),
    };
    let mut trusted = Vec::new();
    for cidr in a
        .trust_forwarded_from
        .iter()
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        match cidr
            .parse::<ipnet::IpNet>()
            .or_else(|_| cidr.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
        {
            Ok(n) => trusted.push(n),
            Err(e) => p.push(format!(
                "--trust-forwarded-from (TLSWARD_TRUST_FORWARDED_FROM) {cidr:?}: {e}; write a CIDR such as 10.0.0.0/8"
            )),
        }
    }
    Some(crate::proxy::ProxySettings {
        upstream: upstream?,
        connect_timeout: a.upstream_connect_timeout,
        response_timeout: a.upstream_response_timeout,
        idle_timeout: a.upstream_idle_timeout,
        max_body_bytes,
        trusted,
        require_token: a.require_token.then_some(pa.tokens.token_max_ttl),
        health_path: health_path(a, p),
        unready_after: a.upstream_unready_after,
    })
}

/// `proxy`'s database proxy, if `--db-proxy-listen` turns it on (`--db-url` is refused
/// without it), and the database target it opens.
fn proxy_db(pa: &ProxyArgs, p: &mut Vec<String>) -> (Option<Arc<DbTarget>>, Option<crate::dbproxy::DbProxySettings>) {
    let l = &pa.listen;
    if pa.db_proxy.db_proxy_listen.is_none() {
        if pa.db.db_url.is_some() {
            p.push(format!(
                "{} is used by proxy only with {}; add it or remove the URL",
                flag("db_url"),
                flag("db_proxy_listen")
            ));
        }
        return (None, None);
    }
    let target = db_target(&pa.db, p);
    let others: Vec<SocketAddr> = [Some(l.listen), Some(l.admin_listen), l.http_redirect_listen]
        .into_iter()
        .flatten()
        .collect();
    let settings = db_proxy_settings(
        &pa.db_proxy,
        &pa.db,
        target.as_ref(),
        pa.stop.shutdown_grace,
        &others,
        p,
    );
    (target, settings)
}

fn health_path(a: &UpstreamArgs, p: &mut Vec<String>) -> Option<String> {
    let path = a.upstream_health_path.clone()?;
    if !path.starts_with('/') || path.parse::<http::uri::PathAndQuery>().is_err() {
        p.push(format!(
            "--upstream-health-path (TLSWARD_UPSTREAM_HEALTH_PATH) {path:?}: write a path such as /healthz"
        ));
        return None;
    }
    Some(path)
}
