//! Copying a busy store's write-ahead log into its database file from a thread of its own.
//!
//! SQLite copies the log into the database ("checkpoints" it) on the committing connection
//! once the log passes `wal_autocheckpoint` pages. For the audit trail that copy is tens of
//! megabytes and an fsync inside one group commit, and every durable request waiting on that
//! commit waits for it too (measured: the p99 of the full pipeline under load was 34 ms, almost
//! all of it these stalls). [`Backfill`] copies the log a little at a time instead, with PASSIVE
//! checkpoints, which never block the writer; when the writer's own checkpoint comes due it
//! finds almost nothing left to copy, and the log starts again from its beginning. A store
//! nobody has committed to since the last complete copy is left alone, and looked at less
//! often while it stays idle.
//!
//! On start the log is also copied in full and cut to zero bytes. A log left by the previous
//! run is read back whole by SQLite's recovery, and on Linux 6.x with a large read-ahead
//! (8 MiB here) that fills the page cache with folios of up to 2 MiB; every later write of a
//! log frame (24 bytes, then 4,096) walks all the blocks of the folio it lands in. Measured
//! after a restart on a 64 MiB log: a frame cost 11 µs to write instead of 1 µs, and those
//! writes were 11% of the gateway's CPU at full load. A log cut to nothing is written afresh
//! into small folios.

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
        empty_log(&connection, path);
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

/// Copies the whole log into the database and cuts it to zero bytes. Another process reading
/// the store (a CLI query) keeps the log in use: it is then left as it is, which costs only
/// the slower writes described above.
fn empty_log(connection: &Connection, path: &Path) {
    match checkpoint(connection, "TRUNCATE") {
        Ok(done) if !done.busy => {}
        Ok(_) => tracing::info!(
            path = %path.display(),
            "the write-ahead log is in use by another reader; it is kept as it is"
        ),
        Err(err) => {
            tracing::warn!(path = %path.display(), "cannot empty the write-ahead log: {err}")
        }
    }
}

/// What a checkpoint did.
struct Checkpointed {
    /// It could not finish: another checkpoint ran, or a reader still needs the log.
    busy: bool,
    /// Every frame in the log is in the database file now.
    complete: bool,
}

/// Runs a checkpoint in `mode` (PASSIVE, TRUNCATE).
fn checkpoint(connection: &Connection, mode: &str) -> rusqlite::Result<Checkpointed> {
    // The row is (busy, frames in the log, frames copied).
    connection.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        let (busy, frames, copied): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        Ok(Checkpointed {
            busy: busy != 0,
            // Blocked by another checkpoint, it may not have copied what it reports.
            complete: busy == 0 && copied >= frames,
        })
    })
}

/// Changes whenever another connection (the writer) commits; none when it cannot be read.
fn data_version(connection: &Connection) -> Option<i64> {
    let mut statement = connection.prepare_cached("PRAGMA data_version").ok()?;
    statement.query_row([], |row| row.get(0)).ok()
}

