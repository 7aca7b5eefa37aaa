//! What the access token verifier costs beside the raw ES256 verification it cannot avoid:
//! the floor (one P-256 signature check of a token's signing input, key parsed once), a
//! full verification of a token seen for the first time (header and claims parsed and
//! checked too), and a repeated token answered from the digest cache.
//!
//! Verification is async (an unknown key may mean a JWKS fetch), so every case, the floor
//! included, runs inside the same current-thread `block_on`.
//!
//! `cargo bench -p moneykit --bench verifier`; figures in docs/BENCHMARKS.md.

#![allow(missing_docs)]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use moneykit::{AccessTokenVerifier, JwkSet};
use serde_json::json;

const ISSUER: &str = "https://auth.example.test";
const AUDIENCE: &str = "https://auth.example.test";
const NOW: i64 = 1_800_000_000;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn bench(c: &mut Criterion) {
    let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
    let point = key.public_key().as_ref().to_vec();
    let jwks: JwkSet = serde_json::from_value(json!({"keys": [{
        "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": "key_bench",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]}))
    .unwrap();
    // A token the size and shape of the server's.
    let header = b64(json!({"alg": "ES256", "typ": "at+jwt", "kid": "key_bench"})
        .to_string()
        .as_bytes());
    let claims = json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": "live_fa3457c9453f6eae6c602878",
        "client_id": "live_fa3457c9453f6eae6c602878", "app_id": "app_b3b43fe60e5ab7937d9b7d7f",
        "scope": "accounts:read transactions:read", "iat": NOW, "exp": NOW + 3600,
        "jti": "a06311f964c45e15e374f189418ffa67",
    });
    let input = format!("{header}.{}", b64(claims.to_string().as_bytes()));
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    let token = format!("{input}.{}", b64(signature.as_ref()));

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let parsed = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point.clone())
        .parse()
        .unwrap();
    c.bench_function("floor: raw ES256 verify (key parsed once)", |b| {
        b.iter(|| {
            rt.block_on(async {
                parsed.verify_sig(black_box(input.as_bytes()), signature.as_ref())
            })
        })
    });

    let uncached = AccessTokenVerifier::builder(ISSUER, AUDIENCE)
        .cache_capacity(0)
        .build_with_jwks(&jwks);
    c.bench_function("verifier: first sight of a token (no cache)", |b| {
        b.iter(|| {
            rt.block_on(uncached.verify_at(black_box(&token), NOW))
                .unwrap()
        })
    });

    let cached = AccessTokenVerifier::from_jwks(ISSUER, AUDIENCE, &jwks);
    rt.block_on(cached.verify_at(&token, NOW)).unwrap();
    c.bench_function("verifier: a token seen before (digest cache)", |b| {
        b.iter(|| {
            rt.block_on(cached.verify_at(black_box(&token), NOW))
                .unwrap()
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
