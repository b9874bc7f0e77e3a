//! Hot reload with real filesystem events and real TLS clients: kubelet's `..data` swap and
//! the other ways files get replaced are served within moments, bad material never replaces
//! the last good one, and nothing is dropped under load.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use support::{
    TestServer, Tls, kubelet, new_server_cert, postgres, reload_status, serial_of, serve_args, served_serial,
    start_unready, tls_client, tls_connect, wait_serial,
};
use tlsward::pki::{Issued, LeafSpec};

const SOON: Duration = Duration::from_secs(10);

/// A server whose TLS directory is `dir`, first written with `first`.
async fn server_on(dir: &Path, extra: &[&str]) -> TestServer {
    let mut args: Vec<String> = vec!["--tls-dir".into(), dir.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    start_unready(serve_args(&refs)).await
}

fn pair(issued: &Issued) -> [(&'static str, Vec<u8>); 2] {
    [
        ("tls.crt", issued.cert_pem.clone().into_bytes()),
        ("tls.key", issued.key_pem.clone().into_bytes()),
    ]
}

fn kube_write(dir: &Path, files: &[(&str, Vec<u8>)]) {
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (*n, d.as_slice())).collect();
    kubelet::write(dir, &refs);
}

async fn material(s: &TestServer, name: &str) -> Value {
    reload_status(&s.admin).await["materials"][name].clone()
}

/// Waits until the last reload of material `name` is rejected, checks that `first` is still
/// served, and returns the material's status.
async fn wait_rejected(s: &TestServer, name: &str, first: &Issued) -> Value {
    assert_eventually!(
        material(s, name).await["last_outcome"] == "rejected",
        SOON,
        "the bad {name} was not rejected"
    );
    assert_eq!(
        served_serial(s.port()).await.unwrap(),
        serial_of(&first.cert_pem),
        "the last good cert is still served"
    );
    material(s, name).await
}

fn volume() -> PathBuf {
    postgres().scratch().join("vol")
}

#[tokio::test]
async fn serves_new_cert_after_atomic_symlink_swap() {
    let dir = volume();
    let first = new_server_cert();
    kube_write(&dir, &pair(&first));
    let s = server_on(&dir, &[]).await;
    assert_eq!(served_serial(s.port()).await.unwrap(), serial_of(&first.cert_pem));
    // The second swap is where watchers of the file (not the directory) go deaf: do twenty.
    for i in 0..20 {
        let next = new_server_cert();
        kube_write(&dir, &pair(&next));
        wait_serial(&s, &next).await;
        let st = material(&s, "server").await;
        assert_eq!(st["serial"], serial_of(&next.cert_pem), "rotation {i}");
        // A late event of the same swap may re-read it: then it is "unchanged", never rejected.
        assert_ne!(st["last_outcome"], "rejected", "rotation {i}");
        assert!(st["last_error"].is_null(), "rotation {i}: {st}");
    }
    let status = reload_status(&s.admin).await;
    assert!(status["generation"].as_u64().unwrap() >= 21, "{status}");
    let metrics = s.metrics().await;
    assert!(
        support::metric(&metrics, r#"tlsward_reload_total{material="server",outcome="applied"}"#) >= 20.0,
        "{metrics}"
    );
    s.running.shutdown().await;
}

fn plain_write(dir: &Path, issued: &Issued) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("tls.key"), &issued.key_pem).unwrap();
    std::fs::write(dir.join("tls.crt"), &issued.cert_pem).unwrap();
}

