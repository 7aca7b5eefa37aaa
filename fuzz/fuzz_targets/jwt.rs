//! Access-token validation over arbitrary strings: refused or accepted, never a panic,
//! and nothing is accepted that a real key did not sign.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use moneykit_auth::domain::tokens::{self, AccessClaims};
use moneykit_auth::crypto::{KeyPair, PublicKey};

struct Keys {
    pair: KeyPair,
    public: PublicKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        let pair = KeyPair::from_pkcs8("key_f", &KeyPair::generate_pkcs8()).unwrap();
        let public = PublicKey::from_sec1("key_f", &pair.public_key_bytes()).unwrap();
        Keys { pair, public }
    })
}

fuzz_target!(|input: (&str, u8)| {
    let (text, mutate_at) = input;
    let keys = keys();
    let key_for = |kid: &str| (kid == "key_f").then_some(&keys.public);
    // Arbitrary text as a token.
    let _ = tokens::validate(text, key_for, "https://issuer", 1_700_000_000);
    // A real token with one byte changed must never validate.
    let claims = AccessClaims {
        iss: "https://issuer".into(),
        aud: moneykit_wire::Audience::single("https://issuer"),
        sub: text.chars().take(40).collect(),
        client_id: "live_f".into(),
        app_id: "app_f".into(),
        scope: "a b".into(),
        iat: 1_700_000_000,
        exp: 1_700_003_600,
        jti: "j".into(),
        cnf: None,
    };
    let token = tokens::sign(&keys.pair, &tokens::access_token_header("key_f"), &claims);
    assert!(tokens::validate(&token, key_for, "https://issuer", 1_700_000_000).is_ok());
    let mut bytes = token.into_bytes();
    let i = usize::from(mutate_at) % bytes.len();
    let original = bytes[i];
    bytes[i] = if original == b'A' { b'B' } else { b'A' };
    if let Ok(mutated) = String::from_utf8(bytes) {
        // base64url has a few "don't care" bits in the last character of a part: a change
        // there decodes to the same bytes, and is rightly still valid.
        if let Ok(accepted) = tokens::validate(&mutated, key_for, "https://issuer", 1_700_000_000) {
            assert_eq!(accepted, claims, "a changed token validated with other claims");
        }
    }
});
