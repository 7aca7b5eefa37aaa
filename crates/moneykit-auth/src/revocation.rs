//! The in-memory revocation list the hot path checks.
//!
//! Revocations are durable in the store (RFC 7009 revocation is final and must survive a
//! restart) but checked from memory: a map from token id to expiry, swapped atomically on
//! change so readers never lock. Servers pick up each other's revocations incrementally by
//! sequence number on every background refresh, and an entry is dropped once its token
//! has expired, because an expired token is refused anyway.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;

use crate::domain::EXPIRY_LEEWAY_SECS;

/// A revoked token as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedToken {
    /// Store order; assigned by the store.
    pub seq: i64,
    /// The token's `jti`.
    pub jti: String,
    /// The client it was issued to.
    pub client_id: String,
    /// The token's `exp` (Unix seconds): after this the entry can be forgotten.
    pub expires_at: i64,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
}

/// Revoked token ids with their expiry.
#[derive(Debug, Default)]
pub struct RevocationList {
    entries: ArcSwap<HashMap<String, i64>>,
    last_seq: AtomicI64,
}

impl RevocationList {
    /// Whether the token with this `jti` is revoked.
    pub fn is_revoked(&self, jti: &str) -> bool {
        let entries = self.entries.load();
        !entries.is_empty() && entries.contains_key(jti)
    }

    /// The highest store sequence number applied so far.
    pub fn last_seq(&self) -> i64 {
        self.last_seq.load(Ordering::Acquire)
    }

    /// Number of entries held.
    pub fn len(&self) -> usize {
        self.entries.load().len()
    }

    /// Whether no token is revoked.
    pub fn is_empty(&self) -> bool {
        self.entries.load().is_empty()
    }

    /// Adds revocations read from the store (or made here), copying the map once per
    /// batch that holds anything new (a revocation made here comes back from the store
    /// on the next refresh, and costs nothing then). Only the background refresh and revocation requests write, and writes are
    /// rare next to reads.
    pub fn apply(&self, revoked: &[RevokedToken]) {
        let current = self.entries.load();
        if revoked.iter().any(|r| !current.contains_key(&r.jti)) {
            self.entries.rcu(|current| {
                let mut next = HashMap::clone(current);
                for r in revoked {
                    next.insert(r.jti.clone(), r.expires_at);
                }
                next
            });
        }
        if let Some(max) = revoked.iter().map(|r| r.seq).max() {
            self.last_seq.fetch_max(max, Ordering::AcqRel);
        }
    }

    /// Drops entries whose tokens expired (with leeway) before `now` (Unix seconds).
    pub fn prune(&self, now: i64) {
        let stale = |exp: i64| exp + EXPIRY_LEEWAY_SECS < now;
        if !self.entries.load().values().any(|&exp| stale(exp)) {
            return;
        }
        self.entries.rcu(|current| {
            let next: HashMap<String, i64> = current
                .iter()
                .filter(|(_, exp)| !stale(**exp))
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            Arc::new(next)
        });
    }
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
    }
}
