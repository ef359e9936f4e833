//! The admin listener: health, readiness, and metrics that count what happened.

use http::{Request, StatusCode};

use crate::support::*;

#[tokio::test]
async fn health_and_readiness_answer_on_the_admin_listener() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let health = admin_get(&gateway, "/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.json()["status"], "ok");
    let ready = admin_get(&gateway, "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["status"], "ready");
    assert_eq!(
        admin_get(&gateway, "/secrets").await.status,
        StatusCode::NOT_FOUND
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    client.get("/api/patients/p-1").await;
    client.get("/api/patients/p-2").await;
    client.get("/nowhere").await;
    // Refused on its own HTTP/2 connection: an HTTP/1.1 connection is closed after a 413.
    let too_big = Request::post("/api/patients/p-1/records")
        .body(body(vec![0u8; 70_000]))
        .unwrap();
    let mut other = Client::h2(&gateway, &pki.ca_cert).await;
    assert_eq!(
        other.fetch(too_big).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    drop(other);
    // A client that is not speaking TLS at all.
    let mut plain = tokio::net::TcpStream::connect(gateway.proxy_addr)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"GET / HTTP/1.1\r\n\r\n")
        .await
        .unwrap();
    let mut sink = Vec::new();
    let _ = tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut sink).await;

    let sample = |labels: &str| format!("wardgate_requests_total{{{labels}}}");
    assert_eq!(
        metric(
            &gateway,
            &sample(r#"method="GET",route="patient",status_class="2xx""#)
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &gateway,
            &sample(r#"method="GET",route="unmatched",status_class="4xx""#)
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &gateway,
            &sample(r#"method="POST",route="patient-records",status_class="4xx""#)
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &gateway,
            r#"wardgate_request_duration_seconds_count{route="patient"}"#
        )
        .await,
        2.0
    );
    assert_eq!(
        metric(
            &gateway,
            r#"wardgate_upstream_duration_seconds_count{upstream="backend"}"#
        )
        .await,
        2.0
    );
    let open = poll_until(
        50,
        std::time::Duration::from_millis(20),
        async || metric(&gateway, "wardgate_active_connections").await,
        |&open| open == 1.0,
    )
    .await;
    assert_eq!(open, 1.0, "the first client's connection is still open");
    assert_eq!(
        metric(&gateway, "wardgate_tls_handshake_errors_total").await,
        1.0
    );
    assert_eq!(
        metric(&gateway, r#"wardgate_build_info{version="0.1.0"}"#).await,
        1.0
    );
    let expiry = metric(&gateway, "wardgate_tls_cert_expiry_timestamp_seconds").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now,
        "the certificate's expiry is exported: {expiry}"
    );

    let text = admin_get(&gateway, "/metrics").await;
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_room_left_for_the_stores_is_measured() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    // Measured as the gateway starts, off the serving thread: wait for the first sample.
    let available = poll_until(
        50,
        std::time::Duration::from_millis(50),
        async || metric(&gateway, "wardgate_data_dir_available_bytes").await,
        |&available| available > 0.0,
    )
    .await;
    let stats = rustix::fs::statvfs(pki.path("data").as_path()).unwrap();
    let total = (stats.f_blocks * stats.f_frsize) as f64;
    assert!(
        available > 0.0 && available <= total,
        "{available} bytes available of {total}"
    );
    gateway.shutdown().await;
}
