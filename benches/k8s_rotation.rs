//! `make bench-k8s`: on the real test cluster, how long after a Secret update the first new TLS
//! connection to the Pod is served the new certificate, with the Secret watch
//! (`kube.watchSecrets=true`: the API's watch event lays the new data over the directory) and
//! without it (the kubelet's projection of the Secret volume, its sync period plus its cache).
//!
//! Two releases run side by side, each `mode: sidecar` with one replica and an existing TLS
//! Secret. A round updates both Secrets at once and waits for both; while the kubelet's
//! projection is awaited, the watched release is rotated again every [`WATCH_EVERY`], so that it
//! gets enough samples for a p99. The clock starts before the PATCH is sent (kube-rs, not a
//! kubectl process) and stops when a full handshake through `kubectl port-forward` presents the
//! new serial. Results go to `bench/k8s-rotation-results.md`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use tlsward::pki::{Ca, KeyType, LeafSpec};
use tlsward_testkit::cluster::{Cluster, Namespace, PortForward, cluster};

mod common;

use common::{header, summary, write_results};

/// Rounds (each one kubelet projection, about a minute): `K8S_BENCH_ROUNDS`, default 6.
fn rounds() -> usize {
    std::env::var("K8S_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6)
}

/// How often the watched release is rotated while a projection is awaited.
const WATCH_EVERY: Duration = Duration::from_secs(3);
/// The longest a rotation may take before the benchmark gives up.
const GIVE_UP: Duration = Duration::from_secs(300);

/// One release under measurement.
struct Release {
    ns: Namespace,
    pf: PortForward,
    secrets: kube::Api<Secret>,
}

impl Release {
    async fn install(c: &'static Cluster, client: &kube::Client, ca: &Ca, watch: bool) -> Self {
        let ns = c.namespace(if watch { "bench-watch" } else { "bench-files" });
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), &ns);
        let first = ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "web-tls" },
            "stringData": { "tls.crt": first.cert_pem, "tls.key": first.key_pem, "ca.crt": ca.cert_pem },
        }))
        .unwrap();
        secrets.create(&Default::default(), &secret).await.unwrap();
        let values = [
            "mode=sidecar",
            "app.image=localhost/tlsward-test/app:1",
            "app.dbProxy=false",
            "tls.existingSecret=web-tls",
            "replicaCount=1",
            "podDisruptionBudget.enabled=false",
        ];
        let watch_value = format!("kube.watchSecrets={watch}");
        let all: Vec<&str> = values.iter().copied().chain([watch_value.as_str()]).collect();
        c.install_tlsward(&ns, &all)
            .unwrap_or_else(|e| panic!("helm install: {e}"));
        let pf = c.port_forward(&ns, "svc/tlsward", 443);
        Self { ns, pf, secrets }
    }

    /// Writes a new certificate into the Secret; its serial and when the PATCH was sent.
    async fn rotate(&self, ca: &Ca) -> (String, Instant) {
        let next = ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
        let serial = serial_of(next.cert_pem.as_bytes());
        let patch = serde_json::json!({ "stringData": { "tls.crt": next.cert_pem, "tls.key": next.key_pem } });
        let sent = Instant::now();
        self.secrets
            .patch("web-tls", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
        (serial, sent)
    }
}

fn serial_of(pem: &[u8]) -> String {
    let der = tlsward::tls::material::parse_certs(Path::new("cert"), pem).unwrap();
    tlsward::tls::material::CertInfo::from_der(&der[0]).unwrap().serial
}

/// Full handshakes through a port-forward, verified against the bench CA.
struct Probe(tokio_rustls::TlsConnector);

impl Probe {
    fn new(ca: &Ca) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        let der = tlsward::tls::material::parse_certs(Path::new("ca"), ca.cert_pem.as_bytes()).unwrap();
        roots.add(der[0].clone()).unwrap();
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self(tokio_rustls::TlsConnector::from(Arc::new(config)))
    }

    async fn served(&self, port: u16) -> Option<String> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
        let tls = tokio::time::timeout(Duration::from_secs(5), self.0.connect(name, tcp))
            .await
            .ok()?
            .ok()?;
        let der = &tls.get_ref().1.peer_certificates()?[0];
        Some(tlsward::tls::material::CertInfo::from_der(der).ok()?.serial)
    }

    /// Whether `serial` is served now.
    async fn serves(&self, release: &Release, serial: &str) -> bool {
        self.served(release.pf.port).await.as_deref() == Some(serial)
    }
}

