//! `wardgate policy explain`: how a request would fare, stage by stage, without sending it:
//! the canonical path, the route, the principal, the relation, the decision and the rule.
//! Security teams use it to check a policy change and to answer "why was this denied?".

use std::fmt::Write as _;

use http::{HeaderMap, Method};

use crate::config::{AuthMode, ConfigErrors, LoadedConfig};
use crate::pipeline::authorize::assess;
use crate::pipeline::{canonical_path, Matched, Rejection};
use crate::policy::Relation;
use crate::runtime::Runtime;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
}

pub async fn explain(
    loaded: &LoadedConfig,
    token: Option<&str>,
    method: &Method,
    path_and_query: &str,
    headers: &HeaderMap,
) -> Result<String, ExplainError> {
    let runtime = Runtime::build(&loaded.config)
        .await
        .map_err(|problems| loaded.locate(problems))?;
    let mut out = String::new();
    let (path, query) = match path_and_query.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path_and_query, None),
    };
    let line = |out: &mut String, label: &str, text: &str| {
        let _ = writeln!(out, "{label:<11}{text}");
    };
    line(&mut out, "request", &format!("{method} {path_and_query}"));
    let path = match canonical_path(path, &runtime.paths) {
        Ok(path) => path,
        Err(err) => {
            line(
                &mut out,
                "decision",
                &format!("400, refused before routing: {err}"),
            );
            return Ok(out);
        }
    };
    line(&mut out, "path", &path);
    let Matched { route, params } = match runtime.routes.select(&path, method) {
        Ok(matched) => matched,
        Err(rejection) => {
            line(
                &mut out,
                "decision",
                &format!(
                    "{}, {rejection}; never forwarded",
                    rejection.status().as_u16()
                ),
            );
            return Ok(out);
        }
    };
    line(
        &mut out,
        "route",
        &format!(
            "{} ({}) -> upstream {}",
            route.name, route.template, route.upstream.name
        ),
    );
    if route.auth == AuthMode::None {
        line(
            &mut out,
            "decision",
            "forwarded without identity or authorization (auth: none)",
        );
        return Ok(out);
    }
    let principal = match (token, &runtime.identity) {
        (None, _) => None,
        (Some(token), Some(identity)) => match &identity.jwt {
            Some(verifier) => match verifier.verify(token).await {
                Ok(principal) => Some(principal),
                Err(err) => {
                    line(
                        &mut out,
                        "principal",
                        &format!("none: {err} ({})", err.reason()),
                    );
                    line(&mut out, "decision", "401, the token is refused");
                    return Ok(out);
                }
            },
            None => None,
        },
        (Some(_), None) => None,
    };
    match &principal {
        Some(p) => line(
            &mut out,
            "principal",
            &format!(
                "{} roles=[{}] department={} patient={} ({})",
                p.subject,
                p.roles.join(", "),
                p.department.as_deref().unwrap_or("-"),
                p.patient_id.as_deref().unwrap_or("-"),
                p.method.as_str()
            ),
        ),
        None if route.auth == AuthMode::Required => {
            line(&mut out, "principal", "none");
            line(&mut out, "decision", "401, this route requires identity");
            return Ok(out);
        }
        None => line(&mut out, "principal", "anonymous"),
    }
    let Some(policy) = &runtime.policy else {
        line(&mut out, "decision", "403, no policy is configured");
        return Ok(out);
    };
    let assessment = match assess(
        policy,
        &route,
        method,
        principal.as_deref(),
        &params,
        query,
        headers,
    ) {
        Ok(assessment) => assessment,
        Err(rejection @ (Rejection::MissingScope { .. } | Rejection::Forbidden)) => {
            line(
                &mut out,
                "decision",
                &format!("{}, {rejection}", rejection.status().as_u16()),
            );
            return Ok(out);
        }
        Err(other) => {
            line(
                &mut out,
                "decision",
                &format!("{}, {other}", other.status().as_u16()),
            );
            return Ok(out);
        }
    };
    line(
        &mut out,
        "resource",
        &format!(
            "{}, action {}",
            route.resource.as_deref().unwrap_or("-"),
            assessment.action
        ),
    );
    line(
        &mut out,
        "scope",
        &format!(
            "patient={} department={}",
            assessment.patient.as_deref().unwrap_or("-"),
            assessment.department.as_deref().unwrap_or("-")
        ),
    );
    let relations: Vec<&str> = assessment.relations.iter().map(|r| r.as_str()).collect();
    line(&mut out, "relation", &relations.join(", "));
    let decision = &assessment.decision;
    if decision.allowed {
        line(
            &mut out,
            "decision",
            &format!(
                "ALLOW by `{}` (role {})",
                decision.rule,
                decision.role.as_deref().unwrap_or("-")
            ),
        );
    } else {
        line(&mut out, "decision", "DENY (403): no rule allows it");
        if let (Some(principal), Some(_)) = (&principal, &assessment.patient) {
            if runtime
                .break_glass
                .eligible_role(&principal.roles)
                .is_some()
            {
                let emergency = policy.decide(
                    &principal.roles,
                    &[Relation::BreakGlass],
                    route.resource.as_deref().unwrap_or_default(),
                    &assessment.action,
                );
                let header = runtime.break_glass.header();
                if emergency.allowed {
                    line(
                        &mut out,
                        "emergency",
                        &format!(
                            "would ALLOW with a `{header}: <reason>` header, by `{}`",
                            emergency.rule
                        ),
                    );
                } else {
                    line(
                        &mut out,
                        "emergency",
                        "would not help: no break_glass rule allows it",
                    );
                }
            }
        }
    }
    if let Some(shadow) = &runtime.shadow_policy {
        let roles = principal
            .as_ref()
            .map(|p| p.roles.clone())
            .unwrap_or_default();
        let candidate = shadow.decide(
            &roles,
            &assessment.relations,
            route.resource.as_deref().unwrap_or_default(),
            &assessment.action,
        );
        line(
            &mut out,
            "shadow",
            &format!(
                "{} by `{}`",
                if candidate.allowed { "ALLOW" } else { "DENY" },
                candidate.rule
            ),
        );
    }
    Ok(out)
}
