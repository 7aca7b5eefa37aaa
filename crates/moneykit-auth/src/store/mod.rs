//! Storage: one small trait, one module per backend.
//!
//! The service reads the whole state (apps, clients, keys) into memory and serves from
//! there; the store is touched by the admin commands, by the background refresh when
//! [`Store::revision`] moves, and by nothing on the request path. Backends keep a
//! revision counter that every write bumps (by trigger, so no write path can forget),
//! which is how a server learns within a second that another process changed something.

mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::domain::clients::{App, Client};
use crate::domain::secrets::SecretHash;
use crate::keys::KeyRecord;
use crate::revocation::RevokedToken;

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

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A client was created for an app that does not exist.
    #[error("unknown app {0}")]
    UnknownApp(String),
    /// The database URL names a backend this build does not support.
    #[error("unsupported database URL {0:?}: expected sqlite://PATH")]
    UnsupportedUrl(String),
    /// A read-only command was pointed at a database file that does not exist.
    #[error("database {0} does not exist (`serve` and `apps create` create it)")]
    Missing(String),
    /// The backend failed: unreachable, locked, corrupt, full.
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
    /// Sets or clears a client's disablement time; false if no such client.
    async fn set_client_disabled_at(
        &self,
        id: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError>;
    /// Replaces a client's secret hash; false if no such client.
    async fn set_client_secret_hash(&self, id: &str, hash: &SecretHash)
    -> Result<bool, StoreError>;

    /// All signing keys, in insertion order.
    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError>;
    /// Inserts a key (its `seq` is assigned by the store) if `condition` holds; returns
    /// whether it was inserted.
    async fn insert_key(&self, key: &KeyRecord, condition: InsertKeyIf)
    -> Result<bool, StoreError>;
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
}

/// Whether a command may create the database, or needs it to exist already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the database if missing, and migrate it.
    CreateOrMigrate,
    /// Fail if the database does not exist (read-only commands).
    MustExist,
}

/// Opens the store a database URL names, migrating the schema.
pub async fn connect(url: &str, mode: OpenMode) -> Result<Arc<dyn Store>, StoreError> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url, mode).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// Unix seconds → time, for backends that store integers.
pub(crate) fn from_unix(secs: i64) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::from_unix_timestamp(secs)
        .map_err(|_| StoreError::Corrupt(format!("timestamp {secs} out of range")))
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
