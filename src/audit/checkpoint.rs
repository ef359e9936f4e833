//! Signed checkpoints: every so many records (or seconds) the chain head (instance, sequence,
//! hash, time) is signed with the instance's Ed25519 key, so the head can be handed to an
//! external witness and a rewritten chain cannot be passed off as the original.

use base64::Engine;
use ed25519_dalek::pkcs8::DecodePrivateKey;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub instance: String,
    pub seq: u64,
    pub hash: String,
    pub time: String,
    /// Base64 Ed25519 signature over [`Checkpoint::message`].
    pub signature: String,
}

impl Checkpoint {
    pub fn message(instance: &str, seq: u64, hash: &str, time: &str) -> String {
        format!("wardgate-checkpoint-v1\n{instance}\n{seq}\n{hash}\n{time}")
    }

    pub fn sign(key: &SigningKey, instance: &str, seq: u64, hash: &str, time: &str) -> Checkpoint {
        let signature = key.sign(Checkpoint::message(instance, seq, hash, time).as_bytes());
        Checkpoint {
            instance: instance.to_owned(),
            seq,
            hash: hash.to_owned(),
            time: time.to_owned(),
            signature: base64::engine::general_purpose::STANDARD.encode(signature.to_bytes()),
        }
    }

    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&self.signature) else {
            return false;
        };
        let Ok(signature) = Signature::from_slice(&bytes) else {
            return false;
        };
        key.verify(
            Checkpoint::message(&self.instance, self.seq, &self.hash, &self.time).as_bytes(),
            &signature,
        )
        .is_ok()
    }
}

/// Reads an Ed25519 private key (PKCS#8 PEM, as `openssl genpkey -algorithm ED25519` writes).
pub fn load_signing_key(path: &std::path::Path) -> Result<SigningKey, String> {
    let pem = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|err| format!("cannot read {}: {err}", path.display()))?,
    );
    SigningKey::from_pkcs8_pem(&pem).map_err(|_| {
        format!(
            "{} is not an Ed25519 private key in PKCS#8 PEM",
            path.display()
        )
    })
}
