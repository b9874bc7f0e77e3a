//! The API's answers built in a header map sized for every header they will carry: their
//! own, the router's `content-length` and the security headers. axum's own responses start
//! with room for six headers and were grown and rehashed on every request when the security
//! headers went in.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::SECURITY_HEADERS;

/// A body's first allocation: a user, or an error, fits.
const BODY_CAPACITY: usize = 160;

/// Makes room in `headers` for `own` headers of the response and those added after it.
fn make_room(headers: &mut HeaderMap, own: usize) {
    headers.reserve(own + 1 + SECURITY_HEADERS.len());
}

/// `body`, which is JSON, as an answer with `status`; `extra` headers of the caller's still
/// to come.
pub(crate) fn json_body(status: StatusCode, body: Body, extra: usize) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    make_room(headers, 1 + extra);
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// `value` as a JSON answer with `status`; `extra` headers of the caller's still to come.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T, extra: usize) -> Response {
    let mut body = Vec::with_capacity(BODY_CAPACITY);
    if let Err(e) = serde_json::to_writer(&mut body, value) {
        // As axum's `Json` answers a value that does not serialize.
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    json_body(status, Body::from(body), extra)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_json_answer_has_room_for_every_header_still_to_come() {
        let r = json(StatusCode::CREATED, &serde_json::json!({"id": 7}), 1);
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let room = r.headers().capacity() - r.headers().len();
        // the caller's one, the content length and the security headers
        assert!(room >= 2 + SECURITY_HEADERS.len(), "room for {room} more headers");
        let body = axum::body::to_bytes(r.into_body(), 1024).await.unwrap();
        assert_eq!(&body[..], br#"{"id":7}"#);
    }
}
