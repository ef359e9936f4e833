//! What a permission review covers, gathered in one pass over the audit trail of the period:
//! the policy in plain words and its versions, the subjects seen, each grant's use (unused
//! grants are revocation candidates), dormant subjects and roles no policy grants, break-glass
//! uses, denials, enumeration alerts, erasure requests, and whether the previous review's
//! revocations were carried out.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use super::store::{self, Decision};
use crate::audit::store::AuditReader;
use crate::store::{Location, StoreError};

const DAY_MS: i64 = 24 * 3600 * 1000;

#[derive(Debug, Serialize)]
pub struct Report {
    pub since_ms: i64,
    pub until_ms: i64,
    pub generated_ms: i64,
    pub records: u64,
    pub policy: PolicySection,
    pub subjects: Vec<SubjectRow>,
    pub grants: Vec<GrantUse>,
    pub dormant_after_days: u64,
    pub dormant: Vec<SubjectRow>,
    pub ungranted_roles: Vec<UngrantedRole>,
    pub break_glass: Vec<BreakGlassUse>,
    pub denials: Vec<DenialGroup>,
    pub enumeration_alerts: Vec<EnumerationAlert>,
    pub erasures: Vec<ErasureRow>,
    pub previous: Option<PreviousReview>,
    /// Requests per day: (day start ms, allowed, denied).
    pub daily: Vec<(i64, u64, u64)>,
}

#[derive(Debug, Serialize)]
pub struct PolicySection {
    pub current_hash: String,
    /// Versions loaded up to the end of the period: (hash, loaded at).
    pub loads: Vec<(String, i64)>,
    pub roles: Vec<RoleGrants>,
}

#[derive(Debug, Serialize)]
pub struct RoleGrants {
    pub role: String,
    /// Roles whose grants this one inherits (`g` lines).
    pub inherits: Vec<String>,
    pub grants: Vec<Grant>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Grant {
    /// The policy line: `p, nurse, same_department, medical_record, write`.
    pub line: String,
    pub role: String,
    pub relation: String,
    pub resource: String,
    pub action: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct SubjectRow {
    pub subject: String,
    pub roles: Vec<String>,
    pub departments: Vec<String>,
    pub first_ms: i64,
    pub last_ms: i64,
    pub requests: u64,
    pub denied: u64,
}

#[derive(Debug, Serialize)]
pub struct GrantUse {
    pub grant: Grant,
    pub uses: u64,
}

#[derive(Debug, Serialize)]
pub struct UngrantedRole {
    pub subject: String,
    pub role: String,
}

#[derive(Debug, Serialize)]
pub struct BreakGlassUse {
    pub time: String,
    pub subject: String,
    pub patient: String,
    pub route: String,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct DenialGroup {
    pub subject: String,
    pub resource: String,
    pub count: u64,
}

#[derive(Debug, Serialize)]
pub struct EnumerationAlert {
    pub time: String,
    pub subject: String,
    pub patient: String,
}

#[derive(Debug, Serialize)]
pub struct ErasureRow {
    pub id: String,
    pub state: String,
    pub received_ms: i64,
    pub due_ms: i64,
    pub finished_ms: Option<i64>,
    /// Finished by its due time (open ones: not yet overdue).
    pub on_time: bool,
}

#[derive(Debug, Serialize)]
pub struct PreviousReview {
    pub reviewer: String,
    pub signed_ms: i64,
    pub decisions: Vec<DecisionCheck>,
}

#[derive(Debug, Serialize)]
pub struct DecisionCheck {
    pub decision: Decision,
    /// For revocations: whether the grant is gone from the current policy.
    pub applied: Option<bool>,
}

/// The few fields of a record a review needs; the rest of the JSON is skipped unread.
#[derive(Deserialize)]
struct Seen<'a> {
    time_ms: i64,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(borrow)]
    subject: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    roles: Vec<Cow<'a, str>>,
    #[serde(borrow, default)]
    department: Option<Cow<'a, str>>,
    #[serde(borrow)]
    route: Option<Cow<'a, str>>,
    #[serde(borrow)]
    patient: Option<Cow<'a, str>>,
    #[serde(borrow)]
    resource: Option<Cow<'a, str>>,
    #[serde(borrow)]
    decision: Cow<'a, str>,
    #[serde(borrow)]
    rule: Option<Cow<'a, str>>,
    #[serde(borrow)]
    break_glass: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    flags: Vec<Cow<'a, str>>,
}

pub struct Inputs<'a> {
    /// Where the audit trail, review history and erasure requests are.
    pub stores: &'a Location,
    pub policy_lines: &'a [Vec<String>],
    pub policy_hash: &'a str,
    pub since_ms: i64,
    pub until_ms: i64,
    pub dormant_after_days: u64,
    pub now_ms: i64,
}

