//! Storage: one small trait, one module per backend.
//!
//! The service reads the whole state (apps, clients, keys) into memory and serves from
//! there; the store is touched by the admin commands, by the background refresh when
//! [`Store::revision`] moves, and by nothing on the request path. Backends keep a
//! revision counter that every write bumps (by trigger, so no write path can forget),
//! which is how a server learns within a second that another process changed something.
//! A backend that can push changes ([`Store::subscribe`], PostgreSQL's LISTEN/NOTIFY) wakes
//! the refresh at once; the polling stays as the safety net.

mod postgres;
mod rows;
mod sql;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::assertions::TrustRule;
use crate::domain::audit::{AuditFilter, AuditRecord};
use crate::domain::clients::{App, Client, ClientAuth};
use crate::domain::events::{AttemptOutcome, ClaimedEvent, EventStatus, WebhookEvent};
use crate::domain::secrets::StoredSecret;
use crate::domain::signing_keys::KeyRecord;
use crate::domain::tokens::RevokedToken;

pub use postgres::PgStore;
/// A database URL with its password replaced by `****`, for messages and `--print-config`.
pub(crate) use postgres::redact;
pub use sql::SqlStore;
pub use sqlite::SqliteStore;

/// Everything the in-memory snapshot is built from, read in one consistent transaction.
#[derive(Debug, Clone, Default)]
pub struct StoredState {
    /// The revision this state was read at.
    pub revision: i64,
    /// All apps.
    pub apps: Vec<App>,
    /// All clients.
    pub clients: Vec<Client>,
    /// All signing keys, in insertion order.
    pub keys: Vec<KeyRecord>,
    /// All trust rules of federated clients, oldest first.
    pub trust_rules: Vec<TrustRule>,
}

/// What changed after a revision, read in one consistent transaction from the journal
/// the revision triggers write: how a running server catches up without reading every
/// client.
#[derive(Debug, Clone, Default)]
pub struct StateChanges {
    /// The revision these changes bring a snapshot to.
    pub revision: i64,
    /// The apps changed, as they are now.
    pub apps: Vec<App>,
    /// Every client changed (its row, its secrets or its trust rules); one missing from
    /// `clients` no longer exists.
    pub client_ids: Vec<String>,
    /// The changed clients that exist, with their secrets.
    pub clients: Vec<Client>,
    /// All trust rules of the changed clients, oldest first.
    pub trust_rules: Vec<TrustRule>,
    /// All signing keys in insertion order, if any key changed.
    pub keys: Option<Vec<KeyRecord>>,
}

/// When a new signing key may be inserted; checked atomically with the insert, so two
/// processes racing to create or rotate keys never both succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertKeyIf {
    /// Only if there is no key at all (the first key, created on start).
    NoKeys,
    /// Only if no key activates after this moment (rotation: one pending key at most).
    NonePendingAt(OffsetDateTime),
}

/// What a change to a client's secrets did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretChange {
    /// Done.
    Done,
    /// No such client, or it does not authenticate with a secret.
    NotSecretClient,
    /// The client holds [`crate::domain::secrets::MAX_LIVE_SECRETS`] live secrets already.
    TooMany,
    /// The client has no secret with this id.
    UnknownSecret,
    /// The secret is the client's last live one.
    LastLive,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A client was created for an app that does not exist.
    #[error("unknown app {0}")]
    UnknownApp(String),
    /// A trust rule was created for a client that does not exist.
    #[error("unknown client {0}")]
    UnknownClient(String),
    /// The database URL names a backend this build does not support.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH or postgres://…")]
    UnsupportedUrl(String),
    /// The database file does not exist, and this command may not create it.
    #[error(
        "database {0} does not exist; create it with `moneykit-auth init --database-url …` \
         (`serve --demo` creates one for trying things out)"
    )]
    Missing(String),
    /// The database exists but no migration has run on it.
    #[error("database {0} has no moneykit-auth schema yet: run `moneykit-auth init`")]
    Uninitialized(String),
    /// The database lacks migrations this build needs.
    #[error(
        "database {database} is at schema version {version} and this moneykit-auth {} \
         needs {needed} ({pending}): run `moneykit-auth migrate`, or start `serve` with \
         --migrate", env!("CARGO_PKG_VERSION")
    )]
    SchemaBehind {
        /// Which database ([`describe`]).
        database: String,
        /// Its newest applied migration.
        version: i64,
        /// The newest this build knows.
        needed: i64,
        /// The migrations it lacks.
        pending: String,
    },
    /// A newer release migrated the database.
    #[error(
        "database {database} has schema version {version}, newer than this moneykit-auth {} \
         knows (up to {known}): use the release that migrated it, or a newer one",
        env!("CARGO_PKG_VERSION")
    )]
    SchemaAhead {
        /// Which database ([`describe`]).
        database: String,
        /// Its newest applied migration.
        version: i64,
        /// The newest this build knows.
        known: i64,
    },
    /// The database server cannot be reached (refused, authentication failed, no answer);
    /// `serve` waits for it rather than exit.
    #[error("cannot connect to {0}")]
    Unreachable(String),
    /// The backend failed: locked, corrupt, full, or lost mid-operation.
    #[error("database error: {0}")]
    Backend(String),
    /// A row holds a value this version cannot interpret.
    #[error("database holds an invalid value: {0}")]
    Corrupt(String),
}

