//! tlsward on a real one-node Kubernetes cluster (scripts/cluster/cluster.sh: the API server,
//! etcd, the controllers, a kubelet on containerd/runc, kube-proxy, CoreDNS and cert-manager
//! v1.21), reached the way users reach it: `helm install`, `helm test`, `kubectl
//! port-forward`, cert-manager renewals.
//!
//! `make test-cluster` (part of `make test`) starts the cluster, runs these tests and tears it
//! down. Each test installs the chart into a namespace of its own.

use tlsward_testkit as support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{OnceLock, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde_json::{Value, json};
use support::{Postgres, Reach, TwoCaCluster};
use tlsward::pki::LeafSpec;
use tlsward_testkit::cluster::{cluster, output};
use tlsward_testkit::{repo, wait};

/// The release name in every namespace: objects are named `tlsward`, `tlsward-tls`, ….
const RELEASE: &str = "tlsward";

fn chart() -> PathBuf {
    repo().join("charts/tlsward")
}

/// `helm install tlsward charts/tlsward --wait` in `ns` with `values` (`key=value`).
fn install(ns: &str, values: &[&str]) {
    if let Err(e) = cluster().install_tlsward(ns, values) {
        panic!("helm install {values:?}: {e}\n{}", describe(ns));
    }
}

/// What a failed install or `helm test` leaves to read: the Pods, the logs of their
/// containers and the namespace's Events.
fn describe(ns: &str) -> String {
    let c = cluster();
    let either = |r: Result<String, String>| r.unwrap_or_else(|e| e);
    let mut text = either(c.try_kubectl(&["-n", ns, "describe", "pods"]));
    for pod in either(c.try_kubectl(&["-n", ns, "get", "pods", "-o", "name"])).lines() {
        let logs = either(c.try_kubectl(&["-n", ns, "logs", pod, "--all-containers", "--tail", "40"]));
        text.push_str(&format!("\n--- logs of {pod}\n{logs}"));
    }
    text + "\n" + &either(c.try_kubectl(&["-n", ns, "get", "events", "--sort-by=.lastTimestamp"]))
}

/// Tests share the cluster; the ones that restart the API server take it alone.
static CONTROL_PLANE: RwLock<()> = RwLock::new(());

/// Held by a test that needs the API server up throughout.
fn shared() -> RwLockReadGuard<'static, ()> {
    CONTROL_PLANE.read().unwrap_or_else(PoisonError::into_inner)
}

/// Held by a test that restarts the API server.
fn exclusive() -> RwLockWriteGuard<'static, ()> {
    CONTROL_PLANE.write().unwrap_or_else(PoisonError::into_inner)
}

/// The sidecar mode with the test app, cert-manager's dev issuer and the Secret watch.
const SIDECAR: &[&str] = &[
    "mode=sidecar",
    "app.image=localhost/tlsward-test/app:1",
    "app.port=8000",
    "app.healthPath=/healthz",
    "app.dbProxy=false",
    "certManager.devIssuer.enabled=true",
    "kube.watchSecrets=true",
];

/// A key of a Secret, decoded.
fn secret_data(ns: &str, secret: &str, key: &str) -> Vec<u8> {
    let json = cluster().get_json(ns, &["secret", secret]);
    let b64 = json["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("secret {secret} has no {key}"));
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(b64).unwrap()
}

/// The CA of the server Secret, written to a file for curl and openssl.
fn server_ca_file(ns: &str) -> tempfile::NamedTempFile {
    let f = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(f.path(), secret_data(ns, "tlsward-tls", "ca.crt")).unwrap();
    f
}

/// `curl` (an independent client) as the README tells users: `https://localhost:PORT/PATH`
/// through a port-forward, verifying against `ca`; (status line + headers, body).
fn curl(port: u16, ca: &std::path::Path, path: &str, extra: &[&str]) -> (String, String) {
    let out = output(
        Command::new("curl")
            .args(["-sS", "--max-time", "10", "-D", "-", "--cacert"])
            .arg(ca)
            .arg(format!("https://localhost:{port}{path}"))
            .args(extra),
    )
    .unwrap_or_else(|e| panic!("curl {path}: {e}"));
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (head.to_lowercase(), body.to_string())
}

/// Whether `openssl s_client` completes a handshake with `flag` (`-tls1_1`, `-tls1_2`, …).
fn handshakes_with(port: u16, ca: &std::path::Path, flag: &str) -> bool {
    Command::new("openssl")
        .args(tlsward_testkit::tls::s_client_args(port, ca))
        .arg(flag)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl")
        .status
        .success()
}

#[test]
fn helm_install_of_the_sidecar_with_cert_manager_is_ready_and_helm_test_passes() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("sidecar");
    install(&ns, SIDECAR);
    let deployment = c.get_json(&ns, &["deployment", RELEASE]);
    assert_eq!(deployment["status"]["readyReplicas"], 2, "{deployment}");
    let pods = c.get_json(&ns, &["pods", "-l", "app.kubernetes.io/component=server"]);
    for pod in pods["items"].as_array().unwrap() {
        let statuses: Vec<&Value> = pod["status"]["initContainerStatuses"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(pod["status"]["containerStatuses"].as_array().into_iter().flatten())
            .collect();
        assert_eq!(statuses.len(), 2, "tlsward (native sidecar) and the app: {pod}");
        assert!(statuses.iter().all(|s| s["ready"] == true), "{pod}");
    }
    let test = c.try_helm(&["test", RELEASE, "-n", &ns, "--timeout", "2m"]);
    assert!(test.is_ok(), "helm test: {test:?}\n{}", describe(&ns));
}

#[test]
fn port_forward_to_the_service_serves_the_app_over_tls_12_and_13_only_with_security_headers() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("pf");
    install(&ns, SIDECAR);
    let ca = server_ca_file(&ns);
    let pf = c.port_forward(&ns, &format!("svc/{RELEASE}"), 443);
    let (head, body) = curl(pf.port, ca.path(), "/", &[]);
    assert!(head.starts_with("http/"), "{head}");
    assert!(head.contains(" 200"), "{head}");
    assert!(body.contains("hello from the app behind tlsward"), "{body}");
    for header in [
        "strict-transport-security: max-age=63072000",
        "x-content-type-options: nosniff",
    ] {
        assert!(head.contains(header), "{header} missing in\n{head}");
    }
    assert!(handshakes_with(pf.port, ca.path(), "-tls1_3"), "TLS 1.3 refused");
    assert!(handshakes_with(pf.port, ca.path(), "-tls1_2"), "TLS 1.2 refused");
    assert!(!handshakes_with(pf.port, ca.path(), "-tls1_1"), "TLS 1.1 accepted");
}

// ---------------------------------------------------------------------------------------------
// What several tests share.

/// A PEM certificate's serial as `openssl x509 -serial` prints it.
fn pem_serial(pem: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["x509", "-noout", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(pem).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The serial of the certificate a new connection to `127.0.0.1:port` is served, verified
/// against `ca`.
fn served_serial(port: u16, ca: &Path) -> Result<String, String> {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            "localhost",
        ])
        .arg("-CAfile")
        .arg(ca)
        .arg("-verify_return_error")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    Ok(pem_serial(&out.stdout))
}

