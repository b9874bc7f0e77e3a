//! The edge: every listener's accept loop and the life of each connection, with the limits
//! that keep a hostile client from holding the process (every limit bounded by construction):
//!
//! - a cap on open connections per listener (`--max-connections`): beyond it a new
//!   connection is accepted and closed at once, and counted;
//! - `EMFILE`/`ENFILE` on accept: an exponential back-off and one aggregated log line per
//!   interval, never a spin;
//! - a connection must start its first request within the header timeout (also after TLS:
//!   nothing sent, or a partial h2 preface), and is closed gracefully once it has been idle
//!   (no request in flight) for the idle timeout; h2 connections are pinged so that dead
//!   peers are found;
//! - a connection older than the max age is closed after its current request
//!   (`Connection: close`, GOAWAY), so that clients move to the current certificate, policy
//!   and replicas;
//! - an HTTP/1.1 request head must be complete within the header timeout of its first
//!   bytes (the connection's own clock, [`Activity`], not hyper's per-request timer);
//! - on shutdown every connection is asked to close gracefully (`Connection: close`,
//!   GOAWAY) and the loop waits up to the grace for them;
//! - after a burst of connections has closed, the allocator's free memory is returned to the
//!   system ([`trim`]).
//!
//! The front door supplies the service (the users API, the admin router); TLS is the
//! caller's business ([`crate::server`] handshakes before handing the stream here).

mod activity;
mod hold;
mod trim;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

pub(crate) use activity::Activity;

/// What the edge serves on a connection: an axum `Router`, or any service like it (the
/// proxy's, which needs no routing).
pub(crate) trait App:
    tower::Service<
        http::Request<axum::body::Body>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + 'static
{
}

impl<T> App for T where
    T: tower::Service<
            http::Request<axum::body::Body>,
            Response = axum::response::Response,
            Error = std::convert::Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + 'static
{
}
use activity::Close;

use crate::logs::Throttle;
use crate::metrics::Metrics;

/// How long a connection that was asked to close (idle, shutdown) may take to finish its
/// current exchange before it is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The h2 ping's time to be answered before the connection is considered dead.
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

/// The limits of one listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Open connections at most; more are closed at once.
    pub max_connections: usize,
    /// The first request must start, and each HTTP/1.1 request head be complete after its
    /// first bytes, within this.
    pub header_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Interval of h2 keep-alive pings (none when zero).
    pub h2_keepalive: Duration,
    /// A connection older than this (with ±10 % jitter) is closed after its current request
    /// (none when zero).
    pub max_age: Duration,
    /// Largest request head: hyper's HTTP/1.1 read buffer (at least 8 KiB) and the h2 header
    /// list; larger is 431.
    pub max_header_bytes: usize,
}

/// `age` give or take 10 %, so that connections opened together do not all close together.
fn jittered(age: Duration) -> Duration {
    age.mul_f64(0.9 + 0.2 * rand::random::<f64>())
}

/// One listener: its name (the `listener` label), limits and shared counters.
pub(crate) struct Edge {
    name: &'static str,
    limits: Limits,
    slots: Arc<Semaphore>,
    metrics: Arc<Metrics>,
    builder: auto::Builder<TokioExecutor>,
    peak: trim::Peak,
}

/// What a connection task holds: its slot under the cap, a handle that keeps the shutdown
/// waiting for it, and the shutdown signal.
pub(crate) struct Conn {
    edge: Arc<Edge>,
    _slot: OwnedSemaphorePermit,
    _open: mpsc::Sender<()>,
    stop: CancellationToken,
}

impl Edge {
    /// A listener named `name` (`tls`, `admin`) with these limits.
    pub(crate) fn new(name: &'static str, limits: Limits, metrics: Arc<Metrics>) -> Arc<Self> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .header_read_timeout(None)
            .max_buf_size(limits.max_header_bytes);
        let mut h2 = builder.http2();
        h2.timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
        if !limits.h2_keepalive.is_zero() {
            h2.keep_alive_interval(limits.h2_keepalive)
                .keep_alive_timeout(H2_PING_TIMEOUT);
        }
        Arc::new(Self {
            name,
            limits,
            slots: Arc::new(Semaphore::new(limits.max_connections)),
            metrics,
            builder,
            peak: trim::Peak::default(),
        })
    }

