//! The audit trail through the real gateway: one record per request of every kind, with the
//! right fields and no secrets; `audit verify` catching each kind of tampering; durable routes
//! refusing with 503 while the store is unavailable, and recovering; nothing acknowledged lost
//! when the gateway is killed; `audit query` and the SIEM sink.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode};
use rusqlite::params;
use wardgate::audit::AuditRecord;
use wardgate::proxy::body::full;

use crate::support::*;

fn by_request_id(records: &[AuditRecord], id: &str) -> Vec<AuditRecord> {
    records
        .iter()
        .filter(|r| r.request_id == id)
        .cloned()
        .collect()
}

fn with_id(mut request: Request<ClientBody>, id: &str) -> Request<ClientBody> {
    request
        .headers_mut()
        .insert("x-request-id", id.parse().unwrap());
    request
}

fn patient_token() -> String {
    let mut claims = claims("patient-li", &["patient"]);
    claims["patient_id"] = "p-1".into();
    token("ed-1", &claims)
}

/// Runs a `wardgate` command; returns exit code and stdout.
pub(crate) fn wardgate(args: &[&str], config: &Path) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn every_kind_of_request_leaves_exactly_one_record() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let down = closed_port().await;
    // A second upstream that is down, for one route.
    let config = authz_config(&pki, &upstream.url()).replace(
        "upstreams:\n",
        &format!("upstreams:\n  down:\n    url: http://{down}\n    connect_timeout: 1s\n"),
    ).replace(
        "routes:\n",
        "routes:\n  - name: broken\n    path: /api/broken/{patient_id}\n    methods: [GET]\n    upstream: down\n    resource: medical_record\n    patient: { from: path, name: patient_id }\n",
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let patient = patient_token();
    let doctor = {
        let mut c = claims("dr-chen", &["doctor"]);
        c["department"] = "cardiology".into();
        token("ed-1", &c)
    };
    let cases: Vec<(&str, Request<ClientBody>, StatusCode)> = vec![
        (
            "allowed",
            with_token(Method::GET, "/api/patients/p-1/records", &patient),
            StatusCode::OK,
        ),
        (
            "denied",
            with_token(Method::GET, "/api/patients/p-2/records", &patient),
            StatusCode::FORBIDDEN,
        ),
        (
            "unauthenticated",
            Request::get("/api/patients/p-1/records")
                .body(no_body())
                .unwrap(),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            with_token(
                Method::GET,
                "/api/patients/p-1/records",
                &token("ed-1", &{
                    let mut c = claims("patient-li", &["patient"]);
                    c["exp"] = 1_000_000.into();
                    c
                }),
            ),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unmatched",
            Request::get("/internal/secrets").body(no_body()).unwrap(),
            StatusCode::NOT_FOUND,
        ),
        (
            "path rejected",
            Request::get("/api/patients/%2e%2e/p-1")
                .body(no_body())
                .unwrap(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "upstream failed",
            with_token(Method::GET, "/api/broken/p-1", &patient),
            StatusCode::BAD_GATEWAY,
        ),
        (
            "break-glass",
            {
                let mut r = with_token(
                    Method::GET,
                    "/api/departments/dermatology/patients/p-2/records",
                    &doctor,
                );
                r.headers_mut().insert(
                    "x-break-glass",
                    "cardiac arrest, need history now".parse().unwrap(),
                );
                r
            },
            StatusCode::OK,
        ),
        (
            "public",
            Request::get("/api/hospital/info").body(no_body()).unwrap(),
            StatusCode::OK,
        ),
    ];
    let count = cases.len();
    for (i, (what, request, status)) in cases.into_iter().enumerate() {
        let reply = client.fetch(with_id(request, &format!("case-{i}"))).await;
        assert_eq!(reply.status, status, "{what}");
    }
    // Buffered records (unmatched, rejected, public) are committed shortly after: wait for
    // them rather than guess how long a busy machine takes.
    let all = poll_until(
        100,
        Duration::from_millis(100),
        async || audit_trail(&pki),
        |all| all.len() >= count,
    )
    .await;
    let one = |i: usize| {
        let found = by_request_id(&all, &format!("case-{i}"));
        assert_eq!(found.len(), 1, "case {i}: {found:?}");
        found.into_iter().next().unwrap()
    };
    let allowed = one(0);
    assert_eq!((allowed.decision.as_str(), allowed.status), ("allow", 200));
    assert_eq!(allowed.subject.as_deref(), Some("patient-li"));
    assert_eq!(allowed.roles, ["patient"]);
    assert_eq!(allowed.route.as_deref(), Some("patient-records"));
    assert_eq!(
        allowed.template.as_deref(),
        Some("/api/patients/{patient_id}/records")
    );
    assert_eq!(allowed.resource.as_deref(), Some("medical_record"));
    assert_eq!(allowed.action.as_deref(), Some("read"));
    assert_eq!(
        allowed.rule.as_deref(),
        Some("p, patient, self, medical_record, read")
    );
    assert_eq!(allowed.upstream_status, Some(200));
    assert_eq!(allowed.client, "127.0.0.1");
    let pseudonym = allowed.patient.clone().unwrap();
    assert!(pseudonym.starts_with("pt_") && !pseudonym.contains("p-1"));

    let denied = one(1);
    assert_eq!((denied.decision.as_str(), denied.status), ("deny", 403));
    assert_eq!(denied.rule.as_deref(), Some("default deny"));
    assert_ne!(
        denied.patient, allowed.patient,
        "another patient, another pseudonym"
    );
    assert_eq!(denied.upstream_status, None);

    let missing = one(2);
    assert_eq!(
        (
            missing.decision.as_str(),
            missing.status,
            missing.reason.as_deref()
        ),
        ("unauthenticated", 401, Some("missing"))
    );
    let expired = one(3);
    assert_eq!(
        expired.reason.as_deref(),
        Some("expired"),
        "the specific reason is in the trail"
    );
    let unmatched = one(4);
    assert_eq!(
        (
            unmatched.decision.as_str(),
            unmatched.status,
            unmatched.route.clone()
        ),
        ("unmatched", 404, None)
    );
    let rejected = one(5);
    assert_eq!(
        (rejected.decision.as_str(), rejected.reason.as_deref()),
        ("rejected", Some("encoded_dot_segment"))
    );
    let failed = one(6);
    assert_eq!(
        (
            failed.decision.as_str(),
            failed.status,
            failed.reason.as_deref()
        ),
        ("allow", 502, Some("connect"))
    );
    let emergency = one(7);
    assert_eq!(
        emergency.break_glass.as_deref(),
        Some("cardiac arrest, need history now")
    );
    assert_eq!(
        emergency.rule.as_deref(),
        Some("p, clinician, break_glass, medical_record, read")
    );
    let public = one(8);
    assert_eq!(
        (public.decision.as_str(), public.rule.as_deref()),
        ("allow", Some("auth: none"))
    );

    // No token, no plain patient id, in any stored byte.
    let db = std::fs::read(pki.path("data/audit.db")).unwrap();
    let wal = std::fs::read(pki.path("data/audit.db-wal")).unwrap_or_default();
    for haystack in [&db, &wal] {
        let text = String::from_utf8_lossy(haystack);
        assert!(!text.contains(&patient), "a token reached the store");
        assert!(
            !text.contains("\"p-1\"") && !text.contains("/p-1/"),
            "a plain patient id reached the store"
        );
    }
    assert!(
        metric(
            &gateway,
            r#"wardgate_audit_records_total{decision="allow"}"#
        )
        .await
            >= 4.0
    );
    gateway.shutdown().await;
    let (code, out) = wardgate(&["audit", "verify"], &pki.path("wardgate.yaml"));
    assert_eq!(code, 0, "{out}");
}

/// A gateway that wrote `count` records and stopped; returns the config path.
async fn trail_of(pki: &Pki, count: usize) -> std::path::PathBuf {
    let upstream = Upstream::echo().await;
    // Checkpoints by count only (every 50), and one at the clean shutdown.
    let config = authz_config(pki, &upstream.url())
        .replace("checkpoint_interval: 1s", "checkpoint_interval: 1h");
    let gateway = start_gateway(pki, &config).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let patient = patient_token();
    for _ in 0..count {
        client
            .fetch(with_token(
                Method::GET,
                "/api/patients/p-1/records",
                &patient,
            ))
            .await;
    }
    gateway.shutdown().await;
    pki.path("wardgate.yaml")
}

fn db(pki: &Pki) -> rusqlite::Connection {
    rusqlite::Connection::open(pki.path("data/audit.db")).unwrap()
}

#[tokio::test]
async fn audit_verify_catches_every_kind_of_tampering() {
    let pki = Pki::new();
    let config = trail_of(&pki, 120).await;
    let (code, out) = wardgate(&["audit", "verify"], &config);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("120 records (seq 1..120), 3 signed checkpoints, all records signed"),
        "{out}"
    );

    let pristine = std::fs::read(pki.path("data/audit.db")).unwrap();
    let restore = || {
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(pki.path(&format!("data/audit.db{suffix}")));
        }
        std::fs::write(pki.path("data/audit.db"), &pristine).unwrap();
    };
    let body_of = |c: &rusqlite::Connection, seq: u64| -> String {
        c.query_row(
            "SELECT body FROM audit_records WHERE seq = ?1",
            params![seq],
            |r| r.get(0),
        )
        .unwrap()
    };
    type Tamper = Box<dyn Fn(&rusqlite::Connection)>;
    let cases: Vec<(&str, Tamper, &str)> = vec![
        ("edit a field in the body", Box::new(move |c| {
            let body = body_of(c, 40).replace("\"status\":200", "\"status\":403");
            c.execute("UPDATE audit_records SET body = ?1 WHERE seq = 40", params![body]).unwrap();
        }), "record 40 was edited: its hash does not match its content"),
        ("edit a field and re-hash the record", Box::new(move |c| {
            let body = body_of(c, 40).replace("patient-li", "dr-nobody");
            let hash = AuditRecord::hash_of(&body);
            c.execute("UPDATE audit_records SET body = ?1, hash = ?2, subject = 'dr-nobody' WHERE seq = 40", params![body, hash]).unwrap();
        }), "record 41 does not follow record 40"),
        ("edit an indexed column only", Box::new(|c| {
            c.execute("UPDATE audit_records SET subject = 'someone-else' WHERE seq = 7", []).unwrap();
        }), "record 7 was edited: its indexed columns differ from its content"),
        ("delete a record", Box::new(|c| {
            c.execute("DELETE FROM audit_records WHERE seq = 60", []).unwrap();
        }), "records 60..60 are missing after record 59 (deleted)"),
        ("swap two records", Box::new(move |c| {
            let (a, b) = (body_of(c, 10), body_of(c, 11));
            let (ha, hb): (String, String) = (AuditRecord::hash_of(&a), AuditRecord::hash_of(&b));
            c.execute("UPDATE audit_records SET body = ?1, hash = ?2 WHERE seq = 10", params![b, hb]).unwrap();
            c.execute("UPDATE audit_records SET body = ?1, hash = ?2 WHERE seq = 11", params![a, ha]).unwrap();
        }), "the record stored at seq 10 says it is record 11"),
        ("insert a record", Box::new(move |c| {
            c.execute("UPDATE audit_records SET seq = seq + 1000 WHERE seq > 30", []).unwrap();
            c.execute("UPDATE audit_records SET seq = seq - 999 WHERE seq > 1000", []).unwrap();
            let mut forged: AuditRecord = serde_json::from_str(&body_of(c, 30)).unwrap();
            forged.seq = 31;
            forged.subject = Some("intruder".into());
            let body = forged.canonical();
            c.execute(
                "INSERT INTO audit_records (instance, seq, time_ms, subject, patient, decision, break_glass, body, hash) VALUES (?1, 31, ?2, 'intruder', ?3, ?4, 0, ?5, ?6)",
                params![forged.instance, forged.time_ms, forged.patient, forged.decision, body, AuditRecord::hash_of(&body)],
            ).unwrap();
        }), "record 31 does not follow record 30"),
        ("truncate the tail behind a checkpoint", Box::new(|c| {
            c.execute("DELETE FROM audit_records WHERE seq > 95", []).unwrap();
        }), "the chain ends at seq 95 but a checkpoint signs seq 120: records 96..120 were removed (truncated tail)"),
        ("forge a checkpoint", Box::new(|c| {
            // Flip the first hex digit to one it is not, so the edit always changes the hash.
            let changed = c.execute("UPDATE audit_checkpoints SET hash = (CASE WHEN substr(hash, 1, 1) = '0' THEN '1' ELSE '0' END) || substr(hash, 2) WHERE seq = 50", []).unwrap();
            assert_eq!(changed, 1, "a checkpoint at seq 50 exists");
        }), "the checkpoint at seq 50 has no valid signature (forged or edited)"),
        ("rewrite the whole chain after a checkpoint", Box::new(move |c| {
            // Re-hash every record from 20 on, as a careful forger would: links are intact,
            // but checkpoint 50 signed a different record 50.
            let mut previous: String = c.query_row("SELECT hash FROM audit_records WHERE seq = 19", [], |r| r.get(0)).unwrap();
            for seq in 20..=120u64 {
                let mut record: AuditRecord = serde_json::from_str(&body_of(c, seq)).unwrap();
                record.prev_hash = previous.clone();
                if seq == 20 {
                    record.status = 500;
                }
                let body = record.canonical();
                previous = AuditRecord::hash_of(&body);
                c.execute("UPDATE audit_records SET body = ?1, hash = ?2 WHERE seq = ?3", params![body, previous, seq]).unwrap();
            }
        }), "record 50 differs from the one the checkpoint at seq 50 signed (rewritten chain)"),
    ];
    for (what, tamper, expected) in cases {
        restore();
        tamper(&db(&pki));
        let (code, out) = wardgate(&["audit", "verify"], &config);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(
            out.contains("TAMPERED") && out.contains(expected),
            "{what}: expected {expected:?} in {out}"
        );
    }
    restore();
    assert_eq!(wardgate(&["audit", "verify"], &config).0, 0);
    // Verifying from a later record on.
    let (code, out) = wardgate(&["audit", "verify", "--from", "101"], &config);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn pruning_keeps_the_trail_verifiable() {
    let pki = Pki::new();
    let config = trail_of(&pki, 120).await;
    // Age the first 70 records by a year, then prune with a half-year retention.
    let c = db(&pki);
    let year_ms: i64 = 365 * 86_400_000;
    let rows: Vec<(u64, String)> = c
        .prepare("SELECT seq, body FROM audit_records WHERE seq <= 70")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (seq, _) in &rows {
        c.execute(
            "UPDATE audit_records SET time_ms = time_ms - ?1 WHERE seq = ?2",
            params![year_ms, seq],
        )
        .unwrap();
    }
    drop(c);
    let mut store = wardgate::audit::store::SqliteAuditStore::open(&pki.path("data")).unwrap();
    let instance = audit_trail(&pki)[0].instance.clone();
    let cutoff = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 180 * 86_400_000;
    // Only up to the checkpoint at 50: records 51..70 are old but not yet anchored.
    assert_eq!(store.prune(&instance, cutoff).unwrap(), 50);
    drop(store);
    let left = audit_trail(&pki);
    assert_eq!(left.first().unwrap().seq, 51);
    // The aged records fail their own hash, so verify only what pruning kept untouched.
    let (code, out) = wardgate(&["audit", "verify", "--from", "71"], &config);
    assert_eq!(code, 0, "{out}");
}

