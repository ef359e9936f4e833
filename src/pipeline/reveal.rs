//! Stage 8, reveal: the response body. On routes with field rules a JSON response is read
//! whole (within `field_protection.max_response_body_size`), each protected value is opened
//! with the patient's data key and shown as the caller may see it: in plain when the policy
//! lets one of the caller's roles `reveal` `field:<name>` under their relation to the patient,
//! masked, hashed or removed otherwise. A value that does not open becomes `null`, is counted
//! and flagged in the audit record. A response the gateway cannot read (compressed despite
//! `Accept-Encoding: identity`, too large, not JSON though labelled so) is not released: 502.
//! Other responses stream through untouched.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::protect::{patient_key, patient_scope, KeyLookup};
use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::crypto::field_cipher::PREFIX;
use crate::crypto::fields::Failure;
use crate::crypto::redact::Reveal;
use crate::proxy::body::{full, read_whole, ProxyBody};
use crate::proxy::headers::{self, content_encoding, json_media_type};
use crate::runtime::Runtime;
use crate::server::Shared;

pub async fn response_body(
    gateway: &Shared,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: &Route,
    response: Response<ProxyBody>,
) -> Result<Response<ProxyBody>, Rejection> {
    let status = response.status();
    let bodiless = ctx.method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let (Some(protection), false, false) =
        (&runtime.field_protection, route.fields.is_empty(), bodiless)
    else {
        return Ok(response);
    };
    let (mut parts, body) = response.into_parts();
    // Only JSON can carry what the rules select; the upstream holds ciphertext, so other
    // bodies have nothing to reveal.
    if !matches!(json_media_type(&parts.headers), Ok(true)) {
        return Ok(Response::from_parts(parts, body));
    }
    if let Some(encoding) = content_encoding(&parts.headers) {
        return Err(unprocessable(
            ctx,
            "upstream_compressed",
            &format!("Content-Encoding {encoding} on a route with field rules"),
        ));
    }
    let limit = protection.max_response_body_size;
    let bytes = read_whole(body, limit).await.map_err(|_| {
        unprocessable(
            ctx,
            "upstream_body_unreadable",
            &format!("the body could not be read whole within {limit} bytes"),
        )
    })?;
    let Ok(text) = std::str::from_utf8(&bytes) else {
        return Err(unprocessable(
            ctx,
            "upstream_body_invalid",
            "the JSON body is not UTF-8",
        ));
    };
    let scope = patient_scope(ctx)?;
    // Reading needs the key only when there is a ciphertext to open, and never makes one.
    let lookup = if text.contains(PREFIX) {
        patient_key(gateway, &scope, false).await?
    } else {
        KeyLookup::Missing
    };
    let key = match &lookup {
        KeyLookup::Key(key) => Ok(&**key),
        KeyLookup::Missing => Err(Failure::KeyMissing),
        KeyLookup::Shredded => Err(Failure::KeyShredded),
    };
    let roles = ctx
        .principal
        .as_ref()
        .map_or(&[][..], |p| p.roles.as_slice());
    let relations = &ctx.relations;
    let policy = runtime.policy.as_ref();
    // The resource a field's reveal is asked about, `field:<name>`, built in one buffer.
    let mut resource = String::from("field:");
    let mut reveal_of = |field: &str| {
        resource.truncate("field:".len());
        resource.push_str(field);
        let granted =
            policy.is_some_and(|policy| policy.allows(roles, relations, &resource, "reveal"));
        if granted {
            Reveal::Plain
        } else {
            protection.redactions.for_roles(field, roles)
        }
    };
    let hash = |field: &str, json: &str| gateway.audit.field_hash(field, json);
    let outcome = route
        .fields
        .reveal(text, key, &scope, &mut reveal_of, &hash)
        .map_err(|err| unprocessable(ctx, "upstream_body_invalid", &err.to_string()))?;

    for (_, failure) in &outcome.failures {
        gateway
            .metrics
            .field_crypto_failures
            .with_label_values(&[failure.as_str()])
            .inc();
        if !ctx.flags.contains(&failure.as_str()) {
            ctx.flags.push(failure.as_str());
        }
    }
    if !outcome.failures.is_empty() {
        tracing::warn!(
            request_id = ctx.request_id.to_str().unwrap_or_default(),
            route = route.name.as_str(),
            fields = ?outcome.failures.iter().map(|(f, r)| format!("{f}: {}", r.as_str())).collect::<Vec<_>>(),
            "protected values could not be opened and were withheld"
        );
    }
    let opened = outcome.revealed.len() + outcome.masked.len();
    if opened > 0 {
        gateway
            .metrics
            .field_operations
            .with_label_values(&["decrypt"])
            .inc();
    }
    ctx.fields_revealed = outcome.revealed.iter().map(|f| f.to_string()).collect();
    ctx.fields_masked = outcome.masked.iter().map(|f| f.to_string()).collect();
    let body = outcome.body.map_or(bytes, Bytes::from);
    // The body now depends on who asked: no shared cache may keep it, and the upstream's
    // validators describe a different body.
    headers::remove_where(&mut parts.headers, |name| {
        [
            header::TRANSFER_ENCODING,
            header::ETAG,
            header::LAST_MODIFIED,
        ]
        .contains(name)
    });
    parts
        .headers
        .insert(header::CONTENT_LENGTH, body.len().into());
    parts
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(Response::from_parts(parts, full(body)))
}

fn unprocessable(ctx: &RequestCtx, kind: &'static str, detail: &str) -> Rejection {
    tracing::warn!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        kind,
        "upstream response withheld: {detail}"
    );
    Rejection::UnprocessableResponse(kind)
}
