//! DPoP (RFC 9449) against a real server: tokens bound to the client's key on both
//! surfaces, their use at `/auth/introspect`, nonces, the per-client requirement, and
//! every malformed or replayed proof refused with a 400 in both error shapes.

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::support::signing::{self, TestKey, jti, now};

/// The `DPoP` header name.
const DPOP: &str = "DPoP";

/// `POST /auth/token` with the client's secret in Basic and `proofs` as `DPoP` headers.
async fn token_with(app: &TestApp, client: (&str, &str), proofs: &[&str]) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/auth/token"))
        .basic_auth(client.0, Some(client.1))
        .form(&[("grant_type", "client_credentials")]);
    for proof in proofs {
        request = request.header(DPOP, *proof);
    }
    request.send().await.unwrap()
}

/// A DPoP-bound token from `/auth/token`, checked: `token_type` DPoP, `cnf.jkt` the key's
/// thumbprint.
async fn bound_token(app: &TestApp, client: (&str, &str), key: &TestKey) -> String {
    let proof = key.dpop_proof("POST", &format!("{}/auth/token", app.issuer), None, None);
    let response = token_with(app, client, &[&proof]).await;
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&token, 1)["cnf"]["jkt"], key.thumbprint());
    token
}

/// `GET /auth/introspect` with `authorization` and an optional proof.
async fn introspect_with(
    app: &TestApp,
    authorization: &str,
    proof: Option<&str>,
) -> reqwest::Response {
    let mut request = app
        .http
        .get(app.url("/auth/introspect"))
        .header("authorization", authorization);
    if let Some(proof) = proof {
        request = request.header(DPOP, proof);
    }
    request.send().await.unwrap()
}

/// A 400 `invalid_dpop_proof` in both shapes whose description mentions `names`.
async fn assert_invalid_proof(response: reqwest::Response, names: &str) {
    let body = assert_error(
        response,
        400,
        "api_error.auth.invalid_dpop_proof",
        Some("invalid_dpop_proof"),
    )
    .await;
    let description = body["error_description"].as_str().unwrap();
    assert!(description.contains(names), "{names:?} not in {body}");
}

/// A 401 with a `WWW-Authenticate: DPoP` challenge naming `error`.
async fn assert_dpop_challenge(response: reqwest::Response, error: &str) -> Value {
    let challenge = response.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(&format!("error=\"{error}\"")),
        "{challenge}"
    );
    assert!(challenge.contains("algs=\"ES256"), "{challenge}");
    assert_error(response, 401, "api_error.auth.unauthorized", Some(error)).await
}

#[tokio::test]
async fn dpop_bound_tokens_come_from_both_surfaces_with_each_key_type() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("accounts:read", None).await;
    for key in [
        TestKey::es256("e"),
        TestKey::es384("e3"),
        TestKey::ed25519("ed"),
        TestKey::rs256("r"),
        TestKey::ps256("p"),
    ] {
        bound_token(&app, (&client.id, &secret), &key).await;
    }

    // The standard surface: 200, token_type DPoP; introspection shows the binding.
    let key = TestKey::es256("k");
    let proof = key.dpop_proof("POST", &format!("{}/oauth2/token", app.issuer), None, None);
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, Some(&secret))
        .header(DPOP, proof)
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let token = body["access_token"].as_str().unwrap();
    let seen = app.rfc_introspect((&client.id, &secret), token).await;
    assert_eq!(seen["active"], true, "{seen}");
    assert_eq!(seen["token_type"], "DPoP", "{seen}");
    assert_eq!(seen["cnf"]["jkt"], key.thumbprint(), "{seen}");

    // Without a proof, a bearer token as before, with no cnf.
    let plain = app.token(&client.id, &secret, None).await;
    let seen = app.rfc_introspect((&client.id, &secret), &plain).await;
    assert_eq!(seen["token_type"], "Bearer", "{seen}");
    assert!(seen.get("cnf").is_none(), "{seen}");

    let metadata = app
        .get_json("/.well-known/oauth-authorization-server")
        .await;
    let algs = metadata["dpop_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for alg in ["ES256", "ES384", "EdDSA", "RS256", "PS256"] {
        assert!(algs.contains(&json!(alg)), "{metadata}");
    }
}

