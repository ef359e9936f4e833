//! Stage 3, identify: who is calling. A bearer JWT or an mTLS service-account certificate
//! becomes the request's [`Principal`]. Routes say whether identity is required, optional or
//! not used; a presented but invalid credential is refused even where identity is optional.
//! The client learns only "missing" or "invalid"; the specific reason goes to the logs, the
//! metrics and (with the audit stage) the audit record.
//!
//! A request refused before this stage (a rate limit by address) is [`recognized`] instead:
//! named in its record when its credentials were verified before, at no signature's cost.

use std::sync::Arc;

use http::HeaderMap;

use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::config::AuthMode;
use crate::identity::{AuthError, Principal};
use crate::runtime::Runtime;
use crate::server::{ConnInfo, Shared};

pub async fn identify(
    gateway: &Shared,
    runtime: &Runtime,
    conn: &ConnInfo,
    ctx: &mut RequestCtx,
    route: &Route,
    headers: &HeaderMap,
) -> Result<Option<Arc<Principal>>, Rejection> {
    if route.auth == AuthMode::None {
        return Ok(None);
    }
    let result = match &runtime.identity {
        Some(identity) => identity.authenticate(headers, conn).await,
        None => Err(AuthError::KeysUnavailable),
    };
    let failure = match (result, route.auth) {
        (Ok(Some(principal)), _) => return Ok(Some(principal)),
        (Ok(None), AuthMode::Optional | AuthMode::None) => return Ok(None),
        (Ok(None), AuthMode::Required) => AuthError::Missing,
        (Err(err), _) => err,
    };
    gateway
        .metrics
        .authn_failures
        .with_label_values(&[failure.reason()])
        .inc();
    tracing::info!(
        request_id = ctx.request_id.to_str().unwrap_or_default(),
        route = route.name.as_str(),
        reason = failure.reason(),
        "authentication failed: {failure}"
    );
    ctx.auth_failure = Some(failure.reason());
    Err(Rejection::Unauthenticated(failure))
}

/// Who a request refused before identification comes from, as far as is known without
/// verifying anything: for its audit record and log line.
pub fn recognized(
    runtime: &Runtime,
    conn: &ConnInfo,
    route: &Route,
    headers: &HeaderMap,
) -> Option<Arc<Principal>> {
    if route.auth == AuthMode::None {
        return None;
    }
    runtime.identity.as_ref()?.recognize(headers, conn)
}
