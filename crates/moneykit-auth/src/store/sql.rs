//! The [`Store`] implementation both backends share: the same tables, the same SQL
//! (`$1`-style parameters, which SQLite accepts too), the same row decoding. What differs
//! between SQLite and PostgreSQL is small and named in [`Dialect`]: how a writer excludes
//! other processes, how a read transaction sees one snapshot, and whether changes can be
//! pushed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::{
    ColumnIndex, Connection, Database, Decode, Encode, Executor, IntoArguments, Pool, Type,
};
use time::OffsetDateTime;

use super::rows::{
    self, APP_COLUMNS, AUDIT_COLUMNS, CLIENT_COLUMNS, EVENT_COLUMNS, KEY_COLUMNS, REVOKED_COLUMNS,
    SECRET_COLUMNS, SECRET_METHOD, TRUST_RULE_COLUMNS,
};
use super::{
    ChangeFeed, InsertKeyIf, Migration, PoolStats, SchemaStatus, SecretChange, StateChanges, Store,
    StoreError, StoredState,
};
use crate::domain::assertions::TrustRule;
use crate::domain::audit::{AuditFilter, AuditRecord};
use crate::domain::clients::{App, Client, ClientAuth};
use crate::domain::events::{AttemptOutcome, ClaimedEvent, EventStatus, WebhookEvent};
use crate::domain::secrets::{MAX_LIVE_SECRETS, StoredSecret};
use crate::domain::signing_keys::KeyRecord;
use crate::domain::time::unix_ms;
use crate::domain::tokens::RevokedToken;

/// Writes that must be serialized across every process sharing the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exclusive {
    /// Creating or activating signing keys: never two competing keys.
    Keys,
    /// Recording revocations: sequence order is commit order, so a server catching up
    /// "after seq N" never skips one that committed late with a lower number.
    Revocations,
    /// Changing a client's secrets: the count of its live secrets and the insert it
    /// allows are one step.
    Secrets,
    /// Queuing capped webhook events: the count of an app's pending events and the
    /// insert it allows are one step, so concurrent triggers never pass the cap.
    Outbox,
}

/// Most finished webhook events one prune statement deletes: a large backlog is removed
/// in steps, none of which holds the write lock for long.
const PRUNE_BATCH: i64 = 5_000;

/// What one backend does differently.
#[async_trait]
pub(super) trait Dialect: Database {
    /// Holds `what` until the transaction on `conn` ends.
    async fn exclude_others(conn: &mut Self::Connection, what: Exclusive)
    -> Result<(), StoreError>;
    /// Makes every read of the transaction on `conn` see one snapshot.
    async fn read_one_snapshot(conn: &mut Self::Connection) -> Result<(), StoreError>;
    /// A feed of changes made by other processes, where the backend can push.
    async fn subscribe(pool: &Pool<Self>) -> Result<Option<Box<dyn ChangeFeed>>, StoreError>;
    /// How many rows a statement changed (sqlx has no common trait for it).
    fn rows_affected(result: &Self::QueryResult) -> u64;
    /// What the outbox claim's row selection appends so that concurrent workers pass
    /// over each other's rows instead of waiting for them.
    const SKIP_LOCKED: &'static str;
    /// This build's migrations for the backend.
    fn migrator() -> &'static Migrator;
    /// A query counting the tables named `_sqlx_migrations` the connection sees: zero on a
    /// database no version of this service has touched.
    const HAS_MIGRATIONS_TABLE: &'static str;
    /// Writes a consistent copy of the database to `path` while others keep writing.
    async fn backup(conn: &mut Self::Connection, path: &Path) -> Result<(), StoreError>;
    /// Whether several server processes may share the database, so that a used client
    /// assertion must be recorded in it for the others to refuse a replay.
    const SHARED_BY_REPLICAS: bool;
}

/// A [`Store`] on a sqlx pool of either backend.
#[derive(Debug, Clone)]
pub struct SqlStore<DB: Database> {
    pool: Pool<DB>,
    acquires: Arc<AcquireCounters>,
}

/// How store operations wait for pooled connections, for the pool metrics.
#[derive(Debug, Default)]
struct AcquireCounters {
    waiting: AtomicU64,
    acquired: AtomicU64,
    waited_micros: AtomicU64,
}

impl<DB: Database> SqlStore<DB> {
    pub(super) fn new(pool: Pool<DB>) -> Self {
        Self {
            pool,
            acquires: Arc::default(),
        }
    }

    /// A pooled connection, counted: how many operations wait and for how long is what
    /// tells an operator the pool is too small or the database too slow.
    async fn conn(&self) -> Result<PoolConnection<DB>, StoreError> {
        let counters = &self.acquires;
        let started = Instant::now();
        counters.waiting.fetch_add(1, Ordering::Relaxed);
        let conn = self.pool.acquire().await;
        counters.waiting.fetch_sub(1, Ordering::Relaxed);
        let waited = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        counters.acquired.fetch_add(1, Ordering::Relaxed);
        counters.waited_micros.fetch_add(waited, Ordering::Relaxed);
        conn.map_err(backend)
    }

