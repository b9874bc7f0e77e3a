//! The DB pool follows rotation of the database CA bundle and of the client certificate, live,
//! with no failed request, and survives the database restarting.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{
    Load, TestServer, TwoCaCluster, db_secret, extra_cluster_with, postgres, reload_status, secret_dsn, serve_args,
    start,
};
use tlsward::pki::{Ca, Issued, KeyType, LeafSpec};

const SOON: Duration = Duration::from_secs(15);

/// A server whose DB material is the kubelet-style directory `dir`.
async fn server(port: u16, db: &str, dir: &Path, extra: &[&str]) -> TestServer {
    let mut args = serve_args(extra);
    args.db.db_url = Some(secret_dsn(port, db, dir));
    start(args).await
}

async fn pool_status(s: &TestServer) -> Value {
    reload_status(&s.admin).await["db_pool"].clone()
}

async fn wait_generation(s: &TestServer, at_least: u64) {
    let admin = s.admin.clone();
    assert_eventually!(
        reload_status(&admin).await["db_pool"]["generation"]
            .as_u64()
            .unwrap_or(0)
            >= at_least,
        SOON,
        "pool generation {at_least} never published: {}",
        reload_status(&admin).await
    );
}

fn app_connections(db: &str) -> Vec<String> {
    let out = postgres().psql(
        "postgres",
        &format!("SELECT application_name FROM pg_stat_activity WHERE datname = '{db}' AND usename = 'app' ORDER BY 1"),
    );
    out.lines().map(str::to_string).filter(|l| !l.is_empty()).collect()
}

