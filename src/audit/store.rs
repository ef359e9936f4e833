//! Where audit records live. [`AuditStore`] is what the writer needs (the chain head, an
//! atomic append of a batch with its checkpoint, a health probe); [`SqliteAuditStore`] is the
//! embedded implementation, `postgres_store` the one replicas share. Reads for `audit query`,
//! `audit verify` and the review report go through [`AuditReader`], on a read-only connection
//! that works beside a running gateway.

use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

use super::checkpoint::Checkpoint;
use super::postgres_store::PostgresAuditReader;
use super::record::AuditRecord;
use crate::store::sql::Value;
use crate::store::{self, Location, StoreError};

pub const AUDIT_DB: &str = "audit.db";

/// A record ready to be stored: its canonical body and hash.
pub struct SealedRecord<'a> {
    pub record: &'a AuditRecord,
    pub body: String,
    pub hash: String,
}

pub trait AuditStore: Send {
    /// The last sequence number and hash of an instance's chain.
    fn head(&self, instance: &str) -> Result<Option<(u64, String)>, StoreError>;
    /// Appends a batch, and a checkpoint if one is due, in one transaction.
    fn append(
        &mut self,
        batch: &[SealedRecord<'_>],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError>;
    /// Fails when the store cannot take writes.
    fn probe(&self) -> Result<(), StoreError>;
}

/// Indexed by patient pseudonym and by subject (each through its `index_key`), each with time,
/// and by (instance, seq), which follows time: records are appended in the order they are
/// committed. Every further index costs durable throughput (measured: a time and a decision
/// index took it from about 17,500 to 13,000 records/s; keying the patient and subject indexes
/// on integers instead of strings took it from about 19,500 to 23,000), so decision and time
/// filters ride on these.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    id          INTEGER PRIMARY KEY,
    instance    TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    time_ms     INTEGER NOT NULL,
    subject     TEXT,
    subject_key INTEGER,
    patient     TEXT,
    patient_key INTEGER,
    decision    TEXT    NOT NULL,
    break_glass INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    hash        TEXT    NOT NULL,
    UNIQUE (instance, seq)
);
CREATE INDEX IF NOT EXISTS audit_by_patient  ON audit_records (patient_key, time_ms);
CREATE INDEX IF NOT EXISTS audit_by_subject  ON audit_records (subject_key, time_ms);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    instance  TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    hash      TEXT    NOT NULL,
    time      TEXT    NOT NULL,
    signature TEXT    NOT NULL,
    PRIMARY KEY (instance, seq)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// The integer the patient and subject indexes are keyed on: the first 8 bytes of the
/// value's SHA-256. Index entries of 8 bytes instead of 35-byte strings keep the indexes
/// small, so a group commit dirties fewer pages; queries compare the full value as well.
pub(super) fn index_key(value: &str) -> i64 {
    let digest = Sha256::digest(value.as_bytes());
    let mut prefix = [0u8; 8];
    prefix.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(prefix)
}

/// The writer's page cache. Appends touch the right edge of the table and of the (instance,
/// seq) index, and one leaf of each of the patient and subject indexes, which for a store of
/// any size is a miss however large the cache (10M records: about 77,000 leaves per index).
/// Measured against 8 MiB: about 8% fewer records/s from the writer alone at 2 MiB
/// (`cargo bench --bench audit -- durable_commit`: 24,000 against 26,000), no difference in
/// the gateway's requests/s, and 6-8 MB less resident memory. Since group commit waits for the
/// records on their way (batches of ~50 at 50 connections, not ~12), a page miss is paid once
/// per batch, and 1 MiB took another 1.2 MB off the gateway's peak at 1,000 connections
/// (three runs each: 60.5-61.8 against 61.9-63.0 MB) with no difference in requests/s beyond
/// the machine's noise. 512 KiB (2026-11-23, once the serving path did less per request and
/// more records waited in each batch at 1,000 connections): about 1.5 MB less peak than 1 MiB
/// (62.5 against 64.4 MB, six runs each), the writer alone 24,000 records/s, as before.
const WRITER_CACHE_KIB: u32 = 512;

pub struct SqliteAuditStore {
    connection: Connection,
    data_dir: PathBuf,
}

impl SqliteAuditStore {
    pub fn open(data_dir: &Path) -> Result<SqliteAuditStore, StoreError> {
        let connection = store::open(data_dir, AUDIT_DB)?;
        connection.execute_batch(SCHEMA)?;
        connection.execute_batch(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB};"))?;
        Ok(SqliteAuditStore {
            connection,
            data_dir: data_dir.to_owned(),
        })
    }

