//! The PostgreSQL wire protocol as far as the database proxy needs it: the packets a client
//! sends before it is authenticated (SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage), the ErrorResponse the proxy answers with, and [`Framer`], which follows
//! the message boundaries of one direction of a session without buffering the messages.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The request code of SSLRequest.
pub(crate) const SSL_REQUEST: u32 = 80_877_103;
/// The request code of GSSENCRequest.
const GSSENC_REQUEST: u32 = 80_877_104;
/// The request code of CancelRequest.
const CANCEL_REQUEST: u32 = 80_877_102;
/// Largest start-up packet accepted (PostgreSQL's `MAX_STARTUP_PACKET_LENGTH`).
const MAX_STARTUP: usize = 10_000;
/// SSLRequest then GSSENCRequest (or the reverse) is the most a client asks before starting.
const MAX_NEGOTIATIONS: usize = 2;

/// What a client opened its connection with.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum First {
    /// A session: the StartupMessage.
    Startup(Startup),
    /// A CancelRequest: the whole 16-byte packet, to forward as it is.
    Cancel(Vec<u8>),
}

/// A StartupMessage: its protocol version and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Startup {
    /// `major << 16 | minor` (3.0 is 196608).
    pub version: u32,
    /// The parameters in the order sent (`user`, `database`, `options`, …).
    pub params: Vec<(String, String)>,
}

/// Why a client's first packets were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StartupError {
    /// The connection failed or closed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client began a TLS handshake instead of a PostgreSQL packet.
    #[error(
        "the client started TLS directly (sslnegotiation=direct); the proxy's socket is plain inside the pod: connect with sslmode=disable or prefer"
    )]
    DirectTls,
    /// A length outside 8..=10000.
    #[error("a start-up packet of {0} bytes (8 to 10000 allowed)")]
    Length(usize),
    /// A code that is neither a request nor protocol 3.
    #[error("unsupported protocol or request code {0} (protocol 3 is spoken)")]
    Unsupported(u32),
    /// More SSL/GSS requests than a client sends.
    #[error("more than {MAX_NEGOTIATIONS} SSL/GSSAPI encryption requests")]
    Negotiations,
    /// Parameters that are not NUL-terminated UTF-8 name/value pairs.
    #[error("a malformed StartupMessage: {0}")]
    Malformed(&'static str),
}

impl StartupError {
    /// The SQLSTATE the client is answered with (none when it cannot read an answer).
    pub(crate) fn sqlstate(&self) -> Option<&'static str> {
        match self {
            Self::Io(_) | Self::DirectTls => None,
            Self::Unsupported(_) => Some("0A000"),
            _ => Some("08P01"),
        }
    }
}

/// Reads the client's first packets: answers SSLRequest and GSSENCRequest with `N` (the hop
/// to the proxy is inside the pod; the hop to the database is the one that is encrypted) and
/// returns the StartupMessage or CancelRequest that follows.
pub(crate) async fn read_first<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> Result<First, StartupError> {
    for _ in 0..=MAX_NEGOTIATIONS {
        let mut head = [0u8; 8];
        s.read_exact(&mut head).await?;
        if head[0] == 0x16 {
            return Err(StartupError::DirectTls);
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let code = u32::from_be_bytes([head[4], head[5], head[6], head[7]]);
        if !(8..=MAX_STARTUP).contains(&len) {
            return Err(StartupError::Length(len));
        }
        let mut body = vec![0; len - 8];
        s.read_exact(&mut body).await?;
        match code {
            SSL_REQUEST | GSSENC_REQUEST if body.is_empty() => s.write_all(b"N").await?,
            CANCEL_REQUEST if body.len() == 8 => return Ok(First::Cancel([&head[..], &body].concat())),
            v if v >> 16 == 3 => {
                return Ok(First::Startup(Startup {
                    version: v,
                    params: parse_params(&body)?,
                }));
            }
            other => return Err(StartupError::Unsupported(other)),
        }
    }
    Err(StartupError::Negotiations)
}

fn parse_params(body: &[u8]) -> Result<Vec<(String, String)>, StartupError> {
    let Some(rest) = body.strip_suffix(&[0]) else {
        return Err(StartupError::Malformed("no terminating NUL"));
    };
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let Some(rest) = rest.strip_suffix(&[0]) else {
        return Err(StartupError::Malformed("a value without its NUL"));
    };
    let mut fields = rest.split(|b| *b == 0);
    let mut out = Vec::new();
    while let Some(name) = fields.next() {
        let value = fields
            .next()
            .ok_or(StartupError::Malformed("a parameter without a value"))?;
        let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| StartupError::Malformed("not UTF-8"));
        if name.is_empty() {
            return Err(StartupError::Malformed("an empty parameter name"));
        }
        out.push((text(name)?, text(value)?));
    }
    Ok(out)
}

