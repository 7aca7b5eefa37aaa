//! Server settings, and where the master key comes from.
//!
//! Flags and `MONEYKIT_AUTH_*` environment variables are parsed by the CLI
//! ([`crate::cli`]); this module holds the typed result with its defaults, so tests build
//! a server from a `ServeSettings` without going through the command line.

use std::net::SocketAddr;

use crate::crypto::MasterKey;
use crate::crypto::sealing::SealingError;
use crate::domain::signing_keys::KeyRecord;
use crate::engine::ratelimit::RateLimitSettings;
use crate::engine::refresh::RefreshSettings;
use crate::http::Limits;
use crate::http::server::ConnectionLimits;
use crate::store;
use crate::webhooks::WebhookSettings;

/// The default token lifetime: an hour, as MoneyKit's.
pub const DEFAULT_TOKEN_TTL_SECS: u32 = 3600;

/// The database used when none is named: a SQLite file in the current directory, used
/// only if it exists (or by `serve --demo`, which creates it).
pub const DEFAULT_DATABASE_URL: &str = "sqlite://moneykit-auth.db";

/// Everything `serve` needs.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    /// Address to listen on; port 0 picks a free one.
    pub listen: SocketAddr,
    /// Public issuer URL; `http://` + the bound address when `None`.
    pub issuer: Option<String>,
    /// The `aud` of tokens for clients without audiences of their own; the issuer when
    /// `None`.
    pub audience: Option<String>,
    /// Default token lifetime.
    pub token_ttl_secs: u32,
    /// List every client's scopes in the RFC 8414 metadata.
    pub publish_scopes: bool,
    /// Where the state lives.
    pub database_url: String,
    /// Create the database if it is missing (SQLite).
    pub create_database: bool,
    /// Apply pending migrations at start. Without it, only an empty database is
    /// initialized; one that lacks migrations is refused (upgrading is a deliberate step).
    pub migrate: bool,
    /// Keep waiting for an unreachable database (not ready, retrying with backoff) rather
    /// than fail: a server started before its database must not crash-loop.
    pub wait_for_database: bool,
    /// After a stop signal: how long to keep serving while readiness says 503, so load
    /// balancers move traffic away before the listener closes.
    pub shutdown_delay: std::time::Duration,
    /// `MONEYKIT_AUTH_SECRET`, when set.
    pub master_secret: Option<String>,
    /// Create and print a demo app and client.
    pub demo: bool,
    /// Background refresh and key rotation.
    pub refresh: RefreshSettings,
    /// Per-request limits.
    pub limits: Limits,
    /// Connection limits.
    pub connection: ConnectionLimits,
    /// How many verified tokens introspection remembers (bounded memory: about 50 bytes
    /// each).
    pub verified_token_cache: usize,
    /// Database connection pool (PostgreSQL).
    pub pool: store::PoolSettings,
    /// Webhook delivery.
    pub webhooks: WebhookSettings,
    /// Issuance and failed-authentication budgets.
    pub rate_limits: RateLimitSettings,
    /// Where the admin API and `/metrics` listen (off when `None`).
    pub admin_listen: Option<SocketAddr>,
    /// `MONEYKIT_AUTH_ADMIN_TOKEN`: what admin API callers present.
    pub admin_token: Option<String>,
    /// Serve HTTPS with this certificate and key (plain HTTP when `None`).
    pub tls: Option<crate::http::tls::TlsFiles>,
    /// Log every public request at info (target `access`).
    pub access_log: bool,
    /// Where the audit trail is streamed as JSON lines, if anywhere.
    pub audit_log: Option<crate::operations::audit_log::AuditSink>,
    /// Client assertions and federated workloads.
    pub secretless: SecretlessSettings,
    /// Sender-constrained tokens: DPoP and client certificates.
    pub sender: SenderSettings,
}

/// How tokens are bound to their holders: DPoP proofs (RFC 9449) and client certificates
/// (RFC 8705).
#[derive(Debug, Clone)]
pub struct SenderSettings {
    /// How far a DPoP proof's `iat` may be from now, either way.
    pub dpop_proof_window: std::time::Duration,
    /// Demand a fresh server nonce in every token request's DPoP proof (RFC 9449 §8).
    pub dpop_nonce: bool,
    /// How often the nonce changes (each is accepted for one to two periods).
    pub dpop_nonce_period: std::time::Duration,
    /// Most DPoP proofs remembered within their window (the replay set).
    pub dpop_replay_capacity: usize,
    /// The CAs `tls_client_auth` certificates must chain to (PEM).
    pub client_ca_file: Option<std::path::PathBuf>,
    /// The header a TLS-terminating proxy forwards the client's certificate in; believed
    /// only from `--trusted-proxy` addresses.
    pub client_cert_header: Option<axum::http::HeaderName>,
}

