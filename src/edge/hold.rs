//! Keeps an unread request body alive until the response has been sent, then reads and
//! discards what is left of it (bounded), as nginx does.
//!
//! An answer that does not need the whole body (413, 401, 404 to a large upload) is sent
//! while the client is still uploading. Dropping the request body then resets the h2 stream
//! (the h2 crate sends CANCEL when the body goes before the response; NO_ERROR after it), and
//! curl (nghttp2) and others discard a response whose upload was reset. So the handler gets a
//! body that reads from a shared slot; when the response body is dropped (its END_STREAM
//! queued), the rest of the request is drained in the background, up to [`DRAIN_MAX`] bytes
//! within [`DRAIN_FOR`], so that the client finishes its upload and reads the answer. Past
//! either bound the stream is reset after all. On HTTP/1.1 the drain also lets the
//! connection be reused.
//!
//! A request without a body (every GET) gets an empty body, which costs no allocation (its
//! own, dropped, would be boxed for the router).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

type Slot = Arc<Mutex<Incoming>>;

/// The request body as the handler sees it: reads through the slot.
struct Lent(Slot);

impl HttpBody for Lent {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut inner = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Pin::new(&mut *inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .size_hint()
    }
}

/// The most of an unread request body that is read and discarded after the response.
const DRAIN_MAX: usize = 16 << 20;
/// How long the rest of an unread request body may take to arrive after the response.
const DRAIN_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// A response body that also holds the request body's slot until it is dropped; the drain
/// that follows is reported to the connection's activity.
struct Holding {
    inner: Body,
    request: Option<Slot>,
    activity: Arc<super::Activity>,
}

impl Drop for Holding {
    fn drop(&mut self) {
        let Some(slot) = self.request.take() else { return };
        // The handler may still hold its end (it kept the body): then it decides.
        let Ok(body) = Arc::try_unwrap(slot).map(|m| m.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner))
        else {
            return;
        };
        if body.is_end_stream() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let draining = self.activity.draining();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(DRAIN_FOR, drain(body)).await;
            drop(draining);
        });
    }
}

/// Reads and discards up to [`DRAIN_MAX`] bytes of `body`.
async fn drain(mut body: Incoming) {
    use http_body_util::BodyExt;
    let mut seen = 0usize;
    while let Some(Ok(frame)) = body.frame().await {
        seen += frame.data_ref().map_or(0, Bytes::len);
        if seen > DRAIN_MAX {
            return;
        }
    }
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The request for the router, and the slot to hand to [`release_with`] (none for a request
/// without a body).
pub(super) fn lend(req: hyper::Request<Incoming>) -> (hyper::Request<Body>, Option<Slot>) {
    if req.body().is_end_stream() {
        return (req.map(|_| Body::empty()), None);
    }
    let (parts, body) = req.into_parts();
    let slot = Arc::new(Mutex::new(body));
    (
        hyper::Request::from_parts(parts, Body::new(Lent(slot.clone()))),
        Some(slot),
    )
}

/// The response, holding `slot` until its body is dropped; then the rest of the request
/// body is drained, `activity` knowing it.
pub(super) fn release_with(
    resp: axum::response::Response,
    slot: Option<Slot>,
    activity: Arc<super::Activity>,
) -> axum::response::Response {
    match slot {
        None => resp,
        Some(slot) => resp.map(|inner| {
            Body::new(Holding {
                inner,
                request: Some(slot),
                activity,
            })
        }),
    }
}
