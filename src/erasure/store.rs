//! Erasure requests and their steps, persisted at every transition (in `data_dir/erasure.db`,
//! or the database replicas share), so a restarted gateway resumes each request where it
//! stood. The plain patient id is kept only while a request is open (the connectors need it)
//! and wiped when it ends; the pseudonym stays, for the receipt and the 410 tombstone.

use serde::Serialize;

use crate::sql_params;
use crate::store::sql::{Db, Row, Value};
use crate::store::{Location, StoreError};

pub const ERASURE_DB: &str = "erasure.db";

const SQLITE_SCHEMA: &str = "
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

/// The same tables; `rowid` keeps the steps in the order they were made, as SQLite's does.
const POSTGRES_SCHEMA: &str = "
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
    received_at      BIGINT NOT NULL,
    due_at           BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    finished_at      BIGINT,
    receipt          TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    rowid        BIGINT GENERATED ALWAYS AS IDENTITY,
    request_id   TEXT NOT NULL,
    system       TEXT NOT NULL,
    kind         TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    detail       TEXT,
    next_attempt BIGINT NOT NULL DEFAULT 0,
    done_at      BIGINT,
    PRIMARY KEY (request_id, system)
);
CREATE TABLE IF NOT EXISTS erased_patients (
    patient_ref TEXT PRIMARY KEY,
    request_id  TEXT NOT NULL,
    erased_at   BIGINT NOT NULL
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
    db: Db,
}

pub use crate::store::now_ms;

/// A request's columns, in the order `request_row` reads them.
const REQUEST_FIELDS: &str =
    "id, patient_id, patient_ref, requester, channel, reason, verification_ref, submitted_by,
        approved_by, state, note, received_at, due_at, updated_at, finished_at";

impl ErasureStore {
    /// Opens the store in the data directory (given a path) or the shared database.
    pub fn open(location: impl Into<Location>) -> Result<ErasureStore, StoreError> {
        Ok(ErasureStore {
            db: Db::open(&location.into(), ERASURE_DB, SQLITE_SCHEMA, POSTGRES_SCHEMA)?,
        })
    }

