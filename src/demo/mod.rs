//! `wardgate demo`: the one command a newcomer runs. It makes a temporary folder with a
//! certificate authority and a server certificate, starts the demo consultation backend on
//! loopback and the gateway in front of it (with `config/demo.yaml`), prints ready-to-paste
//! `curl` lines, and on Ctrl-C stops everything and removes the folder.

pub mod backend;
pub mod pki;

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

/// The demo's config, as shipped in `config/demo.yaml`.
pub const DEMO_CONFIG: &str = include_str!("../../config/demo.yaml");
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
        Ok(Demo {
            gateway,
            backend,
            dir,
            ca_cert,
        })
    }

    /// What the demo prints: where everything is, and `curl` lines that work as printed.
    pub fn instructions(&self) -> String {
        let ca = shell_quote(&self.ca_cert);
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
            "  files          {}  (demo.yaml, ca.pem, server certificate)\n",
            self.dir.path().display()
        );
        let _ = writeln!(out, "Try these (each works as printed):\n");
        let examples: [(&str, String); 8] = [
            ("a patient, through TLS and the gateway", format!("curl --cacert {ca} {base}/api/patients/p-1001")),
            ("the patient's medical records", format!("curl --cacert {ca} {base}/api/patients/p-1001/records")),
            (
                "a consultation message, posted as JSON",
                format!("curl --cacert {ca} -H 'content-type: application/json' -d '{{\"author\":\"patient\",\"text\":\"The tightness is gone today.\"}}' {base}/api/consultations/c-2001/messages"),
            ),
            ("the consultation's messages, with the new one", format!("curl --cacert {ca} {base}/api/consultations/c-2001/messages")),
            ("no route matches: 404 from the gateway, never forwarded", format!("curl --cacert {ca} -i {base}/internal/admin")),
            ("an encoded '..' in the path: 400, never forwarded", format!("curl --cacert {ca} -i --path-as-is '{base}/api/patients/%2e%2e/p-1001'")),
            ("the response headers the gateway adds", format!("curl --cacert {ca} -s -D - -o /dev/null {base}/api/patients/p-1002")),
            ("what the metrics counted", format!("curl -s {admin}/metrics | grep '^wardgate_requests_total'")),
        ];
        for (what, line) in examples {
            let _ = writeln!(out, "  # {what}\n  {line}\n");
        }
        let _ = writeln!(
            out,
            "Press Ctrl-C to stop; the temporary folder is removed."
        );
        out
    }

    pub async fn stop(self) {
        self.gateway.shutdown().await;
        self.backend.stop();
    }
}

/// Runs the demo until Ctrl-C (or SIGTERM).
pub async fn run(options: DemoOptions) -> anyhow::Result<ExitCode> {
    crate::logging::init(&config::LogConfig::default());
    let mut signals = Signals::install().context("cannot listen for Ctrl-C")?;
    let demo = Demo::start(&options).await?;
    print!("{}", demo.instructions());
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
