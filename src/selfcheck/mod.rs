//! `wardgate selfcheck`: the periodic self-inspection of a deployment, item by item, each with
//! a stable id, what was found (evidence from the real config, files, stores and, when given,
//! the running gateway's admin listener) and how to fix it. Each run is kept in
//! `data_dir/selfcheck.db`, so a run says what changed since the previous inspection.

mod checks;
pub mod handshake;
pub mod history;
pub mod html;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use checks::{handshakes, run, Live};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Stable id: `area.what` (`transport.certificate`, `audit.chain`).
    pub id: String,
    pub status: Status,
    /// What was found.
    pub found: String,
    /// How to fix it (empty when it passes).
    pub fix: String,
}

impl Item {
    pub fn area(&self) -> &str {
        self.id.split('.').next().unwrap_or_default()
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}  {}  {}", self.status, self.id, self.found)?;
        if !self.fix.is_empty() {
            write!(f, "  -> {}", self.fix)?;
        }
        Ok(())
    }
}

/// What changed since the previous inspection.
#[derive(Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Failing or warning before, passing now.
    pub fixed: Vec<String>,
    /// Failing or warning now, passing (or absent) before.
    pub new: Vec<String>,
    /// Failing or warning both times.
    pub still_open: Vec<String>,
}

pub fn changes(previous: &[Item], current: &[Item]) -> Changes {
    let open = |items: &[Item], id: &str| {
        items
            .iter()
            .any(|item| item.id == id && item.status != Status::Pass)
    };
    let mut changes = Changes::default();
    for item in current {
        match (open(previous, &item.id), item.status != Status::Pass) {
            (true, false) => changes.fixed.push(item.id.clone()),
            (false, true) => changes.new.push(item.id.clone()),
            (true, true) => changes.still_open.push(item.id.clone()),
            (false, false) => {}
        }
    }
    changes
}

/// One inspection: its items, what changed since the previous one (none: the first), when.
#[derive(Debug, Serialize)]
pub struct Inspection {
    pub at_ms: i64,
    pub items: Vec<Item>,
    pub changes: Option<Changes>,
}

impl Inspection {
    pub fn failures_by_area(&self) -> std::collections::BTreeMap<String, i64> {
        let mut areas = std::collections::BTreeMap::new();
        for item in &self.items {
            let count = areas.entry(item.area().to_owned()).or_insert(0);
            if item.status == Status::Fail {
                *count += 1;
            }
        }
        areas
    }
}

/// Runs every check, compares with the previous inspection and records this one (a history
/// that cannot be written is reported in the log, never fatal).
pub fn inspect(config: &crate::config::Config, live: Option<&Live>) -> Inspection {
    let at_ms = crate::erasure::store::now_ms();
    let items = run(config, live);
    let stores = crate::store::Location::for_tools(config);
    let previous = stores
        .as_ref()
        .map_err(ToString::to_string)
        .and_then(|stores| history::previous(stores).map_err(|err| err.to_string()));
    let changes = match previous {
        Ok(previous) => previous.map(|(_, previous)| changes(&previous, &items)),
        Err(err) => {
            tracing::warn!("the inspection history is unavailable: {err}");
            None
        }
    };
    if let Ok(stores) = &stores {
        if let Err(err) = history::record(stores, at_ms, &items) {
            tracing::warn!("this inspection could not be recorded: {err}");
        }
    }
    Inspection {
        at_ms,
        items,
        changes,
    }
}
