//! The `users` table: schema migration and the four queries of the API. Parameterized
//! statements only; the SQL runs unchanged on CockroachDB and PostgreSQL.

use serde::Serialize;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::pool::{DbError, DbPool};
use crate::metrics::Metrics;

/// Schema statements, each idempotent, run in order at start-up. `ADD COLUMN IF NOT EXISTS`
/// and the separate unique index let a table created by the seed's app be upgraded in place.
const MIGRATIONS: [&str; 4] = [
    "SET client_min_messages = warning",
    "CREATE TABLE IF NOT EXISTS users (id INT8 PRIMARY KEY, username TEXT NOT NULL, email TEXT NOT NULL, created_at TIMESTAMPTZ NOT NULL DEFAULT now())",
    "ALTER TABLE users ADD COLUMN IF NOT EXISTS created_at TIMESTAMPTZ NOT NULL DEFAULT now()",
    "CREATE UNIQUE INDEX IF NOT EXISTS users_username_key ON users (username)",
];

/// A user as the API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// 64-bit id (CockroachDB INT8).
    pub id: i64,
    /// Unique name.
    pub username: String,
    /// E-mail address.
    pub email: String,
    /// Creation time, RFC 3339.
    #[serde(serialize_with = "rfc3339")]
    pub created_at: OffsetDateTime,
}

/// `t` as RFC 3339, formatted into a buffer on the stack (`time::serde::rfc3339` formats into
/// a new `String`, grown a few times, for every user it serializes).
fn rfc3339<S: serde::Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::Error;
    // "2026-12-06T20:31:18.123456789+14:00" is 35 bytes; RFC 3339 years have four digits.
    let mut buf = [0u8; 40];
    let n = t
        .format_into(&mut &mut buf[..], &time::format_description::well_known::Rfc3339)
        .map_err(S::Error::custom)?;
    s.serialize_str(std::str::from_utf8(&buf[..n]).map_err(S::Error::custom)?)
}

impl User {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            username: row.get(1),
            email: row.get(2),
            created_at: row.get(3),
        }
    }
}

/// The outcome of an insert.
#[derive(Debug)]
pub enum Created {
    /// Inserted.
    Ok(User),
    /// The username is taken.
    DuplicateUsername,
}

/// Runs the schema migration; concurrent replicas may race, so a lost race is retried.
pub async fn migrate(db: &DbPool) -> Result<(), DbError> {
    let client = db.pool.get().await.map_err(|e| DbError::Unavailable(e.to_string()))?;
    for sql in MIGRATIONS {
        let mut tries = 0;
        loop {
            let ran = tokio::time::timeout(db.query_deadline, client.batch_execute(sql)).await;
            let Ok(ran) = ran else {
                drop(deadpool_postgres::Object::take(client));
                return Err(DbError::Deadline(db.query_deadline));
            };
            match ran {
                Ok(()) => break,
                Err(e)
                    if tries < 3
                        && (e.code() == Some(&SqlState::UNIQUE_VIOLATION)
                            || e.code() == Some(&SqlState::DUPLICATE_TABLE)
                            || e.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)) =>
                {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The columns of a user, as a literal so that every statement is a `&'static str` (no
/// formatting per query).
macro_rules! cols {
    () => {
        "id, username, email, created_at"
    };
}

/// A new id: milliseconds since the epoch in the high bits, 20 random bits below, positive.
/// Roughly time-ordered like CockroachDB's `unique_rowid()`, and portable to PostgreSQL.
fn new_id() -> i64 {
    let ms = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000;
    let ms = i64::try_from(ms).unwrap_or(0) & ((1 << 42) - 1);
    (ms << 20) | i64::from(rand::random::<u32>() & 0xF_FFFF)
}

/// One user by id.
pub async fn get(db: &DbPool, m: &Metrics, id: i64) -> Result<Option<User>, DbError> {
    db.read(m, move |c| {
        Box::pin(async move {
            let stmt = c
                .prepare_cached(concat!("SELECT ", cols!(), " FROM users WHERE id = $1"))
                .await?;
            Ok(c.query_opt(&stmt, &[&id]).await?.as_ref().map(User::from_row))
        })
    })
    .await
}

/// Up to `limit` users with id greater than `after`, by id.
pub async fn list(db: &DbPool, m: &Metrics, limit: i64, after: i64) -> Result<Vec<User>, DbError> {
    db.read(m, move |c| {
        Box::pin(async move {
            let stmt = c
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM users WHERE id > $1 ORDER BY id LIMIT $2"
                ))
                .await?;
            Ok(c.query(&stmt, &[&after, &limit])
                .await?
                .iter()
                .map(User::from_row)
                .collect())
        })
    })
    .await
}

/// Inserts a user; a taken username is reported, a colliding id is drawn again.
pub async fn create(db: &DbPool, m: &Metrics, username: &str, email: &str) -> Result<Created, DbError> {
    for _ in 0..3 {
        let id = new_id();
        let res = db
            .transaction(m, |tx| {
                let (username, email) = (username.to_string(), email.to_string());
                Box::pin(async move {
                    let row = tx
                        .query_one(
                            concat!(
                                "INSERT INTO users (id, username, email) VALUES ($1, $2, $3) RETURNING ",
                                cols!()
                            ),
                            &[&id, &username, &email],
                        )
                        .await?;
                    Ok(User::from_row(&row))
                })
            })
            .await;
        match res {
            Ok(u) => return Ok(Created::Ok(u)),
            Err(DbError::Query(e)) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => {
                let on_username = e
                    .as_db_error()
                    .map(|d| d.constraint().is_some_and(|c| c.contains("username")) || d.message().contains("username"))
                    .unwrap_or(false);
                if on_username {
                    return Ok(Created::DuplicateUsername);
                }
            }
            Err(e) => return Err(e),
        }
    }
    Err(DbError::Unavailable("could not draw a free id".into()))
}

/// Deletes a user; whether one was deleted.
pub async fn delete(db: &DbPool, m: &Metrics, id: i64) -> Result<bool, DbError> {
    db.transaction(m, |tx| {
        Box::pin(async move { Ok(tx.execute("DELETE FROM users WHERE id = $1", &[&id]).await? == 1) })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_at_is_serialized_as_time_formats_rfc_3339() {
        let at = time::macros::datetime!(2026-12-06 20:31:18.123456789 +02:00);
        let user = User {
            id: 1,
            username: "a".into(),
            email: "a@example.com".into(),
            created_at: at,
        };
        let want = at.format(&time::format_description::well_known::Rfc3339).unwrap();
        let json = serde_json::to_value(&user).unwrap();
        assert_eq!(json["created_at"], want.as_str());
        assert_eq!(want, "2026-12-06T20:31:18.123456789+02:00");
    }
}
