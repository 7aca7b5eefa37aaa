//! Discovery through RFC 8414 metadata and the JWKS refetch policy, against a key server
//! on 127.0.0.1 that counts its JWKS fetches.

use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use moneykit::webhooks::{Verifier, WebhookError};
use moneykit::{AccessTokenApi, AccessTokenVerifier, Configuration, ErrorKind, TokenError};
use serde_json::json;
use tokio::task::JoinSet;

use crate::support::*;

const INTERVAL: Duration = Duration::from_millis(500);

fn token_for(server: &KeyServer, signer: &Signer) -> String {
    signer.sign(&signer.header(), &claims_for(&server.base, json!(AUDIENCE)))
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    format!("key_{}", b64(&bytes))
}

/// `n` tokens with random unknown kids, verified concurrently; every one must fail.
async fn flood(verifier: &AccessTokenVerifier, base: &str, n: usize) {
    let mut tasks = JoinSet::new();
    for _ in 0..n {
        let forger = Signer::new(&random_kid());
        let token = forger.sign(&forger.header(), &claims_for(base, json!(AUDIENCE)));
        let verifier = verifier.clone();
        tasks.spawn(async move { verifier.verify_at(&token, NOW).await });
    }
    while let Some(result) = tasks.join_next().await {
        let err = result.unwrap().unwrap_err();
        assert!(matches!(err, TokenError::UnknownKey(_)), "{err}");
    }
}

#[tokio::test]
async fn keys_are_found_through_the_metadata_and_fetched_once() {
    let signer = Signer::new("key_1");
    let server = KeyServer::start(signer.jwks()).await;
    let verifier = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .build()
        .unwrap();
    assert_eq!(server.fetches(), 0, "discovery is lazy");
    let verified = verifier
        .verify_at(&token_for(&server, &signer), NOW)
        .await
        .unwrap();
    assert_eq!(verified.issuer(), server.base);
    let mut claims = claims_for(&server.base, json!(AUDIENCE));
    claims["jti"] = json!("tok_2");
    verifier
        .verify_at(&signer.sign(&signer.header(), &claims), NOW)
        .await
        .unwrap();
    assert_eq!(server.fetches(), 1);
}

#[tokio::test]
async fn unknown_kids_refetch_at_most_once_per_interval_and_rotations_are_picked_up() {
    let signer = Signer::new("key_1");
    let server = KeyServer::start(signer.jwks()).await;
    let verifier = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .min_refetch_interval(INTERVAL)
        .build()
        .unwrap();
    verifier.discover().await.unwrap();
    assert_eq!(server.fetches(), 1);

    flood(&verifier, &server.base, 50).await;
    assert_eq!(server.fetches(), 1, "the keys were just fetched");
    tokio::time::sleep(INTERVAL).await;
    flood(&verifier, &server.base, 50).await;
    assert_eq!(server.fetches(), 2, "one refetch for the whole flood");

    // Rotation: a new key is published; it is seen once the interval has passed.
    let next = Signer::new("key_2");
    server.jwks.lock().unwrap().keys.push(next.jwk());
    let err = verifier
        .verify_at(&token_for(&server, &next), NOW)
        .await
        .unwrap_err();
    assert!(matches!(err, TokenError::UnknownKey(_)), "{err}");
    assert_eq!(server.fetches(), 2);
    tokio::time::sleep(INTERVAL).await;
    verifier
        .verify_at(&token_for(&server, &next), NOW)
        .await
        .unwrap();
    verifier
        .verify_at(&token_for(&server, &signer), NOW)
        .await
        .unwrap();
    assert_eq!(server.fetches(), 3);
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_refused() {
    let signer = Signer::new("key_1");
    let server = KeyServer::start(signer.jwks()).await;
    server.metadata.lock().unwrap()["issuer"] = json!("https://evil.test");
    let verifier = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .build()
        .unwrap();
    let err = verifier.discover().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::IssuerMismatch { found, .. } if found == "https://evil.test"),
        "{err}"
    );
    assert_eq!(server.fetches(), 0);

    // Naming the JWKS skips the metadata.
    let direct = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .jwks_uri(format!("{}/jwks", server.base))
        .build()
        .unwrap();
    direct
        .verify_at(&token_for(&server, &signer), NOW)
        .await
        .unwrap();
}

#[tokio::test]
async fn discovery_failures_are_typed() {
    let signer = Signer::new("key_1");
    let server = KeyServer::start(signer.jwks()).await;
    server
        .metadata
        .lock()
        .unwrap()
        .as_object_mut()
        .unwrap()
        .remove("jwks_uri");
    let verifier = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .build()
        .unwrap();
    let err = verifier
        .verify_at(&token_for(&server, &signer), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::Discovery(e) if e.kind() == ErrorKind::UnexpectedBody),
        "{err}"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let verifier = AccessTokenVerifier::builder(&closed, AUDIENCE)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let err = verifier.discover().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Discovery(e) if e.kind() == ErrorKind::Transport),
        "{err}"
    );

    let bad_jwks = AccessTokenVerifier::builder(&server.base, AUDIENCE)
        .jwks_uri(format!("{}/nowhere", server.base))
        .build()
        .unwrap();
    let err = bad_jwks.discover().await.unwrap_err();
    assert!(
        matches!(&err, TokenError::Jwks(e) if e.kind() == ErrorKind::Api),
        "{err}"
    );
}

/// The webhook verifier shares the JWKS cache: same refetch policy, same behaviour.
#[tokio::test]
async fn webhook_signatures_still_verify_and_refetch_on_new_kids() {
    let signer = Signer::new("key_1");
    let server = KeyServer::start(signer.jwks()).await;
    let api = AccessTokenApi::new(Configuration::self_hosted(&server.base).unwrap()).unwrap();
    let verifier = Verifier::new(api).min_refetch_interval(INTERVAL);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let body = br#"{"event":"link.state_changed"}"#;
    let sign = |signer: &Signer| {
        let claims = json!({
            "iat": now,
            "request_body_sha256": hex(digest(&SHA256, body).as_ref()),
        });
        signer.sign(&json!({ "alg": "ES256", "kid": signer.kid }), &claims)
    };

    let claims = verifier.verify(&sign(&signer), body).await.unwrap();
    assert_eq!(claims.iat, now);
    assert!(matches!(
        verifier.verify(&sign(&signer), b"other body").await,
        Err(WebhookError::BodyMismatch)
    ));
    let next = Signer::new("key_2");
    server.jwks.lock().unwrap().keys.push(next.jwk());
    assert!(matches!(
        verifier.verify(&sign(&next), body).await,
        Err(WebhookError::UnknownKey(_))
    ));
    tokio::time::sleep(INTERVAL).await;
    verifier.verify(&sign(&next), body).await.unwrap();
    assert_eq!(server.fetches(), 2);

    let offline = Verifier::from_jwks(&signer.jwks());
    offline.verify(&sign(&signer), body).await.unwrap();
    assert!(matches!(
        offline.verify(&sign(&next), body).await,
        Err(WebhookError::UnknownKey(_))
    ));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
