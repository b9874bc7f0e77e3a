//! The command line (clap derive). Every flag of `serve` and `check-config` can also be set
//! through its `TLSWARD_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::pki::command::CertsDevArgs;
pub use crate::token::command::{TokenIssueArgs, TokenNewKeyArgs};

/// tlsward: a hardened HTTPS users API on rustls with a verify-full CockroachDB pool.
#[derive(Debug, Parser)]
#[command(name = "tlsward", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (tracing EnvFilter syntax, e.g. `info,tlsward=debug`).
    #[arg(long, global = true, env = "TLSWARD_LOG", default_value = "info,rustls=error")]
    pub log: String,
    /// Log format.
    #[arg(long, global = true, env = "TLSWARD_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTPS API, the admin listener and the DB pool.
    Serve(ServeArgs),
    /// Load config, policy and certificates as `serve` does, print the effective config, exit 0
    /// (or 64 listing every problem).
    CheckConfig(ServeArgs),
    /// Put the TLS edge of `serve` (policy, hot reload, limits, drain, metrics, Events) in
    /// front of an existing app: every request is forwarded to --upstream.
    Proxy(ProxyArgs),
    /// The database hop alone: a PostgreSQL-wire socket for the app, each connection opened to
    /// --db-url with verify-full TLS and the current client certificate (as `proxy
    /// --db-proxy-listen` does, in a container of its own).
    DbProxy(DbProxyArgs),
    /// Scan a TLS endpoint: protocols, suites, certificate, HSTS, and the findings (exit 0: none
    /// at or above --fail-on, 1: findings, 2: could not scan).
    Scan(crate::scan::command::ScanArgs),
    /// Certificates.
    Certs {
        /// Which certificate command.
        #[command(subcommand)]
        command: CertsCommand,
    },
    /// Bearer tokens.
    Token {
        /// Which token command.
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// `certs` subcommands.
#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Make a dev PKI (CA, HTTPS server, DB server, DB client, token key) in cert-manager layout.
    Dev(CertsDevArgs),
}

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a bearer token with the current signing key.
    Issue(TokenIssueArgs),
    /// Write a new random signing key into the key directory.
    NewKey(TokenNewKeyArgs),
}

/// Arguments of `proxy`: the TLS edge of `serve` (listeners, the edge's limits, the served TLS
/// material, reload, Kubernetes, the drain), where the app is, the token check (with
/// `--require-token`) and the database proxy (with `--db-proxy-listen`). No pool flag: proxy
/// opens no pool.
#[derive(Debug, Args, Clone)]
pub struct ProxyArgs {
    /// Where it listens.
    #[command(flatten)]
    pub listen: ListenArgs,
    /// The served certificate, policy and client CAs.
    #[command(flatten)]
    pub tls: TlsSourceArgs,
    /// The app.
    #[command(flatten)]
    pub upstream: UpstreamArgs,
    /// The token keys (with --require-token).
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// The database proxy (off unless --db-proxy-listen is given).
    #[command(flatten)]
    pub db_proxy: DbProxyFlags,
    /// The database the database proxy opens.
    #[command(flatten)]
    pub db: DbArgs,
    /// Connection and request limits.
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// When the sources are re-read.
    #[command(flatten)]
    pub reload: ReloadArgs,
    /// Kubernetes Events and Secret watch.
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The drain on shutdown.
    #[command(flatten)]
    pub stop: StopArgs,
    /// Check the configuration and every file as `proxy` would, print the effective
    /// configuration and exit (0; or 64 listing every problem), without listening.
    #[arg(long)]
    pub check: bool,
}

