//! Where wrapped patient keys are kept: a SQLite file in the data directory (one instance) or
//! the PostgreSQL database replicas share. Both hold one row per patient pseudonym: the key
//! wrapped by the KEK ring and its version, or a tombstone once shredded. The table never
//! sees an unwrapped key; `key_store` does the wrapping and the caching.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

use super::key_store::KeyCounts;
use crate::store::postgres::Postgres;
use crate::store::{self, Location, StoreError};

pub const KEYS_DB: &str = "keys.db";

/// A patient's row.
pub enum KeyRow {
    Live(Vec<u8>),
    Shredded,
}

pub trait KeyTable: Send + Sync {
    fn get(&self, patient: &str) -> Result<Option<KeyRow>, StoreError>;
    /// Stores `wrapped` unless the patient has a row already (another replica made their key
    /// first, or shredded it); returns the row that stands.
    fn insert_new(
        &self,
        patient: &str,
        wrapped: Vec<u8>,
        version: u32,
    ) -> Result<KeyRow, StoreError>;
    /// Tombstones the patient; returns whether a live key was destroyed.
    fn shred(&self, patient: &str) -> Result<bool, StoreError>;
    /// Tombstones every listed patient in one transaction; returns how many live keys died.
    fn shred_all(&self, patients: &[String]) -> Result<usize, StoreError>;
    /// Live keys wrapped by another version than `newest`.
    fn stale(&self, newest: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Stores rewrapped keys (skipping any shredded meanwhile) and records `newest` as the
    /// ring version in use, in one transaction.
    fn store_rewrapped(
        &self,
        rewrapped: Vec<(String, Vec<u8>)>,
        newest: u32,
    ) -> Result<(), StoreError>;
    fn counts(&self) -> Result<KeyCounts, StoreError>;
    /// A value that changes whenever another process or replica shreds or rewraps keys.
    fn generation(&self) -> Result<i64, StoreError>;
}

/// Opens the table where the stores live.
pub fn open(location: &Location) -> Result<Box<dyn KeyTable>, StoreError> {
    Ok(match location {
        Location::Shared(settings) => Box::new(PostgresKeys(Postgres::connect(
            settings,
            "keys",
            POSTGRES_SCHEMA,
        )?)),
        Location::DataDir(data_dir) => Box::new(SqliteKeys::open(data_dir)?),
    })
}

pub struct SqliteKeys(Mutex<Connection>);

impl SqliteKeys {
    fn open(data_dir: &Path) -> Result<SqliteKeys, StoreError> {
        let connection = store::open(data_dir, KEYS_DB)?;
        connection.execute_batch(
            "CREATE TABLE IF NOT EXISTS patient_keys (
                 patient     TEXT PRIMARY KEY,
                 wrapped     BLOB,
                 kek_version INTEGER,
                 shredded    INTEGER NOT NULL DEFAULT 0
             );
             CREATE TABLE IF NOT EXISTS key_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )?;
        Ok(SqliteKeys(Mutex::new(connection)))
    }

    fn connection(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.0.lock().map_err(|_| StoreError::Gone("keys"))
    }
}

fn row(wrapped: Option<Vec<u8>>, shredded: bool) -> KeyRow {
    match (wrapped, shredded) {
        (Some(wrapped), false) => KeyRow::Live(wrapped),
        _ => KeyRow::Shredded,
    }
}

