//! A small fake Kubernetes API server on 127.0.0.1 over HTTPS, for the kube-rs code: no API
//! server can run on the test machines. It speaks the parts of the real protocol tlsward
//! uses, as a real API server does:
//!
//! - bearer-token authentication (401 without it), TLS with a certificate of the test CA;
//! - `GET /api/v1/namespaces/NS/secrets?fieldSelector=metadata.name=NAME` (a SecretList with
//!   a resourceVersion), and the same with `watch=true&resourceVersion=RV`: a chunked stream
//!   of JSON lines `{"type":"MODIFIED","object":{...}}`; a watch can instead be answered with
//!   an `ERROR` event carrying a 410 Gone Status (an expired resourceVersion), and a list with
//!   a 403 Forbidden Status (missing RBAC);
//! - `POST /apis/events.k8s.io/v1/namespaces/NS/events` and `PATCH .../events/NAME`, echoed.
//!
//! Every request is recorded (method, path and query, body) for the tests to assert on.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use serde_json::{Value, json};

/// How the next watch request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchPlan {
    /// Stream the Secret's updates until the client goes away.
    Stream,
    /// One `ERROR` event with a 410 Gone Status, then the end of the stream.
    Gone,
}

/// One recorded request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// HTTP method.
    pub method: String,
    /// Path and query, decoded.
    pub uri: String,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

struct Inner {
    secret: Value,
    version: u64,
    watch_plans: VecDeque<WatchPlan>,
    forbid_list: bool,
    seen: Vec<Seen>,
}

/// The fake API server.
#[derive(Clone)]
pub struct FakeApi {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The bearer token it accepts.
    pub token: String,
    /// The namespace and Secret it serves.
    pub namespace: String,
    /// The Secret's name.
    pub secret_name: String,
    inner: Arc<Mutex<Inner>>,
    updates: tokio::sync::broadcast::Sender<String>,
}

fn b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

fn full(code: u16, body: &Value) -> Response<BoxBody<Bytes, Infallible>> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())).boxed())
        .unwrap()
}

