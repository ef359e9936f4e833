//! Operations items: the Prometheus alert rules deployed, and the running gateway's metrics and
//! refused config reloads.

use super::{item, Live};
use crate::config::Config;
use crate::selfcheck::{Item, Status};

pub(super) fn alerts(config: &Config, items: &mut Vec<Item>) {
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

pub(super) fn operations(live: Option<&Live>, items: &mut Vec<Item>) {
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
