//! Connection activity: whether bytes moved and how many requests are in flight, so an
//! idle keep-alive or WebSocket connection can be closed without cutting a slow request, and
//! a request head that keeps arriving without ending (slowloris) can be told from idleness.

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
    /// Reads that brought bytes, also counted in `moves`.
    reads: AtomicU64,
    /// `reads` when the last request ended: reads past it are the next request's head.
    reads_at_rest: AtomicU64,
    /// Requests started, that is heads read whole.
    requests: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::new(Activity {
            moves: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            reads_at_rest: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    fn read(&self) {
        self.reads.fetch_add(1, Ordering::Relaxed);
        self.touch();
    }

    /// Marks a request as being handled until the guard is dropped.
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Completes once no bytes have moved for `timeout` while no request was in flight; see
    /// [`Activity::expired`].
    pub async fn idle_expired(&self, timeout: Duration) {
        self.expired(timeout, None).await;
    }

    /// Completes once the connection has been idle for `idle_timeout` (no bytes moved, no
    /// request in flight) or, given a `head_timeout`, once a request head has been arriving
    /// that long without ending: the first head from the connection's start, each later one
    /// from the first bytes after the request before it ended. Until those bytes the
    /// connection is idle, so a keep-alive connection between requests is held to the idle
    /// timeout. HTTP/2 has no head to wait for, and passes none.
    ///
    /// One watch for both, sampling the counts every eighth of the shorter timeout (at least
    /// every 50 ms): either is noticed between its timeout and an eighth more. Several watches
    /// may share one connection's activity (a WebSocket relay and its connection): each keeps
    /// the counts it saw last.
    pub async fn expired(&self, idle_timeout: Duration, head_timeout: Option<Duration>) -> Expired {
        let eighth = |timeout: Duration| (timeout / 8).max(Duration::from_millis(50)).min(timeout);
        let step = head_timeout.map_or(eighth(idle_timeout), |head| {
            eighth(idle_timeout).min(eighth(head))
        });
        let mut idle = IdleWatch {
            seen: self.moves.load(Ordering::Relaxed),
            quiet_since: Instant::now(),
        };
        let mut head = head_timeout.map(|timeout| {
            let requests_seen = self.requests.load(Ordering::Relaxed);
            HeadWatch {
                timeout,
                requests_seen,
                arriving_since: (requests_seen == 0).then(Instant::now),
            }
        });
        loop {
            tokio::time::sleep(step).await;
            if idle.expired(self, idle_timeout) {
                return Expired::Idle;
            }
            if head.as_mut().is_some_and(|head| head.overdue(self)) {
                return Expired::HeadOverdue;
            }
        }
    }
}

/// Why [`Activity::expired`] completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Expired {
    /// No bytes moved for the idle timeout while no request was in flight.
    Idle,
    /// A request head kept arriving for the header timeout without ending (slowloris).
    HeadOverdue,
}

struct IdleWatch {
    seen: u64,
    quiet_since: Instant,
}

impl IdleWatch {
    fn expired(&mut self, activity: &Activity, timeout: Duration) -> bool {
        let moves = activity.moves.load(Ordering::Relaxed);
        if moves != self.seen || activity.in_flight.load(Ordering::Relaxed) > 0 {
            self.seen = moves;
            self.quiet_since = Instant::now();
            return false;
        }
        self.quiet_since.elapsed() >= timeout
    }
}

struct HeadWatch {
    timeout: Duration,
    requests_seen: u64,
    /// When the head being read was first seen arriving.
    arriving_since: Option<Instant>,
}

impl HeadWatch {
    fn overdue(&mut self, activity: &Activity) -> bool {
        let requests = activity.requests.load(Ordering::Relaxed);
        if requests != self.requests_seen {
            self.requests_seen = requests;
            self.arriving_since = None;
        }
        let head_arriving = activity.in_flight.load(Ordering::Relaxed) == 0
            && (requests == 0
                || activity.reads.load(Ordering::Relaxed)
                    != activity.reads_at_rest.load(Ordering::Relaxed));
        if !head_arriving {
            self.arriving_since = None;
            return false;
        }
        // Bytes first seen now arrived within the last step.
        let since = *self.arriving_since.get_or_insert_with(Instant::now);
        since.elapsed() >= self.timeout
    }
}

