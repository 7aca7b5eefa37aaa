//! `POST /auth/token`: every documented success and error.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn token_with_body_credentials_returns_201_and_a_bearer_token() {
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client("accounts:read transactions:read", None)
        .await;
    let body = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client.id),
        ("client_secret", &secret),
    ]);
    let response = app.post_token(&body, None).await;
    assert_eq!(response.status(), 201);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["scope"], "accounts:read transactions:read");
    let token = body["access_token"].as_str().unwrap();
    let claims = jwt_part(token, 1);
    assert_eq!(claims["sub"], client.id);
    assert_eq!(claims["client_id"], client.id);
    assert_eq!(claims["app_id"], client.app_id);
    assert_eq!(claims["iss"], app.issuer);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        3600
    );
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));
    let header = jwt_part(token, 0);
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["typ"], "at+jwt");
}

#[tokio::test]
async fn token_with_http_basic_works_with_and_without_form_encoding() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    // RFC clients form-urlencode id and secret; the official SDKs do not. Ids and secrets
    // use unreserved characters only, so both forms are the same bytes.
    let plain = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", client.id, secret)
        )
    );
    for header in [basic(&client.id, &secret), plain] {
        let response = app
            .post_token("grant_type=client_credentials", Some(&header))
            .await;
        assert_issued_to(response, &client.id).await;
    }
    // Empty body, no content type: Basic alone is a complete request.
    let response = app
        .http
        .post(app.url("/auth/token"))
        .header("authorization", basic(&client.id, &secret))
        .send()
        .await
        .unwrap();
    assert_issued_to(response, &client.id).await;
}

fn percent_encode_all(text: &str) -> String {
    text.bytes().map(|b| format!("%{b:02X}")).collect()
}

#[tokio::test]
async fn percent_encoded_credentials_are_decoded_in_body_and_basic() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let body = format!(
        "client_id={}&client_secret={}",
        percent_encode_all(&client.id),
        percent_encode_all(&secret)
    );
    assert_issued_to(app.post_token(&body, None).await, &client.id).await;
    let header = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!(
                "{}:{}",
                percent_encode_all(&client.id),
                percent_encode_all(&secret)
            )
        )
    );
    assert_issued_to(app.post_token("", Some(&header)).await, &client.id).await;
}

#[tokio::test]
async fn matching_basic_and_body_credentials_are_accepted() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let body = form(&[("client_id", &client.id), ("client_secret", &secret)]);
    let response = app
        .post_token(&body, Some(&basic(&client.id, &secret)))
        .await;
    assert_issued_to(response, &client.id).await;
}

#[tokio::test]
async fn conflicting_basic_and_body_credentials_get_401() {
    let app = spawn_app().await;
    let (a, secret_a) = app.create_client("x", None).await;
    let (b, secret_b) = app.create_client("x", None).await;
    // Both valid clients, but the request names two different ones.
    let body = form(&[("client_id", &b.id), ("client_secret", &secret_b)]);
    let response = app.post_token(&body, Some(&basic(&a.id, &secret_a))).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="moneykit-auth""#
    );
    assert_invalid_client(response).await;
    // Same id, different secret in the body.
    let body = form(&[("client_id", &a.id), ("client_secret", "other")]);
    let response = app.post_token(&body, Some(&basic(&a.id, &secret_a))).await;
    assert_invalid_client(response).await;
}

#[tokio::test]
async fn missing_unknown_or_wrong_credentials_get_401_invalid_client() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let cases = [
        form(&[("grant_type", "client_credentials")]),
        form(&[
            ("client_id", "live_doesnotexist"),
            ("client_secret", &secret),
        ]),
        form(&[
            ("client_id", &client.id),
            ("client_secret", &format!("{secret}x")),
        ]),
        form(&[("client_id", &client.id)]),
        form(&[("client_secret", &secret)]),
    ];
    for body in cases {
        let response = app.post_token(&body, None).await;
        // Body credentials earn no Basic challenge.
        assert!(!response.headers().contains_key("www-authenticate"));
        assert_invalid_client(response).await;
    }
    let response = app.post_token("", Some(&basic(&client.id, "wrong"))).await;
    assert_eq!(
        response.headers()["www-authenticate"],
        r#"Basic realm="moneykit-auth""#
    );
    assert_invalid_client(response).await;
    let response = app.post_token("", Some("Basic %%%not-base64")).await;
    assert_invalid_client(response).await;
}

