//! The audit trail in the database replicas share: the same rows, chains and checkpoints as
//! the embedded store (one chain per instance, so replicas never contend for a chain head),
//! written one batch per round trip, and read back in pages for `audit query`, `audit verify`
//! and the review report.

use std::sync::Arc;

use postgres::types::ToSql;

use super::checkpoint::Checkpoint;
use super::store::{index_key, query_sql, AuditStore, SealedRecord, StoredRow};
use super::AuditRecord;
use crate::audit::store::QueryFilter;
use crate::store::postgres::{Postgres, PostgresSettings};
use crate::store::StoreError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance    TEXT    NOT NULL,
    seq         BIGINT  NOT NULL,
    time_ms     BIGINT  NOT NULL,
    subject     TEXT,
    subject_key BIGINT,
    patient     TEXT,
    patient_key BIGINT,
    decision    TEXT    NOT NULL,
    break_glass BOOLEAN NOT NULL,
    body        TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (instance, seq)
);
CREATE INDEX IF NOT EXISTS audit_by_patient ON audit_records (patient_key, time_ms);
CREATE INDEX IF NOT EXISTS audit_by_subject ON audit_records (subject_key, time_ms);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    instance  TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    hash      TEXT   NOT NULL,
    time      TEXT   NOT NULL,
    signature TEXT   NOT NULL,
    PRIMARY KEY (instance, seq)
);
";

/// Rows read per round trip by the readers: bounded memory over millions of records.
const PAGE: i64 = 5000;

