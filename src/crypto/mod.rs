//! Field-level encryption (pipeline stages 6 and 8's machinery, being built): the key ring
//! that wraps per-patient data keys (`keyring.rs`) and the `wg1:` field ciphertext
//! (`field_cipher.rs`). Only audited primitives are composed here: AES-256-GCM from the
//! `aes-gcm` crate, randomness from the operating system.

pub mod field_cipher;
pub mod key_store;
pub mod keyring;
