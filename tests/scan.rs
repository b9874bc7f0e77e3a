//! `tlsward scan` against real servers on 127.0.0.1: tlsward itself (no findings, exactly its
//! protocols and suites), deliberately weak OpenSSL 3 servers (`openssl s_server` with
//! `@SECLEVEL=0`), and the test PostgreSQL through `--starttls postgres`.

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use support::{free_port, postgres, serve_args, start};
use tlsward::pki::{Ca, Issued, KeyType, LeafSpec};

/// Runs the binary: (exit code, JSON report or stderr).
async fn scan(args: &[&str]) -> (i32, Value, String) {
    let out = tokio::process::Command::new(support::bin())
        .arg("scan")
        .args(args)
        .arg("--json")
        .output()
        .await
        .unwrap();
    let code = out.status.code().unwrap_or(-1);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let json = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (code, json, stderr)
}

fn ca_file() -> String {
    postgres().ca_file.display().to_string()
}

fn finding_ids(r: &Value) -> Vec<String> {
    r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

fn accepted(r: &Value) -> Vec<String> {
    r["protocols"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.as_bool() == Some(true))
        .map(|(k, _)| k.clone())
        .collect()
}

fn suite_names(r: &Value, proto: &str) -> Vec<String> {
    r["cipher_suites"][proto].as_array().map_or(Vec::new(), |l| {
        l.iter().map(|s| s["name"].as_str().unwrap().to_string()).collect()
    })
}

/// An `openssl s_server` on 127.0.0.1, killed on drop.
struct SServer {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn s_server(issued: &Issued, chain: Option<&str>, args: &[&str]) -> SServer {
    let dir = postgres().scratch();
    std::fs::write(dir.join("c.pem"), &issued.cert_pem).unwrap();
    std::fs::write(dir.join("k.pem"), &issued.key_pem).unwrap();
    let port = free_port();
    let mut cmd = tokio::process::Command::new("openssl");
    cmd.args([
        "s_server",
        "-accept",
        &format!("127.0.0.1:{port}"),
        "-www",
        "-quiet",
        "-naccept",
        "1000",
    ])
    .args([
        "-cert",
        dir.join("c.pem").to_str().unwrap(),
        "-key",
        dir.join("k.pem").to_str().unwrap(),
    ]);
    if let Some(chain) = chain {
        std::fs::write(dir.join("chain.pem"), chain).unwrap();
        cmd.args(["-cert_chain", dir.join("chain.pem").to_str().unwrap()]);
    }
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    assert_eventually!(
        tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok(),
        Duration::from_secs(10),
        "s_server did not start"
    );
    SServer { child, port }
}

fn ec_leaf() -> Issued {
    postgres()
        .ca
        .issue(&LeafSpec::server("localhost", &["localhost", "127.0.0.1"]))
        .unwrap()
}

fn target(port: u16) -> String {
    format!("localhost:{port}")
}

#[tokio::test]
async fn tlsward_itself_has_no_findings() {
    let s = start(serve_args(&[])).await;
    let (code, r, err) = scan(&[&target(s.port()), "--ca", &ca_file(), "--fail-on", "low"]).await;
    assert_eq!(code, 0, "{r:#} {err}");
    assert_eq!(accepted(&r), vec!["TLSv1.2", "TLSv1.3"]);
    let mut tls12 = suite_names(&r, "TLSv1.2");
    tls12.sort();
    assert_eq!(
        tls12,
        vec![
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        ]
    );
    assert_eq!(suite_names(&r, "TLSv1.3").len(), 3);
    assert_eq!(r["schema"], "tlsward.scan/v2");
    assert!(r["http"]["hsts"].as_str().unwrap().contains("max-age=63072000"));
    assert!(r["certificate"]["trusted"].as_bool().unwrap());
    assert_eq!(r["client_renegotiation"], false, "rustls refuses renegotiation");
    assert!(property_list(&r, "not_checked").is_empty(), "{r:#}");
    assert!(
        r["duration_ms"].as_u64().unwrap() < 1000,
        "a loopback scan takes well under 1 s: {}",
        r["duration_ms"]
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn tlsward_modern_profile_offers_tls13_only() {
    let dir = postgres().scratch();
    std::fs::write(dir.join("p.yaml"), "profile: modern\n").unwrap();
    let s = start(serve_args(&["--policy-file", dir.join("p.yaml").to_str().unwrap()])).await;
    let (code, r, err) = scan(&[&target(s.port()), "--ca", &ca_file(), "--fail-on", "low"]).await;
    assert_eq!(code, 0, "{r:#} {err}");
    assert_eq!(accepted(&r), vec!["TLSv1.3"]);
    s.running.shutdown().await;
}

#[tokio::test]
async fn tls10_with_cbc_is_beast() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"],
    )
    .await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 1, "{r:#} {err}");
    assert_eq!(accepted(&r), vec!["TLSv1.0"]);
    assert_eq!(suite_names(&r, "TLSv1.0"), vec!["TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"]);
    let ids = finding_ids(&r);
    assert!(
        ids.contains(&"beast".into()) && ids.contains(&"tls10".into()),
        "{ids:?}"
    );
    assert!(
        !ids.contains(&"rc4".into()) && !ids.contains(&"sweet32".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn tls12_with_cbc_is_not_beast() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA"],
    )
    .await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 0, "only low findings: {r:#} {err}");
    assert_eq!(accepted(&r), vec!["TLSv1.2"]);
    let ids = finding_ids(&r);
    assert_eq!(ids, vec!["cbc_cipher", "hsts_missing"], "{r:#}");
    // rustls has no CBC suite: the certificate was read from the hand-built handshake, and
    // GET / (s_server -www sends no HSTS) went through the legacy OpenSSL client.
    assert!(r["http"]["status"].as_str().unwrap().contains("200"), "{r:#}");
    assert!(r["certificate"]["trusted"].as_bool().unwrap(), "{r:#}");
}

#[tokio::test]
async fn tls11_with_cbc_is_deprecated_but_not_beast() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &["-tls1_1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"],
    )
    .await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 1, "{r:#} {err}");
    let ids = finding_ids(&r);
    assert!(
        ids.contains(&"tls11".into()) && ids.contains(&"cbc_cipher".into()) && !ids.contains(&"beast".into()),
        "{ids:?}"
    );
}

