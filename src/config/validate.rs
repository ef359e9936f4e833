//! Checks that need more than one key or more than a type: names are unique, routes name an
//! upstream that exists, URLs and origins are well formed, limits are within what the server
//! can honour. Files referenced by the config are checked when the runtime is built.

use std::collections::HashSet;

use super::{AuthMode, Config, CorsConfig, Invalid, RedactMode, UpstreamConfig, ValueFrom};
use crate::crypto::json_path::JsonPath;

/// hyper refuses a read buffer smaller than this; headers must fit in it.
const MIN_HEADER_SIZE: u64 = 8 * 1024;

pub fn validate(config: &Config) -> Vec<Invalid> {
    let mut problems = Vec::new();
    check_server(config, &mut problems);
    for (name, upstream) in &config.upstreams {
        check_upstream(&format!("upstreams.{name}"), upstream, &mut problems);
    }
    check_routes(config, &mut problems);
    check_access_control(config, &mut problems);
    check_audit(config, &mut problems);
    check_field_protection(config, &mut problems);
    check_rate_limits(config, &mut problems);
    check_erasure(config, &mut problems);
    if !matches!(config.review.language.as_str(), "en" | "zh-CN") {
        problems.push(Invalid::new("review.language", "en or zh-CN"));
    }
    if let Err(err) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        problems.push(Invalid::new(
            "log.level",
            format!("invalid log filter: {err}"),
        ));
    }
    problems
}

fn check_server(config: &Config, problems: &mut Vec<Invalid>) {
    let limits = &config.server.limits;
    if limits.max_header_size.0 < MIN_HEADER_SIZE {
        problems.push(Invalid::new(
            "server.limits.max_header_size",
            "must be at least 8KiB",
        ));
    }
    if limits.max_connections == 0 {
        problems.push(Invalid::new(
            "server.limits.max_connections",
            "must be at least 1",
        ));
    }
    if limits.http2_max_concurrent_streams == 0 {
        problems.push(Invalid::new(
            "server.limits.http2_max_concurrent_streams",
            "must be at least 1",
        ));
    }
    // A zero timeout would close every connection at once, not disable the check.
    for (key, timeout) in [
        (
            "server.limits.header_read_timeout",
            limits.header_read_timeout,
        ),
        (
            "server.limits.tls_handshake_timeout",
            limits.tls_handshake_timeout,
        ),
        ("server.limits.idle_timeout", limits.idle_timeout),
        ("server.limits.body_read_timeout", limits.body_read_timeout),
    ] {
        if timeout.0.is_zero() {
            problems.push(Invalid::new(key, "must be longer than 0s"));
        }
    }
    if config.server.listen == config.admin.listen && config.server.listen.port() != 0 {
        problems.push(Invalid::new(
            "admin.listen",
            "the admin listener must not share the proxy listener's address",
        ));
    }
}

fn check_upstream(key: &str, upstream: &UpstreamConfig, problems: &mut Vec<Invalid>) {
    let url_key = format!("{key}.url");
    match upstream.url.parse::<http::Uri>() {
        Err(err) => problems.push(Invalid::new(&url_key, format!("invalid URL: {err}"))),
        Ok(uri) => {
            match uri.scheme_str() {
                Some("http") | Some("https") => {}
                _ => problems.push(Invalid::new(
                    &url_key,
                    "the URL must start with http:// or https://",
                )),
            }
            if uri.host().is_none_or(str::is_empty) {
                problems.push(Invalid::new(&url_key, "the URL has no host"));
            }
            if uri.query().is_some() {
                problems.push(Invalid::new(&url_key, "the URL must not carry a query"));
            }
            if upstream.tls.is_some() && uri.scheme_str() != Some("https") {
                problems.push(Invalid::new(
                    format!("{key}.tls"),
                    "tls is configured but the URL is not https://",
                ));
            }
        }
    }
    if let Some(tls) = &upstream.tls {
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            problems.push(Invalid::new(
                format!("{key}.tls"),
                "client_cert and client_key must be given together",
            ));
        }
    }
}

