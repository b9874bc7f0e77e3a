//! `ServeArgs` → a checked [`Config`] plus the first [`Snapshot`]. Every problem is collected
//! and reported at once, each naming the flag, its environment variable or the file, and the
//! fix. `check-config` runs exactly this and prints [`Config::describe`].

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::cli::ServeArgs;
use crate::db::dsn::{DbTarget, SslMode};
use crate::db::pool::PoolSettings;
use crate::k8s::{KubeMode, KubeSettings, PodRef, WatchSecrets};
use crate::snapshot::{Snapshot, Sources};

/// Exit code for configuration errors (EX_USAGE).
pub const EXIT_CONFIG: i32 = 64;

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

/// The checked configuration of `serve`.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTPS listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// Optional redirect listener.
    pub http_redirect_listen: Option<SocketAddr>,
    /// Reloadable inputs.
    pub sources: Sources,
    /// Database target.
    pub db: DbTarget,
    /// Pool settings.
    pub pool: PoolSettings,
    /// Run migrations at start-up.
    pub db_migrate: bool,
    /// Unreachable this long, the server turns unready (0: never).
    pub db_unready_after: Duration,
    /// Probe interval of the serving pool.
    pub db_health_interval: Duration,
    /// Longest accepted token lifetime.
    pub token_max_ttl: Duration,
    /// TLS handshake time limit.
    pub handshake_timeout: Duration,
    /// Request-header time limit.
    pub header_timeout: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Time limit of a whole request body.
    pub body_timeout: Duration,
    /// The TLS listener's connection limits.
    pub tls_limits: crate::edge::Limits,
    /// Time still serving, not ready, after SIGTERM.
    pub drain_delay: Duration,
    /// Drain time on shutdown.
    pub shutdown_grace: Duration,
    /// Periodic re-read, if on.
    pub reload_interval: Option<Duration>,
    /// Whether the directories are watched for file events.
    pub file_watch: bool,
    /// Expiry warning threshold.
    pub expiry_warning: Duration,
    /// Kubernetes Events and Secret watch.
    pub kube: KubeSettings,
}

fn need<T: Clone>(v: &Option<T>, flag: &str, env: &str, fix: &str, problems: &mut Vec<String>) -> Option<T> {
    if v.is_none() {
        problems.push(format!("--{flag} ({env}) is not set; {fix}"));
    }
    v.clone()
}

fn non_empty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.trim().is_empty())
}

