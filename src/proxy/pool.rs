//! The HTTP/1.1 connection pool to one upstream. At most `max_connections` are open; idle ones
//! are reused newest first, trimmed to `max_idle` once a burst is over and closed once idle
//! longer than `idle_timeout`; a connection goes back to the pool only when its response body
//! was read to the end. When every connection is busy a request waits for one (within the
//! upstream's response timeout) rather than opening more: a burst of a thousand clients then
//! costs the gateway and the backend a bounded number of connections. A request sent on a
//! reused connection that the upstream had already closed is sent again on another, but only
//! when it never left (hyper hands it back unsent).

use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tower_service::Service;

use super::body::{BoxError, ProxyBody};

pub type Connector = HttpsConnector<HttpConnector>;

/// Why the pool could not get a response.
#[derive(Debug)]
pub enum PoolError {
    /// Connecting or the handshake failed (the cause keeps a timeout's `TimedOut`).
    Connect(BoxError),
    /// The request failed on an established connection.
    Request(hyper::Error),
}

pub struct Http1Pool {
    connector: Connector,
    idle: Mutex<Vec<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
    max_connections: usize,
    /// One permit per open connection.
    open: Arc<Semaphore>,
    /// A connection came back to the idle list.
    returned: Notify,
    reaper: OnceLock<()>,
}

struct Idle {
    sender: SendRequest<ProxyBody>,
    _open: OwnedSemaphorePermit,
    since: Instant,
}

/// A connection checked out for one request.
struct Busy {
    sender: SendRequest<ProxyBody>,
    open: OwnedSemaphorePermit,
    reused: bool,
}

impl Http1Pool {
    pub fn new(
        connector: Connector,
        max_connections: usize,
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Arc<Http1Pool> {
        Arc::new(Http1Pool {
            connector,
            idle: Mutex::new(Vec::new()),
            max_idle,
            idle_timeout,
            max_connections,
            open: Arc::new(Semaphore::new(max_connections)),
            returned: Notify::new(),
            reaper: OnceLock::new(),
        })
    }

    /// Connections open (busy or connecting, and idle) and of those idle, right now.
    pub fn counts(&self) -> (usize, usize) {
        let open = self.max_connections - self.open.available_permits();
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        (open, idle)
    }

    /// Sends `request` (its absolute URI names the upstream) and returns the response, whose
    /// body gives the connection back to the pool once read to the end.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<ProxyBody>,
    ) -> Result<Response<ProxyBody>, PoolError> {
        let target = origin_form(&mut request);
        loop {
            let mut busy = self.checkout(&target).await?;
            match busy.sender.try_send_request(request).await {
                Ok(response) => return Ok(self.hand_back_after(busy, response)),
                Err(mut err) => match err.take_message() {
                    // The upstream closed a kept-alive connection before the request left:
                    // nothing was sent, so another connection may carry it.
                    Some(unsent) if busy.reused => request = unsent,
                    _ => return Err(PoolError::Request(err.into_error())),
                },
            }
        }
    }

    /// An idle connection that is still open, or a new one, waiting while all are busy.
    async fn checkout(self: &Arc<Self>, uri: &Uri) -> Result<Busy, PoolError> {
        loop {
            while let Some(idle) = self.take_idle() {
                let Idle {
                    mut sender,
                    _open: open,
                    ..
                } = idle;
                // Waits for the connection to finish the previous exchange; fails if it closed.
                if sender.ready().await.is_ok() {
                    return Ok(Busy {
                        sender,
                        open,
                        reused: true,
                    });
                }
            }
            tokio::select! {
                permit = self.open.clone().acquire_owned() => {
                    let open = permit.map_err(|closed| PoolError::Connect(closed.into()))?;
                    // Boxed: connecting is rare and its future large; inline, every request's
                    // state would carry (and move) its space.
                    let connecting = Box::pin(self.connect(uri, open));
                    return connecting.await;
                }
                () = self.returned.notified() => {}
            }
        }
    }

