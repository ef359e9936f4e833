//! The JSON field transformer behind pipeline stages 6 (protect) and 8 (reveal). A route's
//! rules name fields by JSON path; a body is parsed once, walked once with every path, and
//! only the values the paths select are changed:
//!
//! - protect: each selected value (any JSON type) becomes `"wg1:..."`, sealed with the
//!   patient's data key for this patient and field. A value already shaped like a ciphertext
//!   is refused: a client must not plant ciphertexts of its own choosing.
//! - reveal: each selected ciphertext is opened and shown as the caller may see it; one that
//!   does not open (tampered, moved, key shredded) becomes `null` and is reported. A selected
//!   value stored in plain (data from before the gateway) is shown by the same rules.
//!
//! When a path selects a container that holds another selected value, the outer one wins.

use std::sync::Arc;

use super::field_cipher::{self, DataKey, PREFIX};
use super::json_doc::{DocError, Node};
use super::json_path::{JsonPath, Step};
use super::redact::Reveal;

/// A route's field rules, compiled.
#[derive(Clone, Debug, Default)]
pub struct FieldRules {
    /// Field names, as the policy (`field:<name>`) and the audit record know them.
    fields: Vec<Arc<str>>,
    /// (index into `fields`, path).
    paths: Vec<(usize, JsonPath)>,
    /// How many levels of containers the paths reach into (`usize::MAX` with a `..name`):
    /// reveal splits a response only that deep and copies the rest as it is.
    levels: usize,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtectError {
    #[error("{0}")]
    Document(#[from] DocError),
    #[error("the value of protected field {field:?} is already shaped like a wardgate ciphertext")]
    PlantedCiphertext { field: String },
}

/// Why a selected ciphertext could not be shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Failure {
    /// It does not authenticate: altered, or moved from another patient or field.
    Integrity,
    /// The patient's data key was destroyed (erasure).
    KeyShredded,
    /// No data key exists for the patient.
    KeyMissing,
}

impl Failure {
    pub fn as_str(self) -> &'static str {
        match self {
            Failure::Integrity => "integrity_failure",
            Failure::KeyShredded => "key_shredded",
            Failure::KeyMissing => "key_missing",
        }
    }
}

/// What reveal did to a body.
#[derive(Debug, Default)]
pub struct Revealed {
    /// The new body, or `None` when nothing was selected.
    pub body: Option<String>,
    /// Names of fields shown in plain, and of fields masked, hashed or removed (each once).
    pub revealed: Vec<Arc<str>>,
    pub masked: Vec<Arc<str>>,
    pub failures: Vec<(Arc<str>, Failure)>,
}

