//! `private_key_jwt` client authentication (RFC 7523 §2.2, §3): clients that hold a
//! private key and no secret, on every endpoint where clients authenticate; every way an
//! assertion can be wrong; keys registered as a JWKS or published at a JWKS URI.

use std::time::Duration;

use moneykit_auth::domain::clients::Client;
use moneykit_auth::operations::secretless::{self, KeysInput, SecretlessAuth};
use moneykit_auth::operations::{Actor, NewClient};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::support::issuer::FakeIssuer;
use crate::support::signing::*;

/// Test settings that let the server fetch keys from the loopback fake issuer, and
/// refetch quickly.
pub fn with_local_key_hosts(settings: &mut moneykit_auth::config::ServeSettings) {
    let fetch = &mut settings.secretless.key_fetch;
    fetch.policy.allow_http = true;
    fetch.policy.allow_private_targets = true;
    fetch.min_refetch_interval = Duration::from_millis(300);
    fetch.timeout = Duration::from_secs(1);
}

/// Test settings without failed-authentication budgets, for the suites that fail on
/// purpose many times in a row.
pub fn without_failure_budgets(settings: &mut moneykit_auth::config::ServeSettings) {
    use moneykit_auth::engine::ratelimit::Rate;
    settings.rate_limits.failures_per_address = Rate::UNLIMITED;
    settings.rate_limits.failures_per_client = Rate::UNLIMITED;
}

/// A `private_key_jwt` client of a new app, with `keys` registered as its JWKS.
pub async fn key_client(app: &TestApp, scope: &str, keys: KeysInput) -> Client {
    let owner = app.create_app("Keyed").await;
    let new = NewClient {
        app_id: owner.id,
        name: "keyed".into(),
        scope: scope.into(),
        audiences: Vec::new(),
        token_ttl_secs: None,
        require_dpop: false,
        secret_ttl_secs: None,
    };
    let policy = moneykit_auth::net::guard::TargetPolicy {
        allow_http: true,
        allow_private_targets: true,
    };
    let client = secretless::create_secretless_client(
        app.store.as_ref(),
        &new,
        &SecretlessAuth::Keys(keys),
        policy,
        &Actor::cli(),
    )
    .await
    .unwrap();
    app.synced().await;
    client
}

fn registered(keys: &[&TestKey]) -> KeysInput {
    KeysInput::Jwks(key_set(keys).to_string())
}

/// The access token of a 201 issued to `client_id`.
pub async fn issued_token(response: reqwest::Response, client_id: &str) -> String {
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&token, 1)["client_id"], client_id);
    token
}

/// A client-credentials request authenticated by `assertion`.
fn assertion_form(assertion: &str, extra: &[(&str, &str)]) -> String {
    let mut pairs = vec![
        ("grant_type", "client_credentials"),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", assertion),
    ];
    pairs.extend_from_slice(extra);
    form(&pairs)
}

#[tokio::test]
async fn every_algorithm_authenticates_on_every_endpoint() {
    let app = spawn_app().await;
    let keys = [
        TestKey::es256("k-es256"),
        TestKey::es384("k-es384"),
        TestKey::ed25519("k-ed"),
        TestKey::rs256("k-rs256"),
        TestKey::ps256("k-ps256"),
    ];
    let client = key_client(&app, "a b", registered(&keys.iter().collect::<Vec<_>>())).await;
    for key in &keys {
        // The MoneyKit surface (201), with and without client_id.
        let assertion = key.assertion(&client.id, &app.issuer);
        let response = app
            .post_token(&assertion_form(&assertion, &[("scope", "a")]), None)
            .await;
        let body = assert_issued_to(response, &client.id).await;
        assert_eq!(body["scope"], "a", "{}", key.alg);
        let assertion = key.assertion(&client.id, &app.issuer);
        let response = app
            .post_token(
                &assertion_form(&assertion, &[("client_id", &client.id)]),
                None,
            )
            .await;
        let token = issued_token(response, &client.id).await;

        // The standard surface (200), a token endpoint URL as the audience.
        let assertion = key.assertion(&client.id, &app.url("/oauth2/token"));
        let response = app
            .post_form("/oauth2/token", &assertion_form(&assertion, &[]), None)
            .await;
        assert_eq!(
            response.status(),
            200,
            "{}: {}",
            key.alg,
            response.text().await.unwrap()
        );

        // Introspection and revocation authenticate the same way.
        let call = |token: &str| {
            form(&[
                ("token", token),
                ("client_assertion_type", CLIENT_ASSERTION_TYPE),
                ("client_assertion", &key.assertion(&client.id, &app.issuer)),
            ])
        };
        let response = app
            .post_form("/oauth2/introspect", &call(&token), None)
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["active"], true, "{body}");
        assert_eq!(body["client_id"], client.id.as_str());
        let response = app.post_form("/oauth2/revoke", &call(&token), None).await;
        assert_eq!(response.status(), 200, "{}", key.alg);
        assert_eq!(app.introspect(&token).await.status(), 401, "revoked");
    }
}

