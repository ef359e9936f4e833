//! Replicas sharing a real PostgreSQL server over TLS (`shared_store`): two gateways with data
//! directories of their own, in front of one storing upstream. What one seals the other
//! opens, a patient first seen by both at once gets one key, a shred through either reaches
//! both, and a database that goes away fails requests closed until it is back.

use std::time::Duration;

use http::{Method, StatusCode};

use crate::audit::wardgate;
use crate::erasure::{admin, erasure_config, step, Behaviour, System};
use crate::fields::{fields_config, get, put_json, send, StoringUpstream, PROFILE};
use crate::postgres::PostgresServer;
use crate::recovery::{restore_config, storing_backend};
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
        postgres.psql("SELECT count(*) FROM wardgate.patient_keys WHERE NOT shredded"),
        "2"
    );
    // Nothing about keys is kept beside either replica.
    assert!(!pki.path("data-a/keys.db").exists());
    assert!(!pki.path("data-b/keys.db").exists());

    // A shred from the CLI (what erasure does) reaches both replicas within their cache's
    // freshness: p-1's fields are withheld everywhere and no new key is made for them.
    let (code, shredded) = wardgate(&["keys", "shred", "--patient", "p-1"], &b_config);
    assert_eq!(code, 0, "{shredded}");
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
            .psql("SELECT count(*) FROM wardgate.patient_keys WHERE shredded AND wrapped IS NULL"),
        "1"
    );
    a.shutdown().await;
    b.shutdown().await;

    // One audit trail, in the database: a chain per replica, both verified, and a patient's
    // accesses through either replica found by one query.
    assert!(!pki.path("data-a/audit.db").exists() && !pki.path("data-b/audit.db").exists());
    let instance = |dir: &str| {
        std::fs::read_to_string(pki.path(dir).join("instance-id"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (id_a, id_b) = (instance("data-a"), instance("data-b"));
    assert_ne!(id_a, id_b);
    let (code, verified) = wardgate(&["audit", "verify"], &b_config);
    assert_eq!(code, 0, "{verified}");
    for id in [&id_a, &id_b] {
        assert!(
            verified.contains(&format!("ok: instance {id}:")),
            "{verified}"
        );
    }
    let (code, found) = wardgate(
        &["audit", "query", "--patient", "p-1", "--format", "json"],
        &b_config,
    );
    assert_eq!(code, 0, "{found}");
    assert!(found.contains(&id_a) && found.contains(&id_b), "{found}");

    // An edit made in the database is found.
    postgres.psql(&format!(
        "UPDATE wardgate.audit_records SET body = replace(body, '\"patient-li\"', '\"patient-xx\"') \
         WHERE instance = '{id_a}' AND seq = 1"
    ));
    let (code, tampered) = wardgate(&["audit", "verify"], &b_config);
    assert_ne!(code, 0, "{tampered}");
    assert!(
        tampered.contains(&format!("TAMPERED: instance {id_a}")),
        "{tampered}"
    );
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
    // The audit trail cannot commit either: the load balancer is told to look elsewhere.
    assert_eq!(
        admin_get(&gateway, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Back: the gateway reconnects on its own (the audit writer at its next retry, which
    // /readyz waits for, as the load balancer would).
    postgres.run();
    let mut ready = false;
    for _ in 0..300 {
        if admin_get(&gateway, "/readyz").await.status == StatusCode::OK {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "not ready again 30 s after the database came back");
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

#[tokio::test(flavor = "multi_thread")]
async fn an_erasure_accepted_by_one_replica_is_carried_out_once_and_seen_by_all() {
    let pki = Pki::new();
    let postgres = PostgresServer::start(&pki);
    let records = System::start(&["p-1", "p-2"], Behaviour::Healthy).await;
    let backend = Upstream::echo().await;
    let config = |data_dir: &str| {
        let base = pki.dir.path().display();
        format!(
            "{}{}",
            erasure_config(
                &pki,
                &backend.url(),
                &records.section("records", "consultation_records"),
                ""
            )
            .replace(
                &format!("data_dir: {base}/data\n"),
                &format!("data_dir: {base}/{data_dir}\n")
            ),
            postgres.config_section(&pki)
        )
    };
    let a = start_gateway(&pki, &config("data-a")).await;
    let b = start_gateway(&pki, &config("data-b")).await;
    let (to_a, to_b) = (admin(&a, &pki), admin(&b, &pki));

    // Submitted through one replica, approved through the other, carried out by one of them.
    let id = submit_erasure(&to_a, "p-1").await;
    approve_erasure(&to_b, &id).await;
    let done = erasure_finished(&to_a, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(step(&done, "records")["state"], "verified");
    assert_eq!(records.deletes.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(erasure_finished(&to_b, &id).await["state"], "completed");

    // Both replicas answer 410 for the erased patient (the other learns at its next poll,
    // every 500 ms; a busy machine may take longer).
    let mut patient_claims = claims("patient-li", &["patient"]);
    patient_claims["patient_id"] = "p-1".into();
    let patient = token("ed-1", &patient_claims);
    for gateway in [&a, &b] {
        let mut client = Client::h1(gateway, &pki.ca_cert).await;
        let status = poll_until(
            100,
            Duration::from_millis(100),
            async || {
                client
                    .fetch(with_token(Method::GET, "/api/patients/p-1", &patient))
                    .await
                    .status
            },
            |&status| status == StatusCode::GONE,
        )
        .await;
        assert_eq!(status, StatusCode::GONE);
    }

    // The replica that did the work (its audit records say which) stops; the other takes
    // the work over.
    let leader = postgres.psql(
        "SELECT DISTINCT instance FROM wardgate.audit_records WHERE subject = 'wardgate-erasure'",
    );
    let instance = |dir: &str| {
        std::fs::read_to_string(pki.path(dir).join("instance-id"))
            .unwrap()
            .trim()
            .to_owned()
    };
    let (stays, survivor) = if leader == instance("data-a") {
        a.shutdown().await;
        (b, to_b)
    } else {
        assert_eq!(leader, instance("data-b"), "one replica did all the work");
        b.shutdown().await;
        (a, to_a)
    };
    let id = submit_erasure(&survivor, "p-2").await;
    approve_erasure(&survivor, &id).await;
    let done = erasure_finished(&survivor, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(records.deletes.load(std::sync::atomic::Ordering::SeqCst), 2);
    stays.shutdown().await;
}

/// docs/operations.md, "Backups with a shared store", followed: a `pg_dump` of the running
/// gateways' schema, an erasure after it, the schema lost, the dump restored, the gateway
/// started again. The chains verify, fields written before the dump decrypt, and the patient
/// erased after it stays erased: the dump holds their live key (checked), the ledger kept
/// apart shreds it again at start.
#[tokio::test(flavor = "multi_thread")]
async fn a_restored_database_dump_verifies_decrypts_and_keeps_later_erasures() {
    let pki = Pki::new();
    let postgres = PostgresServer::start(&pki);
    let backend = storing_backend().await;
    let config = format!(
        "{}{}",
        restore_config(&pki, &backend.url()),
        postgres.config_section(&pki)
    );
    let config_path = write_config(&pki, &config);
    let patient = |id: &str| principal(&format!("patient-{id}"), "patient", None, Some(id));
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    for (id, phone) in [("p-1", "13812345678"), ("p-2", "13900001111")] {
        let mut write = with_token(Method::PUT, &format!("/api/patients/{id}"), &patient(id));
        *write.body_mut() = body(format!("{{\"phone\":\"{phone}\"}}"));
        assert_eq!(client.fetch(write).await.status, StatusCode::OK);
    }
    // `wardgate backup` says where a shared store's backups come from.
    let refused = wardgate(
        &["backup", "--out", pki.path("b").to_str().unwrap()],
        &config_path,
    );
    assert_ne!(refused.0, 0);
    assert!(refused.1.contains("pg_dump"), "{}", refused.1);

    // The dump, while serving; then p-2 is erased.
    let dump = pki.path("wardgate.dump");
    postgres.dump(&dump);
    let api = admin(&gateway, &pki);
    let id = submit_erasure(&api, "p-2").await;
    approve_erasure(&api, &id).await;
    assert_eq!(erasure_finished(&api, &id).await["state"], "completed");
    gateway.shutdown().await;

    // Disaster: the schema is lost. The dump, restored, holds p-2's live key.
    postgres.psql("DROP SCHEMA wardgate CASCADE");
    postgres.restore(&dump);
    let p2 = wardgate::audit::Pseudonymizer::new(
        wardgate::identity::read_secret(&pki.path("audit-pseudonym.key"), 32).unwrap(),
    )
    .pseudonym("p-2");
    let live = format!(
        "SELECT count(*) FROM wardgate.patient_keys WHERE patient = '{p2}' AND NOT shredded"
    );
    assert_eq!(postgres.psql(&live), "1");

    // Started again: every chain verifies, p-1 reads, p-2 is erased again from the ledger.
    let gateway = start_gateway(&pki, &config).await;
    let (code, verified) = wardgate(&["audit", "verify"], &config_path);
    assert_eq!(code, 0, "{verified}");
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let read = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1",
            &patient("p-1"),
        ))
        .await;
    assert_eq!(read.json()["phone"], "13812345678");
    let gone = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-2",
            &patient("p-2"),
        ))
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert_eq!(postgres.psql(&live), "0");
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_whose_certificate_does_not_chain_to_the_configured_ca_is_refused() {
    let pki = Pki::new();
    let postgres = PostgresServer::start(&pki);
    let other = wardgate::demo::pki::CertificateAuthority::new("another CA").unwrap();
    let other_ca = other.write_cert(&pki.path("other-ca.pem")).unwrap();
    let yaml = format!(
        "{}{}",
        standard_config(&pki, "http://127.0.0.1:9"),
        postgres.config_section(&pki).replace(
            &pki.ca_cert.display().to_string(),
            &other_ca.display().to_string()
        )
    );
    let path = write_config(&pki, &yaml);
    let err = match RunningGateway::start(wardgate::config::load(&path).unwrap()).await {
        Ok(_) => panic!("started against a database it could not verify"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains("shared_store.postgres"), "{err}");
    assert!(err.contains("cannot connect"), "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("UnknownIssuer"),
        "{err}"
    );
    // Nothing was written: the connection never got past the handshake.
    assert_eq!(
        postgres.psql("SELECT count(*) FROM pg_namespace WHERE nspname = 'wardgate'"),
        "0"
    );
}

#[test]
fn only_a_shared_store_over_tls_needs_the_system_ca_bundle() {
    let pki = Pki::new();
    let check = |sslmode: &str| {
        let url_file = pki.path("postgres-url");
        std::fs::write(
            &url_file,
            format!("postgresql://wg:pw@127.0.0.1:9/wardgate?sslmode={sslmode}"),
        )
        .unwrap();
        let yaml = format!(
            "{}shared_store:\n  postgres:\n    url_file: {}\n",
            standard_config(&pki, "http://127.0.0.1:9"),
            url_file.display()
        );
        wardgate_check(write_config(&pki, &yaml))
            .envs(NO_CA_BUNDLE)
            .output()
            .unwrap()
    };
    let plain = check("disable");
    assert_succeeded(&plain);
    let tls = check("require");
    assert_eq!(tls.status.code(), Some(2));
    let err = String::from_utf8_lossy(&tls.stderr);
    assert!(
        err.contains("shared_store.postgres.tls: no system CA certificates found"),
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
    // `wardgate check` finds it, before anything is started.
    let check = wardgate_check(&path).output().unwrap();
    assert_eq!(check.status.code(), Some(2));
    let err = String::from_utf8_lossy(&check.stderr);
    let line = yaml
        .lines()
        .position(|l| l.trim_start().starts_with("url_file"))
        .unwrap()
        + 1;
    assert!(err.contains(&format!(":{line}:")), "{err}");
    assert!(err.contains("sslmode=disable"), "{err}");
    assert!(!err.contains(":pw@"), "{err}");
}
