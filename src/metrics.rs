//! Every metric the gateway exports, registered in one place. Each gateway instance owns its
//! registry (tests run several in one process); the admin listener renders it. The README's
//! metrics list mirrors this file.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds, from sub-millisecond proxying to slow uploads.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub struct Metrics {
    registry: Registry,
    /// `route`, `method`, `status_class` (`2xx`..`5xx`).
    pub requests_total: IntCounterVec,
    /// `route`; time until the response head is ready.
    pub request_duration: HistogramVec,
    /// `upstream`; time until the upstream's response head arrived.
    pub upstream_duration: HistogramVec,
    /// `upstream`, `kind` (connect, connect_timeout, response_timeout, broken, ...).
    pub upstream_errors: IntCounterVec,
    /// `upstream`, `state` (busy, idle): its HTTP/1.1 pool, read when metrics are scraped.
    pub upstream_connections: IntGaugeVec,
    /// `reason` (the normalizer's rejection kind).
    pub path_rejections: IntCounterVec,
    pub active_connections: IntGauge,
    pub connections_rejected: IntCounter,
    pub tls_handshake_errors: IntCounter,
    /// Expiry of the listener's certificate, Unix seconds.
    pub tls_cert_expiry: IntGauge,
    pub config_reloads: IntCounter,
    pub config_reload_failures: IntCounter,
    /// `decision` (`allow`, `deny`), `resource`.
    pub authz_decisions: IntCounterVec,
    /// `reason` (missing, expired, bad_signature, ...).
    pub authn_failures: IntCounterVec,
    /// `role`: break-glass grants opened.
    pub break_glass: IntCounterVec,
    /// `resource`: requests the shadow policy decided differently.
    pub authz_shadow_mismatch: IntCounterVec,
    pub websocket_sessions: IntCounter,
    /// `decision`: audit records committed.
    pub audit_records: IntCounterVec,
    pub audit_write_errors: IntCounter,
    /// `reason`: integrity_failure, key_shredded, key_missing.
    pub field_crypto_failures: IntCounterVec,
    /// `operation`: encrypt, decrypt.
    pub field_operations: IntCounterVec,
    /// `policy`, `key_kind`.
    pub rate_limited: IntCounterVec,
    /// `role`: subjects flagged for touching too many patients.
    pub enumeration_alerts: IntCounterVec,
    /// `scope`: global, upstream.
    pub requests_shed: IntCounterVec,
    /// `reason`: header_timeout, body_timeout, idle_timeout, tls_handshake, protocol_error.
    pub connections_closed: IntCounterVec,
    /// `state`: erasure requests in each state.
    pub erasure_requests: prometheus::IntGaugeVec,
    /// Open erasure requests past their due time.
    pub erasure_overdue: IntGauge,
    /// `system`: failed erasure attempts (deletion or verification).
    pub erasure_step_failures: IntCounterVec,
    /// `area`: failing items of the last self-inspection run through the admin API.
    pub selfcheck_failures: IntGaugeVec,
    pub audit_queue_depth: IntGauge,
    pub data_dir_available_bytes: IntGauge,
    pub audit_commit_duration: Histogram,
    pub audit_chain_head_seq: IntGauge,
    /// 1 when the last self-inspection found the audit chain broken; 0 otherwise (and before any).
    pub audit_chain_broken: IntGauge,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests_total = IntCounterVec::new(
            Opts::new(
                "wardgate_requests_total",
                "Requests answered, by route, method and status class",
            ),
            &["route", "method", "status_class"],
        );
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "wardgate_request_duration_seconds",
                "Time to the response head, by route",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["route"],
        );
        let upstream_duration = HistogramVec::new(
            HistogramOpts::new(
                "wardgate_upstream_duration_seconds",
                "Time to the upstream's response head, by upstream",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["upstream"],
        );
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "wardgate_upstream_errors_total",
                "Failed upstream calls, by upstream and kind",
            ),
            &["upstream", "kind"],
        );
        let path_rejections = IntCounterVec::new(
            Opts::new(
                "wardgate_path_rejections_total",
                "Requests refused by path normalization, by reason",
            ),
            &["reason"],
        );
        let field_crypto_failures = IntCounterVec::new(
            Opts::new(
                "wardgate_field_crypto_failures_total",
                "Protected field values that could not be opened, by reason",
            ),
            &["reason"],
        );
        let field_operations = IntCounterVec::new(
            Opts::new(
                "wardgate_field_operations_total",
                "Protected field values encrypted on the way in and decrypted on the way out",
            ),
            &["operation"],
        );
        let vec = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        let rate_limited = vec(
            "wardgate_rate_limited_total",
            "Requests refused by a rate limit policy (429)",
            &["policy", "key_kind"],
        );
        let enumeration_alerts = vec(
            "wardgate_enumeration_alerts_total",
            "Subjects flagged for touching more distinct patients than their role allows",
            &["role"],
        );
        let requests_shed = vec(
            "wardgate_requests_shed_total",
            "Requests shed with 503 because too many were in progress",
            &["scope"],
        );
        let connections_closed = vec(
            "wardgate_connections_closed_total",
            "Client connections closed by the gateway for misbehaviour or inactivity",
            &["reason"],
        );
        let erasure_step_failures = vec(
            "wardgate_erasure_step_failures_total",
            "Failed erasure attempts (deletion or verification), by system",
            &["system"],
        );
        let metrics = Metrics {
            erasure_requests: prometheus::IntGaugeVec::new(
                Opts::new("wardgate_erasure_requests", "Erasure requests by state"),
                &["state"],
            )
            .expect("valid metric"),
            erasure_overdue: IntGauge::new(
                "wardgate_erasure_overdue",
                "Open erasure requests past their due time",
            )
            .expect("valid metric"),
            erasure_step_failures,
            selfcheck_failures: IntGaugeVec::new(
                Opts::new(
                    "wardgate_selfcheck_failures",
                    "Failing items of the last self-inspection, by area",
                ),
                &["area"],
            )
            .expect("valid metric"),
            rate_limited,
            enumeration_alerts,
            requests_shed,
            connections_closed,
            field_crypto_failures: field_crypto_failures.expect("valid metric"),
            field_operations: field_operations.expect("valid metric"),
            requests_total: requests_total.expect("valid metric"),
            request_duration: request_duration.expect("valid metric"),
            upstream_duration: upstream_duration.expect("valid metric"),
            upstream_errors: upstream_errors.expect("valid metric"),
            upstream_connections: IntGaugeVec::new(
                Opts::new(
                    "wardgate_upstream_connections",
                    "HTTP/1.1 connections open to each upstream, busy (carrying a request or \
                     connecting) or idle",
                ),
                &["upstream", "state"],
            )
            .expect("valid metric"),
            path_rejections: path_rejections.expect("valid metric"),
            active_connections: IntGauge::new(
                "wardgate_active_connections",
                "Open client connections",
            )
            .expect("valid metric"),
            connections_rejected: IntCounter::new(
                "wardgate_connections_rejected_total",
                "Connections closed at once because max_connections was reached",
            )
            .expect("valid metric"),
            tls_handshake_errors: IntCounter::new(
                "wardgate_tls_handshake_errors_total",
                "Failed or timed-out TLS handshakes",
            )
            .expect("valid metric"),
            tls_cert_expiry: IntGauge::new(
                "wardgate_tls_cert_expiry_timestamp_seconds",
                "Expiry of the listener's certificate (Unix time)",
            )
            .expect("valid metric"),
            config_reloads: IntCounter::new("wardgate_config_reloads_total", "Reloads applied (config, policies, certificates)")
                .expect("valid metric"),
            config_reload_failures: IntCounter::new(
                "wardgate_config_reload_failures_total",
                "Reloads refused because the new config, policy or certificate was invalid",
            )
            .expect("valid metric"),
            authz_decisions: IntCounterVec::new(
                Opts::new("wardgate_authz_decisions_total", "Authorization decisions, by decision and resource"),
                &["decision", "resource"],
            )
            .expect("valid metric"),
            authn_failures: IntCounterVec::new(
                Opts::new("wardgate_authn_failures_total", "Failed authentications, by reason"),
                &["reason"],
            )
            .expect("valid metric"),
            break_glass: IntCounterVec::new(
                Opts::new("wardgate_break_glass_total", "Break-glass emergency grants opened, by role"),
                &["role"],
            )
            .expect("valid metric"),
            authz_shadow_mismatch: IntCounterVec::new(
                Opts::new(
                    "wardgate_authz_shadow_mismatch_total",
                    "Requests the shadow policy decided differently from the active one, by resource",
                ),
                &["resource"],
            )
            .expect("valid metric"),
            websocket_sessions: IntCounter::new(
                "wardgate_websocket_sessions_total",
                "WebSocket upgrades relayed",
            )
            .expect("valid metric"),
            audit_records: IntCounterVec::new(
                Opts::new("wardgate_audit_records_total", "Audit records committed, by decision"),
                &["decision"],
            )
            .expect("valid metric"),
            audit_write_errors: IntCounter::new("wardgate_audit_write_errors_total", "Failed audit store writes")
                .expect("valid metric"),
            audit_queue_depth: IntGauge::new("wardgate_audit_queue_depth", "Audit records waiting for the writer")
                .expect("valid metric"),
            data_dir_available_bytes: IntGauge::new(
                "wardgate_data_dir_available_bytes",
                "Bytes left for the embedded stores on the filesystem holding data_dir (sampled every 10 s)",
            )
            .expect("valid metric"),
            audit_commit_duration: Histogram::with_opts(
                HistogramOpts::new("wardgate_audit_commit_duration_seconds", "Time to commit one batch of audit records")
                    .buckets(LATENCY_BUCKETS.to_vec()),
            )
            .expect("valid metric"),
            audit_chain_head_seq: IntGauge::new("wardgate_audit_chain_head_seq", "Sequence number of the last committed audit record")
                .expect("valid metric"),
            audit_chain_broken: IntGauge::new(
                "wardgate_audit_chain_broken",
                "1 when the last self-inspection found an audit chain or checkpoint broken, 0 otherwise",
            )
            .expect("valid metric"),
            build_info: IntGaugeVec::new(
                Opts::new("wardgate_build_info", "Build information"),
                &["version"],
            )
            .expect("valid metric"),
            registry,
        };
        metrics.register_all();
        metrics
            .build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        metrics
    }

    fn register_all(&self) {
        let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
            Box::new(self.requests_total.clone()),
            Box::new(self.request_duration.clone()),
            Box::new(self.upstream_duration.clone()),
            Box::new(self.upstream_errors.clone()),
            Box::new(self.upstream_connections.clone()),
            Box::new(self.path_rejections.clone()),
            Box::new(self.active_connections.clone()),
            Box::new(self.connections_rejected.clone()),
            Box::new(self.tls_handshake_errors.clone()),
            Box::new(self.tls_cert_expiry.clone()),
            Box::new(self.config_reloads.clone()),
            Box::new(self.config_reload_failures.clone()),
            Box::new(self.authz_decisions.clone()),
            Box::new(self.authn_failures.clone()),
            Box::new(self.break_glass.clone()),
            Box::new(self.authz_shadow_mismatch.clone()),
            Box::new(self.websocket_sessions.clone()),
            Box::new(self.audit_records.clone()),
            Box::new(self.audit_write_errors.clone()),
            Box::new(self.field_crypto_failures.clone()),
            Box::new(self.field_operations.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.enumeration_alerts.clone()),
            Box::new(self.requests_shed.clone()),
            Box::new(self.connections_closed.clone()),
            Box::new(self.erasure_requests.clone()),
            Box::new(self.erasure_overdue.clone()),
            Box::new(self.erasure_step_failures.clone()),
            Box::new(self.selfcheck_failures.clone()),
            Box::new(self.audit_queue_depth.clone()),
            Box::new(self.data_dir_available_bytes.clone()),
            Box::new(self.audit_commit_duration.clone()),
            Box::new(self.audit_chain_head_seq.clone()),
            Box::new(self.audit_chain_broken.clone()),
            Box::new(self.build_info.clone()),
        ];
        for collector in collectors {
            self.registry
                .register(collector)
                .expect("metric names are unique");
        }
        #[cfg(target_os = "linux")]
        {
            let process = prometheus::process_collector::ProcessCollector::new(
                std::process::id() as i32,
                "wardgate",
            );
            let _ = self.registry.register(Box::new(process));
        }
    }

    /// Counts and times one answered request.
    pub fn observe_request(
        &self,
        route: &str,
        method: &http::Method,
        status: http::StatusCode,
        seconds: f64,
    ) {
        let class = match status.as_u16() {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        };
        self.requests_total
            .with_label_values(&[route, method_label(method), class])
            .inc();
        self.request_duration
            .with_label_values(&[route])
            .observe(seconds);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buffer = Vec::new();
        let encoder = TextEncoder::new();
        if let Err(err) = encoder.encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %err, "cannot encode metrics");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Known methods by name; anything else as `OTHER`, so clients cannot grow label sets.
fn method_label(method: &http::Method) -> &'static str {
    match *method {
        http::Method::GET => "GET",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::HEAD => "HEAD",
        http::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
