//! The `wardgate` command: parses arguments, then hands over to the subcommand's file in
//! `cli/`, which calls library functions. Errors are printed with their causes; config
//! problems exit with status 2.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

use cli::{block_on, report, DEFAULT_CONFIG};

/// jemalloc rather than glibc's malloc, whose fast-bin consolidation and frees across threads
/// (requests allocate records that the audit writer frees) were about 14% of the full
/// pipeline's CPU; jemalloc's share is about 3% (bench/README.md, "The allocator").
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Check a config file and every file it references; prints `ok` or `file:line:col: problem`.
    Check {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Start a demo consultation backend with the gateway in front of it, on loopback.
    Demo(wardgate::demo::DemoOptions),
    /// Tokens for trying wardgate out.
    #[command(subcommand)]
    Token(cli::token::TokenCommand),
    /// Questions about the access policy.
    #[command(subcommand)]
    Policy(cli::policy::PolicyCommand),
    /// The audit trail: query it, verify it, make its keys.
    #[command(subcommand)]
    Audit(cli::audit::AuditCommand),
    /// Field encryption keys: the key ring and the per-patient data keys.
    #[command(subcommand)]
    Keys(cli::keys::KeysCommand),
    /// Patient erasure requests, through the admin API of a running gateway.
    Erasure(cli::erasure::ErasureArgs),
    /// The semiannual permission review: the report, sign-off, history.
    #[command(subcommand)]
    Review(cli::review::ReviewCommand),
    /// Ask a running gateway's admin listener whether it is alive (`GET /healthz`): exit 0
    /// when it answers 200 within 3 s, 1 otherwise. For container health checks.
    Health {
        #[arg(long, default_value = "http://127.0.0.1:9090/healthz")]
        url: String,
    },
    /// Copy every store of the data directory (a consistent snapshot of each, taken while
    /// the gateway runs) into a new folder, and touch `recovery.backup_marker`.
    Backup {
        #[arg(long, short, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A new folder for the copy.
        #[arg(long)]
        out: PathBuf,
    },
    /// Self-inspection of the deployment: one line per item, PASS, WARN or FAIL, with the
    /// evidence and the fix; exit 1 when anything fails.
    Selfcheck(cli::selfcheck::SelfcheckArgs),
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Run { config } => block_on(cli::gateway::run(config)),
        Command::Check { config } => block_on(cli::gateway::check(config)),
        Command::Health { url } => block_on(cli::gateway::health(url)),
        Command::Demo(options) => block_on(wardgate::demo::run(options)),
        Command::Token(command) => report(cli::token::run(command)),
        Command::Policy(command) => block_on(cli::policy::run(command)),
        Command::Audit(command) => report(cli::audit::run(command)),
        Command::Keys(command) => report(cli::keys::run(command)),
        Command::Erasure(args) => block_on(cli::erasure::run(args)),
        Command::Review(command) => report(cli::review::run(command)),
        Command::Backup { config, out } => report(cli::backup::run(&config, &out)),
        Command::Selfcheck(args) => block_on(cli::selfcheck::run(args)),
    }
}
