//! `--config FILE` (env `MONEYKIT_AUTH_CONFIG`): settings from a TOML file, and
//! `serve --print-config`.
//!
//! The file's keys are the long names of the flags that have an environment variable
//! (`listen = "0.0.0.0:8080"`, `token-ttl = 900`, `database-url = "…"`), plus `secret` and
//! `admin-token`, which stand in for `MONEYKIT_AUTH_SECRET` and `MONEYKIT_AUTH_ADMIN_TOKEN`.
//! Flags and environment variables win over the file. Flags without an environment
//! variable (those that name the object an admin command acts on, such as a client's
//! `--token-ttl`) are never taken from the file, for the same reason they are never taken
//! from the environment.
//!
//! The file is read before clap parses anything, and its settings are added to the
//! command line as `--key=value` arguments of the invoked command. That keeps clap the one
//! parser and validator of every value, and needs no process-wide environment changes
//! (which would need `unsafe`).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};

/// The environment variable that names the file, as `--config` does.
const CONFIG_ENV: &str = "MONEYKIT_AUTH_CONFIG";
/// The file keys that are not flags: each stands in for an environment variable.
const SECRET_KEYS: [(&str, &str); 2] = [
    ("secret", "MONEYKIT_AUTH_SECRET"),
    ("admin-token", "MONEYKIT_AUTH_ADMIN_TOKEN"),
];
/// What `--print-config` shows for a secret.
const MASK: &str = "****";

/// The secrets the config file holds, for [`master_secret`] and [`admin_token`].
static FILE_SECRETS: OnceLock<BTreeMap<&'static str, String>> = OnceLock::new();

/// The master secret: `MONEYKIT_AUTH_SECRET`, else the config file's `secret`.
pub(super) fn master_secret() -> Option<String> {
    env_or_file("MONEYKIT_AUTH_SECRET")
}

/// The admin API token: `MONEYKIT_AUTH_ADMIN_TOKEN`, else the config file's `admin-token`.
pub(super) fn admin_token() -> Option<String> {
    env_or_file("MONEYKIT_AUTH_ADMIN_TOKEN")
}

/// The environment variable, else the file's value: the environment wins, as it does for
/// every flag. An empty variable (`MONEYKIT_AUTH_SECRET=` left blank in a systemd
/// `EnvironmentFile`) gives way to the file; with no file it stays empty and is refused as
/// too short.
fn env_or_file(var: &'static str) -> Option<String> {
    let env = std::env::var(var).ok();
    env.clone()
        .filter(|v| !v.is_empty())
        .or_else(|| FILE_SECRETS.get()?.get(var).cloned())
        .or(env)
}

/// Where [`env_or_file`] takes `var` from, for `--print-config`.
fn secret_source(var: &str, file: &BTreeMap<&'static str, String>) -> Option<String> {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => Some(format!("env {var}")),
        _ if file.contains_key(var) => Some("file".into()),
        Some(_) => Some(format!("env {var} (empty)")),
        None => None,
    }
}

/// The command line, parsed with the config file's settings added.
pub(super) struct Parsed<T> {
    /// The parsed command line.
    pub(super) cli: T,
    /// The text `serve --print-config` prints, when that is what was asked.
    pub(super) print_config: Option<String>,
}

/// Parses the process's arguments as `T` after adding the config file's settings; errors
/// (the file's included) come back as clap errors, so they print and exit as usage errors.
pub(super) fn parse<T: CommandFactory + FromArgMatches>() -> Result<Parsed<T>, clap::Error> {
    let argv: Vec<OsString> = std::env::args_os().collect();
    let mut cmd = T::command();
    cmd.build();
    let loaded = load(&cmd, &argv, |name| std::env::var_os(name).is_some())
        .map_err(|e| clap::Error::raw(clap::error::ErrorKind::InvalidValue, e + "\n"))?;
    let matches = cmd.try_get_matches_from_mut(&loaded.argv)?;
    let cli = T::from_arg_matches(&matches)?;
    let print_config = matches
        .subcommand_matches("serve")
        .filter(|serve| serve.get_flag("print_config"))
        .map(|serve| print_config(&cmd, &matches, serve, &loaded));
    let _ = FILE_SECRETS.set(loaded.secrets);
    Ok(Parsed { cli, print_config })
}

