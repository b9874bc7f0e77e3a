//! Client-side transaction retries, as CockroachDB asks of its clients: SQLSTATE 40001
//! (serialization failure / "restart transaction") is retried with bounded exponential
//! back-off and full jitter; reads that fail on a broken connection run once more on a fresh one.

use std::time::Duration;

use tokio_postgres::error::SqlState;

/// Retry bounds.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Back-off before the second attempt (before jitter).
    pub base: Duration,
    /// Largest back-off.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            base: Duration::from_millis(5),
            cap: Duration::from_millis(500),
        }
    }
}

impl RetryPolicy {
    /// The back-off after failed attempt `attempt` (1-based), scaled by `jitter` in [0, 1]:
    /// full jitter over `min(cap, base * 2^(attempt-1))`.
    pub fn backoff(&self, attempt: u32, jitter: f64) -> Duration {
        let exp = self.base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
        exp.min(self.cap).mul_f64(jitter.clamp(0.0, 1.0))
    }
}

/// Whether a database error asks the client to retry the whole transaction.
pub(crate) fn is_retryable(err: &tokio_postgres::Error) -> bool {
    err.code() == Some(&SqlState::T_R_SERIALIZATION_FAILURE)
}

/// Whether a database error means the connection itself is gone.
pub(crate) fn is_connection_broken(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    if let Some(code) = err.code() {
        return *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
            || code.code().starts_with("08");
    }
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(err);
    while let Some(e) = src {
        if e.is::<std::io::Error>() {
            return true;
        }
        src = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_then_caps_and_jitter_scales() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff(1, 1.0), Duration::from_millis(5));
        assert_eq!(p.backoff(2, 1.0), Duration::from_millis(10));
        assert_eq!(p.backoff(4, 1.0), Duration::from_millis(40));
        assert_eq!(p.backoff(30, 1.0), Duration::from_millis(500));
        assert_eq!(p.backoff(3, 0.5), Duration::from_millis(10));
        assert_eq!(p.backoff(3, 0.0), Duration::ZERO);
        assert_eq!(p.backoff(3, 7.0), Duration::from_millis(20));
    }

    #[test]
    fn total_backoff_is_bounded() {
        let p = RetryPolicy::default();
        let total: Duration = (1..p.max_attempts).map(|a| p.backoff(a, 1.0)).sum();
        assert!(total < Duration::from_secs(2), "{total:?}");
    }
}
