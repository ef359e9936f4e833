//! Stage 1, normalize: turns the request path into its one canonical form, or rejects it.
//!
//! The gateway authorizes a path and the backend serves a path; if the two read the same bytes
//! differently (`/a/..%2fadmin`, `/a;x=1`, `/a%5cb`), a rule written for one path lets through
//! another. So the canonical path computed here is what is routed, authorized and forwarded,
//! byte for byte, and anything that two reasonable servers could read differently is a 400.
//!
//! Canonical form: `//` merged, `.` and `..` segments resolved (never above the root),
//! percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) decoded, other
//! percent-encodings kept with upper-case hex. Rejected: encoded `/` or `\`, a raw `\`, NUL and
//! control characters (raw or encoded), encoded dot segments (`%2e%2e`), double encoding
//! (`%252e`), invalid percent-encoding, raw non-ASCII bytes, and `;` unless allowed.

use std::borrow::Cow;

use http::uri::{PathAndQuery, Uri};

use crate::config::PathRules;

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path is not absolute")]
    NotAbsolute,
    #[error("the path contains an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("the path contains a backslash")]
    Backslash,
    #[error("the path contains a NUL or control character")]
    ControlCharacter,
    #[error("the path contains a percent-encoded dot segment")]
    EncodedDotSegment,
    #[error("the path contains invalid percent-encoding")]
    BadPercentEncoding,
    #[error("the path contains double percent-encoding")]
    DoubleEncoding,
    #[error("the path contains ';' parameters")]
    Semicolon,
    #[error("the path climbs above the root")]
    AboveRoot,
    #[error("the path contains a byte that is not ASCII")]
    NonAscii,
}

impl PathError {
    /// A short stable name for metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            PathError::NotAbsolute => "not_absolute",
            PathError::EncodedSeparator => "encoded_separator",
            PathError::Backslash => "backslash",
            PathError::ControlCharacter => "control_character",
            PathError::EncodedDotSegment => "encoded_dot_segment",
            PathError::BadPercentEncoding => "bad_percent_encoding",
            PathError::DoubleEncoding => "double_encoding",
            PathError::Semicolon => "semicolon",
            PathError::AboveRoot => "above_root",
            PathError::NonAscii => "non_ascii",
        }
    }
}

/// The canonical form of `raw` (a request path without its query), or why it is refused;
/// borrowed when `raw` already is canonical.
pub fn canonical_path<'a>(raw: &'a str, rules: &PathRules) -> Result<Cow<'a, str>, PathError> {
    if already_canonical(raw, rules) {
        return Ok(Cow::Borrowed(raw));
    }
    normalize(raw, rules).map(Cow::Owned)
}

/// A request's canonical path and its query (unchanged): what is routed, authorized and
/// forwarded. Most paths already are canonical; those keep the request's own path and query,
/// whose bytes are shared rather than copied.
#[derive(Clone, Debug)]
pub struct CanonicalTarget(PathAndQuery);

impl CanonicalTarget {
    /// The canonical target of a request's URI, or why its path is refused.
    pub fn of(uri: &Uri, rules: &PathRules) -> Result<CanonicalTarget, PathError> {
        let path = canonical_path(uri.path(), rules)?;
        if let (Cow::Borrowed(_), Some(received)) = (&path, uri.path_and_query()) {
            return Ok(CanonicalTarget(received.clone()));
        }
        let query = uri.query();
        let mut target = String::with_capacity(path.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(&path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(query);
        }
        // A canonical path is plain ASCII and the query was accepted in the request already.
        PathAndQuery::try_from(target)
            .map(CanonicalTarget)
            .map_err(|_| PathError::BadPercentEncoding)
    }

    pub fn path(&self) -> &str {
        self.0.path()
    }

    pub fn path_and_query(&self) -> &PathAndQuery {
        &self.0
    }
}

/// Whether `raw` is its own canonical form without decoding anything, as most requests'
/// paths are: no escapes, no byte a segment refuses, no dot or empty segment (but a trailing
/// slash). [`normalize`] would give it back unchanged, one allocation per segment later.
fn already_canonical(raw: &str, rules: &PathRules) -> bool {
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return false;
    }
    // One pass over the bytes: most paths are short, and splitting them into `str` segments
    // cost more than the check itself.
    let mut segment_start = 1;
    for (at, &byte) in bytes.iter().enumerate().skip(1) {
        match byte {
            // An empty, `.` or `..` segment before a `/`.
            b'/' if matches!(&bytes[segment_start..at], b"" | b"." | b"..") => return false,
            b'/' => segment_start = at + 1,
            b'%' | b'\\' | 0..=0x1f | 0x7f..=0xff => return false,
            b';' if !rules.allow_semicolon => return false,
            _ => {}
        }
    }
    // The last segment may be empty: a trailing slash is kept.
    !matches!(&bytes[segment_start..], b"." | b"..")
}

