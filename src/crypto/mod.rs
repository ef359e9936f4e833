//! Field-level encryption (pipeline stages 6 and 8's machinery): the key ring that wraps
//! per-patient data keys (`keyring.rs`), the data keys themselves (`key_store.rs`), the `wg1:`
//! field ciphertext (`field_cipher.rs`), and the JSON side: documents held as their exact text
//! (`json_doc.rs`), the paths rules select values with (`json_path.rs`), how values are shown
//! (`redact.rs`) and the transformer that applies a route's rules to a body (`fields.rs`).
//! Only audited primitives are composed here: AES-256-GCM from the `aes-gcm` crate, HMAC and
//! SHA-256 from RustCrypto, randomness from the operating system.

pub mod field_cipher;
pub mod fields;
pub mod json_doc;
pub mod json_path;
pub mod key_store;
pub mod key_table;
pub mod keyring;
pub mod manage;
pub mod redact;
