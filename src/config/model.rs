//! The configuration as written in YAML: strict types (unknown keys are rejected), safe
//! defaults for every limit. `config/wardgate.yaml` documents each key; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

use super::units::{ByteSize, HumanDuration, Method, Rate};

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where wardgate keeps its state (the audit store, keys, erasure and review history).
    #[serde(default = "defaults::data_dir")]
    pub data_dir: PathBuf,
    /// State shared by every replica, in PostgreSQL (patient data keys). Absent: each store
    /// is a SQLite file in `data_dir` and one instance serves.
    #[serde(default)]
    pub shared_store: Option<SharedStoreConfig>,
    pub server: ServerConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub log: LogConfig,
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    pub routes: Vec<RouteConfig>,
    #[serde(default)]
    pub security_headers: SecurityHeaders,
    /// Who is calling: JWT bearer tokens and mTLS service accounts.
    #[serde(default)]
    pub identity: Option<IdentityConfig>,
    /// The casbin model and policy that decide access.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    #[serde(default)]
    pub break_glass: BreakGlassConfig,
    #[serde(default)]
    pub reload: ReloadConfig,
    pub audit: AuditConfig,
    /// Field-level encryption: the key ring, and how each sensitive field is shown to callers
    /// the policy does not let reveal it. Routes name the fields their bodies carry.
    #[serde(default)]
    pub field_protection: Option<FieldProtectionConfig>,
    /// Rate limit policies (governor GCRA), attached to routes.
    #[serde(default)]
    pub rate_limits: RateLimitsConfig,
    /// Patient-enumeration detection: a subject touching too many distinct patients.
    #[serde(default)]
    pub enumeration: Option<EnumerationConfig>,
    /// Patient erasure workflows: the systems holding patient data and how to erase them.
    #[serde(default)]
    pub erasure: Option<ErasureConfig>,
    /// The permission review report.
    #[serde(default)]
    pub review: ReviewConfig,
    /// What `wardgate selfcheck` checks about backups and restores.
    #[serde(default)]
    pub recovery: RecoveryConfig,
    /// What `wardgate selfcheck` checks about monitoring.
    #[serde(default)]
    pub operations: OperationsConfig,
}

/// The database replicas share.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedStoreConfig {
    pub postgres: PostgresConfig,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// A file holding the connection string (`postgresql://user:password@host/db` or
    /// `host=... user=... dbname=...`). It may carry a password, so it lives in a file (a
    /// Kubernetes Secret) and is never logged.
    pub url_file: PathBuf,
    /// TLS to the database: the CA its certificate must chain to (the system roots when
    /// absent) and a client certificate. TLS is required unless the host is loopback.
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
    /// How long to wait for a connection, and for the database to acknowledge what was sent.
    #[serde(default = "defaults::postgres_timeout")]
    pub timeout: HumanDuration,
}

/// Monitoring, as the self-inspection sees it.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OperationsConfig {
    /// The Prometheus alert rules file deployed for wardgate (checked to exist and hold rules).
    pub alerts_file: Option<PathBuf>,
}

/// Backups and restore drills, as the self-inspection sees them.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// A file the backup job touches after each successful backup of the data directory and
    /// the key ring; its age is the age of the last backup.
    pub backup_marker: Option<PathBuf>,
    /// The last restore drill: when (`2026-10-01`) and how long the restore took (`2h10m`),
    /// against the 4-hour target.
    pub restore_drill: Option<RestoreDrill>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreDrill {
    pub at: String,
    pub took: HumanDuration,
}

/// The permission review report.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// `en` or `zh-CN`.
    pub language: String,
    /// Subjects without activity for this long are listed as dormant.
    pub dormant_after: HumanDuration,
}

impl Default for ReviewConfig {
    fn default() -> Self {
        ReviewConfig {
            language: "en".to_owned(),
            dormant_after: HumanDuration(Duration::from_secs(30 * 86_400)),
        }
    }
}

