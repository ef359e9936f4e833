//! Access items: deny by default, public routes, break-glass, and the roles the policy grants
//! against the roles tokens carried in the last 30 days (from the audit trail).

use std::time::Duration;

use super::{item, now_ms, DAY_MS};
use crate::config::{AuthMode, Config};
use crate::selfcheck::{Item, Status};

pub(super) fn access(config: &Config, items: &mut Vec<Item>) {
    items.push(item(
        "access.deny_by_default",
        if config.policy.is_some() {
            Status::Pass
        } else {
            Status::Fail
        },
        format!(
            "{} routes; unmatched requests get 404; {}",
            config.routes.len(),
            if config.policy.is_some() {
                "a casbin policy decides every authenticated route"
            } else {
                "no policy is configured"
            }
        ),
        "configure `policy` (model and policy files)",
    ));
    let public_clinical: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| {
            r.auth == AuthMode::None
                && (r.patient.is_some() || r.resource.is_some() || !r.fields.is_empty())
        })
        .map(|r| r.name.as_str())
        .collect();
    items.push(item(
        "access.public_routes",
        if public_clinical.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        if public_clinical.is_empty() {
            "no route that names a patient or a resource is public (auth: none)".to_owned()
        } else {
            format!(
                "public routes reaching patient data: {}",
                public_clinical.join(", ")
            )
        },
        "set auth: required on routes that reach patient data",
    ));
    let glass = &config.break_glass;
    let boxed = glass.min_reason_length >= 10 && glass.duration.0 <= Duration::from_secs(4 * 3600);
    items.push(item(
        "access.break_glass",
        if boxed { Status::Pass } else { Status::Warn },
        format!(
            "break-glass needs a reason of {} characters and lasts {}",
            glass.min_reason_length,
            humantime::format_duration(glass.duration.0)
        ),
        "require a reason of at least 10 characters and a grant of at most 4h",
    ));
    if let Some(policy) = &config.policy {
        match crate::policy::read_lines(&policy.policy) {
            Err(_) => items.push(item(
                "access.policy_roles",
                Status::Fail,
                "the policy file cannot be read",
                "fix policy.policy",
            )),
            Ok(lines) => {
                let granted: std::collections::BTreeSet<&str> = lines
                    .iter()
                    .filter(|l| l[0] == "p")
                    .map(|l| l[1].as_str())
                    .collect();
                let parents: std::collections::BTreeSet<&str> = lines
                    .iter()
                    .filter(|l| l[0] == "g")
                    .map(|l| l[2].as_str())
                    .collect();
                let empty: Vec<&str> = lines
                    .iter()
                    .filter(|l| l[0] == "g")
                    .map(|l| l[2].as_str())
                    .filter(|parent| {
                        !granted.contains(parent)
                            && !parents.is_empty()
                            && !granted.contains(parent)
                    })
                    .collect();
                items.push(item(
                    "access.policy_roles",
                    if empty.is_empty() {
                        Status::Pass
                    } else {
                        Status::Warn
                    },
                    if empty.is_empty() {
                        format!(
                            "{} roles hold grants; every inherited role exists",
                            granted.len()
                        )
                    } else {
                        format!("inherited roles with no grant: {}", empty.join(", "))
                    },
                    "remove or define the roles named in g lines",
                ));
                let since = now_ms() - 30 * DAY_MS;
                match crate::review::build(config, since, now_ms(), now_ms()) {
                    Ok(report) => {
                        let ungranted: Vec<String> = report
                            .ungranted_roles
                            .iter()
                            .map(|u| format!("{} ({})", u.role, u.subject))
                            .collect();
                        items.push(item(
                            "access.token_roles",
                            if ungranted.is_empty() { Status::Pass } else { Status::Warn },
                            if ungranted.is_empty() {
                                "every role seen in tokens in the last 30 days is granted by the policy".to_owned()
                            } else {
                                format!("roles in tokens that no policy grants (last 30 days): {}", ungranted.join(", "))
                            },
                            "align the identity provider's roles with the policy",
                        ));
                    }
                    Err(err) => items.push(item(
                        "access.token_roles",
                        Status::Warn,
                        format!("not checked: {err}"),
                        "make the audit store readable",
                    )),
                }
            }
        }
    }
}
