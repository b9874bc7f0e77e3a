//! A TLS 1.0–1.2 client on the system's OpenSSL, for the scanner checks that need a
//! *completed* legacy handshake — the ones rustls cannot make because it speaks TLS 1.2 with
//! AEAD suites and TLS 1.3 only: client-initiated renegotiation, and `GET /` (HSTS) on a
//! server that offers only CBC, DHE or other legacy suites.
//!
//! It is a separate crate because asking OpenSSL to renegotiate needs one FFI call
//! (`SSL_renegotiate`, which the `openssl` crate does not wrap), kept apart from `tlsward`,
//! which denies `unsafe` everywhere but its one `malloc_trim` call (`src/edge/trim.rs`). The client never verifies the peer: it probes, it does not trust.

#![warn(unreachable_pub)]

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use foreign_types::ForeignTypeRef;
use openssl::ssl::{
    ErrorCode, HandshakeError, Ssl, SslContext, SslMethod, SslOptions, SslStream, SslVerifyMode, SslVersion,
};

unsafe extern "C" {
    // int SSL_renegotiate(SSL *s); in libssl since 0.9.
    fn SSL_renegotiate(s: *mut openssl_sys::SSL) -> libc::c_int;
}

/// Where to connect and how long to wait for each step.
#[derive(Debug, Clone)]
pub struct Target {
    /// The address.
    pub addr: SocketAddr,
    /// The SNI name (not sent when it is an IP address).
    pub sni: String,
    /// Limit on the connect and on each read or write.
    pub timeout: Duration,
    /// Bytes exchanged in clear before the handshake: the PostgreSQL `SSLRequest`, answered `S`.
    pub postgres_starttls: bool,
}

/// Why a legacy handshake or check did not complete.
#[derive(Debug)]
pub enum Error {
    /// Nothing came back within the time limit (a stalled or filtered peer).
    NoAnswer(String),
    /// The peer or this OpenSSL refused or broke the exchange.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoAnswer(s) | Error::Failed(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

/// What the server did with a renegotiation the client started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Renegotiation {
    /// It completed the second handshake.
    Accepted,
    /// It refused: an alert (`no_renegotiation`, …) or a closed connection; the reason says which.
    Refused(String),
}

/// A completed TLS ≤ 1.2 session.
pub struct Session {
    stream: SslStream<Wire>,
}

/// The TCP stream under OpenSSL, which can watch what the server sends after the client's
/// renegotiation ClientHello. A TLS ≤ 1.2 record header shows its content type even when
/// the record is encrypted, so the first one the server sends back says what it did:
/// `handshake` (a ServerHello: it renegotiates) or `alert` (it refuses). Once that ClientHello
/// is flushed the client half-closes the connection: a server that would otherwise leave the
/// request unanswered until it next writes (rustls under tokio-rustls queues its
/// `no_renegotiation` warning) then answers or closes, instead of stalling the check.
struct Wire {
    tcp: TcpStream,
    watch: Option<Watch>,
}

#[derive(Default)]
struct Watch {
    /// Bytes written since the watch began (the renegotiation ClientHello).
    written: usize,
    /// Bytes of the current record header seen so far, and the body bytes still to skip.
    header: Vec<u8>,
    body_left: usize,
    /// The content type of the first record back that is not application data.
    first: Option<u8>,
    /// The server closed its side.
    eof: bool,
}

impl Watch {
    fn observe(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(bytes.len());
                self.body_left -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (5 - self.header.len()).min(bytes.len());
            self.header.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if self.header.len() == 5 {
                let kind = self.header[0];
                if kind != 0x17 && self.first.is_none() {
                    self.first = Some(kind);
                }
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                self.header.clear();
            }
        }
    }
}

impl Read for Wire {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.tcp.read(buf)?;
        if let Some(w) = &mut self.watch {
            if n == 0 {
                w.eof = true;
            }
            w.observe(&buf[..n]);
        }
        Ok(n)
    }
}

impl Write for Wire {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.tcp.write(buf)?;
        if let Some(w) = &mut self.watch {
            w.written += n;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.tcp.flush()?;
        if let Some(w) = &self.watch
            && w.written > 0
        {
            // The ClientHello is out: half-close so that the server answers now or closes.
            let _ = self.tcp.shutdown(std::net::Shutdown::Write);
        }
        Ok(())
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("protocol", &self.protocol())
            .field("cipher", &self.cipher())
            .finish()
    }
}

/// Whether this OpenSSL can make a handshake at `version` (`"TLSv1"`, `"TLSv1.1"`, `"TLSv1.2"`).
pub fn supports(version: &str) -> bool {
    proto(version).is_some()
}

