//! Relays one database session both ways after its start-up, byte for byte, while following
//! the message boundaries of each direction ([`wire::Framer`]) to know when the session is idle
//! between transactions: every Query, Sync and FunctionCall of the app answered by a
//! ReadyForQuery whose status is `I`, nothing half-sent either way. A session past its maximum
//! age (or during shutdown) is closed only then, never mid-transaction: at once when a
//! transaction has just ended (`T`/`E` → `I`: the app is done with the connection, e.g. the
//! pool's rollback on check-in), otherwise (an autocommit statement, `I` → `I`) only after
//! [`QUIET`] without a byte either way. That second rule is for a pool's checkout ping:
//! SQLAlchemy's `pool_pre_ping` runs `SELECT 1` in autocommit, leaving the session idle for the
//! instant before the request's `BEGIN`; a close there would fail the request, while a close
//! that meets the app's next ping makes the pool reconnect.

use std::sync::Mutex;

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::wire::{self, Framer};

/// Size of each direction's buffer.
const BUF: usize = 16 * 1024;

/// How long a session idle after an autocommit statement must also have been silent (no byte
/// either way) before the proxy closes it.
pub(crate) const QUIET: std::time::Duration = std::time::Duration::from_millis(500);

/// Why the proxy closed a session itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// It outlived `--db-max-session-age`.
    MaxAge,
    /// The proxy is shutting down.
    Shutdown,
}

impl Closed {
    /// The metric label.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Self::MaxAge => "max_age",
            Self::Shutdown => "shutdown",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::MaxAge => {
                "terminating connection: the session reached --db-max-session-age between transactions; reconnect to use the current certificates"
            }
            Self::Shutdown => "terminating connection: the database proxy is shutting down",
        }
    }
}

/// How a relayed session ended.
#[derive(Debug)]
pub(crate) enum End {
    /// One side closed or failed (the error, if any).
    Ended(Option<std::io::Error>),
    /// The proxy closed it while idle.
    Closed(Closed),
}

/// When the proxy may close the session.
pub(crate) struct Ends {
    /// The session's maximum age reached (none: no limit).
    pub deadline: Option<Instant>,
    /// Cancelled at shutdown.
    pub stop: CancellationToken,
}

/// The bytes counters of each direction.
pub(crate) struct Bytes {
    /// App to database.
    pub to_db: Counter,
    /// Database to app.
    pub to_app: Counter,
}

/// What both directions share, under one lock so that "idle" and "forward" never interleave.
struct State {
    app: Framer,
    db: Framer,
    writing: u32,
    closing: bool,
    last_byte: Instant,
}

impl State {
    fn idle(&self) -> bool {
        self.writing == 0
            && self.app.at_boundary()
            && self.db.at_boundary()
            && self.db.count == self.app.count
            && self.db.ready_status == Some(b'I')
    }
}

#[derive(Clone, Copy)]
enum Side {
    App,
    Db,
}

struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Relays `app` ⇄ `db` until either ends, or until the session is idle after `ends` says so.
/// The StartupMessage has been sent: the database's first ReadyForQuery answers it.
pub(crate) async fn relay<A, D>(app: A, db: D, ends: Ends, bytes: &Bytes) -> End
where
    A: AsyncRead + AsyncWrite + Unpin,
    D: AsyncRead + AsyncWrite + Unpin,
{
    let mut app_side = Framer::new(wire::ANSWERED_BY_READY);
    app_side.count = 1;
    let shared = Shared {
        state: Mutex::new(State {
            app: app_side,
            db: Framer::new(wire::READY),
            writing: 0,
            closing: false,
            last_byte: Instant::now(),
        }),
        changed: Notify::new(),
    };
    let (mut app_r, mut app_w) = tokio::io::split(app);
    let (mut db_r, mut db_w) = tokio::io::split(db);
    let closed = tokio::select! {
        r = async {
            tokio::try_join!(
                pump(&mut app_r, &mut db_w, &shared, Side::App, &bytes.to_db),
                pump(&mut db_r, &mut app_w, &shared, Side::Db, &bytes.to_app),
            )
        } => return End::Ended(r.err()),
        c = close_when_idle(&shared, ends) => c,
    };
    let _ = app_w.write_all(&wire::fatal("57P01", closed.message(), None)).await;
    let _ = app_w.shutdown().await;
    let _ = db_w.write_all(&wire::TERMINATE).await;
    let _ = db_w.shutdown().await;
    End::Closed(closed)
}