fn check_routes(config: &Config, problems: &mut Vec<Invalid>) {
    let mut names = HashSet::new();
    for (i, route) in config.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        let name_ok = !route.name.is_empty()
            && route
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            problems.push(Invalid::new(
                format!("{key}.name"),
                "a route name is letters, digits, '-', '_' or '.'",
            ));
        } else if !names.insert(route.name.as_str()) {
            problems.push(Invalid::new(
                format!("{key}.name"),
                format!("route name {:?} is used twice", route.name),
            ));
        }
        if !route.path.starts_with('/') {
            problems.push(Invalid::new(
                format!("{key}.path"),
                "a path template starts with '/'",
            ));
        }
        if route.methods.is_empty() {
            problems.push(Invalid::new(
                format!("{key}.methods"),
                "list the methods this route accepts",
            ));
        }
        if !config.upstreams.contains_key(&route.upstream) {
            let known: Vec<&str> = config.upstreams.keys().map(String::as_str).collect();
            problems.push(Invalid::new(
                format!("{key}.upstream"),
                format!(
                    "unknown upstream {:?} (defined: {})",
                    route.upstream,
                    known.join(", ")
                ),
            ));
        }
        if let Some(cors) = &route.cors {
            check_cors(&format!("{key}.cors"), cors, problems);
        }
    }
}

fn check_access_control(config: &Config, problems: &mut Vec<Invalid>) {
    let plain_name = |text: &str| {
        !text.is_empty()
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_:.".contains(&b))
    };
    for (i, route) in config.routes.iter().enumerate() {
        let key = format!("routes[{i}]");
        for (field, value) in [("resource", &route.resource), ("action", &route.action)] {
            if let Some(value) = value {
                if !plain_name(value) {
                    problems.push(Invalid::new(
                        format!("{key}.{field}"),
                        "letters, digits, '-', '_', ':' or '.'",
                    ));
                }
            }
        }
        for (field, source) in [
            ("patient", &route.patient),
            ("department", &route.department),
        ] {
            let Some(source) = source else { continue };
            if source.from == ValueFrom::Path {
                let in_template = route.path.contains(&format!("{{{}}}", source.name))
                    || route.path.contains(&format!("{{*{}}}", source.name));
                if !in_template {
                    problems.push(Invalid::new(
                        format!("{key}.{field}.name"),
                        format!(
                            "the path template {} has no parameter {{{}}}",
                            route.path, source.name
                        ),
                    ));
                }
            }
        }
        if route.auth == AuthMode::None {
            continue;
        }
        if route.resource.is_none() {
            problems.push(Invalid::new(
                format!("{key}.resource"),
                "a route with auth required or optional names its resource (or says auth: none)",
            ));
        }
        if config.policy.is_none() {
            problems.push(Invalid::new(
                format!("{key}.auth"),
                "authorized routes need a policy section",
            ));
        }
        if config.identity.is_none() && route.auth == AuthMode::Required {
            problems.push(Invalid::new(
                format!("{key}.auth"),
                "auth: required needs an identity section",
            ));
        }
    }
    let Some(jwt) = config
        .identity
        .as_ref()
        .and_then(|identity| identity.jwt.as_ref())
    else {
        return;
    };
    if jwt.jwks_file.is_none() && jwt.jwks_url.is_none() && jwt.hs256_secret_file.is_none() {
        problems.push(Invalid::new(
            "identity.jwt",
            "no keys: set jwks_file, jwks_url or hs256_secret_file",
        ));
    }
    for (i, algorithm) in jwt.algorithms.iter().enumerate() {
        if crate::identity::jwt::parse_algorithm(algorithm).is_none() {
            problems.push(Invalid::new(
                format!("identity.jwt.algorithms[{i}]"),
                format!("{algorithm:?} is not accepted; use RS256, ES256 or EdDSA (HS256 only through hs256_secret_file)"),
            ));
        }
    }
    if jwt.audiences.is_empty() {
        problems.push(Invalid::new(
            "identity.jwt.audiences",
            "list at least one audience",
        ));
    }
    if let Some(url) = &jwt.jwks_url {
        let loopback = |host: &str| {
            host == "localhost"
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        };
        match url.parse::<http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("https") => {}
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some_and(loopback) => {}
            Ok(_) => problems.push(Invalid::new(
                "identity.jwt.jwks_url",
                "keys must be fetched over https:// (http:// only on loopback)",
            )),
            Err(err) => problems.push(Invalid::new(
                "identity.jwt.jwks_url",
                format!("invalid URL: {err}"),
            )),
        }
    }
}