    /// Why the database cannot be reached, from a direct connection attempt: the pool
    /// retries failed connections until its timeout and then reports only the timeout.
    async fn root_cause(&self, timeout: Duration) -> StoreError {
        let options = self.pool.connect_options();
        let connect = <DB::Connection as Connection>::connect_with(&options);
        match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
                StoreError::Unreachable("the database: the pool has no free connection".into())
            }
            Ok(Err(e)) => StoreError::Unreachable(format!("the database: {e}")),
            Err(_) => {
                StoreError::Unreachable(format!("the database: no answer within {timeout:?}"))
            }
        }
    }
}

pub(super) fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// Decodes the rows of `query` one by one: with 100 000 clients, holding every raw row
/// and every decoded client at once would double the peak memory of a refresh.
async fn fetch_all<'q, 'c, DB, E, T>(
    executor: E,
    query: Query<'q, DB, DB::Arguments<'q>>,
    decode: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError>
where
    DB: Database,
    E: Executor<'c, Database = DB> + 'q,
    'c: 'q,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let mut rows = query.fetch(executor);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(backend)? {
        out.push(decode(&row)?);
    }
    Ok(out)
}

/// Streams the secrets `query` selects (ordered by client, then age) into their clients
/// (`clients` sorted by id), one row at a time: with 100 000 clients, a list of every
/// secret beside them would add its size to the peak of every refresh. Each client's list
/// grows by exactly one (a vector's first push would reserve room for four, and with
/// 100 000 clients the allocator keeps the pages of what a later trim frees).
async fn stream_secrets_into<'q, 'c, DB, E>(
    executor: E,
    query: Query<'q, DB, DB::Arguments<'q>>,
    clients: &mut [Client],
) -> Result<(), StoreError>
where
    DB: Database,
    E: Executor<'c, Database = DB> + 'q,
    'c: 'q,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
{
    let mut rows = query.fetch(executor);
    while let Some(row) = rows.try_next().await.map_err(backend)? {
        let (client_id, secret) = rows::secret(&row)?;
        let found = clients.binary_search_by(|c| c.id.as_str().cmp(&client_id));
        if let Some(ClientAuth::Secret(secrets)) = found.ok().map(|i| &mut clients[i].auth) {
            secrets.reserve_exact(1);
            secrets.push(secret);
        }
    }
    Ok(())
}

/// The decoded row of `query`, if there is one.
async fn fetch_optional<'q, 'c, DB, E, T>(
    executor: E,
    query: Query<'q, DB, DB::Arguments<'q>>,
    decode: fn(&DB::Row) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError>
where
    DB: Database,
    E: Executor<'c, Database = DB> + 'q,
    'c: 'q,
    DB::Arguments<'q>: IntoArguments<'q, DB>,
{
    let row = query.fetch_optional(executor).await.map_err(backend)?;
    row.as_ref().map(decode).transpose()
}

/// A signing key's insert, without a condition: `insert_key` appends its guard, and
/// `revoke_key` inserts the replacement as it is. One column list, one binding order.
const KEY_INSERT: &str = "INSERT INTO signing_keys (kid, public_key, sealed_private_key, \
     created_at, activates_at) SELECT $1, $2, $3, $4, $5";

/// Binds `key` to [`KEY_INSERT`]'s first five parameters.
fn bind_key<'q, DB>(
    query: Query<'q, DB, DB::Arguments<'q>>,
    key: &'q KeyRecord,
) -> Query<'q, DB, DB::Arguments<'q>>
where
    DB: Database,
    &'q str: Encode<'q, DB> + Type<DB>,
    &'q [u8]: Encode<'q, DB> + Type<DB>,
    i64: Encode<'q, DB> + Type<DB>,
{
    query
        .bind(key.kid.as_str())
        .bind(key.public_key.as_slice())
        .bind(key.sealed_private_key.as_slice())
        .bind(key.created_at.unix_timestamp())
        .bind(key.activates_at.unix_timestamp())
}

/// An insert's failure: a missing app (foreign key) is the caller's mistake, named as such.
fn unknown_app_or_backend(error: sqlx::Error, app_id: &str) -> StoreError {
    match error {
        sqlx::Error::Database(e) if e.is_foreign_key_violation() => {
            StoreError::UnknownApp(app_id.to_owned())
        }
        other => backend(other),
    }
}

/// Every row of the tables the snapshot is built from, in the one order both the
/// snapshot and the CLI listings use.
fn all_apps_sql() -> String {
    format!("SELECT {APP_COLUMNS} FROM apps ORDER BY created_at, id")
}

fn clients_sql(filter: &str) -> String {
    format!("SELECT {CLIENT_COLUMNS} FROM clients {filter} ORDER BY created_at, id")
}

