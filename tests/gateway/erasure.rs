//! Erasure workflows against real systems on loopback: each "system" is a real HTTP server
//! holding patients, deleting them on DELETE and answering 404 afterwards, with failure modes
//! (down for a while, down for good). Requests go through the real admin API with the real
//! client the CLI uses; the gateway's own steps are checked where they act (410 through the
//! proxy, a shredded key, the audit trail, the signed receipt).

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use wardgate::admin::client::{AdminClient, ClientError};
use wardgate::audit::store::{AuditReader, QueryFilter};
use wardgate::erasure::receipt::Receipt;
use wardgate::proxy::body::{full, ProxyBody};
use wardgate::RunningGateway;

use crate::support::*;

/// How a test system behaves.
#[derive(Clone, Copy)]
pub(crate) enum Behaviour {
    Healthy,
    /// Answers 503 to the first n requests.
    DownFor(usize),
    /// Answers 500 to every deletion.
    Broken,
}

pub(crate) struct System {
    pub(crate) upstream: Upstream,
    pub(crate) deletes: Arc<AtomicUsize>,
}

impl System {
    pub(crate) async fn start(patients: &[&str], behaviour: Behaviour) -> System {
        let held: Arc<Mutex<HashSet<String>>> =
            Arc::new(Mutex::new(patients.iter().map(|p| p.to_string()).collect()));
        let deletes = Arc::new(AtomicUsize::new(0));
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = deletes.clone();
        let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
            let (held, deletes, calls) = (held.clone(), counter.clone(), calls.clone());
            async move {
                let call = calls.fetch_add(1, Ordering::SeqCst);
                let id = request
                    .uri()
                    .path()
                    .rsplit('/')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                let reply = |status: StatusCode, body: Value| -> Response<ProxyBody> {
                    let mut response = Response::new(full(Bytes::from(body.to_string())));
                    *response.status_mut() = status;
                    response
                };
                match behaviour {
                    Behaviour::DownFor(n) if call < n => {
                        return reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "down"}))
                    }
                    Behaviour::Broken if request.method() == Method::DELETE => {
                        return reply(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            json!({"error": "disk full"}),
                        )
                    }
                    _ => {}
                }
                let mut held = held.lock().unwrap();
                match *request.method() {
                    Method::DELETE => {
                        deletes.fetch_add(1, Ordering::SeqCst);
                        if held.remove(&id) {
                            reply(StatusCode::NO_CONTENT, json!({}))
                        } else {
                            reply(StatusCode::NOT_FOUND, json!({"error": "no such patient"}))
                        }
                    }
                    _ if held.contains(&id) => {
                        reply(StatusCode::OK, json!({"id": id, "name": "Li Wei"}))
                    }
                    _ => reply(StatusCode::NOT_FOUND, json!({"error": "no such patient"})),
                }
            }
        })
        .await;
        System { upstream, deletes }
    }

    pub(crate) fn section(&self, name: &str, data_class: &str) -> String {
        let url = self.upstream.url();
        format!(
            "    {name}:\n      data_class: {data_class}\n      delete: {{ url: \"{url}/patients/{{patient_id}}\" }}\n      verify: {{ url: \"{url}/patients/{{patient_id}}\", expect_status: 404 }}\n"
        )
    }
}

/// The authorization test config with field protection on the patient route and erasure of
/// `systems` (YAML lines under `erasure.systems`), retrying fast.
pub(crate) fn erasure_config(pki: &Pki, upstream_url: &str, systems: &str, holds: &str) -> String {
    let ring = pki.path("kek-ring.json");
    if !ring.exists() {
        wardgate::crypto::manage::init(&ring).unwrap();
    }
    let config = authz_config(pki, upstream_url).replace(
        "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n",
        "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n    fields:\n      phone: [\"$.phone\"]\n",
    );
    format!(
        "{config}
field_protection:
  key_ring_file: {}
  fields:
    phone: {{ redact: partial }}
erasure:
  due_within: 7d
  retry: {{ max_attempts: 4, initial_backoff: 50ms, max_backoff: 200ms }}
{holds}  systems:
{systems}",
        ring.display()
    )
}

