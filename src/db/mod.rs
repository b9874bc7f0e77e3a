//! The database side: DSN parsing, the verified TLS pool, retries, the users queries, the
//! handle on the served pool and the manager that rebuilds it when the DB material rotates.

pub(crate) mod breaker;
pub mod dsn;
pub(crate) mod handle;
pub(crate) mod manager;
pub(crate) mod material;
pub mod pool;
pub(crate) mod retry;
pub mod users;
