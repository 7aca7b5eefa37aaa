//! The admin CLI against a running server: output shapes, changes reaching the server
//! within a second, and bad input that changes nothing.

use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failed command: non-zero exit, exactly one line on stderr that mentions `needle`.
fn assert_one_line_error(output: &std::process::Output, needle: &str) {
    assert!(!output.status.success(), "expected failure, got {output:?}");
    let err = stderr(output);
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line on stderr: {err:?}"
    );
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
    assert!(output.stdout.is_empty(), "nothing on stdout");
}

#[tokio::test]
async fn cli_json_output_has_the_documented_fields() {
    let app = spawn_app().await;
    let created = cli_json(
        &app.cli_async(&["apps", "create", "--name", "CLI App", "--json"])
            .await,
    );
    assert_eq!(created["name"], "CLI App");
    let app_id = created["app_id"].as_str().unwrap();

    let client = cli_json(
        &app.cli_async(&[
            "clients", "create", "--app", app_id, "--name", "svc", "--scope", "a b", "--json",
        ])
        .await,
    );
    for field in ["client_id", "client_secret", "app_id", "scope"] {
        assert!(client[field].is_string(), "{field} in {client}");
    }
    assert_eq!(client["app_id"], app_id);
    assert_eq!(client["scope"], "a b");
    let id = client["client_id"].as_str().unwrap();
    assert!(id.starts_with("live_"));

    let listed = cli_json(
        &app.cli_async(&["clients", "list", "--app", app_id, "--json"])
            .await,
    );
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert!(
        listed[0].get("client_secret").is_none(),
        "lists never show secrets"
    );
    let shown = cli_json(&app.cli_async(&["clients", "show", id, "--json"]).await);
    assert_eq!(shown["status"], "enabled");

    let rotated = cli_json(
        &app.cli_async(&["clients", "rotate-secret", id, "--json"])
            .await,
    );
    assert_ne!(rotated["client_secret"], client["client_secret"]);

    let apps = cli_json(&app.cli_async(&["apps", "list", "--json"]).await);
    assert!(
        apps.as_array()
            .unwrap()
            .iter()
            .any(|a| a["app_id"] == app_id)
    );

    // Text output works too and shows the secret once on create.
    let text = app.cli_async(&["clients", "create", "--app", app_id]).await;
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("client_secret: mks_"));
}

#[tokio::test]
async fn cli_changes_reach_the_running_server_within_a_second() {
    let _load = timing_sensitive().await;
    let app =
        spawn_app_with(|s| s.refresh.poll_interval = std::time::Duration::from_millis(200)).await;
    let created = cli_json(
        &app.cli_async(&["apps", "create", "--name", "Live", "--json"])
            .await,
    );
    let client = cli_json(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            created["app_id"].as_str().unwrap(),
            "--json",
        ])
        .await,
    );
    let id = client["client_id"].as_str().unwrap();
    let secret = client["client_secret"].as_str().unwrap();
    let body = form(&[("client_id", id), ("client_secret", secret)]);

    let issued = std::cell::RefCell::new(None);
    within(
        Duration::from_secs(1),
        "a client created by the CLI gets tokens",
        || async {
            let response = app.post_token(&body, None).await;
            if response.status() != 201 {
                return false;
            }
            let v: Value = response.json().await.unwrap();
            *issued.borrow_mut() = Some(v["access_token"].as_str().unwrap().to_owned());
            true
        },
    )
    .await;
    let token = issued.into_inner().unwrap();

    assert!(
        app.cli_async(&["clients", "disable", id])
            .await
            .status
            .success()
    );
    within(Duration::from_secs(1), "a disable takes effect", || async {
        app.introspect(&token).await.status() == 401
    })
    .await;
    assert_invalid_client(app.post_token(&body, None).await).await;

    assert!(
        app.cli_async(&["clients", "enable", id])
            .await
            .status
            .success()
    );
    within(Duration::from_secs(1), "an enable takes effect", || async {
        app.introspect(&token).await.status() == 200
    })
    .await;
    assert_issued_to(app.post_token(&body, None).await, id).await;
}

#[tokio::test]
async fn cli_scheduled_disable_is_shown_and_can_be_cancelled() {
    let app = spawn_app().await;
    let (client, _) = app.create_client("a", None).await;
    let out = cli_json(
        &app.cli_async(&[
            "clients",
            "disable",
            &client.id,
            "--at",
            "2099-01-01T00:00:00Z",
            "--json",
        ])
        .await,
    );
    assert_eq!(out["status"], "disable_scheduled");
    assert_eq!(out["disabled_at"], "2099-01-01T00:00:00Z");
    let out = cli_json(
        &app.cli_async(&["clients", "enable", &client.id, "--json"])
            .await,
    );
    assert_eq!(out["status"], "enabled");
    assert_eq!(out["disabled_at"], Value::Null);
}

