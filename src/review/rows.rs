//! The report's tables as rows of text, shared by the HTML page and the CSV files, so both
//! always show the same cells.

use super::report::{Report, SubjectRow};

pub use crate::store::rfc3339 as date;

pub fn subjects(rows: &[SubjectRow]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| {
            vec![
                r.subject.clone(),
                r.roles.join(", "),
                r.departments.join(", "),
                date(r.first_ms),
                date(r.last_ms),
                r.requests.to_string(),
                r.denied.to_string(),
            ]
        })
        .collect()
}

/// Role, grant, uses.
pub fn grants(report: &Report) -> Vec<Vec<String>> {
    report
        .grants
        .iter()
        .map(|g| {
            vec![
                g.grant.role.clone(),
                g.grant.line.clone(),
                g.uses.to_string(),
            ]
        })
        .collect()
}

pub fn ungranted(report: &Report) -> Vec<Vec<String>> {
    report
        .ungranted_roles
        .iter()
        .map(|u| vec![u.subject.clone(), u.role.clone()])
        .collect()
}

pub fn break_glass(report: &Report) -> Vec<Vec<String>> {
    report
        .break_glass
        .iter()
        .map(|b| {
            vec![
                b.time.clone(),
                b.subject.clone(),
                b.patient.clone(),
                b.route.clone(),
                b.reason.clone(),
            ]
        })
        .collect()
}

pub fn denials(report: &Report) -> Vec<Vec<String>> {
    report
        .denials
        .iter()
        .map(|d| vec![d.subject.clone(), d.resource.clone(), d.count.to_string()])
        .collect()
}

pub fn enumeration(report: &Report) -> Vec<Vec<String>> {
    report
        .enumeration_alerts
        .iter()
        .map(|e| vec![e.time.clone(), e.subject.clone(), e.patient.clone()])
        .collect()
}

/// Id, state, received, due, finished, on time (`yes` / `no` in the reader's words).
pub fn erasures(report: &Report, yes: &str, no: &str) -> Vec<Vec<String>> {
    report
        .erasures
        .iter()
        .map(|e| {
            vec![
                e.id.clone(),
                e.state.clone(),
                date(e.received_ms),
                date(e.due_ms),
                e.finished_ms.map(date).unwrap_or_default(),
                (if e.on_time { yes } else { no }).to_owned(),
            ]
        })
        .collect()
}
