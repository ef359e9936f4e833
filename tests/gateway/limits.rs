//! Body size limits: declared and streamed bodies over the limit get 413, per-route limits
//! raise it for uploads, and oversized headers are refused. Connection limits: past
//! `max_connections` a connection is closed at once, and a low open-files limit is raised at
//! start (or named in a warning when the hard limit is too low for the config).

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::support::*;

#[tokio::test]
async fn a_declared_body_over_the_limit_is_413_and_not_forwarded() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let request = Request::post("/api/patients/p-1/records")
        .header("content-type", "application/json")
        .body(body(vec![b'x'; 64 * 1024 + 1]))
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.json()["error"],
        "the request body is larger than 65536 bytes"
    );
    assert!(upstream.seen().is_empty());

    // Exactly the limit passes.
    let request = Request::post("/api/patients/p-1/records")
        .body(body(vec![b'x'; 64 * 1024]))
        .unwrap();
    assert_eq!(client.fetch(request).await.status, StatusCode::OK);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let frames = futures_util::stream::iter(
        (0..8).map(move |_| Ok::<_, wardgate::proxy::body::BoxError>(Frame::data(chunk.clone()))),
    );
    let request = Request::post("/api/patients/p-1/records")
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    gateway.shutdown().await;
}

/// A client that sent `Expect: 100-continue` waits to hear whether to send its body: a
/// refusal answers it at once, without asking for the body first.
#[tokio::test]
async fn a_client_expecting_100_continue_is_refused_without_being_asked_for_its_body() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    for (path, status) in [("/api/patients/p-1/records", 413), ("/nowhere", 404)] {
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        );
        let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
        assert_eq!(raw_status(&response), status, "{path}: {response}");
        assert!(!response.contains("100 Continue"), "{path}: {response}");
    }
    assert!(upstream.seen().is_empty());
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_route_limit_allows_larger_uploads() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let request = Request::post("/api/uploads")
        .body(body(vec![b'x'; 2 * 1024 * 1024]))
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_len"], 2 * 1024 * 1024);
    // Over the route's limit; on HTTP/2, where a refused body does not cost the connection.
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let request = Request::post("/api/uploads")
        .body(body(vec![b'x'; 16 * 1024 * 1024 + 1]))
        .unwrap();
    assert_eq!(
        client.fetch(request).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let big = "a".repeat(40 * 1024);
    let request = format!("GET /api/patients/p-1 HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\nConnection: close\r\n\r\n");
    let response = raw_exchange(gateway.proxy_addr, &pki.ca_cert, request.as_bytes()).await;
    assert_eq!(
        raw_status(&response),
        431,
        "{}",
        &response[..response.len().min(200)]
    );
    assert!(upstream.seen().is_empty());
    gateway.shutdown().await;
}

#[tokio::test]
async fn connections_past_the_maximum_are_closed_at_once() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "    idle_timeout: 30s",
        "    idle_timeout: 30s\n    max_connections: 1",
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut first = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(first.get("/api/patients/p-1").await.status, StatusCode::OK);

    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
    assert!(
        tls_stream(gateway.proxy_addr, &connector).await.is_err(),
        "the second connection is refused"
    );
    assert_eq!(
        metric(&gateway, "wardgate_connections_rejected_total").await,
        1.0
    );

    // The first connection is unaffected; once it closes, a new one is served.
    assert_eq!(first.get("/api/patients/p-2").await.status, StatusCode::OK);
    drop(first);
    let mut served = false;
    for _ in 0..50 {
        if let Ok(tls) = tls_stream(gateway.proxy_addr, &connector).await {
            drop(tls);
            served = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        served,
        "a slot is free again after the first connection closed"
    );
    gateway.shutdown().await;
}

/// The real binary on the standard config with JSON logs, started by a shell after `ulimit`,
/// with its upstream and the events it logged up to "wardgate is serving". Kept whole: the
/// gateway and the upstream live as long as this does.
struct StartedUnderLimit {
    pki: Pki,
    _upstream: Upstream,
    process: KilledOnDrop,
    events: Vec<serde_json::Value>,
}

async fn start_after_ulimit(ulimit: &str) -> StartedUnderLimit {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let path = write_config(
        &pki,
        &with_json_log(&standard_config(&pki, &upstream.url())),
    );
    let (child, events) = spawn_binary_after(ulimit, &path);
    StartedUnderLimit {
        pki,
        _upstream: upstream,
        process: KilledOnDrop(child),
        events,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_low_open_files_limit_is_raised_at_start_and_more_connections_are_served() {
    let (_, hard) = open_files_limits("self");
    if hard < 1024 {
        eprintln!(
            "skipped: the hard open-files limit here is {hard}, too low to show a raise past 256"
        );
        return;
    }
    let started = start_after_ulimit("ulimit -S -n 256").await;
    let events = &started.events;

    let raised = events
        .iter()
        .find(|event| event["message"] == "raised the open-files limit")
        .expect("the raise is logged");
    assert_eq!(raised["was"], 256);
    assert_eq!(raised["now"], hard);
    let serving = events.last().unwrap();
    assert_eq!(serving["open_files"], hard);
    assert_eq!(
        open_files_limits(&started.process.0.id().to_string()),
        (hard, hard)
    );

    // More connections open at once than the limit it was started with, each served.
    let proxy_addr = serving["proxy_addr"].as_str().unwrap().parse().unwrap();
    let statuses = get_concurrently(proxy_addr, &started.pki.ca_cert, 300).await;
    assert_eq!(statuses, vec![StatusCode::OK; 300]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hard_open_files_limit_below_the_configs_needs_is_named_in_a_warning() {
    let started = start_after_ulimit("ulimit -n 512").await;
    let events = &started.events;

    let warning = events
        .iter()
        .find(|event| event["level"] == "WARN")
        .expect("a warning about the limit");
    let message = warning["message"].as_str().unwrap();
    // The defaults: 10,000 client connections, 256 to the upstream, 64 for the gateway itself.
    assert!(
        message.starts_with(
            "the open-files limit is below the 10320 descriptors (server.limits.max_connections \
             10000, the upstreams' pool.max_connections 256, 64 for the gateway's own files)"
        ),
        "{message}"
    );
    assert!(message.contains("LimitNOFILE="), "{message}");
    assert_eq!(warning["limit"], 512);
    assert_eq!(warning["needed"], 10_000 + 256 + 64);
    assert!(
        !events
            .iter()
            .any(|event| event["message"] == "raised the open-files limit"),
        "nothing to raise: soft and hard are both 512"
    );

    // It still serves.
    let serving = events.last().unwrap();
    assert_eq!(serving["open_files"], 512);
    let proxy_addr = serving["proxy_addr"].as_str().unwrap().parse().unwrap();
    let statuses = get_concurrently(proxy_addr, &started.pki.ca_cert, 2).await;
    assert_eq!(statuses, vec![StatusCode::OK; 2]);
}
