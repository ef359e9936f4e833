//! `wardgate policy explain`: how a request would be routed, identified and decided, and by
//! which rule, from the config alone.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Show how a request would be routed, identified and decided, and by which rule.
    Explain(ExplainArgs),
}

#[derive(clap::Args)]
pub struct ExplainArgs {
    #[arg(long, short)]
    config: PathBuf,
    /// The bearer token (without "Bearer "); none for an anonymous request.
    #[arg(long)]
    token: Option<String>,
    #[arg(long, default_value = "GET")]
    method: String,
    /// The request path, with its query if any.
    #[arg(long)]
    path: String,
    /// Extra request headers, as `name: value` (such as the break-glass header).
    #[arg(long = "header")]
    headers: Vec<String>,
}

pub async fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Explain(args) => explain(args).await,
    }
}

async fn explain(args: ExplainArgs) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(&args.config);
    let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
        .context("invalid --method")?;
    let mut headers = HeaderMap::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .context("a --header is written as `name: value`")?;
        headers.insert(
            HeaderName::from_bytes(name.trim().as_bytes()).context("invalid header name")?,
            HeaderValue::from_str(value.trim()).context("invalid header value")?,
        );
    }
    let report = wardgate::policy::explain(
        &loaded,
        args.token.as_deref(),
        &method,
        &args.path,
        &headers,
    )
    .await?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}
