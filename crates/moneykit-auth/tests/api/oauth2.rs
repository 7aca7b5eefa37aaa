//! The standard OAuth 2.0 surface: RFC 6749 token, RFC 7662 introspection, RFC 7009
//! revocation, RFC 8414 metadata, and the OpenAPI document.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn oauth2_token_returns_200_bearer_with_basic_or_post_credentials() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a b", None).await;
    let responses = [
        app.post_form(
            "/oauth2/token",
            "grant_type=client_credentials&scope=a",
            Some(&basic(&client.id, &secret)),
        )
        .await,
        app.post_form(
            "/oauth2/token",
            &form(&[
                ("grant_type", "client_credentials"),
                ("scope", "a"),
                ("client_id", &client.id),
                ("client_secret", &secret),
            ]),
            None,
        )
        .await,
    ];
    for response in responses {
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(response.headers()["pragma"], "no-cache");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["scope"], "a");
        assert_eq!(body["expires_in"], 3600);
        let token = body["access_token"].as_str().unwrap();
        // Same engine, same tokens: they work on the MoneyKit surface too.
        assert_eq!(app.introspect(token).await.status(), 200);
    }
}

#[tokio::test]
async fn oauth2_token_errors_follow_rfc_6749_section_5_2() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let auth = basic(&client.id, &secret);

    let cases: [(&str, Option<&str>, u16, &str); 7] = [
        ("scope=a", Some(&auth), 400, "invalid_request"), // grant_type is required here
        (
            "grant_type=password",
            Some(&auth),
            400,
            "unsupported_grant_type",
        ),
        (
            "grant_type=client_credentials&scope=z",
            Some(&auth),
            400,
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            Some(&auth),
            400,
            "invalid_request",
        ),
        ("grant_type=client_credentials", None, 401, "invalid_client"),
        (
            "grant_type=client_credentials&client_id=live_x&client_secret=y",
            None,
            401,
            "invalid_client",
        ),
        (
            "grant_type=client_credentials",
            Some(&basic(&client.id, "wrong")),
            401,
            "invalid_client",
        ),
    ];
    for (body, authorization, status, error) in cases {
        let response = app.post_form("/oauth2/token", body, authorization).await;
        if status == 401 {
            assert_eq!(
                response.headers()["www-authenticate"],
                r#"Basic realm="moneykit-auth""#
            );
        }
        println!("{body}");
        assert_rfc_error(response, status, error).await;
    }
    // One authentication method per request (RFC 6749 §2.3), even when both agree.
    let both = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", &client.id),
        ("client_secret", &secret),
    ]);
    let response = app.post_form("/oauth2/token", &both, Some(&auth)).await;
    assert_rfc_error(response, 400, "invalid_request").await;
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .json(&json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    // A wrong content type is invalid_request, not 422.
    assert_rfc_error(response, 400, "invalid_request").await;
}

