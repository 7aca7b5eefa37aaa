//! The embedded default: one SQLite file, in WAL mode so readers never block the writer.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, SqliteConnection};
use time::OffsetDateTime;

use super::{InsertKeyIf, OpenMode, Store, StoreError, StoredState, from_unix};
use crate::domain::clients::{App, Client};
use crate::domain::scope::Scopes;
use crate::domain::secrets::SecretHash;
use crate::keys::KeyRecord;
use crate::revocation::RevokedToken;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A SQLite-backed [`Store`].
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl SqliteStore {
    /// Opens (and with [`OpenMode::CreateOrMigrate`], creates) the database at `url`.
    pub async fn connect(url: &str, mode: OpenMode) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{url} ({e})")))?
            .create_if_missing(mode == OpenMode::CreateOrMigrate)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5))
            // 1 MiB of page cache per connection (SQLite's default is 2 MiB): the server
            // reads the whole state rarely, and idle memory matters more.
            .pragma("cache_size", "-1024");
        let filename = options.get_filename().to_owned();
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if mode == OpenMode::MustExist && !in_memory && !filename.exists() {
            return Err(StoreError::Missing(filename.display().to_string()));
        }
        // An in-memory database exists once per connection, so it must stay at one.
        let pool = SqlitePoolOptions::new()
            .max_connections(if in_memory { 1 } else { 2 })
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(if in_memory {
                None
            } else {
                Some(Duration::from_secs(60))
            })
            .max_lifetime(if in_memory {
                None
            } else {
                Some(Duration::from_secs(30 * 60))
            })
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Backend(format!("cannot open {}: {e}", filename.display())))?;
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating {}: {e}", filename.display())))?;
        Ok(Self { pool })
    }
}

