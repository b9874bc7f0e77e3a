//! The `/users` handlers. Input is checked here, before any SQL: ids are positive 64-bit
//! integers, usernames 1–64 of `[a-z0-9_.-]`, e-mail addresses of a conservative form.
//! Extractor failures are turned into [`HttpError`]s so every answer is JSON.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::ApiState;
use crate::db::pool::{DbError, DbPool};
use crate::db::users::{self, Created};
use crate::web::{HttpError, reply};

/// Default and largest page size of `GET /users`.
const DEFAULT_LIMIT: i64 = 50;
/// Largest page size.
const MAX_LIMIT: i64 = 1000;

fn pool(state: &ApiState) -> Result<Arc<DbPool>, HttpError> {
    state.db.current().ok_or_else(HttpError::db_unavailable)
}

/// Notes the database as up or down (for `/readyz`), logs failures (one line per kind per
/// interval, with a count) and turns them into API errors.
fn seen<T>(state: &ApiState, r: Result<T, DbError>) -> Result<T, HttpError> {
    let e = match r {
        Ok(v) => {
            state.db.reachable(true);
            return Ok(v);
        }
        Err(e) => e,
    };
    let kind = if e.is_unavailable() {
        state.db.reachable(false);
        "database unavailable"
    } else {
        "database error"
    };
    if let Some(suppressed) = state.throttle.admit(kind, std::time::Instant::now()) {
        if e.is_unavailable() {
            tracing::warn!(error = %e, suppressed, "{kind}: answering 503 (suppressed = the same failure since the previous line)");
        } else {
            tracing::error!(error = %e, suppressed, "{kind}: answering 500 (suppressed = the same failure since the previous line)");
        }
    }
    Err(HttpError::from(&e))
}

/// Parses a path id.
fn parse_id(raw: &str) -> Result<i64, HttpError> {
    match raw.parse::<i64>() {
        Ok(id) if id > 0 && raw.bytes().all(|b| b.is_ascii_digit()) => Ok(id),
        _ => Err(HttpError::bad_request("bad_id", "id must be a positive 64-bit integer")),
    }
}

/// Whether a username is 1–64 of `[a-z0-9_.-]`.
fn valid_username(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b))
}

/// Whether an e-mail address has a conservative, deliverable-looking form:
/// `local@domain`, local 1–64 printable ASCII without spaces, quotes or brackets, a domain of
/// two or more LDH labels, 254 characters at most.
fn valid_email(s: &str) -> bool {
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = (1..=64).contains(&local.len())
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~.-".contains(&b));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            (1..=63).contains(&l.len())
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    s.len() <= 254 && local_ok && domain_ok
}

/// `GET /users/{id}`.
pub(crate) async fn get_user(
    State(state): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<Response, HttpError> {
    let id = parse_id(&raw)?;
    let db = pool(&state)?;
    match seen(&state, users::get(&db, &state.metrics, id).await)? {
        Some(u) => Ok(reply::json(StatusCode::OK, &u, 0)),
        None => Err(HttpError::not_found(format!("no user with id {id}"))),
    }
}

/// `GET /users?limit=&after=`: keyset pagination by id.
pub(crate) async fn list_users(
    State(state): State<Arc<ApiState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, HttpError> {
    let (mut limit, mut after) = (DEFAULT_LIMIT, 0i64);
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v.parse().ok().filter(|l| (1..=MAX_LIMIT).contains(l)).ok_or_else(|| {
                    HttpError::bad_request("bad_query", format!("limit must be an integer from 1 to {MAX_LIMIT}"))
                })?;
            }
            "after" => {
                after = v.parse().ok().filter(|a| *a >= 0).ok_or_else(|| {
                    HttpError::bad_request(
                        "bad_query",
                        "after must be a non-negative 64-bit integer (the last id of the previous page)",
                    )
                })?;
            }
            other => {
                return Err(HttpError::bad_request(
                    "bad_query",
                    format!("unknown query parameter {other:?}; use limit and after"),
                ));
            }
        }
    }
    let db = pool(&state)?;
    let page = seen(&state, users::list(&db, &state.metrics, limit, after).await)?;
    let next_after = if page.len() as i64 == limit {
        page.last().map(|u| u.id)
    } else {
        None
    };
    let page = Page {
        users: page,
        next_after,
    };
    Ok(reply::json(StatusCode::OK, &page, 0))
}

