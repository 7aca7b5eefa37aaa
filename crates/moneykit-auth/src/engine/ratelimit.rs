//! Rate limits: token buckets in memory, bounded in size (RFC 6819 §5.1.4.2.3, RFC 9700 §4.15).
//!
//! Three limiters guard client authentication, one revocation, and two (per app and per
//! client) the test webhook trigger, which writes to the database:
//! - **issuance per client**: how many tokens an authenticated client may get (a client
//!   should cache its token for its lifetime, not fetch one per call);
//! - **failures per source address** (an IPv6 source per /64: [`source_key`]): an
//!   address over its budget of failed authentications is refused outright, correct
//!   credentials or not — brute force and credential stuffing from one place stop there,
//!   and nobody else is affected;
//! - **failures per client id**: a client id over its budget answers wrong secrets with
//!   429 instead of 401. Correct secrets still pass, so an attacker cannot lock a real
//!   client out from elsewhere (guessing a 256-bit secret is hopeless anyway; this limiter
//!   makes distributed attempts on one id slow and visible);
//! - **revocations per client**: every RFC 7009 revocation of a valid token is a durable
//!   write, so one client cannot turn revocation into a write flood.
//!
//! Each limiter holds at most `max_tracked` keys, in shards with their own locks; a full
//! shard first forgets keys whose buckets have refilled (indistinguishable from new ones),
//! then the oldest. So an attacker cycling through random client ids or addresses cannot
//! grow memory, and the cost on the hot path is one hash and one uncontended lock.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::net::source_key;

/// A sustained rate with a burst allowance. `per_second == 0` disables the limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket size: how many may be spent at once after a quiet period.
    pub burst: f64,
}

impl Rate {
    /// No limit.
    pub const UNLIMITED: Rate = Rate {
        per_second: 0.0,
        burst: 0.0,
    };

    /// `count` per `period`, all of it available at once.
    pub fn per(count: u32, period: Duration) -> Self {
        Rate {
            per_second: f64::from(count) / period.as_secs_f64(),
            burst: f64::from(count),
        }
    }

    fn is_unlimited(&self) -> bool {
        self.per_second <= 0.0
    }
}

/// The three limits and how many keys each may track.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimitSettings {
    /// Tokens one client may be issued.
    pub issuance_per_client: Rate,
    /// Failed authentications one source address may make.
    pub failures_per_address: Rate,
    /// Failed authentications against one client id.
    pub failures_per_client: Rate,
    /// Revocation requests one client may make.
    pub revocations_per_client: Rate,
    /// Test webhooks (`POST /webhooks/test/link/{id}`) one app may trigger.
    pub webhook_tests_per_app: Rate,
    /// Test webhooks one client may trigger.
    pub webhook_tests_per_client: Rate,
    /// Most keys each limiter remembers.
    pub max_tracked: usize,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            // Defaults never touch a well-behaved client (≥ 1000 tokens/s).
            issuance_per_client: Rate {
                per_second: 1000.0,
                burst: 2000.0,
            },
            failures_per_address: Rate::per(60, Duration::from_secs(60)),
            failures_per_client: Rate::per(20, Duration::from_secs(60)),
            revocations_per_client: Rate::per(600, Duration::from_secs(60)),
            webhook_tests_per_app: Rate::per(120, Duration::from_secs(60)),
            webhook_tests_per_client: Rate::per(60, Duration::from_secs(60)),
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
    }

    fn wait_for_one(&self, rate: Rate) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / rate.per_second).max(0.0))
    }
}

const SHARDS: usize = 16;

/// One token-bucket limiter over keys `K`.
#[derive(Debug)]
pub struct Limiter<K> {
    rate: Rate,
    shards: Vec<Mutex<HashMap<K, Bucket>>>,
    per_shard: usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    /// A limiter at `rate` remembering at most about `max_tracked` keys.
    pub fn new(rate: Rate, max_tracked: usize) -> Self {
        Self {
            rate,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: max_tracked.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<HashMap<K, Bucket>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// Spends one token of `key`'s bucket; `Err(wait)` when empty, with how long until
    /// one is back. A borrowed key (`&str` for `String` keys) is copied only the first
    /// time it is seen, so a known client costs no allocation.
    pub fn take<Q>(&self, key: &Q, now: Instant) -> Result<(), Duration>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.rate.is_unlimited() {
            return Ok(());
        }
        let mut shard = self.shard(key).lock().expect("not poisoned");
        let spend = |bucket: &mut Bucket| {
            bucket.refill(self.rate, now);
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(bucket.wait_for_one(self.rate))
            }
        };
        if let Some(bucket) = shard.get_mut(key) {
            return spend(bucket);
        }
        if shard.len() >= self.per_shard {
            self.make_room(&mut shard, now);
        }
        let mut fresh = Bucket {
            tokens: self.rate.burst,
            updated: now,
        };
        let spent = spend(&mut fresh);
        shard.insert(key.to_owned(), fresh);
        spent
    }

