//! `TokenSource` with the secretless credentials, against a token endpoint on 127.0.0.1
//! that records every request: what a private key and a workload token file put on the
//! wire, refresh after refresh.

use std::path::Path;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use moneykit::{
    ApiError, Configuration, ErrorKind, PrivateKey, Secret, TokenSource, WorkloadIdentity,
};
use serde_json::{Value, json};

/// One `POST /auth/token` as the server saw it.
#[derive(Debug, Clone)]
struct Request {
    authorization: Option<String>,
    form: Vec<(String, String)>,
}

impl Request {
    fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.form.iter().filter(|(n, _)| n == name);
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(values.next().is_none(), "{name} sent twice");
        value
    }

    fn names(&self) -> Vec<&str> {
        self.form.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// A token endpoint that answers `token-1`, `token-2`, … and keeps what it was sent.
struct TokenEndpoint {
    base: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl TokenEndpoint {
    async fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let app = axum::Router::new()
            .route("/auth/token", post(issue))
            .with_state(requests.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { base, requests }
    }

    fn config(&self) -> Configuration {
        Configuration::self_hosted(&self.base).unwrap()
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }
}

async fn issue(
    State(requests): State<Arc<Mutex<Vec<Request>>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    let request = Request {
        authorization: headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned()),
        form: form_urlencoded::parse(&body).into_owned().collect(),
    };
    let mut requests = requests.lock().unwrap();
    requests.push(request);
    let body = json!({
        "access_token": format!("token-{}", requests.len()),
        "token_type": "bearer",
        "expires_in": 3600,
        "scope": "accounts:read",
    });
    (StatusCode::CREATED, Json(body))
}

fn key_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/keys")
        .join(name)
}

