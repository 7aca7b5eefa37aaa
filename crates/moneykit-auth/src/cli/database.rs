//! Which database a command acts on, and the commands that manage the database itself:
//! `init`, `migrate`, `backup`.
//!
//! An operator who forgot `MONEYKIT_AUTH_DATABASE_URL` must not "rotate the key" in a
//! new file in the current directory: without a URL, the CLI uses `./moneykit-auth.db`
//! only if it exists (or for `serve --demo`), and only commands that start something new
//! create a database you named. Every command says which database it used.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::Args;
use serde_json::json;

use super::output::Output;
use crate::config::{DEFAULT_DATABASE_URL, check_master_secret, resolve_master_key};
use crate::operations;
use crate::store::{self, Migrations, OpenMode, PoolSettings, Store};

/// The database a command acts on.
#[derive(Debug)]
pub struct Database {
    url: String,
    /// Named by `--database-url` or `MONEYKIT_AUTH_DATABASE_URL`, not the default.
    named: bool,
    /// Whether the command opened it, so the outcome can name it.
    used: AtomicBool,
}

impl Database {
    /// The given URL, or the default file.
    pub fn new(url: Option<String>) -> Self {
        match url.filter(|u| !u.trim().is_empty()) {
            Some(url) => Self {
                url,
                named: true,
                used: AtomicBool::new(false),
            },
            None => Self {
                url: DEFAULT_DATABASE_URL.to_owned(),
                named: false,
                used: AtomicBool::new(false),
            },
        }
    }

    /// The URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the user named it (`serve` and `apps create` may then create it).
    pub fn named(&self) -> bool {
        self.named
    }

    /// Opens a database whose schema is exactly this build's (admin commands).
    pub async fn open(&self) -> anyhow::Result<Arc<dyn Store>> {
        self.open_with(OpenMode::MustExist, Migrations::Refuse)
            .await
    }

    /// Opens the database, creating and initializing it if it was named and is new
    /// (`apps create`: the first command of a new deployment).
    pub async fn open_or_create(&self) -> anyhow::Result<Arc<dyn Store>> {
        let mode = if self.named {
            OpenMode::CreateIfMissing
        } else {
            OpenMode::MustExist
        };
        self.open_with(mode, Migrations::ApplyIfEmpty).await
    }

    async fn open_with(
        &self,
        mode: OpenMode,
        migrations: Migrations,
    ) -> anyhow::Result<Arc<dyn Store>> {
        let opened = store::open(&self.url, mode, migrations, &PoolSettings::default()).await;
        let store = opened.map_err(|e| self.explain(e))?;
        self.mark_used();
        Ok(store)
    }

    /// Connects to an existing database whatever its schema (`migrate`, `backup`).
    async fn connect_as_is(&self) -> anyhow::Result<Arc<dyn Store>> {
        let store = store::connect(&self.url, OpenMode::MustExist)
            .await
            .map_err(|e| self.explain(e))?;
        self.mark_used();
        Ok(store)
    }

    /// Records that the command acts on this database: its outcome names it.
    pub fn mark_used(&self) {
        self.used.store(true, Ordering::Relaxed);
    }

    /// Which database the command acted on, if it opened one: `sqlite /abs/path` or
    /// `postgres user@host:port/db`, never a password.
    pub fn acted_on(&self) -> Option<String> {
        self.used
            .load(Ordering::Relaxed)
            .then(|| store::describe(&self.url))
    }

    /// A missing default database is the forgotten-URL case: say that, not only that a
    /// file is missing.
    pub fn explain(&self, error: store::StoreError) -> anyhow::Error {
        match error {
            store::StoreError::Missing(_) if !self.named => anyhow::anyhow!(
                "no database: neither --database-url nor MONEYKIT_AUTH_DATABASE_URL is set, \
                 and the default {DEFAULT_DATABASE_URL} does not exist here; nothing was created"
            ),
            other => other.into(),
        }
    }
}

/// `moneykit-auth migrate`.
#[derive(Debug, Args)]
pub(super) struct MigrateArgs {
    /// List the pending migrations without applying them.
    #[arg(long)]
    dry_run: bool,
}

/// `moneykit-auth backup`.
#[derive(Debug, Args)]
pub(super) struct BackupArgs {
    /// Where to write the copy (must not exist); readable by its owner only.
    file: PathBuf,
}

/// Creates the database if needed, applies every migration and creates the first
/// signing key. Running it again on an initialized database changes nothing.
pub(super) async fn init(db: &Database, out: Output) -> anyhow::Result<()> {
    let secret = super::config_file::master_secret();
    check_master_secret(db.url(), secret.as_deref())?;
    let store = db
        .open_with(OpenMode::CreateIfMissing, Migrations::Apply)
        .await?;
    let (master, _) = resolve_master_key(db.url(), secret.as_deref(), &store.list_keys().await?)?;
    let created = operations::ensure_first_key(store.as_ref(), &master).await?;
    let version = store.schema().await?.version();
    let value = json!({
        "database": store::describe(db.url()),
        "schema_version": version,
        "created_signing_key": created.as_ref().map(|k| k.kid.clone()),
    });
    out.emit(&value, || match &created {
        Some(key) => format!(
            "Initialized: schema version {version}, first signing key {}",
            key.kid
        ),
        None => format!("Already initialized: schema version {version}, signing key present"),
    });
    Ok(())
}

/// Lists and applies pending migrations.
pub(super) async fn migrate(args: MigrateArgs, db: &Database, out: Output) -> anyhow::Result<()> {
    let store = db.connect_as_is().await?;
    let schema = store.schema().await?;
    if !schema.unknown.is_empty() {
        schema.check(&store::describe(db.url()))?;
    }
    let pending: Vec<_> = schema
        .pending
        .iter()
        .map(|m| json!({"version": m.version, "description": m.description}))
        .collect();
    let applied = if args.dry_run || schema.pending.is_empty() {
        Vec::new()
    } else {
        store.migrate().await?
    };
    let version = if applied.is_empty() {
        schema.version()
    } else {
        schema.latest_known
    };
    let value = json!({
        "schema_version": version,
        "pending": pending,
        "applied": applied.iter().map(|m| m.version).collect::<Vec<_>>(),
        "dry_run": args.dry_run,
    });
    out.emit(&value, || {
        let list = |verb: &str| {
            schema
                .pending
                .iter()
                .map(|m| format!("{verb} {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        if schema.pending.is_empty() {
            format!("Up to date: schema version {}", schema.version())
        } else if args.dry_run {
            format!(
                "Schema version {}; {} pending (not applied, --dry-run):\n{}",
                schema.version(),
                schema.pending.len(),
                list("pending")
            )
        } else {
            format!("{}\nNow at schema version {version}", list("applied"))
        }
    });
    Ok(())
}

/// Writes a consistent copy of a SQLite database while the server runs.
pub(super) async fn backup(args: BackupArgs, db: &Database, out: Output) -> anyhow::Result<()> {
    let store = db.connect_as_is().await?;
    store.backup(&args.file).await?;
    let file = args.file.display().to_string();
    out.emit(&json!({ "backup": file }), || {
        format!("Wrote a consistent copy to {file} (mode 0600)")
    });
    Ok(())
}
