//! The key-encryption key (KEK) ring: versioned 256-bit keys in a file only the gateway may
//! read (a world-readable ring is refused). The newest version wraps data keys; every version
//! still unwraps, so a rotation can rewrap data keys at leisure without touching backend data.
//!
//! Ring file (JSON, mode 0600): `{"versions": [{"version": 1, "created": "...", "key": "<base64>"}]}`.
//! Wrapped data key: `KEK version (u32, big endian) | nonce (12) | AES-256-GCM(dek id | dek)`,
//! with the KEK version and the patient reference as associated data, so a wrapped key
//! cannot be moved to another patient.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::Engine;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::field_cipher::DataKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("cannot read the key ring {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the key ring {0} is readable by other users (mode {1:o}); chmod 600 it")]
    Exposed(PathBuf, u32),
    #[error("the key ring {0} is not a valid ring: {1}")]
    Invalid(PathBuf, String),
    #[error("cannot write the key ring {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0} exists already; wardgate never overwrites a key ring")]
    Exists(PathBuf),
    #[error("the wrapped key names KEK version {0}, which the ring does not hold")]
    UnknownVersion(u32),
    #[error("the wrapped key does not authenticate (tampered, or another patient's)")]
    Integrity,
    #[error("the key ring in environment variable {0}: {1}")]
    Env(String, String),
}

/// Where the gateway reads its ring: a file, or an environment variable holding the same JSON
/// (for secret managers that inject environment).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RingSource {
    File(PathBuf),
    Env(String),
}

impl RingSource {
    pub fn load(&self) -> Result<KeyRing, KeyRingError> {
        match self {
            RingSource::File(path) => KeyRing::load(path),
            RingSource::Env(name) => {
                let text = Zeroizing::new(std::env::var(name).map_err(|_| {
                    KeyRingError::Env(name.clone(), "not set, or not UTF-8".to_owned())
                })?);
                KeyRing::parse(&text).map_err(|reason| KeyRingError::Env(name.clone(), reason))
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct RingFile {
    versions: Vec<VersionEntry>,
}

#[derive(Serialize, Deserialize)]
struct VersionEntry {
    version: u32,
    created: String,
    key: String,
}

/// A public summary of one version: never the key bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    pub version: u32,
    pub created: String,
}

pub struct KeyRing {
    /// Ascending by version.
    versions: Vec<(u32, String, Zeroizing<[u8; 32]>)>,
}

impl KeyRing {
    /// Loads a ring file, refusing one that other users can read.
    pub fn load(path: &Path) -> Result<KeyRing, KeyRingError> {
        let metadata = std::fs::metadata(path).map_err(|source| KeyRingError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o004 != 0 {
            return Err(KeyRingError::Exposed(path.to_owned(), mode));
        }
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|source| KeyRingError::Read {
                    path: path.to_owned(),
                    source,
                })?,
            );
        KeyRing::parse(&text).map_err(|reason| KeyRingError::Invalid(path.to_owned(), reason))
    }

    fn parse(text: &str) -> Result<KeyRing, String> {
        let file: RingFile = serde_json::from_str(text).map_err(|err| err.to_string())?;
        let mut versions = Vec::new();
        for entry in file.versions {
            let decoded = Zeroizing::new(
                base64::engine::general_purpose::STANDARD
                    .decode(entry.key.as_bytes())
                    .map_err(|_| format!("version {}: the key is not base64", entry.version))?,
            );
            let mut key = Zeroizing::new([0u8; 32]);
            if decoded.len() != 32 {
                return Err(format!("version {}: a key is 32 bytes", entry.version));
            }
            key.copy_from_slice(&decoded);
            versions.push((entry.version, entry.created, key));
        }
        versions.sort_by_key(|(version, _, _)| *version);
        if versions.is_empty() {
            return Err("the ring holds no version".to_owned());
        }
        if versions.windows(2).any(|pair| pair[0].0 == pair[1].0) {
            return Err("a version appears twice".to_owned());
        }
        Ok(KeyRing { versions })
    }

    /// Creates a ring file with one fresh version (mode 0600; never overwrites).
    pub fn create(path: &Path, now: &str) -> Result<KeyRing, KeyRingError> {
        if path.exists() {
            return Err(KeyRingError::Exists(path.to_owned()));
        }
        let ring = KeyRing {
            versions: vec![(1, now.to_owned(), fresh_key())],
        };
        ring.write(path, true)?;
        Ok(ring)
    }

    /// Adds a version, which wraps from now on, and rewrites the file in place.
    pub fn rotate(&mut self, path: &Path, now: &str) -> Result<u32, KeyRingError> {
        let version = self.newest() + 1;
        self.versions.push((version, now.to_owned(), fresh_key()));
        self.write(path, false)?;
        Ok(version)
    }

    fn write(&self, path: &Path, new: bool) -> Result<(), KeyRingError> {
        let file = RingFile {
            versions: self
                .versions
                .iter()
                .map(|(version, created, key)| VersionEntry {
                    version: *version,
                    created: created.clone(),
                    key: base64::engine::general_purpose::STANDARD.encode(key.as_ref()),
                })
                .collect(),
        };
        let text = Zeroizing::new(serde_json::to_string_pretty(&file).unwrap_or_default());
        let temporary = path.with_extension("tmp");
        let write = |target: &Path| -> std::io::Result<()> {
            let mut out = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(target)?;
            out.write_all(text.as_bytes())?;
            out.sync_all()
        };
        let failed = |source| KeyRingError::Write {
            path: path.to_owned(),
            source,
        };
        if new {
            write(path).map_err(failed)
        } else {
            let _ = std::fs::remove_file(&temporary);
            write(&temporary).map_err(failed)?;
            std::fs::rename(&temporary, path).map_err(failed)
        }
    }

    pub fn newest(&self) -> u32 {
        self.versions.last().map_or(0, |(version, _, _)| *version)
    }

    pub fn versions(&self) -> Vec<VersionInfo> {
        self.versions
            .iter()
            .map(|(version, created, _)| VersionInfo {
                version: *version,
                created: created.clone(),
            })
            .collect()
    }

    fn key(&self, version: u32) -> Option<&[u8; 32]> {
        self.versions
            .iter()
            .find(|(v, _, _)| *v == version)
            .map(|(_, _, key)| &**key)
    }

    /// Wraps a data key for a patient with the newest version.
    pub fn wrap(&self, patient_ref: &str, key: &DataKey) -> Vec<u8> {
        let version = self.newest();
        let Some(kek) = self.key(version) else {
            return Vec::new();
        };
        let mut nonce = [0u8; 12];
        OsRng.fill_bytes(&mut nonce);
        let mut plain = Zeroizing::new(Vec::with_capacity(36));
        plain.extend_from_slice(&key.id.to_be_bytes());
        plain.extend_from_slice(key.bytes());
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek));
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: &aad(version, patient_ref),
                },
            )
            .unwrap_or_default();
        let mut out = Vec::with_capacity(16 + sealed.len());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The KEK version a wrapped key was made with.
    pub fn wrapped_version(wrapped: &[u8]) -> Option<u32> {
        wrapped
            .get(..4)
            .map(|v| u32::from_be_bytes([v[0], v[1], v[2], v[3]]))
    }

    pub fn unwrap(&self, patient_ref: &str, wrapped: &[u8]) -> Result<DataKey, KeyRingError> {
        let version = KeyRing::wrapped_version(wrapped).ok_or(KeyRingError::Integrity)?;
        let kek = self
            .key(version)
            .ok_or(KeyRingError::UnknownVersion(version))?;
        if wrapped.len() < 16 + 16 {
            return Err(KeyRingError::Integrity);
        }
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(kek));
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    Nonce::from_slice(&wrapped[4..16]),
                    Payload {
                        msg: &wrapped[16..],
                        aad: &aad(version, patient_ref),
                    },
                )
                .map_err(|_| KeyRingError::Integrity)?,
        );
        if plain.len() != 36 {
            return Err(KeyRingError::Integrity);
        }
        let id = u32::from_be_bytes([plain[0], plain[1], plain[2], plain[3]]);
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(&plain[4..]);
        Ok(DataKey::new(id, bytes))
    }
}

