//! The command line (PRODUCT.md §5): `serve`, `apps`, `clients`, `keys`, `token`,
//! `webhooks`.
//!
//! Every flag can also be set by an environment variable `MONEYKIT_AUTH_<FLAG>` (or a key of
//! the `--config` file, see `config_file`), except
//! the arguments that name or describe the object an admin command acts on (`--app`,
//! `--name`, `--scope`, `--at`, a client's `--token-ttl`) or ask for a one-off action
//! (`keys rotate --now`), which would be dangerous to pick up from the environment by
//! accident. Errors print one line on stderr and exit
//! non-zero; nothing is written unless the whole input is valid.

mod apps;
mod clients;
mod config_file;
mod keys;
mod output;
mod serve;
mod token;
mod webhooks;

use std::process::ExitCode;

use clap::builder::FalseyValueParser;
use clap::{Parser, Subcommand};

use crate::config::DEFAULT_DATABASE_URL;
use crate::store::{self, OpenMode, Store};
use crate::telemetry::{self, LogFormat};

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

    /// Database URL: sqlite://PATH or postgres://USER:PASSWORD@HOST/DB. With SQLite, only
    /// `serve` and `apps create` create a missing database.
    #[arg(long, global = true, env = "MONEYKIT_AUTH_DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,

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
    /// Get an access token from a running server (client credentials).
    Token(token::TokenArgs),
    /// Queue, list and retry webhook events.
    #[command(subcommand)]
    Webhooks(webhooks::WebhooksCommand),
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
    telemetry::init(cli.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("cannot start the async runtime");
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&format!("{e:#}")));
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

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let out = output::Output { json: cli.json };
    match cli.command {
        Command::Serve(args) => serve::run(*args, &cli.database_url, out).await,
        Command::Apps(cmd) => apps::run(cmd, &cli.database_url, out).await,
        Command::Clients(cmd) => clients::run(cmd, &cli.database_url, out).await,
        Command::Keys(cmd) => keys::run(cmd, &cli.database_url, out).await,
        Command::Token(args) => token::run(args, out).await,
        Command::Webhooks(cmd) => webhooks::run(cmd, &cli.database_url, out).await,
    }
}

/// Opens the store for an admin command; read-only commands do not create a database.
async fn open(database_url: &str, mode: OpenMode) -> anyhow::Result<std::sync::Arc<dyn Store>> {
    Ok(store::connect(database_url, mode).await?)
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
