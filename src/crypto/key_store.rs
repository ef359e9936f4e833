//! Per-patient data keys: one random 256-bit key per patient, stored only wrapped by the KEK
//! ring, in `data_dir/keys.db`, keyed by the patient's pseudonym (never the plain id). Keys in
//! use are cached in a bounded map; a key dropped from the cache is wiped from memory.
//! Shredding deletes the wrapped key and leaves a tombstone: from then on every ciphertext of
//! that patient, wherever it is stored, is unreadable, and no new key is ever made for them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};

use super::field_cipher::DataKey;
use super::keyring::{KeyRing, KeyRingError, RingSource};
use crate::store::{self, StoreError};

pub const KEYS_DB: &str = "keys.db";

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ring(#[from] KeyRingError),
    #[error("the patient's data key was shredded")]
    Shredded,
}

impl From<rusqlite::Error> for KeyStoreError {
    fn from(err: rusqlite::Error) -> Self {
        KeyStoreError::Store(StoreError::Sql(err))
    }
}

/// Counts for `keys list`: never key bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub live: u64,
    pub shredded: u64,
    /// Live keys by the KEK version that wraps them.
    pub by_version: Vec<(u32, u64)>,
}

pub struct PatientKeys {
    connection: Mutex<Connection>,
    source: RingSource,
    ring: RwLock<KeyRing>,
    cache: Mutex<HashMap<String, Arc<DataKey>>>,
    cache_capacity: usize,
    /// SQLite's `data_version` when the cache was last known to match the store, and when it
    /// was last checked: another process (`wardgate keys shred`, `keys rotate`) changing the
    /// store empties the cache within `FRESHNESS`.
    seen_version: Mutex<(i64, Instant)>,
}

/// How stale the cache may be relative to changes made by other processes.
const FRESHNESS: Duration = Duration::from_millis(250);

impl PatientKeys {
    pub fn open(
        data_dir: &Path,
        source: RingSource,
        cache_capacity: usize,
    ) -> Result<PatientKeys, KeyStoreError> {
        let ring = source.load()?;
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
        let version = data_version(&connection)?;
        Ok(PatientKeys {
            connection: Mutex::new(connection),
            source,
            ring: RwLock::new(ring),
            cache: Mutex::new(HashMap::new()),
            cache_capacity: cache_capacity.max(1),
            seen_version: Mutex::new((version, Instant::now())),
        })
    }

    pub fn ring_source(&self) -> &RingSource {
        &self.source
    }

    /// The newest KEK version of the ring in use.
    pub fn ring_version(&self) -> u32 {
        self.ring.read().map_or(0, |ring| ring.newest())
    }

    /// Reads the ring again (after `keys rotate`); returns whether it has a newer version.
    pub fn reload_ring(&self) -> Result<bool, KeyStoreError> {
        let ring = self.source.load()?;
        let newer = ring.newest() > self.ring_version();
        if let Ok(mut current) = self.ring.write() {
            *current = ring;
        }
        Ok(newer)
    }

    /// The key if it is in memory (no store access, for the request path's fast case).
    pub fn cached(&self, patient: &str) -> Option<Arc<DataKey>> {
        self.forget_if_changed_elsewhere();
        self.cache.lock().ok()?.get(patient).cloned()
    }

    /// The patient's key, made (and stored wrapped) on first use.
    pub fn key_for(&self, patient: &str) -> Result<Arc<DataKey>, KeyStoreError> {
        self.fetch(patient, true)?.ok_or(KeyStoreError::Shredded)
    }

    /// The patient's key if one was ever made; never makes one (reading needs no new key).
    pub fn existing_key(&self, patient: &str) -> Result<Option<Arc<DataKey>>, KeyStoreError> {
        self.fetch(patient, false)
    }

