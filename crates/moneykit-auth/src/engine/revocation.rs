//! The in-memory revocation list the hot path checks.
//!
//! Revocations are durable in the store (RFC 7009 revocation is final and must survive a
//! restart) but checked from memory: maps from token id to expiry, split into shards
//! behind read-write locks. A check takes one uncontended read lock (none at all while
//! nothing is revoked); a revocation inserts into one shard, so its cost does not grow with
//! the number already revoked. Servers pick up each other's revocations incrementally by
//! sequence number on every background refresh, and an entry is dropped once its token
//! has expired, because an expired token is refused anyway.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::domain::EXPIRY_LEEWAY_SECS;
use crate::domain::tokens::RevokedToken;
use crate::store::{Store, StoreError};

const SHARDS: usize = 16;

/// Revoked token ids with their expiry.
#[derive(Debug)]
pub struct RevocationList {
    shards: Vec<RwLock<HashMap<String, i64>>>,
    hasher: std::hash::RandomState,
    len: AtomicUsize,
    last_seq: AtomicI64,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            hasher: std::hash::RandomState::new(),
            len: AtomicUsize::new(0),
            last_seq: AtomicI64::new(0),
        }
    }
}

impl RevocationList {
    fn shard(&self, jti: &str) -> &RwLock<HashMap<String, i64>> {
        &self.shards[self.hasher.hash_one(jti) as usize % SHARDS]
    }

    /// Whether the token with this `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        self.len.load(Ordering::Acquire) > 0
            && self
                .shard(jti)
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(jti)
    }

    /// The highest store sequence number applied so far.
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether no token is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds revocations read from the store (or made here). Re-applying one is free of
    /// effect: a revocation made here comes back from the store on the next refresh.
    pub fn apply(&self, revoked: &[RevokedToken]) {
        for r in revoked {
            let mut shard = self
                .shard(&r.jti)
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            if shard.insert(r.jti.clone(), r.expires_at).is_none() {
                self.len.fetch_add(1, Ordering::AcqRel);
            }
        }
        if let Some(max) = revoked.iter().map(|r| r.seq).max() {
            self.last_seq.fetch_max(max, Ordering::AcqRel);
        }
    }

    /// Drops entries whose tokens expired (with leeway) before `now` (Unix seconds).
    pub fn prune(&self, now: i64) {
        for shard in &self.shards {
            let mut shard = shard.write().unwrap_or_else(PoisonError::into_inner);
            let before = shard.len();
            shard.retain(|_, exp| exp.saturating_add(EXPIRY_LEEWAY_SECS) >= now);
            self.len.fetch_sub(before - shard.len(), Ordering::AcqRel);
        }
    }
}

/// Records a revocation: durably first (RFC 7009 revocation is final and survives a
/// restart), then in this server's list, so it takes effect here at once; other servers
/// pick it up on their next refresh. Nothing is applied if the store refused it.
pub async fn record(
    store: &dyn Store,
    list: &RevocationList,
    revoked: RevokedToken,
) -> Result<RevokedToken, StoreError> {
    store.insert_revocation(&revoked).await?;
    list.apply(std::slice::from_ref(&revoked));
    Ok(revoked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(seq: i64, jti: &str, exp: i64) -> RevokedToken {
        RevokedToken {
            seq,
            jti: jti.into(),
            client_id: "c".into(),
            expires_at: exp,
            revoked_at: 0,
        }
    }

    #[test]
    fn applied_revocations_are_found_and_pruned_after_expiry() {
        let list = RevocationList::default();
        assert!(!list.is_revoked("a"));
        list.apply(&[revoked(3, "a", 100), revoked(5, "b", 200)]);
        assert!(list.is_revoked("a") && list.is_revoked("b"));
        assert_eq!(list.last_seq(), 5);
        list.prune(100 + EXPIRY_LEEWAY_SECS);
        assert!(list.is_revoked("a"), "kept within the leeway");
        list.prune(100 + EXPIRY_LEEWAY_SECS + 1);
        assert!(!list.is_revoked("a"));
        assert!(list.is_revoked("b"));
        assert_eq!(list.len(), 1);
        list.apply(&[revoked(4, "c", 300)]);
        assert_eq!(list.last_seq(), 5, "sequence never goes back");
        list.apply(&[revoked(6, "c", 300)]);
        assert_eq!(list.len(), 2, "re-applying counts once");
        list.prune(1000);
        assert!(list.is_empty() && !list.is_revoked("c"));
    }
}
