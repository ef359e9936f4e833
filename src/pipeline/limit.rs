//! Stage 4, limit: the route's rate limit policies (or `rate_limits.default`), each counting
//! the request under its key: the client's address, the subject, the route, or the subject
//! and patient. Every policy counts; if any refuses, the one with the longest wait answers
//! (429, `Retry-After`, `RateLimit-Policy`, `RateLimit`). Then the enumeration detector: a
//! subject touching more distinct patients than its roles allow is throttled and flagged.
//!
//! The policies keyed by address need nothing but the address and are counted before
//! identify ([`by_address`]), the rest after it ([`check`]): see `pipeline/mod.rs`. A request
//! refused by address is therefore not counted by the others. A request that matches no route
//! is counted by address too, against the default policies: an address scanning for paths
//! spends the same quota as its other requests.

use std::sync::Arc;

use http::HeaderMap;

use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::config::RateLimitKey;
use crate::ratelimit::{Limited, Policy, Touch};
use crate::runtime::Runtime;
use crate::server::Shared;

/// Counts the request against the route's policies keyed by the client's address (without a
/// route, the default policies').
pub fn by_address(
    gateway: &Shared,
    runtime: &Runtime,
    ctx: &RequestCtx,
    route: Option<&Route>,
) -> Result<(), Rejection> {
    count(
        gateway,
        policies(runtime, route)
            .filter(|policy| policy.spec.key == RateLimitKey::ClientIp)
            .map(|policy| policy.check(ctx.client)),
    )
}

/// Counts the request against the route's other policies, once the caller is identified,
/// then asks the enumeration detector.
pub fn check(
    gateway: &Shared,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: &Route,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let subject = ctx.principal.as_ref().map(|p| p.subject.as_str());
    let needs_patient = runtime.enumeration.is_some()
        || policies(runtime, Some(route)).any(|p| p.spec.key == RateLimitKey::SubjectPatient);
    let patient = if needs_patient {
        super::authorize::patient_of(route, ctx, query, headers)
    } else {
        None
    };

    count(
        gateway,
        policies(runtime, Some(route)).filter_map(|policy| {
            match (policy.spec.key, subject, &patient) {
                // Counted before identify (`by_address`).
                (RateLimitKey::ClientIp, _, _) => None,
                (RateLimitKey::Subject, None, _) => Some(policy.check(ctx.client)),
                (RateLimitKey::Subject, Some(subject), _) => Some(policy.check(subject)),
                (RateLimitKey::Route, _, _) => Some(policy.check(route.name.as_str())),
                (RateLimitKey::SubjectPatient, Some(subject), Some(patient)) => {
                    Some(policy.check((subject, patient.as_str())))
                }
                // No subject or no patient: this policy does not apply to the request.
                (RateLimitKey::SubjectPatient, _, _) => None,
            }
        }),
    )?;

    if let (Some(detector), Some(principal), Some(patient)) =
        (&runtime.enumeration, &ctx.principal, &patient)
    {
        if let Touch::Throttled {
            retry_after,
            limit,
            first,
        } = detector.touch(&principal.subject, &principal.roles, patient.as_str())
        {
            ctx.flags.push("enumeration_suspected");
            if first {
                let role = principal.roles.first().map_or("none", String::as_str);
                gateway
                    .metrics
                    .enumeration_alerts
                    .with_label_values(&[role])
                    .inc();
                tracing::warn!(
                    request_id = ctx.request_id.to_str().unwrap_or_default(),
                    subject = principal.subject.as_str(),
                    roles = ?principal.roles,
                    limit,
                    window = ?detector.config.window.0,
                    "possible patient enumeration: more distinct patients than the role allows; new patients refused until the window ends"
                );
            }
            return Err(Rejection::RateLimited(Limited {
                policy: "enumeration".to_owned(),
                key: RateLimitKey::SubjectPatient,
                retry_after,
                quota: u32::try_from(limit).unwrap_or(u32::MAX),
                window_secs: detector.config.window.0.as_secs(),
            }));
        }
    }
    Ok(())
}

/// The policies that apply to the route: its own, or the default ones.
fn policies<'a>(
    runtime: &'a Runtime,
    route: Option<&'a Route>,
) -> impl Iterator<Item = &'a Arc<Policy>> {
    route
        .and_then(|route| route.rate_limits.as_deref())
        .unwrap_or(&runtime.rate_limits.default)
        .iter()
        .filter_map(|name| runtime.rate_limits.get(name))
}

/// Takes every count (each policy counts, refused or not) and, if any refused, answers with
/// the longest wait.
fn count(
    gateway: &Shared,
    counted: impl Iterator<Item = Result<(), Limited>>,
) -> Result<(), Rejection> {
    let mut refused: Option<Limited> = None;
    for limited in counted.filter_map(Result::err) {
        gateway
            .metrics
            .rate_limited
            .with_label_values(&[limited.policy.as_str(), limited.key.as_str()])
            .inc();
        if refused
            .as_ref()
            .is_none_or(|worst| limited.retry_after > worst.retry_after)
        {
            refused = Some(limited);
        }
    }
    match refused {
        Some(limited) => Err(Rejection::RateLimited(limited)),
        None => Ok(()),
    }
}
