//! Header rewriting in both directions: hop-by-hop headers never cross the proxy, the
//! `X-Forwarded-*` family describes the real connection (a client's own values are believed
//! only from a trusted proxy), every request carries an `X-Request-Id`, and every response
//! carries the security headers and no server banner. Also: what a message's headers say
//! its body is (JSON or not, content-encoded or not), for the field rules.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::{Invalid, SecurityHeaders};

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");
static X_POWERED_BY: HeaderName = HeaderName::from_static("x-powered-by");

/// The headers that describe one connection rather than the message (RFC 9110 section
/// 7.6.1), besides those the `Connection` header names.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
];

/// Removes the headers `doomed` picks, in one pass over the map. Most of the names a proxy
/// removes are absent from most messages; asking the map for each one by name would cost a
/// hash and a probe every time.
pub fn remove_where(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    headers.retain(|name, _| !doomed(name));
}

/// Removes the hop-by-hop headers, including every header the `Connection` header names.
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .iter()
        .filter(|(name, _)| **name == header::CONNECTION)
        .filter_map(|(_, value)| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    remove_where(headers, |name| {
        HOP_BY_HOP.contains(name) || named.contains(name)
    });
}

/// Restores the two headers a WebSocket upgrade needs after hop-by-hop removal.
pub fn mark_websocket_upgrade(headers: &mut HeaderMap) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
}

/// Whether a request asks to switch to the WebSocket protocol.
pub fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let upgrade_websocket = headers
        .get(header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case("websocket"));
    connection_upgrade && upgrade_websocket
}

/// Sets `X-Forwarded-For`, `-Proto` and `-Host` from the real connection. A peer in the
/// trusted-proxy list gets its client's chain extended; anyone else's values are replaced,
/// and a client-sent `Forwarded` header is dropped, so a client cannot choose the address
/// the backend (and the audit trail) sees.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer_text: &HeaderValue,
    peer_is_trusted_proxy: bool,
    original_host: Option<HeaderValue>,
) {
    if peer_is_trusted_proxy {
        let chain = headers
            .get(&X_FORWARDED_FOR)
            .and_then(|value| value.to_str().ok())
            .and_then(|existing| {
                let peer = peer_text.to_str().ok()?;
                HeaderValue::from_str(&format!("{existing}, {peer}")).ok()
            })
            .unwrap_or_else(|| peer_text.clone());
        headers.insert(X_FORWARDED_FOR.clone(), chain);
        if !headers.contains_key(&X_FORWARDED_PROTO) {
            headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
        }
        if !headers.contains_key(&X_FORWARDED_HOST) {
            if let Some(host) = original_host {
                headers.insert(X_FORWARDED_HOST.clone(), host);
            }
        }
    } else {
        remove_where(headers, |name| *name == FORWARDED);
        headers.insert(X_FORWARDED_FOR.clone(), peer_text.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static("https"));
        match original_host {
            Some(host) => {
                headers.insert(X_FORWARDED_HOST.clone(), host);
            }
            None => {
                headers.remove(&X_FORWARDED_HOST);
            }
        }
    }
}

/// The real client's address: the peer's, unless the peer is a trusted proxy; then the
/// nearest address in `X-Forwarded-For` (read from the right) that is not a trusted proxy.
/// Addresses a client wrote further left are never believed over those a proxy appended.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: impl Fn(IpAddr) -> bool) -> IpAddr {
    if !trusted(peer) {
        return peer;
    }
    let chain = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|entry| entry.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    let mut nearest = peer;
    for entry in chain.into_iter().rev() {
        let Some(address) = entry else {
            // A malformed entry: nothing further left can be trusted either.
            break;
        };
        nearest = address;
        if !trusted(address) {
            break;
        }
    }
    nearest
}

/// The client's `X-Request-Id` when it is a plain token (letters, digits, `-_.:`, at most
/// 128), so traces can be joined across systems; a fresh UUID otherwise.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let usable = headers.get(&X_REQUEST_ID).filter(|value| {
        let bytes = value.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= 128
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(b))
    });
    match usable {
        Some(value) => value.clone(),
        None => {
            // From the thread's CSPRNG (seeded by the OS) rather than a getrandom call per
            // request: an id must be unique, not secret.
            let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
            let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
            HeaderValue::from_str(id.hyphenated().encode_lower(&mut text))
                .unwrap_or_else(|_| HeaderValue::from_static("invalid"))
        }
    }
}

/// The response headers every answer carries, built once per config.
#[derive(Clone, Debug)]
pub struct ResponseHeaders {
    values: Vec<(HeaderName, HeaderValue)>,
}