fn check_audit(config: &Config, problems: &mut Vec<Invalid>) {
    let audit = &config.audit;
    if audit.retention.0 < MIN_RETENTION {
        problems.push(Invalid::new(
            "audit.retention",
            "records are kept at least 180d, so every six-monthly review can see them",
        ));
    }
    for (key, value) in [
        ("audit.checkpoint_every", audit.checkpoint_every as usize),
        ("audit.queue_capacity", audit.queue_capacity),
        ("audit.batch_max", audit.batch_max),
    ] {
        if value == 0 {
            problems.push(Invalid::new(key, "must be at least 1"));
        }
    }
    if audit.group_commit_wait.0 > MAX_GROUP_COMMIT_WAIT {
        problems.push(Invalid::new(
            "audit.group_commit_wait",
            "at most 1s: every durable request in the batch waits as long",
        ));
    }
    if let Some(id) = &audit.instance_id {
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            || id.is_empty()
        {
            problems.push(Invalid::new(
                "audit.instance_id",
                "letters, digits, '-', '_' or '.'",
            ));
        }
    }
}

/// 180 days: the rules ask for permission reviews every six months, which read the trail.
const MIN_RETENTION: std::time::Duration = std::time::Duration::from_secs(180 * 86_400);
/// The longest a batch may wait for records on their way (MySQL caps its group commit delay
/// at the same second).
const MAX_GROUP_COMMIT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

fn check_cors(key: &str, cors: &CorsConfig, problems: &mut Vec<Invalid>) {
    if cors.allowed_origins.is_empty() {
        problems.push(Invalid::new(
            format!("{key}.allowed_origins"),
            "list at least one origin",
        ));
    }
    for (i, origin) in cors.allowed_origins.iter().enumerate() {
        let origin_key = format!("{key}.allowed_origins[{i}]");
        if origin == "*" {
            if cors.allow_credentials {
                problems.push(Invalid::new(
                    origin_key,
                    "'*' cannot be combined with allow_credentials: name the origins",
                ));
            }
            continue;
        }
        let well_formed = origin.parse::<http::Uri>().is_ok_and(|uri| {
            matches!(uri.scheme_str(), Some("http" | "https"))
                && uri.host().is_some()
                && uri.path_and_query().is_none_or(|pq| pq.as_str() == "/")
                && !origin.ends_with('/')
        });
        if !well_formed {
            problems.push(Invalid::new(
                origin_key,
                format!("{origin:?} is not an origin such as https://consult.example.org"),
            ));
        }
    }
}

fn check_field_protection(config: &Config, problems: &mut Vec<Invalid>) {
    const PLAIN: &str = "`plain` is granted by the policy, not configured: add \
                         `p, <role>, <relation>, field:<name>, reveal` to the policy file";
    if let Some(protection) = &config.field_protection {
        if protection.key_ring_file.is_some() == protection.key_ring_env.is_some() {
            problems.push(Invalid::new(
                "field_protection",
                "set exactly one of key_ring_file and key_ring_env",
            ));
        }
        if protection.key_cache_capacity == 0 {
            problems.push(Invalid::new(
                "field_protection.key_cache_capacity",
                "must be at least 1",
            ));
        }
        for (name, field) in &protection.fields {
            let key = format!("field_protection.fields.{name}");
            if !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
            {
                problems.push(Invalid::new(
                    &key,
                    "a field name is letters, digits, '-', '_' or '.'",
                ));
            }
            if field.redact == RedactMode::Plain {
                problems.push(Invalid::new(format!("{key}.redact"), PLAIN));
            }
            for (role, mode) in &field.roles {
                if *mode == RedactMode::Plain {
                    problems.push(Invalid::new(format!("{key}.roles.{role}"), PLAIN));
                }
            }
        }
    }
    for (i, route) in config.routes.iter().enumerate() {
        if route.fields.is_empty() {
            continue;
        }
        let key = format!("routes[{i}].fields");
        let Some(protection) = &config.field_protection else {
            problems.push(Invalid::new(
                &key,
                "field rules need a `field_protection` section (the key ring and the fields)",
            ));
            continue;
        };
        if route.patient.is_none() {
            problems.push(Invalid::new(
                &key,
                "field rules need the route to name its patient (`patient:`): fields are encrypted under the patient's key",
            ));
        }
        if route.auth == AuthMode::None {
            problems.push(Invalid::new(
                &key,
                "a route with field rules cannot be `auth: none`",
            ));
        }
        if route.websocket {
            problems.push(Invalid::new(
                &key,
                "field rules cannot apply to WebSocket messages: a route with fields cannot be `websocket: true`",
            ));
        }
        for (name, paths) in &route.fields {
            if !protection.fields.contains_key(name) {
                let known: Vec<&str> = protection.fields.keys().map(String::as_str).collect();
                problems.push(Invalid::new(
                    format!("{key}.{name}"),
                    format!(
                        "unknown field {name:?} (field_protection.fields defines: {})",
                        known.join(", ")
                    ),
                ));
            }
            if paths.is_empty() {
                problems.push(Invalid::new(
                    format!("{key}.{name}"),
                    "list the JSON paths where the field appears",
                ));
            }
            for (j, path) in paths.iter().enumerate() {
                if let Err(err) = JsonPath::parse(path) {
                    problems.push(Invalid::new(format!("{key}.{name}[{j}]"), err.to_string()));
                }
            }
        }
    }
}

