//! Aggregated log lines: a failure that repeats (every request during a database outage,
//! every accept while the process is out of file descriptors) is written once per interval
//! per reason, with the number of times it happened since the previous line, so that an
//! outage costs a bounded number of lines however many requests it fails. And the log filter,
//! which keeps a dependency's per-retry warnings out when tlsward reports the cause itself.

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

/// kube-runtime's watcher warns at every back-off of a watch refused with 403, and kube-client
/// logs every failed request at error level (every 0.8 s to 30 s, for as long as the API is
/// unreachable or the Role misses a rule): `k8s::secrets` and `k8s::events` say each cause
/// once, with what to fix, and count the repeats.
/// Each as (the crate, its directive).
const QUIET_DEPENDENCIES: [(&str, &str); 2] = [
    ("kube_runtime", "kube_runtime::watcher=error"),
    ("kube_client", "kube_client=off"),
];

/// The `--log` filter (tracing's EnvFilter syntax; `info` when it does not parse), with
/// [`QUIET_DEPENDENCIES`] for each crate the filter does not name itself.
pub fn filter(spec: &str) -> tracing_subscriber::EnvFilter {
    let filter =
        tracing_subscriber::EnvFilter::try_new(spec).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    QUIET_DEPENDENCIES
        .iter()
        .filter(|(krate, _)| !spec.contains(krate))
        .fold(filter, |f, (_, d)| {
            f.add_directive(d.parse().expect("a valid directive"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watchers_retry_warnings_are_quiet_unless_asked_for() {
        let quiet = filter("info").to_string();
        assert!(
            quiet.contains("kube_runtime::watcher=error") && quiet.contains("kube_client=off"),
            "{quiet}"
        );
        let asked = filter("info,kube_runtime=debug,kube_client=debug").to_string();
        assert!(
            !asked.contains("watcher=error") && !asked.contains("kube_client=off"),
            "{asked}"
        );
    }

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
