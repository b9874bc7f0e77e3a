//! `make soak`: the release binary for SOAK_SECONDS (600) on loopback with everything at once:
//! API load on keep-alive and on new connections, a server-certificate rotation every 5 s, a
//! DB client-certificate rotation every 30 s, a PostgreSQL restart and a SIGSTOP/SIGCONT, a
//! slowloris of 500 connections, a garbage-method flood and, every minute, a connection
//! flood beyond the cap. RSS and open fds are sampled every 10 s.
//!
//! It fails (exit 1) if a non-hostile request fails outside the windows where failing is
//! the right answer (the database down, plus 15 s to recover; for new connections also the
//! cap floods, where the cap is doing its job), if RSS after the second minute exceeds the
//! highest RSS of minutes 1–2 by more than 20 %, or if the process exits. Results go to
//! `bench/soak-results.md`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{header, write_results};
use tlsward::pki::{Ca, KeyType, LeafSpec, write_secret_dir};
use tlsward_testkit::pg::pg_sh as pg;
use tlsward_testkit::{free_port, kubelet};
use tokio::io::AsyncWriteExt;

const MAX_CONNECTIONS: usize = 1500;
const SLOWLORIS: usize = 500;
const KEEPALIVE_CLIENTS: usize = 8;
const NEW_CONN_CLIENTS: usize = 2;
const RECOVERY: Duration = Duration::from_secs(15);
const FLOOD_EVERY: Duration = Duration::from_secs(60);
const FLOOD_FOR: Duration = Duration::from_secs(15);

fn release_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"), PathBuf::from);
    let bin = target.join("release/tlsward");
    assert!(bin.exists(), "{} not found: run make release", bin.display());
    bin
}

/// Seconds since the start of the soak.
#[derive(Clone)]
struct Clock(Instant);

