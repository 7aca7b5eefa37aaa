//! What handlers reach: [`AppState`] for the public routes (the snapshot, the engine, the
//! counters), [`AdminState`] for the admin API. Passed explicitly through the routers,
//! never global, so each test runs its own server.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use time::OffsetDateTime;

use super::error::ApiError;
use axum::http::HeaderMap;

use super::extract::{AuthenticatedForm, PresentedToken, dpop_header};
use crate::crypto::MasterKey;
use crate::engine::client_auth::{self, Failure};
use crate::engine::dpop::{Presentation, PresentationError};
use crate::engine::grant::{Authorized, BearerError, IssuedToken};
use crate::engine::ratelimit::RateLimits;
use crate::engine::refresh::Health;
use crate::engine::replay::{REPLAY_FULL_RETRY, UsedAssertion, UsedKind};
use crate::engine::revocation::RevocationList;
use crate::engine::snapshot::{Snapshot, SnapshotCell};
use crate::engine::verified::VerifiedTokens;
use crate::engine::{Assertions, Engine};
use crate::metrics::{History, KeyAge, Metrics, OperatorState, PoolGauges, ProcessStats};
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
    ///
    /// `headers` may carry a DPoP proof for `endpoint`. Returns the token, and the DPoP
    /// nonce clients should use next when the server demands nonces.
    pub async fn issue_token(
        &self,
        form: &AuthenticatedForm<'_>,
        headers: &HeaderMap,
        source: Option<std::net::IpAddr>,
        endpoint: &str,
    ) -> Result<(IssuedToken, Option<String>), ApiError> {
        let dpop = dpop_header(headers).map_err(ApiError::InvalidDpopProof)?;
        let now = OffsetDateTime::now_utc();
        let (grant, nonce) = {
            let snapshot = self.snapshot();
            let grant = self
                .engine(&snapshot)
                .from_source(source)
                .token(&form.as_grant_request(dpop, endpoint), now);
            let nonces = snapshot.settings.dpop.nonces.as_ref();
            (grant, nonces.map(|key| key.current(now.unix_timestamp())))
        };
        for used in &grant.used {
            self.record_assertion(used).await?;
        }
        let issued = grant
            .outcome
            .map_err(|e| ApiError::from_grant(e, form.used_basic()))?;
        self.metrics.tokens_issued.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(client_id = %issued.claims.client_id, "issued token");
        Ok((issued, nonce))
    }

    /// Authorizes an access token presented at one of this server's protected resources
    /// (`method` `endpoint`, from `source`): valid, not revoked, its client enabled, and
    /// presented by its holder (a DPoP-bound token with a proof by its key, a
    /// certificate-bound one over a connection with its certificate). `read` takes what
    /// the handler needs from the authorization while the snapshot is held. Refusals are
    /// logged as failed authentications; a DPoP proof is recorded as used.
    pub async fn authorize_presented<T>(
        &self,
        presented: &PresentedToken,
        method: &str,
        endpoint: &str,
        source: Option<std::net::IpAddr>,
        read: impl FnOnce(&Authorized<'_>) -> T,
    ) -> Result<T, ApiError> {
        let refused = |failure| client_auth::log_failure(None, failure, source, false);
        let unauthorized = |error: &'static str, why: String| {
            refused(Failure::InvalidToken);
            ApiError::DpopUnauthorized { error, why }
        };
        let now = OffsetDateTime::now_utc();
        let (value, proof) = {
            let snapshot = self.snapshot();
            let engine = self.engine(&snapshot);
            let authorized = engine
                .authorize_bearer(&presented.token, now)
                .map_err(|error| {
                    refused(match error {
                        BearerError::Expired => Failure::ExpiredToken,
                        BearerError::Invalid => Failure::InvalidToken,
                    });
                    // The challenge speaks the scheme the client used (RFC 9449 §7.1).
                    match presented.dpop_scheme {
                        true => ApiError::DpopUnauthorized {
                            error: "invalid_token",
                            why: error.to_string(),
                        },
                        false => error.into(),
                    }
                })?;
            let proof = presented
                .proof
                .as_ref()
                .map_err(|why| unauthorized("invalid_dpop_proof", why.clone()))?;
            let presentation = Presentation {
                token: &presented.token,
                dpop_scheme: presented.dpop_scheme,
                proof: proof.as_deref(),
                certificate: presented.certificate.as_ref().map(|c| c.0.as_ref()),
                method,
                endpoint,
            };
            let cnf = authorized.claims.cnf.as_ref();
            let used = engine
                .check_presentation(cnf, &presentation, now.unix_timestamp())
                .map_err(|error| match error {
                    PresentationError::InvalidToken(why) => unauthorized("invalid_token", why),
                    PresentationError::Certificate(why) if presented.dpop_scheme => {
                        unauthorized("invalid_token", why)
                    }
                    PresentationError::Certificate(why) => {
                        refused(Failure::InvalidToken);
                        tracing::debug!(%why, "certificate-bound token refused");
                        ApiError::InvalidToken
                    }
                    PresentationError::InvalidProof(why) => unauthorized("invalid_dpop_proof", why),
                    PresentationError::Full => ApiError::RateLimited(REPLAY_FULL_RETRY),
                })?;
            (read(&authorized), used)
        };
        if let Some(used) = &proof {
            self.record_assertion(used)
                .await
                .map_err(|error| match error {
                    ApiError::InvalidDpopProof(why) => unauthorized("invalid_dpop_proof", why),
                    other => other,
                })?;
        }
        Ok(value)
    }

    /// Records the use of a client assertion or a DPoP proof where every replica sees it
    /// (PostgreSQL; nothing to do on SQLite): refused if another replica took it first.
    /// Runs after the local check, so this process never writes the same one twice.
    pub async fn record_assertion(&self, used: &UsedAssertion) -> Result<(), ApiError> {
        match self
            .store
            .record_assertion(&used.id.to_hex(), used.expires_at)
            .await
        {
            Ok(true) => Ok(()),
            Ok(false) => match used.kind {
                UsedKind::ClientAssertion => {
                    tracing::info!(
                        reason = "invalid_assertion",
                        check = "jti used before, at another replica",
                        "client authentication failed"
                    );
                    Err(ApiError::InvalidClientAssertion(
                        "client_assertion: the jti has been used before".into(),
                    ))
                }
                UsedKind::DpopProof => {
                    tracing::info!(
                        reason = "invalid_dpop_proof",
                        check = "jti used before, at another replica",
                        "DPoP proof refused"
                    );
                    Err(ApiError::InvalidDpopProof(
                        "DPoP proof: the jti has been used before".into(),
                    ))
                }
            },
            Err(error) => Err(self.write_failed(
                &error,
                match used.kind {
                    UsedKind::ClientAssertion => "the client assertion could not be recorded",
                    UsedKind::DpopProof => "the DPoP proof could not be recorded",
                },
            )),
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
    /// The public side, whose engine checks the access tokens admin clients present.
    pub public: AppState,
    /// Refused authentications recorded in the audit trail this minute.
    pub refusals: RefusalBudget,
    /// A client whose last secret expires within this long counts in the
    /// `client_secrets_expiring` gauge.
    pub secret_expiry_warning: time::Duration,
    /// The console's sessions and sign-in attempts.
    pub console: super::console::session::Sessions,
    /// Token traffic and failed authentications of the last hour, for the console.
    pub history: Arc<History>,
}

impl AdminState {
    /// What an operator watches besides requests, gathered now: the signing keys' ages,
    /// readiness, the refresh, the pool, the webhook backlog, expiring secrets and the
    /// process. `/metrics` renders it; the console's overview shows it.
    pub async fn operator_state(&self, now: OffsetDateTime) -> (Vec<KeyAge>, OperatorState) {
        /// A scrape must not hang on a database that does not answer.
        const OUTBOX_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
        let (keys, secrets_expiring) = {
            let snapshot = self.snapshot.load();
            let running_out = snapshot.clients_running_out(now, self.secret_expiry_warning);
            (snapshot.key_ages(now), running_out.count() as u64)
        };
        let pool = self.store.pool_stats();
        let outbox =
            tokio::time::timeout(OUTBOX_TIMEOUT, self.store.count_pending_webhook_events());
        let operator = OperatorState {
            ready: self.health.readiness().is_ok(),
            last_refresh_unix: self.health.last_success_ms() as f64 / 1000.0,
            refresh_failures: self.health.failures(),
            pool: PoolGauges {
                size: pool.size,
                idle: pool.idle,
                max: pool.max,
                waiting: pool.waiting,
                acquired: pool.acquired,
                acquire_seconds: pool.waited.as_secs_f64(),
            },
            outbox_pending: outbox.await.ok().and_then(Result::ok),
            secrets_expiring,
            process: ProcessStats::read(),
            now_unix: now.unix_timestamp_nanos() as f64 / 1e9,
        };
        (keys, operator)
    }
}

/// Most refused authentications one process records in the audit trail per minute; the
/// rest are only logged, so an unauthenticated flood cannot fill the database.
const MAX_RECORDED_REFUSALS_PER_MINUTE: u32 = 60;

/// Counts recorded refusals in the current minute.
#[derive(Debug, Default)]
pub struct RefusalBudget(std::sync::Mutex<(i64, u32)>);

impl RefusalBudget {
    /// Whether one more refusal may be recorded now; the first refusal over the budget in
    /// a minute logs that the rest of that minute's are not recorded.
    pub fn take(&self) -> bool {
        let minute = OffsetDateTime::now_utc().unix_timestamp() / 60;
        let mut budget = self.0.lock().expect("not poisoned");
        if budget.0 != minute {
            *budget = (minute, 0);
        }
        budget.1 = budget.1.saturating_add(1);
        if budget.1 == MAX_RECORDED_REFUSALS_PER_MINUTE + 1 {
            tracing::warn!(
                recorded = MAX_RECORDED_REFUSALS_PER_MINUTE,
                "refused admin API authentications over the audit budget: the rest of this \
                 minute's are logged but not recorded in the audit trail"
            );
        }
        budget.1 <= MAX_RECORDED_REFUSALS_PER_MINUTE
    }
}
