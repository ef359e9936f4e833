//! Authorization (pipeline stage 5's machinery). The casbin model and policy are loaded once
//! per config, every question the routes can ask (role x relation x resource x action) is
//! answered by casbin at load time, and requests read the answers from an immutable table:
//! no lock, no matcher on the request path, and a reload builds a whole new table.
//! The rule that allowed a request is kept with each answer, for the audit trail and logs.

mod break_glass;
mod explain;
mod relation;

use std::collections::BTreeSet;

// Keys come from the config only, so a fast hash without flooding resistance is safe here.
use foldhash::HashMap;
use std::path::Path;
use std::sync::{Arc, LazyLock};

use casbin::{CoreApi, DefaultModel, Enforcer, StringAdapter};
use sha2::{Digest, Sha256};

pub use break_glass::{BreakGlassAsk, BreakGlassGrants, BreakGlassRules};
pub use explain::{explain, ExplainError};
pub use relation::{relations, Relation};

use crate::config::Invalid;

/// What the policy decided, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The policy line that allowed it (`p, doctor, same_department, medical_record, read`),
    /// or `default deny`.
    pub rule: Arc<str>,
    /// The role whose grant was used.
    pub role: Option<Arc<str>>,
    pub relation: Relation,
}

impl Decision {
    fn deny(relation: Relation) -> Decision {
        static DEFAULT_DENY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from("default deny"));
        Decision {
            allowed: false,
            rule: DEFAULT_DENY.clone(),
            role: None,
            relation,
        }
    }
}

/// A question routes can ask: a resource and an action.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Question {
    pub resource: String,
    pub action: String,
}

/// Answers for one resource and action: role -> the allowing rule per relation. (The role is
/// an `Arc` so that a decision names it without a copy.)
type Answers = HashMap<Arc<str>, [Option<Arc<str>>; 5]>;

pub struct Policy {
    /// resource -> action -> answers.
    table: HashMap<String, HashMap<String, Answers>>,
    /// Every role the policy names.
    pub roles: BTreeSet<String>,
    /// SHA-256 of the model and policy text, to tell versions apart.
    pub hash: String,
    /// The policy's lines as fields (`p, role, relation, resource, action`; `g, role, parent`).
    pub lines: Vec<Vec<String>>,
}

impl Policy {
    /// Loads and checks the model and policy files (problems are reported with the policy
    /// file's line), then answers every question in `questions` for every role.
    pub async fn load(
        model_path: &Path,
        policy_path: &Path,
        key: &str,
        questions: &BTreeSet<Question>,
    ) -> Result<Policy, Vec<Invalid>> {
        let model_text = std::fs::read_to_string(model_path).map_err(|err| {
            vec![Invalid::new(
                format!("{key}.model"),
                format!("cannot read {}: {err}", model_path.display()),
            )]
        })?;
        let policy_text = std::fs::read_to_string(policy_path).map_err(|err| {
            vec![Invalid::new(
                format!("{key}.policy"),
                format!("cannot read {}: {err}", policy_path.display()),
            )]
        })?;
        let lines = check_policy_lines(policy_path, &policy_text)?;
        let model = DefaultModel::from_str(&model_text).await.map_err(|err| {
            vec![Invalid::new(
                format!("{key}.model"),
                format!("{}: invalid casbin model: {err}", model_path.display()),
            )]
        })?;
        let adapter = StringAdapter::new(
            lines
                .iter()
                .map(|line| line.join(", "))
                .collect::<Vec<_>>()
                .join("\n"),
        );
        let mut enforcer = Enforcer::new(model, adapter).await.map_err(|err| {
            vec![Invalid::new(
                format!("{key}.policy"),
                format!("{}: cannot load: {err}", policy_path.display()),
            )]
        })?;
        enforcer.enable_log(false);

        let roles: BTreeSet<String> = lines
            .iter()
            .flat_map(|line| match line[0].as_str() {
                "p" => vec![line[1].clone()],
                _ => vec![line[1].clone(), line[2].clone()],
            })
            .collect();
        let mut table: HashMap<String, HashMap<String, Answers>> = HashMap::default();
        for question in questions {
            let answers = table
                .entry(question.resource.clone())
                .or_default()
                .entry(question.action.clone())
                .or_default();
            for role in &roles {
                let slots = answers.entry(Arc::from(role.as_str())).or_default();
                for relation in Relation::ALL {
                    let asked = (
                        role.as_str(),
                        relation.as_str(),
                        question.resource.as_str(),
                        question.action.as_str(),
                    );
                    let (allowed, matched) = enforcer.enforce_ex(asked).map_err(|err| {
                        vec![Invalid::new(
                            format!("{key}.model"),
                            format!("{}: the model cannot answer: {err}", model_path.display()),
                        )]
                    })?;
                    if allowed {
                        let rule = matched
                            .first()
                            .map(|rule| format!("p, {}", rule.join(", ")))
                            .unwrap_or_else(|| "allow".to_owned());
                        *relation.slot_mut(slots) = Some(Arc::from(rule));
                    }
                }
            }
        }
        Ok(Policy {
            table,
            roles,
            hash: policy_hash(&model_text, &policy_text),
            lines,
        })
    }

    /// Allowed when any role allows it under any of the relations, asked in order.
    pub fn decide(
        &self,
        roles: &[String],
        relations: &[Relation],
        resource: &str,
        action: &str,
    ) -> Decision {
        match self.grant(roles, relations, resource, action) {
            Some((role, rule, relation)) => Decision {
                allowed: true,
                rule: rule.clone(),
                role: Some(role.clone()),
                relation,
            },
            None => Decision::deny(relations.first().copied().unwrap_or(Relation::None)),
        }
    }