impl Clock {
    fn now(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}

/// Time windows (seconds since start) in which failures of a kind are expected.
#[derive(Default)]
struct Windows(Mutex<Vec<(&'static str, f64, f64)>>);

impl Windows {
    fn add(&self, kind: &'static str, from: f64, to: f64) {
        self.0.lock().unwrap().push((kind, from, to));
    }

    fn covering(&self, t: f64, kinds: &[&str]) -> Option<&'static str> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(k, a, b)| kinds.contains(k) && t >= *a && t <= *b)
            .map(|(k, _, _)| *k)
    }
}

/// One failed request: seconds since the start, `status` or `transport`, the detail.
type Failure = (f64, &'static str, String);

/// Outcomes of the non-hostile clients: every failure with its time and what it was.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

struct Ctx {
    clock: Clock,
    stop: AtomicBool,
    port: u16,
    token: String,
    ca_pem: String,
    keepalive: Tally,
    fresh: Tally,
    windows: Windows,
    hostile_requests: AtomicU64,
    refused_by_cap: AtomicU64,
}

fn client(ctx: &Ctx, keepalive: bool) -> reqwest::Client {
    let b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(ctx.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], ctx.port).into())
        .timeout(Duration::from_secs(10))
        .http1_only();
    let b = if keepalive { b } else { b.pool_max_idle_per_host(0) };
    b.build().unwrap()
}

async fn api_client(ctx: Arc<Ctx>, keepalive: bool) {
    let mut c = client(&ctx, keepalive);
    let tally = if keepalive { &ctx.keepalive } else { &ctx.fresh };
    while !ctx.stop.load(Ordering::Relaxed) {
        if !keepalive {
            c = client(&ctx, false);
        }
        let id = rand::random_range(1..=1000);
        let url = format!("https://localhost:{}/users/{id}", ctx.port);
        let t = ctx.clock.now();
        match c.get(url).bearer_auth(&ctx.token).send().await {
            Ok(r) if r.status() == 200 => {
                let _ = r.bytes().await;
                tally.ok.fetch_add(1, Ordering::Relaxed);
            }
            Ok(r) => tally
                .failures
                .lock()
                .unwrap()
                .push((t, "status", r.status().to_string())),
            Err(e) => tally.failures.lock().unwrap().push((t, "transport", format!("{e:#}"))),
        }
        if !keepalive {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn tls_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in tlsward::tls::material::parse_certs(Path::new("ca"), ca_pem.as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

async fn tls(
    port: u16,
    config: &Arc<rustls::ClientConfig>,
) -> Option<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(config.clone())
        .connect(name, tcp)
        .await
        .ok()
}

/// One slowloris connection, again and again: TLS, then a header line every 2 s, never done.
async fn slowloris(ctx: Arc<Ctx>) {
    let config = tls_config(&ctx.ca_pem);
    while !ctx.stop.load(Ordering::Relaxed) {
        let Some(mut s) = tls(ctx.port, &config).await else {
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        };
        if s.write_all(b"GET /users/1 HTTP/1.1\r\nHost: localhost\r\n")
            .await
            .is_err()
        {
            continue;
        }
        while !ctx.stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if s.write_all(b"X-Slow: 1\r\n").await.is_err() || s.flush().await.is_err() {
                break;
            }
        }
    }
}

/// Requests with made-up methods and paths, as fast as one keep-alive connection goes.
async fn garbage(ctx: Arc<Ctx>) {
    let c = client(&ctx, true);
    let mut i = 0u64;
    while !ctx.stop.load(Ordering::Relaxed) {
        i += 1;
        let method = reqwest::Method::from_bytes(format!("G{i}").as_bytes()).unwrap();
        let _ = c
            .request(method, format!("https://localhost:{}/x{i}", ctx.port))
            .send()
            .await;
        ctx.hostile_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// Every minute, for 15 s: open and hold TLS connections until the cap refuses them.
async fn cap_flood(ctx: Arc<Ctx>) {
    let config = tls_config(&ctx.ca_pem);
    tokio::time::sleep(FLOOD_EVERY / 2).await;
    while !ctx.stop.load(Ordering::Relaxed) {
        let from = ctx.clock.now();
        ctx.windows.add("cap_flood", from, from + FLOOD_FOR.as_secs_f64() + 1.0);
        let mut held = Vec::new();
        let until = Instant::now() + FLOOD_FOR;
        while Instant::now() < until && !ctx.stop.load(Ordering::Relaxed) {
            let batch = futures_util::future::join_all((0..50).map(|_| tls(ctx.port, &config))).await;
            let refused = batch.iter().filter(|s| s.is_none()).count() as u64;
            ctx.refused_by_cap.fetch_add(refused, Ordering::Relaxed);
            held.extend(batch.into_iter().flatten());
            if refused > 0 {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        drop(held);
        tokio::time::sleep(FLOOD_EVERY - FLOOD_FOR).await;
    }
}

struct Sample {
    t: f64,
    rss_kib: u64,
    fds: usize,
}

fn sample(pid: u32, t: f64) -> Option<Sample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status.lines().find_map(|l| {
        l.strip_prefix("VmRSS:")
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
    })?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    Some(Sample { t, rss_kib, fds })
}

fn write_client_cert(ca: &Ca, dir: &Path) {
    let c = ca.issue(&LeafSpec::client("app")).unwrap();
    let files: [(&str, &[u8]); 3] = [
        ("ca.crt", ca.cert_pem.as_bytes()),
        ("tls.crt", c.cert_pem.as_bytes()),
        ("tls.key", c.key_pem.as_bytes()),
    ];
    kubelet::write(dir, &files);
}

fn write_server_cert(ca: &Ca, dir: &Path) {
    let c = ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let files: [(&str, &[u8]); 2] = [("tls.crt", c.cert_pem.as_bytes()), ("tls.key", c.key_pem.as_bytes())];
    kubelet::write(dir, &files);
}

/// The rotations and the two outages, on the soak's own schedule.
async fn faults(
    ctx: Arc<Ctx>,
    ca: Arc<Ca>,
    dirs: (PathBuf, PathBuf),
    cluster: PathBuf,
    db: (u16, PathBuf),
    total: f64,
) {
    let (server_dir, client_dir) = dirs;
    let (db_port, node_dir) = db;
    let mut restarted = false;
    let mut frozen = false;
    let (mut next_server, mut next_client) = (5.0, 30.0);
    while !ctx.stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let t = ctx.clock.now();
        if t >= next_server {
            write_server_cert(&ca, &server_dir);
            next_server += 5.0;
        }
        if t >= next_client {
            write_client_cert(&ca, &client_dir);
            next_client += 30.0;
        }
        if !restarted && t >= total * 0.3 {
            restarted = true;
            let from = ctx.clock.now();
            let dir = cluster.display().to_string();
            pg_blocking(vec!["stop".into(), dir.clone()]).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
            pg_blocking(vec![
                "start".into(),
                dir,
                db_port.to_string(),
                node_dir.display().to_string(),
            ])
            .await;
            ctx.windows
                .add("db_restart", from, ctx.clock.now() + RECOVERY.as_secs_f64());
        }
        if !frozen && t >= total * 0.6 {
            frozen = true;
            let from = ctx.clock.now();
            signal_cluster(&cluster, "STOP");
            tokio::time::sleep(Duration::from_secs(10)).await;
            signal_cluster(&cluster, "CONT");
            ctx.windows
                .add("db_frozen", from, ctx.clock.now() + RECOVERY.as_secs_f64());
        }
    }
}

/// Sends `signal` to the postmaster and every child of it (from `/proc`).
fn signal_cluster(cluster: &Path, signal: &str) {
    let pid_file = std::fs::read_to_string(cluster.join("data/postmaster.pid")).unwrap();
    let postmaster = pid_file.lines().next().unwrap().trim().to_string();
    let mut pids = vec![postmaster.clone()];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1));
        if ppid == Some(postmaster.as_str()) {
            pids.push(entry.file_name().to_string_lossy().to_string());
        }
    }
    Command::new("kill")
        .arg(format!("-{signal}"))
        .args(&pids)
        .status()
        .unwrap();
}

/// `pg` off the async threads (a start or stop takes a moment).
async fn pg_blocking(args: Vec<String>) {
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        pg(&refs);
    })
    .await
    .unwrap();
}

