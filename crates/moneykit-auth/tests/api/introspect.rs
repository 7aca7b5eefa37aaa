//! `GET /auth/introspect`: the client behind a token, and every way a token is refused.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit_auth::crypto::{KeyPair, MasterKey};
use moneykit_auth::domain::tokens::{AccessClaims, access_token_header, sign};
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::helpers::*;

/// Signs arbitrary claims and header with the server's own active key, to prove the
/// validator checks more than the signature.
async fn sign_with_server_key(app: &TestApp, header: Value, claims: &AccessClaims) -> String {
    let keys = app.store.list_keys().await.unwrap();
    let record = keys.last().unwrap();
    let master = MasterKey::from_secret(TEST_SECRET).unwrap();
    let pkcs8 = master
        .open(&record.kid, &record.sealed_private_key)
        .unwrap();
    let pair = KeyPair::from_pkcs8(&record.kid, &pkcs8).unwrap();
    let mut header = header;
    header["kid"] = json!(record.kid);
    sign(&pair, &URL_SAFE_NO_PAD.encode(header.to_string()), claims)
}

fn claims_for(app: &TestApp, client_id: &str, app_id: &str) -> AccessClaims {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    AccessClaims {
        iss: app.issuer.clone(),
        aud: moneykit_wire::Audience::single(app.issuer.clone()),
        sub: client_id.into(),
        client_id: client_id.into(),
        app_id: app_id.into(),
        scope: "a".into(),
        iat: now,
        exp: now + 600,
        jti: "forged-jti".into(),
        cnf: None,
    }
}

#[tokio::test]
async fn introspect_returns_the_client_and_app_in_both_spellings() {
    let app = spawn_app().await;
    let test_app = app.create_app("Introspection App").await;
    let (client, secret) = app
        .create_client_in(&test_app.id, "accounts:read transactions:read", None)
        .await;
    // Narrow the token: introspection still reports what the client is allowed.
    let token = app.token(&client.id, &secret, Some("accounts:read")).await;
    let response = app.introspect(&token).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({
            "client_id": client.id,
            "client_name": "test client",
            "scope": "accounts:read transactions:read",
            "app": {
                "app_id": test_app.id,
                "id": test_app.id,
                "name": "Introspection App",
                "app_name": "Introspection App",
            },
            "disabled_at": null,
        })
    );
}

#[tokio::test]
async fn missing_or_malformed_bearer_tokens_get_401() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/auth/introspect"))
        .send()
        .await
        .unwrap();
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_invalid_token(response).await;
    for header in ["Bearer", "Bearer not.a.jwt", "Basic abc", "Bearer a.b.c.d"] {
        let response = app
            .http
            .get(app.url("/auth/introspect"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["www-authenticate"],
            r#"Bearer realm="moneykit-auth", error="invalid_token""#
        );
        assert_invalid_token(response).await;
    }
}

#[tokio::test]
async fn tampered_and_forged_tokens_get_401() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    let parts: Vec<&str> = token.split('.').collect();

    // Claims changed after signing.
    let mut claims = jwt_part(&token, 1);
    claims["scope"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    );
    // Signature flipped.
    let mut sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    sig[10] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    // Signed by an attacker's key under the server's kid.
    let attacker = KeyPair::from_pkcs8("x", &KeyPair::generate_pkcs8()).unwrap();
    let kid = jwt_part(&token, 0)["kid"].as_str().unwrap().to_owned();
    let forged = sign(
        &attacker,
        &access_token_header(&kid),
        &claims_for(&app, &client.id, &client.app_id),
    );
    // "alg": "none" with no signature.
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(json!({"alg":"none","typ":"at+jwt","kid":kid}).to_string()),
        parts[1]
    );
    for bad in [tampered, flipped, forged, none] {
        let response = app.introspect(&bad).await;
        assert_invalid_token(response).await;
    }
}

