//! Least privilege: a client holding admin scopes manages what its scopes cover through
//! the admin API with its own access token, is refused elsewhere with 403
//! `insufficient_scope`, and cannot hand out or take over scopes it lacks.

use serde_json::{Value, json};

use crate::helpers::*;

/// A client of a new app with `scope`, through the CLI; returns (app id, client id, its
/// token).
async fn admin_client(app: &TestApp, scope: &str) -> (String, String, String) {
    let app_id = cli_app(&app.database_url, "Automation");
    let created = cli_json(
        &app.cli_async(&[
            "clients", "create", "--app", &app_id, "--scope", scope, "--json",
        ])
        .await,
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    app.synced().await;
    let token = app
        .token(&id, created["client_secret"].as_str().unwrap(), None)
        .await;
    (app_id, id, token)
}

fn assert_insufficient(status: u16, body: &Value) {
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], "insufficient_scope", "{body}");
    assert_eq!(
        body["error_code"], "api_error.admin.insufficient_scope",
        "{body}"
    );
}

#[tokio::test]
async fn a_client_with_admin_clients_manages_clients_and_nothing_else() {
    let app = spawn_admin_app_with(|_| {}).await;
    let (app_id, pipeline, token) = admin_client(&app, "admin:clients").await;

    // Within its scope: list, create, update, rotate.
    let (status, listed) = app.admin_as(&token, "GET", "/admin/clients", None).await;
    assert_eq!(status, 200, "{listed}");
    let (status, created) = app
        .admin_as(
            &token,
            "POST",
            "/admin/clients",
            Some(json!({"app_id": app_id, "scope": "accounts:read"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let made = created["client_id"].as_str().unwrap();
    let (status, _) = app
        .admin_as(
            &token,
            "POST",
            &format!("/admin/clients/{made}/rotate-secret"),
            Some(json!({"grace": 60})),
        )
        .await;
    assert_eq!(status, 200);
    // The trail names it.
    let (_, trail) = app
        .admin_as(
            ADMIN_TOKEN,
            "GET",
            &format!("/admin/audit?target={made}"),
            None,
        )
        .await;
    let actors: Vec<&str> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert!(
        actors.iter().all(|a| *a == format!("client:{pipeline}")),
        "{trail}"
    );

    // Outside it: keys, webhooks, apps, the audit trail, metrics.
    for (method, path, body) in [
        ("POST", "/admin/keys/rotate", None),
        ("GET", "/admin/keys", None),
        ("POST", "/admin/apps", Some(json!({"name": "x"}))),
        ("GET", "/admin/webhooks", None),
        ("GET", "/admin/audit", None),
        ("GET", "/metrics", None),
    ] {
        let (status, body) = app.admin_as(&token, method, path, body).await;
        assert_insufficient(status, &body);
    }
    let (status, refused) = app
        .admin_as(ADMIN_TOKEN, "GET", "/admin/audit?outcome=refused", None)
        .await;
    assert_eq!(status, 422, "unknown filter refused: {refused}");
    let (_, trail) = app
        .admin_as(
            ADMIN_TOKEN,
            "GET",
            &format!("/admin/audit?actor=client:{pipeline}"),
            None,
        )
        .await;
    let refusals: Vec<&Value> = trail["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "refused")
        .collect();
    assert_eq!(refusals.len(), 6, "{trail}");
    assert!(refusals.iter().any(|r| r["action"] == "key.rotate"));

    // No escalation: it cannot give, add or take over admin scopes it lacks.
    let (status, body) = app
        .admin_as(
            &token,
            "POST",
            "/admin/clients",
            Some(json!({"app_id": app_id, "scope": "admin:keys"})),
        )
        .await;
    assert_insufficient(status, &body);
    let (status, body) = app
        .admin_as(
            &token,
            "PATCH",
            &format!("/admin/clients/{pipeline}"),
            Some(json!({"scope": "admin:clients admin:keys"})),
        )
        .await;
    assert_insufficient(status, &body);
    let (_, keys_admin, _) = admin_client(&app, "admin:keys").await;
    for (method, path, body) in [
        (
            "POST",
            format!("/admin/clients/{keys_admin}/rotate-secret"),
            None,
        ),
        ("POST", format!("/admin/clients/{keys_admin}/secrets"), None),
        ("POST", format!("/admin/clients/{keys_admin}/disable"), None),
        (
            "PATCH",
            format!("/admin/clients/{keys_admin}"),
            Some(json!({"name": "mine now"})),
        ),
    ] {
        let (status, body) = app.admin_as(&token, method, &path, body).await;
        assert_insufficient(status, &body);
    }
    let unchanged = app.store.get_client(&keys_admin).await.unwrap().unwrap();
    assert!(unchanged.disabled_at.is_none());
    assert_ne!(unchanged.name, "mine now");
    // Granting what it holds is fine.
    let (status, body) = app
        .admin_as(
            &token,
            "POST",
            "/admin/clients",
            Some(json!({"app_id": app_id, "scope": "admin:clients"})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn only_good_tokens_of_admin_clients_get_in() {
    let app = spawn_admin_app_with(|_| {}).await;
    let (_, reader, token) = admin_client(&app, "admin:read").await;
    let (status, body) = app.admin_as(&token, "GET", "/admin/audit", None).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .admin_as(&token, "POST", "/admin/apps", Some(json!({"name": "x"})))
        .await;
    assert_insufficient(status, &body);

    // A token without any admin scope: 403, recorded in its client's name.
    let (_, plain_id, plain) = admin_client(&app, "accounts:read").await;
    let (status, body) = app.admin_as(&plain, "GET", "/admin/clients", None).await;
    assert_insufficient(status, &body);
    let (_, trail) = app
        .admin_as(
            ADMIN_TOKEN,
            "GET",
            &format!("/admin/audit?actor=client:{plain_id}"),
            None,
        )
        .await;
    assert_eq!(trail["records"][0]["outcome"], "refused", "{trail}");
    // A wrong method is the router's 405, not a scope refusal.
    let (status, _) = app.admin_as(&token, "PUT", "/admin/audit", None).await;
    assert_eq!(status, 405);
    // Revoked (by its own client, RFC 7009), of a disabled client, forged: 401.
    let (_, revoked_id, revoked) = admin_client(&app, "admin:read").await;
    let secret = cli_json(
        &app.cli_async(&[
            "clients",
            "rotate-secret",
            &revoked_id,
            "--grace",
            "1h",
            "--json",
        ])
        .await,
    );
    app.synced().await;
    let revoke = app
        .http
        .post(app.url("/oauth2/revoke"))
        .basic_auth(&revoked_id, secret["client_secret"].as_str())
        .form(&[("token", revoked.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 200);
    within(
        std::time::Duration::from_secs(2),
        "the revocation",
        || async { app.admin_as(&revoked, "GET", "/admin/audit", None).await.0 == 401 },
    )
    .await;
    app.disable_client(&reader, None).await;
    let (status, _) = app.admin_as(&token, "GET", "/admin/audit", None).await;
    assert_eq!(status, 401);
    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, _) = app.admin_as(&forged, "GET", "/admin/audit", None).await;
    assert_eq!(status, 401);
}