/// A localhost server certificate that expired yesterday.
fn expired_leaf() -> LeafSpec {
    let mut spec = LeafSpec::server("localhost", &["localhost"]);
    spec.not_before = time::Duration::days(-30);
    spec.not_after = time::Duration::days(-1);
    spec
}

#[tokio::test]
async fn certificate_problems_are_found() {
    let pg = postgres();
    let expired = expired_leaf();
    let mut future = LeafSpec::server("localhost", &["localhost"]);
    future.not_before = time::Duration::days(2);
    let mut soon = LeafSpec::server("localhost", &["localhost"]);
    soon.not_after = time::Duration::days(10);
    let other_ca = Ca::new("stranger CA", KeyType::Ecdsa).unwrap();
    let self_signed = Ca::new("localhost", KeyType::Ecdsa).unwrap();
    let self_signed = Issued {
        cert_pem: self_signed.cert_pem.clone(),
        key_pem: self_signed.key_pem(),
    };
    let cases: Vec<(Issued, &str, Option<&str>)> = vec![
        (pg.ca.issue(&expired).unwrap(), "cert_expired", None),
        (pg.ca.issue(&future).unwrap(), "cert_not_yet_valid", None),
        (pg.ca.issue(&soon).unwrap(), "cert_expiring_soon", None),
        (
            pg.ca.issue(&LeafSpec::server("other", &["other.example"])).unwrap(),
            "hostname_mismatch",
            None,
        ),
        // A complete chain to a root nobody trusts.
        (
            other_ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap(),
            "untrusted_root",
            Some(other_ca.cert_pem.as_str()),
        ),
        (self_signed, "self_signed", None),
        // A leaf for client authentication only.
        (
            pg.ca.issue(&LeafSpec::client("localhost")).unwrap(),
            "cert_wrong_usage",
            None,
        ),
    ];
    for (issued, want, chain) in cases {
        let srv = s_server(&issued, chain, &[]).await;
        let (_, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
        let ids = finding_ids(&r);
        assert!(ids.contains(&want.to_string()), "{want}: {ids:?} {err}");
    }
}

/// The certificate verdicts of a scan of a server with `issued` (and `chain`).
async fn verdicts(issued: &Issued, chain: Option<&str>) -> (Value, Vec<String>) {
    let srv = s_server(issued, chain, &[]).await;
    let (_, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert!(r["certificate"].is_object(), "{r:#} {err}");
    let ids = finding_ids(&r);
    (r["certificate"].clone(), ids)
}

#[tokio::test]
async fn an_expired_leaf_under_a_given_root_is_expired_not_incomplete() {
    let expired = expired_leaf();
    let (c, ids) = verdicts(&postgres().ca.issue(&expired).unwrap(), None).await;
    assert_eq!(
        (c["expired"].as_bool(), c["trusted"].as_bool()),
        (Some(true), Some(false)),
        "{c:#}"
    );
    assert_eq!(
        (c["incomplete"].as_bool(), c["untrusted_root"].as_bool()),
        (Some(false), Some(false)),
        "{c:#}"
    );
    assert!(
        ids.contains(&"cert_expired".into()) && !ids.contains(&"incomplete_chain".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn an_expired_leaf_under_an_older_intermediate_is_not_trusted() {
    let pg = postgres();
    let inter = pg.ca.intermediate("older intermediate").unwrap();
    let expired = expired_leaf();
    let (c, ids) = verdicts(&inter.issue(&expired).unwrap(), Some(&inter.cert_pem)).await;
    assert_eq!(c["trusted"], false, "judged at the scan's time: {c:#}");
    assert_eq!(c["expired"], true, "{c:#}");
    assert!(!ids.contains(&"incomplete_chain".into()), "{ids:?}");
}

#[tokio::test]
async fn a_client_auth_only_leaf_is_wrong_usage_not_incomplete() {
    let mut spec = LeafSpec::client("localhost");
    spec.sans = vec!["localhost".into()];
    let (c, ids) = verdicts(&postgres().ca.issue(&spec).unwrap(), None).await;
    assert_eq!(
        (c["wrong_usage"].as_bool(), c["incomplete"].as_bool()),
        (Some(true), Some(false)),
        "{c:#}"
    );
    assert!(
        ids.contains(&"cert_wrong_usage".into()) && !ids.contains(&"incomplete_chain".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn a_self_signed_leaf_and_an_unknown_root_are_told_apart() {
    let self_signed = Ca::new("localhost", KeyType::Ecdsa).unwrap();
    let leaf = Issued {
        cert_pem: self_signed.cert_pem.clone(),
        key_pem: self_signed.key_pem(),
    };
    let (c, _) = verdicts(&leaf, None).await;
    assert_eq!(
        (c["self_signed"].as_bool(), c["untrusted_root"].as_bool()),
        (Some(true), Some(false)),
        "{c:#}"
    );
    let stranger = Ca::new("stranger CA", KeyType::Ecdsa).unwrap();
    let leaf = stranger.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let (c, _) = verdicts(&leaf, Some(&stranger.cert_pem)).await;
    assert_eq!(
        (c["self_signed"].as_bool(), c["untrusted_root"].as_bool()),
        (Some(false), Some(true)),
        "{c:#}"
    );
    assert_eq!(c["incomplete"], false, "{c:#}");
}

#[tokio::test]
async fn incomplete_chain_is_found_and_a_full_chain_is_not() {
    let pg = postgres();
    let inter = pg.ca.intermediate("test intermediate").unwrap();
    let leaf = inter.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let srv = s_server(&leaf, None, &[]).await;
    let (code, r, _) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 1);
    assert!(finding_ids(&r).contains(&"incomplete_chain".into()), "{r:#}");
    let srv = s_server(&leaf, Some(&inter.cert_pem), &[]).await;
    let (_, r, _) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    let ids = finding_ids(&r);
    assert!(
        !ids.contains(&"incomplete_chain".into()) && !ids.contains(&"untrusted_chain".into()),
        "{ids:?}"
    );
    assert_eq!(r["certificate"]["chain"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn weak_dh_is_found() {
    let dir = postgres().scratch();
    let dh = dir.join("dh.pem");
    let st = tokio::process::Command::new("openssl")
        .args(["dhparam", "-out", dh.to_str().unwrap(), "1024"])
        .stderr(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(st.success());
    let mut spec = LeafSpec::server("localhost", &["localhost"]);
    spec.key_type = KeyType::Rsa2048;
    let leaf = postgres().ca.issue(&spec).unwrap();
    let srv = s_server(
        &leaf,
        None,
        &[
            "-tls1_2",
            "-dhparam",
            dh.to_str().unwrap(),
            "-cipher",
            "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
        ],
    )
    .await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 1, "{r:#} {err}");
    let weak = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "weak_dh")
        .expect("weak_dh");
    assert!(weak["evidence"].as_str().unwrap().contains("1024-bit"), "{weak}");
    assert_eq!(r["cipher_suites"]["TLSv1.2"][0]["dh_bits"], 1024);
}

#[tokio::test]
async fn null_and_anonymous_suites_are_found() {
    let srv = s_server(&ec_leaf(), None, &["-tls1_2", "-cipher", "aNULL:eNULL:@SECLEVEL=0"]).await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(code, 1, "{r:#} {err}");
    let ids = finding_ids(&r);
    assert!(
        ids.contains(&"null_cipher".into()) && ids.contains(&"anon_cipher".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn postgres_starttls_is_scanned() {
    let pg = postgres();
    let (code, r, err) = scan(&[
        &format!("localhost:{}", pg.port),
        "--starttls",
        "postgres",
        "--ca",
        &ca_file(),
    ])
    .await;
    assert_eq!(code, 0, "{r:#} {err}");
    assert_eq!(accepted(&r), vec!["TLSv1.2", "TLSv1.3"]);
    assert!(
        suite_names(&r, "TLSv1.2")
            .iter()
            .all(|s| s.starts_with("TLS_ECDHE_") && !s.contains("CBC")),
        "{r:#}"
    );
    assert!(r["http"].is_null(), "no HTTP over the database port");
    assert_eq!(r["starttls"], "postgres");
}

#[tokio::test]
async fn unreachable_and_non_tls_targets_exit_2() {
    let (code, _, err) = scan(&[&format!("127.0.0.1:{}", free_port())]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    let s = start(serve_args(&[])).await;
    let admin_port = s.running.admin_addr.port();
    let (code, _, err) = scan(&[&format!("127.0.0.1:{admin_port}")]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no TLS handshake"), "{err}");
    // What the port speaks instead, in words, not a parser's byte dump.
    assert!(err.contains("no TLS: the server answered `HTTP/1.1 400"), "{err}");
    let (code, _, err) = scan(&["no-port-here"]).await;
    assert_eq!(code, 2, "{err}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn table_output_names_the_findings() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"],
    )
    .await;
    let out = tokio::process::Command::new(support::bin())
        .args(["scan", &target(srv.port), "--ca", &ca_file()])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("TLSv1.0  accepted") && text.contains("beast") && text.contains("BEAST"),
        "{text}"
    );
    let _ = Path::new("");
}

/// A tlslite-ng server (tests/support/weak_server.py) with an RSA certificate from the test
/// CA, for what OpenSSL 3 cannot serve: SSLv3, RC4, 3DES, no SCSV, no secure renegotiation.
struct WeakServer {
    child: tokio::process::Child,
    port: u16,
}

impl Drop for WeakServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

async fn weak_server(versions: &str, ciphers: &str, extra: &[&str]) -> WeakServer {
    use tokio::io::AsyncBufReadExt;
    let dir = postgres().scratch();
    let mut spec = LeafSpec::server("localhost", &["localhost", "127.0.0.1"]);
    spec.key_type = KeyType::Rsa2048;
    let leaf = postgres().ca.issue(&spec).unwrap();
    std::fs::write(dir.join("c.pem"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.join("k.pem"), &leaf.key_pem).unwrap();
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/weak_server.py");
    let mut child = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            &port.to_string(),
            dir.join("c.pem").to_str().unwrap(),
            dir.join("k.pem").to_str().unwrap(),
        ])
        .args(["--versions", versions, "--ciphers", ciphers])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("python3");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(Duration::from_secs(30), lines.next_line()).await;
    assert!(
        matches!(first, Ok(Ok(Some(ref l))) if l == "ready"),
        "weak_server.py did not start (is tlslite-ng installed? scripts/deps.sh installs it): {first:?}"
    );
    WeakServer { child, port }
}

async fn scan_ids(port: u16) -> (i32, Value, Vec<String>) {
    let (code, r, err) = scan(&[&target(port), "--ca", &ca_file(), "--timeout", "10s"]).await;
    assert_ne!(code, 2, "{err}");
    let ids = finding_ids(&r);
    (code, r, ids)
}

#[tokio::test]
async fn rc4_is_found() {
    let srv = weak_server("tls1.0,tls1.1,tls1.2", "rc4", &[]).await;
    let (code, r, ids) = scan_ids(srv.port).await;
    assert_eq!(code, 1);
    assert!(
        ids.contains(&"rc4".into()) && !ids.contains(&"beast".into()) && !ids.contains(&"sweet32".into()),
        "{ids:?}"
    );
    assert!(suite_names(&r, "TLSv1.2").iter().all(|n| n.contains("RC4")), "{r:#}");
}

#[tokio::test]
async fn triple_des_is_sweet32_and_beast_on_tls10() {
    let srv = weak_server("tls1.0,tls1.1,tls1.2", "3des", &[]).await;
    let (_, r, ids) = scan_ids(srv.port).await;
    assert!(
        ids.contains(&"sweet32".into()) && ids.contains(&"beast".into()),
        "{ids:?}"
    );
    assert!(
        suite_names(&r, "TLSv1.0").contains(&"TLS_RSA_WITH_3DES_EDE_CBC_SHA".to_string()),
        "{r:#}"
    );
}

#[tokio::test]
async fn sslv3_is_poodle() {
    let srv = weak_server("ssl3", "aes128", &[]).await;
    let (code, r, ids) = scan_ids(srv.port).await;
    assert_eq!(code, 1);
    assert_eq!(accepted(&r), vec!["SSLv3"]);
    assert!(
        ids.contains(&"poodle".into()) && ids.contains(&"beast".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn ignored_fallback_scsv_is_found_and_honoured_is_not() {
    let srv = weak_server("tls1.0,tls1.1,tls1.2", "aes128gcm,aes128", &["--ignore-scsv"]).await;
    let (_, _, ids) = scan_ids(srv.port).await;
    assert!(ids.contains(&"no_fallback_scsv".into()), "{ids:?}");
    let honest = weak_server("tls1.0,tls1.1,tls1.2", "aes128gcm,aes128", &[]).await;
    let (_, _, ids) = scan_ids(honest.port).await;
    assert!(
        !ids.contains(&"no_fallback_scsv".into()) && ids.contains(&"tls10".into()),
        "{ids:?}"
    );
}

#[tokio::test]
async fn missing_secure_renegotiation_is_found() {
    let srv = weak_server("tls1.2", "aes128gcm", &["--no-reneg"]).await;
    let (_, _, ids) = scan_ids(srv.port).await;
    assert!(ids.contains(&"no_secure_renegotiation".into()), "{ids:?}");
    let honest = weak_server("tls1.2", "aes128gcm", &[]).await;
    let (_, _, ids) = scan_ids(honest.port).await;
    assert!(!ids.contains(&"no_secure_renegotiation".into()), "{ids:?}");
}

/// testssl.sh's verdicts on the same target: protocols offered, and BEAST / RC4 / SWEET32 /
/// client-initiated renegotiation vulnerable or not (its JSON `severity` above OK/INFO).
async fn testssl_verdicts(port: u16) -> (Vec<String>, Vec<String>) {
    assert!(
        std::process::Command::new("testssl").arg("--version").output().is_ok(),
        "testssl.sh is not installed (apt-get install testssl.sh; scripts/deps.sh installs it)"
    );
    let dir = postgres().scratch();
    let json = dir.join("testssl.json");
    let out = tokio::process::Command::new("testssl")
        .args([
            "--quiet",
            "--color",
            "0",
            "--nodns",
            "none",
            "--ip",
            "127.0.0.1",
            "--warnings",
            "off",
            "-p",
            "-U",
        ])
        .args(["--jsonfile", json.to_str().unwrap(), &target(port)])
        .output()
        .await
        .unwrap();
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|_| panic!("testssl wrote no JSON: {}", String::from_utf8_lossy(&out.stdout)));
    let v: Value = serde_json::from_str(&text).unwrap();
    let entries = v.as_array().cloned().unwrap_or_default();
    let get = |id: &str| entries.iter().find(|e| e["id"] == id).cloned().unwrap_or(Value::Null);
    let mut protocols = Vec::new();
    for (ours, theirs) in [
        ("SSLv3", "SSLv3"),
        ("TLSv1.0", "TLS1"),
        ("TLSv1.1", "TLS1_1"),
        ("TLSv1.2", "TLS1_2"),
        ("TLSv1.3", "TLS1_3"),
    ] {
        let f = get(theirs)["finding"].as_str().unwrap_or("").to_string();
        if f.starts_with("offered") {
            protocols.push(ours.to_string());
        }
    }
    let mut vulns = Vec::new();
    for (ours, theirs) in [
        ("beast", "BEAST"),
        ("rc4", "RC4"),
        ("sweet32", "SWEET32"),
        ("client_renegotiation", "secure_client_renego"),
    ] {
        let sev = get(theirs)["severity"].as_str().unwrap_or("OK").to_string();
        if !matches!(sev.as_str(), "OK" | "INFO") {
            vulns.push(ours.to_string());
        }
    }
    (protocols, vulns)
}

async fn assert_agrees_with_testssl(port: u16) {
    let (_, r, _) = scan(&[&target(port), "--ca", &ca_file()]).await;
    let ours_vulns: Vec<String> = finding_ids(&r)
        .into_iter()
        .filter(|i| ["beast", "rc4", "sweet32", "client_renegotiation"].contains(&i.as_str()))
        .collect();
    let (protocols, vulns) = testssl_verdicts(port).await;
    assert_eq!(accepted(&r), protocols, "protocol verdicts differ");
    let mut ours_sorted = ours_vulns.clone();
    ours_sorted.sort();
    let mut theirs = vulns.clone();
    theirs.sort();
    assert_eq!(
        ours_sorted, theirs,
        "BEAST/RC4/SWEET32/client-renegotiation verdicts differ"
    );
}

#[tokio::test]
async fn verdicts_agree_with_testssl_on_a_beast_server() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &["-tls1", "-cipher", "ECDHE-ECDSA-AES128-SHA:@SECLEVEL=0"],
    )
    .await;
    assert_agrees_with_testssl(srv.port).await;
}

#[tokio::test]
async fn verdicts_agree_with_testssl_on_a_renegotiating_server() {
    let srv = s_server(&ec_leaf(), None, &["-tls1_2", "-client_renegotiation"]).await;
    assert_agrees_with_testssl(srv.port).await;
}

#[tokio::test]
async fn verdicts_agree_with_testssl_on_tlsward() {
    let s = start(serve_args(&[])).await;
    assert_agrees_with_testssl(s.port()).await;
    s.running.shutdown().await;
}

fn group_names(r: &Value, proto: &str) -> Vec<String> {
    r["groups"][proto]["groups"].as_array().map_or(Vec::new(), |l| {
        l.iter().map(|g| g["name"].as_str().unwrap().to_string()).collect()
    })
}

#[tokio::test]
async fn tlsward_offers_the_post_quantum_hybrid_first() {
    let s = start(serve_args(&[])).await;
    let (_, r, err) = scan(&[&target(s.port()), "--ca", &ca_file()]).await;
    assert_eq!(
        group_names(&r, "TLSv1.3"),
        ["X25519MLKEM768", "x25519", "secp256r1", "secp384r1"],
        "{r:#} {err}"
    );
    assert_eq!(
        group_names(&r, "TLSv1.2"),
        ["x25519", "secp256r1", "secp384r1"],
        "{r:#}"
    );
    // rustls takes the client's order: the scanner's, which puts the hybrid first.
    assert_eq!(r["groups"]["TLSv1.3"]["preference"], "client", "{r:#}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn ccm_and_ccm_8_suites_are_found_on_tls13_and_tls12() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &[
            "-ciphersuites",
            "TLS_AES_128_CCM_8_SHA256:TLS_AES_128_CCM_SHA256",
            "-cipher",
            "ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES256-CCM",
        ],
    )
    .await;
    let (_, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    let mut t13 = suite_names(&r, "TLSv1.3");
    t13.sort();
    assert_eq!(
        t13,
        ["TLS_AES_128_CCM_8_SHA256", "TLS_AES_128_CCM_SHA256"],
        "{r:#} {err}"
    );
    let mut t12 = suite_names(&r, "TLSv1.2");
    t12.sort();
    assert_eq!(
        t12,
        ["TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8", "TLS_ECDHE_ECDSA_WITH_AES_256_CCM"],
        "{r:#}"
    );
}

#[tokio::test]
async fn groups_are_listed_in_the_servers_order_and_a_client_order_server_is_told_apart() {
    let ordered = s_server(
        &ec_leaf(),
        None,
        &["-groups", "secp384r1:X25519:prime256v1", "-serverpref"],
    )
    .await;
    let (_, r, err) = scan(&[&target(ordered.port), "--ca", &ca_file()]).await;
    assert_eq!(
        group_names(&r, "TLSv1.3"),
        ["secp384r1", "x25519", "secp256r1"],
        "{r:#} {err}"
    );
    assert_eq!(r["groups"]["TLSv1.3"]["preference"], "server", "{r:#}");
    assert_eq!(
        group_names(&r, "TLSv1.2"),
        ["secp384r1", "x25519", "secp256r1"],
        "{r:#}"
    );
    // Without -serverpref, OpenSSL takes the client's first supported curve in TLS 1.2.
    let follows = s_server(&ec_leaf(), None, &["-groups", "secp384r1:X25519:prime256v1"]).await;
    let (_, r, _) = scan(&[&target(follows.port), "--ca", &ca_file()]).await;
    assert_eq!(r["groups"]["TLSv1.2"]["preference"], "client", "{r:#}");
    assert_eq!(
        group_names(&r, "TLSv1.2"),
        ["x25519", "secp256r1", "secp384r1"],
        "{r:#}"
    );
}

#[tokio::test]
async fn a_curve_under_224_bits_is_found() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &[
            "-tls1_2",
            "-groups",
            "prime192v1",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256@SECLEVEL=0",
        ],
    )
    .await;
    let (code, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(group_names(&r, "TLSv1.2"), ["secp192r1"], "{r:#} {err}");
    assert!(finding_ids(&r).contains(&"weak_curve".to_string()), "{r:#}");
    assert_eq!(code, 1);
}

#[tokio::test]
async fn sslv3_with_renegotiation_info_is_not_reported_insecure() {
    let srv = weak_server("ssl3", "aes128", &[]).await;
    let (_, r, ids) = scan_ids(srv.port).await;
    assert!(ids.contains(&"poodle".to_string()), "{r:#}");
    assert!(!ids.contains(&"no_secure_renegotiation".to_string()), "{r:#}");
}

#[tokio::test]
async fn anonymous_dh_on_a_1024_bit_group_is_weak_dh() {
    let srv = weak_server(
        "tls1.2",
        "aes128",
        &["--kex", "dh_anon", "--dh-params", "RFC2409_GROUP2"],
    )
    .await;
    let (_, r, ids) = scan_ids(srv.port).await;
    let suites = r["cipher_suites"]["TLSv1.2"].as_array().unwrap();
    assert!(suites.iter().all(|s| s["kx"] == "anon"), "{r:#}");
    assert!(suites.iter().any(|s| s["dh_bits"] == 1024), "{r:#}");
    assert!(
        ids.contains(&"weak_dh".to_string()) && ids.contains(&"anon_cipher".to_string()),
        "{ids:?}"
    );
}

/// A TCP proxy in front of a server that stalls (holds open, never forwards) every
/// connection whose ClientHello's suites make `stall` true: one probe kind that times out.
struct StallProxy {
    port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn hello_suites(record: &[u8]) -> Option<Vec<u16>> {
    use tls_parser::{TlsMessage, TlsMessageHandshake};
    let (_, rec) = tls_parser::parse_tls_plaintext(record).ok()?;
    rec.msg.iter().find_map(|m| match m {
        TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)) => Some(ch.ciphers.iter().map(|c| c.0).collect()),
        _ => None,
    })
}

async fn stall_proxy(upstream: u16, stall: fn(&[u16]) -> bool) -> StallProxy {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 5];
                if client.read_exact(&mut buf).await.is_err() {
                    return;
                }
                let len = usize::from(u16::from_be_bytes([buf[3], buf[4]]));
                buf.resize(5 + len, 0);
                if client.read_exact(&mut buf[5..]).await.is_err() {
                    return;
                }
                if hello_suites(&buf).is_some_and(|s| stall(&s)) {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    return;
                }
                let Ok(mut server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                    return;
                };
                if server.write_all(&buf).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
            });
        }
    });
    StallProxy { port, task }
}

fn inconclusive_properties(r: &Value) -> Vec<String> {
    r["inconclusive"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["property"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_stalled_downgrade_probe_is_inconclusive_never_honoured() {
    // The server ignores TLS_FALLBACK_SCSV; the proxy makes exactly that probe time out.
    let srv = weak_server("tls1.0,tls1.2", "aes128gcm,aes128", &["--ignore-scsv"]).await;
    let proxy = stall_proxy(srv.port, |suites| suites.contains(&0x5600)).await;
    let (code, r, err) = scan(&[
        &target(proxy.port),
        "--ca",
        &ca_file(),
        "--timeout",
        "1s",
        "--fail-on",
        "high",
    ])
    .await;
    assert!(!finding_ids(&r).contains(&"no_fallback_scsv".to_string()), "{r:#}");
    assert!(
        inconclusive_properties(&r).contains(&"downgrade protection (TLS_FALLBACK_SCSV)".to_string()),
        "{r:#} {err}"
    );
    assert_eq!(code, 2, "an undetermined property is exit 2");
    let (code, _, _) = scan(&[
        &target(proxy.port),
        "--ca",
        &ca_file(),
        "--timeout",
        "1s",
        "--fail-on",
        "high",
        "--allow-inconclusive",
    ])
    .await;
    assert_eq!(code, 0);
}

#[tokio::test]
async fn a_stalled_suite_probe_makes_the_suite_list_inconclusive_not_short() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &[
            "-tls1_2",
            "-cipher",
            "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384",
        ],
    )
    .await;
    // Every hello after the first choice (0xc02b) is removed stalls.
    let proxy = stall_proxy(srv.port, |s| s.contains(&0xc02c) && !s.contains(&0xc02b)).await;
    let (code, r, err) = scan(&[&target(proxy.port), "--ca", &ca_file(), "--timeout", "1s"]).await;
    assert_eq!(
        suite_names(&r, "TLSv1.2"),
        ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"],
        "{r:#} {err}"
    );
    assert!(
        inconclusive_properties(&r)
            .iter()
            .any(|p| p.starts_with("TLSv1.2 cipher suites")),
        "{r:#}"
    );
    assert_eq!(code, 2);
}

#[tokio::test]
async fn the_policy_gate_flags_what_the_endpoint_serves_beyond_the_policy() {
    let s = start(serve_args(&[])).await;
    let t = target(s.port());
    let (code, r, err) = scan(&[&t, "--ca", &ca_file(), "--policy", "intermediate"]).await;
    assert_eq!(code, 0, "tlsward against its own default policy: {r:#} {err}");
    assert_eq!(r["policy"], "intermediate");
    let (code, r, _) = scan(&[&t, "--ca", &ca_file(), "--policy", "modern"]).await;
    let ids = finding_ids(&r);
    assert!(
        ids.contains(&"policy_protocol".into()) && ids.contains(&"policy_suite".into()),
        "{ids:?}"
    );
    assert_eq!(code, 1);
    let file = postgres().scratch().join("narrow.yaml");
    std::fs::write(&file, "profile: intermediate\nkx_groups: [X25519]\n").unwrap();
    let (_, r, _) = scan(&[&t, "--ca", &ca_file(), "--policy", file.to_str().unwrap()]).await;
    let group = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "policy_group")
        .cloned();
    assert!(
        group
            .as_ref()
            .is_some_and(|g| g["evidence"].as_str().unwrap().contains("X25519MLKEM768")),
        "{r:#}"
    );
    std::fs::write(
        &file,
        "profile: intermediate\ncipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA]\n",
    )
    .unwrap();
    let (code, _, err) = scan(&[&t, "--policy", file.to_str().unwrap()]).await;
    assert_eq!(code, 2, "a policy the parser refuses is a usage error");
    assert!(err.contains("CBC suites are open to BEAST"), "{err}");
    s.running.shutdown().await;
}

#[tokio::test]
async fn the_policy_gate_wants_the_policys_preferred_group() {
    // OpenSSL 3.0 has no post-quantum hybrid: the default policy's first group is missing.
    let srv = s_server(&ec_leaf(), None, &[]).await;
    let (_, r, _) = scan(&[&target(srv.port), "--ca", &ca_file(), "--policy", "intermediate"]).await;
    assert!(finding_ids(&r).contains(&"policy_missing_group".into()), "{r:#}");
}

#[tokio::test]
async fn sarif_output_is_valid_sarif_2_1_0_with_one_result_per_finding() {
    let srv = weak_server("tls1.0,tls1.2", "3des,aes128", &[]).await;
    let out = postgres().scratch().join("scan.sarif");
    let (_, r, err) = scan(&[&target(srv.port), "--ca", &ca_file(), "--sarif", out.to_str().unwrap()]).await;
    let validator = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/sarif/validate.sh");
    let check = std::process::Command::new("bash")
        .arg(validator)
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{} {err}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let log: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), r["findings"].as_array().unwrap().len());
    assert!(
        results
            .iter()
            .any(|x| x["ruleId"] == "sweet32" && x["level"] == "warning"),
        "{log:#}"
    );
}

#[tokio::test]
async fn junit_output_has_one_case_per_check_and_a_failure_per_finding() {
    let srv = weak_server("tls1.2", "rc4,aes128gcm", &[]).await;
    let out = postgres().scratch().join("scan.xml");
    let (_, r, _) = scan(&[&target(srv.port), "--ca", &ca_file(), "--junit", out.to_str().unwrap()]).await;
    let count = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, xml.etree.ElementTree as ET; s = ET.parse(sys.argv[1]).getroot().find('testsuite'); \
             print(len(s.findall('testcase')), len(s.findall('testcase/failure')), s.get('tests'), s.get('failures'))",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&count.stdout);
    let findings = r["findings"].as_array().unwrap().len();
    assert_eq!(
        text.split_whitespace().collect::<Vec<_>>(),
        [
            tlsward::scan::export::CHECKS.len().to_string(),
            findings.to_string(),
            tlsward::scan::export::CHECKS.len().to_string(),
            findings.to_string()
        ],
        "{text} {}",
        String::from_utf8_lossy(&count.stderr)
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("rc4: RC4 suites\"><failure")
    );
}

#[tokio::test]
async fn every_address_is_scanned_and_addresses_that_differ_are_flagged() {
    let old = weak_server("tls1.0,tls1.2", "aes128gcm,aes128", &[]).await;
    let new = weak_server("tls1.2", "aes128gcm", &[]).await;
    let opts = tlsward::scan::ScanOptions {
        target: "localhost:443".into(),
        sni: None,
        starttls: None,
        timeout: Duration::from_secs(5),
        ca: Some(postgres().ca_file.clone()),
        concurrency: 8,
        progress: false,
        policy: None,
    };
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let m = tlsward::scan::scan_addresses(&opts, "localhost", &[addr(old.port), addr(new.port)]).await;
    assert_eq!(m.addresses.len(), 2);
    assert!(m.addresses.iter().all(|a| a.report.is_some()), "{:?}", m.addresses);
    assert!(
        m.differences.iter().any(|d| d.starts_with("protocols differ")),
        "{:?}",
        m.differences
    );
    assert_eq!(m.exit_code(tlsward::scan::report::Severity::High, false), 1);
    let same = tlsward::scan::scan_addresses(&opts, "localhost", &[addr(new.port), addr(new.port)]).await;
    assert!(same.differences.is_empty(), "{:?}", same.differences);
}

fn property_list(r: &Value, key: &str) -> Vec<String> {
    r[key]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["property"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn client_renegotiation_is_found_where_accepted_and_not_where_refused() {
    let leaf = ec_leaf();
    let accepting = s_server(&leaf, None, &["-tls1_2", "-client_renegotiation"]).await;
    let (_, r, ids) = scan_ids(accepting.port).await;
    assert_eq!(r["client_renegotiation"], true, "{r:#}");
    assert!(ids.contains(&"client_renegotiation".to_string()), "{ids:?}");
    let refusing = s_server(&leaf, None, &["-tls1_2"]).await;
    let (_, r, ids) = scan_ids(refusing.port).await;
    assert_eq!(r["client_renegotiation"], false, "{r:#}");
    assert!(!ids.contains(&"client_renegotiation".to_string()), "{ids:?}");
    assert!(property_list(&r, "not_checked").is_empty(), "{r:#}");
}

#[tokio::test]
async fn hsts_on_a_cbc_or_dhe_only_server_is_read_through_the_legacy_client() {
    // CBC only: rustls completes no handshake with it; the OpenSSL client does.
    let with = weak_server("tls1.2", "aes128", &["--hsts", "max-age=63072000"]).await;
    let (_, r, ids) = scan_ids(with.port).await;
    assert_eq!(r["http"]["hsts"], "max-age=63072000", "{r:#}");
    assert!(!ids.iter().any(|i| i.starts_with("hsts")), "{ids:?}");
    let without = weak_server("tls1.2", "aes128", &[]).await;
    let (_, r, ids) = scan_ids(without.port).await;
    assert!(r["http"]["hsts"].is_null() && r["http"]["status"].is_string(), "{r:#}");
    assert!(ids.contains(&"hsts_missing".to_string()), "{ids:?}");
    // tlslite closes after its answer: a renegotiation is refused, not left undetermined.
    assert_eq!(r["client_renegotiation"], false, "{r:#}");
    // DHE only (AEAD, but rustls has no DHE): the same.
    let dhe = weak_server(
        "tls1.2",
        "aes128gcm",
        &["--kex", "dhe_rsa", "--hsts", "max-age=31536000"],
    )
    .await;
    let (_, r, _) = scan_ids(dhe.port).await;
    assert_eq!(r["http"]["hsts"], "max-age=31536000", "{r:#}");
}

#[tokio::test]
async fn a_stalled_legacy_session_leaves_renegotiation_and_hsts_inconclusive() {
    let srv = weak_server("tls1.2", "aes128", &["--stall-after-handshake"]).await;
    let (code, r, _) = scan(&[&target(srv.port), "--ca", &ca_file(), "--timeout", "1s"]).await;
    let props = property_list(&r, "inconclusive");
    assert!(
        props.contains(&"client-initiated renegotiation".to_string()) && props.contains(&"HSTS".to_string()),
        "{r:#}"
    );
    assert!(r["client_renegotiation"].is_null() && r["http"].is_null(), "{r:#}");
    assert!(
        !finding_ids(&r).contains(&"hsts_missing".to_string()),
        "no verdict on what was not determined"
    );
    assert_eq!(code, 2, "{r:#}");
}

#[tokio::test]
async fn a_tls13_server_marks_its_tls10_answer_with_the_downgrade_sentinel() {
    let srv = s_server(
        &ec_leaf(),
        None,
        &[
            "-cipher",
            "ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES128-GCM-SHA256:@SECLEVEL=0",
            "-legacy_renegotiation",
        ],
    )
    .await;
    let (_, r, err) = scan(&[&target(srv.port), "--ca", &ca_file()]).await;
    assert_eq!(
        accepted(&r),
        ["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"],
        "{r:#} {err}"
    );
    assert!(!finding_ids(&r).contains(&"no_downgrade_sentinel".to_string()), "{r:#}");
}

#[tokio::test]
async fn a_tls12_server_without_the_downgrade_marker_on_tls10_is_found() {
    let srv = weak_server("tls1.0,tls1.2", "aes128gcm,aes128", &["--no-downgrade-marker"]).await;
    let (_, r, ids) = scan_ids(srv.port).await;
    assert!(ids.contains(&"no_downgrade_sentinel".to_string()), "{r:#}");
    let marked = weak_server("tls1.0,tls1.2", "aes128gcm,aes128", &[]).await;
    let (_, _, ids) = scan_ids(marked.port).await;
    assert!(!ids.contains(&"no_downgrade_sentinel".to_string()), "{ids:?}");
}