#[tokio::test]
async fn validly_signed_tokens_of_the_wrong_type_or_issuer_get_401() {
    let app = spawn_app().await;
    let (client, _) = app.create_client("a", None).await;
    let claims = claims_for(&app, &client.id, &client.app_id);

    let good = sign_with_server_key(&app, json!({"alg":"ES256","typ":"at+jwt"}), &claims).await;
    assert_eq!(
        app.introspect(&good).await.status(),
        200,
        "control: the forging works"
    );

    let wrong_typ = sign_with_server_key(&app, json!({"alg":"ES256","typ":"JWT"}), &claims).await;
    let no_typ = sign_with_server_key(&app, json!({"alg":"ES256"}), &claims).await;
    let mut other_issuer = claims.clone();
    other_issuer.iss = "https://evil.example".into();
    let wrong_iss =
        sign_with_server_key(&app, json!({"alg":"ES256","typ":"at+jwt"}), &other_issuer).await;
    let mut unknown_client = claims.clone();
    unknown_client.client_id = "live_gone".into();
    let gone =
        sign_with_server_key(&app, json!({"alg":"ES256","typ":"at+jwt"}), &unknown_client).await;
    for bad in [wrong_typ, no_typ, wrong_iss, gone] {
        let response = app.introspect(&bad).await;
        assert_invalid_token(response).await;
    }
}

#[tokio::test]
async fn expired_tokens_get_401_expired_access_token() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", Some(1)).await;
    let token = app.token(&client.id, &secret, None).await;
    assert_eq!(app.introspect(&token).await.status(), 200);
    // exp is 1 s away, plus the 5 s leeway.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let response = app.introspect(&token).await;
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let body = assert_error(
        response,
        401,
        "api_error.auth.expired_access_token",
        Some("invalid_token"),
    )
    .await;
    assert_eq!(body["error_message"], "Access token expired");
}

#[tokio::test]
async fn tokens_of_disabled_clients_are_rejected_until_the_client_is_enabled() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    app.disable_client(&client.id, None).await;
    assert_invalid_token(app.introspect(&token).await).await;
    app.enable_client(&client.id).await;
    assert_eq!(app.introspect(&token).await.status(), 200);
}

#[tokio::test]
async fn scheduled_disablement_shows_in_introspection_and_takes_effect_at_its_time() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    let at = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() + time::Duration::seconds(3);
    app.disable_client(&client.id, Some(at)).await;

    let body: Value = app.introspect(&token).await.json().await.unwrap();
    let shown = body["disabled_at"].as_str().expect("disabled_at is set");
    assert_eq!(
        OffsetDateTime::parse(shown, &time::format_description::well_known::Rfc3339).unwrap(),
        at
    );
    app.token(&client.id, &secret, None).await;

    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(app.introspect(&token).await.status(), 401);
    let body = form(&[("client_id", &client.id), ("client_secret", &secret)]);
    assert_eq!(app.post_token(&body, None).await.status(), 401);
}

#[tokio::test]
async fn tokens_survive_a_restart_on_the_same_database() {
    let db = TestDb::new().await;
    let settings = || {
        let mut s = test_settings(&db);
        s.issuer = Some("https://auth.example.test".into());
        s
    };
    let app = spawn_on(db.clone(), settings()).await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    app.stop().await;

    let app = spawn_on(db.clone(), settings()).await;
    assert_eq!(app.introspect(&token).await.status(), 200);
    assert_eq!(app.jwks().await.keys.len(), 1, "no second key on restart");
}

#[tokio::test]
async fn a_server_with_the_wrong_master_secret_refuses_to_start() {
    let app = spawn_app().await;
    let db = app.db.clone();
    app.stop().await;
    let mut settings = test_settings(&db);
    settings.master_secret = Some("a-completely-different-secret-of-enough-length".into());
    let error = moneykit_auth::startup::Application::build(settings)
        .await
        .err()
        .expect("build fails")
        .to_string();
    assert!(error.contains("cannot be decrypted"), "{error}");
}
