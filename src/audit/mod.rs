//! The audit trail (pipeline stage 9's machinery): one record per request, hash-chained per
//! instance, with signed checkpoints, written by one writer in group commits. Durable routes
//! release their response only after their record is committed; buffered routes queue it
//! (back-pressure when the queue is full, never a silent drop). `audit query` and `audit
//! verify` read the same store.

mod checkpoint;
pub mod keys;
pub mod on_the_way;
mod postgres_store;
mod pseudonym;
pub mod query;
mod record;
pub mod store;
pub mod verify;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use checkpoint::{load_signing_key, Checkpoint};
use on_the_way::{Announced, OnTheWay};
use postgres_store::PostgresAuditStore;
pub use pseudonym::Pseudonymizer;
pub use record::{AuditRecord, GENESIS};
use store::{AuditStore, SqliteAuditStore, AUDIT_DB};
use writer::{Sink, Submission, WriterSettings};

use crate::config::{AuditConfig, Durability, Invalid};
use crate::identity::read_secret;
use crate::metrics::Metrics;
use crate::store::wal::Backfill;
use crate::store::{Location, StoreError};

/// How often the audit store's write-ahead log is copied into the database, off the commit
/// path (see [`Backfill`]). Each copy ends with an fsync of the database file that the group
/// commits' own fsyncs queue behind, so small copies often beat large ones seldom. Measured on
/// the full pipeline, one core, 2026-12-08: at full load (26,000 durable requests/s) every 20 ms
/// gave a p99 of 3.1-3.5 ms against 11.3-12.7 ms every 200 ms, at the same requests/s and CPU a
/// request; at 2,000 requests/s 1.4-1.7 ms against 1.8-2.0 ms (10 ms and 50 ms between the two,
/// 5 ms no better). Never copying (the writer's checkpoints alone) gave 29-34 ms in 2026-11.
const WAL_BACKFILL_EVERY: Duration = Duration::from_millis(20);

type OpenedStore = (Box<dyn AuditStore>, Option<Backfill>, String);

/// The writer's store, the embedded store's log copier (none for the shared database), and
/// the instance id: configured, else kept with the store (embedded) or in the data directory
/// (shared: each replica its own chain). A failure names the config key to look at.
fn open_store(
    data_dir: &Path,
    location: &Location,
    config: &AuditConfig,
) -> Result<OpenedStore, (&'static str, StoreError)> {
    match location {
        Location::DataDir(_) => {
            let in_dir = |err| ("data_dir", err);
            let store = SqliteAuditStore::open(data_dir).map_err(in_dir)?;
            let backfill =
                Backfill::start(&data_dir.join(AUDIT_DB), WAL_BACKFILL_EVERY).map_err(in_dir)?;
            let instance = match &config.instance_id {
                Some(id) => id.clone(),
                None => store.instance_id().map_err(in_dir)?,
            };
            Ok((Box::new(store), Some(backfill), instance))
        }
        Location::Shared(settings) => {
            let store =
                PostgresAuditStore::open(settings).map_err(|err| ("shared_store.postgres", err))?;
            let instance = match &config.instance_id {
                Some(id) => id.clone(),
                None => instance_id_file(data_dir).map_err(|err| ("data_dir", err))?,
            };
            Ok((Box::new(store), None, instance))
        }
    }
}

/// Removes records older than `cutoff_ms` (retention), keeping each chain verifiable: in
/// the data directory, this instance's chain; in the shared database, every replica's.
pub fn prune(location: &Location, instance: &str, cutoff_ms: i64) -> Result<usize, StoreError> {
    match location {
        Location::DataDir(data_dir) => SqliteAuditStore::open(data_dir)?.prune(instance, cutoff_ms),
        Location::Shared(settings) => PostgresAuditStore::open(settings)?.prune(cutoff_ms),
    }
}

/// Whether the store can take writes; says what was checked (for the self-inspection).
pub fn check_store(location: &Location) -> Result<String, StoreError> {
    match location {
        Location::DataDir(data_dir) => {
            crate::store::check_writable(data_dir, AUDIT_DB)?;
            Ok(format!("{} is writable", data_dir.join(AUDIT_DB).display()))
        }
        Location::Shared(settings) => {
            PostgresAuditStore::open(settings)?.check_primary()?;
            Ok(format!("PostgreSQL {} takes writes", settings.described()))
        }
    }
}

const INSTANCE_ID_FILE: &str = "instance-id";

/// The instance id kept in `data_dir/instance-id`, made on first start.
fn instance_id_file(data_dir: &Path) -> Result<String, StoreError> {
    let path: PathBuf = data_dir.join(INSTANCE_ID_FILE);
    let dir_error = |source| StoreError::DataDir {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(dir_error(err)),
    }
    std::fs::create_dir_all(data_dir).map_err(dir_error)?;
    let id = store::new_instance_id();
    std::fs::write(&path, format!("{id}\n")).map_err(dir_error)?;
    Ok(id)
}

/// The audit store refused or failed the write; the request must not report success.
#[derive(Debug, thiserror::Error)]
#[error("the audit trail is unavailable")]
pub struct AuditUnavailable;

