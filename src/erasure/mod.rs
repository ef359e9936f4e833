//! Patient erasure workflows. A request (patient, requester, channel, reason, the identity
//! check done) is persisted before it is acknowledged, approved by a second person, then
//! carried out by the worker (`worker.rs`) in every configured system through its connector
//! (`connector.rs`) and by the gateway's own steps: a tombstone (the patient's data answers
//! 410 from then on), the patient's data key shredded (every ciphertext anywhere, backups
//! included, becomes unreadable), and the gateway's caches purged. Each system's deletion is
//! then verified; data under legal hold is kept and said so. The outcome is a signed receipt
//! (`receipt.rs`). Every transition is in the store (`store.rs`) before it is acted on.
//!
//! ```text
//! received -> approved -> executing -> verifying -> completed | partially_retained | failed
//! received -> rejected;  received | approved -> cancelled
//! ```

pub mod connector;
pub mod ledger;
pub mod receipt;
pub mod store;
mod worker;

use std::collections::HashSet;
use std::sync::RwLock;

use ed25519_dalek::SigningKey;
use serde::Deserialize;
use tokio::sync::Notify;

pub use store::{ErasureStore, Request, Step};
pub use worker::spawn;

use crate::config::{ErasureConfig, Invalid};
use crate::identity::is_plain_value;
use crate::store::{Location, StoreError};

/// A new request, as the admin API receives it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submission {
    pub patient_id: String,
    /// Who asks (the patient, a guardian, ...).
    pub requester: String,
    /// How the request came in (app, counter, mail).
    pub channel: String,
    pub reason: String,
    /// A reference to the identity verification done for the requester.
    pub verification_ref: String,
    /// The staff member entering the request.
    pub submitted_by: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("{0}")]
    Invalid(String),
    #[error("no erasure request {0}")]
    NotFound(String),
    #[error("the request is {state}; this needs it to be {needed}")]
    WrongState { state: String, needed: String },
    #[error("two-person rule: the approver must not be the submitter ({0})")]
    SamePerson(String),
    #[error("the erasure store failed: {0}")]
    Store(#[from] StoreError),
}

pub struct Erasure {
    pub config: ErasureConfig,
    pub store: ErasureStore,
    connectors: Vec<connector::Connector>,
    client: connector::HttpClient,
    signing_key: SigningKey,
    /// Pseudonyms of erased patients: their data answers 410.
    erased: RwLock<HashSet<String>>,
    /// Erased patients, apart from the data directory (`erasure.ledger_file`).
    pub ledger: Option<ledger::Ledger>,
    /// Wakes the worker when there is new work.
    pub wake: Notify,
}

impl Erasure {
    /// Opens the store where the stores live; a failure names the config key to look at.
    pub fn open(
        location: &Location,
        config: &ErasureConfig,
        signing_key: SigningKey,
    ) -> Result<Erasure, Vec<Invalid>> {
        let store = ErasureStore::open(location.clone()).map_err(|err| {
            let key = match location {
                Location::Shared(_) => "shared_store.postgres",
                Location::DataDir(_) => "erasure",
            };
            vec![Invalid::new(key, err.to_string())]
        })?;
        let mut connectors = Vec::new();
        let mut problems = Vec::new();
        for (name, system) in &config.systems {
            match connector::Connector::build(name, system) {
                Ok(connector) => connectors.push(connector),
                Err(mut found) => problems.append(&mut found),
            }
        }
        let client = connector::client(connectors.iter().any(connector::Connector::uses_https))?;
        if !problems.is_empty() {
            return Err(problems);
        }
        let mut erased: HashSet<String> = store
            .erased_patients()
            .map_err(|err| vec![Invalid::new("erasure", err.to_string())])?
            .into_iter()
            .collect();
        let ledger = config.ledger_file.as_deref().map(ledger::Ledger::new);
        if let Some(ledger) = &ledger {
            let listed = ledger
                .patients()
                .map_err(|err| vec![Invalid::new("erasure.ledger_file", err.to_string())])?;
            let mut restored = 0;
            for patient_ref in listed {
                if !erased.contains(&patient_ref) {
                    store
                        .tombstone(&patient_ref, "ledger")
                        .map_err(|err| vec![Invalid::new("erasure", err.to_string())])?;
                    erased.insert(patient_ref);
                    restored += 1;
                }
            }
            if restored > 0 {
                tracing::warn!(
                    patients = restored,
                    "erased patients missing from the erasure store (a restored backup?) are erased again from the ledger"
                );
            }
        }
        Ok(Erasure {
            config: config.clone(),
            store,
            connectors,
            client,
            signing_key,
            erased: RwLock::new(erased),
            ledger,
            wake: Notify::new(),
        })
    }

