//! The `moneykit` SDK against the real server: every operation and its
//! `_with_http_info` variant, errors, the token source and the webhook verifier.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit::webhooks::{Verifier, WebhookError};
use moneykit::{
    AccessTokenApi, ApiError, Configuration, ErrorKind, GenerateAccessTokenOpts, TokenSource,
};
use moneykit_auth::crypto::{KeyPair, MasterKey};
use serde_json::json;
use time::OffsetDateTime;

use crate::helpers::*;

fn config(app: &TestApp) -> Configuration {
    Configuration::self_hosted(&app.base).unwrap()
}

fn api_with_basic(app: &TestApp, id: &str, secret: &str) -> AccessTokenApi {
    AccessTokenApi::new(config(app).basic_auth(id, secret)).unwrap()
}

#[tokio::test]
async fn every_operation_and_its_with_http_info_variant_works() {
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client("accounts:read transactions:read", None)
        .await;

    // Basic credentials from the configuration.
    let api = api_with_basic(&app, &client.id, &secret);
    let opts = GenerateAccessTokenOpts {
        grant_type: Some("client_credentials".into()),
        scope: Some("accounts:read".into()),
        ..Default::default()
    };
    let token = api.generate_access_token(opts.clone()).await.unwrap();
    assert_eq!(token.scope, "accounts:read");
    assert_eq!(token.token_type, "bearer");
    let (data, status, headers) = api
        .generate_access_token_with_http_info(opts)
        .await
        .unwrap();
    assert_eq!(status, 201);
    assert_eq!(headers["cache-control"], "no-store");
    assert!(!data.access_token.is_empty());

    // Body credentials, no Basic.
    let plain = AccessTokenApi::new(config(&app)).unwrap();
    let body_token = plain
        .generate_access_token(GenerateAccessTokenOpts {
            client_id: Some(client.id.clone()),
            client_secret: Some(secret.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(body_token.scope, "accounts:read transactions:read");

    let with_token =
        AccessTokenApi::new(config(&app).access_token(token.access_token.as_str())).unwrap();
    let me = with_token.instrospect_client().await.unwrap();
    assert_eq!(me.client_id, client.id);
    assert_eq!(me.app.app_id, client.app_id);
    assert_eq!(with_token.introspect_client().await.unwrap(), me);
    let (me2, status, _) = with_token
        .instrospect_client_with_http_info()
        .await
        .unwrap();
    assert_eq!((me2, status.as_u16()), (me.clone(), 200));
    let (me3, _, _) = with_token.introspect_client_with_http_info().await.unwrap();
    assert_eq!(me3, me);

    let jwks = plain.get_well_known_jwks().await.unwrap();
    assert_eq!(jwks.keys.len(), 1);
    let (jwks2, status, headers) = with_token
        .get_well_known_jwks_with_http_info()
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(headers["cache-control"], "public, max-age=300");
    assert_eq!(jwks2, jwks);
}

#[tokio::test]
async fn error_responses_surface_as_api_errors_with_the_parsed_code() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;

    let wrong = api_with_basic(&app, &client.id, "wrong");
    let e = wrong
        .generate_access_token(Default::default())
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(e.error_code(), Some("api_error.auth.unauthorized"));
    assert!(e.headers().unwrap().contains_key("www-authenticate"));
    assert!(
        e.to_string()
            .starts_with("HTTP 401 api_error.auth.unauthorized: "),
        "{e}"
    );

    let api = api_with_basic(&app, &client.id, &secret);
    let scoped = GenerateAccessTokenOpts {
        scope: Some("admin".into()),
        ..Default::default()
    };
    let e = api.generate_access_token(scoped).await.unwrap_err();
    assert_eq!(e.error_code(), Some("api_error.auth.invalid_scope"));
    let grant = GenerateAccessTokenOpts {
        grant_type: Some("password".into()),
        ..Default::default()
    };
    let e = api.generate_access_token(grant).await.unwrap_err();
    assert_eq!(
        e.error_code(),
        Some("api_error.auth.unsupported_grant_type")
    );

    let bad_token = AccessTokenApi::new(config(&app).access_token("not-a-token")).unwrap();
    let e = bad_token.instrospect_client().await.unwrap_err();
    assert_eq!(e.error_code(), Some("api_error.auth.unauthorized"));
    assert!(!e.is_expired_token());

    // A 2xx whose body is not the documented type.
    let odd = AccessTokenApi::new(
        // host() is unchecked, so it can point anywhere, even at a URL with a query.
        Configuration::self_hosted(&app.base)
            .unwrap()
            .host(format!("{}/.well-known/jwks.json?path=", app.base)),
    )
    .unwrap();
    let e = odd.instrospect_client().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnexpectedBody, "{e:?}");
    assert_eq!(e.status().unwrap(), 200);

    // Nothing listening.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let nowhere = AccessTokenApi::new(
        Configuration::self_hosted(format!("http://127.0.0.1:{port}")).unwrap(),
    )
    .unwrap();
    let e = nowhere.get_well_known_jwks().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport);
    assert!(e.transport().unwrap().is_connect(), "{e:?}");
    assert!(e.status().is_none());
}