#[tokio::test]
async fn an_unavailable_store_refuses_durable_requests_and_recovers() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let patient = patient_token();
    assert_eq!(
        client
            .fetch(with_token(
                Method::GET,
                "/api/patients/p-1/records",
                &patient
            ))
            .await
            .status,
        StatusCode::OK
    );

    let file = pki.path("data/audit.db");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let refused = client
        .fetch(with_id(
            with_token(Method::GET, "/api/patients/p-1/records", &patient),
            "during-outage",
        ))
        .await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        refused.json()["error"],
        "the audit trail is unavailable; try again shortly"
    );
    let seen_before = upstream.seen().len();
    let again = client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1/records",
            &patient,
        ))
        .await;
    assert_eq!(again.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        upstream.seen().len(),
        seen_before,
        "not forwarded while the store is down"
    );
    assert_eq!(
        admin_get(&gateway, "/readyz").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    assert!(metric(&gateway, "wardgate_audit_write_errors_total").await >= 1.0);

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut status = StatusCode::SERVICE_UNAVAILABLE;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if admin_get(&gateway, "/readyz").await.status == StatusCode::OK {
            status = client
                .fetch(with_token(
                    Method::GET,
                    "/api/patients/p-1/records",
                    &patient,
                ))
                .await
                .status;
            break;
        }
    }
    assert_eq!(
        status,
        StatusCode::OK,
        "service resumes when the store recovers"
    );
    // The refused request's record was kept and written once the store came back.
    let outage = by_request_id(&audit_trail(&pki), "during-outage");
    assert_eq!(outage.len(), 1);
    assert_eq!(outage[0].status, 503);
    assert_eq!(outage[0].flags, ["audit_unavailable"]);
    gateway.shutdown().await;
    assert_eq!(
        wardgate(&["audit", "verify"], &pki.path("wardgate.yaml")).0,
        0
    );
}

