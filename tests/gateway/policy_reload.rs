//! Reloading policies: a broken policy is refused with its file and line and the running one
//! keeps deciding; `POST /admin/reload` needs the admin token; a changed file is picked up.

use std::time::Duration;

use http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::support::*;

async fn admin_post(
    gateway: &wardgate::RunningGateway,
    path: &str,
    token: Option<&str>,
) -> (StatusCode, serde_json::Value) {
    let tcp = tokio::net::TcpStream::connect(gateway.admin_addr)
        .await
        .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(connection);
    let mut request = Request::post(path).header("host", "admin");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = sender
        .send_request(request.body(no_body()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap())
}

fn pharmacist() -> String {
    token("ed-1", &claims("ph-zhao", &["pharmacist"]))
}

const PRESCRIPTIONS: &str = "/api/patients/p-2/prescriptions";

#[tokio::test]
async fn a_broken_policy_is_refused_and_the_running_one_keeps_deciding() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status,
        StatusCode::OK
    );

    let original = std::fs::read_to_string(pki.path("policy.csv")).unwrap();
    let broken = original.replace(
        "p, pharmacist, *, prescription, read",
        "p, pharmacist, everywhere, prescription, read",
    );
    std::fs::write(pki.path("policy.csv"), &broken).unwrap();
    let line = broken
        .lines()
        .position(|l| l.contains("everywhere"))
        .unwrap()
        + 1;
    let errors = gateway.reload().await.unwrap_err().to_string();
    assert!(
        errors.contains(&format!(
            "policy.csv:{line}:1: unknown relation \"everywhere\""
        )),
        "{errors}"
    );
    assert_eq!(
        metric(&gateway, "wardgate_config_reload_failures_total").await,
        1.0
    );
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status,
        StatusCode::OK
    );

    // A valid change applies: pharmacists lose prescriptions.
    let revoked = policy_without(&pki, "p, pharmacist");
    std::fs::write(pki.path("policy.csv"), revoked).unwrap();
    gateway.reload().await.unwrap();
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_admin_reload_endpoint_needs_the_admin_token() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let (status, body) = admin_post(&gateway, "/admin/reload", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "a valid admin token is required");
    let (status, _) = admin_post(&gateway, "/admin/reload", Some("guess")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = admin_post(&gateway, "/admin/reload", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "reloaded");

    std::fs::write(
        pki.path("model.conf"),
        "[request_definition]\nthis is not a model\n",
    )
    .unwrap();
    let (status, body) = admin_post(&gateway, "/admin/reload", Some(ADMIN_TOKEN)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["problems"][0].as_str().unwrap().contains("model.conf"),
        "{body}"
    );
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status,
        StatusCode::OK
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn without_an_admin_token_file_the_reload_endpoint_is_closed() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let (status, body) = admin_post(&gateway, "/admin/reload", Some("anything")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("admin.token_file"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_changed_policy_file_is_picked_up() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let config = authz_config(&pki, &upstream.url()).replace(
        "reload:\n  watch: false",
        "reload:\n  watch: true\n  interval: 100ms",
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    assert_eq!(
        client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status,
        StatusCode::OK
    );
    // Modification times have a coarse grain on some file systems: make sure it moves.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let revoked = policy_without(&pki, "p, pharmacist");
    std::fs::write(pki.path("policy.csv"), revoked).unwrap();
    let mut status = StatusCode::OK;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        status = client
            .fetch(with_token(Method::GET, PRESCRIPTIONS, &pharmacist()))
            .await
            .status;
        if status == StatusCode::FORBIDDEN {
            break;
        }
    }
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "the changed policy was not picked up"
    );
    assert!(metric(&gateway, "wardgate_config_reloads_total").await >= 1.0);
    gateway.shutdown().await;
}

#[tokio::test]
async fn reloading_under_load_drops_no_request() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway =
        std::sync::Arc::new(start_gateway(&pki, &authz_config(&pki, &upstream.url())).await);
    let mut workers = Vec::new();
    for _ in 0..4 {
        let mut client = Client::h2(&gateway, &pki.ca_cert).await;
        let token = pharmacist();
        workers.push(tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..60 {
                statuses.push(
                    client
                        .fetch(with_token(Method::GET, PRESCRIPTIONS, &token))
                        .await
                        .status,
                );
            }
            statuses
        }));
    }
    for _ in 0..10 {
        gateway.reload().await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for worker in workers {
        let statuses = worker.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::OK),
            "{statuses:?}"
        );
    }
    assert_eq!(
        metric(&gateway, "wardgate_config_reloads_total").await,
        10.0
    );
}
