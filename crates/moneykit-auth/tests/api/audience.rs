//! Audiences (RFC 9068 §2.2 `aud`) and how clients ask for them (RFC 8707 `resource`, and
//! the `audience` parameter): on both token surfaces, through introspection, verified by
//! an independent library, and changed on a running server by `clients update`.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::{Value, json};

use crate::helpers::*;

const API: &str = "https://api.example.test/";
const LEDGER: &str = "urn:example:ledger";

/// Requests a token on `path` with body credentials plus `extra` parameters.
async fn token_on(
    app: &TestApp,
    path: &str,
    id: &str,
    secret: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
    ];
    pairs.extend_from_slice(extra);
    app.http
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&pairs))
        .send()
        .await
        .unwrap()
}

/// The `aud` claim of the token a successful response carries.
async fn aud_of(response: reqwest::Response) -> Value {
    assert!(response.status().is_success(), "{}", response.status());
    let body: Value = response.json().await.unwrap();
    jwt_part(body["access_token"].as_str().unwrap(), 1)["aud"].clone()
}

/// Verifies `token` with `jsonwebtoken`, told to require `audience`, from the JWKS alone.
async fn verify_with_jsonwebtoken(
    app: &TestApp,
    token: &str,
    audience: &str,
) -> Result<Value, jsonwebtoken::errors::Error> {
    let jwks: jsonwebtoken::jwk::JwkSet =
        serde_json::from_value(app.get_json("/.well-known/jwks.json").await).unwrap();
    let kid = decode_header(token).unwrap().kid.unwrap();
    let key = DecodingKey::from_jwk(jwks.find(&kid).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    decode::<Value>(token, &key, &validation).map(|data| data.claims)
}

#[tokio::test]
async fn every_token_has_an_audience_the_issuer_by_default() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    assert_eq!(jwt_part(&token, 1)["aud"], app.issuer);
    verify_with_jsonwebtoken(&app, &token, &app.issuer)
        .await
        .expect("the default audience verifies");
    assert!(
        verify_with_jsonwebtoken(&app, &token, API).await.is_err(),
        "a token for the issuer is not a token for another API"
    );
    for path in ["/auth/token", "/oauth2/token"] {
        let response = token_on(&app, path, &client.id, &secret, &[]).await;
        assert_eq!(aud_of(response).await, app.issuer, "{path}");
    }
}

#[tokio::test]
async fn the_server_default_audience_is_configurable() {
    let app = spawn_app_with(|s| s.audience = Some(LEDGER.into())).await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    assert_eq!(jwt_part(&token, 1)["aud"], LEDGER);
    // A client without audiences of its own may name the default, and nothing else.
    let named = token_on(
        &app,
        "/auth/token",
        &client.id,
        &secret,
        &[("resource", LEDGER)],
    );
    assert_eq!(aud_of(named.await).await, LEDGER);
    let other = token_on(
        &app,
        "/auth/token",
        &client.id,
        &secret,
        &[("resource", API)],
    )
    .await;
    assert_error(
        other,
        400,
        "api_error.auth.invalid_target",
        Some("invalid_target"),
    )
    .await;
}

#[tokio::test]
async fn a_resource_indicator_picks_one_of_the_clients_audiences() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client_with_audiences("a", &[LEDGER, API]).await;
    let (id, secret) = (client.id.as_str(), secret.as_str());
    for path in ["/auth/token", "/oauth2/token"] {
        // Nothing asked: the client's first audience.
        assert_eq!(
            aud_of(token_on(&app, path, id, secret, &[]).await).await,
            LEDGER
        );
        // RFC 8707 `resource`, once and repeated (repeats of one value count once).
        let one = token_on(&app, path, id, secret, &[("resource", API)]).await;
        assert_eq!(aud_of(one).await, API, "{path}");
        let both = [("resource", API), ("resource", LEDGER), ("resource", API)];
        let several = token_on(&app, path, id, secret, &both).await;
        assert_eq!(aud_of(several).await, json!([API, LEDGER]), "{path}");
        // `audience`, space-separated, as Auth0 and Hydra clients send it.
        let spaced = format!("{LEDGER} {API}");
        let audience = token_on(&app, path, id, secret, &[("audience", &spaced)]).await;
        assert_eq!(aud_of(audience).await, json!([LEDGER, API]), "{path}");
    }

    // The acceptance case: asked for with resource=API, verified by an independent
    // library told to require that audience.
    let response = token_on(&app, "/oauth2/token", id, secret, &[("resource", API)]).await;
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap();
    let claims = verify_with_jsonwebtoken(&app, token, API)
        .await
        .expect("verifies for its audience");
    assert_eq!(claims["aud"], API);
    assert!(verify_with_jsonwebtoken(&app, token, LEDGER).await.is_err());
    assert!(
        verify_with_jsonwebtoken(&app, token, &app.issuer)
            .await
            .is_err()
    );

    // RFC 7662 introspection reports the audience.
    let introspected = app.rfc_introspect((id, secret), token).await;
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["aud"], API);
    // The MoneyKit introspection body is unchanged.
    let moneykit: Value = app.introspect(token).await.json().await.unwrap();
    assert!(moneykit.get("aud").is_none(), "{moneykit}");
}

