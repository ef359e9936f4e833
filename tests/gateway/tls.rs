//! The listener's TLS: TLS 1.2 and 1.3 only, AEAD suites only, ALPN h2 and http/1.1,
//! client certificates when mTLS is configured, and session resumption. Weak protocols are
//! probed with the openssl command-line client, since rustls cannot even offer them.

use std::process::{Command, Stdio};

use http::StatusCode;

use crate::support::*;

/// Runs `openssl s_client` against the gateway; true when the handshake completed.
fn openssl_handshake(addr: std::net::SocketAddr, args: &[&str]) -> bool {
    let output = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-servername",
            "localhost",
        ])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the openssl command is needed for this test");
    let stdout = String::from_utf8_lossy(&output.stdout);
    output.status.success() && stdout.contains("Cipher is") && !stdout.contains("Cipher is (NONE)")
}

#[tokio::test]
async fn only_modern_protocols_and_suites_are_offered() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let addr = gateway.proxy_addr;
    let probe = tokio::task::spawn_blocking(move || {
        [
            openssl_handshake(addr, &["-tls1_3"]),
            openssl_handshake(
                addr,
                &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"],
            ),
            openssl_handshake(addr, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES256-SHA384"]),
            openssl_handshake(addr, &["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA"]),
            openssl_handshake(addr, &["-tls1_1", "-cipher", "ALL:@SECLEVEL=0"]),
            openssl_handshake(addr, &["-tls1", "-cipher", "ALL:@SECLEVEL=0"]),
        ]
    })
    .await
    .unwrap();
    assert_eq!(
        probe,
        [true, true, false, false, false, false],
        "TLS1.3, TLS1.2 GCM ok; CBC, TLS1.1, TLS1.0 refused"
    );
    assert!(metric(&gateway, "wardgate_tls_handshake_errors_total").await >= 4.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn alpn_negotiates_h2_or_http1() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let connector = tls_connector(&pki.ca_cert, &[b"h2", b"http/1.1"], None);
    let tls = tls_stream(gateway.proxy_addr, &connector).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (_, connection) = tls.get_ref();
    assert!(matches!(
        connection.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    ));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_client_offering_no_alpn_speaks_http1() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let answer = raw_exchange_offering(
        gateway.proxy_addr,
        &pki.ca_cert,
        &[],
        b"GET /api/patients/p-1 HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(upstream.last().path_and_query, "/api/patients/p-1");
    gateway.shutdown().await;
}

fn mtls_config(pki: &Pki, upstream: &str, mode: &str) -> String {
    standard_config(pki, upstream).replace(
        "  limits:\n",
        &format!(
            "    client_ca: {}\n    client_auth: {mode}\n  limits:\n",
            pki.ca_cert.display()
        ),
    )
}

#[tokio::test]
async fn required_client_certificates_are_enforced() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &mtls_config(&pki, &upstream.url(), "required")).await;

    let client_files = pki
        .ca
        .issue_client(pki.dir.path(), "billing-service", "billing-service")
        .unwrap();
    let mut service = Client::h1_at(gateway.proxy_addr, &pki.ca_cert, Some(&client_files)).await;
    assert_eq!(
        service.get("/api/patients/p-1").await.status,
        StatusCode::OK
    );

    // Without a certificate the handshake (or the first read, in TLS 1.3) fails.
    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
    assert!(
        is_refused(gateway.proxy_addr, &connector).await,
        "a client without a certificate must not be served"
    );

    // A certificate from another CA is refused too.
    let other = wardgate::demo::pki::CertificateAuthority::new("other").unwrap();
    let foreign = other
        .issue_client(pki.dir.path(), "foreign", "intruder")
        .unwrap();
    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], Some(&foreign));
    assert!(
        is_refused(gateway.proxy_addr, &connector).await,
        "a certificate from another CA must be refused"
    );
    assert_eq!(upstream.seen().len(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn optional_client_certificates_still_serve_clients_without_one() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &mtls_config(&pki, &upstream.url(), "optional")).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(client.get("/api/patients/p-1").await.status, StatusCode::OK);
    gateway.shutdown().await;
}

/// Whether the gateway refuses to serve a request over this connector: in TLS 1.3 a refused
/// client certificate surfaces at the first read rather than in the handshake.
async fn is_refused(addr: std::net::SocketAddr, connector: &tokio_rustls::TlsConnector) -> bool {
    let Ok(tls) = tls_stream(addr, connector).await else {
        return true;
    };
    let Ok((mut sender, connection)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await
    else {
        return true;
    };
    tokio::spawn(connection);
    let request = http::Request::get("/api/patients/p-1")
        .header("host", "localhost")
        .body(no_body())
        .unwrap();
    sender.send_request(request).await.is_err()
}

/// One request on a new connection through `connector`; how the handshake went.
async fn one_request(
    addr: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> rustls::HandshakeKind {
    let (kind, response) = raw_exchange_through(
        addr,
        connector,
        b"GET /api/patients/p-1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    kind
}

#[tokio::test]
async fn clients_resume_their_sessions_and_with_tickets_however_many_came_between() {
    use rustls::HandshakeKind::{Full, Resumed};
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    for tickets in [true, false] {
        let mut config = standard_config(&pki, &upstream.url());
        if !tickets {
            config = config.replace("  limits:\n", "    session_tickets: false\n  limits:\n");
        }
        let gateway = start_gateway(&pki, &config).await;
        let addr = gateway.proxy_addr;
        let returning = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
        assert_eq!(one_request(addr, &returning).await, Full);
        // Back at once: resumed either way.
        assert_eq!(
            one_request(addr, &returning).await,
            Resumed,
            "tickets: {tickets}"
        );

        // 150 other clients in between, each leaving two TLS 1.3 tickets: more than the 256
        // sessions the gateway keeps in memory without tickets.
        for _ in 0..150 {
            let other = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
            assert_eq!(one_request(addr, &other).await, Full);
        }
        let expected = if tickets { Resumed } else { Full };
        assert_eq!(
            one_request(addr, &returning).await,
            expected,
            "tickets: {tickets}"
        );
        gateway.shutdown().await;
    }
}