/// The command line with the file's settings added, and what came from the file.
#[derive(Default)] // No Debug: it holds secrets.
struct Loaded {
    /// The file, when there is one.
    path: Option<PathBuf>,
    /// The arguments to parse.
    argv: Vec<OsString>,
    /// Ids of the arguments whose value came from the file.
    from_file: BTreeSet<String>,
    /// `secret` and `admin-token`, keyed by the environment variable they stand in for.
    secrets: BTreeMap<&'static str, String>,
}

/// Reads the config file named by `--config` or `MONEYKIT_AUTH_CONFIG` (none: `argv`
/// unchanged) and adds its settings to `argv`. `cmd` is the built command (so subcommands
/// hold the global arguments); `env_is_set` says whether an environment variable is set.
fn load(
    cmd: &Command,
    argv: &[OsString],
    env_is_set: impl Fn(&OsStr) -> bool,
) -> Result<Loaded, String> {
    let path = config_path(argv, env_is_set(OsStr::new(CONFIG_ENV)));
    let Some(path) = path else {
        return Ok(Loaded {
            argv: argv.to_vec(),
            ..Loaded::default()
        });
    };
    let shown = path.display();
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read config file {shown}: {}", io_reason(&e)))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| format!("config file {shown}: {}", toml_reason(&e, &text)))?;
    let mut loaded =
        augment(cmd, argv, &table, &env_is_set).map_err(|e| format!("config file {shown}: {e}"))?;
    if holds_secrets(cmd, &table) {
        check_private(&path)?;
    }
    loaded.path = Some(path);
    Ok(loaded)
}

/// The config file's path: `--config FILE` or `--config=FILE`, else the environment
/// variable.
fn config_path(argv: &[OsString], env_set: bool) -> Option<PathBuf> {
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--" {
            break;
        }
        if arg == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = arg.to_str().and_then(|a| a.strip_prefix("--config=")) {
            return Some(PathBuf::from(path));
        }
    }
    if env_set {
        std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    } else {
        None
    }
}

/// Adds `table`'s settings to `argv` as `--key=value` arguments of the invoked command,
/// skipping those given as a flag or an environment variable.
fn augment(
    cmd: &Command,
    argv: &[OsString],
    table: &toml::Table,
    env_is_set: impl Fn(&OsStr) -> bool,
) -> Result<Loaded, String> {
    let invoked = invoked(cmd, argv);
    let mut known = BTreeSet::new();
    settings(cmd, &mut known);
    let end = argv.iter().position(|a| a == "--").unwrap_or(argv.len());
    let given = &argv[..end];
    let mut added = Vec::new();
    let mut loaded = Loaded::default();
    let mut seen = BTreeSet::new();
    for (raw_key, value) in table {
        let key = raw_key.replace('_', "-");
        if !seen.insert(key.clone()) {
            return Err(format!(
                "`{raw_key}` is given twice (as `{key}` and with underscores)"
            ));
        }
        if let Some(&(_, var)) = SECRET_KEYS.iter().find(|(k, _)| *k == key) {
            let toml::Value::String(secret) = value else {
                return Err(format!("`{key}` must be a string, not {}", kind(value)));
            };
            loaded.secrets.insert(var, secret.clone());
            continue;
        }
        if !known.contains(&key) {
            return Err(format!(
                "unknown key `{raw_key}` (keys are the long names of flags that have an environment variable, and secret, admin-token)"
            ));
        }
        let Some(arg) = invoked
            .get_arguments()
            .find(|a| a.get_env().is_some() && a.get_long() == Some(key.as_str()))
        else {
            continue; // A setting of another command: one file serves them all.
        };
        let flag = format!("--{key}");
        let on_command_line = given.iter().any(|a| {
            a.to_str()
                .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
        });
        if on_command_line || arg.get_env().is_some_and(&env_is_set) {
            continue;
        }
        let values = match arg.get_action() {
            ArgAction::SetTrue => match value {
                toml::Value::Boolean(true) => vec![flag],
                toml::Value::Boolean(false) => vec![],
                other => {
                    return Err(format!(
                        "`{key}` must be true or false, not {}",
                        kind(other)
                    ));
                }
            },
            ArgAction::Append => match value {
                toml::Value::Array(items) => items
                    .iter()
                    .map(|v| scalar(&key, v).map(|v| format!("{flag}={v}")))
                    .collect::<Result<_, _>>()?,
                other => vec![format!("{flag}={}", scalar(&key, other)?)],
            },
            _ => vec![format!("{flag}={}", scalar(&key, value)?)],
        };
        if !values.is_empty() {
            loaded.from_file.insert(arg.get_id().to_string());
        }
        added.extend(values.into_iter().map(OsString::from));
    }
    loaded.argv = given
        .iter()
        .cloned()
        .chain(added)
        .chain(argv[end..].iter().cloned())
        .collect();
    Ok(loaded)
}