/// The storage contract. Each method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A counter that changes whenever apps, clients or keys change.
    async fn revision(&self) -> Result<i64, StoreError>;
    /// The whole state, consistently.
    async fn load(&self) -> Result<StoredState, StoreError>;
    /// What changed after revision `since`; `None` when the journal cannot say: it no
    /// longer reaches back that far (pruned), or it lacks an entry for some revision (a
    /// write went around the triggers), so that only [`Store::load`] will do.
    async fn load_changes(&self, since: i64) -> Result<Option<StateChanges>, StoreError>;
    /// Forgets the journal's entries written before `before` (Unix seconds); a server
    /// whose snapshot is older than what is left reloads everything. Returns how many.
    async fn prune_state_changes(&self, before: i64) -> Result<u64, StoreError>;

    /// Adds an app.
    async fn insert_app(&self, app: &App) -> Result<(), StoreError>;
    /// All apps, oldest first.
    async fn list_apps(&self) -> Result<Vec<App>, StoreError>;
    /// One app.
    async fn get_app(&self, id: &str) -> Result<Option<App>, StoreError>;

    /// Adds a client; [`StoreError::UnknownApp`] if its app does not exist.
    async fn insert_client(&self, client: &Client) -> Result<(), StoreError>;
    /// All clients, or one app's, oldest first.
    async fn list_clients(&self, app_id: Option<&str>) -> Result<Vec<Client>, StoreError>;
    /// One client.
    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError>;
    /// Writes a client's name, scopes, audiences and token lifetime (the rest of `client`
    /// is ignored); false if no such client.
    async fn update_client(&self, client: &Client) -> Result<bool, StoreError>;
    /// Sets or clears a client's disablement time; false if no such client.
    async fn set_client_disabled_at(
        &self,
        id: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;
    /// Adds a secret to a secret client, in one transaction: forgets its secrets expired
    /// at `now`; with `others_expire_at`, makes every other secret expire then at the
    /// latest (a rotation's grace; `now` or earlier removes them); refuses when the client
    /// would hold more than [`crate::domain::secrets::MAX_LIVE_SECRETS`] live secrets.
    async fn add_client_secret(
        &self,
        client_id: &str,
        secret: &StoredSecret,
        others_expire_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<SecretChange, StoreError>;
    /// Removes one of a client's secrets, unless it is the last one live at `now`.
    async fn revoke_client_secret(
        &self,
        client_id: &str,
        secret_id: &str,
        now: OffsetDateTime,
    ) -> Result<SecretChange, StoreError>;
    /// Records when secrets were last used (secret id, Unix seconds), keeping the later
    /// time where one is stored already. Bumps no revision.
    async fn record_secret_use(&self, uses: &[(String, i64)]) -> Result<(), StoreError>;
    /// Marks a secret's coming expiry as announced; false if it was already (by this or
    /// another process), so one announcement goes out per secret.
    async fn claim_secret_expiry_notice(&self, secret_id: &str) -> Result<bool, StoreError>;
    /// Replaces how a client without a secret authenticates (its keys, its TLS identity,
    /// or the method itself, to another one without a secret: `auth` must not be
    /// [`ClientAuth::Secret`]); false if no such client or it authenticates with a secret.
    async fn set_client_credentials(&self, id: &str, auth: &ClientAuth)
    -> Result<bool, StoreError>;

    /// Adds a trust rule; [`StoreError::UnknownClient`] if its client does not exist.
    async fn insert_trust_rule(&self, rule: &TrustRule) -> Result<(), StoreError>;
    /// Trust rules, all or one client's, oldest first.
    async fn list_trust_rules(&self, client_id: Option<&str>)
    -> Result<Vec<TrustRule>, StoreError>;
    /// Removes one of a client's trust rules; false if the client has no such rule.
    async fn delete_trust_rule(&self, client_id: &str, rule_id: &str) -> Result<bool, StoreError>;

    /// Records that a client assertion (`id`: digest of its client and `jti`) was used,
    /// until `expires_at` (Unix seconds); false if it was recorded already: a replay,
    /// possibly at another replica. PostgreSQL writes a row; SQLite, which serves one
    /// process, answers true without I/O (that process's memory catches replays).
    async fn record_assertion(&self, id: &str, expires_at: i64) -> Result<bool, StoreError>;
    /// Forgets used assertions that expired before `before` (Unix seconds); returns how
    /// many.
    async fn prune_assertions(&self, before: i64) -> Result<u64, StoreError>;

    /// All signing keys, in insertion order.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Inserts a key (its `seq` is assigned by the store) if `condition` holds; returns
    /// whether it was inserted.
    async fn insert_key(&self, key: &KeyRecord, condition: InsertKeyIf)
    -> Result<bool, StoreError>;
    /// Marks a key revoked at `at` and, in the same transaction, inserts `replacement`
    /// (so no replica ever sees the revocation without the key that takes over); false,
    /// and nothing written, if there is no such key or it is revoked already.
    async fn revoke_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
        replacement: Option<&KeyRecord>,
    ) -> Result<bool, StoreError>;
    /// Moves a pending key's activation to `now`; false if it is not pending.
    async fn activate_key_now(&self, kid: &str, now: OffsetDateTime) -> Result<bool, StoreError>;

    /// Records a revocation (its `seq` is assigned by the store). Revoking a token twice
    /// is not an error.
    async fn insert_revocation(&self, revoked: &RevokedToken) -> Result<(), StoreError>;
    /// Revocations with `seq` above `after`, in order: how servers catch up.
    async fn revocations_since(&self, after: i64) -> Result<Vec<RevokedToken>, StoreError>;
    /// Forgets revocations of tokens that expired before `before` (Unix seconds); returns
    /// how many.
    async fn prune_revocations(&self, before: i64) -> Result<u64, StoreError>;

    /// Sets or clears an app's webhook URL; false if no such app.
    async fn set_app_webhook(&self, app_id: &str, url: Option<&str>) -> Result<bool, StoreError>;
    /// Adds an event to the outbox unless its app already has `max_pending` pending events
    /// (0: no cap); returns whether it was added, or [`StoreError::UnknownApp`] if the app
    /// does not exist. The count and the insert are atomic, so concurrent callers (in any
    /// process) never take an app past the cap.
    async fn insert_webhook_event_capped(
        &self,
        event: &WebhookEvent,
        max_pending: u32,
    ) -> Result<bool, StoreError>;
    /// Deletes delivered and failed events that finished before `before_ms`; returns how
    /// many. Pending events are never deleted.
    async fn prune_webhook_events(&self, before_ms: i64) -> Result<u64, StoreError>;
    /// Claims up to `limit` due events for one attempt each: counts the attempt and leases
    /// the event until `lease_until_ms`, atomically, so no other worker (in this process
    /// or another) attempts it at the same time.
    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>, StoreError>;
    /// Records the outcome of attempt `attempt` of event `id`; false (and nothing written)
    /// if that attempt is no longer the event's latest (its lease ran out and another
    /// worker took it over).
    async fn finish_webhook_attempt(
        &self,
        id: &str,
        attempt: u32,
        outcome: &AttemptOutcome,
        now_ms: i64,
    ) -> Result<bool, StoreError>;
    /// Events, newest first, optionally of one app and in one status; at most `limit`.
    async fn list_webhook_events(
        &self,
        app_id: Option<&str>,
        status: Option<EventStatus>,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError>;
    /// One event.
    async fn get_webhook_event(&self, id: &str) -> Result<Option<WebhookEvent>, StoreError>;
    /// Makes a delivered or failed event pending again, due now, retried until
    /// `retry_until_ms`; false if there is no such event or it is pending already.
    async fn retry_webhook_event(
        &self,
        id: &str,
        now_ms: i64,
        retry_until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Appends a record to the audit trail; returns its `seq`. There is no way to change
    /// a record, and the database refuses one (a trigger); only [`Store::prune_audit`]
    /// removes records.
    async fn append_audit(&self, record: &AuditRecord) -> Result<i64, StoreError>;
    /// Audit records matching `filter`, newest first.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Audit records with `seq` above `after`, oldest first, at most `limit`: how a
    /// server streams the trail as it grows.
    async fn audit_since(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError>;
    /// Forgets audit records older than `before_ms` (retention); returns how many.
    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError>;

    /// How many webhook events wait for delivery (the outbox depth, for metrics).
    async fn count_pending_webhook_events(&self) -> Result<u64, StoreError>;

    /// A feed that wakes when another process changes something, for backends that can
    /// push; `None` means polling [`Store::revision`] is the only way.
    async fn subscribe(&self) -> Result<Option<Box<dyn ChangeFeed>>, StoreError>;

    /// Checks within `timeout` that the database answers; the error names the root cause
    /// (refused, authentication failed, no answer), not only that the pool timed out.
    async fn ping(&self, timeout: Duration) -> Result<(), StoreError>;
    /// The connection pool's state, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// Which of this build's migrations the database has, lacks, or has beyond them.
    async fn schema(&self) -> Result<SchemaStatus, StoreError>;
    /// Applies the pending migrations (under the backend's migration lock, so replicas
    /// starting together migrate once); returns the ones applied.
    async fn migrate(&self) -> Result<Vec<Migration>, StoreError>;
    /// Writes a consistent copy of the database to `path` (which must not exist) while the
    /// server keeps running. SQLite only: PostgreSQL has `pg_dump`.
    async fn backup(&self, path: &std::path::Path) -> Result<(), StoreError>;
}

/// A connection pool's state at one moment, with totals since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open, idle or in use.
    pub size: u32,
    /// Connections open and idle.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
    /// Operations waiting for a connection now.
    pub waiting: u64,
    /// Connections handed out since the pool opened.
    pub acquired: u64,
    /// Total time operations waited for them.
    pub waited: Duration,
}

/// One schema migration of this build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// Its number: migrations apply in this order.
    pub version: i64,
    /// What it does, from its file name.
    pub description: String,
}

impl std::fmt::Display for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.description)
    }
}

