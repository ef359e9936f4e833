//! TLS to upstreams, the key server, erasure systems and the shared database: the server's
//! certificate is verified (against a configured CA or the system roots), and a client
//! certificate is presented when configured (mTLS to the backend). A client that only makes
//! plain connections gets a config that trusts nothing, and the system roots are not read.

use std::path::Path;

use rustls::client::WantsClientCert;
use rustls::{ClientConfig, ConfigBuilder, RootCertStore};

use super::{load_certs, load_private_key, load_roots, provider, PROTOCOL_VERSIONS};
use crate::config::{Invalid, UpstreamTls};

/// The client config for one upstream (or the shared database); `key` is the config key
/// path of its `tls` block.
pub fn upstream_client_config(
    key: &str,
    tls: Option<&UpstreamTls>,
) -> Result<ClientConfig, Vec<Invalid>> {
    let mut problems = Vec::new();
    let roots = match tls.and_then(|tls| tls.ca.as_ref()) {
        Some(ca) => {
            load_roots(ca).map_err(|msg| problems.push(Invalid::new(format!("{key}.ca"), msg)))
        }
        None => system_roots("set tls.ca to the CA bundle its certificate chains to")
            .map_err(|msg| problems.push(Invalid::new(key, msg))),
    };
    let identity = match tls.and_then(|tls| tls.client_cert.as_ref().zip(tls.client_key.as_ref())) {
        Some((cert, private_key)) => {
            let certs = load_certs(cert)
                .map_err(|msg| problems.push(Invalid::new(format!("{key}.client_cert"), msg)));
            let private_key = load_private_key(private_key)
                .map_err(|msg| problems.push(Invalid::new(format!("{key}.client_key"), msg)));
            Some(certs.and_then(|certs| private_key.map(|k| (certs, k))))
        }
        None => None,
    };
    let Ok(roots) = roots else {
        return Err(problems);
    };
    let builder = builder(key, roots)?;
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some(Err(())) => Err(problems),
        Some(Ok((certs, private_key))) => builder
            .with_client_auth_cert(certs, private_key)
            .map_err(|err| {
                vec![Invalid::new(
                    format!("{key}.client_key"),
                    format!("the key does not fit the certificate: {err}"),
                )]
            }),
    }
}

/// The client config for a client with no certificate of its own, trusting the CA bundle
/// `ca` when one is named (at `key`) and the system roots otherwise; `hint` says what to do
/// when the system has none.
pub fn ca_client_config(
    key: &str,
    ca: Option<&Path>,
    hint: &str,
) -> Result<ClientConfig, Vec<Invalid>> {
    let roots = match ca {
        Some(ca) => load_roots(ca),
        None => system_roots(hint),
    }
    .map_err(|msg| vec![Invalid::new(key, msg)])?;
    Ok(builder(key, roots)?.with_no_client_auth())
}

/// The client config for a connector that only makes plain connections (`http://` URLs, a
/// database with `sslmode=disable`). It trusts no certificate, so a TLS handshake through it
/// could only fail. The system roots are left unread: a bundle of a few hundred certificates
/// (milliseconds to parse on the serving thread at each build and reload), and a host without
/// one can still reach plain-text backends.
pub fn plaintext_only_client_config(key: &str) -> Result<ClientConfig, Vec<Invalid>> {
    Ok(builder(key, RootCertStore::empty())?.with_no_client_auth())
}

fn builder(
    key: &str,
    roots: RootCertStore,
) -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, Vec<Invalid>> {
    Ok(ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|err| vec![Invalid::new(key, err.to_string())])?
        .with_root_certificates(roots))
}

fn system_roots(hint: &str) -> Result<RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        return Err(format!("no system CA certificates found; {hint}"));
    }
    Ok(roots)
}
