//! `tlsward proxy`'s forwarding: the TLS edge in front of an existing app. Each request the
//! edge accepts goes to the app over a pooled keep-alive HTTP/1.1 client, on loopback TCP
//! (`--upstream http://127.0.0.1:8000`) or a unix socket (`unix:/run/app.sock`, uvicorn
//! `--uds`); bodies are streamed both ways, never buffered whole; `Upgrade` (WebSocket) is
//! passed through; the forwarding and security headers are those of [`headers`]; an app
//! that cannot be reached answers 502, one that does not answer in time 504, both as JSON.
//!
//! The edge (TLS, limits, drain, reload) is the one `serve` uses; this module only forwards.

pub mod headers;
pub mod health;

use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use http::header::HOST;
use http::{HeaderValue, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::UnixStream;
use tokio_util::sync::CancellationToken;

use headers::Peer;

/// Where the app listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// `http://HOST:PORT`: the authority.
    Tcp(String),
    /// `unix:/PATH`: the socket.
    Unix(PathBuf),
}

impl Upstream {
    /// Parses `--upstream`: `http://HOST:PORT` or `unix:/PATH`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if let Some(path) = s.strip_prefix("unix:") {
            let path = PathBuf::from(path);
            if !path.is_absolute() {
                return Err(format!("{s}: write unix:/absolute/path.sock"));
            }
            return Ok(Self::Unix(path));
        }
        let uri: Uri = s
            .parse()
            .map_err(|e| format!("{s}: {e}; write http://127.0.0.1:PORT or unix:/PATH"))?;
        match (uri.scheme_str(), uri.authority(), uri.path()) {
            (Some("http"), Some(a), "/" | "") if a.port_u16().is_some() && uri.query().is_none() => {
                Ok(Self::Tcp(a.to_string()))
            }
            (Some("https"), ..) => Err(format!(
                "{s}: the app is reached in clear inside the pod (loopback or a unix socket); write http://… or unix:/…"
            )),
            _ => Err(format!("{s}: write http://HOST:PORT (no path) or unix:/PATH")),
        }
    }
}

/// How requests are forwarded.
#[derive(Debug, Clone)]
pub struct ProxySettings {
    /// The app.
    pub upstream: Upstream,
    /// Limit on opening a connection to the app.
    pub connect_timeout: Duration,
    /// Limit on the app's response headers, from the end of the request headers.
    pub response_timeout: Duration,
    /// A pooled connection to the app idle this long is closed (`--upstream-idle-timeout`).
    pub idle_timeout: Duration,
    /// Largest request body forwarded (`--max-body-bytes`); larger is 413.
    pub max_body_bytes: usize,
    /// Peers whose forwarding headers are kept and appended to (`--trust-forwarded-from`).
    pub trusted: Vec<ipnet::IpNet>,
    /// `--require-token`: the longest token lifetime accepted (`--token-max-ttl`); `None`
    /// forwards without a token check.
    pub require_token: Option<Duration>,
    /// `--upstream-health-path`: probed with GET (2xx-3xx is up); without it the probe only
    /// connects.
    pub health_path: Option<String>,
    /// `--upstream-unready-after`: down this long, `/readyz` turns false (zero: never).
    pub unready_after: Duration,
}

/// How often the app is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The header that carries the verified token subject to the app (a client-sent copy is
/// always removed).
pub const SUBJECT_HEADER: http::HeaderName = http::HeaderName::from_static("x-tlsward-subject");

/// Opens unix-socket connections to the app (the URI's authority is ignored).
#[derive(Clone)]
struct UnixConnector {
    path: Arc<PathBuf>,
    timeout: Duration,
}

impl tower::Service<Uri> for UnixConnector {
    type Response = TokioIo<UnixStream>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = std::io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Uri) -> Self::Future {
        let (path, timeout) = (self.path.clone(), self.timeout);
        Box::pin(async move {
            match tokio::time::timeout(timeout, UnixStream::connect(&*path)).await {
                Ok(r) => r.map(TokioIo::new),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("connecting to {} timed out", path.display()),
                )),
            }
        })
    }
}