#[tokio::test]
async fn cli_bad_input_fails_with_one_line_and_changes_nothing() {
    let app = spawn_app().await;
    let (client, _) = app.create_client("a", None).await;
    let revision = app.store.revision().await.unwrap();

    for verb in ["create", "list"] {
        let output = app.cli_async(&["clients", verb, "--app", "app_nope"]).await;
        assert_one_line_error(&output, "unknown app app_nope");
    }
    for verb in ["show", "disable", "enable", "rotate-secret"] {
        let output = app.cli_async(&["clients", verb, "live_nope"]).await;
        assert_one_line_error(&output, "unknown client live_nope");
    }
    assert_one_line_error(
        &app.cli_async(&["clients", "disable", &client.id, "--at", "tomorrow"])
            .await,
        "RFC 3339",
    );
    assert_one_line_error(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            &client.app_id,
            "--scope",
            "bad\"scope",
        ])
        .await,
        "invalid scope",
    );
    assert_one_line_error(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            &client.app_id,
            "--token-ttl",
            "0",
        ])
        .await,
        "token lifetime",
    );
    assert_one_line_error(
        &app.cli_async(&["apps", "create", "--name", "  "]).await,
        "name",
    );
    assert_one_line_error(&app.cli_async(&["clients", "create"]).await, "--app");

    assert_eq!(
        app.store.revision().await.unwrap(),
        revision,
        "nothing was written"
    );
    assert_eq!(app.store.list_clients(None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn keys_rotate_with_the_wrong_master_secret_fails_and_writes_nothing() {
    let app = spawn_app().await;
    let keys_before = app.store.list_keys().await.unwrap();
    let run = |secret: Option<&str>| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
        command.args(["keys", "rotate", "--database-url", &app.database_url]);
        match secret {
            Some(s) => command.env("MONEYKIT_AUTH_SECRET", s),
            None => command.env_remove("MONEYKIT_AUTH_SECRET"),
        };
        command.output().unwrap()
    };
    let missing = if on_postgres() {
        "MONEYKIT_AUTH_SECRET is required with a PostgreSQL database"
    } else {
        "MONEYKIT_AUTH_SECRET is not set"
    };
    assert_one_line_error(&run(None), missing);
    assert_one_line_error(
        &run(Some("a-different-secret-that-is-long-enough-to-use")),
        "cannot be decrypted",
    );
    assert_one_line_error(&run(Some("short")), "at least 32 characters");
    assert_eq!(app.store.list_keys().await.unwrap(), keys_before);
    let key_file = format!("{}.key", app.database_url.trim_start_matches("sqlite://"));
    assert!(
        !std::path::Path::new(&key_file).exists(),
        "no stray key file"
    );
}

#[tokio::test]
async fn serve_that_cannot_bind_changes_nothing() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let revision = app.store.revision().await.unwrap();
    let busy = app.base.trim_start_matches("http://").to_owned();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
        .args([
            "serve",
            "--demo",
            "--listen",
            &busy,
            "--database-url",
            &app.database_url,
        ])
        .env("MONEYKIT_AUTH_SECRET", TEST_SECRET)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen"));
    assert_eq!(
        app.store.revision().await.unwrap(),
        revision,
        "no demo client was written"
    );
    app.token(&client.id, &secret, None).await;
}

#[test]
fn cli_rejects_unusable_databases_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    assert_one_line_error(
        &cli("mysql://localhost/db", &["apps", "list"]),
        "unsupported database URL",
    );
    let missing_dir = format!("sqlite://{}/no/such/dir/x.db", dir.path().display());
    assert_one_line_error(
        &cli(&missing_dir, &["apps", "create", "--name", "x"]),
        "cannot open",
    );
    // Read-only commands do not create a database as a side effect of a typo.
    let typo = format!("sqlite://{}/typo.db", dir.path().display());
    assert_one_line_error(&cli(&typo, &["apps", "list"]), "does not exist");
    assert!(!dir.path().join("typo.db").exists());
    // Commands that need an existing database do not create one either.
    for args in [
        &["clients", "disable", "live_x"][..],
        &["clients", "create", "--app", "app_x"],
        &["keys", "rotate"],
    ] {
        assert_one_line_error(&cli(&typo, args), "does not exist");
        assert!(
            !dir.path().join("typo.db").exists(),
            "{args:?} created a database"
        );
    }
    let garbage = dir.path().join("garbage.db");
    std::fs::write(
        &garbage,
        "this is not a database, just some text of some length",
    )
    .unwrap();
    assert_one_line_error(
        &cli(
            &format!("sqlite://{}", garbage.display()),
            &["apps", "list"],
        ),
        "database",
    );
}

