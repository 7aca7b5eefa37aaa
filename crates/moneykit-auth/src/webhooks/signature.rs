//! The `MoneyKit-Signature` header: a compact ES256 JWT whose header names the signing
//! key (`kid`, published in the JWKS) and whose claims are `iat` and
//! `request_body_sha256`, the lowercase hex SHA-256 of the exact body bytes sent.
//! Receivers look the key up in the JWKS, require ES256, allow 5 minutes of leeway on
//! `iat` and compare the body hash in constant time (`moneykit::webhooks::Verifier`).

use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::keys::KeyPair;

/// The signature of `body` by `key` at `iat` (Unix seconds).
pub fn sign(key: &KeyPair, body: &[u8], iat: i64) -> String {
    let header = serde_json::json!({ "alg": "ES256", "kid": key.kid(), "typ": "JWT" });
    let claims = serde_json::json!({
        "iat": iat,
        "request_body_sha256": hex::encode(digest(&SHA256, body)),
    });
    key.sign_jwt(
        &URL_SAFE_NO_PAD.encode(header.to_string()),
        claims.to_string().as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PublicKey;

    #[tokio::test]
    async fn the_sdk_verifier_accepts_it_and_rejects_a_changed_body() {
        let key = KeyPair::from_pkcs8("key_w", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_w", &key.public_key_bytes()).unwrap();
        let jwks = moneykit_wire::JwkSet {
            keys: vec![public.to_jwk()],
        };
        let verifier = moneykit::webhooks::Verifier::from_jwks(&jwks);
        let body = br#"{"webhook_event":"link.state_changed"}"#;
        let signature = sign(&key, body, 1_700_000_000);
        let claims = verifier
            .verify_at(&signature, body, 1_700_000_100)
            .await
            .unwrap();
        assert_eq!(claims.iat, 1_700_000_000);
        assert!(
            verifier
                .verify_at(&signature, b"{}", 1_700_000_100)
                .await
                .is_err()
        );
        assert!(
            verifier
                .verify_at(&signature, body, 1_700_000_000 + 301)
                .await
                .is_err(),
            "5 minutes of leeway, not more"
        );
    }
}
