//! The embedded default: one SQLite file, in WAL mode so readers never block the writer.
//! Queries are shared with PostgreSQL ([`super::sql`]); this module opens the file and says
//! what SQLite does differently.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::{Pool, Sqlite};

use super::sql::{Dialect, Exclusive, SqlStore};
use super::{ChangeFeed, OpenMode, StoreError};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

/// A SQLite-backed [`super::Store`].
pub type SqliteStore = SqlStore<Sqlite>;

impl SqlStore<Sqlite> {
    /// Opens (and with [`OpenMode::CreateIfMissing`], creates) the database at `url`.
    pub async fn connect(url: &str, mode: OpenMode) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{url} ({e})")))?
            .create_if_missing(mode == OpenMode::CreateIfMissing)
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
            return Err(StoreError::Missing(super::describe(url)));
        }
        if !in_memory {
            owner_only(&filename).map_err(|e| {
                StoreError::Backend(format!("cannot open {}: {e}", filename.display()))
            })?;
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
        Ok(Self::new(pool))
    }
}

#[async_trait]
impl Dialect for Sqlite {
    /// SQLite has one writer at a time per file, and every exclusive write is a single
    /// statement: nothing to add.
    async fn exclude_others(_: &mut SqliteConnection, _: Exclusive) -> Result<(), StoreError> {
        Ok(())
    }

    /// A read transaction in WAL mode already sees one snapshot.
    async fn read_one_snapshot(_: &mut SqliteConnection) -> Result<(), StoreError> {
        Ok(())
    }

    /// Other processes' changes are found by polling the revision counter.
    async fn subscribe(_: &Pool<Sqlite>) -> Result<Option<Box<dyn ChangeFeed>>, StoreError> {
        Ok(None)
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

    /// The claim is one statement under SQLite's single writer: nothing to skip.
    const SKIP_LOCKED: &'static str = "";
    const SHARED_BY_REPLICAS: bool = false;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    const HAS_MIGRATIONS_TABLE: &'static str =
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'";

    /// `VACUUM INTO`: one read transaction copies every page, so the copy is consistent
    /// while the server keeps writing. The target is created empty and owner-only first
    /// (SQLite accepts an empty file), so the copy is never readable by others.
    async fn backup(conn: &mut SqliteConnection, path: &std::path::Path) -> Result<(), StoreError> {
        let target = path.to_str().ok_or_else(|| {
            StoreError::Backend(format!("{} is not a UTF-8 path", path.display()))
        })?;
        create_owner_only(path)
            .map_err(|e| StoreError::Backend(format!("cannot create {}: {e}", path.display())))?;
        let copied = sqlx::query("VACUUM INTO $1")
            .bind(target)
            .execute(conn)
            .await;
        if let Err(e) = copied {
            let _ = std::fs::remove_file(path);
            return Err(StoreError::Backend(format!(
                "backup to {target} failed: {e}"
            )));
        }
        Ok(())
    }
}

/// Creates `path` empty with mode 0600; fails if it exists.
fn create_owner_only(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// Makes the database file readable by its owner only (0600), creating it empty if
/// missing, before SQLite opens it: it holds secret hashes, sealed keys, webhook URLs and
/// bodies. SQLite gives the `-wal` and `-shm` files it creates the mode of the database
/// file, so they follow. A file that exists with a wider mode is narrowed.
#[cfg(unix)]
fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    if file.metadata()?.permissions().mode() & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    for suffix in ["-wal", "-shm"] {
        let mut side = path.as_os_str().to_owned();
        side.push(suffix);
        if let Ok(meta) = std::fs::metadata(&side)
            && meta.permissions().mode() & 0o077 != 0
        {
            std::fs::set_permissions(&side, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

#[cfg(not(unix))]
fn owner_only(_: &std::path::Path) -> std::io::Result<()> {
    Ok(())
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