enum UpstreamClient {
    Tcp(Client<HttpConnector, Body>),
    Unix(Client<UnixConnector, Body>),
}

/// What sending one request to the app gave: its response head, an error, or `Err(Elapsed)`.
type Sent = Result<
    Result<http::Response<hyper::body::Incoming>, hyper_util::client::legacy::Error>,
    tokio::time::error::Elapsed,
>;

impl UpstreamClient {
    /// Sends `req` on the pool, waiting at most `limit` for the response head.
    async fn request(&self, req: Request, limit: Duration) -> Sent {
        match self {
            Self::Tcp(c) => tokio::time::timeout(limit, c.request(req)).await,
            Self::Unix(c) => tokio::time::timeout(limit, c.request(req)).await,
        }
    }
}

/// Forwards requests to the app.
pub struct Forwarder {
    client: UpstreamClient,
    /// The authority of requests to the app (its `HOST:PORT`, `localhost` on a socket).
    authority: http::uri::Authority,
    settings: ProxySettings,
    health: health::Health,
    /// The served snapshot, for the token keys of `--require-token`.
    snapshots: Option<crate::snapshot::Snapshots>,
}

impl Forwarder {
    /// A forwarder with its connection pool to the app (nothing is opened yet); `snapshots`
    /// gives the token keys when `require_token` is set.
    pub fn new(settings: ProxySettings, snapshots: Option<crate::snapshot::Snapshots>) -> Self {
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(settings.idle_timeout);
        let client = match &settings.upstream {
            Upstream::Tcp(_) => {
                let mut http = HttpConnector::new();
                http.set_connect_timeout(Some(settings.connect_timeout));
                http.set_nodelay(true);
                UpstreamClient::Tcp(builder.build(http))
            }
            Upstream::Unix(path) => UpstreamClient::Unix(builder.build(UnixConnector {
                path: Arc::new(path.clone()),
                timeout: settings.connect_timeout,
            })),
        };
        let authority = match &settings.upstream {
            Upstream::Tcp(a) => a.parse().unwrap_or(http::uri::Authority::from_static("localhost")),
            Upstream::Unix(_) => http::uri::Authority::from_static("localhost"),
        };
        Self {
            client,
            authority,
            settings,
            health: health::Health::default(),
            snapshots,
        }
    }

    /// The app's reachability as the forwarder and its probe see it.
    pub fn health(&self) -> health::Health {
        self.health.clone()
    }

