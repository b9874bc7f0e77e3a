//! The Kubernetes features (Events on reloads, `--watch-secrets api`) against the two stand-ins
//! for an API server that these machines allow (no real one can run here):
//!
//! - kube's own `tower_test` mock service handed to `kube::Client::new`: the tests see every
//!   request the code makes and assert it exactly (an Event POST, then a PATCH of its series
//!   for a repeat; a Secret list by field selector, then a watch from its resourceVersion);
//! - a fake API server on 127.0.0.1 over HTTPS (`support::fake_api`) with a bearer token,
//!   which streams watch events, expires a watch with 410 Gone, and answers 403 Forbidden.
//!
//! The last test runs against a real cluster and is `#[ignore]`d; see its comment.

mod support;

use std::path::Path;
use std::time::Duration;

use http::{Method, Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use support::fake_api::{FakeApi, WatchPlan};
use support::{kubelet, new_server_cert, postgres, serial_of, serve_args, served_serial, start_with_kube, wait_serial};
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

/// Waits for an Event (POST or PATCH) with this reason whose note contains `needle`.
async fn wait_event(api: &FakeApi, reason: &str, needle: &str, timeout: Duration) -> Value {
    let find = || {
        api.events()
            .into_iter()
            .map(|(_, b)| b)
            .find(|b| b["reason"] == reason && b["note"].as_str().is_some_and(|n| n.contains(needle)))
    };
    assert_eventually!(
        find().is_some(),
        timeout,
        "no {reason} Event with {needle:?}: {:?}",
        api.events()
    );
    find().unwrap()
}

/// A TLS directory written as kubelet does and the fake API serving the same Secret `web-tls`.
async fn mounted_and_served(cert: &Issued) -> (std::path::PathBuf, FakeApi) {
    let dir = postgres().scratch().join("tls");
    kubelet::write(&dir, &refs(&pair(cert)));
    let api = FakeApi::start("shop", "web-tls", &refs(&pair(cert))).await;
    (dir, api)
}

#[tokio::test]
async fn fake_api_server_secret_rotation_beats_kubelet_survives_410_and_posts_events() {
    let first = new_server_cert();
    let (dir, api) = mounted_and_served(&first).await;
    // The first watch has expired (410 Gone): the watcher must list again.
    api.plan_watches(&[WatchPlan::Gone]);
    let s = start_with_kube(api_args(&dir, &["--pod-uid", "u-1"]), Some(api.client().await)).await;

    assert_eventually!(api.watches() >= 2, SOON, "no second watch after 410: {:?}", api.seen());
    let secret_calls: Vec<String> = api
        .seen()
        .into_iter()
        .filter(|r| r.uri.contains("/secrets"))
        .map(|r| {
            if r.uri.contains("watch=true") {
                "watch".into()
            } else {
                "list".into()
            }
        })
        .collect();
    assert_eq!(
        secret_calls[..4],
        ["list", "watch", "list", "watch"],
        "{secret_calls:?}"
    );
    // The DB pool's first publication is an Event too (events are on: the Pod is known).
    wait_event(&api, "DatabasePoolRotated", "generation 1 verified", SOON).await;

    // cert-manager renews: the API has it at once, kubelet would take up to a minute.
    let second = new_server_cert();
    let started = std::time::Instant::now();
    api.update_secret(&refs(&pair(&second)));
    let want = serial_of(&second.cert_pem);
    wait_serial(&s, &second).await;
    eprintln!("API update to new serial served in {:?}", started.elapsed());
    assert_eq!(std::fs::read(dir.join("tls.crt")).unwrap(), first.cert_pem.as_bytes());
    let ev = wait_event(&api, "CertificateRotated", &want, SOON).await;
    assert_eq!(ev["type"], "Normal");
    assert_eq!(ev["regarding"]["uid"], "u-1");

    // Renewed again before kubelet wrote anything; then kubelet, a version behind, writes the
    // second certificate from its cache: the third, latest one stays served.
    let third = new_server_cert();
    api.update_secret(&refs(&pair(&third)));
    let want3 = serial_of(&third.cert_pem);
    wait_serial(&s, &third).await;
    let reloads = || async {
        support::metric(
            &s.metrics().await,
            r#"tlsward_reload_total{material="server",outcome="applied"}"#,
        ) + support::metric(
            &s.metrics().await,
            r#"tlsward_reload_total{material="server",outcome="unchanged"}"#,
        )
    };
    let before = reloads().await;
    kubelet::write(&dir, &refs(&pair(&second)));
    assert_eventually!(
        reloads().await > before,
        SOON,
        "kubelet's write did not trigger a reload"
    );
    assert_eq!(
        served_serial(s.port()).await.unwrap(),
        want3,
        "kubelet's older version replaced the latest"
    );
    assert!(s.running.files().has_overlay(&dir));
    // kubelet catches up: the files hold the latest version, the overlay goes.
    kubelet::write(&dir, &refs(&pair(&third)));
    assert_eventually!(
        !s.running.files().has_overlay(&dir),
        SOON,
        "overlay kept after kubelet caught up"
    );
    assert_eq!(served_serial(s.port()).await.unwrap(), want3);
    // The files are the source of truth: a newer file wins without any API event.
    let fourth = new_server_cert();
    kubelet::write(&dir, &refs(&pair(&fourth)));
    let want4 = serial_of(&fourth.cert_pem);
    wait_serial(&s, &fourth).await;

    // A broken Secret in the API is rejected like a broken file; a Warning Event says why.
    let mut broken = pair(&fourth);
    broken[1].1 = b"-----BEGIN PRIVATE KEY-----\nAAAA\n".to_vec();
    api.update_secret(&refs(&broken));
    let ev = wait_event(&api, "ReloadRejected", "tls.key", Duration::from_secs(15)).await;
    assert_eq!(ev["type"], "Warning");
    assert_eq!(
        served_serial(s.port()).await.unwrap(),
        want4,
        "a broken Secret replaced the last good one"
    );
    let m = s.metrics().await;
    assert!(
        support::metric(&m, r#"tlsward_kube_events_total{outcome="published"}"#) >= 3.0,
        "{m}"
    );
    assert_eq!(
        support::metric(&m, r#"tlsward_kube_events_total{outcome="failed"}"#),
        0.0,
        "{m}"
    );
}

/// The binary as deployed, watching `dir` through `api`: its client configuration is inferred
/// (KUBECONFIG here, the service account in a Pod) and the Pod's identity comes from the
/// environment as the downward API sets it. Returns the child and its log so far.
async fn serve_binary(
    api: &FakeApi,
    dir: &Path,
    extra: &[&str],
) -> (tokio::process::Child, std::sync::Arc<std::sync::Mutex<String>>) {
    let pg = postgres();
    let kubeconfig = pg.scratch().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let db = pg.create_db();
    let mut child = tokio::process::Command::new(support::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(["--tls-dir", dir.to_str().unwrap()])
        .args(["--token-key-dir", pg.token_dir.to_str().unwrap()])
        .args(["--db-url", &pg.dsn(&db, &pg.client_dir)])
        .args([
            "--watch-secrets",
            "api",
            "--kube-secret",
            &format!("web-tls={}", dir.display()),
        ])
        .args(extra)
        .env("KUBECONFIG", &kubeconfig)
        .env("POD_NAME", "tlsward-0")
        .env("POD_NAMESPACE", "shop")
        .env("TLSWARD_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let log = support::collect_log(child.stderr.take().unwrap());
    (child, log)
}

#[tokio::test]
async fn forbidden_secret_list_names_the_missing_verb_and_kubeconfig_is_found() {
    // The binary as deployed: client configuration inferred (KUBECONFIG here, the service
    // account in a Pod), the Pod's identity from the environment as the downward API sets it.
    let dir = postgres().scratch().join("tls");
    kubelet::write(&dir, &refs(&pair(&new_server_cert())));
    let api = FakeApi::start("shop", "web-tls", &[]).await;
    api.forbid_list(true);
    let (mut child, log) = serve_binary(&api, &dir, &[]).await;
    assert_eventually!(
        log.lock()
            .unwrap()
            .contains("may not list Secret \"web-tls\" in namespace shop"),
        Duration::from_secs(20),
        "no clear 403 message; log:\n{}",
        log.lock().unwrap()
    );
    let text = log.lock().unwrap().clone();
    assert!(
        text.contains("verbs [get, list, watch]") && text.contains("cannot list resource"),
        "{text}"
    );
    // Repeats of the same error (every back-off) are not logged again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let text = log.lock().unwrap().clone();
    assert_eq!(text.matches("may not list Secret").count(), 1, "{text}");
    assert!(api.lists() >= 2, "no retry after 403: {:?}", api.seen());
    // Events go through the client inferred from KUBECONFIG.
    wait_event(
        &api,
        "DatabasePoolRotated",
        "generation 1 verified",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "a 403 must not stop the server: {text}"
    );
    child.kill().await.unwrap();
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

/// Against a real cluster (kind, minikube, ...): publishes a rotation Event on a Pod and reads
/// it back. Run with a kubeconfig whose user may create Events in the namespace:
///
/// ```text
/// kubectl run tlsward-e2e --image=registry.k8s.io/pause:3.10 -n default
/// TLSWARD_E2E_POD=tlsward-e2e TLSWARD_E2E_NAMESPACE=default \
///   cargo test --test kube -- --ignored real_cluster
/// kubectl describe pod tlsward-e2e   # shows Normal CertificateRotated (x2)
/// ```
#[tokio::test]
#[ignore = "needs a real Kubernetes cluster; see the comment"]
async fn real_cluster_event_round_trip() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::events::v1::Event;
    tlsward::install_crypto_provider();
    let client = kube::Client::try_default().await.expect("a kubeconfig");
    let name = std::env::var("TLSWARD_E2E_POD").expect("TLSWARD_E2E_POD");
    let namespace = std::env::var("TLSWARD_E2E_NAMESPACE").unwrap_or_else(|_| "default".into());
    let pod: Pod = kube::Api::namespaced(client.clone(), &namespace)
        .get(&name)
        .await
        .unwrap();
    let pod = PodRef {
        name,
        namespace: namespace.clone(),
        uid: pod.metadata.uid,
    };
    let publisher = Publisher::new(client.clone(), &pod);
    let serial = format!("{:x}", rand::random::<u64>());
    let notice = Notice::CertificateRotated {
        material: Material::Server,
        certs: vec![(serial.clone(), "2030-01-01T00:00:00Z".into())],
        digest: serial.clone(),
        generation: 1,
    };
    publisher.publish(&notice).await.unwrap();
    publisher.publish(&notice).await.unwrap();
    let events: kube::Api<Event> = kube::Api::namespaced(client, &namespace);
    let list = events.list(&Default::default()).await.unwrap();
    let ours = list
        .items
        .iter()
        .find(|e| e.note.as_deref().is_some_and(|n| n.contains(&serial)))
        .expect("the Event is stored");
    assert_eq!(ours.series.as_ref().map(|s| s.count), Some(2));
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
    let api = FakeApi::start("shop", "web-tls", &[]).await;
    let kubeconfig = pg.scratch().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).unwrap();
    let found = check(&kubeconfig);
    let out = String::from_utf8_lossy(&found.stdout);
    assert!(found.status.success(), "{}", String::from_utf8_lossy(&found.stderr));
    assert!(
        out.contains("kubernetes:\n  events: on\n  pod: shop/p\n  watch_secrets: files"),
        "{out}"
    );
}

#[tokio::test]
async fn a_certificate_expiring_at_start_up_is_reported_at_once() {
    // The first expiry check runs at once, while the binary is still setting up its Kubernetes
    // client (inferred from KUBECONFIG, an await): its notice must not be lost meanwhile.
    let cert = new_server_cert();
    let (dir, api) = mounted_and_served(&cert).await;
    let (mut child, log) = serve_binary(&api, &dir, &["--expiry-warning", "36500d"]).await;
    let ev = wait_event(
        &api,
        "CertificateExpiringSoon",
        &serial_of(&cert.cert_pem),
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ev["type"], "Warning", "{}", log.lock().unwrap());
    assert!(ev["note"].as_str().unwrap().contains("server certificate"), "{ev}");
    child.kill().await.unwrap();
}