    /// Whether `key`'s bucket is empty (without spending): `Some(wait)` if so.
    pub fn exhausted(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.rate.is_unlimited() {
            return None;
        }
        let mut shard = self.shard(key).lock().expect("not poisoned");
        let bucket = shard.get_mut(key)?;
        bucket.refill(self.rate, now);
        (bucket.tokens < 1.0).then(|| bucket.wait_for_one(self.rate))
    }

    /// Keys currently tracked.
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("not poisoned").len())
            .sum()
    }

    fn make_room(&self, shard: &mut HashMap<K, Bucket>, now: Instant) {
        let rate = self.rate;
        shard.retain(|_, b| {
            let mut b = *b;
            b.refill(rate, now);
            b.tokens < rate.burst
        });
        if shard.len() >= self.per_shard
            && let Some(oldest) = shard
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone())
        {
            shard.remove(&oldest);
        }
    }
}

/// The service's limiters.
#[derive(Debug)]
pub struct RateLimits {
    issuance: Limiter<String>,
    failures_by_address: Limiter<IpAddr>,
    failures_by_client: Limiter<String>,
    revocations: Limiter<String>,
    webhook_tests_by_app: Limiter<String>,
    webhook_tests_by_client: Limiter<String>,
}

impl RateLimits {
    /// Limiters with `settings`.
    pub fn new(settings: RateLimitSettings) -> Self {
        Self {
            issuance: Limiter::new(settings.issuance_per_client, settings.max_tracked),
            failures_by_address: Limiter::new(settings.failures_per_address, settings.max_tracked),
            failures_by_client: Limiter::new(settings.failures_per_client, settings.max_tracked),
            revocations: Limiter::new(settings.revocations_per_client, settings.max_tracked),
            webhook_tests_by_app: Limiter::new(
                settings.webhook_tests_per_app,
                settings.max_tracked,
            ),
            webhook_tests_by_client: Limiter::new(
                settings.webhook_tests_per_client,
                settings.max_tracked,
            ),
        }
    }