#[tokio::test]
async fn an_audience_outside_the_clients_list_is_invalid_target_on_both_surfaces() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client_with_audiences("a", &[API]).await;
    let (id, secret) = (client.id.as_str(), secret.as_str());
    let cases: [&[(&str, &str)]; 7] = [
        &[("resource", LEDGER)],
        &[("resource", API), ("resource", LEDGER)],
        &[("audience", "https://api.example.test/ urn:other")],
        &[("resource", "https://api.example.test")], // compared exactly
        &[("resource", "https://api.example.test/#fragment")],
        &[("resource", "")],
        &[("resource", "not a uri")],
    ];
    for path in ["/auth/token", "/oauth2/token"] {
        for extra in cases {
            let response = token_on(&app, path, id, secret, extra).await;
            let body = assert_error(
                response,
                400,
                "api_error.auth.invalid_target",
                Some("invalid_target"),
            )
            .await;
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("not an audience of this client"),
                "{path} {extra:?}: {body}"
            );
        }
    }
    // Wrong credentials are still reported as such, not as a bad target.
    let response = token_on(
        &app,
        "/auth/token",
        id,
        "mks_wrong",
        &[("resource", LEDGER)],
    )
    .await;
    assert_invalid_client(response).await;
    // Too many resource parameters is a malformed request.
    let many: Vec<(&str, &str)> = (0..17).map(|_| ("resource", API)).collect();
    assert_validation_failed(token_on(&app, "/auth/token", id, secret, &many).await).await;
    let response = token_on(&app, "/oauth2/token", id, secret, &many).await;
    assert_error(
        response,
        400,
        "api_error.request.validation_failed",
        Some("invalid_request"),
    )
    .await;
    // The server is fine.
    assert_eq!(
        aud_of(token_on(&app, "/auth/token", id, secret, &[]).await).await,
        API
    );
}

