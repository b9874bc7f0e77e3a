//! Bearer-token middleware for the `/users` routes: the token must verify against the token
//! keys of the current snapshot.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use super::error::ApiError;
use crate::token::{Claims, TokenError};

/// Refuses requests without a valid `Authorization: Bearer` token (401 + `WWW-Authenticate`).
/// No handler reads the claims, so they are not handed on.
pub(crate) async fn require_token(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, ApiError> {
    bearer_claims(req.headers(), &state.snapshots, state.limits.token_max_ttl)?;
    Ok(next.run(req).await)
}

/// The claims of the request's `Authorization: Bearer` token, verified against the token keys
/// of the current snapshot (also `tlsward proxy --require-token`'s check).
pub(crate) fn bearer_claims(
    headers: &http::HeaderMap,
    snapshots: &crate::snapshot::Snapshots,
    max_ttl: std::time::Duration,
) -> Result<Arc<Claims>, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized(TokenError::Missing))?;
    let text = value
        .to_str()
        .map_err(|_| ApiError::unauthorized(TokenError::Malformed))?;
    let token = match text.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(ApiError::unauthorized(TokenError::Missing)),
    };
    let snapshot = snapshots.load();
    // Whoever asks for tokens has token keys (the configuration requires them).
    let keys = snapshot
        .token_keys
        .as_ref()
        .ok_or_else(|| ApiError::unauthorized(TokenError::UnknownKid))?;
    keys.verify(token, crate::util::now_unix(), max_ttl)
        .map_err(ApiError::unauthorized)
}
