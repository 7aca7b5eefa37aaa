//! What every request handler can reach: the current snapshot and the service's health.
//! Passed explicitly through the router, never global, so each test runs its own server.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::domain::grant::Engine;
use crate::metrics::Metrics;
use crate::ratelimit::RateLimits;
use crate::revocation::RevocationList;
use crate::snapshot::{Snapshot, SnapshotCell};
use crate::store::Store;
use crate::verified::VerifiedTokens;

/// Shared state of one running server: one `Arc`, so the per-request clone axum makes
/// is a single reference-count increment.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// What [`AppState`] holds.
pub struct Shared {
    /// The in-memory view the hot path serves from.
    pub snapshot: Arc<SnapshotCell>,
    /// Whether the background refresh works (store reachable, keys open).
    pub health: Arc<Health>,
    /// Counters of what the server did.
    pub metrics: Arc<Metrics>,
    /// Revoked token ids, checked on every bearer token.
    pub revocations: Arc<RevocationList>,
    /// The store, for the few requests that write (revocation). Never on the hot path.
    pub store: Arc<dyn Store>,
    /// The OpenAPI document, serialized once.
    pub openapi_json: bytes::Bytes,
    /// Tokens already signed or verified here.
    pub verified: Arc<VerifiedTokens>,
    /// Wakes the webhook worker when a request created an event.
    pub webhook_waker: Arc<tokio::sync::Notify>,
    /// How long events created here are retried.
    pub webhook_retry_window: std::time::Duration,
    /// Most pending events per app the test trigger may leave (0: no cap).
    pub webhook_max_pending: u32,
    /// Issuance and failed-authentication budgets.
    pub limits: Arc<RateLimits>,
}

impl Shared {
    /// The snapshot to serve one request from.
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }

    /// The grant engine over `snapshot` (loaded once per request) and this server's
    /// revocation list and verified-token cache.
    pub fn engine<'a>(&'a self, snapshot: &'a Snapshot) -> Engine<'a> {
        Engine {
            snapshot,
            revoked: &self.revocations,
            verified: &self.verified,
            limits: &self.limits,
            source: None,
        }
    }
}

/// Readiness as seen by the background refresh: the hot path keeps serving from memory
/// while the store is down, but a load balancer should know.
#[derive(Debug)]
pub struct Health {
    store_reachable: AtomicBool,
}

impl Default for Health {
    fn default() -> Self {
        Self {
            store_reachable: AtomicBool::new(true),
        }
    }
}

impl Health {
    /// Records whether the last store access worked; returns the previous value, so the
    /// caller can log a transition once instead of on every attempt.
    pub fn set_store_reachable(&self, reachable: bool) -> bool {
        self.store_reachable.swap(reachable, Ordering::Relaxed)
    }

    /// Whether the store was reachable at the last check.
    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }
}
