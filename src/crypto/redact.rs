//! How a protected field is shown to a caller: in plain, masked (`**************1234`),
//! partially (`138****5678`), as a keyed hash, or not at all. `plain` is only ever the answer
//! of the policy (`field:<name>`, `reveal`); the others are configured per field and role.

use std::collections::{BTreeMap, HashMap};

use super::json_doc::Node;
use crate::config::{FieldConfig, RedactMode};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reveal {
    Plain,
    /// Every character but the first `keep_first` and the last `keep_last` becomes `*`; a
    /// value too short to keep anything is masked whole.
    Mask {
        keep_first: usize,
        keep_last: usize,
    },
    /// A keyed pseudonym of the value: equal values give equal hashes, nothing more.
    Hash,
    Remove,
}

impl Reveal {
    /// The names the audit record uses: revealed in plain, or masked (any other way).
    pub fn is_plain(self) -> bool {
        self == Reveal::Plain
    }

    /// How much of the value a caller sees, to pick the most revealing of several roles'
    /// settings.
    pub fn visibility(self) -> usize {
        match self {
            Reveal::Remove => 0,
            Reveal::Hash => 1,
            Reveal::Mask {
                keep_first,
                keep_last,
            } => 2 + keep_first + keep_last,
            Reveal::Plain => usize::MAX,
        }
    }

    /// The value as this caller sees it. `json` is the value's exact JSON text.
    pub fn apply<'a>(self, json: &str, hash: impl FnOnce(&str) -> String) -> Node<'a> {
        match self {
            Reveal::Plain => Node::Replaced(json.to_owned()),
            Reveal::Remove => Node::Removed,
            Reveal::Hash => Node::Replaced(quote(&hash(json))),
            Reveal::Mask {
                keep_first,
                keep_last,
            } => {
                let content: String = if json.starts_with('"') {
                    serde_json::from_str(json).unwrap_or_default()
                } else {
                    json.to_owned()
                };
                Node::Replaced(quote(&mask(&content, keep_first, keep_last)))
            }
        }
    }
}

/// What each field looks like to callers who may not reveal it, by role.
#[derive(Debug, Default)]
pub struct Redactions {
    by_field: HashMap<String, FieldRedaction>,
}

#[derive(Debug)]
struct FieldRedaction {
    default: Reveal,
    roles: HashMap<String, Reveal>,
}

impl Redactions {
    pub fn build(fields: &BTreeMap<String, FieldConfig>) -> Redactions {
        let by_field = fields
            .iter()
            .map(|(name, field)| {
                let reveal = |mode| Reveal::from_config(mode, field.keep_first, field.keep_last);
                let redaction = FieldRedaction {
                    default: reveal(field.redact),
                    roles: field
                        .roles
                        .iter()
                        .map(|(role, mode)| (role.clone(), reveal(*mode)))
                        .collect(),
                };
                (name.clone(), redaction)
            })
            .collect();
        Redactions { by_field }
    }

    /// The most revealing of the roles' settings for the field (`remove` for a field not
    /// configured: fail closed).
    pub fn for_roles(&self, field: &str, roles: &[String]) -> Reveal {
        let Some(redaction) = self.by_field.get(field) else {
            return Reveal::Remove;
        };
        roles
            .iter()
            .filter_map(|role| redaction.roles.get(role).copied())
            .max_by_key(|reveal| reveal.visibility())
            .unwrap_or(redaction.default)
    }
}

impl Reveal {
    fn from_config(
        mode: RedactMode,
        keep_first: Option<usize>,
        keep_last: Option<usize>,
    ) -> Reveal {
        match mode {
            RedactMode::Mask => Reveal::Mask {
                keep_first: keep_first.unwrap_or(0),
                keep_last: keep_last.unwrap_or(4),
            },
            RedactMode::Partial => Reveal::Mask {
                keep_first: keep_first.unwrap_or(3),
                keep_last: keep_last.unwrap_or(4),
            },
            RedactMode::Hash => Reveal::Hash,
            // `plain` is refused by validation; should one get here, show nothing.
            RedactMode::Remove | RedactMode::Plain => Reveal::Remove,
        }
    }
}

pub fn mask(value: &str, keep_first: usize, keep_last: usize) -> String {
    let count = value.chars().count();
    if count <= keep_first + keep_last {
        return "*".repeat(count.max(1));
    }
    value
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i < keep_first || i >= count - keep_last {
                c
            } else {
                '*'
            }
        })
        .collect()
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "null".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_what_they_say() {
        assert_eq!(mask("110101199003071234", 0, 4), "**************1234");
        assert_eq!(mask("13812345678", 3, 4), "138****5678");
        assert_eq!(mask("张三丰", 1, 0), "张**");
        assert_eq!(mask("1234", 0, 4), "****");
        assert_eq!(mask("", 0, 4), "*");
    }

    #[test]
    fn each_mode_renders_json() {
        let json = r#""13812345678""#;
        let mask = Reveal::Mask {
            keep_first: 3,
            keep_last: 4,
        };
        assert_eq!(
            mask.apply(json, |_| unreachable!()).to_json(),
            r#""138****5678""#
        );
        assert_eq!(
            Reveal::Plain.apply(json, |_| unreachable!()).to_json(),
            json
        );
        assert_eq!(
            Reveal::Hash
                .apply(json, |v| format!("h_{}", v.len()))
                .to_json(),
            r#""h_13""#
        );
        assert!(matches!(
            Reveal::Remove.apply(json, |_| unreachable!()),
            Node::Removed
        ));
        // Numbers are masked as their text.
        assert_eq!(
            Reveal::Mask {
                keep_first: 0,
                keep_last: 2
            }
            .apply("123456", |_| unreachable!())
            .to_json(),
            r#""****56""#
        );
    }
}