/// The fixture key's public half, as `openssl ec -pubout` wrote it.
fn public_key() -> Vec<u8> {
    let pem = std::fs::read_to_string(key_file("ec-p256-public.pem")).unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn decode(part: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// The claims of `assertion` once its signature is checked against the fixture key.
fn verified_claims(assertion: &str, public_key: &[u8]) -> (Value, Value) {
    let (signed, signature) = assertion.rsplit_once('.').unwrap();
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(
            signed.as_bytes(),
            &URL_SAFE_NO_PAD.decode(signature).unwrap(),
        )
        .expect("the assertion verifies with the client's public key");
    let (header, claims) = signed.split_once('.').unwrap();
    (decode(header), decode(claims))
}

/// An API call that the server refuses as expired for `token-1` only: what makes
/// `with_token` refresh and retry.
async fn call_refusing_the_first_token(token: Secret) -> Result<String, ApiError> {
    if token.expose() == "token-1" {
        let body =
            r#"{"error_code":"api_error.auth.expired_access_token","error_message":"expired"}"#;
        return Err(ApiError::from_response(
            StatusCode::UNAUTHORIZED,
            HeaderMap::new(),
            body.into(),
        ));
    }
    Ok(token.expose().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_key_source_signs_a_new_assertion_for_every_refresh() {
    let server = TokenEndpoint::start().await;
    // A secret in the configuration must not be sent along with the assertion.
    let config = server.config().basic_auth("live_abc", "mks_stale");
    let key = PrivateKey::from_file(key_file("ec-p256-sec1.pem"))
        .unwrap()
        .with_key_id("k1");
    let tokens = TokenSource::with_private_key(config, "live_abc", key)
        .scope("accounts:read")
        .build()
        .unwrap();

    // Concurrent callers share one request (single flight), then the cache.
    let first = concurrent_tokens(&tokens, 8).await;
    assert!(first.iter().all(|t| t == "token-1"), "{first:?}");
    assert_eq!(server.requests().len(), 1);
    // Refused as expired: one refresh, with a new assertion, and the call retried.
    let retried = tokens
        .with_token(call_refusing_the_first_token)
        .await
        .unwrap();
    assert_eq!(retried, "token-2");

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let public_key = public_key();
    let mut jtis = Vec::new();
    for request in &requests {
        assert_eq!(request.authorization, None, "no HTTP Basic");
        assert_eq!(
            request.names(),
            [
                "grant_type",
                "scope",
                "client_id",
                "client_assertion_type",
                "client_assertion"
            ]
        );
        assert_eq!(request.field("grant_type"), Some("client_credentials"));
        assert_eq!(request.field("scope"), Some("accounts:read"));
        assert_eq!(request.field("client_id"), Some("live_abc"));
        assert_eq!(
            request.field("client_assertion_type"),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let assertion = request.field("client_assertion").unwrap();
        let (header, claims) = verified_claims(assertion, &public_key);
        assert_eq!(header, json!({"alg": "ES256", "typ": "JWT", "kid": "k1"}));
        assert_eq!(claims["iss"], "live_abc");
        assert_eq!(claims["sub"], "live_abc");
        assert_eq!(claims["aud"], Value::from(server.base.as_str()));
        let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
        assert_eq!(lifetime, 60);
        jtis.push(claims["jti"].as_str().unwrap().to_owned());
    }
    assert_ne!(jtis[0], jtis[1], "every assertion has its own jti");
}

/// `n` concurrent `token()` calls, their tokens in clear.
async fn concurrent_tokens(tokens: &TokenSource, n: usize) -> Vec<String> {
    let calls: Vec<_> = (0..n)
        .map(|_| {
            let tokens = tokens.clone();
            tokio::spawn(async move { tokens.token().await.unwrap().token.expose().to_owned() })
        })
        .collect();
    let mut out = Vec::new();
    for call in calls {
        out.push(call.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_federated_source_reads_the_token_file_for_every_refresh() {
    let server = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "platform-token-1\n").unwrap();
    let tokens = TokenSource::federated(server.config(), WorkloadIdentity::from_token_file(&path))
        .build()
        .unwrap();

    let first = tokens.token().await.unwrap();
    // The platform rotates the token, as the kubelet does.
    std::fs::write(&path, "platform-token-2\n").unwrap();
    assert_eq!(tokens.token().await.unwrap().token, first.token, "cached");
    tokens.refresh_after_rejection(&first.token).await.unwrap();

    let requests = server.requests();
    let sent: Vec<_> = requests.iter().map(|r| r.field("assertion")).collect();
    assert_eq!(sent, [Some("platform-token-1"), Some("platform-token-2")]);
    for request in &requests {
        assert_eq!(request.authorization, None);
        assert_eq!(request.names(), ["grant_type", "assertion"]);
        assert_eq!(
            request.field("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:jwt-bearer")
        );
    }
}

#[tokio::test]
async fn a_federated_source_can_exchange_the_token_for_a_named_client() {
    let server = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "platform-token").unwrap();
    let identity = WorkloadIdentity::from_token_file(&path)
        .client_id("live_abc")
        .token_exchange();
    let tokens = TokenSource::federated(server.config(), identity)
        .scope("accounts:read")
        .build()
        .unwrap();
    tokens.token().await.unwrap();

    let request = &server.requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(
        request.form,
        [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange"
            ),
            ("scope", "accounts:read"),
            ("client_id", "live_abc"),
            ("subject_token", "platform-token"),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
    );
}

#[tokio::test]
async fn a_missing_token_file_is_a_credential_error_and_sends_nothing() {
    let server = TokenEndpoint::start().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("not-yet-mounted");
    let tokens = TokenSource::federated(server.config(), WorkloadIdentity::from_token_file(&path))
        .build()
        .unwrap();

    let e = tokens.token().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Credential);
    assert!(e.credential().is_some());
    let message = e.to_string();
    assert!(
        message.starts_with(&format!(
            "credential error: {}: cannot read the token file: ",
            path.display()
        )),
        "{message}"
    );
    assert!(server.requests().is_empty());
}