fn proto(version: &str) -> Option<SslVersion> {
    match version {
        "TLSv1.0" | "TLSv1" => Some(SslVersion::TLS1),
        "TLSv1.1" => Some(SslVersion::TLS1_1),
        "TLSv1.2" => Some(SslVersion::TLS1_2),
        _ => None,
    }
}

/// Every suite this OpenSSL has, every TLS ≤ 1.2 version, no verification, and the options
/// that let it talk to (and renegotiate with) servers that predate RFC 5746.
fn context() -> Result<SslContext, Error> {
    let failed = |e: openssl::error::ErrorStack| Error::Failed(format!("OpenSSL set-up: {e}"));
    // RC4 and other retired ciphers live in OpenSSL 3's legacy provider; without it those
    // suites are simply not offered.
    if let Ok(p) = openssl::provider::Provider::try_load(None, "legacy", true) {
        std::mem::forget(p);
    }
    let mut b = SslContext::builder(SslMethod::tls_client()).map_err(failed)?;
    b.set_verify(SslVerifyMode::NONE);
    b.set_security_level(0);
    b.set_cipher_list("ALL:COMPLEMENTOFALL:@SECLEVEL=0").map_err(failed)?;
    b.set_min_proto_version(Some(SslVersion::TLS1)).map_err(failed)?;
    b.set_max_proto_version(Some(SslVersion::TLS1_2)).map_err(failed)?;
    b.set_options(
        SslOptions::ALLOW_UNSAFE_LEGACY_RENEGOTIATION
            | SslOptions::from_bits_retain(openssl_sys::SSL_OP_LEGACY_SERVER_CONNECT as _),
    );
    b.clear_options(SslOptions::NO_RENEGOTIATION);
    Ok(b.build())
}

/// A socket read or write that ran into its time limit (`WouldBlock` on a blocking socket
/// with a timeout, `TimedOut` elsewhere).
fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
}

fn no_answer(what: &str) -> Error {
    Error::NoAnswer(format!("{what}: no answer in time"))
}

fn io_error(what: &str, e: io::Error) -> Error {
    if timed_out(&e) {
        no_answer(what)
    } else {
        Error::Failed(format!("{what}: {e}"))
    }
}

fn tcp(target: &Target) -> Result<TcpStream, Error> {
    let mut s = TcpStream::connect_timeout(&target.addr, target.timeout).map_err(|e| io_error("connect", e))?;
    s.set_read_timeout(Some(target.timeout))
        .map_err(|e| io_error("connect", e))?;
    s.set_write_timeout(Some(target.timeout))
        .map_err(|e| io_error("connect", e))?;
    s.set_nodelay(true).map_err(|e| io_error("connect", e))?;
    if target.postgres_starttls {
        // SSLRequest: length 8, code 80877103.
        s.write_all(&[0, 0, 0, 8, 4, 210, 22, 47])
            .map_err(|e| io_error("SSLRequest", e))?;
        let mut answer = [0u8; 1];
        s.read_exact(&mut answer).map_err(|e| io_error("SSLRequest", e))?;
        if answer[0] != b'S' {
            return Err(Error::Failed(format!(
                "the server answered the SSLRequest with {:?}, not S",
                answer[0] as char
            )));
        }
    }
    Ok(s)
}

/// Connects and completes a TLS 1.0–1.2 handshake with whatever suite the server picks.
pub fn connect(target: &Target) -> Result<Session, Error> {
    let ctx = context()?;
    let mut ssl = Ssl::new(&ctx).map_err(|e| Error::Failed(format!("OpenSSL set-up: {e}")))?;
    if target.sni.parse::<IpAddr>().is_err() {
        ssl.set_hostname(&target.sni)
            .map_err(|e| Error::Failed(format!("SNI {}: {e}", target.sni)))?;
    }
    let wire = Wire {
        tcp: tcp(target)?,
        watch: None,
    };
    match ssl.connect(wire) {
        Ok(stream) => Ok(Session { stream }),
        Err(HandshakeError::Failure(m)) => Err(classify("handshake", m.into_error())),
        Err(HandshakeError::WouldBlock(_)) => Err(no_answer("handshake")),
        Err(HandshakeError::SetupFailure(e)) => Err(Error::Failed(format!("OpenSSL set-up: {e}"))),
    }
}