#[tokio::test]
async fn token_source_caches_and_refreshes_ahead_of_expiry() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", Some(2)).await;
    let metrics = app.metrics();
    let tokens = TokenSource::new(config(&app), &client.id, secret.as_str()).unwrap();

    let first = tokens.token().await.unwrap();
    let again = tokens.token().await.unwrap();
    assert_eq!(first.token, again.token, "cached");
    assert_eq!(metrics.tokens_issued(), 1);

    // A 2 s token is refreshed after half its life, before it expires.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let refreshed = tokens.token().await.unwrap();
    assert_ne!(refreshed.token, first.token);
    assert_eq!(metrics.tokens_issued(), 2);
}

#[tokio::test]
async fn concurrent_callers_share_one_refresh() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a", None).await;
    let metrics = app.metrics();
    let tokens = TokenSource::new(config(&app), &client.id, secret.as_str()).unwrap();
    let calls = (0..100).map(|_| {
        let tokens = tokens.clone();
        tokio::spawn(async move { tokens.token().await.unwrap().token })
    });
    let results = futures_util::future::join_all(calls).await;
    let first = results[0].as_ref().unwrap().clone();
    assert!(results.iter().all(|r| r.as_ref().unwrap() == &first));
    assert_eq!(
        metrics.tokens_issued(),
        1,
        "one token request for 100 callers"
    );
}

#[tokio::test]
async fn an_expired_token_error_triggers_one_refresh_and_retry() {
    let app = spawn_app().await;
    let (short, short_secret) = app.create_client("a", Some(1)).await;
    let expired = app.token(&short.id, &short_secret, None).await;
    tokio::time::sleep(Duration::from_secs(7)).await;

    let (client, secret) = app.create_client("a", None).await;
    let tokens = TokenSource::new(config(&app), &client.id, secret.as_str()).unwrap();
    let metrics = app.metrics();
    let before = metrics.tokens_issued();
    let http = reqwest::Client::new();
    let attempts = AtomicUsize::new(0);
    let introspected = tokens
        .with_token(|token| {
            // The first attempt presents a token the server reports as expired.
            let presented = if attempts.fetch_add(1, Ordering::SeqCst) == 0 {
                expired.clone()
            } else {
                token.expose().to_owned()
            };
            let request = http.get(app.url("/auth/introspect")).bearer_auth(presented);
            async move {
                let response = request.send().await.unwrap();
                let status = response.status();
                let body = response.bytes().await.unwrap();
                if status.is_success() {
                    Ok(serde_json::from_slice::<serde_json::Value>(&body).unwrap())
                } else {
                    Err(ApiError::from_response(status, Default::default(), body))
                }
            }
        })
        .await
        .unwrap();
    assert_eq!(introspected["client_id"], client.id);
    assert_eq!(attempts.load(Ordering::SeqCst), 2, "one retry");
    assert_eq!(
        metrics.tokens_issued() - before,
        2,
        "the first token and one refresh"
    );
}

