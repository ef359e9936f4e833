//! `wardgate selfcheck` (the real binary) against a deployment weakened on purpose, then the
//! same deployment strengthened: the expected FAIL and WARN items, the exit status, the live
//! check of a running gateway, and the history that says what was fixed.

use std::process::Command;

use serde_json::Value;

use crate::support::*;

fn selfcheck(config: &std::path::Path, extra: &[&str]) -> (i32, String, Vec<Value>) {
    let json = config.with_file_name("selfcheck.json");
    let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["selfcheck", "--config"])
        .arg(config)
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let items: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap_or_else(|_| "[]".into()))
            .unwrap();
    (output.status.code().unwrap_or(-1), text, items)
}

fn status<'a>(items: &'a [Value], id: &str) -> &'a str {
    items
        .iter()
        .find(|item| item["id"] == id)
        .unwrap_or_else(|| panic!("no item {id}"))["status"]
        .as_str()
        .unwrap()
}

// Several threads: the test waits for the selfcheck process while the gateway it inspects
// answers on the same runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_deployment_fails_where_it_is_weak_and_the_history_shows_the_fixes() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let strong_base = authz_config(&pki, &upstream.url());
    // Weak: a route reaching patient data with buffered audit, a public patient route, a
    // plain-HTTP upstream across the network, no HSTS, break-glass for a day, no field
    // protection, no review, no backups.
    let weak = strong_base
        .replace(
            "    resource: medical_record\n    patient: { from: path, name: patient_id }\n  - name: patient-prescriptions",
            "    resource: medical_record\n    patient: { from: path, name: patient_id }\n    audit: buffered\n  - name: patient-prescriptions",
        )
        .replace("  duration: 1h\n", "  duration: 24h\n")
        .replace(
            "upstreams:\n  backend:\n",
            "security_headers:\n  strict_transport_security: null\nupstreams:\n  remote:\n    url: http://10.20.30.40:8080\n  backend:\n",
        );
    // ...and an erasure request left waiting past its due time.
    let weak = format!(
        "{weak}\nerasure:\n  due_within: 1ms\n  systems:\n    backend:\n      delete: {{ url: \"{}/patients/{{patient_id}}\" }}\n",
        upstream.url()
    );
    // The weak deployment has run (its stores exist), then the inspection comes.
    let gateway = start_gateway(&pki, &weak).await;
    let api = wardgate::admin::client::AdminClient::new(
        &format!("http://{}", gateway.admin_addr),
        &pki.path("admin-token"),
    )
    .unwrap();
    let body = serde_json::json!({"patient_id": "p-1", "requester": "patient", "channel": "app",
        "reason": "withdrew consent", "verification_ref": "ID card", "submitted_by": "clerk"});
    api.call(http::Method::POST, "/admin/erasure-requests", Some(body))
        .await
        .unwrap();
    gateway.shutdown().await;
    // The last permission review was signed 200 days ago.
    let long_ago = wardgate::erasure::store::now_ms() - 200 * 86_400_000;
    wardgate::review::store::sign(
        &pki.path("data").as_path().into(),
        "co-old",
        "0",
        (0, 1),
        &[],
        long_ago,
    )
    .unwrap();
    let path = pki.path("wardgate.yaml");
    let (code, text, items) = selfcheck(&path, &[]);
    assert_eq!(code, 1, "{text}");
    for (id, expected) in [
        ("audit.durable", "FAIL"),
        ("transport.upstreams", "FAIL"),
        ("transport.hsts", "FAIL"),
        ("access.break_glass", "WARN"),
        ("fields.protection", "FAIL"),
        ("reviews.last_signed", "FAIL"),
        ("erasure.overdue", "FAIL"),
        ("erasure.ledger", "WARN"),
        ("recovery.backup", "WARN"),
        ("recovery.restore_drill", "WARN"),
        ("operations.metrics", "WARN"),
        ("operations.alerts", "WARN"),
        ("transport.handshake", "WARN"),
        ("transport.certificate", "PASS"),
        ("transport.protocols", "PASS"),
        ("access.deny_by_default", "PASS"),
        ("access.public_routes", "PASS"),
        ("audit.retention", "PASS"),
        ("audit.chain", "PASS"),
        ("audit.store", "PASS"),
    ] {
        assert_eq!(status(&items, id), expected, "{id}\n{text}");
    }
    assert!(text.contains("FAIL  audit.durable  patient-data routes with buffered audit: patient-records  -> remove `audit: buffered`"), "{text}");
    assert!(text.contains("first inspection recorded"), "{text}");
    assert!(
        text.contains("the last review was signed by co-old 200 days ago"),
        "{text}"
    );

    // Strengthened: every weakness above fixed, a review signed, a backup marker fresh, a
    // restore drill within 4 hours; checked live against the running gateway.
    let ring = pki.path("kek-ring.json");
    wardgate::crypto::manage::init(&ring).unwrap();
    std::fs::write(pki.path("backup.done"), "").unwrap();
    std::fs::write(
        pki.path("alerts.yaml"),
        "groups:\n  - name: wardgate\n    rules:\n      - alert: WardgateAuditWriteErrors\n        expr: increase(wardgate_audit_write_errors_total[5m]) > 0\n",
    )
    .unwrap();
    let strong = format!(
        "{strong_base}\nfield_protection:\n  key_ring_file: {}\n  fields:\n    phone: {{ redact: partial }}\nrecovery:\n  backup_marker: {}\n  restore_drill: {{ at: 2026-11-01, took: 2h15m }}\noperations:\n  alerts_file: {}\n",
        ring.display(),
        pki.path("backup.done").display(),
        pki.path("alerts.yaml").display()
    );
    let path = write_config(&pki, &strong);
    std::fs::write(
        pki.path("report.html"),
        "<meta name=\"wardgate-period\" content=\"0,1\">",
    )
    .unwrap();
    std::fs::write(
        pki.path("decisions.yaml"),
        "decisions:\n  - grant: \"p, patient, self, medical_record, read\"\n    decision: keep\n",
    )
    .unwrap();
    let signed = Command::new(env!("CARGO_BIN_EXE_wardgate"))
        .args(["review", "sign", "--reviewer", "co-sun", "--report"])
        .arg(pki.path("report.html"))
        .arg("--decisions")
        .arg(pki.path("decisions.yaml"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert!(signed.status.success());
    let gateway = start_gateway(&pki, &strong).await;
    let admin = format!("http://{}", gateway.admin_addr);
    let token = pki.path("admin-token");
    let page = pki.path("selfcheck.html");
    let proxy = gateway.proxy_addr.to_string();
    let (code, text, items) = selfcheck(
        &path,
        &[
            "--admin",
            &admin,
            "--token-file",
            token.to_str().unwrap(),
            "--proxy",
            &proxy,
            "--out",
            page.to_str().unwrap(),
            "--language",
            "zh-CN",
        ],
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("合规自查报告") && html.contains("已整改") && html.contains("审计追溯"));
    assert!(!html.contains("<script") && !html.contains("https://"));
    for (id, expected) in [
        ("audit.durable", "PASS"),
        ("transport.upstreams", "PASS"),
        ("transport.hsts", "PASS"),
        ("access.break_glass", "PASS"),
        ("fields.key_ring_permissions", "PASS"),
        ("fields.key_rotation", "PASS"),
        ("reviews.last_signed", "PASS"),
        ("recovery.backup", "PASS"),
        ("recovery.restore_drill", "PASS"),
        ("operations.metrics", "PASS"),
        ("operations.reloads", "PASS"),
        ("erasure.configured", "WARN"),
        ("transport.handshake", "PASS"),
        ("operations.alerts", "PASS"),
    ] {
        assert_eq!(status(&items, id), expected, "{id}\n{text}");
    }
    // The gateway runs in this process, whose soft open-files limit it raised to the hard one:
    // against the 10,320 descriptors the config allows (10,000 clients, a pool of 256, 64).
    let (_, hard) = open_files_limits("self");
    let expected = if hard >= 10_320 { "PASS" } else { "WARN" };
    assert_eq!(status(&items, "operations.open_files"), expected, "{text}");
    // Still honest: patient routes without field rules are named.
    assert_eq!(status(&items, "fields.routes"), "WARN", "{text}");
    assert_eq!(code, 0, "nothing fails:\n{text}");
    let history = text
        .lines()
        .find(|line| line.starts_with("since the previous inspection"))
        .unwrap_or_else(|| panic!("{text}"));
    for fixed in [
        "audit.durable",
        "transport.hsts",
        "transport.upstreams",
        "reviews.last_signed",
    ] {
        assert!(
            history.contains(fixed),
            "{fixed} not listed as fixed: {history}"
        );
    }

    // The same inspection from the admin API, as JSON for dashboards, and the gauge.
    let answer = wardgate::admin::client::AdminClient::new(&admin, &token)
        .unwrap()
        .call(http::Method::GET, "/admin/selfcheck", None)
        .await
        .unwrap();
    let inspection: Value = serde_json::from_str(&answer).unwrap();
    let all = inspection["items"].as_array().unwrap();
    assert!(all.len() > 20);
    let handshake = all
        .iter()
        .find(|item| item["id"] == "transport.handshake")
        .unwrap();
    assert_eq!(handshake["status"], "PASS", "{handshake}");
    assert!(
        handshake["found"]
            .as_str()
            .unwrap()
            .contains("TLS 1.3: TLS13_"),
        "{handshake}"
    );
    assert_eq!(inspection["changes"]["new"], serde_json::json!([]));
    // The gauge is set for every area the inspection covered (0: nothing fails there).
    let metrics = admin_get(&gateway, "/metrics").await;
    let text = String::from_utf8_lossy(&metrics.body);
    for area in [
        "transport",
        "access",
        "fields",
        "audit",
        "reviews",
        "recovery",
        "operations",
    ] {
        let sample = format!("wardgate_selfcheck_failures{{area=\"{area}\"}} 0");
        assert!(text.contains(&sample), "{sample} missing");
    }
    gateway.shutdown().await;
}
