//! Client secrets over their life: several per client, rotation with a grace period,
//! revocation, expiry, last use recorded off the hot path, and the warning before a
//! client's last secret expires. Driven through the real CLI and admin API.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

/// Whether the token endpoint accepts `secret` for `client_id` now.
async fn accepted(app: &TestApp, client_id: &str, secret: &str) -> bool {
    let body = form(&[("client_id", client_id), ("client_secret", secret)]);
    let status = app.post_token(&body, None).await.status().as_u16();
    assert!(status == 201 || status == 401, "unexpected status {status}");
    status == 201
}

fn secrets(client: &Value) -> Vec<Value> {
    client["secrets"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_rotation_with_grace_keeps_both_secrets_until_the_old_one_is_revoked() {
    let app = spawn_app().await;
    let (client, old) = app.create_client("accounts:read", None).await;
    let rotated = cli_json(
        &app.cli_async(&[
            "clients",
            "rotate-secret",
            &client.id,
            "--grace",
            "1h",
            "--json",
        ])
        .await,
    );
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    let new_id = rotated["secret_id"].as_str().unwrap().to_owned();
    assert!(new_id.starts_with("sec_"), "{rotated}");
    app.synced().await;
    assert!(
        accepted(&app, &client.id, &old).await,
        "the old secret works in the grace"
    );
    assert!(
        accepted(&app, &client.id, &new).await,
        "the new one works at once"
    );

    // `clients show` lists both, never a value: the old one expiring in an hour.
    let shown = cli_json(
        &app.cli_async(&["clients", "show", &client.id, "--json"])
            .await,
    );
    let listed = secrets(&shown);
    assert_eq!(listed.len(), 2, "{shown}");
    let old_entry = listed
        .iter()
        .find(|s| s["secret_id"] != new_id.as_str())
        .unwrap();
    assert!(old_entry["expires_at"].is_string(), "{shown}");
    assert!(
        listed
            .iter()
            .any(|s| s["secret_id"] == new_id.as_str() && s["expires_at"].is_null())
    );
    let text = shown.to_string();
    assert!(
        !text.contains(&old) && !text.contains(&new),
        "no secret is shown"
    );

    // Revoking the old one ends it at once.
    let old_id = old_entry["secret_id"].as_str().unwrap();
    let after = cli_json(
        &app.cli_async(&["clients", "revoke-secret", &client.id, old_id, "--json"])
            .await,
    );
    assert_eq!(secrets(&after).len(), 1, "{after}");
    app.synced().await;
    assert!(!accepted(&app, &client.id, &old).await);
    assert!(accepted(&app, &client.id, &new).await);

    // The last live secret cannot be revoked; a rotation or disable is the way.
    one_line_error(
        app.cli_async(&["clients", "revoke-secret", &client.id, &new_id])
            .await,
        "last live secret",
    );
    one_line_error(
        app.cli_async(&[
            "clients",
            "revoke-secret",
            &client.id,
            "sec_000000000000000000000000",
        ])
        .await,
        "has no live secret",
    );
    assert!(accepted(&app, &client.id, &new).await);
}

#[tokio::test]
async fn an_old_secret_stops_when_its_grace_ends_and_a_plain_rotation_stops_it_at_once() {
    let app = spawn_app().await;
    let (client, old) = app.create_client("", None).await;
    let rotated = cli_json(
        &app.cli_async(&[
            "clients",
            "rotate-secret",
            &client.id,
            "--grace",
            "2s",
            "--json",
        ])
        .await,
    );
    let new = rotated["client_secret"].as_str().unwrap().to_owned();
    app.synced().await;
    assert!(accepted(&app, &client.id, &old).await);
    // Expiry is judged at request time: no refresh needed.
    within(Duration::from_secs(5), "the grace ending", || async {
        !accepted(&app, &client.id, &old).await
    })
    .await;
    assert!(accepted(&app, &client.id, &new).await);

    // Without --grace, as before: the old secret stops at once.
    let again = cli_json(
        &app.cli_async(&["clients", "rotate-secret", &client.id, "--json"])
            .await,
    );
    let newest = again["client_secret"].as_str().unwrap();
    app.synced().await;
    assert!(!accepted(&app, &client.id, &new).await);
    assert!(accepted(&app, &client.id, newest).await);
    assert_eq!(
        secrets(&cli_json(
            &app.cli_async(&["clients", "show", &client.id, "--json"])
                .await
        ))
        .len(),
        1
    );
}

#[tokio::test]
async fn secrets_are_added_up_to_five_and_bad_requests_change_nothing() {
    let app = spawn_app().await;
    let (client, first) = app.create_client("", None).await;
    let mut added = Vec::new();
    for _ in 0..4 {
        let made = cli_json(
            &app.cli_async(&[
                "clients",
                "add-secret",
                &client.id,
                "--secret-ttl",
                "30d",
                "--json",
            ])
            .await,
        );
        assert!(made["secret_expires_at"].is_string(), "{made}");
        added.push(made["client_secret"].as_str().unwrap().to_owned());
    }
    one_line_error(
        app.cli_async(&["clients", "add-secret", &client.id]).await,
        "5 live secrets",
    );
    app.synced().await;
    for secret in added.iter().chain([&first]) {
        assert!(accepted(&app, &client.id, secret).await);
    }
    let before = app.store.get_client(&client.id).await.unwrap().unwrap();
    for (args, needle) in [
        (vec!["--secret-ttl", "10s"], "between 60 and"),
        (vec!["--secret-ttl", "forever"], "invalid value"),
        (vec!["--grace", "91d"], "grace must be at most"),
        (vec!["--grace", "-1"], "unexpected argument"),
    ] {
        let mut command = vec!["clients", "rotate-secret", client.id.as_str()];
        command.extend(args);
        one_line_error(app.cli_async(&command).await, needle);
    }
    one_line_error(
        app.cli_async(&["clients", "add-secret", "live_000000000000000000000000"])
            .await,
        "unknown client",
    );
    let after = app.store.get_client(&client.id).await.unwrap().unwrap();
    assert_eq!(before, after, "refused requests store nothing");

    // A client without a secret has none to rotate or add.
    let jwks = json!({"keys": [crate::support::signing::TestKey::es256("k1").public_jwk()]});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, jwks.to_string()).unwrap();
    let keyed = cli_json(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            &client.app_id,
            "--jwks-file",
            path.to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    let keyed_id = keyed["client_id"].as_str().unwrap();
    for command in [
        ["clients", "rotate-secret", keyed_id],
        ["clients", "add-secret", keyed_id],
    ] {
        one_line_error(app.cli_async(&command).await, "it has no secret");
    }
}

/// The stored `last_used_at` of `client_id`'s first secret once it is written, or null
/// after `tries` reads 100 ms apart.
async fn recorded_last_use(app: &TestApp, client_id: &str, tries: u32) -> Value {
    let mut used = Value::Null;
    for _ in 0..tries {
        let stored = app.store.get_client(client_id).await.unwrap().unwrap();
        let view = moneykit_auth::operations::views::client_json(&stored);
        used = secrets(&view)[0]["last_used_at"].clone();
        if used.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    used
}

#[tokio::test]
async fn last_uses_are_recorded_in_batches_off_the_request_path() {
    let app =
        spawn_app_with(|s| s.refresh.housekeeping_interval = Duration::from_millis(200)).await;
    let (client, secret) = app.create_client("", None).await;
    let shown = cli_json(
        &app.cli_async(&["clients", "show", &client.id, "--json"])
            .await,
    );
    assert!(secrets(&shown)[0]["last_used_at"].is_null(), "{shown}");
    app.token(&client.id, &secret, None).await;
    assert!(
        recorded_last_use(&app, &client.id, 50).await.is_string(),
        "the last use was flushed"
    );
}

#[tokio::test]
async fn a_use_stamped_just_before_its_client_changes_is_still_recorded() {
    let app = spawn_app_with(|s| s.refresh.housekeeping_interval = Duration::from_secs(2)).await;
    let (client, secret) = app.create_client("", None).await;
    app.token(&client.id, &secret, None).await;
    // Caught up before the next flush: the new entry takes the stamp over.
    let renamed = app
        .cli_async(&["clients", "update", &client.id, "--name", "renamed"])
        .await;
    assert!(renamed.status.success());
    app.synced().await;
    assert_eq!(
        app.snapshot().client(&client.id).unwrap().client.name,
        "renamed"
    );
    assert!(
        recorded_last_use(&app, &client.id, 60).await.is_string(),
        "the use survived the change and was flushed"
    );
}

#[tokio::test]
async fn a_client_about_to_run_out_of_secrets_is_announced_once() {
    let receiver = crate::support::receiver::Receiver::start(&[]).await;
    let app = spawn_admin_app_with(|s| {
        s.refresh.housekeeping_interval = Duration::from_millis(200);
        s.webhooks.policy.allow_http = true;
        s.webhooks.policy.allow_private_targets = true;
    })
    .await;
    let app_id = cli_app(&app.database_url, "Expiring");
    set_webhook(&app.database_url, &app_id, &receiver.url);
    let created = cli_json(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            &app_id,
            "--secret-ttl",
            "2d",
            "--json",
        ])
        .await,
    );
    let client_id = created["client_id"].as_str().unwrap().to_owned();
    // A client rotated with a grace has a successor: not announced.
    let (rotated, _) = app.create_client("", None).await;
    cli_json(
        &app.cli_async(&[
            "clients",
            "rotate-secret",
            &rotated.id,
            "--grace",
            "1d",
            "--json",
        ])
        .await,
    );
    app.synced().await;

    let gauge = || async {
        let (status, text) = app.admin_as(ADMIN_TOKEN, "GET", "/metrics", None).await;
        assert_eq!(status, 200);
        text.as_str()
            .unwrap_or_default()
            .lines()
            .find(|l| l.starts_with("moneykit_auth_client_secrets_expiring "))
            .map(str::to_owned)
    };
    assert_eq!(
        gauge().await.as_deref(),
        Some("moneykit_auth_client_secrets_expiring 1")
    );
    within(Duration::from_secs(5), "the announcement", || async {
        let events = app
            .store
            .list_webhook_events(Some(&app_id), None, 10)
            .await
            .unwrap();
        events.iter().any(|e| e.event == "client.secret_expiring")
    })
    .await;
    // Several refreshes later: still one event.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let events = app
        .store
        .list_webhook_events(Some(&app_id), None, 10)
        .await
        .unwrap();
    let announced: Vec<_> = events
        .iter()
        .filter(|e| e.event == "client.secret_expiring")
        .collect();
    assert_eq!(announced.len(), 1);
    let body: Value = serde_json::from_slice(&announced[0].body).unwrap();
    assert_eq!(body["client_id"], client_id.as_str(), "{body}");
}

#[tokio::test]
async fn the_admin_api_adds_rotates_and_revokes_secrets() {
    let app = spawn_admin_app_with(|_| {}).await;
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let app = &app;
        async move { app.admin_as(ADMIN_TOKEN, method, &path, body).await }
    };
    let (client, old) = app.create_client("", None).await;
    let (status, rotated) = call(
        "POST",
        format!("/admin/clients/{}/rotate-secret", client.id),
        Some(json!({"grace": 3600, "secret_ttl": 86400})),
    )
    .await;
    assert_eq!(status, 200, "{rotated}");
    assert!(rotated["secret_expires_at"].is_string());
    let (status, added) = call(
        "POST",
        format!("/admin/clients/{}/secrets", client.id),
        None,
    )
    .await;
    assert_eq!(status, 201, "{added}");
    app.synced().await;
    let rotated_secret = rotated["client_secret"].as_str().unwrap();
    for secret in [
        old.as_str(),
        rotated_secret,
        added["client_secret"].as_str().unwrap(),
    ] {
        assert!(accepted(&app, &client.id, secret).await);
    }
    let added_id = added["secret_id"].as_str().unwrap();
    let (status, after) = call(
        "DELETE",
        format!("/admin/clients/{}/secrets/{added_id}", client.id),
        None,
    )
    .await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(secrets(&after).len(), 2);
    app.synced().await;
    assert!(!accepted(&app, &client.id, added["client_secret"].as_str().unwrap()).await);
    // Bad input: refused in the documented shape, nothing stored.
    for (method, path, body, status) in [
        (
            "POST",
            format!("/admin/clients/{}/rotate-secret", client.id),
            json!({"grace": -1}),
            422,
        ),
        (
            "POST",
            format!("/admin/clients/{}/rotate-secret", client.id),
            json!({"grace": 1, "extra": 1}),
            422,
        ),
        (
            "POST",
            format!("/admin/clients/{}/secrets", client.id),
            json!({"secret_ttl": 1}),
            422,
        ),
        (
            "DELETE",
            format!("/admin/clients/{}/secrets/sec_nope", client.id),
            Value::Null,
            422,
        ),
        (
            "POST",
            "/admin/clients/live_000000000000000000000000/secrets".to_owned(),
            Value::Null,
            404,
        ),
    ] {
        let body = (!body.is_null()).then_some(body);
        let (got, error) = call(method, path.clone(), body).await;
        assert_eq!(got, status, "{method} {path}: {error}");
        assert!(
            error["error_code"].is_string() && error["error_message"].is_string(),
            "{error}"
        );
    }
    assert_eq!(
        secrets(&moneykit_auth::operations::views::client_json(
            &app.store.get_client(&client.id).await.unwrap().unwrap()
        ))
        .len(),
        2
    );
}
