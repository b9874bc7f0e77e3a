//! Whether the app behind the proxy answers: every forwarded request and a periodic probe
//! (`GET --upstream-health-path`, or only a connect without one) mark it up or down; the
//! proxy's readiness turns false once it has been down longer than `--upstream-unready-after`.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The app's reachability, shared by the forwarder, the probe and readiness.
#[derive(Clone, Default)]
pub struct Health {
    /// Since when every attempt failed; `None` while the last one succeeded.
    down_since: Arc<Mutex<Option<Instant>>>,
}

impl Health {
    /// The last attempt reached the app.
    pub fn mark_up(&self) {
        *self.lock() = None;
    }

    /// The last attempt could not reach the app (the first failure starts the clock).
    pub fn mark_down(&self) {
        self.lock().get_or_insert_with(Instant::now);
    }

    /// Whether the app has been unreachable for longer than `d` (never when `d` is zero).
    pub fn down_longer_than(&self, d: Duration) -> bool {
        !d.is_zero() && self.lock().is_some_and(|since| since.elapsed() > d)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.down_since.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_starts_at_the_first_failure_and_a_success_stops_it() {
        let h = Health::default();
        assert!(!h.down_longer_than(Duration::from_millis(1)));
        h.mark_down();
        std::thread::sleep(Duration::from_millis(20));
        h.mark_down();
        assert!(
            h.down_longer_than(Duration::from_millis(10)),
            "the first failure counts"
        );
        assert!(!h.down_longer_than(Duration::ZERO), "zero: never unready");
        h.mark_up();
        assert!(!h.down_longer_than(Duration::from_millis(1)));
    }
}