fn run(connection: &Connection, path: &Path, stopped: &mpsc::Receiver<()>, every: Duration) {
    let mut failing = false;
    // The store's version when a copy last left nothing behind.
    let mut copied_at = None;
    let mut wait = every;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(wait) {
        let version = data_version(connection);
        if version.is_some() && version == copied_at {
            // Nothing committed: an idle store is looked at less often, up to ten ticks apart.
            wait = (wait * 2).min(every * 10);
            continue;
        }
        wait = every;
        match checkpoint(connection, "PASSIVE") {
            Ok(done) => {
                // A copy a reader held back is tried again on the next tick, commits or not.
                copied_at = if done.complete { version } else { None };
                if failing {
                    failing = false;
                    tracing::info!(path = %path.display(), "write-ahead log copies work again");
                }
            }
            // The writer's own checkpoints still run: this only costs latency, not records.
            Err(err) => {
                copied_at = None;
                if !failing {
                    failing = true;
                    tracing::warn!(path = %path.display(), "cannot copy the write-ahead log: {err}");
                }
            }
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

    /// 1,000 rows of 500 bytes in twenty transactions.
    fn write_rows(writer: &mut rusqlite::Connection) {
        for _ in 0..20 {
            let transaction = writer.transaction().unwrap();
            for _ in 0..50 {
                transaction
                    .execute("INSERT INTO t (v) VALUES (?1)", ["x".repeat(500)])
                    .unwrap();
            }
            transaction.commit().unwrap();
        }
    }

    fn store_with_table(dir: &Path) -> rusqlite::Connection {
        let writer = crate::store::open(dir, "busy.db").unwrap();
        writer
            .execute_batch("CREATE TABLE t (v TEXT NOT NULL)")
            .unwrap();
        writer
    }

    /// A store whose 1,000 rows are all still in its log, as a run that stopped left it:
    /// (its directory, the database file, the log file, the writer).
    fn store_with_rows_in_its_log() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        std::path::PathBuf,
        rusqlite::Connection,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let wal = dir.path().join("busy.db-wal");
        let mut writer = store_with_table(dir.path());
        write_rows(&mut writer);
        assert!(database_bytes(&wal) > 500_000, "{}", database_bytes(&wal));
        assert!(database_bytes(&path) < 100_000, "{}", database_bytes(&path));
        (dir, path, wal, writer)
    }

    /// The 1,000 rows written by `write_rows` take more than 500 KB.
    fn assert_rows_reached_the_database_file(path: &Path) {
        let bytes = database_bytes(path);
        assert!(bytes >= 500_000, "{bytes}");
    }

    /// Gives the periodic copies up to 10 s to bring the 1,000 rows into the database file.
    fn wait_for_the_copies(path: &Path) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while database_bytes(path) < 500_000 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn insert_one_more_row(writer: &rusqlite::Connection) {
        writer
            .execute("INSERT INTO t (v) VALUES ('last')", [])
            .unwrap();
    }

    fn rows(writer: &rusqlite::Connection) -> i64 {
        writer
            .query_row("SELECT COUNT(*) FROM t", [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn the_log_reaches_the_database_file_without_the_writer_checkpointing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let mut writer = store_with_table(dir.path());
        let backfill = Backfill::start(&path, Duration::from_millis(10)).unwrap();
        let before = database_bytes(&path);
        assert!(before < 100_000, "{before}");
        // Committed after the start: only the periodic copies can bring these rows into the
        // database file, as the writer's own checkpoint waits for 16,384 pages.
        write_rows(&mut writer);
        wait_for_the_copies(&path);
        drop(backfill);
        assert_rows_reached_the_database_file(&path);
        // The writer goes on committing after the copies, and everything reads back.
        insert_one_more_row(&writer);
        assert_eq!(rows(&writer), 1001);
    }

    #[test]
    fn a_copy_a_reader_held_back_is_finished_once_it_leaves_without_another_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("busy.db");
        let mut writer = store_with_table(dir.path());
        let backfill = Backfill::start(&path, Duration::from_millis(10)).unwrap();
        // A reader whose snapshot is older than the rows: no copy may pass its mark.
        let mut reader = crate::store::open_read_only(dir.path(), "busy.db").unwrap();
        let reading = reader.transaction().unwrap();
        assert_eq!(rows(&reading), 0);
        write_rows(&mut writer);
        std::thread::sleep(Duration::from_millis(100));
        assert!(database_bytes(&path) < 100_000, "{}", database_bytes(&path));

        // Nothing is committed after the reader leaves: the copies go on all the same.
        drop(reading);
        wait_for_the_copies(&path);
        drop(backfill);
        assert_rows_reached_the_database_file(&path);
    }

    #[test]
    fn starting_copies_the_log_left_by_a_previous_run_and_cuts_it_to_nothing() {
        let (dir, path, wal, writer) = store_with_rows_in_its_log();

        // An hour-long copy interval: whatever moved, moved when it started.
        let backfill = Backfill::start(&path, Duration::from_secs(3600)).unwrap();
        assert_eq!(database_bytes(&wal), 0);
        assert_rows_reached_the_database_file(&path);
        insert_one_more_row(&writer);
        drop(backfill);
        drop(writer);
        let reopened = crate::store::open(dir.path(), "busy.db").unwrap();
        assert_eq!(rows(&reopened), 1001);
    }

    #[test]
    fn a_log_in_use_by_a_reader_is_kept_and_the_copies_start_all_the_same() {
        let (dir, path, wal, writer) = store_with_rows_in_its_log();
        // A CLI query in the middle of reading: its snapshot needs the log.
        let mut reader = crate::store::open_read_only(dir.path(), "busy.db").unwrap();
        let reading = reader.transaction().unwrap();
        assert_eq!(rows(&reading), 1000);

        let backfill = Backfill::start(&path, Duration::from_millis(10)).unwrap();
        assert!(database_bytes(&wal) > 500_000, "{}", database_bytes(&wal));
        drop(reading);
        drop(backfill);
        assert_eq!(rows(&writer), 1000);
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
