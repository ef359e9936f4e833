//! Patient pseudonyms (and the hashes redacted fields are shown as): HMAC-SHA256 of the patient id under a key only the gateway (and an
//! officer running `audit query` with the same config) holds. The same patient always maps to
//! the same pseudonym, so the trail can be searched, but a stolen trail names nobody.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::record::prefixed_hex;
use zeroize::Zeroizing;

pub struct Pseudonymizer {
    key: Zeroizing<Vec<u8>>,
}

impl Pseudonymizer {
    pub fn new(key: Zeroizing<Vec<u8>>) -> Self {
        Pseudonymizer { key }
    }

    /// `pt_` and the first 32 hex digits (128 bits) of the HMAC.
    pub fn pseudonym(&self, patient_id: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"wardgate-patient-v1\n");
        mac.update(patient_id.as_bytes());
        let digest = mac.finalize().into_bytes();
        prefixed_hex("pt_", &digest[..16])
    }

    /// `h_` and 128 bits of HMAC over a field's name and JSON value: a stand-in for a value
    /// a caller may not see, equal for equal values of the same field, unlinkable across
    /// fields, and meaningless without the key.
    pub fn field_hash(&self, field: &str, json: &str) -> String {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.key) else {
            return String::new();
        };
        mac.update(b"wardgate-field-hash-v1\n");
        mac.update(field.as_bytes());
        mac.update(b"\0");
        mac.update(json.as_bytes());
        let digest = mac.finalize().into_bytes();
        prefixed_hex("h_", &digest[..16])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_hide_the_id() {
        let a = Pseudonymizer::new(Zeroizing::new(b"0123456789abcdef0123456789abcdef".to_vec()));
        let b = Pseudonymizer::new(Zeroizing::new(
            b"another key another key another k".to_vec(),
        ));
        assert_eq!(a.pseudonym("p-1001"), a.pseudonym("p-1001"));
        assert_ne!(a.pseudonym("p-1001"), a.pseudonym("p-1002"));
        assert_ne!(a.pseudonym("p-1001"), b.pseudonym("p-1001"));
        assert!(!a.pseudonym("p-1001").contains("1001"));
        assert_eq!(a.pseudonym("p-1001").len(), 35);
    }
}
