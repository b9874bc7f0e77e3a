//! Test harness: a throwaway PostgreSQL set up like a secure CockroachDB (TLS only, client
//! certificates, its own PKI made with rcgen), an in-process tlsward on ephemeral ports, a
//! TLS HTTP client that trusts the test CA, and `assert_eventually!`.
//!
//! One cluster per test binary, started on first use by `scripts/pg.sh` with `--watch-pid`:
//! when the test process exits, the cluster is stopped and its directory (PKI included) is
//! removed, so nothing is left behind even if a test panics. Each test uses its own database.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use clap::Parser;
use tlsward::cli::{Cli, Command as Sub, ServeArgs};
use tlsward::pki::{Ca, Issued, KeyType, LeafSpec, write_file, write_secret_dir};
use tlsward::server::Running;

/// Waits until an expression is true, polling, or panics after the deadline.
#[macro_export]
macro_rules! assert_eventually {
    ($cond:expr, $timeout:expr, $($msg:tt)+) => {{
        let deadline = std::time::Instant::now() + $timeout;
        loop {
            if $cond { break; }
            if std::time::Instant::now() > deadline { panic!($($msg)+); }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }};
}

/// Path of the repo's scripts.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts").join(name)
}

/// The tlsward binary built for these tests.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_tlsward")
}

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The test PKI and the cluster that trusts it.
pub struct Postgres {
    /// Cluster directory (data, socket, pki/).
    pub dir: PathBuf,
    /// TCP port.
    pub port: u16,
    /// The CA of everything.
    pub ca: Ca,
    /// `pki/ca.crt`.
    pub ca_file: PathBuf,
    /// `pki/server/`: the HTTPS server Secret.
    pub server_dir: PathBuf,
    /// `pki/db-client/`: client cert for `app`.
    pub client_dir: PathBuf,
    /// `pki/tokens/`.
    pub token_dir: PathBuf,
}

static PG: OnceLock<Postgres> = OnceLock::new();
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Makes a unique name for this process.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Writes an issued pair into a Secret-style directory.
pub fn write_pair(dir: &Path, issued: &Issued, ca_pem: &str) {
    write_secret_dir(dir, issued, ca_pem).unwrap();
}

/// The shared cluster of this test binary, started on first use, on loopback.
pub fn postgres() -> &'static Postgres {
    PG.get_or_init(|| Postgres::start(&Reach::default()))
}

/// Where a cluster listens and whom it admits (`pg.sh`'s `PG_LISTEN` and `PG_CLIENTS`), and
/// the names its certificate carries besides localhost and 127.0.0.1.
#[derive(Debug, Clone)]
pub struct Reach {
    /// Addresses it listens on, comma-separated.
    pub listen: String,
    /// Networks whose clients may log in with a certificate, comma-separated.
    pub clients: String,
    /// More DNS names or addresses of its certificate.
    pub names: Vec<String>,
}

impl Default for Reach {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1".into(),
            clients: "127.0.0.1/32".into(),
            names: Vec::new(),
        }
    }
}

impl Postgres {
    /// Makes the test PKI and starts a cluster that trusts it; stopped and removed when the
    /// test process exits.
    pub fn start(reach: &Reach) -> Self {
        tlsward::install_crypto_provider();
        let dir = std::env::temp_dir().join(unique("tlsward-test-"));
        let pki = dir.join("pki");
        let ca = Ca::new("tlsward test CA", KeyType::Ecdsa).unwrap();
        let ca_file = pki.join("ca.crt");
        write_file(&ca_file, &ca.cert_pem, false).unwrap();
        let db_server = pki.join("db-server");
        let mut names = vec!["localhost", "127.0.0.1"];
        names.extend(reach.names.iter().map(String::as_str));
        write_pair(
            &db_server,
            &ca.issue(&LeafSpec::server("node", &names)).unwrap(),
            &ca.cert_pem,
        );
        let server_dir = pki.join("server");
        write_pair(
            &server_dir,
            &ca.issue(&LeafSpec::server("localhost", &["localhost", "127.0.0.1", "::1"]))
                .unwrap(),
            &ca.cert_pem,
        );
        let client_dir = pki.join("db-client");
        write_pair(&client_dir, &ca.issue(&LeafSpec::client("app")).unwrap(), &ca.cert_pem);
        let token_dir = pki.join("tokens");
        write_file(&token_dir.join("k1"), &tlsward::token::generate_key_text(), true).unwrap();
        let port = start_cluster(&dir, &db_server, reach);
        Postgres {
            dir,
            port,
            ca,
            ca_file,
            server_dir,
            client_dir,
            token_dir,
        }
    }

