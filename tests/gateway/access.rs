//! Access control through the real gateway: the authorization matrix (every role against
//! every kind of request, own and other patient, own and other department), spoofed identity
//! headers, the signed identity sent upstream, break-glass, service accounts over mTLS, and
//! shadow policies.

use http::{Method, Request, StatusCode};

use crate::support::*;
use wardgate::demo::pki::IssuedFiles;
use wardgate::RunningGateway;

/// The test's principals: (name, roles, department, patient id).
const PRINCIPALS: &[(&str, &str, Option<&str>, Option<&str>)] = &[
    ("patient-li", "patient", None, Some("p-1")),
    ("dr-chen", "doctor", Some("cardiology"), None),
    ("nurse-wang", "nurse", Some("cardiology"), None),
    ("ph-zhao", "pharmacist", None, None),
    ("rc-liu", "receptionist", None, None),
    ("co-sun", "compliance_officer", None, None),
    ("ad-qian", "admin", None, None),
];

/// Patient p-1 is in cardiology (the clinicians' department), p-2 in dermatology.
const REQUESTS: &[(Method, &str)] = &[
    (Method::GET, "/api/patients/p-1/records"),
    (Method::GET, "/api/patients/p-2/records"),
    (
        Method::GET,
        "/api/departments/cardiology/patients/p-1/records",
    ),
    (
        Method::GET,
        "/api/departments/dermatology/patients/p-2/records",
    ),
    (
        Method::POST,
        "/api/departments/cardiology/patients/p-1/records",
    ),
    (
        Method::POST,
        "/api/departments/dermatology/patients/p-2/records",
    ),
    (Method::GET, "/api/patients/p-1/prescriptions"),
    (Method::GET, "/api/patients/p-2/prescriptions"),
    (
        Method::GET,
        "/api/departments/cardiology/patients/p-1/prescriptions",
    ),
    (
        Method::POST,
        "/api/departments/cardiology/patients/p-1/prescriptions",
    ),
    (
        Method::POST,
        "/api/departments/dermatology/patients/p-2/prescriptions",
    ),
    (Method::GET, "/api/patients/p-1/appointments"),
    (Method::GET, "/api/patients/p-2/appointments"),
    (Method::POST, "/api/patients/p-1/appointments"),
    (Method::GET, "/api/reports/consultations"),
    (Method::GET, "/api/patients/p-1"),
    (Method::PUT, "/api/patients/p-1"),
];

/// Expected outcome per principal (rows) and request (columns, as in REQUESTS):
/// 'A' allowed and forwarded, 'D' denied with 403. Written out by hand from the hospital
/// rules, not computed: a patient reaches only their own data; clinicians only their
/// department's patients, doctors also writing records and prescriptions, nurses writing
/// records; pharmacists read prescriptions only; receptionists handle appointments and read
/// patient details (with protected fields masked, where field rules apply);
/// compliance and admin see statistics and no clinical data.
const EXPECTED: &[&str] = &[
    //  1  2  3  4  5  6  7  8  9 10 11 12 13 14 15 16 17
    "A  D  A  D  D  D  A  D  A  D  D  A  D  A  D  A  A", // patient p-1
    "D  D  A  D  A  D  D  D  A  A  D  D  D  D  D  D  D", // doctor, cardiology
    "D  D  A  D  A  D  D  D  D  D  D  D  D  D  D  D  D", // nurse, cardiology
    "D  D  D  D  D  D  A  A  A  D  D  D  D  D  D  D  D", // pharmacist
    "D  D  D  D  D  D  D  D  D  D  D  A  A  A  D  A  D", // receptionist
    "D  D  D  D  D  D  D  D  D  D  D  D  D  D  A  D  D", // compliance officer
    "D  D  D  D  D  D  D  D  D  D  D  D  D  D  A  D  D", // admin
];

