//! Client assertions already used (RFC 7523 §3, item 7: a `jti` is accepted once while
//! its assertion could still be valid). This process's memory catches a replay here at
//! once; on PostgreSQL the store also records each use, so a replay at another replica is
//! refused too (`Store::record_assertion`).
//!
//! Only assertions whose signature verified are recorded, so only holders of a client's
//! key can add entries; entries leave when their assertion expires. The set is sharded to
//! keep lock hold times short, and capped: past the cap, new assertions are refused
//! (failing closed) until old ones expire.

use std::collections::HashMap;
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};

/// Shards of the set: independent locks.
const SHARDS: usize = 16;

/// The id of one client's assertion: the first 128 bits of SHA-256 of the client id and
/// the `jti`, so every entry has the same small size whatever the client chose as its
/// `jti` (128 bits: no collision among the few million assertions alive at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AssertionId([u8; 16]);

impl AssertionId {
    /// The id of `client_id`'s assertion `jti`.
    pub fn of(client_id: &str, jti: &str) -> Self {
        let mut input = Vec::with_capacity(client_id.len() + 1 + jti.len());
        input.extend_from_slice(client_id.as_bytes());
        input.push(0);
        input.extend_from_slice(jti.as_bytes());
        let d = digest(&SHA256, &input);
        let mut out = [0u8; 16];
        out.copy_from_slice(&d.as_ref()[..16]);
        Self(out)
    }

    /// Hex, as the store keeps it.
    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }
}

/// A JWT accepted here that must not be accepted again — a client assertion or a DPoP
/// proof: what the store records so no replica takes it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedAssertion {
    /// Digest of its signer and `jti`.
    pub id: AssertionId,
    /// Until when it could be accepted (Unix seconds).
    pub expires_at: i64,
    /// Which kind of JWT, for the answer to a replay.
    pub kind: UsedKind,
}

/// The kinds of single-use JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsedKind {
    /// A `private_key_jwt` client assertion.
    ClientAssertion,
    /// A DPoP proof.
    DpopProof,
}

/// How long a client is told to wait when a replay set is full.
pub const REPLAY_FULL_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

/// Why an assertion was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// Seen before.
    #[error("the jti has been used before")]
    Replayed,
    /// The set is full of unexpired assertions.
    #[error("too many client assertions in flight; try again shortly")]
    Full,
}

/// Assertions used and not yet expired.
#[derive(Debug)]
pub struct ReplayCache {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

/// One shard: used assertions with their expiry, and the earliest expiry among them, so
/// a full shard is swept only when something in it can have expired (not on every
/// request while it stays full).
#[derive(Debug, Default)]
struct Shard {
    used: HashMap<AssertionId, i64>,
    earliest: i64,
}

impl ReplayCache {
    /// A set holding at most `capacity` unexpired assertions.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    /// Records `id` as used until `expires_at` (Unix seconds), unless it was used before.
    pub fn take(&self, id: AssertionId, expires_at: i64, now: i64) -> Result<(), ReplayError> {
        let mut shard = self.shards[usize::from(id.0[0]) % SHARDS]
            .lock()
            .expect("not poisoned");
        if shard.used.get(&id).is_some_and(|&exp| exp >= now) {
            return Err(ReplayError::Replayed);
        }
        if shard.used.len() >= self.per_shard {
            if shard.earliest >= now {
                return Err(ReplayError::Full);
            }
            shard.used.retain(|_, exp| *exp >= now);
            shard.earliest = shard.used.values().copied().min().unwrap_or(i64::MAX);
            if shard.used.len() >= self.per_shard {
                return Err(ReplayError::Full);
            }
        }
        shard.earliest = if shard.used.is_empty() {
            expires_at
        } else {
            shard.earliest.min(expires_at)
        };
        shard.used.insert(id, expires_at);
        Ok(())
    }

    /// How many assertions are recorded, expired ones not yet dropped included.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().expect("not poisoned").used.len())
            .sum()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_assertion_is_taken_once_until_it_expires() {
        let cache = ReplayCache::new(100);
        let id = AssertionId::of("live_1", "j1");
        assert_eq!(cache.take(id, 1060, 1000), Ok(()));
        assert_eq!(cache.take(id, 1060, 1001), Err(ReplayError::Replayed));
        // Another client's jti of the same value is another assertion.
        assert_eq!(
            cache.take(AssertionId::of("live_2", "j1"), 1060, 1001),
            Ok(())
        );
        // Client id and jti cannot be shifted into each other.
        assert_ne!(
            AssertionId::of("live_1", "2j"),
            AssertionId::of("live_12", "j")
        );
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn the_cap_holds_and_expired_entries_make_room() {
        let cache = ReplayCache::new(SHARDS);
        let mut refused = 0;
        for i in 0..10_000 {
            if cache
                .take(AssertionId::of("c", &i.to_string()), 2000, 1000)
                .is_err()
            {
                refused += 1;
            }
        }
        assert!(cache.len() <= SHARDS, "{}", cache.len());
        assert!(refused >= 10_000 - SHARDS);
        // Once they expire, new ones fit again.
        assert_eq!(cache.take(AssertionId::of("c", "new"), 3000, 2001), Ok(()));
    }
}
