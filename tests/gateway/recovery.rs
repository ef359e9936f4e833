//! The restore procedure of docs/operations.md, followed against the real binary: a backup of
//! the running gateway's data directory (`wardgate backup`), an erasure after it, the data
//! directory destroyed, the backup put back, the gateway started again. The audit chain
//! verifies, protected fields written before the backup still decrypt, and the patient erased
//! after the backup stays erased: the backup itself still holds their data key (checked, so
//! the test cannot pass by accident), and the erasure ledger kept apart from the data
//! directory shreds it again at start.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;
use wardgate::admin::client::AdminClient;
use wardgate::proxy::body::full;

use crate::support::*;

/// A consultation backend that keeps what it is sent (ciphertexts included) per patient:
/// PUT stores, GET answers it or 404, DELETE forgets.
pub(crate) async fn storing_backend() -> Upstream {
    let held: Arc<Mutex<HashMap<String, Bytes>>> = Arc::default();
    Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let held = held.clone();
        async move {
            let path = request.uri().path().to_owned();
            let method = request.method().clone();
            let body = request.into_body().collect().await.unwrap().to_bytes();
            let mut held = held.lock().unwrap();
            let (status, answer) = match method {
                Method::PUT => {
                    held.insert(path, body.clone());
                    (StatusCode::OK, body)
                }
                Method::DELETE if held.remove(&path).is_some() => {
                    (StatusCode::NO_CONTENT, Bytes::new())
                }
                Method::GET if held.contains_key(&path) => (StatusCode::OK, held[&path].clone()),
                _ => (StatusCode::NOT_FOUND, Bytes::from_static(b"{}")),
            };
            let mut response = Response::new(full(answer));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert("content-type", "application/json".parse().unwrap());
            response
        }
    })
    .await
}

fn wardgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(args)
        .output()
        .unwrap()
}

/// Whether the backup's or data directory's key store holds a live key for the patient.
fn live_key(data_dir: &std::path::Path, pseudonym: &str) -> bool {
    let connection = rusqlite::Connection::open(data_dir.join("keys.db")).unwrap();
    connection
        .query_row(
            "SELECT count(*) FROM patient_keys WHERE patient = ?1 AND shredded = 0 AND wrapped IS NOT NULL",
            [pseudonym],
            |row| row.get::<_, i64>(0),
        )
        .unwrap()
        == 1
}

/// The restore tests' config: the phone field protected on the patient route, erasure of the
/// backend with the ledger in `ledger/` (made here, with the key ring), a backup marker.
pub(crate) fn restore_config(pki: &Pki, url: &str) -> String {
    let ring = pki.path("kek-ring.json");
    wardgate::crypto::manage::init(&ring).unwrap();
    std::fs::create_dir(pki.path("ledger")).unwrap();
    let config = with_json_log(&authz_config(pki, url).replace(
        "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n",
        "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n    fields:\n      phone: [\"$.phone\"]\n",
    ));
    let config = format!(
        "{config}
field_protection:
  key_ring_file: {ring}
  fields:
    phone: {{ redact: partial }}
erasure:
  retry: {{ max_attempts: 4, initial_backoff: 50ms, max_backoff: 200ms }}
  ledger_file: {ledger}
  systems:
    consultation:
      delete: {{ url: \"{url}/api/patients/{{patient_id}}\" }}
      verify: {{ url: \"{url}/api/patients/{{patient_id}}\", expect_status: 404 }}
recovery:
  backup_marker: {marker}
",
        ring = ring.display(),
        ledger = pki.path("ledger/erased-patients").display(),
        marker = pki.path("last-backup").display(),
    );
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restored_backup_verifies_decrypts_and_keeps_later_erasures() {
    let pki = Pki::new();
    let backend = storing_backend().await;
    let config = restore_config(&pki, &backend.url());
    let config_path = write_config(&pki, &config);
    let config_arg = config_path.to_str().unwrap();
    let data_dir = pki.path("data");
    let patient_token = |id: &str| principal(&format!("patient-{id}"), "patient", None, Some(id));

    // A running gateway; two patients write their phone numbers (stored as ciphertext).
    let (mut child, proxy, admin) = spawn_binary(&config_path);
    let mut client = Client::h1_at(proxy, &pki.ca_cert, None).await;
    for (id, phone) in [("p-1", "13812345678"), ("p-2", "13900001111")] {
        let mut write = with_token(
            Method::PUT,
            &format!("/api/patients/{id}"),
            &patient_token(id),
        );
        *write.body_mut() = body(json!({ "phone": phone }).to_string());
        assert_eq!(client.fetch(write).await.status, StatusCode::OK);
    }

    // The backup, taken while it runs.
    let backup_dir = pki.path("backup-1");
    let backup = wardgate(&[
        "backup",
        "--config",
        config_arg,
        "--out",
        backup_dir.to_str().unwrap(),
    ]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let listed = String::from_utf8_lossy(&backup.stdout);
    for store in ["audit.db", "keys.db", "erasure.db"] {
        assert!(listed.contains(store), "{store} missing from {listed}");
        assert!(backup_dir.join(store).exists());
    }
    assert!(
        pki.path("last-backup").exists(),
        "the backup marker is touched"
    );
    let again = wardgate(&[
        "backup",
        "--config",
        config_arg,
        "--out",
        backup_dir.to_str().unwrap(),
    ]);
    assert!(!again.status.success(), "a backup is never overwritten");

    // After the backup, p-2 asks for erasure and it completes.
    let api = AdminClient::new(&format!("http://{admin}"), &pki.path("admin-token")).unwrap();
    let id = submit_erasure(&api, "p-2").await;
    approve_erasure(&api, &id).await;
    let done = erasure_finished(&api, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");

    // Disaster: the gateway dies and its data directory is lost.
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    std::fs::remove_dir_all(&data_dir).unwrap();

    // The backup still holds p-2's key: restored alone it would undo the erasure.
    let pseudonym = wardgate::audit::Pseudonymizer::new(
        wardgate::identity::read_secret(&pki.path("audit-pseudonym.key"), 32).unwrap(),
    )
    .pseudonym("p-2");
    assert!(live_key(&backup_dir, &pseudonym));

    // Restore: the backup's stores into a new data directory, then start.
    std::fs::create_dir(&data_dir).unwrap();
    for store in wardgate::store::backup::STORES {
        if backup_dir.join(store).exists() {
            std::fs::copy(backup_dir.join(store), data_dir.join(store)).unwrap();
        }
    }
    let (mut child, proxy, _) = spawn_binary(&config_path);

    // The audit chain verifies.
    let verified = wardgate(&["audit", "verify", "--config", config_arg]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stdout)
    );

    // p-1's protected field, written before the backup, decrypts for p-1.
    let mut client = Client::h1_at(proxy, &pki.ca_cert, None).await;
    let read = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1",
            &patient_token("p-1"),
        ))
        .await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.json()["phone"], "13812345678");

    // p-2 stays erased: the gateway answers 410 and the restored key is destroyed again.
    let gone = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-2",
            &patient_token("p-2"),
        ))
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(!live_key(&data_dir, &pseudonym));
    let inspection = wardgate(&["selfcheck", "--config", config_arg]);
    let text = String::from_utf8_lossy(&inspection.stdout);
    assert!(
        text.contains("PASS  erasure.ledger  1 erased patient(s) listed in"),
        "{text}"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}