fn seq_param(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

fn seq_value(seq: i64) -> u64 {
    u64::try_from(seq).unwrap_or(0)
}

pub struct PostgresAuditStore(Postgres);

impl PostgresAuditStore {
    pub fn open(settings: &Arc<PostgresSettings>) -> Result<PostgresAuditStore, StoreError> {
        Ok(PostgresAuditStore(Postgres::connect(
            settings, "audit", SCHEMA,
        )?))
    }

    /// Deletes records older than `cutoff_ms`, for every instance (the chains of replicas
    /// that are gone too), each only up to its newest checkpoint at or before them, as the
    /// embedded store does for its one instance. Returns how many records were removed.
    pub fn prune(&self, cutoff_ms: i64) -> Result<usize, StoreError> {
        self.0.run("cannot prune audit records", move |client| {
            let instances: Vec<String> = client
                .query("SELECT DISTINCT instance FROM audit_checkpoints", &[])?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            let mut removed = 0;
            for instance in instances {
                let mut transaction = client.transaction()?;
                let first_young: Option<i64> = transaction
                    .query_opt(
                        "SELECT seq FROM audit_records WHERE instance = $1 AND time_ms >= $2
                         ORDER BY seq LIMIT 1",
                        &[&instance, &cutoff_ms],
                    )?
                    .map(|row| row.get(0));
                let last_old: Option<i64> = match first_young {
                    Some(seq) => Some(seq - 1).filter(|seq| *seq > 0),
                    None => transaction
                        .query_one(
                            "SELECT MAX(seq) FROM audit_records WHERE instance = $1",
                            &[&instance],
                        )?
                        .get(0),
                };
                let Some(last_old) = last_old else { continue };
                let anchor: Option<i64> = transaction
                    .query_one(
                        "SELECT MAX(seq) FROM audit_checkpoints WHERE instance = $1 AND seq <= $2",
                        &[&instance, &last_old],
                    )?
                    .get(0);
                let Some(anchor) = anchor else { continue };
                removed += transaction.execute(
                    "DELETE FROM audit_records WHERE instance = $1 AND seq <= $2",
                    &[&instance, &anchor],
                )?;
                transaction.execute(
                    "DELETE FROM audit_checkpoints WHERE instance = $1 AND seq < $2",
                    &[&instance, &anchor],
                )?;
                transaction.commit()?;
            }
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    }
}

impl AuditStore for PostgresAuditStore {
    fn head(&self, instance: &str) -> Result<Option<(u64, String)>, StoreError> {
        let instance = instance.to_owned();
        self.0.run("cannot read the chain head", move |client| {
            Ok(client
                .query_opt(
                    "SELECT seq, hash FROM audit_records WHERE instance = $1
                     ORDER BY seq DESC LIMIT 1",
                    &[&instance],
                )?
                .map(|row| (seq_value(row.get(0)), row.get(1))))
        })
    }

    fn append(
        &mut self,
        batch: &[SealedRecord<'_>],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError> {
        let mut columns = Columns::default();
        for sealed in batch {
            columns.push(sealed);
        }
        let checkpoint = checkpoint.cloned();
        self.0.run("cannot append audit records", move |client| {
            let mut transaction = client.transaction()?;
            // One statement per batch: a round trip to the database costs more than a row.
            transaction.execute(
                "INSERT INTO audit_records
                     (instance, seq, time_ms, subject, subject_key, patient, patient_key, decision, break_glass, body, hash)
                 SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[],
                                      $6::text[], $7::bigint[], $8::text[], $9::bool[], $10::text[], $11::text[])",
                &columns.params(),
            )?;
            if let Some(c) = &checkpoint {
                transaction.execute(
                    "INSERT INTO audit_checkpoints (instance, seq, hash, time, signature)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&c.instance, &seq_param(c.seq), &c.hash, &c.time, &c.signature],
                )?;
            }
            transaction.commit()
        })
    }

    /// Nothing to check before a commit: a database that cannot take writes (down, or a
    /// read-only standby) fails the commit itself, which the writer treats as the store
    /// being unavailable. [`PostgresAuditStore::check_primary`] is the explicit check.
    fn probe(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

impl PostgresAuditStore {
    /// Fails unless the database takes writes: reachable, and not a standby (after a
    /// failover the old primary may come back read-only).
    pub fn check_primary(&self) -> Result<(), StoreError> {
        let standby = self.0.run("cannot reach the database", |client| {
            Ok(client
                .query_one("SELECT pg_is_in_recovery()", &[])?
                .get::<_, bool>(0))
        })?;
        if standby {
            return Err(StoreError::Standby(self.0.database().to_owned()));
        }
        Ok(())
    }
}

/// A batch, column by column, for `UNNEST`.
#[derive(Default)]
struct Columns {
    instance: Vec<String>,
    seq: Vec<i64>,
    time_ms: Vec<i64>,
    subject: Vec<Option<String>>,
    subject_key: Vec<Option<i64>>,
    patient: Vec<Option<String>>,
    patient_key: Vec<Option<i64>>,
    decision: Vec<String>,
    break_glass: Vec<bool>,
    body: Vec<String>,
    hash: Vec<String>,
}

impl Columns {
    fn push(&mut self, sealed: &SealedRecord<'_>) {
        let r: &AuditRecord = sealed.record;
        self.instance.push(r.instance.clone());
        self.seq.push(seq_param(r.seq));
        self.time_ms.push(r.time_ms);
        self.subject.push(r.subject.clone());
        self.subject_key.push(r.subject.as_deref().map(index_key));
        self.patient.push(r.patient.clone());
        self.patient_key.push(r.patient.as_deref().map(index_key));
        self.decision.push(r.decision.clone());
        self.break_glass.push(r.break_glass.is_some());
        self.body.push(sealed.body.clone());
        self.hash.push(sealed.hash.clone());
    }

    fn params(&self) -> [&(dyn ToSql + Sync); 11] {
        [
            &self.instance,
            &self.seq,
            &self.time_ms,
            &self.subject,
            &self.subject_key,
            &self.patient,
            &self.patient_key,
            &self.decision,
            &self.break_glass,
            &self.body,
            &self.hash,
        ]
    }
}

/// The reading side, for `AuditReader`.
pub struct PostgresAuditReader(Postgres);

impl PostgresAuditReader {
    pub fn open(settings: &Arc<PostgresSettings>) -> Result<PostgresAuditReader, StoreError> {
        Ok(PostgresAuditReader(Postgres::connect(
            settings,
            "audit-reader",
            SCHEMA,
        )?))
    }

    pub fn instances(&self) -> Result<Vec<String>, StoreError> {
        self.0.run("cannot list audit instances", |client| {
            Ok(client
                .query(
                    "SELECT instance FROM audit_records
                     UNION SELECT instance FROM audit_checkpoints ORDER BY 1",
                    &[],
                )?
                .into_iter()
                .map(|row| row.get(0))
                .collect())
        })
    }

    pub fn rows(
        &self,
        instance: &str,
        from_seq: u64,
        mut each: impl FnMut(StoredRow) -> bool,
    ) -> Result<(), StoreError> {
        let mut next = seq_param(from_seq);
        loop {
            let instance = instance.to_owned();
            let page: Vec<StoredRow> = self.0.run("cannot read audit records", move |client| {
                Ok(client
                    .query(
                        "SELECT instance, seq, time_ms, subject, patient, decision, break_glass, body, hash
                         FROM audit_records WHERE instance = $1 AND seq >= $2
                         ORDER BY seq LIMIT $3",
                        &[&instance, &next, &PAGE],
                    )?
                    .into_iter()
                    .map(|row| StoredRow {
                        instance: row.get(0),
                        seq: seq_value(row.get(1)),
                        time_ms: row.get(2),
                        subject: row.get(3),
                        patient: row.get(4),
                        decision: row.get(5),
                        break_glass: row.get(6),
                        body: row.get(7),
                        hash: row.get(8),
                    })
                    .collect())
            })?;
            let full = page.len() as i64 == PAGE;
            for row in page {
                next = seq_param(row.seq) + 1;
                if !each(row) {
                    return Ok(());
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    pub fn checkpoints(&self, instance: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let instance = instance.to_owned();
        self.0.run("cannot read checkpoints", move |client| {
            Ok(client
                .query(
                    "SELECT instance, seq, hash, time, signature FROM audit_checkpoints
                     WHERE instance = $1 ORDER BY seq",
                    &[&instance],
                )?
                .into_iter()
                .map(|row| Checkpoint {
                    instance: row.get(0),
                    seq: seq_value(row.get(1)),
                    hash: row.get(2),
                    time: row.get(3),
                    signature: row.get(4),
                })
                .collect())
        })
    }

    pub fn row_bounds(&self) -> Result<(i64, i64), StoreError> {
        self.0.run("cannot read audit row bounds", |client| {
            let row = client.query_one(
                "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM audit_records",
                &[],
            )?;
            Ok((row.get(0), row.get(1)))
        })
    }

    pub fn scan(
        &self,
        since_ms: i64,
        until_ms: i64,
        rows: (i64, i64),
        mut each: impl FnMut(&str),
    ) -> Result<(), StoreError> {
        let mut next = rows.0;
        while next <= rows.1 {
            let last = rows.1;
            let page: Vec<(i64, String)> =
                self.0.run("cannot read audit records", move |client| {
                    Ok(client
                        .query(
                            "SELECT id, body FROM audit_records
                         WHERE id BETWEEN $1 AND $2 AND time_ms >= $3 AND time_ms < $4
                         ORDER BY id LIMIT $5",
                            &[&next, &last, &since_ms, &until_ms, &PAGE],
                        )?
                        .into_iter()
                        .map(|row| (row.get(0), row.get(1)))
                        .collect())
                })?;
            let full = page.len() as i64 == PAGE;
            for (id, body) in &page {
                next = id + 1;
                each(body);
            }
            if !full {
                return Ok(());
            }
        }
        Ok(())
    }

    pub fn query(&self, filter: &QueryFilter) -> Result<Vec<String>, StoreError> {
        let (sql, values) = query_sql(filter, "break_glass");
        self.0.run("cannot query audit records", move |client| {
            Ok(client
                .query(&sql, &crate::store::sql::postgres_params(&values))?
                .into_iter()
                .map(|row| row.get(0))
                .collect())
        })
    }
}
