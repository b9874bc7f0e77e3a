//! Independent clients (`openssl s_client`) cannot downgrade the listener: TLS 1.0, 1.1 and
//! TLS 1.2 CBC suites fail; TLS 1.2 ECDHE-AEAD and TLS 1.3 succeed; `profile: modern` refuses
//! TLS 1.2. Each refused attempt is checked to have reached the server (the failure counter
//! moves), so a client that refused locally could not make the test pass.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::time::Duration;

use support::{TestServer, handshake_failures, output_text as text, postgres, s_client, serve_args, start};
use tokio::process::Command;

async fn assert_refused(s: &TestServer, args: &[&str], reason: &str) {
    let before = handshake_failures(&s.metrics().await, reason);
    let out = s_client(s.port(), args).await;
    assert!(!out.status.success(), "{args:?} must fail: {}", text(&out));
    let want = before + 1.0;
    assert_eventually!(
        handshake_failures(&s.metrics().await, reason) >= want,
        Duration::from_secs(5),
        "{args:?}: the server did not count a {reason} failure: {}\n{}",
        text(&out),
        s.metrics()
            .await
            .lines()
            .filter(|l| l.contains("failures"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// SECLEVEL=0 makes OpenSSL 3 really offer TLS 1.0/1.1 and SHA-1 suites instead of refusing
// locally.
const LEGACY: &str = "DEFAULT:@SECLEVEL=0";

#[tokio::test]
async fn refuses_tls10_tls11_and_tls12_cbc() {
    let s = start(serve_args(&[])).await;
    assert_refused(&s, &["-tls1", "-cipher", LEGACY], "protocol_version").await;
    assert_refused(&s, &["-tls1_1", "-cipher", LEGACY], "protocol_version").await;
    assert_refused(&s, &["-tls1_2", "-cipher", "AES128-SHA:@SECLEVEL=0"], "*").await;
    assert_refused(
        &s,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0",
        ],
        "*",
    )
    .await;
    // OpenSSL 3 cannot offer 3DES or RC4 at all ("no cipher match"), so those are left to
    // hand-built ClientHellos (the scanner); the policy tests refuse them by name.
    s.running.shutdown().await;
}

#[tokio::test]
async fn accepts_tls12_ecdhe_aead_and_tls13() {
    let s = start(serve_args(&[])).await;
    let out = s_client(s.port(), &["-tls1_2"]).await;
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("Protocol version: TLSv1.2") && t.contains("Ciphersuite: ECDHE-ECDSA-AES"),
        "{t}"
    );
    let out = s_client(s.port(), &["-tls1_3"]).await;
    let t = text(&out);
    assert!(out.status.success() && t.contains("Protocol version: TLSv1.3"), "{t}");
    let chacha = s_client(s.port(), &["-tls1_2", "-cipher", "ECDHE-ECDSA-CHACHA20-POLY1305"]).await;
    assert!(chacha.status.success(), "{}", text(&chacha));
    s.running.shutdown().await;
}

#[tokio::test]
async fn modern_profile_refuses_tls12() {
    let dir = postgres().scratch();
    let policy = dir.join("policy.yaml");
    std::fs::write(&policy, "profile: modern\n").unwrap();
    let s = start(serve_args(&["--policy-file", policy.to_str().unwrap()])).await;
    assert_refused(&s, &["-tls1_2"], "protocol_version").await;
    let out = s_client(s.port(), &["-tls1_3"]).await;
    assert!(out.status.success(), "{}", text(&out));
    s.running.shutdown().await;
}

#[tokio::test]
async fn curl_with_the_ca_gets_json_over_tls13() {
    let s = start(serve_args(&[])).await;
    let out = Command::new("curl")
        .args([
            "-sS",
            "--cacert",
            postgres().ca_file.to_str().unwrap(),
            "--tlsv1.3",
            "-w",
            "\n%{http_version}",
        ])
        .args(["--resolve", &format!("localhost:{}:127.0.0.1", s.port())])
        .arg(format!("https://localhost:{}/", s.port()))
        .output()
        .await
        .expect("curl is installed");
    let t = text(&out);
    assert!(
        out.status.success() && t.contains("\"service\":\"tlsward\"") && t.ends_with('2'),
        "{t}"
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn required_client_auth_refuses_clients_without_certificate() {
    let pg = postgres();
    let dir = pg.scratch();
    std::fs::write(dir.join("policy.yaml"), "client_auth: required\n").unwrap();
    let ca_dir = dir.join("client-ca");
    std::fs::create_dir(&ca_dir).unwrap();
    std::fs::copy(&pg.ca_file, ca_dir.join("ca.crt")).unwrap();
    let s = start(serve_args(&[
        "--policy-file",
        dir.join("policy.yaml").to_str().unwrap(),
        "--client-ca-dir",
        ca_dir.to_str().unwrap(),
    ]))
    .await;
    assert!(
        s.client.get(format!("{}/", s.base)).send().await.is_err(),
        "no client certificate must fail"
    );
    let cert = pg.client_dir.join("tls.crt");
    let key = pg.client_dir.join("tls.key");
    let out = s_client(
        s.port(),
        &[
            "-tls1_3",
            "-cert",
            cert.to_str().unwrap(),
            "-key",
            key.to_str().unwrap(),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out));
    s.running.shutdown().await;
}
