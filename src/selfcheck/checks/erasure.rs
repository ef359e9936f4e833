//! Erasure items: whether erasure is configured, open, overdue and failed requests, and the
//! ledger kept apart from the data directory.

use super::{age_days, item, now_ms};
use crate::config::Config;
use crate::selfcheck::{Item, Status};

/// Whether erasures survive a restore of the data directory: the ledger must exist apart
/// from it (docs/operations.md, "Back up and restore").
pub(super) fn erasure_ledger(config: &Config) -> Item {
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

pub(super) fn erasure(config: &Config, items: &mut Vec<Item>) {
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
