//! The database side against a real PostgreSQL with TLS and client-certificate auth: refused
//! credentials fail with a clear reason and no pool, 40001 is provoked and retried, killed
//! connections and outages are survived.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use support::{Proxy, TestServer, extra_cluster, postgres, serve_args, start_unready, write_pair};
use tlsward::db::dsn::DbTarget;
use tlsward::db::pool::{PoolSettings, build_and_verify};
use tlsward::metrics::Metrics;
use tlsward::pki::{Ca, KeyType, LeafSpec};

fn settings() -> PoolSettings {
    PoolSettings {
        max_size: 4,
        connect_timeout: Duration::from_secs(3),
        statement_timeout: Duration::from_secs(5),
        checkout_timeout: Duration::from_secs(2),
        max_lifetime: Duration::from_secs(600),
    }
}

async fn verify_err(dsn: &str) -> String {
    let target = DbTarget::parse(dsn).unwrap();
    match build_and_verify(&target, &settings(), 1).await {
        Ok(_) => panic!("a pool was built for {dsn}"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test]
async fn no_client_certificate_is_refused_with_a_clear_error() {
    let pg = postgres();
    let dsn = format!(
        "postgresql://app@localhost:{}/app?sslmode=verify-full&sslrootcert={}",
        pg.port,
        pg.ca_file.display()
    );
    let e = verify_err(&dsn).await;
    assert!(
        e.contains("requires a valid client certificate") && e.contains("SQLSTATE 28000"),
        "{e}"
    );
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let pg = postgres();
    let other = Ca::new("some other CA", KeyType::Ecdsa).unwrap();
    let dir = pg.scratch();
    write_pair(&dir, &other.issue(&LeafSpec::client("app")).unwrap(), &other.cert_pem);
    let e = verify_err(&pg.dsn("app", &dir)).await;
    assert!(
        e.starts_with(&format!("cannot connect to localhost:{} as app:", pg.port)),
        "{e}"
    );
    assert!(
        e.contains("UnknownCA") && e.contains("the database does not trust the client certificate"),
        "{e}"
    );
}

#[tokio::test]
async fn client_certificate_with_wrong_cn_is_refused() {
    let pg = postgres();
    let dir = pg.scratch();
    write_pair(
        &dir,
        &pg.ca.issue(&LeafSpec::client("mallory")).unwrap(),
        &pg.ca.cert_pem,
    );
    let e = verify_err(&pg.dsn("app", &dir)).await;
    assert!(e.contains("certificate authentication failed for user \"app\""), "{e}");
}

#[tokio::test]
async fn server_certificate_for_another_host_is_refused() {
    let pg = postgres();
    let (_dir, port) = extra_cluster(&["db.other.example"]);
    let e = verify_err(&pg.dsn_at("app", &pg.client_dir, port)).await;
    assert!(e.contains("does not name localhost"), "{e}");
}

#[tokio::test]
async fn server_certificate_from_unknown_ca_is_refused() {
    let pg = postgres();
    let other = Ca::new("some other CA", KeyType::Ecdsa).unwrap();
    let dir = pg.scratch();
    std::fs::write(dir.join("ca.crt"), &other.cert_pem).unwrap();
    let dsn = pg.dsn("app", &pg.client_dir).replace(
        &pg.ca_file.display().to_string(),
        &dir.join("ca.crt").display().to_string(),
    );
    let e = verify_err(&dsn).await;
    assert!(e.contains("not issued by a CA in sslrootcert"), "{e}");
}

#[tokio::test]
async fn missing_ca_file_names_the_file() {
    let pg = postgres();
    let dsn = pg
        .dsn("app", &pg.client_dir)
        .replace(&pg.ca_file.display().to_string(), "/nonexistent/ca.crt");
    let e = verify_err(&dsn).await;
    assert!(e.starts_with("/nonexistent/ca.crt: cannot read"), "{e}");
}

#[tokio::test]
async fn serialization_failures_are_retried_to_success() {
    let pg = postgres();
    let db = pg.create_db();
    pg.psql(
        &db,
        "CREATE TABLE slots (k INT8, who TEXT); ALTER TABLE slots OWNER TO app",
    );
    let target = DbTarget::parse(&pg.dsn(&db, &pg.client_dir)).unwrap();
    let pool = Arc::new(build_and_verify(&target, &settings(), 1).await.unwrap());
    let metrics = Arc::new(Metrics::new());
    // Both transactions read the same predicate, meet at the barrier, then write: a real
    // read/write dependency cycle that SERIALIZABLE must break with SQLSTATE 40001.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let attempts = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for who in ["a", "b"] {
        let (pool, metrics, barrier, attempts) = (pool.clone(), metrics.clone(), barrier.clone(), attempts.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            pool.transaction(&metrics, |tx| {
                let barrier = barrier.clone();
                let meet = std::mem::replace(&mut first, false);
                attempts.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    let n: i64 = tx
                        .query_one("SELECT count(*) FROM slots WHERE k = 1", &[])
                        .await?
                        .get(0);
                    if meet {
                        barrier.wait().await;
                    }
                    tx.execute("INSERT INTO slots VALUES (1, $1)", &[&format!("{who}{n}")])
                        .await?;
                    Ok(n)
                })
            })
            .await
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().expect("retried to success"));
    }
    seen.sort();
    assert_eq!(seen, vec![0, 1], "the retried transaction saw the other's row");
    assert!(attempts.load(Ordering::SeqCst) >= 3, "a retry happened");
    let text = metrics.render();
    assert!(
        text.contains(r#"tlsward_db_retries_total{reason="serialization_failure"} "#),
        "{text}"
    );
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM slots"), "2");
}

