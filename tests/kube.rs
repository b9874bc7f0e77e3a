//! The shapes of the Kubernetes requests (Events on reloads, `--watch-secrets api`) against
//! kube's own `tower_test` mock service handed to `kube::Client::new`: the tests see every
//! request the code makes and assert it exactly (an Event POST, then a PATCH of its series for a
//! repeat; a Secret list by field selector, then a watch from its resourceVersion); and the
//! checks of the Kubernetes flags. What a real API server does with them (RBAC, 410 Gone,
//! restarts, the kubelet's projection) is tested on the real cluster, in tests/cluster.rs.

use tlsward_testkit as support;

use std::path::Path;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use support::{kubelet, new_server_cert, postgres, serve_args, start_with_kube, wait_serial};
use tlsward::k8s::PodRef;
use tlsward::k8s::events::{Publisher, describe_error};
use tlsward::pki::Issued;
use tlsward::reload::Notice;
use tlsward::snapshot::Material;
use tower_test::mock;

const SOON: Duration = Duration::from_secs(10);

type Handle = mock::Handle<Request<Body>, Response<Body>>;

fn mock_client(namespace: &str) -> (kube::Client, Handle) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    (kube::Client::new(service, namespace), handle)
}

/// Takes the next request from the mock, answers it with `code` and `reply`, and returns the
/// method, the decoded URI, the content type and the JSON body.
async fn answer(
    handle: &mut Handle,
    code: u16,
    reply: impl FnOnce(&Value) -> Value,
) -> (Method, String, String, Value) {
    let (req, send) = tokio::time::timeout(SOON, handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    let (parts, body) = req.into_parts();
    let bytes = body.collect_bytes().await.unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let out = serde_json::to_vec(&reply(&body)).unwrap();
    send.send_response(Response::builder().status(code).body(Body::from(out)).unwrap());
    let uri = percent_encoding::percent_decode_str(&parts.uri.to_string())
        .decode_utf8_lossy()
        .to_string();
    let ctype = parts
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (parts.method, uri, ctype, body)
}

fn pod() -> PodRef {
    PodRef {
        name: "tlsward-7d9f-x2".into(),
        namespace: "shop".into(),
        uid: Some("0b8e2c51-4f7a-4c1e-9d7e-3f1b2a6c9d10".into()),
    }
}

fn rejected(reason: &str) -> Notice {
    Notice::ReloadRejected {
        material: Material::Server,
        reason: reason.into(),
    }
}

#[tokio::test]
async fn events_are_posted_once_then_repeats_patch_the_series() {
    tlsward::install_crypto_provider();
    let (client, mut handle) = mock_client("default");
    let publisher = Publisher::new(client, &pod());
    let events_path = "/apis/events.k8s.io/v1/namespaces/shop/events";

    // First occurrence: POST a new events.k8s.io/v1 Event regarding the Pod.
    let p = publisher.clone();
    let task = tokio::spawn(async move { p.publish(&rejected("tls.key: bad PEM: truncated")).await });
    let (method, uri, _, body) = answer(&mut handle, 201, |b| b.clone()).await;
    task.await.unwrap().unwrap();
    assert_eq!(method, Method::POST);
    assert!(
        uri.starts_with(events_path) && !uri[events_path.len()..].starts_with('/'),
        "{uri}"
    );
    assert_eq!(body["type"], "Warning");
    assert_eq!(body["reason"], "ReloadRejected");
    assert_eq!(body["reportingController"], "tlsward");
    assert_eq!(body["reportingInstance"], "tlsward-7d9f-x2");
    assert_eq!(
        body["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "tlsward-7d9f-x2", "namespace": "shop",
               "uid": "0b8e2c51-4f7a-4c1e-9d7e-3f1b2a6c9d10"})
    );
    let note = body["note"].as_str().unwrap();
    assert!(
        note.contains("tls.key: bad PEM: truncated") && note.contains("last good"),
        "{note}"
    );
    assert!(body["series"].is_null());
    let name = body["metadata"]["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("tlsward-7d9f-x2."), "{name}");

    // The same happening twice more: PATCH that Event's series, count 2 then 3.
    for count in [2, 3] {
        let p = publisher.clone();
        let task = tokio::spawn(async move { p.publish(&rejected("tls.key: bad PEM: truncated")).await });
        let (method, uri, ctype, body) = answer(&mut handle, 200, |b| b.clone()).await;
        task.await.unwrap().unwrap();
        assert_eq!(method, Method::PATCH);
        assert!(uri.starts_with(&format!("{events_path}/{name}")), "{uri}");
        assert_eq!(ctype, "application/merge-patch+json");
        assert_eq!(body["series"]["count"], count);
        assert!(body["series"]["lastObservedTime"].is_string());
    }

    // A different reason is a different happening: a new Event.
    let p = publisher.clone();
    let task = tokio::spawn(async move { p.publish(&rejected("tls.crt: expired")).await });
    let (method, _, _, body) = answer(&mut handle, 201, |b| b.clone()).await;
    task.await.unwrap().unwrap();
    assert_eq!(method, Method::POST);
    assert_ne!(body["metadata"]["name"].as_str().unwrap(), name);

    // A Normal rotation Event carries the serial and the expiry.
    let rotated = Notice::CertificateRotated {
        material: Material::Server,
        certs: vec![("0a1b2c".into(), "2027-03-01T00:00:00Z".into())],
        digest: "5f0e".into(),
        generation: 4,
    };
    let p = publisher.clone();
    let task = tokio::spawn(async move { p.publish(&rotated).await });
    let (method, _, _, body) = answer(&mut handle, 201, |b| b.clone()).await;
    task.await.unwrap().unwrap();
    assert_eq!(
        (method, body["type"].as_str(), body["reason"].as_str()),
        (Method::POST, Some("Normal"), Some("CertificateRotated"))
    );
    let note = body["note"].as_str().unwrap();
    assert!(
        note.contains("serial 0a1b2c") && note.contains("2027-03-01T00:00:00Z"),
        "{note}"
    );

    // Missing RBAC: the error names the rule the Role needs.
    let p = publisher.clone();
    let task = tokio::spawn(async move { p.publish(&rejected("policy.yaml: CBC")).await });
    answer(&mut handle, 403, |_| {
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Forbidden", "code": 403,
               "message": "events.events.k8s.io is forbidden: User \"system:serviceaccount:shop:tlsward\" cannot create resource \"events\""})
    })
    .await;
    let err = task.await.unwrap().unwrap_err();
    let text = describe_error(&err, "shop");
    assert!(
        text.contains("events.k8s.io") && text.contains("create, patch") && text.contains("cannot create"),
        "{text}"
    );
}

