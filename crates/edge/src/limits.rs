//! Rate limits: token buckets, in memory (`gureum up`: one process) or shared by every edge
//! replica in Redis (the split shape: [`Shared`]).
//!
//! Three budgets: each principal's requests ([`Limits::principal`]); each client address's
//! requests, whoever sends them and whether they authenticate ([`Limits::address`]) — a
//! ceiling on what one source may take of the edge, with any number of keys or none; and each
//! client address's failed authentications ([`Limits::failures`]) — a brute-force or
//! credential-stuffing source runs out of it and is refused (`429`) before any credential of
//! it is checked again.
//!
//! In Redis a budget is one key per principal or address holding a GCRA "theoretical arrival
//! time" (the same token bucket: a rate and a burst), updated by one Lua script that reads
//! Redis's own clock — so replicas with skewed clocks agree — and expires the key once the
//! bucket would be full again. When Redis does not answer within [`SHARED_TIMEOUT`], the edge
//! falls back to its own in-memory buckets for that request (logged at most every 10 s):
//! limits hold per replica rather than not at all, and requests are never refused because
//! Redis is down.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

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

    /// Gives back `cost` tokens [`Buckets::take`] took from `key` (a later budget of the same
    /// request refused it), up to the burst.
    pub fn refund(&self, key: &str, cost: f64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bucket) = buckets.get_mut(key) {
            bucket.tokens = (bucket.tokens + cost).min(self.rate.burst);
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
    /// Requests per client address, authenticated or not.
    pub address: Rate,
    /// Failed authentications per client address.
    pub failures: Rate,
}

impl Default for LimitsConfig {
    /// A principal: 20,000 requests a second, 40,000 at once (a payment gateway's key
    /// included; lower it per deployment). An address: 50,000 requests a second, 100,000 at
    /// once — one address may be a carrier's NAT in front of many thousands of phones, or a
    /// payment gateway using several keys, so only a ceiling — and 5 failed authentications
    /// a second, 20 at once.
    fn default() -> Self {
        LimitsConfig {
            principal: Rate {
                per_second: 20_000.0,
                burst: 40_000.0,
            },
            address: Rate {
                per_second: 50_000.0,
                burst: 100_000.0,
            },
            failures: Rate {
                per_second: 5.0,
                burst: 20.0,
            },
        }
    }
}

/// How long the edge waits for Redis before using its own buckets for a request.
pub const SHARED_TIMEOUT: Duration = Duration::from_millis(100);

