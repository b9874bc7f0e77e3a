//! The listen, edge, stop and request groups of `serve` and `proxy` → [`Listeners`],
//! [`EdgeSettings`] and [`RequestLimits`].

use super::flags::{check_positive, flag};
use super::{EdgeSettings, Listeners, RequestLimits};
use crate::cli::{EdgeArgs, ListenArgs, StopArgs, TokenArgs};

/// File descriptors kept for everything but client connections (DB pool, watched files,
/// the admin listener, the Kubernetes client).
const FD_RESERVE: u64 = 256;
/// The default `--max-connections` when the open-files limit allows it.
const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// `--max-connections`, or its default from the soft open-files limit. A given value above
/// what that limit allows is kept (the operator may raise the limit) but warned about.
fn max_connections_or_default(given: Option<usize>, p: &mut Vec<String>) -> usize {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let allowed = nofile.map(|n| usize::try_from(n.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX));
    match given {
        Some(0) => {
            p.push(format!(
                "{} is 0; give the most open connections, e.g. 10000",
                flag("max_connections")
            ));
            1
        }
        Some(n) => {
            if let Some(a) = allowed.filter(|a| n > *a) {
                tracing::warn!(max_connections = n, nofile = ?nofile, "--max-connections is above the open-files limit minus {FD_RESERVE} ({a}): accepts will fail with EMFILE before the cap is reached; raise nofile");
            }
            n
        }
        None => allowed.map_or(DEFAULT_MAX_CONNECTIONS, |a| a.clamp(64, DEFAULT_MAX_CONNECTIONS)),
    }
}

pub(super) fn listeners(a: &ListenArgs, p: &mut Vec<String>) -> Listeners {
    let ports = [Some(a.listen), Some(a.admin_listen), a.http_redirect_listen];
    for (i, x) in ports.iter().enumerate() {
        for y in ports.iter().skip(i + 1) {
            if let (Some(x), Some(y)) = (x, y)
                && x == y
                && x.port() != 0
            {
                p.push(format!("listeners clash: {x} is used twice; give --listen, --admin-listen and --http-redirect-listen different addresses"));
            }
        }
    }
    Listeners {
        listen: a.listen,
        admin_listen: a.admin_listen,
        http_redirect_listen: a.http_redirect_listen,
    }
}

fn max_header_bytes(a: &EdgeArgs, p: &mut Vec<String>) -> usize {
    // hyper's HTTP/1.1 read buffer cannot be smaller than 8 KiB.
    if !(8192..=1 << 20).contains(&a.max_header_bytes) {
        p.push(format!(
            "{} is {}; use 8192 to 1048576",
            flag("max_header_bytes"),
            a.max_header_bytes
        ));
        return 64 * 1024;
    }
    a.max_header_bytes
}

pub(super) fn edge_settings(a: &EdgeArgs, stop: &StopArgs, p: &mut Vec<String>) -> EdgeSettings {
    check_positive(
        &[
            (a.handshake_timeout, "handshake_timeout"),
            (a.header_timeout, "header_timeout"),
            (a.body_timeout, "body_timeout"),
            (a.idle_timeout, "idle_timeout"),
        ],
        p,
    );
    EdgeSettings {
        handshake_timeout: a.handshake_timeout,
        header_timeout: a.header_timeout,
        tls_limits: crate::edge::Limits {
            max_connections: max_connections_or_default(a.max_connections, p),
            header_timeout: a.header_timeout,
            idle_timeout: a.idle_timeout,
            h2_keepalive: a.h2_keepalive,
            max_age: a.max_connection_age,
            max_header_bytes: max_header_bytes(a, p),
        },
        drain_delay: stop.drain_delay,
        shutdown_grace: stop.shutdown_grace,
    }
}

/// The default of `--max-body-bytes` for serve's API.
pub const API_MAX_BODY: usize = 16 * 1024;
/// The default of `--max-body-bytes` for proxy.
pub const PROXY_MAX_BODY: usize = 64 * 1024 * 1024;

pub(super) fn request_limits(a: &EdgeArgs, t: &TokenArgs, default_body: usize, p: &mut Vec<String>) -> RequestLimits {
    let max_body_bytes = a.max_body_bytes.unwrap_or(default_body);
    if t.token_max_ttl.is_zero() || t.token_max_ttl > crate::token::MAX_TTL {
        p.push(format!(
            "{}: tokens must be short-lived; use 1s to 24h",
            flag("token_max_ttl")
        ));
    }
    if max_body_bytes < 256 {
        p.push(format!(
            "{} is {max_body_bytes}; use at least 256",
            flag("max_body_bytes")
        ));
    }
    RequestLimits {
        max_body_bytes,
        body_timeout: a.body_timeout,
        token_max_ttl: t.token_max_ttl,
    }
}
