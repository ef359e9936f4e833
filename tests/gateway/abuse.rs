//! Abuse protection through the real gateway: rate limits per subject, per address (and the
//! real client behind a trusted proxy), the patient-enumeration detector, shedding when too
//! much is in flight, slow clients (slowloris on headers and on bodies), an HTTP/2 reset flood
//! beside a well-behaved client, and limits that survive a reload.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

fn patient_token(patient: &str) -> String {
    let mut claims = claims("patient-li", &["patient"]);
    claims["patient_id"] = patient.into();
    token("ed-1", &claims)
}

fn doctor_token(subject: &str) -> String {
    let mut claims = claims(subject, &["doctor"]);
    claims["department"] = "cardiology".into();
    token("ed-1", &claims)
}

/// The authorization test config with extra top-level sections and server settings.
fn config_with(pki: &Pki, upstream_url: &str, server_extra: &str, extra: &str) -> String {
    let config = authz_config(pki, upstream_url).replace(
        "  shutdown_grace_period: 5s\n",
        &format!("  shutdown_grace_period: 5s\n{server_extra}"),
    );
    format!("{config}\n{extra}")
}

/// The YAML of one rate limit policy that every route uses.
fn one_policy(name: &str, spec: &str) -> String {
    format!("rate_limits:\n  policies:\n    {name}: {spec}\n  default: [{name}]\n")
}

/// A gateway in front of an echo upstream, with one rate limit policy on every route.
async fn limited_by(name: &str, spec: &str) -> (Pki, Upstream, wardgate::RunningGateway) {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let yaml = config_with(&pki, &upstream.url(), "", &one_policy(name, spec));
    let gateway = start_gateway(&pki, &yaml).await;
    (pki, upstream, gateway)
}

fn get(path: &str, token: &str) -> Request<ClientBody> {
    with_token(Method::GET, path, token)
}

