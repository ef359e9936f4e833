//! Past inspections in `data_dir/selfcheck.db`: each run's time and items.

use std::path::Path;

use rusqlite::{params, OptionalExtension};

use super::Item;
use crate::store::{self, StoreError};

pub const SELFCHECK_DB: &str = "selfcheck.db";

fn open(data_dir: &Path) -> Result<rusqlite::Connection, StoreError> {
    let connection = store::open(data_dir, SELFCHECK_DB)?;
    connection.execute_batch(
        "CREATE TABLE IF NOT EXISTS runs (id INTEGER PRIMARY KEY, run_at INTEGER NOT NULL, items TEXT NOT NULL);",
    )?;
    Ok(connection)
}

/// The previous run's items, if any.
pub fn previous(data_dir: &Path) -> Result<Option<(i64, Vec<Item>)>, StoreError> {
    let row: Option<(i64, String)> = open(data_dir)?
        .query_row(
            "SELECT run_at, items FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    Ok(row.map(|(at, items)| (at, serde_json::from_str(&items).unwrap_or_default())))
}

pub fn record(data_dir: &Path, at_ms: i64, items: &[Item]) -> Result<(), StoreError> {
    open(data_dir)?.execute(
        "INSERT INTO runs (run_at, items) VALUES (?1, ?2)",
        params![at_ms, serde_json::to_string(items).unwrap_or_default()],
    )?;
    Ok(())
}
