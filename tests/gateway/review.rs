//! The permission review over a trail made by real traffic through the gateway (plus one old
//! record written through the real audit writer, to have a dormant subject): the exact
//! sections, the self-contained HTML in both languages, CSV and JSON from the CLI, the admin
//! endpoint's access rules, and sign-off followed by a policy change and the next report.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use wardgate::audit::{Audit, AuditRecord};
use wardgate::config::Durability;
use wardgate::metrics::Metrics;
use wardgate::review::{self, html};

use crate::support::*;

const DAY_MS: i64 = 86_400_000;

fn now_ms() -> i64 {
    wardgate::erasure::store::now_ms()
}

/// Drives a little of everything through the gateway; returns the config's path.
async fn seeded(pki: &Pki) -> std::path::PathBuf {
    let upstream = Upstream::echo().await;
    let yaml = format!(
        "{}\nreview:\n  dormant_after: 30d\n",
        authz_config(pki, &upstream.url())
    );
    // A nurse last seen 60 days ago, through the real writer (same store, same chain).
    let config = wardgate::config::parse(&yaml, &pki.path("wardgate.yaml"), pki.dir.path())
        .unwrap()
        .config;
    {
        let audit = Audit::start(
            &pki.path("data"),
            &pki.path("data").as_path().into(),
            &config.audit,
            Arc::new(Metrics::new()),
        )
        .unwrap();
        let old = now_ms() - 60 * DAY_MS;
        let record = AuditRecord {
            time: review::rows::date(old),
            time_ms: old,
            request_id: "old-1".into(),
            subject: Some("nurse-old".into()),
            roles: vec!["nurse".into()],
            client: "10.0.0.9".into(),
            method: "GET".into(),
            decision: "allow".into(),
            rule: Some("p, clinician, same_department, medical_record, read".into()),
            status: 200,
            ..AuditRecord::default()
        };
        audit
            .submit(record, Durability::Durable, None)
            .await
            .unwrap();
        audit.close(Duration::from_secs(5)).await.unwrap();
    }
    let gateway = start_gateway(pki, &yaml).await;
    let mut client = Client::h2(&gateway, &pki.ca_cert).await;
    let get = |path: &str, token: &str| with_token(Method::GET, path, token);
    let patient = principal("patient-li", "patient", None, Some("p-1"));
    let doctor = principal("dr-chen", "doctor", Some("cardiology"), None);
    let pharmacist = principal("ph-zhao", "pharmacist", None, None);
    let intern = principal("in-wu", "intern", Some("cardiology"), None);
    for (request, status) in [
        (get("/api/patients/p-1/records", &patient), StatusCode::OK),
        (
            get("/api/departments/cardiology/patients/p-1/records", &doctor),
            StatusCode::OK,
        ),
        (
            get("/api/patients/p-1/records", &pharmacist),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/patients/p-2/records", &pharmacist),
            StatusCode::FORBIDDEN,
        ),
        (
            get("/api/patients/p-2/prescriptions", &pharmacist),
            StatusCode::OK,
        ),
        (
            get("/api/departments/cardiology/patients/p-1/records", &intern),
            StatusCode::FORBIDDEN,
        ),
    ] {
        assert_eq!(client.fetch(request).await.status, status);
    }
    let mut emergency = get("/api/departments/dermatology/patients/p-2/records", &doctor);
    emergency.headers_mut().insert(
        "x-break-glass",
        "unconscious patient, allergy check".parse().unwrap(),
    );
    assert_eq!(client.fetch(emergency).await.status, StatusCode::OK);
    gateway.shutdown().await;
    pki.path("wardgate.yaml")
}

