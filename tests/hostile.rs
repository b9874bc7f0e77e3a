//! Hostile clients against a running server, each test one behaviour: bounded metric series
//! whatever methods and paths arrive, the connection cap, connections that say nothing
//! (after TLS, half an h2 preface, idle keep-alive and h2, a keep-alive head that trickles),
//! an upload drained after an early answer, the admin listener's timeouts,
//! and the h2 413 that must reach the client.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::time::{Duration, Instant};

use support::{metric, postgres, serve_args, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A TLS connection to the server (SNI localhost, the test CA), offering `alpn`.
async fn tls_connect(port: u16, alpn: &[&[u8]]) -> std::io::Result<support::Tls> {
    support::tls_connect(&support::tls_client(&[], alpn), port).await
}

/// Reads until the server closes the connection (EOF, close_notify or reset); how long that
/// took, or `None` if it stayed open for `patience`.
async fn closed_within<S: tokio::io::AsyncRead + Unpin>(stream: &mut S, patience: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let mut buf = [0u8; 4096];
    let read_to_end = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(patience, read_to_end)
        .await
        .ok()
        .map(|()| t0.elapsed())
}

/// Requests with made-up methods to made-up paths and to a real route, numbered from `from`.
async fn garbage(s: &support::TestServer, from: usize, n: usize) {
    for i in from..from + n {
        let method = reqwest::Method::from_bytes(format!("X{i}Q").as_bytes()).unwrap();
        let path = if i % 2 == 0 {
            format!("/p{i}/{}", i * 7)
        } else {
            format!("/users/{i}")
        };
        let r = s
            .client
            .request(method, format!("{}{path}", s.base))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_client_error(), "{}", r.status());
    }
}

