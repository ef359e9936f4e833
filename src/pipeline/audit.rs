//! Stage 9, audit: every request, whatever ended it, leaves exactly one record. It runs last
//! because the record carries the outcome (decision, rule, status); on durable routes the
//! response waits here until the record is committed, and if the store cannot commit it the
//! client gets 503 instead of a success nobody can account for.

use std::time::SystemTime;

use http::{Response, StatusCode};

use super::{error_response, RequestCtx};
use crate::audit::on_the_way::Announced;
use crate::audit::AuditRecord;
use crate::config::{AuthMode, Durability};
use crate::proxy::body::ProxyBody;
use crate::server::Shared;

pub async fn seal(
    gateway: &Shared,
    ctx: &mut RequestCtx,
    announced: Option<Announced>,
    response: Response<ProxyBody>,
) -> Response<ProxyBody> {
    let durability = ctx
        .route
        .as_ref()
        .map_or(Durability::Buffered, |route| route.durability);
    if durability == Durability::NotAudited {
        return response;
    }
    let record = record(ctx, response.status());
    match gateway.audit.submit(record, durability, announced).await {
        Ok(()) => response,
        Err(_) => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the audit trail is unavailable; try again shortly",
            &ctx.request_id,
        ),
    }
}

/// The request's record. The patient's pseudonym and the field names move into it: nothing
/// after the audit stage reads them.
fn record(ctx: &mut RequestCtx, status: StatusCode) -> AuditRecord {
    let route = ctx.route.as_deref();
    let principal = ctx.principal.as_ref();
    let time_ms = ctx
        .received_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    let rule = match (&ctx.decision, route) {
        (Some(decision), _) => Some(decision.rule.to_string()),
        (None, Some(route)) if route.auth == AuthMode::None => Some("auth: none".to_owned()),
        (None, _) if ctx.preflight => Some("cors preflight".to_owned()),
        _ => None,
    };
    AuditRecord {
        seq: 0,
        time: humantime::format_rfc3339_millis(ctx.received_at).to_string(),
        time_ms,
        request_id: ctx.request_id.to_str().unwrap_or_default().to_owned(),
        instance: String::new(),
        subject: principal.map(|p| p.subject.clone()),
        roles: principal.map(|p| p.roles.clone()).unwrap_or_default(),
        auth_method: principal.map(|p| p.method.as_str().to_owned()),
        department: principal.and_then(|p| p.department.clone()),
        client: ctx.client.to_string(),
        method: ctx.method.to_string(),
        route: route.map(|r| r.name.clone()),
        template: route.map(|r| r.template.clone()),
        patient: ctx.patient_ref.take(),
        resource: route.and_then(|r| r.resource.clone()),
        action: route
            .filter(|r| r.resource.is_some())
            .map(|r| r.action_for(&ctx.method).to_owned()),
        decision: ctx.outcome.to_owned(),
        rule,
        reason: ctx.auth_failure.or(ctx.rejected).map(str::to_owned),
        break_glass: ctx.break_glass_reason.clone(),
        fields_revealed: std::mem::take(&mut ctx.fields_revealed),
        fields_masked: std::mem::take(&mut ctx.fields_masked),
        status: status.as_u16(),
        upstream_status: ctx.upstream_status,
        latency_ms: (ctx.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
        flags: ctx.flags.iter().map(|flag| (*flag).to_owned()).collect(),
        prev_hash: String::new(),
    }
}