#[tokio::test]
async fn the_report_has_exactly_the_expected_sections() {
    let pki = Pki::new();
    let path = seeded(&pki).await;
    let config = wardgate::config::load(&path).unwrap().config;
    let report = review::build(&config, now_ms() - 90 * DAY_MS, now_ms() + 1000, now_ms()).unwrap();

    assert_eq!(report.records, 8);
    let uses = |line: &str| {
        report
            .grants
            .iter()
            .find(|g| g.grant.line == line)
            .unwrap_or_else(|| panic!("{line} not listed"))
            .uses
    };
    assert_eq!(uses("p, patient, self, medical_record, read"), 1);
    assert_eq!(
        uses("p, clinician, same_department, medical_record, read"),
        2
    );
    assert_eq!(uses("p, clinician, break_glass, medical_record, read"), 1);
    assert_eq!(uses("p, pharmacist, *, prescription, read"), 1);
    assert_eq!(
        uses("p, admin, none, gateway_admin, *"),
        0,
        "a revocation candidate"
    );

    let subjects: Vec<&str> = report.subjects.iter().map(|s| s.subject.as_str()).collect();
    assert_eq!(
        subjects,
        ["dr-chen", "in-wu", "nurse-old", "patient-li", "ph-zhao"]
    );
    assert_eq!(
        report.subjects[0].departments,
        ["cardiology"],
        "dr-chen's department"
    );
    let dormant: Vec<&str> = report.dormant.iter().map(|s| s.subject.as_str()).collect();
    assert_eq!(dormant, ["nurse-old"]);
    assert_eq!(report.ungranted_roles.len(), 1);
    assert_eq!(
        (
            report.ungranted_roles[0].subject.as_str(),
            report.ungranted_roles[0].role.as_str()
        ),
        ("in-wu", "intern")
    );
    assert_eq!(report.break_glass.len(), 1);
    assert_eq!(report.break_glass[0].subject, "dr-chen");
    assert_eq!(
        report.break_glass[0].reason,
        "unconscious patient, allergy check"
    );
    assert!(report.break_glass[0].patient.starts_with("pt_"));
    assert_eq!(
        (
            report.denials[0].subject.as_str(),
            report.denials[0].resource.as_str(),
            report.denials[0].count
        ),
        ("ph-zhao", "medical_record", 2)
    );
    assert_eq!(report.denials.len(), 2, "the intern's denial too");
    assert!(
        !report.policy.loads.is_empty(),
        "the gateway recorded its policy load"
    );
    assert_eq!(report.policy.loads[0].0, report.policy.current_hash);

    // The HTML stands alone: no script, no stylesheet or image fetched from anywhere.
    let page = html::render(&report, html::words("en"));
    for forbidden in ["<script", "<link", "src=", "url(", "https://"] {
        assert!(!page.contains(forbidden), "{forbidden} in the page");
    }
    assert!(page.contains("<svg") && page.contains("Revocation candidates"));
    assert!(page.contains("p, admin, none, gateway_admin, *"));
    let chinese = html::render(&report, html::words("zh-CN"));
    assert!(chinese.contains("<html lang=\"zh-CN\">") && chinese.contains("权限审查报告"));
    assert!(chinese.contains("建议撤销"));
}

