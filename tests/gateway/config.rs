//! Config errors: each names the file, line and column of the bad value and says what is
//! wrong; `wardgate check` prints them and exits 2, or prints `ok` and exits 0.

use crate::support::*;

fn problems(pki: &Pki, yaml: &str) -> String {
    let path = write_config(pki, yaml);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let result = runtime.block_on(async {
        let loaded = wardgate::config::load(&path)?;
        wardgate::server::prepare(&loaded).await.map(|_| ())
    });
    match result {
        Ok(()) => panic!("config was accepted:\n{yaml}"),
        Err(errors) => errors.to_string(),
    }
}

#[test]
fn each_bad_value_is_reported_at_its_line() {
    let pki = Pki::new();
    let good = standard_config(&pki, "http://127.0.0.1:9");
    let path = pki.path("wardgate.yaml").display().to_string();

    let cases: Vec<(String, &str, &str)> = vec![
        (
            good.replace("idle_timeout: 30s", "idle_timeout: 30 parsecs"),
            "idle_timeout",
            "invalid duration",
        ),
        (
            good.replace("idle_timeout: 30s", "idle_timeout: 0s"),
            "idle_timeout",
            "server.limits.idle_timeout: must be longer than 0s",
        ),
        (
            good.replace("max_body_size: 64KiB", "max_body_size: lots"),
            "max_body_size: lots",
            "invalid size",
        ),
        (
            good.replace(
                "  shutdown_grace_period: 5s",
                "  shutdown_grace_period: 5s\n  listn: 1",
            ),
            "listn",
            "unknown field `listn`",
        ),
        (
            good.replace("methods: [GET, PUT]", "methods: [GET, get]"),
            "methods: [GET, get]",
            "invalid HTTP method",
        ),
        (
            good.replace(
                "    upstream: backend\n    auth: none\n  - name: patient-records",
                "    upstream: backedn\n    auth: none\n  - name: patient-records",
            ),
            "upstream: backedn",
            "unknown upstream \"backedn\"",
        ),
        (
            good.replace("url: http://127.0.0.1:9", "url: ftp://127.0.0.1:9"),
            "url: ftp",
            "must start with http:// or https://",
        ),
        (
            good.replace("- name: patient-records", "- name: patient  # again"),
            "# again",
            "used twice",
        ),
        (
            good.replace(
                "allowed_origins: [\"https://consult.example-hospital.cn\"]",
                "allowed_origins: [\"*\"]",
            ),
            "allowed_origins",
            "'*' cannot be combined with allow_credentials",
        ),
        (
            good.replace(
                &pki.server.cert.display().to_string(),
                "/nonexistent/server.pem",
            ),
            "cert: /nonexistent",
            "cannot read /nonexistent/server.pem",
        ),
        (
            good.replace(
                &pki.server.key.display().to_string(),
                &pki.ca_cert.display().to_string(),
            ),
            "key: ",
            "no usable PEM private key",
        ),
        (
            good.replace(
                "    response_timeout: 2s",
                "    response_timeout: 2s\n    pool: { max_connections: 0 }",
            ),
            "max_connections: 0",
            "upstreams.backend.pool.max_connections: must be at least 1",
        ),
        (
            good.replace(
                "  checkpoint_interval: 1s\n",
                "  checkpoint_interval: 1s\n  group_commit_wait: 5s\n",
            ),
            "group_commit_wait",
            "audit.group_commit_wait: at most 1s",
        ),
        (
            good.replace("path: /api/events/{*rest}", "path: /api/events/{rest"),
            "/api/events/{rest",
            "invalid or conflicting path template",
        ),
    ];
    for (yaml, needle, message) in cases {
        let reported = problems(&pki, &yaml);
        let prefix = format!("{path}:{}:", line_of(&yaml, needle));
        assert!(
            reported.starts_with(&prefix) || reported.contains(&format!("\n{prefix}")),
            "expected {prefix} in:\n{reported}"
        );
        assert!(
            reported.contains(message),
            "expected {message:?} in:\n{reported}"
        );
    }
}

#[test]
fn broken_yaml_is_reported_at_its_line() {
    let pki = Pki::new();
    let reported = problems(
        &pki,
        "server:\n  listen: 127.0.0.1:0\n\ttls: {}\nroutes: []\n",
    );
    assert!(reported.contains("wardgate.yaml:3:"), "{reported}");
    assert!(reported.contains("tab"), "{reported}");
}