fn pair(issued: &Issued) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("tls.crt", issued.cert_pem.clone().into_bytes()),
        ("tls.key", issued.key_pem.clone().into_bytes()),
        ("ca.crt", postgres().ca.cert_pem.clone().into_bytes()),
    ]
}

fn refs<'a>(files: &'a [(&'static str, Vec<u8>)]) -> Vec<(&'static str, &'a [u8])> {
    files.iter().map(|(k, v)| (*k, v.as_slice())).collect()
}

fn secret(files: &[(&'static str, Vec<u8>)], version: &str) -> Value {
    use base64::Engine;
    let b64 = |v: &[u8]| base64::engine::general_purpose::STANDARD.encode(v);
    let data: serde_json::Map<String, Value> = files.iter().map(|(k, v)| (k.to_string(), json!(b64(v)))).collect();
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls", "namespace": "shop",
           "resourceVersion": version}, "type": "kubernetes.io/tls", "data": data})
}

fn api_args(dir: &Path, extra: &[&str]) -> tlsward::cli::ServeArgs {
    let mut args: Vec<String> = [
        "--tls-dir",
        &dir.display().to_string(),
        "--watch-secrets",
        "api",
        "--kube-secret",
        &format!("web-tls={}", dir.display()),
        "--pod-name",
        "tlsward-7d9f-x2",
        "--pod-namespace",
        "shop",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    serve_args(&refs)
}

#[tokio::test]
async fn secret_is_listed_by_name_then_watched_from_its_version_and_applied() {
    let pg = postgres();
    let dir = pg.scratch().join("tls");
    let first = new_server_cert();
    kubelet::write(&dir, &refs(&pair(&first)));
    let (client, mut handle) = mock_client("default");
    let s = start_with_kube(api_args(&dir, &["--kube-events", "off"]), Some(client)).await;

    // 1: a list of exactly this Secret (field selector by name: RBAC by resourceNames works).
    let (method, uri, _, _) = answer(&mut handle, 200, |_| {
        json!({"apiVersion": "v1", "kind": "SecretList", "metadata": {"resourceVersion": "7"},
               "items": [secret(&pair(&first), "7")]})
    })
    .await;
    assert_eq!(method, Method::GET);
    assert!(uri.starts_with("/api/v1/namespaces/shop/secrets?"), "{uri}");
    assert!(
        uri.contains("fieldSelector=metadata.name=web-tls") && !uri.contains("watch="),
        "{uri}"
    );

    // 2: a watch of the same selection from the list's resourceVersion; it brings a new cert.
    let second = new_server_cert();
    let modified = json!({"type": "MODIFIED", "object": secret(&pair(&second), "8")}).to_string() + "\n";
    let (method, uri, _, _) = answer_raw(&mut handle, modified).await;
    assert_eq!(method, Method::GET);
    assert!(uri.starts_with("/api/v1/namespaces/shop/secrets?"), "{uri}");
    for part in ["fieldSelector=metadata.name=web-tls", "watch=true", "resourceVersion=7"] {
        assert!(uri.contains(part), "{part} missing in {uri}");
    }
    wait_serial(&s, &second).await;
    // kubelet has not written it: the files still hold the first certificate.
    assert_eq!(std::fs::read(dir.join("tls.crt")).unwrap(), first.cert_pem.as_bytes());
    assert!(s.running.files().has_overlay(&dir));

    // 3: that watch ended; the next one resumes from the last version seen.
    let (_, uri, _, _) = answer_raw(&mut handle, String::new()).await;
    assert!(uri.contains("watch=true") && uri.contains("resourceVersion=8"), "{uri}");
    let m = s.metrics().await;
    assert_eq!(
        support::metric(&m, r#"tlsward_kube_secret_updates_total{outcome="applied"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        support::metric(&m, r#"tlsward_kube_secret_updates_total{outcome="unchanged"}"#),
        1.0,
        "{m}"
    );
}

/// Answers the next request with a raw body (a watch stream) and returns what `answer` does.
async fn answer_raw(handle: &mut Handle, body: String) -> (Method, String, String, Value) {
    let (req, send) = tokio::time::timeout(SOON, handle.next_request())
        .await
        .expect("a request in time")
        .expect("a request");
    send.send_response(
        Response::builder()
            .status(200)
            .body(Body::from(body.into_bytes()))
            .unwrap(),
    );
    let uri = percent_encoding::percent_decode_str(&req.uri().to_string())
        .decode_utf8_lossy()
        .to_string();
    (req.method().clone(), uri, String::new(), Value::Null)
}

#[test]
fn kube_flags_are_checked_with_clear_errors() {
    let pg = postgres();
    let tls = pg.server_dir.display().to_string();
    // --watch-secrets api with the Pod known, then the given --kube-secret items.
    let api = |secrets: &[&str]| -> Vec<String> {
        let mut argv: Vec<String> = ["--watch-secrets", "api", "--pod-name", "p", "--pod-namespace", "n"]
            .map(String::from)
            .to_vec();
        for item in secrets {
            argv.extend(["--kube-secret".to_string(), item.to_string()]);
        }
        argv
    };
    let cases: [(Vec<String>, &str); 5] = [
        (
            vec!["--kube-events".into(), "on".into()],
            "needs the Pod's identity: set POD_NAME and POD_NAMESPACE",
        ),
        (api(&[]), "needs at least one --kube-secret"),
        (
            vec!["--kube-secret".into(), format!("web-tls={tls}")],
            "only used with --watch-secrets api",
        ),
        (api(&["Web_TLS=/nowhere"]), "is not a Secret name"),
        (
            api(&["web-tls=/nowhere"]),
            "/nowhere is not a source directory; use one of:",
        ),
    ];
    let load = |argv: &[String]| {
        let refs: Vec<&str> = argv.iter().map(String::as_str).collect();
        tlsward::config::Config::load(&serve_args(&refs))
    };
    for (extra, want) in cases {
        let Err(err) = load(&extra) else {
            panic!("{extra:?} accepted")
        };
        assert!(
            err.0.iter().any(|p| p.contains(want)),
            "{extra:?}: want {want:?} in {err}"
        );
    }
    // Spaces around an item and a `/.` spelling of the directory are fine.
    let (config, snapshot) = load(&api(&[&format!(" web-tls = {tls}/. ")])).unwrap();
    let text = config.describe(&snapshot);
    assert!(
        text.contains(&format!(
            "kubernetes:\n  events: on (auto: POD_NAME and POD_NAMESPACE are set)\n  pod: n/p\n  watch_secrets: api [web-tls={tls}/.]"
        )),
        "{text}"
    );
}

#[tokio::test]
async fn forcing_kube_features_without_a_client_configuration_is_a_config_error() {
    let pg = postgres();
    let db = pg.create_db();
    let check = |kubeconfig: &Path| {
        std::process::Command::new(support::bin())
            .args(["check-config", "--tls-dir", pg.server_dir.to_str().unwrap()])
            .args(["--token-key-dir", pg.token_dir.to_str().unwrap()])
            .args(["--db-url", &pg.dsn(&db, &pg.client_dir)])
            .args(["--kube-events", "on", "--pod-name", "p", "--pod-namespace", "shop"])
            .env("KUBECONFIG", kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .output()
            .unwrap()
    };
    let missing = check(&pg.scratch().join("no-such-kubeconfig"));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(64), "{err}");
    assert!(
        err.contains("need a Kubernetes client configuration") && err.contains("automountServiceAccountToken"),
        "{err}"
    );
    // A kubeconfig is found and parsed; nothing connects to its server here (the real cluster's
    // tests run the binary against one).
    let kubeconfig = pg.scratch().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u, namespace: shop}\ncurrent-context: c\n",
    )
    .unwrap();
    let found = check(&kubeconfig);
    let out = String::from_utf8_lossy(&found.stdout);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    assert!(
        out.contains("kubernetes:\n  events: on\n  pod: shop/p\n  watch_secrets: files"),
        "{out}"
    );
}
