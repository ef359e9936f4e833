//! The audit trail's two keys, made by `wardgate audit keygen`: the pseudonym key (32 random
//! bytes, hex) and the Ed25519 checkpoint signing key (PKCS#8 PEM). Both are written with mode
//! 0600 and never overwritten.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::SigningKey;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

pub const PSEUDONYM_KEY_FILE: &str = "audit-pseudonym.key";
pub const SIGNING_KEY_FILE: &str = "audit-signing.pem";

#[derive(Debug, thiserror::Error)]
pub enum KeygenError {
    #[error("{0} exists already; wardgate never overwrites a key (move it away first)")]
    Exists(PathBuf),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the signing key: {0}")]
    Encode(String),
}

/// Writes both keys into `dir`; returns (pseudonym key file, signing key file).
pub fn generate(dir: &Path) -> Result<(PathBuf, PathBuf), KeygenError> {
    let pseudonym_path = dir.join(PSEUDONYM_KEY_FILE);
    let signing_path = dir.join(SIGNING_KEY_FILE);
    for path in [&pseudonym_path, &signing_path] {
        if path.exists() {
            return Err(KeygenError::Exists(path.clone()));
        }
    }
    let mut secret = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(secret.as_mut());
    let hex = Zeroizing::new(hex::encode(secret.as_ref()));
    write_private(&pseudonym_path, hex.as_bytes())?;
    let signing = SigningKey::generate(&mut OsRng);
    let pem = signing
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|err| KeygenError::Encode(err.to_string()))?;
    write_private(&signing_path, pem.as_bytes())?;
    Ok((pseudonym_path, signing_path))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeygenError> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut file| file.write_all(bytes))
        .map_err(|source| KeygenError::Write {
            path: path.to_owned(),
            source,
        })
}
