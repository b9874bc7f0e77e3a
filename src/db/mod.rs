//! The database side: DSN parsing, the verified TLS pool, retries, the users queries, the
//! handle on the served pool and the manager that rebuilds it when the DB material rotates.

pub mod breaker;
pub mod dsn;
pub mod handle;
pub mod manager;
pub mod material;
pub mod pool;
pub mod retry;
pub mod users;
