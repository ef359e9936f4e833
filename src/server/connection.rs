//! One client connection: TLS handshake (bounded in time), then HTTP/1.1 or HTTP/2 (as ALPN
//! chose) with the configured header limits, each request handed to the pipeline. The
//! connection is closed gracefully when idle too long or when shutdown begins, and at once when
//! the grace period is over.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::activity::{Activity, ActivityIo, Expired};
use super::watchers::WatcherWaker;
use super::{ConnInfo, Shared};
use crate::pipeline;

pub async fn serve(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    shared.metrics.active_connections.inc();
    let _open = scopeguard(&shared);
    let _ = stream.set_nodelay(true);
    let limits = &shared.limits;

    let acceptor = TlsAcceptor::from(shared.tls.load_full());
    let tls =
        match tokio::time::timeout(limits.tls_handshake_timeout.0, acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                shared.metrics.tls_handshake_errors.inc();
                shared
                    .metrics
                    .connections_closed
                    .with_label_values(&["tls_handshake"])
                    .inc();
                tracing::debug!(client = %peer.ip(), error = %err, "TLS handshake failed");
                return;
            }
            Err(_elapsed) => {
                shared.metrics.tls_handshake_errors.inc();
                shared
                    .metrics
                    .connections_closed
                    .with_label_values(&["tls_handshake"])
                    .inc();
                tracing::debug!(client = %peer.ip(), "TLS handshake timed out");
                return;
            }
        };
    let client_cert = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| cert.clone().into_owned());

    let activity = Activity::new();
    let conn = Arc::new(ConnInfo {
        peer,
        peer_text: http::HeaderValue::from_str(&peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown")),
        activity: activity.clone(),
        client_cert,
    });
    let service_shared = shared.clone();
    let handle = move |request| {
        let shared = service_shared.clone();
        let conn = conn.clone();
        async move {
            let _in_flight = conn.activity.request_started();
            Ok::<_, Infallible>(pipeline::handle(&shared, &conn, request).await)
        }
    };

    // ALPN decides the protocol (HTTP/2 over TLS needs it, RFC 9113 section 3.2); without it
    // the client speaks HTTP/1.1. No sniffing of the first bytes: that costs a read and grows
    // every connection's read buffer.
    let max_header_size = usize::try_from(limits.max_header_size.0).unwrap_or(usize::MAX);
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(ActivityIo::new(tls, activity.clone()));
    let ended = if h2 {
        let connection = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(limits.http2_max_pending_reset_streams)
            .max_local_error_reset_streams(limits.http2_max_local_error_reset_streams)
            .max_header_list_size(u32::try_from(max_header_size).unwrap_or(u32::MAX))
            // Each stream's future boxed: hyper spawns every stream as a task, and unboxed the
            // pipeline's future (kilobytes) is copied whole several times on its way in.
            // HTTP/1.1 keeps it in one box per connection already.
            .serve_connection(io, service_fn(move |request| Box::pin(handle(request))));
        // Boxed: its state is larger than HTTP/1.1's, and would otherwise be reserved in
        // every connection's task.
        let mut connection = Box::pin(connection);
        drive(&shared, &activity, None, connection.as_mut(), |c| {
            c.graceful_shutdown()
        })
        .await
    } else {
        // No `header_read_timeout` for hyper: it would also run while a keep-alive connection
        // waits for its next request, closing it after this timeout instead of `idle_timeout`,
        // and it sets a timer for every request. `drive` watches the head instead.
        let connection = http1::Builder::new()
            .max_buf_size(max_header_size)
            .keep_alive(true)
            // A client may half-close once its request is sent, and each request runs to its
            // end and its audit record. It also keeps hyper from reading the connection while a
            // request is in flight (to spot an early close), which cost a second 8 KB read
            // buffer per busy connection and a read call per request.
            .half_close(true)
            .serve_connection(io, service_fn(handle))
            .with_upgrades();
        tokio::pin!(connection);
        let head_timeout = Some(limits.header_read_timeout.0);
        drive(&shared, &activity, head_timeout, connection, |c| {
            c.graceful_shutdown()
        })
        .await
    };
    if let Err(err) = ended {
        tracing::debug!(client = %peer.ip(), error = %err, "connection ended with an error");
        let reason = closed_reason(&err);
        shared
            .metrics
            .connections_closed
            .with_label_values(&[reason])
            .inc();
    }
}