    /// Before authentication: `Err(wait)` if `source` spent its budget of failures.
    pub fn check_source(&self, source: Option<IpAddr>) -> Result<(), Duration> {
        let key = source.map(source_key);
        match key.and_then(|ip| self.failures_by_address.exhausted(&ip, Instant::now())) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// After a failed authentication: counts it against the address and the client id
    /// (when the request named one); `Err(wait)` if either budget is now spent (the
    /// caller answers 429 instead of 401).
    pub fn record_failure(
        &self,
        source: Option<IpAddr>,
        client_id: Option<&str>,
    ) -> Result<(), Duration> {
        let now = Instant::now();
        let by_address = source.map_or(Ok(()), |ip| {
            self.failures_by_address.take(&source_key(ip), now)
        });
        // Client ids are attacker-chosen: bound what is kept of them.
        let by_client = client_id.map_or(Ok(()), |client_id| {
            let end = client_id
                .char_indices()
                .nth(64)
                .map_or(client_id.len(), |(i, _)| i);
            self.failures_by_client.take(&client_id[..end], now)
        });
        match (by_address, by_client) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Err(b)) => Err(a.max(b)),
            (Err(wait), _) | (_, Err(wait)) => Err(wait),
        }
    }

    /// After successful authentication, before signing: one token of `client_id`'s
    /// issuance budget; `Err(wait)` when it is spent.
    pub fn take_issuance(&self, client_id: &str) -> Result<(), Duration> {
        self.issuance.take(client_id, Instant::now())
    }

    /// Before a revocation by an authenticated client: one of its revocation budget;
    /// `Err(wait)` when it is spent.
    pub fn take_revocation(&self, client_id: &str) -> Result<(), Duration> {
        self.revocations.take(client_id, Instant::now())
    }

    /// Before queuing a test webhook: one token of the client's budget, then one of its
    /// app's (shared by the app's clients); `Err(wait)` when either is spent. A request
    /// the client's budget refuses costs the app nothing. Both ids come from a verified
    /// token, so they are bounded and not attacker-chosen.
    pub fn take_webhook_test(&self, app_id: &str, client_id: &str) -> Result<(), Duration> {
        let now = Instant::now();
        self.webhook_tests_by_client.take(client_id, now)?;
        self.webhook_tests_by_app.take(app_id, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_the_rate() {
        let limiter = Limiter::new(
            Rate {
                per_second: 10.0,
                burst: 3.0,
            },
            100,
        );
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(&"k", t0).is_ok());
        }
        let wait = limiter.take(&"k", t0).unwrap_err();
        assert!(wait > Duration::from_millis(90) && wait <= Duration::from_millis(100));
        assert!(limiter.take(&"k", t0 + Duration::from_millis(100)).is_ok());
        assert!(limiter.take(&"other", t0).is_ok(), "keys are independent");
        assert!(Limiter::new(Rate::UNLIMITED, 1).take(&"k", t0).is_ok());
    }

    #[test]
    fn test_webhooks_are_budgeted_per_client_and_per_app() {
        let limits = RateLimits::new(RateLimitSettings {
            webhook_tests_per_app: Rate::per(5, Duration::from_secs(60)),
            webhook_tests_per_client: Rate::per(3, Duration::from_secs(60)),
            ..RateLimitSettings::default()
        });
        for _ in 0..3 {
            assert!(limits.take_webhook_test("app_a", "live_1").is_ok());
        }
        let wait = limits.take_webhook_test("app_a", "live_1").unwrap_err();
        assert!(wait > Duration::from_secs(19) && wait <= Duration::from_secs(20));
        assert!(
            limits.take_webhook_test("app_a", "live_1").is_err(),
            "refused by the client's budget, so the app's is not spent"
        );
        assert!(limits.take_webhook_test("app_a", "live_2").is_ok());
        assert!(limits.take_webhook_test("app_a", "live_2").is_ok());
        assert!(
            limits.take_webhook_test("app_a", "live_2").is_err(),
            "the app's five are spent across its clients"
        );
        assert!(limits.take_webhook_test("app_b", "live_3").is_ok());
    }

    #[test]
    fn memory_is_bounded_whatever_the_keys() {
        let limiter = Limiter::new(Rate::per(5, Duration::from_secs(60)), 1_000);
        let now = Instant::now();
        for i in 0..50_000 {
            let _ = limiter.take(&format!("random-{i}"), now);
        }
        assert!(limiter.tracked() <= 1_000 + SHARDS, "{}", limiter.tracked());
    }

    #[test]
    fn an_address_over_budget_is_refused_but_a_client_id_over_budget_only_for_failures() {
        let limits = RateLimits::new(RateLimitSettings {
            failures_per_address: Rate::per(3, Duration::from_secs(60)),
            failures_per_client: Rate::per(4, Duration::from_secs(60)),
            ..RateLimitSettings::default()
        });
        let attacker = Some("203.0.113.7".parse().unwrap());
        let elsewhere = Some("198.51.100.1".parse().unwrap());
        for _ in 0..2 {
            assert!(limits.record_failure(attacker, Some("live_x")).is_ok());
        }
        assert!(
            limits.record_failure(attacker, Some("live_x")).is_ok(),
            "third is the last"
        );
        assert!(limits.record_failure(attacker, Some("live_x")).is_err());
        assert!(
            limits.check_source(attacker).is_err(),
            "refused outright now"
        );
        assert!(limits.check_source(elsewhere).is_ok(), "others are not");
        assert!(
            limits.record_failure(elsewhere, Some("live_x")).is_err(),
            "id budget spent"
        );
        assert!(
            limits.check_source(elsewhere).is_ok(),
            "but that address may still try"
        );
    }

    #[test]
    fn ipv6_sources_share_a_budget_per_64_and_mapped_ipv4_counts_as_ipv4() {
        let limits = RateLimits::new(RateLimitSettings {
            failures_per_address: Rate::per(2, Duration::from_secs(60)),
            failures_per_client: Rate::UNLIMITED,
            ..RateLimitSettings::default()
        });
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert!(
            limits
                .record_failure(ip("2001:db8:1:2::1"), Some("a"))
                .is_ok()
        );
        assert!(
            limits
                .record_failure(ip("2001:db8:1:2:ffff::9"), Some("a"))
                .is_ok()
        );
        assert!(
            limits.check_source(ip("2001:db8:1:2:abcd::7")).is_err(),
            "one /64 is one source"
        );
        assert!(
            limits.check_source(ip("2001:db8:1:3::1")).is_ok(),
            "the next /64 is not"
        );

        assert!(
            limits
                .record_failure(ip("::ffff:203.0.113.7"), Some("a"))
                .is_ok()
        );
        assert!(limits.record_failure(ip("203.0.113.7"), Some("a")).is_ok());
        assert!(limits.check_source(ip("203.0.113.7")).is_err());
        assert!(
            limits.check_source(ip("203.0.113.8")).is_ok(),
            "IPv4 stays per address"
        );
    }
}