impl Startup {
    /// The value of parameter `name`.
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Sets `name` unless the client sent it.
    pub(crate) fn default_param(&mut self, name: &str, value: &str) {
        if self.param(name).is_none() {
            self.params.push((name.into(), value.into()));
        }
    }

    /// The packet as it goes to the database.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = self.version.to_be_bytes().to_vec();
        for (k, v) in &self.params {
            for s in [k, v] {
                body.extend_from_slice(s.as_bytes());
                body.push(0);
            }
        }
        body.push(0);
        let mut out = ((body.len() + 4) as u32).to_be_bytes().to_vec();
        out.extend(body);
        out
    }
}

/// The SSLRequest packet.
pub(crate) fn ssl_request() -> [u8; 8] {
    let mut p = [0u8; 8];
    p[..4].copy_from_slice(&8u32.to_be_bytes());
    p[4..].copy_from_slice(&SSL_REQUEST.to_be_bytes());
    p
}

/// The Terminate message.
pub(crate) const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// A FATAL ErrorResponse with SQLSTATE `code`, `message` and an optional `hint`.
pub(crate) fn fatal(code: &str, message: &str, hint: Option<&str>) -> Vec<u8> {
    let mut body = Vec::new();
    let mut field = |tag: u8, value: &str| {
        body.push(tag);
        body.extend(value.bytes().filter(|b| *b != 0));
        body.push(0);
    };
    field(b'S', "FATAL");
    field(b'V', "FATAL");
    field(b'C', code);
    field(b'M', message);
    if let Some(h) = hint {
        field(b'H', h);
    }
    body.push(0);
    let mut out = vec![b'E'];
    out.extend(((body.len() + 4) as u32).to_be_bytes());
    out.extend(body);
    out
}

/// Follows the message boundaries of one direction of a session (after the StartupMessage,
/// every message is a type byte and a length), counting the messages of some types and
/// keeping the status of the last ReadyForQuery.
#[derive(Debug)]
pub(crate) struct Framer {
    counted: &'static [u8],
    head: [u8; 5],
    have: usize,
    left: usize,
    kind: u8,
    /// Messages of the counted types begun so far.
    pub count: u64,
    /// The status byte of the last ReadyForQuery (`I` idle, `T` in a transaction, `E` failed one).
    pub ready_status: Option<u8>,
    /// The status of the ReadyForQuery before it.
    pub ready_before: Option<u8>,
}

/// The messages after each of which the server sends one ReadyForQuery: Query, Sync,
/// FunctionCall.
pub(crate) const ANSWERED_BY_READY: &[u8] = b"QSF";
/// ReadyForQuery.
pub(crate) const READY: &[u8] = b"Z";

impl Framer {
    /// A framer that counts the messages whose type is in `counted`.
    pub(crate) fn new(counted: &'static [u8]) -> Self {
        Self {
            counted,
            head: [0; 5],
            have: 0,
            left: 0,
            kind: 0,
            count: 0,
            ready_status: None,
            ready_before: None,
        }
    }

    /// Whether the bytes fed so far end at a message boundary.
    pub(crate) fn at_boundary(&self) -> bool {
        self.have == 0 && self.left == 0
    }

