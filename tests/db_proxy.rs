//! `tlsward db-proxy`, the binary, between clients and the test PostgreSQL (TLS only,
//! client-certificate auth): tokio-postgres through the unix socket and psql (an independent
//! client, libpq) through loopback TCP; the proxy's certificate on the database side, its
//! rotation and a bad file, the CN check, CancelRequest, the maximum session age (never inside
//! a transaction), an unreachable database reported as a PostgreSQL error, the shutdown, and
//! the refused flags. The same proxy inside `tlsward proxy --db-proxy-listen` is driven by the
//! real app in tests/sidecar.rs.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::{db_secret, free_port, postgres, secret_dsn};
use tlsward::pki::{Ca, Issued, LeafSpec};
use tokio_postgres::NoTls;

/// `tlsward db-proxy`; killed on drop.
struct DbProxy {
    child: support::Child,
    /// The socket directory (`host=` for libpq), when on a unix socket.
    socket_dir: PathBuf,
    /// The client certificate directory of `--db-url` (rewrite it to rotate).
    client_dir: PathBuf,
    db: String,
}

/// Starts the proxy for a new database, with its own client certificate directory;
/// `listen` is `None` for a unix socket in a scratch directory.
async fn start(listen: Option<String>, extra: &[&str]) -> DbProxy {
    let pg = postgres();
    let db = pg.create_db();
    let client_dir = pg.scratch().join("db-client");
    secret(&client_dir, &issue("app"));
    let dsn = pg.dsn(&db, &client_dir);
    start_for(&dsn, client_dir, db, listen, extra).await
}

/// Starts the proxy for `dsn`, whose client certificate is in `client_dir`.
async fn start_for(dsn: &str, client_dir: PathBuf, db: String, listen: Option<String>, extra: &[&str]) -> DbProxy {
    let socket_dir = postgres().scratch().join("run");
    std::fs::create_dir_all(&socket_dir).unwrap();
    let listen = listen.unwrap_or_else(|| format!("unix:{}", socket_dir.display()));
    let mut args = vec!["--db-proxy-listen", listen.as_str()];
    args.extend_from_slice(extra);
    let child = spawn_proxy(dsn, &args).await;
    if !listen.starts_with("unix:") {
        let addr = listen.clone();
        assert_eventually!(
            tokio::net::TcpStream::connect(&addr).await.is_ok(),
            Duration::from_secs(10),
            "the database proxy did not listen on {addr}"
        );
    }
    DbProxy {
        child,
        socket_dir,
        client_dir,
        db,
    }
}

/// Writes a client certificate Secret as the kubelet does (`..data` swapped in one rename).
fn secret(dir: &Path, issued: &Issued) {
    support::kubelet::write(
        dir,
        &[
            ("tls.crt", issued.cert_pem.as_bytes()),
            ("tls.key", issued.key_pem.as_bytes()),
            ("ca.crt", postgres().ca.cert_pem.as_bytes()),
        ],
    );
}

fn issue(cn: &str) -> Issued {
    postgres().ca.issue(&LeafSpec::client(cn)).unwrap()
}

async fn spawn_proxy(dsn: &str, extra: &[&str]) -> support::Child {
    let mut args: Vec<std::ffi::OsString> = ["--db-url", dsn].map(Into::into).into();
    args.extend(extra.iter().map(Into::into));
    support::spawn_db_proxy("db-proxy", &args).await
}

impl DbProxy {
    fn config(&self, user: &str) -> tokio_postgres::Config {
        let mut c = tokio_postgres::Config::new();
        c.host_path(&self.socket_dir)
            .port(26257)
            .user(user)
            .dbname(&self.db)
            .connect_timeout(Duration::from_secs(10));
        c
    }

    /// A client through the socket; its connection task's result is the handle's.
    async fn connect(
        &self,
    ) -> (
        tokio_postgres::Client,
        tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    ) {
        let (client, conn) = self.config("app").connect(NoTls).await.unwrap();
        (client, tokio::spawn(conn))
    }

    fn rotate(&self, issued: &Issued) {
        secret(&self.client_dir, issued);
    }

    fn log(&self) -> String {
        self.child.log.lock().unwrap().clone()
    }
}

