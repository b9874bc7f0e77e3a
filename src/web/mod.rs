//! The HTTP edge the users API and the proxy both answer with: the security headers on every
//! response of the TLS listener, the JSON error shape (`{"error":{"code","message"}}`), JSON
//! answers sized for those headers, the bearer-token check, and the plain listener's redirect
//! to https. `api` and `proxy` sit side by side above it.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod reply;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

pub(crate) use error::HttpError;

/// Headers set on every response of the TLS listener.
pub const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("strict-transport-security", "max-age=63072000; includeSubDomains"),
    ("x-content-type-options", "nosniff"),
    ("cache-control", "no-store"),
    ("referrer-policy", "no-referrer"),
    ("content-security-policy", "default-src 'none'; frame-ancestors 'none'"),
];

/// The security headers on every response, replacing any the handler set (one layer for
/// all of them: a layer per header was a future per header per request).
pub(crate) fn with_security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        headers.insert(HeaderName::from_static(name), HeaderValue::from_static(value));
    }
    response
}

/// The router of the optional plain-HTTP listener: everything is a 308 to https.
pub fn redirect_router(https_port: u16) -> Router {
    Router::new().fallback(move |req: Request| async move {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| strip_port(h).to_string())
            .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b)))
            .unwrap_or_else(|| "localhost".into());
        let port = if https_port == 443 {
            String::new()
        } else {
            format!(":{https_port}")
        };
        let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("https://{host}{port}{path}");
        (StatusCode::PERMANENT_REDIRECT, [(header::LOCATION, location)]).into_response()
    })
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    host.split(':').next().unwrap_or(host)
}