async fn pump<R, W>(from: &mut R, to: &mut W, shared: &Shared, side: Side, bytes: &Counter) -> std::io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; BUF];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let _ = to.shutdown().await;
            return Ok(());
        }
        {
            let mut st = shared.lock();
            if st.closing {
                return Ok(());
            }
            let framer = match side {
                Side::App => &mut st.app,
                Side::Db => &mut st.db,
            };
            framer
                .feed(&buf[..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            st.writing += 1;
            st.last_byte = Instant::now();
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
        shared.lock().writing -= 1;
        shared.changed.notify_one();
        bytes.inc_by(n as u64);
    }
}

/// Waits for the deadline or the stop, then for the first idle moment; marks the session
/// closing (nothing more is forwarded) and says why.
async fn close_when_idle(shared: &Shared, ends: Ends) -> Closed {
    let deadline = async {
        match ends.deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    let reason = tokio::select! {
        () = deadline => Closed::MaxAge,
        () = ends.stop.cancelled() => Closed::Shutdown,
    };
    loop {
        let quiet_left = {
            let mut st = shared.lock();
            let silent = st.last_byte.elapsed();
            let ended_transaction = matches!(st.db.ready_before, Some(b'T' | b'E'));
            if st.idle() && (ended_transaction || silent >= QUIET) {
                st.closing = true;
                return reason;
            }
            st.idle().then(|| QUIET - silent)
        };
        match quiet_left {
            Some(wait) => {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.changed.notified() => {}
                }
            }
            None => shared.changed.notified().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn bytes() -> Bytes {
        Bytes {
            to_db: Counter::default(),
            to_app: Counter::default(),
        }
    }

    const READY_IDLE: [u8; 6] = [b'Z', 0, 0, 0, 5, b'I'];
    const READY_IN_TX: [u8; 6] = [b'Z', 0, 0, 0, 5, b'T'];

    fn query(sql: &str) -> Vec<u8> {
        let mut q = vec![b'Q'];
        q.extend(((sql.len() + 5) as u32).to_be_bytes());
        q.extend(sql.as_bytes());
        q.push(0);
        q
    }

    /// A relay between two duplex pipes, with a deadline `after` from now.
    fn start(
        after: Duration,
    ) -> (
        tokio::io::DuplexStream,
        tokio::io::DuplexStream,
        tokio::task::JoinHandle<End>,
    ) {
        let (app, app_peer) = tokio::io::duplex(1 << 16);
        let (db, db_peer) = tokio::io::duplex(1 << 16);
        let ends = Ends {
            deadline: Some(Instant::now() + after),
            stop: CancellationToken::new(),
        };
        let task = tokio::spawn(async move { relay(app_peer, db_peer, ends, &bytes()).await });
        (app, db, task)
    }

    async fn read_n(s: &mut tokio::io::DuplexStream, n: usize) -> Vec<u8> {
        let mut b = vec![0; n];
        s.read_exact(&mut b).await.unwrap();
        b
    }

    #[tokio::test]
    async fn closes_an_idle_session_at_its_deadline_with_57p01() {
        let (mut app, mut db, task) = start(Duration::from_millis(50));
        db.write_all(&READY_IDLE).await.unwrap();
        assert_eq!(read_n(&mut app, 6).await, READY_IDLE);
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Closed(Closed::MaxAge)), "{end:?}");
        let mut rest = Vec::new();
        app.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest[0], b'E');
        assert!(String::from_utf8_lossy(&rest).contains("57P01"));
        assert_eq!(read_n(&mut db, 5).await, wire::TERMINATE);
    }

    #[tokio::test]
    async fn keeps_a_session_open_past_its_deadline_until_the_transaction_ends() {
        let (mut app, mut db, task) = start(Duration::from_millis(50));
        db.write_all(&READY_IDLE).await.unwrap();
        read_n(&mut app, 6).await;
        let begin = query("BEGIN");
        app.write_all(&begin).await.unwrap();
        assert_eq!(read_n(&mut db, begin.len()).await, begin);
        db.write_all(&READY_IN_TX).await.unwrap();
        read_n(&mut app, 6).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!task.is_finished(), "closed inside a transaction");
        let select = query("SELECT 1");
        app.write_all(&select).await.unwrap();
        assert_eq!(
            read_n(&mut db, select.len()).await,
            select,
            "a query inside the transaction was not forwarded"
        );
        db.write_all(&READY_IN_TX).await.unwrap();
        read_n(&mut app, 6).await;
        assert!(!task.is_finished());
        let commit = query("COMMIT");
        app.write_all(&commit).await.unwrap();
        read_n(&mut db, commit.len()).await;
        db.write_all(&READY_IDLE).await.unwrap();
        assert_eq!(read_n(&mut app, 6).await, READY_IDLE, "the COMMIT's answer was lost");
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Closed(Closed::MaxAge)), "{end:?}");
    }

    #[tokio::test]
    async fn a_query_right_after_a_ping_is_not_cut_by_a_passed_deadline() {
        let (mut app, mut db, task) = start(Duration::from_millis(50));
        db.write_all(&READY_IDLE).await.unwrap();
        read_n(&mut app, 6).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The pool's checkout ping in autocommit: answered idle, past the deadline.
        let ping = query("SELECT 1");
        app.write_all(&ping).await.unwrap();
        assert_eq!(read_n(&mut db, ping.len()).await, ping);
        db.write_all(&READY_IDLE).await.unwrap();
        read_n(&mut app, 6).await;
        // The request's BEGIN a moment later must reach the database, not a Terminate.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let begin = query("BEGIN");
        app.write_all(&begin).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(2), read_n(&mut db, begin.len())).await;
        assert_eq!(
            got.ok(),
            Some(begin),
            "the session was closed between the ping and the request"
        );
        assert!(!task.is_finished());
    }

    #[tokio::test]
    async fn does_not_close_while_a_query_is_unanswered() {
        let (mut app, mut db, task) = start(Duration::from_millis(50));
        db.write_all(&READY_IDLE).await.unwrap();
        read_n(&mut app, 6).await;
        let q = query("SELECT pg_sleep(1)");
        app.write_all(&q).await.unwrap();
        read_n(&mut db, q.len()).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!task.is_finished(), "closed while the query ran");
        db.write_all(&READY_IDLE).await.unwrap();
        assert_eq!(read_n(&mut app, 6).await, READY_IDLE);
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Closed(Closed::MaxAge)), "{end:?}");
    }

    #[tokio::test]
    async fn ends_when_the_app_closes() {
        let (app, mut db, task) = start(Duration::from_secs(60));
        drop(app);
        let mut rest = Vec::new();
        db.read_to_end(&mut rest).await.unwrap();
        drop(db);
        let end = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(matches!(end, End::Ended(None)), "{end:?}");
    }
}
