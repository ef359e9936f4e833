//! CORS: the gateway answers preflights itself and decorates responses for allowed origins.

use http::{Request, StatusCode};

use crate::support::*;

const ORIGIN: &str = "https://consult.example-hospital.cn";

fn preflight(origin: &str, method: &str) -> Request<ClientBody> {
    Request::options("/api/consultations/c-1/messages")
        .header("origin", origin)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", "content-type")
        .body(no_body())
        .unwrap()
}

#[tokio::test]
async fn preflight_is_answered_by_the_gateway() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;

    let reply = client.fetch(preflight(ORIGIN, "POST")).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        reply.header("access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        reply.header("access-control-allow-headers"),
        Some("content-type, authorization")
    );
    assert_eq!(
        reply.header("access-control-allow-credentials"),
        Some("true")
    );
    assert_eq!(reply.header("access-control-max-age"), Some("600"));

    for (origin, method) in [("https://evil.example", "POST"), (ORIGIN, "DELETE")] {
        let reply = client.fetch(preflight(origin, method)).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{origin} {method}");
        assert!(reply.headers.get("access-control-allow-origin").is_none());
    }
    // A route without CORS refuses preflights.
    let request = Request::options("/api/patients/p-1")
        .header("origin", ORIGIN)
        .header("access-control-request-method", "GET")
        .body(no_body())
        .unwrap();
    assert_eq!(client.fetch(request).await.status, StatusCode::FORBIDDEN);
    assert!(upstream.seen().is_empty(), "preflights are never forwarded");
    gateway.shutdown().await;
}

#[tokio::test]
async fn responses_carry_cors_headers_only_for_allowed_origins() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;

    let request = Request::get("/api/consultations/c-1/messages")
        .header("origin", ORIGIN)
        .body(no_body())
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(
        reply.header("access-control-expose-headers"),
        Some("x-request-id")
    );
    assert_eq!(reply.header("vary"), Some("Origin"));

    let request = Request::get("/api/consultations/c-1/messages")
        .header("origin", "https://evil.example")
        .body(no_body())
        .unwrap();
    let reply = client.fetch(request).await;
    assert!(reply.headers.get("access-control-allow-origin").is_none());
    gateway.shutdown().await;
}
