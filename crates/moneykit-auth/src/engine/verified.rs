//! Tokens whose signature this server has already verified, so introspecting them again
//! skips the signature check (the largest cost of introspection, ~50 µs of ES256
//! verification).
//!
//! Only the SHA-256 of each verified token is kept — 32 bytes, no claims — so the cache
//! stays small and cheap to churn; the claims are parsed again from the token on each hit
//! (about a microsecond), which also means every hit is checked for expiry and issuer as
//! if new. Keys cover the whole token string, so only the exact same bytes hit: a token
//! with a changed header or claims, even with a copied signature, is a miss and is
//! verified in full (and a token in the non-canonical high-s signature form, refused by
//! [`crate::domain::tokens`], is never remembered). Memory is bounded: two generations of at most `capacity / 2` keys per
//! shard; when the current generation fills, the older one is dropped whole (no per-entry
//! bookkeeping on the hot path), and a key found in the older generation is promoted.

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use aws_lc_rs::digest::{SHA256, digest};

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
        // `[u8; 32]` hashes as its bytes: keep bytes 8..16 of the key (byte 0 already
        // chose the shard).
        if bytes.len() == 32 {
            self.0 = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
        }
    }

    fn write_usize(&mut self, _: usize) {}
}

type Set = HashSet<TokenKey, BuildHasherDefault<PrefixHasher>>;

#[derive(Default)]
struct Generations {
    current: Set,
    previous: Set,
}

/// The set of verified tokens.
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
    /// A set remembering at most about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            generation_size: (capacity / SHARDS / 2).max(1),
        }
    }

    /// Whether the token with this key was verified.
    pub fn contains(&self, key: &TokenKey) -> bool {
        let mut shard = self.shards[key.shard()].lock().expect("not poisoned");
        if shard.current.contains(key) {
            return true;
        }
        if shard.previous.remove(key) {
            self.insert_into(&mut shard, *key);
            return true;
        }
        false
    }

    /// Remembers that the token with this key has a valid signature.
    pub fn insert(&self, key: TokenKey) {
        let mut shard = self.shards[key.shard()].lock().expect("not poisoned");
        self.insert_into(&mut shard, key);
    }

    fn insert_into(&self, shard: &mut Generations, key: TokenKey) {
        if shard.current.len() >= self.generation_size {
            shard.previous = std::mem::take(&mut shard.current);
        }
        shard.current.insert(key);
    }

    /// Number of remembered tokens.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                let s = s.lock().expect("not poisoned");
                s.current.len() + s.previous.len()
            })
            .sum()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_token_hits() {
        let cache = VerifiedTokens::new(100);
        cache.insert(TokenKey::of("a.b.c"));
        assert!(cache.contains(&TokenKey::of("a.b.c")));
        assert!(!cache.contains(&TokenKey::of("a.b.c ")));
        assert!(!cache.contains(&TokenKey::of("x.b.c")));
    }

    #[test]
    fn memory_stays_bounded_and_recent_entries_survive() {
        let cache = VerifiedTokens::new(SHARDS * 2 * 10);
        for i in 0..10_000 {
            cache.insert(TokenKey::of(&format!("token {i}")));
        }
        assert!(cache.len() <= SHARDS * 2 * 10, "{}", cache.len());
        assert!(cache.contains(&TokenKey::of("token 9999")));
        assert!(!cache.contains(&TokenKey::of("token 0")));
    }
}