/// An OpenSSL error as a reason: a time-out is no answer; everything else is a failure with
/// OpenSSL's words (an alert's name, `unexpected eof`, …).
fn classify(what: &str, e: openssl::ssl::Error) -> Error {
    if e.io_error().is_some_and(timed_out) || e.code() == ErrorCode::WANT_READ || e.code() == ErrorCode::WANT_WRITE {
        return no_answer(what);
    }
    if e.code() == ErrorCode::ZERO_RETURN {
        return Error::Failed(format!("{what}: the server closed the connection (close_notify)"));
    }
    match (e.ssl_error(), e.io_error()) {
        (Some(stack), _) => Error::Failed(format!("{what}: {}", reasons(stack))),
        (None, Some(io)) => Error::Failed(format!("{what}: {io}")),
        (None, None) => Error::Failed(format!("{what}: the server closed the connection")),
    }
}

fn reasons(stack: &openssl::error::ErrorStack) -> String {
    let list: Vec<String> = stack
        .errors()
        .iter()
        .map(|e| e.reason().unwrap_or("unknown OpenSSL error").to_string())
        .collect();
    if list.is_empty() {
        "unknown OpenSSL error".into()
    } else {
        list.join("; ")
    }
}

impl Session {
    /// The negotiated protocol (`TLSv1.2`, …).
    pub fn protocol(&self) -> &'static str {
        self.stream.ssl().version_str()
    }

    /// The negotiated suite, in OpenSSL's name.
    pub fn cipher(&self) -> Option<&'static str> {
        self.stream.ssl().current_cipher().map(|c| c.name())
    }

    /// Sends `GET /` for `host` and returns the response head (up to the blank line, or what
    /// came before the server closed; at most 64 KiB).
    pub fn get_root(&mut self, host: &str) -> Result<Vec<u8>, Error> {
        let request =
            format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: tlsward-scan\r\nConnection: close\r\n\r\n");
        self.stream
            .ssl_write(request.as_bytes())
            .map_err(|e| classify("GET /", e))?;
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65_536 {
            match self.stream.ssl_read(&mut buf) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&buf[..n]),
                Err(e) if e.code() == ErrorCode::ZERO_RETURN => break,
                Err(e) if head.is_empty() => return Err(classify("GET /", e)),
                Err(_) => break,
            }
        }
        Ok(head)
    }

    /// Starts a renegotiation from the client side and reports what the server did with it:
    /// the first record it sends back after the ClientHello (see [`Wire`]).
    pub fn renegotiate(mut self) -> Result<Renegotiation, Error> {
        self.stream.get_mut().watch = Some(Watch::default());
        // SAFETY: `as_ptr` is the live SSL* owned by `self.stream`, which outlives the call;
        // SSL_renegotiate only marks the connection for a new handshake.
        let marked = unsafe { SSL_renegotiate(self.stream.ssl().as_ptr()) };
        if marked != 1 {
            let stack = openssl::error::ErrorStack::get();
            return Err(Error::Failed(format!(
                "this OpenSSL will not renegotiate: {}",
                reasons(&stack)
            )));
        }
        let result = self.stream.do_handshake();
        let watch = self.stream.get_mut().watch.take().unwrap_or_default();
        let why = |result: Result<(), openssl::ssl::Error>| match result {
            Ok(()) => String::new(),
            Err(e) => format!(" ({})", classify("renegotiation", e)),
        };
        match watch.first {
            Some(0x16) => Ok(Renegotiation::Accepted),
            Some(0x15) => Ok(Renegotiation::Refused(format!(
                "the server answered with an alert{}",
                why(result)
            ))),
            Some(t) => Ok(Renegotiation::Refused(format!(
                "the server answered with a record of type {t}"
            ))),
            None if watch.eof => Ok(Renegotiation::Refused("the server closed the connection".into())),
            None => match result.map_err(|e| classify("renegotiation", e)) {
                Err(Error::NoAnswer(r)) => Err(Error::NoAnswer(r)),
                Err(Error::Failed(r)) => Ok(Renegotiation::Refused(r)),
                Ok(()) => Ok(Renegotiation::Accepted),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Watch;

    #[test]
    fn the_first_record_back_that_is_not_application_data_is_what_the_server_did() {
        let mut w = Watch::default();
        // An application-data record (type 23, 3 bytes), then an alert (type 21), split
        // across reads in the middle of the header.
        w.observe(&[23, 3, 3, 0, 3, 1, 2, 3, 21, 3]);
        assert_eq!(w.first, None);
        w.observe(&[3, 0, 2, 1, 100]);
        assert_eq!(w.first, Some(21));
        w.observe(&[22, 3, 3, 0, 1, 0]);
        assert_eq!(w.first, Some(21), "only the first one counts");
    }

    #[test]
    fn a_handshake_record_is_seen_through_a_long_body() {
        let mut w = Watch::default();
        let mut bytes = vec![23, 3, 3, 1, 0];
        bytes.extend([0u8; 256]);
        bytes.extend([22, 3, 3, 0, 4]);
        w.observe(&bytes);
        assert_eq!(w.first, Some(22));
    }
}