pub fn gather(inputs: &Inputs<'_>) -> Result<Report, StoreError> {
    let grants: Vec<Grant> = inputs
        .policy_lines
        .iter()
        .filter(|line| line[0] == "p")
        .map(|line| Grant {
            line: line.join(", "),
            role: line[1].clone(),
            relation: line[2].clone(),
            resource: line[3].clone(),
            action: line[4].clone(),
        })
        .collect();
    let mut inherits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut roles: BTreeSet<String> = BTreeSet::new();
    for line in inputs.policy_lines {
        match line[0].as_str() {
            "g" => {
                inherits
                    .entry(line[1].clone())
                    .or_default()
                    .push(line[2].clone());
                roles.insert(line[1].clone());
                roles.insert(line[2].clone());
            }
            _ => {
                roles.insert(line[1].clone());
            }
        }
    }

    // One pass over the period, split by row ranges between the machine's cores; each
    // thread tallies its share and the tallies are merged.
    let (first_row, last_row) = AuditReader::open(inputs.stores.clone())?.row_bounds()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    let span = ((last_row - first_row + 1) / threads).max(1);
    let ranges: Vec<(i64, i64)> = (0..threads)
        .map(|i| {
            let start = first_row + i * span;
            let end = if i == threads - 1 {
                last_row
            } else {
                start + span - 1
            };
            (start, end)
        })
        .filter(|(start, end)| start <= end)
        .collect();
    let tallies: Vec<Result<Tally, StoreError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = ranges
            .iter()
            .map(|&rows| {
                let roles = &roles;
                scope.spawn(move || {
                    let reader = AuditReader::open(inputs.stores.clone())?;
                    let mut tally = Tally::default();
                    reader.scan(inputs.since_ms, inputs.until_ms, rows, |body| {
                        if let Ok(seen) = serde_json::from_str::<Seen<'_>>(body) {
                            tally.add(&seen, roles);
                        }
                    })?;
                    Ok(tally)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().unwrap_or_else(|_| Ok(Tally::default())))
            .collect()
    });
    let mut tally = Tally::default();
    for part in tallies {
        tally.merge(part?);
    }
    let Tally {
        records,
        uses,
        subjects,
        ungranted,
        break_glass,
        denials,
        enumeration_alerts,
        daily,
    } = tally;
    let mut break_glass = break_glass;
    break_glass.sort_by(|a: &BreakGlassUse, b| a.time.cmp(&b.time));
    let mut enumeration_alerts = enumeration_alerts;
    enumeration_alerts.sort_by(|a: &EnumerationAlert, b| a.time.cmp(&b.time));

    let mut subjects: Vec<SubjectRow> = subjects.into_values().collect();
    subjects.sort_by(|a, b| a.subject.cmp(&b.subject));
    let dormant_ms = i64::try_from(inputs.dormant_after_days).unwrap_or(0) * DAY_MS;
    let dormant = subjects
        .iter()
        .filter(|row| row.last_ms < inputs.until_ms.min(inputs.now_ms) - dormant_ms)
        .cloned()
        .collect();
    let mut grant_uses: Vec<GrantUse> = grants
        .iter()
        .map(|grant| GrantUse {
            uses: uses.get(&grant.line).copied().unwrap_or(0),
            grant: grant.clone(),
        })
        .collect();
    grant_uses.sort_by(|a, b| a.grant.role.cmp(&b.grant.role).then(b.uses.cmp(&a.uses)));
    let mut denials: Vec<DenialGroup> = denials
        .into_iter()
        .map(|((subject, resource), count)| DenialGroup {
            subject,
            resource,
            count,
        })
        .collect();
    denials.sort_by(|a, b| b.count.cmp(&a.count).then(a.subject.cmp(&b.subject)));

    let role_grants = roles
        .iter()
        .map(|role| RoleGrants {
            role: role.clone(),
            inherits: inherits.get(role).cloned().unwrap_or_default(),
            grants: grants.iter().filter(|g| &g.role == role).cloned().collect(),
        })
        .collect();
    let current_lines: BTreeSet<String> = grants.iter().map(|g| g.line.clone()).collect();
    let previous = store::history(inputs.stores)?
        .into_iter()
        .find(|review| review.signed_at < inputs.now_ms)
        .map(|review| PreviousReview {
            reviewer: review.reviewer,
            signed_ms: review.signed_at,
            decisions: review
                .decisions
                .into_iter()
                .map(|decision| DecisionCheck {
                    applied: (decision.decision == "revoke")
                        .then(|| !current_lines.contains(decision.grant.trim())),
                    decision,
                })
                .collect(),
        });

    Ok(Report {
        since_ms: inputs.since_ms,
        until_ms: inputs.until_ms,
        generated_ms: inputs.now_ms,
        records,
        policy: PolicySection {
            current_hash: inputs.policy_hash.to_owned(),
            loads: store::policy_loads(inputs.stores, inputs.until_ms)?,
            roles: role_grants,
        },
        subjects,
        grants: grant_uses,
        dormant_after_days: inputs.dormant_after_days,
        dormant,
        ungranted_roles: ungranted
            .into_iter()
            .map(|(subject, role)| UngrantedRole { subject, role })
            .collect(),
        break_glass,
        denials,
        enumeration_alerts,
        erasures: erasures(inputs)?,
        previous,
        daily: daily.into_iter().map(|(day, (a, d))| (day, a, d)).collect(),
    })
}

