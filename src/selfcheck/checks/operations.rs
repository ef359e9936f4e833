//! Operations items: the Prometheus alert rules deployed, and the running gateway's metrics,
//! refused config reloads and open-files limit.

use super::{item, Live};
use crate::config::Config;
use crate::selfcheck::{Item, Status};
use crate::server::open_files;

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

pub(super) fn operations(config: &Config, live: Option<&Live>, items: &mut Vec<Item>) {
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
            let failures = sample(text, "wardgate_config_reload_failures_total").unwrap_or(0.0);
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
            items.push(open_files_item(config, text));
        }
    }
}

/// The running gateway's open-files limit against what its config lets it hold open.
fn open_files_item(config: &Config, metrics: &str) -> Item {
    let needs = open_files::Needs::of(config);
    let Some(limit) = sample(metrics, "wardgate_process_max_fds") else {
        return item(
            "operations.open_files",
            Status::Warn,
            "the gateway does not report its open-files limit (wardgate_process_max_fds, Linux only)",
            "check the limit the service manager sets against server.limits.max_connections",
        );
    };
    let open = sample(metrics, "wardgate_process_open_fds").unwrap_or(0.0);
    if limit >= needs.total() as f64 {
        item(
            "operations.open_files",
            Status::Pass,
            format!("the open-files limit {limit} covers the {needs}; {open} open"),
            "",
        )
    } else {
        item(
            "operations.open_files",
            Status::Warn,
            format!("the open-files limit {limit} is below the {needs}; {open} open"),
            open_files::FIX,
        )
    }
}

/// The value of an unlabelled sample in Prometheus' text format.
fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_connections: usize) -> Config {
        let yaml = format!(
            "server:\n  listen: 127.0.0.1:0\n  tls: {{ cert: unused.pem, key: unused-key.pem }}\n  limits: {{ max_connections: {max_connections} }}\naudit: {{ pseudonym_key_file: unused.key, signing_key_file: unused-signing.pem }}\nupstreams:\n  a: {{ url: \"http://127.0.0.1:9\", pool: {{ max_connections: 100 }} }}\n  b: {{ url: \"http://127.0.0.1:10\" }}\nroutes:\n  - {{ name: info, path: /info, methods: [GET], upstream: a, auth: none }}\n"
        );
        crate::config::parse(&yaml, "t.yaml".as_ref(), ".".as_ref())
            .unwrap_or_else(|errors| panic!("{errors}"))
            .config
    }

    const METRICS: &str = "# TYPE wardgate_process_max_fds gauge\nwardgate_process_max_fds 1024\nwardgate_process_max_fds_other 1\nwardgate_process_open_fds 37\n";

    #[test]
    fn the_open_files_limit_is_held_against_connections_pools_and_own_files() {
        // 600 clients + 100 and 256 to the upstreams + 64 = 1020: within 1024.
        let within = open_files_item(&config(600), METRICS);
        assert_eq!(within.status, Status::Pass);
        assert_eq!(
            within.found,
            "the open-files limit 1024 covers the 1020 descriptors (server.limits.max_connections \
             600, the upstreams' pool.max_connections 356, 64 for the gateway's own files); 37 open"
        );

        let beyond = open_files_item(&config(605), METRICS);
        assert_eq!(beyond.status, Status::Warn);
        assert!(
            beyond
                .found
                .starts_with("the open-files limit 1024 is below the 1025 descriptors"),
            "{}",
            beyond.found
        );
        assert!(beyond.fix.contains("LimitNOFILE="), "{}", beyond.fix);

        let unreported = open_files_item(&config(600), "wardgate_process_open_fds 37\n");
        assert_eq!(unreported.status, Status::Warn);
        assert!(unreported.found.contains("does not report"));
    }
}