#[test]
fn an_unreachable_postgres_is_one_line_without_the_password() {
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let url = "postgres://app:hunter2-not-logged@127.0.0.1:1/auth";
    let output = cli(url, &["apps", "list"]);
    assert_one_line_error(
        &output,
        "cannot connect to postgres://app:****@127.0.0.1:1/auth",
    );
    assert!(!stderr(&output).contains("hunter2"));

    // Replicas must share the master secret, so PostgreSQL never falls back to a key file;
    // that is checked before connecting.
    for args in [
        &["serve", "--listen", "127.0.0.1:0"][..],
        &["keys", "rotate"],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_moneykit-auth"))
            .args(args)
            .args(["--database-url", url])
            .env_remove("MONEYKIT_AUTH_SECRET")
            .output()
            .unwrap();
        assert_one_line_error(&output, "MONEYKIT_AUTH_SECRET is required");
    }
}

/// The binary with `args`, none of the `MONEYKIT_AUTH_*` variables a setting could come
/// from, and `env` set.
fn bare_cli(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_moneykit-auth"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("MONEYKIT_AUTH_") {
            command.env_remove(name);
        }
    }
    command
        .args(args)
        .envs(env.iter().copied())
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// Writes `text` to `name` in `dir` with file mode `mode`; returns its path.
fn config_file(dir: &tempfile::TempDir, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path.to_str().unwrap().to_owned()
}

/// The stdout of `serve --print-config` (which must succeed) as text and as TOML.
fn printed_config(output: &std::process::Output) -> (String, toml::Table) {
    assert!(output.status.success(), "{}", stderr(output));
    let text = String::from_utf8(output.stdout.clone()).unwrap();
    let table = text.parse().unwrap_or_else(|e| panic!("{e}: {text}"));
    (text, table)
}

/// The line `serve --print-config` printed for `key`.
fn config_line<'t>(text: &'t str, key: &str) -> &'t str {
    text.lines()
        .find(|l| l.starts_with(&format!("{key} = ")))
        .unwrap_or_else(|| panic!("no {key} in {text}"))
}

#[test]
fn print_config_shows_file_settings_and_that_flags_and_env_win() {
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        "config.toml",
        "listen = \"0.0.0.0:18080\"\ntoken-ttl = 900\nissuer = \"https://file.example\"\n\
         trusted_proxy = [\"10.0.0.0/8\"]\n",
        0o644,
    );
    let (text, table) = printed_config(&bare_cli(
        &["--config", &file, "serve", "--print-config"],
        &[],
    ));
    assert_eq!(
        config_line(&text, "listen"),
        "listen = \"0.0.0.0:18080\"  # file"
    );
    assert_eq!(config_line(&text, "token-ttl"), "token-ttl = 900  # file");
    assert_eq!(table["trusted-proxy"][0].as_str(), Some("10.0.0.0/8"));
    assert!(config_line(&text, "request-timeout").ends_with("# default"));
    assert!(text.contains(&format!("# config file: {file}")), "{text}");

    // A flag and an environment variable each win over the file; MONEYKIT_AUTH_CONFIG
    // names the file as --config does.
    let (text, _) = printed_config(&bare_cli(
        &["serve", "--print-config", "--token-ttl=60"],
        &[
            ("MONEYKIT_AUTH_CONFIG", &file),
            ("MONEYKIT_AUTH_LISTEN", "127.0.0.1:18081"),
        ],
    ));
    assert_eq!(config_line(&text, "token-ttl"), "token-ttl = 60  # flag");
    assert_eq!(
        config_line(&text, "listen"),
        "listen = \"127.0.0.1:18081\"  # env MONEYKIT_AUTH_LISTEN"
    );
    assert!(config_line(&text, "issuer").ends_with("# file"));
}

