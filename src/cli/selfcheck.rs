//! `wardgate selfcheck`: the self-inspection of a deployment, from its config and, with
//! `--admin`, from the running gateway (its metrics and a TLS handshake with its listener);
//! printed one item a line, and as JSON and one HTML page on request.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(clap::Args)]
pub struct SelfcheckArgs {
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// The running gateway's admin listener, to inspect it live.
    #[arg(long)]
    admin: Option<String>,
    #[arg(long)]
    token_file: Option<PathBuf>,
    /// The running gateway's proxy listener, to handshake with (default: server.listen,
    /// when it names a port).
    #[arg(long)]
    proxy: Option<std::net::SocketAddr>,
    /// Also write the items as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also write the inspection as one HTML page.
    #[arg(long)]
    out: Option<PathBuf>,
    /// en or zh-CN (default: review.language in the config).
    #[arg(long)]
    language: Option<String>,
}

pub async fn run(args: SelfcheckArgs) -> anyhow::Result<ExitCode> {
    use wardgate::selfcheck::{self, Status};
    let SelfcheckArgs {
        config,
        admin,
        token_file,
        proxy,
        json,
        out,
        language,
    } = args;
    let loaded = config_or_exit!(&config);
    let live = match admin {
        None => None,
        Some(url) => {
            let token = token_file.ok_or_else(|| anyhow::anyhow!("--admin needs --token-file"))?;
            let client = wardgate::admin::client::AdminClient::new(&url, &token)?;
            let listen = loaded.config.server.listen;
            let proxy = proxy.or_else(|| {
                (listen.port() != 0).then(|| {
                    let ip = if listen.ip().is_unspecified() {
                        std::net::IpAddr::from([127, 0, 0, 1])
                    } else {
                        listen.ip()
                    };
                    std::net::SocketAddr::new(ip, listen.port())
                })
            });
            let handshakes = match proxy {
                Some(addr) => selfcheck::handshakes(&loaded.config, addr).await,
                None => None,
            };
            Some(selfcheck::Live {
                metrics: client
                    .call(http::Method::GET, "/metrics", None)
                    .await
                    .map_err(|err| err.to_string()),
                handshakes,
            })
        }
    };
    let language = language.unwrap_or_else(|| loaded.config.review.language.clone());
    let inspection =
        tokio::task::spawn_blocking(move || selfcheck::inspect(&loaded.config, live.as_ref()))
            .await?;
    let items = &inspection.items;
    for item in items {
        println!("{item}");
    }
    let count = |status| items.iter().filter(|i| i.status == status).count();
    println!(
        "\n{} items: {} pass, {} warn, {} fail",
        items.len(),
        count(Status::Pass),
        count(Status::Warn),
        count(Status::Fail)
    );
    match &inspection.changes {
        Some(changes) => println!(
            "since the previous inspection: fixed {:?}, new {:?}, still open {}",
            changes.fixed,
            changes.new,
            changes.still_open.len()
        ),
        None => println!("first inspection recorded"),
    }
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_string_pretty(items)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = out {
        let page = selfcheck::html::render(
            items,
            inspection.changes.as_ref(),
            &language,
            inspection.at_ms,
        );
        std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(if count(Status::Fail) > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
