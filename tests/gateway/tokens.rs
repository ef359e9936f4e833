//! Bearer tokens: every way a forged, stale or malformed JWT is refused (401, a challenge, a
//! counted reason), keys from a JWKS URL with rate-limited refresh, and the `token mint` and
//! `policy explain` commands.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use http::{Method, Response, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use wardgate::proxy::body::full;

use crate::support::*;

const PATH: &str = "/api/patients/p-1/records";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn patient_claims() -> serde_json::Value {
    let mut claims = claims("patient-li", &["patient"]);
    claims["patient_id"] = "p-1".into();
    claims
}

/// A token signed by a test key with a hand-made header.
fn with_header(kid: &str, header: Header, claims: &serde_json::Value) -> String {
    let pem = std::fs::read(fixture(match kid {
        "rsa-1" => "jwt-rsa.pem",
        _ => "jwt-ed25519.pem",
    }))
    .unwrap();
    let key = match header.alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem).unwrap(),
        _ => EncodingKey::from_ed_pem(&pem).unwrap(),
    };
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn forged_stale_and_malformed_tokens_are_refused_with_a_reason() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let good = patient_claims();
    let now = good["iat"].as_u64().unwrap();
    let changed = |key: &str, value: serde_json::Value| {
        let mut claims = good.clone();
        claims[key] = value;
        claims
    };
    let rsa_public_pem = {
        // The RSA public key, as an attacker would use it as an HMAC secret.
        let output = Command::new("openssl")
            .args(["pkey", "-pubout", "-in"])
            .arg(fixture("jwt-rsa.pem"))
            .output()
            .unwrap();
        output.stdout
    };
    let valid = token("ed-1", &good);
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, signature) = rest.split_once('.').unwrap();
    let tampered_payload = b64(serde_json::to_string(&changed("patient_id", "p-2".into()))
        .unwrap()
        .as_bytes());
    let mut jku = Header::new(Algorithm::EdDSA);
    jku.kid = Some("ed-1".into());
    jku.jku = Some("https://evil.example/keys".into());
    let mut x5u = Header::new(Algorithm::EdDSA);
    x5u.kid = Some("ed-1".into());
    x5u.x5u = Some("https://evil.example/cert.pem".into());
    let mut embedded = Header::new(Algorithm::EdDSA);
    embedded.kid = Some("ed-1".into());
    embedded.jwk = Some(
        serde_json::from_str::<serde_json::Value>(&jwks(&["ed-other"]))
            .map(|set| serde_json::from_value(set["keys"][0].clone()).unwrap())
            .unwrap(),
    );
    let mut rs_with_ed_kid = Header::new(Algorithm::RS256);
    rs_with_ed_kid.kid = Some("ed-1".into());
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some("rsa-1".into());

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "alg none",
            format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), payload),
            "alg_none",
        ),
        (
            "alg None",
            format!("{}.{}.", b64(br#"{"alg":"None"}"#), payload),
            "alg_none",
        ),
        (
            "HS256 signed with the RSA public key",
            jsonwebtoken::encode(&hs, &good, &EncodingKey::from_secret(&rsa_public_pem)).unwrap(),
            "algorithm_not_accepted",
        ),
        (
            "RS256 header with an Ed25519 key id",
            with_header("rsa-1", rs_with_ed_kid, &good),
            "algorithm_mismatch",
        ),
        (
            "expired",
            token("ed-1", &changed("exp", (now - 60).into())),
            "expired",
        ),
        (
            "not yet valid",
            token("ed-1", &changed("nbf", (now + 600).into())),
            "not_yet_valid",
        ),
        (
            "wrong issuer",
            token("ed-1", &changed("iss", "https://other-idp.invalid".into())),
            "wrong_issuer",
        ),
        (
            "wrong audience",
            token("ed-1", &changed("aud", "another-app".into())),
            "wrong_audience",
        ),
        (
            "no expiry",
            {
                let mut claims = good.clone();
                claims.as_object_mut().unwrap().remove("exp");
                token("ed-1", &claims)
            },
            "missing_claim",
        ),
        (
            "tampered payload",
            format!("{head}.{tampered_payload}.{signature}"),
            "bad_signature",
        ),
        (
            "signed by a key we do not trust, claiming a known kid",
            {
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some("ed-1".into());
                let pem = std::fs::read(fixture("jwt-other-ed25519.pem")).unwrap();
                jsonwebtoken::encode(&header, &good, &EncodingKey::from_ed_pem(&pem).unwrap())
                    .unwrap()
            },
            "bad_signature",
        ),
        (
            "unknown kid",
            {
                let mut header = Header::new(Algorithm::EdDSA);
                header.kid = Some("nobody".into());
                let pem = std::fs::read(fixture("jwt-other-ed25519.pem")).unwrap();
                jsonwebtoken::encode(&header, &good, &EncodingKey::from_ed_pem(&pem).unwrap())
                    .unwrap()
            },
            "unknown_key",
        ),
        (
            "jku header",
            with_header("ed-1", jku, &good),
            "forbidden_header",
        ),
        (
            "x5u header",
            with_header("ed-1", x5u, &good),
            "forbidden_header",
        ),
        (
            "embedded jwk",
            with_header("ed-1", embedded, &good),
            "forbidden_header",
        ),
        (
            "oversized",
            token("ed-1", &changed("padding", "x".repeat(9000).into())),
            "too_large",
        ),
        ("garbage", "not-a-token".to_owned(), "malformed"),
        ("garbage with dots", "a.b.c".to_owned(), "malformed"),
        (
            "roles of the wrong type",
            token(
                "ed-1",
                &changed("roles", serde_json::json!({"admin": true})),
            ),
            "bad_claim",
        ),
        (
            "subject with spaces",
            token("ed-1", &changed("sub", "admin user".into())),
            "bad_claim",
        ),
    ];
    for (what, token, reason) in &cases {
        let reply = client.fetch(with_token(Method::GET, PATH, token)).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(
            reply.header("www-authenticate"),
            Some(r#"Bearer realm="wardgate", error="invalid_token""#),
            "{what}"
        );
        assert_eq!(
            reply.json()["error"],
            "invalid or expired credentials",
            "{what}: nothing specific reaches the client"
        );
        let counted = metric(
            &gateway,
            &format!(r#"wardgate_authn_failures_total{{reason="{reason}"}}"#),
        )
        .await;
        assert!(counted >= 1.0, "{what}: not counted as {reason}");
    }
    assert!(
        upstream.seen().is_empty(),
        "no refused token reached the upstream"
    );

    // Missing token, and a scheme that is not Bearer.
    let reply = client.get(PATH).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some(r#"Bearer realm="wardgate""#)
    );
    assert_eq!(reply.json()["error"], "authentication required");
    let basic = http::Request::get(PATH)
        .header("authorization", "Basic YWRtaW46YWRtaW4=")
        .body(no_body())
        .unwrap();
    assert_eq!(client.fetch(basic).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        metric(
            &gateway,
            r#"wardgate_authn_failures_total{reason="not_bearer"}"#
        )
        .await,
        1.0
    );

    // Each accepted algorithm works, and the leeway covers small clock skew.
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let reply = client
            .fetch(with_token(Method::GET, PATH, &token(kid, &good)))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{kid}");
    }
    let skewed = token("ed-1", &changed("nbf", (now + 3).into()));
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PATH, &skewed))
            .await
            .status,
        StatusCode::OK
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn hs256_is_accepted_only_with_a_configured_secret() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let secret = "a-shared-secret-of-at-least-32-bytes!";
    std::fs::write(pki.path("hs256.secret"), secret).unwrap();
    let config = authz_config(&pki, &upstream.url()).replace(
        "    leeway: 5s\n",
        &format!(
            "    leeway: 5s\n    hs256_secret_file: {}\n",
            pki.path("hs256.secret").display()
        ),
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let good = patient_claims();
    let signed = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PATH, &signed))
            .await
            .status,
        StatusCode::OK
    );
    let wrong = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &good,
        &EncodingKey::from_secret(b"another-secret-another-secret-123"),
    )
    .unwrap();
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PATH, &wrong))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    gateway.shutdown().await;
}

