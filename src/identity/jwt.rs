//! JWT bearer tokens. Before any signature work the header is inspected and refused when it
//! asks for `alg: none`, an algorithm not configured, or a key it brings along (`jku`, `x5u`,
//! `jwk`, `x5c`: a token must never choose the key that verifies it). The key is then taken
//! from our key set by `kid` and used only with its own algorithm, so an RS256 public key can
//! never be fed to HS256. Issuer, audience, `exp` and `nbf` (with leeway) are checked by
//! jsonwebtoken; the claims are mapped to a [`Principal`].

use std::sync::Arc;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use zeroize::Zeroizing;

use super::jwks::KeyStore;
use super::principal::{is_plain_value, AuthMethod, Principal};
use super::token_cache::{Fingerprint, TokenCache};
use super::AuthError;
use crate::config::ClaimMapping;

pub struct JwtVerifier {
    pub keys: Arc<KeyStore>,
    issuer: String,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    hs256: Option<DecodingKey>,
    leeway_secs: u64,
    max_size: usize,
    claims: ClaimMapping,
    verified: TokenCache,
}

/// Header fields that would let a token bring or point to its own key.
const KEY_CARRYING_HEADERS: [&str; 4] = ["jku", "x5u", "jwk", "x5c"];

impl JwtVerifier {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        keys: Arc<KeyStore>,
        issuer: String,
        audiences: Vec<String>,
        algorithms: Vec<Algorithm>,
        hs256_secret: Option<Zeroizing<Vec<u8>>>,
        leeway_secs: u64,
        max_size: usize,
        claims: ClaimMapping,
        cache_capacity: usize,
    ) -> JwtVerifier {
        JwtVerifier {
            keys,
            issuer,
            audiences,
            algorithms,
            hs256: hs256_secret.map(|secret| DecodingKey::from_secret(&secret)),
            leeway_secs,
            max_size,
            claims,
            verified: TokenCache::new(cache_capacity),
        }
    }

    /// The principal of a token verified earlier and still valid under the current keys,
    /// without verifying it again; `None` for a token not seen (or not cached) before.
    pub fn cached(&self, token: &str) -> Option<Arc<Principal>> {
        if !self.verified.enabled() || token.len() > self.max_size {
            return None;
        }
        self.verified
            .get(&Fingerprint::of(token), &self.keys.current())
    }

    /// The token's principal, shared with the verified-token cache.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>, AuthError> {
        if token.len() > self.max_size {
            return Err(AuthError::TooLarge);
        }
        let keys = self.keys.current();
        let fingerprint = self.verified.enabled().then(|| Fingerprint::of(token));
        if let Some(principal) = fingerprint
            .as_ref()
            .and_then(|token| self.verified.get(token, &keys))
        {
            return Ok(principal);
        }
        let algorithm = inspect_header(token)?;
        let key = match algorithm.as_str() {
            "HS256" => match &self.hs256 {
                Some(secret) => (secret.clone(), Algorithm::HS256),
                None => return Err(AuthError::AlgorithmNotAccepted(algorithm)),
            },
            name => {
                let accepted = self
                    .algorithms
                    .iter()
                    .find(|alg| algorithm_name(**alg) == name);
                let Some(&wanted) = accepted else {
                    return Err(AuthError::AlgorithmNotAccepted(algorithm));
                };
                let header =
                    jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
                // Boxed: the key set may be fetched, a large future needed only for a token
                // not seen before; inline, every request's state would carry its space.
                let finding = Box::pin(self.keys.find(header.kid.as_deref()));
                let found = finding.await;
                let found = match found {
                    Some(found) => found,
                    None if self.keys.key_count() == 0 => return Err(AuthError::KeysUnavailable),
                    None => return Err(AuthError::UnknownKey),
                };
                if found.algorithm != wanted {
                    return Err(AuthError::AlgorithmMismatch);
                }
                (found.key, wanted)
            }
        };
        let (key, algorithm) = key;
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway_secs;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&self.audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<Value>(token, &key, &validation)
            .map_err(|err| map_error(&err))?;
        let principal = Arc::new(self.principal(&data.claims)?);
        if let (Some(token), Some(exp)) = (fingerprint, data.claims["exp"].as_u64()) {
            self.verified.insert(
                token,
                &principal,
                exp.saturating_add(self.leeway_secs),
                keys,
            );
        }
        Ok(principal)
    }

    fn principal(&self, claims: &Value) -> Result<Principal, AuthError> {
        let mapping = &self.claims;
        let subject = text_claim(claims, &mapping.subject)?
            .ok_or_else(|| AuthError::MissingClaim(mapping.subject.clone()))?;
        let roles = match lookup(claims, &mapping.roles) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| AuthError::BadClaim(mapping.roles.clone()))
                })
                .collect::<Result<_, _>>()?,
            Some(Value::String(text)) => text
                .split([' ', ','])
                .filter(|role| !role.is_empty())
                .map(str::to_owned)
                .collect(),
            Some(_) => return Err(AuthError::BadClaim(mapping.roles.clone())),
        };
        if !roles.iter().all(|role| is_plain_value(role)) {
            return Err(AuthError::BadClaim(mapping.roles.clone()));
        }
        let name = match lookup(claims, &mapping.name) {
            Some(Value::String(name)) => Some(name.clone()),
            _ => None,
        };
        Ok(Principal {
            subject,
            roles,
            department: text_claim(claims, &mapping.department)?,
            patient_id: text_claim(claims, &mapping.patient_id)?,
            name,
            method: AuthMethod::Jwt,
        })
    }
}

