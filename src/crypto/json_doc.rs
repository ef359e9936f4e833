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
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Visitor};
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

/// Objects up to this size are checked for duplicate names pairwise, larger ones sorted.
const SMALL_OBJECT: usize = 16;

impl<'a> Node<'a> {
    pub fn parse(text: &'a str) -> Result<Node<'a>, DocError> {
        build(text, usize::MAX)
    }

    /// Like [`Node::parse`], but only the containers less than `levels` deep are split (the
    /// root is at depth 0); deeper ones are kept whole, as a [`Node::Leaf`] with their exact
    /// text, and are neither checked for duplicate names nor measured for depth (serde_json
    /// still validates the whole text). For reading bodies whose paths reach only so deep.
    pub fn parse_levels(text: &'a str, levels: usize) -> Result<Node<'a>, DocError> {
        build(text, levels)
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

/// Splits `text` into its parts (down to `levels`), in two passes over the text. serde_json
/// first validates the whole document, so a syntax error is reported once, with its line and
/// column; it does not say where nested values begin and end, which the byte-for-byte rewrite
/// needs, so a second pass of our own finds them. That pass only reads text already known to
/// be valid JSON: it tells strings, containers and the separators between them apart, and
/// leaves every value's own text as it is. An object split one level deep, the usual
/// response, takes one pass: serde_json can hand over its members' values as their text.
fn build(text: &str, levels: usize) -> Result<Node<'_>, DocError> {
    if levels == 1 && text.trim_start_matches(JSON_WHITESPACE).starts_with('{') {
        return object_of_whole_members(text);
    }
    validate_then_split(text, levels)
}

fn validate_then_split(text: &str, levels: usize) -> Result<Node<'_>, DocError> {
    serde_json::from_str::<&RawValue>(text).map_err(syntax)?;
    let mut split = Split::new(text, levels);
    split.skip_whitespace();
    split.value(0)
}

const JSON_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

fn syntax(err: serde_json::Error) -> DocError {
    DocError::Syntax(err.to_string())
}

/// An object split one level deep, its members' values kept whole, in one pass: serde_json
/// validates the text and hands each member's value over as its exact text (a `RawValue`),
/// so the second pass is not needed. The usual response shape, whose field paths are all
/// `$.name`; the same tree [`Split`] builds with `levels` 1.
fn object_of_whole_members(text: &str) -> Result<Node<'_>, DocError> {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(Cow<'de, str>, Node<'de>)>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(MemberName(name)) = map.next_key()? {
                let value: &'de RawValue = map.next_value()?;
                members.push((name, Node::Leaf(value.get())));
            }
            Ok(members)
        }
    }

    let mut parser = serde_json::Deserializer::from_str(text);
    let members = parser.deserialize_map(Members).map_err(syntax)?;
    parser.end().map_err(syntax)?;
    check_unique(&members)?;
    Ok(Node::Object {
        raw: text.trim_matches(JSON_WHITESPACE),
        members,
        changed: false,
    })
}

/// A member name, borrowed from the document when it has no escapes.
struct MemberName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> Visitor<'de> for Name {
            type Value = MemberName<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }

            fn visit_borrowed_str<E: de::Error>(self, name: &'de str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Borrowed(name)))
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
                Ok(MemberName(Cow::Owned(name.to_owned())))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// The second pass: a cursor over validated JSON text.
struct Split<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
    /// Containers this deep or deeper are kept whole.
    levels: usize,
    /// The parts of the containers still open, innermost last. A container's parts are
    /// gathered here and moved into a vector of their exact size when it closes, instead of
    /// each container growing a vector of its own.
    open_members: Vec<(Cow<'a, str>, Node<'a>)>,
    open_elements: Vec<Node<'a>>,
}

