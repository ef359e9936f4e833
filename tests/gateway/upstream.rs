//! Upstream failures and upstream TLS: refused -> 502, slow -> 504, neither leaks the
//! upstream's address; TLS upstreams are verified and can require our client certificate.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use wardgate::proxy::body::{full, BoxError};

use crate::support::*;

#[tokio::test]
async fn an_upstream_that_refuses_connections_gives_502() {
    let pki = Pki::new();
    let down = closed_port().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &format!("http://{down}"))).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let text = String::from_utf8_lossy(&reply.body);
    assert!(
        text.contains("the upstream service is unavailable"),
        "{text}"
    );
    assert!(
        !text.contains(&down.port().to_string()),
        "the error must not leak the upstream address: {text}"
    );
    let errors = upstream_errors(&gateway, "connect").await;
    assert_eq!(errors, 1.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_drops_the_connection_mid_request_gives_502() {
    // Accepts, reads the request, and closes without answering.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buffer = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buffer).await;
            drop(tcp);
        }
    });
    let pki = Pki::new();
    let gateway = start_gateway(&pki, &standard_config(&pki, &format!("http://{addr}"))).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    let errors = upstream_errors(&gateway, "broken").await;
    assert_eq!(errors, 1.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_slow_upstream_gives_504() {
    let pki = Pki::new();
    let upstream = Upstream::start(|_request| async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        Response::new(full("too late"))
    })
    .await;
    let config = standard_config(&pki, &upstream.url())
        .replace("response_timeout: 2s", "response_timeout: 300ms");
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        reply.json()["error"],
        "the upstream service did not answer in time"
    );
    let errors = upstream_errors(&gateway, "response_timeout").await;
    assert_eq!(errors, 1.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_pooled_connection_times_each_request_from_its_own_start() {
    let pki = Pki::new();
    let upstream = Upstream::start(|request| async move {
        if request.uri().path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        echo(request).await
    })
    .await;
    let config = standard_config(&pki, &upstream.url())
        .replace("response_timeout: 2s", "response_timeout: 300ms");
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut get = async |path: &str| client.get(path).await.status;

    // A slow answer on a connection that served a request before: 504, and the connection
    // (its response never came) is closed.
    assert_eq!(get("/api/patients/p-1").await, StatusCode::OK);
    assert_eq!(get("/api/patients/slow").await, StatusCode::GATEWAY_TIMEOUT);

    // A connection left idle for longer than the timeout: its next requests still get their
    // full time, and a slow one still times out.
    assert_eq!(get("/api/patients/p-2").await, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(get("/api/patients/p-3").await, StatusCode::OK);
    assert_eq!(get("/api/patients/p-4").await, StatusCode::OK);
    assert_eq!(get("/api/patients/slow").await, StatusCode::GATEWAY_TIMEOUT);

    assert_eq!(
        upstream.connections(),
        2,
        "p-1 and the first slow request on one connection, the rest on a second"
    );
    let timeouts = upstream_errors(&gateway, "response_timeout").await;
    assert_eq!(timeouts, 2.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn waiting_for_a_free_upstream_connection_counts_against_the_response_timeout() {
    let pki = Pki::new();
    // `held` answers at once with a body that never ends, keeping its connection busy.
    let upstream = Upstream::start(|request| async move {
        if request.uri().path().ends_with("/held") {
            use futures_util::StreamExt;
            let first: Result<_, BoxError> = Ok(Frame::data(Bytes::from_static(b"{")));
            let endless = futures_util::stream::once(async move { first })
                .chain(futures_util::stream::pending());
            return Response::new(http_body_util::BodyExt::boxed(
                http_body_util::StreamBody::new(endless),
            ));
        }
        echo(request).await
    })
    .await;
    let config = standard_config(&pki, &upstream.url())
        .replace(
            "    response_timeout: 2s",
            "    response_timeout: 300ms\n    pool: { max_connections: 1 }",
        )
        .replace("shutdown_grace_period: 5s", "shutdown_grace_period: 1s");
    let gateway = start_gateway(&pki, &config).await;

    let mut holder = Client::h1(&gateway, &pki.ca_cert).await;
    let held = holder
        .send(Request::get("/api/patients/held").body(no_body()).unwrap())
        .await;
    assert_eq!(held.status(), StatusCode::OK);
    let mut waiter = Client::h1(&gateway, &pki.ca_cert).await;
    let waited = tokio::time::timeout(Duration::from_secs(10), waiter.get("/api/patients/p-1"))
        .await
        .expect("the wait for a connection ended with the response timeout");
    assert_eq!(
        waited.status,
        StatusCode::GATEWAY_TIMEOUT,
        "the only connection stayed busy past the response timeout"
    );
    let timeouts = upstream_errors(&gateway, "response_timeout").await;
    assert_eq!(timeouts, 1.0);
    // The held response never ends: shutdown cuts it off when the grace period is over.
    drop(held);
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_upstream_that_never_completes_the_connect_gives_504() {
    // A listener whose accept queue is full and never drained: further SYNs are dropped, so
    // a connect hangs until the gateway's connect timeout.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    loop {
        match tokio::time::timeout(
            Duration::from_millis(300),
            tokio::net::TcpStream::connect(addr),
        )
        .await
        {
            Ok(Ok(stream)) => fillers.push(stream),
            _ => break,
        }
        assert!(fillers.len() < 64, "the accept queue never filled");
    }
    let pki = Pki::new();
    let config = standard_config(&pki, &format!("http://{addr}"))
        .replace("connect_timeout: 1s", "connect_timeout: 300ms");
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT);
    let errors = upstream_errors(&gateway, "connect_timeout").await;
    assert_eq!(errors, 1.0);
    drop(listener);
    gateway.shutdown().await;
}

#[tokio::test]
async fn upstream_connections_are_pooled() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    for i in 0..10 {
        assert_eq!(
            client.get(&format!("/api/patients/p-{i}")).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(upstream.seen().len(), 10);
    assert_eq!(
        upstream.connections(),
        1,
        "ten sequential requests share one pooled connection"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn past_max_connections_requests_wait_for_a_free_connection() {
    let pki = Pki::new();
    let upstream = Upstream::start(|request| async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        echo(request).await
    })
    .await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "    response_timeout: 2s",
        "    response_timeout: 2s\n    pool: { max_connections: 2 }",
    );
    let gateway = start_gateway(&pki, &config).await;
    let statuses = get_concurrently(gateway.proxy_addr, &pki.ca_cert, 6).await;
    assert_eq!(
        statuses,
        vec![StatusCode::OK; 6],
        "every request waited its turn"
    );
    assert_eq!(upstream.seen().len(), 6);
    assert_eq!(
        upstream.connections(),
        2,
        "six concurrent requests over at most two upstream connections"
    );
    // Both connections came back to the pool once their responses were read.
    let idle = metric(
        &gateway,
        r#"wardgate_upstream_connections{state="idle",upstream="backend"}"#,
    )
    .await;
    let busy = metric(
        &gateway,
        r#"wardgate_upstream_connections{state="busy",upstream="backend"}"#,
    )
    .await;
    assert_eq!((busy, idle), (0.0, 2.0));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_pooled_connection_the_upstream_closed_is_not_reused() {
    // Answers one request per connection with a keep-alive response, then closes it: the
    // pooled connection is dead by the time the next request comes.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buffer = [0u8; 4096];
            let _ = tokio::io::AsyncReadExt::read(&mut tcp, &mut buffer).await;
            let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
            let _ = tokio::io::AsyncWriteExt::write_all(&mut tcp, reply).await;
            drop(tcp);
        }
    });
    let pki = Pki::new();
    let gateway = start_gateway(&pki, &standard_config(&pki, &format!("http://{addr}"))).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    for i in 0..3 {
        let reply = client.get(&format!("/api/patients/p-{i}")).await;
        assert_eq!(reply.status, StatusCode::OK, "request {i}");
        assert_eq!(reply.json()["ok"], true);
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_connection_still_sending_an_upload_is_not_lent_to_the_next_request() {
    // Answers each request as soon as its head arrived, without waiting for its body, and
    // keeps the connection open: the upload that follows is still being sent when the
    // response is complete.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Ok(n) = tokio::io::AsyncReadExt::read(&mut tcp, &mut buffer).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buffer[..n]);
                    while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                        seen.drain(..end + 4);
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if tokio::io::AsyncWriteExt::write_all(&mut tcp, reply)
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    });
    let pki = Pki::new();
    let config = standard_config(&pki, &format!("http://{addr}")).replace(
        "    response_timeout: 2s",
        "    response_timeout: 1s\n    pool: { max_connections: 2 }",
    );
    let gateway = start_gateway(&pki, &config).await;

    // An upload that declares 100 bytes, sends one and stalls.
    let mut uploader = gateway_tls(&gateway, &pki.ca_cert, b"http/1.1").await;
    tokio::io::AsyncWriteExt::write_all(
        &mut uploader,
        b"PUT /api/patients/p-1 HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{",
    )
    .await
    .unwrap();
    let mut answer = [0u8; 1024];
    let n = tokio::io::AsyncReadExt::read(&mut uploader, &mut answer)
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"),
        "the upstream answered the upload early"
    );

    // The next request gets another connection, not the one still carrying the upload.
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-2").await;
    assert_eq!(reply.status, StatusCode::OK);
    drop(uploader);
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_http2_upstream_is_spoken_to_over_http2() {
    // h2c with prior knowledge: `http2: true` on a plain http:// upstream.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let service = hyper::service::service_fn(
                |request: http::Request<hyper::body::Incoming>| async move {
                    let version = format!("{:?} {}", request.version(), request.uri().path());
                    Ok::<_, std::convert::Infallible>(Response::new(full(version)))
                },
            );
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), service),
            );
        }
    });
    let pki = Pki::new();
    let config = standard_config(&pki, &format!("http://{addr}")).replace(
        "    response_timeout: 2s",
        "    response_timeout: 2s\n    http2: true",
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    for i in 0..3 {
        let reply = client.get(&format!("/api/patients/p-{i}")).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(
            String::from_utf8_lossy(&reply.body),
            format!("HTTP/2.0 /api/patients/p-{i}")
        );
    }
    gateway.shutdown().await;
}

