//! The network side of a scan: connect (with the PostgreSQL SSLRequest preamble when asked),
//! send one hand-built hello, read the answer under a deadline. Only the target address is
//! ever connected to; the host name is resolved once by the caller.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::hello::{Answer, Hello, ParseError, parse_answer};

/// STARTTLS-like preambles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Starttls {
    /// PostgreSQL / CockroachDB `SSLRequest`.
    Postgres,
}

/// Why a probe got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ProbeError {
    /// TCP connect failed.
    #[error("cannot connect to {0}: {1}")]
    Connect(SocketAddr, String),
    /// Nothing (complete) arrived in time.
    #[error("timed out")]
    Timeout,
    /// The connection closed without an answer (many servers do this instead of an alert).
    #[error("connection closed without an answer")]
    Closed,
    /// The peer does not speak TLS here.
    #[error("not TLS: {0}")]
    NotTls(String),
    /// The database refused the SSLRequest.
    #[error("the server does not accept TLS after SSLRequest (answered {0:?})")]
    NoSsl(char),
}

/// Opens a TCP connection and performs the preamble.
pub(crate) async fn connect(
    addr: SocketAddr,
    starttls: Option<Starttls>,
    timeout: Duration,
) -> Result<TcpStream, ProbeError> {
    let mut tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(|e| ProbeError::Connect(addr, e.to_string()))?;
    let _ = tcp.set_nodelay(true);
    if starttls == Some(Starttls::Postgres) {
        // Int32 length 8, Int32 code 80877103: SSLRequest; the answer is one byte, 'S' or 'N'.
        let req = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];
        let mut one = [0u8; 1];
        tokio::time::timeout(timeout, async {
            tcp.write_all(&req).await?;
            tcp.read_exact(&mut one).await
        })
        .await
        .map_err(|_| ProbeError::Timeout)?
        .map_err(|_| ProbeError::Closed)?;
        if one[0] != b'S' {
            return Err(ProbeError::NoSsl(one[0] as char));
        }
    }
    Ok(tcp)
}

/// Sends `hello` and reads the answer (`full`: up to ServerHelloDone).
pub(crate) async fn probe(
    addr: SocketAddr,
    starttls: Option<Starttls>,
    hello: &Hello,
    full: bool,
    timeout: Duration,
) -> Result<Answer, ProbeError> {
    let mut tcp = connect(addr, starttls, timeout).await?;
    let record = hello.to_record(rand::random());
    let work = async {
        tcp.write_all(&record).await.map_err(|_| ProbeError::Closed)?;
        let mut buf = Vec::with_capacity(8192);
        let mut chunk = [0u8; 8192];
        loop {
            let n = tcp.read(&mut chunk).await.map_err(|_| ProbeError::Closed)?;
            if n == 0 {
                return match parse_answer(&buf, false) {
                    Ok(a) => Ok(a),
                    Err(ParseError::NotTls(why)) if !buf.is_empty() => Err(ProbeError::NotTls(why)),
                    _ => Err(ProbeError::Closed),
                };
            }
            buf.extend_from_slice(&chunk[..n]);
            match parse_answer(&buf, full) {
                Ok(a) => return Ok(a),
                Err(ParseError::Incomplete) if buf.len() < 256 * 1024 => continue,
                Err(ParseError::Incomplete) => return Err(ProbeError::NotTls("flight larger than 256 KiB".into())),
                Err(ParseError::NotTls(why)) => return Err(ProbeError::NotTls(why)),
            }
        }
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ProbeError::Timeout)?
}