pub(crate) fn admin(gateway: &RunningGateway, pki: &Pki) -> AdminClient {
    AdminClient::new(
        &format!("http://{}", gateway.admin_addr),
        &pki.path("admin-token"),
    )
    .unwrap()
}

pub(crate) fn step<'a>(request: &'a Value, system: &str) -> &'a Value {
    request["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|step| step["system"] == system)
        .unwrap()
}

#[tokio::test]
async fn two_systems_erased_verified_receipted_and_the_patient_is_gone_everywhere() {
    let pki = Pki::new();
    let (records, billing) = (
        System::start(&["p-1", "p-2"], Behaviour::Healthy).await,
        System::start(&["p-1"], Behaviour::Healthy).await,
    );
    let backend = Upstream::echo().await;
    let systems = format!(
        "{}{}",
        records.section("records", "consultation_records"),
        billing.section("billing", "billing")
    );
    let gateway = start_gateway(&pki, &erasure_config(&pki, &backend.url(), &systems, "")).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;

    // Before: the patient writes a protected field; a copy of what the backend got is kept.
    let mut patient_claims = claims("patient-li", &["patient"]);
    patient_claims["patient_id"] = "p-1".into();
    let patient = token("ed-1", &patient_claims);
    let mut write = with_token(Method::PUT, "/api/patients/p-1", &patient);
    *write.body_mut() = body(r#"{"phone":"13812345678"}"#);
    let echoed = client.fetch(write).await;
    assert_eq!(echoed.status, StatusCode::OK);
    let sealed: Value = serde_json::from_str(echoed.json()["body"].as_str().unwrap()).unwrap();
    let old_ciphertext = sealed["phone"].as_str().unwrap().to_owned();
    assert!(old_ciphertext.starts_with("wg1:"));

    let api = admin(&gateway, &pki);
    let id = submit_erasure(&api, "p-1").await;
    // The two-person rule: the submitter cannot approve.
    let refused = api
        .call(
            Method::POST,
            &format!("/admin/erasure-requests/{id}/approve"),
            Some(json!({"approver": "clerk-liu"})),
        )
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { status, message }) if *status == StatusCode::CONFLICT && message.contains("two-person rule")),
        "{refused:?}"
    );
    approve_erasure(&api, &id).await;
    let done = erasure_finished(&api, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    for system in ["records", "billing"] {
        assert_eq!(step(&done, system)["state"], "verified");
        assert_eq!(step(&done, system)["detail"], "GET 404");
    }
    assert_eq!(step(&done, "wardgate.key")["state"], "done");
    assert_eq!(records.deletes.load(Ordering::SeqCst), 1);

    // The receipt verifies with the gateway's key; an edited copy does not.
    let receipt = api
        .call(
            Method::GET,
            &format!("/admin/erasure-requests/{id}/receipt"),
            None,
        )
        .await
        .unwrap();
    let key = wardgate::audit::load_signing_key(&pki.path("audit-signing.pem")).unwrap();
    let verified = Receipt::verify(&receipt, &key.verifying_key()).unwrap();
    assert_eq!(verified.outcome, "completed");
    assert_eq!(
        verified.systems.len(),
        5,
        "tombstone, two systems, key, caches"
    );
    assert!(
        !receipt.contains("p-1\""),
        "the receipt names the patient only by pseudonym"
    );
    let tampered = receipt.replace("\"completed\"", "\"failed\"");
    assert!(Receipt::verify(&tampered, &key.verifying_key()).is_err());

    // Through the gateway the patient's data answers 410; nothing reaches the backend.
    let before = backend.seen().len();
    let gone = client
        .fetch(with_token(Method::GET, "/api/patients/p-1", &patient))
        .await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert_eq!(backend.seen().len(), before);
    gateway.shutdown().await;
    // A ciphertext from a copy of the backend's store made before the erasure can never be
    // opened again: the only key that could open it is destroyed.
    let keys = wardgate::crypto::key_store::PatientKeys::open(
        &pki.path("data"),
        wardgate::crypto::keyring::RingSource::File(pki.path("kek-ring.json")),
        4,
    )
    .unwrap();
    let pseudonym = wardgate::audit::Pseudonymizer::new(
        wardgate::identity::read_secret(&pki.path("audit-pseudonym.key"), 32).unwrap(),
    )
    .pseudonym("p-1");
    assert!(matches!(
        keys.existing_key(&pseudonym),
        Err(wardgate::crypto::key_store::KeyStoreError::Shredded)
    ));
    assert!(
        matches!(
            keys.key_for(&pseudonym),
            Err(wardgate::crypto::key_store::KeyStoreError::Shredded)
        ),
        "no new key is ever made for an erased patient"
    );

    // Every step is in the audit trail.
    let trail = AuditReader::open(&pki.path("data"))
        .unwrap()
        .query(&QueryFilter {
            patient: Some(pseudonym),
            ..QueryFilter::default()
        })
        .unwrap();
    let steps: Vec<String> = trail
        .iter()
        .filter(|r| r.resource.as_deref() == Some("erasure"))
        .map(|r| {
            format!(
                "{} {}",
                r.route.clone().unwrap_or_default(),
                r.action.clone().unwrap_or_default()
            )
        })
        .collect();
    for expected in [
        "erasure:erasure start",
        "erasure:records delete",
        "erasure:records verify",
        "erasure:billing delete",
        "erasure:wardgate.key delete",
        "erasure:erasure finish",
    ] {
        assert!(
            steps.contains(&expected.to_owned()),
            "{expected} missing from {steps:?}"
        );
    }
}