#[tokio::test]
async fn garbage_methods_and_paths_keep_the_request_series_bounded() {
    let s = start(serve_args(&[])).await;
    let series = |text: &str| text.lines().filter(|l| l.starts_with("tlsward_http_request")).count();
    garbage(&s, 0, 300).await;
    let first = s.metrics().await;
    assert!(
        metric(
            &first,
            r#"tlsward_http_requests_total{route="unmatched",method="other",status="404"}"#
        ) >= 150.0,
        "{first}"
    );
    garbage(&s, 300, 1500).await;
    let later = s.metrics().await;
    assert_eq!(series(&later), series(&first), "new series from new garbage:\n{later}");
    // Only the counters' digits may grow.
    assert!(
        later.len() < first.len() + 64,
        "/metrics grew from {} to {} bytes",
        first.len(),
        later.len()
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn connection_cap_closes_new_connections_beyond_it_and_recovers() {
    let s = start(serve_args(&["--max-connections", "4"])).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(tls_connect(s.port(), &[b"http/1.1"]).await.expect("within the cap"));
    }
    let beyond = tls_connect(s.port(), &[b"http/1.1"]).await;
    assert!(beyond.is_err(), "a fifth connection was served");
    let m = s.metrics().await;
    assert!(
        metric(
            &m,
            r#"tlsward_connections_refused_total{listener="tls",reason="max_connections"}"#
        ) >= 1.0,
        "{m}"
    );
    assert_eq!(metric(&m, r#"tlsward_connections_open{listener="tls"}"#), 4.0, "{m}");
    drop(held.pop());
    drop(held.pop());
    let port = s.port();
    assert_eventually!(
        tls_connect(port, &[b"http/1.1"]).await.is_ok(),
        Duration::from_secs(5),
        "no connection accepted after two closed"
    );
    let r = s.client.get(format!("{}/", s.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_connection_that_sends_nothing_after_tls_is_closed_after_the_header_timeout() {
    let s = start(serve_args(&["--header-timeout", "1s"])).await;
    let mut tls = tls_connect(s.port(), &[b"http/1.1"]).await.unwrap();
    let took = closed_within(&mut tls, Duration::from_secs(10))
        .await
        .expect("still open after 10 s");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    let (closed, m) = tls_closed(&s, "first_request_timeout").await;
    assert!(closed >= 1.0, "{m}");
    s.running.shutdown().await;
}

/// The TLS listener's `tlsward_connections_closed_total` for `reason`, and all the metrics.
async fn tls_closed(s: &support::TestServer, reason: &str) -> (f64, String) {
    let m = s.metrics().await;
    let series = format!(r#"tlsward_connections_closed_total{{listener="tls",reason="{reason}"}}"#);
    (metric(&m, &series), m)
}

#[tokio::test]
async fn a_partial_h2_preface_is_closed_after_the_header_timeout() {
    let s = start(serve_args(&["--header-timeout", "1s"])).await;
    let mut tls = tls_connect(s.port(), &[b"h2"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    tls.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    tls.flush().await.unwrap();
    let took = closed_within(&mut tls, Duration::from_secs(10))
        .await
        .expect("still open after 10 s");
    assert!(took < Duration::from_secs(4), "{took:?}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let s = start(serve_args(&["--idle-timeout", "1s"])).await;
    let mut tls = after_one_request(s.port()).await;
    let took = closed_within(&mut tls, Duration::from_secs(10))
        .await
        .expect("still open after 10 s");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(4),
        "{took:?}"
    );
    s.running.shutdown().await;
}

/// A TLS connection that has had one `GET /` answered.
async fn after_one_request(port: u16) -> support::Tls {
    let mut tls = tls_connect(port, &[b"http/1.1"]).await.unwrap();
    get_root_answered(&mut tls).await;
    tls
}

/// Sends `GET /` on `tls` and checks that a 200 comes back.
async fn get_root_answered(tls: &mut support::Tls) {
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn an_idle_http1_keep_alive_connection_outlives_the_header_timeout() {
    let s = start(serve_args(&["--header-timeout", "1s", "--idle-timeout", "4s"])).await;
    let mut tls = after_one_request(s.port()).await;
    assert!(
        closed_within(&mut tls, Duration::from_millis(2500)).await.is_none(),
        "an idle keep-alive connection closed before the idle timeout"
    );
    get_root_answered(&mut tls).await;
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_request_head_that_trickles_is_closed_after_the_header_timeout() {
    let s = start(serve_args(&["--header-timeout", "1s"])).await;
    let mut tls = after_one_request(s.port()).await;
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n").await.unwrap();
    let t0 = Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if tls.write_all(b"X-A: b\r\n").await.is_err() || tls.flush().await.is_err() {
            closed = true;
            break;
        }
        if closed_within(&mut tls, Duration::from_millis(1)).await.is_some() {
            closed = true;
            break;
        }
    }
    assert!(closed, "a trickling head kept the connection for 6 s");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    let (closed, m) = tls_closed(&s, "header_timeout").await;
    assert_eq!(closed, 1.0, "{m}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn an_upload_drained_after_an_early_answer_is_not_cut_by_the_header_timeout() {
    // 401 before the body is read; the rest of the body, sent over longer than the header
    // timeout, is drained, and the connection then serves the next request.
    let s = start(serve_args(&["--header-timeout", "1s"])).await;
    let mut tls = tls_connect(s.port(), &[b"http/1.1"]).await.unwrap();
    let chunk = [b'x'; 500];
    tls.write_all(
        b"POST /users HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 3000\r\n\r\n",
    )
    .await
    .unwrap();
    tls.write_all(&chunk).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 401"));
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        tls.write_all(&chunk).await.unwrap();
        tls.flush().await.unwrap();
    }
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .expect("no answer to the request after the drained upload")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text:?}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn an_idle_h2_connection_gets_goaway_after_the_idle_timeout() {
    let s = start(serve_args(&["--idle-timeout", "1s"])).await;
    let tls = tls_connect(s.port(), &[b"h2"]).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    let conn = tokio::spawn(connection);
    let req = http::Request::get(format!("{}/", s.base)).body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let t0 = Instant::now();
    // The connection future ends when the server's GOAWAY closes it.
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(ended.is_ok(), "h2 connection still open after 10 s idle");
    assert!(t0.elapsed() < Duration::from_secs(4), "{:?}", t0.elapsed());
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_request_in_flight_is_not_cut_by_the_idle_timeout() {
    // A body sent slowly (within the body timeout) keeps the request in flight past the
    // idle timeout: the answer still arrives.
    let s = start(serve_args(&["--idle-timeout", "1s", "--body-timeout", "10s"])).await;
    let mut tls = tls_connect(s.port(), &[b"http/1.1"]).await.unwrap();
    let body = br#"{"username":"slowpoke","email":"slow@example.com"}"#;
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        s.token(),
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(&body[..10]).await.unwrap();
    tls.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    tls.write_all(&body[10..]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tls.read(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 201"), "{text}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let s = start(serve_args(&["--body-timeout", "1s"])).await;
    let mut tls = tls_connect(s.port(), &[b"http/1.1"]).await.unwrap();
    let head = format!(
        "POST /users HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"user",
        s.token()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let t0 = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(
        text.starts_with("HTTP/1.1 408") && text.contains("request_timeout"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    s.running.shutdown().await;
}

#[tokio::test]
async fn the_admin_listener_closes_a_silent_and_a_slow_client() {
    let s = start(serve_args(&["--header-timeout", "1s"])).await;
    let admin = s.running.admin_addr;
    let mut silent = TcpStream::connect(admin).await.unwrap();
    let took = closed_within(&mut silent, Duration::from_secs(10))
        .await
        .expect("silent client kept");
    assert!(took < Duration::from_secs(4), "{took:?}");
    // Headers trickling in, never finished: the first-request timeout.
    let mut slow = TcpStream::connect(admin).await.unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let t0 = Instant::now();
    let trickle = async {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if slow.write_all(b"X-A: b\r\n").await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), trickle).await.unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(10))
        .await
        .expect("slow client kept");
    assert!(t0.elapsed() < Duration::from_secs(6), "{took:?} {:?}", t0.elapsed());
    s.running.shutdown().await;
}

/// `curl --http2` POSTing `body` to `/users` (with `token`, if any): exit code, status, body.
async fn curl_h2_post(port: u16, token: Option<&str>, body: &std::path::Path) -> (Option<i32>, String) {
    let mut c = tokio::process::Command::new("curl");
    c.args(["-sS", "--http2", "--cacert"])
        .arg(&postgres().ca_file)
        .args([
            "-H",
            "Content-Type: application/json",
            "-w",
            "\n%{http_code} %{http_version}",
        ])
        .arg("--data-binary")
        .arg(format!("@{}", body.display()))
        .arg(format!("https://localhost:{port}/users"));
    if let Some(t) = token {
        c.args(["-H", &format!("Authorization: Bearer {t}")]);
    }
    let out = c.output().await.expect("curl is installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn an_early_answer_to_a_large_h2_upload_reaches_curl() {
    // curl (nghttp2) drops a response whose upload stream is reset; the server must let the
    // upload finish (reading and discarding it) after answering.
    let s = start(serve_args(&[])).await;
    let big = postgres().scratch().join("big.json");
    std::fs::write(&big, vec![b'x'; 1 << 20]).unwrap();
    for _ in 0..5 {
        let (code, text) = curl_h2_post(s.port(), Some(&s.token()), &big).await;
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("payload_too_large") && text.ends_with("413 2"), "{text}");
        let (code, text) = curl_h2_post(s.port(), None, &big).await;
        assert_eq!(code, Some(0), "{text}");
        assert!(text.contains("unauthorized") && text.ends_with("401 2"), "{text}");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn running_out_of_file_descriptors_backs_off_with_one_log_line_and_recovers() {
    let pg = postgres();
    let db = pg.create_db();
    let (port, admin) = (support::free_port(), support::free_port());
    // nofile 60: the default cap (at least 64) is above it, so accepts hit EMFILE first.
    let mut child = tokio::process::Command::new("bash")
        .args(["-c", r#"ulimit -n 60 && exec "$0" "$@""#, support::bin(), "serve"])
        .args([
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args(["--tls-dir", pg.server_dir.to_str().unwrap()])
        .args(["--token-key-dir", pg.token_dir.to_str().unwrap()])
        .args([
            "--db-url",
            &pg.dsn(&db, &pg.client_dir),
            "--kube-events",
            "off",
            "--db-pool-size",
            "2",
        ])
        .env("TLSWARD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = support::collect_log(child.stderr.take().unwrap());
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 200).unwrap_or(false),
        Duration::from_secs(20),
        "never ready: {}",
        log.lock().unwrap()
    );
    let mut held = Vec::new();
    for _ in 0..100 {
        held.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = log
        .lock()
        .unwrap()
        .lines()
        .filter(|l| l.contains("out of file descriptors"))
        .count();
    assert!((1..=2).contains(&lines), "{lines} lines:\n{}", log.lock().unwrap());
    drop(held);
    let client = support::client_for(format!("127.0.0.1:{port}").parse().unwrap());
    let url = format!("https://localhost:{port}/");
    let c = &client;
    assert_eventually!(
        c.get(&url).send().await.map(|r| r.status() == 200).unwrap_or(false),
        Duration::from_secs(15),
        "no recovery after the connections closed"
    );
    let m = reqwest::get(format!("http://127.0.0.1:{admin}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metric(&m, r#"tlsward_accept_errors_total{listener="tls",reason="out_of_fds"}"#) >= 1.0,
        "{m}"
    );
    child.kill().await.unwrap();
}
