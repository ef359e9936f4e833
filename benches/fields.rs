//! Field protection benchmarks.
//!
//! `protect_1kb` / `reveal_1kb`: the transformer on a 1 KB patient record with 5 protected
//! fields, the key warm (what stages 6 and 8 do per request once the patient's key is cached).
//!
//! `uncached_key_1m`: fetching a patient's data key that is not in memory, from a key store
//! holding 1,000,000 patients (a SQLite lookup and an AES-GCM unwrap). The store is generated
//! once into `target/bench-data/keys-1000000`; its size is printed.
//!
//!     cargo bench --bench fields

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use wardgate::crypto::field_cipher::DataKey;
use wardgate::crypto::fields::FieldRules;
use wardgate::crypto::json_path::JsonPath;
use wardgate::crypto::key_store::{PatientKeys, KEYS_DB};
use wardgate::crypto::keyring::{KeyRing, RingSource};
use wardgate::crypto::redact::Reveal;
use zeroize::Zeroizing;

/// A patient record of about 1 KB: five protected fields among ordinary ones.
fn record() -> String {
    let record = serde_json::json!({
        "id": "p-1001",
        "name": "Li Wei",
        "id_number": "110101199003071234",
        "phone": "13812345678",
        "date_of_birth": "1990-03-07",
        "address": {"province": "Beijing", "city": "Beijing", "street": "Chaoyang Road 88, Building 3, Unit 2, Room 1201", "postcode": "100020"},
        "department": "cardiology",
        "insurance": {"provider": "Beijing Medical Insurance", "number": "BJ20261122000017", "valid_until": "2027-12-31"},
        "allergies": ["penicillin", "sulfonamides"],
        "emergency_contact": {"name": "Li Na", "relation": "sister", "phone": "13900001111"},
        "visits": [
            {"date": "2026-10-02", "doctor": "dr-chen", "kind": "text", "diagnosis": "stable angina", "duration_min": 18},
            {"date": "2026-11-02", "doctor": "dr-chen", "kind": "video", "diagnosis": "stable angina, improving", "duration_min": 12}
        ],
        "notes": "Prefers video consultations in the evening. Hearing slightly impaired on the left side; speak clearly.",
        "created": "2026-01-15T09:30:00+08:00",
        "updated": "2026-11-22T08:00:00+08:00",
        "flags": {"vip": false, "needs_interpreter": false, "consent_research": true}
    });
    record.to_string()
}

fn rules() -> FieldRules {
    let spec: Vec<(&str, Vec<JsonPath>)> = [
        ("id_number", vec!["$.id_number"]),
        ("phone", vec!["$..phone"]),
        ("address", vec!["$.address"]),
        ("insurance_number", vec!["$.insurance.number"]),
        ("diagnosis", vec!["$.visits[*].diagnosis"]),
    ]
    .into_iter()
    .map(|(name, paths)| {
        (
            name,
            paths
                .into_iter()
                .map(|p| JsonPath::parse(p).expect("path"))
                .collect(),
        )
    })
    .collect();
    FieldRules::new(spec.iter().map(|(name, paths)| (*name, paths.as_slice())))
}

fn transform(c: &mut Criterion) {
    let body = record();
    let rules = rules();
    let key = DataKey::new(1, Zeroizing::new([7u8; 32]));
    let sealed = rules
        .protect(&body, &key, "pt_0123456789abcdef")
        .expect("protect")
        .expect("fields selected");
    println!(
        "record: {} bytes plain, {} bytes sealed",
        body.len(),
        sealed.len()
    );
    let mut group = c.benchmark_group("fields");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("protect_1kb_5_fields", |b| {
        b.iter(|| rules.protect(&body, &key, "pt_0123456789abcdef"))
    });
    group.bench_function("reveal_1kb_5_fields_plain", |b| {
        b.iter(|| {
            rules.reveal(
                &sealed,
                Ok(&key),
                "pt_0123456789abcdef",
                &mut |_| Reveal::Plain,
                &|_, _| String::new(),
            )
        })
    });
    group.bench_function("reveal_1kb_5_fields_masked", |b| {
        b.iter(|| {
            rules.reveal(
                &sealed,
                Ok(&key),
                "pt_0123456789abcdef",
                &mut |_| Reveal::Mask {
                    keep_first: 0,
                    keep_last: 4,
                },
                &|_, _| String::new(),
            )
        })
    });
    group.finish();
}

const PATIENTS: u64 = 1_000_000;

fn pseudonym(i: u64) -> String {
    format!("pt_{:032x}", i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Generates (once) a key store with `PATIENTS` wrapped keys, in one transaction.
fn large_key_store() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("target/bench-data/keys-{PATIENTS}"));
    let done = dir.join("complete");
    if done.exists() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let started = Instant::now();
    let ring_path = dir.join("ring.json");
    let ring = KeyRing::create(&ring_path, "bench").expect("ring");
    // Opening makes the schema; the bulk load then writes rows the way `key_for` does, in one
    // transaction instead of one per patient (`key_for` commits each new key on its own).
    drop(PatientKeys::open(&dir, RingSource::File(ring_path), 16).expect("store"));
    let mut connection = rusqlite::Connection::open(dir.join(KEYS_DB)).expect("db");
    let transaction = connection.transaction().expect("transaction");
    {
        let mut insert = transaction
            .prepare("INSERT INTO patient_keys (patient, wrapped, kek_version, shredded) VALUES (?1, ?2, 1, 0)")
            .expect("statement");
        for i in 0..PATIENTS {
            let patient = pseudonym(i);
            let wrapped = ring.wrap(&patient, &DataKey::generate(1));
            insert
                .execute(rusqlite::params![patient, wrapped])
                .expect("insert");
        }
    }
    transaction.commit().expect("commit");
    drop(connection);
    std::fs::write(&done, "").expect("marker");
    println!(
        "generated {PATIENTS} patient keys in {:?}",
        started.elapsed()
    );
    dir
}

fn uncached_key(c: &mut Criterion) {
    let dir = large_key_store();
    let size: u64 = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(|entry| entry.ok()?.metadata().ok())
        .map(|metadata| metadata.len())
        .sum();
    println!(
        "key store with {PATIENTS} patients: {:.1} MB on disk",
        size as f64 / 1e6
    );
    // A cache of one: every fetch below misses.
    let keys = PatientKeys::open(&dir, RingSource::File(dir.join("ring.json")), 1).expect("store");
    let mut i = 0u64;
    let mut group = c.benchmark_group("fields");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("uncached_key_1m_patients", |b| {
        b.iter(|| {
            i = (i + 7919) % PATIENTS;
            keys.existing_key(&pseudonym(i))
                .expect("lookup")
                .expect("exists")
        })
    });
    group.finish();
}

criterion_group!(benches, transform, uncached_key);
criterion_main!(benches);
