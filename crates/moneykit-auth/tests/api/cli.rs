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