    /// Runs SQL as the superuser in database `db`; returns psql's unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql_in(&self.dir, db, sql)
    }

    /// A new empty database owned by `app`.
    pub fn create_db(&self) -> String {
        let name = unique("t");
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER app"));
        name
    }

    /// The DSN of database `db` as user `app`, with the client cert in `client_dir`.
    pub fn dsn(&self, db: &str, client_dir: &Path) -> String {
        self.dsn_at(db, client_dir, self.port)
    }

    /// The DSN with another port (e.g. a proxy in front of the cluster).
    pub fn dsn_at(&self, db: &str, client_dir: &Path, port: u16) -> String {
        format!(
            "postgresql://app@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
            self.ca_file.display(),
            client_dir.join("tls.crt").display(),
            client_dir.join("tls.key").display()
        )
    }

    /// A fresh directory under the cluster's directory (removed with it).
    pub fn scratch(&self) -> PathBuf {
        let d = self.dir.join("pki").join(unique("s"));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}

/// `ServeArgs` as the command line would make them, on ephemeral loopback ports; a flag in
/// `extra` replaces the default of the same name.
pub fn serve_args(extra: &[&str]) -> ServeArgs {
    let pg = postgres();
    let db = pg.create_db();
    let dsn = pg.dsn(&db, &pg.client_dir);
    let mut argv: Vec<String> = vec!["tlsward".into(), "serve".into()];
    for (k, v) in [
        ("--listen", "127.0.0.1:0".to_string()),
        ("--admin-listen", "127.0.0.1:0".to_string()),
        ("--tls-dir", pg.server_dir.display().to_string()),
        ("--token-key-dir", pg.token_dir.display().to_string()),
        ("--db-url", dsn),
        // The Pod's identity only when a test gives it: the environment (a CI runner inside a
        // Pod) must not turn Kubernetes Events on under --kube-events auto.
        ("--pod-name", String::new()),
        ("--pod-namespace", String::new()),
        // Tests stop servers often; a drain delay is only for the tests of the drain.
        ("--drain-delay", "0s".to_string()),
    ] {
        if !extra.contains(&k) {
            argv.push(k.into());
            argv.push(v);
        }
    }
    argv.extend(extra.iter().map(|s| s.to_string()));
    match Cli::parse_from(argv).command {
        Sub::Serve(a) => a,
        _ => unreachable!(),
    }
}

/// A running in-process server and a client for it.
pub struct TestServer {
    /// The server.
    pub running: Running,
    /// `https://localhost:PORT`.
    pub base: String,
    /// `http://127.0.0.1:ADMIN`.
    pub admin: String,
    /// Client trusting the test CA, resolving localhost to the server.
    pub client: reqwest::Client,
}

/// Starts a server with these args and waits until it is ready (DB verified).
pub async fn start(args: ServeArgs) -> TestServer {
    let s = start_unready(args).await;
    let admin = s.admin.clone();
    assert_eventually!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false),
        Duration::from_secs(20),
        "server never became ready"
    );
    s
}

/// Starts a server without waiting for readiness.
pub async fn start_unready(args: ServeArgs) -> TestServer {
    start_with_kube(args, None).await
}

/// Starts a server that talks to the Kubernetes API through `kube` (a mock or a fake API
/// server), without waiting for readiness.
pub async fn start_with_kube(args: ServeArgs, kube: Option<kube::Client>) -> TestServer {
    let (config, snapshot) = tlsward::config::Config::load(&args).expect("test config loads");
    let running = tlsward::server::start_with(config, snapshot, kube)
        .await
        .expect("server starts");
    let client = client_for(running.tls_addr);
    TestServer {
        base: format!("https://localhost:{}", running.tls_addr.port()),
        admin: format!("http://{}", running.admin_addr),
        client,
        running,
    }
}

