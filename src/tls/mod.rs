//! TLS for both sides of the proxy: the listener's server config (modern protocols and
//! suites only, ALPN, optional mTLS) and the client config used to reach upstreams.
//! One crypto provider serves both, so the accepted suites are stated in one place.

mod client;
mod pem;
mod server;

use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};

pub use client::{ca_client_config, plaintext_only_client_config, upstream_client_config};
pub use pem::{cert_not_after, load_certs, load_private_key, load_roots};
pub use server::{server_config, ServerTlsConfig};

/// ring with the AEAD, forward-secret suites only: TLS 1.3's three, and TLS 1.2 ECDHE with
/// AES-GCM or ChaCha20-Poly1305. (rustls has no CBC, RC4 or static-RSA suites at all; listing
/// the suites keeps that a decision written here rather than a property of a dependency.)
pub fn provider() -> Arc<CryptoProvider> {
    use ring::cipher_suite::*;
    Arc::new(CryptoProvider {
        cipher_suites: vec![
            TLS13_AES_256_GCM_SHA384,
            TLS13_AES_128_GCM_SHA256,
            TLS13_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..ring::default_provider()
    })
}

/// TLS 1.3 and 1.2; nothing older.
pub static PROTOCOL_VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];