#[tokio::test]
async fn a_burst_passes_then_429_with_its_headers_and_service_resumes_after_the_wait() {
    let (pki, upstream, gateway) =
        limited_by("per-subject", "{ key: subject, rate: 1/s, burst: 3 }").await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let patient = patient_token("p-1");
    for _ in 0..3 {
        let reply = client
            .fetch(get("/api/patients/p-1/records", &patient))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let limited = client
        .fetch(get("/api/patients/p-1/records", &patient))
        .await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(
        limited.header("ratelimit-policy"),
        Some("\"per-subject\";q=1;w=1")
    );
    assert_eq!(limited.header("ratelimit"), Some("\"per-subject\";r=0;t=1"));
    assert!(limited.json()["error"]
        .as_str()
        .unwrap()
        .starts_with("rate limit exceeded (per-subject)"));
    assert_eq!(
        upstream.seen().len(),
        3,
        "a limited request never reaches the upstream"
    );

    // Another subject from the same address has its own bucket.
    let doctor = doctor_token("dr-chen");
    let other = client
        .fetch(get(
            "/api/departments/cardiology/patients/p-1/records",
            &doctor,
        ))
        .await;
    assert_eq!(other.status, StatusCode::OK);

    // One token comes back every second (a slow rate, so that a busy machine running the
    // four requests above slowly cannot refill the bucket in between).
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let resumed = client
        .fetch(get("/api/patients/p-1/records", &patient))
        .await;
    assert_eq!(resumed.status, StatusCode::OK);

    let limited_records = audit_trail(&pki)
        .into_iter()
        .filter(|r| r.decision == "rate_limited")
        .collect::<Vec<_>>();
    assert_eq!(limited_records.len(), 1);
    assert_eq!(limited_records[0].status, 429);
    assert_eq!(limited_records[0].subject.as_deref(), Some("patient-li"));
    assert_eq!(
        metric(
            &gateway,
            "wardgate_rate_limited_total{key_kind=\"subject\",policy=\"per-subject\"}"
        )
        .await,
        1.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn per_address_limits_count_every_subject_from_that_address() {
    let (pki, _upstream, gateway) =
        limited_by("per-ip", "{ key: client_ip, rate: 1/min, burst: 2 }").await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let patient = patient_token("p-1");
    let doctor = doctor_token("dr-chen");
    assert_eq!(
        client
            .fetch(get("/api/patients/p-1/records", &patient))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        client
            .fetch(get(
                "/api/departments/cardiology/patients/p-1/records",
                &doctor
            ))
            .await
            .status,
        StatusCode::OK
    );
    let third = client
        .fetch(get(
            "/api/departments/cardiology/patients/p-1/records",
            &doctor,
        ))
        .await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        third.header("ratelimit-policy"),
        Some("\"per-ip\";q=1;w=60")
    );
    let wait: u64 = third.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "one token per minute: {wait}");
    gateway.shutdown().await;
}

/// A token of the right shape whose payload was changed after signing: it fails only at the
/// signature check.
fn forged(valid: &str) -> String {
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut parts = valid.split('.');
    let (head, payload, signature) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let mut claims: serde_json::Value =
        serde_json::from_slice(&engine.decode(payload).unwrap()).unwrap();
    claims["sub"] = "dr-house".into();
    let payload = engine.encode(serde_json::to_vec(&claims).unwrap());
    format!("{head}.{payload}.{signature}")
}

#[tokio::test]
async fn past_its_address_limit_a_flood_of_forged_tokens_is_refused_before_any_signature_check() {
    let (pki, upstream, gateway) =
        limited_by("per-ip", "{ key: client_ip, rate: 1/min, burst: 3 }").await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let path = "/api/departments/cardiology/patients/p-1/records";
    let doctor = doctor_token("dr-chen");
    let forged = forged(&doctor);

    assert_eq!(
        client.fetch(get(path, &doctor)).await.status,
        StatusCode::OK
    );
    // Within the address's burst, a forged token is checked and refused as such.
    for _ in 0..2 {
        let refused = client.fetch(get(path, &forged)).await;
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    }
    // Past it, the same address is refused before its token is looked at.
    for _ in 0..5 {
        let refused = client.fetch(get(path, &forged)).await;
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused.header("ratelimit-policy"),
            Some("\"per-ip\";q=1;w=60")
        );
    }
    assert_eq!(
        metric(
            &gateway,
            "wardgate_authn_failures_total{reason=\"bad_signature\"}"
        )
        .await,
        2.0,
        "no signature is checked for a request refused by address"
    );
    // A caller whose token was verified before is refused the same way, and still named.
    let limited = client.fetch(get(path, &doctor)).await;
    assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        metric(
            &gateway,
            "wardgate_rate_limited_total{key_kind=\"client_ip\",policy=\"per-ip\"}"
        )
        .await,
        6.0
    );
    assert_eq!(upstream.seen().len(), 1);

    let records = audit_trail(&pki)
        .into_iter()
        .filter(|r| r.decision == "rate_limited")
        .collect::<Vec<_>>();
    let subjects: Vec<Option<&str>> = records.iter().map(|r| r.subject.as_deref()).collect();
    assert_eq!(
        subjects,
        [None, None, None, None, None, Some("dr-chen")],
        "a forged token names nobody; a verified one is named from the cache"
    );
    assert!(records.iter().all(|r| r.status == 429));
    gateway.shutdown().await;
}

