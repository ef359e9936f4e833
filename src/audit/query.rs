//! `wardgate audit query`: who accessed what, when, and was it allowed. The officer types the
//! patient id they know; the pseudonym is computed here with the gateway's key. Output is a
//! table for reading, or JSON / CSV for tooling, and ends with a one-line summary.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use super::record::AuditRecord;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// `2026-11-01`, an RFC 3339 time, or a duration back from now (`48h`, `7d`), as Unix ms.
pub fn parse_time(text: &str, now: SystemTime) -> Result<i64, String> {
    let to_ms = |time: SystemTime| {
        time.duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or_default()
    };
    if let Ok(duration) = humantime::parse_duration(text) {
        return Ok(to_ms(now.checked_sub(duration).unwrap_or(UNIX_EPOCH)));
    }
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    humantime::parse_rfc3339_weak(&full)
        .map(to_ms)
        .map_err(|_| format!("{text:?} is not a date (2026-11-01), a time (2026-11-01T08:00:00Z) or a duration (48h)"))
}

/// The one-line summary that closes every query.
pub fn summary(records: &[AuditRecord]) -> String {
    let subjects: BTreeSet<&str> = records
        .iter()
        .filter_map(|r| r.subject.as_deref())
        .collect();
    let denied = records.iter().filter(|r| r.decision != "allow").count();
    let break_glass = records.iter().filter(|r| r.break_glass.is_some()).count();
    format!(
        "{} records, {} distinct subjects, {} denied or refused, {} break-glass uses",
        records.len(),
        subjects.len(),
        denied,
        break_glass
    )
}

pub fn render(records: &[AuditRecord], format: Format) -> String {
    let mut out = String::new();
    match format {
        Format::Json => {
            for record in records {
                let _ = writeln!(out, "{}", serde_json::to_string(record).unwrap_or_default());
            }
        }
        Format::Csv => {
            let _ = writeln!(out, "time,subject,roles,method,route,template,resource,action,decision,status,rule,reason,break_glass,request_id,instance,seq");
            for r in records {
                let fields = [
                    r.time.clone(),
                    r.subject.clone().unwrap_or_default(),
                    r.roles.join(" "),
                    r.method.clone(),
                    r.route.clone().unwrap_or_default(),
                    r.template.clone().unwrap_or_default(),
                    r.resource.clone().unwrap_or_default(),
                    r.action.clone().unwrap_or_default(),
                    r.decision.clone(),
                    r.status.to_string(),
                    r.rule.clone().unwrap_or_default(),
                    r.reason.clone().unwrap_or_default(),
                    r.break_glass.clone().unwrap_or_default(),
                    r.request_id.clone(),
                    r.instance.clone(),
                    r.seq.to_string(),
                ];
                let quoted: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                let _ = writeln!(out, "{}", quoted.join(","));
            }
        }
        Format::Table => {
            let _ = writeln!(
                out,
                "{:<24} {:<16} {:<20} {:<7} {:<26} {:<16} {:<15} {:>6}  NOTE",
                "TIME", "SUBJECT", "ROLES", "METHOD", "ROUTE", "ACCESS", "DECISION", "STATUS"
            );
            for r in records {
                let access = format!(
                    "{}:{}",
                    r.resource.as_deref().unwrap_or("-"),
                    r.action.as_deref().unwrap_or("-")
                );
                let note = match (&r.break_glass, &r.reason) {
                    (Some(reason), _) => format!("BREAK-GLASS: {reason}"),
                    (None, Some(reason)) => reason.clone(),
                    (None, None) => String::new(),
                };
                let _ = writeln!(
                    out,
                    "{:<24} {:<16} {:<20} {:<7} {:<26} {:<16} {:<15} {:>6}  {}",
                    r.time,
                    r.subject.as_deref().unwrap_or("-"),
                    r.roles.join(","),
                    r.method,
                    r.route.as_deref().unwrap_or("-"),
                    access,
                    r.decision,
                    r.status,
                    note
                );
            }
        }
    }
    out
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn times_are_dates_times_or_durations() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(
            parse_time("48h", now),
            Ok(1_800_000_000_000 - 48 * 3_600_000)
        );
        assert_eq!(parse_time("2026-11-01", now), Ok(1_793_491_200_000));
        assert!(parse_time("yesterday", now).is_err());
    }
}
