//! PostgreSQL, for running several replicas as one service.
//!
//! Same tables, columns and queries as SQLite ([`super::sql`]). What differs: writes that
//! must not race between replicas (creating or activating signing keys, recording
//! revocations) run under a transaction-scoped advisory lock, the snapshot read is
//! `REPEATABLE READ`, and every change is announced with `NOTIFY moneykit_auth_changes` (by
//! trigger), which [`PgChangeFeed`] turns into an immediate refresh on every replica.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions, PgQueryResult};
use sqlx::{Connection, Executor, PgConnection, Pool, Postgres};

use super::sql::{Dialect, Exclusive, SqlStore, backend};
use super::{ChangeFeed, PoolSettings, StoreError};

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// The channel the triggers notify.
const CHANNEL: &str = "moneykit_auth_changes";

/// A PostgreSQL-backed [`super::Store`].
pub type PgStore = SqlStore<Postgres>;

impl SqlStore<Postgres> {
    /// Connects to the database at `url`, which must exist (`createdb`).
    pub async fn connect(url: &str, pool: &PoolSettings) -> Result<Self, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::UnsupportedUrl(format!("{} ({e})", redact(url))))?
            // Server notices ("relation … already exists, skipping" on every migration
            // check) are not the operator's business; warnings and errors still are.
            .options([("client_min_messages", "warning")])
            .application_name("moneykit-auth");
        // One direct connection first: when the database is down, this fails at once with
        // the cause ("connection refused", "password authentication failed"), where the
        // pool would retry until its timeout and then only say that it timed out.
        let probe =
            tokio::time::timeout(pool.acquire_timeout, PgConnection::connect_with(&options));
        match probe.await {
            Ok(Ok(conn)) => {
                let _ = conn.close().await;
            }
            Ok(Err(e)) => {
                return Err(StoreError::Unreachable(format!("{}: {e}", redact(url))));
            }
            Err(_) => {
                return Err(StoreError::Unreachable(format!(
                    "{}: no answer within {:?}",
                    redact(url),
                    pool.acquire_timeout
                )));
            }
        }
        let pool_handle = PgPoolOptions::new()
            .max_connections(pool.max_connections)
            .min_connections(0)
            .acquire_timeout(pool.acquire_timeout)
            // sqlx warns of every acquire slower than 2 s; in an outage that is each
            // waiting operation, and the acquire time is a metric already.
            .acquire_slow_threshold(pool.acquire_timeout)
            .idle_timeout(Some(Duration::from_secs(60)))
            .connect_with(options)
            .await
            .map_err(|e| StoreError::Unreachable(format!("{}: {e}", redact(url))))?;
        Ok(Self::new(pool_handle))
    }
}

#[async_trait]
impl Dialect for Postgres {
    async fn exclude_others(conn: &mut PgConnection, what: Exclusive) -> Result<(), StoreError> {
        // Arbitrary constants, the same in every process: "mkauthky", "mkauthrv".
        let lock: i64 = match what {
            Exclusive::Keys => 0x6d6b_6175_7468_6b79,
            Exclusive::Revocations => 0x6d6b_6175_7468_7276,
            // "mkauthob"
            Exclusive::Outbox => 0x6d6b_6175_7468_6f62,
            // "mkauthsc"
            Exclusive::Secrets => 0x6d6b_6175_7468_7363,
        };
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock)
            .execute(conn)
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn read_one_snapshot(conn: &mut PgConnection) -> Result<(), StoreError> {
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(backend)?;
        Ok(())
    }

    async fn subscribe(pool: &Pool<Postgres>) -> Result<Option<Box<dyn ChangeFeed>>, StoreError> {
        let mut listener = PgListener::connect_with(pool).await.map_err(backend)?;
        listener.listen(CHANNEL).await.map_err(backend)?;
        Ok(Some(Box::new(PgChangeFeed { listener })))
    }

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    const SKIP_LOCKED: &'static str = "FOR UPDATE SKIP LOCKED";
    const SHARED_BY_REPLICAS: bool = true;

    fn migrator() -> &'static sqlx::migrate::Migrator {
        &MIGRATOR
    }

    const HAS_MIGRATIONS_TABLE: &'static str = "SELECT COUNT(*) FROM information_schema.tables \
         WHERE table_name = '_sqlx_migrations' AND table_schema = current_schema()";

    async fn backup(_: &mut PgConnection, _: &std::path::Path) -> Result<(), StoreError> {
        Err(StoreError::Backend(
            "`backup` copies SQLite databases; back up PostgreSQL with `pg_dump -Fc`".into(),
        ))
    }
}

/// `postgres user@host:port/db`, from the URL's parsed options: never the password.
pub(super) fn describe(url: &str) -> String {
    match PgConnectOptions::from_str(url) {
        Ok(o) => format!(
            "postgres {}@{}:{}/{}",
            o.get_username(),
            o.get_host(),
            o.get_port(),
            o.get_database().unwrap_or(o.get_username())
        ),
        Err(_) => redact(url),
    }
}

/// The URL without its password, for messages: `postgres://user:secret@host/db` →
/// `postgres://user:****@host/db`, and the same for a `password=` query parameter.
pub(crate) fn redact(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut out = match base.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((userinfo, host)) if userinfo.contains(':') => {
                let user = userinfo.split(':').next().unwrap_or_default();
                format!("{scheme}://{user}:****@{host}")
            }
            _ => base.to_owned(),
        },
        None => base.to_owned(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=****"),
                _ => p.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&params.join("&"));
    }
    out
}

/// `LISTEN moneykit_auth_changes`: wakes the refresher the moment another process
/// changes something. Notifications sent while the connection is down are lost; the
/// refresher's polling catches up on those.
pub struct PgChangeFeed {
    listener: PgListener,
}

#[async_trait]
impl ChangeFeed for PgChangeFeed {
    async fn changed(&mut self) -> Result<(), StoreError> {
        self.listener.recv().await.map(|_| ()).map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db.internal:5432/auth"),
            "postgres://app:****@db.internal:5432/auth"
        );
        assert_eq!(
            super::redact("postgres://app@db/auth"),
            "postgres://app@db/auth"
        );
        assert_eq!(
            super::redact("postgres://db/auth?sslmode=require&password=s3cret"),
            "postgres://db/auth?sslmode=require&password=****"
        );
        assert_eq!(
            super::redact("postgres://a:p@ss@db/auth"),
            "postgres://a:****@db/auth"
        );
        assert_eq!(super::redact("sqlite://x.db"), "sqlite://x.db");
    }
}