#[tokio::test]
async fn unsupported_grant_type_gets_400() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    for grant in ["password", "authorization_code", ""] {
        let body = form(&[
            ("grant_type", grant),
            ("client_id", &client.id),
            ("client_secret", &secret),
        ]);
        let response = app.post_token(&body, None).await;
        assert_error(
            response,
            400,
            "api_error.auth.unsupported_grant_type",
            Some("unsupported_grant_type"),
        )
        .await;
    }
}

#[tokio::test]
async fn scope_is_narrowed_to_what_is_asked_and_refused_beyond_what_is_allowed() {
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client("accounts:read transactions:read", None)
        .await;

    let token = app
        .token(&client.id, &secret, Some("transactions:read"))
        .await;
    assert_eq!(jwt_part(&token, 1)["scope"], "transactions:read");
    let token = app.token(&client.id, &secret, Some("")).await;
    assert_eq!(
        jwt_part(&token, 1)["scope"],
        "accounts:read transactions:read"
    );

    let body = form(&[
        ("client_id", &client.id),
        ("client_secret", &secret),
        ("scope", "accounts:read admin:everything"),
    ]);
    let response = app.post_token(&body, None).await;
    let error = assert_error(
        response,
        400,
        "api_error.auth.invalid_scope",
        Some("invalid_scope"),
    )
    .await;
    assert!(
        error["error_message"]
            .as_str()
            .unwrap()
            .contains("admin:everything")
    );

    let body = form(&[
        ("client_id", &client.id),
        ("client_secret", &secret),
        ("scope", "bad\"scope"),
    ]);
    let response = app.post_token(&body, None).await;
    assert_error(
        response,
        400,
        "api_error.auth.invalid_scope",
        Some("invalid_scope"),
    )
    .await;
}

#[tokio::test]
async fn malformed_requests_get_422_with_validation_errors() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;

    // Repeated parameter.
    let body = format!(
        "client_id={0}&client_id={0}&client_secret={1}",
        client.id, secret
    );
    let response = app.post_token(&body, None).await;
    let error = assert_validation_failed(response).await;
    assert_eq!(
        error["validation_errors"][0]["location"],
        serde_json::json!(["body", "client_id"])
    );
    assert!(error["validation_errors"][0]["message"].is_string());
    assert!(error["validation_errors"][0]["type"].is_string());

    // Wrong content type.
    let response = app
        .http
        .post(app.url("/auth/token"))
        .json(&serde_json::json!({"client_id": client.id, "client_secret": secret}))
        .send()
        .await
        .unwrap();
    let error = assert_validation_failed(response).await;
    assert_eq!(
        error["validation_errors"][0]["location"],
        serde_json::json!(["header", "content-type"])
    );

    // Not UTF-8 after decoding.
    let response = app.post_token("client_id=%FF%FE", None).await;
    assert_validation_failed(response).await;
}

#[tokio::test]
async fn per_client_token_lifetime_overrides_the_server_default() {
    let app = spawn_app_with(|s| s.token_ttl_secs = 600).await;
    let (default_client, s1) = app.create_client("a", None).await;
    let (short_client, s2) = app.create_client("a", Some(60)).await;
    let claims = jwt_part(&app.token(&default_client.id, &s1, None).await, 1);
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        600
    );
    let response = app
        .post_token(
            &form(&[("client_id", &short_client.id), ("client_secret", &s2)]),
            None,
        )
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["expires_in"], 60);
}

#[tokio::test]
async fn disabled_clients_get_no_tokens_until_enabled_again() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    app.disable_client(&client.id, None).await;
    let body = form(&[("client_id", &client.id), ("client_secret", &secret)]);
    let response = app.post_token(&body, None).await;
    assert_invalid_client(response).await;
    app.enable_client(&client.id).await;
    assert_issued_to(app.post_token(&body, None).await, &client.id).await;
}