/// The serial of the certificate in a Secret's `tls.crt`.
fn secret_serial(ns: &str, secret: &str) -> String {
    pem_serial(&secret_data(ns, secret, "tls.crt"))
}

/// `cmctl renew`: the Certificate's `Issuing` condition set to True (reason
/// ManuallyTriggered) through the status subresource, the other conditions kept.
fn renew(ns: &str, certificate: &str) {
    let c = cluster();
    let cert = c.get_json(ns, &["certificate", certificate]);
    let mut conditions: Vec<Value> = cert["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.retain(|x| x["type"] != "Issuing");
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    conditions.push(json!({
        "type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
        "message": "Certificate re-issuance manually triggered", "lastTransitionTime": now,
        "observedGeneration": cert["metadata"]["generation"],
    }));
    let patch = json!({ "status": { "conditions": conditions } }).to_string();
    c.kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "certificate",
        certificate,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        &patch,
    ]);
}

/// Renews `certificate` and waits until its Secret holds a new serial; that serial.
fn renew_and_wait_for_a_new_serial(ns: &str, certificate: &str, secret: &str) -> String {
    let before = secret_serial(ns, secret);
    renew(ns, certificate);
    wait::until(
        "cert-manager to issue a new certificate",
        Duration::from_secs(30),
        || {
            let now = secret_serial(ns, secret);
            if now != before {
                Ok(now)
            } else {
                Err(format!("still {before}"))
            }
        },
    )
}

/// The server Pods of the release.
fn server_pods(ns: &str) -> Vec<String> {
    let pods = cluster().get_json(ns, &["pods", "-l", "app.kubernetes.io/component=server"]);
    pods["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The text of tlsward's `/metrics` in `pod`, through a port-forward to its admin port.
fn pod_metrics(ns: &str, pod: &str) -> String {
    let pf = cluster().port_forward(ns, &format!("pod/{pod}"), 9090);
    output(
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://127.0.0.1:{}/metrics", pf.port)),
    )
    .unwrap_or_else(|e| panic!("metrics of {pod}: {e}"))
}

/// The value of one sample (`name{labels}`) in a `/metrics` text, 0 when absent.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.trim().parse().ok()))
        .unwrap_or(0.0)
}

/// The tlsward container's log of `pod`.
fn tlsward_log(ns: &str, pod: &str) -> String {
    cluster().kubectl_ok(&["-n", ns, "logs", pod, "-c", "tlsward"])
}

/// A test PostgreSQL that Pods reach: it listens on the bridge's gateway too, admits the Pod
/// network, and its certificate names the chart's default database host.
fn pods_postgres() -> &'static Postgres {
    static PG: OnceLock<Postgres> = OnceLock::new();
    PG.get_or_init(|| {
        let gateway = cluster().gateway();
        Postgres::start(&Reach {
            listen: format!("127.0.0.1,{gateway}"),
            clients: format!("127.0.0.1/32,{POD_NETWORK}"),
            names: vec![DB_HOST.into()],
        })
    })
}

/// The Pods' network (cluster.sh's POD_CIDR).
const POD_NETWORK: &str = "10.244.0.0/24";
/// The chart's default `db.host`.
const DB_HOST: &str = "cockroachdb-public";

/// The database as Pods see it: `cockroachdb-public:26257`, a Service without a selector whose
/// EndpointSlice is the test PostgreSQL on the bridge's gateway.
fn database_service(ns: &str) {
    database_service_at(ns, pods_postgres().port);
}

/// cert-manager CA Issuers named `names` in `ns`, signing with the test PostgreSQL's CA (the
/// "CockroachDB cluster CA" that the database trusts).
fn ca_issuers(ns: &str, names: &[&str]) {
    let pg = pods_postgres();
    let c = cluster();
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&crt, &pg.ca.cert_pem).unwrap();
    std::fs::write(&key, pg.ca.key_pem()).unwrap();
    c.kubectl_ok(&[
        "-n",
        ns,
        "create",
        "secret",
        "tls",
        "test-ca",
        "--cert",
        crt.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ]);
    for name in names {
        c.apply(ns, &format!("apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {{ name: {name} }}\nspec: {{ ca: {{ secretName: test-ca }} }}\n"));
    }
}