fn secret_dir() -> PathBuf {
    postgres().scratch().join("db-secret")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_pool_swaps_with_no_failed_request() {
    let pg = postgres();
    let db = pg.create_db();
    let dir = secret_dir();
    db_secret(&dir, &pg.ca.cert_pem, &pg.ca.issue(&LeafSpec::client("app")).unwrap());
    let s = server(pg.port, &db, &dir, &["--db-pool-size", "4"]).await;
    assert_eq!(pool_status(&s).await["generation"], 1);
    let load = Load::start(&s, "/users/1", 4);
    for i in 0..10u64 {
        db_secret(&dir, &pg.ca.cert_pem, &pg.ca.issue(&LeafSpec::client("app")).unwrap());
        wait_generation(&s, i + 2).await;
        served_more(&load, 5).await;
    }
    let (ok, failed, bad) = load.stop().await;
    assert_eq!(failed, 0, "failed requests: {bad:?}");
    assert!(ok > 50, "the load ran: {ok}");
    // The old pools drained: only connections of the newest certificate remain, no more than
    // the pool size.
    let newest = format!("tlsward/g{}", pool_status(&s).await["generation"]);
    assert_eventually!(
        app_connections(&db).iter().all(|a| *a == newest),
        SOON,
        "connections of old pools remain: {:?} (want only {newest})",
        app_connections(&db)
    );
    let conns = app_connections(&db);
    assert!(!conns.is_empty() && conns.len() <= 4, "{conns:?}");
    let metrics = s.metrics().await;
    assert!(
        support::metric(&metrics, r#"tlsward_db_pool_rebuild_total{outcome="applied"}"#) >= 11.0,
        "{metrics}"
    );
    assert_eq!(support::metric(&metrics, "tlsward_db_pool_generation"), 11.0);
    assert!(metrics.contains("tlsward_db_checkout_wait_seconds_bucket"), "{metrics}");
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_rotation_end_to_end_with_no_failed_request() {
    let c = TwoCaCluster::start();
    let (ca1, ca2, both, port) = (&c.old, &c.new, &c.both, c.port);
    let dir = secret_dir();
    db_secret(&dir, &ca1.cert_pem, &ca1.issue(&LeafSpec::client("app")).unwrap());
    let s = server(port, "app", &dir, &["--db-pool-size", "4"]).await;
    let load = Load::start(&s, "/users/1", 3);

    // 1. The bundle grows to old + new.
    db_secret(&dir, both, &ca1.issue(&LeafSpec::client("app")).unwrap());
    wait_generation(&s, 2).await;
    // 2. The database's certificate is re-issued by the new CA.
    c.serve_a_new_ca_certificate();
    // 3. A client certificate from the new CA, and the old CA leaves the bundle.
    db_secret(&dir, &ca2.cert_pem, &ca2.issue(&LeafSpec::client("app")).unwrap());
    wait_generation(&s, 3).await;
    served_more(&load, 20).await;
    let (ok, failed, bad) = load.stop().await;
    assert_eq!(failed, 0, "failed requests: {bad:?}");
    assert!(ok > 20, "{ok}");
    assert!(pool_status(&s).await["last_error"].is_null());
    s.running.shutdown().await;
}

async fn keeps_pool_on_bad_client_cert(bad: Issued, ca_pem: &str, where_: &str, reason: &str) {
    let pg = postgres();
    let db = pg.create_db();
    let dir = secret_dir();
    let good = pg.ca.issue(&LeafSpec::client("app")).unwrap();
    db_secret(&dir, &pg.ca.cert_pem, &good);
    let s = server(pg.port, &db, &dir, &[]).await;
    let load = Load::start(&s, "/users/1", 2);
    db_secret(&dir, ca_pem, &bad);
    let admin = s.admin.clone();
    if where_ == "pool" {
        assert_eventually!(
            reload_status(&admin).await["db_pool"]["last_outcome"] == "failed",
            SOON,
            "the bad certificate was not refused"
        );
        let err = pool_status(&s).await["last_error"].as_str().unwrap().to_string();
        assert!(err.contains(reason), "{err}");
        assert_eq!(pool_status(&s).await["generation"], 1, "the old pool keeps serving");
    } else {
        assert_eventually!(
            reload_status(&admin).await["materials"]["db_client"]["last_outcome"] == "rejected",
            SOON,
            "the bad certificate was not rejected"
        );
        let err = reload_status(&admin).await["materials"]["db_client"]["last_error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(err.contains(reason) && err.contains("tls."), "{err}");
    }
    let (_, failed, bad_responses) = load.stop().await;
    assert_eq!(failed, 0, "{bad_responses:?}");
    // A good certificate afterwards is applied.
    db_secret(&dir, &pg.ca.cert_pem, &pg.ca.issue(&LeafSpec::client("app")).unwrap());
    wait_generation(&s, 2).await;
    assert_eq!(pool_status(&s).await["last_outcome"], "applied");
    s.running.shutdown().await;
}

/// Waits until `load` has served `n` more requests than now (requests ran on what is current).
async fn served_more(load: &Load, n: u64) {
    use std::sync::atomic::Ordering;
    let from = load.ok.load(Ordering::Relaxed);
    assert_eventually!(
        load.ok.load(Ordering::Relaxed) >= from + n,
        Duration::from_secs(10),
        "the load did not get {n} more requests served"
    );
}

#[tokio::test]
async fn keeps_pool_on_client_cert_from_another_ca() {
    let other = Ca::new("other CA", KeyType::Ecdsa).unwrap();
    let bad = other.issue(&LeafSpec::client("app")).unwrap();
    keeps_pool_on_bad_client_cert(
        bad,
        &postgres().ca.cert_pem,
        "pool",
        "does not trust the client certificate",
    )
    .await;
}

#[tokio::test]
async fn keeps_pool_on_client_cert_with_wrong_cn() {
    let bad = postgres().ca.issue(&LeafSpec::client("mallory")).unwrap();
    keeps_pool_on_bad_client_cert(
        bad,
        &postgres().ca.cert_pem,
        "pool",
        "certificate authentication failed for user \"app\"",
    )
    .await;
}

#[tokio::test]
async fn keeps_pool_on_expired_client_cert() {
    let mut spec = LeafSpec::client("app");
    spec.not_before = time::Duration::days(-10);
    spec.not_after = time::Duration::days(-1);
    let bad = postgres().ca.issue(&spec).unwrap();
    keeps_pool_on_bad_client_cert(bad, &postgres().ca.cert_pem, "material", "certificate expired").await;
}

#[tokio::test]
async fn keeps_pool_on_client_key_mismatch() {
    let a = postgres().ca.issue(&LeafSpec::client("app")).unwrap();
    let b = postgres().ca.issue(&LeafSpec::client("app")).unwrap();
    let bad = Issued {
        cert_pem: a.cert_pem,
        key_pem: b.key_pem,
    };
    keeps_pool_on_bad_client_cert(bad, &postgres().ca.cert_pem, "material", "the key does not match").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn database_restart_under_load_fails_fast_and_recovers() {
    let pg = postgres();
    let node_dir = pg.scratch();
    support::write_pair(
        &node_dir,
        &pg.ca.issue(&LeafSpec::server("node", &["localhost"])).unwrap(),
        &pg.ca.cert_pem,
    );
    let (cluster, port) = extra_cluster_with(&node_dir);
    let mut args = serve_args(&[
        "--db-connect-timeout",
        "1s",
        "--db-checkout-timeout",
        "1s",
        "--db-unready-after",
        "1s",
        "--db-health-interval",
        "200ms",
    ]);
    args.db.db_url = Some(pg.dsn_at("app", &pg.client_dir, port));
    let s = start(args).await;
    let load = Load::start(&s, "/users/1", 3);
    served_more(&load, 10).await;
    support::stop_cluster(&cluster);
    // During the outage every request ends quickly with 503 database_unavailable.
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let r = s
            .client
            .get(format!("{}/users/1", s.base))
            .bearer_auth(s.token())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 503);
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        assert!(r.text().await.unwrap().contains("database_unavailable"));
    }
    // Unreachable for longer than --db-unready-after: not ready, with the reason.
    let admin = s.admin.clone();
    let readyz = |admin: String| async move {
        let r = reqwest::get(format!("{admin}/readyz")).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eventually!(
        readyz(admin.clone()).await.0 == 503,
        SOON,
        "readyz stayed 200 during the outage"
    );
    assert!(readyz(admin.clone()).await.1.contains("database unreachable"));
    support::restart_cluster(&cluster, port, &node_dir);
    assert_eventually!(readyz(admin.clone()).await.0 == 200, SOON, "readyz did not recover");
    let s_ref = &s;
    assert_eventually!(
        s_ref
            .client
            .get(format!("{}/users/1", s_ref.base))
            .bearer_auth(s_ref.token())
            .send()
            .await
            .unwrap()
            .status()
            == 404,
        SOON,
        "did not recover after the restart"
    );
    let (ok, _failed, bad) = load.stop().await;
    assert!(ok > 0);
    assert!(
        bad.iter()
            .all(|(code, body)| *code == 503 && body.contains("database_unavailable")),
        "only fast 503s during the outage: {bad:?}"
    );
    s.running.shutdown().await;
}
