//! The field ciphertext of DESIGN.md: a JSON string `"wg1:<base64url>"` whose bytes are
//! `0x01 | key id (u32, big endian) | nonce (12) | AES-256-GCM ciphertext and tag`.
//!
//! The plaintext is the field's JSON text exactly as it was (so numbers of any size, strings
//! with any escapes, objects and arrays come back byte for byte). The associated data binds
//! the format byte, the key id, the patient scope and the field name: a ciphertext moved to
//! another patient or another field, or altered in any byte, fails to open.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Key, Nonce, Tag};
use base64::Engine;
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

pub const PREFIX: &str = "wg1:";
const FORMAT: u8 = 1;
const HEADER: usize = 1 + 4 + 12;

/// A 256-bit data key and its id, with its AES key schedule made once; the bytes and the
/// schedule are wiped when dropped (aes-gcm's `zeroize` feature).
pub struct DataKey {
    pub id: u32,
    bytes: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl DataKey {
    pub fn new(id: u32, bytes: Zeroizing<[u8; 32]>) -> DataKey {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes.as_ref()));
        DataKey { id, bytes, cipher }
    }

    pub fn generate(id: u32) -> DataKey {
        let mut bytes = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(bytes.as_mut());
        DataKey::new(id, bytes)
    }

    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldCipherError {
    #[error("the value is not a wg1 ciphertext")]
    NotCiphertext,
    #[error("the ciphertext is malformed")]
    Malformed,
    #[error("the ciphertext names key {0}, which is not the patient's key")]
    WrongKey(u32),
    #[error(
        "the ciphertext does not authenticate (tampered, or moved to another patient or field)"
    )]
    Integrity,
}

/// Whether a JSON string value looks like a field ciphertext.
pub fn is_ciphertext(text: &str) -> bool {
    text.starts_with(PREFIX)
}

/// The key id a ciphertext names, without opening it (to fetch the right key).
pub fn key_id(text: &str) -> Result<u32, FieldCipherError> {
    let bytes = decode(text)?;
    Ok(u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]))
}

