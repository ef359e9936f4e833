//! `wardgate audit`: the audit trail offline. Verify its hash chains and signed checkpoints,
//! query who accessed a patient's data (or what a subject did), and make its two keys.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use wardgate::audit::query::{self, Format};
use wardgate::audit::store::{AuditReader, QueryFilter};
use wardgate::config::LoadedConfig;
use wardgate::store::Location;

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Walk every chain and checkpoint; exit 0 when intact, 1 at the first sign of tampering.
    Verify {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// Start at this sequence number (its link to the one before is not checked).
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Who accessed a patient's data (or what a subject did), when, and was it allowed.
    Query(QueryArgs),
    /// Make the pseudonym key and the checkpoint signing key in a folder (never overwrites).
    Keygen {
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct QueryArgs {
    #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
    config: PathBuf,
    /// The patient id as the hospital knows it; its pseudonym is computed here. Without
    /// --patient or --subject, --since is required and the whole period is scanned.
    #[arg(long, required_unless_present_any = ["subject", "since"])]
    patient: Option<String>,
    #[arg(long)]
    subject: Option<String>,
    /// A date (2026-11-01), a time (RFC 3339) or a duration back from now (48h, 7d).
    #[arg(long)]
    since: Option<String>,
    #[arg(long)]
    until: Option<String>,
    /// allow, deny, unauthenticated, unmatched, rejected or unavailable.
    #[arg(long)]
    decision: Option<String>,
    /// Only break-glass accesses.
    #[arg(long)]
    break_glass: bool,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify { config, from } => verify(&config, from),
        AuditCommand::Query(args) => query(args),
        AuditCommand::Keygen { dir } => keygen(&dir),
    }
}

fn verify(path: &Path, from: u64) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(path);
    let key = wardgate::audit::load_signing_key(&loaded.config.audit.signing_key_file)
        .map_err(anyhow::Error::msg)?;
    let verification =
        wardgate::audit::verify::verify(&open_reader(&loaded)?, &key.verifying_key(), from)?;
    println!("{verification}");
    Ok(if verification.problem.is_some() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn query(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(&args.config);
    let key = wardgate::identity::read_secret(&loaded.config.audit.pseudonym_key_file, 32)
        .map_err(anyhow::Error::msg)?;
    let pseudonyms = wardgate::audit::Pseudonymizer::new(key);
    let now = std::time::SystemTime::now();
    let time = |text: Option<String>, what: &str| -> anyhow::Result<Option<i64>> {
        text.map(|t| query::parse_time(&t, now).map_err(|err| anyhow::anyhow!("--{what}: {err}")))
            .transpose()
    };
    let filter = QueryFilter {
        patient: args.patient.map(|id| pseudonyms.pseudonym(&id)),
        subject: args.subject,
        since_ms: time(args.since, "since")?,
        until_ms: time(args.until, "until")?,
        decision: args.decision,
        break_glass_only: args.break_glass,
        limit: None,
    };
    let records = open_reader(&loaded)?.query(&filter)?;
    print!("{}", query::render(&records, args.format));
    let summary = query::summary(&records);
    match args.format {
        Format::Table => println!("\n{summary}"),
        Format::Json | Format::Csv => eprintln!("{summary}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn keygen(dir: &Path) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let (pseudonym, signing) = wardgate::audit::keys::generate(dir)?;
    println!("pseudonym key:  {}", pseudonym.display());
    println!("signing key:    {}", signing.display());
    println!("Keep both with the config; back them up with the data directory (a lost signing key cannot sign new checkpoints, a lost pseudonym key makes patients unsearchable).");
    Ok(ExitCode::SUCCESS)
}

fn open_reader(loaded: &LoadedConfig) -> anyhow::Result<AuditReader> {
    Ok(AuditReader::open(Location::for_tools(&loaded.config)?)?)
}