impl FakeApi {
    /// Starts serving `namespace/secret_name` with `files` as its data.
    pub async fn start(namespace: &str, secret_name: &str, files: &[(&str, &[u8])]) -> Self {
        let pg = super::postgres();
        let issued = pg
            .ca
            .issue(&tlsward::pki::LeafSpec::server("127.0.0.1", &["127.0.0.1"]))
            .unwrap();
        let certs = tlsward::tls::material::parse_certs(Path::new("api.crt"), issued.cert_pem.as_bytes()).unwrap();
        let key = {
            use rustls_pki_types::pem::PemObject;
            rustls_pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap()
        };
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api = Self {
            addr: listener.local_addr().unwrap(),
            token: format!("tok-{}", rand::random::<u64>()),
            namespace: namespace.into(),
            secret_name: secret_name.into(),
            inner: Arc::new(Mutex::new(Inner {
                secret: Value::Null,
                version: 100,
                watch_plans: VecDeque::new(),
                forbid_list: false,
                seen: Vec::new(),
            })),
            updates: tokio::sync::broadcast::channel(16).0,
        };
        api.inner.lock().unwrap().secret = api.secret_json(files, 100);
        let server = api.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, server) = (acceptor.clone(), server.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.answer(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        api
    }

    fn secret_json(&self, files: &[(&str, &[u8])], version: u64) -> Value {
        let data: serde_json::Map<String, Value> = files.iter().map(|(k, v)| (k.to_string(), json!(b64(v)))).collect();
        json!({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
               "metadata": {"name": self.secret_name, "namespace": self.namespace,
                            "resourceVersion": version.to_string(), "uid": "6b1c5ad2-0000-4000-8000-000000000001"},
               "data": data})
    }

    /// A kubeconfig for this server (its CA, the bearer token).
    pub fn kubeconfig(&self) -> String {
        let ca = b64(super::postgres().ca.cert_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: https://{}\n    certificate-authority-data: {ca}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: sa, namespace: {}}}\ncurrent-context: fake\n",
            self.addr, self.token, self.namespace
        )
    }

    /// A kube client for this server, built from [`Self::kubeconfig`].
    pub async fn client(&self) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(&self.kubeconfig()).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    /// Replaces the Secret's data (a new resourceVersion) and streams it to open watches.
    pub fn update_secret(&self, files: &[(&str, &[u8])]) {
        let mut inner = self.inner.lock().unwrap();
        inner.version += 1;
        inner.secret = self.secret_json(files, inner.version);
        let line = json!({"type": "MODIFIED", "object": inner.secret}).to_string();
        let _ = self.updates.send(line);
    }

    /// Answers the next watch requests according to `plans` (then [`WatchPlan::Stream`]).
    pub fn plan_watches(&self, plans: &[WatchPlan]) {
        self.inner.lock().unwrap().watch_plans.extend(plans);
    }

    /// Answers lists with 403 Forbidden (a Role without `list` on the Secret).
    pub fn forbid_list(&self, on: bool) {
        self.inner.lock().unwrap().forbid_list = on;
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Bodies of the Event requests (`POST` and `PATCH`) so far, with their method.
    pub fn events(&self) -> Vec<(String, Value)> {
        self.seen()
            .into_iter()
            .filter(|s| s.uri.contains("/events"))
            .filter_map(|s| Some((s.method, s.body?)))
            .collect()
    }

    /// Number of watch requests on the Secret.
    pub fn watches(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.uri.contains("/secrets") && s.uri.contains("watch=true"))
            .count()
    }

    /// Number of list requests on the Secret.
    pub fn lists(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.uri.contains("/secrets") && !s.uri.contains("watch="))
            .count()
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<BoxBody<Bytes, Infallible>> {
        let method = req.method().to_string();
        let uri = percent_encoding::percent_decode_str(&req.uri().to_string())
            .decode_utf8_lossy()
            .to_string();
        let authorized = req
            .headers()
            .get("authorization")
            .is_some_and(|v| v.as_bytes() == format!("Bearer {}", self.token).as_bytes());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&body).ok();
        self.inner.lock().unwrap().seen.push(Seen {
            method: method.clone(),
            uri: uri.clone(),
            body: body.clone(),
        });
        if !authorized {
            return full(401, &status(401, "Unauthorized", "Unauthorized"));
        }
        let ns = &self.namespace;
        let secrets = format!("/api/v1/namespaces/{ns}/secrets?");
        let events = format!("/apis/events.k8s.io/v1/namespaces/{ns}/events");
        if method == "GET" && uri.starts_with(&secrets) {
            if !uri.contains(&format!("fieldSelector=metadata.name={}", self.secret_name)) {
                let msg = format!(
                    "secrets is forbidden: User \"system:serviceaccount:{ns}:tlsward\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
                );
                return full(403, &status(403, "Forbidden", &msg));
            }
            if uri.contains("watch=true") {
                return self.watch();
            }
            let inner = self.inner.lock().unwrap();
            if inner.forbid_list {
                let msg = format!(
                    "secrets \"{}\" is forbidden: User \"system:serviceaccount:{ns}:tlsward\" cannot list resource \"secrets\" in API group \"\" in the namespace \"{ns}\"",
                    self.secret_name
                );
                return full(403, &status(403, "Forbidden", &msg));
            }
            let list = json!({"apiVersion": "v1", "kind": "SecretList",
                              "metadata": {"resourceVersion": inner.version.to_string()},
                              "items": [inner.secret]});
            return full(200, &list);
        }
        if method == "POST" && uri.starts_with(&events) {
            let mut ev = body.unwrap_or(Value::Null);
            ev["metadata"]["resourceVersion"] = json!("1");
            return full(201, &ev);
        }
        if method == "PATCH" && uri.starts_with(&format!("{events}/")) {
            return full(200, &body.unwrap_or(Value::Null));
        }
        full(
            404,
            &status(404, "NotFound", &format!("{method} {uri}: not served by the fake")),
        )
    }

    fn watch(&self) -> Response<BoxBody<Bytes, Infallible>> {
        let plan = self
            .inner
            .lock()
            .unwrap()
            .watch_plans
            .pop_front()
            .unwrap_or(WatchPlan::Stream);
        let chunks: BoxBody<Bytes, Infallible> = match plan {
            WatchPlan::Gone => {
                let gone = status(410, "Expired", "too old resource version: 100 (200)");
                let line = json!({"type": "ERROR", "object": gone}).to_string() + "\n";
                Full::new(Bytes::from(line)).boxed()
            }
            WatchPlan::Stream => {
                let rx = self.updates.subscribe();
                let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                    loop {
                        match rx.recv().await {
                            Ok(line) => return Some((Ok(Frame::data(Bytes::from(line + "\n"))), rx)),
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                            Err(_) => return None,
                        }
                    }
                });
                StreamBody::new(stream).boxed()
            }
        };
        Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(chunks)
            .unwrap()
    }
}
