//! The erasure receipt: what was done in every system, when, how it was verified and what was
//! retained under legal hold, signed with the gateway's Ed25519 key (the audit signing key).
//! The signature covers the receipt's canonical JSON without the `signature` member; anyone
//! with the public key checks it with `wardgate erasure verify-receipt`.

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::store::Request;
use crate::store::rfc3339 as time;

pub const FORMAT: &str = "wardgate-erasure-receipt-v1";

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    pub format: String,
    pub request_id: String,
    /// The patient as a keyed pseudonym; the receipt never names the patient.
    pub patient_ref: String,
    pub requester: String,
    pub channel: String,
    pub verification_ref: String,
    pub submitted_by: String,
    pub approved_by: Option<String>,
    /// RFC 3339.
    pub received_at: String,
    pub due_at: String,
    pub finished_at: String,
    /// completed, partially_retained or failed.
    pub outcome: String,
    pub systems: Vec<ReceiptStep>,
    pub retained: Vec<Retained>,
    /// The public key that verifies the signature (hex), to tell keys apart.
    pub signer: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub signature: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ReceiptStep {
    pub system: String,
    pub action: String,
    pub outcome: String,
    pub attempts: u32,
    pub completed_at: Option<String>,
    pub verification: Option<String>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Retained {
    pub system: String,
    pub reason: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("not a wardgate erasure receipt: {0}")]
    Malformed(String),
    #[error("the receipt carries no signature")]
    Unsigned,
    #[error("the signature does not match: the receipt was altered, or signed by another key")]
    BadSignature,
}

impl Receipt {
    pub fn of(request: &Request, outcome: &str, finished_ms: i64, key: &SigningKey) -> Receipt {
        let systems = request
            .steps
            .iter()
            .filter(|step| step.state != "retained")
            .map(|step| ReceiptStep {
                system: step.system.clone(),
                action: step.kind.clone(),
                outcome: step.state.clone(),
                attempts: step.attempts,
                completed_at: step.done_at.map(time),
                verification: step.detail.clone(),
                error: step.last_error.clone().filter(|_| step.state == "failed"),
            })
            .collect();
        let retained = request
            .steps
            .iter()
            .filter(|step| step.state == "retained")
            .map(|step| Retained {
                system: step.system.clone(),
                reason: step.detail.clone().unwrap_or_default(),
            })
            .collect();
        let mut receipt = Receipt {
            format: FORMAT.to_owned(),
            request_id: request.id.clone(),
            patient_ref: request.patient_ref.clone(),
            requester: request.requester.clone(),
            channel: request.channel.clone(),
            verification_ref: request.verification_ref.clone(),
            submitted_by: request.submitted_by.clone(),
            approved_by: request.approved_by.clone(),
            received_at: time(request.received_at),
            due_at: time(request.due_at),
            finished_at: time(finished_ms),
            outcome: outcome.to_owned(),
            systems,
            retained,
            signer: hex::encode(key.verifying_key().as_bytes()),
            signature: None,
        };
        let signature = key.sign(receipt.signed_bytes().as_bytes());
        receipt.signature =
            Some(base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()));
        receipt
    }

    /// The bytes the signature covers.
    fn signed_bytes(&self) -> String {
        let unsigned = Receipt {
            signature: None,
            ..self.clone()
        };
        serde_json::to_string(&unsigned).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// Parses a receipt and checks its signature with `key`.
    pub fn verify(text: &str, key: &VerifyingKey) -> Result<Receipt, ReceiptError> {
        let receipt: Receipt =
            serde_json::from_str(text).map_err(|err| ReceiptError::Malformed(err.to_string()))?;
        if receipt.format != FORMAT {
            return Err(ReceiptError::Malformed(format!(
                "format {:?}",
                receipt.format
            )));
        }
        let encoded = receipt.signature.as_deref().ok_or(ReceiptError::Unsigned)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| ReceiptError::BadSignature)?;
        let signature = Signature::from_slice(&bytes).map_err(|_| ReceiptError::BadSignature)?;
        key.verify(receipt.signed_bytes().as_bytes(), &signature)
            .map_err(|_| ReceiptError::BadSignature)?;
        Ok(receipt)
    }
}