#[tokio::test]
async fn the_authorization_matrix_holds_cell_by_cell() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let mut failures = Vec::new();
    let mut forwarded = 0;
    for ((subject, role, department, patient), row) in PRINCIPALS.iter().zip(EXPECTED) {
        let mut claims = claims(subject, &[role]);
        if let Some(department) = department {
            claims["department"] = (*department).into();
        }
        if let Some(patient) = patient {
            claims["patient_id"] = (*patient).into();
        }
        let token = token("ed-1", &claims);
        let cells: Vec<char> = row.chars().filter(|c| !c.is_whitespace()).collect();
        assert_eq!(cells.len(), REQUESTS.len());
        for ((method, path), cell) in REQUESTS.iter().zip(cells) {
            let before = upstream.seen().len();
            let reply = client.fetch(with_token(method.clone(), path, &token)).await;
            let reached = upstream.seen().len() > before;
            let expected = if cell == 'A' {
                StatusCode::OK
            } else {
                StatusCode::FORBIDDEN
            };
            if reply.status != expected || reached != (cell == 'A') {
                failures.push(format!(
                    "{role} {method} {path}: got {} (forwarded: {reached}), expected {expected}",
                    reply.status
                ));
            }
            if reached {
                forwarded += 1;
                let seen = upstream.last().headers;
                assert_eq!(seen["x-wardgate-subject"], *subject);
                assert_eq!(seen["x-wardgate-roles"], *role);
            }
            if cell == 'D' {
                assert_eq!(
                    reply.json()["error"],
                    "access denied",
                    "the rule never reaches the client"
                );
            }
        }
    }
    assert!(
        failures.is_empty(),
        "matrix cells wrong:\n{}",
        failures.join("\n")
    );
    let allowed: usize = EXPECTED.iter().map(|row| row.matches('A').count()).sum();
    assert_eq!(forwarded, allowed);
    let denied = metric(
        &gateway,
        r#"wardgate_authz_decisions_total{decision="deny",resource="medical_record"}"#,
    )
    .await;
    assert!(denied > 0.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut patient = claims("patient-li", &["patient"]);
    patient["patient_id"] = "p-1".into();
    let mut request = with_token(
        Method::GET,
        "/api/patients/p-1/records",
        &token("rsa-1", &patient),
    );
    for (name, value) in [
        ("x-user-id", "dr-chen"),
        ("x-user-roles", "doctor"),
        ("x-roles", "admin"),
        ("x-wardgate-subject", "ad-qian"),
        ("x-wardgate-roles", "admin"),
        ("x-wardgate-signature", "v1=forged"),
        ("x-forwarded-user", "admin"),
        ("x-remote-user", "admin"),
    ] {
        request.headers_mut().insert(name, value.parse().unwrap());
    }
    assert_eq!(client.fetch(request).await.status, StatusCode::OK);
    let seen = upstream.last().headers;
    for name in [
        "x-user-id",
        "x-user-roles",
        "x-roles",
        "x-forwarded-user",
        "x-remote-user",
    ] {
        assert!(seen.get(name).is_none(), "{name} reached the upstream");
    }
    assert_eq!(seen["x-wardgate-subject"], "patient-li");
    assert_eq!(seen["x-wardgate-roles"], "patient");
    assert_eq!(seen["x-wardgate-patient"], "p-1");
    assert_ne!(seen["x-wardgate-signature"], "v1=forged");

    // And on an unauthenticated route too.
    let mut request = Request::get("/api/hospital/info").body(no_body()).unwrap();
    request
        .headers_mut()
        .insert("x-wardgate-subject", "ad-qian".parse().unwrap());
    request
        .headers_mut()
        .insert("x-roles", "admin".parse().unwrap());
    assert_eq!(client.fetch(request).await.status, StatusCode::OK);
    let seen = upstream.last().headers;
    assert!(seen.get("x-wardgate-subject").is_none());
    assert!(seen.get("x-roles").is_none());
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_identity_sent_upstream_is_signed() {
    use base64::Engine;
    use hmac::{Hmac, Mac};

    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut doctor = claims("dr-chen", &["doctor"]);
    doctor["department"] = "cardiology".into();
    let path = "/api/departments/cardiology/patients/p-1/records?since=2026-01-01";
    assert_eq!(
        client
            .fetch(with_token(Method::GET, path, &token("ec-1", &doctor)))
            .await
            .status,
        StatusCode::OK
    );
    let seen = upstream.last().headers;
    let field = |name: &str| {
        seen.get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    // Recomputed here from the documented format, with the key the backend holds.
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(UPSTREAM_SIGNING_KEY.as_bytes()).unwrap();
    let signed = [
        "wardgate-v1".to_owned(),
        field("x-wardgate-timestamp"),
        field("x-wardgate-request-id"),
        "GET".to_owned(),
        path.to_owned(),
        "dr-chen".to_owned(),
        "doctor".to_owned(),
        "cardiology".to_owned(),
        "p-1".to_owned(),
    ]
    .join("\n");
    mac.update(signed.as_bytes());
    let expected = format!(
        "v1={}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    );
    assert_eq!(field("x-wardgate-signature"), expected);
    assert_eq!(field("x-wardgate-request-id"), field("x-request-id"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn break_glass_needs_an_eligible_role_and_a_reason_and_is_counted() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let mut doctor = claims("dr-chen", &["doctor"]);
    doctor["department"] = "cardiology".into();
    let doctor = token("ed-1", &doctor);
    let outside = "/api/departments/dermatology/patients/p-2/records";
    let with_reason = |reason: &str, method: Method, path: &str, token: &str| {
        let mut request = with_token(method, path, token);
        request
            .headers_mut()
            .insert("x-break-glass", reason.parse().unwrap());
        request
    };

    // Without a reason: denied. With a short one: denied, and told why.
    assert_eq!(
        client
            .fetch(with_token(Method::GET, outside, &doctor))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let reply = client
        .fetch(with_reason("urgent", Method::GET, outside, &doctor))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.json()["error"],
        "a break-glass reason must be at least 15 characters"
    );
    assert_eq!(
        metric(&gateway, r#"wardgate_break_glass_total{role="doctor"}"#).await,
        0.0
    );

    // With a reason: allowed, and the grant holds for this patient without the header.
    let reason = "unconscious patient in the ER, allergy check";
    assert_eq!(
        client
            .fetch(with_reason(reason, Method::GET, outside, &doctor))
            .await
            .status,
        StatusCode::OK
    );
    assert!(
        upstream.last().headers.get("x-break-glass").is_none(),
        "the reason stays in the gateway"
    );
    assert_eq!(
        client
            .fetch(with_token(Method::GET, outside, &doctor))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        metric(&gateway, r#"wardgate_break_glass_total{role="doctor"}"#).await,
        1.0
    );

    // The grant is per patient, and reading only: writing is still denied.
    let other = "/api/departments/dermatology/patients/p-3/records";
    assert_eq!(
        client
            .fetch(with_token(Method::GET, other, &doctor))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let write = client
        .fetch(with_reason(reason, Method::POST, outside, &doctor))
        .await;
    assert_eq!(write.status, StatusCode::FORBIDDEN);

    // A role without break-glass gets nothing from the header.
    let pharmacist = token("ed-1", &claims("ph-zhao", &["pharmacist"]));
    let reply = client
        .fetch(with_reason(reason, Method::GET, outside, &pharmacist))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        metric(&gateway, r#"wardgate_break_glass_total{role="doctor"}"#).await,
        1.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_break_glass_grant_expires() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = authz_config(&pki, &upstream.url()).replace("  duration: 1h", "  duration: 3s");
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut nurse = claims("nurse-wang", &["nurse"]);
    nurse["department"] = "cardiology".into();
    let nurse = token("ed-1", &nurse);
    let outside = "/api/departments/dermatology/patients/p-2/records";
    let mut request = with_token(Method::GET, outside, &nurse);
    request.headers_mut().insert(
        "x-break-glass",
        "rapid response call, ward 5".parse().unwrap(),
    );
    assert_eq!(client.fetch(request).await.status, StatusCode::OK);
    assert_eq!(
        client
            .fetch(with_token(Method::GET, outside, &nurse))
            .await
            .status,
        StatusCode::OK
    );
    // Three seconds, so that a busy machine serving the two requests above slowly does not
    // see the grant run out between them.
    tokio::time::sleep(std::time::Duration::from_millis(3300)).await;
    assert_eq!(
        client
            .fetch(with_token(Method::GET, outside, &nurse))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        metric(&gateway, r#"wardgate_break_glass_total{role="nurse"}"#).await,
        1.0
    );
    gateway.shutdown().await;
}

/// A gateway with the access-control config, and the client certificate of its `scheduling`
/// service account.
async fn scheduling_service() -> (Pki, Upstream, RunningGateway, IssuedFiles) {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let files = pki
        .ca
        .issue_client(pki.dir.path(), "scheduling", "scheduling.internal")
        .unwrap();
    (pki, upstream, gateway, files)
}

#[tokio::test]
async fn service_accounts_identify_with_client_certificates_and_may_name_patients_in_headers() {
    let (pki, upstream, gateway, files) = scheduling_service().await;
    let mut service = Client::h1_at(gateway.proxy_addr, &pki.ca_cert, Some(&files)).await;
    let request = Request::post("/api/appointments")
        .header("x-patient-id", "p-2")
        .body(body(r#"{"time":"2026-12-02T10:00"}"#))
        .unwrap();
    assert_eq!(service.fetch(request).await.status, StatusCode::OK);
    let seen = upstream.last().headers;
    assert_eq!(seen["x-wardgate-subject"], "svc-scheduling");
    assert_eq!(seen["x-wardgate-patient"], "p-2");

    // A service certificate that is not a configured account is no identity.
    let stranger = pki
        .ca
        .issue_client(pki.dir.path(), "stranger", "unknown.internal")
        .unwrap();
    let mut stranger = Client::h1_at(gateway.proxy_addr, &pki.ca_cert, Some(&stranger)).await;
    let request = Request::get("/api/appointments")
        .header("x-patient-id", "p-2")
        .body(no_body())
        .unwrap();
    assert_eq!(
        stranger.fetch(request).await.status,
        StatusCode::UNAUTHORIZED
    );

    // A user cannot name the patient in that header: only services are believed.
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut request = with_token(
        Method::GET,
        "/api/appointments",
        &token("ed-1", &claims("rc-liu", &["receptionist"])),
    );
    request
        .headers_mut()
        .insert("x-patient-id", "p-2".parse().unwrap());
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json()["error"],
        "the request does not name the patient (header from a service account x-patient-id)"
    );
    // A query parameter names the patient for everyone.
    let reply = client
        .fetch(with_token(
            Method::GET,
            "/api/appointment-search?patient=p-2",
            &token("ed-1", &claims("rc-liu", &["receptionist"])),
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.last().headers["x-wardgate-patient"], "p-2");
    gateway.shutdown().await;
}

/// A service account reconnecting resumes its TLS session (no certificate is sent again): the
/// certificate it proved in the first handshake, carried in the session ticket, still
/// identifies it.
#[tokio::test]
async fn a_service_account_on_a_resumed_session_is_still_identified_by_its_certificate() {
    let (pki, upstream, gateway, files) = scheduling_service().await;
    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], Some(&files));
    for (attempt, expected) in [rustls::HandshakeKind::Full, rustls::HandshakeKind::Resumed]
        .into_iter()
        .enumerate()
    {
        let patient = format!("p-{attempt}");
        let request = format!(
            "GET /api/appointments HTTP/1.1\r\nHost: localhost\r\nX-Patient-Id: {patient}\r\nConnection: close\r\n\r\n"
        );
        let (kind, text) =
            raw_exchange_through(gateway.proxy_addr, &connector, request.as_bytes()).await;
        assert_eq!(kind, expected);
        assert!(text.starts_with("HTTP/1.1 200"), "{expected:?}: {text}");
        let seen = upstream.last().headers;
        assert_eq!(seen["x-wardgate-subject"], "svc-scheduling", "{expected:?}");
        assert_eq!(seen["x-wardgate-patient"], patient.as_str());
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_shadow_policy_is_asked_and_counted_but_never_decides() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = authz_config(&pki, &upstream.url());
    // The candidate takes prescriptions away from pharmacists.
    let candidate = policy_without(&pki, "p, pharmacist");
    std::fs::write(pki.path("candidate.csv"), candidate).unwrap();
    let dir = pki.dir.path().display().to_string();
    let config = config.replace(
        &format!("  policy: {dir}/policy.csv\n"),
        &format!("  policy: {dir}/policy.csv\n  shadow: {dir}/candidate.csv\n"),
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let pharmacist = token("ed-1", &claims("ph-zhao", &["pharmacist"]));
    let reply = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-2/prescriptions",
            &pharmacist,
        ))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "the active policy decides");
    assert_eq!(
        metric(
            &gateway,
            r#"wardgate_authz_shadow_mismatch_total{resource="prescription"}"#
        )
        .await,
        1.0
    );
    let patient = token("ed-1", &claims("x", &["receptionist"]));
    client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-2/appointments",
            &patient,
        ))
        .await;
    assert_eq!(
        metric(
            &gateway,
            r#"wardgate_authz_shadow_mismatch_total{resource="appointment"}"#
        )
        .await,
        0.0
    );
    gateway.shutdown().await;
}
