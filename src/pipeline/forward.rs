//! Stage 7, forward: sends the request to the route's upstream and hands back its response,
//! streaming both bodies. Spoofable and hop-by-hop headers are replaced here, just before the
//! request leaves, so no earlier stage can be fooled by them and none can be skipped.

use std::time::Instant;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::upgrade::OnUpgrade;

use super::normalize::CanonicalTarget;
use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::proxy::body::ProxyBody;
use crate::proxy::headers;
use crate::proxy::identity_headers::UpstreamIdentity;
use crate::proxy::upstream::UpstreamError;
use crate::proxy::websocket;
use crate::runtime::Runtime;
use crate::server::{ConnInfo, Shared};

/// The headers `to_upstream` adds to a request at most, but for a WebSocket upgrade's two:
/// seven `X-Wardgate-*`, three `X-Forwarded-*` and `X-Request-Id`.
const ADDED_HEADERS: usize = 11;

pub async fn to_upstream(
    gateway: &Shared,
    runtime: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    route: &Route,
    target: &CanonicalTarget,
    request: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Rejection> {
    let (mut parts, body) = request.into_parts();
    let websocket = route.websocket
        && parts.version == http::Version::HTTP_11
        && headers::is_websocket_upgrade(&parts.headers);
    let client_upgrade = if websocket {
        parts.extensions.remove::<OnUpgrade>()
    } else {
        None
    };
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        let authority = parts.uri.authority()?;
        HeaderValue::from_str(authority.as_str()).ok()
    });

    let upstream = &route.upstream;
    let uri = upstream
        .uri_for(target.path_and_query())
        .map_err(|_| Rejection::BadPath(super::normalize::PathError::BadPercentEncoding))?;
    let mut outgoing = parts.headers;
    headers::remove_hop_by_hop(&mut outgoing);
    // What the gateway consumes, and identity a client must not assert for itself.
    headers::remove_where(&mut outgoing, |name| {
        *name == header::HOST
            || runtime.strip_headers.matches(name)
            || name == runtime.break_glass.header()
            || (runtime.consume_authorization && *name == header::AUTHORIZATION)
    });
    // Room for the headers added below in one step (see `ResponseHeaders::apply`).
    let _ = outgoing.try_reserve(ADDED_HEADERS);
    UpstreamIdentity {
        principal: ctx.principal.as_deref(),
        patient: ctx.patient.as_deref(),
        request_id: &ctx.request_id,
        method: parts.method.as_str(),
        path_and_query: uri.path_and_query().map_or(target.path(), |pq| pq.as_str()),
    }
    .inject(&mut outgoing, runtime.signer.as_ref());
    if websocket {
        headers::mark_websocket_upgrade(&mut outgoing);
    }
    headers::set_forwarded(
        &mut outgoing,
        &conn.peer_text,
        runtime.is_trusted_proxy(conn.peer.ip()),
        original_host,
    );
    outgoing.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());

    let mut upstream_request = Request::new(body);
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = outgoing;

    let started = Instant::now();
    let result = upstream.send(upstream_request).await;
    gateway
        .metrics
        .upstream_duration
        .with_label_values(&[upstream.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    let mut response = result.map_err(|err| upstream_failed(gateway, ctx, &upstream.name, err))?;
    ctx.upstream_status = Some(response.status().as_u16());

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let upstream_upgrade = response.extensions_mut().remove::<OnUpgrade>();
        let (Some(client_upgrade), Some(upstream_upgrade)) = (client_upgrade, upstream_upgrade)
        else {
            return Err(upstream_failed(
                gateway,
                ctx,
                &upstream.name,
                UpstreamError::Broken,
            ));
        };
        gateway.metrics.websocket_sessions.inc();
        gateway.tasks.spawn(websocket::relay(
            client_upgrade,
            upstream_upgrade,
            conn.activity.clone(),
            runtime.idle_timeout,
            gateway.force_close.clone(),
        ));
        headers::remove_hop_by_hop(response.headers_mut());
        headers::mark_websocket_upgrade(response.headers_mut());
    } else {
        headers::remove_hop_by_hop(response.headers_mut());
    }
    Ok(response)
}

fn upstream_failed(
    gateway: &Shared,
    ctx: &RequestCtx,
    upstream: &str,
    err: UpstreamError,
) -> Rejection {
    gateway
        .metrics
        .upstream_errors
        .with_label_values(&[upstream, err.kind()])
        .inc();
    if matches!(err, UpstreamError::Overloaded) {
        gateway
            .metrics
            .requests_shed
            .with_label_values(&["upstream"])
            .inc();
    }
    tracing::warn!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        upstream,
        kind = err.kind(),
        "upstream call failed: {err}"
    );
    Rejection::from(err)
}