/// The serial (lowercase hex) of the client certificate the database sees on this session.
async fn seen_serial(client: &tokio_postgres::Client) -> String {
    let row = client
        .query_one(
            "SELECT ssl, client_serial::text FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the database session is not TLS");
    support::decimal_to_hex(row.get(1))
}

#[tokio::test]
async fn reads_and_writes_go_through_the_socket_with_the_proxys_certificate() {
    let p = start(None, &[]).await;
    assert!(p.socket_dir.join(".s.PGSQL.26257").exists());
    let (client, _conn) = p.connect().await;
    client
        .batch_execute("CREATE TABLE t (id INT PRIMARY KEY, name TEXT); INSERT INTO t VALUES (1, 'a')")
        .await
        .unwrap();
    let n: i64 = client
        .query_one("SELECT count(*) FROM t WHERE name = $1", &[&"a"])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 1);
    let served = std::fs::read_to_string(p.client_dir.join("tls.crt")).unwrap();
    assert_eq!(seen_serial(&client).await, support::plain_serial(&served));
}

fn psql(args: &[&str], conninfo: &str, sql: &str) -> std::process::Output {
    std::process::Command::new("psql")
        .args(args)
        .args([conninfo, "-tAc", sql])
        .env("PGCONNECT_TIMEOUT", "10")
        .output()
        .expect("run psql")
}

#[tokio::test]
async fn psql_over_loopback_tcp_is_told_no_tls_and_is_relayed() {
    let port = free_port();
    let p = start(Some(format!("127.0.0.1:{port}")), &[]).await;
    // sslmode=prefer: libpq sends SSLRequest first; the proxy answers N, then relays.
    let conninfo = format!("host=127.0.0.1 port={port} user=app dbname={} sslmode=prefer", p.db);
    let out = psql(
        &[],
        &conninfo,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "t");
}

#[tokio::test]
async fn a_user_other_than_the_certificates_cn_is_refused_with_the_reason() {
    let p = start(None, &[]).await;
    let err = p.config("root").connect(NoTls).await.err().expect("connected as root");
    let db = err.as_db_error().expect("a PostgreSQL ErrorResponse");
    assert_eq!(db.code().code(), "28000");
    assert!(
        db.message()
            .contains("\"root\" is not the database proxy's client certificate user \"app\""),
        "{db:?}"
    );
}

#[tokio::test]
async fn a_rotated_client_certificate_serves_the_next_session_and_a_bad_one_keeps_the_last_good() {
    let p = start(None, &[]).await;
    let (first, _c1) = p.connect().await;
    let before = seen_serial(&first).await;
    let next = issue("app");
    p.rotate(&next);
    wait_for_new_sessions_on(&p, &next.cert_pem).await;
    let want = support::plain_serial(&next.cert_pem);
    assert_ne!(before, want);
    assert_eq!(seen_serial(&first).await, before, "the open session was not kept");
    support::kubelet::write(&p.client_dir, &[("tls.crt", b"-----BEGIN CERT"), ("tls.key", b"x")]);
    assert_eventually!(
        p.log().contains("rejected"),
        Duration::from_secs(10),
        "the bad certificate was not rejected: {}",
        p.log()
    );
    let (after, _c3) = p.connect().await;
    assert_eq!(
        seen_serial(&after).await,
        want,
        "a bad file replaced the last good certificate"
    );
}