/// Held while a request is in flight; see [`Activity::request_started`].
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let activity = &self.0;
        activity.in_flight.fetch_sub(1, Ordering::Relaxed);
        activity
            .reads_at_rest
            .store(activity.reads.load(Ordering::Relaxed), Ordering::Relaxed);
        activity.touch();
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
            this.activity.read();
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
                () = watch.as_mut() => panic!("the watch completed on a connection in use"),
                () = tokio::time::sleep(Duration::from_secs(1)) => during(),
            }
        }
    }

    /// Fails unless `waited` is `TIMEOUT` to an eighth more (plus `slack`): a watch samples
    /// every eighth of its timeout.
    fn assert_on_time(waited: Duration, slack: Duration, what: &str) {
        assert!(
            waited >= TIMEOUT && waited <= TIMEOUT + TIMEOUT / 8 + slack,
            "{what} after {waited:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_connection_expires_after_its_timeout_and_not_much_later() {
        let activity = Activity::new();
        let started = Instant::now();
        activity.idle_expired(TIMEOUT).await;
        assert_on_time(started.elapsed(), Duration::ZERO, "expired");
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
        assert_on_time(
            quiet.elapsed(),
            Duration::from_secs(1),
            "expired once the request ended",
        );
    }

    /// Longer than any test runs: only the head can expire.
    const NEVER_IDLE: Duration = Duration::from_secs(3600);

    async fn head_overdue(activity: &Activity) {
        let expired = activity.expired(NEVER_IDLE, Some(TIMEOUT)).await;
        assert_eq!(expired, Expired::HeadOverdue);
    }

    /// Waits for the head watch; fails unless it completes `timeout` to an eighth more after
    /// `from`.
    async fn overdue_on_time(activity: &Activity, from: Instant) {
        head_overdue(activity).await;
        assert_on_time(from.elapsed(), Duration::ZERO, "the head was overdue");
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_is_due_from_the_start_of_the_connection() {
        let activity = Activity::new();
        overdue_on_time(&activity, Instant::now()).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_first_head_still_arriving_byte_by_byte_is_overdue_all_the_same() {
        let activity = Activity::new();
        let started = Instant::now();
        let watch = overdue_on_time(&activity, started);
        tokio::pin!(watch);
        // A byte a second: activity enough for the idle watch, not a head.
        loop {
            tokio::select! {
                () = watch.as_mut() => break,
                () = tokio::time::sleep(Duration::from_secs(1)) => activity.read(),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn between_requests_the_connection_is_idle_and_the_next_head_due_from_its_first_bytes() {
        let activity = Activity::new();
        let watch = head_overdue(&activity);
        tokio::pin!(watch);
        activity.read();
        let first = activity.request_started();
        // A request in flight, however slow, is not a head arriving.
        survives(&mut watch, TIMEOUT * 3, || {}).await;
        drop(first);
        // Quiet between requests: that is the idle watch's to judge.
        survives(&mut watch, TIMEOUT * 3, || {}).await;
        // A head that arrives whole in time.
        activity.read();
        drop(activity.request_started());
        survives(&mut watch, TIMEOUT * 3, || {}).await;

        // Then a head that begins and never ends.
        activity.read();
        let began = Instant::now();
        watch.await;
        assert_on_time(
            began.elapsed(),
            Duration::ZERO,
            "the second head was overdue, from its first bytes,",
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_quiet_between_requests_expires_idle_under_the_longer_timeout() {
        let activity = Activity::new();
        activity.read();
        drop(activity.request_started());
        let quiet = Instant::now();
        let expired = activity.expired(TIMEOUT, Some(TIMEOUT / 4)).await;
        assert_eq!(expired, Expired::Idle);
        assert_on_time(quiet.elapsed(), Duration::ZERO, "expired idle");
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_timeout_no_head_is_ever_overdue() {
        let activity = Activity::new();
        let watch = async {
            activity.expired(NEVER_IDLE, None).await;
        };
        tokio::pin!(watch);
        survives(&mut watch, TIMEOUT * 3, || activity.read()).await;
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