/// Serves a connection to its end: closes it gracefully when idle too long or when shutdown
/// begins, and at once when the grace period is over, when it is still idle a whole timeout
/// after the close began (a stalled response body), or when a request head takes longer than
/// `head_timeout` to arrive (slowloris).
async fn drive<C>(
    shared: &Shared,
    activity: &Activity,
    head_timeout: Option<Duration>,
    mut connection: Pin<&mut C>,
    graceful_shutdown: fn(Pin<&mut C>),
) -> Result<(), hyper::Error>
where
    C: Future<Output = Result<(), hyper::Error>>,
{
    let mut expired = pin!(activity.expired(shared.limits.idle_timeout.0, head_timeout));
    let mut shutdown = pin!(shared.graceful.cancelled());
    let mut force_close = pin!(shared.force_close.cancelled());
    // The connection is polled on every wake (several per request), the watchers above only
    // once one of them woke the task.
    let watchers = WatcherWaker::new();
    let mut closing = false;
    poll_fn(|cx| loop {
        if let Poll::Ready(result) = connection.as_mut().poll(cx) {
            return Poll::Ready(result);
        }
        let Some(mut watch) = watchers.woken(cx) else {
            return Poll::Pending;
        };
        if force_close.as_mut().poll(&mut watch).is_ready() {
            return Poll::Ready(Ok(()));
        }
        match expired.as_mut().poll(&mut watch) {
            Poll::Ready(Expired::Idle) if closing => {
                // Asked to close and still idle a whole timeout later: what holds it open is
                // a response body that stopped moving (its upstream stalled, or the client
                // left without a word), which would otherwise hold the connection and its
                // upstream connection for as long as the upstream likes. Cut off.
                tracing::debug!("response stalled for idle_timeout after the close began");
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Expired::Idle) => {
                shared
                    .metrics
                    .connections_closed
                    .with_label_values(&["idle_timeout"])
                    .inc();
                // Watched again while it closes (polled once to set its timer).
                expired.set(activity.expired(shared.limits.idle_timeout.0, None));
                let _ = expired.as_mut().poll(&mut watch);
            }
            Poll::Ready(Expired::HeadOverdue) => {
                tracing::debug!("request head not complete within header_read_timeout");
                shared
                    .metrics
                    .connections_closed
                    .with_label_values(&["header_timeout"])
                    .inc();
                return Poll::Ready(Ok(()));
            }
            Poll::Pending if !closing && shutdown.as_mut().poll(&mut watch).is_ready() => {}
            Poll::Pending => return Poll::Pending,
        }
        // Idle too long, or shutdown began: the connection finishes what it is doing (within
        // the grace period, and while it is not idle).
        closing = true;
        graceful_shutdown(connection.as_mut());
    })
    .await
}

/// Why a connection that ended in an error was closed: the client went away, or a protocol
/// violation (malformed HTTP, an HTTP/2 reset flood). A head too slow to arrive is counted
/// where `drive` closes it.
fn closed_reason(err: &hyper::Error) -> &'static str {
    if err.is_incomplete_message() || err.is_closed() || err.is_canceled() {
        "client_gone"
    } else {
        "protocol_error"
    }
}

/// Decrements the open-connection gauge however the connection ends.
fn scopeguard(shared: &Arc<Shared>) -> impl Drop + '_ {
    struct Open<'a>(&'a Shared);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            self.0.metrics.active_connections.dec();
        }
    }
    Open(shared)
}
