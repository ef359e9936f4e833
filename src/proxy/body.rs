//! Body types: one boxed body for everything the proxy sends, and a length limit that is
//! enforced while the body streams (a chunked upload has no length to check up front).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of every request sent upstream and every response sent to a client.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body held in memory (gateway-made responses: errors, health, metrics).
pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn empty() -> ProxyBody {
    full(Bytes::new())
}

/// Boxes a streaming body such as hyper's `Incoming`.
pub fn streaming<B>(body: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    body.map_err(Into::into).boxed()
}

/// The error a [`LimitedBody`] yields once more than its limit has been read.
#[derive(Debug, thiserror::Error)]
#[error("the request body is larger than {limit} bytes")]
pub struct BodyTooLarge {
    pub limit: u64,
}

impl BodyTooLarge {
    /// Whether `error` or one of its causes is a [`BodyTooLarge`].
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> Option<u64> {
        let mut current = Some(error);
        while let Some(err) = current {
            if let Some(too_large) = err.downcast_ref::<BodyTooLarge>() {
                return Some(too_large.limit);
            }
            current = err.source();
        }
        None
    }
}

/// The error a [`TimedBody`] yields when nothing arrived for its timeout.
#[derive(Debug, thiserror::Error)]
#[error("no part of the request body arrived for {0:?}")]
pub struct BodyTimeout(pub Duration);

impl BodyTimeout {
    /// Whether `error` or one of its causes is a [`BodyTimeout`].
    pub fn caused(error: &(dyn std::error::Error + 'static)) -> bool {
        std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<BodyTimeout>())
    }
}

pin_project_lite::pin_project! {
    /// Passes frames through and fails when none arrives for `timeout` (a client trickling
    /// a body, or stalling it, to hold a connection and a request slot: slowloris).
    pub struct TimedBody<B> {
        #[pin]
        inner: B,
        // Set only once the body has to be waited for: a body that is already there (or
        // empty, as for most requests) costs no clock read and no timer.
        #[pin]
        deadline: Option<tokio::time::Sleep>,
        // A frame came since the deadline was set, so the next wait starts a new one.
        moved: bool,
        timeout: Duration,
    }
}

impl<B> TimedBody<B> {
    pub fn new(inner: B, timeout: Duration) -> Self {
        TimedBody {
            inner,
            deadline: None,
            moved: false,
            timeout,
        }
    }
}

impl<B> Body for TimedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            *this.moved = true;
            return Poll::Ready(frame.map(|result| result.map_err(Into::into)));
        }
        let timeout = *this.timeout;
        match this.deadline.as_mut().as_pin_mut() {
            None => this.deadline.set(Some(tokio::time::sleep(timeout))),
            Some(deadline) if *this.moved => deadline.reset(tokio::time::Instant::now() + timeout),
            Some(_) => {}
        }
        *this.moved = false;
        match this.deadline.as_pin_mut().map(|deadline| deadline.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Some(Err(Box::new(BodyTimeout(timeout))))),
            _ => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// How much of a refused request's body [`discard_unread`] reads, and for how long at most.
const DISCARD_LIMIT: u64 = 256 * 1024;
const DISCARD_TIME: Duration = Duration::from_secs(1);

/// Reads and throws away what a client is still sending of a request body that will not be
/// forwarded, before the gateway answers (at most 256 KiB, for at most a second), as nginx
/// discards the body of a request it refuses. The client then
/// reads the answer once it has sent its request: over HTTP/1.1 the connection stays
/// usable, where unread bytes would have cost it (or reset it under the answer); over
/// HTTP/2 the stream ends cleanly, where an answer that overtook the body came with a
/// stream reset, which curl before 8.1 reports as an empty reply. A client that sent
/// `Expect: 100-continue` is waiting to hear whether to send its body, and is answered at
/// once.
pub async fn discard_unread<B>(request: http::Request<B>)
where
    B: Body,
{
    let (parts, body) = request.into_parts();
    if body.is_end_stream() || parts.headers.contains_key(http::header::EXPECT) {
        return;
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut left = DISCARD_LIMIT;
        while let Some(Ok(frame)) = body.frame().await {
            let len = frame.data_ref().map_or(0, |data| data.remaining() as u64);
            let Some(rest) = left.checked_sub(len) else {
                return;
            };
            left = rest;
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, read).await;
}

/// Why a body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadError {
    TooLarge { limit: u64 },
    TimedOut,
    Failed,
}

/// Reads a whole body of at most `limit` bytes (for the field rules, which need all of it).
pub async fn read_whole<B>(body: B, limit: u64) -> Result<Bytes, ReadError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    use http_body_util::BodyExt;
    let mut body = Box::pin(body);
    let mut collected = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(err) => {
                let err: BoxError = err.into();
                return Err(if BodyTimeout::caused(err.as_ref()) {
                    ReadError::TimedOut
                } else {
                    ReadError::Failed
                });
            }
        };
        if let Ok(data) = frame.into_data() {
            if (collected.len() + data.len()) as u64 > limit {
                return Err(ReadError::TooLarge { limit });
            }
            collected.extend_from_slice(&data);
        }
    }
    Ok(collected.freeze())
}

pin_project_lite::pin_project! {
    /// Passes frames through and fails once their data exceeds `limit` bytes.
    pub struct LimitedBody<B> {
        #[pin]
        inner: B,
        remaining: u64,
        limit: u64,
    }
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: u64) -> Self {
        LimitedBody {
            inner,
            remaining: limit,
            limit,
        }
    }
}

impl<B> Body for LimitedBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let len = data.len() as u64;
                    if len > *this.remaining {
                        return Poll::Ready(Some(Err(Box::new(BodyTooLarge {
                            limit: *this.limit,
                        }))));
                    }
                    *this.remaining -= len;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(err))) => Poll::Ready(Some(Err(err.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::{BodyExt, StreamBody};

    use super::{BodyTimeout, BoxError, TimedBody};

    /// A body whose frames arrive after the given waits, then ends.
    fn arriving_after(
        waits: &[u64],
    ) -> StreamBody<impl futures_util::Stream<Item = Result<Frame<Bytes>, BoxError>>> {
        let waits: Vec<u64> = waits.to_vec();
        StreamBody::new(futures_util::stream::unfold(
            waits.into_iter(),
            |mut waits| async move {
                let wait = waits.next()?;
                tokio::time::sleep(Duration::from_millis(wait)).await;
                Some((Ok(Frame::data(Bytes::from_static(b"x"))), waits))
            },
        ))
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_keeps_arriving_is_not_cut_however_long_it_takes() {
        let body = TimedBody::new(
            arriving_after(&[900, 900, 900, 900, 0]),
            Duration::from_secs(1),
        );
        let whole = body.collect().await.unwrap().to_bytes();
        assert_eq!(whole, "xxxxx");
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_after_the_timeout() {
        let started = tokio::time::Instant::now();
        let body = TimedBody::new(arriving_after(&[900, 900, 1100]), Duration::from_secs(1));
        let err = body.collect().await.unwrap_err();
        assert!(BodyTimeout::caused(err.as_ref()), "{err}");
        assert_eq!(started.elapsed(), Duration::from_millis(2800));
    }
}
