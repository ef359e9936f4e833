//! The admin listener, on its own address (loopback by default): `/healthz` (the process
//! answers), `/readyz` (the proxy listener is accepting), `/metrics` (Prometheus text), and
//! `POST /admin/reload` and the erasure API (`erasure.rs`), both behind the bearer token in
//! `admin.token_file`.
//! It stays up through the shutdown grace period so probes see "not ready" while draining.

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::Digest;
use tokio::net::TcpListener;

use crate::proxy::body::{full, ProxyBody};
use crate::server::Shared;

pub mod client;
mod erasure;

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
                async move { Ok::<_, Infallible>(answer(&shared, request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service);
            let _ = connection.await;
        });
    }
}

async fn answer(shared: &Arc<Shared>, request: Request<Incoming>) -> Response<ProxyBody> {
    if request.uri().path().starts_with("/admin/erasure-requests") {
        if let Some(refused) = refuse_unauthorized(shared, &request) {
            return refused;
        }
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        return erasure::answer(shared, &method, &path, request.into_body()).await;
    }
    if request.uri().path() == "/admin/review/report" && request.method() == Method::GET {
        return review_report(shared, &request).await;
    }
    if request.uri().path() == "/admin/selfcheck" && request.method() == Method::GET {
        if let Some(refused) = refuse_unauthorized(shared, &request) {
            return refused;
        }
        return selfcheck(shared).await;
    }
    match (request.method(), request.uri().path()) {
        (&Method::POST, "/admin/reload") => {
            if let Some(refused) = refuse_unauthorized(shared, &request) {
                return refused;
            }
            match shared.reload().await {
                Ok(()) => json(StatusCode::OK, r#"{"status":"reloaded"}"#),
                Err(errors) => {
                    let problems: Vec<String> = errors.0.iter().map(ToString::to_string).collect();
                    let body = serde_json::json!({"error": "reload refused; the running config is kept", "problems": problems});
                    json_owned(StatusCode::UNPROCESSABLE_ENTITY, body.to_string())
                }
            }
        }
        (&Method::GET, "/healthz") => json(StatusCode::OK, r#"{"status":"ok"}"#),
        (&Method::GET, "/readyz") => {
            if !shared.ready.load(Ordering::SeqCst) {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"status":"not ready","reason":"the proxy listener is not accepting"}"#,
                )
            } else if !shared.audit.is_healthy() {
                json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    r#"{"status":"not ready","reason":"the audit store is unavailable"}"#,
                )
            } else {
                json(StatusCode::OK, r#"{"status":"ready"}"#)
            }
        }
        (&Method::GET, "/metrics") => {
            observe_upstream_pools(shared);
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

/// `GET /admin/review/report?since=183d[&until=...][&language=zh-CN]`: the review as HTML, for
/// the admin token or a compliance officer's or administrator's own bearer token.
async fn review_report(shared: &Shared, request: &Request<Incoming>) -> Response<ProxyBody> {
    let token_ok = refuse_unauthorized(shared, request).is_none();
    if !token_ok {
        let runtime = shared.runtime.load_full();
        let bearer = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "));
        let principal = match (&runtime.identity, bearer) {
            (Some(identity), Some(token)) => identity.verify_bearer(token).await.ok(),
            _ => None,
        };
        let Some(principal) = principal else {
            return json(
                StatusCode::UNAUTHORIZED,
                r#"{"error":"the admin token or a valid bearer token is required"}"#,
            );
        };
        if !principal
            .roles
            .iter()
            .any(|role| role == "compliance_officer" || role == "admin")
        {
            return json(
                StatusCode::FORBIDDEN,
                r#"{"error":"the review is for compliance officers and administrators"}"#,
            );
        }
    }
    let query: std::collections::HashMap<String, String> = request
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let now = std::time::SystemTime::now();
    let time = |name: &str| -> Result<Option<i64>, String> {
        query
            .get(name)
            .map(|text| {
                crate::audit::query::parse_time(text, now).map_err(|err| format!("{name}: {err}"))
            })
            .transpose()
    };
    let (since, until) = match (time("since"), time("until")) {
        (Ok(Some(since)), Ok(until)) => {
            (since, until.unwrap_or_else(crate::erasure::store::now_ms))
        }
        (Ok(None), _) => {
            return json(
                StatusCode::BAD_REQUEST,
                r#"{"error":"since is required (a date, a time or a duration back from now)"}"#,
            )
        }
        (Err(message), _) | (_, Err(message)) => {
            return json_owned(
                StatusCode::BAD_REQUEST,
                serde_json::json!({ "error": message }).to_string(),
            )
        }
    };
    let config_path = shared.config_path.clone();
    let language = query.get("language").cloned();
    let built = tokio::task::spawn_blocking(move || {
        let loaded = crate::config::load(&config_path).map_err(|errors| errors.to_string())?;
        let report = crate::review::build(
            &loaded.config,
            since,
            until,
            crate::erasure::store::now_ms(),
        )
        .map_err(|err| err.to_string())?;
        let words = crate::review::html::words(
            language
                .as_deref()
                .unwrap_or(&loaded.config.review.language),
        );
        Ok::<_, String>(crate::review::html::render(&report, words))
    })
    .await;
    match built {
        Ok(Ok(html)) => {
            let mut response = Response::new(full(html));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Ok(Err(message)) => {
            tracing::error!("review report failed: {message}");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"error":"the report could not be built; see the gateway's log"}"#,
            )
        }
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"the report could not be built"}"#,
        ),
    }
}

