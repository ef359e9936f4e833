//! The patient-enumeration detector: bulk reading of records is how patient data leaks, so a
//! subject that touches more distinct patients in a window than any of its roles allows is
//! throttled (new patients are refused until the window ends; patients already touched stay
//! reachable, so care in progress goes on) and flagged once per window.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::EnumerationConfig;

/// Subjects tracked at most; expired windows are dropped first, then the oldest.
const MAX_SUBJECTS: usize = 100_000;

pub struct EnumerationDetector {
    pub config: EnumerationConfig,
    subjects: Mutex<HashMap<String, Window>>,
    hasher: std::collections::hash_map::RandomState,
}

struct Window {
    started: Instant,
    patients: HashSet<u64>,
    alerted: bool,
}

/// What a touch of a patient means for the subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    Allowed,
    /// Over the limit: refused until the window ends. `first` for the touch that crossed it
    /// (the one that raises the alert).
    Throttled {
        retry_after: Duration,
        limit: usize,
        first: bool,
    },
}

impl EnumerationDetector {
    pub fn new(config: &EnumerationConfig) -> EnumerationDetector {
        EnumerationDetector {
            config: config.clone(),
            subjects: Mutex::new(HashMap::new()),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// The most permissive limit of the roles, or `default`; `None`: not watched.
    fn limit(&self, roles: &[String]) -> Option<usize> {
        roles
            .iter()
            .filter_map(|role| self.config.max_patients.get(role).copied())
            .max()
            .or_else(|| self.config.max_patients.get("default").copied())
    }

    pub fn touch(&self, subject: &str, roles: &[String], patient: impl Hash) -> Touch {
        let Some(limit) = self.limit(roles) else {
            return Touch::Allowed;
        };
        let window = self.config.window.0;
        let patient = self.hasher.hash_one(patient);
        let now = Instant::now();
        let Ok(mut subjects) = self.subjects.lock() else {
            return Touch::Allowed;
        };
        if subjects.len() >= MAX_SUBJECTS && !subjects.contains_key(subject) {
            make_room(&mut subjects, window, now);
        }
        let state = subjects
            .entry(subject.to_owned())
            .or_insert_with(|| Window {
                started: now,
                patients: HashSet::new(),
                alerted: false,
            });
        if now.duration_since(state.started) >= window {
            *state = Window {
                started: now,
                patients: HashSet::new(),
                alerted: false,
            };
        }
        if state.patients.contains(&patient) {
            return Touch::Allowed;
        }
        if state.patients.len() < limit {
            state.patients.insert(patient);
            return Touch::Allowed;
        }
        let first = !state.alerted;
        state.alerted = true;
        Touch::Throttled {
            retry_after: window.saturating_sub(now.duration_since(state.started)),
            limit,
            first,
        }
    }

    /// Housekeeping: forgets subjects whose window is over.
    pub fn evict_expired(&self) {
        let window = self.config.window.0;
        if let Ok(mut subjects) = self.subjects.lock() {
            let now = Instant::now();
            subjects.retain(|_, state| now.duration_since(state.started) < window);
        }
    }
}

fn make_room(subjects: &mut HashMap<String, Window>, window: Duration, now: Instant) {
    subjects.retain(|_, state| now.duration_since(state.started) < window);
    if subjects.len() >= MAX_SUBJECTS {
        if let Some(oldest) = subjects
            .iter()
            .min_by_key(|(_, state)| state.started)
            .map(|(subject, _)| subject.clone())
        {
            subjects.remove(&oldest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;

    #[test]
    fn crossing_the_limit_throttles_new_patients_once_flagged() {
        let detector = EnumerationDetector::new(&EnumerationConfig {
            window: HumanDuration(Duration::from_secs(600)),
            max_patients: [("doctor".to_owned(), 3), ("default".to_owned(), 1)]
                .into_iter()
                .collect(),
        });
        let doctor = ["doctor".to_owned()];
        for patient in ["p-1", "p-2", "p-3", "p-1"] {
            assert_eq!(detector.touch("dr", &doctor, patient), Touch::Allowed);
        }
        let Touch::Throttled {
            first,
            limit,
            retry_after,
        } = detector.touch("dr", &doctor, "p-4")
        else {
            panic!("not throttled");
        };
        assert!(first && limit == 3 && retry_after <= Duration::from_secs(600));
        assert!(matches!(
            detector.touch("dr", &doctor, "p-5"),
            Touch::Throttled { first: false, .. }
        ));
        assert_eq!(
            detector.touch("dr", &doctor, "p-2"),
            Touch::Allowed,
            "known patients stay reachable"
        );
        // Another role falls back to the default.
        let clerk = ["clerk".to_owned()];
        assert_eq!(detector.touch("ck", &clerk, "p-1"), Touch::Allowed);
        assert!(matches!(
            detector.touch("ck", &clerk, "p-2"),
            Touch::Throttled { .. }
        ));
    }
}
