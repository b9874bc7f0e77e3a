//! The example app (examples/fastapi: the seed's service under real uvicorn, SQLAlchemy and
//! psycopg2) behind `tlsward proxy` and its database socket, against the test PostgreSQL, as
//! the chart's `mode: sidecar` runs them: reads and writes; server and database client
//! certificates rotating under load with no failed request (and every database session moving
//! to the new certificate through the maximum session age); the app killed and back; a
//! verified token's subject reaching the app; openssl s_client and `tlsward scan` finding no
//! downgrade on the inbound hop.
//!
//! The app's virtualenv is made once in cargo's test scratch directory by
//! examples/fastapi/venv.sh (pip, the pinned requirements).

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Outcomes, kubelet, postgres, serial_of};
use tlsward::pki::{Issued, LeafSpec};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The example's virtualenv (made or refreshed by venv.sh; one at a time).
fn venv() -> PathBuf {
    static MADE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fastapi-venv");
    let mut made = MADE.lock().unwrap();
    if !*made {
        let out = std::process::Command::new(repo().join("examples/fastapi/venv.sh"))
            .arg(&dir)
            .output()
            .expect("run examples/fastapi/venv.sh");
        assert!(
            out.status.success(),
            "the example's virtualenv could not be made (pip): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        *made = true;
    }
    dir
}

/// One pod's worth: tlsward proxy (HTTPS + the database socket) and the app on a socket.
struct Pod {
    proxy: support::Child,
    app: tokio::process::Child,
    run: PathBuf,
    tls_dir: PathBuf,
    db_dir: PathBuf,
    db: String,
}

fn secret(dir: &Path, issued: &Issued) {
    kubelet::write(
        dir,
        &[
            ("tls.crt", issued.cert_pem.as_bytes()),
            ("tls.key", issued.key_pem.as_bytes()),
            ("ca.crt", postgres().ca.cert_pem.as_bytes()),
        ],
    );
}

async fn start_pod(extra: &[&str]) -> Pod {
    let pg = postgres();
    let scratch = pg.scratch();
    let (tls_dir, db_dir, run) = (scratch.join("tls"), scratch.join("db"), scratch.join("run"));
    secret(&tls_dir, &support::new_server_cert());
    secret(&db_dir, &pg.ca.issue(&LeafSpec::client("app")).unwrap());
    std::fs::create_dir_all(&run).unwrap();
    let db = pg.create_db();
    let proxy = spawn_proxy(&tls_dir, &db_dir, &run, &db, extra).await;
    apply_schema(&run, &db).await;
    let app = spawn_app(&run, &db).await;
    Pod {
        proxy,
        app,
        run,
        tls_dir,
        db_dir,
        db,
    }
}

/// The DSN of `db` with the CA and client certificate of the Secret directory `dir`.
fn dsn(db: &str, dir: &Path) -> String {
    format!(
        "postgresql://app@localhost:{}/{db}?sslmode=verify-full&sslrootcert={d}/ca.crt&sslcert={d}/tls.crt&sslkey={d}/tls.key",
        postgres().port,
        d = dir.display()
    )
}

async fn spawn_proxy(tls_dir: &Path, db_dir: &Path, run: &Path, db: &str, extra: &[&str]) -> support::Child {
    let mut args: Vec<std::ffi::OsString> = vec![
        "--tls-dir".into(),
        tls_dir.into(),
        format!("--upstream=unix:{}", run.join("app.sock").display()).into(),
        format!("--db-proxy-listen=unix:{}", run.display()).into(),
        "--db-url".into(),
        dsn(db, db_dir).into(),
    ];
    args.extend(["--upstream-health-path", "/healthz", "--upstream-unready-after", "1s"].map(Into::into));
    args.extend(extra.iter().map(Into::into));
    support::spawn_db_proxy("proxy", &args).await
}

/// The example's schema, through the database socket as the app connects (no TLS, no certificate).
async fn apply_schema(run: &Path, db: &str) {
    let mut c = tokio_postgres::Config::new();
    c.host_path(run).port(26257).user("app").dbname(db);
    let (client, conn) = c.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(conn);
    let schema = std::fs::read_to_string(repo().join("examples/fastapi/schema.sql")).unwrap();
    client.batch_execute(&schema).await.unwrap();
}

async fn spawn_app(run: &Path, db: &str) -> tokio::process::Child {
    let sock = run.join("app.sock");
    let _ = std::fs::remove_file(&sock);
    let child = tokio::process::Command::new(venv().join("bin/uvicorn"))
        .args(["app:app", "--app-dir"])
        .arg(repo().join("examples/fastapi"))
        .arg("--uds")
        .arg(&sock)
        .args(["--log-level", "warning", "--no-access-log"])
        .env(
            "DATABASE_URL",
            format!("postgresql+psycopg2://app@/{db}?host={}&port=26257", run.display()),
        )
        .kill_on_drop(true)
        .spawn()
        .expect("start uvicorn");
    assert_eventually!(
        tokio::net::UnixStream::connect(&sock).await.is_ok(),
        Duration::from_secs(30),
        "uvicorn did not listen on {}",
        sock.display()
    );
    child
}

impl Pod {
    fn client(&self) -> reqwest::Client {
        support::client_for(format!("127.0.0.1:{}", self.proxy.port).parse().unwrap())
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.proxy.port)
    }

    async fn create_user(&self, name: &str) -> Value {
        let r = self
            .client()
            .post(self.url("/users"))
            .json(&json!({"username": name, "email": format!("{name}@example.com")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        r.json().await.unwrap()
    }

    /// The client certificate serials (lowercase hex) of the app's database sessions, as the
    /// database sees them.
    fn db_session_serials(&self) -> Vec<String> {
        let out = postgres().psql(
            "postgres",
            &format!(
                "SELECT s.client_serial FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) WHERE a.datname = '{}' AND a.usename = 'app'",
                self.db
            ),
        );
        out.lines().map(support::decimal_to_hex).collect()
    }
}

#[tokio::test]
async fn the_seed_app_reads_and_writes_through_both_hops() {
    let pod = start_pod(&[]).await;
    let made = pod.create_user("ada").await;
    let r = pod
        .client()
        .get(pod.url(&format!("/users/{}", made["id"])))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().contains_key("strict-transport-security"),
        "the edge's headers"
    );
    let got: Value = r.json().await.unwrap();
    assert_eq!(got["username"], "ada");
    assert_eq!(
        pod.client().get(pod.url("/users/999")).send().await.unwrap().status(),
        404
    );
    let serials = pod.db_session_serials();
    assert!(!serials.is_empty(), "no database session of the app seen");
}

#[tokio::test]
async fn rotations_of_both_hops_under_load_fail_no_request() {
    let pod = start_pod(&["--db-max-session-age", "1s"]).await;
    pod.create_user("load").await;
    let (stop, out): (Arc<AtomicBool>, Outcomes) = Default::default();
    let t0 = std::time::Instant::now();
    let loads = [true, false]
        .map(|keepalive| support::request_loop(pod.proxy.port, "/users/1", keepalive, t0, stop.clone(), out.clone()));
    let mut last_client = None;
    for i in 0..20 {
        let cert = support::new_server_cert();
        secret(&pod.tls_dir, &cert);
        let want = serial_of(&cert.cert_pem);
        assert_eventually!(
            support::served_serial(pod.proxy.port).await.as_deref() == Ok(want.as_str()),
            Duration::from_secs(10),
            "server certificate {i} was never served"
        );
        if i % 2 == 0 {
            let client = postgres().ca.issue(&LeafSpec::client("app")).unwrap();
            secret(&pod.db_dir, &client);
            last_client = Some(client);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want = support::plain_serial(&last_client.unwrap().cert_pem);
    assert_eventually!(
        {
            let s = pod.db_session_serials();
            !s.is_empty() && s.iter().all(|x| *x == want)
        },
        Duration::from_secs(15),
        "the app's database sessions did not all move to the last client certificate: {:?}",
        pod.db_session_serials()
    );
    stop.store(true, Ordering::Relaxed);
    for l in loads {
        l.await.unwrap();
    }
    let out = out.lock().unwrap();
    let failed: Vec<_> = out.iter().filter(|(_, r)| r != &Ok(200)).collect();
    assert!(out.len() > 50, "too little load: {}", out.len());
    assert!(
        failed.is_empty(),
        "{} of {} requests failed: {:?}",
        failed.len(),
        out.len(),
        &failed[..failed.len().min(5)]
    );
}

#[tokio::test]
async fn independent_clients_cannot_downgrade_the_inbound_hop_and_the_scan_is_clean() {
    let pod = start_pod(&[]).await;
    let port = pod.proxy.port;
    // SECLEVEL=0 makes OpenSSL 3 really offer TLS 1.0/1.1 and CBC suites.
    for args in [
        ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        ["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:AES128-SHA:@SECLEVEL=0"],
    ] {
        let out = support::s_client(port, &args).await;
        assert!(
            !out.status.success(),
            "{args:?} must fail: {}",
            support::output_text(&out)
        );
    }
    let metrics = support::metrics_of(&pod.proxy.admin).await;
    let refused = support::handshake_failures(&metrics, "*");
    assert!(refused >= 3.0, "the proxy did not refuse them itself: {metrics}");
    let aead = support::s_client(port, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"]).await;
    assert!(aead.status.success(), "{}", support::output_text(&aead));
    let scan = tokio::process::Command::new(support::bin())
        .args(["scan", &format!("localhost:{port}"), "--fail-on", "low", "--ca"])
        .arg(&postgres().ca_file)
        .output()
        .await
        .unwrap();
    assert_eq!(scan.status.code(), Some(0), "{}", support::output_text(&scan));
}

#[tokio::test]
async fn the_app_killed_is_503_and_unready_then_back() {
    let mut pod = start_pod(&[]).await;
    pod.app.kill().await.unwrap();
    let r = pod.client().get(pod.url("/users/1")).send().await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.json::<Value>().await.unwrap()["error"]["code"],
        "upstream_unavailable"
    );
    let ready = format!("{}/readyz", pod.proxy.admin);
    assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 503).unwrap_or(false),
        Duration::from_secs(10),
        "the proxy stayed ready without its app"
    );
    pod.app = spawn_app(&pod.run, &pod.db).await;
    assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 200).unwrap_or(false),
        Duration::from_secs(10),
        "the proxy did not turn ready with its app back"
    );
    pod.create_user("back").await;
}

#[tokio::test]
async fn a_verified_tokens_subject_reaches_the_app_and_a_forged_one_does_not() {
    let pg = postgres();
    let dir = pg.token_dir.to_str().unwrap().to_string();
    let pod = start_pod(&["--require-token", "--token-key-dir", &dir]).await;
    let body = json!({"username": "tok", "email": "tok@example.com"});
    let r = pod
        .client()
        .post(pod.url("/users"))
        .header("x-tlsward-subject", "admin")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no token");
    let keys = tlsward::token::TokenKeys::load_dir(&pg.token_dir).unwrap();
    let token = keys.issue("ada", Duration::from_secs(60), tlsward::util::now_unix());
    let made: Value = pod
        .client()
        .post(pod.url("/users"))
        .bearer_auth(token)
        .header("x-tlsward-subject", "admin")
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(made["created_by"], "ada");
}
