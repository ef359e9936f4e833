//! One way to run the smaller stores' SQL (erasure requests, review history, self-inspection
//! runs) on either backend, so each store is written once: statements use PostgreSQL's
//! `$1, $2, ...` placeholders (turned into SQLite's `?1, ?2, ...`), the same table names
//! (PostgreSQL keeps them in the `wardgate` schema), and values are integers or text, either
//! possibly NULL.

use std::borrow::Cow;
use std::sync::Mutex;

use postgres::types::{ToSql, Type};
use rusqlite::Connection;

use super::postgres::Postgres;
use super::{Location, StoreError};

/// A value bound to a placeholder or read from a column. A NULL keeps its type, which
/// PostgreSQL checks parameters against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::Int(Some(n))
    }
}

impl From<Option<i64>> for Value {
    fn from(n: Option<i64>) -> Value {
        Value::Int(n)
    }
}

impl From<u32> for Value {
    fn from(n: u32) -> Value {
        Value::Int(Some(i64::from(n)))
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Int(Some(i64::from(b)))
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(Some(s.to_owned()))
    }
}

impl From<&String> for Value {
    fn from(s: &String) -> Value {
        Value::Text(Some(s.clone()))
    }
}

impl From<Option<&str>> for Value {
    fn from(s: Option<&str>) -> Value {
        Value::Text(s.map(str::to_owned))
    }
}

impl From<&Option<String>> for Value {
    fn from(s: &Option<String>) -> Value {
        Value::Text(s.clone())
    }
}

/// Binds values: `params![a, b]` turns each into a [`Value`].
#[macro_export]
macro_rules! sql_params {
    ($($value:expr),* $(,)?) => {
        vec![$($crate::store::sql::Value::from($value)),*]
    };
}

/// A row read back, by column index. A column of the wrong type reads as NULL (0 or empty).
pub struct Row(Vec<Value>);

impl Row {
    pub fn int(&self, i: usize) -> i64 {
        self.opt_int(i).unwrap_or(0)
    }

    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Int(n)) => *n,
            _ => None,
        }
    }

    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Value::Text(s)) => s.clone(),
            _ => None,
        }
    }
}

/// A store's connection: a SQLite file in the data directory, or the shared database.
pub struct Db(Backend);

enum Backend {
    Sqlite(Mutex<Connection>),
    Postgres(Postgres),
}

/// The first half of the advisory locks roles are led by ("ward" in ASCII).
const LEADER_LOCK: i32 = 0x7761_7264;

/// A statement and its values, for [`Db::transaction`].
pub type Statement<'a> = (&'a str, Vec<Value>);

/// `$n` placeholders as SQLite's `?n`. (SQLite reads `$1` as a *named* parameter, numbered
/// by first appearance: `SET a = $2 WHERE id = $1` would bind the wrong values.)
pub fn sqlite_placeholders(sql: &str) -> Cow<'_, str> {
    if !sql.contains('$') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

impl Db {
    /// Opens `file` in the data directory, or connects to the shared database, and creates
    /// the store's tables (`sqlite_schema` or `postgres_schema`) where missing.
    pub fn open(
        location: &Location,
        file: &'static str,
        sqlite_schema: &'static str,
        postgres_schema: &'static str,
    ) -> Result<Db, StoreError> {
        Ok(Db(match location {
            Location::DataDir(data_dir) => {
                let connection = super::open(data_dir, file)?;
                connection.execute_batch(sqlite_schema)?;
                Backend::Sqlite(Mutex::new(connection))
            }
            Location::Shared(settings) => {
                let name = file.trim_end_matches(".db");
                Backend::Postgres(Postgres::connect(settings, name, postgres_schema)?)
            }
        }))
    }

    /// Runs a statement; returns how many rows it changed.
    pub fn execute(&self, sql: &str, values: Vec<Value>) -> Result<u64, StoreError> {
        Ok(self.transaction(vec![(sql, values)])?[0])
    }

    /// Runs statements in one transaction; returns how many rows each changed.
    pub fn transaction(&self, statements: Vec<Statement<'_>>) -> Result<Vec<u64>, StoreError> {
        match &self.0 {
            Backend::Sqlite(connection) => {
                let mut connection = lock(connection)?;
                let transaction = connection.transaction()?;
                let mut changed = Vec::with_capacity(statements.len());
                for (sql, values) in &statements {
                    let mut statement = transaction.prepare_cached(&sqlite_placeholders(sql))?;
                    let n = statement
                        .execute(rusqlite::params_from_iter(values.iter().map(sqlite_value)))?;
                    changed.push(n as u64);
                }
                transaction.commit()?;
                Ok(changed)
            }
            Backend::Postgres(postgres) => {
                let statements: Vec<(String, Vec<Value>)> = statements
                    .into_iter()
                    .map(|(sql, values)| (sql.to_owned(), values))
                    .collect();
                postgres.run("cannot write", move |client| {
                    let mut transaction = client.transaction()?;
                    let mut changed = Vec::with_capacity(statements.len());
                    for (sql, values) in &statements {
                        changed.push(transaction.execute(sql.as_str(), &postgres_params(values))?);
                    }
                    transaction.commit()?;
                    Ok(changed)
                })
            }
        }
    }

