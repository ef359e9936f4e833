//! Persistence: an embedded SQLite database in the data directory per store, opened in WAL
//! mode with full fsync on commit, so that "committed" means on disk; and, for more than one
//! replica, the PostgreSQL database they share (`postgres`).

pub mod backup;
pub mod postgres;
pub mod space;
pub mod sql;
pub mod wal;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::Connection;

use crate::config::{Config, Invalid};

/// Where the stores live: SQLite files in the data directory (one instance), or the
/// PostgreSQL database replicas share.
#[derive(Clone, Debug)]
pub enum Location {
    DataDir(PathBuf),
    Shared(Arc<postgres::PostgresSettings>),
}

impl Location {
    /// The config's `shared_store` when it has one, else its data directory.
    pub fn of(config: &Config) -> Result<Location, Vec<Invalid>> {
        Ok(match postgres::shared(config)? {
            Some(settings) => Location::Shared(settings),
            None => Location::DataDir(config.data_dir.clone()),
        })
    }
}

impl Location {
    /// As [`Location::of`], for the command-line tools: problems in one message.
    pub fn for_tools(config: &Config) -> Result<Location, StoreError> {
        Location::of(config).map_err(|problems| {
            StoreError::Config(
                problems
                    .iter()
                    .map(|problem| format!("{}: {}", problem.key, problem.message))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
    }
}

impl From<&Path> for Location {
    fn from(data_dir: &Path) -> Location {
        Location::DataDir(data_dir.to_owned())
    }
}

impl From<&PathBuf> for Location {
    fn from(data_dir: &PathBuf) -> Location {
        Location::DataDir(data_dir.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store {path} is read-only; wardgate will not write through a read-only flag")]
    ReadOnly { path: PathBuf },
    #[error("cannot start the {name} thread: {source}")]
    Thread {
        name: &'static str,
        source: std::io::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("PostgreSQL {database}: {what}: {cause}")]
    Postgres {
        database: String,
        what: String,
        /// The client's error with its causes ("error performing TLS handshake: invalid peer
        /// certificate: UnknownIssuer"): the first line alone rarely says what to fix.
        cause: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("PostgreSQL {0} is a read-only standby; point shared_store at the primary")]
    Standby(String),
    #[error("the {0} store's connection thread has stopped")]
    Gone(&'static str),
}

/// Opens (creating when needed) a database file in `data_dir`. The page cache is held to
/// 8 MiB (the audit writer's to 512 KiB, `WRITER_CACHE_KIB`) and nothing is memory-mapped: the
/// gateway's resident memory stays small however large its stores grow (the writers touch the
/// right edge of their indexes; the CLI's queries open their own readers).
pub fn open(data_dir: &Path, file: &str) -> Result<Connection, StoreError> {
    std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
        path: data_dir.to_owned(),
        source,
    })?;
    let path = data_dir.join(file);
    let connection = Connection::open(&path).map_err(|source| StoreError::Open {
        path: path.clone(),
        source,
    })?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA busy_timeout = 5000;
             PRAGMA cache_size = -8192;
             PRAGMA wal_autocheckpoint = 16384;",
        )
        .map_err(|source| StoreError::Open { path, source })?;
    Ok(connection)
}

/// Opens a database for reading only (the CLI's queries), without creating it.
pub fn open_read_only(data_dir: &Path, file: &str) -> Result<Connection, StoreError> {
    let path = data_dir.join(file);
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(&path, flags).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
    connection
        .execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(|source| StoreError::Open { path, source })?;
    Ok(connection)
}

/// Fails when the database file has lost its write permission (an operator's `chmod a-w`, a
/// read-only remount): the store is then treated as unavailable, even for root.
pub fn check_writable(data_dir: &Path, file: &str) -> Result<(), StoreError> {
    let path = data_dir.join(file);
    let metadata = std::fs::metadata(&path).map_err(|err| StoreError::Open {
        path: path.clone(),
        source: rusqlite::Error::InvalidPath(PathBuf::from(err.to_string())),
    })?;
    if metadata.permissions().readonly() {
        return Err(StoreError::ReadOnly { path });
    }
    Ok(())
}

/// Milliseconds since the Unix epoch, as the stores keep times.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A stored time (milliseconds since the epoch) as RFC 3339, seconds, UTC.
pub fn rfc3339(ms: i64) -> String {
    let at =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(at).to_string()
}
