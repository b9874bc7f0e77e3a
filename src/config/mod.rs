//! `serve`'s and `proxy`'s arguments → a checked [`Config`] plus the first [`Snapshot`]. Every problem is collected
//! and reported at once, each naming the flag, its environment variable or the file, and the
//! fix. `check-config` runs exactly this and prints [`Config::describe`].

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use crate::api::RequestLimits;
use crate::cli::{
    DbArgs, DbProxyFlags, EdgeArgs, KubeArgs, ListenArgs, PoolArgs, ProxyArgs, ReloadArgs, ServeArgs, StopArgs,
    TlsSourceArgs, TokenArgs, UpstreamArgs,
};
use crate::db::dsn::{DbTarget, SslMode};
pub use crate::db::manager::Settings as DbSettings;
use crate::db::pool::PoolSettings;
use crate::files::normalize;
use crate::k8s::{KubeMode, KubeSettings, PodRef, WatchSecrets};
pub use crate::reload::Settings as ReloadSettings;
use crate::snapshot::{Snapshot, Sources};

pub use crate::util::EXIT_CONFIG;
pub use db_proxy::DbProxyConfig;

mod db_proxy;

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

/// Which command's configuration is loaded.
enum Mode<'a> {
    Api(&'a ServeArgs),
    Proxy(&'a ProxyArgs),
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

impl<'a> Mode<'a> {
    fn shared(&self) -> Shared<'a> {
        match *self {
            Mode::Api(a) => Shared {
                listen: &a.listen,
                edge: &a.edge,
                tls: &a.tls,
                tokens: &a.tokens,
                reload: &a.reload,
                kube: &a.kube,
                stop: &a.stop,
            },
            Mode::Proxy(a) => Shared {
                listen: &a.listen,
                edge: &a.edge,
                tls: &a.tls,
                tokens: &a.tokens,
                reload: &a.reload,
                kube: &a.kube,
                stop: &a.stop,
            },
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

/// `--flag (ENV)` of an argument of `serve`, `proxy` or `db-proxy`, from its clap definition
/// (`id` is the field name).
pub fn flag(id: &str) -> String {
    static COMMANDS: std::sync::LazyLock<[clap::Command; 3]> = std::sync::LazyLock::new(|| {
        [
            <ServeArgs as clap::Args>::augment_args(clap::Command::new("serve")),
            <ProxyArgs as clap::Args>::augment_args(clap::Command::new("proxy")),
            <crate::cli::DbProxyArgs as clap::Args>::augment_args(clap::Command::new("db-proxy")),
        ]
    });
    let Some(arg) = COMMANDS
        .iter()
        .find_map(|c| c.get_arguments().find(|a| a.get_id() == id))
    else {
        return id.to_string();
    };
    let long = arg.get_long().map_or_else(|| id.to_string(), |l| format!("--{l}"));
    match arg.get_env() {
        Some(env) => format!("{long} ({})", env.to_string_lossy()),
        None => long,
    }
}

/// `--flag VALUE (ENV=VALUE)`: an argument given a value.
fn flag_is(id: &str, value: &str) -> String {
    match flag(id).split_once(" (") {
        Some((long, env)) => format!("{long} {value} ({}={value})", env.trim_end_matches(')')),
        None => format!("{} {value}", flag(id)),
    }
}

fn need<T: Clone>(v: &Option<T>, id: &str, fix: &str, problems: &mut Vec<String>) -> Option<T> {
    if v.is_none() {
        problems.push(format!("{} is not set; {fix}", flag(id)));
    }
    v.clone()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

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

/// Checks the Kubernetes flags: Events need the Pod's name and namespace when forced on, and
/// each --kube-secret must name a valid Secret and one of the source directories.
fn kube_settings(a: &KubeArgs, source_dirs: Option<&[PathBuf]>, p: &mut Vec<String>) -> KubeSettings {
    let (events, watch, secrets) = (a.kube_events, a.watch_secrets, &a.kube_secrets);
    let pod = match (non_empty(a.pod_name.clone()), non_empty(a.pod_namespace.clone())) {
        (Some(name), Some(namespace)) => Some(PodRef {
            name,
            namespace,
            uid: non_empty(a.pod_uid.clone()),
        }),
        _ => None,
    };
    let forced = if events == KubeMode::On {
        Some(flag_is("kube_events", "on"))
    } else if watch == WatchSecrets::Api {
        Some(flag_is("watch_secrets", "api"))
    } else {
        None
    };
    if let (Some(forced), None) = (forced, &pod) {
        p.push(format!(
            "{forced} needs the Pod's identity: set POD_NAME and POD_NAMESPACE (--pod-name, --pod-namespace; the chart sets them from the downward API)"
        ));
    }
    let list = secret_mounts(secrets, source_dirs, p);
    let (ks, ws) = (flag("kube_secrets"), flag_is("watch_secrets", "api"));
    match watch {
        WatchSecrets::Api if list.is_empty() => {
            p.push(format!("{ws} needs at least one {ks} SECRET=DIR"));
        }
        WatchSecrets::Files if !list.is_empty() => {
            p.push(format!("{ks} is only used with {ws}; add it or drop --kube-secret"));
        }
        _ => {}
    }
    KubeSettings {
        events,
        pod,
        secrets: if watch == WatchSecrets::Api { list } else { Vec::new() },
    }
}

/// The `--kube-secret SECRET=DIR` items: each a valid Secret name and one of the source
/// directories, no directory twice.
fn secret_mounts(items: &[String], dirs: Option<&[PathBuf]>, p: &mut Vec<String>) -> Vec<(String, PathBuf)> {
    let ks = flag("kube_secrets");
    let normalized: Option<Vec<_>> = dirs.map(|d| d.iter().map(|d| normalize(d)).collect());
    let mut list: Vec<(String, PathBuf)> = Vec::new();
    for item in items.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some((secret, dir)) = item.split_once('=').map(|(s, d)| (s.trim(), PathBuf::from(d.trim()))) else {
            p.push(format!(
                "{ks} {item:?}: write SECRET=DIR, e.g. web-tls=/etc/tlsward/tls"
            ));
            continue;
        };
        if !crate::k8s::valid_name(secret) {
            p.push(format!(
                "{ks} {item:?}: {secret:?} is not a Secret name (lower-case letters, digits, '-' and '.')"
            ));
        }
        // Without the source directories (a required one is not set, which is reported) the
        // directory cannot be checked.
        if let (Some(normalized), Some(dirs)) = (&normalized, dirs)
            && !normalized.contains(&normalize(&dir))
        {
            p.push(format!(
                "{ks} {item:?}: {} is not a source directory; use one of: {}",
                dir.display(),
                list_dirs(dirs)
            ));
        }
        if list.iter().any(|(_, d)| normalize(d) == normalize(&dir)) {
            p.push(format!("{ks} {item:?}: {} is given twice", dir.display()));
        }
        list.push((secret.to_string(), dir));
    }
    list
}

fn list_dirs(dirs: &[PathBuf]) -> String {
    if dirs.is_empty() {
        return "(none: no certificate, key, policy or CA file is given)".into();
    }
    dirs.iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn listeners(a: &ListenArgs, p: &mut Vec<String>) -> Listeners {
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

/// Each duration (with its argument id) that is 0, a problem.
fn check_positive(durations: &[(Duration, &str)], p: &mut Vec<String>) {
    for (d, id) in durations {
        if d.is_zero() {
            p.push(format!("{} is 0; give a positive duration such as 3s", flag(id)));
        }
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

fn edge_settings(a: &EdgeArgs, stop: &StopArgs, p: &mut Vec<String>) -> EdgeSettings {
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

fn request_limits(a: &EdgeArgs, t: &TokenArgs, default_body: usize, p: &mut Vec<String>) -> RequestLimits {
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

/// The database target from `--db-url`, checked for an authenticating `sslmode`.
fn db_target(a: &DbArgs, p: &mut Vec<String>) -> Option<Arc<DbTarget>> {
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

fn pool_settings(a: &PoolArgs, db: &DbArgs, p: &mut Vec<String>) -> PoolSettings {
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

/// The sources as given, for checking the materials when a required directory is missing.
fn given_sources<'a>(a: &Shared<'a>, db: Option<&'a DbTarget>) -> crate::snapshot::GivenSources<'a> {
    let (t, tokens) = (a.tls, a.tokens);
    crate::snapshot::GivenSources {
        tls_dir: t.tls_dir.as_deref(),
        token_key_dir: tokens.token_key_dir.as_deref(),
        policy_file: t.policy_file.as_deref(),
        client_ca_dir: t.client_ca_dir.as_deref(),
        expect_sans: &t.expect_sans,
        db,
    }
}

/// How changes are noticed (the sources are filled in by the caller). Checked before any
/// required source is, so that its problem is reported with theirs.
fn reload_triggers(a: &ReloadArgs, p: &mut Vec<String>) -> ReloadSettings {
    if a.reload_interval < Duration::from_millis(100) {
        p.push(format!("{} is below 100ms; use e.g. 30s", flag("reload_interval")));
    }
    ReloadSettings {
        sources: Sources::database(None),
        file_watch: a.file_watch,
        reload_interval: a.reload_interval,
        expiry_warning: a.expiry_warning,
    }
}

/// The reload settings: the checked sources (`None` when a required directory is not set,
/// which is reported) and how changes are noticed.
fn reload_settings(
    a: &Shared<'_>,
    db: Option<&Arc<DbTarget>>,
    tokens_required: bool,
    p: &mut Vec<String>,
) -> Option<ReloadSettings> {
    let triggers = reload_triggers(a.reload, p);
    let tls = a.tls;
    let tls_dir = need(
        &tls.tls_dir,
        "tls_dir",
        "point it at the directory with tls.crt and tls.key",
        p,
    );
    let token_key_dir = if tokens_required {
        Some(need(
            &a.tokens.token_key_dir,
            "token_key_dir",
            "point it at the directory of token signing keys",
            p,
        )?)
    } else {
        a.tokens.token_key_dir.clone()
    };
    Some(ReloadSettings {
        sources: Sources {
            policy_file: tls.policy_file.clone(),
            client_ca_dir: tls.client_ca_dir.clone(),
            expect_sans: tls.expect_sans.clone(),
            db: db.cloned(),
            token_key_dir,
            ..Sources::new(tls_dir?)
        },
        ..triggers
    })
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

/// The database proxy's settings (`proxy --db-proxy-listen`, `db-proxy`): where it listens
/// (not on one of the command's `other_listeners`) and the checked database target it opens.
fn db_proxy_settings(
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

/// The first snapshot, or (when a required directory is missing) the problems of every
/// material that is given.
fn first_snapshot(
    a: &Shared<'_>,
    reload: Option<&ReloadSettings>,
    target: Option<&DbTarget>,
    p: &mut Vec<String>,
) -> Option<Snapshot> {
    let disk = crate::files::Files::disk();
    match reload {
        Some(r) => Snapshot::load(&r.sources, &disk, 1)
            .map_err(|e| p.extend(e.iter().map(ToString::to_string)))
            .ok(),
        None => {
            let given = given_sources(a, target);
            p.extend(
                crate::snapshot::check_given(&given, &disk)
                    .iter()
                    .map(ToString::to_string),
            );
            None
        }
    }
}

/// The `reload:` section.
fn describe_reload(reload: &ReloadSettings) -> String {
    let h = |d: Duration| humantime::format_duration(d).to_string();
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
        h(reload.reload_interval),
        h(reload.expiry_warning),
        reload.sources.expect_sans.join(", ")
    )
}

/// The `kubernetes:` section.
fn describe_kube(k: &KubeSettings) -> String {
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

fn describe_db_proxy(db: Option<&crate::dbproxy::DbProxySettings>) -> String {
    let Some(d) = db else {
        return "db_proxy: off\n".into();
    };
    let listen = match &d.listen {
        crate::dbproxy::DbListen::Unix(path) => format!("unix:{}", path.display()),
        crate::dbproxy::DbListen::Tcp(a) => a.to_string(),
    };
    let h = |d: Duration| humantime::format_duration(d).to_string();
    format!(
        "db_proxy:\n  listen: {listen}\n  target: \"{}\"\n  sslmode: {}\n  connect_timeout: {}\n  max_session_age: {}\n",
        d.target.redacted(),
        d.target.sslmode.as_str(),
        h(d.connect_timeout),
        if d.max_session_age.is_zero() {
            "none".into()
        } else {
            h(d.max_session_age)
        }
    )
}

/// What one command has and the other does not: the database target and pool (serve), the
/// forwarding and the database proxy (proxy).
type ModeParts = (
    Option<Arc<DbTarget>>,
    Option<PoolSettings>,
    Option<(crate::proxy::ProxySettings, Option<crate::dbproxy::DbProxySettings>)>,
);

fn mode_parts(mode: &Mode<'_>, requests: &RequestLimits, p: &mut Vec<String>) -> ModeParts {
    match *mode {
        Mode::Api(a) => (db_target(&a.db, p), Some(pool_settings(&a.pool, &a.db, p)), None),
        Mode::Proxy(pa) => {
            let (target, db) = proxy_db(pa, p);
            let http = proxy_settings(pa, requests.max_body_bytes, p);
            (target, None, http.map(|http| (http, db)))
        }
    }
}

impl Config {
    /// Checks the arguments of `serve` and loads the first snapshot; every problem is
    /// reported at once.
    pub fn load(a: &ServeArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        Self::load_mode(&Mode::Api(a))
    }

    /// [`Config::load`] for `proxy`.
    pub fn load_proxy(a: &ProxyArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        Self::load_mode(&Mode::Proxy(a))
    }

    fn load_mode(mode: &Mode<'_>) -> Result<(Self, Snapshot), ConfigErrors> {
        let mut p = Vec::new();
        let a = mode.shared();
        let listeners = listeners(a.listen, &mut p);
        let edge = edge_settings(a.edge, a.stop, &mut p);
        let default_body = match mode {
            Mode::Api(_) => API_MAX_BODY,
            Mode::Proxy(_) => PROXY_MAX_BODY,
        };
        let requests = request_limits(a.edge, a.tokens, default_body, &mut p);
        let (target, pool, proxy) = mode_parts(mode, &requests, &mut p);
        let api = pool.is_some();
        let reload = reload_settings(&a, target.as_ref(), api, &mut p);
        let source_dirs = reload.as_ref().map(|r| r.sources.dirs());
        let kube = kube_settings(a.kube, source_dirs.as_deref(), &mut p);
        let snapshot = first_snapshot(&a, reload.as_ref(), target.as_deref(), &mut p);
        let front = match (target, pool, proxy, mode) {
            (Some(target), Some(pool), _, Mode::Api(s)) => Some(Front::Api {
                db: DbSettings {
                    target,
                    pool,
                    migrate: s.pool.db_migrate,
                    health_interval: s.pool.db_health_interval,
                },
                db_unready_after: s.pool.db_unready_after,
            }),
            (_, _, Some((http, db)), _) => Some(Front::Proxy { http, db }),
            _ => None,
        };
        let (Some(front), Some(reload), Some(snapshot), true) = (front, reload, snapshot, p.is_empty()) else {
            return Err(ConfigErrors(p));
        };
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
        let h = |d: Duration| humantime::format_duration(d).to_string();
        let (db, db_unready_after) = match &self.front {
            Front::Api { db, db_unready_after } => (db, *db_unready_after),
            Front::Proxy { http: p, db } => {
                let upstream = match &p.upstream {
                    crate::proxy::Upstream::Tcp(a) => format!("http://{a}"),
                    crate::proxy::Upstream::Unix(path) => format!("unix:{}", path.display()),
                };
                return format!(
                    "proxy:\n  upstream: {upstream}\n  connect_timeout: {}\n  response_timeout: {}\n  idle_timeout: {}\n  trust_forwarded_from: [{}]\n  require_token: {}\n  health_path: {}\n  unready_after: {}\n",
                    h(p.connect_timeout),
                    h(p.response_timeout),
                    h(p.idle_timeout),
                    p.trusted.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
                    p.require_token.is_some(),
                    p.health_path.as_deref().unwrap_or("none (any answer)"),
                    h(p.unready_after)
                ) + &describe_db_proxy(db.as_ref());
            }
        };
        format!(
            "database:\n  target: \"{}\"\n  sslmode: {}\n  unready_after: {}\n  health_interval: {}\n  conn_max_lifetime: {}\n  pool_size: {}\n  connect_timeout: {}\n  statement_timeout: {}\n  checkout_timeout: {}\n  migrate: {}\n",
            db.target.redacted(),
            db.target.sslmode.as_str(),
            h(db_unready_after),
            h(db.health_interval),
            h(db.pool.max_lifetime),
            db.pool.max_size,
            h(db.pool.connect_timeout),
            h(db.pool.statement_timeout),
            h(db.pool.checkout_timeout),
            db.migrate
        )
    }

    /// The `http:` section.
    fn describe_http(&self) -> String {
        let h = |d: Duration| humantime::format_duration(d).to_string();
        format!(
            "http:\n  token_max_ttl: {}\n  handshake_timeout: {}\n  header_timeout: {}\n  body_timeout: {}\n  idle_timeout: {}\n  h2_keepalive: {}\n  max_connections: {}\n  max_connection_age: {}\n  max_body_bytes: {}\n  max_header_bytes: {}\n  drain_delay: {}\n  shutdown_grace: {}\n",
            h(self.requests.token_max_ttl),
            h(self.edge.handshake_timeout),
            h(self.edge.header_timeout),
            h(self.requests.body_timeout),
            h(self.edge.tls_limits.idle_timeout),
            h(self.edge.tls_limits.h2_keepalive),
            self.edge.tls_limits.max_connections,
            h(self.edge.tls_limits.max_age),
            self.requests.max_body_bytes,
            self.edge.tls_limits.max_header_bytes,
            h(self.edge.drain_delay),
            h(self.edge.shutdown_grace)
        )
    }
}

#[cfg(test)]
mod tests;
