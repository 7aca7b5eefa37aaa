//! Micro-benchmarks of each piece of the hot path, to see where a request's time goes
//! next to the HTTP-level figures of `bench/run.sh`.
//!
//! Run with `cargo bench -p moneykit-auth --bench hot_path`.

#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use moneykit_auth::crypto::{KeyPair, MasterKey, PublicKey};
use moneykit_auth::domain::clients::{App, Client};
use moneykit_auth::domain::scope::Scopes;
use moneykit_auth::domain::secrets::ClientSecret;
use moneykit_auth::domain::signing_keys::KeyRecord;
use moneykit_auth::domain::tokens::{self, AccessClaims, access_token_header};
use moneykit_auth::engine::snapshot::{Snapshot, TokenSettings};
use moneykit_auth::engine::verified::{TokenKey, VerifiedTokens};
use moneykit_auth::http::extract::parse_form;
use moneykit_auth::store::StoredState;
use moneykit_wire::TokenForm;
use time::OffsetDateTime;

/// The secret every client of the benchmark snapshot has.
const SNAPSHOT_SECRET: &str = "mks_bench_secret_0123456789abcdefghijklmnopqrstu";

fn claims() -> AccessClaims {
    AccessClaims {
        iss: "http://127.0.0.1:8080".into(),
        aud: moneykit_wire::Audience::single("http://127.0.0.1:8080"),
        sub: "live_fa3457c9453f6eae6c602878".into(),
        client_id: "live_fa3457c9453f6eae6c602878".into(),
        app_id: "app_b3b43fe60e5ab7937d9b7d7f".into(),
        scope: "accounts:read transactions:read".into(),
        iat: 1_795_726_593,
        exp: 1_795_730_193,
        jti: "a06311f964c45e15e374f189418ffa67".into(),
        cnf: None,
    }
}

/// A snapshot with `n` clients, built the way the server builds it.
fn snapshot(n: usize) -> Snapshot {
    let master = MasterKey::from_secret("bench-master-secret-0123456789abcdef").unwrap();
    let now = OffsetDateTime::now_utc();
    let pkcs8 = KeyPair::generate_pkcs8();
    let pair = KeyPair::from_pkcs8("key_bench", &pkcs8).unwrap();
    let app = App {
        id: "app_1".into(),
        name: "Bench".into(),
        created_at: now,
        webhook_url: None,
    };
    let clients = (0..n)
        .map(|i| Client {
            id: format!("live_{i:024}"),
            app_id: app.id.clone(),
            name: format!("client {i}"),
            scopes: Scopes::parse("accounts:read transactions:read").unwrap(),
            audiences: Vec::new(),
            token_ttl_secs: None,
            auth: moneykit_auth::domain::clients::ClientAuth::Secret(vec![
                moneykit_auth::domain::secrets::StoredSecret {
                    id: format!("sec_{i:024}"),
                    hash: moneykit_auth::domain::secrets::SecretHash::of(SNAPSHOT_SECRET),
                    created_at: now,
                    expires_at: None,
                    last_used_at: None,
                },
            ]),
            created_at: now,
            disabled_at: None,
            require_dpop: false,
        })
        .collect();
    let state = StoredState {
        revision: 1,
        apps: vec![app],
        clients,
        keys: vec![KeyRecord {
            seq: 1,
            kid: "key_bench".into(),
            public_key: pair.public_key_bytes(),
            sealed_private_key: master.seal("key_bench", &pkcs8),
            created_at: now,
            activates_at: now,
            revoked_at: None,
        }],
        trust_rules: Vec::new(),
    };
    let settings = Arc::new(TokenSettings {
        issuer: "http://127.0.0.1:8080".into(),
        audience: "http://127.0.0.1:8080".into(),
        default_ttl_secs: 3600,
        publish_scopes: false,
        assertions: moneykit_auth::engine::snapshot::AssertionSettings::new(
            "http://127.0.0.1:8080",
            false,
            std::time::Duration::from_secs(300),
            std::time::Duration::from_secs(86_400),
        ),
        dpop: Default::default(),
        client_certificates: false,
    });
    Snapshot::build(state, &master, settings, now).unwrap()
}

