//! What a connection is doing, as its idle timer needs to know: how many requests are in
//! flight, when the last one finished, and whether there has been one at all. Updated by a
//! service wrapper on every request (two atomic operations at its start and two at its end).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use tower::ServiceExt;

/// Why a connection was asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// No request started within the header timeout of the connection's start.
    FirstRequestTimeout,
    /// No request in flight for the idle timeout.
    IdleTimeout,
    /// Older than the max connection age.
    MaxAge,
    /// The server is shutting down.
    Shutdown,
}

impl Close {
    pub(super) fn label(self) -> &'static str {
        match self {
            Self::FirstRequestTimeout => "first_request_timeout",
            Self::IdleTimeout => "idle_timeout",
            Self::MaxAge => "max_age",
            Self::Shutdown => "shutdown",
        }
    }
}

/// The request activity of one connection.
#[derive(Debug)]
pub(crate) struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// Set once an h2 request was seen (an h2 connection is closed with GOAWAY).
    h2: AtomicBool,
    /// Set when the connection must end after the response in progress or the next one.
    closing: AtomicBool,
    /// Milliseconds after `born` when a request last ended; `u64::MAX`: none has started.
    last_done_ms: AtomicU64,
}

const NONE_YET: u64 = u64::MAX;

/// Marks a request as in flight until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_done_ms.store(a.elapsed_ms(), Ordering::Release);
        a.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for Activity {
    fn default() -> Self {
        Self::new()
    }
}

impl Activity {
    /// A connection that has just started.
    pub(crate) fn new() -> Self {
        Self {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            last_done_ms: AtomicU64::new(NONE_YET),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NONE_YET - 1)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // A request has started: the connection is no longer waiting for its first one (the
        // clock is read only for the first request).
        if self.last_done_ms.load(Ordering::Acquire) == NONE_YET {
            let _ =
                self.last_done_ms
                    .compare_exchange(NONE_YET, self.elapsed_ms(), Ordering::AcqRel, Ordering::Acquire);
        }
        InFlight(self.clone())
    }

    /// Asks for the connection to end after the response in progress, or the next one
    /// (HTTP/1.1: that response carries `Connection: close`).
    pub(super) fn close_after_response(&self) {
        self.closing.store(true, Ordering::Release);
    }

    /// Whether the connection speaks h2.
    pub(super) fn saw_h2(&self) -> bool {
        self.h2.load(Ordering::Acquire)
    }

    /// `app` as a hyper service that keeps this activity up to date.
    pub(crate) fn service<A: super::App>(
        self: Arc<Self>,
        app: A,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response,
        Error = Infallible,
        Future = impl Future<Output = Result<Response, Infallible>> + Send + 'static,
    > + Send
    + 'static {
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let in_flight = self.begin();
            let h1 = req.version() < http::Version::HTTP_2;
            if !h1 {
                self.h2.store(true, Ordering::Relaxed);
            }
            let (req, body) = super::hold::lend(req);
            let call = app.clone().oneshot(req);
            let activity = self.clone();
            async move {
                let response = call.await;
                drop(in_flight);
                response.map(|mut r| {
                    if h1 && activity.closing.load(Ordering::Acquire) {
                        r.headers_mut()
                            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                    }
                    super::hold::release_with(r, body)
                })
            }
        })
    }

    /// Resolves when the connection has had no request in flight for `idle` (or, before its
    /// first request, for `first`).
    pub(super) async fn idle(&self, first: Duration, idle: Duration) -> Close {
        loop {
            let wait = if self.in_flight.load(Ordering::Acquire) > 0 {
                idle
            } else {
                let last = self.last_done_ms.load(Ordering::Acquire);
                let (since, limit, why) = match last {
                    NONE_YET => (0, first, Close::FirstRequestTimeout),
                    ms => (ms, idle, Close::IdleTimeout),
                };
                let quiet = Duration::from_millis(self.elapsed_ms().saturating_sub(since));
                match limit.checked_sub(quiet) {
                    Some(left) if !left.is_zero() => left,
                    _ => return why,
                }
            };
            // Never sleep past the shorter limit: a request may start or end meanwhile, and
            // the next check must come within one limit of the deadline it sets.
            tokio::time::sleep(wait.min(first.min(idle))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_without_a_request_closes_after_the_first_request_timeout() {
        let a = Activity::new();
        let idle = a.idle(Duration::from_millis(20), Duration::from_secs(60));
        let why = tokio::time::timeout(Duration::from_secs(5), idle).await;
        assert_eq!(why.unwrap(), Close::FirstRequestTimeout);
    }

    #[tokio::test]
    async fn a_request_in_flight_keeps_the_connection_open() {
        let a = Arc::new(Activity::new());
        let guard = a.begin();
        let idle = tokio::time::timeout(
            Duration::from_millis(150),
            a.idle(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .await;
        assert!(idle.is_err(), "closed with a request in flight");
        drop(guard);
        let why = tokio::time::timeout(
            Duration::from_millis(500),
            a.idle(Duration::from_millis(10), Duration::from_millis(20)),
        )
        .await;
        assert_eq!(why.unwrap(), Close::IdleTimeout);
    }
}
