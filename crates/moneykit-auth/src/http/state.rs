//! What handlers reach: [`AppState`] for the public routes (the snapshot, the engine, the
//! counters), [`AdminState`] for the admin API. Passed explicitly through the routers,
//! never global, so each test runs its own server.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::AuthenticatedForm;
use crate::crypto::MasterKey;
use crate::engine::Engine;
use crate::engine::grant::IssuedToken;
use crate::engine::ratelimit::RateLimits;
use crate::engine::refresh::Health;
use crate::engine::revocation::RevocationList;
use crate::engine::snapshot::{Snapshot, SnapshotCell};
use crate::engine::verified::VerifiedTokens;
use crate::metrics::Metrics;
use crate::net::guard::TargetPolicy;
use crate::store::Store;

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

    /// Runs the client-credentials grant for a parsed request and counts the token: what
    /// both token endpoints share before shaping their own response.
    pub fn issue_token(
        &self,
        form: &AuthenticatedForm<'_>,
        source: Option<std::net::IpAddr>,
    ) -> Result<IssuedToken, ApiError> {
        let snapshot = self.snapshot();
        let issued = self
            .engine(&snapshot)
            .from_source(source)
            .client_credentials(&form.as_grant_request(), OffsetDateTime::now_utc())
            .map_err(|e| ApiError::from_grant(e, form.used_basic()))?;
        self.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client_id = %issued.claims.client_id, "issued token");
        Ok(issued)
    }
}

/// What the admin API reaches.
pub struct AdminState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// For `/metrics`.
    pub metrics: Arc<Metrics>,
    /// For key ages.
    pub snapshot: Arc<SnapshotCell>,
    /// For the readiness gauge.
    pub health: Arc<Health>,
    /// Seals keys created by `POST /admin/keys/rotate`.
    pub master: MasterKey,
    /// How long a rotated-in key is published before it signs.
    pub key_activation_delay: time::Duration,
    /// How long events queued here are retried.
    pub webhook_retry_window: std::time::Duration,
    /// Wakes this process's webhook worker.
    pub webhook_waker: Arc<tokio::sync::Notify>,
    /// The server's webhook target policy: what `PUT /admin/apps/{id}/webhook` checks a
    /// URL against (a request may narrow it, never widen it).
    pub webhook_policy: TargetPolicy,
    /// SHA-256 of the admin token.
    pub token_digest: [u8; 32],
}
