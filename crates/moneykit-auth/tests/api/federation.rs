//! Workload identity federation: a fake platform on loopback issues tokens, a client
//! trusts it, and the workload exchanges its platform token for the client's access
//! token through the jwt-bearer grant (RFC 7523 §2.1) and token exchange (RFC 8693), on
//! both token surfaces; every way a platform token can be wrong.

use std::time::Duration;

use moneykit_auth::net::guard::TargetPolicy;
use moneykit_auth::operations::Actor;
use moneykit_auth::operations::secretless::{self, KeysInput, NewTrustRule};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::secretless::{with_local_key_hosts, without_failure_budgets};
use crate::support::issuer::{FakeIssuer, Mode};
use crate::support::signing::*;

const LOOPBACK: TargetPolicy = TargetPolicy {
    allow_http: true,
    allow_private_targets: true,
};

const SUBJECT: &str = "system:serviceaccount:payments:ledger";

async fn trust(app: &TestApp, client_id: &str, rule: NewTrustRule) -> String {
    let rule = secretless::trust(
        app.store.as_ref(),
        client_id,
        &rule,
        LOOPBACK,
        &Actor::cli(),
    )
    .await
    .unwrap();
    app.synced().await;
    rule.id
}

fn rule(issuer: &FakeIssuer, keys: Option<KeysInput>) -> NewTrustRule {
    NewTrustRule {
        issuer: issuer.issuer.clone(),
        subject: SUBJECT.into(),
        audience: None,
        keys,
    }
}

fn jwt_bearer(token: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![("grant_type", JWT_BEARER), ("assertion", token)];
    pairs.extend_from_slice(extra);
    form(&pairs)
}

fn exchange(token: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("grant_type", TOKEN_EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", JWT_TOKEN_TYPE),
    ];
    pairs.extend_from_slice(extra);
    form(&pairs)
}

#[tokio::test]
async fn a_platform_token_is_exchanged_through_both_grants_on_both_surfaces() {
    let app = spawn_app_with(with_local_key_hosts).await;
    let platform = FakeIssuer::start(vec![TestKey::rs256("cluster-1")]).await;
    let (client, _) = app.create_client("ledger:read ledger:write", None).await;
    // Keys found by discovery: nothing but the issuer is configured.
    trust(&app, &client.id, rule(&platform, None)).await;
    let token = platform.token(SUBJECT, &app.issuer, 600);

    within(
        Duration::from_secs(5),
        "the issuer's keys are fetched",
        || async {
            app.post_form("/oauth2/token", &jwt_bearer(&token, &[]), None)
                .await
                .status()
                == 200
        },
    )
    .await;
    for (path, status) in [("/oauth2/token", 200), ("/auth/token", 201)] {
        for (body, exchanged) in [
            (jwt_bearer(&token, &[("scope", "ledger:read")]), false),
            (exchange(&token, &[("scope", "ledger:read")]), true),
        ] {
            let response = app.post_form(path, &body, None).await;
            assert_eq!(response.status(), status, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["scope"], "ledger:read", "{body}");
            let access = body["access_token"].as_str().unwrap();
            assert_eq!(jwt_part(access, 1)["client_id"], client.id.as_str());
            assert_eq!(
                body.get("issued_token_type").and_then(Value::as_str),
                exchanged.then_some("urn:ietf:params:oauth:token-type:access_token"),
                "{body}"
            );
            assert_introspected_as(app.introspect(access).await, &client.id).await;
        }
    }
    // The client's own limits apply: no scope it does not have.
    let response = app
        .post_form(
            "/oauth2/token",
            &exchange(&token, &[("scope", "admin")]),
            None,
        )
        .await;
    assert_rfc_error(response, 400, "invalid_scope").await;
    // The platform token is reused until it rotates: no replay check.
    assert_eq!(
        app.post_form("/oauth2/token", &jwt_bearer(&token, &[]), None)
            .await
            .status(),
        200
    );
    let (_, discovery) = platform.requests();
    assert!(discovery >= 1, "keys were found by discovery");
}

