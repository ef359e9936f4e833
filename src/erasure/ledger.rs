//! The erasure ledger: an append-only file of erased patients' pseudonyms (never a plain id),
//! kept apart from the data directory and its backups (`erasure.ledger_file`). A backup of
//! the data directory taken before an erasure still holds the patient's data key; restored,
//! it would bring every ciphertext of the patient back. So the ledger is written (and synced)
//! before the key is shredded, and at every start each patient it lists is erased again:
//! tombstoned and their key shredded, whatever the restored stores say.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error("cannot write the erasure ledger {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the erasure ledger {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a patient pseudonym (the ledger holds one per line)")]
    Malformed { path: PathBuf, line: usize },
}

pub struct Ledger {
    path: PathBuf,
}

impl Ledger {
    pub fn new(path: &Path) -> Ledger {
        Ledger {
            path: path.to_owned(),
        }
    }

    /// Adds a patient, durably (the file is synced before this returns); adding one twice is
    /// harmless.
    pub fn append(&self, patient_ref: &str) -> Result<(), LedgerError> {
        let failed = |source| LedgerError::Write {
            path: self.path.clone(),
            source,
        };
        if !is_pseudonym(patient_ref) {
            return Err(failed(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "only pseudonyms are written to the ledger",
            )));
        }
        let created = !self.path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&self.path)
            .map_err(failed)?;
        file.write_all(format!("{patient_ref}\n").as_bytes())
            .map_err(failed)?;
        file.sync_all().map_err(failed)?;
        if created {
            // The new file's directory entry must survive a crash too.
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)
                    .and_then(|dir| dir.sync_all())
                    .map_err(failed)?;
            }
        }
        Ok(())
    }

    /// Every patient listed, in order; none when the file does not exist yet.
    pub fn patients(&self) -> Result<Vec<String>, LedgerError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(LedgerError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut patients = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            if !is_pseudonym(line) {
                return Err(LedgerError::Malformed {
                    path: self.path.clone(),
                    line: index + 1,
                });
            }
            patients.push(line.to_owned());
        }
        Ok(patients)
    }
}

/// Pseudonyms are `pt_` and 32 lowercase hex digits (`audit::pseudonym`); anything else is
/// refused, so a plain patient id can never be written here by mistake.
fn is_pseudonym(text: &str) -> bool {
    text.strip_prefix("pt_").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_patients_are_read_back_and_plain_ids_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ledger = Ledger::new(&dir.path().join("erased"));
        assert!(ledger.patients().expect("missing is empty").is_empty());
        let a = format!("pt_{}", "a".repeat(32));
        let b = format!("pt_{}", "0123456789abcdef".repeat(2));
        ledger.append(&a).expect("append");
        ledger.append(&b).expect("append");
        assert_eq!(ledger.patients().expect("read"), vec![a.clone(), b]);
        assert!(ledger.append("p-1001").is_err());

        std::fs::write(dir.path().join("erased"), format!("{a}\np-1001\n")).expect("write");
        let err = ledger.patients().expect_err("malformed");
        assert!(
            err.to_string()
                .ends_with("erased:2: not a patient pseudonym (the ledger holds one per line)"),
            "{err}"
        );
    }
}
