//! The semiannual permission review: a report compliance staff can act on (`report.rs`
//! gathers it from the audit trail, the policy and the erasure store; `html.rs` renders it;
//! CSV and JSON too), sign-off with decisions, and the history of past reviews (`store.rs`),
//! which the next report checks: was each revocation carried out?

pub mod html;
pub mod report;
pub mod rows;
pub mod store;

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use report::Report;
pub use store::{Decision, SignedReview};

use crate::config::Config;
use crate::store::{Location, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the config has no `policy` section: there is nothing to review")]
    NoPolicy,
    #[error("{0}")]
    Policy(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot read {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("{0} is not a wardgate review report (no period in it)")]
    NotAReport(PathBuf),
    #[error("{0}: {1}")]
    Decisions(PathBuf, String),
}

/// Builds the report for `[since_ms, until_ms)` from what the config names.
pub fn build(
    config: &Config,
    since_ms: i64,
    until_ms: i64,
    now_ms: i64,
) -> Result<Report, ReviewError> {
    let policy = config.policy.as_ref().ok_or(ReviewError::NoPolicy)?;
    let lines = crate::policy::read_lines(&policy.policy).map_err(|problems| {
        ReviewError::Policy(
            problems
                .iter()
                .map(|problem| match &problem.elsewhere {
                    Some((file, line)) => format!("{}:{line}: {}", file.display(), problem.message),
                    None => format!("{}: {}", problem.key, problem.message),
                })
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|err| ReviewError::Read(path.to_owned(), err))
    };
    let hash = crate::policy::policy_hash(&read(&policy.model)?, &read(&policy.policy)?);
    let location = Location::for_tools(config)?;
    Ok(report::gather(&report::Inputs {
        stores: &location,
        policy_lines: &lines,
        policy_hash: &hash,
        since_ms,
        until_ms,
        dormant_after_days: config.review.dormant_after.0.as_secs() / 86_400,
        now_ms,
    })?)
}

/// A CSV section: file name, header, rows.
type Section<'a> = (&'a str, Vec<&'a str>, Vec<Vec<String>>);

/// Writes one CSV file per section into `dir`; returns the files written.
pub fn write_csv(report: &Report, dir: &Path) -> Result<Vec<PathBuf>, ReviewError> {
    std::fs::create_dir_all(dir).map_err(|err| ReviewError::Write(dir.to_owned(), err))?;
    let subject_header = vec![
        "subject",
        "roles",
        "departments",
        "first_activity",
        "last_activity",
        "requests",
        "denied",
    ];
    let grants = rows::grants(report)
        .into_iter()
        .map(|mut row| {
            let candidate = row[2] == "0";
            row.push(candidate.to_string());
            row
        })
        .collect();
    let sections: Vec<Section> = vec![
        (
            "subjects",
            subject_header.clone(),
            rows::subjects(&report.subjects),
        ),
        (
            "dormant_subjects",
            subject_header,
            rows::subjects(&report.dormant),
        ),
        (
            "grants",
            vec!["role", "grant", "uses", "revocation_candidate"],
            grants,
        ),
        (
            "ungranted_roles",
            vec!["subject", "role"],
            rows::ungranted(report),
        ),
        (
            "break_glass",
            vec!["time", "subject", "patient", "route", "reason"],
            rows::break_glass(report),
        ),
        (
            "denials",
            vec!["subject", "resource", "count"],
            rows::denials(report),
        ),
        (
            "enumeration_alerts",
            vec!["time", "subject", "patient"],
            rows::enumeration(report),
        ),
        (
            "erasures",
            vec!["id", "state", "received", "due", "finished", "on_time"],
            rows::erasures(report, "true", "false"),
        ),
    ];
    let mut written = Vec::new();
    for (name, header, rows) in sections {
        let path = dir.join(format!("{name}.csv"));
        let failed = |err: csv::Error| {
            ReviewError::Write(path.clone(), std::io::Error::other(err.to_string()))
        };
        let mut writer = csv::Writer::from_path(&path).map_err(failed)?;
        writer.write_record(&header).map_err(failed)?;
        for row in rows {
            writer.write_record(&row).map_err(failed)?;
        }
        writer
            .flush()
            .map_err(|err| ReviewError::Write(path.clone(), err))?;
        written.push(path);
    }
    Ok(written)
}

/// The decisions file of a sign-off: `decisions: [{grant, decision, note}]`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DecisionsFile {
    decisions: Vec<Decision>,
}

/// Records a sign-off of a report file; returns the review's id.
pub fn sign(
    stores: &Location,
    report_file: &Path,
    reviewer: &str,
    decisions_file: &Path,
    now_ms: i64,
) -> Result<i64, ReviewError> {
    let report =
        std::fs::read(report_file).map_err(|err| ReviewError::Read(report_file.to_owned(), err))?;
    let text = String::from_utf8_lossy(&report);
    let period = text
        .split("<meta name=\"wardgate-period\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .and_then(|value| value.split_once(','))
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| ReviewError::NotAReport(report_file.to_owned()))?;
    let decisions_text = std::fs::read_to_string(decisions_file)
        .map_err(|err| ReviewError::Read(decisions_file.to_owned(), err))?;
    let file: DecisionsFile = serde_yaml::from_str(&decisions_text)
        .map_err(|err| ReviewError::Decisions(decisions_file.to_owned(), err.to_string()))?;
    for (i, decision) in file.decisions.iter().enumerate() {
        if !matches!(decision.decision.as_str(), "keep" | "revoke" | "follow_up") {
            return Err(ReviewError::Decisions(
                decisions_file.to_owned(),
                format!(
                    "decisions[{i}].decision: {:?}; use keep, revoke or follow_up",
                    decision.decision
                ),
            ));
        }
    }
    let hash = hex::encode(Sha256::digest(&report));
    Ok(store::sign(
        stores,
        reviewer,
        &hash,
        period,
        &file.decisions,
        now_ms,
    )?)
}
