//! The `wardgate` command: parses arguments, then hands over to library functions.
//! Errors are printed with their causes; config problems exit with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use wardgate::config;

#[derive(Parser)]
#[command(
    name = "wardgate",
    version,
    about = "Privacy and security gateway for hospital online consultation"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway with a config file.
    Run {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Check a config file and every file it references; prints `ok` or `file:line:col: problem`.
    Check {
        #[arg(long, short, default_value = "/etc/wardgate/wardgate.yaml")]
        config: PathBuf,
    },
    /// Start a demo consultation backend with the gateway in front of it, on loopback.
    Demo(wardgate::demo::DemoOptions),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => check(&config),
        Command::Run { config } => block_on(run(config)),
        Command::Demo(options) => block_on(wardgate::demo::run(options)),
    }
}

fn block_on(work: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wardgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("wardgate: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load(path).and_then(|loaded| wardgate::server::prepare(&loaded).map(|_| ())) {
        Ok(()) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::from(2)
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<ExitCode> {
    let loaded = match config::load(&path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            return Ok(ExitCode::from(2));
        }
    };
    wardgate::logging::init(&loaded.config.log);
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