#[tokio::test]
async fn a_system_down_for_a_while_is_retried_and_one_down_for_good_fails_with_its_reason() {
    let pki = Pki::new();
    let flaky = System::start(&["p-1"], Behaviour::DownFor(2)).await;
    let broken = System::start(&["p-1"], Behaviour::Broken).await;
    let healthy = System::start(&["p-1"], Behaviour::Healthy).await;
    let systems = format!(
        "{}{}{}",
        flaky.section("flaky", "a"),
        broken.section("broken", "b"),
        healthy.section("healthy", "c")
    );
    let backend = Upstream::echo().await;
    let gateway = start_gateway(&pki, &erasure_config(&pki, &backend.url(), &systems, "")).await;
    let api = admin(&gateway, &pki);
    let id = submit_erasure(&api, "p-1").await;
    approve_erasure(&api, &id).await;
    let done = erasure_finished(&api, &id).await;
    assert_eq!(done["state"], "failed", "{done:#}");
    assert_eq!(step(&done, "flaky")["state"], "verified");
    assert_eq!(step(&done, "healthy")["state"], "verified");
    let broken_step = step(&done, "broken");
    assert_eq!(broken_step["state"], "failed");
    assert_eq!(broken_step["attempts"], 4);
    assert_eq!(broken_step["last_error"], "the deletion was answered 500");
    assert!(done["note"]
        .as_str()
        .unwrap()
        .contains("broken: the deletion was answered 500"));
    assert!(
        metric(
            &gateway,
            "wardgate_erasure_step_failures_total{system=\"broken\"}"
        )
        .await
            >= 4.0
    );
    assert!(
        metric(
            &gateway,
            "wardgate_erasure_step_failures_total{system=\"flaky\"}"
        )
        .await
            >= 2.0
    );
    // A failed erasure still signs what it did.
    let receipt = api
        .call(
            Method::GET,
            &format!("/admin/erasure-requests/{id}/receipt"),
            None,
        )
        .await
        .unwrap();
    assert!(receipt.contains("\"outcome\": \"failed\""));
    gateway.shutdown().await;
}