/// The deepest subcommand `argv` invokes, found by walking it as clap does: a `--flag`
/// that takes a value skips the next argument, a word that names a subcommand enters it.
fn invoked<'c>(root: &'c Command, argv: &[OsString]) -> &'c Command {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let mut cmd = root;
    let mut args = argv.iter().skip(1);
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        if let Some(long) = arg.strip_prefix("--") {
            if !long.contains('=')
                && cmd
                    .get_arguments()
                    .any(|a| a.get_long() == Some(long) && takes_value(a))
            {
                args.next();
            }
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| s.chars().count() == 1) {
            let short = short.chars().next();
            if cmd
                .get_arguments()
                .any(|a| a.get_short() == short && takes_value(a))
            {
                args.next();
            }
        } else if let Some(sub) = cmd.find_subcommand(arg) {
            cmd = sub;
        }
    }
    cmd
}

/// Collects the long names of every argument with an environment variable, in `cmd` and
/// its subcommands: the keys a config file may hold.
fn settings(cmd: &Command, out: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let (Some(long), Some(_)) = (arg.get_long(), arg.get_env())
            && long != "config"
        {
            out.insert(long.to_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        settings(sub, out);
    }
}

/// A value as the command line would give it.
fn scalar(key: &str, value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(i) => Ok(i.to_string()),
        toml::Value::Float(f) => Ok(f.to_string()),
        other => Err(format!(
            "`{key}` must be a string or a number, not {}",
            kind(other)
        )),
    }
}

/// A TOML value's type, for error messages.
fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "an array",
        toml::Value::Table(_) => "a table",
    }
}

/// Whether the file holds something that must not be readable by others: `secret`,
/// `admin-token`, a database URL with a password, or a value of a flag whose environment
/// variable is hidden (`--client-secret`).
fn holds_secrets(cmd: &Command, table: &toml::Table) -> bool {
    let mut hidden = BTreeSet::new();
    hidden_settings(cmd, &mut hidden);
    table.iter().any(|(key, value)| {
        let key = key.replace('_', "-");
        SECRET_KEYS.iter().any(|(k, _)| *k == key)
            || hidden.contains(&key)
            || (key == "database-url"
                && value
                    .as_str()
                    .is_some_and(|url| crate::store::redact(url) != url))
    })
}

/// Collects the long names of the arguments whose environment values `--help` hides.
fn hidden_settings(cmd: &Command, out: &mut BTreeSet<String>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long().filter(|_| arg.is_hide_env_values_set()) {
            out.insert(long.to_owned());
        }
    }
    for sub in cmd.get_subcommands() {
        hidden_settings(sub, out);
    }
}