impl KeyTable for SqliteKeys {
    fn get(&self, patient: &str) -> Result<Option<KeyRow>, StoreError> {
        Ok(self
            .connection()?
            .query_row(
                "SELECT wrapped, shredded FROM patient_keys WHERE patient = ?1",
                params![patient],
                |r| Ok(row(r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    fn insert_new(
        &self,
        patient: &str,
        wrapped: Vec<u8>,
        version: u32,
    ) -> Result<KeyRow, StoreError> {
        let connection = self.connection()?;
        connection.execute(
            "INSERT INTO patient_keys (patient, wrapped, kek_version, shredded) VALUES (?1, ?2, ?3, 0)
             ON CONFLICT (patient) DO NOTHING",
            params![patient, wrapped, version],
        )?;
        Ok(connection.query_row(
            "SELECT wrapped, shredded FROM patient_keys WHERE patient = ?1",
            params![patient],
            |r| Ok(row(r.get(0)?, r.get(1)?)),
        )?)
    }

    fn shred(&self, patient: &str) -> Result<bool, StoreError> {
        self.shred_all(&[patient.to_owned()]).map(|n| n > 0)
    }

    fn shred_all(&self, patients: &[String]) -> Result<usize, StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction()?;
        let mut destroyed = 0;
        for patient in patients {
            destroyed += transaction.execute(
                "UPDATE patient_keys SET wrapped = NULL, kek_version = NULL, shredded = 1
                 WHERE patient = ?1 AND shredded = 0",
                params![patient],
            )?;
            transaction.execute(
                "INSERT OR IGNORE INTO patient_keys (patient, wrapped, kek_version, shredded) VALUES (?1, NULL, NULL, 1)",
                params![patient],
            )?;
        }
        transaction.commit()?;
        Ok(destroyed)
    }

    fn stale(&self, newest: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let connection = self.connection()?;
        let mut statement = connection.prepare(
            "SELECT patient, wrapped FROM patient_keys WHERE shredded = 0 AND wrapped IS NOT NULL AND kek_version <> ?1",
        )?;
        let rows = statement.query_map(params![newest], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn store_rewrapped(
        &self,
        rewrapped: Vec<(String, Vec<u8>)>,
        newest: u32,
    ) -> Result<(), StoreError> {
        let mut connection = self.connection()?;
        let transaction = connection.transaction()?;
        for (patient, wrapped) in &rewrapped {
            transaction.execute(
                "UPDATE patient_keys SET wrapped = ?1, kek_version = ?2 WHERE patient = ?3 AND shredded = 0",
                params![wrapped, newest, patient],
            )?;
        }
        // Always a write, so running gateways see the store change and re-read the ring.
        transaction.execute(
            "INSERT INTO key_meta (name, value) VALUES ('ring_version', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![newest],
        )?;
        transaction.commit()?;
        Ok(())
    }

    fn counts(&self) -> Result<KeyCounts, StoreError> {
        let connection = self.connection()?;
        let (live, shredded): (u64, u64) = connection.query_row(
            "SELECT COALESCE(SUM(shredded = 0), 0), COALESCE(SUM(shredded = 1), 0) FROM patient_keys",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut statement = connection.prepare(
            "SELECT kek_version, COUNT(*) FROM patient_keys WHERE shredded = 0 GROUP BY kek_version ORDER BY kek_version",
        )?;
        let by_version = statement
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(KeyCounts {
            live,
            shredded,
            by_version,
        })
    }

    /// SQLite's `data_version`: it changes when another connection commits.
    fn generation(&self) -> Result<i64, StoreError> {
        Ok(self
            .connection()?
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }
}

/// `generation` counts shreds and rewraps: every replica polls it to drop cached keys.
const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS patient_keys (
    patient     TEXT PRIMARY KEY,
    wrapped     BYTEA,
    kek_version INTEGER,
    shredded    BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE TABLE IF NOT EXISTS key_meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL);
INSERT INTO key_meta (name, value) VALUES ('generation', 0) ON CONFLICT (name) DO NOTHING;
";

const BUMP_GENERATION: &str = "UPDATE key_meta SET value = value + 1 WHERE name = 'generation'";

pub struct PostgresKeys(Postgres);

fn version_param(version: u32) -> i32 {
    i32::try_from(version).unwrap_or(i32::MAX)
}

impl KeyTable for PostgresKeys {
    fn get(&self, patient: &str) -> Result<Option<KeyRow>, StoreError> {
        let patient = patient.to_owned();
        self.0.run("cannot read a patient key", move |client| {
            Ok(client
                .query_opt(
                    "SELECT wrapped, shredded FROM patient_keys WHERE patient = $1",
                    &[&patient],
                )?
                .map(|r| row(r.get(0), r.get(1))))
        })
    }

    fn insert_new(
        &self,
        patient: &str,
        wrapped: Vec<u8>,
        version: u32,
    ) -> Result<KeyRow, StoreError> {
        let patient = patient.to_owned();
        self.0.run("cannot store a new patient key", move |client| {
            client.execute(
                "INSERT INTO patient_keys (patient, wrapped, kek_version, shredded)
                 VALUES ($1, $2, $3, FALSE) ON CONFLICT (patient) DO NOTHING",
                &[&patient, &wrapped, &version_param(version)],
            )?;
            let r = client.query_one(
                "SELECT wrapped, shredded FROM patient_keys WHERE patient = $1",
                &[&patient],
            )?;
            Ok(row(r.get(0), r.get(1)))
        })
    }

    fn shred(&self, patient: &str) -> Result<bool, StoreError> {
        self.shred_all(&[patient.to_owned()]).map(|n| n > 0)
    }

    fn shred_all(&self, patients: &[String]) -> Result<usize, StoreError> {
        let patients = patients.to_vec();
        self.0.run("cannot shred patient keys", move |client| {
            let mut transaction = client.transaction()?;
            let mut destroyed = 0;
            for patient in &patients {
                destroyed += transaction.execute(
                    "UPDATE patient_keys SET wrapped = NULL, kek_version = NULL, shredded = TRUE
                     WHERE patient = $1 AND NOT shredded",
                    &[patient],
                )?;
                transaction.execute(
                    "INSERT INTO patient_keys (patient, wrapped, kek_version, shredded)
                     VALUES ($1, NULL, NULL, TRUE) ON CONFLICT (patient) DO NOTHING",
                    &[patient],
                )?;
            }
            transaction.execute(BUMP_GENERATION, &[])?;
            transaction.commit()?;
            Ok(usize::try_from(destroyed).unwrap_or(usize::MAX))
        })
    }

    fn stale(&self, newest: u32) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.0.run("cannot read patient keys", move |client| {
            Ok(client
                .query(
                    "SELECT patient, wrapped FROM patient_keys
                     WHERE NOT shredded AND wrapped IS NOT NULL AND kek_version <> $1",
                    &[&version_param(newest)],
                )?
                .into_iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect())
        })
    }

    fn store_rewrapped(
        &self,
        rewrapped: Vec<(String, Vec<u8>)>,
        newest: u32,
    ) -> Result<(), StoreError> {
        self.0.run("cannot store rewrapped keys", move |client| {
            let mut transaction = client.transaction()?;
            for (patient, wrapped) in &rewrapped {
                transaction.execute(
                    "UPDATE patient_keys SET wrapped = $1, kek_version = $2
                     WHERE patient = $3 AND NOT shredded",
                    &[wrapped, &version_param(newest), patient],
                )?;
            }
            transaction.execute(BUMP_GENERATION, &[])?;
            transaction.commit()
        })
    }

    fn counts(&self) -> Result<KeyCounts, StoreError> {
        self.0.run("cannot count patient keys", |client| {
            let totals = client.query_one(
                "SELECT COUNT(*) FILTER (WHERE NOT shredded), COUNT(*) FILTER (WHERE shredded)
                 FROM patient_keys",
                &[],
            )?;
            let by_version = client
                .query(
                    "SELECT kek_version, COUNT(*) FROM patient_keys WHERE NOT shredded
                     GROUP BY kek_version ORDER BY kek_version",
                    &[],
                )?
                .into_iter()
                .map(|r| {
                    let version: Option<i32> = r.get(0);
                    let count: i64 = r.get(1);
                    (
                        version.and_then(|v| u32::try_from(v).ok()).unwrap_or(0),
                        u64::try_from(count).unwrap_or(0),
                    )
                })
                .collect();
            let live: i64 = totals.get(0);
            let shredded: i64 = totals.get(1);
            Ok(KeyCounts {
                live: u64::try_from(live).unwrap_or(0),
                shredded: u64::try_from(shredded).unwrap_or(0),
                by_version,
            })
        })
    }

    fn generation(&self) -> Result<i64, StoreError> {
        self.0.run("cannot read the key generation", |client| {
            Ok(client
                .query_one("SELECT value FROM key_meta WHERE name = 'generation'", &[])?
                .get(0))
        })
    }
}
