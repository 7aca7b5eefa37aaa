//! The JWKS cache shared by the webhook [`crate::webhooks::Verifier`] and the
//! [`crate::AccessTokenVerifier`]: ES256 keys by `kid`, refetched when a `kid` is unknown,
//! but at most once per `min_refetch_interval`, so forged `kid`s cannot make a verifier
//! hammer the JWKS endpoint.
//!
//! Lookups read a snapshot under a short `std` lock; a refetch runs under an async mutex,
//! so concurrent misses share one fetch and lookups of known keys never wait for it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_wire::{Jwk, JwkSet};
use tokio::time::Instant;

type Keys = HashMap<String, Arc<ParsedPublicKey>>;

#[derive(Debug)]
pub(crate) struct JwksCache {
    keys: RwLock<Arc<Keys>>,
    /// When the last fetch was attempted (successful or not); held while fetching.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
    pub(crate) min_refetch_interval: Duration,
}

impl JwksCache {
    /// An empty cache: the first unknown `kid` fetches.
    pub(crate) fn new(min_refetch_interval: Duration) -> Self {
        Self {
            keys: RwLock::default(),
            last_fetch: tokio::sync::Mutex::new(None),
            min_refetch_interval,
        }
    }

    /// A cache holding `jwks`, counted as just fetched.
    pub(crate) fn with_keys(jwks: &JwkSet, min_refetch_interval: Duration) -> Self {
        let cache = Self {
            last_fetch: tokio::sync::Mutex::new(Some(Instant::now())),
            ..Self::new(min_refetch_interval)
        };
        cache.install(jwks);
        cache
    }

    /// The cached key named `kid`, without fetching.
    pub(crate) fn get(&self, kid: &str) -> Option<Arc<ParsedPublicKey>> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(kid)
            .cloned()
    }

    /// Replaces the cached keys with the ES256 keys of `jwks`.
    fn install(&self, jwks: &JwkSet) {
        let keys: Keys = jwks
            .keys
            .iter()
            .filter_map(|jwk| Some((jwk.kid.clone()?, Arc::new(parse_es256_jwk(jwk)?))))
            .collect();
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
    }

    /// The key named `kid`, calling `fetch` for a fresh JWKS first if it is unknown and
    /// the last fetch is at least the minimum interval old. `Ok(None)`: still unknown.
    pub(crate) async fn get_or_refetch<E, Fut>(
        &self,
        kid: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<Option<Arc<ParsedPublicKey>>, E>
    where
        Fut: Future<Output = Result<JwkSet, E>>,
    {
        if let Some(key) = self.get(kid) {
            return Ok(Some(key));
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Whoever held the lock before may just have fetched the key.
        if let Some(key) = self.get(kid) {
            return Ok(Some(key));
        }
        if last_fetch.is_some_and(|at| at.elapsed() < self.min_refetch_interval) {
            return Ok(None);
        }
        self.fetch_locked(&mut last_fetch, fetch).await?;
        Ok(self.get(kid))
    }

    /// Fetches now, whatever the interval (an explicit refresh by the application).
    pub(crate) async fn refresh<E, Fut>(&self, fetch: impl FnOnce() -> Fut) -> Result<(), E>
    where
        Fut: Future<Output = Result<JwkSet, E>>,
    {
        let mut last_fetch = self.last_fetch.lock().await;
        self.fetch_locked(&mut last_fetch, fetch).await
    }

    async fn fetch_locked<E, Fut>(
        &self,
        last_fetch: &mut Option<Instant>,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<(), E>
    where
        Fut: Future<Output = Result<JwkSet, E>>,
    {
        // A failed attempt counts too: an unreachable JWKS endpoint is not retried for
        // every forged token either.
        *last_fetch = Some(Instant::now());
        let jwks = fetch().await?;
        self.install(&jwks);
        Ok(())
    }
}

/// The P-256 public key of an ES256 JWK; `None` for keys of any other kind.
fn parse_es256_jwk(jwk: &Jwk) -> Option<ParsedPublicKey> {
    if jwk.kty != "EC" || jwk.crv.as_deref() != Some("P-256") {
        return None;
    }
    if jwk.alg.as_deref().is_some_and(|a| a != "ES256") {
        return None;
    }
    if jwk.use_.as_deref().is_some_and(|u| u != "sig") {
        return None;
    }
    let x = URL_SAFE_NO_PAD.decode(jwk.x.as_deref()?).ok()?;
    let y = URL_SAFE_NO_PAD.decode(jwk.y.as_deref()?).ok()?;
    if x.len() != 32 || y.len() != 32 {
        return None;
    }
    let point = [&[0x04][..], &x, &y].concat();
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).ok()
}