impl Default for SenderSettings {
    fn default() -> Self {
        Self {
            dpop_proof_window: std::time::Duration::from_secs(60),
            dpop_nonce: false,
            dpop_nonce_period: std::time::Duration::from_secs(300),
            dpop_replay_capacity: 1_000_000,
            client_ca_file: None,
            client_cert_header: None,
        }
    }
}

/// How `private_key_jwt` clients and federated workloads are served.
#[derive(Debug, Clone)]
pub struct SecretlessSettings {
    /// Accept only the issuer identifier, as a single string, as a client assertion's
    /// `aud` (draft-ietf-oauth-rfc7523bis); otherwise token endpoint URLs too.
    pub strict_assertion_audience: bool,
    /// Longest a client assertion may still be valid for.
    pub assertion_max_lifetime: std::time::Duration,
    /// Longest lifetime of a platform token a federated workload presents.
    pub federation_max_token_lifetime: std::time::Duration,
    /// How client JWKS URIs and trusted issuers' keys are fetched.
    pub key_fetch: crate::engine::remote_keys::FetchSettings,
    /// Most unexpired client assertions remembered (the replay set).
    pub replay_capacity: usize,
}

impl Default for SecretlessSettings {
    fn default() -> Self {
        Self {
            strict_assertion_audience: false,
            assertion_max_lifetime: std::time::Duration::from_secs(300),
            federation_max_token_lifetime: std::time::Duration::from_secs(24 * 3600),
            key_fetch: Default::default(),
            replay_capacity: 4_000_000,
        }
    }
}

impl ServeSettings {
    /// Defaults for everything but the database, listening on `127.0.0.1:8080`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            issuer: None,
            audience: None,
            publish_scopes: false,
            token_ttl_secs: DEFAULT_TOKEN_TTL_SECS,
            database_url: database_url.into(),
            create_database: false,
            migrate: false,
            wait_for_database: true,
            shutdown_delay: std::time::Duration::from_secs(5),
            master_secret: None,
            demo: false,
            refresh: RefreshSettings::default(),
            limits: Limits::default(),
            connection: ConnectionLimits::default(),
            verified_token_cache: 64 * 1024,
            pool: store::PoolSettings::default(),
            webhooks: WebhookSettings::default(),
            rate_limits: RateLimitSettings::default(),
            admin_listen: None,
            admin_token: None,
            tls: None,
            access_log: false,
            audit_log: None,
            secretless: SecretlessSettings::default(),
            sender: SenderSettings::default(),
        }
    }
}

/// How the master key was obtained, for the start-up message.
#[derive(Debug)]
pub enum MasterKeyOrigin {
    /// From `MONEYKIT_AUTH_SECRET`.
    Secret,
    /// From a key file beside the database (`true` if it was just generated).
    KeyFile(std::path::PathBuf, bool),
    /// Random and in memory only (in-memory database).
    Ephemeral,
}

/// The master key for `database_url`: from the secret when given (required for
/// PostgreSQL, whose replicas must all share it), otherwise from a key file beside the
/// database (created only while the database has no keys yet), or a
/// throwaway key for an in-memory database.
///
/// The key is checked against `sealed_keys` (the database's signing keys) before it is
/// returned, so a command run with the wrong secret fails at once and writes nothing —
/// instead of sealing a new key that the running server cannot open.
pub fn resolve_master_key(
    database_url: &str,
    secret: Option<&str>,
    sealed_keys: &[KeyRecord],
) -> Result<(MasterKey, MasterKeyOrigin), SealingError> {
    let (key, origin) = match (
        secret.filter(|s| !s.is_empty()),
        store::key_file_path(database_url),
    ) {
        (Some(secret), _) => (MasterKey::from_secret(secret)?, MasterKeyOrigin::Secret),
        (None, _) if store::is_postgres(database_url) => {
            return Err(SealingError::SecretRequired);
        }
        (None, Some(path)) => {
            let (key, created) = MasterKey::from_key_file(&path, sealed_keys.is_empty())?;
            (key, MasterKeyOrigin::KeyFile(path, created))
        }
        (None, None) => {
            let random = hex::encode(crate::crypto::random_bytes::<32>());
            (MasterKey::from_secret(&random)?, MasterKeyOrigin::Ephemeral)
        }
    };
    if let Some(newest) = sealed_keys.iter().max_by_key(|k| k.seq) {
        key.open(&newest.kid, &newest.sealed_private_key)?;
    }
    Ok((key, origin))
}

/// Checks `MONEYKIT_AUTH_SECRET` (its shape, and that a PostgreSQL database has one)
/// before anything is opened or written.
pub fn check_master_secret(database_url: &str, secret: Option<&str>) -> Result<(), SealingError> {
    match secret.filter(|s| !s.is_empty()) {
        Some(s) => MasterKey::from_secret(s).map(|_| ()),
        None if store::is_postgres(database_url) => Err(SealingError::SecretRequired),
        None => Ok(()),
    }
}
