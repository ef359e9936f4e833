//! Rate limiter benchmarks.
//!
//! `check_*`: the cost of counting one request against a policy (what stage 4 does per policy
//! per request), for one hot key and for keys spread over 100,000 clients; `check_refused`, of
//! a request over its quota (the refusal and when to come back), what a flood costs per request.
//!
//! `flood`: 10,000,000 distinct keys (a random-address flood) against one policy with the
//! default `max_keys` of 100,000; prints how many buckets the policy holds and how much the
//! process's resident memory grew, then the same after housekeeping evicts idle buckets.
//!
//!     cargo bench --bench ratelimit

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use wardgate::config::RateLimitsConfig;
use wardgate::ratelimit::RateLimits;

fn limits(rate: &str, burst: u32) -> RateLimits {
    let config: RateLimitsConfig = serde_yaml::from_str(&format!(
        "policies:\n  per-ip: {{ key: client_ip, rate: {rate}, burst: {burst} }}\ndefault: [per-ip]\n"
    ))
    .expect("config");
    RateLimits::build(&config)
}

/// Resident set size of this process, in bytes (Linux).
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn check(c: &mut Criterion) {
    let generous = limits("4000000000/s", 4_000_000);
    let policy = generous.get("per-ip").expect("policy").clone();
    let mut group = c.benchmark_group("ratelimit");
    group.bench_function("check_hot_key", |b| b.iter(|| policy.check("10.1.2.3")));
    let mut i = 0u32;
    group.bench_function("check_100k_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % 100_000;
            policy.check(i)
        })
    });
    let over_quota = limits("1/min", 1);
    let strict = over_quota.get("per-ip").expect("policy").clone();
    let _ = strict.check("10.9.9.9");
    group.bench_function("check_refused", |b| {
        b.iter(|| {
            let refused = strict.check("10.9.9.9");
            assert!(refused.is_err(), "the key is over its quota");
            refused
        })
    });
    group.finish();
}

fn flood(_c: &mut Criterion) {
    let limits = limits("100/min", 20);
    let policy = limits.get("per-ip").expect("policy").clone();
    let before = rss();
    let started = Instant::now();
    let mut refused = 0u64;
    for key in 0..10_000_000u64 {
        if policy
            .check(key.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .is_err()
        {
            refused += 1;
        }
    }
    let after = rss();
    println!(
        "flood: 10,000,000 distinct keys in {:.1?}: {} buckets held (max_keys 100,000), {} requests refused, RSS +{:.1} MB",
        started.elapsed(),
        policy.len(),
        refused,
        after.saturating_sub(before) as f64 / 1e6
    );
    // Every bucket is back to fresh after one emission interval at most (here 0.6 s x burst).
    std::thread::sleep(Duration::from_secs(13));
    limits.evict_idle();
    println!(
        "after housekeeping: {} buckets held, RSS {:.1} MB above the start",
        policy.len(),
        rss().saturating_sub(before) as f64 / 1e6
    );
}

criterion_group!(benches, flood, check);
criterion_main!(benches);