/// GCRA over Redis, over one bucket or several at once: KEYS[i] a bucket; for each, four ARGV
/// — microseconds per token, the burst's worth of microseconds, the cost, `1` to take (else
/// only look). Every bucket is looked at first; only when each allows are the takes written.
/// Returns `{0, 0}` (allowed), or `{i, microseconds to wait}` for the first bucket that
/// refuses. One round trip for all of a request's budgets (the keys must live on one Redis
/// node: a single server or a primary with replicas, not a cluster's shards).
const GCRA: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local next_tats = {}
for i = 1, #KEYS do
  local b = (i - 1) * 4
  local interval = tonumber(ARGV[b + 1])
  local tolerance = tonumber(ARGV[b + 2])
  local cost = tonumber(ARGV[b + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if not tat or tat < now then tat = now end
  local new_tat = tat + cost * interval
  local wait = new_tat - now - tolerance
  if wait > 0 then return {i, math.ceil(wait)} end
  next_tats[i] = new_tat
end
for i = 1, #KEYS do
  if ARGV[(i - 1) * 4 + 4] == '1' then
    redis.call('SET', KEYS[i], string.format('%.0f', next_tats[i]), 'PX',
      math.ceil((next_tats[i] - now) / 1000) + 1)
  end
end
return {0, 0}
"#;

/// Budgets shared by every edge in Redis.
#[derive(Clone)]
pub struct Shared {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
    prefix: String,
    /// When falling back was last logged (microseconds since the epoch).
    warned_us: std::sync::Arc<AtomicI64>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password: never printed.
        f.debug_struct("Shared")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Shared {
    /// Connects to Redis at `url` (`redis://…`, `rediss://…`); keys start with `prefix`.
    /// Fails when Redis cannot be reached now (a wrong address shows at start).
    pub async fn connect(url: &str, prefix: &str) -> Result<Shared, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(SHARED_TIMEOUT))
            .set_number_of_retries(1);
        let mut connection = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        let _: String = redis::cmd("PING").query_async(&mut connection).await?;
        Ok(Shared {
            connection,
            script: redis::Script::new(GCRA),
            prefix: prefix.to_owned(),
            warned_us: std::sync::Arc::new(AtomicI64::new(0)),
        })
    }

    /// Every spend of `spends` in one script call, all or none: `Some(Ok)`, `Some(Err((index,
    /// seconds)))` for the first that refused, `None` when Redis did not answer (or a rate is
    /// not positive: the buckets in memory decide).
    async fn spend_all(&self, spends: &[Spend<'_>]) -> Option<Result<(), (usize, u64)>> {
        if spends.iter().any(|s| s.rate.per_second <= 0.0) {
            return None;
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.script.prepare_invoke();
        for s in spends {
            let interval = 1e6 / s.rate.per_second;
            invocation
                .key(format!("{}{}:{}", self.prefix, s.bucket, s.key))
                .arg(interval)
                .arg(s.rate.burst * interval)
                .arg(s.cost)
                .arg(u8::from(s.take));
        }
        let answer = tokio::time::timeout(
            SHARED_TIMEOUT,
            invocation.invoke_async::<(i64, i64)>(&mut connection),
        )
        .await;
        match answer {
            Ok(Ok((0, _))) => Some(Ok(())),
            Ok(Ok((index, wait_us))) => Some(Err((
                usize::try_from(index - 1).unwrap_or(0),
                (wait_us.max(1) as u64).div_ceil(1_000_000),
            ))),
            Ok(Err(e)) => {
                self.fell_back(&e.to_string());
                None
            }
            Err(_) => {
                self.fell_back("no answer in time");
                None
            }
        }
    }

    fn fell_back(&self, why: &str) {
        let now = store::sql::now_us();
        let last = self.warned_us.load(Ordering::Relaxed);
        if now - last >= 10_000_000
            && self
                .warned_us
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                why,
                "rate limits: Redis did not answer; this edge's own buckets apply"
            );
        }
    }
}

/// One bucket's spend in a [`Shared::spend_all`].
struct Spend<'a> {
    bucket: &'a str,
    key: &'a str,
    rate: Rate,
    cost: f64,
    take: bool,
}

/// One budget: its name in Redis, its rate, and this process's buckets.
#[derive(Debug)]
pub struct Budget {
    name: &'static str,
    rate: Rate,
    local: Buckets,
}

impl Budget {
    fn new(name: &'static str, rate: Rate) -> Budget {
        Budget {
            name,
            rate,
            local: Buckets::new(rate),
        }
    }

    /// One token of `key`'s bucket in Redis: taken, or only looked at.
    fn spend<'a>(&'a self, key: &'a str, take: bool) -> Spend<'a> {
        Spend {
            bucket: self.name,
            key,
            rate: self.rate,
            cost: 1.0,
            take,
        }
    }
}

/// Why [`Limits`] refused a request, with the seconds to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The address failed to authenticate too often.
    Failures(u64),
    /// The address sent more than its rate.
    Address(u64),
    /// The principal sent more than its rate.
    Principal(u64),
}

/// How a request that did not authenticate counts against its address's failures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// A public route: failures are not looked at.
    None,
    /// No credential: not a guess, but refused while the address is over its failures.
    Looked,
    /// A credential that did not check out: a guess, paid from the failures.
    Spent,
}

/// The gate's budgets.
#[derive(Debug)]
pub struct Limits {
    /// Requests per principal.
    pub principal: Budget,
    /// Requests per client address.
    pub address: Budget,
    /// Failed authentications per client address.
    pub failures: Budget,
    /// Redis, when the budgets are shared by every edge.
    shared: Option<Shared>,
}

