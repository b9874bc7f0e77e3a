//! The HTTPS router: `/users` (bearer token required), `/` (a static, DB-free answer), JSON
//! errors for unknown routes, request metrics, body limit and (from [`crate::web`]) the
//! security headers on every response.

pub(crate) mod auth;
pub(crate) mod error;
pub(crate) mod record;
pub(crate) mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::Response;
use axum::routing::get;

use crate::db::handle::Db;
use crate::logs::Throttle;
use crate::metrics::Metrics;
use crate::snapshot::Snapshots;
use crate::web::reply;
use crate::web::{HttpError, with_security_headers};

/// What the handlers of the users API read: the served snapshot (token keys), the served DB
/// pool, the metrics they record to, their limits and the throttle of their failure logs.
pub struct ApiState {
    /// The served snapshot.
    pub snapshots: Snapshots,
    /// The served DB pool.
    pub db: Db,
    /// Request metrics.
    pub metrics: Arc<Metrics>,
    /// Body and token limits.
    pub limits: RequestLimits,
    /// Aggregates repeated request failures into one log line per interval.
    pub throttle: Throttle,
}

/// The limits a request is held to.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Largest request body (`--max-body-bytes`).
    pub max_body_bytes: usize,
    /// Longest wait for a whole body (`--body-timeout`).
    pub body_timeout: std::time::Duration,
    /// Longest token lifetime accepted (`--token-max-ttl`).
    pub token_max_ttl: std::time::Duration,
}

/// `GET /`: what answers here, a body made at compile time.
async fn root() -> Response {
    const BODY: &str = concat!(
        r#"{"service":"tlsward","version":""#,
        env!("CARGO_PKG_VERSION"),
        r#""}"#
    );
    reply::json_body(StatusCode::OK, axum::body::Body::from(BODY), 0)
}

async fn not_found() -> HttpError {
    HttpError::not_found("no such route")
}

async fn method_not_allowed() -> HttpError {
    HttpError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this route",
    )
}

/// The service of the TLS listener: the router inside the request metrics, the security
/// headers outside both.
pub type Api = tower::util::MapResponse<record::Recorded<Router>, fn(Response) -> Response>;

/// The service of the TLS listener. The body limit applies to the `/users` routes (the only
/// ones that read a body); the per-request layers wrap the router once instead of each route.
pub fn router(state: Arc<ApiState>) -> Api {
    let [root_route, users_route, user_route] = record::ROUTES;
    let users = Router::new()
        .route(users_route, get(users::list_users).post(users::create_user))
        .route(user_route, get(users::get_user).delete(users::delete_user))
        .route_layer(middleware::from_fn_with_state(state.clone(), auth::require_token))
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes));
    let metrics = state.metrics.clone();
    let router = Router::new()
        .route(root_route, get(root))
        .merge(users)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state);
    tower::util::MapResponse::new(
        record::Recorded::new(router, metrics),
        with_security_headers as fn(Response) -> Response,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_root_answers_json_naming_the_service_and_its_version() {
        let r = root().await;
        let room = r.headers().capacity() - r.headers().len();
        // the content length and the security headers
        assert!(
            room > crate::web::SECURITY_HEADERS.len(),
            "room for {room} more headers"
        );
        assert_eq!(r.headers()[axum::http::header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"service": "tlsward", "version": env!("CARGO_PKG_VERSION")})
        );
    }
}