#[tokio::test]
async fn api_with_a_token_source_fetches_tokens_itself() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("accounts:read x", None).await;
    let tokens = TokenSource::builder(config(&app), &client.id, secret.as_str())
        .scope("accounts:read")
        .build()
        .unwrap();
    let api = AccessTokenApi::new(config(&app))
        .unwrap()
        .with_token_source(tokens.clone());
    assert_eq!(api.introspect_client().await.unwrap().client_id, client.id);
    assert_eq!(api.instrospect_client().await.unwrap().client_id, client.id);
    assert_eq!(tokens.token().await.unwrap().scope, "accounts:read");
    assert_eq!(app.metrics().tokens_issued(), 1);
}

/// A webhook signature JWT made with the jsonwebtoken crate, independently of the
/// server's signing code (the server's own deliveries are verified in `webhooks.rs`):
/// ES256 with the PKCS#8 key `pkcs8`, or HS256 keyed with it, under `kid`.
fn webhook_signature(kid: &str, pkcs8: &[u8], alg: &str, iat: i64, body: &[u8]) -> String {
    use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
    let hash = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, body));
    let claims = json!({"iat": iat, "request_body_sha256": hash});
    let (algorithm, key) = match alg {
        "ES256" => (Algorithm::ES256, EncodingKey::from_ec_der(pkcs8)),
        "HS256" => (Algorithm::HS256, EncodingKey::from_secret(pkcs8)),
        other => panic!("{other}"),
    };
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_owned());
    header.typ = Some("JWT".into());
    encode(&header, &claims, &key).unwrap()
}

/// The server's newest signing key (kid, PKCS#8), opened with the test master secret.
async fn server_key(app: &TestApp) -> (String, Vec<u8>) {
    let keys = app.store.list_keys().await.unwrap();
    let record = keys.last().unwrap();
    let pkcs8 = MasterKey::from_secret(TEST_SECRET)
        .unwrap()
        .open(&record.kid, &record.sealed_private_key)
        .unwrap();
    (record.kid.clone(), pkcs8)
}

#[tokio::test]
async fn webhook_verifier_accepts_genuine_bodies_and_rejects_everything_else() {
    let app = spawn_app().await;
    let (kid, key) = server_key(&app).await;
    let verifier = Verifier::new(AccessTokenApi::new(config(&app)).unwrap());
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let body = br#"{"webhook_event":"link.state_changed","link_id":"mk_1"}"#;

    let good = webhook_signature(&kid, &key, "ES256", now, body);
    let claims = verifier.verify(&good, body).await.unwrap();
    assert_eq!(claims.iat, now);

    let changed = br#"{"webhook_event":"link.state_changed","link_id":"mk_2"}"#;
    assert!(matches!(
        verifier.verify(&good, changed).await,
        Err(WebhookError::BodyMismatch)
    ));

    let unknown = webhook_signature(
        "key_stranger",
        &KeyPair::generate_pkcs8(),
        "ES256",
        now,
        body,
    );
    assert!(
        matches!(verifier.verify(&unknown, body).await, Err(WebhookError::UnknownKey(k)) if k == "key_stranger")
    );

    let hs256 = webhook_signature(&kid, &key, "HS256", now, body);
    assert!(
        matches!(verifier.verify(&hs256, body).await, Err(WebhookError::UnsupportedAlgorithm(a)) if a == "HS256")
    );

    // 5 minutes of leeway either way, not more.
    for (iat, ok) in [
        (now - 299, true),
        (now + 299, true),
        (now - 301, false),
        (now + 301, false),
    ] {
        let signed = webhook_signature(&kid, &key, "ES256", iat, body);
        let result = verifier.verify_at(&signed, body, now).await;
        assert_eq!(result.is_ok(), ok, "iat {iat}: {result:?}");
        if !ok {
            assert!(matches!(
                result,
                Err(WebhookError::IssuedAtOutsideLeeway { .. })
            ));
        }
    }

    for malformed in [
        "",
        "abc",
        "a.b",
        "a.b.c.d",
        "!!.??.**",
        &good.replace('.', ""),
    ] {
        assert!(
            matches!(
                verifier.verify(malformed, body).await,
                Err(WebhookError::MalformedSignature(_))
            ),
            "{malformed:?}"
        );
    }
    // A flipped signature byte under a known kid.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut sig = URL_SAFE_NO_PAD.decode(&parts[2]).unwrap();
    sig[0] ^= 1;
    parts[2] = URL_SAFE_NO_PAD.encode(sig);
    assert!(matches!(
        verifier.verify(&parts.join("."), body).await,
        Err(WebhookError::BadSignature)
    ));
}