impl Limits {
    /// Buckets in memory for `config`.
    pub fn new(config: LimitsConfig) -> Limits {
        Limits {
            principal: Budget::new("principal", config.principal),
            address: Budget::new("address", config.address),
            failures: Budget::new("failures", config.failures),
            shared: None,
        }
    }

    /// An authenticated request of `principal` from `client`: the address must not have
    /// spent its failed-authentication budget (nothing taken from it), and the address's and
    /// the principal's budgets pay one token each — all or nothing, in one Redis round trip
    /// when shared.
    pub async fn admit(&self, client: &str, principal: &str, now_us: i64) -> Result<(), Refusal> {
        self.spend(client, Failure::Looked, Some(principal), now_us)
            .await
    }

    /// A request from `client` that did not authenticate (or a public route's): the address
    /// pays one token, and `failure` says what its failures budget does.
    pub async fn anonymous(
        &self,
        client: &str,
        failure: Failure,
        now_us: i64,
    ) -> Result<(), Refusal> {
        self.spend(client, failure, None, now_us).await
    }

    async fn spend(
        &self,
        client: &str,
        failure: Failure,
        principal: Option<&str>,
        now_us: i64,
    ) -> Result<(), Refusal> {
        if let Some(shared) = &self.shared {
            // In this order: failures (unless a public route), address, principal (if any).
            let mut spends = Vec::with_capacity(3);
            if failure != Failure::None {
                spends.push(self.failures.spend(client, failure == Failure::Spent));
            }
            spends.push(self.address.spend(client, true));
            if let Some(principal) = principal {
                spends.push(self.principal.spend(principal, true));
            }
            match shared.spend_all(&spends).await {
                Some(Ok(())) => return Ok(()),
                Some(Err((index, seconds))) => {
                    let skipped = usize::from(failure == Failure::None);
                    return Err(match index + skipped {
                        0 => Refusal::Failures(seconds),
                        1 => Refusal::Address(seconds),
                        _ => Refusal::Principal(seconds),
                    });
                }
                None => {}
            }
        }
        match failure {
            Failure::None => {}
            Failure::Looked => self
                .failures
                .local
                .check(client, now_us)
                .map_err(Refusal::Failures)?,
            Failure::Spent => self
                .failures
                .local
                .take(client, 1.0, now_us)
                .map_err(Refusal::Failures)?,
        }
        if let Err(seconds) = self.address.local.take(client, 1.0, now_us) {
            // All or nothing, as in Redis.
            if failure == Failure::Spent {
                self.failures.local.refund(client, 1.0);
            }
            return Err(Refusal::Address(seconds));
        }
        if let Some(principal) = principal
            && let Err(seconds) = self.principal.local.take(principal, 1.0, now_us)
        {
            self.address.local.refund(client, 1.0);
            return Err(Refusal::Principal(seconds));
        }
        Ok(())
    }

    /// Keeps the budgets in `shared` (with this process's buckets when it does not answer).
    pub fn share(&mut self, shared: Shared) {
        self.shared = Some(shared);
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

    #[tokio::test]
    async fn a_request_a_later_budget_refuses_spends_nothing_of_the_earlier_ones() {
        let rate = |burst: f64| Rate {
            per_second: 0.001,
            burst,
        };
        let limits = Limits::new(LimitsConfig {
            principal: rate(1.0),
            address: rate(2.0),
            failures: rate(2.0),
        });
        let t = 1_000_000_000;
        assert_eq!(limits.admit("a", "p", t).await, Ok(()));
        // The principal's budget is spent: refused, and the address keeps its token.
        assert!(matches!(
            limits.admit("a", "p", t).await,
            Err(Refusal::Principal(_))
        ));
        // A wrong credential from the address: one failure and the address's last token.
        assert_eq!(limits.anonymous("a", Failure::Spent, t).await, Ok(()));
        // The next is refused for the address's rate, and its failure is not counted.
        assert!(matches!(
            limits.anonymous("a", Failure::Spent, t).await,
            Err(Refusal::Address(_))
        ));
        assert_eq!(limits.failures.local.check("a", t), Ok(()));
        assert_eq!(limits.failures.local.take("a", 1.0, t), Ok(()));
        assert!(limits.failures.local.check("a", t).is_err());
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
