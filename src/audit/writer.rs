//! The audit writer: one thread owns the store and the chain. It takes records from a bounded
//! queue, seals a batch (sequence numbers, previous hashes, hashes), appends it and any due
//! checkpoint in one transaction (group commit: one fsync for many records), then wakes the
//! requests waiting on them. When the store fails, the batch is kept and retried with backoff;
//! waiting durable requests are told at once (they answer 503, and their records say so).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ed25519_dalek::SigningKey;
use tokio::sync::{mpsc, oneshot};

use super::checkpoint::Checkpoint;
use super::on_the_way::OnTheWay;
use super::record::{AuditRecord, GENESIS};
use super::store::{AuditStore, SealedRecord};
use crate::metrics::Metrics;

/// What the writer is sent.
pub enum Submission {
    Record {
        record: Box<AuditRecord>,
        /// Present for durable requests, which wait for the commit.
        committed: Option<oneshot::Sender<bool>>,
    },
    /// Time passes: a checkpoint may be due.
    Tick,
    /// Reopen the SIEM sink file (after log rotation).
    ReopenSink,
    /// Commit what is queued, sign the chain head, stop, then answer (clean shutdown).
    Close(oneshot::Sender<()>),
}

pub struct WriterSettings {
    pub instance: String,
    /// Where the commit outcome for a batch's waiting requests goes: see [`release_waiters`].
    pub waiters: mpsc::UnboundedSender<Released>,
    pub signing_key: SigningKey,
    pub checkpoint_every: u64,
    pub checkpoint_interval: Duration,
    pub batch_max: usize,
    /// Records announced by requests and not queued yet, which a batch waits for...
    pub on_the_way: Arc<OnTheWay>,
    /// ...this long at most (zero: never).
    pub group_commit_wait: Duration,
    pub sink: Option<Sink>,
}

/// The SIEM sink: each committed record as one JSON line, to a file or standard output.
pub enum Sink {
    Stdout,
    File {
        path: std::path::PathBuf,
        file: Option<std::fs::File>,
    },
}

impl Sink {
    pub fn file(path: std::path::PathBuf) -> Sink {
        let mut sink = Sink::File { path, file: None };
        sink.reopen();
        sink
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            *file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&*path)
                .map_err(|err| tracing::error!(path = %path.display(), "cannot open the audit sink: {err}"))
                .ok();
        }
    }

    fn write(&mut self, lines: &[u8]) {
        let result = match self {
            Sink::Stdout => std::io::stdout().lock().write_all(lines),
            Sink::File {
                file: Some(file), ..
            } => file.write_all(lines),
            Sink::File { file: None, .. } => Ok(()),
        };
        if let Err(err) = result {
            tracing::error!("cannot write to the audit sink: {err}");
        }
    }
}

/// A record in the writer's hands, with the request waiting for its commit (durable routes).
type Waiting = (Box<AuditRecord>, Option<oneshot::Sender<bool>>);

/// The requests a commit (or a failed one) answers, and whether their records are committed.
pub type Released = (Vec<oneshot::Sender<bool>>, bool);

/// Answers the requests waiting on a commit, from a task on the runtime. The writer sends one
/// message per batch: answering each request from the writer's thread would wake the runtime
/// once per request (a system call each, and on a one-core runtime a context switch).
pub async fn release_waiters(mut batches: mpsc::UnboundedReceiver<Released>) {
    while let Some((waiters, committed)) = batches.recv().await {
        for waiter in waiters {
            let _ = waiter.send(committed);
        }
    }
}

/// Hands a batch's waiters to [`release_waiters`], or answers them here if that task is gone.
fn release(settings: &WriterSettings, waiters: Vec<oneshot::Sender<bool>>, committed: bool) {
    if waiters.is_empty() {
        return;
    }
    if let Err(mpsc::error::SendError((waiters, committed))) =
        settings.waiters.send((waiters, committed))
    {
        for waiter in waiters {
            let _ = waiter.send(committed);
        }
    }
}

struct Chain {
    seq: u64,
    hash: String,
    since_checkpoint: u64,
    last_checkpoint: Instant,
}