/// A Secret from files (`kubectl create secret generic`).
fn secret_from(ns: &str, name: &str, files: &[(&str, &[u8])]) {
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<String> = vec![
        "-n".into(),
        ns.into(),
        "create".into(),
        "secret".into(),
        "generic".into(),
        name.into(),
    ];
    for (key, data) in files {
        std::fs::write(dir.path().join(key), data).unwrap();
        args.push(format!("--from-file={key}={}", dir.path().join(key).display()));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cluster().kubectl_ok(&args);
}

/// A bearer token signed by the keys of the token Secret `secret`, from `tlsward token issue`.
fn token_from_secret(ns: &str, secret: &str) -> String {
    let json = cluster().get_json(ns, &["secret", secret]);
    let dir = tempfile::tempdir().unwrap();
    for (kid, _) in json["data"].as_object().unwrap() {
        std::fs::write(dir.path().join(kid), secret_data(ns, secret, kid)).unwrap();
    }
    let out = output(
        Command::new(env!("CARGO_BIN_EXE_tlsward"))
            .args(["token", "issue", "--sub", "cluster-test", "--token-key-dir"])
            .arg(dir.path()),
    )
    .expect("tlsward token issue");
    out.trim().to_string()
}

/// The users API through a port-forward: a user created with a token and read back; a
/// request without a token refused.
fn users_round_trip(port: u16, ca: &Path, token: &str) {
    let auth = format!("Authorization: Bearer {token}");
    let (head, body) = curl(
        port,
        ca,
        "/users",
        &[
            "-H",
            &auth,
            "-H",
            "Content-Type: application/json",
            "--data",
            r#"{"username":"ada","email":"ada@example.com"}"#,
        ],
    );
    assert!(head.contains(" 201"), "POST /users: {head}{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .expect("an id");
    let (head, body) = curl(port, ca, &format!("/users/{id}"), &["-H", &auth]);
    assert!(
        head.contains(" 200") && body.contains("\"ada\""),
        "GET /users/{id}: {head}{body}"
    );
    let (head, _) = curl(port, ca, &format!("/users/{id}"), &[]);
    assert!(
        head.contains(" 401") && head.contains("www-authenticate: bearer"),
        "{head}"
    );
}

// ---------------------------------------------------------------------------------------------
// helm install, upgrade, uninstall; the manifests.

#[test]
fn helm_install_of_the_api_with_cert_manager_issues_tokens_and_serves_users_through_a_pod_port_forward() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("api-cm");
    let pg = pods_postgres();
    let db = pg.create_db();
    database_service(&ns);
    ca_issuers(&ns, &["tlsward-ca", "cockroachdb-ca"]);
    install(
        &ns,
        &[
            "tls.issuerRef.name=tlsward-ca",
            "tls.issuerRef.kind=Issuer",
            "db.issuerRef.name=cockroachdb-ca",
            &format!("db.database={db}"),
            "db.poolSize=4",
            "kube.watchSecrets=true",
        ],
    );
    let helm_test = c.try_helm(&["test", RELEASE, "-n", &ns, "--timeout", "2m"]);
    assert!(helm_test.is_ok(), "helm test: {helm_test:?}\n{}", describe(&ns));
    let pods = server_pods(&ns);
    let pf = c.port_forward(&ns, &format!("pod/{}", pods[0]), 8443);
    let ca = server_ca_file(&ns);
    users_round_trip(pf.port, ca.path(), &token_from_secret(&ns, "tlsward-tokens"));
    assert_eq!(pg.psql(&db, "SELECT count(*) FROM users WHERE username = 'ada'"), "1");
    // The database client certificate renewed by cert-manager: a new pool, verified, on it.
    let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-db-client", "tlsward-db-client");
    for pod in &pods {
        let log = || tlsward_log(&ns, pod);
        wait::until("the new pool", Duration::from_secs(30), || {
            let events = tlsward_events(&ns);
            let rotated = events.iter().any(|e| {
                e["reason"] == "DatabasePoolRotated"
                    && e["regarding"]["name"] == pod.as_str()
                    && e["note"].as_str().is_some_and(|n| n.contains("generation 2"))
            });
            if rotated { Ok(()) } else { Err(log()) }
        });
    }
    let hex = serial
        .trim_start_matches("serial=")
        .trim_start_matches('0')
        .to_lowercase();
    let sessions = pg.psql(&db, "SELECT client_serial FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) WHERE datname = current_database() AND client_serial IS NOT NULL");
    assert!(
        sessions.lines().any(|s| support::decimal_to_hex(s) == hex),
        "no session with the renewed certificate {hex}: {sessions}"
    );
}

#[test]
fn helm_install_of_the_api_with_existing_secrets_is_ready_and_serves_users() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("api-secrets");
    let pg = pods_postgres();
    let db = pg.create_db();
    database_service(&ns);
    let service = format!("{RELEASE}.{}.svc", ns.name);
    let server = pg
        .ca
        .issue(&LeafSpec::server("localhost", &["localhost", &service]))
        .unwrap();
    let client = pg.ca.issue(&LeafSpec::client("app")).unwrap();
    let ca = pg.ca.cert_pem.as_bytes();
    secret_from(
        &ns,
        "web-tls",
        &[
            ("tls.crt", server.cert_pem.as_bytes()),
            ("tls.key", server.key_pem.as_bytes()),
            ("ca.crt", ca),
        ],
    );
    secret_from(
        &ns,
        "db-client",
        &[
            ("tls.crt", client.cert_pem.as_bytes()),
            ("tls.key", client.key_pem.as_bytes()),
            ("ca.crt", ca),
        ],
    );
    let key = tlsward::token::generate_key_text();
    secret_from(&ns, "token-keys", &[("k1", key.as_bytes())]);
    install(
        &ns,
        &[
            "tls.existingSecret=web-tls",
            "db.existingSecret=db-client",
            "tokens.existingSecret=token-keys",
            &format!("db.database={db}"),
            "db.poolSize=4",
        ],
    );
    let certificates = c.kubectl_ok(&["-n", &ns, "get", "certificates", "-o", "name"]);
    assert!(
        certificates.trim().is_empty(),
        "no Certificate with existing Secrets: {certificates}"
    );
    let helm_test = c.try_helm(&["test", RELEASE, "-n", &ns, "--timeout", "2m"]);
    assert!(helm_test.is_ok(), "helm test: {helm_test:?}\n{}", describe(&ns));
    let pf = c.port_forward(&ns, &format!("svc/{RELEASE}"), 443);
    let ca_file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_file.path(), ca).unwrap();
    assert_eq!(
        served_serial(pf.port, ca_file.path()),
        Ok(pem_serial(server.cert_pem.as_bytes()))
    );
    users_round_trip(pf.port, ca_file.path(), &token_from_secret(&ns, "token-keys"));
}

#[test]
fn helm_upgrade_of_the_policy_changes_the_configmap_not_the_pods_and_is_served() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("upgrade");
    install(&ns, SIDECAR);
    let before = c.get_json(&ns, &["pods", "-l", "app.kubernetes.io/component=server"]);
    let generation = c.get_json(&ns, &["deployment", RELEASE])["metadata"]["generation"].clone();
    let policy_before = c.get_json(&ns, &["configmap", "tlsward-policy"])["data"].clone();
    let mut args = vec![
        "upgrade",
        RELEASE,
        "-n",
        &ns,
        "--reuse-values",
        "--set",
        "policy.profile=modern",
        "--wait",
    ];
    let chart = chart().display().to_string();
    args.insert(2, &chart);
    c.try_helm(&args).unwrap_or_else(|e| panic!("helm upgrade: {e}"));
    let policy_after = c.get_json(&ns, &["configmap", "tlsward-policy"])["data"].clone();
    assert_ne!(policy_before, policy_after, "the policy ConfigMap changed");
    assert!(policy_after.to_string().contains("modern"), "{policy_after}");
    assert_eq!(
        c.get_json(&ns, &["deployment", RELEASE])["metadata"]["generation"],
        generation,
        "the pod template did not change"
    );
    let after = c.get_json(&ns, &["pods", "-l", "app.kubernetes.io/component=server"]);
    let identity = |pods: &Value| -> Vec<(Value, Value)> {
        pods["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["metadata"]["uid"].clone(),
                    p["status"]["initContainerStatuses"][0]["restartCount"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(identity(&before), identity(&after), "no Pod replaced or restarted");
    let ca = server_ca_file(&ns);
    for pod in server_pods(&ns) {
        let pf = c.port_forward(&ns, &format!("pod/{pod}"), 8443);
        // The kubelet projects the ConfigMap within its sync period (about a minute).
        wait::until("the pod to serve the modern profile", Duration::from_secs(150), || {
            if handshakes_with(pf.port, ca.path(), "-tls1_2") {
                Err("TLS 1.2 still accepted".into())
            } else {
                Ok(())
            }
        });
        assert!(handshakes_with(pf.port, ca.path(), "-tls1_3"), "{pod}: TLS 1.3 refused");
    }
}

/// Every namespaced object in `ns` that a test left, as `kind/name`, but what every namespace
/// has (its ServiceAccount, its root CA ConfigMap, Events).
fn objects_in(ns: &str) -> Vec<String> {
    let c = cluster();
    let kinds = c.kubectl_ok(&["api-resources", "--verbs=list", "--namespaced", "-o", "name"]);
    let kinds: Vec<&str> = kinds.lines().filter(|k| !k.starts_with("events")).collect();
    let listed = c.kubectl_ok(&["-n", ns, "get", &kinds.join(","), "-o", "name", "--ignore-not-found"]);
    listed
        .lines()
        .filter(|o| !matches!(*o, "serviceaccount/default" | "configmap/kube-root-ca.crt"))
        .map(str::to_string)
        .collect()
}

#[test]
fn helm_uninstall_leaves_nothing_but_the_secrets_cert_manager_keeps() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("uninstall");
    install(&ns, SIDECAR);
    c.try_helm(&["uninstall", RELEASE, "-n", &ns, "--wait"])
        .unwrap_or_else(|e| panic!("helm uninstall: {e}"));
    // cert-manager keeps the Secrets it issued when their Certificate goes (unless run with
    // --enable-certificate-owner-ref): the server's and the dev CA's.
    let kept = ["secret/tlsward-dev-ca", "secret/tlsward-tls"];
    let left = wait::until("the release's objects to be gone", Duration::from_secs(60), || {
        let left = objects_in(&ns);
        if left.iter().all(|o| kept.contains(&o.as_str())) {
            Ok(left)
        } else {
            Err(format!("{left:?}"))
        }
    });
    assert_eq!(left, kept, "exactly cert-manager's Secrets are left");
}

#[test]
fn the_rendered_manifests_pass_a_server_side_dry_run() {
    let _shared = shared();
    let c = cluster();
    // manifests/tlsward.yaml is rendered into the namespace `tlsward`.
    let _ = c.try_kubectl(&["create", "namespace", "tlsward"]);
    for file in ["manifests/tlsward.yaml", "manifests/cert-manager"] {
        let path = repo().join(file);
        let out = c.try_kubectl(&["apply", "--dry-run=server", "-f", path.to_str().unwrap()]);
        assert!(out.is_ok(), "{file}: {out:?}");
        assert!(out.unwrap().contains("(server dry run)"));
    }
}

// ---------------------------------------------------------------------------------------------
// Rotation by cert-manager.

/// A Pod of the client image that requests `url` until /tmp/stop exists, over keep-alive
/// connections (ten requests each) and over a new connection per request, and prints one line
/// per request: `keepalive CODE` or `new CODE`.
fn start_load(ns: &str, url: &str) {
    let script = format!(
        r#"url={url}
keepalive() {{
  set --; for i in 1 2 3 4 5 6 7 8 9 10; do set -- "$@" -o /dev/null "$url"; done
  while [ ! -e /tmp/stop ]; do curl -s --max-time 10 --cacert /ca/ca.crt -w 'keepalive %{{http_code}}\n' "$@"; done
}}
new() {{
  while [ ! -e /tmp/stop ]; do
    curl -s --max-time 10 --cacert /ca/ca.crt -o /dev/null -w 'new %{{http_code}}\n' "$url" || echo "new failed $?"
  done
}}
keepalive & new & wait; echo finished"#
    );
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "load" },
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "load", "image": "localhost/tlsward-test/client:1", "imagePullPolicy": "Never",
                "command": ["/bin/sh", "-c", script],
                "volumeMounts": [{ "name": "ca", "mountPath": "/ca" }],
            }],
            "volumes": [{ "name": "ca", "secret": { "secretName": "tlsward-tls", "items": [{ "key": "ca.crt", "path": "ca.crt" }] } }],
        }
    });
    cluster().apply(ns, &pod.to_string());
    cluster().kubectl_ok(&["-n", ns, "wait", "--for=condition=Ready", "pod/load", "--timeout=60s"]);
}

