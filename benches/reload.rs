//! `make bench-reload`: how long after kubelet's `..data` rename the first new TLS handshake
//! presents the new certificate, for `serve` and `proxy` in [`ROUNDS`] alternating rounds of
//! [`PER_ROUND`] rotations (the slowest of each round, so that a noisy minute shows), the same for a
//! policy change (ALPN flips between `h2` and `http/1.1`), and, for comparison, what a
//! restart-based reload costs: the time from spawning the binary to its first completed
//! handshake. Results go to `bench/reload-results.md`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tlsward::pki::{Ca, Issued, KeyType, LeafSpec, write_file};

mod common;

use common::{header, summary, write_results};
use tlsward_testkit::kubelet::{stage, swap};

const ROTATIONS: usize = 100;
/// Rounds of certificate rotations, `serve` and `proxy` alternating which goes first.
const ROUNDS: usize = 3;
/// Certificate rotations per round and command.
const PER_ROUND: usize = 34;

struct Probe {
    connector: tokio_rustls::TlsConnector,
}

impl Probe {
    fn new(ca: &Ca, alpn: bool) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let der = tlsward::tls::material::parse_certs(Path::new("ca"), ca.cert_pem.as_bytes()).unwrap();
        roots.add(der[0].clone()).unwrap();
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        if alpn {
            config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        }
        Self {
            connector: tokio_rustls::TlsConnector::from(Arc::new(config)),
        }
    }

    /// One full handshake: (leaf serial, negotiated ALPN).
    async fn handshake(&self, port: u16) -> Option<(String, Vec<u8>)> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = self.connector.connect(name, tcp).await.ok()?;
        let conn = tls.get_ref().1;
        let serial = tlsward::tls::material::CertInfo::from_der(&conn.peer_certificates()?[0])
            .ok()?
            .serial;
        Some((serial, conn.alpn_protocol().unwrap_or_default().to_vec()))
    }

    /// Handshakes until `done` holds; the time from `since`.
    async fn until(&self, port: u16, since: Instant, done: impl Fn(&(String, Vec<u8>)) -> bool) -> Duration {
        loop {
            if let Some(h) = self.handshake(port).await
                && done(&h)
            {
                return since.elapsed();
            }
            assert!(since.elapsed() < Duration::from_secs(10), "the change was never served");
        }
    }
}

fn server(ca: &Ca) -> Issued {
    ca.issue(&LeafSpec::server("localhost", &["localhost", "127.0.0.1"]))
        .unwrap()
}

