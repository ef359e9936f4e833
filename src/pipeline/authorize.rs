//! Stage 5, authorize: may this principal do this action to this resource for this patient?
//! The route names the resource and action and where the request names the patient and
//! department; the principal's relation to the patient is computed here; the policy answers
//! from its precomputed table. Denied requests may still pass by break-glass (an eligible role,
//! a reason, a time-boxed grant). A shadow policy, when configured, is asked too and only
//! counted. The rule that decided is kept on the request, never shown to the client.

use std::time::Instant;

use http::{HeaderMap, Method};

use super::route::Route;
use super::{Rejection, RequestCtx};
use crate::config::{AuthMode, ValueFrom, ValueSource};
use crate::identity::{is_plain_value, Principal};
use crate::policy::{relations, BreakGlassAsk, Decision, Policy, Question, Relation};
use crate::runtime::Runtime;
use crate::server::Shared;

/// The roles of a caller without identity on an `auth: optional` route.
const ANONYMOUS: &[String] = &[];

/// What the policy says about one request, before break-glass.
pub struct Assessment {
    pub action: String,
    pub patient: Option<String>,
    pub department: Option<String>,
    pub relations: Vec<Relation>,
    pub decision: Decision,
}

/// Asks the policy about a request on a route; no side effects (also used by
/// `wardgate policy explain`).
pub fn assess(
    policy: &Policy,
    route: &Route,
    method: &Method,
    principal: Option<&Principal>,
    params: &[(String, String)],
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Assessment, Rejection> {
    let Some(resource) = route.resource.as_deref() else {
        return Err(Rejection::Forbidden);
    };
    let action = route.action_for(method).to_owned();
    let patient = extract(
        "patient",
        route.patient.as_ref(),
        principal,
        params,
        query,
        headers,
    )?;
    let department = extract(
        "department",
        route.department.as_ref(),
        principal,
        params,
        query,
        headers,
    )?;
    let scoped = route.patient.is_some() || route.department.is_some();
    let roles = principal.map_or(ANONYMOUS, |p| p.roles.as_slice());
    let relations = relations(principal, scoped, patient.as_deref(), department.as_deref());
    let decision = policy.decide(roles, &relations, resource, &action);
    Ok(Assessment {
        action,
        patient,
        department,
        relations,
        decision,
    })
}

pub fn authorize(
    gateway: &Shared,
    runtime: &Runtime,
    ctx: &mut RequestCtx,
    route: &Route,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Rejection> {
    if route.auth == AuthMode::None {
        return Ok(());
    }
    let (Some(policy), Some(resource)) = (&runtime.policy, route.resource.as_deref()) else {
        return Err(Rejection::Forbidden);
    };
    let principal = ctx.principal.as_deref();
    let Assessment {
        action,
        patient,
        relations,
        decision,
        ..
    } = assess(
        policy,
        route,
        &ctx.method,
        principal,
        &ctx.params,
        query,
        headers,
    )?;
    let action = action.as_str();
    let roles = principal.map_or(ANONYMOUS, |p| p.roles.as_slice());
    let request_id = ctx.request_id.to_str().unwrap_or_default();
    let mut decision = decision;
    let mut break_glass_reason = None;
    if !decision.allowed {
        if let (Some(principal), Some(patient)) = (principal, patient.as_deref()) {
            let question = Question {
                resource: resource.to_owned(),
                action: action.to_owned(),
            };
            if let Some((emergency, reason)) = break_glass(
                gateway, runtime, request_id, policy, principal, patient, &question, headers,
            )? {
                decision = emergency;
                break_glass_reason = Some(reason);
            }
        }
    }
    if let Some(shadow) = &runtime.shadow_policy {
        let asked = if decision.relation == Relation::BreakGlass {
            vec![Relation::BreakGlass]
        } else {
            relations.clone()
        };
        let candidate = shadow.decide(roles, &asked, resource, action);
        if candidate.allowed != decision.allowed {
            gateway
                .metrics
                .authz_shadow_mismatch
                .with_label_values(&[resource])
                .inc();
            tracing::info!(
                request_id,
                route = route.name.as_str(),
                resource,
                action,
                active = decision.allowed,
                shadow = candidate.allowed,
                shadow_rule = &*candidate.rule,
                "shadow policy disagrees"
            );
        }
    }
    gateway
        .metrics
        .authz_decisions
        .with_label_values(&[if decision.allowed { "allow" } else { "deny" }, resource])
        .inc();
    tracing::debug!(
        request_id,
        subject = principal.map_or("", |p| p.subject.as_str()),
        resource,
        action,
        relation = decision.relation.as_str(),
        allowed = decision.allowed,
        rule = &*decision.rule,
        "authorization decision"
    );
    let allowed = decision.allowed;
    // Kept for stage 8, which asks the policy which fields this caller may reveal.
    ctx.relations = relations;
    if decision.relation == Relation::BreakGlass {
        ctx.relations.insert(0, Relation::BreakGlass);
    }
    // An erased patient's data is gone: callers who could reach it are told so (410), and
    // nothing is forwarded (no new data is stored for them either). Others just get 403.
    let patient_ref = patient.as_deref().map(|id| gateway.audit.pseudonym(id));
    let erased = allowed
        && match (&gateway.erasure, &patient_ref) {
            (Some(erasure), Some(patient_ref)) => {
                erasure.has_erased_patients() && erasure.is_erased(patient_ref)
            }
            _ => false,
        };
    ctx.patient = patient;
    ctx.patient_ref = patient_ref;
    ctx.decision = Some(decision);
    ctx.break_glass_reason = break_glass_reason;
    if erased {
        Err(Rejection::PatientErased)
    } else if allowed {
        Ok(())
    } else {
        Err(Rejection::Forbidden)
    }
}

/// An emergency grant for a principal denied in the ordinary way: a new one when the request
/// carries a good reason, or one opened earlier and still running. Returns the decision and
/// the grant's reason.
#[allow(clippy::too_many_arguments)]
fn break_glass(
    gateway: &Shared,
    runtime: &Runtime,
    request_id: &str,
    policy: &Policy,
    principal: &Principal,
    patient: &str,
    question: &Question,
    headers: &HeaderMap,
) -> Result<Option<(Decision, String)>, Rejection> {
    let (resource, action) = (question.resource.as_str(), question.action.as_str());
    let rules = &runtime.break_glass;
    let Some(role) = rules.eligible_role(&principal.roles) else {
        return Ok(None);
    };
    let now = Instant::now();
    let open = gateway.grants.active(&principal.subject, patient, now);
    let (reason, new_grant) = match (rules.ask(headers), open) {
        (BreakGlassAsk::ReasonTooShort { min }, None) => {
            return Err(Rejection::BreakGlassReason { min })
        }
        (BreakGlassAsk::Reason(reason), None) => (reason, true),
        (_, Some(reason)) => (reason, false),
        (BreakGlassAsk::NotAsked, None) => return Ok(None),
    };
    let decision = policy.decide(&principal.roles, &[Relation::BreakGlass], resource, action);
    if !decision.allowed {
        return Ok(None);
    }
    if new_grant {
        gateway
            .grants
            .open(&principal.subject, patient, &reason, rules.duration, now);
        gateway
            .metrics
            .break_glass
            .with_label_values(&[role.as_str()])
            .inc();
        tracing::warn!(
            request_id,
            subject = principal.subject.as_str(),
            role = role.as_str(),
            resource,
            action,
            duration = ?rules.duration,
            "break-glass grant opened"
        );
    }
    Ok(Some((decision, reason)))
}

/// Reads the patient or department a request names. A header is believed only from a service
/// account; a value must be plain (no spaces or control characters).
/// The patient a request names, for the limit stage (a request naming none, or naming it
/// badly, is left to authorization to refuse).
pub(super) fn patient_of(
    route: &Route,
    ctx: &RequestCtx,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Option<String> {
    extract(
        "patient",
        route.patient.as_ref(),
        ctx.principal.as_deref(),
        &ctx.params,
        query,
        headers,
    )
    .ok()
    .flatten()
}

fn extract(
    what: &'static str,
    source: Option<&ValueSource>,
    principal: Option<&Principal>,
    params: &[(String, String)],
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<Option<String>, Rejection> {
    let Some(source) = source else {
        return Ok(None);
    };
    let value = match source.from {
        ValueFrom::Path => params
            .iter()
            .find(|(name, _)| *name == source.name)
            .map(|(_, v)| v.clone()),
        ValueFrom::Query => query.and_then(|query| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(name, _)| *name == source.name)
                .map(|(_, value)| value.into_owned())
        }),
        ValueFrom::Header => principal
            .filter(|principal| principal.is_service())
            .and_then(|_| headers.get(source.name.as_str()))
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
    };
    match value {
        Some(value) if is_plain_value(&value) => Ok(Some(value)),
        _ => Err(Rejection::MissingScope {
            what,
            from: source.from,
            name: source.name.clone(),
        }),
    }
}

/// The action a method implies when the route names none.
pub fn action_for_method(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => "read",
        Method::DELETE => "delete",
        _ => "write",
    }
}
