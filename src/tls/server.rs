//! The listener's TLS configuration, rebuilt from files on start and on every reload.

use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

use super::{load_certs, load_private_key, load_roots, provider, PROTOCOL_VERSIONS};
use crate::config::{ClientAuth, Invalid, ServerTls};

/// A ready server config and what operations want to know about it.
pub struct ServerTlsConfig {
    pub config: Arc<ServerConfig>,
    /// Expiry of the leaf certificate, as a Unix timestamp.
    pub cert_not_after: Option<i64>,
}

/// Builds the listener's config from `server.tls`: certificate chain and key, ALPN `h2` and
/// `http/1.1`, session tickets unless turned off, and client certificate verification when
/// `client_ca` is set.
pub fn server_config(tls: &ServerTls) -> Result<ServerTlsConfig, Vec<Invalid>> {
    let mut problems = Vec::new();
    let certs =
        load_certs(&tls.cert).map_err(|msg| problems.push(Invalid::new("server.tls.cert", msg)));
    let key = load_private_key(&tls.key)
        .map_err(|msg| problems.push(Invalid::new("server.tls.key", msg)));
    let verifier = tls.client_ca.as_ref().map(|ca| {
        let roots = load_roots(ca)
            .map_err(|msg| problems.push(Invalid::new("server.tls.client_ca", msg)))?;
        let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
        let builder = match tls.client_auth {
            ClientAuth::Required => builder,
            ClientAuth::Optional => builder.allow_unauthenticated(),
        };
        builder.build().map_err(|err| {
            problems.push(Invalid::new(
                "server.tls.client_ca",
                format!("cannot verify clients with this CA: {err}"),
            ))
        })
    });
    let (Ok(certs), Ok(key)) = (certs, key) else {
        return Err(problems);
    };
    let verifier = match verifier {
        Some(Ok(verifier)) => Some(verifier),
        Some(Err(())) => return Err(problems),
        None => None,
    };
    let cert_not_after = certs.first().and_then(super::cert_not_after);
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|err| vec![Invalid::new("server.tls", err.to_string())])?;
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|err| {
        vec![Invalid::new(
            "server.tls.key",
            format!("the key does not fit the certificate: {err}"),
        )]
    })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    if tls.session_tickets {
        // A client reconnecting (a phone between networks, an app woken up) resumes without a
        // certificate signature; rustls resumes TLS 1.3 with a fresh key exchange only, so
        // each connection keeps forward secrecy. Tickets of an earlier config do not open: a
        // reload's new certificate is seen by every client at once.
        config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|err| {
            vec![Invalid::new(
                "server.tls.session_tickets",
                format!("cannot make a ticket key: {err}"),
            )]
        })?;
    }
    Ok(ServerTlsConfig {
        config: Arc::new(config),
        cert_not_after,
    })
}