    /// Every erased patient (by pseudonym).
    pub fn erased_patients(&self) -> Vec<String> {
        self.erased
            .read()
            .map(|erased| erased.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the patient (by pseudonym) was erased.
    pub fn is_erased(&self, patient_ref: &str) -> bool {
        self.erased
            .read()
            .is_ok_and(|erased| !erased.is_empty() && erased.contains(patient_ref))
    }

    pub fn has_erased_patients(&self) -> bool {
        self.erased.read().is_ok_and(|erased| !erased.is_empty())
    }

    /// Reads the erased patients again when the store holds more than are known here
    /// (another replica erased someone): their data answers 410 here too.
    pub fn refresh_erased(&self) -> Result<(), StoreError> {
        let known = self.erased.read().map_or(0, |erased| erased.len());
        if self.store.erased_count()? > known {
            let stored = self.store.erased_patients()?;
            if let Ok(mut erased) = self.erased.write() {
                erased.extend(stored);
            }
        }
        Ok(())
    }

    fn mark_erased(&self, patient_ref: &str) {
        if let Ok(mut erased) = self.erased.write() {
            erased.insert(patient_ref.to_owned());
        }
    }

    /// Persists a new request (state `received`) with its steps; returns it once committed.
    pub fn submit(
        &self,
        submission: Submission,
        patient_ref: String,
    ) -> Result<Request, ErasureError> {
        if !is_plain_value(&submission.patient_id) {
            return Err(ErasureError::Invalid(
                "patient_id: printable ASCII without spaces, at most 256 characters".to_owned(),
            ));
        }
        for (name, value) in [
            ("requester", &submission.requester),
            ("channel", &submission.channel),
            ("reason", &submission.reason),
            ("verification_ref", &submission.verification_ref),
            ("submitted_by", &submission.submitted_by),
        ] {
            if value.trim().is_empty() {
                return Err(ErasureError::Invalid(format!("{name} is required")));
            }
        }
        let now = store::now_ms();
        let due = now + i64::try_from(self.config.due_within.0.as_millis()).unwrap_or(i64::MAX);
        let step = |system: &str, kind: &str, state: &str, detail: Option<String>| Step {
            system: system.to_owned(),
            kind: kind.to_owned(),
            state: state.to_owned(),
            attempts: 0,
            last_error: None,
            detail,
            next_attempt: 0,
            done_at: None,
        };
        // The tombstone first (no new data arrives through the gateway), then the systems,
        // then the key (after which nothing of the patient's can be read), then the caches.
        let mut steps = vec![step("wardgate.tombstone", "tombstone", "pending", None)];
        for connector in &self.connectors {
            match self
                .config
                .legal_holds
                .iter()
                .find(|hold| hold.data_class == connector.data_class)
            {
                Some(hold) => steps.push(step(
                    &connector.system,
                    "http",
                    "retained",
                    Some(format!(
                        "legal hold on {}: {}",
                        hold.data_class, hold.reason
                    )),
                )),
                None => steps.push(step(&connector.system, "http", "pending", None)),
            }
        }
        steps.push(step("wardgate.key", "shred_key", "pending", None));
        steps.push(step("wardgate.caches", "purge_caches", "pending", None));
        let request = Request {
            id: format!("er-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
            patient_id: Some(submission.patient_id),
            patient_ref,
            requester: submission.requester,
            channel: submission.channel,
            reason: submission.reason,
            verification_ref: submission.verification_ref,
            submitted_by: submission.submitted_by,
            approved_by: None,
            state: "received".to_owned(),
            note: None,
            received_at: now,
            due_at: due,
            updated_at: now,
            finished_at: None,
            steps,
        };
        self.store.insert(&request)?;
        Ok(request)
    }

    pub fn get(&self, id: &str) -> Result<Request, ErasureError> {
        self.store
            .get(id)?
            .ok_or_else(|| ErasureError::NotFound(id.to_owned()))
    }

    pub fn approve(&self, id: &str, approver: &str) -> Result<Request, ErasureError> {
        let request = self.get(id)?;
        if approver.trim().is_empty() {
            return Err(ErasureError::Invalid("approver is required".to_owned()));
        }
        if self.config.two_person_rule && approver == request.submitted_by {
            return Err(ErasureError::SamePerson(approver.to_owned()));
        }
        let approved = self.move_to(id, &["received"], "approved", Some(approver), None)?;
        self.wake.notify_one();
        Ok(approved)
    }

    pub fn reject(&self, id: &str, by: &str, reason: &str) -> Result<Request, ErasureError> {
        let note = format!("rejected by {by}: {reason}");
        self.move_to(id, &["received"], "rejected", None, Some(&note))
    }

    pub fn cancel(&self, id: &str, by: &str, reason: &str) -> Result<Request, ErasureError> {
        let note = format!("cancelled by {by}: {reason}");
        self.move_to(
            id,
            &["received", "approved"],
            "cancelled",
            None,
            Some(&note),
        )
    }

    fn move_to(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        approver: Option<&str>,
        note: Option<&str>,
    ) -> Result<Request, ErasureError> {
        if let Some(mut moved) = self.store.transition(id, from, to, approver, note)? {
            moved.steps = self.store.steps_of(id)?;
            return Ok(moved);
        }
        let request = self.get(id)?;
        Err(ErasureError::WrongState {
            state: request.state,
            needed: from.join(" or "),
        })
    }
}
