//! Request and readiness loops during a drain, and the check that nothing failed in it.

use std::net::SocketAddr;
use std::time::Duration;

use crate::server::client_for;

/// Every request's start (seconds after a common instant) and its status or error.
pub type Outcomes = std::sync::Arc<std::sync::Mutex<Vec<(f64, Result<u16, String>)>>>;

/// `GET path` on `127.0.0.1:port` in a loop until `stop`, with one pooled client
/// (keep-alive) or a new client per request (a new TLS connection each time); each outcome
/// is recorded with its start time after `t0`.
pub fn request_loop(
    port: u16,
    path: &'static str,
    keepalive: bool,
    t0: std::time::Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: Outcomes,
) -> tokio::task::JoinHandle<()> {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    tokio::spawn(async move {
        let mut client = client_for(addr);
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if !keepalive {
                client = client_for(addr);
            }
            let at = t0.elapsed().as_secs_f64();
            let outcome = match client.get(format!("https://localhost:{port}{path}")).send().await {
                Ok(r) => Ok(r.status().as_u16()),
                Err(e) => Err(format!("{e:#}")),
            };
            out.lock().unwrap().push((at, outcome));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// `GET url` every 50 ms until `stop`: the status (or error) of each, with its time after `t0`.
pub fn readyz_loop(
    url: String,
    t0: std::time::Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: Outcomes,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            let at = t0.elapsed().as_secs_f64();
            let r = client
                .get(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .map_err(|e| e.to_string());
            out.lock().unwrap().push((at, r));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// How long after the stop command the readiness probe may still answer 200: the signal
/// travels through `podman stop` or `kill`, which on a loaded machine takes a few hundred ms.
const SIGNAL_LATENCY_S: f64 = 1.0;

/// Checks a drain: every request that started before `until` was answered 200 (at least `min`
/// of them after `from`, the stop command), readiness answered 200 before the stop, turned 503
/// within [`SIGNAL_LATENCY_S`] of it and stayed 503 until `until`.
pub fn assert_drained(requests: &Outcomes, ready: &Outcomes, from: f64, until: f64, min: usize) {
    let requests = requests.lock().unwrap();
    let during: Vec<_> = requests.iter().filter(|(at, _)| *at < until).collect();
    let failed: Vec<_> = during.iter().filter(|(_, r)| *r != Ok(200)).collect();
    let in_window = during.iter().filter(|(at, _)| *at >= from).count();
    assert!(in_window >= min, "only {in_window} requests during the drain delay");
    assert!(
        failed.is_empty(),
        "{} of {} requests failed or were refused before the drain delay ended: {:?}",
        failed.len(),
        during.len(),
        &failed[..failed.len().min(5)]
    );
    let ready = ready.lock().unwrap();
    assert!(
        ready.iter().any(|(at, r)| *at < from && *r == Ok(200)),
        "never ready before"
    );
    let flipped = ready
        .iter()
        .find(|(at, r)| *at > from && *r == Ok(503))
        .map(|(at, _)| *at)
        .unwrap_or_else(|| panic!("readiness never turned 503: {ready:?}"));
    assert!(
        flipped - from < SIGNAL_LATENCY_S,
        "readiness turned 503 only {:.2} s after the stop: {ready:?}",
        flipped - from
    );
    let probes: Vec<_> = ready.iter().filter(|(at, _)| *at >= flipped && *at < until).collect();
    assert!(probes.len() >= 5, "{probes:?}");
    assert!(
        probes.iter().all(|(_, r)| *r == Ok(503)),
        "readiness answered 200 again while draining: {probes:?}"
    );
    eprintln!(
        "drain: {in_window} requests started during the delay, {} failed or refused; {} readiness probes, all 503",
        failed.len(),
        probes.len()
    );
}