impl ResponseHeaders {
    pub fn build(config: &SecurityHeaders) -> Result<Self, Vec<Invalid>> {
        let mut values = vec![(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        )];
        let mut problems = Vec::new();
        for (key, name, value) in [
            (
                "strict_transport_security",
                header::STRICT_TRANSPORT_SECURITY,
                &config.strict_transport_security,
            ),
            (
                "referrer_policy",
                header::REFERRER_POLICY,
                &config.referrer_policy,
            ),
            (
                "frame_options",
                header::X_FRAME_OPTIONS,
                &config.frame_options,
            ),
            (
                "content_security_policy",
                header::CONTENT_SECURITY_POLICY,
                &config.content_security_policy,
            ),
        ] {
            let Some(text) = value else { continue };
            match HeaderValue::from_str(text) {
                Ok(value) => values.push((name, value)),
                Err(_) => problems.push(Invalid::new(
                    format!("security_headers.{key}"),
                    "not a valid header value",
                )),
            }
        }
        if problems.is_empty() {
            Ok(ResponseHeaders { values })
        } else {
            Err(problems)
        }
    }

    /// Readies an upstream's (or the gateway's own) response for the client.
    pub fn apply(&self, headers: &mut HeaderMap, request_id: &HeaderValue) {
        remove_where(headers, |name| {
            *name == header::SERVER || *name == X_POWERED_BY
        });
        // Room for all of them in one step: added one at a time, they rehash the map as it
        // grows past each power of two.
        let _ = headers.try_reserve(self.values.len() + 1);
        for (name, value) in &self.values {
            headers.insert(name.clone(), value.clone());
        }
        // Never indexed: HTTP/2's header table would fill with ids no later response repeats,
        // pushing out the headers that do repeat, and each connection's table would grow to
        // its limit.
        let mut request_id = request_id.clone();
        request_id.set_sensitive(true);
        headers.insert(X_REQUEST_ID.clone(), request_id);
    }
}

/// The body's content coding, unless it is `identity`.
pub fn content_encoding(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_ENCODING)?;
    let text = value.to_str().unwrap_or("(not text)").trim();
    (!text.eq_ignore_ascii_case("identity") && !text.is_empty()).then(|| text.to_owned())
}

/// Whether the content type is JSON (`application/json`, `application/*+json`); an error
/// when it is JSON in a charset other than UTF-8.
pub fn json_media_type(headers: &HeaderMap) -> Result<bool, String> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(false);
    };
    let Ok(text) = value.to_str() else {
        return Ok(false);
    };
    let mut parts = text.split(';');
    let essence = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
    let json = essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"));
    if !json {
        return Ok(false);
    }
    for parameter in parts {
        if let Some((name, value)) = parameter.split_once('=') {
            let value = value.trim().trim_matches('"');
            if name.trim().eq_ignore_ascii_case("charset")
                && !value.eq_ignore_ascii_case("utf-8")
                && !value.eq_ignore_ascii_case("utf8")
            {
                return Err(format!(
                    "JSON bodies must be UTF-8 (Content-Type says charset={value})"
                ));
            }
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_headers_named_in_connection() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("close, x-secret"),
        );
        headers.insert("x-secret", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert!(headers.get("x-secret").is_none());
        assert!(headers.get("keep-alive").is_none());
        assert!(headers.get(header::CONNECTION).is_none());
        assert_eq!(headers.get("x-kept").unwrap(), "1");
    }

    #[test]
    fn removes_every_value_of_a_repeated_header_and_keeps_the_others_in_order() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-user-id", "mallory"),
            ("x-kept", "a"),
            ("x-user-id", "eve"),
            ("x-other", "1"),
            ("x-kept", "b"),
            ("x-user-id", "root"),
        ] {
            headers.append(name, HeaderValue::from_static(value));
        }
        remove_where(&mut headers, |name| name == "x-user-id");
        assert!(headers.get_all("x-user-id").iter().next().is_none());
        let kept: Vec<_> = headers.get_all("x-kept").iter().collect();
        assert_eq!(kept, ["a", "b"]);
        assert_eq!(headers["x-other"], "1");
        assert_eq!(headers.len(), 3);
    }

    #[test]
    fn responses_carry_the_request_id_unindexed_and_the_security_headers_indexable() {
        let rules = ResponseHeaders::build(&SecurityHeaders::default()).expect("the defaults");
        let mut headers = HeaderMap::new();
        headers.insert(header::SERVER, HeaderValue::from_static("nginx/1.0"));
        rules.apply(&mut headers, &HeaderValue::from_static("trace-42"));

        assert!(headers.get(header::SERVER).is_none());
        let id = &headers[&X_REQUEST_ID];
        assert_eq!(id, "trace-42");
        // h2 encodes a sensitive value as "never indexed" (RFC 7541 section 6.2.3).
        assert!(id.is_sensitive());
        let hsts = &headers[header::STRICT_TRANSPORT_SECURITY];
        assert_eq!(hsts, "max-age=31536000; includeSubDomains");
        assert!(!hsts.is_sensitive());
    }

    #[test]
    fn request_id_keeps_only_plain_tokens() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&headers), "abc-123");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("a b<script>"));
        assert_ne!(request_id(&headers), "a b<script>");
    }
}
