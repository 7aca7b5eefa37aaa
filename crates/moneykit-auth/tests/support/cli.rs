//! The real `moneykit-auth` CLI, run as a separate process against a test database.

use std::process::{Command, Output};

use serde_json::Value;

/// The master secret every test server and CLI call uses.
pub const TEST_SECRET: &str = "test-master-secret-0123456789abcdef0123456789";

/// The `moneykit-auth` binary with `args` and `--database-url database_url`, the test
/// secret and no `RUST_LOG`, ready to run or spawn.
pub fn cli_command(database_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
    command
        .args(args)
        .arg("--database-url")
        .arg(database_url)
        .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
        .env_remove("RUST_LOG");
    command
}

/// Runs the real `moneykit-auth` binary with the test secret.
pub fn cli(database_url: &str, args: &[&str]) -> Output {
    cli_command(database_url, args)
        .output()
        .expect("the CLI runs")
}

/// [`cli`] on a blocking thread, so that a test's runtime keeps serving its other tasks
/// (load generators, servers in the same process) while the CLI runs.
pub async fn cli_async(database_url: &str, args: &[&str]) -> Output {
    let mut command = cli_command(database_url, args);
    super::blocking(move || command.output().expect("the CLI runs")).await
}

/// The stdout of a CLI call that must succeed, parsed as JSON.
pub fn cli_json(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "CLI failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("CLI printed JSON")
}

/// Asserts a CLI call failed with exactly one line on stderr, containing `needle`;
/// returns that line.
pub fn one_line_error(output: Output, needle: &str) -> String {
    assert!(!output.status.success(), "the command succeeded");
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(err.trim_end().lines().count(), 1, "{err:?}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    err
}

/// Creates an app named `name` through the CLI; returns its id.
pub fn cli_app(database_url: &str, name: &str) -> String {
    let app = cli_json(&cli(
        database_url,
        &["apps", "create", "--name", name, "--json"],
    ));
    app["app_id"].as_str().unwrap().to_owned()
}

/// Creates a client of `app_id` through the CLI; returns (client id, secret).
pub fn cli_client(database_url: &str, app_id: &str) -> (String, String) {
    let client = cli_json(&cli(
        database_url,
        &["clients", "create", "--app", app_id, "--json"],
    ));
    (
        client["client_id"].as_str().unwrap().to_owned(),
        client["client_secret"].as_str().unwrap().to_owned(),
    )
}

/// Creates an app named `name` and one client of it through the CLI; returns
/// (app id, client id, secret).
pub fn cli_app_and_client(database_url: &str, name: &str) -> (String, String, String) {
    let app_id = cli_app(database_url, name);
    let (client_id, secret) = cli_client(database_url, &app_id);
    (app_id, client_id, secret)
}

/// Points `app_id`'s webhooks at `url` through the CLI, allowing a loopback receiver over
/// plain HTTP; returns the app as printed.
pub fn set_webhook(database_url: &str, app_id: &str, url: &str) -> Value {
    let app = cli_json(&cli(
        database_url,
        &[
            "apps",
            "set-webhook",
            app_id,
            url,
            "--allow-http",
            "--allow-private-targets",
            "--json",
        ],
    ));
    assert_eq!(app["webhook_url"], url);
    app
}
