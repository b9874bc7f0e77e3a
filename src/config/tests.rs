//! Table-driven tests of `serve`'s and `proxy`'s loads: each row a command line over a dev PKI
//! and what the load must say (every problem at once) or build.

use clap::Parser;

use super::{Config, DbProxyConfig, Front};
use crate::cli::{Cli, Command};
use crate::pki::{DevPkiLayout, DevPkiOptions, KeyType, generate_dev};

/// A dev PKI, with the command lines' paths filled in from it.
struct Pki {
    _dir: tempfile::TempDir,
    layout: DevPkiLayout,
}

impl Pki {
    fn new() -> Self {
        crate::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let opts = DevPkiOptions {
            extra_sans: Vec::new(),
            db_user: "app".into(),
            key_type: KeyType::Ecdsa,
        };
        let layout = generate_dev(dir.path(), &opts).unwrap();
        Self { _dir: dir, layout }
    }

    /// `{tls}`, `{tokens}`, `{db}` in `arg` replaced by the PKI's paths and DSN.
    fn fill(&self, arg: &str) -> String {
        let l = &self.layout;
        let dsn = format!(
            "postgresql://app@localhost:26257/app?sslmode=verify-full&sslrootcert={}/ca.crt&sslcert={1}/tls.crt&sslkey={1}/tls.key",
            l.ca.display(),
            l.db_client.display()
        );
        arg.replace("{tls}", &l.server.display().to_string())
            .replace("{tokens}", &l.tokens.display().to_string())
            .replace("{db}", &dsn)
    }

    fn load(&self, argv: &[&str]) -> Result<Config, String> {
        let mut full = vec!["tlsward".to_string()];
        full.extend(argv.iter().map(|a| self.fill(a)));
        let loaded = match Cli::try_parse_from(&full).map_err(|e| e.to_string())?.command {
            Command::Serve(a) => Config::load(&a),
            Command::Proxy(a) => Config::load_proxy(&a),
            other => panic!("not serve or proxy: {other:?}"),
        };
        loaded.map(|(config, _)| config).map_err(|e| e.to_string())
    }

    /// `db-proxy`'s load of `argv` (after the command name): its `--check` output, or the problems.
    fn load_db_proxy(&self, argv: &[&str]) -> Result<String, String> {
        let mut full = vec!["tlsward".to_string(), "db-proxy".to_string()];
        full.extend(argv.iter().map(|a| self.fill(a)));
        let Command::DbProxy(a) = Cli::try_parse_from(&full).map_err(|e| e.to_string())?.command else {
            panic!("not db-proxy: {full:?}");
        };
        DbProxyConfig::load(&a)
            .map(|(config, snapshot)| config.describe(&snapshot))
            .map_err(|e| e.to_string())
    }
}

const SERVE: &[&str] = &[
    "serve",
    "--tls-dir",
    "{tls}",
    "--token-key-dir",
    "{tokens}",
    "--db-url",
    "{db}",
];
const PROXY: &[&str] = &["proxy", "--tls-dir", "{tls}", "--upstream", "http://127.0.0.1:8000"];

/// `base` with `extra` after it.
fn with(base: &[&'static str], extra: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

#[test]
fn each_load_reports_what_is_wrong_by_its_flag() {
    let pki = Pki::new();
    let table: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["serve", "--token-key-dir", "{tokens}", "--db-url", "{db}"],
            "--tls-dir (TLSWARD_TLS_DIR) is not set",
        ),
        (
            vec!["serve", "--tls-dir", "{tls}", "--db-url", "{db}"],
            "--token-key-dir (TLSWARD_TOKEN_KEY_DIR) is not set",
        ),
        (
            with(SERVE, &["--handshake-timeout", "0s"]),
            "--handshake-timeout (TLSWARD_HANDSHAKE_TIMEOUT) is 0",
        ),
        (
            with(SERVE, &["--db-checkout-timeout", "0s"]),
            "--db-checkout-timeout (TLSWARD_DB_CHECKOUT_TIMEOUT) is 0",
        ),
        (
            with(SERVE, &["--db-pool-size", "0"]),
            "--db-pool-size (TLSWARD_DB_POOL_SIZE) is 0; use 1 to 1024",
        ),
        (
            with(SERVE, &["--reload-interval", "10ms"]),
            "--reload-interval (TLSWARD_RELOAD_INTERVAL) is below 100ms",
        ),
        (
            with(SERVE, &["--max-header-bytes", "100"]),
            "--max-header-bytes (TLSWARD_MAX_HEADER_BYTES) is 100",
        ),
        (
            with(SERVE, &["--admin-listen", "127.0.0.1:8443"]),
            "listeners clash: 127.0.0.1:8443 is used twice",
        ),
        (
            with(SERVE, &["--token-max-ttl", "48h"]),
            "--token-max-ttl (TLSWARD_TOKEN_MAX_TTL): tokens must be short-lived",
        ),
        (
            vec!["proxy", "--tls-dir", "{tls}"],
            "--upstream (TLSWARD_UPSTREAM) is not set",
        ),
        (
            with(PROXY, &["--token-key-dir", "{tokens}"]),
            "is only used by proxy with --require-token",
        ),
        (
            with(PROXY, &["--require-token"]),
            "--require-token (TLSWARD_REQUIRE_TOKEN) needs --token-key-dir",
        ),
        (
            with(PROXY, &["--db-url", "{db}"]),
            "is used by proxy only with --db-proxy-listen",
        ),
        (
            with(PROXY, &["--upstream-health-path", "healthz"]),
            "write a path such as /healthz",
        ),
        (
            with(PROXY, &["--db-pool-size", "4"]),
            "unexpected argument '--db-pool-size'",
        ),
    ];
    for (argv, want) in table {
        match pki.load(&argv) {
            Ok(_) => panic!("{argv:?} loaded; want {want:?}"),
            Err(e) => assert!(e.contains(want), "{argv:?}: want {want:?} in\n{e}"),
        }
    }
}