#[tokio::test]
async fn registered_keys_key_rotation_at_the_issuer_and_several_rules() {
    let app = spawn_app_with(|s| {
        with_local_key_hosts(s);
        without_failure_budgets(s);
    })
    .await;
    let platform = FakeIssuer::start(vec![TestKey::es256("a")]).await;
    let (first, _) = app.create_client("x", None).await;
    let (second, _) = app.create_client("x", None).await;
    // The first client trusts the platform through its JWKS URI, the second with its
    // JWKS registered (as a Kubernetes cluster's /openid/v1/jwks would be).
    trust(
        &app,
        &first.id,
        rule(&platform, Some(KeysInput::Uri(platform.jwks_uri()))),
    )
    .await;
    let registered = KeysInput::Jwks(platform.jwks().to_string());
    trust(&app, &second.id, rule(&platform, Some(registered))).await;
    let token = platform.token(SUBJECT, &app.issuer, 600);

    // Both trust the workload: it must say which client it wants.
    within(
        Duration::from_secs(5),
        "the issuer's keys are fetched",
        || async {
            let response = app
                .post_form("/oauth2/token", &jwt_bearer(&token, &[]), None)
                .await;
            let body: Value = response.json().await.unwrap();
            body["error_description"]
                .as_str()
                .is_some_and(|d| d.contains("several clients trust this token"))
        },
    )
    .await;
    for client in [&first, &second] {
        let response = app
            .post_form(
                "/oauth2/token",
                &jwt_bearer(&token, &[("client_id", &client.id)]),
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            jwt_part(body["access_token"].as_str().unwrap(), 1)["client_id"],
            client.id.as_str()
        );
    }

    // The platform rotates its key: the fetched keys follow (after one refused attempt
    // asks for a refetch); the registered ones do not until an operator updates them.
    platform.rotate(vec![TestKey::es256("b")]);
    let rotated = platform.token(SUBJECT, &app.issuer, 600);
    within(
        Duration::from_secs(5),
        "the rotated key is fetched",
        || async {
            app.post_form(
                "/oauth2/token",
                &jwt_bearer(&rotated, &[("client_id", &first.id)]),
                None,
            )
            .await
            .status()
                == 200
        },
    )
    .await;
    let response = app
        .post_form(
            "/oauth2/token",
            &jwt_bearer(&rotated, &[("client_id", &second.id)]),
            None,
        )
        .await;
    let body = assert_rfc_error(response, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("no registered key has kid"),
        "{body}"
    );
    // Without client_id, only the first client's rule accepts it now.
    let response = app
        .post_form("/oauth2/token", &jwt_bearer(&rotated, &[]), None)
        .await;
    assert_eq!(response.status(), 200);

    // Removing the rule ends the trust.
    let rules = app.store.list_trust_rules(Some(&first.id)).await.unwrap();
    secretless::untrust(app.store.as_ref(), &first.id, &rules[0].id, &Actor::cli())
        .await
        .unwrap();
    app.synced().await;
    let response = app
        .post_form(
            "/oauth2/token",
            &jwt_bearer(&rotated, &[("client_id", &first.id)]),
            None,
        )
        .await;
    assert_rfc_error(response, 400, "invalid_grant").await;
}

