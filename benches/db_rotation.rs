//! `make bench-db-rotation`: requests per second and p99 of `GET /users/{id}` while the DB
//! client certificate rotates every second (each rotation: a new pool built, verified and
//! published, the old one drained), against the same load with no rotation: [`ROUNDS`]
//! rounds of both phases, alternating which goes first, reported as medians with min–max.
//! Real PostgreSQL with TLS and client-certificate auth (scripts/pg.sh), 10,000 users.
//! Results go to `bench/db-rotation-results.md`.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{header, percentile, write_results};
use tlsward::pki::{Ca, KeyType, LeafSpec, write_secret_dir};
use tlsward_testkit::pg::pg_sh as pg;
use tlsward_testkit::{free_port, kubelet};

const CONNS: usize = 32;
const WARMUP: Duration = Duration::from_secs(3);
const PHASE: Duration = Duration::from_secs(15);
const ROUNDS: usize = 3;

struct Phase {
    reqs: u64,
    errors: u64,
    elapsed: Duration,
    lat: Vec<Duration>,
}

async fn load(base: &str, token: &str, ca_pem: &str, addr: std::net::SocketAddr, dur: Duration) -> Phase {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CONNS {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .resolve("localhost", addr)
            .http1_only()
            .build()
            .unwrap();
        let (base, token, stop, errors) = (base.to_string(), token.to_string(), stop.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let id = rand::random_range(1..=10_000);
                let t = Instant::now();
                match client
                    .get(format!("{base}/users/{id}"))
                    .bearer_auth(&token)
                    .send()
                    .await
                {
                    Ok(r) if r.status() == 200 => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed());
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let start = Instant::now();
    tokio::time::sleep(dur).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    lat.sort();
    Phase {
        reqs: lat.len() as u64,
        errors: errors.load(Ordering::Relaxed),
        elapsed,
        lat,
    }
}

impl Phase {
    fn rps(&self) -> f64 {
        self.reqs as f64 / self.elapsed.as_secs_f64()
    }

    fn p99_ms(&self) -> f64 {
        percentile(&self.lat, 0.99).as_secs_f64() * 1e3
    }
}

/// `median (min–max)` of `values`, formatted by `fmt`.
fn spread(mut values: Vec<f64>, fmt: impl Fn(f64) -> String) -> String {
    values.sort_by(f64::total_cmp);
    format!(
        "{} ({}–{})",
        fmt(median(&values)),
        fmt(values[0]),
        fmt(values[values.len() - 1])
    )
}

fn median(sorted: &[f64]) -> f64 {
    sorted[sorted.len() / 2]
}

/// The median over `phases` of `f`.
fn median_of(phases: &[Phase], f: fn(&Phase) -> f64) -> f64 {
    let mut values: Vec<f64> = phases.iter().map(f).collect();
    values.sort_by(f64::total_cmp);
    median(&values)
}

fn row(name: &str, phases: &[Phase]) -> String {
    let p50 = phases
        .iter()
        .map(|p| percentile(&p.lat, 0.5).as_secs_f64() * 1e3)
        .collect();
    format!(
        "| {name} | {} | {} | {} | {} |\n",
        spread(phases.iter().map(Phase::rps).collect(), |v| format!("{v:.0}")),
        spread(p50, |v| format!("{v:.2}")),
        spread(phases.iter().map(Phase::p99_ms).collect(), |v| format!("{v:.2}")),
        phases.iter().map(|p| p.errors).sum::<u64>()
    )
}

/// Writes a new client certificate for `app` into the DB Secret directory, kubelet-style.
fn write_client(ca: &Ca, dir: &Path) {
    let c = ca.issue(&LeafSpec::client("app")).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("ca.crt", ca.cert_pem.as_bytes()),
        ("tls.crt", c.cert_pem.as_bytes()),
        ("tls.key", c.key_pem.as_bytes()),
    ];
    kubelet::write(dir, &files);
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        })
        .unwrap_or(0)
}