#[tokio::test]
async fn data_under_legal_hold_is_kept_and_the_receipt_says_why() {
    let pki = Pki::new();
    let emr = System::start(&["p-1"], Behaviour::Healthy).await;
    let chat = System::start(&["p-1"], Behaviour::Healthy).await;
    let systems = format!(
        "{}{}",
        emr.section("emr", "clinical_records"),
        chat.section("chat", "consultation_messages")
    );
    let holds = "  legal_holds:\n    - data_class: clinical_records\n      reason: \"medical records are kept 15 years (hospital records rules)\"\n";
    let backend = Upstream::echo().await;
    let gateway = start_gateway(&pki, &erasure_config(&pki, &backend.url(), &systems, holds)).await;
    let api = admin(&gateway, &pki);
    let id = submit_erasure(&api, "p-1").await;
    approve_erasure(&api, &id).await;
    let done = erasure_finished(&api, &id).await;
    assert_eq!(done["state"], "partially_retained", "{done:#}");
    assert_eq!(step(&done, "emr")["state"], "retained");
    assert_eq!(
        emr.deletes.load(Ordering::SeqCst),
        0,
        "held data is never deleted"
    );
    assert_eq!(step(&done, "chat")["state"], "verified");
    let receipt = api
        .call(
            Method::GET,
            &format!("/admin/erasure-requests/{id}/receipt"),
            None,
        )
        .await
        .unwrap();
    let key = wardgate::audit::load_signing_key(&pki.path("audit-signing.pem")).unwrap();
    let receipt = Receipt::verify(&receipt, &key.verifying_key()).unwrap();
    assert_eq!(receipt.retained.len(), 1);
    assert_eq!(receipt.retained[0].system, "emr");
    assert!(receipt.retained[0].reason.contains("15 years"));
    gateway.shutdown().await;
}