#[tokio::test]
async fn audit_query_answers_who_accessed_a_patient() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    let mut doctor = claims("dr-chen", &["doctor"]);
    doctor["department"] = "cardiology".into();
    let doctor = token("ed-1", &doctor);
    client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1/records",
            &patient_token(),
        ))
        .await;
    client
        .fetch(with_token(
            Method::GET,
            "/api/departments/cardiology/patients/p-1/records",
            &doctor,
        ))
        .await;
    client
        .fetch(with_token(
            Method::GET,
            "/api/departments/dermatology/patients/p-2/records",
            &doctor,
        ))
        .await;
    let mut emergency = with_token(
        Method::GET,
        "/api/departments/dermatology/patients/p-2/records",
        &doctor,
    );
    emergency.headers_mut().insert(
        "x-break-glass",
        "stroke code, checking anticoagulants".parse().unwrap(),
    );
    client.fetch(emergency).await;
    gateway.shutdown().await;
    let config = pki.path("wardgate.yaml");

    let (code, table) = wardgate(&["audit", "query", "--patient", "p-1"], &config);
    assert_eq!(code, 0, "{table}");
    assert!(
        table.contains("patient-li") && table.contains("dr-chen"),
        "{table}"
    );
    assert!(
        table.contains("2 records, 2 distinct subjects, 0 denied or refused, 0 break-glass uses"),
        "{table}"
    );

    let (_, table) = wardgate(&["audit", "query", "--patient", "p-2"], &config);
    assert!(
        table.contains("BREAK-GLASS: stroke code, checking anticoagulants"),
        "{table}"
    );
    assert!(
        table.contains("2 records, 1 distinct subjects, 1 denied or refused, 1 break-glass uses"),
        "{table}"
    );

    let (_, json) = wardgate(
        &[
            "audit",
            "query",
            "--subject",
            "dr-chen",
            "--decision",
            "deny",
            "--format",
            "json",
        ],
        &config,
    );
    let lines: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["route"], "department-records");

    let (_, csv) = wardgate(
        &[
            "audit",
            "query",
            "--patient",
            "p-2",
            "--break-glass",
            "--format",
            "csv",
            "--since",
            "1h",
        ],
        &config,
    );
    assert!(csv.starts_with("time,subject,roles"), "{csv}");
    assert!(
        csv.contains("\"stroke code, checking anticoagulants\""),
        "{csv}"
    );
    let (_, none) = wardgate(
        &[
            "audit",
            "query",
            "--patient",
            "p-1",
            "--until",
            "2020-01-01",
        ],
        &config,
    );
    assert!(none.contains("0 records"), "{none}");
    let (code, bad) = wardgate(
        &[
            "audit",
            "query",
            "--patient",
            "p-1",
            "--since",
            "last tuesday",
        ],
        &config,
    );
    assert_eq!(code, 1);
    assert!(bad.contains("--since"), "{bad}");
}

