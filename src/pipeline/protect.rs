//! Stage 6, protect: the request body. On routes without field rules the body streams to the
//! upstream untouched, within the route's size limit. On routes with field rules a JSON body
//! is read whole (within the same limit) and every protected value is encrypted under the
//! patient's data key before anything is forwarded; a body the gateway cannot read with
//! certainty (another media type, another charset, a content encoding) is refused, so no
//! spelling of a request gets a protected value to the upstream in plain.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::Request;
use hyper::body::{Body, Incoming};

use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::config::NonJsonBody;
use crate::crypto::field_cipher::DataKey;
use crate::crypto::fields::ProtectError;
use crate::crypto::key_store::KeyStoreError;
use crate::proxy::body::{
    discard_unread, full, read_whole, streaming, LimitedBody, ProxyBody, ReadError, TimedBody,
};
use crate::proxy::headers::{self, content_encoding, json_media_type};
use crate::server::Shared;

/// Integrity headers that no longer match once a body is rewritten.
const DIGEST_HEADERS: [&str; 4] = ["content-md5", "digest", "content-digest", "repr-digest"];

pub async fn request_body(
    gateway: &Shared,
    ctx: &RequestCtx,
    route: &Route,
    request: Request<Incoming>,
    body_read_timeout: std::time::Duration,
) -> Result<Request<ProxyBody>, Rejection> {
    let (mut parts, incoming) = request.into_parts();
    let body = TimedBody::new(incoming, body_read_timeout);
    let limit = route.max_body_size;
    let plan = match plan(&parts.headers, route, body.is_end_stream()) {
        Ok(plan) => plan,
        Err(rejection) => {
            discard_unread(Request::from_parts(parts, body)).await;
            return Err(rejection);
        }
    };
    if !route.fields.is_empty() {
        // Responses are read for field rules too; ask the upstream not to compress them.
        parts.headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
    }
    if plan == Plan::Stream {
        return Ok(Request::from_parts(
            parts,
            streaming(LimitedBody::new(body, limit)),
        ));
    }

    let bytes = read_whole(body, limit).await.map_err(|err| match err {
        ReadError::TooLarge { limit } => Rejection::BodyTooLarge { limit },
        ReadError::TimedOut => Rejection::BodyTimeout,
        ReadError::Failed => Rejection::BadBody("the body could not be read".to_owned()),
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|err| {
        Rejection::BadBody(format!(
            "JSON must be UTF-8; invalid byte at offset {}",
            err.valid_up_to()
        ))
    })?;
    let scope = patient_scope(ctx)?;
    let key = match patient_key(gateway, &scope, true).await? {
        KeyLookup::Key(key) => key,
        KeyLookup::Shredded => return Err(Rejection::PatientErased),
        KeyLookup::Missing => return Err(Rejection::KeysUnavailable),
    };
    let protected = route
        .fields
        .protect(text, &key, &scope)
        .map_err(|err| match err {
            ProtectError::Document(err) => Rejection::BadBody(err.to_string()),
            ProtectError::PlantedCiphertext { .. } => Rejection::BadBody(err.to_string()),
        })?;
    let body = match protected {
        Some(sealed) => {
            gateway
                .metrics
                .field_operations
                .with_label_values(&["encrypt"])
                .inc();
            headers::remove_where(&mut parts.headers, |name| {
                DIGEST_HEADERS.contains(&name.as_str())
            });
            Bytes::from(sealed)
        }
        None => bytes,
    };
    parts.headers.remove(header::TRANSFER_ENCODING);
    parts
        .headers
        .insert(header::CONTENT_LENGTH, body.len().into());
    Ok(Request::from_parts(parts, full(body)))
}

/// What the request's head says to do with its body.
#[derive(PartialEq, Eq)]
enum Plan {
    /// Stream it to the upstream as it is, within the route's size limit.
    Stream,
    /// Read it whole and encrypt its protected values.
    Protect,
}

fn plan(headers: &HeaderMap, route: &Route, empty: bool) -> Result<Plan, Rejection> {
    let limit = route.max_body_size;
    if declared_length(headers).is_some_and(|length| length > limit) {
        return Err(Rejection::BodyTooLarge { limit });
    }
    if route.fields.is_empty() || empty {
        return Ok(Plan::Stream);
    }
    if let Some(encoding) = content_encoding(headers) {
        return Err(Rejection::UnsupportedBody(format!(
            "this route carries protected fields and does not accept compressed bodies (Content-Encoding: {encoding})"
        )));
    }
    match json_media_type(headers) {
        Ok(true) => Ok(Plan::Protect),
        Ok(false) if route.non_json_body == NonJsonBody::Passthrough => Ok(Plan::Stream),
        Ok(false) => Err(Rejection::UnsupportedBody(
            "this route carries protected fields and accepts JSON bodies only (Content-Type: application/json)".to_owned(),
        )),
        Err(reason) => Err(Rejection::UnsupportedBody(reason)),
    }
}

/// The scope ciphertexts are bound to: the patient's pseudonym (the key store never sees
/// the plain id either).
pub(super) fn patient_scope(ctx: &RequestCtx) -> Result<String, Rejection> {
    ctx.patient_ref.clone().ok_or(Rejection::Forbidden)
}

/// What the key store has for a patient.
pub(super) enum KeyLookup {
    Key(Arc<DataKey>),
    /// No key was ever made (and none was to be made now).
    Missing,
    /// The key was destroyed (erasure).
    Shredded,
}

/// The patient's data key: from memory when cached, otherwise from the key store on a
/// blocking thread (a store read, or a write when `create` makes the key). A store that
/// fails is a 503: nothing is forwarded or shown that the keys could not vouch for.
pub(super) async fn patient_key(
    gateway: &Shared,
    scope: &str,
    create: bool,
) -> Result<KeyLookup, Rejection> {
    let Some(keys) = &gateway.keys else {
        return Err(Rejection::KeysUnavailable);
    };
    if let Some(key) = keys.cached(scope) {
        return Ok(KeyLookup::Key(key));
    }
    let keys = keys.clone();
    let patient = scope.to_owned();
    let fetched = tokio::task::spawn_blocking(move || {
        if create {
            keys.key_for(&patient).map(Some)
        } else {
            keys.existing_key(&patient)
        }
    })
    .await
    .map_err(|_| Rejection::KeysUnavailable)?;
    match fetched {
        Ok(Some(key)) => Ok(KeyLookup::Key(key)),
        Ok(None) => Ok(KeyLookup::Missing),
        Err(KeyStoreError::Shredded) => Ok(KeyLookup::Shredded),
        Err(err) => {
            tracing::error!("the key store failed: {err}");
            Err(Rejection::KeysUnavailable)
        }
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
