//! Property tests: round-trips through what the server parses and writes, over generated
//! inputs (proptest; 256 cases each, a few seconds in all).

#![allow(missing_docs)]

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, header};
use moneykit_auth::crypto::{KeyPair, PublicKey};
use moneykit_auth::domain::scope::Scopes;
use moneykit_auth::domain::tokens::{self, AccessClaims};
use moneykit_auth::http::extract::{basic_credentials, parse_form};
use moneykit_wire::TokenForm;
use proptest::prelude::*;

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Scope tokens as RFC 6749 §3.3 allows them: printable ASCII without space, `"` or `\`.
fn scope_token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,12}"
}

proptest! {
    #[test]
    fn any_form_values_round_trip_through_the_parser(
        id in "\\PC{0,40}",
        secret in "\\PC{0,60}",
        scope in "\\PC{0,40}",
    ) {
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            encode(&id), encode(&secret), encode(&scope)
        );
        let form = parse_form(body.as_bytes(), TokenForm::FIELDS).unwrap();
        prop_assert_eq!(form.get("client_id"), Some(id.as_str()));
        prop_assert_eq!(form.get("client_secret"), Some(secret.as_str()));
        prop_assert_eq!(form.get("scope"), Some(scope.as_str()));
    }

    #[test]
    fn basic_credentials_round_trip_with_rfc_6749_encoding(
        id in "[^:]{1,40}",
        secret in "\\PC{1,60}",
    ) {
        let value = format!("Basic {}", STANDARD.encode(format!("{}:{}", encode(&id), encode(&secret))));
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
        let parsed = basic_credentials(&headers).unwrap().unwrap();
        prop_assert_eq!(parsed.client_id, id);
        prop_assert_eq!(parsed.client_secret, secret);
    }

    #[test]
    fn scopes_normalize_once(tokens in prop::collection::vec(scope_token(), 0..6)) {
        let text = tokens.join(" ");
        let scopes = Scopes::parse(&text).unwrap();
        let again = Scopes::parse(scopes.as_str()).unwrap();
        prop_assert_eq!(scopes.as_str(), again.as_str());
        for t in &tokens {
            prop_assert!(scopes.as_str().split(' ').any(|s| s == t));
        }
    }

    #[test]
    fn any_claims_survive_signing_and_validation(
        sub in "\\PC{1,40}",
        app in "\\PC{1,40}",
        scope in "\\PC{0,40}",
        aud in proptest::collection::vec("\\PC{1,40}", 0..4),
        iat in 0i64..4_000_000_000,
        ttl in 1i64..86_400,
        jkt in proptest::option::of("[A-Za-z0-9_-]{43}"),
        x5t in proptest::option::of("[A-Za-z0-9_-]{43}"),
    ) {
        let pair = KeyPair::from_pkcs8("key_p", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_p", &pair.public_key_bytes()).unwrap();
        let claims = AccessClaims {
            iss: "https://issuer.test".into(),
            aud: moneykit_wire::Audience::new(aud),
            sub: sub.clone(),
            client_id: sub,
            app_id: app,
            scope,
            iat,
            exp: iat + ttl,
            jti: "jti".into(),
            cnf: (jkt.is_some() || x5t.is_some())
                .then_some(moneykit_wire::Confirmation { jkt, x5t_s256: x5t }),
        };
        // The hand-written claims JSON is exactly what serde writes.
        prop_assert_eq!(claims.to_json(), serde_json::to_string(&claims).unwrap());
        let token = tokens::sign(&pair, &tokens::access_token_header("key_p"), &claims);
        let back = tokens::validate(
            &token,
            |kid| (kid == "key_p").then_some(&public),
            "https://issuer.test",
            iat,
        ).unwrap();
        prop_assert_eq!(back, claims);
    }
}