/// Stops the load Pod; (requests per kind, lines that were not a 200).
fn stop_load(ns: &str) -> (std::collections::BTreeMap<String, usize>, Vec<String>) {
    let c = cluster();
    c.kubectl_ok(&["-n", ns, "exec", "load", "--", "touch", "/tmp/stop"]);
    c.kubectl_ok(&[
        "-n",
        ns,
        "wait",
        "--for=jsonpath={.status.phase}=Succeeded",
        "pod/load",
        "--timeout=60s",
    ]);
    let log = c.kubectl_ok(&["-n", ns, "logs", "load"]);
    let mut counts = std::collections::BTreeMap::new();
    let mut failures = Vec::new();
    for line in log.lines().filter(|l| *l != "finished") {
        match line.split_once(' ') {
            Some((kind, "200")) => *counts.entry(kind.to_string()).or_insert(0) += 1,
            _ => failures.push(line.to_string()),
        }
    }
    assert!(log.contains("finished"), "the load Pod ended early:\n{log}");
    (counts, failures)
}

#[test]
fn twenty_cert_manager_renewals_under_load_fail_no_request_and_reach_every_replica() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("rotation");
    install(&ns, SIDECAR);
    start_load(&ns, &format!("https://{RELEASE}.{}.svc/", ns.name));
    let ca = server_ca_file(&ns);
    let forwards: Vec<_> = server_pods(&ns)
        .into_iter()
        .map(|pod| (c.port_forward(&ns, &format!("pod/{pod}"), 8443), pod))
        .collect();
    assert_eq!(forwards.len(), 2);
    for renewal in 1..=20 {
        let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-tls", "tlsward-tls");
        for (pf, pod) in &forwards {
            wait::until(
                &format!("renewal {renewal} ({serial}) to be served by {pod}"),
                Duration::from_secs(10),
                || match served_serial(pf.port, ca.path()) {
                    Ok(s) if s == serial => Ok(()),
                    other => Err(format!("{other:?}")),
                },
            );
        }
    }
    let (counts, failures) = stop_load(&ns);
    assert!(
        failures.is_empty(),
        "failed requests: {failures:?} (served: {counts:?})"
    );
    for kind in ["keepalive", "new"] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= 20,
            "too few {kind} requests to judge: {counts:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// RBAC and Events.

#[test]
fn with_the_charts_role_the_secret_watch_and_events_succeed() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("rbac-ok");
    install(&ns, SIDECAR);
    let pod = &server_pods(&ns)[0];
    let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-tls", "tlsward-tls");
    wait::until(
        "the renewal to arrive through the watch",
        Duration::from_secs(20),
        || {
            let m = pod_metrics(&ns, pod);
            let applied = sample(&m, "tlsward_kube_secret_updates_total{outcome=\"applied\"}");
            let published = sample(&m, "tlsward_kube_events_total{outcome=\"published\"}");
            if applied >= 1.0 && published >= 1.0 {
                Ok(())
            } else {
                Err(format!("applied {applied}, published {published}"))
            }
        },
    );
    let m = pod_metrics(&ns, pod);
    assert_eq!(
        sample(&m, "tlsward_kube_secret_updates_total{outcome=\"error\"}"),
        0.0,
        "{m}"
    );
    assert_eq!(sample(&m, "tlsward_kube_events_total{outcome=\"failed\"}"), 0.0, "{m}");
    let log = tlsward_log(&ns, pod);
    assert!(!log.contains("forbidden"), "{log}");
    let _ = serial;
}

#[test]
fn a_secret_outside_the_roles_resource_names_is_refused_and_said_once_while_serving_goes_on() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("rbac-deny");
    secret_from(&ns, "other", &[("tls.crt", b"unused"), ("tls.key", b"unused")]);
    let mut values = SIDECAR.to_vec();
    // The watch is pointed at a Secret the chart's Role does not name (the flag wins over the
    // chart's TLSWARD_KUBE_SECRETS).
    values.extend(["extraArgs[0]=--kube-secret", "extraArgs[1]=other=/etc/tlsward/tls"]);
    install(&ns, &values);
    let pod = &server_pods(&ns)[0];
    let log = refused_several_times(&ns, pod);
    let said: Vec<&str> = log.lines().filter(|l| l.contains("forbidden")).collect();
    assert_eq!(said.len(), 1, "the refusal is said once, not at every retry:\n{log}");
    assert!(
        said[0].contains("resourceNames [other]") && said[0].contains("verbs [get, list, watch]"),
        "{}",
        said[0]
    );
    let ready = c.get_json(&ns, &["pod", pod]);
    assert!(
        ready["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["type"] == "Ready" && x["status"] == "True"),
        "the pod keeps serving: {ready}"
    );
    let pf = c.port_forward(&ns, &format!("pod/{pod}"), 8443);
    let ca = server_ca_file(&ns);
    assert!(curl(pf.port, ca.path(), "/", &[]).0.contains(" 200"));
}

