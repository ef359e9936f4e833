//! Field protection items: whether it is on and on which routes, the key ring file and its
//! permissions, the ring's rotation age, the per-patient key store.

use std::os::unix::fs::PermissionsExt;
use std::time::SystemTime;

use super::{age_days, item};
use crate::config::Config;
use crate::selfcheck::{Item, Status};

pub(super) fn fields(config: &Config, items: &mut Vec<Item>) {
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
