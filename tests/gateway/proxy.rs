//! Proxying: GET and POST over HTTP/1.1 and HTTP/2, streaming both ways, deny by default,
//! the body of a refused request, and the headers that cross (or must not cross) the proxy.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

use crate::support::*;

#[tokio::test]
async fn proxies_get_and_post_over_http1_and_http2() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;

    for mut client in [
        Client::h1(&gateway, &pki.ca_cert).await,
        Client::h2(&gateway, &pki.ca_cert).await,
    ] {
        let reply = client.get("/api/patients/p-1001?fields=name").await;
        assert_eq!(reply.status, StatusCode::OK);
        let echoed = reply.json();
        assert_eq!(echoed["method"], "GET");
        assert_eq!(echoed["path"], "/api/patients/p-1001?fields=name");

        let post = Request::post("/api/patients/p-1001/records")
            .header("content-type", "application/json")
            .body(body(r#"{"diagnosis":"migraine"}"#))
            .unwrap();
        let reply = client.fetch(post).await;
        assert_eq!(reply.status, StatusCode::OK);
        let echoed = reply.json();
        assert_eq!(echoed["method"], "POST");
        assert_eq!(echoed["body"], r#"{"diagnosis":"migraine"}"#);
        assert_eq!(echoed["headers"]["content-type"], "application/json");
    }
    assert_eq!(upstream.seen().len(), 4);
    gateway.shutdown().await;
}

#[tokio::test]
async fn unknown_route_is_404_json_and_never_forwarded() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;

    for path in [
        "/",
        "/admin",
        "/api/patients",
        "/api/patients/p-1/records/extra",
        "/API/patients/p-1",
    ] {
        let reply = client.get(path).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "path {path}");
        let error = reply.json();
        assert_eq!(error["error"], "no route matches the request");
        assert_eq!(error["request_id"], reply.header("x-request-id").unwrap());
    }
    let reply = client
        .fetch(
            Request::delete("/api/patients/p-1")
                .body(no_body())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(reply.header("allow"), Some("GET, PUT"));
    assert!(
        upstream.seen().is_empty(),
        "nothing unmatched may reach the upstream"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn large_upload_streams_to_the_upstream_intact() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;

    // 8 MiB in 64 KiB chunks with no Content-Length: the gateway cannot buffer it whole
    // against a length it knows, it must stream it.
    let chunk = Bytes::from(vec![b'v'; 64 * 1024]);
    let frames = futures_util::stream::iter(
        (0..128).map(move |_| Ok::<_, BoxError>(Frame::data(chunk.clone()))),
    );
    let request = Request::post("/api/uploads")
        .header("content-type", "audio/ogg")
        .body(StreamBody::new(frames).boxed())
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["body_len"], 8 * 1024 * 1024);
    gateway.shutdown().await;
}

type BoxError = wardgate::proxy::body::BoxError;

/// A request refused while its body is still on the way (a client can be slower than the
/// gateway's answer): the body is read off before the answer, so the connection is not
/// lost to the bytes left unread.
#[tokio::test]
async fn a_refused_request_whose_body_comes_late_leaves_the_http1_connection_usable() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let refused = Request::post("/nowhere")
        .header("content-length", "18")
        .body(late_body(br#"{"drug":"aspirin"}"#))
        .unwrap();
    assert_eq!(client.fetch(refused).await.status, StatusCode::NOT_FOUND);
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(upstream.seen().len(), 1);
    gateway.shutdown().await;
}

/// curl before 8.1 (Debian 12 has 7.88) reports "Empty reply from server" when an HTTP/2
/// answer overtakes the body it is still sending, for the stream reset that follows such an
/// answer. Read off first, the body ends the stream and curl shows the answer.
#[tokio::test]
async fn curl_gets_the_refusal_of_a_request_whose_body_comes_late_over_http2() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let script = format!(
        "(sleep 0.3; printf '{{\"drug\":\"aspirin\"}}') | curl --http2 --cacert {ca} -sS -o /dev/null -w '%{{http_code}}' -X POST -T - https://localhost:{port}/nowhere",
        ca = pki.ca_cert.display(),
        port = gateway.proxy_addr.port(),
    );
    let output = run_shell(&script).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{script}\n{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "404", "{stderr}");
    assert!(upstream.seen().is_empty());
    gateway.shutdown().await;
}

#[tokio::test]
async fn response_streams_without_buffering() {
    // The upstream sends one event, then waits until the test has received it before sending
    // the next: a gateway that buffered the response would deadlock here.
    let (seen_first, first_received) = tokio::sync::watch::channel(false);
    let upstream = Upstream::start(move |_request| {
        let mut first_received = first_received.clone();
        async move {
            let (sender, receiver) =
                tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
            tokio::spawn(async move {
                sender
                    .send(Ok(Frame::data(Bytes::from_static(b"data: first\n\n"))))
                    .await
                    .unwrap();
                let _ = first_received.wait_for(|received| *received).await;
                sender
                    .send(Ok(Frame::data(Bytes::from_static(b"data: second\n\n"))))
                    .await
                    .unwrap();
            });
            let stream = tokio_stream_from(receiver);
            let mut response = Response::new(StreamBody::new(stream).boxed());
            response
                .headers_mut()
                .insert("content-type", "text/event-stream".parse().unwrap());
            response
        }
    })
    .await;
    let pki = Pki::new();
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let response = client
        .send(Request::get("/api/events/c-2001").body(no_body()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut incoming = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(5), incoming.frame())
        .await
        .expect("the first event must arrive before the upstream finishes")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "data: first\n\n");
    seen_first.send(true).unwrap();
    let rest = incoming.collect().await.unwrap().to_bytes();
    assert_eq!(rest, "data: second\n\n");
    gateway.shutdown().await;
}

/// A response body the upstream stops sending ends once nothing has moved on the client's
/// connection for `idle_timeout` (the client may have left, which a connection that only
/// waits does not notice), and the upstream connection it held is closed.
#[tokio::test]
async fn a_stalled_response_body_is_cut_off_after_the_idle_timeout_and_frees_its_upstream_connection(
) {
    let (held, mut bodies) = tokio::sync::mpsc::unbounded_channel();
    let upstream = Upstream::start(move |_request| {
        let held = held.clone();
        async move {
            let (sender, receiver) = tokio::sync::mpsc::channel(1);
            sender
                .send(Ok::<_, BoxError>(Frame::data(Bytes::from_static(
                    b"data: first\n\n",
                ))))
                .await
                .unwrap();
            // Kept open and never finished.
            held.send(sender).unwrap();
            Response::new(StreamBody::new(tokio_stream_from(receiver)).boxed())
        }
    })
    .await;
    let pki = Pki::new();
    let config = standard_config(&pki, &upstream.url())
        .replace("    idle_timeout: 30s", "    idle_timeout: 1s");
    let gateway = start_gateway(&pki, &config).await;
    for h2 in [false, true] {
        // Each made just before its use: idle for a second, it would be closed.
        let mut client = if h2 {
            Client::h2(&gateway, &pki.ca_cert).await
        } else {
            Client::h1(&gateway, &pki.ca_cert).await
        };
        let response = client
            .send(Request::get("/api/events/c-2001").body(no_body()).unwrap())
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let mut incoming = response.into_body();
        let first = tokio::time::timeout(Duration::from_secs(5), incoming.frame())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(first.into_data().unwrap(), "data: first\n\n");
        let upstream_body = bodies.recv().await.unwrap();
        let rest = tokio::time::timeout(Duration::from_secs(10), incoming.frame())
            .await
            .expect("cut off after the idle timeout");
        assert!(
            matches!(rest, Some(Err(_))),
            "the body ends in an error, not as if it were whole: {rest:?}"
        );
        tokio::time::timeout(Duration::from_secs(10), upstream_body.closed())
            .await
            .expect("the upstream connection is closed");
    }
    assert_eq!(
        metric(
            &gateway,
            "wardgate_connections_closed_total{reason=\"idle_timeout\"}"
        )
        .await,
        2.0
    );
    gateway.shutdown().await;
}

fn tokio_stream_from<T: Send + 'static>(
    mut receiver: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + Sync + 'static {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_and_forwarded_headers_come_from_the_connection() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;

    let request = Request::get("/api/patients/p-1001")
        .header("host", "consult.example-hospital.cn")
        .header("connection", "keep-alive, x-internal-hint")
        .header("x-internal-hint", "drop me")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "trailers")
        .header("x-forwarded-for", "10.9.9.9")
        .header("x-forwarded-proto", "http")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=10.9.9.9")
        .header("x-request-id", "trace-42")
        .header("x-app-version", "3.1")
        .body(no_body())
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::OK);

    let seen = upstream.last().headers;
    for gone in [
        "x-internal-hint",
        "keep-alive",
        "proxy-authorization",
        "te",
        "forwarded",
    ] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} must not reach the upstream"
        );
    }
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "a client cannot choose its address"
    );
    assert_eq!(seen["x-forwarded-proto"], "https");
    assert_eq!(seen["x-forwarded-host"], "consult.example-hospital.cn");
    assert_eq!(seen["host"], upstream.addr.to_string());
    assert_eq!(seen["x-request-id"], "trace-42");
    assert_eq!(seen["x-app-version"], "3.1");

    // And on the way back: no server banner, security headers, the request id.
    assert!(reply.headers.get("server").is_none());
    assert_eq!(reply.header("x-request-id"), Some("trace-42"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        reply.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    assert_eq!(reply.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(reply.header("x-frame-options"), Some("DENY"));

    // A request without an id gets a fresh one, sent upstream and returned.
    let reply = client.get("/api/patients/p-1002").await;
    let generated = reply.header("x-request-id").unwrap().to_owned();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(upstream.last().headers["x-request-id"], generated.as_str());
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_trusted_proxy_extends_the_forwarded_chain() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "  shutdown_grace_period: 5s",
        "  shutdown_grace_period: 5s\n  trusted_proxies: [127.0.0.0/8]",
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let request = Request::get("/api/patients/p-1001")
        .header("x-forwarded-for", "203.0.113.7")
        .header("x-forwarded-host", "consult.example-hospital.cn")
        .body(no_body())
        .unwrap();
    assert_eq!(client.fetch(request).await.status, StatusCode::OK);
    let seen = upstream.last().headers;
    assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "consult.example-hospital.cn");
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_upstream_url_path_prefix_is_kept() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &format!("{}/backend/v2/", upstream.url()));
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-7?x=1").await;
    assert_eq!(reply.json()["path"], "/backend/v2/api/patients/p-7?x=1");
    gateway.shutdown().await;
}