#[tokio::test]
async fn a_dpop_bound_token_is_used_with_a_proof_of_its_key_only() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let key = TestKey::es256("k");
    let token = bound_token(&app, (&client.id, &secret), &key).await;
    let url = format!("{}/auth/introspect", app.issuer);
    let dpop = format!("DPoP {token}");

    let proof = key.dpop_proof("GET", &url, Some(&token), None);
    assert_introspected_as(introspect_with(&app, &dpop, Some(&proof)).await, &client.id).await;
    // The same proof again: a replay.
    assert_dpop_challenge(
        introspect_with(&app, &dpop, Some(&proof)).await,
        "invalid_dpop_proof",
    )
    .await;
    // As a bearer token it is refused: whoever stole it lacks the key.
    assert_dpop_challenge(
        introspect_with(&app, &format!("Bearer {token}"), None).await,
        "invalid_token",
    )
    .await;
    // No proof; a proof without ath; one for another token; one by another key; one for
    // another method or URL.
    assert_dpop_challenge(
        introspect_with(&app, &dpop, None).await,
        "invalid_dpop_proof",
    )
    .await;
    let cases = [
        key.dpop_proof("GET", &url, None, None),
        key.dpop_proof("GET", &url, Some("another token"), None),
        TestKey::es256("thief").dpop_proof("GET", &url, Some(&token), None),
        key.dpop_proof("POST", &url, Some(&token), None),
        key.dpop_proof(
            "GET",
            &format!("{}/auth/token", app.issuer),
            Some(&token),
            None,
        ),
    ];
    for proof in cases {
        assert_dpop_challenge(
            introspect_with(&app, &dpop, Some(&proof)).await,
            "invalid_dpop_proof",
        )
        .await;
    }
    // A bearer token presented under the DPoP scheme is not DPoP-bound.
    let plain = app.token(&client.id, &secret, None).await;
    let proof = key.dpop_proof("GET", &url, Some(&plain), None);
    assert_dpop_challenge(
        introspect_with(&app, &format!("DPoP {plain}"), Some(&proof)).await,
        "invalid_token",
    )
    .await;
    assert_introspected_as(app.introspect(&plain).await, &client.id).await;
    // A forged token under the DPoP scheme gets a DPoP challenge: the scheme it came in.
    let forged = format!("{}x", &token[..token.len() - 1]);
    let proof = key.dpop_proof("GET", &url, Some(&forged), None);
    assert_dpop_challenge(
        introspect_with(&app, &format!("DPoP {forged}"), Some(&proof)).await,
        "invalid_token",
    )
    .await;
}