#[tokio::test]
async fn a_cancel_request_reaches_the_database() {
    let p = start(None, &[]).await;
    let (client, _conn) = p.connect().await;
    let (watcher, _watcher_conn) = p.connect().await;
    let token = client.cancel_token();
    let started = std::time::Instant::now();
    // Cancelled once the database runs it (a cancel that arrives first cancels nothing).
    let cancel = tokio::spawn(async move {
        let w = &watcher;
        tlsward_testkit::wait::until_async("pg_sleep to run", Duration::from_secs(10), || async move {
            let running = "SELECT 1 FROM pg_stat_activity WHERE state = 'active' AND query = 'SELECT pg_sleep(30)'";
            let rows = w.simple_query(running).await.map_err(|e| e.to_string())?;
            let row = |m: &tokio_postgres::SimpleQueryMessage| matches!(m, tokio_postgres::SimpleQueryMessage::Row(_));
            rows.iter()
                .any(row)
                .then_some(())
                .ok_or_else(|| "not running yet".to_string())
        })
        .await;
        token.cancel_query(NoTls).await
    });
    let err = client.simple_query("SELECT pg_sleep(30)").await.unwrap_err();
    cancel.await.unwrap().unwrap();
    assert_eq!(err.code().map(|c| c.code()), Some("57014"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_session_past_its_max_age_is_closed_after_its_transaction_not_inside_it() {
    let p = start(None, &["--db-max-session-age", "1s"]).await;
    let (mut client, conn) = p.connect().await;
    client.batch_execute("CREATE TABLE t (id INT)").await.unwrap();
    let tx = client.transaction().await.unwrap();
    tx.execute("INSERT INTO t VALUES (1)", &[]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tx.execute("INSERT INTO t VALUES (2)", &[]).await.unwrap();
    tx.commit().await.unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(5), conn)
        .await
        .expect("the idle session was not closed after its max age")
        .unwrap();
    let err = ended.unwrap_err();
    assert!(format!("{err:?}").contains("57P01"), "{err:?}");
    let (again, _c) = p.connect().await;
    let n: i64 = again.query_one("SELECT count(*) FROM t", &[]).await.unwrap().get(0);
    assert_eq!(n, 2, "the transaction did not commit whole");
}

#[tokio::test]
async fn an_unreachable_database_is_a_postgres_error_to_the_app() {
    let pg = postgres();
    let scratch = pg.scratch();
    let client_dir = scratch.join("db-client");
    secret(&client_dir, &issue("app"));
    let socket = scratch.join("run");
    std::fs::create_dir_all(&socket).unwrap();
    let dsn = pg.dsn_at("app", &client_dir, free_port());
    let listen = format!("unix:{}", socket.display());
    let _child = spawn_proxy(&dsn, &["--db-proxy-listen", &listen]).await;
    let mut c = tokio_postgres::Config::new();
    c.host_path(&socket).port(26257).user("app").dbname("app");
    let err = c.connect(NoTls).await.err().expect("connected to nothing");
    let db = err.as_db_error().expect("a PostgreSQL ErrorResponse");
    assert_eq!(db.code().code(), "08001");
    assert!(db.message().contains("cannot reach the database"), "{db:?}");
}

/// Waits until a new session through `p` presents the certificate `want` (PEM) to the database.
async fn wait_for_new_sessions_on(p: &DbProxy, want: &str) {
    let want = support::plain_serial(want);
    let mut now = String::new();
    assert_eventually!(
        {
            if let Ok((c, conn)) = p.config("app").connect(NoTls).await {
                tokio::spawn(conn);
                now = seen_serial(&c).await;
            }
            now == want
        },
        Duration::from_secs(15),
        "new sessions use {now}, not {want}: {}",
        p.log()
    );
}

/// Waits until the database on `port` serves a certificate that `ca` alone verifies (a pool
/// built directly, with the client certificate of `dir`).
async fn wait_until_served_by(ca: &Ca, port: u16, dir: &Path) {
    let only = postgres().scratch().join("only-ca.crt");
    std::fs::write(&only, &ca.cert_pem).unwrap();
    let dsn = format!(
        "postgresql://app@localhost:{port}/app?sslmode=verify-full&sslrootcert={}&sslcert={1}/tls.crt&sslkey={1}/tls.key",
        only.display(),
        dir.display()
    );
    let target = tlsward::db::dsn::DbTarget::parse(&dsn).unwrap();
    let settings = tlsward::db::pool::PoolSettings {
        max_size: 1,
        connect_timeout: Duration::from_secs(3),
        statement_timeout: Duration::from_secs(5),
        checkout_timeout: Duration::from_secs(3),
        max_lifetime: Duration::from_secs(60),
    };
    assert_eventually!(
        tlsward::db::pool::build_and_verify(&target, &settings, 1).await.is_ok(),
        Duration::from_secs(15),
        "the database never served a certificate of the new CA"
    );
}

#[tokio::test]
async fn a_ca_rotation_end_to_end_keeps_new_and_open_sessions_working() {
    let c = support::TwoCaCluster::start();
    let (ca1, ca2, both, port) = (&c.old, &c.new, &c.both, c.port);
    let dir = postgres().scratch().join("db-client");
    db_secret(&dir, &ca1.cert_pem, &ca1.issue(&LeafSpec::client("app")).unwrap());
    let p = start_for(&secret_dsn(port, "app", &dir), dir.clone(), "app".into(), None, &[]).await;
    let (open, _conn) = p.connect().await;
    // 1. The bundle grows to old + new.
    let grown = ca1.issue(&LeafSpec::client("app")).unwrap();
    db_secret(&dir, both, &grown);
    wait_for_new_sessions_on(&p, &grown.cert_pem).await;
    // 2. The database's certificate is re-issued by the new CA: once a direct connection that
    // trusts CA 2 alone verifies it, the proxy (bundle: both) must verify it too.
    c.serve_a_new_ca_certificate();
    wait_until_served_by(ca2, port, &dir).await;
    wait_for_new_sessions_on(&p, &grown.cert_pem).await;
    // 3. A client certificate of the new CA, and the old CA leaves the bundle.
    let last = ca2.issue(&LeafSpec::client("app")).unwrap();
    db_secret(&dir, &ca2.cert_pem, &last);
    wait_for_new_sessions_on(&p, &last.cert_pem).await;
    open.simple_query("SELECT 1")
        .await
        .expect("the session opened before the rotation");
}

#[tokio::test]
async fn a_database_restart_reaches_the_app_as_postgres_errors_then_new_sessions_work() {
    let pg = postgres();
    let node_dir = pg.scratch();
    let node = pg.ca.issue(&LeafSpec::server("node", &["localhost"])).unwrap();
    support::write_pair(&node_dir, &node, &pg.ca.cert_pem);
    let (cluster, port) = support::extra_cluster_with(&node_dir);
    let dir = pg.scratch().join("db-client");
    secret(&dir, &issue("app"));
    let p = start_for(
        &secret_dsn(port, "app", &dir),
        dir,
        "app".into(),
        None,
        &["--db-connect-timeout", "1s"],
    )
    .await;
    let (client, conn) = p.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    support::stop_cluster(&cluster);
    // The database's own FATAL (fast shutdown: 57P01) reaches the open session.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the open session outlived the database")
        .unwrap();
    assert!(format!("{:?}", ended.unwrap_err()).contains("57P01"));
    let err = p
        .config("app")
        .connect(NoTls)
        .await
        .err()
        .expect("connected to a stopped database");
    assert_eq!(err.as_db_error().map(|e| e.code().code()), Some("08001"), "{err:?}");
    support::restart_cluster(&cluster, port, &node_dir);
    assert_eventually!(
        match p.config("app").connect(NoTls).await {
            Ok((c, conn)) => {
                tokio::spawn(conn);
                c.simple_query("SELECT 1").await.is_ok()
            }
            Err(_) => false,
        },
        Duration::from_secs(15),
        "no new session after the restart: {}",
        p.log()
    );
}

#[tokio::test]
async fn the_admin_listener_says_ready_and_counts_the_open_session() {
    let p = start(None, &[]).await;
    let ready = reqwest::get(format!("{}/readyz", p.child.admin)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let (client, _conn) = p.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    let metrics = support::metrics_of(&p.child.admin).await;
    assert!(metrics.contains("tlsward_db_proxy_sessions_active 1\n"), "{metrics}");
    let status = support::reload_status(&p.child.admin).await.to_string();
    assert!(status.contains("db_client"), "{status}");
    assert!(
        !status.contains("\"server\""),
        "db-proxy has no server certificate: {status}"
    );
    assert!(!status.contains("\"policy\""), "nor a TLS policy: {status}");
}

#[tokio::test]
async fn sigterm_ends_an_idle_session_with_57p01_and_exits_0() {
    let mut p = start(None, &[]).await;
    let (client, conn) = p.connect().await;
    client.simple_query("SELECT 1").await.unwrap();
    support::sigterm(p.child.process.id().unwrap());
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the idle session outlived the shutdown")
        .unwrap();
    assert!(format!("{:?}", ended.unwrap_err()).contains("57P01"));
    let exit = tokio::time::timeout(Duration::from_secs(10), p.child.process.wait())
        .await
        .expect("db-proxy did not exit after SIGTERM")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "{}", p.log());
}

#[test]
fn check_prints_the_effective_configuration_and_listens_nowhere() {
    let pg = postgres();
    let client_dir = pg.scratch().join("db-client");
    let client = issue("app");
    secret(&client_dir, &client);
    let socket_dir = pg.scratch().join("run");
    std::fs::create_dir_all(&socket_dir).unwrap();
    let listen = format!("unix:{}", socket_dir.display());
    let out = std::process::Command::new(support::bin())
        .args([
            "db-proxy",
            "--check",
            "--kube-events",
            "off",
            "--db-proxy-listen",
            &listen,
        ])
        .args(["--db-url", &pg.dsn("app", &client_dir)])
        .output()
        .unwrap();
    let text = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    let socket = socket_dir.join(".s.PGSQL.26257");
    assert!(
        text.contains(&format!("db_proxy:\n  listen: unix:{}\n", socket.display())),
        "{text}"
    );
    assert!(text.contains("sslmode: verify-full"), "{text}");
    assert!(text.contains("database_client_certificate:"), "{text}");
    assert!(text.contains(&support::plain_serial(&client.cert_pem)), "{text}");
    assert!(!text.contains("server_certificate"), "db-proxy has none: {text}");
    assert!(!socket.exists(), "--check made the socket");
}

/// `tlsward db-proxy ARGS`: its exit code 64 and what it wrote to stderr.
fn refused(args: &[&str]) -> String {
    let out = std::process::Command::new(support::bin())
        .arg("db-proxy")
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{out:?}");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn db_proxy_lists_every_missing_or_unsafe_flag_at_once() {
    let err = refused(&[]);
    assert!(err.contains("--db-url (TLSWARD_DB_URL) is not set"), "{err}");
    assert!(
        err.contains("--db-proxy-listen (TLSWARD_DB_PROXY_LISTEN) is not set"),
        "{err}"
    );
    let dsn = postgres().dsn("app", Path::new("/nonexistent"));
    let err = refused(&["--db-url", &dsn, "--db-proxy-listen", "0.0.0.0:26257"]);
    assert!(err.contains("pass --db-proxy-allow-remote"), "{err}");
    assert!(err.contains("/nonexistent/tls.crt"), "{err}");
    let err = refused(&["--db-url", &dsn, "--db-proxy-listen", "unix:/nonexistent/run"]);
    assert!(err.contains("/nonexistent/run is not a directory"), "{err}");
    let clash = [
        "--db-url",
        &dsn,
        "--db-proxy-listen",
        "127.0.0.1:9099",
        "--admin-listen",
        "127.0.0.1:9099",
    ];
    let err = refused(&clash);
    assert!(
        err.contains("127.0.0.1:9099 is also another listener's address"),
        "{err}"
    );
    let plain = "postgresql://app@127.0.0.1:26257/app?sslmode=disable";
    let err = refused(&[
        "--db-url",
        plain,
        "--db-allow-insecure",
        "--db-proxy-listen",
        "unix:/tmp",
    ]);
    assert!(
        err.contains("sslmode=disable: the database proxy exists to encrypt"),
        "{err}"
    );
}

#[tokio::test]
async fn refuses_a_remote_listen_address_and_a_db_url_without_the_db_proxy() {
    let run = |args: &[&str]| {
        let out = std::process::Command::new(support::bin())
            .args(["proxy", "--upstream", "http://127.0.0.1:8000", "--tls-dir"])
            .arg(postgres().server_dir.as_os_str())
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    let dsn = postgres().dsn("app", Path::new("/nonexistent"));
    let err = run(&["--db-url", &dsn, "--db-proxy-listen", "0.0.0.0:26257"]);
    assert!(err.contains("pass --db-proxy-allow-remote"), "{err}");
    assert!(err.contains("/nonexistent/tls.crt"), "{err}");
    let err = run(&["--db-url", &dsn]);
    assert!(err.contains("used by proxy only with --db-proxy-listen"), "{err}");
    let err = run(&["--db-proxy-listen", "unix:/tmp"]);
    assert!(err.contains("--db-url (TLSWARD_DB_URL) is not set"), "{err}");
}