#[test]
fn config_file_errors_are_one_line_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let run = |file: &str| bare_cli(&["serve", "--print-config", "--config", file], &[]);

    for (name, text, expected) in [
        (
            "a.toml",
            "lissten = \"0.0.0.0:1\"\n",
            "unknown key `lissten`",
        ),
        (
            "b.toml",
            "token-ttl = [1]\n",
            "`token-ttl` must be a string or a number",
        ),
        ("c.toml", "listen = \"x\n", "line 1"),
        // clap still checks every value the file gives.
        ("d.toml", "listen = \"nowhere\"\n", "--listen"),
    ] {
        let output = run(&config_file(&dir, name, text, 0o600));
        assert_one_line_error(&output, expected);
        assert_eq!(output.status.code(), Some(2), "{name}");
    }

    let missing = dir.path().join("missing.toml");
    let output = run(missing.to_str().unwrap());
    assert_one_line_error(&output, "cannot read config file");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn a_config_file_with_secrets_must_be_private() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("secret.toml", format!("secret = \"{TEST_SECRET}\"\n")),
        (
            "token.toml",
            "admin-token = \"0123456789abcdef0123456789abcdef\"\n".into(),
        ),
        (
            "db.toml",
            "database-url = \"postgres://app:hunter2@db/auth\"\n".into(),
        ),
    ] {
        let file = config_file(&dir, name, &text, 0o644);
        let output = bare_cli(&["serve", "--print-config", "--config", &file], &[]);
        assert_one_line_error(&output, "chmod 600");
        assert!(!stderr(&output).contains("hunter2"));
        std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        printed_config(&bare_cli(
            &["serve", "--print-config", "--config", &file],
            &[],
        ));
    }
}

#[test]
fn print_config_never_prints_a_secret_or_a_database_password() {
    let dir = tempfile::tempdir().unwrap();
    let admin_token = "admin-token-in-the-file-0123456789abcdef";
    let file = config_file(
        &dir,
        "config.toml",
        &format!(
            "secret = \"{TEST_SECRET}\"\nadmin-token = \"{admin_token}\"\n\
             database-url = \"postgres://app:hunter2@db.internal:5432/auth?sslmode=require\"\n"
        ),
        0o600,
    );
    let output = bare_cli(&["--config", &file, "serve", "--print-config"], &[]);
    let (text, _) = printed_config(&output);
    for secret in [TEST_SECRET, admin_token, "hunter2"] {
        assert!(!text.contains(secret), "{secret} in {text}");
    }
    assert_eq!(config_line(&text, "secret"), "secret = \"****\"  # file");
    assert_eq!(
        config_line(&text, "admin-token"),
        "admin-token = \"****\"  # file"
    );
    assert_eq!(
        config_line(&text, "database-url"),
        "database-url = \"postgres://app:****@db.internal:5432/auth?sslmode=require\"  # file"
    );

    // From the environment and the command line too.
    let output = bare_cli(
        &[
            "serve",
            "--print-config",
            "--database-url",
            "postgres://app:sekrit-flag@db/auth",
        ],
        &[(
            "MONEYKIT_AUTH_SECRET",
            "env-secret-0123456789abcdef0123456789",
        )],
    );
    let (text, _) = printed_config(&output);
    assert!(
        !text.contains("sekrit-flag") && !text.contains("env-secret"),
        "{text}"
    );
    assert_eq!(
        config_line(&text, "secret"),
        "secret = \"****\"  # env MONEYKIT_AUTH_SECRET"
    );
    assert!(text.contains("# admin-token: not set"), "{text}");
    assert!(config_line(&text, "database-url").ends_with("# flag"));
}

#[tokio::test]
async fn admin_commands_take_the_master_secret_from_the_config_file() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = config_file(
        &dir,
        "config.toml",
        &format!(
            "secret = \"{TEST_SECRET}\"\ndatabase-url = \"{}\"\n",
            app.database_url
        ),
        0o600,
    );
    let rotate =
        |env: &[(&str, &str)]| bare_cli(&["--config", &file, "keys", "rotate", "--json"], env);
    let rotated = rotate(&[]);
    assert!(rotated.status.success(), "{}", stderr(&rotated));
    // The environment wins over the file.
    assert_one_line_error(
        &rotate(&[(
            "MONEYKIT_AUTH_SECRET",
            "a-different-secret-that-is-long-enough-to-use",
        )]),
        "cannot be decrypted",
    );
}

#[test]
fn the_packaged_config_example_is_valid() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../packaging/config.example.toml"
    );
    let (text, _) = printed_config(&bare_cli(
        &["serve", "--print-config", "--config", example],
        &[],
    ));
    for key in [
        "listen",
        "issuer",
        "database-url",
        "admin-listen",
        "log-format",
        "shutdown-delay",
    ] {
        assert!(config_line(&text, key).ends_with("# file"), "{key}: {text}");
    }
}
