//! WebSocket: an upgrade on a route that allows it passes the stages like any request, then
//! frames are relayed both ways; on other routes the upgrade is not passed on.

use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A real WebSocket echo server (tungstenite) on loopback.
async fn websocket_echo_upstream() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut socket) = tokio_tungstenite::accept_async(tcp).await else {
                    return;
                };
                while let Some(Ok(message)) = socket.next().await {
                    if message.is_text() || message.is_binary() {
                        socket.send(message).await.unwrap();
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn websocket_frames_are_relayed_both_ways() {
    let pki = Pki::new();
    let upstream = websocket_echo_upstream().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &format!("http://{upstream}"))).await;

    let tls = gateway_tls(&gateway, &pki.ca_cert, b"http/1.1").await;
    let (mut socket, response) =
        tokio_tungstenite::client_async("wss://localhost/ws/consultations/c-2001", tls)
            .await
            .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert!(response.headers().get("x-request-id").is_some());

    for text in ["hello doctor", "the pain is on the left side"] {
        socket.send(Message::text(text)).await.unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket
        .send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap().into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    socket.close(None).await.unwrap();
    assert_eq!(
        metric(&gateway, "wardgate_websocket_sessions_total").await,
        1.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn an_upgrade_on_a_route_without_websocket_is_not_passed_on() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let request = Request::get("/api/patients/p-1")
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(no_body())
        .unwrap();
    let reply = client.fetch(request).await;
    assert_eq!(reply.status, StatusCode::OK);
    let seen = upstream.last().headers;
    assert!(seen.get("upgrade").is_none());
    assert!(seen.get("connection").is_none());
    gateway.shutdown().await;
}