#[tokio::test]
async fn requests_that_match_no_route_spend_their_address_quota() {
    let (pki, upstream, gateway) =
        limited_by("per-ip", "{ key: client_ip, rate: 1/min, burst: 2 }").await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(client.get("/wp-admin").await.status, StatusCode::NOT_FOUND);
    assert_eq!(client.get("/.env.bak").await.status, StatusCode::NOT_FOUND);
    let scanning = client.get("/backup.zip").await;
    assert_eq!(scanning.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        scanning.header("ratelimit-policy"),
        Some("\"per-ip\";q=1;w=60")
    );
    // The same quota as the address's other requests.
    assert_eq!(
        client.get("/api/hospital/info").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(upstream.seen().is_empty());

    // Unmatched and public requests are audited buffered: the records are certain to be
    // committed once the gateway has stopped.
    gateway.shutdown().await;
    let decisions: Vec<String> = audit_trail(&pki)
        .into_iter()
        .map(|record| record.decision)
        .collect();
    assert_eq!(
        decisions,
        ["unmatched", "unmatched", "rate_limited", "rate_limited"]
    );
}

#[tokio::test]
async fn behind_a_trusted_proxy_the_forwarded_client_is_counted_and_otherwise_it_is_ignored() {
    let policy = &one_policy("per-ip", "{ key: client_ip, rate: 1/min, burst: 1 }");
    let forwarded = |address: &str| {
        let mut request = get("/api/patients/p-1/records", &patient_token("p-1"));
        request.headers_mut().insert(
            "x-forwarded-for",
            format!("198.51.100.9, {address}").parse().unwrap(),
        );
        request
    };

    // The peer (127.0.0.1) is a trusted proxy: the nearest untrusted address counts.
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let yaml = config_with(
        &pki,
        &upstream.url(),
        "  trusted_proxies: [127.0.0.1/32]\n",
        policy,
    );
    let gateway = start_gateway(&pki, &yaml).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client.fetch(forwarded("203.0.113.5")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.fetch(forwarded("203.0.113.5")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        client.fetch(forwarded("203.0.113.6")).await.status,
        StatusCode::OK
    );
    let clients: Vec<String> = audit_trail(&pki)
        .into_iter()
        .map(|record| record.client)
        .collect();
    assert_eq!(clients, ["203.0.113.5", "203.0.113.5", "203.0.113.6"]);
    gateway.shutdown().await;

    // An untrusted peer's X-Forwarded-For is ignored: every request is the peer's.
    let pki = Pki::new();
    let yaml = config_with(&pki, &upstream.url(), "", policy);
    let gateway = start_gateway(&pki, &yaml).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client.fetch(forwarded("203.0.113.7")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client.fetch(forwarded("203.0.113.8")).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_subject_reading_too_many_patients_is_throttled_and_flagged_once() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let yaml = config_with(
        &pki,
        &upstream.url(),
        "",
        "enumeration:\n  window: 10m\n  max_patients: { doctor: 2, default: 1000 }\n",
    );
    let gateway = start_gateway(&pki, &yaml).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let doctor = doctor_token("dr-chen");
    let records = |patient: &str| format!("/api/departments/cardiology/patients/{patient}/records");
    for patient in ["p-1", "p-2", "p-1"] {
        assert_eq!(
            client.fetch(get(&records(patient), &doctor)).await.status,
            StatusCode::OK
        );
    }
    let third = client.fetch(get(&records("p-3"), &doctor)).await;
    assert_eq!(third.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        third.header("ratelimit-policy"),
        Some("\"enumeration\";q=2;w=600")
    );
    assert!(third.header("retry-after").unwrap().parse::<u64>().unwrap() > 500);
    assert_eq!(
        client.fetch(get(&records("p-4"), &doctor)).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Patients already in care stay reachable; other doctors are not affected.
    assert_eq!(
        client.fetch(get(&records("p-2"), &doctor)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        client
            .fetch(get(&records("p-3"), &doctor_token("dr-wu")))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        metric(
            &gateway,
            "wardgate_enumeration_alerts_total{role=\"doctor\"}"
        )
        .await,
        1.0
    );
    let flagged = audit_trail(&pki)
        .into_iter()
        .filter(|r| r.flags.contains(&"enumeration_suspected".to_owned()))
        .count();
    assert_eq!(flagged, 2);
    gateway.shutdown().await;
}

/// A request shed while its body is still on the way gets its 503 once the body is in, and
/// its HTTP/1.1 connection stays usable (see `discard_unread`).
#[tokio::test]
async fn a_request_shed_while_its_body_comes_late_keeps_its_connection() {
    let slow = Upstream::start(|request| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        echo(request).await
    })
    .await;
    let pki = Pki::new();
    let yaml = config_with(&pki, &slow.url(), "  limits:\n    max_in_flight: 1\n", "");
    let gateway = start_gateway(&pki, &yaml).await;
    let token = patient_token("p-1");
    let mut busy = Client::h1(&gateway, &pki.ca_cert).await;
    let in_flight = tokio::spawn({
        let token = token.clone();
        async move {
            busy.fetch(get("/api/patients/p-1/records", &token))
                .await
                .status
        }
    });
    // The slow request holds the one place once the upstream has it.
    slow.wait_for(1).await;

    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut shed = with_token(Method::POST, "/api/patients/p-1/records", &token);
    shed.headers_mut()
        .insert("content-length", "15".parse().unwrap());
    *shed.body_mut() = late_body(br#"{"note":"late"}"#);
    let reply = client.fetch(shed).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    // The same connection, once the slow request is done.
    assert_eq!(in_flight.await.unwrap(), StatusCode::OK);
    let again = client.fetch(get("/api/patients/p-1/records", &token)).await;
    assert_eq!(again.status, StatusCode::OK);
    gateway.shutdown().await;
}

/// Sends `count` requests at once to a slow upstream; returns the statuses.
async fn flood(gateway: &wardgate::RunningGateway, pki: &Pki, count: usize) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let mut client = Client::h1(gateway, &pki.ca_cert).await;
        let token = patient_token("p-1");
        tasks.push(tokio::spawn(async move {
            let reply = client.fetch(get("/api/patients/p-1/records", &token)).await;
            assert!(
                reply.status != StatusCode::SERVICE_UNAVAILABLE
                    || reply.header("retry-after") == Some("1")
            );
            reply.status
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

#[tokio::test]
async fn past_the_in_flight_caps_requests_are_shed_before_the_backend_and_health_stays_up() {
    let slow = Upstream::start(|request| async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        echo(request).await
    })
    .await;
    for (server_extra, upstream_cap, scope) in [
        ("  limits:\n    max_in_flight: 2\n", "", "global"),
        ("", "    max_in_flight: 2\n", "upstream"),
    ] {
        let pki = Pki::new();
        let yaml = config_with(&pki, &slow.url(), server_extra, "").replace(
            "    response_timeout: 2s\n",
            &format!("    response_timeout: 2s\n{upstream_cap}"),
        );
        let gateway = start_gateway(&pki, &yaml).await;
        let before = slow.seen().len();
        let (statuses, health) = tokio::join!(flood(&gateway, &pki, 6), async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            admin_get(&gateway, "/healthz").await.status
        });
        let shed = statuses
            .iter()
            .filter(|s| **s == StatusCode::SERVICE_UNAVAILABLE)
            .count();
        let served = statuses.iter().filter(|s| **s == StatusCode::OK).count();
        assert_eq!((served, shed), (2, 4), "{scope}: {statuses:?}");
        assert_eq!(
            slow.seen().len() - before,
            2,
            "{scope}: shed requests never reached the backend"
        );
        assert_eq!(
            health,
            StatusCode::OK,
            "{scope}: the admin listener is never shed"
        );
        let sample = format!("wardgate_requests_shed_total{{scope=\"{scope}\"}}");
        assert_eq!(metric(&gateway, &sample).await, 4.0);
        gateway.shutdown().await;
    }
}

#[tokio::test]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let yaml = config_with(
        &pki,
        &upstream.url(),
        "  limits:\n    header_read_timeout: 1s\n    body_read_timeout: 1s\n",
        "",
    );
    let gateway = start_gateway(&pki, &yaml).await;
    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);

    // Slowloris on the headers: a request head that never ends.
    let mut slow_head = tls_stream(gateway.proxy_addr, &connector).await.unwrap();
    slow_head
        .write_all(b"GET /api/hospital/info HTTP/1.1\r\nhost: localhost\r\nx-slow: 1\r\n")
        .await
        .unwrap();
    // Slowloris on the body: a declared body that stops arriving.
    let mut slow_body = tls_stream(gateway.proxy_addr, &connector).await.unwrap();
    let head = format!(
        "PUT /api/patients/p-1 HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"a\":",
        patient_token("p-1")
    );
    slow_body.write_all(head.as_bytes()).await.unwrap();

    // Meanwhile everyone else is served.
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    for _ in 0..5 {
        assert_eq!(
            client.get("/api/hospital/info").await.status,
            StatusCode::OK
        );
    }

    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), slow_head.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the slow head's connection was closed");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), slow_body.read_to_end(&mut out)).await;
    let response = String::from_utf8_lossy(&out);
    assert_eq!(raw_status(&response), 408, "{response}");
    assert!(response.contains("the request body stopped arriving"));
    assert_eq!(
        metric(
            &gateway,
            "wardgate_connections_closed_total{reason=\"body_timeout\"}"
        )
        .await,
        1.0
    );
    assert!(
        metric(
            &gateway,
            "wardgate_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await
            >= 1.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_http2_reset_flood_does_not_stall_other_connections() {
    let pki = Pki::new();
    let upstream = Upstream::start(|request| async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        echo(request).await
    })
    .await;
    let gateway = start_gateway(&pki, &config_with(&pki, &upstream.url(), "", "")).await;
    let mut attacker = Client::h2(&gateway, &pki.ca_cert).await;
    let flood = tokio::spawn(async move {
        // Each request is sent, then cancelled at once (RST_STREAM), thousands of times.
        let mut sent = 0;
        for _ in 0..5000 {
            let request = Request::get("/api/hospital/info").body(no_body()).unwrap();
            match tokio::time::timeout(Duration::from_micros(1), attacker.try_send(request)).await {
                Ok(Err(_)) => break, // the gateway closed the connection
                _ => sent += 1,
            }
        }
        sent
    });
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    for _ in 0..20 {
        let reply = tokio::time::timeout(Duration::from_secs(10), client.get("/api/hospital/info"))
            .await
            .expect("a well-behaved client is served during the flood");
        assert_eq!(reply.status, StatusCode::OK);
    }
    let sent = flood.await.unwrap();
    assert!(sent > 0);
    let mut after = Client::h2(&gateway, &pki.ca_cert).await;
    assert_eq!(after.get("/api/hospital/info").await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_reload_keeps_the_counts_of_unchanged_policies() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let policy = |rate: &str| {
        one_policy(
            "per-subject",
            &format!("{{ key: subject, rate: {rate}, burst: 2 }}"),
        )
    };
    let yaml = config_with(&pki, &upstream.url(), "", &policy("1/min"));
    let gateway = start_gateway(&pki, &yaml).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let patient = patient_token("p-1");
    for expected in [
        StatusCode::OK,
        StatusCode::OK,
        StatusCode::TOO_MANY_REQUESTS,
    ] {
        assert_eq!(
            client
                .fetch(get("/api/patients/p-1/records", &patient))
                .await
                .status,
            expected
        );
    }
    gateway.reload().await.unwrap();
    assert_eq!(
        client
            .fetch(get("/api/patients/p-1/records", &patient))
            .await
            .status,
        StatusCode::TOO_MANY_REQUESTS,
        "an unchanged policy keeps its count"
    );
    write_config(
        &pki,
        &config_with(&pki, &upstream.url(), "", &policy("2/min")),
    );
    gateway.reload().await.unwrap();
    assert_eq!(
        client
            .fetch(get("/api/patients/p-1/records", &patient))
            .await
            .status,
        StatusCode::OK,
        "a changed policy starts afresh"
    );
    gateway.shutdown().await;
}

#[test]
fn unknown_policies_and_bad_rates_are_config_errors() {
    let pki = Pki::new();
    for (extra, message) in [
        (
            "rate_limits:\n  default: [nope]\n",
            "unknown rate limit policy \"nope\"",
        ),
        (
            "rate_limits:\n  policies:\n    x: { key: subject, rate: 10/fortnight }\n",
            "invalid rate \"10/fortnight\"",
        ),
        (
            "rate_limits:\n  policies:\n    x: { key: cookie, rate: 10/s }\n",
            "unknown variant `cookie`",
        ),
        (
            "enumeration:\n  max_patients: { doctor: 0 }\n",
            "enumeration.max_patients.doctor: must be at least 1",
        ),
    ] {
        let path = write_config(&pki, &config_with(&pki, "http://127.0.0.1:9", "", extra));
        let errors = wardgate::config::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            errors.contains(message),
            "expected {message:?}, got: {errors}"
        );
    }
}
