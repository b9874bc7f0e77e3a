//! One error type for every HTTP answer that is not a success: JSON
//! `{"error":{"code","message"}}` with the right status. Messages are written for the client;
//! internals (SQL, stack traces, file paths) never reach them, they go to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::token::TokenError;

/// An error answer of the TLS listener (the API's and the proxy's): status, stable code,
/// client-safe message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HttpError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// `WWW-Authenticate` value for 401s.
    pub www_authenticate: Option<String>,
}

impl HttpError {
    /// A new error.
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            www_authenticate: None,
        }
    }

    /// 400 with `code`.
    pub(crate) fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 404.
    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 401 for a refused token.
    pub(crate) fn unauthorized(err: TokenError) -> Self {
        let challenge = match err {
            TokenError::Missing => r#"Bearer realm="tlsward""#.to_string(),
            other => format!(r#"Bearer realm="tlsward", error="invalid_token", error_description="{other}""#),
        };
        Self {
            www_authenticate: Some(challenge),
            ..Self::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
        }
    }
}

/// The body of an error answer: `{"error":{"code","message"}}`.
#[derive(Serialize)]
struct Body<'a> {
    error: Detail<'a>,
}

#[derive(Serialize)]
struct Detail<'a> {
    code: &'a str,
    message: &'a str,
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let body = Body {
            error: Detail {
                code: self.code,
                message: &self.message,
            },
        };
        let challenge = self.www_authenticate.and_then(|c| HeaderValue::from_str(&c).ok());
        let mut resp = super::reply::json(self.status, &body, usize::from(challenge.is_some()));
        if let Some(v) = challenge {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        resp
    }
}