pub struct Audit {
    queue: mpsc::Sender<Submission>,
    on_the_way: Arc<OnTheWay>,
    healthy: Arc<AtomicBool>,
    pseudonyms: Pseudonymizer,
    pub instance: String,
}

impl Audit {
    /// Opens the store (in `data_dir`, or the shared database), resumes the chain, and
    /// starts the writer.
    pub fn start(
        data_dir: &Path,
        location: &Location,
        config: &AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Audit, Vec<Invalid>> {
        let mut problems = Vec::new();
        let pseudonym_key = read_secret(&config.pseudonym_key_file, 32)
            .map_err(|msg| problems.push(Invalid::new("audit.pseudonym_key_file", msg)))
            .ok();
        let signing_key = load_signing_key(&config.signing_key_file)
            .map_err(|msg| problems.push(Invalid::new("audit.signing_key_file", msg)))
            .ok();
        let opened = open_store(data_dir, location, config)
            .map_err(|(key, err)| problems.push(Invalid::new(key, err.to_string())))
            .ok();
        let (Some(pseudonym_key), Some(signing_key), Some((store, backfill, instance))) =
            (pseudonym_key, signing_key, opened)
        else {
            return Err(problems);
        };
        let sink = config.sink.as_ref().map(|path| match path.to_str() {
            Some("-") => Sink::Stdout,
            _ => Sink::file(path.clone()),
        });
        let (waiters, released) = mpsc::unbounded_channel();
        tokio::spawn(writer::release_waiters(released));
        let on_the_way = Arc::new(OnTheWay::default());
        let settings = WriterSettings {
            instance: instance.clone(),
            waiters,
            signing_key,
            checkpoint_every: config.checkpoint_every,
            checkpoint_interval: config.checkpoint_interval.0,
            batch_max: config.batch_max,
            on_the_way: on_the_way.clone(),
            group_commit_wait: config.group_commit_wait.0,
            sink,
        };
        let (queue, receiver) = mpsc::channel(config.queue_capacity);
        let healthy = Arc::new(AtomicBool::new(true));
        let writer_healthy = healthy.clone();
        std::thread::Builder::new()
            .name("wardgate-audit".to_owned())
            .spawn(move || {
                writer::run(store, settings, receiver, writer_healthy, metrics);
                drop(backfill);
            })
            .map_err(|err| {
                vec![Invalid::new(
                    "audit",
                    format!("cannot start the audit writer: {err}"),
                )]
            })?;
        // The ticker holds only a weak sender: when the gateway drops its audit handle the
        // queue closes, the writer drains it and ends.
        let ticker = queue.downgrade();
        let every = (config.checkpoint_interval.0 / 2).max(Duration::from_millis(100));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(queue) = ticker.upgrade() else {
                    return;
                };
                let _ = queue.try_send(Submission::Tick);
            }
        });
        Ok(Audit {
            queue,
            on_the_way,
            healthy,
            pseudonyms: Pseudonymizer::new(pseudonym_key),
            instance,
        })
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::SeqCst)
    }

    pub fn pseudonym(&self, patient_id: &str) -> String {
        self.pseudonyms.pseudonym(patient_id)
    }

    /// The keyed hash a field redacted as `hash` is shown as.
    pub fn field_hash(&self, field: &str, json: &str) -> String {
        self.pseudonyms.field_hash(field, json)
    }

    /// Says that a request's record is coming soon (its upstream has answered): a batch the
    /// writer is about to commit waits for it. The record's submission ends the announcement.
    pub fn announce(&self) -> Announced {
        self.on_the_way.announce()
    }

    /// Hands a record to the writer (ending its announcement, if any). Durable: waits for the
    /// commit. Buffered: waits only for room in the queue.
    pub async fn submit(
        &self,
        record: AuditRecord,
        durability: Durability,
        announced: Option<Announced>,
    ) -> Result<(), AuditUnavailable> {
        let record = Box::new(record);
        let committed = match durability {
            Durability::NotAudited => return Ok(()),
            Durability::Buffered => None,
            Durability::Durable => Some(oneshot::channel()),
        };
        let (committed, outcome) = committed.unzip();
        let queued = self
            .queue
            .send(Submission::Record { record, committed })
            .await
            .map_err(|_| AuditUnavailable);
        drop(announced);
        queued?;
        match outcome {
            None => Ok(()),
            Some(outcome) => match outcome.await {
                Ok(true) => Ok(()),
                _ => Err(AuditUnavailable),
            },
        }
    }

    /// Reopens the SIEM sink file (on SIGHUP, after rotation).
    pub fn reopen_sink(&self) {
        let _ = self.queue.try_send(Submission::ReopenSink);
    }

    /// Commits what is queued, signs the chain head and stops the writer (clean shutdown);
    /// records submitted afterwards are refused.
    pub async fn close(&self, timeout: Duration) -> Result<(), AuditUnavailable> {
        let (done, closed) = oneshot::channel();
        self.queue
            .send(Submission::Close(done))
            .await
            .map_err(|_| AuditUnavailable)?;
        match tokio::time::timeout(timeout, closed).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(AuditUnavailable),
        }
    }
}