fn aad(header: &[u8], scope: &str, field: &str) -> Vec<u8> {
    const LABEL: &[u8] = b"wardgate-field-v1\0";
    let mut aad = Vec::with_capacity(LABEL.len() + header.len() + scope.len() + 1 + field.len());
    aad.extend_from_slice(LABEL);
    aad.extend_from_slice(header);
    aad.extend_from_slice(scope.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// Encrypts a field's JSON text for `scope` (the patient) and `field` (its name).
pub fn seal(key: &DataKey, scope: &str, field: &str, json: &[u8]) -> String {
    let mut text = String::with_capacity(PREFIX.len() + (HEADER + json.len() + 16) * 4 / 3 + 4);
    text.push_str(PREFIX);
    seal_into(key, scope, field, json, &mut text);
    text
}

/// [`seal`], appending the ciphertext's text (without the prefix) to `out`.
pub fn seal_into(key: &DataKey, scope: &str, field: &str, json: &[u8], out: &mut String) {
    let mut header = [0u8; HEADER];
    header[0] = FORMAT;
    header[1..5].copy_from_slice(&key.id.to_be_bytes());
    // Random 96-bit nonces from the thread's CSPRNG (ChaCha, seeded and reseeded from the
    // operating system): no system call per value.
    rand::thread_rng().fill_bytes(&mut header[5..HEADER]);
    let nonce = Nonce::from_slice(&header[5..HEADER]);
    let mut sealed = Vec::with_capacity(HEADER + json.len() + 16);
    sealed.extend_from_slice(&header);
    sealed.extend_from_slice(json);
    let tag = key.cipher.encrypt_in_place_detached(
        nonce,
        &aad(&header, scope, field),
        &mut sealed[HEADER..],
    );
    match tag {
        Ok(tag) => sealed.extend_from_slice(&tag),
        // Only for inputs beyond AES-GCM's 64 GiB limit, which no body reaches.
        Err(_) => sealed.truncate(HEADER),
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode_string(&sealed, out);
}

/// Decrypts a ciphertext made by [`seal`] for the same scope and field. The plaintext is
/// opened in the decoded buffer itself, which is wiped when dropped.
pub fn open(
    key: &DataKey,
    scope: &str,
    field: &str,
    text: &str,
) -> Result<Zeroizing<Vec<u8>>, FieldCipherError> {
    let mut bytes = Zeroizing::new(decode(text)?);
    let mut header = [0u8; HEADER];
    header.copy_from_slice(&bytes[..HEADER]);
    let id = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if id != key.id {
        return Err(FieldCipherError::WrongKey(id));
    }
    let tag_at = bytes.len() - 16;
    let tag = Tag::clone_from_slice(&bytes[tag_at..]);
    key.cipher
        .decrypt_in_place_detached(
            Nonce::from_slice(&header[5..HEADER]),
            &aad(&header, scope, field),
            &mut bytes[HEADER..tag_at],
            &tag,
        )
        .map_err(|_| FieldCipherError::Integrity)?;
    bytes.truncate(tag_at);
    bytes.drain(..HEADER);
    Ok(bytes)
}

fn decode(text: &str) -> Result<Vec<u8>, FieldCipherError> {
    let encoded = text
        .strip_prefix(PREFIX)
        .ok_or(FieldCipherError::NotCiphertext)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| FieldCipherError::Malformed)?;
    if bytes.len() < HEADER + 16 || bytes[0] != FORMAT {
        return Err(FieldCipherError::Malformed);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &[&str] = &[
        r#""110101199003071234""#,
        r#""escaped \"quote\" \u00e9 \ud83d\ude00""#,
        "13812345678",
        "123456789012345678901234567890.000000000000000000001e-7",
        "-0",
        "true",
        "null",
        r#"{"b":1,"a":[1,2,{"c":"d"}],"a":2}"#,
        "[]",
        r#""""#,
    ];

    #[test]
    fn every_json_value_round_trips_byte_for_byte() {
        let key = DataKey::generate(7);
        for value in VALUES {
            let sealed = seal(&key, "p-1001", "id_number", value.as_bytes());
            assert!(is_ciphertext(&sealed));
            assert_eq!(key_id(&sealed), Ok(7));
            let opened = open(&key, "p-1001", "id_number", &sealed).unwrap();
            assert_eq!(&opened[..], value.as_bytes());
        }
    }

    #[test]
    fn a_ciphertext_moved_to_another_patient_or_field_fails() {
        let key = DataKey::generate(1);
        let sealed = seal(&key, "p-1001", "phone", b"\"13812345678\"");
        assert_eq!(
            open(&key, "p-1002", "phone", &sealed),
            Err(FieldCipherError::Integrity)
        );
        assert_eq!(
            open(&key, "p-1001", "id_number", &sealed),
            Err(FieldCipherError::Integrity)
        );
        let other = DataKey::generate(1);
        assert_eq!(
            open(&other, "p-1001", "phone", &sealed),
            Err(FieldCipherError::Integrity)
        );
        let newer = DataKey::generate(2);
        assert_eq!(
            open(&newer, "p-1001", "phone", &sealed),
            Err(FieldCipherError::WrongKey(1))
        );
    }

    #[test]
    fn any_single_byte_change_fails() {
        let key = DataKey::generate(3);
        let sealed = seal(
            &key,
            "p-1",
            "diagnosis",
            br#"{"code":"I20.8","text":"stable angina"}"#,
        );
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&sealed[PREFIX.len()..])
            .unwrap();
        for i in 0..raw.len() {
            for flip in [0x01u8, 0x80] {
                let mut changed = raw.clone();
                changed[i] ^= flip;
                let text = format!(
                    "{PREFIX}{}",
                    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&changed)
                );
                assert!(
                    open(&key, "p-1", "diagnosis", &text).is_err(),
                    "byte {i} flipped with {flip:#x} still opened"
                );
            }
        }
        assert_eq!(
            open(&key, "p-1", "diagnosis", "wg1:short"),
            Err(FieldCipherError::Malformed)
        );
        assert_eq!(
            open(&key, "p-1", "diagnosis", "plain text"),
            Err(FieldCipherError::NotCiphertext)
        );
    }

    #[test]
    fn two_seals_of_one_value_differ() {
        let key = DataKey::generate(1);
        assert_ne!(seal(&key, "p", "f", b"1"), seal(&key, "p", "f", b"1"));
    }
}