impl FieldRules {
    /// `rules`: field name and its paths.
    pub fn new<'r>(rules: impl IntoIterator<Item = (&'r str, &'r [JsonPath])>) -> FieldRules {
        let mut compiled = FieldRules::default();
        for (name, paths) in rules {
            let index = compiled.fields.len();
            compiled.fields.push(Arc::from(name));
            compiled
                .paths
                .extend(paths.iter().map(|path| (index, path.clone())));
        }
        compiled.levels = compiled
            .paths
            .iter()
            .map(|(_, path)| path.levels().unwrap_or(usize::MAX))
            .max()
            .unwrap_or(0);
        compiled
    }

    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    pub fn fields(&self) -> &[Arc<str>] {
        &self.fields
    }

    /// Encrypts every selected value for `scope` (the patient). `Ok(None)`: nothing selected,
    /// forward the body as it came.
    pub fn protect(
        &self,
        body: &str,
        key: &DataKey,
        scope: &str,
    ) -> Result<Option<String>, ProtectError> {
        let mut doc = Node::parse(body)?;
        let changed = self.walk(&mut doc, &self.start(), &mut |field, node| {
            let name = &*self.fields[field];
            if node.as_str().is_some_and(|s| s.starts_with(PREFIX)) {
                return Err(ProtectError::PlantedCiphertext {
                    field: name.to_owned(),
                });
            }
            let Some(text) = node.text() else {
                return Ok(());
            };
            let mut sealed = String::with_capacity(text.len() * 4 / 3 + 64);
            sealed.push('"');
            sealed.push_str(PREFIX);
            field_cipher::seal_into(key, scope, name, text.as_bytes(), &mut sealed);
            sealed.push('"');
            *node = Node::Replaced(sealed);
            Ok(())
        })?;
        Ok(changed.then(|| doc.to_json()))
    }

    /// Opens every selected ciphertext and shows it as `reveal_of(field)` says. `key` is the
    /// patient's data key, or why there is none.
    pub fn reveal(
        &self,
        body: &str,
        key: Result<&DataKey, Failure>,
        scope: &str,
        reveal_of: &mut dyn FnMut(&str) -> Reveal,
        hash: &dyn Fn(&str, &str) -> String,
    ) -> Result<Revealed, DocError> {
        // Only as deep as the paths reach: a response is the backend's, and what no path
        // selects passes as it came. (A request body is split whole: `protect` refuses
        // duplicate names at any depth before it reaches the backend.)
        let mut doc = Node::parse_levels(body, self.levels)?;
        let mut outcome = Revealed::default();
        let mut decided: Vec<Option<Reveal>> = vec![None; self.fields.len()];
        let changed = self.walk(&mut doc, &self.start(), &mut |field, node| {
            let name = &self.fields[field];
            let Some(text) = node.text() else {
                return Ok::<(), DocError>(());
            };
            let opened;
            let plain: &str = match node.as_str().filter(|s| s.starts_with(PREFIX)) {
                Some(sealed) => {
                    // Opened in place and wiped when dropped; `plain` borrows it.
                    opened = key.and_then(|key| {
                        field_cipher::open(key, scope, name, &sealed)
                            .map_err(|_| Failure::Integrity)
                    });
                    match opened
                        .as_deref()
                        .map_err(|failure| *failure)
                        .and_then(|bytes| {
                            std::str::from_utf8(bytes).map_err(|_| Failure::Integrity)
                        }) {
                        Ok(json) => json,
                        Err(failure) => {
                            outcome.failures.push((name.clone(), failure));
                            *node = Node::Replaced("null".to_owned());
                            return Ok(());
                        }
                    }
                }
                None => text,
            };
            let reveal = *decided[field].get_or_insert_with(|| reveal_of(name));
            *node = reveal.apply(plain, |json| hash(name, json));
            let list = if reveal.is_plain() {
                &mut outcome.revealed
            } else {
                &mut outcome.masked
            };
            if !list.contains(name) {
                list.push(name.clone());
            }
            Ok(())
        })?;
        if changed {
            outcome.body = Some(doc.to_json());
        }
        Ok(outcome)
    }

    fn start(&self) -> Vec<(usize, usize)> {
        (0..self.paths.len()).map(|p| (p, 0)).collect()
    }

    /// Walks `node` with the path positions `states` ((path, position) pairs) and calls
    /// `visit` on each selected value, outermost first. Returns whether anything was visited.
    fn walk<'a, E>(
        &self,
        node: &mut Node<'a>,
        states: &[(usize, usize)],
        visit: &mut dyn FnMut(usize, &mut Node<'a>) -> Result<(), E>,
    ) -> Result<bool, E> {
        if let Some(&(path, _)) = states
            .iter()
            .find(|(path, at)| *at == self.paths[*path].1.len())
        {
            visit(self.paths[path].0, node)?;
            return Ok(true);
        }
        let mut visited = false;
        // The positions after one step, refilled for each child (one buffer per level).
        let mut next = Vec::new();
        let mut step_into = |step: Step<'_>, child: &mut Node<'a>| -> Result<bool, E> {
            next.clear();
            for &(path, at) in states {
                for position in self.paths[path].1.advance(at, step).into_iter().flatten() {
                    next.push((path, position));
                }
            }
            if next.is_empty() {
                return Ok(false);
            }
            self.walk(child, &next, visit)
        };
        match node {
            Node::Object { members, .. } => {
                for (name, child) in members.iter_mut() {
                    visited |= step_into(Step::Member(name), child)?;
                }
            }
            Node::Array { elements, .. } => {
                for (i, child) in elements.iter_mut().enumerate() {
                    visited |= step_into(Step::Element(i), child)?;
                }
            }
            _ => {}
        }
        if visited {
            node.mark_changed();
        }
        Ok(visited)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn rules(spec: &[(&str, &[&str])]) -> FieldRules {
        let parsed: Vec<(String, Vec<JsonPath>)> = spec
            .iter()
            .map(|(name, paths)| {
                (
                    name.to_string(),
                    paths.iter().map(|p| JsonPath::parse(p).unwrap()).collect(),
                )
            })
            .collect();
        FieldRules::new(parsed.iter().map(|(n, p)| (n.as_str(), p.as_slice())))
    }

    fn key() -> DataKey {
        DataKey::new(1, Zeroizing::new([7u8; 32]))
    }

    fn plain_for_all(_: &str) -> Reveal {
        Reveal::Plain
    }

    fn no_hash(_: &str, _: &str) -> String {
        unreachable!()
    }

    #[test]
    fn protect_then_reveal_is_the_identity() {
        let rules = rules(&[
            ("id_number", &["$.id_number"]),
            ("phone", &["$..phone"]),
            ("notes", &["$.visits[*].notes"]),
        ]);
        let body = r#"{"id_number":"110101199003071234","name":"Li","contact":{"phone":13812345678},"visits":[{"notes":{"a":[1,2.50,null]}},{"notes":"\u00e9"}]}"#;
        let sealed = rules.protect(body, &key(), "pt_1").unwrap().unwrap();
        assert!(!sealed.contains("110101199003071234") && !sealed.contains("13812345678"));
        assert!(!sealed.contains("2.50"));
        assert_eq!(sealed.matches("\"wg1:").count(), 4);
        assert!(sealed.contains(r#""name":"Li""#));
        let shown = rules
            .reveal(&sealed, Ok(&key()), "pt_1", &mut plain_for_all, &no_hash)
            .unwrap();
        assert_eq!(shown.body.unwrap(), body);
        assert_eq!(shown.revealed.len(), 3);
        assert!(shown.failures.is_empty());
    }

    #[test]
    fn reveal_splits_only_as_deep_as_the_paths_reach() {
        assert_eq!(rules(&[("phone", &["$..phone"])]).levels, usize::MAX);
        assert_eq!(rules(&[("phone", &["$.phone"])]).levels, 1);
        let rules = rules(&[
            ("phone", &["$.contact.phone"]),
            ("id_number", &["$.id_number"]),
        ]);
        assert_eq!(rules.levels, 2);
        let sealed = rules
            .protect(
                r#"{"id_number":"1101","contact":{"phone":"138"}}"#,
                &key(),
                "pt_1",
            )
            .unwrap()
            .unwrap();
        // The backend adds deeper values of its own, one with a name twice and brackets in
        // its strings: nothing selects them, so they come back exactly as they were.
        let deeper = r#"{"x":{"y": [1, {"z":"]}\"{"}], "y":null}}"#;
        let answer = format!(r#"{{"extra": {deeper}, {}"#, &sealed[1..]);
        let shown = rules
            .reveal(&answer, Ok(&key()), "pt_1", &mut plain_for_all, &no_hash)
            .unwrap();
        assert_eq!(
            shown.body.unwrap(),
            format!(r#"{{"extra":{deeper},"id_number":"1101","contact":{{"phone":"138"}}}}"#)
        );
        assert_eq!(shown.revealed.len(), 2);
    }

    #[test]
    fn planted_ciphertexts_are_refused_however_spelled() {
        let rules = rules(&[("id_number", &["$.id_number"])]);
        for body in [
            r#"{"id_number":"wg1:AAAA"}"#,
            r#"{"id_number":"\u0077g1:AAAA"}"#,
        ] {
            assert!(matches!(
                rules.protect(body, &key(), "pt_1"),
                Err(ProtectError::PlantedCiphertext { .. })
            ));
        }
    }

    #[test]
    fn escaped_member_names_are_still_protected() {
        let rules = rules(&[("id_number", &["$.id_number"])]);
        let sealed = rules
            .protect(r#"{"id\u005fnumber":"1234"}"#, &key(), "pt_1")
            .unwrap()
            .unwrap();
        assert!(!sealed.contains("1234"), "{sealed}");
    }

    #[test]
    fn ciphertexts_moved_between_patients_or_fields_become_null() {
        let rules = rules(&[("a", &["$.a"]), ("b", &["$.b"])]);
        let sealed = rules
            .protect(r#"{"a":"x","b":"y"}"#, &key(), "pt_1")
            .unwrap()
            .unwrap();
        let shown = rules
            .reveal(&sealed, Ok(&key()), "pt_2", &mut plain_for_all, &no_hash)
            .unwrap();
        assert_eq!(shown.body.unwrap(), r#"{"a":null,"b":null}"#);
        assert_eq!(shown.failures.len(), 2);

        let doc: serde_json::Value = serde_json::from_str(&sealed).unwrap();
        let swapped = format!(r#"{{"a":{},"b":{}}}"#, doc["b"], doc["a"]);
        let shown = rules
            .reveal(&swapped, Ok(&key()), "pt_1", &mut plain_for_all, &no_hash)
            .unwrap();
        assert_eq!(shown.failures[0].1, Failure::Integrity);
        let shown = rules
            .reveal(
                &sealed,
                Err(Failure::KeyShredded),
                "pt_1",
                &mut plain_for_all,
                &no_hash,
            )
            .unwrap();
        assert_eq!(shown.failures[0].1, Failure::KeyShredded);
    }

    #[test]
    fn each_caller_sees_its_reveal() {
        let rules = rules(&[
            ("id_number", &["$.id_number"]),
            ("diagnosis", &["$.diagnosis"]),
        ]);
        let sealed = rules
            .protect(
                r#"{"id_number":"110101199003071234","diagnosis":"flu","x":1}"#,
                &key(),
                "pt_1",
            )
            .unwrap()
            .unwrap();
        let mut receptionist = |field: &str| match field {
            "id_number" => Reveal::Mask {
                keep_first: 0,
                keep_last: 4,
            },
            _ => Reveal::Remove,
        };
        let shown = rules
            .reveal(&sealed, Ok(&key()), "pt_1", &mut receptionist, &no_hash)
            .unwrap();
        assert_eq!(
            shown.body.unwrap(),
            r#"{"id_number":"**************1234","x":1}"#
        );
        assert_eq!(shown.masked.len(), 2);
        assert!(shown.revealed.is_empty());
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;
        use serde_json::Value;

        /// Arbitrary JSON whose member names often hit the rules' paths.
        fn json() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                ".*".prop_map(Value::String),
            ];
            leaf.prop_recursive(6, 64, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(
                        prop_oneof![
                            Just("phone".to_owned()),
                            Just("a".to_owned()),
                            Just("items".to_owned()),
                            "[a-z\\u{4e00}-\\u{4e10}]{1,4}",
                        ],
                        inner,
                        0..6
                    )
                    .prop_map(|map| Value::Object(map.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn protect_then_reveal_is_the_identity_for_any_json(
                value in json(),
                pretty in any::<bool>(),
                reach in 0..3usize,
            ) {
                let text = if pretty {
                    serde_json::to_string_pretty(&value).unwrap()
                } else {
                    serde_json::to_string(&value).unwrap()
                };
                // Without the `..` path, reveal splits the body only as deep as the paths
                // reach: two levels, or one (an object's members, split in one pass).
                let rules = match reach {
                    0 => rules(&[("phone", &["$..phone"]), ("a", &["$.a", "$.items[*].a", "$[*]"])]),
                    1 => rules(&[("a", &["$.a", "$.items[*].a", "$[*]"])]),
                    _ => rules(&[("a", &["$.a"]), ("items", &["$.items"])]),
                };
                let sealed = rules.protect(&text, &key(), "pt_1").unwrap();
                let Some(sealed) = sealed else {
                    return Ok(());
                };
                let shown = rules
                    .reveal(&sealed, Ok(&key()), "pt_1", &mut plain_for_all, &no_hash)
                    .unwrap();
                prop_assert!(shown.failures.is_empty());
                let body = shown.body.unwrap();
                if !pretty {
                    prop_assert_eq!(&body, &text);
                }
                let back: Value = serde_json::from_str(&body).unwrap();
                prop_assert_eq!(back, value);
            }

            #[test]
            fn any_single_byte_change_of_a_ciphertext_fails(
                plain in ".*",
                position in any::<prop::sample::Index>(),
                flip in 1u8..=255,
            ) {
                use base64::Engine;
                let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
                let json = serde_json::to_string(&plain).unwrap();
                let sealed = field_cipher::seal(&key(), "pt_1", "f", json.as_bytes());
                let mut raw = engine.decode(&sealed[PREFIX.len()..]).unwrap();
                let at = position.index(raw.len());
                raw[at] ^= flip;
                let changed = format!("{PREFIX}{}", engine.encode(&raw));
                prop_assert!(field_cipher::open(&key(), "pt_1", "f", &changed).is_err());
            }
        }
    }
}
