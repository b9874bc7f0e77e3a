//! The binary's commands as a user runs them: `certs dev`, `token issue`, `check-config`
//! (exit 0 with the normalized config, or 64 listing every problem at once).

use tlsward_testkit as support;
use tlsward_testkit::assert_eventually;

use std::path::Path;
use std::process::{Command, Output};

use support::bin;
use tlsward::tls::material::{CertInfo, load_pair};

fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(bin());
    c.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn dev_pki() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        &[
            "certs",
            "dev",
            "--out",
            dir.path().to_str().unwrap(),
            "--san",
            "api.example.com",
        ],
        &[],
    );
    assert!(o.status.success(), "{}", out(&o));
    dir
}

fn dsn(pki: &Path) -> String {
    format!(
        "postgresql://app@localhost:26257/app?sslmode=verify-full&sslrootcert={0}/ca/ca.crt&sslcert={0}/db-client/client.app.crt&sslkey={0}/db-client/client.app.key&options=--cluster%3Ddev-1",
        pki.display()
    )
}

fn env_for(pki: &Path) -> Vec<(String, String)> {
    vec![
        ("TLSWARD_TLS_DIR".into(), pki.join("server").display().to_string()),
        ("TLSWARD_TOKEN_KEY_DIR".into(), pki.join("tokens").display().to_string()),
        ("TLSWARD_DB_URL".into(), dsn(pki)),
    ]
}

fn check_config(pki: &Path, extra: &[&str]) -> Output {
    let env = env_for(pki);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut args = vec!["check-config"];
    args.extend_from_slice(extra);
    run(&args, &env)
}