#[tokio::test]
async fn an_assertion_is_accepted_once() {
    let app = spawn_app().await;
    let key = TestKey::es256("k1");
    let client = key_client(&app, "a", registered(&[&key])).await;
    let assertion = key.assertion(&client.id, &app.issuer);
    let first = app.post_token(&assertion_form(&assertion, &[]), None).await;
    assert_issued_to(first, &client.id).await;
    for path in ["/auth/token", "/oauth2/token"] {
        let again = app
            .post_form(path, &assertion_form(&assertion, &[]), None)
            .await;
        let body = assert_rfc_error(again, 401, "invalid_client").await;
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("jti has been used before"),
            "{body}"
        );
    }
    // Also when used for introspection first, then for a token.
    let token = issued_token(
        app.post_token(
            &assertion_form(&key.assertion(&client.id, &app.issuer), &[]),
            None,
        )
        .await,
        &client.id,
    )
    .await;
    let assertion = key.assertion(&client.id, &app.issuer);
    let introspect = form(&[
        ("token", &token),
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]);
    assert_eq!(
        app.post_form("/oauth2/introspect", &introspect, None)
            .await
            .status(),
        200
    );
    let reused = app.post_token(&assertion_form(&assertion, &[]), None).await;
    assert_invalid_client(reused).await;
    // Used up even when the request then fails for another reason: a scope refused, a
    // missing token parameter.
    let assertion = key.assertion(&client.id, &app.issuer);
    let refused = app
        .post_token(
            &assertion_form(&assertion, &[("scope", "not-allowed")]),
            None,
        )
        .await;
    assert_rfc_error(refused, 400, "invalid_scope").await;
    assert_invalid_client(app.post_token(&assertion_form(&assertion, &[]), None).await).await;
    let assertion = key.assertion(&client.id, &app.issuer);
    let no_token = form(&[
        ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ("client_assertion", &assertion),
    ]);
    let refused = app.post_form("/oauth2/introspect", &no_token, None).await;
    assert_rfc_error(refused, 400, "invalid_request").await;
    assert_invalid_client(app.post_token(&assertion_form(&assertion, &[]), None).await).await;
}

