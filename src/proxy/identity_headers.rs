//! Identity headers toward the upstream. Every client-sent header that could pass for an
//! identity (`X-User-*`, `X-Roles`, `X-Wardgate-*`, ...) is removed, whoever sent it; then the
//! gateway's own verified identity is added as `X-Wardgate-*` headers with an HMAC signature,
//! so a backend can check that they came from the gateway and were not altered.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use sha2::Sha256;
use zeroize::Zeroizing;

use crate::config::Invalid;
use crate::identity::Principal;

pub static SUBJECT: HeaderName = HeaderName::from_static("x-wardgate-subject");
pub static ROLES: HeaderName = HeaderName::from_static("x-wardgate-roles");
pub static DEPARTMENT: HeaderName = HeaderName::from_static("x-wardgate-department");
pub static PATIENT: HeaderName = HeaderName::from_static("x-wardgate-patient");
pub static REQUEST_ID: HeaderName = HeaderName::from_static("x-wardgate-request-id");
pub static TIMESTAMP: HeaderName = HeaderName::from_static("x-wardgate-timestamp");
pub static SIGNATURE: HeaderName = HeaderName::from_static("x-wardgate-signature");

/// Client headers to remove: exact names, and prefixes (patterns ending in `*`).
#[derive(Clone, Debug, Default)]
pub struct StripRules {
    exact: Vec<HeaderName>,
    prefixes: Vec<String>,
}

impl StripRules {
    pub fn build(key: &str, patterns: &[String]) -> Result<StripRules, Vec<Invalid>> {
        let mut rules = StripRules::default();
        let mut problems = Vec::new();
        for (i, pattern) in patterns.iter().enumerate() {
            let lower = pattern.to_ascii_lowercase();
            let (name, prefix) = match lower.strip_suffix('*') {
                Some(prefix) => (format!("{prefix}x"), Some(prefix)),
                None => (lower.clone(), None),
            };
            match (HeaderName::from_bytes(name.as_bytes()), prefix) {
                (Ok(_), Some(prefix)) => rules.prefixes.push(prefix.to_owned()),
                (Ok(name), None) => rules.exact.push(name),
                (Err(_), _) => problems.push(Invalid::new(
                    format!("{key}[{i}]"),
                    format!("{pattern:?} is not a header name or a prefix ending in *"),
                )),
            }
        }
        if problems.is_empty() {
            Ok(rules)
        } else {
            Err(problems)
        }
    }

    /// Whether a client-sent header with this name is dropped.
    pub fn matches(&self, name: &HeaderName) -> bool {
        self.exact.contains(name)
            || self
                .prefixes
                .iter()
                .any(|prefix| name.as_str().starts_with(prefix.as_str()))
    }
}

/// Signs the identity headers with a shared key the backend also holds.
pub struct IdentitySigner {
    key: Zeroizing<Vec<u8>>,
}

impl IdentitySigner {
    pub fn new(key: Zeroizing<Vec<u8>>) -> Self {
        IdentitySigner { key }
    }

    /// `v1=` and the base64url HMAC-SHA256 of the signed fields, one per line.
    pub fn sign(&self, fields: &[&str]) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return String::new(),
        };
        mac.update(b"wardgate-v1");
        for field in fields {
            mac.update(b"\n");
            mac.update(field.as_bytes());
        }
        let tag = mac.finalize().into_bytes();
        format!(
            "v1={}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag)
        )
    }
}

/// What the upstream is told about the request's identity.
pub struct UpstreamIdentity<'a> {
    pub principal: Option<&'a Principal>,
    pub patient: Option<&'a str>,
    pub request_id: &'a HeaderValue,
    pub method: &'a str,
    pub path_and_query: &'a str,
}

impl UpstreamIdentity<'_> {
    /// Adds the `X-Wardgate-*` headers. Those the client sent were removed before (every name
    /// [`StripRules::matches`]), so a client cannot assert an identity of its own.
    /// The signature covers timestamp, request id, method, path, subject, roles, department
    /// and patient, in that order, each on its own line after `wardgate-v1`.
    pub fn inject(&self, headers: &mut HeaderMap, signer: Option<&IdentitySigner>) {
        let request_id = self.request_id.to_str().unwrap_or_default();
        headers.insert(REQUEST_ID.clone(), self.request_id.clone());
        let (subject, roles, department) = match self.principal {
            Some(principal) => (
                principal.subject.as_str(),
                principal.roles.join(","),
                principal.department.as_deref().unwrap_or_default(),
            ),
            None => ("", String::new(), ""),
        };
        let patient = self.patient.unwrap_or_default();
        for (name, value) in [
            (&SUBJECT, subject),
            (&ROLES, roles.as_str()),
            (&DEPARTMENT, department),
            (&PATIENT, patient),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                if !value.is_empty() {
                    headers.insert(name.clone(), value);
                }
            }
        }
        if let Some(signer) = signer {
            let timestamp = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or_default()
                .to_string();
            let signature = signer.sign(&[
                &timestamp,
                request_id,
                self.method,
                self.path_and_query,
                subject,
                &roles,
                department,
                patient,
            ]);
            if let (Ok(timestamp), Ok(signature)) = (
                HeaderValue::from_str(&timestamp),
                HeaderValue::from_str(&signature),
            ) {
                headers.insert(TIMESTAMP.clone(), timestamp);
                headers.insert(SIGNATURE.clone(), signature);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_exact_names_and_prefixes() {
        let rules =
            StripRules::build("strip", &["x-user-*".to_owned(), "X-Roles".to_owned()]).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-user-id", HeaderValue::from_static("admin"));
        headers.insert("x-user-role", HeaderValue::from_static("admin"));
        headers.insert("x-roles", HeaderValue::from_static("admin"));
        headers.insert("x-userland", HeaderValue::from_static("kept"));
        crate::proxy::headers::remove_where(&mut headers, |name| rules.matches(name));
        assert_eq!(headers.len(), 1);
        assert!(headers.contains_key("x-userland"));
    }

    #[test]
    fn signatures_depend_on_every_field() {
        let signer = IdentitySigner::new(Zeroizing::new(vec![7u8; 32]));
        let a = signer.sign(&["1", "req", "GET", "/p", "dr", "doctor", "cardiology", "p-1"]);
        let b = signer.sign(&[
            "1",
            "req",
            "GET",
            "/p",
            "dr",
            "doctor,admin",
            "cardiology",
            "p-1",
        ]);
        assert!(a.starts_with("v1="));
        assert_ne!(a, b);
    }
}