/// A database's schema compared with this build's migrations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaStatus {
    /// Versions applied, in order.
    pub applied: Vec<i64>,
    /// This build's migrations the database lacks, in order.
    pub pending: Vec<Migration>,
    /// Versions applied that this build does not know: a newer release migrated it.
    pub unknown: Vec<i64>,
    /// The newest version this build knows.
    pub latest_known: i64,
}

impl SchemaStatus {
    fn compare(applied: Vec<i64>, migrator: &sqlx::migrate::Migrator) -> Self {
        let known: Vec<Migration> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .map(|m| Migration {
                version: m.version,
                description: m.description.to_string(),
            })
            .collect();
        Self {
            pending: known
                .iter()
                .filter(|m| !applied.contains(&m.version))
                .cloned()
                .collect(),
            unknown: applied
                .iter()
                .copied()
                .filter(|v| !known.iter().any(|m| m.version == *v))
                .collect(),
            latest_known: known.iter().map(|m| m.version).max().unwrap_or(0),
            applied,
        }
    }

    /// No migration has ever run: a new, empty database.
    pub fn is_empty(&self) -> bool {
        self.applied.is_empty()
    }

    /// The newest version applied (0 when none).
    pub fn version(&self) -> i64 {
        self.applied.iter().copied().max().unwrap_or(0)
    }

