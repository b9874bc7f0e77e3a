//! The users API's database errors as answers: unreachable is a 503 `database_unavailable`
//! the client may retry, anything else a 500 whose cause only the log sees.

use axum::http::StatusCode;

use crate::db::pool::DbError;
use crate::web::HttpError;

impl HttpError {
    /// 503 `database_unavailable`.
    pub(crate) fn db_unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the database is unavailable; retry later",
        )
    }
}

/// The answer to a database error (logged by the caller, aggregated: see `crate::logs`).
impl From<&DbError> for HttpError {
    fn from(e: &DbError) -> Self {
        if e.is_unavailable() {
            Self::db_unavailable()
        } else {
            Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
        }
    }
}
