//! Review history in `data_dir/review.db`: every policy version loaded (hash and time, recorded
//! by the gateway at start and at each reload), and every signed-off review with its
//! decisions, so the next review can show whether they were carried out.

use std::path::Path;

use rusqlite::{params, Connection};
use serde::{Deserialize, Serialize};

use crate::store::{self, StoreError};

pub const REVIEW_DB: &str = "review.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS policy_loads (
    hash      TEXT    NOT NULL,
    loaded_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reviews (
    id          INTEGER PRIMARY KEY,
    reviewer    TEXT    NOT NULL,
    signed_at   INTEGER NOT NULL,
    report_hash TEXT    NOT NULL,
    since       INTEGER NOT NULL,
    until       INTEGER NOT NULL,
    decisions   TEXT    NOT NULL
);
";

/// One decision of a sign-off.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// The policy line it is about, as the report lists it (`p, nurse, same_department, ...`).
    pub grant: String,
    /// keep, revoke or follow_up.
    pub decision: String,
    #[serde(default)]
    pub note: Option<String>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct SignedReview {
    pub id: i64,
    pub reviewer: String,
    pub signed_at: i64,
    pub report_hash: String,
    pub since: i64,
    pub until: i64,
    pub decisions: Vec<Decision>,
}

fn open(data_dir: &Path) -> Result<Connection, StoreError> {
    let connection = store::open(data_dir, REVIEW_DB)?;
    connection.execute_batch(SCHEMA)?;
    Ok(connection)
}

/// Records that a policy version was loaded now.
pub fn record_policy_load(data_dir: &Path, hash: &str, at_ms: i64) -> Result<(), StoreError> {
    open(data_dir)?.execute(
        "INSERT INTO policy_loads (hash, loaded_at) VALUES (?1, ?2)",
        params![hash, at_ms],
    )?;
    Ok(())
}

/// Policy loads up to `until`, oldest first (the one in force at `since` included).
pub fn policy_loads(data_dir: &Path, until: i64) -> Result<Vec<(String, i64)>, StoreError> {
    let connection = open(data_dir)?;
    let mut statement = connection.prepare(
        "SELECT hash, loaded_at FROM policy_loads WHERE loaded_at < ?1 ORDER BY loaded_at",
    )?;
    let loads = statement
        .query_map(params![until], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(loads)
}

pub fn sign(
    data_dir: &Path,
    reviewer: &str,
    report_hash: &str,
    period: (i64, i64),
    decisions: &[Decision],
    at_ms: i64,
) -> Result<i64, StoreError> {
    let connection = open(data_dir)?;
    connection.execute(
        "INSERT INTO reviews (reviewer, signed_at, report_hash, since, until, decisions) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            reviewer,
            at_ms,
            report_hash,
            period.0,
            period.1,
            serde_json::to_string(decisions).unwrap_or_default()
        ],
    )?;
    Ok(connection.last_insert_rowid())
}

/// Signed reviews, newest first.
pub fn history(data_dir: &Path) -> Result<Vec<SignedReview>, StoreError> {
    let connection = open(data_dir)?;
    let mut statement = connection.prepare(
        "SELECT id, reviewer, signed_at, report_hash, since, until, decisions FROM reviews ORDER BY signed_at DESC, id DESC",
    )?;
    let reviews = statement
        .query_map([], |row| {
            let decisions: String = row.get(6)?;
            Ok(SignedReview {
                id: row.get(0)?,
                reviewer: row.get(1)?,
                signed_at: row.get(2)?,
                report_hash: row.get(3)?,
                since: row.get(4)?,
                until: row.get(5)?,
                decisions: serde_json::from_str(&decisions).unwrap_or_default(),
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(reviews)
}