#[tokio::test]
async fn metadata_describes_the_endpoints_per_rfc_8414() {
    let app = spawn_app().await;
    app.create_client("transactions:read accounts:read", None)
        .await;
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let issuer = &app.issuer;
    assert_eq!(metadata["issuer"], issuer.as_str());
    assert_eq!(metadata["token_endpoint"], format!("{issuer}/oauth2/token"));
    assert_eq!(
        metadata["introspection_endpoint"],
        format!("{issuer}/oauth2/introspect")
    );
    assert_eq!(
        metadata["revocation_endpoint"],
        format!("{issuer}/oauth2/revoke")
    );
    assert_eq!(
        metadata["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );
    assert_eq!(
        metadata["grant_types_supported"],
        json!([
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ])
    );
    assert_eq!(
        metadata["token_endpoint_auth_methods_supported"],
        json!([
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt"
        ])
    );
    // One tenant's scope names are not another's business: not published by default.
    assert!(metadata.get("scopes_supported").is_none(), "{metadata}");
}

#[tokio::test]
async fn scopes_are_published_in_the_metadata_only_when_the_operator_says_so() {
    let app = spawn_app_with(|s| s.publish_scopes = true).await;
    app.create_client("transactions:read accounts:read", None)
        .await;
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    assert_eq!(
        metadata["scopes_supported"],
        json!(["accounts:read", "transactions:read"])
    );
}

#[tokio::test]
async fn metadata_is_also_served_where_rfc_8414_puts_it_for_an_issuer_with_a_path() {
    let app = spawn_app_with(|s| s.issuer = Some("https://auth.example.test/mk".into())).await;
    let get = |path: &'static str| app.http.get(app.url(path)).send();
    let response = get("/.well-known/oauth-authorization-server/mk")
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let metadata: Value = response.json().await.unwrap();
    assert_eq!(metadata["issuer"], "https://auth.example.test/mk");
    assert_eq!(
        metadata["token_endpoint"],
        "https://auth.example.test/mk/oauth2/token"
    );
    let response = get("/.well-known/oauth-authorization-server/other")
        .await
        .unwrap();
    assert_error(response, 404, "api_error.request.not_found", None).await;
}

#[tokio::test]
async fn introspection_reports_active_tokens_with_standard_members() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a b", None).await;
    let (resource_server, rs_secret) = app.create_client("", None).await;
    let token = app.token(&client.id, &secret, Some("b")).await;
    let claims = jwt_part(&token, 1);

    let body = app
        .rfc_introspect((&resource_server.id, &rs_secret), &token)
        .await;
    assert_eq!(body["active"], true);
    assert_eq!(body["scope"], "b");
    assert_eq!(body["client_id"], client.id);
    assert_eq!(body["sub"], client.id);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["iss"], app.issuer.as_str());
    for member in ["exp", "iat", "jti"] {
        assert_eq!(body[member], claims[member], "{member}");
    }
    // client_secret_post works for the caller too.
    let response = app
        .post_form(
            "/oauth2/introspect",
            &form(&[
                ("token", &token),
                ("token_type_hint", "access_token"),
                ("client_id", &resource_server.id),
                ("client_secret", &rs_secret),
            ]),
            None,
        )
        .await;
    assert_eq!(response.json::<Value>().await.unwrap()["active"], true);
}

#[tokio::test]
async fn introspection_says_only_inactive_for_anything_invalid() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let (short, short_secret) = app.create_client("a", Some(1)).await;
    let (disabled, disabled_secret) = app.create_client("a", None).await;
    let caller = (client.id.as_str(), secret.as_str());
    let expired = app.token(&short.id, &short_secret, None).await;
    let of_disabled = app.token(&disabled.id, &disabled_secret, None).await;
    app.disable_client(&disabled.id, None).await;
    // Expired once its second and the 5 s leeway have passed.
    within(Duration::from_secs(15), "the 1 s token expires", || async {
        app.introspect(&expired).await.status() == 401
    })
    .await;

    let valid = app.token(&client.id, &secret, None).await;
    let tampered = format!("{valid}x");
    for token in [
        expired.as_str(),
        of_disabled.as_str(),
        tampered.as_str(),
        "garbage",
        "",
    ] {
        let body = app.rfc_introspect(caller, token).await;
        assert_eq!(body, json!({"active": false}), "{token:?}");
    }
}

#[tokio::test]
async fn introspection_and_revocation_require_an_authenticated_caller_and_a_token() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let token = app.token(&client.id, &secret, None).await;
    for path in ["/oauth2/introspect", "/oauth2/revoke"] {
        let response = app.post_form(path, &form(&[("token", &token)]), None).await;
        assert!(response.headers().contains_key("www-authenticate"));
        assert_invalid_client(response).await;
        let response = app
            .post_form(
                path,
                &form(&[("token", &token)]),
                Some(&basic(&client.id, "wrong")),
            )
            .await;
        assert_invalid_client(response).await;
        let response = app
            .post_form(path, "", Some(&basic(&client.id, &secret)))
            .await;
        assert_rfc_error(response, 400, "invalid_request").await;
    }
    // Nothing was revoked.
    assert_introspected_as(app.introspect(&token).await, &client.id).await;
}