#[tokio::test]
async fn webhook_verifier_refetches_the_jwks_for_a_new_kid_at_most_as_often_as_allowed() {
    let app = spawn_app().await;
    let api = AccessTokenApi::new(config(&app)).unwrap();
    let eager = Arc::new(Verifier::new(api.clone()).min_refetch_interval(Duration::ZERO));
    let patient = Verifier::new(api).min_refetch_interval(Duration::from_secs(3600));
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let body = b"{}";
    let (kid, key) = server_key(&app).await;
    let old = webhook_signature(&kid, &key, "ES256", now, body);
    eager.verify(&old, body).await.unwrap();
    patient.verify(&old, body).await.unwrap();

    assert!(app.cli_async(&["keys", "rotate"]).await.status.success());
    let (kid, key) = server_key(&app).await;
    let new = webhook_signature(&kid, &key, "ES256", now, body);
    app.synced().await;
    eager
        .verify(&new, body)
        .await
        .expect("refetched and found the next key");
    assert!(
        matches!(
            patient.verify(&new, body).await,
            Err(WebhookError::UnknownKey(_))
        ),
        "rate-limited"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn token_command_prints_a_token_and_fails_clearly() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("a b", None).await;
    let out = app
        .cli_async(&[
            "token",
            "--url",
            &app.base,
            "--client-id",
            &client.id,
            "--client-secret",
            &secret,
            "--scope",
            "a",
            "--json",
        ])
        .await;
    let token = cli_json(&out);
    assert_eq!(token["scope"], "a");
    assert_eq!(token["token_type"], "bearer");
    assert!(token["access_token"].as_str().unwrap().starts_with("ey"));

    let out = app
        .cli_async(&[
            "token",
            "--url",
            &app.base,
            "--client-id",
            &client.id,
            "--client-secret",
            "wrong",
        ])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("api_error.auth.unauthorized"), "{err}");
    app.stop().await;
}

/// Re-signs `claims` with the server's own current key under `header`: a token only a
/// holder of the key could make, for the checks that come after the signature.
async fn signed_by_server(
    app: &TestApp,
    header: serde_json::Value,
    claims: &serde_json::Value,
) -> String {
    let (kid, pkcs8) = server_key(app).await;
    let pair = KeyPair::from_pkcs8(&kid, &pkcs8).unwrap();
    let header = URL_SAFE_NO_PAD.encode(header.to_string());
    pair.sign_jwt(&header, claims.to_string().as_bytes())
}

