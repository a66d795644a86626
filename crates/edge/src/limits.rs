//! Rate limits: token buckets, in memory (one edge process; the split shape's replicas each
//! keep their own — see docs/SECURITY.md).
//!
//! Two budgets: each principal's requests ([`Limits::principal`]), and each client address's
//! failed authentications ([`Limits::failures`]) — a brute-force or credential-stuffing source
//! runs out of the second and is refused (`429`) before any credential of it is checked again.

use std::collections::HashMap;
use std::sync::Mutex;

/// A budget: `per_second` tokens a second, at most `burst` saved up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Tokens added a second.
    pub per_second: f64,
    /// Tokens held at most (and at first).
    pub burst: f64,
}

/// One bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at_us: i64,
}

/// Buckets by key. Keys whose buckets are full again are forgotten when the map grows past
/// [`KEYS_MAX`], so a flood of new keys cannot grow memory without end.
#[derive(Debug)]
pub struct Buckets {
    rate: Rate,
    buckets: Mutex<HashMap<String, Bucket>>,
}

/// Keys tracked before full buckets are dropped.
const KEYS_MAX: usize = 100_000;

impl Buckets {
    /// Buckets refilling at `rate`.
    pub fn new(rate: Rate) -> Buckets {
        Buckets {
            rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now_us: i64) {
        let elapsed = (now_us - bucket.at_us).max(0) as f64 / 1e6;
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(self.rate.burst);
        bucket.at_us = now_us;
    }

    /// Takes `cost` tokens from `key`'s bucket at `now_us`: `Ok`, or `Err(seconds)` until
    /// there would be enough.
    pub fn take(&self, key: &str, cost: f64, now_us: i64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= KEYS_MAX && !buckets.contains_key(key) {
            let rate = self.rate;
            buckets.retain(|_, b| {
                let elapsed = (now_us - b.at_us).max(0) as f64 / 1e6;
                b.tokens + elapsed * rate.per_second < rate.burst
            });
            // Still full (that many keys spending at once): memory stays bounded; they all
            // start over.
            if buckets.len() >= KEYS_MAX {
                buckets.clear();
            }
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.rate.burst,
            at_us: now_us,
        });
        self.refill(bucket, now_us);
        if bucket.tokens >= cost {
            bucket.tokens -= cost;
            Ok(())
        } else {
            Err(self.wait(bucket.tokens, cost))
        }
    }

    /// Whether `key` has at least one token at `now_us` (takes nothing): `Err(seconds)` if not.
    pub fn check(&self, key: &str, now_us: i64) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        match buckets.get_mut(key) {
            None => Ok(()),
            Some(bucket) => {
                self.refill(bucket, now_us);
                if bucket.tokens >= 1.0 {
                    Ok(())
                } else {
                    Err(self.wait(bucket.tokens, 1.0))
                }
            }
        }
    }

    fn wait(&self, tokens: f64, cost: f64) -> u64 {
        if self.rate.per_second <= 0.0 {
            return u64::MAX;
        }
        (((cost - tokens) / self.rate.per_second).ceil() as u64).max(1)
    }
}

/// The gate's budgets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LimitsConfig {
    /// Requests per principal.
    pub principal: Rate,
    /// Failed authentications per client address.
    pub failures: Rate,
}

impl Default for LimitsConfig {
    /// A principal: 20,000 requests a second, 40,000 at once (a payment gateway's key
    /// included; lower it per deployment). An address: 5 failed authentications a second, 20
    /// at once.
    fn default() -> Self {
        LimitsConfig {
            principal: Rate {
                per_second: 20_000.0,
                burst: 40_000.0,
            },
            failures: Rate {
                per_second: 5.0,
                burst: 20.0,
            },
        }
    }
}

/// The gate's buckets.
#[derive(Debug)]
pub struct Limits {
    /// Requests per principal.
    pub principal: Buckets,
    /// Failed authentications per client address.
    pub failures: Buckets,
}

impl Limits {
    /// Buckets for `config`.
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            principal: Buckets::new(config.principal),
            failures: Buckets::new(config.failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_spends_its_burst_then_refills_at_its_rate() {
        let buckets = Buckets::new(Rate {
            per_second: 2.0,
            burst: 3.0,
        });
        let t0 = 1_000_000_000;
        for _ in 0..3 {
            assert_eq!(buckets.take("k", 1.0, t0), Ok(()));
        }
        assert_eq!(buckets.take("k", 1.0, t0), Err(1));
        // Another key has its own bucket.
        assert_eq!(buckets.take("other", 1.0, t0), Ok(()));
        // Half a second later: one token back.
        assert_eq!(buckets.take("k", 1.0, t0 + 500_000), Ok(()));
        assert_eq!(buckets.take("k", 1.0, t0 + 500_000), Err(1));
        // Never more than the burst, however long it waited.
        for _ in 0..3 {
            assert_eq!(buckets.take("k", 1.0, t0 + 3_600_000_000), Ok(()));
        }
        assert_eq!(buckets.take("k", 1.0, t0 + 3_600_000_000), Err(1));
        // Waiting 4 tokens at 2 a second: 2 s.
        assert_eq!(buckets.take("k", 4.0, t0 + 3_600_000_000), Err(2));
        // check takes nothing.
        assert_eq!(buckets.check("fresh", t0), Ok(()));
        assert_eq!(buckets.check("k", t0 + 3_600_000_000), Err(1));
    }

    #[test]
    fn a_flood_of_keys_does_not_grow_memory_without_end() {
        let buckets = Buckets::new(Rate {
            per_second: 1.0,
            burst: 1.0,
        });
        for n in 0..(KEYS_MAX + 10) {
            let _ = buckets.take(&format!("k{n}"), 1.0, 0);
        }
        // Later, every bucket is full again: the next new key clears them.
        let _ = buckets.take("late", 1.0, 10_000_000);
        assert!(buckets.buckets.lock().unwrap().len() <= 12);
    }
}
