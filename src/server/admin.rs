//! The admin listener (plain HTTP, loopback by default): `/livez`, `/readyz`, `/metrics`,
//! `/reload-status`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::readiness::Readiness;
use crate::db::handle::Db;
use crate::metrics::Metrics;
use crate::reload::Status;

/// What the admin endpoints read.
pub(crate) struct AdminState {
    /// Rendered by `/metrics`.
    pub metrics: Arc<Metrics>,
    /// `/readyz`.
    pub readiness: Readiness,
    /// `/reload-status`.
    pub status: Status,
    /// The pool's gauges, at each scrape.
    pub db: Db,
}

async fn livez() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    match state.readiness.not_ready_reason() {
        None => (StatusCode::OK, axum::Json(json!({"ready": true}))).into_response(),
        Some(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"ready": false, "reason": why})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<Arc<AdminState>>) -> Response {
    let m = &state.metrics;
    m.ready.set(i64::from(state.readiness.not_ready_reason().is_none()));
    if let Some(db) = state.db.current() {
        let s = db.pool.status();
        m.db_pool_size.set(i64::try_from(s.size).unwrap_or(i64::MAX));
        m.db_pool_available.set(i64::try_from(s.available).unwrap_or(i64::MAX));
        m.db_pool_waiting.set(i64::try_from(s.waiting).unwrap_or(i64::MAX));
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
        .into_response()
}

async fn reload_status(State(state): State<Arc<AdminState>>) -> Response {
    let status = state.status.get();
    axum::Json(status).into_response()
}

/// The admin router.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/reload-status", get(reload_status))
        .with_state(state)
}
