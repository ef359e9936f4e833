//! Per-stage benchmarks of the request path (`src/pipeline/`), each stage alone with what it
//! works on per request:
//!
//! - `normalize`: the canonical path of a request path with a `.` segment and `//`, and
//!   `normalize/canonical`: of one that is canonical already (most requests' paths).
//! - `route`: selecting the route of `/api/patients/p-1001/records` among twelve routes.
//! - `jwt_verify/cached` and `jwt_verify/uncached`: an EdDSA token's principal, from the
//!   verified-token cache (a SHA-256 and a map lookup) and with the full signature check.
//! - `authorize/cached`: the policy's decision table (answered when the policy loads), and
//!   `authorize/uncached`: the same question asked of the casbin enforcer.
//!
//! Field encryption and audit appends have their own: `cargo bench --bench fields`,
//! `cargo bench --bench audit`.
//!
//! ```text
//! cargo bench --bench pipeline
//! ```

use std::collections::BTreeSet;
use std::path::Path;

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use criterion::{criterion_group, criterion_main, Criterion};
use http::Method;
use wardgate::config::{self, PathRules};
use wardgate::demo::tokens::{SigningKey, TokenClaims};
use wardgate::identity::jwks::{KeySet, KeyStore};
use wardgate::identity::jwt::{parse_algorithm, JwtVerifier};
use wardgate::pipeline::{canonical_path, RouteTable};
use wardgate::policy::{Policy, Question, Relation};
use wardgate::proxy::upstream;

const ROUTES: &str = r#"
server:
  listen: 127.0.0.1:0
  tls: { cert: unused.pem, key: unused-key.pem }
audit: { pseudonym_key_file: unused.key, signing_key_file: unused-signing.pem }
identity:
  jwt: { issuer: "https://idp.example", audiences: [wardgate], jwks_file: unused-jwks.json }
policy: { model: policies/model.conf, policy: policies/policy.csv }
upstreams:
  backend: { url: "http://127.0.0.1:9" }
routes:
  - { name: info, path: /api/hospital/info, methods: [GET], upstream: backend, auth: none }
  - { name: patient, path: "/api/patients/{patient_id}", methods: [GET, PUT], upstream: backend, resource: patient_profile, patient: { from: path, name: patient_id } }
  - { name: records, path: "/api/patients/{patient_id}/records", methods: [GET, POST], upstream: backend, resource: medical_record, patient: { from: path, name: patient_id } }
  - { name: record, path: "/api/patients/{patient_id}/records/{record_id}", methods: [GET], upstream: backend, resource: medical_record, patient: { from: path, name: patient_id } }
  - { name: prescriptions, path: "/api/patients/{patient_id}/prescriptions", methods: [GET, POST], upstream: backend, resource: prescription, patient: { from: path, name: patient_id } }
  - { name: appointments, path: "/api/patients/{patient_id}/appointments", methods: [GET, POST, DELETE], upstream: backend, resource: appointment, patient: { from: path, name: patient_id } }
  - { name: consultations, path: "/api/patients/{patient_id}/consultations", methods: [GET], upstream: backend, resource: consultation, patient: { from: path, name: patient_id } }
  - { name: messages, path: "/api/consultations/{consultation_id}/messages", methods: [GET, POST], upstream: backend, resource: consultation_message }
  - { name: department, path: "/api/departments/{department}/patients/{patient_id}", methods: [GET], upstream: backend, resource: patient_profile, patient: { from: path, name: patient_id }, department: { from: path, name: department } }
  - { name: schedule, path: "/api/departments/{department}/schedule", methods: [GET], upstream: backend, resource: appointment, auth: optional }
  - { name: reports, path: "/api/reports/{*rest}", methods: [GET], upstream: backend, resource: consultation_report }
  - { name: static, path: "/static/{*rest}", methods: [GET], upstream: backend, auth: none, audit: none }
"#;

fn normalize_and_route(c: &mut Criterion) {
    let rules = PathRules::default();
    c.bench_function("normalize", |b| {
        b.iter(|| canonical_path("/api//patients/./p-1001/records", &rules))
    });
    c.bench_function("normalize/canonical", |b| {
        b.iter(|| canonical_path("/api/patients/p-1001/records", &rules))
    });

    let loaded = config::parse(ROUTES, Path::new("bench.yaml"), Path::new("."))
        .unwrap_or_else(|errors| panic!("{errors}"));
    let upstreams = upstream::build_all(&loaded.config.upstreams).expect("upstreams");
    let routes = RouteTable::build(&loaded.config, &upstreams).expect("routes");
    c.bench_function("route", |b| {
        b.iter(|| {
            routes
                .select("/api/patients/p-1001/records", &Method::GET)
                .is_ok()
        })
    });
}

fn jwt_verify(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let signing = SigningKey::demo().expect("demo key");
    let keys = KeySet::parse(signing.jwks().expect("jwks").as_bytes()).expect("key set");
    let claims = TokenClaims::demo("dr-chen", &["doctor"]).department("cardiology");
    let token = signing.sign(&claims.to_json()).expect("token");
    let verifier = |cache_capacity| {
        JwtVerifier::new(
            KeyStore::new(keys.clone(), None, std::time::Duration::from_secs(60)),
            wardgate::demo::tokens::DEMO_ISSUER.to_owned(),
            vec![wardgate::demo::tokens::DEMO_AUDIENCE.to_owned()],
            ["EdDSA", "ES256", "RS256"]
                .iter()
                .filter_map(|name| parse_algorithm(name))
                .collect(),
            None,
            30,
            8192,
            config::ClaimMapping::default(),
            cache_capacity,
        )
    };
    let mut group = c.benchmark_group("jwt_verify");
    for (name, capacity) in [("cached", 10_000), ("uncached", 0)] {
        let verifier = verifier(capacity);
        runtime
            .block_on(verifier.verify(&token))
            .expect("the token verifies");
        group.bench_function(name, |b| {
            b.iter(|| runtime.block_on(verifier.verify(&token)).is_ok())
        });
    }
    group.finish();
}

fn authorize(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let model = Path::new("policies/model.conf");
    let policy_file = Path::new("policies/policy.csv");
    let questions: BTreeSet<Question> = ["patient_profile", "medical_record", "prescription"]
        .iter()
        .flat_map(|resource| {
            ["read", "write"].iter().map(|action| Question {
                resource: (*resource).to_owned(),
                action: (*action).to_owned(),
            })
        })
        .collect();
    let policy = runtime
        .block_on(Policy::load(model, policy_file, "policy", &questions))
        .expect("policy");
    let roles = vec!["nurse".to_owned()];
    let relations = [Relation::SameDepartment];
    let mut group = c.benchmark_group("authorize");
    group.bench_function("cached", |b| {
        b.iter(|| {
            policy
                .decide(&roles, &relations, "medical_record", "read")
                .allowed
        })
    });

    let model_text = std::fs::read_to_string(model).expect("model");
    let lines: Vec<String> = std::fs::read_to_string(policy_file)
        .expect("policy")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect();
    let enforcer = runtime.block_on(async {
        let model = DefaultModel::from_str(&model_text).await.expect("model");
        Enforcer::new(model, StringAdapter::new(lines.join("\n")))
            .await
            .expect("enforcer")
    });
    group.bench_function("uncached", |b| {
        b.iter(|| {
            enforcer
                .enforce(("nurse", "same_department", "medical_record", "read"))
                .unwrap_or(false)
        })
    });
    group.finish();
}

criterion_group!(benches, normalize_and_route, jwt_verify, authorize);
criterion_main!(benches);
