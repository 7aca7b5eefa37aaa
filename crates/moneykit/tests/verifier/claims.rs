//! Every check of `verify_at`, offline against a fixed key set.

use std::time::Duration;

use moneykit::{AccessTokenVerifier, TokenError};
use serde_json::{Value, json};

use crate::support::*;

fn verifier(signer: &Signer) -> AccessTokenVerifier {
    AccessTokenVerifier::from_jwks(ISSUER, AUDIENCE, &signer.jwks())
}

async fn verify_claims(claims: Value, now: i64) -> Result<(), TokenError> {
    let signer = Signer::new("key_1");
    let token = signer.sign(&signer.header(), &claims);
    verifier(&signer).verify_at(&token, now).await.map(|_| ())
}

async fn verify_header(header: Value) -> TokenError {
    let signer = Signer::new("key_1");
    let token = signer.sign(&header, &claims());
    verifier(&signer).verify_at(&token, NOW).await.unwrap_err()
}

#[tokio::test]
async fn a_valid_token_gives_its_claims() {
    let signer = Signer::new("key_1");
    let token = signer.token();
    let verified = verifier(&signer).verify_at(&token, NOW).await.unwrap();
    assert_eq!(verified.client_id(), "live_client");
    assert_eq!(verified.subject(), "live_client");
    assert_eq!(verified.app_id(), "app_demo");
    assert_eq!(verified.issuer(), ISSUER);
    assert_eq!(verified.audiences(), [AUDIENCE]);
    assert_eq!(
        verified.scopes().collect::<Vec<_>>(),
        ["accounts:read", "transactions:read"]
    );
    assert!(verified.has_scope("accounts:read") && !verified.has_scope("accounts"));
    assert_eq!(
        (verified.issued_at(), verified.expires_at()),
        (NOW, NOW + 300)
    );
    assert_eq!(verified.not_before(), None);
    assert_eq!(verified.token_id(), "tok_1");
    let debug = format!("{verified:?}");
    assert!(!debug.contains(&token) && !debug.contains(token.split('.').nth(2).unwrap()));
}

#[tokio::test]
async fn audiences_may_be_an_array_and_unknown_claims_are_ignored() {
    let mut claims = claims_for(ISSUER, json!(["https://other.test", AUDIENCE]));
    claims["ext"] = json!({ "tier": "gold" });
    claims["nbf"] = json!(NOW - 10);
    let signer = Signer::new("key_1");
    let token = signer.sign(&signer.header(), &claims);
    let verified = verifier(&signer).verify_at(&token, NOW).await.unwrap();
    assert_eq!(verified.audiences(), ["https://other.test", AUDIENCE]);
    assert_eq!(verified.not_before(), Some(NOW - 10));
}