#[tokio::test]
async fn bad_assertions_are_refused_naming_the_check_and_nothing_is_recorded() {
    let app = spawn_app_with(without_failure_budgets).await;
    let key = TestKey::es256("k1");
    let other = TestKey::es256("k1"); // same kid, another key
    let client = key_client(&app, "a", registered(&[&key])).await;
    let (_, other_client_secret) = app.create_client("a", None).await;
    let id = client.id.as_str();
    let now = now();
    let claims = |patch: Value| {
        let mut c = json!({"iss": id, "sub": id, "aud": app.issuer, "iat": now,
                           "exp": now + 60, "jti": "reused-jti"});
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let signed = |patch: Value| key.jwt(json!({}), &claims(patch));
    let good_claims = claims(json!({}));
    let header_none = json!({"alg": "none", "typ": "JWT"});
    let hs_forgery = hs256_jwt(
        &key.public_bytes(),
        &json!({"alg": "HS256", "kid": "k1"}),
        &good_claims,
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired",
            signed(json!({"exp": now - 10, "iat": now - 70})),
            "expired",
        ),
        ("not yet valid", signed(json!({"nbf": now + 120})), "nbf"),
        (
            "issued in the future",
            signed(json!({"iat": now + 120, "exp": now + 180})),
            "iat",
        ),
        (
            "too long-lived",
            signed(json!({"exp": now + 3600})),
            "longer than 300",
        ),
        (
            "no exp",
            signed(json!({"exp": null})),
            "exp claim is required",
        ),
        (
            "wrong aud",
            signed(json!({"aud": "https://elsewhere.example"})),
            "aud must be",
        ),
        (
            "no aud",
            signed(json!({"aud": null})),
            "aud claim is required",
        ),
        (
            "wrong iss",
            signed(json!({"iss": "someone-else"})),
            "iss and sub",
        ),
        (
            "no jti",
            signed(json!({"jti": null})),
            "jti claim is required",
        ),
        (
            "sub of another client",
            signed(json!({"sub": "live_000000000000000000000000"})),
            "not signed by a registered key of the client named in sub",
        ),
        (
            "alg none",
            unsigned_jwt(&header_none, &good_claims, b""),
            "\"none\" is not accepted",
        ),
        (
            "HS256 with the public key",
            hs_forgery,
            "\"HS256\" is not accepted",
        ),
        (
            "unknown kid",
            key.jwt(json!({"kid": "k-unknown"}), &good_claims),
            "not signed by a registered key of the client named in sub",
        ),
        (
            "wrong key",
            other.jwt(json!({}), &good_claims),
            "not signed by a registered key of the client named in sub",
        ),
        (
            "typ of another JWT",
            key.jwt(json!({"typ": "at+jwt"}), &good_claims),
            "typ must be",
        ),
        (
            "oversized",
            signed(json!({"pad": "x".repeat(9000)})),
            "longer than 8192 bytes",
        ),
        ("not a JWT", "not.a.jwt".to_owned(), "not a compact JWT"),
        (
            "claims not JSON",
            unsigned_jwt(&json!({"alg":"ES256"}), &json!("text"), b"x"),
            "not valid JSON claims",
        ),
    ];
    for (what, assertion, check) in &cases {
        for path in ["/auth/token", "/oauth2/token"] {
            let response = app
                .post_form(path, &assertion_form(assertion, &[]), None)
                .await;
            let body = assert_error(
                response,
                401,
                "api_error.auth.unauthorized",
                Some("invalid_client"),
            )
            .await;
            let description = body["error_description"].as_str().unwrap();
            assert!(
                description.contains(check),
                "{what} at {path}: {description}"
            );
            assert!(!description.contains(&key.public_jwk()["x"].as_str().unwrap()[..16]));
        }
    }
    // None of those was recorded: the same jti is still good for a valid assertion, once.
    let good = signed(json!({}));
    assert_issued_to(app.post_token(&assertion_form(&good, &[]), None).await, id).await;
    // A secret is not accepted for a key client, and an assertion not for a secret client.
    let with_secret = form(&[
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", &other_client_secret),
    ]);
    assert_invalid_client(app.post_token(&with_secret, None).await).await;
    assert_invalid_client(
        app.post_token(&with_secret, Some(&basic(id, "mks_guess")))
            .await,
    )
    .await;
    // client_id that disagrees with the assertion.
    let mismatch = assertion_form(
        &key.assertion(id, &app.issuer),
        &[("client_id", "live_other")],
    );
    let body = assert_rfc_error(app.post_token(&mismatch, None).await, 401, "invalid_client").await;
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("client_id does not match")
    );
}

#[tokio::test]
async fn malformed_assertion_parameters_are_invalid_requests() {
    let app = spawn_app().await;
    let key = TestKey::es256("k1");
    let client = key_client(&app, "a", registered(&[&key])).await;
    let assertion = key.assertion(&client.id, &app.issuer);
    let cases = [
        form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion", &assertion),
        ]),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
        ]),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", "urn:x"),
            ("client_assertion", &assertion),
        ]),
        form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", &assertion),
            ("client_secret", "x"),
        ]),
    ];
    for body in &cases {
        assert_validation_failed(app.post_token(body, None).await).await;
        assert_rfc_error(
            app.post_form("/oauth2/token", body, None).await,
            400,
            "invalid_request",
        )
        .await;
    }
    // With Basic too.
    let both = assertion_form(&assertion, &[]);
    assert_rfc_error(
        app.post_form("/oauth2/token", &both, Some(&basic(&client.id, "x")))
            .await,
        400,
        "invalid_request",
    )
    .await;
    // The server is fine, and the assertion was never used.
    assert_issued_to(
        app.post_token(&assertion_form(&assertion, &[]), None).await,
        &client.id,
    )
    .await;
}

