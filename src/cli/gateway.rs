//! `wardgate run`, `wardgate check` and `wardgate health`: the gateway itself, its config
//! checked the way `run` would load it, and a health probe for container runtimes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use wardgate::config;

/// Runs the gateway until SIGTERM or SIGINT (SIGHUP reloads); config problems exit 2.
pub async fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(&path);
    let _log = wardgate::logging::init(&loaded.config.log);
    let signals = wardgate::server::Signals::install().context("cannot listen for signals")?;
    let gateway = match wardgate::RunningGateway::start(loaded).await {
        Ok(gateway) => gateway,
        Err(wardgate::StartError::Config(errors)) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
        Err(err) => return Err(err.into()),
    };
    gateway.run_until_signalled(signals).await;
    Ok(ExitCode::SUCCESS)
}

/// Loads the config and builds what `run` builds before it binds, so every file the config
/// references is read: `ok`, or every problem with exit status 2.
pub async fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let result = match config::load(&path) {
        Ok(loaded) => wardgate::server::prepare(&loaded).await.map(|_| ()),
        Err(errors) => Err(errors),
    };
    Ok(match result {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
    })
}

/// Asks the admin listener's health URL: exit 0 when it answers with success within 3 s.
pub async fn health(url: String) -> anyhow::Result<ExitCode> {
    let uri: hyper::Uri = url.parse().with_context(|| format!("invalid URL {url}"))?;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let answer = tokio::time::timeout(std::time::Duration::from_secs(3), client.get(uri)).await;
    match answer {
        Ok(Ok(response)) if response.status().is_success() => {
            println!("ok");
            Ok(ExitCode::SUCCESS)
        }
        Ok(Ok(response)) => {
            println!("{url} answered {}", response.status());
            Ok(ExitCode::FAILURE)
        }
        Ok(Err(err)) => {
            println!("{url}: {err}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            println!("{url}: no answer within 3 s");
            Ok(ExitCode::FAILURE)
        }
    }
}