#[test]
fn wardgate_check_prints_problems_and_exits_2_or_prints_ok() {
    let pki = Pki::new();
    let good = standard_config(&pki, "http://127.0.0.1:9");
    let path = write_config(&pki, &good);
    let output = wardgate_check(&path).output().unwrap();
    assert_succeeded(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "ok");

    let bad = good.replace("connect_timeout: 1s", "connect_timeout: soon");
    let path = write_config(&pki, &bad);
    let output = wardgate_check(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = line_of(&bad, "connect_timeout: soon");
    assert!(
        stderr.starts_with(&format!("{}:{line}:", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("invalid duration \"soon\""), "{stderr}");

    let output = wardgate_check("/nonexistent/wardgate.yaml")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot read config file"));
}

#[test]
fn only_https_upstreams_need_the_system_ca_bundle() {
    let pki = Pki::new();
    let check = |url: &str| {
        let path = write_config(&pki, &standard_config(&pki, url));
        wardgate_check(&path).envs(NO_CA_BUNDLE).output().unwrap()
    };
    let plain = check("http://127.0.0.1:9");
    assert_succeeded(&plain);

    let https = check("https://127.0.0.1:9");
    assert_eq!(https.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&https.stderr);
    assert!(stderr.contains("upstreams.backend.tls"), "{stderr}");
    assert!(
        stderr.contains("no system CA certificates found; set tls.ca"),
        "{stderr}"
    );
}

#[test]
fn the_shipped_configs_are_valid() {
    // The annotated reference config parses and validates with every key it documents.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    for name in ["wardgate.yaml", "demo.yaml"] {
        let text = std::fs::read_to_string(root.join(name)).unwrap();
        if let Err(errors) = wardgate::config::parse(&text, &root.join(name), &root) {
            panic!("{errors}");
        }
    }
}

#[test]
fn access_control_mistakes_are_reported_at_their_line() {
    let pki = Pki::new();
    let good = authz_config(&pki, "http://127.0.0.1:9");
    let path = pki.path("wardgate.yaml").display().to_string();
    let cases: Vec<(String, &str, &str)> = vec![
        (
            good.replace("    resource: statistics\n", ""),
            "name: consultation-report",
            "routes[9].resource: a route with auth required or optional names its resource",
        ),
        (
            good.replace(
                "    patient: { from: path, name: patient_id }\n  - name: patient-records",
                "    patient: { from: path, name: pid }\n  - name: patient-records",
            ),
            "name: pid }",
            "the path template /api/patients/{patient_id} has no parameter {pid}",
        ),
        (
            good.replace(
                "    leeway: 5s\n",
                "    leeway: 5s\n    algorithms: [RS256, HS256]\n",
            ),
            "algorithms:",
            "\"HS256\" is not accepted",
        ),
        (
            good.replace("  min_reason_length: 15", "  min_reason_length: 0"),
            "min_reason_length",
            "a reason is mandatory",
        ),
        (
            good.replace(
                "    patient: { from: path, name: patient_id }\n  - name: patient-records",
                "    patient: { from: cookie, name: patient_id }\n  - name: patient-records",
            ),
            "from: cookie",
            "unknown variant `cookie`",
        ),
        (
            good.replace(
                "    patient: { from: path, name: patient_id }\n  - name: patient-records",
                "    patient: { from: path, name: patient_id }\n    audit: none\n  - name: patient-records",
            ),
            "audit: none",
            "`none` is only for public routes",
        ),
    ];
    for (yaml, needle, message) in cases {
        let reported = problems(&pki, &yaml);
        let prefix = format!("{path}:{}:", line_of(&yaml, needle));
        assert!(
            reported.contains(&prefix),
            "expected {prefix} in:\n{reported}"
        );
        assert!(
            reported.contains(message),
            "expected {message:?} in:\n{reported}"
        );
    }
    // A policy file problem names the policy file and line.
    std::fs::write(
        pki.path("policy.csv"),
        "p, doctor, same_department, medical_record\n",
    )
    .unwrap();
    let path = write_config(&pki, &good);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let errors = runtime.block_on(async {
        let loaded = wardgate::config::load(&path).unwrap();
        wardgate::server::prepare(&loaded)
            .await
            .err()
            .unwrap()
            .to_string()
    });
    assert!(
        errors.contains("policy.csv:1:1: a p line has 4 fields"),
        "{errors}"
    );
}