#[tokio::test]
async fn strict_mode_takes_only_the_issuer_as_a_single_string() {
    let lenient = spawn_app().await;
    let strict = spawn_app_with(|s| s.secretless.strict_assertion_audience = true).await;
    for (app, is_strict) in [(&lenient, false), (&strict, true)] {
        let key = TestKey::es256("k1");
        let client = key_client(app, "a", registered(&[&key])).await;
        let metadata = app
            .get_json("/.well-known/oauth-authorization-server")
            .await;
        let accepted: Vec<&str> = metadata["client_assertion_audiences_accepted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let endpoint = app.url("/oauth2/token");
        if is_strict {
            assert_eq!(accepted, [app.issuer.as_str()]);
        } else {
            assert!(
                accepted.contains(&app.issuer.as_str()) && accepted.contains(&endpoint.as_str())
            );
        }
        let assertion_for = |aud: Value| {
            let mut claims = assertion_claims(&client.id, "");
            claims["aud"] = aud;
            key.jwt(json!({}), &claims)
        };
        let issuer_string = assertion_for(json!(app.issuer));
        assert_eq!(
            app.post_token(&assertion_form(&issuer_string, &[]), None)
                .await
                .status(),
            201
        );
        for aud in [
            json!(endpoint),
            json!([app.issuer]),
            json!(["https://attacker.example", endpoint]),
        ] {
            let response = app
                .post_token(&assertion_form(&assertion_for(aud.clone()), &[]), None)
                .await;
            let expected = if is_strict { 401 } else { 201 };
            assert_eq!(response.status(), expected, "strict {is_strict}, aud {aud}");
        }
    }
}

#[tokio::test]
async fn metadata_lists_private_key_jwt_and_its_algorithms() {
    let app = spawn_app().await;
    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = &metadata[format!("{endpoint}_endpoint_auth_methods_supported")];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("private_key_jwt")),
            "{metadata}"
        );
        let algs = &metadata[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        assert_eq!(
            algs,
            &json!(["ES256", "ES384", "EdDSA", "Ed25519", "RS256", "PS256"])
        );
    }
    let grants = metadata["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(JWT_BEARER)) && grants.contains(&json!(TOKEN_EXCHANGE)));
}

#[tokio::test]
async fn keys_at_a_jwks_uri_are_fetched_and_an_unknown_kid_refetches_at_most_once_per_interval() {
    let app = spawn_app_with(|s| {
        with_local_key_hosts(s);
        without_failure_budgets(s);
    })
    .await;
    // The client's key host: it signs with its first key and publishes them all.
    let host = FakeIssuer::start(vec![TestKey::es256("old")]).await;
    let client = key_client(&app, "a", KeysInput::Uri(host.jwks_uri())).await;
    let assertion = || host.token_with(&assertion_claims(&client.id, &app.issuer));

    // The keys are fetched in the background, within a second or two.
    within(
        Duration::from_secs(5),
        "the client's keys are fetched",
        || async {
            app.post_token(&assertion_form(&assertion(), &[]), None)
                .await
                .status()
                == 201
        },
    )
    .await;

    // The client rolls its key at its host. A flood of assertions naming unknown kids
    // makes the server fetch at most once per interval (300 ms here), and the next
    // fetch picks up the new key.
    host.rotate(vec![TestKey::es256("new"), TestKey::es256("old")]);
    let (before, _) = host.requests();
    let forger = TestKey::es256("forger");
    let started = std::time::Instant::now();
    for i in 0..200 {
        let forged = forger.jwt(
            json!({"kid": format!("forged-{i}")}),
            &assertion_claims(&client.id, &app.issuer),
        );
        assert_eq!(
            app.post_token(&assertion_form(&forged, &[]), None)
                .await
                .status(),
            401
        );
    }
    let (after, _) = host.requests();
    let intervals = started.elapsed().as_millis() / 300 + 2;
    assert!(
        u128::from(after - before) <= intervals,
        "{} fetches for 200 unknown kids in {:?}",
        after - before,
        started.elapsed()
    );
    within(Duration::from_secs(5), "the new key is used", || async {
        app.post_token(&assertion_form(&assertion(), &[]), None)
            .await
            .status()
            == 201
    })
    .await;
}

