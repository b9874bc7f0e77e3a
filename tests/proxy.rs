//! The proxy's forwarding against real upstreams on loopback TCP and a unix socket: headers
//! both ways, 502/504 as JSON, upgrades spliced, large bodies intact and streamed (the
//! binary's peak RSS stays flat); and `tlsward proxy`
//! itself, the binary, in front of an app (the TLS edge is the one `serve` uses and is tested
//! there in depth).

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::routing::{any, get};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use serde_json::{Value, json};
use tlsward::proxy::{Connection, Forwarder, ProxySettings, Upstream, service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bytes `/download` sends, in 64 KiB chunks.
const DOWNLOAD: usize = 48 << 20;
static CHUNK: [u8; 64 << 10] = [3; 64 << 10];

/// The app: echoes what it received; `/slow` answers after 3 s; `/size` counts the body as
/// it streams in; `/download` streams [`DOWNLOAD`] bytes.
fn app() -> axum::Router {
    axum::Router::new()
        .route(
            "/download",
            get(|| async {
                let chunks =
                    (0..DOWNLOAD / CHUNK.len()).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from_static(&CHUNK)));
                axum::body::Body::from_stream(futures_util::stream::iter(chunks))
            }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(3)).await;
                "late"
            }),
        )
        .route(
            "/size",
            any(|req: Request| async move {
                use futures_util::StreamExt;
                let mut body = req.into_body().into_data_stream();
                let mut n = 0;
                while let Some(chunk) = body.next().await {
                    n += chunk.unwrap().len();
                }
                n.to_string()
            }),
        )
        .fallback(|req: Request| async move {
            let headers: serde_json::Map<String, Value> = req
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v.to_str().unwrap_or(""))))
                .collect();
            let uri = req.uri().to_string();
            let method = req.method().to_string();
            let body = axum::body::to_bytes(req.into_body(), 1 << 20).await.unwrap();
            axum::Json(
                json!({"method": method, "uri": uri, "headers": headers, "body": String::from_utf8_lossy(&body)}),
            )
        })
}

async fn tcp_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app()).await.unwrap() });
    addr
}

/// The proxy's settings as `tlsward proxy` defaults them, to `upstream`.
fn settings(upstream: Upstream, response_timeout: Duration) -> ProxySettings {
    ProxySettings {
        upstream,
        connect_timeout: Duration::from_secs(2),
        response_timeout,
        idle_timeout: Duration::from_secs(4),
        max_body_bytes: 64 << 20,
        trusted: Vec::new(),
        require_token: None,
        health_path: None,
        unready_after: Duration::ZERO,
    }
}

/// The proxy on plain loopback TCP (forwarding only), one router per connection with its peer.
async fn proxy(upstream: Upstream, response_timeout: Duration) -> SocketAddr {
    proxy_with(settings(upstream, response_timeout)).await
}

async fn proxy_with(settings: ProxySettings) -> SocketAddr {
    let f = Arc::new(Forwarder::new(settings, None));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = l.accept().await.unwrap();
            let service = TowerToHyperService::new(service(f.clone(), Connection::new(peer.ip(), None)));
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

fn client() -> reqwest::Client {
    tlsward::install_crypto_provider();
    reqwest::Client::builder().build().unwrap()
}

#[tokio::test]
async fn a_request_reaches_the_app_with_forwarding_headers_and_without_hop_headers() {
    let app = tcp_app().await;
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_secs(5)).await;
    let r = client()
        .post(format!("http://{p}/users?limit=2"))
        .header("host", "api.example.com")
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["uri"], "/users?limit=2");
    assert_eq!(v["body"], "hello");
    let h = &v["headers"];
    assert_eq!(h["x-forwarded-for"], "127.0.0.1", "{h}");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["host"], "api.example.com");
    assert_eq!(h["forwarded"], "for=127.0.0.1;host=api.example.com;proto=https");
    assert!(h.get("x-hop").is_none(), "{h}");
}

