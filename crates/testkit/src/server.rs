//! tlsward in the test process: `serve`'s arguments as the command line makes them (on
//! ephemeral loopback ports, against the shared PostgreSQL), the running server with a client
//! that trusts the test CA, and a steady request load against it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use tlsward::cli::{Cli, Command as Sub, ServeArgs};
use tlsward::server::Running;

use crate::metrics::metrics_of;
use crate::pg::postgres;

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
    crate::assert_eventually!(
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
