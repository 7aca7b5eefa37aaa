//! The command line: `serve`, `apps`, `clients`, `keys`, `token`, `webhooks`, and the
//! database's own `init`, `migrate`, `backup`.
//!
//! Every flag can also be set by an environment variable `MONEYKIT_AUTH_<FLAG>` (or a key of
//! the `--config` file, see `config_file`), except
//! the arguments that name or describe the object an admin command acts on (`--app`,
//! `--name`, `--scope`, `--at`, a client's `--token-ttl`) or ask for a one-off action
//! (`keys rotate --now`), which would be dangerous to pick up from the environment by
//! accident. Errors print one line on stderr and exit
//! non-zero; nothing is written unless the whole input is valid.

mod apps;
mod audit;
mod clients;
mod config_file;
mod database;
mod keys;
mod output;
mod serve;
mod token;
mod webhooks;

use std::process::ExitCode;

use clap::builder::FalseyValueParser;
use clap::{Parser, Subcommand};

use crate::telemetry::{self, LogFormat};
pub use database::Database;

/// moneykit-auth: a MoneyKit-compatible OAuth 2.0 access token service.
#[derive(Debug, Parser)]
#[command(
    name = "moneykit-auth",
    version,
    about,
    max_term_width = 100,
    after_help = "Environment:\n  MONEYKIT_AUTH_SECRET  The master secret (32+ characters) that seals signing keys. \
                  Required with PostgreSQL; without it a SQLite database gets a key file beside it"
)]
pub struct Cli {
    /// Read settings from this TOML file (keys: the long flag names, e.g. `listen`,
    /// `token-ttl`, `database-url`; `secret` and `admin-token` stand in for their
    /// variables); flags and environment variables win over it.
    #[arg(long, global = true, env = "MONEYKIT_AUTH_CONFIG", value_name = "FILE")]
    config: Option<std::path::PathBuf>,

    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. Unset: ./moneykit-auth.db
    /// if it exists. Only `init`, `serve` and `apps create` create a database, and only one
    /// named here (or `serve --demo`).
    #[arg(long, global = true, env = "MONEYKIT_AUTH_DATABASE_URL")]
    database_url: Option<String>,

    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true, env = "MONEYKIT_AUTH_JSON", value_parser = FalseyValueParser::new())]
    json: bool,

    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "MONEYKIT_AUTH_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,

    /// This process's name on every log line (`instance=`), e.g. the host or pod name: 1-64
    /// letters, digits, '.', '_', '-' or ':' [default: 12 random hex characters].
    #[arg(long, global = true, env = "MONEYKIT_AUTH_INSTANCE_ID", value_parser = telemetry::parse_instance_id)]
    instance_id: Option<String>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(Box<serve::ServeArgs>),
    /// Manage apps.
    #[command(subcommand)]
    Apps(apps::AppsCommand),
    /// Manage clients (credentials of an app).
    #[command(subcommand)]
    Clients(clients::ClientsCommand),
    /// Manage signing keys.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Get an access token from a running server: with a client secret, a private key
    /// (private_key_jwt) or a workload's platform token (federation).
    Token(token::TokenArgs),
    /// Read the audit trail: who changed what, and refused attempts.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Queue, list and retry webhook events.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
    /// Create the database if needed, apply every migration, create the first signing key.
    Init,
    /// Apply pending schema migrations (`serve` applies them only with --migrate).
    Migrate(database::MigrateArgs),
    /// Write a consistent copy of a SQLite database while the server runs.
    Backup(database::BackupArgs),
}

/// Parses the command line, runs the command, and turns any failure into one line on
/// stderr and a non-zero exit.
pub fn run() -> ExitCode {
    let cli = match config_file::parse::<Cli>() {
        Ok(config_file::Parsed {
            print_config: Some(text),
            ..
        }) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(parsed) => parsed.cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return ExitCode::from(2);
        }
    };
    telemetry::init(cli.log_format, cli.instance_id.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    let db = Database::new(cli.database_url.clone());
    let outcome = runtime.block_on(dispatch(cli, &db));
    // Every command that used a database names it (on stderr: stdout is the result), so
    // an operator sees at once when a command acted on the wrong one.
    let acted_on = db.acted_on();
    match outcome {
        Ok(()) => {
            if let Some(database) = acted_on {
                eprintln!("database: {database}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            let mut line = format!("error: {}", one_line(&format!("{e:#}")));
            if let Some(database) = acted_on {
                line.push_str(&format!(" (database: {database})"));
            }
            eprintln!("{line}");
            ExitCode::FAILURE
        }
    }
}

/// Collapses a multi-line message (clap's usage errors) into one line, dropping the usage
/// and help hints.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

async fn dispatch(cli: Cli, db: &Database) -> anyhow::Result<()> {
    let out = output::Output { json: cli.json };
    match cli.command {
        Command::Serve(args) => serve::run(*args, db, out).await,
        Command::Apps(cmd) => apps::run(cmd, db, out).await,
        Command::Clients(cmd) => clients::run(cmd, db, out).await,
        Command::Keys(cmd) => keys::run(cmd, db, out).await,
        Command::Token(args) => token::run(args, out).await,
        Command::Webhooks(cmd) => webhooks::run(cmd, db, out).await,
        Command::Audit(cmd) => audit::run(cmd, db, out).await,
        Command::Init => database::init(db, out).await,
        Command::Migrate(args) => database::migrate(args, db, out).await,
        Command::Backup(args) => database::backup(args, db, out).await,
    }
}

/// Parses a duration given as seconds (`600`) or with units (`10m`, `30d`, `1h 30m`).
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("{e} (use seconds, or units like 10m, 30d)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_errors_collapse_to_one_line() {
        let e = Cli::try_parse_from(["moneykit-auth", "clients", "create"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(!line.contains('\n'));
        assert!(line.contains("--app"), "{line}");
    }

    #[test]
    fn durations_take_seconds_or_units() {
        assert_eq!(parse_duration("600").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("10m").unwrap().as_secs(), 600);
        assert_eq!(parse_duration("30d").unwrap().as_secs(), 30 * 86400);
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