    fn fetch(&self, patient: &str, create: bool) -> Result<Option<Arc<DataKey>>, KeyStoreError> {
        if let Some(key) = self.cached(patient) {
            return Ok(Some(key));
        }
        let key = {
            let connection = self.connection.lock().map_err(|_| poisoned())?;
            let row: Option<(Option<Vec<u8>>, bool)> = connection
                .query_row(
                    "SELECT wrapped, shredded FROM patient_keys WHERE patient = ?1",
                    params![patient],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            match row {
                Some((_, true)) => return Err(KeyStoreError::Shredded),
                Some((Some(wrapped), false)) => self.unwrap(patient, &wrapped)?,
                Some((None, false)) | None if create => {
                    let key = DataKey::generate(1);
                    let ring = self.ring.read().map_err(|_| poisoned())?;
                    connection.execute(
                        "INSERT INTO patient_keys (patient, wrapped, kek_version, shredded) VALUES (?1, ?2, ?3, 0)",
                        params![patient, ring.wrap(patient, &key), ring.newest()],
                    )?;
                    key
                }
                Some((None, false)) | None => return Ok(None),
            }
        };
        let key = Arc::new(key);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= self.cache_capacity {
                // Dropping an entry wipes the key once no request holds it any more.
                if let Some(evicted) = cache.keys().next().cloned() {
                    cache.remove(&evicted);
                }
            }
            cache.insert(patient.to_owned(), key.clone());
        }
        Ok(Some(key))
    }

    /// Unwraps with the ring in use, reading the ring again when the key was wrapped by a
    /// version made since (a rotation by another process).
    fn unwrap(&self, patient: &str, wrapped: &[u8]) -> Result<DataKey, KeyStoreError> {
        let attempt = self
            .ring
            .read()
            .map_err(|_| poisoned())?
            .unwrap(patient, wrapped);
        match attempt {
            Err(KeyRingError::UnknownVersion(_)) => {
                self.reload_ring()?;
                Ok(self
                    .ring
                    .read()
                    .map_err(|_| poisoned())?
                    .unwrap(patient, wrapped)?)
            }
            other => Ok(other?),
        }
    }

    /// Empties the cache when another connection changed the store since last looked.
    fn forget_if_changed_elsewhere(&self) {
        let Ok(mut seen) = self.seen_version.lock() else {
            return;
        };
        if seen.1.elapsed() < FRESHNESS {
            return;
        }
        let previous = seen.0;
        let current = self
            .connection
            .lock()
            .ok()
            .and_then(|connection| data_version(&connection).ok());
        *seen = (current.unwrap_or(previous), Instant::now());
        // When unsure (the store cannot be asked), forget too: keys are fetched again.
        if current != Some(previous) {
            if let Ok(mut cache) = self.cache.lock() {
                cache.clear();
            }
            // `keys rotate` writes the store after the ring: new keys get the new version.
            if let Err(err) = self.reload_ring() {
                tracing::error!("cannot re-read the key ring: {err}");
            }
        }
    }

