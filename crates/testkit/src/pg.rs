//! A throwaway PostgreSQL set up like a secure CockroachDB (TLS only, client certificates,
//! its own PKI made with tlsward's `pki`), started by `scripts/pg.sh` with `--watch-pid`: when
//! the test process exits, the cluster is stopped and its directory (PKI included) is removed,
//! so nothing is left behind even if a test panics. One shared cluster per test binary (each
//! test uses its own database), more of the same CA or of two CAs for the tests that need them,
//! and a TCP proxy in front that can be switched off (an outage).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use tlsward::pki::{Ca, Issued, KeyType, LeafSpec, write_file, write_secret_dir};

use crate::{free_port, kubelet, script, unique};

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

/// Runs SQL as the superuser in database `db` of the cluster in `dir`; psql's unaligned output.
pub fn psql_in(dir: &Path, db: &str, sql: &str) -> String {
    pg_sh(&["psql", dir.to_str().unwrap(), "-d", db, "-tA", "-c", sql])
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

/// Runs `scripts/pg.sh` with `args` (for the tests and the benchmarks); its stdout, trimmed.
/// Panics with its stderr when it fails.
pub fn pg_sh(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(script("pg.sh"))
        .args(args)
        .output()
        .expect("run scripts/pg.sh");
    assert!(
        out.status.success(),
        "scripts/pg.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
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
/// stopped and removed when the test process exits. A port taken between its choice and
/// PostgreSQL's bind (by another test's connection) is replaced by another, up to five times.
fn start_cluster(dir: &Path, certs: &Path, reach: &Reach) -> u16 {
    for _ in 0..5 {
        let port = free_port();
        let log_before = std::fs::metadata(dir.join("postgres.log")).map_or(0, |m| m.len() as usize);
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
        if status.success() {
            return port;
        }
        let whole = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        let log = whole.get(log_before..).unwrap_or(&whole);
        assert!(
            log.contains("Address already in use"),
            "scripts/pg.sh start failed: {log}"
        );
    }
    panic!("scripts/pg.sh start: five free ports were taken before PostgreSQL bound them");
}

/// Installs new server TLS files in a cluster and reloads it (SIGHUP).
pub fn reload_cluster_certs(cluster: &Path, certs: &Path) {
    let _ = pg_sh(&["reload-certs", cluster.to_str().unwrap(), certs.to_str().unwrap()]);
}

/// Stops a cluster (fast shutdown: every connection is closed).
pub fn stop_cluster(cluster: &Path) {
    let _ = pg_sh(&["stop", cluster.to_str().unwrap()]);
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
    let _ = pg_sh(&[
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
