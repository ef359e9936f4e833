//! `wardgate review`: the semiannual permission review. The report of a period (HTML, and CSV
//! or JSON), the reviewer's sign-off of its decisions, and the history of past sign-offs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// Write the review report for a period: HTML (one self-contained file), and CSV or JSON.
    Report {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        /// A date (2026-05-01), a time (RFC 3339) or a duration back from now (183d).
        #[arg(long)]
        since: String,
        #[arg(long)]
        until: Option<String>,
        #[arg(long)]
        out: PathBuf,
        /// A folder for one CSV file per section.
        #[arg(long)]
        csv: Option<PathBuf>,
        #[arg(long)]
        json: Option<PathBuf>,
        /// en or zh-CN (default: review.language in the config).
        #[arg(long)]
        language: Option<String>,
    },
    /// Record a sign-off: the reviewer, the report's hash and each decision (keep, revoke,
    /// follow_up) from a YAML file `decisions: [{grant, decision, note}]`.
    Sign {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
        #[arg(long)]
        report: PathBuf,
        #[arg(long)]
        reviewer: String,
        #[arg(long)]
        decisions: PathBuf,
    },
    /// Past sign-offs, newest first.
    History {
        #[arg(long, short, default_value = super::DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

pub fn run(command: ReviewCommand) -> anyhow::Result<ExitCode> {
    use wardgate::review;
    let now = std::time::SystemTime::now();
    let now_ms = wardgate::erasure::store::now_ms();
    match command {
        ReviewCommand::Report {
            config,
            since,
            until,
            out,
            csv,
            json,
            language,
        } => {
            let loaded = config_or_exit!(&config);
            let time = |text: &str, what: &str| {
                wardgate::audit::query::parse_time(text, now)
                    .map_err(|err| anyhow::anyhow!("--{what}: {err}"))
            };
            let since_ms = time(&since, "since")?;
            let until_ms = match until {
                Some(until) => time(&until, "until")?,
                None => now_ms,
            };
            let started = std::time::Instant::now();
            let report = review::build(&loaded.config, since_ms, until_ms, now_ms)?;
            let words = review::html::words(
                language
                    .as_deref()
                    .unwrap_or(&loaded.config.review.language),
            );
            std::fs::write(&out, review::html::render(&report, words))
                .with_context(|| format!("cannot write {}", out.display()))?;
            println!(
                "report: {} ({} audit records, {} subjects, {} grants never used, {} break-glass uses) in {:.1?}",
                out.display(),
                report.records,
                report.subjects.len(),
                report.grants.iter().filter(|g| g.uses == 0).count(),
                report.break_glass.len(),
                started.elapsed()
            );
            if let Some(dir) = csv {
                let files = review::write_csv(&report, &dir)?;
                println!("csv: {} files in {}", files.len(), dir.display());
            }
            if let Some(path) = json {
                std::fs::write(&path, serde_json::to_string_pretty(&report)?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                println!("json: {}", path.display());
            }
        }
        ReviewCommand::Sign {
            config,
            report,
            reviewer,
            decisions,
        } => {
            let loaded = config_or_exit!(&config);
            let id = review::sign(
                &wardgate::store::Location::for_tools(&loaded.config)?,
                &report,
                &reviewer,
                &decisions,
                now_ms,
            )?;
            println!("review {id} signed by {reviewer}");
        }
        ReviewCommand::History { config } => {
            let loaded = config_or_exit!(&config);
            let reviews =
                review::store::history(&wardgate::store::Location::for_tools(&loaded.config)?)?;
            if reviews.is_empty() {
                println!("no signed review yet");
            }
            for past in reviews {
                let revoked = past
                    .decisions
                    .iter()
                    .filter(|d| d.decision == "revoke")
                    .count();
                println!(
                    "{}  {}  by {}  period {} .. {}  {} decisions ({} revocations)  report sha256 {}",
                    past.id,
                    review::rows::date(past.signed_at),
                    past.reviewer,
                    &review::rows::date(past.since)[..10],
                    &review::rows::date(past.until)[..10],
                    past.decisions.len(),
                    revoked,
                    &past.report_hash[..16]
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
