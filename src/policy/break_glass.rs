//! Break-glass: a clinician of a configured role reaches a patient outside their department in
//! an emergency by sending a reason in a header. The reason is mandatory (a minimum length),
//! the grant is time-boxed per subject and patient, and every grant is counted and logged so
//! the audit trail and the permission review can list it. Grants live beside the runtime, so
//! a config reload does not cut one short.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::header::{HeaderMap, HeaderName};

use crate::config::{BreakGlassConfig, Invalid};

/// Open grants kept at most; past it expired ones are dropped first, then the oldest.
const MAX_GRANTS: usize = 100_000;

pub struct BreakGlassRules {
    header: HeaderName,
    roles: Vec<String>,
    min_reason_length: usize,
    pub duration: Duration,
}

/// What a request asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum BreakGlassAsk {
    NotAsked,
    /// The header is there but the reason is shorter than required.
    ReasonTooShort {
        min: usize,
    },
    Reason(String),
}

impl BreakGlassRules {
    pub fn build(config: &BreakGlassConfig) -> Result<BreakGlassRules, Vec<Invalid>> {
        let header = HeaderName::from_bytes(config.header.as_bytes()).map_err(|_| {
            vec![Invalid::new(
                "break_glass.header",
                "not a valid header name",
            )]
        })?;
        if config.min_reason_length == 0 {
            return Err(vec![Invalid::new(
                "break_glass.min_reason_length",
                "a reason is mandatory: use at least 1",
            )]);
        }
        Ok(BreakGlassRules {
            header,
            roles: config.roles.clone(),
            min_reason_length: config.min_reason_length,
            duration: config.duration.0,
        })
    }

    pub fn header(&self) -> &HeaderName {
        &self.header
    }

    pub fn ask(&self, headers: &HeaderMap) -> BreakGlassAsk {
        let Some(value) = headers.get(&self.header) else {
            return BreakGlassAsk::NotAsked;
        };
        let reason = String::from_utf8_lossy(value.as_bytes()).trim().to_owned();
        if reason.chars().count() < self.min_reason_length {
            BreakGlassAsk::ReasonTooShort {
                min: self.min_reason_length,
            }
        } else {
            BreakGlassAsk::Reason(reason)
        }
    }

    /// The first of the principal's roles that may use break-glass.
    pub fn eligible_role<'a>(&self, roles: &'a [String]) -> Option<&'a String> {
        roles.iter().find(|role| self.roles.contains(role))
    }
}

struct Grant {
    expires: Instant,
    reason: String,
}

/// Open emergency grants by (subject, patient).
#[derive(Default)]
pub struct BreakGlassGrants {
    grants: Mutex<HashMap<(String, String), Grant>>,
}

impl BreakGlassGrants {
    /// The reason of an open grant, if the subject holds one for the patient.
    pub fn active(&self, subject: &str, patient: &str, now: Instant) -> Option<String> {
        let grants = self.grants.lock().ok()?;
        grants
            .get(&(subject.to_owned(), patient.to_owned()))
            .filter(|grant| grant.expires > now)
            .map(|grant| grant.reason.clone())
    }

    /// Closes every grant for a patient (erasure).
    pub fn revoke_patient(&self, patient: &str) {
        if let Ok(mut grants) = self.grants.lock() {
            grants.retain(|(_, granted), _| granted != patient);
        }
    }

    pub fn open(
        &self,
        subject: &str,
        patient: &str,
        reason: &str,
        duration: Duration,
        now: Instant,
    ) {
        let Ok(mut grants) = self.grants.lock() else {
            return;
        };
        if grants.len() >= MAX_GRANTS {
            grants.retain(|_, grant| grant.expires > now);
            if grants.len() >= MAX_GRANTS {
                if let Some(oldest) = grants
                    .iter()
                    .min_by_key(|(_, g)| g.expires)
                    .map(|(k, _)| k.clone())
                {
                    grants.remove(&oldest);
                }
            }
        }
        grants.insert(
            (subject.to_owned(), patient.to_owned()),
            Grant {
                expires: now + duration,
                reason: reason.to_owned(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grant_expires_after_its_duration() {
        let grants = BreakGlassGrants::default();
        let start = Instant::now();
        grants.open(
            "dr-li",
            "p-1",
            "cardiac arrest in ER",
            Duration::from_secs(60),
            start,
        );
        assert_eq!(
            grants
                .active("dr-li", "p-1", start + Duration::from_secs(59))
                .as_deref(),
            Some("cardiac arrest in ER")
        );
        assert_eq!(
            grants.active("dr-li", "p-1", start + Duration::from_secs(61)),
            None
        );
        assert_eq!(grants.active("dr-li", "p-2", start), None);
        assert_eq!(grants.active("dr-wu", "p-1", start), None);
    }
}