/// An identity provider's JWKS endpoint that counts fetches and can rotate keys.
struct Provider {
    url: String,
    fetches: Arc<AtomicUsize>,
    keys: Arc<Mutex<String>>,
}

async fn provider(kids: &[&str]) -> Provider {
    let fetches = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(Mutex::new(jwks(kids)));
    let (count, served) = (fetches.clone(), keys.clone());
    let upstream = Upstream::start(move |_request| {
        let (count, served) = (count.clone(), served.clone());
        async move {
            count.fetch_add(1, Ordering::SeqCst);
            let body = served.lock().unwrap().clone();
            Response::new(full(body))
        }
    })
    .await;
    Provider {
        url: format!("{}/realms/hospital/certs", upstream.url()),
        fetches,
        keys,
    }
}

#[tokio::test]
async fn keys_from_a_jwks_url_follow_rotation_and_bogus_kids_do_not_hammer_the_provider() {
    let idp = provider(&["ed-1"]).await;
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let dir = pki.dir.path().display().to_string();
    let config = authz_config(&pki, &upstream.url()).replace(
        &format!("    jwks_file: {dir}/jwks.json\n"),
        &format!(
            "    jwks_url: {}\n    jwks_min_refresh_interval: 1s\n",
            idp.url
        ),
    );
    let gateway = start_gateway(&pki, &config).await;
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "fetched once at start"
    );
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let good = patient_claims();
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PATH, &token("ed-1", &good)))
            .await
            .status,
        StatusCode::OK
    );

    // The provider rotates to a new key; a token with the new kid triggers one fetch.
    *idp.keys.lock().unwrap() = jwks(&["ed-1", "ec-1"]);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PATH, &token("ec-1", &good)))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(idp.fetches.load(Ordering::SeqCst), 2);

    // A flood of made-up kids: refused, and the provider is not asked again within the interval.
    for i in 0..40 {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(format!("bogus-{i}"));
        let pem = std::fs::read(fixture("jwt-other-ed25519.pem")).unwrap();
        let forged =
            jsonwebtoken::encode(&header, &good, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap();
        assert_eq!(
            client
                .fetch(with_token(Method::GET, PATH, &forged))
                .await
                .status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert!(
        idp.fetches.load(Ordering::SeqCst) <= 3,
        "fetches: {}",
        idp.fetches.load(Ordering::SeqCst)
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_key_server_on_loopback_over_http_needs_no_system_ca_bundle() {
    let idp = provider(&["ed-1"]).await;
    let pki = Pki::new();
    let dir = pki.dir.path().display().to_string();
    let config = authz_config(&pki, "http://127.0.0.1:9").replace(
        &format!("    jwks_file: {dir}/jwks.json\n"),
        &format!("    jwks_url: {}\n", idp.url),
    );
    let mut check = wardgate_check(write_config(&pki, &config));
    check.envs(NO_CA_BUNDLE);
    // Off this runtime's thread, which serves the key server.
    let output = tokio::task::spawn_blocking(move || check.output())
        .await
        .unwrap()
        .unwrap();
    assert_succeeded(&output);
    assert_eq!(
        idp.fetches.load(Ordering::SeqCst),
        1,
        "the keys were fetched"
    );
}

#[test]
fn a_missing_jwks_ca_is_named_by_its_own_key() {
    let pki = Pki::new();
    let dir = pki.dir.path().display().to_string();
    let config = authz_config(&pki, "http://127.0.0.1:9").replace(
        &format!("    jwks_file: {dir}/jwks.json\n"),
        "    jwks_url: https://127.0.0.1:9/certs\n    jwks_ca: /nonexistent/idp-ca.pem\n",
    );
    let output = wardgate_check(write_config(&pki, &config))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = line_of(&config, "jwks_ca:");
    assert!(
        stderr.contains(&format!(
            ":{line}:5: identity.jwt.jwks_ca: cannot read /nonexistent/idp-ca.pem"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_jwks_url_must_be_https_off_loopback() {
    let pki = Pki::new();
    let dir = pki.dir.path().display().to_string();
    let config = authz_config(&pki, "http://127.0.0.1:9").replace(
        &format!("    jwks_file: {dir}/jwks.json\n"),
        "    jwks_url: http://idp.example-hospital.cn/certs\n",
    );
    let path = write_config(&pki, &config);
    let errors = wardgate::config::load(&path).unwrap_err().to_string();
    assert!(
        errors.contains("identity.jwt.jwks_url: keys must be fetched over https://"),
        "{errors}"
    );
}

#[test]
fn token_mint_signs_with_the_demo_key_and_refuses_others_without_consent() {
    let binary = env!("CARGO_BIN_EXE_wardgate");
    let output = Command::new(binary)
        .args([
            "token",
            "mint",
            "--role",
            "doctor",
            "--sub",
            "dr-li",
            "--department",
            "cardiology",
            "--ttl",
            "15m",
        ])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "dr-li");
    assert_eq!(claims["roles"], serde_json::json!(["doctor"]));
    assert_eq!(claims["department"], "cardiology");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        900
    );

    // The demo's JWKS verifies it.
    let keys = wardgate::identity::jwks::KeySet::parse(
        wardgate::demo::tokens::SigningKey::demo()
            .unwrap()
            .jwks()
            .unwrap()
            .as_bytes(),
    );
    assert_eq!(keys.unwrap().len(), 1);

    let output = Command::new(binary)
        .args(["token", "mint", "--role", "admin", "--sub", "x", "--key"])
        .arg(fixture("jwt-rsa.pem"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--i-know-this-is-not-production"));
    let output = Command::new(binary)
        .args([
            "token",
            "mint",
            "--role",
            "admin",
            "--sub",
            "x",
            "--i-know-this-is-not-production",
            "--kid",
            "rsa-1",
            "--key",
        ])
        .arg(fixture("jwt-rsa.pem"))
        .output()
        .unwrap();
    assert!(output.status.success());
}

#[tokio::test]
async fn a_minted_token_works_against_the_demo_config() {
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let demo = wardgate::demo::Demo::start(&wardgate::demo::DemoOptions {
        listen: any,
        admin: any,
        backend: any,
    })
    .await
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args([
            "token",
            "mint",
            "--role",
            "nurse",
            "--sub",
            "nurse-he",
            "--department",
            "dermatology",
        ])
        .output()
        .unwrap();
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let mut client = Client::h1(&demo.gateway, &demo.ca_cert).await;
    let reply = client
        .fetch(with_token(
            Method::GET,
            "/api/departments/dermatology/patients/p-1002/records",
            &token,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&reply.body).contains("atopic dermatitis"));
    demo.stop().await;
}

#[test]
fn policy_explain_names_the_route_principal_relation_and_rule() {
    let pki = Pki::new();
    let path = write_config(&pki, &authz_config(&pki, "http://127.0.0.1:9"));
    let mut doctor = claims("dr-chen", &["doctor"]);
    doctor["department"] = "cardiology".into();
    let doctor = token("ed-1", &doctor);
    let explain = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(["policy", "explain", "--config"])
            .arg(&path)
            .args(args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let allowed = explain(&[
        "--token",
        &doctor,
        "--path",
        "/api/departments/cardiology/patients/p-1/records",
    ]);
    assert!(
        allowed.contains("route      department-records"),
        "{allowed}"
    );
    assert!(
        allowed.contains("dr-chen roles=[doctor] department=cardiology"),
        "{allowed}"
    );
    assert!(allowed.contains("relation   same_department"), "{allowed}");
    assert!(
        allowed.contains("ALLOW by `p, clinician, same_department, medical_record, read`"),
        "{allowed}"
    );

    let denied = explain(&[
        "--token",
        &doctor,
        "--path",
        "/api/departments/dermatology/patients/p-2/records",
    ]);
    assert!(denied.contains("DENY (403)"), "{denied}");
    assert!(
        denied.contains("emergency  would ALLOW with a `x-break-glass: <reason>` header"),
        "{denied}"
    );

    let written = explain(&[
        "--token",
        &doctor,
        "--method",
        "POST",
        "--path",
        "/api/patients/p-2/records",
    ]);
    assert!(
        written.contains("relation   other") && written.contains("DENY"),
        "{written}"
    );
    let anonymous = explain(&["--path", "/api/patients/p-1/records"]);
    assert!(anonymous.contains("401"), "{anonymous}");
    let unmatched = explain(&["--path", "/nowhere"]);
    assert!(unmatched.contains("404"), "{unmatched}");
}
