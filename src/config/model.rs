//! The configuration as written in YAML: strict types (unknown keys are rejected), safe
//! defaults for every limit. `config/wardgate.yaml` documents each key; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::units::{ByteSize, HumanDuration, Method};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub security_headers: SecurityHeaders,
}

// ---------------------------------------------------------------------------------------------
// The proxy listener
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub tls: ServerTls,
    #[serde(default)]
    pub limits: Limits,
    /// Peers whose `X-Forwarded-*` headers are believed (load balancers in front of us).
    #[serde(default)]
    pub trusted_proxies: Vec<IpNet>,
    #[serde(default)]
    pub paths: PathRules,
    #[serde(default = "defaults::grace_period")]
    pub shutdown_grace_period: HumanDuration,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA bundle that client certificates must chain to; enables mTLS.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub client_auth: ClientAuth,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// Every client must present a certificate signed by `client_ca`.
    #[default]
    Required,
    /// A certificate is verified when presented; clients without one are still served.
    Optional,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub header_read_timeout: HumanDuration,
    pub tls_handshake_timeout: HumanDuration,
    pub idle_timeout: HumanDuration,
    pub max_header_size: ByteSize,
    pub max_body_size: ByteSize,
    pub max_connections: usize,
    pub http2_max_concurrent_streams: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HumanDuration(Duration::from_secs(10)),
            tls_handshake_timeout: HumanDuration(Duration::from_secs(10)),
            idle_timeout: HumanDuration(Duration::from_secs(60)),
            max_header_size: ByteSize(16 * 1024),
            max_body_size: ByteSize(1024 * 1024),
            max_connections: 10_000,
            http2_max_concurrent_streams: 100,
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PathRules {
    /// Allow `;` in paths (matrix parameters, `;jsessionid=`). Off: a `;` is a classic way to
    /// make a gateway and a backend disagree on the path.
    pub allow_semicolon: bool,
}

// ---------------------------------------------------------------------------------------------
// Admin, logs, response headers
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    #[serde(default = "defaults::admin_listen")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: defaults::admin_listen(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter: `info`, `debug`, `wardgate=debug,hyper=info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Headers added to every response. A key set to `null` leaves that header out.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityHeaders {
    pub strict_transport_security: Option<String>,
    pub referrer_policy: Option<String>,
    pub frame_options: Option<String>,
    pub content_security_policy: Option<String>,
}

impl Default for SecurityHeaders {
    fn default() -> Self {
        SecurityHeaders {
            strict_transport_security: Some("max-age=31536000; includeSubDomains".to_owned()),
            referrer_policy: Some("no-referrer".to_owned()),
            frame_options: Some("DENY".to_owned()),
            content_security_policy: None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upstreams and routes
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` or `https://host:port`, optionally with a path prefix.
    pub url: String,
    #[serde(default = "defaults::connect_timeout")]
    pub connect_timeout: HumanDuration,
    #[serde(default = "defaults::response_timeout")]
    pub response_timeout: HumanDuration,
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    #[serde(default)]
    pub pool: PoolConfig,
    /// Speak HTTP/2 to this upstream (prior knowledge over plain TCP, ALPN over TLS).
    #[serde(default)]
    pub http2: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTls {
    /// CA bundle the upstream's certificate must chain to; the system roots when absent.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Client certificate and key presented to the upstream (mTLS to the backend).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Name to verify the certificate against, when it differs from the URL's host.
    #[serde(default)]
    pub server_name: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PoolConfig {
    pub max_idle_per_host: usize,
    pub idle_timeout: HumanDuration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_idle_per_host: 64,
            idle_timeout: HumanDuration(Duration::from_secs(90)),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// A stable name used in metrics, logs and (later) audit records.
    pub name: String,
    /// A path template: `/api/patients/{patient_id}/records`; `{*rest}` matches the remainder.
    pub path: String,
    pub methods: Vec<Method>,
    pub upstream: String,
    /// Overrides `server.limits.max_body_size` for this route (uploads need more).
    #[serde(default)]
    pub max_body_size: Option<ByteSize>,
    /// Allow HTTP/1.1 `Upgrade: websocket` on this route.
    #[serde(default)]
    pub websocket: bool,
    #[serde(default)]
    pub cors: Option<CorsConfig>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorsConfig {
    /// Exact origins (`https://consult.example-hospital.cn`), or `*` without credentials.
    pub allowed_origins: Vec<String>,
    /// Defaults to the route's methods.
    #[serde(default)]
    pub allowed_methods: Vec<Method>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub exposed_headers: Vec<String>,
    #[serde(default)]
    pub allow_credentials: bool,
    #[serde(default = "defaults::cors_max_age")]
    pub max_age: HumanDuration,
}

mod defaults {
    use super::*;

    pub fn grace_period() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9090))
    }
    pub fn connect_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(3))
    }
    pub fn response_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn cors_max_age() -> HumanDuration {
        HumanDuration(Duration::from_secs(600))
    }
}