fn hot_path(c: &mut Criterion) {
    let secret = ClientSecret::generate();
    let hash = secret.hash();
    c.bench_function("secret check (SHA-256 + constant-time compare)", |b| {
        b.iter(|| hash.verify(black_box(secret.expose())))
    });

    let body = format!(
        "grant_type=client_credentials&scope=accounts%3Aread&client_id=live_fa3457c9453f6eae6c602878&client_secret={}",
        secret.expose()
    );
    c.bench_function("token form parse", |b| {
        b.iter(|| {
            parse_form(black_box(body.as_bytes()), TokenForm::FIELDS)
                .unwrap()
                .get("scope")
                .map(str::len)
        })
    });

    let pair = KeyPair::from_pkcs8("key_bench", &KeyPair::generate_pkcs8()).unwrap();
    let public = PublicKey::from_sec1("key_bench", &pair.public_key_bytes()).unwrap();
    let header = access_token_header("key_bench");
    let claims = claims();
    c.bench_function("JWT sign (claims JSON + base64 + ES256)", |b| {
        b.iter(|| tokens::sign(&pair, &header, black_box(&claims)))
    });
    let token = tokens::sign(&pair, &header, &claims);
    c.bench_function("JWT verify (parse + ES256 + claims)", |b| {
        b.iter(|| {
            tokens::validate(
                black_box(&token),
                |_| Some(&public),
                "http://127.0.0.1:8080",
                1_795_726_600,
            )
            .unwrap()
        })
    });

    let cache = VerifiedTokens::new(32 * 1024);
    cache.insert(TokenKey::of(&token));
    c.bench_function(
        "verified-token cache hit (SHA-256 + lookup + claims parse)",
        |b| {
            b.iter(|| {
                assert!(cache.contains(&TokenKey::of(black_box(&token))));
                tokens::checked_claims(&token, "http://127.0.0.1:8080", 1_795_726_600).unwrap()
            })
        },
    );

    c.bench_function("token id (16 random bytes, hex)", |b| {
        b.iter(moneykit_auth::domain::ids::new_token_id)
    });

    let snap = snapshot(1);
    let id = format!("live_{:024}", 0);
    let revoked = moneykit_auth::engine::revocation::RevocationList::default();
    let verified = VerifiedTokens::new(8192);
    // Limits on, but far above what the loop asks for: their cost is measured.
    let limits = moneykit_auth::engine::ratelimit::RateLimits::new(
        moneykit_auth::engine::ratelimit::RateLimitSettings {
            issuance_per_client: moneykit_auth::engine::ratelimit::Rate {
                per_second: 1e12,
                burst: 1e12,
            },
            ..Default::default()
        },
    );
    let assertions = moneykit_auth::engine::Assertions {
        remote_keys: std::sync::Arc::new(moneykit_auth::engine::remote_keys::RemoteKeys::new(
            Default::default(),
        )),
        replay: moneykit_auth::engine::replay::ReplayCache::new(1024),
        proofs: moneykit_auth::engine::replay::ReplayCache::new(1024),
        proof_keys: Default::default(),
    };
    let engine = moneykit_auth::engine::Engine {
        snapshot: &snap,
        revoked: &revoked,
        verified: &verified,
        limits: &limits,
        assertions: &assertions,
        source: Some(std::net::Ipv4Addr::LOCALHOST.into()),
    };
    c.bench_function("grant: client_credentials end to end (no HTTP)", |b| {
        b.iter(|| {
            let request = moneykit_auth::engine::grant::TokenRequest {
                grant_type: Some("client_credentials"),
                credentials: Some(moneykit_auth::engine::Credentials::secret(
                    &id,
                    SNAPSHOT_SECRET,
                )),
                ..Default::default()
            };
            engine
                .token(&request, OffsetDateTime::now_utc())
                .outcome
                .unwrap()
        })
    });

    for n in [1, 100_000] {
        let snapshot = snapshot(n);
        let id = format!("live_{:024}", n / 2);
        c.bench_function(&format!("snapshot client lookup ({n} clients)"), |b| {
            b.iter(|| {
                snapshot
                    .client(black_box(&id))
                    .unwrap()
                    .client
                    .scopes
                    .is_empty()
            })
        });
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(std::time::Duration::from_secs(3));
    targets = hot_path
}
criterion_main!(benches);