#[test]
fn certs_dev_writes_cert_manager_and_cockroach_layouts() {
    let pki = dev_pki();
    let p = pki.path();
    let now = tlsward::util::now_unix();
    let server = load_pair(
        &tlsward::files::Files::disk(),
        &p.join("server/tls.crt"),
        &p.join("server/tls.key"),
        now,
    )
    .unwrap();
    let leaf = &server.chain[0];
    for san in ["localhost", "127.0.0.1", "::1", "api.example.com"] {
        assert!(leaf.sans.iter().any(|s| s == san), "{san} in {:?}", leaf.sans);
    }
    let client = load_pair(
        &tlsward::files::Files::disk(),
        &p.join("db-client/client.app.crt"),
        &p.join("db-client/client.app.key"),
        now,
    )
    .unwrap();
    assert_eq!(client.chain[0].common_name(), Some("app"));
    assert_eq!(
        std::fs::read(p.join("db-client/tls.crt")).unwrap(),
        std::fs::read(p.join("db-client/client.app.crt")).unwrap()
    );
    let ca = CertInfo::from_der(&rustls_pem(&p.join("ca/ca.crt"))).unwrap();
    assert_eq!(leaf.issuer, ca.subject);
    assert_eq!(
        std::fs::read(p.join("server/ca.crt")).unwrap(),
        std::fs::read(p.join("ca/ca.crt")).unwrap()
    );
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(p.join("server/tls.key"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    for kt in ["rsa2048", "ed25519"] {
        let d = tempfile::tempdir().unwrap();
        let o = run(
            &[
                "certs",
                "dev",
                "--out",
                d.path().to_str().unwrap(),
                "--key-type",
                kt,
                "--db-user",
                "svc",
            ],
            &[],
        );
        assert!(o.status.success(), "{kt}: {}", out(&o));
        assert!(d.path().join("db-client/client.svc.key").exists());
        load_pair(
            &tlsward::files::Files::disk(),
            &d.path().join("server/tls.crt"),
            &d.path().join("server/tls.key"),
            now,
        )
        .unwrap();
    }
}

fn rustls_pem(path: &Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path).unwrap().to_vec()
}

#[test]
fn token_issue_mints_a_verifiable_short_lived_token() {
    let pki = dev_pki();
    let dir = pki.path().join("tokens");
    let o = run(
        &[
            "token",
            "issue",
            "--sub",
            "alice",
            "--ttl",
            "5m",
            "--token-key-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", out(&o));
    let token = String::from_utf8(o.stdout).unwrap();
    let keys = tlsward::token::TokenKeys::load_dir(&dir).unwrap();
    let claims = keys
        .verify(
            token.trim(),
            tlsward::util::now_unix(),
            std::time::Duration::from_secs(600),
        )
        .unwrap();
    assert_eq!(claims.sub, "alice");
    assert_eq!(claims.exp - claims.iat, 300);
    let too_long = run(
        &[
            "token",
            "issue",
            "--sub",
            "a",
            "--ttl",
            "48h",
            "--token-key-dir",
            dir.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(too_long.status.code(), Some(64), "{}", out(&too_long));
    let no_dir = run(
        &["token", "issue", "--sub", "a", "--token-key-dir", "/nonexistent"],
        &[],
    );
    assert_eq!(no_dir.status.code(), Some(64));
    assert!(
        out(&no_dir).contains("/nonexistent: cannot read the token-key directory"),
        "{}",
        out(&no_dir)
    );
}

#[test]
fn check_config_prints_the_normalized_config() {
    let pki = dev_pki();
    let o = check_config(pki.path(), &[]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(0), "{text}");
    for want in [
        "listen: https://127.0.0.1:8443",
        "versions: [1.2, 1.3]",
        "kx_groups: [X25519MLKEM768, X25519, secp256r1, secp384r1]",
        "subject: \"O=tlsward dev, CN=localhost\"",
        "sans: [localhost, 127.0.0.1, ::1, api.example.com]",
        "not_after: ",
        "sslmode: verify-full",
        "options=--cluster=dev-1",
        "signing_kid: k",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn check_config_lists_every_problem_and_exits_64() {
    let pki = tempfile::tempdir().unwrap();
    let policy = pki.path().join("policy.yaml");
    std::fs::write(
        &policy,
        "min_version: \"1.0\"\ncipher_suites: [TLS_RSA_WITH_AES_128_CBC_SHA, TLS_ECDHE_RSA_WITH_RC4_128_SHA]\n",
    )
    .unwrap();
    let o = run(
        &[
            "check-config",
            "--policy-file",
            policy.to_str().unwrap(),
            "--tls-dir",
            "/nonexistent/tls",
            "--db-pool-size",
            "0",
            "--reload-interval",
            "10ms",
        ],
        &[("TLSWARD_DB_URL", "postgresql://app@localhost:26257/app?sslmode=require")],
    );
    let text = out(&o);
    assert_eq!(o.status.code(), Some(64), "{text}");
    for want in [
        "--token-key-dir (TLSWARD_TOKEN_KEY_DIR) is not set",
        "sslmode=require does not authenticate the database; use sslmode=verify-full, or pass --db-allow-insecure",
        "--db-pool-size (TLSWARD_DB_POOL_SIZE) is 0",
        "--reload-interval (TLSWARD_RELOAD_INTERVAL) is below 100ms",
        "server certificate /nonexistent/tls/tls.crt: cannot read",
        "min_version 1.0: TLS 1.0/1.1 allow BEAST-class downgrades",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    let pki2 = dev_pki();
    let o = check_config(pki2.path(), &["--policy-file", policy.to_str().unwrap()]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(64), "{text}");
    for want in [
        "min_version 1.0: TLS 1.0/1.1 allow BEAST-class downgrades; the floor is 1.2",
        "TLS_RSA_WITH_AES_128_CBC_SHA: CBC suites are open to BEAST/Lucky13; not allowed",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA: RC4 has exploitable keystream biases (RFC 7465); not allowed",
        "3 configuration problem(s)",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    assert!(
        text.contains(&policy.display().to_string()),
        "the file is named: {text}"
    );
}

#[test]
fn check_config_names_broken_certificate_files() {
    let pki = dev_pki();
    std::fs::write(pki.path().join("server/tls.key"), "-----BEGIN PRIVATE KEY-----\nMIGH\n").unwrap();
    let o = check_config(pki.path(), &[]);
    let text = out(&o);
    assert_eq!(o.status.code(), Some(64), "{text}");
    assert!(text.contains("server/tls.key: no usable PRIVATE KEY block"), "{text}");
    let other = dev_pki();
    std::fs::copy(other.path().join("server/tls.key"), pki.path().join("server/tls.key")).unwrap();
    let text = out(&check_config(pki.path(), &[]));
    assert!(text.contains("the key does not match the certificate"), "{text}");
}

#[test]
fn a_valid_policy_round_trips_through_check_config() {
    let pki = dev_pki();
    let policy = pki.path().join("policy.yaml");
    std::fs::write(&policy, "profile: intermediate\ncipher_suites: [TLS_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\nkx_groups: [X25519MLKEM768, secp384r1]\nalpn: [http/1.1]\n").unwrap();
    let first = out(&check_config(pki.path(), &["--policy-file", policy.to_str().unwrap()]));
    let tls_section: String = first
        .lines()
        .skip_while(|l| *l != "tls:")
        .skip(1)
        .take_while(|l| l.starts_with("  ") && !l.starts_with("  versions"))
        .map(|l| format!("{}\n", &l[2..]))
        .collect();
    assert!(
        tls_section.contains("cipher_suites: [TLS_AES_256_GCM_SHA384, TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]"),
        "{first}"
    );
    let again = pki.path().join("again.yaml");
    std::fs::write(&again, &tls_section).unwrap();
    let second = out(&check_config(pki.path(), &["--policy-file", again.to_str().unwrap()]));
    assert_eq!(first, second);
}

#[test]
fn insecure_sslmode_needs_the_explicit_flag() {
    let pki = dev_pki();
    let env = env_for(pki.path());
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    env.retain(|(k, _)| *k != "TLSWARD_DB_URL");
    env.push(("TLSWARD_DB_URL", "postgresql://app@localhost:26257/app?sslmode=disable"));
    env.push(("TLSWARD_DB_ALLOW_INSECURE", "true"));
    let o = run(&["check-config"], &env);
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(out(&o).contains("sslmode: disable"));
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let pg = support::postgres();
    let db = pg.create_db();
    let admin = support::free_port();
    let listen = support::free_port();
    let mut child = tokio::process::Command::new(bin())
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
        ])
        .args([
            "--tls-dir",
            pg.server_dir.to_str().unwrap(),
            "--token-key-dir",
            pg.token_dir.to_str().unwrap(),
        ])
        .args(["--db-url", &pg.dsn(&db, &pg.client_dir), "--shutdown-grace", "5s"])
        .env("TLSWARD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let ready = format!("http://127.0.0.1:{admin}/readyz");
    assert_eventually!(
        reqwest::get(&ready).await.map(|r| r.status() == 200).unwrap_or(false),
        std::time::Duration::from_secs(20),
        "never ready"
    );
    // An open keep-alive connection must not keep the process from stopping.
    let client = support::client_for(format!("127.0.0.1:{listen}").parse().unwrap());
    assert_eq!(
        client
            .get(format!("https://localhost:{listen}/"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    support::sigterm(child.id().unwrap());
    let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
        .await
        .expect("stopped within the grace")
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut log = String::new();
    tokio::io::AsyncReadExt::read_to_string(child.stderr.as_mut().unwrap(), &mut log)
        .await
        .unwrap();
    assert!(
        log.contains("shutting down: draining open connections") && log.contains("stopped"),
        "{log}"
    );
    assert!(reqwest::get(&ready).await.is_err(), "the admin listener is closed");
}

/// `--flag` → (env, default) as `tlsward COMMAND --help` shows them.
fn help_flags(command: &str) -> std::collections::BTreeMap<String, (Option<String>, Option<String>)> {
    let o = run(&[command, "--help"], &[]);
    assert!(o.status.success(), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut flags = std::collections::BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t
            .strip_prefix("--")
            .filter(|_| line.starts_with("      --") || line.starts_with("  -"))
        {
            let name = rest.split([' ', '=', '<']).next().unwrap().to_string();
            flags.insert(format!("--{name}"), (None, None));
            current = Some(format!("--{name}"));
        } else if let Some(c) = &current {
            let entry = flags.get_mut(c).unwrap();
            if let Some(env) = t.strip_prefix("[env: ") {
                entry.0 = Some(env.split(['=', ']']).next().unwrap().to_string());
            } else if let Some(d) = t.strip_prefix("[default: ") {
                entry.1 = Some(d.trim_end_matches(']').to_string());
            }
        }
    }
    flags.retain(|f, _| !matches!(f.as_str(), "--help" | "--version" | "--check"));
    flags
}

/// The rows of the README's flag table: `--flag` → (env, default).
fn readme_flags() -> std::collections::BTreeMap<String, (String, String)> {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let table = readme
        .split("| flag | env | default | meaning |")
        .nth(1)
        .expect("the flag table");
    let cell = |c: &str| c.trim().trim_matches('`').to_string();
    let mut rows = std::collections::BTreeMap::new();
    for line in table.lines().skip(2).take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').collect();
        // Rows naming several flags (`--pod-name`, `--pod-namespace`, …) list them together,
        // each value in backticks (a value may hold a comma: `info,rustls=error`).
        let split = |c: &str| -> Vec<String> { c.split("`, `").map(cell).collect() };
        let flags = split(cells[1]);
        let envs = split(cells[2]);
        let defaults = split(cells[3]);
        for (i, flag) in flags.iter().enumerate() {
            let env = envs.get(i).or_else(|| envs.last()).unwrap().clone();
            let default = if flags.len() == defaults.len() {
                defaults[i].clone()
            } else {
                cell(cells[3])
            };
            rows.insert(flag.clone(), (env, default));
        }
    }
    rows
}

#[test]
fn the_readme_flag_table_matches_serve_help() {
    let help = help_flags("serve");
    let readme = readme_flags();
    for (flag, (env, default)) in &help {
        let (r_env, r_default) = readme
            .get(flag)
            .unwrap_or_else(|| panic!("{flag} of `serve --help` is not in the README's flag table"));
        if let Some(env) = env {
            assert_eq!(r_env, env, "{flag}: the README's environment variable");
        }
        match default {
            Some(d) => assert_eq!(r_default, d, "{flag}: the README's default"),
            // No default in --help: the README describes the value (required, none, computed),
            // it does not claim a literal one.
            None => assert!(
                !r_default.chars().all(|c| c.is_ascii_alphanumeric() || ".:".contains(c))
                    || matches!(r_default.as_str(), "required" | "none" | "off" | "false"),
                "{flag}: the README gives {r_default:?} as the default, `serve --help` none"
            ),
        }
    }
    for flag in readme.keys() {
        assert!(help.contains_key(flag), "the README's {flag} is not a flag of `serve`");
    }
}

#[test]
fn proxy_lists_only_what_it_reads_and_refuses_a_pool_flag() {
    let help = help_flags("proxy");
    for pool_flag in [
        "--db-pool-size",
        "--db-statement-timeout",
        "--db-checkout-timeout",
        "--db-conn-max-lifetime",
        "--db-unready-after",
        "--db-health-interval",
        "--db-migrate",
    ] {
        assert!(
            !help.contains_key(pool_flag),
            "proxy --help lists {pool_flag}, which only serve reads"
        );
        assert!(help_flags("serve").contains_key(pool_flag));
    }
    for edge_flag in [
        "--upstream",
        "--tls-dir",
        "--max-connections",
        "--db-proxy-listen",
        "--db-url",
        "--require-token",
    ] {
        assert!(help.contains_key(edge_flag), "proxy --help lacks {edge_flag}");
    }
    let o = run(
        &["proxy", "--upstream", "http://127.0.0.1:8000", "--db-pool-size", "4"],
        &[],
    );
    assert_eq!(o.status.code(), Some(64), "a usage error exits 64: {}", out(&o));
    assert!(out(&o).contains("--db-pool-size"), "{}", out(&o));
}

#[test]
fn usage_errors_exit_64_in_every_command_and_help_exits_0() {
    for args in [
        &["serve", "--no-such-flag"][..],
        &["check-config", "--listen", "not an address"],
        &["db-proxy", "--upstream", "http://127.0.0.1:1"],
        &["scan"],
        &["token", "issue"],
        &["certs", "dev", "--key-type", "dsa"],
        &["no-such-command"],
    ] {
        let o = run(args, &[]);
        assert_eq!(o.status.code(), Some(64), "{args:?}: {}", out(&o));
    }
    for args in [
        &["--help"][..],
        &["--version"],
        &["proxy", "--help"],
        &["scan", "--help"],
    ] {
        assert_eq!(run(args, &[]).status.code(), Some(0), "{args:?}");
    }
}