#[tokio::test]
async fn requests_are_checked_and_only_open_ones_move() {
    let pki = Pki::new();
    let system = System::start(&["p-1"], Behaviour::Healthy).await;
    let backend = Upstream::echo().await;
    let gateway = start_gateway(
        &pki,
        &erasure_config(&pki, &backend.url(), &system.section("s", "x"), ""),
    )
    .await;
    let api = admin(&gateway, &pki);
    let missing = api
        .call(
            Method::POST,
            "/admin/erasure-requests",
            Some(json!({"patient_id": "p-1"})),
        )
        .await;
    assert!(
        matches!(&missing, Err(ClientError::Refused { status, message }) if *status == StatusCode::BAD_REQUEST && message.contains("missing field")),
        "{missing:?}"
    );
    let id = submit_erasure(&api, "p-1").await;
    api.call(
        Method::POST,
        &format!("/admin/erasure-requests/{id}/cancel"),
        Some(json!({"by": "clerk-liu", "reason": "entered twice"})),
    )
    .await
    .unwrap();
    let late = api
        .call(
            Method::POST,
            &format!("/admin/erasure-requests/{id}/approve"),
            Some(json!({"approver": "officer-sun"})),
        )
        .await;
    assert!(
        matches!(&late, Err(ClientError::Refused { status, .. }) if *status == StatusCode::CONFLICT),
        "{late:?}"
    );
    assert_eq!(system.deletes.load(Ordering::SeqCst), 0);
    let unknown = api
        .call(Method::GET, "/admin/erasure-requests/er-nope", None)
        .await;
    assert!(
        matches!(&unknown, Err(ClientError::Refused { status, .. }) if *status == StatusCode::NOT_FOUND)
    );
    // Without the token: 401.
    let stranger = AdminClient::new(
        &format!("http://{}", gateway.admin_addr),
        &pki.path("upstream-signing.key"),
    )
    .unwrap();
    let refused = stranger
        .call(Method::GET, "/admin/erasure-requests", None)
        .await;
    assert!(
        matches!(&refused, Err(ClientError::Refused { status, .. }) if *status == StatusCode::UNAUTHORIZED)
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_gateway_killed_mid_erasure_resumes_without_repeating_or_skipping_a_system() {
    use std::process::Command;
    use std::sync::atomic::AtomicBool;

    let pki = Pki::new();
    let first = System::start(&["p-1"], Behaviour::Healthy).await;
    // The second system hangs on its deletion until released: the gateway is killed then.
    let released = Arc::new(AtomicBool::new(false));
    let reached = Arc::new(AtomicUsize::new(0));
    let (gate, seen) = (released.clone(), reached.clone());
    let second = Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let (gate, seen) = (gate.clone(), seen.clone());
        async move {
            let status = if request.method() == Method::DELETE {
                seen.fetch_add(1, Ordering::SeqCst);
                while !gate.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                StatusCode::NO_CONTENT
            } else {
                StatusCode::NOT_FOUND
            };
            let mut response = Response::new(full(Bytes::from_static(b"{}")));
            *response.status_mut() = status;
            response
        }
    })
    .await;
    let url = second.url();
    let systems = format!(
        "{}    second:\n      delete: {{ url: \"{url}/patients/{{patient_id}}\", timeout: 60s }}\n      verify: {{ url: \"{url}/patients/{{patient_id}}\" }}\n",
        first.section("first", "a")
    );
    let backend = Upstream::echo().await;
    let config = with_json_log(&erasure_config(&pki, &backend.url(), &systems, ""));
    let path = write_config(&pki, &config);
    let spawn = || {
        let (child, _, admin) = spawn_binary(&path);
        let client =
            AdminClient::new(&format!("http://{admin}"), &pki.path("admin-token")).unwrap();
        (child, client)
    };

    let (mut child, api) = spawn();
    let id = submit_erasure(&api, "p-1").await;
    approve_erasure(&api, &id).await;
    for _ in 0..200 {
        if reached.load(Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        reached.load(Ordering::SeqCst),
        1,
        "the second system's deletion is under way"
    );
    let stored: Value = serde_json::from_str(
        &api.call(Method::GET, &format!("/admin/erasure-requests/{id}"), None)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["state"], "executing");
    Command::new("kill")
        .args(["-KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    released.store(true, Ordering::SeqCst);
    let (mut child, api) = spawn();
    let done = erasure_finished(&api, &id).await;
    assert_eq!(done["state"], "completed", "{done:#}");
    assert_eq!(
        first.deletes.load(Ordering::SeqCst),
        1,
        "the first system is not asked again"
    );
    assert_eq!(
        reached.load(Ordering::SeqCst),
        2,
        "the interrupted deletion is repeated once"
    );
    for system in ["first", "second"] {
        assert_eq!(step(&done, system)["state"], "verified");
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn only_https_erasure_systems_need_the_system_ca_bundle() {
    let pki = Pki::new();
    let records = System::start(&["p-1"], Behaviour::Healthy).await;
    let backend = Upstream::echo().await;
    let systems = records.section("records", "consultation_records");
    let config = with_json_log(&erasure_config(&pki, &backend.url(), &systems, ""));
    let path = write_config(&pki, &config);
    let environment: String = NO_CA_BUNDLE
        .iter()
        .map(|(name, value)| format!(" {name}={value}"))
        .collect();
    // Exits before "wardgate is serving" (and this panics) if the erasure connectors' client or
    // the upstream's wanted the system roots.
    let (child, events) = spawn_binary_after(&format!("export{environment}"), &path);
    drop(KilledOnDrop(child));
    assert_eq!(events.last().unwrap()["message"], "wardgate is serving");

    // A system reached over https:// still needs them, and the gateway says so as it starts.
    let https = config.replace(&records.upstream.url(), "https://127.0.0.1:9");
    assert_ne!(https, config);
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"));
    command
        .args(["run", "--config"])
        .arg(write_config(&pki, &https))
        .envs(NO_CA_BUNDLE)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = KilledOnDrop(command.spawn().unwrap());
    let mut exited = None;
    for _ in 0..200 {
        exited = child.0.try_wait().unwrap();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(exited.is_some_and(|status| !status.success()), "{exited:?}");
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(
        stderr.contains("no system CA certificates found"),
        "{stderr}"
    );
}

/// What a `wardgate` command printed, and how it exited.
struct CliRun {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `wardgate erasure ARGS` against the gateway's admin listener with its admin token, as
/// an operator would. Off the test's thread: the gateway answers on this runtime.
async fn erasure_cli(
    gateway: &RunningGateway,
    token_file: &std::path::Path,
    args: &[&str],
) -> CliRun {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wardgate"));
    command
        .arg("erasure")
        .args(args)
        .arg("--admin")
        .arg(format!("http://{}", gateway.admin_addr))
        .arg("--token-file")
        .arg(token_file);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap();
    CliRun {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[tokio::test]
async fn the_erasure_commands_take_a_request_from_submission_to_a_verified_receipt() {
    let pki = Pki::new();
    let records = System::start(&["p-1"], Behaviour::Healthy).await;
    let backend = Upstream::echo().await;
    let systems = records.section("records", "consultation_records");
    let gateway = start_gateway(&pki, &erasure_config(&pki, &backend.url(), &systems, "")).await;
    let token_file = pki.path("admin-token");

    let submitted = erasure_cli(
        &gateway,
        &token_file,
        &[
            "submit",
            "--patient",
            "p-1",
            "--requester",
            "the patient",
            "--channel",
            "counter",
            "--reason",
            "withdrew consent",
            "--verification-ref",
            "ID card, ticket 17",
            "--submitted-by",
            "clerk-liu",
            "--id-only",
        ],
    )
    .await;
    assert_eq!(submitted.code, 0, "{}", submitted.stderr);
    let id = submitted.stdout.trim().to_owned();
    assert!(
        !id.is_empty() && !id.contains(char::is_whitespace),
        "--id-only prints the id alone: {:?}",
        submitted.stdout
    );
    let listed = erasure_cli(&gateway, &token_file, &["list", "--ids"]).await;
    assert_eq!(listed.stdout.lines().collect::<Vec<_>>(), [id.as_str()]);

    // The two-person rule, as the operator sees it: exit 1 and the API's reason.
    let same_person = erasure_cli(
        &gateway,
        &token_file,
        &["approve", &id, "--approver", "clerk-liu"],
    )
    .await;
    assert_eq!(same_person.code, 1);
    assert!(
        same_person.stderr.contains("409") && same_person.stderr.contains("two-person rule"),
        "{}",
        same_person.stderr
    );
    let approved = erasure_cli(
        &gateway,
        &token_file,
        &["approve", &id, "--approver", "officer-sun"],
    )
    .await;
    assert_eq!(approved.code, 0, "{}", approved.stderr);

    // `receipt --wait` answers once the request has finished.
    let receipt = erasure_cli(&gateway, &token_file, &["receipt", &id, "--wait", "30"]).await;
    assert_eq!(receipt.code, 0, "{}", receipt.stderr);
    let shown = erasure_cli(&gateway, &token_file, &["show", &id]).await;
    let shown: Value = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(shown["state"], "completed", "{shown:#}");

    // The receipt checks out offline with the key the config names; an edited copy does not.
    let config = pki.path("wardgate.yaml");
    let config = config.to_str().unwrap();
    let file = pki.path("receipt.json");
    std::fs::write(&file, &receipt.stdout).unwrap();
    let verified = erasure_cli(
        &gateway,
        &token_file,
        &["verify-receipt", file.to_str().unwrap(), "--config", config],
    )
    .await;
    assert_eq!(verified.code, 0, "{}{}", verified.stdout, verified.stderr);
    assert!(
        verified
            .stdout
            .starts_with(&format!("ok: receipt of {id} (completed")),
        "{}",
        verified.stdout
    );
    let edited = pki.path("edited-receipt.json");
    std::fs::write(
        &edited,
        receipt.stdout.replace("\"completed\"", "\"failed\""),
    )
    .unwrap();
    let refused = erasure_cli(
        &gateway,
        &token_file,
        &[
            "verify-receipt",
            edited.to_str().unwrap(),
            "--config",
            config,
        ],
    )
    .await;
    assert_eq!(refused.code, 1);
    assert!(refused.stdout.starts_with("FAILED: "), "{}", refused.stdout);

    // A wrong admin token is refused, and the token is not printed back.
    let wrong = pki.path("wrong-admin-token");
    std::fs::write(&wrong, "not-the-admin-token-at-all\n").unwrap();
    let unauthorized = erasure_cli(&gateway, &wrong, &["list"]).await;
    assert_eq!(unauthorized.code, 1);
    assert!(
        unauthorized.stderr.contains("401"),
        "{}",
        unauthorized.stderr
    );
    assert!(!unauthorized.stderr.contains("not-the-admin-token"));
    gateway.shutdown().await;
}