/// [`canonical_path`] the long way: each segment decoded, dot segments resolved.
fn normalize(raw: &str, rules: &PathRules) -> Result<String, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw_segment in rest.split('/') {
        let (segment, encoded_dot) = decode_segment(raw_segment, rules)?;
        trailing_slash = matches!(segment.as_str(), "" | "." | "..");
        match segment.as_str() {
            "" => {}
            "." | ".." if encoded_dot => return Err(PathError::EncodedDotSegment),
            "." => {}
            ".." => {
                if segments.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
            }
            _ => segments.push(segment),
        }
    }
    let mut canonical = String::with_capacity(raw.len());
    for segment in &segments {
        canonical.push('/');
        canonical.push_str(segment);
    }
    if canonical.is_empty() || trailing_slash {
        canonical.push('/');
    }
    Ok(canonical)
}

/// Checks the properties every output of [`canonical_path`] has, naming the first one that
/// fails; used by the fuzz target and the exhaustive unit test.
pub fn check_canonical(path: &str, rules: &PathRules) -> Result<(), &'static str> {
    let lower = path.to_ascii_lowercase();
    let segments = || path.split('/').skip(1);
    if !path.starts_with('/') {
        Err("not absolute")
    } else if path.contains("//") {
        Err("contains //")
    } else if path.contains('\\') {
        Err("contains a backslash")
    } else if path.bytes().any(|b| !(0x20..0x7f).contains(&b)) {
        Err("contains a control or non-ASCII byte")
    } else if ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|bad| lower.contains(bad))
    {
        Err("contains an encoded separator, dot or NUL")
    } else if segments().any(|segment| segment == "." || segment == "..") {
        Err("contains a dot segment")
    } else if !rules.allow_semicolon && path.contains(';') {
        Err("contains ';'")
    } else if canonical_path(path, rules).as_deref() != Ok(path) {
        Err("is not a fixed point")
    } else {
        Ok(())
    }
}

/// Decodes one segment; the flag says whether a `.` in it came from `%2e`.
fn decode_segment(raw: &str, rules: &PathRules) -> Result<(String, bool), PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut encoded_dot = false;
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        match byte {
            b'%' => {
                let value = hex_pair(bytes, i + 1).ok_or(PathError::BadPercentEncoding)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    b'.' => {
                        encoded_dot = true;
                        out.push('.');
                    }
                    v if is_unreserved(v) => out.push(char::from(v)),
                    v => {
                        out.push('%');
                        out.push(char::from(HEX_UPPER[usize::from(v >> 4)]));
                        out.push(char::from(HEX_UPPER[usize::from(v & 0x0f)]));
                    }
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            0x80..=0xff => return Err(PathError::NonAscii),
            b';' if !rules.allow_semicolon => return Err(PathError::Semicolon),
            _ => out.push(char::from(byte)),
        }
        i += 1;
    }
    // An encoded `%` followed by two hex digits is double encoding, whether the digits were
    // sent as such (`%252e`) or decoded from unreserved escapes (`%25%32%65`): a backend that
    // decodes once more would see a different path than the one authorized.
    let double_encoded = out
        .as_bytes()
        .windows(5)
        .any(|w| w.starts_with(b"%25") && hex_digit(w[3]).is_some() && hex_digit(w[4]).is_some());
    if double_encoded {
        return Err(PathError::DoubleEncoding);
    }
    Ok((out, encoded_dot))
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn hex_pair(bytes: &[u8], at: usize) -> Option<u8> {
    let high = hex_digit(*bytes.get(at)?)?;
    let low = hex_digit(*bytes.get(at + 1)?)?;
    Some(high << 4 | low)
}