impl Config {
    /// Every file the config names, which a reload reads again.
    pub fn referenced_files(&self) -> Vec<PathBuf> {
        let tls = &self.server.tls;
        let mut files = vec![tls.cert.clone(), tls.key.clone()];
        files.extend(tls.client_ca.clone());
        files.extend(self.admin.token_file.clone());
        for upstream in self.upstreams.values() {
            if let Some(tls) = &upstream.tls {
                files.extend(
                    [
                        tls.ca.clone(),
                        tls.client_cert.clone(),
                        tls.client_key.clone(),
                    ]
                    .into_iter()
                    .flatten(),
                );
            }
        }
        if let Some(identity) = &self.identity {
            files.extend(identity.upstream_signing_key_file.clone());
            if let Some(jwt) = &identity.jwt {
                files.extend(
                    [
                        jwt.jwks_file.clone(),
                        jwt.jwks_ca.clone(),
                        jwt.hs256_secret_file.clone(),
                    ]
                    .into_iter()
                    .flatten(),
                );
            }
        }
        if let Some(protection) = &self.field_protection {
            files.extend(protection.key_ring_file.clone());
        }
        if let Some(policy) = &self.policy {
            files.extend(
                [
                    Some(policy.model.clone()),
                    Some(policy.policy.clone()),
                    policy.shadow.clone(),
                ]
                .into_iter()
                .flatten(),
            );
        }
        files
    }
}

/// The audit trail.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Key (at least 32 bytes) for the patient pseudonyms in records.
    pub pseudonym_key_file: PathBuf,
    /// Ed25519 private key (PKCS#8 PEM) that signs checkpoints.
    pub signing_key_file: PathBuf,
    /// This instance's chain name; by default one made on first start and kept in the store.
    #[serde(default)]
    pub instance_id: Option<String>,
    /// A checkpoint is signed after this many records...
    #[serde(default = "defaults::checkpoint_every")]
    pub checkpoint_every: u64,
    /// ...or this much time, whichever comes first.
    #[serde(default = "defaults::checkpoint_interval")]
    pub checkpoint_interval: HumanDuration,
    /// Records waiting for the writer at most; past it requests wait (back-pressure).
    #[serde(default = "defaults::audit_queue")]
    pub queue_capacity: usize,
    /// Records committed in one transaction at most.
    #[serde(default = "defaults::audit_batch")]
    pub batch_max: usize,
    /// How long a batch waits at most for records already on their way (requests whose
    /// upstream has answered) before it is committed; `0s`: commit at once.
    #[serde(default = "defaults::group_commit_wait")]
    pub group_commit_wait: HumanDuration,
    /// Records are kept at least this long (180 days at the least).
    #[serde(default = "defaults::retention")]
    pub retention: HumanDuration,
    /// Also write each committed record as a JSON line to this file (`-`: standard output).
    #[serde(default)]
    pub sink: Option<PathBuf>,
}

/// Field-level encryption settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldProtectionConfig {
    /// The key-encryption key ring (made by `wardgate keys init`); refused when other users
    /// can read it.
    #[serde(default)]
    pub key_ring_file: Option<PathBuf>,
    /// ...or the name of an environment variable holding the ring's JSON.
    #[serde(default)]
    pub key_ring_env: Option<String>,
    /// Patient data keys kept unwrapped in memory at most (wiped when evicted).
    #[serde(default = "defaults::key_cache_capacity")]
    pub key_cache_capacity: usize,
    /// Largest upstream JSON response the gateway buffers to reveal fields in (502 beyond).
    #[serde(default = "defaults::max_response_body_size")]
    pub max_response_body_size: ByteSize,
    /// Sensitive fields by name (the policy's `field:<name>` resource).
    pub fields: BTreeMap<String, FieldConfig>,
}

