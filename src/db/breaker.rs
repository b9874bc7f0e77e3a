//! The database's circuit breaker: once the database has failed to answer (a connection
//! could not be opened, a ping or a query ran past its deadline), requests stop trying it and
//! fail fast with `database_unavailable`, while one attempt at a time (a request, or the
//! manager's health probe) tries again after an exponential back-off with jitter (backon).
//! The first success closes the breaker. This turns a database outage from one new
//! connection attempt per request into one attempt per back-off step, and bounds every
//! request's wait to a lock and a clock read.
//!
//! The closed state costs one relaxed atomic load per checkout.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

/// First wait after the database failed; doubles (with jitter) up to [`MAX_DELAY`].
const MIN_DELAY: Duration = Duration::from_millis(100);
/// Longest wait between two attempts while the database is down.
const MAX_DELAY: Duration = Duration::from_secs(5);

/// What a caller may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The breaker is closed: use the database.
    Go,
    /// The breaker is open and this caller is the one attempt: report the result with
    /// [`Breaker::probe_done`].
    Probe,
    /// The breaker is open: fail fast; the next attempt is in this long.
    FailFast(Duration),
}

struct Open {
    next_attempt: Instant,
    probing: bool,
    backoff: ExponentialBackoff,
}

/// The breaker of one pool.
pub struct Breaker {
    open: AtomicBool,
    state: Mutex<Option<Open>>,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new()
    }
}

fn backoff() -> ExponentialBackoff {
    ExponentialBuilder::default()
        .with_min_delay(MIN_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

impl Breaker {
    /// A closed breaker.
    pub fn new() -> Self {
        Self {
            open: AtomicBool::new(false),
            state: Mutex::new(None),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Open>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether callers are failing fast.
    fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    /// Asks to use the database at `now`.
    pub fn admit(&self, now: Instant) -> Admission {
        if !self.is_open() {
            return Admission::Go;
        }
        let mut state = self.lock();
        let Some(open) = state.as_mut() else {
            return Admission::Go;
        };
        if open.probing || now < open.next_attempt {
            return Admission::FailFast(open.next_attempt.saturating_duration_since(now));
        }
        open.probing = true;
        Admission::Probe
    }

    /// The database failed to answer at `now`: open the breaker (or, for a probe, wait the
    /// next back-off step).
    pub fn failed(&self, now: Instant) {
        let mut state = self.lock();
        let open = state.get_or_insert_with(|| Open {
            next_attempt: now,
            probing: false,
            backoff: backoff(),
        });
        let delay = open.backoff.next().unwrap_or(MAX_DELAY);
        open.next_attempt = now + delay;
        open.probing = false;
        self.open.store(true, Ordering::Relaxed);
    }

    /// The database answered: close the breaker.
    pub fn succeeded(&self) {
        if self.is_open() {
            *self.lock() = None;
            self.open.store(false, Ordering::Relaxed);
        }
    }

    /// Reports the outcome of an [`Admission::Probe`].
    pub fn probe_done(&self, ok: bool, now: Instant) {
        if ok { self.succeeded() } else { self.failed(now) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_breaker_admits_everyone() {
        let b = Breaker::new();
        assert_eq!(b.admit(Instant::now()), Admission::Go);
        b.succeeded();
        assert_eq!(b.admit(Instant::now()), Admission::Go);
    }

    #[test]
    fn open_breaker_fails_fast_until_the_back_off_passes_then_admits_one_probe() {
        let b = Breaker::new();
        let t0 = Instant::now();
        b.failed(t0);
        assert!(matches!(b.admit(t0), Admission::FailFast(d) if d <= MIN_DELAY * 2));
        let later = t0 + MAX_DELAY;
        assert_eq!(b.admit(later), Admission::Probe);
        // While the probe runs, everyone else fails fast.
        assert!(matches!(b.admit(later), Admission::FailFast(_)));
        b.probe_done(true, later);
        assert_eq!(b.admit(later), Admission::Go);
    }

    #[test]
    fn failed_probes_back_off_exponentially_up_to_the_maximum() {
        let b = Breaker::new();
        let mut now = Instant::now();
        b.failed(now);
        let mut waits = Vec::new();
        for _ in 0..12 {
            let Admission::FailFast(wait) = b.admit(now) else {
                panic!("open breaker admitted a caller before its time")
            };
            waits.push(wait);
            now += wait;
            assert_eq!(b.admit(now), Admission::Probe);
            b.probe_done(false, now);
        }
        assert!(waits.iter().all(|w| *w <= MAX_DELAY * 2), "{waits:?}");
        assert!(waits.last().unwrap() >= &(MAX_DELAY / 2), "{waits:?}");
        assert!(waits[0] < waits[6], "{waits:?}");
    }
}
