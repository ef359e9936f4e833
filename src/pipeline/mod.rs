//! The request path. This file is the one place where the stages' order lives; each stage is
//! a file of its own with one job, and either passes the request on or ends it with a
//! [`Rejection`]. Whatever happens, the audit stage and `finish` run for every request: one
//! audit record, then security headers, the request id, CORS response headers, metrics and
//! the access log line.
//!

mod audit;
pub mod authorize;
mod cors;
mod forward;
mod identify;
mod limit;
mod normalize;
mod protect;
mod rejection;
mod reveal;
mod route;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response};
use hyper::body::Incoming;

pub use cors::Cors;
pub use normalize::{canonical_path, check_canonical, PathError};
pub use rejection::{error_response, Rejection};
pub use route::{Matched, Route, RouteTable};

use normalize::CanonicalTarget;

use crate::audit::on_the_way::Announced;
use crate::config::Durability;
use crate::identity::Principal;
use crate::policy::{Decision, Relation};
use crate::proxy::body::{discard_unread, ProxyBody};
use crate::proxy::headers;
use crate::runtime::Runtime;
use crate::server::{ConnInfo, Shared};

/// What one request carries from stage to stage, and what its log line (and, later, its
/// audit record) is built from.
pub struct RequestCtx {
    pub request_id: HeaderValue,
    pub started: Instant,
    pub peer: SocketAddr,
    /// The real client's address: the peer, or behind a trusted proxy the address it names.
    pub client: IpAddr,
    pub method: Method,
    pub route: Option<Arc<Route>>,
    /// Template parameters of the matched route (`patient_id` -> value).
    pub params: Vec<(String, String)>,
    /// Set when a stage ended the request: the rejection's kind.
    pub rejected: Option<&'static str>,
    pub preflight: bool,
    /// Who is calling, once identified.
    pub principal: Option<Arc<Principal>>,
    /// Why authentication failed (specific, unlike what the client is told).
    pub auth_failure: Option<&'static str>,
    /// The patient the request concerns, as the route names it.
    pub patient: Option<String>,
    /// That patient's pseudonym, computed once: the scope ciphertexts are bound to, the
    /// erasure ledger's key and the audit record's `patient`.
    pub patient_ref: Option<String>,
    pub decision: Option<Decision>,
    /// The reason of the break-glass grant the request used.
    pub break_glass_reason: Option<String>,
    /// When the request arrived (wall clock, for the audit record).
    pub received_at: SystemTime,
    /// What became of the request: allow, deny, unauthenticated, unmatched, rejected,
    /// unavailable.
    pub outcome: &'static str,
    pub upstream_status: Option<u16>,
    /// The caller's relations to the patient, as authorization found them.
    pub relations: Vec<Relation>,
    /// Names of protected fields shown in plain, and masked (for the audit record).
    pub fields_revealed: Vec<String>,
    pub fields_masked: Vec<String>,
    /// Integrity notes for the audit record (`integrity_failure`, `key_shredded`).
    pub flags: Vec<&'static str>,
    /// Set once an audited route is matched, until the record is queued: the audit writer's
    /// next batch waits for it.
    pub record_announced: Option<Announced>,
}

