//! `wardgate demo`: the one command a newcomer runs. It makes a temporary folder with a
//! certificate authority and a server certificate, the demo identity provider's keys and the
//! policies, starts the demo consultation backend on loopback and the gateway in front of it
//! (with `config/demo.yaml`), prints a token per role and ready-to-paste `curl` lines, and on
//! Ctrl-C stops everything and removes the folder.

pub mod backend;
pub mod pki;
pub mod tokens;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::config;
use crate::server::Signals;
use crate::RunningGateway;
use backend::DemoBackend;
use pki::CertificateAuthority;
use tokens::{MintError, SigningKey, TokenClaims};

/// A demo user: the shell variable holding its token, and who it is.
pub struct DemoIdentity {
    pub variable: String,
    pub who: &'static str,
    pub token: String,
}

/// One printed example.
pub struct Example {
    pub what: String,
    pub command: String,
    /// Text the command's output contains when it works.
    pub expect: String,
}

/// The demo's config, as shipped in `config/demo.yaml`.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.yaml");
/// The policies the demo runs, as shipped in `policies/`.
const MODEL: &str = include_str!("../../policies/model.conf");
const POLICY: &str = include_str!("../../policies/policy.csv");
const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
const DEFAULT_ADMIN: &str = "127.0.0.1:9090";
const DEFAULT_BACKEND: &str = "127.0.0.1:8081";

#[derive(Clone, Debug, clap::Args)]
pub struct DemoOptions {
    /// Address of the gateway's TLS listener.
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Address of the admin listener (health, readiness, metrics).
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Address of the demo consultation backend.
    #[arg(long, default_value = DEFAULT_BACKEND)]
    pub backend: SocketAddr,
}

/// A running demo: backend, gateway, and the folder holding its files.
pub struct Demo {
    pub gateway: RunningGateway,
    pub backend: DemoBackend,
    pub dir: tempfile::TempDir,
    pub ca_cert: PathBuf,
    /// The `wardgate` binary the printed commands call (this one, by default).
    pub wardgate: PathBuf,
}