    /// [`Policy::decide`]'s answer alone, for callers that need no reason (field reveals,
    /// asked once per protected field).
    pub fn allows(
        &self,
        roles: &[String],
        relations: &[Relation],
        resource: &str,
        action: &str,
    ) -> bool {
        self.grant(roles, relations, resource, action).is_some()
    }

    /// The first role and relation, in the order asked, whose grant allows `action` on
    /// `resource`, with the rule that allows it.
    fn grant(
        &self,
        roles: &[String],
        relations: &[Relation],
        resource: &str,
        action: &str,
    ) -> Option<(&Arc<str>, &Arc<str>, Relation)> {
        let answers = self.table.get(resource)?.get(action)?;
        relations.iter().find_map(|&relation| {
            roles.iter().find_map(|role| {
                let (role, slots) = answers.get_key_value(role.as_str())?;
                let rule = relation.slot(slots).as_ref()?;
                Some((role, rule, relation))
            })
        })
    }
}

const RELATION_NAMES: [&str; 6] = [
    "self",
    "same_department",
    "break_glass",
    "other",
    "none",
    "*",
];

/// SHA-256 over the model and the policy text: the policy version's name.
pub fn policy_hash(model_text: &str, policy_text: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(model_text.as_bytes());
    hasher.update(b"\n--\n");
    hasher.update(policy_text.as_bytes());
    hex::encode(hasher.finalize())
}

/// The lines of a policy file as fields, checked (for reports that need no decision table).
pub fn read_lines(path: &Path) -> Result<Vec<Vec<String>>, Vec<Invalid>> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        vec![Invalid::new(
            "policy.policy",
            format!("cannot read {}: {err}", path.display()),
        )]
    })?;
    check_policy_lines(path, &text)
}

/// Reads the policy CSV line by line so that a bad line is reported with its number, and
/// returns the lines as fields.
fn check_policy_lines(path: &Path, text: &str) -> Result<Vec<Vec<String>>, Vec<Invalid>> {
    let mut lines = Vec::new();
    let mut problems = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<String> = line
            .split(',')
            .map(|field| field.trim().to_owned())
            .collect();
        let at = |message: String| Invalid::at(path, index + 1, message);
        match fields[0].as_str() {
            "p" if fields.len() == 5 => {
                if !RELATION_NAMES.contains(&fields[2].as_str()) {
                    problems.push(at(format!(
                        "unknown relation {:?}; use one of {}",
                        fields[2],
                        RELATION_NAMES.join(", ")
                    )));
                    continue;
                }
                if fields.iter().any(String::is_empty) {
                    problems.push(at("a policy line has an empty field".to_owned()));
                    continue;
                }
                lines.push(fields);
            }
            "p" => problems.push(at(format!(
                "a p line has 4 fields after p (role, relation, resource, action), found {}",
                fields.len() - 1
            ))),
            "g" if fields.len() == 3 && fields.iter().all(|f| !f.is_empty()) => lines.push(fields),
            "g" => problems.push(at(
                "a g line has 2 fields after g (role, inherited role)".to_owned()
            )),
            other => problems.push(at(format!("a line starts with p or g, not {other:?}"))),
        }
    }
    if problems.is_empty() {
        Ok(lines)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question(resource: &str, action: &str) -> Question {
        Question {
            resource: resource.to_owned(),
            action: action.to_owned(),
        }
    }

    /// `allows` is `decide`'s answer without the reason, for every role, relation order and
    /// question of the shipped policy, and for questions the table never asked.
    #[tokio::test]
    async fn allows_agrees_with_decide() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let questions: BTreeSet<Question> = [
            question("medical_record", "read"),
            question("patient_profile", "write"),
            question("field:id_number", "reveal"),
            question("field:diagnosis", "reveal"),
        ]
        .into();
        let policy = Policy::load(
            &root.join("policies/model.conf"),
            &root.join("policies/policy.csv"),
            "policy",
            &questions,
        )
        .await
        .expect("the shipped policy loads");
        let roles: Vec<Vec<String>> = policy
            .roles
            .iter()
            .map(|role| vec![role.clone()])
            .chain([vec![], vec!["nobody".to_owned(), "doctor".to_owned()]])
            .collect();
        let orders = [
            vec![Relation::SelfPatient],
            vec![Relation::SameDepartment, Relation::Other],
            vec![Relation::BreakGlass, Relation::SameDepartment],
            vec![Relation::Other],
            vec![],
        ];
        let asked = questions
            .iter()
            .map(|q| (q.resource.as_str(), q.action.as_str()))
            .chain([("medical_record", "delete"), ("no_such_resource", "read")]);
        let mut allowed = 0;
        for (resource, action) in asked {
            for roles in &roles {
                for relations in &orders {
                    let decision = policy.decide(roles, relations, resource, action);
                    assert_eq!(
                        policy.allows(roles, relations, resource, action),
                        decision.allowed,
                        "{roles:?} {relations:?} {resource} {action}"
                    );
                    if decision.allowed {
                        allowed += 1;
                        assert!(decision.role.is_some() && decision.rule.starts_with("p, "));
                    } else {
                        assert_eq!(&*decision.rule, "default deny");
                    }
                }
            }
        }
        // Both answers occur, so the comparison above is not vacuous.
        assert!(allowed > 0);
    }
}