#[tokio::test]
async fn the_access_token_verifier_accepts_the_servers_tokens_and_nothing_else() {
    use moneykit::{AccessTokenVerifier, TokenError};
    const API: &str = "https://api.example.test/";
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client_with_audiences("accounts:read transactions:read", &[API])
        .await;
    let token = app.token(&client.id, &secret, Some("accounts:read")).await;

    // Discovery through the real RFC 8414 metadata, keys from the real JWKS.
    let verifier = AccessTokenVerifier::builder(&app.issuer, API)
        .build()
        .unwrap();
    verifier.discover().await.unwrap();
    let verified = verifier
        .verify(&token)
        .await
        .expect("a genuine token verifies");
    assert_eq!(verified.client_id(), client.id);
    assert_eq!(verified.app_id(), client.app_id);
    assert!(verified.has_scope("accounts:read"));
    assert!(
        !verified.has_scope("transactions:read"),
        "narrowed at issuance"
    );
    assert_eq!(verified.audiences(), [API]);
    // Twice: the second answer comes from the verifier's cache, and is the same.
    assert_eq!(
        verifier.verify(&token).await.unwrap().token_id(),
        verified.token_id()
    );

    // Another audience: a verifier for the issuer's default audience refuses it.
    let for_issuer = AccessTokenVerifier::builder(&app.issuer, &app.issuer)
        .build()
        .unwrap();
    assert!(matches!(
        for_issuer.verify(&token).await,
        Err(TokenError::WrongAudience)
    ));

    // Checks after the signature, on tokens signed with the server's real key.
    let claims = jwt_part(&token, 1);
    let header = jwt_part(&token, 0);
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let with = |name: &str, value: serde_json::Value| {
        let mut c = claims.clone();
        c[name] = value;
        c
    };
    let expired = signed_by_server(&app, header.clone(), &with("exp", json!(now - 60))).await;
    assert!(matches!(
        verifier.verify(&expired).await,
        Err(TokenError::Expired)
    ));
    let elsewhere = with("iss", json!("https://auth.example.test"));
    let wrong_issuer = signed_by_server(&app, header.clone(), &elsewhere).await;
    assert!(matches!(
        verifier.verify(&wrong_issuer).await,
        Err(TokenError::WrongIssuer)
    ));
    let no_aud = {
        let mut c = claims.clone();
        c.as_object_mut().unwrap().remove("aud");
        signed_by_server(&app, header.clone(), &c).await
    };
    assert!(matches!(
        verifier.verify(&no_aud).await,
        Err(TokenError::WrongAudience)
    ));

    // Forged: tampered claims, a foreign key under the real kid, alg none, unknown kid.
    let parts: Vec<&str> = token.split('.').collect();
    let widened = URL_SAFE_NO_PAD.encode(with("scope", json!("accounts:write")).to_string());
    let tampered = format!("{}.{widened}.{}", parts[0], parts[2]);
    assert!(matches!(
        verifier.verify(&tampered).await,
        Err(TokenError::BadSignature)
    ));
    let foreign = KeyPair::from_pkcs8("x", &KeyPair::generate_pkcs8()).unwrap();
    let forged = foreign.sign_jwt(parts[0], claims.to_string().as_bytes());
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(TokenError::BadSignature)
    ));
    let none_header = URL_SAFE_NO_PAD
        .encode(json!({"alg": "none", "typ": "at+jwt", "kid": header["kid"]}).to_string());
    let unsigned = format!("{none_header}.{}.", parts[1]);
    assert!(matches!(
        verifier.verify(&unsigned).await,
        Err(TokenError::UnsupportedAlgorithm(_))
    ));
    let unknown = signed_by_server(
        &app,
        json!({"alg": "ES256", "typ": "at+jwt", "kid": "key_unknown"}),
        &claims,
    )
    .await;
    assert!(matches!(
        verifier.verify(&unknown).await,
        Err(TokenError::UnknownKey(_))
    ));

    // A verifier told to trust another issuer refuses discovery: this server's metadata
    // names its own issuer (RFC 8414 §3.3). `localhost` reaches the same loopback server.
    let other_name = app.issuer.replace("127.0.0.1", "localhost");
    let mismatched = AccessTokenVerifier::builder(&other_name, API)
        .build()
        .unwrap();
    assert!(matches!(
        mismatched.verify(&token).await,
        Err(TokenError::IssuerMismatch { .. })
    ));
}

