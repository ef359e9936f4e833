//! Path normalization over the wire: every ambiguous path is refused with 400 before routing,
//! and what is forwarded is exactly the canonical path that was routed.

use http::StatusCode;

use crate::support::*;

/// Request targets sent raw, as an attacker would, with why each must be refused.
const REFUSED: &[(&str, &str)] = &[
    ("/api/patients/p-1%2f..%2f..%2fadmin", "encoded slash"),
    ("/api/patients/p-1%2F", "encoded slash, upper case"),
    ("/api/patients/p-1%5c..%5cadmin", "encoded backslash"),
    ("/api/patients/p-1\\..\\admin", "raw backslash"),
    ("/api/patients/p-1%00", "encoded NUL"),
    ("/api/patients/%2e%2e/p-1", "encoded dot-dot"),
    ("/api/patients/.%2E/p-1", "half-encoded dot-dot"),
    ("/api/patients/%252e%252e/p-1", "double encoding"),
    ("/api/patients/p-1%zz", "invalid percent-encoding"),
    ("/api/patients/p-1%", "truncated percent-encoding"),
    (
        "/api/patients/p-1;jsessionid=abc",
        "semicolon path parameter",
    ),
    ("/api/patients/..;/p-1", "semicolon dot-dot (Tomcat)"),
    ("/../api/patients/p-1", "above the root"),
    ("/api/patients/p-1%0d%0aX-Injected:%201", "encoded CRLF"),
];

#[tokio::test]
async fn ambiguous_paths_are_refused_and_never_forwarded() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    for (target, why) in REFUSED {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
        assert_eq!(raw_status(&response), 400, "{why}: {target} got {response}");
    }
    // Raw bytes that are not even valid in a request line are refused by the HTTP parser.
    for target in ["/api/patients/p-1\0", "/api/patients/caf\u{e9}"] {
        let request =
            format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
        assert_eq!(raw_status(&response), 400, "{target:?} got {response}");
    }
    assert!(
        upstream.seen().is_empty(),
        "no refused path may reach the upstream"
    );
    let refused = metric(
        &gateway,
        r#"wardgate_path_rejections_total{reason="encoded_separator"}"#,
    )
    .await;
    assert_eq!(refused, 3.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_refusal_is_json_and_names_the_problem() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/%2e%2e/p-1").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json()["error"],
        "invalid request path: the path contains a percent-encoded dot segment"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_canonical_path_is_what_is_forwarded() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let cases = [
        ("//api///patients/p-1001", "/api/patients/p-1001"),
        ("/api/./patients/x/../p-1001", "/api/patients/p-1001"),
        ("/api/patients/%70-1001", "/api/patients/p-1001"),
        (
            "/api/patients/p%2d1001/records?since=2026-01-01",
            "/api/patients/p-1001/records?since=2026-01-01",
        ),
        ("/api/patients/a%3fb", "/api/patients/a%3Fb"),
    ];
    for (sent, forwarded) in cases {
        let request =
            format!("GET {sent} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
        assert_eq!(raw_status(&response), 200, "{sent}: {response}");
        assert_eq!(upstream.last().path_and_query, forwarded, "sent {sent}");
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn semicolons_pass_when_configured() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "  shutdown_grace_period: 5s",
        "  shutdown_grace_period: 5s\n  paths:\n    allow_semicolon: true",
    );
    let gateway = start_gateway(&pki, &config).await;
    let request =
        "GET /api/patients/p-1;v=2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
    assert_eq!(raw_status(&response), 200, "{response}");
    assert_eq!(upstream.last().path_and_query, "/api/patients/p-1;v=2");
    gateway.shutdown().await;
}
