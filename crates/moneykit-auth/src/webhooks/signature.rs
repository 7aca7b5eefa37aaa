//! The `MoneyKit-Signature` header: a compact ES256 JWT whose header names the signing
//! key (`kid`, published in the JWKS) and whose claims are `iat` and
//! `request_body_sha256`, the lowercase hex SHA-256 of the exact body bytes sent.
//! Receivers look the key up in the JWKS, require ES256, allow 5 minutes of leeway on
//! `iat` and compare the body hash in constant time (`moneykit::webhooks::Verifier`).

use aws_lc_rs::digest::{SHA256, digest};
use moneykit_wire::WebhookSignatureClaims;

use crate::crypto::KeyPair;
use crate::domain::tokens::jwt_header;

/// The signature of `body` by `key` at `iat` (Unix seconds). The claims are the wire
/// type the SDK verifier deserializes, so the two cannot disagree on names.
pub fn sign(key: &KeyPair, body: &[u8], iat: i64) -> String {
    let claims = WebhookSignatureClaims {
        iat,
        request_body_sha256: hex::encode(digest(&SHA256, body)),
    };
    let claims = serde_json::to_vec(&claims).expect("serializable");
    key.sign_jwt(&jwt_header(key.kid(), "JWT"), &claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::PublicKey;

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