    /// Destroys the patient's key; returns whether there was one.
    pub fn shred(&self, patient: &str) -> Result<bool, KeyStoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(patient);
        }
        let Ok(connection) = self.connection.lock() else {
            return Ok(false);
        };
        let existed: bool = connection
            .query_row(
                "SELECT wrapped IS NOT NULL FROM patient_keys WHERE patient = ?1 AND shredded = 0",
                params![patient],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(false);
        connection.execute(
            "INSERT INTO patient_keys (patient, wrapped, kek_version, shredded) VALUES (?1, NULL, NULL, 1)
             ON CONFLICT (patient) DO UPDATE SET wrapped = NULL, kek_version = NULL, shredded = 1",
            params![patient],
        )?;
        Ok(existed)
    }

    /// Shreds every listed patient's key still alive, in one transaction (at start, for the
    /// erased patients: a data directory restored from before an erasure holds their keys).
    /// Returns how many live keys were destroyed.
    pub fn shred_all(&self, patients: &[String]) -> Result<usize, KeyStoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        let Ok(mut connection) = self.connection.lock() else {
            return Ok(0);
        };
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

    /// Rewraps every live key under the ring's newest version (after a rotation); backend
    /// data is untouched. Returns how many keys were rewrapped.
    pub fn rewrap_all(&self) -> Result<usize, KeyStoreError> {
        let Ok(mut connection) = self.connection.lock() else {
            return Ok(0);
        };
        let ring = self.ring.read().map_err(|_| poisoned())?;
        let newest = ring.newest();
        let transaction = connection.transaction()?;
        let stale: Vec<(String, Vec<u8>)> = {
            let mut statement = transaction.prepare(
                "SELECT patient, wrapped FROM patient_keys WHERE shredded = 0 AND wrapped IS NOT NULL AND kek_version <> ?1",
            )?;
            let rows =
                statement.query_map(params![newest], |row| Ok((row.get(0)?, row.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        for (patient, wrapped) in &stale {
            let key = ring.unwrap(patient, wrapped)?;
            transaction.execute(
                "UPDATE patient_keys SET wrapped = ?1, kek_version = ?2 WHERE patient = ?3",
                params![ring.wrap(patient, &key), newest, patient],
            )?;
        }
        // Always a write, so running gateways see the store change and re-read the ring.
        transaction.execute(
            "INSERT INTO key_meta (name, value) VALUES ('ring_version', ?1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![newest],
        )?;
        transaction.commit()?;
        Ok(stale.len())
    }

    pub fn counts(&self) -> Result<KeyCounts, KeyStoreError> {
        let Ok(connection) = self.connection.lock() else {
            return Ok(KeyCounts::default());
        };
        let (live, shredded): (u64, u64) = connection.query_row(
            "SELECT COALESCE(SUM(shredded = 0), 0), COALESCE(SUM(shredded = 1), 0) FROM patient_keys",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let mut statement = connection.prepare(
            "SELECT kek_version, COUNT(*) FROM patient_keys WHERE shredded = 0 GROUP BY kek_version ORDER BY kek_version",
        )?;
        let by_version = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<Result<_, _>>()?;
        Ok(KeyCounts {
            live,
            shredded,
            by_version,
        })
    }
}

fn data_version(connection: &Connection) -> Result<i64, rusqlite::Error> {
    connection.query_row("PRAGMA data_version", [], |row| row.get(0))
}

fn poisoned() -> KeyStoreError {
    KeyStoreError::Store(StoreError::Sql(rusqlite::Error::InvalidQuery))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::field_cipher::{open, seal};

    #[test]
    fn keys_are_made_once_survive_rotation_and_shredding_is_final() {
        let dir = tempfile::tempdir().unwrap();
        let ring_path = dir.path().join("ring.json");
        KeyRing::create(&ring_path, "t0").unwrap();
        let keys = PatientKeys::open(dir.path(), RingSource::File(ring_path.clone()), 2).unwrap();
        let a = keys.key_for("pt_a").unwrap();
        let sealed = seal(&a, "pt_a", "phone", b"\"13812345678\"");
        keys.key_for("pt_b").unwrap();
        keys.key_for("pt_c").unwrap(); // evicts one of the cached keys
        drop(keys);

        // A rotation, then a rewrap: old ciphertexts still open.
        let mut ring = KeyRing::load(&ring_path).unwrap();
        ring.rotate(&ring_path, "t1").unwrap();
        let keys = PatientKeys::open(dir.path(), RingSource::File(ring_path.clone()), 16).unwrap();
        assert_eq!(keys.counts().unwrap().by_version, vec![(1, 3)]);
        assert_eq!(keys.rewrap_all().unwrap(), 3);
        assert_eq!(keys.counts().unwrap().by_version, vec![(2, 3)]);
        let again = keys.key_for("pt_a").unwrap();
        assert_eq!(
            &open(&again, "pt_a", "phone", &sealed).unwrap()[..],
            b"\"13812345678\""
        );

        // Shredding: the key is gone for good, others unaffected.
        assert!(keys.shred("pt_a").unwrap());
        assert!(matches!(keys.key_for("pt_a"), Err(KeyStoreError::Shredded)));
        assert!(keys.key_for("pt_b").is_ok());
        assert!(!keys.shred("pt_a").unwrap());
        let counts = keys.counts().unwrap();
        assert_eq!((counts.live, counts.shredded), (2, 1));
        let stored = std::fs::read(dir.path().join(KEYS_DB)).unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("13812345678"));
    }
}