    /// Follows `buf`, the next bytes of the stream. A length below 4 is a protocol error.
    pub(crate) fn feed(&mut self, mut buf: &[u8]) -> Result<(), &'static str> {
        while !buf.is_empty() {
            if self.left > 0 {
                let n = self.left.min(buf.len());
                if self.kind == b'Z' && self.left == 1 {
                    self.ready_before = self.ready_status.replace(buf[0]);
                }
                self.left -= n;
                buf = &buf[n..];
                continue;
            }
            let n = (5 - self.have).min(buf.len());
            self.head[self.have..self.have + n].copy_from_slice(&buf[..n]);
            self.have += n;
            buf = &buf[n..];
            if self.have == 5 {
                self.begin()?;
            }
        }
        Ok(())
    }

    fn begin(&mut self) -> Result<(), &'static str> {
        let len = u32::from_be_bytes([self.head[1], self.head[2], self.head[3], self.head[4]]) as usize;
        if len < 4 {
            return Err("a message length below 4");
        }
        self.kind = self.head[0];
        self.have = 0;
        self.left = len - 4;
        if self.counted.contains(&self.kind) {
            self.count += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(code: u32, body: &[u8]) -> Vec<u8> {
        let mut p = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        p.extend(code.to_be_bytes());
        p.extend(body);
        p
    }

    async fn first(input: Vec<u8>) -> (Result<First, StartupError>, Vec<u8>) {
        let (mut a, mut b) = tokio::io::duplex(1 << 16);
        b.write_all(&input).await.unwrap();
        let r = read_first(&mut a).await;
        drop(a);
        let mut answered = Vec::new();
        b.read_to_end(&mut answered).await.unwrap();
        (r, answered)
    }

    #[tokio::test]
    async fn answers_ssl_and_gss_requests_with_n_then_reads_the_startup() {
        let startup = Startup {
            version: 196_608,
            params: vec![("user".into(), "app".into()), ("database".into(), "app".into())],
        };
        let mut input = packet(SSL_REQUEST, &[]);
        input.extend(packet(GSSENC_REQUEST, &[]));
        input.extend(startup.encode());
        let (r, answered) = first(input).await;
        assert_eq!(r.unwrap(), First::Startup(startup));
        assert_eq!(answered, b"NN");
    }

    #[tokio::test]
    async fn returns_a_cancel_request_whole() {
        let cancel = packet(CANCEL_REQUEST, &[0, 0, 0, 7, 1, 2, 3, 4]);
        let (r, _) = first(cancel.clone()).await;
        assert_eq!(r.unwrap(), First::Cancel(cancel));
    }

    #[tokio::test]
    async fn refuses_direct_tls_oversized_and_unknown_packets() {
        let (r, _) = first(vec![0x16, 3, 1, 0, 200, 1, 0, 0]).await;
        assert!(matches!(r, Err(StartupError::DirectTls)), "{r:?}");
        let (r, _) = first(packet(196_608, &[b'x'; 10_000])).await;
        assert!(matches!(r, Err(StartupError::Length(10_008))), "{r:?}");
        let (r, _) = first(packet(0x0002_0000, b"user\0app\0\0")).await;
        assert!(matches!(r, Err(StartupError::Unsupported(0x0002_0000))), "{r:?}");
        let mut three = packet(SSL_REQUEST, &[]).repeat(3);
        three.extend(packet(196_608, b"\0"));
        let (r, _) = first(three).await;
        assert!(matches!(r, Err(StartupError::Negotiations)), "{r:?}");
    }

    #[tokio::test]
    async fn refuses_malformed_parameters() {
        for body in [&b"user\0app"[..], b"user\0\0", b"\0app\0\0", b"user\0\xff\0\0"] {
            let (r, _) = first(packet(196_608, body)).await;
            assert!(matches!(r, Err(StartupError::Malformed(_))), "{body:?}: {r:?}");
        }
    }

    #[test]
    fn default_param_keeps_what_the_client_sent() {
        let mut s = Startup {
            version: 196_608,
            params: vec![("options".into(), "-c a=b".into())],
        };
        s.default_param("options", "--cluster=x");
        s.default_param("application_name", "tlsward");
        assert_eq!(s.param("options"), Some("-c a=b"));
        assert_eq!(s.param("application_name"), Some("tlsward"));
    }

    #[test]
    fn fatal_is_one_error_response_with_its_fields() {
        let e = fatal("28000", "no\0pe", Some("fix"));
        assert_eq!(e[0], b'E');
        assert_eq!(u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize, e.len() - 1);
        assert_eq!(&e[5..], b"SFATAL\0VFATAL\0C28000\0Mnope\0Hfix\0\0");
    }

    #[test]
    fn framer_tracks_ready_for_query_across_split_chunks() {
        let mut f = Framer::new(READY);
        // ParameterStatus, then ReadyForQuery 'T', fed one byte at a time.
        let mut stream = vec![b'S', 0, 0, 0, 8, b'a', 0, b'b', 0];
        stream.extend([b'Z', 0, 0, 0, 5, b'T']);
        for b in &stream {
            f.feed(std::slice::from_ref(b)).unwrap();
        }
        assert_eq!((f.count, f.ready_status, f.at_boundary()), (1, Some(b'T'), true));
        f.feed(&[b'Z', 0, 0, 0, 5]).unwrap();
        assert!(!f.at_boundary());
        f.feed(b"I").unwrap();
        assert_eq!((f.count, f.ready_status, f.at_boundary()), (2, Some(b'I'), true));
    }

    #[test]
    fn framer_counts_the_messages_answered_by_ready() {
        let mut f = Framer::new(ANSWERED_BY_READY);
        // Parse, Bind, Execute, Sync, then a simple Query.
        let mut s = Vec::new();
        for kind in [b'P', b'B', b'E'] {
            s.extend([kind, 0, 0, 0, 6, 1, 2]);
        }
        s.extend([b'S', 0, 0, 0, 4, b'Q', 0, 0, 0, 5, 0]);
        f.feed(&s).unwrap();
        assert_eq!((f.count, f.at_boundary()), (2, true));
        assert!(Framer::new(READY).feed(&[b'Z', 0, 0, 0, 3]).is_err());
    }
}