/// File descriptors kept for everything but client connections (DB pool, watched files,
/// the admin listener, the Kubernetes client).
pub const FD_RESERVE: u64 = 256;
/// The default `--max-connections` when the open-files limit allows it.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// `--max-connections`, or its default from the soft open-files limit. A given value above
/// what that limit allows is kept (the operator may raise the limit) but warned about.
fn max_connections_or_default(given: Option<usize>, p: &mut Vec<String>) -> usize {
    let nofile = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
    let allowed = nofile.map(|n| usize::try_from(n.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX));
    match given {
        Some(0) => {
            p.push(
                "--max-connections (TLSWARD_MAX_CONNECTIONS) is 0; give the most open connections, e.g. 10000".into(),
            );
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
fn kube_settings(
    events: KubeMode,
    watch: WatchSecrets,
    secrets: &[String],
    [name, namespace, uid]: [Option<String>; 3],
    sources: &Sources,
    p: &mut Vec<String>,
) -> KubeSettings {
    let pod = match (non_empty(name), non_empty(namespace)) {
        (Some(name), Some(namespace)) => Some(PodRef {
            name,
            namespace,
            uid: non_empty(uid),
        }),
        _ => None,
    };
    let forced = if events == KubeMode::On {
        Some("--kube-events on (TLSWARD_KUBE_EVENTS)")
    } else if watch == WatchSecrets::Api {
        Some("--watch-secrets api (TLSWARD_WATCH_SECRETS)")
    } else {
        None
    };
    if let (Some(flag), None) = (forced, &pod) {
        p.push(format!(
            "{flag} needs the Pod's identity: set POD_NAME and POD_NAMESPACE (--pod-name, --pod-namespace; the chart sets them from the downward API)"
        ));
    }
    let dirs = sources.dirs();
    let normalized: Vec<_> = dirs.iter().map(|d| crate::files::normalize(d)).collect();
    let mut list = Vec::new();
    for item in secrets.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let Some((secret, dir)) = item.split_once('=').map(|(s, d)| (s.trim(), d.trim())) else {
            p.push(format!(
                "--kube-secret (TLSWARD_KUBE_SECRETS) {item:?}: write SECRET=DIR, e.g. web-tls=/etc/tlsward/tls"
            ));
            continue;
        };
        if !crate::k8s::valid_name(secret) {
            p.push(format!("--kube-secret (TLSWARD_KUBE_SECRETS) {item:?}: {secret:?} is not a Secret name (lower-case letters, digits, '-' and '.')"));
        }
        let dir = std::path::PathBuf::from(dir);
        if !normalized.contains(&crate::files::normalize(&dir)) {
            p.push(format!(
                "--kube-secret (TLSWARD_KUBE_SECRETS) {item:?}: {} is not a source directory; use one of: {}",
                dir.display(),
                dirs.iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if list
            .iter()
            .any(|(_, d): &(String, std::path::PathBuf)| crate::files::normalize(d) == crate::files::normalize(&dir))
        {
            p.push(format!(
                "--kube-secret (TLSWARD_KUBE_SECRETS) {item:?}: {} is given twice",
                dir.display()
            ));
        }
        list.push((secret.to_string(), dir));
    }
    match watch {
        WatchSecrets::Api if list.is_empty() => p.push(
            "--watch-secrets api (TLSWARD_WATCH_SECRETS) needs at least one --kube-secret SECRET=DIR (TLSWARD_KUBE_SECRETS)".into(),
        ),
        WatchSecrets::Files if !list.is_empty() => {
            p.push("--kube-secret (TLSWARD_KUBE_SECRETS) is only used with --watch-secrets api; add it or drop --kube-secret".into());
        }
        _ => {}
    }
    KubeSettings {
        events,
        pod,
        secrets: if watch == WatchSecrets::Api { list } else { Vec::new() },
    }
}

impl Config {
    /// Checks the arguments and loads the first snapshot.
    pub fn load(args: &ServeArgs) -> Result<(Self, Snapshot), ConfigErrors> {
        let ServeArgs {
            listen,
            admin_listen,
            http_redirect_listen,
            tls_dir,
            policy_file,
            client_ca_dir,
            token_key_dir,
            expect_sans,
            reload_interval,
            file_watch,
            expiry_warning,
            db_url,
            db_allow_insecure,
            db_pool_size,
            db_connect_timeout,
            db_statement_timeout,
            db_checkout_timeout,
            db_conn_max_lifetime,
            db_unready_after,
            db_health_interval,
            db_migrate,
            token_max_ttl,
            handshake_timeout,
            header_timeout,
            max_body_bytes,
            body_timeout,
            idle_timeout,
            h2_keepalive,
            max_connections,
            drain_delay,
            max_connection_age,
            shutdown_grace,
            kube_events,
            watch_secrets,
            kube_secrets,
            pod_name,
            pod_namespace,
            pod_uid,
        } = args.clone();
        let mut p = Vec::new();
        // A missing --tls-dir or --token-key-dir is reported by Snapshot::load, with the rest.
        let db_url = need(
            &db_url,
            "db-url",
            "TLSWARD_DB_URL",
            "e.g. postgresql://app@localhost:26257/app?sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…",
            &mut p,
        );
        let db = db_url.and_then(|u| match DbTarget::parse(&u) {
            Ok(t) => Some(t),
            Err(list) => {
                p.extend(list.into_iter().map(|e| format!("--db-url (TLSWARD_DB_URL): {e}")));
                None
            }
        });
        if let Some(t) = &db
            && t.sslmode < SslMode::VerifyFull
            && !db_allow_insecure
        {
            p.push(format!(
                "--db-url (TLSWARD_DB_URL): sslmode={} does not authenticate the database; use sslmode=verify-full, or pass --db-allow-insecure (TLSWARD_DB_ALLOW_INSECURE=true) to accept the risk",
                t.sslmode.as_str()
            ));
        }
        if db_pool_size == 0 || db_pool_size > 1024 {
            p.push(format!(
                "--db-pool-size (TLSWARD_DB_POOL_SIZE) is {db_pool_size}; use 1 to 1024"
            ));
        }
        for (d, flag, env) in [
            (db_connect_timeout, "db-connect-timeout", "TLSWARD_DB_CONNECT_TIMEOUT"),
            (
                db_checkout_timeout,
                "db-checkout-timeout",
                "TLSWARD_DB_CHECKOUT_TIMEOUT",
            ),
            (handshake_timeout, "handshake-timeout", "TLSWARD_HANDSHAKE_TIMEOUT"),
            (db_health_interval, "db-health-interval", "TLSWARD_DB_HEALTH_INTERVAL"),
            (header_timeout, "header-timeout", "TLSWARD_HEADER_TIMEOUT"),
            (body_timeout, "body-timeout", "TLSWARD_BODY_TIMEOUT"),
            (idle_timeout, "idle-timeout", "TLSWARD_IDLE_TIMEOUT"),
        ] {
            if d.is_zero() {
                p.push(format!("--{flag} ({env}) is 0; give a positive duration such as 3s"));
            }
        }
        if token_max_ttl.is_zero() || token_max_ttl > crate::token::MAX_TTL {
            p.push("--token-max-ttl (TLSWARD_TOKEN_MAX_TTL): tokens must be short-lived; use 1s to 24h".to_string());
        }
        if max_body_bytes < 256 {
            p.push(format!(
                "--max-body-bytes (TLSWARD_MAX_BODY_BYTES) is {max_body_bytes}; use at least 256"
            ));
        }
        let ports = [Some(listen), Some(admin_listen), http_redirect_listen];
        for (i, a) in ports.iter().enumerate() {
            for b in ports.iter().skip(i + 1) {
                if let (Some(a), Some(b)) = (a, b)
                    && a == b
                    && a.port() != 0
                {
                    p.push(format!("listeners clash: {a} is used twice; give --listen, --admin-listen and --http-redirect-listen different addresses"));
                }
            }
        }
        let max_connections = max_connections_or_default(max_connections, &mut p);
        if reload_interval.is_some_and(|d| d < Duration::from_millis(100)) {
            p.push("--reload-interval (TLSWARD_RELOAD_INTERVAL) is below 100ms; use e.g. 30s".into());
        }
        if db_conn_max_lifetime < Duration::from_secs(1) {
            p.push("--db-conn-max-lifetime (TLSWARD_DB_CONN_MAX_LIFETIME) is below 1s; use e.g. 30m".into());
        }
        let sources = Sources {
            tls_dir,
            policy_file,
            client_ca_dir,
            token_key_dir,
            expect_sans,
            db: db.clone(),
        };
        let kube = kube_settings(
            kube_events,
            watch_secrets,
            &kube_secrets,
            [pod_name, pod_namespace, pod_uid],
            &sources,
            &mut p,
        );
        let snapshot = Snapshot::load(&sources, &crate::files::Files::disk(), 1)
            .map_err(|e| p.extend(e.iter().map(ToString::to_string)))
            .ok();
        if !p.is_empty() {
            return Err(ConfigErrors(p));
        }
        let (Some(db), Some(snapshot)) = (db, snapshot) else {
            unreachable!("every missing part pushed a problem");
        };
        let config = Self {
            listen,
            admin_listen,
            http_redirect_listen,
            sources,
            db,
            pool: PoolSettings {
                max_size: db_pool_size,
                connect_timeout: db_connect_timeout,
                statement_timeout: db_statement_timeout,
                checkout_timeout: db_checkout_timeout,
                max_lifetime: db_conn_max_lifetime,
            },
            db_migrate,
            db_unready_after,
            db_health_interval,
            token_max_ttl,
            handshake_timeout,
            header_timeout,
            max_body_bytes,
            body_timeout,
            tls_limits: crate::edge::Limits {
                max_connections,
                header_timeout,
                idle_timeout,
                h2_keepalive,
                max_age: max_connection_age,
            },
            drain_delay,
            shutdown_grace,
            reload_interval,
            file_watch,
            expiry_warning,
            kube,
        };
        Ok((config, snapshot))
    }

    /// The normalized effective configuration, as YAML.
    pub fn describe(&self, snapshot: &Snapshot) -> String {
        let h = |d: Duration| humantime::format_duration(d).to_string();
        let mut out = format!(
            "listen: https://{}\nadmin_listen: http://{}\nhttp_redirect_listen: {}\n",
            self.listen,
            self.admin_listen,
            self.http_redirect_listen
                .map_or("off".to_string(), |a| format!("http://{a}"))
        );
        out.push_str(&snapshot.describe(&self.sources));
        out.push_str(&format!(
            "database:\n  target: \"{}\"\n  sslmode: {}\n  unready_after: {}\n  health_interval: {}\n  conn_max_lifetime: {}\n  pool_size: {}\n  connect_timeout: {}\n  statement_timeout: {}\n  checkout_timeout: {}\n  migrate: {}\n",
            self.db.redacted(),
            self.db.sslmode.as_str(),
            h(self.db_unready_after),
            h(self.db_health_interval),
            h(self.pool.max_lifetime),
            self.pool.max_size,
            h(self.pool.connect_timeout),
            h(self.pool.statement_timeout),
            h(self.pool.checkout_timeout),
            self.db_migrate
        ));
        out.push_str(&format!(
            "reload:\n  file_watch: {}\n  watch: [{}]\n  interval: {}\n  expiry_warning: {}\n  expect_sans: [{}]\n",
            self.file_watch,
            self.sources
                .dirs()
                .iter()
                .map(|d| d.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            self.reload_interval.map_or("off".to_string(), h),
            h(self.expiry_warning),
            self.sources.expect_sans.join(", ")
        ));
        let k = &self.kube;
        out.push_str(&format!(
            "kubernetes:\n  events: {}\n  pod: {}\n  watch_secrets: {}\n",
            match (k.events, k.events_on()) {
                (KubeMode::Auto, true) => "on (auto: POD_NAME and POD_NAMESPACE are set)",
                (KubeMode::Auto, false) => "off (auto: POD_NAME/POD_NAMESPACE not set)",
                (_, true) => "on",
                (_, false) => "off",
            },
            k.pod
                .as_ref()
                .map_or("-".into(), |p| format!("{}/{}", p.namespace, p.name)),
            if k.secrets.is_empty() {
                "files".to_string()
            } else {
                let list: Vec<String> = k.secrets.iter().map(|(s, d)| format!("{s}={}", d.display())).collect();
                format!("api [{}]", list.join(", "))
            }
        ));
        out.push_str(&format!(
            "http:\n  token_max_ttl: {}\n  handshake_timeout: {}\n  header_timeout: {}\n  body_timeout: {}\n  idle_timeout: {}\n  h2_keepalive: {}\n  max_connections: {}\n  max_connection_age: {}\n  max_body_bytes: {}\n  drain_delay: {}\n  shutdown_grace: {}\n",
            h(self.token_max_ttl),
            h(self.handshake_timeout),
            h(self.header_timeout),
            h(self.body_timeout),
            h(self.tls_limits.idle_timeout),
            h(self.tls_limits.h2_keepalive),
            self.tls_limits.max_connections,
            h(self.tls_limits.max_age),
            self.max_body_bytes,
            h(self.drain_delay),
            h(self.shutdown_grace)
        ));
        out
    }
}
