//! The subcommands of `wardgate`, one file each, and what they share: loading a config for an
//! offline command (its problems printed, exit status 2) and running a command's work to an
//! exit status with any error printed with its causes.

use std::path::Path;
use std::process::ExitCode;

use wardgate::config;

/// Loads a config for an offline command, or returns from the command with exit status 2
/// (the problems printed by `load_config`).
macro_rules! config_or_exit {
    ($path:expr) => {
        match crate::cli::load_config($path) {
            Ok(loaded) => loaded,
            Err(code) => return Ok(code),
        }
    };
}

pub mod audit;
pub mod backup;
pub mod erasure;
pub mod gateway;
pub mod keys;
pub mod policy;
pub mod review;
pub mod selfcheck;
pub mod token;

/// The default config path of every command that reads one.
pub const DEFAULT_CONFIG: &str = "/etc/wardgate/wardgate.yaml";

/// Loads a config for an offline command; config problems are printed and exit 2.
pub fn load_config(path: &Path) -> Result<config::LoadedConfig, ExitCode> {
    config::load(path).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

/// The exit status of a command's synchronous work; an error is printed with its causes.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    result.unwrap_or_else(|err| {
        eprintln!("wardgate: {err:#}");
        ExitCode::FAILURE
    })
}

/// Runs a command's async work on a runtime of its own, to its exit status.
pub fn block_on(work: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    // On one CPU a single-threaded scheduler does the same work without the bookkeeping
    // that lets idle workers steal tasks.
    let one_cpu = std::thread::available_parallelism().is_ok_and(|n| n.get() == 1);
    let mut builder = if one_cpu {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("wardgate: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    report(runtime.block_on(work))
}
