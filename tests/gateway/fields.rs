//! Field-level encryption through the real gateway, in front of a real upstream that stores
//! the bytes it is sent and hands them back (so the test can search and edit them): the
//! upstream never holds a protected value in plain; each role sees what the policy says;
//! bodies that could smuggle a value past the rules are refused; tampered, swapped and
//! shredded ciphertexts are withheld and audited; rotation keeps everything readable.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use wardgate::proxy::body::{full, ProxyBody};

use crate::support::*;

/// An upstream that keeps each PUT/POST body under its path, byte for byte, and serves it
/// back on GET; `raw` is its storage, for the test to read and edit.
pub(crate) struct StoringUpstream {
    pub(crate) upstream: Upstream,
    raw: Arc<Mutex<HashMap<String, Bytes>>>,
}

impl StoringUpstream {
    pub(crate) async fn start() -> StoringUpstream {
        let raw: Arc<Mutex<HashMap<String, Bytes>>> = Arc::default();
        let store = raw.clone();
        let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
            let store = store.clone();
            async move {
                let path = request.uri().path().to_owned();
                let method = request.method().clone();
                let body = request.into_body().collect().await.unwrap().to_bytes();
                let stored = if method == Method::GET {
                    store.lock().unwrap().get(&path).cloned()
                } else {
                    store.lock().unwrap().insert(path, body.clone());
                    Some(body)
                };
                json_reply(match stored {
                    Some(body) => (StatusCode::OK, body),
                    None => (
                        StatusCode::NOT_FOUND,
                        Bytes::from(r#"{"error":"not found"}"#),
                    ),
                })
            }
        })
        .await;
        StoringUpstream { upstream, raw }
    }

    pub(crate) fn stored(&self, path: &str) -> String {
        String::from_utf8(self.raw.lock().unwrap()[path].to_vec()).unwrap()
    }

    fn all_stored(&self) -> String {
        let raw = self.raw.lock().unwrap();
        raw.values()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect()
    }

    fn replace(&self, path: &str, body: String) {
        self.raw
            .lock()
            .unwrap()
            .insert(path.to_owned(), Bytes::from(body));
    }
}

fn json_reply((status, body): (StatusCode, Bytes)) -> Response<ProxyBody> {
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    response
}

/// The authorization test config with field protection: a fresh key ring, the profile
/// fields on the patient route and the diagnosis on department records.
pub(crate) fn fields_config(pki: &Pki, upstream_url: &str) -> String {
    let ring = pki.path("kek-ring.json");
    if !ring.exists() {
        wardgate::crypto::manage::init(&ring).unwrap();
    }
    let config = authz_config(pki, upstream_url)
        .replace(
            "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n",
            "    resource: patient_profile\n    patient: { from: path, name: patient_id }\n    fields:\n      id_number: [\"$.id_number\", \"$.guardian.id_number\"]\n      phone: [\"$..phone\"]\n",
        )
        .replace(
            "    resource: medical_record\n    patient: { from: path, name: patient_id }\n    department: { from: path, name: department }\n",
            "    resource: medical_record\n    patient: { from: path, name: patient_id }\n    department: { from: path, name: department }\n    fields:\n      diagnosis: [\"$.diagnosis\", \"$[*].diagnosis\"]\n",
        );
    format!(
        "{config}
field_protection:
  key_ring_file: {}
  fields:
    id_number: {{ redact: mask, keep_last: 4 }}
    phone: {{ redact: partial, roles: {{ service_billing: hash }} }}
    diagnosis: {{ redact: remove }}
",
        ring.display()
    )
}

pub(crate) fn send(
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    text: &str,
) -> Request<ClientBody> {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.body(body(text.to_owned())).unwrap()
}

pub(crate) fn put_json(path: &str, token: &str, body: &str) -> Request<ClientBody> {
    send(Method::PUT, path, token, Some("application/json"), body)
}

pub(crate) fn get(path: &str, token: &str) -> Request<ClientBody> {
    Request::builder()
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .body(no_body())
        .unwrap()
}

pub(crate) const PROFILE: &str = r#"{"name":"Li Wei","id_number":"110101199003071234","phone":"13812345678","guardian":{"name":"Li Na","id_number":"110101196502020022","phone":"13900001111"},"weight_kg":71.50,"visits":[1,2,3]}"#;