impl<'a> Split<'a> {
    fn new(text: &'a str, levels: usize) -> Split<'a> {
        Split {
            text,
            bytes: text.as_bytes(),
            at: 0,
            levels,
            open_members: Vec::new(),
            open_elements: Vec::new(),
        }
    }

    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.at) {
            self.at += 1;
        }
    }

    /// The byte at the cursor. Valid JSON never ends where a byte is still expected; should it
    /// ever, this is an error for the client, not a panic.
    fn next_byte(&self) -> Result<u8, DocError> {
        self.bytes
            .get(self.at)
            .copied()
            .ok_or_else(|| DocError::Syntax("unexpected end of the document".to_owned()))
    }

    /// The value at the cursor (no whitespace before it); leaves the cursor just after it.
    fn value(&mut self, depth: usize) -> Result<Node<'a>, DocError> {
        let start = self.at;
        match self.next_byte()? {
            b'{' | b'[' if depth >= self.levels => {
                self.skip_container()?;
                Ok(Node::Leaf(&self.text[start..self.at]))
            }
            open @ (b'{' | b'[') => {
                if depth >= MAX_DEPTH {
                    return Err(DocError::TooDeep { at: "$".to_owned() });
                }
                self.at += 1;
                self.skip_whitespace();
                let node = if open == b'{' {
                    let members = self.members(depth)?;
                    check_unique(&members)?;
                    Node::Object {
                        raw: &self.text[start..self.at],
                        members,
                        changed: false,
                    }
                } else {
                    let elements = self.elements(depth)?;
                    Node::Array {
                        raw: &self.text[start..self.at],
                        elements,
                        changed: false,
                    }
                };
                Ok(node)
            }
            b'"' => {
                self.skip_string()?;
                Ok(Node::Leaf(&self.text[start..self.at]))
            }
            _ => {
                // A number or a literal: it runs to the next separator or whitespace.
                self.at += self.bytes[start..]
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}' | b' ' | b'\t' | b'\n' | b'\r'))
                    .unwrap_or(self.bytes.len() - start);
                Ok(Node::Leaf(&self.text[start..self.at]))
            }
        }
    }

    /// An object's members, the cursor just inside its `{`; leaves it after the `}`.
    fn members(&mut self, depth: usize) -> Result<Vec<(Cow<'a, str>, Node<'a>)>, DocError> {
        if self.next_byte()? == b'}' {
            self.at += 1;
            return Ok(Vec::new());
        }
        let first = self.open_members.len();
        loop {
            let name = self.name()?;
            self.skip_whitespace();
            self.at += 1; // the `:`
            self.skip_whitespace();
            let value = self
                .value(depth + 1)
                .map_err(|err| err.under(&Step::Member(&name)))?;
            self.open_members.push((name, value));
            if self.end_of_container(b'}')? {
                return Ok(self.open_members.drain(first..).collect());
            }
        }
    }

    /// An array's elements, the cursor just inside its `[`; leaves it after the `]`.
    fn elements(&mut self, depth: usize) -> Result<Vec<Node<'a>>, DocError> {
        if self.next_byte()? == b']' {
            self.at += 1;
            return Ok(Vec::new());
        }
        let first = self.open_elements.len();
        loop {
            let index = self.open_elements.len() - first;
            let value = self
                .value(depth + 1)
                .map_err(|err| err.under(&Step::Element(index)))?;
            self.open_elements.push(value);
            if self.end_of_container(b']')? {
                return Ok(self.open_elements.drain(first..).collect());
            }
        }
    }

    /// After a member or element: `true` at the container's `close`, `false` at a `,` (the
    /// cursor then on the next value). Either way the cursor moves past it.
    fn end_of_container(&mut self, close: u8) -> Result<bool, DocError> {
        self.skip_whitespace();
        let separator = self.next_byte()?;
        self.at += 1;
        if separator == close {
            return Ok(true);
        }
        self.skip_whitespace();
        Ok(false)
    }

    /// A member name, borrowed from the document when it has no escapes.
    fn name(&mut self) -> Result<Cow<'a, str>, DocError> {
        let start = self.at;
        self.skip_string()?;
        let quoted = &self.text[start..self.at];
        let inner = &quoted[1..quoted.len() - 1];
        if !inner.contains('\\') {
            return Ok(Cow::Borrowed(inner));
        }
        serde_json::from_str::<String>(quoted)
            .map(Cow::Owned)
            .map_err(|err| DocError::Syntax(err.to_string()))
    }

    /// Moves the cursor from a container's opening bracket to just after its closing one.
    fn skip_container(&mut self) -> Result<(), DocError> {
        let mut open = 0usize;
        loop {
            match self.next_byte()? {
                b'"' => {
                    self.skip_string()?;
                    continue;
                }
                b'{' | b'[' => open += 1,
                b'}' | b']' => {
                    open = open.saturating_sub(1);
                    if open == 0 {
                        self.at += 1;
                        return Ok(());
                    }
                }
                _ => {}
            }
            self.at += 1;
        }
    }

    /// Moves the cursor from a string's opening quote to just after its closing one.
    fn skip_string(&mut self) -> Result<(), DocError> {
        self.at += 1;
        loop {
            let found = self
                .bytes
                .get(self.at..)
                .and_then(|rest| memchr::memchr2(b'"', b'\\', rest))
                .ok_or_else(|| DocError::Syntax("unterminated string".to_owned()))?;
            if self.bytes[self.at + found] == b'"' {
                self.at += found + 1;
                return Ok(());
            }
            // A backslash and the character it escapes (`\u` is followed by hex digits only).
            self.at += found + 2;
        }
    }
}