/// One sensitive field: what callers see who may not reveal it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldConfig {
    /// `mask`, `partial`, `hash` or `remove` (the default). `plain` is never configured: it is
    /// granted by the policy (`p, <role>, <relation>, field:<name>, reveal`).
    #[serde(default)]
    pub redact: RedactMode,
    /// Characters left visible at the start (`mask`: 0, `partial`: 3 by default)...
    #[serde(default)]
    pub keep_first: Option<usize>,
    /// ...and at the end (4 by default).
    #[serde(default)]
    pub keep_last: Option<usize>,
    /// A different redaction for some roles (the most revealing of a caller's roles applies).
    #[serde(default)]
    pub roles: BTreeMap<String, RedactMode>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedactMode {
    Plain,
    Mask,
    Partial,
    Hash,
    #[default]
    Remove,
}

/// Named rate limit policies and the ones routes get by default.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitsConfig {
    pub policies: BTreeMap<String, RateLimitPolicyConfig>,
    /// Policies applied to every route that does not list its own.
    pub default: Vec<String>,
    /// Distinct keys each policy tracks at most; more share buckets (bounded memory).
    pub max_keys: usize,
}

impl Default for RateLimitsConfig {
    fn default() -> Self {
        RateLimitsConfig {
            policies: BTreeMap::new(),
            default: Vec::new(),
            max_keys: 100_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateLimitPolicyConfig {
    /// What is counted: `client_ip`, `subject`, `route` or `subject_patient`.
    pub key: RateLimitKey,
    /// Sustained rate: `100/min`.
    pub rate: Rate,
    /// Requests allowed at once above the rate (at least 1; default: the rate's count).
    #[serde(default)]
    pub burst: Option<u32>,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitKey {
    /// The client's address (the real client behind `server.trusted_proxies`).
    ClientIp,
    /// The authenticated subject (anonymous callers are keyed by address).
    Subject,
    /// The route, whoever calls it.
    Route,
    /// One subject reading one patient's data.
    SubjectPatient,
}

impl RateLimitKey {
    pub fn as_str(self) -> &'static str {
        match self {
            RateLimitKey::ClientIp => "client_ip",
            RateLimitKey::Subject => "subject",
            RateLimitKey::Route => "route",
            RateLimitKey::SubjectPatient => "subject_patient",
        }
    }
}

/// Patient erasure workflows.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureConfig {
    /// A request is due this long after it was received.
    #[serde(default = "defaults::erasure_due")]
    pub due_within: HumanDuration,
    /// The approver must differ from the submitter.
    #[serde(default = "defaults::yes")]
    pub two_person_rule: bool,
    #[serde(default)]
    pub retry: RetryConfig,
    /// Data classes that must be kept (clinical records kept for years by law): systems
    /// holding them are not erased, and the receipt says what was kept and why.
    #[serde(default)]
    pub legal_holds: Vec<LegalHold>,
    /// Systems holding patient data, by name.
    pub systems: BTreeMap<String, ErasureSystem>,
    /// An append-only list of erased patients (pseudonyms), on storage apart from the data
    /// directory and its backups: at every start each patient listed is erased again, so a
    /// restored backup from before an erasure cannot bring a shredded key back.
    #[serde(default)]
    pub ledger_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Attempts per step (deletion or verification) before it fails.
    pub max_attempts: u32,
    pub initial_backoff: HumanDuration,
    pub max_backoff: HumanDuration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            max_attempts: 8,
            initial_backoff: HumanDuration(Duration::from_secs(1)),
            max_backoff: HumanDuration(Duration::from_secs(300)),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegalHold {
    pub data_class: String,
    /// Why the data must be kept (the law or rule), as the receipt will state it.
    pub reason: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErasureSystem {
    /// What the system holds (`consultation_records`, `billing`), for legal holds.
    #[serde(default = "defaults::data_class")]
    pub data_class: String,
    /// The call that deletes the patient's data.
    pub delete: HttpCall,
    /// The probe that shows it is gone.
    #[serde(default)]
    pub verify: Option<HttpProbe>,
}

/// An HTTP call to a system; `{patient_id}` in the URL is replaced by the patient's id.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCall {
    #[serde(default = "defaults::delete_method")]
    pub method: Method,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A file holding a bearer token sent as `Authorization`.
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// Statuses that mean done (404: already gone, which makes a repeat harmless).
    #[serde(default = "defaults::delete_statuses")]
    pub success_status: Vec<u16>,
    #[serde(default = "defaults::erasure_timeout")]
    pub timeout: HumanDuration,
}

/// A verification probe: the expected status, and optionally a JSON path that must be absent
/// from the body.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    #[serde(default = "defaults::get_method")]
    pub method: Method,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    #[serde(default = "defaults::probe_status")]
    pub expect_status: u16,
    #[serde(default)]
    pub absent: Option<String>,
    #[serde(default = "defaults::erasure_timeout")]
    pub timeout: HumanDuration,
}

/// Patient-enumeration detection.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnumerationConfig {
    /// The window distinct patients are counted in.
    #[serde(default = "defaults::enumeration_window")]
    pub window: HumanDuration,
    /// Distinct patients a subject may touch per window, by role (`default` for the others);
    /// the most permissive of a subject's roles applies.
    pub max_patients: BTreeMap<String, usize>,
}

/// What a route with field rules does with a request body that is not JSON.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NonJsonBody {
    /// 415: a protected field could hide in a body the gateway cannot read.
    #[default]
    Reject,
    /// Forward it untouched (uploads); JSON bodies are still protected.
    Passthrough,
}