fn trust_rules_sql(filter: &str) -> String {
    format!("SELECT {TRUST_RULE_COLUMNS} FROM trust_rules {filter} ORDER BY created_at, id")
}

fn all_keys_sql() -> String {
    format!("SELECT {KEY_COLUMNS} FROM signing_keys ORDER BY seq")
}

fn secrets_sql(filter: &str) -> String {
    format!("SELECT {SECRET_COLUMNS} FROM client_secrets {filter}")
}

const REVISION: &str = "SELECT value FROM revision WHERE id = 1";

/// The ids of one kind of thing the journal says changed after revision `$1`.
fn changed(kind: &str) -> String {
    format!("SELECT id FROM state_changes WHERE kind = '{kind}' AND revision > $1")
}

/// Stores one of a client's secrets.
async fn insert_secret<DB>(
    conn: &mut DB::Connection,
    client_id: &str,
    secret: &StoredSecret,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
{
    sqlx::query(
        "INSERT INTO client_secrets (id, client_id, hash, created_at, expires_at, last_used_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(secret.id.as_str())
    .bind(client_id)
    .bind(secret.hash.as_bytes().as_slice())
    .bind(secret.created_at.unix_timestamp())
    .bind(secret.expires_at.map(OffsetDateTime::unix_timestamp))
    .bind(secret.last_used_at.map(OffsetDateTime::unix_timestamp))
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Deletes a client's secrets that expired at `now`: they can never work again.
async fn forget_expired_secrets<DB>(
    conn: &mut DB::Connection,
    client_id: &str,
    now: OffsetDateTime,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    sqlx::query("DELETE FROM client_secrets WHERE client_id = $1 AND expires_at <= $2")
        .bind(client_id)
        .bind(now.unix_timestamp())
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Copies the newest secret's hash into `clients.secret_hash`, the one column a replica
/// of the previous release reads during a rolling upgrade (and bumps the revision).
async fn newest_secret_for_old_releases<DB>(
    conn: &mut DB::Connection,
    client_id: &str,
) -> Result<(), StoreError>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    sqlx::query(
        "UPDATE clients SET secret_hash = (SELECT hash FROM client_secrets \
         WHERE client_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1) \
         WHERE id = $1 AND EXISTS (SELECT 1 FROM client_secrets WHERE client_id = $1)",
    )
    .bind(client_id)
    .execute(conn)
    .await
    .map_err(backend)?;
    Ok(())
}

#[async_trait]
impl<DB> Store for SqlStore<DB>
where
    DB: Dialect,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> &'q [u8]: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    for<'r> Vec<u8>: Decode<'r, DB> + Type<DB>,
    for<'a> &'a str: ColumnIndex<DB::Row>,
    usize: ColumnIndex<DB::Row>,
{
    async fn revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar(REVISION)
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(backend)
    }

    async fn load(&self) -> Result<StoredState, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::read_one_snapshot(&mut tx).await?;
        let revision = sqlx::query_scalar(REVISION)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let apps = fetch_all(&mut *tx, sqlx::query(&all_apps_sql()), rows::app).await?;
        let mut clients = fetch_all(&mut *tx, sqlx::query(&clients_sql("")), rows::client).await?;
        // Sorted by id for the secrets to find their clients (the snapshot keeps no order).
        clients.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let secrets = secrets_sql("ORDER BY client_id, created_at, id");
        stream_secrets_into(&mut *tx, sqlx::query(&secrets), &mut clients).await?;
        let keys = fetch_all(&mut *tx, sqlx::query(&all_keys_sql()), rows::key).await?;
        let trust_rules = fetch_all(
            &mut *tx,
            sqlx::query(&trust_rules_sql("")),
            rows::trust_rule,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(StoredState {
            revision,
            apps,
            clients,
            keys,
            trust_rules,
        })
    }

    async fn load_changes(&self, since: i64) -> Result<Option<StateChanges>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::read_one_snapshot(&mut tx).await?;
        let (revision, journal_from): (i64, i64) =
            sqlx::query_as("SELECT value, journal_from FROM revision WHERE id = 1")
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if since < journal_from || since > revision {
            return Ok(None);
        }
        // Every bump of the revision writes one entry. Fewer means a write went around the
        // triggers (a bulk load with them disabled): only a full reload is sure then.
        let entries: Vec<(String, String)> =
            sqlx::query_as("SELECT kind, id FROM state_changes WHERE revision > $1")
                .bind(since)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        if i64::try_from(entries.len()) != Ok(revision - since) {
            return Ok(None);
        }
        let keys_changed = entries.iter().any(|(kind, _)| kind == "key");
        let client_ids: BTreeSet<String> = entries
            .into_iter()
            .filter_map(|(kind, id)| (kind == "client").then_some(id))
            .collect();
        let (apps, clients) = (changed("app"), changed("client"));
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id IN ({apps})");
        let apps = fetch_all(&mut *tx, sqlx::query(&sql).bind(since), rows::app).await?;
        let sql = clients_sql(&format!("WHERE id IN ({clients})"));
        let mut changed_clients =
            fetch_all(&mut *tx, sqlx::query(&sql).bind(since), rows::client).await?;
        changed_clients.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let sql = secrets_sql(&format!(
            "WHERE client_id IN ({clients}) ORDER BY client_id, created_at, id"
        ));
        stream_secrets_into(
            &mut *tx,
            sqlx::query(&sql).bind(since),
            &mut changed_clients,
        )
        .await?;
        let sql = trust_rules_sql(&format!("WHERE client_id IN ({clients})"));
        let trust_rules =
            fetch_all(&mut *tx, sqlx::query(&sql).bind(since), rows::trust_rule).await?;
        let keys = match keys_changed {
            true => Some(fetch_all(&mut *tx, sqlx::query(&all_keys_sql()), rows::key).await?),
            false => None,
        };
        tx.commit().await.map_err(backend)?;
        Ok(Some(StateChanges {
            revision,
            apps,
            client_ids: client_ids.into_iter().collect(),
            clients: changed_clients,
            trust_rules,
            keys,
        }))
    }

    async fn prune_state_changes(&self, before: i64) -> Result<u64, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        let newest: Option<i64> =
            sqlx::query_scalar("SELECT MAX(revision) FROM state_changes WHERE at < $1")
                .bind(before)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(newest) = newest else {
            return Ok(0);
        };
        // Everything up to the newest old entry goes, and the journal says it no longer
        // reaches below it.
        let done = sqlx::query("DELETE FROM state_changes WHERE revision <= $1")
            .bind(newest)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query("UPDATE revision SET journal_from = $1 WHERE id = 1 AND journal_from < $1")
            .bind(newest)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(DB::rows_affected(&done))
    }

    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO apps (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(app.id.as_str())
            .bind(app.name.as_str())
            .bind(app.created_at.unix_timestamp())
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&all_apps_sql()),
            rows::app,
        )
        .await
    }

    async fn get_app(&self, id: &str) -> Result<Option<App>, StoreError> {
        let sql = format!("SELECT {APP_COLUMNS} FROM apps WHERE id = $1");
        fetch_optional(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(id),
            rows::app,
        )
        .await
    }

    async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let audiences = rows::audiences_column(&c.audiences);
        let auth = rows::auth_columns(&c.auth);
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        sqlx::query(
            "INSERT INTO clients (id, app_id, name, scopes, audiences, token_ttl_secs, \
             secret_hash, auth_method, jwks, jwks_uri, tls_identity, require_dpop, created_at, \
             disabled_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(c.id.as_str())
        .bind(c.app_id.as_str())
        .bind(c.name.as_str())
        .bind(c.scopes.as_str())
        .bind(audiences.as_str())
        .bind(c.token_ttl_secs.map(i64::from))
        .bind(auth.secret_hash.as_slice())
        .bind(auth.method)
        .bind(auth.jwks)
        .bind(auth.jwks_uri)
        .bind(auth.tls_identity.as_deref())
        .bind(i64::from(c.require_dpop))
        .bind(c.created_at.unix_timestamp())
        .bind(c.disabled_at.map(OffsetDateTime::unix_timestamp))
        .execute(&mut *tx)
        .await
        .map_err(|e| unknown_app_or_backend(e, &c.app_id))?;
        if let ClientAuth::Secret(secrets) = &c.auth {
            for secret in secrets {
                insert_secret(&mut tx, &c.id, secret).await?;
            }
        }
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn list_clients(&self, app_id: Option<&str>) -> Result<Vec<Client>, StoreError> {
        // A NULL app matches every client.
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::read_one_snapshot(&mut tx).await?;
        let sql = clients_sql("WHERE ($1 IS NULL OR app_id = $1)");
        let mut clients = fetch_all(&mut *tx, sqlx::query(&sql).bind(app_id), rows::client).await?;
        clients.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let sql = secrets_sql(
            "WHERE ($1 IS NULL OR client_id IN (SELECT id FROM clients WHERE app_id = $1)) \
             ORDER BY client_id, created_at, id",
        );
        stream_secrets_into(&mut *tx, sqlx::query(&sql).bind(app_id), &mut clients).await?;
        tx.commit().await.map_err(backend)?;
        // Back in the listing order.
        clients.sort_unstable_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(clients)
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::read_one_snapshot(&mut tx).await?;
        let sql = clients_sql("WHERE id = $1");
        let Some(client) =
            fetch_optional(&mut *tx, sqlx::query(&sql).bind(id), rows::client).await?
        else {
            return Ok(None);
        };
        let mut one = [client];
        let sql = secrets_sql("WHERE client_id = $1 ORDER BY created_at, id");
        stream_secrets_into(&mut *tx, sqlx::query(&sql).bind(id), &mut one).await?;
        tx.commit().await.map_err(backend)?;
        let [client] = one;
        Ok(Some(client))
    }

    async fn update_client(&self, c: &Client) -> Result<bool, StoreError> {
        let audiences = rows::audiences_column(&c.audiences);
        let done = sqlx::query(
            "UPDATE clients SET name = $1, scopes = $2, audiences = $3, token_ttl_secs = $4, \
             require_dpop = $5 WHERE id = $6",
        )
        .bind(c.name.as_str())
        .bind(c.scopes.as_str())
        .bind(audiences.as_str())
        .bind(c.token_ttl_secs.map(i64::from))
        .bind(i64::from(c.require_dpop))
        .bind(c.id.as_str())
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_client_disabled_at(
        &self,
        id: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET disabled_at = $1 WHERE id = $2")
            .bind(at.map(OffsetDateTime::unix_timestamp))
            .bind(id)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn add_client_secret(
        &self,
        client_id: &str,
        secret: &StoredSecret,
        others_expire_at: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<SecretChange, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Secrets).await?;
        // A write first: on SQLite it takes the write lock, so the count below holds
        // until the insert.
        forget_expired_secrets(&mut tx, client_id, now).await?;
        let method: Option<String> =
            sqlx::query_scalar("SELECT auth_method FROM clients WHERE id = $1")
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        if method.as_deref() != Some(SECRET_METHOD) {
            return Ok(SecretChange::NotSecretClient);
        }
        if let Some(at) = others_expire_at {
            let query = if at <= now {
                sqlx::query("DELETE FROM client_secrets WHERE client_id = $1").bind(client_id)
            } else {
                sqlx::query(
                    "UPDATE client_secrets SET expires_at = $2 WHERE client_id = $1 \
                     AND (expires_at IS NULL OR expires_at > $2)",
                )
                .bind(client_id)
                .bind(at.unix_timestamp())
            };
            query.execute(&mut *tx).await.map_err(backend)?;
        }
        let live: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM client_secrets WHERE client_id = $1")
                .bind(client_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
        if usize::try_from(live).unwrap_or(usize::MAX) >= MAX_LIVE_SECRETS {
            return Ok(SecretChange::TooMany);
        }
        insert_secret(&mut tx, client_id, secret).await?;
        newest_secret_for_old_releases(&mut tx, client_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(SecretChange::Done)
    }

    async fn revoke_client_secret(
        &self,
        client_id: &str,
        secret_id: &str,
        now: OffsetDateTime,
    ) -> Result<SecretChange, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Secrets).await?;
        forget_expired_secrets(&mut tx, client_id, now).await?;
        let ids: Vec<String> =
            sqlx::query_scalar("SELECT id FROM client_secrets WHERE client_id = $1")
                .bind(client_id)
                .fetch_all(&mut *tx)
                .await
                .map_err(backend)?;
        if !ids.iter().any(|id| id == secret_id) {
            // Committed: forgetting the expired ones is worth keeping.
            tx.commit().await.map_err(backend)?;
            return Ok(SecretChange::UnknownSecret);
        }
        if ids.len() == 1 {
            return Ok(SecretChange::LastLive);
        }
        sqlx::query("DELETE FROM client_secrets WHERE id = $1 AND client_id = $2")
            .bind(secret_id)
            .bind(client_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        newest_secret_for_old_releases(&mut tx, client_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(SecretChange::Done)
    }

    async fn record_secret_use(&self, uses: &[(String, i64)]) -> Result<(), StoreError> {
        if uses.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        for (id, at) in uses {
            sqlx::query(
                "UPDATE client_secrets SET last_used_at = $1 \
                 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            )
            .bind(*at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(())
    }

    async fn claim_secret_expiry_notice(&self, secret_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE client_secrets SET expiry_notified = 1 WHERE id = $1 AND expiry_notified = 0",
        )
        .bind(secret_id)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn set_client_credentials(
        &self,
        id: &str,
        auth: &ClientAuth,
    ) -> Result<bool, StoreError> {
        if matches!(auth, ClientAuth::Secret(_)) {
            return Ok(false);
        }
        let columns = rows::auth_columns(auth);
        let done = sqlx::query(
            "UPDATE clients SET auth_method = $1, jwks = $2, jwks_uri = $3, tls_identity = $4 \
             WHERE id = $5 AND auth_method <> $6",
        )
        .bind(columns.method)
        .bind(columns.jwks)
        .bind(columns.jwks_uri)
        .bind(columns.tls_identity.as_deref())
        .bind(id)
        .bind(SECRET_METHOD)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_trust_rule(&self, rule: &TrustRule) -> Result<(), StoreError> {
        let (jwks, jwks_uri) = rows::issuer_keys_columns(&rule.keys);
        sqlx::query(
            "INSERT INTO trust_rules (id, client_id, issuer, subject, audience, jwks, jwks_uri, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(rule.id.as_str())
        .bind(rule.client_id.as_str())
        .bind(rule.issuer.as_str())
        .bind(rule.subject.as_str())
        .bind(rule.audience.as_deref())
        .bind(jwks)
        .bind(jwks_uri)
        .bind(rule.created_at.unix_timestamp())
        .execute(&mut *self.conn().await?)
        .await
        .map_err(|e| match e {
            sqlx::Error::Database(e) if e.is_foreign_key_violation() => {
                StoreError::UnknownClient(rule.client_id.clone())
            }
            other => backend(other),
        })?;
        Ok(())
    }

    async fn list_trust_rules(
        &self,
        client_id: Option<&str>,
    ) -> Result<Vec<TrustRule>, StoreError> {
        let sql = trust_rules_sql("WHERE ($1 IS NULL OR client_id = $1)");
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(client_id),
            rows::trust_rule,
        )
        .await
    }

    async fn delete_trust_rule(&self, client_id: &str, rule_id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM trust_rules WHERE id = $1 AND client_id = $2")
            .bind(rule_id)
            .bind(client_id)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn record_assertion(&self, id: &str, expires_at: i64) -> Result<bool, StoreError> {
        if !DB::SHARED_BY_REPLICAS {
            return Ok(true);
        }
        // Committed without waiting for the WAL flush (`synchronous_commit` off, for
        // this statement's transaction only): the row is visible to every replica at
        // once, and only a database crash within the flush delay (a fraction of a
        // second) could forget it. Waiting for the flush would cap private_key_jwt at one
        // request per disk flush.
        let done = sqlx::query(
            "WITH relaxed AS (SELECT set_config('synchronous_commit', 'off', true)) \
             INSERT INTO used_assertions (id, expires_at) SELECT $1, $2 FROM relaxed \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id)
        .bind(expires_at)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn prune_assertions(&self, before: i64) -> Result<u64, StoreError> {
        if !DB::SHARED_BY_REPLICAS {
            return Ok(0);
        }
        let done = sqlx::query("DELETE FROM used_assertions WHERE expires_at < $1")
            .bind(before)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(DB::rows_affected(&done))
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&all_keys_sql()),
            rows::key,
        )
        .await
    }

    async fn insert_key(
        &self,
        key: &KeyRecord,
        condition: InsertKeyIf,
    ) -> Result<bool, StoreError> {
        // The condition and the insert are one statement, under the backend's exclusion:
        // two processes starting (or rotating) together never both insert.
        let guard = match condition {
            InsertKeyIf::NoKeys => "NOT EXISTS (SELECT 1 FROM signing_keys)",
            InsertKeyIf::NonePendingAt(_) => {
                "NOT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at > $6 AND revoked_at IS NULL)"
            }
        };
        let sql = format!("{KEY_INSERT} WHERE {guard}");
        let mut query = bind_key(sqlx::query(&sql), key);
        if let InsertKeyIf::NonePendingAt(now) = condition {
            query = query.bind(now.unix_timestamp());
        }
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Keys).await?;
        let done = query.execute(&mut *tx).await.map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn revoke_key(
        &self,
        kid: &str,
        at: OffsetDateTime,
        replacement: Option<&KeyRecord>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Keys).await?;
        let done = sqlx::query(
            "UPDATE signing_keys SET revoked_at = $1 WHERE kid = $2 AND revoked_at IS NULL",
        )
        .bind(at.unix_timestamp())
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if DB::rows_affected(&done) != 1 {
            return Ok(false);
        }
        if let Some(key) = replacement {
            bind_key(sqlx::query(KEY_INSERT), key)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(true)
    }

    async fn activate_key_now(&self, kid: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Keys).await?;
        let done = sqlx::query(
            "UPDATE signing_keys SET activates_at = $1 WHERE kid = $2 AND activates_at > $1",
        )
        .bind(now.unix_timestamp())
        .bind(kid)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_revocation(&self, r: &RevokedToken) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        DB::exclude_others(&mut tx, Exclusive::Revocations).await?;
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(r.jti.as_str())
        .bind(r.client_id.as_str())
        .bind(r.expires_at)
        .bind(r.revoked_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn revocations_since(&self, after: i64) -> Result<Vec<RevokedToken>, StoreError> {
        let sql =
            format!("SELECT {REVOKED_COLUMNS} FROM revoked_tokens WHERE seq > $1 ORDER BY seq");
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(after),
            rows::revoked,
        )
        .await
    }

    async fn prune_revocations(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
            .bind(before)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(DB::rows_affected(&done))
    }

    async fn set_app_webhook(&self, app_id: &str, url: Option<&str>) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE apps SET webhook_url = $1 WHERE id = $2")
            .bind(url)
            .bind(app_id)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn insert_webhook_event_capped(
        &self,
        e: &WebhookEvent,
        max_pending: u32,
    ) -> Result<bool, StoreError> {
        // The cap is checked in the insert itself (NULL: no cap), under the outbox lock on
        // backends with concurrent writers; the count uses webhook_events_app_status.
        let insert = sqlx::query(
            "INSERT INTO webhook_events (id, app_id, event, body, delivery_token, status, \
             attempts, next_attempt_ms, retry_until_ms, created_ms) \
             SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10 \
             WHERE $11 IS NULL OR (SELECT COUNT(*) FROM webhook_events \
                 WHERE app_id = $2 AND status = 'pending') < $11",
        )
        .bind(e.id.as_str())
        .bind(e.app_id.as_str())
        .bind(e.event.as_str())
        .bind(e.body.as_slice())
        .bind(e.delivery_token.as_str())
        .bind(e.status.as_str())
        .bind(i64::from(e.attempts))
        .bind(e.next_attempt_ms)
        .bind(e.retry_until_ms)
        .bind(e.created_ms)
        .bind((max_pending > 0).then_some(i64::from(max_pending)));
        let mut conn = self.conn().await?;
        let mut tx = conn.begin().await.map_err(backend)?;
        if max_pending > 0 {
            DB::exclude_others(&mut tx, Exclusive::Outbox).await?;
        }
        let done = insert
            .execute(&mut *tx)
            .await
            .map_err(|error| unknown_app_or_backend(error, &e.app_id))?;
        tx.commit().await.map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn prune_webhook_events(&self, before_ms: i64) -> Result<u64, StoreError> {
        let mut total = 0;
        loop {
            let done = sqlx::query(
                "DELETE FROM webhook_events WHERE seq IN (SELECT seq FROM webhook_events \
                 WHERE finished_ms < $1 AND status <> 'pending' LIMIT $2)",
            )
            .bind(before_ms)
            .bind(PRUNE_BATCH)
            .execute(&mut *self.conn().await?)
            .await
            .map_err(backend)?;
            let deleted = DB::rows_affected(&done);
            total += deleted;
            // Finish times only grow, so nothing new can match: this ends.
            if deleted < PRUNE_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn claim_webhook_events(
        &self,
        now_ms: i64,
        lease_until_ms: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedEvent>, StoreError> {
        // One statement: pick due, unleased events and lease them, so two workers never
        // hold the same attempt. The app's URL is read in the same statement.
        let sql = format!(
            "UPDATE webhook_events SET attempts = attempts + 1, leased_until_ms = $2 \
             WHERE id IN (SELECT id FROM webhook_events \
                 WHERE status = 'pending' AND next_attempt_ms <= $1 \
                 AND (leased_until_ms IS NULL OR leased_until_ms <= $1) \
                 ORDER BY next_attempt_ms LIMIT $3 {}) \
             RETURNING {EVENT_COLUMNS}, \
                 (SELECT webhook_url FROM apps WHERE apps.id = webhook_events.app_id) AS webhook_url",
            DB::SKIP_LOCKED
        );
        let mut conn = self.conn().await?;
        let query = sqlx::query(&sql)
            .bind(now_ms)
            .bind(lease_until_ms)
            .bind(i64::from(limit));
        fetch_all(&mut *conn, query, rows::claimed_event).await
    }

    async fn finish_webhook_attempt(
        &self,
        id: &str,
        attempt: u32,
        outcome: &AttemptOutcome,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let finished = (outcome.status != EventStatus::Pending).then_some(now_ms);
        let done = sqlx::query(
            "UPDATE webhook_events SET status = $3, last_status = $4, last_error = $5, \
             next_attempt_ms = $6, finished_ms = $7, leased_until_ms = NULL \
             WHERE id = $1 AND attempts = $2 AND status = 'pending'",
        )
        .bind(id)
        .bind(i64::from(attempt))
        .bind(outcome.status.as_str())
        .bind(outcome.http_status.map(i64::from))
        .bind(outcome.error.as_deref())
        .bind(outcome.next_attempt_ms)
        .bind(finished)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn list_webhook_events(
        &self,
        app_id: Option<&str>,
        status: Option<EventStatus>,
        limit: u32,
    ) -> Result<Vec<WebhookEvent>, StoreError> {
        // NULL parameters match everything.
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM webhook_events \
             WHERE ($1 IS NULL OR app_id = $1) AND ($2 IS NULL OR status = $2) \
             ORDER BY seq DESC LIMIT $3"
        );
        let mut conn = self.conn().await?;
        let query = sqlx::query(&sql)
            .bind(app_id)
            .bind(status.map(EventStatus::as_str))
            .bind(i64::from(limit));
        fetch_all(&mut *conn, query, rows::webhook_event).await
    }

    async fn get_webhook_event(&self, id: &str) -> Result<Option<WebhookEvent>, StoreError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM webhook_events WHERE id = $1");
        fetch_optional(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(id),
            rows::webhook_event,
        )
        .await
    }

    async fn retry_webhook_event(
        &self,
        id: &str,
        now_ms: i64,
        retry_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_events SET status = 'pending', next_attempt_ms = $2, \
             retry_until_ms = $3, finished_ms = NULL, leased_until_ms = NULL \
             WHERE id = $1 AND status <> 'pending'",
        )
        .bind(id)
        .bind(now_ms)
        .bind(retry_until_ms)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done) == 1)
    }

    async fn subscribe(&self) -> Result<Option<Box<dyn ChangeFeed>>, StoreError> {
        DB::subscribe(&self.pool).await
    }

    async fn append_audit(&self, r: &AuditRecord) -> Result<i64, StoreError> {
        let at_ms = unix_ms(r.at);
        sqlx::query_scalar(
            "INSERT INTO audit_events (id, at_ms, actor, via, source, action, target, changes, \
             request_id, outcome, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             RETURNING seq",
        )
        .bind(r.id.as_str())
        .bind(at_ms)
        .bind(r.actor.as_str())
        .bind(r.via.as_str())
        .bind(r.source.as_deref())
        .bind(r.action.as_str())
        .bind(r.target.as_deref())
        .bind(r.changes.as_deref())
        .bind(r.request_id.as_deref())
        .bind(r.outcome.as_str())
        .bind(r.detail.as_deref())
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(backend)
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events \
             WHERE ($1 IS NULL OR at_ms >= $1) AND ($2 IS NULL OR at_ms < $2) \
             AND ($3 IS NULL OR target = $3) AND ($4 IS NULL OR actor = $4) \
             AND ($5 IS NULL OR seq < $5) ORDER BY seq DESC LIMIT $6"
        );
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&sql)
                .bind(f.since.map(unix_ms))
                .bind(f.until.map(unix_ms))
                .bind(f.target.as_deref())
                .bind(f.actor.as_deref())
                .bind(f.before_seq)
                .bind(i64::from(f.limit)),
            rows::audit,
        )
        .await
    }

    async fn audit_since(&self, after: i64, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let sql = format!(
            "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        fetch_all(
            &mut *self.conn().await?,
            sqlx::query(&sql).bind(after).bind(i64::from(limit)),
            rows::audit,
        )
        .await
    }

    async fn prune_audit(&self, before_ms: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM audit_events WHERE seq IN \
             (SELECT seq FROM audit_events WHERE at_ms < $1 ORDER BY seq LIMIT $2)",
        )
        .bind(before_ms)
        .bind(PRUNE_BATCH)
        .execute(&mut *self.conn().await?)
        .await
        .map_err(backend)?;
        Ok(DB::rows_affected(&done))
    }

    async fn count_pending_webhook_events(&self) -> Result<u64, StoreError> {
        let count: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM webhook_events WHERE status = 'pending'")
                .fetch_one(&mut *self.conn().await?)
                .await
                .map_err(backend)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn ping(&self, timeout: Duration) -> Result<(), StoreError> {
        let ping = async {
            let mut conn = self.conn().await?;
            conn.ping().await.map_err(backend)
        };
        match tokio::time::timeout(timeout, ping).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) | Err(_) => Err(self.root_cause(timeout).await),
        }
    }

    fn pool_stats(&self) -> PoolStats {
        let counters = &self.acquires;
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
            waiting: counters.waiting.load(Ordering::Relaxed),
            acquired: counters.acquired.load(Ordering::Relaxed),
            waited: Duration::from_micros(counters.waited_micros.load(Ordering::Relaxed)),
        }
    }

    async fn schema(&self) -> Result<SchemaStatus, StoreError> {
        let mut conn = self.conn().await?;
        // Wait out a migration in progress (replicas starting together on a new
        // database): read half-way through, its schema would look like an older release's.
        // The migration lock is the one sqlx's migrator takes.
        sqlx::migrate::Migrate::lock(&mut *conn)
            .await
            .map_err(|e| StoreError::Backend(format!("waiting for migrations: {e}")))?;
        sqlx::migrate::Migrate::unlock(&mut *conn)
            .await
            .map_err(|e| StoreError::Backend(format!("waiting for migrations: {e}")))?;
        let tables: i64 = sqlx::query_scalar(DB::HAS_MIGRATIONS_TABLE)
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
        let applied: Vec<i64> = if tables == 0 {
            Vec::new()
        } else {
            sqlx::query_scalar(
                "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version",
            )
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?
        };
        Ok(SchemaStatus::compare(applied, DB::migrator()))
    }

    async fn migrate(&self) -> Result<Vec<Migration>, StoreError> {
        let pending = self.schema().await?.pending;
        DB::migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating: {e}")))?;
        Ok(pending)
    }

    async fn backup(&self, path: &Path) -> Result<(), StoreError> {
        DB::backup(&mut *self.conn().await?, path).await
    }
}