/// Runs one request through the stages and always returns a response.
pub async fn handle(
    gateway: &Shared,
    conn: &ConnInfo,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    // One config snapshot per request: a reload mid-request cannot mix two configs.
    let runtime = gateway.runtime.load_full();
    let mut ctx = RequestCtx {
        request_id: headers::request_id(request.headers()),
        started: Instant::now(),
        peer: conn.peer,
        client: headers::client_ip(conn.peer.ip(), request.headers(), |ip| {
            runtime.is_trusted_proxy(ip)
        }),
        method: request.method().clone(),
        route: None,
        params: Vec::new(),
        rejected: None,
        preflight: false,
        principal: None,
        patient_ref: None,
        auth_failure: None,
        patient: None,
        decision: None,
        break_glass_reason: None,
        received_at: SystemTime::now(),
        outcome: "allow",
        upstream_status: None,
        relations: Vec::new(),
        fields_revealed: Vec::new(),
        fields_masked: Vec::new(),
        flags: Vec::new(),
        record_announced: None,
    };
    let origin = request.headers().get(header::ORIGIN).cloned();
    // 0 shed: past `max_in_flight` requests in progress, refuse at once (503) rather than
    //   queue work the backend cannot take; the admin listener is separate and never shed.
    let in_flight = gateway.in_flight.clone().try_acquire_owned();
    let outcome = match in_flight {
        Ok(_permit) => {
            // Boxed: a request waiting on its audit commit then holds a few hundred bytes of
            // pipeline state, not the space of every stage before it (RSS at 1,000
            // connections), and this future stays small enough to move cheaply. Bound by a
            // `let`: a temporary lives to the end of its statement, so `Box::pin(..).await`
            // would keep the unboxed future's space in this one's state all the same.
            let staged = Box::pin(stages(gateway, &runtime, conn, &mut ctx, request));
            staged.await
        }
        Err(_) => {
            gateway
                .metrics
                .requests_shed
                .with_label_values(&["global"])
                .inc();
            discard_unread(request).await;
            Err(Rejection::Overloaded("global"))
        }
    };
    let response = match outcome {
        Ok(response) => response,
        Err(rejection) => {
            ctx.rejected = Some(rejection.kind());
            ctx.outcome = rejection.outcome();
            if let Rejection::BadPath(reason) = &rejection {
                gateway
                    .metrics
                    .path_rejections
                    .with_label_values(&[reason.kind()])
                    .inc();
            }
            if let Rejection::BodyTimeout = &rejection {
                gateway
                    .metrics
                    .connections_closed
                    .with_label_values(&["body_timeout"])
                    .inc();
            }
            rejection.into_response(&ctx.request_id)
        }
    };
    // 9 audit: last, because the record carries the outcome; on durable routes the response
    //   is released only once its record is committed.
    let announced = ctx.record_announced.take();
    let mut response = audit::seal(gateway, &mut ctx, announced, response).await;
    finish(
        gateway,
        &runtime,
        conn,
        &ctx,
        origin.as_ref(),
        &mut response,
    );
    response
}