    /// Connections open now.
    fn open_connections(&self) -> usize {
        self.limits.max_connections - self.slots.available_permits()
    }

    /// Accepts until `stop`, handing each connection within the cap to `serve`; then waits
    /// up to `grace` for the open connections to finish.
    pub(crate) async fn run<F, Fut>(
        self: Arc<Self>,
        listener: TcpListener,
        stop: CancellationToken,
        grace: Duration,
        serve: F,
    ) where
        F: Fn(TcpStream, Conn) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (open, mut all_closed) = mpsc::channel::<()>(1);
        let throttle = Throttle::default();
        let mut backoff = AcceptBackoff::default();
        let mut trim = tokio::time::interval(trim::EVERY);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = trim.tick() => self.trim_after_burst(),
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        backoff.reset();
                        let Some(conn) = self.admit(&open, &stop) else {
                            drop(tcp);
                            continue;
                        };
                        tokio::spawn(serve(tcp, conn));
                    }
                    Err(e) => self.accept_failed(&e, &throttle, &mut backoff).await,
                },
                _ = stop.cancelled() => break,
            }
        }
        drop(listener);
        drop(open);
        if tokio::time::timeout(grace, all_closed.recv()).await.is_err() {
            tracing::warn!(
                listener = self.name,
                ?grace,
                open = self.open_connections(),
                "connections still open after the shutdown grace; closing them"
            );
        }
    }

    /// Returns the memory of closed connections to the system once enough have closed.
    fn trim_after_burst(&self) {
        let open = self.open_connections();
        if self.peak.fell_to(open) {
            tracing::debug!(
                listener = self.name,
                open,
                "connections fell well below their peak; returning free memory"
            );
            trim::release_free_memory_soon();
        }
    }

    /// A slot under the cap, or `None` (the connection is to be closed, and is counted).
    fn admit(self: &Arc<Self>, open: &mpsc::Sender<()>, stop: &CancellationToken) -> Option<Conn> {
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            self.metrics.connection_refused(self.name, "max_connections");
            return None;
        };
        let now_open = self.open_connections();
        self.metrics.connections_open(self.name, now_open);
        self.peak.saw(now_open);
        Some(Conn {
            edge: self.clone(),
            _slot: slot,
            _open: open.clone(),
            stop: stop.clone(),
        })
    }

    /// Counts an accept failure, logs it aggregated, and backs off when the process or the
    /// system is out of file descriptors (accepting again at once would fail the same way).
    async fn accept_failed(&self, e: &std::io::Error, throttle: &Throttle, backoff: &mut AcceptBackoff) {
        let errno = rustix::io::Errno::from_io_error(e);
        let out_of_fds = matches!(errno, Some(rustix::io::Errno::MFILE | rustix::io::Errno::NFILE));
        let kind = if out_of_fds { "out_of_fds" } else { "other" };
        self.metrics.accept_error(self.name, kind);
        if let Some(suppressed) = throttle.admit(kind, Instant::now()) {
            if out_of_fds {
                tracing::warn!(listener = self.name, error = %e, suppressed, open = self.open_connections(), "accept failed: out of file descriptors; backing off (raise the nofile limit or lower --max-connections)");
            } else {
                tracing::warn!(listener = self.name, error = %e, suppressed, "accept failed");
            }
        }
        tokio::time::sleep(backoff.next(out_of_fds)).await;
    }
}