/// When a route's response may be released relative to its audit record.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// After the record is committed.
    Durable,
    /// Once the record is queued.
    Buffered,
    /// No record: only for public routes (`auth: none`, no resource, patient or fields),
    /// such as static assets or a status page, where a record per hit costs more than it tells.
    #[serde(rename = "none")]
    NotAudited,
}

/// Reloading on file changes (SIGHUP and `POST /admin/reload` always work).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the config and the files it references, and reload when one changes.
    pub watch: bool,
    /// How often modification times are compared.
    pub interval: HumanDuration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        ReloadConfig {
            watch: true,
            interval: HumanDuration(Duration::from_secs(2)),
        }
    }
}

impl ReloadConfig {
    pub fn watch_interval(&self) -> Option<Duration> {
        self.watch.then_some(self.interval.0)
    }
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
    /// Session resumption through tickets the client keeps, sealed under keys only this process
    /// holds (rotated every 6 hours, new on every reload): any number of clients resume. When
    /// false, resumption state is kept in the gateway's memory, for the last 256 sessions.
    #[serde(default = "defaults::yes")]
    pub session_tickets: bool,
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
    /// Time a request body may go without sending anything before the request is dropped.
    pub body_read_timeout: HumanDuration,
    /// Requests in progress at once, over all connections; past it requests are shed (503).
    pub max_in_flight: usize,
    /// HTTP/2 streams a client may reset before they are accepted, and streams the gateway
    /// may reset for protocol errors, before the connection is closed (rapid-reset floods).
    pub http2_max_pending_reset_streams: usize,
    pub http2_max_local_error_reset_streams: usize,
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
            body_read_timeout: HumanDuration(Duration::from_secs(30)),
            max_in_flight: 4096,
            http2_max_pending_reset_streams: 20,
            http2_max_local_error_reset_streams: 100,
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
    /// File holding the bearer token that mutating admin endpoints (`POST /admin/reload`)
    /// require. Without it those endpoints answer only to loopback clients.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: defaults::admin_listen(),
            token_file: None,
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
    /// Requests in progress to this upstream at once; past it requests are shed (503).
    #[serde(default = "defaults::upstream_max_in_flight")]
    pub max_in_flight: usize,
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
    /// HTTP/1.1 connections open to the upstream at most; past it requests wait for one.
    pub max_connections: usize,
    pub max_idle_per_host: usize,
    pub idle_timeout: HumanDuration,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            max_connections: 256,
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
    /// `required` (default): a valid identity or 401. `optional`: identify when credentials
    /// are sent. `none`: no identity and no authorization (public endpoints only).
    #[serde(default)]
    pub auth: AuthMode,
    /// What the route reaches, as the policy names it (`medical_record`, `appointment`).
    #[serde(default)]
    pub resource: Option<String>,
    /// The action, when it does not follow from the method (GET/HEAD read, POST/PUT/PATCH
    /// write, DELETE delete).
    #[serde(default)]
    pub action: Option<String>,
    /// Where the request names the patient it concerns.
    #[serde(default)]
    pub patient: Option<ValueSource>,
    /// Where the request names the patient's department.
    #[serde(default)]
    pub department: Option<ValueSource>,
    /// `durable` (the default for routes that name a resource or a patient) or `buffered`.
    #[serde(default)]
    pub audit: Option<Durability>,
    /// Sensitive fields in this route's JSON bodies: field name -> JSON paths (`$.a.b`,
    /// `$.items[*].b`, `$..b`). Encrypted on the way in, revealed per caller on the way out.
    #[serde(default)]
    pub fields: BTreeMap<String, Vec<String>>,
    /// `reject` (415, the default) or `passthrough` for request bodies that are not JSON.
    #[serde(default)]
    pub non_json_body: NonJsonBody,
    /// Rate limit policies for this route (instead of `rate_limits.default`); `[]` for none.
    #[serde(default)]
    pub rate_limits: Option<Vec<String>>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    #[default]
    Required,
    Optional,
    None,
}