struct Setup {
    work: tempfile::TempDir,
    ca: Arc<Ca>,
    cluster: PathBuf,
    db_port: u16,
    node: PathBuf,
    server_dir: PathBuf,
    client_dir: PathBuf,
    tokens: PathBuf,
}

fn setup() -> Setup {
    let work = tempfile::Builder::new().prefix("tlsward-soak-").tempdir().unwrap();
    let w = work.path().to_path_buf();
    std::fs::set_permissions(&w, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let ca = Arc::new(Ca::new("soak CA", KeyType::Ecdsa).unwrap());
    let node = w.join("node");
    let node_cert = ca
        .issue(&LeafSpec::server("node", &["localhost", "127.0.0.1"]))
        .unwrap();
    write_secret_dir(&node, &node_cert, &ca.cert_pem).unwrap();
    let server_dir = w.join("server");
    write_server_cert(&ca, &server_dir);
    let client_dir = w.join("db-client");
    write_client_cert(&ca, &client_dir);
    let tokens = w.join("tokens");
    tlsward::pki::write_file(&tokens.join("k1"), &tlsward::token::generate_key_text(), true).unwrap();
    let db_port = free_port();
    let cluster = w.join("pg");
    pg(&[
        "start",
        cluster.to_str().unwrap(),
        &db_port.to_string(),
        node.to_str().unwrap(),
        "--watch-pid",
        &std::process::id().to_string(),
    ]);
    Setup {
        work,
        ca,
        cluster,
        db_port,
        node,
        server_dir,
        client_dir,
        tokens,
    }
}

/// A token that outlives the soak (the server's limit is raised to match).
fn token_ttl(total: f64) -> Duration {
    Duration::from_secs_f64(total + 600.0).min(tlsward::token::MAX_TTL)
}

fn spawn_server(s: &Setup, port: u16, admin: u16, total: f64) -> std::process::Child {
    let dsn = format!(
        "postgresql://app@localhost:{port}/app?sslmode=verify-full&sslrootcert={dir}/ca.crt&sslcert={dir}/tls.crt&sslkey={dir}/tls.key",
        dir = s.client_dir.display(),
        port = s.db_port
    );
    let log = std::fs::File::create(s.work.path().join("server.log")).unwrap();
    Command::new(release_binary())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(["--tls-dir", s.server_dir.to_str().unwrap()])
        .args(["--token-key-dir", s.tokens.to_str().unwrap()])
        .args(["--db-url", &dsn, "--kube-events", "off"])
        .args([
            "--max-connections",
            &MAX_CONNECTIONS.to_string(),
            "--header-timeout",
            "5s",
        ])
        .args(["--db-statement-timeout", "2s", "--db-connect-timeout", "2s"])
        .args(["--token-max-ttl", &format!("{}s", token_ttl(total).as_secs())])
        .env("TLSWARD_LOG", "warn")
        .stderr(log)
        .spawn()
        .unwrap()
}

async fn wait_ready(admin: u16) {
    let t0 = Instant::now();
    loop {
        let r = reqwest::get(format!("http://127.0.0.1:{admin}/readyz")).await;
        if r.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "the server never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tlsward::install_crypto_provider();
    let total: f64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600.0);
    let s = setup();
    let (port, admin) = (free_port(), free_port());
    let mut server = spawn_server(&s, port, admin, total);
    wait_ready(admin).await;
    pg(&[
        "psql",
        s.cluster.to_str().unwrap(),
        "-d",
        "app",
        "-c",
        "INSERT INTO users (id, username, email) SELECT g, 'user' || g, 'user' || g || '@example.com' FROM generate_series(1, 1000) g ON CONFLICT DO NOTHING",
    ]);
    let keys = tlsward::token::TokenKeys::load_dir(&s.tokens).unwrap();
    let token = keys.issue("soak", token_ttl(total), tlsward::util::now_unix());
    let ctx = Arc::new(Ctx {
        clock: Clock(Instant::now()),
        stop: AtomicBool::new(false),
        port,
        token,
        ca_pem: s.ca.cert_pem.clone(),
        keepalive: Tally::default(),
        fresh: Tally::default(),
        windows: Windows::default(),
        hostile_requests: AtomicU64::new(0),
        refused_by_cap: AtomicU64::new(0),
    });
    let mut tasks = Vec::new();
    for _ in 0..KEEPALIVE_CLIENTS {
        tasks.push(tokio::spawn(api_client(ctx.clone(), true)));
    }
    for _ in 0..NEW_CONN_CLIENTS {
        tasks.push(tokio::spawn(api_client(ctx.clone(), false)));
    }
    for _ in 0..SLOWLORIS {
        tasks.push(tokio::spawn(slowloris(ctx.clone())));
    }
    tasks.push(tokio::spawn(garbage(ctx.clone())));
    tasks.push(tokio::spawn(cap_flood(ctx.clone())));
    tasks.push(tokio::spawn(faults(
        ctx.clone(),
        s.ca.clone(),
        (s.server_dir.clone(), s.client_dir.clone()),
        s.cluster.clone(),
        (s.db_port, s.node.clone()),
        total,
    )));
    let mut samples = Vec::new();
    let mut exited = None;
    while ctx.clock.now() < total {
        tokio::time::sleep(Duration::from_secs(10)).await;
        if let Some(status) = server.try_wait().unwrap() {
            exited = Some(status);
            break;
        }
        if let Some(x) = sample(server.id(), ctx.clock.now()) {
            println!("t={:.0}s rss={} KiB fds={}", x.t, x.rss_kib, x.fds);
            samples.push(x);
        }
    }
    ctx.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.abort();
    }
    let metrics = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .map(|r| r.status().is_success())
        .unwrap_or(false);
    let _ = server.kill();
    let _ = server.wait();
    let verdict = report(&ctx, &samples, exited, metrics, total);
    pg(&["destroy", s.cluster.to_str().unwrap()]);
    if !verdict {
        std::process::exit(1);
    }
}