    /// The instance id kept in the store (made once, on first start), unless configured.
    pub fn instance_id(&self) -> Result<String, StoreError> {
        let existing: Option<String> = self
            .connection
            .query_row(
                "SELECT value FROM meta WHERE key = 'instance_id'",
                [],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = new_instance_id();
        self.connection.execute(
            "INSERT INTO meta (key, value) VALUES ('instance_id', ?1)",
            params![id],
        )?;
        Ok(id)
    }

    /// Deletes records older than `cutoff_ms`, but only up to the newest checkpoint at or
    /// before them, whose signature then anchors the first record kept. Returns how many
    /// records were removed.
    pub fn prune(&mut self, instance: &str, cutoff_ms: i64) -> Result<usize, StoreError> {
        let transaction = self.connection.transaction()?;
        // Time grows with the sequence: find the first record young enough to keep, walking
        // in seq order, so only the prefix about to go is read.
        let first_young: Option<u64> = transaction
            .query_row(
                "SELECT seq FROM audit_records WHERE instance = ?1 AND time_ms >= ?2 ORDER BY seq LIMIT 1",
                params![instance, cutoff_ms],
                |row| row.get(0),
            )
            .optional()?;
        let last_old: Option<u64> = match first_young {
            Some(seq) => seq.checked_sub(1).filter(|seq| *seq > 0),
            None => transaction
                .query_row(
                    "SELECT MAX(seq) FROM audit_records WHERE instance = ?1",
                    params![instance],
                    |row| row.get(0),
                )
                .optional()?
                .flatten(),
        };
        let Some(last_old) = last_old else {
            return Ok(0);
        };
        let anchor: Option<u64> = transaction
            .query_row(
                "SELECT MAX(seq) FROM audit_checkpoints WHERE instance = ?1 AND seq <= ?2",
                params![instance, last_old],
                |row| row.get(0),
            )
            .optional()?
            .flatten();
        let Some(anchor) = anchor else { return Ok(0) };
        let removed = transaction.execute(
            "DELETE FROM audit_records WHERE instance = ?1 AND seq <= ?2",
            params![instance, anchor],
        )?;
        transaction.execute(
            "DELETE FROM audit_checkpoints WHERE instance = ?1 AND seq < ?2",
            params![instance, anchor],
        )?;
        transaction.commit()?;
        Ok(removed)
    }
}

impl AuditStore for SqliteAuditStore {
    fn head(&self, instance: &str) -> Result<Option<(u64, String)>, StoreError> {
        Ok(self
            .connection
            .query_row(
                "SELECT seq, hash FROM audit_records WHERE instance = ?1 ORDER BY seq DESC LIMIT 1",
                params![instance],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .optional()?)
    }

    fn append(
        &mut self,
        batch: &[SealedRecord<'_>],
        checkpoint: Option<&Checkpoint>,
    ) -> Result<(), StoreError> {
        let transaction = self.connection.transaction()?;
        {
            let mut insert = transaction.prepare_cached(
                "INSERT INTO audit_records (instance, seq, time_ms, subject, subject_key, patient, patient_key, decision, break_glass, body, hash)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            for sealed in batch {
                let r = &sealed.record;
                insert.execute(params![
                    r.instance,
                    r.seq,
                    r.time_ms,
                    r.subject,
                    r.subject.as_deref().map(index_key),
                    r.patient,
                    r.patient.as_deref().map(index_key),
                    r.decision,
                    r.break_glass.is_some(),
                    sealed.body,
                    sealed.hash
                ])?;
            }
            if let Some(c) = checkpoint {
                transaction.execute(
                    "INSERT INTO audit_checkpoints (instance, seq, hash, time, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![c.instance, c.seq, c.hash, c.time, c.signature],
                )?;
            }
        }
        transaction.commit()?;
        Ok(())
    }

    fn probe(&self) -> Result<(), StoreError> {
        store::check_writable(&self.data_dir, AUDIT_DB)
    }
}

/// A new instance id: `wg-` and 12 random hex digits.
pub(super) fn new_instance_id() -> String {
    format!("wg-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A stored row as read back, for verification.
pub struct StoredRow {
    pub instance: String,
    pub seq: u64,
    pub time_ms: i64,
    pub subject: Option<String>,
    pub patient: Option<String>,
    pub decision: String,
    pub break_glass: bool,
    pub body: String,
    pub hash: String,
}

/// What `audit query` asks for.
#[derive(Clone, Debug, Default)]
pub struct QueryFilter {
    pub patient: Option<String>,
    pub subject: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub decision: Option<String>,
    pub break_glass_only: bool,
    pub limit: Option<usize>,
}

pub struct AuditReader(Reader);

enum Reader {
    Sqlite(Connection),
    Postgres(PostgresAuditReader),
}

impl AuditReader {
    /// A reader of the data directory's store (given a path) or of the shared database.
    pub fn open(location: impl Into<Location>) -> Result<AuditReader, StoreError> {
        Ok(AuditReader(match location.into() {
            Location::DataDir(data_dir) => {
                Reader::Sqlite(store::open_read_only(&data_dir, AUDIT_DB)?)
            }
            Location::Shared(settings) => Reader::Postgres(PostgresAuditReader::open(&settings)?),
        }))
    }

    pub fn instances(&self) -> Result<Vec<String>, StoreError> {
        let connection = match &self.0 {
            Reader::Sqlite(connection) => connection,
            Reader::Postgres(reader) => return reader.instances(),
        };
        let mut statement = connection.prepare(
            "SELECT instance FROM audit_records UNION SELECT instance FROM audit_checkpoints ORDER BY 1",
        )?;
        let rows = statement.query_map([], |row| row.get(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Rows of an instance from `from_seq` on, in the order the store holds them.
    pub fn rows(
        &self,
        instance: &str,
        from_seq: u64,
        mut each: impl FnMut(StoredRow) -> bool,
    ) -> Result<(), StoreError> {
        let connection = match &self.0 {
            Reader::Sqlite(connection) => connection,
            Reader::Postgres(reader) => return reader.rows(instance, from_seq, each),
        };
        let mut statement = connection.prepare(
            "SELECT instance, seq, time_ms, subject, patient, decision, break_glass, body, hash
             FROM audit_records WHERE instance = ?1 AND seq >= ?2 ORDER BY seq",
        )?;
        let mut rows = statement.query(params![instance, from_seq])?;
        while let Some(row) = rows.next()? {
            let stored = StoredRow {
                instance: row.get(0)?,
                seq: row.get(1)?,
                time_ms: row.get(2)?,
                subject: row.get(3)?,
                patient: row.get(4)?,
                decision: row.get(5)?,
                break_glass: row.get(6)?,
                body: row.get(7)?,
                hash: row.get(8)?,
            };
            if !each(stored) {
                break;
            }
        }
        Ok(())
    }

    pub fn checkpoints(&self, instance: &str) -> Result<Vec<Checkpoint>, StoreError> {
        let connection = match &self.0 {
            Reader::Sqlite(connection) => connection,
            Reader::Postgres(reader) => return reader.checkpoints(instance),
        };
        let mut statement = connection.prepare(
            "SELECT instance, seq, hash, time, signature FROM audit_checkpoints WHERE instance = ?1 ORDER BY seq",
        )?;
        let rows = statement.query_map(params![instance], |row| {
            Ok(Checkpoint {
                instance: row.get(0)?,
                seq: row.get(1)?,
                hash: row.get(2)?,
                time: row.get(3)?,
                signature: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The smallest and largest row ids, to split a scan between threads.
    pub fn row_bounds(&self) -> Result<(i64, i64), StoreError> {
        let connection = match &self.0 {
            Reader::Sqlite(connection) => connection,
            Reader::Postgres(reader) => return reader.row_bounds(),
        };
        Ok(connection.query_row(
            "SELECT COALESCE(MIN(id), 0), COALESCE(MAX(id), 0) FROM audit_records",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?)
    }

    /// Calls `each` with the JSON body of every record in `[since_ms, until_ms)` among rows
    /// `rows` (inclusive), in store order, without holding them all in memory (reports over
    /// millions of records).
    pub fn scan(
        &self,
        since_ms: i64,
        until_ms: i64,
        rows: (i64, i64),
        mut each: impl FnMut(&str),
    ) -> Result<(), StoreError> {
        let connection = match &self.0 {
            Reader::Sqlite(connection) => connection,
            Reader::Postgres(reader) => return reader.scan(since_ms, until_ms, rows, each),
        };
        let mut statement = connection.prepare(
            "SELECT body FROM audit_records WHERE id BETWEEN ?3 AND ?4 AND time_ms >= ?1 AND time_ms < ?2",
        )?;
        let mut rows = statement.query(params![since_ms, until_ms, rows.0, rows.1])?;
        while let Some(row) = rows.next()? {
            let body = row.get_ref(0)?.as_str().map_err(rusqlite::Error::from)?;
            each(body);
        }
        Ok(())
    }

    /// Records matching the filter, oldest first (as stored; query does not verify).
    pub fn query(&self, filter: &QueryFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let bodies = match &self.0 {
            Reader::Postgres(reader) => reader.query(filter)?,
            Reader::Sqlite(connection) => {
                let (sql, values) = query_sql(filter, "break_glass = 1");
                let mut statement =
                    connection.prepare(&crate::store::sql::sqlite_placeholders(&sql))?;
                let values = values.iter().map(crate::store::sql::sqlite_value);
                let rows =
                    statement.query_map(rusqlite::params_from_iter(values), |row| row.get(0))?;
                rows.collect::<Result<Vec<String>, _>>()?
            }
        };
        Ok(bodies
            .iter()
            .filter_map(|body| serde_json::from_str::<AuditRecord>(body).ok())
            .collect())
    }
}

/// The `audit query` statement, with PostgreSQL's numbered `$n` placeholders, and its values
/// in order; `break_glass` is the backend's test of that column.
pub(super) fn query_sql(filter: &QueryFilter, break_glass: &str) -> (String, Vec<Value>) {
    let mut sql = String::from("SELECT body FROM audit_records WHERE 1 = 1");
    let mut values = Vec::new();
    let mut add = |clause: &str, value: Value| {
        values.push(value);
        sql.push_str(&format!(" AND {clause} ${}", values.len()));
    };
    if let Some(patient) = &filter.patient {
        add("patient_key =", Value::from(index_key(patient)));
        add("patient =", Value::from(patient));
    }
    if let Some(subject) = &filter.subject {
        add("subject_key =", Value::from(index_key(subject)));
        add("subject =", Value::from(subject));
    }
    if let Some(since) = filter.since_ms {
        add("time_ms >=", Value::from(since));
    }
    if let Some(until) = filter.until_ms {
        add("time_ms <", Value::from(until));
    }
    if let Some(decision) = &filter.decision {
        add("decision =", Value::from(decision));
    }
    if filter.break_glass_only {
        sql.push_str(&format!(" AND {break_glass}"));
    }
    sql.push_str(" ORDER BY time_ms, instance, seq");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {limit}"));
    }
    (sql, values)
}