/// Where a value is read from a request.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ValueSource {
    pub from: ValueFrom,
    /// Path parameter, query parameter or header name.
    pub name: String,
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ValueFrom {
    /// A parameter of the route's path template.
    Path,
    /// A query parameter.
    Query,
    /// A header, believed only from mTLS service accounts (anyone else could forge it).
    Header,
}

// ---------------------------------------------------------------------------------------------
// Identity, policy, break-glass
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    #[serde(default)]
    pub jwt: Option<JwtConfig>,
    /// Client certificates (verified by `server.tls.client_ca`) that are service accounts.
    #[serde(default)]
    pub mtls: Vec<MtlsIdentity>,
    /// Remove the client's `Authorization` header before forwarding.
    #[serde(default)]
    pub consume_authorization: bool,
    /// Client headers removed before forwarding; a trailing `*` matches a prefix.
    #[serde(default = "defaults::strip_headers")]
    pub strip_headers: Vec<String>,
    /// Key for the `X-Wardgate-Signature` HMAC over the identity headers sent upstream.
    #[serde(default)]
    pub upstream_signing_key_file: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    pub issuer: String,
    pub audiences: Vec<String>,
    /// Asymmetric algorithms accepted: RS256, ES256, EdDSA.
    #[serde(default = "defaults::jwt_algorithms")]
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub jwks_file: Option<PathBuf>,
    /// An identity provider's JWKS endpoint (https://, or http:// on loopback only).
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// CA bundle for the JWKS endpoint's certificate; the system roots when absent.
    #[serde(default)]
    pub jwks_ca: Option<PathBuf>,
    /// How often the JWKS URL is fetched again.
    #[serde(default = "defaults::jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// A token with an unknown `kid` triggers a fetch at most this often.
    #[serde(default = "defaults::jwks_min_refresh")]
    pub jwks_min_refresh_interval: HumanDuration,
    /// HS256 is accepted only with this shared secret configured.
    #[serde(default)]
    pub hs256_secret_file: Option<PathBuf>,
    #[serde(default = "defaults::jwt_leeway")]
    pub leeway: HumanDuration,
    #[serde(default = "defaults::max_token_size")]
    pub max_token_size: ByteSize,
    /// Tokens verified once and then recognised until they expire (by SHA-256, never kept
    /// themselves); 0 verifies every request's signature.
    #[serde(default = "defaults::token_cache_capacity")]
    pub cache_capacity: usize,
    #[serde(default)]
    pub claims: ClaimMapping,
}

