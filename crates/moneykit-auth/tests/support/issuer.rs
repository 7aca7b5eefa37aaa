//! A workload platform for the federation tests (and a client's JWKS host for
//! `private_key_jwt` with `--jwks-uri`): on 127.0.0.1, its own keys, a JWKS at `/jwks`
//! and an OpenID discovery document naming it. It can rotate its keys, serve garbage or
//! answer too slowly, and counts the requests it gets.
//!
//! Like the webhook receiver, it runs on a thread and runtime of its own and stops when
//! the runtime of the test that started it shuts down.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::signing::{TestKey, key_set, now};

/// How the issuer answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Its JWKS and discovery document.
    Normal = 0,
    /// 200 with bytes that are not JSON.
    Garbage = 1,
    /// After longer than any fetch timeout.
    Slow = 2,
    /// A JWKS far larger than the server reads.
    Huge = 3,
}

struct Shared {
    issuer: String,
    keys: Mutex<Vec<TestKey>>,
    mode: AtomicU8,
    jwks_requests: AtomicU64,
    discovery_requests: AtomicU64,
}

/// A fake token issuer on a loopback port.
#[derive(Clone)]
pub struct FakeIssuer {
    /// Its issuer identifier (`http://127.0.0.1:PORT`), also its base URL.
    pub issuer: String,
    shared: Arc<Shared>,
}

async fn serve_jwks(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    shared.jwks_requests.fetch_add(1, Ordering::SeqCst);
    let body = match answer(&shared).await {
        Some(body) => body,
        None => {
            let keys = shared.keys.lock().unwrap();
            key_set(&keys.iter().collect::<Vec<_>>()).to_string()
        }
    };
    ([(header::CACHE_CONTROL, "max-age=3600")], body).into_response()
}

async fn serve_discovery(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    shared.discovery_requests.fetch_add(1, Ordering::SeqCst);
    let body = match answer(&shared).await {
        Some(body) => body,
        None => json!({"issuer": shared.issuer, "jwks_uri": format!("{}/jwks", shared.issuer)})
            .to_string(),
    };
    body.into_response()
}

/// The body a misbehaving mode answers with, after its delay; `None` in normal mode.
async fn answer(shared: &Shared) -> Option<String> {
    match shared.mode.load(Ordering::SeqCst) {
        1 => Some("<html>this is not a key set".into()),
        2 => {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some(String::new())
        }
        3 => Some(format!(
            "{{\"keys\":[],\"pad\":\"{}\"}}",
            "x".repeat(1 << 20)
        )),
        _ => None,
    }
}

impl FakeIssuer {
    /// An issuer signing with `keys` (the first signs new tokens).
    pub async fn start(keys: Vec<TestKey>) -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            issuer: issuer.clone(),
            keys: Mutex::new(keys),
            mode: AtomicU8::new(Mode::Normal as u8),
            jwks_requests: AtomicU64::new(0),
            discovery_requests: AtomicU64::new(0),
        });
        let router = axum::Router::new()
            .route("/jwks", axum::routing::get(serve_jwks))
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(serve_discovery),
            )
            .with_state(shared.clone());
        super::serve_in_background("fake-issuer", listener, router);
        Self { issuer, shared }
    }

    /// Its JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}/jwks", self.issuer)
    }

    /// Its public keys, as a JWKS document.
    pub fn jwks(&self) -> Value {
        let keys = self.shared.keys.lock().unwrap();
        key_set(&keys.iter().collect::<Vec<_>>())
    }

    /// Replaces its keys (a rotation: the first signs from now on).
    pub fn rotate(&self, keys: Vec<TestKey>) {
        *self.shared.keys.lock().unwrap() = keys;
    }

    /// Changes how it answers.
    pub fn set_mode(&self, mode: Mode) {
        self.shared.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// How many times its JWKS and its discovery document were fetched.
    pub fn requests(&self) -> (u64, u64) {
        (
            self.shared.jwks_requests.load(Ordering::SeqCst),
            self.shared.discovery_requests.load(Ordering::SeqCst),
        )
    }

    /// A platform token for `subject`, for `audience`, signed by its current key and
    /// valid for `lifetime` seconds.
    pub fn token(&self, subject: &str, audience: &str, lifetime: i64) -> String {
        let now = now();
        self.token_with(&json!({
            "iss": self.issuer, "sub": subject, "aud": [audience],
            "iat": now, "nbf": now, "exp": now + lifetime,
        }))
    }

    /// A token with exactly these claims, signed by its current key.
    pub fn token_with(&self, claims: &Value) -> String {
        let keys = self.shared.keys.lock().unwrap();
        keys[0].jwt(json!({"typ": "JWT"}), claims)
    }
}