/// [`PER_ROUND`] certificate rotations of `tls_dir` (kubelet's sequence), each timed from the `..data` swap to the first handshake on `port` that is served the new
/// certificate; returns the latencies and the last staged directory (removed by the next swap).
async fn rotate(
    ca: &Ca,
    tls_dir: &Path,
    port: u16,
    probe: &Probe,
    mut old: Option<PathBuf>,
) -> (Vec<Duration>, Option<PathBuf>) {
    let mut lat = Vec::new();
    for _ in 0..PER_ROUND {
        let next = server(ca);
        let want = tlsward::tls::material::CertInfo::from_der(
            &tlsward::tls::material::parse_certs(Path::new("c"), next.cert_pem.as_bytes()).unwrap()[0],
        )
        .unwrap()
        .serial;
        let f = [
            ("tls.crt", next.cert_pem.as_bytes()),
            ("tls.key", next.key_pem.as_bytes()),
        ];
        let staged = stage(tls_dir, &f);
        let t0 = Instant::now();
        swap(tls_dir, &f, old.take());
        lat.push(probe.until(port, t0, |(s, _)| *s == want).await);
        old = Some(staged);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (lat, old)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    tlsward::install_crypto_provider();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ca = Ca::new("bench CA", KeyType::Ecdsa).unwrap();
    let tls_dir = w.join("tls");
    let pol_dir = w.join("policy");
    let first = server(&ca);
    let files = |i: &Issued| {
        [
            ("tls.crt", i.cert_pem.as_bytes().to_vec()),
            ("tls.key", i.key_pem.as_bytes().to_vec()),
        ]
    };
    let f = files(&first);
    let refs: Vec<(&str, &[u8])> = f.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    let mut old_tls = Some(stage(&tls_dir, &refs));
    swap(&tls_dir, &refs, None);
    let policies: [&[u8]; 2] = [b"alpn: [h2]\n", b"alpn: [http/1.1]\n"];
    let mut old_pol = Some(stage(&pol_dir, &[("policy.yaml", policies[0])]));
    swap(&pol_dir, &[("policy.yaml", policies[0])], None);
    write_file(&w.join("tokens/k1"), &tlsward::token::generate_key_text(), true).unwrap();

    let policy_file = pol_dir.join("policy.yaml");
    write_file(&w.join("ca.crt"), &ca.cert_pem, false).unwrap();
    let dsn = format!(
        "postgresql://app@localhost:1/app?sslmode=verify-full&sslrootcert={}",
        w.join("ca.crt").display()
    );
    let token_dir = w.join("tokens");
    let flags = [
        "--tls-dir",
        tls_dir.to_str().unwrap(),
        "--policy-file",
        policy_file.to_str().unwrap(),
        "--token-key-dir",
        token_dir.to_str().unwrap(),
        // No database is needed to measure handshakes; the pool retries in the background.
        "--db-url",
        &dsn,
        "--db-migrate",
        "false",
    ];
    let running = common::serve(&flags).await;
    let port = running.tls_addr.port();
    let probe = Probe::new(&ca, true);

    let mut policy_lat = Vec::new();
    for n in 1..=ROTATIONS {
        let body = policies[n % 2];
        let want: &[u8] = if n % 2 == 0 { b"h2" } else { b"http/1.1" };
        let staged = stage(&pol_dir, &[("policy.yaml", body)]);
        let t0 = Instant::now();
        swap(&pol_dir, &[("policy.yaml", body)], old_pol.take());
        policy_lat.push(probe.until(port, t0, |(_, alpn)| alpn.as_slice() == want).await);
        old_pol = Some(staged);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    running.shutdown().await;

    // Certificate rotations, `serve` and `tlsward proxy` (no app needed for handshakes) in
    // turn, alternating which goes first.
    let proxy_flags = [
        "--tls-dir",
        tls_dir.to_str().unwrap(),
        "--policy-file",
        policy_file.to_str().unwrap(),
        "--upstream",
        "http://127.0.0.1:9",
        "--upstream-unready-after",
        "0s",
    ];
    let mut lat: [Vec<Duration>; 2] = Default::default();
    let mut slowest: [Vec<Duration>; 2] = Default::default();
    for round in 0..ROUNDS {
        for proxy in [round % 2 == 1, round % 2 == 0] {
            let server = if proxy {
                common::proxy(&proxy_flags).await
            } else {
                common::serve(&flags).await
            };
            let (mut l, staged) = rotate(&ca, &tls_dir, server.tls_addr.port(), &probe, old_tls.take()).await;
            server.shutdown().await;
            old_tls = staged;
            l.sort();
            slowest[usize::from(proxy)].push(*l.last().unwrap());
            lat[usize::from(proxy)].extend(l);
        }
    }
    let [cert_lat, proxy_lat] = lat;
    let per_round = |v: &[Duration]| v.iter().map(|d| common::ms(*d)).collect::<Vec<_>>().join(", ");
    let p99_note = format!(
        "\nCertificate rotations ran in {ROUNDS} rounds of {PER_ROUND} per command, `serve` and `proxy` alternating which went first; the slowest rotation of each round: serve {} ms, proxy {} ms.\n",
        per_round(&slowest[0]),
        per_round(&slowest[1])
    );

    // A restart-based reload: spawn the binary, time its first completed handshake.
    let bin = env!("CARGO_BIN_EXE_tlsward");
    let mut restart = Vec::new();
    for _ in 0..20 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen = format!("127.0.0.1:{port}");
        let t0 = Instant::now();
        let mut child = std::process::Command::new(bin)
            .arg("serve")
            .args(flags)
            .args(["--listen", &listen, "--admin-listen", "127.0.0.1:0"])
            .env("TLSWARD_LOG", "off")
            .spawn()
            .unwrap();
        restart.push(probe.until(port, t0, |_| true).await);
        let _ = child.kill();
        let _ = child.wait();
    }

    let mut out = header("Reload latency", "bench-reload", "reload");
    out.push_str("Each rotation is kubelet's AtomicWriter sequence; the clock starts at the `rename(..data_tmp, ..data)` and stops when a new TLS handshake (full, no resumption) presents the new certificate, or negotiates the ALPN of the new policy. The server runs in the benchmark's process on 2 worker threads; the prober handshakes back to back.\n\n");
    out.push_str("| what | n | p50 ms | p99 ms | min ms | max ms |\n| --- | --- | --- | --- | --- | --- |\n");
    out.push_str(&summary(
        "certificate rotation (`..data` swap → new serial served)",
        cert_lat,
    ));
    out.push_str(&summary(
        "policy change (`..data` swap → new ALPN negotiated)",
        policy_lat,
    ));
    out.push_str(&summary(
        "certificate rotation, `tlsward proxy` (`..data` swap → new serial served)",
        proxy_lat,
    ));
    out.push_str(&summary("restart instead (spawn → first handshake)", restart));
    out.push_str(&p99_note);
    out.push_str("\nThe reload path's floor is the watcher's coalescing window (10 ms of quiet after the last event of a burst) plus one read-validate-build of the snapshot; the restart row is the best case of a restart-based reload on this machine (no pod rescheduling, no image pull, no readiness delay) and also drops every open connection.\n");
    write_results("reload-results.md", &out);
}
