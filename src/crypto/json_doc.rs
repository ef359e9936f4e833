//! A JSON document held as its own text: containers are split into members and elements, and
//! every value keeps the exact bytes it was written with. Writing a document back reproduces
//! untouched parts byte for byte (numbers of any size and precision, strings with any escapes),
//! so the field transformer only ever changes the values its rules name.
//!
//! Parsing is strict: serde_json validates the whole text first (RFC 8259, UTF-8) and reports
//! the line and column of an error; containers nest at most 128 deep; an object with a member
//! name twice is refused, because two parsers may disagree about which of the two counts, and the
//! one the gateway did not protect could be the one the backend stores.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

pub enum Node<'a> {
    Object {
        raw: &'a str,
        members: Vec<(Cow<'a, str>, Node<'a>)>,
        changed: bool,
    },
    Array {
        raw: &'a str,
        elements: Vec<Node<'a>>,
        changed: bool,
    },
    /// A string, number or literal: its exact text.
    Leaf(&'a str),
    /// A value the transformer replaced: its new JSON text.
    Replaced(String),
    /// A value the transformer removed: dropped from its object, `null` in an array.
    Removed,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DocError {
    #[error("invalid JSON: {0}")]
    Syntax(String),
    #[error("containers nest deeper than {MAX_DEPTH} levels at {at}")]
    TooDeep { at: String },
    #[error("the member {name:?} appears twice in the object at {at}")]
    DuplicateMember { name: String, at: String },
}

impl DocError {
    /// The error as seen one level up: its location gets the step into this value in front.
    /// (Locations are only spelled out on the way out of an error, never on the happy path.)
    fn under(mut self, step: &dyn fmt::Display) -> DocError {
        if let DocError::TooDeep { at } | DocError::DuplicateMember { at, .. } = &mut self {
            *at = match at.strip_prefix('$') {
                Some(rest) => format!("${step}{rest}"),
                None => at.clone(),
            };
        }
        self
    }
}

/// How deep containers may nest (serde_json's own limit for typed parsing).
const MAX_DEPTH: usize = 128;

/// Objects up to this size are checked for duplicate names pairwise, larger ones with a set.
const SMALL_OBJECT: usize = 16;

impl<'a> Node<'a> {
    pub fn parse(text: &'a str) -> Result<Node<'a>, DocError> {
        build(text, 0)
    }

    /// The value's JSON text as it would be written now.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(self.raw_len() + 256);
        self.write(&mut out);
        out
    }

    fn raw_len(&self) -> usize {
        match self {
            Node::Object { raw, .. } | Node::Array { raw, .. } | Node::Leaf(raw) => raw.len(),
            Node::Replaced(text) => text.len(),
            Node::Removed => 4,
        }
    }

    /// The exact text of a value not changed (for encryption and hashing).
    pub fn text(&self) -> Option<&'a str> {
        match self {
            Node::Object { raw, changed, .. } | Node::Array { raw, changed, .. } if !changed => {
                Some(raw)
            }
            Node::Leaf(text) => Some(text),
            _ => None,
        }
    }

    /// The string's content when the value is a JSON string (borrowed when it has no
    /// escapes).
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        match self {
            Node::Leaf(text) if text.starts_with('"') => {
                let inner = &text[1..text.len() - 1];
                if inner.contains('\\') {
                    serde_json::from_str::<String>(text).ok().map(Cow::Owned)
                } else {
                    Some(Cow::Borrowed(inner))
                }
            }
            _ => None,
        }
    }

    pub fn mark_changed(&mut self) {
        if let Node::Object { changed, .. } | Node::Array { changed, .. } = self {
            *changed = true;
        }
    }

    fn write(&self, out: &mut String) {
        match self {
            Node::Object {
                raw,
                changed: false,
                ..
            }
            | Node::Array {
                raw,
                changed: false,
                ..
            } => out.push_str(raw),
            Node::Object { members, .. } => {
                out.push('{');
                let mut first = true;
                for (name, value) in members {
                    if matches!(value, Node::Removed) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_name(name, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
            Node::Array { elements, .. } => {
                out.push('[');
                for (i, value) in elements.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    value.write(out);
                }
                out.push(']');
            }
            Node::Leaf(text) => out.push_str(text),
            Node::Replaced(text) => out.push_str(text),
            Node::Removed => out.push_str("null"),
        }
    }
}

/// A member name as a JSON string: as is when nothing needs escaping (the usual case).
fn write_name(name: &str, out: &mut String) {
    if name.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push('"');
        out.push_str(name);
        out.push('"');
    } else {
        out.push_str(&serde_json::to_string(name).unwrap_or_default());
    }
}