fn hex_digit(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict() -> PathRules {
        PathRules::default()
    }

    /// Paths that must come out in exactly this canonical form.
    const CANONICAL: &[(&str, &str)] = &[
        ("/", "/"),
        ("/api/patients/p-1", "/api/patients/p-1"),
        ("//api///patients//p-1", "/api/patients/p-1"),
        ("/api/./patients/p-1", "/api/patients/p-1"),
        ("/api/x/../patients/p-1", "/api/patients/p-1"),
        ("/api/patients/p-1/", "/api/patients/p-1/"),
        ("/api/patients/p-1/.", "/api/patients/p-1/"),
        ("/api/patients/p-1/x/..", "/api/patients/p-1/"),
        ("/api/%70atients/p%2D1", "/api/patients/p-1"),
        ("/api/%7Euser/%41%5a", "/api/~user/AZ"),
        ("/files/a%20b", "/files/a%20b"),
        ("/files/a%3fb", "/files/a%3Fb"),
        ("/files/a%3Bb", "/files/a%3Bb"),
        ("/files/na%C3%AFve", "/files/na%C3%AFve"),
        ("/files/...", "/files/..."),
        ("/files/..a", "/files/..a"),
    ];

    /// Paths that must be refused, and why.
    const REJECTED: &[(&str, PathError)] = &[
        ("api/patients", PathError::NotAbsolute),
        ("*", PathError::NotAbsolute),
        ("", PathError::NotAbsolute),
        ("/api/patients%2fp-1", PathError::EncodedSeparator),
        ("/api/patients%2Fp-1", PathError::EncodedSeparator),
        ("/api/patients%5cp-1", PathError::EncodedSeparator),
        ("/api\\patients", PathError::Backslash),
        ("/api/..\\admin", PathError::Backslash),
        ("/api/p-1%00.json", PathError::ControlCharacter),
        ("/api/p-1\0", PathError::ControlCharacter),
        (
            "/api/p-1%0d%0aX-Injected:%20yes",
            PathError::ControlCharacter,
        ),
        ("/api/p-1%7f", PathError::ControlCharacter),
        ("/api/%2e%2e/admin", PathError::EncodedDotSegment),
        ("/api/%2E%2E/admin", PathError::EncodedDotSegment),
        ("/api/.%2e/admin", PathError::EncodedDotSegment),
        ("/api/%2e/admin", PathError::EncodedDotSegment),
        ("/api/%252e%252e/admin", PathError::DoubleEncoding),
        ("/api/%252F", PathError::DoubleEncoding),
        // Found by the fuzzer: the decoded `%33` completes a `%25` into `%2533`.
        ("/a%25%3333", PathError::DoubleEncoding),
        ("/a%25%32%65", PathError::DoubleEncoding),
        ("/api/%zz", PathError::BadPercentEncoding),
        ("/api/%", PathError::BadPercentEncoding),
        ("/api/%4", PathError::BadPercentEncoding),
        ("/api/%u002e%u002e/admin", PathError::BadPercentEncoding),
        ("/api/patients;jsessionid=1", PathError::Semicolon),
        ("/api/..;/admin", PathError::Semicolon),
        ("/../etc/passwd", PathError::AboveRoot),
        ("/api/../../etc/passwd", PathError::AboveRoot),
        ("/api/caf\u{e9}", PathError::NonAscii),
    ];

    #[test]
    fn canonicalizes_the_corpus() {
        for (raw, want) in CANONICAL {
            assert_eq!(
                canonical_path(raw, &strict()).as_deref(),
                Ok(*want),
                "path {raw:?}"
            );
        }
    }

    #[test]
    fn rejects_the_corpus() {
        for (raw, want) in REJECTED {
            assert_eq!(canonical_path(raw, &strict()), Err(*want), "path {raw:?}");
        }
    }

    #[test]
    fn canonical_form_is_a_fixed_point() {
        for (raw, _) in CANONICAL {
            let once = canonical_path(raw, &strict()).unwrap();
            assert_eq!(
                check_canonical(&once, &strict()),
                Ok(()),
                "{raw:?} -> {once:?}"
            );
        }
    }

    /// Every path of up to five characters over an alphabet of troublemakers: whatever is
    /// accepted is canonical. (The fuzz target explores further.)
    #[test]
    fn every_short_path_is_refused_or_canonical() {
        const ALPHABET: &[char] = &[
            '/', '.', '%', '2', 'e', 'E', 'f', '5', 'c', ';', 'a', '\\', '~',
        ];
        let mut paths = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = paths
                .iter()
                .flat_map(|p| ALPHABET.iter().map(move |c| format!("{p}{c}")))
                .collect();
            for path in &longer {
                for rules in [
                    strict(),
                    PathRules {
                        allow_semicolon: true,
                    },
                ] {
                    assert_eq!(
                        canonical_path(path, &rules).as_deref(),
                        normalize(path, &rules).as_deref(),
                        "the shortcut disagrees on {path:?}"
                    );
                    if let Ok(canonical) = canonical_path(path, &rules) {
                        assert_eq!(
                            check_canonical(&canonical, &rules),
                            Ok(()),
                            "{path:?} -> {canonical:?}"
                        );
                    }
                }
            }
            paths = longer;
        }
    }

    #[test]
    fn a_target_keeps_the_query_and_only_a_canonical_path_as_received() {
        let target = |uri: &str| {
            CanonicalTarget::of(&uri.parse::<Uri>().unwrap(), &strict())
                .map(|t| (t.path().to_owned(), t.path_and_query().as_str().to_owned()))
        };
        assert_eq!(
            target("/api/patients/p-1?since=2026-01-01&x=%2e%2e"),
            Ok((
                "/api/patients/p-1".into(),
                "/api/patients/p-1?since=2026-01-01&x=%2e%2e".into()
            ))
        );
        assert_eq!(
            target("/api//patients/./p%2D1/?q"),
            Ok(("/api/patients/p-1/".into(), "/api/patients/p-1/?q".into()))
        );
        assert_eq!(
            target("https://gateway.example/api/%2e%2e/x?q"),
            Err(PathError::EncodedDotSegment)
        );
    }

    #[test]
    fn semicolons_pass_when_allowed() {
        let rules = PathRules {
            allow_semicolon: true,
        };
        assert_eq!(
            canonical_path("/a;v=1/b", &rules).as_deref(),
            Ok("/a;v=1/b")
        );
    }
}