fn fresh_key() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(key.as_mut());
    key
}

fn aad(version: u32, patient_ref: &str) -> Vec<u8> {
    let mut aad = b"wardgate-dek-v1\0".to_vec();
    aad.extend_from_slice(&version.to_be_bytes());
    aad.extend_from_slice(patient_ref.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_keys_survive_rotation_and_stay_bound_to_their_patient() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let mut ring = KeyRing::create(&path, "2026-11-22T00:00:00Z").unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let dek = DataKey::generate(1);
        let old = ring.wrap("pt_a", &dek);
        assert_eq!(KeyRing::wrapped_version(&old), Some(1));

        assert_eq!(ring.rotate(&path, "2026-12-01T00:00:00Z").unwrap(), 2);
        let ring = KeyRing::load(&path).unwrap();
        assert_eq!(ring.newest(), 2);
        assert_eq!(
            ring.unwrap("pt_a", &old).unwrap().bytes(),
            dek.bytes(),
            "old versions still unwrap"
        );
        let new = ring.wrap("pt_a", &dek);
        assert_eq!(KeyRing::wrapped_version(&new), Some(2));
        assert_eq!(ring.unwrap("pt_a", &new).unwrap().id, 1);
        assert!(matches!(
            ring.unwrap("pt_b", &new),
            Err(KeyRingError::Integrity)
        ));
        let mut tampered = new.clone();
        tampered[20] ^= 1;
        assert!(matches!(
            ring.unwrap("pt_a", &tampered),
            Err(KeyRingError::Integrity)
        ));
        assert!(matches!(
            KeyRing::create(&path, "x"),
            Err(KeyRingError::Exists(_))
        ));
        let listed = ring.versions();
        assert_eq!(listed.len(), 2);
        assert!(!format!("{listed:?}")
            .contains(&base64::engine::general_purpose::STANDARD.encode(dek.bytes())));
    }

    #[test]
    fn a_world_readable_or_broken_ring_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        KeyRing::create(&path, "now").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyRing::load(&path).err().unwrap().to_string();
        assert!(err.contains("readable by other users (mode 644)"), "{err}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(
            &path,
            r#"{"versions":[{"version":1,"created":"now","key":"c2hvcnQ="}]}"#,
        )
        .unwrap();
        assert!(KeyRing::load(&path)
            .err()
            .unwrap()
            .to_string()
            .contains("a key is 32 bytes"));
        assert!(KeyRing::load(&dir.path().join("missing.json")).is_err());
    }
}