    /// The newest idle connection still open; the ones passed over are closed (the reaper
    /// clears the older end of the list).
    fn take_idle(&self) -> Option<Idle> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some(conn) = idle.pop() {
            if !conn.sender.is_closed() && now - conn.since < self.idle_timeout {
                return Some(conn);
            }
        }
        None
    }

    async fn connect(
        self: &Arc<Self>,
        uri: &Uri,
        open: OwnedSemaphorePermit,
    ) -> Result<Busy, PoolError> {
        self.start_reaper();
        let mut connector = self.connector.clone();
        std::future::poll_fn(|cx| connector.poll_ready(cx))
            .await
            .map_err(PoolError::Connect)?;
        let stream = connector
            .call(uri.clone())
            .await
            .map_err(PoolError::Connect)?;
        let (sender, connection) = http1::Builder::new()
            .handshake(stream)
            .await
            .map_err(|err| PoolError::Connect(err.into()))?;
        // Ends when the connection closes: the upstream closed it, or the pool dropped its
        // sender (idle too long, or a response body was not read to the end).
        tokio::spawn(async move {
            if let Err(err) = connection.with_upgrades().await {
                tracing::debug!(error = %err, "upstream connection ended with an error");
            }
        });
        Ok(Busy {
            sender,
            open,
            reused: false,
        })
    }

    /// Wraps the response body so the connection returns to the pool at its end. A switch of
    /// protocols (WebSocket) takes the connection for good.
    fn hand_back_after(
        self: &Arc<Self>,
        busy: Busy,
        response: Response<Incoming>,
    ) -> Response<ProxyBody> {
        let returning = (response.status() != StatusCode::SWITCHING_PROTOCOLS).then(|| Returning {
            pool: Arc::downgrade(self),
            sender: busy.sender,
            open: busy.open,
        });
        let (mut parts, inner) = response.into_parts();
        detach_header_values(&mut parts.headers);
        let mut body = PooledBody { inner, returning };
        if body.inner.is_end_stream() {
            if let Some(returning) = body.returning.take() {
                returning.give_back();
            }
        }
        Response::from_parts(parts, super::body::streaming(body))
    }

    /// Always kept (their number is bounded by `max_connections`): closing connections during
    /// a burst only to open new ones a moment later costs both sides. The reaper trims.
    fn give_back(&self, sender: SendRequest<ProxyBody>, open: OwnedSemaphorePermit) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.push(Idle {
            sender,
            _open: open,
            since: Instant::now(),
        });
        drop(idle);
        self.returned.notify_one();
    }

    /// Closes idle connections that are past `idle_timeout`, closed by the upstream, or
    /// beyond `max_idle` (oldest first), even when no request comes to notice; stops with
    /// the pool (a reload builds new pools).
    fn start_reaper(self: &Arc<Self>) {
        self.reaper.get_or_init(|| {
            let pool = Arc::downgrade(self);
            let every = (self.idle_timeout / 2).clamp(Duration::from_millis(100), REAP_EVERY);
            tokio::spawn(reap(pool, every));
        });
    }
}

/// How often idle connections are trimmed at most.
const REAP_EVERY: Duration = Duration::from_secs(1);

async fn reap(pool: Weak<Http1Pool>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        let closed: Vec<Idle> = {
            let mut idle = pool.idle.lock().unwrap_or_else(|p| p.into_inner());
            let (mut keep, mut closed): (Vec<Idle>, Vec<Idle>) = std::mem::take(&mut *idle)
                .into_iter()
                .partition(|conn| !conn.sender.is_closed() && now - conn.since < pool.idle_timeout);
            // Beyond `max_idle`, the oldest (the list is in the order connections came back)
            // that sat unused for a whole round: traffic fell, so fewer are needed. Younger
            // ones stay; closing them in a burst would only open new ones a moment later.
            let excess = keep.len().saturating_sub(pool.max_idle);
            let unused = keep[..excess]
                .iter()
                .take_while(|conn| now - conn.since >= every)
                .count();
            closed.extend(keep.drain(..unused));
            *idle = keep;
            closed
        };
        drop(closed);
    }
}