#[tokio::test]
async fn revoked_tokens_fail_both_introspections_on_the_next_request() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let caller = (client.id.as_str(), secret.as_str());
    let token = app.token(&client.id, &secret, None).await;
    let other = app.token(&client.id, &secret, None).await;

    let response = app.revoke(caller, &token).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.unwrap().is_empty());
    assert_invalid_token(app.introspect(&token).await).await;
    assert_eq!(
        app.rfc_introspect(caller, &token).await,
        json!({"active": false})
    );
    // Only that token: the client's other tokens and the client itself are unaffected.
    assert_introspected_as(app.introspect(&other).await, &client.id).await;
    app.token(&client.id, &secret, None).await;
    // Revoking again, or revoking garbage, is fine (RFC 7009 §2.2): 200, empty body.
    for again in [token.as_str(), "not-a-token"] {
        let response = app.revoke(caller, again).await;
        assert_eq!(response.status(), 200, "{again}");
        assert!(response.bytes().await.unwrap().is_empty(), "{again}");
    }
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_token() {
    let app = spawn_app().await;
    let (owner, owner_secret) = app.create_client("a", None).await;
    let (other, other_secret) = app.create_client("a", None).await;
    let token = app.token(&owner.id, &owner_secret, None).await;
    let response = app.revoke((&other.id, &other_secret), &token).await;
    assert_error(
        response,
        400,
        "api_error.auth.unauthorized_client",
        Some("unauthorized_client"),
    )
    .await;
    assert_introspected_as(app.introspect(&token).await, &owner.id).await;
}

#[tokio::test]
async fn revocations_survive_a_restart_and_reach_other_servers() {
    let _load = timing_sensitive().await;
    let db = TestDb::new().await;
    let settings = || {
        let mut s = test_settings(&db);
        s.issuer = Some("https://auth.example.test".into());
        s
    };
    let a = spawn_on(db.clone(), settings()).await;
    let b = spawn_on(db.clone(), settings()).await;
    let (client, secret) = a.create_client("a", None).await;
    let token = a.token(&client.id, &secret, None).await;
    b.synced().await;
    assert_introspected_as(b.introspect(&token).await, &client.id).await;

    let revoked = a.revoke((&client.id, &secret), &token).await;
    assert_eq!(revoked.status(), 200);
    assert!(revoked.bytes().await.unwrap().is_empty());
    within(
        Duration::from_secs(1),
        "server B learns of the revocation",
        || async { b.introspect(&token).await.status() == 401 },
    )
    .await;
    a.stop().await;
    b.stop().await;

    let restarted = spawn_on(db.clone(), settings()).await;
    assert_eq!(
        restarted.introspect(&token).await.status(),
        401,
        "revocation is durable"
    );
}

#[tokio::test]
async fn revocations_are_forgotten_once_the_token_has_expired() {
    let app =
        spawn_app_with(|s| s.refresh.housekeeping_interval = Duration::from_millis(300)).await;
    let (client, secret) = app.create_client("a", Some(1)).await;
    let token = app.token(&client.id, &secret, None).await;
    assert_eq!(
        app.revoke((&client.id, &secret), &token).await.status(),
        200
    );
    assert_eq!(app.store.revocations_since(0).await.unwrap().len(), 1);
    // Expiry (1 s) plus leeway (5 s), then housekeeping (every 300 ms) prunes it.
    within(
        Duration::from_secs(15),
        "the revocation is pruned",
        || async { app.store.revocations_since(0).await.unwrap().is_empty() },
    )
    .await;
    // Still refused, now simply as expired.
    let response = app.introspect(&token).await;
    assert_error(
        response,
        401,
        "api_error.auth.expired_access_token",
        Some("invalid_token"),
    )
    .await;
}