#[tokio::test]
async fn rotated_secrets_replace_the_old_one_and_keep_issued_tokens_valid() {
    let app = spawn_app().await;
    let (client, old_secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &old_secret, None).await;
    let (_, new_secret) = moneykit_auth::operations::secrets::rotate_client_secret(
        app.store.as_ref(),
        &client.id,
        &moneykit_auth::operations::secrets::Rotation::now(),
        &moneykit_auth::operations::Actor::cli(),
    )
    .await
    .unwrap();
    app.synced().await;
    let old = form(&[("client_id", &client.id), ("client_secret", &old_secret)]);
    assert_invalid_client(app.post_token(&old, None).await).await;
    app.token(&client.id, new_secret.expose(), None).await;
    assert_introspected_as(app.introspect(&token).await, &client.id).await;
}

#[tokio::test]
async fn moneykit_version_header_is_accepted_or_refused_clearly() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let body = form(&[("client_id", &client.id), ("client_secret", &secret)]);
    let send = |version: &'static str| {
        app.http
            .post(app.url("/auth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("MoneyKit-Version", version)
            .body(body.clone())
            .send()
    };
    assert_issued_to(send("2023-02-18").await.unwrap(), &client.id).await;
    assert_unsupported_version(send("1999-01-01").await.unwrap()).await;
}

#[tokio::test]
async fn many_concurrent_token_requests_all_succeed() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let body = form(&[("client_id", &client.id), ("client_secret", &secret)]);
    let requests = (0..200).map(|_| app.post_token(&body, None));
    let responses = futures_util::future::join_all(requests).await;
    let mut jtis = std::collections::HashSet::new();
    for response in responses {
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert!(jtis.insert(jwt_part(token, 1)["jti"].as_str().unwrap().to_owned()));
    }
}

/// Sends `request` as raw bytes on a fresh connection and returns the status and body.
async fn raw_exchange(app: &TestApp, request: String) -> (u16, Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server answers and closes")
    .unwrap();
    let text = String::from_utf8(response).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The wire request of the official MoneyKit Ruby SDK (the gem the seed documents) when
/// credentials go in the body: it always adds HTTP Basic from its unset username and
/// password, i.e. `Basic Og==` (base64 of ":").
fn ruby_sdk_request(app: &TestApp, path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Basic Og==\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len}\r\n\
         Connection: close\r\n\r\n{body}",
        host = app.base.trim_start_matches("http://"),
        len = body.len(),
    )
}

#[tokio::test]
async fn an_empty_basic_header_beside_body_credentials_counts_as_none() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("accounts:read", None).await;
    let (id, secret) = (client.id.as_str(), secret.as_str());
    let bodies = [
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}"),
        // The gem's default: an empty scope.
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}&scope="),
        // And without grant_type.
        format!("client_id={id}&client_secret={secret}"),
    ];
    for body in &bodies {
        let (status, json) = raw_exchange(&app, ruby_sdk_request(&app, "/auth/token", body)).await;
        assert_eq!(status, 201, "{body}: {json}");
        assert_eq!(json["token_type"], "bearer");
        assert_eq!(json["scope"], "accounts:read");
    }
    // The standard surface treats it the same (generic generated clients send it too):
    // not a second authentication method.
    let (status, json) =
        raw_exchange(&app, ruby_sdk_request(&app, "/oauth2/token", &bodies[0])).await;
    assert_eq!(status, 200, "{json}");

    // An empty Basic header alone authenticates nobody.
    let (status, json) = raw_exchange(
        &app,
        ruby_sdk_request(&app, "/auth/token", "grant_type=client_credentials"),
    )
    .await;
    assert_eq!((status, &json["error"]), (401, &json!("invalid_client")));

    // A Basic id that is not empty and differs from the body's is still a conflict.
    for header in [
        basic("live_other", secret),
        basic("", "mks_x"),
        basic(id, ""),
    ] {
        let response = app.post_token(&bodies[0], Some(&header)).await;
        assert_invalid_client(response).await;
    }
}