/// Failures of `tally` outside the windows of `kinds`, and the count inside each kind.
fn classify(ctx: &Ctx, tally: &Tally, kinds: &[&str]) -> (Vec<Failure>, Vec<(&'static str, usize)>) {
    let mut outside = Vec::new();
    let mut inside: Vec<(&'static str, usize)> = Vec::new();
    for (t, what, detail) in tally.failures.lock().unwrap().iter() {
        match ctx.windows.covering(*t, kinds) {
            Some(k) => match inside.iter_mut().find(|(n, _)| *n == k) {
                Some((_, c)) => *c += 1,
                None => inside.push((k, 1)),
            },
            None => outside.push((*t, *what, detail.clone())),
        }
    }
    (outside, inside)
}

fn report(ctx: &Ctx, samples: &[Sample], exited: Option<std::process::ExitStatus>, metrics: bool, total: f64) -> bool {
    let outages = ["db_restart", "db_frozen"];
    let (ka_out, ka_in) = classify(ctx, &ctx.keepalive, &outages);
    let (fresh_out, fresh_in) = classify(ctx, &ctx.fresh, &["db_restart", "db_frozen", "cap_flood"]);
    let baseline = samples
        .iter()
        .filter(|x| (60.0..=120.0).contains(&x.t))
        .map(|x| x.rss_kib)
        .max()
        .unwrap_or(0);
    let worst = samples
        .iter()
        .filter(|x| x.t > 120.0)
        .map(|x| x.rss_kib)
        .max()
        .unwrap_or(0);
    let rss_ok = baseline == 0 || worst as f64 <= baseline as f64 * 1.2;
    let pass = ka_out.is_empty() && fresh_out.is_empty() && rss_ok && exited.is_none() && metrics;
    let mut o = header("Soak: ten minutes of everything at once", "soak", "soak");
    o.push_str(&format!(
        "{total:.0} s on loopback against the release binary (`--max-connections {MAX_CONNECTIONS}`, `--header-timeout 5s`, `--db-statement-timeout 2s`): {KEEPALIVE_CLIENTS} keep-alive and {NEW_CONN_CLIENTS} new-connection API clients (`GET /users/{{1..1000}}` with a token), a server-certificate rotation every 5 s and a DB client-certificate rotation every 30 s (kubelet-style swaps), a PostgreSQL restart at {:.0} s (5 s down) and a SIGSTOP of every PostgreSQL process at {:.0} s (10 s), a slowloris of {SLOWLORIS} connections, a garbage-method flood, and every minute a {}-s flood of held connections beyond the cap. Failures are expected only in the DB outage windows (+{} s to recover) and, for new connections, in the cap floods.\n\n**Verdict: {}.**\n\n",
        total * 0.3,
        total * 0.6,
        FLOOD_FOR.as_secs(),
        RECOVERY.as_secs(),
        if pass { "pass" } else { "FAIL" }
    ));
    o.push_str(
        "| clients | served | failed outside the windows | failed inside, by window |\n| --- | --- | --- | --- |\n",
    );
    let fmt_in = |v: &[(&str, usize)]| {
        if v.is_empty() {
            "0".to_string()
        } else {
            v.iter()
                .map(|(k, c)| format!("{k}: {c}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    o.push_str(&format!(
        "| keep-alive | {} | {} | {} |\n| new connection | {} | {} | {} |\n\n",
        ctx.keepalive.ok.load(Ordering::Relaxed),
        ka_out.len(),
        fmt_in(&ka_in),
        ctx.fresh.ok.load(Ordering::Relaxed),
        fresh_out.len(),
        fmt_in(&fresh_in)
    ));
    for (t, what, d) in ka_out.iter().chain(&fresh_out).take(10) {
        o.push_str(&format!("- unexpected failure at {t:.1} s ({what}): {d}\n"));
    }
    o.push_str(&format!(
        "Hostile: {} garbage-method requests; {} connections closed at once by the cap during the floods.\n\n",
        ctx.hostile_requests.load(Ordering::Relaxed),
        ctx.refused_by_cap.load(Ordering::Relaxed)
    ));
    o.push_str(&format!(
        "RSS: highest in minutes 1–2 {} KiB, highest after minute 2 {} KiB ({}; limit +20 %). The process {}; `/metrics` {} at the end.\n\n",
        baseline,
        worst,
        if rss_ok { "ok" } else { "grew" },
        exited.map_or_else(|| "kept running".to_string(), |s| format!("exited: {s}")),
        if metrics { "answered" } else { "did not answer" }
    ));
    o.push_str("| t (s) | RSS (KiB) | open fds |\n| ---: | ---: | ---: |\n");
    for x in samples {
        o.push_str(&format!("| {:.0} | {} | {} |\n", x.t, x.rss_kib, x.fds));
    }
    write_results("soak-results.md", &o);
    pass
}