    /// Runs a query; returns its rows.
    pub fn query(&self, sql: &str, values: Vec<Value>) -> Result<Vec<Row>, StoreError> {
        match &self.0 {
            Backend::Sqlite(connection) => {
                let connection = lock(connection)?;
                let mut statement = connection.prepare_cached(&sqlite_placeholders(sql))?;
                let columns = statement.column_count();
                let rows = statement
                    .query_map(
                        rusqlite::params_from_iter(values.iter().map(sqlite_value)),
                        |row| {
                            (0..columns)
                                .map(|i| {
                                    Ok(match row.get_ref(i)? {
                                        rusqlite::types::ValueRef::Integer(n) => {
                                            Value::Int(Some(n))
                                        }
                                        rusqlite::types::ValueRef::Text(t) => Value::Text(Some(
                                            String::from_utf8_lossy(t).into_owned(),
                                        )),
                                        _ => Value::Int(None),
                                    })
                                })
                                .collect::<Result<Vec<_>, _>>()
                                .map(Row)
                        },
                    )?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            }
            Backend::Postgres(postgres) => {
                let sql = sql.to_owned();
                postgres.run("cannot read", move |client| {
                    let rows = client.query(sql.as_str(), &postgres_params(&values))?;
                    rows.iter()
                        .map(|row| {
                            (0..row.len())
                                .map(|i| {
                                    let ty = row.columns()[i].type_();
                                    Ok(if *ty == Type::INT8 {
                                        Value::Int(row.try_get(i)?)
                                    } else if *ty == Type::INT4 {
                                        Value::Int(row.try_get::<_, Option<i32>>(i)?.map(i64::from))
                                    } else if *ty == Type::BOOL {
                                        Value::Int(
                                            row.try_get::<_, Option<bool>>(i)?.map(i64::from),
                                        )
                                    } else {
                                        Value::Text(row.try_get(i)?)
                                    })
                                })
                                .collect::<Result<Vec<_>, postgres::Error>>()
                                .map(Row)
                        })
                        .collect()
                })
            }
        }
    }

    /// Whether this process is the one of its replicas that does `role`'s work (the erasure
    /// worker), taking the role when nobody holds it: a PostgreSQL advisory lock held by the
    /// store's connection, freed when that connection ends (the process stops or dies), so
    /// another replica takes over within one poll. Alone on a data directory, always.
    pub fn leads(&self, role: i32) -> Result<bool, StoreError> {
        match &self.0 {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(postgres) => {
                postgres.run("cannot take the worker lock", move |client| {
                    // Asking again for a lock this session holds would stack it; look first.
                    Ok(client
                        .query_one(
                            "SELECT CASE WHEN EXISTS (
                                SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted
                                  AND pid = pg_backend_pid() AND classid = $1::int4::oid
                                  AND objid = $2::int4::oid AND objsubid = 2)
                            THEN TRUE ELSE pg_try_advisory_lock($1, $2) END",
                            &[&LEADER_LOCK, &role],
                        )?
                        .get(0))
                })
            }
        }
    }

    /// The first row of a query, if any.
    pub fn query_opt(&self, sql: &str, values: Vec<Value>) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, values)?.into_iter().next())
    }
}

fn lock(
    connection: &Mutex<Connection>,
) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
    connection.lock().map_err(|_| StoreError::Gone("sqlite"))
}

pub fn sqlite_value(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Int(Some(n)) => rusqlite::types::Value::Integer(*n),
        Value::Text(Some(s)) => rusqlite::types::Value::Text(s.clone()),
        Value::Int(None) | Value::Text(None) => rusqlite::types::Value::Null,
    }
}

pub fn postgres_params(values: &[Value]) -> Vec<&(dyn ToSql + Sync)> {
    values
        .iter()
        .map(|value| match value {
            Value::Int(n) => n as &(dyn ToSql + Sync),
            Value::Text(s) => s as &(dyn ToSql + Sync),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_statements_run_on_sqlite_with_numbered_placeholders() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(
            &Location::from(dir.path()),
            "t.db",
            "CREATE TABLE IF NOT EXISTS t (rowid INTEGER PRIMARY KEY, name TEXT, n INTEGER);",
            "",
        )
        .unwrap();
        let changed = db
            .transaction(vec![
                (
                    "INSERT INTO t (name, n) VALUES ($1, $2)",
                    crate::sql_params!["a", 1i64],
                ),
                (
                    "INSERT INTO t (name, n) VALUES ($1, $2)",
                    crate::sql_params![None::<&str>, None::<i64>],
                ),
            ])
            .unwrap();
        assert_eq!(changed, vec![1, 1]);
        let rows = db
            .query(
                "SELECT name, n FROM t WHERE rowid >= $1 ORDER BY rowid",
                crate::sql_params![1i64],
            )
            .unwrap();
        assert_eq!((rows[0].text(0), rows[0].int(1)), ("a".to_owned(), 1));
        assert_eq!((rows[1].opt_text(0), rows[1].opt_int(1)), (None, None));
        // Placeholders bind by number, whatever order they appear in.
        db.execute(
            "UPDATE t SET name = $2 WHERE rowid = $1",
            crate::sql_params![2i64, "b"],
        )
        .unwrap();
        let b = db
            .query_opt(
                "SELECT name FROM t WHERE rowid = $1",
                crate::sql_params![2i64],
            )
            .unwrap()
            .unwrap();
        assert_eq!(b.text(0), "b");
    }
}
