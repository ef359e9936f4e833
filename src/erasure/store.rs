//! Erasure requests and their steps, persisted in `data_dir/erasure.db` at every transition,
//! so a restarted gateway resumes each request where it stood. The plain patient id is kept
//! only while a request is open (the connectors need it) and wiped when it ends; the
//! pseudonym stays, for the receipt and the 410 tombstone.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::store::{self, StoreError};

pub const ERASURE_DB: &str = "erasure.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id               TEXT PRIMARY KEY,
    patient_id       TEXT,
    patient_ref      TEXT NOT NULL,
    requester        TEXT NOT NULL,
    channel          TEXT NOT NULL,
    reason           TEXT NOT NULL,
    verification_ref TEXT NOT NULL,
    submitted_by     TEXT NOT NULL,
    approved_by      TEXT,
    state            TEXT NOT NULL,
    note             TEXT,
    received_at      INTEGER NOT NULL,
    due_at           INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    receipt          TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    request_id   TEXT NOT NULL,
    system       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    detail       TEXT,
    next_attempt INTEGER NOT NULL DEFAULT 0,
    done_at      INTEGER,
    PRIMARY KEY (request_id, system)
);
CREATE TABLE IF NOT EXISTS erased_patients (
    patient_ref TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    erased_at   INTEGER NOT NULL
);
";

/// A request as stored (and as the admin API shows it; the plain id is never shown).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Request {
    pub id: String,
    #[serde(skip)]
    pub patient_id: Option<String>,
    pub patient_ref: String,
    pub requester: String,
    pub channel: String,
    pub reason: String,
    pub verification_ref: String,
    pub submitted_by: String,
    pub approved_by: Option<String>,
    pub state: String,
    /// Why it was rejected, cancelled or failed.
    pub note: Option<String>,
    pub received_at: i64,
    pub due_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub steps: Vec<Step>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct Step {
    pub system: String,
    /// `http`, `shred_key`, `purge_caches`, `tombstone`.
    pub kind: String,
    /// `pending`, `deleted` (awaiting verification), `verified`, `done`, `retained`, `failed`.
    pub state: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    /// What was verified, or why the data was retained.
    pub detail: Option<String>,
    #[serde(skip)]
    pub next_attempt: i64,
    pub done_at: Option<i64>,
}

pub struct ErasureStore {
    connection: Mutex<Connection>,
}

pub use crate::store::now_ms;

impl ErasureStore {
    pub fn open(data_dir: &Path) -> Result<ErasureStore, StoreError> {
        let connection = store::open(data_dir, ERASURE_DB)?;
        connection.execute_batch(SCHEMA)?;
        Ok(ErasureStore {
            connection: Mutex::new(connection),
        })
    }

    fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> Result<T, rusqlite::Error>,
    ) -> Result<T, StoreError> {
        let mut connection = self
            .connection
            .lock()
            .map_err(|_| StoreError::Sql(rusqlite::Error::InvalidQuery))?;
        Ok(work(&mut connection)?)
    }

    /// Stores a new request with its steps, in one transaction.
    pub fn insert(&self, request: &Request) -> Result<(), StoreError> {
        self.with(|connection| {
            let transaction = connection.transaction()?;
            transaction.execute(
                "INSERT INTO requests (id, patient_id, patient_ref, requester, channel, reason, verification_ref,
                    submitted_by, approved_by, state, note, received_at, due_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL, ?9, NULL, ?10, ?11, ?10)",
                params![
                    request.id,
                    request.patient_id,
                    request.patient_ref,
                    request.requester,
                    request.channel,
                    request.reason,
                    request.verification_ref,
                    request.submitted_by,
                    request.state,
                    request.received_at,
                    request.due_at
                ],
            )?;
            for step in &request.steps {
                transaction.execute(
                    "INSERT INTO steps (request_id, system, kind, state, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![request.id, step.system, step.kind, step.state, step.detail],
                )?;
            }
            transaction.commit()
        })
    }

    pub fn get(&self, id: &str) -> Result<Option<Request>, StoreError> {
        self.with(|connection| {
            let request = connection
                .query_row(
                    "SELECT id, patient_id, patient_ref, requester, channel, reason, verification_ref, submitted_by,
                            approved_by, state, note, received_at, due_at, updated_at, finished_at
                     FROM requests WHERE id = ?1",
                    params![id],
                    request_row,
                )
                .optional()?;
            let Some(mut request) = request else {
                return Ok(None);
            };
            request.steps = steps_of(connection, id)?;
            Ok(Some(request))
        })
    }

    /// Every request, newest first.
    pub fn list(&self) -> Result<Vec<Request>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, patient_id, patient_ref, requester, channel, reason, verification_ref, submitted_by,
                        approved_by, state, note, received_at, due_at, updated_at, finished_at
                 FROM requests ORDER BY received_at DESC, id",
            )?;
            let mut requests: Vec<Request> = statement
                .query_map([], request_row)?
                .collect::<Result<_, _>>()?;
            for request in &mut requests {
                request.steps = steps_of(connection, &request.id)?;
            }
            Ok(requests)
        })
    }

    /// Moves a request from one of `from` to `to`; false when it was in another state.
    pub fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        approved_by: Option<&str>,
        note: Option<&str>,
    ) -> Result<bool, StoreError> {
        let finished = matches!(
            to,
            "completed" | "partially_retained" | "failed" | "rejected" | "cancelled"
        );
        self.with(|connection| {
            let current: Option<String> = connection
                .query_row(
                    "SELECT state FROM requests WHERE id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()?;
            if !current.is_some_and(|state| from.contains(&state.as_str())) {
                return Ok(false);
            }
            let now = now_ms();
            connection.execute(
                "UPDATE requests SET state = ?2, updated_at = ?3,
                    approved_by = COALESCE(?4, approved_by), note = COALESCE(?5, note),
                    finished_at = CASE WHEN ?6 THEN ?3 ELSE finished_at END,
                    patient_id = CASE WHEN ?6 THEN NULL ELSE patient_id END
                 WHERE id = ?1",
                params![id, to, now, approved_by, note, finished],
            )?;
            Ok(true)
        })
    }

    pub fn update_step(&self, id: &str, step: &Step) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "UPDATE steps SET state = ?3, attempts = ?4, last_error = ?5, detail = ?6, next_attempt = ?7, done_at = ?8
                 WHERE request_id = ?1 AND system = ?2",
                params![
                    id,
                    step.system,
                    step.state,
                    step.attempts,
                    step.last_error,
                    step.detail,
                    step.next_attempt,
                    step.done_at
                ],
            )?;
            Ok(())
        })
    }

    pub fn set_receipt(&self, id: &str, receipt: &str) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "UPDATE requests SET receipt = ?2 WHERE id = ?1",
                params![id, receipt],
            )?;
            Ok(())
        })
    }

    pub fn receipt(&self, id: &str) -> Result<Option<String>, StoreError> {
        self.with(|connection| {
            Ok(connection
                .query_row(
                    "SELECT receipt FROM requests WHERE id = ?1",
                    params![id],
                    |row| row.get(0),
                )
                .optional()?
                .flatten())
        })
    }

    /// Requests the worker has to move on.
    pub fn active(&self) -> Result<Vec<String>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare(
                "SELECT id FROM requests WHERE state IN ('approved', 'executing', 'verifying') ORDER BY received_at",
            )?;
            let ids = statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        })
    }

    pub fn tombstone(&self, patient_ref: &str, request_id: &str) -> Result<(), StoreError> {
        self.with(|connection| {
            connection.execute(
                "INSERT OR IGNORE INTO erased_patients (patient_ref, request_id, erased_at) VALUES (?1, ?2, ?3)",
                params![patient_ref, request_id, now_ms()],
            )?;
            Ok(())
        })
    }

    pub fn erased_patients(&self) -> Result<Vec<String>, StoreError> {
        self.with(|connection| {
            let mut statement = connection.prepare("SELECT patient_ref FROM erased_patients")?;
            let refs = statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(refs)
        })
    }

    /// Counts by state, and how many open requests are past their due time.
    pub fn counts(&self) -> Result<(Vec<(String, i64)>, i64), StoreError> {
        self.with(|connection| {
            let mut statement =
                connection.prepare("SELECT state, COUNT(*) FROM requests GROUP BY state")?;
            let by_state = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
                .collect::<Result<_, _>>()?;
            let overdue = connection.query_row(
                "SELECT COUNT(*) FROM requests WHERE finished_at IS NULL AND state NOT IN ('rejected', 'cancelled') AND due_at < ?1",
                params![now_ms()],
                |row| row.get(0),
            )?;
            Ok((by_state, overdue))
        })
    }
}

fn request_row(row: &rusqlite::Row<'_>) -> Result<Request, rusqlite::Error> {
    Ok(Request {
        id: row.get(0)?,
        patient_id: row.get(1)?,
        patient_ref: row.get(2)?,
        requester: row.get(3)?,
        channel: row.get(4)?,
        reason: row.get(5)?,
        verification_ref: row.get(6)?,
        submitted_by: row.get(7)?,
        approved_by: row.get(8)?,
        state: row.get(9)?,
        note: row.get(10)?,
        received_at: row.get(11)?,
        due_at: row.get(12)?,
        updated_at: row.get(13)?,
        finished_at: row.get(14)?,
        steps: Vec::new(),
    })
}

fn steps_of(connection: &Connection, id: &str) -> Result<Vec<Step>, rusqlite::Error> {
    let mut statement = connection.prepare(
        "SELECT system, kind, state, attempts, last_error, detail, next_attempt, done_at
         FROM steps WHERE request_id = ?1 ORDER BY rowid",
    )?;
    let steps = statement
        .query_map(params![id], |row| {
            Ok(Step {
                system: row.get(0)?,
                kind: row.get(1)?,
                state: row.get(2)?,
                attempts: row.get(3)?,
                last_error: row.get(4)?,
                detail: row.get(5)?,
                next_attempt: row.get(6)?,
                done_at: row.get(7)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(steps)
}
