//! Remembers the first bytes a client sends, so a failed handshake can be classified by the
//! ClientHello's `legacy_version`: rustls rejects a TLS 1.0/1.1 hello for its missing
//! `signature_algorithms` before it looks at the version, but operators want a downgrade
//! attempt counted as `protocol_version`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Record header (5) + handshake header (4) + `legacy_version` (2).
const HEAD: usize = 11;

/// A stream that keeps a copy of the first [`HEAD`] bytes read from it.
pub(crate) struct FirstBytes<S> {
    inner: S,
    head: [u8; HEAD],
    len: usize,
}

impl<S> FirstBytes<S> {
    /// Wraps a stream.
    pub(crate) fn new(inner: S) -> Self {
        Self {
            inner,
            head: [0; HEAD],
            len: 0,
        }
    }

    /// The `legacy_version` of the ClientHello, if the first record was one.
    pub(crate) fn client_version(&self) -> Option<u16> {
        client_version(&self.head[..self.len])
    }
}

/// `legacy_version` of a TLS record that starts with a ClientHello.
pub(crate) fn client_version(head: &[u8]) -> Option<u16> {
    (head.len() >= HEAD && head[0] == 0x16 && head[5] == 0x01).then(|| u16::from_be_bytes([head[9], head[10]]))
}

impl<S: AsyncRead + Unpin> AsyncRead for FirstBytes<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if self.len < HEAD {
            let new = &buf.filled()[before..];
            let take = new.len().min(HEAD - self.len);
            let at = self.len;
            self.head[at..at + take].copy_from_slice(&new[..take]);
            self.len += take;
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for FirstBytes<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn reads_legacy_version_of_a_client_hello() {
        let tls10 = [0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x4c, 0x03, 0x01];
        assert_eq!(client_version(&tls10), Some(0x0301));
        assert_eq!(client_version(&tls10[..10]), None);
        assert_eq!(client_version(b"GET / HTTP/1.1\r\n"), None);
    }

    #[tokio::test]
    async fn keeps_the_head_across_short_reads() {
        let data = [
            0x16, 0x03, 0x01, 0x00, 0x50, 0x01, 0x00, 0x00, 0x4c, 0x03, 0x02, 0xaa, 0xbb,
        ];
        let (mut w, r) = tokio::io::duplex(64);
        let mut s = FirstBytes::new(r);
        for chunk in data.chunks(3) {
            tokio::io::AsyncWriteExt::write_all(&mut w, chunk).await.unwrap();
            let mut b = [0u8; 3];
            let n = s.read(&mut b).await.unwrap();
            assert_eq!(&b[..n], chunk);
        }
        assert_eq!(s.client_version(), Some(0x0302));
    }
}