/// The edge's own answer at `url`: `status`, JSON `{"error": code}`, the security headers.
async fn assert_edge_answer(url: String, status: u16, code: &str) {
    let r = client().get(url).send().await.unwrap();
    assert_eq!(r.status(), status);
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
}

#[tokio::test]
async fn an_app_that_cannot_be_reached_is_a_json_503() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let p = proxy(Upstream::Tcp(closed.to_string()), Duration::from_secs(5)).await;
    assert_edge_answer(format!("http://{p}/"), 503, "upstream_unavailable").await;
}

#[tokio::test]
async fn an_app_that_answers_too_late_is_a_json_504() {
    let app = tcp_app().await;
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_millis(500)).await;
    assert_edge_answer(format!("http://{p}/slow"), 504, "upstream_timeout").await;
}

#[tokio::test]
async fn a_unix_socket_app_is_reached() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("app.sock");
    let l = tokio::net::UnixListener::bind(&sock).unwrap();
    tokio::spawn(async move { axum::serve(l, app()).await.unwrap() });
    let p = proxy(Upstream::Unix(sock), Duration::from_secs(5)).await;
    let v: Value = client()
        .get(format!("http://{p}/x"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["uri"], "/x");
}

#[tokio::test]
async fn a_large_body_arrives_whole() {
    let app = tcp_app().await;
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_secs(10)).await;
    let body = vec![7u8; 10 << 20];
    let r = client()
        .put(format!("http://{p}/size"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), (10 << 20).to_string());
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_announced_or_streamed() {
    let app = tcp_app().await;
    let mut s = settings(Upstream::Tcp(app.to_string()), Duration::from_secs(10));
    s.max_body_bytes = 1 << 20;
    let p = proxy_with(s).await;
    let r = client()
        .put(format!("http://{p}/size"))
        .body(vec![1u8; (1 << 20) + 1])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "announced by Content-Length");
    assert_eq!(r.json::<Value>().await.unwrap()["error"]["code"], "payload_too_large");
    let chunks = futures_util::stream::iter(
        (0..24).map(|_| Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::from(vec![2u8; 64 << 10])))),
    );
    let r = client()
        .put(format!("http://{p}/size"))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "streamed (chunked), cut at the limit");
    let r = client()
        .put(format!("http://{p}/size"))
        .body(vec![1u8; 1 << 20])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.text().await.unwrap(),
        (1 << 20).to_string(),
        "a body at the limit passes"
    );
}

/// An app that counts the connections it accepts and answers every request at once.
async fn counting_app() -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = l.accept().await.unwrap();
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let service = TowerToHyperService::new(axum::Router::new().fallback(|| async { "ok" }));
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn an_upstream_connection_idle_past_the_idle_timeout_is_not_reused() {
    for (idle, want) in [(Duration::from_millis(200), 2), (Duration::from_secs(4), 1)] {
        let (app, accepted) = counting_app().await;
        let mut s = settings(Upstream::Tcp(app.to_string()), Duration::from_secs(5));
        s.idle_timeout = idle;
        let p = proxy_with(s).await;
        let c = client();
        for _ in 0..2 {
            assert_eq!(c.get(format!("http://{p}/")).send().await.unwrap().status(), 200);
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
        assert_eq!(
            accepted.load(std::sync::atomic::Ordering::SeqCst),
            want,
            "idle timeout {idle:?}"
        );
    }
}

#[tokio::test]
async fn a_request_head_over_max_header_bytes_is_431_on_http1_and_h2() {
    let app = tcp_app().await;
    let p = proxy_process(&format!("http://{app}"), &["--max-header-bytes", "8192"]).await;
    let big = "x".repeat(10_000);
    for h2 in [false, true] {
        let mut b = reqwest::Client::builder().add_root_certificate(reqwest::Certificate::from_pem(&p.ca).unwrap());
        b = if h2 { b.http2_prior_knowledge() } else { b.http1_only() };
        let r = b
            .build()
            .unwrap()
            .get(format!("https://localhost:{}/", p.port))
            .header("x-big", &big)
            .send()
            .await;
        match r {
            Ok(r) => assert_eq!(r.status(), 431, "h2: {h2}"),
            Err(e) => panic!("h2: {h2}: no answer: {e:?}"),
        }
    }
    let ok = tls_client(&p.ca)
        .get(format!("https://localhost:{}/", p.port))
        .header("x-big", "x".repeat(4000))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "a head under the limit passes");
}