#[tokio::test]
async fn openapi_document_is_generated_and_describes_every_endpoint() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc["paths"].as_object().unwrap();
    for path in [
        "/auth/token",
        "/auth/introspect",
        "/.well-known/jwks.json",
        "/.well-known/oauth-authorization-server",
        "/openapi.json",
        "/oauth2/token",
        "/oauth2/introspect",
        "/oauth2/revoke",
        "/healthz/live",
        "/healthz/ready",
        "/webhooks/test/link/{id}",
    ] {
        assert!(paths.contains_key(path), "{path} is described");
    }
    let token_responses = &doc["paths"]["/auth/token"]["post"]["responses"];
    assert!(
        token_responses.get("201").is_some(),
        "the MoneyKit token endpoint answers 201"
    );
    assert!(token_responses.get("200").is_none());
    assert!(
        doc["paths"]["/oauth2/token"]["post"]["responses"]
            .get("200")
            .is_some()
    );
    assert_eq!(doc["servers"][0]["url"], app.issuer.as_str());

    // Operation ids are unique (OpenAPI 3.1 §4.8.10.1): generators name methods by them.
    let mut ids: Vec<&str> = paths
        .values()
        .flat_map(|ops| ops.as_object().unwrap().values())
        .filter_map(|op| op.get("operationId").and_then(Value::as_str))
        .collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationId among {ids:?}");

    // The document and the router agree: every described operation is routed, and the
    // methods a path answers (its 405's `Allow`) are exactly the described ones. (The
    // document's validity as OpenAPI 3.1 is checked by the interop suite's validator.)
    // And the metrics agree: each request below is counted under its path's own label
    // (the document itself was fetched once, first).
    let mut counted = std::collections::BTreeMap::from([("/openapi.json".to_owned(), 1)]);
    for (path, operations) in paths {
        let concrete = path.replace("{id}", "link_doc_check");
        let mut described: Vec<String> = operations
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&k.as_str())
            })
            .map(|k| k.to_ascii_uppercase())
            .collect();
        for method in &described {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let response = app
                .http
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            assert!(
                ![404, 405].contains(&response.status().as_u16()),
                "{method} {path} is described but not routed: {}",
                response.status()
            );
            *counted.entry(path.clone()).or_insert(0) += 1;
        }
        let response = app
            .http
            .request(reqwest::Method::TRACE, app.url(&concrete))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405, "{path}");
        *counted.entry(path.clone()).or_insert(0) += 1;
        let mut allowed: Vec<String> = response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD") // answered for every GET, described or not
            .collect();
        allowed.sort();
        described.sort();
        assert_eq!(
            allowed, described,
            "{path}: routed methods vs described ones"
        );
    }

    // The RFC 8414 alias counts under the path it aliases; an unrouted path as `other`;
    // and no label names a route the document does not have.
    let alias = "/.well-known/oauth-authorization-server/not/this/issuer";
    let response = app.http.get(app.url(alias)).send().await.unwrap();
    assert_eq!(response.status(), 404, "an issuer path that is not ours");
    *counted
        .get_mut("/.well-known/oauth-authorization-server")
        .unwrap() += 1;
    app.http.get(app.url("/not/a/route")).send().await.unwrap();
    counted.insert("other".to_owned(), 1);
    let count_line = |route: &str, n: i32| {
        format!("moneykit_auth_request_duration_seconds_count{{route=\"{route}\"}} {n}")
    };
    let render = || app.metrics().render(&[], &Default::default());
    within(
        Duration::from_secs(5),
        "every request is counted under its route",
        || async {
            counted
                .iter()
                .all(|(r, n)| render().contains(&count_line(r, *n)))
        },
    )
    .await;
    for line in render()
        .lines()
        .filter(|l| l.starts_with("moneykit_auth_request_duration_seconds_count"))
    {
        let label = line.split('"').nth(1).unwrap();
        assert!(
            counted.contains_key(label),
            "label {label:?} names no documented route"
        );
    }
}