/// Refuses a file that holds secrets and that group or others may read.
#[cfg(unix)]
fn check_private(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("cannot read config file {shown}: {}", io_reason(&e)))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(format!(
            "config file {shown} holds a secret and is accessible to group or others (mode {:o}): chmod 600 {shown}",
            mode & 0o777
        ));
    }
    Ok(())
}

/// File modes are a Unix matter.
#[cfg(not(unix))]
fn check_private(_: &Path) -> Result<(), String> {
    Ok(())
}

/// An I/O error without Rust's `(os error 2)` suffix.
fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// A TOML error on one line, with the line it is on (the crate's own message spans
/// several lines and draws the source).
fn toml_reason(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// The effective settings of `serve` as TOML: the global settings, then every `serve`
/// flag, then the secrets; each value says where it came from, secrets are masked.
fn print_config(
    cmd: &Command,
    matches: &ArgMatches,
    serve: &ArgMatches,
    loaded: &Loaded,
) -> String {
    let mut out = String::from(
        "# moneykit-auth serve: effective settings (a flag wins over the environment, which wins over the config file)\n",
    );
    match &loaded.path {
        Some(path) => writeln!(out, "# config file: {}", path.display()),
        None => writeln!(out, "# config file: none"),
    }
    .expect("writing to a String");
    let serve_cmd = cmd.find_subcommand("serve").expect("serve is a subcommand");
    let globals = cmd
        .get_arguments()
        .filter(|a| a.is_global_set() && !matches!(a.get_id().as_str(), "json" | "config"));
    let globals: Vec<_> = globals.map(|a| (a, matches)).collect();
    let own = serve_cmd
        .get_arguments()
        .filter(|a| !a.is_global_set() && a.get_long().is_some() && a.get_id() != "print_config")
        .filter(|a| !matches!(a.get_action(), ArgAction::Help | ArgAction::Version));
    for (arg, matches) in globals.into_iter().chain(own.map(|a| (a, serve))) {
        let id = arg.get_id().as_str();
        let key = arg.get_long().unwrap_or(id);
        let source = if loaded.from_file.contains(id) {
            "file".to_owned()
        } else {
            match matches.value_source(id) {
                Some(ValueSource::CommandLine) => "flag".to_owned(),
                Some(ValueSource::EnvVariable) => {
                    format!(
                        "env {}",
                        arg.get_env().unwrap_or_default().to_string_lossy()
                    )
                }
                _ => "default".to_owned(),
            }
        };
        let raw: Vec<String> = matches
            .get_raw(id)
            .map(|values| values.map(|v| v.to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let shown = |text: &str| -> toml::Value {
            if arg.is_hide_env_values_set() {
                MASK.into()
            } else if key == "database-url" {
                crate::store::redact(text).into()
            } else {
                toml_value(arg, text)
            }
        };
        let value = match (arg.get_action(), raw.as_slice()) {
            (ArgAction::Append, values) => {
                toml::Value::Array(values.iter().map(|v| shown(v)).collect())
            }
            (_, [one]) => shown(one),
            _ => {
                writeln!(out, "# {key}: not set").expect("writing to a String");
                continue;
            }
        };
        writeln!(out, "{key} = {value}  # {source}").expect("writing to a String");
    }
    for (key, var) in SECRET_KEYS {
        let Some(source) = secret_source(var, &loaded.secrets) else {
            writeln!(out, "# {key}: not set").expect("writing to a String");
            continue;
        };
        writeln!(out, "{key} = \"{MASK}\"  # {source}").expect("writing to a String");
    }
    out
}

/// A raw value as the TOML value a config file would hold: `true`/`false` for switches,
/// a number when the text is one, else a string.
fn toml_value(arg: &clap::Arg, text: &str) -> toml::Value {
    if matches!(arg.get_action(), ArgAction::SetTrue)
        && let Ok(b) = text.parse::<bool>()
    {
        return b.into();
    }
    if let Ok(i) = text.parse::<i64>()
        && i.to_string() == text
    {
        return i.into();
    }
    let decimal =
        text.chars().all(|c| c.is_ascii_digit() || c == '.') && text.matches('.').count() == 1;
    match text.parse::<f64>() {
        Ok(f) if decimal && f.is_finite() => f.into(),
        _ => text.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn command() -> Command {
        let mut cmd = Cli::command();
        cmd.build();
        cmd
    }

    fn argv(args: &[&str]) -> Vec<OsString> {
        std::iter::once("moneykit-auth")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// The arguments `augment` adds for `file` to `args`, with `env` the set variables.
    fn added(args: &[&str], file: &str, env: &[&str]) -> Result<Vec<String>, String> {
        let table: toml::Table = file.parse().unwrap();
        let given = argv(args);
        let loaded = augment(&command(), &given, &table, |name| {
            env.iter().any(|e| name == *e)
        })?;
        assert_eq!(
            loaded.argv[..given.len().min(loaded.argv.len())],
            given[..],
            "appends only"
        );
        Ok(loaded.argv[given.len()..]
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect())
    }

    #[test]
    fn file_settings_become_flags_of_the_invoked_command() {
        let file = r#"
            listen = "0.0.0.0:8080"
            token_ttl = 900
            demo = true
            webhooks-allow-http = false
            trusted-proxy = ["10.0.0.0/8", "192.168.0.0/16"]
            database-url = "sqlite:///var/lib/x.db"
            token-rate-per-client = 12.5
        "#;
        let args = added(&["serve"], file, &[]).unwrap();
        for expected in [
            "--listen=0.0.0.0:8080",
            "--token-ttl=900",
            "--demo",
            "--trusted-proxy=10.0.0.0/8",
            "--trusted-proxy=192.168.0.0/16",
            "--database-url=sqlite:///var/lib/x.db",
            "--token-rate-per-client=12.5",
        ] {
            assert!(args.iter().any(|a| a == expected), "{expected} in {args:?}");
        }
        assert!(
            !args.iter().any(|a| a.contains("webhooks-allow-http")),
            "{args:?}"
        );
        let cli = Cli::try_parse_from(
            argv(&["serve"])
                .into_iter()
                .chain(args.into_iter().map(OsString::from)),
        );
        assert!(cli.is_ok(), "{cli:?}");
    }

    #[test]
    fn flags_and_environment_variables_win_over_the_file() {
        let file = "listen = \"0.0.0.0:1\"\ntoken-ttl = 900\nissuer = \"https://a.example\"";
        let args = added(
            &["serve", "--listen", "127.0.0.1:2", "--token-ttl=60"],
            file,
            &["MONEYKIT_AUTH_ISSUER"],
        )
        .unwrap();
        assert!(args.is_empty(), "{args:?}");
    }

    #[test]
    fn settings_of_other_commands_and_object_arguments_are_left_alone() {
        // `listen` is a serve setting; `apps list` ignores it. A client's `--token-ttl`
        // has no environment variable, so the file does not set it either.
        let file = "listen = \"0.0.0.0:1\"\ntoken-ttl = 900\ndatabase-url = \"sqlite://x.db\"";
        assert_eq!(
            added(&["--json", "apps", "list"], file, &[]).unwrap(),
            ["--database-url=sqlite://x.db"]
        );
        assert_eq!(
            added(&["clients", "create", "--app", "serve"], file, &[]).unwrap(),
            ["--database-url=sqlite://x.db"]
        );
        // A value that looks like a subcommand does not move the search.
        assert_eq!(
            added(
                &["--database-url", "serve", "apps", "list"],
                "listen = \"0.0.0.0:1\"",
                &[]
            )
            .unwrap(),
            Vec::<String>::new()
        );
        // Keys shared by two commands apply to the invoked one.
        assert_eq!(
            added(&["keys", "rotate"], "key-activation-delay = \"1h\"", &[]).unwrap(),
            ["--key-activation-delay=1h"]
        );
    }

    #[test]
    fn arguments_after_a_double_dash_stay_last() {
        let table: toml::Table = "listen = \"0.0.0.0:1\"".parse().unwrap();
        let given = argv(&["serve", "--", "x"]);
        let loaded = augment(&command(), &given, &table, |_| false).unwrap();
        let args: Vec<_> = loaded.argv.iter().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            ["moneykit-auth", "serve", "--listen=0.0.0.0:1", "--", "x"]
        );
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_one_line_errors() {
        for (file, needle) in [
            ("lissten = \"x\"", "unknown key `lissten`"),
            ("name = \"x\"", "unknown key `name`"),
            ("config = \"other.toml\"", "unknown key `config`"),
            (
                "demo = \"yes\"",
                "`demo` must be true or false, not a string",
            ),
            (
                "listen = true",
                "`listen` must be a string or a number, not a boolean",
            ),
            ("trusted-proxy = [[\"x\"]]", "not an array"),
            ("[serve]\nlisten = \"x\"", "unknown key `serve`"),
            ("secret = 5", "`secret` must be a string"),
            ("token-ttl = 1\ntoken_ttl = 2", "given twice"),
        ] {
            let err = added(&["serve"], file, &[]).unwrap_err();
            assert!(err.contains(needle), "{file:?}: {err}");
            assert!(!err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn secrets_are_kept_aside_and_mark_the_file_private() {
        let cmd = command();
        let table: toml::Table = "secret = \"s\"\nadmin_token = \"t\"".parse().unwrap();
        let loaded = augment(&cmd, &argv(&["serve"]), &table, |_| false).unwrap();
        assert_eq!(loaded.secrets["MONEYKIT_AUTH_SECRET"], "s");
        assert_eq!(loaded.secrets["MONEYKIT_AUTH_ADMIN_TOKEN"], "t");
        assert_eq!(loaded.argv, argv(&["serve"]), "secrets are not flags");
        for (file, secret) in [
            ("secret = \"s\"", true),
            ("admin-token = \"s\"", true),
            ("client-secret = \"s\"", true),
            ("database-url = \"postgres://u:pw@h/db\"", true),
            ("database-url = \"postgres://h/db?password=pw\"", true),
            ("database-url = \"postgres://u@h/db\"", false),
            ("listen = \"0.0.0.0:1\"", false),
        ] {
            assert_eq!(
                holds_secrets(&cmd, &file.parse().unwrap()),
                secret,
                "{file}"
            );
        }
    }

    #[test]
    fn the_config_path_comes_from_the_flag_first() {
        let path = |args: &[&str]| config_path(&argv(args), false);
        assert_eq!(
            path(&["--config", "a.toml", "serve"]),
            Some("a.toml".into())
        );
        assert_eq!(path(&["serve", "--config=b.toml"]), Some("b.toml".into()));
        assert_eq!(path(&["serve", "--", "--config", "c.toml"]), None);
        assert_eq!(path(&["serve"]), None);
    }

    #[test]
    fn printed_values_keep_their_toml_type() {
        let cmd = command();
        let serve = cmd.find_subcommand("serve").unwrap();
        let arg = |id: &str| {
            serve
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap()
                .clone()
        };
        assert_eq!(toml_value(&arg("token_ttl"), "3600"), 3600.into());
        assert_eq!(
            toml_value(&arg("token_rate_per_client"), "1000.5"),
            1000.5.into()
        );
        assert_eq!(toml_value(&arg("demo"), "false"), false.into());
        assert_eq!(
            toml_value(&arg("listen"), "127.0.0.1:8080"),
            "127.0.0.1:8080".into()
        );
        assert_eq!(
            toml_value(&arg("refresh_interval"), "200ms"),
            "200ms".into()
        );
        assert_eq!(toml_value(&arg("token_ttl"), "007"), "007".into());
    }
}