#[tokio::test]
async fn bad_platform_tokens_are_refused_in_both_error_shapes() {
    let app = spawn_app_with(without_failure_budgets).await;
    let key = TestKey::ed25519("k");
    let issuer = "https://token.actions.githubusercontent.com";
    let subject = "repo:acme/ledger:ref:refs/heads/main";
    let (client, _) = app.create_client("x", None).await;
    let rule = NewTrustRule {
        issuer: issuer.into(),
        subject: subject.into(),
        audience: Some("https://auth.acme.example".into()),
        keys: Some(KeysInput::Jwks(key_set(&[&key]).to_string())),
    };
    trust(&app, &client.id, rule).await;
    let now = now();
    let claims = |patch: Value| {
        let mut c = json!({"iss": issuer, "sub": subject, "aud": "https://auth.acme.example",
                           "iat": now, "exp": now + 300});
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let good = key.jwt(json!({}), &claims(json!({})));
    assert_eq!(
        app.post_form("/oauth2/token", &jwt_bearer(&good, &[]), None)
            .await
            .status(),
        200
    );

    let stranger = TestKey::ed25519("k");
    let grant_cases: Vec<(&str, String, &str)> = vec![
        (
            "another branch",
            key.jwt(
                json!({}),
                &claims(json!({"sub": format!("{subject}-evil")})),
            ),
            "sub does not match",
        ),
        (
            "a subject prefix",
            key.jwt(json!({}), &claims(json!({"sub": "repo:acme/ledger"}))),
            "sub does not match",
        ),
        (
            "wrong audience",
            key.jwt(json!({}), &claims(json!({"aud": "https://elsewhere"}))),
            "among the audiences",
        ),
        (
            "expired",
            key.jwt(json!({}), &claims(json!({"exp": now - 5}))),
            "expired",
        ),
        (
            "not yet valid",
            key.jwt(
                json!({}),
                &claims(json!({"nbf": now + 600, "exp": now + 900})),
            ),
            "nbf",
        ),
        (
            "too long-lived",
            key.jwt(json!({}), &claims(json!({"exp": now + 90_000}))),
            "longer than 86400",
        ),
        (
            "unknown issuer",
            key.jwt(json!({}), &claims(json!({"iss": "https://evil.example"}))),
            "no trust rule",
        ),
        (
            "no issuer",
            key.jwt(json!({}), &claims(json!({"iss": null}))),
            "iss claim is required",
        ),
        (
            "another key",
            stranger.jwt(json!({}), &claims(json!({}))),
            "does not verify",
        ),
        (
            "alg none",
            unsigned_jwt(&json!({"alg": "none"}), &claims(json!({})), b""),
            "\"none\" is not accepted",
        ),
        (
            "HS256 with the public key",
            hs256_jwt(
                &key.public_bytes(),
                &json!({"alg": "HS256"}),
                &claims(json!({})),
            ),
            "\"HS256\" is not accepted",
        ),
    ];
    for (what, token, check) in &grant_cases {
        for (path, body) in [
            ("/oauth2/token", jwt_bearer(token, &[])),
            ("/auth/token", exchange(token, &[])),
        ] {
            let response = app.post_form(path, &body, None).await;
            let error = assert_error(
                response,
                400,
                "api_error.auth.invalid_grant",
                Some("invalid_grant"),
            )
            .await;
            let description = error["error_description"].as_str().unwrap();
            assert!(
                description.contains(check),
                "{what} at {path}: {description}"
            );
        }
    }
    let request_cases: Vec<(&str, String)> = vec![
        ("no assertion", form(&[("grant_type", JWT_BEARER)])),
        (
            "no subject_token",
            form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token_type", JWT_TOKEN_TYPE),
            ]),
        ),
        (
            "no subject_token_type",
            form(&[("grant_type", TOKEN_EXCHANGE), ("subject_token", &good)]),
        ),
        (
            "an access token type",
            form(&[
                ("grant_type", TOKEN_EXCHANGE),
                ("subject_token", &good),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ]),
        ),
        ("delegation", exchange(&good, &[("actor_token", &good)])),
        (
            "a refresh token asked for",
            exchange(
                &good,
                &[(
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                )],
            ),
        ),
        ("not a JWT", jwt_bearer("garbage", &[])),
        ("oversized", jwt_bearer(&"a.b.c".repeat(2000), &[])),
    ];
    for (what, body) in &request_cases {
        for path in ["/oauth2/token", "/auth/token"] {
            let response = app.post_form(path, body, None).await;
            assert_eq!(response.status(), 400, "{what} at {path}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"], "invalid_request", "{what}: {error}");
            assert_eq!(
                error["error_code"], "api_error.request.validation_failed",
                "{what}: {error}"
            );
        }
    }
    // A disabled client's trust gives nothing; the server is still fine.
    app.disable_client(&client.id, None).await;
    let response = app
        .post_form("/oauth2/token", &jwt_bearer(&good, &[]), None)
        .await;
    let body = assert_rfc_error(response, 400, "invalid_grant").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("disabled"),
        "{body}"
    );
    app.enable_client(&client.id).await;
    assert_eq!(
        app.post_form("/oauth2/token", &jwt_bearer(&good, &[]), None)
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn an_issuer_serving_garbage_or_answering_too_slowly_is_refused_and_the_server_stays_up() {
    let app = spawn_app_with(|s| {
        with_local_key_hosts(s);
        without_failure_budgets(s);
    })
    .await;
    for mode in [Mode::Garbage, Mode::Slow, Mode::Huge] {
        let platform = FakeIssuer::start(vec![TestKey::es256("a")]).await;
        platform.set_mode(mode);
        let (client, _) = app.create_client("x", None).await;
        trust(&app, &client.id, rule(&platform, None)).await;
        let token = platform.token(SUBJECT, &app.issuer, 600);
        // Refused while the keys cannot be fetched (each attempt bounded by the fetch
        // timeout, in the background), and the request itself never waits for a fetch.
        for _ in 0..3 {
            let started = std::time::Instant::now();
            let response = app
                .post_form("/oauth2/token", &jwt_bearer(&token, &[]), None)
                .await;
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "{mode:?}: the request waited"
            );
            let body = assert_rfc_error(response, 400, "invalid_grant").await;
            assert!(
                body["error_description"]
                    .as_str()
                    .unwrap()
                    .contains("could not be fetched"),
                "{mode:?}: {body}"
            );
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        // It recovers when the issuer does.
        platform.set_mode(Mode::Normal);
        within(
            Duration::from_secs(5),
            "the issuer's keys are fetched",
            || async {
                app.post_form("/oauth2/token", &jwt_bearer(&token, &[]), None)
                    .await
                    .status()
                    == 200
            },
        )
        .await;
    }
}

#[tokio::test]
async fn trust_rules_through_the_cli_and_the_admin_api() {
    const ADMIN_TOKEN: &str = "admin-token-for-tests-0123456789abcdef";
    let app = spawn_app_with(|s| {
        s.admin_listen = Some("127.0.0.1:0".parse().unwrap());
        s.admin_token = Some(ADMIN_TOKEN.into());
    })
    .await;
    let admin = app.admin_base.clone().unwrap();
    let (client, _) = app.create_client("x", None).await;
    let key = TestKey::es256("k8s");
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("cluster-jwks.json");
    std::fs::write(&jwks_path, key_set(&[&key]).to_string()).unwrap();
    let out = app
        .cli_async(&[
            "clients",
            "trust",
            &client.id,
            "--issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--subject",
            SUBJECT,
            "--jwks-file",
            jwks_path.to_str().unwrap(),
            "--json",
        ])
        .await;
    let rule = cli_json(&out);
    assert_eq!(rule["keys"], "jwks");
    assert_eq!(rule["jwks_kids"], json!(["k8s"]));
    let rule_id = rule["rule_id"].as_str().unwrap();
    let shown = cli_json(
        &app.cli_async(&["clients", "show", &client.id, "--json"])
            .await,
    );
    assert_eq!(shown["trust_rules"][0]["rule_id"], rule_id);
    // Guarded: discovery of an issuer on a private address is refused (no connection).
    one_line_error(
        app.cli_async(&[
            "clients",
            "trust",
            &client.id,
            "--issuer",
            "https://10.0.0.7",
            "--subject",
            "s",
        ])
        .await,
        "private",
    );
    one_line_error(
        app.cli_async(&[
            "clients",
            "trust",
            &client.id,
            "--issuer",
            "",
            "--subject",
            "s",
            "--jwks-file",
            jwks_path.to_str().unwrap(),
        ])
        .await,
        "issuer must be",
    );
    one_line_error(
        app.cli_async(&["clients", "untrust", &client.id, "trust_nope"])
            .await,
        "has no trust rule",
    );

    // The admin API: list, add (with a JWKS object), remove.
    let http = &app.http;
    let url = format!("{admin}/admin/clients/{}/trust-rules", client.id);
    let (status, listed) = admin_call(http, ADMIN_TOKEN, "GET", &url, None).await;
    assert_eq!((status, listed.as_array().unwrap().len()), (200, 1));
    let (status, added) = admin_call(
        http,
        ADMIN_TOKEN,
        "POST",
        &url,
        Some(
            json!({"issuer": "https://token.actions.githubusercontent.com",
                    "subject": "repo:acme/ledger:ref:refs/heads/main",
                    "audience": "https://auth.acme.example",
                    "jwks": key_set(&[&key])}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{added}");
    let (status, _) = admin_call(http, ADMIN_TOKEN, "POST", &url, Some(json!({"issuer": "x", "subject": "y", "jwks": {"keys": [{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}}))).await;
    assert_eq!(status, 422);
    let (status, _) = admin_call(
        http,
        ADMIN_TOKEN,
        "DELETE",
        &format!("{url}/{}", added["rule_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = admin_call(
        http,
        ADMIN_TOKEN,
        "DELETE",
        &format!("{url}/{}", added["rule_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = admin_call(
        http,
        ADMIN_TOKEN,
        "GET",
        &format!("{admin}/admin/clients/live_nope/trust-rules"),
        None,
    )
    .await;
    assert_eq!(status, 404);

    // private_key_jwt clients through the admin API.
    let owner = app.create_app("Keys").await;
    let (status, created) = admin_call(
        http, ADMIN_TOKEN, "POST", &format!("{admin}/admin/clients"),
        Some(json!({"app_id": owner.id, "token_endpoint_auth_method": "private_key_jwt", "jwks": key_set(&[&key])})),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created.get("client_secret").is_none());
    assert_eq!(created["jwks_kids"], json!(["k8s"]));
    let (status, _) = admin_call(
        http,
        ADMIN_TOKEN,
        "POST",
        &format!("{admin}/admin/clients"),
        Some(json!({"app_id": owner.id, "token_endpoint_auth_method": "private_key_jwt"})),
    )
    .await;
    assert_eq!(status, 422);
    let id = created["client_id"].as_str().unwrap();
    let (status, patched) = admin_call(
        http,
        ADMIN_TOKEN,
        "PATCH",
        &format!("{admin}/admin/clients/{id}"),
        Some(json!({"jwks": key_set(&[&TestKey::rs256("next")])})),
    )
    .await;
    assert_eq!((status, &patched["jwks_kids"]), (200, &json!(["next"])));
    let (status, _) = admin_call(
        http,
        ADMIN_TOKEN,
        "POST",
        &format!("{admin}/admin/clients/{id}/rotate-secret"),
        None,
    )
    .await;
    assert_eq!(status, 422);
}
