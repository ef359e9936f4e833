//! Copying a busy store's write-ahead log into its database file from a thread of its own.
//!
//! SQLite copies the log into the database ("checkpoints" it) on the committing connection
//! once the log passes `wal_autocheckpoint` pages. For the audit trail that copy is tens of
//! megabytes and an fsync inside one group commit, and every durable request waiting on that
//! commit waits for it too (measured: the p99 of the full pipeline under load was 34 ms, almost
//! all of it these stalls). [`Backfill`] copies the log a little at a time instead, with PASSIVE
//! checkpoints, which never block the writer; when the writer's own checkpoint comes due it
//! finds almost nothing left to copy, and the log starts again from its beginning.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::StoreError;

/// The backfill thread; stopping it (dropping this) waits for a copy in progress to finish.
pub struct Backfill {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Backfill {
    /// Starts copying the log of the database at `path` every `every`.
    pub fn start(path: &Path, every: Duration) -> Result<Backfill, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_owned(),
            source,
        };
        let connection = Connection::open(path).map_err(open_error)?;
        // The copy reads log frames and writes database pages: it needs no page cache of its
        // own, and it must not wait on the writer's locks (PASSIVE never does).
        connection
            .execute_batch("PRAGMA cache_size = -64; PRAGMA busy_timeout = 0;")
            .map_err(open_error)?;
        let (stop, stopped) = mpsc::channel();
        let path = path.to_owned();
        let thread = std::thread::Builder::new()
            .name("wardgate-wal".to_owned())
            .spawn(move || run(&connection, &path, &stopped, every))
            .map_err(|source| StoreError::Thread {
                name: "wardgate-wal",
                source,
            })?;
        Ok(Backfill {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

fn run(connection: &Connection, path: &Path, stopped: &mpsc::Receiver<()>, every: Duration) {
    let mut failing = false;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
        // (busy, frames in the log, frames copied); busy only says another checkpoint ran.
        let result = connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            row.get::<_, i64>(0)
        });
        match result {
            Ok(_) if failing => {
                failing = false;
                tracing::info!(path = %path.display(), "write-ahead log copies work again");
            }
            Ok(_) => {}
            // The writer's own checkpoints still run: this only costs latency, not records.
            Err(err) if !failing => {
                failing = true;
                tracing::warn!(path = %path.display(), "cannot copy the write-ahead log: {err}");
            }
            Err(_) => {}
        }
    }
}

impl Drop for Backfill {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn database_bytes(path: &Path) -> u64 {
        std::fs::metadata(path).map_or(0, |meta| meta.len())
    }

    #[test]
    fn the_log_reaches_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let mut writer = crate::store::open(dir.path(), "busy.db").unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .unwrap();
        for _ in 0..20 {
            let transaction = writer.transaction().unwrap();
            for _ in 0..50 {
                transaction
                    .execute("INSERT INTO t (v) VALUES (?1)", ["x".repeat(500)])
                    .unwrap();
            }
            transaction.commit().unwrap();
        }
        // 1,000 rows of 500 bytes, all still in the log: the writer's own checkpoint waits for
        // 16,384 pages.
        let path = dir.path().join("busy.db");
        assert!(database_bytes(&path) < 100_000, "{}", database_bytes(&path));

        let backfill = Backfill::start(&path, Duration::from_millis(10)).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while database_bytes(&path) < 500_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(backfill);
        assert!(
            database_bytes(&path) >= 500_000,
            "{}",
            database_bytes(&path)
        );
        // The writer goes on committing after the copies, and everything reads back.
        writer
            .execute("INSERT INTO t (v) VALUES ('last')", [])
            .unwrap();
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap();
        assert_eq!(rows, 1001);
    }

    #[test]
    fn a_database_that_cannot_be_opened_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir").join("busy.db");
        let Err(err) = Backfill::start(&path, Duration::from_millis(10)) else {
            panic!("a backfill started on a path that cannot exist");
        };
        assert!(err.to_string().contains("busy.db"), "{err}");
    }
}