/// One phase of load while a new client certificate is written every second; returns the
/// phase and the number of certificates written.
async fn rotating(base: &str, token: &str, ca: &Arc<Ca>, dir: &Path, addr: std::net::SocketAddr) -> (Phase, usize) {
    let on = Arc::new(AtomicBool::new(true));
    let rotator = {
        let (on, ca, dir) = (on.clone(), ca.clone(), dir.to_path_buf());
        tokio::task::spawn_blocking(move || {
            let mut written = 0;
            while on.load(Ordering::Relaxed) {
                write_client(&ca, &dir);
                written += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
            written
        })
    };
    let phase = load(base, token, &ca.cert_pem, addr, PHASE).await;
    on.store(false, Ordering::Relaxed);
    (phase, rotator.await.unwrap())
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tlsward::install_crypto_provider();
    let work = tempfile::Builder::new().prefix("tlsward-bench-").tempdir().unwrap();
    let w = work.path();
    std::fs::set_permissions(w, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ca = Arc::new(Ca::new("bench CA", KeyType::Ecdsa).unwrap());
    let node = w.join("node");
    write_secret_dir(
        &node,
        &ca.issue(&LeafSpec::server("node", &["localhost", "127.0.0.1"]))
            .unwrap(),
        &ca.cert_pem,
    )
    .unwrap();
    let server_dir = w.join("server");
    write_secret_dir(
        &server_dir,
        &ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap(),
        &ca.cert_pem,
    )
    .unwrap();
    let tokens = w.join("tokens");
    tlsward::pki::write_file(&tokens.join("k1"), &tlsward::token::generate_key_text(), true).unwrap();
    let db_secret = w.join("db-client");
    write_client(&ca, &db_secret);
    let port = free_port();
    let cluster = w.join("pg");
    pg(&[
        "start",
        cluster.to_str().unwrap(),
        &port.to_string(),
        node.to_str().unwrap(),
        "--watch-pid",
        &std::process::id().to_string(),
    ]);

    let dsn = format!(
        "postgresql://app@localhost:{port}/app?sslmode=verify-full&sslrootcert={0}/ca.crt&sslcert={0}/tls.crt&sslkey={0}/tls.key",
        db_secret.display()
    );
    let running = common::serve(&[
        "--tls-dir",
        server_dir.to_str().unwrap(),
        "--token-key-dir",
        tokens.to_str().unwrap(),
        "--db-url",
        &dsn,
    ])
    .await;
    let ready = Instant::now();
    while running.db().current().is_none() {
        assert!(ready.elapsed() < Duration::from_secs(30), "the pool was never verified");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    pg(&[
        "psql",
        cluster.to_str().unwrap(),
        "-d",
        "app",
        "-c",
        "INSERT INTO users (id, username, email) SELECT g, 'user' || g, 'user' || g || '@example.com' FROM generate_series(1, 10000) g ON CONFLICT DO NOTHING; ANALYZE users",
    ]);
    let token = running
        .snapshots()
        .load()
        .token_keys
        .as_ref()
        .expect("serve has token keys")
        .issue("bench", Duration::from_secs(600), tlsward::util::now_unix());
    let base = format!("https://localhost:{}", running.tls_addr.port());
    let addr = running.tls_addr;

    load(&base, &token, &ca.cert_pem, addr, WARMUP).await;
    let rss_before = rss_kib();
    let gen_before = running.db().current().as_ref().map_or(0, |p| p.generation);
    let (mut steady, mut rotated, mut rotations) = (Vec::new(), Vec::new(), 0);
    for round in 0..ROUNDS {
        // Odd rounds rotate first, so that neither phase always follows the other.
        for rotate in [round % 2 == 1, round % 2 == 0] {
            if rotate {
                let (phase, n) = rotating(&base, &token, &ca, &db_secret, addr).await;
                rotated.push(phase);
                rotations += n;
            } else {
                steady.push(load(&base, &token, &ca.cert_pem, addr, PHASE).await);
            }
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gen_after = running.db().current().as_ref().map_or(0, |p| p.generation);
    let rss_after = rss_kib();
    let conns = pg(&[
        "psql",
        cluster.to_str().unwrap(),
        "-d",
        "app",
        "-tA",
        "-c",
        "SELECT application_name, count(*) FROM pg_stat_activity WHERE usename = 'app' GROUP BY 1 ORDER BY 1",
    ]);
    running.shutdown().await;
    pg(&["destroy", cluster.to_str().unwrap()]);

    let mut out = header(
        "DB client-certificate rotation under load",
        "bench-db-rotation",
        "db_rotation",
    );
    out.push_str(&format!(
        "Load: {CONNS} keep-alive HTTPS/1.1 connections from the benchmark's own process (reqwest, sharing the 2 cores with the server), `GET /users/{{random 1..10000}}` with a bearer token, {}s per phase after a {}s warm-up; PostgreSQL 15 on loopback with TLS and client-certificate auth (`sslmode=verify-full`), pool size 16. In the rotation phase a new client certificate is written kubelet-style every second; each one makes tlsward build, verify (`SELECT 1`) and publish a new pool while the old one drains.\n\n",
        PHASE.as_secs(),
        WARMUP.as_secs()
    ));
    out.push_str(&format!(
        "{ROUNDS} rounds of both phases, alternating which goes first; median (min–max) of the rounds.\n\n"
    ));
    out.push_str("| phase | req/s | p50 ms | p99 ms | errors |\n| --- | --- | --- | --- | --- |\n");
    out.push_str(&row("no rotation", &steady));
    out.push_str(&row(
        &format!("client cert rotated every 1 s ({rotations} rotations in all)"),
        &rotated,
    ));
    let per_round: Vec<String> = steady
        .iter()
        .zip(&rotated)
        .map(|(s, r)| format!("{:.3}", r.rps() / s.rps()))
        .collect();
    out.push_str(&format!(
        "\nThroughput with rotation / without (medians): **{:.3}** (per round: {}); p99 {:.2} ms vs {:.2} ms. Pool generations: {} → {} ({} published). Process RSS (server and load generator together): {} MiB before, {} MiB after.\n\nServer-side connections by `application_name` (`tlsward/g<generation>`) after the run:\n\n```\n{conns}\n```\n",
        median_of(&rotated, Phase::rps) / median_of(&steady, Phase::rps),
        per_round.join(", "),
        median_of(&rotated, Phase::p99_ms),
        median_of(&steady, Phase::p99_ms),
        gen_before,
        gen_after,
        gen_after - gen_before,
        rss_before / 1024,
        rss_after / 1024,
    ));
    write_results("db-rotation-results.md", &out);
}
