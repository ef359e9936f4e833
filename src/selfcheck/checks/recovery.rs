//! Recovery items: the age of the last backup (its marker) and of the last restore drill.

use std::time::{Duration, SystemTime};

use super::item;
use crate::config::Config;
use crate::selfcheck::{Item, Status};

pub(super) fn recovery(config: &Config, items: &mut Vec<Item>) {
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