#[tokio::test]
async fn serves_new_cert_after_in_place_rewrite() {
    let dir = volume();
    plain_write(&dir, &new_server_cert());
    let s = server_on(&dir, &[]).await;
    for _ in 0..3 {
        // Key first, then certificate: in between, the pair does not match and is retried.
        let next = new_server_cert();
        plain_write(&dir, &next);
        wait_serial(&s, &next).await;
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn serves_new_cert_after_rename_over() {
    let dir = volume();
    plain_write(&dir, &new_server_cert());
    let s = server_on(&dir, &[]).await;
    let next = new_server_cert();
    std::fs::write(dir.join(".tls.crt.tmp"), &next.cert_pem).unwrap();
    std::fs::write(dir.join(".tls.key.tmp"), &next.key_pem).unwrap();
    std::fs::rename(dir.join(".tls.key.tmp"), dir.join("tls.key")).unwrap();
    std::fs::rename(dir.join(".tls.crt.tmp"), dir.join("tls.crt")).unwrap();
    wait_serial(&s, &next).await;
    s.running.shutdown().await;
}

#[tokio::test]
async fn serves_new_cert_after_delete_and_recreate() {
    let dir = volume();
    let first = new_server_cert();
    plain_write(&dir, &first);
    let s = server_on(&dir, &[]).await;
    std::fs::remove_file(dir.join("tls.crt")).unwrap();
    std::fs::remove_file(dir.join("tls.key")).unwrap();
    wait_rejected(&s, "server", &first).await;
    let next = new_server_cert();
    plain_write(&dir, &next);
    wait_serial(&s, &next).await;
    s.running.shutdown().await;
}

#[tokio::test]
async fn serves_new_cert_when_the_directory_is_recreated() {
    let dir = volume();
    let first = new_server_cert();
    kube_write(&dir, &pair(&first));
    let s = server_on(&dir, &[]).await;
    std::fs::remove_dir_all(&dir).unwrap();
    wait_rejected(&s, "server", &first).await;
    // The directory appears again, later, with new content: the parent watch sees it and the
    // directory watch is re-armed, so the next rotation is seen too.
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    wait_serial(&s, &next).await;
    let third = new_server_cert();
    kube_write(&dir, &pair(&third));
    wait_serial(&s, &third).await;
    s.running.shutdown().await;
}

/// Writes bad server material, checks the old serial stays and the status names the reason,
/// then writes good material and checks it is applied.
async fn keeps_last_good(bad: impl FnOnce(&Path), material_name: &str, reason: &str) {
    let dir = volume();
    let first = new_server_cert();
    kube_write(&dir, &pair(&first));
    let s = server_on(&dir, &[]).await;
    bad(&dir);
    let st = wait_rejected(&s, material_name, &first).await;
    let err = st["last_error"].as_str().unwrap();
    assert!(err.contains(reason), "{err}");
    let metrics = s.metrics().await;
    assert!(
        support::metric(
            &metrics,
            &format!("tlsward_reload_total{{material=\"{material_name}\",outcome=\"rejected\"}}")
        ) >= 1.0,
        "{metrics}"
    );
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    wait_serial(&s, &next).await;
    assert!(
        material(&s, "server").await["last_error"].is_null(),
        "a good reload clears the error"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn keeps_last_good_on_truncated_key() {
    let next = new_server_cert();
    let half = next.key_pem[..next.key_pem.len() / 2].to_string();
    keeps_last_good(
        |d| {
            kube_write(
                d,
                &[
                    ("tls.crt", next.cert_pem.clone().into_bytes()),
                    ("tls.key", half.into_bytes()),
                ],
            )
        },
        "server",
        "tls.key: no usable PRIVATE KEY block",
    )
    .await;
}

#[tokio::test]
async fn keeps_last_good_on_garbage_pem() {
    let next = new_server_cert();
    keeps_last_good(
        |d| {
            kube_write(
                d,
                &[
                    (
                        "tls.crt",
                        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n".to_vec(),
                    ),
                    ("tls.key", next.key_pem.into_bytes()),
                ],
            )
        },
        "server",
        "tls.crt: certificate #1: not a valid X.509 certificate",
    )
    .await;
}

#[tokio::test]
async fn keeps_last_good_on_key_of_another_cert() {
    let (a, b) = (new_server_cert(), new_server_cert());
    keeps_last_good(
        |d| {
            kube_write(
                d,
                &[
                    ("tls.crt", a.cert_pem.into_bytes()),
                    ("tls.key", b.key_pem.into_bytes()),
                ],
            )
        },
        "server",
        "the key does not match the certificate",
    )
    .await;
}

fn cert_with(not_before: time::Duration, not_after: time::Duration) -> Issued {
    let mut spec = LeafSpec::server("localhost", &["localhost", "127.0.0.1"]);
    spec.not_before = not_before;
    spec.not_after = not_after;
    postgres().ca.issue(&spec).unwrap()
}

#[tokio::test]
async fn keeps_last_good_on_expired_cert() {
    let old = cert_with(time::Duration::days(-30), time::Duration::days(-1));
    keeps_last_good(|d| kube_write(d, &pair(&old)), "server", "certificate expired at").await;
}

#[tokio::test]
async fn keeps_last_good_on_not_yet_valid_cert() {
    let future = cert_with(time::Duration::days(1), time::Duration::days(30));
    keeps_last_good(
        |d| kube_write(d, &pair(&future)),
        "server",
        "certificate is not valid yet",
    )
    .await;
}

#[tokio::test]
async fn keeps_last_good_on_empty_directory() {
    keeps_last_good(
        |d| {
            for e in std::fs::read_dir(d).unwrap().flatten() {
                let p = e.path();
                if std::fs::symlink_metadata(&p).unwrap().is_dir() {
                    std::fs::remove_dir_all(p).unwrap();
                } else {
                    std::fs::remove_file(p).unwrap();
                }
            }
        },
        "server",
        "tls.crt: cannot read",
    )
    .await;
}

#[tokio::test]
async fn keeps_last_good_on_unreadable_file() {
    // Root reads any file whatever its mode, so "unreadable" is a key that is a directory.
    keeps_last_good(
        |d| {
            let next = new_server_cert();
            kube_write(d, &[("tls.crt", next.cert_pem.into_bytes())]);
            std::fs::create_dir(d.join("..data/tls.key")).unwrap();
            std::os::unix::fs::symlink("..data/tls.key", d.join("tls.key")).unwrap();
        },
        "server",
        "tls.key: cannot read",
    )
    .await;
}

async fn policy_server(first_policy: &str) -> (TestServer, PathBuf, String) {
    let tls = volume();
    let first = new_server_cert();
    kube_write(&tls, &pair(&first));
    let pol = postgres().scratch().join("policy");
    kube_write(&pol, &[("policy.yaml", first_policy.as_bytes().to_vec())]);
    let policy_file = pol.join("policy.yaml").display().to_string();
    let s = server_on(&tls, &["--policy-file", &policy_file]).await;
    (s, pol, serial_of(&first.cert_pem))
}

/// Whether `openssl s_client -tls1_2` completes a handshake.
async fn tls12_accepted(port: u16) -> bool {
    tokio::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-tls1_2",
            "-brief",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap()
        .status
        .success()
}

async fn keeps_last_good_policy(bad: &str, reason: &str) {
    let (s, pol, serial) = policy_server("profile: intermediate\n").await;
    kube_write(&pol, &[("policy.yaml", bad.as_bytes().to_vec())]);
    assert_eventually!(
        material(&s, "policy").await["last_outcome"] == "rejected",
        SOON,
        "bad policy not rejected"
    );
    let err = material(&s, "policy").await["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("policy.yaml") && err.contains(reason), "{err}");
    // Still intermediate: TLS 1.2 still works, same certificate.
    assert_eq!(served_serial(s.port()).await.unwrap(), serial);
    assert!(
        tls12_accepted(s.port()).await,
        "TLS 1.2 still accepted under the last good policy"
    );
    // A good policy is applied: modern refuses TLS 1.2 from now on.
    kube_write(&pol, &[("policy.yaml", b"profile: modern\n".to_vec())]);
    assert_eventually!(
        material(&s, "policy").await["last_outcome"] == "applied",
        SOON,
        "good policy not applied"
    );
    assert!(
        !tls12_accepted(s.port()).await,
        "modern policy refuses TLS 1.2 after the reload"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn keeps_last_good_on_policy_with_cbc_suite() {
    keeps_last_good_policy(
        "cipher_suites: [TLS_AES_128_GCM_SHA256, TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA]\n",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA: CBC suites are open to BEAST/Lucky13; not allowed",
    )
    .await;
}

#[tokio::test]
async fn keeps_last_good_on_policy_yaml_syntax_error() {
    keeps_last_good_policy("profile: [modern\n", "not valid policy YAML").await;
}

#[tokio::test]
async fn rejects_cert_without_expected_san() {
    let dir = volume();
    let first = new_server_cert();
    kube_write(&dir, &pair(&first));
    let s = server_on(&dir, &["--expect-san", "localhost"]).await;
    let wrong = postgres()
        .ca
        .issue(&LeafSpec::server("other", &["other.example"]))
        .unwrap();
    kube_write(&dir, &pair(&wrong));
    let st = wait_rejected(&s, "server", &first).await;
    let err = st["last_error"].as_str().unwrap();
    assert!(err.contains("certificate does not name localhost"), "{err}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn token_keys_rotate_live() {
    let dir = volume();
    kube_write(&dir, &pair(&new_server_cert()));
    let keys = postgres().scratch().join("tokens");
    let k1 = tlsward::token::generate_key_text();
    kube_write(&keys, &[("k1", k1.clone().into_bytes())]);
    let s = server_on(&dir, &["--token-key-dir", keys.to_str().unwrap()]).await;
    let mint = |dir: &Path| {
        tlsward::token::TokenKeys::load_dir(dir)
            .unwrap()
            .issue("t", Duration::from_secs(60), tlsward::util::now_unix())
    };
    let old = mint(&keys);
    kube_write(
        &keys,
        &[
            ("k1", k1.into_bytes()),
            ("k2", tlsward::token::generate_key_text().into_bytes()),
        ],
    );
    assert_eventually!(
        material(&s, "token_keys").await["last_outcome"] == "applied",
        SOON,
        "keys not reloaded"
    );
    let new = mint(&keys);
    let url = format!("{}/users/1", s.base);
    for t in [&old, &new] {
        let st = s.client.get(&url).bearer_auth(t).send().await.unwrap().status();
        assert_ne!(st, 401, "both the old and the new key verify");
    }
    kube_write(&keys, &[("k2", std::fs::read(keys.join("k2")).unwrap())]);
    let s_ref = &s;
    assert_eventually!(
        s_ref.client.get(&url).bearer_auth(&old).send().await.unwrap().status() == 401,
        SOON,
        "a removed key stops verifying"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn reloads_on_sighup_and_interval_without_file_events() {
    let dir = volume();
    kube_write(&dir, &pair(&new_server_cert()));
    let s = server_on(&dir, &["--file-watch", "false", "--reload-interval", "300ms"]).await;
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    wait_serial(&s, &next).await;
    s.running.shutdown().await;

    let dir = volume();
    kube_write(&dir, &pair(&new_server_cert()));
    let s = server_on(&dir, &["--file-watch", "false"]).await;
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_ne!(
        served_serial(s.port()).await.unwrap(),
        serial_of(&next.cert_pem),
        "no watcher, no interval: not reloaded yet"
    );
    let pid = std::process::id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    wait_serial(&s, &next).await;
    s.running.shutdown().await;
}

#[tokio::test]
async fn warns_when_the_certificate_expires_soon() {
    let dir = volume();
    kube_write(
        &dir,
        &pair(&cert_with(time::Duration::hours(-1), time::Duration::days(2))),
    );
    let s = server_on(&dir, &["--expiry-warning", "7d"]).await;
    assert_eventually!(
        support::metric(&s.metrics().await, r#"tlsward_cert_expiring_soon{material="server"}"#) == 1.0,
        SOON,
        "expiring soon not flagged"
    );
    kube_write(&dir, &pair(&new_server_cert()));
    assert_eventually!(
        support::metric(&s.metrics().await, r#"tlsward_cert_expiring_soon{material="server"}"#) == 0.0,
        SOON,
        "a renewed certificate clears the flag"
    );
    s.running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_rotations_under_load_drop_nothing() {
    let dir = volume();
    kube_write(&dir, &pair(&new_server_cert()));
    let s = Arc::new(server_on(&dir, &[]).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut loaders = Vec::new();
    for keep_alive in [true, false] {
        let (s, stop, ok, failed) = (s.clone(), stop.clone(), ok.clone(), failed.clone());
        loaders.push(tokio::spawn(async move {
            let keep = support::client_for(s.running.tls_addr);
            while !stop.load(Ordering::Relaxed) {
                let client = if keep_alive {
                    keep.clone()
                } else {
                    support::client_for(s.running.tls_addr)
                };
                match client.get(format!("{}/", s.base)).send().await {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    other => {
                        eprintln!("failed request: {other:?}");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for i in 0..50 {
        let next = new_server_cert();
        let want = serial_of(&next.cert_pem);
        kube_write(&dir, &pair(&next));
        wait_serial(&s, &next).await;
        for _ in 0..3 {
            assert_eq!(
                served_serial(s.port()).await.unwrap(),
                want,
                "rotation {i}: a new connection got an older certificate"
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for l in loaders {
        l.await.unwrap();
    }
    assert_eq!(failed.load(Ordering::Relaxed), 0, "no request failed");
    assert!(
        ok.load(Ordering::Relaxed) > 100,
        "the load ran: {}",
        ok.load(Ordering::Relaxed)
    );
}

#[tokio::test]
async fn a_broken_token_key_file_does_not_stop_a_server_certificate_rotation() {
    let dir = volume();
    let first = new_server_cert();
    kube_write(&dir, &pair(&first));
    let tokens = volume();
    let key = std::fs::read(postgres().token_dir.join("k1")).unwrap();
    kube_write(&tokens, &[("k1", key.clone())]);
    let s = server_on(&dir, &["--token-key-dir", tokens.to_str().unwrap()]).await;
    let token = s.token();
    // One Secret turns bad (a key file too short), and then the server certificate rotates.
    kube_write(&tokens, &[("k1", key), ("k2", b"short".to_vec())]);
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    wait_serial(&s, &next).await;
    assert_eventually!(
        material(&s, "token_keys").await["last_outcome"] == "rejected",
        SOON,
        "the bad token key was not reported"
    );
    let keys = material(&s, "token_keys").await;
    assert!(keys["last_error"].as_str().unwrap().contains("k2"), "{keys}");
    let server = material(&s, "server").await;
    assert_eq!(server["serial"], serial_of(&next.cert_pem), "{server}");
    assert_eq!(server["last_outcome"], "applied", "{server}");
    assert!(server["last_error"].is_null(), "{server}");
    // The last good token keys still verify.
    let r = s
        .client
        .get(format!("{}/users", s.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 401);
    s.running.shutdown().await;
}

/// One `GET /` on a new connection with `config` (whose session cache persists across
/// calls); how the handshake went.
async fn handshake_kind(config: &Arc<rustls::ClientConfig>, port: u16) -> rustls::HandshakeKind {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tls = tls_connect(config, port).await.unwrap();
    let kind = tls.get_ref().1.handshake_kind().unwrap();
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Reading the answer also takes in the session tickets that follow the handshake.
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    kind
}

/// A client whose session cache persists across its connections.
fn resuming_client() -> Arc<rustls::ClientConfig> {
    tls_client(&[], &[b"http/1.1"])
}

#[tokio::test]
async fn sessions_resume_across_a_certificate_only_reload_but_not_across_a_policy_change() {
    let dir = volume();
    kube_write(&dir, &pair(&new_server_cert()));
    let policy_dir = postgres().scratch();
    std::fs::write(policy_dir.join("policy.yaml"), "profile: intermediate\n").unwrap();
    let policy = policy_dir.join("policy.yaml");
    let s = server_on(&dir, &["--policy-file", policy.to_str().unwrap()]).await;
    let client = resuming_client();
    assert_eq!(handshake_kind(&client, s.port()).await, rustls::HandshakeKind::Full);
    assert_eq!(handshake_kind(&client, s.port()).await, rustls::HandshakeKind::Resumed);
    let next = new_server_cert();
    kube_write(&dir, &pair(&next));
    wait_serial(&s, &next).await;
    assert_eq!(
        handshake_kind(&client, s.port()).await,
        rustls::HandshakeKind::Resumed,
        "a certificate rotation dropped the sessions"
    );
    // A new policy: sessions made under the old one are not resumed.
    std::fs::write(&policy, "profile: intermediate\nalpn: [http/1.1]\n").unwrap();
    assert_eventually!(
        material(&s, "policy").await["last_outcome"] == "applied",
        SOON,
        "the policy was not reloaded"
    );
    assert_eq!(handshake_kind(&client, s.port()).await, rustls::HandshakeKind::Full);
    s.running.shutdown().await;
}

/// One keep-alive `GET /` on an open connection: the status line.
async fn get_on(tls: &mut Tls) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("content-length");
    while buf.len() < head_end + length {
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed mid-body");
        buf.extend_from_slice(&chunk[..n]);
    }
    head.lines().next().unwrap().to_string()
}

fn peer_serial(tls: &Tls) -> String {
    let der = &tls.get_ref().1.peer_certificates().unwrap()[0];
    tlsward::tls::material::CertInfo::from_der(der).unwrap().serial
}

#[tokio::test]
async fn applies_cipher_policy_change_to_new_handshakes_only() {
    let tls_dir = volume();
    let first = new_server_cert();
    kube_write(&tls_dir, &pair(&first));
    let pol = postgres().scratch().join("policy");
    kube_write(&pol, &[("policy.yaml", b"profile: intermediate\n".to_vec())]);
    let policy_file = pol.join("policy.yaml").display().to_string();
    let s = server_on(&tls_dir, &["--policy-file", &policy_file]).await;
    let first_serial = serial_of(&first.cert_pem);
    let tls12 = tls_client(&[&rustls::version::TLS12], &[b"http/1.1"]);
    let mut before = tls_connect(&tls12, s.port()).await.expect("TLS 1.2 under intermediate");
    assert_eq!(get_on(&mut before).await, "HTTP/1.1 200 OK");
    let suite = before.get_ref().1.negotiated_cipher_suite().unwrap().suite();
    // The policy turns to TLS 1.3 only.
    kube_write(&pol, &[("policy.yaml", b"profile: modern\n".to_vec())]);
    assert_eventually!(
        material(&s, "policy").await["last_outcome"] == "applied",
        SOON,
        "the modern policy was not applied"
    );
    assert!(
        tls_connect(&tls12, s.port()).await.is_err(),
        "a new TLS 1.2 handshake succeeded under the TLS 1.3-only policy"
    );
    // The connection made before keeps what it handshook with.
    assert_eq!(get_on(&mut before).await, "HTTP/1.1 200 OK");
    let session = before.get_ref().1;
    assert_eq!(session.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(session.negotiated_cipher_suite().unwrap().suite(), suite);
    // A new certificate: new handshakes get it, the old connection keeps serving on its own.
    let next = new_server_cert();
    kube_write(&tls_dir, &pair(&next));
    wait_serial(&s, &next).await;
    assert_eq!(get_on(&mut before).await, "HTTP/1.1 200 OK");
    assert_eq!(peer_serial(&before), first_serial);
    let mut after = tls_connect(&resuming_client(), s.port()).await.unwrap();
    assert_eq!(get_on(&mut after).await, "HTTP/1.1 200 OK");
    assert_eq!(
        after.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(peer_serial(&after), serial_of(&next.cert_pem));
    drop((before, after));
    s.running.shutdown().await;
}