/// An app that accepts any upgrade and then echoes bytes.
async fn upgrading_app() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(
            String::from_utf8_lossy(&head)
                .to_ascii_lowercase()
                .contains("upgrade: echo")
        );
        s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        loop {
            let n = s.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            s.write_all(&buf[..n]).await.unwrap();
        }
    });
    addr
}

#[tokio::test]
async fn an_upgrade_is_spliced_through() {
    let app = upgrading_app().await;
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_secs(5)).await;
    let mut s = TcpStream::connect(p).await.unwrap();
    s.write_all(b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut echo = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&echo, b"ping");
}

/// `tlsward proxy` (the binary) with a dev PKI in front of `upstream`; killed on drop.
struct ProxyProcess {
    child: std::process::Child,
    port: u16,
    admin: u16,
    ca: Vec<u8>,
    pki: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The dev PKI of `tlsward certs dev` in `dir/pki`.
fn dev_pki(dir: &std::path::Path) -> std::path::PathBuf {
    let pki = dir.join("pki");
    let made = std::process::Command::new(support::bin())
        .args(["certs", "dev", "--out", pki.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    pki
}

async fn proxy_process(upstream: &str, extra: &[&str]) -> ProxyProcess {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let (port, admin) = (support::free_port(), support::free_port());
    let child = std::process::Command::new(support::bin())
        .args(["proxy", "--upstream", upstream])
        .args(["--tls-dir", pki.join("server").to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .args(extra.iter().map(|a| a.replace("{pki}", pki.to_str().unwrap())))
        .env("TLSWARD_LOG", "warn")
        .spawn()
        .unwrap();
    let ca = std::fs::read(pki.join("ca/ca.crt")).unwrap();
    assert_eventually!(
        TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
        Duration::from_secs(10),
        "tlsward proxy did not start"
    );
    ProxyProcess {
        child,
        port,
        admin,
        ca,
        pki,
        _dir: dir,
    }
}

fn tls_client(ca: &[u8]) -> reqwest::Client {
    tlsward::install_crypto_provider();
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca).unwrap())
        .resolve("localhost", ([127, 0, 0, 1], 0).into())
        .build()
        .unwrap()
}

/// The peak resident memory of process `pid` so far (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

#[tokio::test]
async fn a_48_mib_upload_and_download_stream_through_without_being_buffered() {
    let app = tcp_app().await;
    let p = proxy_process(&format!("http://{app}"), &[]).await;
    let c = tls_client(&p.ca);
    let url = |path: &str| format!("https://localhost:{}{path}", p.port);
    let warm = c.put(url("/size")).body(vec![0u8; 1 << 20]).send().await.unwrap();
    assert_eq!(warm.text().await.unwrap(), (1 << 20).to_string());
    let before = peak_rss(p.child.id());
    let chunks = futures_util::stream::iter(
        (0..DOWNLOAD / CHUNK.len())
            .map(|_| Ok::<_, std::io::Error>(hyper::body::Frame::data(bytes::Bytes::from_static(&CHUNK)))),
    );
    let up = c
        .put(url("/size"))
        .body(reqwest::Body::wrap(http_body_util::StreamBody::new(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(up.text().await.unwrap(), DOWNLOAD.to_string());
    let mut down = c.get(url("/download")).send().await.unwrap();
    let mut received = 0;
    while let Some(chunk) = down.chunk().await.unwrap() {
        received += chunk.len();
    }
    assert_eq!(received, DOWNLOAD);
    let growth = peak_rss(p.child.id()).saturating_sub(before);
    assert!(
        growth < 12 << 20,
        "the proxy's peak RSS grew by {} KiB while 2 x {} MiB passed: a body was buffered",
        growth >> 10,
        DOWNLOAD >> 20
    );
}

#[test]
fn tlsward_proxy_check_prints_the_effective_configuration_or_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let pki = dev_pki(dir.path());
    let check = |extra: &[&str]| {
        std::process::Command::new(support::bin())
            .args([
                "proxy",
                "--check",
                "--kube-events",
                "off",
                "--upstream",
                "http://127.0.0.1:8000",
            ])
            .args(["--tls-dir", pki.join("server").to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = check(&[]);
    let text = support::output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("proxy:\n  upstream: http://127.0.0.1:8000\n"), "{text}");
    assert!(text.contains("db_proxy: off"), "{text}");
    assert!(text.contains("max_body_bytes: 67108864"), "the proxy's default: {text}");
    let out = check(&[
        "--upstream-health-path",
        "healthz",
        "--trust-forwarded-from",
        "10.0.0.0/33",
    ]);
    let text = support::output_text(&out);
    assert_eq!(out.status.code(), Some(64), "{text}");
    assert!(text.contains("--upstream-health-path"), "{text}");
    assert!(text.contains("--trust-forwarded-from"), "{text}");
}

#[tokio::test]
async fn tlsward_proxy_serves_the_app_over_tls_with_the_edges_headers_and_is_ready() {
    let app = tcp_app().await;
    let p = proxy_process(&format!("http://{app}"), &[]).await;
    let c = tls_client(&p.ca);
    let r = c
        .get(format!("https://localhost:{}/orders?id=7", p.port))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "h2 from the client, HTTP/1.1 to the app"
    );
    assert!(
        r.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["uri"], "/orders?id=7");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert_eq!(v["headers"]["host"], format!("localhost:{}", p.port));
    let ready: Value = client()
        .get(format!("http://127.0.0.1:{}/readyz", p.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["ready"], true, "no database to wait for: {ready}");
}

#[tokio::test]
async fn with_client_auth_the_verified_certificate_reaches_the_app_as_xfcc() {
    let app = tcp_app().await;
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "client_auth: required\n").unwrap();
    let p = proxy_process(
        &format!("http://{app}"),
        &["--policy-file", policy.to_str().unwrap(), "--client-ca-dir", "{pki}/ca"],
    )
    .await;
    let cert = std::fs::read_to_string(p.pki.join("db-client/tls.crt")).unwrap();
    let key = std::fs::read_to_string(p.pki.join("db-client/tls.key")).unwrap();
    let c = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&p.ca).unwrap())
        .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = c
        .get(format!("https://localhost:{}/", p.port))
        .header("x-forwarded-client-cert", "Hash=forged;Subject=\"CN=admin\"")
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    let xfcc = v["headers"]["x-forwarded-client-cert"].as_str().unwrap();
    let der = tlsward::tls::material::parse_certs(std::path::Path::new("leaf"), cert.as_bytes()).unwrap();
    assert!(
        xfcc.starts_with(&format!("Hash={};", tlsward::util::sha256_hex(der[0].as_ref()))),
        "{xfcc}"
    );
    assert!(xfcc.contains(";Subject=\"O=tlsward dev, CN=app\""), "{xfcc}");
    assert!(!xfcc.contains("forged"), "a client-sent XFCC reached the app: {xfcc}");
}

#[tokio::test]
async fn tlsward_proxy_refuses_flags_it_does_not_use_and_a_tls_upstream() {
    let out = std::process::Command::new(support::bin())
        .args([
            "proxy",
            "--tls-dir",
            "/nonexistent",
            "--upstream",
            "https://127.0.0.1:8000",
        ])
        .args(["--db-url", "postgresql://app@localhost/app"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for want in [
        "--db-url (TLSWARD_DB_URL) is used by proxy only with --db-proxy-listen",
        "--upstream (TLSWARD_UPSTREAM) https://127.0.0.1:8000: the app is reached in clear",
        "/nonexistent/tls.crt",
    ] {
        assert!(err.contains(want), "{want:?} missing from:\n{err}");
    }
}

#[tokio::test]
async fn an_http10_apps_answer_reaches_an_http11_client_as_http11() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).await.unwrap();
        s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
    });
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_secs(5)).await;
    let r = client().get(format!("http://{p}/")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_11);
    assert_eq!(r.text().await.unwrap(), "ok");
}

fn issue_token(pki: &std::path::Path, ttl: &str) -> String {
    let out = std::process::Command::new(support::bin())
        .args(["token", "issue", "--sub", "alice", "--ttl", ttl])
        .args(["--token-key-dir", pki.join("tokens").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn require_token_lets_only_valid_tokens_through_and_names_their_subject() {
    let app = tcp_app().await;
    let p = proxy_process(
        &format!("http://{app}"),
        &["--require-token", "--token-key-dir", "{pki}/tokens"],
    )
    .await;
    let c = tls_client(&p.ca);
    let url = format!("https://localhost:{}/orders", p.port);
    let status = |r: &reqwest::Response| r.status().as_u16();
    // Missing, forged and expired tokens never reach the app.
    let missing = c.get(&url).send().await.unwrap();
    assert_eq!(status(&missing), 401);
    assert!(missing.headers().contains_key("www-authenticate"));
    let forged = c.get(&url).bearer_auth("v1.k1.e30.AAAA").send().await.unwrap();
    assert_eq!(status(&forged), 401);
    // Issued two hours ago for one hour (past the clock-skew leeway), with the served key.
    let keys = tlsward::token::TokenKeys::load_dir(&p.pki.join("tokens")).unwrap();
    let old = keys.issue("alice", Duration::from_secs(3600), tlsward::util::now_unix() - 7200);
    let expired = c.get(&url).bearer_auth(&old).send().await.unwrap();
    assert_eq!(status(&expired), 401);
    // A valid token: the app hears who, and a client-sent subject is replaced.
    let token = issue_token(&p.pki, "5m");
    let r = c
        .get(&url)
        .bearer_auth(&token)
        .header("x-tlsward-subject", "mallory")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&r), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-tlsward-subject"], "alice", "{v}");
}

#[tokio::test]
async fn without_require_token_a_client_sent_subject_is_stripped() {
    let app = tcp_app().await;
    let p = proxy(Upstream::Tcp(app.to_string()), Duration::from_secs(5)).await;
    let v: Value = client()
        .get(format!("http://{p}/"))
        .header("x-tlsward-subject", "mallory")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["headers"].get("x-tlsward-subject").is_none(), "{v}");
}

async fn ready(admin: u16) -> bool {
    let r = client().get(format!("http://127.0.0.1:{admin}/readyz")).send().await;
    r.is_ok_and(|r| r.status() == 200)
}

#[tokio::test]
async fn an_app_that_stays_down_makes_the_proxy_unready_until_it_is_back() {
    let port = support::free_port();
    let p = proxy_process(
        &format!("http://127.0.0.1:{port}"),
        &["--upstream-unready-after", "1s", "--upstream-health-path", "/healthz"],
    )
    .await;
    let c = tls_client(&p.ca);
    let url = format!("https://localhost:{}/x", p.port);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 503);
    assert_eventually!(
        !ready(p.admin).await,
        Duration::from_secs(10),
        "still ready with the app down"
    );
    // The app comes up on that port: the probe (GET /healthz) finds it.
    let l = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    tokio::spawn(async move { axum::serve(l, app()).await.unwrap() });
    assert_eventually!(
        ready(p.admin).await,
        Duration::from_secs(10),
        "not ready with the app back"
    );
    assert_eq!(c.get(&url).send().await.unwrap().status(), 200);
}
