//! What handlers reach: [`AppState`] for the public routes (the snapshot, the engine, the
//! counters), [`AdminState`] for the admin API. Passed explicitly through the routers,
//! never global, so each test runs its own server.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use super::error::ApiError;
use super::extract::AuthenticatedForm;
use crate::crypto::MasterKey;
use crate::engine::client_auth::UsedAssertion;
use crate::engine::grant::IssuedToken;
use crate::engine::ratelimit::RateLimits;
use crate::engine::refresh::Health;
use crate::engine::revocation::RevocationList;
use crate::engine::snapshot::{Snapshot, SnapshotCell};
use crate::engine::verified::VerifiedTokens;
use crate::engine::{Assertions, Engine};
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
    /// Keys fetched from elsewhere and client assertions already used.
    pub assertions: Arc<Assertions>,
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
            assertions: &self.assertions,
            source: None,
        }
    }

    /// Runs the grant a parsed request asks for and counts the token: what both token
    /// endpoints share before shaping their own response. A client assertion that passed
    /// is recorded as used, whether or not a token follows, and a token is handed out
    /// only once that record is written.
    pub async fn issue_token(
        &self,
        form: &AuthenticatedForm<'_>,
        source: Option<std::net::IpAddr>,
    ) -> Result<IssuedToken, ApiError> {
        let grant = {
            let snapshot = self.snapshot();
            self.engine(&snapshot)
                .from_source(source)
                .token(&form.as_grant_request(), OffsetDateTime::now_utc())
        };
        if let Some(used) = &grant.assertion {
            self.record_assertion(used).await?;
        }
        let issued = grant
            .outcome
            .map_err(|e| ApiError::from_grant(e, form.used_basic()))?;
        self.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client_id = %issued.claims.client_id, "issued token");
        Ok(issued)
    }

    /// Records a client assertion's use where every replica sees it (PostgreSQL; nothing
    /// to do on SQLite): refused if another replica took it first. Runs after the local
    /// check, so this process never writes the same assertion twice.
    pub async fn record_assertion(&self, used: &UsedAssertion) -> Result<(), ApiError> {
        match self
            .store
            .record_assertion(&used.id.to_hex(), used.expires_at)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::info!(
                    reason = "invalid_assertion",
                    check = "jti used before, at another replica",
                    "client authentication failed"
                );
                Err(ApiError::InvalidClientAssertion(
                    "client_assertion: the jti has been used before".into(),
                ))
            }
            Err(error) => {
                Err(self.write_failed(&error, "the client assertion could not be recorded"))
            }
        }
    }

    /// A write a request needed failed (`what` says which, to the client too): the
    /// database counts as unreachable, logged once per outage like the refresh's own
    /// failures (the background refresh logs, and marks ready again, when it is back),
    /// and the client is told to retry.
    pub fn write_failed(&self, error: &crate::store::StoreError, what: &'static str) -> ApiError {
        if self.health.set_store_reachable(false) {
            tracing::error!(%error, "{what}; database unreachable");
        } else {
            tracing::debug!(%error, "{what}");
        }
        ApiError::Unavailable(what)
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
    /// What client JWKS URIs and trusted issuers are checked against (the server's
    /// key-fetch guard).
    pub key_fetch_policy: TargetPolicy,
    /// SHA-256 of the admin token.
    pub token_digest: [u8; 32],
}
