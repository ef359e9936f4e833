//! The gateway's life: graceful shutdown finishes in-flight requests, a bad reload keeps the
//! running config, SIGHUP swaps the certificate without dropping open connections, SIGTERM
//! stops the binary cleanly (with every log line written out), idle or slow connections are
//! closed, and shutdown closes idle connections at once and the rest when the grace period ends.

use std::process::Command;
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wardgate::proxy::body::full;

use crate::support::*;

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let pki = Pki::new();
    let upstream = Upstream::start(|_request| async {
        tokio::time::sleep(Duration::from_millis(800)).await;
        Response::new(full("finished"))
    })
    .await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let proxy_addr = gateway.proxy_addr;
    let admin_addr = gateway.admin_addr;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let in_flight = tokio::spawn(async move { client.get("/api/patients/p-1").await });
    upstream.wait_for(1).await;

    let shutdown = tokio::spawn(gateway.shutdown());
    tokio::time::sleep(Duration::from_millis(100)).await;
    // While draining: not ready, and no new connections.
    let tcp = tokio::net::TcpStream::connect(admin_addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let readiness = sender
        .send_request(
            Request::get("/readyz")
                .header("host", "admin")
                .body(no_body())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(readiness.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        tokio::net::TcpStream::connect(proxy_addr).await.is_err(),
        "the listener is closed"
    );

    let reply = in_flight.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "finished");
    shutdown.await.unwrap();
}

#[tokio::test]
async fn a_bad_reload_keeps_the_running_config_and_a_good_one_applies() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url());
    let gateway = start_gateway(&pki, &config).await;

    write_config(
        &pki,
        &config.replace("methods: [GET, PUT]", "methods: [GET, PUTT"),
    );
    let errors = gateway.reload().await.unwrap_err().to_string();
    assert!(errors.contains("wardgate.yaml:"), "{errors}");
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(client.get("/api/patients/p-1").await.status, StatusCode::OK);
    assert_eq!(
        metric(&gateway, "wardgate_config_reload_failures_total").await,
        1.0
    );

    let with_new_route = config.replace(
        "routes:\n",
        "routes:\n  - name: appointments\n    path: /api/appointments\n    methods: [GET]\n    upstream: backend\n    auth: none\n",
    );
    write_config(&pki, &with_new_route);
    gateway.reload().await.unwrap();
    assert_eq!(client.get("/api/appointments").await.status, StatusCode::OK);
    assert_eq!(metric(&gateway, "wardgate_config_reloads_total").await, 1.0);
    gateway.shutdown().await;
}

/// The gateway binary, started with a config; its JSON log says where it listens.
struct GatewayProcess {
    child: KilledOnDrop,
    proxy_addr: std::net::SocketAddr,
}

