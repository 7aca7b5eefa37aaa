//! `GET /.well-known/jwks.json`, and verifying our tokens with a library we did not write.

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn jwks_publishes_public_p256_keys_with_caching_headers() {
    let app = spawn_app().await;
    let response = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    let body: Value = response.json().await.unwrap();
    let keys = body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort();
    assert_eq!(
        members,
        ["alg", "crv", "kid", "kty", "use", "x", "y"],
        "public members only"
    );
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
}

#[tokio::test]
async fn jwks_accepts_the_headers_the_sdks_send_and_requires_none() {
    let app = spawn_app().await;
    for (name, value) in [
        ("authorization", "Bearer whatever-the-sdk-has"),
        ("x-client-id", "live_123"),
        ("moneykit-version", "2023-02-18"),
    ] {
        let response = app
            .http
            .get(app.url("/.well-known/jwks.json"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn access_tokens_verify_with_jsonwebtoken_using_only_the_jwks_json() {
    let app = spawn_app().await;
    let (client, secret) = app.create_client("accounts:read", None).await;
    let token = app.token(&client.id, &secret, None).await;
    let jwks_json = app
        .http
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    // Only the JSON text of the JWKS, parsed by the independent library's own types.
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwks_json).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[&app.issuer]);
    // RFC 9068 §2.2: `aud` is required; by default it is the issuer.
    validation.set_audience(&[&app.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    let data = decode::<Value>(&token, &key, &validation).expect("verifies");
    assert_eq!(data.claims["client_id"], client.id);
    assert_eq!(data.claims["scope"], "accounts:read");

    // And a tampered token does not.
    let mut bad = token.clone();
    bad.insert(token.find('.').unwrap() + 5, 'A');
    assert!(decode::<Value>(&bad, &key, &validation).is_err());
}