fn check_unique(pairs: &[(Cow<'_, str>, Node<'_>)]) -> Result<(), DocError> {
    let duplicate = if pairs.len() <= SMALL_OBJECT {
        pairs
            .iter()
            .enumerate()
            .find(|(i, (name, _))| pairs[..*i].iter().any(|(other, _)| other == name))
            .map(|(_, (name, _))| name.as_ref())
    } else {
        // Sorted, equal names sit side by side. (No hash set: a keyed hash of every name cost
        // more than the sort, and a client cannot make a sort slow.) By length first: most
        // pairs of names then differ without comparing their bytes.
        let mut names: Vec<&str> = pairs.iter().map(|(name, _)| name.as_ref()).collect();
        names.sort_unstable_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
        names
            .windows(2)
            .find(|pair| pair[0] == pair[1])
            .map(|pair| pair[0])
    };
    match duplicate {
        Some(name) => Err(DocError::DuplicateMember {
            name: name.to_owned(),
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

    /// The tree as serde_json reads it, from our split: names decoded, leaves by their text.
    fn as_value(node: &Node<'_>) -> serde_json::Value {
        match node {
            Node::Object { members, .. } => members
                .iter()
                .map(|(name, value)| (name.to_string(), as_value(value)))
                .collect::<serde_json::Map<_, _>>()
                .into(),
            Node::Array { elements, .. } => elements.iter().map(as_value).collect(),
            Node::Leaf(text) => serde_json::from_str(text).expect("a leaf is a JSON value"),
            _ => unreachable!("nothing was changed"),
        }
    }

    #[test]
    fn the_split_finds_the_values_serde_json_finds() {
        for text in [
            r#"{"a\"]}{,":"x\"}]\\","b":[ 1 , -2.5e+3 ,"]",{},[],[[]],null ] ,"c" : {"d":true}}"#,
            " \t\r\n[ \"\\u005d\" , false\n, 0 ] \n",
            r#"{"\u0061b":{"n":123456789012345678901234567890},"e":""}"#,
            "[-0,1E300,\"\\\\\"]",
            "{}",
            "[]",
            r#""\"""#,
            "-1.5",
        ] {
            let doc = Node::parse(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            let expected: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(as_value(&doc), expected, "{text}");
            assert_eq!(doc.to_json(), text.trim_matches(JSON_WHITESPACE), "{text}");
        }
    }

    /// The split only ever sees text serde_json accepted; should it see anything else, it
    /// answers with an error rather than a panic.
    #[test]
    fn the_split_fails_cleanly_on_text_it_should_never_get() {
        for text in [r#""abc"#, r#""ab\"#, r#"{"a":1"#, "[1,", "{", r#"{"a""#] {
            let mut split = Split::new(text, usize::MAX);
            assert!(split.value(0).is_err(), "{text:?} split");
            let mut kept_whole = Split::new(text, 0);
            assert!(kept_whole.value(0).is_err(), "{text:?} kept whole");
        }
    }

    #[test]
    fn a_partial_split_keeps_deeper_containers_whole() {
        let text = r#"{"a": {"s": "}]\"{[", "n": [1, {"b": 2}]}, "c": [ "x" ], "d": 3}"#;
        let doc = Node::parse_levels(text, 1).unwrap();
        let Node::Object { members, .. } = &doc else {
            panic!("the root is split");
        };
        let parts: Vec<(&str, &str)> = members
            .iter()
            .map(|(name, value)| match value {
                Node::Leaf(raw) => (name.as_ref(), *raw),
                _ => panic!("{name} is kept whole"),
            })
            .collect();
        assert_eq!(
            parts,
            [
                ("a", r#"{"s": "}]\"{[", "n": [1, {"b": 2}]}"#),
                ("c", r#"[ "x" ]"#),
                ("d", "3")
            ]
        );
        assert!(matches!(Node::parse_levels(text, 0), Ok(Node::Leaf(raw)) if raw == text));
        // Names twice below the split are not looked for; at the levels split they still are.
        assert!(Node::parse_levels(r#"{"a":{"x":1,"x":2}}"#, 1).is_ok());
        assert!(matches!(
            Node::parse_levels(r#"{"a":1,"a":2}"#, 1),
            Err(DocError::DuplicateMember { .. })
        ));
    }

    /// The one-pass split of an object one level deep builds the very tree the general split
    /// builds, and refuses what it refuses.
    #[test]
    fn the_one_pass_object_split_agrees_with_the_general_one() {
        let general = |text| validate_then_split(text, 1);
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(200), "]".repeat(200));
        let parts = |node: Node<'_>| match node {
            Node::Object { raw, members, .. } => {
                let members: Vec<(String, String)> = members
                    .into_iter()
                    .map(|(name, value)| match value {
                        Node::Leaf(text) => (name.into_owned(), text.to_owned()),
                        _ => panic!("a member's value is kept whole"),
                    })
                    .collect();
                (raw.to_owned(), members)
            }
            _ => panic!("an object"),
        };
        for text in [
            r#"{"a\"]}{,":"x\"}]\\","b":[ 1 , -2.5e+3 ,"]",{},[],[[]],null ] ,"c" : {"d":true}}"#,
            " \t\r\n{ \"\\u0061b\" : {\"n\":123456789012345678901234567890} , \"e\":\"wg1:x\" }\n",
            r#"{"id":"p-1","x":{"x":1,"x":2},"n":-0.0E-0,"t":true,"z":null}"#,
            "{}",
            // Kept whole, a member is not measured for depth by either (nor by serde_json).
            &deep,
        ] {
            let one_pass =
                object_of_whole_members(text).unwrap_or_else(|err| panic!("{text}: {err}"));
            assert_eq!(one_pass.to_json(), text.trim_matches(JSON_WHITESPACE));
            assert_eq!(parts(one_pass), parts(general(text).unwrap()), "{text}");
        }
        for refused in [
            r#"{"a":1,"\u0061":2}"#,
            r#"{"a":1,}"#,
            r#"{"a":1} x"#,
            r#"{"a" 1}"#,
            "{\"a\":\"\u{1}\"}",
        ] {
            let kind = |result: Result<Node<'_>, DocError>| match result {
                Ok(_) => "accepted",
                Err(DocError::Syntax(_)) => "syntax",
                Err(DocError::TooDeep { .. }) => "too deep",
                Err(DocError::DuplicateMember { .. }) => "duplicate",
            };
            let one_pass = kind(object_of_whole_members(refused));
            assert_ne!(one_pass, "accepted", "{refused:?}");
            assert_eq!(one_pass, kind(general(refused)), "{refused:?}");
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
        // A large object (checked sorted rather than pairwise), with and without a duplicate.
        let members: Vec<String> = (0..40).map(|i| format!("\"m{i}\":{i}")).collect();
        let large = format!("{{{}}}", members.join(","));
        assert!(Node::parse(&large).is_ok());
        let Err(DocError::DuplicateMember { name, at }) =
            Node::parse(&format!("{{\"x\":{large},\"y\":1}}").replace("\"m31\"", "\"m7\""))
        else {
            panic!("duplicate in a large object accepted");
        };
        assert_eq!((name.as_str(), at.as_str()), ("m7", "$.x"));
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
