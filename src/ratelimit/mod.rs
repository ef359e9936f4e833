//! Abuse protection (pipeline stage 4's machinery): named rate limit policies (governor's
//! GCRA), each keyed by client address, subject, route, or subject and patient; and the
//! patient-enumeration detector (`enumeration.rs`).
//!
//! Memory is bounded by construction: a policy's keys are hashed (SipHash under a key chosen
//! at random per process, so nobody can aim at a bucket) into at most `rate_limits.max_keys`
//! buckets. A flood of distinct keys (random addresses, stolen tokens) fills at most that many
//! buckets and then shares them, which limits the flood as a whole; idle buckets are evicted
//! by housekeeping. Limiters outlive reloads when their policy is unchanged, so a reload does
//! not hand out a fresh burst.

mod enumeration;

use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota};

pub use enumeration::{EnumerationDetector, Touch};

use crate::config::{RateLimitKey, RateLimitPolicyConfig, RateLimitsConfig};

/// One policy: its settings and its limiter.
pub struct Policy {
    pub name: String,
    pub spec: RateLimitPolicyConfig,
    limiter: DefaultKeyedRateLimiter<u64>,
    buckets: u64,
    hasher: std::collections::hash_map::RandomState,
}

/// A refusal: which policy, and when to come back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limited {
    pub policy: String,
    pub key: RateLimitKey,
    pub retry_after: Duration,
    /// The quota as the `RateLimit-Policy` header states it: requests per window (seconds).
    pub quota: u32,
    pub window_secs: u64,
}

impl Policy {
    fn new(name: &str, spec: &RateLimitPolicyConfig, max_keys: usize) -> Policy {
        let count = NonZeroU32::new(spec.rate.count).unwrap_or(NonZeroU32::MIN);
        let burst = spec.burst.and_then(NonZeroU32::new).unwrap_or(count);
        let period = spec.rate.per / count.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(count))
            .allow_burst(burst);
        Policy {
            name: name.to_owned(),
            spec: spec.clone(),
            limiter: DefaultKeyedRateLimiter::keyed(quota),
            buckets: max_keys.max(1) as u64,
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Counts one request for `key`; the wait when it is over the quota.
    pub fn check(&self, key: impl Hash) -> Result<(), Limited> {
        let bucket = self.hasher.hash_one(key) % self.buckets;
        self.limiter
            .check_key(&bucket)
            .map_err(|not_until| Limited {
                policy: self.name.clone(),
                key: self.spec.key,
                // The limiter's own clock: making a new one (`DefaultClock::default()`) asks
                // the CPU about its TSC with CPUID, which a hypervisor traps: about 28 µs a
                // refusal on a virtual machine.
                retry_after: not_until.wait_time_from(self.limiter.clock().now()),
                quota: self.spec.rate.count,
                window_secs: self.spec.rate.per.as_secs(),
            })
    }

    /// Buckets currently held.
    pub fn len(&self) -> usize {
        self.limiter.len()
    }

    pub fn is_empty(&self) -> bool {
        self.limiter.is_empty()
    }

    /// Drops buckets that are back to a fresh state (idle keys).
    pub fn evict_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

/// Every policy of a config, by name.
#[derive(Default)]
pub struct RateLimits {
    /// By name (config keys only: a fast hash without flooding resistance is safe here).
    policies: foldhash::HashMap<String, Arc<Policy>>,
    /// Applied to routes that name no policies of their own.
    pub default: Vec<String>,
}

impl RateLimits {
    pub fn build(config: &RateLimitsConfig) -> RateLimits {
        RateLimits {
            policies: config
                .policies
                .iter()
                .map(|(name, spec)| {
                    (
                        name.clone(),
                        Arc::new(Policy::new(name, spec, config.max_keys)),
                    )
                })
                .collect(),
            default: config.default.clone(),
        }
    }

    /// Takes over the limiters of `previous` whose policy is unchanged (a reload keeps their
    /// counts).
    pub fn carry_over(&mut self, previous: &RateLimits) {
        for (name, policy) in self.policies.iter_mut() {
            if let Some(old) = previous.policies.get(name) {
                if old.spec == policy.spec && old.buckets == policy.buckets {
                    *policy = old.clone();
                }
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Policy>> {
        self.policies.get(name)
    }

    pub fn policies(&self) -> impl Iterator<Item = &Arc<Policy>> {
        self.policies.values()
    }

    /// Housekeeping: evicts idle buckets of every policy.
    pub fn evict_idle(&self) {
        for policy in self.policies.values() {
            policy.evict_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rate;

    fn spec(count: u32, burst: u32) -> RateLimitPolicyConfig {
        RateLimitPolicyConfig {
            key: RateLimitKey::ClientIp,
            rate: Rate {
                count,
                per: Duration::from_secs(60),
            },
            burst: Some(burst),
        }
    }

    #[test]
    fn a_burst_passes_then_the_rate_applies_per_key() {
        let policy = Policy::new("per-ip", &spec(60, 3), 1000);
        for _ in 0..3 {
            assert!(policy.check("10.0.0.1").is_ok());
        }
        let limited = policy.check("10.0.0.1").unwrap_err();
        assert_eq!(limited.policy, "per-ip");
        assert!(
            limited.retry_after > Duration::ZERO && limited.retry_after <= Duration::from_secs(1)
        );
        assert!(
            policy.check("10.0.0.2").is_ok(),
            "another key has its own bucket"
        );
    }

    #[test]
    fn a_flood_of_distinct_keys_never_holds_more_than_max_keys_buckets() {
        let policy = Policy::new("per-ip", &spec(600, 10), 1000);
        for i in 0..100_000u32 {
            let _ = policy.check(i);
        }
        assert!(policy.len() <= 1000, "{} buckets", policy.len());
    }

    #[test]
    fn unchanged_policies_keep_their_state_across_a_reload() {
        let mut config = RateLimitsConfig::default();
        config.policies.insert("a".into(), spec(60, 1));
        config.policies.insert("b".into(), spec(60, 1));
        let old = RateLimits::build(&config);
        assert!(old.get("a").unwrap().check("k").is_ok());
        assert!(old.get("b").unwrap().check("k").is_ok());
        config.policies.insert("b".into(), spec(120, 1));
        let mut new = RateLimits::build(&config);
        new.carry_over(&old);
        assert!(
            new.get("a").unwrap().check("k").is_err(),
            "a kept its count"
        );
        assert!(new.get("b").unwrap().check("k").is_ok(), "b changed: fresh");
    }
}