#[tokio::test]
async fn the_axum_extractor_protects_an_api_with_the_servers_tokens() {
    let app = spawn_app().await;
    let (client, secret) = app
        .create_client("accounts:read transactions:read", None)
        .await;
    let url = accounts_api(&app.issuer).await;

    let get_with = |token: Option<String>| {
        let mut request = app.http.get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let token = app.token(&client.id, &secret, None).await;
    let ok = get_with(Some(token.clone())).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), client.id);

    let missing = get_with(None).await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");

    let mut tampered = token.clone();
    tampered.insert(token.find('.').unwrap() + 3, 'A');
    let invalid = get_with(Some(tampered)).await.unwrap();
    assert_eq!(invalid.status(), 401);
    let challenge = invalid.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );

    let narrow = app
        .token(&client.id, &secret, Some("transactions:read"))
        .await;
    let forbidden = get_with(Some(narrow)).await.unwrap();
    assert_eq!(forbidden.status(), 403);
    let challenge = forbidden.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="insufficient_scope""#) && challenge.contains("accounts:read"),
        "{challenge}"
    );
}

/// An API behind the SDK's axum extractor trusting `issuer`: `GET /accounts` needs scope
/// `accounts:read` and answers the client id. Its URL.
pub(crate) async fn accounts_api(issuer: &str) -> String {
    use moneykit::AccessTokenVerifier;
    use moneykit::axum::{AuthRejection, Authenticated};
    async fn accounts(auth: Authenticated) -> Result<String, AuthRejection> {
        auth.require_scope("accounts:read")?;
        Ok(auth.client_id().to_owned())
    }
    let verifier = AccessTokenVerifier::builder(issuer, issuer)
        .build()
        .unwrap();
    let api = axum::Router::new()
        .route("/accounts", axum::routing::get(accounts))
        .with_state(verifier);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/accounts", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, api).await });
    url
}

/// A P-256 private key as a PKCS#8 PEM document, as `openssl genpkey` writes it.
pub(crate) fn p256_pem() -> String {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let der = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let body = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

/// A `private_key_jwt` client holding `key`'s public half (as the SDK derives it).
async fn client_of_key(app: &TestApp, key: &moneykit::PrivateKey) -> String {
    let jwks = json!({"keys": [key.public_jwk()]}).to_string();
    let client = crate::secretless::key_client(
        app,
        "accounts:read",
        moneykit_auth::operations::secretless::KeysInput::Jwks(jwks),
    )
    .await;
    client.id
}

#[tokio::test]
async fn the_sdk_gets_tokens_with_a_private_key_and_as_a_federated_workload() {
    use crate::support::issuer::FakeIssuer;
    use crate::support::signing::{TestKey, key_set};
    use moneykit::{PrivateKey, WorkloadIdentity};

    let app = spawn_app().await;
    // A private key, registered by its public JWK; every refresh signs a new assertion.
    let key = PrivateKey::from_pem(p256_pem().as_bytes())
        .unwrap()
        .with_key_id("sdk-key");
    let id = client_of_key(&app, &key).await;
    let tokens = TokenSource::with_private_key(config(&app), id.as_str(), key)
        .build()
        .unwrap();
    let first = tokens.token().await.unwrap();
    let claims = jwt_part(first.token.expose(), 1);
    assert_eq!(claims["client_id"], id.as_str());
    let rejected = first.token.clone();
    let second = tokens.refresh_after_rejection(&rejected).await.unwrap();
    assert_ne!(
        second.token, first.token,
        "a second assertion, accepted too"
    );

    // A federated workload: its platform token in a file that the platform rotates.
    let platform = FakeIssuer::start(vec![TestKey::es256("cluster")]).await;
    let (trusting, _) = app.create_client("accounts:read", None).await;
    let rule = moneykit_auth::operations::secretless::NewTrustRule {
        issuer: platform.issuer.clone(),
        subject: "system:serviceaccount:payments:ledger".into(),
        audience: None,
        keys: Some(moneykit_auth::operations::secretless::KeysInput::Jwks(
            platform.jwks().to_string(),
        )),
    };
    moneykit_auth::operations::secretless::trust(
        app.store.as_ref(),
        &trusting.id,
        &rule,
        Default::default(),
        &moneykit_auth::operations::Actor::cli(),
    )
    .await
    .unwrap();
    app.synced().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let write_platform_token = || {
        let token = platform.token("system:serviceaccount:payments:ledger", &app.issuer, 600);
        std::fs::write(&token_file, token).unwrap();
    };
    write_platform_token();
    for identity in [
        WorkloadIdentity::from_token_file(&token_file),
        WorkloadIdentity::from_token_file(&token_file).token_exchange(),
    ] {
        let tokens = TokenSource::federated(config(&app), identity)
            .build()
            .unwrap();
        let token = tokens.token().await.unwrap();
        assert_eq!(
            jwt_part(token.token.expose(), 1)["client_id"],
            trusting.id.as_str()
        );
        // The platform rotates the file; the next refresh reads it again.
        write_platform_token();
        let again = tokens.refresh_after_rejection(&token.token).await.unwrap();
        assert_eq!(
            jwt_part(again.token.expose(), 1)["client_id"],
            trusting.id.as_str()
        );
    }
    // Keys unknown to the server: a clear error, not a token.
    let stranger = PrivateKey::from_pem(p256_pem().as_bytes()).unwrap();
    let refused = TokenSource::with_private_key(config(&app), id.as_str(), stranger)
        .build()
        .unwrap()
        .token()
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not signed by a registered key"),
        "{refused}"
    );
    let _ = key_set;
}

