//! What a connection is doing, as its idle timer needs to know: how many requests are in
//! flight, when the last one finished, whether there has been one at all, and when the bytes
//! of an HTTP/1.1 request head started to arrive. Updated by a service wrapper on every
//! request (a few atomic operations at its start and end) and by an IO wrapper on every read
//! (three atomic loads while no request is in flight).
//!
//! The head clock replaces hyper's own HTTP/1.1 header-read timer, which makes, registers
//! and drops a boxed timer for every request; here one timer per connection serves the
//! first-request, header and idle timeouts.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::response::Response;
use hyper::Request;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower::ServiceExt;

/// Why a connection was asked to close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    /// No request started within the header timeout of the connection's start.
    FirstRequestTimeout,
    /// An HTTP/1.1 request head started to arrive and was not complete within the header
    /// timeout.
    HeaderTimeout,
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
            Self::HeaderTimeout => "header_timeout",
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
    /// Milliseconds after `born` when bytes arrived on an HTTP/1.1 connection with no request
    /// in flight (the next head has started); `u64::MAX`: none since the last request began.
    head_started_ms: AtomicU64,
    /// Unread request bodies being drained after their answer (see `hold`): their bytes are
    /// not a request head, and the connection is not idle meanwhile.
    draining: AtomicUsize,
}

const NONE_YET: u64 = u64::MAX;

/// Marks a request as in flight until dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.ended(&self.0.in_flight);
    }
}

/// Marks the rest of a request body as being drained until dropped (at most `hold`'s drain
/// time): the connection is busy, and the bytes that arrive are the body's.
pub(super) struct Draining(Arc<Activity>);

impl Drop for Draining {
    fn drop(&mut self) {
        self.0.head_started_ms.store(NONE_YET, Ordering::Release);
        self.0.ended(&self.0.draining);
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
            head_started_ms: AtomicU64::new(NONE_YET),
            draining: AtomicUsize::new(0),
        }
    }

    /// One of `busy`'s counts ends now: the idle clock starts from here.
    fn ended(&self, busy: &AtomicUsize) {
        self.last_done_ms.store(self.elapsed_ms(), Ordering::Release);
        busy.fetch_sub(1, Ordering::AcqRel);
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(NONE_YET - 1)
    }

    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        // Its head is complete.
        self.head_started_ms.store(NONE_YET, Ordering::Release);
        // A request has started: the connection is no longer waiting for its first one (the
        // clock is read only for the first request).
        if self.last_done_ms.load(Ordering::Acquire) == NONE_YET {
            let _ =
                self.last_done_ms
                    .compare_exchange(NONE_YET, self.elapsed_ms(), Ordering::AcqRel, Ordering::Acquire);
        }
        InFlight(self.clone())
    }

    /// The rest of an unread request body is being drained until the guard is dropped.
    pub(super) fn draining(self: &Arc<Self>) -> Draining {
        self.draining.fetch_add(1, Ordering::AcqRel);
        // What arrived since the answer was the body's, not a head.
        self.head_started_ms.store(NONE_YET, Ordering::Release);
        Draining(self.clone())
    }

    /// Whether a request is in flight or a request body is being drained (`in_flight` or
    /// `draining` above zero).
    fn busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.draining.load(Ordering::Acquire) > 0
    }

    /// Bytes arrived: with no request in flight on an HTTP/1.1 connection they start the next
    /// request's head, which then has the header timeout to complete. (Before the first
    /// request the first-request timeout applies; h2 reads between streams are frames.)
    fn bytes_arrived(&self) {
        if !self.busy() && !self.h2.load(Ordering::Relaxed) && self.head_started_ms.load(Ordering::Relaxed) == NONE_YET
        {
            self.head_started_ms.store(self.elapsed_ms(), Ordering::Release);
        }
    }

    /// `io`, reporting its reads to this activity.
    pub(super) fn watch<I>(self: &Arc<Self>, io: I) -> Watched<I> {
        Watched {
            io,
            activity: self.clone(),
        }
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
                // In flight until the response is ready: a client that does not read it is
                // then held by the idle timeout. The rest of an unread request body is
                // drained under a guard of its own (bounded by `hold`'s drain time).
                drop(in_flight);
                response.map(|mut r| {
                    if h1 && activity.closing.load(Ordering::Acquire) {
                        r.headers_mut()
                            .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                    }
                    super::hold::release_with(r, body, activity)
                })
            }
        })
    }

    /// Resolves when the connection has had no request in flight (and no body draining) for
    /// `idle`, or, with none, a request has not started within `header` of the connection's
    /// start or of its head's first bytes.
    pub(super) async fn idle(&self, header: Duration, idle: Duration) -> Close {
        loop {
            let wait = if self.busy() {
                idle
            } else {
                let last = self.last_done_ms.load(Ordering::Acquire);
                let head = self.head_started_ms.load(Ordering::Acquire);
                let (since, limit, why) = match (last, head) {
                    (NONE_YET, _) => (0, header, Close::FirstRequestTimeout),
                    (ms, NONE_YET) => (ms, idle, Close::IdleTimeout),
                    (_, started) => (started, header, Close::HeaderTimeout),
                };
                let quiet = Duration::from_millis(self.elapsed_ms().saturating_sub(since));
                match limit.checked_sub(quiet) {
                    Some(left) if !left.is_zero() => left,
                    _ => return why,
                }
            };
            // Never sleep past the shorter limit: a request may start or end meanwhile, and
            // the next check must come within one limit of the deadline it sets.
            tokio::time::sleep(wait.min(header.min(idle))).await;
        }
    }
}