    /// Probes the app every [`PROBE_EVERY`] until `stop` is cancelled.
    pub async fn probe_until(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(PROBE_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => self.probe().await,
                _ = stop.cancelled() => return,
            }
        }
    }

    async fn probe(&self) {
        let path = self.settings.health_path.as_deref().unwrap_or("/");
        let Some(uri) = path.parse::<Uri>().ok().and_then(|u| self.upstream_uri(&u).ok()) else {
            return;
        };
        // Without a health path any answer (even a 404 or a 405) means the app is there.
        let method = if self.settings.health_path.is_some() {
            "GET"
        } else {
            "OPTIONS"
        };
        let Ok(req) = Request::builder()
            .method(method)
            .uri(uri)
            .header(HOST, "localhost")
            .body(Body::empty())
        else {
            return;
        };
        match self.client.request(req, self.settings.connect_timeout).await {
            Ok(Ok(r)) if self.settings.health_path.is_none() || r.status().as_u16() < 400 => self.health.mark_up(),
            _ => self.health.mark_down(),
        }
    }

    /// With `--require-token`, the verified subject, or the 401 to answer.
    fn subject(&self, h: &http::HeaderMap) -> Result<Option<HeaderValue>, Box<Response>> {
        let (Some(max_ttl), Some(snapshots)) = (self.settings.require_token, &self.snapshots) else {
            return Ok(None);
        };
        let claims = crate::web::auth::bearer_claims(h, snapshots, max_ttl).map_err(|e| Box::new(e.into_response()))?;
        Ok(HeaderValue::from_str(&claims.sub).ok())
    }

    /// The peer as the forwarding headers see it.
    fn peer(&self, conn: &Connection, req: &Request) -> Peer {
        let addr = conn.addr;
        let client = conn.client.clone();
        let host = req
            .headers()
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(ToString::to_string));
        Peer {
            addr: client,
            host,
            trusted: self.settings.trusted.iter().any(|n| n.contains(&addr)),
            client_cert: conn.client_cert.clone(),
        }
    }

    fn upstream_uri(&self, uri: &Uri) -> Result<Uri, http::Error> {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(http::uri::Scheme::HTTP);
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            uri.path_and_query()
                .cloned()
                .unwrap_or(http::uri::PathAndQuery::from_static("/")),
        );
        Ok(Uri::from_parts(parts)?)
    }

    /// Forwards one request that came on `conn` and returns the app's response or the edge's own
    /// answer (401, 502, 503, 504), with the security headers the app did not set; an
    /// accepted upgrade is spliced in the background.
    pub async fn forward(&self, conn: &Connection, req: Request) -> Response {
        let mut resp = self.forward_or_answer(conn, req).await;
        headers::add_security_headers(resp.headers_mut());
        resp
    }

    async fn forward_or_answer(&self, conn: &Connection, mut req: Request) -> Response {
        let client_version = req.version();
        let upgrading = headers::is_upgrade(req.headers());
        let client_side = upgrading.then(|| hyper::upgrade::on(&mut req));
        let peer = self.peer(conn, &req);
        let subject = match self.subject(req.headers()) {
            Ok(s) => s,
            Err(r) => return *r,
        };
        let (mut parts, body) = req.into_parts();
        parts.headers.remove(&SUBJECT_HEADER);
        if let Some(s) = subject {
            parts.headers.insert(SUBJECT_HEADER, s);
        }
        headers::strip_hop_by_hop(&mut parts.headers, upgrading);
        headers::set_forwarded(&mut parts.headers, &peer);
        if let Some(host) = peer.host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
            parts.headers.insert(HOST, host);
        }
        parts.uri = match self.upstream_uri(&parts.uri) {
            Ok(u) => u,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_request", &e.to_string()),
        };
        parts.version = Version::HTTP_11;
        if let Some(r) = self.too_large(&parts.headers) {
            return r;
        }
        let body = Body::new(http_body_util::Limited::new(body, self.settings.max_body_bytes));
        let mut resp = match self.send(Request::from_parts(parts, body)).await {
            Ok(r) => r,
            Err(r) => return *r,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_side) = client_side
        {
            splice(client_side, hyper::upgrade::on(&mut resp));
        }
        let (mut parts, body) = resp.into_parts();
        // The client's version, not the app's (an HTTP/1.0 app answering an h2 client).
        parts.version = client_version;
        headers::strip_hop_by_hop(&mut parts.headers, parts.status == StatusCode::SWITCHING_PROTOCOLS);
        Response::from_parts(parts, Body::new(body))
    }

    /// The 413 of a body announced larger than `--max-body-bytes` (a streamed one is cut
    /// where it passes the limit, see [`Self::send`]).
    fn too_large(&self, h: &http::HeaderMap) -> Option<Response> {
        let announced = h
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())?;
        (announced > self.settings.max_body_bytes as u64).then(|| self.payload_too_large())
    }

    fn payload_too_large(&self) -> Response {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the request body is larger than {} bytes", self.settings.max_body_bytes),
        )
    }

    async fn send(&self, req: Request) -> Result<http::Response<hyper::body::Incoming>, Box<Response>> {
        let sent = self.client.request(req, self.settings.response_timeout).await;
        match &sent {
            Ok(Ok(_)) => self.health.mark_up(),
            Ok(Err(e)) if e.is_connect() => self.health.mark_down(),
            _ => {}
        }
        match sent {
            Ok(Ok(r)) => Ok(r),
            Err(_) => Err(Box::new(error(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the app did not answer in time",
            ))),
            Ok(Err(e)) if body_over_limit(&e) => Err(Box::new(self.payload_too_large())),
            Ok(Err(e)) if e.is_connect() => {
                tracing::debug!(error = %crate::util::error_chain(&e), "cannot reach the app");
                Err(Box::new(error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "upstream_unavailable",
                    "the app cannot be reached",
                )))
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %crate::util::error_chain(&e), "the app's answer broke off");
                Err(Box::new(error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the app's answer broke off",
                )))
            }
        }
    }
}

