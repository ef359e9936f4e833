//! Signing keys for JWT verification: a JWKS from a file, from an identity provider's URL, or
//! both. The URL is fetched on start, on a schedule, and when a token names a key id we do not
//! know (a key rotation at the provider), but never more often than the configured minimum
//! interval, so a flood of tokens with made-up key ids cannot hammer the provider.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// Largest JWKS document read from a URL.
const MAX_JWKS_SIZE: usize = 1024 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// A verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct VerifyingKey {
    pub key: DecodingKey,
    pub algorithm: Algorithm,
}

/// Keys by key id; keys without an id are usable only when they are the only key.
#[derive(Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, VerifyingKey>,
    without_kid: Vec<VerifyingKey>,
}

impl KeySet {
    /// Parses a JWKS document. Symmetric (`oct`) keys and keys meant for encryption are
    /// skipped: a JWKS is public, so a shared secret in it would let anyone sign.
    pub fn parse(json: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|err| format!("not a JWKS document: {err}"))?;
        let mut keys = KeySet::default();
        for jwk in &set.keys {
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != PublicKeyUse::Signature)
            {
                continue;
            }
            let Some(algorithm) = algorithm_of(jwk) else {
                continue;
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let verifying = VerifyingKey { key, algorithm };
            match &jwk.common.key_id {
                Some(kid) => {
                    keys.by_kid.insert(kid.clone(), verifying);
                }
                None => keys.without_kid.push(verifying),
            }
        }
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key".to_owned());
        }
        Ok(keys)
    }

    pub fn is_empty(&self) -> bool {
        self.by_kid.is_empty() && self.without_kid.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    fn find(&self, kid: Option<&str>) -> Option<&VerifyingKey> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.by_kid.len() + self.without_kid.len() == 1 => self
                .without_kid
                .first()
                .or_else(|| self.by_kid.values().next()),
            None => None,
        }
    }

    fn merge(&mut self, other: &KeySet) {
        self.by_kid
            .extend(other.by_kid.iter().map(|(k, v)| (k.clone(), v.clone())));
        self.without_kid.extend(other.without_kid.iter().cloned());
    }
}

/// The algorithm a JWK is for: its `alg`, or what its key type implies. A key is used with
/// that algorithm only, which is what defeats algorithm confusion.
fn algorithm_of(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let implied = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        AlgorithmParameters::OctetKeyPair(okp) if okp.curve == EllipticCurve::Ed25519 => {
            Algorithm::EdDSA
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(implied),
        Some(KeyAlgorithm::RS256) if implied == Algorithm::RS256 => Some(implied),
        Some(KeyAlgorithm::ES256) if implied == Algorithm::ES256 => Some(implied),
        Some(KeyAlgorithm::EdDSA) if implied == Algorithm::EdDSA => Some(implied),
        Some(_) => None,
    }
}

pub fn load_file(path: &Path) -> Result<KeySet, String> {
    let bytes =
        std::fs::read(path).map_err(|err| format!("cannot read {}: {err}", path.display()))?;
    KeySet::parse(&bytes).map_err(|err| format!("{}: {err}", path.display()))
}

/// Where keys come from, and the keys currently known.
pub struct KeyStore {
    from_file: KeySet,
    current: ArcSwap<KeySet>,
    fetcher: Option<Fetcher>,
}

struct Fetcher {
    url: hyper::Uri,
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    min_interval: Duration,
    last_attempt: Mutex<Option<Instant>>,
    /// One fetch at a time; waiters reuse its result.
    running: tokio::sync::Mutex<()>,
}

impl KeyStore {
    pub fn new(
        from_file: KeySet,
        url: Option<(hyper::Uri, rustls::ClientConfig)>,
        min_interval: Duration,
    ) -> Arc<KeyStore> {
        let fetcher = url.map(|(url, tls)| {
            let mut http = HttpConnector::new();
            http.enforce_http(false);
            http.set_connect_timeout(Some(FETCH_TIMEOUT));
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            Fetcher {
                url,
                client: Client::builder(TokioExecutor::new()).build(connector),
                min_interval,
                last_attempt: Mutex::new(None),
                running: tokio::sync::Mutex::new(()),
            }
        });
        Arc::new(KeyStore {
            current: ArcSwap::from_pointee(from_file.clone()),
            from_file,
            fetcher,
        })
    }

    /// The key for a token's `kid`. An unknown kid triggers a (rate-limited) fetch.
    pub async fn find(&self, kid: Option<&str>) -> Option<VerifyingKey> {
        if let Some(key) = self.current.load().find(kid) {
            return Some(key.clone());
        }
        if self.fetcher.is_some() && kid.is_some() {
            self.refresh(false).await;
            return self.current.load().find(kid).cloned();
        }
        None
    }

    /// The keys known now; a new set after every refresh.
    pub fn current(&self) -> Arc<KeySet> {
        self.current.load_full()
    }

    pub fn key_count(&self) -> usize {
        self.current.load().len()
    }

    /// Fetches the JWKS URL now (`forced`, the schedule) or if the last attempt is older than
    /// the minimum interval (an unknown kid). Keeps the known keys when the fetch fails.
    pub async fn refresh(&self, forced: bool) {
        let Some(fetcher) = &self.fetcher else { return };
        let _running = fetcher.running.lock().await;
        {
            let Ok(mut last) = fetcher.last_attempt.lock() else {
                return;
            };
            if !forced && last.is_some_and(|at| at.elapsed() < fetcher.min_interval) {
                return;
            }
            *last = Some(Instant::now());
        }
        match tokio::time::timeout(FETCH_TIMEOUT, fetcher.fetch()).await {
            Ok(Ok(fetched)) => {
                let mut keys = self.from_file.clone();
                keys.merge(&fetched);
                tracing::info!(url = %fetcher.url, keys = keys.len(), "JWKS fetched");
                self.current.store(Arc::new(keys));
            }
            Ok(Err(err)) => {
                tracing::error!(url = %fetcher.url, "cannot fetch the JWKS, keeping the known keys: {err}")
            }
            Err(_) => {
                tracing::error!(url = %fetcher.url, "the JWKS fetch timed out, keeping the known keys")
            }
        }
    }

    /// Refreshes on a schedule for as long as the store is in use.
    pub fn spawn_refresher(store: &Arc<KeyStore>, every: Duration) {
        if store.fetcher.is_none() {
            return;
        }
        let weak: Weak<KeyStore> = Arc::downgrade(store);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(store) = weak.upgrade() else { return };
                store.refresh(true).await;
            }
        });
    }
}

impl Fetcher {
    async fn fetch(&self) -> Result<KeySet, String> {
        let request = hyper::Request::get(self.url.clone())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::new())
            .map_err(|err| err.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| format!("request failed: {err}"))?;
        if !response.status().is_success() {
            return Err(format!("the endpoint answered {}", response.status()));
        }
        let body = Limited::new(response.into_body(), MAX_JWKS_SIZE)
            .collect()
            .await
            .map_err(|err| format!("cannot read the response: {err}"))?
            .to_bytes();
        KeySet::parse(&body)
    }
}