/// The app behind `proxy`, and what reaches it.
#[derive(Debug, Args, Clone)]
pub struct UpstreamArgs {
    /// The app: `http://127.0.0.1:PORT` or `unix:/PATH` (uvicorn `--uds`).
    #[arg(long, env = "TLSWARD_UPSTREAM")]
    pub upstream: Option<String>,
    /// Limit on opening a connection to the app.
    #[arg(long, env = "TLSWARD_UPSTREAM_CONNECT_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub upstream_connect_timeout: std::time::Duration,
    /// Limit on the app's response headers (504 after it).
    #[arg(long, env = "TLSWARD_UPSTREAM_RESPONSE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub upstream_response_timeout: std::time::Duration,
    /// A pooled connection to the app idle this long is closed; keep it below the app's own
    /// keep-alive timeout (uvicorn: 5s) so that the proxy never reuses one the app is closing.
    #[arg(long, env = "TLSWARD_UPSTREAM_IDLE_TIMEOUT", default_value = "4s", value_parser = humantime::parse_duration)]
    pub upstream_idle_timeout: std::time::Duration,
    /// Probe the app with `GET PATH` (2xx/3xx is up) every second; without it the probe only
    /// checks that the app answers at all.
    #[arg(long, env = "TLSWARD_UPSTREAM_HEALTH_PATH")]
    pub upstream_health_path: Option<String>,
    /// The app unreachable this long (requests and probes failing), `/readyz` turns false; 0s:
    /// never.
    #[arg(long, env = "TLSWARD_UPSTREAM_UNREADY_AFTER", default_value = "10s", value_parser = humantime::parse_duration)]
    pub upstream_unready_after: std::time::Duration,
    /// Verify the bearer tokens of `serve` (the keys of --token-key-dir, rotating as they do)
    /// before anything reaches the app, and pass the subject as `X-Tlsward-Subject` (a
    /// client-sent copy is always removed).
    #[arg(long, env = "TLSWARD_REQUIRE_TOKEN")]
    pub require_token: bool,
    /// Peers (CIDRs, comma-separated) whose X-Forwarded-* and Forwarded headers are kept and
    /// appended to; from anyone else they are replaced.
    #[arg(long, env = "TLSWARD_TRUST_FORWARDED_FROM", value_delimiter = ',')]
    pub trust_forwarded_from: Vec<String>,
}

/// The database proxy's own flags (`proxy --db-proxy-listen`, `db-proxy`).
#[derive(Debug, Args, Clone)]
pub struct DbProxyFlags {
    /// Where the app's database connections arrive: `unix:/DIR` (socket DIR/.s.PGSQL.26257,
    /// for `host=/DIR port=26257`) or `127.0.0.1:PORT`; each is opened to --db-url with TLS
    /// (verify-full) and the current client certificate.
    #[arg(long, env = "TLSWARD_DB_PROXY_LISTEN")]
    pub db_proxy_listen: Option<String>,
    /// Let --db-proxy-listen be a non-loopback address (the app's hop to it is not encrypted).
    #[arg(long, env = "TLSWARD_DB_PROXY_ALLOW_REMOTE")]
    pub db_proxy_allow_remote: bool,
    /// Database sessions older than this are closed at their next idle moment between
    /// transactions, never inside one (0s: never), so that new certificates reach every session.
    #[arg(long, env = "TLSWARD_DB_MAX_SESSION_AGE", default_value = "30m", value_parser = humantime::parse_duration)]
    pub db_max_session_age: std::time::Duration,
}

/// Arguments of `db-proxy`: the database hop alone, in its own container.
#[derive(Debug, Args, Clone)]
pub struct DbProxyArgs {
    /// Admin listener (plain HTTP: /livez, /readyz, /metrics, /reload-status).
    #[arg(long, env = "TLSWARD_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// The proxy.
    #[command(flatten)]
    pub proxy: DbProxyFlags,
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// When the database material is re-read.
    #[command(flatten)]
    pub reload: ReloadArgs,
    /// Kubernetes Events and Secret watch.
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The drain on shutdown.
    #[command(flatten)]
    pub stop: StopArgs,
    /// Check the configuration and every file as `db-proxy` would, print the effective
    /// configuration and exit (0; or 64 listing every problem), without listening.
    #[arg(long)]
    pub check: bool,
}

/// Arguments of `serve` and `check-config`.
#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    /// Where it listens.
    #[command(flatten)]
    pub listen: ListenArgs,
    /// The served certificate, policy and client CAs.
    #[command(flatten)]
    pub tls: TlsSourceArgs,
    /// The token keys.
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// The database.
    #[command(flatten)]
    pub db: DbArgs,
    /// The pool of database connections.
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Connection and request limits.
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// When the sources are re-read.
    #[command(flatten)]
    pub reload: ReloadArgs,
    /// Kubernetes Events and Secret watch.
    #[command(flatten)]
    pub kube: KubeArgs,
    /// The drain on shutdown.
    #[command(flatten)]
    pub stop: StopArgs,
    /// Check the configuration and every file as `serve` would, print the effective
    /// configuration and exit (0; or 64 listing every problem), without listening: what
    /// `check-config` does, and `proxy --check` and `db-proxy --check` for theirs.
    #[arg(long)]
    pub check: bool,
}

/// The listeners of `serve` and `proxy`.
#[derive(Debug, Args, Clone)]
pub struct ListenArgs {
    /// HTTPS listen address.
    #[arg(long, env = "TLSWARD_LISTEN", default_value = "127.0.0.1:8443")]
    pub listen: SocketAddr,
    /// Admin listener (plain HTTP: /livez, /readyz, /metrics, /reload-status).
    #[arg(long, env = "TLSWARD_ADMIN_LISTEN", default_value = "127.0.0.1:9090")]
    pub admin_listen: SocketAddr,
    /// Optional plain-HTTP listener that only redirects (308) to https.
    #[arg(long, env = "TLSWARD_HTTP_REDIRECT_LISTEN")]
    pub http_redirect_listen: Option<SocketAddr>,
}

