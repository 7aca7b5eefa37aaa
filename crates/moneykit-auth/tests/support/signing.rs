//! Keys that sign JWTs the way clients and workload platforms do, for the tests of
//! `private_key_jwt` and federation: each algorithm the server accepts, the public JWK to
//! register, and compact JWTs with any header and claims (bad ones included).

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

/// `client_assertion_type` of `private_key_jwt`.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The jwt-bearer grant.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// The token-exchange grant.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693's JWT token type.
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh random `jti`.
pub fn jti() -> String {
    b64(&moneykit_auth::crypto::random_bytes::<16>())
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair, bool),
}

/// A private key with its `kid` and algorithm.
pub struct TestKey {
    pub kid: String,
    pub alg: &'static str,
    pair: Pair,
}

impl TestKey {
    pub fn es256(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self {
            kid: kid.into(),
            alg: "ES256",
            pair: Pair::Ecdsa(pair),
        }
    }

    pub fn es384(kid: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).unwrap();
        Self {
            kid: kid.into(),
            alg: "ES384",
            pair: Pair::Ecdsa(pair),
        }
    }

    pub fn ed25519(kid: &str) -> Self {
        let pair = Ed25519KeyPair::generate().unwrap();
        Self {
            kid: kid.into(),
            alg: "EdDSA",
            pair: Pair::Ed(pair),
        }
    }

    pub fn rs256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        Self {
            kid: kid.into(),
            alg: "RS256",
            pair: Pair::Rsa(pair, false),
        }
    }

    pub fn ps256(kid: &str) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        Self {
            kid: kid.into(),
            alg: "PS256",
            pair: Pair::Rsa(pair, true),
        }
    }

    /// The public JWK, with `kid`.
    pub fn public_jwk(&self) -> Value {
        match &self.pair {
            Pair::Ecdsa(pair) => {
                let point = pair.public_key().as_ref();
                let half = (point.len() - 1) / 2;
                let crv = if half == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "crv": crv, "x": b64(&point[1..1 + half]),
                       "y": b64(&point[1 + half..]), "kid": self.kid, "use": "sig"})
            }
            Pair::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()), "kid": self.kid})
            }
            Pair::Rsa(pair, _) => {
                let c: RsaPublicKeyComponents<Vec<u8>> = pair.public_key().into();
                json!({"kty": "RSA", "n": b64(&c.n), "e": b64(&c.e), "kid": self.kid, "alg": self.alg})
            }
        }
    }

    /// The raw public key bytes (what a confused server might use as an HMAC secret).
    pub fn public_bytes(&self) -> Vec<u8> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Ed(pair) => pair.public_key().as_ref().to_vec(),
            Pair::Rsa(pair, _) => pair.public_key().as_ref().to_vec(),
        }
    }

    /// Signs `input` with the key's own algorithm.
    pub fn sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.pair {
            Pair::Ecdsa(pair) => pair.sign(&rng, input).unwrap().as_ref().to_vec(),
            Pair::Ed(pair) => pair.sign(input).as_ref().to_vec(),
            Pair::Rsa(pair, pss) => {
                let mut out = vec![0; pair.public_modulus_len()];
                let padding = if *pss {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                pair.sign(padding, &rng, input, &mut out).unwrap();
                out
            }
        }
    }

    /// A compact JWT with `header` (its `alg` and `kid` added unless present) and
    /// `claims`, signed by this key.
    pub fn jwt(&self, header: Value, claims: &Value) -> String {
        let mut header = header;
        let h = header.as_object_mut().unwrap();
        h.entry("alg").or_insert(json!(self.alg));
        h.entry("kid").or_insert(json!(self.kid));
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = self.sign(input.as_bytes());
        format!("{input}.{}", b64(&signature))
    }

    /// A good client assertion of `client_id` for `audience`: fresh `jti`, 60 s.
    pub fn assertion(&self, client_id: &str, audience: &str) -> String {
        self.jwt(
            json!({"typ": "JWT"}),
            &assertion_claims(client_id, audience),
        )
    }
}

impl TestKey {
    /// A DPoP proof (RFC 9449 §4.2) for `method` `url`, with `ath` for `access_token`
    /// and `nonce` when given: fresh `jti`, `iat` now.
    pub fn dpop_proof(
        &self,
        method: &str,
        url: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = json!({"jti": jti(), "htm": method, "htu": url, "iat": now()});
        if let Some(token) = access_token {
            claims["ath"] = json!(token_hash(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.dpop_proof_with(json!({}), &claims)
    }

    /// A DPoP proof with these `claims`, and `header` members over the usual ones
    /// (`typ` `dpop+jwt`, this key's public `jwk`).
    pub fn dpop_proof_with(&self, header: Value, claims: &Value) -> String {
        let mut full = json!({"typ": "dpop+jwt", "jwk": self.public_jwk()});
        for (k, v) in header.as_object().unwrap() {
            full[k] = v.clone();
        }
        self.jwt(full, claims)
    }

    /// The RFC 7638 thumbprint of this key's public JWK, computed here from the
    /// members the RFC lists, in its order.
    pub fn thumbprint(&self) -> String {
        let jwk = self.public_jwk();
        let members: &[&str] = match jwk["kty"].as_str().unwrap() {
            "EC" => &["crv", "kty", "x", "y"],
            "OKP" => &["crv", "kty", "x"],
            _ => &["e", "kty", "n"],
        };
        let body: Vec<String> = members
            .iter()
            .map(|m| format!("\"{m}\":\"{}\"", jwk[*m].as_str().unwrap()))
            .collect();
        let canonical = format!("{{{}}}", body.join(","));
        b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes()).as_ref())
    }
}

/// `ath`: base64url SHA-256 of an access token.
pub fn token_hash(token: &str) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes()).as_ref())
}

/// The claims of a good client assertion.
pub fn assertion_claims(client_id: &str, audience: &str) -> Value {
    let now = now();
    json!({"iss": client_id, "sub": client_id, "aud": audience,
           "iat": now, "exp": now + 60, "jti": jti()})
}

/// `{"keys": [...]}` of the keys' public halves.
pub fn key_set(keys: &[&TestKey]) -> Value {
    json!({"keys": keys.iter().map(|k| k.public_jwk()).collect::<Vec<_>>()})
}

/// A JWT with `header` and `claims` and a signature of `signature` bytes: `alg: none`,
/// HMACs, and other forgeries.
pub fn unsigned_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes()),
        b64(signature)
    )
}

/// A JWT with `header` and `claims` MACed with HMAC-SHA256 under `key`: the
/// algorithm-confusion forgery, with a public key as the "secret".
pub fn hs256_jwt(key: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}
