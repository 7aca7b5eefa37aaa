//! Tokens this server has already verified, so introspecting them again skips the
//! signature check (the largest cost of introspection, ~50 µs of ES256 verification).
//!
//! Keys are the SHA-256 of the whole token string, so only the exact same bytes hit the
//! cache: a token with a changed header or claims, even with a copied signature, is a miss
//! and is verified in full. Memory is bounded: two generations of at most
//! `capacity / 2` entries each per shard; when the current generation fills, the older
//! one is dropped whole (no per-entry bookkeeping on the hot path), and an entry found in
//! the older generation is promoted. Expiry is not the cache's concern: callers check
//! `exp` on every hit, so an entry that outlives its token only costs memory until it is
//! pushed out.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

use aws_lc_rs::digest::{SHA256, digest};

use crate::domain::tokens::AccessClaims;

const SHARDS: usize = 16;

/// The cache key: SHA-256 of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenKey([u8; 32]);

impl TokenKey {
    /// The key of a token string.
    pub fn of(token: &str) -> Self {
        let mut key = [0u8; 32];
        key.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
        Self(key)
    }

    fn shard(&self) -> usize {
        usize::from(self.0[0]) % SHARDS
    }
}

/// The keys are already uniformly random: hashing them again is wasted work.
#[derive(Default)]
struct PrefixHasher(u64);

impl Hasher for PrefixHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its length, then its bytes: keep bytes 8..16 of the key
        // (byte 0 already chose the shard).
        if bytes.len() == 32 {
            self.0 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

type Map = HashMap<TokenKey, Arc<AccessClaims>, BuildHasherDefault<PrefixHasher>>;

#[derive(Default)]
struct Generations {
    current: Map,
    previous: Map,
}

/// The cache of verified tokens.
pub struct VerifiedTokens {
    shards: Vec<Mutex<Generations>>,
    generation_size: usize,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens")
            .field("capacity", &(self.generation_size * 2 * SHARDS))
            .field("len", &self.len())
            .finish()
    }
}

impl VerifiedTokens {
    /// A cache holding at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation_size: (capacity / SHARDS / 2).max(1),
        }
    }

    /// The claims of a token known to be validly signed, if cached.
    pub fn get(&self, key: &TokenKey) -> Option<Arc<AccessClaims>> {
        let mut shard = self.shards[key.shard()].lock().expect("not poisoned");
        if let Some(claims) = shard.current.get(key) {
            return Some(claims.clone());
        }
        let claims = shard.previous.remove(key)?;
        self.insert_into(&mut shard, *key, claims.clone());
        Some(claims)
    }

    /// Remembers that `key`'s token is validly signed with these claims.
    pub fn insert(&self, key: TokenKey, claims: Arc<AccessClaims>) {
        let mut shard = self.shards[key.shard()].lock().expect("not poisoned");
        self.insert_into(&mut shard, key, claims);
    }

    fn insert_into(&self, shard: &mut Generations, key: TokenKey, claims: Arc<AccessClaims>) {
        if shard.current.len() >= self.generation_size {
            shard.previous = std::mem::take(&mut shard.current);
        }
        shard.current.insert(key, claims);
    }

    /// Number of cached tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().expect("not poisoned");
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(jti: &str) -> Arc<AccessClaims> {
        Arc::new(AccessClaims {
            iss: "i".into(),
            sub: "s".into(),
            client_id: "s".into(),
            app_id: "a".into(),
            scope: String::new(),
            iat: 0,
            exp: 1,
            jti: jti.into(),
        })
    }

    #[test]
    fn only_the_exact_token_hits() {
        let cache = VerifiedTokens::new(100);
        cache.insert(TokenKey::of("a.b.c"), claims("1"));
        assert_eq!(cache.get(&TokenKey::of("a.b.c")).unwrap().jti, "1");
        assert!(cache.get(&TokenKey::of("a.b.c ")).is_none());
        assert!(cache.get(&TokenKey::of("x.b.c")).is_none());
    }

    #[test]
    fn memory_stays_bounded_and_recent_entries_survive() {
        let cache = VerifiedTokens::new(SHARDS * 2 * 10);
        for i in 0..10_000 {
            cache.insert(TokenKey::of(&format!("token {i}")), claims(&i.to_string()));
        }
        assert!(cache.len() <= SHARDS * 2 * 10, "{}", cache.len());
        assert!(cache.get(&TokenKey::of("token 9999")).is_some());
        assert!(cache.get(&TokenKey::of("token 0")).is_none());
    }
}