#[tokio::test]
async fn the_typ_may_be_the_media_type_in_any_case() {
    let signer = Signer::new("key_1");
    let v = verifier(&signer);
    for typ in ["application/at+jwt", "AT+JWT"] {
        let header = json!({ "alg": "ES256", "typ": typ, "kid": "key_1" });
        v.verify_at(&signer.sign(&header, &claims()), NOW)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn other_audiences_are_refused_unless_accepted() {
    let signer = Signer::new("key_1");
    let token = signer.sign(
        &signer.header(),
        &claims_for(ISSUER, json!(["https://a.test", "https://b.test"])),
    );
    let err = verifier(&signer).verify_at(&token, NOW).await.unwrap_err();
    assert!(matches!(err, TokenError::WrongAudience), "{err}");
    let err = verify_claims(claims_for(ISSUER, json!([])), NOW).await;
    assert!(matches!(err, Err(TokenError::WrongAudience)));

    let also_b = AccessTokenVerifier::builder(ISSUER, AUDIENCE)
        .audience("https://b.test")
        .build_with_jwks(&signer.jwks());
    also_b.verify_at(&token, NOW).await.unwrap();
}

#[tokio::test]
async fn other_issuers_are_refused() {
    for iss in ["https://evil.test", "https://auth.example.test/", ""] {
        let err = verify_claims(claims_for(iss, json!(AUDIENCE)), NOW).await;
        assert!(
            matches!(err, Err(TokenError::WrongIssuer)),
            "{iss}: {err:?}"
        );
    }
}

#[tokio::test]
async fn expiry_allows_the_leeway_and_no_more() {
    let exp = NOW + 300;
    assert!(verify_claims(claims(), exp - 1).await.is_ok());
    assert!(verify_claims(claims(), exp + 4).await.is_ok()); // within the 5 s leeway
    for now in [exp + 5, exp + 3600] {
        let err = verify_claims(claims(), now).await;
        assert!(matches!(err, Err(TokenError::Expired)), "{err:?}");
    }

    let signer = Signer::new("key_1");
    let strict = AccessTokenVerifier::builder(ISSUER, AUDIENCE)
        .leeway(Duration::ZERO)
        .build_with_jwks(&signer.jwks());
    let err = strict.verify_at(&signer.token(), exp).await.unwrap_err();
    assert!(matches!(err, TokenError::Expired));
}

#[tokio::test]
async fn tokens_without_exp_or_with_wrong_types_are_malformed() {
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut string_exp = claims();
    string_exp["exp"] = json!("soon");
    for claims in [no_exp, string_exp] {
        let err = verify_claims(claims, NOW).await;
        assert!(matches!(err, Err(TokenError::Malformed(_))), "{err:?}");
    }
}

#[tokio::test]
async fn nbf_and_iat_in_the_future_are_not_valid_yet() {
    let mut nbf = claims();
    nbf["nbf"] = json!(NOW + 60);
    let err = verify_claims(nbf.clone(), NOW).await;
    assert!(matches!(err, Err(TokenError::NotYetValid)), "{err:?}");
    assert!(verify_claims(nbf, NOW + 56).await.is_ok()); // within the leeway

    let mut iat = claims();
    iat["iat"] = json!(NOW + 60);
    let err = verify_claims(iat, NOW).await;
    assert!(matches!(err, Err(TokenError::NotYetValid)), "{err:?}");
}

#[tokio::test]
async fn tampered_tokens_do_not_verify() {
    let signer = Signer::new("key_1");
    let v = verifier(&signer);
    let token = signer.token();
    let parts: Vec<&str> = token.split('.').collect();

    let mut claims = claims();
    claims["scope"] = json!("admin");
    let forged_payload = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    let mut sig = unb64(parts[2]);
    sig[10] ^= 1;
    let forged_signature = format!("{}.{}.{}", parts[0], parts[1], b64(&sig));
    let other_key = Signer::new("key_1").token(); // same kid, another key
    for forged in [forged_payload, forged_signature, other_key] {
        let err = v.verify_at(&forged, NOW).await.unwrap_err();
        assert!(matches!(err, TokenError::BadSignature), "{err}");
    }
    let short_sig = format!("{}.{}.{}", parts[0], parts[1], b64(&sig[..32]));
    assert!(matches!(
        v.verify_at(&short_sig, NOW).await,
        Err(TokenError::BadSignature)
    ));
}

#[tokio::test]
async fn only_es256_is_accepted() {
    for alg in ["none", "HS256", "RS256", "ES384", "es256"] {
        let err = verify_header(json!({ "alg": alg, "typ": "at+jwt", "kid": "key_1" })).await;
        assert!(
            matches!(&err, TokenError::UnsupportedAlgorithm(a) if a == alg),
            "{alg}: {err}"
        );
    }
    // `alg: none` with an empty signature, the classic.
    let signer = Signer::new("key_1");
    let header = b64(br#"{"alg":"none","typ":"at+jwt","kid":"key_1"}"#);
    let token = format!("{header}.{}.", b64(claims().to_string().as_bytes()));
    let err = verifier(&signer).verify_at(&token, NOW).await.unwrap_err();
    assert!(matches!(err, TokenError::UnsupportedAlgorithm(_)), "{err}");
}

#[tokio::test]
async fn other_jwt_types_are_refused() {
    for typ in [json!("JWT"), json!("secevent+jwt"), Value::Null] {
        let mut header = json!({ "alg": "ES256", "kid": "key_1" });
        if !typ.is_null() {
            header["typ"] = typ;
        }
        let err = verify_header(header).await;
        assert!(matches!(err, TokenError::WrongType), "{err}");
    }
}

#[tokio::test]
async fn crit_headers_and_missing_kids_are_refused() {
    let err = verify_header(
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": "key_1", "crit": ["exp"], "exp": 1 }),
    )
    .await;
    assert!(matches!(err, TokenError::Malformed(_)), "{err}");
    let err = verify_header(json!({ "alg": "ES256", "typ": "at+jwt" })).await;
    assert!(matches!(err, TokenError::Malformed(_)), "{err}");
}

#[tokio::test]
async fn unknown_kids_are_refused() {
    let signer = Signer::new("key_1");
    let other = Signer::new("key_2");
    let err = verifier(&signer)
        .verify_at(&other.token(), NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, TokenError::UnknownKey(k) if k == "key_2"),
        "{err}"
    );
}

#[tokio::test]
async fn garbage_is_malformed() {
    let signer = Signer::new("key_1");
    let v = verifier(&signer);
    let token = signer.token();
    let too_long = format!("{token}{}", "A".repeat(moneykit::MAX_TOKEN_LEN));
    let not_json = format!("{}.{}.{}", b64(b"nope"), b64(b"{}"), b64(b"sig"));
    for garbage in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{token}.extra"),
        "!!!.***.$$$".into(),
        format!("{token}="),
        not_json,
        too_long,
    ] {
        let err = v.verify_at(&garbage, NOW).await.unwrap_err();
        assert!(
            matches!(err, TokenError::Malformed(_)),
            "{garbage:?}: {err}"
        );
    }
}

#[tokio::test]
async fn a_remembered_token_is_still_refused_once_expired() {
    let signer = Signer::new("key_1");
    let v = verifier(&signer);
    let token = signer.token();
    for _ in 0..3 {
        v.verify_at(&token, NOW).await.unwrap();
    }
    let err = v.verify_at(&token, NOW + 400).await.unwrap_err();
    assert!(matches!(err, TokenError::Expired));
    let err = v.verify_at(&token, NOW - 60).await.unwrap_err();
    assert!(matches!(err, TokenError::NotYetValid));
    // A clone shares the cache; a copy that differs by one byte is checked afresh.
    v.clone().verify_at(&token, NOW + 1).await.unwrap();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert!(matches!(
        v.verify_at(&tampered, NOW).await,
        Err(TokenError::BadSignature)
    ));
}

#[tokio::test]
async fn without_the_cache_every_check_still_runs() {
    let signer = Signer::new("key_1");
    let v = AccessTokenVerifier::builder(ISSUER, AUDIENCE)
        .cache_capacity(0)
        .build_with_jwks(&signer.jwks());
    let token = signer.token();
    v.verify_at(&token, NOW).await.unwrap();
    v.verify_at(&token, NOW).await.unwrap();
    assert!(matches!(
        v.verify_at(&token, NOW + 400).await,
        Err(TokenError::Expired)
    ));
}