/// Which claims carry what; dotted paths reach into objects (`realm_access.roles`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClaimMapping {
    pub subject: String,
    pub roles: String,
    pub department: String,
    pub patient_id: String,
    pub name: String,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            subject: "sub".to_owned(),
            roles: "roles".to_owned(),
            department: "department".to_owned(),
            patient_id: "patient_id".to_owned(),
            name: "name".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MtlsIdentity {
    /// Matches the certificate's subject common name or one of its DNS names.
    pub name: String,
    /// The principal's subject; defaults to `name`.
    #[serde(default)]
    pub subject: Option<String>,
    pub roles: Vec<String>,
    #[serde(default)]
    pub department: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub model: PathBuf,
    pub policy: PathBuf,
    /// A candidate policy decided alongside the active one; differences are counted and
    /// logged, only the active policy decides.
    #[serde(default)]
    pub shadow: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakGlassConfig {
    pub header: String,
    /// Roles that may open an emergency grant.
    pub roles: Vec<String>,
    pub min_reason_length: usize,
    /// How long a grant lasts for one subject and patient.
    pub duration: HumanDuration,
}

impl Default for BreakGlassConfig {
    fn default() -> Self {
        BreakGlassConfig {
            header: "x-break-glass".to_owned(),
            roles: vec!["doctor".to_owned(), "nurse".to_owned()],
            min_reason_length: 15,
            duration: HumanDuration(Duration::from_secs(3600)),
        }
    }
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

/// Defaults that other modules need when a section is absent.
pub struct IdentityDefaults;

impl IdentityDefaults {
    /// The client headers removed before forwarding when `identity` is not configured.
    pub fn strip_headers() -> Vec<String> {
        defaults::strip_headers()
    }
}

mod defaults {
    use super::*;

    pub fn erasure_due() -> HumanDuration {
        HumanDuration(Duration::from_secs(30 * 24 * 3600))
    }
    pub fn postgres_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(5))
    }

    pub fn yes() -> bool {
        true
    }
    pub fn data_class() -> String {
        "personal_data".to_owned()
    }
    pub fn delete_method() -> Method {
        Method(http::Method::DELETE)
    }
    pub fn get_method() -> Method {
        Method(http::Method::GET)
    }
    pub fn delete_statuses() -> Vec<u16> {
        vec![200, 202, 204, 404]
    }
    pub fn probe_status() -> u16 {
        404
    }
    pub fn erasure_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(10))
    }
    pub fn enumeration_window() -> HumanDuration {
        HumanDuration(Duration::from_secs(600))
    }
    pub fn upstream_max_in_flight() -> usize {
        1024
    }
    pub fn key_cache_capacity() -> usize {
        10_000
    }
    pub fn max_response_body_size() -> ByteSize {
        ByteSize(8 * 1024 * 1024)
    }
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
    pub fn strip_headers() -> Vec<String> {
        [
            "x-user-*",
            "x-roles",
            "x-wardgate-*",
            "x-forwarded-user",
            "x-remote-user",
        ]
        .map(str::to_owned)
        .to_vec()
    }
    pub fn jwt_algorithms() -> Vec<String> {
        ["RS256", "ES256", "EdDSA"].map(str::to_owned).to_vec()
    }
    pub fn jwks_refresh() -> HumanDuration {
        HumanDuration(Duration::from_secs(600))
    }
    pub fn jwks_min_refresh() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn jwt_leeway() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn token_cache_capacity() -> usize {
        10_000
    }
    pub fn max_token_size() -> ByteSize {
        ByteSize(8 * 1024)
    }
    pub fn data_dir() -> PathBuf {
        PathBuf::from("/var/lib/wardgate")
    }
    pub fn checkpoint_every() -> u64 {
        1000
    }
    pub fn checkpoint_interval() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    pub fn audit_queue() -> usize {
        10_000
    }
    pub fn audit_batch() -> usize {
        512
    }
    pub fn group_commit_wait() -> HumanDuration {
        HumanDuration(Duration::from_millis(1))
    }
    pub fn retention() -> HumanDuration {
        HumanDuration(Duration::from_secs(180 * 86_400))
    }
}