/// Waits between failed accepts: doubling from 5 ms to 1 s while out of file descriptors
/// (backon's exponential back-off), a fixed 5 ms for other errors, reset by a successful
/// accept.
#[derive(Debug, Default)]
struct AcceptBackoff {
    out_of_fds: Option<backon::ExponentialBackoff>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    fn next(&mut self, out_of_fds: bool) -> Duration {
        use backon::BackoffBuilder;
        if !out_of_fds {
            return Self::FIRST;
        }
        let delays = self.out_of_fds.get_or_insert_with(|| {
            backon::ExponentialBuilder::default()
                .with_min_delay(Self::FIRST)
                .with_max_delay(Self::MAX)
                .without_max_times()
                .build()
        });
        delays.next().unwrap_or(Self::MAX)
    }

    fn reset(&mut self) {
        self.out_of_fds = None;
    }
}

impl Conn {
    /// Serves HTTP/1.1 or h2 (with upgrades) on `io` with `app` until the client closes,
    /// the connection turns idle, or the server shuts down.
    pub(crate) async fn serve_http<I, A>(self, io: I, app: A)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        A: App,
    {
        let activity = Arc::new(Activity::new());
        let service = activity.clone().service(app);
        let conn = self
            .edge
            .builder
            .serve_connection_with_upgrades(TokioIo::new(activity.watch(io)), service);
        tokio::pin!(conn);
        let limits = self.edge.limits;
        let aged = max_age_reached(limits.max_age);
        tokio::pin!(aged);
        let mut aged_done = false;
        let closing = loop {
            tokio::select! {
                r = conn.as_mut() => return log_end(r),
                why = activity.idle(limits.header_timeout, limits.idle_timeout) => break why,
                () = &mut aged, if !aged_done => {
                    aged_done = true;
                    self.edge.metrics.connection_closed(self.edge.name, Close::MaxAge.label());
                    // HTTP/1.1: the next response says `Connection: close` and hyper closes
                    // after it (closing now, between requests, would fail a request the client
                    // is about to send). h2: GOAWAY, which lets the open streams finish.
                    activity.close_after_response();
                    if activity.saw_h2() {
                        break Close::MaxAge;
                    }
                }
                _ = self.stop.cancelled() => break Close::Shutdown,
            }
        };
        if closing != Close::MaxAge {
            self.edge.metrics.connection_closed(self.edge.name, closing.label());
        }
        if closing == Close::FirstRequestTimeout {
            // Nothing to finish: closed at once (hyper would wait for a started head).
            return;
        }
        // HTTP/1.1 between requests (also with a started head): closed at once; with a
        // response in progress: after it. h2: GOAWAY.
        conn.as_mut().graceful_shutdown();
        // After shutdown the accept loop waits up to the grace; otherwise a short grace.
        let grace = if closing == Close::Shutdown {
            Duration::MAX
        } else {
            CLOSE_GRACE
        };
        match tokio::time::timeout(grace, conn.as_mut()).await {
            Ok(r) => log_end(r),
            Err(_) => tracing::debug!(reason = closing.label(), "connection did not close in time; dropped"),
        }
    }
}

/// Resolves when a connection opened now reaches `max_age` (jittered); never when zero.
async fn max_age_reached(max_age: Duration) {
    if max_age.is_zero() {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(jittered(max_age)).await;
}

impl Drop for Conn {
    fn drop(&mut self) {
        // The slot is released after this; count it as closed already.
        let open = self.edge.open_connections().saturating_sub(1);
        self.edge.metrics.connections_open(self.edge.name, open);
    }
}

fn log_end<E: std::fmt::Display>(r: Result<(), E>) {
    if let Err(e) = r {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_only_while_out_of_fds_and_resets() {
        let mut b = AcceptBackoff::default();
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(b.next(false)), 5);
        let fds: Vec<u128> = (0..10).map(|_| ms(b.next(true))).collect();
        let want = [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000];
        // backon computes in f32: a doubling may come out a millisecond short.
        assert!(fds.iter().zip(want).all(|(g, w)| g.abs_diff(w) <= 1), "{fds:?}");
        b.reset();
        assert_eq!(ms(b.next(true)), 5);
    }
}
