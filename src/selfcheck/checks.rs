//! The inspection items, by area. Each looks at the real thing: the certificate file, the
//! policy, the key ring file's permissions, the audit chain (verified), the review and
//! erasure stores, the backup marker, and the running gateway's metrics when its admin
//! listener is given.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::{Item, Status};
use crate::config::{AuthMode, Config, Durability};

const DAY_MS: i64 = 86_400_000;

/// What the running gateway shows: its metrics text (admin listener), and what real
/// handshakes with its proxy listener negotiated, per protocol version.
pub struct Live {
    pub metrics: Result<String, String>,
    pub handshakes: Option<Vec<(&'static str, Result<String, String>)>>,
}

/// Handshakes with the listener at `addr`, pinning the certificate the config names.
pub async fn handshakes(
    config: &Config,
    addr: std::net::SocketAddr,
) -> Option<Vec<(&'static str, Result<String, String>)>> {
    let leaf = crate::tls::load_certs(&config.server.tls.cert)
        .ok()?
        .into_iter()
        .next()?;
    Some(super::handshake::probe(addr, leaf).await)
}

fn item(id: &str, status: Status, found: impl Into<String>, fix: &str) -> Item {
    Item {
        id: id.to_owned(),
        status,
        found: found.into(),
        fix: if status == Status::Pass {
            String::new()
        } else {
            fix.to_owned()
        },
    }
}

fn now_ms() -> i64 {
    crate::erasure::store::now_ms()
}

fn age_days(ms: i64) -> i64 {
    (now_ms() - ms) / DAY_MS
}

/// Every item, in area order.
pub fn run(config: &Config, live: Option<&Live>) -> Vec<Item> {
    let mut items = Vec::new();
    transport(config, &mut items);
    live_transport(live, &mut items);
    access(config, &mut items);
    fields(config, &mut items);
    audit(config, &mut items);
    reviews(config, &mut items);
    erasure(config, &mut items);
    recovery(config, &mut items);
    alerts(config, &mut items);
    operations(live, &mut items);
    items
}

fn alerts(config: &Config, items: &mut Vec<Item>) {
    let Some(path) = &config.operations.alerts_file else {
        items.push(item(
            "operations.alerts",
            Status::Warn,
            "no alert rules file configured (operations.alerts_file)",
            "deploy wardgate's Prometheus alert rules and name the file in operations.alerts_file",
        ));
        return;
    };
    let rules = std::fs::read_to_string(path).map(|text| {
        text.lines()
            .filter(|line| line.trim_start().starts_with("- alert:"))
            .count()
    });
    items.push(match rules {
        Ok(count) if count > 0 => item(
            "operations.alerts",
            Status::Pass,
            format!("{} holds {count} alert rules", path.display()),
            "",
        ),
        Ok(_) => item(
            "operations.alerts",
            Status::Fail,
            format!("{} holds no alert rule", path.display()),
            "deploy wardgate's alert rules",
        ),
        Err(err) => item(
            "operations.alerts",
            Status::Fail,
            format!("{}: {err}", path.display()),
            "deploy wardgate's alert rules where operations.alerts_file says",
        ),
    });
}

fn live_transport(live: Option<&Live>, items: &mut Vec<Item>) {
    let Some(handshakes) = live.and_then(|live| live.handshakes.as_ref()) else {
        items.push(item(
            "transport.handshake",
            Status::Warn,
            "not checked: give the running gateway's listener (--proxy) to handshake with it",
            "run selfcheck against the running gateway",
        ));
        return;
    };
    let tls13 = handshakes.iter().find(|(v, _)| *v == "TLS 1.3");
    let ok = tls13.is_some_and(|(_, result)| result.is_ok());
    let found = handshakes
        .iter()
        .map(|(version, result)| match result {
            Ok(suite) => format!("{version}: {suite}"),
            Err(err) => format!("{version}: refused ({err})"),
        })
        .collect::<Vec<_>>()
        .join("; ");
    items.push(item(
        "transport.handshake",
        if ok { Status::Pass } else { Status::Fail },
        format!("handshakes with the listener: {found}"),
        "the listener must complete a TLS 1.3 handshake with the configured certificate",
    ));
}

fn transport(config: &Config, items: &mut Vec<Item>) {
    match crate::tls::server_config(&config.server.tls) {
        Err(problems) => items.push(item(
            "transport.certificate",
            Status::Fail,
            format!(
                "the listener's certificate or key cannot be used: {}",
                problems
                    .iter()
                    .map(|p| p.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            "install a valid certificate and key (server.tls)",
        )),
        Ok(tls) => {
            let suites: Vec<String> = tls
                .config
                .crypto_provider()
                .cipher_suites
                .iter()
                .map(|suite| format!("{:?}", suite.suite()))
                .collect();
            // CBC modes, static RSA key exchange (no forward secrecy) and SHA-1 MACs.
            let weak = suites
                .iter()
                .any(|s| s.contains("CBC") || s.starts_with("TLS_RSA_") || s.ends_with("_SHA"));
            items.push(item(
                "transport.protocols",
                if weak { Status::Fail } else { Status::Pass },
                format!(
                    "TLS 1.3 and 1.2 only; suites offered: {}",
                    suites.join(", ")
                ),
                "offer only AEAD suites with forward secrecy",
            ));
            match tls.cert_not_after {
                None => items.push(item(
                    "transport.certificate",
                    Status::Warn,
                    "the certificate's expiry could not be read",
                    "check server.tls.cert",
                )),
                Some(not_after) => {
                    let days = (not_after * 1000 - now_ms()) / DAY_MS;
                    let status = match days {
                        d if d < 0 => Status::Fail,
                        d if d < 14 => Status::Fail,
                        d if d < 30 => Status::Warn,
                        _ => Status::Pass,
                    };
                    items.push(item(
                        "transport.certificate",
                        status,
                        format!("the listener's certificate expires in {days} days"),
                        "renew the certificate, then `systemctl reload wardgate` (SIGHUP)",
                    ));
                }
            }
        }
    }
    let plain: Vec<&String> = config
        .upstreams
        .iter()
        .filter(|(_, upstream)| {
            upstream.url.starts_with("http://")
                && !["http://127.", "http://localhost", "http://[::1]"]
                    .iter()
                    .any(|local| upstream.url.starts_with(local))
        })
        .map(|(name, _)| name)
        .collect();
    let mutual = config
        .upstreams
        .values()
        .filter(|u| u.tls.as_ref().is_some_and(|t| t.client_cert.is_some()))
        .count();
    items.push(item(
        "transport.upstreams",
        if plain.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        if plain.is_empty() {
            format!(
                "every remote upstream uses TLS; {mutual} of {} with a client certificate (mTLS)",
                config.upstreams.len()
            )
        } else {
            format!(
                "upstreams reached over plain HTTP across the network: {}",
                plain
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        "use https:// (and a client certificate) for upstreams on other hosts",
    ));
    let hsts = config.security_headers.strict_transport_security.as_deref();
    items.push(item(
        "transport.hsts",
        if hsts.is_some_and(|v| v.contains("max-age=") && !v.contains("max-age=0")) {
            Status::Pass
        } else {
            Status::Fail
        },
        match hsts {
            Some(value) => format!("responses carry Strict-Transport-Security: {value}"),
            None => "responses carry no Strict-Transport-Security".to_owned(),
        },
        "set security_headers.strict_transport_security (max-age of a year)",
    ));
}

fn access(config: &Config, items: &mut Vec<Item>) {
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

fn fields(config: &Config, items: &mut Vec<Item>) {
    let unprotected: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| {
            r.patient.is_some()
                && r.fields.is_empty()
                && r.methods.iter().any(|m| m.0 != http::Method::DELETE)
        })
        .map(|r| r.name.as_str())
        .collect();
    let Some(protection) = &config.field_protection else {
        items.push(item(
            "fields.protection",
            Status::Fail,
            "no field protection: sensitive fields are stored in plain by the backend",
            "configure field_protection and `fields:` on routes that carry patient data",
        ));
        return;
    };
    items.push(item(
        "fields.routes",
        if unprotected.is_empty() {
            Status::Pass
        } else {
            Status::Warn
        },
        if unprotected.is_empty() {
            "every route that names a patient has field rules".to_owned()
        } else {
            format!(
                "routes naming a patient without field rules: {}",
                unprotected.join(", ")
            )
        },
        "name the sensitive fields of these routes' bodies (`fields:`), or confirm they carry none",
    ));
    if let Some(path) = &protection.key_ring_file {
        match std::fs::metadata(path) {
            Err(err) => items.push(item(
                "fields.key_ring",
                Status::Fail,
                format!("{}: {err}", path.display()),
                "create it with `wardgate keys init`",
            )),
            Ok(metadata) => {
                let mode = metadata.permissions().mode() & 0o777;
                items.push(item(
                    "fields.key_ring_permissions",
                    if mode & 0o077 == 0 {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    format!("{} has mode {mode:o}", path.display()),
                    "chmod 600 the key ring",
                ));
            }
        }
    }
    let source = crate::crypto::manage::ring_source(config);
    match source.map(|s| s.load()) {
        Ok(Ok(ring)) => {
            let newest = ring.versions().last().cloned();
            let created = newest
                .as_ref()
                .and_then(|v| humantime::parse_rfc3339_weak(&v.created).ok())
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_millis() as i64);
            let days = created.map(age_days);
            items.push(item(
                "fields.key_rotation",
                if days.is_some_and(|d| d <= 365) {
                    Status::Pass
                } else {
                    Status::Warn
                },
                format!(
                    "key ring version {} made {} days ago",
                    ring.newest(),
                    days.map_or("?".to_owned(), |d| d.to_string())
                ),
                "rotate the key ring yearly: `wardgate keys rotate`",
            ));
        }
        Ok(Err(err)) => items.push(item(
            "fields.key_rotation",
            Status::Fail,
            err.to_string(),
            "fix the key ring",
        )),
        Err(err) => items.push(item(
            "fields.key_rotation",
            Status::Fail,
            err.to_string(),
            "fix field_protection",
        )),
    }
    match crate::crypto::manage::list(config) {
        Ok(listing) => items.push(item(
            "fields.patient_keys",
            Status::Pass,
            format!(
                "{} patient keys live, {} shredded",
                listing.counts.live, listing.counts.shredded
            ),
            "",
        )),
        Err(err) => items.push(item(
            "fields.patient_keys",
            Status::Fail,
            err.to_string(),
            "check the key store in the data directory",
        )),
    }
}

fn audit(config: &Config, items: &mut Vec<Item>) {
    let buffered: Vec<&str> = config
        .routes
        .iter()
        .filter(|r| r.patient.is_some() && r.audit == Some(Durability::Buffered))
        .map(|r| r.name.as_str())
        .collect();
    items.push(item(
        "audit.durable",
        if buffered.is_empty() {
            Status::Pass
        } else {
            Status::Fail
        },
        if buffered.is_empty() {
            "every route that names a patient waits for its audit record (durable)".to_owned()
        } else {
            format!(
                "patient-data routes with buffered audit: {}",
                buffered.join(", ")
            )
        },
        "remove `audit: buffered` from routes that reach patient data",
    ));
    let location = crate::store::Location::for_tools(config);
    let store = match &location {
        Ok(location) => crate::audit::check_store(location),
        Err(err) => Err(crate::store::StoreError::Config(err.to_string())),
    };
    items.push(item(
        "audit.store",
        if store.is_ok() {
            Status::Pass
        } else {
            Status::Fail
        },
        match &store {
            Ok(checked) => checked.clone(),
            Err(err) => err.to_string(),
        },
        "restore write access to the audit store",
    ));
    let key = crate::audit::load_signing_key(&config.audit.signing_key_file);
    let reader = location.and_then(crate::audit::store::AuditReader::open);
    match (key, reader) {
        (Ok(key), Ok(reader)) => {
            match crate::audit::verify::verify(&reader, &key.verifying_key(), 1) {
                Ok(verification) => items.push(item(
                    "audit.chain",
                    if verification.problem.is_none() {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    verification
                        .to_string()
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned(),
                    "investigate: the audit trail was altered (see `wardgate audit verify`)",
                )),
                Err(err) => items.push(item(
                    "audit.chain",
                    Status::Fail,
                    err.to_string(),
                    "check the audit store",
                )),
            }
            let newest = reader
                .instances()
                .unwrap_or_default()
                .iter()
                .filter_map(|instance| reader.checkpoints(instance).ok()?.last().cloned())
                .filter_map(|c| humantime::parse_rfc3339_weak(&c.time).ok())
                .max();
            match newest {
                Some(time) => {
                    let hours = SystemTime::now()
                        .duration_since(time)
                        .unwrap_or_default()
                        .as_secs()
                        / 3600;
                    items.push(item(
                        "audit.checkpoint",
                        if hours <= 24 { Status::Pass } else { Status::Warn },
                        format!("the last signed checkpoint is {hours} hours old"),
                        "check that the gateway runs and signs checkpoints (audit.checkpoint_interval)",
                    ));
                }
                None => items.push(item(
                    "audit.checkpoint",
                    Status::Warn,
                    "no signed checkpoint yet",
                    "run traffic through the gateway",
                )),
            }
        }
        (Err(err), _) => items.push(item(
            "audit.chain",
            Status::Fail,
            err,
            "fix audit.signing_key_file",
        )),
        (_, Err(err)) => items.push(item(
            "audit.chain",
            Status::Fail,
            err.to_string(),
            "check the audit store",
        )),
    }
    let days = config.audit.retention.0.as_secs() / 86_400;
    items.push(item(
        "audit.retention",
        if days >= 180 {
            Status::Pass
        } else {
            Status::Fail
        },
        format!("audit records are kept {days} days"),
        "keep audit records at least 180 days",
    ));
}

fn reviews(config: &Config, items: &mut Vec<Item>) {
    match crate::store::Location::for_tools(config)
        .and_then(|stores| crate::review::store::history(&stores))
    {
        Err(err) => items.push(item(
            "reviews.last_signed",
            Status::Fail,
            err.to_string(),
            "check the review store",
        )),
        Ok(history) => match history.first() {
            None => items.push(item(
                "reviews.last_signed",
                Status::Fail,
                "no permission review was ever signed",
                "run `wardgate review report`, review it, then `wardgate review sign`",
            )),
            Some(last) => {
                let days = age_days(last.signed_at);
                items.push(item(
                    "reviews.last_signed",
                    if days <= 183 {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    format!(
                        "the last review was signed by {} {days} days ago",
                        last.reviewer
                    ),
                    "permissions are reviewed every six months: run and sign a review",
                ));
                let follow_ups = last
                    .decisions
                    .iter()
                    .filter(|d| d.decision == "follow_up")
                    .count();
                items.push(item(
                    "reviews.follow_ups",
                    if follow_ups == 0 {
                        Status::Pass
                    } else {
                        Status::Warn
                    },
                    format!("{follow_ups} follow-ups open from the last review"),
                    "close the follow-ups of the last review",
                ));
            }
        },
    }
}

/// Whether erasures survive a restore of the data directory: the ledger must exist apart
/// from it (docs/operations.md, "Back up and restore").
fn erasure_ledger(config: &Config) -> Item {
    let fix = "set `erasure.ledger_file` on storage apart from the data directory and its backups";
    let Some(path) = config
        .erasure
        .as_ref()
        .and_then(|e| e.ledger_file.as_deref())
    else {
        return item(
            "erasure.ledger",
            Status::Warn,
            "no erasure ledger: restoring a data directory backup taken before an erasure would bring the patient's data key back",
            fix,
        );
    };
    if path.starts_with(&config.data_dir) {
        return item(
            "erasure.ledger",
            Status::Fail,
            format!(
                "the erasure ledger {} is inside the data directory: a restore replaces it with an older copy",
                path.display()
            ),
            fix,
        );
    }
    match crate::erasure::ledger::Ledger::new(path).patients() {
        Ok(patients) => item(
            "erasure.ledger",
            Status::Pass,
            format!(
                "{} erased patient(s) listed in {}, apart from the data directory",
                patients.len(),
                path.display()
            ),
            fix,
        ),
        Err(err) => item(
            "erasure.ledger",
            Status::Fail,
            err.to_string(),
            "restore the ledger from its newest copy",
        ),
    }
}

fn erasure(config: &Config, items: &mut Vec<Item>) {
    if config.erasure.is_none() {
        items.push(item(
            "erasure.configured",
            Status::Warn,
            "no erasure workflow is configured",
            "configure `erasure` with every system that holds patient data",
        ));
        return;
    }
    items.push(erasure_ledger(config));
    match crate::store::Location::for_tools(config)
        .and_then(crate::erasure::ErasureStore::open)
        .and_then(|store| store.list())
    {
        Err(err) => items.push(item(
            "erasure.requests",
            Status::Fail,
            err.to_string(),
            "check the erasure store",
        )),
        Ok(requests) => {
            let now = now_ms();
            let overdue: Vec<&str> = requests
                .iter()
                .filter(|r| {
                    r.finished_at.is_none()
                        && !matches!(r.state.as_str(), "rejected" | "cancelled")
                        && r.due_at < now
                })
                .map(|r| r.id.as_str())
                .collect();
            items.push(item(
                "erasure.overdue",
                if overdue.is_empty() {
                    Status::Pass
                } else {
                    Status::Fail
                },
                if overdue.is_empty() {
                    format!(
                        "no erasure request is overdue ({} requests in all)",
                        requests.len()
                    )
                } else {
                    format!("overdue erasure requests: {}", overdue.join(", "))
                },
                "approve and complete the overdue requests (`wardgate erasure list`)",
            ));
            let failed: Vec<&str> = requests
                .iter()
                .filter(|r| r.state == "failed")
                .map(|r| r.id.as_str())
                .collect();
            items.push(item(
                "erasure.failed",
                if failed.is_empty() {
                    Status::Pass
                } else {
                    Status::Warn
                },
                if failed.is_empty() {
                    "no erasure request failed".to_owned()
                } else {
                    format!("failed erasure requests: {}", failed.join(", "))
                },
                "fix the failing systems and submit the requests again",
            ));
            for system in config.erasure.iter().flat_map(|e| e.systems.keys()) {
                let last = requests
                    .iter()
                    .flat_map(|r| r.steps.iter())
                    .filter(|s| &s.system == system && s.state == "verified")
                    .filter_map(|s| s.done_at)
                    .max();
                items.push(item(
                    &format!("erasure.verified.{system}"),
                    if last.is_some() {
                        Status::Pass
                    } else {
                        Status::Warn
                    },
                    match last {
                        Some(at) => {
                            format!("{system}: last verified erasure {} days ago", age_days(at))
                        }
                        None => format!("{system}: no erasure was ever verified"),
                    },
                    "run an erasure drill on a test patient to prove the connector works",
                ));
            }
        }
    }
}

fn recovery(config: &Config, items: &mut Vec<Item>) {
    match &config.recovery.backup_marker {
        None => items.push(item(
            "recovery.backup",
            Status::Warn,
            "no backup marker configured: the last backup is unknown",
            "set recovery.backup_marker to a file your backup job touches",
        )),
        Some(path) => match std::fs::metadata(path).and_then(|m| m.modified()) {
            Err(_) => items.push(item(
                "recovery.backup",
                Status::Fail,
                format!("{} is missing: no backup recorded", path.display()),
                "run the backup of the data directory and key ring",
            )),
            Ok(modified) => {
                let hours = SystemTime::now()
                    .duration_since(modified)
                    .unwrap_or_default()
                    .as_secs()
                    / 3600;
                items.push(item(
                    "recovery.backup",
                    if hours <= 26 {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    format!("the last backup finished {hours} hours ago"),
                    "back up the data directory and key ring daily",
                ));
            }
        },
    }
    match &config.recovery.restore_drill {
        None => items.push(item(
            "recovery.restore_drill",
            Status::Warn,
            "no restore drill recorded",
            "restore a backup on a spare machine, time it, record it in recovery.restore_drill",
        )),
        Some(drill) => {
            let within = drill.took.0 <= Duration::from_secs(4 * 3600);
            items.push(item(
                "recovery.restore_drill",
                if within { Status::Pass } else { Status::Fail },
                format!(
                    "restore drill on {} took {} (target: 4h)",
                    drill.at,
                    humantime::format_duration(drill.took.0)
                ),
                "make the restore fit in 4 hours, then drill again",
            ));
        }
    }
}

fn operations(live: Option<&Live>, items: &mut Vec<Item>) {
    let Some(live) = live else {
        items.push(item(
            "operations.metrics",
            Status::Warn,
            "not checked: give --admin and --token-file to inspect the running gateway",
            "run selfcheck against the running gateway",
        ));
        return;
    };
    match &live.metrics {
        Err(err) => items.push(item(
            "operations.metrics",
            Status::Fail,
            format!("the metrics endpoint is not reachable: {err}"),
            "check the admin listener",
        )),
        Ok(text) => {
            items.push(item(
                "operations.metrics",
                Status::Pass,
                "the metrics endpoint answers",
                "",
            ));
            let failures: f64 = text
                .lines()
                .find(|line| line.starts_with("wardgate_config_reload_failures_total "))
                .and_then(|line| line.split_whitespace().nth(1)?.parse().ok())
                .unwrap_or(0.0);
            items.push(item(
                "operations.reloads",
                if failures == 0.0 {
                    Status::Pass
                } else {
                    Status::Warn
                },
                format!("{failures} refused config reloads since start"),
                "fix the config the last reload refused (see the gateway's log)",
            ));
        }
    }
}