/// Turns the request's absolute URI into the origin form HTTP/1.1 sends (`/path?query`) and
/// returns the absolute URI, which the connector dials. (`Host` is the caller's: the upstream
/// sets it, once computed from its URL.)
fn origin_form(request: &mut Request<ProxyBody>) -> Uri {
    let target = request.uri().clone();
    let path = target
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
    *request.uri_mut() = Uri::from(path);
    target
}

/// Gives a response's header values storage of their own, one allocation of their exact size.
/// hyper hands them out as slices of the connection's 8 KB read buffer, which the connection
/// then replaces for its next read: a response held a while (waiting for its audit commit)
/// would keep a whole buffer alive, 8 MB at a thousand requests in flight.
fn detach_header_values(headers: &mut HeaderMap) {
    let total = headers.values().map(HeaderValue::len).sum();
    let mut storage = BytesMut::with_capacity(total);
    for value in headers.values_mut() {
        storage.extend_from_slice(value.as_bytes());
        if let Ok(mut own) = HeaderValue::from_maybe_shared(storage.split().freeze()) {
            own.set_sensitive(value.is_sensitive());
            *value = own;
        }
    }
}

/// What a response body gives back to the pool when it ends.
struct Returning {
    pool: Weak<Http1Pool>,
    sender: SendRequest<ProxyBody>,
    open: OwnedSemaphorePermit,
}

impl Returning {
    /// Back to the idle list once the connection can take a request: usually at once; when
    /// the upstream answered before the request body was all sent, after the body is done, so
    /// that no request waits behind another's upload.
    fn give_back(mut self) {
        if self.sender.is_ready() {
            if let Some(pool) = self.pool.upgrade() {
                pool.give_back(self.sender, self.open);
            }
            return;
        }
        tokio::spawn(async move {
            if self.sender.ready().await.is_ok() {
                if let Some(pool) = self.pool.upgrade() {
                    pool.give_back(self.sender, self.open);
                }
            }
        });
    }
}

pin_project_lite::pin_project! {
    /// An upstream response body that returns its connection to the pool once read to the
    /// end; dropped earlier (or failing), the connection is closed instead.
    struct PooledBody {
        #[pin]
        inner: Incoming,
        returning: Option<Returning>,
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(returning) = this.returning.take() {
                    returning.give_back();
                }
            }
            Poll::Ready(Some(Err(_))) => drop(this.returning.take()),
            Poll::Ready(Some(Ok(_))) if this.inner.is_end_stream() => {
                if let Some(returning) = this.returning.take() {
                    returning.give_back();
                }
            }
            _ => {}
        }
        polled
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
    use super::*;

    #[test]
    fn detached_header_values_no_longer_hold_the_read_buffer() {
        let read_buffer = Bytes::from(b"HTTP/1.1 200 OK\r\ndate: Mon\r\nx-token: abc\r\n".to_vec());
        let slice = |from: usize, to: usize| {
            HeaderValue::from_maybe_shared(read_buffer.slice(from..to)).expect("a valid value")
        };
        let mut headers = HeaderMap::new();
        headers.insert("date", slice(23, 26));
        headers.append("x-token", slice(37, 40));
        headers.append("x-token", slice(13, 15));
        headers
            .get_mut("date")
            .expect("set above")
            .set_sensitive(true);
        assert!(!read_buffer.is_unique());

        detach_header_values(&mut headers);

        assert!(
            read_buffer.is_unique(),
            "a value still points into the buffer"
        );
        assert_eq!(headers["date"], "Mon");
        assert!(headers["date"].is_sensitive());
        let tokens: Vec<_> = headers.get_all("x-token").iter().collect();
        assert_eq!(tokens, ["abc", "OK"]);
        assert!(!tokens[0].is_sensitive());
    }
}
