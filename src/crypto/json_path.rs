//! The JSON paths field rules name sensitive values with: the subset of JSONPath (RFC 9535)
//! that selects values without filters: `$.a.b`, `$['a b']`, `$.items[*].b`, `$.items[0]`,
//! `$.*`, and `$..b` (a member named `b` at any depth). Matching runs while a document is
//! walked, one step per member or element, so a body is traversed once for all its rules.

use std::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    /// `.name` or `['name']`
    Member(String),
    /// `.*` or `[*]`: every member of an object and every element of an array.
    Any,
    /// `[n]`
    Index(usize),
    /// `..name`: a member with that name at this level or any level below.
    Descendant(String),
}

/// A parsed path; `Display` gives back its canonical spelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSON path {path:?} at character {at}: {reason}")]
pub struct PathSyntaxError {
    pub path: String,
    pub at: usize,
    pub reason: &'static str,
}

/// One step of the document walk: the member name or element index just entered.
#[derive(Clone, Copy, Debug)]
pub enum Step<'a> {
    Member(&'a str),
    Element(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, PathSyntaxError> {
        let fail = |at: usize, reason| PathSyntaxError {
            path: text.to_owned(),
            at,
            reason,
        };
        let chars: Vec<char> = text.chars().collect();
        if chars.first() != Some(&'$') {
            return Err(fail(0, "a path starts with `$`"));
        }
        let mut segments = Vec::new();
        let mut i = 1;
        while i < chars.len() {
            match chars[i] {
                '.' if chars.get(i + 1) == Some(&'.') => {
                    let (name, next) = dotted_name(&chars, i + 2).ok_or_else(|| {
                        fail(i + 2, "`..` is followed by a member name ([A-Za-z0-9_-])")
                    })?;
                    segments.push(Segment::Descendant(name));
                    i = next;
                }
                '.' if chars.get(i + 1) == Some(&'*') => {
                    segments.push(Segment::Any);
                    i += 2;
                }
                '.' => {
                    let (name, next) = dotted_name(&chars, i + 1).ok_or_else(|| {
                        fail(
                            i + 1,
                            "`.` is followed by a member name ([A-Za-z0-9_-]) or `*`; quote others as ['name']",
                        )
                    })?;
                    segments.push(Segment::Member(name));
                    i = next;
                }
                '[' => {
                    let close = chars[i..]
                        .iter()
                        .position(|c| *c == ']')
                        .map(|offset| i + offset)
                        .ok_or_else(|| fail(i, "`[` is not closed"))?;
                    let inside: String = chars[i + 1..close].iter().collect();
                    segments.push(bracket(&inside).ok_or_else(|| {
                        fail(i + 1, "brackets hold `*`, an index, or a quoted name")
                    })?);
                    i = close + 1;
                }
                _ => return Err(fail(i, "expected `.`, `..` or `[`")),
            }
        }
        if segments.is_empty() {
            return Err(fail(1, "the path names no value below the document root"));
        }
        Ok(JsonPath { segments })
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    /// How many levels of containers must be opened to find what the path selects: one per
    /// step, or all of them (`None`) when a `..name` step may match at any depth.
    pub(crate) fn levels(&self) -> Option<usize> {
        let descends = self
            .segments
            .iter()
            .any(|segment| matches!(segment, Segment::Descendant(_)));
        (!descends).then_some(self.segments.len())
    }

    /// The positions reached by taking `step` from position `at` (0 = the root): none, one,
    /// or two (`..name` both matches here and keeps looking further down). A position equal
    /// to `len()` means the value at that step matches.
    pub(crate) fn advance(&self, at: usize, step: Step<'_>) -> [Option<usize>; 2] {
        let Some(segment) = self.segments.get(at) else {
            return [None, None];
        };
        match (segment, step) {
            (Segment::Member(name), Step::Member(key)) if name == key => [Some(at + 1), None],
            (Segment::Any, _) => [Some(at + 1), None],
            (Segment::Index(n), Step::Element(i)) if *n == i => [Some(at + 1), None],
            (Segment::Descendant(name), step) => {
                let here = matches!(step, Step::Member(key) if key == name);
                [here.then_some(at + 1), Some(at)]
            }
            _ => [None, None],
        }
    }
}

impl JsonPath {
    /// Whether the path selects anything in `value` (for erasure probes: "this field must be
    /// gone").
    pub fn selects_in(&self, value: &serde_json::Value) -> bool {
        fn walk(path: &JsonPath, value: &serde_json::Value, positions: &[usize]) -> bool {
            if positions.contains(&path.len()) {
                return true;
            }
            let step_into = |step: Step<'_>, child: &serde_json::Value| {
                let next: Vec<usize> = positions
                    .iter()
                    .flat_map(|&at| path.advance(at, step).into_iter().flatten())
                    .collect();
                !next.is_empty() && walk(path, child, &next)
            };
            match value {
                serde_json::Value::Object(members) => members
                    .iter()
                    .any(|(name, child)| step_into(Step::Member(name), child)),
                serde_json::Value::Array(elements) => elements
                    .iter()
                    .enumerate()
                    .any(|(i, child)| step_into(Step::Element(i), child)),
                _ => false,
            }
        }
        walk(self, value, &[0])
    }
}

fn dotted_name(chars: &[char], from: usize) -> Option<(String, usize)> {
    let end = chars[from.min(chars.len())..]
        .iter()
        .position(|c| !(c.is_alphanumeric() || *c == '_' || *c == '-'))
        .map_or(chars.len(), |offset| from + offset);
    (end > from).then(|| (chars[from..end].iter().collect(), end))
}

fn bracket(inside: &str) -> Option<Segment> {
    let inside = inside.trim();
    if inside == "*" {
        return Some(Segment::Any);
    }
    if let Ok(index) = inside.parse::<usize>() {
        return Some(Segment::Index(index));
    }
    for quote in ['\'', '"'] {
        if let Some(name) = inside
            .strip_prefix(quote)
            .and_then(|rest| rest.strip_suffix(quote))
        {
            if !name.is_empty() && !name.contains(quote) && !name.contains('\\') {
                return Some(Segment::Member(name.to_owned()));
            }
        }
    }
    None
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$")?;
        for segment in &self.segments {
            match segment {
                Segment::Member(name)
                    if dotted_name(&name.chars().collect::<Vec<_>>(), 0)
                        .is_some_and(|(_, end)| end == name.chars().count()) =>
                {
                    write!(f, ".{name}")?
                }
                Segment::Member(name) => write!(f, "['{name}']")?,
                Segment::Any => f.write_str("[*]")?,
                Segment::Index(i) => write!(f, "[{i}]")?,
                Segment::Descendant(name) => write!(f, "..{name}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(path: &str, steps: &[Step<'_>]) -> bool {
        let path = JsonPath::parse(path).unwrap();
        let mut positions = vec![0];
        for step in steps {
            positions = positions
                .into_iter()
                .flat_map(|at| path.advance(at, *step).into_iter().flatten())
                .collect();
        }
        positions.contains(&path.len())
    }

    #[test]
    fn the_supported_forms_parse_and_print_back() {
        for path in [
            "$.a.b",
            "$.items[*].b",
            "$..phone",
            "$.a[0]",
            "$['a b'].c",
            "$[*]",
        ] {
            assert_eq!(JsonPath::parse(path).unwrap().to_string(), path);
        }
        assert_eq!(JsonPath::parse("$.*").unwrap().to_string(), "$[*]");
        assert_eq!(JsonPath::parse("$['id']").unwrap().to_string(), "$.id");
    }

    #[test]
    fn bad_paths_say_where() {
        for (path, at) in [
            ("a.b", 0),
            ("$", 1),
            ("$.", 2),
            ("$..", 3),
            ("$[", 1),
            ("$[?(@.a)]", 2),
            ("$.a b", 3),
        ] {
            let err = JsonPath::parse(path).unwrap_err();
            assert_eq!(err.at, at, "{path}: {err}");
        }
    }

    #[test]
    fn steps_match_as_jsonpath_says() {
        use Step::{Element as E, Member as M};
        assert!(matches("$.a.b", &[M("a"), M("b")]));
        assert!(!matches("$.a.b", &[M("a"), M("c")]));
        assert!(!matches("$.a.b", &[M("a")]));
        assert!(matches("$.items[*].b", &[M("items"), E(3), M("b")]));
        assert!(matches("$.items[1]", &[M("items"), E(1)]));
        assert!(!matches("$.items[1]", &[M("items"), E(2)]));
        assert!(matches("$..phone", &[M("phone")]));
        assert!(matches("$..phone", &[M("a"), E(0), M("b"), M("phone")]));
        assert!(!matches("$..phone", &[M("a"), M("phones")]));
        assert!(matches("$.a..id", &[M("a"), M("x"), M("id")]));
        assert!(!matches("$.a..id", &[M("b"), M("id")]));
    }
}