fn app_from_row(row: &SqliteRow) -> Result<App, StoreError> {
    Ok(App {
        id: row.try_get("id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        created_at: from_unix(row.try_get("created_at").map_err(backend)?)?,
    })
}

fn client_from_row(row: &SqliteRow) -> Result<Client, StoreError> {
    let id: String = row.try_get("id").map_err(backend)?;
    let scopes: String = row.try_get("scopes").map_err(backend)?;
    let hash: Vec<u8> = row.try_get("secret_hash").map_err(backend)?;
    let ttl: Option<i64> = row.try_get("token_ttl_secs").map_err(backend)?;
    let disabled_at: Option<i64> = row.try_get("disabled_at").map_err(backend)?;
    Ok(Client {
        scopes: Scopes::parse(&scopes)
            .map_err(|e| StoreError::Corrupt(format!("client {id}: {e}")))?,
        secret_hash: SecretHash::from_bytes(&hash)
            .ok_or_else(|| StoreError::Corrupt(format!("client {id}: secret hash")))?,
        token_ttl_secs: ttl
            .map(u32::try_from)
            .transpose()
            .map_err(|_| StoreError::Corrupt(format!("client {id}: token ttl")))?,
        app_id: row.try_get("app_id").map_err(backend)?,
        name: row.try_get("name").map_err(backend)?,
        created_at: from_unix(row.try_get("created_at").map_err(backend)?)?,
        disabled_at: disabled_at.map(from_unix).transpose()?,
        id,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<KeyRecord, StoreError> {
    Ok(KeyRecord {
        seq: row.try_get("seq").map_err(backend)?,
        kid: row.try_get("kid").map_err(backend)?,
        public_key: row.try_get("public_key").map_err(backend)?,
        sealed_private_key: row.try_get("sealed_private_key").map_err(backend)?,
        created_at: from_unix(row.try_get("created_at").map_err(backend)?)?,
        activates_at: from_unix(row.try_get("activates_at").map_err(backend)?)?,
    })
}

const SELECT_APPS: &str = "SELECT id, name, created_at FROM apps";
const SELECT_CLIENTS: &str = "SELECT id, app_id, name, scopes, token_ttl_secs, secret_hash, \
     created_at, disabled_at FROM clients";
const SELECT_KEYS: &str =
    "SELECT seq, kid, public_key, sealed_private_key, created_at, activates_at FROM signing_keys";

async fn fetch_all<T>(
    conn: &mut SqliteConnection,
    sql: &str,
    decode: fn(&SqliteRow) -> Result<T, StoreError>,
) -> Result<Vec<T>, StoreError> {
    // Decoded row by row: with 100 000 clients, holding every raw row and every decoded
    // client at once would double the peak memory of a refresh.
    let mut rows = sqlx::query(sql).fetch(conn);
    let mut out = Vec::new();
    while let Some(row) = rows.try_next().await.map_err(backend)? {
        out.push(decode(&row)?);
    }
    Ok(out)
}

#[async_trait]
impl Store for SqliteStore {
    async fn revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn load(&self) -> Result<StoredState, StoreError> {
        let mut tx = self.pool.begin().await.map_err(backend)?;
        let revision = sqlx::query_scalar("SELECT value FROM revision WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        let apps = fetch_all(
            &mut tx,
            &format!("{SELECT_APPS} ORDER BY created_at, id"),
            app_from_row,
        )
        .await?;
        let clients = fetch_all(
            &mut tx,
            &format!("{SELECT_CLIENTS} ORDER BY created_at, id"),
            client_from_row,
        )
        .await?;
        let keys = fetch_all(
            &mut tx,
            &format!("{SELECT_KEYS} ORDER BY seq"),
            key_from_row,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(StoredState {
            revision,
            apps,
            clients,
            keys,
        })
    }

    async fn insert_app(&self, app: &App) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO apps (id, name, created_at) VALUES (?, ?, ?)")
            .bind(&app.id)
            .bind(&app.name)
            .bind(app.created_at.unix_timestamp())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn list_apps(&self) -> Result<Vec<App>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_all(
            &mut conn,
            &format!("{SELECT_APPS} ORDER BY created_at, id"),
            app_from_row,
        )
        .await
    }

    async fn get_app(&self, id: &str) -> Result<Option<App>, StoreError> {
        sqlx::query(&format!("{SELECT_APPS} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(app_from_row)
            .transpose()
    }

    async fn insert_client(&self, c: &Client) -> Result<(), StoreError> {
        let result = sqlx::query(
            "INSERT INTO clients (id, app_id, name, scopes, token_ttl_secs, secret_hash, \
             created_at, disabled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(&c.app_id)
        .bind(&c.name)
        .bind(c.scopes.to_string())
        .bind(c.token_ttl_secs.map(i64::from))
        .bind(c.secret_hash.as_bytes().as_slice())
        .bind(c.created_at.unix_timestamp())
        .bind(c.disabled_at.map(OffsetDateTime::unix_timestamp))
        .execute(&self.pool)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::UnknownApp(c.app_id.clone()))
            }
            Err(e) => Err(backend(e)),
        }
    }

    async fn list_clients(&self, app_id: Option<&str>) -> Result<Vec<Client>, StoreError> {
        let rows = match app_id {
            Some(app) => {
                sqlx::query(&format!(
                    "{SELECT_CLIENTS} WHERE app_id = ? ORDER BY created_at, id"
                ))
                .bind(app)
                .fetch_all(&self.pool)
                .await
            }
            None => {
                sqlx::query(&format!("{SELECT_CLIENTS} ORDER BY created_at, id"))
                    .fetch_all(&self.pool)
                    .await
            }
        };
        rows.map_err(backend)?.iter().map(client_from_row).collect()
    }

    async fn get_client(&self, id: &str) -> Result<Option<Client>, StoreError> {
        sqlx::query(&format!("{SELECT_CLIENTS} WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?
            .as_ref()
            .map(client_from_row)
            .transpose()
    }

    async fn set_client_disabled_at(
        &self,
        id: &str,
        at: Option<OffsetDateTime>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET disabled_at = ? WHERE id = ?")
            .bind(at.map(OffsetDateTime::unix_timestamp))
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_client_secret_hash(
        &self,
        id: &str,
        hash: &SecretHash,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("UPDATE clients SET secret_hash = ? WHERE id = ?")
            .bind(hash.as_bytes().as_slice())
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        fetch_all(
            &mut conn,
            &format!("{SELECT_KEYS} ORDER BY seq"),
            key_from_row,
        )
        .await
    }

    async fn insert_key(
        &self,
        key: &KeyRecord,
        condition: InsertKeyIf,
    ) -> Result<bool, StoreError> {
        // One statement, so the condition and the insert are atomic under SQLite's
        // single-writer lock even when two processes race.
        let (guard, pending_after) = match condition {
            InsertKeyIf::NoKeys => ("NOT EXISTS (SELECT 1 FROM signing_keys)", None),
            InsertKeyIf::NonePendingAt(now) => (
                "NOT EXISTS (SELECT 1 FROM signing_keys WHERE activates_at > ?)",
                Some(now.unix_timestamp()),
            ),
        };
        let sql = format!(
            "INSERT INTO signing_keys (kid, public_key, sealed_private_key, created_at, activates_at) \
             SELECT ?, ?, ?, ?, ? WHERE {guard}"
        );
        let mut query = sqlx::query(&sql)
            .bind(&key.kid)
            .bind(&key.public_key)
            .bind(&key.sealed_private_key)
            .bind(key.created_at.unix_timestamp())
            .bind(key.activates_at.unix_timestamp());
        if let Some(t) = pending_after {
            query = query.bind(t);
        }
        let done = query.execute(&self.pool).await.map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn activate_key_now(&self, kid: &str, now: OffsetDateTime) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE signing_keys SET activates_at = ? WHERE kid = ? AND activates_at > ?",
        )
        .bind(now.unix_timestamp())
        .bind(kid)
        .bind(now.unix_timestamp())
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_revocation(&self, r: &RevokedToken) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO revoked_tokens (jti, client_id, expires_at, revoked_at) \
             VALUES (?, ?, ?, ?) ON CONFLICT (jti) DO NOTHING",
        )
        .bind(&r.jti)
        .bind(&r.client_id)
        .bind(r.expires_at)
        .bind(r.revoked_at)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    async fn revocations_since(&self, after: i64) -> Result<Vec<RevokedToken>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, jti, client_id, expires_at, revoked_at FROM revoked_tokens \
             WHERE seq > ? ORDER BY seq",
        )
        .bind(after)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(|row| {
                Ok(RevokedToken {
                    seq: row.try_get("seq").map_err(backend)?,
                    jti: row.try_get("jti").map_err(backend)?,
                    client_id: row.try_get("client_id").map_err(backend)?,
                    expires_at: row.try_get("expires_at").map_err(backend)?,
                    revoked_at: row.try_get("revoked_at").map_err(backend)?,
                })
            })
            .collect()
    }

    async fn prune_revocations(&self, before: i64) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < ?")
            .bind(before)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected())
    }
}

/// The database file a `sqlite:` URL names; `None` for in-memory databases.
pub(super) fn database_file(url: &str) -> Option<std::path::PathBuf> {
    if !url.starts_with("sqlite:") || url.contains(":memory:") || url.contains("mode=memory") {
        return None;
    }
    SqliteConnectOptions::from_str(url)
        .ok()
        .map(|o| o.get_filename().to_owned())
}
