//! Connection activity: whether bytes moved and how many requests are in flight, so an
//! idle keep-alive or WebSocket connection can be closed without cutting a slow request.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Reads and writes count their moves rather than note the time: a clock read on every read
/// and write of every connection showed in the profiles. A watch samples the count instead.
pub struct Activity {
    moves: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            moves: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request as being handled until the guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Completes once no bytes have moved for `timeout` while no request was in flight. The
    /// count is sampled every eighth of `timeout` (at least every 50 ms), so the connection is
    /// closed between `timeout` and an eighth more after it fell quiet. Several watches may
    /// share one connection's activity (a WebSocket relay and its connection): each keeps the
    /// count it saw last.
    pub async fn idle_expired(&self, timeout: Duration) {
        let step = (timeout / 8).max(Duration::from_millis(50));
        let mut seen = self.moves.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(step.min(timeout)).await;
            let moves = self.moves.load(Ordering::Relaxed);
            if moves != seen || self.in_flight.load(Ordering::Relaxed) > 0 {
                seen = moves;
                quiet_since = Instant::now();
            } else if quiet_since.elapsed() >= timeout {
                return;
            }
        }
    }
}

/// Held while a request is in flight; see [`Activity::request_started`].
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

pin_project_lite::pin_project! {
    /// An I/O stream that records activity on every read or write that moves bytes.
    pub struct ActivityIo<T> {
        #[pin]
        inner: T,
        activity: Arc<Activity>,
    }
}

impl<T> ActivityIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>) -> Self {
        ActivityIo { inner, activity }
    }
}

impl<T: AsyncRead> AsyncRead for ActivityIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let result = this.inner.poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.touch();
        }
        result
    }
}

impl<T: AsyncWrite> AsyncWrite for ActivityIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let result = this.inner.poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            this.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(8);

    /// Drives `watch` for `span`, calling `during` every second; fails if it completes.
    async fn survives(
        watch: &mut Pin<&mut impl std::future::Future<Output = ()>>,
        span: Duration,
        during: impl Fn(),
    ) {
        let end = Instant::now() + span;
        while Instant::now() < end {
            tokio::select! {
                () = watch.as_mut() => panic!("the idle watch completed on a busy connection"),
                () = tokio::time::sleep(Duration::from_secs(1)) => during(),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_expires_after_its_timeout_and_not_much_later() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.idle_expired(TIMEOUT).await;
        let waited = started.elapsed();
        assert!(
            waited >= TIMEOUT && waited <= TIMEOUT + TIMEOUT / 8,
            "expired after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_moving_or_a_request_in_flight_keep_a_connection_open() {
        let activity = Activity::new();
        let watch = activity.idle_expired(TIMEOUT);
        tokio::pin!(watch);

        survives(&mut watch, TIMEOUT * 3, || activity.touch()).await;
        let in_flight = activity.request_started();
        survives(&mut watch, TIMEOUT * 3, || {}).await;
        drop(in_flight);

        let quiet = Instant::now();
        watch.await;
        let waited = quiet.elapsed();
        assert!(
            waited >= TIMEOUT && waited <= TIMEOUT + TIMEOUT / 8 + Duration::from_secs(1),
            "expired {waited:?} after the request ended"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn two_watches_on_one_connection_each_see_its_bytes_move() {
        let activity = Activity::new();
        let first = activity.idle_expired(TIMEOUT);
        let second = activity.idle_expired(TIMEOUT);
        tokio::pin!(first, second);
        let both = async {
            tokio::select! {
                () = first.as_mut() => panic!("the first watch missed the moves"),
                () = second.as_mut() => panic!("the second watch missed the moves"),
            }
        };
        tokio::pin!(both);
        survives(&mut both, TIMEOUT * 3, || activity.touch()).await;
    }
}
