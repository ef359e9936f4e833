//! Identity (pipeline stage 3's machinery): turns a request's credentials into a
//! [`Principal`]. A bearer token is verified as a JWT; otherwise a verified client
//! certificate may name a service account.

mod error;
pub mod jwks;
pub mod jwt;
mod mtls;
mod principal;
mod token_cache;

use std::sync::Arc;

use http::header::{self, HeaderMap};
use zeroize::Zeroizing;

pub use error::AuthError;
pub use mtls::ServiceAccounts;
pub use principal::{is_plain_value, AuthMethod, Principal};

use crate::config::{IdentityConfig, Invalid};
use crate::server::ConnInfo;
use jwks::{KeySet, KeyStore};
use jwt::JwtVerifier;

pub struct Identity {
    pub jwt: Option<JwtVerifier>,
    pub services: ServiceAccounts,
}

impl Identity {
    /// Builds the verifiers; fetches a configured JWKS URL once (a provider that is down at
    /// start is logged, and retried on schedule and on unknown key ids).
    pub async fn build(config: &IdentityConfig) -> Result<Identity, Vec<Invalid>> {
        let mut problems = Vec::new();
        let jwt = match &config.jwt {
            None => None,
            Some(jwt) => {
                let from_file = match &jwt.jwks_file {
                    Some(path) => jwks::load_file(path)
                        .map_err(|msg| problems.push(Invalid::new("identity.jwt.jwks_file", msg)))
                        .unwrap_or_default(),
                    None => KeySet::default(),
                };
                let url = match &jwt.jwks_url {
                    None => None,
                    Some(url) => {
                        let uri = url.parse::<hyper::Uri>().map_err(|err| {
                            problems.push(Invalid::new(
                                "identity.jwt.jwks_url",
                                format!("invalid URL: {err}"),
                            ))
                        });
                        // http:// (allowed on loopback only) with no CA named: no roots to read.
                        let plain = jwt.jwks_ca.is_none()
                            && uri.as_ref().is_ok_and(|uri| {
                                uri.scheme() == Some(&hyper::http::uri::Scheme::HTTP)
                            });
                        let tls = if plain {
                            crate::tls::plaintext_only_client_config("identity.jwt.jwks_url")
                        } else {
                            crate::tls::ca_client_config(
                                "identity.jwt.jwks_ca",
                                jwt.jwks_ca.as_deref(),
                                "set jwks_ca to the key server's CA bundle",
                            )
                        }
                        .map_err(|mut p| problems.append(&mut p));
                        uri.ok().zip(tls.ok())
                    }
                };
                let hs256 = jwt.hs256_secret_file.as_ref().and_then(|path| {
                    read_secret(path, 32)
                        .map_err(|msg| {
                            problems.push(Invalid::new("identity.jwt.hs256_secret_file", msg))
                        })
                        .ok()
                });
                let algorithms = jwt
                    .algorithms
                    .iter()
                    .filter_map(|name| jwt::parse_algorithm(name))
                    .collect();
                let fetch = url.is_some();
                let keys = KeyStore::new(from_file, url, jwt.jwks_min_refresh_interval.0);
                if fetch {
                    keys.refresh(true).await;
                    KeyStore::spawn_refresher(&keys, jwt.jwks_refresh.0);
                }
                Some(JwtVerifier::new(
                    keys,
                    jwt.issuer.clone(),
                    jwt.audiences.clone(),
                    algorithms,
                    hs256,
                    jwt.leeway.0.as_secs(),
                    usize::try_from(jwt.max_token_size.0).unwrap_or(usize::MAX),
                    jwt.claims.clone(),
                    jwt.cache_capacity,
                ))
            }
        };
        if problems.is_empty() {
            Ok(Identity {
                jwt,
                services: ServiceAccounts::new(config.mtls.clone()),
            })
        } else {
            Err(problems)
        }
    }

    /// A bearer token's principal (the admin API's review endpoint accepts compliance staff's
    /// own tokens).
    pub async fn verify_bearer(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        match &self.jwt {
            Some(verifier) => verifier.verify(token).await,
            None => Err(AuthError::KeysUnavailable),
        }
    }

    /// The caller's principal: `Ok(None)` when no credentials were presented at all.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        conn: &ConnInfo,
    ) -> Result<Option<Arc<Principal>>, AuthError> {
        if let Some(value) = headers.get(header::AUTHORIZATION) {
            let text = value.to_str().map_err(|_| AuthError::Malformed)?;
            let Some(token) = bearer_token(text) else {
                return Err(AuthError::NotBearer);
            };
            let Some(verifier) = &self.jwt else {
                return Err(AuthError::KeysUnavailable);
            };
            return verifier.verify(token).await.map(Some);
        }
        Ok(self.service_account(conn))
    }

    /// The caller's principal when it is known without checking a signature: a bearer token
    /// verified before (the cache), or a client certificate naming a service account. Only
    /// for the record of a request refused before identification; never a way in.
    pub fn recognize(&self, headers: &HeaderMap, conn: &ConnInfo) -> Option<Arc<Principal>> {
        match headers.get(header::AUTHORIZATION) {
            Some(value) => self
                .jwt
                .as_ref()?
                .cached(bearer_token(value.to_str().ok()?)?),
            None => self.service_account(conn),
        }
    }

    fn service_account(&self, conn: &ConnInfo) -> Option<Arc<Principal>> {
        conn.client_cert
            .as_ref()
            .and_then(|cert| self.services.principal(cert))
            .map(Arc::new)
    }
}

fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Reads a secret (trailing whitespace trimmed) that must be at least `min_len` bytes; the
/// bytes are wiped from memory when dropped.
pub fn read_secret(path: &std::path::Path, min_len: usize) -> Result<Zeroizing<Vec<u8>>, String> {
    let mut bytes = Zeroizing::new(
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?,
    );
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    if bytes.len() < min_len {
        return Err(format!(
            "{} holds fewer than {min_len} bytes; use a longer random secret",
            path.display()
        ));
    }
    Ok(bytes)
}