impl GatewayProcess {
    fn start(config: &std::path::Path) -> GatewayProcess {
        let (child, proxy_addr, _) = spawn_binary(config);
        GatewayProcess {
            child: KilledOnDrop(child),
            proxy_addr,
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    async fn terminate(mut self) -> Option<i32> {
        self.signal("TERM");
        tokio::task::spawn_blocking(move || self.child.0.wait().map(|s| s.code()))
            .await
            .unwrap()
            .unwrap()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.0.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

async fn served_certificate(addr: std::net::SocketAddr, ca: &std::path::Path) -> Vec<u8> {
    let tls = tls_stream(addr, &tls_connector(ca, &[b"http/1.1"], None))
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

#[tokio::test]
async fn sighup_reloads_the_certificate_without_dropping_open_connections() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = with_json_log(&standard_config(&pki, &upstream.url()));
    let path = write_config(&pki, &config);
    let process = GatewayProcess::start(&path);
    let addr = process.proxy_addr;

    let before = served_certificate(addr, &pki.ca_cert).await;
    let tls = tls_stream(addr, &tls_connector(&pki.ca_cert, &[b"http/1.1"], None))
        .await
        .unwrap();
    let (mut open, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let get = || {
        Request::get("/api/patients/p-1")
            .header("host", "localhost")
            .body(no_body())
            .unwrap()
    };
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK
    );

    // A renewed certificate lands in the same files; SIGHUP picks it up.
    pki.ca
        .issue_server(pki.dir.path(), "server", &["localhost", "127.0.0.1"])
        .unwrap();
    process.signal("HUP");
    let after = poll_until(
        50,
        Duration::from_millis(100),
        async || served_certificate(addr, &pki.ca_cert).await,
        |after| *after != before,
    )
    .await;
    assert_ne!(after, before, "new connections get the renewed certificate");
    assert_eq!(
        open.send_request(get()).await.unwrap().status(),
        StatusCode::OK,
        "the open connection survives"
    );

    assert_eq!(
        process.terminate().await,
        Some(0),
        "SIGTERM is a clean stop"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_log_file_gets_every_access_line_by_sigterm_and_no_colour_codes() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace("  level: warn", "  level: info");
    let path = write_config(&pki, &config);
    // stderr into a file, as a service manager that appends to a log file runs it.
    let log_path = pki.dir.path().join("wardgate.log");
    let child = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut proxy_addr = None;
    for _ in 0..200 {
        let log = std::fs::read_to_string(&log_path).unwrap();
        proxy_addr = log
            .lines()
            .find(|line| line.contains("wardgate is serving"))
            .and_then(|line| line.split("proxy_addr=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .map(|addr| addr.parse::<std::net::SocketAddr>().unwrap());
        if proxy_addr.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let process = GatewayProcess {
        child: KilledOnDrop(child),
        proxy_addr: proxy_addr.expect("no \"wardgate is serving\" line in the log file"),
    };

    let statuses = get_concurrently(process.proxy_addr, &pki.ca_cert, 20).await;
    assert_eq!(statuses, vec![StatusCode::OK; 20]);
    assert_eq!(process.terminate().await, Some(0));

    let log = std::fs::read_to_string(&log_path).unwrap();
    let access = log
        .lines()
        .filter(|line| {
            line.contains("  INFO wardgate::access: request request_id=\"")
                && line.contains(" client=127.0.0.1 method=GET route=\"")
                && line.contains(" status=200 latency_ms=")
        })
        .count();
    assert_eq!(
        access, 20,
        "one access line a request, all written by exit:\n{log}"
    );
    assert!(!log.contains('\x1b'), "colour codes in a log file:\n{log}");
    assert!(
        log.lines().last().unwrap().ends_with("stopped"),
        "the last line is the stop:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn on_one_cpu_the_binary_runs_one_thread_for_connections_and_serves_concurrent_requests() {
    let pki = Pki::new();
    let upstream = Upstream::start(|request| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        echo(request).await
    })
    .await;
    let config = with_json_log(&standard_config(&pki, &upstream.url()));
    let path = write_config(&pki, &config);
    let (child, serving) = spawn_binary_on_one_cpu(&path);
    assert_eq!(
        serving["runtime"], "current_thread",
        "one CPU: no worker pool, connections are served on the main thread"
    );
    let process = GatewayProcess {
        child: KilledOnDrop(child),
        proxy_addr: serving["proxy_addr"].as_str().unwrap().parse().unwrap(),
    };

    let statuses = get_concurrently(process.proxy_addr, &pki.ca_cert, 8).await;
    assert_eq!(statuses, vec![StatusCode::OK; 8]);
    assert_eq!(upstream.seen().len(), 8);

    assert_eq!(
        process.terminate().await,
        Some(0),
        "SIGTERM is a clean stop"
    );
}

/// Sends one GET on `tls` and reads up to the end of the response head (the echo upstream's
/// small body comes with it); the head's text. The connection stays open.
async fn served_once<S>(tls: &mut S) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tls.write_all(b"GET /api/patients/p-1 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    while !response.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        let n = tls.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before the first response");
        response.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&response).into_owned()
}

/// Sends a request head that never ends on `tls` and waits up to `within` for the gateway to
/// close the connection; whether it did.
async fn closed_after_a_stalled_head<S>(tls: &mut S, within: Duration) -> bool
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    tls.write_all(b"GET /api/patients/p-1 HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(within, tls.read_to_end(&mut out))
        .await
        .is_ok()
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "    idle_timeout: 30s",
        "    idle_timeout: 400ms\n    header_read_timeout: 400ms",
    );
    let gateway = start_gateway(&pki, &config).await;

    // Slowloris: headers that never finish.
    let mut tls = gateway_tls(&gateway, &pki.ca_cert, b"http/1.1").await;
    assert!(
        closed_after_a_stalled_head(&mut tls, Duration::from_secs(5)).await,
        "a connection that never finishes its headers is closed"
    );

    // An idle keep-alive connection is closed after the idle timeout.
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(client.get("/api/patients/p-1").await.status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = client
        .try_send(Request::get("/api/patients/p-1").body(no_body()).unwrap())
        .await;
    assert!(again.is_err(), "the idle connection was closed");
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_keep_alive_connection_waits_the_idle_timeout_and_a_late_head_only_the_header_timeout() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = standard_config(&pki, &upstream.url()).replace(
        "    idle_timeout: 30s",
        "    idle_timeout: 10s\n    header_read_timeout: 400ms",
    );
    let gateway = start_gateway(&pki, &config).await;
    let between_requests = Duration::from_millis(1500);

    // Quiet between two requests for longer than the header timeout, well within the idle
    // timeout: the same connection serves the second.
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(client.get("/api/patients/p-1").await.status, StatusCode::OK);
    tokio::time::sleep(between_requests).await;
    let again = client
        .try_send(Request::get("/api/patients/p-1").body(no_body()).unwrap())
        .await;
    assert_eq!(
        again
            .expect("the keep-alive connection is still open")
            .status(),
        StatusCode::OK
    );

    // On a connection that has served a request, a head that begins and never ends is cut
    // off by the header timeout, long before the idle timeout.
    let mut tls = gateway_tls(&gateway, &pki.ca_cert, b"http/1.1").await;
    assert_eq!(raw_status(&served_once(&mut tls).await), 200);
    tokio::time::sleep(between_requests).await;
    assert!(
        closed_after_a_stalled_head(&mut tls, Duration::from_secs(8)).await,
        "the stalled head's connection was closed"
    );
    assert_eq!(
        metric(
            &gateway,
            "wardgate_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            &gateway,
            "wardgate_connections_closed_total{reason=\"idle_timeout\"}"
        )
        .await,
        0.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_cuts_off_what_outlasts_the_grace_period() {
    let pki = Pki::new();
    let upstream = Upstream::start(|request| async move {
        if request.uri().path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Response::new(full("done"))
    })
    .await;
    let config = standard_config(&pki, &upstream.url())
        .replace("shutdown_grace_period: 5s", "shutdown_grace_period: 4s")
        .replace("response_timeout: 2s", "response_timeout: 60s");
    let gateway = start_gateway(&pki, &config).await;

    // Idle keep-alive connections, each having served a request: one HTTP/1.1, one HTTP/2.
    let mut idle_h1 = gateway_tls(&gateway, &pki.ca_cert, b"http/1.1").await;
    assert_eq!(raw_status(&served_once(&mut idle_h1).await), 200);
    let tls = gateway_tls(&gateway, &pki.ca_cert, b"h2").await;
    let (mut h2, h2_connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    let idle_h2 = tokio::spawn(h2_connection);
    let served = h2
        .send_request(
            Request::get("https://localhost/api/patients/p-1")
                .body(no_body())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(served.status(), StatusCode::OK);

    // A request the upstream holds for longer than the grace period.
    let mut busy = Client::h1(&gateway, &pki.ca_cert).await;
    let before = upstream.seen().len();
    let slow = tokio::spawn(async move {
        busy.try_send(Request::get("/api/patients/slow").body(no_body()).unwrap())
            .await
    });
    upstream.wait_for(before + 1).await;

    let grace_begins = std::time::Instant::now();
    let shutdown = tokio::spawn(gateway.shutdown());
    let mut rest = Vec::new();
    let h1_closed = tokio::time::timeout(Duration::from_secs(30), idle_h1.read_to_end(&mut rest));
    assert!(
        h1_closed.await.is_ok(),
        "the idle HTTP/1.1 connection was closed"
    );
    let h2_closed = tokio::time::timeout(Duration::from_secs(30), idle_h2);
    assert!(
        h2_closed.await.is_ok(),
        "the idle HTTP/2 connection was closed"
    );
    // Closed gracefully, not by the end of the grace period.
    assert!(grace_begins.elapsed() < Duration::from_secs(4));
    assert!(
        !slow.is_finished(),
        "the idle connections closed while the slow request was still within the grace period"
    );

    let cut_off = tokio::time::timeout(Duration::from_secs(30), slow).await;
    assert!(
        cut_off.expect("the slow request ended").unwrap().is_err(),
        "the request outlasting the grace period was cut off"
    );
    tokio::time::timeout(Duration::from_secs(30), shutdown)
        .await
        .expect("shutdown completed")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn wardgate_health_answers_for_a_live_gateway_and_fails_without_one() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let health = |url: String| {
        Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(["health", "--url", &url])
            .output()
            .unwrap()
    };
    let live = health(format!("http://{}/healthz", gateway.admin_addr));
    assert!(live.status.success());
    assert_eq!(String::from_utf8_lossy(&live.stdout), "ok\n");

    let closed = closed_port().await;
    let down = health(format!("http://{closed}/healthz"));
    assert_eq!(down.status.code(), Some(1));
    let said = String::from_utf8_lossy(&down.stdout);
    assert!(
        said.starts_with(&format!("http://{closed}/healthz: ")),
        "{said}"
    );
    gateway.shutdown().await;
}
