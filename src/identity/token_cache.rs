//! Tokens already verified, so a client that sends the same bearer token on every request
//! pays for one signature check (an Ed25519 or RSA verification costs tens of microseconds,
//! more than the rest of the request path), as Envoy's `jwt_cache_config` does. Entries are
//! keyed by the token's SHA-256 (the cache never holds a bearer token), live until the
//! token's `exp` (plus leeway), and count only while the key set that verified them is still
//! the current one: a JWKS refresh or reload sends every token back to a full check.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use super::jwks::KeySet;
use super::principal::Principal;

pub struct TokenCache {
    entries: Mutex<HashMap<[u8; 32], Entry>>,
    capacity: usize,
}

struct Entry {
    principal: Arc<Principal>,
    /// Seconds since the epoch after which the token is no longer accepted.
    valid_until: u64,
    /// The key set current when the token was verified.
    keys: Arc<KeySet>,
}

/// A token's cache key.
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(token: &str) -> Fingerprint {
        Fingerprint(Sha256::digest(token.as_bytes()).into())
    }
}

impl TokenCache {
    /// A cache of at most `capacity` tokens; 0 turns caching off.
    pub fn new(capacity: usize) -> TokenCache {
        TokenCache {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The principal of a token verified earlier, if it is still valid under `keys`.
    pub fn get(&self, token: &Fingerprint, keys: &Arc<KeySet>) -> Option<Arc<Principal>> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(&token.0)?;
        (entry.valid_until > now() && Arc::ptr_eq(&entry.keys, keys))
            .then(|| entry.principal.clone())
    }

    /// Remembers a verified token until `valid_until` (seconds since the epoch).
    pub fn insert(
        &self,
        token: Fingerprint,
        principal: &Arc<Principal>,
        valid_until: u64,
        keys: Arc<KeySet>,
    ) {
        if !self.enabled() || valid_until <= now() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= self.capacity {
            let now = now();
            entries.retain(|_, entry| entry.valid_until > now && Arc::ptr_eq(&entry.keys, &keys));
            // Still full of live tokens: start over rather than track recency on every hit.
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            token.0,
            Entry {
                principal: principal.clone(),
                valid_until,
                keys,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().map_or(0, |entries| entries.len())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::principal::AuthMethod;

    fn principal(subject: &str) -> Arc<Principal> {
        Arc::new(Principal {
            subject: subject.to_owned(),
            roles: vec!["doctor".to_owned()],
            department: None,
            patient_id: None,
            name: None,
            method: AuthMethod::Jwt,
        })
    }

    #[test]
    fn a_token_counts_only_until_it_expires_and_only_under_its_key_set() {
        let cache = TokenCache::new(10);
        let keys = Arc::new(KeySet::default());
        cache.insert(
            Fingerprint::of("a"),
            &principal("a"),
            now() + 60,
            keys.clone(),
        );
        cache.insert(Fingerprint::of("b"), &principal("b"), now(), keys.clone());
        assert_eq!(
            cache
                .get(&Fingerprint::of("a"), &keys)
                .map(|p| p.subject.clone()),
            Some("a".to_owned())
        );
        assert!(cache.get(&Fingerprint::of("b"), &keys).is_none());
        let refreshed = Arc::new(KeySet::default());
        assert!(cache.get(&Fingerprint::of("a"), &refreshed).is_none());
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity() {
        let cache = TokenCache::new(100);
        let keys = Arc::new(KeySet::default());
        for i in 0..1000 {
            let token = format!("token-{i}");
            cache.insert(
                Fingerprint::of(&token),
                &principal(&token),
                now() + 60,
                keys.clone(),
            );
            assert!(cache.len() <= 100);
        }
        let off = TokenCache::new(0);
        off.insert(
            Fingerprint::of("a"),
            &principal("a"),
            now() + 60,
            keys.clone(),
        );
        assert_eq!(off.len(), 0);
    }
}
