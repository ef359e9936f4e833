//! The admin listener, on its own address (loopback by default): `/healthz` (the process
//! answers), `/readyz` (the proxy listener is accepting) and `/metrics` (Prometheus text).
//! It stays up through the shutdown grace period so probes see "not ready" while draining.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::proxy::body::{full, ProxyBody};
use crate::server::Shared;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.force_close.cancelled() => break,
        };
        let Ok((stream, _peer)) = accepted else {
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(answer(&shared, &request)) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await;
        });
    }
}

fn answer(shared: &Shared, request: &Request<Incoming>) -> Response<ProxyBody> {
    match (request.method(), request.uri().path()) {
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#),
        (&Method::GET, "/readyz") => {
            if shared.ready.load(Ordering::SeqCst) {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            } else {
                json(StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"not ready"}"#)
            }
        }
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(full(shared.metrics.render()));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => json(
            StatusCode::NOT_FOUND,
            r#"{"error":"no such admin endpoint"}"#,
        ),
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