/// The TLS material a listener serves (`serve`, `proxy`).
#[derive(Debug, Args, Clone)]
pub struct TlsSourceArgs {
    /// Server certificate directory: tls.crt (leaf first, then intermediates) and tls.key.
    #[arg(long, env = "TLSWARD_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Cipher policy YAML (default: Mozilla intermediate, X25519MLKEM768 preferred).
    #[arg(long, env = "TLSWARD_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// Directory with ca.crt of the CAs that issue client certificates (for client_auth).
    #[arg(long, env = "TLSWARD_CLIENT_CA_DIR")]
    pub client_ca_dir: Option<PathBuf>,
    /// A SAN the server certificate must carry; a reload without it is rejected (repeatable,
    /// or comma-separated in the environment).
    #[arg(long = "expect-san", env = "TLSWARD_EXPECT_SAN", value_delimiter = ',')]
    pub expect_sans: Vec<String>,
}

/// The bearer tokens' keys and lifetime (`serve`; `proxy --require-token`).
#[derive(Debug, Args, Clone)]
pub struct TokenArgs {
    /// Directory of token signing keys (file name = key id).
    #[arg(long, env = "TLSWARD_TOKEN_KEY_DIR")]
    pub token_key_dir: Option<PathBuf>,
    /// Longest token lifetime (exp - iat) accepted; longer-lived tokens get 401.
    #[arg(long, env = "TLSWARD_TOKEN_MAX_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub token_max_ttl: std::time::Duration,
}

/// `serve`'s pool of database connections.
#[derive(Debug, Args, Clone)]
pub struct PoolArgs {
    /// Largest number of DB connections.
    #[arg(long, env = "TLSWARD_DB_POOL_SIZE", default_value_t = 16)]
    pub db_pool_size: usize,
    /// Server-side statement timeout (0s = none).
    #[arg(long, env = "TLSWARD_DB_STATEMENT_TIMEOUT", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_statement_timeout: std::time::Duration,
    /// How long a request waits for a free DB connection before answering 503.
    #[arg(long, env = "TLSWARD_DB_CHECKOUT_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub db_checkout_timeout: std::time::Duration,
    /// Connections older than this are closed instead of reused (old certificates age out).
    #[arg(long, env = "TLSWARD_DB_CONN_MAX_LIFETIME", default_value = "30m", value_parser = humantime::parse_duration)]
    pub db_conn_max_lifetime: std::time::Duration,
    /// `/readyz` turns false once the database has been unreachable this long (0s: never).
    #[arg(long, env = "TLSWARD_DB_UNREADY_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub db_unready_after: std::time::Duration,
    /// How often the serving pool is probed (checkout + ping) while idle.
    #[arg(long, env = "TLSWARD_DB_HEALTH_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
    pub db_health_interval: std::time::Duration,
    /// Run the schema migration at start-up.
    #[arg(long, env = "TLSWARD_DB_MIGRATE", default_value_t = true, action = clap::ArgAction::Set)]
    pub db_migrate: bool,
}

/// The limits of the TLS listener's connections and requests (`serve`, `proxy`).
#[derive(Debug, Args, Clone)]
pub struct EdgeArgs {
    /// Time limit of a TLS handshake.
    #[arg(long, env = "TLSWARD_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub handshake_timeout: std::time::Duration,
    /// Time limit to receive request headers (HTTP/1.1).
    #[arg(long, env = "TLSWARD_HEADER_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_timeout: std::time::Duration,
    /// Largest accepted request body, in bytes (default: 16384 for serve's API, 67108864 =
    /// 64 MiB for proxy, whose app may take uploads; larger is 413).
    #[arg(long, env = "TLSWARD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest request head (request line + headers; the h2 header list), in bytes; larger
    /// is 431, as are more than 100 HTTP/1.1 headers.
    #[arg(long, env = "TLSWARD_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// Time limit to receive a whole request body (408 past it).
    #[arg(long, env = "TLSWARD_BODY_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_timeout: std::time::Duration,
    /// A connection with no request in flight for this long is closed (HTTP/1.1 keep-alive
    /// and h2 alike).
    #[arg(long, env = "TLSWARD_IDLE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub idle_timeout: std::time::Duration,
    /// Interval of h2 keep-alive pings (a peer that does not answer within 20 s is dropped;
    /// 0s: no pings).
    #[arg(long, env = "TLSWARD_H2_KEEPALIVE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub h2_keepalive: std::time::Duration,
    /// Most open connections on the TLS listener; beyond it a new connection is closed at
    /// once (counted in tlsward_connections_refused_total). Default: 10000, or less when the
    /// open-files limit (nofile) is lower: that limit minus 256 for everything else.
    #[arg(long, env = "TLSWARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Connections older than this (±10 %) are closed after their current request, so that
    /// clients move to the current certificate, policy and replicas (0s: never).
    #[arg(long, env = "TLSWARD_MAX_CONNECTION_AGE", default_value = "30m", value_parser = humantime::parse_duration)]
    pub max_connection_age: std::time::Duration,
}