/// Waits until tlsward in `pod` has said that its Secret watch is forbidden and has been refused
/// twice more since; its log then.
fn refused_several_times(ns: &str, pod: &str) -> String {
    let errors = || {
        sample(
            &pod_metrics(ns, pod),
            "tlsward_kube_secret_updates_total{outcome=\"error\"}",
        )
    };
    let first = wait::until("the refusal to be said", Duration::from_secs(90), || {
        if tlsward_log(ns, pod).contains("forbidden") {
            Ok(errors())
        } else {
            Err("not yet".into())
        }
    });
    wait::until("two more refused attempts", Duration::from_secs(90), || {
        let now = errors();
        if now >= first + 2.0 {
            Ok(())
        } else {
            Err(format!("{now} errors, {first} at the first"))
        }
    });
    tlsward_log(ns, pod)
}

/// The Events tlsward published in `ns`, as events.k8s.io/v1 objects.
fn tlsward_events(ns: &str) -> Vec<Value> {
    let events = cluster().get_json(ns, &["events.v1.events.k8s.io"]);
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["reportingController"] == "tlsward")
        .cloned()
        .collect()
}

/// The Event with `reason`, once there is one.
fn event_with(ns: &str, reason: &str, accept: impl Fn(&Value) -> bool) -> Value {
    wait::until(&format!("a {reason} Event"), Duration::from_secs(30), || {
        let events = tlsward_events(ns);
        events
            .iter()
            .find(|e| e["reason"] == reason && accept(e))
            .cloned()
            .ok_or_else(|| format!("{events:?}"))
    })
}

#[test]
fn events_regard_the_pod_for_applied_rejected_and_expiring_material_and_repeats_become_a_series() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("events");
    let pg = pods_postgres();
    let first = pg.ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let ca = pg.ca.cert_pem.as_bytes();
    secret_from(
        &ns,
        "web-tls",
        &[
            ("tls.crt", first.cert_pem.as_bytes()),
            ("tls.key", first.key_pem.as_bytes()),
            ("ca.crt", ca),
        ],
    );
    let mut values = SIDECAR.to_vec();
    values.retain(|v| !v.starts_with("certManager"));
    // The test CA's certificates live a year: warn about any that expires within two.
    values.extend([
        "tls.existingSecret=web-tls",
        "extraArgs[0]=--expiry-warning",
        "extraArgs[1]=17520h",
        "replicaCount=1",
        "podDisruptionBudget.enabled=false",
    ]);
    install(&ns, &values);
    let pod_name = server_pods(&ns).remove(0);
    let pod = c.get_json(&ns, &["pod", &pod_name]);
    let regards_the_pod = |e: &Value| {
        e["regarding"]["kind"] == "Pod"
            && e["regarding"]["name"] == pod_name.as_str()
            && e["regarding"]["namespace"] == ns.name.as_str()
            && e["regarding"]["uid"] == pod["metadata"]["uid"]
            && e["reportingInstance"] == pod_name.as_str()
            && e["eventTime"].is_string()
    };
    let expiring = event_with(&ns, "CertificateExpiringSoon", regards_the_pod);
    assert_eq!(expiring["type"], "Warning", "{expiring}");

    // Applied: a new certificate in the Secret.
    let second = pg.ca.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let patch = |crt: &[u8], key: &[u8]| {
        use base64::Engine;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let p = json!({ "data": { "tls.crt": b64(crt), "tls.key": b64(key) } }).to_string();
        c.kubectl_ok(&["-n", &ns, "patch", "secret", "web-tls", "--type", "merge", "-p", &p]);
    };
    patch(second.cert_pem.as_bytes(), second.key_pem.as_bytes());
    let want_serial = pem_serial(second.cert_pem.as_bytes())
        .trim_start_matches("serial=")
        .to_lowercase();
    let rotated = event_with(&ns, "CertificateRotated", |e| {
        regards_the_pod(e)
            && e["note"]
                .as_str()
                .unwrap_or("")
                .to_lowercase()
                .replace(':', "")
                .contains(&want_serial)
    });
    assert_eq!(rotated["type"], "Normal", "{rotated}");
    assert!(rotated["action"].as_str().is_some_and(|a| !a.is_empty()), "{rotated}");

    // Rejected, twice for the same reason: one Event with a series.
    for garbage in ["not a certificate 1", "not a certificate 2"] {
        patch(garbage.as_bytes(), second.key_pem.as_bytes());
        event_with(&ns, "ReloadRejected", regards_the_pod);
    }
    let rejected = event_with(&ns, "ReloadRejected", |e| {
        regards_the_pod(e) && e["series"]["count"].as_i64() >= Some(2)
    });
    assert_eq!(rejected["type"], "Warning", "{rejected}");
    assert!(
        rejected["note"].as_str().unwrap().contains("tls.crt"),
        "the note names the file: {rejected}"
    );
    assert!(rejected["series"]["lastObservedTime"].is_string(), "{rejected}");
    let rejections = tlsward_events(&ns)
        .into_iter()
        .filter(|e| e["reason"] == "ReloadRejected")
        .count();
    assert_eq!(rejections, 1, "repeats aggregate into one Event");
}

// ---------------------------------------------------------------------------------------------
// Faults that stay inside one Pod.

/// The network namespace (as `ip netns` names it) of the Pod with address `ip`.
fn netns_of(ip: &str) -> String {
    let list = output(Command::new("ip").args(["netns", "list"])).unwrap();
    list.lines()
        .filter_map(|l| l.split_whitespace().next())
        .find(|ns| {
            output(Command::new("ip").args(["netns", "exec", ns, "ip", "-4", "-o", "addr", "show"]))
                .is_ok_and(|a| a.contains(&format!(" {ip}/")))
        })
        .unwrap_or_else(|| panic!("no network namespace holds {ip}:\n{list}"))
        .to_string()
}

/// iptables in the network namespace `netns`.
fn pod_iptables(netns: &str, args: &[&str]) {
    output(Command::new("ip").args(["netns", "exec", netns, "iptables"]).args(args))
        .unwrap_or_else(|e| panic!("iptables {args:?} in {netns}: {e}"));
}

