//! Which ES256 backend signs and verifies fastest on this machine?
//!
//! The hot path signs one JWT per issued token and verifies one per introspection, so the
//! backend choice sets the ceiling for both. Every backend gets its key parsed once, the
//! way the server holds it, and signs the same 200-byte signing input.
//!
//! Run with `cargo bench -p moneykit-auth --bench es256_backends`.

#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};

const MESSAGE: &[u8] = b"eyJhbGciOiJFUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6ImtfMDEyMzQ1Njc4OSJ9.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjgwODAiLCJzdWIiOiJsaXZlXzVjNzM5YTM2OTUxNWUxMGZjOWUwIiwiYXBwX2lkIjoiYXBwXzAxIiwic2NvcGUiOiJhY2NvdW50czpyZWFkIn0";

fn aws_lc_rs(c: &mut Criterion) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public = key.public_key().as_ref().to_vec();
    let sig = key.sign(&rng, MESSAGE).unwrap();
    let parsed =
        aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public).unwrap();
    c.bench_function("aws-lc-rs sign", |b| {
        b.iter(|| key.sign(&rng, black_box(MESSAGE)).unwrap())
    });
    c.bench_function("aws-lc-rs verify (parsed key)", |b| {
        b.iter(|| parsed.verify_sig(black_box(MESSAGE), sig.as_ref()).unwrap())
    });
    c.bench_function("aws-lc-rs verify (unparsed key)", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
                .verify(black_box(MESSAGE), sig.as_ref())
                .unwrap()
        })
    });
}

fn ring(c: &mut Criterion) {
    use ring::rand::SystemRandom;
    use ring::signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let public = key.public_key().as_ref().to_vec();
    let sig = key.sign(&rng, MESSAGE).unwrap();
    c.bench_function("ring sign", |b| {
        b.iter(|| key.sign(&rng, black_box(MESSAGE)).unwrap())
    });
    c.bench_function("ring verify", |b| {
        b.iter(|| {
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &public)
                .verify(black_box(MESSAGE), sig.as_ref())
                .unwrap()
        })
    });
}

fn rustcrypto_p256(c: &mut Criterion) {
    use p256::ecdsa::signature::{Signer, Verifier};
    use p256::ecdsa::{Signature, SigningKey, VerifyingKey};
    let key = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let verifying = VerifyingKey::from(&key);
    let sig: Signature = key.sign(MESSAGE);
    c.bench_function("p256 sign", |b| {
        b.iter(|| -> Signature { key.sign(black_box(MESSAGE)) })
    });
    c.bench_function("p256 verify", |b| {
        b.iter(|| verifying.verify(black_box(MESSAGE), &sig).unwrap())
    });
}

criterion_group! {
    name = backends;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = aws_lc_rs, ring, rustcrypto_p256
}
criterion_main!(backends);