/// Whether sending failed because the request body passed `--max-body-bytes` on the way.
fn body_over_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(e);
    while let Some(e) = current {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        current = e.source();
    }
    false
}

/// Copies both ways between the client's and the app's upgraded connections until either
/// closes.
fn splice(client: hyper::upgrade::OnUpgrade, app: hyper::upgrade::OnUpgrade) {
    tokio::spawn(async move {
        let (Ok(client), Ok(app)) = (client.await, app.await) else {
            return;
        };
        let (mut client, mut app) = (TokioIo::new(client), TokioIo::new(app));
        let _ = tokio::io::copy_bidirectional(&mut client, &mut app).await;
    });
}

/// The edge's own answer, in the shape of every tlsward error (`serve`'s and the proxy's 401):
/// `{"error": {"code": …, "message": …}}`.
fn error(status: StatusCode, code: &'static str, message: &str) -> Response {
    crate::web::HttpError::new(status, code, message).into_response()
}

/// The connection requests come on: its peer and, with `client_auth`, the verified client
/// certificate (passed to the app as `X-Forwarded-Client-Cert`).
#[derive(Debug, Clone)]
pub struct Connection {
    /// The TCP peer.
    pub addr: IpAddr,
    /// The peer as the forwarding headers write it, made once per connection.
    client: Arc<headers::ClientAddr>,
    /// The XFCC element of the client certificate, made once per connection.
    pub client_cert: Option<HeaderValue>,
}

impl Connection {
    /// A connection from `addr` whose client presented (and the edge verified) `client_cert`
    /// (the leaf, DER).
    pub fn new(addr: IpAddr, client_cert: Option<&[u8]>) -> Self {
        Self {
            addr,
            client: Arc::new(headers::ClientAddr::new(addr)),
            client_cert: client_cert.and_then(headers::client_cert_element),
        }
    }
}

/// The proxy's service for one connection: every request is forwarded (no routing).
pub fn service<B>(
    forwarder: Arc<Forwarder>,
    conn: Connection,
) -> impl tower::Service<
    http::Request<B>,
    Response = Response,
    Error = std::convert::Infallible,
    Future = impl Future<Output = Result<Response, std::convert::Infallible>> + Send + 'static,
> + Clone
+ Send
+ 'static
where
    B: hyper::body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let conn = Arc::new(conn);
    tower::service_fn(move |req: http::Request<B>| {
        let (f, conn) = (forwarder.clone(), conn.clone());
        async move { Ok(f.forward(&conn, req.map(Body::new)).await) }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstreams_are_loopback_http_or_a_unix_socket() {
        assert_eq!(
            Upstream::parse("http://127.0.0.1:8000").unwrap(),
            Upstream::Tcp("127.0.0.1:8000".into())
        );
        assert_eq!(
            Upstream::parse("unix:/run/app.sock").unwrap(),
            Upstream::Unix("/run/app.sock".into())
        );
        for bad in [
            "https://127.0.0.1:8000",
            "http://127.0.0.1",
            "http://127.0.0.1:8000/api",
            "unix:app.sock",
        ] {
            let e = Upstream::parse(bad).unwrap_err();
            assert!(e.starts_with(bad), "{e}");
        }
    }
}