#[tokio::test]
async fn the_cli_writes_html_csv_and_json_and_sign_off_is_checked_by_the_next_report() {
    let pki = Pki::new();
    let config = seeded(&pki).await;
    let out = pki.path("review.html");
    let wardgate = |args: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_wardgate"))
            .args(args)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code(), text)
    };
    let (code, text) = wardgate(&[
        "review",
        "report",
        "--since",
        "90d",
        "--out",
        out.to_str().unwrap(),
        "--csv",
        pki.path("csv").to_str().unwrap(),
        "--json",
        pki.path("review.json").to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("8 audit records, 5 subjects"), "{text}");
    let grants_csv = std::fs::read_to_string(pki.path("csv/grants.csv")).unwrap();
    assert!(grants_csv.starts_with("role,grant,uses,revocation_candidate\n"));
    assert!(grants_csv.contains("admin,\"p, admin, none, gateway_admin, *\",0,true"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pki.path("review.json")).unwrap()).unwrap();
    assert_eq!(json["break_glass"][0]["subject"], "dr-chen");

    // Sign-off: revoke two grants, keep one.
    let decisions = pki.path("decisions.yaml");
    std::fs::write(
        &decisions,
        "decisions:\n  - grant: \"p, receptionist, *, patient_profile, read\"\n    decision: revoke\n    note: front desk needs appointments only\n  - grant: \"p, pharmacist, *, prescription, read\"\n    decision: revoke\n  - grant: \"p, patient, self, medical_record, read\"\n    decision: keep\n",
    )
    .unwrap();
    let (code, text) = wardgate(&[
        "review",
        "sign",
        "--report",
        out.to_str().unwrap(),
        "--reviewer",
        "co-sun",
        "--decisions",
        decisions.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (_, history) = wardgate(&["review", "history"]);
    assert!(
        history.contains("by co-sun") && history.contains("3 decisions (2 revocations)"),
        "{history}"
    );
    std::fs::write(
        &decisions,
        "decisions:\n  - grant: x\n    decision: delete\n",
    )
    .unwrap();
    let (code, text) = wardgate(&[
        "review",
        "sign",
        "--report",
        out.to_str().unwrap(),
        "--reviewer",
        "co-sun",
        "--decisions",
        decisions.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1));
    assert!(text.contains("use keep, revoke or follow_up"), "{text}");

    // One revocation carried out (the line removed), one not.
    let policy = policy_without(&pki, "p, receptionist, *, patient_profile, read");
    std::fs::write(pki.path("policy.csv"), policy).unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let loaded = wardgate::config::load(&config).unwrap().config;
    let next = review::build(&loaded, now_ms() - 90 * DAY_MS, now_ms() + 1000, now_ms()).unwrap();
    let previous = next.previous.expect("the signed review");
    assert_eq!(previous.reviewer, "co-sun");
    let applied: Vec<(&str, Option<bool>)> = previous
        .decisions
        .iter()
        .map(|d| (d.decision.grant.as_str(), d.applied))
        .collect();
    assert_eq!(
        applied,
        [
            ("p, receptionist, *, patient_profile, read", Some(true)),
            ("p, pharmacist, *, prescription, read", Some(false)),
            ("p, patient, self, medical_record, read", None),
        ]
    );
}

#[tokio::test]
async fn the_admin_endpoint_serves_compliance_officers_and_administrators_only() {
    let pki = Pki::new();
    let upstream = Upstream::echo().await;
    let gateway = start_gateway(&pki, &authz_config(&pki, &upstream.url())).await;
    let fetch = |token: String| {
        let addr = gateway.admin_addr;
        async move {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let request = http::Request::get("/admin/review/report?since=7d")
                .header("host", "localhost")
                .header("authorization", format!("Bearer {token}"))
                .body(no_body())
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            (
                response.status(),
                response.headers().get("content-type").cloned(),
            )
        }
    };
    let (status, content_type) =
        fetch(std::fs::read_to_string(pki.path("admin-token")).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(content_type.unwrap(), "text/html; charset=utf-8");
    let officer = principal("co-sun", "compliance_officer", None, None);
    assert_eq!(fetch(officer).await.0, StatusCode::OK);
    let doctor = principal("dr-chen", "doctor", Some("cardiology"), None);
    assert_eq!(fetch(doctor).await.0, StatusCode::FORBIDDEN);
    assert_eq!(
        fetch("not-a-token".into()).await.0,
        StatusCode::UNAUTHORIZED
    );
    gateway.shutdown().await;
}

#[tokio::test]
async fn the_html_renders_in_headless_chromium_and_is_not_blank() {
    let pki = Pki::new();
    let config = seeded(&pki).await;
    let loaded = wardgate::config::load(&config).unwrap().config;
    let report = review::build(&loaded, now_ms() - 90 * DAY_MS, now_ms() + 1000, now_ms()).unwrap();
    let page = pki.path("review.html");
    std::fs::write(&page, html::render(&report, html::words("zh-CN"))).unwrap();
    let url = format!("file://{}", page.display());
    let chromium = |args: &[&str]| {
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
            ])
            .args(args)
            .arg(&url)
            .output()
            .expect("chromium (Debian's package; .ci/run installs it)")
    };
    let dom = chromium(&["--dump-dom"]);
    let rendered = String::from_utf8_lossy(&dom.stdout);
    assert!(
        rendered.contains("权限审查报告") && rendered.contains("<svg"),
        "{rendered}"
    );
    let log = String::from_utf8_lossy(&dom.stderr);
    assert!(
        !log.contains("Uncaught") && !log.contains(":CONSOLE"),
        "{log}"
    );

    let shot = pki.path("review.png");
    let output = chromium(&[
        &format!("--screenshot={}", shot.display()),
        "--window-size=1000,1400",
    ]);
    assert!(shot.exists(), "{}", String::from_utf8_lossy(&output.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(&shot).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let pixels = &pixels[..frame.buffer_size()];
    let background = &pixels[..channels];
    let drawn = pixels
        .chunks(channels)
        .filter(|pixel| *pixel != background)
        .count();
    let total = pixels.len() / channels;
    // Text, tables and the chart cover a visible share of the page, not a blank screen.
    assert!(
        drawn * 100 > total * 3,
        "only {drawn} of {total} pixels drawn"
    );
}
