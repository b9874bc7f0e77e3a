//! The bearer-token check of the TLS listener (`serve`'s `/users`, `proxy --require-token`):
//! the `Authorization: Bearer` token verified against the token keys of the current snapshot.

use std::sync::Arc;

use axum::http::header;

use super::HttpError;
use crate::token::{Claims, TokenError};

/// The claims of the request's `Authorization: Bearer` token, verified against the token keys
/// of the current snapshot.
pub(crate) fn bearer_claims(
    headers: &http::HeaderMap,
    snapshots: &crate::snapshot::Snapshots,
    max_ttl: std::time::Duration,
) -> Result<Arc<Claims>, HttpError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| HttpError::unauthorized(TokenError::Missing))?;
    let text = value
        .to_str()
        .map_err(|_| HttpError::unauthorized(TokenError::Malformed))?;
    let token = match text.split_once(' ') {
        Some((scheme, t)) if scheme.eq_ignore_ascii_case("bearer") => t.trim(),
        _ => return Err(HttpError::unauthorized(TokenError::Missing)),
    };
    let snapshot = snapshots.load();
    // Whoever asks for tokens has token keys (the configuration requires them).
    let keys = snapshot
        .token_keys
        .as_ref()
        .ok_or_else(|| HttpError::unauthorized(TokenError::UnknownKid))?;
    keys.verify(token, crate::util::now_unix(), max_ttl)
        .map_err(HttpError::unauthorized)
}