async fn wait_served(probe: &Probe, release: &Release, serial: &str, sent: Instant) -> Duration {
    while !probe.serves(release, serial).await {
        assert!(
            sent.elapsed() < GIVE_UP,
            "{}: {serial} not served after {GIVE_UP:?}",
            release.ns.name
        );
    }
    sent.elapsed()
}

fn main() {
    tlsward::install_crypto_provider();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let c = cluster();
    let (watch, files, per_round) = rt.block_on(measure(c));
    let text = format!(
        "{}\
         A Secret of one release per mode is updated (a new server certificate), then a full TLS handshake through `kubectl port-forward` is repeated until the new serial is presented; the clock starts before the PATCH is sent. The releases run side by side: each round updates both Secrets at once and, while the kubelet's projection is awaited, rotates the watched one again every {}s.\n\n\
         | what | n | p50 ms | p99 ms | min ms | max ms |\n| --- | --- | --- | --- | --- | --- |\n{}{}\n\
         Per round (files ms; watch p50 ms of the round): {}.\n\n\
         The watch's floor is the API server's watch fan-out plus tlsward's reload (a read, validate and build of the snapshot after a 10 ms coalescing window). The kubelet's projection is bounded by its sync period (`syncFrequency`, 1 minute by default) plus the jitter of its Secret cache: that is the latency of every tlsward without `kube.watchSecrets`, and of any process that only reads its mounted files.\n",
        header(
            "Secret update to served, on the test cluster",
            "make bench-k8s",
            "k8s_rotation"
        ),
        WATCH_EVERY.as_secs(),
        summary("Secret watch (`kube.watchSecrets=true`)", watch),
        summary("kubelet projection only (`kube.watchSecrets=false`)", files),
        per_round.join("; "),
    );
    write_results("k8s-rotation-results.md", &text);
}

async fn measure(c: &'static Cluster) -> (Vec<Duration>, Vec<Duration>, Vec<String>) {
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(c.kubeconfig()).unwrap(),
        &Default::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let ca = Ca::new("bench CA", KeyType::Ecdsa).unwrap();
    let probe = Probe::new(&ca);
    let watched = Release::install(c, &client, &ca, true).await;
    let projected = Release::install(c, &client, &ca, false).await;
    let (mut watch, mut files, mut per_round) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds() {
        // Alternate which Secret is written first.
        let (f_serial, f_sent, w_serial, w_sent) = if round % 2 == 0 {
            let (fs, ft) = projected.rotate(&ca).await;
            let (ws, wt) = watched.rotate(&ca).await;
            (fs, ft, ws, wt)
        } else {
            let (ws, wt) = watched.rotate(&ca).await;
            let (fs, ft) = projected.rotate(&ca).await;
            (fs, ft, ws, wt)
        };
        let mut round_watch = vec![wait_served(&probe, &watched, &w_serial, w_sent).await];
        let mut next = Instant::now() + WATCH_EVERY;
        while !probe.serves(&projected, &f_serial).await {
            assert!(f_sent.elapsed() < GIVE_UP, "the kubelet never projected {f_serial}");
            if Instant::now() >= next {
                let (s, t) = watched.rotate(&ca).await;
                round_watch.push(wait_served(&probe, &watched, &s, t).await);
                next = Instant::now() + WATCH_EVERY;
            }
        }
        let projected_after = f_sent.elapsed();
        files.push(projected_after);
        round_watch.sort();
        per_round.push(format!(
            "{:.0} / {:.1}",
            projected_after.as_secs_f64() * 1e3,
            round_watch[round_watch.len() / 2].as_secs_f64() * 1e3
        ));
        eprintln!(
            "round {}: files {projected_after:?}, watch {} samples",
            round + 1,
            round_watch.len()
        );
        watch.extend(round_watch);
    }
    (watch, files, per_round)
}