    /// The one-line refusal when the schema is not exactly this build's, if it is not.
    pub fn check(&self, database: &str) -> Result<(), StoreError> {
        if !self.unknown.is_empty() {
            return Err(StoreError::SchemaAhead {
                database: database.to_owned(),
                version: self.version(),
                known: self.latest_known,
            });
        }
        if self.is_empty() {
            return Err(StoreError::Uninitialized(database.to_owned()));
        }
        if !self.pending.is_empty() {
            return Err(StoreError::SchemaBehind {
                database: database.to_owned(),
                version: self.version(),
                needed: self.latest_known,
                pending: self
                    .pending
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        Ok(())
    }
}

/// Pushed change notifications (PostgreSQL `LISTEN`).
#[async_trait]
pub trait ChangeFeed: Send {
    /// Waits for the next change anywhere in the database. An error means the feed's
    /// connection broke; the caller polls and subscribes again later.
    async fn changed(&mut self) -> Result<(), StoreError>;
}

/// Connection pool sizing for backends with a server (PostgreSQL). SQLite ignores it: one
/// file needs no more than two connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections one process opens. The hot path uses none; admin writes,
    /// revocations and the background refresh share these.
    pub max_connections: u32,
    /// How long a query waits for a connection (or for a new one to open) before failing:
    /// bounds how long an admin write hangs when the database is unreachable.
    pub acquire_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 5,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

/// Whether a command may create a missing database (a SQLite file; a PostgreSQL
/// database must be created with `createdb`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database if missing.
    CreateIfMissing,
    /// Fail if the database does not exist.
    MustExist,
}

/// What opening a database does about migrations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Migrations {
    /// Apply any pending migration (`init`, `migrate`, `serve --migrate`).
    Apply,
    /// Migrate a database that has no schema yet; refuse one that lacks migrations
    /// (`serve`: upgrading a shared database is an explicit step).
    ApplyIfEmpty,
    /// Only use a database whose schema is exactly this build's (admin commands).
    Refuse,
}

/// Opens the store a database URL names, without touching its schema.
pub async fn connect(url: &str, mode: OpenMode) -> Result<Arc<dyn Store>, StoreError> {
    connect_with(url, mode, &PoolSettings::default()).await
}

/// [`connect`] with explicit pool settings.
pub async fn connect_with(
    url: &str,
    mode: OpenMode,
    pool: &PoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, mode).await?))
    } else if is_postgres(url) {
        Ok(Arc::new(PgStore::connect(url, pool).await?))
    } else {
        Err(StoreError::UnsupportedUrl(postgres::redact(url)))
    }
}