#[test]
fn a_pod_cut_off_from_the_api_keeps_serving_and_applies_the_kubelets_projected_files() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("no-api");
    install(
        &ns,
        &[SIDECAR, &["replicaCount=1", "podDisruptionBudget.enabled=false"]].concat(),
    );
    let pod = server_pods(&ns).remove(0);
    let ip = c.get_json(&ns, &["pod", &pod])["status"]["podIP"]
        .as_str()
        .unwrap()
        .to_string();
    let netns = netns_of(&ip);
    let pf = c.port_forward(&ns, &format!("pod/{pod}"), 8443);
    let ca = server_ca_file(&ns);
    let watched_before = sample(
        &pod_metrics(&ns, &pod),
        "tlsward_kube_secret_updates_total{outcome=\"applied\"}",
    );
    // Everything between the Pod and the API server (its Service address and the address
    // behind it), both ways, is dropped: a partition, not a refusal. The kubelet's probes and
    // port-forwards (from other ports of the gateway, or inside the Pod) still pass.
    let (service, gateway) = ("10.96.0.1", c.gateway());
    let rules = [
        ["OUTPUT", "-d", service, "--dport", "443"],
        ["OUTPUT", "-d", gateway, "--dport", "6443"],
        ["INPUT", "-s", service, "--sport", "443"],
        ["INPUT", "-s", gateway, "--sport", "6443"],
    ];
    let cut_off = |verb: &str| {
        for [chain, side, address, port_side, port] in &rules {
            pod_iptables(
                &netns,
                &[verb, chain, "-p", "tcp", side, address, port_side, port, "-j", "DROP"],
            );
        }
    };
    cut_off("-I");
    let cut = std::time::Instant::now();
    let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-tls", "tlsward-tls");
    wait::until(
        "the kubelet's projection to be served",
        Duration::from_secs(180),
        || {
            assert!(
                curl(pf.port, ca.path(), "/", &[]).0.contains(" 200"),
                "serving stopped while cut off"
            );
            match served_serial(pf.port, ca.path()) {
                Ok(s) if s == serial => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    );
    let watched = sample(
        &pod_metrics(&ns, &pod),
        "tlsward_kube_secret_updates_total{outcome=\"applied\"}",
    );
    assert_eq!(watched, watched_before, "the renewal came from the files, not the API");
    // Keep it cut off for a minute in all, serving throughout.
    wait::until("a minute without the API", Duration::from_secs(90), || {
        assert!(
            curl(pf.port, ca.path(), "/", &[]).0.contains(" 200"),
            "serving stopped while cut off"
        );
        if cut.elapsed() >= Duration::from_secs(60) {
            Ok(())
        } else {
            Err("not a minute yet".into())
        }
    });
    cut_off("-D");
}

/// Whether the EndpointSlices of the release's Service list `pod` as ready (`None`: not listed).
fn endpoint_ready(ns: &str, pod: &str) -> Option<bool> {
    let slices = cluster().get_json(
        ns,
        &["endpointslices", "-l", &format!("kubernetes.io/service-name={RELEASE}")],
    );
    slices["items"]
        .as_array()?
        .iter()
        .flat_map(|s| s["endpoints"].as_array().cloned().unwrap_or_default())
        .find(|e| e["targetRef"]["name"] == pod)
        .map(|e| e["conditions"]["ready"] == true)
}

#[test]
fn a_killed_tlsward_container_is_restarted_by_the_kubelet_and_out_of_the_endpoints_until_ready() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("kill");
    install(&ns, SIDECAR);
    let pod = server_pods(&ns).remove(0);
    let status = c.get_json(&ns, &["pod", &pod]);
    let tlsward = &status["status"]["initContainerStatuses"][0];
    assert_eq!(tlsward["name"], "tlsward");
    let id = tlsward["containerID"]
        .as_str()
        .unwrap()
        .trim_start_matches("containerd://")
        .to_string();
    let tasks =
        output(Command::new("ctr").args(["--address", c.var("CONTAINERD_SOCK"), "-n", "k8s.io", "tasks", "ls"]))
            .unwrap();
    let pid = tasks
        .lines()
        .find(|l| l.starts_with(&id))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no task {id}:\n{tasks}"))
        .to_string();
    assert_eq!(endpoint_ready(&ns, &pod), Some(true));
    output(Command::new("kill").args(["-KILL", &pid])).unwrap();
    wait::until(
        "the pod to leave the ready endpoints",
        Duration::from_secs(30),
        || match endpoint_ready(&ns, &pod) {
            Some(true) => Err("still ready".into()),
            _ => Ok(()),
        },
    );
    wait::until(
        "the pod to be a ready endpoint again",
        Duration::from_secs(90),
        || match endpoint_ready(&ns, &pod) {
            Some(true) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let restarted = c.get_json(&ns, &["pod", &pod]);
    assert_eq!(
        restarted["status"]["initContainerStatuses"][0]["restartCount"], 1,
        "{restarted}"
    );
}

// ---------------------------------------------------------------------------------------------
// Faults of the control plane: these restart the API server, so they run alone.

/// `reload_total` of the server certificate in `pod`.
fn server_reloads(ns: &str, pod: &str) -> f64 {
    sample(
        &pod_metrics(ns, pod),
        "tlsward_reload_total{material=\"server\",outcome=\"applied\"}",
    )
}

/// Restarts the API server, running `while_down` between its stop and its start, and waits
/// until it is ready again.
fn restart_api_server(while_down: impl FnOnce()) {
    let c = cluster();
    c.stop_component("kube-apiserver");
    while_down();
    c.start_component("kube-apiserver");
    wait::until("the API server to be ready again", Duration::from_secs(90), || {
        c.try_kubectl(&["get", "--raw", "/readyz"])
    });
}

/// An etcd v3 JSON API call (its gRPC gateway); the answer.
fn etcd(path: &str, body: &Value) -> Value {
    let url = format!("{}/v3/{path}", cluster().var("ETCD"));
    let out =
        output(Command::new("curl").args(["-sS", "--max-time", "10", "-X", "POST", &url, "-d", &body.to_string()]))
            .unwrap_or_else(|e| panic!("etcd {path}: {e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("etcd {path}: {e}: {out}"))
}

#[test]
fn an_api_server_restart_with_etcd_compacted_while_down_misses_no_renewal_and_reloads_once() {
    let _alone = exclusive();
    let c = cluster();
    let ns = c.namespace("compaction");
    install(&ns, SIDECAR);
    let pods = server_pods(&ns);
    let watched = |pod: &str| {
        sample(
            &pod_metrics(&ns, pod),
            "tlsward_kube_secret_updates_total{outcome=\"applied\"}",
        )
    };
    let before: Vec<(f64, f64)> = pods.iter().map(|p| (server_reloads(&ns, p), watched(p))).collect();
    restart_api_server(|| {
        // A write the watchers never saw, then a compaction past it: their resourceVersions
        // are gone when the API server is back (410 Gone → a new list).
        let put = etcd("kv/put", &json!({ "key": "dGxzd2FyZC10ZXN0", "value": "MQ==" }));
        let revision = put["header"]["revision"].as_str().expect("a revision").to_string();
        let compacted = etcd("kv/compaction", &json!({ "revision": revision, "physical": true }));
        assert!(compacted["header"].is_object(), "{compacted}");
    });
    // The watches list again on 410 Gone, after their back-off (30 s at most, up to twice that
    // with its jitter).
    for pod in &pods {
        wait::until(
            &format!("{pod} to list its Secret again"),
            Duration::from_secs(100),
            || {
                if tlsward_log(&ns, pod).contains("410 Gone") {
                    Ok(())
                } else {
                    Err("no 410 yet".into())
                }
            },
        );
    }
    let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-tls", "tlsward-tls");
    let ca = server_ca_file(&ns);
    for (pod, (reloads, applied)) in pods.iter().zip(before) {
        let pf = c.port_forward(&ns, &format!("pod/{pod}"), 8443);
        // Through the resumed watch, well before the kubelet's projection (about a minute).
        wait::until(
            &format!("{pod} to serve the renewal"),
            Duration::from_secs(20),
            || match served_serial(pf.port, ca.path()) {
                Ok(s) if s == serial => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
        assert_eq!(watched(pod), applied + 1.0, "{pod}: the renewal came through the watch");
        assert_eq!(
            server_reloads(&ns, pod),
            reloads + 1.0,
            "{pod}: one reload for one renewal"
        );
    }
}

#[test]
fn a_role_deleted_mid_run_is_said_once_and_the_watch_resumes_when_it_is_restored() {
    let _alone = exclusive();
    let c = cluster();
    let ns = c.namespace("role");
    install(
        &ns,
        &[SIDECAR, &["replicaCount=1", "podDisruptionBudget.enabled=false"]].concat(),
    );
    let pod = server_pods(&ns).remove(0);
    let mut role = c.get_json(&ns, &["role", RELEASE]);
    for field in ["resourceVersion", "uid", "creationTimestamp", "managedFields"] {
        role["metadata"].as_object_mut().unwrap().remove(field);
    }
    c.kubectl_ok(&["-n", &ns, "delete", "role", RELEASE]);
    // A running watch was authorized when it started: the API server's restart (as its own
    // timeout would, later) makes tlsward list and watch again, now without the Role.
    restart_api_server(|| {});
    let log = refused_several_times(&ns, &pod);
    let said = log.lines().filter(|l| l.contains("forbidden")).count();
    assert_eq!(said, 1, "said once:\n{log}");
    let updates = |outcome: &str| {
        sample(
            &pod_metrics(&ns, &pod),
            &format!("tlsward_kube_secret_updates_total{{outcome=\"{outcome}\"}}"),
        )
    };
    let unchanged_before = updates("unchanged");
    c.apply(&ns, &role.to_string());
    // The watch resumes at its next attempt (its back-off, up to a minute with jitter): it lists
    // the Secret again and finds what the files hold.
    wait::until("the watch to resume", Duration::from_secs(100), || {
        let unchanged = updates("unchanged");
        if unchanged > unchanged_before {
            Ok(())
        } else {
            Err(format!("{unchanged} unchanged"))
        }
    });
    let applied_before = updates("applied");
    let serial = renew_and_wait_for_a_new_serial(&ns, "tlsward-tls", "tlsward-tls");
    let ca = server_ca_file(&ns);
    let pf = c.port_forward(&ns, &format!("pod/{pod}"), 8443);
    // Through the watch: well before the kubelet's projection (about a minute).
    wait::until("the renewal through the resumed watch", Duration::from_secs(20), || {
        let applied = updates("applied");
        match served_serial(pf.port, ca.path()) {
            Ok(s) if s == serial && applied > applied_before => Ok(()),
            other => Err(format!("{other:?}, applied {applied}")),
        }
    });
}

// ---------------------------------------------------------------------------------------------
// The database's material, rotated through the API for the pool and for db-proxy.

/// The database as Pods see it (`cockroachdb-public:26257`) in front of the cluster on `port`
/// of the bridge's gateway.
fn database_service_at(ns: &str, port: u16) {
    cluster().apply(
        ns,
        &format!(
            "apiVersion: v1
kind: Service
metadata: {{ name: {DB_HOST} }}
spec:
  ports: [{{ port: 26257, targetPort: {port}, protocol: TCP }}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: {DB_HOST}-1
  labels: {{ kubernetes.io/service-name: {DB_HOST} }}
addressType: IPv4
ports: [{{ port: {port}, protocol: TCP }}]
endpoints: [{{ addresses: [\"{gateway}\"] }}]
",
            gateway = cluster().gateway()
        ),
    );
}

/// Replaces the data of Secret `name` (kubectl apply of the whole Secret), as a CA distributor or
/// an operator would.
fn write_secret(ns: &str, name: &str, files: &[(&str, &[u8])]) {
    use base64::Engine;
    let data: serde_json::Map<String, Value> = files
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                Value::String(base64::engine::general_purpose::STANDARD.encode(v)),
            )
        })
        .collect();
    let secret = json!({ "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name }, "data": data });
    cluster().apply(ns, &secret.to_string());
}

/// How many times the release's only Pod applied a new `material`.
fn applied(ns: &str, material: &str) -> f64 {
    let pod = server_pods(ns).remove(0);
    sample(
        &pod_metrics(ns, &pod),
        &format!("tlsward_reload_total{{material=\"{material}\",outcome=\"applied\"}}"),
    )
}

/// A query through the app's database socket (tlsward db-proxy): `psql` in the app container.
fn through_db_proxy(ns: &str, sql: &str) -> Result<String, String> {
    let pod = server_pods(ns).remove(0);
    cluster()
        .try_kubectl(&["-n", ns, "exec", &pod, "-c", "app", "--", "psql", "-X", "-tAc", sql])
        .map(|s| s.trim().to_string())
}

#[test]
fn a_database_ca_rotation_and_a_new_client_certificate_reach_the_pool_and_db_proxy_through_the_secret() {
    let _shared = shared();
    let c = cluster();
    let db = TwoCaCluster::start_reaching(&Reach {
        listen: format!("127.0.0.1,{}", c.gateway()),
        clients: format!("127.0.0.1/32,{POD_NETWORK}"),
        names: vec![DB_HOST.into()],
    });
    let (pool, proxied) = (c.namespace("dbca-pool"), c.namespace("dbca-proxy"));
    let old_client = db.old.issue(&LeafSpec::client("app")).unwrap();
    let web = db.old.issue(&LeafSpec::server("localhost", &["localhost"])).unwrap();
    let web_ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(web_ca.path(), &db.old.cert_pem).unwrap();
    let key = tlsward::token::generate_key_text();
    for ns in [&pool, &proxied] {
        database_service_at(ns, db.port);
        secret_from(
            ns,
            "web-tls",
            &[
                ("tls.crt", web.cert_pem.as_bytes()),
                ("tls.key", web.key_pem.as_bytes()),
            ],
        );
        write_secret(
            ns,
            "db-client",
            &[
                ("ca.crt", db.old.cert_pem.as_bytes()),
                ("tls.crt", old_client.cert_pem.as_bytes()),
                ("tls.key", old_client.key_pem.as_bytes()),
            ],
        );
    }
    secret_from(&pool, "token-keys", &[("k1", key.as_bytes())]);
    let common = [
        "tls.existingSecret=web-tls",
        "db.existingSecret=db-client",
        "db.database=app",
        "kube.watchSecrets=true",
        "replicaCount=1",
        "podDisruptionBudget.enabled=false",
    ];
    install(
        &pool,
        &[&common[..], &["tokens.existingSecret=token-keys", "db.poolSize=2"]].concat(),
    );
    install(
        &proxied,
        &[
            &common[..],
            &[
                "mode=sidecar",
                "app.image=localhost/tlsward-test/app:1",
                "app.dbProxy=true",
            ],
        ]
        .concat(),
    );
    let pf = c.port_forward(&pool, &format!("svc/{RELEASE}"), 443);
    let token = token_from_secret(&pool, "token-keys");
    let users = || {
        curl(
            pf.port,
            web_ca.path(),
            "/users?limit=1",
            &["-H", &format!("Authorization: Bearer {token}")],
        )
        .0
    };
    assert!(users().contains(" 200"), "{}", users());
    assert_eq!(through_db_proxy(&proxied, "SELECT 1"), Ok("1".into()));

    // 1. Both CAs trusted (the client certificate unchanged).
    let before = (applied(&pool, "db_ca"), applied(&proxied, "db_ca"));
    for ns in [&pool, &proxied] {
        write_secret(
            ns,
            "db-client",
            &[
                ("ca.crt", db.both.as_bytes()),
                ("tls.crt", old_client.cert_pem.as_bytes()),
                ("tls.key", old_client.key_pem.as_bytes()),
            ],
        );
    }
    wait::until("the bundle of both CAs to be applied", Duration::from_secs(30), || {
        let now = (applied(&pool, "db_ca"), applied(&proxied, "db_ca"));
        if now.0 > before.0 && now.1 > before.1 {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    });
    // 2. The database serves a certificate of the new CA: new sessions verify against the bundle.
    db.serve_a_new_ca_certificate();
    assert_eq!(
        through_db_proxy(&proxied, "SELECT 2"),
        Ok("2".into()),
        "db-proxy trusts the new CA"
    );
    // 3. The new CA only, and a client certificate of the new CA.
    let new_client = db.new.issue(&LeafSpec::client("app")).unwrap();
    let before = (applied(&pool, "db_client"), applied(&proxied, "db_client"));
    for ns in [&pool, &proxied] {
        write_secret(
            ns,
            "db-client",
            &[
                ("ca.crt", db.new.cert_pem.as_bytes()),
                ("tls.crt", new_client.cert_pem.as_bytes()),
                ("tls.key", new_client.key_pem.as_bytes()),
            ],
        );
    }
    wait::until(
        "the new CA and client certificate to be applied",
        Duration::from_secs(30),
        || {
            let now = (applied(&pool, "db_client"), applied(&proxied, "db_client"));
            if now.0 > before.0 && now.1 > before.1 {
                Ok(())
            } else {
                Err(format!("{now:?}"))
            }
        },
    );
    let serial = support::plain_serial(&new_client.cert_pem);
    let sessions_of_new_client = || {
        db.psql(
            "postgres",
            "SELECT client_serial FROM pg_stat_ssl WHERE client_serial IS NOT NULL",
        )
        .lines()
        .filter(|s| support::decimal_to_hex(s) == serial)
        .count()
    };
    wait::until(
        "the pool to reconnect with the new client certificate",
        Duration::from_secs(30),
        || {
            let n = sessions_of_new_client();
            if n >= 1 {
                Ok(())
            } else {
                Err("no session with it yet".into())
            }
        },
    );
    assert!(users().contains(" 200"), "the API after the rotation: {}", users());
    assert_eq!(
        through_db_proxy(
            &proxied,
            "SELECT count(*) > 0 FROM pg_stat_ssl WHERE client_serial IS NOT NULL"
        ),
        Ok("t".into()),
        "db-proxy opens sessions with the new client certificate"
    );
}

// ---------------------------------------------------------------------------------------------
// The binary outside the cluster, with a kubeconfig.

/// A kubeconfig for ServiceAccount `sa` of `ns`, with a token from the TokenRequest API.
fn service_account_kubeconfig(ns: &str, sa: &str) -> tempfile::NamedTempFile {
    let c = cluster();
    let token = c.kubectl_ok(&["-n", ns, "create", "token", sa, "--duration", "1h"]);
    let file = tempfile::NamedTempFile::new().unwrap();
    let config = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{ "name": "test", "cluster": { "server": c.var("API_SERVER"), "certificate-authority": c.var("CA") } }],
        "users": [{ "name": sa, "user": { "token": token.trim() } }],
        "contexts": [{ "name": "test", "context": { "cluster": "test", "user": sa, "namespace": ns } }],
        "current-context": "test",
    });
    std::fs::write(file.path(), config.to_string()).unwrap();
    file
}

#[test]
fn the_binary_with_a_kubeconfig_publishes_events_and_names_the_rbac_rule_its_secret_watch_lacks() {
    let _shared = shared();
    let c = cluster();
    let ns = c.namespace("outside");
    // A ServiceAccount that may publish Events and nothing else.
    c.apply(
        &ns,
        r#"{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "outsider"}}"#,
    );
    c.apply(
        &ns,
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": "events" },
            "rules": [{ "apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"] }],
        })
        .to_string(),
    );
    c.kubectl_ok(&[
        "-n",
        &ns,
        "create",
        "rolebinding",
        "events",
        "--role",
        "events",
        &format!("--serviceaccount={}:outsider", ns.name),
    ]);
    let kubeconfig = service_account_kubeconfig(&ns, "outsider");
    let pg = pods_postgres();
    let db = pg.create_db();
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_tlsward"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args([
                "--tls-dir",
                pg.server_dir.to_str().unwrap(),
                "--token-key-dir",
                pg.token_dir.to_str().unwrap(),
            ])
            .args(["--db-url", &pg.dsn(&db, &pg.client_dir)])
            .args([
                "--watch-secrets",
                "api",
                "--kube-secret",
                &format!("web-tls={}", pg.server_dir.display()),
            ])
            .env("KUBECONFIG", kubeconfig.path())
            .env("POD_NAME", "outside-0")
            .env("POD_NAMESPACE", &ns.name)
            .env("TLSWARD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .unwrap(),
    );
    let text = || std::fs::read_to_string(log.path()).unwrap();
    // The Event of the first pool, through the client from KUBECONFIG.
    wait::until("the binary's first Event", Duration::from_secs(30), || {
        let events = tlsward_events(&ns);
        if events
            .iter()
            .any(|e| e["reason"] == "DatabasePoolRotated" && e["regarding"]["name"] == "outside-0")
        {
            Ok(())
        } else {
            Err(text())
        }
    });
    let said = wait::until("the refused list to be said", Duration::from_secs(30), || {
        let t = text();
        if t.contains("may not list Secret \"web-tls\"") {
            Ok(t)
        } else {
            Err(t)
        }
    });
    assert!(
        said.contains("verbs [get, list, watch]") && said.contains(&format!("in namespace {}", ns.name)),
        "{said}"
    );
    // The back-off retries (0.8 s, 1.6 s, …) are counted and say nothing more.
    let admin = said
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin_addr="))
        .unwrap_or_else(|| panic!("no admin address in the log: {said}"))
        .to_string();
    let metrics = format!("http://{admin}/metrics");
    wait::until("three refused attempts", Duration::from_secs(30), || {
        let m = output(Command::new("curl").args(["-sS", "--max-time", "5", &metrics]))?;
        let errors = sample(&m, "tlsward_kube_secret_updates_total{outcome=\"error\"}");
        if errors >= 3.0 {
            Ok(())
        } else {
            Err(format!("{errors} errors"))
        }
    });
    let retried = text();
    assert_eq!(retried.matches("may not list Secret").count(), 1, "{retried}");
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "a 403 must not stop the server: {retried}"
    );
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