impl Demo {
    pub async fn start(options: &DemoOptions) -> anyhow::Result<Demo> {
        let dir = tempfile::Builder::new()
            .prefix("wardgate-demo-")
            .tempdir()
            .context("cannot create the demo's temporary folder")?;
        let ca = CertificateAuthority::new("wardgate demo CA")?;
        let ca_cert = ca.write_cert(&dir.path().join("ca.pem"))?;
        ca.issue_server(dir.path(), "server", &["localhost", "127.0.0.1"])?;
        let write = |name: &str, text: &str| {
            std::fs::write(dir.path().join(name), text)
                .with_context(|| format!("cannot write the demo's {name}"))
        };
        write("demo-jwks.json", &SigningKey::demo()?.jwks()?)?;
        write("model.conf", MODEL)?;
        write("policy.csv", POLICY)?;
        let signing_key = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        write("upstream-signing.key", &signing_key)?;
        crate::audit::keys::generate(dir.path())?;
        crate::crypto::manage::init(&dir.path().join("kek-ring.json"))?;
        write("admin-token", &format!("{}", uuid::Uuid::new_v4().simple()))?;

        let backend = DemoBackend::start(options.backend)
            .await
            .with_context(|| format!("cannot start the demo backend on {}", options.backend))?;
        let text = DEMO_CONFIG
            .replace(DEFAULT_LISTEN, &options.listen.to_string())
            .replace(DEFAULT_ADMIN, &options.admin.to_string())
            .replace(DEFAULT_BACKEND, &backend.addr.to_string());
        let config_path = dir.path().join("demo.yaml");
        std::fs::write(&config_path, text).context("cannot write the demo config")?;
        let loaded = config::load(&config_path)?;
        let gateway = RunningGateway::start(loaded).await?;
        let wardgate = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("wardgate"));
        Ok(Demo {
            gateway,
            backend,
            dir,
            ca_cert,
            wardgate,
        })
    }

    /// The demo's users, one per role, and their tokens as shell variables.
    pub fn identities() -> Result<Vec<DemoIdentity>, MintError> {
        let key = SigningKey::demo()?;
        let people = [
            (
                "PATIENT",
                "patient Li Wei, p-1001",
                TokenClaims::demo("patient-li", &["patient"]).patient("p-1001"),
            ),
            (
                "DOCTOR",
                "doctor Chen, cardiology",
                TokenClaims::demo("dr-chen", &["doctor"]).department("cardiology"),
            ),
            (
                "NURSE",
                "nurse Wang, cardiology",
                TokenClaims::demo("nurse-wang", &["nurse"]).department("cardiology"),
            ),
            (
                "PHARMACIST",
                "pharmacist Zhao",
                TokenClaims::demo("ph-zhao", &["pharmacist"]),
            ),
            (
                "RECEPTIONIST",
                "receptionist Liu",
                TokenClaims::demo("rc-liu", &["receptionist"]),
            ),
            (
                "COMPLIANCE",
                "compliance officer Sun",
                TokenClaims::demo("co-sun", &["compliance_officer"]),
            ),
            (
                "ADMIN",
                "gateway administrator Qian",
                TokenClaims::demo("ad-qian", &["admin"]),
            ),
        ];
        people
            .into_iter()
            .map(|(variable, who, claims)| {
                Ok(DemoIdentity {
                    variable: format!("{variable}_TOKEN"),
                    who,
                    token: key.sign(&claims.to_json())?,
                })
            })
            .collect()
    }

    /// The example requests: what each shows, the command, and what its output contains.
    pub fn examples(&self) -> Vec<Example> {
        let ca = shell_quote(&self.ca_cert);
        let base = format!("https://localhost:{}", self.gateway.proxy_addr.port());
        let admin = format!("http://{}", self.gateway.admin_addr);
        let backend = format!("http://{}", self.backend.addr);
        let wardgate = shell_quote(&self.wardgate);
        let config = shell_quote(&self.dir.path().join("demo.yaml"));
        let receipt = shell_quote(&self.dir.path().join("erasure-receipt.json"));
        let erasure = format!(
            "{wardgate} erasure --admin {admin} --token-file {}",
            shell_quote(&self.dir.path().join("admin-token"))
        );
        let get = |token: &str, path: &str| {
            format!("curl --cacert {ca} -H \"authorization: Bearer ${token}_TOKEN\" {base}{path}")
        };
        let status = |token: &str, path: &str| {
            format!("curl --cacert {ca} -s -o /dev/null -w '%{{http_code}}\\n' -H \"authorization: Bearer ${token}_TOKEN\" {base}{path}")
        };
        let example = |what: &str, command: String, expect: &str| Example {
            what: what.to_owned(),
            command,
            expect: expect.to_owned(),
        };
        vec![
            example("public: hospital information, no token needed", format!("curl --cacert {ca} {base}/api/hospital/info"), "Demo People's Hospital"),
            example("no token on patient data: 401, never forwarded", format!("curl --cacert {ca} -i {base}/api/patients/p-1001"), "401"),
            example("patient: own records", get("PATIENT", "/api/patients/p-1001/records"), "stable angina"),
            example("patient: another patient's records: 403", status("PATIENT", "/api/patients/p-1002/records"), "403"),
            example("doctor: a cardiology patient's records", get("DOCTOR", "/api/departments/cardiology/patients/p-1001/records"), "stable angina"),
            example("doctor: a dermatology patient: 403", status("DOCTOR", "/api/departments/dermatology/patients/p-1002/records"), "403"),
            example(
                "doctor, emergency: break-glass with a reason (time-boxed, logged, counted)",
                format!("curl --cacert {ca} -H \"authorization: Bearer $DOCTOR_TOKEN\" -H 'x-break-glass: unconscious patient in ER, checking allergies' {base}/api/departments/dermatology/patients/p-1002/records"),
                "atopic dermatitis",
            ),
            example("nurse: a cardiology patient's records", get("NURSE", "/api/departments/cardiology/patients/p-1001/records"), "stable angina"),
            example(
                "nurse: writing a prescription: 403",
                format!("curl --cacert {ca} -s -o /dev/null -w '%{{http_code}}\\n' -H \"authorization: Bearer $NURSE_TOKEN\" -H 'content-type: application/json' -d '{{\"drug\":\"aspirin\"}}' {base}/api/departments/cardiology/patients/p-1001/prescriptions"),
                "403",
            ),
            example(
                "doctor: records a patient's identity number and phone; the gateway encrypts them before the backend stores them",
                format!("curl --cacert {ca} -X PUT -H \"authorization: Bearer $DOCTOR_TOKEN\" -H 'content-type: application/json' -d '{{\"id_number\":\"110101199003079999\",\"phone\":\"13800001111\"}}' {base}/api/departments/cardiology/patients/p-1001"),
                "13800001111",
            ),
            example(
                "the backend's own store (demo-only debug endpoint): ciphertext only",
                format!("curl -s {backend}/debug/raw-store/patients/p-1001"),
                "\"phone\":\"wg1:",
            ),
            example(
                "receptionist: the same patient, identity number masked, phone partly hidden",
                get("RECEPTIONIST", "/api/patients/p-1001"),
                "138****1111",
            ),
            example(
                "patient: their own details, in plain",
                get("PATIENT", "/api/patients/p-1001"),
                "110101199003079999",
            ),
            example(
                "compliance: which fields were shown to whom (names only, never values)",
                format!("{wardgate} audit query --config {config} --patient p-1001 --format json | grep -o '\"fields_[a-z]*\":\\[[^]]*\\]' | sort | uniq -c"),
                "\"fields_masked\":[\"id_number\",\"phone\"]",
            ),
            example("pharmacist: a patient's prescriptions", get("PHARMACIST", "/api/patients/p-1002/prescriptions"), "hydrocortisone"),
            example("pharmacist: medical records: 403", status("PHARMACIST", "/api/patients/p-1002/records"), "403"),
            example("receptionist: a patient's appointments", get("RECEPTIONIST", "/api/patients/p-1001/appointments"), "2026-12-01"),
            example("receptionist: medical records: 403", status("RECEPTIONIST", "/api/patients/p-1001/records"), "403"),
            example("compliance officer: consultation statistics", get("COMPLIANCE", "/api/reports/consultations"), "open_consultations"),
            example("compliance officer: clinical data: 403", status("COMPLIANCE", "/api/patients/p-1001/records"), "403"),
            example("administrator: consultation statistics", get("ADMIN", "/api/reports/consultations"), "open_consultations"),
            example("administrator: clinical data: 403", status("ADMIN", "/api/patients/p-1001/records"), "403"),
            example(
                "a consultation message from the patient, posted as JSON",
                format!("curl --cacert {ca} -H \"authorization: Bearer $PATIENT_TOKEN\" -H 'content-type: application/json' -d '{{\"author\":\"patient\",\"text\":\"The tightness is gone today.\"}}' {base}/api/patients/p-1001/consultations/c-2001/messages"),
                "The tightness is gone today.",
            ),
            example("no route matches: 404 from the gateway, never forwarded", format!("curl --cacert {ca} -i {base}/internal/admin"), "no route matches the request"),
            example(
                "an encoded '..' in the path: 400, never forwarded",
                format!("curl --cacert {ca} -i --path-as-is '{base}/api/patients/%2e%2e/p-1001'"),
                "percent-encoded dot segment",
            ),
            example(
                "what the metrics counted",
                format!("curl -s {admin}/metrics | grep -E '^wardgate_(authz_decisions|break_glass)_total'"),
                "wardgate_break_glass_total{role=\"doctor\"} 1",
            ),
            example(
                "compliance: who accessed patient p-1002's data, and was it allowed?",
                format!("{wardgate} audit query --config {config} --patient p-1002"),
                "1 break-glass uses",
            ),
            example(
                "compliance: is the audit trail intact?",
                format!("{wardgate} audit verify --config {config}"),
                "ok: instance",
            ),
            example(
                "erasure: patient p-1002 asks to be deleted; a clerk submits, an officer approves (two people)",
                format!("{erasure} approve \"$({erasure} submit --patient p-1002 --requester 'patient Zhang Min' --channel app --reason 'withdrew consent' --verification-ref 'ID card checked, ticket 4471' --submitted-by clerk-liu --id-only)\" --approver officer-sun"),
                "\"state\": \"approved\"",
            ),
            example(
                "erasure: the signed receipt once every system is erased and verified",
                format!("{erasure} receipt \"$({erasure} list --ids | head -1)\" --wait 30 | tee {receipt}"),
                "\"outcome\": \"completed\"",
            ),
            example(
                "erasure: anyone can check the receipt's signature",
                format!("{wardgate} erasure verify-receipt {receipt} --config {config}"),
                "ok: receipt of er-",
            ),
            example(
                "erasure: the patient's data now answers 410 Gone",
                status("PHARMACIST", "/api/patients/p-1002/prescriptions"),
                "410",
            ),
        ]
    }

    /// What the demo prints: where everything is, a token per role, and `curl` lines that
    /// work as printed (after the exports).
    pub fn instructions(&self) -> Result<String, MintError> {
        let base = format!("https://localhost:{}", self.gateway.proxy_addr.port());
        let admin = format!("http://{}", self.gateway.admin_addr);
        let mut out = String::new();
        let _ = writeln!(out, "wardgate demo is running.\n");
        let _ = writeln!(out, "  gateway (TLS)  {base}");
        let _ = writeln!(out, "  admin          {admin}  (/healthz /readyz /metrics)");
        let _ = writeln!(
            out,
            "  demo backend   http://{}  (in-memory patients, records, consultations)",
            self.backend.addr
        );
        let _ = writeln!(
            out,
            "  files          {}  (demo.yaml, ca.pem, policies, keys, admin-token)\n",
            self.dir.path().display()
        );
        let _ = writeln!(out, "One token per role (valid 8 hours; mint more with `wardgate token mint --role doctor --sub dr-li --department cardiology`).");
        let _ = writeln!(out, "Paste these into your shell first:\n");
        for identity in Demo::identities()? {
            let _ = writeln!(out, "  # {}", identity.who);
            let _ = writeln!(out, "  export {}={}\n", identity.variable, identity.token);
        }
        let _ = writeln!(out, "Then try these (each works as printed):\n");
        for example in self.examples() {
            let _ = writeln!(out, "  # {}\n  {}\n", example.what, example.command);
        }
        let _ = writeln!(
            out,
            "Press Ctrl-C to stop; the temporary folder is removed."
        );
        Ok(out)
    }

    pub async fn stop(self) {
        self.gateway.shutdown().await;
        self.backend.stop();
    }
}

/// Runs the demo until Ctrl-C (or SIGTERM).
pub async fn run(options: DemoOptions) -> anyhow::Result<ExitCode> {
    let _log = crate::logging::init(&config::LogConfig::default());
    let mut signals = Signals::install().context("cannot listen for Ctrl-C")?;
    let demo = Demo::start(&options).await?;
    print!("{}", demo.instructions()?);
    signals.stopped().await;
    demo.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"/._-".contains(&b))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}