    /// Stores a new request with its steps, in one transaction.
    pub fn insert(&self, request: &Request) -> Result<(), StoreError> {
        let mut statements = vec![(
            "INSERT INTO requests (id, patient_id, patient_ref, requester, channel, reason, verification_ref,
                submitted_by, approved_by, state, note, received_at, due_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, $10, $11, $10)",
            sql_params![
                &request.id,
                &request.patient_id,
                &request.patient_ref,
                &request.requester,
                &request.channel,
                &request.reason,
                &request.verification_ref,
                &request.submitted_by,
                &request.state,
                request.received_at,
                request.due_at
            ],
        )];
        for step in &request.steps {
            statements.push((
                "INSERT INTO steps (request_id, system, kind, state, detail) VALUES ($1, $2, $3, $4, $5)",
                sql_params![&request.id, &step.system, &step.kind, &step.state, &step.detail],
            ));
        }
        self.db.transaction(statements)?;
        Ok(())
    }

    pub fn get(&self, id: &str) -> Result<Option<Request>, StoreError> {
        let Some(row) = self.db.query_opt(
            &format!("SELECT {REQUEST_FIELDS} FROM requests WHERE id = $1"),
            sql_params![id],
        )?
        else {
            return Ok(None);
        };
        let mut request = request_row(&row);
        request.steps = self.steps_of(id)?;
        Ok(Some(request))
    }

    /// Every request, newest first.
    pub fn list(&self) -> Result<Vec<Request>, StoreError> {
        let rows = self.db.query(
            &format!("SELECT {REQUEST_FIELDS} FROM requests ORDER BY received_at DESC, id"),
            Vec::new(),
        )?;
        let mut requests: Vec<Request> = rows.iter().map(request_row).collect();
        // Every step in one query, not one per request (a round trip each to a database).
        let mut steps: std::collections::HashMap<String, Vec<Step>> =
            std::collections::HashMap::new();
        for row in self.db.query(
            "SELECT system, kind, state, attempts, last_error, detail, next_attempt, done_at, request_id
             FROM steps ORDER BY rowid",
            Vec::new(),
        )? {
            steps.entry(row.text(8)).or_default().push(step_row(&row));
        }
        for request in &mut requests {
            request.steps = steps.remove(&request.id).unwrap_or_default();
        }
        Ok(requests)
    }

    /// Moves a request from one of `from` to `to` and returns it as the move left it (without
    /// its steps); None when it was in another state. One conditional statement: of two
    /// replicas moving the same request, one wins, and what it returns is what it did, even
    /// if the worker moves the request on a moment later.
    pub fn transition(
        &self,
        id: &str,
        from: &[&str],
        to: &str,
        approved_by: Option<&str>,
        note: Option<&str>,
    ) -> Result<Option<Request>, StoreError> {
        let finished = matches!(
            to,
            "completed" | "partially_retained" | "failed" | "rejected" | "cancelled"
        );
        let placeholders: Vec<String> = (0..from.len()).map(|i| format!("${}", i + 7)).collect();
        let sql = format!(
            "UPDATE requests SET state = $2, updated_at = $3,
                approved_by = COALESCE($4, approved_by), note = COALESCE($5, note),
                finished_at = CASE WHEN CAST($6 AS BIGINT) = 1 THEN $3 ELSE finished_at END,
                patient_id = CASE WHEN CAST($6 AS BIGINT) = 1 THEN NULL ELSE patient_id END
             WHERE id = $1 AND state IN ({})
             RETURNING {REQUEST_FIELDS}",
            placeholders.join(", ")
        );
        let mut values = sql_params![id, to, now_ms(), approved_by, note, finished];
        values.extend(from.iter().map(|state| Value::from(*state)));
        Ok(self
            .db
            .query_opt(&sql, values)?
            .map(|row| request_row(&row)))
    }

    pub fn update_step(&self, id: &str, step: &Step) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE steps SET state = $3, attempts = $4, last_error = $5, detail = $6, next_attempt = $7, done_at = $8
             WHERE request_id = $1 AND system = $2",
            sql_params![
                id,
                &step.system,
                &step.state,
                step.attempts,
                &step.last_error,
                &step.detail,
                step.next_attempt,
                step.done_at
            ],
        )?;
        Ok(())
    }

    pub fn set_receipt(&self, id: &str, receipt: &str) -> Result<(), StoreError> {
        self.db.execute(
            "UPDATE requests SET receipt = $2 WHERE id = $1",
            sql_params![id, receipt],
        )?;
        Ok(())
    }

    pub fn receipt(&self, id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .db
            .query_opt(
                "SELECT receipt FROM requests WHERE id = $1",
                sql_params![id],
            )?
            .and_then(|row| row.opt_text(0)))
    }

    /// Requests the worker has to move on.
    pub fn active(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .query(
                "SELECT id FROM requests WHERE state IN ('approved', 'executing', 'verifying') ORDER BY received_at",
                Vec::new(),
            )?
            .iter()
            .map(|row| row.text(0))
            .collect())
    }

    pub fn tombstone(&self, patient_ref: &str, request_id: &str) -> Result<(), StoreError> {
        self.db.execute(
            "INSERT INTO erased_patients (patient_ref, request_id, erased_at) VALUES ($1, $2, $3)
             ON CONFLICT (patient_ref) DO NOTHING",
            sql_params![patient_ref, request_id, now_ms()],
        )?;
        Ok(())
    }

    pub fn erased_patients(&self) -> Result<Vec<String>, StoreError> {
        Ok(self
            .db
            .query("SELECT patient_ref FROM erased_patients", Vec::new())?
            .iter()
            .map(|row| row.text(0))
            .collect())
    }

    pub fn erased_count(&self) -> Result<usize, StoreError> {
        Ok(self
            .db
            .query_opt("SELECT COUNT(*) FROM erased_patients", Vec::new())?
            .map_or(0, |row| usize::try_from(row.int(0)).unwrap_or(0)))
    }

    /// Counts by state, and how many open requests are past their due time.
    pub fn counts(&self) -> Result<(Vec<(String, i64)>, i64), StoreError> {
        let by_state = self
            .db
            .query(
                "SELECT state, COUNT(*) FROM requests GROUP BY state",
                Vec::new(),
            )?
            .iter()
            .map(|row| (row.text(0), row.int(1)))
            .collect();
        let overdue = self
            .db
            .query_opt(
                "SELECT COUNT(*) FROM requests WHERE finished_at IS NULL AND state NOT IN ('rejected', 'cancelled') AND due_at < $1",
                sql_params![now_ms()],
            )?
            .map_or(0, |row| row.int(0));
        Ok((by_state, overdue))
    }

    /// Whether this replica runs the erasure worker (one replica does; see [`Db::leads`]).
    pub fn leads_worker(&self) -> Result<bool, StoreError> {
        self.db.leads(1)
    }

    pub fn steps_of(&self, id: &str) -> Result<Vec<Step>, StoreError> {
        Ok(self
            .db
            .query(
                "SELECT system, kind, state, attempts, last_error, detail, next_attempt, done_at
                 FROM steps WHERE request_id = $1 ORDER BY rowid",
                sql_params![id],
            )?
            .iter()
            .map(step_row)
            .collect())
    }
}

/// A step from `system, kind, state, attempts, last_error, detail, next_attempt, done_at`.
fn step_row(row: &Row) -> Step {
    Step {
        system: row.text(0),
        kind: row.text(1),
        state: row.text(2),
        attempts: u32::try_from(row.int(3)).unwrap_or(u32::MAX),
        last_error: row.opt_text(4),
        detail: row.opt_text(5),
        next_attempt: row.int(6),
        done_at: row.opt_int(7),
    }
}

fn request_row(row: &Row) -> Request {
    Request {
        id: row.text(0),
        patient_id: row.opt_text(1),
        patient_ref: row.text(2),
        requester: row.text(3),
        channel: row.text(4),
        reason: row.text(5),
        verification_ref: row.text(6),
        submitted_by: row.text(7),
        approved_by: row.opt_text(8),
        state: row.text(9),
        note: row.opt_text(10),
        received_at: row.int(11),
        due_at: row.int(12),
        updated_at: row.int(13),
        finished_at: row.opt_int(14),
        steps: Vec::new(),
    }
}
