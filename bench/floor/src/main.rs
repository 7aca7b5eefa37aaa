//! The floors of the benchmark harness (`bench/run.sh`): what the same HTTP stack costs
//! with nothing on top, and with exactly one ES256 signature or verification per request.
//! moneykit-auth's figures are judged against these, measured in the same run, with the
//! same requests (the harness sends each floor the headers and body it sends the real
//! endpoint), so a ratio isolates what moneykit-auth does beyond the crypto.
//!
//! `bench-floor 127.0.0.1:PORT` serves:
//! - `GET /hello`: a fixed body (the HTTP floor);
//! - `POST /sign`: reads the body, signs one JWT (aws-lc-rs, key parsed once) and returns
//!   it in a token-response-sized JSON body;
//! - `GET /verify`: verifies the ES256 signature of the `Authorization: Bearer` JWT
//!   (public key parsed once).

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use axum::Router;
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A signing input the size of a real access token's header and claims.
const SIGNING_INPUT: &str = "eyJhbGciOiJFUzI1NiIsImtpZCI6ImtleV9jNDc4ZTkyNWExNWViYTY4IiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwIiwic3ViIjoibGl2ZV9mYTM0NTdjOTQ1M2Y2ZWFlNmM2MDI4NzgiLCJjbGllbnRfaWQiOiJsaXZlX2ZhMzQ1N2M5NDUzZjZlYWU2YzYwMjg3OCIsImFwcF9pZCI6ImFwcF9iM2I0M2ZlNjBlNWFiNzkzN2Q5YjdkN2YiLCJzY29wZSI6ImFjY291bnRzOnJlYWQgdHJhbnNhY3Rpb25zOnJlYWQiLCJpYXQiOjE3OTU3MjY1OTMsImV4cCI6MTc5NTczMDE5MywianRpIjoiYTA2MzExZjk2NGM0NWUxNWUzNzRmMTg5NDE4ZmZhNjcifQ";

struct Keys {
    pair: EcdsaKeyPair,
    public: ParsedPublicKey,
    rng: SystemRandom,
}

impl Keys {
    fn jwt(&self) -> String {
        let sig = self.pair.sign(&self.rng, SIGNING_INPUT.as_bytes()).unwrap();
        format!("{SIGNING_INPUT}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn verify(&self, jwt: &str) -> bool {
        let Some((input, sig)) = jwt.rsplit_once('.') else {
            return false;
        };
        let Ok(sig) = URL_SAFE_NO_PAD.decode(sig) else {
            return false;
        };
        self.public.verify_sig(input.as_bytes(), &sig).is_ok()
    }
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let public =
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, pair.public_key().as_ref()).unwrap();
    let keys = Arc::new(Keys { pair, public, rng });

    let sign_keys = keys.clone();
    let app = Router::new()
        .route("/hello", get(|| async { "{\"status\":\"ok\"}" }))
        .route(
            "/sign",
            post(move |_body: axum::body::Bytes| {
                let keys = sign_keys.clone();
                async move {
                    format!(
                        "{{\"access_token\":\"{}\",\"token_type\":\"bearer\",\"expires_in\":3600,\"scope\":\"accounts:read transactions:read\"}}",
                        keys.jwt()
                    )
                }
            }),
        )
        .route(
            "/verify",
            get(move |headers: axum::http::HeaderMap| {
                let keys = keys.clone();
                async move {
                    let token = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.strip_prefix("Bearer "))
                        .unwrap_or("");
                    if keys.verify(token) {
                        "{\"active\":true}"
                    } else {
                        "{\"active\":false}"
                    }
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind(&addr).await.unwrap();
    eprintln!(
        "bench-floor listening on {}",
        listener.local_addr().unwrap()
    );
    axum::serve(listener, app).await.unwrap();
}