#[tokio::test]
async fn clients_update_changes_scope_and_audiences_of_a_running_server_within_a_second() {
    let app = spawn_app().await;
    let app_id = cli_app(&app.database_url, "Updating");
    let created = cli_json(
        &app.cli_async(&[
            "clients",
            "create",
            "--app",
            &app_id,
            "--scope",
            "a b",
            "--audience",
            API,
            "--json",
        ])
        .await,
    );
    assert_eq!(created["audiences"], json!([API]));
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    app.synced().await;
    let first = token_on(&app, "/oauth2/token", &id, &secret, &[]).await;
    assert_eq!(aud_of(first).await, API);

    let updated = cli_json(
        &app.cli_async(&[
            "clients",
            "update",
            &id,
            "--scope",
            "b c",
            "--audience",
            LEDGER,
            "--audience",
            API,
            "--name",
            "renamed",
            "--json",
        ])
        .await,
    );
    assert_eq!(updated["scope"], "b c");
    assert_eq!(updated["audiences"], json!([LEDGER, API]));
    assert_eq!(updated["name"], "renamed");

    // Within a second the running server issues by the new rules.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
    loop {
        let response = token_on(&app, "/oauth2/token", &id, &secret, &[]).await;
        let body: Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap_or_default();
        if body["scope"] == "b c" && jwt_part(token, 1)["aud"] == LEDGER {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not applied within 1 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let narrowed = token_on(&app, "/oauth2/token", &id, &secret, &[("scope", "a")]).await;
    assert_error(
        narrowed,
        400,
        "api_error.auth.invalid_scope",
        Some("invalid_scope"),
    )
    .await;

    // Shown by `clients show` and `list`, as text and JSON.
    let shown = cli_json(&app.cli_async(&["clients", "show", &id, "--json"]).await);
    assert_eq!(shown["audiences"], json!([LEDGER, API]));
    let text = String::from_utf8(app.cli_async(&["clients", "show", &id]).await.stdout).unwrap();
    assert!(
        text.contains(&format!("audiences:   {LEDGER} {API}")),
        "{text}"
    );
    let listed = String::from_utf8(app.cli_async(&["clients", "list"]).await.stdout).unwrap();
    assert!(
        listed.contains("AUDIENCES") && listed.contains(LEDGER),
        "{listed}"
    );

    // Back to the server default, and a token lifetime back and forth.
    let cleared = cli_json(
        &app.cli_async(&[
            "clients",
            "update",
            &id,
            "--clear-audiences",
            "--token-ttl",
            "60",
            "--json",
        ])
        .await,
    );
    assert_eq!(cleared["audiences"], json!([]));
    assert_eq!(cleared["token_ttl"], 60);
    let reset = cli_json(
        &app.cli_async(&["clients", "update", &id, "--token-ttl", "default", "--json"])
            .await,
    );
    assert_eq!(reset["token_ttl"], Value::Null);
    assert_eq!(reset["scope"], "b c", "untouched fields stay");
}

#[tokio::test]
async fn bad_audiences_and_updates_fail_with_one_line_and_change_nothing() {
    let app = spawn_app().await;
    let app_id = cli_app(&app.database_url, "Bad");
    for bad in ["api.example.test", "https://a/#f", "https://a b", ""] {
        one_line_error(
            app.cli_async(&["clients", "create", "--app", &app_id, "--audience", bad])
                .await,
            "invalid audience",
        );
    }
    let listed = cli_json(&app.cli_async(&["clients", "list", "--json"]).await);
    assert_eq!(listed, json!([]), "nothing was created");

    let (id, _) = cli_client(&app.database_url, &app_id);
    let before = cli_json(&app.cli_async(&["clients", "show", &id, "--json"]).await);
    one_line_error(
        app.cli_async(&["clients", "update", &id, "--audience", "nope"])
            .await,
        "invalid audience",
    );
    one_line_error(
        app.cli_async(&["clients", "update", &id, "--scope", "a\"b"])
            .await,
        "invalid scope",
    );
    one_line_error(
        app.cli_async(&["clients", "update", &id, "--token-ttl", "0"])
            .await,
        "token lifetime",
    );
    one_line_error(
        app.cli_async(&["clients", "update", "live_nope", "--name", "x"])
            .await,
        "unknown client",
    );
    // Nothing to change is a usage error, not a silent success.
    assert!(
        !app.cli_async(&["clients", "update", &id])
            .await
            .status
            .success()
    );
    let after = cli_json(&app.cli_async(&["clients", "show", &id, "--json"]).await);
    assert_eq!(before, after, "failed updates changed nothing");
}

#[tokio::test]
async fn the_admin_api_creates_and_updates_audiences() {
    const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let admin = app.admin_base.clone().unwrap();
    let call = |method: reqwest::Method, path: &str, body: Value| {
        app.http
            .request(method, format!("{admin}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let created_app: Value = call(reqwest::Method::POST, "/admin/apps", json!({"name": "A"}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let response = call(
        reqwest::Method::POST,
        "/admin/clients",
        json!({"app_id": created_app["app_id"], "scope": "a", "audiences": [API]}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 201);
    let client: Value = response.json().await.unwrap();
    assert_eq!(client["audiences"], json!([API]));
    let id = client["client_id"].as_str().unwrap();

    let path = format!("/admin/clients/{id}");
    let response = call(
        reqwest::Method::PATCH,
        &path,
        json!({"audiences": [LEDGER], "token_ttl": 120}),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["audiences"], json!([LEDGER]));
    assert_eq!(patched["token_ttl"], 120);
    assert_eq!(patched["scope"], "a");

    let response = call(reqwest::Method::PATCH, &path, json!({"token_ttl": null}))
        .await
        .unwrap();
    let patched: Value = response.json().await.unwrap();
    assert_eq!(patched["token_ttl"], Value::Null);
    assert_eq!(patched["audiences"], json!([LEDGER]));

    let bad = call(reqwest::Method::PATCH, &path, json!({"audiences": ["x"]}))
        .await
        .unwrap();
    assert_validation_failed(bad).await;
    let unknown = call(
        reqwest::Method::PATCH,
        "/admin/clients/live_nope",
        json!({"name": "x"}),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 404);
}