/// A TLS upstream that requires a client certificate signed by `pki`'s CA.
async fn start_mtls_upstream(pki: &Pki) -> std::net::SocketAddr {
    let backend = pki
        .ca
        .issue_server(pki.dir.path(), "backend", &["backend.internal"])
        .unwrap();
    let roots = wardgate::tls::load_roots(&pki.ca_cert).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        wardgate::tls::provider(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(wardgate::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            wardgate::tls::load_certs(&backend.cert).unwrap(),
            wardgate::tls::load_private_key(&backend.key).unwrap(),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    serve_upstream_connection(
                        TokioIo::new(tls),
                        echo,
                        Arc::new(Mutex::new(Vec::new())),
                    );
                }
            });
        }
    });
    addr
}

fn tls_upstream_config(pki: &Pki, addr: std::net::SocketAddr, tls_block: &str) -> String {
    standard_config(pki, &format!("https://{addr}")).replace(
        "    response_timeout: 2s\n",
        &format!("    response_timeout: 2s\n    tls:\n{tls_block}"),
    )
}

#[tokio::test]
async fn a_tls_upstream_is_verified_and_gets_our_client_certificate() {
    let pki = Pki::new();
    let addr = start_mtls_upstream(&pki).await;
    let client_cert = pki
        .ca
        .issue_client(pki.dir.path(), "gateway-client", "wardgate")
        .unwrap();
    let tls_block = format!(
        "      ca: {}\n      client_cert: {}\n      client_key: {}\n      server_name: backend.internal\n",
        pki.ca_cert.display(),
        client_cert.cert.display(),
        client_cert.key.display()
    );
    let gateway = start_gateway(&pki, &tls_upstream_config(&pki, addr, &tls_block)).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let reply = client.get("/api/patients/p-1").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.json()["path"], "/api/patients/p-1");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_tls_upstream_without_our_certificate_or_with_a_foreign_ca_fails_closed() {
    let pki = Pki::new();
    let addr = start_mtls_upstream(&pki).await;

    // No client certificate: the upstream refuses the handshake.
    let tls_block = format!(
        "      ca: {}\n      server_name: backend.internal\n",
        pki.ca_cert.display()
    );
    let gateway = start_gateway(&pki, &tls_upstream_config(&pki, addr, &tls_block)).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client.get("/api/patients/p-1").await.status,
        StatusCode::BAD_GATEWAY
    );
    gateway.shutdown().await;

    // A CA that did not sign the upstream's certificate: we refuse the upstream.
    let other = wardgate::demo::pki::CertificateAuthority::new("someone else").unwrap();
    let other_ca = other.write_cert(&pki.path("other-ca.pem")).unwrap();
    let tls_block = format!(
        "      ca: {}\n      server_name: backend.internal\n",
        other_ca.display()
    );
    let gateway = start_gateway(&pki, &tls_upstream_config(&pki, addr, &tls_block)).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client.get("/api/patients/p-1").await.status,
        StatusCode::BAD_GATEWAY
    );
    gateway.shutdown().await;
}

/// `wardgate_upstream_errors_total` of the `backend` upstream for one kind of failure.
async fn upstream_errors(gateway: &wardgate::RunningGateway, kind: &str) -> f64 {
    let series = format!(r#"wardgate_upstream_errors_total{{kind="{kind}",upstream="backend"}}"#);
    metric(gateway, &series).await
}