/// `GET /admin/selfcheck`: runs the self-inspection against this gateway (its config and its
/// own metrics) and answers its JSON form; `wardgate_selfcheck_failures{area}` follows.
async fn selfcheck(shared: &Shared) -> Response<ProxyBody> {
    let config_path = shared.config_path.clone();
    let loaded = match crate::config::load(&config_path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            return json_owned(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": errors.to_string() }).to_string(),
            )
        }
    };
    let live = crate::selfcheck::Live {
        metrics: Ok(shared.metrics.render()),
        handshakes: crate::selfcheck::handshakes(&loaded.config, shared.proxy_addr).await,
    };
    let run = tokio::task::spawn_blocking(move || {
        Ok::<_, String>(crate::selfcheck::inspect(&loaded.config, Some(&live)))
    })
    .await;
    match run {
        Ok(Ok(inspection)) => {
            if let Some(chain) = inspection
                .items
                .iter()
                .find(|item| item.id == "audit.chain")
            {
                let broken = chain.status == crate::selfcheck::Status::Fail;
                shared.metrics.audit_chain_broken.set(i64::from(broken));
            }
            for (area, failures) in inspection.failures_by_area() {
                shared
                    .metrics
                    .selfcheck_failures
                    .with_label_values(&[area.as_str()])
                    .set(failures);
            }
            json_owned(
                StatusCode::OK,
                serde_json::to_string_pretty(&inspection).unwrap_or_default(),
            )
        }
        Ok(Err(message)) => json_owned(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": message }).to_string(),
        ),
        Err(_) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"error":"the inspection could not run"}"#,
        ),
    }
}

/// Mutating endpoints need the admin token; without one configured they are closed.
fn refuse_unauthorized(
    shared: &Shared,
    request: &Request<Incoming>,
) -> Option<Response<ProxyBody>> {
    let runtime = shared.runtime.load();
    let Some(expected) = &runtime.admin_token else {
        return Some(json(
            StatusCode::FORBIDDEN,
            r#"{"error":"admin.token_file is not configured; mutating admin endpoints are closed"}"#,
        ));
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Compare digests, so the comparison's timing says nothing about the token.
    let digest = |bytes: &[u8]| sha2::Sha256::digest(bytes);
    if digest(presented.as_bytes()) == digest(expected) {
        None
    } else {
        let mut refused = json(
            StatusCode::UNAUTHORIZED,
            r#"{"error":"a valid admin token is required"}"#,
        );
        refused.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer realm="wardgate-admin""#),
        );
        Some(refused)
    }
}

fn json(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    json_owned(status, body.to_owned())
}

fn json_owned(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Sets `wardgate_upstream_connections` from the pools of the upstreams the routes use now.
fn observe_upstream_pools(shared: &Shared) {
    let runtime = shared.runtime.load();
    let gauge = &shared.metrics.upstream_connections;
    let mut seen = std::collections::HashSet::new();
    for route in runtime.routes.routes() {
        let upstream = &route.upstream;
        if !seen.insert(upstream.name.as_str()) {
            continue;
        }
        if let Some((open, idle)) = upstream.pool_counts() {
            let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            gauge
                .with_label_values(&[upstream.name.as_str(), "busy"])
                .set(count(open.saturating_sub(idle)));
            gauge
                .with_label_values(&[upstream.name.as_str(), "idle"])
                .set(count(idle));
        }
    }
}