fn check_rate_limits(config: &Config, problems: &mut Vec<Invalid>) {
    let limits = &config.rate_limits;
    let known: Vec<&str> = limits.policies.keys().map(String::as_str).collect();
    let mut check_names = |key: String, names: &[String]| {
        for (i, name) in names.iter().enumerate() {
            if !limits.policies.contains_key(name) {
                problems.push(Invalid::new(
                    format!("{key}[{i}]"),
                    format!(
                        "unknown rate limit policy {name:?} (rate_limits.policies defines: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    ),
                ));
            }
        }
    };
    check_names("rate_limits.default".to_owned(), &limits.default);
    for (i, route) in config.routes.iter().enumerate() {
        if let Some(names) = &route.rate_limits {
            check_names(format!("routes[{i}].rate_limits"), names);
        }
    }
    for (name, policy) in &limits.policies {
        if policy.burst == Some(0) {
            problems.push(Invalid::new(
                format!("rate_limits.policies.{name}.burst"),
                "must be at least 1",
            ));
        }
    }
    if limits.max_keys == 0 {
        problems.push(Invalid::new("rate_limits.max_keys", "must be at least 1"));
    }
    if config.server.limits.max_in_flight == 0 {
        problems.push(Invalid::new(
            "server.limits.max_in_flight",
            "must be at least 1",
        ));
    }
    for (name, upstream) in &config.upstreams {
        if upstream.max_in_flight == 0 {
            problems.push(Invalid::new(
                format!("upstreams.{name}.max_in_flight"),
                "must be at least 1",
            ));
        }
        if upstream.pool.max_connections == 0 {
            problems.push(Invalid::new(
                format!("upstreams.{name}.pool.max_connections"),
                "must be at least 1",
            ));
        }
    }
    if let Some(enumeration) = &config.enumeration {
        if enumeration.max_patients.is_empty() {
            problems.push(Invalid::new(
                "enumeration.max_patients",
                "give a limit per role, or `default`",
            ));
        }
        for (role, max) in &enumeration.max_patients {
            if *max == 0 {
                problems.push(Invalid::new(
                    format!("enumeration.max_patients.{role}"),
                    "must be at least 1",
                ));
            }
        }
        if enumeration.window.0.is_zero() {
            problems.push(Invalid::new("enumeration.window", "must be longer than 0s"));
        }
    }
}

fn check_erasure(config: &Config, problems: &mut Vec<Invalid>) {
    let Some(erasure) = &config.erasure else {
        return;
    };
    if erasure.systems.is_empty() {
        problems.push(Invalid::new(
            "erasure.systems",
            "name at least one system that holds patient data",
        ));
    }
    if erasure.retry.max_attempts == 0 {
        problems.push(Invalid::new(
            "erasure.retry.max_attempts",
            "must be at least 1",
        ));
    }
    for (i, hold) in erasure.legal_holds.iter().enumerate() {
        if !erasure
            .systems
            .values()
            .any(|system| system.data_class == hold.data_class)
        {
            problems.push(Invalid::new(
                format!("erasure.legal_holds[{i}].data_class"),
                format!("no system holds data class {:?}", hold.data_class),
            ));
        }
    }
    if config.admin.token_file.is_none() {
        problems.push(Invalid::new(
            "erasure",
            "erasure requests go through the admin API: set admin.token_file",
        ));
    }
}
