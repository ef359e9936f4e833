//! Replicas sharing a real PostgreSQL server over TLS (`shared_store`): two gateways with data
//! directories of their own, in front of one storing upstream. What one seals the other
//! opens, a patient first seen by both at once gets one key, a shred through either reaches
//! both, and a database that goes away fails requests closed until it is back.

use std::process::Command;
use std::time::Duration;

use http::{Method, StatusCode};

use crate::fields::{fields_config, get, put_json, send, StoringUpstream, PROFILE};
use crate::postgres::PostgresServer;
use wardgate::RunningGateway;

use crate::support::*;

/// The fields test config pointed at the shared database, for the replica whose data
/// directory is `data_dir` (relative to the test's directory).
fn replica_config(pki: &Pki, postgres: &PostgresServer, upstream: &str, data_dir: &str) -> String {
    let base = pki.dir.path().display();
    format!(
        "{}{}",
        fields_config(pki, upstream).replace(
            &format!("data_dir: {base}/data\n"),
            &format!("data_dir: {base}/{data_dir}\n")
        ),
        postgres.config_section(pki)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_patient_keys_and_a_shred_through_one_reaches_both() {
    let pki = Pki::new();
    let postgres = PostgresServer::start(&pki);
    let upstream = StoringUpstream::start().await;
    let url = upstream.upstream.url();
    let a = start_gateway(&pki, &replica_config(&pki, &postgres, &url, "data-a")).await;
    let b_config = write_config(&pki, &replica_config(&pki, &postgres, &url, "data-b"));
    let b = RunningGateway::start(wardgate::config::load(&b_config).unwrap())
        .await
        .unwrap();
    let mut to_a = Client::h1(&a, &pki.ca_cert).await;
    let mut to_b = Client::h2(&b, &pki.ca_cert).await;

    // Sealed by one replica, opened by the other.
    let li = principal("patient-li", "patient", None, Some("p-1"));
    let written = to_a
        .fetch(put_json("/api/patients/p-1", &li, PROFILE))
        .await;
    assert_eq!(written.status, StatusCode::OK);
    assert!(!upstream.stored("/api/patients/p-1").contains("13812345678"));
    let read = to_b.fetch(get("/api/patients/p-1", &li)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.body, PROFILE);

    // A new patient's data written through both replicas at once (their profile through
    // one, a doctor's record through the other): one key, and each replica reads both.
    let wang = principal("patient-wang", "patient", None, Some("p-2"));
    let doctor = principal("dr-chen", "doctor", Some("cardiology"), None);
    let profile = r#"{"name":"Wang","phone":"13700000001"}"#;
    let record = r#"{"date":"2026-11-23","diagnosis":"stable angina"}"#;
    let records = "/api/departments/cardiology/patients/p-2/records";
    let (via_a, via_b) = tokio::join!(
        to_a.fetch(put_json("/api/patients/p-2", &wang, profile)),
        to_b.fetch(send(
            Method::POST,
            records,
            &doctor,
            Some("application/json"),
            record
        )),
    );
    assert_eq!(
        (via_a.status, via_b.status),
        (StatusCode::OK, StatusCode::OK)
    );
    assert!(!upstream.stored(records).contains("stable angina"));
    assert_eq!(
        to_b.fetch(get("/api/patients/p-2", &wang)).await.body,
        profile
    );
    assert_eq!(to_a.fetch(get(records, &doctor)).await.body, record);
    assert_eq!(
        postgres.psql("SELECT count(*) FROM wardgate_patient_keys WHERE NOT shredded"),
        "2"
    );
    // Nothing about keys is kept beside either replica.
    assert!(!pki.path("data-a/keys.db").exists());
    assert!(!pki.path("data-b/keys.db").exists());

    // A shred from the CLI (what erasure does) reaches both replicas within their cache's
    // freshness: p-1's fields are withheld everywhere and no new key is made for them.
    let shred = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["keys", "shred", "--patient", "p-1", "--config"])
        .arg(&b_config)
        .output()
        .unwrap();
    assert!(
        shred.status.success(),
        "{}",
        String::from_utf8_lossy(&shred.stderr)
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    for client in [&mut to_a, &mut to_b] {
        let gone = client.fetch(get("/api/patients/p-1", &li)).await;
        assert_eq!(gone.status, StatusCode::OK);
        assert!(gone.json()["id_number"].is_null(), "{:?}", gone.body);
        let refused = client
            .fetch(put_json(
                "/api/patients/p-1",
                &li,
                r#"{"phone":"13800000000"}"#,
            ))
            .await;
        assert_eq!(refused.status, StatusCode::GONE);
    }
    assert_eq!(
        to_a.fetch(get("/api/patients/p-2", &wang)).await.body,
        profile
    );
    assert_eq!(
        postgres
            .psql("SELECT count(*) FROM wardgate_patient_keys WHERE shredded AND wrapped IS NULL"),
        "1"
    );
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_that_goes_away_fails_requests_closed_until_it_is_back() {
    let pki = Pki::new();
    let mut postgres = PostgresServer::start(&pki);
    let upstream = StoringUpstream::start().await;
    let config = replica_config(&pki, &postgres, &upstream.upstream.url(), "data");
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let li = principal("patient-li", "patient", None, Some("p-1"));
    assert_eq!(
        client
            .fetch(put_json("/api/patients/p-1", &li, PROFILE))
            .await
            .status,
        StatusCode::OK
    );

    postgres.stop();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Neither a new patient's key nor a known one (its cache entry is past its freshness and
    // cannot be checked) is vouched for: 503, and nothing protected reaches the upstream.
    let wang = principal("patient-wang", "patient", None, Some("p-2"));
    let refused = client
        .fetch(put_json(
            "/api/patients/p-2",
            &wang,
            r#"{"phone":"13700000001"}"#,
        ))
        .await;
    assert_eq!(
        refused.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{:?}",
        refused.body
    );
    let said = String::from_utf8_lossy(&refused.body);
    assert!(
        !said.contains("postgres") && !said.contains("127.0.0.1"),
        "{said}"
    );
    let unread = client.fetch(get("/api/patients/p-1", &li)).await;
    assert_eq!(unread.status, StatusCode::SERVICE_UNAVAILABLE);

    // Back: the gateway reconnects on its own.
    postgres.run();
    let written = client
        .fetch(put_json(
            "/api/patients/p-2",
            &wang,
            r#"{"phone":"13700000001"}"#,
        ))
        .await;
    assert_eq!(written.status, StatusCode::OK, "{:?}", written.body);
    assert_eq!(
        client.fetch(get("/api/patients/p-1", &li)).await.body,
        PROFILE
    );
    gateway.shutdown().await;

    // A gateway that cannot reach the database does not start, and says which one.
    postgres.stop();
    let path = write_config(&pki, &config);
    let err = match RunningGateway::start(wardgate::config::load(&path).unwrap()).await {
        Ok(_) => panic!("started without its shared store"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("shared_store.postgres"), "{err}");
    assert!(
        err.contains(&format!("wardgate@127.0.0.1:{}/postgres", postgres.port)),
        "{err}"
    );
}

#[test]
fn a_shared_store_in_plain_text_off_loopback_is_a_config_error_with_its_line() {
    let pki = Pki::new();
    let url_file = pki.path("postgres-url");
    std::fs::write(
        &url_file,
        "postgresql://wg:pw@db.hospital.example/wardgate?sslmode=disable",
    )
    .unwrap();
    let yaml = format!(
        "{}shared_store:\n  postgres:\n    url_file: {}\n",
        standard_config(&pki, "http://127.0.0.1:9"),
        url_file.display()
    );
    let path = write_config(&pki, &yaml);
    let loaded = wardgate::config::load(&path).unwrap();
    let err = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(RunningGateway::start(loaded))
        .err()
        .unwrap()
        .to_string();
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("url_file"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!(":{line}:")), "{err}");
    assert!(err.contains("sslmode=disable"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}