/// A reqwest client that trusts the test CA and sends `localhost` to `addr`.
pub fn client_for(addr: SocketAddr) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(postgres().ca.cert_pem.as_bytes()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(ca)
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

impl TestServer {
    /// A valid token from the test keys.
    pub fn token(&self) -> String {
        let keys = tlsward::token::TokenKeys::load_dir(&postgres().token_dir).unwrap();
        keys.issue("tester", Duration::from_secs(300), tlsward::util::now_unix())
    }

    /// The text of `/metrics`.
    pub async fn metrics(&self) -> String {
        metrics_of(&self.admin).await
    }

    /// The TLS port.
    pub fn port(&self) -> u16 {
        self.running.tls_addr.port()
    }
}

/// The text of `/metrics` on the admin listener `admin` (`http://127.0.0.1:PORT`).
pub async fn metrics_of(admin: &str) -> String {
    reqwest::get(format!("{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// Failed TLS handshakes counted with `reason` in a `/metrics` text, or with any reason when
/// it is `*`.
pub fn handshake_failures(metrics: &str, reason: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("tlsward_tls_handshake_failures_total{"))
        .filter(|l| reason == "*" || l.contains(&format!("reason=\"{reason}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The value of one metric sample line (`name{labels}`), or 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(sample)
                .and_then(|rest| rest.trim().split(' ').next()?.parse().ok())
        })
        .unwrap_or(0.0)
}

/// Runs SQL as the superuser in database `db` of the cluster in `dir`; psql's unaligned output.
pub fn psql_in(dir: &Path, db: &str, sql: &str) -> String {
    let out = Command::new("bash")
        .arg(script("pg.sh"))
        .args(["psql", dir.to_str().unwrap(), "-d", db, "-tA", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Another cluster of the same CA with its own server certificate (for name-mismatch tests).
pub fn extra_cluster(server_sans: &[&str]) -> (PathBuf, u16) {
    let pg = postgres();
    let certs = pg.scratch();
    write_pair(
        &certs,
        &pg.ca.issue(&LeafSpec::server("node", server_sans)).unwrap(),
        &pg.ca.cert_pem,
    );
    extra_cluster_with(&certs)
}

fn pg_sh(args: &[&str]) {
    let status = Command::new("bash")
        .arg(script("pg.sh"))
        .args(args)
        .status()
        .expect("run scripts/pg.sh");
    assert!(status.success(), "scripts/pg.sh {args:?} failed");
}

/// Another cluster whose server Secret (`tls.crt`, `tls.key`, `ca.crt` = the client CAs) is
/// `certs`; removed when the test process exits.
pub fn extra_cluster_with(certs: &Path) -> (PathBuf, u16) {
    extra_cluster_reaching(certs, &Reach::default())
}

/// [`extra_cluster_with`], listening and admitting as `reach` says.
pub fn extra_cluster_reaching(certs: &Path, reach: &Reach) -> (PathBuf, u16) {
    let dir = std::env::temp_dir().join(unique("tlsward-test-extra-"));
    let port = start_cluster(&dir, certs, reach);
    (dir, port)
}

/// `pg.sh start` of a cluster in `dir` on a free port (returned) with the server Secret `certs`,
/// stopped and removed when the test process exits.
fn start_cluster(dir: &Path, certs: &Path, reach: &Reach) -> u16 {
    let port = free_port();
    let status = Command::new("bash")
        .arg(script("pg.sh"))
        .args([
            "start",
            dir.to_str().unwrap(),
            &port.to_string(),
            certs.to_str().unwrap(),
        ])
        .args(["--watch-pid", &std::process::id().to_string()])
        .env("PG_LISTEN", &reach.listen)
        .env("PG_CLIENTS", &reach.clients)
        .status()
        .expect("run scripts/pg.sh");
    assert!(status.success(), "scripts/pg.sh start failed");
    port
}

/// Installs new server TLS files in a cluster and reloads it (SIGHUP).
pub fn reload_cluster_certs(cluster: &Path, certs: &Path) {
    pg_sh(&["reload-certs", cluster.to_str().unwrap(), certs.to_str().unwrap()]);
}

/// Stops a cluster (fast shutdown: every connection is closed).
pub fn stop_cluster(cluster: &Path) {
    pg_sh(&["stop", cluster.to_str().unwrap()]);
}

/// Writes a database Secret into `dir` as the kubelet does: the CA bundle `ca_pem` and
/// `client`'s certificate and key.
pub fn db_secret(dir: &Path, ca_pem: &str, client: &Issued) {
    kubelet::write(
        dir,
        &[
            ("ca.crt", ca_pem.as_bytes()),
            ("tls.crt", client.cert_pem.as_bytes()),
            ("tls.key", client.key_pem.as_bytes()),
        ],
    );
}

/// A verify-full DSN for database `db` on `port` whose CA bundle and client pair are the
/// database Secret in `dir` ([`db_secret`]), so that rotating the Secret rotates all three.
pub fn secret_dsn(port: u16, db: &str, dir: &Path) -> String {
    format!(
        "postgresql://app@localhost:{port}/{db}?sslmode=verify-full&sslrootcert={0}/ca.crt&sslcert={0}/tls.crt&sslkey={0}/tls.key",
        dir.display()
    )
}

/// A cluster of its own for a database CA rotation: it accepts client certificates of two
/// CAs throughout, and its own certificate starts with the old one.
pub struct TwoCaCluster {
    /// The CA the rotation starts from.
    pub old: Ca,
    /// The CA it ends with.
    pub new: Ca,
    /// Both CAs' certificates, one bundle.
    pub both: String,
    /// The cluster's data directory.
    pub dir: PathBuf,
    /// Its port.
    pub port: u16,
    node_dir: PathBuf,
    names: Vec<String>,
}

impl TwoCaCluster {
    /// Starts the cluster on loopback with a node certificate of the old CA.
    pub fn start() -> Self {
        Self::start_reaching(&Reach::default())
    }

    /// [`TwoCaCluster::start`], listening, admitting and named as `reach` says.
    pub fn start_reaching(reach: &Reach) -> Self {
        let (old, new) = (
            Ca::new("db CA 1", KeyType::Ecdsa).unwrap(),
            Ca::new("db CA 2", KeyType::Ecdsa).unwrap(),
        );
        let both = format!("{}{}", old.cert_pem, new.cert_pem);
        let node_dir = postgres().scratch();
        let names = reach.names.clone();
        write_pair(&node_dir, &Self::node(&old, &names), &both);
        let (dir, port) = extra_cluster_reaching(&node_dir, reach);
        Self {
            old,
            new,
            both,
            dir,
            port,
            node_dir,
            names,
        }
    }

    fn node(ca: &Ca, names: &[String]) -> Issued {
        let mut sans = vec!["localhost", "127.0.0.1"];
        sans.extend(names.iter().map(String::as_str));
        ca.issue(&LeafSpec::server("node", &sans)).unwrap()
    }

    /// Re-issues the cluster's own certificate by the new CA (PostgreSQL reloads it on SIGHUP).
    pub fn serve_a_new_ca_certificate(&self) {
        write_pair(&self.node_dir, &Self::node(&self.new, &self.names), &self.both);
        reload_cluster_certs(&self.dir, &self.node_dir);
    }

    /// Runs SQL as the superuser in database `db` of this cluster.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        psql_in(&self.dir, db, sql)
    }
}

/// Starts a stopped cluster again on the same port.
pub fn restart_cluster(cluster: &Path, port: u16, certs: &Path) {
    pg_sh(&[
        "start",
        cluster.to_str().unwrap(),
        &port.to_string(),
        certs.to_str().unwrap(),
    ]);
}

/// A TCP proxy on loopback that can be switched off (closing every connection) and on again:
/// a database outage or restart, seen from tlsward.
pub struct Proxy {
    /// Port the proxy listens on.
    pub port: u16,
    target: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Proxy {
    /// A proxy to `127.0.0.1:target`, not yet listening.
    pub fn new(target: u16) -> Self {
        Self {
            port: free_port(),
            target,
            task: None,
        }
    }

    /// Starts listening and forwarding.
    pub async fn up(&mut self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await.unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    /// Stops listening and drops every forwarded connection.
    pub async fn down(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }
}

pub mod kubelet;

/// Sends SIGTERM to process `pid`.
pub fn sigterm(pid: u32) {
    let status = Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    assert!(status.success(), "kill -TERM {pid}: {status:?}");
}

/// `openssl s_client` (an independent TLS client) to `127.0.0.1:port` as `localhost`,
/// verifying against the test CA, with `args`.
pub async fn s_client(port: u16, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .args([
            "-CAfile",
            postgres().ca_file.to_str().unwrap(),
            "-verify_return_error",
            "-brief",
        ])
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .expect("openssl is installed")
}

/// A process's stdout and stderr, for a failure message.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A TLS client stream to the server under test.
pub type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// A rustls client configuration that trusts the test CA, for `versions` (empty: every
/// version rustls offers), offering `alpn`.
pub fn tls_client(
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = tlsward::tls::material::parse_certs(Path::new("ca"), postgres().ca.cert_pem.as_bytes()).unwrap();
    roots.add(ca[0].clone()).unwrap();
    let builder = if versions.is_empty() {
        rustls::ClientConfig::builder()
    } else {
        rustls::ClientConfig::builder_with_protocol_versions(versions)
    };
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    std::sync::Arc::new(config)
}

/// A TLS connection to `127.0.0.1:port` with SNI `localhost`.
pub async fn tls_connect(config: &std::sync::Arc<rustls::ClientConfig>, port: u16) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
}

/// The serial of the certificate a new TLS connection to `127.0.0.1:port` is served
/// (SNI `localhost`, verified against the test CA).
pub async fn served_serial(port: u16) -> Result<String, String> {
    let tls = tokio::time::timeout(Duration::from_secs(5), tls_connect(&tls_client(&[], &[]), port))
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let certs = tls.get_ref().1.peer_certificates().ok_or("no certificate")?;
    Ok(tlsward::tls::material::CertInfo::from_der(&certs[0])?.serial)
}

/// Waits until new connections are served `cert`.
pub async fn wait_serial(s: &TestServer, cert: &Issued) {
    let want = serial_of(&cert.cert_pem);
    let port = s.port();
    assert_eventually!(
        served_serial(port).await.as_deref() == Ok(want.as_str()),
        Duration::from_secs(10),
        "serial {want} was never served"
    );
}

/// A decimal number (pg_stat_ssl's `client_serial`) in lowercase hex without leading zeros.
pub fn decimal_to_hex(decimal: &str) -> String {
    // Base 10 → base 16 on digit vectors (serials are up to 160 bits).
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut hex = Vec::new();
    while digits.iter().any(|d| *d != 0) {
        let mut rem = 0;
        for d in &mut digits {
            let cur = rem * 10 + *d;
            *d = cur / 16;
            rem = cur % 16;
        }
        hex.push(char::from_digit(rem, 16).unwrap());
    }
    hex.iter().rev().collect()
}

/// A PEM certificate's serial as [`decimal_to_hex`] writes it (no colons, no leading zeros).
pub fn plain_serial(cert_pem: &str) -> String {
    serial_of(cert_pem)
        .replace(':', "")
        .trim_start_matches('0')
        .to_lowercase()
}

/// The serial of a PEM certificate.
pub fn serial_of(cert_pem: &str) -> String {
    let der = tlsward::tls::material::parse_certs(Path::new("cert"), cert_pem.as_bytes()).unwrap();
    tlsward::tls::material::CertInfo::from_der(&der[0]).unwrap().serial
}

/// A new server certificate for localhost from the test CA.
pub fn new_server_cert() -> Issued {
    postgres()
        .ca
        .issue(&LeafSpec::server("localhost", &["localhost", "127.0.0.1", "::1"]))
        .unwrap()
}

/// The JSON of `/reload-status`.
pub async fn reload_status(admin: &str) -> serde_json::Value {
    reqwest::get(format!("{admin}/reload-status"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// A steady request loop against a server: `tasks` concurrent clients doing `GET path` with a
/// valid token until stopped. 200 and 404 count as served; anything else as failed.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<()>>,
    /// Served requests.
    pub ok: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Failed requests.
    pub failed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// Status codes other than 200/404 (and transport errors as 0) seen.
    pub bad: std::sync::Arc<std::sync::Mutex<Vec<(u16, String)>>>,
}

impl Load {
    /// Starts the loop.
    pub fn start(s: &TestServer, path: &str, tasks: usize) -> Self {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let bad = Arc::new(std::sync::Mutex::new(Vec::new()));
        let token = s.token();
        let url = format!("{}{path}", s.base);
        let handles = (0..tasks)
            .map(|_| {
                let (client, url, token) = (s.client.clone(), url.clone(), token.clone());
                let (stop, ok, failed, bad) = (stop.clone(), ok.clone(), failed.clone(), bad.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        match client.get(&url).bearer_auth(&token).send().await {
                            Ok(r) if r.status() == 200 || r.status() == 404 => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let code = r.status().as_u16();
                                let body = r.text().await.unwrap_or_default();
                                bad.lock().unwrap().push((code, body));
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                bad.lock().unwrap().push((0, e.to_string()));
                            }
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            handles,
            ok,
            failed,
            bad,
        }
    }

    /// Stops the loop; (served, failed).
    pub async fn stop(self) -> (u64, u64, Vec<(u16, String)>) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for h in self.handles {
            h.await.unwrap();
        }
        let bad = self.bad.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            bad,
        )
    }
}

/// Every process of a cluster (the postmaster and its children), from its pid file and
/// `/proc`.
pub fn cluster_pids(cluster: &Path) -> Vec<u32> {
    let pid_file = std::fs::read_to_string(cluster.join("data/postmaster.pid")).unwrap();
    let postmaster: u32 = pid_file.lines().next().unwrap().trim().parse().unwrap();
    let mut pids = vec![postmaster];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": the fields after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if ppid == Some(postmaster) {
            pids.push(pid);
        }
    }
    pids
}

/// Sends a signal (`STOP`, `CONT`) to every process of a cluster.
pub fn signal_cluster(cluster: &Path, signal: &str) {
    let pids: Vec<String> = cluster_pids(cluster).iter().map(u32::to_string).collect();
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pids:?}");
}

/// Collects a child's stderr, line by line, into a shared string.
pub fn collect_log(stderr: tokio::process::ChildStderr) -> std::sync::Arc<std::sync::Mutex<String>> {
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = log.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            sink.lock().unwrap().push_str(&(l + "\n"));
        }
    });
    log
}

/// The binary serving in a child process on ephemeral ports chosen here; its log is
/// collected line by line.
pub struct Child {
    /// The process (killed when dropped).
    pub process: tokio::process::Child,
    /// Everything it wrote to stderr so far.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    /// The TLS port.
    pub port: u16,
    /// `http://127.0.0.1:ADMIN`.
    pub admin: String,
}

/// Starts `tlsward serve` with the test PKI, `db_url` and `extra`, and waits until it is
/// ready.
pub async fn spawn_serve(db_url: &str, extra: &[&str]) -> Child {
    let pg = postgres();
    let mut args: Vec<std::ffi::OsString> = vec!["--tls-dir".into(), pg.server_dir.clone().into()];
    args.extend(["--token-key-dir".into(), pg.token_dir.clone().into()]);
    args.extend(["--db-url", db_url].map(Into::into));
    if !extra.contains(&"--drain-delay") {
        args.extend(["--drain-delay", "0s"].map(Into::into));
    }
    args.extend(extra.iter().map(Into::into));
    let child = spawn_child("serve", &args);
    let ready = format!("{}/readyz", child.admin);
    assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 200).unwrap_or(false),
        Duration::from_secs(20),
        "child never became ready: {}",
        child.log.lock().unwrap()
    );
    child
}

/// `tlsward SUBCOMMAND` in a child process on ephemeral loopback ports chosen here, without
/// Kubernetes Events, with `args`; its log is collected line by line.
fn spawn_child(subcommand: &str, args: &[std::ffi::OsString]) -> Child {
    let (port, admin_port) = (free_port(), free_port());
    let mut command = tokio::process::Command::new(bin());
    command.arg(subcommand);
    // `db-proxy` has no HTTPS listener.
    if subcommand != "db-proxy" {
        command.args(["--listen", &format!("127.0.0.1:{port}")]);
    }
    let mut process = command
        .args(["--admin-listen", &format!("127.0.0.1:{admin_port}")])
        .args(["--kube-events", "off"])
        .args(args)
        .env("TLSWARD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = collect_log(process.stderr.take().unwrap());
    Child {
        process,
        log,
        port,
        admin: format!("http://127.0.0.1:{admin_port}"),
    }
}

/// Starts `tlsward db-proxy`, or `tlsward proxy` with the database proxy on (see
/// [`spawn_child`]), with `args` (--db-url, --db-proxy-listen, and for `proxy` the upstream and
/// --tls-dir, …), and waits until the database proxy listens.
pub async fn spawn_db_proxy(subcommand: &str, args: &[std::ffi::OsString]) -> Child {
    let mut all: Vec<std::ffi::OsString> = ["--drain-delay", "0s"].map(Into::into).into();
    all.extend_from_slice(args);
    let child = spawn_child(subcommand, &all);
    assert_eventually!(
        child.log.lock().unwrap().contains("database proxy listening"),
        Duration::from_secs(20),
        "the database proxy never listened: {}",
        child.log.lock().unwrap()
    );
    child
}

/// Every request's start (seconds after a common instant) and its status or error.
pub type Outcomes = std::sync::Arc<std::sync::Mutex<Vec<(f64, Result<u16, String>)>>>;

/// `GET path` on `127.0.0.1:port` in a loop until `stop`, with one pooled client
/// (keep-alive) or a new client per request (a new TLS connection each time); each outcome
/// is recorded with its start time after `t0`.
pub fn request_loop(
    port: u16,
    path: &'static str,
    keepalive: bool,
    t0: std::time::Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: Outcomes,
) -> tokio::task::JoinHandle<()> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    tokio::spawn(async move {
        let mut client = client_for(addr);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if !keepalive {
                client = client_for(addr);
            }
            let at = t0.elapsed().as_secs_f64();
            let outcome = match client.get(format!("https://localhost:{port}{path}")).send().await {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(format!("{e:#}")),
            };
            out.lock().unwrap().push((at, outcome));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// `GET url` every 50 ms until `stop`: the status (or error) of each, with its time after `t0`.
pub fn readyz_loop(
    url: String,
    t0: std::time::Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: Outcomes,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = t0.elapsed().as_secs_f64();
            let r = client
                .get(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            out.lock().unwrap().push((at, r));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// How long after the stop command the readiness probe may still answer 200: the signal
/// travels through `podman stop` or `kill`, which on a loaded machine takes a few hundred ms.
const SIGNAL_LATENCY_S: f64 = 1.0;

/// Checks a drain: every request that started before `until` was answered 200 (at least `min`
/// of them after `from`, the stop command), readiness answered 200 before the stop, turned 503
/// within [`SIGNAL_LATENCY_S`] of it and stayed 503 until `until`.
pub fn assert_drained(requests: &Outcomes, ready: &Outcomes, from: f64, until: f64, min: usize) {
    let requests = requests.lock().unwrap();
    let during: Vec<_> = requests.iter().filter(|(at, _)| *at < until).collect();
    let failed: Vec<_> = during.iter().filter(|(_, r)| *r != Ok(200)).collect();
    let in_window = during.iter().filter(|(at, _)| *at >= from).count();
    assert!(in_window >= min, "only {in_window} requests during the drain delay");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed or were refused before the drain delay ended: {:?}",
        failed.len(),
        during.len(),
        &failed[..failed.len().min(5)]
    );
    let ready = ready.lock().unwrap();
    assert!(
        ready.iter().any(|(at, r)| *at < from && *r == Ok(200)),
        "never ready before"
    );
    let flipped = ready
        .iter()
        .find(|(at, r)| *at > from && *r == Ok(503))
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("readiness never turned 503: {ready:?}"));
    assert!(
        flipped - from < SIGNAL_LATENCY_S,
        "readiness turned 503 only {:.2} s after the stop: {ready:?}",
        flipped - from
    );
    let probes: Vec<_> = ready.iter().filter(|(at, _)| *at >= flipped && *at < until).collect();
    assert!(probes.len() >= 5, "{probes:?}");
    assert!(
        probes.iter().all(|(_, r)| *r == Ok(503)),
        "readiness answered 200 again while draining: {probes:?}"
    );
    eprintln!(
        "drain: {in_window} requests started during the delay, {} failed or refused; {} readiness probes, all 503",
        failed.len(),
        probes.len()
    );
}
