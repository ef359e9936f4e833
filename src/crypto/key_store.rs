//! Per-patient data keys: one random 256-bit key per patient, stored only wrapped by the KEK
//! ring, keyed by the patient's pseudonym (never the plain id), in a [`KeyTable`]: the data
//! directory's `keys.db`, or the database replicas share. Keys in use are cached in a bounded
//! map; a key dropped from the cache is wiped from memory. Shredding leaves a tombstone: from
//! then on every ciphertext of that patient, wherever it is stored, is unreadable, and no new
//! key is ever made for them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use super::field_cipher::DataKey;
use super::key_table::{self, KeyRow, KeyTable};
use super::keyring::{KeyRing, KeyRingError, RingSource};
use crate::store::{Location, StoreError};

pub use super::key_table::KEYS_DB;

#[derive(Debug, thiserror::Error)]
pub enum KeyStoreError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Ring(#[from] KeyRingError),
    #[error("the patient's data key was shredded")]
    Shredded,
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
    table: Box<dyn KeyTable>,
    source: RingSource,
    ring: RwLock<KeyRing>,
    cache: Mutex<HashMap<String, Arc<DataKey>>>,
    cache_capacity: usize,
    /// The table's generation when the cache was last known to match it, and when that was
    /// checked: another process or replica shredding or rewrapping keys empties the cache
    /// within `FRESHNESS`.
    seen_generation: Mutex<(i64, Instant)>,
}

/// How stale the cache may be relative to changes made by other processes and replicas.
const FRESHNESS: Duration = Duration::from_millis(250);

impl PatientKeys {
    /// Opens the key table: in the data directory (given a path) or the shared database.
    pub fn open(
        location: impl Into<Location>,
        source: RingSource,
        cache_capacity: usize,
    ) -> Result<PatientKeys, KeyStoreError> {
        let ring = source.load()?;
        let table = key_table::open(&location.into())?;
        let generation = table.generation()?;
        Ok(PatientKeys {
            table,
            source,
            ring: RwLock::new(ring),
            cache: Mutex::new(HashMap::new()),
            cache_capacity: cache_capacity.max(1),
            seen_generation: Mutex::new((generation, Instant::now())),
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

    /// The key if it is in memory and the cache was checked against the store within
    /// `FRESHNESS`. Never touches the store: the request path calls it on an async task.
    pub fn cached(&self, patient: &str) -> Option<Arc<DataKey>> {
        let fresh = self
            .seen_generation
            .lock()
            .is_ok_and(|seen| seen.1.elapsed() < FRESHNESS);
        if !fresh {
            return None;
        }
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
        self.forget_if_changed_elsewhere();
        if let Some(key) = self.cached(patient) {
            return Ok(Some(key));
        }
        let key = match self.table.get(patient)? {
            Some(KeyRow::Shredded) => return Err(KeyStoreError::Shredded),
            Some(KeyRow::Live(wrapped)) => self.unwrap(patient, &wrapped)?,
            None if create => {
                let key = DataKey::generate(1);
                let (wrapped, version) = {
                    let ring = self.ring.read().map_err(|_| poisoned())?;
                    (ring.wrap(patient, &key), ring.newest())
                };
                match self.table.insert_new(patient, wrapped, version)? {
                    KeyRow::Shredded => return Err(KeyStoreError::Shredded),
                    // Another replica may have made the patient's key first: theirs stands.
                    KeyRow::Live(stored) => self.unwrap(patient, &stored)?,
                }
            }
            None => return Ok(None),
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

    /// Empties the cache when the table changed elsewhere since last looked. Asks the store:
    /// only on blocking threads.
    fn forget_if_changed_elsewhere(&self) {
        let Ok(mut seen) = self.seen_generation.lock() else {
            return;
        };
        if seen.1.elapsed() < FRESHNESS {
            return;
        }
        let previous = seen.0;
        let current = self.table.generation().ok();
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
        Ok(self.table.shred(patient)?)
    }

    /// Shreds every listed patient's key still alive, in one transaction (at start, for the
    /// erased patients: a data directory restored from before an erasure holds their keys).
    /// Returns how many live keys were destroyed.
    pub fn shred_all(&self, patients: &[String]) -> Result<usize, KeyStoreError> {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
        Ok(self.table.shred_all(patients)?)
    }

    /// Rewraps every live key under the ring's newest version (after a rotation); backend
    /// data is untouched. Returns how many keys were rewrapped.
    pub fn rewrap_all(&self) -> Result<usize, KeyStoreError> {
        let ring = self.ring.read().map_err(|_| poisoned())?;
        let newest = ring.newest();
        let stale = self.table.stale(newest)?;
        let mut rewrapped = Vec::with_capacity(stale.len());
        for (patient, wrapped) in stale {
            let key = ring.unwrap(&patient, &wrapped)?;
            rewrapped.push((patient.clone(), ring.wrap(&patient, &key)));
        }
        let count = rewrapped.len();
        self.table.store_rewrapped(rewrapped, newest)?;
        Ok(count)
    }

    pub fn counts(&self) -> Result<KeyCounts, KeyStoreError> {
        Ok(self.table.counts()?)
    }
}

fn poisoned() -> KeyStoreError {
    KeyStoreError::Store(StoreError::Gone("keys"))
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