#[tokio::test]
async fn the_upstream_holds_only_ciphertext_and_each_role_sees_what_the_policy_says() {
    let pki = Pki::new();
    let upstream = StoringUpstream::start().await;
    let gateway = start_gateway(&pki, &fields_config(&pki, &upstream.upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let patient = principal("patient-li", "patient", None, Some("p-1"));

    let written = client
        .fetch(put_json("/api/patients/p-1", &patient, PROFILE))
        .await;
    assert_eq!(written.status, StatusCode::OK);
    // The upstream's bytes: every protected value sealed, the rest exactly as sent.
    let stored = upstream.stored("/api/patients/p-1");
    for secret in [
        "110101199003071234",
        "13812345678",
        "110101196502020022",
        "13900001111",
    ] {
        assert!(
            !stored.contains(secret),
            "{secret} reached the upstream: {stored}"
        );
    }
    assert_eq!(stored.matches("\"wg1:").count(), 4, "{stored}");
    assert!(stored.contains(r#""weight_kg":71.50"#) && stored.contains(r#""name":"Li Na""#));
    assert_eq!(
        upstream.upstream.last().headers["content-length"],
        stored.len().to_string().as_str()
    );
    // The write's echo comes back revealed to the patient.
    assert_eq!(written.body, PROFILE);

    // The patient: their own data, byte for byte.
    let own = client.fetch(get("/api/patients/p-1", &patient)).await;
    assert_eq!(own.status, StatusCode::OK);
    assert_eq!(own.body, PROFILE);
    assert_eq!(own.header("cache-control"), Some("no-store"));

    // A receptionist: masked identity numbers, partial phones, the rest untouched.
    let receptionist = principal("rc-liu", "receptionist", None, None);
    let masked = client.fetch(get("/api/patients/p-1", &receptionist)).await;
    assert_eq!(masked.status, StatusCode::OK);
    let view = masked.json();
    assert_eq!(view["id_number"], "**************1234");
    assert_eq!(view["phone"], "138****5678");
    assert_eq!(view["guardian"]["id_number"], "**************0022");
    assert_eq!(view["guardian"]["phone"], "139****1111");
    assert_eq!(view["name"], "Li Wei");
    assert_eq!(
        masked.header("content-length"),
        Some(masked.body.len().to_string().as_str())
    );

    // Clinicians write a diagnosis: sealed on the way in; the department's clinicians read
    // it in plain, a clinician from elsewhere does not reach it, and break-glass reveals it.
    let doctor = principal("dr-chen", "doctor", Some("cardiology"), None);
    let record = r#"{"date":"2026-11-22","diagnosis":"stable angina","note":"follow up"}"#;
    let path = "/api/departments/cardiology/patients/p-1/records";
    let posted = client
        .fetch(send(
            Method::POST,
            path,
            &doctor,
            Some("application/json"),
            record,
        ))
        .await;
    assert_eq!(posted.status, StatusCode::OK);
    assert!(!upstream.stored(path).contains("stable angina"));
    let nurse = principal("nurse-wang", "nurse", Some("cardiology"), None);
    let read = client.fetch(get(path, &nurse)).await;
    assert_eq!(read.json()["diagnosis"], "stable angina");
    let outsider = principal("dr-zhou", "doctor", Some("dermatology"), None);
    let mut emergency = get(path, &outsider);
    emergency.headers_mut().insert(
        "x-break-glass",
        "unconscious patient, checking history".parse().unwrap(),
    );
    let broke_glass = client.fetch(emergency).await;
    assert_eq!(broke_glass.status, StatusCode::OK);
    assert_eq!(broke_glass.json()["diagnosis"], "stable angina");

    // The audit trail names the fields shown and masked, never a value.
    let trail = audit_trail(&pki);
    let receptionist_read = trail
        .iter()
        .find(|r| r.subject.as_deref() == Some("rc-liu"))
        .unwrap();
    assert_eq!(receptionist_read.fields_masked, ["id_number", "phone"]);
    assert!(receptionist_read.fields_revealed.is_empty());
    let patient_read = trail
        .iter()
        .find(|r| r.subject.as_deref() == Some("patient-li") && r.method == "GET")
        .unwrap();
    assert_eq!(patient_read.fields_revealed, ["id_number", "phone"]);
    let everything = serde_json::to_string(&trail).unwrap();
    assert!(!everything.contains("13812345678") && !everything.contains("stable angina"));
    assert!(
        metric(
            &gateway,
            "wardgate_field_operations_total{operation=\"encrypt\"}"
        )
        .await
            >= 2.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn digests_of_a_rewritten_body_are_dropped_and_of_an_untouched_one_kept() {
    let pki = Pki::new();
    let upstream = StoringUpstream::start().await;
    let gateway = start_gateway(&pki, &fields_config(&pki, &upstream.upstream.url())).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let patient = principal("patient-li", "patient", None, Some("p-1"));
    let with_digests = |body: &str| {
        let mut request = put_json("/api/patients/p-1", &patient, body);
        for (name, value) in [
            ("content-digest", "sha-256=:AAAA:"),
            ("repr-digest", "sha-256=:AAAA:"),
            ("content-md5", "AAAA"),
            ("digest", "SHA-256=AAAA"),
        ] {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        request
    };
    let digests = |seen: &Seen| {
        ["content-digest", "repr-digest", "content-md5", "digest"]
            .iter()
            .filter(|name| seen.headers.contains_key(**name))
            .count()
    };

    // The body the upstream gets is not the one the client hashed: its digests would be false.
    let reply = client
        .fetch(with_digests(r#"{"id_number":"110101199003071234"}"#))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(digests(upstream.upstream.seen().last().unwrap()), 0);

    // Nothing protected in it: the body goes as sent, and so do its digests.
    let reply = client.fetch(with_digests(r#"{"note":"plain"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(digests(upstream.upstream.seen().last().unwrap()), 4);
    gateway.shutdown().await;
}

#[tokio::test]
async fn bodies_that_could_carry_a_protected_value_past_the_rules_are_refused() {
    let pki = Pki::new();
    let upstream = StoringUpstream::start().await;
    let gateway = start_gateway(&pki, &fields_config(&pki, &upstream.upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let patient = principal("patient-li", "patient", None, Some("p-1"));
    let path = "/api/patients/p-1";
    let plain = r#"{"id_number":"110101199003071234"}"#;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases: Vec<(Request<ClientBody>, StatusCode, &str)> = vec![
        (
            send(Method::PUT, path, &patient, Some("text/plain"), plain),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "accepts JSON bodies only",
        ),
        (
            send(Method::PUT, path, &patient, None, plain),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "accepts JSON bodies only",
        ),
        (
            send(
                Method::PUT,
                path,
                &patient,
                Some("application/json; charset=utf-16"),
                plain,
            ),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "charset=utf-16",
        ),
        (
            {
                let mut gzip = put_json(path, &patient, plain);
                gzip.headers_mut()
                    .insert("content-encoding", "gzip".parse().unwrap());
                gzip
            },
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Encoding: gzip",
        ),
        (
            put_json(path, &patient, "{\"id_number\": \"1\",\n \"x\": }"),
            StatusCode::BAD_REQUEST,
            "line 2 column",
        ),
        (
            put_json(path, &patient, r#"{"id_number":"1","id_number":"2"}"#),
            StatusCode::BAD_REQUEST,
            "appears twice",
        ),
        (
            put_json(path, &patient, r#"{"a":{"phone":"1","ph\u006fne":"2"}}"#),
            StatusCode::BAD_REQUEST,
            "appears twice in the object at $.a",
        ),
        (
            put_json(
                path,
                &patient,
                r#"{"id_number":"wg1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"}"#,
            ),
            StatusCode::BAD_REQUEST,
            "already shaped like a wardgate ciphertext",
        ),
        (
            put_json(path, &patient, &deep),
            StatusCode::BAD_REQUEST,
            "deeper than 128",
        ),
        (
            put_json(path, &patient, "{\"id_number\":\"\u{0}\"}"),
            StatusCode::BAD_REQUEST,
            "invalid JSON",
        ),
    ];
    for (request, status, message) in cases {
        let reply = client.fetch(request).await;
        let text = String::from_utf8_lossy(&reply.body);
        assert_eq!(reply.status, status, "{text}");
        assert!(text.contains(message), "expected {message:?} in {text}");
    }
    assert!(
        upstream.upstream.seen().is_empty(),
        "a refused body reached the upstream"
    );

    // Spellings the rules still see through: escaped member names, huge and precise numbers,
    // any JSON type as a protected value; each comes back exactly as sent.
    for body in [
        r#"{"id\u005fnumber":"110101199003071234"}"#,
        r#"{"id_number":123456789012345678901234567890.123456789e-3}"#,
        r#"{"id_number":{"type":"passport","value":"E12345678"},"phone":["13812345678",null,true]}"#,
    ] {
        let reply = client.fetch(put_json(path, &patient, body)).await;
        assert_eq!(reply.status, StatusCode::OK, "{body}");
        let stored = upstream.stored(path);
        for secret in [
            "110101199003071234",
            "123456789012345678901234567890",
            "E12345678",
            "13812345678",
        ] {
            assert!(!stored.contains(secret), "{stored}");
        }
        let back = client.fetch(get(path, &patient)).await;
        let expected = body.replace("\\u005f", "_");
        assert_eq!(String::from_utf8_lossy(&back.body), expected);
    }
    gateway.shutdown().await;
}

#[tokio::test]
async fn tampered_swapped_and_shredded_ciphertexts_are_withheld_flagged_and_counted() {
    let pki = Pki::new();
    let upstream = StoringUpstream::start().await;
    let yaml = fields_config(&pki, &upstream.upstream.url());
    let gateway = start_gateway(&pki, &yaml).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let receptionist = principal("rc-liu", "receptionist", None, None);
    for (id, number) in [("p-1", "110101199003071234"), ("p-2", "310104198511200021")] {
        let patient = principal("patient", "patient", None, Some(id));
        let body = format!(r#"{{"id_number":"{number}","phone":"13812345678"}}"#);
        let reply = client
            .fetch(put_json(&format!("/api/patients/{id}"), &patient, &body))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let sealed = |id: &str| -> serde_json::Value {
        serde_json::from_str(&upstream.stored(&format!("/api/patients/{id}"))).unwrap()
    };
    let (one, two) = (sealed("p-1"), sealed("p-2"));

    // p-2's identity number moved into p-1's record, and p-1's phone moved into its
    // identity number: both are refused, the rest of the record is shown.
    upstream.replace(
        "/api/patients/p-1",
        serde_json::json!({"id_number": two["id_number"], "phone": one["phone"], "swapped": one["phone"]}).to_string(),
    );
    let reply = client.fetch(get("/api/patients/p-1", &receptionist)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["id_number"], serde_json::Value::Null);
    assert_eq!(reply.json()["phone"], "138****5678");
    // A sealed value at a path no rule names is left sealed: never opened, never plain.
    assert!(reply.json()["swapped"]
        .as_str()
        .unwrap()
        .starts_with("wg1:"));
    let moved_field = serde_json::json!({"id_number": one["phone"]}).to_string();
    upstream.replace("/api/patients/p-1", moved_field);
    assert_eq!(
        client
            .fetch(get("/api/patients/p-1", &receptionist))
            .await
            .json()["id_number"],
        serde_json::Value::Null
    );

    // One byte changed.
    let mut text = one["phone"].as_str().unwrap().to_owned();
    let last = text.pop().unwrap();
    text.push(if last == 'A' { 'B' } else { 'A' });
    upstream.replace(
        "/api/patients/p-1",
        serde_json::json!({"phone": text}).to_string(),
    );
    assert_eq!(
        client
            .fetch(get("/api/patients/p-1", &receptionist))
            .await
            .json()["phone"],
        serde_json::Value::Null
    );
    assert_eq!(
        metric(
            &gateway,
            "wardgate_field_crypto_failures_total{reason=\"integrity_failure\"}"
        )
        .await,
        3.0
    );

    // Shredding p-2's key (what erasure does), from the CLI while the gateway runs: p-2's
    // fields become unreadable, p-1's stay readable, and nothing new is stored for p-2.
    let config = pki.path("wardgate.yaml");
    let shred = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["keys", "shred", "--patient", "p-2", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        shred.status.success(),
        "{}",
        String::from_utf8_lossy(&shred.stderr)
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let p2 = principal("patient", "patient", None, Some("p-2"));
    let gone = client.fetch(get("/api/patients/p-2", &p2)).await;
    assert_eq!(gone.status, StatusCode::OK);
    assert_eq!(
        gone.json(),
        serde_json::json!({"id_number": null, "phone": null})
    );
    let refused = client
        .fetch(put_json(
            "/api/patients/p-2",
            &p2,
            r#"{"phone":"13800000000"}"#,
        ))
        .await;
    assert_eq!(refused.status, StatusCode::GONE);
    upstream.replace("/api/patients/p-1", one.to_string());
    let p1 = principal("patient", "patient", None, Some("p-1"));
    assert_eq!(
        client.fetch(get("/api/patients/p-1", &p1)).await.json()["id_number"],
        "110101199003071234"
    );

    let flags: Vec<Vec<String>> = audit_trail(&pki)
        .into_iter()
        .map(|r| r.flags)
        .filter(|f| !f.is_empty())
        .collect();
    assert_eq!(
        flags
            .iter()
            .filter(|f| f.contains(&"integrity_failure".to_owned()))
            .count(),
        3
    );
    assert_eq!(
        flags
            .iter()
            .filter(|f| f.contains(&"key_shredded".to_owned()))
            .count(),
        1
    );
    assert_eq!(
        metric(
            &gateway,
            "wardgate_field_crypto_failures_total{reason=\"key_shredded\"}"
        )
        .await,
        2.0
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn rotation_keeps_old_data_readable_and_wraps_new_keys_with_the_new_version() {
    let pki = Pki::new();
    let upstream = StoringUpstream::start().await;
    let gateway = start_gateway(&pki, &fields_config(&pki, &upstream.upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let p1 = principal("patient", "patient", None, Some("p-1"));
    assert_eq!(
        client
            .fetch(put_json("/api/patients/p-1", &p1, PROFILE))
            .await
            .status,
        StatusCode::OK
    );
    let before = upstream.all_stored();

    let config = pki.path("wardgate.yaml");
    let keys = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .arg("keys")
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let rotated = keys(&["rotate"]);
    assert!(
        rotated.contains("version 2 added; 1 data keys rewrapped"),
        "{rotated}"
    );
    assert_eq!(
        upstream.all_stored(),
        before,
        "rotation never touches backend data"
    );
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;

    // Old data still opens; a new patient's key is wrapped by version 2.
    assert_eq!(
        client.fetch(get("/api/patients/p-1", &p1)).await.body,
        PROFILE
    );
    let p3 = principal("patient", "patient", None, Some("p-3"));
    assert_eq!(
        client
            .fetch(put_json("/api/patients/p-3", &p3, PROFILE))
            .await
            .status,
        StatusCode::OK
    );
    let listing = keys(&["list"]);
    let ring = std::fs::read_to_string(pki.path("kek-ring.json")).unwrap();
    let key_bytes: serde_json::Value = serde_json::from_str(&ring).unwrap();
    assert!(!listing.contains(key_bytes["versions"][0]["key"].as_str().unwrap()));
    // VERSION  CREATED  DATA KEYS, one row per version.
    let rows: Vec<Vec<&str>> = listing
        .lines()
        .skip(1)
        .take_while(|line| !line.is_empty())
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!((rows[0][0], rows[0][2]), ("1", "0"), "{listing}");
    assert_eq!((rows[1][0], rows[1][2]), ("2", "2"), "{listing}");
    assert!(
        listing.contains("2 patient keys live, 0 shredded"),
        "{listing}"
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_response_the_gateway_cannot_read_is_not_released() {
    let pki = Pki::new();
    let upstream = Upstream::start(|_request| async {
        let mut response = json_reply((StatusCode::OK, Bytes::from_static(b"\x1f\x8b\x08\x00")));
        response
            .headers_mut()
            .insert("content-encoding", "gzip".parse().unwrap());
        response
    })
    .await;
    let gateway = start_gateway(&pki, &fields_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let p1 = principal("patient", "patient", None, Some("p-1"));
    let reply = client.fetch(get("/api/patients/p-1", &p1)).await;
    assert_eq!(reply.status, StatusCode::BAD_GATEWAY);
    assert_eq!(upstream.last().headers["accept-encoding"], "identity");
    gateway.shutdown().await;
}

#[test]
fn field_rules_that_cannot_work_are_config_errors_with_their_line() {
    let pki = Pki::new();
    let good = fields_config(&pki, "http://127.0.0.1:9");
    let cases = [
        (
            good[..good.find("field_protection:").unwrap()].to_owned(),
            "field rules need a `field_protection` section",
        ),
        (
            good.replace("phone: [\"$..phone\"]", "phone: [\"$..\"]"),
            "invalid JSON path",
        ),
        (
            good.replace("phone: [\"$..phone\"]", "telephone: [\"$.phone\"]"),
            "unknown field \"telephone\"",
        ),
        (
            good.replace("redact: remove", "redact: plain"),
            "`plain` is granted by the policy",
        ),
        (
            good.replace(
                "      phone: [\"$..phone\"]\n",
                "      phone: [\"$..phone\"]\n    websocket: true\n",
            ),
            "cannot be `websocket: true`",
        ),
    ];
    for (yaml, message) in cases {
        let path = write_config(&pki, &yaml);
        let errors = wardgate::config::load(&path)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            errors.contains(message),
            "expected {message:?}, got: {errors}"
        );
        assert!(
            errors.contains("wardgate.yaml:"),
            "errors name the file and line: {errors}"
        );
    }
}

#[test]
fn a_key_ring_other_users_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new();
    let yaml = fields_config(&pki, "http://127.0.0.1:9");
    std::fs::set_permissions(
        pki.path("kek-ring.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let path = write_config(&pki, &yaml);
    let output = wardgate_check(&path).output().unwrap();
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{text}");
    assert!(
        text.contains("readable by other users (mode 644)"),
        "{text}"
    );
    assert!(text.contains("field_protection.key_ring_file"), "{text}");
}
