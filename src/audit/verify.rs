//! `wardgate audit verify`: walks each instance's chain and its signed checkpoints and reports
//! the first thing wrong: a record edited (its hash or its indexed columns no longer match its
//! body), deleted (a gap in the sequence), reordered or inserted (a record that does not
//! follow the one before), a checkpoint forged or pointing at a record that changed, or a tail
//! truncated behind a signed checkpoint. Records after the last checkpoint are reported as not
//! yet signed: nothing can prove their absence.

use std::fmt;

use ed25519_dalek::VerifyingKey;

use super::checkpoint::Checkpoint;
use super::record::{AuditRecord, GENESIS};
use super::store::{AuditReader, StoredRow};
use crate::store::StoreError;

/// What was found wrong, first problem only, precise enough to go and look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub instance: String,
    pub message: String,
}

/// The outcome for one instance's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainReport {
    pub instance: String,
    pub records: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub checkpoints: usize,
    pub last_signed_seq: Option<u64>,
}

pub struct Verification {
    pub chains: Vec<ChainReport>,
    pub problem: Option<Problem>,
}

impl fmt::Display for Verification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(problem) = &self.problem {
            return write!(
                f,
                "TAMPERED: instance {}: {}",
                problem.instance, problem.message
            );
        }
        if self.chains.is_empty() {
            return write!(f, "ok: the audit store holds no records yet");
        }
        for (i, chain) in self.chains.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(
                f,
                "ok: instance {}: {} records (seq {}..{}), {} signed checkpoints",
                chain.instance, chain.records, chain.first_seq, chain.last_seq, chain.checkpoints
            )?;
            match chain.last_signed_seq {
                Some(signed) if signed >= chain.last_seq => write!(f, ", all records signed")?,
                Some(signed) => write!(
                    f,
                    ", last signed at seq {signed}; {} later records not yet signed",
                    chain.last_seq - signed
                )?,
                None => write!(
                    f,
                    "; no checkpoint yet, {} records not yet signed",
                    chain.records
                )?,
            }
        }
        Ok(())
    }
}

pub fn verify(
    reader: &AuditReader,
    key: &VerifyingKey,
    from_seq: u64,
) -> Result<Verification, StoreError> {
    let mut chains = Vec::new();
    for instance in reader.instances()? {
        let checkpoints = reader.checkpoints(&instance)?;
        match verify_chain(reader, key, &instance, &checkpoints, from_seq)? {
            Ok(report) => chains.push(report),
            Err(message) => {
                return Ok(Verification {
                    chains,
                    problem: Some(Problem { instance, message }),
                })
            }
        }
    }
    Ok(Verification {
        chains,
        problem: None,
    })
}

fn verify_chain(
    reader: &AuditReader,
    key: &VerifyingKey,
    instance: &str,
    checkpoints: &[Checkpoint],
    from_seq: u64,
) -> Result<Result<ChainReport, String>, StoreError> {
    for checkpoint in checkpoints {
        if checkpoint.instance != instance || !checkpoint.verify(key) {
            return Ok(Err(format!(
                "the checkpoint at seq {} has no valid signature (forged or edited)",
                checkpoint.seq
            )));
        }
    }
    let mut previous: Option<(u64, String)> = None;
    let mut first_seq = 0;
    let mut count = 0u64;
    let mut problem: Option<String> = None;
    reader.rows(instance, from_seq, |row| {
        if let Err(message) = check_row(&row, previous.as_ref(), checkpoints, from_seq) {
            problem = Some(message);
            return false;
        }
        if count == 0 {
            first_seq = row.seq;
        }
        count += 1;
        previous = Some((row.seq, row.hash));
        true
    })?;
    if let Some(message) = problem {
        return Ok(Err(message));
    }
    let last_seq = previous.as_ref().map_or(0, |(seq, _)| *seq);
    // Every checkpoint in the walked range must match the record it signed.
    let by_seq: std::collections::HashMap<u64, &Checkpoint> =
        checkpoints.iter().map(|c| (c.seq, c)).collect();
    let last_signed = checkpoints.last().map(|c| c.seq);
    if let Some(signed) = last_signed {
        if signed > last_seq && signed >= from_seq {
            return Ok(Err(format!(
                "the chain ends at seq {last_seq} but a checkpoint signs seq {signed}: records {}..{signed} were removed (truncated tail)",
                last_seq + 1
            )));
        }
    }
    let mut mismatch = None;
    reader.rows(instance, from_seq, |row| {
        if let Some(checkpoint) = by_seq.get(&row.seq) {
            if checkpoint.hash != row.hash {
                mismatch = Some(format!(
                    "record {} differs from the one the checkpoint at seq {} signed (rewritten chain)",
                    row.seq, checkpoint.seq
                ));
                return false;
            }
        }
        true
    })?;
    if let Some(message) = mismatch {
        return Ok(Err(message));
    }
    Ok(Ok(ChainReport {
        instance: instance.to_owned(),
        records: count,
        first_seq,
        last_seq,
        checkpoints: checkpoints.len(),
        last_signed_seq: last_signed,
    }))
}

fn check_row(
    row: &StoredRow,
    previous: Option<&(u64, String)>,
    checkpoints: &[Checkpoint],
    from_seq: u64,
) -> Result<(), String> {
    let seq = row.seq;
    let record: AuditRecord = serde_json::from_str(&row.body)
        .map_err(|_| format!("record {seq} is not a readable record (edited)"))?;
    if AuditRecord::hash_of(&row.body) != row.hash {
        return Err(format!(
            "record {seq} was edited: its hash does not match its content"
        ));
    }
    if record.seq != seq {
        return Err(format!(
            "the record stored at seq {seq} says it is record {} (reordered or moved)",
            record.seq
        ));
    }
    let columns_match = record.instance == row.instance
        && record.time_ms == row.time_ms
        && record.subject == row.subject
        && record.patient == row.patient
        && record.decision == row.decision
        && record.break_glass.is_some() == row.break_glass;
    if !columns_match {
        return Err(format!(
            "record {seq} was edited: its indexed columns differ from its content"
        ));
    }
    match previous {
        Some((prev_seq, _)) if seq != prev_seq + 1 => Err(format!(
            "records {}..{} are missing after record {prev_seq} (deleted)",
            prev_seq + 1,
            seq - 1
        )),
        Some((prev_seq, prev_hash)) if record.prev_hash != *prev_hash => Err(format!(
            "record {seq} does not follow record {prev_seq} (inserted, reordered or rewritten)"
        )),
        Some(_) => Ok(()),
        None if seq == 1 && from_seq <= 1 => {
            if record.prev_hash == GENESIS {
                Ok(())
            } else {
                Err("record 1 does not start the chain (inserted or rewritten)".to_owned())
            }
        }
        None if from_seq > 1 && seq == from_seq => Ok(()),
        None => {
            // The oldest records were pruned: a kept checkpoint must anchor the first one left.
            match checkpoints.iter().find(|c| c.seq + 1 == seq) {
                Some(anchor) if anchor.hash == record.prev_hash => Ok(()),
                Some(_) => Err(format!("record {seq} does not follow the checkpoint that anchors it (rewritten)")),
                None => Err(format!("records before {seq} are missing and no checkpoint anchors record {seq} (deleted)")),
            }
        }
    }
}