#[test]
fn every_problem_is_reported_at_once() {
    let pki = Pki::new();
    let e = pki
        .load(&[
            "serve",
            "--db-url",
            "{db}",
            "--idle-timeout",
            "0s",
            "--db-pool-size",
            "0",
        ])
        .unwrap_err();
    for want in ["--tls-dir", "--token-key-dir", "--idle-timeout", "--db-pool-size"] {
        assert!(e.contains(want), "{want} missing in\n{e}");
    }
}

#[test]
fn each_command_loads_the_front_it_serves() {
    let pki = Pki::new();
    let serve = pki.load(SERVE).unwrap();
    assert!(matches!(serve.front, Front::Api { .. }));
    assert_eq!(serve.requests.max_body_bytes, super::API_MAX_BODY);
    let proxy = pki.load(PROXY).unwrap();
    assert!(matches!(proxy.front, Front::Proxy { db: None, .. }));
    assert_eq!(proxy.requests.max_body_bytes, super::PROXY_MAX_BODY);
    let with_db = pki
        .load(&with(PROXY, &["--db-proxy-listen", "127.0.0.1:0", "--db-url", "{db}"]))
        .unwrap();
    assert!(matches!(with_db.front, Front::Proxy { db: Some(_), .. }));
    let tokens = pki
        .load(&with(PROXY, &["--require-token", "--token-key-dir", "{tokens}"]))
        .unwrap();
    assert!(matches!(&tokens.front, Front::Proxy { http, .. } if http.require_token.is_some()));
}

#[test]
fn db_proxy_loads_only_the_database_side() {
    let pki = Pki::new();
    let ok = pki
        .load_db_proxy(&["--db-proxy-listen", "127.0.0.1:0", "--db-url", "{db}"])
        .unwrap();
    for want in [
        "db_proxy:\n  listen: 127.0.0.1:0",
        "sslmode: verify-full",
        "drain_delay:",
    ] {
        assert!(ok.contains(want), "{want:?} missing in\n{ok}");
    }
    assert!(
        !ok.contains("listen: https://"),
        "db-proxy serves no TLS listener:\n{ok}"
    );
    let table: &[(&[&str], &str)] = &[
        (
            &["--db-url", "{db}"],
            "--db-proxy-listen (TLSWARD_DB_PROXY_LISTEN) is not set",
        ),
        (
            &["--db-proxy-listen", "127.0.0.1:0"],
            "--db-url (TLSWARD_DB_URL) is not set",
        ),
        (
            &[
                "--db-proxy-listen",
                "127.0.0.1:0",
                "--db-url",
                "postgresql://app@localhost/app?sslmode=disable",
                "--db-allow-insecure",
            ],
            "the database proxy exists to encrypt the hop",
        ),
        (&["--tls-dir", "{tls}"], "unexpected argument '--tls-dir'"),
    ];
    for (argv, want) in table {
        match pki.load_db_proxy(argv) {
            Ok(out) => panic!("{argv:?} loaded:\n{out}"),
            Err(e) => assert!(e.contains(want), "{argv:?}: want {want:?} in\n{e}"),
        }
    }
}

#[test]
fn check_describes_every_section_of_each_command() {
    let pki = Pki::new();
    let describe = |argv: &[&str]| {
        let mut full = vec!["tlsward".to_string()];
        full.extend(argv.iter().map(|a| pki.fill(a)));
        let (config, snapshot) = match Cli::try_parse_from(&full).unwrap().command {
            Command::Serve(a) => Config::load(&a),
            Command::Proxy(a) => Config::load_proxy(&a),
            other => panic!("not serve or proxy: {other:?}"),
        }
        .unwrap();
        config.describe(&snapshot)
    };
    let serve = describe(SERVE);
    for want in [
        "listen: https://",
        "database:\n",
        "reload:\n",
        "kubernetes:\n",
        "http:\n  token_max_ttl",
    ] {
        assert!(serve.contains(want), "serve: {want:?} missing in\n{serve}");
    }
    assert!(!serve.contains("proxy:\n"), "serve has no proxy section:\n{serve}");
    let proxy = describe(PROXY);
    for want in [
        "proxy:\n  upstream: http://127.0.0.1:8000",
        "db_proxy: off",
        "reload:\n",
        "http:\n",
    ] {
        assert!(proxy.contains(want), "proxy: {want:?} missing in\n{proxy}");
    }
    assert!(!proxy.contains("database:\n"), "proxy opens no pool:\n{proxy}");
}
