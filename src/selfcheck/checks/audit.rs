//! Audit items: durable routes, the store, the hash chain (verified), the age of the last
//! signed checkpoint, retention.

use std::time::SystemTime;

use super::item;
use crate::config::{Config, Durability};
use crate::selfcheck::{Item, Status};

pub(super) fn audit(config: &Config, items: &mut Vec<Item>) {
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