#[tokio::test]
async fn committed_records_are_copied_to_the_siem_sink_which_reopens_on_reload() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let sink = pki.path("audit.jsonl");
    let config = authz_config(&pki, &upstream.url()).replace(
        "  checkpoint_interval: 1s\n",
        &format!("  checkpoint_interval: 1s\n  sink: {}\n", sink.display()),
    );
    let gateway = start_gateway(&pki, &config).await;
    let mut client = Client::h1(&gateway, &pki.ca_cert).await;
    client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1/records",
            &patient_token(),
        ))
        .await;
    let lines = std::fs::read_to_string(&sink).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["route"], "patient-records");
    assert_eq!(first["hash"].as_str().unwrap().len(), 64);

    // Rotation: the shipper moves the file; a reload reopens a fresh one.
    std::fs::rename(&sink, pki.path("audit.jsonl.1")).unwrap();
    gateway.reload().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    client
        .fetch(with_token(
            Method::GET,
            "/api/patients/p-1/records",
            &patient_token(),
        ))
        .await;
    let fresh = std::fs::read_to_string(&sink).unwrap();
    assert_eq!(fresh.lines().count(), 1);
    gateway.shutdown().await;
}

#[tokio::test]
async fn a_killed_gateway_loses_no_acknowledged_request() {
    let pki = Pki::new();
    let upstream = Upstream::start(|_request| async { Response::new(full("{}")) }).await;
    let config = with_json_log(&authz_config(&pki, &upstream.url()));
    let path = write_config(&pki, &config);
    let spawn = || {
        let (child, addr, _) = spawn_binary(&path);
        (child, addr)
    };
    let (mut child, addr) = spawn();
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    let patient = patient_token();
    for worker in 0..4 {
        let (acknowledged, patient, ca) =
            (acknowledged.clone(), patient.clone(), pki.ca_cert.clone());
        workers.push(tokio::spawn(async move {
            let connector = tls_connector(&ca, &[b"h2"], None);
            let Ok(tls) = tls_stream(addr, &connector).await else {
                return;
            };
            let Ok((mut sender, connection)) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                hyper_util::rt::TokioIo::new(tls),
            )
            .await
            else {
                return;
            };
            tokio::spawn(connection);
            for i in 0..100_000 {
                let id = format!("w{worker}-{i}");
                let request = with_id(
                    with_token(
                        Method::GET,
                        "https://localhost/api/patients/p-1/records",
                        &patient,
                    ),
                    &id,
                );
                match sender.send_request(request).await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        acknowledged.lock().unwrap().push(id)
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    Command::new("kill")
        .args(["-s", "KILL", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();
    for worker in workers {
        let _ = worker.await;
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() > 20,
        "the load ran: {}",
        acknowledged.len()
    );

    // Restart on the same data directory: the chain resumes and verifies.
    let (mut child, addr) = spawn();
    let mut client = {
        let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
        let tls = tls_stream(addr, &connector).await.unwrap();
        let (sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        Client::H1(sender)
    };
    assert_eq!(
        client
            .fetch(with_token(
                Method::GET,
                "/api/patients/p-1/records",
                &patient
            ))
            .await
            .status,
        StatusCode::OK
    );
    Command::new("kill")
        .args(["-s", "TERM", &child.id().to_string()])
        .status()
        .unwrap();
    child.wait().unwrap();

    let stored: std::collections::HashSet<String> = audit_trail(&pki)
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged requests have no record: {:?}",
        lost.len(),
        acknowledged.len(),
        &lost[..lost.len().min(5)]
    );
    let (code, out) = wardgate(&["audit", "verify"], &path);
    assert_eq!(code, 0, "{out}");
}

/// A client may shut its sending side once its request is out (an HTTP/1.1 half-close) and
/// still read the answer; the request runs to its end and leaves its record, rather than being
/// cut off halfway (after the upstream saw it, before the audit stage) as a broken connection.
#[tokio::test]
async fn a_client_that_half_closes_after_its_request_gets_the_answer_and_a_record() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let pki = Pki::new();
    let upstream = Upstream::start(|request| async move {
        // Long enough that the client's close arrives while the request is in flight.
        tokio::time::sleep(Duration::from_millis(300)).await;
        echo(request).await
    })
    .await;
    let gateway = start_gateway(&pki, &standard_config(&pki, &upstream.url())).await;
    let connector = tls_connector(&pki.ca_cert, &[b"http/1.1"], None);
    let mut tls = tls_stream(gateway.proxy_addr, &connector).await.unwrap();
    tls.write_all(
        b"GET /api/patients/p-1 HTTP/1.1\r\nhost: localhost\r\nx-request-id: half-closed\r\n\r\n",
    )
    .await
    .unwrap();
    // close_notify and a TCP FIN: nothing more will be sent.
    tls.shutdown().await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert_eq!(raw_status(&answer), 200, "{answer}");
    assert_eq!(upstream.last().path_and_query, "/api/patients/p-1");
    gateway.shutdown().await;
    let records = by_request_id(&audit_trail(&pki), "half-closed");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, 200);
}

/// Group commit: a batch waits for the records of requests already past routing, at most
/// `audit.group_commit_wait` (here its largest, 1s).
#[tokio::test]
async fn a_batch_waits_for_the_records_on_their_way_and_only_for_them() {
    let pki = Pki::new();
    let hold = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let held = hold.clone();
    let upstream = Upstream::start(move |request| {
        let held = held.clone();
        async move {
            if request.uri().path().ends_with("/prescriptions") {
                let _released = held.acquire().await;
            }
            echo(request).await
        }
    })
    .await;
    let config = authz_config(&pki, &upstream.url())
        .replace(
            "  checkpoint_interval: 1s\n",
            "  checkpoint_interval: 1s\n  group_commit_wait: 1s\n",
        )
        .replace("response_timeout: 2s", "response_timeout: 60s");
    let gateway = start_gateway(&pki, &config).await;
    let patient = patient_token();
    let within = |what: &'static str| {
        move |result: Result<Reply, tokio::time::error::Elapsed>| {
            result.unwrap_or_else(|_| panic!("{what}: no answer within 20 s"))
        }
    };

    let mut lone = Client::h1(&gateway, &pki.ca_cert).await;
    let answer = tokio::time::timeout(
        Duration::from_secs(20),
        lone.fetch(with_id(
            with_token(Method::GET, "/api/patients/p-1/records", &patient),
            "lone",
        )),
    )
    .await;
    assert_eq!(within("the lone request")(answer).status, StatusCode::OK);

    // A request held at the upstream has announced its record: the next batch waits for it.
    let mut slow_client = Client::h1(&gateway, &pki.ca_cert).await;
    let slow = tokio::spawn(async move {
        slow_client
            .fetch(with_id(
                with_token(
                    Method::GET,
                    "/api/patients/p-1/prescriptions",
                    &patient_token(),
                ),
                "slow",
            ))
            .await
    });
    while !upstream
        .seen()
        .iter()
        .any(|seen| seen.path_and_query.ends_with("/prescriptions"))
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut fast_client = Client::h1(&gateway, &pki.ca_cert).await;
    let fast = tokio::spawn(async move {
        fast_client
            .fetch(with_id(
                with_token(Method::GET, "/api/patients/p-1/records", &patient),
                "fast",
            ))
            .await
    });
    // It cannot be answered before the held record arrives, or before a second has passed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !fast.is_finished(),
        "answered before the record on its way arrived"
    );
    hold.add_permits(1);
    let slow = tokio::time::timeout(Duration::from_secs(20), slow)
        .await
        .map(Result::unwrap);
    let fast = tokio::time::timeout(Duration::from_secs(20), fast)
        .await
        .map(Result::unwrap);
    assert_eq!(within("the held request")(slow).status, StatusCode::OK);
    assert_eq!(within("the waiting request")(fast).status, StatusCode::OK);
    let stored = audit_trail(&pki);
    for id in ["lone", "slow", "fast"] {
        assert_eq!(by_request_id(&stored, id).len(), 1, "record of {id}");
    }
    // Committed together, one after the other in the chain.
    let seq = |id| by_request_id(&stored, id)[0].seq;
    assert_eq!(seq("slow").abs_diff(seq("fast")), 1);
}
