//! Rollouts lose nothing: SIGTERM under load keeps serving (with `/readyz` at 503) for the
//! drain delay and exits 0 in time; connections older than the max age move on after their
//! request; a server dropped without a shutdown stops listening; and every metric the
//! chart's alerts and dashboard use is one that `/metrics` exposes.

use tlsward_testkit as support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use support::{Outcomes, postgres, request_loop as load, serve_args, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn sigterm_under_load_serves_through_the_drain_delay_with_readyz_503_and_exits_0() {
    let pg = postgres();
    let db = pg.create_db();
    let child = support::spawn_serve(
        &pg.dsn(&db, &pg.client_dir),
        &["--drain-delay", "2s", "--shutdown-grace", "5s"],
    )
    .await;
    let mut process = child.process;
    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let out: Outcomes = Arc::default();
    let mut tasks = Vec::new();
    for keepalive in [true, true, false, false] {
        tasks.push(load(child.port, "/", keepalive, t0, stop.clone(), out.clone()));
    }
    let ready: Outcomes = Arc::default();
    let readyz = support::readyz_loop(format!("{}/readyz", child.admin), t0, stop.clone(), ready.clone());
    // Serving under load and ready before the signal.
    let served = |o: &Outcomes| o.lock().unwrap().iter().filter(|(_, r)| *r == Ok(200)).count();
    tlsward_testkit::assert_eventually!(
        served(&out) >= 8 && served(&ready) >= 1,
        Duration::from_secs(10),
        "the load or /readyz never got a 200 before the signal"
    );
    let term_at = t0.elapsed().as_secs_f64();
    support::sigterm(process.id().unwrap());
    let status = tokio::time::timeout(Duration::from_secs(10), process.wait())
        .await
        .expect("exited within drain delay + grace")
        .unwrap();
    let exited_after = t0.elapsed().as_secs_f64() - term_at;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    readyz.await.unwrap();
    assert!(status.success(), "{status:?}\n{}", child.log.lock().unwrap());
    assert!(
        (1.9..8.0).contains(&exited_after),
        "exited {exited_after:.2} s after SIGTERM"
    );

    // Every request that started before the end of the drain delay was served, and
    // /readyz answered 503 (never refused) throughout it.
    support::assert_drained(&out, &ready, term_at, term_at + 2.0 - 0.1, 50);
}

/// Requests on one HTTP/1.1 connection until the server says `Connection: close` and hangs
/// up; how many were answered 200, and whether the last one carried the header.
async fn requests_until_closed(port: u16, patience: Duration) -> (usize, bool, Duration) {
    let mut tls = support::tls_connect(&support::tls_client(&[], &[b"http/1.1"]), port)
        .await
        .unwrap();
    let t0 = Instant::now();
    let (mut ok, mut close) = (0, false);
    let mut buf = vec![0u8; 8192];
    while t0.elapsed() < patience {
        if tls
            .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .is_err()
        {
            break;
        }
        let n = match tls.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let head = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
        if head.starts_with("http/1.1 200") {
            ok += 1;
        }
        if head.contains("connection: close") {
            close = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (ok, close, t0.elapsed())
}

#[tokio::test]
async fn a_connection_older_than_the_max_age_closes_after_its_request() {
    let s = start(serve_args(&["--max-connection-age", "1s", "--idle-timeout", "60s"])).await;
    let (ok, close, took) = requests_until_closed(s.port(), Duration::from_secs(10)).await;
    assert!(close, "no Connection: close within 10 s ({ok} answers)");
    assert!(ok >= 5, "{ok} answers before the close");
    assert!(
        took >= Duration::from_millis(850) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let m = s.metrics().await;
    assert!(
        support::metric(
            &m,
            r#"tlsward_connections_closed_total{listener="tls",reason="max_age"}"#
        ) >= 1.0,
        "{m}"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn an_h2_connection_older_than_the_max_age_gets_goaway_and_its_streams_finish() {
    let s = start(serve_args(&["--max-connection-age", "1s"])).await;
    let tls = support::tls_connect(&support::tls_client(&[], &[b"h2"]), s.port())
        .await
        .unwrap();
    let (mut client, connection) = h2::client::handshake(tls).await.unwrap();
    let conn = tokio::spawn(connection);
    let t0 = Instant::now();
    let mut answered = 0;
    while t0.elapsed() < Duration::from_secs(10) && !conn.is_finished() {
        let req = http::Request::get(format!("{}/", s.base)).body(()).unwrap();
        let Ok((resp, _)) = client.send_request(req, true) else {
            break;
        };
        match resp.await {
            Ok(r) if r.status() == 200 => answered += 1,
            _ => break,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    assert!(answered >= 5, "{answered}");
    assert!(
        took >= Duration::from_millis(850) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_secs(5), conn).await.is_ok(),
        "connection not closed"
    );
    s.running.shutdown().await;
}

/// The `tlsward_*` names a chart file uses.
fn metric_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("tlsward_") && w.len() > "tlsward_".len())
        .map(String::from)
        .collect();
    names.sort();
    names.dedup();
    names
}

#[tokio::test]
async fn every_metric_of_the_alerts_and_the_dashboard_is_exposed() {
    let chart = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/tlsward");
    let rules = std::fs::read_to_string(chart.join("templates/prometheusrule.yaml")).unwrap();
    let dashboard = std::fs::read_to_string(chart.join("files/dashboard.json")).unwrap();
    let s = start(serve_args(&[])).await;
    // One request, as any scrape after the first client would see.
    assert_eq!(s.client.get(format!("{}/", s.base)).send().await.unwrap().status(), 200);
    let exposed = s.metrics().await;
    for (file, text) in [("prometheusrule.yaml", &rules), ("dashboard.json", &dashboard)] {
        let names = metric_names(text);
        assert!(names.len() >= 6, "{file}: {names:?}");
        for name in names {
            // Counters are exposed as <family>_total, histograms as _bucket/_sum/_count.
            let family = ["_total", "_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(&name);
            assert!(
                exposed.contains(&format!("# TYPE {family} ")),
                "{file} uses {name}, which /metrics does not expose"
            );
        }
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn a_server_dropped_without_shutdown_stops_listening() {
    let s = start(serve_args(&[])).await;
    let (tls, admin) = (s.running.tls_addr, s.running.admin_addr);
    assert!(tokio::net::TcpStream::connect(tls).await.is_ok());
    drop(s);
    tlsward_testkit::assert_eventually!(
        tokio::net::TcpStream::connect(tls).await.is_err() && tokio::net::TcpStream::connect(admin).await.is_err(),
        Duration::from_secs(10),
        "the dropped server still accepts on {tls} or {admin}"
    );
}