/// Splits `text` into its parts, and those into theirs. The split of the outermost value
/// validates the whole document (serde_json reads every nested value it captures as raw text),
/// so a syntax error is reported once, with its line and column in the document; the parts
/// below cannot fail on syntax.
fn build(text: &str, depth: usize) -> Result<Node<'_>, DocError> {
    let trimmed = text.trim_matches(|c: char| c.is_ascii_whitespace());
    let container = matches!(trimmed.as_bytes().first(), Some(b'{' | b'['));
    if depth >= MAX_DEPTH && container {
        return Err(DocError::TooDeep { at: "$".to_owned() });
    }
    let syntax = |err: serde_json::Error| DocError::Syntax(err.to_string());
    match trimmed.as_bytes().first() {
        Some(b'{') => {
            let Members(pairs) = serde_json::from_str(text).map_err(syntax)?;
            check_unique(&pairs)?;
            let mut members = Vec::with_capacity(pairs.len());
            for (name, value) in pairs {
                let node =
                    build(value.get(), depth + 1).map_err(|err| err.under(&Step::Member(&name)))?;
                members.push((name, node));
            }
            Ok(Node::Object {
                raw: trimmed,
                members,
                changed: false,
            })
        }
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(text).map_err(syntax)?;
            let mut elements = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                elements.push(
                    build(item.get(), depth + 1).map_err(|err| err.under(&Step::Element(i)))?,
                );
            }
            Ok(Node::Array {
                raw: trimmed,
                elements,
                changed: false,
            })
        }
        // A document that is a single string, number or literal.
        _ if depth == 0 => {
            serde_json::from_str::<&RawValue>(text).map_err(syntax)?;
            Ok(Node::Leaf(trimmed))
        }
        _ => Ok(Node::Leaf(trimmed)),
    }
}

fn check_unique(pairs: &[(Cow<'_, str>, &RawValue)]) -> Result<(), DocError> {
    let duplicate = if pairs.len() <= SMALL_OBJECT {
        pairs
            .iter()
            .enumerate()
            .find(|(i, (name, _))| pairs[..*i].iter().any(|(other, _)| other == name))
            .map(|(_, (name, _))| name)
    } else {
        let mut seen = HashSet::with_capacity(pairs.len());
        pairs
            .iter()
            .map(|(name, _)| name)
            .find(|name| !seen.insert(*name))
    };
    match duplicate {
        Some(name) => Err(DocError::DuplicateMember {
            name: name.to_string(),
            at: "$".to_owned(),
        }),
        None => Ok(()),
    }
}

/// One step into a value, for error locations: `.name` or `[3]`.
enum Step<'n> {
    Member(&'n str),
    Element(usize),
}

impl fmt::Display for Step<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Member(name) => write!(f, ".{name}"),
            Step::Element(i) => write!(f, "[{i}]"),
        }
    }
}

/// An object's members in document order, duplicates included (a map would hide them).
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A member name, borrowed from the document when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Name(name), value)) =
                    map.next_entry::<Name<'de>, &'de RawValue>()?
                {
                    pairs.push((name, value));
                }
                Ok(Members(pairs))
            }
        }
        deserializer.deserialize_map(MembersVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untouched_documents_come_back_byte_for_byte() {
        for text in [
            r#"{"a": 1, "b" : [1.50, -0e+10, 123456789012345678901234567890], "c":"\u00e9\n"}"#,
            r#"[true,false,null,{"x":{}}]"#,
            r#""just a string""#,
            "  17  ",
        ] {
            assert_eq!(Node::parse(text).unwrap().to_json(), text.trim());
        }
    }

    #[test]
    fn changed_containers_are_rewritten_and_the_rest_kept() {
        let mut doc = Node::parse(r#"{"keep": {"n": 1.0E3}, "drop": 2, "list": [1, 2]}"#).unwrap();
        if let Node::Object {
            members, changed, ..
        } = &mut doc
        {
            members[1].1 = Node::Removed;
            if let Node::Array {
                elements, changed, ..
            } = &mut members[2].1
            {
                elements[0] = Node::Removed;
                *changed = true;
            }
            *changed = true;
        }
        assert_eq!(doc.to_json(), r#"{"keep":{"n": 1.0E3},"list":[null,2]}"#);
    }

    #[test]
    fn duplicates_and_syntax_errors_are_refused_with_where() {
        let Err(DocError::DuplicateMember { name, at }) =
            Node::parse(r#"{"a": {"id": 1, "i\u0064": 2}}"#)
        else {
            panic!("duplicate accepted");
        };
        assert_eq!((name.as_str(), at.as_str()), ("id", "$.a"));
        let Err(DocError::Syntax(message)) = Node::parse("{\"a\": 1,\n \"b\": }") else {
            panic!("bad JSON accepted");
        };
        assert!(message.contains("line 2 column"), "{message}");
        // An error deep inside is found by the outermost split, with its place in the document.
        let Err(DocError::Syntax(message)) = Node::parse("{\"a\": {\"b\": [1,\n 2,, 3]}}") else {
            panic!("bad JSON accepted");
        };
        assert!(message.contains("line 2 column 4"), "{message}");
        assert!(matches!(Node::parse("tru"), Err(DocError::Syntax(_))));
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        assert!(Node::parse(&deep).is_err());
    }
}