#[tokio::test]
async fn registering_keys_refuses_private_members_unusable_keys_and_guarded_uris() {
    let app = spawn_app().await;
    let owner = app.create_app("Keys").await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, value: &Value| {
        let path = dir.path().join(name);
        std::fs::write(&path, value.to_string()).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let key = TestKey::es256("k1");
    let mut private = key.public_jwk();
    private["d"] = json!("c2VjcmV0");
    let cases = [
        (
            write("private.json", &json!({"keys": [private]})),
            "private member \"d\"",
        ),
        (
            write(
                "hmac.json",
                &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}),
            ),
            "private member \"k\"",
        ),
        (write("empty.json", &json!({"keys": []})), "no keys"),
        (
            write(
                "weak.json",
                &json!({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}),
            ),
            "2048",
        ),
        (write("text.json", &json!("nope")), "not a JWKS"),
    ];
    let create = |extra: Vec<String>| {
        let mut args: Vec<String> = [
            "clients",
            "create",
            "--app",
            &owner.id,
            "--auth-method",
            "private_key_jwt",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra);
        args
    };
    for (path, message) in &cases {
        let args = create(vec!["--jwks-file".into(), path.clone()]);
        let out = app
            .cli_async(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        let stderr = one_line_error(out, message);
        assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
    }
    // URLs go through the SSRF guard: decisions only, no connection is made.
    for (uri, message) in [
        ("http://keys.example/jwks", "must use https"),
        ("https://127.0.0.1/jwks", "loopback"),
        ("https://10.1.2.3/jwks", "private"),
        ("https://169.254.169.254/latest", "link-local"),
        ("https://[::ffff:10.0.0.1]/jwks", "private"),
        ("https://user:pw@keys.example/jwks", "user name or password"),
    ] {
        let args = create(vec!["--jwks-uri".into(), uri.into()]);
        let out = app
            .cli_async(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .await;
        one_line_error(out, message);
    }
    // Method and keys must go together.
    let out = app
        .cli_async(
            &create(vec![])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
    one_line_error(out, "needs the client's public keys");
    assert!(
        app.store
            .list_clients(Some(&owner.id))
            .await
            .unwrap()
            .is_empty(),
        "nothing stored"
    );

    // A good one: no secret printed; show and list name the method and the kids.
    let good = write("good.json", &key_set(&[&key, &TestKey::ed25519("k2")]));
    let out = app
        .cli_async(
            &create(vec!["--jwks-file".into(), good, "--json".into()])
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        )
        .await;
    let created = cli_json(&out);
    assert!(created.get("client_secret").is_none(), "{created}");
    assert_eq!(created["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(created["jwks_kids"], json!(["k1", "k2"]));
    let id = created["client_id"].as_str().unwrap();
    let shown = cli_json(&app.cli_async(&["clients", "show", id, "--json"]).await);
    assert_eq!(shown["jwks_kids"], json!(["k1", "k2"]));
    let listed = cli_json(&app.cli_async(&["clients", "list", "--json"]).await);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["token_endpoint_auth_method"] == "private_key_jwt")
    );
    // No secret to rotate.
    one_line_error(
        app.cli_async(&["clients", "rotate-secret", id]).await,
        "has no secret",
    );
    // Keys roll with update.
    let rolled = write("rolled.json", &key_set(&[&TestKey::es384("k3")]));
    let updated = cli_json(
        &app.cli_async(&["clients", "update", id, "--jwks-file", &rolled, "--json"])
            .await,
    );
    assert_eq!(updated["jwks_kids"], json!(["k3"]));
    // Keys are for key clients only.
    let (secret_client, _) = app.create_client("a", None).await;
    one_line_error(
        app.cli_async(&[
            "clients",
            "update",
            &secret_client.id,
            "--jwks-file",
            &rolled,
        ])
        .await,
        "authenticates with a secret: keys and certificates are for clients created without one",
    );
}
