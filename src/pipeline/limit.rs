//! Stage 4, limit: the route's rate limit policies (or `rate_limits.default`), each counting
//! the request under its key: the client's address, the subject, the route, or the subject
//! and patient. Every policy counts; if any refuses, the one with the longest wait answers
//! (429, `Retry-After`, `RateLimit-Policy`, `RateLimit`). Then the enumeration detector: a
//! subject touching more distinct patients than its roles allow is throttled and flagged.

use http::HeaderMap;

use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::config::RateLimitKey;
use crate::ratelimit::{Limited, Touch};
use crate::runtime::Runtime;
use crate::server::Shared;

pub fn check(
    gateway: &Shared,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: &Route,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    let names = route
        .rate_limits
        .as_deref()
        .unwrap_or(&runtime.rate_limits.default);
    let subject = ctx.principal.as_ref().map(|p| p.subject.as_str());
    let needs_patient = runtime.enumeration.is_some()
        || names.iter().any(|name| {
            runtime
                .rate_limits
                .get(name)
                .is_some_and(|p| p.spec.key == RateLimitKey::SubjectPatient)
        });
    let patient = if needs_patient {
        super::authorize::patient_of(route, ctx, query, headers)
    } else {
        None
    };

    let mut refused: Option<Limited> = None;
    for name in names {
        let Some(policy) = runtime.rate_limits.get(name) else {
            continue;
        };
        let counted = match (policy.spec.key, subject, &patient) {
            (RateLimitKey::ClientIp, _, _) | (RateLimitKey::Subject, None, _) => {
                policy.check(ctx.client)
            }
            (RateLimitKey::Subject, Some(subject), _) => policy.check(subject),
            (RateLimitKey::Route, _, _) => policy.check(route.name.as_str()),
            (RateLimitKey::SubjectPatient, Some(subject), Some(patient)) => {
                policy.check((subject, patient.as_str()))
            }
            // No subject or no patient: this policy does not apply to the request.
            (RateLimitKey::SubjectPatient, _, _) => Ok(()),
        };
        if let Err(limited) = counted {
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
    }
    if let Some(limited) = refused {
        return Err(Rejection::RateLimited(limited));
    }

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