#[tokio::test]
async fn killed_backend_is_replaced_transparently_for_reads() {
    let pg = postgres();
    let db = pg.create_db();
    let target = DbTarget::parse(&pg.dsn(&db, &pg.client_dir)).unwrap();
    let pool = build_and_verify(
        &target,
        &PoolSettings {
            max_size: 1,
            ..settings()
        },
        1,
    )
    .await
    .unwrap();
    tlsward::db::users::migrate(&pool).await.unwrap();
    let metrics = Metrics::new();
    assert_eq!(tlsward::db::users::get(&pool, &metrics, 1).await.unwrap(), None);
    let killed = pg.psql(
        "postgres",
        &format!(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' AND usename = 'app'"
        ),
    );
    assert_eq!(killed, "1");
    assert_eq!(
        tlsward::db::users::get(&pool, &metrics, 1).await.unwrap(),
        None,
        "the read succeeds on a fresh connection"
    );
}

async fn status_of(s: &TestServer, path: &str) -> (u16, String, Duration) {
    let t = Instant::now();
    let resp = s
        .client
        .get(format!("{}{path}", s.base))
        .bearer_auth(s.token())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap();
    (status, body, t.elapsed())
}

#[tokio::test]
async fn database_outage_answers_503_fast_and_recovers_by_itself() {
    let pg = postgres();
    let mut proxy = Proxy::new(pg.port);
    let db = pg.create_db();
    let mut args = serve_args(&["--db-connect-timeout", "1s", "--db-checkout-timeout", "1s"]);
    args.db.db_url = Some(pg.dsn_at(&db, &pg.client_dir, proxy.port));
    let s = start_unready(args).await;
    let ready = |admin: String| async move {
        reqwest::get(format!("{admin}/readyz"))
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    };

    // Down from the start: not ready, 503 at once.
    assert!(!ready(s.admin.clone()).await);
    let (status, body, took) = status_of(&s, "/users/1").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("database_unavailable") && took < Duration::from_secs(3),
        "{body} {took:?}"
    );

    // The database comes up: the server verifies the pool and turns ready by itself.
    proxy.up().await;
    assert_eventually!(
        ready(s.admin.clone()).await,
        Duration::from_secs(20),
        "never became ready"
    );
    assert_eq!(status_of(&s, "/users/1").await.0, 404);

    // An outage with connections open: 503 within the timeouts, never a hang.
    proxy.down().await;
    let (status, body, took) = status_of(&s, "/users/1").await;
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Back again: requests succeed without restarting anything.
    proxy.up().await;
    let s_ref = &s;
    assert_eventually!(
        status_of(s_ref, "/users/1").await.0 == 404,
        Duration::from_secs(10),
        "did not recover"
    );
    s.running.shutdown().await;
}

/// Resumes a stopped cluster when dropped, so that a failed assertion never leaves it frozen.
struct Thaw<'a>(&'a std::path::Path);

impl Drop for Thaw<'_> {
    fn drop(&mut self) {
        support::signal_cluster(self.0, "CONT");
    }
}

#[tokio::test]
async fn a_frozen_database_answers_503_within_the_query_deadline_and_recovers_after_sigcont() {
    let (cluster, port) = extra_cluster(&["localhost", "127.0.0.1"]);
    let pg = postgres();
    let mut args = serve_args(&[
        "--db-statement-timeout",
        "1s",
        "--db-checkout-timeout",
        "1s",
        "--db-connect-timeout",
        "1s",
    ]);
    args.db.db_url = Some(pg.dsn_at("app", &pg.client_dir, port));
    let s = support::start(args).await;
    assert_eq!(status_of(&s, "/users/1").await.0, 404);

    support::signal_cluster(&cluster, "STOP");
    let thaw = Thaw(&cluster);
    // A connection is open and idle: the query is sent and never answered. The deadline is
    // the statement timeout (1 s) plus the 1 s margin.
    let (status, body, took) = status_of(&s, "/users/1").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("database_unavailable"), "{body}");
    assert!(took < Duration::from_millis(3500), "{took:?}");
    // The breaker is open: the next requests fail fast instead of waiting again.
    let (status, _, took) = status_of(&s, "/users/2").await;
    assert_eq!(status, 503);
    assert!(took < Duration::from_millis(1500), "{took:?}");

    drop(thaw);
    let s_ref = &s;
    assert_eventually!(
        status_of(s_ref, "/users/1").await.0 == 404,
        Duration::from_secs(15),
        "did not recover after SIGCONT"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_database_outage_logs_a_bounded_number_of_lines() {
    let (cluster, port) = extra_cluster(&["localhost", "127.0.0.1"]);
    let pg = postgres();
    let child = support::spawn_serve(
        &pg.dsn_at("app", &pg.client_dir, port),
        &["--db-connect-timeout", "1s", "--db-checkout-timeout", "1s"],
    )
    .await;
    support::stop_cluster(&cluster);
    let client = support::client_for(format!("127.0.0.1:{}", child.port).parse().unwrap());
    let token = tlsward::token::TokenKeys::load_dir(&pg.token_dir).unwrap().issue(
        "t",
        Duration::from_secs(300),
        tlsward::util::now_unix(),
    );
    let url = format!("https://localhost:{}/users/1", child.port);
    let mut unavailable = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(4) {
        let r = client.get(&url).bearer_auth(&token).send().await.unwrap();
        if r.status() == 503 {
            unavailable += 1;
        }
    }
    assert!(
        unavailable >= 50,
        "only {unavailable} requests in 4 s: not failing fast"
    );
    let log = child.log.lock().unwrap().clone();
    let lines = log.lines().filter(|l| l.contains("database unavailable")).count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} lines for {unavailable} failed requests:\n{log}"
    );
    assert!(log.lines().count() < 40, "{log}");
}