#[tokio::test]
async fn every_bad_proof_is_refused_with_the_check_named() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let key = TestKey::es256("k");
    let url = format!("{}/auth/token", app.issuer);
    let claims = || json!({"jti": jti(), "htm": "POST", "htu": url, "iat": now()});
    let with = |name: &str, value: Value| {
        let mut c = claims();
        c[name] = value;
        c
    };
    let without = |name: &str| {
        let mut c = claims();
        c.as_object_mut().unwrap().remove(name);
        c
    };
    let private_jwk = {
        let mut jwk = key.public_jwk();
        jwk["d"] = json!("AAAA");
        jwk
    };
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.public_jwk()});
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong htm",
            key.dpop_proof_with(json!({}), &with("htm", json!("GET"))),
            "htm",
        ),
        (
            "wrong path",
            key.dpop_proof_with(
                json!({}),
                &with("htu", json!(format!("{}/oauth2/token", app.issuer))),
            ),
            "htu",
        ),
        (
            "other host",
            key.dpop_proof_with(
                json!({}),
                &with("htu", json!("https://elsewhere.example/auth/token")),
            ),
            "htu",
        ),
        (
            "stale iat",
            key.dpop_proof_with(json!({}), &with("iat", json!(now() - 600))),
            "iat",
        ),
        (
            "future iat",
            key.dpop_proof_with(json!({}), &with("iat", json!(now() + 600))),
            "iat",
        ),
        (
            "no jti",
            key.dpop_proof_with(json!({}), &without("jti")),
            "claims",
        ),
        (
            "no iat",
            key.dpop_proof_with(json!({}), &without("iat")),
            "claims",
        ),
        (
            "long jti",
            key.dpop_proof_with(json!({}), &with("jti", json!("j".repeat(300)))),
            "jti",
        ),
        (
            "typ JWT",
            key.dpop_proof_with(json!({"typ": "JWT"}), &claims()),
            "typ",
        ),
        (
            "no jwk",
            key.jwt(json!({"typ": "dpop+jwt"}), &claims()),
            "jwk",
        ),
        (
            "private jwk",
            key.dpop_proof_with(json!({"jwk": private_jwk}), &claims()),
            "private",
        ),
        (
            "another key's jwk",
            key.dpop_proof_with(json!({"jwk": TestKey::es256("x").public_jwk()}), &claims()),
            "signature",
        ),
        (
            "alg none",
            signing::unsigned_jwt(
                &json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.public_jwk()}),
                &claims(),
                b"",
            ),
            "algorithm",
        ),
        (
            "HS256",
            signing::hs256_jwt(
                &key.public_bytes(),
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": key.public_jwk()}),
                &claims(),
            ),
            "algorithm",
        ),
        (
            "bad signature",
            signing::unsigned_jwt(&header, &claims(), &[7; 64]),
            "signature",
        ),
        (
            "oversized",
            key.dpop_proof_with(json!({}), &with("pad", json!("x".repeat(9000)))),
            "longer",
        ),
        ("not a JWT", "not-a-jwt".to_owned(), "compact"),
    ];
    for (what, proof, names) in cases {
        let response = token_with(&app, (&client.id, &secret), &[&proof]).await;
        assert_eq!(response.status(), 400, "{what}");
        assert_invalid_proof(response, names).await;
    }

    // Two DPoP headers.
    let (one, two) = (
        key.dpop_proof("POST", &url, None, None),
        key.dpop_proof("POST", &url, None, None),
    );
    assert_invalid_proof(
        token_with(&app, (&client.id, &secret), &[&one, &two]).await,
        "one DPoP header",
    )
    .await;
    // A reused jti.
    let proof = key.dpop_proof("POST", &url, None, None);
    assert_eq!(
        token_with(&app, (&client.id, &secret), &[&proof])
            .await
            .status(),
        201
    );
    assert_invalid_proof(
        token_with(&app, (&client.id, &secret), &[&proof]).await,
        "used before",
    )
    .await;
    // The standard surface answers the same error.
    let response = app
        .http
        .post(app.url("/oauth2/token"))
        .basic_auth(&client.id, Some(&secret))
        .header(DPOP, "x.y.z")
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_rfc_error(response, 400, "invalid_dpop_proof").await;
    // A refused proof costs the client nothing: it still gets tokens, and the server is up.
    bound_token(&app, (&client.id, &secret), &key).await;
    assert_eq!(
        app.http
            .get(app.url("/healthz/ready"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// The `DPoP-Nonce` header of a response.
fn nonce_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get("dpop-nonce")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn with_nonces_on_a_proof_needs_a_fresh_one_from_any_replica() {
    let app = spawn_app_with(|s| s.sender.dpop_nonce = true).await;
    // Another server with the same master secret (a replica): its nonces work here.
    let other = spawn_app_with(|s| s.sender.dpop_nonce = true).await;
    let (client, secret) = app.create_client("a", None).await;
    let key = TestKey::es256("k");
    let url = format!("{}/auth/token", app.issuer);

    let response = token_with(
        &app,
        (&client.id, &secret),
        &[&key.dpop_proof("POST", &url, None, None)],
    )
    .await;
    let nonce = nonce_of(response.headers()).expect("a DPoP-Nonce header");
    let body = assert_rfc_error(response, 400, "use_dpop_nonce").await;
    assert_eq!(body["error_code"], "api_error.auth.use_dpop_nonce");

    let response = token_with(
        &app,
        (&client.id, &secret),
        &[&key.dpop_proof("POST", &url, None, Some(&nonce))],
    )
    .await;
    assert_eq!(response.status(), 201);
    assert!(
        nonce_of(response.headers()).is_some(),
        "the next nonce comes with every token"
    );

    let from_other = token_with(
        &other,
        ("x", "y"),
        &[&key.dpop_proof("POST", &format!("{}/auth/token", other.issuer), None, None)],
    )
    .await;
    let other_nonce = nonce_of(from_other.headers()).unwrap();
    let response = token_with(
        &app,
        (&client.id, &secret),
        &[&key.dpop_proof("POST", &url, None, Some(&other_nonce))],
    )
    .await;
    assert_eq!(response.status(), 201, "a replica's nonce is accepted");

    for stale in ["", "AAAA", "not-a-nonce-at-all-but-long-enough-to-parse"] {
        let response = token_with(
            &app,
            (&client.id, &secret),
            &[&key.dpop_proof("POST", &url, None, Some(stale))],
        )
        .await;
        assert_rfc_error(response, 400, "use_dpop_nonce").await;
    }
}

#[tokio::test]
async fn a_client_that_requires_dpop_gets_only_bound_tokens() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let out = app
        .cli_async(&["clients", "update", &client.id, "--require-dpop"])
        .await;
    assert!(out.status.success(), "{out:?}");
    app.synced().await;
    let response = token_with(&app, (&client.id, &secret), &[]).await;
    assert_invalid_proof(response, "must send one").await;
    bound_token(&app, (&client.id, &secret), &TestKey::es256("k")).await;
    let shown = app
        .cli_async(&["clients", "show", &client.id, "--json"])
        .await;
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["require_dpop"], true, "{shown}");

    let out = app
        .cli_async(&["clients", "update", &client.id, "--require-dpop", "false"])
        .await;
    assert!(out.status.success(), "{out:?}");
    app.synced().await;
    assert_eq!(
        token_with(&app, (&client.id, &secret), &[]).await.status(),
        201
    );
}

#[tokio::test]
async fn refused_proofs_spend_the_addresss_failure_budget() {
    use moneykit_auth::engine::ratelimit::Rate;
    let app = spawn_app_with(|s| {
        s.rate_limits.failures_per_address = Rate::per(3, std::time::Duration::from_secs(60));
    })
    .await;
    let (client, secret) = app.create_client("a", None).await;
    let key = TestKey::es256("k");
    let stale = key.dpop_proof_with(
        json!({}),
        &json!({"jti": jti(), "htm": "POST", "htu": format!("{}/auth/token", app.issuer),
                "iat": now() - 3600}),
    );
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(
            token_with(&app, (&client.id, &secret), &[&stale])
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..3], [400, 400, 400], "{statuses:?}");
    assert_eq!(statuses[4], 429, "{statuses:?}");
    // Over budget, even a good proof from this address waits.
    let good = key.dpop_proof("POST", &format!("{}/auth/token", app.issuer), None, None);
    assert_eq!(
        token_with(&app, (&client.id, &secret), &[&good])
            .await
            .status(),
        429
    );
}
