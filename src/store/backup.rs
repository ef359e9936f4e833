//! `wardgate backup`: a consistent copy of every store in the data directory, taken while the
//! gateway runs. Each database is copied with SQLite's `VACUUM INTO`, which reads one
//! snapshot (a transaction) of the live file, so a copy never mixes two moments and never
//! holds half a commit; copying the files with `cp` while the gateway writes can. The copy
//! gets a MANIFEST (time, files, sizes, SHA-256). The key ring and the erasure ledger are not
//! in the data directory and are backed up apart from it (docs/operations.md says why).

use std::path::{Path, PathBuf};

use rusqlite::OpenFlags;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::audit::store::AUDIT_DB;
use crate::crypto::key_store::KEYS_DB;
use crate::erasure::store::ERASURE_DB;
use crate::review::store::REVIEW_DB;
use crate::selfcheck::history::SELFCHECK_DB;

/// Every store a data directory can hold.
pub const STORES: [&str; 5] = [AUDIT_DB, KEYS_DB, ERASURE_DB, REVIEW_DB, SELFCHECK_DB];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{path} already holds a backup; give a new folder")]
    Exists { path: PathBuf },
    #[error("no stores in the data directory {0}: nothing to back up")]
    Empty(PathBuf),
    #[error("cannot copy {path}: {source}")]
    Copy {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize)]
pub struct Manifest {
    pub taken_at: String,
    pub data_dir: PathBuf,
    pub files: Vec<BackedUp>,
}

#[derive(Debug, Serialize)]
pub struct BackedUp {
    pub file: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Copies every store of `data_dir` into `out` (created; must not hold a backup already).
pub fn backup(data_dir: &Path, out: &Path) -> Result<Manifest, BackupError> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| BackupError::Write { path, source }
    };
    if out.join("MANIFEST").exists() || STORES.iter().any(|store| out.join(store).exists()) {
        return Err(BackupError::Exists {
            path: out.to_owned(),
        });
    }
    std::fs::create_dir_all(out).map_err(write_error(out))?;
    let taken_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut files = Vec::new();
    for store in STORES {
        let source = data_dir.join(store);
        if !source.exists() {
            continue;
        }
        let target = out.join(store);
        let copy_error = |source_error| BackupError::Copy {
            path: source.clone(),
            source: source_error,
        };
        let connection =
            rusqlite::Connection::open_with_flags(&source, OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(copy_error)?;
        connection
            .busy_timeout(std::time::Duration::from_secs(10))
            .map_err(copy_error)?;
        connection
            .execute("VACUUM INTO ?1", [target.to_string_lossy()])
            .map_err(copy_error)?;
        // Hashed as a stream: an audit store can be many gigabytes.
        let mut hasher = Sha256::new();
        let bytes = std::fs::File::open(&target)
            .and_then(|mut file| {
                let bytes = std::io::copy(&mut file, &mut hasher)?;
                file.sync_all()?;
                Ok(bytes)
            })
            .map_err(write_error(&target))?;
        files.push(BackedUp {
            file: store.to_owned(),
            bytes,
            sha256: hex::encode(hasher.finalize()),
        });
    }
    if files.is_empty() {
        return Err(BackupError::Empty(data_dir.to_owned()));
    }
    let manifest = Manifest {
        taken_at,
        data_dir: data_dir.to_owned(),
        files,
    };
    let manifest_path = out.join("MANIFEST");
    let text = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    std::fs::write(&manifest_path, text + "\n").map_err(write_error(&manifest_path))?;
    std::fs::File::open(out)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error(out))?;
    Ok(manifest)
}
