//! What `wardgate keys init|rotate|list|shred` do, against the config's key ring and the data
//! directory's key store. They work while the gateway runs: SQLite lets both use the store,
//! the gateway notices another process's changes within a quarter second (its key cache is
//! emptied) and reads a rotated ring when it meets a key wrapped by the new version or on its
//! next reload.

use std::fmt;
use std::path::{Path, PathBuf};

use super::key_store::{KeyCounts, KeyStoreError, PatientKeys};
use super::keyring::{KeyRing, KeyRingError, RingSource, VersionInfo};
use crate::audit::Pseudonymizer;
use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ManageError {
    #[error("the config has no `field_protection` section")]
    NotConfigured,
    #[error(
        "the key ring comes from environment variable {0}; create and rotate it where it is \
         kept, then restart or reload wardgate"
    )]
    RingInEnvironment(String),
    #[error("{0}")]
    Ring(#[from] KeyRingError),
    #[error("{0}")]
    Store(#[from] KeyStoreError),
    #[error("{0}")]
    PseudonymKey(String),
    #[error("{0}")]
    Ledger(#[from] crate::erasure::ledger::LedgerError),
}

/// Where the config says the ring is.
pub fn ring_source(config: &Config) -> Result<RingSource, ManageError> {
    let protection = config
        .field_protection
        .as_ref()
        .ok_or(ManageError::NotConfigured)?;
    match (&protection.key_ring_file, &protection.key_ring_env) {
        (Some(path), _) => Ok(RingSource::File(path.clone())),
        (None, Some(name)) => Ok(RingSource::Env(name.clone())),
        (None, None) => Err(ManageError::NotConfigured),
    }
}

fn ring_file(config: &Config) -> Result<PathBuf, ManageError> {
    match ring_source(config)? {
        RingSource::File(path) => Ok(path),
        RingSource::Env(name) => Err(ManageError::RingInEnvironment(name)),
    }
}

fn open_store(config: &Config) -> Result<PatientKeys, ManageError> {
    let location = crate::store::Location::for_tools(config).map_err(KeyStoreError::from)?;
    Ok(PatientKeys::open(location, ring_source(config)?, 16)?)
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Creates a new ring file (mode 0600) with one version; never overwrites.
pub fn init(path: &Path) -> Result<VersionInfo, ManageError> {
    let ring = KeyRing::create(path, &now())?;
    Ok(ring.versions().remove(0))
}

/// The ring file a config names, for `keys init --config`.
pub fn configured_ring_file(config: &Config) -> Result<PathBuf, ManageError> {
    ring_file(config)
}

pub struct Rotated {
    pub version: u32,
    pub rewrapped: usize,
}

impl fmt::Display for Rotated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key ring version {} added; {} data keys rewrapped under it (backend data untouched)",
            self.version, self.rewrapped
        )
    }
}

/// Adds a ring version, then rewraps every data key under it.
pub fn rotate(config: &Config) -> Result<Rotated, ManageError> {
    let path = ring_file(config)?;
    let mut ring = KeyRing::load(&path)?;
    let version = ring.rotate(&path, &now())?;
    let keys = open_store(config)?;
    let rewrapped = keys.rewrap_all()?;
    Ok(Rotated { version, rewrapped })
}

pub struct Listing {
    pub versions: Vec<VersionInfo>,
    pub counts: KeyCounts,
}

impl fmt::Display for Listing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{:<8} {:<22} {:>12}", "VERSION", "CREATED", "DATA KEYS")?;
        let newest = self.versions.last().map_or(0, |v| v.version);
        for version in &self.versions {
            let wrapped = self
                .counts
                .by_version
                .iter()
                .find(|(v, _)| *v == version.version)
                .map_or(0, |(_, count)| *count);
            let marker = if version.version == newest {
                "  (wraps new keys)"
            } else {
                ""
            };
            writeln!(
                f,
                "{:<8} {:<22} {:>12}{marker}",
                version.version, version.created, wrapped
            )?;
        }
        write!(
            f,
            "\n{} patient keys live, {} shredded",
            self.counts.live, self.counts.shredded
        )
    }
}

/// Versions and counts; never key bytes.
pub fn list(config: &Config) -> Result<Listing, ManageError> {
    let ring = ring_source(config)?.load()?;
    let keys = open_store(config)?;
    Ok(Listing {
        versions: ring.versions(),
        counts: keys.counts()?,
    })
}

/// Destroys a patient's data key (given the plain id, as the hospital knows it); returns
/// whether a key existed.
pub fn shred(config: &Config, patient_id: &str) -> Result<bool, ManageError> {
    let key = crate::identity::read_secret(&config.audit.pseudonym_key_file, 32)
        .map_err(ManageError::PseudonymKey)?;
    let patient = Pseudonymizer::new(key).pseudonym(patient_id);
    if let Some(path) = config
        .erasure
        .as_ref()
        .and_then(|e| e.ledger_file.as_deref())
    {
        crate::erasure::ledger::Ledger::new(path).append(&patient)?;
    }
    Ok(open_store(config)?.shred(&patient)?)
}