/// A page of `GET /users`; `next_after` is the `after` of the next page (null on the last).
#[derive(Debug, Serialize)]
struct Page {
    /// Users by ascending id.
    pub users: Vec<users::User>,
    /// The id to pass as `after` for the next page.
    pub next_after: Option<i64>,
}

/// The body of `POST /users`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewUser {
    /// 1–64 of `[a-z0-9_.-]`.
    pub username: String,
    /// An e-mail address.
    pub email: String,
}

/// Reads the whole body within `--body-timeout`: 413 beyond `--max-body-bytes` (at once when
/// `Content-Length` says so), 408 when it does not arrive in time.
async fn read_body(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Bytes, HttpError> {
    let limit = state.limits.max_body_bytes;
    let too_large = || {
        HttpError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than the limit of {limit} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    match tokio::time::timeout(state.limits.body_timeout, axum::body::to_bytes(body, limit)).await {
        Err(_) => Err(HttpError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!(
                "the body did not arrive within {}",
                humantime::format_duration(state.limits.body_timeout)
            ),
        )),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) if is_length_limit(&e) => Err(too_large()),
        Ok(Err(_)) => Err(HttpError::bad_request("bad_body", "the request body could not be read")),
    }
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = src {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        src = err.source();
    }
    false
}

fn require_json(headers: &HeaderMap) -> Result<(), HttpError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if is_json {
        return Ok(());
    }
    Err(HttpError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        "send the body as Content-Type: application/json",
    ))
}

/// The user object of a `POST /users` body, checked; every field problem at once.
fn parse_new_user(body: &[u8]) -> Result<NewUser, HttpError> {
    let text = std::str::from_utf8(body).map_err(|e| {
        HttpError::bad_request(
            "invalid_json",
            format!("the body is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })?;
    let new: NewUser = serde_json::from_str(text)
        .map_err(|e| HttpError::bad_request("invalid_json", format!("the body is not a valid user object: {e}")))?;
    let mut problems = Vec::new();
    if !valid_username(&new.username) {
        problems.push("username must be 1-64 characters of a-z, 0-9, _ . -");
    }
    if !valid_email(&new.email) {
        problems.push("email must be a valid address such as name@example.com");
    }
    if !problems.is_empty() {
        return Err(HttpError::bad_request("validation_failed", problems.join("; ")));
    }
    Ok(new)
}

/// `POST /users`: 201 with `Location`, 409 when the username is taken.
pub(crate) async fn create_user(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    require_json(&headers)?;
    let new = parse_new_user(&read_body(&state, &headers, body).await?)?;
    let db = pool(&state)?;
    match seen(
        &state,
        users::create(&db, &state.metrics, &new.username, &new.email).await,
    )? {
        Created::Ok(u) => {
            let mut response = reply::json(StatusCode::CREATED, &u, 1);
            let location = header::HeaderValue::from_str(&format!("/users/{}", u.id));
            // Not on the 500 of a user that did not serialize.
            if let (StatusCode::CREATED, Ok(location)) = (response.status(), location) {
                response.headers_mut().insert(header::LOCATION, location);
            }
            Ok(response)
        }
        Created::DuplicateUsername => Err(HttpError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("username {:?} is taken", new.username),
        )),
    }
}

/// `DELETE /users/{id}`: 204, or 404.
pub(crate) async fn delete_user(
    State(state): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<Response, HttpError> {
    let id = parse_id(&raw)?;
    let db = pool(&state)?;
    if seen(&state, users::delete(&db, &state.metrics, id).await)? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(HttpError::not_found(format!("no user with id {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(parse_id("42").unwrap(), 42);
        for bad in ["0", "-1", "+1", "1e3", "abc", "9223372036854775808", "", "1 OR 1=1"] {
            assert_eq!(parse_id(bad).unwrap_err().code, "bad_id", "{bad}");
        }
    }

    #[test]
    fn usernames() {
        assert!(valid_username("alice.b-c_9"));
        assert!(valid_username(&"a".repeat(64)));
        for bad in ["", "Alice", "a b", "a;drop", &"a".repeat(65), "é"] {
            assert!(!valid_username(bad), "{bad}");
        }
    }

    #[test]
    fn emails() {
        for good in ["a@example.com", "first.last+tag@sub.example.org", "o'brien@example.ie"] {
            assert!(valid_email(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "@example.com",
            "a@.com",
            "a b@example.com",
            "a@exa_mple.com",
            "a..b@example.com",
            "a@-x.com",
            "\"a\"@example.com",
        ] {
            assert!(!valid_email(bad), "{bad}");
        }
    }
}
