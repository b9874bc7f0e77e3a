//! The database side: DSN parsing, the verified TLS pool, retries, and the users queries.

pub mod breaker;
pub mod dsn;
pub mod manager;
pub mod material;
pub mod pool;
pub mod retry;
pub mod users;
