//! Audit trail benchmarks.
//!
//! `durable_commit`: records submitted the way durable requests submit them (each caller
//! waits for its commit) by many concurrent callers, through the real writer (group commit,
//! SQLite in WAL mode, fsync per batch) into a store on disk. Throughput is in records/s.
//!
//! `query_by_patient`: `audit query --patient` over a large store. The store is generated
//! once (sealed, hash-chained records for 100,000 patients, 3 days of traffic) into
//! `target/bench-data/audit-<N>`; N comes from `WARDGATE_BENCH_AUDIT_RECORDS` (default
//! 10,000,000, about 7 GB on disk and a few minutes to generate).
//!
//!     cargo bench --bench audit

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardgate::audit::store::{
    AuditReader, AuditStore, QueryFilter, SealedRecord, SqliteAuditStore,
};
use wardgate::audit::{Audit, AuditRecord, Pseudonymizer, GENESIS};
use wardgate::config::{AuditConfig, Durability};
use wardgate::metrics::Metrics;

const CALLERS: usize = 512;
const RECORDS_PER_CALLER: usize = 20;

fn sample_record(caller: usize, i: usize, pseudonyms: &Pseudonymizer) -> AuditRecord {
    AuditRecord {
        time: "2026-11-22T08:00:00.000Z".to_owned(),
        time_ms: 1_795_334_400_000 + (caller * 1000 + i) as i64,
        request_id: format!("bench-{caller}-{i}"),
        subject: Some(format!("dr-{}", caller % 40)),
        roles: vec!["doctor".to_owned()],
        auth_method: Some("jwt".to_owned()),
        client: "10.1.2.3".to_owned(),
        method: "GET".to_owned(),
        route: Some("department-records".to_owned()),
        template: Some("/api/departments/{department}/patients/{patient_id}/records".to_owned()),
        patient: Some(pseudonyms.pseudonym(&format!("p-{}", (caller * 31 + i) % 100_000))),
        resource: Some("medical_record".to_owned()),
        action: Some("read".to_owned()),
        decision: "allow".to_owned(),
        rule: Some("p, clinician, same_department, medical_record, read".to_owned()),
        status: 200,
        upstream_status: Some(200),
        latency_ms: 1.234,
        ..AuditRecord::default()
    }
}

fn audit_config(dir: &Path) -> AuditConfig {
    wardgate::audit::keys::generate(dir).expect("keys");
    serde_yaml::from_str(&format!(
        "pseudonym_key_file: {0}/audit-pseudonym.key\nsigning_key_file: {0}/audit-signing.pem\n",
        dir.display()
    ))
    .expect("audit config")
}

fn durable_commit(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = audit_config(dir.path());
    let audit = runtime
        .block_on(async {
            Audit::start(
                &dir.path().join("data"),
                &dir.path().join("data").as_path().into(),
                &config,
                Arc::new(Metrics::new()),
            )
        })
        .map(Arc::new)
        .unwrap_or_else(|_| panic!("audit store"));
    let pseudonyms = Pseudonymizer::new(
        wardgate::identity::read_secret(&config.pseudonym_key_file, 32).expect("key"),
    );
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements((CALLERS * RECORDS_PER_CALLER) as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    // The records are built outside the measurement: building one is the pipeline's work,
    // committing it is what is measured.
    let build = || -> Vec<Vec<AuditRecord>> {
        (0..CALLERS)
            .map(|caller| {
                (0..RECORDS_PER_CALLER)
                    .map(|i| sample_record(caller, i, &pseudonyms))
                    .collect()
            })
            .collect()
    };
    group.bench_function("durable_commit", |b| {
        b.iter_batched(
            build,
            |batches| {
                runtime.block_on(async {
                    let callers: Vec<_> = batches
                        .into_iter()
                        .map(|records| {
                            let audit = audit.clone();
                            tokio::spawn(async move {
                                for record in records {
                                    audit
                                        .submit(record, Durability::Durable, None)
                                        .await
                                        .expect("committed");
                                }
                            })
                        })
                        .collect();
                    for caller in callers {
                        caller.await.expect("caller");
                    }
                })
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// How many of `large_store(count)`'s records name patient `p-{patient}`: record `seq` (from 1)
/// names `p-{seq % 100_000}`.
fn records_of(patient: u64, count: u64) -> u64 {
    count / 100_000 + u64::from(patient != 0 && patient <= count % 100_000)
}

/// Generates (once) a store of `count` sealed records; returns its data directory and the
/// pseudonymizer that named its patients.
fn large_store(count: u64) -> (PathBuf, Pseudonymizer) {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/bench-data/audit-{count}"));
    let key = zeroize::Zeroizing::new(b"bench-pseudonym-key-bench-pseudonym-key".to_vec());
    let pseudonyms = Pseudonymizer::new(key);
    let done = dir.join("complete");
    if done.exists() {
        return (dir, pseudonyms);
    }
    let _ = std::fs::remove_dir_all(&dir);
    let started = Instant::now();
    let mut store = SqliteAuditStore::open(&dir).expect("store");
    let mut previous = GENESIS.to_owned();
    let mut seq = 0u64;
    let start_ms: i64 = 1_795_334_400_000;
    let span_ms: i64 = 3 * 86_400_000;
    while seq < count {
        let mut records = Vec::with_capacity(20_000);
        for _ in 0..20_000.min(count - seq) {
            seq += 1;
            let mut record = sample_record((seq % 997) as usize, (seq % 13) as usize, &pseudonyms);
            record.seq = seq;
            record.instance = "bench".to_owned();
            record.time_ms = start_ms + (seq as i64 * span_ms) / count as i64;
            record.patient = Some(pseudonyms.pseudonym(&format!("p-{}", seq % 100_000)));
            record.request_id = format!("gen-{seq}");
            record.prev_hash = previous;
            let body = record.canonical();
            let hash = AuditRecord::hash_of(&body);
            previous = hash.clone();
            records.push((record, body, hash));
        }
        let batch: Vec<SealedRecord> = records
            .iter()
            .map(|(record, body, hash)| SealedRecord {
                record,
                body: body.clone(),
                hash: hash.clone(),
            })
            .collect();
        store.append(&batch, None).expect("append");
        if seq % 1_000_000 == 0 {
            eprintln!("generated {seq} records in {:?}", started.elapsed());
        }
    }
    std::fs::write(&done, format!("{count}\n")).expect("marker");
    eprintln!("generated {count} records in {:?}", started.elapsed());
    (dir, pseudonyms)
}

fn query_by_patient(c: &mut Criterion) {
    let count: u64 = std::env::var("WARDGATE_BENCH_AUDIT_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000_000);
    let (dir, pseudonyms) = large_store(count);
    let reader = AuditReader::open(&dir).expect("reader");
    let mut group = c.benchmark_group("audit");
    group.sample_size(20);
    let mut patient = 0u64;
    group.bench_function(format!("query_by_patient_{count}"), |b| {
        b.iter(|| {
            patient = (patient + 7919) % 100_000;
            let filter = QueryFilter {
                patient: Some(pseudonyms.pseudonym(&format!("p-{patient}"))),
                ..QueryFilter::default()
            };
            let found = reader.query(&filter).expect("query");
            assert_eq!(found.len() as u64, records_of(patient, count));
        })
    });
    group.finish();
}

criterion_group!(benches, durable_commit, query_by_patient);
criterion_main!(benches);