/// Opens the store and brings its schema to this build's as `migrations` allows, or
/// refuses with one line; logs the migrations it applies.
pub async fn open(
    url: &str,
    mode: OpenMode,
    migrations: Migrations,
    pool: &PoolSettings,
) -> Result<Arc<dyn Store>, StoreError> {
    let store = connect_with(url, mode, pool).await?;
    let schema = store.schema().await?;
    let apply = match migrations {
        Migrations::Apply => schema.unknown.is_empty(),
        Migrations::ApplyIfEmpty => schema.is_empty(),
        Migrations::Refuse => false,
    };
    if apply && !schema.pending.is_empty() {
        let applied = store.migrate().await?;
        if schema.is_empty() {
            let version = schema.latest_known;
            tracing::info!(database = %describe(url), schema_version = version, "created the schema");
        } else {
            for migration in applied {
                tracing::info!(database = %describe(url), %migration, "applied migration");
            }
        }
    } else {
        schema.check(&describe(url))?;
        if migrations == Migrations::Apply {
            let schema_version = schema.version();
            tracing::info!(database = %describe(url), schema_version, "schema up to date; no migration to apply");
        }
    }
    Ok(store)
}

/// Names a database for messages, never with a password: `sqlite /abs/path/x.db`,
/// `sqlite (in memory)`, `postgres user@host:port/db`.
pub fn describe(url: &str) -> String {
    if url.starts_with("sqlite:") {
        return match sqlite::database_file(url) {
            Some(file) => {
                let file = std::path::absolute(&file).unwrap_or(file);
                format!("sqlite {}", file.display())
            }
            None => "sqlite (in memory)".to_owned(),
        };
    }
    if is_postgres(url) {
        return postgres::describe(url);
    }
    postgres::redact(url)
}

/// Whether `url` names a PostgreSQL database.
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// Where a generated master-key file goes for this database (beside the file, `.key`
/// appended); `None` for databases that are not a local file.
pub fn key_file_path(url: &str) -> Option<std::path::PathBuf> {
    sqlite::database_file(url).map(|db| {
        let mut name = db.into_os_string();
        name.push(".key");
        name.into()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn both_backends_have_the_same_migrations() {
        let versions = |m: &sqlx::migrate::Migrator| {
            m.iter()
                .map(|m| (m.version, m.description.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            versions(&super::sqlite::MIGRATOR),
            versions(&super::postgres::MIGRATOR),
            "a schema change needs a migration for each backend, with the same number and name"
        );
    }
}
