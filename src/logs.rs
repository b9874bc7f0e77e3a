//! Aggregated log lines: a failure that repeats (every request during a database outage,
//! every accept while the process is out of file descriptors) is written once per interval
//! per reason, with the number of times it happened since the previous line, so that an
//! outage costs a bounded number of lines however many requests it fails.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeated failure is logged by default.
const EVERY: Duration = Duration::from_secs(10);

/// Counts occurrences per reason and admits one line per interval.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    windows: Mutex<HashMap<&'static str, Window>>,
}

#[derive(Debug)]
struct Window {
    last_line: Instant,
    suppressed: u64,
}

impl Default for Throttle {
    fn default() -> Self {
        Self::new(EVERY)
    }
}

impl Throttle {
    /// At most one line per `every` per reason.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one occurrence of `reason` at `now`. `Some(n)`: write the line now, saying that
    /// `n` more occurrences were not logged since the previous line; `None`: stay quiet.
    pub fn admit(&self, reason: &'static str, now: Instant) -> Option<u64> {
        let mut windows = self.windows.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match windows.get_mut(reason) {
            Some(w) if now.saturating_duration_since(w.last_line) < self.every => {
                w.suppressed += 1;
                None
            }
            Some(w) => {
                let n = std::mem::take(&mut w.suppressed);
                w.last_line = now;
                Some(n)
            }
            None => {
                windows.insert(
                    reason,
                    Window {
                        last_line: now,
                        suppressed: 0,
                    },
                );
                Some(0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occurrence_is_logged_then_one_line_per_interval_with_the_count() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit("db", t0), Some(0));
        for i in 1..1000 {
            assert_eq!(t.admit("db", t0 + Duration::from_millis(i)), None);
        }
        assert_eq!(t.admit("db", t0 + Duration::from_secs(10)), Some(999));
        assert_eq!(t.admit("db", t0 + Duration::from_secs(11)), None);
    }

    #[test]
    fn reasons_are_counted_apart() {
        let t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.admit("a", t0), Some(0));
        assert_eq!(t.admit("b", t0), Some(0));
        assert_eq!(t.admit("a", t0), None);
    }
}