/// A connection's stream, reporting each read that brought bytes to its [`Activity`].
pub(super) struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
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

    #[tokio::test]
    async fn a_started_head_has_the_header_timeout_not_the_idle_timeout() {
        let a = Arc::new(Activity::new());
        drop(a.begin());
        a.bytes_arrived();
        let idle = a.idle(Duration::from_millis(20), Duration::from_secs(60));
        let why = tokio::time::timeout(Duration::from_secs(5), idle).await;
        assert_eq!(why.unwrap(), Close::HeaderTimeout);
    }

    #[tokio::test]
    async fn a_request_that_begins_stops_the_head_clock() {
        let a = Arc::new(Activity::new());
        drop(a.begin());
        a.bytes_arrived();
        drop(a.begin());
        let idle = a.idle(Duration::from_millis(20), Duration::from_millis(100));
        let why = tokio::time::timeout(Duration::from_secs(5), idle).await;
        assert_eq!(why.unwrap(), Close::IdleTimeout);
    }

    #[tokio::test]
    async fn a_body_being_drained_keeps_the_connection_busy_and_its_bytes_are_no_head() {
        let a = Arc::new(Activity::new());
        drop(a.begin());
        a.bytes_arrived();
        let draining = a.draining();
        a.bytes_arrived();
        let idle = a.idle(Duration::from_millis(20), Duration::from_millis(50));
        assert!(tokio::time::timeout(Duration::from_millis(200), idle).await.is_err());
        drop(draining);
        // The idle clock starts when the drain ends, and no head has started.
        let idle = a.idle(Duration::from_millis(20), Duration::from_millis(100));
        let why = tokio::time::timeout(Duration::from_secs(5), idle).await;
        assert_eq!(why.unwrap(), Close::IdleTimeout);
    }

    #[tokio::test]
    async fn bytes_during_a_request_or_on_h2_do_not_start_the_head_clock() {
        let a = Arc::new(Activity::new());
        let guard = a.begin();
        a.bytes_arrived();
        drop(guard);
        let h2 = Arc::new(Activity::new());
        h2.h2.store(true, Ordering::Relaxed);
        drop(h2.begin());
        h2.bytes_arrived();
        for a in [a, h2] {
            let idle = a.idle(Duration::from_millis(20), Duration::from_millis(100));
            let why = tokio::time::timeout(Duration::from_secs(5), idle).await;
            assert_eq!(why.unwrap(), Close::IdleTimeout);
        }
    }
}
