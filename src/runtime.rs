//! The runtime: everything a request needs that is built from the config (route table,
//! upstream clients, identity verifiers, the policy's decision table, header rules). It is
//! built whole, then swapped in whole on reload; a request holds one snapshot from start to
//! end.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;
use zeroize::Zeroizing;

use crate::config::{Config, FieldProtectionConfig, Invalid, PathRules};
use crate::crypto::keyring::RingSource;
use crate::crypto::redact::Redactions;
use crate::identity::{read_secret, Identity};
use crate::pipeline::RouteTable;
use crate::policy::{BreakGlassRules, Policy, Question};
use crate::proxy::headers::ResponseHeaders;
use crate::proxy::identity_headers::{IdentitySigner, StripRules};
use crate::proxy::upstream;
use crate::ratelimit::{EnumerationDetector, RateLimits};

pub struct Runtime {
    pub routes: RouteTable,
    pub paths: PathRules,
    pub trusted_proxies: Vec<IpNet>,
    pub response_headers: ResponseHeaders,
    pub idle_timeout: Duration,
    pub body_read_timeout: Duration,
    pub identity: Option<Identity>,
    pub policy: Option<Policy>,
    /// A candidate policy asked alongside; it never decides.
    pub shadow_policy: Option<Policy>,
    pub break_glass: BreakGlassRules,
    pub strip_headers: StripRules,
    pub consume_authorization: bool,
    pub signer: Option<IdentitySigner>,
    /// The bearer token of mutating admin endpoints.
    pub admin_token: Option<Zeroizing<Vec<u8>>>,
    /// How protected fields are shown to callers who may not reveal them, and the limits of
    /// the bodies the gateway reads to apply field rules.
    pub field_protection: Option<FieldProtection>,
    pub rate_limits: RateLimits,
    pub enumeration: Option<Arc<EnumerationDetector>>,
}

pub struct FieldProtection {
    pub ring: RingSource,
    pub redactions: Redactions,
    pub max_response_body_size: u64,
}

impl FieldProtection {
    fn build(config: &FieldProtectionConfig) -> Result<FieldProtection, Vec<Invalid>> {
        let (ring, key) = match (&config.key_ring_file, &config.key_ring_env) {
            (Some(path), _) => (
                RingSource::File(path.clone()),
                "field_protection.key_ring_file",
            ),
            (None, Some(name)) => (
                RingSource::Env(name.clone()),
                "field_protection.key_ring_env",
            ),
            (None, None) => {
                return Err(vec![Invalid::new(
                    "field_protection",
                    "set key_ring_file or key_ring_env",
                )])
            }
        };
        // Checked here so that `wardgate check` and a reload catch an unreadable ring.
        ring.load()
            .map_err(|err| vec![Invalid::new(key, err.to_string())])?;
        Ok(FieldProtection {
            ring,
            redactions: Redactions::build(&config.fields),
            max_response_body_size: config.max_response_body_size.0,
        })
    }
}

/// Collects the problems of several independent builds.
struct Problems(Vec<Invalid>);

impl Problems {
    fn take<T>(&mut self, result: Result<T, Vec<Invalid>>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(mut found) => {
                self.0.append(&mut found);
                None
            }
        }
    }
}

impl Runtime {
    pub async fn build(config: &Config) -> Result<Runtime, Vec<Invalid>> {
        let mut problems = Problems(Vec::new());
        let upstreams = problems.take(upstream::build_all(&config.upstreams));
        let response_headers = problems.take(ResponseHeaders::build(&config.security_headers));
        let routes = match &upstreams {
            Some(upstreams) => problems.take(RouteTable::build(config, upstreams)),
            None => None,
        };
        let questions: BTreeSet<Question> = routes
            .iter()
            .flat_map(|table| table.routes().iter().flat_map(|route| route.questions()))
            .collect();
        let (policy, shadow_policy) = match &config.policy {
            None => (None, None),
            Some(files) => {
                let policy = problems
                    .take(Policy::load(&files.model, &files.policy, "policy", &questions).await);
                let shadow = match &files.shadow {
                    Some(shadow) => problems
                        .take(Policy::load(&files.model, shadow, "policy", &questions).await),
                    None => None,
                };
                (policy, shadow)
            }
        };
        let identity = match &config.identity {
            Some(identity) => problems.take(Identity::build(identity).await),
            None => None,
        };
        let default_identity = crate::config::IdentityDefaults::strip_headers();
        let strip_patterns = config
            .identity
            .as_ref()
            .map_or(&default_identity, |i| &i.strip_headers);
        let strip_headers =
            problems.take(StripRules::build("identity.strip_headers", strip_patterns));
        let signer = config
            .identity
            .as_ref()
            .and_then(|identity| identity.upstream_signing_key_file.as_ref())
            .and_then(|path| {
                problems.take(
                    read_secret(path, 32)
                        .map(IdentitySigner::new)
                        .map_err(|msg| {
                            vec![Invalid::new("identity.upstream_signing_key_file", msg)]
                        }),
                )
            });
        let break_glass = problems.take(BreakGlassRules::build(&config.break_glass));
        let field_protection = config
            .field_protection
            .as_ref()
            .and_then(|protection| problems.take(FieldProtection::build(protection)));
        let admin_token = config.admin.token_file.as_ref().and_then(|path| {
            problems.take(
                read_secret(path, 16).map_err(|msg| vec![Invalid::new("admin.token_file", msg)]),
            )
        });
        match (routes, response_headers, strip_headers, break_glass) {
            (Some(routes), Some(response_headers), Some(strip_headers), Some(break_glass))
                if problems.0.is_empty() =>
            {
                Ok(Runtime {
                    routes,
                    paths: config.server.paths.clone(),
                    trusted_proxies: config.server.trusted_proxies.clone(),
                    response_headers,
                    idle_timeout: config.server.limits.idle_timeout.0,
                    body_read_timeout: config.server.limits.body_read_timeout.0,
                    identity,
                    policy,
                    shadow_policy,
                    break_glass,
                    strip_headers,
                    consume_authorization: config
                        .identity
                        .as_ref()
                        .is_some_and(|i| i.consume_authorization),
                    signer,
                    admin_token,
                    field_protection,
                    rate_limits: RateLimits::build(&config.rate_limits),
                    enumeration: config
                        .enumeration
                        .as_ref()
                        .map(|c| Arc::new(EnumerationDetector::new(c))),
                })
            }
            _ => Err(problems.0),
        }
    }

    pub fn is_trusted_proxy(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// Keeps the state that must outlive a reload from the runtime in force: the counts of
    /// unchanged rate limit policies and, when its settings are the same, the enumeration
    /// detector's windows.
    pub fn carry_over(&mut self, previous: &Runtime) {
        self.rate_limits.carry_over(&previous.rate_limits);
        if let (Some(new), Some(old)) = (&mut self.enumeration, &previous.enumeration) {
            if new.config == old.config {
                *new = old.clone();
            }
        }
    }
}