/// The database a command opens: serve's pool, the database proxies.
#[derive(Debug, Args, Clone)]
pub struct DbArgs {
    /// Database URL, CockroachDB form:
    /// postgresql://app@host:26257/app?sslmode=verify-full&sslrootcert=…&sslcert=…&sslkey=…
    #[arg(long, env = "TLSWARD_DB_URL", hide_env_values = true)]
    pub db_url: Option<String>,
    /// Allow sslmode weaker than verify-full (logs a warning at every start).
    #[arg(long, env = "TLSWARD_DB_ALLOW_INSECURE")]
    pub db_allow_insecure: bool,
    /// Time limit to open a DB connection (TCP + TLS + login).
    #[arg(long, env = "TLSWARD_DB_CONNECT_TIMEOUT", default_value = "3s", value_parser = humantime::parse_duration)]
    pub db_connect_timeout: std::time::Duration,
}

/// When the sources (certificates, keys, policy) are re-read.
#[derive(Debug, Args, Clone)]
pub struct ReloadArgs {
    /// Re-read every source at this interval, besides the reloads that file events and SIGHUP
    /// trigger (shorter for filesystems without inotify).
    #[arg(long, env = "TLSWARD_RELOAD_INTERVAL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub reload_interval: std::time::Duration,
    /// Watch the source directories for changes (inotify); `false` for filesystems where
    /// events do not arrive (then use SIGHUP or --reload-interval).
    #[arg(long, env = "TLSWARD_FILE_WATCH", default_value_t = true, action = clap::ArgAction::Set)]
    pub file_watch: bool,
    /// Warn (log + `tlsward_cert_expiring_soon`) when a certificate expires within this time.
    #[arg(long, env = "TLSWARD_EXPIRY_WARNING", default_value = "7d", value_parser = humantime::parse_duration)]
    pub expiry_warning: std::time::Duration,
}

/// Kubernetes Events on this Pod and the Secret watch.
#[derive(Debug, Args, Clone)]
pub struct KubeArgs {
    /// Kubernetes Events on this Pod for every reload and DB pool outcome: `auto` (on when
    /// POD_NAME and POD_NAMESPACE are set and a client configuration is found), `on`, `off`.
    #[arg(long, env = "TLSWARD_KUBE_EVENTS", value_enum, default_value = "auto")]
    pub kube_events: crate::k8s::KubeMode,
    /// How Secret changes arrive: `files` (kubelet updates the mounted files, up to about a
    /// minute later) or `api` (also watch the Secrets named by --kube-secret through the API and
    /// apply each version at once; the files stay the fallback).
    #[arg(long, env = "TLSWARD_WATCH_SECRETS", value_enum, default_value = "files")]
    pub watch_secrets: crate::k8s::WatchSecrets,
    /// SECRET=DIR: the Secret mounted at DIR, one of the source directories, for
    /// --watch-secrets api (repeatable, or comma-separated in the environment).
    #[arg(long = "kube-secret", env = "TLSWARD_KUBE_SECRETS", value_delimiter = ',')]
    pub kube_secrets: Vec<String>,
    /// This Pod's name (downward API), for Events and the Secret watch.
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// This Pod's namespace (downward API).
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: Option<String>,
    /// This Pod's UID (downward API), so that Events point at this very Pod.
    #[arg(long, env = "POD_UID")]
    pub pod_uid: Option<String>,
}

/// How a command stops after SIGTERM/SIGINT.
#[derive(Debug, Args, Clone)]
pub struct StopArgs {
    /// After SIGTERM/SIGINT, how long both listeners keep accepting and serving while
    /// /readyz answers 503, before they stop accepting (0s: stop at once).
    #[arg(long, env = "TLSWARD_DRAIN_DELAY", default_value = "5s", value_parser = humantime::parse_duration)]
    pub drain_delay: std::time::Duration,
    /// Then how long in-flight requests have to finish.
    #[arg(long, env = "TLSWARD_SHUTDOWN_GRACE", default_value = "20s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: std::time::Duration,
}
