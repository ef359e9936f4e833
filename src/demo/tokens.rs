//! Tokens for trying wardgate out: the demo's own signing key (Ed25519, shipped in the binary
//! and therefore public: never trust it in production), its JWKS, and `wardgate token mint`.
//! Minting with any other key requires an explicit acknowledgement, so the command is not
//! mistaken for a way to issue production credentials.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

/// The demo identity provider's private key. Public by design: it is in the source.
const DEMO_KEY_PEM: &str = include_str!("demo-signing-key.pem");
pub const DEMO_KID: &str = "wardgate-demo-1";
pub const DEMO_ISSUER: &str = "https://idp.wardgate-demo.invalid";
pub const DEMO_AUDIENCE: &str = "wardgate-demo";

#[derive(Debug, thiserror::Error)]
pub enum MintError {
    #[error("cannot read the signing key {path}: {reason}")]
    Key { path: String, reason: String },
    #[error("{0} is not the demo key; minting with it needs --i-know-this-is-not-production")]
    NotDemoKey(String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
}

/// A key that signs tokens, and the algorithm and key id it signs with.
pub struct SigningKey {
    key: EncodingKey,
    algorithm: Algorithm,
    pub kid: String,
}

impl SigningKey {
    pub fn demo() -> Result<SigningKey, MintError> {
        let key =
            EncodingKey::from_ed_pem(DEMO_KEY_PEM.as_bytes()).map_err(|err| MintError::Key {
                path: "(built-in demo key)".to_owned(),
                reason: err.to_string(),
            })?;
        Ok(SigningKey {
            key,
            algorithm: Algorithm::EdDSA,
            kid: DEMO_KID.to_owned(),
        })
    }

    /// A PEM private key (Ed25519, P-256 or RSA) from a file.
    pub fn from_file(path: &Path, kid: &str) -> Result<SigningKey, MintError> {
        let failed = |reason: String| MintError::Key {
            path: path.display().to_string(),
            reason,
        };
        let pem = std::fs::read(path).map_err(|err| failed(err.to_string()))?;
        let (key, algorithm) = if let Ok(key) = EncodingKey::from_ed_pem(&pem) {
            (key, Algorithm::EdDSA)
        } else if let Ok(key) = EncodingKey::from_ec_pem(&pem) {
            (key, Algorithm::ES256)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(&pem) {
            (key, Algorithm::RS256)
        } else {
            return Err(failed(
                "not an Ed25519, P-256 or RSA private key in PEM".to_owned(),
            ));
        };
        Ok(SigningKey {
            key,
            algorithm,
            kid: kid.to_owned(),
        })
    }

    /// The public half as a JWKS document.
    pub fn jwks(&self) -> Result<String, MintError> {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.algorithm)
            .map_err(|err| MintError::Sign(err.to_string()))?;
        jwk.common.key_id = Some(self.kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        serde_json::to_string_pretty(&JwkSet { keys: vec![jwk] })
            .map_err(|err| MintError::Sign(err.to_string()))
    }

    pub fn sign(&self, claims: &serde_json::Value) -> Result<String, MintError> {
        let mut header = Header::new(self.algorithm);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key)
            .map_err(|err| MintError::Sign(err.to_string()))
    }
}

/// Who a minted token speaks for.
#[derive(Clone, Debug)]
pub struct TokenClaims {
    pub subject: String,
    pub roles: Vec<String>,
    pub department: Option<String>,
    pub patient_id: Option<String>,
    pub name: Option<String>,
    pub ttl: Duration,
    pub issuer: String,
    pub audience: String,
}

impl TokenClaims {
    /// A demo token for `subject` with `roles`, valid for eight hours.
    pub fn demo(subject: &str, roles: &[&str]) -> TokenClaims {
        TokenClaims {
            subject: subject.to_owned(),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            department: None,
            patient_id: None,
            name: None,
            ttl: Duration::from_secs(8 * 3600),
            issuer: DEMO_ISSUER.to_owned(),
            audience: DEMO_AUDIENCE.to_owned(),
        }
    }

    pub fn department(mut self, department: &str) -> Self {
        self.department = Some(department.to_owned());
        self
    }

    pub fn patient(mut self, patient_id: &str) -> Self {
        self.patient_id = Some(patient_id.to_owned());
        self
    }

    pub fn to_json(&self) -> serde_json::Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut claims = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": self.subject,
            "roles": self.roles,
            "iat": now,
            "nbf": now,
            "exp": now + self.ttl.as_secs(),
        });
        for (name, value) in [
            ("department", &self.department),
            ("patient_id", &self.patient_id),
            ("name", &self.name),
        ] {
            if let Some(value) = value {
                claims[name] = json!(value);
            }
        }
        claims
    }
}
