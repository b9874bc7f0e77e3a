//! Memory back to the system after a burst of connections. glibc's malloc keeps what closed
//! connections freed (their TLS records, HTTP buffers, tasks) in its arenas, so without this a
//! burst of thousands of idle connections leaves its RSS behind for good. When a listener's
//! open connections have fallen by [`MIN_FALL`] or more below their peak since the last trim,
//! `malloc_trim(0)` returns the free pages of every arena (with another allocator, or off glibc,
//! nothing is done).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// How often a listener looks at its fall from the peak.
pub(super) const EVERY: Duration = Duration::from_secs(5);
/// The fall from the peak (connections) that is worth a trim: below it the memory freed is a
/// few MiB at most, and a trim of a busy heap is not free.
const MIN_FALL: usize = 256;

/// The highest number of open connections since the last trim.
#[derive(Debug, Default)]
pub(super) struct Peak(AtomicUsize);

impl Peak {
    /// Records that `open` connections are open now.
    pub(super) fn saw(&self, open: usize) {
        self.0.fetch_max(open, Ordering::Relaxed);
    }

    /// Whether the fall from the peak to `open` calls for a trim; if so the peak starts again
    /// from `open`.
    pub(super) fn fell_to(&self, open: usize) -> bool {
        let peak = self.0.load(Ordering::Relaxed);
        if peak.saturating_sub(open) < MIN_FALL {
            return false;
        }
        self.0.store(open, Ordering::Relaxed);
        true
    }
}

/// Whether a trim is running (one at a time, process-wide).
static TRIMMING: AtomicBool = AtomicBool::new(false);

/// Gives the allocator's free memory back to the system on a blocking thread (glibc locks
/// each arena in turn while it walks it, which must not stall an accept loop), unless a trim
/// is running already.
pub(super) fn release_free_memory_soon() {
    if TRIMMING.swap(true, Ordering::AcqRel) {
        return;
    }
    tokio::task::spawn_blocking(|| {
        release_free_memory();
        TRIMMING.store(false, Ordering::Release);
    });
}

/// Gives the allocator's free memory back to the system. The crate's one `unsafe` (the lint
/// gate of `make lint` allows it here only): a foreign call no well-kept crate wraps.
#[allow(unsafe_code)]
fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu", not(feature = "mimalloc")))]
    // SAFETY: malloc_trim takes no pointers; it walks and locks glibc's own arenas only.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fall_of_fewer_than_min_fall_connections_is_not_worth_a_trim() {
        let p = Peak::default();
        p.saw(1000);
        assert!(!p.fell_to(1000 - MIN_FALL + 1));
        assert!(p.fell_to(1000 - MIN_FALL));
    }

    #[test]
    fn after_a_trim_the_peak_starts_from_the_connections_then_open() {
        let p = Peak::default();
        p.saw(5000);
        assert!(p.fell_to(4000));
        assert!(!p.fell_to(4000 - MIN_FALL + 1), "measured from the old peak");
        assert!(
            p.fell_to(4000 - MIN_FALL),
            "measured from the connections open at the trim"
        );
        p.saw(4100);
        assert!(p.fell_to(4100 - MIN_FALL));
    }
}