#[tokio::test]
async fn the_token_command_uses_a_private_key_or_a_platform_token_file() {
    use crate::support::issuer::FakeIssuer;
    use crate::support::signing::TestKey;

    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let pem = p256_pem();
    let key_path = dir.path().join("client-key.pem");
    std::fs::write(&key_path, &pem).unwrap();
    let id = client_of_key(
        &app,
        &moneykit::PrivateKey::from_pem(pem.as_bytes()).unwrap(),
    )
    .await;
    let key_path = key_path.to_str().unwrap();
    let out = app
        .cli_async(&[
            "token",
            "--url",
            &app.base,
            "--client-id",
            &id,
            "--private-key",
            key_path,
            "--json",
        ])
        .await;
    let token = cli_json(&out);
    assert_eq!(
        jwt_part(token["access_token"].as_str().unwrap(), 1)["client_id"],
        id.as_str()
    );
    assert!(!String::from_utf8_lossy(&out.stderr).contains("PRIVATE KEY"));

    let platform = FakeIssuer::start(vec![TestKey::ed25519("cluster")]).await;
    let (trusting, _) = app.create_client("accounts:read", None).await;
    let jwks_path = dir.path().join("cluster-jwks.json");
    std::fs::write(&jwks_path, platform.jwks().to_string()).unwrap();
    cli_json(
        &app.cli_async(&[
            "clients",
            "trust",
            &trusting.id,
            "--issuer",
            &platform.issuer,
            "--subject",
            "ci",
            "--jwks-file",
            jwks_path.to_str().unwrap(),
            "--json",
        ])
        .await,
    );
    let token_path = dir.path().join("platform-token");
    std::fs::write(&token_path, platform.token("ci", &app.issuer, 300)).unwrap();
    app.synced().await;
    for extra in [&[][..], &["--token-exchange"][..]] {
        let mut args = vec![
            "token",
            "--url",
            &app.base,
            "--assertion-file",
            token_path.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let token = cli_json(&app.cli_async(&args).await);
        assert_eq!(
            jwt_part(token["access_token"].as_str().unwrap(), 1)["client_id"],
            trusting.id.as_str(),
            "{extra:?}"
        );
    }
}
