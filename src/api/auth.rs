//! Bearer-token middleware for the `/users` routes: the token must verify against the token
//! keys of the current snapshot.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use crate::web::HttpError;
use crate::web::auth::bearer_claims;

/// Refuses requests without a valid `Authorization: Bearer` token (401 + `WWW-Authenticate`).
/// No handler reads the claims, so they are not handed on.
pub(crate) async fn require_token(
    State(state): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, HttpError> {
    bearer_claims(req.headers(), &state.snapshots, state.limits.token_max_ttl)?;
    Ok(next.run(req).await)
}
