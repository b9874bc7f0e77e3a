//! Waiting for conditions, never for time: a probe is called until it succeeds or a deadline
//! passes, and the deadline is multiplied by `TLSWARD_TEST_PATIENCE` (a factor, default 1) so
//! that a loaded machine can be given more time without editing a test.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a probe is tried again.
const POLL: Duration = Duration::from_millis(100);

/// The `TLSWARD_TEST_PATIENCE` factor (default 1; at least 1).
pub fn patience() -> f64 {
    std::env::var("TLSWARD_TEST_PATIENCE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|f| f.is_finite())
        .map_or(1.0, |f| f.max(1.0))
}

/// `within`, scaled by [`patience`].
pub fn scaled(within: Duration) -> Duration {
    within.mul_f64(patience())
}

/// Calls `probe` until it returns `Ok`, and returns that; panics naming `what` and the probe's
/// last error once `within` (scaled) has passed.
pub fn until<T>(what: &str, within: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + scaled(within);
    loop {
        match probe() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {:?} waiting for {what}: {e}", scaled(within))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

/// The pause between two polls of [`crate::assert_eventually!`].
#[doc(hidden)]
pub async fn pause() {
    tokio::time::sleep(Duration::from_millis(25)).await;
}

/// [`until`] for an async probe.
pub async fn until_async<T, F>(what: &str, within: Duration, mut probe: impl FnMut() -> F) -> T
where
    F: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + scaled(within);
    loop {
        match probe().await {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => {
                panic!("timed out after {:?} waiting for {what}: {e}", scaled(within))
            }
            Err(_) => tokio::time::sleep(POLL).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_returns_the_first_success() {
        let mut tries = 0;
        let v = until("the third try", Duration::from_secs(5), || {
            tries += 1;
            if tries == 3 {
                Ok(tries)
            } else {
                Err(format!("try {tries}"))
            }
        });
        assert_eq!(v, 3);
    }

    #[test]
    #[should_panic(expected = "waiting for nothing: never")]
    fn until_panics_with_the_last_error() {
        until::<()>("nothing", Duration::from_millis(1), || Err("never".into()));
    }
}