/// What one scan thread counted.
#[derive(Default)]
struct Tally {
    records: u64,
    uses: HashMap<String, u64>,
    subjects: HashMap<String, SubjectRow>,
    ungranted: BTreeSet<(String, String)>,
    break_glass: Vec<BreakGlassUse>,
    denials: HashMap<(String, String), u64>,
    enumeration_alerts: Vec<EnumerationAlert>,
    daily: BTreeMap<i64, (u64, u64)>,
}

impl Tally {
    fn add(&mut self, seen: &Seen<'_>, roles: &BTreeSet<String>) {
        self.records += 1;
        let denied = matches!(&*seen.decision, "deny" | "unauthenticated");
        let day = self
            .daily
            .entry(seen.time_ms - seen.time_ms.rem_euclid(DAY_MS))
            .or_default();
        if denied {
            day.1 += 1;
        } else {
            day.0 += 1;
        }
        if let Some(rule) = seen.rule.as_deref().filter(|rule| rule.starts_with("p, ")) {
            match self.uses.get_mut(rule) {
                Some(count) => *count += 1,
                None => {
                    self.uses.insert(rule.to_owned(), 1);
                }
            }
        }
        let Some(subject) = seen.subject.as_deref() else {
            return;
        };
        if subject == "wardgate-erasure" {
            return;
        }
        if !self.subjects.contains_key(subject) {
            self.subjects.insert(
                subject.to_owned(),
                SubjectRow {
                    subject: subject.to_owned(),
                    roles: Vec::new(),
                    departments: Vec::new(),
                    first_ms: seen.time_ms,
                    last_ms: seen.time_ms,
                    requests: 0,
                    denied: 0,
                },
            );
        }
        let Some(row) = self.subjects.get_mut(subject) else {
            return;
        };
        row.requests += 1;
        row.first_ms = row.first_ms.min(seen.time_ms);
        row.last_ms = row.last_ms.max(seen.time_ms);
        if let Some(department) = &seen.department {
            if !row.departments.iter().any(|d| d == department) {
                row.departments.push(department.to_string());
            }
        }
        for role in &seen.roles {
            if !row.roles.iter().any(|r| r == role) {
                row.roles.push(role.to_string());
                if !roles.contains(role.as_ref()) {
                    self.ungranted
                        .insert((subject.to_owned(), role.to_string()));
                }
            }
        }
        if denied {
            row.denied += 1;
            let resource = seen.resource.as_deref().unwrap_or("(none)").to_owned();
            *self
                .denials
                .entry((subject.to_owned(), resource))
                .or_default() += 1;
        }
        if let Some(reason) = &seen.break_glass {
            self.break_glass.push(BreakGlassUse {
                time: seen.time.to_string(),
                subject: subject.to_owned(),
                patient: seen.patient.as_deref().unwrap_or_default().to_owned(),
                route: seen.route.as_deref().unwrap_or_default().to_owned(),
                reason: reason.to_string(),
            });
        }
        if seen
            .flags
            .iter()
            .any(|flag| flag == "enumeration_suspected")
        {
            self.enumeration_alerts.push(EnumerationAlert {
                time: seen.time.to_string(),
                subject: subject.to_owned(),
                patient: seen.patient.as_deref().unwrap_or_default().to_owned(),
            });
        }
    }