pub fn run(
    mut store: Box<dyn AuditStore>,
    mut settings: WriterSettings,
    mut queue: mpsc::Receiver<Submission>,
    healthy: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let (seq, hash) = match store.head(&settings.instance) {
        Ok(head) => head.unwrap_or((0, GENESIS.to_owned())),
        Err(err) => {
            tracing::error!("cannot read the audit chain head: {err}");
            healthy.store(false, Ordering::SeqCst);
            (0, GENESIS.to_owned())
        }
    };
    metrics
        .audit_chain_head_seq
        .set(i64::try_from(seq).unwrap_or(i64::MAX));
    let mut chain = Chain {
        seq,
        hash,
        since_checkpoint: 0,
        last_checkpoint: Instant::now(),
    };
    let mut pending: Vec<Waiting> = Vec::new();
    let mut closer: Option<oneshot::Sender<()>> = None;
    let mut backoff = Duration::from_millis(50);
    let mut resync = false;
    let mut open = true;
    while open || !pending.is_empty() {
        if pending.is_empty() && closer.is_none() {
            match queue.blocking_recv() {
                Some(submission) => absorb(submission, &mut pending, &mut closer, &mut settings),
                None => open = false,
            }
        }
        let deadline = Instant::now() + settings.group_commit_wait;
        let announced_before = settings.on_the_way.begin_batch();
        loop {
            while pending.len() < settings.batch_max {
                match queue.try_recv() {
                    Ok(submission) => {
                        absorb(submission, &mut pending, &mut closer, &mut settings);
                    }
                    Err(mpsc::error::TryRecvError::Empty) => break,
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            let growing = open
                && closer.is_none()
                && !pending.is_empty()
                && pending.len() < settings.batch_max;
            if !growing || !settings.on_the_way.wait_until(announced_before, deadline) {
                break;
            }
        }
        metrics
            .audit_queue_depth
            .set(i64::try_from(queue.len()).unwrap_or(i64::MAX));
        let closing = closer.is_some();
        let due_by_time = chain.since_checkpoint > 0
            && (closing || chain.last_checkpoint.elapsed() >= settings.checkpoint_interval);
        if pending.is_empty() && !due_by_time {
            if closing {
                break;
            }
            continue;
        }
        if resync {
            // A failed commit may have reached the store all the same (a network database
            // that committed, then lost the connection before saying so): continue the chain
            // from what is stored, never from a head the store has moved past.
            if let Ok(head) = store.head(&settings.instance) {
                let head = head.unwrap_or((0, GENESIS.to_owned()));
                if head.0 != chain.seq || head.1 != chain.hash {
                    tracing::warn!(
                        stored = head.0,
                        expected = chain.seq,
                        "the audit store holds records whose commit was not acknowledged; the chain continues from them"
                    );
                    (chain.seq, chain.hash) = head;
                }
                resync = false;
            }
        }
        let started = Instant::now();
        match commit(store.as_mut(), &settings, &mut chain, &mut pending, closing) {
            Ok(sealed) => {
                metrics
                    .audit_commit_duration
                    .observe(started.elapsed().as_secs_f64());
                metrics
                    .audit_chain_head_seq
                    .set(i64::try_from(chain.seq).unwrap_or(i64::MAX));
                if !healthy.swap(true, Ordering::SeqCst) {
                    tracing::info!("the audit store is writable again");
                }
                backoff = Duration::from_millis(50);
                if let Some(sink) = &mut settings.sink {
                    let mut lines = Vec::new();
                    for s in &sealed {
                        let mut value = serde_json::to_value(s.record).unwrap_or_default();
                        value["hash"] = s.hash.clone().into();
                        lines.extend(value.to_string().into_bytes());
                        lines.push(b'\n');
                    }
                    sink.write(&lines);
                }
                drop(sealed);
                let mut waiters = Vec::with_capacity(pending.len());
                for (record, committed) in pending.drain(..) {
                    metrics
                        .audit_records
                        .with_label_values(&[record.decision.as_str()])
                        .inc();
                    waiters.extend(committed);
                }
                release(&settings, waiters, true);
            }
            Err(err) => {
                resync = true;
                metrics.audit_write_errors.inc();
                if healthy.swap(false, Ordering::SeqCst) {
                    tracing::error!(
                        "audit store failed; durable routes answer 503 until it recovers: {err}"
                    );
                }
                // Waiting requests answer 503 now; their records, kept for the retry, say so.
                let mut waiters = Vec::new();
                for (record, committed) in &mut pending {
                    if let Some(committed) = committed.take() {
                        record.status = 503;
                        record.flags.push("audit_unavailable".to_owned());
                        waiters.push(committed);
                    }
                }
                release(&settings, waiters, false);
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
    if let Some(done) = closer {
        let _ = done.send(());
    }
}

fn absorb(
    submission: Submission,
    pending: &mut Vec<Waiting>,
    closer: &mut Option<oneshot::Sender<()>>,
    settings: &mut WriterSettings,
) {
    match submission {
        Submission::Record { record, committed } => pending.push((record, committed)),
        Submission::Close(done) => *closer = Some(done),
        Submission::Tick => {}
        Submission::ReopenSink => {
            if let Some(sink) = &mut settings.sink {
                sink.reopen();
            }
        }
    }
}

/// Seals the pending records onto the chain (in place: a failed batch is sealed again, from the
/// same head, on the retry) and appends them; the chain advances only when the transaction
/// committed.
fn commit<'p>(
    store: &mut dyn AuditStore,
    settings: &WriterSettings,
    chain: &mut Chain,
    pending: &'p mut [Waiting],
    sign_head: bool,
) -> Result<Vec<SealedRecord<'p>>, crate::store::StoreError> {
    store.probe()?;
    let mut seq = chain.seq;
    let mut previous = chain.hash.clone();
    let mut sealed = Vec::with_capacity(pending.len());
    for (record, _) in pending.iter_mut() {
        seq += 1;
        record.seq = seq;
        record.instance.clone_from(&settings.instance);
        record.prev_hash = previous;
        let body = record.canonical();
        let hash = AuditRecord::hash_of(&body);
        previous = hash.clone();
        sealed.push((body, hash));
    }
    let sealed: Vec<SealedRecord<'p>> = pending
        .iter()
        .zip(sealed)
        .map(|((record, _), (body, hash))| SealedRecord { record, body, hash })
        .collect();
    let since = chain.since_checkpoint + sealed.len() as u64;
    let due = since > 0
        && (sign_head
            || since >= settings.checkpoint_every
            || chain.last_checkpoint.elapsed() >= settings.checkpoint_interval);
    let checkpoint = due.then(|| {
        let time = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
        Checkpoint::sign(
            &settings.signing_key,
            &settings.instance,
            seq,
            &previous,
            &time,
        )
    });
    store.append(&sealed, checkpoint.as_ref())?;
    chain.seq = seq;
    chain.hash = previous;
    if checkpoint.is_some() {
        chain.since_checkpoint = 0;
        chain.last_checkpoint = Instant::now();
    } else {
        chain.since_checkpoint = since;
    }
    Ok(sealed)
}