async fn stages(
    gateway: &Shared,
    runtime: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Rejection> {
    // Stages 1-5 read the request's head only. Whatever they answer instead of forwarding,
    // the client may still be sending the body: it is read off first (`discard_unread`).
    let (route, target) = match admit(gateway, runtime, conn, ctx, &request).await {
        Ok(Admission::Forward { route, target }) => (route, target),
        Ok(Admission::Answered(response)) => {
            discard_unread(request).await;
            return Ok(response);
        }
        Err(rejection) => {
            discard_unread(request).await;
            return Err(rejection);
        }
    };

    // 6 protect: after authorization (nothing is read or encrypted for a caller who may not
    //   write), before forwarding: a protected value never reaches the upstream in plain.
    let request =
        protect::request_body(gateway, ctx, &route, request, runtime.body_read_timeout).await?;

    // 7 forward: headers that clients could spoof are replaced on the way out, and the
    //   verified identity is sent along, signed.
    let response =
        forward::to_upstream(gateway, runtime, conn, ctx, &route, &target, request).await?;

    // 8 reveal: protected values in the response are shown as this caller may see them;
    //   before audit, whose record names the fields revealed.
    reveal::response_body(gateway, runtime, ctx, &route, response).await
}

/// What the stages before the body decided.
enum Admission {
    /// On to the body and the upstream.
    Forward {
        route: Arc<Route>,
        target: CanonicalTarget,
    },
    /// Answered by the gateway itself: a CORS preflight.
    Answered(Response<ProxyBody>),
}

/// Stages 1-5, on the request's head: whether it goes on, and where to.
async fn admit(
    gateway: &Shared,
    runtime: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    request: &Request<Incoming>,
) -> Result<Admission, Rejection> {
    // 1 normalize: first, so that routing and every later decision see the one canonical
    //   path, which is also exactly the path forwarded.
    let target = CanonicalTarget::of(request.uri(), &runtime.paths)?;
    let path = target.path();

    // 2 route: deny by default; a request that matches no route never reaches an upstream.
    //   A CORS preflight is routed as the method it asks about, and answered right here:
    //   browsers send it without credentials, so it must come before identification.
    let preflight = cors::preflight_method(request);
    let method = preflight.as_ref().unwrap_or(request.method());
    let Matched { route, params } = match runtime.routes.select(path, method) {
        Err(Rejection::MethodNotAllowed { .. }) if preflight.is_some() => {
            return Err(Rejection::CorsDenied)
        }
        Err(unmatched) => {
            // Still counted by address (4, below): scanning for paths spends the quota.
            limit::by_address(gateway, runtime, ctx, None)?;
            return Err(unmatched);
        }
        Ok(matched) => matched,
    };
    ctx.route = Some(route.clone());
    ctx.params = params;
    // From here on the request's record is on its way: the audit writer's next batch waits
    // for it (briefly, see audit::on_the_way) rather than commit without it.
    if route.durability != Durability::NotAudited {
        ctx.record_announced = Some(gateway.audit.announce());
    }
    if let Some(method) = &preflight {
        ctx.preflight = true;
        return cors::answer_preflight(route.cors.as_ref(), request, method)
            .map(Admission::Answered);
    }

    // 4 limit, its policies keyed by address: ahead of identify, because they need nothing
    //   but the address, and a flood of forged or expired tokens is then refused before each
    //   costs a signature check (more than the whole rest of the request). The refused
    //   request's record names the caller only if its token was verified before.
    if let Err(refused) = limit::by_address(gateway, runtime, ctx, Some(&route)) {
        ctx.principal = identify::recognized(runtime, conn, &route, request.headers());
        return Err(refused);
    }

    // 3 identify: after routing, because the route says whether identity is required; before
    //   authorization, which decides on the principal.
    ctx.principal =
        identify::identify(gateway, runtime, conn, ctx, &route, request.headers()).await?;

    // 4 limit, the other policies: after identify, so limits can count per subject; before
    //   authorize and anything costlier, so a flood is refused cheaply.
    limit::check(
        gateway,
        runtime,
        ctx,
        &route,
        request.uri().query(),
        request.headers(),
    )?;

    // 5 authorize: deny by default; the route names resource and action, the request the
    //   patient; nothing reaches an upstream without an allowing rule (or break-glass).
    authorize::authorize(
        gateway,
        runtime,
        ctx,
        &route,
        request.uri().query(),
        request.headers(),
    )?;

    // A durable route is not forwarded while its audit record could not be committed.
    if route.durability == Durability::Durable && !gateway.audit.is_healthy() {
        return Err(Rejection::AuditUnavailable);
    }
    Ok(Admission::Forward { route, target })
}

fn finish(
    gateway: &Shared,
    runtime: &Runtime,
    conn: &ConnInfo,
    ctx: &RequestCtx,
    origin: Option<&HeaderValue>,
    response: &mut Response<ProxyBody>,
) {
    runtime
        .response_headers
        .apply(response.headers_mut(), &ctx.request_id);
    if let (Some(cors), false) = (
        ctx.route.as_ref().and_then(|r| r.cors.as_ref()),
        ctx.preflight,
    ) {
        cors.decorate(origin, response.headers_mut());
    }
    let route = ctx.route.as_ref().map_or("unmatched", |r| r.name.as_str());
    let elapsed = ctx.started.elapsed();
    gateway
        .metrics
        .observe_request(route, &ctx.method, response.status(), elapsed.as_secs_f64());
    // The raw path is not logged: it can carry a patient id. The route names the resource.
    // The peer's address as the connection wrote it once, not formatted again per request.
    tracing::info!(
        target: crate::logging::ACCESS_TARGET,
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        client = %conn.peer_text.to_str().unwrap_or_default(),
        method = %ctx.method,
        route,
        template = ctx.route.as_ref().map_or("", |r| r.template.as_str()),
        status = response.status().as_u16(),
        latency_ms = elapsed.as_secs_f64() * 1000.0,
        rejected = ctx.rejected.unwrap_or(""),
        subject = ctx.principal.as_ref().map_or("", |p| p.subject.as_str()),
        break_glass = ctx.break_glass_reason.is_some(),
        "request"
    );
}
