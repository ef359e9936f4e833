//! The audit record: one per request, whatever ended it. It names the patient only by a keyed
//! pseudonym and fields only by name; it never holds a token, a field value or a raw path (the
//! route's template says what was reached). `body` is the record's canonical JSON (fields in
//! declaration order, without `hash`); `hash` is SHA-256 over it, and `prev_hash` chains it
//! to the record before.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of an instance's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub seq: u64,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Milliseconds since the Unix epoch (the same instant as `time`, for range queries).
    pub time_ms: i64,
    pub request_id: String,
    pub instance: String,
    pub subject: Option<String>,
    pub roles: Vec<String>,
    pub auth_method: Option<String>,
    /// The caller's department, when its identity names one. Left out of the canonical form
    /// when absent, so records written before this field existed still verify.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
    pub client: String,
    pub method: String,
    pub route: Option<String>,
    pub template: Option<String>,
    /// HMAC pseudonym of the patient id; never the id itself.
    pub patient: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    /// allow, deny, unauthenticated, unmatched, rejected, unavailable.
    pub decision: String,
    /// The policy rule that decided, or why nothing did.
    pub rule: Option<String>,
    /// The specific reason a request was refused (authentication failure, path rejection...).
    pub reason: Option<String>,
    pub break_glass: Option<String>,
    /// Names of protected fields shown to the caller in plain, never their values...
    pub fields_revealed: Vec<String>,
    /// ...and of those shown masked, hashed or removed. Absent from records written before
    /// field protection existed (`default`, so they still read and verify after an upgrade;
    /// the hash covers the stored text, not a re-encoding).
    #[serde(default)]
    pub fields_masked: Vec<String>,
    pub status: u16,
    pub upstream_status: Option<u16>,
    pub latency_ms: f64,
    /// Integrity and delivery notes: `audit_unavailable`, `integrity_failure` (a protected
    /// value that did not authenticate), `key_shredded`, `key_missing`.
    pub flags: Vec<String>,
    pub prev_hash: String,
}

impl AuditRecord {
    /// The canonical encoding the hash covers.
    pub fn canonical(&self) -> String {
        // A record is 700-800 bytes: starting at 1 KiB rather than serde_json's 128 bytes
        // saves three reallocations and copies, and ends at the same capacity.
        let mut body = Vec::with_capacity(1024);
        match serde_json::to_writer(&mut body, self) {
            // serde_json writes UTF-8 only.
            Ok(()) => String::from_utf8(body).unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    pub fn hash_of(body: &str) -> String {
        prefixed_hex("", &Sha256::digest(body.as_bytes()))
    }
}

/// `prefix`, then `bytes` in lowercase hex, in one allocation. (`hex::encode` builds its
/// `String` a `char` at a time, and a prefix added with `format!` is a second allocation: both
/// showed in the profiles, with a hash per record and a pseudonym per request.)
pub fn prefixed_hex(prefix: &str, bytes: &[u8]) -> String {
    let mut text = vec![0u8; prefix.len() + bytes.len() * 2];
    text[..prefix.len()].copy_from_slice(prefix.as_bytes());
    // Fails only when the output length is wrong, and it is not.
    let _ = hex::encode_to_slice(bytes, &mut text[prefix.len()..]);
    String::from_utf8(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_follows_its_prefix_in_lowercase() {
        assert_eq!(
            prefixed_hex("pt_", &[0x00, 0xab, 0x7f, 0xff]),
            "pt_00ab7fff"
        );
        assert_eq!(prefixed_hex("", &[0x0f]), "0f");
        assert_eq!(prefixed_hex("h_", &[]), "h_");
    }

    #[test]
    fn a_record_written_before_field_protection_still_reads() {
        // The body of a record as wardgate wrote it before `department` and `fields_masked`.
        let body = r#"{"seq":1,"time":"2026-11-22T08:00:00.000Z","time_ms":1795334400025,"request_id":"gen-1","instance":"gw","subject":"dr-1","roles":["doctor"],"auth_method":"jwt","client":"10.1.2.3","method":"GET","route":"records","template":"/api/patients/{patient_id}/records","patient":"pt_f0ae192a64b0c75b8d1e0cc45b802456","resource":"medical_record","action":"read","decision":"allow","rule":"p, doctor, same_department, medical_record, read","reason":null,"break_glass":null,"fields_revealed":[],"status":200,"upstream_status":200,"latency_ms":1.234,"flags":[],"prev_hash":"0000"}"#;
        let record: AuditRecord = serde_json::from_str(body).expect("an old record reads");
        assert!(record.fields_masked.is_empty() && record.department.is_none());
        assert_eq!(record.subject.as_deref(), Some("dr-1"));
    }
}
