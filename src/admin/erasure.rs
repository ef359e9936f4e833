//! The admin API of erasure workflows (behind the admin token):
//!
//! ```text
//! POST /admin/erasure-requests                 {patient_id, requester, channel, reason, verification_ref, submitted_by}
//! GET  /admin/erasure-requests                 every request, newest first
//! GET  /admin/erasure-requests/{id}            one, with its steps
//! POST /admin/erasure-requests/{id}/approve    {approver}
//! POST /admin/erasure-requests/{id}/reject     {by, reason}
//! POST /admin/erasure-requests/{id}/cancel     {by, reason}
//! GET  /admin/erasure-requests/{id}/receipt    the signed receipt, once finished
//! ```
//!
//! A submission is answered 202 only after it is committed to the store.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde::Deserialize;

use super::json_owned;
use crate::erasure::{Erasure, ErasureError, Submission};
use crate::proxy::body::ProxyBody;
use crate::server::Shared;
use crate::store::StoreError;

const MAX_BODY: usize = 64 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Approval {
    approver: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Refusal {
    by: String,
    reason: String,
}

pub async fn answer(
    shared: &Arc<Shared>,
    method: &Method,
    path: &str,
    body: Incoming,
) -> http::Response<ProxyBody> {
    let Some(erasure) = &shared.erasure else {
        return error(
            StatusCode::NOT_FOUND,
            "erasure is not configured (no `erasure` section)",
        );
    };
    let rest = path
        .trim_start_matches("/admin/erasure-requests")
        .trim_matches('/');
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    // The store may be a database across the network: its calls run on a blocking thread.
    let result = match read(body).await {
        Ok(body) => {
            let (shared, erasure, method) = (shared.clone(), erasure.clone(), method.clone());
            let parts: Vec<String> = parts.iter().map(|part| (*part).to_owned()).collect();
            tokio::task::spawn_blocking(move || {
                let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
                route(&shared, &erasure, &method, &parts, &body)
            })
            .await
            .unwrap_or(Err(ErasureError::Store(StoreError::Gone("erasure"))))
        }
        Err(err) => Err(err),
    };
    let result = match result {
        Err(ErasureError::NotFound(what)) if what.is_empty() => {
            return error(StatusCode::NOT_FOUND, "no such erasure endpoint")
        }
        other => other,
    };
    match result {
        Ok((status, body)) => json_owned(status, body),
        Err(err) => {
            let status = match &err {
                ErasureError::Invalid(_) => StatusCode::BAD_REQUEST,
                ErasureError::NotFound(_) => StatusCode::NOT_FOUND,
                ErasureError::WrongState { .. } | ErasureError::SamePerson(_) => {
                    StatusCode::CONFLICT
                }
                ErasureError::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
            };
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!("erasure store: {err}");
            }
            error(status, &err.to_string())
        }
    }
}

fn route(
    shared: &Shared,
    erasure: &Erasure,
    method: &Method,
    parts: &[&str],
    body: &[u8],
) -> Result<(StatusCode, String), ErasureError> {
    match (method, parts) {
        (&Method::POST, []) => {
            let submission: Submission = parse(body)?;
            let patient_ref = shared.audit.pseudonym(&submission.patient_id);
            let request = erasure.submit(submission, patient_ref)?;
            Ok((StatusCode::ACCEPTED, to_json(&request)))
        }
        (&Method::GET, []) => Ok((StatusCode::OK, to_json(&erasure.store.list()?))),
        (&Method::GET, [id]) => Ok((StatusCode::OK, to_json(&erasure.get(id)?))),
        (&Method::GET, [id, "receipt"]) => receipt(erasure, id),
        (&Method::POST, [id, "approve"]) => {
            let approval: Approval = parse(body)?;
            Ok((
                StatusCode::OK,
                to_json(&erasure.approve(id, &approval.approver)?),
            ))
        }
        (&Method::POST, [id, "reject"]) => {
            let refusal: Refusal = parse(body)?;
            Ok((
                StatusCode::OK,
                to_json(&erasure.reject(id, &refusal.by, &refusal.reason)?),
            ))
        }
        (&Method::POST, [id, "cancel"]) => {
            let refusal: Refusal = parse(body)?;
            Ok((
                StatusCode::OK,
                to_json(&erasure.cancel(id, &refusal.by, &refusal.reason)?),
            ))
        }
        // An empty NotFound: the endpoint itself does not exist.
        _ => Err(ErasureError::NotFound(String::new())),
    }
}

fn receipt(erasure: &Erasure, id: &str) -> Result<(StatusCode, String), ErasureError> {
    erasure.get(id)?;
    match erasure.store.receipt(id)? {
        Some(receipt) => Ok((StatusCode::OK, receipt)),
        None => Err(ErasureError::WrongState {
            state: erasure.get(id)?.state,
            needed: "finished".to_owned(),
        }),
    }
}

async fn read(body: Incoming) -> Result<Bytes, ErasureError> {
    match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(_) => Err(ErasureError::Invalid(format!(
            "the request body is larger than {MAX_BODY} bytes, or could not be read"
        ))),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ErasureError> {
    serde_json::from_slice(body)
        .map_err(|err| ErasureError::Invalid(format!("invalid request body: {err}")))
}

fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default()
}

fn error(status: StatusCode, message: &str) -> http::Response<ProxyBody> {
    json_owned(status, serde_json::json!({ "error": message }).to_string())
}