    fn merge(&mut self, other: Tally) {
        self.records += other.records;
        for (rule, count) in other.uses {
            *self.uses.entry(rule).or_default() += count;
        }
        for (subject, row) in other.subjects {
            match self.subjects.get_mut(&subject) {
                None => {
                    self.subjects.insert(subject, row);
                }
                Some(mine) => {
                    mine.requests += row.requests;
                    mine.denied += row.denied;
                    mine.first_ms = mine.first_ms.min(row.first_ms);
                    mine.last_ms = mine.last_ms.max(row.last_ms);
                    for role in row.roles {
                        if !mine.roles.contains(&role) {
                            mine.roles.push(role);
                        }
                    }
                    for department in row.departments {
                        if !mine.departments.contains(&department) {
                            mine.departments.push(department);
                        }
                    }
                }
            }
        }
        self.ungranted.extend(other.ungranted);
        self.break_glass.extend(other.break_glass);
        for (key, count) in other.denials {
            *self.denials.entry(key).or_default() += count;
        }
        self.enumeration_alerts.extend(other.enumeration_alerts);
        for (day, (allowed, denied)) in other.daily {
            let mine = self.daily.entry(day).or_default();
            mine.0 += allowed;
            mine.1 += denied;
        }
    }
}

fn erasures(inputs: &Inputs<'_>) -> Result<Vec<ErasureRow>, StoreError> {
    if let Location::DataDir(data_dir) = inputs.stores {
        if !data_dir.join(crate::erasure::store::ERASURE_DB).exists() {
            return Ok(Vec::new());
        }
    }
    let store = crate::erasure::ErasureStore::open(inputs.stores.clone())?;
    Ok(store
        .list()?
        .into_iter()
        .filter(|r| r.received_at >= inputs.since_ms && r.received_at < inputs.until_ms)
        .map(|r| ErasureRow {
            on_time: r
                .finished_at
                .map_or(inputs.now_ms <= r.due_at, |f| f <= r.due_at),
            id: r.id,
            state: r.state,
            received_ms: r.received_at,
            due_ms: r.due_at,
            finished_ms: r.finished_at,
        })
        .collect())
}
