//! Signing keys and JWTs for the tests, and a tiny metadata + JWKS server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moneykit::{Jwk, JwkSet};
use serde_json::{Value, json};

pub const ISSUER: &str = "https://auth.example.test";
pub const AUDIENCE: &str = "https://api.example.test";
pub const NOW: i64 = 1_750_000_000;

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(s: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(s).unwrap()
}

/// An ES256 key pair with a `kid`.
pub struct Signer {
    pub kid: String,
    key: EcdsaKeyPair,
}

impl Signer {
    pub fn new(kid: &str) -> Self {
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
        Self {
            kid: kid.to_owned(),
            key,
        }
    }

    pub fn jwk(&self) -> Jwk {
        let point = self.key.public_key().as_ref(); // 0x04 || x || y
        serde_json::from_value(json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": self.kid,
            "x": b64(&point[1..33]), "y": b64(&point[33..65]),
        }))
        .unwrap()
    }

    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: vec![self.jwk()],
        }
    }

    /// The standard header for this key.
    pub fn header(&self) -> Value {
        json!({ "alg": "ES256", "typ": "at+jwt", "kid": self.kid })
    }

    /// A JWT of `header` and `claims`, signed with this key whatever the header says.
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64(sig.as_ref()))
    }

    /// A valid token for [`ISSUER`] and [`AUDIENCE`], issued at [`NOW`], expiring in 5 min.
    pub fn token(&self) -> String {
        self.sign(&self.header(), &claims())
    }
}

pub fn claims() -> Value {
    claims_for(ISSUER, json!(AUDIENCE))
}

pub fn claims_for(issuer: &str, aud: Value) -> Value {
    json!({
        "iss": issuer, "aud": aud, "sub": "live_client", "client_id": "live_client",
        "app_id": "app_demo", "scope": "accounts:read transactions:read",
        "iat": NOW, "exp": NOW + 300, "jti": "tok_1",
    })
}

/// Serves `/.well-known/oauth-authorization-server` and `/jwks` on 127.0.0.1, counting
/// JWKS fetches; `jwks` can be changed while it runs.
pub struct KeyServer {
    pub base: String,
    pub jwks: Arc<Mutex<JwkSet>>,
    pub jwks_fetches: Arc<AtomicUsize>,
    /// The issuer the metadata names (the base URL unless changed before serving).
    pub metadata: Arc<Mutex<Value>>,
}

#[derive(Clone)]
struct ServerState {
    jwks: Arc<Mutex<JwkSet>>,
    jwks_fetches: Arc<AtomicUsize>,
    metadata: Arc<Mutex<Value>>,
}

impl KeyServer {
    pub async fn start(jwks: JwkSet) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let state = ServerState {
            jwks: Arc::new(Mutex::new(jwks)),
            jwks_fetches: Arc::default(),
            metadata: Arc::new(Mutex::new(json!({
                "issuer": base,
                "jwks_uri": format!("{base}/jwks"),
                "token_endpoint": format!("{base}/oauth2/token"),
                "some_future_member": {"nested": [1, 2]},
            }))),
        };
        let app = axum::Router::new()
            .route(
                "/.well-known/oauth-authorization-server",
                get(|State(s): State<ServerState>| async move {
                    Json(s.metadata.lock().unwrap().clone())
                }),
            )
            .route(
                "/jwks",
                get(|State(s): State<ServerState>| async move {
                    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(s.jwks.lock().unwrap().clone())
                }),
            )
            // What `AccessTokenApi::get_well_known_jwks` (the webhook verifier) asks for.
            .route(
                "/.well-known/jwks.json",
                get(|State(s): State<ServerState>| async move {
                    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
                    Json(s.jwks.lock().unwrap().clone())
                }),
            )
            .with_state(state.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            base,
            jwks: state.jwks,
            jwks_fetches: state.jwks_fetches,
            metadata: state.metadata,
        }
    }

    pub fn fetches(&self) -> usize {
        self.jwks_fetches.load(Ordering::SeqCst)
    }
}