/// Reads the header as JSON and refuses what must never be verified at all; returns the
/// algorithm name.
fn inspect_header(token: &str) -> Result<String, AuthError> {
    let encoded = token.split('.').next().ok_or(AuthError::Malformed)?;
    if token.split('.').count() != 3 {
        return Err(AuthError::Malformed);
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded.trim_end_matches('='))
        .map_err(|_| AuthError::Malformed)?;
    let header: Value = serde_json::from_slice(&bytes).map_err(|_| AuthError::Malformed)?;
    let Some(algorithm) = header.get("alg").and_then(Value::as_str) else {
        return Err(AuthError::Malformed);
    };
    if algorithm.eq_ignore_ascii_case("none") {
        return Err(AuthError::AlgorithmNone);
    }
    if let Some(field) = KEY_CARRYING_HEADERS
        .iter()
        .find(|field| header.get(**field).is_some())
    {
        return Err(AuthError::ForbiddenHeader(field));
    }
    if header.get("crit").is_some() {
        return Err(AuthError::ForbiddenHeader("crit"));
    }
    Ok(algorithm.to_owned())
}

pub fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::RS256 => "RS256",
        Algorithm::ES256 => "ES256",
        Algorithm::EdDSA => "EdDSA",
        Algorithm::HS256 => "HS256",
        _ => "other",
    }
}

/// The asymmetric algorithms that may be configured.
pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    match name {
        "RS256" => Some(Algorithm::RS256),
        "ES256" => Some(Algorithm::ES256),
        "EdDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn map_error(err: &jsonwebtoken::errors::Error) -> AuthError {
    use jsonwebtoken::errors::ErrorKind;
    match err.kind() {
        ErrorKind::InvalidSignature => AuthError::BadSignature,
        ErrorKind::ExpiredSignature => AuthError::Expired,
        ErrorKind::ImmatureSignature => AuthError::NotYetValid,
        ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
        ErrorKind::InvalidAudience => AuthError::WrongAudience,
        ErrorKind::MissingRequiredClaim(claim) => AuthError::MissingClaim(claim.clone()),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            AuthError::AlgorithmMismatch
        }
        _ => AuthError::Malformed,
    }
}

/// A claim by dotted path (`realm_access.roles`).
fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

/// A string (or number) claim, which must be a plain value when present.
fn text_claim(claims: &Value, path: &str) -> Result<Option<String>, AuthError> {
    let text = match lookup(claims, path) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Number(number)) => number.to_string(),
        Some(_) => return Err(AuthError::BadClaim(path.to_owned())),
    };
    if is_plain_value(&text) {
        Ok(Some(text))
    } else {
        Err(AuthError::BadClaim(path.to_owned()))
    }
}
